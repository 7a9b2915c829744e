//! `bench-switch-pmu` (N = iters): `bench-switch` with both vCPUs counting — each
//! enables its cycle counter before it starts yielding, so every bind loads its PMU
//! state (its counters must run) and every unbind saves it. vCPU 0 starts vCPU 1
//! (PSCI CPU_ON) and then YIELDs N times; vCPU 1 YIELDs forever. At the end vCPU 0
//! checks its cycle counter counted (it ran between the switches) and kept counting.
#![no_std]
#![no_main]

use guests::rt::{Checks, Entry};
use guests::{hvc, read_sysreg};

guests::guest_main!("bench-switch-pmu", main);

const CPU_ON_64: u64 = 0xC400_0003;

#[repr(C, align(16))]
struct Stack([u8; 4096]);
#[no_mangle]
static mut BENCH_SWITCH_PMU_STACK1: Stack = Stack([0; 4096]);

core::arch::global_asm!(
    ".section .text, \"ax\"",
    ".global bench_switch_pmu_secondary",
    ".balign 4",
    "bench_switch_pmu_secondary:",
    "    adrp x9, BENCH_SWITCH_PMU_STACK1",
    "    add x9, x9, :lo12:BENCH_SWITCH_PMU_STACK1",
    "    add x9, x9, #4096",
    "    mov sp, x9",
    "    adrp x9, guest_vectors",
    "    add x9, x9, :lo12:guest_vectors",
    "    msr vbar_el1, x9",
    // PMCR_EL0.E, PMCNTENSET_EL0.C: the cycle counter runs.
    "    mov x9, #1",
    "    msr S3_3_C9_C12_0, x9",
    "    mov x9, #0x80000000",
    "    msr S3_3_C9_C12_1, x9",
    "    isb",
    // YIELD (0xC600_0004) forever.
    "1:  mov x0, #0x4",
    "    movk x0, #0xc600, lsl #16",
    "    hvc #0",
    "    b 1b",
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
    let start = bench_switch_pmu_secondary as *const () as u64;
    c.check_eq(
        format_args!("CPU_ON(1)"),
        hvc::call(CPU_ON_64, [1, start, 0, 0, 0, 0]),
        0,
    );
    let c0 = read_sysreg!("S3_3_C9_C13_0");
    let mut bad = 0u64;
    for _ in 0..entry.iters() {
        bad += (hvc::call(hvc::YIELD, [0; 6]) != 0) as u64;
    }
    let c1 = read_sysreg!("S3_3_C9_C13_0");
    c.check_eq(format_args!("YIELD calls that did not return 0"), bad, 0);
    c.check(
        c1 > c0,
        format_args!("the cycle counter did not count: {c0} -> {c1}"),
    );
}
