//! System registers the crate emulates itself when their accesses trap (pure).
//!
//! * the feature ID space (`HCR_EL2.TID3`), from the VM's [`IdRegisters`] view;
//! * the debug registers (op0 = 2), trapped by `MDCR_EL2.TDA/TDOSA/TDRA`: handed to
//!   [`crate::debug`] ([`SysRegAction::Debug`]), which loads them on first use, emulates
//!   the OS lock and `MDRAR_EL1`, and UNDEFs what does not exist;
//! * `ACTLR_EL1` (`HCR_EL2.TACR`): reads the vCPU's value, writes are ignored (its
//!   bits are IMPLEMENTATION DEFINED and may change the physical core's behaviour);
//! * data cache maintenance by set/way (`HCR_EL2.TSW`): DC ISW, CSW, CISW complete as
//!   no-ops — they only affect the local core's caches, which a vCPU does not own;
//! * `REVIDR_EL1` and `AIDR_EL1` (`HCR_EL2.TID1`, which also makes `SMIDR_EL1`
//!   UNDEFINED): the host core's values;
//! * `CPACR_EL1` (`CPTR_EL2.TCPAC`, on CPUs with SVE, SME, trace or S1POE): see
//!   [`cpacr_hw`].
//!
//! Which registers are emulated is the inventory's decision (`sysreg::INVENTORY`,
//! `Treatment::Emulated`); a host test checks this function answers exactly those.

use crate::exit::SysRegAddr;
use crate::idregs::IdRegisters;
use crate::sysreg::{Feature, FeatureSet};

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
    /// A write of `CPACR_EL1`: the new real value (see [`cpacr_hw`]).
    WriteCpacr(u64),
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
/// `CPACR_EL1` (3, 0, 1, 0, 2).
pub const CPACR_EL1: SysRegAddr = SysRegAddr::new(3, 0, 1, 0, 2);
/// `REVIDR_EL1` (3, 0, 0, 0, 6).
pub const REVIDR_EL1: SysRegAddr = SysRegAddr::new(3, 0, 0, 0, 6);
/// `AIDR_EL1` (3, 1, 0, 0, 7).
pub const AIDR_EL1: SysRegAddr = SysRegAddr::new(3, 1, 0, 0, 7);

/// The fields of `CPACR_EL1` a guest sees: FPEN \[21:20\]. ZEN \[17:16\], SMEN
/// \[25:24\], TTA \[28\] and E0POE \[29\] belong to features the VM does not have and
/// read as 0 (RES0, as on a CPU without them).
pub const CPACR_GUEST_FIELDS: u64 = 0b11 << 20;

/// The real `CPACR_EL1` for a guest-visible value `guest` on a host with `has`.
///
/// FPEN is the guest's, so its own FP/SIMD traps at EL1 work. ZEN and SMEN are 0b11
/// on hosts with SVE/SME, and E0POE is 1 with S1POE: then SVE and SME instructions,
/// `ZCR_EL1`, `SMCR_EL1`, `SVCR` and EL0's `POR_EL0` are not trapped at EL1 (the
/// guest's own trap would report EC 0x19/0x1D/0x18 to it and reveal the feature) but
/// reach `CPTR_EL2.TZ/TSM` or the fine-grained traps, and the guest gets UNDEFINED as
/// on a CPU without them. TTA is 0: trace accesses reach `CPTR_EL2.TTA`.
///
/// This needs the guest's CPACR_EL1 accesses trapped (`CPTR_EL2.TCPAC`), which the
/// crate sets only on hosts with one of those features (otherwise the register has no
/// other field and is passed through). Each trapped access costs one exit answered in
/// the crate; a guest writes CPACR_EL1 at boot and, with SVE/SME hidden, Linux does not
/// touch it per context switch. The alternatives do not give UNDEFINED: CPTR_EL2 alone
/// cannot override CPACR_EL1's EL1 traps (they have priority), and hiding the fields
/// needs FEAT_FGT (not on QEMU 7.2 or older cores).
pub const fn cpacr_hw(guest: u64, has: FeatureSet) -> u64 {
    let mut v = guest & CPACR_GUEST_FIELDS;
    if has.has(Feature::Sve) {
        v |= 0b11 << 16;
    }
    if has.has(Feature::Sme) {
        v |= 0b11 << 24;
    }
    if has.has(Feature::S1poe) {
        v |= 1 << 29;
    }
    v
}

/// `ACTLR_EL1` as every vCPU reads it: its bits are IMPLEMENTATION DEFINED.
pub const ACTLR_EL1_VALUE: u64 = 0;

/// What the emulation of one access needs besides the access.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The VM's ID view; `None` when the host answers ID registers.
    pub ids: Option<&'a IdRegisters>,
    /// The vCPU's `ACTLR_EL1`.
    pub actlr: u64,
    /// The real `CPACR_EL1` (what a guest read returns is its visible part).
    pub cpacr: u64,
    /// The host core's `REVIDR_EL1`.
    pub revidr: u64,
    /// The host core's `AIDR_EL1`.
    pub aidr: u64,
    /// The host core's features.
    pub has: FeatureSet,
}

/// Decides a trapped access.
pub fn sysreg(reg: SysRegAddr, read: bool, value: u64, cx: &Context) -> SysRegAction {
    let (ids, actlr) = (cx.ids, cx.actlr);
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
    if reg == CPACR_EL1 {
        return if read {
            SysRegAction::Read(cx.cpacr & CPACR_GUEST_FIELDS)
        } else {
            SysRegAction::WriteCpacr(cpacr_hw(value, cx.has))
        };
    }
    // REVIDR_EL1, AIDR_EL1: read-only (an MSR to them is UNDEFINED).
    if read && reg == REVIDR_EL1 {
        return SysRegAction::Read(cx.revidr);
    }
    if read && reg == AIDR_EL1 {
        return SysRegAction::Read(cx.aidr);
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
