//! Creation and setup parameters of a vCPU.
//!
//! Both structs are `#[non_exhaustive]` so that later versions can add settings:
//! start from `Default` and change what you need with the `with_*` methods (or
//! assign the public fields of a value you already have).

use crate::smccc::SmcForwardList;

/// Parameters fixed when a vCPU is created.
///
/// ```
/// use arm_vcpu::Aarch64VCpuCreateConfig;
///
/// // vCPU 1 of a VM: MPIDR Aff0 = 1, started later by the guest's PSCI CPU_ON.
/// let config = Aarch64VCpuCreateConfig::default()
///     .with_mpidr_el1(1)
///     .with_dtb_addr(0x4000_0000)
///     .with_powered_off(true);
/// assert_eq!(config.mpidr_el1, 1);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Aarch64VCpuCreateConfig {
    /// The guest-visible `MPIDR_EL1` affinity (Aff3..Aff0, bits \[39:32\] and \[23:0\]);
    /// programmed into `VMPIDR_EL2` with bit 31 (RES1) set. Other bits must be zero.
    pub mpidr_el1: u64,
    /// Guest-physical address of the device tree, passed to the guest in x0 at entry
    /// (the Linux arm64 boot protocol).
    pub dtb_addr: u64,
    /// `CNTVOFF_EL2`: offset subtracted from the physical count to give the guest's
    /// virtual count. Give every vCPU of a VM the same value.
    pub cntvoff_el2: u64,
    /// `VPIDR_EL2`: the `MIDR_EL1` value the guest reads. `None` uses the host's.
    pub midr_el1: Option<u64>,
    /// The vCPU starts powered off ([`crate::PowerState::Off`], as KVM's
    /// `KVM_ARM_VCPU_POWER_OFF`): `run()` refuses it until the host calls
    /// [`crate::Aarch64VCpu::power_on`] (a guest's PSCI CPU_ON). Otherwise it starts
    /// [`crate::PowerState::On`].
    pub powered_off: bool,
}

impl Aarch64VCpuCreateConfig {
    /// Sets [`Self::mpidr_el1`].
    #[must_use]
    pub const fn with_mpidr_el1(mut self, mpidr_el1: u64) -> Self {
        self.mpidr_el1 = mpidr_el1;
        self
    }

    /// Sets [`Self::dtb_addr`].
    #[must_use]
    pub const fn with_dtb_addr(mut self, dtb_addr: u64) -> Self {
        self.dtb_addr = dtb_addr;
        self
    }

    /// Sets [`Self::cntvoff_el2`].
    #[must_use]
    pub const fn with_cntvoff_el2(mut self, cntvoff_el2: u64) -> Self {
        self.cntvoff_el2 = cntvoff_el2;
        self
    }

    /// Sets [`Self::midr_el1`] (`None`: the host's `MIDR_EL1`).
    #[must_use]
    pub const fn with_midr_el1(mut self, midr_el1: Option<u64>) -> Self {
        self.midr_el1 = midr_el1;
        self
    }

    /// Sets [`Self::powered_off`].
    #[must_use]
    pub const fn with_powered_off(mut self, powered_off: bool) -> Self {
        self.powered_off = powered_off;
        self
    }
}

/// Who answers the guest's reads of the feature ID registers (trapped by
/// `HCR_EL2.TID3`: op0 = 3, op1 = 0, CRn = 0, CRm = 1..7).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdRegisterPolicy {
    /// The crate, from the VM's sanitized view (`idregs::VIEW`: features it does not
    /// switch per vCPU are hidden — SVE, SME, MTE, SPE, TRBE, BRBE, AMU, MPAM, RAS, PMU,
    /// trace, GCS, nested virtualization and more; pointer authentication unless its keys
    /// are switched).
    #[default]
    Sanitized,
    /// The host, through [`crate::VmExit::SysRegRead`] exits.
    ExitToHost,
}

/// What happens to a trap nobody handles: a system register the crate does not
/// emulate, or an instruction class the guest may not use (SVE, SME, pointer
/// authentication without switched keys).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrapPolicy {
    /// The guest takes an UNDEFINED instruction exception at EL1, as the architecture
    /// says for an unimplemented register or feature.
    #[default]
    InjectUndef,
    /// `run()` returns the exit ([`crate::VmExit::SysRegRead`],
    /// [`crate::VmExit::SysRegWrite`] or [`crate::VmExit::Unhandled`]).
    ExitToHost,
}

/// When a vCPU's FP/SIMD registers (V0–V31, FPCR, FPSR) move.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FpSwitch {
    /// Loaded on the guest's first FP/SIMD use after bind (`CPTR_EL2.TFP` traps it),
    /// saved at unbind only if loaded. Requires a host that never touches FP/SIMD
    /// while a vCPU is bound (build it for a soft-float target).
    #[default]
    Lazy,
    /// Loaded at bind and saved at unbind, always.
    Eager,
}

/// Parameters chosen at setup: what the guest owns directly and what traps.
///
/// ```
/// use arm_vcpu::{Aarch64VCpuSetupConfig, FpSwitch};
///
/// // A host that uses FP/SIMD itself, with WFI exits for descheduling idle vCPUs.
/// let setup = Aarch64VCpuSetupConfig::default()
///     .with_fp_switch(FpSwitch::Eager)
///     .with_trap_wfi(true);
/// assert!(setup.trap_wfi && !setup.passthrough_interrupt);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Aarch64VCpuSetupConfig {
    /// The guest owns the physical GIC CPU interface: `HCR_EL2.IMO`/`FMO` = 0, so
    /// physical IRQs and FIQs are taken at EL1 and never cause an exit.
    pub passthrough_interrupt: bool,
    /// The guest may use the EL1 physical timer directly (`CNTHCTL_EL2.EL1PCEN` = 1).
    /// Otherwise its accesses to `CNTP_CTL/CVAL/TVAL_EL0` trap and the crate emulates
    /// the timer against the physical count ([`crate::Aarch64VCpu::timer_deadlines`]
    /// tells the host when to inject its interrupt).
    pub passthrough_timer: bool,
    /// Who answers ID register reads.
    pub id_registers: IdRegisterPolicy,
    /// What to do with traps nobody handles.
    pub unhandled_traps: TrapPolicy,
    /// Trap WFI (`HCR_EL2.TWI`): each becomes a [`crate::VmExit::WaitForInterrupt`].
    pub trap_wfi: bool,
    /// Trap WFE (`HCR_EL2.TWE`): each becomes a [`crate::VmExit::WaitForEvent`].
    pub trap_wfe: bool,
    /// SMC function-ID ranges forwarded to EL3 (empty by default).
    pub smc_forward: SmcForwardList,
    /// When FP/SIMD state is switched.
    pub fp_switch: FpSwitch,
    /// Hide AArch32 at EL0 from the guest: `ID_AA64PFR0_EL1.EL0` = 0b0001 and the
    /// AArch32 ID registers (`ID_PFR0_EL1` .. `MVFR2_EL1`, op0 3 op1 0 CRn 0 CRm 1..3)
    /// read as zero, as on a CPU without AArch32 (the default follows the CPU). The
    /// hardware cannot stop a guest's exception return to AArch32 EL0; a vCPU found
    /// there anyway takes the Illegal Execution state exception such a CPU would give.
    pub hide_aarch32_el0: bool,
    /// The VM's PMU: hidden (default) or a virtual PMUv3 ([`crate::pmu`]).
    pub pmu: crate::pmu::PmuConfig,
}

impl Aarch64VCpuSetupConfig {
    /// Sets [`Self::passthrough_interrupt`].
    #[must_use]
    pub const fn with_passthrough_interrupt(mut self, on: bool) -> Self {
        self.passthrough_interrupt = on;
        self
    }

    /// Sets [`Self::passthrough_timer`].
    #[must_use]
    pub const fn with_passthrough_timer(mut self, on: bool) -> Self {
        self.passthrough_timer = on;
        self
    }

    /// Sets [`Self::id_registers`].
    #[must_use]
    pub const fn with_id_registers(mut self, policy: IdRegisterPolicy) -> Self {
        self.id_registers = policy;
        self
    }

    /// Sets [`Self::unhandled_traps`].
    #[must_use]
    pub const fn with_unhandled_traps(mut self, policy: TrapPolicy) -> Self {
        self.unhandled_traps = policy;
        self
    }

    /// Sets [`Self::trap_wfi`].
    #[must_use]
    pub const fn with_trap_wfi(mut self, on: bool) -> Self {
        self.trap_wfi = on;
        self
    }

    /// Sets [`Self::trap_wfe`].
    #[must_use]
    pub const fn with_trap_wfe(mut self, on: bool) -> Self {
        self.trap_wfe = on;
        self
    }

    /// Sets [`Self::smc_forward`].
    #[must_use]
    pub const fn with_smc_forward(mut self, list: SmcForwardList) -> Self {
        self.smc_forward = list;
        self
    }

    /// Sets [`Self::pmu`].
    #[must_use]
    pub const fn with_pmu(mut self, pmu: crate::pmu::PmuConfig) -> Self {
        self.pmu = pmu;
        self
    }

    /// Sets [`Self::fp_switch`].
    #[must_use]
    pub const fn with_fp_switch(mut self, fp_switch: FpSwitch) -> Self {
        self.fp_switch = fp_switch;
        self
    }
}
