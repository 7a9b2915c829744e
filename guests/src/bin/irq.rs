//! `irq`: polls TEST_CALL(0x31) until the host reports 3 external interrupt exits.
#![no_std]
#![no_main]

use guests::rt::{Checks, Entry};
use guests::{hvc, println, sysreg};

guests::guest_main!("irq", main);

/// Interrupt exits the host must report.
const WANTED: u64 = 3;
/// Upper bound on polls (each one is a hypercall round trip).
const MAX_POLLS: u64 = 2_000_000;
/// Upper bound on guest time, in seconds (the timer fires every ~1 ms).
const MAX_SECONDS: u64 = 5;

fn main(c: &mut Checks, _entry: Entry) {
    let freq = sysreg::cntfrq();
    c.check(freq != 0, format_args!("CNTFRQ_EL0 is 0"));
    let deadline = sysreg::cntvct().saturating_add(freq.saturating_mul(MAX_SECONDS));

    let mut last = 0u64;
    let mut polls = 0u64;
    while polls < MAX_POLLS {
        polls += 1;
        let seen = hvc::k(0x31);
        if seen < last {
            c.fail(format_args!(
                "interrupt exit count went backwards: {last} -> {seen}"
            ));
            return;
        }
        last = seen;
        if seen >= WANTED {
            println!("guest irq: host reports {seen} interrupt exits after {polls} polls");
            return;
        }
        // The deadline only matters if the counter runs; MAX_POLLS bounds it anyway.
        if polls.is_multiple_of(256) && freq != 0 && sysreg::cntvct() > deadline {
            break;
        }
    }
    c.fail(format_args!(
        "host reported only {last} of {WANTED} interrupt exits after {polls} polls"
    ));
}
