//! `bench-psci`: N PSCI_VERSION calls through `hvc #0` (answered inside the crate),
//! each checked = 0x10001.
#![no_std]
#![no_main]

use guests::rt::{Checks, Entry};
use guests::{hvc, println, sysreg};

guests::guest_main!("bench-psci", main);

/// PSCI_VERSION function ID.
const PSCI_VERSION: u64 = 0x8400_0000;
/// PSCI 1.1.
const V1_1: u64 = 0x1_0001;

fn main(c: &mut Checks, entry: Entry) {
    let n = entry.iters();
    let mut diff = 0u64;
    let start = sysreg::cntvct();
    for _ in 0..n {
        diff |= hvc::call0(PSCI_VERSION) ^ V1_1;
    }
    let ticks = sysreg::cntvct().wrapping_sub(start);
    c.check_eq(
        format_args!("OR of (PSCI_VERSION ^ 0x10001) over {n} calls"),
        diff,
        0,
    );
    println!(
        "guest bench-psci: {n} PSCI_VERSION calls in {ticks} ticks of CNTVCT ({} Hz)",
        sysreg::cntfrq()
    );
}
