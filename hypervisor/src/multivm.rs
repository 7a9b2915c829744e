//! Several VMs on one physical core, switched round robin by the EL2 physical timer
//! (CNTHP): the `isolation` scenario. Each VM has its own RAM, stage-2 tables and VMID;
//! every switch is an `unbind` of one vCPU and a `bind` of the other.

use alloc::vec::Vec;

use arm_vcpu::{
    Aarch64PerCpu, Aarch64VCpu, Aarch64VCpuCreateConfig, Aarch64VCpuSetupConfig, Stage2Config,
    VirtualInterrupt, VmExit,
};
use log::{error, info};

use crate::devices::{self, CONSOLE_IPA};
use crate::memory::{self, GuestMemory};
use crate::vm::{hvc, ExitStats};
use crate::{gic, loader};

/// RAM of each VM (128 MiB each, carved from the board's memory, both at IPA
/// 0x4000_0000).
const VM_RAM_SIZE: u64 = 0x0800_0000;
/// Time slice: about 1 ms at QEMU's 62.5 MHz counter.
const SLICE_TICKS: u64 = 62_500;
/// The interrupts each VM finds pending at its first entry: (INTID, priority).
const INITIAL_IRQS: [[(u32, u8); 2]; 2] = [[(40, 0xa0), (50, 0x80)], [(41, 0xb0), (51, 0x90)]];

struct Guest {
    vcpu: Aarch64VCpu,
    // Kept alive: the vCPU's stage-2 root points into it.
    _mem: GuestMemory,
    /// The guest's EXIT status, once it has ended.
    done: Option<u64>,
}

type Verdict = Result<(), &'static str>;

/// Runs the isolation scenario; `iters` is the number of VM switches to survive.
pub fn run_isolation(iters: u64) -> (Verdict, ExitStats) {
    let mut stats = ExitStats::default();
    let verdict = run(iters, &mut stats);
    gic::stop_hyp_timer();
    (verdict, stats)
}

fn build(role: usize, iters: u64) -> Result<Guest, &'static str> {
    let mem = GuestMemory::alloc(VM_RAM_SIZE, "isolation VM")?;
    let entry =
        loader::load_elf(loader::staging(), &mem).map_err(|_| "cannot load the guest image")?;
    let mut vcpu = Aarch64VCpu::new(Aarch64VCpuCreateConfig {
        // Each VM's virtual count starts near 0 when it is created.
        cntvoff_el2: arm_vcpu::physical_count(),
        ..Default::default()
    })
    .map_err(|_| "vcpu create")?;
    vcpu.setup(Aarch64VCpuSetupConfig::default())
        .map_err(|_| "vcpu setup")?;
    vcpu.set_stage2_root(Stage2Config {
        root_pa: mem.root_pa(),
        vmid: role as u16 + 1,
        ipa_bits: memory::IPA_BITS,
        root_level: memory::ROOT_LEVEL,
    })
    .map_err(|_| "stage-2 root")?;
    vcpu.set_entry(entry).map_err(|_| "vcpu entry")?;
    vcpu.set_gpr(1, iters).map_err(|_| "x1")?;
    vcpu.set_gpr(2, role as u64).map_err(|_| "x2")?;
    for &(intid, priority) in &INITIAL_IRQS[role] {
        // Not bound yet: queued, placed in the list registers at the first bind.
        vcpu.inject_interrupt(VirtualInterrupt {
            intid,
            priority,
            group1: true,
            hw_intid: None,
        })
        .map_err(|_| "inject_interrupt")?;
    }
    info!(
        "VM {}: RAM {:#x}, VMID {}, entry {:#x}",
        role,
        mem.pa(),
        role + 1,
        entry
    );
    Ok(Guest {
        vcpu,
        _mem: mem,
        done: None,
    })
}

fn run(iters: u64, stats: &mut ExitStats) -> Verdict {
    if !arm_vcpu::has_hardware_support() {
        return Err("no EL2 virtualization support");
    }
    let mut percpu = Aarch64PerCpu::new(0);
    percpu
        .hardware_enable()
        .map_err(|_| "hardware_enable failed")?;
    gic::init();
    let mut guests: Vec<Guest> = Vec::new();
    for role in 0..2 {
        guests.push(build(role, iters)?);
    }
    let mut cur = 0usize;
    let mut switches = 0u64;
    guests[cur].vcpu.bind(&mut percpu).map_err(|_| "bind")?;
    gic::arm_hyp_timer(SLICE_TICKS);
    loop {
        let mut switch = false;
        let vcpu = &mut guests[cur].vcpu;
        match vcpu.run() {
            Ok(VmExit::Hypercall { imm: 0, ref args }) => {
                stats.hypercall += 1;
                match args[0] {
                    hvc::NULL => vcpu.set_return_value(0),
                    hvc::TEST_CALL if args[1] == 0x81 => vcpu.set_return_value(switches),
                    hvc::PUTC => crate::console::putc(args[1] as u8),
                    hvc::EXIT => {
                        info!(
                            "VM {} ends: {} failed checks, after {} switches",
                            cur, args[1], switches
                        );
                        guests[cur].done = Some(args[1]);
                        switch = true;
                    }
                    _ => vcpu.set_return_value(u64::MAX),
                }
            }
            Ok(VmExit::MmioRead { addr, .. })
                if (CONSOLE_IPA..CONSOLE_IPA + 0x1000).contains(&addr) =>
            {
                stats.mmio_read += 1;
                vcpu.complete_mmio_read(0)
                    .map_err(|_| "complete_mmio_read")?;
            }
            Ok(VmExit::MmioWrite { addr, data, .. })
                if (CONSOLE_IPA..CONSOLE_IPA + 0x1000).contains(&addr) =>
            {
                stats.mmio_write += 1;
                devices::console_write(addr - CONSOLE_IPA, data);
            }
            Ok(VmExit::ExternalInterrupt { .. }) => {
                stats.irq += 1;
                let intid = gic::ack();
                if intid < 1020 {
                    gic::eoi(intid);
                }
                if intid == gic::HYP_TIMER_INTID {
                    switch = true;
                    gic::arm_hyp_timer(SLICE_TICKS);
                }
            }
            Ok(other) => {
                stats.other += 1;
                error!(
                    "VM {}: unexpected exit {:?} at pc {:#x}",
                    cur,
                    other,
                    vcpu.pc()
                );
                return Err("unexpected exit");
            }
            Err(e) => {
                error!("VM {}: run: {}", cur, e);
                return Err("run() returned an error");
            }
        }
        if !switch {
            continue;
        }
        let next = 1 - cur;
        if guests[next].done.is_none() {
            guests[cur].vcpu.unbind(&mut percpu).map_err(|_| "unbind")?;
            guests[next].vcpu.bind(&mut percpu).map_err(|_| "bind")?;
            cur = next;
            switches += 1;
        } else if guests[cur].done.is_some() {
            // Both have ended.
            guests[cur].vcpu.unbind(&mut percpu).map_err(|_| "unbind")?;
            break;
        }
    }
    percpu.hardware_disable().map_err(|_| "hardware_disable")?;
    let failures: u64 = guests.iter().map(|g| g.done.unwrap_or(1)).sum();
    info!(
        "isolation: {} VM switches, {} failed checks",
        switches, failures
    );
    if failures != 0 {
        return Err("a VM found state that is not its own");
    }
    if switches < iters {
        return Err("fewer VM switches than requested");
    }
    Ok(())
}
