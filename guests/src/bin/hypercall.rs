//! `hypercall`: N TEST_CALLs with six arguments each, checking every result.
#![no_std]
#![no_main]

use guests::hvc;
use guests::rt::{Checks, Entry};

guests::guest_main!("hypercall", main);

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
const STEP: u64 = 0x0101_0101_0101_0101;

fn main(c: &mut Checks, entry: Entry) {
    let n = entry.iters();
    for i in 0..n {
        let base = i.wrapping_mul(GOLDEN);
        let mut args = [0u64; 6];
        let mut sum = 0u64;
        for (k, a) in (1u64..).zip(args.iter_mut()) {
            *a = base.wrapping_add(k.wrapping_mul(STEP));
            sum = sum.wrapping_add(*a);
        }
        let got = hvc::test_call(args);
        c.check_eq(
            format_args!("TEST_CALL #{i} (args {args:#x?})"),
            got,
            sum ^ i,
        );
    }
}
