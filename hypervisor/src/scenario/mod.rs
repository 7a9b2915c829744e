//! Host-side halves of the scenario tests (docs/test-protocol.md). A scenario chooses
//! the VM's shape and vCPU setup, answers TEST_CALLs and what the crate hands to the
//! host, and decides — with the guest's own verdict — whether the run passed.
//!
//! To add one: write a type implementing [`Scenario`] in its own file here and add
//! it to [`by_name`].

use alloc::vec::Vec;

use arm_vcpu::{
    Aarch64VCpuSetupConfig, Conduit, PsciRequest, SysRegAddr, VirtualInterrupt, VmExit,
};

use crate::devices::WidthCounts;

mod basic;
mod bench;
mod classes;
pub mod debug;
mod hostile;
mod inject;
mod isolation;
mod pmu;
mod psci;
mod smp;
mod snapshot;
mod spectre;
mod stage2;
mod sweep;
mod sysoff;

/// What the VM tells a scenario about itself when it asks (read when asked: a
/// TEST_CALL answered on the exit path pays only for what its scenario reads), and
/// the calling vCPU.
pub struct VmInfo<'a> {
    pub(crate) sched: &'a crate::sched::VmSched,
    /// The calling vCPU, bound to the core handling its exit: a scenario reads it
    /// (`spectre`: its SMCCC_ARCH_WORKAROUND_* decision) and, in
    /// [`Scenario::test_call`], acts on it as the guest asked — `inject_interrupt`,
    /// `inject_serror` — through the crate's API, as a VMM's device model would.
    pub vcpu: &'a mut arm_vcpu::Aarch64VCpu,
}

impl VmInfo<'_> {
    /// Test-device reads by width.
    pub fn dev_reads(&self) -> WidthCounts {
        let counts = self.sched.vcpus.iter().map(|v| v.stats.testdev_reads.get());
        counts.fold(WidthCounts::default(), WidthCounts::plus)
    }

    /// Test-device writes by width.
    pub fn dev_writes(&self) -> WidthCounts {
        let counts = self
            .sched
            .vcpus
            .iter()
            .map(|v| v.stats.testdev_writes.get());
        counts.fold(WidthCounts::default(), WidthCounts::plus)
    }

    /// External-interrupt exits of the VM's vCPUs so far.
    pub fn irqs(&self) -> u64 {
        self.sched.irq_exits()
    }

    /// Switches between vCPUs of different VMs on the cores so far.
    pub fn vm_switches(&self) -> u64 {
        crate::sched::vm_switches()
    }

    /// The cores (a bit each) vCPU `i` has run on.
    pub fn ran_on(&self, i: usize) -> u64 {
        self.sched.ran_on(i)
    }
}

/// The boot core's features (its per-CPU state enabled for a moment, before the
/// scheduler enables it for good), for scenarios whose checks depend on them.
pub fn boot_core_features() -> arm_vcpu::CpuFeatures {
    let mut p = crate::platform::firmware::percpu(0);
    let enabled = p.hardware_enable().is_ok();
    let f = *p.features();
    if enabled {
        let _ = p.hardware_disable();
    }
    f
}

/// A vCPU to move ([`Scenario::migrate`]): its snapshot in the byte format, restored
/// into a new vCPU of the VM created with `cntvoff_el2`, which runs on `core`.
pub struct Migration {
    pub bytes: Vec<u8>,
    pub cntvoff_el2: u64,
    pub core: usize,
}

/// What to do with a stage-2 abort the VM has nothing mapped for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbortPolicy {
    /// Inject a synchronous external abort into the guest (what hardware would do for
    /// an access to nothing).
    Inject,
    /// End the run as a failure.
    Fail,
}

/// The host side of one scenario.
pub trait Scenario {
    /// Number of vCPUs in the VM (vCPU `i` has MPIDR affinity `i`).
    fn vcpus(&self) -> usize {
        1
    }

    /// Setup of every vCPU.
    fn setup_config(&self) -> Aarch64VCpuSetupConfig {
        Aarch64VCpuSetupConfig::default()
    }

    /// Extra registers for the boot vCPU at entry (x1 is always `iters`).
    fn entry_regs(&self) -> &[(usize, u64)] {
        &[]
    }

    /// Period (microseconds) of a host tick the VM's core takes while the VM runs
    /// (its EL2 timer, as external-interrupt exits); `None`: none.
    fn host_tick_us(&self) -> Option<u64> {
        None
    }

    /// Physical cores the vCPUs run on, vCPU i pinned to the i-th (default: core 0,
    /// all of them time-sharing it).
    fn cores(&self) -> Vec<usize> {
        alloc::vec![0]
    }

    /// Time slice in microseconds when several vCPUs share a core (0: they switch
    /// only when one yields, blocks or powers off).
    fn slice_us(&self) -> u64 {
        0
    }

    /// RAM of the VM.
    fn ram(&self) -> u64 {
        256 << 20
    }

    /// Virtual interrupts pending in vCPU 0 before its first entry.
    fn initial_irqs(&self) -> &[VirtualInterrupt] {
        &[]
    }

    /// TEST_CALL(x1..x6) from vCPU `cpu` on physical core `core`, for calls that work
    /// on the calling vCPU itself (inject, `get_reg`/`set_reg` while bound): `None`
    /// hands the call to [`Scenario::test_call`]. Only if [`Scenario::migrates`].
    fn vcpu_test_call(
        &mut self,
        _cpu: usize,
        _core: usize,
        _args: &[u64; 7],
        _vcpu: &mut arm_vcpu::Aarch64VCpu,
    ) -> Option<Result<u64, &'static str>> {
        None
    }

    /// Whether the scenario may hold device reads and move vCPUs
    /// ([`Scenario::vcpu_test_call`], [`Scenario::hold_read`], [`Scenario::migrate`]:
    /// a lock per device read and per unbind).
    fn migrates(&self) -> bool {
        false
    }

    /// A device read of vCPU `cpu` at `addr`, before the device answers: `true`
    /// leaves it pending and stops the vCPU (it yields). The host completes it from
    /// the device when the vCPU is next bound, on whatever core (the VMM's record of
    /// the exit, as KVM's `kvm_run.mmio`).
    fn hold_read(&mut self, _cpu: usize, _addr: u64) -> bool {
        false
    }

    /// After an unbind of vCPU `cpu` on core `core` (the host's state back), with
    /// the device read it holds (`held_read`): `Some(m)` destroys the vCPU and
    /// replaces it by one restored from `m.bytes` on `m.core`. `vm` makes probe
    /// vCPUs, `percpu` is the core's. An error ends the VM with it.
    fn migrate(
        &mut self,
        _cpu: usize,
        _core: usize,
        _vcpu: &arm_vcpu::Aarch64VCpu,
        _held_read: Option<u64>,
        _vm: &crate::vm::Vm,
        _percpu: &mut arm_vcpu::Aarch64PerCpu,
    ) -> Result<Option<Migration>, &'static str> {
        Ok(None)
    }

    /// A vCPU restored by a [`Migration`], before its first bind: an error ends the
    /// VM with it.
    fn restored(&mut self, _cpu: usize, _vcpu: &arm_vcpu::Aarch64VCpu) -> Result<(), &'static str> {
        Ok(())
    }

    /// TEST_CALL(x1..x6) from vCPU `cpu`; the result goes to x0. What the call
    /// asks of the vCPU (a virtual interrupt, a virtual SError) the scenario does
    /// itself, on `vm.vcpu`: one call per TEST_CALL, nothing asked afterwards.
    fn test_call(
        &mut self,
        _cpu: usize,
        _args: &[u64; 7],
        _vm: &mut VmInfo,
    ) -> Result<u64, &'static str> {
        Err("unexpected TEST_CALL")
    }

    /// A trapped system-register read the crate handed to the host (ID registers with
    /// `IdRegisterPolicy::ExitToHost`, or any with `TrapPolicy::ExitToHost`). `None`
    /// makes the guest take an UNDEFINED exception.
    fn sysreg_read(&mut self, _reg: SysRegAddr) -> Option<u64> {
        None
    }

    /// A stage-2 data or instruction abort that no device serves.
    fn abort_policy(&self) -> AbortPolicy {
        AbortPolicy::Fail
    }

    /// Called for every exit the host handles (after it handled it; not the null
    /// hypercall the exit loop answers inline), for scenarios that count exits by
    /// class. Only if [`Scenario::observes`].
    fn observe(&mut self, _exit: &VmExit) {}

    /// Whether the scenario wants [`Scenario::observe`] (it costs a lock per exit).
    fn observes(&self) -> bool {
        false
    }

    /// A PSCI request from vCPU `cpu` the crate handed to the host, before the host
    /// carries it out (and before `system_off`/`system_reset`).
    fn psci_request(&mut self, _cpu: usize, _request: &PsciRequest, _conduit: Conduit) {}

    /// The VM's stage-2 configuration when it is not the usual one (one level-1 root
    /// table, 39-bit IPA, VMID = the VM's index + 1): given the root table of its RAM,
    /// the configuration to give its vCPUs (it may build another root around it).
    fn stage2(&self, _ram_root: u64) -> Option<Result<arm_vcpu::Stage2Config, &'static str>> {
        None
    }

    /// `bind()` refused the VM's vCPU with `e`: the VM ends with the verdict
    /// returned (by default a failure).
    fn bind_refused(&mut self, e: &arm_vcpu::VCpuError) -> Result<(), &'static str> {
        crate::println!("bind() refused a vCPU: {}", e);
        Err("bind failed")
    }

    /// After the first bind of vCPU 0 succeeded: an error ends the VM with it.
    fn first_bind(&mut self) -> Result<(), &'static str> {
        Ok(())
    }

    /// Whether [`after_unbind`](Self::after_unbind) is to be called.
    fn checks_after_unbind(&self) -> bool {
        false
    }

    /// After every unbind of one of the VM's vCPUs (the host's own state is back), if
    /// [`checks_after_unbind`](Self::checks_after_unbind): an error ends the run with it.
    fn after_unbind(&mut self) -> Result<(), &'static str> {
        Ok(())
    }

    /// EXIT(status) from the guest: the run ends with this verdict.
    fn finish(&mut self, guest_failures: u64, _vm: &VmInfo) -> Result<(), &'static str> {
        if guest_failures != 0 {
            return Err("guest checks failed");
        }
        Ok(())
    }

    /// PSCI SYSTEM_OFF: by default a failure (test guests end with EXIT).
    fn system_off(&mut self, _vm: &VmInfo) -> Result<(), &'static str> {
        Err("unexpected PSCI SYSTEM_OFF")
    }

    /// PSCI SYSTEM_RESET: `Ok(true)` restarts the VM, `Ok(false)` ends it as passed.
    fn system_reset(&mut self) -> Result<bool, &'static str> {
        Err("unexpected PSCI SYSTEM_RESET")
    }
}

/// The scenario called `name`, for `iters` iterations and PRNG `seed`; `instance`:
/// which of the scenario's VMs ([`vm_count`]).
pub fn by_name(
    name: &str,
    iters: u64,
    seed: u64,
    instance: usize,
) -> Option<alloc::boxed::Box<dyn Scenario>> {
    let name = base_name(name);
    basic::by_name(name, iters)
        .or_else(|| classes::by_name(name))
        .or_else(|| hostile::by_name(name, iters, seed))
        .or_else(|| psci::by_name(name))
        .or_else(|| inject::by_name(name))
        .or_else(|| bench::by_name(name))
        .or_else(|| spectre::by_name(name))
        .or_else(|| debug::by_name(name, instance))
        .or_else(|| smp::by_name(name))
        .or_else(|| sysoff::by_name(name))
        .or_else(|| stage2::by_name(name, instance))
        .or_else(|| isolation::by_name(name, iters, instance))
        .or_else(|| pmu::by_name(name, iters, instance))
        .or_else(|| sweep::by_name(name, iters, instance))
        .or_else(|| snapshot::by_name(name, iters))
}

/// The scenario a row runs: a board variant (`irq-gicv2`, the same scenario on a
/// GICv2 board: xtask's SCENARIOS) runs the scenario without the suffix; the run's
/// markers keep the row's name.
pub fn base_name(name: &str) -> &str {
    name.strip_suffix("-gicv2").unwrap_or(name)
}

/// How many VMs scenario `name` runs at once (each built with its own instance
/// number).
pub fn vm_count(name: &str) -> usize {
    let name = base_name(name);
    isolation::vm_count(name)
        .or_else(|| pmu::vm_count(name))
        .or_else(|| stage2::vm_count(name))
        .or_else(|| sweep::vm_count(name))
        .unwrap_or(1)
}
