//! The hypervisor's own calls to the platform firmware's PSCI (CPU_ON of the other
//! cores, SYSTEM_OFF), made with the `smccc` crate over the conduit the board's device
//! tree names (`/psci` `method`; SMC on QEMU `virt` with `virtualization=on`).

use arm_vcpu::{Aarch64PerCpu, FirmwareConduit};
use log::info;
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

/// The per-CPU state of host CPU `cpu`, told how to reach the firmware (the device
/// tree's `/psci` `method`), so `hardware_enable` can ask it about the Spectre
/// workarounds (`arm_vcpu::workaround`). On a GICv2 board it is also given the GICH
/// frame (the banked one every core reaches at the same address) and the maintenance
/// interrupt from the device tree, so `hardware_enable` takes the GICv2 virtual
/// interface (the boot page table maps the frame as Device memory at EL2:
/// `gic::check`).
pub fn percpu(cpu: usize) -> Aarch64PerCpu {
    let conduit = match super::BOARD.get().map(|b| b.psci) {
        Some(Conduit::Smc) => FirmwareConduit::Smc,
        Some(Conduit::Hvc) => FirmwareConduit::Hvc,
        None => FirmwareConduit::None,
    };
    let mut p = Aarch64PerCpu::new(cpu);
    // Cannot fail before hardware_enable.
    let _ = p.set_firmware(conduit);
    if let Some(b) = super::BOARD.get() {
        if b.gic.version == super::board::GicVersion::V2 {
            if let Some(gich) = b.gic.gich {
                if p.set_gicv2_interface(gich.base as usize).is_err() {
                    log::error!("core {}: GICH frame {:#x} refused", cpu, gich.base);
                }
            }
            if let Some(m) = b.gic.maintenance_intid {
                if p.set_maintenance_interrupt(m).is_err() {
                    log::error!("core {}: maintenance INTID {} refused", cpu, m);
                }
            }
        }
    }
    p
}

/// Logs what the firmware answered, what the core reports and what guests get.
pub fn report(p: &Aarch64PerCpu) {
    let f = p.firmware_info();
    let s = p.speculation();
    let w = p.workarounds();
    info!(
        "firmware ({:?}): PSCI_VERSION {:x?}, PSCI_FEATURES(SMCCC_VERSION) {:?}, SMCCC_VERSION \
         {:x?}, ARCH_FEATURES(WORKAROUND_1/2/3) {:?}/{:?}/{:?}; core MIDR {:#x} CSV2 {} CSV3 {} \
         SSBS {} ECBHB {}; guests get WORKAROUND_1 {:?} ({}), _2 {:?} ({}), _3 {:?} ({})",
        f.conduit,
        f.psci_version,
        f.smccc_version_feature,
        f.smccc_version,
        f.wa1,
        f.wa2,
        f.wa3,
        s.midr,
        s.csv2,
        s.csv3,
        s.ssbs,
        s.ecbhb,
        w.wa1,
        w.wa1.features_answer(),
        w.wa2,
        w.wa2.features_answer(),
        w.wa3,
        w.wa3.features_answer(),
    );
}
