//! Registers by ID: one identifier ([`Reg`]) for every piece of a vCPU's state a VMM
//! may read or write, as KVM's `KVM_GET_ONE_REG` / `KVM_SET_ONE_REG` /
//! `KVM_GET_REG_LIST` give it (the idea, not the numbering).
//!
//! | group | [`Reg`] | width | notes |
//! |---|---|---|---|
//! | general-purpose | [`Reg::X`]`(0..=30)`, [`Reg::SpEl0`], [`Reg::SpEl1`], [`Reg::Pc`], [`Reg::Pstate`] | 64 | `Pstate` is `SPSR_EL2` as the guest resumes with it; a value that is not an EL0/EL1 state is refused |
//! | FP/SIMD | [`Reg::V`]`(0..=31)`, [`Reg::Fpcr`], [`Reg::Fpsr`] | 128 / 64 | the live registers while the guest's FP state is loaded |
//! | system | [`Reg::Sys`]`(encoding)` | 64 | every register of the switch list ([`crate::context::SWITCHED`]) the host has; the self-hosted debug state ([`crate::debug`]: `DBGBCR<n>`/`DBGBVR<n>`/`DBGWCR<n>`/`DBGWVR<n>_EL1` for as many as the VM's view has, `MDSCR_EL1`, `MDCCINT_EL1`, `OSDTRRX/TX_EL1`, the claim tags as `DBGCLAIMCLR_EL1`, `OSECCR_EL1`, the OS lock as `OSLSR_EL1`, `OSDLR_EL1`, `DBGPRCR_EL1`); the VM's ID registers (read-only) once it has been bound. EL2 controls the crate composes are read-only, `CNTVOFF_EL2` is the host's |
//! | timer | [`Reg::VirtualCount`] | 64 | the guest's virtual count (`CNTVCT_EL0` as it reads it); writing it moves `CNTVOFF_EL2` |
//! | virtual GIC | [`Reg::Vgic`]: [`VgicReg::Lr`], [`VgicReg::Ap0r`], [`VgicReg::Ap1r`], [`VgicReg::Vmcr`], [`VgicReg::Queued`] | 64 | as many as the core's `ICH_VTR_EL2` gives, when the vCPU uses the virtual CPU interface; on a GICv2 core the values are the GICH frame's (`GICH_LR<n>`, `GICH_APR` as AP0R0 and no AP1R, `GICH_VMCR`; 32 bits), and a queued SGI carries its source CPU interface in bits \[34:32\] |
//! | vCPU | [`Reg::Vcpu`]: [`VcpuReg::SErrorPending`], [`VcpuReg::Completion`], [`VcpuReg::PowerState`] | 64 | a pending virtual SError; what the last exit left to complete; on / off / on-pending |
//!
//! Which system registers exist is not written here: the list is the switch list (one
//! `macro_rules!` in `context.rs` generates it, the register fields and the load/save
//! sequences), filtered by the host's features, plus the inventory's debug rows
//! ([`crate::sysreg::INVENTORY`], treatment `LazyDebug` and the emulated OS lock) that
//! hold state and exist in the VM's view. A host test fails if the two and
//! [`reg_list`](crate::Aarch64VCpu::reg_list) disagree.
//!
//! Each register has a stable 64-bit ID ([`Reg::id`], [`Reg::from_id`]); the snapshot
//! byte format ([`crate::snapshot`]) is a list of (ID, value) records.
//!
//! ```
//! use arm_vcpu::reg::{Reg, RegError};
//! use arm_vcpu::{Aarch64VCpu, Aarch64VCpuCreateConfig, SysRegAddr};
//!
//! let mut vcpu = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default())?;
//! vcpu.set_reg(Reg::X(3), 0x1234)?;
//! assert_eq!(vcpu.get_reg(Reg::X(3))?, 0x1234);
//! let tpidr_el1 = Reg::Sys(SysRegAddr::new(3, 0, 13, 0, 4));
//! vcpu.set_reg(tpidr_el1, 0xfeed)?;
//! assert_eq!(vcpu.get_reg(tpidr_el1)?, 0xfeed);
//! // HCR_EL2 is composed by the crate: read-only.
//! let hcr = Reg::Sys(SysRegAddr::new(3, 4, 1, 1, 0));
//! assert_eq!(vcpu.set_reg(hcr, 0), Err(RegError::ReadOnly(hcr)));
//! // IDs round-trip, and every listed register can be read.
//! for r in vcpu.reg_list() {
//!     assert_eq!(Reg::from_id(r.id()), Ok(r));
//!     vcpu.get_reg(r)?;
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::fmt;

use crate::context::{Aarch64ContextFrame, FpSimdState, GuestSystemRegisters, Kind, SWITCHED};
use crate::debug::{self, DebugCaps, DebugReg, DebugSwitch, DebugView};
use crate::emulate;
use crate::exit::{AccessWidth, Pending, SysRegAddr};
use crate::idregs::{self, IdRegisters};
use crate::power::PowerState;
use crate::smccc::{self, Conduit, Outcome, SmcForwardList};
use crate::sysreg::{self, Emulation, FeatureSet, Treatment, INVENTORY};
use crate::timer::{self, EmulatedTimer};
use crate::vgic::{self, PendingQueue, VgicState, VtrInfo};
use crate::workaround::Workarounds;

/// One register (or piece of vCPU state) by identity. See the [module](self) table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reg {
    /// General-purpose register x0..x30.
    X(u8),
    /// `SP_EL0`.
    SpEl0,
    /// `SP_EL1`.
    SpEl1,
    /// The PC (`ELR_EL2`: where the guest resumes).
    Pc,
    /// PSTATE (`SPSR_EL2`: the state the guest resumes with).
    Pstate,
    /// SIMD&FP register V0..V31 (128 bits).
    V(u8),
    /// `FPCR`.
    Fpcr,
    /// `FPSR`.
    Fpsr,
    /// A system register by its encoding.
    Sys(SysRegAddr),
    /// The guest's virtual count: the physical count minus `CNTVOFF_EL2`. Writing it
    /// sets `CNTVOFF_EL2` so that the guest reads this value now.
    VirtualCount,
    /// Virtual GIC state.
    Vgic(VgicReg),
    /// Other vCPU state.
    Vcpu(VcpuReg),
}

/// Virtual GIC state (GICv3 virtual CPU interface, IHI 0069 "ICH_*_EL2").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VgicReg {
    /// `ICH_LR<n>_EL2`: a list register (n below `ICH_VTR_EL2.ListRegs + 1`).
    Lr(u8),
    /// `ICH_AP0R<n>_EL2`: group 0 active priorities (n below 1, 2 or 4 as
    /// `ICH_VTR_EL2.PRIbits` says).
    Ap0r(u8),
    /// `ICH_AP1R<n>_EL2`: group 1 active priorities.
    Ap1r(u8),
    /// `ICH_VMCR_EL2`: the guest's PMR, BPRs, group enables, EOI mode.
    Vmcr,
    /// Entry n (0..64) of the interrupts waiting for a free list register, in order,
    /// as the list register it will become (State = pending; vINTID, pINTID, HW,
    /// Group, Priority as in `ICH_LR<n>_EL2`); 0 past the end of the queue. Writing
    /// entry n replaces it (n below the queue's length) or appends (n = the length);
    /// writing 0 removes it and every later entry.
    Queued(u8),
}

/// vCPU state that is not an architectural register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VcpuReg {
    /// 1 if a virtual SError is pending (`HCR_EL2.VSE`), else 0.
    SErrorPending,
    /// What the last exit left for the host or the next entry to complete (see
    /// [`Completion`]), as [`Completion::encode`] packs it.
    Completion,
    /// The PSCI power state as AFFINITY_INFO gives it: 0 on, 1 off, 2 on-pending
    /// ([`PowerState`]).
    PowerState,
}

/// Whether a register can be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read and write.
    ReadWrite,
    /// Read only: composed by the crate (EL2 controls) or fixed (the ID view).
    ReadOnly,
}

/// Why a register access failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegError {
    /// The register does not exist on this vCPU (not in [`reg_list`]: out of range,
    /// not switched, or its feature is absent on the host).
    ///
    /// [`reg_list`]: crate::Aarch64VCpu::reg_list
    Unknown(Reg),
    /// The ID names no register of this crate.
    UnknownId(u64),
    /// The register is read-only.
    ReadOnly(Reg),
    /// The value is not one the register can hold (wider than it, or an invalid
    /// state: an SPSR that is not EL0/EL1, a list register with a reserved INTID...).
    InvalidValue(Reg),
    /// The vCPU is bound to another physical core than the caller's (its live state is
    /// in that core's registers).
    WrongCpu,
}

impl fmt::Display for RegError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown(r) => write!(f, "no register {r} on this vCPU"),
            Self::UnknownId(id) => write!(f, "unknown register ID {id:#x}"),
            Self::ReadOnly(r) => write!(f, "{r} is read-only"),
            Self::InvalidValue(r) => write!(f, "invalid value for {r}"),
            Self::WrongCpu => write!(f, "the vCPU is bound to another physical CPU"),
        }
    }
}

impl core::error::Error for RegError {}

// ---- IDs ----

/// ID bits \[55:48\]: the register's class.
const CLASS_SHIFT: u32 = 48;
/// ID bits \[63:60\]: log2 of the value's size in bytes (3: 64 bits, 4: 128 bits).
const SIZE_SHIFT: u32 = 60;
const SIZE_64: u64 = 3 << SIZE_SHIFT;
const SIZE_128: u64 = 4 << SIZE_SHIFT;

/// Register classes (ID bits \[55:48\]).
pub(crate) mod class {
    pub const CORE: u64 = 1;
    pub const FP: u64 = 2;
    pub const SYS: u64 = 3;
    pub const TIMER: u64 = 4;
    pub const VGIC: u64 = 5;
    pub const VCPU: u64 = 6;
}

const CORE_SP_EL0: u64 = 31;
const CORE_SP_EL1: u64 = 32;
const CORE_PC: u64 = 33;
const CORE_PSTATE: u64 = 34;
const FP_FPCR: u64 = 32;
const FP_FPSR: u64 = 33;
const VGIC_AP0R: u64 = 0x10;
const VGIC_AP1R: u64 = 0x20;
const VGIC_VMCR: u64 = 0x30;
const VGIC_QUEUED: u64 = 0x100;

/// `SP_EL0` (3, 0, 4, 1, 0) and `SP_EL1` (3, 4, 4, 1, 0): in the switch list, named
/// [`Reg::SpEl0`] / [`Reg::SpEl1`] here.
const SP_EL0: SysRegAddr = SysRegAddr::new(3, 0, 4, 1, 0);
pub(crate) const SP_EL1: SysRegAddr = SysRegAddr::new(3, 4, 4, 1, 0);
/// `CNTVOFF_EL2` (3, 4, 14, 0, 3): chosen by the host (per VM), not guest state.
pub const CNTVOFF_EL2: SysRegAddr = SysRegAddr::new(3, 4, 14, 0, 3);
/// `HCR_EL2.VSE`, bit 8.
const HCR_VSE: u64 = 1 << 8;
/// `OSLSR_EL1.OSLK`, bit 1.
const OSLSR_OSLK: u64 = 1 << 1;

impl Reg {
    /// The stable 64-bit ID: size \[63:60\] (log2 bytes), class \[55:48\], index
    /// \[47:0\]. Classes: 1 general-purpose (x0..x30 = 0..30, SP_EL0 31, SP_EL1 32,
    /// PC 33, PSTATE 34), 2 FP/SIMD (V0..V31 = 0..31, FPCR 32, FPSR 33), 3 system
    /// (index = op0 << 14 | op1 << 11 | CRn << 7 | CRm << 3 | op2), 4 timer (0: the
    /// virtual count), 5 virtual GIC (LR n = n, AP0R n = 0x10 + n, AP1R n = 0x20 + n,
    /// VMCR 0x30, queue entry n = 0x100 + n), 6 vCPU (0 SError pending, 1 completion,
    /// 2 power state).
    pub const fn id(self) -> u64 {
        let (size, class, index) = match self {
            Self::X(n) => (SIZE_64, class::CORE, n as u64),
            Self::SpEl0 => (SIZE_64, class::CORE, CORE_SP_EL0),
            Self::SpEl1 => (SIZE_64, class::CORE, CORE_SP_EL1),
            Self::Pc => (SIZE_64, class::CORE, CORE_PC),
            Self::Pstate => (SIZE_64, class::CORE, CORE_PSTATE),
            Self::V(n) => (SIZE_128, class::FP, n as u64),
            Self::Fpcr => (SIZE_64, class::FP, FP_FPCR),
            Self::Fpsr => (SIZE_64, class::FP, FP_FPSR),
            Self::Sys(a) => (SIZE_64, class::SYS, sysreg::key(a) as u64),
            Self::VirtualCount => (SIZE_64, class::TIMER, 0),
            Self::Vgic(g) => (
                SIZE_64,
                class::VGIC,
                match g {
                    VgicReg::Lr(n) => n as u64,
                    VgicReg::Ap0r(n) => VGIC_AP0R + n as u64,
                    VgicReg::Ap1r(n) => VGIC_AP1R + n as u64,
                    VgicReg::Vmcr => VGIC_VMCR,
                    VgicReg::Queued(n) => VGIC_QUEUED + n as u64,
                },
            ),
            Self::Vcpu(v) => (
                SIZE_64,
                class::VCPU,
                match v {
                    VcpuReg::SErrorPending => 0,
                    VcpuReg::Completion => 1,
                    VcpuReg::PowerState => 2,
                },
            ),
        };
        size | class << CLASS_SHIFT | index
    }

    /// The register an ID names; [`RegError::UnknownId`] for an ID that names none
    /// (whether it exists on a given vCPU is for [`reg_list`] to say).
    ///
    /// [`reg_list`]: crate::Aarch64VCpu::reg_list
    pub const fn from_id(id: u64) -> Result<Self, RegError> {
        let size = id & (0xf << SIZE_SHIFT);
        let class = (id >> CLASS_SHIFT) & 0xff;
        let index = id & 0xffff_ffff_ffff;
        if (id >> 56) & 0xf != 0 {
            return Err(RegError::UnknownId(id));
        }
        let r = match (class, index) {
            (class::CORE, 0..=30) => Self::X(index as u8),
            (class::CORE, CORE_SP_EL0) => Self::SpEl0,
            (class::CORE, CORE_SP_EL1) => Self::SpEl1,
            (class::CORE, CORE_PC) => Self::Pc,
            (class::CORE, CORE_PSTATE) => Self::Pstate,
            (class::FP, 0..=31) => Self::V(index as u8),
            (class::FP, FP_FPCR) => Self::Fpcr,
            (class::FP, FP_FPSR) => Self::Fpsr,
            (class::SYS, 0..=0xffff) => {
                let a = sysreg::from_key(index as u32);
                // SP_EL0/SP_EL1 have their own names (one ID per register).
                if a.0 == SP_EL0.0 || a.0 == SP_EL1.0 {
                    return Err(RegError::UnknownId(id));
                }
                Self::Sys(a)
            }
            (class::TIMER, 0) => Self::VirtualCount,
            (class::VGIC, 0..=15) => Self::Vgic(VgicReg::Lr(index as u8)),
            (class::VGIC, 0x10..=0x13) => Self::Vgic(VgicReg::Ap0r((index - VGIC_AP0R) as u8)),
            (class::VGIC, 0x20..=0x23) => Self::Vgic(VgicReg::Ap1r((index - VGIC_AP1R) as u8)),
            (class::VGIC, VGIC_VMCR) => Self::Vgic(VgicReg::Vmcr),
            (class::VGIC, 0x100..=0x13f) => {
                Self::Vgic(VgicReg::Queued((index - VGIC_QUEUED) as u8))
            }
            (class::VCPU, 0) => Self::Vcpu(VcpuReg::SErrorPending),
            (class::VCPU, 1) => Self::Vcpu(VcpuReg::Completion),
            (class::VCPU, 2) => Self::Vcpu(VcpuReg::PowerState),
            _ => return Err(RegError::UnknownId(id)),
        };
        if r.id() & (0xf << SIZE_SHIFT) != size {
            return Err(RegError::UnknownId(id));
        }
        Ok(r)
    }

    /// The value's width in bits (64, or 128 for [`Reg::V`]).
    pub const fn bits(self) -> u32 {
        8 << ((self.id() >> SIZE_SHIFT) & 0xf)
    }

    /// The one name of a register that has two: `Sys(SP_EL0)` is [`Reg::SpEl0`],
    /// `Sys(SP_EL1)` is [`Reg::SpEl1`].
    pub const fn canonical(self) -> Self {
        match self {
            Self::Sys(a) if a.0 == SP_EL0.0 => Self::SpEl0,
            Self::Sys(a) if a.0 == SP_EL1.0 => Self::SpEl1,
            r => r,
        }
    }
}

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::X(n) => write!(f, "x{n}"),
            Self::SpEl0 => f.write_str("SP_EL0"),
            Self::SpEl1 => f.write_str("SP_EL1"),
            Self::Pc => f.write_str("PC"),
            Self::Pstate => f.write_str("PSTATE"),
            Self::V(n) => write!(f, "V{n}"),
            Self::Fpcr => f.write_str("FPCR"),
            Self::Fpsr => f.write_str("FPSR"),
            Self::Sys(a) => match sys_name(a) {
                Some(n) => f.write_str(n),
                None => write!(
                    f,
                    "S{}_{}_C{}_C{}_{}",
                    a.op0(),
                    a.op1(),
                    a.crn(),
                    a.crm(),
                    a.op2()
                ),
            },
            Self::VirtualCount => f.write_str("CNTVCT (virtual count)"),
            Self::Vgic(VgicReg::Lr(n)) => write!(f, "ICH_LR{n}_EL2"),
            Self::Vgic(VgicReg::Ap0r(n)) => write!(f, "ICH_AP0R{n}_EL2"),
            Self::Vgic(VgicReg::Ap1r(n)) => write!(f, "ICH_AP1R{n}_EL2"),
            Self::Vgic(VgicReg::Vmcr) => f.write_str("ICH_VMCR_EL2"),
            Self::Vgic(VgicReg::Queued(n)) => write!(f, "queued interrupt {n}"),
            Self::Vcpu(VcpuReg::SErrorPending) => f.write_str("pending virtual SError"),
            Self::Vcpu(VcpuReg::Completion) => f.write_str("pending completion"),
            Self::Vcpu(VcpuReg::PowerState) => f.write_str("power state"),
        }
    }
}

/// The name of a system register: from the switch list, else the inventory.
fn sys_name(a: SysRegAddr) -> Option<&'static str> {
    if let Some(s) = SWITCHED.iter().find(|s| s.addr == a) {
        return Some(s.name);
    }
    match sysreg::lookup(a) {
        Some(r) if r.first == r.last => Some(r.name),
        _ => None,
    }
}

// ---- what a system register is, for get/set ----

/// How [`Reg::Sys`] reaches a system register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SysKind {
    /// Guest state in the switch list.
    Switched,
    /// An EL2 control the crate composes at bind: read-only.
    Control,
    /// `CNTVOFF_EL2`: the host's choice (per VM). Not in snapshots, which hold the
    /// virtual count instead.
    HostOffset,
    /// `CPACR_EL1`: reads give the guest-visible fields, writes are composed for the
    /// host's features (as the guest's own accesses).
    Cpacr,
    /// `CNTP_CTL_EL0` / `CNTP_CVAL_EL0`: switched with `passthrough_timer`, emulated
    /// otherwise.
    PhysTimer,
    /// Self-hosted debug state ([`crate::debug`]): switched lazily, or emulated (the
    /// OS lock).
    Debug(DebugReg),
    /// The VM's ID view: read-only.
    IdView,
}

/// Whether debug register `r` holds state of its own (not a constant, a view of
/// another register, a write-only or side-effect register).
pub(crate) const fn debug_state(r: DebugReg) -> bool {
    matches!(
        r,
        DebugReg::Bvr(_)
            | DebugReg::Bcr(_)
            | DebugReg::Wvr(_)
            | DebugReg::Wcr(_)
            | DebugReg::Mdscr
            | DebugReg::Mdccint
            | DebugReg::OsDtrRx
            | DebugReg::OsDtrTx
            | DebugReg::OsEccr
            | DebugReg::ClaimClr
            | DebugReg::OsLsr
            | DebugReg::OsDlr
            | DebugReg::DbgPrcr
    )
}

/// Whether inventory row `row` is a debug register with state (treatment `LazyDebug`,
/// or the emulated OS lock).
fn debug_row(row: &sysreg::SysReg) -> Option<DebugReg> {
    if row.first != row.last
        || !matches!(
            row.treat,
            Treatment::LazyDebug | Treatment::Emulated(Emulation::OsLock)
        )
    {
        return None;
    }
    DebugReg::decode(row.first).filter(|r| debug_state(*r))
}

/// Whether the VM has debug register `r` (as [`DebugSwitch::exists`]; `OSDLR_EL1`
/// holds state only with FEAT_DoubleLock).
fn debug_exists(r: DebugReg, shape: &Shape) -> bool {
    let sw = DebugSwitch {
        view: shape.debug,
        caps: shape.caps,
        ..DebugSwitch::default()
    };
    sw.exists(r) && (r != DebugReg::OsDlr || shape.debug.double_lock)
}

/// How the crate treats `a` for register access, if it is state of a vCPU of `shape`.
/// Derived from the switch list ([`Kind`], [`crate::context::Gate`]) and the
/// inventory's treatment: no register is named here except `CNTVOFF_EL2`.
pub(crate) fn sys_kind(a: SysRegAddr, shape: &Shape, ids_known: bool) -> Option<SysKind> {
    if let Some(s) = SWITCHED.iter().find(|s| s.addr == a) {
        if !s.gate.on(shape.has) {
            return None;
        }
        let treat = sysreg::lookup(a).map(|r| r.treat);
        return Some(match (s.kind, treat) {
            (Kind::Ctl, _) if a == CNTVOFF_EL2 => SysKind::HostOffset,
            (k, _) if k.is_control() => SysKind::Control,
            (_, Some(Treatment::Cpacr)) => SysKind::Cpacr,
            (_, Some(Treatment::PhysTimer)) => SysKind::PhysTimer,
            _ => SysKind::Switched,
        });
    }
    if idregs::index(a).is_some() {
        return ids_known.then_some(SysKind::IdView);
    }
    let r = debug_row(sysreg::lookup(a)?)?;
    debug_exists(r, shape).then_some(SysKind::Debug(r))
}

/// Whether `r`'s access (in a vCPU of `shape`).
pub(crate) fn access(r: Reg, shape: &Shape) -> Access {
    match r {
        Reg::Sys(a) => match sys_kind(a, shape, true) {
            Some(SysKind::Control | SysKind::IdView) => Access::ReadOnly,
            _ => Access::ReadWrite,
        },
        _ => Access::ReadWrite,
    }
}

/// Whether a snapshot holds `r` (writable state, not the host's `CNTVOFF_EL2`).
pub(crate) fn in_snapshot(r: Reg, shape: &Shape) -> bool {
    match r {
        // The mutation builds leave these out (the `snapshot` scenario must fail).
        Reg::VirtualCount => !cfg!(arm_vcpu_mutate = "snapshot-vcount"),
        Reg::Vgic(VgicReg::Queued(_)) => !cfg!(arm_vcpu_mutate = "snapshot-queue"),
        Reg::Sys(a) => matches!(
            sys_kind(a, shape, false),
            Some(SysKind::Switched | SysKind::Cpacr | SysKind::PhysTimer | SysKind::Debug(_))
        ),
        _ => true,
    }
}

// ---- the completion register ----

/// What the last exit left to complete, as [`VcpuReg::Completion`] holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Completion {
    /// Nothing.
    None,
    /// The PC advances by this many bytes at the next entry (an emulated store, MSR,
    /// WFx, or a trapped SMC the host answered).
    Advance(u8),
    /// An MMIO load waits for [`complete_mmio_read`](crate::Aarch64VCpu::complete_mmio_read)
    /// (the address is in the exit the host received: a VMM that snapshots before
    /// completing keeps it with its device state, as KVM's `kvm_run.mmio` is the VMM's).
    MmioRead {
        /// Destination register (31: XZR).
        reg: u8,
        /// Access width.
        width: AccessWidth,
        /// X (not W) destination.
        reg_64bit: bool,
        /// Sign-extending load.
        sign_extend: bool,
        /// Instruction length (2 or 4).
        len: u8,
    },
    /// An MRS waits for [`complete_sysreg_read`](crate::Aarch64VCpu::complete_sysreg_read).
    SysRegRead {
        /// Destination register (31: XZR).
        rt: u8,
        /// Instruction length.
        len: u8,
    },
    /// The frame was changed by the host: checked at the next entry.
    CheckFrame,
    /// A PSCI call waits for [`complete_psci`](crate::Aarch64VCpu::complete_psci); the
    /// call is the one in x0..x3 (decoded again on restore).
    Psci {
        /// HVC or SMC.
        conduit: Conduit,
    },
}

impl Completion {
    /// Packs it: tag \[7:0\] (0 none, 1 advance, 2 MMIO read, 3 MRS, 4 check frame,
    /// 5 PSCI), length \[15:8\], register \[23:16\], access bytes \[31:24\], X
    /// destination \[32\], sign extension \[33\], SMC conduit \[34\].
    pub const fn encode(self) -> u64 {
        match self {
            Self::None => 0,
            Self::Advance(n) => 1 | (n as u64) << 8,
            Self::MmioRead {
                reg,
                width,
                reg_64bit,
                sign_extend,
                len,
            } => {
                2 | (len as u64) << 8
                    | (reg as u64) << 16
                    | (width.bytes() as u64) << 24
                    | (reg_64bit as u64) << 32
                    | (sign_extend as u64) << 33
            }
            Self::SysRegRead { rt, len } => 3 | (len as u64) << 8 | (rt as u64) << 16,
            Self::CheckFrame => 4,
            Self::Psci { conduit } => 5 | (matches!(conduit, Conduit::Smc) as u64) << 34,
        }
    }

    /// Unpacks [`Self::encode`]'s value; `None` for one it cannot produce.
    pub const fn decode(v: u64) -> Option<Self> {
        let len = (v >> 8) as u8;
        let reg = (v >> 16) as u8;
        let bytes = (v >> 24) as u8;
        let c = match v & 0xff {
            0 => Self::None,
            1 => Self::Advance(len),
            2 => Self::MmioRead {
                reg,
                width: match bytes {
                    1 => AccessWidth::Byte,
                    2 => AccessWidth::Half,
                    4 => AccessWidth::Word,
                    8 => AccessWidth::Dword,
                    _ => return None,
                },
                reg_64bit: (v >> 32) & 1 != 0,
                sign_extend: (v >> 33) & 1 != 0,
                len,
            },
            3 => Self::SysRegRead { rt: reg, len },
            4 => Self::CheckFrame,
            5 => Self::Psci {
                conduit: if (v >> 34) & 1 != 0 {
                    Conduit::Smc
                } else {
                    Conduit::Hvc
                },
            },
            _ => return None,
        };
        if c.encode() != v {
            return None;
        }
        if let Self::MmioRead { reg, len, .. } | Self::SysRegRead { rt: reg, len } = c {
            if reg > 31 || !(len == 2 || len == 4) {
                return None;
            }
        }
        if let Self::Advance(n) = c {
            if n > 4 || n % 2 != 0 {
                return None;
            }
        }
        Some(c)
    }

    pub(crate) const fn of(p: &Pending) -> Self {
        match *p {
            Pending::None => Self::None,
            Pending::Advance(n) => Self::Advance(n),
            Pending::MmioRead(load) => Self::MmioRead {
                reg: load.reg(),
                width: load.width(),
                reg_64bit: load.reg_64bit(),
                sign_extend: load.sign_extend(),
                len: load.len(),
            },
            Pending::SysRegRead { rt, len } => Self::SysRegRead { rt, len },
            Pending::CheckFrame => Self::CheckFrame,
            Pending::Psci { advance, .. } => Self::Psci {
                conduit: if advance != 0 {
                    Conduit::Smc
                } else {
                    Conduit::Hvc
                },
            },
        }
    }

    /// The pending state for the frame `f` (a PSCI call is decoded again from x0..x3:
    /// `None` if they no longer hold one).
    pub(crate) fn pending(self, f: &Aarch64ContextFrame) -> Option<Pending> {
        Some(match self {
            Self::None => Pending::None,
            Self::Advance(n) => Pending::Advance(n),
            Self::MmioRead {
                reg,
                width,
                reg_64bit,
                sign_extend,
                len,
            } => Pending::MmioRead(crate::exit::MmioLoad::new(
                reg,
                width,
                reg_64bit,
                sign_extend,
                len,
            )),
            Self::SysRegRead { rt, len } => Pending::SysRegRead { rt, len },
            Self::CheckFrame => Pending::CheckFrame,
            Self::Psci { conduit } => {
                let g = &f.gpr;
                let args = [g[0], g[1], g[2], g[3], g[4], g[5], g[6]];
                let none = SmcForwardList::default();
                match smccc::dispatch(conduit, 0, &args, &none, &Workarounds::UNKNOWN) {
                    Outcome::Request(request) => Pending::Psci {
                        request,
                        advance: if conduit == Conduit::Smc { 4 } else { 0 },
                    },
                    _ => return None,
                }
            }
        })
    }
}

// ---- the state the accessors work on ----

/// What decides which registers a vCPU has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Shape {
    /// The host's features (the switch list's gates).
    pub has: FeatureSet,
    /// The virtual CPU interface (`list_regs` 0: not in use).
    pub vtr: VtrInfo,
    /// The EL1 physical timer is passed through (switched) rather than emulated.
    pub passthrough_timer: bool,
    /// The VM's debug view (breakpoint and watchpoint counts, double lock).
    pub debug: DebugView,
    /// The debug registers the core implements beyond what ID registers say.
    pub caps: DebugCaps,
}

/// Where the virtual count comes from.
#[derive(Debug)]
pub(crate) enum Count<T> {
    /// A vCPU: the physical count now, and `CNTVOFF_EL2` of the register state.
    Live(u64),
    /// A snapshot: the count it was taken at.
    Fixed(T),
}

/// A vCPU's stored state, borrowed (a vCPU's unbound copy, or a snapshot).
pub(crate) struct Parts<'a> {
    pub frame: &'a Aarch64ContextFrame,
    pub fp: &'a FpSimdState,
    pub sys: &'a GuestSystemRegisters,
    pub dbg: &'a DebugSwitch,
    pub power: &'a PowerState,
    pub vgic: &'a VgicState,
    pub queue: &'a PendingQueue,
    pub ptimer: &'a EmulatedTimer,
    pub pending: &'a Pending,
    pub ids: Option<&'a IdRegisters>,
    pub count: Count<&'a u64>,
    pub shape: Shape,
    /// The physical count (emulated timer status).
    pub now: u64,
}

/// The same, mutably (ID registers are read-only).
pub(crate) struct PartsMut<'a> {
    pub frame: &'a mut Aarch64ContextFrame,
    pub fp: &'a mut FpSimdState,
    pub sys: &'a mut GuestSystemRegisters,
    pub dbg: &'a mut DebugSwitch,
    pub power: &'a mut PowerState,
    pub vgic: &'a mut VgicState,
    pub queue: &'a mut PendingQueue,
    pub ptimer: &'a mut EmulatedTimer,
    pub pending: &'a mut Pending,
    pub ids_known: bool,
    pub count: Count<&'a mut u64>,
    pub shape: Shape,
    pub now: u64,
}

fn vgic_index_ok(g: VgicReg, vtr: &VtrInfo) -> bool {
    match g {
        VgicReg::Lr(n) => (n as usize) < vtr.list_regs,
        VgicReg::Ap0r(n) => vtr.list_regs != 0 && (n as usize) < vtr.ap0_regs(),
        // GICv2 has one active-priority register (`GICH_APR`, kept as AP0R0).
        VgicReg::Ap1r(n) => vtr.list_regs != 0 && (n as usize) < vtr.ap1_regs(),
        VgicReg::Vmcr => vtr.list_regs != 0,
        // The queue exists before the interface is known (interrupts injected before
        // the first bind wait there).
        VgicReg::Queued(n) => (n as usize) < vgic::QUEUE_LEN,
    }
}

/// The INTID size interrupts are checked against: the interface's, or 24 bits
/// (the most) before it is known, as `inject_interrupt` does.
const fn id_bits(vtr: &VtrInfo) -> u32 {
    if vtr.list_regs == 0 {
        24
    } else {
        vtr.id_bits
    }
}

/// The stored value of `r`.
pub(crate) fn get(p: &Parts<'_>, r: Reg) -> Result<u128, RegError> {
    let r = r.canonical();
    let v: u64 = match r {
        Reg::X(n @ 0..=30) => p.frame.gpr[n as usize],
        Reg::SpEl0 => p.sys.sp_el0,
        Reg::SpEl1 => p.sys.sp_el1,
        Reg::Pc => p.frame.elr,
        Reg::Pstate => p.frame.spsr,
        Reg::V(n @ 0..=31) => return Ok(p.fp.v[n as usize]),
        Reg::Fpcr => p.fp.fpcr,
        Reg::Fpsr => p.fp.fpsr,
        Reg::Sys(a) => match sys_kind(a, &p.shape, p.ids.is_some()) {
            Some(SysKind::Switched | SysKind::Control | SysKind::HostOffset) => {
                p.sys.by_addr(a).ok_or(RegError::Unknown(r))?
            }
            Some(SysKind::Cpacr) => p.sys.cpacr_el1 & emulate::CPACR_GUEST_FIELDS,
            Some(SysKind::PhysTimer) if p.shape.passthrough_timer => {
                p.sys.by_addr(a).ok_or(RegError::Unknown(r))?
            }
            Some(SysKind::PhysTimer) => p.ptimer.read(a, p.now),
            Some(SysKind::Debug(d)) => debug_get(p.dbg, d),
            Some(SysKind::IdView) => match p.ids.and_then(|i| i.read(a)) {
                Some(v) => v,
                None => return Err(RegError::Unknown(r)),
            },
            None => return Err(RegError::Unknown(r)),
        },
        Reg::VirtualCount => match p.count {
            Count::Live(now) => now.wrapping_sub(p.sys.cntvoff_el2),
            Count::Fixed(c) => *c,
        },
        Reg::Vgic(g) if vgic_index_ok(g, &p.shape.vtr) => match g {
            VgicReg::Lr(n) => p.vgic.lr[n as usize],
            VgicReg::Ap0r(n) => p.vgic.ap0r[n as usize],
            VgicReg::Ap1r(n) => p.vgic.ap1r[n as usize],
            VgicReg::Vmcr => p.vgic.vmcr,
            VgicReg::Queued(n) => p
                .queue
                .get_queued(n as usize)
                .map_or(0, |q| vgic::encode_queued(&q)),
        },
        Reg::Vcpu(VcpuReg::SErrorPending) => (p.sys.hcr_el2 & HCR_VSE != 0) as u64,
        Reg::Vcpu(VcpuReg::Completion) => Completion::of(p.pending).encode(),
        Reg::Vcpu(VcpuReg::PowerState) => p.power.affinity_info() as u64,
        _ => return Err(RegError::Unknown(r)),
    };
    Ok(v as u128)
}

/// A debug register's value in `d` (the vCPU's copy).
pub(crate) fn debug_get(d: &DebugSwitch, r: DebugReg) -> u64 {
    let (g, os) = (&d.guest, &d.os);
    let at = |a: &[u64; debug::MAX_POINTS], n: u8| a.get(n as usize).copied().unwrap_or(0);
    match r {
        DebugReg::Bvr(n) => at(&g.bvr, n),
        DebugReg::Bcr(n) => at(&g.bcr, n),
        DebugReg::Wvr(n) => at(&g.wvr, n),
        DebugReg::Wcr(n) => at(&g.wcr, n),
        DebugReg::Mdscr => g.mdscr,
        DebugReg::Mdccint => g.mdccint,
        DebugReg::OsDtrRx => g.dtrrx,
        DebugReg::OsDtrTx => g.dtrtx,
        DebugReg::ClaimClr => g.claim,
        DebugReg::OsEccr => os.oseccr,
        DebugReg::OsLsr => debug::oslsr(os.locked),
        DebugReg::OsDlr => os.double_lock as u64,
        DebugReg::DbgPrcr => os.core_npdrq as u64,
        _ => 0,
    }
}

/// Writes a debug register of `d` (the vCPU's copy); `false` for a value it cannot
/// hold (32-bit registers, claim tags the core lacks, OS lock bits other than OSLK).
pub(crate) fn debug_set(d: &mut DebugSwitch, r: DebugReg, v: u64) -> bool {
    let caps = d.caps;
    let (g, os) = (&mut d.guest, &mut d.os);
    let at = |a: &mut [u64; debug::MAX_POINTS], n: u8, v: u64| match a.get_mut(n as usize) {
        Some(slot) => {
            *slot = v;
            true
        }
        None => false,
    };
    let u32_only = v <= u32::MAX as u64;
    match r {
        DebugReg::Bvr(n) => at(&mut g.bvr, n, v),
        DebugReg::Bcr(n) => at(&mut g.bcr, n, v),
        DebugReg::Wvr(n) => at(&mut g.wvr, n, v),
        DebugReg::Wcr(n) => at(&mut g.wcr, n, v),
        DebugReg::Mdscr => {
            g.mdscr = v;
            true
        }
        DebugReg::Mdccint => {
            g.mdccint = v;
            true
        }
        DebugReg::OsDtrRx if u32_only => {
            g.dtrrx = v;
            true
        }
        DebugReg::OsDtrTx if u32_only => {
            g.dtrtx = v;
            true
        }
        DebugReg::ClaimClr if v & !caps.claim_bits == 0 => {
            g.claim = v;
            true
        }
        DebugReg::OsEccr if u32_only => {
            os.oseccr = v;
            true
        }
        DebugReg::OsLsr if v == debug::oslsr(v & OSLSR_OSLK != 0) => {
            os.locked = v & OSLSR_OSLK != 0;
            true
        }
        DebugReg::OsDlr if v <= 1 => {
            os.double_lock = v == 1;
            true
        }
        DebugReg::DbgPrcr if v <= 1 => {
            os.core_npdrq = v == 1;
            true
        }
        _ => false,
    }
}

/// Whether a list register value is one the crate may load: an invalid (free) entry,
/// or a valid vINTID (and, with HW = 1, a pINTID that is a PPI or SPI).
pub(crate) fn valid_lr(v: u64, id_bits: u32) -> bool {
    if v & vgic::lr::STATE == 0 {
        return true;
    }
    if !vgic::valid_intid(vgic::lr_intid(v), id_bits) {
        return false;
    }
    v & vgic::lr::HW == 0 || (16..1020).contains(&((v >> 32) & 0x1fff))
}

/// [`valid_lr`] for a list register of `format`: GICv2's `GICH_LR<n>` (32 bits,
/// VirtualID \[9:0\], with HW = 1 \[31\] a PhysicalID \[19:10\] that is a PPI or SPI) or
/// GICv3's `ICH_LR<n>_EL2`.
pub(crate) fn valid_lr_in(format: vgic::LrFormat, v: u64, id_bits: u32) -> bool {
    use vgic::v2::lr as l2;
    match format {
        vgic::LrFormat::V3 => valid_lr(v, id_bits),
        vgic::LrFormat::V2 => {
            if v > u32::MAX as u64 {
                return false;
            }
            let v = v as u32;
            if (v >> l2::STATE_SHIFT) & 3 == 0 {
                return true;
            }
            if !vgic::valid_intid(v & l2::VIRTUAL_ID, 10) {
                return false;
            }
            v & l2::HW == 0 || (16..1020).contains(&((v >> l2::PHYSICAL_SHIFT) & 0x3ff))
        }
    }
}

/// Writes `value` to the stored copy of `r` (validated; composed where the crate
/// composes the real value).
pub(crate) fn set(p: &mut PartsMut<'_>, r: Reg, value: u128) -> Result<(), RegError> {
    let r = r.canonical();
    if r.bits() < 128 && value >> 64 != 0 {
        return Err(RegError::InvalidValue(r));
    }
    let v = value as u64;
    match r {
        Reg::X(n @ 0..=30) => p.frame.gpr[n as usize] = v,
        Reg::SpEl0 => p.sys.sp_el0 = v,
        Reg::SpEl1 => p.sys.sp_el1 = v,
        Reg::Pc => p.frame.elr = v,
        Reg::Pstate => {
            if !crate::vcpu::is_valid_guest_spsr(v) {
                return Err(RegError::InvalidValue(r));
            }
            p.frame.spsr = v;
        }
        Reg::V(n @ 0..=31) => p.fp.v[n as usize] = value,
        Reg::Fpcr => p.fp.fpcr = v,
        Reg::Fpsr => p.fp.fpsr = v,
        Reg::Sys(a) => match sys_kind(a, &p.shape, p.ids_known) {
            Some(SysKind::Switched | SysKind::HostOffset) => {
                *p.sys.by_addr_mut(a).ok_or(RegError::Unknown(r))? = v
            }
            Some(SysKind::Cpacr) => p.sys.cpacr_el1 = emulate::cpacr_hw(v, p.shape.has),
            Some(SysKind::PhysTimer) if p.shape.passthrough_timer => {
                *p.sys.by_addr_mut(a).ok_or(RegError::Unknown(r))? = v
            }
            Some(SysKind::PhysTimer) => {
                // ISTATUS is computed: a value read back is accepted as it is.
                let v = if a == timer::CNTP_CTL_EL0 {
                    v & !timer::ctl::ISTATUS
                } else {
                    v
                };
                p.ptimer.write(a, v, p.now)
            }
            Some(SysKind::Debug(d)) => {
                if !debug_set(p.dbg, d, v) {
                    return Err(RegError::InvalidValue(r));
                }
            }
            Some(SysKind::Control | SysKind::IdView) => return Err(RegError::ReadOnly(r)),
            None => return Err(RegError::Unknown(r)),
        },
        Reg::VirtualCount => match &mut p.count {
            Count::Live(now) => p.sys.cntvoff_el2 = now.wrapping_sub(v),
            Count::Fixed(c) => **c = v,
        },
        Reg::Vgic(g) if vgic_index_ok(g, &p.shape.vtr) => match g {
            VgicReg::Lr(n) => {
                if !valid_lr_in(p.shape.vtr.format(), v, id_bits(&p.shape.vtr)) {
                    return Err(RegError::InvalidValue(r));
                }
                p.vgic.lr[n as usize] = v;
            }
            // The GICH registers are 32 bits wide.
            VgicReg::Ap0r(_) | VgicReg::Vmcr
                if p.shape.vtr.format() == vgic::LrFormat::V2 && v > u32::MAX as u64 =>
            {
                return Err(RegError::InvalidValue(r));
            }
            VgicReg::Ap0r(n) => p.vgic.ap0r[n as usize] = v,
            VgicReg::Ap1r(n) => p.vgic.ap1r[n as usize] = v,
            VgicReg::Vmcr => p.vgic.vmcr = v,
            VgicReg::Queued(n) => {
                let n = n as usize;
                if v == 0 {
                    p.queue.truncate(n);
                } else {
                    let vtr = &p.shape.vtr;
                    let q = vgic::decode_queued_entry(v, id_bits(vtr))
                        .ok_or(RegError::InvalidValue(r))?;
                    // Only GICv2 list registers carry an SGI's source.
                    if q.source_cpu != 0 && vtr.list_regs != 0 && vtr.format() != vgic::LrFormat::V2
                    {
                        return Err(RegError::InvalidValue(r));
                    }
                    p.queue.set(n, q).map_err(|_| RegError::InvalidValue(r))?;
                }
            }
        },
        Reg::Vcpu(VcpuReg::SErrorPending) => match v {
            0 => p.sys.hcr_el2 &= !HCR_VSE,
            1 => p.sys.hcr_el2 |= HCR_VSE,
            _ => return Err(RegError::InvalidValue(r)),
        },
        Reg::Vcpu(VcpuReg::Completion) => {
            *p.pending = Completion::decode(v)
                .and_then(|c| c.pending(p.frame))
                .ok_or(RegError::InvalidValue(r))?;
        }
        Reg::Vcpu(VcpuReg::PowerState) => {
            *p.power = match v {
                0 => PowerState::On,
                1 => PowerState::Off,
                2 => PowerState::OnPending,
                _ => return Err(RegError::InvalidValue(r)),
            }
        }
        _ => return Err(RegError::Unknown(r)),
    }
    Ok(())
}

// ---- the list ----

/// The registers of a vCPU of `shape`, in a fixed order (general-purpose, FP/SIMD,
/// the switch list's order, the emulated registers and the ID view in encoding order,
/// the timer, the virtual GIC, the vCPU state). Returned by
/// [`reg_list`](crate::Aarch64VCpu::reg_list).
#[derive(Clone, Debug)]
pub struct RegList {
    shape: Shape,
    ids_known: bool,
    pos: usize,
}

/// Positions in [`RegList`]: where each block starts.
const CORE_N: usize = 35;
const FP_N: usize = 34;
const SYS_START: usize = CORE_N + FP_N;
const EMU_START: usize = SYS_START + SWITCHED.len();
const ID_START: usize = EMU_START + INVENTORY.len();
const TIMER_START: usize = ID_START + idregs::ID_SPACE_LEN;
const VGIC_START: usize = TIMER_START + 1;
/// LRs, AP0Rs, AP1Rs, VMCR, queue.
const VGIC_N: usize = vgic::MAX_LRS + 4 + 4 + 1 + vgic::QUEUE_LEN;
const VCPU_START: usize = VGIC_START + VGIC_N;
const VCPU_N: usize = 3;
const LIST_END: usize = VCPU_START + VCPU_N;

/// The most registers a vCPU can have (an upper bound of [`RegList`]'s length).
pub const MAX_REGS: usize = CORE_N
    + FP_N
    + SWITCHED.len()
    + emulated_state_count()
    + idregs::ID_SPACE_LEN
    + 1
    + VGIC_N
    + VCPU_N;

/// Inventory rows that may be debug state (an upper bound: which exist depends on the
/// VM's view).
const fn emulated_state_count() -> usize {
    let (mut i, mut n) = (0, 0);
    while i < INVENTORY.len() {
        let r = &INVENTORY[i];
        if sysreg::key(r.first) == sysreg::key(r.last)
            && matches!(
                r.treat,
                Treatment::LazyDebug | Treatment::Emulated(Emulation::OsLock)
            )
        {
            n += 1;
        }
        i += 1;
    }
    n
}

impl RegList {
    pub(crate) const fn new(shape: Shape, ids_known: bool) -> Self {
        Self {
            shape,
            ids_known,
            pos: 0,
        }
    }

    /// The register at position `i`, if that position is one this shape has.
    fn at(&self, i: usize) -> Option<Reg> {
        let s = &self.shape;
        if i < 31 {
            return Some(Reg::X(i as u8));
        }
        if i < CORE_N {
            return Some([Reg::SpEl0, Reg::SpEl1, Reg::Pc, Reg::Pstate][i - 31]);
        }
        if i < CORE_N + 32 {
            return Some(Reg::V((i - CORE_N) as u8));
        }
        if i < SYS_START {
            return Some([Reg::Fpcr, Reg::Fpsr][i - CORE_N - 32]);
        }
        if i < EMU_START {
            let sw = &SWITCHED[i - SYS_START];
            let r = Reg::Sys(sw.addr);
            return (sw.gate.on(s.has) && r.canonical() == r).then_some(r);
        }
        if i < ID_START {
            let row = &INVENTORY[i - EMU_START];
            return debug_row(row)
                .filter(|d| debug_exists(*d, s))
                .map(|_| Reg::Sys(row.first));
        }
        if i < TIMER_START {
            return self
                .ids_known
                .then(|| Reg::Sys(idregs::encoding(i - ID_START)));
        }
        if i < VGIC_START {
            return Some(Reg::VirtualCount);
        }
        if i < VCPU_START {
            let k = i - VGIC_START;
            let g = if k < 16 {
                VgicReg::Lr(k as u8)
            } else if k < 20 {
                VgicReg::Ap0r((k - 16) as u8)
            } else if k < 24 {
                VgicReg::Ap1r((k - 20) as u8)
            } else if k == 24 {
                VgicReg::Vmcr
            } else {
                VgicReg::Queued((k - 25) as u8)
            };
            return vgic_index_ok(g, &s.vtr).then_some(Reg::Vgic(g));
        }
        match i - VCPU_START {
            0 => Some(Reg::Vcpu(VcpuReg::SErrorPending)),
            1 => Some(Reg::Vcpu(VcpuReg::Completion)),
            2 => Some(Reg::Vcpu(VcpuReg::PowerState)),
            _ => None,
        }
    }
}

impl Iterator for RegList {
    type Item = Reg;

    fn next(&mut self) -> Option<Reg> {
        while self.pos < LIST_END {
            let i = self.pos;
            self.pos += 1;
            if let Some(r) = self.at(i) {
                return Some(r);
            }
        }
        None
    }
}
