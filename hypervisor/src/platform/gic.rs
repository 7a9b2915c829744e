//! The physical GICv3/v4, at the addresses the board's device tree gives and with the
//! redistributor frames [`super::discover`] walked (`GICR_TYPER`: 0x20000 or 0x40000
//! apart, `Last`).
//!
//! Built on the `arm-gic` crate where it fits: distributor and redistributor
//! configuration (group, priority, routing, enable), waking a redistributor
//! (`GICR_WAKER`), acknowledge / end of interrupt and SGIs through the CPU interface,
//! `ICC_SRE_EL2`. Our own code where it does not:
//! - finding the frames: `arm_gic::gicv3::GicV3` takes one region and assumes CPU i
//!   is frame i, stride fixed by the first frame; we walk every region of the device
//!   tree to its `Last` and match frames to CPUs by `GICR_TYPER`'s affinity
//!   (`board::walk_redistributors`);
//! - split priority drop / deactivation: the crate's `init_cpu` clears
//!   `ICC_CTLR_EL1` (EOImode 0) and it has no `ICC_DIR_EL1`; the virtual-interrupt
//!   runners need EOImode 1 so a guest's deactivation of a hardware-linked list
//!   register ends the physical interrupt;
//! - the active and pending state of single interrupts (`GICR_ISACTIVER0` /
//!   `ICACTIVER0`, `GICD_ISPENDR` / `ICPENDR`), which the crate only touches in its
//!   whole-GIC save/restore;
//!
//! On a GICv2 board (GIC-400 class) every function here goes to
//! [`crate::gicv2::PhysGicV2`] instead (chosen once, by the version discovery found:
//! [`check`] makes the driver): one host interrupt interface for the scheduler,
//! whichever GIC the board has. There [`ack`] returns the raw `GICC_IAR` (an SGI's
//! source CPU in \[12:10\]), which [`eoi`] and [`deactivate`] take back, and
//! [`intid_of`] gives its INTID; kicks go to the target core's CPU interface number,
//! read by that core (`GICD_ITARGETSR0`) when it set up its interface.
//!
//! The distributor is shared by every core: its `arm-gic` handle is made under
//! [`GICD_LOCK`] so there is never more than one (`UniqueMmioPointer`'s contract).
//! Each core touches only its own redistributor once the run has started.

use core::ptr::NonNull;

use arm_gic::gicv3::registers::{Gicd, GicrSgi};
use arm_gic::gicv3::{
    GicCpuInterface, GicDistributor, GicRedistributor, Group, SgiTarget, SgiTargetGroup,
};
use arm_gic::{IntId, InterruptGroup, UniqueMmioPointer};
use core::sync::atomic::{AtomicU8, Ordering};
use spin::{Mutex, Once};

use super::board::{GicVersion, RedistFrame, GICR_PAGE, GICR_TYPER_OFFSET, MAX_CPUS};
use crate::gicv2::PhysGicV2;

/// The EL2 physical timer's interrupt (CNTHP, PPI 10).
pub const HYP_TIMER_INTID: u32 = 26;
/// The GICv3 virtual CPU interface maintenance interrupt (PPI 9).
pub const MAINTENANCE_INTID: u32 = 25;
/// The EL1 virtual timer's interrupt (CNTV, PPI 11).
pub const VTIMER_INTID: u32 = 27;
/// The EL1 physical timer's interrupt (CNTP, PPI 14).
pub const PTIMER_INTID: u32 = 30;
/// The SGI the host uses to make another core exit its guest ("kick").
pub const KICK_SGI: u32 = 8;

static GICD_LOCK: Mutex<()> = Mutex::new(());

/// The physical GICv2, on a GICv2 board (made by [`check`]); `None` on a GICv3/v4.
static V2: Once<PhysGicV2> = Once::new();
/// GICv2: each core's CPU interface number as a target mask (`GICD_ITARGETSR0` read
/// by that core), 0 until the core has set up its interface.
static CPU_MASKS: [AtomicU8; MAX_CPUS] = [const { AtomicU8::new(0) }; MAX_CPUS];
/// The boot page table maps the first 1 GiB as Device memory: where GIC frames must lie.
const DEVICE_MAP_END: u64 = 1 << 30;

/// The board's physical GICv2, if it has one.
#[inline]
pub fn v2() -> Option<&'static PhysGicV2> {
    V2.get()
}

/// Checks that the board's GIC and timer are what the runners are written for: a
/// GICv3/v4 with at least one redistributor per CPU, or a GICv2 with its CPU
/// interface and virtualization frames (GICC, GICH, GICV); the timer and maintenance
/// PPIs the runners use as INTIDs (those the Server Base System Architecture
/// recommends, which QEMU `virt` follows). A one-line reason otherwise. On a GICv2
/// board, makes the host's driver (on the boot core, whose CPU interface number it
/// records).
pub fn check() -> Result<(), &'static str> {
    let b = super::board();
    match b.gic.version {
        GicVersion::V3 => {
            for i in 0..b.cpus.len() {
                if super::redistributor(i).is_none() {
                    return Err("a CPU of the board has no redistributor (GICR_TYPER affinity)");
                }
            }
        }
        GicVersion::V2 => {
            let (Some(gicc), Some(gich), Some(gicv)) = (b.gic.gicc, b.gic.gich, b.gic.gicv) else {
                return Err("the board's GICv2 has no virtualization extensions (its device tree lists no GICH/GICV frames; QEMU: virtualization=on)");
            };
            if [b.gic.gicd, gicc, gich, gicv]
                .iter()
                .any(|r| r.end() > DEVICE_MAP_END)
            {
                return Err(
                    "the board's GICv2 frames lie above 1 GiB (the EL2 map's Device region)",
                );
            }
            if gicc.size < 0x2000 || gicv.size < 0x2000 {
                return Err("the board's GICC or GICV frame is smaller than 8 KiB");
            }
            if b.cpus.len() > 8 {
                return Err("a GICv2 serves at most 8 CPUs, the board lists more");
            }
            // SAFETY: the board's GICv2 distributor and CPU interface from its device
            // tree, below 1 GiB (Device memory in the boot page table, checked above);
            // this is the only driver of the physical GICv2.
            let g = V2.call_once(|| unsafe {
                PhysGicV2::new(b.gic.gicd.base as usize, gicc.base as usize)
            });
            CPU_MASKS[0].store(g.cpu_mask(), Ordering::Relaxed);
        }
    }
    let t = b.timer;
    if (t.virt, t.phys, t.hyp_phys) != (VTIMER_INTID, PTIMER_INTID, HYP_TIMER_INTID) {
        return Err("the board's timer PPIs are not 27/30/26 (virtual/physical/hypervisor)");
    }
    if b.gic
        .maintenance_intid
        .is_some_and(|m| m != MAINTENANCE_INTID)
    {
        return Err("the board's GIC maintenance interrupt is not PPI 9");
    }
    Ok(())
}

fn intid(n: u32) -> IntId {
    match n {
        0..16 => IntId::sgi(n),
        16..32 => IntId::ppi(n - 16),
        _ => IntId::spi(n - 32),
    }
}

/// Runs `f` on the distributor (under the lock).
fn with_gicd<R>(f: impl FnOnce(&mut GicDistributor) -> R) -> R {
    let _g = GICD_LOCK.lock();
    let base = super::board().gic.gicd.base as usize as *mut Gicd;
    // SAFETY: the board's distributor, mapped as Device memory by the boot page table;
    // the lock makes this the only handle to it while `f` runs.
    let regs = unsafe { UniqueMmioPointer::new(NonNull::new_unchecked(base)) };
    f(&mut GicDistributor::new(regs))
}

/// Runs `f` on `frame`'s redistributor (RD and SGI frames).
fn with_gicr<R>(frame: RedistFrame, f: impl FnOnce(&mut GicRedistributor) -> R) -> R {
    let base = frame.base as usize as *mut GicrSgi;
    // SAFETY: a redistributor the walk found, mapped as Device memory by the boot page
    // table; only the core it serves uses it (or the boot core before that core runs).
    let regs = unsafe { UniqueMmioPointer::new(NonNull::new_unchecked(base)) };
    f(&mut GicRedistributor::new(regs))
}

/// Offset of the SGI/PPI page in a redistributor frame.
const SGI_PAGE: u64 = GICR_PAGE;

fn w32(addr: u64, v: u32) {
    // SAFETY: a GIC register of the board (distributor or a walked redistributor),
    // Device memory in the boot page table.
    unsafe { core::ptr::write_volatile(addr as usize as *mut u32, v) }
}
fn r32(addr: u64) -> u32 {
    // SAFETY: as above.
    unsafe { core::ptr::read_volatile(addr as usize as *const u32) }
}

/// Sends physical SGI `intid` to core `core` (its MPIDR from the board).
pub fn send_sgi(intid_: u32, core: u64) {
    if let Some(g) = v2() {
        let mask = CPU_MASKS
            .get(core as usize)
            .map_or(0, |m| m.load(Ordering::Acquire));
        if mask != 0 {
            g.send_sgi(intid_, mask);
        }
        return;
    }
    let Some(m) = super::cpu_mpidr(core as usize) else {
        return;
    };
    let _ = GicCpuInterface::send_sgi(
        intid(intid_),
        SgiTarget::List {
            affinity3: (m >> 32) as u8,
            affinity2: (m >> 16) as u8,
            affinity1: (m >> 8) as u8,
            target_list: 1 << (m & 15),
        },
        SgiTargetGroup::CurrentGroup1,
    );
}

/// Sets up core `cpu`'s redistributor and CPU interface for a host that delivers
/// guest interrupts through list registers: wakes it, enables the maintenance
/// interrupt, both EL1 timers' PPIs (virtual 27, physical 30), the EL2 timer and the
/// kick SGI, turns on the system-register interface and splits EOI from deactivation.
pub fn init_cpu_for_virtual_guests(cpu: usize) {
    if let Some(g) = v2() {
        if let Some(m) = CPU_MASKS.get(cpu) {
            m.store(g.cpu_mask(), Ordering::Release);
        }
        if let Err(n) = g.init_cpu(&[
            MAINTENANCE_INTID,
            HYP_TIMER_INTID,
            VTIMER_INTID,
            PTIMER_INTID,
            KICK_SGI,
        ]) {
            log::error!("core {}: the GICv2 refused to enable INTID {}", cpu, n);
        }
        return;
    }
    if let Some(frame) = super::redistributor(cpu) {
        with_gicr(frame, |r| {
            // Already awake is fine.
            let _ = r.mark_core_awake();
            for n in [
                MAINTENANCE_INTID,
                HYP_TIMER_INTID,
                VTIMER_INTID,
                PTIMER_INTID,
                arm_vcpu::pmu::PMU_INTID,
                KICK_SGI,
            ] {
                enable_private(r, n);
            }
        });
    }
    enable_cpu_interface();
    split_eoi();
}

/// Group 1, priority 0x80, enabled.
fn enable_private(r: &mut GicRedistributor, n: u32) {
    let _ = r.set_group(intid(n), Group::Group1NS);
    let _ = r.set_interrupt_priority(intid(n), 0x80);
    let _ = r.enable_interrupt(intid(n), true);
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

/// Deactivates `intid` (ICC_DIR_EL1; GICv2: `GICC_DIR`, the raw [`ack`] value), with
/// split EOI.
#[inline]
pub fn deactivate(intid: u32) {
    if let Some(g) = v2() {
        return g.deactivate(intid);
    }
    // SAFETY: writing ICC_DIR_EL1 with an INTID this core acknowledged.
    unsafe {
        core::arch::asm!("msr S3_0_C12_C11_1, {0}", "isb", in(reg) intid as u64, options(nostack))
    };
}

/// Enables the distributor: affinity routing, group 0 and 1 (GICD_CTLR with one
/// security state: ARE [4], EnableGrp1 [1], EnableGrp0 [0]).
pub fn init_distributor() {
    use arm_gic::gicv3::registers::GicdCtlr;
    if let Some(g) = v2() {
        return g.init_distributor();
    }
    with_gicd(|d| {
        d.modify_control(
            GicdCtlr::ARE_S | GicdCtlr::EnableGrp1NS | GicdCtlr::EnableGrp0,
            true,
        )
    });
}

/// Turns on this core's system-register CPU interface at EL2 (ICC_SRE_EL2.SRE and
/// Enable), unmasks all priorities and enables group 1.
fn enable_cpu_interface() {
    GicCpuInterface::enable_system_register_el2(true);
    GicCpuInterface::set_priority_mask(0xff);
    GicCpuInterface::enable_group1(true);
}

/// Sets (`true`) or clears the pending state of SPI `intid` in the distributor
/// (GICD_ISPENDR<n> / GICD_ICPENDR<n>): the level of an emulated device's interrupt line
/// when the guest owns the physical GIC.
pub fn set_spi_pending(intid: u32, pending: bool) {
    if let Some(g) = v2() {
        return g.set_spi_pending(intid, pending);
    }
    let n = u64::from(intid / 32);
    let base = if pending { 0x200 } else { 0x280 };
    w32(
        super::board().gic.gicd.base + base + 4 * n,
        1 << (intid % 32),
    );
}

/// Delivers SPI `intid` to the host on the boot core: group 1, priority 0x80, routed
/// to the boot core's affinity, enabled.
pub fn enable_spi_on_core0(n: u32) {
    if let Some(g) = v2() {
        if g.enable_spi(n, CPU_MASKS[0].load(Ordering::Relaxed), false)
            .is_err()
        {
            log::error!("the GICv2 refused to enable SPI {}", n);
        }
        return;
    }
    let mpidr = super::cpu_mpidr(0).unwrap_or(0);
    with_gicd(|d| {
        let _ = d.set_group(intid(n), Group::Group1NS);
        let _ = d.set_interrupt_priority(intid(n), 0x80);
        let _ = d.set_routing(intid(n), Some(mpidr));
        let _ = d.enable_interrupt(intid(n), true);
    });
}

/// Acknowledges the highest-priority pending group-1 interrupt (ICC_IAR1_EL1); 1023
/// when none is. GICv2: the raw `GICC_IAR` (see [`intid_of`]).
#[inline]
pub fn ack() -> u32 {
    if let Some(g) = v2() {
        return g.ack();
    }
    GicCpuInterface::get_and_acknowledge_interrupt(InterruptGroup::Group1).map_or(1023, u32::from)
}

/// The INTID of an [`ack`] value: bits \[9:0\] (GICv2: `GICC_IAR` without an SGI's
/// source CPU \[12:10\]; GICv3: the host enables no LPI or extended SPI, so every
/// INTID `ICC_IAR1_EL1` gives it is below 1024, 1023 the spurious one).
#[inline]
pub fn intid_of(iar: u32) -> u32 {
    iar & 0x3ff
}

/// Ends an interrupt (ICC_EOIR1_EL1; GICv2: `GICC_EOIR`, the raw [`ack`] value).
#[inline]
pub fn eoi(n: u32) {
    if let Some(g) = v2() {
        return g.eoi(n);
    }
    GicCpuInterface::end_interrupt(intid(n), InterruptGroup::Group1);
}

/// Arms the EL2 physical timer (CNTHP) to fire when the physical count reaches
/// `cval` (CNTHP_CVAL_EL2, absolute).
pub fn arm_hyp_timer_at(cval: u64) {
    // SAFETY: CNTHP_CVAL_EL2 / CNTHP_CTL_EL2 belong to the host; ENABLE = 1, IMASK = 0.
    unsafe {
        core::arch::asm!(
            "msr cnthp_cval_el2, {t}",
            "mov {c}, #1",
            "msr cnthp_ctl_el2, {c}",
            "isb",
            t = in(reg) cval,
            c = out(reg) _,
            options(nostack),
        )
    };
}

/// One core's redistributor SGI/PPI frame, for the scheduler's per-vCPU switches of
/// the EL1 timer PPIs (looked up once per core, not per switch).
#[derive(Clone, Copy, Debug)]
pub struct LocalRedist {
    sgi: u64,
}

impl LocalRedist {
    /// Core `cpu`'s. GICv2: the distributor, whose `GICD_ISACTIVER0`/`ICACTIVER0`/
    /// `ISENABLER0`/`ICENABLER0` are banked per core at the same offsets.
    pub fn of(cpu: usize) -> Option<Self> {
        if v2().is_some() {
            return Some(Self {
                sgi: super::board().gic.gicd.base,
            });
        }
        super::redistributor(cpu).map(|f| Self {
            sgi: f.base + SGI_PAGE,
        })
    }

    /// Whether PPI `intid` is active (GICR_ISACTIVER0).
    pub fn active(&self, intid: u32) -> bool {
        r32(self.sgi + 0x300) & (1 << (intid & 31)) != 0
    }

    /// Sets or clears the active state of PPI `intid` (GICR_ISACTIVER0 /
    /// GICR_ICACTIVER0): a descheduled vCPU's hardware-linked timer interrupt must not
    /// block the next vCPU's.
    pub fn set_active(&self, intid: u32, active: bool) {
        w32(
            self.sgi + if active { 0x300 } else { 0x380 },
            1 << (intid & 31),
        );
    }

    /// Enables or disables PPI `intid` (GICR_ISENABLER0 / GICR_ICENABLER0).
    pub fn set_enabled(&self, intid: u32, on: bool) {
        w32(self.sgi + if on { 0x100 } else { 0x180 }, 1 << (intid & 31));
    }
}

/// Disables the EL2 physical timer.
pub fn stop_hyp_timer() {
    // SAFETY: as above; ENABLE = 0.
    unsafe { core::arch::asm!("msr cnthp_ctl_el2, xzr", "isb", options(nostack)) };
}

/// The RD pages of passthrough redistributors whose `GICR_TYPER.Last` the hypervisor
/// emulates (`board::guest_redistributors`): the guest's stage 2 leaves these 64 KiB
/// pages unmapped, and every access there comes here as an MMIO exit and goes to the
/// real register — except that `GICR_TYPER` reads with `Last` set, so the guest's
/// walk of its region ends at its own last frame.
#[derive(Clone, Copy, Default)]
pub struct TrappedRdPages {
    pages: super::board::List<u64, { super::board::MAX_CPUS }>,
}

impl TrappedRdPages {
    pub fn new(bases: &[u64]) -> Self {
        let mut t = Self::default();
        for &b in bases {
            t.pages.push(b);
        }
        t
    }

    /// The RD page `addr` falls in, if it is one of ours.
    fn page(&self, addr: u64) -> Option<u64> {
        self.pages
            .iter()
            .copied()
            .find(|&b| addr >= b && addr < b + GICR_PAGE)
    }

    pub fn contains(&self, addr: u64) -> bool {
        self.page(addr).is_some()
    }

    /// A guest read of `width` bytes (4 or 8; others read as zero) at `addr`.
    pub fn read(&self, addr: u64, width: usize) -> u64 {
        let Some(base) = self.page(addr) else {
            return 0;
        };
        let off = addr - base;
        // SAFETY: a register of a walked redistributor's RD page, Device memory in the
        // boot page table, read with the width the guest used (aligned: a misaligned
        // Device access would have faulted in the guest).
        let v = unsafe {
            match width {
                8 if addr.is_multiple_of(8) => {
                    core::ptr::read_volatile(addr as usize as *const u64)
                }
                4 if addr.is_multiple_of(4) => {
                    u64::from(core::ptr::read_volatile(addr as usize as *const u32))
                }
                _ => return 0,
            }
        };
        if off == GICR_TYPER_OFFSET {
            v | super::board::gicr_typer::LAST
        } else {
            v
        }
    }

    /// A guest write of `width` bytes at `addr`, passed on to the register.
    pub fn write(&self, addr: u64, width: usize, data: u64) {
        if self.page(addr).is_none() {
            return;
        }
        // SAFETY: as in `read`; the guest owns this redistributor (passthrough).
        unsafe {
            match width {
                8 if addr.is_multiple_of(8) => {
                    core::ptr::write_volatile(addr as usize as *mut u64, data)
                }
                4 if addr.is_multiple_of(4) => {
                    core::ptr::write_volatile(addr as usize as *mut u32, data as u32)
                }
                _ => {}
            }
        }
    }
}
