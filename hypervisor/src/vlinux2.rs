//! Linux in the virtual-interrupt mode with one vCPU per physical core (two of each):
//! the emulated GIC and console are shared behind a lock; an interrupt for the vCPU of
//! the other core goes into its mailbox and a physical SGI ("kick") makes that core
//! exit its guest and inject it. Each core links its vCPU's EL1 timers to its own
//! physical PPIs 27 and 30, and wakes its own redistributor (the board's frame of that
//! core, found by `GICR_TYPER` affinity).

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU8, Ordering};

use arm_vcpu::smccc::ret;
use arm_vcpu::{Aarch64VCpu, PsciRequest, VmExit};
use log::{error, info};
use spin::Mutex;

use crate::gic;
use crate::memory::GuestMemory;
use crate::vm::ExitStats;
use crate::vplatform::{self, Injection, Platform, Power, VCpuMaker};

struct Shared {
    dev: Platform,
    power: [Power; 2],
    /// vCPUs the guest may start (1 or 2).
    vcpus: u64,
    start: Option<(u64, u64)>,
    vcpu1: Option<Aarch64VCpu>,
    /// Interrupts for each vCPU raised on the other core.
    mailbox: [Vec<Injection>; 2],
    ram: (u64, u64),
    /// Set by SYSTEM_OFF/RESET (or a failure) on either core.
    done: Option<Result<(), &'static str>>,
    stats1: ExitStats,
}

static SHARED: Mutex<Option<Shared>> = Mutex::new(None);

/// What `secondary_main` runs on core 1 (0: the passthrough two-core runner).
pub static SECONDARY_MODE: AtomicU8 = AtomicU8::new(0);

type Verdict = Result<(), &'static str>;

fn with<R>(f: impl FnOnce(&mut Shared) -> R) -> Option<R> {
    SHARED.lock().as_mut().map(f)
}

/// Core 0: builds both vCPUs, starts core 1, runs vCPU 0; the guest may start `vcpus`
/// of them (1 or 2).
pub fn run(mem: &'static GuestMemory, entry: u64, dtb: u64, vcpus: u64) -> (Verdict, ExitStats) {
    let mut stats = ExitStats::default();
    let v = run0(mem, entry, dtb, vcpus, &mut stats);
    if let Some(s1) = with(|s| s.stats1) {
        stats.add(&s1);
    }
    (v, stats)
}

fn run0(
    mem: &'static GuestMemory,
    entry: u64,
    dtb: u64,
    vcpus: u64,
    stats: &mut ExitStats,
) -> Verdict {
    let mut percpu = vplatform::enable_core0()?;
    // The real console's interrupt wakes core 0 from WFI when input arrives.
    gic::enable_spi_on_core0(vplatform::uart_intid());
    let maker = VCpuMaker::new(mem, entry, dtb);
    let mut vcpu0 = maker.make(0)?;
    let vcpu1 = maker.make(1)?;
    *SHARED.lock() = Some(Shared {
        dev: Platform::new(2),
        power: [Power::On, Power::Off],
        vcpus,
        start: None,
        vcpu1: Some(vcpu1),
        mailbox: [Vec::new(), Vec::new()],
        ram: mem.ram_range(),
        done: None,
        stats1: ExitStats::default(),
    });
    SECONDARY_MODE.store(1, Ordering::Release);
    if crate::smp::start_core(1) != 0 {
        return Err("cannot start the second physical core (the board needs 2 cores: QEMU -smp 2)");
    }
    info!("Linux (virtual GIC): vCPU i on physical core i");
    vcpu0.bind(&mut percpu).map_err(|_| "bind")?;
    let verdict = loop {
        if let Some(Some(v)) = with(|s| s.done) {
            break v;
        }
        if let Err(e) = step(0, &mut vcpu0, stats) {
            with(|s| s.done = Some(Err(e)));
        }
    };
    let _ = vcpu0.unbind(&mut percpu);
    verdict
}

/// Core 1: waits for CPU_ON of vCPU 1 and runs it.
pub fn secondary(index: u64) -> ! {
    let mut percpu = crate::firmware::percpu(index as usize);
    if percpu.hardware_enable().is_err() {
        park();
    }
    gic::init_cpu_for_virtual_guests(index as usize);
    let mut stats = ExitStats::default();
    loop {
        let (mut vcpu, entry, ctx) = loop {
            let got = with(|s| match (s.power[1], s.start) {
                (Power::OnPending, Some((e, c))) => s.vcpu1.take().map(|v| (v, e, c)),
                _ => None,
            })
            .flatten();
            match got {
                Some(x) => break x,
                None => core::hint::spin_loop(),
            }
        };
        let started = vcpu
            .power_on(entry, ctx)
            .map(|released| released.iter().for_each(crate::gic::deactivate));
        if started.is_err() || vcpu.bind(&mut percpu).is_err() {
            error!("core 1: cannot start vCPU 1");
            park();
        }
        with(|s| {
            s.power[1] = Power::On;
            s.start = None;
        });
        loop {
            if with(|s| s.done.is_some() || s.power[1] == Power::Off) != Some(false) {
                break;
            }
            if let Err(e) = step(1, &mut vcpu, &mut stats) {
                with(|s| s.done = Some(Err(e)));
                gic::send_sgi(gic::KICK_SGI, 0);
            }
        }
        let _ = vcpu.unbind(&mut percpu);
        with(|s| {
            s.vcpu1 = Some(vcpu);
            s.stats1.add(&stats);
        });
        stats = ExitStats::default();
    }
}

/// Runs vCPU `me` (on core `me`) to its next exit and handles it.
fn step(me: usize, vcpu: &mut Aarch64VCpu, stats: &mut ExitStats) -> Result<(), &'static str> {
    // Interrupts the other core raised for this vCPU.
    let mine: Vec<Injection> = with(|s| core::mem::take(&mut s.mailbox[me])).unwrap_or_default();
    for inj in mine {
        vplatform::inject(vcpu, inj);
    }
    let exit = vcpu.run();
    let mut guard = SHARED.lock();
    let s = guard.as_mut().ok_or("no VM")?;
    s.dev.poll_input();
    let mut complete: Option<u64> = None;
    let mut psci_result: Option<i32> = None;
    let mut sleep = false;
    match exit {
        Ok(VmExit::MmioRead { addr, width, .. }) => {
            complete = Some(s.dev.mmio_read(addr, width, stats))
        }
        Ok(VmExit::MmioWrite { addr, width, data }) => s.dev.mmio_write(addr, width, data, stats),
        Ok(VmExit::SendSgi { request }) => s.dev.send_sgi(me, &request, 2, stats),
        Ok(VmExit::ExternalInterrupt { .. }) => {
            // The kick SGI only makes this core exit: the mailbox is drained before
            // the next entry.
            s.dev.physical_irq(me, stats);
        }
        Ok(VmExit::WaitForInterrupt) => {
            stats.wfx += 1;
            // Nothing for this vCPU: sleep until a physical interrupt (its timer, a
            // kick from the other core, console input). A WFE exit re-enters at once:
            // its wake-up event (SEV) is not an interrupt.
            sleep = s.mailbox[me].is_empty() && s.done.is_none();
        }
        Ok(VmExit::WaitForEvent) => stats.wfx += 1,
        Ok(VmExit::Psci { request, .. }) => {
            stats.psci += 1;
            psci_result = Some(match request {
                PsciRequest::CpuOn {
                    target_mpidr,
                    entry,
                    context_id,
                } => {
                    let in_ram = (s.ram.0..s.ram.1).contains(&entry);
                    match vplatform::psci_cpu_on(&s.power, s.vcpus, target_mpidr, in_ram) {
                        Ok(t) => {
                            s.start = Some((entry, context_id));
                            s.power[t] = Power::OnPending;
                            ret::SUCCESS
                        }
                        Err(e) => e,
                    }
                }
                PsciRequest::AffinityInfo { target_mpidr } => {
                    vplatform::psci_affinity_info(&s.power, s.vcpus, target_mpidr)
                }
                PsciRequest::CpuSuspend { .. } => ret::SUCCESS,
                PsciRequest::CpuOff => {
                    s.power[me] = Power::Off;
                    return Ok(());
                }
                PsciRequest::SystemOff | PsciRequest::SystemReset => {
                    info!("vCPU {}: PSCI {:?}", me, request);
                    s.done = Some(Ok(()));
                    drop(guard);
                    gic::send_sgi(gic::KICK_SGI, 1 - me as u64);
                    return Ok(());
                }
                _ => return Err("PSCI request this runner does not know"),
            });
        }
        rest => vplatform::answer_rest(vcpu, me, rest, stats)?,
    }
    let mut local = Vec::new();
    let mut kick = false;
    for inj in s.dev.deliveries(me) {
        let v = inj.vcpu;
        if v == me {
            local.push(inj);
        } else if let Some(m) = s.mailbox.get_mut(v) {
            m.push(inj);
            kick |= s.power.get(v) == Some(&Power::On);
        }
    }
    drop(guard);
    if let Some(v) = complete {
        vcpu.complete_mmio_read(v)
            .map_err(|_| "complete_mmio_read")?;
    }
    if let Some(r) = psci_result {
        vcpu.complete_psci(r).map_err(|_| "complete_psci")?;
    }
    let mut local_count = 0;
    for inj in local {
        if vplatform::inject(vcpu, inj) {
            local_count += 1;
        }
    }
    if kick {
        gic::send_sgi(gic::KICK_SGI, 1 - me as u64);
    }
    if sleep && local_count == 0 {
        // Woken also by the kick SGI that comes with a mailbox entry.
        vplatform::sleep_after_guest_wfi();
    }
    Ok(())
}

fn park() -> ! {
    loop {
        core::hint::spin_loop();
    }
}
