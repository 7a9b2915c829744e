//! Just enough of the physical GICv3 for the host to take its own EL2 timer
//! interrupt (PPI 26) as an external-interrupt exit.

const GICD: usize = 0x0800_0000;
const GICR: usize = 0x080a_0000;
/// Redistributor frames (RD + SGI) per CPU.
const GICR_STRIDE: usize = 0x2_0000;
/// SGI/PPI frame of redistributor 0.
const GICR_SGI: usize = GICR + 0x1_0000;
/// The EL2 physical timer's interrupt (PPI 10).
pub const HYP_TIMER_INTID: u32 = 26;
/// The GICv3 virtual CPU interface maintenance interrupt (PPI 9).
pub const MAINTENANCE_INTID: u32 = 25;

/// The guest's virtual timer interrupt (PPI 11).
pub const VTIMER_INTID: u32 = 27;

/// The SGI the host uses to make another core exit its guest ("kick").
pub const KICK_SGI: u32 = 8;

/// Sends physical SGI `intid` to core `aff0` (ICC_SGI1R_EL1: INTID [27:24],
/// TargetList [15:0], Aff1..3 = 0).
pub fn send_sgi(intid: u32, aff0: u64) {
    let v = ((intid as u64) << 24) | (1 << (aff0 & 15));
    // SAFETY: generating a physical SGI from EL2 to another core of this machine.
    unsafe { core::arch::asm!("msr S3_0_C12_C11_5, {0}", "isb", in(reg) v, options(nostack)) };
}

/// Sets up core `cpu`'s redistributor and CPU interface for a host that delivers
/// guest interrupts through list registers: wakes it, enables the maintenance
/// interrupt, the virtual timer's PPI, the EL2 timer and the kick SGI, turns on the
/// system-register interface and splits EOI from deactivation.
pub fn init_cpu_for_virtual_guests(cpu: usize) {
    let rd = GICR + cpu * GICR_STRIDE;
    let waker = rd + 0x14;
    w32(waker, r32(waker) & !(1 << 1));
    while r32(waker) & (1 << 2) != 0 {}
    for intid in [MAINTENANCE_INTID, HYP_TIMER_INTID, VTIMER_INTID, KICK_SGI] {
        enable_ppi_on(cpu, intid);
    }
    enable_cpu_interface();
    split_eoi();
}

/// Splits priority drop from deactivation for this core's interrupts
/// (ICC_CTLR_EL1.EOImode = 1): after ICC_EOIR1_EL1 an interrupt stays active until
/// ICC_DIR_EL1 — or until a guest deactivates the virtual interrupt it is linked to
/// through a list register's HW bit.
pub fn split_eoi() {
    // SAFETY: ICC_CTLR_EL1 of the EL2 CPU interface; EOImode is bit 1.
    unsafe {
        core::arch::asm!(
            "mrs {t}, S3_0_C12_C12_4",
            "orr {t}, {t}, #2",
            "msr S3_0_C12_C12_4, {t}",
            "isb",
            t = out(reg) _,
            options(nostack),
        )
    };
}

/// Deactivates `intid` (ICC_DIR_EL1), with split EOI.
pub fn deactivate(intid: u32) {
    // SAFETY: writing ICC_DIR_EL1 with an INTID this core acknowledged.
    unsafe {
        core::arch::asm!("msr S3_0_C12_C11_1, {0}", "isb", in(reg) intid as u64, options(nostack))
    };
}

/// Whether PPI `intid` is active on redistributor 0 (GICR_ISACTIVER0).
pub fn ppi_active(intid: u32) -> bool {
    r32(GICR_SGI + 0x300) & (1 << intid) != 0
}

/// Enables the distributor (affinity routing, group 0 and 1).
pub fn init_distributor() {
    w32(GICD, (1 << 4) | 3);
}

/// Sets or clears the active state of PPI `intid` on redistributor 0
/// (GICR_ISACTIVER0 / GICR_ICACTIVER0): a descheduled vCPU's hardware-linked timer
/// interrupt must not block the next vCPU's.
pub fn set_ppi_active(intid: u32, active: bool) {
    w32(GICR_SGI + if active { 0x300 } else { 0x380 }, 1 << intid);
}

/// Puts PPI `intid` of redistributor 0 in group 1 at priority 0x80 and enables it
/// (GICR_IGROUPR0, GICR_IPRIORITYR<n>, GICR_ISENABLER0).
fn enable_ppi(intid: u32) {
    enable_ppi_on(0, intid);
}

/// The same on core `cpu`'s redistributor.
fn enable_ppi_on(cpu: usize, intid: u32) {
    let sgi = GICR_SGI + cpu * GICR_STRIDE;
    w32(sgi + 0x80, r32(sgi + 0x80) | (1 << intid));
    let prio = sgi + 0x400 + (intid as usize & !3);
    let shift = (intid % 4) * 8;
    w32(prio, (r32(prio) & !(0xff << shift)) | (0x80 << shift));
    w32(sgi + 0x100, 1 << intid);
}

fn w32(addr: usize, v: u32) {
    // SAFETY: GIC distributor/redistributor registers of QEMU virt, Device memory.
    unsafe { core::ptr::write_volatile(addr as *mut u32, v) }
}
fn r32(addr: usize) -> u32 {
    // SAFETY: as above.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

/// Enables the distributor (affinity routing, group 1), wakes redistributor 0,
/// enables PPI 26 in group 1, and turns on this core's system-register CPU interface.
pub fn init() {
    // GICD_CTLR: ARE (bit 4), EnableGrp1 (bit 1), EnableGrp0 (bit 0) (single security state).
    w32(GICD, (1 << 4) | 3);
    // GICR_WAKER: clear ProcessorSleep (bit 1), wait for ChildrenAsleep (bit 2) to clear.
    let waker = GICR + 0x14;
    w32(waker, r32(waker) & !(1 << 1));
    while r32(waker) & (1 << 2) != 0 {}
    // The EL2 timer, and the virtual CPU interface's maintenance interrupt (which
    // arm_vcpu uses to refill list registers).
    enable_ppi(HYP_TIMER_INTID);
    enable_ppi(MAINTENANCE_INTID);
    enable_cpu_interface();
}

/// Turns on this core's system-register CPU interface at EL2.
fn enable_cpu_interface() {
    // SAFETY: enabling the GICv3 system-register interface at EL2 (ICC_SRE_EL2.SRE and
    // Enable), unmasking all priorities and enabling group 1 interrupts on this core.
    unsafe {
        core::arch::asm!(
            "mrs {t}, S3_4_C12_C9_5",
            "orr {t}, {t}, #0x1",
            "orr {t}, {t}, #0x8",
            "msr S3_4_C12_C9_5, {t}",
            "isb",
            "mov {t}, #0xff",
            "msr S3_0_C4_C6_0, {t}",
            "mov {t}, #1",
            "msr S3_0_C12_C12_7, {t}",
            "isb",
            t = out(reg) _,
            options(nostack),
        );
    }
}

/// Sets (`true`) or clears the pending state of SPI `intid` in the distributor
/// (GICD_ISPENDR<n> / GICD_ICPENDR<n>): the level of an emulated device's interrupt line
/// when the guest owns the physical GIC.
pub fn set_spi_pending(intid: u32, pending: bool) {
    let n = (intid / 32) as usize;
    let base = if pending { 0x200 } else { 0x280 };
    w32(GICD + base + 4 * n, 1 << (intid % 32));
}

/// Delivers SPI `intid` to the host on core 0: group 1 (GICD_IGROUPR<n>), priority
/// 0x80 (GICD_IPRIORITYR<n>), routed to affinity 0.0.0.0 (GICD_IROUTER<n>), enabled
/// (GICD_ISENABLER<n>).
pub fn enable_spi_on_core0(intid: u32) {
    let n = (intid / 32) as usize;
    let bit = 1 << (intid % 32);
    w32(GICD + 0x80 + 4 * n, r32(GICD + 0x80 + 4 * n) | bit);
    let prio = GICD + 0x400 + (intid as usize & !3);
    let shift = (intid % 4) * 8;
    w32(prio, (r32(prio) & !(0xff << shift)) | (0x80 << shift));
    let router = GICD + 0x6000 + 8 * intid as usize;
    w32(router, 0);
    w32(router + 4, 0);
    w32(GICD + 0x100 + 4 * n, bit);
}

/// Acknowledges the highest-priority pending group-1 interrupt (ICC_IAR1_EL1).
pub fn ack() -> u32 {
    let v: u64;
    // SAFETY: reading ICC_IAR1_EL1 acknowledges an interrupt; the caller ends it.
    unsafe { core::arch::asm!("mrs {0}, S3_0_C12_C12_0", out(reg) v, options(nostack)) };
    v as u32
}

/// Ends an interrupt (ICC_EOIR1_EL1).
pub fn eoi(intid: u32) {
    // SAFETY: writing ICC_EOIR1_EL1 with an acknowledged INTID.
    unsafe {
        core::arch::asm!("msr S3_0_C12_C12_1, {0}", "isb", in(reg) intid as u64, options(nostack))
    };
}

/// Arms the EL2 physical timer (CNTHP) to fire after `ticks` counter ticks.
pub fn arm_hyp_timer(ticks: u64) {
    // SAFETY: CNTHP_TVAL_EL2 / CNTHP_CTL_EL2 belong to the host; ENABLE = 1, IMASK = 0.
    unsafe {
        core::arch::asm!(
            "msr cnthp_tval_el2, {t}",
            "mov {c}, #1",
            "msr cnthp_ctl_el2, {c}",
            "isb",
            t = in(reg) ticks,
            c = out(reg) _,
            options(nostack),
        )
    };
}

/// Disables the EL2 physical timer.
pub fn stop_hyp_timer() {
    // SAFETY: as above; ENABLE = 0.
    unsafe { core::arch::asm!("msr cnthp_ctl_el2, xzr", "isb", options(nostack)) };
}
