//! `smp`: vCPU 0 starts vCPU 1 with PSCI CPU_ON; the hypervisor runs it on physical
//! core 1, concurrently with vCPU 0 on core 0. vCPU 0 checks AFFINITY_INFO before,
//! during and after, CPU_ON on a running vCPU, what vCPU 1 saw at its entry, and that
//! vCPU 1 makes progress while vCPU 0 spins without any exit (true concurrency, not
//! time-slicing); then vCPU 1 turns itself off with CPU_OFF.
#![no_std]
#![no_main]

use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};

use guests::hvc;
use guests::read_sysreg;
use guests::rt::{Checks, Entry};

guests::guest_main!("smp", main);

const AFFINITY_INFO_64: u64 = 0xC400_0004;
const CPU_ON_64: u64 = 0xC400_0003;
const CPU_OFF: u64 = 0x8400_0002;
const ON: u64 = 0;
const OFF: u64 = 1;
const ALREADY_ON: u64 = -4i64 as u64;
const CONTEXT: u64 = 0xC0FF_EE00_1234_5678;

/// Written by vCPU 1, read by vCPU 0 (the MMU is off: Device memory, no caching).
static mut SEEN_CONTEXT: u64 = 0;
static mut SEEN_MPIDR: u64 = 0;
static mut SEEN_SCTLR: u64 = u64::MAX;
static mut STARTED: u64 = 0;
static mut COUNTER: u64 = 0;
static mut RELEASE: u64 = 0;

/// vCPU 1's stack.
#[repr(C, align(16))]
struct Stack([u8; 16384]);
#[no_mangle]
static mut SMP_STACK1: Stack = Stack([0; 16384]);

core::arch::global_asm!(
    ".section .text, \"ax\"",
    ".global smp_secondary_entry",
    ".balign 4",
    "smp_secondary_entry:",
    // x0 = context ID (PSCI CPU_ON); own stack; the shared EL1 vectors.
    "    adrp x9, SMP_STACK1",
    "    add x9, x9, :lo12:SMP_STACK1",
    "    add x9, x9, #16384",
    "    mov sp, x9",
    "    adrp x9, guest_vectors",
    "    add x9, x9, :lo12:guest_vectors",
    "    msr vbar_el1, x9",
    "    isb",
    "    bl smp_secondary_rust",
    "1:  wfe",
    "    b 1b",
);

extern "C" {
    fn smp_secondary_entry();
}

fn psci(fid: u64, a: u64, b: u64, c: u64) -> u64 {
    hvc::hvc([fid, a, b, c, 0, 0, 0])[0]
}

fn load(p: *const u64) -> u64 {
    // SAFETY: `p` points at one of the statics above; volatile because the other vCPU
    // writes it concurrently (aligned 64-bit accesses are single-copy atomic).
    unsafe { read_volatile(p) }
}

fn store(p: *mut u64, v: u64) {
    // SAFETY: as in `load`.
    unsafe { write_volatile(p, v) }
}

fn counter_hz() -> u64 {
    read_sysreg!("cntfrq_el0")
}

fn now() -> u64 {
    read_sysreg!("cntvct_el0")
}

/// Waits until `done()` or `seconds` of virtual time passed; returns whether done.
fn wait(seconds: u64, mut done: impl FnMut() -> bool) -> bool {
    let end = now() + seconds * counter_hz();
    while now() < end {
        if done() {
            return true;
        }
    }
    done()
}

/// vCPU 1, entered through `smp_secondary_entry` with x0 = the CPU_ON context ID.
#[no_mangle]
extern "C" fn smp_secondary_rust(context: u64) -> ! {
    store(addr_of_mut!(SEEN_CONTEXT), context);
    store(addr_of_mut!(SEEN_MPIDR), read_sysreg!("mpidr_el1"));
    store(addr_of_mut!(SEEN_SCTLR), read_sysreg!("sctlr_el1"));
    store(addr_of_mut!(STARTED), 1);
    let mut n = 0u64;
    while load(addr_of!(RELEASE)) == 0 {
        n += 1;
        store(addr_of_mut!(COUNTER), n);
    }
    psci(CPU_OFF, 0, 0, 0);
    // CPU_OFF returned: a failure vCPU 0 sees.
    store(addr_of_mut!(STARTED), 0xdead);
    loop {
        core::hint::spin_loop();
    }
}

fn main(c: &mut Checks, _entry: Entry) {
    c.check_eq(
        format_args!("AFFINITY_INFO(1) before CPU_ON"),
        psci(AFFINITY_INFO_64, 1, 0, 0),
        OFF,
    );
    c.check_eq(
        format_args!("AFFINITY_INFO(0)"),
        psci(AFFINITY_INFO_64, 0, 0, 0),
        ON,
    );
    let entry = smp_secondary_entry as *const () as u64;
    c.check_eq(
        format_args!("CPU_ON(1)"),
        psci(CPU_ON_64, 1, entry, CONTEXT),
        0,
    );
    if !c.check(
        wait(10, || load(addr_of!(STARTED)) == 1),
        format_args!("vCPU 1 did not start within 10 s"),
    ) {
        return;
    }
    c.check_eq(
        format_args!("vCPU 1's x0 at entry (context ID)"),
        load(addr_of!(SEEN_CONTEXT)),
        CONTEXT,
    );
    c.check_eq(
        format_args!("vCPU 1's MPIDR_EL1"),
        load(addr_of!(SEEN_MPIDR)),
        0x8000_0001,
    );
    c.check_eq(
        format_args!("vCPU 1's SCTLR_EL1.M (MMU off)"),
        load(addr_of!(SEEN_SCTLR)) & 1,
        0,
    );
    c.check_eq(
        format_args!("AFFINITY_INFO(1) while it runs"),
        psci(AFFINITY_INFO_64, 1, 0, 0),
        ON,
    );
    c.check_eq(
        format_args!("CPU_ON(1) while it runs"),
        psci(CPU_ON_64, 1, entry, 0),
        ALREADY_ON,
    );
    // Both run at once: vCPU 1's counter moves while this vCPU spins without exits.
    let before = load(addr_of!(COUNTER));
    let moved = wait(5, || load(addr_of!(COUNTER)) > before + 1000);
    c.check(
        moved,
        format_args!("vCPU 1 made no progress while vCPU 0 spun (not concurrent)"),
    );
    store(addr_of_mut!(RELEASE), 1);
    let off = wait(10, || psci(AFFINITY_INFO_64, 1, 0, 0) == OFF);
    c.check(
        off,
        format_args!("AFFINITY_INFO(1) did not become OFF after its CPU_OFF"),
    );
    c.check_eq(
        format_args!("vCPU 1 did not return from CPU_OFF"),
        load(addr_of!(STARTED)),
        1,
    );
}
