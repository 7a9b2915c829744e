//! Reference hypervisor for QEMU `virt` (EL2, GICv3): boots, builds a VM's stage-2
//! tables, loads a guest, and drives it only through `arm_vcpu`'s public API.
#![no_std]
#![no_main]
#![deny(clippy::undocumented_unsafe_blocks, unsafe_op_in_unsafe_fn)]

extern crate alloc;

mod bootargs;
mod console;
mod devices;
mod gic;
mod loader;
mod memory;
mod scenario;

use arm_vcpu::{
    Aarch64PerCpu, Aarch64VCpu, Aarch64VCpuCreateConfig, HostTrapFrame, HostTrapKind, Stage2Config,
    VmExit,
};
use linked_list_allocator::LockedHeap;
use log::{error, info};

use devices::{TestDevice, CONSOLE_IPA, TESTDEV_IPA, TESTDEV_SIZE};
use scenario::{Kind, Scenario};

core::arch::global_asm!(include_str!("boot.S"));

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

extern "C" {
    static __heap_start: u8;
    static __heap_end: u8;
}

/// Hypercall function IDs (SMCCC vendor-specific hypervisor service range).
mod hvc {
    pub const NULL: u64 = 0xC600_0000;
    pub const TEST_CALL: u64 = 0xC600_0001;
    pub const EXIT: u64 = 0xC600_0002;
    pub const PUTC: u64 = 0xC600_0003;
}

/// Exit counts by kind, printed at the end.
#[derive(Default, Debug)]
struct ExitStats {
    hypercall: u64,
    mmio_read: u64,
    mmio_write: u64,
    sysreg: u64,
    irq: u64,
    other: u64,
}

fn host_trap(kind: HostTrapKind, frame: &mut HostTrapFrame) {
    println!(
        "ARM_VCPU_PANIC host exception {:?}: ESR_EL2 {:#x} ELR_EL2 {:#x} FAR_EL2 {:#x}",
        kind, frame.esr, frame.elr, frame.far
    );
    console::exit(101);
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("ARM_VCPU_PANIC {}", info);
    console::exit(101);
}

fn finish(name: &str, verdict: Result<(), &str>, stats: &ExitStats) -> ! {
    info!("exits: {:?}", stats);
    match verdict {
        Ok(()) => {
            println!("ARM_VCPU_SCENARIO {}: PASS", name);
            console::exit(0)
        }
        Err(why) => {
            println!("ARM_VCPU_SCENARIO {}: FAIL {}", name, why);
            console::exit(1)
        }
    }
}

#[no_mangle]
extern "C" fn rust_main() -> ! {
    // SAFETY: the linker reserves [__heap_start, __heap_end) for the heap; nothing else
    // uses it, and this runs once before any allocation.
    unsafe {
        let start = core::ptr::addr_of!(__heap_start) as usize;
        let end = core::ptr::addr_of!(__heap_end) as usize;
        HEAP.lock().init(start as *mut u8, end - start);
    }
    console::init_logging();
    Aarch64PerCpu::set_host_trap_handler(host_trap);
    let args = bootargs::BootArgs::parse(bootargs::from_dtb(0x4000_0000));
    let name = args.scenario;
    info!(
        "arm_vcpu reference hypervisor: scenario {} iters {}",
        name, args.iters
    );
    let verdict = run_scenario(name, args.iters);
    let (verdict, stats) = match verdict {
        Ok(v) => v,
        Err(e) => (Err(e), ExitStats::default()),
    };
    finish(name, verdict, &stats)
}

type Verdict = Result<(), &'static str>;

fn run_scenario(name: &str, iters: u64) -> Result<(Verdict, ExitStats), &'static str> {
    let kind = Kind::from_name(name).ok_or("unknown scenario")?;
    if !arm_vcpu::has_hardware_support() {
        return Err("no EL2 virtualization support");
    }
    let mut percpu = Aarch64PerCpu::new(0);
    percpu
        .hardware_enable()
        .map_err(|_| "hardware_enable failed")?;

    let mem = memory::GuestMemory::new().map_err(|_| "stage-2 mapping failed")?;
    let entry = loader::load_elf(loader::staging(), &mem).map_err(|e| {
        error!("guest image: {:?}", e);
        "cannot load the guest image"
    })?;
    info!(
        "guest loaded, entry {:#x}, stage-2 root {:#x}",
        entry,
        mem.root_pa()
    );

    let mut scenario = Scenario::new(kind, iters);
    let mut vcpu =
        Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).map_err(|_| "vcpu create")?;
    vcpu.setup(scenario.setup_config())
        .map_err(|_| "vcpu setup")?;
    vcpu.set_entry(entry).map_err(|_| "vcpu entry")?;
    vcpu.set_gpr(1, iters).map_err(|_| "vcpu x1")?;
    vcpu.set_stage2_root(Stage2Config {
        root_pa: mem.root_pa(),
        vmid: 1,
        ipa_bits: memory::IPA_BITS,
        root_level: memory::ROOT_LEVEL,
    })
    .map_err(|_| "stage-2 root")?;
    vcpu.bind(&mut percpu).map_err(|_| "vcpu bind")?;

    if kind == Kind::Irq {
        gic::init();
        gic::arm_hyp_timer(IRQ_TICKS);
    }
    let mut stats = ExitStats::default();
    let verdict = run_loop(&mut vcpu, &mut scenario, &mut stats);
    gic::stop_hyp_timer();
    vcpu.unbind(&mut percpu).map_err(|_| "vcpu unbind")?;
    percpu.hardware_disable().map_err(|_| "hardware_disable")?;
    Ok((verdict, stats))
}

/// Answers the test protocol's hypercalls other than NULL; `Some` ends the run.
#[inline(never)]
fn hypercall(
    vcpu: &mut Aarch64VCpu,
    sc: &mut Scenario,
    args: &[u64; 7],
    dev: &TestDevice,
) -> Option<Verdict> {
    match args[0] {
        hvc::TEST_CALL => {
            let r = sc.test_call(args, dev.reads, dev.writes);
            vcpu.set_return_value(r);
        }
        hvc::PUTC => console::putc(args[1] as u8),
        hvc::EXIT => {
            sc.final_check();
            if args[1] != 0 {
                error!("guest reports {} failed checks", args[1]);
                return Some(Err("guest checks failed"));
            }
            return Some(match sc.failure {
                Some(why) => Err(why),
                None => Ok(()),
            });
        }
        // Unknown function IDs: SMCCC NOT_SUPPORTED (-1).
        _ => vcpu.set_return_value(u64::MAX),
    }
    None
}

/// About 1 ms at QEMU's 62.5 MHz counter.
const IRQ_TICKS: u64 = 62_500;

fn run_loop(vcpu: &mut Aarch64VCpu, sc: &mut Scenario, stats: &mut ExitStats) -> Verdict {
    let mut dev = TestDevice::default();
    loop {
        // Match the Result in place: binding it first costs a copy of the exit per round trip.
        match vcpu.run() {
            Ok(VmExit::Hypercall { imm: 0, ref args }) => {
                stats.hypercall += 1;
                // The benchmarked null call is answered first, without touching the rest.
                if args[0] == hvc::NULL {
                    vcpu.set_return_value(0);
                    continue;
                }
                if let Some(verdict) = hypercall(vcpu, sc, args, &dev) {
                    return verdict;
                }
            }
            Ok(VmExit::MmioRead { addr, width, .. }) => {
                stats.mmio_read += 1;
                let v = if (TESTDEV_IPA..TESTDEV_IPA + TESTDEV_SIZE).contains(&addr) {
                    dev.read(addr - TESTDEV_IPA, width)
                } else {
                    // Console FR (TX never full) and anything unknown read as zero.
                    0
                };
                vcpu.complete_mmio_read(v)
                    .map_err(|_| "complete_mmio_read")?;
            }
            Ok(VmExit::MmioWrite { addr, width, data }) => {
                stats.mmio_write += 1;
                if (TESTDEV_IPA..TESTDEV_IPA + TESTDEV_SIZE).contains(&addr) {
                    dev.write(addr - TESTDEV_IPA, width, data);
                } else if (CONSOLE_IPA..CONSOLE_IPA + 0x1000).contains(&addr) {
                    devices::console_write(addr - CONSOLE_IPA, data);
                }
            }
            Ok(VmExit::SysRegRead { reg, .. }) => {
                stats.sysreg += 1;
                let v = sc.sysreg_read(reg);
                vcpu.complete_sysreg_read(v)
                    .map_err(|_| "complete_sysreg_read")?;
            }
            Ok(VmExit::ExternalInterrupt { .. }) => {
                stats.irq += 1;
                let intid = gic::ack();
                if intid == gic::HYP_TIMER_INTID {
                    sc.irqs += 1;
                    gic::eoi(intid);
                    if sc.irqs < 3 {
                        gic::arm_hyp_timer(IRQ_TICKS);
                    } else {
                        gic::stop_hyp_timer();
                    }
                } else if intid < 1020 {
                    gic::eoi(intid);
                }
            }
            Err(e) => {
                error!("run: {}", e);
                return Err("run() returned an error");
            }
            Ok(other) => {
                stats.other += 1;
                error!("unexpected exit {:?} at pc {:#x}", other, vcpu.pc());
                return Err("unexpected exit");
            }
        }
    }
}
