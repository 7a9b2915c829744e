//! Per-vCPU exit statistics, printed at each VM's end: exits by kind, time in guest
//! and in host, runs, wake-ups, migrations, preemptions, yields; the VM's device
//! accesses. Counters are written only by the core running the vCPU (a plain load and
//! store, no atomic read-modify-write on the exit path) and read by whichever core
//! reports the VM.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::devices::{Accesses, WidthCounters};
use crate::println;

/// A counter with one writer at a time.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline(always)]
    pub fn bump(&self) {
        self.0.store(self.0.load(Relaxed).wrapping_add(1), Relaxed);
    }

    #[inline(always)]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// One vCPU's statistics.
#[derive(Default)]
pub struct VcpuStats {
    /// Test-device accesses by width (`VmInfo::dev_reads`; the device's access
    /// count).
    pub testdev_reads: WidthCounters,
    pub testdev_writes: WidthCounters,
    pub hypercall: Counter,
    pub psci: Counter,
    pub mmio_read: Counter,
    pub mmio_write: Counter,
    pub sysreg: Counter,
    pub abort: Counter,
    pub wfi: Counter,
    pub wfe: Counter,
    pub irq: Counter,
    pub sgi: Counter,
    pub other: Counter,
    /// Counter ticks between entry and exit, and between exit and the next entry
    /// (or the unbind that followed it); only with `timing=1`.
    pub guest_ticks: Counter,
    pub host_ticks: Counter,
    /// Binds to a core.
    pub runs: Counter,
    /// Times it slept (blocked in WFI: unbound, or bound alone on its core).
    pub blocks: Counter,
    /// Times it woke from such a sleep (deadline, interrupt, kick).
    pub wakeups: Counter,
    /// Binds on a core other than the one it last ran on.
    pub migrations: Counter,
    /// Time slices that ended with other vCPUs waiting.
    pub preemptions: Counter,
    /// YIELD, WFE, CPU_SUSPEND, and WFI of a VM whose WFI yields.
    pub yields: Counter,
}

impl VcpuStats {
    /// (label, value) rows of the table, exits first.
    fn rows(&self) -> [(&'static str, u64); 19] {
        [
            ("hypercall (host-answered HVC)", self.hypercall.get()),
            ("PSCI request", self.psci.get()),
            ("MMIO read", self.mmio_read.get()),
            ("MMIO write", self.mmio_write.get()),
            ("system register (host-answered)", self.sysreg.get()),
            ("stage-2 abort (injected)", self.abort.get()),
            ("WFI", self.wfi.get()),
            ("WFE", self.wfe.get()),
            ("physical IRQ", self.irq.get()),
            ("SGI request", self.sgi.get()),
            ("other", self.other.get()),
            ("time in guest (us)", ticks_to_us(self.guest_ticks.get())),
            ("time in host (us)", ticks_to_us(self.host_ticks.get())),
            ("runs (binds)", self.runs.get()),
            ("sleeps (blocked in WFI)", self.blocks.get()),
            ("wake-ups", self.wakeups.get()),
            ("migrations", self.migrations.get()),
            ("preemptions (slice ended)", self.preemptions.get()),
            ("yields", self.yields.get()),
        ]
    }
}

/// Counter ticks as microseconds.
pub fn ticks_to_us(t: u64) -> u64 {
    let hz: u64;
    // SAFETY: reading CNTFRQ_EL0 (the counter's frequency) has no side effect.
    unsafe { core::arch::asm!("mrs {0}, cntfrq_el0", out(reg) hz, options(nomem, nostack)) };
    if hz == 0 {
        return 0;
    }
    ((t as u128) * 1_000_000 / hz as u128) as u64
}

/// Prints a VM's statistics: one line for tools (`exits: ExitStats { .. }`, which
/// `cargo xtask bench` reads; totals over the vCPUs), then a table for people with
/// a column per vCPU. Before the table, the physical cores each vCPU ran on (`cores`:
/// a bit per core; printed `0+1` for both), which `cargo xtask test` checks.
pub fn print_vm(name: &str, vcpus: &[&VcpuStats], cores: &[u64], dev: &Accesses, timed: bool) {
    let total = |f: fn(&VcpuStats) -> u64| vcpus.iter().map(|s| f(s)).sum::<u64>();
    println!(
        "[refhv INFO ] VM {name} exits: ExitStats {{ hypercall: {}, psci: {}, mmio_read: {}, mmio_write: {}, sysreg: {}, abort: {}, wfx: {}, irq: {}, sgi: {}, other: {}, console: {}, testdev: {}, gic: {} }}",
        total(|s| s.hypercall.get()),
        total(|s| s.psci.get()),
        total(|s| s.mmio_read.get()),
        total(|s| s.mmio_write.get()),
        total(|s| s.sysreg.get()),
        total(|s| s.abort.get()),
        total(|s| s.wfi.get() + s.wfe.get()),
        total(|s| s.irq.get()),
        total(|s| s.sgi.get()),
        total(|s| s.other.get()),
        dev.console,
        dev.testdev,
        dev.gic
    );
    let ran: alloc::vec::Vec<_> = cores.iter().map(|&m| core_list(m)).collect();
    println!(
        "[refhv INFO ] VM {name} vCPUs ran on cores: {}",
        ran.join(", ")
    );
    println!(
        "exit statistics of VM {name} (exits the host handled; traps the crate answers are not counted{})",
        if timed {
            ""
        } else {
            "; no timing: timing=0"
        }
    );
    let mut head = alloc::format!("  {:<36}", "");
    for i in 0..vcpus.len() {
        head += &alloc::format!(" {:>11}", alloc::format!("vCPU {i}"));
    }
    head += &alloc::format!(" {:>12}", "total");
    println!("{}", head);
    let tables: alloc::vec::Vec<_> = vcpus.iter().map(|s| s.rows()).collect();
    for r in 0..tables.first().map_or(0, |t| t.len()) {
        if !timed && (r == 11 || r == 12) {
            continue;
        }
        let mut line = alloc::format!("  {:<36}", tables[0][r].0);
        let mut sum = 0u64;
        for t in &tables {
            line += &alloc::format!(" {:>11}", t[r].1);
            sum += t[r].1;
        }
        line += &alloc::format!(" {:>12}", sum);
        println!("{}", line);
    }
    println!(
        "  device accesses: console {}, test device {}, GIC {}",
        dev.console, dev.testdev, dev.gic
    );
}

/// `0b101` as `0+2`; `-` for none.
fn core_list(mask: u64) -> alloc::string::String {
    let mut s = alloc::string::String::new();
    for c in (0..64).filter(|c| mask & (1 << c) != 0) {
        if !s.is_empty() {
            s.push('+');
        }
        s += &alloc::format!("{c}");
    }
    if s.is_empty() {
        s.push('-');
    }
    s
}
