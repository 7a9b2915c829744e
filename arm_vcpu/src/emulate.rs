//! System registers the crate emulates itself when their accesses trap (pure).
//!
//! * the feature ID space (`HCR_EL2.TID3`), from the VM's [`IdRegisters`] view;
//! * the debug registers (op0 = 2), trapped by `MDCR_EL2.TDA/TDOSA/TDRA`: handed to
//!   [`crate::debug`] ([`SysRegAction::Debug`]), which loads them on first use, emulates
//!   the OS lock and `MDRAR_EL1`, and UNDEFs what does not exist;
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
    /// A debug register (op0 = 2): [`crate::debug::DebugSwitch`] decides.
    Debug,
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

/// Decides a trapped access. `ids` is `None` when the host answers ID registers.
pub fn sysreg(reg: SysRegAddr, read: bool, ids: Option<&IdRegisters>, actlr: u64) -> SysRegAction {
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
    if reg.op0() == 2 {
        return SysRegAction::Debug;
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
