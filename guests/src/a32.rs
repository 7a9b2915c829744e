//! The AArch32 EL0 probe of `asm/aarch32.S` (a binary that uses it assembles the file
//! with `guests::global_asm_file!("aarch32.S")`): `aarch32_probe(target, spsr, probe)`
//! installs the probe's vectors, loads R0..R14 from `probe.r`, ERETs to `target` with
//! SPSR_EL1 = `spsr` (an AArch32 User-mode PSTATE), and whatever exception ends the EL0
//! code is recorded in `probe` before it returns to the caller at EL1h.

/// What the probe's vectors record (layout shared with asm/aarch32.S).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Probe {
    /// R0..R14 (X0..X14): set before, recorded at the exception.
    pub r: [u64; 15],
    /// Vector offset from VBAR_EL1.
    pub vector: u64,
    /// ESR_EL1 of the exception.
    pub esr: u64,
    /// ELR_EL1 of the exception.
    pub elr: u64,
    /// SPSR_EL1 of the exception.
    pub spsr: u64,
    /// FAR_EL1 at the exception.
    pub far: u64,
    /// Exceptions taken (1 after a probe that ended as it should).
    pub taken: u64,
}

extern "C" {
    /// See the module documentation.
    pub fn aarch32_probe(target: u64, spsr: u64, probe: *mut Probe);
}

/// AArch32 User mode (M\[4:0\] = 0b10000), A32, A/I/F unmasked.
pub const USR: u64 = 0x10;
/// PSTATE.T: T32.
pub const T: u64 = 1 << 5;

/// Vector offset of a synchronous exception from a lower EL using AArch32.
pub const LOWER_A32_SYNC: u64 = 0x600;
/// ... of an SError from a lower EL using AArch32.
pub const LOWER_A32_SERROR: u64 = 0x780;
