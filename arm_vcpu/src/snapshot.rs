//! Snapshots of a vCPU ([`Snapshot`]): everything that defines an unbound vCPU, taken
//! with [`Aarch64VCpu::snapshot`](crate::Aarch64VCpu::snapshot) and rebuilt with
//! [`Aarch64VCpu::restore`](crate::Aarch64VCpu::restore), with a documented, versioned
//! byte format ([`Snapshot::to_bytes`], [`Snapshot::from_bytes`]; `docs/snapshot.md`).
//!
//! A snapshot holds the value of every writable register of [`crate::reg`] the vCPU
//! has (general-purpose, FP/SIMD, every switched system register, the emulated debug
//! registers, the virtual count, the virtual GIC's list registers, active priorities,
//! VMCR and queued interrupts, a pending virtual SError, the pending completion) and,
//! to check where it may be restored, the features of the core it was taken on, the
//! shape of its virtual CPU interface and the VM's ID registers. Restoring is writing
//! each register back, so a register added to [`crate::reg`] is in snapshots at once.
//!
//! Not in a snapshot: what the host configures (stage-2 root and VMID, setup, MPIDR,
//! `CNTVOFF_EL2`) and the EL2 controls the crate composes from them. Restore into a
//! vCPU the host has created and set up for the same VM.
//!
//! **Time.** The guest's virtual count is stored, not `CNTVOFF_EL2`: a restore sets
//! `CNTVOFF_EL2` so that the guest's count goes on from the value it had, on any core
//! or after a host reboot; `CNTV_CVAL_EL0` (in the virtual count) keeps its meaning.
//! All vCPUs of a VM must share one offset: after restoring them, give every vCPU the
//! one of the snapshot with the highest count (`set_reg(Reg::Sys(CNTVOFF_EL2))`), so
//! that no vCPU sees its count go back. The EL1 physical timer compares against the
//! physical count, which the guest reads directly: it is stored as it is.
//!
//! **Compatibility.** A snapshot is refused ([`SnapshotError::Incompatible`]) on a core
//! where the VM would see different ID registers (the guest may use what they
//! advertised), where a switched register holding a value does not exist, or whose
//! virtual CPU interface has fewer list registers than hold interrupts, a different
//! number of priority bits or fewer INTID bits. [`restore`](crate::Aarch64VCpu::restore)
//! checks against the core the vCPU was last bound to (if any) and
//! [`bind`](crate::Aarch64VCpu::bind) checks against the core it binds to.
//!
//! **Byte format, version 1** (little endian): a 48-byte header — magic `AVCPUSNP`
//! \[0..8\], version \[8..10\], header length \[10..12\], total length \[12..16\],
//! CRC-32 (IEEE 802.3) of the whole with this field as 0 \[16..20\], record count
//! \[20..24\], the core's [`FeatureSet`] \[24..32\], the virtual CPU interface's list
//! registers, priority, preemption and INTID bits \[32..36\], flags \[36\] (bit 0 ID
//! view present, 1 physical timer passed through, 2 double lock, 3 DTR, 4 MDCCINT),
//! breakpoint, watchpoint and context-aware breakpoint counts \[37..40\], claim tag
//! bits \[40..48\] — then records: an 8-byte [`Reg::id`] and the value (8 or 16 bytes),
//! the ID view first, then [`Snapshot::registers`] in order. `docs/snapshot.md` is the
//! full reference.
//!
//! ```
//! use arm_vcpu::reg::Reg;
//! use arm_vcpu::snapshot::{Snapshot, SnapshotError};
//! use arm_vcpu::{Aarch64VCpu, Aarch64VCpuCreateConfig};
//!
//! let mut a = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default())?;
//! a.set_entry(0x4008_0000)?;
//! a.set_reg(Reg::X(5), 55)?;
//! let snap = a.snapshot()?;
//! let mut buf = [0u8; Snapshot::MAX_BYTES];
//! let n = snap.to_bytes(&mut buf)?;
//!
//! let back = Snapshot::from_bytes(&buf[..n])?;
//! let mut b = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default())?;
//! b.restore(&back)?;
//! assert_eq!(b.get_reg(Reg::X(5))?, 55);
//! assert_eq!(b.pc(), 0x4008_0000);
//!
//! // One flipped bit is refused.
//! buf[100] ^= 1;
//! assert!(matches!(Snapshot::from_bytes(&buf[..n]), Err(SnapshotError::Checksum { .. })));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::fmt;

use crate::context::{Aarch64ContextFrame, FpSimdState, GuestSystemRegisters, SWITCHED};
use crate::debug::{DebugCaps, DebugSwitch, DebugView};
use crate::exit::{Pending, SysRegAddr};
use crate::idregs::{self, IdRegisters};
use crate::power::PowerState;
use crate::reg::{self, Count, Parts, PartsMut, Reg, RegError, RegList, Shape};
use crate::sysreg::{Feature, FeatureSet, FEATURES};
use crate::timer::EmulatedTimer;
use crate::vgic::{self, PendingQueue, VgicState, VtrInfo};

/// The byte format's magic number, bytes 0..8.
pub const MAGIC: [u8; 8] = *b"AVCPUSNP";
/// The byte format's version this crate writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Header length of format version 1.
pub const HEADER_LEN: usize = 48;

/// Header flag: the VM's ID registers are in the records (the vCPU had been bound).
const FLAG_IDS: u8 = 1 << 0;
/// Header flag: the EL1 physical timer was passed through.
const FLAG_PTIMER: u8 = 1 << 1;
/// Header flag: the VM's view has FEAT_DoubleLock (`OSDLR_EL1.DLK` is state).
const FLAG_DOUBLE_LOCK: u8 = 1 << 2;
/// Header flag: the core has `OSDTRRX_EL1`/`OSDTRTX_EL1`.
const FLAG_DTR: u8 = 1 << 3;
/// Header flag: the core has `MDCCINT_EL1`.
const FLAG_MDCCINT: u8 = 1 << 4;
const FLAGS: u8 = FLAG_IDS | FLAG_PTIMER | FLAG_DOUBLE_LOCK | FLAG_DTR | FLAG_MDCCINT;

/// Why a snapshot cannot be read, written or restored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Fewer bytes than the header, or than the length the header gives.
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// The bytes do not start with [`MAGIC`].
    BadMagic,
    /// A format version this crate does not read.
    UnsupportedVersion(u16),
    /// The header's lengths or record count do not describe the bytes.
    Malformed(&'static str),
    /// The CRC-32 does not match: the bytes were changed.
    Checksum {
        /// In the header.
        stored: u32,
        /// Of the bytes.
        computed: u32,
    },
    /// A record names a register this crate does not know, or one a snapshot cannot
    /// hold (a read-only one), or one this snapshot's shape does not have.
    Register(RegError),
    /// The buffer given to [`Snapshot::to_bytes`] is too small.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
    },
    /// The vCPU is bound: snapshot and restore work on unbound vCPUs.
    Bound,
    /// The snapshot cannot run on this core (see [`Incompatibility`]).
    Incompatible(Incompatibility),
    /// The vCPU has state the snapshot format does not hold yet: a virtual PMU
    /// (`Aarch64VCpuSetupConfig::with_pmu`). Refused rather than dropped, so a
    /// restored vCPU never runs with its counters silently reset.
    Unsupported(&'static str),
}

/// How a core differs from the one a snapshot was taken on, in a way that matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Incompatibility {
    /// The VM would see another value of this ID register.
    IdRegister {
        /// The register.
        reg: SysRegAddr,
        /// Its value in the snapshot.
        snapshot: u64,
        /// Its value on the core.
        core: u64,
    },
    /// A switched register that holds a value needs a feature the core lacks.
    MissingFeature(Feature),
    /// List register `lr` holds an interrupt, and the core has only `core` list
    /// registers.
    ListRegisters {
        /// The highest list register in use.
        lr: u8,
        /// The core's list registers.
        core: u8,
    },
    /// The virtual CPU interface has another number of priority or preemption bits
    /// (the active priority registers and VMCR's fields would mean something else).
    PriorityBits {
        /// In the snapshot.
        snapshot: u8,
        /// On the core.
        core: u8,
    },
    /// The core's virtual INTIDs are narrower than an interrupt the snapshot holds.
    IntidBits,
    /// The snapshot holds interrupts (in list registers or queued) and the vCPU has no
    /// usable virtual CPU interface on the core.
    VirtualInterface,
    /// The snapshot's virtual CPU interface state is GICv2's (`GICH_*`) and the core's
    /// interface is GICv3's (`ICH_*_EL2`), or the other way round.
    InterfaceKind,
    /// A debug register that holds a value (claim tags, `OSDTRRX/TX_EL1`,
    /// `MDCCINT_EL1`) is not implemented by the core.
    DebugRegister,
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { needed, got } => {
                write!(f, "snapshot truncated: {got} bytes, {needed} needed")
            }
            Self::BadMagic => f.write_str("not a vCPU snapshot (bad magic)"),
            Self::UnsupportedVersion(v) => write!(f, "snapshot format version {v} not supported"),
            Self::Malformed(what) => write!(f, "malformed snapshot: {what}"),
            Self::Checksum { stored, computed } => write!(
                f,
                "snapshot checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
            Self::Register(e) => write!(f, "snapshot record: {e}"),
            Self::BufferTooSmall { needed } => write!(f, "buffer too small: {needed} bytes needed"),
            Self::Bound => f.write_str("the vCPU is bound"),
            Self::Incompatible(i) => write!(f, "snapshot incompatible with this core: {i}"),
            Self::Unsupported(what) => write!(f, "snapshots do not hold {what} yet"),
        }
    }
}

impl fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::IdRegister {
                reg,
                snapshot,
                core,
            } => write!(
                f,
                "{} is {snapshot:#x} in the snapshot, {core:#x} here",
                Reg::Sys(reg)
            ),
            Self::MissingFeature(feat) => write!(f, "{} is in use and missing here", feat.name()),
            Self::ListRegisters { lr, core } => {
                write!(
                    f,
                    "ICH_LR{lr}_EL2 is in use, the core has {core} list registers"
                )
            }
            Self::PriorityBits { snapshot, core } => write!(
                f,
                "{snapshot} virtual priority bits in the snapshot, {core} here"
            ),
            Self::IntidBits => f.write_str("virtual INTIDs too narrow"),
            Self::VirtualInterface => {
                f.write_str("interrupts in flight and no virtual CPU interface")
            }
            Self::InterfaceKind => {
                f.write_str("the virtual CPU interface is another GIC architecture version")
            }
            Self::DebugRegister => f.write_str("a debug register in use is not implemented here"),
        }
    }
}

impl core::error::Error for SnapshotError {}

impl From<RegError> for SnapshotError {
    fn from(e: RegError) -> Self {
        Self::Register(e)
    }
}

/// What a snapshot needs of the core it runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Requirements {
    /// Features of the core it was taken on (the switch list's gates).
    pub has: FeatureSet,
    /// Its virtual CPU interface (`list_regs` 0: not in use).
    pub vtr: VtrInfo,
    /// The VM's ID registers, if the vCPU had been bound.
    pub ids: Option<IdRegisters>,
    /// Switched registers with a non-zero value, by feature gate.
    pub in_use: FeatureSet,
    /// The highest list register holding an interrupt, plus one (0: none).
    pub lrs_used: u8,
    /// Some interrupt (list register or queue) needs 24-bit INTIDs.
    pub wide_intids: bool,
    /// Interrupts are queued.
    pub queued: bool,
    /// Debug registers beyond the ID registers' that hold values (claim tags in use,
    /// DTR or MDCCINT non-zero).
    pub debug_in_use: DebugCaps,
}

impl Requirements {
    /// Checks a core with features `has`, the VM's ID view there `ids` and its virtual
    /// CPU interface `vtr` (`list_regs` 0: not used by this vCPU).
    pub fn check(
        &self,
        has: FeatureSet,
        ids: &IdRegisters,
        vtr: &VtrInfo,
        caps: &DebugCaps,
    ) -> Result<(), Incompatibility> {
        if let Some(mine) = &self.ids {
            for (i, (&a, &b)) in mine.values().iter().zip(ids.values()).enumerate() {
                if a != b {
                    return Err(Incompatibility::IdRegister {
                        reg: idregs::encoding(i),
                        snapshot: a,
                        core: b,
                    });
                }
            }
        }
        for f in FEATURES {
            if self.in_use.has(f) && !has.has(f) {
                return Err(Incompatibility::MissingFeature(f));
            }
        }
        let d = &self.debug_in_use;
        if d.claim_bits & !caps.claim_bits != 0
            || (d.dtr && !caps.dtr)
            || (d.mdccint && !caps.mdccint)
        {
            return Err(Incompatibility::DebugRegister);
        }
        let (a, b) = (&self.vtr, vtr);
        if b.list_regs == 0 {
            // Interrupts in flight need an interface to be delivered through.
            if self.lrs_used != 0 || self.queued {
                return Err(Incompatibility::VirtualInterface);
            }
            return Ok(());
        }
        if self.wide_intids && b.id_bits < 24 {
            return Err(Incompatibility::IntidBits);
        }
        if a.list_regs == 0 {
            // Taken before the interface was known: only the queue, checked above.
            return Ok(());
        }
        if a.format() != b.format() {
            // GICv2 and GICv3 list registers, VMCRs and active priorities differ.
            return Err(Incompatibility::InterfaceKind);
        }
        if self.lrs_used as usize > b.list_regs {
            return Err(Incompatibility::ListRegisters {
                lr: self.lrs_used - 1,
                core: b.list_regs as u8,
            });
        }
        if a.pri_bits != b.pri_bits || a.pre_bits != b.pre_bits {
            return Err(Incompatibility::PriorityBits {
                snapshot: a.pri_bits as u8,
                core: b.pri_bits as u8,
            });
        }
        Ok(())
    }
}

/// Everything that defines an unbound vCPU (see the [module](self) docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub(crate) frame: Aarch64ContextFrame,
    pub(crate) fp: FpSimdState,
    pub(crate) sys: GuestSystemRegisters,
    pub(crate) dbg: DebugSwitch,
    pub(crate) power: PowerState,
    pub(crate) vgic: VgicState,
    pub(crate) queue: PendingQueue,
    pub(crate) ptimer: EmulatedTimer,
    pub(crate) pending: Pending,
    pub(crate) virtual_count: u64,
    pub(crate) shape: Shape,
    pub(crate) ids: Option<IdRegisters>,
}

/// Bytes of one record of `r`: its ID and its value.
const fn record_len(r: Reg) -> usize {
    8 + (r.bits() / 8) as usize
}

impl Snapshot {
    /// An upper bound of [`Self::encoded_len`] for any snapshot (a buffer this large
    /// always fits).
    pub const MAX_BYTES: usize = HEADER_LEN + reg::MAX_REGS * 24;

    pub(crate) fn empty(shape: Shape, ids: Option<IdRegisters>) -> Self {
        Self {
            frame: Aarch64ContextFrame::default(),
            fp: FpSimdState::default(),
            sys: GuestSystemRegisters::default(),
            dbg: DebugSwitch {
                view: shape.debug,
                caps: shape.caps,
                ..DebugSwitch::default()
            },
            power: PowerState::On,
            vgic: VgicState::default(),
            queue: PendingQueue::default(),
            ptimer: EmulatedTimer::default(),
            pending: Pending::None,
            virtual_count: 0,
            shape,
            ids,
        }
    }

    fn parts(&self) -> Parts<'_> {
        Parts {
            frame: &self.frame,
            fp: &self.fp,
            sys: &self.sys,
            dbg: &self.dbg,
            power: &self.power,
            vgic: &self.vgic,
            queue: &self.queue,
            ptimer: &self.ptimer,
            pending: &self.pending,
            ids: self.ids.as_ref(),
            count: Count::Fixed(&self.virtual_count),
            shape: self.shape,
            now: 0,
        }
    }

    /// The registers this snapshot holds, in the order they are written and restored.
    pub fn registers(&self) -> impl Iterator<Item = Reg> + '_ {
        let shape = self.shape;
        RegList::new(shape, false).filter(move |r| reg::in_snapshot(*r, &shape))
    }

    /// The value of `r` in the snapshot ([`RegError::Unknown`] if it holds none).
    pub fn get_reg(&self, r: Reg) -> Result<u128, RegError> {
        if !reg::in_snapshot(r.canonical(), &self.shape) {
            return Err(RegError::Unknown(r));
        }
        reg::get(&self.parts(), r)
    }

    /// Changes the value of `r` in the snapshot, with the checks of
    /// [`set_reg`](crate::Aarch64VCpu::set_reg).
    pub fn set_reg(&mut self, r: Reg, value: u128) -> Result<(), RegError> {
        if reg::access(r.canonical(), &self.shape) == reg::Access::ReadOnly {
            return Err(RegError::ReadOnly(r));
        }
        if !reg::in_snapshot(r.canonical(), &self.shape) {
            return Err(RegError::Unknown(r));
        }
        let mut p = PartsMut {
            frame: &mut self.frame,
            fp: &mut self.fp,
            sys: &mut self.sys,
            dbg: &mut self.dbg,
            power: &mut self.power,
            vgic: &mut self.vgic,
            queue: &mut self.queue,
            ptimer: &mut self.ptimer,
            pending: &mut self.pending,
            ids_known: self.ids.is_some(),
            count: Count::Fixed(&mut self.virtual_count),
            shape: self.shape,
            now: 0,
        };
        reg::set(&mut p, r, value)
    }

    /// The guest's virtual count when the snapshot was taken.
    pub fn virtual_count(&self) -> u64 {
        self.virtual_count
    }

    /// The VM's ID registers as the vCPU saw them (`None` if it was never bound).
    pub fn id_registers(&self) -> Option<&IdRegisters> {
        self.ids.as_ref()
    }

    /// What the snapshot needs of a core.
    pub(crate) fn requirements(&self) -> Requirements {
        let mut in_use = FeatureSet::EMPTY;
        for s in SWITCHED {
            if let crate::context::Gate::Feat(f) = s.gate {
                if self.shape.has.has(f) && self.sys.by_addr(s.addr).is_some_and(|v| v != 0) {
                    in_use = in_use.with(f);
                }
            }
        }
        let n = self.shape.vtr.list_regs.min(vgic::MAX_LRS);
        let mut lrs_used = 0;
        let mut wide = false;
        let format = self.shape.vtr.format();
        for (i, &l) in self.vgic.lr[..n].iter().enumerate() {
            if format.state(l) != vgic::LrState::Invalid {
                lrs_used = i as u8 + 1;
                wide |= format.decode(l).intid >= 1 << 16;
            }
        }
        for i in 0..self.queue.len() {
            if let Some(vi) = self.queue.get(i) {
                wide |= vi.intid >= 1 << 16;
            }
        }
        let g = &self.dbg.guest;
        let debug_in_use = DebugCaps {
            claim_bits: g.claim,
            dtr: g.dtrrx | g.dtrtx != 0,
            mdccint: g.mdccint != 0,
        };
        Requirements {
            debug_in_use,
            has: self.shape.has,
            vtr: self.shape.vtr,
            ids: self.ids,
            in_use,
            lrs_used,
            wide_intids: wide,
            queued: !self.queue.is_empty(),
        }
    }

    /// Whether this snapshot can run on a core with features `has`, the VM's ID view
    /// `ids` there and virtual CPU interface `vtr` (pure; what `bind` checks).
    pub fn check_core(
        &self,
        has: FeatureSet,
        ids: &IdRegisters,
        vtr: &VtrInfo,
        caps: &DebugCaps,
    ) -> Result<(), Incompatibility> {
        self.requirements().check(has, ids, vtr, caps)
    }

    /// The records: the ID view (if known), then [`Self::registers`].
    fn records(&self) -> impl Iterator<Item = (Reg, u128)> + '_ {
        let ids = self.ids.iter().flat_map(|ids| {
            ids.values()
                .iter()
                .enumerate()
                .map(|(i, &v)| (Reg::Sys(idregs::encoding(i)), v as u128))
        });
        let regs = self
            .registers()
            .map(move |r| (r, reg::get(&self.parts(), r).unwrap_or(0)));
        ids.chain(regs)
    }

    /// Bytes [`Self::to_bytes`] writes.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.records().map(|(r, _)| record_len(r)).sum::<usize>()
    }

    /// Writes the snapshot in the byte format (`docs/snapshot.md`) into `buf`; returns
    /// the number of bytes written. [`Self::MAX_BYTES`] always suffices.
    pub fn to_bytes(&self, buf: &mut [u8]) -> Result<usize, SnapshotError> {
        let len = self.encoded_len();
        let Some(out) = buf.get_mut(..len) else {
            return Err(SnapshotError::BufferTooSmall { needed: len });
        };
        out.fill(0);
        out[0..8].copy_from_slice(&MAGIC);
        out[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[10..12].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
        out[12..16].copy_from_slice(&(len as u32).to_le_bytes());
        out[24..32].copy_from_slice(&self.shape.has.0.to_le_bytes());
        let sh = &self.shape;
        out[32] = sh.vtr.list_regs as u8;
        out[33] = sh.vtr.pri_bits as u8;
        out[34] = sh.vtr.pre_bits as u8;
        out[35] = sh.vtr.id_bits as u8;
        let flag = |on: bool, f: u8| if on { f } else { 0 };
        out[36] = flag(self.ids.is_some(), FLAG_IDS)
            | flag(sh.passthrough_timer, FLAG_PTIMER)
            | flag(sh.debug.double_lock, FLAG_DOUBLE_LOCK)
            | flag(sh.caps.dtr, FLAG_DTR)
            | flag(sh.caps.mdccint, FLAG_MDCCINT);
        out[37] = sh.debug.counts.brps;
        out[38] = sh.debug.counts.wrps;
        out[39] = sh.debug.counts.ctx_cmps;
        out[40..48].copy_from_slice(&sh.caps.claim_bits.to_le_bytes());
        let mut at = HEADER_LEN;
        let mut count = 0u32;
        for (r, v) in self.records() {
            out[at..at + 8].copy_from_slice(&r.id().to_le_bytes());
            at += 8;
            let n = (r.bits() / 8) as usize;
            out[at..at + n].copy_from_slice(&v.to_le_bytes()[..n]);
            at += n;
            count += 1;
        }
        out[20..24].copy_from_slice(&count.to_le_bytes());
        let crc = crc32(out);
        out[16..20].copy_from_slice(&crc.to_le_bytes());
        Ok(len)
    }

    /// Reads a snapshot written by [`Self::to_bytes`] (bytes after the length the
    /// header gives are ignored). Checks the magic, version, lengths, checksum and
    /// every record (unknown or read-only registers and invalid values are refused);
    /// registers without a record keep their reset values.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        if bytes.len() < 12 {
            return Err(SnapshotError::Truncated {
                needed: HEADER_LEN,
                got: bytes.len(),
            });
        }
        if bytes[0..8] != MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let version = u16_at(8);
        if version != FORMAT_VERSION {
            return Err(SnapshotError::UnsupportedVersion(version));
        }
        if bytes.len() < HEADER_LEN {
            return Err(SnapshotError::Truncated {
                needed: HEADER_LEN,
                got: bytes.len(),
            });
        }
        let header_len = u16_at(10) as usize;
        let len = u32_at(12) as usize;
        if header_len < HEADER_LEN || header_len > len {
            return Err(SnapshotError::Malformed("header length"));
        }
        if bytes.len() < len {
            return Err(SnapshotError::Truncated {
                needed: len,
                got: bytes.len(),
            });
        }
        let bytes = &bytes[..len];
        let stored = u32_at(16);
        let computed = crc32_skipping(bytes, 16..20);
        if stored != computed {
            return Err(SnapshotError::Checksum { stored, computed });
        }
        let count = u32_at(20) as usize;
        let mut has = [0u8; 8];
        has.copy_from_slice(&bytes[24..32]);
        let vtr = VtrInfo {
            list_regs: bytes[32] as usize,
            pri_bits: bytes[33] as u32,
            pre_bits: bytes[34] as u32,
            id_bits: bytes[35] as u32,
        };
        let none = vtr.list_regs == 0;
        if vtr.list_regs > vgic::MAX_LRS
            || (none && (vtr.pri_bits | vtr.pre_bits | vtr.id_bits) != 0)
            || (!none && !(5..=8).contains(&vtr.pri_bits))
            || (!none && !(5..=7).contains(&vtr.pre_bits))
            || (!none && vtr.id_bits != 10 && vtr.id_bits != 16 && vtr.id_bits != 24)
        {
            return Err(SnapshotError::Malformed("virtual CPU interface shape"));
        }
        let flags = bytes[36];
        if flags & !FLAGS != 0 {
            return Err(SnapshotError::Malformed("unknown flags"));
        }
        let counts = crate::debug::Counts {
            brps: bytes[37],
            wrps: bytes[38],
            ctx_cmps: bytes[39],
        };
        let max = crate::debug::MAX_POINTS as u8;
        if counts.brps > max || counts.wrps > max || counts.ctx_cmps > counts.brps {
            return Err(SnapshotError::Malformed("breakpoint counts"));
        }
        let mut claim = [0u8; 8];
        claim.copy_from_slice(&bytes[40..48]);
        let shape = Shape {
            has: FeatureSet(u64::from_le_bytes(has)),
            vtr,
            passthrough_timer: flags & FLAG_PTIMER != 0,
            debug: DebugView {
                counts,
                double_lock: flags & FLAG_DOUBLE_LOCK != 0,
            },
            caps: DebugCaps {
                claim_bits: u64::from_le_bytes(claim),
                dtr: flags & FLAG_DTR != 0,
                mdccint: flags & FLAG_MDCCINT != 0,
            },
        };
        let mut ids = [0u64; idregs::ID_SPACE_LEN];
        let mut ids_seen = 0u64;
        let mut snap = Self::empty(shape, None);
        let mut at = header_len;
        for _ in 0..count {
            let id_bytes = bytes
                .get(at..at + 8)
                .ok_or(SnapshotError::Malformed("record count"))?;
            let mut b = [0u8; 8];
            b.copy_from_slice(id_bytes);
            let r = Reg::from_id(u64::from_le_bytes(b))?;
            at += 8;
            let n = (r.bits() / 8) as usize;
            let vb = bytes
                .get(at..at + n)
                .ok_or(SnapshotError::Malformed("record count"))?;
            let mut v = [0u8; 16];
            v[..n].copy_from_slice(vb);
            let value = u128::from_le_bytes(v);
            at += n;
            match r {
                Reg::Sys(a) if flags & FLAG_IDS != 0 && idregs::index(a).is_some() => {
                    let i = idregs::index(a).unwrap_or(0);
                    if ids_seen & (1 << i) != 0 {
                        return Err(SnapshotError::Malformed("ID register twice"));
                    }
                    ids_seen |= 1 << i;
                    ids[i] = value as u64;
                }
                _ => snap.set_reg(r, value)?,
            }
        }
        if at != len {
            return Err(SnapshotError::Malformed("bytes after the last record"));
        }
        if flags & FLAG_IDS != 0 {
            if ids_seen.count_ones() as usize != idregs::ID_SPACE_LEN {
                return Err(SnapshotError::Malformed("ID registers missing"));
            }
            snap.ids = Some(IdRegisters::from_values(ids));
        }
        Ok(snap)
    }
}

const _: () = assert!(idregs::ID_SPACE_LEN <= 64);

/// CRC-32 (IEEE 802.3: reflected polynomial 0xEDB88320, initial value and final XOR
/// 0xFFFFFFFF; "123456789" gives 0xCBF43926).
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32_skipping(bytes, 0..0)
}

/// CRC-32 of `bytes` with the bytes in `zero` read as 0 (the checksum field).
fn crc32_skipping(bytes: &[u8], zero: core::ops::Range<usize>) -> u32 {
    let mut c = 0xffff_ffffu32;
    for (i, &b) in bytes.iter().enumerate() {
        let b = if zero.contains(&i) { 0 } else { b };
        c = CRC_TABLE[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

#[cfg(feature = "serde")]
mod serde_impl {
    //! With the `serde` feature a [`Snapshot`] serializes as its byte format (one
    //! byte string, checked on the way back like [`Snapshot::from_bytes`]).
    use super::Snapshot;
    use serde::de::{Error as _, Visitor};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    impl Serialize for Snapshot {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut buf = [0u8; Snapshot::MAX_BYTES];
            let n = self.to_bytes(&mut buf).map_err(serde::ser::Error::custom)?;
            s.serialize_bytes(&buf[..n])
        }
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Snapshot;

        fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.write_str("a vCPU snapshot in the arm_vcpu byte format")
        }

        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Snapshot, E> {
            Snapshot::from_bytes(v).map_err(E::custom)
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Snapshot, A::Error> {
            // Formats without a byte-string type give a sequence of u8.
            let mut buf = [0u8; Snapshot::MAX_BYTES];
            let mut n = 0;
            while let Some(b) = seq.next_element::<u8>()? {
                let slot = buf
                    .get_mut(n)
                    .ok_or_else(|| A::Error::custom("snapshot longer than MAX_BYTES"))?;
                *slot = b;
                n += 1;
            }
            Snapshot::from_bytes(&buf[..n]).map_err(A::Error::custom)
        }
    }

    impl<'de> Deserialize<'de> for Snapshot {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_bytes(BytesVisitor)
        }
    }
}
