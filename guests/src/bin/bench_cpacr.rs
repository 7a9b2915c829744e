//! `bench-cpacr`: N writes of CPACR_EL1 (FPEN = 0b11), each trapped by CPTR_EL2.TCPAC
//! on hosts with SVE, SME, trace or S1POE (QEMU's `-cpu max` has SVE and SME) and
//! answered inside the crate, which keeps the hidden features' fields at 0; then one
//! read, checked to hold FPEN only. What the CPACR_EL1 emulation costs per access.
#![no_std]
#![no_main]

use core::arch::asm;

use guests::rt::{Checks, Entry};
use guests::{println, read_sysreg, sysreg};

guests::guest_main!("bench-cpacr", main);

/// CPACR_EL1.FPEN = 0b11, ZEN = 0b11 (ZEN must read back as 0: SVE is hidden).
const WRITE: u64 = (3 << 20) | (3 << 16);

fn main(c: &mut Checks, entry: Entry) {
    let n = entry.iters();
    let start = sysreg::cntvct();
    for _ in 0..n {
        // SAFETY: FP/SIMD enabled at EL1/EL0 and an SVE field the VM does not have; no
        // memory is touched and this soft-float program uses no FP/SIMD register.
        unsafe { asm!("msr cpacr_el1, {0}", in(reg) WRITE, options(nostack, preserves_flags)) };
    }
    let ticks = sysreg::cntvct().wrapping_sub(start);
    c.check_eq(
        format_args!("CPACR_EL1 after {n} writes of {WRITE:#x}"),
        read_sysreg!("cpacr_el1"),
        3 << 20,
    );
    println!(
        "guest bench-cpacr: {n} CPACR_EL1 writes in {ticks} ticks of CNTVCT ({} Hz)",
        sysreg::cntfrq()
    );
}
