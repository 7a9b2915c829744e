//! Linux in the virtual-interrupt mode: the GIC distributor and redistributors are
//! emulated (`vgicd.rs`), every interrupt reaches the guest through `arm_vcpu`'s list
//! registers, and both vCPUs are time-sliced on one physical core (the EL2 timer and
//! the guest's WFI switch them). The guest's virtual timer is delivered as a virtual
//! PPI 27 linked to the physical one (HW bit), so the guest's deactivation ends it.

use alloc::vec::Vec;

use arm_vcpu::smccc::ret;
use arm_vcpu::{
    Aarch64PerCpu, Aarch64VCpu, Aarch64VCpuCreateConfig, Aarch64VCpuSetupConfig, PsciRequest,
    Stage2Config, VmExit,
};
use log::{error, info};

use crate::devices::CONSOLE_IPA;
use crate::gic;
use crate::memory::{self, GuestMemory};
use crate::pl011::Pl011;
use crate::vgicd::{Delivery, VGic, GICD_BASE, GICD_SIZE, GICR_BASE};
use crate::vm::ExitStats;

/// Time slice: about 2 ms at QEMU's 62.5 MHz counter.
const SLICE_TICKS: u64 = 125_000;
const UART_INTID: u32 = 33;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Power {
    On = 0,
    Off = 1,
    OnPending = 2,
}

struct Slot {
    vcpu: Aarch64VCpu,
    power: Power,
    /// The physical timer PPI was active (linked to this vCPU's virtual PPI 27) when
    /// the vCPU was descheduled.
    timer_active: bool,
    /// A timer interrupt arrived while the guest had PPI 27 disabled.
    timer_held: bool,
}

type Verdict = Result<(), &'static str>;

/// Runs Linux on `vcpus` vCPUs time-sliced on this core. `mem`, `entry` and `dtb`
/// come from the Linux loader.
pub fn run(mem: &'static GuestMemory, entry: u64, dtb: u64) -> (Verdict, ExitStats) {
    let mut stats = ExitStats::default();
    let v = run_inner(mem, entry, dtb, &mut stats);
    gic::stop_hyp_timer();
    (v, stats)
}

fn run_inner(mem: &'static GuestMemory, entry: u64, dtb: u64, stats: &mut ExitStats) -> Verdict {
    let mut percpu = Aarch64PerCpu::new(0);
    percpu
        .hardware_enable()
        .map_err(|_| "hardware_enable failed")?;
    gic::init();
    gic::enable_host_ppi(gic::VTIMER_INTID);
    gic::split_eoi();
    let stage2 = Stage2Config {
        root_pa: mem.root_pa(),
        vmid: 1,
        ipa_bits: memory::IPA_BITS,
        root_level: memory::ROOT_LEVEL,
    };
    let cntvoff_el2 = arm_vcpu::physical_count();
    let mut slots: Vec<Slot> = Vec::new();
    for i in 0..2u64 {
        let mut vcpu = Aarch64VCpu::new(Aarch64VCpuCreateConfig {
            mpidr_el1: i,
            cntvoff_el2,
            dtb_addr: dtb,
            ..Default::default()
        })
        .map_err(|_| "vcpu create")?;
        vcpu.setup(Aarch64VCpuSetupConfig {
            passthrough_timer: true,
            trap_wfi: true,
            ..Default::default()
        })
        .map_err(|_| "vcpu setup")?;
        vcpu.set_stage2_root(stage2).map_err(|_| "stage-2 root")?;
        vcpu.set_entry(entry).map_err(|_| "entry")?;
        slots.push(Slot {
            vcpu,
            power: if i == 0 { Power::On } else { Power::Off },
            timer_active: false,
            timer_held: false,
        });
    }
    let mut vgic = VGic::new(2);
    let mut uart = Pl011::default();
    let mut cur = 0usize;
    let mut switches = 0u64;
    slots[cur].vcpu.bind(&mut percpu).map_err(|_| "bind")?;
    gic::arm_hyp_timer(SLICE_TICKS);
    info!("Linux (virtual GIC): 2 vCPUs time-sliced on core 0");
    let verdict = loop {
        let mut switch = false;
        let mut deliveries: Vec<Delivery> = Vec::new();
        let exit = slots[cur].vcpu.run();
        // Console input, polled on every exit.
        let mut got_input = false;
        while uart.can_receive() {
            match crate::console::try_getc() {
                Some(b) => {
                    uart.receive(b);
                    got_input = true;
                }
                None => break,
            }
        }
        let mut uart_touched = got_input;
        let vcpu = &mut slots[cur].vcpu;
        match exit {
            Ok(VmExit::MmioRead { addr, width, .. }) => {
                stats.mmio_read += 1;
                let w = width.bytes();
                let v = if (GICD_BASE..GICD_BASE + GICD_SIZE).contains(&addr) {
                    vgic.gicd_read(addr - GICD_BASE, w)
                } else if let Some((r, off)) = addr
                    .checked_sub(GICR_BASE)
                    .and_then(|o| vgic.gicr_locate(o))
                {
                    vgic.gicr_read(r, off, w)
                } else if (CONSOLE_IPA..CONSOLE_IPA + 0x1000).contains(&addr) {
                    stats.console += 1;
                    uart_touched = true;
                    uart.read(addr - CONSOLE_IPA) as u64
                } else {
                    0
                };
                if vcpu.complete_mmio_read(v).is_err() {
                    break Err("complete_mmio_read");
                }
            }
            Ok(VmExit::MmioWrite { addr, width, data }) => {
                stats.mmio_write += 1;
                let w = width.bytes();
                let mut out = |d: Delivery| deliveries.push(d);
                if (GICD_BASE..GICD_BASE + GICD_SIZE).contains(&addr) {
                    vgic.gicd_write(addr - GICD_BASE, w, data, &mut out);
                } else if let Some((r, off)) = addr
                    .checked_sub(GICR_BASE)
                    .and_then(|o| vgic.gicr_locate(o))
                {
                    vgic.gicr_write(r, off, w, data, &mut out);
                } else if (CONSOLE_IPA..CONSOLE_IPA + 0x1000).contains(&addr) {
                    stats.console += 1;
                    uart_touched = true;
                    if let Some(b) = uart.write(addr - CONSOLE_IPA, data as u32) {
                        crate::console::putc(b);
                    }
                }
            }
            Ok(VmExit::SendSgi { request }) => {
                stats.sgi += 1;
                for v in 0..slots.len() {
                    if request.targets.includes(v as u64, cur as u64) {
                        if let Some(d) = vgic.raise(v, request.intid as u32, None) {
                            deliveries.push(d);
                        }
                    }
                }
            }
            Ok(VmExit::ExternalInterrupt { .. }) => {
                stats.irq += 1;
                let intid = gic::ack();
                if intid >= 1020 {
                    // Spurious.
                } else if intid == gic::VTIMER_INTID {
                    // Priority drop only: the physical PPI stays active until the guest
                    // deactivates the virtual one it is linked to.
                    gic::eoi(intid);
                    match vgic.raise(cur, intid, Some(intid)) {
                        Some(d) => deliveries.push(d),
                        None => slots[cur].timer_held = true,
                    }
                } else {
                    gic::eoi(intid);
                    gic::deactivate(intid);
                    if intid == gic::HYP_TIMER_INTID {
                        gic::arm_hyp_timer(SLICE_TICKS);
                        switch = true;
                    }
                }
            }
            Ok(VmExit::WaitForInterrupt | VmExit::WaitForEvent) => {
                stats.wfx += 1;
                switch = true;
            }
            Ok(VmExit::Psci { request, .. }) => {
                stats.psci += 1;
                let result = match request {
                    PsciRequest::CpuOn {
                        target_mpidr: t @ 0..=1,
                        entry,
                        context_id,
                    } => match slots[t as usize].power {
                        Power::On => ret::ALREADY_ON,
                        Power::OnPending => ret::ON_PENDING,
                        Power::Off if mem.host_ptr(entry, 4).is_none() => ret::INVALID_ADDRESS,
                        Power::Off => match slots[t as usize].vcpu.power_on(entry, context_id) {
                            Ok(()) => {
                                slots[t as usize].power = Power::OnPending;
                                ret::SUCCESS
                            }
                            Err(_) => ret::INTERNAL_FAILURE,
                        },
                    },
                    PsciRequest::CpuOn { .. } => ret::INVALID_PARAMETERS,
                    PsciRequest::AffinityInfo {
                        target_mpidr: t @ 0..=1,
                    } => slots[t as usize].power as i32,
                    PsciRequest::AffinityInfo { .. } => ret::INVALID_PARAMETERS,
                    PsciRequest::CpuSuspend { .. } => {
                        switch = true;
                        ret::SUCCESS
                    }
                    PsciRequest::CpuOff => {
                        slots[cur].power = Power::Off;
                        switch = true;
                        ret::DENIED // not used: the vCPU does not run again until CPU_ON
                    }
                    PsciRequest::SystemOff | PsciRequest::SystemReset => {
                        info!(
                            "vCPU {}: PSCI {:?} after {} vCPU switches",
                            cur, request, switches
                        );
                        break Ok(());
                    }
                };
                if slots[cur].power != Power::Off && slots[cur].vcpu.complete_psci(result).is_err()
                {
                    break Err("complete_psci");
                }
            }
            Ok(VmExit::Hypercall { .. }) => {
                stats.hypercall += 1;
                vcpu.set_return_value(u64::MAX);
            }
            Ok(VmExit::DataAbort { va, write, .. }) => {
                stats.abort += 1;
                let _ = vcpu.inject_data_abort(va, write);
            }
            Ok(VmExit::InstructionAbort { va, .. }) => {
                stats.abort += 1;
                let _ = vcpu.inject_instruction_abort(va);
            }
            Ok(other) => {
                stats.other += 1;
                error!(
                    "vCPU {}: unexpected exit {:?} at pc {:#x}",
                    cur,
                    other,
                    vcpu.pc()
                );
                break Err("unexpected exit");
            }
            Err(e) => {
                error!("vCPU {}: run: {}", cur, e);
                break Err("run() returned an error");
            }
        }
        if uart_touched && uart.irq_level() {
            if let Some(d) = vgic.raise(cur, UART_INTID, None) {
                deliveries.push(d);
            }
        }
        for d in deliveries {
            let mut vi = d.vi;
            let slot = &mut slots[d.vcpu];
            if vi.intid == gic::VTIMER_INTID && slot.timer_held {
                // Released after the guest enabled PPI 27: keep the physical link.
                slot.timer_held = false;
                vi.hw_intid = Some(gic::VTIMER_INTID);
            }
            if slot.vcpu.inject_interrupt(vi).is_err() {
                error!("cannot inject INTID {} into vCPU {}", vi.intid, d.vcpu);
            }
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
                s.timer_active = gic::ppi_active(gic::VTIMER_INTID);
                if s.timer_active {
                    gic::set_ppi_active(gic::VTIMER_INTID, false);
                }
                if s.vcpu.unbind(&mut percpu).is_err() {
                    break Err("unbind");
                }
                let n = &mut slots[next];
                if n.vcpu.bind(&mut percpu).is_err() {
                    break Err("bind");
                }
                if n.timer_active {
                    gic::set_ppi_active(gic::VTIMER_INTID, true);
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
