//! One list-register abstraction over the two virtual CPU interfaces: the GICv3
//! system registers (`ICH_*_EL2`, [`super::v3`]) and the GICv2 GICH frame (MMIO,
//! [`super::v2`]). Placement of an interrupt, refilling from the pending queue, the
//! maintenance decisions and the bind/unbind switch are written once here, generic
//! over [`ListRegisters`] / [`VgicRegisters`]; the hardware backends live in `hw/`,
//! and the host tests drive the same code through fake register files.
//!
//! Everything uses the empty-list-register bitmap (`ICH_ELRSR_EL2`, `GICH_ELRSR0/1`):
//! an injection reads it once and reads only the list registers that hold an
//! interrupt (usually none), instead of every list register.

use super::{InjectIrqError, PendingQueue, VgicState, VirtualInterrupt, VtrInfo, MAX_LRS};

/// The state field of a list register (the same two bits in both formats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LrState {
    /// 0b00: no interrupt.
    #[default]
    Invalid,
    /// 0b01.
    Pending,
    /// 0b10.
    Active,
    /// 0b11.
    PendingActive,
}

impl LrState {
    /// From the two state bits.
    pub const fn from_bits(b: u64) -> Self {
        match b & 3 {
            0 => Self::Invalid,
            1 => Self::Pending,
            2 => Self::Active,
            _ => Self::PendingActive,
        }
    }

    /// The two state bits.
    pub const fn bits(self) -> u64 {
        self as u64
    }
}

/// A list register, decoded (both formats map to and from this).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListEntry {
    /// The virtual INTID.
    pub intid: u32,
    /// Priority, as an 8-bit value (GICv2 keeps its top 5 bits).
    pub priority: u8,
    /// Group 1.
    pub group1: bool,
    /// State.
    pub state: LrState,
    /// HW = 1: the physical INTID deactivated with this one.
    pub hw_intid: Option<u32>,
    /// GICv2 SGIs (HW = 0): the CPU interface number of the SGI's source, CPUID
    /// \[12:10\]. Always 0 for GICv3 (its list registers carry no source).
    pub source_cpu: u8,
    /// HW = 0: a maintenance interrupt when the guest deactivates it (EOI, GICv2 bit
    /// 19, GICv3 bit 41). The crate never sets it.
    pub eoi_maintenance: bool,
}

/// Which of the two list-register encodings a file uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LrFormat {
    /// `ICH_LR<n>_EL2` (64 bits).
    #[default]
    V3,
    /// `GICH_LR<n>` (32 bits).
    V2,
}

/// An interrupt waiting for, or being put into, a list register: the host's
/// [`VirtualInterrupt`] and, for a GICv2 SGI, its source CPU interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueuedInterrupt {
    /// The interrupt.
    pub vi: VirtualInterrupt,
    /// GICv2 SGI source CPU (0–7); 0 otherwise (ignored on GICv3).
    pub source_cpu: u8,
}

impl QueuedInterrupt {
    /// `vi` without a source CPU.
    pub const fn new(vi: VirtualInterrupt) -> Self {
        Self { vi, source_cpu: 0 }
    }

    /// Whether every virtual CPU interface takes it as it is, so that an injection
    /// needs none of [`LrFormat::encode`]'s checks: a vINTID that is an SGI, PPI or SPI
    /// (0–1019: within GICv2's 10 bits and GICv3's 16 or 24, and no special INTID),
    /// no SGI source CPU, and a hardware link, if any, to a PPI or SPI (16–1019:
    /// within `ICH_LR<n>_EL2.pINTID`'s 13 bits and `GICH_LR<n>.PhysicalID`'s 10).
    /// [`LrFormat::encode_plain`] encodes it.
    #[inline]
    pub const fn is_plain(&self) -> bool {
        self.vi.intid <= super::v2::MAX_INTID
            && self.source_cpu == 0
            && match self.vi.hw_intid {
                Some(p) => p >= 16 && p <= super::v2::MAX_INTID,
                None => true,
            }
    }

    /// The decoded list register that makes it pending.
    pub const fn entry(&self) -> ListEntry {
        ListEntry {
            intid: self.vi.intid,
            priority: self.vi.priority,
            group1: self.vi.group1,
            state: LrState::Pending,
            hw_intid: self.vi.hw_intid,
            source_cpu: self.source_cpu,
            eoi_maintenance: false,
        }
    }
}

impl LrFormat {
    /// Encodes a list register; fails where the format cannot hold the entry (never
    /// truncates an INTID).
    #[inline]
    pub fn encode(self, e: &ListEntry) -> Result<u64, InjectIrqError> {
        match self {
            Self::V3 => super::v3::encode_lr(e),
            Self::V2 => super::v2::encode_lr(e).map(u64::from),
        }
    }

    /// Decodes a list register.
    pub fn decode(self, raw: u64) -> ListEntry {
        match self {
            Self::V3 => super::v3::decode_lr(raw),
            Self::V2 => super::v2::decode_lr(raw as u32),
        }
    }

    /// The list register that makes `q` pending.
    #[inline]
    pub fn encode_pending(self, q: &QueuedInterrupt) -> Result<u64, InjectIrqError> {
        let mut e = q.entry();
        if self == Self::V3 {
            // GICv3 list registers have no SGI source.
            e.source_cpu = 0;
        }
        self.encode(&e)
    }

    /// The list register that makes a plain interrupt ([`QueuedInterrupt::is_plain`])
    /// pending: what [`Self::encode_pending`] gives for it, without the checks it
    /// cannot fail. `ICH_LR<n>_EL2`: State \[63:62\] = 0b01, HW \[61\], Group
    /// \[60\], Priority \[55:48\], pINTID \[44:32\], vINTID \[31:0\].
    /// `GICH_LR<n>`: HW \[31\], Grp1 \[30\], State \[29:28\] = 0b01, Priority
    /// \[27:23\] (the top 5 bits), PhysicalID \[19:10\], VirtualID \[9:0\].
    /// Meaningless for an interrupt that is not plain.
    #[inline]
    pub const fn encode_plain(self, q: &QueuedInterrupt) -> u64 {
        let vi = &q.vi;
        match self {
            Self::V3 => {
                let mut v = super::lr::PENDING
                    | ((vi.group1 as u64) << 60)
                    | ((vi.priority as u64) << 48)
                    | vi.intid as u64;
                if let Some(p) = vi.hw_intid {
                    v |= super::lr::HW | ((p as u64) << 32);
                }
                v
            }
            Self::V2 => {
                use super::v2::lr;
                let mut v = lr::PENDING
                    | ((vi.group1 as u32) << 30)
                    | ((vi.priority as u32 >> 3) << lr::PRIORITY_SHIFT)
                    | vi.intid;
                if let Some(p) = vi.hw_intid {
                    v |= lr::HW | (p << lr::PHYSICAL_SHIFT);
                }
                v as u64
            }
        }
    }

    /// The state of a raw list register.
    #[inline]
    pub const fn state(self, raw: u64) -> LrState {
        LrState::from_bits(match self {
            Self::V3 => raw >> 62,
            Self::V2 => raw >> 28,
        })
    }

    /// `raw` with the pending state added.
    #[inline]
    pub const fn with_pending(self, raw: u64) -> u64 {
        match self {
            Self::V3 => raw | super::lr::PENDING,
            Self::V2 => raw | super::v2::lr::PENDING as u64,
        }
    }

    /// Whether list register `raw` holds the same interrupt as `q`: the same vINTID,
    /// and for GICv2 SGIs the same source (each source's SGI is its own interrupt).
    #[inline]
    pub const fn same_interrupt(self, raw: u64, q: &QueuedInterrupt) -> bool {
        match self {
            Self::V3 => raw as u32 == q.vi.intid,
            Self::V2 => {
                let v = raw as u32;
                v & super::v2::lr::VIRTUAL_ID == q.vi.intid
                    && (q.vi.intid >= 16
                        || v & super::v2::lr::HW != 0
                        || (v >> super::v2::lr::CPUID_SHIFT) & 7 == q.source_cpu as u32)
            }
        }
    }

    /// The physical INTID of a hardware-linked list register (HW = 1).
    pub fn hw_intid(self, raw: u64) -> Option<u32> {
        self.decode(raw).hw_intid
    }
}

/// A bitmap of the low `n` bits.
#[inline]
pub const fn lr_mask(n: usize) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// A file of list registers: the hardware's (while a vCPU is bound) or the copy an
/// unbound vCPU keeps.
pub trait ListRegisters {
    /// The encoding of the registers.
    fn format(&self) -> LrFormat;
    /// How many there are (at most [`MAX_LRS`]).
    fn list_regs(&self) -> usize;
    /// The empty list registers (`ICH_ELRSR_EL2` / `GICH_ELRSR0/1`): bit n set when
    /// list register n holds no interrupt; no bit at or above [`Self::list_regs`].
    fn empty_lrs(&mut self) -> u64;
    /// Whether no list register holds an interrupt ([`all_empty`] of
    /// [`Self::empty_lrs`]; a backend may test the raw bitmap, unmasked).
    #[inline]
    fn all_empty(&mut self) -> bool {
        let n = self.list_regs();
        all_empty(self.empty_lrs(), n)
    }
    /// List register `n` (< `list_regs`).
    fn lr(&mut self, n: usize) -> u64;
    /// Writes list register `n` (< `list_regs`).
    fn set_lr(&mut self, n: usize, v: u64);
    /// Makes the list-register writes so far visible to the next empty-bitmap read
    /// ([`Self::empty_lrs`]). `ICH_ELRSR_EL2` is an indirect read of the list
    /// registers: after a direct write to `ICH_LR<n>_EL2` it need not reflect the write
    /// until a context synchronization event (an `ISB`; entering the guest is one). The
    /// GICH frame needs nothing: its accesses are Device accesses to one peripheral, in
    /// program order.
    #[inline]
    fn sync_lrs(&mut self) {}
}

/// The whole virtual CPU interface of a core: list registers and the controls the
/// switch and the maintenance handling use.
pub trait VgicRegisters: ListRegisters {
    /// `ICH_MISR_EL2` / `GICH_MISR` (the same bits \[7:0\]).
    fn misr(&mut self) -> u32;
    /// Writes `ICH_HCR_EL2` / `GICH_HCR`.
    fn set_hcr(&mut self, v: u32);
    /// `ICH_VMCR_EL2` / `GICH_VMCR` (raw; [`super::VirtualMachineControl`] decodes).
    fn vmcr(&mut self) -> u64;
    /// Writes the VMCR.
    fn set_vmcr(&mut self, v: u64);
    /// Saves the active-priority registers into `s` (`ICH_AP0R<n>`/`AP1R<n>` as
    /// `ICH_VTR_EL2.PREbits` implements; `GICH_APR` into `ap0r[0]`).
    fn save_aprs(&mut self, s: &mut VgicState);
    /// Loads them.
    fn load_aprs(&mut self, s: &VgicState);
    /// How many list registers the hardware implements (all are cleared by [`reset`];
    /// only the first [`ListRegisters::list_regs`] are used).
    fn implemented_lrs(&self) -> usize {
        self.list_regs()
    }
}

/// The list registers an unbound vCPU keeps (`VgicState::lr`), in `format`.
#[derive(Debug)]
pub struct SavedLrs<'a> {
    /// The encoding.
    pub format: LrFormat,
    /// The registers (as many as the interface has).
    pub lrs: &'a mut [u64],
}

impl ListRegisters for SavedLrs<'_> {
    fn format(&self) -> LrFormat {
        self.format
    }
    fn list_regs(&self) -> usize {
        self.lrs.len().min(MAX_LRS)
    }
    fn empty_lrs(&mut self) -> u64 {
        let mut m = 0;
        for (n, &l) in self.lrs.iter().enumerate().take(MAX_LRS) {
            if self.format.state(l) == LrState::Invalid {
                m |= 1 << n;
            }
        }
        m
    }
    fn lr(&mut self, n: usize) -> u64 {
        self.lrs.get(n).copied().unwrap_or(0)
    }
    fn set_lr(&mut self, n: usize, v: u64) {
        if let Some(l) = self.lrs.get_mut(n) {
            *l = v;
        }
    }
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

/// Puts `q` into the lowest empty list register of `l` (`empty`: the empty bitmap,
/// read once by the caller and kept up to date here), unless it is already pending
/// there. An interrupt that is only active is made pending again in its own register
/// (active and pending). Only the registers that hold an interrupt are read.
#[inline]
pub fn place<L: ListRegisters + ?Sized>(
    l: &mut L,
    empty: &mut u64,
    q: &QueuedInterrupt,
) -> Result<Placement, InjectIrqError> {
    let fmt = l.format();
    let raw = fmt.encode_pending(q)?;
    let all = lr_mask(l.list_regs());
    let mut used = !*empty & all;
    while used != 0 {
        let n = used.trailing_zeros() as usize;
        used &= used - 1;
        let cur = l.lr(n);
        if fmt.same_interrupt(cur, q) {
            match fmt.state(cur) {
                LrState::Pending | LrState::PendingActive => {
                    return Ok(Placement::AlreadyPending(n))
                }
                LrState::Active => {
                    // Active only: mark it pending as well (keeping its link as it is).
                    l.set_lr(n, fmt.with_pending(cur));
                    return Ok(Placement::Lr(n));
                }
                LrState::Invalid => {}
            }
        }
    }
    let free = *empty & all;
    if free == 0 {
        return Ok(Placement::NoRoom);
    }
    let n = free.trailing_zeros() as usize;
    l.set_lr(n, raw);
    *empty &= !(1u64 << n);
    Ok(Placement::Lr(n))
}

/// Moves queued interrupts into free list registers of `l`, oldest first; what does
/// not fit stays queued in order. Returns the mask of list registers written.
pub fn refill<L: ListRegisters + ?Sized>(l: &mut L, queue: &mut PendingQueue) -> u64 {
    if queue.is_empty() {
        return 0;
    }
    let mut empty = l.empty_lrs();
    refill_tracked(l, queue, &mut empty)
}

/// [`refill`] with the empty bitmap kept by the caller (read once, updated here).
fn refill_tracked<L: ListRegisters + ?Sized>(
    l: &mut L,
    queue: &mut PendingQueue,
    empty: &mut u64,
) -> u64 {
    let mut written = 0u64;
    queue.retain(|q| match place(l, empty, q) {
        Ok(Placement::Lr(n)) => {
            written |= 1 << n;
            false
        }
        Ok(Placement::AlreadyPending(_)) => false,
        Ok(Placement::NoRoom) => true,
        // Checked when it was queued; an entry the interface cannot hold is kept
        // (and refused at bind, see `check_queue`), never truncated.
        Err(_) => true,
    });
    written
}

/// How many list registers hold an interrupt, and how many of those are pending.
pub fn occupancy<L: ListRegisters + ?Sized>(l: &mut L) -> (usize, usize) {
    let empty = l.empty_lrs();
    occupancy_in(l, empty)
}

/// [`occupancy`] from an empty bitmap the caller kept (after writing list registers a
/// direct read of `ICH_ELRSR_EL2` is not guaranteed to reflect the writes without a
/// context synchronization; the list registers themselves read back as written).
fn occupancy_in<L: ListRegisters + ?Sized>(l: &mut L, empty: u64) -> (usize, usize) {
    let fmt = l.format();
    let mut used = !empty & lr_mask(l.list_regs());
    let (mut valid, mut pending) = (0, 0);
    while used != 0 {
        let n = used.trailing_zeros() as usize;
        used &= used - 1;
        match fmt.state(l.lr(n)) {
            LrState::Invalid => {}
            LrState::Active => valid += 1,
            LrState::Pending | LrState::PendingActive => {
                valid += 1;
                pending += 1;
            }
        }
    }
    (valid, pending)
}

/// `ICH_HCR_EL2` / `GICH_HCR` bits (IHI 0069 / IHI 0048B: the same positions): En
/// \[0\], UIE \[1\], NPIE \[3\]; and the matching `*_MISR` bits U \[1\], NP \[3\].
pub mod hcr {
    /// Enable the virtual CPU interface.
    pub const EN: u32 = 1 << 0;
    /// Underflow: maintenance interrupt while at most one list register is valid.
    pub const UIE: u32 = 1 << 1;
    /// No pending: maintenance interrupt while no list register is pending.
    pub const NPIE: u32 = 1 << 3;
    /// `*_MISR.U`.
    pub const MISR_U: u32 = 1 << 1;
    /// `*_MISR.NP`.
    pub const MISR_NP: u32 = 1 << 3;
}

/// The maintenance decision: which maintenance interrupts to enable (`*_HCR`) given
/// the queue length and the list registers' occupancy (`valid` holding an interrupt,
/// `pending` of those pending) right before the guest runs.
///
/// With interrupts queued, the crate wants to hear when list registers free up:
/// * underflow (UIE) — at most one list register valid — is enabled only while more
///   than one is valid, so it cannot hold already (a level maintenance interrupt whose
///   condition holds at entry would fire without end);
/// * no pending (NPIE) — the guest has acknowledged everything — only while some list
///   register is pending, for the same reason; it delivers the next queued interrupt
///   as soon as the guest took the previous ones, before underflow would.
///
/// After a refill with interrupts left over every list register is valid, so with two
/// or more list registers underflow is always armed while anything is queued. With
/// nothing queued only En is set.
pub const fn maintenance_hcr(queued: usize, valid: usize, pending: usize) -> u32 {
    let mut v = hcr::EN;
    if queued != 0 {
        if valid > 1 {
            v |= hcr::UIE;
        }
        if pending > 0 {
            v |= hcr::NPIE;
        }
    }
    v
}

/// Whether a maintenance condition enabled in `hcr` holds for that occupancy
/// (`*_MISR.U`/`NP` as the architecture defines them).
pub const fn maintenance_asserted(hcr_v: u32, valid: usize, pending: usize) -> bool {
    (hcr_v & hcr::UIE != 0 && valid <= 1) || (hcr_v & hcr::NPIE != 0 && pending == 0)
}

/// Injects `q` into a bound vCPU's hardware `r`: into an empty list register (the
/// empty bitmap read once, only occupied registers read), or queued with the
/// maintenance interrupts armed.
#[inline]
pub fn inject_bound<R: VgicRegisters + ?Sized>(
    r: &mut R,
    queue: &mut PendingQueue,
    q: &QueuedInterrupt,
) -> Result<(), InjectIrqError> {
    let mut empty = r.empty_lrs();
    match place(r, &mut empty, q)? {
        Placement::Lr(_) => {
            // A second injection before the next entry reads the bitmap again.
            r.sync_lrs();
            Ok(())
        }
        Placement::AlreadyPending(_) => Ok(()),
        Placement::NoRoom => {
            queue.push_queued(*q)?;
            let (valid, pending) = occupancy_in(r, empty);
            r.set_hcr(maintenance_hcr(queue.len(), valid, pending));
            Ok(())
        }
    }
}

/// Whether none of list registers `0..n` holds an interrupt, and there is one:
/// `empty` (an empty bitmap, `ICH_ELRSR_EL2` / `GICH_ELRSR0`, masked or not: only
/// bits below `n` are looked at) has its `n` low bits set, `n` ≥ 1. Then nothing in
/// the list registers can be the interrupt being injected, and the lowest free one —
/// where [`place`] puts it — is register 0. One `mvn`/`rbit`/`clz` and a compare.
#[inline]
pub const fn all_empty(empty: u64, n: usize) -> bool {
    n != 0 && empty.trailing_ones() as usize >= n
}

/// [`inject_bound`]'s common case in one empty-bitmap read and one list-register
/// write, with nothing to look up: a plain interrupt ([`QueuedInterrupt::is_plain`])
/// while no list register holds an interrupt ([`all_empty`]) goes into list register
/// 0 (a register number known at compile time: one `msr ICH_LR0_EL2` or one store to
/// `GICH_LR0`, not a branch into a table of sixteen). Returns `false`, having written
/// nothing, otherwise (some register is in use — it may hold this interrupt — or `q`
/// is not plain): then [`inject_bound`] decides. Where it returns `true`,
/// [`inject_bound`] would have written the same value into the same register.
#[inline]
pub fn inject_plain<R: ListRegisters + ?Sized>(r: &mut R, q: &QueuedInterrupt) -> bool {
    if !q.is_plain() {
        return false;
    }
    if !r.all_empty() {
        return false;
    }
    let raw = r.format().encode_plain(q);
    r.set_lr(0, raw);
    // A second injection before the next entry reads the bitmap again.
    r.sync_lrs();
    true
}

/// Handles a physical IRQ exit for a bound vCPU: if the virtual interface's
/// maintenance interrupt is asserted (`*_MISR.U` or `.NP`), refills the list registers
/// from the queue and re-arms the maintenance interrupts (which deasserts it: the
/// level-sensitive PPI drops without being acknowledged). Returns whether it was the
/// maintenance interrupt.
pub fn maintenance<R: VgicRegisters + ?Sized>(r: &mut R, queue: &mut PendingQueue) -> bool {
    if r.misr() & (hcr::MISR_U | hcr::MISR_NP) == 0 {
        return false;
    }
    let mut empty = r.empty_lrs();
    refill_tracked(r, queue, &mut empty);
    let (valid, pending) = occupancy_in(r, empty);
    r.set_hcr(maintenance_hcr(queue.len(), valid, pending));
    true
}

/// Loads a vCPU's saved interface state into the hardware at bind: active
/// priorities, the list registers that hold an interrupt (every other one is empty
/// already: [`save`] and [`reset`] leave them so), VMCR, then HCR, which enables it.
/// `resident`: the interface still holds this state's active priorities and VMCR
/// ([`save`] only reads them; the rebind shortcut), which are then not written, and
/// `Some(held)` — what [`save`] returned — when the saved list registers are exactly
/// what that save left (nothing was injected or refilled since): only those are
/// written, without looking at the others. `None`: every saved list register is
/// looked at (one OR over the copy first: usually all are empty).
#[inline]
pub fn load<R: VgicRegisters + ?Sized>(
    r: &mut R,
    s: &VgicState,
    aprs_vmcr_loaded: bool,
    held: Option<u64>,
) {
    if !aprs_vmcr_loaded {
        r.load_aprs(s);
    }
    let n = r.list_regs().min(MAX_LRS);
    let any = match held {
        Some(m) => m & lr_mask(n) != 0,
        None => s.lr.iter().take(n).fold(0, |a, &l| a | l) != 0,
    };
    if any {
        load_lrs(r, s, n, held);
        // An injection between this bind and the guest's entry reads the empty
        // bitmap: it must see these registers taken (`sync_lrs`).
        r.sync_lrs();
    }
    if !aprs_vmcr_loaded {
        r.set_vmcr(s.vmcr);
    }
    r.set_hcr(s.hcr as u32);
}

/// Saves a vCPU's interface state at unbind and leaves the hardware disabled with
/// every list register empty: reads the empty bitmap once, then reads and clears only
/// the registers holding an interrupt (the copy's others are zeroed at once; with up
/// to four list registers the first four, whatever the count: none beyond the
/// interface's count is ever loaded). Returns the bitmap
/// of the list registers saved (for [`load`]'s `held`).
#[inline]
pub fn save<R: VgicRegisters + ?Sized>(r: &mut R, s: &mut VgicState) -> u64 {
    let n = r.list_regs().min(MAX_LRS);
    let held = !r.empty_lrs() & lr_mask(n);
    // The copy's registers zeroed at once (two `stp` for up to four list registers,
    // not a `memset` call), then the held ones read.
    if n <= 4 {
        if let Some(first) = s.lr.first_chunk_mut::<4>() {
            *first = [0; 4];
        }
    } else {
        for l in s.lr.iter_mut().take(n) {
            *l = 0;
        }
    }
    if held != 0 {
        save_held(r, s, held);
    }
    s.vmcr = r.vmcr();
    r.save_aprs(s);
    r.set_hcr(0);
    held
}

/// [`save`]'s list registers in `held`: read into the copy and cleared. Out of line:
/// most unbinds find none.
#[inline(never)]
fn save_held<R: VgicRegisters + ?Sized>(r: &mut R, s: &mut VgicState, mut m: u64) {
    while m != 0 {
        let i = m.trailing_zeros() as usize;
        let v = r.lr(i);
        if let Some(l) = s.lr.get_mut(i) {
            *l = v;
        }
        r.set_lr(i, 0);
        m &= m - 1;
    }
}

/// [`load`]'s list registers: those in `held`, or (`None`) every one of the first `n`
/// of the copy holding an interrupt. Out of line: most binds find none.
#[inline(never)]
fn load_lrs<R: VgicRegisters + ?Sized>(r: &mut R, s: &VgicState, n: usize, held: Option<u64>) {
    let fmt = r.format();
    match held {
        Some(mut m) => {
            m &= lr_mask(n);
            while m != 0 {
                let i = m.trailing_zeros() as usize;
                if let Some(&v) = s.lr.get(i) {
                    r.set_lr(i, v);
                }
                m &= m - 1;
            }
        }
        None => {
            for (i, &v) in s.lr.iter().enumerate().take(n) {
                if fmt.state(v) != LrState::Invalid {
                    r.set_lr(i, v);
                }
            }
        }
    }
}

/// Puts a core's interface in a known state at `hardware_enable`: disabled, every
/// list register and active priority zero (their reset values are UNKNOWN).
pub fn reset<R: VgicRegisters + ?Sized>(r: &mut R) {
    r.set_hcr(0);
    for i in 0..r.implemented_lrs() {
        r.set_lr(i, 0);
    }
    r.load_aprs(&VgicState::default());
    r.set_vmcr(0);
}

/// The decoded shape of an interface for [`VtrInfo`]-driven checks: whether queued
/// interrupt `q` can be put into a list register of `format` on an interface shaped
/// `vtr` (its INTID within the implemented size, and encodable).
pub fn encodable(format: LrFormat, vtr: &VtrInfo, q: &QueuedInterrupt) -> bool {
    super::valid_intid(q.vi.intid, vtr.id_bits) && format.encode_pending(q).is_ok()
}
