//! What a `set_gpr` / `set_return_value` from AxVM stands for.
//!
//! AxVM completes an exit by writing a register: the value of an MMIO or
//! system-register read with `set_gpr(reg, value)`, a hypercall's or PSCI call's result
//! with `set_return_value(value)` (or `set_gpr(0, value)`). `arm_vcpu` completes reads
//! with calls that also extend the value as the load says and step the PC
//! (`complete_mmio_read`, `complete_sysreg_read`), and PSCI calls with
//! `complete_psci`, which checks the result against PSCI's rules. The adapter remembers
//! what the last exit left waiting ([`Completion`]) and turns the register write into
//! the right call; any other write is a plain register write.

use arm_vcpu::{Aarch64VCpu, VCpuError, VCpuResult, VmExit};

/// What the last exit waits for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Completion {
    /// Nothing: register writes are plain writes.
    #[default]
    None,
    /// A [`VmExit::MmioRead`] into register `reg` (31 = XZR): `set_gpr(reg, value)`
    /// completes it with the device's value.
    MmioRead {
        /// The load's destination register.
        reg: u8,
    },
    /// A [`VmExit::SysRegRead`] into register `rt` (31 = XZR): `set_gpr(rt, value)`
    /// completes it.
    SysRegRead {
        /// The MRS's destination register.
        rt: u8,
    },
    /// A [`VmExit::Psci`] request: `set_return_value(result)` or `set_gpr(0, result)`
    /// completes it with the PSCI result (a signed 32-bit value, sign-extended).
    Psci,
}

impl Completion {
    /// What `exit` leaves waiting.
    #[must_use]
    pub fn after(exit: &VmExit) -> Self {
        match *exit {
            VmExit::MmioRead { reg, .. } => Self::MmioRead { reg },
            VmExit::SysRegRead { rt, .. } => Self::SysRegRead { rt },
            VmExit::Psci { .. } => Self::Psci,
            _ => Self::None,
        }
    }
}

/// The calls the routing makes on a vCPU (`Aarch64VCpu`; a recording fake in the
/// tests).
pub(crate) trait Completer {
    fn complete_mmio_read(&mut self, value: u64) -> VCpuResult;
    fn complete_sysreg_read(&mut self, value: u64) -> VCpuResult;
    fn complete_psci(&mut self, result: i32) -> VCpuResult;
    fn set_gpr(&mut self, n: usize, value: u64) -> VCpuResult;
    fn set_return_value(&mut self, value: u64);
}

impl Completer for Aarch64VCpu {
    fn complete_mmio_read(&mut self, value: u64) -> VCpuResult {
        Aarch64VCpu::complete_mmio_read(self, value)
    }
    fn complete_sysreg_read(&mut self, value: u64) -> VCpuResult {
        Aarch64VCpu::complete_sysreg_read(self, value)
    }
    fn complete_psci(&mut self, result: i32) -> VCpuResult {
        Aarch64VCpu::complete_psci(self, result)
    }
    fn set_gpr(&mut self, n: usize, value: u64) -> VCpuResult {
        Aarch64VCpu::set_gpr(self, n, value)
    }
    fn set_return_value(&mut self, value: u64) {
        Aarch64VCpu::set_return_value(self, value)
    }
}

/// A PSCI result as AxVM passes it (a register value) to the `i32` PSCI defines:
/// `None` unless it is a sign-extended 32-bit value.
#[must_use]
pub fn psci_result(value: u64) -> Option<i32> {
    i32::try_from(value as i64).ok()
}

/// `set_gpr(reg, value)`: completes what is waiting if `reg` is its register,
/// otherwise writes the register. The completion is used up once the vCPU accepts it;
/// one the vCPU no longer waits for (the host completed it through
/// [`crate::AxVCpu::vcpu_mut`]) is forgotten and the write is a plain one.
pub(crate) fn set_gpr<C: Completer>(
    vcpu: &mut C,
    waiting: &mut Completion,
    reg: usize,
    value: u64,
) -> VCpuResult {
    let done = match *waiting {
        Completion::MmioRead { reg: r } if usize::from(r) == reg => vcpu.complete_mmio_read(value),
        Completion::SysRegRead { rt } if usize::from(rt) == reg => vcpu.complete_sysreg_read(value),
        Completion::Psci if reg == 0 => complete_psci(vcpu, value),
        _ => return vcpu.set_gpr(reg, value),
    };
    match done {
        Err(VCpuError::NothingToComplete) => {
            *waiting = Completion::None;
            vcpu.set_gpr(reg, value)
        }
        Err(e) => Err(e),
        Ok(()) => {
            *waiting = Completion::None;
            Ok(())
        }
    }
}

/// `set_return_value(value)`: the result of a waiting PSCI call, otherwise x0.
pub(crate) fn set_return_value<C: Completer>(
    vcpu: &mut C,
    waiting: &mut Completion,
    value: u64,
) -> VCpuResult {
    if *waiting == Completion::Psci {
        match complete_psci(vcpu, value) {
            // Completed some other way: forgotten, and x0 is written as asked.
            Err(VCpuError::NothingToComplete) => *waiting = Completion::None,
            Err(e) => return Err(e),
            Ok(()) => {
                *waiting = Completion::None;
                return Ok(());
            }
        }
    }
    vcpu.set_return_value(value);
    Ok(())
}

fn complete_psci<C: Completer>(vcpu: &mut C, value: u64) -> VCpuResult {
    match psci_result(value) {
        Some(r) => vcpu.complete_psci(r),
        None => Err(VCpuError::InvalidConfig(
            "a PSCI result is a sign-extended 32-bit value",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arm_vcpu::smccc::ret;
    use arm_vcpu::{AccessWidth, Conduit, PsciRequest, SysRegAddr};
    use std::vec::Vec;

    /// Records the calls; completions succeed unless `refuse` says how they fail.
    #[derive(Default)]
    struct Fake {
        calls: Vec<(&'static str, usize, u64)>,
        refuse: Option<VCpuError>,
    }

    impl Fake {
        fn result(&self) -> VCpuResult {
            match self.refuse {
                Some(e) => Err(e),
                None => Ok(()),
            }
        }
    }

    impl Completer for Fake {
        fn complete_mmio_read(&mut self, value: u64) -> VCpuResult {
            self.calls.push(("complete_mmio_read", 0, value));
            self.result()
        }
        fn complete_sysreg_read(&mut self, value: u64) -> VCpuResult {
            self.calls.push(("complete_sysreg_read", 0, value));
            self.result()
        }
        fn complete_psci(&mut self, result: i32) -> VCpuResult {
            self.calls.push(("complete_psci", 0, result as i64 as u64));
            self.result()
        }
        fn set_gpr(&mut self, n: usize, value: u64) -> VCpuResult {
            self.calls.push(("set_gpr", n, value));
            if n > 30 {
                return Err(VCpuError::InvalidRegister(n));
            }
            Ok(())
        }
        fn set_return_value(&mut self, value: u64) {
            self.calls.push(("set_return_value", 0, value));
        }
    }

    #[test]
    fn exits_and_what_they_leave_waiting() {
        let mmio = VmExit::MmioRead {
            addr: 0x0900_0018,
            width: AccessWidth::Word,
            reg: 7,
            reg_64bit: false,
            sign_extend: false,
        };
        assert_eq!(Completion::after(&mmio), Completion::MmioRead { reg: 7 });
        let mrs = VmExit::SysRegRead {
            reg: SysRegAddr::ID_AA64PFR0_EL1,
            rt: 31,
        };
        assert_eq!(Completion::after(&mrs), Completion::SysRegRead { rt: 31 });
        let psci = VmExit::Psci {
            request: PsciRequest::CpuOff,
            conduit: Conduit::Smc,
        };
        assert_eq!(Completion::after(&psci), Completion::Psci);
        for exit in [
            VmExit::Hypercall {
                imm: 0,
                args: [0; 7],
            },
            VmExit::MmioWrite {
                addr: 0,
                width: AccessWidth::Byte,
                data: 0,
            },
            VmExit::WaitForInterrupt,
            VmExit::ExternalInterrupt { fiq: false },
        ] {
            assert_eq!(Completion::after(&exit), Completion::None, "{exit:?}");
        }
    }

    #[test]
    fn set_gpr_completes_the_read_of_its_register() {
        let mut v = Fake::default();
        let mut w = Completion::MmioRead { reg: 7 };
        // Another register: a plain write; the read still waits.
        set_gpr(&mut v, &mut w, 6, 1).unwrap();
        assert_eq!(w, Completion::MmioRead { reg: 7 });
        // Its register: the completion (which extends and steps the PC), used up.
        set_gpr(&mut v, &mut w, 7, 0xff).unwrap();
        assert_eq!(w, Completion::None);
        // Then writes are plain again.
        set_gpr(&mut v, &mut w, 7, 2).unwrap();
        assert_eq!(
            v.calls,
            [
                ("set_gpr", 6, 1),
                ("complete_mmio_read", 0, 0xff),
                ("set_gpr", 7, 2)
            ]
        );
    }

    #[test]
    fn xzr_destinations_complete_with_register_31() {
        let mut v = Fake::default();
        let mut w = Completion::SysRegRead { rt: 31 };
        set_gpr(&mut v, &mut w, 31, 5).unwrap();
        assert_eq!(w, Completion::None);
        assert_eq!(v.calls, [("complete_sysreg_read", 0, 5)]);
        // With nothing waiting, x31 is no register.
        assert_eq!(
            set_gpr(&mut v, &mut w, 31, 5),
            Err(VCpuError::InvalidRegister(31))
        );
    }

    #[test]
    fn psci_results_through_either_call() {
        let denied = ret::DENIED as i64 as u64;
        let mut v = Fake::default();
        let mut w = Completion::Psci;
        set_return_value(&mut v, &mut w, denied).unwrap();
        assert_eq!(w, Completion::None);
        let mut w = Completion::Psci;
        set_gpr(&mut v, &mut w, 0, 0).unwrap();
        assert_eq!(w, Completion::None);
        assert_eq!(
            v.calls,
            [("complete_psci", 0, denied), ("complete_psci", 0, 0)]
        );
        // Not a 32-bit value: refused, still waiting, nothing called.
        let mut v = Fake::default();
        let mut w = Completion::Psci;
        assert!(set_return_value(&mut v, &mut w, 1 << 40).is_err());
        assert!(set_return_value(&mut v, &mut w, 0xffff_fffe).is_err());
        assert_eq!(w, Completion::Psci);
        assert!(v.calls.is_empty());
    }

    #[test]
    fn a_refused_completion_keeps_waiting() {
        // E.g. a PSCI result the call may not return.
        let mut v = Fake {
            refuse: Some(VCpuError::InvalidConfig("PSCI does not allow this result")),
            ..Default::default()
        };
        let mut w = Completion::Psci;
        assert!(set_return_value(&mut v, &mut w, 7).is_err());
        assert_eq!(w, Completion::Psci);
        let mut w = Completion::MmioRead { reg: 1 };
        assert!(set_gpr(&mut v, &mut w, 1, 9).is_err());
        assert_eq!(w, Completion::MmioRead { reg: 1 });
    }

    #[test]
    fn a_completion_made_elsewhere_is_forgotten() {
        // The host completed the read through `vcpu_mut()`: the vCPU no longer waits.
        let mut v = Fake {
            refuse: Some(VCpuError::NothingToComplete),
            ..Default::default()
        };
        let mut w = Completion::MmioRead { reg: 1 };
        set_gpr(&mut v, &mut w, 1, 9).unwrap();
        assert_eq!(w, Completion::None);
        let mut w = Completion::Psci;
        set_return_value(&mut v, &mut w, 3).unwrap();
        assert_eq!(w, Completion::None);
        assert_eq!(
            v.calls,
            [
                ("complete_mmio_read", 0, 9),
                ("set_gpr", 1, 9),
                ("complete_psci", 0, 3),
                ("set_return_value", 0, 3)
            ]
        );
    }

    #[test]
    fn hypercall_results_are_x0() {
        let mut v = Fake::default();
        let mut w = Completion::None;
        set_return_value(&mut v, &mut w, 42).unwrap();
        // A read waiting elsewhere is not completed by set_return_value.
        let mut w = Completion::MmioRead { reg: 0 };
        set_return_value(&mut v, &mut w, 43).unwrap();
        assert_eq!(w, Completion::MmioRead { reg: 0 });
        assert_eq!(
            v.calls,
            [("set_return_value", 0, 42), ("set_return_value", 0, 43)]
        );
    }

    #[test]
    fn psci_result_values() {
        assert_eq!(psci_result(0), Some(0));
        assert_eq!(psci_result(2), Some(2));
        assert_eq!(psci_result(ret::INVALID_ADDRESS as i64 as u64), Some(-9));
        assert_eq!(psci_result(0xffff_fff7), None, "zero-extended -9 is not -9");
        assert_eq!(psci_result(1 << 31), None);
    }
}
