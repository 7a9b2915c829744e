//! The EL2 controls a guest runs under, composed from one table (pure; host-tested).
//!
//! Every bit the crate sets in `HCR_EL2`, `CPTR_EL2`, `MDCR_EL2`, `CNTHCTL_EL2`,
//! `HCRX_EL2`, the fine-grained trap registers and `MPAM2_EL2` is a row of [`BITS`]:
//! the control, the bits, when they are set (always, with a feature of the host, with
//! a setup choice), and why. A trap that works by leaving a bit clear ("n" bits of the
//! fine-grained trap registers, `MDCR_EL2.E2PB/E2TB`, `HCR_EL2.ATA/EnSCXT`, the enable
//! bits of `HCRX_EL2`) is a row too, with [`Role::TrapWhenClear`]: nothing sets it, and
//! a test checks nothing else does. [`compose`] ORs the rows that apply; the
//! inventory's rows name the [`TrapId`] that traps them, and [`trapping`] says whether
//! a composed set of values has it in effect. Bit positions: DDI 0487 (D23.2,
//! `HCR_EL2` etc.) and DDI 0601 for the fine-grained trap and `HCRX_EL2` layouts.
//!
//! Bits are only set where the host has the feature that defines them (a bit of an
//! absent feature is RES0), and the registers of FEAT_HCX, FEAT_FGT, FEAT_FGT2 and
//! FEAT_MPAM are only written on hosts that have them. Those registers need EL3 to
//! have enabled them (`SCR_EL3.HXEn`, `FGTEn`, `FGTEn2`, MPAM3_EL3), as Linux's arm64
//! boot protocol also requires of firmware.

use crate::sysreg::{Feature, FeatureSet};
use crate::Aarch64VCpuSetupConfig;

/// An EL2 control register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum Ctl {
    Hcr,
    Cptr,
    Mdcr,
    Cnthctl,
    Hcrx,
    Hfgrtr,
    Hfgwtr,
    Hfgitr,
    Hdfgrtr,
    Hdfgwtr,
    Hfgrtr2,
    Hfgwtr2,
    Hfgitr2,
    Hdfgrtr2,
    Hdfgwtr2,
    Mpam2,
}

/// Every control, in [`TrapValues`] order.
pub const CTLS: [Ctl; 16] = [
    Ctl::Hcr,
    Ctl::Cptr,
    Ctl::Mdcr,
    Ctl::Cnthctl,
    Ctl::Hcrx,
    Ctl::Hfgrtr,
    Ctl::Hfgwtr,
    Ctl::Hfgitr,
    Ctl::Hdfgrtr,
    Ctl::Hdfgwtr,
    Ctl::Hfgrtr2,
    Ctl::Hfgwtr2,
    Ctl::Hfgitr2,
    Ctl::Hdfgrtr2,
    Ctl::Hdfgwtr2,
    Ctl::Mpam2,
];

impl Ctl {
    /// The register's name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Hcr => "HCR_EL2",
            Self::Cptr => "CPTR_EL2",
            Self::Mdcr => "MDCR_EL2",
            Self::Cnthctl => "CNTHCTL_EL2",
            Self::Hcrx => "HCRX_EL2",
            Self::Hfgrtr => "HFGRTR_EL2",
            Self::Hfgwtr => "HFGWTR_EL2",
            Self::Hfgitr => "HFGITR_EL2",
            Self::Hdfgrtr => "HDFGRTR_EL2",
            Self::Hdfgwtr => "HDFGWTR_EL2",
            Self::Hfgrtr2 => "HFGRTR2_EL2",
            Self::Hfgwtr2 => "HFGWTR2_EL2",
            Self::Hfgitr2 => "HFGITR2_EL2",
            Self::Hdfgrtr2 => "HDFGRTR2_EL2",
            Self::Hdfgwtr2 => "HDFGWTR2_EL2",
            Self::Mpam2 => "MPAM2_EL2",
        }
    }

    /// The feature that makes the register exist (`None`: always, with EL2).
    pub const fn feature(self) -> Option<Feature> {
        match self {
            Self::Hcr | Self::Cptr | Self::Mdcr | Self::Cnthctl => None,
            Self::Hcrx => Some(Feature::Hcx),
            Self::Hfgrtr | Self::Hfgwtr | Self::Hfgitr | Self::Hdfgrtr | Self::Hdfgwtr => {
                Some(Feature::Fgt)
            }
            Self::Hfgrtr2 | Self::Hfgwtr2 | Self::Hfgitr2 | Self::Hdfgrtr2 | Self::Hdfgwtr2 => {
                Some(Feature::Fgt2)
            }
            Self::Mpam2 => Some(Feature::Mpam),
        }
    }

    /// Whether the register exists on a host with `f`.
    pub const fn exists(self, f: FeatureSet) -> bool {
        match self.feature() {
            None => true,
            Some(x) => f.has(x),
        }
    }
}

/// A trap the inventory refers to: one control bit (or field, or pair of bits in the
/// read and write fine-grained registers) that makes accesses to some registers trap
/// to EL2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum TrapId {
    // HCR_EL2
    Tid1,
    Tid3,
    Tid5,
    Tacr,
    Tidcp,
    Tsw,
    Tlor,
    Terr,
    Ata,
    EnScxt,
    Api,
    Apk,
    Imo,
    Fmo,
    // CPTR_EL2
    Tz,
    Tsm,
    Tfp,
    Tta,
    Tam,
    Tcpac,
    // MDCR_EL2
    Tpm,
    Tda,
    Tdosa,
    Tdra,
    Tpms,
    Ttrf,
    E2pb,
    E2tb,
    // CNTHCTL_EL2
    El1pcen,
    // HCRX_EL2
    Tcr2En,
    Sctlr2En,
    EnFpm,
    // MPAM2_EL2
    TrapMpam0El1,
    TrapMpam1El1,
    // Fine-grained traps ("n" bits: trap while clear)
    NTpidr2,
    NSmpri,
    NAccdata,
    NGcsEl1,
    NGcsEl0,
    NPir,
    NPire0,
    NPorEl1,
    NPorEl0,
    NMair2,
    NAmair2,
    NRcwmask,
    NBrbData,
    NBrbCtl,
    NBrbIdr,
    NBrbIall,
    NBrbInj,
    NPfar,
    NRcwsmask,
}

/// Whether a trap is in effect while its bits are set or while they are clear.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Polarity {
    /// Trapping while every bit of the mask is 1.
    Set,
    /// Trapping while every bit of the mask is 0.
    Clear,
}

const fn b(n: u32) -> u64 {
    1 << n
}

impl TrapId {
    /// The control, the bits and the polarity; a second location for traps that need
    /// the same bit in the read and the write fine-grained register.
    pub const fn location(self) -> (Ctl, u64, Polarity, Option<Ctl>) {
        use Ctl::*;
        use Polarity::*;
        use TrapId::*;
        match self {
            Tid1 => (Hcr, b(16), Set, None),
            Tid3 => (Hcr, b(18), Set, None),
            Tid5 => (Hcr, b(58), Set, None),
            Tacr => (Hcr, b(21), Set, None),
            Tidcp => (Hcr, b(20), Set, None),
            Tsw => (Hcr, b(22), Set, None),
            Tlor => (Hcr, b(35), Set, None),
            Terr => (Hcr, b(36), Set, None),
            Ata => (Hcr, b(56), Clear, None),
            EnScxt => (Hcr, b(53), Clear, None),
            Api => (Hcr, b(41), Clear, None),
            Apk => (Hcr, b(40), Clear, None),
            Imo => (Hcr, b(4), Set, None),
            Fmo => (Hcr, b(3), Set, None),
            Tz => (Cptr, b(8), Set, None),
            Tsm => (Cptr, b(12), Set, None),
            Tfp => (Cptr, b(10), Set, None),
            Tta => (Cptr, b(20), Set, None),
            Tam => (Cptr, b(30), Set, None),
            Tcpac => (Cptr, b(31), Set, None),
            Tpm => (Mdcr, b(6), Set, None),
            Tda => (Mdcr, b(9), Set, None),
            Tdosa => (Mdcr, b(10), Set, None),
            Tdra => (Mdcr, b(11), Set, None),
            Tpms => (Mdcr, b(14), Set, None),
            Ttrf => (Mdcr, b(19), Set, None),
            E2pb => (Mdcr, 0b11 << 12, Clear, None),
            E2tb => (Mdcr, 0b11 << 24, Clear, None),
            El1pcen => (Cnthctl, b(1), Clear, None),
            Tcr2En => (Hcrx, b(14), Clear, None),
            Sctlr2En => (Hcrx, b(15), Clear, None),
            EnFpm => (Hcrx, b(23), Clear, None),
            TrapMpam0El1 => (Mpam2, b(49), Set, None),
            TrapMpam1El1 => (Mpam2, b(48), Set, None),
            NTpidr2 => (Hfgrtr, b(55), Clear, Some(Hfgwtr)),
            NSmpri => (Hfgrtr, b(54), Clear, Some(Hfgwtr)),
            NAccdata => (Hfgrtr, b(50), Clear, Some(Hfgwtr)),
            NGcsEl1 => (Hfgrtr, b(53), Clear, Some(Hfgwtr)),
            NGcsEl0 => (Hfgrtr, b(52), Clear, Some(Hfgwtr)),
            NPir => (Hfgrtr, b(58), Clear, Some(Hfgwtr)),
            NPire0 => (Hfgrtr, b(57), Clear, Some(Hfgwtr)),
            NPorEl1 => (Hfgrtr, b(60), Clear, Some(Hfgwtr)),
            NPorEl0 => (Hfgrtr, b(59), Clear, Some(Hfgwtr)),
            NMair2 => (Hfgrtr, b(62), Clear, Some(Hfgwtr)),
            NAmair2 => (Hfgrtr, b(63), Clear, Some(Hfgwtr)),
            NRcwmask => (Hfgrtr, b(56), Clear, Some(Hfgwtr)),
            NBrbData => (Hdfgrtr, b(61), Clear, Some(Hdfgwtr)),
            NBrbCtl => (Hdfgrtr, b(60), Clear, Some(Hdfgwtr)),
            NBrbIdr => (Hdfgrtr, b(59), Clear, None),
            NBrbIall => (Hfgitr, b(56), Clear, None),
            NBrbInj => (Hfgitr, b(55), Clear, None),
            NPfar => (Hfgrtr2, b(0), Clear, Some(Hfgwtr2)),
            NRcwsmask => (Hfgrtr2, b(2), Clear, Some(Hfgwtr2)),
        }
    }

    /// `REGISTER.FIELD` for the rendered page.
    pub const fn name(self) -> &'static str {
        use TrapId::*;
        match self {
            Tid1 => "HCR_EL2.TID1",
            Tid3 => "HCR_EL2.TID3",
            Tid5 => "HCR_EL2.TID5",
            Tacr => "HCR_EL2.TACR",
            Tidcp => "HCR_EL2.TIDCP",
            Tsw => "HCR_EL2.TSW",
            Tlor => "HCR_EL2.TLOR",
            Terr => "HCR_EL2.TERR",
            Ata => "HCR_EL2.ATA = 0",
            EnScxt => "HCR_EL2.EnSCXT = 0",
            Api => "HCR_EL2.API = 0",
            Apk => "HCR_EL2.APK = 0",
            Imo => "HCR_EL2.IMO",
            Fmo => "HCR_EL2.FMO",
            Tz => "CPTR_EL2.TZ",
            Tsm => "CPTR_EL2.TSM",
            Tfp => "CPTR_EL2.TFP",
            Tta => "CPTR_EL2.TTA",
            Tam => "CPTR_EL2.TAM",
            Tcpac => "CPTR_EL2.TCPAC",
            Tpm => "MDCR_EL2.TPM",
            Tda => "MDCR_EL2.TDA",
            Tdosa => "MDCR_EL2.TDOSA",
            Tdra => "MDCR_EL2.TDRA",
            Tpms => "MDCR_EL2.TPMS",
            Ttrf => "MDCR_EL2.TTRF",
            E2pb => "MDCR_EL2.E2PB = 0b00",
            E2tb => "MDCR_EL2.E2TB = 0b00",
            El1pcen => "CNTHCTL_EL2.EL1PCEN = 0",
            Tcr2En => "HCRX_EL2.TCR2En = 0",
            Sctlr2En => "HCRX_EL2.SCTLR2En = 0",
            EnFpm => "HCRX_EL2.EnFPM = 0 (UNDEFINED)",
            TrapMpam0El1 => "MPAM2_EL2.TRAPMPAM0EL1",
            TrapMpam1El1 => "MPAM2_EL2.TRAPMPAM1EL1",
            NTpidr2 => "HFG{R,W}TR_EL2.nTPIDR2_EL0 = 0",
            NSmpri => "HFG{R,W}TR_EL2.nSMPRI_EL1 = 0",
            NAccdata => "HFG{R,W}TR_EL2.nACCDATA_EL1 = 0",
            NGcsEl1 => "HFG{R,W}TR_EL2.nGCS_EL1 = 0",
            NGcsEl0 => "HFG{R,W}TR_EL2.nGCS_EL0 = 0",
            NPir => "HFG{R,W}TR_EL2.nPIR_EL1 = 0",
            NPire0 => "HFG{R,W}TR_EL2.nPIRE0_EL1 = 0",
            NPorEl1 => "HFG{R,W}TR_EL2.nPOR_EL1 = 0",
            NPorEl0 => "HFG{R,W}TR_EL2.nPOR_EL0 = 0",
            NMair2 => "HFG{R,W}TR_EL2.nMAIR2_EL1 = 0",
            NAmair2 => "HFG{R,W}TR_EL2.nAMAIR2_EL1 = 0",
            NRcwmask => "HFG{R,W}TR_EL2.nRCWMASK_EL1 = 0",
            NBrbData => "HDFG{R,W}TR_EL2.nBRBDATA = 0",
            NBrbCtl => "HDFG{R,W}TR_EL2.nBRBCTL = 0",
            NBrbIdr => "HDFGRTR_EL2.nBRBIDR = 0",
            NBrbIall => "HFGITR_EL2.nBRBIALL = 0",
            NBrbInj => "HFGITR_EL2.nBRBINJ = 0",
            NPfar => "HFG{R,W}TR2_EL2.nPFAR_EL1 = 0",
            NRcwsmask => "HFG{R,W}TR2_EL2.nRCWSMASK_EL1 = 0",
        }
    }
}

/// A setup choice a bit depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Flag {
    PassthroughInterrupt,
    PassthroughTimer,
    TrapWfi,
    TrapWfe,
    /// The VM has a virtual PMU (`crate::pmu`).
    Pmu,
}

/// When a row's bits are set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    /// Always.
    Always,
    /// The host has the feature.
    Feat(Feature),
    /// The host has both features.
    Both(Feature, Feature),
    /// The host has any of the features.
    Any(&'static [Feature]),
    /// The setup asks for it.
    Setup(Flag),
    /// The setup does not ask for it.
    NotSetup(Flag),
    /// FP/SIMD is switched lazily and not loaded yet.
    FpTrapped,
    /// The setup asks for it and the host has the feature.
    SetupFeat(Flag, Feature),
}

/// What a row is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A trap bit set to trap (the inventory names it).
    Trap(TrapId),
    /// A trap that works by leaving the bits clear: composition sets nothing.
    TrapWhenClear(TrapId),
    /// A control that gives the guest something (stage 2, broadcast, an enable).
    Control,
    /// RES1 bits.
    Res1,
}

/// One row of the composition table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bit {
    /// The control register.
    pub ctl: Ctl,
    /// The bits.
    pub mask: u64,
    /// When they apply.
    pub when: When,
    /// What they are.
    pub role: Role,
    /// Field name(s).
    pub name: &'static str,
    /// Why.
    pub why: &'static str,
}

/// A row for trap `id` in `ctl` (its control, or the second control of a read/write
/// fine-grained pair, which gets a row of its own; a test checks which).
const fn trap(ctl: Ctl, id: TrapId, when: When, why: &'static str) -> Bit {
    let (_, mask, pol, _) = id.location();
    Bit {
        ctl,
        mask,
        when,
        role: match pol {
            Polarity::Set => Role::Trap(id),
            Polarity::Clear => Role::TrapWhenClear(id),
        },
        name: id.name(),
        why,
    }
}

const fn control(ctl: Ctl, mask: u64, when: When, name: &'static str, why: &'static str) -> Bit {
    Bit {
        ctl,
        mask,
        when,
        role: Role::Control,
        name,
        why,
    }
}

use Ctl::*;
use Feature as F;
use TrapId as T;
use When::*;

/// Every bit the crate sets (or deliberately leaves clear) in the guest's EL2 controls.
#[rustfmt::skip]
pub const BITS: &[Bit] = &[
    // ---- HCR_EL2 ----
    control(Hcr, b(0), Always, "VM", "stage-2 translation"),
    control(Hcr, b(1), Always, "SWIO", "set/way invalidation is clean+invalidate"),
    trap(Hcr, T::Fmo, NotSetup(Flag::PassthroughInterrupt), "FIQs to EL2; ICC_* group-0 accesses go to the virtual interface, ICC_SGI0R/ASGI1R trap"),
    trap(Hcr, T::Imo, NotSetup(Flag::PassthroughInterrupt), "IRQs to EL2; ICC_* group-1 accesses go to the virtual interface, ICC_SGI1R traps"),
    control(Hcr, b(5), Always, "AMO", "SErrors to EL2; virtual SError and DISR_EL1 -> VDISR_EL2"),
    control(Hcr, b(9), Always, "FB", "broadcast the guest's TLB/cache maintenance (a vCPU may move)"),
    control(Hcr, b(10), Always, "BSU = IS", "barriers upgraded to inner shareable"),
    control(Hcr, b(13), Setup(Flag::TrapWfi), "TWI", "WFI exits (setup)"),
    control(Hcr, b(14), Setup(Flag::TrapWfe), "TWE", "WFE exits (setup)"),
    trap(Hcr, T::Tid1, Always, "REVIDR_EL1, AIDR_EL1 emulated; SMIDR_EL1 UNDEFINED"),
    trap(Hcr, T::Tid3, Always, "the feature ID space, answered from the VM's view"),
    control(Hcr, b(19), Always, "TSC", "every guest SMC traps (SMCCC/PSCI, allow-list)"),
    trap(Hcr, T::Tidcp, Always, "IMPLEMENTATION DEFINED registers (CRn 11, 15) UNDEFINED"),
    trap(Hcr, T::Tacr, Always, "ACTLR_EL1 emulated (IMPLEMENTATION DEFINED bits)"),
    trap(Hcr, T::Tsw, Always, "DC ISW/CSW/CISW: no-ops (a vCPU owns no cache)"),
    control(Hcr, b(31), Always, "RW", "EL1 is AArch64"),
    trap(Hcr, T::Tlor, Feat(F::Lor), "LORegions hidden"),
    trap(Hcr, T::Terr, Feat(F::Ras), "RAS error records hidden"),
    control(Hcr, b(37), Feat(F::Ras), "TEA", "synchronous external aborts to EL2 (the host decides; no host PA in PFAR/FAR_EL1)"),
    trap(Hcr, T::Apk, Feat(F::Pauth), "lazy PAuth: the key registers trap (EC 0x18) until their first use after bind loads them (API/APK then set in the hardware only)"),
    trap(Hcr, T::Api, Feat(F::Pauth), "lazy PAuth: PAC/AUT instructions enabled by SCTLR_EL1 trap (EC 0x09) until the keys are loaded"),
    trap(Hcr, T::EnScxt, Feat(F::Scxtnum), "SCXTNUM_EL0/EL1 trap (CSV2_2 hidden)"),
    trap(Hcr, T::Ata, Feat(F::Mte2), "MTE2 tag registers trap (MTE hidden)"),
    trap(Hcr, T::Tid5, Feat(F::Mte2), "GMID_EL1 UNDEFINED (MTE hidden)"),
    // ---- CPTR_EL2 (HCR_EL2.E2H = 0 layout) ----
    Bit { ctl: Cptr, mask: 0xff | b(9) | b(13), when: Always, role: Role::Res1, name: "RES1 [7:0], [9], [13]", why: "RES1" },
    trap(Cptr, T::Tz, Always, "SVE (EC 0x19; RES1 without SVE)"),
    trap(Cptr, T::Tfp, FpTrapped, "lazy FP/SIMD: the first use loads V0-V31/FPCR/FPSR"),
    trap(Cptr, T::Tsm, Always, "SME, SVCR, SMCR_EL1 (EC 0x1D; RES1 without SME)"),
    trap(Cptr, T::Tta, Feat(F::TraceSys), "trace unit System registers hidden"),
    trap(Cptr, T::Tam, Feat(F::Amu), "activity monitors hidden"),
    trap(Cptr, T::Tcpac, Any(&[F::Sve, F::Sme, F::TraceSys, F::S1poe]), "CPACR_EL1 emulated so hidden features' fields read 0 and never trap at EL1"),
    // ---- MDCR_EL2 (HPMN [4:0]: the host's, or the VM's PMU counters) ----
    control(Mdcr, b(5), Always, "TPMCR", "PMCR_EL0 traps in every state (a virtual PMU's N, P and DP are emulated: crate::pmu)"),
    trap(Mdcr, T::Tpm, Always, "PMU registers hidden, or trapped until their first use after bind (lazy switch; crate::pmu clears TPM while loaded where HPMD exists)"),
    control(Mdcr, b(17), SetupFeat(Flag::Pmu, F::PmuV3p1), "HPMD", "the guest's event counters do not count at EL2"),
    control(Mdcr, b(23), SetupFeat(Flag::Pmu, F::PmuV3p5), "HCCD", "the cycle counter does not count at EL2"),
    trap(Mdcr, T::Tda, Always, "debug registers trapped until their first use after bind (lazy switch; crate::debug clears TDA while loaded)"),
    trap(Mdcr, T::Tdosa, Always, "OS lock / power-down registers emulated per vCPU"),
    trap(Mdcr, T::Tdra, Always, "MDRAR_EL1 emulated (reads 0)"),
    trap(Mdcr, T::E2pb, Feat(F::Spe), "SPE buffer registers trap (owned by EL2)"),
    trap(Mdcr, T::Tpms, Feat(F::Spe), "SPE sampling registers hidden"),
    trap(Mdcr, T::Ttrf, Feat(F::Trf), "TRFCR_EL1 hidden"),
    trap(Mdcr, T::E2tb, Feat(F::Trbe), "TRBE registers trap (owned by EL2)"),
    // ---- CNTHCTL_EL2 (E2H = 0) ----
    control(Cnthctl, b(0), Always, "EL1PCTEN", "CNTPCT_EL0 readable"),
    control(Cnthctl, b(1), Setup(Flag::PassthroughTimer), "EL1PCEN", "EL1 physical timer passed through (setup)"),
    trap(Cnthctl, T::El1pcen, NotSetup(Flag::PassthroughTimer), "EL1 physical timer emulated"),
    // ---- HCRX_EL2 (FEAT_HCX): everything disabled except what the ID view offers ----
    control(Hcrx, b(11), Both(F::Hcx, F::Mops), "MSCEn", "FEAT_MOPS instructions (advertised) execute at EL1/EL0"),
    trap(Hcrx, T::Tcr2En, Both(F::Hcx, F::Tcr2), "TCR2_EL1 traps (FEAT_TCR2 hidden)"),
    trap(Hcrx, T::Sctlr2En, Both(F::Hcx, F::Sctlr2), "SCTLR2_EL1 traps (FEAT_SCTLR2 hidden)"),
    trap(Hcrx, T::EnFpm, Both(F::Hcx, F::Fpmr), "FPMR and FP8 UNDEFINED (FEAT_FPMR hidden)"),
    // ---- Fine-grained traps (FEAT_FGT): written 0 at bind, so every "n" trap is on ----
    trap(Hfgrtr, T::NAmair2, Feat(F::Fgt), "AMAIR2_EL1 (FEAT_AIE hidden)"),
    trap(Hfgwtr, T::NAmair2, Feat(F::Fgt), "AMAIR2_EL1"),
    trap(Hfgrtr, T::NMair2, Feat(F::Fgt), "MAIR2_EL1 (FEAT_AIE hidden)"),
    trap(Hfgwtr, T::NMair2, Feat(F::Fgt), "MAIR2_EL1"),
    trap(Hfgrtr, T::NPorEl1, Feat(F::Fgt), "POR_EL1 (FEAT_S1POE hidden)"),
    trap(Hfgwtr, T::NPorEl1, Feat(F::Fgt), "POR_EL1"),
    trap(Hfgrtr, T::NPorEl0, Feat(F::Fgt), "POR_EL0"),
    trap(Hfgwtr, T::NPorEl0, Feat(F::Fgt), "POR_EL0"),
    trap(Hfgrtr, T::NPir, Feat(F::Fgt), "PIR_EL1 (FEAT_S1PIE hidden)"),
    trap(Hfgwtr, T::NPir, Feat(F::Fgt), "PIR_EL1"),
    trap(Hfgrtr, T::NPire0, Feat(F::Fgt), "PIRE0_EL1"),
    trap(Hfgwtr, T::NPire0, Feat(F::Fgt), "PIRE0_EL1"),
    trap(Hfgrtr, T::NRcwmask, Feat(F::Fgt), "RCWMASK_EL1 (FEAT_THE hidden)"),
    trap(Hfgwtr, T::NRcwmask, Feat(F::Fgt), "RCWMASK_EL1"),
    trap(Hfgrtr, T::NTpidr2, Feat(F::Fgt), "TPIDR2_EL0 (FEAT_SME hidden; CPTR_EL2.TSM does not trap it)"),
    trap(Hfgwtr, T::NTpidr2, Feat(F::Fgt), "TPIDR2_EL0"),
    trap(Hfgrtr, T::NSmpri, Feat(F::Fgt), "SMPRI_EL1 (not trapped by CPTR_EL2.TSM either)"),
    trap(Hfgwtr, T::NSmpri, Feat(F::Fgt), "SMPRI_EL1"),
    trap(Hfgrtr, T::NGcsEl1, Feat(F::Fgt), "GCSCR_EL1, GCSPR_EL1, GCSCRE0_EL1 (FEAT_GCS hidden)"),
    trap(Hfgwtr, T::NGcsEl1, Feat(F::Fgt), "GCS EL1 registers"),
    trap(Hfgrtr, T::NGcsEl0, Feat(F::Fgt), "GCSPR_EL0"),
    trap(Hfgwtr, T::NGcsEl0, Feat(F::Fgt), "GCSPR_EL0"),
    trap(Hfgrtr, T::NAccdata, Feat(F::Fgt), "ACCDATA_EL1 (FEAT_LS64_ACCDATA hidden)"),
    trap(Hfgwtr, T::NAccdata, Feat(F::Fgt), "ACCDATA_EL1"),
    trap(Hfgitr, T::NBrbIall, Feat(F::Fgt), "BRB IALL (FEAT_BRBE hidden)"),
    trap(Hfgitr, T::NBrbInj, Feat(F::Fgt), "BRB INJ"),
    trap(Hdfgrtr, T::NBrbData, Feat(F::Fgt), "BRBINF/BRBSRC/BRBTGT<n>, BRB*INJ, BRBTS (FEAT_BRBE hidden)"),
    trap(Hdfgwtr, T::NBrbData, Feat(F::Fgt), "BRBE data registers"),
    trap(Hdfgrtr, T::NBrbCtl, Feat(F::Fgt), "BRBCR_EL1, BRBFCR_EL1"),
    trap(Hdfgwtr, T::NBrbCtl, Feat(F::Fgt), "BRBE control registers"),
    trap(Hdfgrtr, T::NBrbIdr, Feat(F::Fgt), "BRBIDR0_EL1"),
    // ---- FEAT_FGT2: written 0 as well ----
    trap(Hfgrtr2, T::NPfar, Feat(F::Fgt2), "PFAR_EL1 (FEAT_PFAR hidden)"),
    trap(Hfgwtr2, T::NPfar, Feat(F::Fgt2), "PFAR_EL1"),
    trap(Hfgrtr2, T::NRcwsmask, Feat(F::Fgt2), "RCWSMASK_EL1 (FEAT_THE hidden)"),
    trap(Hfgwtr2, T::NRcwsmask, Feat(F::Fgt2), "RCWSMASK_EL1"),
    // ---- MPAM2_EL2 (FEAT_MPAM) ----
    trap(Mpam2, T::TrapMpam0El1, Feat(F::Mpam), "MPAM0_EL1 hidden"),
    trap(Mpam2, T::TrapMpam1El1, Feat(F::Mpam), "MPAM1_EL1 hidden"),
];

/// What the composition depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inputs {
    /// The host core's features.
    pub features: FeatureSet,
    /// The vCPU's setup.
    pub setup: Aarch64VCpuSetupConfig,
    /// FP/SIMD is switched lazily and not loaded yet (`CPTR_EL2.TFP`).
    pub fp_trapped: bool,
    /// `MDCR_EL2.HPMN` \[4:0\]: the host's (it partitions the counters for EL2), or
    /// the event counters of the VM's PMU (`crate::pmu::PmuSwitch::mdcr_bits`); and the
    /// host's HPME \[7\].
    pub hpmn: u64,
}

/// The composed values, one per [`Ctl`] (0 for a control the host does not have).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrapValues(pub [u64; 16]);

impl TrapValues {
    /// The value of `ctl`.
    pub const fn get(&self, ctl: Ctl) -> u64 {
        self.0[ctl as usize]
    }
}

impl When {
    /// Whether the condition holds for `i`.
    pub const fn holds(self, i: &Inputs) -> bool {
        match self {
            Self::Always => true,
            Self::Feat(f) => i.features.has(f),
            Self::Both(a, b) => i.features.has(a) && i.features.has(b),
            Self::Any(fs) => i.features.any(fs),
            Self::Setup(f) => f.get(&i.setup),
            Self::NotSetup(f) => !f.get(&i.setup),
            Self::FpTrapped => i.fp_trapped,
            Self::SetupFeat(s, f) => s.get(&i.setup) && i.features.has(f),
        }
    }
}

impl Flag {
    /// The setup's choice.
    pub const fn get(self, s: &Aarch64VCpuSetupConfig) -> bool {
        match self {
            Self::PassthroughInterrupt => s.passthrough_interrupt,
            Self::PassthroughTimer => s.passthrough_timer,
            Self::TrapWfi => s.trap_wfi,
            Self::TrapWfe => s.trap_wfe,
            Self::Pmu => !matches!(s.pmu, crate::pmu::PmuConfig::Hidden),
        }
    }
}

/// The guest's EL2 controls for `i` (pure).
pub const fn compose(i: &Inputs) -> TrapValues {
    let mut v = [0u64; 16];
    let mut k = 0;
    while k < BITS.len() {
        let r = &BITS[k];
        let sets = matches!(r.role, Role::Trap(_) | Role::Control | Role::Res1);
        if sets && r.when.holds(i) && r.ctl.exists(i.features) {
            v[r.ctl as usize] |= r.mask;
        }
        k += 1;
    }
    // HPMN [4:0] and HPME [7] (the host's enable of its own counters).
    v[Ctl::Mdcr as usize] |= i.hpmn & (0x1f | 1 << 7);
    if cfg!(arm_vcpu_mutate = "pmu-count-el2") {
        // The mutation build lets the guest's counters count EL2.
        v[Ctl::Mdcr as usize] &= !(b(17) | b(23));
    }
    TrapValues(v)
}

/// Whether `id` is in effect in `v` on a host with `features` (a control the host does
/// not have traps nothing).
pub const fn trapping(v: &TrapValues, features: FeatureSet, id: TrapId) -> bool {
    let (ctl, mask, pol, second) = id.location();
    const fn one(v: &TrapValues, f: FeatureSet, ctl: Ctl, mask: u64, pol: Polarity) -> bool {
        if !ctl.exists(f) {
            return false;
        }
        match pol {
            Polarity::Set => v.get(ctl) & mask == mask,
            Polarity::Clear => v.get(ctl) & mask == 0,
        }
    }
    one(v, features, ctl, mask, pol)
        && match second {
            Some(c) => one(v, features, c, mask, pol),
            None => true,
        }
}

/// `HCR_EL2.API`, bit 41: pointer-authentication instructions do not trap (set while
/// the vCPU's keys are loaded: lazy switching; clear, they trap with EC 0x09).
pub const HCR_API: u64 = 1 << 41;
/// `HCR_EL2.APK`, bit 40: the key registers do not trap (set while loaded; clear, an
/// access traps with EC 0x18).
pub const HCR_APK: u64 = 1 << 40;

/// `CPTR_EL2.TFP`, set while FP/SIMD is not loaded (lazy switching).
pub const CPTR_TFP: u64 = 1 << 10;
