//! vCPUs and VMs coming and going: a vCPU placed on a core (boot, PSCI CPU_ON), parked
//! (CPU_OFF), retired (its VM ended); a VM ended (the first verdict stands), reset,
//! reported; the run ended when the last VM is.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use log::{error, info};

use super::stats::{self, VcpuStats};
use super::{counter_hz, flag, policy, trace, Core, Power, VCpu, VmSched, NOWHERE};
use crate::devices;
use crate::platform::gic::{self, KICK_SGI};
use crate::vm::Verdict;

impl Core {
    /// Places vCPU `i` of `vs` (taken from its parking) on a core by the policy;
    /// `on`: the CPU_ON's entry and context (`None`: vCPU 0 at boot or reset).
    pub(super) fn start_vcpu(
        &mut self,
        vs: &'static VmSched,
        i: usize,
        on: Option<(u64, u64)>,
    ) -> Result<(), &'static str> {
        let mut b = vs
            .parked
            .lock()
            .get_mut(i)
            .and_then(Option::take)
            .ok_or("the vCPU is not parked")?;
        if let Some((entry, ctx)) = on {
            // The reset drops the vCPU's hardware-linked list registers; their
            // physical PPIs were deactivated when it was unbound (`timer_active`),
            // which no longer applies.
            if b.vcpu.power_on(entry, ctx).is_err() {
                vs.parked.lock()[i] = Some(b);
                return Err("power_on failed");
            }
            b.timer_active = [false; devices::TIMER_INTIDS.len()];
        }
        b.epoch = vs.epoch.load(Ordering::Acquire);
        vs.vcpus[i]
            .power
            .store(Power::OnPending as u8, Ordering::Release);
        vs.live.fetch_add(1, Ordering::AcqRel);
        let loads: Vec<usize> = self
            .s
            .cores
            .iter()
            .map(|c| c.load.load(Ordering::Relaxed))
            .collect();
        let own: Vec<usize> = (0..loads.len())
            .map(|c| {
                vs.vcpus
                    .iter()
                    .filter(|v| v.core.load(Ordering::Relaxed) == c)
                    .count()
            })
            .collect();
        let core = policy::place(vs.vm.cfg.placement, &vs.vm.allowed, i, &loads, &own)
            .ok_or("no core to run on")?;
        self.send_to(core, b);
        Ok(())
    }

    /// Hands `b` to `core`: into the local run queue, or another core's inbox (and a
    /// kick).
    pub(super) fn send_to(&mut self, core: usize, b: Box<VCpu>) {
        let Some(c) = self.s.cores.get(core) else {
            return;
        };
        c.load.fetch_add(1, Ordering::Relaxed);
        b.sh.core.store(core, Ordering::Release);
        if core == self.id {
            self.queue.push_back(b);
            self.start_slicing();
            return;
        }
        c.inbox.lock().push(b);
        c.flags.fetch_or(flag::INBOX, Ordering::AcqRel);
        if c.passthrough.load(Ordering::Relaxed) {
            // Its core polls (no host interrupts there): wake it from WFE.
            // SAFETY: SEV only signals an event.
            unsafe { core::arch::asm!("sev", options(nomem, nostack)) };
        } else if c.started.load(Ordering::Acquire) {
            gic::send_sgi(KICK_SGI, core as u64);
        }
    }

    /// `b` powered off: into its VM's parking. The last vCPU of a VM to park ends it,
    /// or restarts it after a SYSTEM_RESET.
    pub(super) fn park(&mut self, b: Box<VCpu>) {
        let vs = b.vm;
        let i = b.index;
        let sh = &vs.vcpus[i];
        self.sh.load.fetch_sub(1, Ordering::Relaxed);
        sh.core.store(NOWHERE, Ordering::Release);
        vs.parked.lock()[i] = Some(b);
        sh.power.store(Power::Off as u8, Ordering::Release);
        if vs.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            if vs.reset_pending.swap(false, Ordering::AcqRel) {
                self.restart(vs);
            } else if !vs.vm.ended() {
                self.end_vm(vs, Err("every vCPU is off"));
                self.finish_vm(vs);
            } else {
                self.finish_vm(vs);
            }
        }
    }

    /// After a SYSTEM_RESET: vCPU 0 again from the VM's entry, with its boot registers.
    pub(super) fn restart(&mut self, vs: &'static VmSched) {
        let vm = vs.vm;
        let r = {
            let mut p = vs.parked.lock();
            match p.get_mut(0).and_then(Option::as_mut) {
                Some(b) => {
                    b.timer_active = [false; devices::TIMER_INTIDS.len()];
                    b.vcpu
                        .power_on(vm.entry, vm.x0)
                        .map_err(|_| "power_on failed")
                        .and_then(|_| vm.boot_regs_into(&mut b.vcpu))
                }
                None => Err("vCPU 0 is not parked"),
            }
        };
        match r.and_then(|_| self.start_vcpu(vs, 0, None)) {
            Ok(()) => info!("VM {}: SYSTEM_RESET, vCPU 0 restarts", vm.name()),
            Err(e) => {
                self.end_vm(vs, Err(e));
                self.finish_vm(vs);
            }
        }
    }

    /// `b`'s VM is over: it leaves. The last vCPU to leave finishes the VM.
    pub(super) fn retire(&mut self, b: Box<VCpu>) {
        let vs = b.vm;
        self.sh.load.fetch_sub(1, Ordering::Relaxed);
        let i = b.index;
        vs.vcpus[i].core.store(NOWHERE, Ordering::Release);
        vs.parked.lock()[i] = Some(b);
        if vs.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.finish_vm(vs);
        }
    }

    /// Ends `vs`'s VM with `verdict` (the first verdict stands): its vCPUs on other
    /// cores are told (a kick) and leave at their next exit.
    pub(super) fn end_vm(&mut self, vs: &'static VmSched, verdict: Verdict) {
        let vm = vs.vm;
        if !vm.end(verdict) {
            return;
        }
        vm.state.lock().dev.flush_console();
        match verdict {
            Ok(()) => info!("VM {} ends", vm.name()),
            Err(why) => error!("VM {} ends: {}", vm.name(), why),
        }
        self.trace_phase(alloc::format!("{} ends", vm.name()));
        for (c, core) in self.s.cores.iter().enumerate() {
            core.flags.fetch_or(flag::CHECK, Ordering::AcqRel);
            if c != self.id
                && core.started.load(Ordering::Acquire)
                && !core.passthrough.load(Ordering::Relaxed)
            {
                gic::send_sgi(KICK_SGI, c as u64);
            }
        }
        if vm.kind == devices::Kind::Passthrough {
            // Its other vCPUs' cores take no interrupts the host could use to stop
            // them: the VM (which runs alone) is reported now.
            self.finish_vm(vs);
        }
    }

    /// `vs` ended and none of its vCPUs runs: its verdict and statistics. The last VM
    /// ends the run.
    pub(super) fn finish_vm(&mut self, vs: &'static VmSched) {
        if vs.reported.swap(true, Ordering::AcqRel) {
            return;
        }
        let vm = vs.vm;
        let verdict = vm.verdict().unwrap_or(Err("ended without a verdict"));
        let dev = {
            let mut st = vm.state.lock();
            st.dev.flush_console();
            st.dev.accesses
        };
        let testdev = vs.vcpus.iter().map(|v| {
            let s = &v.stats;
            s.testdev_reads.get().plus(s.testdev_writes.get()).total()
        });
        let dev = devices::Accesses {
            testdev: testdev.fold(0u64, u64::wrapping_add),
            ..dev
        };
        let stats: Vec<&VcpuStats> = vs.vcpus.iter().map(|v| &v.stats).collect();
        let cores: Vec<u64> = (0..vs.vcpus.len()).map(|i| vs.ran_on(i)).collect();
        stats::print_vm(vm.name(), &stats, &cores, &dev, self.s.timing);
        if vm.snapshot_every != 0 {
            crate::println!(
                "[refhv INFO ] VM {} vCPUs replaced by restored snapshots: {} (every {}th of {} unbinds)",
                vm.name(),
                vs.replaced.load(Ordering::Relaxed),
                vm.snapshot_every,
                vs.unbinds.load(Ordering::Relaxed)
            );
        }
        match verdict {
            Ok(()) => crate::println!("ARM_VCPU_VM {}: PASS", vm.name()),
            Err(why) => crate::println!("ARM_VCPU_VM {}: FAIL {}", vm.name(), why),
        }
        if self.s.live_vms.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.end_run();
        }
    }

    /// Every VM has finished: the trace, the run's verdict, QEMU's exit status (bit i
    /// set: VM i failed; bit 5 for any VM past the fifth).
    pub(super) fn end_run(&mut self) -> ! {
        self.s.ended.store(true, Ordering::Release);
        if self.s.tracing {
            let rings: Vec<_> = self.s.cores.iter().map(|c| c.trace.lock()).collect();
            let refs: Vec<&trace::Ring> = rings.iter().map(|g| &**g).collect();
            trace::print(&refs, counter_hz());
        }
        let mut status = 0u8;
        let mut first_fail = None;
        for (i, v) in self.s.vms.iter().enumerate() {
            if let Some(Err(why)) = v.vm.verdict() {
                status |= 1 << i.min(5);
                first_fail.get_or_insert((v.vm.name(), why));
            }
        }
        match first_fail {
            None => crate::println!("ARM_VCPU_SCENARIO {}: PASS", self.s.name),
            Some((vm, why)) if self.s.vms.len() == 1 => {
                let _ = vm;
                crate::println!("ARM_VCPU_SCENARIO {}: FAIL {}", self.s.name, why)
            }
            Some((vm, why)) => {
                crate::println!("ARM_VCPU_SCENARIO {}: FAIL VM {}: {}", self.s.name, vm, why)
            }
        }
        crate::console::exit(status)
    }

    /// SYSTEM_RESET: every vCPU of the VM parks (those here now, those elsewhere when
    /// their core sees the new epoch); the last one to park restarts vCPU 0.
    pub(super) fn reset_vm(&mut self, vs: &'static VmSched) {
        vs.reset_pending.store(true, Ordering::Release);
        vs.epoch.fetch_add(1, Ordering::AcqRel);
        for (c, core) in self.s.cores.iter().enumerate() {
            core.flags.fetch_or(flag::CHECK, Ordering::AcqRel);
            if c != self.id
                && core.started.load(Ordering::Acquire)
                && !core.passthrough.load(Ordering::Relaxed)
            {
                gic::send_sgi(KICK_SGI, c as u64);
            }
        }
    }
}
