//! The ID registers a guest sees: the feature ID space (op0 = 3, op1 = 0, CRn = 0,
//! CRm = 1..7) trapped by `HCR_EL2.TID3` and answered from a per-VM view built from
//! the host's values with the features this crate does not switch per vCPU removed.

use crate::exit::SysRegAddr;

/// Number of encodings in the trapped ID space (CRm 1..7 × op2 0..7).
pub const ID_SPACE_LEN: usize = 56;

/// Index of an encoding in the ID space, or `None` outside it.
pub const fn index(reg: SysRegAddr) -> Option<usize> {
    if reg.op0() == 3 && reg.op1() == 0 && reg.crn() == 0 && reg.crm() >= 1 && reg.crm() <= 7 {
        Some((reg.crm() as usize - 1) * 8 + reg.op2() as usize)
    } else {
        None
    }
}

/// The exit fast path's test of a raw `ESR_EL2` value: an MRS of the ID space trapped
/// by `HCR_EL2.TID3` (EC 0x18, IL 1, ISS Op0 \[21:20\] = 3, Op1 \[16:14\] = 0, CRn \[13:10\]
/// = 0, CRm \[4:1\] = 1..7, Direction \[0\] = 1 (read)). Returns the register's [`index`]
/// and Rt \[9:5\]; the same answer as [`crate::esr::SysRegIss::decode`] + [`index`]
/// without building either. Bit 63 (set by the vectors for asynchronous exits) never
/// matches.
pub const fn fast_id_read(esr: u64) -> Option<(usize, u8)> {
    fast_id_read_as(esr, [FAST_ID_MASK, FAST_ID_WANT])
}

/// What [`fast_id_read_as`] compares `ESR_EL2 & FAST_ID_MASK` with: bit 63 (the
/// vectors' asynchronous flag), EC, IL, Op0, Op1, CRn, CRm\[3\] (so CRm < 8) and
/// Direction.
pub const FAST_ID_MASK: u64 =
    (1 << 63) | (0x3f << 26) | (1 << 25) | (3 << 20) | (7 << 14) | (0xf << 10) | (1 << 4) | 1;
/// The pattern of an ID-space MRS (CRm 0..7: CRm 0 is refused separately).
pub const FAST_ID_WANT: u64 = (0x18 << 26) | (1 << 25) | (3 << 20) | 1;
/// A pattern no syndrome matches (bits outside [`FAST_ID_MASK`] set): a vCPU whose ID
/// registers exit to the host holds it, so its fast path costs no policy test.
pub const FAST_ID_NEVER: u64 = !0;

/// [`fast_id_read`] against `[mask, want]`: [`FAST_ID_MASK`] and [`FAST_ID_WANT`] or
/// [`FAST_ID_NEVER`] (a vCPU keeps the pair side by side: one `ldp`, no constant to
/// build on the exit path).
#[inline(always)]
pub const fn fast_id_read_as(esr: u64, [mask, want]: [u64; 2]) -> Option<(usize, u8)> {
    if esr & mask != want {
        return None;
    }
    // CRm 1..7 (CRm[3] is in the mask).
    let crm = ((esr >> 1) & 0x7) as usize;
    if crm == 0 {
        return None;
    }
    let op2 = ((esr >> 17) & 7) as usize;
    Some(((crm - 1) * 8 + op2, ((esr >> 5) & 0x1f) as u8))
}

/// Encoding of index `i` (the inverse of [`index`]).
pub const fn encoding(i: usize) -> SysRegAddr {
    SysRegAddr::new(3, 0, 0, (i / 8) as u8 + 1, (i % 8) as u8)
}

const fn idx(crm: u8, op2: u8) -> usize {
    (crm as usize - 1) * 8 + op2 as usize
}

/// `ID_PFR0_EL1` (CRm 1, op2 0), AArch32 view.
pub const ID_PFR0: usize = idx(1, 0);
/// `ID_PFR1_EL1`.
pub const ID_PFR1: usize = idx(1, 1);
/// `ID_DFR0_EL1`.
pub const ID_DFR0: usize = idx(1, 2);
/// `ID_AFR0_EL1` (IMPLEMENTATION DEFINED).
pub const ID_AFR0: usize = idx(1, 3);
/// `ID_PFR2_EL1` (CRm 3, op2 4).
pub const ID_PFR2: usize = idx(3, 4);
/// `ID_DFR1_EL1` (CRm 3, op2 5).
pub const ID_DFR1: usize = idx(3, 5);
/// End of the AArch32 ID registers (CRm 1..3) in [`index`] order.
pub const AARCH32_ID_END: usize = idx(4, 0);
/// `ID_AA64PFR0_EL1` (CRm 4, op2 0).
pub const ID_AA64PFR0: usize = idx(4, 0);
/// `ID_AA64PFR1_EL1`.
pub const ID_AA64PFR1: usize = idx(4, 1);
/// `ID_AA64PFR2_EL1`.
pub const ID_AA64PFR2: usize = idx(4, 2);
/// `ID_AA64ZFR0_EL1` (SVE).
pub const ID_AA64ZFR0: usize = idx(4, 4);
/// `ID_AA64SMFR0_EL1` (SME).
pub const ID_AA64SMFR0: usize = idx(4, 5);
/// `ID_AA64FPFR0_EL1` (FP8).
pub const ID_AA64FPFR0: usize = idx(4, 7);
/// `ID_AA64DFR0_EL1`.
pub const ID_AA64DFR0: usize = idx(5, 0);
/// `ID_AA64DFR1_EL1`.
pub const ID_AA64DFR1: usize = idx(5, 1);
/// `ID_AA64DFR2_EL1`.
pub const ID_AA64DFR2: usize = idx(5, 2);
/// `ID_AA64AFR0_EL1` (IMPLEMENTATION DEFINED).
pub const ID_AA64AFR0: usize = idx(5, 4);
/// `ID_AA64AFR1_EL1` (IMPLEMENTATION DEFINED).
pub const ID_AA64AFR1: usize = idx(5, 5);
/// `ID_AA64ISAR0_EL1`.
pub const ID_AA64ISAR0: usize = idx(6, 0);
/// `ID_AA64ISAR1_EL1`.
pub const ID_AA64ISAR1: usize = idx(6, 1);
/// `ID_AA64ISAR2_EL1`.
pub const ID_AA64ISAR2: usize = idx(6, 2);
/// `ID_AA64ISAR3_EL1`.
pub const ID_AA64ISAR3: usize = idx(6, 3);
/// `ID_AA64MMFR0_EL1` (CRm 7, op2 0).
pub const ID_AA64MMFR0: usize = idx(7, 0);
/// `ID_AA64MMFR1_EL1`.
pub const ID_AA64MMFR1: usize = idx(7, 1);
/// `ID_AA64MMFR2_EL1`.
pub const ID_AA64MMFR2: usize = idx(7, 2);
/// `ID_AA64MMFR3_EL1`.
pub const ID_AA64MMFR3: usize = idx(7, 3);
/// `ID_AA64MMFR4_EL1`.
pub const ID_AA64MMFR4: usize = idx(7, 4);

/// What the VM's view does with one field of the host's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Reads as 0: the feature is not offered (its registers trap, see the inventory).
    Hide,
    /// At most this value (an unsigned field): the higher levels are not offered.
    Cap(u8),
    /// Reads as 0 unless the pointer-authentication keys are switched (they are on
    /// every CPU with FEAT_PAuth).
    HideUnlessPauth,
    /// Reads as 0 when the setup hides AArch32 EL0
    /// (`Aarch64VCpuSetupConfig::hide_aarch32_el0`): the AArch32 ID registers, as KVM
    /// shows them to a VM without AArch32 (the architecture makes them UNKNOWN when no
    /// Exception level implements AArch32; EL1 is AArch64-only here).
    HideWithoutAarch32El0,
    /// At most this value when the setup hides AArch32 EL0 (`ID_AA64PFR0_EL1.EL0`
    /// 0b0010 becomes 0b0001, AArch64 only).
    CapWithoutAarch32El0(u8),
    /// Reads as 0 unless the setup gives the VM a PMU (`crate::pmu`); then the
    /// version its view decided (`PmuView::pmuver`, at most PMUv3p1).
    ShownWithPmu,
}

/// One field of the ID view: register index, lowest bit, width, rule, name, reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ViewField {
    /// Index in the ID space ([`index`]).
    pub reg: usize,
    /// Lowest bit.
    pub lsb: u32,
    /// Width in bits (64: the whole register).
    pub width: u32,
    /// What the view does.
    pub rule: Rule,
    /// `REGISTER.FIELD`.
    pub name: &'static str,
    /// Why.
    pub why: &'static str,
}

const fn h(reg: usize, lsb: u32, name: &'static str, why: &'static str) -> ViewField {
    ViewField {
        reg,
        lsb,
        width: 4,
        rule: Rule::Hide,
        name,
        why,
    }
}

const fn whole(reg: usize, name: &'static str, why: &'static str) -> ViewField {
    ViewField {
        reg,
        lsb: 0,
        width: 64,
        rule: Rule::Hide,
        name,
        why,
    }
}

const fn cap(reg: usize, lsb: u32, max: u8, name: &'static str, why: &'static str) -> ViewField {
    ViewField {
        reg,
        lsb,
        width: 4,
        rule: Rule::Cap(max),
        name,
        why,
    }
}

const fn a32(reg: usize, name: &'static str) -> ViewField {
    ViewField {
        reg,
        lsb: 0,
        width: 64,
        rule: Rule::HideWithoutAarch32El0,
        name,
        why: "AArch32 ID register: 0 where the setup hides AArch32 EL0",
    }
}

const fn pauth(reg: usize, lsb: u32, name: &'static str) -> ViewField {
    ViewField {
        reg,
        lsb,
        width: 4,
        rule: Rule::HideUnlessPauth,
        name,
        why: "pointer authentication: visible only where its keys are switched",
    }
}

/// The ID view: every field of the host's values the VM does not see as the host has
/// it. Everything else passes through (instruction-set features with no state of their
/// own, and the fields of the registers the crate switches). Registers introduced for
/// features the crate does not virtualize (ID_AA64PFR2, ZFR0, SMFR0, FPFR0, DFR1, DFR2,
/// ISAR3, MMFR3, MMFR4, the IMPLEMENTATION DEFINED AFRs) are hidden whole, so a field
/// added to them later cannot offer a feature whose state nobody switches.
#[rustfmt::skip]
pub const VIEW: &[ViewField] = &[
    h(ID_PFR0, 20, "ID_PFR0_EL1.AMU", "activity monitors trap (CPTR_EL2.TAM)"),
    h(ID_PFR0, 28, "ID_PFR0_EL1.RAS", "error records trap (HCR_EL2.TERR)"),
    cap(ID_PFR0, 16, 1, "ID_PFR0_EL1.CSV2", "SCXTNUM trap (HCR_EL2.EnSCXT = 0)"),
    h(ID_PFR1, 12, "ID_PFR1_EL1.Virtualization", "no EL2 in the VM"),
    h(ID_PFR1, 24, "ID_PFR1_EL1.Virt_frac", "no EL2 in the VM"),
    h(ID_DFR0, 12, "ID_DFR0_EL1.CopTrc", "trace traps (CPTR_EL2.TTA)"),
    h(ID_DFR0, 16, "ID_DFR0_EL1.MMapTrc", "trace traps"),
    h(ID_DFR0, 24, "ID_DFR0_EL1.PerfMon", "PMU traps (MDCR_EL2.TPM)"),
    h(ID_DFR0, 28, "ID_DFR0_EL1.TraceFilt", "TRFCR traps (MDCR_EL2.TTRF)"),
    whole(ID_AFR0, "ID_AFR0_EL1", "IMPLEMENTATION DEFINED"),
    h(ID_PFR2, 8, "ID_PFR2_EL1.RAS_frac", "error records trap"),
    whole(ID_DFR1, "ID_DFR1_EL1", "PMU (MTPMU, HPMN0) traps"),
    ViewField { reg: ID_AA64PFR0, lsb: 0, width: 4, rule: Rule::CapWithoutAarch32El0(1), name: "ID_AA64PFR0_EL1.EL0", why: "AArch64 only where the setup hides AArch32 EL0 (its traps are then UNDEFINED)" },
    cap(ID_AA64PFR0, 4, 1, "ID_AA64PFR0_EL1.EL1", "HCR_EL2.RW = 1: EL1 is AArch64-only"),
    h(ID_AA64PFR0, 8, "ID_AA64PFR0_EL1.EL2", "no EL2 in the VM"),
    h(ID_AA64PFR0, 28, "ID_AA64PFR0_EL1.RAS", "error records trap (TERR); DISR_EL1 is switched as VDISR_EL2"),
    h(ID_AA64PFR0, 32, "ID_AA64PFR0_EL1.SVE", "SVE traps (CPTR_EL2.TZ)"),
    h(ID_AA64PFR0, 36, "ID_AA64PFR0_EL1.SEL2", "no Secure EL2"),
    h(ID_AA64PFR0, 40, "ID_AA64PFR0_EL1.MPAM", "MPAM0/1_EL1 trap (MPAM2_EL2)"),
    h(ID_AA64PFR0, 44, "ID_AA64PFR0_EL1.AMU", "activity monitors trap (CPTR_EL2.TAM)"),
    h(ID_AA64PFR0, 52, "ID_AA64PFR0_EL1.RME", "no Realm management"),
    cap(ID_AA64PFR0, 56, 1, "ID_AA64PFR0_EL1.CSV2", "SCXTNUM_ELx trap (HCR_EL2.EnSCXT = 0): CSV2_2 not offered"),
    h(ID_AA64PFR1, 8, "ID_AA64PFR1_EL1.MTE", "tag registers trap (HCR_EL2.ATA = 0, TID5)"),
    h(ID_AA64PFR1, 12, "ID_AA64PFR1_EL1.RAS_frac", "error records trap"),
    h(ID_AA64PFR1, 16, "ID_AA64PFR1_EL1.MPAM_frac", "MPAM traps"),
    h(ID_AA64PFR1, 24, "ID_AA64PFR1_EL1.SME", "SME traps (CPTR_EL2.TSM); TPIDR2_EL0/SMPRI_EL1 switched"),
    h(ID_AA64PFR1, 28, "ID_AA64PFR1_EL1.RNDR_trap", "EL3 control"),
    cap(ID_AA64PFR1, 32, 1, "ID_AA64PFR1_EL1.CSV2_frac", "CSV2_1p2 (SCXTNUM) not offered"),
    h(ID_AA64PFR1, 36, "ID_AA64PFR1_EL1.NMI", "no virtual NMI"),
    h(ID_AA64PFR1, 40, "ID_AA64PFR1_EL1.MTE_frac", "MTE hidden"),
    h(ID_AA64PFR1, 44, "ID_AA64PFR1_EL1.GCS", "GCS hidden (registers switched, trapped with FEAT_FGT)"),
    h(ID_AA64PFR1, 48, "ID_AA64PFR1_EL1.THE", "RCW masks hidden (switched, trapped with FEAT_FGT)"),
    h(ID_AA64PFR1, 52, "ID_AA64PFR1_EL1.MTEX", "MTE hidden"),
    h(ID_AA64PFR1, 56, "ID_AA64PFR1_EL1.DF2", "SCTLR2 hidden"),
    h(ID_AA64PFR1, 60, "ID_AA64PFR1_EL1.PFAR", "PFAR_EL1 hidden (switched, trapped with FEAT_FGT2)"),
    whole(ID_AA64PFR2, "ID_AA64PFR2_EL1", "FPMR (HCRX_EL2.EnFPM = 0) and MTE extensions not offered"),
    whole(ID_AA64ZFR0, "ID_AA64ZFR0_EL1", "SVE traps"),
    whole(ID_AA64SMFR0, "ID_AA64SMFR0_EL1", "SME traps"),
    whole(ID_AA64FPFR0, "ID_AA64FPFR0_EL1", "FP8 not offered (FPMR)"),
    cap(ID_AA64DFR0, 0, crate::debug::DEBUGVER_V8P8 as u8, "ID_AA64DFR0_EL1.DebugVer", "debug switched up to Armv8.8 (no FEAT_Debugv8p9 breakpoint banks, MDSELR_EL1)"),
    h(ID_AA64DFR0, 4, "ID_AA64DFR0_EL1.TraceVer", "trace unit traps (CPTR_EL2.TTA)"),
    ViewField { reg: ID_AA64DFR0, lsb: 8, width: 4, rule: Rule::ShownWithPmu, name: "ID_AA64DFR0_EL1.PMUVer", why: "0 (PMU registers trap: MDCR_EL2.TPM) unless the setup gives the VM a virtual PMU: then at most PMUv3p4, switched lazily (crate::pmu)" },
    h(ID_AA64DFR0, 32, "ID_AA64DFR0_EL1.PMSVer", "SPE traps (MDCR_EL2.TPMS, E2PB)"),
    h(ID_AA64DFR0, 40, "ID_AA64DFR0_EL1.TraceFilt", "TRFCR_EL1 traps (MDCR_EL2.TTRF)"),
    h(ID_AA64DFR0, 44, "ID_AA64DFR0_EL1.TraceBuffer", "TRBE traps (MDCR_EL2.E2TB)"),
    h(ID_AA64DFR0, 48, "ID_AA64DFR0_EL1.MTPMU", "PMU traps"),
    h(ID_AA64DFR0, 52, "ID_AA64DFR0_EL1.BRBE", "BRBE traps (fine-grained traps)"),
    h(ID_AA64DFR0, 60, "ID_AA64DFR0_EL1.HPMN0", "PMU traps"),
    whole(ID_AA64DFR1, "ID_AA64DFR1_EL1", "debug/PMU extensions not offered: the extended breakpoint/watchpoint counts (BRPs, WRPs, CTX_CMPs, ABL_CMPs) too, so ID_AA64DFR0_EL1's counts, all switched, are the whole truth"),
    whole(ID_AA64DFR2, "ID_AA64DFR2_EL1", "debug extensions not offered"),
    whole(ID_AA64AFR0, "ID_AA64AFR0_EL1", "IMPLEMENTATION DEFINED"),
    whole(ID_AA64AFR1, "ID_AA64AFR1_EL1", "IMPLEMENTATION DEFINED"),
    pauth(ID_AA64ISAR1, 4, "ID_AA64ISAR1_EL1.APA"),
    pauth(ID_AA64ISAR1, 8, "ID_AA64ISAR1_EL1.API"),
    pauth(ID_AA64ISAR1, 24, "ID_AA64ISAR1_EL1.GPA"),
    pauth(ID_AA64ISAR1, 28, "ID_AA64ISAR1_EL1.GPI"),
    h(ID_AA64ISAR1, 60, "ID_AA64ISAR1_EL1.LS64", "LS64 traps (HCRX_EL2); ACCDATA_EL1 switched, trapped with FEAT_FGT"),
    pauth(ID_AA64ISAR2, 8, "ID_AA64ISAR2_EL1.GPA3"),
    pauth(ID_AA64ISAR2, 12, "ID_AA64ISAR2_EL1.APA3"),
    pauth(ID_AA64ISAR2, 24, "ID_AA64ISAR2_EL1.PAC_frac"),
    h(ID_AA64ISAR2, 32, "ID_AA64ISAR2_EL1.SYSREG_128", "128-bit System registers (HCRX_EL2.D128En) not offered"),
    h(ID_AA64ISAR2, 36, "ID_AA64ISAR2_EL1.SYSINSTR_128", "128-bit System instructions not offered"),
    whole(ID_AA64ISAR3, "ID_AA64ISAR3_EL1", "extensions not offered"),
    h(ID_AA64MMFR0, 56, "ID_AA64MMFR0_EL1.FGT", "no EL2 in the VM"),
    h(ID_AA64MMFR1, 8, "ID_AA64MMFR1_EL1.VH", "no EL2 in the VM"),
    h(ID_AA64MMFR1, 16, "ID_AA64MMFR1_EL1.LO", "LORegions trap (HCR_EL2.TLOR)"),
    h(ID_AA64MMFR1, 40, "ID_AA64MMFR1_EL1.HCX", "HCRX_EL2 is an EL2 register"),
    h(ID_AA64MMFR2, 24, "ID_AA64MMFR2_EL1.NV", "no nested virtualization"),
    whole(ID_AA64MMFR3, "ID_AA64MMFR3_EL1", "TCR2, SCTLR2, S1PIE, S1POE, AIE, D128 ... not offered (trapped by HCRX_EL2 or the fine-grained traps)"),
    whole(ID_AA64MMFR4, "ID_AA64MMFR4_EL1", "EL2 features"),
    a32(idx(1, 0), "ID_PFR0_EL1"),
    a32(idx(1, 1), "ID_PFR1_EL1"),
    a32(idx(1, 2), "ID_DFR0_EL1"),
    a32(idx(1, 3), "ID_AFR0_EL1"),
    a32(idx(1, 4), "ID_MMFR0_EL1"),
    a32(idx(1, 5), "ID_MMFR1_EL1"),
    a32(idx(1, 6), "ID_MMFR2_EL1"),
    a32(idx(1, 7), "ID_MMFR3_EL1"),
    a32(idx(2, 0), "ID_ISAR0_EL1"),
    a32(idx(2, 1), "ID_ISAR1_EL1"),
    a32(idx(2, 2), "ID_ISAR2_EL1"),
    a32(idx(2, 3), "ID_ISAR3_EL1"),
    a32(idx(2, 4), "ID_ISAR4_EL1"),
    a32(idx(2, 5), "ID_ISAR5_EL1"),
    a32(idx(2, 6), "ID_MMFR4_EL1"),
    a32(idx(2, 7), "ID_ISAR6_EL1"),
    a32(idx(3, 0), "MVFR0_EL1"),
    a32(idx(3, 1), "MVFR1_EL1"),
    a32(idx(3, 2), "MVFR2_EL1"),
    a32(idx(3, 3), "S3_0_C0_C3_3 (reserved)"),
    a32(idx(3, 4), "ID_PFR2_EL1"),
    a32(idx(3, 5), "ID_DFR1_EL1"),
    a32(idx(3, 6), "ID_MMFR5_EL1"),
    a32(idx(3, 7), "S3_0_C0_C3_7 (reserved)"),
];

// The AArch32 ID registers are the first `AARCH32_ID_END` of the ID space.
const _: () = assert!(AARCH32_ID_END == 24);

/// One field rule applied to `v`, the value of register `f.reg` (`pauth_switched`:
/// the pointer-authentication keys are switched; `no_aarch32_el0`: the setup hides
/// AArch32 EL0).
pub const fn apply(f: &ViewField, v: u64, pauth_switched: bool, no_aarch32_el0: bool) -> u64 {
    const fn cap(v: u64, m: u64, lsb: u32, max: u8) -> u64 {
        if (v & m) >> lsb > max as u64 {
            (v & !m) | ((max as u64) << lsb)
        } else {
            v
        }
    }
    let m = field_mask(f);
    match f.rule {
        Rule::Hide | Rule::ShownWithPmu => v & !m,
        Rule::HideUnlessPauth if !pauth_switched => v & !m,
        Rule::HideWithoutAarch32El0 if no_aarch32_el0 => v & !m,
        Rule::Cap(max) => cap(v, m, f.lsb, max),
        Rule::CapWithoutAarch32El0(max) if no_aarch32_el0 => cap(v, m, f.lsb, max),
        Rule::HideUnlessPauth | Rule::HideWithoutAarch32El0 | Rule::CapWithoutAarch32El0(_) => v,
    }
}

/// The unconditional rules of [`VIEW`] ([`Rule::Hide`], [`Rule::Cap`]) applied to `v`,
/// a host value of ID-space register `i` (what `crate::debug::id_view` shows).
pub const fn view_of(i: usize, v: u64) -> u64 {
    let mut v = v;
    let mut k = 0;
    while k < VIEW.len() {
        if VIEW[k].reg == i
            && matches!(VIEW[k].rule, Rule::Hide | Rule::Cap(_) | Rule::ShownWithPmu)
        {
            v = apply(&VIEW[k], v, true, false);
        }
        k += 1;
    }
    v
}

const fn field_mask(f: &ViewField) -> u64 {
    if f.width >= 64 {
        u64::MAX
    } else {
        ((1u64 << f.width) - 1) << f.lsb
    }
}

/// The bits of ID-space register `i` that always read as 0 in a VM's view ([`Rule::Hide`]).
pub const fn hidden_mask(i: usize) -> u64 {
    let mut m = 0;
    let mut k = 0;
    while k < VIEW.len() {
        if VIEW[k].reg == i && matches!(VIEW[k].rule, Rule::Hide) {
            m |= field_mask(&VIEW[k]);
        }
        k += 1;
    }
    m
}

/// The ID registers of one VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdRegisters {
    regs: [u64; ID_SPACE_LEN],
}

impl Default for IdRegisters {
    fn default() -> Self {
        Self {
            regs: [0; ID_SPACE_LEN],
        }
    }
}

impl IdRegisters {
    /// The view a guest gets of a host whose ID space holds `host` (index order of
    /// [`index`]); `pauth_switched` keeps pointer authentication visible; `ipa_bits` is
    /// the size of the VM's guest-physical space: `ID_AA64MMFR0_EL1.PARange` \[3:0\]
    /// becomes the largest encoding not above it (and not above the host's).
    pub const fn sanitized(host: &[u64; ID_SPACE_LEN], pauth_switched: bool, ipa_bits: u8) -> Self {
        let mut regs = *host;
        let host_pa = (regs[ID_AA64MMFR0] & 0xf) as u8;
        let mut pa = 0u8;
        while pa < 6 {
            match crate::stage2::pa_range_bits(pa + 1) {
                Some(bits) if bits <= ipa_bits && pa < host_pa => pa += 1,
                _ => break,
            }
        }
        regs[ID_AA64MMFR0] = (regs[ID_AA64MMFR0] & !0xf) | pa as u64;
        let mut k = 0;
        while k < VIEW.len() {
            let f = &VIEW[k];
            regs[f.reg] = apply(f, regs[f.reg], pauth_switched, false);
            k += 1;
        }
        Self { regs }
    }

    /// This view with AArch32 EL0 hidden (`Aarch64VCpuSetupConfig::hide_aarch32_el0`):
    /// `ID_AA64PFR0_EL1.EL0` \[3:0\] = 0b0001 (AArch64 only) where it was 0b0010, and the
    /// AArch32 ID registers (CRm 1..3: ID_PFR0 .. ID_MMFR5, MVFR0..2) zero, as KVM shows
    /// them to a VM without AArch32 (the architecture makes them UNKNOWN when no EL
    /// implements AArch32; EL1 is already AArch64-only here).
    /// (The rows of [`VIEW`] with [`Rule::HideWithoutAarch32El0`] and
    /// [`Rule::CapWithoutAarch32El0`].)
    pub const fn without_aarch32_el0(mut self) -> Self {
        let mut k = 0;
        while k < VIEW.len() {
            let f = &VIEW[k];
            if matches!(
                f.rule,
                Rule::HideWithoutAarch32El0 | Rule::CapWithoutAarch32El0(_)
            ) {
                self.regs[f.reg] = apply(f, self.regs[f.reg], true, true);
            }
            k += 1;
        }
        self
    }

    /// This view with the PMU shown as version `pmuver` (the [`Rule::ShownWithPmu`]
    /// fields; `crate::pmu::PmuView::pmuver`).
    pub const fn with_pmu(mut self, pmuver: u8) -> Self {
        let mut k = 0;
        while k < VIEW.len() {
            let f = &VIEW[k];
            if matches!(f.rule, Rule::ShownWithPmu) {
                let m = field_mask(f);
                self.regs[f.reg] = (self.regs[f.reg] & !m) | (((pmuver & 0xf) as u64) << f.lsb);
            }
            k += 1;
        }
        self
    }

    /// The value a guest reads from `reg`, if `reg` is in the ID space.
    pub const fn read(&self, reg: SysRegAddr) -> Option<u64> {
        match index(reg) {
            Some(i) => Some(self.regs[i]),
            None => None,
        }
    }

    /// A view with these values (in [`index`] order), e.g. read back from a snapshot.
    pub const fn from_values(regs: [u64; ID_SPACE_LEN]) -> Self {
        Self { regs }
    }

    /// All values, in [`index`] order.
    pub const fn values(&self) -> &[u64; ID_SPACE_LEN] {
        &self.regs
    }
}
