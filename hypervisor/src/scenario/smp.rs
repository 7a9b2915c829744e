//! `smp` (2 vCPUs on 2 physical cores): vCPU 0 starts vCPU 1 with PSCI CPU_ON and the
//! scheduler places it on core 1 (pinned); the guest checks that both run at once.
//! The host checks, at EXIT, that vCPU 1 ran on physical core 1 and only there.

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::{Scenario, VmInfo};

pub fn by_name(name: &str) -> Option<Box<dyn Scenario>> {
    match name {
        "smp" => Some(Box::new(Smp)),
        _ => None,
    }
}

struct Smp;

impl Scenario for Smp {
    fn vcpus(&self) -> usize {
        2
    }

    fn cores(&self) -> Vec<usize> {
        alloc::vec![0, 1]
    }

    fn finish(&mut self, guest_failures: u64, vm: &VmInfo) -> Result<(), &'static str> {
        crate::println!(
            "smp: vCPU 0 ran on cores {:#b}, vCPU 1 on {:#b} (bit masks)",
            vm.ran_on(0),
            vm.ran_on(1)
        );
        if guest_failures != 0 {
            return Err("guest checks failed");
        }
        if vm.ran_on(1) != 1 << 1 {
            return Err("vCPU 1 did not run on physical core 1");
        }
        Ok(())
    }
}
