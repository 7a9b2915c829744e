//! [gicv2] The physical GICv2 (GIC-400 class, IHI 0048B) for the host's own interrupts
//! — its EL2 timer, the maintenance interrupt, the guest timers' PPIs it links to
//! virtual ones, the kick SGI, the real UART's SPI — at the addresses the board's
//! device tree gives (GICD, GICC; platform discovery finds them).
//!
//! Built on the `arm-gic` crate (`arm_gic::gicv2::GicV2`) where it fits: the type
//! register, group enables, interrupt groups, enable (with its read-back check),
//! trigger configuration, SGI generation. Our own code where it does not:
//! - priorities: `GicV2::set_interrupt_priority` writes the whole 32-bit
//!   `GICD_IPRIORITYR<n>`, setting the three other interrupts of the word to priority 0
//!   (the highest); `GICD_IPRIORITYR` is byte-accessible, so we write the byte;
//! - SPI targets (`GICD_ITARGETSR`, byte-accessible): not exposed by the crate;
//! - split priority drop / deactivation: `GicV2::setup` writes `GICC_CTLR` = 1
//!   (EOImode 0) and the crate has no `GICC_DIR`; a guest's deactivation of a
//!   hardware-linked list register only ends the physical interrupt with
//!   `GICC_CTLR.EOImode` = 1, so the host needs both;
//! - single pending bits (`GICD_ISPENDR`/`ICPENDR`): not exposed (the banked
//!   active/enable bits of the timer PPIs go through `platform::gic::LocalRedist`,
//!   at the same offsets as a GICv3 redistributor's SGI frame);
//! - acknowledge / end / deactivate on the banked CPU interface: per core and on every
//!   host IRQ exit, so they are plain accesses to this core's GICC without the lock a
//!   `GicV2` (which owns the shared GICD too) needs. The crate's `SgiTarget::All`
//!   encodes a target list of all eight interfaces (self included) despite its name;
//!   we only use `SgiTarget::List`.
//!
//! Without Security Extensions (QEMU `virt` without `secure=on`) every interrupt the
//! host uses is Group 0, signalled as IRQ (`GICC_CTLR.FIQEn` = 0), acknowledged
//! through `GICC_IAR`.

use arm_gic::gicv2::registers::{Gicc, Gicd};
use arm_gic::gicv2::{GicV2, SgiTarget, SgiTargetListFilter};
use arm_gic::{IntId, InterruptGroup, Trigger};
use spin::Mutex;

/// `GICC_CTLR`: EnableGrp0 \[0\], EnableGrp1 \[1\], EOImodeNS \[9\] (EOImode without
/// Security Extensions).
const GICC_CTLR_ENABLE_GRP0: u32 = 1 << 0;
const GICC_CTLR_EOIMODE: u32 = 1 << 9;
/// CPU interface registers.
const GICC_CTLR: usize = 0x0000;
const GICC_PMR: usize = 0x0004;
const GICC_IAR: usize = 0x000c;
const GICC_EOIR: usize = 0x0010;
const GICC_DIR: usize = 0x1000;
/// Distributor registers used directly.
const GICD_ISPENDR: usize = 0x200;
const GICD_ICPENDR: usize = 0x280;
const GICD_IPRIORITYR: usize = 0x400;
const GICD_ITARGETSR: usize = 0x800;

/// Priority the host gives its interrupts.
pub const HOST_PRIORITY: u8 = 0x80;

/// The board's GICv2: distributor and CPU interface bases (EL2 addresses, mapped as
/// Device memory; GICC is banked, the same address on every core).
#[derive(Clone, Copy, Debug)]
pub struct PhysGicV2 {
    gicd: usize,
    gicc: usize,
}

/// Serializes every use of the shared distributor (the `arm-gic` handle's
/// uniqueness contract and read-modify-write sequences across cores).
static GICD_LOCK: Mutex<()> = Mutex::new(());

fn intid(n: u32) -> IntId {
    match n {
        0..16 => IntId::sgi(n),
        16..32 => IntId::ppi(n - 16),
        _ => IntId::spi((n - 32).min(987)),
    }
}

impl PhysGicV2 {
    /// The GIC at `gicd` / `gicc`.
    ///
    /// # Safety
    /// Both must be the board's GICv2 frames, mapped as Device memory at EL2, and used
    /// by no other driver.
    pub const unsafe fn new(gicd: usize, gicc: usize) -> Self {
        Self { gicd, gicc }
    }

    /// Runs `f` on the `arm-gic` driver, under the distributor lock.
    fn with_gic<R>(&self, f: impl FnOnce(&mut GicV2) -> R) -> R {
        let _g = GICD_LOCK.lock();
        // SAFETY: `new`'s contract: the board's frames, Device memory; the lock makes
        // this the only handle to the distributor while `f` runs (the CPU interface
        // is banked per core and only this core's is reached through it).
        let mut gic = unsafe { GicV2::new(self.gicd as *mut Gicd, self.gicc as *mut Gicc) };
        f(&mut gic)
    }

    fn gicd_w8(&self, off: usize, v: u8) {
        // SAFETY: a byte-accessible distributor register (IPRIORITYR / ITARGETSR,
        // IHI 0048B 4.3.11/4.3.12) of the board's GICD, under GICD_LOCK.
        unsafe { core::ptr::write_volatile((self.gicd + off) as *mut u8, v) }
    }
    fn gicd_r8(&self, off: usize) -> u8 {
        // SAFETY: as for `gicd_w8`.
        unsafe { core::ptr::read_volatile((self.gicd + off) as *const u8) }
    }
    fn gicd_w32(&self, off: usize, v: u32) {
        // SAFETY: a set/clear register of the board's GICD (write-1 semantics: no
        // read-modify-write race with other cores).
        unsafe { core::ptr::write_volatile((self.gicd + off) as *mut u32, v) }
    }
    fn gicc_w32(&self, off: usize, v: u32) {
        // SAFETY: this core's banked CPU interface register (GICC), Device memory.
        unsafe { core::ptr::write_volatile((self.gicc + off) as *mut u32, v) }
    }
    fn gicc_r32(&self, off: usize) -> u32 {
        // SAFETY: as for `gicc_w32`.
        unsafe { core::ptr::read_volatile((self.gicc + off) as *const u32) }
    }

    /// Enables the distributor for Group 0 (no Security Extensions: the host's
    /// interrupts are Group 0, signalled as IRQ).
    pub fn init_distributor(&self) {
        self.with_gic(|g| g.enable_group0(true));
    }

    /// This core's CPU interface number, as a target mask (`GICD_ITARGETSR0` reads as
    /// the reading interface's own bit; IHI 0048B 4.3.12).
    pub fn cpu_mask(&self) -> u8 {
        let _g = GICD_LOCK.lock();
        self.gicd_r8(GICD_ITARGETSR)
    }

    /// Sets up this core's CPU interface for a host that delivers guest interrupts
    /// through list registers: the private interrupts `ppis` (maintenance, timers,
    /// kick SGI) Group 0 at [`HOST_PRIORITY`] and enabled; all priorities unmasked;
    /// Group 0 on, priority drop split from deactivation (`GICC_CTLR.EOImode` = 1).
    /// Returns the INTIDs the distributor refused to enable (none on a GIC-400).
    pub fn init_cpu(&self, ppis: &[u32]) -> Result<(), u32> {
        let mut refused = Ok(());
        for &n in ppis.iter().filter(|&&n| n < 32) {
            self.with_gic(|g| {
                g.set_group(intid(n), InterruptGroup::Group0);
                self.gicd_w8(GICD_IPRIORITYR + n as usize, HOST_PRIORITY);
                if g.enable_interrupt(intid(n), true).is_err() {
                    refused = Err(n);
                }
            });
        }
        self.gicc_w32(GICC_PMR, 0xff);
        self.gicc_w32(GICC_CTLR, GICC_CTLR_ENABLE_GRP0 | GICC_CTLR_EOIMODE);
        refused
    }

    /// Routes SPI `n` to the cores in `cpu_mask` (an [`Self::cpu_mask`] value),
    /// Group 0, [`HOST_PRIORITY`], level or edge, and enables it.
    pub fn enable_spi(&self, n: u32, cpu_mask: u8, edge: bool) -> Result<(), u32> {
        if !(32..1020).contains(&n) {
            return Err(n);
        }
        self.with_gic(|g| {
            g.set_group(intid(n), InterruptGroup::Group0);
            g.set_trigger(intid(n), if edge { Trigger::Edge } else { Trigger::Level });
            self.gicd_w8(GICD_IPRIORITYR + n as usize, HOST_PRIORITY);
            self.gicd_w8(GICD_ITARGETSR + n as usize, cpu_mask);
            g.enable_interrupt(intid(n), true).map_err(|_| n)
        })
    }

    /// Acknowledges the highest-priority pending interrupt (`GICC_IAR`): the raw value
    /// (INTID \[9:0\], for SGIs the source CPU \[12:10\], which [`Self::eoi`] and
    /// [`Self::deactivate`] need back). INTID 1023: none.
    #[inline(never)]
    pub fn ack(&self) -> u32 {
        self.gicc_r32(GICC_IAR)
    }

    /// Priority drop of an acknowledged interrupt (`GICC_EOIR`, the raw IAR value).
    #[inline(never)]
    pub fn eoi(&self, iar: u32) {
        self.gicc_w32(GICC_EOIR, iar)
    }

    /// Deactivates it (`GICC_DIR`, with EOImode = 1).
    #[inline(never)]
    pub fn deactivate(&self, iar: u32) {
        self.gicc_w32(GICC_DIR, iar)
    }

    /// Sends SGI `sgi` (0–15) to the cores in `cpu_mask` (`GICD_SGIR`, target list).
    pub fn send_sgi(&self, sgi: u32, cpu_mask: u8) {
        if sgi < 16 {
            self.with_gic(|g| {
                g.send_sgi(
                    intid(sgi),
                    SgiTarget::List {
                        target_list_filter: SgiTargetListFilter::CPUTargetList,
                        target_list: cpu_mask.into(),
                    },
                )
            });
        }
    }

    /// Sets or clears the pending state of SPI `n` (`GICD_ISPENDR`/`ICPENDR`): an
    /// emulated device's line when the guest owns the distributor (passthrough).
    pub fn set_spi_pending(&self, n: u32, pending: bool) {
        let base = if pending { GICD_ISPENDR } else { GICD_ICPENDR };
        self.gicd_w32(base + 4 * (n as usize / 32 % 32), 1 << (n % 32));
    }
}
