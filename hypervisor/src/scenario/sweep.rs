//! The register sweeps (docs/test-protocol.md, "sweep"): `sweep` is one VM running
//! every MRS/MSR encoding (op0 2 and 3) at EL1 against the register inventory;
//! `sweep-isolation` is two such VMs (instances 0 and 1) time-sliced on core 0 (about
//! 1 ms slices) that then hold VM-specific patterns in every register the sweep found
//! writable, and a virtual SError each, across `iters` VM switches.
//!
//! TEST_CALLs: 0x81 the VM switches so far; 0x82 the host core's features (as
//! `arm_vcpu::sysreg::Feature` numbers them: what the sweep's expectations depend
//! on); 0x83 (`sweep-isolation`) a virtual SError with syndrome x2 for the caller,
//! pending while it masks SErrors; 0x84 (`sweep-isolation`) a rendezvous: the VM
//! reached phase x2, answered 1 once every VM has.

use alloc::boxed::Box;
use core::sync::atomic::{AtomicU64, Ordering};

use super::{Scenario, VmInfo};

pub fn by_name(name: &str, iters: u64, instance: usize) -> Option<Box<dyn Scenario>> {
    let pair = match name {
        "sweep" => false,
        "sweep-isolation" => true,
        _ => return None,
    };
    let host = super::boot_core_features().has;
    if instance == 0 {
        log::info!("host features (arm_vcpu::sysreg::Feature):");
        for f in arm_vcpu::sysreg::FEATURES {
            if host.has(f) {
                log::info!("  {} ({})", f.name(), f.condition());
            }
        }
    }
    let role = instance.min(PHASES.len() - 1);
    Some(Box::new(Sweep {
        iters,
        pair,
        role,
        entry: [(2, role as u64)],
        host: host.0,
    }))
}

/// `sweep-isolation` runs two VMs.
pub fn vm_count(name: &str) -> Option<usize> {
    (name == "sweep-isolation").then_some(PHASES.len())
}

/// The phase each VM of `sweep-isolation` has reached (TEST_CALL 0x84), by instance.
static PHASES: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

struct Sweep {
    iters: u64,
    /// `sweep-isolation`.
    pair: bool,
    role: usize,
    entry: [(usize, u64); 1],
    /// `CpuFeatures::has` of the boot core (QEMU's cores are alike).
    host: u64,
}

impl Scenario for Sweep {
    fn entry_regs(&self) -> &[(usize, u64)] {
        &self.entry
    }

    /// [pmu] `sweep-isolation`'s VMs have a virtual PMU (all the counters the host
    /// leaves): its registers are swept and patterned too; `sweep` keeps the default
    /// (hidden: every PMU register UNDEFINED).
    fn setup_config(&self) -> arm_vcpu::Aarch64VCpuSetupConfig {
        let s = arm_vcpu::Aarch64VCpuSetupConfig::default();
        if self.pair {
            s.with_pmu(arm_vcpu::pmu::PmuConfig::V3 { counters: None })
        } else {
            s
        }
    }

    fn slice_us(&self) -> u64 {
        if self.pair {
            1000
        } else {
            0
        }
    }

    fn ram(&self) -> u64 {
        128 << 20
    }

    fn test_call(
        &mut self,
        _cpu: usize,
        a: &[u64; 7],
        vm: &mut VmInfo,
    ) -> Result<u64, &'static str> {
        match a[1] {
            0x81 => Ok(vm.vm_switches()),
            0x82 => Ok(self.host),
            0x83 if self.pair => {
                // A virtual SError with syndrome x2, pending when the guest is back.
                vm.vcpu.inject_serror(a[2]).map_err(|_| "inject_serror")?;
                Ok(0)
            }
            0x84 if self.pair => {
                let phase = a[2];
                PHASES[self.role].fetch_max(phase, Ordering::AcqRel);
                let all = PHASES.iter().all(|p| p.load(Ordering::Acquire) >= phase);
                Ok(u64::from(all))
            }
            _ => Err("sweep: unknown TEST_CALL"),
        }
    }

    fn finish(&mut self, guest_failures: u64, vm: &VmInfo) -> Result<(), &'static str> {
        crate::println!(
            "{}: {} failed checks after {} VM switches",
            if self.pair {
                "sweep-isolation"
            } else {
                "sweep"
            },
            guest_failures,
            vm.vm_switches()
        );
        if guest_failures != 0 {
            return Err(if self.pair {
                "a VM found state that is not its own"
            } else {
                "the sweep found registers that disagree with the inventory"
            });
        }
        if self.pair && vm.vm_switches() < self.iters {
            return Err("fewer VM switches than requested");
        }
        Ok(())
    }
}
