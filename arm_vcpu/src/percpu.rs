//! Per-physical-CPU virtualization state: vectors, the host's `HCR_EL2`, features.

use core::sync::atomic::{AtomicPtr, Ordering};

use crate::sysreg::FeatureSet;
use crate::{VCpuError, VCpuResult};

/// Affinity fields of `MPIDR_EL1`: Aff3 \[39:32\], Aff2 \[23:16\], Aff1 \[15:8\], Aff0 \[7:0\].
pub const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;

/// `HCR_EL2` bits of the host's value (DDI 0487 D23.2.53). The guest's value is
/// composed in `traps`.
pub(crate) mod hcr {
    pub const FMO: u64 = 1 << 3;
    pub const IMO: u64 = 1 << 4;
    pub const AMO: u64 = 1 << 5;
    pub const RW: u64 = 1 << 31;
}

/// `HCR_EL2` while no vCPU is bound: EL1 is AArch64, and physical IRQ/FIQ/SError are
/// routed to EL2 so the host can take them at EL2 when it unmasks them.
pub const HOST_HCR_EL2: u64 = hcr::RW | hcr::IMO | hcr::FMO | hcr::AMO;

/// The CPU features this crate depends on, read from the ID registers once per core.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuFeatures {
    /// `ID_AA64MMFR0_EL1.PARange`.
    pub pa_range: u8,
    /// 16-bit VMIDs (`ID_AA64MMFR1_EL1.VMIDBits == 0b0010`).
    pub vmid16: bool,
    /// Pointer authentication (any of `ID_AA64ISAR1_EL1.{APA,API,GPA,GPI}`,
    /// `ID_AA64ISAR2_EL1.{APA3,GPA3}`): its keys are switched per vCPU.
    pub pauth: bool,
    /// GICv3 system-register interface (`ID_AA64PFR0_EL1.GIC != 0`).
    pub gicv3: bool,
    /// `MIDR_EL1` of this core.
    pub midr: u64,
    /// Affinity of this core (`MPIDR_EL1` & `MPIDR_AFFINITY_MASK`).
    pub mpidr: u64,
    /// FEAT_RAS (`ID_AA64PFR0_EL1.RAS != 0`): `VSESR_EL2` exists.
    pub ras: bool,
    /// FEAT_AA32EL0 (`ID_AA64PFR0_EL1.EL0 == 0b0010`): EL0 can run AArch32.
    pub aarch32_el0: bool,
    /// Every feature of the inventory's [`crate::sysreg::Feature`] this core has (from
    /// its whole ID space and `ICH_VTR_EL2`): what the trap composition, the switch
    /// list and the emulation follow.
    pub has: FeatureSet,
    /// `REVIDR_EL1` (answered to guests under `HCR_EL2.TID1`).
    pub revidr: u64,
    /// `AIDR_EL1` (answered to guests under `HCR_EL2.TID1`).
    pub aidr: u64,
}

/// A 4-bit ID register field at `lsb`.
/// The core's ID space as the crate and its VMs see it with virtual interface `kind`:
/// without a GICv3 virtual interface (a GICv2 GICH frame, or a GICv3 whose system
/// registers cannot be enabled) `ID_AA64PFR0_EL1.GIC` \[27:24\] is 0 — no GIC system
/// registers, as KVM shows a GICv2 VM — so the inventory's FEAT_GICv3 rows (`ICC_*`)
/// and the guest's ID view agree with the backend.
pub(crate) const fn id_space_for_interface(
    mut id: [u64; crate::idregs::ID_SPACE_LEN],
    kind: crate::vgic::InterfaceKind,
) -> [u64; crate::idregs::ID_SPACE_LEN] {
    if !matches!(kind, crate::vgic::InterfaceKind::V3) {
        id[crate::idregs::ID_AA64PFR0] &= !(0xf << 24);
    }
    id
}

const fn field(v: u64, lsb: u32) -> u8 {
    ((v >> lsb) & 0xf) as u8
}

impl CpuFeatures {
    /// Decodes the ID register values (pure; tested on the host).
    pub const fn from_id_registers(
        mmfr0: u64,
        mmfr1: u64,
        isar1: u64,
        isar2: u64,
        pfr0: u64,
        midr: u64,
        mpidr: u64,
    ) -> Self {
        let pauth = field(isar1, 4) != 0   // APA
            || field(isar1, 8) != 0        // API
            || field(isar1, 24) != 0       // GPA
            || field(isar1, 28) != 0       // GPI
            || field(isar2, 12) != 0       // APA3
            || field(isar2, 8) != 0; // GPA3
        Self {
            pa_range: field(mmfr0, 0),
            vmid16: field(mmfr1, 4) == 2,
            pauth,
            gicv3: field(pfr0, 24) != 0,
            ras: field(pfr0, 28) != 0,
            aarch32_el0: field(pfr0, 0) == 2,
            midr,
            mpidr: mpidr & MPIDR_AFFINITY_MASK,
            has: FeatureSet::EMPTY,
            revidr: 0,
            aidr: 0,
        }
    }

    /// The same with [`Self::has`] decided from the core's whole ID space (`idregs::index`
    /// order) and its `ICH_VTR_EL2` (0 without GICv3).
    pub const fn with_id_space(
        mut self,
        id: &[u64; crate::idregs::ID_SPACE_LEN],
        vtr: u64,
    ) -> Self {
        self.has = FeatureSet::from_id_space(id).with_vtr(vtr);
        self
    }
}

/// Which exception the host took at EL2 (from the current-EL vectors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostTrapKind {
    /// Synchronous exception (a fault or trap in host code).
    Sync,
    /// Physical IRQ.
    Irq,
    /// Physical FIQ.
    Fiq,
    /// SError.
    SError,
}

/// Registers of the host context interrupted by an EL2 exception. Changes to it
/// (e.g. `elr`) take effect on return.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, Default)]
pub struct HostTrapFrame {
    /// x0..x30.
    pub gpr: [u64; 31],
    /// The interrupted `SP_EL2` (read-only: not restored from here).
    pub sp: u64,
    /// `ELR_EL2`.
    pub elr: u64,
    /// `SPSR_EL2`.
    pub spsr: u64,
    /// `ESR_EL2` (meaningful for synchronous exceptions and SErrors).
    pub esr: u64,
    /// `FAR_EL2` (meaningful for aborts).
    pub far: u64,
}

const _: () = assert!(
    core::mem::offset_of!(HostTrapFrame, far) == core::mem::offset_of!(HostTrapFrame, esr) + 8
);
const _: () = assert!(core::mem::offset_of!(HostTrapFrame, sp) == 31 * 8);

/// A host handler for exceptions taken at EL2 while host code runs (its own faults,
/// and its IRQs when it unmasks them).
pub type HostTrapHandler = fn(HostTrapKind, &mut HostTrapFrame);

static HOST_TRAP_HANDLER: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Called by the current-EL vectors (hw/exception.S).
#[cfg(target_arch = "aarch64")]
#[no_mangle]
extern "C" fn __arm_vcpu_host_trap(kind: u64, frame: &mut HostTrapFrame) {
    let kind = match kind & 3 {
        0 => HostTrapKind::Sync,
        1 => HostTrapKind::Irq,
        2 => HostTrapKind::Fiq,
        _ => HostTrapKind::SError,
    };
    // An UNDEFINED read in the crate's own register probe is not the host's.
    if kind == HostTrapKind::Sync && crate::hw::debug::probe_fixup(frame) {
        return;
    }
    let ptr = HOST_TRAP_HANDLER.load(Ordering::Acquire);
    if ptr.is_null() {
        // No handler: nothing sensible can be done with a host fault; stop this core.
        loop {
            core::hint::spin_loop();
        }
    }
    // SAFETY: the pointer was stored from a `HostTrapHandler` in `set_host_trap_handler`.
    let handler: HostTrapHandler = unsafe { core::mem::transmute::<*mut (), HostTrapHandler>(ptr) };
    handler(kind, frame);
}

/// The EL2 virtualization state of one physical CPU.
#[derive(Debug)]
pub struct Aarch64PerCpu {
    cpu_id: usize,
    enabled: bool,
    features: CpuFeatures,
    saved_vbar: u64,
    saved_hcr: u64,
    host_mdcr: u64,
    /// The host's feature ID space (see `idregs`).
    id_space: [u64; crate::idregs::ID_SPACE_LEN],
    /// The virtual CPU interface found at `hardware_enable` (GICv3 system
    /// registers, a GICv2 GICH frame, or none), and what the host said about it.
    iface: crate::vgic::VirtualInterface,
    gich: Option<usize>,
    maintenance_intid: u32,
    /// Which vCPU of which VM last ran here, per VMID slot (direct-mapped on the low
    /// VMID bits): a bind by another vCPU of the VM, or of another VM using the slot,
    /// invalidates the VMID's TLB entries on this core first.
    tlb_owner: [(u16, u64); TLB_OWNER_SLOTS],
    /// Debug registers the core implements beyond what the ID registers say (probed).
    debug_caps: crate::debug::DebugCaps,
    /// The core's PMU (`crate::pmu`).
    pmu_caps: crate::pmu::PmuCaps,
    pub(crate) bound: bool,
    /// `MPIDR_EL1` of this core as read at `hardware_enable` (all of it: constant for
    /// a core, and its affinity is unique to it), what `check_current_cpu` compares
    /// with one `mrs`, no masking.
    mpidr_raw: u64,
    /// This core's identity for the vCPUs bound here (unique over every core and every
    /// `hardware_enable`, never 0): a vCPU whose view of its core was computed for this
    /// key need not compute it again.
    pub(crate) core_key: u64,
    /// What the core's registers still hold of the last vCPU unbound here (the rebind
    /// shortcut); [`Resident::NONE`] while a vCPU is bound and whenever anything else
    /// may have changed them.
    pub(crate) resident: Resident,
    /// Which per-VM EL2 controls ([`crate::context::Kind::Ctl`]) the core holds:
    /// `ctl_values` under key `ctl_key` (unique, [`NO_CONTROLS`] when unknown).
    pub(crate) ctl_key: u64,
    pub(crate) ctl_values: crate::context::VmControls,
    /// [smccc] How the host's firmware is reached, what it answered, what this core
    /// reports, and the SMCCC_ARCH_WORKAROUND_* decision guests get here.
    firmware: crate::workaround::FirmwareConduit,
    firmware_info: crate::workaround::FirmwareInfo,
    speculation: crate::workaround::CpuSpeculation,
    workarounds: crate::workaround::Workarounds,
}

/// What a core's registers hold of the vCPU unbound there last: the state it saved at
/// that unbind (identity `vcpu`, generation `gen`), and whether its lazily switched
/// pointer-authentication keys were loaded then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Resident {
    /// The vCPU's identity (`Aarch64VCpu`'s, unique: never reused).
    pub vcpu: u64,
    /// The vCPU's state generation at that unbind (bumped by every later change).
    pub gen: u64,
    /// Its PAuth keys were loaded (and saved at that unbind).
    pub pauth: bool,
}

impl Resident {
    /// No vCPU's state (vCPU identities start at 1): a plain record, not an `Option`,
    /// so that a bind compares two words without testing a tag first.
    pub const NONE: Self = Self {
        vcpu: 0,
        gen: 0,
        pauth: false,
    };
}

/// The control key of a core whose per-VM EL2 controls are unknown.
pub(crate) const NO_CONTROLS: u64 = 0;
/// The control key of a vCPU whose per-VM EL2 controls have no key yet (never a core's).
pub(crate) const UNKEYED: u64 = 1;

/// Keys for [`Aarch64PerCpu::core_key`] and [`Aarch64PerCpu::ctl_key`] (from 2: 0 and 1
/// are [`NO_CONTROLS`] and [`UNKEYED`]).
static NEXT_KEY: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(2);

/// A fresh key, never handed out before.
pub(crate) fn fresh_key() -> u64 {
    NEXT_KEY.fetch_add(1, Ordering::Relaxed)
}

/// Entries of [`Aarch64PerCpu`]'s VMID → last vCPU table.
const TLB_OWNER_SLOTS: usize = 16;

impl Aarch64PerCpu {
    /// Per-CPU state for the host's CPU number `cpu_id` (not yet enabled).
    pub const fn new(cpu_id: usize) -> Self {
        Self {
            cpu_id,
            enabled: false,
            features: CpuFeatures {
                pa_range: 0,
                vmid16: false,
                pauth: false,
                gicv3: false,
                midr: 0,
                mpidr: 0,
                ras: false,
                aarch32_el0: false,
                has: FeatureSet::EMPTY,
                revidr: 0,
                aidr: 0,
            },
            id_space: [0; crate::idregs::ID_SPACE_LEN],
            iface: crate::vgic::VirtualInterface::NONE,
            gich: None,
            maintenance_intid: crate::vgic::DEFAULT_MAINTENANCE_INTID,
            tlb_owner: [(0, 0); TLB_OWNER_SLOTS],
            saved_vbar: 0,
            saved_hcr: 0,
            host_mdcr: 0,
            debug_caps: crate::debug::DebugCaps {
                claim_bits: 0,
                dtr: false,
                mdccint: false,
            },
            pmu_caps: crate::pmu::PmuCaps {
                pmuver: 0,
                pmcr: 0,
                ceid: [0; 2],
                hpmn: 0,
                el3: false,
            },
            bound: false,
            mpidr_raw: 0,
            core_key: NO_CONTROLS,
            resident: Resident::NONE,
            ctl_key: NO_CONTROLS,
            ctl_values: [0; crate::context::VM_CONTROLS],
            firmware: crate::workaround::FirmwareConduit::None,
            firmware_info: crate::workaround::FirmwareInfo::NONE,
            speculation: crate::workaround::CpuSpeculation::NONE,
            workarounds: crate::workaround::Workarounds::UNKNOWN,
        }
    }

    /// Says how this core reaches the host's firmware (PSCI / SMCCC services), which
    /// [`Self::hardware_enable`] asks about the Spectre workarounds
    /// ([`crate::workaround`]). Default [`FirmwareConduit::None`](crate::FirmwareConduit):
    /// no call is made, and guests are offered no firmware workaround. Only before
    /// `hardware_enable`.
    pub fn set_firmware(&mut self, conduit: crate::workaround::FirmwareConduit) -> VCpuResult {
        if self.enabled {
            return Err(VCpuError::InvalidState {
                op: "set_firmware",
                state: "enabled",
            });
        }
        self.firmware = conduit;
        Ok(())
    }

    /// Says that this core's GIC is a GICv2 with virtualization (GIC-400
    /// class), whose virtual interface control frame (GICH, found in the host's device
    /// tree) the host has mapped as Device memory at EL2 address `gich`: the crate then
    /// delivers virtual interrupts through `GICH_LR<n>` and switches the frame's state
    /// at bind/unbind. Use the address of the frame that belongs to the calling core
    /// (GIC-400's banked "this processor" frame is the same on every core). Only before
    /// `hardware_enable`; `gich` must be non-zero and 4 KiB aligned. Without it, the
    /// GICv3 system registers are used where they work (`ID_AA64PFR0_EL1.GIC`,
    /// `ICC_SRE_EL2.SRE`), or no virtual interrupt can be injected
    /// ([`InjectIrqError::NoVirtualInterface`](crate::InjectIrqError)).
    ///
    /// What the host maps for the guest (GICV at its GICC address, or the physical
    /// GICC for passthrough): [`crate::vgic::v2`].
    pub fn set_gicv2_interface(&mut self, gich: usize) -> VCpuResult {
        self.require_disabled("set_gicv2_interface")?;
        if gich == 0 || !gich.is_multiple_of(0x1000) {
            return Err(VCpuError::InvalidConfig(
                "GICH frame address is zero or not 4 KiB aligned",
            ));
        }
        self.gich = Some(gich);
        Ok(())
    }

    /// The INTID of the virtual interface's maintenance interrupt on this core
    /// (a PPI, 16–31; from the host's device tree; default 25, the Server Base System
    /// Architecture's, which QEMU `virt` uses). The host enables it at its GIC and
    /// routes it to EL2; the crate handles it inside `run()` (reading `*_MISR`, never
    /// acknowledging it). Only before `hardware_enable`.
    pub fn set_maintenance_interrupt(&mut self, intid: u32) -> VCpuResult {
        self.require_disabled("set_maintenance_interrupt")?;
        if !(16..32).contains(&intid) {
            return Err(VCpuError::InvalidConfig(
                "the maintenance interrupt must be a PPI (INTID 16-31)",
            ));
        }
        self.maintenance_intid = intid;
        Ok(())
    }

    /// The virtual CPU interface this core uses (valid once enabled).
    pub fn virtual_interface(&self) -> &crate::vgic::VirtualInterface {
        &self.iface
    }

    fn require_disabled(&self, op: &'static str) -> VCpuResult {
        if self.enabled {
            return Err(VCpuError::InvalidState {
                op,
                state: "enabled",
            });
        }
        Ok(())
    }

    /// What the firmware answered at `hardware_enable` (raw values).
    pub fn firmware_info(&self) -> &crate::workaround::FirmwareInfo {
        &self.firmware_info
    }

    /// This core's speculation ID fields and `MIDR_EL1` (valid once enabled).
    pub fn speculation(&self) -> &crate::workaround::CpuSpeculation {
        &self.speculation
    }

    /// The SMCCC_ARCH_WORKAROUND_1/2/3 decision for guests on this core.
    pub fn workarounds(&self) -> &crate::workaround::Workarounds {
        &self.workarounds
    }

    /// Learns what the firmware implements and what this core needs, and decides what
    /// guests get (`workaround`); turns a dynamic WORKAROUND_2 mitigation on for good.
    #[cfg(target_arch = "aarch64")]
    fn probe_workarounds(&mut self) {
        use crate::idregs::{ID_AA64MMFR1, ID_AA64PFR0, ID_AA64PFR1};
        use crate::workaround::{CpuSpeculation, FirmwareInfo, Workarounds, WORKAROUND_2};
        let id = &self.id_space;
        self.speculation = CpuSpeculation::from_id_registers(
            id[ID_AA64PFR0],
            id[ID_AA64PFR1],
            id[ID_AA64MMFR1],
            self.features.midr,
        );
        let conduit = self.firmware;
        // The hypervisor's own calls use client ID 0.
        let call = |f: u32, x1: u64| {
            crate::hw::firmware_call(conduit, &[f as u64, x1, 0, 0, 0, 0, 0], 0)[0]
        };
        self.firmware_info = FirmwareInfo::discover(conduit, call);
        self.workarounds = Workarounds::decide(&self.speculation, &self.firmware_info);
        if self.workarounds.enable_wa2 {
            call(WORKAROUND_2, 1);
        }
    }

    /// The host's number for this CPU.
    pub fn cpu_id(&self) -> usize {
        self.cpu_id
    }

    /// Whether [`Self::hardware_enable`] has run (and not been undone).
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Features of this CPU (valid once enabled).
    pub fn features(&self) -> &CpuFeatures {
        &self.features
    }

    /// Registers the handler for exceptions the host itself takes at EL2 while the
    /// crate's vectors are installed. Without one, such an exception stops the core.
    pub fn set_host_trap_handler(handler: HostTrapHandler) {
        HOST_TRAP_HANDLER.store(handler as *mut (), Ordering::Release);
    }

    /// Turns on virtualization on the calling core: probes the features, saves the
    /// current `VBAR_EL2`/`HCR_EL2`, installs the crate's vectors and the host
    /// `HCR_EL2` (`HOST_HCR_EL2`). Must run on the core this state belongs to.
    ///
    /// Fails with [`VCpuError::NoHardwareSupport`] when not at EL2 (or not built for
    /// aarch64), and with [`VCpuError::InvalidState`] if already enabled.
    ///
    /// ```no_run
    /// use arm_vcpu::{Aarch64PerCpu, VCpuError};
    ///
    /// // Once on every physical core that will run vCPUs, at EL2, on that core.
    /// let mut percpu = Aarch64PerCpu::new(0);
    /// percpu.hardware_enable()?;
    /// assert!(percpu.is_enabled());
    /// let list_registers = percpu.vtr().list_regs; // GICv3 virtual interface
    /// # let _ = list_registers;
    /// # Ok::<(), VCpuError>(())
    /// ```
    ///
    /// Where there is no EL2 (as on the build host), it says so:
    ///
    /// ```
    /// # use arm_vcpu::{Aarch64PerCpu, VCpuError};
    /// # if !arm_vcpu::has_hardware_support() {
    /// assert_eq!(Aarch64PerCpu::new(0).hardware_enable(), Err(VCpuError::NoHardwareSupport));
    /// # }
    /// ```
    pub fn hardware_enable(&mut self) -> VCpuResult {
        if self.enabled {
            return Err(VCpuError::InvalidState {
                op: "hardware_enable",
                state: "enabled",
            });
        }
        if !crate::has_hardware_support() {
            return Err(VCpuError::NoHardwareSupport);
        }
        #[cfg(target_arch = "aarch64")]
        {
            self.features = crate::hw::probe_features();
            self.mpidr_raw = crate::hw::mpidr_raw();
            self.saved_vbar = crate::hw::vbar_el2();
            self.saved_hcr = crate::hw::hcr_el2();
            self.host_mdcr = crate::hw::mdcr_el2();
            self.id_space = crate::hw::read_id_space();
            self.probe_workarounds();
            let vtr = self.probe_virtual_interface();
            self.id_space = id_space_for_interface(self.id_space, self.iface.kind);
            self.features = self.features.with_id_space(&self.id_space, vtr);
            (self.features.revidr, self.features.aidr) = crate::hw::revidr_aidr();
            self.tlb_owner = [(0, 0); TLB_OWNER_SLOTS];
            crate::hw::install_vectors(crate::hw::vectors_address(), HOST_HCR_EL2);
            // With the crate's vectors in place (they skip an UNDEFINED probe).
            self.debug_caps = crate::hw::debug::probe();
            self.pmu_caps = crate::hw::pmu::probe(
                self.id_space[crate::idregs::ID_AA64DFR0],
                self.id_space[crate::idregs::ID_AA64PFR0],
                self.host_mdcr,
            );
        }
        // Nothing is known of what the registers hold, and the vCPUs' views of the
        // core are recomputed (its features may be new).
        self.forget_loaded_state();
        self.core_key = fresh_key();
        self.enabled = true;
        Ok(())
    }

    /// Tells the crate that something other than its bind/unbind may have changed the
    /// EL1 system registers or the EL2 controls of this core (the host wrote them, ran
    /// EL1 code, or restored a saved context): the next bind loads everything. A host
    /// that only runs at EL2 and leaves those registers alone between an unbind and the
    /// next bind never needs it; `hardware_enable` does it.
    pub fn forget_loaded_state(&mut self) {
        self.resident = Resident::NONE;
        self.ctl_key = NO_CONTROLS;
    }

    /// Test hook: an enabled core with `features` (as `hardware_enable` leaves it).
    #[cfg(test)]
    pub(crate) fn test_enabled(cpu_id: usize, features: CpuFeatures) -> Self {
        let mut p = Self::new(cpu_id);
        p.features = features;
        p.enabled = true;
        p.core_key = fresh_key();
        p
    }

    /// Finds the virtual CPU interface (`VirtualInterface::choose`), reads its
    /// shape and puts it in a known state (disabled, list registers empty). Returns the
    /// raw `ICH_VTR_EL2` when the GICv3 interface is chosen (0 otherwise).
    #[cfg(target_arch = "aarch64")]
    fn probe_virtual_interface(&mut self) -> u64 {
        use crate::vgic::{v2, InterfaceKind, VirtualInterface, VtrInfo};
        let mi = self.maintenance_intid;
        let mut raw_vtr = 0;
        self.iface = match VirtualInterface::choose(
            self.gich,
            self.features.gicv3,
            crate::hw::ich::enable_sre,
        ) {
            InterfaceKind::V2 => {
                let base = self.gich.unwrap_or(0);
                let mut frame = crate::hw::gich::Frame::new(base);
                let vtr = v2::Mmio32::read32(&mut frame, v2::gich::VTR);
                VirtualInterface::v2(base, v2::decode_vtr(vtr), mi)
            }
            InterfaceKind::V3 => {
                raw_vtr = crate::hw::ich::vtr();
                VirtualInterface::v3(VtrInfo::decode(raw_vtr), mi)
            }
            InterfaceKind::None => VirtualInterface {
                maintenance_intid: mi,
                ..VirtualInterface::NONE
            },
        };
        crate::vgic::with_interface!(self.iface, r => crate::vgic::list_registers::reset(&mut r), none => ());
        raw_vtr
    }

    /// Turns virtualization off on the calling core: restores `VBAR_EL2`/`HCR_EL2`.
    /// Fails while a vCPU is bound here.
    pub fn hardware_disable(&mut self) -> VCpuResult {
        if !self.enabled {
            return Err(VCpuError::CpuNotEnabled);
        }
        if self.bound {
            return Err(VCpuError::CpuBusy);
        }
        self.check_current_cpu()?;
        #[cfg(target_arch = "aarch64")]
        crate::hw::install_vectors(self.saved_vbar, self.saved_hcr);
        self.forget_loaded_state();
        self.enabled = false;
        Ok(())
    }

    /// The host's feature ID registers (`idregs::index` order).
    pub(crate) fn id_space(&self) -> &[u64; crate::idregs::ID_SPACE_LEN] {
        &self.id_space
    }

    /// The virtual CPU interface's shape (zero list registers without one).
    pub fn vtr(&self) -> &crate::vgic::VtrInfo {
        &self.iface.vtr
    }

    /// Records that vCPU `vcpu_id` of VM `vmid` is bound here; returns whether this
    /// core's TLB entries for `vmid` must be invalidated first (another vCPU, or
    /// another VM sharing the slot, ran here last, or nothing is known).
    pub(crate) fn claim_tlb(&mut self, vmid: u16, vcpu_id: u64) -> bool {
        let slot = &mut self.tlb_owner[vmid as usize % TLB_OWNER_SLOTS];
        let stale = *slot != (vmid, vcpu_id);
        *slot = (vmid, vcpu_id);
        stale
    }

    /// `MDCR_EL2` as the host had it (its HPMN field is kept for guests).
    pub(crate) fn host_mdcr(&self) -> u64 {
        self.host_mdcr
    }

    /// The core's PMU (see `crate::pmu::PmuCaps`).
    pub(crate) fn pmu_caps(&self) -> crate::pmu::PmuCaps {
        self.pmu_caps
    }

    /// The probed debug registers (see `crate::debug::DebugCaps`).
    pub(crate) fn debug_caps(&self) -> crate::debug::DebugCaps {
        self.debug_caps
    }

    /// Fails unless this state is enabled and belongs to the calling core.
    pub(crate) fn check_current_cpu(&self) -> VCpuResult {
        if !self.enabled {
            return Err(VCpuError::CpuNotEnabled);
        }
        self.check_calling_core()
    }

    /// Fails unless this state belongs to the calling core (`MPIDR_EL1` as read at
    /// `hardware_enable`). For a state known to be enabled (a vCPU is bound to it).
    #[inline]
    pub(crate) fn check_calling_core(&self) -> VCpuResult {
        #[cfg(target_arch = "aarch64")]
        if crate::hw::mpidr_raw() != self.mpidr_raw {
            return Err(VCpuError::WrongCpu);
        }
        Ok(())
    }
}
