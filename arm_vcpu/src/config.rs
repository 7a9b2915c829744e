//! Creation and setup parameters of a vCPU.

/// Parameters fixed when a vCPU is created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Aarch64VCpuCreateConfig {
    /// The guest-visible `MPIDR_EL1` affinity (Aff3..Aff0, bits [39:32] and [23:0]);
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

/// Parameters chosen at setup: what the guest owns directly and what traps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Aarch64VCpuSetupConfig {
    /// The guest owns the physical GIC CPU interface: `HCR_EL2.IMO`/`FMO` = 0, so
    /// physical IRQs and FIQs are taken at EL1 and never cause an exit.
    pub passthrough_interrupt: bool,
    /// The guest may use the EL1 physical timer directly (`CNTHCTL_EL2.EL1PCEN` = 1).
    /// Otherwise its accesses to `CNTP_*` trap as system-register exits.
    pub passthrough_timer: bool,
    /// Trap the ID group 3 registers (`HCR_EL2.TID3`): reads of `ID_AA64*_EL1` and
    /// friends become [`crate::VmExit::SysRegRead`] exits.
    pub trap_id_registers: bool,
    /// Trap WFI (`HCR_EL2.TWI`): each becomes a [`crate::VmExit::WaitForInterrupt`].
    pub trap_wfi: bool,
    /// Trap WFE (`HCR_EL2.TWE`): each becomes a [`crate::VmExit::WaitForEvent`].
    pub trap_wfe: bool,
}
