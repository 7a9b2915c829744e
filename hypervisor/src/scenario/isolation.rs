//! `isolation`: two VMs (instances 0 and 1: separate RAM, stage-2 tables and VMIDs,
//! the same guest image) time-sliced on core 0 by the scheduler's EL2 timer (about
//! 1 ms slices). Each guest fills its registers and EL1 state with a pattern of its
//! role (x2 = instance) and checks it after every switch; TEST_CALL(0x81) answers how
//! many VM switches the cores have made. Each VM passes when its guest found nothing
//! changed and at least `iters` switches happened while it ran.
//!
//! `debug-isolation` is the same pair of VMs with the `debug-isolation` guest (each
//! VM's own breakpoints and watchpoints) and the host's own debug registers checked
//! after every unbind (`debug::HostDebug`).

use alloc::boxed::Box;

use arm_vcpu::VirtualInterrupt;

use super::debug::HostDebug;
use super::{Scenario, VmInfo};

pub fn by_name(name: &str, iters: u64, instance: usize) -> Option<Box<dyn Scenario>> {
    match name {
        "isolation" => Some(Box::new(Isolation::new(iters, instance.min(1), None))),
        "debug-isolation" => Some(Box::new(Isolation::new(
            iters,
            instance.min(1),
            Some(HostDebug::plant()),
        ))),
        _ => None,
    }
}

/// Both roles.
pub fn vm_count(name: &str) -> Option<usize> {
    matches!(name, "isolation" | "debug-isolation").then_some(2)
}

/// The interrupts each VM finds pending at its first entry: (INTID, priority).
const INITIAL_IRQS: [[(u32, u8); 2]; 2] = [[(40, 0xa0), (50, 0x80)], [(41, 0xb0), (51, 0x90)]];

struct Isolation {
    iters: u64,
    entry: [(usize, u64); 1],
    irqs: [VirtualInterrupt; 2],
    /// `debug-isolation`: the host's debug state, checked after every unbind.
    host: Option<HostDebug>,
    unbinds: u64,
}

impl Isolation {
    fn new(iters: u64, role: usize, host: Option<HostDebug>) -> Self {
        let vi =
            |(intid, priority): (u32, u8)| VirtualInterrupt::new(intid).with_priority(priority);
        Self {
            iters,
            entry: [(2, role as u64)],
            irqs: [vi(INITIAL_IRQS[role][0]), vi(INITIAL_IRQS[role][1])],
            host,
            unbinds: 0,
        }
    }
}

impl Scenario for Isolation {
    fn entry_regs(&self) -> &[(usize, u64)] {
        &self.entry
    }

    fn slice_us(&self) -> u64 {
        1000
    }

    fn ram(&self) -> u64 {
        128 << 20
    }

    fn initial_irqs(&self) -> &[VirtualInterrupt] {
        &self.irqs
    }

    fn test_call(
        &mut self,
        _cpu: usize,
        a: &[u64; 7],
        vm: &mut VmInfo,
    ) -> Result<u64, &'static str> {
        match a[1] {
            0x81 => Ok(vm.vm_switches()),
            _ => Err("isolation: unknown TEST_CALL"),
        }
    }

    fn checks_after_unbind(&self) -> bool {
        self.host.is_some()
    }

    fn after_unbind(&mut self) -> Result<(), &'static str> {
        self.unbinds += 1;
        self.host.as_ref().map_or(Ok(()), |h| h.check())
    }

    fn finish(&mut self, guest_failures: u64, vm: &VmInfo) -> Result<(), &'static str> {
        if self.host.is_some() {
            crate::println!(
                "debug-isolation: host debug state checked after {} unbinds",
                self.unbinds
            );
        }
        crate::println!(
            "isolation: {} failed checks after {} VM switches",
            guest_failures,
            vm.vm_switches()
        );
        if guest_failures != 0 {
            return Err("a VM found state that is not its own");
        }
        if vm.vm_switches() < self.iters {
            return Err("fewer VM switches than requested");
        }
        Ok(())
    }
}
