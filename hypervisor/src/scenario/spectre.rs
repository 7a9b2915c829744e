//! `spectre`: the host side of the SMCCC_ARCH_WORKAROUND_1/2/3 scenario. The crate
//! answers the guest itself; here the host checks, at the guest's TEST_CALL(0x60,
//! WORKAROUND_1/2/3 answers it saw), that they are the crate's decision for this core
//! (logged at boot with what QEMU's firmware answered) and that none of the guest's
//! workaround calls reached the firmware: QEMU 7.2's has no SMCCC 1.1, so no
//! workaround can be "implemented by firmware".

use alloc::boxed::Box;
use arm_vcpu::workaround::Mitigation;

use super::{Scenario, VmInfo};

pub fn by_name(name: &str) -> Option<Box<dyn Scenario>> {
    match name {
        "spectre" => Some(Box::new(Spectre::default())),
        _ => None,
    }
}

#[derive(Default)]
struct Spectre {
    reported: bool,
    failure: Option<&'static str>,
}

impl Spectre {
    fn fail(&mut self, why: &'static str) {
        crate::println!("spectre host check failed: {}", why);
        self.failure.get_or_insert(why);
    }
}

impl Scenario for Spectre {
    fn test_call(
        &mut self,
        _cpu: usize,
        a: &[u64; 7],
        vm: &mut VmInfo,
    ) -> Result<u64, &'static str> {
        if a[1] != 0x60 {
            return Err("spectre: unknown TEST_CALL");
        }
        self.reported = true;
        let w = *vm.vcpu.workarounds();
        crate::println!(
            "spectre host: guest saw WORKAROUND_1/2/3 = {}, {}, {}; the crate decided {:?}, \
             {:?}, {:?}; calls made to the firmware: {}",
            a[2] as i64,
            a[3] as i64,
            a[4] as i64,
            w.wa1,
            w.wa2,
            w.wa3,
            vm.vcpu.workaround_calls_forwarded()
        );
        for (seen, m) in [(a[2], w.wa1), (a[3], w.wa2), (a[4], w.wa3)] {
            if seen != m.features_answer() as i64 as u64 {
                self.fail("the guest's SMCCC_ARCH_FEATURES answer is not the crate's decision");
            }
            if m == Mitigation::Firmware {
                self.fail("a workaround offered as implemented by QEMU's firmware, which has none");
            }
        }
        if vm.vcpu.workaround_calls_forwarded() != 0 {
            self.fail("workaround call(s) reached the firmware");
        }
        Ok(u64::from(self.failure.is_some()))
    }

    fn finish(&mut self, guest_failures: u64, _vm: &VmInfo) -> Result<(), &'static str> {
        if !self.reported {
            return Err("spectre: the guest never reported (TEST_CALL 0x60)");
        }
        if let Some(why) = self.failure {
            return Err(why);
        }
        if guest_failures != 0 {
            return Err("guest checks failed");
        }
        Ok(())
    }
}
