//! Reference hypervisor for QEMU `virt` (EL2, GICv3): boots, builds a VM's stage-2
//! tables, loads a guest, and drives it only through `arm_vcpu`'s public API.
#![no_std]
#![no_main]
#![deny(clippy::undocumented_unsafe_blocks, unsafe_op_in_unsafe_fn)]

extern crate alloc;

mod bootargs;
mod console;
mod devices;
mod firmware;
mod geometry;
mod gic;
mod linux;
mod loader;
mod memory;
mod migrate;
mod multivm;
mod pl011;
mod platform;
mod scenario;
mod smp;
mod vgicd;
mod vlinux;
mod vlinux2;
mod vm;
mod vplatform;

use arm_vcpu::{Aarch64PerCpu, HostTrapFrame, HostTrapKind};
use linked_list_allocator::LockedHeap;
use log::info;

core::arch::global_asm!(include_str!("boot.S"));

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

/// RAM of a test guest run in the virtual-interrupt mode (`guest=elf`).
const RAM_FOR_ELF: u64 = 256 << 20;

/// The scenario (row) name of this run, for a verdict printed on any core.
static RUN_NAME: spin::Once<&'static str> = spin::Once::new();

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

/// Ends the run from any core: the verdict of the run's scenario and `stats`.
pub fn end_run(verdict: Result<(), &str>, stats: &vm::ExitStats) -> ! {
    finish(RUN_NAME.get().copied().unwrap_or("?"), verdict, stats)
}

fn finish(name: &str, verdict: Result<(), &str>, stats: &vm::ExitStats) -> ! {
    // One line for tools (xtask's linux_boot parses it), then a table for people.
    info!("exits: {:?}", stats);
    stats.print_table();
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

/// Entry of the secondary cores (boot.S `secondary_start`), after their stack and
/// MMU are set up.
#[no_mangle]
extern "C" fn secondary_main(index: u64) -> ! {
    if migrate::ACTIVE.load(core::sync::atomic::Ordering::Acquire) {
        migrate::secondary(index)
    } else if vlinux2::SECONDARY_MODE.load(core::sync::atomic::Ordering::Acquire) == 1 {
        vlinux2::secondary(index)
    } else {
        smp::secondary(index)
    }
}

#[no_mangle]
extern "C" fn rust_main() -> ! {
    // The board first: where its UART, memory and GIC are. The heap comes from its RAM.
    let heap = platform::discover();
    // SAFETY: `discover` carved [heap.base, heap.end()) out of the board's RAM for the
    // heap alone; nothing else uses it, and this runs once before any allocation.
    unsafe {
        HEAP.lock()
            .init(heap.base as usize as *mut u8, heap.size as usize)
    };
    console::init_logging();
    Aarch64PerCpu::set_host_trap_handler(host_trap);
    let args = bootargs::BootArgs::parse(bootargs::from_dtb(platform::DTB_PA as usize));
    // How PSCI/SMCCC firmware is called (for the Spectre workarounds).
    firmware::init(platform::DTB_PA as usize);
    let name = args.scenario;
    RUN_NAME.call_once(|| name);
    if args.selftest == "early-fault" {
        // A load from outside the EL2 address space, before any arm_vcpu vector is
        // installed: boot.S's vector must say what happened (status 102).
        // SAFETY: deliberately faults; the early vector ends the run.
        unsafe { core::ptr::read_volatile(0x80_0000_0000u64 as usize as *const u64) };
    }
    info!(
        "arm_vcpu reference hypervisor: scenario {} iters {} seed {}",
        name, args.iters, args.seed
    );
    platform::describe();
    if let Err(why) = platform::gic::check() {
        finish(name, Err(why), &vm::ExitStats::default());
    }
    let linux_args = linux::LinuxArgs {
        initrd_size: args.initrd_size,
        autotest: args.autotest,
        vcpus: args.vcpus,
        mem: args.vm_mem,
        bootargs_line: args.line,
        phys_timer_only: args
            .line
            .split_ascii_whitespace()
            .any(|w| w == "guest_timer=phys"),
    };
    // Linux's runner follows from `guest=linux mode= cores=`, whatever the row's name.
    let (verdict, stats) = if args.guest == "linux" {
        match (args.mode, args.cores) {
            // vCPU i on core i, whatever the board's core count (`cores=` is QEMU's).
            ("passthrough", _) => linux::run(&linux_args),
            ("virtual", 2) => linux::run_virtual_smp(&linux_args),
            ("virtual", 1) => linux::run_virtual(&linux_args),
            _ => (
                Err("Linux runs mode=passthrough or mode=virtual cores=1|2"),
                vm::ExitStats::default(),
            ),
        }
    } else if args.guest == "elf" && args.mode == "virtual" {
        linux::run_elf_virtual(args.vm_mem.min(RAM_FOR_ELF), args.cores)
    } else if name == "isolation" {
        multivm::run_isolation(args.iters)
    } else if name == "sweep" {
        multivm::run_kind(multivm::Kind::Sweep, args.iters, &mut || Ok(()))
    } else if name == "sweep-isolation" {
        multivm::run_kind(multivm::Kind::SweepIsolation, args.iters, &mut || Ok(()))
    } else if name == "stage2" {
        geometry::run_stage2()
    } else if name == "debug-isolation" {
        scenario::debug::run_two_vms(args.iters)
    } else if name == "snapshot" {
        migrate::run(args.iters)
    } else if name == "smp" {
        smp::run_smp(args.iters)
    } else if args.guest == "uboot" {
        linux::run_uboot(
            args.image_size,
            "echo UBOOT_GUEST: PASS bootcmd ran; poweroff",
            args.vm_mem,
        )
    } else {
        match scenario::by_name(name, args.iters, args.seed) {
            Some(sc) => vm::run(sc, args.iters),
            None => (Err("unknown scenario"), vm::ExitStats::default()),
        }
    };
    finish(name, verdict, &stats)
}
