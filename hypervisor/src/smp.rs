//! A VM with one vCPU per physical core (as many vCPUs as the VM has, each on the core
//! of its index; the board's device tree says how many cores there are). The boot
//! core starts the others through PSCI CPU_ON to the firmware (`platform::firmware`);
//! the guest's own PSCI CPU_ON then starts its vCPU `i` on core `i`, and it only ever
//! runs there. Any vCPU's end (SYSTEM_OFF, EXIT, a failure) ends the run from its core.
//!
//! Used by the `smp` test scenario and by Linux in interrupt-passthrough mode.

use arm_vcpu::smccc::ret;
use arm_vcpu::{
    Aarch64VCpu, Aarch64VCpuCreateConfig, Aarch64VCpuSetupConfig, PsciRequest, Stage2Config, VmExit,
};
use log::{error, info};
use spin::Mutex;

use alloc::vec;
use alloc::vec::Vec;

use crate::devices::{self, CONSOLE_IPA};
use crate::gic::TrappedRdPages;
use crate::loader;
use crate::memory::{self, GuestMemory};
use crate::pl011::Pl011;
use crate::vm::{hvc, ExitStats};
use crate::vplatform::{self, Power};

/// What runs in the VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestKind {
    /// One of our test guests: the test protocol's hypercalls, the emulated console,
    /// the run ends with EXIT.
    TestGuest,
    /// An operating system: the run ends with PSCI SYSTEM_OFF (or SYSTEM_RESET);
    /// unknown MMIO reads as zero and ignores writes.
    Os,
}

/// A VM to run on two cores.
pub struct TwoCoreVm {
    /// Its memory (lives for the whole run).
    pub mem: &'static GuestMemory,
    /// vCPU 0's entry point.
    pub entry: u64,
    /// x0 at entry (the DTB IPA), x1 at entry.
    pub x0: u64,
    pub x1: u64,
    /// The vCPUs' setup.
    pub setup: Aarch64VCpuSetupConfig,
    pub kind: GuestKind,
    /// vCPUs of the VM, one per core: vCPU i on core i. CPU_ON and AFFINITY_INFO of
    /// an MPIDR that is none of theirs get INVALID_PARAMETERS.
    pub vcpus: u64,
    /// Redistributor RD pages of a passthrough GIC the guest reaches through exits
    /// (`GICR_TYPER.Last` emulated; see `TrappedRdPages`).
    pub rd_pages: TrappedRdPages,
}

/// What the cores share (behind one lock). Vectors have one entry per vCPU.
struct Shared {
    power: Vec<Power>,
    /// vCPU i's MPIDR_EL1 (what the guest's PSCI calls name).
    mpidrs: Vec<u64>,
    /// Entry point and context ID of a pending CPU_ON of each vCPU.
    start: Vec<Option<(u64, u64)>>,
    /// vCPUs 1.., parked here while they are off.
    parked: Vec<Option<Aarch64VCpu>>,
    /// Physical core (MPIDR affinity) each vCPU last ran on.
    ran_on: Vec<Option<u64>>,
    /// [start, end) of guest RAM (IPA), for CPU_ON entry checks.
    ram: (u64, u64),
    kind: GuestKind,
    /// Exit counts of each vCPU, as of its latest exit.
    stats: Vec<ExitStats>,
    /// The emulated console of an OS guest.
    uart: Pl011,
    /// The level last written to the distributor for the UART's interrupt.
    uart_irq: bool,
    /// The real UART feeding `uart`.
    input: crate::console::HostInput,
    rd_pages: TrappedRdPages,
}

/// The emulated console's interrupt: the real UART's (the device tree's), whose
/// receive interrupt the guest then takes for the emulated one (see `uart_poll`).
fn uart_intid() -> u32 {
    crate::platform::board().uart.intid.unwrap_or(33)
}

static SHARED: Mutex<Option<Shared>> = Mutex::new(None);

type Verdict = Result<(), &'static str>;

/// The `smp` test scenario: the test guest in the staging area, on two cores.
pub fn run_smp(iters: u64) -> (Verdict, ExitStats) {
    let built = (|| {
        let mem: &'static GuestMemory =
            alloc::boxed::Box::leak(alloc::boxed::Box::new(GuestMemory::new()?));
        let entry =
            loader::load_elf(loader::staging(), mem).map_err(|_| "cannot load the guest image")?;
        Ok(TwoCoreVm {
            mem,
            entry,
            x0: 0,
            x1: iters,
            setup: Aarch64VCpuSetupConfig::default(),
            kind: GuestKind::TestGuest,
            vcpus: 2,
            rd_pages: TrappedRdPages::default(),
        })
    })();
    match built {
        Ok(vm) => run_two_cores(vm),
        Err(e) => (Err(e), ExitStats::default()),
    }
}

/// Core 0: starts the other cores and runs vCPU 0 until the guest's end.
pub fn run_two_cores(vm: TwoCoreVm) -> (Verdict, ExitStats) {
    let mut stats = ExitStats::default();
    let v = run(vm, &mut stats);
    (v, total_stats(Some(stats)))
}

/// Every vCPU's exit counts added up (`mine`: the caller's own, newer than its entry).
fn total_stats(mine: Option<ExitStats>) -> ExitStats {
    let me = crate::platform::current_cpu().unwrap_or(0);
    let mut t = ExitStats::default();
    with_shared(|s| {
        for (i, st) in s.stats.iter().enumerate() {
            if i != me || mine.is_none() {
                t.add(st);
            }
        }
    });
    if let Some(m) = mine {
        t.add(&m);
    }
    t
}

fn run(vm: TwoCoreVm, stats: &mut ExitStats) -> Verdict {
    if !arm_vcpu::has_hardware_support() {
        return Err("no EL2 virtualization support");
    }
    let mut percpu = crate::firmware::percpu(0);
    percpu
        .hardware_enable()
        .map_err(|_| "hardware_enable failed")?;
    let stage2 = Stage2Config::new(vm.mem.root_pa(), 1, memory::IPA_BITS, memory::ROOT_LEVEL);
    let n = vm.vcpus as usize;
    let cores = crate::platform::cpu_count();
    if n == 0 || n > cores {
        error!(
            "the VM has {} vCPUs, one per core, but the board has {} cores",
            n, cores
        );
        return Err("more vCPUs than the board has cores (QEMU -smp)");
    }
    // An OS on the physical GIC finds its redistributor by its MPIDR: vCPU i has core
    // i's. Test guests see 0, 1, ... (the protocol).
    let mpidrs: Vec<u64> = (0..n)
        .map(|i| match vm.kind {
            GuestKind::Os => crate::platform::cpu_mpidr(i).unwrap_or(i as u64),
            GuestKind::TestGuest => i as u64,
        })
        .collect();
    // The VM's virtual count starts near 0; all vCPUs share the offset.
    let cntvoff_el2 = arm_vcpu::physical_count();
    let make = |i: usize| -> Result<Aarch64VCpu, arm_vcpu::VCpuError> {
        let mut v = Aarch64VCpu::new(
            Aarch64VCpuCreateConfig::default()
                .with_mpidr_el1(mpidrs[i])
                .with_cntvoff_el2(cntvoff_el2)
                .with_dtb_addr(vm.x0),
        )?;
        v.setup(vm.setup)?;
        v.set_stage2_root(stage2)?;
        v.set_entry(vm.entry)?;
        Ok(v)
    };
    let mut vcpu0 = make(0).map_err(|_| "vcpu 0")?;
    let mut parked = vec![None];
    for i in 1..n {
        parked.push(Some(make(i).map_err(|_| "vcpu create")?));
    }
    vcpu0.set_gpr(1, vm.x1).map_err(|_| "x1")?;
    let mut power = vec![Power::Off; n];
    power[0] = Power::On;
    *SHARED.lock() = Some(Shared {
        power,
        mpidrs,
        start: vec![None; n],
        parked,
        ran_on: vec![None; n],
        ram: vm.mem.ram_range(),
        kind: vm.kind,
        stats: vec![ExitStats::default(); n],
        uart: Pl011::default(),
        uart_irq: false,
        input: Default::default(),
        rd_pages: vm.rd_pages,
    });

    // Start the other cores (the firmware's PSCI).
    for core in 1..n {
        let r = start_core(core as u64);
        if r != 0 {
            error!("PSCI CPU_ON of core {} returned {}", core, r as i64);
            return Err("cannot start another physical core");
        }
    }
    vcpu0.bind(&mut percpu).map_err(|_| "bind")?;
    with_shared(|s| s.ran_on[0] = Some(current_mpidr()));
    let verdict = loop {
        match step(0, vm.kind, &mut vcpu0, stats) {
            Step::Continue => {}
            Step::Off => break Err("vCPU 0 turned itself off"),
            Step::Exit(failures) => break exit_verdict(failures),
            Step::Fail(why) => break Err(why),
        }
    };
    vcpu0.unbind(&mut percpu).map_err(|_| "unbind")?;
    verdict
}

/// The verdict of a guest that ended with `failures` failed checks (0 for an OS's
/// SYSTEM_OFF); for a test guest, each vCPU must have run on the core of its index.
fn exit_verdict(failures: u64) -> Verdict {
    let (ran_on, kind) =
        with_shared(|s| (s.ran_on.clone(), s.kind)).unwrap_or((Vec::new(), GuestKind::Os));
    info!("vCPU i ran on core: {:?}", ran_on);
    if failures != 0 {
        Err("guest checks failed")
    } else if kind == GuestKind::TestGuest
        && ran_on.get(1).copied().flatten() != crate::platform::cpu_mpidr(1)
    {
        Err("vCPU 1 did not run on physical core 1")
    } else {
        Ok(())
    }
}

/// Core `index` (≥ 1), entered from `secondary_start`: waits for its vCPU to be
/// powered on, runs it until CPU_OFF, and waits again. Its vCPU's end of the guest
/// (SYSTEM_OFF, EXIT) or failure ends the run from here.
pub fn secondary(index: u64) -> ! {
    let me = index as usize;
    let mut percpu = crate::firmware::percpu(me);
    if percpu.hardware_enable().is_err() {
        error!("core {}: hardware_enable failed", index);
        crate::end_run(
            Err("hardware_enable failed on a secondary core"),
            &total_stats(None),
        );
    }
    info!("core {} online (MPIDR {:#x})", index, current_mpidr());
    loop {
        // Wait for a CPU_ON of this core's vCPU.
        let (mut vcpu, entry, ctx, kind) = loop {
            let got = with_shared(|s| {
                match (s.power.get(me).copied(), s.start.get(me).copied().flatten()) {
                    (Some(Power::OnPending), Some((e, c))) => s
                        .parked
                        .get_mut(me)
                        .and_then(Option::take)
                        .map(|v| (v, e, c, s.kind)),
                    _ => None,
                }
            })
            .flatten();
            match got {
                Some(x) => break x,
                None => core::hint::spin_loop(),
            }
        };
        let ok = vcpu
            .power_on(entry, ctx)
            .map(|released| released.iter().for_each(crate::gic::deactivate))
            .is_ok()
            && vcpu.bind(&mut percpu).is_ok();
        with_shared(|s| {
            s.power[me] = Power::On;
            s.start[me] = None;
            s.ran_on[me] = Some(current_mpidr());
        });
        if !ok {
            error!("core {}: cannot start vCPU {}", index, index);
            crate::end_run(Err("cannot start a vCPU"), &total_stats(None));
        }
        let mut stats = with_shared(|s| s.stats[me]).unwrap_or_default();
        loop {
            match step(me, kind, &mut vcpu, &mut stats) {
                Step::Continue => {}
                Step::Off => break,
                Step::Exit(failures) => {
                    // The guest ended on this core: the run ends here, whatever the
                    // other cores are doing (a passthrough vCPU 0 may never exit).
                    with_shared(|s| s.stats[me] = stats);
                    info!("vCPU {}: the guest ended on core {}", me, index);
                    crate::end_run(exit_verdict(failures), &total_stats(None));
                }
                Step::Fail(why) => {
                    with_shared(|s| s.stats[me] = stats);
                    error!("vCPU {}: {}", me, why);
                    crate::end_run(Err(why), &total_stats(None));
                }
            }
        }
        if vcpu.unbind(&mut percpu).is_err() {
            crate::end_run(Err("unbind failed"), &total_stats(None));
        }
        with_shared(|s| {
            s.parked[me] = Some(vcpu);
            s.power[me] = Power::Off;
            s.stats[me] = stats;
        });
    }
}

enum Step {
    Continue,
    /// The vCPU called CPU_OFF.
    Off,
    /// The guest ended: EXIT(failures), or SYSTEM_OFF (0) for an OS.
    Exit(u64),
    Fail(&'static str),
}

/// Runs `vcpu` (number `me`) to its next exit and handles it.
fn step(me: usize, kind: GuestKind, vcpu: &mut Aarch64VCpu, stats: &mut ExitStats) -> Step {
    let console = CONSOLE_IPA..CONSOLE_IPA + 0x1000;
    let exit = vcpu.run();
    if kind == GuestKind::Os {
        // Every exit polls the real UART for input (the guest reading the console is
        // one), and leaves this vCPU's counts where another core ending the run finds
        // them.
        uart_poll(me, stats);
    }
    match exit {
        Ok(VmExit::MmioRead { addr, .. }) if kind == GuestKind::Os && console.contains(&addr) => {
            stats.mmio_read += 1;
            stats.console += 1;
            let v = with_shared(|s| s.uart.read(addr - CONSOLE_IPA)).unwrap_or(0);
            uart_update_irq();
            match vcpu.complete_mmio_read(v as u64) {
                Ok(()) => Step::Continue,
                Err(_) => Step::Fail("complete_mmio_read"),
            }
        }
        Ok(VmExit::MmioWrite { addr, data, .. })
            if kind == GuestKind::Os && console.contains(&addr) =>
        {
            stats.mmio_write += 1;
            stats.console += 1;
            if let Some(Some(b)) = with_shared(|s| s.uart.write(addr - CONSOLE_IPA, data as u32)) {
                crate::console::putc(b);
            }
            uart_update_irq();
            Step::Continue
        }
        // After the console's arms: the trapped redistributor pages are rare (boot,
        // CPU bring-up); the console is most of the exits.
        Ok(VmExit::MmioRead { addr, width, .. })
            if kind == GuestKind::Os
                && with_shared(|s| s.rd_pages.contains(addr)) == Some(true) =>
        {
            stats.mmio_read += 1;
            let v = with_shared(|s| s.rd_pages.read(addr, width.bytes())).unwrap_or(0);
            match vcpu.complete_mmio_read(v) {
                Ok(()) => Step::Continue,
                Err(_) => Step::Fail("complete_mmio_read"),
            }
        }
        Ok(VmExit::MmioWrite { addr, width, data })
            if kind == GuestKind::Os
                && with_shared(|s| s.rd_pages.contains(addr)) == Some(true) =>
        {
            stats.mmio_write += 1;
            with_shared(|s| s.rd_pages.write(addr, width.bytes(), data));
            Step::Continue
        }
        Ok(VmExit::Hypercall { imm: 0, ref args }) if kind == GuestKind::TestGuest => {
            stats.hypercall += 1;
            match args[0] {
                hvc::NULL => vcpu.set_return_value(0),
                hvc::PUTC => crate::console::putc(args[1] as u8),
                hvc::EXIT => return Step::Exit(args[1]),
                _ => vcpu.set_return_value(u64::MAX),
            }
            Step::Continue
        }
        Ok(VmExit::Hypercall { .. }) => {
            // Not a call the crate answers (PSCI/SMCCC): NOT_SUPPORTED.
            stats.hypercall += 1;
            vcpu.set_return_value(u64::MAX);
            Step::Continue
        }
        Ok(VmExit::MmioRead { addr, .. }) => {
            stats.mmio_read += 1;
            if kind == GuestKind::TestGuest && !console.contains(&addr) {
                error!("vCPU {}: read of unbacked IPA {:#x}", me, addr);
                return Step::Fail("access to an address no device serves");
            }
            // The console's FR (TX never full); for an OS, unknown MMIO reads as zero.
            match vcpu.complete_mmio_read(0) {
                Ok(()) => Step::Continue,
                Err(_) => Step::Fail("complete_mmio_read"),
            }
        }
        Ok(VmExit::MmioWrite { addr, data, .. }) => {
            stats.mmio_write += 1;
            if console.contains(&addr) {
                devices::console_write(addr - CONSOLE_IPA, data);
            } else if kind == GuestKind::TestGuest {
                error!("vCPU {}: write to unbacked IPA {:#x}", me, addr);
                return Step::Fail("access to an address no device serves");
            }
            Step::Continue
        }
        Ok(VmExit::DataAbort { va, write, .. }) if kind == GuestKind::Os => {
            stats.abort += 1;
            match vcpu.inject_data_abort(va, write) {
                Ok(()) => Step::Continue,
                Err(_) => Step::Fail("inject_data_abort"),
            }
        }
        Ok(VmExit::InstructionAbort { va, .. }) if kind == GuestKind::Os => {
            stats.abort += 1;
            match vcpu.inject_instruction_abort(va) {
                Ok(()) => Step::Continue,
                Err(_) => Step::Fail("inject_instruction_abort"),
            }
        }
        Ok(VmExit::WaitForInterrupt | VmExit::WaitForEvent) => {
            stats.wfx += 1;
            Step::Continue
        }
        Ok(VmExit::Psci { request, .. }) => {
            stats.psci += 1;
            let result = match request {
                PsciRequest::CpuOff => {
                    with_shared(|s| s.power[me] = Power::Off);
                    return Step::Off;
                }
                PsciRequest::CpuOn {
                    target_mpidr,
                    entry,
                    context_id,
                } => with_shared(|s| {
                    let t = vcpu_index(&s.mpidrs, target_mpidr);
                    // vCPU 0's core does not bring it back after its CPU_OFF.
                    if t == 0 && s.power[0] == Power::Off {
                        return ret::INVALID_PARAMETERS;
                    }
                    let in_ram = (s.ram.0..s.ram.1).contains(&entry);
                    match vplatform::psci_cpu_on(&s.power, s.power.len() as u64, t, in_ram) {
                        Ok(t) => {
                            s.start[t] = Some((entry, context_id));
                            s.power[t] = Power::OnPending;
                            ret::SUCCESS
                        }
                        Err(e) => e,
                    }
                })
                .unwrap_or(ret::INTERNAL_FAILURE),
                PsciRequest::AffinityInfo { target_mpidr } => with_shared(|s| {
                    let t = vcpu_index(&s.mpidrs, target_mpidr);
                    vplatform::psci_affinity_info(&s.power, s.power.len() as u64, t)
                })
                .unwrap_or(ret::INTERNAL_FAILURE),
                PsciRequest::CpuSuspend { .. } => ret::SUCCESS,
                PsciRequest::SystemOff | PsciRequest::SystemReset if kind == GuestKind::Os => {
                    info!("vCPU {}: PSCI {:?}", me, request);
                    return Step::Exit(0);
                }
                PsciRequest::SystemOff | PsciRequest::SystemReset => {
                    return Step::Fail("unexpected SYSTEM_OFF/RESET")
                }
                _ => return Step::Fail("PSCI request this runner does not know"),
            };
            match vcpu.complete_psci(result) {
                Ok(()) => Step::Continue,
                Err(_) => Step::Fail("complete_psci"),
            }
        }
        Ok(other) => {
            stats.other += 1;
            error!(
                "vCPU {}: unexpected exit {:?} at pc {:#x}",
                me,
                other,
                vcpu.pc()
            );
            Step::Fail("unexpected exit")
        }
        Err(e) => {
            error!("vCPU {}: run: {}", me, e);
            Step::Fail("run() returned an error")
        }
    }
}

/// vCPU index of the vCPU with MPIDR `mpidr` (`u64::MAX`, which PSCI refuses, if none).
fn vcpu_index(mpidrs: &[u64], mpidr: u64) -> u64 {
    mpidrs
        .iter()
        .position(|&m| m == mpidr)
        .map_or(u64::MAX, |i| i as u64)
}

/// Moves bytes waiting on the real UART into the emulated one (`HostInput`: its
/// receive interrupt wakes a vCPU idling in an untrapped WFI), and stores vCPU `me`'s
/// exit counts.
fn uart_poll(me: usize, stats: &ExitStats) {
    let got = with_shared(|s| {
        if let Some(st) = s.stats.get_mut(me) {
            *st = *stats;
        }
        s.input.pull(&mut s.uart)
    });
    if got == Some(true) {
        uart_update_irq();
    }
}

/// Reflects the emulated UART's interrupt line into the physical distributor, which
/// the guest owns in passthrough mode: pending while the line is high.
fn uart_update_irq() {
    let change = with_shared(|s| {
        let level = s.uart.irq_level();
        // Re-assert while high: an acknowledge clears a software-set pending state.
        let changed = level || level != s.uart_irq;
        s.uart_irq = level;
        changed.then_some(level)
    })
    .flatten();
    if let Some(level) = change {
        crate::gic::set_spi_pending(uart_intid(), level);
    }
}

fn with_shared<R>(f: impl FnOnce(&mut Shared) -> R) -> Option<R> {
    SHARED.lock().as_mut().map(f)
}

fn current_mpidr() -> u64 {
    crate::platform::current_mpidr()
}

extern "C" {
    fn secondary_start();
}

/// Starts physical core `index` at `secondary_start` (it then calls `secondary_main`)
/// on a stack of its own, carved from the heap. Returns 0, or the firmware's PSCI
/// error code.
pub fn start_core(index: u64) -> u64 {
    let Some(mpidr) = crate::platform::cpu_mpidr(index as usize) else {
        return ret::INVALID_PARAMETERS as u64;
    };
    let stack: &'static mut [u8] =
        alloc::boxed::Box::leak(vec![0u8; crate::platform::SECONDARY_STACK].into_boxed_slice());
    let top = (stack.as_ptr() as u64 + stack.len() as u64) & !15;
    // { stack top, core index }: boot.S reads it with the MMU (and caches) off, so it
    // is cleaned to the point of coherency first.
    let block: &'static mut [u64; 2] =
        alloc::boxed::Box::leak(alloc::boxed::Box::new([top, index]));
    memory::sync_for_guest(block.as_ptr() as *const u8, 16);
    let entry = secondary_start as *const () as usize as u64;
    match crate::platform::firmware::cpu_on(mpidr, entry, block.as_ptr() as u64) {
        Ok(()) => 0,
        Err(e) => {
            error!(
                "firmware CPU_ON of core {} (MPIDR {:#x}): {:?}",
                index, mpidr, e
            );
            u64::MAX
        }
    }
}
