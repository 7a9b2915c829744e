//! Virtual CPUs for a type-1 hypervisor on 64-bit Arm.
//!
//! The host runs at EL2 without VHE (`HCR_EL2.E2H = 0`); each guest vCPU runs at
//! EL1/EL0 under stage-2 translation. The crate provides:
//!
//! * [`Aarch64PerCpu`]: turns EL2 virtualization on and off on one physical core
//!   (`VBAR_EL2`, the host's `HCR_EL2`, feature probe);
//! * [`Aarch64VCpu`]: one virtual CPU — create, setup, entry, stage-2 root,
//!   bind/unbind to a physical core, and [`Aarch64VCpu::run`] which returns a typed
//!   [`VmExit`];
//! * pure decoders for `ESR_EL2` syndromes ([`esr`]), tested on the host;
//! * registers by ID ([`reg`]: [`Aarch64VCpu::reg_list`], [`Aarch64VCpu::get_reg`],
//!   [`Aarch64VCpu::set_reg`]) and snapshots ([`snapshot`]:
//!   [`Aarch64VCpu::snapshot`], [`Aarch64VCpu::restore`], a versioned byte format
//!   with length and CRC-32, [`snapshot::Snapshot::to_bytes`] /
//!   [`snapshot::Snapshot::from_bytes`], described in the [`snapshot`] module and
//!   `docs/snapshot.md`; serde with the `serde` feature).
//!
//! The package is `arm-vcpu-el2` on crates.io; the library is `arm_vcpu`.
//!
//! # Life cycle
//!
//! 1. Once per physical core, at EL2 and on that core: [`Aarch64PerCpu::new`], then
//!    [`Aarch64PerCpu::hardware_enable`].
//! 2. Per vCPU: [`Aarch64VCpu::new`] with an [`Aarch64VCpuCreateConfig`],
//!    [`Aarch64VCpu::setup`] with an [`Aarch64VCpuSetupConfig`],
//!    [`Aarch64VCpu::set_entry`] and [`Aarch64VCpu::set_stage2_root`].
//! 3. [`Aarch64VCpu::bind`] it to the calling core, [`Aarch64VCpu::run`] it until an
//!    exit, handle the exit (completing reads: [`Aarch64VCpu::complete_mmio_read`],
//!    [`Aarch64VCpu::complete_sysreg_read`], [`Aarch64VCpu::complete_psci`]) and run
//!    it again; [`Aarch64VCpu::unbind`] it to run something else on the core. It may
//!    be bound again on any enabled core.
//!
//! ```no_run
//! use arm_vcpu::smccc::ret;
//! use arm_vcpu::*;
//!
//! # fn main() -> Result<(), VCpuError> {
//! let mut percpu = Aarch64PerCpu::new(0);
//! percpu.hardware_enable()?;
//!
//! let mut vcpu = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default().with_dtb_addr(0x4000_0000))?;
//! vcpu.setup(Aarch64VCpuSetupConfig::default())?;
//! vcpu.set_entry(0x4008_0000)?;
//! vcpu.set_stage2_root(Stage2Config::new(0x8000_0000, 1, 39, 1))?;
//! vcpu.bind(&mut percpu)?;
//! loop {
//!     match vcpu.run()? {
//!         VmExit::MmioRead { .. } => vcpu.complete_mmio_read(0)?, // a read-as-zero device
//!         VmExit::MmioWrite { .. } => {}                          // write-ignored
//!         VmExit::Psci { request: PsciRequest::SystemOff, .. } => break,
//!         // An abort where no device is: the guest takes it, as on hardware.
//!         VmExit::DataAbort { va, write, .. } => vcpu.inject_data_abort(va, write)?,
//!         VmExit::InstructionAbort { va, .. } => vcpu.inject_instruction_abort(va)?,
//!         // One vCPU, no interrupts: nothing to wait for, no SGI target.
//!         VmExit::WaitForInterrupt | VmExit::WaitForEvent => {}
//!         VmExit::ExternalInterrupt { .. } | VmExit::SendSgi { .. } => {}
//!         // Calls this host does not offer: SMCCC/PSCI NOT_SUPPORTED.
//!         VmExit::Hypercall { .. } | VmExit::SecureMonitorCall { .. } => {
//!             vcpu.set_return_value(ret::NOT_SUPPORTED as u64)
//!         }
//!         VmExit::Psci { .. } => vcpu.complete_psci(ret::NOT_SUPPORTED)?,
//!         // An SError is the guest's failure: it ends this VM, nothing else.
//!         VmExit::SError { .. } => break,
//!         // Anything else (a system register or instruction this host does not
//!         // emulate): UNDEFINED for the guest, never a host panic.
//!         _ => vcpu.inject_undef()?,
//!     }
//! }
//! vcpu.unbind(&mut percpu)?;
//! # Ok(())
//! # }
//! ```
//!
//! The crate's README has a fuller run loop; [`VmExit`] lists what each exit needs.
//! Configuration structs and most enums are `#[non_exhaustive]`: structs are built
//! from `Default` with their `with_*` methods (or [`Stage2Config::new`],
//! [`VirtualInterrupt::new`]).
//!
//! # State switching contract
//! Guest state is grouped by when it moves (see the README's architecture section):
//!
//! * every entry/exit (assembly in `hw/exception.S`): x0–x30, `ELR_EL2`, `SPSR_EL2`;
//! * at [`Aarch64VCpu::bind`] / [`Aarch64VCpu::unbind`]: the registers of
//!   [`context::SWITCHED`] (EL1 system registers, `SP_EL0`, `SP_EL1`, the timers, the
//!   pointer-authentication keys, the registers of hidden features nothing but FEAT_FGT
//!   traps such as `TPIDR2_EL0`, `VDISR_EL2`/`VSESR_EL2` and the per-VM EL2 controls
//!   composed by [`traps`]) and the GICv3 virtual CPU interface (list registers, VMCR,
//!   active priorities); FP/SIMD on first use after bind (or at bind,
//!   `FpSwitch::Eager`) and at unbind; the self-hosted debug registers on first use
//!   after bind (or at bind when `MDSCR_EL1` enables debug exceptions) and at unbind,
//!   the host's restored ([`debug`]).
//!
//! Which registers are switched, trapped, emulated or hidden is one table,
//! [`sysreg::INVENTORY`], rendered as `docs/registers.md`.
//!
//! While a vCPU is bound, the host must not touch EL1 system registers, `SP_EL0`,
//! FP/SIMD registers (build the host for a soft-float target), the virtual timer, or
//! the EL2 controls listed above. It may take EL2 exceptions and use the physical GIC
//! CPU interface and its own EL2 timer.
#![cfg_attr(not(test), no_std)]
#![deny(clippy::undocumented_unsafe_blocks, unsafe_op_in_unsafe_fn)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rustdoc::broken_intra_doc_links,
    rustdoc::private_intra_doc_links,
    rustdoc::invalid_codeblock_attributes,
    rustdoc::invalid_rust_codeblocks,
    rustdoc::bare_urls
)]
// The exit decoding and hardware-facing glue are only called from the aarch64 build;
// on the host they are exercised by the unit tests.
#![cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]

pub mod aarch32;
mod config;
pub mod context;
pub mod debug;
pub mod emulate;
mod error;
pub mod esr;
mod exit;
#[cfg(target_arch = "aarch64")]
mod hw;
pub mod idregs;
pub mod inject;
mod percpu;
pub mod pmu;
pub mod power;
pub mod reg;
pub mod smccc;
pub mod snapshot;
pub mod stage2;
pub mod sysreg;
pub mod timer;
pub mod traps;
mod vcpu;
pub mod vgic;
pub mod workaround;

#[cfg(test)]
mod tests;

/// The README's examples, compiled as doctests (`cargo test --doc`).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use config::{
    Aarch64VCpuCreateConfig, Aarch64VCpuSetupConfig, FpSwitch, IdRegisterPolicy, TrapPolicy,
};
pub use context::{Aarch64ContextFrame, GuestSystemRegisters, TrapFrame};
pub use error::VCpuError;
pub use exit::{AccessWidth, InlineExits, NoInlineExits, Stage2Fault, SysRegAddr, VmExit};
pub use percpu::{Aarch64PerCpu, CpuFeatures, HostTrapFrame, HostTrapHandler, HostTrapKind};
pub use power::PowerState;
pub use smccc::{Conduit, PsciRequest, SmcForwardList};
pub use stage2::Stage2Config;
pub use timer::TimerDeadlines;
pub use vgic::{
    InjectIrqError, IrqState, IrqStates, ReleasedHwInterrupts, SgiRegister, SgiRequest, SgiTargets,
    VirtualInterrupt,
};
pub use workaround::{FirmwareConduit, FirmwareInfo, Workarounds};

/// The physical count (`CNTPCT_EL0`), e.g. to give a new VM a `CNTVOFF_EL2` that
/// starts its virtual count near zero. 0 when not built for aarch64.
pub fn physical_count() -> u64 {
    #[cfg(target_arch = "aarch64")]
    {
        hw::cntpct()
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        0
    }
}
pub use vcpu::Aarch64VCpu;

/// Result type of this crate.
pub type VCpuResult<T = ()> = Result<T, VCpuError>;

/// Whether this CPU can host vCPUs: running at EL2 (`CurrentEL.EL == 2`) with EL2
/// implemented for AArch64 (`ID_AA64PFR0_EL1.EL2 != 0`). Always `false` when not built
/// for aarch64.
#[must_use]
pub fn has_hardware_support() -> bool {
    #[cfg(target_arch = "aarch64")]
    {
        hw::has_hardware_support()
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        false
    }
}
