//! The GICv3 virtual CPU interface system registers (`ICH_*_EL2`, IHI 0069)
//! and `ICC_SRE_EL2`, for [`crate::vgic::v3::Ich`].

use core::arch::asm;

use crate::vgic::v3::{IchAccess, IchReg};

/// The calling core's `ICH_*_EL2` registers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SysRegs;

/// Reads `ICH_LR<n>_EL2` (n < 16; others read as 0).
fn lr(n: usize) -> u64 {
    match n {
        0 => read_sysreg!("S3_4_C12_C12_0"),
        1 => read_sysreg!("S3_4_C12_C12_1"),
        2 => read_sysreg!("S3_4_C12_C12_2"),
        3 => read_sysreg!("S3_4_C12_C12_3"),
        4 => read_sysreg!("S3_4_C12_C12_4"),
        5 => read_sysreg!("S3_4_C12_C12_5"),
        6 => read_sysreg!("S3_4_C12_C12_6"),
        7 => read_sysreg!("S3_4_C12_C12_7"),
        8 => read_sysreg!("S3_4_C12_C13_0"),
        9 => read_sysreg!("S3_4_C12_C13_1"),
        10 => read_sysreg!("S3_4_C12_C13_2"),
        11 => read_sysreg!("S3_4_C12_C13_3"),
        12 => read_sysreg!("S3_4_C12_C13_4"),
        13 => read_sysreg!("S3_4_C12_C13_5"),
        14 => read_sysreg!("S3_4_C12_C13_6"),
        15 => read_sysreg!("S3_4_C12_C13_7"),
        _ => 0,
    }
}

/// Writes `ICH_LR<n>_EL2` (n < 16; others ignored).
fn set_lr(n: usize, v: u64) {
    match n {
        0 => write_sysreg!("S3_4_C12_C12_0", v),
        1 => write_sysreg!("S3_4_C12_C12_1", v),
        2 => write_sysreg!("S3_4_C12_C12_2", v),
        3 => write_sysreg!("S3_4_C12_C12_3", v),
        4 => write_sysreg!("S3_4_C12_C12_4", v),
        5 => write_sysreg!("S3_4_C12_C12_5", v),
        6 => write_sysreg!("S3_4_C12_C12_6", v),
        7 => write_sysreg!("S3_4_C12_C12_7", v),
        8 => write_sysreg!("S3_4_C12_C13_0", v),
        9 => write_sysreg!("S3_4_C12_C13_1", v),
        10 => write_sysreg!("S3_4_C12_C13_2", v),
        11 => write_sysreg!("S3_4_C12_C13_3", v),
        12 => write_sysreg!("S3_4_C12_C13_4", v),
        13 => write_sysreg!("S3_4_C12_C13_5", v),
        14 => write_sysreg!("S3_4_C12_C13_6", v),
        15 => write_sysreg!("S3_4_C12_C13_7", v),
        _ => {}
    }
}

/// `ICH_AP0R<n>_EL2` / `ICH_AP1R<n>_EL2` (n < 4; others read as 0).
fn apr(group1: bool, n: usize) -> u64 {
    match (group1, n) {
        (false, 0) => read_sysreg!("S3_4_C12_C8_0"),
        (false, 1) => read_sysreg!("S3_4_C12_C8_1"),
        (false, 2) => read_sysreg!("S3_4_C12_C8_2"),
        (false, 3) => read_sysreg!("S3_4_C12_C8_3"),
        (true, 0) => read_sysreg!("S3_4_C12_C9_0"),
        (true, 1) => read_sysreg!("S3_4_C12_C9_1"),
        (true, 2) => read_sysreg!("S3_4_C12_C9_2"),
        (true, 3) => read_sysreg!("S3_4_C12_C9_3"),
        _ => 0,
    }
}

fn set_apr(group1: bool, n: usize, v: u64) {
    match (group1, n) {
        (false, 0) => write_sysreg!("S3_4_C12_C8_0", v),
        (false, 1) => write_sysreg!("S3_4_C12_C8_1", v),
        (false, 2) => write_sysreg!("S3_4_C12_C8_2", v),
        (false, 3) => write_sysreg!("S3_4_C12_C8_3", v),
        (true, 0) => write_sysreg!("S3_4_C12_C9_0", v),
        (true, 1) => write_sysreg!("S3_4_C12_C9_1", v),
        (true, 2) => write_sysreg!("S3_4_C12_C9_2", v),
        (true, 3) => write_sysreg!("S3_4_C12_C9_3", v),
        _ => {}
    }
}

impl IchAccess for SysRegs {
    #[inline(always)]
    fn sync(&mut self) {
        crate::hw::isb();
    }

    #[inline(always)]
    fn read(&mut self, r: IchReg) -> u64 {
        match r {
            IchReg::Lr(n) => lr(n),
            IchReg::Hcr => read_sysreg!("S3_4_C12_C11_0"),
            IchReg::Misr => read_sysreg!("S3_4_C12_C11_2"),
            IchReg::Elrsr => read_sysreg!("S3_4_C12_C11_5"),
            IchReg::Vmcr => read_sysreg!("S3_4_C12_C11_7"),
            IchReg::Ap0r(n) => apr(false, n),
            IchReg::Ap1r(n) => apr(true, n),
        }
    }

    #[inline(always)]
    fn write(&mut self, r: IchReg, v: u64) {
        match r {
            IchReg::Lr(n) => set_lr(n, v),
            IchReg::Hcr => write_sysreg!("S3_4_C12_C11_0", v),
            IchReg::Vmcr => write_sysreg!("S3_4_C12_C11_7", v),
            // Read-only.
            IchReg::Misr | IchReg::Elrsr => {}
            IchReg::Ap0r(n) => set_apr(false, n, v),
            IchReg::Ap1r(n) => set_apr(true, n, v),
        }
    }
}

/// `ICH_VTR_EL2`.
pub(crate) fn vtr() -> u64 {
    read_sysreg!("S3_4_C12_C11_1")
}

/// Turns on the system-register interface for EL2 and lets EL1 use it
/// (`ICC_SRE_EL2.SRE` \[0\] and `.Enable` \[3\]); returns whether SRE reads back as 1
/// (a GICv3 in legacy-only operation keeps it 0). Only on a CPU whose
/// `ID_AA64PFR0_EL1.GIC` is not 0 (`ICC_SRE_EL2` is UNDEFINED otherwise).
pub(crate) fn enable_sre() -> bool {
    let v: u64 = read_sysreg!("S3_4_C12_C9_5");
    write_sysreg!("S3_4_C12_C9_5", v | 0b1001);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    let v: u64 = read_sysreg!("S3_4_C12_C9_5");
    v & 1 != 0
}
