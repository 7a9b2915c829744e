//! System register reads.

/// Reads a system register by name (`read_sysreg!("mpidr_el1")`, or a generic
/// name such as `"S3_0_C0_C4_0"`) with one `mrs`.
#[macro_export]
macro_rules! read_sysreg {
    ($name:literal) => {{
        let v: u64;
        // SAFETY: `mrs` only writes its destination register; reading an EL1/EL0
        // register at EL1 cannot affect memory safety (a trapped read is answered
        // by the hypervisor).
        unsafe {
            core::arch::asm!(
                concat!("mrs {}, ", $name),
                out(reg) v,
                options(nostack, preserves_flags),
            );
        }
        v
    }};
}

/// The virtual count, `CNTVCT_EL0`.
#[inline]
pub fn cntvct() -> u64 {
    // Order the counter read after earlier instructions.
    // SAFETY: `isb` only synchronises the instruction stream.
    unsafe { core::arch::asm!("isb", options(nomem, nostack, preserves_flags)) };
    crate::read_sysreg!("cntvct_el0")
}

/// The counter frequency in Hz, `CNTFRQ_EL0`.
#[inline]
pub fn cntfrq() -> u64 {
    crate::read_sysreg!("cntfrq_el0")
}
