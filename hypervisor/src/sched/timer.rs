//! Each core's EL2 timer (CNTHP): armed for the earliest of its next slice tick, its
//! sleepers' deadlines, a scenario's host tick and a VM's waiting console line; what
//! happens when it fires.

use alloc::boxed::Box;

use super::policy::{self, Stop};
use super::{now, Core, VCpu, VmSched};
use crate::platform::gic;

impl Core {
    /// Starts the slice ticks if the running vCPU's VM has slices and others wait.
    pub(super) fn start_slicing(&mut self) {
        if self.cur_slice != 0 && self.tick_next.is_none() && !self.queue.is_empty() {
            self.tick_next = Some(now().wrapping_add(self.cur_slice));
            self.program_timer();
        }
    }

    /// Arms CNTHP for the earliest of what needs it, or turns it off.
    pub(super) fn program_timer(&mut self) {
        if self.passthrough {
            return;
        }
        let next = policy::next_timer(
            self.tick_next,
            self.sleepers.iter().filter_map(|b| b.deadline),
            self.host_tick_next,
        );
        let next = match (next, self.console_flush) {
            (Some(a), Some((b, _))) => Some(a.min(b)),
            (a, c) => a.or(c.map(|c| c.0)),
        };
        if next != self.timer_at {
            match next {
                Some(t) => gic::arm_hyp_timer_at(t),
                None => gic::stop_hyp_timer(),
            }
            self.timer_at = next;
        }
    }

    /// The EL2 timer fired (acknowledged): slice tick, sleepers due, host tick. With
    /// the running vCPU `cur`, whether its slice ended.
    pub(super) fn on_timer(&mut self, cur: Option<&mut VCpu>) -> Option<Stop> {
        let t = now();
        let mut stop = None;
        if policy::due(self.tick_next, t) {
            self.ticks = self.ticks.wrapping_add(1);
            self.tick_next = (!self.queue.is_empty() && self.cur_slice != 0)
                .then(|| t.wrapping_add(self.cur_slice));
            if let Some(c) = cur {
                if policy::preempt(
                    self.ticks,
                    c.bound_at,
                    self.cur_slice != 0,
                    !self.queue.is_empty(),
                ) {
                    stop = Some(Stop::Preempted);
                }
            }
        }
        if policy::due(self.host_tick_next, t) {
            self.host_tick_next = self.cur_host_tick.map(|p| t.wrapping_add(p));
        }
        if let Some((at, vs)) = self.console_flush {
            if at <= t {
                self.console_flush = None;
                self.console_idle(vs);
            }
        }
        let mut i = 0;
        while i < self.sleepers.len() {
            if policy::due(self.sleepers[i].deadline, t) {
                let b = self.sleepers.swap_remove(i);
                self.wake(b);
            } else {
                i += 1;
            }
        }
        // CNTHP still holds the compare value that fired (its line stays high until
        // it is given a later one or turned off): what it is armed for now is past.
        self.program_timer();
        stop
    }

    /// A sleeper becomes runnable.
    pub(super) fn wake(&mut self, mut b: Box<VCpu>) {
        b.deadline = None;
        b.sh.stats.wakeups.bump();
        self.queue.push_back(b);
        self.start_slicing();
    }

    /// `vs`'s guest went idle: a partial console line that has waited long enough is
    /// printed, a younger one when it has (the EL2 timer comes back for it).
    pub(super) fn console_idle(&mut self, vs: &'static VmSched) {
        let since = {
            let mut s = vs.vm.state.lock();
            match s.dev.console_quiet_since() {
                Some(t) if now().wrapping_sub(t) >= self.console_quiet => {
                    s.dev.flush_console();
                    None
                }
                other => other,
            }
        };
        if let Some(t) = since {
            let at = t.wrapping_add(self.console_quiet);
            if self.console_flush.is_none_or(|(a, _)| at < a) {
                self.console_flush = Some((at, vs));
                self.program_timer();
            }
        }
    }
}
