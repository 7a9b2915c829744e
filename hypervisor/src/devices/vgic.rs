//! An emulated GICv3 distributor and redistributors for the virtual-interrupt mode:
//! the guest programs them through MMIO exits, and the host delivers every interrupt
//! through `arm_vcpu`'s list registers (`inject_interrupt`). Implements what Linux's
//! `irq-gic-v3` driver uses: no LPIs/ITS, no extended ranges, one security state
//! (GICD_CTLR.DS = 1), affinity routing always on.

use arm_vcpu::{IrqStates, VirtualInterrupt};

/// The reading vCPU's own view of the pending and active state of INTIDs
/// `first..first + 32` in its virtual CPU interface (`Aarch64VCpu::interrupt_states`):
/// what the list registers and the crate's queue hold, which the emulated
/// `ISPENDR`/`ISACTIVER` report beside the state kept here.
pub type Live<'a> = &'a dyn Fn(u32) -> IrqStates;

/// No live state (tests, or another vCPU's redistributor).
pub fn no_live(_: u32) -> IrqStates {
    IrqStates::default()
}

/// Distributor and redistributor frames (QEMU virt's addresses).
pub const GICD_BASE: u64 = 0x0800_0000;
pub const GICD_SIZE: u64 = 0x1_0000;
pub const GICR_BASE: u64 = 0x080a_0000;
/// RD_base + SGI_base of one CPU.
pub const GICR_STRIDE: u64 = 0x2_0000;
/// INTIDs 0..NR_IRQS (SGIs, PPIs and 32 SPIs: QEMU virt's devices use SPIs 0..31).
pub const NR_IRQS: usize = 64;
const NR_SPIS: usize = NR_IRQS - 32;
pub const MAX_VCPUS: usize = crate::vm::config::MAX_VCPUS;
/// "No redistributor": distributor accesses to SGI/PPI state read as zero.
const NO_VCPU: usize = usize::MAX;

/// GICD_CTLR bits (DS = 1): EnableGrp0 [0], EnableGrp1 [1], ARE [4], DS [6].
const CTLR_GRP1: u32 = 1 << 1;
const CTLR_DS: u32 = 1 << 6;
const CTLR_ARE: u32 = 1 << 4;

/// Per-interrupt state the guest programs.
#[derive(Clone, Copy, Default)]
struct Irq {
    enabled: bool,
    /// Raised while disabled: delivered when it gets enabled.
    held: bool,
    priority: u8,
    group1: bool,
    /// ICFGR: edge-triggered.
    edge: bool,
}

/// One vCPU's redistributor.
#[derive(Clone, Copy)]
struct Redist {
    /// SGIs and PPIs.
    irqs: [Irq; 32],
    /// GICR_WAKER.ProcessorSleep.
    asleep: bool,
}

impl Default for Redist {
    fn default() -> Self {
        Self {
            irqs: [Irq::default(); 32],
            asleep: true,
        }
    }
}

/// The emulated interrupt controller of one VM.
pub struct VGic {
    ctlr: u32,
    spis: [Irq; NR_SPIS],
    /// GICD_IROUTER<n>: target affinity (IRM ignored: no 1-of-N).
    route: [u64; NR_SPIS],
    redist: [Redist; MAX_VCPUS],
    vcpus: usize,
}

/// A delivery the host must make: inject `vi` into vCPU `vcpu` (with the SGI's
/// source CPU on a GICv2: the one type both emulated distributors hand out).
pub use crate::vgicd_v2::Delivery;

impl VGic {
    pub fn new(vcpus: usize) -> Self {
        Self {
            ctlr: CTLR_DS | CTLR_ARE,
            spis: [Irq::default(); NR_SPIS],
            route: [0; NR_SPIS],
            redist: [Redist::default(); MAX_VCPUS],
            vcpus: vcpus.min(MAX_VCPUS),
        }
    }

    fn irq(&mut self, vcpu: usize, intid: u32) -> Option<&mut Irq> {
        match intid as usize {
            i @ 0..=31 => self.redist.get_mut(vcpu).map(|r| &mut r.irqs[i]),
            i @ 32..NR_IRQS => Some(&mut self.spis[i - 32]),
            _ => None,
        }
    }

    /// Whether SGI/PPI `intid` of `vcpu` is configured as Group 1 (GICR_IGROUPR0).
    pub fn is_group1(&self, vcpu: usize, intid: u32) -> bool {
        self.redist
            .get(vcpu)
            .and_then(|r| r.irqs.get(intid as usize))
            .is_some_and(|i| i.group1)
    }

    /// The vCPU an SPI is routed to (by affinity; vCPU i has Aff0 = i).
    pub fn spi_target(&self, intid: u32) -> usize {
        let r = self.route[(intid as usize - 32) % NR_SPIS];
        ((r & 0xff) as usize).min(self.vcpus - 1)
    }

    /// A device or the timer raises `intid` for `vcpu` (ignored for SPIs: the route
    /// decides). Returns the injection to make now, or `None` if it is held (disabled)
    /// or unknown. `hw_intid` links it to a physical interrupt.
    pub fn raise(&mut self, vcpu: usize, intid: u32, hw_intid: Option<u32>) -> Option<Delivery> {
        let vcpu = if intid >= 32 {
            self.spi_target(intid)
        } else {
            vcpu
        };
        let grp1 = self.ctlr & CTLR_GRP1 != 0;
        let irq = self.irq(vcpu, intid)?;
        if !(irq.enabled && grp1) {
            irq.held = true;
            return None;
        }
        irq.held = false;
        let mut vi = VirtualInterrupt::new(intid).with_priority(irq.priority);
        vi.hw_intid = hw_intid;
        Some(Delivery {
            vcpu,
            vi,
            source_cpu: None,
        })
    }

    /// Held interrupts that became deliverable (after an enable).
    fn release(&mut self, out: &mut dyn FnMut(Delivery)) {
        if self.ctlr & CTLR_GRP1 == 0 {
            return;
        }
        for v in 0..self.vcpus {
            for i in 0..32u32 {
                let irq = &mut self.redist[v].irqs[i as usize];
                if irq.enabled && irq.held {
                    irq.held = false;
                    out(Delivery {
                        vcpu: v,
                        vi: VirtualInterrupt::new(i).with_priority(irq.priority),
                        source_cpu: None,
                    });
                }
            }
        }
        for s in 0..NR_SPIS {
            let irq = &mut self.spis[s];
            if irq.enabled && irq.held {
                irq.held = false;
                let intid = s as u32 + 32;
                let vcpu = ((self.route[s] & 0xff) as usize).min(self.vcpus - 1);
                out(Delivery {
                    vcpu,
                    vi: VirtualInterrupt::new(intid).with_priority(irq.priority),
                    source_cpu: None,
                });
            }
        }
    }

    /// Reads a bitmap register covering INTIDs `first..first+32` (enable, group, ...).
    fn bits(&mut self, vcpu: usize, first: u32, f: impl Fn(&Irq) -> bool) -> u32 {
        let mut v = 0;
        for b in 0..32 {
            if let Some(i) = self.irq(vcpu, first + b) {
                if f(i) {
                    v |= 1 << b;
                }
            }
        }
        v
    }

    fn set_bits(&mut self, vcpu: usize, first: u32, val: u32, f: impl Fn(&mut Irq)) {
        for b in 0..32 {
            if val & (1 << b) != 0 {
                if let Some(i) = self.irq(vcpu, first + b) {
                    f(i);
                }
            }
        }
    }

    /// Register blocks common to GICD (SPIs, `first` ≥ 32) and the SGI frame. Pending
    /// (`ISPENDR`/`ICPENDR`): raised while disabled (held here) or pending in the
    /// reading vCPU's interface (`live`); active (`ISACTIVER`/`ICACTIVER`): active
    /// there. (An SPI delivered to another vCPU is in that vCPU's list registers, which
    /// only its own core can read: not reported.)
    fn common_read(&mut self, vcpu: usize, off: u64, first: u32, live: Live) -> Option<u64> {
        let n = (off & 0x7f) as u32 / 4 * 32 + first;
        Some(match off {
            0x080..=0x0ff => self.bits(vcpu, n, |i| i.group1) as u64,
            0x100..=0x1ff => self.bits(vcpu, n, |i| i.enabled) as u64,
            0x200..=0x2ff => (self.bits(vcpu, n, |i| i.held) | live(n).pending) as u64,
            0x300..=0x3ff => live(n).active as u64,
            0xc00..=0xcff => {
                let base = ((off - 0xc00) / 4) as u32 * 16 + first;
                let mut v = 0u64;
                for k in 0..16 {
                    if self.irq(vcpu, base + k).is_some_and(|i| i.edge) {
                        v |= 2 << (2 * k);
                    }
                }
                v
            }
            _ => return None,
        })
    }

    fn common_write(
        &mut self,
        vcpu: usize,
        off: u64,
        val: u32,
        first: u32,
        out: &mut dyn FnMut(Delivery),
    ) -> bool {
        let n = (off & 0x7f) as u32 / 4 * 32 + first;
        match off {
            0x080..=0x0ff => {
                for b in 0..32 {
                    if let Some(i) = self.irq(vcpu, n + b) {
                        i.group1 = val & (1 << b) != 0;
                    }
                }
            }
            0x100..=0x17f => {
                self.set_bits(vcpu, n, val, |i| i.enabled = true);
                self.release(out);
            }
            0x180..=0x1ff => self.set_bits(vcpu, n, val, |i| i.enabled = false),
            0x200..=0x27f => {
                // ISPENDR: a software-raised interrupt.
                for b in 0..32 {
                    if val & (1 << b) != 0 {
                        if let Some(d) = self.raise(vcpu, n + b, None) {
                            out(d);
                        }
                    }
                }
            }
            0x280..=0x2ff => self.set_bits(vcpu, n, val, |i| i.held = false),
            0x300..=0x3ff => {}
            0xc00..=0xcff => {
                let base = ((off - 0xc00) / 4) as u32 * 16 + first;
                for k in 0..16 {
                    if let Some(i) = self.irq(vcpu, base + k) {
                        i.edge = (val >> (2 * k)) & 2 != 0;
                    }
                }
            }
            _ => return false,
        }
        true
    }

    fn prio_read(&mut self, vcpu: usize, first: u32, off: u64, width: usize) -> u64 {
        let mut v = 0u64;
        for k in 0..width {
            let p = self
                .irq(vcpu, first + off as u32 + k as u32)
                .map_or(0, |i| i.priority);
            v |= (p as u64) << (8 * k);
        }
        v
    }

    fn prio_write(&mut self, vcpu: usize, first: u32, off: u64, width: usize, val: u64) {
        for k in 0..width {
            if let Some(i) = self.irq(vcpu, first + off as u32 + k as u32) {
                i.priority = (val >> (8 * k)) as u8;
            }
        }
    }

    /// A guest read of the distributor at offset `off` (`live`: the reading vCPU's
    /// interface, see [`Live`]).
    pub fn gicd_read(&mut self, off: u64, width: usize, live: Live) -> u64 {
        match off {
            0x0000 => self.ctlr as u64,
            // TYPER: ITLinesNumber = 1 (64 INTIDs), IDbits = 15 (16-bit INTIDs), No1N.
            0x0004 => (1 << 25) | (15 << 19) | ((NR_IRQS as u64 / 32) - 1),
            0x0008 => 0x0300_043b, // IIDR: Arm, GICv3
            0x000c..=0x007f => 0,
            0x0400..=0x07ff if off >= 0x420 => self.prio_read(0, 32, off - 0x420, width),
            0x6100..=0x7fff => {
                let n = ((off - 0x6100) / 8) as usize;
                let r = self.route.get(n).copied().unwrap_or(0);
                if off % 8 == 4 {
                    r >> 32
                } else {
                    r
                }
            }
            0xffe8 => 0x3b, // PIDR2: ArchRev 3
            // INTIDs below 32 are the redistributors' (RAZ/WI here with ARE set).
            o => self.common_read(NO_VCPU, o, 0, live).unwrap_or(0),
        }
    }

    /// A guest write to the distributor; `out` receives interrupts that became
    /// deliverable.
    pub fn gicd_write(&mut self, off: u64, width: usize, val: u64, out: &mut dyn FnMut(Delivery)) {
        match off {
            0x0000 => {
                self.ctlr = (val as u32 & (CTLR_GRP1 | 1)) | CTLR_DS | CTLR_ARE;
                self.release(out);
            }
            0x0400..=0x07ff if off >= 0x420 => self.prio_write(0, 32, off - 0x420, width, val),
            0x6100..=0x7fff => {
                let n = ((off - 0x6100) / 8) as usize;
                if let Some(r) = self.route.get_mut(n) {
                    *r = if width == 8 {
                        val
                    } else if off % 8 == 4 {
                        (*r & 0xffff_ffff) | (val << 32)
                    } else {
                        (*r & !0xffff_ffff) | (val & 0xffff_ffff)
                    };
                }
            }
            o => {
                self.common_write(NO_VCPU, o, val as u32, 0, out);
            }
        }
    }

    /// A guest access to the redistributor region at offset `off` from its base:
    /// (vCPU, offset in that vCPU's 128 KiB).
    pub fn gicr_locate(&self, off: u64) -> Option<(usize, u64)> {
        let v = (off / GICR_STRIDE) as usize;
        (v < self.vcpus).then_some((v, off % GICR_STRIDE))
    }

    /// A guest read of vCPU `vcpu`'s redistributor (`live`: that vCPU's interface if
    /// it is the reader's own, else [`no_live`]).
    pub fn gicr_read(&mut self, vcpu: usize, off: u64, width: usize, live: Live) -> u64 {
        match off {
            0x0000 => 0,           // CTLR
            0x0004 => 0x0300_043b, // IIDR
            0x0008 | 0x000c => {
                // TYPER: Affinity (Aff0 = vCPU) [63:32], Processor_Number [23:8], Last [4].
                let last = if vcpu + 1 == self.vcpus { 1 << 4 } else { 0 };
                let t = ((vcpu as u64) << 32) | ((vcpu as u64) << 8) | last;
                // The upper word when read on its own.
                if off == 0x000c {
                    t >> 32
                } else {
                    t
                }
            }
            // WAKER: ProcessorSleep [1], ChildrenAsleep [2] follows it.
            0x0014 if self.redist[vcpu].asleep => 0b110,
            0x0014 => 0,
            0xffe8 => 0x3b,
            0x1_0400..=0x1_041f => self.prio_read(vcpu, 0, off - 0x1_0400, width),
            o if o >= 0x1_0000 => self.common_read(vcpu, o - 0x1_0000, 0, live).unwrap_or(0),
            _ => 0,
        }
    }

    pub fn gicr_write(
        &mut self,
        vcpu: usize,
        off: u64,
        width: usize,
        val: u64,
        out: &mut dyn FnMut(Delivery),
    ) {
        match off {
            0x0014 => self.redist[vcpu].asleep = val & 0b10 != 0,
            0x1_0400..=0x1_041f => self.prio_write(vcpu, 0, off - 0x1_0400, width, val),
            o if o >= 0x1_0000 => {
                self.common_write(vcpu, o - 0x1_0000, val as u32, 0, out);
            }
            _ => {}
        }
    }
}
