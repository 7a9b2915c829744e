//! Decoding of `ESR_EL2` (Exception Syndrome Register, EL2) and the fault address
//! registers, as pure functions over values captured once at exit.
//!
//! Field positions follow the Arm Architecture Reference Manual (DDI 0487), section
//! D23.2 "ESR_EL2": EC is bits \[31:26\], IL bit \[25\], ISS bits \[24:0\], ISS2 bits \[36:32\].

/// The exception class, `ESR_EL2.EC` (bits \[31:26\]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum ExceptionClass {
    /// 0x00: unknown reason (e.g. an UNDEFINED instruction routed to EL2).
    Unknown = 0x00,
    /// 0x01: trapped WFI/WFE/WFIT/WFET.
    WfxTrap = 0x01,
    /// 0x03: trapped AArch32 MCR/MRC to CP15.
    Mcr15 = 0x03,
    /// 0x04: trapped AArch32 MCRR/MRRC to CP15.
    Mcrr15 = 0x04,
    /// 0x05: trapped AArch32 MCR/MRC to CP14.
    Mcr14 = 0x05,
    /// 0x06: trapped AArch32 LDC/STC.
    Ldc14 = 0x06,
    /// 0x07: access to SME, SVE, Advanced SIMD or floating point trapped by CPTR_EL2/CPACR.
    FpAccess = 0x07,
    /// 0x08: trapped VMRS of an ID register, from AArch32 (`HCR_EL2.TID0/TID3`).
    VmrsId = 0x08,
    /// 0x09: pointer authentication instruction trapped by HCR_EL2.API.
    PointerAuth = 0x09,
    /// 0x0A: LD64B/ST64B* trapped (FEAT_LS64, `HCRX_EL2.EnALS/EnAS0/EnASR` = 0).
    Ls64 = 0x0A,
    /// 0x0C: trapped AArch32 MRRC to CP14.
    Mrrc14 = 0x0C,
    /// 0x0E: illegal execution state.
    IllegalState = 0x0E,
    /// 0x11: SVC from AArch32.
    Svc32 = 0x11,
    /// 0x12: HVC from AArch32.
    Hvc32 = 0x12,
    /// 0x13: SMC from AArch32.
    Smc32 = 0x13,
    /// 0x14: MRRS/MSRR/SYSP trapped (FEAT_SYSREG128, not offered to guests).
    SysReg128 = 0x14,
    /// 0x15: SVC from AArch64.
    Svc64 = 0x15,
    /// 0x16: HVC from AArch64.
    Hvc64 = 0x16,
    /// 0x17: SMC from AArch64 (trapped by HCR_EL2.TSC).
    Smc64 = 0x17,
    /// 0x18: trapped MSR, MRS or System instruction from AArch64.
    SysReg64 = 0x18,
    /// 0x19: SVE access trapped.
    Sve = 0x19,
    /// 0x1D: SME access trapped.
    Sme = 0x1D,
    /// 0x20: instruction abort from a lower EL.
    InstrAbortLower = 0x20,
    /// 0x21: instruction abort taken without a change of EL.
    InstrAbortSame = 0x21,
    /// 0x22: PC alignment fault.
    PcAlignment = 0x22,
    /// 0x24: data abort from a lower EL.
    DataAbortLower = 0x24,
    /// 0x25: data abort taken without a change of EL.
    DataAbortSame = 0x25,
    /// 0x26: SP alignment fault.
    SpAlignment = 0x26,
    /// 0x2C: trapped floating-point exception from AArch64.
    Fp64 = 0x2C,
    /// 0x2D: GCS instruction trapped (FEAT_GCS, `HFGITR_EL2.nGCS*` = 0).
    Gcs = 0x2D,
    /// 0x2F: SError interrupt.
    SError = 0x2F,
    /// 0x30: breakpoint from a lower EL.
    BreakpointLower = 0x30,
    /// 0x32: software step from a lower EL.
    SoftwareStepLower = 0x32,
    /// 0x34: watchpoint from a lower EL.
    WatchpointLower = 0x34,
    /// 0x3C: BRK from AArch64.
    Brk64 = 0x3C,
}

impl ExceptionClass {
    /// Decodes an EC value; `None` for classes this crate does not name (they are
    /// still reported, as [`crate::VmExit::Unhandled`]).
    pub const fn from_bits(ec: u8) -> Option<Self> {
        Some(match ec {
            0x00 => Self::Unknown,
            0x01 => Self::WfxTrap,
            0x03 => Self::Mcr15,
            0x04 => Self::Mcrr15,
            0x05 => Self::Mcr14,
            0x06 => Self::Ldc14,
            0x07 => Self::FpAccess,
            0x08 => Self::VmrsId,
            0x09 => Self::PointerAuth,
            0x0A => Self::Ls64,
            0x0C => Self::Mrrc14,
            0x0E => Self::IllegalState,
            0x11 => Self::Svc32,
            0x12 => Self::Hvc32,
            0x13 => Self::Smc32,
            0x14 => Self::SysReg128,
            0x15 => Self::Svc64,
            0x16 => Self::Hvc64,
            0x17 => Self::Smc64,
            0x18 => Self::SysReg64,
            0x19 => Self::Sve,
            0x1D => Self::Sme,
            0x20 => Self::InstrAbortLower,
            0x21 => Self::InstrAbortSame,
            0x22 => Self::PcAlignment,
            0x24 => Self::DataAbortLower,
            0x25 => Self::DataAbortSame,
            0x26 => Self::SpAlignment,
            0x2C => Self::Fp64,
            0x2D => Self::Gcs,
            0x2F => Self::SError,
            0x30 => Self::BreakpointLower,
            0x32 => Self::SoftwareStepLower,
            0x34 => Self::WatchpointLower,
            0x3C => Self::Brk64,
            _ => return None,
        })
    }
}

/// `ESR_EL2.EC`, bits \[31:26\].
#[inline(always)]
pub const fn ec(esr: u64) -> u8 {
    ((esr >> 26) & 0x3f) as u8
}

/// `ESR_EL2.IL`, bit \[25\]: the trapped instruction is 32 bits (1) or 16 bits (0).
#[inline(always)]
pub const fn instruction_length(esr: u64) -> u64 {
    if esr & (1 << 25) != 0 {
        4
    } else {
        2
    }
}

/// `ESR_EL2.ISS`, bits \[24:0\].
#[inline(always)]
pub const fn iss(esr: u64) -> u32 {
    (esr & 0x1ff_ffff) as u32
}

/// `ESR_EL2` of `HVC #0` from AArch64: EC \[31:26\] = 0x16, IL \[25\] = 1, ISS
/// \[24:0\] (imm16 and RES0 above it) and ISS2 \[55:32\] zero.
pub const HVC64_IMM0: u64 = ((ExceptionClass::Hvc64 as u64) << 26) | (1 << 25);

/// The 16-bit immediate of a trapped HVC or SMC, ISS bits \[15:0\].
#[inline(always)]
pub const fn imm16(esr: u64) -> u16 {
    (esr & 0xffff) as u16
}

/// The state captured at a synchronous exit: `ESR_EL2`, and for aborts `FAR_EL2`
/// and `HPFAR_EL2` (zero when not read).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Syndrome {
    /// `ESR_EL2`.
    pub esr: u64,
    /// `FAR_EL2`: the faulting virtual address (aborts only).
    pub far: u64,
    /// `HPFAR_EL2`: the faulting IPA, bits \[51:12\] in FIPA (aborts on stage 2 only).
    pub hpfar: u64,
}

impl Syndrome {
    /// Whether FAR/HPFAR are meaningful for this exception class, i.e. whether the
    /// exit path must read them.
    #[inline]
    pub const fn needs_fault_address(esr: u64) -> bool {
        matches!(ec(esr), 0x20 | 0x24)
    }

    /// The faulting IPA: `HPFAR_EL2.FIPA` (bits \[47:4\] hold IPA\[51:12\]) plus the page
    /// offset from `FAR_EL2` when FAR is valid (`FnV` = 0).
    pub const fn fault_ipa(&self, far_valid: bool) -> u64 {
        let page = (self.hpfar & 0x0000_0fff_ffff_fff0) << 8;
        if far_valid {
            page | (self.far & 0xfff)
        } else {
            page
        }
    }
}

/// Kind of a stage-1/stage-2 fault, from the DFSC/IFSC field (ISS bits \[5:0\]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultStatus {
    /// Address size fault at the given level (0b0000LL).
    AddressSize(u8),
    /// Translation fault at the given level (0b0001LL).
    Translation(u8),
    /// Access flag fault at the given level (0b0010LL).
    AccessFlag(u8),
    /// Permission fault at the given level (0b0011LL).
    Permission(u8),
    /// Synchronous external abort, not on a table walk (0b010000).
    SyncExternal,
    /// Synchronous external abort on a table walk at the given level (0b0101LL).
    SyncExternalOnWalk(u8),
    /// Alignment fault (0b100001).
    Alignment,
    /// TLB conflict abort (0b110000).
    TlbConflict,
    /// Any other encoding, raw.
    Other(u8),
}

impl FaultStatus {
    /// Decodes a 6-bit DFSC/IFSC value.
    pub const fn from_bits(fsc: u8) -> Self {
        let level = fsc & 3;
        match fsc & 0x3f {
            0b000000..=0b000011 => Self::AddressSize(level),
            0b000100..=0b000111 => Self::Translation(level),
            0b001000..=0b001011 => Self::AccessFlag(level),
            0b001100..=0b001111 => Self::Permission(level),
            0b010000 => Self::SyncExternal,
            0b010100..=0b010111 => Self::SyncExternalOnWalk(level),
            0b100001 => Self::Alignment,
            0b110000 => Self::TlbConflict,
            other => Self::Other(other),
        }
    }
}

/// The ISS of a data abort (EC 0x24/0x25), ESR_EL2 bits \[24:0\].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataAbortIss {
    /// ISV, bit \[24\]: bits \[23:14\] hold a valid instruction syndrome.
    pub isv: bool,
    /// SAS, bits \[23:22\]: access size, 1 << SAS bytes.
    pub sas: u8,
    /// SSE, bit \[21\]: the load sign-extends.
    pub sse: bool,
    /// SRT, bits \[20:16\]: the transfer register (31 = XZR/WZR).
    pub srt: u8,
    /// SF, bit \[15\]: the transfer register is 64-bit (X) rather than 32-bit (W).
    pub sf: bool,
    /// AR, bit \[14\]: acquire/release semantics.
    pub ar: bool,
    /// FnV, bit \[10\]: FAR is not valid.
    pub fnv: bool,
    /// EA, bit \[9\]: external abort type.
    pub ea: bool,
    /// CM, bit \[8\]: cache maintenance or address translation instruction.
    pub cm: bool,
    /// S1PTW, bit \[7\]: stage-2 fault on a stage-1 translation table walk.
    pub s1ptw: bool,
    /// WnR, bit \[6\]: the access was a write.
    pub wnr: bool,
    /// DFSC, bits \[5:0\].
    pub dfsc: FaultStatus,
}

impl DataAbortIss {
    /// Decodes the ISS of a data abort.
    pub const fn decode(esr: u64) -> Self {
        let iss = iss(esr);
        Self {
            isv: iss & (1 << 24) != 0,
            sas: ((iss >> 22) & 3) as u8,
            sse: iss & (1 << 21) != 0,
            srt: ((iss >> 16) & 0x1f) as u8,
            sf: iss & (1 << 15) != 0,
            ar: iss & (1 << 14) != 0,
            fnv: iss & (1 << 10) != 0,
            ea: iss & (1 << 9) != 0,
            cm: iss & (1 << 8) != 0,
            s1ptw: iss & (1 << 7) != 0,
            wnr: iss & (1 << 6) != 0,
            dfsc: FaultStatus::from_bits((iss & 0x3f) as u8),
        }
    }

    /// Access size in bytes (1, 2, 4 or 8).
    pub const fn access_bytes(&self) -> u8 {
        1 << self.sas
    }

    /// Whether this abort can be emulated from its syndrome alone: ISV set, not a
    /// stage-1 walk, not a cache maintenance operation, no external abort, and a
    /// translation, access-flag or permission fault.
    pub const fn is_emulatable_mmio(&self) -> bool {
        self.isv
            && !self.s1ptw
            && !self.cm
            && !self.ea
            && matches!(
                self.dfsc,
                FaultStatus::Translation(_)
                    | FaultStatus::AccessFlag(_)
                    | FaultStatus::Permission(_)
            )
    }
}

/// The ISS of an instruction abort (EC 0x20/0x21).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstrAbortIss {
    /// FnV, bit \[10\]: FAR is not valid.
    pub fnv: bool,
    /// EA, bit \[9\]: external abort type.
    pub ea: bool,
    /// S1PTW, bit \[7\]: stage-2 fault on a stage-1 table walk.
    pub s1ptw: bool,
    /// IFSC, bits \[5:0\].
    pub ifsc: FaultStatus,
}

impl InstrAbortIss {
    /// Decodes the ISS of an instruction abort.
    pub const fn decode(esr: u64) -> Self {
        let iss = iss(esr);
        Self {
            fnv: iss & (1 << 10) != 0,
            ea: iss & (1 << 9) != 0,
            s1ptw: iss & (1 << 7) != 0,
            ifsc: FaultStatus::from_bits((iss & 0x3f) as u8),
        }
    }
}

/// The ISS of a trapped MSR/MRS (EC 0x18).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SysRegIss {
    /// Op0, bits \[21:20\].
    pub op0: u8,
    /// Op2, bits \[19:17\].
    pub op2: u8,
    /// Op1, bits \[16:14\].
    pub op1: u8,
    /// CRn, bits \[13:10\].
    pub crn: u8,
    /// Rt, bits \[9:5\].
    pub rt: u8,
    /// CRm, bits \[4:1\].
    pub crm: u8,
    /// Direction, bit \[0\]: 1 = read (MRS), 0 = write (MSR).
    pub read: bool,
}

impl SysRegIss {
    /// Decodes the ISS of a trapped MSR/MRS/System instruction.
    pub const fn decode(esr: u64) -> Self {
        let iss = iss(esr);
        Self {
            op0: ((iss >> 20) & 3) as u8,
            op2: ((iss >> 17) & 7) as u8,
            op1: ((iss >> 14) & 7) as u8,
            crn: ((iss >> 10) & 0xf) as u8,
            rt: ((iss >> 5) & 0x1f) as u8,
            crm: ((iss >> 1) & 0xf) as u8,
            read: iss & 1 != 0,
        }
    }
}

/// Which wait instruction a WFx trap (EC 0x01) reports, ISS.TI bits \[1:0\].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WfxKind {
    /// WFI.
    Wfi,
    /// WFE.
    Wfe,
    /// WFIT (FEAT_WFxT).
    Wfit,
    /// WFET (FEAT_WFxT).
    Wfet,
}

/// Decodes ISS.TI of a WFx trap.
pub const fn wfx_kind(esr: u64) -> WfxKind {
    match esr & 3 {
        0 => WfxKind::Wfi,
        1 => WfxKind::Wfe,
        2 => WfxKind::Wfit,
        _ => WfxKind::Wfet,
    }
}

/// Builders of syndrome words from their fields, for tests and for code that injects
/// exceptions. They are the inverse of the decoders above.
pub mod build {
    /// EC and IL=1 (32-bit instruction) header of a syndrome.
    pub const fn header(ec: u8) -> u64 {
        ((ec as u64) << 26) | (1 << 25)
    }

    /// A data abort from a lower EL with a valid instruction syndrome.
    #[allow(clippy::too_many_arguments)]
    pub const fn data_abort(
        sas: u8,
        sse: bool,
        srt: u8,
        sf: bool,
        ar: bool,
        wnr: bool,
        s1ptw: bool,
        dfsc: u8,
    ) -> u64 {
        header(0x24)
            | (1 << 24)
            | ((sas as u64 & 3) << 22)
            | ((sse as u64) << 21)
            | ((srt as u64 & 0x1f) << 16)
            | ((sf as u64) << 15)
            | ((ar as u64) << 14)
            | ((s1ptw as u64) << 7)
            | ((wnr as u64) << 6)
            | (dfsc as u64 & 0x3f)
    }

    /// A trapped MSR/MRS.
    pub const fn sysreg(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8, rt: u8, read: bool) -> u64 {
        header(0x18)
            | ((op0 as u64 & 3) << 20)
            | ((op2 as u64 & 7) << 17)
            | ((op1 as u64 & 7) << 14)
            | ((crn as u64 & 0xf) << 10)
            | ((rt as u64 & 0x1f) << 5)
            | ((crm as u64 & 0xf) << 1)
            | (read as u64)
    }

    /// An HVC (EC 0x16) or SMC (EC 0x17) with its immediate.
    pub const fn call(ec: u8, imm: u16) -> u64 {
        header(ec) | imm as u64
    }
}
