//! `sysoff` (4 vCPUs, cores 0 and 1, 1 ms slices): vCPU 0 starts vCPUs 1..3 one after
//! the other; the last one started (vCPU 3) calls PSCI SYSTEM_OFF while the others
//! spin. The host checks the SYSTEM_OFF came from vCPU 3 and that every vCPU ran; the
//! VM (and the run) must end there, with the other vCPUs stopped on whatever core
//! they were on.

use alloc::boxed::Box;
use alloc::vec::Vec;

use arm_vcpu::{Conduit, PsciRequest};

use super::{Scenario, VmInfo};

pub fn by_name(name: &str) -> Option<Box<dyn Scenario>> {
    match name {
        "sysoff" => Some(Box::new(SysOff { from: None })),
        _ => None,
    }
}

const VCPUS: usize = 4;

struct SysOff {
    /// The vCPU that asked for SYSTEM_OFF.
    from: Option<usize>,
}

impl Scenario for SysOff {
    fn vcpus(&self) -> usize {
        VCPUS
    }

    fn cores(&self) -> Vec<usize> {
        alloc::vec![0, 1]
    }

    fn slice_us(&self) -> u64 {
        // Two spinning vCPUs per core: time slices, or the second never runs.
        1000
    }

    fn psci_request(&mut self, cpu: usize, request: &PsciRequest, _conduit: Conduit) {
        if *request == PsciRequest::SystemOff {
            self.from.get_or_insert(cpu);
        }
    }

    fn system_off(&mut self, vm: &VmInfo) -> Result<(), &'static str> {
        let ran: Vec<u64> = (0..VCPUS).map(|i| vm.ran_on(i)).collect();
        crate::println!(
            "sysoff: SYSTEM_OFF from vCPU {:?}; cores each vCPU ran on (bit masks) {:?}",
            self.from,
            ran
        );
        if self.from != Some(VCPUS - 1) {
            return Err("SYSTEM_OFF did not come from the last-started vCPU");
        }
        if ran.contains(&0) {
            return Err("a vCPU never ran before SYSTEM_OFF");
        }
        if ran.iter().fold(0, |a, m| a | m) != 0b11 {
            return Err("the vCPUs did not run on both cores");
        }
        Ok(())
    }

    fn finish(&mut self, _guest_failures: u64, _vm: &VmInfo) -> Result<(), &'static str> {
        Err("sysoff: the guest ended with EXIT instead of SYSTEM_OFF")
    }
}
