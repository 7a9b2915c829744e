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
mod linux;
mod loader;
mod memory;
mod multivm;
mod pl011;
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

extern "C" {
    static __heap_start: u8;
    static __heap_end: u8;
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
    if vlinux2::SECONDARY_MODE.load(core::sync::atomic::Ordering::Acquire) == 1 {
        vlinux2::secondary(index)
    } else {
        smp::secondary(index)
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
        "arm_vcpu reference hypervisor: scenario {} iters {} seed {}",
        name, args.iters, args.seed
    );
    let linux_args = linux::LinuxArgs {
        initrd_size: args.initrd_size,
        autotest: args.autotest,
        vcpus: args.vcpus,
    };
    // Linux's runner follows from `guest=linux mode= cores=`, whatever the row's name.
    let (verdict, stats) = if args.guest == "linux" {
        match (args.mode, args.cores) {
            ("passthrough", 2) => linux::run(&linux_args),
            ("virtual", 2) => linux::run_virtual_smp(&linux_args),
            ("virtual", 1) => linux::run_virtual(&linux_args),
            _ => (
                Err("Linux runs mode=passthrough cores=2 or mode=virtual cores=1|2"),
                vm::ExitStats::default(),
            ),
        }
    } else if name == "isolation" {
        multivm::run_isolation(args.iters)
    } else if name == "debug-isolation" {
        scenario::debug::run_two_vms(args.iters)
    } else if name == "smp" {
        smp::run_smp(args.iters)
    } else if name == "uboot" {
        linux::run_uboot(
            args.image_size,
            "echo UBOOT_GUEST: PASS bootcmd ran; poweroff",
        )
    } else {
        match scenario::by_name(name, args.iters, args.seed) {
            Some(sc) => vm::run(sc, args.iters),
            None => (Err("unknown scenario"), vm::ExitStats::default()),
        }
    };
    finish(name, verdict, &stats)
}
