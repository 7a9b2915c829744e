//! `hostile`: the host side of the PRNG-instruction scenario. The guest executes
//! `iters` pseudo-random instruction words at EL1 (seed in x2 at entry, from the
//! bootargs' `seed=`); the host answers every exit (WFI/WFE trapped, aborts on
//! nothing injected), counts the exits by class and prints the counts at EXIT, and
//! checks the guest's report: the number of words it ran and the number of injected
//! aborts it took at EL1.

use alloc::boxed::Box;
use arm_vcpu::{Aarch64VCpuSetupConfig, VmExit};

use super::classes::ClassCounts;
use super::{AbortPolicy, Scenario, VmInfo};

pub fn by_name(name: &str, iters: u64, seed: u64) -> Option<Box<dyn Scenario>> {
    match name {
        // `hostile32` runs its words in AArch32 EL0: the same host side.
        "hostile" | "hostile32" => Some(Box::new(Hostile {
            iters,
            seed,
            entry: [(2, seed)],
            seen: ClassCounts::default(),
            detail: Detail::default(),
            reported: false,
            failure: None,
        })),
        _ => None,
    }
}

/// Finer counts than [`ClassCounts`], for the printout.
#[derive(Default)]
struct Detail {
    mmio_read: u64,
    mmio_write: u64,
    sysreg_read: u64,
    sysreg_write: u64,
    yield_calls: u64,
}

struct Hostile {
    iters: u64,
    seed: u64,
    /// Boot registers: x2 = seed.
    entry: [(usize, u64); 1],
    seen: ClassCounts,
    detail: Detail,
    reported: bool,
    failure: Option<&'static str>,
}

impl Hostile {
    /// Aborts the host injected (every stage-2 abort on nothing).
    fn injected(&self) -> u64 {
        self.seen.mmio_unbacked + self.seen.data_abort + self.seen.instruction_abort
    }
}

impl Scenario for Hostile {
    fn setup_config(&self) -> Aarch64VCpuSetupConfig {
        Aarch64VCpuSetupConfig::default()
            .with_trap_wfi(true)
            .with_trap_wfe(true)
    }

    fn entry_regs(&self) -> &[(usize, u64)] {
        &self.entry
    }

    fn abort_policy(&self) -> AbortPolicy {
        AbortPolicy::Inject
    }

    fn observes(&self) -> bool {
        true
    }

    fn observe(&mut self, exit: &VmExit) {
        self.seen.count(exit);
        let d = &mut self.detail;
        match *exit {
            VmExit::MmioRead { .. } => d.mmio_read += 1,
            VmExit::MmioWrite { .. } => d.mmio_write += 1,
            VmExit::SysRegRead { .. } => d.sysreg_read += 1,
            VmExit::SysRegWrite { .. } => d.sysreg_write += 1,
            VmExit::Hypercall { imm: 0, args } if args[0] == crate::vm::hvc::YIELD => {
                d.yield_calls += 1
            }
            _ => {}
        }
    }

    /// TEST_CALL(0x81, words run, injected aborts taken at EL1): 0 if both match the
    /// host's count, else bit 0 (words) / bit 1 (aborts).
    fn test_call(
        &mut self,
        _cpu: usize,
        a: &[u64; 7],
        _vm: &mut VmInfo,
    ) -> Result<u64, &'static str> {
        if a[1] != 0x81 {
            return Err("hostile: unknown TEST_CALL");
        }
        let injected = self.injected();
        let m = u64::from(a[2] != self.iters) | u64::from(a[3] != injected) << 1;
        crate::println!(
            "hostile: guest ran {} words (iters {}), took {} injected aborts (host injected {})",
            a[2],
            self.iters,
            a[3],
            injected
        );
        if m == 0 {
            self.reported = true;
        } else {
            self.failure
                .get_or_insert("hostile: the guest's report differs from the host's counts");
        }
        Ok(m)
    }

    fn finish(&mut self, guest_failures: u64, _vm: &VmInfo) -> Result<(), &'static str> {
        let d = &self.detail;
        crate::println!("hostile: seed {:#x}, {} words", self.seed, self.iters);
        self.seen.print("hostile");
        crate::println!(
            "hostile: mmio reads {} writes {}; sysreg reads {} writes {}; YIELD {}; \
             injected aborts {}",
            d.mmio_read,
            d.mmio_write,
            d.sysreg_read,
            d.sysreg_write,
            d.yield_calls,
            self.injected()
        );
        if guest_failures != 0 {
            return Err("guest checks failed");
        }
        if let Some(why) = self.failure {
            return Err(why);
        }
        if !self.reported {
            return Err("hostile: no report (TEST_CALL 0x81)");
        }
        Ok(())
    }
}
