//! The hypervisor's own calls to the platform firmware's PSCI (CPU_ON of the other
//! cores, SYSTEM_OFF), made with the `smccc` crate over the conduit the board's device
//! tree names (`/psci` `method`; SMC on QEMU `virt` with `virtualization=on`).

use smccc::psci;
use smccc::{Hvc, Smc};

use super::board::Conduit;

/// Starts core `mpidr` at `entry` (EL2, MMU off) with x0 = `context` (PSCI CPU_ON,
/// 64-bit).
pub fn cpu_on(mpidr: u64, entry: u64, context: u64) -> Result<(), psci::Error> {
    match super::board().psci {
        Conduit::Smc => psci::cpu_on::<Smc>(mpidr, entry, context),
        Conduit::Hvc => psci::cpu_on::<Hvc>(mpidr, entry, context),
    }
}

/// Powers the machine off (PSCI SYSTEM_OFF); returns only if the firmware refused.
pub fn system_off() -> Result<(), psci::Error> {
    // Before discovery (an early failure) QEMU's conduit is the one to try.
    let conduit = super::BOARD.get().map_or(Conduit::Smc, |b| b.psci);
    match conduit {
        Conduit::Smc => psci::system_off::<Smc>(),
        Conduit::Hvc => psci::system_off::<Hvc>(),
    }
}
