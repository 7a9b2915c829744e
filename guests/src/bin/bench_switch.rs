//! `bench-switch` (N = iters): two vCPUs of one VM on one core. vCPU 0 starts vCPU 1
//! (PSCI CPU_ON) and then YIELDs N times; vCPU 1 YIELDs forever. Every YIELD makes the
//! host unbind one vCPU and bind the other: one iteration of vCPU 0's loop is two
//! switches (`guests::switch`).
#![no_std]
#![no_main]

use guests::rt::{Checks, Entry};
use guests::switch;

guests::guest_main!("bench-switch", main);

#[repr(C, align(16))]
struct Stack([u8; 4096]);
#[no_mangle]
static mut BENCH_SWITCH_STACK1: Stack = Stack([0; 4096]);

core::arch::global_asm!(
    guests::asm_macros!(),
    ".section .text, \"ax\"",
    ".global bench_switch_secondary",
    ".balign 4",
    "bench_switch_secondary:",
    "    secondary_start BENCH_SWITCH_STACK1, 4096",
    "    isb",
    "    yield_forever",
);

extern "C" {
    fn bench_switch_secondary();
}

fn main(c: &mut Checks, entry: Entry) {
    switch::start_secondary(c, bench_switch_secondary);
    switch::yields(c, entry.iters());
}
