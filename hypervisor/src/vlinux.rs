//! Linux in the virtual-interrupt mode with both vCPUs time-sliced on one physical
//! core (switched by the EL2 timer and by the guest's WFI). Devices: `vplatform`.
//! The guest's EL1 timers are delivered as virtual PPIs 27 (virtual) and 30 (physical)
//! linked to the physical ones (HW bit): a descheduled vCPU's active state of those
//! PPIs is saved and restored with it, so it never blocks the other vCPU's timer. When
//! every vCPU idles the core sleeps, woken by the slice timer or earlier by the
//! deadline of a descheduled vCPU's timer (`timer_deadlines`).

use alloc::vec::Vec;

use arm_vcpu::smccc::ret;
use arm_vcpu::{Aarch64VCpu, PsciRequest, VmExit};
use log::info;

use crate::gic;
use crate::memory::GuestMemory;
use crate::vm::ExitStats;
use crate::vplatform::{self, Platform, Power, VCpuMaker};

/// Time slice: about 2 ms at QEMU's 62.5 MHz counter.
const SLICE_TICKS: u64 = 125_000;

struct Slot {
    vcpu: Aarch64VCpu,
    power: Power,
    /// Its last exit was a WFI and nothing was injected into it since.
    idle: bool,
    /// The physical timer PPIs (`vplatform::TIMER_INTIDS`) were active (linked to
    /// this vCPU's virtual ones) when the vCPU was descheduled.
    timer_active: [bool; 2],
}

type Verdict = Result<(), &'static str>;

/// Runs Linux (loaded in `mem`, entry point `entry`, DTB at `dtb`) on two vCPU slots
/// time-sliced on this core; the guest may start `vcpus` of them (1 or 2). With
/// `snapshot_every` K ≠ 0, every K-th switch replaces the vCPU it unbinds by a new one
/// restored from its snapshot (`snapshot_every=K` in the bootargs).
pub fn run(
    mem: &'static GuestMemory,
    entry: u64,
    dtb: u64,
    vcpus: u64,
    snapshot_every: u64,
) -> (Verdict, ExitStats) {
    let mut stats = ExitStats::default();
    let v = run_inner(mem, entry, dtb, vcpus, snapshot_every, &mut stats);
    gic::stop_hyp_timer();
    (v, stats)
}

fn run_inner(
    mem: &'static GuestMemory,
    entry: u64,
    dtb: u64,
    vcpus: u64,
    snapshot_every: u64,
    stats: &mut ExitStats,
) -> Verdict {
    let mut restored = 0u64;
    let mut percpu = vplatform::enable_core0()?;
    let maker = VCpuMaker::new(mem, entry, dtb);
    let mut slots: Vec<Slot> = Vec::new();
    for i in 0..2u64 {
        slots.push(Slot {
            vcpu: maker.make(i)?,
            power: if i == 0 { Power::On } else { Power::Off },
            timer_active: [false; 2],
            idle: false,
        });
    }
    let mut dev = Platform::new(2);
    let mut cur = 0usize;
    let mut switches = 0u64;
    slots[cur].vcpu.bind(&mut percpu).map_err(|_| "bind")?;
    gic::arm_hyp_timer(SLICE_TICKS);
    info!("Linux (virtual GIC): 2 vCPUs time-sliced on core 0");
    let verdict = loop {
        let mut switch = false;
        let mut sleep = false;
        let mut vcpu_idle = false;
        let exit = slots[cur].vcpu.run();
        dev.poll_input();
        let vcpu = &mut slots[cur].vcpu;
        match exit {
            Ok(VmExit::MmioRead { addr, width, .. }) => {
                let v = dev.mmio_read(addr, width, stats);
                if vcpu.complete_mmio_read(v).is_err() {
                    break Err("complete_mmio_read");
                }
            }
            Ok(VmExit::MmioWrite { addr, width, data }) => dev.mmio_write(addr, width, data, stats),
            Ok(VmExit::SendSgi { request }) => dev.send_sgi(cur, &request, slots.len(), stats),
            Ok(VmExit::ExternalInterrupt { .. }) => {
                if dev.physical_irq(cur, stats) == gic::HYP_TIMER_INTID {
                    gic::arm_hyp_timer(SLICE_TICKS);
                    switch = true;
                }
            }
            Ok(VmExit::WaitForInterrupt) => {
                stats.wfx += 1;
                vcpu_idle = true;
                // With every other vCPU idle or off, switching would only find another
                // WFI: sleep until a physical interrupt (this vCPU's timer, the slice
                // timer, which also brings the others' expired timers at their next
                // bind) and re-enter this one.
                let others_idle = slots.iter().enumerate().all(|(i, s)| {
                    i == cur || s.power == Power::Off || (s.power == Power::On && s.idle)
                });
                if others_idle {
                    sleep = true;
                    // A descheduled vCPU's timer: switch to it once due, else wake
                    // for it if it comes before the slice ends.
                    let now = arm_vcpu::physical_count();
                    let due = slots
                        .iter()
                        .enumerate()
                        .filter(|(i, s)| *i != cur && s.power == Power::On)
                        .filter_map(|(_, s)| s.vcpu.timer_deadlines().next())
                        .min();
                    match due {
                        Some(d) if d <= now => {
                            sleep = false;
                            switch = true;
                        }
                        Some(d) if d - now < SLICE_TICKS => gic::arm_hyp_timer(d - now),
                        _ => {}
                    }
                } else {
                    switch = true;
                }
            }
            Ok(VmExit::WaitForEvent) => {
                stats.wfx += 1;
                switch = true;
            }
            Ok(VmExit::Psci { request, .. }) => {
                stats.psci += 1;
                let result = match request {
                    PsciRequest::CpuOn {
                        target_mpidr,
                        entry,
                        context_id,
                    } => {
                        let power = [slots[0].power, slots[1].power];
                        let in_ram = mem.host_ptr(entry, 4).is_some();
                        match vplatform::psci_cpu_on(&power, vcpus, target_mpidr, in_ram) {
                            Ok(t) => match slots[t].vcpu.power_on(entry, context_id) {
                                Ok(released) => {
                                    // Hardware links the reset dropped (the timer PPI).
                                    released.iter().for_each(crate::gic::deactivate);
                                    slots[t].power = Power::OnPending;
                                    ret::SUCCESS
                                }
                                Err(_) => ret::INTERNAL_FAILURE,
                            },
                            Err(e) => e,
                        }
                    }
                    PsciRequest::AffinityInfo { target_mpidr } => {
                        let power = [slots[0].power, slots[1].power];
                        vplatform::psci_affinity_info(&power, vcpus, target_mpidr)
                    }
                    PsciRequest::CpuSuspend { .. } => {
                        switch = true;
                        ret::SUCCESS
                    }
                    PsciRequest::CpuOff => {
                        // The vCPU does not run again until a CPU_ON (power_on resets it).
                        slots[cur].power = Power::Off;
                        switch = true;
                        ret::DENIED
                    }
                    PsciRequest::SystemOff | PsciRequest::SystemReset => {
                        info!(
                            "vCPU {}: PSCI {:?} after {} vCPU switches, {} vCPUs restored from snapshots",
                            cur, request, switches, restored
                        );
                        break Ok(());
                    }
                    _ => break Err("PSCI request this runner does not know"),
                };
                if slots[cur].power != Power::Off && slots[cur].vcpu.complete_psci(result).is_err()
                {
                    break Err("complete_psci");
                }
            }
            rest => {
                if let Err(why) = vplatform::answer_rest(vcpu, cur, rest, stats) {
                    break Err(why);
                }
            }
        }
        slots[cur].idle = vcpu_idle;
        for inj in dev.deliveries(cur) {
            let Some(s) = slots.get_mut(inj.vcpu) else {
                continue;
            };
            if vplatform::inject(&mut s.vcpu, inj) {
                s.idle = false;
                sleep = false;
            } else if inj.resample && !s.vcpu.is_bound() {
                // Its timer stopped asserting while descheduled: the physical PPI it
                // held active is not restored at its next bind.
                if let Some(t) = vplatform::TIMER_INTIDS
                    .iter()
                    .position(|&t| t == inj.vi.intid)
                {
                    s.timer_active[t] = false;
                }
            }
        }
        if sleep {
            vplatform::sleep_after_guest_wfi();
        }
        if switch {
            let next = (1..=slots.len())
                .map(|k| (cur + k) % slots.len())
                .find(|&i| slots[i].power != Power::Off);
            let Some(next) = next else {
                break Err("every vCPU is off");
            };
            if next != cur || slots[cur].power == Power::Off {
                let s = &mut slots[cur];
                for (t, &intid) in vplatform::TIMER_INTIDS.iter().enumerate() {
                    s.timer_active[t] = gic::ppi_active(intid);
                    if s.timer_active[t] {
                        gic::set_ppi_active(intid, false);
                    }
                }
                if s.vcpu.unbind(&mut percpu).is_err() {
                    break Err("unbind");
                }
                if snapshot_every != 0 && switches.is_multiple_of(snapshot_every) {
                    // The vCPU is destroyed; a new one, restored from the bytes, goes on.
                    if let Err(why) = maker.snapshot_restore(&mut s.vcpu, cur as u64) {
                        break Err(why);
                    }
                    restored += 1;
                }
                let n = &mut slots[next];
                if n.vcpu.bind(&mut percpu).is_err() {
                    break Err("bind");
                }
                for (t, &intid) in vplatform::TIMER_INTIDS.iter().enumerate() {
                    if n.timer_active[t] {
                        gic::set_ppi_active(intid, true);
                    }
                }
                n.power = Power::On;
                cur = next;
                switches += 1;
            }
        }
    };
    let _ = slots[cur].vcpu.unbind(&mut percpu);
    verdict
}
