//! The scheduling policy: decisions only, no mechanism (the split of Tock's
//! `Scheduler` trait and its kernel loop). The core loop (`sched::core_loop`) asks
//! here where a starting vCPU goes, whether the running one has had its time slice,
//! what a stopped one becomes, and when the core's EL2 timer must fire next; it
//! carries the answers out. Pure, host-tested in xtask.

use super::super::vm::config::Placement;

/// Where a vCPU that starts (vCPU 0 at boot, any other at its PSCI CPU_ON) runs:
/// `Pinned`: vCPU i on allowed core i mod n; `Balanced`: the allowed core with the
/// fewest vCPUs on it (`load[c]`), on a tie the one with fewest of this VM's (`own[c]`:
/// a VM's vCPUs spread over its cores, so two VMs sharing two cores do not end up one
/// per core), then the lowest-numbered. `None` only when `allowed` is empty (refused
/// when the VM is checked).
pub fn place(
    placement: Placement,
    allowed: &[usize],
    vcpu: usize,
    load: &[usize],
    own: &[usize],
) -> Option<usize> {
    if allowed.is_empty() {
        return None;
    }
    let count = |t: &[usize], c: usize| t.get(c).copied().unwrap_or(usize::MAX);
    match placement {
        Placement::Pinned => allowed.get(vcpu % allowed.len()).copied(),
        Placement::Balanced => allowed
            .iter()
            .copied()
            .min_by_key(|&c| (count(load, c), count(own, c), c)),
    }
}

/// Why a vCPU stopped running on its core (Tock's `StoppedExecutingReason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// YIELD hypercall, WFE, CPU_SUSPEND, or a trapped WFI of a VM whose WFI yields:
    /// runnable again at once, behind the others.
    Yielded,
    /// Its time slice ended while others waited.
    Preempted,
    /// A trapped WFI with nothing pending: it sleeps until `deadline` (physical count;
    /// its earliest timer), an interrupt for it, or a kick.
    Blocked { deadline: Option<u64> },
    /// PSCI CPU_OFF.
    Off,
    /// Its VM ended (SYSTEM_OFF, EXIT, a fault, or another vCPU's doing).
    VmEnded,
    /// PSCI SYSTEM_RESET of its VM: every vCPU off, vCPU 0 again from the entry.
    Reset,
}

/// What becomes of a vCPU after it stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// Back in its core's run queue (at the tail).
    Requeue,
    /// Into its core's sleepers, woken at the deadline or by an interrupt.
    Sleep { deadline: Option<u64> },
    /// Parked with its VM until a CPU_ON.
    Park,
    /// Retired: its VM is over.
    Retire,
}

/// The policy's answer to a stop.
pub fn after(stop: Stop) -> After {
    match stop {
        Stop::Yielded | Stop::Preempted => After::Requeue,
        Stop::Blocked { deadline } => After::Sleep { deadline },
        Stop::Off | Stop::Reset => After::Park,
        Stop::VmEnded => After::Retire,
    }
}

/// The slice check at a tick of the core's EL2 timer: the running vCPU is preempted
/// when another vCPU waits for the core, its VM has time slices, and it has run
/// through a whole tick period — it was already running at the previous tick
/// (`ticks` counts the core's ticks, `bound_at` is its count when the vCPU was bound),
/// so a vCPU gets between one and two periods.
pub fn preempt(ticks: u64, bound_at: u64, sliced: bool, others_waiting: bool) -> bool {
    sliced && others_waiting && ticks.wrapping_sub(bound_at) >= 2
}

/// When the core's EL2 timer must fire next (physical count): the next slice tick
/// (`tick`, when slicing is due), the earliest sleeper's deadline, a scenario's host
/// tick; `None` if nothing needs it.
pub fn next_timer(
    tick: Option<u64>,
    sleepers: impl Iterator<Item = u64>,
    host_tick: Option<u64>,
) -> Option<u64> {
    let s = sleepers.min();
    [tick, s, host_tick].into_iter().flatten().min()
}

/// Whether a sleeper is due at `now`.
pub fn due(deadline: Option<u64>, now: u64) -> bool {
    deadline.is_some_and(|d| d <= now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement() {
        let allowed = [0, 1];
        assert_eq!(place(Placement::Pinned, &allowed, 0, &[], &[]), Some(0));
        assert_eq!(place(Placement::Pinned, &allowed, 3, &[], &[]), Some(1));
        assert_eq!(place(Placement::Pinned, &[2, 3], 2, &[], &[]), Some(2));
        assert_eq!(
            place(Placement::Balanced, &allowed, 5, &[2, 1], &[0, 0]),
            Some(1)
        );
        assert_eq!(
            place(Placement::Balanced, &allowed, 5, &[1, 1], &[0, 0]),
            Some(0)
        );
        assert_eq!(
            place(Placement::Balanced, &[1, 3], 0, &[0, 4, 9, 2], &[0; 4]),
            Some(3)
        );
        assert_eq!(place(Placement::Balanced, &[], 0, &[0], &[0]), None);
        // A core missing from the load table counts as full.
        assert_eq!(place(Placement::Balanced, &[0, 7], 0, &[3], &[0]), Some(0));
        // Equal loads: the core with fewer of the VM's own vCPUs.
        assert_eq!(
            place(Placement::Balanced, &allowed, 1, &[1, 1], &[1, 0]),
            Some(1)
        );
        // The load decides first.
        assert_eq!(
            place(Placement::Balanced, &allowed, 1, &[1, 2], &[1, 0]),
            Some(0)
        );
    }

    /// Two VMs of two vCPUs on two cores, vCPU 0s first, then each CPU_ON: each VM
    /// gets both cores.
    #[test]
    fn two_vms_spread() {
        let mut load = [0usize; 2];
        let mut own = [[0usize; 2]; 2];
        let mut placed = [[9usize; 2]; 2];
        for (vm, vcpu) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            let c = place(Placement::Balanced, &[0, 1], vcpu, &load, &own[vm]).unwrap();
            load[c] += 1;
            own[vm][c] += 1;
            placed[vm][vcpu] = c;
        }
        assert_eq!(placed, [[0, 1], [1, 0]]);
    }

    #[test]
    fn stops() {
        assert_eq!(after(Stop::Yielded), After::Requeue);
        assert_eq!(after(Stop::Preempted), After::Requeue);
        assert_eq!(
            after(Stop::Blocked { deadline: Some(9) }),
            After::Sleep { deadline: Some(9) }
        );
        assert_eq!(after(Stop::Off), After::Park);
        assert_eq!(after(Stop::Reset), After::Park);
        assert_eq!(after(Stop::VmEnded), After::Retire);
    }

    #[test]
    fn slices() {
        // Bound after tick 4 (count 4): not preempted at tick 5, preempted at 6.
        assert!(!preempt(5, 4, true, true));
        assert!(preempt(6, 4, true, true));
        assert!(!preempt(6, 4, true, false), "alone on the core");
        assert!(!preempt(9, 4, false, true), "a VM without time slices");
        assert!(preempt(1, u64::MAX, true, true), "wrapping count");
    }

    #[test]
    fn timer() {
        assert_eq!(next_timer(None, [].into_iter(), None), None);
        assert_eq!(next_timer(Some(50), [70, 30].into_iter(), None), Some(30));
        assert_eq!(next_timer(Some(50), [70].into_iter(), Some(60)), Some(50));
        assert_eq!(next_timer(None, [].into_iter(), Some(5)), Some(5));
        assert!(due(Some(5), 5) && !due(Some(6), 5) && !due(None, 5));
    }
}
