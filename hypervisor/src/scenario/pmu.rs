//! `pmu` and `pmu-isolation`: the virtual PMUv3 (`arm_vcpu::pmu`; docs/test-protocol.md,
//! "Issue 13").
//!
//! Before the first bind the host plants values of its own in the PMU — counters 4 and
//! 5 (counter 4 enabled, its type CPU_CYCLES with NSH), the cycle counter (stopped) and
//! its filter, `PMSELR_EL0`, the interrupt enable of counter 5 — and after every unbind
//! checks they are all still there (given back by the switch where the VM has those
//! counters, untouched where they lie above its range). `pmu` (the VM has every
//! counter HPMN leaves: 6 on QEMU) answers TEST_CALL(0xE0) with the VM's counter
//! count, (0xE1) by spinning ~20 ms of counter time at
//! EL2 (returns the nanoseconds spun), (0xE2) with the unbinds so far, (0xE3) with the
//! nanoseconds it spun after the last unbind (it spins ~20 ms after each one, so the
//! vCPU stays descheduled that long).
//!
//! `pmu-isolation`: two VMs time-sliced on core 0 — role 0 with 4 event counters
//! (counters 4 and 5 stay the host's), role 1 with all — each counting its own work
//! with the cycle counter and an event counter and checking values only it wrote;
//! TEST_CALL(0x81) = VM switches so far.

use alloc::boxed::Box;
use core::arch::asm;

use arm_vcpu::pmu::PmuConfig;
use arm_vcpu::Aarch64VCpuSetupConfig;
use log::{error, info};

use super::{Scenario, VmInfo};

macro_rules! rd {
    ($name:literal) => {{
        let v: u64;
        // SAFETY: reading a PMU or EL2 register at EL2 has no memory effect.
        unsafe { asm!(concat!("mrs {}, ", $name), out(reg) v, options(nomem, nostack)) };
        v
    }};
}

macro_rules! wr {
    ($name:literal, $v:expr) => {{
        let v: u64 = $v;
        // SAFETY: no vCPU is bound while the host plants its own PMU values; nothing
        // counts (PMCR_EL0.E = 0, HPME = 0) and no interrupt can fire (no overflow).
        unsafe { asm!(concat!("msr ", $name, ", {}"), in(reg) v, options(nomem, nostack)) };
    }};
}

pub fn by_name(name: &str, iters: u64, instance: usize) -> Option<Box<dyn Scenario>> {
    match name {
        "pmu" => Some(Box::new(Pmu::new(None, 0, 0))),
        // Role 0: 4 counters (the host's 4 and 5 above its range); role 1: all.
        "pmu-isolation" => {
            let role = instance.min(1);
            let counters = if role == 0 { Some(4) } else { None };
            Some(Box::new(Pmu::new(counters, iters, role as u64)))
        }
        _ => None,
    }
}

/// Both roles of `pmu-isolation`.
pub fn vm_count(name: &str) -> Option<usize> {
    (name == "pmu-isolation").then_some(2)
}

/// The host's PMU values the vCPUs' switch must leave alone or give back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HostPmu {
    evcntr4: u64,
    evtyper4: u64,
    evcntr5: u64,
    ccntr: u64,
    ccfiltr: u64,
    selr: u64,
    cnten: u64,
    inten: u64,
    pmcr: u64,
}

impl HostPmu {
    fn read() -> Self {
        Self {
            evcntr4: rd!("S3_3_C14_C8_4"),
            evtyper4: rd!("S3_3_C14_C12_4"),
            evcntr5: rd!("S3_3_C14_C8_5"),
            ccntr: rd!("S3_3_C9_C13_0"),
            ccfiltr: rd!("S3_3_C14_C15_7"),
            selr: rd!("S3_3_C9_C12_5"),
            cnten: rd!("S3_3_C9_C12_1"),
            inten: rd!("S3_0_C9_C14_1"),
            pmcr: rd!("S3_3_C9_C12_0"),
        }
    }

    fn plant() -> Self {
        wr!("S3_3_C9_C12_0", 0); // PMCR_EL0.E = 0: nothing of the host's counts
        wr!("S3_3_C14_C8_4", 0x4444_0000);
        wr!("S3_3_C14_C12_4", 0x0800_0011); // CPU_CYCLES, NSH
        wr!("S3_3_C14_C8_5", 0x5555_0000);
        wr!("S3_3_C9_C13_0", 0x1234_5678_0000);
        wr!("S3_3_C14_C15_7", 0x0800_0000);
        wr!("S3_3_C9_C12_5", 2);
        wr!("S3_3_C9_C12_1", 1 << 4);
        wr!("S3_0_C9_C14_1", 1 << 5);
        // SAFETY: `isb` only synchronises the context.
        unsafe { asm!("isb", options(nomem, nostack)) };
        let h = Self::read();
        info!("host PMU state planted: {:x?}", h);
        h
    }

    fn check(&self) -> Result<(), &'static str> {
        let now = Self::read();
        if now == *self {
            return Ok(());
        }
        error!(
            "host PMU state after unbind: {:x?}, planted {:x?}",
            now, self
        );
        Err("the host's PMU registers changed across a vCPU")
    }
}

/// Spins at EL2 for `us` microseconds of the physical count; returns the nanoseconds.
fn spin_us(us: u64) -> u64 {
    let f = rd!("cntfrq_el0").max(1);
    let start = arm_vcpu::physical_count();
    let end = start + f * us / 1_000_000;
    while arm_vcpu::physical_count() < end {
        core::hint::spin_loop();
    }
    (arm_vcpu::physical_count() - start) * 1_000_000_000 / f
}

struct Pmu {
    host: HostPmu,
    /// The VM's event counters (`None`: all the host's HPMN leaves).
    counters: Option<u8>,
    hpmn: u64,
    unbinds: u64,
    spun_after_unbind: u64,
    /// `pmu-isolation`: VM switches to survive (0: `pmu`).
    iters: u64,
    entry: [(usize, u64); 1],
}

impl Pmu {
    fn new(counters: Option<u8>, iters: u64, role: u64) -> Self {
        Self {
            host: HostPmu::plant(),
            counters,
            hpmn: rd!("mdcr_el2") & 0x1f,
            unbinds: 0,
            spun_after_unbind: 0,
            iters,
            entry: [(2, role)],
        }
    }
}

impl Scenario for Pmu {
    fn setup_config(&self) -> Aarch64VCpuSetupConfig {
        Aarch64VCpuSetupConfig::default().with_pmu(PmuConfig::V3 {
            counters: self.counters,
        })
    }

    fn entry_regs(&self) -> &[(usize, u64)] {
        &self.entry
    }

    fn slice_us(&self) -> u64 {
        if self.iters != 0 {
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
            0xE0 => Ok(self.counters.map_or(self.hpmn, u64::from)),
            0xE1 => Ok(spin_us(20_000)),
            0xE2 => Ok(self.unbinds),
            0xE3 => Ok(self.spun_after_unbind),
            0x81 => Ok(vm.vm_switches()),
            _ => Err("pmu: unknown TEST_CALL"),
        }
    }

    fn checks_after_unbind(&self) -> bool {
        true
    }

    fn after_unbind(&mut self) -> Result<(), &'static str> {
        self.unbinds += 1;
        if self.iters == 0 {
            // Keep the vCPU descheduled a while: its counters must not move.
            self.spun_after_unbind = spin_us(20_000);
        }
        self.host.check()
    }

    fn finish(&mut self, guest_failures: u64, vm: &VmInfo) -> Result<(), &'static str> {
        crate::println!(
            "pmu: host PMU state checked after {} unbinds; {} VM switches",
            self.unbinds,
            vm.vm_switches()
        );
        if guest_failures != 0 {
            return Err("guest checks failed");
        }
        if vm.vm_switches() < self.iters {
            return Err("fewer VM switches than requested");
        }
        Ok(())
    }
}
