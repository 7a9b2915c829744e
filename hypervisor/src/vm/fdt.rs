//! The device tree a VM gets when its description brings none: memory, its CPUs (PSCI
//! over HVC, answered by arm_vcpu), the GIC it sees (the emulated one, or the board's
//! in passthrough), the generic timer, a fixed clock, the PL011 console, `/chosen`
//! (command line, initrd) and, for U-Boot, `/config` (`bootcmd`). Written with
//! `vm-fdt`.

use alloc::string::String;
use alloc::vec::Vec;

use vm_fdt::FdtWriter;

use crate::devices::{CONSOLE_IPA, CONSOLE_SIZE};
use crate::platform::board::{List, Range, MAX_CPUS};
use crate::vm::config::GuestTimer;

/// The interrupt controller a guest's device tree describes.
#[derive(Clone, Copy, Debug)]
pub struct GicDesc {
    pub gicd: Range,
    pub gicr: List<Range, MAX_CPUS>,
    /// Timer PPIs (as INTIDs): secure physical, physical, virtual, hypervisor.
    pub timer: [u32; 4],
    /// The console's SPI (INTID).
    pub uart_intid: u32,
    /// The virtual CPU interface's maintenance interrupt (INTID).
    pub maintenance: u32,
    /// A GICv2 (`arm,cortex-a15-gic`, written by `crate::vgicd_v2::fdt_node`) instead
    /// of the GICv3 `gicd`/`gicr` describe.
    pub v2: Option<crate::vgicd_v2::GicV2Regions>,
}

/// What goes into the tree.
pub struct Machine<'a> {
    /// RAM: [base, base + size).
    pub ram: (u64, u64),
    /// vCPU i's MPIDR affinity.
    pub mpidrs: &'a [u64],
    pub gic: &'a GicDesc,
    pub timer: GuestTimer,
    /// `/chosen/bootargs`.
    pub bootargs: &'a str,
    /// `/chosen/linux,initrd-start` and `-end`.
    pub initrd: Option<(u64, u64)>,
    /// `/config/bootcmd` (with `bootdelay = <0>`), for U-Boot.
    pub bootcmd: Option<&'a str>,
    /// The VM has a virtual PMUv3: an `arm,armv8-pmuv3` node (PPI 7, INTID 23).
    pub pmu: bool,
}

const GIC_PHANDLE: u32 = 1;
const CLOCK_PHANDLE: u32 = 2;
/// Interrupt specifier cells: type (0 SPI, 1 PPI), number, flags (4 = level high).
const PPI: u32 = 1;
const SPI: u32 = 0;
const LEVEL_HIGH: u32 = 4;

/// Writes the device tree.
pub fn write(m: &Machine) -> Result<Vec<u8>, vm_fdt::Error> {
    let mut fdt = FdtWriter::new()?;
    let root = fdt.begin_node("")?;
    fdt.property_string("compatible", "linux,dummy-virt")?;
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_u32("interrupt-parent", GIC_PHANDLE)?;

    let uart_node: String = alloc::format!("pl011@{CONSOLE_IPA:x}");
    let chosen = fdt.begin_node("chosen")?;
    if !m.bootargs.is_empty() {
        fdt.property_string("bootargs", m.bootargs)?;
    }
    fdt.property_string("stdout-path", &alloc::format!("/{uart_node}"))?;
    if let Some((start, end)) = m.initrd {
        fdt.property_u64("linux,initrd-start", start)?;
        fdt.property_u64("linux,initrd-end", end)?;
    }
    fdt.end_node(chosen)?;

    if let Some(cmd) = m.bootcmd {
        let config = fdt.begin_node("config")?;
        fdt.property_u32("bootdelay", 0)?;
        fdt.property_string("bootcmd", cmd)?;
        fdt.end_node(config)?;
    }

    let memory = fdt.begin_node(&alloc::format!("memory@{:x}", m.ram.0))?;
    fdt.property_string("device_type", "memory")?;
    fdt.property_array_u64("reg", &[m.ram.0, m.ram.1])?;
    fdt.end_node(memory)?;

    let cpus = fdt.begin_node("cpus")?;
    fdt.property_u32("#address-cells", 1)?;
    fdt.property_u32("#size-cells", 0)?;
    for &mpidr in m.mpidrs {
        let mpidr = mpidr as u32;
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

    let g = m.gic;
    // GICv2 PPI specifiers carry the CPU mask [15:8] (the binding); GICv3's do not.
    let ppi_flags = match g.v2 {
        Some(r) => {
            crate::vgicd_v2::fdt_node(&mut fdt, &r, m.mpidrs.len(), GIC_PHANDLE)?;
            crate::vgicd_v2::ppi_flags(m.mpidrs.len())
        }
        None => {
            gicv3_node(&mut fdt, g)?;
            LEVEL_HIGH
        }
    };

    let timer = fdt.begin_node("timer")?;
    fdt.property_string("compatible", "arm,armv8-timer")?;
    // Secure physical, non-secure physical, virtual, hypervisor timer PPIs (the
    // binding's order; INTID - 16 is the PPI number). Without the last two Linux
    // takes the non-secure physical timer.
    let n = match m.timer {
        GuestTimer::Physical => 2,
        GuestTimer::All => 4,
    };
    let mut cells = Vec::new();
    for &t in &g.timer[..n] {
        cells.extend([PPI, t.saturating_sub(16), ppi_flags]);
    }
    fdt.property_array_u32("interrupts", &cells)?;
    fdt.property_null("always-on")?;
    fdt.end_node(timer)?;

    if m.pmu {
        let pmu = fdt.begin_node("pmu")?;
        fdt.property_string("compatible", "arm,armv8-pmuv3")?;
        fdt.property_array_u32(
            "interrupts",
            &[PPI, arm_vcpu::pmu::PMU_INTID - 16, LEVEL_HIGH],
        )?;
        fdt.end_node(pmu)?;
    }

    let clk = fdt.begin_node("apb-pclk")?;
    fdt.property_string("compatible", "fixed-clock")?;
    fdt.property_u32("#clock-cells", 0)?;
    fdt.property_u32("clock-frequency", 24_000_000)?;
    fdt.property_string("clock-output-names", "clk24mhz")?;
    fdt.property_phandle(CLOCK_PHANDLE)?;
    fdt.end_node(clk)?;

    let uart = fdt.begin_node(&uart_node)?;
    fdt.property_string_list(
        "compatible",
        alloc::vec!["arm,pl011".into(), "arm,primecell".into()],
    )?;
    fdt.property_array_u64("reg", &[CONSOLE_IPA, CONSOLE_SIZE])?;
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

/// The GICv3 node: distributor and redistributor regions, the maintenance interrupt.
fn gicv3_node(fdt: &mut FdtWriter, g: &GicDesc) -> Result<(), vm_fdt::Error> {
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
    fdt.property_array_u32(
        "interrupts",
        &[PPI, g.maintenance.saturating_sub(16), LEVEL_HIGH],
    )?;
    fdt.property_phandle(GIC_PHANDLE)?;
    fdt.end_node(gic)
}
