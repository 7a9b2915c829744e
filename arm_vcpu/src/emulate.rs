//! System registers the crate emulates itself when their accesses trap (pure).
//!
//! * the feature ID space (`HCR_EL2.TID3`), from the VM's [`IdRegisters`] view;
//! * the debug registers (op0 = 2), trapped by `MDCR_EL2.TDA/TDOSA/TDRA` because their
//!   state is not switched per vCPU: `MDSCR_EL1` keeps the guest's value, the OS lock
//!   (`OSLAR_EL1` / `OSLSR_EL1.OSLK`) is kept per vCPU, everything else reads as zero
//!   and ignores writes (breakpoints and watchpoints do nothing);
//! * `ACTLR_EL1` (`HCR_EL2.TACR`): reads the vCPU's value, writes are ignored (its
//!   bits are IMPLEMENTATION DEFINED and may change the physical core's behaviour);
//! * data cache maintenance by set/way (`HCR_EL2.TSW`): DC ISW, CSW, CISW complete as
//!   no-ops — they only affect the local core's caches, which a vCPU does not own.

use crate::exit::SysRegAddr;
use crate::idregs::IdRegisters;

/// What the crate does with one trapped access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SysRegAction {
    /// A read answered with this value.
    Read(u64),
    /// A write the crate absorbs.
    Write,
    /// A write of `MDSCR_EL1`, kept as the vCPU's value.
    WriteMdscr(u64),
    /// A write of `OSLAR_EL1`: the OS lock is now locked (`true`) or unlocked.
    WriteOsLock(bool),
    /// Not emulated: apply the trap policy.
    Unhandled,
}

/// `MDSCR_EL1` (op0 2, op1 0, CRn 0, CRm 2, op2 2).
pub const MDSCR_EL1: SysRegAddr = SysRegAddr::new(2, 0, 0, 2, 2);
/// `OSLSR_EL1` (2, 0, 1, 1, 4).
pub const OSLSR_EL1: SysRegAddr = SysRegAddr::new(2, 0, 1, 1, 4);
/// `ACTLR_EL1` (3, 0, 1, 0, 1).
pub const ACTLR_EL1: SysRegAddr = SysRegAddr::new(3, 0, 1, 0, 1);

/// `OSLAR_EL1` (2, 0, 1, 0, 4).
pub const OSLAR_EL1: SysRegAddr = SysRegAddr::new(2, 0, 1, 0, 4);

/// `OSLSR_EL1` value: OSLM = 0b10 (OS lock implemented, bit 3), OSLK (bit 1) = the
/// last value written to `OSLAR_EL1.OSLK`.
pub const fn oslsr(locked: bool) -> u64 {
    0b1000 | ((locked as u64) << 1)
}

/// The emulated debug state of a vCPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DebugState {
    /// `MDSCR_EL1` as the guest wrote it.
    pub mdscr: u64,
    /// The OS lock (`OSLSR_EL1.OSLK`).
    pub os_lock: bool,
}

/// Decides a trapped access. `ids` is `None` when the host answers ID registers.
pub fn sysreg(
    reg: SysRegAddr,
    read: bool,
    value: u64,
    ids: Option<&IdRegisters>,
    debug: &DebugState,
    actlr: u64,
) -> SysRegAction {
    if let Some(ids) = ids {
        if let Some(v) = ids.read(reg) {
            // The ID registers are read-only: an MSR to one is UNDEFINED.
            return if read {
                SysRegAction::Read(v)
            } else {
                SysRegAction::Unhandled
            };
        }
    }
    if reg.op0() == 2 && (reg.op1() == 0 || reg.op1() == 3) {
        return match (reg, read) {
            (MDSCR_EL1, true) => SysRegAction::Read(debug.mdscr),
            (MDSCR_EL1, false) => SysRegAction::WriteMdscr(value),
            (OSLSR_EL1, true) => SysRegAction::Read(oslsr(debug.os_lock)),
            (OSLAR_EL1, false) => SysRegAction::WriteOsLock(value & 1 != 0),
            (_, true) => SysRegAction::Read(0),
            (_, false) => SysRegAction::Write,
        };
    }
    if reg == ACTLR_EL1 {
        return if read {
            SysRegAction::Read(actlr)
        } else {
            SysRegAction::Write
        };
    }
    // DC ISW / CSW / CISW: op0 1, op1 0, CRn 7, CRm 6 / 10 / 14, op2 2.
    if !read
        && reg.op0() == 1
        && reg.op1() == 0
        && reg.crn() == 7
        && reg.op2() == 2
        && matches!(reg.crm(), 6 | 10 | 14)
    {
        return SysRegAction::Write;
    }
    SysRegAction::Unhandled
}
