//! MMIO accessors with the exact load/store instruction in inline assembly.
//!
//! Every access is a single naturally aligned `ldr*`/`str*` with a plain base
//! register (no writeback), so the resulting data abort has a valid syndrome.
//! Loads pre-fill the destination with all ones: the returned 64-bit register value
//! also shows whether the hypervisor zero-extended the data.

use core::arch::asm;

/// A test VM's RAM (IPA): 256 MiB at 0x4000_0000.
pub const RAM: core::ops::Range<u64> = 0x4000_0000..0x5000_0000;
/// A page with nothing behind it (neither RAM nor a device): accesses abort.
pub const UNMAPPED: u64 = 0x0c00_0000;
/// The test device (4 KiB): scratch storage at 0x000..0x100.
pub const TESTDEV_BASE: u64 = 0x0b00_0000;
/// Size of the test device's scratch storage.
pub const TESTDEV_SCRATCH_LEN: u64 = 0x100;
/// Offset of the read-only pattern.
pub const TESTDEV_PATTERN_OFF: u64 = 0x100;
/// The read-only pattern at offset 0x100 (little endian: byte 0x100 is 0x80).
pub const TESTDEV_PATTERN: u64 = 0xF0E0_D0C0_B0A0_9080;

macro_rules! load {
    ($(#[$m:meta])* $name:ident, $ins:literal) => {
        $(#[$m])*
        #[inline(always)]
        pub fn $name(addr: u64) -> u64 {
            let mut v = u64::MAX;
            // SAFETY: a single load from an MMIO address of the guest's device map;
            // it cannot touch memory the compiler owns. Only `v` is written.
            unsafe {
                asm!(
                    concat!($ins, ", [{a}]"),
                    a = in(reg) addr,
                    v = inout(reg) v,
                    options(nostack, preserves_flags),
                );
            }
            v
        }
    };
}

macro_rules! store {
    ($(#[$m:meta])* $name:ident, $ins:literal) => {
        $(#[$m])*
        #[inline(always)]
        pub fn $name(addr: u64, v: u64) {
            // SAFETY: a single store to an MMIO address of the guest's device map;
            // it cannot touch memory the compiler owns.
            unsafe {
                asm!(
                    concat!($ins, ", [{a}]"),
                    a = in(reg) addr,
                    v = in(reg) v,
                    options(nostack, preserves_flags),
                );
            }
        }
    };
}

load!(
    /// `ldrb w` (zero-extends to 64 bits).
    read8, "ldrb {v:w}"
);
load!(
    /// `ldrh w` (zero-extends to 64 bits).
    read16, "ldrh {v:w}"
);
load!(
    /// `ldr w` (zero-extends to 64 bits).
    read32, "ldr {v:w}"
);
load!(
    /// `ldr x`.
    read64, "ldr {v:x}"
);
load!(
    /// `ldrsb x`.
    read8_sx64, "ldrsb {v:x}"
);
load!(
    /// `ldrsb w` (sign-extends to 32 bits, zero-extends to 64).
    read8_sx32, "ldrsb {v:w}"
);
load!(
    /// `ldrsh x`.
    read16_sx64, "ldrsh {v:x}"
);
load!(
    /// `ldrsh w` (sign-extends to 32 bits, zero-extends to 64).
    read16_sx32, "ldrsh {v:w}"
);
load!(
    /// `ldrsw x`.
    read32_sx64, "ldrsw {v:x}"
);
store!(
    /// `strb w`: stores the low byte of `v`.
    write8, "strb {v:w}"
);
store!(
    /// `strh w`: stores the low half-word of `v`.
    write16, "strh {v:w}"
);
store!(
    /// `str w`: stores the low word of `v`.
    write32, "str {v:w}"
);
store!(
    /// `str x`.
    write64, "str {v:x}"
);

/// `str xzr`: stores 8 zero bytes.
#[inline(always)]
pub fn write64_zr(addr: u64) {
    // SAFETY: a single store to an MMIO address; touches no compiler-owned memory.
    unsafe { asm!("str xzr, [{a}]", a = in(reg) addr, options(nostack, preserves_flags)) }
}

/// `str wzr`: stores 4 zero bytes.
#[inline(always)]
pub fn write32_zr(addr: u64) {
    // SAFETY: a single store to an MMIO address; touches no compiler-owned memory.
    unsafe { asm!("str wzr, [{a}]", a = in(reg) addr, options(nostack, preserves_flags)) }
}
