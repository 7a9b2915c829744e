//! `bench-debug` (N = iters): N rounds of YIELD (unbind + bind of this vCPU: its
//! MDSCR_EL1 enables nothing, so the bind does not load its debug state) followed by
//! the first debug register access after the bind, which traps and makes the crate
//! save the host's debug registers and load the vCPU's (the unbind then saves them
//! and restores the host's). Checks that DBGBVR0_EL1 survives every round.
#![no_std]
#![no_main]

use guests::debug as dbg;
use guests::hvc;
use guests::rt::{Checks, Entry};

guests::guest_main!("bench-debug", main);

fn main(c: &mut Checks, entry: Entry) {
    let mut expect = 0x0000_0000_4008_0000u64;
    dbg::set_bvr(0, expect);
    let mut bad = 0u64;
    for _ in 0..entry.iters() {
        hvc::call(hvc::YIELD, [0; 6]);
        bad += (dbg::bvr(0) != expect) as u64;
        expect = (expect + 4) & 0x0000_ffff_ffff_fffc;
        dbg::set_bvr(0, expect);
    }
    c.check_eq(
        format_args!("rounds where DBGBVR0_EL1 did not survive the switch"),
        bad,
        0,
    );
}
