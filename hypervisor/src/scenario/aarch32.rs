//! `aarch32`: the host side of the AArch32 EL0 scenario. The crate answers the
//! coprocessor traps itself (emulated timer and debug views, UNDEF for the rest);
//! what reaches the host are the MMIO accesses of the AArch32 loads and stores, the
//! aborts at IPAs no device serves (injected by vm.rs, `AbortPolicy::Inject`), and
//! the virtual SError the guest asks for with TEST_CALL(0xa2). This counts the
//! injections by kind and compares them with the guest's TEST_CALL(0xa1).

use alloc::boxed::Box;
use arm_vcpu::VmExit;

use super::{AbortPolicy, Scenario, VmInfo};
use crate::devices::{CONSOLE_IPA, TESTDEV_IPA, TESTDEV_SIZE};

pub fn by_name(name: &str) -> Option<Box<dyn Scenario>> {
    match name {
        "aarch32" => Some(Box::new(Aarch32::default())),
        _ => None,
    }
}

/// The IPAs the guest's AArch32 code faults on (nothing behind them).
const DATA_IPA: u64 = 0x0c00_0000;
const CODE_IPA: u64 = 0x0d00_0000;

/// What the guest's probes cause: A32 `ldr` and T32 16-bit `ldr` (MMIO reads with a
/// syndrome), A32 `str` and T32 16-bit `str` (MMIO writes), A32 `ldm` and T32 16-bit
/// `ldm` (no syndrome: DataAbort exits), an A32 `bx` (InstructionAbort), one SError.
const EXPECTED: Counts = Counts {
    mmio_reads: 2,
    mmio_writes: 2,
    ldm: 2,
    fetch: 1,
    serror: 1,
};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    mmio_reads: u64,
    mmio_writes: u64,
    ldm: u64,
    fetch: u64,
    serror: u64,
}

impl Counts {
    fn total(&self) -> u64 {
        self.mmio_reads + self.mmio_writes + self.ldm + self.fetch + self.serror
    }
}

#[derive(Default)]
struct Aarch32 {
    counts: Counts,
    serror_requested: bool,
    reported: bool,
    failure: Option<&'static str>,
}

impl Aarch32 {
    fn fail(&mut self, why: &'static str) {
        crate::println!("aarch32 host check failed: {}", why);
        if self.failure.is_none() {
            self.failure = Some(why);
        }
    }
}

fn is_device(addr: u64) -> bool {
    (TESTDEV_IPA..TESTDEV_IPA + TESTDEV_SIZE).contains(&addr)
        || (CONSOLE_IPA..CONSOLE_IPA + 0x1000).contains(&addr)
}

impl Scenario for Aarch32 {
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
            } if ipa == DATA_IPA => self.counts.ldm += 1,
            VmExit::InstructionAbort { ipa, .. } if ipa == CODE_IPA => self.counts.fetch += 1,
            VmExit::MmioRead { .. }
            | VmExit::MmioWrite { .. }
            | VmExit::DataAbort { .. }
            | VmExit::InstructionAbort { .. } => {
                crate::println!("aarch32 host: unexpected abort exit {:?}", exit);
                self.fail("abort at an unexpected address or of an unexpected kind");
            }
            _ => {}
        }
    }

    fn test_call(&mut self, _cpu: usize, a: &[u64; 7], _vm: &VmInfo) -> Result<u64, &'static str> {
        match a[1] {
            0xa2 => {
                self.serror_requested = true;
                Ok(0)
            }
            0xa1 => {
                self.reported = true;
                crate::println!(
                    "aarch32 host: injected {:?} ({} in all); guest saw {}",
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
            _ => Err("aarch32: unknown TEST_CALL"),
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
            self.fail("no report TEST_CALL(0xa1)");
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
