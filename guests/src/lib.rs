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

pub mod a32;
pub mod arch;
pub mod console;
pub mod debug;
pub mod gic;
pub mod hvc;
#[rustfmt::skip]
pub mod inventory;
pub mod mmio;
pub mod rng;
pub mod rt;
pub mod slot;
pub mod smccc;
pub mod sweep;
pub mod switch;
pub mod sysreg;
pub mod workaround;

/// The text of `asm/macros.S`, the assembler macros the guests' assembly shares
/// (vector tables, register fills and stores, frames), for a `global_asm!` that uses
/// them: put it first among the template strings. It is guarded, so any number of
/// blocks may include it.
#[macro_export]
macro_rules! asm_macros {
    () => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/asm/macros.S"))
    };
}

/// `global_asm!` of the file `asm/<name>` with [`asm_macros!`] in front of it.
#[macro_export]
macro_rules! global_asm_file {
    ($name:literal) => {
        core::arch::global_asm!(
            $crate::asm_macros!(),
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/asm/", $name))
        );
    };
}

global_asm_file!("entry.S");

/// Defines the entry point of a guest binary.
///
/// `guest_main!("name", main)` where `main: fn(&mut rt::Checks, rt::Entry)` runs the
/// guest's checks, recording failures in [`rt::Checks`]. Prints the start line, checks
/// the entry state, calls `main` and EXITs with the number of failed checks.
///
/// `guest_main!("name", main, x2_argument)` is the same for a guest that takes an
/// argument in x2 ([`rt::Entry::x2`], e.g. the hostile guest's seed): x2 is then not
/// required to be 0 at entry.
#[macro_export]
macro_rules! guest_main {
    ($name:literal, $main:path) => {
        $crate::guest_main!(@start $name, $main, false);
    };
    ($name:literal, $main:path, x2_argument) => {
        $crate::guest_main!(@start $name, $main, true);
    };
    (@start $name:literal, $main:path, $x2_argument:literal) => {
        /// Called by `_start` (asm/entry.S) with the entry x0, x1, x2 and the OR of
        /// x3..x30.
        #[no_mangle]
        extern "C" fn guest_rust_start(x0: u64, x1: u64, x2: u64, other_gprs: u64) -> ! {
            let entry = $crate::rt::Entry {
                x0,
                x1,
                x2,
                other_gprs,
                x2_argument: $x2_argument,
            };
            $crate::rt::run($name, entry, $main)
        }
    };
}
