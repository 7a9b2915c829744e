//! `bench-sysreg`, `bench-psci` and `bench-cpacr`: round trips the crate answers
//! without returning to the host (an ID register read, PSCI_VERSION, a CPACR_EL1
//! write under CPTR_EL2.TCPAC). The guest checks every answer;
//! the host only checks that none of those exits reached it.

use alloc::boxed::Box;
use arm_vcpu::VmExit;

use super::{Scenario, VmInfo};

pub fn by_name(name: &str) -> Option<Box<dyn Scenario>> {
    match name {
        "bench-sysreg" | "bench-psci" | "bench-cpacr" => Some(Box::new(InCrate::default())),
        "bench-switch" => Some(Box::new(Switching {
            vcpus: 2,
            pmu: false,
        })),
        "bench-yield" | "bench-fp" | "bench-debug" => Some(Box::new(Switching {
            vcpus: 1,
            pmu: false,
        })),
        // [pmu] The same with a virtual PMU (`bench-switch-pmu`: both vCPUs counting).
        "bench-switch-pmu" => Some(Box::new(Switching {
            vcpus: 2,
            pmu: true,
        })),
        "bench-pmu" => Some(Box::new(Switching {
            vcpus: 1,
            pmu: true,
        })),
        "bench-virq" => Some(Box::new(Virq::default())),
        _ => None,
    }
}

/// `bench-switch` (two vCPUs of one VM ping-pong through YIELD: every YIELD is an
/// unbind of one and a bind of the other), `bench-yield` (one vCPU: unbind and bind of
/// the same vCPU), `bench-debug` (the same, then the first debug register access after
/// the bind traps and the crate switches the debug state) and `bench-fp` (the same, then the first FP/SIMD instruction after
/// the bind traps and the crate loads the FP/SIMD state). vCPUs switch on YIELD in
/// the VM loop; the host side only sizes the VM.
struct Switching {
    vcpus: usize,
    /// The VM has a virtual PMU (`bench-pmu`, `bench-switch-pmu`).
    pmu: bool,
}

impl Scenario for Switching {
    fn vcpus(&self) -> usize {
        self.vcpus
    }

    fn setup_config(&self) -> arm_vcpu::Aarch64VCpuSetupConfig {
        let s = arm_vcpu::Aarch64VCpuSetupConfig::default();
        if self.pmu {
            s.with_pmu(arm_vcpu::pmu::PmuConfig::V3 { counters: None })
        } else {
            s
        }
    }
}

/// `bench-virq`: each TEST_CALL(0x91) makes the host inject vINTID 40
/// (`inject_interrupt` on the calling vCPU, from the TEST_CALL's handling); the guest
/// takes it at its IRQ vector, acknowledges and ends it, and counts it.
struct Virq {
    /// What each call injects.
    vi: arm_vcpu::VirtualInterrupt,
    injected: u64,
}

impl Default for Virq {
    fn default() -> Self {
        Self {
            vi: arm_vcpu::VirtualInterrupt::new(40).with_priority(0xa0),
            injected: 0,
        }
    }
}

impl Scenario for Virq {
    fn test_call(
        &mut self,
        _cpu: usize,
        args: &[u64; 7],
        vm: &mut VmInfo,
    ) -> Result<u64, &'static str> {
        match args[1] {
            // x0: the interrupts injected before this one.
            0x91 => {
                vm.vcpu
                    .inject_interrupt(self.vi)
                    .map_err(|_| "inject_interrupt")?;
                self.injected += 1;
                Ok(self.injected - 1)
            }
            // The guest's final count of interrupts it took.
            0x92 if args[2] == self.injected => Ok(0),
            0x92 => Err("the guest took a different number of interrupts than were injected"),
            _ => Err("unexpected TEST_CALL"),
        }
    }
}

/// A benchmark of exits the crate answers itself.
#[derive(Default)]
struct InCrate {
    /// Exits of the benchmarked kinds that reached the host anyway.
    leaked: u64,
}

impl Scenario for InCrate {
    fn observes(&self) -> bool {
        true
    }

    fn observe(&mut self, exit: &VmExit) {
        if matches!(
            exit,
            VmExit::SysRegRead { .. } | VmExit::SysRegWrite { .. } | VmExit::Psci { .. }
        ) {
            self.leaked += 1;
        }
    }

    fn finish(&mut self, guest_failures: u64, _vm: &VmInfo) -> Result<(), &'static str> {
        if guest_failures != 0 {
            return Err("guest checks failed");
        }
        if self.leaked != 0 {
            return Err("the crate handed an ID register read or a PSCI call to the host");
        }
        Ok(())
    }
}
