//! What a guest expects from SMCCC_ARCH_FEATURES(SMCCC_ARCH_WORKAROUND_1/2/3) under the
//! reference hypervisor on QEMU (see docs/test-protocol.md, `spectre`): QEMU 7.2's
//! firmware offers no SMCCC 1.1, so only the CPU decides. A workaround is "not required
//! on this PE" (1) where the CPU proves it — `ID_AA64PFR0_EL1.CSV2` ≥ 1 for
//! WORKAROUND_1, `ID_AA64PFR1_EL1.SSBS` ≥ 1 for WORKAROUND_2, for WORKAROUND_3 (which
//! covers WORKAROUND_1's vulnerability too) WORKAROUND_1 not required and `CSV2` ≥ 3
//! or `ID_AA64MMFR1_EL1.ECBHB` ≥ 1 — or the core is an in-order Cortex-A35/A53/A55;
//! otherwise it is NOT_SUPPORTED (-1): needed or not known to be unneeded, and no
//! firmware implements it.

/// NOT_SUPPORTED as the guest's x0.
pub const NOT_SUPPORTED: u64 = -1i64 as u64;

/// The speculation facts a guest reads (from the hypervisor's ID view and VPIDR).
#[derive(Clone, Copy, Debug)]
pub struct Facts {
    /// `MIDR_EL1`.
    pub midr: u64,
    /// `ID_AA64PFR0_EL1.CSV2`.
    pub csv2: u64,
    /// `ID_AA64PFR0_EL1.CSV3`.
    pub csv3: u64,
    /// `ID_AA64PFR1_EL1.SSBS`.
    pub ssbs: u64,
    /// `ID_AA64MMFR1_EL1.ECBHB`.
    pub ecbhb: u64,
}

impl Facts {
    /// Reads them.
    pub fn read() -> Self {
        let pfr0 = crate::read_sysreg!("S3_0_C0_C4_0");
        let pfr1 = crate::read_sysreg!("S3_0_C0_C4_1");
        let mmfr1 = crate::read_sysreg!("S3_0_C0_C7_1");
        Self {
            midr: crate::read_sysreg!("midr_el1"),
            csv2: (pfr0 >> 56) & 0xf,
            csv3: (pfr0 >> 60) & 0xf,
            ssbs: (pfr1 >> 4) & 0xf,
            ecbhb: (mmfr1 >> 60) & 0xf,
        }
    }

    /// An Arm in-order core (Cortex-A35, A53, A55).
    pub fn in_order(&self) -> bool {
        (self.midr >> 24) & 0xff == 0x41 && matches!((self.midr >> 4) & 0xfff, 0xD03..=0xD05)
    }

    /// Expected SMCCC_ARCH_FEATURES answers for WORKAROUND_1, _2, _3 with a firmware
    /// that has none.
    pub fn expected(&self) -> [u64; 3] {
        let not_required = |proof: bool| {
            if proof || self.in_order() {
                1
            } else {
                NOT_SUPPORTED
            }
        };
        let wa1 = not_required(self.csv2 >= 1);
        [
            wa1,
            not_required(self.ssbs >= 1),
            not_required(wa1 == 1 && (self.csv2 >= 3 || self.ecbhb >= 1)),
        ]
    }

    /// What a call of the workaround returns: 0 where it is not required (a harmless
    /// call), else the same NOT_SUPPORTED (nothing is called).
    pub fn call_result(answer: u64) -> u64 {
        if answer == 1 {
            0
        } else {
            answer
        }
    }
}
