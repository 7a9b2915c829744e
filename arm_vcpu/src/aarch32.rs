//! AArch32 EL0 under an AArch64 EL1 guest (pure).
//!
//! The guest's EL1 is AArch64 (`HCR_EL2.RW = 1`); its EL0 may run A32 or T32 code
//! when the CPU implements it (`ID_AA64PFR0_EL1.EL0 = 0b0010`). Traps from there reach
//! EL2 with the AArch32 exception classes:
//!
//! | EC | what | ISS decoder |
//! |---|---|---|
//! | 0x01 | WFI/WFE (`HCR_EL2.TWI/TWE`) | [`crate::esr::wfx_kind`] |
//! | 0x03 | MCR/MRC to CP15 | [`CpRtIss`] |
//! | 0x04 | MCRR/MRRC to CP15 | [`CpRrtIss`] |
//! | 0x05 | MCR/MRC to CP14 | [`CpRtIss`] |
//! | 0x06 | LDC/STC to CP14 | [`LdcIss`] |
//! | 0x07 | FP/Advanced SIMD (`CPTR_EL2.TFP`, lazy switching) | CV/COND only |
//! | 0x0C | MRRC to CP14 | [`CpRrtIss`] |
//! | 0x20, 0x24 | stage-2 instruction / data aborts | [`crate::esr`] |
//!
//! (SVC, HVC and SMC from AArch32 EL0 never reach EL2: SVC goes to EL1 with
//! `HCR_EL2.TGE = 0`, HVC and SMC are UNDEFINED at EL0 and taken to EL1.)
//!
//! What the crate does with them is [`REGISTERS`], one table: the AArch32 views of
//! what it emulates for AArch64 (the EL1 physical timer when it is not passed through,
//! the debug ID/status registers reachable from EL0) are emulated; everything else
//! is UNDEFINED at EL0, exactly as on a CPU without it (`ESR_EL1` EC 0x00 at
//! `VBAR_EL1 + 0x600`, see [`crate::inject`]).
//!
//! Register mapping (Arm ARM, "Mapping of the general-purpose registers between
//! the Execution states"): in User mode R0–R14 are X0–X14; the syndromes already
//! report Rt/Rt2/SRT in that AArch64 view. A 32-bit result is written zero-extended
//! (the upper halves of X0–X14 are UNKNOWN to AArch64 after AArch32 ran); a 32-bit
//! write uses bits \[31:0\] of the register.
//!
//! Conditional execution: every class with CV/COND fields may trap an instruction that
//! then fails its condition code check; such an instruction is skipped
//! ([`condition_passed`]), with the PC and the T32 IT state advanced ([`advance`]), as
//! hardware would have executed it as a NOP.

use crate::context::Aarch64ContextFrame;
use crate::esr;
use crate::exit::SysRegAddr;
use crate::idregs::{self, IdRegisters};
use crate::inject::Injection;
use crate::timer::{self, EmulatedTimer};

/// PSTATE/SPSR bits in the format of `SPSR_ELx` for an exception taken from AArch32.
pub mod psr {
    /// M\[4\] (nRW): the interrupted state was AArch32.
    pub const M4: u64 = 1 << 4;
    /// M\[4:0\] of User mode (AArch32 EL0).
    pub const USER: u64 = 0b1_0000;
    /// T, bit \[5\]: T32 state.
    pub const T: u64 = 1 << 5;
    /// IT\[1:0\], bits \[26:25\].
    pub const IT_LO: u64 = 0b11 << 25;
    /// IT\[7:2\], bits \[15:10\].
    pub const IT_HI: u64 = 0x3f << 10;
    /// N, Z, C, V, bits \[31:28\].
    pub const NZCV: u64 = 0xf << 28;
}

/// Whether a `SPSR_EL2` value describes AArch32 state (M\[4\] = 1).
#[inline(always)]
pub const fn is_aarch32(spsr: u64) -> bool {
    spsr & psr::M4 != 0
}

/// ITSTATE (`IT[7:0]`) from an AArch32 SPSR: IT\[7:2\] in bits \[15:10\], IT\[1:0\] in bits
/// \[26:25\].
pub const fn itstate(spsr: u64) -> u8 {
    ((((spsr >> 10) & 0x3f) << 2) | ((spsr >> 25) & 0b11)) as u8
}

/// `spsr` with ITSTATE replaced by `it`.
pub const fn with_itstate(spsr: u64, it: u8) -> u64 {
    let it = it as u64;
    (spsr & !(psr::IT_HI | psr::IT_LO)) | ((it >> 2) << 10) | ((it & 0b11) << 25)
}

/// The Arm ARM's `ITAdvance()`: the IT state after one instruction of an IT block
/// executed (or was skipped). IT\[2:0\] = 0 ends the block (ITSTATE becomes 0);
/// otherwise IT\[4:0\] shifts left by one, IT\[7:5\] (the base condition) is kept.
pub const fn it_advance(it: u8) -> u8 {
    if it & 0b111 == 0 {
        0
    } else {
        (it & 0xe0) | ((it << 1) & 0x1f)
    }
}

/// The Arm ARM's `ConditionHolds(cond)` for the flags `nzcv` (N in bit 3, V in bit 0).
/// 0b1110 (AL) and 0b1111 always hold.
pub const fn condition_holds(cond: u8, nzcv: u8) -> bool {
    let n = nzcv & 8 != 0;
    let z = nzcv & 4 != 0;
    let c = nzcv & 2 != 0;
    let v = nzcv & 1 != 0;
    let base = match (cond >> 1) & 7 {
        0 => z,            // EQ / NE
        1 => c,            // CS / CC
        2 => n,            // MI / PL
        3 => v,            // VS / VC
        4 => c && !z,      // HI / LS
        5 => n == v,       // GE / LT
        6 => n == v && !z, // GT / LE
        _ => true,         // AL (and 0b1111)
    };
    if cond & 1 != 0 && cond != 0xf {
        !base
    } else {
        base
    }
}

/// Whether the exception class reports CV/COND (ISS bits \[24:20\]) for an AArch32
/// instruction that may have trapped although it fails its condition code check:
/// MCR/MRC (0x03, 0x05), MCRR/MRRC (0x04, 0x0C), LDC/STC (0x06), FP/SIMD (0x07) and
/// VMRS ID-group traps (0x08). (Conditional WFI/WFE that fail their check do not
/// trap at all.)
pub const fn has_condition(ec: u8) -> bool {
    matches!(ec, 0x03..=0x08 | 0x0C)
}

/// The condition a trapped AArch32 instruction was executed under: ISS.COND when
/// ISS.CV = 1; otherwise (an IMPLEMENTATION DEFINED choice for T32) the current
/// condition of the IT block, `ITSTATE[7:4]`, or 0b1110 (always) outside one.
pub const fn trapped_condition(esr: u64, spsr: u64) -> u8 {
    if esr & (1 << 24) != 0 {
        ((esr >> 20) & 0xf) as u8
    } else {
        let it = itstate(spsr);
        if spsr & psr::T != 0 && it & 0xf != 0 {
            it >> 4
        } else {
            0xe
        }
    }
}

/// Whether the trapped instruction passes its condition code check (always true for
/// classes without CV/COND). An instruction that fails it must be skipped: hardware
/// may trap it (IMPLEMENTATION DEFINED) but executes it as a NOP.
pub const fn condition_passed(esr: u64, spsr: u64) -> bool {
    if !has_condition(esr::ec(esr)) {
        return true;
    }
    condition_holds(trapped_condition(esr, spsr), ((spsr >> 28) & 0xf) as u8)
}

/// The PC and PSTATE after the AArch32 instruction at `elr` (of `len` bytes: 2 or 4)
/// completed or was skipped: the PC wraps at 32 bits, and in T32 state the IT state
/// advances (`ITAdvance()`).
pub const fn advance(elr: u64, spsr: u64, len: u64) -> (u64, u64) {
    let pc = elr.wrapping_add(len) & 0xffff_ffff;
    // The mutation-test build forgets the IT state (the `aarch32` scenario must fail).
    if cfg!(arm_vcpu_mutate = "aarch32-it") {
        return (pc, spsr);
    }
    if spsr & psr::T != 0 {
        (pc, with_itstate(spsr, it_advance(itstate(spsr))))
    } else {
        (pc, spsr)
    }
}

/// Whether a vCPU may be entered with `spsr`: AArch64 states always (the SPSR check
/// is elsewhere); AArch32 User mode only on a CPU with AArch32 at EL0 (`cpu_aa32el0`:
/// `ID_AA64PFR0_EL1.EL0` = 0b0010) and when the VM's view does not hide it — an
/// exception return to an unimplemented state would be an illegal return at EL2.
pub const fn entry_allowed(spsr: u64, cpu_aa32el0: bool, hidden: bool) -> bool {
    !is_aarch32(spsr) || (cpu_aa32el0 && !hidden)
}

/// Steps the frame's PC past the instruction it points at (`len` bytes), in either
/// Execution state: AArch64 adds `len`; AArch32 also wraps at 32 bits and advances
/// the IT state (out of line: the AArch64 exit paths pay one test).
#[inline(always)]
pub fn step(frame: &mut Aarch64ContextFrame, len: u64) {
    if is_aarch32(frame.spsr) {
        step_aarch32(frame, len);
    } else {
        frame.elr = frame.elr.wrapping_add(len);
    }
}

#[cold]
#[inline(never)]
fn step_aarch32(frame: &mut Aarch64ContextFrame, len: u64) {
    (frame.elr, frame.spsr) = advance(frame.elr, frame.spsr, len);
}

/// The ISS of a trapped MCR or MRC (EC 0x03 for CP15, 0x05 for CP14).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpRtIss {
    /// CV, bit \[24\]: COND is valid.
    pub cv: bool,
    /// COND, bits \[23:20\].
    pub cond: u8,
    /// Opc2, bits \[19:17\].
    pub opc2: u8,
    /// Opc1, bits \[16:14\].
    pub opc1: u8,
    /// CRn, bits \[13:10\].
    pub crn: u8,
    /// Rt, bits \[9:5\], in the AArch64 view: 0..=14 from User mode; R15 (an MRC to
    /// APSR_nzcv, which writes bits \[31:28\] of the value to the condition flags) is
    /// reported as 15 or 0b11111 (QEMU 7.2 reports 0b11111).
    pub rt: u8,
    /// CRm, bits \[4:1\].
    pub crm: u8,
    /// Direction, bit \[0\]: 1 = read (MRC), 0 = write (MCR).
    pub read: bool,
}

impl CpRtIss {
    /// Decodes the ISS of `esr`.
    pub const fn decode(esr: u64) -> Self {
        Self {
            cv: esr & (1 << 24) != 0,
            cond: ((esr >> 20) & 0xf) as u8,
            opc2: ((esr >> 17) & 7) as u8,
            opc1: ((esr >> 14) & 7) as u8,
            crn: ((esr >> 10) & 0xf) as u8,
            rt: ((esr >> 5) & 0x1f) as u8,
            crm: ((esr >> 1) & 0xf) as u8,
            read: esr & 1 != 0,
        }
    }
}

/// The ISS of a trapped MCRR or MRRC (EC 0x04 for CP15, 0x0C for CP14).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpRrtIss {
    /// CV, bit \[24\].
    pub cv: bool,
    /// COND, bits \[23:20\].
    pub cond: u8,
    /// Opc1, bits \[19:16\].
    pub opc1: u8,
    /// Rt2, bits \[14:10\]: the register for bits \[63:32\].
    pub rt2: u8,
    /// Rt, bits \[9:5\]: the register for bits \[31:0\].
    pub rt: u8,
    /// CRm, bits \[4:1\].
    pub crm: u8,
    /// Direction, bit \[0\]: 1 = read (MRRC), 0 = write (MCRR).
    pub read: bool,
}

impl CpRrtIss {
    /// Decodes the ISS of `esr`.
    pub const fn decode(esr: u64) -> Self {
        Self {
            cv: esr & (1 << 24) != 0,
            cond: ((esr >> 20) & 0xf) as u8,
            opc1: ((esr >> 16) & 0xf) as u8,
            rt2: ((esr >> 10) & 0x1f) as u8,
            rt: ((esr >> 5) & 0x1f) as u8,
            crm: ((esr >> 1) & 0xf) as u8,
            read: esr & 1 != 0,
        }
    }
}

/// The ISS of a trapped LDC or STC (EC 0x06). The only architected uses are an LDC
/// to DBGDTRTXint and an STC from DBGDTRRXint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LdcIss {
    /// CV, bit \[24\].
    pub cv: bool,
    /// COND, bits \[23:20\].
    pub cond: u8,
    /// imm8, bits \[19:12\]: the word offset.
    pub imm8: u8,
    /// Rn, bits \[9:5\]: the base register (AArch64 view).
    pub rn: u8,
    /// Offset, bit \[4\]: 1 = add the offset, 0 = subtract it.
    pub add: bool,
    /// AM, bits \[3:1\]: addressing mode (0b000 immediate unindexed, 0b001 post-indexed,
    /// 0b010 offset, 0b011 pre-indexed, 0b100 literal unindexed, 0b110 literal offset).
    pub am: u8,
    /// Direction, bit \[0\]: 1 = read from memory (LDC), 0 = write to memory (STC).
    pub read: bool,
}

impl LdcIss {
    /// Decodes the ISS of `esr`.
    pub const fn decode(esr: u64) -> Self {
        Self {
            cv: esr & (1 << 24) != 0,
            cond: ((esr >> 20) & 0xf) as u8,
            imm8: ((esr >> 12) & 0xff) as u8,
            rn: ((esr >> 5) & 0x1f) as u8,
            add: esr & (1 << 4) != 0,
            am: ((esr >> 1) & 7) as u8,
            read: esr & 1 != 0,
        }
    }
}

/// Builders of AArch32 trap syndromes from their fields (the inverse of the decoders),
/// for tests.
pub mod build {
    /// EC, IL (`il32`: a 32-bit instruction) and CV/COND.
    pub const fn header(ec: u8, il32: bool, cond: Option<u8>) -> u64 {
        let cv = match cond {
            Some(c) => (1 << 24) | ((c as u64 & 0xf) << 20),
            None => 0,
        };
        ((ec as u64) << 26) | ((il32 as u64) << 25) | cv
    }

    /// A trapped MCR/MRC: EC 0x03 (`cp` = 15) or 0x05 (`cp` = 14).
    #[allow(clippy::too_many_arguments)]
    pub const fn mcr(
        cp: u8,
        opc1: u8,
        crn: u8,
        crm: u8,
        opc2: u8,
        rt: u8,
        read: bool,
        il32: bool,
        cond: Option<u8>,
    ) -> u64 {
        header(if cp == 15 { 0x03 } else { 0x05 }, il32, cond)
            | ((opc2 as u64 & 7) << 17)
            | ((opc1 as u64 & 7) << 14)
            | ((crn as u64 & 0xf) << 10)
            | ((rt as u64 & 0x1f) << 5)
            | ((crm as u64 & 0xf) << 1)
            | read as u64
    }

    /// A trapped MCRR/MRRC: EC 0x04 (`cp` = 15) or 0x0C (`cp` = 14).
    #[allow(clippy::too_many_arguments)]
    pub const fn mcrr(
        cp: u8,
        opc1: u8,
        crm: u8,
        rt: u8,
        rt2: u8,
        read: bool,
        il32: bool,
        cond: Option<u8>,
    ) -> u64 {
        header(if cp == 15 { 0x04 } else { 0x0c }, il32, cond)
            | ((opc1 as u64 & 0xf) << 16)
            | ((rt2 as u64 & 0x1f) << 10)
            | ((rt as u64 & 0x1f) << 5)
            | ((crm as u64 & 0xf) << 1)
            | read as u64
    }

    /// A trapped LDC (`read`) or STC (EC 0x06).
    pub const fn ldc(imm8: u8, rn: u8, add: bool, am: u8, read: bool, cond: Option<u8>) -> u64 {
        header(0x06, true, cond)
            | ((imm8 as u64) << 12)
            | ((rn as u64 & 0x1f) << 5)
            | ((add as u64) << 4)
            | ((am as u64 & 7) << 1)
            | read as u64
    }
}

/// A coprocessor register encoding as the AArch32 instructions name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// MCR/MRC `p<cp>, <opc1>, Rt, c<crn>, c<crm>, <opc2>`.
    Cp32 {
        /// Coprocessor: 14 or 15.
        cp: u8,
        /// opc1.
        opc1: u8,
        /// CRn.
        crn: u8,
        /// CRm.
        crm: u8,
        /// opc2.
        opc2: u8,
    },
    /// MCRR/MRRC `p<cp>, <opc1>, Rt, Rt2, c<crm>`.
    Cp64 {
        /// Coprocessor: 14 or 15.
        cp: u8,
        /// opc1.
        opc1: u8,
        /// CRm.
        crm: u8,
    },
    /// A group of MCR/MRC encodings: any opc1/CRm/opc2 in the inclusive ranges.
    Cp32Group {
        /// Coprocessor.
        cp: u8,
        /// opc1 range.
        opc1: (u8, u8),
        /// CRn.
        crn: u8,
        /// CRm range.
        crm: (u8, u8),
        /// opc2 range.
        opc2: (u8, u8),
    },
    /// LDC/STC to CP14 (the ISS does not report CRd; the only architected one is c5).
    LdcStc,
}

/// One trapped AArch32 access, decoded from a syndrome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// MCR/MRC (EC 0x03, 0x05).
    Cp32 {
        /// 14 or 15.
        cp: u8,
        /// The decoded ISS.
        iss: CpRtIss,
    },
    /// MCRR/MRRC (EC 0x04, 0x0C).
    Cp64 {
        /// 14 or 15.
        cp: u8,
        /// The decoded ISS.
        iss: CpRrtIss,
    },
    /// LDC/STC (EC 0x06).
    LdcStc(LdcIss),
}

impl Access {
    /// The coprocessor access a syndrome reports, `None` for other classes.
    pub const fn decode(esr: u64) -> Option<Self> {
        Some(match esr::ec(esr) {
            0x03 => Self::Cp32 {
                cp: 15,
                iss: CpRtIss::decode(esr),
            },
            0x05 => Self::Cp32 {
                cp: 14,
                iss: CpRtIss::decode(esr),
            },
            0x04 => Self::Cp64 {
                cp: 15,
                iss: CpRrtIss::decode(esr),
            },
            0x0c => Self::Cp64 {
                cp: 14,
                iss: CpRrtIss::decode(esr),
            },
            0x06 => Self::LdcStc(LdcIss::decode(esr)),
            _ => return None,
        })
    }

    /// Whether it reads the register (MRC, MRRC, STC — which stores DBGDTRRXint).
    pub const fn reads_register(&self) -> bool {
        match self {
            Self::Cp32 { iss, .. } => iss.read,
            Self::Cp64 { iss, .. } => iss.read,
            // STC (Direction 0: write to memory) reads DBGDTRRXint.
            Self::LdcStc(iss) => !iss.read,
        }
    }
}

impl Encoding {
    /// Whether `a` names this encoding.
    pub const fn matches(&self, a: &Access) -> bool {
        const fn within(v: u8, r: (u8, u8)) -> bool {
            v >= r.0 && v <= r.1
        }
        match (*self, *a) {
            (
                Self::Cp32 {
                    cp,
                    opc1,
                    crn,
                    crm,
                    opc2,
                },
                Access::Cp32 { cp: c, iss },
            ) => {
                cp == c && opc1 == iss.opc1 && crn == iss.crn && crm == iss.crm && opc2 == iss.opc2
            }
            (Self::Cp64 { cp, opc1, crm }, Access::Cp64 { cp: c, iss }) => {
                cp == c && opc1 == iss.opc1 && crm == iss.crm
            }
            (
                Self::Cp32Group {
                    cp,
                    opc1,
                    crn,
                    crm,
                    opc2,
                },
                Access::Cp32 { cp: c, iss },
            ) => {
                cp == c
                    && crn == iss.crn
                    && within(iss.opc1, opc1)
                    && within(iss.crm, crm)
                    && within(iss.opc2, opc2)
            }
            (Self::LdcStc, Access::LdcStc(_)) => true,
            _ => false,
        }
    }
}

/// Which directions an encoding has at EL0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// MRC/MRRC only (MCR/MCRR to it is UNDEFINED).
    Read,
    /// Both.
    ReadWrite,
}

/// The feature that makes a register exist for the guest, from the VM's ID view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    /// FEAT_AA32EL0: `ID_AA64PFR0_EL1.EL0` = 0b0010 (AArch32 at EL0).
    Aa32El0,
    /// FEAT_AA32EL0 and the PMU (`ID_DFR0_EL1.PerfMon`, which the VM's view hides).
    Aa32El0Pmu,
    /// FEAT_AA32EL0 and IMPLEMENTATION DEFINED registers.
    Aa32El0ImpDef,
}

/// The EL2 control that makes an EL0 access of the register trap to EL2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrapControl {
    /// `CNTHCTL_EL2.EL1PCEN` = 0 (EL1 physical timer emulated; EL0 access needs
    /// `CNTKCTL_EL1.EL0PTEN` = 1 first, else it traps to EL1).
    CnthctlEl1pcen,
    /// `MDCR_EL2.TDA` (debug registers).
    MdcrTda,
    /// `MDCR_EL2.TDRA` (debug ROM address registers).
    MdcrTdra,
    /// `MDCR_EL2.TPM` (PMU; EL0 access needs `PMUSERENR_EL0.EN` first).
    MdcrTpm,
    /// `HCR_EL2.TIDCP` (IMPLEMENTATION DEFINED whether EL0 accesses trap).
    HcrTidcp,
}

impl TrapControl {
    /// The same control as the trap composition table names it ([`crate::traps::BITS`],
    /// which the inventory's rows refer to).
    pub const fn trap_id(self) -> crate::traps::TrapId {
        use crate::traps::TrapId;
        match self {
            Self::CnthctlEl1pcen => TrapId::El1pcen,
            Self::MdcrTda => TrapId::Tda,
            Self::MdcrTdra => TrapId::Tdra,
            Self::MdcrTpm => TrapId::Tpm,
            Self::HcrTidcp => TrapId::Tidcp,
        }
    }
}

/// An EL1 trap the crate emulates because the controlling register is emulated, not
/// loaded into the hardware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum El1Trap {
    /// `MDSCR_EL1.TDCC` = 1 traps EL0 accesses to the DCC registers (DBGDIDR,
    /// DBGDSCRint, DBGDTRRXint/TXint, DBGDRAR, DBGDSAR, their LDC/STC and MRRC forms)
    /// to EL1 with the same syndrome (EC 0x05 / 0x06 / 0x0C).
    MdscrTdcc,
}

/// What the crate answers for an AArch32 EL0 access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Treatment {
    /// Emulated (reads/writes as the variant says).
    Emulated(Emulation),
    /// UNDEFINED at EL0 (EC 0x00 into AArch32 EL0), as on a CPU without the register
    /// or with the feature the VM's view hides.
    Undef,
}

/// The emulated AArch32 registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emulation {
    /// The EL1 physical timer register `reg` (the same [`EmulatedTimer`] as
    /// `CNTP_*_EL0`).
    Timer(SysRegAddr),
    /// DBGDIDR, from the VM's `ID_AA64DFR0_EL1` and `ID_AA64PFR0_EL1.EL3`
    /// ([`dbgdidr`]).
    DbgDidr,
    /// DBGDSCRint, from `MDSCR_EL1` and `MDCCSR_EL0` ([`dbgdscrint`]).
    DbgDscrInt,
    /// DBGDTRRXint (read: 0, nothing is ever received) / DBGDTRTXint (write:
    /// ignored), as the AArch64 DCC registers are.
    DbgDtr,
    /// DBGDRAR / DBGDSAR: read as zero (ROM table address not valid, Valid = 0b00).
    Raz,
}

/// One row of [`REGISTERS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Aarch32Register {
    /// Architectural name.
    pub name: &'static str,
    /// Encoding.
    pub encoding: Encoding,
    /// Directions that exist at EL0.
    pub direction: Direction,
    /// Feature condition.
    pub feature: Feature,
    /// The EL2 control that traps it.
    pub trap: TrapControl,
    /// An EL1 trap the crate emulates before answering.
    pub el1_trap: Option<El1Trap>,
    /// What the crate answers.
    pub treatment: Treatment,
}

const fn cp32(cp: u8, opc1: u8, crn: u8, crm: u8, opc2: u8) -> Encoding {
    Encoding::Cp32 {
        cp,
        opc1,
        crn,
        crm,
        opc2,
    }
}

const fn row(
    name: &'static str,
    encoding: Encoding,
    direction: Direction,
    trap: TrapControl,
    el1_trap: Option<El1Trap>,
    treatment: Treatment,
) -> Aarch32Register {
    Aarch32Register {
        name,
        encoding,
        direction,
        feature: Feature::Aa32El0,
        trap,
        el1_trap,
        treatment,
    }
}

use Direction::{Read, ReadWrite};
use Emulation as E;
use TrapControl as T;

const TDCC: Option<El1Trap> = Some(El1Trap::MdscrTdcc);

/// Every AArch32 coprocessor access from EL0 that can reach EL2 under the crate's trap
/// configuration, with what the crate answers. An access matching no row (or a
/// direction the row does not have) is UNDEFINED. The first matching row wins.
pub const REGISTERS: [Aarch32Register; 14] = [
    row(
        "CNTP_TVAL",
        cp32(15, 0, 14, 2, 0),
        ReadWrite,
        T::CnthctlEl1pcen,
        None,
        Treatment::Emulated(E::Timer(timer::CNTP_TVAL_EL0)),
    ),
    row(
        "CNTP_CTL",
        cp32(15, 0, 14, 2, 1),
        ReadWrite,
        T::CnthctlEl1pcen,
        None,
        Treatment::Emulated(E::Timer(timer::CNTP_CTL_EL0)),
    ),
    row(
        "CNTP_CVAL",
        Encoding::Cp64 {
            cp: 15,
            opc1: 2,
            crm: 14,
        },
        ReadWrite,
        T::CnthctlEl1pcen,
        None,
        Treatment::Emulated(E::Timer(timer::CNTP_CVAL_EL0)),
    ),
    row(
        "DBGDIDR",
        cp32(14, 0, 0, 0, 0),
        Read,
        T::MdcrTda,
        TDCC,
        Treatment::Emulated(E::DbgDidr),
    ),
    row(
        "DBGDSCRint",
        cp32(14, 0, 0, 1, 0),
        Read,
        T::MdcrTda,
        TDCC,
        Treatment::Emulated(E::DbgDscrInt),
    ),
    row(
        "DBGDTRRXint/DBGDTRTXint",
        cp32(14, 0, 0, 5, 0),
        ReadWrite,
        T::MdcrTda,
        TDCC,
        Treatment::Emulated(E::DbgDtr),
    ),
    row(
        "DBGDRAR (32-bit)",
        cp32(14, 0, 1, 0, 0),
        Read,
        T::MdcrTdra,
        TDCC,
        Treatment::Emulated(E::Raz),
    ),
    row(
        "DBGDSAR (32-bit)",
        cp32(14, 0, 2, 0, 0),
        Read,
        T::MdcrTdra,
        TDCC,
        Treatment::Emulated(E::Raz),
    ),
    row(
        "DBGDRAR",
        Encoding::Cp64 {
            cp: 14,
            opc1: 0,
            crm: 1,
        },
        Read,
        T::MdcrTdra,
        TDCC,
        Treatment::Emulated(E::Raz),
    ),
    row(
        "DBGDSAR",
        Encoding::Cp64 {
            cp: 14,
            opc1: 0,
            crm: 2,
        },
        Read,
        T::MdcrTdra,
        TDCC,
        Treatment::Emulated(E::Raz),
    ),
    // LDC to DBGDTRTXint / STC from DBGDTRRXint: the transfer is to or from guest
    // memory at a virtual address, which the crate does not translate. UNDEFINED (as
    // KVM answers it); the guest uses MRC/MCR for the DCC instead.
    row(
        "LDC/STC DBGDTRTXint/DBGDTRRXint",
        Encoding::LdcStc,
        ReadWrite,
        T::MdcrTda,
        TDCC,
        Treatment::Undef,
    ),
    // The PMU (hidden in the VM's view: ID_DFR0_EL1.PerfMon = 0): PMCR..PMUSERENR
    // (c9, c12..c14), reached at EL0 when PMUSERENR_EL0.EN = 1.
    Aarch32Register {
        name: "PMU (PMCR, PMCNTENSET, ..., PMUSERENR)",
        encoding: Encoding::Cp32Group {
            cp: 15,
            opc1: (0, 0),
            crn: 9,
            crm: (12, 14),
            opc2: (0, 7),
        },
        direction: ReadWrite,
        feature: Feature::Aa32El0Pmu,
        trap: T::MdcrTpm,
        el1_trap: None,
        treatment: Treatment::Undef,
    },
    Aarch32Register {
        name: "PMCCNTR (64-bit)",
        encoding: Encoding::Cp64 {
            cp: 15,
            opc1: 0,
            crm: 9,
        },
        direction: ReadWrite,
        feature: Feature::Aa32El0Pmu,
        trap: T::MdcrTpm,
        el1_trap: None,
        treatment: Treatment::Undef,
    },
    // IMPLEMENTATION DEFINED registers (CRn 15; HCR_EL2.TIDCP, which may or may not
    // trap EL0 accesses).
    Aarch32Register {
        name: "IMPLEMENTATION DEFINED (c15)",
        encoding: Encoding::Cp32Group {
            cp: 15,
            opc1: (0, 7),
            crn: 15,
            crm: (0, 15),
            opc2: (0, 7),
        },
        direction: ReadWrite,
        feature: Feature::Aa32El0ImpDef,
        trap: T::HcrTidcp,
        el1_trap: None,
        treatment: Treatment::Undef,
    },
];

/// The row for an access, if any.
pub fn lookup(a: &Access) -> Option<&'static Aarch32Register> {
    REGISTERS.iter().find(|r| r.encoding.matches(a))
}

/// `MDSCR_EL1` bits the AArch32 debug views read.
mod mdscr {
    /// TDCC, bit \[12\]: traps EL0 DCC accesses to EL1 (DBGDSCRint.UDCCdis).
    pub const TDCC: u64 = 1 << 12;
    /// MDE, bit \[15\] (DBGDSCRint.MDBGen).
    pub const MDE: u64 = 1 << 15;
    /// Bits \[5:2\] (DBGDSCRint.MOE).
    pub const MOE: u64 = 0xf << 2;
}

/// What the AArch32 debug views read of the vCPU's debug state. The one place that
/// knows where it lives (`crate::debug::DebugSwitch::guest_mdscr`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DebugView {
    /// `MDSCR_EL1` as the guest sees it.
    pub mdscr: u64,
    /// `MDCCSR_EL0` (RXfull \[30\], TXfull \[29\]); 0: no external debugger fills the DCC.
    pub mdccsr: u64,
}

impl DebugView {
    /// The view of a vCPU's debug state.
    pub const fn of(mdscr: u64) -> Self {
        Self { mdscr, mdccsr: 0 }
    }
}

/// DBGDIDR from the VM's ID view: WRPs \[31:28\], BRPs \[27:24\], CTX_CMPs \[23:20\] and
/// Version \[19:16\] have the values of `ID_AA64DFR0_EL1.{WRPs [23:20], BRPs [15:12],
/// CTX_CMPs [31:28], DebugVer [3:0]}`; bit 15 is RES1; nSUHD_imp \[14\] and SE_imp
/// \[12\] are set when EL3 is implemented (`ID_AA64PFR0_EL1.EL3` \[15:12\] ≠ 0).
pub const fn dbgdidr(ids: &IdRegisters) -> u32 {
    let v = ids.values();
    let dfr0 = v[idregs::ID_AA64DFR0];
    let el3 = ((v[idregs::ID_AA64PFR0] >> 12) & 0xf != 0) as u32;
    const fn f(v: u64, lsb: u32) -> u32 {
        ((v >> lsb) & 0xf) as u32
    }
    (f(dfr0, 20) << 28)
        | (f(dfr0, 12) << 24)
        | (f(dfr0, 28) << 20)
        | (f(dfr0, 0) << 16)
        | (1 << 15)
        | (el3 << 14)
        | (el3 << 12)
}

/// DBGDSCRint: RXfull/TXfull \[30:29\] from `MDCCSR_EL0`; MDBGen \[15\], UDCCdis \[12\]
/// and MOE \[5:2\] from `MDSCR_EL1` (the architectural mapping); NS \[18\] = 1 (the
/// guest is Non-secure); SPNIDdis/SPIDdis 0. (At EL0 all but RXfull/TXfull are
/// UNKNOWN; the architecture permits the values EL1 reads, which these are.)
pub const fn dbgdscrint(d: &DebugView) -> u32 {
    ((d.mdccsr & (0b11 << 29)) | (d.mdscr & (mdscr::MDE | mdscr::TDCC | mdscr::MOE)) | (1 << 18))
        as u32
}

/// What the vCPU offers the AArch32 EL0 handler.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The EL1 physical timer is emulated (`passthrough_timer = false`).
    pub emulated_timer: bool,
    /// The VM's ID view.
    pub ids: &'a IdRegisters,
    /// The debug state the views read.
    pub debug: DebugView,
}

/// The outcome of [`handle`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handled {
    /// Done: the frame holds the result and the PC is past the instruction.
    Resume,
    /// Make the guest take this exception (at EL1, from AArch32 EL0).
    Inject(Injection),
    /// UNDEFINED: apply the trap policy (UNDEF, or an exit with `TrapPolicy::ExitToHost`).
    Undef,
    /// Not a coprocessor access: the generic exit path handles it (aborts, WFx, the
    /// lazy FP/SIMD load).
    Pass,
}

/// Reads Rt as an MCR/MCRR operand: R0..R14 are X0..X14; anything else cannot be
/// named from User mode (R15 as a source is UNPREDICTABLE).
fn source(frame: &Aarch64ContextFrame, rt: u8) -> Option<u32> {
    if rt <= 14 {
        Some(frame.gpr[rt as usize] as u32)
    } else {
        None
    }
}

/// Handles a synchronous exit taken from AArch32 EL0 (`frame.spsr` in AArch32 state):
/// skips instructions that fail their condition, answers the coprocessor accesses of
/// [`REGISTERS`], and says what to do with the rest. `now` reads the physical count
/// (only called for the timer). Pure apart from `frame` and `ptimer`.
pub fn handle(
    esr: u64,
    frame: &mut Aarch64ContextFrame,
    ptimer: &mut EmulatedTimer,
    cx: &Context,
    now: impl FnOnce() -> u64,
) -> Handled {
    let len = esr::instruction_length(esr);
    if !condition_passed(esr, frame.spsr) {
        crate::debug::complete_instruction(frame, len);
        return Handled::Resume;
    }
    let Some(access) = Access::decode(esr) else {
        return Handled::Pass;
    };
    let Some(reg) = lookup(&access) else {
        return Handled::Undef;
    };
    let read = access.reads_register();
    if !read && reg.direction == Direction::Read {
        return Handled::Undef;
    }
    if reg.el1_trap == Some(El1Trap::MdscrTdcc) && cx.debug.mdscr & mdscr::TDCC != 0 {
        // The trap MDSCR_EL1.TDCC takes to EL1, with the syndrome EL2 got.
        return Handled::Inject(Injection::Trap {
            esr: (esr & 0xffff_ffff) as u32,
        });
    }
    let Treatment::Emulated(emulation) = reg.treatment else {
        return Handled::Undef;
    };
    // The value a read returns (64 bits for MRRC), or the write's effect.
    let value: u64 = match emulation {
        E::Timer(treg) => {
            if !cx.emulated_timer {
                // The timer is the guest's own; a trap here is not the crate's.
                return Handled::Undef;
            }
            let now = now();
            if read {
                let v = ptimer.read(treg, now);
                if treg == timer::CNTP_CVAL_EL0 {
                    v
                } else {
                    v & 0xffff_ffff
                }
            } else {
                let v = match access {
                    Access::Cp64 { iss, .. } => {
                        match (source(frame, iss.rt), source(frame, iss.rt2)) {
                            (Some(lo), Some(hi)) => (hi as u64) << 32 | lo as u64,
                            _ => return Handled::Undef,
                        }
                    }
                    Access::Cp32 { iss, .. } => match source(frame, iss.rt) {
                        Some(v) => v as u64,
                        None => return Handled::Undef,
                    },
                    Access::LdcStc(_) => return Handled::Undef,
                };
                ptimer.write(treg, v, now);
                0
            }
        }
        E::DbgDidr => dbgdidr(cx.ids) as u64,
        E::DbgDscrInt => dbgdscrint(&cx.debug) as u64,
        E::DbgDtr | E::Raz => 0,
    };
    if read {
        match access {
            Access::Cp32 { iss, .. } => match iss.rt {
                0..=14 => frame.gpr[iss.rt as usize] = value & 0xffff_ffff,
                // MRC to APSR_nzcv: NZCV = value[31:28]. The syndrome names R15 as 15
                // or, in the AArch64 view QEMU reports, 31.
                15 | 31 => frame.spsr = (frame.spsr & !psr::NZCV) | (value & psr::NZCV),
                _ => return Handled::Undef,
            },
            Access::Cp64 { iss, .. } => {
                if iss.rt > 14 || iss.rt2 > 14 || iss.rt == iss.rt2 {
                    // Rt or Rt2 = PC, or Rt = Rt2: UNPREDICTABLE, treated as UNDEFINED.
                    return Handled::Undef;
                }
                frame.gpr[iss.rt as usize] = value & 0xffff_ffff;
                frame.gpr[iss.rt2 as usize] = value >> 32;
            }
            Access::LdcStc(_) => return Handled::Undef,
        }
    } else if let Access::Cp32 { iss, .. } = access {
        if iss.rt > 14 {
            return Handled::Undef;
        }
    }
    crate::debug::complete_instruction(frame, len);
    Handled::Resume
}
