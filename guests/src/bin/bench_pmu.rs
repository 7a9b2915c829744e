//! `bench-pmu` (N = iters): N rounds of YIELD (unbind + bind of this vCPU: its counters
//! are not running, so the bind does not load its PMU state) followed by the first PMU
//! register access after the bind, which traps and makes the crate save the host's PMU
//! registers of the VM's range and load the vCPU's (the unbind then saves them and
//! restores the host's). Checks that PMCCFILTR_EL0 survives every round.
#![no_std]
#![no_main]

use guests::rt::{Checks, Entry};
use guests::{hvc, read_sysreg};

guests::guest_main!("bench-pmu", main);

fn set_ccfiltr(v: u64) {
    // SAFETY: `msr` to the cycle counter's filter: no memory effect.
    unsafe { core::arch::asm!("msr S3_3_C14_C15_7, {0}", in(reg) v, options(nomem, nostack)) };
}

fn main(c: &mut Checks, entry: Entry) {
    // P, U: the filter bits a guest keeps (the counter itself stays disabled).
    let bits = [0, 1 << 31, 1 << 30, 3 << 30];
    let mut k = 0;
    set_ccfiltr(bits[k]);
    let mut bad = 0u64;
    for _ in 0..entry.iters() {
        hvc::call(hvc::YIELD, [0; 6]);
        bad += (read_sysreg!("S3_3_C14_C15_7") != bits[k]) as u64;
        k = (k + 1) % bits.len();
        set_ccfiltr(bits[k]);
    }
    c.check_eq(
        format_args!("rounds where PMCCFILTR_EL0 did not survive the switch"),
        bad,
        0,
    );
}
