//! `bench-yield` (N = iters): N YIELD hypercalls on a one-vCPU VM: each is an unbind
//! and a bind of the same vCPU (no other vCPU to run). Checks every YIELD returns 0.
#![no_std]
#![no_main]

use guests::hvc;
use guests::rt::{Checks, Entry};

guests::guest_main!("bench-yield", main);

fn main(c: &mut Checks, entry: Entry) {
    let mut bad = 0u64;
    for _ in 0..entry.iters() {
        bad += (hvc::call(hvc::YIELD, [0; 6]) != 0) as u64;
    }
    c.check_eq(format_args!("YIELD calls that did not return 0"), bad, 0);
}
