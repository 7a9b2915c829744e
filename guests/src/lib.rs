//! Runtime shared by the EL1 test guests (see `docs/test-protocol.md`).
//!
//! Every guest binary is `#![no_std] #![no_main]`, linked by `guest.ld` at IPA
//! 0x4008_0000 and entered at `_start` (`asm/entry.S`), which sets up the stack,
//! zeroes `.bss`, installs exception vectors and calls the binary's main through
//! [`guest_main!`]. The runtime then checks the entry state, runs the main, and
//! ends with the EXIT hypercall, whose status is the number of failed checks.
//!
//! The guests run with the MMU off, so every data access is to Device memory: the
//! target (`+strict-align`, soft-float) never emits unaligned accesses, and nothing
//! here uses exclusives, atomics read-modify-write or `DC ZVA`.
#![no_std]
#![deny(clippy::undocumented_unsafe_blocks, unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
compile_error!(
    "the guests are bare-metal AArch64 programs: build them with \
     `--target aarch64-unknown-none-softfloat`"
);

pub mod console;
pub mod hvc;
pub mod mmio;
pub mod rt;
pub mod sysreg;

core::arch::global_asm!(include_str!("../asm/entry.S"));

/// Defines the entry point of a guest binary.
///
/// `guest_main!("name", main)` where `main: fn(&mut rt::Checks, rt::Entry)` runs the
/// guest's checks, recording failures in [`rt::Checks`]. Prints the start line, checks
/// the entry state, calls `main` and EXITs with the number of failed checks.
#[macro_export]
macro_rules! guest_main {
    ($name:literal, $main:path) => {
        /// Called by `_start` (asm/entry.S) with the entry x0, x1 and the OR of x2..x30.
        #[no_mangle]
        extern "C" fn guest_rust_start(x0: u64, x1: u64, other_gprs: u64) -> ! {
            $crate::rt::run($name, $crate::rt::Entry { x0, x1, other_gprs }, $main)
        }
    };
}
