//! `bench-sysreg`: N reads of ID_AA64PFR0_EL1 (trapped by HCR_EL2.TID3, answered
//! inside the crate from the VM's sanitized view), each checked equal to the first.
#![no_std]
#![no_main]

use guests::rt::{Checks, Entry};
use guests::{println, read_sysreg, sysreg};

guests::guest_main!("bench-sysreg", main);

fn main(c: &mut Checks, entry: Entry) {
    let n = entry.iters();
    let first = read_sysreg!("id_aa64pfr0_el1");
    // The sanitized view hides EL2: a non-zero field means the read was not answered
    // by the crate (not trapped, or handed to the host).
    c.check_eq(
        format_args!("ID_AA64PFR0_EL1.EL2 [11:8] (sanitized)"),
        (first >> 8) & 0xf,
        0,
    );
    let mut diff = 0u64;
    let start = sysreg::cntvct();
    for _ in 0..n {
        // OR-ing the differences keeps the loop to one mrs, an eor and an orr.
        diff |= read_sysreg!("id_aa64pfr0_el1") ^ first;
    }
    let ticks = sysreg::cntvct().wrapping_sub(start);
    c.check_eq(
        format_args!(
            "OR of (read ^ first read) over {n} reads of ID_AA64PFR0_EL1 (first {first:#x})"
        ),
        diff,
        0,
    );
    println!(
        "guest bench-sysreg: {n} ID_AA64PFR0_EL1 reads in {ticks} ticks of CNTVCT ({} Hz)",
        sysreg::cntfrq()
    );
}
