//! The scheduler: every VM's vCPUs on every physical core, one loop per core.
//!
//! Each core owns the vCPUs it holds — the one bound to it, its run queue, its
//! sleepers (blocked in WFI until a deadline) — and nothing else touches them. A vCPU
//! (`Box<VCpu>`) moves between cores by value: through a core's inbox when it starts
//! (PSCI CPU_ON, placed by the policy) and back to its VM's parking when it powers
//! off. Other cores only post: an interrupt for a vCPU held elsewhere goes into that
//! vCPU's mailbox, and a kick SGI makes its core look (`service`).
//!
//! [`Core::run`] binds a vCPU, runs it until it stops (it yields, blocks, powers off,
//! its slice ends, its VM ends) and unbinds it; the policy (`policy`) says what
//! becomes of it. The exit loop itself (`run_loop`) answers the null hypercall inline
//! and hands every other exit to [`Core::exit`]: devices (`devices`), PSCI, SGIs,
//! physical interrupts (timers, kicks, console input), WFI.
//!
//! Time: each core's EL2 timer (CNTHP) fires for the earliest of its next slice tick
//! (only while others wait for the core and the running VM has slices), its sleepers'
//! deadlines (`timer_deadlines()`), and a scenario's host tick.
//!
//! Here: the types, the start of the run and of each core, the core loop, `run` and
//! the exit loop. `exits`: the exits the loop hands over. `irq`: interrupts for
//! vCPUs (mailboxes, kicks, re-sampled timer lines, console input). `life`: vCPUs
//! placed, parked, retired; VMs ended, reset, reported; the run's end. `timer`: the
//! EL2 timer. `policy`: the decisions (pure). `stats`, `trace`: what is recorded.

mod exits;
mod irq;
mod life;
pub mod policy;
pub mod stats;
mod timer;
pub mod trace;

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use arm_vcpu::{Aarch64PerCpu, Aarch64VCpu, VmExit};
use log::{error, info};
use spin::{Mutex, Once};

use crate::devices::{self, Injection, TIMER_INTIDS};
use crate::platform::gic::{self, LocalRedist, HYP_TIMER_INTID};
use crate::scenario::VmInfo;
use crate::vm::{hvc, Vm};
use irq::drain_mail;
use policy::{After, Stop};
use stats::VcpuStats;

/// "On no core": parked, or not started.
const NOWHERE: usize = usize::MAX;
/// A VM's partial console line is printed after this long without output.
const CONSOLE_QUIET_US: u64 = 30_000;

/// A core's flags: something for it to look at.
mod flag {
    /// Its inbox holds vCPUs.
    pub const INBOX: u32 = 1 << 0;
    /// A vCPU it holds has mail.
    pub const MAIL: u32 = 1 << 1;
    /// A VM ended or was reset: retire or park its vCPUs.
    pub const CHECK: u32 = 1 << 2;
}

/// PSCI power state of a vCPU, as AFFINITY_INFO reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Power {
    On = 0,
    Off = 1,
    OnPending = 2,
}

impl Power {
    fn from(v: u8) -> Self {
        match v {
            0 => Power::On,
            2 => Power::OnPending,
            _ => Power::Off,
        }
    }
}

/// What other cores may see of a vCPU.
pub struct VcpuShared {
    power: AtomicU8,
    /// The core holding it (queue, sleepers or running), [`NOWHERE`] while parked.
    core: AtomicUsize,
    /// Interrupts posted by other cores while another core held it.
    mail: Mutex<Vec<Injection>>,
    has_mail: AtomicBool,
    pub stats: VcpuStats,
}

/// A VM as the scheduler keeps it.
pub struct VmSched {
    pub vm: &'static Vm,
    pub vcpus: Vec<VcpuShared>,
    /// vCPUs that are off (not started, CPU_OFF, reset).
    parked: Mutex<Vec<Option<Box<VCpu>>>>,
    /// vCPUs not parked.
    live: AtomicUsize,
    /// A SYSTEM_RESET waits for the last vCPU to park, then restarts vCPU 0.
    reset_pending: AtomicBool,
    /// Bumped by SYSTEM_RESET: a vCPU of an older epoch is parked when seen.
    epoch: AtomicU32,
    /// Its statistics were printed.
    reported: AtomicBool,
    ran_on: Vec<AtomicU64>,
    /// Unbinds of its vCPUs, and vCPUs replaced by restored copies
    /// (`snapshot_every`).
    unbinds: AtomicU64,
    pub replaced: AtomicU64,
}

/// A vCPU and what the scheduler keeps with it. Travels between cores by value.
/// `repr(C)` with the vCPU first: the exit loop addresses the vCPU's world-switch
/// state at the same offsets as the vCPU itself (no extra base register).
#[repr(C)]
pub struct VCpu {
    pub vcpu: Aarch64VCpu,
    pub vm: &'static VmSched,
    pub index: usize,
    /// `vm.vcpus[index]`.
    sh: &'static VcpuShared,
    /// Its VM links timers, has a host tick or time slices: more to do at bind and
    /// unbind than the plain switch.
    special: bool,
    /// Its VM's scenario observes exits (so YIELD takes the full exit path).
    observed: bool,
    /// Its VM's scenario neither observes exits nor holds device reads
    /// (`Scenario::hold_read`): the exit loop hands its MMIO exits straight to the
    /// devices.
    direct: bool,
    /// The devices its exit loop serves inside `run_with` (the test device of a
    /// `direct` test VM).
    inline: exits::InlineDevices,
    /// The physical timer PPIs ([`TIMER_INTIDS`]) were active (linked to this vCPU's
    /// virtual ones) when it was unbound.
    timer_active: [bool; TIMER_INTIDS.len()],
    /// While asleep: when its earliest timer fires (physical count).
    deadline: Option<u64>,
    last_core: usize,
    /// Its core's tick count when it was bound.
    bound_at: u64,
    epoch: u32,
    /// A device read its scenario held (`Scenario::hold_read`): completed from the
    /// device at its next bind.
    held_read: Option<VmExit>,
}

// SAFETY: a `VCpu` is only ever used by one core at a time — the one that holds it
// (bound, queued, asleep), or under its VM's parking lock; ownership moves with the
// Box through locked inboxes and parking.
unsafe impl Send for VCpu {}

/// What a core's siblings may post to it. (vCPUs stay boxed everywhere: a `VCpu` is
/// kilobytes, moved between cores as a pointer.)
#[allow(clippy::vec_box)]
pub struct CoreShared {
    inbox: Mutex<Vec<Box<VCpu>>>,
    flags: AtomicU32,
    /// vCPUs it holds (placement).
    load: AtomicUsize,
    /// It runs a passthrough VM: its guest owns the GIC, so it is never kicked.
    passthrough: AtomicBool,
    /// Started (PSCI CPU_ON to the firmware, or the boot core).
    started: AtomicBool,
    trace: Mutex<trace::Ring>,
}

/// The run.
pub struct Sched {
    pub vms: Vec<VmSched>,
    cores: Vec<CoreShared>,
    /// VMs not finished.
    live_vms: AtomicUsize,
    /// Switches between vCPUs of different VMs, over all cores.
    vm_switches: AtomicU64,
    timing: bool,
    tracing: bool,
    name: &'static str,
    /// The VM that gets the real UART's input.
    input_vm: Option<usize>,
    ended: AtomicBool,
}

// SAFETY: every field shared between cores is an atomic or behind a lock; the VMs'
// immutable parts (memory layout, configuration) are only read after the build.
unsafe impl Sync for Sched {}
// SAFETY: as above.
unsafe impl Send for Sched {}

static SCHED: Once<Sched> = Once::new();

fn sched() -> &'static Sched {
    match SCHED.get() {
        Some(s) => s,
        None => crate::end_early("the scheduler was used before it started"),
    }
}

/// The physical count.
#[inline(always)]
fn now() -> u64 {
    arm_vcpu::physical_count()
}

/// Starts the run: the VMs' vCPUs made and parked, vCPU 0 of each placed, the cores
/// the VMs use started; the boot core then runs its loop.
pub fn start(vms: Vec<Vm>, name: &'static str, timing: bool, tracing: bool) -> ! {
    let ncores = crate::platform::cpu_count();
    let mut vs = Vec::new();
    for vm in vms {
        let vm: &'static Vm = Box::leak(Box::new(vm));
        let n = vm.cfg.vcpus;
        vs.push(VmSched {
            vm,
            vcpus: (0..n)
                .map(|_| VcpuShared {
                    power: AtomicU8::new(Power::Off as u8),
                    core: AtomicUsize::new(NOWHERE),
                    mail: Mutex::new(Vec::new()),
                    has_mail: AtomicBool::new(false),
                    stats: VcpuStats::default(),
                })
                .collect(),
            parked: Mutex::new((0..n).map(|_| None).collect()),
            live: AtomicUsize::new(0),
            reset_pending: AtomicBool::new(false),
            epoch: AtomicU32::new(0),
            reported: AtomicBool::new(false),
            ran_on: (0..n).map(|_| AtomicU64::new(0)).collect(),
            unbinds: AtomicU64::new(0),
            replaced: AtomicU64::new(0),
        });
    }
    let input_vm = vs
        .iter()
        .position(|v| v.vm.cfg.console == crate::vm::config::Console::Io);
    let cores = (0..ncores)
        .map(|_| CoreShared {
            inbox: Mutex::new(Vec::new()),
            flags: AtomicU32::new(0),
            load: AtomicUsize::new(0),
            passthrough: AtomicBool::new(false),
            started: AtomicBool::new(false),
            trace: Mutex::new(trace::Ring::new(tracing)),
        })
        .collect();
    let nvms = vs.len();
    let s = SCHED.call_once(|| Sched {
        vms: vs,
        cores,
        live_vms: AtomicUsize::new(nvms),
        vm_switches: AtomicU64::new(0),
        timing: timing || tracing,
        tracing,
        name,
        input_vm,
        ended: AtomicBool::new(false),
    });
    let mut used = alloc::vec![false; ncores];
    let mut any_emulated = false;
    for v in &s.vms {
        for &c in &v.vm.allowed {
            if let Some(u) = used.get_mut(c) {
                *u = true;
            }
            if v.vm.kind == devices::Kind::Passthrough {
                s.cores[c].passthrough.store(true, Ordering::Relaxed);
            }
        }
        any_emulated |= v.vm.kind != devices::Kind::Passthrough;
    }
    if any_emulated {
        // The physical distributor is the host's (a passthrough VM, which owns it,
        // runs alone).
        gic::init_distributor();
        if let Some(i) = input_vm.filter(|&i| s.vms[i].vm.kind == devices::Kind::Virtual) {
            let _ = i;
            // The real console's interrupt wakes core 0 when input arrives.
            gic::enable_spi_on_core0(devices::uart_intid());
        }
    }
    // Every vCPU made now (a VM that cannot make its vCPUs ends at once); vCPU 0 of
    // each VM placed.
    let mut core0 = Core::new(0, s);
    for v in &s.vms {
        for i in 0..v.vcpus.len() {
            match v.vm.make_vcpu(i) {
                Ok(vcpu) => {
                    v.parked.lock()[i] = Some(Box::new(VCpu {
                        vcpu,
                        vm: v,
                        index: i,
                        sh: &v.vcpus[i],
                        special: v.vm.links_timers
                            || v.vm.host_tick.is_some()
                            || v.vm.slice != 0
                            || v.vm.checks_after_unbind
                            || v.vm.snapshot_every != 0
                            || v.vm.migrates,
                        observed: v.vm.observes,
                        direct: !v.vm.observes && !v.vm.migrates,
                        inline: exits::InlineDevices::new(
                            v,
                            &v.vcpus[i],
                            !v.vm.observes && !v.vm.migrates,
                        ),
                        timer_active: [false; TIMER_INTIDS.len()],
                        deadline: None,
                        last_core: NOWHERE,
                        bound_at: 0,
                        epoch: 0,
                        held_read: None,
                    }))
                }
                Err(e) => {
                    error!("VM {}: vCPU {}: {}", v.vm.name(), i, e);
                    v.vm.end(Err("cannot make its vCPUs"));
                }
            }
        }
    }
    for v in &s.vms {
        if v.vm.ended() {
            core0.finish_vm(v);
            continue;
        }
        core0.trace_phase(alloc::format!("{} starts", v.vm.name()));
        if let Err(e) = core0.start_vcpu(v, 0, None) {
            v.vm.end(Err(e));
            core0.finish_vm(v);
        }
    }
    for (c, &u) in used.iter().enumerate().skip(1) {
        if u {
            if let Err(e) = start_core(c) {
                error!("core {}: {}", c, e);
                crate::end_run_early(s.name, "cannot start a physical core the VMs need");
            }
        }
    }
    core0.enter()
}

/// Entry of a secondary core (boot.S `secondary_start` → `secondary_main`).
pub fn secondary(index: usize) -> ! {
    let s = sched();
    Core::new(index, s).enter()
}

extern "C" {
    fn secondary_start();
}

/// Starts physical core `index` at `secondary_start` on a stack of its own, carved
/// from the heap (through the firmware's PSCI CPU_ON).
fn start_core(index: usize) -> Result<(), &'static str> {
    let mpidr = crate::platform::cpu_mpidr(index).ok_or("no such core")?;
    let stack: &'static mut [u8] =
        Box::leak(alloc::vec![0u8; crate::platform::SECONDARY_STACK].into_boxed_slice());
    let top = (stack.as_ptr() as u64 + stack.len() as u64) & !15;
    // { stack top, core index }: boot.S reads it with the MMU (and caches) off, so it
    // is cleaned to the point of coherency first.
    let block: &'static mut [u64; 2] = Box::leak(Box::new([top, index as u64]));
    crate::vm::memory::sync_for_guest(block.as_ptr() as *const u8, 16);
    let entry = secondary_start as *const () as usize as u64;
    crate::platform::firmware::cpu_on(mpidr, entry, block.as_ptr() as u64).map_err(|e| {
        error!("firmware CPU_ON of MPIDR {:#x}: {:?}", mpidr, e);
        "the firmware refused CPU_ON"
    })
}

/// One physical core's scheduler state (on its own stack).
#[allow(clippy::vec_box)]
struct Core {
    id: usize,
    s: &'static Sched,
    sh: &'static CoreShared,
    percpu: Aarch64PerCpu,
    rd: Option<LocalRedist>,
    /// Its guest owns the GIC: no host interrupts, no kicks.
    passthrough: bool,
    queue: VecDeque<Box<VCpu>>,
    /// The queue's head, taken out already: what a vCPU that stopped and requeued
    /// itself found at most one other vCPU in the queue for (`Core::requeue`). Only
    /// set between `run` and the core loop's next turn, which puts it back at the
    /// head before serving the flags (so that the flags' checks see it).
    next: Option<Box<VCpu>>,
    sleepers: Vec<Box<VCpu>>,
    /// Slice ticks so far.
    ticks: u64,
    /// The next slice tick, while slicing.
    tick_next: Option<u64>,
    /// The next host tick of the running VM's scenario.
    host_tick_next: Option<u64>,
    /// What CNTHP is armed for (kept after it fired: its line stays high until it
    /// is rearmed or turned off, which `program_timer` does once nothing wants it).
    timer_at: Option<u64>,
    /// The running vCPU's VM: its slice and host tick (counter ticks).
    cur_slice: u64,
    cur_host_tick: Option<u64>,
    /// PPIs 27/30 are enabled on its redistributor.
    timers_enabled: bool,
    /// Injections the devices raised, to deliver (kept to reuse its allocation).
    out: Vec<Injection>,
    /// The VM of the vCPU it ran last.
    last_vm: usize,
    /// Timing: when the current vCPU last exited, and the exit to record.
    t_exit: u64,
    rec: Option<(u8, u64)>,
    /// A VM whose console holds a partial line, and when to print it (its guest went
    /// idle right after writing it: a prompt).
    console_flush: Option<(u64, &'static VmSched)>,
    /// How long a partial line waits for the rest (counter ticks).
    console_quiet: u64,
}

impl Core {
    fn new(id: usize, s: &'static Sched) -> Self {
        let sh = &s.cores[id];
        let passthrough = sh.passthrough.load(Ordering::Relaxed);
        let mut percpu = crate::platform::firmware::percpu(id);
        if percpu.hardware_enable().is_err() {
            error!("core {}: hardware_enable failed", id);
            crate::end_run_early(s.name, "cannot enable EL2 virtualization on a core");
        }
        if id == 0 {
            crate::platform::firmware::report(&percpu);
        }
        let rd = LocalRedist::of(id);
        if !passthrough {
            gic::init_cpu_for_virtual_guests(id);
        }
        sh.started.store(true, Ordering::Release);
        if id != 0 {
            info!(
                "core {} online (MPIDR {:#x}){}",
                id,
                crate::platform::current_mpidr(),
                if passthrough { ", passthrough" } else { "" }
            );
        }
        Self {
            id,
            s,
            sh,
            percpu,
            rd,
            passthrough,
            queue: VecDeque::new(),
            next: None,
            sleepers: Vec::new(),
            ticks: 0,
            tick_next: None,
            host_tick_next: None,
            timer_at: None,
            cur_slice: 0,
            cur_host_tick: None,
            timers_enabled: !passthrough,
            out: Vec::new(),
            last_vm: NOWHERE,
            t_exit: 0,
            rec: None,
            console_flush: None,
            console_quiet: crate::vm::us_to_ticks(CONSOLE_QUIET_US),
        }
    }

    /// The core loop: take what was posted, run the next vCPU, or idle.
    fn enter(mut self) -> ! {
        loop {
            if self.sh.flags.load(Ordering::Acquire) != 0 {
                if let Some(n) = self.next.take() {
                    self.queue.push_front(n);
                }
                self.service(None);
            }
            let v = match self.next.take() {
                Some(v) => Some(v),
                None => self.queue.pop_front(),
            };
            match v {
                Some(v) => self.run(v),
                None => self.idle(),
            }
        }
    }

    /// Takes what other cores posted: vCPUs from the inbox, mail for the vCPUs held
    /// here, ended or reset VMs. With the running vCPU `cur`, what it must do.
    fn service(&mut self, mut cur: Option<&mut VCpu>) -> Option<Stop> {
        let f = self.sh.flags.swap(0, Ordering::AcqRel);
        if f & flag::INBOX != 0 {
            let arrived = core::mem::take(&mut *self.sh.inbox.lock());
            for mut b in arrived {
                drain_mail(&mut b);
                self.queue.push_back(b);
            }
        }
        if f & flag::MAIL != 0 {
            if let Some(c) = cur.as_deref_mut() {
                drain_mail(c);
            }
            for b in self.queue.iter_mut() {
                drain_mail(b);
            }
            let mut i = 0;
            while i < self.sleepers.len() {
                if drain_mail(&mut self.sleepers[i]) {
                    let b = self.sleepers.swap_remove(i);
                    self.wake(b);
                } else {
                    i += 1;
                }
            }
        }
        if f & flag::CHECK != 0 {
            let mut i = 0;
            while i < self.queue.len() {
                if self.stale(&self.queue[i]) {
                    if let Some(b) = self.queue.remove(i) {
                        self.put_away(b);
                    }
                } else {
                    i += 1;
                }
            }
            let mut i = 0;
            while i < self.sleepers.len() {
                if self.stale(&self.sleepers[i]) {
                    let b = self.sleepers.swap_remove(i);
                    self.put_away(b);
                } else {
                    i += 1;
                }
            }
        }
        if !self.queue.is_empty() {
            self.start_slicing();
        }
        let c = cur?;
        if c.vm.vm.ended() {
            return Some(Stop::VmEnded);
        }
        if c.epoch != c.vm.epoch.load(Ordering::Acquire) {
            return Some(Stop::Off);
        }
        None
    }

    /// Whether `b`'s VM ended or was reset since it was started.
    fn stale(&self, b: &VCpu) -> bool {
        b.vm.vm.ended() || b.epoch != b.vm.epoch.load(Ordering::Acquire)
    }

    /// A stale vCPU leaves: retired if its VM ended, parked if it was reset.
    fn put_away(&mut self, b: Box<VCpu>) {
        if b.vm.vm.ended() {
            self.retire(b);
        } else {
            self.park(b);
        }
    }

    /// Nothing to run: sleep until an interrupt (a kick, the EL2 timer, console
    /// input) and take the host's interrupts.
    fn idle(&mut self) {
        if self.s.ended.load(Ordering::Acquire) {
            park_forever();
        }
        if self.passthrough {
            // No host interrupts on a passthrough core: poll the flags.
            core::hint::spin_loop();
            return;
        }
        self.program_timer();
        if self.sh.flags.load(Ordering::Acquire) != 0 {
            return;
        }
        // SAFETY: DSB and WFI only wait; a pending physical interrupt ends the wait
        // although the host runs with interrupts masked.
        unsafe { core::arch::asm!("dsb sy", "wfi", options(nostack, preserves_flags)) };
        loop {
            let iar = gic::ack();
            let intid = gic::intid_of(iar);
            if intid >= 1020 {
                break;
            }
            gic::eoi(iar);
            gic::deactivate(iar);
            match intid {
                HYP_TIMER_INTID => {
                    self.on_timer(None);
                }
                i if Some(i) == crate::platform::board().uart.intid => self.console_input(),
                // A kick: the flags say what for. A timer PPI of a vCPU unbound since:
                // it fires again when that vCPU is bound.
                _ => {}
            }
        }
    }

    fn trace_phase(&self, label: alloc::string::String) {
        if self.s.tracing {
            self.sh.trace.lock().phase(now(), label);
        }
    }

    /// Switches the EL1 timer PPIs on this core's redistributor to what `vm` needs:
    /// linked to the guest's timers (virtual mode), or off (test VMs and passthrough).
    fn set_timer_ppis(&mut self, on: bool) {
        if let Some(rd) = self.rd {
            for t in TIMER_INTIDS {
                // [pmu] PPI 23 stays on: a test VM's PMU overflow is delivered too.
                rd.set_enabled(t, on || t == arm_vcpu::pmu::PMU_INTID);
            }
        }
        self.timers_enabled = on;
    }

    /// Binds `v`, runs it until it stops, unbinds it and does what the policy says.
    /// A plain switch (a vCPU of a VM without linked timers, slices or host ticks)
    /// does only what every switch needs; the rest is behind `special`.
    fn run(&mut self, mut v: Box<VCpu>) {
        let vs = v.vm;
        let vm = vs.vm;
        let sh = v.sh;
        // A stale vCPU (its VM ended or was reset) left the queue when the CHECK flag
        // was served; one that went stale since is kicked out at its first exit.
        if vm.links_timers != self.timers_enabled && !self.passthrough {
            self.set_timer_ppis(vm.links_timers);
        }
        if let Err(e) = v.vcpu.bind(&mut self.percpu) {
            // A scenario may expect the refusal (`stage2`); anything else is a failure.
            let verdict = match vm.state.lock().scenario.as_mut() {
                Some(sc) => sc.bind_refused(&e),
                None => {
                    error!("VM {}: vCPU {}: bind: {}", vm.name(), v.index, e);
                    Err("bind failed")
                }
            };
            self.end_vm(vs, verdict);
            return self.retire(v);
        }
        if v.last_core != self.id {
            if v.last_core != NOWHERE {
                sh.stats.migrations.bump();
            } else if v.index == 0 {
                // The VM's first bind.
                // (The lock is released before the VM can end: `end_vm` takes it.)
                let first = vm.state.lock().scenario.as_mut().map(|sc| sc.first_bind());
                if let Some(Err(why)) = first {
                    let _ = v.vcpu.unbind(&mut self.percpu);
                    self.end_vm(vs, Err(why));
                    return self.retire(v);
                }
            }
            v.last_core = self.id;
            vs.ran_on[v.index].fetch_or(1 << (self.id & 63), Ordering::Relaxed);
        }
        if sh.power.load(Ordering::Relaxed) != Power::On as u8 {
            sh.power.store(Power::On as u8, Ordering::Release);
        }
        sh.stats.runs.bump();
        if vm.id != self.last_vm {
            if self.last_vm != NOWHERE {
                self.s.vm_switches.fetch_add(1, Ordering::Relaxed);
            }
            self.last_vm = vm.id;
        }
        if v.special {
            self.bind_special(&mut v);
        }
        if v.special && vm.migrates && v.held_read.is_some() {
            match self.complete_held_read(v) {
                Some(b) => v = b,
                None => return,
            }
        }
        drain_mail(&mut v);
        let stop = if self.s.timing {
            self.run_loop::<true>(&mut v)
        } else {
            self.run_loop::<false>(&mut v)
        };
        if v.inline.null_calls != 0 {
            sh.stats
                .hypercall
                .add(core::mem::take(&mut v.inline.null_calls));
        }
        if v.special {
            self.unbind_special(&mut v);
        }
        let unbound = v.vcpu.unbind(&mut self.percpu);
        if self.s.timing {
            let t = now();
            sh.stats.host_ticks.add(t.wrapping_sub(self.t_exit));
            if let Some((kind, at)) = self.rec.take() {
                self.sh
                    .trace
                    .lock()
                    .push(vm.id, v.index, kind, at, t.wrapping_sub(at));
            }
        }
        if unbound.is_err() {
            self.end_vm(vs, Err("unbind failed"));
            return self.retire(v);
        }
        if v.special && vm.after_unbind_work {
            match self.after_unbind_special(v) {
                Some(b) => v = b,
                None => return,
            }
        }
        match policy::after(stop) {
            After::Requeue => {
                if stop == Stop::Preempted {
                    sh.stats.preemptions.bump();
                } else {
                    sh.stats.yields.bump();
                }
                self.requeue(v);
            }
            After::Sleep { .. } => {
                sh.stats.blocks.bump();
                // Its deadlines from the state it was unbound with.
                v.deadline = v.vcpu.timer_deadlines().next();
                if drain_mail(&mut v) || policy::due(v.deadline, now()) {
                    self.wake(v);
                } else {
                    self.sleepers.push(v);
                    self.program_timer();
                }
            }
            After::Park => {
                if stop == Stop::Reset {
                    self.reset_vm(vs);
                }
                self.park(v)
            }
            After::Retire => self.retire(v),
        }
    }

    /// `v` to the tail of the run queue and the head out of it, for the core loop's
    /// next turn (`Core::next`). With at most one other vCPU queued, that is a swap
    /// (`v` alone: it runs again; one other: it takes `v`'s place), not a push and a
    /// pop of the ring buffer.
    #[inline(always)]
    fn requeue(&mut self, v: Box<VCpu>) {
        if self.queue.len() <= 1 {
            self.next = Some(match self.queue.front_mut() {
                Some(head) => core::mem::replace(head, v),
                None => v,
            });
        } else {
            self.queue.push_back(v);
        }
    }

    /// After-unbind work of such a VM, once the host's own state is back: the
    /// scenario's check that it survived the vCPU, a migration, a replacement by a
    /// restored copy (`snapshot_every`). `None`: the vCPU is gone from here (a
    /// restored one sent to another core, or retired with its VM).
    #[cold]
    #[inline(never)]
    fn after_unbind_special(&mut self, mut v: Box<VCpu>) -> Option<Box<VCpu>> {
        match self.after_unbind_checks(&mut v) {
            Ok(None) => Some(v),
            Ok(Some(core)) => {
                // Replaced by a restored vCPU that runs on `core`.
                v.sh.stats.yields.bump();
                self.sh.load.fetch_sub(1, Ordering::Relaxed);
                self.send_to(core, v);
                None
            }
            Err(why) => {
                self.end_vm(v.vm, Err(why));
                self.retire(v);
                None
            }
        }
    }

    /// [`Core::after_unbind_special`]'s checks: `Some(core)` when `v` now holds a
    /// restored vCPU to run on `core`.
    fn after_unbind_checks(&mut self, v: &mut VCpu) -> Result<Option<usize>, &'static str> {
        let vm = v.vm.vm;
        if vm.checks_after_unbind {
            let r = vm
                .state
                .lock()
                .scenario
                .as_mut()
                .map(|sc| sc.after_unbind());
            if let Some(Err(why)) = r {
                return Err(why);
            }
        }
        if vm.migrates && !vm.ended() {
            if let Some(core) = self.migrate(v)? {
                return Ok(Some(core));
            }
        }
        if vm.snapshot_every != 0 && !vm.ended() {
            if let Err(why) = self.replace_by_restored(v) {
                error!("VM {}: vCPU {}: {}", vm.name(), v.index, why);
                return Err(why);
            }
        }
        Ok(None)
    }

    /// After an unbind, the scenario's [`Scenario::migrate`]: `Some(core)` when `v`'s
    /// vCPU was replaced by one restored from its snapshot's bytes, to run on `core`.
    ///
    /// [`Scenario::migrate`]: crate::scenario::Scenario::migrate
    #[inline(never)]
    fn migrate(&mut self, v: &mut VCpu) -> Result<Option<usize>, &'static str> {
        let vm = v.vm.vm;
        let held = match v.held_read {
            Some(VmExit::MmioRead { addr, .. }) => Some(addr),
            _ => None,
        };
        let m = match vm.state.lock().scenario.as_mut() {
            Some(sc) => sc.migrate(v.index, self.id, &v.vcpu, held, vm, &mut self.percpu)?,
            None => None,
        };
        let Some(m) = m else {
            return Ok(None);
        };
        let snap = arm_vcpu::snapshot::Snapshot::from_bytes(&m.bytes).map_err(|e| {
            error!("VM {}: from_bytes: {}", vm.name(), e);
            "the migration's snapshot does not read back"
        })?;
        let mut fresh = vm.make_vcpu(v.index)?;
        fresh
            .set_reg(
                arm_vcpu::reg::Reg::Sys(arm_vcpu::reg::CNTVOFF_EL2),
                m.cntvoff_el2 as u128,
            )
            .map_err(|_| "set_reg(CNTVOFF_EL2) failed")?;
        fresh.restore(&snap).map_err(|e| {
            error!("VM {}: restore: {}", vm.name(), e);
            "restore failed"
        })?;
        if let Some(sc) = vm.state.lock().scenario.as_mut() {
            sc.restored(v.index, &fresh)?;
        }
        // The old vCPU is destroyed here.
        v.vcpu = fresh;
        info!(
            "VM {}: vCPU {} destroyed on core {}, restored from {} bytes for core {}",
            vm.name(),
            v.index,
            self.id,
            m.bytes.len(),
            m.core
        );
        Ok(Some(m.core))
    }

    /// Every `snapshot_every`-th unbind of its VM's vCPUs: `v`'s vCPU is replaced by
    /// a new one restored from its snapshot's bytes (the old one destroyed); what the
    /// scheduler keeps with it (mail, linked timer state) stays.
    #[inline(never)]
    fn replace_by_restored(&mut self, v: &mut VCpu) -> Result<(), &'static str> {
        let n = v.vm.unbinds.fetch_add(1, Ordering::Relaxed) + 1;
        if !n.is_multiple_of(v.vm.vm.snapshot_every) {
            return Ok(());
        }
        v.vcpu = v.vm.vm.restored_copy(v.index, &v.vcpu)?;
        v.vm.replaced.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Bind-time work of a VM with linked timers, slices or a host tick: the linked
    /// PPIs' active state back, the slice and host tick running.
    #[inline(never)]
    fn bind_special(&mut self, v: &mut VCpu) {
        let vm = v.vm.vm;
        if vm.links_timers {
            if let Some(rd) = self.rd {
                for (t, &intid) in TIMER_INTIDS.iter().enumerate() {
                    if v.timer_active[t] {
                        rd.set_active(intid, true);
                    }
                }
            }
        }
        v.bound_at = self.ticks;
        self.cur_slice = vm.slice;
        self.cur_host_tick = vm.host_tick;
        if !self.queue.is_empty() {
            self.start_slicing();
        }
        if let Some(p) = vm.host_tick {
            self.host_tick_next = Some(now().wrapping_add(p));
            self.program_timer();
        }
    }

    /// The device read its scenario held (`Scenario::hold_read`), answered now that
    /// the vCPU is bound again (maybe on another core). `None`: it failed, the VM
    /// ended and the vCPU is retired.
    #[cold]
    #[inline(never)]
    fn complete_held_read(&mut self, mut v: Box<VCpu>) -> Option<Box<VCpu>> {
        let Some(exit) = v.held_read.take() else {
            return Some(v);
        };
        // Through the exit path, as if the read had just exited (its scenario holds
        // a read only once).
        // A stop here (the VM ended) shows at the vCPU's first exit.
        let _ = self.exit(&mut v, &exit);
        Some(v)
    }

    /// Unbind-time work of such a VM: the linked PPIs' active state saved (and
    /// cleared for the next vCPU), the slice and host tick stopped.
    #[inline(never)]
    fn unbind_special(&mut self, v: &mut VCpu) {
        if v.vm.vm.links_timers {
            if let Some(rd) = self.rd {
                for (t, &intid) in TIMER_INTIDS.iter().enumerate() {
                    v.timer_active[t] = rd.active(intid);
                    if v.timer_active[t] {
                        rd.set_active(intid, false);
                    }
                }
            }
        }
        self.cur_slice = 0;
        self.cur_host_tick = None;
        if self.host_tick_next.take().is_some() {
            self.program_timer();
        }
    }

    /// Runs `v` until it stops. The null hypercall is answered here, inline, and a
    /// device access goes straight to the devices; every other exit goes to
    /// [`Core::exit`]. `TIMED`: guest and host time per exit (two
    /// counter reads per round trip), and the exit records with `trace=1`. Not
    /// inlined: the exit path's registers are its own, not the core loop's.
    #[inline(never)]
    fn run_loop<const TIMED: bool>(&mut self, v: &mut VCpu) -> Stop {
        let st: &'static VcpuStats = &v.sh.stats;
        if TIMED {
            self.t_exit = now();
        }
        loop {
            if TIMED {
                let t = now();
                st.host_ticks.add(t.wrapping_sub(self.t_exit));
                if let Some((kind, at)) = self.rec.take() {
                    self.sh
                        .trace
                        .lock()
                        .push(v.vm.vm.id, v.index, kind, at, t.wrapping_sub(at));
                }
                self.t_exit = t;
            }
            // The null call (HVC #0 with x0 = NULL: x0 = 0 back, counted in the vCPU)
            // and its lock-free devices are served inside `run_with`: no exit for them.
            let r = v.vcpu.run_with(&mut v.inline);
            if TIMED {
                let t = now();
                st.guest_ticks.add(t.wrapping_sub(self.t_exit));
                self.t_exit = t;
                if self.s.tracing {
                    self.rec = Some((trace::kind(&r), t));
                }
            }
            // Matched in place, field by field: only the exits that go to `Core::exit`
            // are bound (and copied) as a whole.
            match r {
                // A device access of a VM whose scenario neither watches nor holds exits:
                // straight to its devices.
                Ok(VmExit::MmioRead { addr, width, .. }) if v.direct => {
                    if let Some(stop) = self.device_access(v, addr, width, None) {
                        return stop;
                    }
                }
                Ok(VmExit::MmioWrite { addr, width, data }) if v.direct => {
                    if let Some(stop) = self.device_access(v, addr, width, Some(data)) {
                        return stop;
                    }
                }
                // The scheduler's own call goes straight to the switch (YIELD returns 0
                // when this vCPU runs again). (`&`, not `&&`: one test each, which keeps
                // the null call's the first.)
                Ok(VmExit::Hypercall { imm: 0, args }) if (args[0] == hvc::YIELD) & !v.observed => {
                    return yielded(v);
                }
                // A TEST_CALL of a VM whose exits go straight to their handlers: to its
                // scenario (`Core::test_call`).
                Ok(VmExit::Hypercall {
                    imm: 0,
                    args: args @ [hvc::TEST_CALL, ..],
                }) if v.direct => {
                    if let Some(stop) = self.test_call(v, &args) {
                        return stop;
                    }
                }
                Ok(ref exit) => {
                    // Copied only here, for `Core::exit`.
                    let exit = *exit;
                    if let Some(stop) = self.exit(v, &exit) {
                        return stop;
                    }
                }
                Err(e) => return self.run_error(v, e),
            }
        }
    }

    /// `run()` refused to enter: the VM ends (out of the exit loop's way).
    #[cold]
    #[inline(never)]
    fn run_error(&mut self, v: &mut VCpu, e: arm_vcpu::VCpuError) -> Stop {
        error!("VM {}: vCPU {}: run: {}", v.vm.vm.name(), v.index, e);
        self.end_vm(v.vm, Err("run() returned an error"));
        Stop::VmEnded
    }
}

/// The exit loop's answer to YIELD: 0 in x0 when the vCPU runs again, and the switch.
/// Cold (once per switch, not per exit): the loop then tests for the null call first.
#[cold]
#[inline(never)]
fn yielded(v: &mut VCpu) -> Stop {
    v.sh.stats.hypercall.bump();
    v.vcpu.set_return_value(0);
    Stop::Yielded
}

/// What a scenario learns about its VM. (`_dev`: the devices, locked by the caller;
/// nothing of them is read since the test device went lock-free, `Vm::testdev`.)
fn vm_info<'a>(
    vs: &'a VmSched,
    _dev: &'a devices::Devices,
    vcpu: &'a mut Aarch64VCpu,
) -> VmInfo<'a> {
    VmInfo { sched: vs, vcpu }
}

/// Switches between vCPUs of different VMs so far, over all cores.
pub fn vm_switches() -> u64 {
    sched().vm_switches.load(Ordering::Relaxed)
}

impl VmSched {
    /// External-interrupt exits of its vCPUs so far.
    pub fn irq_exits(&self) -> u64 {
        self.vcpus.iter().map(|v| v.stats.irq.get()).sum()
    }

    /// The cores (a bit each) vCPU `i` has run on.
    pub fn ran_on(&self, i: usize) -> u64 {
        self.ran_on.get(i).map_or(0, |a| a.load(Ordering::Relaxed))
    }
}

fn counter_hz() -> u64 {
    let hz: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effect.
    unsafe { core::arch::asm!("mrs {0}, cntfrq_el0", out(reg) hz, options(nomem, nostack)) };
    hz
}

/// A core with nothing left to do.
fn park_forever() -> ! {
    loop {
        // SAFETY: WFE only waits for an event.
        unsafe { core::arch::asm!("wfe", options(nomem, nostack)) };
    }
}
