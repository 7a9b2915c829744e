//! Host-side halves of the scenario tests (docs/test-protocol.md). A scenario chooses
//! the VM's shape and vCPU setup, answers TEST_CALLs and what the crate hands to the
//! host, and decides — with the guest's own verdict — whether the run passed.
//!
//! To add one: write a type implementing [`Scenario`] in its own file here and add
//! it to [`by_name`].

use arm_vcpu::{Aarch64VCpuSetupConfig, Conduit, PsciRequest, SysRegAddr, VmExit};

use crate::devices::WidthCounts;

mod aarch32;
mod basic;
mod bench;
mod classes;
pub mod debug;
mod hostile;
mod inject;
mod psci;
mod spectre;

/// What the VM tells a scenario about itself when it asks.
#[derive(Clone, Copy, Debug)]
pub struct VmInfo<'a> {
    /// Test-device reads and writes by width.
    pub dev_reads: WidthCounts,
    /// Test-device writes by width.
    pub dev_writes: WidthCounts,
    /// External-interrupt exits so far.
    pub irqs: u64,
    /// The calling vCPU (a reference, so the exit path copies nothing a scenario
    /// might want: e.g. `spectre` reads its SMCCC_ARCH_WORKAROUND_* decision).
    pub vcpu: &'a arm_vcpu::Aarch64VCpu,
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

    /// Whether the host arms its EL2 timer (external-interrupt exits).
    fn wants_timer_irqs(&self) -> bool {
        false
    }

    /// TEST_CALL(x1..x6) from vCPU `cpu`; the result goes to x0.
    fn test_call(
        &mut self,
        _cpu: usize,
        _args: &[u64; 7],
        _vm: &VmInfo,
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

    /// Called for every exit the VM loop sees (after it handled it), for scenarios that
    /// count exits by class.
    fn observe(&mut self, _exit: &VmExit) {}

    /// A PSCI request from vCPU `cpu` the crate handed to the host, before the host
    /// carries it out (and before `system_off`/`system_reset`).
    fn psci_request(&mut self, _cpu: usize, _request: &PsciRequest, _conduit: Conduit) {}

    /// After each TEST_CALL from vCPU `cpu`: `Some(esr)` makes the host raise a virtual
    /// SError on that vCPU (`inject_serror(esr)`).
    fn serror_after_test_call(&mut self, _cpu: usize) -> Option<u64> {
        None
    }

    /// After each TEST_CALL from vCPU `cpu`: `Some(vi)` makes the host inject virtual
    /// interrupt `vi` into that vCPU (`inject_interrupt`).
    fn irq_after_test_call(&mut self, _cpu: usize) -> Option<arm_vcpu::VirtualInterrupt> {
        None
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
    fn system_off(&mut self) -> Result<(), &'static str> {
        Err("unexpected PSCI SYSTEM_OFF")
    }

    /// PSCI SYSTEM_RESET: `Ok(true)` restarts the VM, `Ok(false)` ends it as passed.
    fn system_reset(&mut self) -> Result<bool, &'static str> {
        Err("unexpected PSCI SYSTEM_RESET")
    }
}

/// The scenario called `name`, for `iters` iterations and PRNG `seed`.
pub fn by_name(name: &str, iters: u64, seed: u64) -> Option<alloc::boxed::Box<dyn Scenario>> {
    basic::by_name(name, iters)
        .or_else(|| classes::by_name(name))
        .or_else(|| hostile::by_name(name, iters, seed))
        .or_else(|| psci::by_name(name))
        .or_else(|| inject::by_name(name))
        .or_else(|| bench::by_name(name))
        .or_else(|| spectre::by_name(name))
        .or_else(|| aarch32::by_name(name))
        .or_else(|| debug::by_name(name))
}
