//! Where the per-CPU states live, and how a vCPU finds the calling core's.
//!
//! AxVM's `VmArchVcpuOps::bind()` takes no per-CPU argument, while
//! `Aarch64VCpu::bind` needs the calling core's `Aarch64PerCpu`. The adapter keeps
//! every core's state in a static slot table: `VmArchPerCpuOps::new(cpu_id)` claims
//! slot `cpu_id`, `hardware_enable` (on that core) registers the core's affinity
//! (`MPIDR_EL1` Aff3..Aff0) with the slot, and `bind()` looks up the slot registered
//! for the calling core. A slot is used under a lock that is only ever tried, never
//! waited for: a second user at the same time (which the one-core-per-state rule
//! excludes) gets `ResourceBusy` instead of a deadlock.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arm_vcpu::Aarch64PerCpu;
use axvm_types::{VmBackendError, VmBackendResult};

/// Physical CPUs the adapter can hold per-CPU state for (AxVM's `cpu_id` below this).
pub const MAX_CPUS: usize = 64;

/// `MPIDR_EL1` affinity fields: Aff3 \[39:32\], Aff2 \[23:16\], Aff1 \[15:8\], Aff0 \[7:0\].
pub const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;

/// No core registered (not an affinity: bits outside the mask are set).
const NO_AFFINITY: u64 = u64::MAX;

/// One physical CPU's state.
pub(crate) struct Slot {
    /// Claimed by an `AxPerCpu`.
    claimed: AtomicBool,
    /// Held while `state` is in use.
    lock: AtomicBool,
    /// The affinity of the core that enabled the state, or `NO_AFFINITY`.
    affinity: AtomicU64,
    /// `CNTFRQ_EL0` as read at enable (0: unknown).
    timer_hz: AtomicU64,
    state: UnsafeCell<Option<Aarch64PerCpu>>,
}

// SAFETY: `state` is only reached through `Slot::with`, which holds `lock` (an
// acquire/release flag taken with a compare-exchange) for the whole access, so no two
// threads ever touch it at once; the other fields are atomics.
unsafe impl Sync for Slot {}

impl Slot {
    pub(crate) const fn new() -> Self {
        Self {
            claimed: AtomicBool::new(false),
            lock: AtomicBool::new(false),
            affinity: AtomicU64::new(NO_AFFINITY),
            timer_hz: AtomicU64::new(0),
            state: UnsafeCell::new(None),
        }
    }

    /// Runs `f` on the state under the lock; `ResourceBusy` if it is held.
    pub(crate) fn with<R>(
        &self,
        f: impl FnOnce(&mut Option<Aarch64PerCpu>) -> R,
    ) -> VmBackendResult<R> {
        if self
            .lock
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Err(VmBackendError::ResourceBusy);
        }
        // SAFETY: the lock is held (taken above, released below), so this is the only
        // reference to the state.
        let r = f(unsafe { &mut *self.state.get() });
        self.lock.store(false, Ordering::Release);
        Ok(r)
    }

    pub(crate) fn affinity(&self) -> Option<u64> {
        let a = self.affinity.load(Ordering::Acquire);
        (a != NO_AFFINITY).then_some(a)
    }

    pub(crate) fn register(&self, affinity: Option<u64>, timer_hz: u64) {
        self.timer_hz.store(timer_hz, Ordering::Relaxed);
        self.affinity.store(
            affinity.map_or(NO_AFFINITY, |a| a & MPIDR_AFFINITY_MASK),
            Ordering::Release,
        );
    }

    pub(crate) fn timer_hz(&self) -> Option<u64> {
        match self.timer_hz.load(Ordering::Relaxed) {
            0 => None,
            hz => Some(hz),
        }
    }
}

/// A table of per-CPU slots.
pub(crate) struct Registry<const N: usize> {
    slots: [Slot; N],
}

impl<const N: usize> Registry<N> {
    pub(crate) const fn new() -> Self {
        Self {
            slots: [const { Slot::new() }; N],
        }
    }

    /// Claims slot `cpu_id` for a new per-CPU state.
    pub(crate) fn claim(&self, cpu_id: usize) -> VmBackendResult<&Slot> {
        let slot = self.slots.get(cpu_id).ok_or(VmBackendError::InvalidInput)?;
        if slot
            .claimed
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return Err(VmBackendError::ResourceBusy);
        }
        if let Err(e) = slot.with(|s| *s = Some(Aarch64PerCpu::new(cpu_id))) {
            slot.claimed.store(false, Ordering::Release);
            return Err(e);
        }
        slot.register(None, 0);
        Ok(slot)
    }

    /// Gives slot `cpu_id` back (its state is dropped).
    pub(crate) fn release(&self, cpu_id: usize) {
        if let Some(slot) = self.slots.get(cpu_id) {
            slot.register(None, 0);
            // A slot in use right now is left claimed rather than cleared under a user.
            if slot.with(|s| *s = None).is_ok() {
                slot.claimed.store(false, Ordering::Release);
            }
        }
    }

    pub(crate) fn slot(&self, cpu_id: usize) -> Option<&Slot> {
        self.slots.get(cpu_id)
    }

    /// The slot registered for the core with this affinity, and its index.
    pub(crate) fn find(&self, affinity: u64) -> Option<(usize, &Slot)> {
        let a = affinity & MPIDR_AFFINITY_MASK;
        self.slots
            .iter()
            .enumerate()
            .find(|(_, s)| s.affinity() == Some(a))
    }
}

/// The per-CPU states of this hypervisor.
pub(crate) static REGISTRY: Registry<MAX_CPUS> = Registry::new();

/// The calling core's affinity (`MPIDR_EL1` & [`MPIDR_AFFINITY_MASK`]); `None` when
/// not built for aarch64 (no core can be enabled there).
pub(crate) fn current_affinity() -> Option<u64> {
    #[cfg(target_arch = "aarch64")]
    {
        use aarch64_cpu::registers::{Readable, MPIDR_EL1};
        Some(MPIDR_EL1.get() & MPIDR_AFFINITY_MASK)
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        None
    }
}

/// `CNTFRQ_EL0`, the system counter's frequency (0 when not built for aarch64).
pub(crate) fn counter_frequency() -> u64 {
    #[cfg(target_arch = "aarch64")]
    {
        use aarch64_cpu::registers::{Readable, CNTFRQ_EL0};
        CNTFRQ_EL0.get()
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_is_exclusive_and_bounded() {
        let r: Registry<4> = Registry::new();
        assert!(r.claim(1).is_ok());
        assert_eq!(r.claim(1).err(), Some(VmBackendError::ResourceBusy));
        assert_eq!(r.claim(4).err(), Some(VmBackendError::InvalidInput));
        r.release(1);
        let slot = r.claim(1).unwrap();
        // A fresh state for that CPU number, not enabled.
        slot.with(|s| {
            let s = s.as_ref().unwrap();
            assert_eq!((s.cpu_id(), s.is_enabled()), (1, false));
        })
        .unwrap();
    }

    #[test]
    fn a_core_finds_the_slot_registered_for_it() {
        let r: Registry<4> = Registry::new();
        let a = r.claim(0).unwrap();
        let b = r.claim(2).unwrap();
        assert!(r.find(0).is_none(), "claimed is not registered");
        a.register(Some(0x100), 62_500_000);
        // MPIDR bits outside the affinity (U, MT, RES1 bit 31) do not matter.
        b.register(Some((1 << 31) | 0x1_0000_0101), 0);
        assert_eq!(r.find(0x100).map(|(i, _)| i), Some(0));
        assert_eq!(r.find(0x8000_0100).map(|(i, _)| i), Some(0));
        assert_eq!(r.find(0x1_0000_0101).map(|(i, _)| i), Some(2));
        assert!(r.find(0x101).is_none());
        assert_eq!(a.timer_hz(), Some(62_500_000));
        assert_eq!(b.timer_hz(), None);
        // Disabled: no longer found; released: gone.
        a.register(None, 0);
        assert!(r.find(0x100).is_none());
        r.release(2);
        assert!(r.find(0x1_0000_0101).is_none());
    }

    #[test]
    fn the_lock_is_tried_never_waited_for() {
        let r: Registry<1> = Registry::new();
        let slot = r.claim(0).unwrap();
        let inner = slot.with(|_| slot.with(|_| ()).err()).unwrap();
        assert_eq!(inner, Some(VmBackendError::ResourceBusy));
        // Released afterwards.
        assert!(slot.with(|_| ()).is_ok());
    }
}
