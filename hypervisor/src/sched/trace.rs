//! The exit recorder (`trace=1`): every exit the host handles, with the counter time
//! it happened and how long the host took before the vCPU ran again, kept in a ring
//! per core and printed at the end of the run in the format `cargo xtask trace`
//! renders (xtask/src/trace.rs):
//!
//! ```text
//! ARM_VCPU_TRACE begin freq=<counter Hz>
//! X <core> <vm> <vcpu> <kind> <exit time, counter ticks> <host ticks until re-entry>
//! P <time, counter ticks> <phase label ...>
//! ARM_VCPU_TRACE end dropped=<records lost to full ring buffers>
//! ```
//!
//! A full ring keeps its first records (the boot) and counts the rest as dropped.

use alloc::string::String;
use alloc::vec::Vec;

use arm_vcpu::VmExit;

/// Records each core keeps.
pub const CAPACITY: usize = 48 * 1024;

/// Exit kinds, as the records name them.
pub const KINDS: [&str; 12] = [
    "hvc",
    "psci",
    "mmio_read",
    "mmio_write",
    "sysreg",
    "abort",
    "wfi",
    "wfe",
    "irq",
    "sgi",
    "other",
    "error",
];

/// The kind of an exit (an index into [`KINDS`]).
pub fn kind(r: &arm_vcpu::VCpuResult<VmExit>) -> u8 {
    match r {
        Ok(VmExit::Hypercall { .. }) | Ok(VmExit::SecureMonitorCall { .. }) => 0,
        Ok(VmExit::Psci { .. }) => 1,
        Ok(VmExit::MmioRead { .. }) => 2,
        Ok(VmExit::MmioWrite { .. }) => 3,
        Ok(VmExit::SysRegRead { .. }) | Ok(VmExit::SysRegWrite { .. }) => 4,
        Ok(VmExit::DataAbort { .. }) | Ok(VmExit::InstructionAbort { .. }) => 5,
        Ok(VmExit::WaitForInterrupt) => 6,
        Ok(VmExit::WaitForEvent) => 7,
        Ok(VmExit::ExternalInterrupt { .. }) => 8,
        Ok(VmExit::SendSgi { .. }) => 9,
        Ok(_) => 10,
        Err(_) => 11,
    }
}

#[derive(Clone, Copy)]
struct Record {
    vm: u16,
    vcpu: u16,
    kind: u8,
    at: u64,
    host: u64,
}

/// One core's records.
pub struct Ring {
    records: Vec<Record>,
    phases: Vec<(u64, String)>,
    dropped: u64,
}

impl Ring {
    pub fn new(on: bool) -> Self {
        Self {
            records: if on {
                Vec::with_capacity(CAPACITY)
            } else {
                Vec::new()
            },
            phases: Vec::new(),
            dropped: 0,
        }
    }

    pub fn push(&mut self, vm: usize, vcpu: usize, kind: u8, at: u64, host: u64) {
        if self.records.len() < CAPACITY {
            self.records.push(Record {
                vm: vm as u16,
                vcpu: vcpu as u16,
                kind,
                at,
                host,
            });
        } else {
            self.dropped += 1;
        }
    }

    pub fn phase(&mut self, at: u64, label: String) {
        self.phases.push((at, label));
    }
}

/// Prints every core's records.
pub fn print(rings: &[&Ring], freq: u64) {
    crate::println!("ARM_VCPU_TRACE begin freq={}", freq);
    let mut dropped = 0;
    for (core, r) in rings.iter().enumerate() {
        for p in &r.phases {
            crate::println!("P {} {}", p.0, p.1);
        }
        for x in &r.records {
            crate::println!(
                "X {} {} {} {} {} {}",
                core,
                x.vm,
                x.vcpu,
                KINDS.get(x.kind as usize).copied().unwrap_or("other"),
                x.at,
                x.host
            );
        }
        dropped += r.dropped;
    }
    crate::println!("ARM_VCPU_TRACE end dropped={}", dropped);
}
