//! The host's firmware as the device tree describes it: QEMU's `/psci` node says how
//! PSCI (and so SMCCC) is called (`method = "smc"` with `virtualization=on`). Every
//! core's `Aarch64PerCpu` is told, so `hardware_enable` can ask the firmware about the
//! Spectre workarounds (`arm_vcpu::workaround`); without a `/psci` node nothing is
//! called.

use core::sync::atomic::{AtomicU8, Ordering};

use arm_vcpu::{Aarch64PerCpu, FirmwareConduit};
use log::info;

static CONDUIT: AtomicU8 = AtomicU8::new(0);

/// Reads the conduit from the DTB QEMU placed at `addr` (once, at boot).
pub fn init(addr: usize) {
    // SAFETY: QEMU places its DTB at the start of RAM (below our image); the fdt crate
    // checks the header magic and sizes before reading further.
    let conduit = match unsafe { fdt::Fdt::from_ptr(addr as *const u8) } {
        Ok(fdt) => from_method(
            fdt.find_node("/psci")
                .and_then(|n| n.property("method"))
                .and_then(|p| p.as_str()),
        ),
        Err(_) => FirmwareConduit::None,
    };
    CONDUIT.store(conduit as u8, Ordering::Relaxed);
}

/// The `/psci` `method` property's meaning.
fn from_method(method: Option<&str>) -> FirmwareConduit {
    match method {
        Some("smc") => FirmwareConduit::Smc,
        Some("hvc") => FirmwareConduit::Hvc,
        _ => FirmwareConduit::None,
    }
}

/// The conduit found at boot.
pub fn conduit() -> FirmwareConduit {
    match CONDUIT.load(Ordering::Relaxed) {
        x if x == FirmwareConduit::Smc as u8 => FirmwareConduit::Smc,
        x if x == FirmwareConduit::Hvc as u8 => FirmwareConduit::Hvc,
        _ => FirmwareConduit::None,
    }
}

/// The per-CPU state of host CPU `cpu`, told how to reach the firmware.
pub fn percpu(cpu: usize) -> Aarch64PerCpu {
    let mut p = Aarch64PerCpu::new(cpu);
    // Cannot fail before hardware_enable.
    let _ = p.set_firmware(conduit());
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
