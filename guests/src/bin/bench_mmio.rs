//! `bench-mmio`: N 32-bit loads of the test device's read-only pattern.
#![no_std]
#![no_main]

use guests::mmio::{self, TESTDEV_BASE, TESTDEV_PATTERN, TESTDEV_PATTERN_OFF};
use guests::rt::{Checks, Entry};
use guests::{println, sysreg};

guests::guest_main!("bench-mmio", main);

fn main(c: &mut Checks, entry: Entry) {
    let n = entry.iters();
    let addr = TESTDEV_BASE + TESTDEV_PATTERN_OFF;
    let expected = TESTDEV_PATTERN & 0xFFFF_FFFF;
    let mut mismatches = 0u64;
    let start = sysreg::cntvct();
    for _ in 0..n {
        mismatches += u64::from(mmio::read32(addr) != expected);
    }
    let ticks = sysreg::cntvct().wrapping_sub(start);
    // One check: every load returned the pattern (so EXIT is 0 or 1).
    if mismatches != 0 {
        let now = mmio::read32(addr);
        c.fail(format_args!(
            "{mismatches} of {n} loads (ldr w) of {addr:#x} were not {expected:#x} \
             (one more load now: {now:#018x})"
        ));
    }
    println!(
        "guest bench-mmio: {n} MMIO loads in {ticks} ticks of CNTVCT ({} Hz)",
        sysreg::cntfrq()
    );
}
