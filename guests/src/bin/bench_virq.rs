//! `bench-virq` (N = iters): N rounds of TEST_CALL(0x91), after which the host injects
//! vINTID 40 through the list registers; with PSTATE.I clear the guest takes it at its
//! IRQ vector as soon as it is back, acknowledges it (ICC_IAR1_EL1; on a GICv2 board
//! GICC_IAR, `guests::gic`), ends it (ICC_EOIR1_EL1 / GICC_EOIR) and counts it. Checks the count after every round and reports the
//! total (TEST_CALL 0x92) for the host to compare.
#![no_std]
#![no_main]

use core::arch::asm;
use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};

use guests::rt::{Checks, Entry};
use guests::{gic, hvc};

guests::guest_main!("bench-virq", main);

/// Interrupts taken; written by the IRQ vector.
#[no_mangle]
static mut VIRQ_TAKEN: u64 = 0;
/// The INTID of the last one.
#[no_mangle]
static mut VIRQ_LAST: u64 = 0;
/// The GICC's address on a GICv2 board, 0 with the GICv3 system registers (set
/// before IRQs are unmasked; the vector tests it).
#[no_mangle]
static mut VIRQ_GICC: u64 = 0;

core::arch::global_asm!(
    ".section .text.vectors, \"ax\"",
    ".balign 0x800",
    ".global bench_virq_vectors",
    "bench_virq_vectors:",
    // Everything but "IRQ, current EL with SP_ELx" (0x280) is unexpected: hand it to
    // the runtime's vectors at the same offset.
    ".irp n, 0,1,2,3,4",
    ".balign 0x80",
    "    b guest_vectors + 0x80 * \\n",
    ".endr",
    ".balign 0x80",
    // 0x280: IRQ from EL1h.
    "    stp x0, x1, [sp, #-16]!",
    "    adrp x1, VIRQ_GICC",
    "    ldr x1, [x1, :lo12:VIRQ_GICC]",
    "    cbnz x1, 1f",
    "    mrs x0, S3_0_C12_C12_0", // ICC_IAR1_EL1
    "    msr S3_0_C12_C12_1, x0", // ICC_EOIR1_EL1
    "    b 2f",
    "1:  ldr w0, [x1, #0xc]",  // GICC_IAR
    "    str w0, [x1, #0x10]", // GICC_EOIR
    "2:",
    "    adrp x1, VIRQ_LAST",
    "    str x0, [x1, :lo12:VIRQ_LAST]",
    "    adrp x1, VIRQ_TAKEN",
    "    ldr x0, [x1, :lo12:VIRQ_TAKEN]",
    "    add x0, x0, #1",
    "    str x0, [x1, :lo12:VIRQ_TAKEN]",
    "    ldp x0, x1, [sp], #16",
    "    eret",
    ".irp n, 6,7,8,9,10,11,12,13,14,15",
    ".balign 0x80",
    "    b guest_vectors + 0x80 * \\n",
    ".endr",
);

extern "C" {
    static bench_virq_vectors: u8;
}

fn taken() -> u64 {
    // SAFETY: written only by the IRQ vector, which this code does not race with (the
    // interrupt is taken between instructions on this vCPU).
    unsafe { read_volatile(addr_of!(VIRQ_TAKEN)) }
}

fn main(c: &mut Checks, entry: Entry) {
    // SAFETY: IRQs are masked: the vector cannot run yet.
    unsafe { write_volatile(addr_of_mut!(VIRQ_GICC), gic::gicc_or_zero()) };
    // All priorities unmasked, group 1 on (ICC_PMR_EL1/IGRPEN1_EL1 or GICC_PMR/CTLR).
    gic::enable(0xff);
    // SAFETY: installs this guest's vectors and clears PSTATE.I; the IRQ vector
    // preserves every register it uses.
    unsafe {
        asm!(
            "msr vbar_el1, {v}",
            "isb",
            "msr daifclr, #2",
            v = in(reg) addr_of!(bench_virq_vectors),
        );
    }
    let mut bad = 0u64;
    for i in 0..entry.iters() {
        hvc::k(0x91);
        bad += (taken() != i + 1) as u64;
    }
    // SAFETY: masks IRQs again before the report.
    unsafe { asm!("msr daifset, #2") };
    c.check_eq(
        format_args!("rounds without exactly one interrupt taken"),
        bad,
        0,
    );
    // SAFETY: as in `taken`.
    let last = unsafe { read_volatile(addr_of!(VIRQ_LAST)) };
    c.check_eq(format_args!("INTID acknowledged"), last, 40);
    c.check_eq(
        format_args!("host's verdict on the count"),
        hvc::test_call([0x92, taken(), 0, 0, 0, 0]),
        0,
    );
}
