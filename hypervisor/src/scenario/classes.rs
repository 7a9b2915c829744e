//! `classes`: the host side of the every-exit-class scenario. WFI and WFE trap,
//! aborts on nothing are injected; the host counts every exit it sees by class and
//! checks the guest's account of what it caused (TEST_CALL 0x71 and 0x72).

use alloc::boxed::Box;
use arm_vcpu::{Aarch64VCpuSetupConfig, VmExit};

use super::{AbortPolicy, Scenario, VmInfo};
use crate::devices::{CONSOLE_IPA, TESTDEV_IPA, TESTDEV_SIZE};
use crate::vm::hvc;

pub fn by_name(name: &str) -> Option<Box<dyn Scenario>> {
    match name {
        "classes" => Some(Box::new(Classes::default())),
        _ => None,
    }
}

/// Whether an MMIO address is served by a device of the test VM.
pub fn has_device(addr: u64) -> bool {
    (TESTDEV_IPA..TESTDEV_IPA + TESTDEV_SIZE).contains(&addr)
        || (CONSOLE_IPA..CONSOLE_IPA + 0x1000).contains(&addr)
}

/// Exits seen, by class.
#[derive(Default, Debug, Clone, Copy)]
pub struct ClassCounts {
    /// Hypercall exits other than the protocol's TEST_CALL and EXIT (NULL is answered
    /// before scenarios see it).
    pub hypercall: u64,
    /// PSCI requests.
    pub psci: u64,
    /// MMIO exits to a device.
    pub mmio: u64,
    /// MMIO exits to an address no device serves (the host injects an abort).
    pub mmio_unbacked: u64,
    /// System-register exits (the crate answers everything in these VMs).
    pub sysreg: u64,
    pub wfi: u64,
    pub wfe: u64,
    /// DataAbort exits (ISV = 0; injected).
    pub data_abort: u64,
    /// InstructionAbort exits (injected).
    pub instruction_abort: u64,
    pub irq: u64,
    /// SGIs sent (trapped ICC_SGI*R_EL1 writes).
    pub sgi: u64,
    /// SMC, SError, Unhandled: never expected.
    pub other: u64,
}

impl ClassCounts {
    pub fn count(&mut self, exit: &VmExit) {
        match *exit {
            VmExit::Hypercall { imm: 0, args } if matches!(args[0], hvc::TEST_CALL | hvc::EXIT) => {
            }
            VmExit::Hypercall { .. } => self.hypercall += 1,
            VmExit::Psci { .. } => self.psci += 1,
            VmExit::MmioRead { addr, .. } | VmExit::MmioWrite { addr, .. } => {
                if has_device(addr) {
                    self.mmio += 1
                } else {
                    self.mmio_unbacked += 1
                }
            }
            VmExit::SysRegRead { .. } | VmExit::SysRegWrite { .. } => self.sysreg += 1,
            VmExit::WaitForInterrupt => self.wfi += 1,
            VmExit::WaitForEvent => self.wfe += 1,
            VmExit::DataAbort { .. } => self.data_abort += 1,
            VmExit::InstructionAbort { .. } => self.instruction_abort += 1,
            VmExit::ExternalInterrupt { .. } => self.irq += 1,
            VmExit::SendSgi { .. } => self.sgi += 1,
            _ => self.other += 1,
        }
    }

    pub fn print(&self, name: &str) {
        let c = self;
        crate::println!(
            "{name}: exits by class: hypercall {} psci {} mmio {} mmio-unbacked {} sysreg {} \
             wfi {} wfe {} data-abort {} instruction-abort {} irq {} sgi {} other {}",
            c.hypercall,
            c.psci,
            c.mmio,
            c.mmio_unbacked,
            c.sysreg,
            c.wfi,
            c.wfe,
            c.data_abort,
            c.instruction_abort,
            c.irq,
            c.sgi,
            c.other
        );
    }
}

#[derive(Default)]
struct Classes {
    seen: ClassCounts,
    /// Bit 0: report 0x71 matched, bit 1: report 0x72 matched.
    reports: u8,
    failure: Option<&'static str>,
}

/// Compares the guest's counts with the host's: bit i set where field i differs.
fn mismatch(guest: &[u64], host: &[u64]) -> u64 {
    guest
        .iter()
        .zip(host)
        .enumerate()
        .filter(|(_, (g, h))| g != h)
        .fold(0, |m, (i, _)| m | 1 << i)
}

impl Scenario for Classes {
    fn setup_config(&self) -> Aarch64VCpuSetupConfig {
        Aarch64VCpuSetupConfig::default()
            .with_trap_wfi(true)
            .with_trap_wfe(true)
    }

    fn abort_policy(&self) -> AbortPolicy {
        AbortPolicy::Inject
    }

    fn observes(&self) -> bool {
        true
    }

    fn observe(&mut self, exit: &VmExit) {
        self.seen.count(exit);
    }

    fn test_call(
        &mut self,
        _cpu: usize,
        a: &[u64; 7],
        _vm: &mut VmInfo,
    ) -> Result<u64, &'static str> {
        let s = &self.seen;
        let (bit, guest, host): (u8, &[u64], [u64; 5]) = match a[1] {
            0x71 => (
                1,
                &a[2..7],
                [
                    s.wfi,
                    s.wfe,
                    s.data_abort,
                    s.mmio_unbacked,
                    s.instruction_abort,
                ],
            ),
            0x72 => (2, &a[2..7], [s.hypercall, s.psci, s.sgi, s.sysreg, s.other]),
            _ => return Err("classes: unknown TEST_CALL"),
        };
        let mut m = mismatch(guest, &host[..guest.len()]);
        if bit == 1 && m & 2 != 0 && s.wfe == 0 {
            // QEMU (TCG, up to at least 8.x) implements WFE as a yield and never
            // traps it, whatever HCR_EL2.TWE says: no WaitForEvent exit can happen.
            crate::println!(
                "classes: note: no WaitForEvent exit for the guest's {} WFE (QEMU does not \
                 trap WFE on HCR_EL2.TWE)",
                a[3]
            );
            m &= !2;
        }
        if m == 0 {
            self.reports |= bit;
        } else {
            crate::println!(
                "classes: report {:#x}: guest counts {:?}, host counts {:?}",
                a[1],
                guest,
                &host[..guest.len()]
            );
            self.failure
                .get_or_insert("exit counts differ between guest and host");
        }
        Ok(m)
    }

    fn finish(&mut self, guest_failures: u64, _vm: &VmInfo) -> Result<(), &'static str> {
        self.seen.print("classes");
        if guest_failures != 0 {
            return Err("guest checks failed");
        }
        if let Some(why) = self.failure {
            return Err(why);
        }
        if self.reports != 3 {
            return Err("missing exit-count report (TEST_CALL 0x71/0x72)");
        }
        Ok(())
    }
}
