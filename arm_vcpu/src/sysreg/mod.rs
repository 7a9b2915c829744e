//! The system-register inventory: every system register (and trapped system
//! instruction) an AArch64 EL0/EL1 guest can name, with the feature it depends on and
//! what the crate does with it. Data, not prose: [`INVENTORY`] is read by the trap
//! composition checks, the emulation checks, the switch-list checks, the register
//! sweep guest (through a file generated from it) and `docs/registers.md` (rendered
//! from it; a host test fails when the committed page differs).
//!
//! The model is KVM's `sys_regs.c` descriptor table (one sorted table, checked at
//! build time) together with Hafnium's "trap bit and ID mask decided in one place":
//! a row names the register, the feature that makes it exist ([`Exists`]), how the
//! crate treats it ([`Treatment`]) and the control that traps it
//! ([`crate::traps::TrapId`]). Which trap bits are set for which features is the
//! table in [`crate::traps`]; which ID-register fields are hidden is
//! [`crate::idregs::VIEW`]. Host tests check the three against each other.
//!
//! Rows are sorted by (op0, op1, CRn, CRm, op2) and never overlap; a row may cover a
//! contiguous block of encodings (`first..=last`, e.g. the trace unit or the
//! IMPLEMENTATION DEFINED space). An encoding in no row is UNDEFINED at EL1 (EL2/EL3
//! registers, unallocated encodings).

mod table;

pub use table::INVENTORY;

use crate::exit::SysRegAddr;
use crate::idregs;
use crate::traps::TrapId;

/// Declares [`Feature`] and [`FEATURES`] from one list (bit order = list order).
macro_rules! features {
    ($first:ident, $($name:ident),+ $(,)?) => {
        /// An architectural feature a register depends on, decided from the host's ID
        /// registers ([`FeatureSet::from_id_space`]) or, for the virtual CPU interface's
        /// active priority registers, from `ICH_VTR_EL2`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[repr(u8)]
        #[allow(missing_docs)]
        pub enum Feature {
            $first = 0,
            $($name),+
        }

        /// Every feature, in bit order.
        pub const FEATURES: [Feature; 1 + [$(Feature::$name),+].len()] =
            [Feature::$first, $(Feature::$name),+];
    };
}

features!(
    Fp,
    Gicv3,
    Pauth,
    Sve,
    Sme,
    Ras,
    RasV1p1,
    Mte,
    Mte2,
    Pmu,
    PmuV3p1,
    PmuV3p4,
    PmuV3p5,
    Spe,
    Trbe,
    TraceSys,
    Trf,
    Brbe,
    Amu,
    AmuV1p1,
    Mpam,
    Lor,
    Scxtnum,
    Ls64Accdata,
    Gcs,
    S1pie,
    S1poe,
    Aie,
    The,
    Tcr2,
    Sctlr2,
    Fpmr,
    Pfar,
    Fgt,
    Fgt2,
    Hcx,
    Mops,
    Pan,
    Uao,
    Dit,
    Ssbs,
    Nmi,
    Rng,
    Ecv,
    Ccidx,
    VgicApr1,
    VgicApr3,
);

const _: () = {
    let mut i = 0;
    while i < FEATURES.len() {
        assert!(FEATURES[i] as usize == i);
        i += 1;
    }
};

/// A 4-bit ID field at `lsb` of ID-space register `idx` (unsigned).
const fn field(id: &[u64; idregs::ID_SPACE_LEN], idx: usize, lsb: u32) -> u8 {
    ((id[idx] >> lsb) & 0xf) as u8
}

impl Feature {
    /// The Arm ARM's name (FEAT_...).
    pub const fn name(self) -> &'static str {
        use Feature::*;
        match self {
            Fp => "FEAT_FP",
            Gicv3 => "FEAT_GICv3",
            Pauth => "FEAT_PAuth",
            Sve => "FEAT_SVE",
            Sme => "FEAT_SME",
            Ras => "FEAT_RAS",
            RasV1p1 => "FEAT_RASv1p1",
            Mte => "FEAT_MTE",
            Mte2 => "FEAT_MTE2",
            Pmu => "FEAT_PMUv3",
            PmuV3p1 => "FEAT_PMUv3p1",
            PmuV3p4 => "FEAT_PMUv3p4",
            PmuV3p5 => "FEAT_PMUv3p5",
            Spe => "FEAT_SPE",
            Trbe => "FEAT_TRBE",
            TraceSys => "FEAT_ETE/ETMv4 (System register trace)",
            Trf => "FEAT_TRF",
            Brbe => "FEAT_BRBE",
            Amu => "FEAT_AMUv1",
            AmuV1p1 => "FEAT_AMUv1p1",
            Mpam => "FEAT_MPAM",
            Lor => "FEAT_LOR",
            Scxtnum => "FEAT_CSV2_2 / FEAT_CSV2_1p2",
            Ls64Accdata => "FEAT_LS64_ACCDATA",
            Gcs => "FEAT_GCS",
            S1pie => "FEAT_S1PIE",
            S1poe => "FEAT_S1POE",
            Aie => "FEAT_AIE",
            The => "FEAT_THE",
            Tcr2 => "FEAT_TCR2",
            Sctlr2 => "FEAT_SCTLR2",
            Fpmr => "FEAT_FPMR",
            Pfar => "FEAT_PFAR",
            Fgt => "FEAT_FGT",
            Fgt2 => "FEAT_FGT2",
            Hcx => "FEAT_HCX",
            Mops => "FEAT_MOPS",
            Pan => "FEAT_PAN",
            Uao => "FEAT_UAO",
            Dit => "FEAT_DIT",
            Ssbs => "FEAT_SSBS",
            Nmi => "FEAT_NMI",
            Rng => "FEAT_RNG",
            Ecv => "FEAT_ECV",
            Ccidx => "FEAT_CCIDX",
            VgicApr1 => "GICv3 6+ preemption bits",
            VgicApr3 => "GICv3 7 preemption bits",
        }
    }

    /// The ID-register condition, as the Arm ARM states it.
    pub const fn condition(self) -> &'static str {
        use Feature::*;
        match self {
            Fp => "ID_AA64PFR0_EL1.FP != 0xF",
            Gicv3 => "ID_AA64PFR0_EL1.GIC >= 1 (0 where the core's virtual interface is a GICv2 GICH frame)",
            Pauth => "ID_AA64ISAR1_EL1.{APA,API,GPA,GPI} or ID_AA64ISAR2_EL1.{APA3,GPA3} != 0",
            Sve => "ID_AA64PFR0_EL1.SVE >= 1",
            Sme => "ID_AA64PFR1_EL1.SME >= 1",
            Ras => "ID_AA64PFR0_EL1.RAS >= 1",
            RasV1p1 => "ID_AA64PFR0_EL1.RAS >= 2, or RAS = 1 and ID_AA64PFR1_EL1.RAS_frac >= 1",
            Mte => "ID_AA64PFR1_EL1.MTE >= 1",
            Mte2 => "ID_AA64PFR1_EL1.MTE >= 2",
            Pmu => "ID_AA64DFR0_EL1.PMUVer in 1..=14",
            PmuV3p1 => "ID_AA64DFR0_EL1.PMUVer in 4..=14",
            PmuV3p4 => "ID_AA64DFR0_EL1.PMUVer in 5..=14",
            PmuV3p5 => "ID_AA64DFR0_EL1.PMUVer in 6..=14",
            Spe => "ID_AA64DFR0_EL1.PMSVer >= 1",
            Trbe => "ID_AA64DFR0_EL1.TraceBuffer >= 1",
            TraceSys => "ID_AA64DFR0_EL1.TraceVer >= 1",
            Trf => "ID_AA64DFR0_EL1.TraceFilt >= 1",
            Brbe => "ID_AA64DFR0_EL1.BRBE >= 1",
            Amu => "ID_AA64PFR0_EL1.AMU >= 1",
            AmuV1p1 => "ID_AA64PFR0_EL1.AMU >= 2",
            Mpam => "ID_AA64PFR0_EL1.MPAM >= 1 or ID_AA64PFR1_EL1.MPAM_frac >= 1",
            Scxtnum => "ID_AA64PFR0_EL1.CSV2 >= 2, or CSV2 = 1 and ID_AA64PFR1_EL1.CSV2_frac >= 2",
            Lor => "ID_AA64MMFR1_EL1.LO >= 1",
            Ls64Accdata => "ID_AA64ISAR1_EL1.LS64 >= 3",
            Gcs => "ID_AA64PFR1_EL1.GCS >= 1",
            S1pie => "ID_AA64MMFR3_EL1.S1PIE >= 1",
            S1poe => "ID_AA64MMFR3_EL1.S1POE >= 1",
            Aie => "ID_AA64MMFR3_EL1.AIE >= 1",
            The => "ID_AA64PFR1_EL1.THE >= 1",
            Tcr2 => "ID_AA64MMFR3_EL1.TCRX >= 1",
            Sctlr2 => "ID_AA64MMFR3_EL1.SCTLRX >= 1",
            Fpmr => "ID_AA64PFR2_EL1.FPMR >= 1",
            Pfar => "ID_AA64PFR1_EL1.PFAR >= 1",
            Fgt => "ID_AA64MMFR0_EL1.FGT >= 1",
            Fgt2 => "ID_AA64MMFR0_EL1.FGT >= 2",
            Hcx => "ID_AA64MMFR1_EL1.HCX >= 1",
            Mops => "ID_AA64ISAR2_EL1.MOPS >= 1",
            Pan => "ID_AA64MMFR1_EL1.PAN >= 1",
            Uao => "ID_AA64MMFR2_EL1.UAO >= 1",
            Dit => "ID_AA64PFR0_EL1.DIT >= 1",
            Ssbs => "ID_AA64PFR1_EL1.SSBS >= 1",
            Nmi => "ID_AA64PFR1_EL1.NMI >= 1",
            Rng => "ID_AA64ISAR0_EL1.RNDR >= 1",
            Ecv => "ID_AA64MMFR0_EL1.ECV >= 1",
            Ccidx => "ID_AA64MMFR2_EL1.CCIDX >= 1",
            VgicApr1 => "ICH_VTR_EL2.PREbits + 1 >= 6",
            VgicApr3 => "ICH_VTR_EL2.PREbits + 1 = 7",
        }
    }

    /// Whether a CPU whose ID space holds `id` has the feature (`VgicApr1/3` are not ID
    /// fields: see [`FeatureSet::with_vtr`]).
    pub const fn present(self, id: &[u64; idregs::ID_SPACE_LEN]) -> bool {
        use idregs::*;
        use Feature::*;
        macro_rules! f {
            ($idx:expr, $lsb:expr) => {
                field(id, $idx, $lsb)
            };
        }
        match self {
            Fp => f!(ID_AA64PFR0, 16) != 0xf,
            Gicv3 => f!(ID_AA64PFR0, 24) >= 1,
            Pauth => {
                f!(ID_AA64ISAR1, 4) != 0
                    || f!(ID_AA64ISAR1, 8) != 0
                    || f!(ID_AA64ISAR1, 24) != 0
                    || f!(ID_AA64ISAR1, 28) != 0
                    || f!(ID_AA64ISAR2, 8) != 0
                    || f!(ID_AA64ISAR2, 12) != 0
            }
            Sve => f!(ID_AA64PFR0, 32) >= 1,
            Sme => f!(ID_AA64PFR1, 24) >= 1,
            Ras => f!(ID_AA64PFR0, 28) >= 1,
            RasV1p1 => {
                f!(ID_AA64PFR0, 28) >= 2 || (f!(ID_AA64PFR0, 28) == 1 && f!(ID_AA64PFR1, 12) >= 1)
            }
            Mte => f!(ID_AA64PFR1, 8) >= 1,
            Mte2 => f!(ID_AA64PFR1, 8) >= 2,
            Pmu => f!(ID_AA64DFR0, 8) >= 1 && f!(ID_AA64DFR0, 8) != 0xf,
            PmuV3p1 => f!(ID_AA64DFR0, 8) >= 4 && f!(ID_AA64DFR0, 8) != 0xf,
            PmuV3p4 => f!(ID_AA64DFR0, 8) >= 5 && f!(ID_AA64DFR0, 8) != 0xf,
            PmuV3p5 => f!(ID_AA64DFR0, 8) >= 6 && f!(ID_AA64DFR0, 8) != 0xf,
            Spe => f!(ID_AA64DFR0, 32) >= 1,
            Trbe => f!(ID_AA64DFR0, 44) >= 1,
            TraceSys => f!(ID_AA64DFR0, 4) >= 1,
            Trf => f!(ID_AA64DFR0, 40) >= 1,
            Brbe => f!(ID_AA64DFR0, 52) >= 1,
            Amu => f!(ID_AA64PFR0, 44) >= 1,
            AmuV1p1 => f!(ID_AA64PFR0, 44) >= 2,
            Mpam => f!(ID_AA64PFR0, 40) >= 1 || f!(ID_AA64PFR1, 16) >= 1,
            Lor => f!(ID_AA64MMFR1, 16) >= 1,
            Scxtnum => {
                f!(ID_AA64PFR0, 56) >= 2 || (f!(ID_AA64PFR0, 56) == 1 && f!(ID_AA64PFR1, 32) >= 2)
            }
            Ls64Accdata => f!(ID_AA64ISAR1, 60) >= 3,
            Gcs => f!(ID_AA64PFR1, 44) >= 1,
            S1pie => f!(ID_AA64MMFR3, 8) >= 1,
            S1poe => f!(ID_AA64MMFR3, 16) >= 1,
            Aie => f!(ID_AA64MMFR3, 24) >= 1,
            The => f!(ID_AA64PFR1, 48) >= 1,
            Tcr2 => f!(ID_AA64MMFR3, 0) >= 1,
            Sctlr2 => f!(ID_AA64MMFR3, 4) >= 1,
            Fpmr => f!(ID_AA64PFR2, 32) >= 1,
            Pfar => f!(ID_AA64PFR1, 60) >= 1,
            Fgt => f!(ID_AA64MMFR0, 56) >= 1,
            Fgt2 => f!(ID_AA64MMFR0, 56) >= 2,
            Hcx => f!(ID_AA64MMFR1, 40) >= 1,
            Mops => f!(ID_AA64ISAR2, 16) >= 1,
            Pan => f!(ID_AA64MMFR1, 20) >= 1,
            Uao => f!(ID_AA64MMFR2, 4) >= 1,
            Dit => f!(ID_AA64PFR0, 48) >= 1,
            Ssbs => f!(ID_AA64PFR1, 4) >= 1,
            Nmi => f!(ID_AA64PFR1, 36) >= 1,
            Rng => f!(ID_AA64ISAR0, 60) >= 1,
            Ecv => f!(ID_AA64MMFR0, 60) >= 1,
            Ccidx => f!(ID_AA64MMFR2, 20) >= 1,
            VgicApr1 | VgicApr3 => false,
        }
    }
}

/// The ID space of a host that has every feature: every field all ones, except the
/// signed fields where all ones means "not implemented" (`ID_AA64PFR0_EL1.FP`,
/// `AdvSIMD`) and `ID_AA64DFR0_EL1.PMUVer` (0xF is an IMPLEMENTATION DEFINED PMU), which
/// are given an implemented value. What the ID-view checks and the rendered page use.
pub const fn host_with_everything() -> [u64; idregs::ID_SPACE_LEN] {
    let mut id = [u64::MAX; idregs::ID_SPACE_LEN];
    id[idregs::ID_AA64PFR0] &= !(0xff << 16);
    id[idregs::ID_AA64DFR0] = (id[idregs::ID_AA64DFR0] & !(0xf << 8)) | (0x8 << 8);
    id
}

/// A set of [`Feature`]s (bit `f as u8`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FeatureSet(pub u64);

impl FeatureSet {
    /// No feature.
    pub const EMPTY: Self = Self(0);
    /// Every feature.
    pub const ALL: Self = Self((1 << FEATURES.len()) - 1);

    /// The features of a CPU whose ID space holds `id` (`idregs::index` order).
    pub const fn from_id_space(id: &[u64; idregs::ID_SPACE_LEN]) -> Self {
        let mut s = 0u64;
        let mut i = 0;
        while i < FEATURES.len() {
            if FEATURES[i].present(id) {
                s |= 1 << i;
            }
            i += 1;
        }
        Self(s)
    }

    /// Adds what `ICH_VTR_EL2` says about the virtual CPU interface's active-priority
    /// registers: `ICH_APxR1` exist with 6 or 7 preemption bits, `ICH_APxR2/3` with 7
    /// (PREbits \[28:26\] + 1; IHI 0069 `ICH_AP1R<n>_EL2`).
    pub const fn with_vtr(self, vtr: u64) -> Self {
        let pre = ((vtr >> 26) & 7) + 1;
        let mut s = self.0 & !((1 << Feature::VgicApr1 as u8) | (1 << Feature::VgicApr3 as u8));
        if pre >= 6 {
            s |= 1 << Feature::VgicApr1 as u8;
        }
        if pre >= 7 {
            s |= 1 << Feature::VgicApr3 as u8;
        }
        Self(s)
    }

    /// Whether `f` is in the set.
    pub const fn has(self, f: Feature) -> bool {
        self.0 & (1 << f as u8) != 0
    }

    /// The set with `f` added.
    pub const fn with(self, f: Feature) -> Self {
        Self(self.0 | (1 << f as u8))
    }

    /// The set without `f`.
    pub const fn without(self, f: Feature) -> Self {
        Self(self.0 & !(1 << f as u8))
    }

    /// Whether any of `fs` is in the set.
    pub const fn any(self, fs: &[Feature]) -> bool {
        let mut i = 0;
        while i < fs.len() {
            if self.has(fs[i]) {
                return true;
            }
            i += 1;
        }
        false
    }
}

/// When a register exists on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exists {
    /// Always (Armv8.0 with EL2 and the features every CPU this crate runs on has).
    Always,
    /// With the feature.
    Feat(Feature),
    /// Breakpoint `n`: `n <= ID_AA64DFR0_EL1.BRPs`.
    Breakpoint(u8),
    /// Watchpoint `n`: `n <= ID_AA64DFR0_EL1.WRPs`.
    Watchpoint(u8),
}

impl Exists {
    /// Whether the register exists on a host with `features` and (for breakpoint and
    /// watchpoint registers) `ID_AA64DFR0_EL1` = `dfr0`.
    pub const fn on(self, features: FeatureSet, dfr0: u64) -> bool {
        match self {
            Self::Always => true,
            Self::Feat(f) => features.has(f),
            Self::Breakpoint(n) => n as u64 <= (dfr0 >> 12) & 0xf,
            Self::Watchpoint(n) => n as u64 <= (dfr0 >> 20) & 0xf,
        }
    }

    /// The feature, if the condition is one.
    pub const fn feature(self) -> Option<Feature> {
        match self {
            Self::Feat(f) => Some(f),
            _ => None,
        }
    }
}

/// Which directions exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// MRS and MSR.
    ReadWrite,
    /// MRS only (MSR is UNDEFINED).
    ReadOnly,
    /// MSR only (MRS is UNDEFINED); system instructions.
    WriteOnly,
}

impl Access {
    /// MRS exists.
    pub const fn readable(self) -> bool {
        !matches!(self, Self::WriteOnly)
    }
    /// MSR exists.
    pub const fn writable(self) -> bool {
        !matches!(self, Self::ReadOnly)
    }
}

/// What a trapped access is answered with (`emulate::sysreg`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emulation {
    /// The VM's sanitized ID view (`idregs`).
    IdView,
    /// `MDRAR_EL1` (`MDCR_EL2.TDRA`): reads 0, no ROM table (`crate::debug`, group
    /// `Rom`).
    DebugRom,
    /// `OSLAR_EL1`, `OSLSR_EL1`, `OSDLR_EL1`, `DBGPRCR_EL1` (`MDCR_EL2.TDOSA`): the OS
    /// lock and power-down state kept per vCPU in every state (`crate::debug`, group
    /// `OsLock`).
    OsLock,
    /// `ACTLR_EL1`: the vCPU's value (0), writes ignored.
    Actlr,
    /// The host's value, read once per core (`REVIDR_EL1`, `AIDR_EL1`).
    HostValue,
    /// DC ISW/CSW/CISW: no-ops.
    SetWay,
}

/// Why a register is neither trapped nor switched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Passthrough {
    /// Read-only identification or configuration value with no guest state.
    ReadOnly,
    /// Read-only, answered by the hardware from a per-VM EL2 register
    /// (`MIDR_EL1` ← `VPIDR_EL2`, `MPIDR_EL1` ← `VMPIDR_EL2`).
    Virtualized,
    /// A counter (the virtual one offset by the per-VM `CNTVOFF_EL2`).
    Counter,
    /// A view of PSTATE, which is part of `SPSR_EL2` (switched on every exit).
    Pstate,
    /// A random number, no state.
    Random,
    /// A view of pending (virtual) interrupts, no state of its own.
    InterruptStatus,
}

/// How the crate treats a register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Treatment {
    /// Loaded at bind, saved at unbind (its encoding is in
    /// [`crate::context::SWITCHED`]).
    Switched,
    /// Switched, through the register an access is redirected to (e.g. `DISR_EL1`
    /// under `HCR_EL2.AMO` reaches `VDISR_EL2`; `CNTV_TVAL_EL0` is a view of
    /// `CNTV_CVAL_EL0`).
    SwitchedAs(SysRegAddr),
    /// The feature is hidden from the VM, but nothing traps the register without
    /// `FEAT_FGT`: it is switched when the host has the feature, and where the host has
    /// FEAT_FGT the given fine-grained trap also traps it (the guest gets UNDEFINED).
    Untrappable(Option<TrapId>),
    /// FP/SIMD: loaded on first use after bind (`CPTR_EL2.TFP` traps it), saved at
    /// unbind if loaded (`FpSwitch::Eager`: at bind).
    LazyFp,
    /// Self-hosted debug (`crate::debug`, group `Switched`): trapped by `MDCR_EL2.TDA`
    /// until the guest's first access after bind, which loads the vCPU's debug state
    /// (at bind already when its `MDSCR_EL1` enables debug exceptions) and stops
    /// trapping; saved at unbind if loaded, the host's restored. While the guest's OS
    /// lock is set the access is emulated against the vCPU's copy instead. Registers a
    /// core lacks (the claim tags, `OSDTRRX/OSDTRTX_EL1`, `MDCCINT_EL1` are probed at
    /// `hardware_enable`) are UNDEFINED.
    LazyDebug,
    /// Pointer-authentication keys (lazy group `pauth`): trapped by `HCR_EL2.APK`
    /// (EC 0x18; the PAC/AUT instructions by `HCR_EL2.API`, EC 0x09) until the
    /// guest's first use after bind, which loads the vCPU's keys and stops trapping;
    /// saved at unbind only if loaded. A rebind that finds the keys still in the core
    /// (the rebind shortcut) keeps them loaded.
    LazyPauth,
    /// The PMU (`crate::pmu`): with the default setup (`PmuConfig::Hidden`) hidden in
    /// the ID view and trapped (`MDCR_EL2.TPM`): UNDEFINED, like [`Self::Hidden`]. With
    /// a virtual PMU: trapped until the guest's first access after bind, which loads
    /// the vCPU's PMU registers (at bind already when its counters run); then passed
    /// through where the host has FEAT_PMUv3p1 (`MDCR_EL2.HPMD` keeps EL2 from being
    /// counted), or still trapped and emulated against the loaded hardware on a PMUv3
    /// core (so the NSH filter bit never reaches it). `PMCR_EL0` stays trapped
    /// (`MDCR_EL2.TPMCR`) and is emulated in every state. Saved at unbind if loaded,
    /// the vCPU's counters stopped first, the host's restored.
    LazyPmu,
    /// A GICv3 CPU interface register that `HCR_EL2.IMO/FMO` redirect to the virtual
    /// interface: its state is in `ICH_VMCR_EL2`, `ICH_APxR<n>_EL2` and the list
    /// registers, switched at bind/unbind (the list registers `ICH_ELRSR_EL2` marks
    /// empty are not moved). (With `passthrough_interrupt` the guest owns the physical
    /// interface: one VM per core, nothing switched.) On a core whose virtual interface
    /// is a GICv2 GICH frame these rows do not apply: the crate reports
    /// `ID_AA64PFR0_EL1.GIC` as 0 there (no FEAT_GICv3), the guest uses the GICC frame
    /// (the host maps GICV), and `GICH_VMCR`, `GICH_APR` and the list registers are
    /// switched instead (`vgic::v2`).
    Vgic,
    /// The EL1 physical timer: trapped (`CNTHCTL_EL2.EL1PCEN = 0`) and emulated
    /// against the physical count; with `passthrough_timer`, switched at bind/unbind.
    PhysTimer,
    /// `CPACR_EL1`: switched; on CPUs with SVE, SME, trace or S1POE also trapped
    /// (`CPTR_EL2.TCPAC`) so that the fields of hidden features read as 0 and their
    /// own EL1 traps never fire (the guest gets UNDEFINED instead, as on a CPU without
    /// them); FPEN follows the guest.
    Cpacr,
    /// Trapped and answered by the crate.
    Emulated(Emulation),
    /// Trapped (`HCR_EL2.IMO/FMO`) and turned into [`crate::VmExit::SendSgi`].
    Sgi,
    /// UNDEFINED: trapped by the row's control (the crate injects UNDEFINED), or
    /// UNDEFINED at EL1 by itself (no control).
    Undef,
    /// The feature is hidden in the VM's ID view and the register trapped: UNDEFINED.
    Hidden,
    /// Not trapped, not switched: no guest state of its own.
    Passthrough(Passthrough),
}

impl Treatment {
    /// Whether a guest access reaches the register or its emulation (it is not
    /// answered with UNDEFINED by design).
    /// (With the default setup: [`Self::LazyPmu`] is UNDEFINED then.)
    pub const fn accessible(self) -> bool {
        !matches!(self, Self::Undef | Self::Hidden | Self::LazyPmu)
    }

    /// Whether the row's state is in the bind/unbind switch list.
    pub const fn switched(self) -> bool {
        matches!(
            self,
            Self::Switched
                | Self::SwitchedAs(_)
                | Self::Untrappable(_)
                | Self::Cpacr
                | Self::LazyPauth
        )
    }
}

/// A group of rows, for the rendered page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum Group {
    Debug,
    Trace,
    Brbe,
    Id,
    El1,
    Pstate,
    Fp,
    Pauth,
    Sve,
    Sme,
    Mte,
    Ras,
    Pmu,
    Spe,
    Trbe,
    Amu,
    Lor,
    Mpam,
    Memory,
    Gcs,
    Timer,
    Gic,
    Cache,
    Impdef,
    Instr,
}

impl Group {
    /// Section title on the rendered page.
    pub const fn title(self) -> &'static str {
        match self {
            Self::Debug => "Self-hosted debug",
            Self::Trace => "Trace unit (ETE/ETM System registers) and trace filter",
            Self::Brbe => "Branch record buffer (BRBE)",
            Self::Id => "Identification",
            Self::El1 => "EL1/EL0 context",
            Self::Pstate => "PSTATE views",
            Self::Fp => "FP/SIMD",
            Self::Pauth => "Pointer authentication keys",
            Self::Sve => "SVE",
            Self::Sme => "SME",
            Self::Mte => "Memory tagging (MTE)",
            Self::Ras => "RAS error records",
            Self::Pmu => "Performance monitors (PMUv3)",
            Self::Spe => "Statistical profiling (SPE)",
            Self::Trbe => "Trace buffer (TRBE)",
            Self::Amu => "Activity monitors (AMU)",
            Self::Lor => "LORegions",
            Self::Mpam => "MPAM",
            Self::Memory => {
                "Memory-model extensions (S1PIE, S1POE, AIE, THE, TCR2, SCTLR2, LS64, CSV2_2, PFAR)"
            }
            Self::Gcs => "Guarded control stack (GCS)",
            Self::Timer => "Generic timer",
            Self::Gic => "GICv3 CPU interface",
            Self::Cache => "Cache and random-number identification",
            Self::Impdef => "IMPLEMENTATION DEFINED",
            Self::Instr => "System instructions (op0 = 1) that trap",
        }
    }
}

/// One row of the inventory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SysReg {
    /// First encoding covered.
    pub first: SysRegAddr,
    /// Last encoding covered (`first` for a single register).
    pub last: SysRegAddr,
    /// Architectural name (a pattern such as `DBGBVR<n>_EL1` for a block).
    pub name: &'static str,
    /// Section of the rendered page.
    pub group: Group,
    /// When the register exists on the host.
    pub exists: Exists,
    /// Which accesses exist.
    pub access: Access,
    /// What the crate does with it.
    pub treat: Treatment,
    /// The control that traps it (`None`: not trapped, or UNDEFINED by itself).
    pub trap: Option<TrapId>,
    /// Bits the two-VM sweep may fill with a VM-specific pattern (0: not patterned:
    /// no state, or a value the guest cannot change freely without harming itself).
    pub pattern: u64,
    /// Why the register sweep does not write it (its write has an effect beyond the
    /// register: an exit to the host, an interrupt deactivation).
    pub sweep_no_write: Option<&'static str>,
}

impl SysReg {
    /// A row with defaults (always exists, read/write, switched, not trapped).
    pub const fn new(name: &'static str, op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> Self {
        let a = SysRegAddr::new(op0, op1, crn, crm, op2);
        Self {
            first: a,
            last: a,
            name,
            group: Group::El1,
            exists: Exists::Always,
            access: Access::ReadWrite,
            treat: Treatment::Switched,
            trap: None,
            pattern: 0,
            sweep_no_write: None,
        }
    }

    /// The row covers encodings up to (op0, op1, crn, crm, op2) (a block).
    pub const fn to(mut self, op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> Self {
        self.last = SysRegAddr::new(op0, op1, crn, crm, op2);
        self
    }
    /// Sets the group.
    pub const fn group(mut self, g: Group) -> Self {
        self.group = g;
        self
    }
    /// Exists only with feature `f`.
    pub const fn feat(mut self, f: Feature) -> Self {
        self.exists = Exists::Feat(f);
        self
    }
    /// Sets the existence condition.
    pub const fn exists(mut self, e: Exists) -> Self {
        self.exists = e;
        self
    }
    /// Read-only.
    pub const fn ro(mut self) -> Self {
        self.access = Access::ReadOnly;
        self
    }
    /// Write-only.
    pub const fn wo(mut self) -> Self {
        self.access = Access::WriteOnly;
        self
    }
    /// Sets the treatment.
    pub const fn treat(mut self, t: Treatment) -> Self {
        self.treat = t;
        self
    }
    /// Sets the trapping control.
    pub const fn trap(mut self, t: TrapId) -> Self {
        self.trap = Some(t);
        self
    }
    /// Sets the sweep pattern mask.
    pub const fn pattern(mut self, m: u64) -> Self {
        self.pattern = m;
        self
    }
    /// The sweep does not write it, for `why`.
    pub const fn no_sweep_write(mut self, why: &'static str) -> Self {
        self.sweep_no_write = Some(why);
        self
    }

    /// Whether the row covers `reg`.
    pub const fn covers(&self, reg: SysRegAddr) -> bool {
        let k = key(reg);
        key(self.first) <= k && k <= key(self.last)
    }
}

/// Sort key of an encoding: (op0, op1, CRn, CRm, op2), most significant first.
pub const fn key(r: SysRegAddr) -> u32 {
    (r.op0() as u32) << 14
        | (r.op1() as u32) << 11
        | (r.crn() as u32) << 7
        | (r.crm() as u32) << 3
        | r.op2() as u32
}

/// The encoding with sort key `k` (the inverse of [`key`]).
pub const fn from_key(k: u32) -> SysRegAddr {
    SysRegAddr::new(
        ((k >> 14) & 3) as u8,
        ((k >> 11) & 7) as u8,
        ((k >> 7) & 0xf) as u8,
        ((k >> 3) & 0xf) as u8,
        (k & 7) as u8,
    )
}

/// Whether `reg` is one of the pointer-authentication key registers (op0 3, op1 0,
/// CRn 2, CRm 1..3: `APIAKeyLo_EL1` .. `APGAKeyHi_EL1`), which `HCR_EL2.APK` traps.
pub const fn is_pauth_key(reg: SysRegAddr) -> bool {
    reg.op0() == 3
        && reg.op1() == 0
        && reg.crn() == 2
        && matches!(reg.crm(), 1..=3)
        && match reg.crm() {
            3 => reg.op2() <= 1,
            _ => reg.op2() <= 3,
        }
}

/// The row covering `reg`, if any (binary search: the table is sorted and the rows
/// do not overlap, which a compile-time check enforces).
pub const fn lookup(reg: SysRegAddr) -> Option<&'static SysReg> {
    let k = key(reg);
    let (mut lo, mut hi) = (0usize, INVENTORY.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let r = &INVENTORY[mid];
        if key(r.last) < k {
            lo = mid + 1;
        } else if key(r.first) > k {
            hi = mid;
        } else {
            return Some(r);
        }
    }
    None
}

/// The table is sorted by [`key`], every row's `first <= last`, and no two rows
/// overlap (checked at compile time).
pub const fn table_is_sorted(t: &[SysReg]) -> bool {
    let mut i = 0;
    while i < t.len() {
        if key(t[i].first) > key(t[i].last) {
            return false;
        }
        if i > 0 && key(t[i - 1].last) >= key(t[i].first) {
            return false;
        }
        i += 1;
    }
    true
}

const _: () = assert!(table_is_sorted(INVENTORY), "the inventory is not sorted");

/// What a guest at EL1 gets for one direction of an access, as the register sweep
/// checks it (the generated guest table carries it per row).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// UNDEFINED, whatever the host.
    Undef,
    /// Accessible where the register exists on the host, UNDEFINED elsewhere.
    Access,
    /// Accessible where the register exists on the host and the host has no FEAT_FGT
    /// (which traps it otherwise), UNDEFINED elsewhere.
    AccessWithoutFgt,
    /// IMPLEMENTATION DEFINED: UNDEFINED where `HCR_EL2.TIDCP` traps it (QEMU 7.2 does
    /// not implement TIDCP: the sweep counts what it reaches).
    Tidcp,
    /// A PMU register (`Treatment::LazyPmu`): accessible where the VM's view shows a
    /// PMU (`ID_AA64DFR0_EL1.PMUVer` != 0; the default setup hides it), UNDEFINED
    /// elsewhere.
    Pmu,
    /// A PMU event counter or its type (`PMEVCNTR<n>_EL0`, `PMEVTYPER<n>_EL0`, n =
    /// CRm\[1:0\] × 8 + op2): as [`Self::Pmu`], and only for n < the VM's `PMCR_EL0.N`.
    PmuCounter,
}

/// What a guest read must satisfy, besides not being UNDEFINED.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueRule {
    /// Anything.
    Any,
    /// These bits read as 0 (hidden fields, RES0 of an emulated register).
    ZeroMask(u64),
}

impl SysReg {
    /// What an MRS (`read`) or MSR of this row gives a guest with the default setup.
    pub const fn sweep_expect(&self, read: bool) -> Expect {
        let exists_dir = if read {
            self.access.readable()
        } else {
            self.access.writable()
        };
        if !exists_dir {
            return Expect::Undef;
        }
        match self.treat {
            Treatment::Undef if matches!(self.group, Group::Impdef) => Expect::Tidcp,
            Treatment::Undef | Treatment::Hidden => Expect::Undef,
            // Per the VM's PMU (the default setup hides it).
            Treatment::LazyPmu if self.first.crn() == 14 && self.first.crm() >= 8 => {
                if key(self.first) == key(self.last) {
                    // PMCCFILTR_EL0 (3, 3, 14, 15, 7).
                    Expect::Pmu
                } else {
                    Expect::PmuCounter
                }
            }
            Treatment::LazyPmu => Expect::Pmu,
            Treatment::Untrappable(Some(_)) => Expect::AccessWithoutFgt,
            _ => Expect::Access,
        }
    }

    /// What a guest read of this row must satisfy.
    pub const fn value_rule(&self) -> ValueRule {
        match self.treat {
            Treatment::Emulated(Emulation::IdView) => match idregs::index(self.first) {
                Some(i) => ValueRule::ZeroMask(idregs::hidden_mask(i)),
                None => ValueRule::Any,
            },
            Treatment::Emulated(Emulation::DebugRom | Emulation::Actlr) => {
                ValueRule::ZeroMask(u64::MAX)
            }
            // OSLSR_EL1: OSLM [3] and OSLK [1] only; OSDLR_EL1.DLK, DBGPRCR_EL1.CORENPDRQ
            // [0] only.
            Treatment::Emulated(Emulation::OsLock) => ValueRule::ZeroMask(!0b1011),
            Treatment::Cpacr => ValueRule::ZeroMask(!crate::emulate::CPACR_GUEST_FIELDS),
            // MPIDR_EL1 = VMPIDR_EL2: bit 31 (RES1) and the vCPU's affinity (0 in the
            // sweep's VMs); nothing of the host's MT/U bits.
            Treatment::Passthrough(Passthrough::Virtualized)
                if key(self.first) == key(SysRegAddr::new(3, 0, 0, 0, 5)) =>
            {
                ValueRule::ZeroMask(!(1 << 31))
            }
            _ => ValueRule::Any,
        }
    }
}

#[cfg(test)]
pub(crate) mod render;
