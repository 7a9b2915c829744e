//! The common part of the vCPU-switch benchmarks (`bench-switch`, `bench-switch-pmu`):
//! two vCPUs of one VM on one core. vCPU 0 starts vCPU 1 (PSCI CPU_ON) at an entry
//! written with asm/macros.S's `secondary_start` and `yield_forever`, then YIELDs N
//! times; every YIELD makes the host unbind one vCPU and bind the other, so one
//! iteration of vCPU 0's loop is two switches.

use crate::hvc;
use crate::rt::Checks;

/// PSCI CPU_ON, SMC64 calling convention.
pub const CPU_ON_64: u64 = 0xC400_0003;

/// Starts vCPU 1 at `secondary` (context ID 0), checking that CPU_ON returned 0.
pub fn start_secondary(c: &mut Checks, secondary: unsafe extern "C" fn()) {
    let start = secondary as *const () as u64;
    c.check_eq(
        format_args!("CPU_ON(1)"),
        hvc::call(CPU_ON_64, [1, start, 0, 0, 0, 0]),
        0,
    );
}

/// `n` YIELDs, checking that every one returned 0.
pub fn yields(c: &mut Checks, n: u64) {
    let mut bad = 0u64;
    for _ in 0..n {
        bad += (hvc::call(hvc::YIELD, [0; 6]) != 0) as u64;
    }
    c.check_eq(format_args!("YIELD calls that did not return 0"), bad, 0);
}
