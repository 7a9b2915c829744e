//! SMCCC 1.1 (Arm DEN 0028) and PSCI 1.1 (Arm DEN 0022) for guests: decoding a call
//! made through HVC or SMC into what the crate answers itself, what the host must
//! complete, and what is forwarded to EL3. Pure functions, tested on the host.

use crate::workaround::{CallAction, Workaround, Workarounds};

/// Return codes shared by SMCCC and PSCI (as signed 32-bit values in w0/x0).
pub mod ret {
    /// SUCCESS.
    pub const SUCCESS: i32 = 0;
    /// NOT_SUPPORTED.
    pub const NOT_SUPPORTED: i32 = -1;
    /// INVALID_PARAMETERS.
    pub const INVALID_PARAMETERS: i32 = -2;
    /// DENIED.
    pub const DENIED: i32 = -3;
    /// ALREADY_ON.
    pub const ALREADY_ON: i32 = -4;
    /// ON_PENDING.
    pub const ON_PENDING: i32 = -5;
    /// INTERNAL_FAILURE.
    pub const INTERNAL_FAILURE: i32 = -6;
    /// NOT_PRESENT.
    pub const NOT_PRESENT: i32 = -7;
    /// DISABLED.
    pub const DISABLED: i32 = -8;
    /// INVALID_ADDRESS.
    pub const INVALID_ADDRESS: i32 = -9;
}

/// Function IDs (`w0`). Bit 31: fast call; bit 30: SMC64/HVC64 calling convention;
/// bits \[29:24\]: owning entity (0 = Arm architecture, 4 = standard secure service).
pub mod fid {
    /// SMCCC_VERSION.
    pub const SMCCC_VERSION: u32 = 0x8000_0000;
    /// SMCCC_ARCH_FEATURES.
    pub const SMCCC_ARCH_FEATURES: u32 = 0x8000_0001;
    /// SMCCC_ARCH_SOC_ID.
    pub const SMCCC_ARCH_SOC_ID: u32 = 0x8000_0002;
    /// SMCCC_ARCH_WORKAROUND_1 (branch predictor invalidation, CVE-2017-5715).
    pub const SMCCC_ARCH_WORKAROUND_1: u32 = 0x8000_8000;
    /// SMCCC_ARCH_WORKAROUND_2 (speculative store bypass, CVE-2018-3639).
    pub const SMCCC_ARCH_WORKAROUND_2: u32 = 0x8000_7FFF;
    /// SMCCC_ARCH_WORKAROUND_3 (branch history, CVE-2022-23960).
    pub const SMCCC_ARCH_WORKAROUND_3: u32 = 0x8000_3FFF;

    /// PSCI_VERSION.
    pub const PSCI_VERSION: u32 = 0x8400_0000;
    /// CPU_SUSPEND (SMC32).
    pub const CPU_SUSPEND_32: u32 = 0x8400_0001;
    /// CPU_SUSPEND (SMC64).
    pub const CPU_SUSPEND_64: u32 = 0xC400_0001;
    /// CPU_OFF.
    pub const CPU_OFF: u32 = 0x8400_0002;
    /// CPU_ON (SMC32).
    pub const CPU_ON_32: u32 = 0x8400_0003;
    /// CPU_ON (SMC64).
    pub const CPU_ON_64: u32 = 0xC400_0003;
    /// AFFINITY_INFO (SMC32).
    pub const AFFINITY_INFO_32: u32 = 0x8400_0004;
    /// AFFINITY_INFO (SMC64).
    pub const AFFINITY_INFO_64: u32 = 0xC400_0004;
    /// MIGRATE (SMC32).
    pub const MIGRATE_32: u32 = 0x8400_0005;
    /// MIGRATE (SMC64).
    pub const MIGRATE_64: u32 = 0xC400_0005;
    /// MIGRATE_INFO_TYPE.
    pub const MIGRATE_INFO_TYPE: u32 = 0x8400_0006;
    /// MIGRATE_INFO_UP_CPU (SMC32).
    pub const MIGRATE_INFO_UP_CPU_32: u32 = 0x8400_0007;
    /// MIGRATE_INFO_UP_CPU (SMC64).
    pub const MIGRATE_INFO_UP_CPU_64: u32 = 0xC400_0007;
    /// SYSTEM_OFF.
    pub const SYSTEM_OFF: u32 = 0x8400_0008;
    /// SYSTEM_RESET.
    pub const SYSTEM_RESET: u32 = 0x8400_0009;
    /// PSCI_FEATURES.
    pub const PSCI_FEATURES: u32 = 0x8400_000A;
}

/// SMCCC version this crate implements: 1.1 (major << 16 | minor).
pub const SMCCC_VERSION_1_1: u32 = 0x0001_0001;
/// PSCI version this crate implements: 1.1.
pub const PSCI_VERSION_1_1: u32 = 0x0001_0001;
/// MIGRATE_INFO_TYPE: 2 = no Trusted OS, migration not required.
pub const MIGRATE_INFO_TYPE_NONE: u32 = 2;

/// The `power_state` format of CPU_SUSPEND (PSCI, DEN 0022, 5.4.2), announced to the
/// guest by bit 1 of PSCI_FEATURES(CPU_SUSPEND).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerStateFormat {
    /// StateID \[15:0\], StateType \[16\] (1 = powerdown), PowerLevel \[25:24\];
    /// bits \[31:26\] and \[23:17\] reserved, must be zero.
    Original,
    /// StateID \[27:0\], StateType \[30\]; bits \[31\] and \[29:28\] reserved, must be zero.
    Extended,
}

/// The format this crate uses (and announces in PSCI_FEATURES(CPU_SUSPEND)).
pub const POWER_STATE_FORMAT: PowerStateFormat = PowerStateFormat::Original;

impl PowerStateFormat {
    /// The bits of `power_state` that must be zero.
    pub const fn reserved_bits(self) -> u32 {
        match self {
            Self::Original => 0xfc00_0000 | 0x00fe_0000,
            Self::Extended => 0x8000_0000 | 0x3000_0000,
        }
    }

    /// PSCI_FEATURES(CPU_SUSPEND) flags: bit 1 = extended format; bit 0 = OS-initiated
    /// mode (not offered: platform-coordinated only).
    pub const fn feature_flags(self) -> i32 {
        match self {
            Self::Original => 0,
            Self::Extended => 1 << 1,
        }
    }

    /// Whether `power_state` is valid in this format and names the only state this
    /// crate offers: a standby (StateType 0) of the core (PowerLevel 0 in the original
    /// format). The StateID is not interpreted: any value names that standby state.
    pub const fn is_valid_standby(self, power_state: u32) -> bool {
        if power_state & self.reserved_bits() != 0 {
            return false;
        }
        match self {
            Self::Original => power_state & (1 << 16) == 0 && (power_state >> 24) & 3 == 0,
            Self::Extended => power_state & (1 << 30) == 0,
        }
    }
}

/// Which instruction made the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    /// HVC #0.
    Hvc,
    /// SMC #0 (always trapped: HCR_EL2.TSC).
    Smc,
}

/// A PSCI call the host must carry out; complete it with
/// [`crate::Aarch64VCpu::complete_psci`]. Arguments are already validated as far as
/// the crate can (affinity fields, alignment, power state); the host checks what only
/// it knows (which vCPUs exist, which addresses are guest memory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PsciRequest {
    /// CPU_ON: start the vCPU whose MPIDR is `target_mpidr` at `entry` (EL1, MMU off)
    /// with x0 = `context_id`. Results: SUCCESS, INVALID_PARAMETERS (no such vCPU),
    /// INVALID_ADDRESS, ALREADY_ON, ON_PENDING, INTERNAL_FAILURE.
    CpuOn {
        /// Affinity of the vCPU to start.
        target_mpidr: u64,
        /// Entry point (an IPA; 4-byte aligned).
        entry: u64,
        /// Value for the started vCPU's x0.
        context_id: u64,
    },
    /// CPU_OFF: stop the calling vCPU. On success the host does not run it again
    /// (until a CPU_ON); the only result to complete with is DENIED.
    CpuOff,
    /// CPU_SUSPEND to a standby state (the only kind this crate offers): like WFI.
    /// Results: SUCCESS (after a wake-up event), DENIED.
    CpuSuspend {
        /// The `power_state` argument (StateType = standby, level 0).
        power_state: u32,
    },
    /// AFFINITY_INFO at level 0: is `target_mpidr` ON (0), OFF (1) or ON_PENDING (2)?
    /// INVALID_PARAMETERS for an unknown vCPU.
    AffinityInfo {
        /// Affinity of the vCPU asked about.
        target_mpidr: u64,
    },
    /// SYSTEM_OFF: power the VM down. Does not return to the guest.
    SystemOff,
    /// SYSTEM_RESET: reset the VM. Does not return to the guest.
    SystemReset,
}

impl PsciRequest {
    /// Whether `result` is a value PSCI allows this call to return.
    #[must_use]
    pub const fn allows(&self, result: i32) -> bool {
        use ret::*;
        match self {
            Self::CpuOn { .. } => matches!(
                result,
                SUCCESS
                    | INVALID_PARAMETERS
                    | INVALID_ADDRESS
                    | ALREADY_ON
                    | ON_PENDING
                    | INTERNAL_FAILURE
            ),
            Self::CpuOff => result == DENIED,
            Self::CpuSuspend { .. } => matches!(result, SUCCESS | DENIED | INVALID_PARAMETERS),
            Self::AffinityInfo { .. } => matches!(result, 0..=2 | INVALID_PARAMETERS | DISABLED),
            Self::SystemOff | Self::SystemReset => matches!(result, INTERNAL_FAILURE | DENIED),
        }
    }
}

/// Function-ID ranges the host allows a guest's SMCs to reach EL3 through (inclusive
/// bounds on `w0`). Empty by default; PSCI and the Arm architecture calls are never
/// forwarded whatever the list says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SmcForwardList {
    ranges: [(u32, u32); 4],
    len: usize,
}

impl SmcForwardList {
    /// The empty list.
    pub const fn new() -> Self {
        Self {
            ranges: [(0, 0); 4],
            len: 0,
        }
    }

    /// Adds the range `first..=last`; `None` if the list is full (4 ranges) or the
    /// range is backwards.
    #[must_use]
    pub const fn with(mut self, first: u32, last: u32) -> Option<Self> {
        if self.len == self.ranges.len() || first > last {
            return None;
        }
        self.ranges[self.len] = (first, last);
        self.len += 1;
        Some(self)
    }

    /// Whether `fid` is inside one of the ranges.
    pub const fn contains(&self, fid: u32) -> bool {
        let mut i = 0;
        while i < self.len {
            if fid >= self.ranges[i].0 && fid <= self.ranges[i].1 {
                return true;
            }
            i += 1;
        }
        false
    }
}

/// What happens to one SMCCC call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The crate answers: these go to x0..x3, the guest resumes.
    Answer([u64; 4]),
    /// The host must complete a PSCI request.
    Request(PsciRequest),
    /// Forward to EL3 (SMC conduit, allow-listed function ID).
    Forward,
    /// A workaround the firmware implements and this core needs: the crate calls it
    /// (function ID only, through the host's firmware conduit) and returns x0–x3 = 0.
    Workaround(Workaround),
    /// Not a call the crate handles: a hypercall exit to the host (HVC conduit only).
    Host,
}

/// Owning entity number, bits \[29:24\] of a function ID.
pub const fn owner(fid: u32) -> u32 {
    (fid >> 24) & 0x3f
}

const fn answer(x0: i64) -> Outcome {
    Outcome::Answer([x0 as u64, 0, 0, 0])
}

const fn not_supported() -> Outcome {
    answer(ret::NOT_SUPPORTED as i64)
}

/// `MPIDR` affinity fields a PSCI target may have set: Aff3 \[39:32\], Aff2..Aff0 \[23:0\].
const AFFINITY_MASK: u64 = 0xff_00ff_ffff;

/// Reads an argument register: SMC32/HVC32 calls (bit 30 of the function ID clear)
/// pass 32-bit values, the upper halves are ignored.
const fn arg(fid: u32, x: u64) -> u64 {
    if fid & (1 << 30) == 0 {
        x & 0xffff_ffff
    } else {
        x
    }
}

/// The x0 answer to an SMCCC call (`imm` 0) whose result is fixed, whatever its other
/// arguments, the conduit and the core: SMCCC_VERSION, PSCI_VERSION and
/// MIGRATE_INFO_TYPE (x1..x3 are returned as 0). `None` for every other function ID.
/// What [`dispatch`] answers for these (tested over every function ID of owners 0 and
/// 4); the vCPU's exit path answers them before decoding anything else.
#[inline(always)]
pub const fn fixed_answer(fid: u32) -> Option<u64> {
    match fid {
        fid::SMCCC_VERSION => Some(SMCCC_VERSION_1_1 as u64),
        fid::PSCI_VERSION => Some(PSCI_VERSION_1_1 as u64),
        fid::MIGRATE_INFO_TYPE => Some(MIGRATE_INFO_TYPE_NONE as u64),
        _ => None,
    }
}

/// Decides what to do with a call. `x` holds x0..x6 at the time of the call, `imm` the
/// HVC/SMC immediate (SMCCC calls use 0); `workarounds` is the decision for the core
/// the vCPU runs on.
pub fn dispatch(
    conduit: Conduit,
    imm: u16,
    x: &[u64; 7],
    forward: &SmcForwardList,
    workarounds: &Workarounds,
) -> Outcome {
    let fid = x[0] as u32;
    if imm != 0 {
        // Not an SMCCC call. An HVC with another immediate is the host's business.
        return match conduit {
            Conduit::Hvc => Outcome::Host,
            Conduit::Smc => not_supported(),
        };
    }
    match owner(fid) {
        0 if fid & (1 << 31) != 0 => arch_call(fid, x, workarounds),
        4 if fid & 0xffff <= 0x1f && fid & 0x00ff_0000 == 0 && fid & (1 << 31) != 0 => {
            psci_call(fid, x)
        }
        _ => match conduit {
            Conduit::Smc if forward.contains(fid) => Outcome::Forward,
            Conduit::Smc => not_supported(),
            Conduit::Hvc => Outcome::Host,
        },
    }
}

/// Arm architecture calls (owner 0).
const fn arch_call(fid: u32, x: &[u64; 7], workarounds: &Workarounds) -> Outcome {
    match fid {
        fid::SMCCC_VERSION => answer(SMCCC_VERSION_1_1 as i64),
        fid::SMCCC_ARCH_FEATURES => match x[1] as u32 {
            // ARCH_FEATURES itself and SMCCC_VERSION are implemented.
            fid::SMCCC_ARCH_FEATURES | fid::SMCCC_VERSION => answer(ret::SUCCESS as i64),
            // The workarounds: as decided for this core (`workaround`).
            queried => match Workaround::from_fid(queried) {
                Some(w) => answer(workarounds.get(w).features_answer() as i64),
                // SOC_ID and anything else.
                None => not_supported(),
            },
        },
        _ => match Workaround::from_fid(fid) {
            Some(w) => match workarounds.get(w).call() {
                CallAction::Forward => Outcome::Workaround(w),
                CallAction::Return(x0) => answer(x0 as i64),
            },
            None => not_supported(),
        },
    }
}

/// PSCI 1.1 (owner 4, functions 0x00..0x1F).
const fn psci_call(fid: u32, x: &[u64; 7]) -> Outcome {
    match fid {
        fid::PSCI_VERSION => answer(PSCI_VERSION_1_1 as i64),
        fid::CPU_SUSPEND_32 | fid::CPU_SUSPEND_64 => {
            // power_state is a uint32 in both the SMC32 and SMC64 forms.
            let power_state = x[1] as u32;
            // Only a standby state of the core is offered; reserved bits must be zero.
            if !POWER_STATE_FORMAT.is_valid_standby(power_state) {
                answer(ret::INVALID_PARAMETERS as i64)
            } else {
                Outcome::Request(PsciRequest::CpuSuspend { power_state })
            }
        }
        fid::CPU_OFF => Outcome::Request(PsciRequest::CpuOff),
        fid::CPU_ON_32 | fid::CPU_ON_64 => {
            let target_mpidr = arg(fid, x[1]);
            let entry = arg(fid, x[2]);
            let context_id = arg(fid, x[3]);
            if target_mpidr & !AFFINITY_MASK != 0 {
                answer(ret::INVALID_PARAMETERS as i64)
            } else if entry & 3 != 0 {
                answer(ret::INVALID_ADDRESS as i64)
            } else {
                Outcome::Request(PsciRequest::CpuOn {
                    target_mpidr,
                    entry,
                    context_id,
                })
            }
        }
        fid::AFFINITY_INFO_32 | fid::AFFINITY_INFO_64 => {
            let target_mpidr = arg(fid, x[1]);
            let level = arg(fid, x[2]);
            // Levels above 0 are optional in PSCI 1.x; not offered.
            if level != 0 || target_mpidr & !AFFINITY_MASK != 0 {
                answer(ret::INVALID_PARAMETERS as i64)
            } else {
                Outcome::Request(PsciRequest::AffinityInfo { target_mpidr })
            }
        }
        fid::MIGRATE_INFO_TYPE => answer(MIGRATE_INFO_TYPE_NONE as i64),
        fid::SYSTEM_OFF => Outcome::Request(PsciRequest::SystemOff),
        fid::SYSTEM_RESET => Outcome::Request(PsciRequest::SystemReset),
        fid::PSCI_FEATURES => answer(psci_features(x[1] as u32) as i64),
        // MIGRATE, MIGRATE_INFO_UP_CPU (not required with MIGRATE_INFO_TYPE 2),
        // SYSTEM_SUSPEND, SYSTEM_RESET2, the OS-initiated and statistics calls, and
        // the 64-bit forms of 32-bit-only calls.
        _ => not_supported(),
    }
}

/// PSCI_FEATURES: 0 for implemented functions (for CPU_SUSPEND: the flags of
/// [`POWER_STATE_FORMAT`]: bit 1 = 0, the original power_state format; bit 0 = 0,
/// platform-coordinated mode only), NOT_SUPPORTED else.
pub const fn psci_features(queried: u32) -> i32 {
    match queried {
        fid::CPU_SUSPEND_32 | fid::CPU_SUSPEND_64 => POWER_STATE_FORMAT.feature_flags(),
        fid::PSCI_VERSION
        | fid::CPU_OFF
        | fid::CPU_ON_32
        | fid::CPU_ON_64
        | fid::AFFINITY_INFO_32
        | fid::AFFINITY_INFO_64
        | fid::MIGRATE_INFO_TYPE
        | fid::SYSTEM_OFF
        | fid::SYSTEM_RESET
        | fid::PSCI_FEATURES
        | fid::SMCCC_VERSION => ret::SUCCESS,
        _ => ret::NOT_SUPPORTED,
    }
}
