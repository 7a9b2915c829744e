//! Reference hypervisor for QEMU `virt` (EL2, GICv3/v4 or GICv2): discovers the board, builds the
//! VMs its description asks for, and runs their vCPUs on the board's cores with one
//! scheduler, driving them only through `arm_vcpu`'s public API.
//!
//! - `platform/`: the board (device tree), physical GIC, firmware PSCI, memory;
//! - `vm/`: a VM from its description — config, memory, kernel loading, device tree;
//! - `devices/`: emulated GIC distributor/redistributors, PL011, test device;
//! - `sched/`: per-core run queues, the core loop, policy, statistics, trace;
//! - `scenario/`: the host-side checks of the test scenarios.
#![no_std]
#![no_main]
#![deny(clippy::undocumented_unsafe_blocks, unsafe_op_in_unsafe_fn)]

extern crate alloc;

mod bootargs;
mod console;
mod devices;
mod platform;
mod scenario;
mod sched;
// GICv2 boards: the physical GICv2 driver (behind `platform::gic`), the emulated
// GICv2 distributor and its guest DT node (the virtual mode's).
mod gicv2;
mod vgicd_v2;
mod vm;

use arm_vcpu::{Aarch64PerCpu, HostTrapFrame, HostTrapKind};
use linked_list_allocator::LockedHeap;
use log::info;

core::arch::global_asm!(include_str!("boot.S"));

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

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

/// Ends the run before any VM ran: one line saying why, the run's FAIL marker, status 1.
pub fn end_run_early(name: &str, why: &str) -> ! {
    println!("refhv: {}", why);
    println!("ARM_VCPU_SCENARIO {}: FAIL {}", name, why);
    console::exit(1)
}

/// A hypervisor bug caught on the way (status 101, like a panic, but without one).
pub fn end_early(why: &str) -> ! {
    println!("ARM_VCPU_PANIC {}", why);
    console::exit(101)
}

/// Entry of the secondary cores (boot.S `secondary_start`), after their stack and
/// MMU are set up.
#[no_mangle]
extern "C" fn secondary_main(index: u64) -> ! {
    sched::secondary(index as usize)
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
    let name = args.scenario;
    if args.selftest == "early-fault" {
        // A load from outside the EL2 address space, before any arm_vcpu vector is
        // installed: boot.S's vector must say what happened (status 102).
        // SAFETY: deliberately faults; the early vector ends the run.
        unsafe { core::ptr::read_volatile(0x80_0000_0000u64 as usize as *const u64) };
    }
    info!(
        "arm_vcpu reference hypervisor: run {} iters {} seed {}",
        name, args.iters, args.seed
    );
    if let Some(w) = args.unknown {
        end_run_early(
            name,
            &alloc::format!("unknown or malformed bootargs word {w:?}"),
        );
    }
    platform::describe();
    if let Err(why) = platform::gic::check() {
        end_run_early(name, why);
    }
    if !arm_vcpu::has_hardware_support() {
        end_run_early(name, "no EL2 virtualization support");
    }
    let mut configs = match vm::configs(&args) {
        Ok(c) => c,
        Err(e) => end_run_early(name, &e),
    };
    if let Err(e) = vm::config::check_set(&mut configs, platform::cpu_count(), platform::free_ram())
    {
        end_run_early(name, &e.0);
    }
    let n = configs.len();
    let mut vms = alloc::vec::Vec::new();
    for (i, c) in configs.into_iter().enumerate() {
        match vm::build(c, i, n) {
            Ok(v) => vms.push(v),
            Err(e) => end_run_early(name, &e),
        }
    }
    sched::start(vms, name, args.timing, args.trace)
}
