//! Architectural field values the guests' checks share (Arm ARM, SPSR_EL1 and
//! ESR_EL1).

/// SPSR_EL1/PSTATE.N.
pub const N: u64 = 1 << 31;
/// SPSR_EL1/PSTATE.Z.
pub const Z: u64 = 1 << 30;
/// SPSR_EL1/PSTATE.C.
pub const C: u64 = 1 << 29;
/// SPSR_EL1/PSTATE.V.
pub const V: u64 = 1 << 28;

/// ESR_EL1.IL: a 32-bit instruction (always 1 for EC 0x00).
pub const IL: u64 = 1 << 25;
