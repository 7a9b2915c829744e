//! An emulated GICv2 distributor (IHI 0048B chapter 4) for the virtual-interrupt mode
//! on GICv2 boards: the guest programs it through MMIO exits, the host delivers every
//! interrupt through `arm_vcpu`'s list registers — `inject_interrupt`, or for SGIs
//! `inject_sgi` with the source CPU the distributor recorded. What Linux's
//! `irq-gic` and U-Boot use: `GICD_CTLR`, `TYPER`, `IIDR`, `IGROUPR`,
//! `ISENABLER/ICENABLER`, `ISPENDR/ICPENDR`, `ISACTIVER/ICACTIVER`, `IPRIORITYR`,
//! `ITARGETSR`, `ICFGR`, `SGIR`, `CPENDSGIR/SPENDSGIR` and the ID registers; one
//! Security state (no Security Extensions: `TYPER.SecurityExtn` = 0), at most 8 vCPUs.
//! Registers of SGIs and PPIs (INTIDs 0–31) are banked per vCPU.
//!
//! Pure logic (no MMIO, no `arm_vcpu` calls): the host tests build it into xtask's
//! tests (`xtask/src/main.rs`, module `vgicd_v2`), with [`fdt_node`], the device-tree
//! node a guest's GICv2 driver binds.
//!
//! The active state lives in the list registers while the guest handles an interrupt;
//! `ISACTIVER` here reports what the guest set, which is what Linux reads back after
//! its own writes (it clears all at init).

use arm_vcpu::vgic::v2::{decode_sgir, MAX_CPUS};
use arm_vcpu::{IrqStates, VirtualInterrupt};

/// INTIDs 0..NR_IRQS: SGIs, PPIs and 32 SPIs (QEMU virt's devices use SPIs 0..31).
pub const NR_IRQS: usize = 64;
const NR_SPIS: usize = NR_IRQS - 32;
/// The distributor frame's size.
pub const GICD_SIZE: u64 = 0x1000;

/// `GICD_CTLR`: EnableGrp0 \[0\], EnableGrp1 \[1\] (GICv2 without Security Extensions).
const CTLR_GRP0: u32 = 1 << 0;
const CTLR_GRP1: u32 = 1 << 1;
/// GIC-400's `GICD_IIDR` (Arm, product 0x02, revision 1).
pub const IIDR: u32 = 0x0200_143b;

/// Per-interrupt state the guest programs.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
struct Irq {
    enabled: bool,
    /// Raised and not yet handed to a list register (undeliverable now: disabled,
    /// its group disabled, or an SPI without a target).
    held: bool,
    active: bool,
    priority: u8,
    group1: bool,
    /// `ICFGR`: edge-triggered.
    edge: bool,
}

/// A delivery the host makes: `inject_sgi(vi, source)` when `source_cpu` is set
/// (SGIs), `inject_interrupt(vi)` otherwise, into vCPU `vcpu`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub vcpu: usize,
    pub vi: VirtualInterrupt,
    pub source_cpu: Option<u8>,
}

/// Why a distributor cannot be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// A GICv2 has at most 8 CPU interfaces.
    TooManyVcpus,
    /// No vCPU.
    NoVcpu,
}

/// The emulated GICv2 distributor of one VM.
#[derive(Clone, Debug)]
pub struct VGicV2 {
    ctlr: u32,
    /// SGIs and PPIs, per vCPU.
    private: [[Irq; 32]; MAX_CPUS],
    spis: [Irq; NR_SPIS],
    /// `ITARGETSR` of each SPI: bit n = CPU interface (vCPU) n.
    targets: [u8; NR_SPIS],
    /// Per target vCPU and SGI: the sources whose SGI is held (`SPENDSGIR` bits).
    sgi_sources: [[u8; 16]; MAX_CPUS],
    vcpus: usize,
}

impl VGicV2 {
    /// A distributor for `vcpus` vCPUs (1–8), in its reset state: disabled, every
    /// interrupt disabled, Group 0, priority 0, SGIs edge-triggered.
    pub fn new(vcpus: usize) -> Result<Self, Error> {
        if vcpus == 0 {
            return Err(Error::NoVcpu);
        }
        if vcpus > MAX_CPUS {
            return Err(Error::TooManyVcpus);
        }
        let mut private = [[Irq::default(); 32]; MAX_CPUS];
        for bank in &mut private {
            for sgi in &mut bank[..16] {
                sgi.edge = true;
            }
        }
        Ok(Self {
            ctlr: 0,
            private,
            spis: [Irq::default(); NR_SPIS],
            targets: [0; NR_SPIS],
            sgi_sources: [[0; 16]; MAX_CPUS],
            vcpus,
        })
    }

    fn all_cpus(&self) -> u8 {
        ((1u32 << self.vcpus) - 1) as u8
    }

    fn irq(&self, vcpu: usize, intid: u32) -> Option<&Irq> {
        match intid as usize {
            i @ 0..=31 => self.private.get(vcpu).map(|b| &b[i]),
            i @ 32..NR_IRQS => self.spis.get(i - 32),
            _ => None,
        }
    }

    fn irq_mut(&mut self, vcpu: usize, intid: u32) -> Option<&mut Irq> {
        match intid as usize {
            i @ 0..=31 => self.private.get_mut(vcpu).map(|b| &mut b[i]),
            i @ 32..NR_IRQS => self.spis.get_mut(i - 32),
            _ => None,
        }
    }

    fn group_enabled(&self, group1: bool) -> bool {
        self.ctlr & if group1 { CTLR_GRP1 } else { CTLR_GRP0 } != 0
    }

    /// The vCPU an SPI goes to: the lowest-numbered of its `ITARGETSR` targets (one
    /// delivery, as KVM does: a list register makes it pending on one vCPU only).
    pub fn spi_target(&self, intid: u32) -> Option<usize> {
        let t = *self.targets.get((intid as usize).checked_sub(32)?)? & self.all_cpus();
        (t != 0).then(|| t.trailing_zeros() as usize)
    }

    fn delivery(
        &self,
        vcpu: usize,
        intid: u32,
        irq: &Irq,
        hw: Option<u32>,
        src: Option<u8>,
    ) -> Delivery {
        let vi = VirtualInterrupt::new(intid)
            .with_priority(irq.priority)
            .with_group1(irq.group1);
        Delivery {
            vcpu,
            vi: match hw {
                Some(p) => vi.with_hw_intid(p),
                None => vi,
            },
            source_cpu: src,
        }
    }

    /// A device or a timer raises PPI/SPI `intid` (for `vcpu`: ignored for SPIs, whose
    /// target decides). Returns the injection to make now, or `None` when it is held
    /// (disabled, group disabled, no target) or unknown; `hw_intid` links it to a
    /// physical interrupt. SGIs come from [`Self::write`] (`SGIR`, `SPENDSGIR`).
    pub fn raise(&mut self, vcpu: usize, intid: u32, hw_intid: Option<u32>) -> Option<Delivery> {
        if intid < 16 {
            return None;
        }
        let target = if intid >= 32 {
            self.spi_target(intid)
        } else {
            Some(vcpu)
        };
        let grp = self.irq(vcpu, intid).map(|i| self.group_enabled(i.group1));
        let irq = self.irq_mut(target.unwrap_or(vcpu), intid)?;
        match (target, grp) {
            (Some(t), Some(true)) if irq.enabled => {
                irq.held = false;
                let irq = *irq;
                Some(self.delivery(t, intid, &irq, hw_intid, None))
            }
            _ => {
                irq.held = true;
                None
            }
        }
    }

    /// An SGI from `source` to `target`: delivered, or held while it cannot be.
    fn raise_sgi(&mut self, target: usize, sgi: u32, source: u8, out: &mut dyn FnMut(Delivery)) {
        let Some(irq) = self.irq(target, sgi).copied() else {
            return;
        };
        if irq.enabled && self.group_enabled(irq.group1) {
            out(self.delivery(target, sgi, &irq, None, Some(source)));
        } else if let Some(s) = self
            .sgi_sources
            .get_mut(target)
            .and_then(|t| t.get_mut(sgi as usize))
        {
            *s |= 1 << source;
        }
    }

    /// Hands out what became deliverable (after an enable, a group enable, a new
    /// target).
    fn release(&mut self, out: &mut dyn FnMut(Delivery)) {
        for v in 0..self.vcpus {
            for sgi in 0..16u32 {
                let irq = self.private[v][sgi as usize];
                let sources = self.sgi_sources[v][sgi as usize];
                if sources != 0 && irq.enabled && self.group_enabled(irq.group1) {
                    self.sgi_sources[v][sgi as usize] = 0;
                    for s in 0..MAX_CPUS as u8 {
                        if sources & (1 << s) != 0 {
                            out(self.delivery(v, sgi, &irq, None, Some(s)));
                        }
                    }
                }
            }
            for i in 16..32u32 {
                let irq = self.private[v][i as usize];
                if irq.held && irq.enabled && self.group_enabled(irq.group1) {
                    self.private[v][i as usize].held = false;
                    out(self.delivery(v, i, &irq, None, None));
                }
            }
        }
        for s in 0..NR_SPIS {
            let irq = self.spis[s];
            let intid = s as u32 + 32;
            if let (true, true, true, Some(t)) = (
                irq.held,
                irq.enabled,
                self.group_enabled(irq.group1),
                self.spi_target(intid),
            ) {
                self.spis[s].held = false;
                out(self.delivery(t, intid, &irq, None, None));
            }
        }
    }

    /// A bitmap register of INTIDs `first..first + 32` for `vcpu`.
    fn bits(&self, vcpu: usize, first: u32, f: impl Fn(u32, &Irq) -> bool) -> u32 {
        (0..32).fold(0, |v, b| match self.irq(vcpu, first + b) {
            Some(i) if f(first + b, i) => v | 1 << b,
            _ => v,
        })
    }

    fn for_bits(&mut self, vcpu: usize, first: u32, val: u32, f: impl Fn(u32, &mut Irq)) {
        for b in 0..32 {
            if val & (1 << b) != 0 {
                if let Some(i) = self.irq_mut(vcpu, first + b) {
                    f(first + b, i);
                }
            }
        }
    }

    /// A guest read by vCPU `vcpu` of `width` bytes (1, 2, 4) at offset `off`, without
    /// a vCPU's interface state (the host tests' reads, xtask/src/vgicd_v2_tests.rs).
    #[cfg(test)]
    pub fn read(&self, vcpu: usize, off: u64, width: usize) -> u64 {
        self.read_live(vcpu, off, width, &|_| IrqStates::default())
    }

    /// [`Self::read`], with `ISPENDR`/`ICPENDR` and `ISACTIVER`/`ICACTIVER` also
    /// reporting what `live` (the reading vCPU's `Aarch64VCpu::interrupt_states`) says
    /// of its virtual CPU interface: pending or active in a list register, or queued.
    pub fn read_live(
        &self,
        vcpu: usize,
        off: u64,
        width: usize,
        live: &dyn Fn(u32) -> IrqStates,
    ) -> u64 {
        let vcpu = vcpu.min(self.vcpus - 1);
        let word = |n: u64| ((off - n) / 4) as u32 * 32;
        let v: u32 = match off {
            0x000 => self.ctlr,
            // TYPER: ITLinesNumber [4:0], CPUNumber [7:5], SecurityExtn [10] = 0.
            0x004 => (NR_IRQS as u32 / 32 - 1) | ((self.vcpus as u32 - 1) << 5),
            0x008 => IIDR,
            0x080..=0x0ff => self.bits(vcpu, word(0x080), |_, i| i.group1),
            0x100..=0x17f => self.bits(vcpu, word(0x100), |_, i| i.enabled),
            0x180..=0x1ff => self.bits(vcpu, word(0x180), |_, i| i.enabled),
            0x200..=0x2ff => {
                let first = word(if off < 0x280 { 0x200 } else { 0x280 });
                let sgis = &self.sgi_sources[vcpu];
                self.bits(vcpu, first, |n, i| {
                    if n < 16 {
                        sgis[n as usize] != 0
                    } else {
                        i.held
                    }
                }) | live(first).pending
            }
            0x300..=0x37f => {
                self.bits(vcpu, word(0x300), |_, i| i.active) | live(word(0x300)).active
            }
            0x380..=0x3ff => {
                self.bits(vcpu, word(0x380), |_, i| i.active) | live(word(0x380)).active
            }
            0x400..=0x7fb => {
                return self.bytes(off - 0x400, width, |n| {
                    self.irq(vcpu, n).map_or(0, |i| i.priority)
                })
            }
            0x800..=0xbfb => {
                return self.bytes(off - 0x800, width, |n| match n {
                    // ITARGETSR0-7 read as the reading CPU interface's own bit.
                    0..=31 => 1 << vcpu,
                    _ => self.targets.get(n as usize - 32).copied().unwrap_or(0),
                });
            }
            0xc00..=0xcff => {
                let first = ((off - 0xc00) / 4) as u32 * 16;
                (0..16).fold(0, |v, k| match self.irq(vcpu, first + k) {
                    Some(i) if i.edge => v | 2 << (2 * k),
                    _ => v,
                })
            }
            0xf10..=0xf2f => {
                let base = if off < 0xf20 { 0xf10 } else { 0xf20 };
                return self.bytes(off - base, width, |n| {
                    self.sgi_sources[vcpu].get(n as usize).copied().unwrap_or(0)
                });
            }
            // PIDR2: ArchRev 2; CIDR0-3.
            0xfe8 => 0x2b,
            0xff0 => 0x0d,
            0xff4 => 0xf0,
            0xff8 => 0x05,
            0xffc => 0xb1,
            _ => 0,
        };
        v as u64
    }

    /// Byte-accessible registers: `width` bytes from byte `first` of the array `f`.
    fn bytes(&self, first: u64, width: usize, f: impl Fn(u32) -> u8) -> u64 {
        (0..width.min(4) as u32).fold(0, |v, k| v | (f(first as u32 + k) as u64) << (8 * k))
    }

    /// A guest write by vCPU `vcpu`; `out` receives the interrupts to inject now.
    pub fn write(
        &mut self,
        vcpu: usize,
        off: u64,
        width: usize,
        val: u64,
        out: &mut dyn FnMut(Delivery),
    ) {
        let vcpu = vcpu.min(self.vcpus - 1);
        let v = val as u32;
        let word = |n: u64| ((off - n) / 4) as u32 * 32;
        match off {
            0x000 => {
                self.ctlr = v & (CTLR_GRP0 | CTLR_GRP1);
                self.release(out);
            }
            0x080..=0x0ff => {
                let first = word(0x080);
                for b in 0..32 {
                    if let Some(i) = self.irq_mut(vcpu, first + b) {
                        i.group1 = v & (1 << b) != 0;
                    }
                }
                self.release(out);
            }
            0x100..=0x17f => {
                self.for_bits(vcpu, word(0x100), v, |_, i| i.enabled = true);
                self.release(out);
            }
            0x180..=0x1ff => self.for_bits(vcpu, word(0x180), v, |_, i| i.enabled = false),
            0x200..=0x27f => {
                // ISPENDR: software-raised PPIs/SPIs; SGI bits are WI (SPENDSGIR).
                let first = word(0x200);
                for b in 0..32 {
                    let n = first + b;
                    if v & (1 << b) != 0 && n >= 16 {
                        if let Some(d) = self.raise(vcpu, n, None) {
                            out(d);
                        }
                    }
                }
            }
            0x280..=0x2ff => self.for_bits(vcpu, word(0x280), v, |n, i| {
                if n >= 16 {
                    i.held = false
                }
            }),
            0x300..=0x37f => self.for_bits(vcpu, word(0x300), v, |_, i| i.active = true),
            0x380..=0x3ff => self.for_bits(vcpu, word(0x380), v, |_, i| i.active = false),
            0x400..=0x7fb => {
                for k in 0..width.min(4) as u32 {
                    let n = (off - 0x400) as u32 + k;
                    if let Some(i) = self.irq_mut(vcpu, n) {
                        i.priority = (val >> (8 * k)) as u8;
                    }
                }
            }
            0x800..=0xbfb => {
                let all = self.all_cpus();
                for k in 0..width.min(4) as u32 {
                    let n = (off - 0x800) as usize + k as usize;
                    // ITARGETSR0-7 are read-only.
                    if let Some(t) = n.checked_sub(32).and_then(|s| self.targets.get_mut(s)) {
                        *t = (val >> (8 * k)) as u8 & all;
                    }
                }
                self.release(out);
            }
            0xc00..=0xcff => {
                let first = ((off - 0xc00) / 4) as u32 * 16;
                for k in 0..16 {
                    let n = first + k;
                    // SGIs are always edge-triggered (ICFGR0 read-only).
                    if n >= 16 {
                        if let Some(i) = self.irq_mut(vcpu, n) {
                            i.edge = (v >> (2 * k)) & 2 != 0;
                        }
                    }
                }
            }
            0xf00 => {
                let r = decode_sgir(v);
                let mask = r.target_mask(vcpu as u8, self.vcpus);
                for t in 0..self.vcpus {
                    if mask & (1 << t) != 0 {
                        self.raise_sgi(t, r.intid as u32, vcpu as u8, out);
                    }
                }
            }
            0xf10..=0xf1f => {
                // CPENDSGIR: clear held SGIs from the sources written.
                for k in 0..width.min(4) {
                    let n = (off - 0xf10) as usize + k;
                    if let Some(s) = self.sgi_sources[vcpu].get_mut(n) {
                        *s &= !((val >> (8 * k)) as u8);
                    }
                }
            }
            0xf20..=0xf2f => {
                // SPENDSGIR: make SGIs pending as if sent by the sources written.
                for k in 0..width.min(4) {
                    let n = (off - 0xf20) as u32 + k as u32;
                    let sources = (val >> (8 * k)) as u8 & self.all_cpus();
                    for s in 0..MAX_CPUS as u8 {
                        if n < 16 && sources & (1 << s) != 0 {
                            self.raise_sgi(vcpu, n, s, out);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// The guest's GICv2 regions for its device tree: (base, size) each.
#[derive(Clone, Copy, Debug)]
pub struct GicV2Regions {
    pub gicd: (u64, u64),
    /// Where the guest's CPU interface is: the host maps GICV here (virtual mode) or
    /// the physical GICC (passthrough). 8 KiB at least (`GICC_DIR` at 0x1000).
    pub gicc: (u64, u64),
    /// The virtualization extension's frames and maintenance PPI (0–15), listed as a
    /// GIC-400 node lists them (Linux's driver then knows them; a guest at EL1 uses
    /// neither), or `None` for the two-region node.
    pub virt: Option<GicV2Virt>,
}

/// GICH, GICV and the maintenance interrupt, as a GICv2 device-tree node lists them.
#[derive(Clone, Copy, Debug)]
pub struct GicV2Virt {
    pub gich: (u64, u64),
    pub gicv: (u64, u64),
    /// PPI number (INTID − 16).
    pub maintenance_ppi: u32,
}

/// Writes the interrupt-controller node a guest's GICv2 driver binds
/// (`arm,cortex-a15-gic`, Linux's `irq-gic` and U-Boot): `#interrupt-cells` 3,
/// `interrupt-controller`, `reg` = GICD, GICC (+ GICH, GICV), the maintenance
/// interrupt as a PPI with the GICv2 binding's CPU mask (bits \[15:8\]) for `cpus`
/// CPUs, level high, and `phandle`.
pub fn fdt_node(
    fdt: &mut vm_fdt::FdtWriter,
    r: &GicV2Regions,
    cpus: usize,
    phandle: u32,
) -> Result<(), vm_fdt::Error> {
    let node = fdt.begin_node(&alloc::format!("intc@{:x}", r.gicd.0))?;
    fdt.property_string("compatible", "arm,cortex-a15-gic")?;
    fdt.property_u32("#interrupt-cells", 3)?;
    fdt.property_null("interrupt-controller")?;
    let mut reg = alloc::vec![r.gicd.0, r.gicd.1, r.gicc.0, r.gicc.1];
    if let Some(v) = r.virt {
        reg.extend([v.gich.0, v.gich.1, v.gicv.0, v.gicv.1]);
        fdt.property_array_u64("reg", &reg)?;
        fdt.property_array_u32("interrupts", &[1, v.maintenance_ppi, ppi_flags(cpus)])?;
    } else {
        fdt.property_array_u64("reg", &reg)?;
    }
    fdt.property_phandle(phandle)?;
    fdt.end_node(node)
}

/// The third cell of a GICv2 PPI specifier: CPU mask \[15:8\] (one bit per CPU, at
/// most 8) | level-high (4).
pub const fn ppi_flags(cpus: usize) -> u32 {
    let mask = if cpus >= 8 { 0xff } else { (1u32 << cpus) - 1 };
    (mask << 8) | 4
}
