//! Virtual interrupts through a virtual CPU interface: the GICv3 system registers
//! (`ICH_*_EL2`, [`v3`]) or the GICv2 GICH frame (MMIO, [`v2`]), behind one
//! list-register abstraction ([`list_registers`]): placement of an interrupt into the
//! list registers or the overflow queue, maintenance, the bind/unbind switch; and the
//! decoding of the guest's SGI requests (`ICC_SGI*R_EL1` here, `GICD_SGIR` in [`v2`]).
//! Pure; `hw/` moves the registers.

pub mod list_registers;
pub mod v2;
pub mod v3;

pub use list_registers::{ListEntry, LrFormat, LrState, Placement, QueuedInterrupt};
use list_registers::{ListRegisters, SavedLrs};

/// Most list registers the crate uses: 16, all GICv3's `ICH_VTR_EL2` allows. A GICv2
/// `GICH_VTR` may describe up to 64 (GIC-400 has 4): the crate clears all of them when
/// the core is enabled and uses the first 16. (Keeping the vCPU state small keeps the
/// exit paths' field offsets short.)
pub const MAX_LRS: usize = 16;
/// Interrupts waiting for a free list register, per vCPU.
pub const QUEUE_LEN: usize = 64;

/// `ICH_LR<n>_EL2` fields (DDI 0487, "`ICH_LR<n>_EL2`"): vINTID \[31:0\], pINTID \[44:32\],
/// Priority \[55:48\], Group \[60\], HW \[61\], State \[63:62\].
pub mod lr {
    /// State: pending.
    pub const PENDING: u64 = 0b01 << 62;
    /// State: active.
    pub const ACTIVE: u64 = 0b10 << 62;
    /// State mask.
    pub const STATE: u64 = 0b11 << 62;
    /// HW: the virtual interrupt is linked to physical `pINTID`.
    pub const HW: u64 = 1 << 61;
    /// Group 1.
    pub const GROUP1: u64 = 1 << 60;
}

/// `ICH_HCR_EL2` bits used: En \[0\], UIE \[1\] (maintenance interrupt while at most one
/// list register holds an interrupt).
pub mod hcr {
    /// Enable the virtual CPU interface.
    pub const EN: u64 = 1 << 0;
    /// Underflow maintenance interrupt enable.
    pub const UIE: u64 = 1 << 1;
}

/// `ICH_MISR_EL2.U` \[1\]: the underflow condition holds.
pub const MISR_U: u64 = 1 << 1;

/// One virtual interrupt to deliver.
///
/// ```
/// use arm_vcpu::VirtualInterrupt;
///
/// // The virtual timer's PPI, linked to the physical one so the guest's EOI
/// // deactivates it.
/// let vi = VirtualInterrupt::new(27).with_priority(0x80).with_hw_intid(27);
/// assert_eq!((vi.intid, vi.priority, vi.group1, vi.hw_intid), (27, 0x80, true, Some(27)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VirtualInterrupt {
    /// The INTID the guest sees (SGI 0–15, PPI 16–31, SPI 32–1019, extended PPI/SPI,
    /// LPI ≥ 8192), not truncated.
    pub intid: u32,
    /// Priority (higher values are lower priority; the implemented bits are the top ones).
    pub priority: u8,
    /// Group 1 (otherwise group 0, which the guest sees as FIQ).
    pub group1: bool,
    /// Physical INTID this one is linked to (HW = 1): the guest's deactivation
    /// deactivates it. Only SPIs and PPIs (16–1019) can be linked.
    pub hw_intid: Option<u32>,
}

impl VirtualInterrupt {
    /// Priority [`VirtualInterrupt::new`] gives: 0xa0, the default priority Linux's
    /// GICv3 driver programs for its interrupts.
    pub const DEFAULT_PRIORITY: u8 = 0xa0;

    /// INTID `intid`, group 1, priority [`Self::DEFAULT_PRIORITY`], not linked to a
    /// physical interrupt.
    #[must_use]
    pub const fn new(intid: u32) -> Self {
        Self {
            intid,
            priority: Self::DEFAULT_PRIORITY,
            group1: true,
            hw_intid: None,
        }
    }

    /// Sets [`Self::priority`].
    #[must_use]
    pub const fn with_priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }

    /// Sets [`Self::group1`] (`false`: group 0, an FIQ for the guest).
    #[must_use]
    pub const fn with_group1(mut self, group1: bool) -> Self {
        self.group1 = group1;
        self
    }

    /// Links the interrupt to physical INTID `hw_intid` ([`Self::hw_intid`]).
    #[must_use]
    pub const fn with_hw_intid(mut self, hw_intid: u32) -> Self {
        self.hw_intid = Some(hw_intid);
        self
    }
}

/// Why an interrupt cannot be injected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InjectIrqError {
    /// A special or reserved INTID (1020–1055, 1120–4095, 5120–8191), or above the
    /// implemented INTID size.
    InvalidIntid,
    /// The physical INTID of a hardware link is not a PPI or SPI.
    InvalidHwIntid,
    /// All list registers are in use and the overflow queue is full.
    QueueFull,
    /// The vCPU has no usable virtual CPU interface: its interrupts are passed through
    /// (`passthrough_interrupt`), or the core it was bound to has no list registers
    /// (neither GICv3 system registers nor a GICv2 GICH frame). The interrupt could
    /// never be delivered, so it is not queued.
    NoVirtualInterface,
    /// A GICv2 SGI source CPU of 8 or more, or a source given for an
    /// interrupt that is not an SGI (or a GICv3 list register asked to carry one).
    InvalidSourceCpu,
}

impl core::fmt::Display for InjectIrqError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::InvalidIntid => "not an INTID a virtual interrupt can have",
            Self::InvalidHwIntid => "a hardware link must name a physical PPI or SPI",
            Self::QueueFull => "the list registers and the overflow queue are full",
            Self::NoVirtualInterface => "the vCPU has no usable virtual CPU interface",
            Self::InvalidSourceCpu => "not an SGI source CPU this interface can carry",
        })
    }
}

impl core::error::Error for InjectIrqError {}

/// What `ICH_VTR_EL2` says about the virtual CPU interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VtrInfo {
    /// Number of list registers (ListRegs \[4:0\] + 1).
    pub list_regs: usize,
    /// Virtual priority bits (PRIbits \[31:29\] + 1).
    pub pri_bits: u32,
    /// Virtual preemption bits (PREbits \[28:26\] + 1): they size the active-priority
    /// registers ([`Self::ap_regs`]).
    pub pre_bits: u32,
    /// Virtual INTID bits: 16 or 24 (IDbits \[25:23\]).
    pub id_bits: u32,
}

impl VtrInfo {
    /// No virtual CPU interface (no GICv3, or not probed yet): zero list registers.
    pub const NONE: Self = Self {
        list_regs: 0,
        pri_bits: 0,
        pre_bits: 0,
        id_bits: 0,
    };

    /// Decodes `ICH_VTR_EL2` (at most 16 list registers). GICv2's `GICH_VTR`:
    /// [`v2::decode_vtr`].
    pub const fn decode(vtr: u64) -> Self {
        let n = (vtr & 0x1f) as usize + 1;
        Self {
            list_regs: if n > 16 { 16 } else { n },
            pri_bits: ((vtr >> 29) & 7) as u32 + 1,
            pre_bits: ((vtr >> 26) & 7) as u32 + 1,
            id_bits: if (vtr >> 23) & 7 == 1 { 24 } else { 16 },
        }
    }

    /// Number of active-priority registers per group (`ICH_AP0R<n>_EL2`,
    /// `ICH_AP1R<n>_EL2`), from the preemption bits (IHI 0069: one bit per preemption
    /// level, 32 levels a register): 1 (5 bits), 2 (6) or 4 (7). Not from PRIbits: a
    /// core may implement more priority than preemption bits, and the registers beyond
    /// these are not implemented (an access faults at EL2).
    pub const fn ap_regs(&self) -> usize {
        match self.pre_bits {
            0..=5 => 1,
            6 => 2,
            _ => 4,
        }
    }

    /// The list-register format of the interface this shape describes: GICv2's
    /// `GICH_VTR` ([`v2::decode_vtr`]) has 10-bit virtual INTIDs, GICv3's
    /// `ICH_VTR_EL2.IDbits` gives 16 or 24.
    pub const fn format(&self) -> LrFormat {
        if self.id_bits == 10 {
            LrFormat::V2
        } else {
            LrFormat::V3
        }
    }

    /// Number of Group 1 active-priority registers: as [`Self::ap_regs`] on GICv3;
    /// none on GICv2 (its one `GICH_APR` is kept as `ICH_AP0R0`).
    pub const fn ap1_regs(&self) -> usize {
        match self.format() {
            LrFormat::V2 => 0,
            LrFormat::V3 => self.ap_regs(),
        }
    }

    /// Number of Group 0 active-priority registers: as [`Self::ap_regs`] on GICv3;
    /// GICv2's one `GICH_APR`.
    pub const fn ap0_regs(&self) -> usize {
        match self.format() {
            LrFormat::V2 => 1,
            LrFormat::V3 => self.ap_regs(),
        }
    }
}

/// Whether `intid` can be a virtual interrupt on an interface with `id_bits`.
pub const fn valid_intid(intid: u32, id_bits: u32) -> bool {
    let in_range = id_bits >= 32 || (intid as u64) < (1u64 << id_bits);
    in_range && matches!(intid, 0..=1019 | 1056..=1119 | 4096..=5119 | 8192..=u32::MAX)
}

/// Encodes a list register for `vi` in the pending state.
pub const fn encode(vi: &VirtualInterrupt) -> u64 {
    let mut v = lr::PENDING | ((vi.priority as u64) << 48) | vi.intid as u64;
    if vi.group1 {
        v |= lr::GROUP1;
    }
    if let Some(p) = vi.hw_intid {
        v |= lr::HW | ((p as u64 & 0x1fff) << 32);
    }
    v
}

/// The interrupt a queued entry stands for: a list register value in the pending
/// state (what [`encode`] gives) with a valid vINTID and, if linked, a pINTID that is a
/// PPI or SPI; `None` otherwise.
pub const fn decode_queued(v: u64, id_bits: u32) -> Option<VirtualInterrupt> {
    let known = lr::STATE | lr::HW | lr::GROUP1 | (0xff << 48) | (0x1fff << 32) | 0xffff_ffff;
    if v & lr::STATE != lr::PENDING || v & !known != 0 {
        return None;
    }
    let intid = lr_intid(v);
    if !valid_intid(intid, id_bits) {
        return None;
    }
    let p = ((v >> 32) & 0x1fff) as u32;
    let hw_intid = if v & lr::HW != 0 {
        if p < 16 || p >= 1020 {
            return None;
        }
        Some(p)
    } else if p != 0 {
        return None;
    } else {
        None
    };
    Some(VirtualInterrupt {
        intid,
        priority: (v >> 48) as u8,
        group1: v & lr::GROUP1 != 0,
        hw_intid,
    })
}

/// Encodes a queued interrupt as [`encode`] does, plus a GICv2 SGI's source CPU
/// interface (0–7) in the otherwise-zero pINTID field \[34:32\] (HW = 0 only): a
/// queue entry without a source encodes exactly as [`encode`].
pub const fn encode_queued(q: &QueuedInterrupt) -> u64 {
    let v = encode(&q.vi);
    if q.vi.hw_intid.is_none() && q.vi.intid < 16 {
        v | ((q.source_cpu as u64 & 7) << 32)
    } else {
        v
    }
}

/// The queued interrupt [`encode_queued`] gave (`None` for anything else, as
/// [`decode_queued`]); a source is accepted only on an SGI without HW.
pub const fn decode_queued_entry(v: u64, id_bits: u32) -> Option<QueuedInterrupt> {
    let src = (v >> 32) & 0x1fff;
    let sgi_source = v & lr::HW == 0 && lr_intid(v) < 16 && src <= 7;
    let base = if sgi_source { v & !(0x1fff << 32) } else { v };
    match decode_queued(base, id_bits) {
        Some(vi) => Some(QueuedInterrupt {
            vi,
            source_cpu: if sgi_source { src as u8 } else { 0 },
        }),
        None => None,
    }
}

/// The vINTID of a list register.
pub const fn lr_intid(lr: u64) -> u32 {
    lr as u32
}

/// Puts `vi` into the first free list register of `lrs` (GICv3 encoding; a register
/// is free when its state is invalid), unless it is already pending there. An
/// interrupt that is only active may be made pending again in the same register
/// (active and pending). The generic form is [`list_registers::place`].
pub fn place(lrs: &mut [u64], vi: &VirtualInterrupt) -> Placement {
    let mut s = SavedLrs {
        format: LrFormat::V3,
        lrs,
    };
    let mut empty = s.empty_lrs();
    list_registers::place(&mut s, &mut empty, &QueuedInterrupt::new(*vi))
        .unwrap_or(Placement::NoRoom)
}

/// Interrupts waiting for a list register, in arrival order, without duplicates (the
/// same INTID, and for a GICv2 SGI the same source).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingQueue {
    items: [Option<QueuedInterrupt>; QUEUE_LEN],
    len: usize,
}

impl Default for PendingQueue {
    fn default() -> Self {
        Self {
            items: [None; QUEUE_LEN],
            len: 0,
        }
    }
}

impl PendingQueue {
    /// Number of queued interrupts.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is queued.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues `vi`; a duplicate INTID is dropped (already pending). Fails when full.
    pub fn push(&mut self, vi: VirtualInterrupt) -> Result<(), InjectIrqError> {
        self.push_queued(QueuedInterrupt::new(vi))
    }

    /// Queues `q`; a duplicate (same INTID and source) is dropped. Fails when full.
    pub fn push_queued(&mut self, q: QueuedInterrupt) -> Result<(), InjectIrqError> {
        if self
            .queued()
            .any(|e| e.vi.intid == q.vi.intid && e.source_cpu == q.source_cpu)
        {
            return Ok(());
        }
        let slot = self
            .items
            .get_mut(self.len)
            .ok_or(InjectIrqError::QueueFull)?;
        *slot = Some(q);
        self.len += 1;
        Ok(())
    }

    /// Entry `n` (oldest first), if the queue is that long.
    pub fn get(&self, n: usize) -> Option<VirtualInterrupt> {
        self.get_queued(n).map(|q| q.vi)
    }

    /// Entry `n` with its source (oldest first), if the queue is that long.
    pub fn get_queued(&self, n: usize) -> Option<QueuedInterrupt> {
        if n < self.len {
            self.items.get(n).copied().flatten()
        } else {
            None
        }
    }

    /// Drops entry `n` and every later one.
    pub fn truncate(&mut self, n: usize) {
        if n < self.len {
            for slot in &mut self.items[n..self.len] {
                *slot = None;
            }
            self.len = n;
        }
    }

    /// Replaces entry `n` (below the length) or appends (`n` = the length). Fails for
    /// a position past the end, a full queue, or an INTID another entry holds.
    pub fn set(&mut self, n: usize, q: QueuedInterrupt) -> Result<(), InjectIrqError> {
        if n > self.len || n >= QUEUE_LEN {
            return Err(InjectIrqError::QueueFull);
        }
        if self.items[..self.len].iter().enumerate().any(|(i, e)| {
            i != n
                && matches!(e, Some(e) if e.vi.intid == q.vi.intid && e.source_cpu == q.source_cpu)
        }) {
            return Err(InjectIrqError::InvalidIntid);
        }
        self.items[n] = Some(q);
        if n == self.len {
            self.len += 1;
        }
        Ok(())
    }

    /// The queued interrupts, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &VirtualInterrupt> {
        self.queued().map(|q| &q.vi)
    }

    /// The queued interrupts with their sources, oldest first.
    pub fn queued(&self) -> impl Iterator<Item = &QueuedInterrupt> {
        self.items[..self.len].iter().flatten()
    }

    /// Keeps the interrupts for which `keep` is true, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&QueuedInterrupt) -> bool) {
        let mut kept = 0;
        for i in 0..self.len {
            if let Some(q) = self.items[i] {
                if keep(&q) {
                    self.items[kept] = Some(q);
                    kept += 1;
                }
            }
        }
        for slot in &mut self.items[kept..self.len] {
            *slot = None;
        }
        self.len = kept;
    }

    /// Moves queued interrupts into free list registers (GICv3 encoding), oldest
    /// first. Returns the mask of list registers written. The generic form is
    /// [`list_registers::refill`].
    pub fn refill(&mut self, lrs: &mut [u64]) -> u32 {
        let mut s = SavedLrs {
            format: LrFormat::V3,
            lrs,
        };
        list_registers::refill(&mut s, self) as u32
    }
}

/// The state of the virtual CPU interface that belongs to one vCPU, switched at
/// bind/unbind: GICv3 `ICH_LR<n>_EL2`, `ICH_VMCR_EL2`, `ICH_HCR_EL2`,
/// `ICH_AP0R<n>_EL2`, `ICH_AP1R<n>_EL2`; GICv2 `GICH_LR<n>`, `GICH_VMCR`, `GICH_HCR`,
/// `GICH_APR` (in `ap0r[0]`). Raw values in the format of the interface the vCPU last
/// ran on ([`LrFormat`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VgicState {
    /// List registers (only those an empty-register bitmap marks as holding an
    /// interrupt are kept; the others are 0).
    pub lr: [u64; MAX_LRS],
    /// `ICH_VMCR_EL2` / `GICH_VMCR` (the guest's PMR, BPRs, group enables, EOI mode;
    /// the two layouts differ in the priority mask: [`VirtualMachineControl`]).
    pub vmcr: u64,
    /// `ICH_HCR_EL2` / `GICH_HCR`.
    pub hcr: u64,
    /// `ICH_AP0R<n>_EL2`; GICv2: `GICH_APR` in `ap0r[0]`.
    pub ap0r: [u64; 4],
    /// `ICH_AP1R<n>_EL2`.
    pub ap1r: [u64; 4],
}

impl Default for VgicState {
    fn default() -> Self {
        Self {
            lr: [0; MAX_LRS],
            vmcr: 0,
            hcr: 0,
            ap0r: [0; 4],
            ap1r: [0; 4],
        }
    }
}

/// The guest's view of its virtual CPU interface controls, decoded from
/// `ICH_VMCR_EL2` ([`v3::decode_vmcr`]) or `GICH_VMCR` ([`v2::decode_vmcr`]). The
/// fields sit at the same bit positions in both except the priority mask: 8 bits at
/// \[31:24\] (`VPMR`) against 5 bits at \[31:27\] (`VMPriMask`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VirtualMachineControl {
    /// Group 0 enabled (VENG0 / VMGrp0En).
    pub grp0_enable: bool,
    /// Group 1 enabled (VENG1 / VMGrp1En).
    pub grp1_enable: bool,
    /// VAckCtl / VMAckCtl.
    pub ack_ctl: bool,
    /// Group 0 as FIQ (VFIQEn / VMFIQEn).
    pub fiq_enable: bool,
    /// One binary point for both groups (VCBPR / VMCBPR).
    pub common_bpr: bool,
    /// Split priority drop and deactivation (VEOIM / VEM).
    pub eoi_mode: bool,
    /// Group 0 binary point (VBPR0 / VMBP).
    pub bpr0: u8,
    /// Group 1 binary point (VBPR1 / VMABP).
    pub bpr1: u8,
    /// Priority mask, as an 8-bit priority (GICv2 keeps the top 5 bits).
    pub priority_mask: u8,
}

impl VirtualMachineControl {
    /// Decodes a raw VMCR of `format`.
    pub const fn decode(format: LrFormat, raw: u64) -> Self {
        match format {
            LrFormat::V3 => v3::decode_vmcr(raw),
            LrFormat::V2 => v2::decode_vmcr(raw as u32),
        }
    }

    /// Encodes it for `format`.
    pub const fn encode(&self, format: LrFormat) -> u64 {
        match format {
            LrFormat::V3 => v3::encode_vmcr(self),
            LrFormat::V2 => v2::encode_vmcr(self) as u64,
        }
    }
}

/// Which virtual CPU interface a core has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InterfaceKind {
    /// None (or not probed yet): virtual interrupts cannot be delivered here.
    #[default]
    None,
    /// GICv3 system registers (`ICH_*_EL2`).
    V3,
    /// GICv2 virtual interface control frame (GICH, MMIO).
    V2,
}

/// A core's virtual CPU interface, as `Aarch64PerCpu::hardware_enable` found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtualInterface {
    /// Which one.
    pub kind: InterfaceKind,
    /// Its shape (`ICH_VTR_EL2` / `GICH_VTR`); [`VtrInfo::NONE`] without one.
    pub vtr: VtrInfo,
    /// GICv2: the EL2 address of the GICH frame; 0 otherwise.
    pub gich: usize,
    /// The maintenance interrupt's INTID (a PPI; the host enables it at its GIC).
    pub maintenance_intid: u32,
}

/// The maintenance PPI the Server Base System Architecture recommends (INTID 25),
/// which QEMU `virt` uses.
pub const DEFAULT_MAINTENANCE_INTID: u32 = 25;

impl Default for VirtualInterface {
    fn default() -> Self {
        Self::NONE
    }
}

impl VirtualInterface {
    /// No virtual CPU interface.
    pub const NONE: Self = Self {
        kind: InterfaceKind::None,
        vtr: VtrInfo::NONE,
        gich: 0,
        maintenance_intid: DEFAULT_MAINTENANCE_INTID,
    };

    /// A GICv3 interface shaped `vtr` (no interface if it has no list registers).
    pub const fn v3(vtr: VtrInfo, maintenance_intid: u32) -> Self {
        if vtr.list_regs == 0 {
            return Self::NONE;
        }
        Self {
            kind: InterfaceKind::V3,
            vtr,
            gich: 0,
            maintenance_intid,
        }
    }

    /// A GICv2 interface with its GICH frame at `gich`, shaped `vtr`.
    pub const fn v2(gich: usize, vtr: VtrInfo, maintenance_intid: u32) -> Self {
        if vtr.list_regs == 0 {
            return Self::NONE;
        }
        Self {
            kind: InterfaceKind::V2,
            vtr,
            gich,
            maintenance_intid,
        }
    }

    /// The list-register format.
    pub const fn format(&self) -> LrFormat {
        match self.kind {
            InterfaceKind::V2 => LrFormat::V2,
            _ => LrFormat::V3,
        }
    }

    /// Which interface a core uses (pure; `hardware_enable` calls it): a GICv2 GICH
    /// frame if the host named one (its device tree says the GIC is a GICv2, and
    /// `ICC_SRE_EL2` is not touched: on such a CPU it may be UNDEFINED); otherwise the
    /// GICv3 system registers when `ID_AA64PFR0_EL1.GIC` says they exist
    /// (`gicv3_sysregs`) and `ICC_SRE_EL2.SRE` sticks once written with 1
    /// (`sre_sticks`, only called then: a GICv3 in legacy mode keeps it 0, and its
    /// `ICH_*_EL2` registers cannot be used); otherwise none.
    pub fn choose(
        gich: Option<usize>,
        gicv3_sysregs: bool,
        sre_sticks: impl FnOnce() -> bool,
    ) -> InterfaceKind {
        match gich {
            Some(_) => InterfaceKind::V2,
            None if gicv3_sysregs && sre_sticks() => InterfaceKind::V3,
            None => InterfaceKind::None,
        }
    }
}

/// Physical interrupts a vCPU reset ([`crate::Aarch64VCpu::power_on`]) let go of: the
/// `pINTID`s of hardware-linked virtual interrupts (`ICH_LR<n>_EL2.HW` = 1, or queued
/// with a `hw_intid`) that were pending or active. Their physical interrupt stays
/// active at the physical GIC until the guest deactivates the virtual one, which the
/// reset guest never will: the host must deactivate each (e.g. `ICC_DIR_EL1` on the
/// core a PPI belongs to, or `GICD_ICACTIVER`/`GICR_ICACTIVER0`).
#[must_use = "the physical interrupts stay active until the host deactivates them"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReleasedHwInterrupts {
    ids: [u32; MAX_LRS + QUEUE_LEN],
    len: usize,
}

impl Default for ReleasedHwInterrupts {
    fn default() -> Self {
        Self {
            ids: [0; MAX_LRS + QUEUE_LEN],
            len: 0,
        }
    }
}

impl ReleasedHwInterrupts {
    /// Collects the live hardware links of list registers `lrs` (in `format`) and of
    /// `queue`.
    pub fn collect(format: LrFormat, lrs: &[u64], queue: &PendingQueue) -> Self {
        let mut r = Self::default();
        let from_lrs = lrs
            .iter()
            .filter(|&&l| format.state(l) != LrState::Invalid)
            .filter_map(|&l| format.hw_intid(l));
        let from_queue = queue.iter().filter_map(|vi| vi.hw_intid);
        for id in from_lrs.chain(from_queue) {
            if let Some(slot) = r.ids.get_mut(r.len) {
                *slot = id;
                r.len += 1;
            }
        }
        r
    }

    /// The physical INTIDs to deactivate.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.ids[..self.len].iter().copied()
    }

    /// How many there are.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Which vCPUs a guest SGI is for (`ICC_SGI1R_EL1`, `ICC_ASGI1R_EL1`, `ICC_SGI0R_EL1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SgiTargets {
    /// IRM = 0: the vCPUs with affinity Aff3.Aff2.Aff1 and Aff0 = RS * 16 + bit for
    /// each bit set in `target_list`.
    List {
        /// Aff3 \[55:48\].
        aff3: u8,
        /// Aff2 \[39:32\].
        aff2: u8,
        /// Aff1 \[23:16\].
        aff1: u8,
        /// Range selector RS \[47:44\]: Aff0 = RS * 16 + n.
        rs: u8,
        /// TargetList \[15:0\].
        target_list: u16,
    },
    /// IRM = 1: every vCPU of the VM except the sender.
    AllButSelf,
}

impl SgiTargets {
    /// Whether the vCPU with affinity `mpidr` (Aff3..Aff0) is a target, for a sender
    /// with affinity `sender`.
    pub const fn includes(&self, mpidr: u64, sender: u64) -> bool {
        match *self {
            Self::AllButSelf => mpidr != sender,
            Self::List {
                aff3,
                aff2,
                aff1,
                rs,
                target_list,
            } => {
                let aff0 = mpidr & 0xff;
                (mpidr >> 32) & 0xff == aff3 as u64
                    && (mpidr >> 16) & 0xff == aff2 as u64
                    && (mpidr >> 8) & 0xff == aff1 as u64
                    && aff0 / 16 == rs as u64
                    && target_list & (1 << (aff0 % 16)) != 0
            }
        }
    }
}

/// The SGI generation register a guest wrote (op0 3, op1 0, CRn 12, CRm 11).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SgiRegister {
    /// `ICC_SGI1R_EL1` (op2 5): Group 1 SGIs of the current Security state.
    Sgi1r,
    /// `ICC_ASGI1R_EL1` (op2 6): Group 1 SGIs of the Security state that is *not* the
    /// current one (IHI 0069). A VM has a single (Non-secure) Security state — its GIC
    /// behaves as with `GICD_CTLR.DS = 1` — so there is no such Group 1; as IHI 0069's
    /// "Forwarding an SGI to a target PE" says, the write still reaches a target where
    /// the SGI is configured as Group 0: it acts like `ICC_SGI0R_EL1`.
    Asgi1r,
    /// `ICC_SGI0R_EL1` (op2 7): Group 0 SGIs.
    Sgi0r,
}

impl SgiRegister {
    /// From the op2 of a trapped write to op0 3, op1 0, CRn 12, CRm 11.
    pub const fn from_op2(op2: u8) -> Option<Self> {
        match op2 {
            5 => Some(Self::Sgi1r),
            6 => Some(Self::Asgi1r),
            7 => Some(Self::Sgi0r),
            _ => None,
        }
    }

    /// Whether the SGIs it generates in a VM are Group 1 (only `ICC_SGI1R_EL1`).
    pub const fn generates_group1(self) -> bool {
        matches!(self, Self::Sgi1r)
    }
}

/// A decoded SGI generation request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SgiRequest {
    /// SGI number, INTID \[27:24\].
    pub intid: u8,
    /// The targets.
    pub targets: SgiTargets,
    /// The group of the SGIs generated: Group 1 for `ICC_SGI1R_EL1`; Group 0 for
    /// `ICC_SGI0R_EL1` and for `ICC_ASGI1R_EL1` (see [`SgiRegister::Asgi1r`]). A host
    /// with a distributor model delivers the SGI only to targets where it is
    /// configured in this group.
    pub group1: bool,
    /// The register written.
    pub register: SgiRegister,
}

/// Decodes the value written to SGI generation register `register`.
pub const fn decode_sgi(value: u64, register: SgiRegister) -> SgiRequest {
    let targets = if value & (1 << 40) != 0 {
        SgiTargets::AllButSelf
    } else {
        SgiTargets::List {
            aff3: (value >> 48) as u8,
            aff2: (value >> 32) as u8,
            aff1: (value >> 16) as u8,
            rs: ((value >> 44) & 0xf) as u8,
            target_list: value as u16,
        }
    };
    SgiRequest {
        intid: ((value >> 24) & 0xf) as u8,
        targets,
        group1: register.generates_group1(),
        register,
    }
}

/// The virtual CPU interface side of one vCPU: its saved state, its queue, and
/// the interface of the core it last ran on. The hardware is passed in (generic over
/// [`list_registers::VgicRegisters`]), so the host tests run the same code on fakes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct VcpuInterface {
    /// Saved while unbound.
    pub state: VgicState,
    /// Interrupts waiting for a free list register.
    pub queue: PendingQueue,
    /// The interface of the core last bound to ([`VirtualInterface::NONE`] before).
    pub iface: VirtualInterface,
    /// `iface` comes from a bind (before the first one nothing is known).
    pub known: bool,
}

impl VcpuInterface {
    /// Whether this vCPU delivers virtual interrupts through its core's interface.
    #[inline]
    pub fn in_use(&self, passthrough: bool) -> bool {
        !passthrough && self.iface.kind != InterfaceKind::None
    }

    /// The checks of an injection that do not depend on the list registers' contents.
    #[inline]
    pub fn check_inject(
        &self,
        passthrough: bool,
        q: &QueuedInterrupt,
    ) -> Result<(), InjectIrqError> {
        if passthrough || (self.known && self.iface.kind == InterfaceKind::None) {
            return Err(InjectIrqError::NoVirtualInterface);
        }
        // Before the first bind the INTID size is not known: anything a GICv3 could
        // take is kept, and checked again at bind (`check_bind`).
        let id_bits = if self.known {
            self.iface.vtr.id_bits
        } else {
            24
        };
        if !valid_intid(q.vi.intid, id_bits) {
            return Err(InjectIrqError::InvalidIntid);
        }
        if matches!(q.vi.hw_intid, Some(p) if !(16..1020).contains(&p)) {
            return Err(InjectIrqError::InvalidHwIntid);
        }
        if q.source_cpu as usize >= v2::MAX_CPUS || (q.source_cpu != 0 && q.vi.intid >= 16) {
            return Err(InjectIrqError::InvalidSourceCpu);
        }
        Ok(())
    }

    /// Injects `q` into the saved copy of an unbound vCPU (or queues it).
    pub fn inject_saved(&mut self, q: &QueuedInterrupt) -> Result<(), InjectIrqError> {
        let n = if self.known {
            self.iface.vtr.list_regs.min(MAX_LRS)
        } else {
            0
        };
        let mut s = SavedLrs {
            format: self.iface.format(),
            lrs: &mut self.state.lr[..n],
        };
        let mut empty = s.empty_lrs();
        match list_registers::place(&mut s, &mut empty, q)? {
            Placement::Lr(_) | Placement::AlreadyPending(_) => Ok(()),
            Placement::NoRoom => self.queue.push_queued(*q),
        }
    }

    /// Refuses a bind to a core with interface `iface` that cannot take what this vCPU
    /// holds: interrupts waiting but no interface, a queued interrupt the interface
    /// cannot encode (an INTID above 1019 on GICv2, an LPI beyond `IDbits`), or live
    /// list-register or active-priority state in the other format.
    pub fn check_bind(&self, iface: &VirtualInterface, passthrough: bool) -> crate::VCpuResult {
        let usable = !passthrough && iface.kind != InterfaceKind::None;
        if !usable {
            return if self.queue.is_empty() {
                Ok(())
            } else {
                Err(crate::VCpuError::NoVirtualInterface)
            };
        }
        if self
            .queue
            .queued()
            .any(|q| !list_registers::encodable(iface.format(), &iface.vtr, q))
        {
            return Err(crate::VCpuError::InvalidConfig(
                "a queued interrupt cannot be encoded in this core's list registers",
            ));
        }
        // A core with fewer list registers than the copy uses: pending interrupts
        // beyond its count move to the queue (`prepare_bind`), active ones cannot (their
        // active priority and deactivation live in a list register).
        if self.known && self.iface.kind == iface.kind {
            let fmt = iface.format();
            let n = iface.vtr.list_regs.min(MAX_LRS);
            let beyond = self.state.lr.iter().skip(n).map(|&l| fmt.state(l));
            let mut moved = 0;
            for st in beyond {
                match st {
                    LrState::Invalid => {}
                    LrState::Pending => moved += 1,
                    LrState::Active | LrState::PendingActive => {
                        return Err(crate::VCpuError::InvalidConfig(
                            "an active virtual interrupt in a list register this core does not have",
                        ))
                    }
                }
            }
            if self.queue.len() + moved > QUEUE_LEN {
                return Err(crate::VCpuError::InvalidConfig(
                    "the interrupts of the list registers this core does not have do not fit the queue",
                ));
            }
        }
        if self.known && self.iface.kind != InterfaceKind::None && self.iface.kind != iface.kind {
            let fmt = self.iface.format();
            let live = self
                .state
                .lr
                .iter()
                .any(|&l| fmt.state(l) != LrState::Invalid)
                || self
                    .state
                    .ap0r
                    .iter()
                    .chain(&self.state.ap1r)
                    .any(|&a| a != 0);
            if live {
                return Err(crate::VCpuError::InvalidConfig(
                    "the vCPU has live virtual-interface state of another GIC version",
                ));
            }
        }
        Ok(())
    }

    /// Takes `iface` as the interface of the core being bound to (after
    /// [`Self::check_bind`]) and prepares the saved state for loading: moves what is
    /// queued into free list registers and computes the HCR. Returns whether the
    /// interface is in use (its state must be loaded).
    pub fn prepare_bind(
        &mut self,
        iface: &VirtualInterface,
        passthrough: bool,
        new_core: bool,
    ) -> bool {
        // The same core as last time: the same interface (the caller knows).
        if !new_core && self.known {
            return self.prepare_lrs(passthrough);
        }
        if self.known && self.iface.kind != iface.kind && iface.kind != InterfaceKind::None {
            // Another GIC version (nothing live: `check_bind`): the guest's controls
            // carry over in the new layout, which differs in the priority mask.
            let vmcr = VirtualMachineControl::decode(self.iface.format(), self.state.vmcr);
            self.state = VgicState {
                vmcr: vmcr.encode(iface.format()),
                ..VgicState::default()
            };
        }
        if self.known && self.iface.kind == iface.kind {
            // Fewer list registers here: what the copy holds beyond them waits in the
            // queue (pending only: `check_bind` refused active ones).
            let fmt = iface.format();
            let n = iface.vtr.list_regs.min(MAX_LRS);
            for l in self.state.lr.iter_mut().skip(n) {
                if fmt.state(*l) == LrState::Pending {
                    let e = fmt.decode(*l);
                    let q = QueuedInterrupt {
                        vi: VirtualInterrupt {
                            intid: e.intid,
                            priority: e.priority,
                            group1: e.group1,
                            hw_intid: e.hw_intid,
                        },
                        source_cpu: e.source_cpu,
                    };
                    // Room checked by `check_bind`.
                    let _ = self.queue.push_queued(q);
                }
                *l = 0;
            }
        }
        self.iface = *iface;
        self.known = true;
        self.prepare_lrs(passthrough)
    }

    /// [`Self::prepare_bind`]'s part that does not depend on the core: queued
    /// interrupts into free list registers, and the maintenance interrupts the queue
    /// needs.
    #[inline]
    fn prepare_lrs(&mut self, passthrough: bool) -> bool {
        if !self.in_use(passthrough) {
            return false;
        }
        if self.queue.is_empty() {
            // Nothing waits: no maintenance interrupt is wanted.
            self.state.hcr = list_registers::hcr::EN as u64;
            return true;
        }
        let n = self.iface.vtr.list_regs.min(MAX_LRS);
        let mut s = SavedLrs {
            format: self.iface.format(),
            lrs: &mut self.state.lr[..n],
        };
        list_registers::refill(&mut s, &mut self.queue);
        let (valid, pending) = list_registers::occupancy(&mut s);
        self.state.hcr = list_registers::maintenance_hcr(self.queue.len(), valid, pending) as u64;
        true
    }

    /// The hardware-linked interrupts the vCPU holds (for a reset).
    pub fn released(&self) -> ReleasedHwInterrupts {
        ReleasedHwInterrupts::collect(self.iface.format(), &self.state.lr, &self.queue)
    }

    /// The guest's interface controls as of the last unbind.
    pub fn vmcr(&self) -> VirtualMachineControl {
        VirtualMachineControl::decode(self.iface.format(), self.state.vmcr)
    }
}

/// Runs `$body` with `$r` bound to the calling core's interface `$iface` (the
/// hardware backend of its kind), or evaluates `$none` without one.
#[cfg(target_arch = "aarch64")]
macro_rules! with_interface {
    ($iface:expr, $r:ident => $body:expr, none => $none:expr) => {{
        let iface: &$crate::vgic::VirtualInterface = &$iface;
        match iface.kind {
            $crate::vgic::InterfaceKind::V3 => {
                let mut $r = $crate::vgic::v3::Ich::new($crate::hw::ich::SysRegs, iface.vtr);
                $body
            }
            $crate::vgic::InterfaceKind::V2 => {
                let mut $r = $crate::vgic::v2::Gich::new(
                    $crate::hw::gich::Frame::new(iface.gich),
                    iface.vtr,
                );
                $body
            }
            $crate::vgic::InterfaceKind::None => $none,
        }
    }};
}
#[cfg(target_arch = "aarch64")]
pub(crate) use with_interface;

/// The pending and active state of one virtual interrupt in a vCPU's virtual CPU
/// interface: what a GIC distributor reports for it in `GICD_ISPENDR<n>` /
/// `GICD_ISACTIVER<n>` (`GICR_ISPENDR0` / `GICR_ISACTIVER0` for SGIs and PPIs, GICv3;
/// IHI 0069 12.9.27, 12.9.17), for a host that emulates the distributor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IrqState {
    /// Pending: in a list register as pending or pending-and-active, or queued for one.
    pub pending: bool,
    /// Active: in a list register as active or pending-and-active.
    pub active: bool,
}

/// The [`IrqState`]s of INTIDs `first..first + 32`, as two bitmaps (bit `n`: INTID
/// `first + n`): one register of an emulated distributor's `ISPENDR`/`ISACTIVER`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IrqStates {
    /// Pending: in a list register as pending or pending-and-active, or queued.
    pub pending: u32,
    /// Active: in a list register as active or pending-and-active.
    pub active: u32,
}

impl IrqStates {
    /// The state of INTID `first + n` (`n` < 32).
    pub const fn get(&self, n: u32) -> IrqState {
        IrqState {
            pending: n < 32 && self.pending >> n & 1 != 0,
            active: n < 32 && self.active >> n & 1 != 0,
        }
    }
}

/// The states of INTIDs `first..first + 32` in list registers `lrs` (raw, of
/// `format`) and `queue` (pure; each list register decoded once). For a GICv2 SGI
/// every source counts (the distributor's pending bit is per INTID; its
/// `GICD_SPENDSGIR` holds the per-source bits).
pub fn irq_states(format: LrFormat, lrs: &[u64], queue: &PendingQueue, first: u32) -> IrqStates {
    let bit = |intid: u32| match intid.checked_sub(first) {
        Some(n) if n < 32 => 1u32 << n,
        _ => 0,
    };
    let mut s = IrqStates::default();
    for &raw in lrs {
        let e = format.decode(raw);
        let b = bit(e.intid);
        match e.state {
            LrState::Invalid => {}
            LrState::Pending => s.pending |= b,
            LrState::Active => s.active |= b,
            LrState::PendingActive => {
                s.pending |= b;
                s.active |= b;
            }
        }
    }
    for vi in queue.iter() {
        s.pending |= bit(vi.intid);
    }
    s
}

/// `intid`'s state in list registers `lrs` and `queue` ([`irq_states`] of its block).
pub fn irq_state(format: LrFormat, lrs: &[u64], queue: &PendingQueue, intid: u32) -> IrqState {
    irq_states(format, lrs, queue, intid).get(0)
}
