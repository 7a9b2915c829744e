//! Hypercalls: `hvc #0` with an SMCCC function ID in w0, arguments in x1..x6 and
//! the result in x0.

use core::arch::asm;

/// NULL: returns 0 and does nothing else.
pub const NULL: u64 = 0xC600_0000;
/// TEST_CALL(x1..x6): scenario-specific; returns a value.
pub const TEST_CALL: u64 = 0xC600_0001;
/// EXIT(x1 = status): the guest's verdict; does not return.
pub const EXIT: u64 = 0xC600_0002;
/// YIELD: the host runs another vCPU; returns 0 when this one runs again.
pub const YIELD: u64 = 0xC600_0004;
/// PUTC(x1 = byte): console output without MMIO.
pub const PUTC: u64 = 0xC600_0003;

/// Issues `hvc #0` with `regs` in x0..x6 and returns x0..x6 afterwards.
///
/// Only x0..x6 are declared to the compiler (as in/out); the protocol requires the
/// hypervisor to preserve every other register (the `preserve` guest checks that).
#[inline(always)]
pub fn hvc(regs: [u64; 7]) -> [u64; 7] {
    let [mut x0, mut x1, mut x2, mut x3, mut x4, mut x5, mut x6] = regs;
    // SAFETY: `hvc #0` traps to the hypervisor, which per the protocol changes at
    // most x0..x6 (all declared in/out here) and does not touch the stack. Memory is
    // not declared untouched, so the compiler keeps memory accesses ordered around it.
    unsafe {
        asm!(
            "hvc #0",
            inout("x0") x0,
            inout("x1") x1,
            inout("x2") x2,
            inout("x3") x3,
            inout("x4") x4,
            inout("x5") x5,
            inout("x6") x6,
            options(nostack),
        );
    }
    [x0, x1, x2, x3, x4, x5, x6]
}

/// Calls function `func` with x1..x6 = `args`; returns x0.
#[inline(always)]
pub fn call(func: u64, args: [u64; 6]) -> u64 {
    let [a1, a2, a3, a4, a5, a6] = args;
    hvc([func, a1, a2, a3, a4, a5, a6])[0]
}

/// Calls function `func` with nothing in x1..x6; returns x0.
///
/// Lean for the benchmark loops: x1..x6 are not set up (for a function that takes no
/// arguments) but are still declared as possibly changed.
#[inline(always)]
pub fn call0(func: u64) -> u64 {
    let x0: u64;
    // SAFETY: as in `hvc`: the hypervisor changes at most x0..x6, all declared here,
    // and does not touch the stack.
    unsafe {
        asm!(
            "hvc #0",
            inout("x0") func => x0,
            lateout("x1") _,
            lateout("x2") _,
            lateout("x3") _,
            lateout("x4") _,
            lateout("x5") _,
            lateout("x6") _,
            options(nostack),
        );
    }
    x0
}

/// The NULL hypercall ([`call0`]); returns x0 (0 from a correct hypervisor).
#[inline(always)]
pub fn null() -> u64 {
    call0(NULL)
}

/// TEST_CALL with x1..x6 = `args`; returns x0.
#[inline(always)]
pub fn test_call(args: [u64; 6]) -> u64 {
    call(TEST_CALL, args)
}

/// "K(x)" of the protocol: TEST_CALL with x1 = `x1` (x2..x6 = 0); returns x0.
#[inline(always)]
pub fn k(x1: u64) -> u64 {
    test_call([x1, 0, 0, 0, 0, 0])
}

/// PUTC: one byte of console output through the hypervisor.
#[inline(always)]
pub fn putc(byte: u8) {
    call(PUTC, [u64::from(byte), 0, 0, 0, 0, 0]);
}

/// EXIT(status): the guest's verdict (0 = pass). Never returns; if the hypervisor
/// does return from it, the guest spins until the runner's timeout.
pub fn exit(status: u64) -> ! {
    call(EXIT, [status, 0, 0, 0, 0, 0]);
    loop {
        core::hint::spin_loop();
    }
}
