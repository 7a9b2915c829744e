//! Registers by ID and snapshots on [`Aarch64VCpu`] (the pure rules are in
//! [`crate::reg`] and [`crate::snapshot`]; this is where the vCPU's own state, or the
//! core's registers while it is bound, come in).

use super::{Aarch64VCpu, State, HCR_VSE};
use crate::context::{Aarch64ContextFrame, FpSimdState, GuestSystemRegisters};
#[cfg(target_arch = "aarch64")]
use crate::emulate;
use crate::exit::Pending;
use crate::idregs::IdRegisters;
use crate::power::PowerState;
use crate::reg::{self, Count, Parts, PartsMut, Reg, RegError, RegList, Shape, VgicReg};
use crate::snapshot::{Snapshot, SnapshotError};
use crate::timer::EmulatedTimer;
#[cfg(target_arch = "aarch64")]
use crate::vgic::list_registers::{ListRegisters, VgicRegisters};
use crate::vgic::{PendingQueue, VgicState, VtrInfo};

impl Aarch64VCpu {
    /// What decides which registers this vCPU has: the core it was last bound to, or
    /// the snapshot it was restored from until it is bound again.
    pub(crate) fn reg_shape(&self) -> Shape {
        let vtr_in_use = |vtr: &VtrInfo| {
            if self.setup.passthrough_interrupt {
                VtrInfo::default()
            } else {
                *vtr
            }
        };
        match &self.restored {
            Some(r) => Shape {
                has: r.has,
                vtr: vtr_in_use(&r.vtr),
                passthrough_timer: self.setup.passthrough_timer,
                debug: self.dbg.view,
                caps: self.dbg.caps,
            },
            None => Shape {
                has: self.features.has,
                vtr: vtr_in_use(&self.vgic.iface.vtr),
                passthrough_timer: self.setup.passthrough_timer,
                debug: self.dbg.view,
                caps: self.dbg.caps,
            },
        }
    }

    /// The VM's ID view, when known (after a bind, or from the restored snapshot).
    fn known_ids(&self) -> Option<&IdRegisters> {
        match &self.restored {
            Some(r) => r.ids.as_ref(),
            None if !self.view_stale => Some(&self.ids),
            None => None,
        }
    }

    fn parts(&self) -> Parts<'_> {
        Parts {
            frame: &self.ws.frame,
            fp: &self.fp,
            sys: &self.sysregs,
            dbg: &self.dbg,
            power: &self.power,
            vgic: &self.vgic.state,
            queue: &self.vgic.queue,
            ptimer: &self.ptimer,
            pending: &self.pending,
            ids: self.known_ids(),
            count: Count::Live(crate::physical_count()),
            shape: self.reg_shape(),
            now: crate::physical_count(),
        }
    }

    /// Every register this vCPU has, for [`get_reg`](Self::get_reg) and
    /// [`set_reg`](Self::set_reg) (KVM's `KVM_GET_REG_LIST`): the general-purpose and
    /// FP/SIMD registers, the switch list's registers that exist on the core the vCPU
    /// was last bound to (before any bind: those every host has), the self-hosted
    /// debug registers the VM's view has (breakpoints, watchpoints, `MDSCR_EL1`, the OS
    /// lock, ...; see [`crate::reg`]), the VM's ID registers once it has been bound,
    /// the virtual count, the virtual GIC's registers (list registers and active
    /// priorities after a bind that uses the interface; the queue always) and the vCPU
    /// state of [`reg::VcpuReg`].
    ///
    /// ```
    /// use arm_vcpu::reg::{Access, Reg};
    /// use arm_vcpu::{Aarch64VCpu, Aarch64VCpuCreateConfig};
    ///
    /// let vcpu = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default())?;
    /// let n = vcpu.reg_list().count();
    /// assert!(vcpu.reg_list().any(|r| r == Reg::V(31)));
    /// assert!(vcpu.reg_list().filter(|&r| vcpu.reg_access(r) == Access::ReadOnly).count() < n);
    /// # Ok::<(), arm_vcpu::VCpuError>(())
    /// ```
    pub fn reg_list(&self) -> RegList {
        RegList::new(self.reg_shape(), self.known_ids().is_some())
    }

    /// Whether `r` can be written (for a register of [`reg_list`](Self::reg_list)).
    pub fn reg_access(&self, r: Reg) -> reg::Access {
        reg::access(r.canonical(), &self.reg_shape())
    }

    /// Reads register `r` (KVM's `KVM_GET_ONE_REG`). Unbound: the vCPU's saved state.
    /// Bound: the live value (the core's registers for what is switched, the loaded
    /// FP/SIMD registers, the list registers); call it on the core the vCPU is bound
    /// to ([`RegError::WrongCpu`] otherwise). 64-bit registers give values below
    /// 2^64.
    pub fn get_reg(&self, r: Reg) -> Result<u128, RegError> {
        self.check_reg_cpu()?;
        let stored = reg::get(&self.parts(), r)?;
        #[cfg(target_arch = "aarch64")]
        if self.state == State::Bound {
            return Ok(self.live_get(r.canonical(), stored));
        }
        Ok(stored)
    }

    /// The pending and active states of virtual interrupts `first..first + 32` in this
    /// vCPU's virtual CPU interface — its list registers and the queue waiting for
    /// them — as an emulated distributor reports them in one `GICD_ISPENDR`/
    /// `GICD_ISACTIVER` register (or the redistributor's `GICR_ISPENDR0`/
    /// `GICR_ISACTIVER0`): unbound, from the saved state; bound, from the live list
    /// registers (`ICH_LR<n>_EL2` or the GICH frame, each read once; call it on the core
    /// the vCPU is bound to, [`RegError::WrongCpu`] otherwise). Neither for an
    /// interrupt never injected, or with interrupts passed through.
    pub fn interrupt_states(&self, first: u32) -> Result<crate::vgic::IrqStates, RegError> {
        self.check_reg_cpu()?;
        let shape = self.reg_shape();
        let n = shape.vtr.list_regs.min(crate::vgic::MAX_LRS);
        #[cfg_attr(not(target_arch = "aarch64"), allow(unused_mut))]
        let mut lrs = self.vgic.state.lr;
        // (The mutation build `irq-state-saved` reads the saved copy while bound: a
        // bound vCPU's distributor view then misses what its list registers hold.)
        #[cfg(target_arch = "aarch64")]
        if self.state == State::Bound && n != 0 && !cfg!(arm_vcpu_mutate = "irq-state-saved") {
            for (k, l) in lrs.iter_mut().enumerate().take(n) {
                *l = crate::vgic::with_interface!(self.vgic.iface, r => r.lr(k), none => *l);
            }
        }
        let lrs = lrs.get(..n).unwrap_or(&[]);
        Ok(crate::vgic::irq_states(
            self.vgic.iface.format(),
            lrs,
            &self.vgic.queue,
            first,
        ))
    }

    /// The pending and active state of virtual interrupt `intid` (see
    /// [`Self::interrupt_states`]).
    pub fn interrupt_state(&self, intid: u32) -> Result<crate::vgic::IrqState, RegError> {
        Ok(self.interrupt_states(intid)?.get(0))
    }

    /// Writes register `r` (KVM's `KVM_SET_ONE_REG`). Unbound: the saved state (loaded
    /// at the next bind). Bound: the live register too, so the write takes effect
    /// before the next entry. Fails with [`RegError::Unknown`] for a register the vCPU
    /// does not have, [`RegError::ReadOnly`] for an EL2 control or ID register, and
    /// [`RegError::InvalidValue`] for a value the register cannot hold (more than 64
    /// bits, an SPSR that is not an EL0/EL1 state, a list register or queued interrupt
    /// with a reserved INTID, a completion the frame does not match). A write to a
    /// `CPACR_EL1` or `CNTP_CTL_EL0` keeps the crate's view of them (the hidden
    /// features' fields, a computed ISTATUS), as the guest's own writes do.
    pub fn set_reg(&mut self, r: Reg, value: u128) -> Result<(), RegError> {
        self.check_reg_cpu()?;
        let r = r.canonical();
        #[cfg(target_arch = "aarch64")]
        let fp_live = self.state == State::Bound
            && self.fp_loaded
            && matches!(r, Reg::V(_) | Reg::Fpcr | Reg::Fpsr);
        #[cfg(target_arch = "aarch64")]
        if fp_live {
            // The saved copy is stale while the guest's FP/SIMD state is loaded.
            crate::hw::fpsimd_save(&mut self.fp);
        }
        #[cfg(target_arch = "aarch64")]
        let debug_live = self.state == State::Bound && self.is_debug_reg(r);
        #[cfg(target_arch = "aarch64")]
        if debug_live && self.dbg.loaded {
            // Saved, and trapped again: the guest's next access loads the new value.
            self.dbg.unload(false);
        }
        let now = crate::physical_count();
        let shape = self.reg_shape();
        let ids_known = self.known_ids().is_some();
        let mut p = PartsMut {
            frame: &mut self.ws.frame,
            fp: &mut self.fp,
            sys: &mut self.sysregs,
            dbg: &mut self.dbg,
            power: &mut self.power,
            vgic: &mut self.vgic.state,
            queue: &mut self.vgic.queue,
            ptimer: &mut self.ptimer,
            pending: &mut self.pending,
            ids_known,
            count: Count::Live(now),
            shape,
            now,
        };
        reg::set(&mut p, r, value)?;
        // The saved state (or the live one, saved at unbind) changed: no core holds
        // it, and the per-VM controls (CNTVOFF_EL2) may differ from a core's copy.
        self.touch_saved();
        self.touch_controls();
        if r == Reg::Vcpu(reg::VcpuReg::PowerState) {
            self.set_power_state(self.power);
        }
        // A completion written, or the frame changed: `run()` looks at both again.
        self.set_pending(self.pending);
        #[cfg(target_arch = "aarch64")]
        if self.state == State::Bound {
            if fp_live {
                crate::hw::fpsimd_restore(&self.fp);
            }
            if debug_live {
                // Load now if MDSCR_EL1 enables debug exceptions (as at bind).
                self.dbg.apply_lock_change();
            }
            self.live_set(r);
        }
        Ok(())
    }

    /// Whether `r` is debug state ([`crate::debug`]).
    #[cfg(target_arch = "aarch64")]
    fn is_debug_reg(&self, r: Reg) -> bool {
        matches!(r, Reg::Sys(a)
            if matches!(reg::sys_kind(a, &self.reg_shape(), false), Some(reg::SysKind::Debug(_))))
    }

    /// A bound vCPU is accessed from its own core only.
    fn check_reg_cpu(&self) -> Result<(), RegError> {
        #[cfg(target_arch = "aarch64")]
        if self.state == State::Bound
            && crate::hw::current_mpidr() & crate::percpu::MPIDR_AFFINITY_MASK
                != self.features.mpidr
        {
            return Err(RegError::WrongCpu);
        }
        Ok(())
    }

    /// The live value of `r` while bound (`stored`: the saved copy, current for what is
    /// not live in the hardware).
    #[cfg(target_arch = "aarch64")]
    fn live_get(&self, r: Reg, stored: u128) -> u128 {
        use crate::hw;
        use crate::reg::{SysKind, VcpuReg, VgicReg};
        let shape = self.reg_shape();
        let vgic_on = shape.vtr.list_regs != 0;
        let fp = || {
            let mut t = self.fp;
            hw::fpsimd_save(&mut t);
            t
        };
        let v = match r {
            Reg::SpEl0 => hw::sp_el0(),
            Reg::SpEl1 => {
                GuestSystemRegisters::read_live(reg::SP_EL1, &mut hw::Cpu).unwrap_or(stored as u64)
            }
            Reg::V(n) if self.fp_loaded => return fp().v[n as usize & 31],
            Reg::Fpcr if self.fp_loaded => fp().fpcr,
            Reg::Fpsr if self.fp_loaded => fp().fpsr,
            Reg::Sys(a) => match reg::sys_kind(a, &shape, true) {
                // [pauth] Keys not loaded yet: the saved copy is the guest's.
                Some(SysKind::Switched) if self.lazy_unloaded(a) => stored as u64,
                Some(SysKind::Switched) => {
                    GuestSystemRegisters::read_live(a, &mut hw::Cpu).unwrap_or(stored as u64)
                }
                Some(SysKind::PhysTimer) if shape.passthrough_timer => {
                    GuestSystemRegisters::read_live(a, &mut hw::Cpu).unwrap_or(stored as u64)
                }
                Some(SysKind::Cpacr) => {
                    GuestSystemRegisters::read_live(a, &mut hw::Cpu).unwrap_or(stored as u64)
                        & emulate::CPACR_GUEST_FIELDS
                }
                Some(SysKind::Debug(d)) if self.dbg.loaded => {
                    // The switched debug registers are the hardware's while loaded.
                    let mut live = self.dbg;
                    hw::debug::save(&mut live.guest, live.view.counts, &live.caps, true);
                    live.guest.mdscr = hw::debug::mdscr();
                    reg::debug_get(&live, d)
                }
                _ => stored as u64,
            },
            // The list registers, active priorities and VMCR are the interface's
            // (`ICH_*_EL2` or the GICH frame) while bound.
            Reg::Vgic(
                g @ (VgicReg::Lr(_) | VgicReg::Ap0r(_) | VgicReg::Ap1r(_) | VgicReg::Vmcr),
            ) if vgic_on => {
                crate::vgic::with_interface!(self.vgic.iface, r => match g {
                    VgicReg::Lr(n) => r.lr(n as usize),
                    VgicReg::Vmcr => r.vmcr(),
                    VgicReg::Ap0r(n) | VgicReg::Ap1r(n) => {
                        let mut t = VgicState::default();
                        r.save_aprs(&mut t);
                        let regs = if matches!(g, VgicReg::Ap0r(_)) { t.ap0r } else { t.ap1r };
                        regs.get(n as usize).copied().unwrap_or(0)
                    }
                    VgicReg::Queued(_) => stored as u64,
                }, none => stored as u64)
            }
            Reg::Vcpu(VcpuReg::SErrorPending) => (hw::hcr_el2() & HCR_VSE != 0) as u64,
            _ => stored as u64,
        };
        v as u128
    }

    /// Writes the stored value of `r` (just set) to the hardware, while bound.
    #[cfg(target_arch = "aarch64")]
    fn live_set(&mut self, r: Reg) {
        use crate::reg::{SysKind, VcpuReg, VgicReg};
        use crate::{hw, vgic};
        let shape = self.reg_shape();
        let vgic_on = shape.vtr.list_regs != 0;
        let s = &self.sysregs;
        match r {
            Reg::SpEl0 => hw::set_sp_el0(s.sp_el0),
            Reg::SpEl1 => {
                GuestSystemRegisters::write_live(reg::SP_EL1, s.sp_el1, &mut hw::Cpu);
            }
            Reg::Sys(a) => match reg::sys_kind(a, &shape, true) {
                // [pauth] Not loaded: the saved copy is what the first use loads.
                Some(SysKind::Switched) if self.lazy_unloaded(a) => {}
                Some(SysKind::Switched | SysKind::Cpacr | SysKind::HostOffset) => {
                    if let Some(v) = s.by_addr(a) {
                        GuestSystemRegisters::write_live(a, v, &mut hw::Cpu);
                    }
                }
                Some(SysKind::PhysTimer) if shape.passthrough_timer => {
                    if let Some(v) = s.by_addr(a) {
                        GuestSystemRegisters::write_live(a, v, &mut hw::Cpu);
                    }
                }
                _ => {}
            },
            Reg::VirtualCount => {
                GuestSystemRegisters::write_live(reg::CNTVOFF_EL2, s.cntvoff_el2, &mut hw::Cpu);
            }
            Reg::Vgic(g) if vgic_on => {
                let st = &self.vgic.state;
                let queue = &mut self.vgic.queue;
                vgic::with_interface!(self.vgic.iface, r => match g {
                    VgicReg::Lr(n) => {
                        r.set_lr(n as usize, st.lr.get(n as usize).copied().unwrap_or(0));
                    }
                    VgicReg::Vmcr => r.set_vmcr(st.vmcr),
                    VgicReg::Ap0r(n) | VgicReg::Ap1r(n) => {
                        // The others as the hardware has them, this one as written.
                        let mut t = VgicState::default();
                        r.save_aprs(&mut t);
                        let n = n as usize;
                        if let VgicReg::Ap0r(_) = g {
                            if let (Some(d), Some(s)) = (t.ap0r.get_mut(n), st.ap0r.get(n)) {
                                *d = *s;
                            }
                        } else if let (Some(d), Some(s)) = (t.ap1r.get_mut(n), st.ap1r.get(n)) {
                            *d = *s;
                        }
                        r.load_aprs(&t);
                    }
                    VgicReg::Queued(_) => {
                        // Into free list registers now; the rest on the maintenance
                        // interrupts the queue's length asks for.
                        vgic::list_registers::refill(&mut r, queue);
                        let (valid, pending) = vgic::list_registers::occupancy(&mut r);
                        r.set_hcr(vgic::list_registers::maintenance_hcr(queue.len(), valid, pending));
                    }
                }, none => ())
            }
            Reg::Vcpu(VcpuReg::SErrorPending) => {
                hw::set_hcr_el2((hw::hcr_el2() & !HCR_VSE) | (s.hcr_el2 & HCR_VSE));
            }
            _ => {}
        }
    }

    /// Whether `a` is a register of a lazy group whose state is not loaded (its saved
    /// copy is current while bound).
    #[cfg(target_arch = "aarch64")]
    fn lazy_unloaded(&self, a: crate::SysRegAddr) -> bool {
        !self.pauth_loaded
            && crate::context::SWITCHED
                .iter()
                .any(|s| s.addr == a && s.kind == crate::context::Kind::Lazy)
    }

    /// Takes a snapshot of this unbound vCPU: every register of
    /// [`reg_list`](Self::reg_list) a snapshot holds ([`Snapshot::registers`]), the
    /// guest's virtual count now, and what the snapshot needs of a core (the features
    /// of the one the vCPU was last bound to, its virtual CPU interface, the VM's ID
    /// registers). See [`crate::snapshot`].
    pub fn snapshot(&self) -> Result<Snapshot, SnapshotError> {
        if self.state == State::Bound {
            return Err(SnapshotError::Bound);
        }
        if self.setup.pmu != crate::pmu::PmuConfig::Hidden {
            return Err(SnapshotError::Unsupported("a virtual PMU's state"));
        }
        let shape = self.reg_shape();
        let mut snap = Snapshot::empty(shape, self.known_ids().copied());
        for r in RegList::new(shape, false).filter(|r| reg::in_snapshot(*r, &shape)) {
            snap.set_reg(r, self.get_reg(r)?)?;
        }
        Ok(snap)
    }

    /// Rebuilds this unbound vCPU from `snap`: its guest state is reset (as
    /// [`power_on`](Self::power_on) does) and every register of the snapshot written
    /// back; `CNTVOFF_EL2` is set so that the guest's virtual count goes on from the
    /// snapshot's. What the host configured (setup, stage-2 root, MPIDR) stays. The
    /// vCPU must have been created and set up for the same VM; it can then be bound on
    /// any core where the snapshot means the same: this is checked here against the
    /// core the vCPU was last bound to (if any) and by the next [`bind`](Self::bind)
    /// against its core ([`SnapshotError::Incompatible`], as
    /// [`crate::VCpuError::Snapshot`]). On an error the guest state is left reset.
    pub fn restore(&mut self, snap: &Snapshot) -> Result<(), SnapshotError> {
        if self.state == State::Bound {
            return Err(SnapshotError::Bound);
        }
        if self.setup.pmu != crate::pmu::PmuConfig::Hidden {
            return Err(SnapshotError::Unsupported("a virtual PMU's state"));
        }
        let req = snap.requirements();
        if self.setup.passthrough_interrupt && (req.lrs_used != 0 || req.queued) {
            // The guest owns the physical interface: nothing to deliver them through.
            return Err(SnapshotError::Incompatible(
                crate::snapshot::Incompatibility::VirtualInterface,
            ));
        }
        if !self.view_stale && self.restored.is_none() {
            let vtr = self.reg_shape().vtr;
            req.check(self.features.has, &self.ids, &vtr, &self.dbg.caps)
                .map_err(SnapshotError::Incompatible)?;
        }
        let keep = self.sysregs.el2_controls();
        self.sysregs = GuestSystemRegisters {
            hcr_el2: keep.hcr_el2 & !HCR_VSE,
            ..keep
        };
        self.ws.frame = Aarch64ContextFrame::default();
        self.fp = FpSimdState::default();
        self.dbg.reset();
        // The snapshot's debug shape until the next bind sets the core's (and checks
        // that it is the same).
        self.dbg.view = snap.shape.debug;
        self.dbg.caps = snap.shape.caps;
        self.power = PowerState::On;
        self.vgic.state = VgicState::default();
        self.vgic.queue = PendingQueue::default();
        self.ptimer = EmulatedTimer::default();
        self.pending = Pending::None;
        self.restored = Some(req);
        self.touch_saved();
        // The next bind composes the controls (and CPACR_EL1's hidden fields) again
        // and checks the snapshot against its core.
        self.view_stale = true;
        self.entry_set = true;
        self.ready = false;
        let has_interface = self.reg_shape().vtr.list_regs != 0;
        for r in snap.registers() {
            if !has_interface
                && matches!(
                    r,
                    Reg::Vgic(VgicReg::Lr(_) | VgicReg::Ap0r(_) | VgicReg::Ap1r(_) | VgicReg::Vmcr)
                )
            {
                // The guest owns the physical CPU interface (`passthrough_interrupt`).
                continue;
            }
            self.set_reg(r, snap.get_reg(r)?)?;
        }
        self.set_power_state(self.power);
        Ok(())
    }
}
