//! Interrupts for vCPUs: injected at once into the running vCPU or one this core
//! holds (a sleeper wakes), otherwise posted to the vCPU's mailbox with a kick of the
//! core that holds it; level-sensitive timer lines sampled again when released; the
//! real UART's input to the VM that owns the console.

use core::sync::atomic::Ordering;

use arm_vcpu::Aarch64VCpu;
use log::error;

use super::{flag, now, Core, Sched, VCpu, VmSched};
use crate::devices::{timer_index, Injection};
use crate::platform::gic::{self, KICK_SGI};

/// Sends vCPU `i`'s injection `inj` the way it must go: into the Box if this core
/// holds it, else its mailbox and a kick of its core.
pub(super) fn post_mail(s: &Sched, me: usize, vs: &VmSched, inj: Injection) {
    let Some(sh) = vs.vcpus.get(inj.vcpu) else {
        return;
    };
    sh.mail.lock().push(inj);
    sh.has_mail.store(true, Ordering::Release);
    let c = sh.core.load(Ordering::Acquire);
    if let Some(core) = s.cores.get(c) {
        core.flags.fetch_or(flag::MAIL, Ordering::AcqRel);
        if c != me && !core.passthrough.load(Ordering::Relaxed) {
            gic::send_sgi(KICK_SGI, c as u64);
        }
    }
}

/// Whether `vcpu`'s EL1 timer `intid` (27 virtual, 30 physical) asserts its line now:
/// CNTx_CTL_EL0.ENABLE and ISTATUS set, IMASK clear — from the hardware registers
/// while the vCPU is bound here (they are the guest's then), from its deadlines
/// (`timer_deadlines`, in physical count) while it is not.
pub(super) fn timer_line(vcpu: &Aarch64VCpu, intid: u32) -> bool {
    // [pmu] The PMU's overflow line, as the crate sees it (hardware or saved state).
    if intid == arm_vcpu::pmu::PMU_INTID {
        return vcpu.pmu_irq_line();
    }
    if vcpu.is_bound() {
        let ctl: u64;
        // SAFETY: at EL2 (non-VHE) CNTV_CTL_EL0 / CNTP_CTL_EL0 are the EL1 timers'
        // control registers, loaded with the bound vCPU's state; reading has no side
        // effect.
        unsafe {
            if intid == gic::VTIMER_INTID {
                core::arch::asm!("mrs {0}, cntv_ctl_el0", out(reg) ctl, options(nomem, nostack));
            } else {
                core::arch::asm!("mrs {0}, cntp_ctl_el0", out(reg) ctl, options(nomem, nostack));
            }
        }
        ctl & 0b111 == 0b101
    } else {
        let d = vcpu.timer_deadlines();
        let deadline = if intid == gic::VTIMER_INTID {
            d.virt
        } else {
            d.phys
        };
        deadline.is_some_and(|t| t <= now())
    }
}

/// Injects `inj` into `v`. A released timer interrupt is sampled again first, as a
/// level-sensitive line is when it is enabled: only if the timer still asserts it is
/// it injected (linked to the physical PPI, which stayed active); if not, nothing is
/// injected and the physical active state is dropped (deactivated here when bound,
/// not restored at the next bind otherwise). Whether it was injected.
pub(super) fn inject_into(v: &mut VCpu, inj: Injection) -> bool {
    if inj.resample && !timer_line(&v.vcpu, inj.vi.intid) {
        if v.vcpu.is_bound() {
            gic::deactivate(inj.vi.intid);
        } else if let Some(t) = timer_index(inj.vi.intid) {
            v.timer_active[t] = false;
        }
        return false;
    }
    let r = match inj.source_cpu {
        // A GICv2 SGI: its list register carries the sender's CPU interface number.
        Some(src) => v.vcpu.inject_sgi(inj.vi, src),
        None => v.vcpu.inject_interrupt(inj.vi),
    };
    if r.is_err() {
        error!(
            "VM {}: cannot inject INTID {} into vCPU {}",
            v.vm.vm.name(),
            inj.vi.intid,
            v.index
        );
        return false;
    }
    true
}

/// Injects what the other cores posted to `v`; whether anything was.
pub(super) fn drain_mail(v: &mut VCpu) -> bool {
    let sh = v.sh;
    if !sh.has_mail.load(Ordering::Acquire) {
        return false;
    }
    let mail = core::mem::take(&mut *sh.mail.lock());
    sh.has_mail.store(false, Ordering::Release);
    let mut any = false;
    for inj in mail {
        any |= inject_into(v, inj);
    }
    any
}

impl Core {
    /// The real UART has input: to the VM that owns it (from the idle loop).
    pub(super) fn console_input(&mut self) {
        self.console_input_for(None)
    }

    pub(super) fn console_input_for(&mut self, cur: Option<&mut VCpu>) {
        let Some(i) = self.s.input_vm else {
            return;
        };
        let vs = &self.s.vms[i];
        {
            let mut s = vs.vm.state.lock();
            s.dev.poll_input();
            s.dev.deliveries(0, &mut self.out);
        }
        match cur {
            Some(c) if c.vm.vm.id == i => self.deliver_out(c),
            _ => {
                let out = core::mem::take(&mut self.out);
                for inj in &out {
                    self.deliver_elsewhere(vs, *inj);
                }
                self.out = out;
                self.out.clear();
            }
        }
    }

    /// Delivers `self.out` (injections for `v`'s VM): into `v` itself, a vCPU this
    /// core holds, or another core's by mail.
    pub(super) fn deliver_out(&mut self, v: &mut VCpu) {
        let out = core::mem::take(&mut self.out);
        for &inj in &out {
            if inj.vcpu == v.index {
                inject_into(v, inj);
            } else {
                self.deliver_elsewhere(v.vm, inj);
            }
        }
        self.out = out;
        self.out.clear();
    }

    /// Delivers `inj` to a vCPU of `vs` that is not the running one.
    pub(super) fn deliver_elsewhere(&mut self, vs: &'static VmSched, inj: Injection) {
        let Some(sh) = vs.vcpus.get(inj.vcpu) else {
            return;
        };
        if sh.core.load(Ordering::Acquire) == self.id {
            let same = |b: &VCpu| core::ptr::eq(b.vm, vs) && b.index == inj.vcpu;
            if let Some(b) = self.queue.iter_mut().find(|b| same(b)) {
                inject_into(b, inj);
                return;
            }
            if let Some(pos) = self.sleepers.iter().position(|b| same(b)) {
                let mut b = self.sleepers.swap_remove(pos);
                if inject_into(&mut b, inj) {
                    self.wake(b);
                } else {
                    self.sleepers.push(b);
                }
                return;
            }
        }
        post_mail(self.s, self.id, vs, inj);
    }
}
