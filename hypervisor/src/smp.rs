//! A VM with one vCPU per physical core (two of each). The boot core starts the second
//! core through PSCI CPU_ON to QEMU's firmware (SMC from EL2); the guest's own PSCI
//! CPU_ON then starts its vCPU 1 there. vCPU `i` only ever runs on core `i`.
//!
//! Used by the `smp` test scenario and by Linux in interrupt-passthrough mode.

use arm_vcpu::smccc::ret;
use arm_vcpu::{
    Aarch64VCpu, Aarch64VCpuCreateConfig, Aarch64VCpuSetupConfig, PsciRequest, Stage2Config, VmExit,
};
use log::{error, info};
use spin::Mutex;

use crate::devices::{self, CONSOLE_IPA};
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
    /// vCPUs the guest may use (1 or 2): CPU_ON and AFFINITY_INFO of MPIDR >= this
    /// get INVALID_PARAMETERS.
    pub vcpus: u64,
}

/// What the two cores share (behind one lock).
struct Shared {
    power: [Power; 2],
    /// vCPUs that exist for the guest (`TwoCoreVm::vcpus`).
    vcpus: u64,
    /// Entry point and context ID of a pending CPU_ON of vCPU 1.
    start: Option<(u64, u64)>,
    /// vCPU 1, parked here while it is off.
    vcpu1: Option<Aarch64VCpu>,
    /// Physical core (MPIDR affinity) each vCPU last ran on.
    ran_on: [Option<u64>; 2],
    /// [start, end) of guest RAM (IPA), for CPU_ON entry checks.
    ram: (u64, u64),
    kind: GuestKind,
    /// Exit counts of vCPU 1 (added to vCPU 0's at the end).
    stats1: ExitStats,
    /// The emulated console of an OS guest.
    uart: Pl011,
    /// The level last written to the distributor for the UART's interrupt.
    uart_irq: bool,
    /// The real UART feeding `uart`.
    input: crate::console::HostInput,
}

/// The emulated console's SPI (PL011 on QEMU virt: SPI 1).
const UART_INTID: u32 = 33;

static SHARED: Mutex<Option<Shared>> = Mutex::new(None);

type Verdict = Result<(), &'static str>;

/// PSCI CPU_ON function ID (SMC64) for QEMU's firmware.
const PSCI_CPU_ON_64: u64 = 0xC400_0003;

extern "C" {
    fn secondary_start();
}

/// The `smp` test scenario: the test guest in the staging area, on two cores.
pub fn run_smp(iters: u64) -> (Verdict, ExitStats) {
    let built = (|| {
        let mem: &'static GuestMemory = alloc::boxed::Box::leak(alloc::boxed::Box::new(
            GuestMemory::new().map_err(|_| "stage-2 mapping failed")?,
        ));
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
        })
    })();
    match built {
        Ok(vm) => run_two_cores(vm),
        Err(e) => (Err(e), ExitStats::default()),
    }
}

/// Core 0: starts core 1 and runs vCPU 0 until the guest's end.
pub fn run_two_cores(vm: TwoCoreVm) -> (Verdict, ExitStats) {
    let mut stats = ExitStats::default();
    let v = run(vm, &mut stats);
    if let Some(s1) = with_shared(|s| s.stats1) {
        stats.add(&s1);
    }
    (v, stats)
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
    // The VM's virtual count starts near 0; both vCPUs share the offset.
    let cntvoff_el2 = arm_vcpu::physical_count();
    let make = |i: u64| -> Result<Aarch64VCpu, arm_vcpu::VCpuError> {
        let mut v = Aarch64VCpu::new(
            Aarch64VCpuCreateConfig::default()
                .with_mpidr_el1(i)
                .with_cntvoff_el2(cntvoff_el2)
                .with_dtb_addr(vm.x0),
        )?;
        v.setup(vm.setup)?;
        v.set_stage2_root(stage2)?;
        v.set_entry(vm.entry)?;
        Ok(v)
    };
    let mut vcpu0 = make(0).map_err(|_| "vcpu 0")?;
    let vcpu1 = make(1).map_err(|_| "vcpu 1")?;
    vcpu0.set_gpr(1, vm.x1).map_err(|_| "x1")?;
    *SHARED.lock() = Some(Shared {
        power: [Power::On, Power::Off],
        vcpus: vm.vcpus,
        start: None,
        vcpu1: Some(vcpu1),
        ran_on: [None, None],
        ram: vm.mem.ram_range(),
        kind: vm.kind,
        stats1: ExitStats::default(),
        uart: Pl011::default(),
        uart_irq: false,
        input: Default::default(),
    });

    // Start physical core 1 (QEMU's PSCI firmware, SMC conduit).
    let r = start_core(1);
    if r != 0 {
        error!("PSCI CPU_ON of core 1 returned {}", r as i64);
        return Err("cannot start the second physical core (run QEMU with -smp 2)");
    }
    vcpu0.bind(&mut percpu).map_err(|_| "bind")?;
    with_shared(|s| s.ran_on[0] = Some(current_mpidr()));
    let verdict = loop {
        match step(0, vm.kind, &mut vcpu0, stats) {
            Step::Continue => {}
            Step::Off => break Err("vCPU 0 turned itself off"),
            Step::Exit(failures) => {
                let ran_on = with_shared(|s| s.ran_on).unwrap_or([None, None]);
                info!(
                    "vCPU 0 ran on core {:?}, vCPU 1 on core {:?}",
                    ran_on[0], ran_on[1]
                );
                break if failures != 0 {
                    Err("guest checks failed")
                } else if vm.kind == GuestKind::TestGuest && ran_on[1] != Some(1) {
                    Err("vCPU 1 did not run on physical core 1")
                } else {
                    Ok(())
                };
            }
            Step::Fail(why) => break Err(why),
        }
    };
    vcpu0.unbind(&mut percpu).map_err(|_| "unbind")?;
    verdict
}

/// Core `index` (≥ 1), entered from `secondary_start`: waits for its vCPU to be
/// powered on, runs it until CPU_OFF, and waits again.
pub fn secondary(index: u64) -> ! {
    let mut percpu = crate::firmware::percpu(index as usize);
    if percpu.hardware_enable().is_err() {
        error!("core {}: hardware_enable failed", index);
        park();
    }
    info!("core {} online (MPIDR {:#x})", index, current_mpidr());
    loop {
        // Wait for a CPU_ON of vCPU 1.
        let (mut vcpu, entry, ctx, kind) = loop {
            let got = with_shared(|s| match (s.power[1], s.start) {
                (Power::OnPending, Some((e, c))) => s.vcpu1.take().map(|v| (v, e, c, s.kind)),
                _ => None,
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
            s.power[1] = Power::On;
            s.start = None;
            s.ran_on[1] = Some(current_mpidr());
        });
        if !ok {
            error!("core {}: cannot start vCPU 1", index);
            park();
        }
        let mut stats = ExitStats::default();
        loop {
            match step(1, kind, &mut vcpu, &mut stats) {
                Step::Continue => {}
                Step::Off => break,
                Step::Exit(_) | Step::Fail(_) => {
                    error!("vCPU 1 stopped unexpectedly");
                    park();
                }
            }
        }
        if vcpu.unbind(&mut percpu).is_err() {
            park();
        }
        with_shared(|s| {
            s.vcpu1 = Some(vcpu);
            s.power[1] = Power::Off;
            s.stats1.add(&stats);
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
        // Every exit polls the real UART for input (the guest reading the console is one).
        uart_poll();
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
                    // This runner starts only vCPU 1 (on core 1); core 0 does not bring
                    // vCPU 0 back after its CPU_OFF.
                    if target_mpidr == 0 && s.power[0] == Power::Off {
                        return ret::INVALID_PARAMETERS;
                    }
                    let in_ram = (s.ram.0..s.ram.1).contains(&entry);
                    match vplatform::psci_cpu_on(&s.power, s.vcpus, target_mpidr, in_ram) {
                        Ok(t) => {
                            s.start = Some((entry, context_id));
                            s.power[t] = Power::OnPending;
                            ret::SUCCESS
                        }
                        Err(e) => e,
                    }
                })
                .unwrap_or(ret::INTERNAL_FAILURE),
                PsciRequest::AffinityInfo { target_mpidr } => {
                    with_shared(|s| vplatform::psci_affinity_info(&s.power, s.vcpus, target_mpidr))
                        .unwrap_or(ret::INTERNAL_FAILURE)
                }
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

/// Moves bytes waiting on the real UART into the emulated one (`HostInput`: its
/// receive interrupt wakes a vCPU idling in an untrapped WFI).
fn uart_poll() {
    let got = with_shared(|s| s.input.pull(&mut s.uart));
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
        crate::gic::set_spi_pending(UART_INTID, level);
    }
}

fn with_shared<R>(f: impl FnOnce(&mut Shared) -> R) -> Option<R> {
    SHARED.lock().as_mut().map(f)
}

fn current_mpidr() -> u64 {
    let v: u64;
    // SAFETY: reading MPIDR_EL1 at EL2 gives this core's affinity; no side effects.
    unsafe {
        core::arch::asm!("mrs {0}, mpidr_el1", out(reg) v, options(nomem, nostack, preserves_flags))
    };
    v & 0xff_00ff_ffff
}

/// Starts physical core `index` at `secondary_start` (it then calls `secondary_main`).
/// Returns the firmware's PSCI result.
pub fn start_core(index: u64) -> u64 {
    firmware_cpu_on(index, secondary_start as *const () as usize as u64, index)
}

/// PSCI CPU_ON through QEMU's firmware: starts core `mpidr` at `entry` (EL2) with x0 =
/// `context`. Returns the PSCI result.
fn firmware_cpu_on(mpidr: u64, entry: u64, context: u64) -> u64 {
    let r: u64;
    // SAFETY: an SMC to the platform's PSCI firmware; it starts another core at our
    // entry point and changes nothing else of this core's state but x0..x3.
    unsafe {
        core::arch::asm!(
            "smc #0",
            inout("x0") PSCI_CPU_ON_64 => r,
            inout("x1") mpidr => _,
            inout("x2") entry => _,
            inout("x3") context => _,
            options(nostack),
        );
    }
    r
}

fn park() -> ! {
    loop {
        core::hint::spin_loop();
    }
}
