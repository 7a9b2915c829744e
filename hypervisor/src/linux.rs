//! Linux as a guest: loads the kernel `Image` and the initramfs that QEMU's loader
//! staged, writes the guest's device tree, and runs one or two vCPUs on two physical cores.
//!
//! Interrupt-passthrough mode: the guest owns the physical GIC (distributor and
//! redistributors mapped at stage 2, `ICC_*` registers direct), so interrupts never
//! exit; one vCPU per physical core. The console is an emulated PL011 (`pl011.rs`)
//! whose interrupt line the host drives through the distributor's pending registers.
//!
//! Guest memory (IPA): RAM 0x4000_0000 + 1 GiB; the kernel 2 MiB above its start,
//! the initramfs at 0x4800_0000, the DTB at 0x4f00_0000.

use alloc::vec::Vec;

use arm_vcpu::Aarch64VCpuSetupConfig;
use log::{error, info};
use vm_fdt::FdtWriter;

use crate::loader;
use crate::memory::GuestMemory;
use crate::smp::{run_two_cores, GuestKind, TwoCoreVm};
use crate::vm::ExitStats;

/// Host-physical RAM of the Linux VM (QEMU `-m 2G`: RAM ends at 0xC000_0000).
const RAM_PA: u64 = 0x6000_0000;
const RAM_SIZE: u64 = 0x4000_0000;
const RAM_IPA: u64 = 0x4000_0000;
/// Where the kernel goes: the 2 MiB-aligned base above the start of RAM.
const KERNEL_BASE_IPA: u64 = RAM_IPA + 0x20_0000;
const INITRD_IPA: u64 = 0x4800_0000;
const DTB_IPA: u64 = 0x4f00_0000;
/// Staging (QEMU `-device loader`): the Image at the usual staging address, the
/// initramfs higher up.
const INITRD_STAGING_PA: u64 = 0x4e00_0000;
const INITRD_MAX: u64 = 0x0200_0000;

/// QEMU virt's devices the guest gets directly.
const GICD: (u64, u64) = (0x0800_0000, 0x1_0000);
/// Redistributors of two CPUs (128 KiB each).
const GICR: (u64, u64) = (0x080a_0000, 0x4_0000);
const UART: (u64, u64) = (0x0900_0000, 0x1000);

/// Options from the bootargs.
pub struct LinuxArgs {
    pub initrd_size: u64,
    pub autotest: bool,
    /// vCPUs (1 or 2): the device tree's CPU nodes, and the MPIDRs PSCI CPU_ON and
    /// AFFINITY_INFO accept.
    pub vcpus: u64,
}

/// The most vCPUs a Linux VM gets (the runners have one slot per physical core, or
/// two time-sliced on one).
pub const MAX_VCPUS: u64 = 2;

/// Where U-Boot goes (it is position independent and relocates itself to the top of
/// RAM) and where it expects its device tree: exactly the start of RAM.
const UBOOT_IPA: u64 = RAM_IPA + 0x20_0000;
const UBOOT_DTB_IPA: u64 = RAM_IPA;
const UBOOT_MAX: u64 = 0x40_0000;

/// Boots U-Boot (`u-boot.bin` of Debian's u-boot-qemu, `image_size` bytes staged) with a
/// `/config` node whose `bootcmd` is `bootcmd`; the run ends when it powers off.
pub fn run_uboot(image_size: u64, bootcmd: &str) -> (Verdict, ExitStats) {
    match build_uboot(image_size, bootcmd) {
        Ok(vm) => run_two_cores(vm),
        Err(e) => (Err(e), ExitStats::default()),
    }
}

fn build_uboot(image_size: u64, bootcmd: &str) -> Result<TwoCoreVm, &'static str> {
    let mut mem = GuestMemory::at(RAM_PA, RAM_SIZE).map_err(|_| "stage-2 mapping failed")?;
    for (pa, size) in [GICD, GICR] {
        mem.map_device(pa, size)
            .map_err(|_| "stage-2 device mapping failed")?;
    }
    let mem: &'static GuestMemory = alloc::boxed::Box::leak(alloc::boxed::Box::new(mem));
    if image_size == 0 || image_size > UBOOT_MAX {
        return Err("image_size= missing or too large for U-Boot");
    }
    loader::copy_to_guest(mem, UBOOT_IPA, &loader::staging()[..image_size as usize])
        .map_err(|_| "U-Boot does not fit")?;
    let dtb = device_tree(&DtOptions {
        bootargs: None,
        initrd: None,
        bootcmd: Some(bootcmd),
        cpus: MAX_VCPUS,
    })
    .map_err(|_| "device tree")?;
    loader::copy_to_guest(mem, UBOOT_DTB_IPA, &dtb).map_err(|_| "device tree does not fit")?;
    info!(
        "U-Boot: {:#x} bytes at {:#x}, DTB {} bytes at {:#x}",
        image_size,
        UBOOT_IPA,
        dtb.len(),
        UBOOT_DTB_IPA
    );
    Ok(TwoCoreVm {
        mem,
        entry: UBOOT_IPA,
        x0: UBOOT_DTB_IPA,
        x1: 0,
        setup: Aarch64VCpuSetupConfig::default()
            .with_passthrough_interrupt(true)
            .with_passthrough_timer(true)
            .with_trap_wfi(true),
        kind: GuestKind::Os,
        vcpus: MAX_VCPUS,
    })
}

/// What goes into a device tree besides the machine.
struct DtOptions<'a> {
    /// `/chosen/bootargs`.
    bootargs: Option<&'a str>,
    /// `/chosen/linux,initrd-start` and `-end`.
    initrd: Option<(u64, u64)>,
    /// `/config/bootcmd` (with `bootdelay = <0>`), for U-Boot.
    bootcmd: Option<&'a str>,
    /// CPU nodes (`cpu@0` ..), MPIDR = index.
    cpus: u64,
}

type Verdict = Result<(), &'static str>;

/// Boots Linux; the run ends when it powers the VM off.
pub fn run(args: &LinuxArgs) -> (Verdict, ExitStats) {
    match build(args) {
        Ok(vm) => run_two_cores(vm),
        Err(e) => (Err(e), ExitStats::default()),
    }
}

/// Boots Linux in the virtual-interrupt mode (emulated GIC, list registers, both vCPUs
/// time-sliced on this core).
pub fn run_virtual(args: &LinuxArgs) -> (Verdict, ExitStats) {
    match load(args, false) {
        Ok((mem, entry)) => crate::vlinux::run(mem, entry, DTB_IPA, args.vcpus),
        Err(e) => (Err(e), ExitStats::default()),
    }
}

/// Boots Linux in the virtual-interrupt mode with vCPU i on physical core i.
pub fn run_virtual_smp(args: &LinuxArgs) -> (Verdict, ExitStats) {
    match load(args, false) {
        Ok((mem, entry)) => crate::vlinux2::run(mem, entry, DTB_IPA, args.vcpus),
        Err(e) => (Err(e), ExitStats::default()),
    }
}

fn build(args: &LinuxArgs) -> Result<TwoCoreVm, &'static str> {
    let (mem, entry) = load(args, true)?;
    Ok(TwoCoreVm {
        mem,
        entry,
        x0: DTB_IPA,
        x1: 0,
        setup: Aarch64VCpuSetupConfig::default()
            .with_passthrough_interrupt(true)
            .with_passthrough_timer(true)
            // Idle vCPUs sleep in WFI: console input wakes them through the real UART's
            // interrupt (see `smp::uart_poll`), so nothing needs to poll.
            .with_trap_wfi(false),
        kind: GuestKind::Os,
        vcpus: args.vcpus,
    })
}

/// Guest RAM with the kernel, the initramfs and the DTB in place; with `gic_passthrough`
/// the physical GICD/GICR are mapped into the guest (the PL011 is always emulated).
/// Returns the memory and the kernel's entry point.
fn load(
    args: &LinuxArgs,
    gic_passthrough: bool,
) -> Result<(&'static GuestMemory, u64), &'static str> {
    if !(1..=MAX_VCPUS).contains(&args.vcpus) {
        return Err("vcpus= must be 1 or 2");
    }
    let mut mem = GuestMemory::at(RAM_PA, RAM_SIZE).map_err(|_| "stage-2 mapping failed")?;
    if gic_passthrough {
        for (pa, size) in [GICD, GICR] {
            mem.map_device(pa, size)
                .map_err(|_| "stage-2 device mapping failed")?;
        }
    }
    let mem: &'static GuestMemory = alloc::boxed::Box::leak(alloc::boxed::Box::new(mem));

    let staging = loader::staging();
    let header = loader::linux_header(staging).map_err(|e| {
        error!("kernel: {:?}", e);
        "no Linux Image in the staging area"
    })?;
    let entry = KERNEL_BASE_IPA + header.text_offset;
    let image_len = header
        .image_size
        .min(INITRD_STAGING_PA - loader::STAGING_PA) as usize;
    loader::copy_to_guest(mem, entry, &staging[..image_len]).map_err(|_| "kernel does not fit")?;
    if entry + header.image_size > INITRD_IPA {
        return Err("kernel overlaps the initramfs");
    }

    if args.initrd_size == 0 || args.initrd_size > INITRD_MAX {
        return Err("initrd_size= missing or too large");
    }
    // SAFETY: the initramfs staging region is RAM QEMU's loader filled; the hypervisor
    // only reads it.
    let initrd = unsafe {
        core::slice::from_raw_parts(INITRD_STAGING_PA as *const u8, args.initrd_size as usize)
    };
    loader::copy_to_guest(mem, INITRD_IPA, initrd).map_err(|_| "initramfs does not fit")?;

    let mut bootargs =
        alloc::string::String::from("console=ttyAMA0 earlycon=pl011,0x9000000 rdinit=/init");
    if args.autotest {
        bootargs.push_str(" autotest");
    }
    // For /init's autotest: how many CPUs it should find.
    bootargs.push_str(&alloc::format!(" vcpus={}", args.vcpus));
    let dtb = device_tree(&DtOptions {
        bootargs: Some(&bootargs),
        initrd: Some((INITRD_IPA, INITRD_IPA + args.initrd_size)),
        bootcmd: None,
        cpus: args.vcpus,
    })
    .map_err(|_| "device tree")?;
    loader::copy_to_guest(mem, DTB_IPA, &dtb).map_err(|_| "device tree does not fit")?;
    info!(
        "Linux: Image {:#x} bytes at {:#x}, initramfs {:#x} bytes at {:#x}, DTB {} bytes at {:#x}",
        header.image_size,
        entry,
        args.initrd_size,
        INITRD_IPA,
        dtb.len(),
        DTB_IPA
    );
    Ok((mem, entry))
}

const GIC_PHANDLE: u32 = 1;
const CLOCK_PHANDLE: u32 = 2;
/// Interrupt specifier cells: type (0 SPI, 1 PPI), number, flags (4 = level high).
const PPI: u32 = 1;
const SPI: u32 = 0;
const LEVEL_HIGH: u32 = 4;

/// The guest's device tree: memory, `opts.cpus` CPUs (PSCI), PSCI over HVC (answered by
/// arm_vcpu), GICv3, the generic timer, a fixed clock, the PL011, /chosen.
fn device_tree(opts: &DtOptions) -> Result<Vec<u8>, vm_fdt::Error> {
    let mut fdt = FdtWriter::new()?;
    let root = fdt.begin_node("")?;
    fdt.property_string("compatible", "linux,dummy-virt")?;
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_u32("interrupt-parent", GIC_PHANDLE)?;

    let chosen = fdt.begin_node("chosen")?;
    if let Some(b) = opts.bootargs {
        fdt.property_string("bootargs", b)?;
    }
    fdt.property_string("stdout-path", "/pl011@9000000")?;
    if let Some((start, end)) = opts.initrd {
        fdt.property_u64("linux,initrd-start", start)?;
        fdt.property_u64("linux,initrd-end", end)?;
    }
    fdt.end_node(chosen)?;

    if let Some(cmd) = opts.bootcmd {
        let config = fdt.begin_node("config")?;
        fdt.property_u32("bootdelay", 0)?;
        fdt.property_string("bootcmd", cmd)?;
        fdt.end_node(config)?;
    }

    let memory = fdt.begin_node("memory@40000000")?;
    fdt.property_string("device_type", "memory")?;
    fdt.property_array_u64("reg", &[RAM_IPA, RAM_SIZE])?;
    fdt.end_node(memory)?;

    let cpus = fdt.begin_node("cpus")?;
    fdt.property_u32("#address-cells", 1)?;
    fdt.property_u32("#size-cells", 0)?;
    for i in 0..opts.cpus as u32 {
        let cpu = fdt.begin_node(&alloc::format!("cpu@{i}"))?;
        fdt.property_string("device_type", "cpu")?;
        fdt.property_string("compatible", "arm,armv8")?;
        fdt.property_u32("reg", i)?;
        fdt.property_string("enable-method", "psci")?;
        fdt.end_node(cpu)?;
    }
    fdt.end_node(cpus)?;

    let psci = fdt.begin_node("psci")?;
    fdt.property_string_list(
        "compatible",
        alloc::vec!["arm,psci-1.0".into(), "arm,psci-0.2".into()],
    )?;
    fdt.property_string("method", "hvc")?;
    fdt.end_node(psci)?;

    let gic = fdt.begin_node("intc@8000000")?;
    fdt.property_string("compatible", "arm,gic-v3")?;
    fdt.property_u32("#interrupt-cells", 3)?;
    fdt.property_null("interrupt-controller")?;
    fdt.property_array_u64("reg", &[GICD.0, GICD.1, GICR.0, GICR.1])?;
    fdt.property_array_u32("interrupts", &[PPI, 9, LEVEL_HIGH])?;
    fdt.property_phandle(GIC_PHANDLE)?;
    fdt.end_node(gic)?;

    let timer = fdt.begin_node("timer")?;
    fdt.property_string("compatible", "arm,armv8-timer")?;
    // Secure physical, non-secure physical, virtual, hypervisor timer PPIs.
    fdt.property_array_u32(
        "interrupts",
        &[
            PPI, 13, LEVEL_HIGH, PPI, 14, LEVEL_HIGH, PPI, 11, LEVEL_HIGH, PPI, 10, LEVEL_HIGH,
        ],
    )?;
    fdt.property_null("always-on")?;
    fdt.end_node(timer)?;

    let clk = fdt.begin_node("apb-pclk")?;
    fdt.property_string("compatible", "fixed-clock")?;
    fdt.property_u32("#clock-cells", 0)?;
    fdt.property_u32("clock-frequency", 24_000_000)?;
    fdt.property_string("clock-output-names", "clk24mhz")?;
    fdt.property_phandle(CLOCK_PHANDLE)?;
    fdt.end_node(clk)?;

    let uart = fdt.begin_node("pl011@9000000")?;
    fdt.property_string_list(
        "compatible",
        alloc::vec!["arm,pl011".into(), "arm,primecell".into()],
    )?;
    fdt.property_array_u64("reg", &[UART.0, UART.1])?;
    fdt.property_array_u32("interrupts", &[SPI, 1, LEVEL_HIGH])?;
    fdt.property_array_u32("clocks", &[CLOCK_PHANDLE, CLOCK_PHANDLE])?;
    fdt.property_string_list(
        "clock-names",
        alloc::vec!["uartclk".into(), "apb_pclk".into()],
    )?;
    fdt.end_node(uart)?;

    fdt.end_node(root)?;
    fdt.finish()
}
