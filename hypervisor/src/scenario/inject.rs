//! `inject`: the host side of the exception-injection scenario. Aborts at IPAs no
//! device serves are injected by vm.rs (`AbortPolicy::Inject`); this counts them by
//! kind from the exits, raises the virtual SError the guest asks for with
//! TEST_CALL(0x61), and compares its count with the guest's TEST_CALL(0x62).

use alloc::boxed::Box;
use arm_vcpu::VmExit;

use super::{AbortPolicy, Scenario, VmInfo};
use crate::devices::{CONSOLE_IPA, TESTDEV_IPA, TESTDEV_SIZE};

pub fn by_name(name: &str) -> Option<Box<dyn Scenario>> {
    match name {
        "inject" => Some(Box::new(Inject::default())),
        _ => None,
    }
}

/// The IPAs the guest faults on (nothing behind them).
const DATA_IPA: u64 = 0x0c00_0000;
const CODE_IPA: u64 = 0x0d00_0000;

/// What the guest's probes cause, in order: a load (EL1), a store, an LDP, a load
/// from EL0 (data aborts); a BLR (instruction abort); the SError it asks for.
const EXPECTED: Counts = Counts {
    mmio_reads: 2,
    mmio_writes: 1,
    ldp: 1,
    fetch: 1,
    serror: 1,
};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    /// ISV = 1 loads from DATA_IPA (MmioRead exits).
    mmio_reads: u64,
    /// ISV = 1 stores to DATA_IPA (MmioWrite exits).
    mmio_writes: u64,
    /// ISV = 0 reads at DATA_IPA (DataAbort exits).
    ldp: u64,
    /// Fetches from CODE_IPA (InstructionAbort exits).
    fetch: u64,
    /// Virtual SErrors raised.
    serror: u64,
}

impl Counts {
    fn total(&self) -> u64 {
        self.mmio_reads + self.mmio_writes + self.ldp + self.fetch + self.serror
    }
}

#[derive(Default)]
struct Inject {
    counts: Counts,
    serror_requested: bool,
    reported: bool,
    failure: Option<&'static str>,
}

impl Inject {
    fn fail(&mut self, why: &'static str) {
        crate::println!("inject host check failed: {}", why);
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
            } if ipa == DATA_IPA => self.counts.ldp += 1,
            VmExit::InstructionAbort { ipa, .. } if ipa == CODE_IPA => self.counts.fetch += 1,
            VmExit::MmioRead { .. }
            | VmExit::MmioWrite { .. }
            | VmExit::DataAbort { .. }
            | VmExit::InstructionAbort { .. } => {
                crate::println!("inject host: unexpected abort exit {:?}", exit);
                self.fail("abort at an unexpected address or of an unexpected kind");
            }
            _ => {}
        }
    }

    fn test_call(&mut self, _cpu: usize, a: &[u64; 7], _vm: &VmInfo) -> Result<u64, &'static str> {
        match a[1] {
            0x61 => {
                self.serror_requested = true;
                Ok(0)
            }
            0x62 => {
                self.reported = true;
                crate::println!(
                    "inject host: injected {:?} ({} in all); guest saw {}",
                    self.counts,
                    self.counts.total(),
                    a[2]
                );
                if self.counts != EXPECTED {
                    self.fail("injections by kind differ from the scenario's");
                }
                if a[2] != self.counts.total() {
                    self.fail("the guest saw a different number of injected exceptions");
                }
                Ok(u64::from(self.failure.is_some()))
            }
            _ => Err("inject: unknown TEST_CALL"),
        }
    }

    fn serror_after_test_call(&mut self, _cpu: usize) -> Option<u64> {
        if core::mem::take(&mut self.serror_requested) {
            self.counts.serror += 1;
            Some(0)
        } else {
            None
        }
    }

    fn finish(&mut self, guest_failures: u64, _vm: &VmInfo) -> Result<(), &'static str> {
        if !self.reported {
            self.fail("no report TEST_CALL(0x62)");
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
