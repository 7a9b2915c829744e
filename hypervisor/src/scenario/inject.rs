//! `inject` and `aarch32`: the host side of the two exception-injection scenarios.
//! Aborts at IPAs no device serves are injected by vm.rs (`AbortPolicy::Inject`);
//! this counts them by kind from the exits, raises the virtual SError the guest asks
//! for with one TEST_CALL, and compares its count with the one the guest reports
//! with another.
//!
//! - `inject` (AArch64 EL1/EL0): TEST_CALL(0x61) asks for the SError, 0x62 reports.
//! - `aarch32` (AArch32 EL0): the crate answers the coprocessor traps itself
//!   (emulated timer and debug views, UNDEF for the rest); what reaches the host are
//!   the MMIO accesses of the AArch32 loads and stores, the aborts and the SError:
//!   TEST_CALL(0xa2) asks for the SError, 0xa1 reports.

use alloc::boxed::Box;
use arm_vcpu::VmExit;

use super::{AbortPolicy, Scenario, VmInfo};
use crate::devices::{CONSOLE_IPA, TESTDEV_IPA, TESTDEV_SIZE};

pub fn by_name(name: &str) -> Option<Box<dyn Scenario>> {
    let spec = match name {
        "inject" => &INJECT,
        "aarch32" => &AARCH32,
        _ => return None,
    };
    Some(Box::new(Inject {
        spec,
        counts: Counts::default(),
        reported: false,
        failure: None,
    }))
}

/// The IPAs the guest faults on (nothing behind them).
const DATA_IPA: u64 = 0x0c00_0000;
const CODE_IPA: u64 = 0x0d00_0000;

/// What one scenario's guest does and says.
struct Spec {
    name: &'static str,
    /// The injections its probes cause, by kind.
    expected: Counts,
    /// TEST_CALL numbers: "raise a virtual SError after this call", "here is my count".
    serror_call: u64,
    report_call: u64,
    unknown: &'static str,
    no_report: &'static str,
}

/// `inject`: a load (EL1), a store, an LDP, a load from EL0 (data aborts); a BLR
/// (instruction abort); the SError it asks for.
const INJECT: Spec = Spec {
    name: "inject",
    expected: Counts {
        mmio_reads: 2,
        mmio_writes: 1,
        no_syndrome: 1,
        fetch: 1,
        serror: 1,
    },
    serror_call: 0x61,
    report_call: 0x62,
    unknown: "inject: unknown TEST_CALL",
    no_report: "no report TEST_CALL(0x62)",
};

/// `aarch32`: A32 `ldr` and T32 16-bit `ldr` (MMIO reads with a syndrome), A32 `str`
/// and T32 16-bit `str` (MMIO writes), A32 `ldm` and T32 16-bit `ldm` (no syndrome:
/// DataAbort exits), an A32 `bx` (InstructionAbort), one SError.
const AARCH32: Spec = Spec {
    name: "aarch32",
    expected: Counts {
        mmio_reads: 2,
        mmio_writes: 2,
        no_syndrome: 2,
        fetch: 1,
        serror: 1,
    },
    serror_call: 0xa2,
    report_call: 0xa1,
    unknown: "aarch32: unknown TEST_CALL",
    no_report: "no report TEST_CALL(0xa1)",
};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    /// ISV = 1 loads from DATA_IPA (MmioRead exits).
    mmio_reads: u64,
    /// ISV = 1 stores to DATA_IPA (MmioWrite exits).
    mmio_writes: u64,
    /// ISV = 0 reads at DATA_IPA (DataAbort exits: LDP, LDM).
    no_syndrome: u64,
    /// Fetches from CODE_IPA (InstructionAbort exits).
    fetch: u64,
    /// Virtual SErrors raised.
    serror: u64,
}

impl Counts {
    fn total(&self) -> u64 {
        self.mmio_reads + self.mmio_writes + self.no_syndrome + self.fetch + self.serror
    }
}

struct Inject {
    spec: &'static Spec,
    counts: Counts,
    reported: bool,
    failure: Option<&'static str>,
}

impl Inject {
    fn fail(&mut self, why: &'static str) {
        crate::println!("{} host check failed: {}", self.spec.name, why);
        if self.failure.is_none() {
            self.failure = Some(why);
        }
    }
}

fn is_device(addr: u64) -> bool {
    (TESTDEV_IPA..TESTDEV_IPA + TESTDEV_SIZE).contains(&addr)
        || (CONSOLE_IPA..CONSOLE_IPA + 0x1000).contains(&addr)
}

impl Scenario for Inject {
    fn abort_policy(&self) -> AbortPolicy {
        AbortPolicy::Inject
    }

    fn observes(&self) -> bool {
        true
    }

    fn observe(&mut self, exit: &VmExit) {
        match *exit {
            VmExit::MmioRead { addr, .. } | VmExit::MmioWrite { addr, .. } if is_device(addr) => {}
            VmExit::MmioRead { addr, .. } if addr == DATA_IPA => self.counts.mmio_reads += 1,
            VmExit::MmioWrite { addr, .. } if addr == DATA_IPA => self.counts.mmio_writes += 1,
            VmExit::DataAbort {
                ipa, write: false, ..
            } if ipa == DATA_IPA => self.counts.no_syndrome += 1,
            VmExit::InstructionAbort { ipa, .. } if ipa == CODE_IPA => self.counts.fetch += 1,
            VmExit::MmioRead { .. }
            | VmExit::MmioWrite { .. }
            | VmExit::DataAbort { .. }
            | VmExit::InstructionAbort { .. } => {
                crate::println!("{} host: unexpected abort exit {:?}", self.spec.name, exit);
                self.fail("abort at an unexpected address or of an unexpected kind");
            }
            _ => {}
        }
    }

    fn test_call(
        &mut self,
        _cpu: usize,
        a: &[u64; 7],
        vm: &mut VmInfo,
    ) -> Result<u64, &'static str> {
        match a[1] {
            n if n == self.spec.serror_call => {
                // Pending when the guest is back from the call (the guest unmasks
                // SError next and takes it).
                vm.vcpu.inject_serror(0).map_err(|_| "inject_serror")?;
                self.counts.serror += 1;
                Ok(0)
            }
            n if n == self.spec.report_call => {
                self.reported = true;
                crate::println!(
                    "{} host: injected {:?} ({} in all); guest saw {}",
                    self.spec.name,
                    self.counts,
                    self.counts.total(),
                    a[2]
                );
                if self.counts != self.spec.expected {
                    self.fail("injections by kind differ from the scenario's");
                }
                if a[2] != self.counts.total() {
                    self.fail("the guest saw a different number of injected exceptions");
                }
                Ok(u64::from(self.failure.is_some()))
            }
            _ => Err(self.spec.unknown),
        }
    }

    fn finish(&mut self, guest_failures: u64, _vm: &VmInfo) -> Result<(), &'static str> {
        if !self.reported {
            self.fail(self.spec.no_report);
        }
        if guest_failures != 0 {
            return Err("guest checks failed");
        }
        match self.failure {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }
}
