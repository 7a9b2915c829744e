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

pub mod policy;
pub mod stats;
pub mod trace;

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use arm_vcpu::smccc::ret;
use arm_vcpu::{Aarch64PerCpu, Aarch64VCpu, AccessWidth, Conduit, PsciRequest, VmExit};
use log::{error, info};
use spin::{Mutex, Once};

use crate::devices::{self, timer_index, Injection, TIMER_INTIDS};
use crate::platform::gic::{self, LocalRedist, HYP_TIMER_INTID, KICK_SGI};
use crate::scenario::{AbortPolicy, VmInfo};
use crate::vm::{hvc, Verdict, Vm};
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
}

/// A vCPU and what the scheduler keeps with it. Travels between cores by value.
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
    /// The physical timer PPIs ([`TIMER_INTIDS`]) were active (linked to this vCPU's
    /// virtual ones) when it was unbound.
    timer_active: [bool; 2],
    /// While asleep: when its earliest timer fires (physical count).
    deadline: Option<u64>,
    last_core: usize,
    /// Its core's tick count when it was bound.
    bound_at: u64,
    epoch: u32,
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
                        special: v.vm.links_timers || v.vm.host_tick.is_some() || v.vm.slice != 0,
                        observed: v.vm.observes,
                        timer_active: [false; 2],
                        deadline: None,
                        last_core: NOWHERE,
                        bound_at: 0,
                        epoch: 0,
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

/// Sends vCPU `i`'s injection `inj` the way it must go: into the Box if this core
/// holds it, else its mailbox and a kick of its core.
fn post_mail(s: &Sched, me: usize, vs: &VmSched, inj: Injection) {
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
fn timer_line(vcpu: &Aarch64VCpu, intid: u32) -> bool {
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
fn inject_into(v: &mut VCpu, inj: Injection) -> bool {
    if inj.resample && !timer_line(&v.vcpu, inj.vi.intid) {
        if v.vcpu.is_bound() {
            gic::deactivate(inj.vi.intid);
        } else if let Some(t) = timer_index(inj.vi.intid) {
            v.timer_active[t] = false;
        }
        return false;
    }
    if v.vcpu.inject_interrupt(inj.vi).is_err() {
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
fn drain_mail(v: &mut VCpu) -> bool {
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
        let mut percpu = Aarch64PerCpu::new(id);
        if percpu.hardware_enable().is_err() {
            error!("core {}: hardware_enable failed", id);
            crate::end_run_early(s.name, "cannot enable EL2 virtualization on a core");
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
                self.service(None);
            }
            match self.queue.pop_front() {
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
            let intid = gic::ack();
            if intid >= 1020 {
                break;
            }
            gic::eoi(intid);
            gic::deactivate(intid);
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

    /// Starts the slice ticks if the running vCPU's VM has slices and others wait.
    fn start_slicing(&mut self) {
        if self.cur_slice != 0 && self.tick_next.is_none() && !self.queue.is_empty() {
            self.tick_next = Some(now().wrapping_add(self.cur_slice));
            self.program_timer();
        }
    }

    /// Arms CNTHP for the earliest of what needs it, or turns it off.
    fn program_timer(&mut self) {
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
    fn on_timer(&mut self, cur: Option<&mut VCpu>) -> Option<Stop> {
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
    fn wake(&mut self, mut b: Box<VCpu>) {
        b.deadline = None;
        b.sh.stats.wakeups.bump();
        self.queue.push_back(b);
        self.start_slicing();
    }

    /// Places vCPU `i` of `vs` (taken from its parking) on a core by the policy;
    /// `on`: the CPU_ON's entry and context (`None`: vCPU 0 at boot or reset).
    fn start_vcpu(
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
            if b.vcpu.power_on(entry, ctx).is_err() {
                vs.parked.lock()[i] = Some(b);
                return Err("power_on failed");
            }
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
        let core = policy::place(vs.vm.cfg.placement, &vs.vm.allowed, i, &loads)
            .ok_or("no core to run on")?;
        self.send_to(core, b);
        Ok(())
    }

    /// Hands `b` to `core`: into the local run queue, or another core's inbox (and a
    /// kick).
    fn send_to(&mut self, core: usize, b: Box<VCpu>) {
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
    fn park(&mut self, b: Box<VCpu>) {
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
    fn restart(&mut self, vs: &'static VmSched) {
        let vm = vs.vm;
        let r = {
            let mut p = vs.parked.lock();
            match p.get_mut(0).and_then(Option::as_mut) {
                Some(b) => b
                    .vcpu
                    .power_on(vm.entry, vm.x0)
                    .map_err(|_| "power_on failed")
                    .and_then(|_| vm.boot_regs_into(&mut b.vcpu)),
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
    fn retire(&mut self, b: Box<VCpu>) {
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
    fn end_vm(&mut self, vs: &'static VmSched, verdict: Verdict) {
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
    fn finish_vm(&mut self, vs: &'static VmSched) {
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
        let stats: Vec<&VcpuStats> = vs.vcpus.iter().map(|v| &v.stats).collect();
        stats::print_vm(vm.name(), &stats, &dev, self.s.timing);
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
    fn end_run(&mut self) -> ! {
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
                rd.set_enabled(t, on);
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
        if v.vcpu.bind(&mut self.percpu).is_err() {
            self.end_vm(vs, Err("bind failed"));
            return self.retire(v);
        }
        if v.last_core != self.id {
            if v.last_core != NOWHERE {
                sh.stats.migrations.bump();
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
        drain_mail(&mut v);
        let stop = if self.s.timing {
            self.run_loop::<true>(&mut v)
        } else {
            self.run_loop::<false>(&mut v)
        };
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
        match policy::after(stop) {
            After::Requeue => {
                if stop == Stop::Preempted {
                    sh.stats.preemptions.bump();
                } else {
                    sh.stats.yields.bump();
                }
                self.queue.push_back(v);
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

    /// SYSTEM_RESET: every vCPU of the VM parks (those here now, those elsewhere when
    /// their core sees the new epoch); the last one to park restarts vCPU 0.
    fn reset_vm(&mut self, vs: &'static VmSched) {
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

    /// Runs `v` until it stops. The null hypercall is answered here, inline; every
    /// other exit goes to [`Core::exit`]. `TIMED`: guest and host time per exit (two
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
            // Matched in place: binding the Result first costs a copy of the exit per
            // round trip. The null call is matched on its own, first.
            let r = v.vcpu.run();
            if TIMED {
                let t = now();
                st.guest_ticks.add(t.wrapping_sub(self.t_exit));
                self.t_exit = t;
                if self.s.tracing {
                    self.rec = Some((trace::kind(&r), t));
                }
            }
            match r {
                Ok(VmExit::Hypercall {
                    imm: 0,
                    args: [hvc::NULL, ..],
                }) => {
                    st.hypercall.bump();
                    v.vcpu.set_return_value(0);
                    continue;
                }

                Ok(exit) => {
                    // The scheduler's own call goes straight to the switch (YIELD
                    // returns 0 when this vCPU runs again).
                    if let VmExit::Hypercall { imm: 0, args } = &exit {
                        if args[0] == hvc::YIELD && !v.observed {
                            st.hypercall.bump();
                            v.vcpu.set_return_value(0);
                            return Stop::Yielded;
                        }
                    }
                    if let Some(stop) = self.exit(v, &exit) {
                        return stop;
                    }
                }
                Err(e) => {
                    error!("VM {}: vCPU {}: run: {}", v.vm.vm.name(), v.index, e);
                    self.end_vm(v.vm, Err("run() returned an error"));
                    return Stop::VmEnded;
                }
            }
        }
    }

    /// One exit the fast path did not answer: devices, hypercalls, PSCI, SGIs,
    /// physical interrupts, WFI, traps. `Some`: the vCPU stops. An error ends its VM
    /// (only its VM) with the reason.
    #[inline(never)]
    fn exit(&mut self, v: &mut VCpu, e: &VmExit) -> Option<Stop> {
        let r = self.handle(v, e);
        let vm = v.vm.vm;
        if vm.observes {
            if let Some(sc) = vm.state.lock().scenario.as_mut() {
                sc.observe(e);
            }
        }
        match r {
            Ok(stop) => stop,
            Err(why) => {
                error!(
                    "VM {}: vCPU {}: {} (exit {:?} at pc {:#x})",
                    vm.name(),
                    v.index,
                    why,
                    e,
                    v.vcpu.pc()
                );
                self.end_vm(v.vm, Err(why));
                Some(Stop::VmEnded)
            }
        }
    }

    fn handle(&mut self, v: &mut VCpu, e: &VmExit) -> Result<Option<Stop>, &'static str> {
        let st = &v.sh.stats;
        match *e {
            VmExit::MmioRead { addr, width, .. } => {
                st.mmio_read.bump();
                self.mmio(v, addr, width, None)
            }
            VmExit::MmioWrite { addr, width, data } => {
                st.mmio_write.bump();
                self.mmio(v, addr, width, Some(data))
            }
            VmExit::Hypercall { imm, ref args } => {
                st.hypercall.bump();
                self.hypercall(v, imm, args)
            }
            VmExit::Psci { request, conduit } => {
                st.psci.bump();
                self.psci(v, request, conduit)
            }
            VmExit::ExternalInterrupt { .. } => {
                st.irq.bump();
                Ok(self.host_irq(v))
            }
            VmExit::WaitForInterrupt => {
                st.wfi.bump();
                Ok(self.wfi(v))
            }
            _ => self.handle_rest(v, e),
        }
    }

    /// The exits that are neither MMIO, hypercalls, PSCI, interrupts nor WFI.
    #[inline(never)]
    fn handle_rest(&mut self, v: &mut VCpu, e: &VmExit) -> Result<Option<Stop>, &'static str> {
        let vm = v.vm.vm;
        let st = &v.sh.stats;
        match *e {
            VmExit::SendSgi { request } => {
                st.sgi.bump();
                let mpidrs = &vm.mpidrs;
                {
                    let mut s = vm.state.lock();
                    s.dev.send_sgi(v.index, &request, mpidrs.len(), |i| {
                        mpidrs.get(i).copied().unwrap_or(u64::MAX)
                    });
                    s.dev.deliveries(v.index, &mut self.out);
                }
                self.deliver_out(v);
                Ok(None)
            }
            VmExit::WaitForEvent => {
                // Its wake-up event (SEV) is not an interrupt: let others run first.
                st.wfe.bump();
                Ok(Some(Stop::Yielded))
            }
            VmExit::SysRegRead { reg, .. } => {
                st.sysreg.bump();
                let answer = vm
                    .state
                    .lock()
                    .scenario
                    .as_mut()
                    .and_then(|sc| sc.sysreg_read(reg));
                match answer {
                    Some(val) => v
                        .vcpu
                        .complete_sysreg_read(val)
                        .map_err(|_| "complete_sysreg_read")?,
                    None => v.vcpu.inject_undef().map_err(|_| "inject_undef")?,
                }
                Ok(None)
            }
            VmExit::SysRegWrite { .. } => {
                st.sysreg.bump();
                v.vcpu.inject_undef().map_err(|_| "inject_undef")?;
                Ok(None)
            }
            VmExit::DataAbort { va, write, .. } => {
                st.abort.bump();
                if vm.abort_policy == Some(AbortPolicy::Fail) {
                    return Err("unexpected data abort");
                }
                v.vcpu
                    .inject_data_abort(va, write)
                    .map_err(|_| "inject_data_abort")?;
                Ok(None)
            }
            VmExit::InstructionAbort { va, .. } => {
                st.abort.bump();
                if vm.abort_policy == Some(AbortPolicy::Fail) {
                    return Err("unexpected instruction abort");
                }
                v.vcpu
                    .inject_instruction_abort(va)
                    .map_err(|_| "inject_instruction_abort")?;
                Ok(None)
            }
            _ => {
                st.other.bump();
                Err("unexpected exit")
            }
        }
    }

    /// An MMIO access (`data`: a write's value) to the VM's devices. Nothing there:
    /// an OS reads zero and its writes are ignored (U-Boot and Linux probe); a test
    /// scenario injects an abort or fails, as it says.
    #[inline(always)]
    fn mmio(
        &mut self,
        v: &mut VCpu,
        addr: u64,
        width: AccessWidth,
        data: Option<u64>,
    ) -> Result<Option<Stop>, &'static str> {
        let vm = v.vm.vm;
        let (served, val, deliver) = {
            let mut s = vm.state.lock();
            let (served, val) = match data {
                None => match s.dev.read(v.index, addr, width) {
                    Some(x) => (true, x),
                    None => (false, 0),
                },
                Some(d) => (s.dev.write(v.index, addr, width, d), 0),
            };
            let deliver = s.dev.has_deliveries();
            if deliver {
                s.dev.deliveries(v.index, &mut self.out);
            }
            (served, val, deliver)
        };
        if !served {
            match vm.abort_policy {
                Some(AbortPolicy::Inject) => {
                    // The test guests run with their MMU off: the IPA is the VA.
                    v.vcpu
                        .inject_data_abort(addr, data.is_some())
                        .map_err(|_| "inject_data_abort")?;
                    return Ok(None);
                }
                Some(AbortPolicy::Fail) => {
                    error!("VM {}: access to unbacked IPA {:#x}", vm.name(), addr);
                    return Err("access to an address no device serves");
                }
                None => {}
            }
        }
        if data.is_none() {
            v.vcpu
                .complete_mmio_read(val)
                .map_err(|_| "complete_mmio_read")?;
        }
        if deliver {
            self.deliver_out(v);
        }
        Ok(None)
    }

    /// The refhv hypercalls (docs/test-protocol.md); anything else NOT_SUPPORTED.
    fn hypercall(
        &mut self,
        v: &mut VCpu,
        imm: u16,
        args: &[u64; 7],
    ) -> Result<Option<Stop>, &'static str> {
        let vs = v.vm;
        let vm = vs.vm;
        if imm != 0 {
            // Not an SMCCC call: nothing here answers it.
            v.vcpu.set_return_value(u64::MAX);
            return Ok(None);
        }
        match args[0] {
            hvc::NULL => v.vcpu.set_return_value(0),
            hvc::TEST_CALL => {
                let (r, serror, irq) = {
                    let mut s = vm.state.lock();
                    let st = &mut *s;
                    let Some(sc) = st.scenario.as_mut() else {
                        drop(s);
                        v.vcpu.set_return_value(u64::MAX);
                        return Ok(None);
                    };
                    let info = vm_info(vs, &st.dev);
                    let r = sc.test_call(v.index, args, &info)?;
                    (
                        r,
                        sc.serror_after_test_call(v.index),
                        sc.irq_after_test_call(v.index),
                    )
                };
                v.vcpu.set_return_value(r);
                if let Some(esr) = serror {
                    v.vcpu.inject_serror(esr).map_err(|_| "inject_serror")?;
                }
                if let Some(vi) = irq {
                    v.vcpu
                        .inject_interrupt(vi)
                        .map_err(|_| "inject_interrupt")?;
                }
            }
            hvc::PUTC => vm.state.lock().dev.putc(args[1] as u8),
            hvc::YIELD => {
                // YIELD returns 0 when this vCPU runs again.
                v.vcpu.set_return_value(0);
                return Ok(Some(Stop::Yielded));
            }
            hvc::EXIT => {
                if args[1] != 0 {
                    error!(
                        "VM {}: the guest reports {} failed checks",
                        vm.name(),
                        args[1]
                    );
                }
                let verdict = {
                    let mut s = vm.state.lock();
                    let st = &mut *s;
                    match st.scenario.as_mut() {
                        Some(sc) => {
                            let info = vm_info(vs, &st.dev);
                            sc.finish(args[1], &info)
                        }
                        None if args[1] == 0 => Ok(()),
                        None => Err("the guest reports failed checks"),
                    }
                };
                self.end_vm(vs, verdict);
                return Ok(Some(Stop::VmEnded));
            }
            // Unknown function IDs: SMCCC NOT_SUPPORTED (-1).
            _ => v.vcpu.set_return_value(u64::MAX),
        }
        Ok(None)
    }

    /// The host side of PSCI for `v`'s VM.
    #[inline(never)]
    fn psci(
        &mut self,
        v: &mut VCpu,
        request: PsciRequest,
        conduit: Conduit,
    ) -> Result<Option<Stop>, &'static str> {
        let vs = v.vm;
        let vm = vs.vm;
        if vm.kind == devices::Kind::Test {
            if let Some(sc) = vm.state.lock().scenario.as_mut() {
                sc.psci_request(v.index, &request, conduit);
            }
        }
        let result = match request {
            PsciRequest::CpuOn {
                target_mpidr,
                entry,
                context_id,
            } => self.cpu_on(vs, target_mpidr, entry, context_id),
            PsciRequest::AffinityInfo { target_mpidr } => match vm.vcpu_of(target_mpidr) {
                Some(t) => i32::from(vs.vcpus[t].power.load(Ordering::Acquire)),
                None => ret::INVALID_PARAMETERS,
            },
            // The vCPU does not run again until a CPU_ON (power_on resets it); the
            // call does not return.
            PsciRequest::CpuOff => return Ok(Some(Stop::Off)),
            PsciRequest::CpuSuspend { .. } => {
                // Standby: like WFI.
                v.vcpu
                    .complete_psci(ret::SUCCESS)
                    .map_err(|_| "complete_psci")?;
                return Ok(Some(if vm.wfi_yields {
                    Stop::Yielded
                } else {
                    Stop::Blocked { deadline: None }
                }));
            }
            PsciRequest::SystemOff => {
                info!("VM {}: vCPU {}: PSCI SYSTEM_OFF", vm.name(), v.index);
                let verdict = {
                    let mut s = vm.state.lock();
                    let st = &mut *s;
                    match st.scenario.as_mut() {
                        Some(sc) => sc.system_off(&vm_info(vs, &st.dev)),
                        None => Ok(()),
                    }
                };
                self.end_vm(vs, verdict);
                return Ok(Some(Stop::VmEnded));
            }
            PsciRequest::SystemReset => {
                info!("VM {}: vCPU {}: PSCI SYSTEM_RESET", vm.name(), v.index);
                let r = match vm.state.lock().scenario.as_mut() {
                    Some(sc) => sc.system_reset(),
                    // An OS's reset ends it (the reference hypervisor does not reload
                    // kernels), as a pass.
                    None => Ok(false),
                };
                match r {
                    Ok(true) => return Ok(Some(Stop::Reset)),
                    Ok(false) => self.end_vm(vs, Ok(())),
                    Err(why) => self.end_vm(vs, Err(why)),
                }
                return Ok(Some(Stop::VmEnded));
            }
        };
        v.vcpu.complete_psci(result).map_err(|_| "complete_psci")?;
        Ok(None)
    }

    /// PSCI CPU_ON of MPIDR `target` in `vs`'s VM: INVALID_PARAMETERS for a vCPU it
    /// does not have, INVALID_ADDRESS for an entry outside its RAM, ALREADY_ON /
    /// ON_PENDING; otherwise the vCPU starts at `entry` with x0 = `ctx`, placed by the
    /// policy.
    fn cpu_on(&mut self, vs: &'static VmSched, target: u64, entry: u64, ctx: u64) -> i32 {
        let vm = vs.vm;
        let Some(t) = vm.vcpu_of(target) else {
            return ret::INVALID_PARAMETERS;
        };
        if !vm.in_ram(entry) {
            return ret::INVALID_ADDRESS;
        }
        match Power::from(vs.vcpus[t].power.load(Ordering::Acquire)) {
            Power::On => return ret::ALREADY_ON,
            Power::OnPending => return ret::ON_PENDING,
            Power::Off => {}
        }
        match self.start_vcpu(vs, t, Some((entry, ctx))) {
            Ok(()) => ret::SUCCESS,
            // Another CPU_ON got there first, or it is still on its way to parking.
            Err(_) => match Power::from(vs.vcpus[t].power.load(Ordering::Acquire)) {
                Power::OnPending => ret::ON_PENDING,
                Power::On => ret::ALREADY_ON,
                Power::Off => ret::INTERNAL_FAILURE,
            },
        }
    }

    /// A trapped WFI. A VM whose WFI yields gives the core up; otherwise the vCPU
    /// blocks — unbound, if another vCPU waits for the core; bound, with the core
    /// asleep, if none does (its own timers stay live in the hardware and wake it).
    #[inline(never)]
    fn wfi(&mut self, v: &mut VCpu) -> Option<Stop> {
        let vm = v.vm.vm;
        if vm.wfi_yields {
            return Some(Stop::Yielded);
        }
        if drain_mail(v) {
            return None;
        }
        self.console_idle(v.vm);
        if !self.queue.is_empty() {
            return Some(Stop::Blocked { deadline: None });
        }
        let st = &v.sh.stats;
        st.blocks.bump();
        self.program_timer();
        if self.sh.flags.load(Ordering::Acquire) == 0 {
            // A trapped WFI means the guest had no pending virtual interrupt; anything
            // raised since is a pending physical interrupt, which ends the WFI and
            // makes the next entry exit at once to deliver it.
            // SAFETY: DSB and WFI only wait; no state of the host changes.
            unsafe { core::arch::asm!("dsb sy", "wfi", options(nostack, preserves_flags)) };
        }
        st.wakeups.bump();
        None
    }

    /// A physical interrupt taken while `v` ran: acknowledged here. The EL1 timers'
    /// PPIs get only a priority drop and are delivered linked to the physical ones;
    /// the host's own are ended.
    #[inline(never)]
    fn host_irq(&mut self, v: &mut VCpu) -> Option<Stop> {
        let intid = gic::ack();
        if intid >= 1020 {
            return None;
        }
        gic::eoi(intid);
        let vm = v.vm.vm;
        if timer_index(intid).is_some() && vm.links_timers {
            {
                let mut s = vm.state.lock();
                s.dev.timer_fired(v.index, intid);
                s.dev.deliveries(v.index, &mut self.out);
            }
            self.deliver_out(v);
            return None;
        }
        gic::deactivate(intid);
        match intid {
            HYP_TIMER_INTID => self.on_timer(Some(v)),
            KICK_SGI => self.service(Some(v)),
            i if Some(i) == crate::platform::board().uart.intid => {
                self.console_input_for(Some(v));
                None
            }
            _ => None,
        }
    }

    /// `vs`'s guest went idle: a partial console line that has waited long enough is
    /// printed, a younger one when it has (the EL2 timer comes back for it).
    fn console_idle(&mut self, vs: &'static VmSched) {
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

    /// The real UART has input: to the VM that owns it (from the idle loop).
    fn console_input(&mut self) {
        self.console_input_for(None)
    }

    fn console_input_for(&mut self, cur: Option<&mut VCpu>) {
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
    fn deliver_out(&mut self, v: &mut VCpu) {
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
    fn deliver_elsewhere(&mut self, vs: &'static VmSched, inj: Injection) {
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

/// What a scenario learns about its VM.
fn vm_info<'a>(vs: &'a VmSched, dev: &'a devices::Devices) -> VmInfo<'a> {
    VmInfo { dev, sched: vs }
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
