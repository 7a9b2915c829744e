//! `sysreg`: trapped ID register reads (HCR_EL2.TID3) and the virtual MPIDR_EL1.
#![no_std]
#![no_main]

use core::arch::asm;

use guests::rt::{Checks, Entry};
use guests::{hvc, read_sysreg};

guests::guest_main!("sysreg", main);

/// The hypervisor's answer to a trapped ID register read.
const fn answer(key: u64) -> u64 {
    0x1D00_0000_0000_0000 | key
}

/// Reads the same register again with x30 as the destination (Rt = 30, the last
/// general-purpose register number before XZR).
macro_rules! read_into_x30 {
    ($name:literal) => {{
        let v: u64;
        // SAFETY: `mrs` only writes x30, which is declared as an output.
        unsafe { asm!(concat!("mrs x30, ", $name), out("x30") v, options(nostack)) };
        v
    }};
}

fn main(c: &mut Checks, _entry: Entry) {
    let mut trapped_reads = 0u64;

    // (name, key = op0<<16 | op1<<12 | CRn<<8 | CRm<<4 | op2, value read, value read into x30)
    let reads = [
        (
            "ID_AA64PFR0_EL1",
            0x30040,
            read_sysreg!("S3_0_C0_C4_0"),
            read_into_x30!("S3_0_C0_C4_0"),
        ),
        (
            "ID_AA64DFR0_EL1",
            0x30050,
            read_sysreg!("S3_0_C0_C5_0"),
            read_into_x30!("S3_0_C0_C5_0"),
        ),
        (
            "ID_AA64ISAR0_EL1",
            0x30060,
            read_sysreg!("S3_0_C0_C6_0"),
            read_into_x30!("S3_0_C0_C6_0"),
        ),
        (
            "ID_AA64MMFR0_EL1",
            0x30070,
            read_sysreg!("S3_0_C0_C7_0"),
            read_into_x30!("S3_0_C0_C7_0"),
        ),
    ];
    for (name, key, v, v30) in reads {
        trapped_reads += 2;
        c.check_eq(format_args!("{name} (key {key:#x})"), v, answer(key));
        c.check_eq(
            format_args!("{name} (key {key:#x}) read into x30"),
            v30,
            answer(key),
        );
    }

    // Not trapped: EL1 reads of MPIDR_EL1 return VMPIDR_EL2.
    c.check_eq(
        format_args!("MPIDR_EL1"),
        read_sysreg!("mpidr_el1"),
        0x8000_0000,
    );

    c.check_eq(
        format_args!("TEST_CALL(0x21, {trapped_reads} trapped reads): host count mismatch"),
        hvc::test_call([0x21, trapped_reads, 0, 0, 0, 0]),
        0,
    );
}
