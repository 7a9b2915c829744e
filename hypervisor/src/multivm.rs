//! Several VMs on one physical core, switched round robin by the EL2 physical timer
//! (CNTHP): the `isolation` and `debug-isolation` scenarios, and the register sweeps
//! (`sweep`: one VM, `sweep-isolation`: two). Each VM has its own RAM, stage-2 tables and VMID; every
//! switch is an `unbind` of one vCPU and a `bind` of the other.

use alloc::vec::Vec;

use arm_vcpu::{
    Aarch64VCpu, Aarch64VCpuCreateConfig, Aarch64VCpuSetupConfig, Stage2Config, VirtualInterrupt,
    VmExit,
};
use log::{error, info};

use crate::devices::CONSOLE_IPA;
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
    /// The last phase it reached (TEST_CALL 0x84, the sweep's rendezvous).
    phase: u64,
    /// Console output since the last newline: each VM's lines are printed whole, so
    /// that time-sliced VMs do not interleave within a line.
    line: Vec<u8>,
}

impl Guest {
    fn console(&mut self, byte: u8) {
        self.line.push(byte);
        if byte == b'\n' || self.line.len() >= 2048 {
            for &b in &self.line {
                crate::console::putc(b);
            }
            self.line.clear();
        }
    }
}

type Verdict = Result<(), &'static str>;

/// Which multi-VM scenario runs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `isolation` (two VMs fill every switched register with patterns) and
    /// `debug-isolation` (two VMs with their own breakpoints and watchpoints): two VMs
    /// of the staged image, each with its interrupts pending at the first entry.
    Isolation,
    /// `sweep`: one VM runs every MRS/MSR encoding against the register inventory.
    Sweep,
    /// `sweep-isolation`: two VMs do the sweep, then patterns in every register it found
    /// writable, and a virtual SError each.
    SweepIsolation,
}

impl Kind {
    fn vms(self) -> usize {
        match self {
            Self::Sweep => 1,
            _ => 2,
        }
    }
}

/// Runs the isolation scenario; `iters` is the number of VM switches to survive.
pub fn run_isolation(iters: u64) -> (Verdict, ExitStats) {
    run_kind(Kind::Isolation, iters, &mut || Ok(()))
}

/// Runs two VMs of the staged image time-sliced on this core until both EXIT (the
/// `isolation` runner: `debug-isolation` uses it with its own guest); `after_unbind`
/// runs after every unbind (its error ends the run).
pub fn run_two_vms(iters: u64, after_unbind: &mut dyn FnMut() -> Verdict) -> (Verdict, ExitStats) {
    run_kind(Kind::Isolation, iters, after_unbind)
}

/// Runs a multi-VM scenario; `after_unbind` runs after every unbind (its error ends
/// the run).
pub fn run_kind(
    kind: Kind,
    iters: u64,
    after_unbind: &mut dyn FnMut() -> Verdict,
) -> (Verdict, ExitStats) {
    let mut stats = ExitStats::default();
    let verdict = run(kind, iters, &mut stats, after_unbind);
    gic::stop_hyp_timer();
    (verdict, stats)
}

fn build(kind: Kind, role: usize, iters: u64) -> Result<Guest, &'static str> {
    let mem = GuestMemory::alloc(VM_RAM_SIZE, "isolation VM")?;
    let entry =
        loader::load_elf(loader::staging(), &mem).map_err(|_| "cannot load the guest image")?;
    let mut vcpu = Aarch64VCpu::new(
        // Each VM's virtual count starts near 0 when it is created.
        Aarch64VCpuCreateConfig::default().with_cntvoff_el2(arm_vcpu::physical_count()),
    )
    .map_err(|_| "vcpu create")?;
    vcpu.setup(Aarch64VCpuSetupConfig::default())
        .map_err(|_| "vcpu setup")?;
    vcpu.set_stage2_root(Stage2Config::new(
        mem.root_pa(),
        role as u16 + 1,
        memory::IPA_BITS,
        memory::ROOT_LEVEL,
    ))
    .map_err(|_| "stage-2 root")?;
    vcpu.set_entry(entry).map_err(|_| "vcpu entry")?;
    vcpu.set_gpr(1, iters).map_err(|_| "x1")?;
    vcpu.set_gpr(2, role as u64).map_err(|_| "x2")?;
    let irqs: &[(u32, u8)] = if kind == Kind::Isolation {
        &INITIAL_IRQS[role]
    } else {
        &[]
    };
    for &(intid, priority) in irqs {
        // Not bound yet: queued, placed in the list registers at the first bind.
        vcpu.inject_interrupt(VirtualInterrupt::new(intid).with_priority(priority))
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
        phase: 0,
        line: Vec::new(),
    })
}

fn run(
    kind: Kind,
    iters: u64,
    stats: &mut ExitStats,
    after_unbind: &mut dyn FnMut() -> Verdict,
) -> Verdict {
    if !arm_vcpu::has_hardware_support() {
        return Err("no EL2 virtualization support");
    }
    let mut percpu = crate::firmware::percpu(0);
    percpu
        .hardware_enable()
        .map_err(|_| "hardware_enable failed")?;
    gic::init();
    let host = percpu.features().has;
    if kind != Kind::Isolation {
        // What the sweep's expectations depend on (and what the report states).
        info!("host features (arm_vcpu::sysreg::Feature):");
        for f in arm_vcpu::sysreg::FEATURES {
            if host.has(f) {
                info!("  {} ({})", f.name(), f.condition());
            }
        }
    }
    let n = kind.vms();
    let mut guests: Vec<Guest> = Vec::new();
    for role in 0..n {
        guests.push(build(kind, role, iters)?);
    }
    let mut cur = 0usize;
    let mut switches = 0u64;
    guests[cur].vcpu.bind(&mut percpu).map_err(|_| "bind")?;
    if n > 1 {
        gic::arm_hyp_timer(SLICE_TICKS);
    }
    loop {
        let mut switch = false;
        let vcpu = &mut guests[cur].vcpu;
        match vcpu.run() {
            Ok(VmExit::Hypercall { imm: 0, ref args }) => {
                stats.hypercall += 1;
                match args[0] {
                    hvc::NULL => vcpu.set_return_value(0),
                    hvc::TEST_CALL if args[1] == 0x81 => vcpu.set_return_value(switches),
                    // The host core's features, as the sweep's table numbers them.
                    hvc::TEST_CALL if args[1] == 0x82 && kind != Kind::Isolation => {
                        vcpu.set_return_value(host.0)
                    }
                    // A virtual SError with syndrome x2 for the caller (pending while
                    // it masks SErrors): the sweep checks it survives VM switches.
                    hvc::TEST_CALL if args[1] == 0x83 && kind == Kind::SweepIsolation => {
                        let ok = vcpu.inject_serror(args[2]).is_ok();
                        vcpu.set_return_value(u64::from(!ok));
                    }
                    // Rendezvous: this VM reached phase x2; returns 1 once every VM has.
                    hvc::TEST_CALL if args[1] == 0x84 && kind == Kind::SweepIsolation => {
                        let phase = args[2];
                        guests[cur].phase = guests[cur].phase.max(phase);
                        let all = guests.iter().all(|g| g.phase >= phase);
                        guests[cur].vcpu.set_return_value(u64::from(all));
                    }
                    hvc::PUTC => guests[cur].console(args[1] as u8),
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
                if addr == CONSOLE_IPA {
                    guests[cur].console(data as u8);
                }
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
        let next = (cur + 1) % n;
        if next != cur && guests[next].done.is_none() {
            guests[cur].vcpu.unbind(&mut percpu).map_err(|_| "unbind")?;
            after_unbind()?;
            guests[next].vcpu.bind(&mut percpu).map_err(|_| "bind")?;
            cur = next;
            switches += 1;
        } else if guests[cur].done.is_some() {
            // Both have ended.
            guests[cur].vcpu.unbind(&mut percpu).map_err(|_| "unbind")?;
            after_unbind()?;
            break;
        }
    }
    percpu.hardware_disable().map_err(|_| "hardware_disable")?;
    let failures: u64 = guests.iter().map(|g| g.done.unwrap_or(1)).sum();
    info!("{} VM switches, {} failed checks", switches, failures);
    if failures != 0 {
        return Err(match kind {
            Kind::Sweep => "the sweep found registers that disagree with the inventory",
            _ => "a VM found state that is not its own",
        });
    }
    if n > 1 && switches < iters {
        return Err("fewer VM switches than requested");
    }
    Ok(())
}
