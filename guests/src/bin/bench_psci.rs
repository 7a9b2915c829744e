//! `bench-psci`: N PSCI_VERSION calls through `hvc #0` (answered inside the crate),
//! each checked = 0x10001.
#![no_std]
#![no_main]

use core::arch::asm;
use guests::rt::{Checks, Entry};

use guests::{println, sysreg};

guests::guest_main!("bench-psci", main);

/// PSCI_VERSION function ID.
const PSCI_VERSION: u64 = 0x8400_0000;
/// PSCI 1.1.
const V1_1: u64 = 0x1_0001;

/// PSCI_VERSION through `hvc #0`; lean for the benchmark loop (x1..x3 are not set up:
/// PSCI_VERSION takes no arguments).
#[inline(always)]
fn psci_version() -> u64 {
    let x0: u64;
    // SAFETY: `hvc #0` traps to the hypervisor; an SMCCC call answered by the crate
    // changes at most x0..x3 (declared here) and does not touch the stack.
    unsafe {
        asm!(
            "hvc #0",
            inout("x0") PSCI_VERSION => x0,
            lateout("x1") _,
            lateout("x2") _,
            lateout("x3") _,
            options(nostack, nomem),
        );
    }
    x0
}

fn main(c: &mut Checks, entry: Entry) {
    let n = entry.iters();
    let mut diff = 0u64;
    let start = sysreg::cntvct();
    for _ in 0..n {
        diff |= psci_version() ^ V1_1;
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
