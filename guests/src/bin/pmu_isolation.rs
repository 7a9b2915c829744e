//! `pmu-isolation`: two VMs (x2 = role 0 or 1) time-sliced on one core, each with the
//! virtual PMU (docs/test-protocol.md, "Issue 13"). Each counts its own work with the
//! cycle counter and an event counter, and keeps role-specific values in a disabled
//! counter, its type, `PMSELR_EL0`, `PMUSERENR_EL0` and `PMINTENSET_EL1`, checked after
//! every round:
//!
//! - the values are still its own (the other VM's never show);
//! - the cycle counter advanced by less than 85% of the wall-clock time (the virtual
//!   count) the rounds took: the other VM ran about half of it, and that time is not
//!   counted; and it did count (more than 10%).
//!
//! It runs until the host reports `iters` VM switches (TEST_CALL(0x81)).
#![no_std]
#![no_main]

use guests::rt::{Checks, Entry};
use guests::{hvc, println, read_sysreg, sysreg};

guests::guest_main!("pmu-isolation", main, x2_argument);

macro_rules! wr {
    ($name:literal, $v:expr) => {{
        let v: u64 = $v;
        // SAFETY: `msr` to a PMU register: no memory the compiler uses is affected.
        unsafe { core::arch::asm!(concat!("msr ", $name, ", {}"), "isb", in(reg) v, options(nostack)) };
    }};
}

const CYCLE: u64 = 1 << 31;
/// Upper bound on rounds (each ~100k instructions).
const MAX_ROUNDS: u64 = 20_000;

fn ccntr() -> u64 {
    // SAFETY: `isb` orders the read after the work measured.
    unsafe { core::arch::asm!("isb", options(nomem, nostack, preserves_flags)) };
    read_sysreg!("S3_3_C9_C13_0")
}

fn work(n: u64) {
    // SAFETY: a register-only loop.
    unsafe {
        core::arch::asm!("1: subs {0}, {0}, #1", "b.ne 1b", inout(reg) n.max(1) => _, options(nomem, nostack))
    };
}

fn main(c: &mut Checks, entry: Entry) {
    let role = entry.x2 & 1;
    let want = entry.iters();
    let pattern = 0xa0a0_0000 + (role << 12) + 0x5a;
    // Counter 1 disabled, holding the pattern; its type role-specific; counter 0 and
    // the cycle counter count EL1/EL0 work.
    wr!("S3_3_C9_C12_0", 1 | 2 | 4); // PMCR_EL0: E, counters reset
    wr!("S3_3_C14_C8_1", pattern); // PMEVCNTR1_EL0
    wr!("S3_3_C14_C12_1", 0x11 | (role + 1) << 30); // PMEVTYPER1_EL0: U or P
    wr!("S3_3_C14_C12_0", 0x11); // PMEVTYPER0_EL0: CPU_CYCLES
    wr!("S3_3_C14_C15_7", 0); // PMCCFILTR_EL0
    wr!("S3_3_C9_C12_5", 2 + role); // PMSELR_EL0
    wr!("S3_3_C9_C14_0", role); // PMUSERENR_EL0
    wr!("S3_0_C9_C14_1", 1 << (2 + role)); // PMINTENSET_EL1 (counter 2/3: never overflow)
    wr!("S3_3_C9_C12_1", CYCLE | 1);
    let n = hvc::k(0xE0);
    c.check_eq(
        format_args!("PMCR_EL0.N"),
        read_sysreg!("S3_3_C9_C12_0") >> 11 & 0x1f,
        n,
    );
    let freq = sysreg::cntfrq().max(1);
    let (mut counted, mut wall, mut rounds) = (0u64, 0u64, 0u64);
    let mut switches = 0;
    while rounds < MAX_ROUNDS {
        rounds += 1;
        let (t0, c0) = (sysreg::cntvct(), ccntr());
        work(50_000);
        let (t1, c1) = (sysreg::cntvct(), ccntr());
        counted += c1.wrapping_sub(c0);
        wall += (t1 - t0) * 1_000_000_000 / freq;
        let own = [
            ("PMEVCNTR1_EL0", read_sysreg!("S3_3_C14_C8_1"), pattern),
            (
                "PMEVTYPER1_EL0",
                read_sysreg!("S3_3_C14_C12_1"),
                0x11 | (role + 1) << 30,
            ),
            ("PMSELR_EL0", read_sysreg!("S3_3_C9_C12_5"), 2 + role),
            ("PMUSERENR_EL0", read_sysreg!("S3_3_C9_C14_0"), role),
            (
                "PMINTENSET_EL1",
                read_sysreg!("S3_0_C9_C14_1"),
                1 << (2 + role),
            ),
            ("PMCNTENSET_EL0", read_sysreg!("S3_3_C9_C12_1"), CYCLE | 1),
        ];
        for (name, got, expected) in own {
            if !c.check_eq(format_args!("round {rounds}: {name}"), got, expected) {
                return;
            }
        }
        if rounds.is_multiple_of(8) {
            switches = hvc::k(0x81);
            if switches >= want {
                break;
            }
        }
    }
    println!(
        "guest pmu-isolation {role}: {rounds} rounds, {switches} VM switches, counted {counted} cycles in {wall} ns"
    );
    c.check(
        switches >= want,
        format_args!("only {switches} VM switches"),
    );
    c.check(
        counted < wall / 100 * 85,
        format_args!("the cycle counter counted another VM's time: {counted} cycles in {wall} ns"),
    );
    c.check(
        counted > wall / 10,
        format_args!("the cycle counter hardly counted: {counted} cycles in {wall} ns"),
    );
}
