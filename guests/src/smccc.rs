//! SMCCC calls over either conduit (DEN 0028): `hvc #0`, or `smc #0`, which the
//! hypervisor traps (HCR_EL2.TSC) so that nothing reaches EL3. For the guests that
//! check both (`psci`, `spectre`).

use core::arch::asm;
use core::fmt;

/// The instruction an SMCCC call is made with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    /// `hvc #0`.
    Hvc = 0,
    /// `smc #0`.
    Smc = 1,
}

/// Both conduits, HVC first.
pub const CONDUITS: [Conduit; 2] = [Conduit::Hvc, Conduit::Smc];

impl fmt::Display for Conduit {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Conduit::Hvc => "hvc #0",
            Conduit::Smc => "smc #0",
        })
    }
}

/// `$insn` (`hvc #0` or `smc #0`) with x0..x3 = `$x0`..`$x3` in and out and x4..x17
/// declared clobbered (SMCCC: the callee may change them).
macro_rules! smccc_asm {
    ($insn:literal, $x0:ident, $x1:ident, $x2:ident, $x3:ident) => {
        asm!(
            $insn,
            inout("x0") $x0, inout("x1") $x1, inout("x2") $x2, inout("x3") $x3,
            lateout("x4") _, lateout("x5") _, lateout("x6") _, lateout("x7") _,
            lateout("x8") _, lateout("x9") _, lateout("x10") _, lateout("x11") _,
            lateout("x12") _, lateout("x13") _, lateout("x14") _, lateout("x15") _,
            lateout("x16") _, lateout("x17") _,
            options(nostack),
        )
    };
}

/// One SMCCC call with x0..x3 = `x`; returns x0..x3.
pub fn call(conduit: Conduit, x: [u64; 4]) -> [u64; 4] {
    let [mut x0, mut x1, mut x2, mut x3] = x;
    match conduit {
        // SAFETY: `hvc #0` traps to the hypervisor, which (SMCCC) changes at most
        // x0..x17, all declared here, and does not touch the stack; memory is not
        // declared untouched (in `psci`, a YIELD lets vCPU 1 write shared statics).
        Conduit::Hvc => unsafe { smccc_asm!("hvc #0", x0, x1, x2, x3) },
        // SAFETY: as above for `smc #0`, which every guest SMC traps to EL2
        // (HCR_EL2.TSC); nothing reaches EL3.
        Conduit::Smc => unsafe { smccc_asm!("smc #0", x0, x1, x2, x3) },
    }
    [x0, x1, x2, x3]
}
