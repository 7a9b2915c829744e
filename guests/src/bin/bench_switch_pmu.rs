//! `bench-switch-pmu` (N = iters): `bench-switch` with both vCPUs counting — each
//! enables its cycle counter before it starts yielding, so every bind loads its PMU
//! state (its counters must run) and every unbind saves it. vCPU 0 starts vCPU 1
//! (PSCI CPU_ON) and then YIELDs N times; vCPU 1 YIELDs forever. At the end vCPU 0
//! checks its cycle counter counted (it ran between the switches) and kept counting.
#![no_std]
#![no_main]

use guests::rt::{Checks, Entry};
use guests::{read_sysreg, switch};

guests::guest_main!("bench-switch-pmu", main);

#[repr(C, align(16))]
struct Stack([u8; 4096]);
#[no_mangle]
static mut BENCH_SWITCH_PMU_STACK1: Stack = Stack([0; 4096]);

core::arch::global_asm!(
    guests::asm_macros!(),
    ".section .text, \"ax\"",
    ".global bench_switch_pmu_secondary",
    ".balign 4",
    "bench_switch_pmu_secondary:",
    "    secondary_start BENCH_SWITCH_PMU_STACK1, 4096",
    // PMCR_EL0.E, PMCNTENSET_EL0.C: the cycle counter runs.
    "    mov x9, #1",
    "    msr S3_3_C9_C12_0, x9",
    "    mov x9, #0x80000000",
    "    msr S3_3_C9_C12_1, x9",
    "    isb",
    "    yield_forever",
);

extern "C" {
    fn bench_switch_pmu_secondary();
}

fn pmu_on() {
    // SAFETY: PMCR_EL0.E and PMCNTENSET_EL0.C: the cycle counter counts; no memory
    // effect.
    unsafe {
        core::arch::asm!("msr S3_3_C9_C12_0, {0}", "msr S3_3_C9_C12_1, {1}", "isb",
            in(reg) 1u64, in(reg) 1u64 << 31, options(nomem, nostack))
    };
}

fn main(c: &mut Checks, entry: Entry) {
    pmu_on();
    switch::start_secondary(c, bench_switch_pmu_secondary);
    let c0 = read_sysreg!("S3_3_C9_C13_0");
    switch::yields(c, entry.iters());
    let c1 = read_sysreg!("S3_3_C9_C13_0");
    c.check(
        c1 > c0,
        format_args!("the cycle counter did not count: {c0} -> {c1}"),
    );
}
