//! `vgic-timers`: the EL1 timers' interrupts through the reference hypervisor's
//! virtual-interrupt mode (emulated GICv3 distributor/redistributor, list registers;
//! run with `guest=elf mode=virtual`). PSTATE.I stays masked: interrupts are polled
//! with ICC_IAR1_EL1, which the virtual CPU interface answers.
//!
//! 1. The EL1 physical timer (CNTP, PPI 30) enabled at the GIC and armed: PPI 30
//!    arrives; GICR_ISPENDR0 shows it pending before it is acknowledged,
//!    GICR_ISACTIVER0 active until it is ended.
//! 2. The virtual timer (CNTV, PPI 27) fires while the guest has PPI 27 disabled, the
//!    guest turns the timer off, then enables PPI 27: nothing may arrive (a level
//!    interrupt is sampled again when enabled, never replayed).
//! 3. The same, but the timer still firing when PPI 27 is enabled: PPI 27 arrives
//!    (and could only if the physical PPI was released in step 2).
//!
//! Ends with `VGIC_TIMERS: PASS` or `VGIC_TIMERS: FAIL <n> checks` and PSCI SYSTEM_OFF.
#![no_std]
#![no_main]

use core::arch::asm;

use guests::rt::{Checks, Entry};
use guests::{mmio, println, read_sysreg, sysreg};

guests::guest_main!("vgic-timers", main);

/// The emulated GIC (docs/test-protocol.md, virtual-interrupt mode).
const GICD: u64 = 0x0800_0000;
const GICR: u64 = 0x080a_0000;
const SGI: u64 = GICR + 0x1_0000;
const VTIMER: u32 = 27;
const PTIMER: u32 = 30;
const SPURIOUS: u64 = 1023;

macro_rules! write_sysreg {
    ($name:literal, $v:expr) => {{
        let v: u64 = $v;
        // SAFETY: `msr` to an EL1/EL0 timer register or the virtual GIC CPU interface;
        // none maps memory the compiler uses, and PSTATE.I stays masked.
        unsafe { asm!(concat!("msr ", $name, ", {}"), "isb", in(reg) v, options(nostack)) };
    }};
}

fn enable_ppi(intid: u32, on: bool) {
    // GICR_ISENABLER0 / GICR_ICENABLER0.
    mmio::write32(SGI + if on { 0x100 } else { 0x180 }, 1 << intid);
}

/// Microseconds of virtual count.
fn ticks(us: u64) -> u64 {
    sysreg::cntfrq() * us / 1_000_000
}

fn wait_us(us: u64) {
    let end = sysreg::cntvct() + ticks(us);
    while sysreg::cntvct() < end {}
}

/// Polls ICC_IAR1_EL1 for `us` microseconds: the first interrupt acknowledged, or
/// 1023.
fn poll(us: u64) -> u64 {
    let end = sysreg::cntvct() + ticks(us);
    while sysreg::cntvct() < end {
        let i = read_sysreg!("S3_0_C12_C12_0") & 0xff_ffff;
        if i != SPURIOUS {
            return i;
        }
    }
    SPURIOUS
}

fn eoi(intid: u64) {
    write_sysreg!("S3_0_C12_C12_1", intid); // ICC_EOIR1_EL1 (EOImode 0: also deactivates)
}

fn main(c: &mut Checks, _entry: Entry) {
    // Distributor: EnableGrp1 [1], ARE [4]. Redistributor awake. PPIs 27 and 30 in
    // group 1 at priority 0xa0, both disabled to start with.
    mmio::write32(GICD, (1 << 4) | 2);
    mmio::write32(GICR + 0x14, 0);
    mmio::write32(SGI + 0x80, (1 << VTIMER) | (1 << PTIMER));
    mmio::write32(SGI + 0x418, 0xa0 << 24); // IPRIORITYR 24..27
    mmio::write32(SGI + 0x41c, 0xa0 << 16); // IPRIORITYR 28..31
    enable_ppi(VTIMER, false);
    enable_ppi(PTIMER, false);
    write_sysreg!("S3_0_C4_C6_0", 0xff); // ICC_PMR_EL1
    write_sysreg!("S3_0_C12_C12_7", 1); // ICC_IGRPEN1_EL1

    // 1. The physical timer's PPI 30: pending in GICR_ISPENDR0 before it is
    // acknowledged, active in GICR_ISACTIVER0 until it is ended (the redistributor
    // reports what the vCPU's list registers hold).
    enable_ppi(PTIMER, true);
    c.check_eq(
        format_args!("GICR_ISPENDR0 before the timer fires"),
        mmio::read32(SGI + 0x200) >> PTIMER & 1,
        0,
    );
    write_sysreg!("cntp_tval_el0", ticks(1000));
    write_sysreg!("cntp_ctl_el0", 1);
    let end = sysreg::cntvct() + ticks(200_000);
    while mmio::read32(SGI + 0x200) >> PTIMER & 1 == 0 && sysreg::cntvct() < end {}
    c.check_eq(
        format_args!("GICR_ISPENDR0 bit 30 with the EL1 physical timer fired"),
        mmio::read32(SGI + 0x200) >> PTIMER & 1,
        1,
    );
    let got = poll(200_000);
    if c.check(
        got == u64::from(PTIMER),
        format_args!("EL1 physical timer: expected PPI 30 within 200 ms, got INTID {got}"),
    ) {
        c.check_eq(
            format_args!("GICR_ISACTIVER0 bit 30 once acknowledged"),
            mmio::read32(SGI + 0x300) >> PTIMER & 1,
            1,
        );
        write_sysreg!("cntp_ctl_el0", 0);
        eoi(got);
        c.check_eq(
            format_args!("GICR_ISACTIVER0 bit 30 once ended"),
            mmio::read32(SGI + 0x300) >> PTIMER & 1,
            0,
        );
        println!("guest vgic-timers: PPI 30 (EL1 physical timer) delivered, pending and active as the redistributor reports");
    }
    write_sysreg!("cntp_ctl_el0", 0);
    enable_ppi(PTIMER, false);

    // 2. PPI 27 fires while disabled; the timer is off when it is enabled.
    write_sysreg!("cntv_tval_el0", ticks(1000));
    write_sysreg!("cntv_ctl_el0", 1);
    let end = sysreg::cntvct() + ticks(200_000);
    while read_sysreg!("cntv_ctl_el0") & 4 == 0 && sysreg::cntvct() < end {}
    c.check(
        read_sysreg!("cntv_ctl_el0") & 4 != 0,
        format_args!("CNTV_CTL_EL0.ISTATUS never set"),
    );
    // Time for the host to take the physical interrupt (and hold it).
    wait_us(5000);
    write_sysreg!("cntv_ctl_el0", 0);
    enable_ppi(VTIMER, true);
    let got = poll(20_000);
    if !c.check(
        got == SPURIOUS,
        format_args!(
            "virtual timer: INTID {got} arrived after PPI 27 was enabled with the timer off \
             (a stale level interrupt replayed)"
        ),
    ) {
        eoi(got);
    }

    // 3. PPI 27 fires while disabled and still fires when enabled.
    enable_ppi(VTIMER, false);
    write_sysreg!("cntv_tval_el0", ticks(1000));
    write_sysreg!("cntv_ctl_el0", 1);
    wait_us(6000);
    enable_ppi(VTIMER, true);
    let got = poll(200_000);
    write_sysreg!("cntv_ctl_el0", 0);
    if c.check(
        got == u64::from(VTIMER),
        format_args!(
            "virtual timer: expected PPI 27 after enabling it with the timer firing, got {got}"
        ),
    ) {
        eoi(got);
        println!(
            "guest vgic-timers: held PPI 27 re-sampled (dropped when low, delivered when high)"
        );
    }

    if c.failed() == 0 {
        println!("VGIC_TIMERS: PASS");
    } else {
        println!("VGIC_TIMERS: FAIL {} checks", c.failed());
    }
    // PSCI SYSTEM_OFF: the virtual-mode runners end the VM with it.
    // SAFETY: an HVC the hypervisor answers; it does not return.
    unsafe { asm!("hvc #0", in("x0") 0x8400_0008u64, options(nostack)) };
}
