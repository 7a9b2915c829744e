//! [`Aarch64VCpu`]: one virtual CPU and its lifecycle.

use crate::context::{
    sel, Aarch64ContextFrame, FpSimdState, GuestSystemRegisters, RegFile, WorldSwitch,
    SCTLR_EL1_RESET, SPSR_EL1H_DAIF_MASKED,
};
use crate::debug::{self, complete_instruction};
use crate::emulate::{self, SysRegAction};
use crate::esr::{self, ExceptionClass};
use crate::exit::{operand, InlineExits, NoInlineExits, Pending, VmExit};
use crate::idregs::IdRegisters;
use crate::inject::{self, Injection};
use crate::percpu::{Aarch64PerCpu, CpuFeatures, MPIDR_AFFINITY_MASK};
use crate::pmu;
use crate::power::PowerState;
use crate::smccc::{self, Conduit, Outcome};
use crate::snapshot::{Requirements, SnapshotError};
#[cfg(test)]
use crate::sysreg::FeatureSet;
use crate::timer::{EmulatedTimer, TimerDeadlines};
use crate::traps::{self, Ctl};
#[cfg(test)]
use crate::vgic::VtrInfo;
use crate::vgic::{
    self, InjectIrqError, InterfaceKind, QueuedInterrupt, ReleasedHwInterrupts, VcpuInterface,
    VgicState, VirtualInterrupt,
};
use crate::{
    Aarch64VCpuCreateConfig, Aarch64VCpuSetupConfig, FpSwitch, IdRegisterPolicy, Stage2Config,
    TrapPolicy, VCpuError, VCpuResult,
};
use core::sync::atomic::{AtomicU64, Ordering};

mod regs;

/// Source of vCPU identities (0 is never used: it means "nobody" in the per-CPU
/// TLB-owner table).
static NEXT_VCPU_ID: AtomicU64 = AtomicU64::new(1);

/// `ICC_SGI1R_EL1` (3, 0, 12, 11, 5), `ICC_ASGI1R_EL1` (op2 6), `ICC_SGI0R_EL1` (op2 7).
const SGI1R: crate::SysRegAddr = crate::SysRegAddr::new(3, 0, 12, 11, 5);
const ASGI1R: crate::SysRegAddr = crate::SysRegAddr::new(3, 0, 12, 11, 6);
const SGI0R: crate::SysRegAddr = crate::SysRegAddr::new(3, 0, 12, 11, 7);

/// `HCR_EL2.VSE`, bit 8: a virtual SError is pending (guest state, kept across
/// unbind/bind).
const HCR_VSE: u64 = 1 << 8;

/// `HCR_EL2` (3, 4, 1, 1, 0), for the switch's own accesses.
const HCR_EL2: crate::SysRegAddr = crate::SysRegAddr::new(3, 4, 1, 1, 0);
/// `CPTR_EL2` (3, 4, 1, 1, 2).
const CPTR_EL2: crate::SysRegAddr = crate::SysRegAddr::new(3, 4, 1, 1, 2);

/// The guest's `HCR_EL2` for a setup configuration on a host with `features` (pure;
/// the rows of `traps::BITS` for `HCR_EL2`).
#[cfg(test)]
pub const fn guest_hcr_el2(setup: &Aarch64VCpuSetupConfig, features: FeatureSet) -> u64 {
    traps::compose(&traps::Inputs {
        features,
        setup: *setup,
        fp_trapped: false,
        hpmn: 0,
    })
    .get(Ctl::Hcr)
}

/// Whether a `SPSR_EL2` value is one a guest may be resumed with: AArch64 EL0t, EL1t
/// or EL1h, or AArch32 User mode (an AArch32 EL0 under an AArch64 EL1).
#[must_use]
pub const fn is_valid_guest_spsr(spsr: u64) -> bool {
    let m = spsr & 0x1f;
    matches!(m, 0b00000 | 0b00100 | 0b00101 | 0b10000)
}

/// Completes an HVC answered by [`smccc::fixed_answer`] as `smccc_call` completes an
/// answered call: x0 = `x0`, x1..x3 = 0, the PC already past the HVC (EC 0x16: AArch64
/// only), `SPSR_EL2.SS` cleared.
#[inline(always)]
pub(crate) fn complete_fixed_call(frame: &mut Aarch64ContextFrame, x0: u64) {
    frame.gpr[0] = x0;
    frame.gpr[1] = 0;
    frame.gpr[2] = 0;
    frame.gpr[3] = 0;
    debug::complete_aarch64_instruction(frame, 0);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Created; needs setup, entry and stage-2 root.
    Created,
    /// Set up; can be bound once it has an entry and a stage-2 root.
    Ready,
    /// Bound to a physical CPU: its state is in the hardware.
    Bound,
}

impl State {
    const fn name(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Ready => "ready",
            Self::Bound => "bound",
        }
    }
}

/// One virtual CPU of a 64-bit guest.
///
/// Lifecycle: [`new`](Self::new) → [`setup`](Self::setup) →
/// [`set_entry`](Self::set_entry) → [`set_stage2_root`](Self::set_stage2_root) →
/// [`bind`](Self::bind) → [`run`](Self::run) (repeatedly; complete read exits with
/// [`complete_mmio_read`](Self::complete_mmio_read) /
/// [`complete_sysreg_read`](Self::complete_sysreg_read)) → [`unbind`](Self::unbind).
/// A vCPU may be bound again, on any enabled core, after an unbind.
// `repr(C)`: the fields stay in this order, so what `run()`'s fast paths touch (the
// world switch at offset 0, `ready`, `pending`, `setup`, `ids`) keeps small offsets
// (single-instruction loads) and the large, rarely used state (the debug registers)
// goes last.
#[derive(Debug)]
// Declaration order, so `ws` stays at offset 0 whatever fields are added: the run loop
// then reaches the frame through the vCPU pointer itself (one register fewer on the
// exit fast paths; letting rustc reorder cost the ID-register path an instruction).
#[repr(C)]
pub struct Aarch64VCpu {
    ws: WorldSwitch,
    fp: FpSimdState,
    sysregs: GuestSystemRegisters,
    pub(crate) pending: Pending,
    /// Bound and nothing pending: `run()` may enter the guest straight away.
    ready: bool,
    state: State,
    create: Aarch64VCpuCreateConfig,
    setup: Aarch64VCpuSetupConfig,
    entry_set: bool,
    stage2: Option<Stage2Config>,
    /// Features of the core the vCPU is bound to.
    features: CpuFeatures,
    /// The VM's view of the feature ID registers (built at bind).
    ids: IdRegisters,
    /// The ID-register fast path's mask and pattern for the setup's policy
    /// (`idregs::FAST_ID_WANT` if the crate answers, `FAST_ID_NEVER` if they exit).
    id_fast: [u64; 2],
    /// `ids`, VTTBR, VTCR and VPIDR do not match `stage2` (set until the first bind and
    /// by `set_stage2_root`); they were computed for `features` otherwise.
    view_stale: bool,
    /// Unique identity (TLB ownership per core, the rebind shortcut); never reused.
    id: u64,
    /// Generation of the saved state (system registers, PAuth keys, virtual interface):
    /// bumped at every unbind and every change while unbound, so that a core's record
    /// of what it holds (`Aarch64PerCpu::resident`) matches only the state it saved.
    gen: u64,
    /// The `core_key` of the core `features`, `ids` and the controls were computed for.
    core_key: u64,
    /// The key of the core copy of the per-VM EL2 controls that equals this vCPU's
    /// (`percpu::UNKEYED` until compared).
    ctl_key: u64,
    /// A per-VM EL2 control was written in the hardware while bound (not through bind).
    ctl_hw_dirty: bool,
    /// The guest's FP/SIMD registers are in the hardware (lazy switching).
    fp_loaded: bool,
    /// [pauth] The guest's pointer-authentication keys are in the hardware and
    /// `HCR_EL2.API/APK` set (lazy switching: trapped until the first use after bind).
    pauth_loaded: bool,
    /// The host changed the stage-2 tables: invalidate the VMID at the next bind.
    stage2_dirty: bool,
    /// The list registers the last unbind saved (`vgic::list_registers::save`'s
    /// bitmap): what a rebind that finds its state resident reloads (nothing else of
    /// the copy can hold an interrupt then).
    vgic_held: u64,
    /// The virtual CPU interface: state while unbound, queued interrupts, the
    /// interface (GICv3 or GICv2) of the core last bound to.
    vgic: VcpuInterface,
    /// The EL1 physical timer, when emulated.
    ptimer: EmulatedTimer,
    /// SMCCC_ARCH_WORKAROUND_1/2/3 as decided for the core last bound to.
    workarounds: crate::workaround::Workarounds,
    /// Guest workaround calls made to the firmware.
    workaround_calls: u64,
    /// PSCI power state (see `power`).
    power: PowerState,
    /// Bound and powered on (`state == Bound && power == On`): what a completion
    /// needs to mark the vCPU `ready` without looking at both.
    runnable: bool,
    /// Self-hosted debug state, switched lazily (`crate::debug`).
    dbg: debug::DebugSwitch,
    /// The PMU, switched lazily (`crate::pmu`).
    pmu: pmu::PmuSwitch,
    /// Restored from a snapshot and not bound since: what the snapshot needs of the
    /// core (checked at the next bind), and its shape for register access until then.
    restored: Option<Requirements>,
}

impl Aarch64VCpu {
    /// Creates a vCPU. Fails if `mpidr_el1` has bits outside the affinity fields.
    ///
    /// ```
    /// use arm_vcpu::{Aarch64VCpu, Aarch64VCpuCreateConfig, VCpuError};
    ///
    /// // vCPU 0 of a VM whose device tree is at IPA 0x4000_0000 (x0 at entry).
    /// let vcpu = Aarch64VCpu::new(
    ///     Aarch64VCpuCreateConfig::default().with_mpidr_el1(0).with_dtb_addr(0x4000_0000),
    /// )?;
    /// assert_eq!(vcpu.gpr(0), Some(0x4000_0000));
    ///
    /// // MPIDR_EL1 bits outside Aff3..Aff0 are refused.
    /// let bad = Aarch64VCpuCreateConfig::default().with_mpidr_el1(1 << 31);
    /// assert!(matches!(Aarch64VCpu::new(bad), Err(VCpuError::InvalidConfig(_))));
    /// # Ok::<(), VCpuError>(())
    /// ```
    pub fn new(config: Aarch64VCpuCreateConfig) -> VCpuResult<Self> {
        if config.mpidr_el1 & !MPIDR_AFFINITY_MASK != 0 {
            return Err(VCpuError::InvalidConfig(
                "mpidr_el1 has bits outside Aff3..Aff0",
            ));
        }
        let mut ws = WorldSwitch::default();
        ws.frame.gpr[0] = config.dtb_addr;
        ws.frame.spsr = SPSR_EL1H_DAIF_MASKED;
        let sysregs = GuestSystemRegisters {
            sctlr_el1: SCTLR_EL1_RESET,
            vmpidr_el2: config.mpidr_el1 | (1 << 31),
            cntvoff_el2: config.cntvoff_el2,
            ..Default::default()
        };
        Ok(Self {
            ws,
            fp: FpSimdState::default(),
            sysregs,
            pending: Pending::None,
            ready: false,
            state: State::Created,
            create: config,
            setup: Aarch64VCpuSetupConfig::default(),
            entry_set: false,
            stage2: None,
            features: CpuFeatures::default(),
            ids: IdRegisters::default(),
            id_fast: [crate::idregs::FAST_ID_MASK, crate::idregs::FAST_ID_WANT],
            view_stale: true,
            id: NEXT_VCPU_ID.fetch_add(1, Ordering::Relaxed),
            gen: 0,
            core_key: crate::percpu::NO_CONTROLS,
            ctl_key: crate::percpu::UNKEYED,
            ctl_hw_dirty: false,
            fp_loaded: false,
            pauth_loaded: false,
            stage2_dirty: false,
            vgic_held: 0,
            vgic: VcpuInterface::default(),
            ptimer: EmulatedTimer::default(),
            workarounds: crate::workaround::Workarounds::UNKNOWN,
            workaround_calls: 0,
            power: if config.powered_off {
                PowerState::Off
            } else {
                PowerState::On
            },
            runnable: false,
            dbg: debug::DebugSwitch::default(),
            pmu: pmu::PmuSwitch::default(),
            restored: None,
        })
    }

    /// Chooses what the guest owns and what traps. Allowed until the first bind.
    ///
    /// ```
    /// use arm_vcpu::{Aarch64VCpu, Aarch64VCpuCreateConfig, Aarch64VCpuSetupConfig, Stage2Config};
    ///
    /// let mut vcpu = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default())?;
    /// // The guest idles in WFI: let the host deschedule it.
    /// vcpu.setup(Aarch64VCpuSetupConfig::default().with_trap_wfi(true))?;
    /// vcpu.set_entry(0x4008_0000)?;
    /// vcpu.set_stage2_root(Stage2Config::new(0x8000_0000, 1, 39, 1))?;
    /// # Ok::<(), arm_vcpu::VCpuError>(())
    /// ```
    pub fn setup(&mut self, config: Aarch64VCpuSetupConfig) -> VCpuResult {
        self.require_unbound("setup")?;
        self.setup = config;
        self.id_fast = [
            crate::idregs::FAST_ID_MASK,
            match config.id_registers {
                IdRegisterPolicy::Sanitized => crate::idregs::FAST_ID_WANT,
                IdRegisterPolicy::ExitToHost => crate::idregs::FAST_ID_NEVER,
            },
        ];
        self.touch_saved();
        // The EL2 controls follow the setup: compose them again at the next bind.
        self.view_stale = true;
        self.state = State::Ready;
        Ok(())
    }

    /// Sets where the guest starts: PC = `entry`, EL1h, DAIF masked, x0 = the DTB
    /// address from the create config. Not allowed while bound.
    pub fn set_entry(&mut self, entry: u64) -> VCpuResult {
        self.require_unbound("set_entry")?;
        if entry & 3 != 0 {
            return Err(VCpuError::InvalidConfig(
                "entry point is not 4-byte aligned",
            ));
        }
        self.ws.frame.elr = entry;
        self.ws.frame.spsr = SPSR_EL1H_DAIF_MASKED;
        self.ws.frame.gpr[0] = self.create.dtb_addr;
        self.pending = Pending::None;
        self.entry_set = true;
        Ok(())
    }

    /// Sets the VM's stage-2 translation (root table, VMID, shape). Checked against
    /// the CPU at bind. Not allowed while bound.
    pub fn set_stage2_root(&mut self, stage2: Stage2Config) -> VCpuResult {
        self.require_unbound("set_stage2_root")?;
        // Validate what does not depend on the CPU now (largest PA range, 16-bit VMID).
        stage2.registers(6, true)?;
        self.stage2 = Some(stage2);
        self.view_stale = true;
        self.touch_saved();
        Ok(())
    }

    /// Loads the vCPU into the calling physical core: EL1 system registers, FP/SIMD,
    /// timers, pointer-authentication keys and the EL2 controls, then invalidates this
    /// core's TLB entries for the VM's VMID (the tables may have changed since the VMID
    /// last ran here). `percpu` must be the calling core's enabled state.
    ///
    /// Fails with [`VCpuError::CpuBusy`] if another vCPU is bound to the core, and
    /// with [`VCpuError::InvalidState`] until `setup`, `set_entry` and
    /// `set_stage2_root` have been called.
    ///
    /// ```no_run
    /// use arm_vcpu::*;
    ///
    /// # fn main() -> Result<(), VCpuError> {
    /// let mut percpu = Aarch64PerCpu::new(0);
    /// percpu.hardware_enable()?; // at EL2, on core 0
    /// let mut vcpu = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default())?;
    /// vcpu.setup(Aarch64VCpuSetupConfig::default())?;
    /// vcpu.set_entry(0x4008_0000)?;
    /// vcpu.set_stage2_root(Stage2Config::new(0x8000_0000, 1, 39, 1))?;
    /// vcpu.bind(&mut percpu)?;
    /// assert!(vcpu.is_bound());
    /// # Ok(())
    /// # }
    /// ```
    pub fn bind(&mut self, percpu: &mut Aarch64PerCpu) -> VCpuResult {
        #[cfg(target_arch = "aarch64")]
        let r = self.bind_with(percpu, &mut crate::hw::Cpu);
        #[cfg(not(target_arch = "aarch64"))]
        let r = self.bind_with(percpu, &mut crate::context::NoRegs);
        r
    }

    /// [`Self::bind`] with the switch list's registers moved through `f` (the core's
    /// registers; a recording fake in the host tests). What the core still holds is
    /// not written again:
    /// * the vCPU's own state (EL1 registers, `VMPIDR_EL2`, the virtual interface's
    ///   active priorities and VMCR, loaded PAuth keys) when it was the last vCPU
    ///   unbound here and nothing changed it since (`Aarch64PerCpu::resident`: the
    ///   vCPU's identity and state generation, which every change to its saved state
    ///   bumps); unbind stopped its timers, so their controls are written again;
    /// * the per-VM EL2 controls (`VTTBR_EL2`, `VTCR_EL2`, `CPTR_EL2`, ...) when the
    ///   core holds the same values (`Aarch64PerCpu::ctl_key`, shared by the vCPUs of
    ///   a VM after one comparison).
    ///
    /// `HCR_EL2` and `MDCR_EL2` are written at every bind (unbind gives them back to
    /// the host).
    pub(crate) fn bind_with<F: RegFile>(
        &mut self,
        percpu: &mut Aarch64PerCpu,
        f: &mut F,
    ) -> VCpuResult {
        if self.state != State::Ready {
            return Err(VCpuError::InvalidState {
                op: "bind",
                state: self.state.name(),
            });
        }
        let vmid = match (self.entry_set, &self.stage2) {
            (true, Some(s)) => s.vmid,
            _ => {
                return Err(VCpuError::InvalidState {
                    op: "bind (entry or stage-2 root missing)",
                    state: "ready",
                })
            }
        };
        percpu.check_current_cpu()?;
        if percpu.bound {
            return Err(VCpuError::CpuBusy);
        }
        // The VM's view of this core (stage-2 registers, ID registers, EL2 controls)
        // only changes when the vCPU moves to another core or gets new tables or a new
        // setup: `core_key` names the core (and its `hardware_enable`).
        let new_core = self.core_key != percpu.core_key;
        if self.view_stale || new_core {
            self.compute_view(percpu)?;
        }
        let has = self.features.has;
        // [gicv2] Interrupts injected while unbound go into free list registers now.
        // (On the same core with nothing queued there is nothing to check.)
        let queued = !self.vgic.queue.is_empty();
        if new_core || queued {
            self.vgic
                .check_bind(percpu.virtual_interface(), self.setup.passthrough_interrupt)?;
        }
        let vgic_on = self.vgic.prepare_bind(
            percpu.virtual_interface(),
            self.setup.passthrough_interrupt,
            new_core,
        );
        #[cfg(not(target_arch = "aarch64"))]
        let _ = vgic_on;
        let flush = percpu.claim_tlb(vmid, self.id) || self.stage2_dirty;
        // The rebind shortcut: is the vCPU's own state still in the core? (Its
        // identity, never reused, and the generation of the state it saved there.)
        let record = core::mem::replace(&mut percpu.resident, crate::percpu::Resident::NONE);
        let resident = record.vcpu == self.id && record.gen == self.gen;
        // [pauth] Keys still loaded from the last bind: keep them, untrapped. (The
        // mutation build `pauth-any-vcpu` trusts the record's flag whoever it names:
        // the two-VM sweep then reads the other VM's keys.)
        let pauth = record.pauth && (resident || cfg!(arm_vcpu_mutate = "pauth-any-vcpu"));
        if pauth {
            self.sysregs.hcr_el2 |= traps::HCR_API | traps::HCR_APK;
        }
        // [debug] Records the host's MDSCR_EL1/MDCR_EL2 before they are replaced.
        self.dbg.bind(self.sysregs.mdcr_el2);
        // EL2 controls first (HCR_EL2, the stage-2 registers): before the TLB
        // maintenance below.
        self.sysregs.load_sel::<{ sel::ENTRY }, F>(has, f);
        if self.ctl_key != percpu.ctl_key {
            self.load_vm_controls(percpu, f);
        }
        if resident {
            self.sysregs.load_sel::<{ sel::TIMER_CTL }, F>(has, f);
        } else {
            self.sysregs.load_sel::<{ sel::VCPU }, F>(has, f);
        }
        #[cfg(target_arch = "aarch64")]
        {
            if self.setup.fp_switch == FpSwitch::Eager {
                crate::hw::fpsimd_restore(&self.fp);
            }
            if vgic_on {
                let st = &self.vgic.state;
                let aprs_vmcr_loaded = resident;
                // Resident and nothing refilled from the queue: the copy's list
                // registers are what the unbind saved.
                let held = (resident && !queued).then_some(self.vgic_held);
                vgic::with_interface!(self.vgic.iface, r => vgic::list_registers::load(&mut r, st, aprs_vmcr_loaded, held), none => ());
            }
            if flush {
                crate::hw::flush_current_vmid_local();
            }
        }
        // [debug] Breakpoints, watchpoints or step enabled: load now, they must fire.
        if self.dbg.load_at_bind() {
            self.dbg.load();
        }
        // [pmu] Counters running or an overflow pending: load now (MDCR_EL2 is dbg's).
        self.pmu.bind(&mut self.dbg);
        let _ = flush;
        self.fp_loaded = self.setup.fp_switch == FpSwitch::Eager;
        self.pauth_loaded = pauth;
        self.ctl_hw_dirty = false;
        self.stage2_dirty = false;
        percpu.bound = true;
        self.state = State::Bound;
        self.runnable = self.power == PowerState::On;
        // Nothing left pending and a frame the core can enter: `run()` need not take
        // `prepare_entry` (which would find the same).
        self.ready = self.runnable
            && matches!(self.pending, Pending::None)
            && is_valid_guest_spsr(self.ws.frame.spsr)
            && crate::aarch32::entry_allowed(
                self.ws.frame.spsr,
                self.features.aarch32_el0,
                self.setup.hide_aarch32_el0,
            );
        Ok(())
    }

    /// The VM's view of the core `percpu` (first bind, another core, new tables or
    /// setup): stage-2 registers, the ID view, the debug view, the EL2 controls, the
    /// core's features and SMCCC workaround decision. Refuses a restored snapshot the
    /// core cannot run.
    #[inline(never)]
    fn compute_view(&mut self, percpu: &Aarch64PerCpu) -> VCpuResult {
        let Some(stage2) = self.stage2 else {
            return Err(VCpuError::InvalidState {
                op: "bind (entry or stage-2 root missing)",
                state: "ready",
            });
        };
        let feat = *percpu.features();
        let eager = self.setup.fp_switch == FpSwitch::Eager;
        let (vttbr, vtcr) = stage2.registers(feat.pa_range, feat.vmid16)?;
        // Pointer authentication stays visible only where its keys are switched.
        let mut ids = IdRegisters::sanitized(percpu.id_space(), feat.pauth, stage2.ipa_bits);
        if self.setup.hide_aarch32_el0 {
            ids = ids.without_aarch32_el0();
        }
        // [pmu] The VM's PMU on this core: PMUVer, PMCR_EL0.N, PMCEID0/1.
        let pv = pmu::PmuView::decide(self.setup.pmu, &percpu.pmu_caps())
            .map_err(VCpuError::InvalidConfig)?;
        if let Some(v) = pv {
            ids = ids.with_pmu(v.pmuver);
        }
        // A restored snapshot runs only where it means the same (`snapshot`).
        // (Checked once: from here on the core's view is the vCPU's.)
        if let Some(req) = self.restored {
            let iface = percpu.virtual_interface();
            let vtr =
                if !self.setup.passthrough_interrupt && iface.kind != vgic::InterfaceKind::None {
                    iface.vtr
                } else {
                    vgic::VtrInfo::NONE
                };
            if let Err(e) = req.check(feat.has, &ids, &vtr, &percpu.debug_caps()) {
                return Err(VCpuError::Snapshot(SnapshotError::Incompatible(e)));
            }
            self.restored = None;
        }
        self.ids = ids;
        self.pmu.set_view(pv);
        self.sysregs.vttbr_el2 = vttbr;
        self.sysregs.vtcr_el2 = vtcr;
        self.sysregs.vpidr_el2 = self.create.midr_el1.unwrap_or(feat.midr);
        // [debug] As many breakpoints/watchpoints are switched as the view shows.
        self.dbg.set_view(
            debug::DebugView::from_dfr0(self.ids.values()[crate::idregs::ID_AA64DFR0]),
            percpu.debug_caps(),
        );
        self.compose_controls(&feat, percpu.host_mdcr(), eager);
        self.features = feat;
        // [smccc] the guest's SMCCC_ARCH_WORKAROUND_* answers follow this core.
        self.workarounds = *percpu.workarounds();
        self.core_key = percpu.core_key;
        self.view_stale = false;
        Ok(())
    }

    /// Writes the per-VM EL2 controls unless the core holds the same values already
    /// (another vCPU of the VM was bound there with them): then the vCPU takes the
    /// core's key, and its next binds there compare one word.
    #[inline(never)]
    fn load_vm_controls<F: RegFile>(&mut self, percpu: &mut Aarch64PerCpu, f: &mut F) {
        if percpu.ctl_key == crate::percpu::NO_CONTROLS
            || !self.sysregs.vm_controls_match(&percpu.ctl_values)
        {
            self.sysregs
                .load_sel::<{ sel::VM }, F>(self.features.has, f);
            // The new VTTBR_EL2 (VMID) in effect for the TLB maintenance that may follow
            // (`hw::flush_current_vmid_local` does not synchronise first).
            #[cfg(target_arch = "aarch64")]
            crate::hw::isb();
            self.sysregs.store_vm_controls(&mut percpu.ctl_values);
            percpu.ctl_key = crate::percpu::fresh_key();
        }
        self.ctl_key = percpu.ctl_key;
    }

    /// Marks the saved state changed: no core holds it any more (the rebind shortcut
    /// must not skip its load). Every change to the saved system registers, PAuth keys
    /// or virtual interface state while unbound comes through here.
    #[inline]
    pub(crate) fn touch_saved(&mut self) {
        self.gen = self.gen.wrapping_add(1);
    }

    /// Marks the per-VM EL2 controls changed (composed again, or `CNTVOFF_EL2`
    /// written): the next bind compares them with the core's.
    #[inline]
    pub(crate) fn touch_controls(&mut self) {
        self.ctl_key = crate::percpu::UNKEYED;
        if self.state == State::Bound {
            // The core's copy is what the next unbind forgets.
            self.ctl_hw_dirty = true;
        }
    }

    /// The EL2 controls for a core with `feat` (`traps::BITS`), kept in the switch list
    /// until the vCPU moves to another core or is set up again (the composition walks
    /// the whole table: not per bind). A pending virtual SError (HCR_EL2.VSE) is kept;
    /// `CPTR_EL2.TFP` is set for lazy FP switching (cleared in the hardware only, on the
    /// first use, so every bind traps again).
    fn compose_controls(&mut self, feat: &CpuFeatures, host_mdcr: u64, eager: bool) {
        let t = traps::compose(&traps::Inputs {
            features: feat.has,
            setup: self.setup,
            fp_trapped: !eager,
            hpmn: self.pmu.mdcr_bits(host_mdcr),
        });
        let r = &mut self.sysregs;
        r.hcr_el2 = t.get(Ctl::Hcr) | (r.hcr_el2 & HCR_VSE);
        r.cptr_el2 = t.get(Ctl::Cptr);
        r.mdcr_el2 = t.get(Ctl::Mdcr);
        r.cnthctl_el2 = t.get(Ctl::Cnthctl);
        r.hcrx_el2 = t.get(Ctl::Hcrx);
        r.hfgrtr_el2 = t.get(Ctl::Hfgrtr);
        r.hfgwtr_el2 = t.get(Ctl::Hfgwtr);
        r.hfgitr_el2 = t.get(Ctl::Hfgitr);
        r.hdfgrtr_el2 = t.get(Ctl::Hdfgrtr);
        r.hdfgwtr_el2 = t.get(Ctl::Hdfgwtr);
        r.hfgrtr2_el2 = t.get(Ctl::Hfgrtr2);
        r.hfgwtr2_el2 = t.get(Ctl::Hfgwtr2);
        r.hfgitr2_el2 = t.get(Ctl::Hfgitr2);
        r.hdfgrtr2_el2 = t.get(Ctl::Hdfgrtr2);
        r.hdfgwtr2_el2 = t.get(Ctl::Hdfgwtr2);
        r.mpam2_el2 = t.get(Ctl::Mpam2);
        // The hidden features' CPACR_EL1 fields as `emulate::cpacr_hw` wants them.
        r.cpacr_el1 = emulate::cpacr_hw(r.cpacr_el1, feat.has);
        self.touch_controls();
        self.touch_saved();
    }

    /// Saves the vCPU's state out of the calling core and restores the host's
    /// `HCR_EL2`. `percpu` must be the state passed to [`bind`](Self::bind).
    ///
    /// ```no_run
    /// # use arm_vcpu::*;
    /// # fn main() -> Result<(), VCpuError> {
    /// # let mut percpu = Aarch64PerCpu::new(0);
    /// # percpu.hardware_enable()?;
    /// # let mut vcpu = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default())?;
    /// # vcpu.setup(Aarch64VCpuSetupConfig::default())?;
    /// # vcpu.set_entry(0x4008_0000)?;
    /// # vcpu.set_stage2_root(Stage2Config::new(0x8000_0000, 1, 39, 1))?;
    /// # vcpu.bind(&mut percpu)?;
    /// // Time slice over: take the vCPU off this core (it may be bound on another).
    /// vcpu.unbind(&mut percpu)?;
    /// assert!(!vcpu.is_bound());
    /// # Ok(())
    /// # }
    /// ```
    // Inlined into the host's switch path (once per switch: no frame of its own).
    #[inline(always)]
    pub fn unbind(&mut self, percpu: &mut Aarch64PerCpu) -> VCpuResult {
        #[cfg(target_arch = "aarch64")]
        let r = self.unbind_with(percpu, &mut crate::hw::Cpu);
        #[cfg(not(target_arch = "aarch64"))]
        let r = self.unbind_with(percpu, &mut crate::context::NoRegs);
        r
    }

    /// [`Self::unbind`] with the switch list's registers moved through `f`. Records in
    /// `percpu` what the core now holds of the vCPU (`Aarch64PerCpu::resident`), for
    /// the rebind shortcut.
    #[inline(always)]
    pub(crate) fn unbind_with<F: RegFile>(
        &mut self,
        percpu: &mut Aarch64PerCpu,
        f: &mut F,
    ) -> VCpuResult {
        if self.state != State::Bound {
            return Err(VCpuError::InvalidState {
                op: "unbind",
                state: self.state.name(),
            });
        }
        // `percpu` is the one the vCPU is bound to (bound, with its core key: then
        // it is enabled, since hardware_disable refuses while bound) and the calling
        // core is its (MPIDR).
        if !percpu.bound || percpu.core_key != self.core_key {
            return Err(VCpuError::WrongCpu);
        }
        percpu.check_calling_core()?;
        // [pmu] Saves the guest's PMU registers if loaded, its counters stopped first
        // (before the host's MDCR_EL2 is back: its HPMN would give counters the
        // guest's PMCR_EL0.E enables to the host's range for a moment).
        self.pmu.unbind();
        // [debug] Saves the guest's debug registers if loaded; the host's come back.
        self.dbg.unbind();
        let has = self.features.has;
        self.sysregs.save_sel::<{ sel::SAVED }, F>(has, f);
        if self.pauth_loaded {
            self.sysregs.save_sel::<{ sel::LAZY }, F>(has, f);
        }
        // A pending virtual SError (HCR_EL2.VSE) is guest state; the PAuth trap bits
        // are the lazy group's.
        let hcr = f.read::<{ HCR_EL2.0 }>();
        self.sysregs.hcr_el2 =
            (self.sysregs.hcr_el2 & !(HCR_VSE | traps::HCR_API | traps::HCR_APK)) | (hcr & HCR_VSE);
        if self.fp_loaded {
            #[cfg(target_arch = "aarch64")]
            crate::hw::fpsimd_save(&mut self.fp);
            // The first use cleared CPTR_EL2.TFP: the core's copy of the per-VM
            // controls (with TFP) holds again once it is set back.
            f.write::<{ CPTR_EL2.0 }>(self.sysregs.cptr_el2);
        }
        #[cfg(target_arch = "aarch64")]
        {
            if self.vgic.in_use(self.setup.passthrough_interrupt) {
                self.vgic_held = vgic::with_interface!(self.vgic.iface, r => vgic::list_registers::save(&mut r, &mut self.vgic.state), none => 0);
            }
        }
        f.write::<{ HCR_EL2.0 }>(crate::percpu::HOST_HCR_EL2);
        #[cfg(target_arch = "aarch64")]
        crate::hw::isb();
        // A control written while bound: the core's per-VM controls are not the ones
        // its key stands for any more.
        if self.ctl_hw_dirty {
            percpu.ctl_key = crate::percpu::NO_CONTROLS;
        }
        self.touch_saved();
        percpu.resident = crate::percpu::Resident {
            vcpu: self.id,
            gen: self.gen,
            pauth: self.pauth_loaded,
        };
        self.fp_loaded = false;
        self.pauth_loaded = false;
        percpu.bound = false;
        self.ready = false;
        self.runnable = false;
        self.state = State::Ready;
        Ok(())
    }

    /// Whether the vCPU is bound to a physical core.
    pub fn is_bound(&self) -> bool {
        self.state == State::Bound
    }

    /// Runs the guest until an exit the host must handle.
    ///
    /// Before entering, applies what the previous exit left pending (advancing the PC
    /// past an emulated store, SMC, MSR or WFx). Fails with
    /// [`VCpuError::PendingCompletion`] if the previous exit was a read that has not
    /// been completed, with [`VCpuError::NotBound`] if not bound. Must be called on
    /// the core the vCPU is bound to.
    ///
    /// ```no_run
    /// use arm_vcpu::smccc::ret;
    /// # use arm_vcpu::*;
    /// # fn main() -> Result<(), VCpuError> {
    /// # let mut percpu = Aarch64PerCpu::new(0);
    /// # percpu.hardware_enable()?;
    /// # let mut vcpu = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default())?;
    /// # vcpu.setup(Aarch64VCpuSetupConfig::default())?;
    /// # vcpu.set_entry(0x4008_0000)?;
    /// # vcpu.set_stage2_root(Stage2Config::new(0x8000_0000, 1, 39, 1))?;
    /// # vcpu.bind(&mut percpu)?;
    /// # fn device_read(addr: u64, width: AccessWidth) -> u64 { 0 }
    /// # fn device_write(addr: u64, width: AccessWidth, data: u64) {}
    /// loop {
    ///     match vcpu.run()? {
    ///         VmExit::MmioRead { addr, width, .. } => {
    ///             vcpu.complete_mmio_read(device_read(addr, width))?
    ///         }
    ///         VmExit::MmioWrite { addr, width, data } => device_write(addr, width, data),
    ///         // A hypercall this host does not offer (SMCCC: NOT_SUPPORTED in x0).
    ///         VmExit::Hypercall { .. } => vcpu.set_return_value(ret::NOT_SUPPORTED as u64),
    ///         VmExit::Psci { request: PsciRequest::SystemOff, .. } => break,
    ///         // A physical interrupt: the host takes it once it unmasks IRQs.
    ///         VmExit::ExternalInterrupt { .. } => {}
    ///         // An abort where no device is: the guest takes it, as on hardware.
    ///         VmExit::DataAbort { va, write, .. } => vcpu.inject_data_abort(va, write)?,
    ///         VmExit::InstructionAbort { va, .. } => vcpu.inject_instruction_abort(va)?,
    ///         VmExit::Psci { .. } => vcpu.complete_psci(ret::NOT_SUPPORTED)?,
    ///         // An SError is the guest's failure: it ends this VM, nothing else.
    ///         VmExit::SError { .. } => break,
    ///         // One vCPU: nothing to wait for, no SGI target.
    ///         VmExit::WaitForInterrupt | VmExit::WaitForEvent | VmExit::SendSgi { .. } => {}
    ///         // Anything else this host does not emulate (a system register or an
    ///         // instruction): UNDEFINED for the guest — never a host panic.
    ///         _ => vcpu.inject_undef()?,
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    // Inlined into the host's exit loop: the exit is built in the caller's place (no
    // copy of it on return) and the fast paths below cost no call.
    #[inline(always)]
    pub fn run(&mut self) -> VCpuResult<VmExit> {
        self.run_with(&mut NoInlineExits)
    }

    /// [`run`](Self::run), with exits the host serves inside it ([`InlineExits`]):
    /// * every `HVC #0` from AArch64 (ESR_EL2 EC 0x16, imm16 0) is offered to
    ///   [`InlineExits::hvc0`] with the guest's x0..x30 before the crate looks at it;
    ///   one it answers is complete — the guest resumes after the HVC with the
    ///   registers as `hvc0` left them;
    /// * an MMIO access with a valid syndrome from AArch64 state is offered to
    ///   [`InlineExits::read`] / [`InlineExits::write`]; one they serve is completed
    ///   here (a load's register, the PC, `SPSR_EL2.SS`).
    ///
    /// Either way the guest resumes without `run_with` returning: no exit, nothing to
    /// complete, not counted as an exit (the host counts them itself). Anything they
    /// decline is the exit `run()` returns.
    ///
    /// ```no_run
    /// # use arm_vcpu::*;
    /// # fn main() -> Result<(), VCpuError> {
    /// # let mut percpu = Aarch64PerCpu::new(0);
    /// # percpu.hardware_enable()?;
    /// # let mut vcpu = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default())?;
    /// # vcpu.setup(Aarch64VCpuSetupConfig::default())?;
    /// # vcpu.set_entry(0x4008_0000)?;
    /// # vcpu.set_stage2_root(Stage2Config::new(0x8000_0000, 1, 39, 1))?;
    /// # vcpu.bind(&mut percpu)?;
    /// use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
    /// /// A host-defined "null" call (a vendor hypervisor service ID) answered in
    /// /// place, and a lock-free counter register at IPA 0x0a00_0000 (reads count up).
    /// struct Fast<'a> {
    ///     reads: &'a AtomicU64,
    ///     null_calls: u64,
    /// }
    /// impl InlineExits for Fast<'_> {
    ///     fn hvc0(&mut self, x: &mut [u64; 31]) -> bool {
    ///         if x[0] != 0xc600_0000 {
    ///             return false; // not ours (PSCI and the architecture's are the crate's)
    ///         }
    ///         self.null_calls += 1;
    ///         x[0] = 0;
    ///         true
    ///     }
    ///     fn read(&mut self, addr: u64, _: AccessWidth) -> Option<u64> {
    ///         (addr == 0x0a00_0000).then(|| self.reads.fetch_add(1, Relaxed))
    ///     }
    /// }
    /// let reads = AtomicU64::new(0);
    /// let mut fast = Fast { reads: &reads, null_calls: 0 };
    /// match vcpu.run_with(&mut fast)? {
    ///     // Any other device: as with `run()`.
    ///     VmExit::MmioRead { .. } => vcpu.complete_mmio_read(0)?,
    ///     _ => {}
    /// }
    /// # Ok(())
    /// # }
    /// ```
    #[inline(always)]
    pub fn run_with(&mut self, host: &mut impl InlineExits) -> VCpuResult<VmExit> {
        // One check on the hot path: an unbound vCPU always has `ready == false`.
        if !self.ready {
            self.prepare_entry()?;
        }
        #[cfg(target_arch = "aarch64")]
        loop {
            // SAFETY: the vCPU is bound to this core (checked above; the host contract
            // forbids running it on another core), so its EL1/EL2 state is loaded;
            // `frame.spsr` is a guest state (checked whenever the host changed the
            // frame, see `regs_mut`).
            let code = unsafe { crate::hw::enter_guest(&mut self.ws) };
            // `HVC #0` (one compare of the whole syndrome: EC 0x16, IL 1, imm16 and ISS2
            // zero; an asynchronous exit has bit 63 set). HVC's preferred return is the
            // next instruction: nothing to advance. (An HVC with a non-zero immediate
            // takes the general path, which gives the same answers.)
            if code == esr::HVC64_IMM0 {
                // The host's own fast path.
                if host.hvc0(&mut self.ws.frame.gpr) {
                    continue;
                }
                // A function ID the host owns. SMCCC owners 0 (Arm architecture) and 4
                // (standard secure: PSCI) are the crate's; W0 bits [29:24] other than
                // bit 26 being zero means one of those.
                let g = &self.ws.frame.gpr;
                if (g[0] >> 24) & 0x3b != 0 {
                    return Ok(VmExit::Hypercall {
                        imm: 0,
                        args: [g[0], g[1], g[2], g[3], g[4], g[5], g[6]],
                    });
                }
                // An SMCCC call whose answer is fixed (PSCI_VERSION, SMCCC_VERSION,
                // MIGRATE_INFO_TYPE), as `smccc_call` answers it: x0..x3, ELR already
                // past the HVC (EC 0x16: AArch64 only), SPSR_EL2.SS cleared.
                if let Some(x0) = smccc::fixed_answer(g[0] as u32) {
                    complete_fixed_call(&mut self.ws.frame, x0);
                    continue;
                }
            }
            // Fast path: an ID register read (HCR_EL2.TID3) answered from the VM's view
            // (`id_fast` never matches when the policy sends them to the host); MRS is
            // always a 4-byte instruction.
            if let Some((i, rt)) = crate::idregs::fast_id_read_as(code, self.id_fast) {
                if let Some(&v) = self.ids.values().get(i) {
                    if rt < 31 {
                        self.ws.frame.gpr[rt as usize] = v;
                    }
                    // EC 0x18 comes from AArch64 only.
                    debug::complete_aarch64_instruction(&mut self.ws.frame, 4);
                    continue;
                }
            }
            // Fast path: an MMIO access with a valid syndrome from AArch64 state, decoded
            // as `handle_sync_exit` would (an AArch32 EL0 takes the generic path, which
            // looks at its view first).
            if crate::exit::is_fast_mmio(code) && !crate::aarch32::is_aarch32(self.ws.frame.spsr) {
                match self.fast_mmio(code, host) {
                    Some(exit) => return Ok(exit),
                    // Served by `dev`: re-enter straight away.
                    None => continue,
                }
            }
            if let Some(exit) = self.handle_exit(code) {
                return Ok(exit);
            }
            // Answered inside the crate: re-enter straight away.
        }
        #[cfg(not(target_arch = "aarch64"))]
        {
            let _ = host;
            Err(VCpuError::NoHardwareSupport)
        }
    }

    /// The ID-register fast path's pattern (`idregs::fast_id_read_as`).
    #[cfg(test)]
    pub(crate) fn id_fast_pattern(&self) -> [u64; 2] {
        self.id_fast
    }

    /// The MMIO fast path of `run()` for an exit `crate::exit::is_fast_mmio` accepts,
    /// from AArch64 state: the fault address read, the access decoded (as
    /// `decode_sync` does) and served by `dev` (`None`), or its exit returned and its
    /// completion recorded.
    #[cfg(target_arch = "aarch64")]
    #[inline(always)]
    fn fast_mmio(&mut self, code: u64, dev: &mut impl InlineExits) -> Option<VmExit> {
        let (far, hpfar) = crate::hw::read_fault_address();
        self.mmio_exit(code, far, hpfar, dev)
    }

    /// The exit and completion of an emulatable data abort from AArch64 state with
    /// syndrome `esr` and fault address registers `far`/`hpfar`, or `None` when `dev`
    /// served it (the MMIO fast path's; the host tests compare it with
    /// `handle_sync_exit` and the host's completion).
    #[inline(always)]
    pub(crate) fn mmio_exit(
        &mut self,
        esr: u64,
        far: u64,
        hpfar: u64,
        dev: &mut impl InlineExits,
    ) -> Option<VmExit> {
        let addr = esr::Syndrome { esr, far, hpfar }.fault_ipa(true);
        if crate::exit::serve_mmio_aarch64(esr, addr, &mut self.ws.frame, dev) {
            return None;
        }
        let (exit, pending) = crate::exit::mmio_access(esr, addr, &self.ws.frame);
        self.set_pending(pending);
        Some(exit)
    }

    /// The exits `run()`'s fast paths leave. The lazy FP/SIMD load (EC 0x07 while
    /// CPTR_EL2.TFP traps) from AArch64 state is answered here, inline, before the
    /// generic decode and its frame: the same action as its arm in `handle_sync_exit`
    /// (AArch32 EL0 goes there, where a condition-failed instruction is skipped). Out
    /// of `run()`'s loop (whose fast paths keep their registers), with a small frame.
    #[cfg(target_arch = "aarch64")]
    #[inline(never)]
    fn handle_exit(&mut self, code: u64) -> Option<VmExit> {
        if self.is_fast_fp_trap(code) {
            self.fp_first_use();
            return None;
        }
        self.handle_other_exit(code)
    }

    /// [`Self::handle_exit`] for everything but the lazy FP/SIMD trap: asynchronous
    /// exits, then the generic decode. Out of line (its frame is large).
    #[cfg(target_arch = "aarch64")]
    #[inline(never)]
    fn handle_other_exit(&mut self, code: u64) -> Option<VmExit> {
        if code >> 63 != 0 {
            return self.async_exit(code);
        }
        let mut syn = esr::Syndrome {
            esr: code,
            far: 0,
            hpfar: 0,
        };
        if esr::Syndrome::needs_fault_address(code) {
            (syn.far, syn.hpfar) = crate::hw::read_fault_address();
        }
        self.handle_sync_exit(&syn)
    }

    /// `handle_exit`'s lazy FP/SIMD fast path: a synchronous EC 0x07 exit from
    /// AArch64 state that is the lazy switch's first use since bind (host-tested
    /// against `handle_sync_exit`, tests/fast_paths.rs).
    #[inline(always)]
    pub(crate) fn is_fast_fp_trap(&self, code: u64) -> bool {
        // EC in [31:26]; ISS2 [55:32] is RES0 for EC 0x07, so the whole upper part
        // (the async flag in bit 63 included) compares as one value.
        code >> 26 == 0x07
            && self.lazy_fp_pending()
            && !crate::aarch32::is_aarch32(self.ws.frame.spsr)
    }

    /// Whether an FP/SIMD trap (EC 0x07) is the lazy switch's first use since bind.
    #[inline(always)]
    fn lazy_fp_pending(&self) -> bool {
        !self.fp_loaded && self.setup.fp_switch == FpSwitch::Lazy
    }

    /// First FP/SIMD use since bind: load the registers, stop trapping, and re-execute
    /// the instruction (the caller returns `None`).
    #[inline(always)]
    fn fp_first_use(&mut self) {
        // Stop trapping first: with CPTR_EL2.TFP set, the restore itself would trap
        // at EL2.
        #[cfg(target_arch = "aarch64")]
        {
            crate::hw::set_cptr_el2(self.sysregs.cptr_el2 & !traps::CPTR_TFP);
            crate::hw::fpsimd_restore(&self.fp);
        }
        self.fp_loaded = true;
    }

    /// An IRQ, FIQ or SError exit, kept out of `handle_exit` (whose synchronous path
    /// is the common one).
    #[cfg(target_arch = "aarch64")]
    #[inline(never)]
    fn async_exit(&mut self, code: u64) -> Option<VmExit> {
        if code & 3 == 1 && self.vgic.in_use(self.setup.passthrough_interrupt) {
            // [gicv2] The virtual interface's maintenance interrupt (underflow / no
            // pending): move queued interrupts into the list registers it signals are
            // free, and re-enter. The level-sensitive PPI drops once the condition is
            // gone.
            let q = &mut self.vgic.queue;
            if vgic::with_interface!(self.vgic.iface, r => vgic::list_registers::maintenance(&mut r, q), none => false)
            {
                return None;
            }
        }
        Some(match code & 3 {
            1 => VmExit::ExternalInterrupt { fiq: false },
            2 => VmExit::ExternalInterrupt { fiq: true },
            _ => VmExit::SError {
                esr: self.ws.serror_esr,
            },
        })
    }

    /// Handles a synchronous exit captured in `syn`: answers what the crate answers
    /// (SMCCC/PSCI queries, emulated system registers, UNDEF for unhandled traps) and
    /// returns `None`, or returns the exit for the host and records what it leaves
    /// pending. Touches hardware only through `inject` while bound, so the host tests
    /// drive it directly on an unbound vCPU.
    pub(crate) fn handle_sync_exit(&mut self, syn: &crate::esr::Syndrome) -> Option<VmExit> {
        // --- AArch32 EL0 (aarch32.rs): condition checks, coprocessor traps. ---
        if crate::aarch32::is_aarch32(self.ws.frame.spsr) {
            if let Some(answered) = self.aarch32_trap(syn) {
                return answered;
            }
        }
        let (exit, pending) = crate::exit::decode_sync(syn, &self.ws.frame);
        let len = crate::esr::instruction_length(syn.esr);
        match exit {
            VmExit::Unhandled {
                class: Some(ExceptionClass::FpAccess),
                ..
            } if self.lazy_fp_pending() => {
                self.fp_first_use();
                return None;
            }
            VmExit::SysRegWrite { reg, value }
                if (reg == SGI1R || reg == ASGI1R || reg == SGI0R)
                    && self.vgic.iface.kind == InterfaceKind::V3 =>
            {
                self.set_pending(Pending::Advance(len as u8));
                let register =
                    vgic::SgiRegister::from_op2(reg.op2()).unwrap_or(vgic::SgiRegister::Sgi1r);
                return Some(VmExit::SendSgi {
                    request: vgic::decode_sgi(value, register),
                });
            }
            VmExit::SysRegRead { reg, .. } | VmExit::SysRegWrite { reg, .. }
                if !self.setup.passthrough_timer && EmulatedTimer::handles(reg) =>
            {
                let iss = crate::esr::SysRegIss::decode(syn.esr);
                let now = crate::physical_count();
                if iss.read {
                    if iss.rt < 31 {
                        self.ws.frame.gpr[iss.rt as usize] = self.ptimer.read(reg, now);
                    }
                } else {
                    self.ptimer.write(reg, operand(&self.ws.frame, iss.rt), now);
                }
                // EC 0x18: AArch64 only (the AArch32 timer views go through `aarch32`).
                debug::complete_aarch64_instruction(&mut self.ws.frame, len);
                return None;
            }
            VmExit::Hypercall { imm, args } => return self.smccc_call(Conduit::Hvc, imm, args),
            VmExit::SecureMonitorCall { imm, args } => {
                return self.smccc_call(Conduit::Smc, imm, args)
            }
            VmExit::SysRegRead { reg, .. } | VmExit::SysRegWrite { reg, .. } => {
                let iss = crate::esr::SysRegIss::decode(syn.esr);
                let ids = match self.setup.id_registers {
                    IdRegisterPolicy::Sanitized => Some(&self.ids),
                    IdRegisterPolicy::ExitToHost => None,
                };
                let host_ids = ids.is_none();
                let value = operand(&self.ws.frame, iss.rt);
                let cx = emulate::Context {
                    ids,
                    actlr: emulate::ACTLR_EL1_VALUE,
                    cpacr: self.sysregs.cpacr_el1,
                    revidr: self.features.revidr,
                    aidr: self.features.aidr,
                    has: self.features.has,
                };
                let action = match emulate::sysreg(reg, iss.read, value, &cx) {
                    // [debug] op0 = 2 (kept out of line: rare, and big).
                    SysRegAction::Debug => self.debug_trap(syn.esr),
                    action => action,
                };
                match action {
                    SysRegAction::Read(v) => {
                        if iss.rt < 31 {
                            self.ws.frame.gpr[iss.rt as usize] = v;
                        }
                    }
                    SysRegAction::Write => {}
                    SysRegAction::WriteCpacr(v) => {
                        self.sysregs.cpacr_el1 = v;
                        if self.state != State::Bound {
                            self.touch_saved();
                        }
                        #[cfg(target_arch = "aarch64")]
                        if self.state == State::Bound {
                            // No ISB: the ERET back into the guest synchronises it.
                            crate::hw::set_cpacr_el1(v);
                        }
                    }
                    // The debug state was loaded: the instruction runs again.
                    SysRegAction::Debug => return None,
                    // The host asked to answer the ID registers itself.
                    SysRegAction::Unhandled if host_ids && crate::idregs::index(reg).is_some() => {
                        self.set_pending(pending);
                        return Some(exit);
                    }
                    // [pauth] A key register (HCR_EL2.APK clear) before the keys were
                    // loaded: load them and run the access again.
                    SysRegAction::Unhandled
                        if crate::sysreg::is_pauth_key(reg) && self.pauth_first_use() =>
                    {
                        return None
                    }
                    // [pmu] A PMU register (crate::pmu, out of line), or the trap policy.
                    SysRegAction::Unhandled => {
                        if self.pmu_trap(syn.esr, len) {
                            return None;
                        }
                        return self.unhandled(exit, pending);
                    }
                }
                // EC 0x18: AArch64 only.
                debug::complete_aarch64_instruction(&mut self.ws.frame, len);
                return None;
            }
            // [pauth] The first PAC/AUT instruction since bind (EC 0x09, HCR_EL2.API
            // clear): load the keys, stop trapping, and re-execute it.
            VmExit::Unhandled {
                class: Some(ExceptionClass::PointerAuth),
                ..
            } if self.pauth_first_use() => return None,
            // Features the guest may not use (their state is not switched) and traps
            // with no meaning for a guest: UNDEFINED, as on a CPU without them.
            VmExit::Unhandled {
                class:
                    Some(
                        ExceptionClass::Sve
                        | ExceptionClass::Sme
                        | ExceptionClass::PointerAuth
                        | ExceptionClass::Ls64
                        | ExceptionClass::SysReg128
                        | ExceptionClass::Gcs
                        | ExceptionClass::Unknown
                        | ExceptionClass::IllegalState,
                    ),
                ..
            } => return self.unhandled(exit, pending),
            _ => {}
        }
        self.set_pending(pending);
        Some(exit)
    }

    /// The AArch32 EL0 part of [`Self::handle_sync_exit`]: `Some(answer)` when
    /// `aarch32::handle` dealt with the exit, `None` for the generic path. Out of line:
    /// the AArch64 exit path pays one test for it.
    #[inline(never)]
    fn aarch32_trap(&mut self, syn: &crate::esr::Syndrome) -> Option<Option<VmExit>> {
        let esr = syn.esr;
        if self.setup.hide_aarch32_el0 {
            // The guest left the ID view's promise (EL0 is AArch64-only).
            return Some(self.caught_in_hidden_aarch32());
        }
        let cx = crate::aarch32::Context {
            emulated_timer: !self.setup.passthrough_timer,
            ids: &self.ids,
            debug: crate::aarch32::DebugView::of(self.dbg.guest_mdscr()),
        };
        match crate::aarch32::handle(
            esr,
            &mut self.ws.frame,
            &mut self.ptimer,
            &cx,
            crate::physical_count,
        ) {
            crate::aarch32::Handled::Resume => Some(None),
            crate::aarch32::Handled::Inject(what) if self.inject(what).is_ok() => Some(None),
            // The generic path takes what it has a meaning for from AArch32 EL0: WFx,
            // stage-2 aborts (MMIO or abort exits) and the lazy FP/SIMD load.
            crate::aarch32::Handled::Pass
                if matches!(crate::esr::ec(esr), 0x01 | 0x20 | 0x24)
                    || (crate::esr::ec(esr) == 0x07 && self.lazy_fp_pending()) =>
            {
                None
            }
            // Anything else is never left to the host by default: the trap policy.
            // (These classes are all ones `decode_sync` makes `Unhandled` with nothing
            // pending; built here so that it keeps a single, inlined caller.)
            crate::aarch32::Handled::Inject(_)
            | crate::aarch32::Handled::Undef
            | crate::aarch32::Handled::Pass => {
                let exit = VmExit::Unhandled {
                    esr,
                    class: ExceptionClass::from_bits(crate::esr::ec(esr)),
                };
                Some(self.unhandled(exit, Pending::None))
            }
        }
    }

    /// A vCPU with `hide_aarch32_el0` found in AArch32 EL0: on a CPU without AArch32
    /// the guest's exception return to it would have been illegal (PSTATE.IL set, still
    /// at EL1) and the next instruction would have taken an Illegal Execution state
    /// exception at EL1. The crate sees it only now, so the guest gets that exception
    /// here: EC 0x0E at `VBAR_EL1 + 0x200`, ELR_EL1 = the current PC, SPSR_EL1 = EL1h
    /// with IL set and the flags and A/I/F masks of the AArch32 state (its E bit in D).
    #[cold]
    fn caught_in_hidden_aarch32(&mut self) -> Option<VmExit> {
        let f = &mut self.ws.frame;
        f.spsr = (f.spsr & (crate::aarch32::psr::NZCV | 0x3c0)) | (1 << 20) | 0b0101;
        match self.inject(Injection::IllegalState) {
            Ok(()) => None,
            Err(_) => Some(VmExit::Unhandled {
                esr: 0x0e << 26 | 1 << 25,
                class: Some(ExceptionClass::IllegalState),
            }),
        }
    }

    /// [pmu] A trapped MSR/MRS nothing else answered: a PMU register of a VM with a PMU
    /// (`crate::pmu`) is emulated (the instruction completes) or loaded on first use
    /// (it runs again): `true`. `false`: not one (no PMU, not a PMU register, or one the
    /// VM does not have): the trap policy applies. Out of line: the emulated paths pay
    /// nothing.
    #[cold]
    #[inline(never)]
    fn pmu_trap(&mut self, esr: u64, len: u64) -> bool {
        let iss = crate::esr::SysRegIss::decode(esr);
        let reg = crate::SysRegAddr::from_iss(crate::esr::iss(esr));
        if self.pmu.view.is_none() {
            return false;
        }
        let el0 = self.ws.frame.spsr & 0xf == 0;
        let value = operand(&self.ws.frame, iss.rt);
        match self.pmu.handle(reg, iss.read, value, el0, &mut self.dbg) {
            pmu::Outcome::Done(v) => {
                if iss.read && iss.rt < 31 {
                    self.ws.frame.gpr[iss.rt as usize] = v;
                }
                // EC 0x18: AArch64 only.
                debug::complete_aarch64_instruction(&mut self.ws.frame, len);
                true
            }
            // Loaded: the instruction runs again.
            pmu::Outcome::Load => true,
            pmu::Outcome::Undef => false,
        }
    }

    /// [debug] A trapped MSR/MRS of op0 = 2 (`crate::debug`): `Read`/`Write` when
    /// emulated (the OS lock, MDRAR_EL1, anything while the OS lock is held: the caller
    /// completes the instruction), `Debug` when the state was loaded on first use (the
    /// access runs again), `Unhandled` when UNDEFINED.
    #[cold]
    #[inline(never)]
    fn debug_trap(&mut self, esr: u64) -> SysRegAction {
        let iss = crate::esr::SysRegIss::decode(esr);
        let reg = crate::SysRegAddr::from_iss(crate::esr::iss(esr));
        match self
            .dbg
            .handle(reg, iss.read, operand(&self.ws.frame, iss.rt))
        {
            debug::Outcome::Done(v) if iss.read => SysRegAction::Read(v),
            debug::Outcome::Done(_) => SysRegAction::Write,
            debug::Outcome::Load | debug::Outcome::Unload => SysRegAction::Debug,
            debug::Outcome::Undef => SysRegAction::Unhandled,
        }
    }

    /// [pauth] The lazy PAuth group's first use since bind: loads the vCPU's keys and
    /// sets `HCR_EL2.API/APK` (the ERET back to the guest synchronises both), so that
    /// the trapped instruction runs again untrapped. `false` when there is nothing to
    /// load (no FEAT_PAuth on the core, or loaded already): the trap is the guest's
    /// (UNDEFINED, as for the other hidden features).
    #[cold]
    #[inline(never)]
    fn pauth_first_use(&mut self) -> bool {
        if self.pauth_loaded
            || self.state != State::Bound
            || !self.features.has.has(crate::sysreg::Feature::Pauth)
        {
            return false;
        }
        self.sysregs.hcr_el2 |= traps::HCR_API | traps::HCR_APK;
        #[cfg(target_arch = "aarch64")]
        {
            self.sysregs
                .load_sel::<{ sel::LAZY }, _>(self.features.has, &mut crate::hw::Cpu);
            crate::hw::set_hcr_el2(crate::hw::hcr_el2() | traps::HCR_API | traps::HCR_APK);
        }
        self.pauth_loaded = true;
        true
    }

    /// Whether the guest's pointer-authentication keys are loaded in the hardware
    /// (lazy switching: on their first use after bind, or kept from the last bind by
    /// the rebind shortcut).
    pub fn pauth_loaded(&self) -> bool {
        self.pauth_loaded
    }

    /// Applies the trap policy to an exit nobody handles.
    #[inline(always)]
    fn unhandled(&mut self, exit: VmExit, pending: Pending) -> Option<VmExit> {
        if self.setup.unhandled_traps == TrapPolicy::InjectUndef
            && self.inject(Injection::Undef).is_ok()
        {
            return None;
        }
        self.set_pending(pending);
        Some(exit)
    }

    /// An SMCCC call through `conduit`: answered here, forwarded to EL3, turned into a
    /// PSCI request, or handed to the host.
    fn smccc_call(&mut self, conduit: Conduit, imm: u16, args: [u64; 7]) -> Option<VmExit> {
        // ELR_EL2 points after an HVC but at a trapped SMC.
        let advance: u8 = if conduit == Conduit::Smc { 4 } else { 0 };
        let answer = match smccc::dispatch(
            conduit,
            imm,
            &args,
            &self.setup.smc_forward,
            &self.workarounds,
        ) {
            Outcome::Answer(r) => r,
            Outcome::Forward => self.forward_smc(&args),
            Outcome::Workaround(w) => self.forward_workaround(w),
            Outcome::Request(request) => return Some(self.psci_exit(request, conduit, advance)),
            Outcome::Host => {
                self.set_pending(if advance != 0 {
                    Pending::Advance(advance)
                } else {
                    Pending::None
                });
                return Some(match conduit {
                    Conduit::Hvc => VmExit::Hypercall { imm, args },
                    Conduit::Smc => VmExit::SecureMonitorCall { imm, args },
                });
            }
        };
        self.ws.frame.gpr[..4].copy_from_slice(&answer);
        // HVC/SMC: AArch64 only (both UNDEFINED at AArch32 EL0).
        debug::complete_aarch64_instruction(&mut self.ws.frame, advance as u64);
        None
    }

    /// A PSCI request for the host: it waits for `complete_psci`, and CPU_OFF,
    /// SYSTEM_OFF and SYSTEM_RESET power the caller off. Kept out of `smccc_call` so
    /// that the calls answered there do not pay for it.
    #[cold]
    #[inline(never)]
    fn psci_exit(&mut self, request: smccc::PsciRequest, conduit: Conduit, advance: u8) -> VmExit {
        self.set_power(self.power.after_request(&request));
        self.set_pending(Pending::Psci { request, advance });
        VmExit::Psci { request, conduit }
    }

    fn forward_smc(&self, args: &[u64; 7]) -> [u64; 4] {
        #[cfg(target_arch = "aarch64")]
        {
            let vmid = self.stage2.map_or(0, |s| s.vmid as u64);
            crate::hw::firmware_call(crate::workaround::FirmwareConduit::Smc, args, vmid)
        }
        #[cfg(not(target_arch = "aarch64"))]
        {
            let _ = args;
            [smccc::ret::NOT_SUPPORTED as i64 as u64, 0, 0, 0]
        }
    }

    /// Makes a workaround call the firmware implements on the guest's behalf: the
    /// function ID alone (no guest register reaches the firmware), x7 = the client ID;
    /// the guest gets x0–x3 = 0 (nothing the firmware returns reaches it).
    fn forward_workaround(&mut self, w: crate::workaround::Workaround) -> [u64; 4] {
        self.workaround_calls += 1;
        #[cfg(target_arch = "aarch64")]
        {
            let vmid = self.stage2.map_or(0, |s| s.vmid as u64);
            let _ = crate::hw::firmware_call(self.workarounds.conduit, &w.firmware_args(), vmid);
        }
        #[cfg(not(target_arch = "aarch64"))]
        let _ = w;
        [0; 4]
    }

    /// How many of the guest's SMCCC_ARCH_WORKAROUND_* calls were made to the firmware
    /// (only calls of a workaround this core needs and the firmware implements are).
    pub fn workaround_calls_forwarded(&self) -> u64 {
        self.workaround_calls
    }

    /// The SMCCC_ARCH_WORKAROUND_* decision the guest sees (that of the core last bound
    /// to).
    pub fn workarounds(&self) -> &crate::workaround::Workarounds {
        &self.workarounds
    }

    /// Test hook: the decision a bind would have copied from the core.
    #[cfg(test)]
    pub(crate) fn test_set_workarounds(&mut self, w: crate::workaround::Workarounds) {
        self.workarounds = w;
    }

    #[inline(always)]
    fn set_pending(&mut self, pending: Pending) {
        self.ready = matches!(pending, Pending::None) && self.runnable;
        self.pending = pending;
    }

    /// The slow part of `run()`: checks the vCPU is bound and applies what the last
    /// exit left pending.
    #[cold]
    fn prepare_entry(&mut self) -> VCpuResult {
        if self.power == PowerState::Off {
            return Err(VCpuError::PoweredOff);
        }
        if self.state != State::Bound {
            return Err(VCpuError::NotBound);
        }
        self.resolve_pending()?;
        // Entering (not off, checked above): an ON_PENDING vCPU is now on, and a bound
        // vCPU that is on is runnable.
        self.power = PowerState::On;
        self.runnable = true;
        self.ready = true;
        Ok(())
    }

    #[inline(always)]
    pub(crate) fn resolve_pending(&mut self) -> VCpuResult {
        if matches!(
            self.pending,
            Pending::MmioRead(_) | Pending::SysRegRead { .. } | Pending::Psci { .. }
        ) {
            return Err(VCpuError::PendingCompletion);
        }
        // The frame is checked before anything is applied, so that a refused entry
        // leaves the pending advance for the next attempt (applied exactly once).
        if !is_valid_guest_spsr(self.ws.frame.spsr) {
            return Err(VCpuError::InvalidConfig(
                "SPSR does not describe an EL0/EL1 guest state",
            ));
        }
        // An exception return to AArch32 that the CPU (or the VM's view) does not
        // allow would be an illegal return at EL2.
        if !crate::aarch32::entry_allowed(
            self.ws.frame.spsr,
            self.features.aarch32_el0,
            self.setup.hide_aarch32_el0,
        ) {
            return Err(VCpuError::Aarch32NotSupported);
        }
        if let Pending::Advance(n) = self.pending {
            // Either Execution state (AArch32: 32-bit PC, T32 IT state).
            complete_instruction(&mut self.ws.frame, n as u64);
        }
        self.pending = Pending::None;
        Ok(())
    }

    /// Host tests: the features of the core the vCPU was last bound to.
    #[cfg(test)]
    pub(crate) fn set_features_for_test(&mut self, f: CpuFeatures) {
        self.features = f;
    }

    /// Completes an [`VmExit::MmioRead`]: writes `value` to the destination register,
    /// truncated to the access width and sign- or zero-extended as the load
    /// instruction specifies (a W destination clears bits \[63:32\]; XZR discards), and
    /// advances the PC past the load.
    ///
    /// ```no_run
    /// # use arm_vcpu::*;
    /// # fn main() -> Result<(), VCpuError> {
    /// # let mut percpu = Aarch64PerCpu::new(0);
    /// # percpu.hardware_enable()?;
    /// # let mut vcpu = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default())?;
    /// # vcpu.setup(Aarch64VCpuSetupConfig::default())?;
    /// # vcpu.set_entry(0x4008_0000)?;
    /// # vcpu.set_stage2_root(Stage2Config::new(0x8000_0000, 1, 39, 1))?;
    /// # vcpu.bind(&mut percpu)?;
    /// if let VmExit::MmioRead { addr: 0x0900_0018, .. } = vcpu.run()? {
    ///     // A PL011 flag register: "transmit FIFO empty" (TXFE, bit 7).
    ///     vcpu.complete_mmio_read(1 << 7)?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn complete_mmio_read(&mut self, value: u64) -> VCpuResult {
        match self.pending {
            Pending::MmioRead(load) => {
                load.complete(&mut self.ws.frame, value);
                self.pending = Pending::None;
                self.ready = self.runnable;
                Ok(())
            }
            _ => Err(VCpuError::NothingToComplete),
        }
    }

    /// Completes a [`VmExit::SysRegRead`]: writes `value` to Rt (XZR discards) and
    /// advances the PC past the MRS.
    ///
    /// ```no_run
    /// # use arm_vcpu::*;
    /// # fn main() -> Result<(), VCpuError> {
    /// # let mut percpu = Aarch64PerCpu::new(0);
    /// # percpu.hardware_enable()?;
    /// # let mut vcpu = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default())?;
    /// # vcpu.setup(Aarch64VCpuSetupConfig::default())?;
    /// # vcpu.set_entry(0x4008_0000)?;
    /// # vcpu.set_stage2_root(Stage2Config::new(0x8000_0000, 1, 39, 1))?;
    /// # vcpu.bind(&mut percpu)?;
    /// match vcpu.run()? {
    ///     // An ID register, with `IdRegisterPolicy::ExitToHost`: EL0 and EL1 in
    ///     // AArch64 only, no EL2 or EL3, FP and Advanced SIMD.
    ///     VmExit::SysRegRead { reg: SysRegAddr::ID_AA64PFR0_EL1, .. } => {
    ///         vcpu.complete_sysreg_read(0x0000_0000_0000_0011)?
    ///     }
    ///     // Anything else: UNDEFINED, as on a CPU without the register.
    ///     VmExit::SysRegRead { .. } => vcpu.inject_undef()?,
    ///     _ => {}
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn complete_sysreg_read(&mut self, value: u64) -> VCpuResult {
        match self.pending {
            Pending::SysRegRead { rt, len } => {
                if rt < 31 {
                    self.ws.frame.gpr[rt as usize] = value;
                }
                // EC 0x18: AArch64 only.
                debug::complete_aarch64_instruction(&mut self.ws.frame, len as u64);
                self.pending = Pending::None;
                self.ready = self.runnable;
                Ok(())
            }
            _ => Err(VCpuError::NothingToComplete),
        }
    }

    /// Refuses a bind to a core shaped `vtr` that cannot deliver the interrupts already
    /// waiting (injected before the first bind, when the interface was not known yet).
    #[cfg(test)]
    pub(crate) fn check_interface_for_bind(&self, vtr: &VtrInfo) -> VCpuResult {
        let iface = vgic::VirtualInterface::v3(*vtr, vgic::DEFAULT_MAINTENANCE_INTID);
        self.vgic
            .check_bind(&iface, self.setup.passthrough_interrupt)
    }

    /// Makes virtual interrupt `vi` pending for this vCPU through the list registers
    /// of its core's virtual CPU interface (GICv3 `ICH_LR<n>_EL2` or GICv2
    /// `GICH_LR<n>`): at once if bound and a list register is free, otherwise queued
    /// (delivered at the next bind, or when the guest frees a list register — the
    /// underflow / no-pending maintenance interrupt). Re-injecting an INTID that is
    /// already pending does nothing. Fails for an invalid INTID (on GICv2 anything
    /// above 1019: never truncated), an invalid hardware link, or a full queue, and
    /// with [`InjectIrqError::NoVirtualInterface`] when the vCPU has no usable virtual
    /// CPU interface (interrupts passed through, or bound to a core without list
    /// registers); never loses an interrupt silently. Before its first bind a vCPU
    /// keeps what it is given for that bind (which fails with
    /// [`VCpuError::NoVirtualInterface`] on a core that cannot deliver it). A GICv2
    /// SGI gets source CPU 0 here; [`Self::inject_sgi`] names its source.
    ///
    /// ```
    /// use arm_vcpu::{Aarch64VCpu, Aarch64VCpuCreateConfig, VirtualInterrupt};
    ///
    /// let mut vcpu = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default())?;
    /// // SPI 33 (a UART's) for a vCPU that is not bound: kept and delivered at the
    /// // next bind.
    /// vcpu.inject_interrupt(VirtualInterrupt::new(33))?;
    /// vcpu.inject_interrupt(VirtualInterrupt::new(33))?; // already pending: not twice
    /// assert_eq!(vcpu.queued_interrupts(), 1);
    /// // INTID 1023 (spurious) is no interrupt.
    /// assert!(vcpu.inject_interrupt(VirtualInterrupt::new(1023)).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn inject_interrupt(&mut self, vi: VirtualInterrupt) -> Result<(), InjectIrqError> {
        let q = QueuedInterrupt::new(vi);
        if self.inject_plain(&q) {
            return Ok(());
        }
        self.inject_queued(q)
    }

    /// Makes SGI `vi.intid` (0–15) pending as sent by CPU interface
    /// `source_cpu` (0–7): on GICv2 the source is part of the interrupt (the guest
    /// reads it from `GICC_IAR.CPUID` and writes it back to `GICC_EOIR`), and the same
    /// SGI from two sources is two interrupts. A GICv3 list register has no source:
    /// there it is ignored. Fails with `InvalidIntid` for a non-SGI, `InvalidHwIntid`
    /// for a hardware link (SGIs cannot have one), `InvalidSourceCpu` for a source of
    /// 8 or more, and as [`Self::inject_interrupt`] otherwise. A host emulating
    /// `GICD_SGIR` decodes the write with [`vgic::v2::decode_sgir`].
    pub fn inject_sgi(
        &mut self,
        vi: VirtualInterrupt,
        source_cpu: u8,
    ) -> Result<(), InjectIrqError> {
        if vi.intid >= 16 {
            return Err(InjectIrqError::InvalidIntid);
        }
        if vi.hw_intid.is_some() {
            return Err(InjectIrqError::InvalidHwIntid);
        }
        let q = QueuedInterrupt { vi, source_cpu };
        if self.inject_plain(&q) {
            return Ok(());
        }
        self.inject_queued(q)
    }

    /// The common injection, inline in the caller: bound, the interface in use, an
    /// interrupt every interface takes as it is, and every list register empty (one
    /// read of the empty bitmap): `q` goes into list register 0, with none of
    /// [`Self::inject_queued`]'s checks (all of which it passes: a bound vCPU's
    /// interface is known, and `inject_plain` tests the rest). `false`: nothing
    /// done, `inject_queued` decides.
    #[inline(always)]
    fn inject_plain(&mut self, q: &QueuedInterrupt) -> bool {
        #[cfg(target_arch = "aarch64")]
        if self.state == State::Bound && !self.setup.passthrough_interrupt {
            return vgic::with_interface!(self.vgic.iface, r => vgic::list_registers::inject_plain(&mut r, q), none => false);
        }
        #[cfg(not(target_arch = "aarch64"))]
        let _ = q;
        false
    }

    /// Every injection [`Self::inject_plain`] does not do: checked, then into the
    /// list registers of the bound core, or the saved state, or the queue.
    #[inline(never)]
    fn inject_queued(&mut self, q: QueuedInterrupt) -> Result<(), InjectIrqError> {
        self.vgic
            .check_inject(self.setup.passthrough_interrupt, &q)?;
        #[cfg(target_arch = "aarch64")]
        if self.state == State::Bound {
            let queue = &mut self.vgic.queue;
            return vgic::with_interface!(self.vgic.iface, r => vgic::list_registers::inject_bound(&mut r, queue, &q), none => Err(InjectIrqError::NoVirtualInterface));
        }
        self.touch_saved();
        self.vgic.inject_saved(&q)
    }

    /// Interrupts waiting for a list register.
    pub fn queued_interrupts(&self) -> usize {
        self.vgic.queue.len()
    }

    /// The virtual CPU interface state as of the last unbind (raw, in the format of
    /// [`Self::virtual_interface`]).
    pub fn vgic_state(&self) -> &VgicState {
        &self.vgic.state
    }

    /// The virtual CPU interface of the core this vCPU was last bound to
    /// ([`vgic::VirtualInterface::NONE`] before its first bind).
    pub fn virtual_interface(&self) -> &vgic::VirtualInterface {
        &self.vgic.iface
    }

    /// The guest's virtual CPU interface controls (`ICH_VMCR_EL2` or
    /// `GICH_VMCR`, decoded) as of the last unbind.
    pub fn virtual_machine_control(&self) -> vgic::VirtualMachineControl {
        self.vgic.vmcr()
    }

    /// When this vCPU's timers next fire, in physical count: the virtual timer
    /// (`CNTV_CVAL_EL0 + CNTVOFF_EL2`, if enabled and unmasked) and the EL1 physical
    /// timer (emulated, or the saved passthrough one). A host uses it to wake a
    /// descheduled vCPU and inject the timer interrupt (PPI 27 virtual, PPI 30 physical).
    pub fn timer_deadlines(&self) -> TimerDeadlines {
        #[cfg(target_arch = "aarch64")]
        let (ctl, cval) = if self.state == State::Bound {
            crate::hw::cntv()
        } else {
            (self.sysregs.cntv_ctl_el0, self.sysregs.cntv_cval_el0)
        };
        #[cfg(not(target_arch = "aarch64"))]
        let (ctl, cval) = (self.sysregs.cntv_ctl_el0, self.sysregs.cntv_cval_el0);
        let phys = if self.setup.passthrough_timer {
            crate::timer::deadline(self.sysregs.cntp_ctl_el0, self.sysregs.cntp_cval_el0)
        } else {
            self.ptimer.deadline()
        };
        TimerDeadlines {
            virt: crate::timer::deadline(ctl, cval)
                .map(|c| c.wrapping_add(self.sysregs.cntvoff_el2)),
            phys,
        }
    }

    /// Tells the vCPU that the host changed its stage-2 tables: the VM's TLB entries on
    /// the core it binds to next are invalidated (at once, broadcast, if it is bound).
    /// Unneeded for mappings added where nothing was mapped. The invalidation is
    /// preceded by `DSB ISHST` on the core that does it, which makes that core's table
    /// writes visible to the walker first; a host that wrote the tables on another
    /// core completes them there (`DSB ISH`) before it calls this.
    pub fn notify_stage2_changed(&mut self) {
        self.stage2_dirty = true;
        #[cfg(target_arch = "aarch64")]
        if self.state == State::Bound {
            crate::hw::flush_current_vmid_is();
            self.stage2_dirty = false;
        }
    }

    /// Whether the guest's FP/SIMD registers are currently loaded in the hardware.
    pub fn fp_loaded(&self) -> bool {
        self.fp_loaded
    }

    /// Whether the guest's PMU registers are loaded in the hardware (`crate::pmu`: on
    /// first use after bind, or at bind when its counters run).
    pub fn pmu_loaded(&self) -> bool {
        self.pmu.loaded
    }

    /// Whether the vCPU's virtual PMU asserts its overflow interrupt (PPI 23,
    /// [`crate::pmu::PMU_INTID`]): `PMCR_EL0.E` and an overflow flag whose interrupt is
    /// enabled. A host that takes the physical PPI 23 at EL2 while the vCPU is bound
    /// injects virtual PPI 23 linked to it when this is `true` (priority drop only: the
    /// guest's deactivation ends the physical one), and treats it as its own otherwise.
    /// `false` for a VM without a PMU.
    pub fn pmu_irq_line(&self) -> bool {
        self.pmu.line()
    }

    /// Whether the guest's debug registers (breakpoints, watchpoints, `MDSCR_EL1`, ...)
    /// are currently loaded in the hardware (`crate::debug`: on first use after bind,
    /// or at bind when `MDSCR_EL1` enables debug exceptions).
    pub fn debug_loaded(&self) -> bool {
        self.dbg.loaded
    }

    /// Completes a [`VmExit::Psci`] with the PSCI return value `result` (e.g.
    /// [`smccc::ret::SUCCESS`], [`smccc::ret::ALREADY_ON`], or for AFFINITY_INFO 0/1/2).
    /// Fails with `InvalidConfig` if PSCI does not allow that result for the call.
    ///
    /// ```no_run
    /// use arm_vcpu::smccc::ret;
    /// # use arm_vcpu::*;
    /// # fn main() -> Result<(), VCpuError> {
    /// # let mut percpu = Aarch64PerCpu::new(0);
    /// # percpu.hardware_enable()?;
    /// # let mut vcpu = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default())?;
    /// # vcpu.setup(Aarch64VCpuSetupConfig::default())?;
    /// # vcpu.set_entry(0x4008_0000)?;
    /// # vcpu.set_stage2_root(Stage2Config::new(0x8000_0000, 1, 39, 1))?;
    /// # vcpu.bind(&mut percpu)?;
    /// // A VM of one vCPU (MPIDR 0).
    /// if let VmExit::Psci { request, .. } = vcpu.run()? {
    ///     let result = match request {
    ///         PsciRequest::AffinityInfo { target_mpidr: 0 } => vcpu.power_state().affinity_info(),
    ///         PsciRequest::CpuOn { target_mpidr: 0, .. } => ret::ALREADY_ON,
    ///         PsciRequest::CpuSuspend { .. } => ret::SUCCESS,
    ///         _ => ret::INVALID_PARAMETERS,
    ///     };
    ///     vcpu.complete_psci(result)?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn complete_psci(&mut self, result: i32) -> VCpuResult {
        match self.pending {
            Pending::Psci { request, advance } => {
                if !request.allows(result) {
                    return Err(VCpuError::InvalidConfig(
                        "PSCI does not allow this result for this call",
                    ));
                }
                self.ws.frame.gpr[0] = result as i64 as u64;
                // HVC/SMC: AArch64 only.
                debug::complete_aarch64_instruction(&mut self.ws.frame, advance as u64);
                self.set_power(self.power.after_completion(&request));
                self.set_pending(Pending::None);
                Ok(())
            }
            _ => Err(VCpuError::NothingToComplete),
        }
    }

    /// Puts an unbound vCPU in the state PSCI CPU_ON specifies for a core it powers
    /// on: PC = `entry`, EL1h with D/A/I/F masked, x0 = `context_id`, the other GPRs
    /// and FP/SIMD zero, EL1 system registers at their reset values (MMU and caches
    /// off), no pending virtual SError, the virtual CPU interface reset (no list
    /// register, active priority, VMCR or queued interrupt survives) and the emulated
    /// physical timer disabled. The EL2 controls (stage 2, MPIDR, timer offset) are kept.
    /// The power state becomes [`PowerState::OnPending`], and [`PowerState::On`] at the
    /// next entry.
    ///
    /// Returns the physical interrupts whose hardware links the reset dropped: the host
    /// must deactivate them ([`ReleasedHwInterrupts`]).
    pub fn power_on(&mut self, entry: u64, context_id: u64) -> VCpuResult<ReleasedHwInterrupts> {
        self.require_unbound("power_on")?;
        if entry & 3 != 0 {
            return Err(VCpuError::InvalidConfig(
                "entry point is not 4-byte aligned",
            ));
        }
        self.ws.frame = Aarch64ContextFrame::new_el1h(entry);
        self.ws.frame.gpr[0] = context_id;
        self.fp = FpSimdState::default();
        self.dbg.reset();
        self.pmu.reset();
        // The virtual CPU interface and the emulated timer as after a CPU reset.
        let released: ReleasedHwInterrupts = self.vgic.released();
        self.vgic.state = VgicState::default();
        self.vgic.queue = vgic::PendingQueue::default();
        self.ptimer = EmulatedTimer::default();
        let r = self.sysregs.el2_controls();
        self.sysregs = GuestSystemRegisters {
            sctlr_el1: SCTLR_EL1_RESET,
            hcr_el2: r.hcr_el2 & !HCR_VSE,
            ..r
        };
        // CPACR_EL1 is back at 0: the next bind composes its hidden fields again.
        self.view_stale = true;
        self.touch_saved();
        self.pending = Pending::None;
        self.ready = false;
        self.entry_set = true;
        self.set_power(PowerState::OnPending);
        Ok(released)
    }

    /// The vCPU's PSCI power state (as KVM's `KVM_GET_MP_STATE`): what a host answers
    /// a guest's AFFINITY_INFO ([`PowerState::affinity_info`]) or CPU_ON (ALREADY_ON,
    /// ON_PENDING) about this vCPU with. See [`crate::power`] for how it changes.
    #[must_use]
    pub fn power_state(&self) -> PowerState {
        self.power
    }

    /// Sets the power state (as KVM's `KVM_SET_MP_STATE`), e.g. to stop a vCPU the
    /// host takes away from the guest, or when rebuilding a saved vCPU. A vCPU that is
    /// [`PowerState::Off`] is refused by `run()`; [`Aarch64VCpu::power_on`] also
    /// resets its registers, this does not.
    pub fn set_power_state(&mut self, state: PowerState) {
        self.set_power(state);
        // The next `run()` takes the checked path, which looks at the power state.
        self.ready = false;
    }

    /// Changes the power state; only an `On` vCPU can become `ready` without passing
    /// through `prepare_entry` (which turns `OnPending` into `On` and refuses `Off`).
    fn set_power(&mut self, state: PowerState) {
        self.power = state;
        self.runnable = self.state == State::Bound && state == PowerState::On;
        if !self.runnable {
            self.ready = false;
        }
    }

    /// Injects an UNDEFINED instruction exception: the guest takes it at its EL1
    /// vector with ESR_EL1.EC = 0 and ELR_EL1 = the current PC (the trapped
    /// instruction). Cancels whatever the last exit left pending.
    pub fn inject_undef(&mut self) -> VCpuResult {
        self.inject(Injection::Undef)
    }

    /// Injects a synchronous external data abort at virtual address `va` (ESR_EL1.EC
    /// 0x24 from EL0 / 0x25 from EL1, DFSC 0x10, WnR = `write`, FAR_EL1 = `va`).
    pub fn inject_data_abort(&mut self, va: u64, write: bool) -> VCpuResult {
        self.inject(Injection::DataAbort {
            va,
            write,
            dfsc: inject::FSC_SYNC_EXTERNAL,
        })
    }

    /// Injects a synchronous external instruction abort at `va` (EC 0x20/0x21, IFSC
    /// 0x10, FAR_EL1 = `va`).
    pub fn inject_instruction_abort(&mut self, va: u64) -> VCpuResult {
        self.inject(Injection::InstructionAbort {
            va,
            ifsc: inject::FSC_SYNC_EXTERNAL,
        })
    }

    /// Makes a virtual SError pending (`HCR_EL2.VSE`); the guest takes it when
    /// PSTATE.A is clear, with `esr` as its ISS in ESR_EL1 when FEAT_RAS provides
    /// `VSESR_EL2`. The vCPU must be bound.
    pub fn inject_serror(&mut self, esr: u64) -> VCpuResult {
        if self.state != State::Bound {
            return Err(VCpuError::NotBound);
        }
        // From AArch32 EL0 too: the hardware takes it at VBAR_EL1 + 0x780.
        #[cfg(target_arch = "aarch64")]
        crate::hw::raise_virtual_serror(esr & 0x1ff_ffff, self.features.ras);
        #[cfg(not(target_arch = "aarch64"))]
        let _ = esr;
        Ok(())
    }

    fn inject(&mut self, what: Injection) -> VCpuResult {
        #[cfg(target_arch = "aarch64")]
        let (vbar_el1, sctlr_el1) = if self.state == State::Bound {
            crate::hw::vbar_sctlr_el1()
        } else {
            (self.sysregs.vbar_el1, self.sysregs.sctlr_el1)
        };
        #[cfg(not(target_arch = "aarch64"))]
        let (vbar_el1, sctlr_el1) = (self.sysregs.vbar_el1, self.sysregs.sctlr_el1);
        let state = inject::GuestState {
            pstate: self.ws.frame.spsr,
            pc: self.ws.frame.elr,
            vbar_el1,
            sctlr_el1,
        };
        let e = inject::enter(&state, &what).map_err(|e| match e {
            inject::InjectError::NotAGuestState => {
                VCpuError::InvalidConfig("SPSR is not an EL0/EL1 state")
            }
        })?;
        if self.state == State::Bound {
            #[cfg(target_arch = "aarch64")]
            crate::hw::write_exception_regs(e.elr_el1, e.spsr_el1, e.esr_el1, e.far_el1);
        } else {
            self.sysregs.elr_el1 = e.elr_el1;
            self.sysregs.spsr_el1 = e.spsr_el1;
            self.sysregs.esr_el1 = e.esr_el1;
            if let Some(far) = e.far_el1 {
                self.sysregs.far_el1 = far;
            }
            self.touch_saved();
        }
        self.ws.frame.elr = e.pc;
        self.ws.frame.spsr = e.pstate;
        // The faulting instruction did not complete: drop any pending advance/result.
        self.set_pending(Pending::None);
        Ok(())
    }

    /// Sets x0, the result register of a hypercall (SMCCC: first return value).
    ///
    /// ```no_run
    /// # use arm_vcpu::*;
    /// # fn main() -> Result<(), VCpuError> {
    /// # let mut percpu = Aarch64PerCpu::new(0);
    /// # percpu.hardware_enable()?;
    /// # let mut vcpu = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default())?;
    /// # vcpu.setup(Aarch64VCpuSetupConfig::default())?;
    /// # vcpu.set_entry(0x4008_0000)?;
    /// # vcpu.set_stage2_root(Stage2Config::new(0x8000_0000, 1, 39, 1))?;
    /// # vcpu.bind(&mut percpu)?;
    /// if let VmExit::Hypercall { args, .. } = vcpu.run()? {
    ///     // A host-defined call: x1 + x2 back in x0; the PC is already past the HVC.
    ///     vcpu.set_return_value(args[1].wrapping_add(args[2]));
    /// }
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn set_return_value(&mut self, value: u64) {
        self.ws.frame.gpr[0] = value;
    }

    /// Sets general-purpose register `n` (0..=30).
    #[inline]
    pub fn set_gpr(&mut self, n: usize, value: u64) -> VCpuResult {
        match self.ws.frame.gpr.get_mut(n) {
            Some(r) => {
                *r = value;
                Ok(())
            }
            None => Err(VCpuError::InvalidRegister(n)),
        }
    }

    /// General-purpose register `n`; n = 31 reads as zero (XZR), larger is `None`.
    #[inline]
    pub fn gpr(&self, n: usize) -> Option<u64> {
        match n {
            0..=30 => Some(self.ws.frame.gpr[n]),
            31 => Some(0),
            _ => None,
        }
    }

    /// The guest's PC (`ELR_EL2` as saved at the last exit).
    pub fn pc(&self) -> u64 {
        self.ws.frame.elr
    }

    /// The register frame (x0..x30, ELR, SPSR as of the last exit).
    pub fn regs(&self) -> &Aarch64ContextFrame {
        &self.ws.frame
    }

    /// Mutable register frame. The SPSR is checked before the next entry: a value that
    /// does not describe an EL0/EL1 guest state makes `run()` fail.
    pub fn regs_mut(&mut self) -> &mut Aarch64ContextFrame {
        if matches!(self.pending, Pending::None) {
            self.pending = Pending::CheckFrame;
        }
        self.ready = false;
        &mut self.ws.frame
    }

    /// `SP_EL0` (live in the register while bound, in the saved state otherwise).
    pub fn sp_el0(&self) -> u64 {
        #[cfg(target_arch = "aarch64")]
        if self.state == State::Bound {
            return crate::hw::sp_el0();
        }
        self.sysregs.sp_el0
    }

    /// Sets `SP_EL0`.
    pub fn set_sp_el0(&mut self, value: u64) {
        #[cfg(target_arch = "aarch64")]
        if self.state == State::Bound {
            crate::hw::set_sp_el0(value);
            return;
        }
        self.sysregs.sp_el0 = value;
        self.touch_saved();
    }

    /// The bind-time register state as of the last unbind (stale while bound).
    pub fn system_registers(&self) -> &GuestSystemRegisters {
        &self.sysregs
    }

    /// Test hook: the guest's `MDSCR_EL1` as an MSR on the hardware would leave it.
    #[cfg(test)]
    pub(crate) fn test_set_guest_mdscr(&mut self, v: u64) {
        self.dbg.guest.mdscr = v;
    }

    /// Test hook: the (GICv3) virtual interface shape a bind would have recorded.
    #[cfg(test)]
    pub(crate) fn test_set_vtr(&mut self, vtr: VtrInfo) {
        self.test_set_interface(vgic::VirtualInterface::v3(vtr, 25));
    }

    /// Test hook: the virtual interface a bind would have recorded.
    #[cfg(test)]
    pub(crate) fn test_set_interface(&mut self, iface: vgic::VirtualInterface) {
        self.vgic.iface = iface;
        self.vgic.known = true;
    }

    /// Test hook: the vCPU's virtual interface side (state, queue, interface).
    #[cfg(test)]
    pub(crate) fn test_vgic(&mut self) -> &mut VcpuInterface {
        self.touch_saved();
        &mut self.vgic
    }

    /// Test hook: the saved virtual interface state.
    #[cfg(test)]
    pub(crate) fn test_vgic_mut(&mut self) -> &mut VgicState {
        self.touch_saved();
        &mut self.vgic.state
    }

    fn require_unbound(&self, op: &'static str) -> VCpuResult {
        if self.state == State::Bound {
            return Err(VCpuError::InvalidState { op, state: "bound" });
        }
        Ok(())
    }
}
