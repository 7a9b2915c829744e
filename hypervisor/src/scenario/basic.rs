//! The foundation scenarios: demo, hypercall, mmio, sysreg, preserve, irq and the two
//! benchmarks.

use alloc::boxed::Box;
use arm_vcpu::{Aarch64VCpuSetupConfig, IdRegisterPolicy, SysRegAddr};

use super::{Scenario, VmInfo};

/// The foundation scenarios.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Demo,
    Hypercall,
    Mmio,
    SysReg,
    Preserve,
    Irq,
    BenchHvc,
    BenchMmio,
}

pub fn by_name(name: &str, iters: u64) -> Option<Box<dyn Scenario>> {
    let kind = match name {
        "demo" => Kind::Demo,
        "hypercall" => Kind::Hypercall,
        "mmio" => Kind::Mmio,
        "sysreg" => Kind::SysReg,
        "preserve" => Kind::Preserve,
        "irq" => Kind::Irq,
        "bench-hvc" => Kind::BenchHvc,
        "bench-mmio" => Kind::BenchMmio,
        _ => return None,
    };
    Some(Box::new(Basic {
        kind,
        iters,
        calls: 0,
        sysreg_reads: 0,
        failure: None,
    }))
}

/// Value the host answers for a trapped ID register read.
pub const fn id_reg_answer(reg: SysRegAddr) -> u64 {
    let key = ((reg.op0() as u64) << 16)
        | ((reg.op1() as u64) << 12)
        | ((reg.crn() as u64) << 8)
        | ((reg.crm() as u64) << 4)
        | reg.op2() as u64;
    0x1D00_0000_0000_0000 | key
}

/// The arguments of TEST_CALL number `i` in the hypercall scenario.
pub fn hypercall_args(i: u64) -> [u64; 6] {
    let mut a = [0u64; 6];
    for (k, v) in a.iter_mut().enumerate() {
        *v = i
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add((k as u64 + 1).wrapping_mul(0x0101_0101_0101_0101));
    }
    a
}

struct Basic {
    kind: Kind,
    iters: u64,
    /// TEST_CALLs seen.
    calls: u64,
    /// Trapped system-register reads answered.
    sysreg_reads: u64,
    /// First host-side check that failed.
    failure: Option<&'static str>,
}

impl Basic {
    fn fail(&mut self, why: &'static str) {
        if self.failure.is_none() {
            self.failure = Some(why);
        }
    }
}

impl Scenario for Basic {
    fn setup_config(&self) -> Aarch64VCpuSetupConfig {
        // These two check the exit path: the host answers ID registers itself.
        Aarch64VCpuSetupConfig::default().with_id_registers(
            if matches!(self.kind, Kind::SysReg | Kind::Preserve) {
                IdRegisterPolicy::ExitToHost
            } else {
                IdRegisterPolicy::Sanitized
            },
        )
    }

    fn host_tick_us(&self) -> Option<u64> {
        // About 1 ms; the guest counts three of them.
        (self.kind == Kind::Irq).then_some(1000)
    }

    fn test_call(
        &mut self,
        _cpu: usize,
        a: &[u64; 7],
        vm: &mut VmInfo,
    ) -> Result<u64, &'static str> {
        let i = self.calls;
        self.calls += 1;
        Ok(match self.kind {
            Kind::Demo => a[1] + 1,
            Kind::Hypercall => {
                let expect = hypercall_args(i);
                if a[1..7] != expect {
                    self.fail("hypercall arguments differ from the expected sequence");
                }
                expect.iter().fold(0u64, |s, v| s.wrapping_add(*v)) ^ i
            }
            Kind::Mmio => {
                let counts = [a[2], a[3], a[4], a[5]];
                let mine = match a[1] {
                    0x11 => vm.dev_reads(),
                    0x12 => vm.dev_writes(),
                    _ => return Err("unknown mmio report"),
                };
                if mine.0 != counts {
                    crate::println!("host counted {:?}, guest reports {:?}", mine.0, counts);
                    self.fail("test-device access counts differ between guest and host");
                    1
                } else {
                    0
                }
            }
            Kind::SysReg => {
                if a[1] == 0x21 && a[2] == self.sysreg_reads {
                    0
                } else {
                    self.fail("trapped ID register reads: guest and host counts differ");
                    1
                }
            }
            Kind::Irq => vm.irqs(),
            _ => return Err("unexpected TEST_CALL"),
        })
    }

    fn sysreg_read(&mut self, reg: SysRegAddr) -> Option<u64> {
        self.sysreg_reads += 1;
        // Only the ID group 3 space (op0 = 3, op1 = 0, CRn = 0) is expected to trap.
        if reg.op0() != 3 || reg.op1() != 0 || reg.crn() != 0 {
            self.fail("unexpected system register trap");
        }
        Some(id_reg_answer(reg))
    }

    fn finish(&mut self, guest_failures: u64, vm: &VmInfo) -> Result<(), &'static str> {
        match self.kind {
            Kind::Irq if vm.irqs() < 3 => self.fail("fewer than 3 external interrupt exits"),
            Kind::Hypercall if self.calls != self.iters => {
                self.fail("number of TEST_CALLs differs from iters")
            }
            Kind::Mmio if self.calls != 2 => self.fail("expected two access-count reports"),
            Kind::SysReg if self.sysreg_reads < 4 => {
                self.fail("fewer than 4 trapped ID register reads")
            }
            Kind::Preserve if self.sysreg_reads != self.iters => {
                self.fail("preserve: one trapped ID read per round expected")
            }
            _ => {}
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
