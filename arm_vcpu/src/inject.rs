//! Exception injection into a guest whose EL1 is AArch64: the register changes the
//! architecture makes when it takes an exception to EL1 (Arm ARM D1.3 "Exception
//! entry", and the AArch64.TakeException pseudocode), computed as a pure function,
//! from AArch64 EL0/EL1 and from AArch32 EL0 (User mode) alike.

/// What to inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Injection {
    /// An UNDEFINED instruction: ESR_EL1.EC = 0x00 (unknown reason), IL = 1.
    Undef,
    /// A synchronous data abort at `va` (ESR_EL1.EC 0x24/0x25, DFSC = `dfsc`,
    /// WnR = `write`, FAR_EL1 = `va`).
    DataAbort {
        /// The faulting virtual address.
        va: u64,
        /// The access was a write.
        write: bool,
        /// Fault status code; 0x10 = synchronous external abort.
        dfsc: u8,
    },
    /// A synchronous instruction abort at `va` (EC 0x20/0x21, IFSC = `ifsc`).
    InstructionAbort {
        /// The faulting virtual address.
        va: u64,
        /// Fault status code; 0x10 = synchronous external abort.
        ifsc: u8,
    },
    /// A trap an EL1 control routes to EL1, reported with this syndrome (EC, IL and
    /// ISS as the trap defines them): e.g. `MDSCR_EL1.TDCC` for an AArch32 EL0 access
    /// to a DCC register (EC 0x05), which the crate emulates because the guest's
    /// `MDSCR_EL1` is not in the hardware.
    Trap {
        /// `ESR_EL1` bits \[31:0\].
        esr: u32,
    },
    /// An Illegal Execution state exception (EC 0x0E, IL = 1).
    IllegalState,
}

/// Synchronous external abort, not on a table walk (DFSC/IFSC 0b010000).
pub const FSC_SYNC_EXTERNAL: u8 = 0x10;

/// Guest state an injection reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestState {
    /// PSTATE at the point of the exception (the saved `SPSR_EL2`).
    pub pstate: u64,
    /// Preferred return address (`ELR_EL2`: the faulting instruction; a 32-bit address
    /// in AArch32 state).
    pub pc: u64,
    /// `VBAR_EL1`.
    pub vbar_el1: u64,
    /// `SCTLR_EL1` (SPAN bit 23 and DSSBS bit 44 shape the new PSTATE).
    pub sctlr_el1: u64,
}

/// The registers an injected exception sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entered {
    /// New PSTATE (goes to `SPSR_EL2`, restored by ERET).
    pub pstate: u64,
    /// New PC: `VBAR_EL1` + vector offset.
    pub pc: u64,
    /// `ELR_EL1`.
    pub elr_el1: u64,
    /// `SPSR_EL1`: the interrupted PSTATE.
    pub spsr_el1: u64,
    /// `ESR_EL1`.
    pub esr_el1: u64,
    /// `FAR_EL1`, for aborts.
    pub far_el1: Option<u64>,
}

/// Why an injection cannot be computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InjectError {
    /// PSTATE does not describe AArch64 EL0/EL1 or AArch32 User mode (EL0).
    NotAGuestState,
}

impl core::fmt::Display for InjectError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::NotAGuestState => "PSTATE does not describe AArch64 EL0/EL1 or AArch32 User mode",
        })
    }
}

impl core::error::Error for InjectError {}

const PSTATE_NZCV: u64 = 0xf << 28;
const PSTATE_DIT: u64 = 1 << 24;
const PSTATE_PAN: u64 = 1 << 22;
const PSTATE_SSBS: u64 = 1 << 12;
const PSTATE_DAIF: u64 = 0xf << 6;
const PSTATE_EL1H: u64 = 0b0101;
const SCTLR_SPAN: u64 = 1 << 23;
const SCTLR_DSSBS: u64 = 1 << 44;

/// Vector offset from `VBAR_EL1` for a synchronous exception taken from `pstate`:
/// current EL with SP_EL0 (0x000), current EL with SP_ELx (0x200), lower EL using
/// AArch64 (0x400), lower EL using AArch32 (0x600). SError adds 0x180.
pub const fn vector_offset(pstate: u64) -> Result<u64, InjectError> {
    if pstate & (1 << 4) != 0 {
        // AArch32 EL0 under an AArch64 EL1.
        return if pstate & 0xf == 0 {
            Ok(0x600)
        } else {
            Err(InjectError::NotAGuestState)
        };
    }
    match pstate & 0xf {
        0b0000 => Ok(0x400), // EL0t
        0b0100 => Ok(0x000), // EL1t
        0b0101 => Ok(0x200), // EL1h
        _ => Err(InjectError::NotAGuestState),
    }
}

/// An address as the exception registers hold it: 32 bits from AArch32.
const fn addr(aarch32: bool, a: u64) -> u64 {
    if aarch32 {
        a & 0xffff_ffff
    } else {
        a
    }
}

/// Computes the exception entry to EL1 for `what` from the state `s`.
///
/// ESR_EL1: EC per kind and "from a lower EL" (EL0) or "same EL" (EL1); IL = 1, which
/// the architecture requires for EC 0x00, instruction aborts and data aborts without
/// a valid instruction syndrome (ISV = 0) whatever the instruction's length — so a
/// 16-bit T32 instruction reports IL = 1 too. PSTATE: EL1h, D/A/I/F set; NZCV and DIT
/// kept; PAN set when `SCTLR_EL1.SPAN` = 0 (else kept); SSBS = `SCTLR_EL1.DSSBS`; SS,
/// IL, BTYPE, UAO cleared, and from AArch32 the IT, T and GE bits (PSTATE becomes
/// AArch64).
///
/// From AArch32 EL0 (User mode, M\[4:0\] = 0b10000) the vector is `VBAR_EL1 + 0x600`,
/// `SPSR_EL1` is the AArch32 PSTATE as saved (M\[4\], T, IT, GE, E, A, I, F, Q, NZCV),
/// and `ELR_EL1`/`FAR_EL1` are the 32-bit addresses, zero-extended.
pub const fn enter(s: &GuestState, what: &Injection) -> Result<Entered, InjectError> {
    let offset = match vector_offset(s.pstate) {
        Ok(o) => o,
        Err(e) => return Err(e),
    };
    let aarch32 = s.pstate & (1 << 4) != 0;
    let from_el0 = s.pstate & 0xf == 0;
    let il = 1u64 << 25;
    let (esr, far) = match *what {
        Injection::Undef => (il, None),
        Injection::DataAbort { va, write, dfsc } => {
            let ec: u64 = if from_el0 { 0x24 } else { 0x25 };
            (
                (ec << 26) | il | ((write as u64) << 6) | (dfsc as u64 & 0x3f),
                Some(addr(aarch32, va)),
            )
        }
        Injection::InstructionAbort { va, ifsc } => {
            let ec: u64 = if from_el0 { 0x20 } else { 0x21 };
            (
                (ec << 26) | il | (ifsc as u64 & 0x3f),
                Some(addr(aarch32, va)),
            )
        }
        Injection::Trap { esr } => (esr as u64, None),
        Injection::IllegalState => ((0x0e << 26) | il, None),
    };
    let mut pstate = (s.pstate & (PSTATE_NZCV | PSTATE_DIT)) | PSTATE_DAIF | PSTATE_EL1H;
    if s.sctlr_el1 & SCTLR_SPAN == 0 {
        pstate |= PSTATE_PAN;
    } else {
        pstate |= s.pstate & PSTATE_PAN;
    }
    if s.sctlr_el1 & SCTLR_DSSBS != 0 {
        pstate |= PSTATE_SSBS;
    }
    Ok(Entered {
        pstate,
        pc: (s.vbar_el1 & !0x7ff).wrapping_add(offset),
        elr_el1: addr(aarch32, s.pc),
        spsr_el1: s.pstate,
        esr_el1: esr,
        far_el1: far,
    })
}
