//! `bench-hvc`: N NULL hypercalls in a tight loop.
#![no_std]
#![no_main]

use guests::rt::{Checks, Entry};
use guests::{hvc, println, sysreg};

guests::guest_main!("bench-hvc", main);

fn main(c: &mut Checks, entry: Entry) {
    let n = entry.iters();
    let mut bad = 0u64;
    let start = sysreg::cntvct();
    for _ in 0..n {
        // OR-ing the results keeps the loop to one hvc and an orr per iteration.
        bad |= hvc::null();
    }
    let ticks = sysreg::cntvct().wrapping_sub(start);
    c.check_eq(format_args!("OR of all {n} NULL results"), bad, 0);
    println!(
        "guest bench-hvc: {n} NULL hypercalls in {ticks} ticks of CNTVCT ({} Hz)",
        sysreg::cntfrq()
    );
}
