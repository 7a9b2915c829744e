//! [`Aarch64VCpu`]: one virtual CPU and its lifecycle.

use crate::context::{
    Aarch64ContextFrame, FpSimdState, GuestSystemRegisters, WorldSwitch, SCTLR_EL1_RESET,
    SPSR_EL1H_DAIF_MASKED,
};
#[cfg(target_arch = "aarch64")]
use crate::esr;
use crate::exit::{extend_load, Pending, VmExit};
use crate::percpu::{hcr, Aarch64PerCpu, CpuFeatures, MPIDR_AFFINITY_MASK};
use crate::{Aarch64VCpuCreateConfig, Aarch64VCpuSetupConfig, Stage2Config, VCpuError, VCpuResult};

/// `CPTR_EL2` for guests (E2H = 0 layout): RES1 bits [9:0] except TZ, RES1 [13:12];
/// TZ (bit 8) = 1 traps SVE, TSM (bit 12) = 1 traps SME (or is RES1), TFP (bit 10) = 0
/// leaves FP/SIMD to the guest (its registers are switched at bind/unbind).
pub const GUEST_CPTR_EL2: u64 = 0x33ff;

/// `MDCR_EL2` trap bits for guests: TPMCR (5), TPM (6), TDA (9), TDOSA (10), TDRA (11).
/// Debug and PMU state is not switched per vCPU, so the guest may not touch it.
pub const GUEST_MDCR_TRAPS: u64 = (1 << 5) | (1 << 6) | (1 << 9) | (1 << 10) | (1 << 11);

/// `CNTHCTL_EL2` (E2H = 0): EL1PCTEN (bit 0) lets EL1/EL0 read the physical counter;
/// EL1PCEN (bit 1) lets them use the EL1 physical timer.
const CNTHCTL_EL1PCTEN: u64 = 1 << 0;
const CNTHCTL_EL1PCEN: u64 = 1 << 1;

/// The guest's `HCR_EL2` for a setup configuration (pure; tested on the host).
///
/// Always: VM (stage 2 on), SWIO, AMO, FB + BSU = inner shareable (broadcast the
/// guest's TLB/cache maintenance, so a vCPU may move between cores), TSC (guest SMCs
/// trap), TIDCP, TACR, TSW (set/way maintenance traps), TLOR (LORegions hidden), RW
/// (EL1 is AArch64). IMO/FMO unless interrupts are passed through; TID3/TWI/TWE on
/// request; API/APK (pointer authentication not trapped) only when the keys are
/// switched, i.e. when the CPU has FEAT_PAuth.
pub const fn guest_hcr_el2(setup: &Aarch64VCpuSetupConfig, pauth: bool) -> u64 {
    let mut v = hcr::VM
        | hcr::SWIO
        | hcr::AMO
        | hcr::FB
        | hcr::BSU_IS
        | hcr::TSC
        | hcr::TIDCP
        | hcr::TACR
        | hcr::TSW
        | hcr::TLOR
        | hcr::RW;
    if !setup.passthrough_interrupt {
        v |= hcr::IMO | hcr::FMO;
    }
    if setup.trap_id_registers {
        v |= hcr::TID3;
    }
    if setup.trap_wfi {
        v |= hcr::TWI;
    }
    if setup.trap_wfe {
        v |= hcr::TWE;
    }
    if pauth {
        v |= hcr::API | hcr::APK;
    }
    v
}

/// Whether a `SPSR_EL2` value is one a guest may be resumed with: AArch64 EL0t, EL1t
/// or EL1h, or AArch32 User mode (an AArch32 EL0 under an AArch64 EL1).
pub const fn is_valid_guest_spsr(spsr: u64) -> bool {
    let m = spsr & 0x1f;
    matches!(m, 0b00000 | 0b00100 | 0b00101 | 0b10000)
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
#[derive(Debug)]
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
}

impl Aarch64VCpu {
    /// Creates a vCPU. Fails if `mpidr_el1` has bits outside the affinity fields.
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
            cptr_el2: GUEST_CPTR_EL2,
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
        })
    }

    /// Chooses what the guest owns and what traps. Allowed until the first bind.
    pub fn setup(&mut self, config: Aarch64VCpuSetupConfig) -> VCpuResult {
        self.require_unbound("setup")?;
        self.setup = config;
        self.sysregs.cnthctl_el2 = CNTHCTL_EL1PCTEN
            | if config.passthrough_timer {
                CNTHCTL_EL1PCEN
            } else {
                0
            };
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
        Ok(())
    }

    /// Loads the vCPU into the calling physical core: EL1 system registers, FP/SIMD,
    /// timers, pointer-authentication keys and the EL2 controls, then invalidates this
    /// core's TLB entries for the VM's VMID (the tables may have changed since the VMID
    /// last ran here). `percpu` must be the calling core's enabled state.
    pub fn bind(&mut self, percpu: &mut Aarch64PerCpu) -> VCpuResult {
        if self.state != State::Ready {
            return Err(VCpuError::InvalidState {
                op: "bind",
                state: self.state.name(),
            });
        }
        let stage2 = match (self.entry_set, self.stage2) {
            (true, Some(s)) => s,
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
        let feat = *percpu.features();
        let (vttbr, vtcr) = stage2.registers(feat.pa_range, feat.vmid16)?;
        self.features = feat;
        self.sysregs.vttbr_el2 = vttbr;
        self.sysregs.vtcr_el2 = vtcr;
        self.sysregs.hcr_el2 = guest_hcr_el2(&self.setup, feat.pauth);
        self.sysregs.vpidr_el2 = self.create.midr_el1.unwrap_or(feat.midr);
        self.sysregs.mdcr_el2 = (percpu.host_mdcr() & 0x1f) | GUEST_MDCR_TRAPS;
        #[cfg(target_arch = "aarch64")]
        {
            crate::hw::load_guest_state(&self.sysregs, &self.fp, &feat);
            crate::hw::flush_current_vmid_local();
        }
        percpu.bound = true;
        self.state = State::Bound;
        Ok(())
    }

    /// Saves the vCPU's state out of the calling core and restores the host's
    /// `HCR_EL2`. `percpu` must be the state passed to [`bind`](Self::bind).
    pub fn unbind(&mut self, percpu: &mut Aarch64PerCpu) -> VCpuResult {
        if self.state != State::Bound {
            return Err(VCpuError::InvalidState {
                op: "unbind",
                state: self.state.name(),
            });
        }
        percpu.check_current_cpu()?;
        if !percpu.bound || percpu.features().mpidr != self.features.mpidr {
            return Err(VCpuError::WrongCpu);
        }
        #[cfg(target_arch = "aarch64")]
        {
            crate::hw::save_guest_state(&mut self.sysregs, &mut self.fp, &self.features);
            crate::hw::set_hcr_el2(crate::percpu::HOST_HCR_EL2);
        }
        percpu.bound = false;
        self.ready = false;
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
    #[inline]
    pub fn run(&mut self) -> VCpuResult<VmExit> {
        // One check on the hot path: an unbound vCPU always has `ready == false`.
        if !self.ready {
            self.prepare_entry()?;
        }
        #[cfg(target_arch = "aarch64")]
        {
            // SAFETY: the vCPU is bound to this core (state checked above; the host
            // contract forbids running it on another core), so its EL1/EL2 state is
            // loaded; `frame.spsr` is a guest state (checked whenever the host changed
            // the frame, see `regs_mut`).
            let code = unsafe { crate::hw::enter_guest(&mut self.ws) };
            // Fast path: a synchronous exit for HVC from AArch64.
            if code >> 26 == esr::ExceptionClass::Hvc64 as u64 {
                let g = &self.ws.frame.gpr;
                return Ok(VmExit::Hypercall {
                    imm: esr::imm16(code),
                    args: [g[0], g[1], g[2], g[3], g[4], g[5], g[6]],
                });
            }
            Ok(self.decode_exit(code))
        }
        #[cfg(not(target_arch = "aarch64"))]
        {
            Err(VCpuError::NoHardwareSupport)
        }
    }

    #[cfg(target_arch = "aarch64")]
    #[inline(never)]
    fn decode_exit(&mut self, code: u64) -> VmExit {
        if code >> 63 != 0 {
            return match code & 3 {
                1 => VmExit::ExternalInterrupt { fiq: false },
                2 => VmExit::ExternalInterrupt { fiq: true },
                _ => VmExit::SError {
                    esr: self.ws.serror_esr,
                },
            };
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

    /// Decodes a synchronous exit captured in `syn` and records what it leaves
    /// pending. Pure (no hardware access), so the host tests drive it directly.
    pub(crate) fn handle_sync_exit(&mut self, syn: &crate::esr::Syndrome) -> VmExit {
        let (exit, pending) = crate::exit::decode_sync(syn, &self.ws.frame);
        self.ready = matches!(pending, Pending::None);
        self.pending = pending;
        exit
    }

    /// The slow part of `run()`: checks the vCPU is bound and applies what the last
    /// exit left pending.
    #[cold]
    fn prepare_entry(&mut self) -> VCpuResult {
        if self.state != State::Bound {
            return Err(VCpuError::NotBound);
        }
        self.resolve_pending()?;
        self.ready = true;
        Ok(())
    }

    #[cold]
    pub(crate) fn resolve_pending(&mut self) -> VCpuResult {
        match self.pending {
            Pending::None => {}
            Pending::Advance(n) => self.ws.frame.elr = self.ws.frame.elr.wrapping_add(n as u64),
            Pending::MmioRead { .. } | Pending::SysRegRead { .. } => {
                return Err(VCpuError::PendingCompletion)
            }
            Pending::CheckFrame => {}
        }
        if !is_valid_guest_spsr(self.ws.frame.spsr) {
            return Err(VCpuError::InvalidConfig(
                "SPSR does not describe an EL0/EL1 guest state",
            ));
        }
        self.pending = Pending::None;
        Ok(())
    }

    /// Completes an [`VmExit::MmioRead`]: writes `value` to the destination register,
    /// truncated to the access width and sign- or zero-extended as the load
    /// instruction specifies (a W destination clears bits [63:32]; XZR discards), and
    /// advances the PC past the load.
    pub fn complete_mmio_read(&mut self, value: u64) -> VCpuResult {
        match self.pending {
            Pending::MmioRead {
                reg,
                width,
                reg_64bit,
                sign_extend,
                len,
            } => {
                if reg < 31 {
                    self.ws.frame.gpr[reg as usize] =
                        extend_load(value, width, sign_extend, reg_64bit);
                }
                self.ws.frame.elr = self.ws.frame.elr.wrapping_add(len as u64);
                self.pending = Pending::None;
                self.ready = self.state == State::Bound;
                Ok(())
            }
            _ => Err(VCpuError::NothingToComplete),
        }
    }

    /// Completes a [`VmExit::SysRegRead`]: writes `value` to Rt (XZR discards) and
    /// advances the PC past the MRS.
    pub fn complete_sysreg_read(&mut self, value: u64) -> VCpuResult {
        match self.pending {
            Pending::SysRegRead { rt, len } => {
                if rt < 31 {
                    self.ws.frame.gpr[rt as usize] = value;
                }
                self.ws.frame.elr = self.ws.frame.elr.wrapping_add(len as u64);
                self.pending = Pending::None;
                self.ready = self.state == State::Bound;
                Ok(())
            }
            _ => Err(VCpuError::NothingToComplete),
        }
    }

    /// Sets x0, the result register of a hypercall (SMCCC: first return value).
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
    }

    /// The bind-time register state as of the last unbind (stale while bound).
    pub fn system_registers(&self) -> &GuestSystemRegisters {
        &self.sysregs
    }

    fn require_unbound(&self, op: &'static str) -> VCpuResult {
        if self.state == State::Bound {
            return Err(VCpuError::InvalidState { op, state: "bound" });
        }
        Ok(())
    }
}
