//! Linux as a guest: loads the kernel `Image` and the initramfs that QEMU's loader
//! staged, writes the guest's device tree, and runs one or two vCPUs on two physical cores.
//!
//! Interrupt-passthrough mode: the guest owns the physical GIC (distributor and
//! redistributors mapped at stage 2, `ICC_*` registers direct), so interrupts never
//! exit; one vCPU per physical core. The console is an emulated PL011 (`pl011.rs`)
//! whose interrupt line the host drives through the distributor's pending registers.
//!
//! Guest memory (IPA): RAM at 0x4000_0000 (`vm_mem=`, 1 GiB unless told; host RAM
//! carved from the board's memory, refused with one line if it does not fit); the
//! kernel 2 MiB above its start, the initramfs at 0x4800_0000, the DTB at 0x4f00_0000.
//!
//! The guest's device tree describes what it gets: in passthrough mode the board's
//! distributor and the redistributor frames of the cores its vCPUs run on (their
//! regions as `board::guest_redistributors` lays them out, the last frame of each
//! region with `GICR_TYPER.Last` emulated when the board's last core is not the
//! guest's), the board's timer PPIs and UART interrupt; in virtual mode the emulated
//! GIC (`vgicd`: GICv3 frames 0x20000 apart, whatever the board's stride).

use alloc::vec::Vec;

use arm_vcpu::Aarch64VCpuSetupConfig;
use log::{error, info};
use vm_fdt::FdtWriter;

use crate::gic::TrappedRdPages;
use crate::loader;
use crate::memory::GuestMemory;
use crate::platform::board::{self, List, Range, MAX_CPUS};
use crate::smp::{run_two_cores, GuestKind, TwoCoreVm};
use crate::vm::ExitStats;

/// Guest-physical base of the VM's RAM.
const RAM_IPA: u64 = 0x4000_0000;
/// The least RAM this layout works with: the DTB lies 240 MiB above the start.
const RAM_MIN: u64 = 256 << 20;
/// Where the kernel goes: the 2 MiB-aligned base above the start of RAM.
const KERNEL_BASE_IPA: u64 = RAM_IPA + 0x20_0000;
const INITRD_IPA: u64 = 0x4800_0000;
const DTB_IPA: u64 = 0x4f00_0000;
/// Staging (QEMU `-device loader`): the Image at the usual staging address, the
/// initramfs higher up.
const INITRD_STAGING_PA: u64 = 0x4e00_0000;
const INITRD_MAX: u64 = 0x0200_0000;

/// The emulated PL011 of the guest (the VM's layout, not the board's).
const UART: (u64, u64) = (crate::devices::CONSOLE_IPA, 0x1000);

/// Options from the bootargs.
pub struct LinuxArgs {
    pub initrd_size: u64,
    pub autotest: bool,
    /// vCPUs: the device tree's CPU nodes, and the MPIDRs PSCI CPU_ON and
    /// AFFINITY_INFO accept. Passthrough: up to the board's cores (one vCPU per core);
    /// virtual: 1 or 2 (the runners' slots).
    pub vcpus: u64,
    /// RAM of the VM in bytes.
    pub mem: u64,
    /// `kernel_arg=` words of the bootargs, added to the kernel command line.
    pub bootargs_line: &'static str,
    /// The guest's timer node lists only the physical timers (`guest_timer=phys`):
    /// Linux then uses the EL1 physical timer (PPI 30) instead of the virtual one.
    pub phys_timer_only: bool,
}

/// The most vCPUs of a virtual-mode Linux VM (its runners have two slots).
pub const MAX_VIRTUAL_VCPUS: u64 = 2;
/// vCPUs U-Boot's machine has (it uses one).
const UBOOT_VCPUS: u64 = 2;

/// The interrupt controller a guest's device tree describes.
#[derive(Clone, Copy)]
struct GicDesc {
    gicd: Range,
    gicr: List<Range, MAX_CPUS>,
    /// Timer PPIs (as INTIDs): secure physical, physical, virtual, hypervisor.
    timer: [u32; 4],
    /// The console's SPI (INTID).
    uart_intid: u32,
}

/// RAM for the VM, carved from the board's memory.
fn vm_memory(size: u64, what: &str) -> Result<GuestMemory, &'static str> {
    if size < RAM_MIN {
        return Err("vm_mem= below the 256 MiB this VM layout needs");
    }
    let pa = crate::platform::alloc_ram(size, what)?;
    GuestMemory::at(pa, size).map_err(|_| "stage-2 mapping failed")
}

/// The physical GIC for a guest that owns it, with vCPU i on core i: the board's
/// distributor and the redistributors of cores 0..vcpus (mapped at stage 2 except
/// the RD pages whose `GICR_TYPER.Last` is emulated, returned).
fn passthrough_gic(
    mem: &mut GuestMemory,
    vcpus: u64,
) -> Result<(GicDesc, TrappedRdPages), &'static str> {
    let b = crate::platform::board();
    let mut frames: List<board::RedistFrame, MAX_CPUS> = List::default();
    for i in 0..vcpus as usize {
        let f = crate::platform::redistributor(i).ok_or("no redistributor for a vCPU's core")?;
        frames.push(f);
    }
    let layout = board::guest_redistributors(frames.as_slice());
    let trapped = TrappedRdPages::new(layout.emulate_last.as_slice());
    let map = |mem: &mut GuestMemory, base: u64, end: u64| {
        if end > base {
            mem.map_device(base, end - base)
                .map_err(|_| "stage-2 device mapping failed")
        } else {
            Ok(())
        }
    };
    map(mem, b.gic.gicd.base, b.gic.gicd.end())?;
    for r in layout.regions.iter() {
        let mut cursor = r.base;
        for &page in layout.emulate_last.iter().filter(|&&p| r.contains(p)) {
            map(mem, cursor, page)?;
            cursor = page + board::GICR_PAGE;
        }
        map(mem, cursor, r.end())?;
    }
    if !layout.emulate_last.is_empty() {
        info!(
            "passthrough GIC: {} of the board's {} redistributors, GICR_TYPER.Last emulated at {:x?}",
            vcpus,
            crate::platform::redistributors().len(),
            layout.emulate_last.as_slice()
        );
    }
    let t = b.timer;
    Ok((
        GicDesc {
            gicd: b.gic.gicd,
            gicr: layout.regions,
            timer: [t.sec_phys, t.phys, t.virt, t.hyp_phys],
            uart_intid: b.uart.intid.unwrap_or(33),
        },
        trapped,
    ))
}

/// The emulated GIC of the virtual-interrupt mode (`vgicd`), for `vcpus` vCPUs.
fn virtual_gic(vcpus: u64) -> GicDesc {
    use crate::vgicd::{GICD_BASE, GICD_SIZE, GICR_BASE, GICR_STRIDE};
    let mut gicr = List::default();
    gicr.push(Range::new(GICR_BASE, vcpus * GICR_STRIDE));
    GicDesc {
        gicd: Range::new(GICD_BASE, GICD_SIZE),
        gicr,
        timer: [
            29,
            crate::gic::PTIMER_INTID,
            crate::gic::VTIMER_INTID,
            crate::gic::HYP_TIMER_INTID,
        ],
        uart_intid: crate::vplatform::uart_intid(),
    }
}

/// Where U-Boot goes (it is position independent and relocates itself to the top of
/// RAM) and where it expects its device tree: exactly the start of RAM.
const UBOOT_IPA: u64 = RAM_IPA + 0x20_0000;
const UBOOT_DTB_IPA: u64 = RAM_IPA;
const UBOOT_MAX: u64 = 0x40_0000;

/// Boots U-Boot (`u-boot.bin` of Debian's u-boot-qemu, `image_size` bytes staged) with a
/// `/config` node whose `bootcmd` is `bootcmd`; the run ends when it powers off.
pub fn run_uboot(image_size: u64, bootcmd: &str, ram: u64) -> (Verdict, ExitStats) {
    match build_uboot(image_size, bootcmd, ram) {
        Ok(vm) => run_two_cores(vm),
        Err(e) => (Err(e), ExitStats::default()),
    }
}

fn build_uboot(image_size: u64, bootcmd: &str, ram: u64) -> Result<TwoCoreVm, &'static str> {
    let vcpus = UBOOT_VCPUS.min(crate::platform::cpu_count() as u64);
    let mut mem = vm_memory(ram, "U-Boot VM")?;
    let (gic, rd_pages) = passthrough_gic(&mut mem, vcpus)?;
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
        cpus: vcpus,
        mem: ram,
        gic: &gic,
        phys_timer_only: false,
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
        vcpus,
        rd_pages,
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
    /// CPU nodes (`cpu@0` ..): vCPU i's MPIDR is core i's (passthrough) or i.
    cpus: u64,
    /// Bytes of RAM at [`RAM_IPA`].
    mem: u64,
    gic: &'a GicDesc,
    /// The timer node lists only the two physical timers (secure, non-secure).
    phys_timer_only: bool,
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
    match load(args, false).map(|(m, e, _)| (m, e)) {
        Ok((mem, entry)) => {
            let every = args
                .bootargs_line
                .split_ascii_whitespace()
                .find_map(|w| w.strip_prefix("snapshot_every="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            crate::vlinux::run(mem, entry, DTB_IPA, args.vcpus, every)
        }
        Err(e) => (Err(e), ExitStats::default()),
    }
}

/// Boots Linux in the virtual-interrupt mode with vCPU i on physical core i.
pub fn run_virtual_smp(args: &LinuxArgs) -> (Verdict, ExitStats) {
    match load(args, false).map(|(m, e, _)| (m, e)) {
        Ok((mem, entry)) => crate::vlinux2::run(mem, entry, DTB_IPA, args.vcpus),
        Err(e) => (Err(e), ExitStats::default()),
    }
}

/// Runs a test guest ELF from the staging area (one vCPU, no device tree) in the
/// virtual-interrupt mode: the emulated GIC and console of a virtual-mode Linux VM,
/// on core 0 alone (`cores` 1) or with core 1 started too (`cores` 2). The guest ends
/// the run with PSCI SYSTEM_OFF.
pub fn run_elf_virtual(mem_size: u64, cores: u64) -> (Verdict, ExitStats) {
    let loaded = vm_memory(mem_size, "test VM").and_then(|mem| {
        let mem: &'static GuestMemory = alloc::boxed::Box::leak(alloc::boxed::Box::new(mem));
        loader::load_elf(loader::staging(), mem)
            .map(|entry| (mem, entry))
            .map_err(|_| "cannot load the guest image")
    });
    match (loaded, cores) {
        (Ok((mem, entry)), 1) => crate::vlinux::run(mem, entry, 0, 1, 0),
        (Ok((mem, entry)), _) => crate::vlinux2::run(mem, entry, 0, 1),
        (Err(e), _) => (Err(e), ExitStats::default()),
    }
}

fn build(args: &LinuxArgs) -> Result<TwoCoreVm, &'static str> {
    let (mem, entry, rd_pages) = load(args, true)?;
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
        rd_pages,
    })
}

/// Guest RAM with the kernel, the initramfs and the DTB in place; with `gic_passthrough`
/// the physical GICD/GICR are mapped into the guest (the PL011 is always emulated).
/// Returns the memory, the kernel's entry point and the trapped redistributor pages.
fn load(
    args: &LinuxArgs,
    gic_passthrough: bool,
) -> Result<(&'static GuestMemory, u64, TrappedRdPages), &'static str> {
    let max = if gic_passthrough {
        crate::platform::cpu_count() as u64
    } else {
        MAX_VIRTUAL_VCPUS
    };
    if !(1..=max).contains(&args.vcpus) {
        error!(
            "vcpus={}: this mode runs 1 to {} vCPUs on this board",
            args.vcpus, max
        );
        return Err("vcpus= out of range for this mode and board");
    }
    let mut mem = vm_memory(args.mem, "Linux VM")?;
    let (gic, rd_pages) = if gic_passthrough {
        passthrough_gic(&mut mem, args.vcpus)?
    } else {
        (virtual_gic(args.vcpus), TrappedRdPages::default())
    };
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
    for word in args.bootargs_line.split_ascii_whitespace() {
        if let Some(a) = word.strip_prefix("kernel_arg=") {
            bootargs.push(' ');
            bootargs.push_str(a);
        }
    }
    let dtb = device_tree(&DtOptions {
        bootargs: Some(&bootargs),
        initrd: Some((INITRD_IPA, INITRD_IPA + args.initrd_size)),
        bootcmd: None,
        cpus: args.vcpus,
        mem: args.mem,
        gic: &gic,
        phys_timer_only: args.phys_timer_only,
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
    Ok((mem, entry, rd_pages))
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
    fdt.property_array_u64("reg", &[RAM_IPA, opts.mem])?;
    fdt.end_node(memory)?;

    let cpus = fdt.begin_node("cpus")?;
    fdt.property_u32("#address-cells", 1)?;
    fdt.property_u32("#size-cells", 0)?;
    for i in 0..opts.cpus as usize {
        // vCPU i's MPIDR: core i's (the passthrough runner gives it; on QEMU virt the
        // same as i, and the virtual-mode runners use i).
        let mpidr = crate::platform::cpu_mpidr(i).unwrap_or(i as u64) as u32;
        let cpu = fdt.begin_node(&alloc::format!("cpu@{mpidr:x}"))?;
        fdt.property_string("device_type", "cpu")?;
        fdt.property_string("compatible", "arm,armv8")?;
        fdt.property_u32("reg", mpidr)?;
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

    let g = opts.gic;
    let gic = fdt.begin_node(&alloc::format!("intc@{:x}", g.gicd.base))?;
    fdt.property_string("compatible", "arm,gic-v3")?;
    fdt.property_u32("#interrupt-cells", 3)?;
    fdt.property_null("interrupt-controller")?;
    let mut reg = alloc::vec![g.gicd.base, g.gicd.size];
    for r in g.gicr.iter() {
        reg.extend([r.base, r.size]);
    }
    fdt.property_u32("#redistributor-regions", g.gicr.len() as u32)?;
    fdt.property_array_u64("reg", &reg)?;
    fdt.property_array_u32("interrupts", &[PPI, 9, LEVEL_HIGH])?;
    fdt.property_phandle(GIC_PHANDLE)?;
    fdt.end_node(gic)?;

    let timer = fdt.begin_node("timer")?;
    fdt.property_string("compatible", "arm,armv8-timer")?;
    // Secure physical, non-secure physical, virtual, hypervisor timer PPIs (the
    // binding's order; INTID - 16 is the PPI number). Without the last two Linux
    // takes the non-secure physical timer.
    let n = if opts.phys_timer_only { 2 } else { 4 };
    let mut cells = Vec::new();
    for &t in &g.timer[..n] {
        cells.extend([PPI, t.saturating_sub(16), LEVEL_HIGH]);
    }
    fdt.property_array_u32("interrupts", &cells)?;
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
    fdt.property_array_u32(
        "interrupts",
        &[SPI, g.uart_intid.saturating_sub(32), LEVEL_HIGH],
    )?;
    fdt.property_array_u32("clocks", &[CLOCK_PHANDLE, CLOCK_PHANDLE])?;
    fdt.property_string_list(
        "clock-names",
        alloc::vec!["uartclk".into(), "apb_pclk".into()],
    )?;
    fdt.end_node(uart)?;

    fdt.end_node(root)?;
    fdt.finish()
}
