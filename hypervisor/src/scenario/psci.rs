//! `psci` (2 vCPUs): the host side of the PSCI conformance scenario. The crate answers
//! the queries itself; the host carries out CPU_ON/CPU_OFF/CPU_SUSPEND/AFFINITY_INFO
//! (vm.rs) and, here, checks what reached it: every kind of PSCI request over both
//! conduits, exactly one SYSTEM_RESET, the guest's report from its second boot, and
//! the final SYSTEM_OFF through SMC.

use alloc::boxed::Box;
use arm_vcpu::{Conduit, PsciRequest};

use super::{Scenario, VmInfo};

pub fn by_name(name: &str) -> Option<Box<dyn Scenario>> {
    match name {
        "psci" => Some(Box::new(Psci::default())),
        _ => None,
    }
}

/// Request kinds the guest must make over both conduits.
#[derive(Clone, Copy)]
enum Kind {
    CpuOn,
    CpuOff,
    CpuSuspend,
    AffinityInfo,
}

const KINDS: [(Kind, &str); 4] = [
    (Kind::CpuOn, "CPU_ON"),
    (Kind::CpuOff, "CPU_OFF"),
    (Kind::CpuSuspend, "CPU_SUSPEND"),
    (Kind::AffinityInfo, "AFFINITY_INFO"),
];

#[derive(Default)]
struct Psci {
    /// Per `Kind`: bit 0 = seen over HVC, bit 1 = seen over SMC.
    conduits: [u8; 4],
    /// CPU_OFF requests by vCPU.
    cpu_off: [u64; 2],
    resets: u64,
    /// The guest's failure count from TEST_CALL(0x51), once reported.
    report: Option<u64>,
    /// Conduit of the last PSCI request.
    last_conduit: Option<Conduit>,
    failure: Option<&'static str>,
}

impl Psci {
    fn fail(&mut self, why: &'static str) {
        crate::println!("psci host check failed: {}", why);
        if self.failure.is_none() {
            self.failure = Some(why);
        }
    }
}

impl Scenario for Psci {
    fn vcpus(&self) -> usize {
        2
    }

    fn psci_request(&mut self, cpu: usize, request: &PsciRequest, conduit: Conduit) {
        let bit = match conduit {
            Conduit::Hvc => 1,
            Conduit::Smc => 2,
        };
        let kind = match request {
            PsciRequest::CpuOn { .. } => Some(Kind::CpuOn),
            PsciRequest::CpuOff => Some(Kind::CpuOff),
            PsciRequest::CpuSuspend { .. } => Some(Kind::CpuSuspend),
            PsciRequest::AffinityInfo { .. } => Some(Kind::AffinityInfo),
            _ => None,
        };
        if let Some(k) = kind {
            self.conduits[k as usize] |= bit;
        }
        if let PsciRequest::CpuOff = request {
            if let Some(n) = self.cpu_off.get_mut(cpu) {
                *n += 1;
            }
        }
        if *request != PsciRequest::SystemOff && self.report.is_some() {
            self.fail("PSCI request after the final report (only SYSTEM_OFF expected)");
        }
        self.last_conduit = Some(conduit);
    }

    fn test_call(
        &mut self,
        cpu: usize,
        a: &[u64; 7],
        _vm: &mut VmInfo,
    ) -> Result<u64, &'static str> {
        if a[1] != 0x51 {
            return Err("psci: unknown TEST_CALL");
        }
        if cpu != 0 {
            self.fail("report TEST_CALL(0x51) from a vCPU other than 0");
        }
        if self.report.is_some() {
            self.fail("second report TEST_CALL(0x51)");
        }
        if self.resets != 1 {
            self.fail("report TEST_CALL(0x51) not after exactly one SYSTEM_RESET");
        }
        self.report = Some(a[2]);
        crate::println!(
            "psci host: guest reports {} failed check(s) over both boots",
            a[2]
        );
        Ok(u64::from(self.failure.is_some()))
    }

    fn system_reset(&mut self) -> Result<bool, &'static str> {
        self.resets += 1;
        if self.resets > 1 {
            return Err("psci: more than one SYSTEM_RESET");
        }
        if self.report.is_some() {
            return Err("psci: SYSTEM_RESET after the report");
        }
        crate::println!("psci host: SYSTEM_RESET, restarting vCPU 0");
        Ok(true)
    }

    fn system_off(&mut self, _vm: &VmInfo) -> Result<(), &'static str> {
        if self.last_conduit != Some(Conduit::Smc) {
            self.fail("SYSTEM_OFF not made through smc #0");
        }
        if self.resets != 1 {
            self.fail("SYSTEM_OFF without exactly one SYSTEM_RESET before it");
        }
        for (k, name) in KINDS {
            if self.conduits[k as usize] != 3 {
                crate::println!(
                    "psci host: {} seen over {}",
                    name,
                    match self.conduits[k as usize] {
                        0 => "neither conduit",
                        1 => "HVC only",
                        _ => "SMC only",
                    }
                );
                self.fail("a PSCI request kind did not reach the host over both conduits");
            }
        }
        if self.cpu_off != [0, 2] {
            self.fail("expected two CPU_OFF requests, both from vCPU 1");
        }
        match self.report {
            None => self.fail("SYSTEM_OFF without the report TEST_CALL(0x51)"),
            Some(0) => {}
            Some(_) => return Err("guest checks failed"),
        }
        match self.failure {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    fn finish(&mut self, guest_failures: u64, _vm: &VmInfo) -> Result<(), &'static str> {
        if guest_failures != 0 {
            return Err("guest checks failed");
        }
        Err("psci: the guest ended with EXIT instead of SYSTEM_OFF")
    }
}
