//! Firmware workarounds for speculative-execution vulnerabilities (SMCCC, Arm DEN 0028:
//! `SMCCC_ARCH_WORKAROUND_1/2/3`): what the host's firmware implements, what the CPU
//! reports, and from both what a guest is told and what its calls do. Pure: the calls
//! to the firmware come in as a closure, the ID register values as numbers.
//!
//! # The decision
//!
//! For each workaround the core is **unaffected**, **affected** or **unknown**:
//!
//! | workaround | unaffected | affected (known list) |
//! |---|---|---|
//! | 1: branch target injection, CVE-2017-5715 (Spectre v2) | `ID_AA64PFR0_EL1.CSV2` ≥ 1, or Cortex-A35/A53/A55 | Cortex-A57, A72, A73, A75 |
//! | 2: speculative store bypass, CVE-2018-3639 | `ID_AA64PFR1_EL1.SSBS` ≥ 1 (the guest controls `PSTATE.SSBS` itself; the ID view shows it), or Cortex-A35/A53/A55 | Cortex-A57, A72, A73, A75 |
//! | 3: branch history, CVE-2022-23960 (Spectre-BHB), which also covers 1 | unaffected by 1 **and** by BHB (`CSV2` ≥ 3 or `ID_AA64MMFR1_EL1.ECBHB` ≥ 1, or Cortex-A35/A53/A55) | affected by 1, or BHB-affected: Cortex-A57, A72, A73, A75, A76, A76AE, A77, A78, A78AE, A78C, X1, X2, A710, Neoverse N1, N2, V1 |
//!
//! Any other core is unknown: like Linux, the crate does not presume a core it has no
//! architectural proof or list entry for to be safe, and asks the firmware, which
//! knows its platform. `ID_AA64PFR0_EL1.CSV3` (Meltdown, CVE-2017-5754) is read and
//! reported but has no SMCCC workaround: the guest's own page-table isolation handles it.
//!
//! Then, with the firmware's answer to `SMCCC_ARCH_FEATURES(workaround)` (only asked
//! after SMCCC ≥ 1.1 is discovered, see [`FirmwareInfo::discover`]):
//!
//! | core | firmware 0 | firmware 1 | firmware −2 | anything else / no firmware |
//! |---|---|---|---|---|
//! | unaffected | not required | not required | not required | not required |
//! | unknown | **by firmware** (WA2: **permanent**) | not required | WA2: permanent; else not supported | not supported |
//! | affected | **by firmware** (WA2: **permanent**) | WA2: not required; else not supported (a listed core is not taken as safe) | WA2: permanent; else not supported | not supported |
//!
//! and the guest sees ([`Mitigation`]):
//!
//! | decision | `SMCCC_ARCH_FEATURES` answer | the guest's call |
//! |---|---|---|
//! | by firmware | 0 | made again by the crate to the firmware, with no guest argument (x1–x6 = 0, x7 = client ID); the guest gets x0–x3 = 0 |
//! | not required | 1 ("this PE does not need it; the call is safe") | does nothing, x0 = 0 |
//! | permanent (WA2) | −2 NOT_REQUIRED ("must not be invoked") | not made, x0 = −2 |
//! | not supported | −1 NOT_SUPPORTED | not made, x0 = −1 |
//!
//! **WORKAROUND_2 is never forwarded.** Its argument (x1: enable or disable the
//! mitigation) is state the firmware keeps per core for the whole Non-secure world: a
//! guest disabling it would disable it for the next VM and the host on that core.
//! Where the firmware mitigates dynamically (answer 0), `hardware_enable` turns the
//! mitigation on once for the core and the guests are told it is permanent, as KVM
//! does.

/// How the host reaches its firmware's PSCI/SMCCC services (the host knows it, e.g.
/// from the device tree's `/psci` `method` property).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FirmwareConduit {
    /// No firmware answers: the crate makes no call at all (on a core without EL3 an
    /// SMC is UNDEFINED at EL2).
    #[default]
    None,
    /// `SMC #0` to EL3 firmware.
    Smc,
    /// `HVC #0`: the crate runs as a guest hypervisor (nested virtualization) whose
    /// host hypervisor provides the services.
    Hvc,
}

/// Function IDs used in discovery (DEN 0028, DEN 0022).
mod fid {
    pub const PSCI_VERSION: u32 = 0x8400_0000;
    pub const PSCI_FEATURES: u32 = 0x8400_000A;
    pub const SMCCC_VERSION: u32 = 0x8000_0000;
    pub const SMCCC_ARCH_FEATURES: u32 = 0x8000_0001;
}

pub use crate::smccc::fid::{
    SMCCC_ARCH_WORKAROUND_1 as WORKAROUND_1, SMCCC_ARCH_WORKAROUND_2 as WORKAROUND_2,
    SMCCC_ARCH_WORKAROUND_3 as WORKAROUND_3,
};

/// NOT_SUPPORTED.
const NOT_SUPPORTED: i32 = -1;
/// NOT_REQUIRED (SMCCC_ARCH_WORKAROUND_2 only).
const NOT_REQUIRED: i32 = -2;

/// What the firmware answered at `hardware_enable` (raw `w0` values; `None`: not
/// asked). Kept so a host can show it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FirmwareInfo {
    /// The conduit the host named.
    pub conduit: FirmwareConduit,
    /// PSCI_VERSION.
    pub psci_version: Option<i32>,
    /// PSCI_FEATURES(SMCCC_VERSION): ≥ 0 means SMCCC_VERSION may be called.
    pub smccc_version_feature: Option<i32>,
    /// SMCCC_VERSION.
    pub smccc_version: Option<i32>,
    /// SMCCC_ARCH_FEATURES(SMCCC_ARCH_WORKAROUND_1).
    pub wa1: Option<i32>,
    /// SMCCC_ARCH_FEATURES(SMCCC_ARCH_WORKAROUND_2).
    pub wa2: Option<i32>,
    /// SMCCC_ARCH_FEATURES(SMCCC_ARCH_WORKAROUND_3).
    pub wa3: Option<i32>,
}

impl FirmwareInfo {
    /// Nothing asked.
    pub const NONE: Self = Self {
        conduit: FirmwareConduit::None,
        psci_version: None,
        smccc_version_feature: None,
        smccc_version: None,
        wa1: None,
        wa2: None,
        wa3: None,
    };
}

/// SMCCC 1.1 (major << 16 | minor): the first version with SMCCC_ARCH_FEATURES.
const SMCCC_1_1: i32 = 0x1_0001;

impl FirmwareInfo {
    /// Asks the firmware behind `conduit` what it implements, in SMCCC's discovery
    /// order (DEN 0028 "SMCCC_VERSION": the version is only asked once
    /// PSCI_FEATURES says the call exists; PSCI_FEATURES needs PSCI ≥ 1.0):
    /// PSCI_VERSION; PSCI_FEATURES(SMCCC_VERSION) if PSCI ≥ 1.0; SMCCC_VERSION if that
    /// succeeded; SMCCC_ARCH_FEATURES of each workaround if SMCCC ≥ 1.1. `call(fid,
    /// x1)` makes one call and returns `x0`. With [`FirmwareConduit::None`] `call` is
    /// never used.
    pub fn discover(conduit: FirmwareConduit, mut call: impl FnMut(u32, u64) -> u64) -> Self {
        let mut info = Self {
            conduit,
            ..Self::default()
        };
        if conduit == FirmwareConduit::None {
            return info;
        }
        // Results are 32-bit (w0) for these SMC32 calls.
        let mut ask = |f: u32, x1: u64| call(f, x1) as u32 as i32;
        let psci = ask(fid::PSCI_VERSION, 0);
        info.psci_version = Some(psci);
        if psci < 0 || (psci >> 16) < 1 {
            return info;
        }
        let feature = ask(fid::PSCI_FEATURES, fid::SMCCC_VERSION as u64);
        info.smccc_version_feature = Some(feature);
        if feature < 0 {
            return info;
        }
        let version = ask(fid::SMCCC_VERSION, 0);
        info.smccc_version = Some(version);
        if version < SMCCC_1_1 {
            return info;
        }
        info.wa1 = Some(ask(fid::SMCCC_ARCH_FEATURES, WORKAROUND_1 as u64));
        info.wa2 = Some(ask(fid::SMCCC_ARCH_FEATURES, WORKAROUND_2 as u64));
        info.wa3 = Some(ask(fid::SMCCC_ARCH_FEATURES, WORKAROUND_3 as u64));
        info
    }
}

/// Whether a core is exposed to one vulnerability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exposure {
    /// Architecturally not exposed (an ID register says so) or on the known-safe list.
    Unaffected,
    /// On the known-affected list.
    Affected,
    /// Neither: the firmware decides; without its word, treated as affected.
    Unknown,
}

impl Exposure {
    /// Exposure to either of two vulnerabilities (WORKAROUND_3 covers BHB and v2).
    pub const fn either(self, other: Self) -> Self {
        match (self, other) {
            (Self::Unaffected, Self::Unaffected) => Self::Unaffected,
            (Self::Affected, _) | (_, Self::Affected) => Self::Affected,
            _ => Self::Unknown,
        }
    }
}

/// The CPU's side: `MIDR_EL1` and the speculation fields of the ID registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuSpeculation {
    /// `MIDR_EL1`.
    pub midr: u64,
    /// `ID_AA64PFR0_EL1.CSV2` \[59:56\]: 1 FEAT_CSV2, 2 FEAT_CSV2_2, 3 FEAT_CSV2_3.
    pub csv2: u8,
    /// `ID_AA64PFR0_EL1.CSV3` \[63:60\] (FEAT_CSV3; reported only).
    pub csv3: u8,
    /// `ID_AA64PFR1_EL1.SSBS` \[7:4\]: 1 FEAT_SSBS, 2 FEAT_SSBS2.
    pub ssbs: u8,
    /// `ID_AA64MMFR1_EL1.ECBHB` \[63:60\] (FEAT_ECBHB).
    pub ecbhb: u8,
}

/// A core by `MIDR_EL1` Implementer \[31:24\] and PartNum \[15:4\] (all variants and
/// revisions).
#[derive(Clone, Copy)]
struct Part(u8, u16);

const ARM: u8 = 0x41;
const CORTEX_A35: Part = Part(ARM, 0xD04);
const CORTEX_A53: Part = Part(ARM, 0xD03);
const CORTEX_A55: Part = Part(ARM, 0xD05);
const CORTEX_A57: Part = Part(ARM, 0xD07);
const CORTEX_A72: Part = Part(ARM, 0xD08);
const CORTEX_A73: Part = Part(ARM, 0xD09);
const CORTEX_A75: Part = Part(ARM, 0xD0A);

/// In-order cores: no branch-target, store-bypass or branch-history speculation to
/// attack.
const IN_ORDER: &[Part] = &[CORTEX_A35, CORTEX_A53, CORTEX_A55];
/// Cores exposed to Spectre v2 and speculative store bypass without CSV2 or SSBS.
const V2_AND_SSB_AFFECTED: &[Part] = &[CORTEX_A57, CORTEX_A72, CORTEX_A73, CORTEX_A75];
/// Cores exposed to Spectre-BHB.
const BHB_AFFECTED: &[Part] = &[
    CORTEX_A57,
    CORTEX_A72,
    CORTEX_A73,
    CORTEX_A75,
    Part(ARM, 0xD0B), // Cortex-A76
    Part(ARM, 0xD0E), // Cortex-A76AE
    Part(ARM, 0xD0D), // Cortex-A77
    Part(ARM, 0xD41), // Cortex-A78
    Part(ARM, 0xD42), // Cortex-A78AE
    Part(ARM, 0xD4B), // Cortex-A78C
    Part(ARM, 0xD44), // Cortex-X1
    Part(ARM, 0xD48), // Cortex-X2
    Part(ARM, 0xD47), // Cortex-A710
    Part(ARM, 0xD0C), // Neoverse N1
    Part(ARM, 0xD49), // Neoverse N2
    Part(ARM, 0xD40), // Neoverse V1
];

const fn listed(midr: u64, list: &[Part]) -> bool {
    let implementer = (midr >> 24) as u8;
    let part = ((midr >> 4) & 0xfff) as u16;
    let mut i = 0;
    while i < list.len() {
        if list[i].0 == implementer && list[i].1 == part {
            return true;
        }
        i += 1;
    }
    false
}

const fn classify(proof: bool, midr: u64, affected: &[Part]) -> Exposure {
    if proof || listed(midr, IN_ORDER) {
        Exposure::Unaffected
    } else if listed(midr, affected) {
        Exposure::Affected
    } else {
        Exposure::Unknown
    }
}

/// A 4-bit ID register field at `lsb`.
const fn field(v: u64, lsb: u32) -> u8 {
    ((v >> lsb) & 0xf) as u8
}

impl CpuSpeculation {
    /// Nothing read yet.
    pub const NONE: Self = Self {
        midr: 0,
        csv2: 0,
        csv3: 0,
        ssbs: 0,
        ecbhb: 0,
    };

    /// From `ID_AA64PFR0_EL1`, `ID_AA64PFR1_EL1`, `ID_AA64MMFR1_EL1` and `MIDR_EL1`.
    pub const fn from_id_registers(pfr0: u64, pfr1: u64, mmfr1: u64, midr: u64) -> Self {
        Self {
            midr,
            csv2: field(pfr0, 56),
            csv3: field(pfr0, 60),
            ssbs: field(pfr1, 4),
            ecbhb: field(mmfr1, 60),
        }
    }

    /// Branch target injection (WORKAROUND_1).
    pub const fn spectre_v2(&self) -> Exposure {
        classify(self.csv2 >= 1, self.midr, V2_AND_SSB_AFFECTED)
    }

    /// Speculative store bypass (WORKAROUND_2).
    pub const fn store_bypass(&self) -> Exposure {
        classify(self.ssbs >= 1, self.midr, V2_AND_SSB_AFFECTED)
    }

    /// Branch history injection alone.
    pub const fn branch_history(&self) -> Exposure {
        classify(self.csv2 >= 3 || self.ecbhb >= 1, self.midr, BHB_AFFECTED)
    }

    /// What WORKAROUND_3 must cover: branch history or branch target injection.
    pub const fn workaround_3(&self) -> Exposure {
        self.branch_history().either(self.spectre_v2())
    }
}

/// What the guest is told about one workaround, and what its call does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mitigation {
    /// Needed and implemented by the firmware: answer 0; each call is made again by
    /// the crate to the firmware, with no guest state.
    Firmware,
    /// Not required on this core: answer 1; a call does nothing.
    NotRequired,
    /// (WORKAROUND_2) mitigated permanently — by the firmware, or kept enabled by the
    /// crate: answer NOT_REQUIRED (−2); the call must not be made.
    Permanent,
    /// Needed, or not known to be unneeded, and the firmware lacks it: NOT_SUPPORTED.
    NotSupported,
}

/// What a guest's call of a workaround becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallAction {
    /// Call the firmware (function ID only) and return x0–x3 = 0.
    Forward,
    /// Return x0 = this, nothing else happens (0 for a harmless call; the features
    /// answer for a call the guest was told not to make).
    Return(i32),
}

impl Mitigation {
    /// The answer to SMCCC_ARCH_FEATURES(this workaround).
    pub const fn features_answer(self) -> i32 {
        match self {
            Self::Firmware => 0,
            Self::NotRequired => 1,
            Self::Permanent => NOT_REQUIRED,
            Self::NotSupported => NOT_SUPPORTED,
        }
    }

    /// What the guest's call does.
    pub const fn call(self) -> CallAction {
        match self {
            Self::Firmware => CallAction::Forward,
            Self::NotRequired => CallAction::Return(0),
            Self::Permanent => CallAction::Return(NOT_REQUIRED),
            Self::NotSupported => CallAction::Return(NOT_SUPPORTED),
        }
    }
}

/// Which workaround.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workaround {
    /// SMCCC_ARCH_WORKAROUND_1.
    W1,
    /// SMCCC_ARCH_WORKAROUND_2.
    W2,
    /// SMCCC_ARCH_WORKAROUND_3.
    W3,
}

impl Workaround {
    /// From a function ID.
    pub const fn from_fid(fid: u32) -> Option<Self> {
        match fid {
            WORKAROUND_1 => Some(Self::W1),
            WORKAROUND_2 => Some(Self::W2),
            WORKAROUND_3 => Some(Self::W3),
            _ => None,
        }
    }

    /// Its function ID.
    pub const fn fid(self) -> u32 {
        match self {
            Self::W1 => WORKAROUND_1,
            Self::W2 => WORKAROUND_2,
            Self::W3 => WORKAROUND_3,
        }
    }

    /// x0..x6 of the call the crate makes to the firmware for a guest's call: the
    /// function ID and nothing else (the guest's registers never reach the firmware).
    pub const fn firmware_args(self) -> [u64; 7] {
        [self.fid() as u64, 0, 0, 0, 0, 0, 0]
    }
}

/// The decision for one core: what guests are told and how their calls reach the
/// firmware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workarounds {
    /// SMCCC_ARCH_WORKAROUND_1.
    pub wa1: Mitigation,
    /// SMCCC_ARCH_WORKAROUND_2.
    pub wa2: Mitigation,
    /// SMCCC_ARCH_WORKAROUND_3.
    pub wa3: Mitigation,
    /// Where forwarded calls go.
    pub conduit: FirmwareConduit,
    /// The firmware mitigates WORKAROUND_2 dynamically: `hardware_enable` calls
    /// WORKAROUND_2(1) once so the mitigation is on for this core.
    pub enable_wa2: bool,
}

impl Default for Workarounds {
    fn default() -> Self {
        Self::UNKNOWN
    }
}

impl Workarounds {
    /// Before `hardware_enable`: nothing known, nothing offered.
    pub const UNKNOWN: Self = Self {
        wa1: Mitigation::NotSupported,
        wa2: Mitigation::NotSupported,
        wa3: Mitigation::NotSupported,
        conduit: FirmwareConduit::None,
        enable_wa2: false,
    };

    /// The decision for a core (see the module documentation).
    pub const fn decide(cpu: &CpuSpeculation, fw: &FirmwareInfo) -> Self {
        let wa2 = Mitigation::decide(Workaround::W2, cpu.store_bypass(), fw.wa2);
        Self {
            wa1: Mitigation::decide(Workaround::W1, cpu.spectre_v2(), fw.wa1),
            wa2,
            wa3: Mitigation::decide(Workaround::W3, cpu.workaround_3(), fw.wa3),
            conduit: fw.conduit,
            enable_wa2: matches!(wa2, Mitigation::Permanent) && matches!(fw.wa2, Some(0)),
        }
    }

    /// The decision for one workaround.
    pub const fn get(&self, w: Workaround) -> Mitigation {
        match w {
            Workaround::W1 => self.wa1,
            Workaround::W2 => self.wa2,
            Workaround::W3 => self.wa3,
        }
    }
}

impl Mitigation {
    /// One row of the decision table: workaround `w` on a core with `exposure`, whose
    /// firmware answered `fw` to SMCCC_ARCH_FEATURES(`w`) (`None`: not asked, no
    /// SMCCC 1.1 firmware). For WORKAROUND_2 the firmware's 1 and −2 mean "no dynamic
    /// mitigation needed here" (a static mitigation, or unaffected) even on a listed
    /// core, and its 0 becomes a permanent mitigation instead of forwarded calls.
    pub const fn decide(w: Workaround, exposure: Exposure, fw: Option<i32>) -> Self {
        // The mutation-test build offers and forwards every workaround the core may need,
        // whatever the firmware said (the `spectre` scenario must fail).
        #[cfg(arm_vcpu_mutate = "workaround-forward")]
        if !matches!(exposure, Exposure::Unaffected) {
            let _ = fw;
            return Self::Firmware;
        }
        let wa2 = matches!(w, Workaround::W2);
        match exposure {
            Exposure::Unaffected => Self::NotRequired,
            Exposure::Affected | Exposure::Unknown => match fw {
                Some(0) if wa2 => Self::Permanent,
                Some(0) => Self::Firmware,
                Some(NOT_REQUIRED) if wa2 => Self::Permanent,
                Some(1) if wa2 => Self::NotRequired,
                Some(1) if matches!(exposure, Exposure::Unknown) => Self::NotRequired,
                _ => Self::NotSupported,
            },
        }
    }
}
