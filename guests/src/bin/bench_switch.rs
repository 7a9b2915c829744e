//! `bench-switch` (N = iters): two vCPUs of one VM on one core. vCPU 0 starts vCPU 1
//! (PSCI CPU_ON) and then YIELDs N times; vCPU 1 YIELDs forever. Every YIELD makes the
//! host unbind one vCPU and bind the other: one iteration of vCPU 0's loop is two
//! switches.
#![no_std]
#![no_main]

use guests::hvc;
use guests::rt::{Checks, Entry};

guests::guest_main!("bench-switch", main);

const CPU_ON_64: u64 = 0xC400_0003;

#[repr(C, align(16))]
struct Stack([u8; 4096]);
#[no_mangle]
static mut BENCH_SWITCH_STACK1: Stack = Stack([0; 4096]);

core::arch::global_asm!(
    ".section .text, \"ax\"",
    ".global bench_switch_secondary",
    ".balign 4",
    "bench_switch_secondary:",
    "    adrp x9, BENCH_SWITCH_STACK1",
    "    add x9, x9, :lo12:BENCH_SWITCH_STACK1",
    "    add x9, x9, #4096",
    "    mov sp, x9",
    "    adrp x9, guest_vectors",
    "    add x9, x9, :lo12:guest_vectors",
    "    msr vbar_el1, x9",
    "    isb",
    // YIELD (0xC600_0004) forever.
    "1:  mov x0, #0x4",
    "    movk x0, #0xc600, lsl #16",
    "    hvc #0",
    "    b 1b",
);

extern "C" {
    fn bench_switch_secondary();
}

fn main(c: &mut Checks, entry: Entry) {
    let start = bench_switch_secondary as *const () as u64;
    c.check_eq(
        format_args!("CPU_ON(1)"),
        hvc::call(CPU_ON_64, [1, start, 0, 0, 0, 0]),
        0,
    );
    let mut bad = 0u64;
    for _ in 0..entry.iters() {
        bad += (hvc::call(hvc::YIELD, [0; 6]) != 0) as u64;
    }
    c.check_eq(format_args!("YIELD calls that did not return 0"), bad, 0);
}
