//! Errors the crate reports to the host. A guest never causes one of these by itself:
//! guest-caused conditions end `run()` with a [`crate::VmExit`].

use core::fmt;

/// An error returned to the host.
///
/// `#[non_exhaustive]`: later versions may add variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VCpuError {
    /// A configuration value is out of range; the string names it.
    InvalidConfig(&'static str),
    /// The call is not valid in the vCPU's current lifecycle state.
    InvalidState {
        /// The operation attempted.
        op: &'static str,
        /// The state the vCPU was in.
        state: &'static str,
    },
    /// `run()` was called on a vCPU that is not bound to a physical CPU.
    NotBound,
    /// The per-CPU virtualization state is not enabled on this core.
    CpuNotEnabled,
    /// The per-CPU state belongs to another physical core than the caller's.
    WrongCpu,
    /// Another vCPU is already bound to this physical core.
    CpuBusy,
    /// The last exit was an MMIO or system-register read that still needs its value:
    /// call `complete_mmio_read` / `complete_sysreg_read` before `run()`.
    PendingCompletion,
    /// A completion call was made but the last exit does not expect one.
    NothingToComplete,
    /// A general-purpose register index above 30 (x31 is not a storable register).
    InvalidRegister(usize),
    /// The frame asks for AArch32 state (SPSR.M\[4\] = 1) on a CPU that does not
    /// implement AArch32 at EL0, or for a vCPU set up with `hide_aarch32_el0`. (EL1 is
    /// always AArch64; AArch32 EL0 under it is supported.)
    Aarch32NotSupported,
    /// Not running at EL2 on a CPU with EL2, or not built for aarch64.
    NoHardwareSupport,
    /// A snapshot cannot be restored, or the restored vCPU cannot run on this core
    /// (`bind` after [`crate::Aarch64VCpu::restore`]).
    Snapshot(crate::snapshot::SnapshotError),
    /// Interrupts were injected into the vCPU, but the core it is being bound to has no
    /// usable GICv3 virtual CPU interface to deliver them through.
    NoVirtualInterface,
    /// `run()` on a vCPU that is powered off ([`crate::PowerState::Off`]: after its
    /// PSCI CPU_OFF, SYSTEM_OFF or SYSTEM_RESET, or created powered off); call
    /// [`crate::Aarch64VCpu::power_on`] first.
    PoweredOff,
}

impl fmt::Display for VCpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidConfig(what) => write!(f, "invalid configuration: {what}"),
            Self::InvalidState { op, state } => write!(f, "{op} not allowed in state {state}"),
            Self::NotBound => write!(f, "vCPU is not bound to a physical CPU"),
            Self::CpuNotEnabled => write!(f, "EL2 virtualization is not enabled on this CPU"),
            Self::WrongCpu => write!(f, "per-CPU state belongs to another physical CPU"),
            Self::CpuBusy => write!(f, "another vCPU is bound to this physical CPU"),
            Self::PendingCompletion => write!(f, "the last read exit has not been completed"),
            Self::NothingToComplete => write!(f, "no exit is waiting for completion"),
            Self::InvalidRegister(n) => write!(f, "x{n} is not a general-purpose register"),
            Self::Aarch32NotSupported => write!(f, "AArch32 EL0 is not available to this vCPU"),
            Self::NoHardwareSupport => write!(f, "no EL2 virtualization support"),
            Self::Snapshot(e) => write!(f, "{e}"),
            Self::NoVirtualInterface => write!(
                f,
                "interrupts are waiting but this core has no GICv3 virtual CPU interface"
            ),
            Self::PoweredOff => write!(f, "the vCPU is powered off"),
        }
    }
}

impl core::error::Error for VCpuError {}

impl From<crate::snapshot::SnapshotError> for VCpuError {
    fn from(e: crate::snapshot::SnapshotError) -> Self {
        Self::Snapshot(e)
    }
}
