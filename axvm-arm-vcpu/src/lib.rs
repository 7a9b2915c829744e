//! AxVM's architecture traits ([`VmArchVcpuOps`], [`VmArchPerCpuOps`] of
//! `axvm-types` 0.7) implemented on top of [`arm_vcpu`].
//!
//! * [`AxVCpu`] is a vCPU for AxVM: `type Exit = arm_vcpu::VmExit` (exits pass
//!   through unchanged, for the AArch64 part of AxVM to handle), `CreateConfig` and
//!   `SetupConfig` are `arm_vcpu`'s configuration structs. AxVM's register writes that
//!   complete an exit (`set_gpr(reg, value)` after an MMIO or system-register read,
//!   `set_return_value(result)` after a PSCI call) become `arm_vcpu`'s completion
//!   calls ([`completion`]).
//! * [`AxPerCpu`] is the per-CPU state: `hardware_enable` registers it for the calling
//!   core, where [`AxVCpu`]'s `bind()` / `unbind()` find it ([`registry`]).
//!
//! ```no_run
//! use axvm_arm_vcpu::{AxPerCpu, AxVCpu};
//! use axvm_arm_vcpu::arm_vcpu::{Aarch64VCpuCreateConfig, Aarch64VCpuSetupConfig, VmExit};
//! use axvm_types::{GuestPhysAddr, HostPhysAddr, NestedPagingConfig, VmArchPerCpuOps, VmArchVcpuOps};
//!
//! # fn main() -> axvm_types::VmBackendResult {
//! // On each physical core, at EL2:
//! let mut percpu = AxPerCpu::new(0)?;
//! percpu.hardware_enable()?;
//!
//! // vCPU 0 of VM 1 (whose id becomes the stage-2 VMID).
//! let mut vcpu = AxVCpu::new(1, 0, Aarch64VCpuCreateConfig::default())?;
//! vcpu.set_entry(GuestPhysAddr::from_usize(0x4008_0000))?;
//! vcpu.set_nested_page_table(NestedPagingConfig::new(
//!     HostPhysAddr::from_usize(0x8000_0000), 3, 39, 0,
//! ))?;
//! vcpu.setup(Aarch64VCpuSetupConfig::default())?;
//! vcpu.bind()?;
//! loop {
//!     match vcpu.run()? {
//!         // The device's value; the adapter completes the load (extension, PC).
//!         VmExit::MmioRead { reg, .. } => vcpu.set_gpr(usize::from(reg), 0),
//!         VmExit::MmioWrite { .. } => {}
//!         VmExit::Hypercall { .. } => vcpu.set_return_value(usize::MAX), // NOT_SUPPORTED
//!         _ => break,
//!     }
//! }
//! vcpu.unbind()?;
//! # Ok(())
//! # }
//! ```
#![cfg_attr(not(test), no_std)]
#![deny(clippy::undocumented_unsafe_blocks, unsafe_op_in_unsafe_fn)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rustdoc::broken_intra_doc_links,
    rustdoc::private_intra_doc_links
)]

pub mod completion;
pub mod registry;

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use arm_vcpu;
pub use axvm_types;

use arm_vcpu::stage2::pa_range_bits;
use arm_vcpu::{
    Aarch64VCpu, Aarch64VCpuCreateConfig, Aarch64VCpuSetupConfig, InjectIrqError, Stage2Config,
    VCpuError, VirtualInterrupt, VmExit,
};
use axvm_types::{
    GuestPhysAddr, NestedPagingConfig, VCpuId, VMId, VmArchPerCpuOps, VmArchVcpuOps,
    VmBackendError, VmBackendResult,
};

use completion::Completion;
use registry::REGISTRY;

/// The AxVM error for an `arm_vcpu` error.
#[must_use]
pub fn backend_error(e: VCpuError) -> VmBackendError {
    match e {
        VCpuError::InvalidConfig(_) | VCpuError::InvalidRegister(_) => VmBackendError::InvalidInput,
        VCpuError::CpuBusy => VmBackendError::ResourceBusy,
        VCpuError::Aarch32NotSupported | VCpuError::NoHardwareSupport => {
            VmBackendError::Unsupported
        }
        // NotBound, InvalidState, CpuNotEnabled, WrongCpu, PendingCompletion,
        // NothingToComplete, PoweredOff, and whatever a later version adds.
        _ => VmBackendError::InvalidState,
    }
}

/// The AxVM error for an interrupt that cannot be injected.
#[must_use]
pub fn inject_error(e: InjectIrqError) -> VmBackendError {
    match e {
        InjectIrqError::QueueFull => VmBackendError::ResourceBusy,
        _ => VmBackendError::InvalidInput,
    }
}

/// AxVM's stage-2 description as `arm_vcpu`'s: VMID `vm_id`, `levels` of 4 KiB
/// tables (4: root at level 0, 3: level 1, 2: level 2), `gpa_bits` of IPA. The
/// `mode` field is not used: the crate derives `VTCR_EL2` from the rest.
pub fn stage2_config(vm_id: VMId, config: &NestedPagingConfig) -> VmBackendResult<Stage2Config> {
    let vmid = u16::try_from(vm_id).map_err(|_| VmBackendError::InvalidInput)?;
    let root_level = match config.levels {
        2..=4 => 4 - config.levels as u8,
        _ => return Err(VmBackendError::InvalidInput),
    };
    let ipa_bits = u8::try_from(config.gpa_bits).map_err(|_| VmBackendError::InvalidInput)?;
    Ok(Stage2Config::new(
        config.root_paddr.as_usize() as u64,
        vmid,
        ipa_bits,
        root_level,
    ))
}

/// The largest IPA size an AxVM page table (one root table, no concatenation) gives
/// `arm_vcpu` on a core whose `ID_AA64MMFR0_EL1.PARange` is `pa_range`: its physical
/// address size, at most 48 bits (4 KiB tables without FEAT_LPA2). A level-0 root
/// is only valid from a 44-bit physical address size (the Arm ARM's
/// `AArch64.S2InvalidSL`), so on 40- and 42-bit cores (Cortex-A53, -A35) the guest
/// gets 39 bits from a level-1 root (a 40-bit space needs two concatenated level-1
/// tables, which AxVM's page tables do not build). 32 for a reserved encoding (on
/// which the crate refuses to bind).
#[must_use]
pub fn guest_ipa_bits(pa_range: u8) -> usize {
    match pa_range_bits(pa_range) {
        Some(bits) if bits >= 44 => usize::from(bits.min(48)),
        Some(bits) => usize::from(bits.min(39)),
        None => 32,
    }
}

/// Levels of 4 KiB stage-2 tables for an IPA space of `ipa_bits`: 4 (root at level
/// 0) from 40 bits, 3 (root at level 1) below.
#[must_use]
pub fn stage2_levels(ipa_bits: usize) -> usize {
    if ipa_bits >= 40 {
        4
    } else {
        3
    }
}

/// An `arm_vcpu` vCPU driven through AxVM's [`VmArchVcpuOps`].
#[derive(Debug)]
pub struct AxVCpu {
    vcpu: Aarch64VCpu,
    vm_id: VMId,
    vcpu_id: VCpuId,
    /// What the last exit waits for (see [`completion`]).
    waiting: Completion,
    /// The registry slot of the core it is bound to.
    bound_to: Option<usize>,
}

impl AxVCpu {
    /// The `arm_vcpu` vCPU, for what AxVM's traits do not cover (power state, timer
    /// deadlines, injection with a priority or a hardware link, exception injection).
    pub fn vcpu(&self) -> &Aarch64VCpu {
        &self.vcpu
    }

    /// The `arm_vcpu` vCPU, mutable. An exit completed through it directly is no
    /// longer completed by a later `set_gpr` / `set_return_value`.
    pub fn vcpu_mut(&mut self) -> &mut Aarch64VCpu {
        &mut self.vcpu
    }

    /// The VM this vCPU belongs to (its stage-2 VMID).
    pub fn vm_id(&self) -> VMId {
        self.vm_id
    }

    /// This vCPU's number in its VM.
    pub fn vcpu_id(&self) -> VCpuId {
        self.vcpu_id
    }

    /// What the last exit waits for.
    pub fn waiting(&self) -> Completion {
        self.waiting
    }
}

impl VmArchVcpuOps for AxVCpu {
    type CreateConfig = Aarch64VCpuCreateConfig;
    type SetupConfig = Aarch64VCpuSetupConfig;
    type Exit = VmExit;

    fn new(vm_id: VMId, vcpu_id: VCpuId, config: Self::CreateConfig) -> VmBackendResult<Self> {
        Ok(Self {
            vcpu: Aarch64VCpu::new(config).map_err(backend_error)?,
            vm_id,
            vcpu_id,
            waiting: Completion::None,
            bound_to: None,
        })
    }

    fn guest_mpidr_from_create_config(config: &Self::CreateConfig) -> Option<u64> {
        Some(config.mpidr_el1)
    }

    fn set_entry(&mut self, entry: GuestPhysAddr) -> VmBackendResult {
        self.vcpu
            .set_entry(entry.as_usize() as u64)
            .map_err(backend_error)
    }

    fn set_nested_page_table(&mut self, config: NestedPagingConfig) -> VmBackendResult {
        let s2 = stage2_config(self.vm_id, &config)?;
        self.vcpu.set_stage2_root(s2).map_err(backend_error)
    }

    fn setup(&mut self, config: Self::SetupConfig) -> VmBackendResult {
        self.vcpu.setup(config).map_err(backend_error)
    }

    /// Runs the guest. Physical interrupts end it with `VmExit::ExternalInterrupt`
    /// (routed to EL2 while the guest runs, unless the setup passes them through) and
    /// are left pending, unacknowledged, for the host's IRQ entry once the caller
    /// unmasks IRQs.
    fn run(&mut self) -> VmBackendResult<Self::Exit> {
        let exit = self.vcpu.run().map_err(backend_error)?;
        self.waiting = Completion::after(&exit);
        Ok(exit)
    }

    fn bind(&mut self) -> VmBackendResult {
        let affinity = registry::current_affinity().ok_or(VmBackendError::Unsupported)?;
        // No per-CPU state enabled on this core: AxVM did not call hardware_enable here.
        let (index, slot) = REGISTRY
            .find(affinity)
            .ok_or(VmBackendError::InvalidState)?;
        slot.with(|p| match p {
            Some(p) => self.vcpu.bind(p).map_err(backend_error),
            None => Err(VmBackendError::InvalidState),
        })??;
        self.bound_to = Some(index);
        Ok(())
    }

    fn unbind(&mut self) -> VmBackendResult {
        let slot = self
            .bound_to
            .and_then(|i| REGISTRY.slot(i))
            .ok_or(VmBackendError::InvalidState)?;
        slot.with(|p| match p {
            Some(p) => self.vcpu.unbind(p).map_err(backend_error),
            None => Err(VmBackendError::InvalidState),
        })??;
        self.bound_to = None;
        Ok(())
    }

    /// Completes the read the last exit left waiting for register `reg`, or writes
    /// the register (see [`completion`]). A value `arm_vcpu` refuses (a PSCI result
    /// the call may not return, x31 when nothing waits) is logged and dropped; the
    /// exit then still waits, and the next `run()` fails with `InvalidState`.
    fn set_gpr(&mut self, reg: usize, val: usize) {
        if let Err(e) = completion::set_gpr(&mut self.vcpu, &mut self.waiting, reg, val as u64) {
            log::warn!(
                "vCPU {}.{}: set_gpr({reg}, {val:#x}) refused: {e}",
                self.vm_id,
                self.vcpu_id
            );
        }
    }

    /// Injects INTID `vector` (group 1, priority 0xa0; `vcpu_mut().inject_interrupt`
    /// sets the others) through the GICv3 list registers.
    fn inject_interrupt(&mut self, vector: usize) -> VmBackendResult {
        let intid = u32::try_from(vector).map_err(|_| VmBackendError::InvalidInput)?;
        self.vcpu
            .inject_interrupt(VirtualInterrupt::new(intid))
            .map_err(inject_error)
    }

    /// The result of a waiting PSCI call (a sign-extended PSCI return code), or x0.
    /// A refused result is logged, as with [`Self::set_gpr`].
    fn set_return_value(&mut self, val: usize) {
        if let Err(e) = completion::set_return_value(&mut self.vcpu, &mut self.waiting, val as u64)
        {
            log::warn!(
                "vCPU {}.{}: set_return_value({val:#x}) refused: {e}",
                self.vm_id,
                self.vcpu_id
            );
        }
    }
}

/// One physical CPU's EL2 state for AxVM, kept in the adapter's table
/// ([`registry`]) so that [`AxVCpu::bind`](VmArchVcpuOps::bind) finds it.
#[derive(Debug)]
pub struct AxPerCpu {
    cpu_id: usize,
}

impl AxPerCpu {
    /// Runs `f` on the `arm_vcpu` per-CPU state (features, host trap handler, ...).
    pub fn with_state<R>(
        &self,
        f: impl FnOnce(&mut arm_vcpu::Aarch64PerCpu) -> R,
    ) -> VmBackendResult<R> {
        let slot = REGISTRY
            .slot(self.cpu_id)
            .ok_or(VmBackendError::InvalidState)?;
        slot.with(|p| p.as_mut().map(f).ok_or(VmBackendError::InvalidState))?
    }

    /// AxVM's number for this CPU.
    pub fn cpu_id(&self) -> usize {
        self.cpu_id
    }

    fn features(&self) -> Option<arm_vcpu::CpuFeatures> {
        self.with_state(|p| *p.features()).ok()
    }
}

impl Drop for AxPerCpu {
    /// Frees the slot, unless the state is still enabled (call `hardware_disable`
    /// first): then the slot stays taken, as the core's vectors still are.
    fn drop(&mut self) {
        if !self.is_enabled() {
            REGISTRY.release(self.cpu_id);
        }
    }
}

impl VmArchPerCpuOps for AxPerCpu {
    /// Claims the state of CPU `cpu_id` (below [`registry::MAX_CPUS`]; once).
    fn new(cpu_id: usize) -> VmBackendResult<Self> {
        REGISTRY.claim(cpu_id)?;
        Ok(Self { cpu_id })
    }

    fn is_enabled(&self) -> bool {
        self.with_state(|p| p.is_enabled()).unwrap_or(false)
    }

    /// `Aarch64PerCpu::hardware_enable` on the calling core, which it then registers
    /// as this state's core; `ResourceBusy` if another state is enabled on this core.
    fn hardware_enable(&mut self) -> VmBackendResult {
        let slot = REGISTRY
            .slot(self.cpu_id)
            .ok_or(VmBackendError::InvalidState)?;
        // One state per core: bind() must find exactly one.
        if let Some(here) = registry::current_affinity() {
            if REGISTRY.find(here).is_some() {
                return Err(VmBackendError::ResourceBusy);
            }
        }
        let affinity = slot.with(|p| -> VmBackendResult<u64> {
            let p = p.as_mut().ok_or(VmBackendError::InvalidState)?;
            p.hardware_enable().map_err(backend_error)?;
            Ok(p.features().mpidr)
        })??;
        slot.register(Some(affinity), registry::counter_frequency());
        Ok(())
    }

    fn hardware_disable(&mut self) -> VmBackendResult {
        let slot = REGISTRY
            .slot(self.cpu_id)
            .ok_or(VmBackendError::InvalidState)?;
        slot.with(|p| match p {
            Some(p) => p.hardware_disable().map_err(backend_error),
            None => Err(VmBackendError::InvalidState),
        })??;
        slot.register(None, 0);
        Ok(())
    }

    /// [`stage2_levels`] for this core. Valid once enabled.
    fn max_guest_page_table_levels(&self) -> usize {
        stage2_levels(self.guest_phys_addr_bits())
    }

    /// [`guest_ipa_bits`] for this core. Valid once enabled.
    fn guest_phys_addr_bits(&self) -> usize {
        guest_ipa_bits(self.features().map_or(0, |f| f.pa_range))
    }

    /// `CNTFRQ_EL0` as read when the core was enabled.
    fn timer_frequency_hz(&self) -> Option<u64> {
        REGISTRY.slot(self.cpu_id)?.timer_hz()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axvm_types::HostPhysAddr;

    #[test]
    fn errors_map_to_axvm_kinds() {
        use VmBackendError::*;
        let rows = [
            (VCpuError::InvalidConfig("x"), InvalidInput),
            (VCpuError::InvalidRegister(31), InvalidInput),
            (VCpuError::CpuBusy, ResourceBusy),
            (VCpuError::NoHardwareSupport, Unsupported),
            (VCpuError::Aarch32NotSupported, Unsupported),
            (VCpuError::NotBound, InvalidState),
            (VCpuError::WrongCpu, InvalidState),
            (VCpuError::CpuNotEnabled, InvalidState),
            (VCpuError::PendingCompletion, InvalidState),
            (VCpuError::NothingToComplete, InvalidState),
            (VCpuError::PoweredOff, InvalidState),
            (
                VCpuError::InvalidState {
                    op: "bind",
                    state: "created",
                },
                InvalidState,
            ),
        ];
        for (e, want) in rows {
            assert_eq!(backend_error(e), want, "{e:?}");
        }
        assert_eq!(inject_error(InjectIrqError::QueueFull), ResourceBusy);
        assert_eq!(inject_error(InjectIrqError::InvalidIntid), InvalidInput);
        assert_eq!(inject_error(InjectIrqError::InvalidHwIntid), InvalidInput);
    }

    fn npt(root: usize, levels: usize, gpa_bits: usize) -> NestedPagingConfig {
        NestedPagingConfig::new(HostPhysAddr::from_usize(root), levels, gpa_bits, 0)
    }

    #[test]
    fn nested_paging_becomes_stage2() {
        let s = stage2_config(3, &npt(0x8000_0000, 3, 39)).unwrap();
        assert_eq!(s, Stage2Config::new(0x8000_0000, 3, 39, 1));
        let s = stage2_config(0x1234, &npt(0x4000_0000, 4, 48)).unwrap();
        assert_eq!(s, Stage2Config::new(0x4000_0000, 0x1234, 48, 0));
        assert_eq!(stage2_config(1, &npt(0, 2, 30)).unwrap().root_level, 2);
        for bad in [npt(0, 1, 39), npt(0, 5, 39), npt(0, 3, 300)] {
            assert_eq!(
                stage2_config(1, &bad).err(),
                Some(VmBackendError::InvalidInput)
            );
        }
        assert_eq!(
            stage2_config(1 << 16, &npt(0, 3, 39)).err(),
            Some(VmBackendError::InvalidInput),
            "a VMID has at most 16 bits"
        );
    }

    #[test]
    fn a_vcpu_through_the_traits() {
        let config = Aarch64VCpuCreateConfig::default().with_mpidr_el1(0x101);
        assert_eq!(AxVCpu::guest_mpidr_from_create_config(&config), Some(0x101));
        let mut v = AxVCpu::new(2, 1, config).unwrap();
        assert_eq!((v.vm_id(), v.vcpu_id()), (2, 1));
        v.setup(Aarch64VCpuSetupConfig::default()).unwrap();
        v.set_entry(GuestPhysAddr::from_usize(0x4008_0000)).unwrap();
        assert_eq!(v.vcpu().pc(), 0x4008_0000);
        assert_eq!(
            v.set_entry(GuestPhysAddr::from_usize(0x4008_0002)),
            Err(VmBackendError::InvalidInput)
        );
        v.set_nested_page_table(npt(0x8000_0000, 3, 39)).unwrap();
        // The crate checks what the adapter passes on: 39 bits need a level-1 root.
        assert_eq!(
            v.set_nested_page_table(npt(0x8000_0000, 4, 39)),
            Err(VmBackendError::InvalidInput)
        );
        assert_eq!(
            v.set_nested_page_table(npt(0x8000_0800, 3, 39)),
            Err(VmBackendError::InvalidInput),
            "unaligned root"
        );
        // Plain register writes (nothing waits).
        v.set_gpr(5, 55);
        v.set_return_value(7);
        assert_eq!((v.vcpu().gpr(5), v.vcpu().gpr(0)), (Some(55), Some(7)));
        assert_eq!(v.waiting(), Completion::None);
        // Interrupts for an unbound vCPU are queued; invalid INTIDs refused.
        v.inject_interrupt(33).unwrap();
        assert_eq!(v.vcpu().queued_interrupts(), 1);
        assert_eq!(v.inject_interrupt(1023), Err(VmBackendError::InvalidInput));
        assert_eq!(
            v.inject_interrupt(1 << 40),
            Err(VmBackendError::InvalidInput)
        );
        assert_eq!(
            v.inject_interrupt_with_trigger(33, axvm_types::InterruptTriggerMode::LevelTriggered),
            Err(VmBackendError::Unsupported)
        );
        // Not bound: run and unbind say so; bind finds no enabled core on the host.
        assert_eq!(v.run().err(), Some(VmBackendError::InvalidState));
        assert_eq!(v.unbind(), Err(VmBackendError::InvalidState));
        assert!(v.bind().is_err());
    }

    #[test]
    fn create_errors() {
        let bad = Aarch64VCpuCreateConfig::default().with_mpidr_el1(1 << 31);
        assert_eq!(
            AxVCpu::new(0, 0, bad).err(),
            Some(VmBackendError::InvalidInput)
        );
    }

    #[test]
    fn per_cpu_state_through_the_traits() {
        // Slots are global: this test uses CPU numbers no other test uses.
        let p = AxPerCpu::new(40).unwrap();
        assert_eq!(AxPerCpu::new(40).err(), Some(VmBackendError::ResourceBusy));
        assert_eq!(
            AxPerCpu::new(registry::MAX_CPUS).err(),
            Some(VmBackendError::InvalidInput)
        );
        assert!(!p.is_enabled());
        assert_eq!(p.with_state(|s| s.cpu_id()), Ok(40));
        assert_eq!(p.timer_frequency_hz(), None);
        // No EL2 on the build host: refused, and nothing registered for bind to find.
        let mut p = p;
        assert_eq!(p.hardware_enable(), Err(VmBackendError::Unsupported));
        assert!(!p.is_enabled());
        assert_eq!(REGISTRY.slot(40).and_then(|s| s.affinity()), None);
        assert_eq!(p.hardware_disable(), Err(VmBackendError::InvalidState));
        // Dropping a disabled state frees its slot.
        drop(p);
        let again = AxPerCpu::new(40).unwrap();
        assert_eq!(again.cpu_id(), 40);
    }

    #[test]
    fn address_sizes() {
        // ID_AA64MMFR0_EL1.PARange: 0 32, 1 36, 2 40, 3 42, 4 44, 5 48, 6 52 bits.
        let rows = [
            (0, 32, 3),
            (1, 36, 3),
            (2, 39, 3),
            (3, 39, 3),
            (4, 44, 4),
            (5, 48, 4),
            (6, 48, 4),
        ];
        for (pa_range, bits, levels) in rows {
            assert_eq!(guest_ipa_bits(pa_range), bits, "PARange {pa_range}");
            assert_eq!(stage2_levels(bits), levels, "{bits} bits");
            // What the adapter reports is what the crate then accepts.
            let root = 4 - levels as u8;
            assert!(
                Stage2Config::new(0, 1, bits as u8, root)
                    .registers(pa_range, true)
                    .is_ok(),
                "PARange {pa_range}"
            );
        }
        assert_eq!(guest_ipa_bits(7), 32, "reserved PARange");
    }

    #[test]
    fn address_size_before_enable() {
        let p = AxPerCpu::new(41).unwrap();
        // Nothing probed yet: PARange 0 (32 bits), so 3 levels.
        assert_eq!(p.guest_phys_addr_bits(), 32);
        assert_eq!(p.max_guest_page_table_levels(), 3);
    }
}
