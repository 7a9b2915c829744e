//! Creation and setup parameters of a vCPU.

use crate::smccc::SmcForwardList;

/// Parameters fixed when a vCPU is created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
}

/// Who answers the guest's reads of the feature ID registers (trapped by
/// `HCR_EL2.TID3`: op0 = 3, op1 = 0, CRn = 0, CRm = 1..7).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IdRegisterPolicy {
    /// The crate, from the VM's sanitized view (features it does not switch per vCPU
    /// are hidden: SVE, SME, MTE, SPE, TRBE, AMU, MPAM, RAS, PMU, nested
    /// virtualization; pointer authentication unless its keys are switched).
    #[default]
    Sanitized,
    /// The host, through [`crate::VmExit::SysRegRead`] exits.
    ExitToHost,
}

/// What happens to a trap nobody handles: a system register the crate does not
/// emulate, or an instruction class the guest may not use (SVE, SME, pointer
/// authentication without switched keys).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
}
