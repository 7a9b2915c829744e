//! `bench-fp` (N = iters): N rounds of YIELD (unbind + bind of this vCPU: with lazy
//! FP/SIMD switching its registers are saved and not reloaded) followed by the first
//! FP/SIMD instruction after the bind, which traps and makes the crate load them.
//! Checks that D0 survives every round: it must hold what the previous round wrote.
#![no_std]
#![no_main]

use core::arch::asm;

use guests::hvc;
use guests::rt::{Checks, Entry};

guests::guest_main!("bench-fp", main);

/// Reads D0 (the first FP/SIMD use after a bind traps to EL2 once).
#[inline(always)]
fn read_d0() -> u64 {
    let v: u64;
    // SAFETY: an FP move from D0; FP/SIMD is enabled at EL1 (CPACR_EL1.FPEN) by `main`.
    // The soft-float compiler never uses V registers, so nothing else lives in D0.
    unsafe {
        asm!(".arch_extension fp", "fmov {0}, d0", out(reg) v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Writes D0.
#[inline(always)]
fn write_d0(v: u64) {
    // SAFETY: as in `read_d0`.
    unsafe {
        asm!(".arch_extension fp", "fmov d0, {0}", in(reg) v, options(nomem, nostack, preserves_flags))
    };
}

fn main(c: &mut Checks, entry: Entry) {
    // CPACR_EL1.FPEN = 0b11: FP/SIMD not trapped at EL1/EL0 (only EL2's lazy trap).
    // SAFETY: enabling FP/SIMD for this EL1 program; ISB makes it take effect.
    unsafe {
        asm!("mrs {t}, cpacr_el1", "orr {t}, {t}, #(3 << 20)", "msr cpacr_el1, {t}", "isb", t = out(reg) _)
    };
    write_d0(0x1234_5678_9abc_def0);
    let mut expect = 0x1234_5678_9abc_def0u64;
    let mut bad = 0u64;
    for i in 0..entry.iters() {
        hvc::call(hvc::YIELD, [0; 6]);
        bad += (read_d0() != expect) as u64;
        expect = expect.rotate_left(1) ^ i;
        write_d0(expect);
    }
    c.check_eq(
        format_args!("rounds where D0 did not survive the switch"),
        bad,
        0,
    );
}
