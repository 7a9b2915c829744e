//! The PSCI power state of a vCPU (on, off, on-pending), as KVM reports a vCPU's
//! "MP state" (`KVM_GET_MP_STATE`: `RUNNABLE` / `STOPPED`).
//!
//! The crate learns it from what passes through it (pure rules, tested on the host):
//!
//! | event | new state |
//! |---|---|
//! | [`Aarch64VCpu::new`](crate::Aarch64VCpu::new) | [`PowerState::On`], or [`PowerState::Off`] with [`Aarch64VCpuCreateConfig::powered_off`](crate::Aarch64VCpuCreateConfig::powered_off) |
//! | the guest's PSCI CPU_OFF, SYSTEM_OFF or SYSTEM_RESET reaches the host ([`crate::VmExit::Psci`]) | [`PowerState::Off`] |
//! | the host completes one of those with an error (DENIED, INTERNAL_FAILURE: the call failed and the guest goes on) | [`PowerState::On`] |
//! | [`Aarch64VCpu::power_on`](crate::Aarch64VCpu::power_on) (the host carries out another vCPU's CPU_ON) | [`PowerState::OnPending`] |
//! | the first entry into the guest after that ([`Aarch64VCpu::run`](crate::Aarch64VCpu::run)) | [`PowerState::On`] |
//! | [`Aarch64VCpu::set_power_state`](crate::Aarch64VCpu::set_power_state) | as given |
//!
//! `run()` refuses a vCPU that is off with [`crate::VCpuError::PoweredOff`]. CPU_ON
//! is made by one vCPU for another, so the crate never sees it on the target: the
//! host answers it (ALREADY_ON, ON_PENDING, or [`power_on`](crate::Aarch64VCpu::power_on))
//! from the target's [`power_state`](crate::Aarch64VCpu::power_state), and answers
//! AFFINITY_INFO with [`PowerState::affinity_info`].

use crate::smccc::PsciRequest;

/// Whether a vCPU is on, off, or started but not yet entered (PSCI's AFFINITY_INFO
/// states for one core).
///
/// ```
/// use arm_vcpu::{Aarch64VCpu, Aarch64VCpuCreateConfig, PowerState};
///
/// let mut vcpu = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default().with_powered_off(true))?;
/// assert_eq!(vcpu.power_state(), PowerState::Off);
/// vcpu.power_on(0x4008_0000, 0)?; // the guest's CPU_ON for this vCPU
/// assert_eq!(vcpu.power_state(), PowerState::OnPending);
/// assert_eq!(vcpu.power_state().affinity_info(), 2); // AFFINITY_INFO: ON_PENDING
/// # Ok::<(), arm_vcpu::VCpuError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PowerState {
    /// Running, or runnable (KVM: `KVM_MP_STATE_RUNNABLE`).
    #[default]
    On,
    /// Powered off: not run until powered on (KVM: `KVM_MP_STATE_STOPPED`).
    Off,
    /// Powered on by a CPU_ON that has not yet entered the guest.
    OnPending,
}

impl PowerState {
    /// The value PSCI AFFINITY_INFO returns for a core in this state (DEN 0022
    /// 5.1.8): 0 ON, 1 OFF, 2 ON_PENDING.
    #[must_use]
    pub const fn affinity_info(self) -> i32 {
        match self {
            Self::On => 0,
            Self::Off => 1,
            Self::OnPending => 2,
        }
    }

    /// The state a PSCI request leaves the calling vCPU in once it reaches the host:
    /// CPU_OFF, SYSTEM_OFF and SYSTEM_RESET stop it; anything else leaves it as it is.
    #[must_use]
    pub(crate) const fn after_request(self, request: &PsciRequest) -> Self {
        match request {
            PsciRequest::CpuOff | PsciRequest::SystemOff | PsciRequest::SystemReset => Self::Off,
            _ => self,
        }
    }

    /// The state after the host completes `request` with a result: a completed
    /// CPU_OFF, SYSTEM_OFF or SYSTEM_RESET failed (PSCI only lets them return an
    /// error), so the guest goes on running.
    #[must_use]
    pub(crate) const fn after_completion(self, request: &PsciRequest) -> Self {
        match request {
            PsciRequest::CpuOff | PsciRequest::SystemOff | PsciRequest::SystemReset => Self::On,
            _ => self,
        }
    }
}
