//! Host-side checkers of the scenario tests (docs/test-protocol.md). Each scenario
//! chooses the vCPU setup, answers TEST_CALLs and trapped ID registers, and decides
//! with the guest's own verdict whether the run passed.

use arm_vcpu::{Aarch64VCpuSetupConfig, IdRegisterPolicy, SysRegAddr};

use crate::devices::WidthCounts;

/// Scenarios the hypervisor knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Demo,
    Hypercall,
    Mmio,
    SysReg,
    Preserve,
    Irq,
    BenchHvc,
    BenchMmio,
}

impl Kind {
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "demo" => Self::Demo,
            "hypercall" => Self::Hypercall,
            "mmio" => Self::Mmio,
            "sysreg" => Self::SysReg,
            "preserve" => Self::Preserve,
            "irq" => Self::Irq,
            "bench-hvc" => Self::BenchHvc,
            "bench-mmio" => Self::BenchMmio,
            _ => return None,
        })
    }
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

/// The expected `TEST_CALL` result in the hypercall scenario, for call `i`.
pub fn hypercall_args(i: u64) -> [u64; 6] {
    let mut a = [0u64; 6];
    for (k, v) in a.iter_mut().enumerate() {
        *v = i
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add((k as u64 + 1).wrapping_mul(0x0101_0101_0101_0101));
    }
    a
}

/// Host-side state and checks of one scenario run.
pub struct Scenario {
    pub kind: Kind,
    pub iters: u64,
    /// TEST_CALLs seen.
    pub calls: u64,
    /// Trapped system-register reads answered.
    pub sysreg_reads: u64,
    /// External interrupt exits taken.
    pub irqs: u64,
    /// First host-side check that failed.
    pub failure: Option<&'static str>,
}

impl Scenario {
    pub fn new(kind: Kind, iters: u64) -> Self {
        Self {
            kind,
            iters,
            calls: 0,
            sysreg_reads: 0,
            irqs: 0,
            failure: None,
        }
    }

    pub fn setup_config(&self) -> Aarch64VCpuSetupConfig {
        Aarch64VCpuSetupConfig {
            // These two check the exit path: the host answers ID registers itself.
            id_registers: if matches!(self.kind, Kind::SysReg | Kind::Preserve) {
                IdRegisterPolicy::ExitToHost
            } else {
                IdRegisterPolicy::Sanitized
            },
            ..Default::default()
        }
    }

    fn fail(&mut self, why: &'static str) {
        if self.failure.is_none() {
            self.failure = Some(why);
        }
    }

    /// Answers TEST_CALL(x1..x6); `dev` gives the test device's access counts.
    pub fn test_call(&mut self, a: &[u64; 7], reads: WidthCounts, writes: WidthCounts) -> u64 {
        let i = self.calls;
        self.calls += 1;
        match self.kind {
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
                    0x11 => reads,
                    0x12 => writes,
                    _ => {
                        self.fail("unknown mmio report");
                        return 1;
                    }
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
            Kind::Irq => self.irqs,
            _ => {
                self.fail("unexpected TEST_CALL");
                u64::MAX
            }
        }
    }

    /// Answers a trapped system-register read.
    pub fn sysreg_read(&mut self, reg: SysRegAddr) -> u64 {
        self.sysreg_reads += 1;
        // Only the ID group 3 space (op0 = 3, op1 = 0, CRn = 0) is expected to trap.
        if reg.op0() != 3 || reg.op1() != 0 || reg.crn() != 0 {
            self.fail("unexpected system register trap");
        }
        id_reg_answer(reg)
    }

    /// Host-side verdict at EXIT.
    pub fn final_check(&mut self) {
        match self.kind {
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
            Kind::Irq if self.irqs < 3 => self.fail("fewer than 3 external interrupt exits"),
            _ => {}
        }
    }
}
