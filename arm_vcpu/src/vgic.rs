//! Virtual interrupts through the GICv3 virtual CPU interface (`ICH_*_EL2`): list
//! register encoding, placement of an interrupt into the list registers or the
//! overflow queue, and decoding of the guest's SGI requests. Pure; `hw/` moves the
//! registers.

/// Most list registers the architecture allows (`ICH_VTR_EL2.ListRegs` + 1 ≤ 16).
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
    /// (`passthrough_interrupt`), or the core it was bound to has no GICv3 list
    /// registers. The interrupt could never be delivered, so it is not queued.
    NoVirtualInterface,
}

impl core::fmt::Display for InjectIrqError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::InvalidIntid => "not an INTID a virtual interrupt can have",
            Self::InvalidHwIntid => "a hardware link must name a physical PPI or SPI",
            Self::QueueFull => "the list registers and the overflow queue are full",
            Self::NoVirtualInterface => "the vCPU has no usable virtual CPU interface",
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

    /// Decodes `ICH_VTR_EL2`.
    pub const fn decode(vtr: u64) -> Self {
        let n = (vtr & 0x1f) as usize + 1;
        Self {
            list_regs: if n > MAX_LRS { MAX_LRS } else { n },
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

/// The vINTID of a list register.
pub const fn lr_intid(lr: u64) -> u32 {
    lr as u32
}

/// Where [`place`] put an interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Placement {
    /// Written to list register `n`.
    Lr(usize),
    /// Already pending in list register `n`: nothing to do (interrupts are not counted).
    AlreadyPending(usize),
    /// No free list register.
    NoRoom,
}

/// Puts `vi` into the first free list register of `lrs` (a register is free when its
/// state is invalid), unless it is already pending there. An interrupt that is only
/// active may be made pending again in the same register (active and pending).
pub fn place(lrs: &mut [u64], vi: &VirtualInterrupt) -> Placement {
    let mut free = None;
    for (n, l) in lrs.iter_mut().enumerate() {
        let state = *l & lr::STATE;
        if state != 0 && lr_intid(*l) == vi.intid {
            if state & lr::PENDING != 0 {
                return Placement::AlreadyPending(n);
            }
            // Active only: mark it pending as well (no HW-linked interrupt is ever
            // active and pending, so keep the link as it is).
            *l |= lr::PENDING;
            return Placement::Lr(n);
        }
        if state == 0 && free.is_none() {
            free = Some(n);
        }
    }
    match free {
        Some(n) => {
            lrs[n] = encode(vi);
            Placement::Lr(n)
        }
        None => Placement::NoRoom,
    }
}

/// Interrupts waiting for a list register, in arrival order, without duplicates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingQueue {
    items: [Option<VirtualInterrupt>; QUEUE_LEN],
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
        if self.items[..self.len]
            .iter()
            .flatten()
            .any(|q| q.intid == vi.intid)
        {
            return Ok(());
        }
        if self.len == QUEUE_LEN {
            return Err(InjectIrqError::QueueFull);
        }
        self.items[self.len] = Some(vi);
        self.len += 1;
        Ok(())
    }

    /// Entry `n` (oldest first), if the queue is that long.
    pub fn get(&self, n: usize) -> Option<VirtualInterrupt> {
        if n < self.len {
            self.items[n]
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
    pub fn set(&mut self, n: usize, vi: VirtualInterrupt) -> Result<(), InjectIrqError> {
        if n > self.len || n >= QUEUE_LEN {
            return Err(InjectIrqError::QueueFull);
        }
        if self.items[..self.len]
            .iter()
            .enumerate()
            .any(|(i, q)| i != n && matches!(q, Some(q) if q.intid == vi.intid))
        {
            return Err(InjectIrqError::InvalidIntid);
        }
        self.items[n] = Some(vi);
        if n == self.len {
            self.len += 1;
        }
        Ok(())
    }

    /// The queued interrupts, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &VirtualInterrupt> {
        self.items[..self.len].iter().flatten()
    }

    /// Moves queued interrupts into free list registers, oldest first. Returns the
    /// mask of list registers written.
    pub fn refill(&mut self, lrs: &mut [u64]) -> u32 {
        let mut written = 0u32;
        let mut kept = 0;
        for i in 0..self.len {
            let Some(vi) = self.items[i] else { continue };
            match place(lrs, &vi) {
                Placement::Lr(n) => written |= 1 << n,
                Placement::AlreadyPending(_) => {}
                Placement::NoRoom => {
                    self.items[kept] = Some(vi);
                    kept += 1;
                }
            }
        }
        for slot in &mut self.items[kept..self.len] {
            *slot = None;
        }
        self.len = kept;
        written
    }
}

/// The state of the virtual CPU interface that belongs to one vCPU, switched at
/// bind/unbind: `ICH_LR<n>_EL2`, `ICH_VMCR_EL2`, `ICH_HCR_EL2`, `ICH_AP0R<n>_EL2`,
/// `ICH_AP1R<n>_EL2`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VgicState {
    /// List registers.
    pub lr: [u64; MAX_LRS],
    /// `ICH_VMCR_EL2` (the guest's PMR, BPRs, group enables, EOI mode).
    pub vmcr: u64,
    /// `ICH_HCR_EL2`.
    pub hcr: u64,
    /// `ICH_AP0R<n>_EL2`.
    pub ap0r: [u64; 4],
    /// `ICH_AP1R<n>_EL2`.
    pub ap1r: [u64; 4],
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
    /// Collects the live hardware links of list registers `lrs` and of `queue`.
    pub fn collect(lrs: &[u64], queue: &PendingQueue) -> Self {
        let mut r = Self::default();
        let from_lrs = lrs
            .iter()
            .filter(|&&l| l & lr::HW != 0 && l & lr::STATE != 0)
            .map(|&l| ((l >> 32) & 0x1fff) as u32);
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
