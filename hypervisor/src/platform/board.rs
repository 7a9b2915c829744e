//! The board as its device tree describes it, parsed once into plain data: memory,
//! CPUs and their MPIDRs, the GIC (version, distributor, redistributor regions, the
//! GICv2 CPU/virtual-interface frames and the maintenance interrupt), the UART, the
//! generic timer's PPIs and the PSCI conduit. Also the pure parts of what the
//! hypervisor does with it: walking the redistributor frames (`GICR_TYPER`), the
//! redistributor layout a passthrough guest gets, and carving memory.
//!
//! Pure: no hardware access (the redistributor walk takes a reader), no allocation,
//! only `core` and the `fdt` crate, so the same file is compiled by the host tests
//! (`xtask`, `#[path]`-included) that feed it device trees written with `vm-fdt`.

use core::fmt;

/// Most CPUs (and so redistributor frames) the hypervisor keeps track of.
pub const MAX_CPUS: usize = 64;
/// Most memory ranges (and reserved ranges) kept.
pub const MAX_RANGES: usize = 16;
/// Most redistributor regions of a GICv3/v4.
pub const MAX_GICR_REGIONS: usize = 4;

/// A physical address range [base, base + size).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Range {
    pub base: u64,
    pub size: u64,
}

impl Range {
    pub const fn new(base: u64, size: u64) -> Self {
        Self { base, size }
    }

    /// One past the last byte (saturating at the top of the address space).
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.size)
    }

    pub fn contains(&self, addr: u64) -> bool {
        addr >= self.base && addr < self.end()
    }

    /// Whether `other` lies entirely inside this range.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn covers(&self, other: &Range) -> bool {
        other.base >= self.base && other.end() <= self.end()
    }

    pub fn overlaps(&self, other: &Range) -> bool {
        self.base < other.end() && other.base < self.end()
    }
}

/// A list of at most `N` items, without allocation.
#[derive(Clone, Copy, Debug)]
pub struct List<T: Copy + Default, const N: usize> {
    items: [T; N],
    len: usize,
}

impl<T: Copy + Default, const N: usize> Default for List<T, N> {
    fn default() -> Self {
        Self {
            items: [T::default(); N],
            len: 0,
        }
    }
}

impl<T: Copy + Default, const N: usize> List<T, N> {
    /// Appends `v`; `false` if the list is full.
    pub fn push(&mut self, v: T) -> bool {
        match self.items.get_mut(self.len) {
            Some(slot) => {
                *slot = v;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    pub fn as_slice(&self) -> &[T] {
        self.items.get(..self.len).unwrap_or(&[])
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, i: usize) -> Option<&T> {
        self.as_slice().get(i)
    }

    pub fn iter(&self) -> core::slice::Iter<'_, T> {
        self.as_slice().iter()
    }

    fn remove(&mut self, i: usize) {
        if i < self.len {
            self.items.copy_within(i + 1..self.len, i);
            self.len -= 1;
        }
    }
}

/// The GIC architecture version the board's interrupt controller implements.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GicVersion {
    /// GICv2 (`arm,cortex-a15-gic`, `arm,gic-400`): memory-mapped CPU interface.
    V2,
    /// GICv3 or GICv4 (`arm,gic-v3`): redistributors, system-register interface. The
    /// two are told apart by the redistributors' `GICR_TYPER.VLPIS` (see
    /// [`walk_redistributors`]).
    #[default]
    V3,
}

/// The interrupt controller.
#[derive(Clone, Copy, Debug, Default)]
pub struct Gic {
    pub version: GicVersion,
    /// Distributor (GICD).
    pub gicd: Range,
    /// GICv3: the redistributor regions (`#redistributor-regions` of them).
    pub gicr: List<Range, MAX_GICR_REGIONS>,
    /// GICv3: the device tree's `redistributor-stride`, if it gives one.
    pub gicr_stride: Option<u64>,
    /// CPU interface (GICC), virtual-interface control (GICH) and virtual CPU
    /// interface (GICV) frames, where the device tree lists them (GICv2; optional on
    /// GICv3 for legacy support).
    pub gicc: Option<Range>,
    pub gich: Option<Range>,
    pub gicv: Option<Range>,
    /// The virtual CPU interface's maintenance interrupt (an INTID).
    pub maintenance_intid: Option<u32>,
}

/// The UART the hypervisor prints on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Uart {
    pub base: u64,
    pub size: u64,
    /// Its interrupt (an INTID), if the device tree gives one.
    pub intid: Option<u32>,
}

/// The generic timer's interrupts (INTIDs), in the order of the binding:
/// secure physical, non-secure physical (the EL1 physical timer, CNTP), virtual
/// (CNTV), hypervisor physical (CNTHP) and, with FEAT_VHE, hypervisor virtual.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timer {
    pub sec_phys: u32,
    pub phys: u32,
    pub virt: u32,
    pub hyp_phys: u32,
    pub hyp_virt: Option<u32>,
}

/// How PSCI calls reach the firmware (`/psci` `method`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Conduit {
    #[default]
    Smc,
    Hvc,
}

/// Everything the hypervisor takes from the board's device tree.
#[derive(Clone, Copy, Debug, Default)]
pub struct Board {
    /// RAM (`device_type = "memory"` nodes), in device-tree order.
    pub memory: List<Range, MAX_RANGES>,
    /// `/memreserve/` entries and `/reserved-memory` children with a `reg`.
    pub reserved: List<Range, MAX_RANGES>,
    /// MPIDR affinity of each CPU (`/cpus/cpu@*` `reg`), in device-tree order: CPU
    /// index i of the hypervisor is `cpus[i]`.
    pub cpus: List<u64, MAX_CPUS>,
    pub gic: Gic,
    pub uart: Uart,
    pub timer: Timer,
    pub psci: Conduit,
    /// Where the device tree itself lies.
    pub dtb: Range,
}

/// Why a device tree did not give a usable board.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoardError {
    NotADeviceTree,
    NoMemory,
    NoCpus,
    NoGic,
    NoUart,
    NoTimer,
    NoPsci,
    /// A property is missing or malformed: the node and property.
    Bad(&'static str),
    /// More of something than the fixed lists hold.
    TooMany(&'static str),
}

impl fmt::Display for BoardError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Self::NotADeviceTree => write!(f, "no flattened device tree (bad magic or size)"),
            Self::NoMemory => write!(f, "no memory node"),
            Self::NoCpus => write!(f, "no CPU nodes under /cpus"),
            Self::NoGic => write!(f, "no GICv2/GICv3 interrupt controller node"),
            Self::NoUart => write!(f, "no PL011 UART (stdout-path or arm,pl011)"),
            Self::NoTimer => write!(f, "no arm,armv8-timer node with four interrupts"),
            Self::NoPsci => write!(f, "no PSCI node with method smc or hvc"),
            Self::Bad(what) => write!(f, "malformed {}", what),
            Self::TooMany(what) => write!(f, "too many {} for the hypervisor's tables", what),
        }
    }
}

/// Big-endian 32-bit cells of a property value.
fn cells(value: &[u8]) -> impl Iterator<Item = u32> + '_ {
    value
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
}

/// A number of `n` cells (1 or 2) from `it`.
fn number(it: &mut impl Iterator<Item = u32>, n: usize) -> Option<u64> {
    let mut v = 0u64;
    for _ in 0..n {
        v = (v << 32) | u64::from(it.next()?);
    }
    Some(v)
}

/// `#address-cells` / `#size-cells` of `node` (for its children), with the
/// devicetree specification's defaults (2 and 1).
fn child_cells(node: &fdt::node::FdtNode) -> (usize, usize) {
    let get = |name: &str, default: usize| {
        node.property(name)
            .and_then(|p| cells(p.value).next())
            .map_or(default, |v| v as usize)
    };
    (get("#address-cells", 2), get("#size-cells", 1))
}

/// The `reg` ranges of a node whose parent uses `(ac, sc)` cells.
fn regs<const N: usize>(
    node: &fdt::node::FdtNode,
    (ac, sc): (usize, usize),
    what: &'static str,
) -> Result<List<Range, N>, BoardError> {
    let mut out = List::default();
    let p = node.property("reg").ok_or(BoardError::Bad(what))?;
    if ac == 0 || ac > 2 || sc > 2 || p.value.len() % (4 * (ac + sc)) != 0 {
        return Err(BoardError::Bad(what));
    }
    let mut it = cells(p.value);
    while let Some(base) = number(&mut it, ac) {
        let size = number(&mut it, sc).ok_or(BoardError::Bad(what))?;
        if !out.push(Range::new(base, size)) {
            return Err(BoardError::TooMany(what));
        }
    }
    Ok(out)
}

/// An interrupt specifier of the GIC bindings (type, number, flags; a fourth cell,
/// the PPI partition, is ignored) as an INTID: SPI n is 32 + n, PPI n is 16 + n.
fn intid(spec: &[u32]) -> Option<u32> {
    match spec {
        [0, n, ..] => n.checked_add(32),
        [1, n, ..] if *n < 16 => Some(16 + n),
        _ => None,
    }
}

/// The INTIDs of `node`'s `interrupts` (specifiers of `icells` cells).
fn interrupts(node: &fdt::node::FdtNode, icells: usize) -> List<u32, 8> {
    let mut out = List::default();
    if let Some(p) = node.property("interrupts") {
        let v: List<u32, 32> = {
            let mut l = List::default();
            for c in cells(p.value) {
                if !l.push(c) {
                    break;
                }
            }
            l
        };
        for spec in v.as_slice().chunks_exact(icells.max(1)) {
            match intid(spec) {
                Some(i) => {
                    out.push(i);
                }
                None => break,
            }
        }
    }
    out
}

fn compatible_with(node: &fdt::node::FdtNode, any: &[&str]) -> bool {
    node.compatible()
        .is_some_and(|c| c.all().any(|s| any.contains(&s)))
}

const GICV3_COMPATIBLE: &[&str] = &["arm,gic-v3"];
const GICV2_COMPATIBLE: &[&str] = &[
    "arm,cortex-a15-gic",
    "arm,gic-400",
    "arm,cortex-a9-gic",
    "arm,cortex-a7-gic",
];
const TIMER_COMPATIBLE: &[&str] = &["arm,armv8-timer", "arm,armv7-timer"];
const PSCI_COMPATIBLE: &[&str] = &["arm,psci-1.0", "arm,psci-0.2", "arm,psci"];

/// Parses the flattened device tree `dtb`, found at physical address `dtb_addr`.
pub fn parse(dtb: &[u8], dtb_addr: u64) -> Result<Board, BoardError> {
    let fdt = fdt::Fdt::new(dtb).map_err(|_| BoardError::NotADeviceTree)?;
    let root = fdt.find_node("/").ok_or(BoardError::NotADeviceTree)?;
    let root_cells = child_cells(&root);
    let mut b = Board {
        dtb: Range::new(dtb_addr, fdt.total_size() as u64),
        ..Default::default()
    };

    for node in fdt.all_nodes() {
        let is_memory = node
            .property("device_type")
            .and_then(|p| p.as_str())
            .is_some_and(|s| s == "memory");
        if is_memory {
            for r in regs::<MAX_RANGES>(&node, root_cells, "memory reg")?.iter() {
                if r.size != 0 && !b.memory.push(*r) {
                    return Err(BoardError::TooMany("memory ranges"));
                }
            }
        }
    }
    if b.memory.is_empty() {
        return Err(BoardError::NoMemory);
    }
    for r in fdt.memory_reservations() {
        let r = Range::new(r.address() as usize as u64, r.size() as u64);
        if !b.reserved.push(r) {
            return Err(BoardError::TooMany("reserved ranges"));
        }
    }
    if let Some(rm) = fdt.find_node("/reserved-memory") {
        let c = child_cells(&rm);
        for child in rm.children() {
            if child.property("reg").is_some() {
                for r in regs::<MAX_RANGES>(&child, c, "reserved-memory reg")?.iter() {
                    if !b.reserved.push(*r) {
                        return Err(BoardError::TooMany("reserved ranges"));
                    }
                }
            }
        }
    }

    let cpus = fdt.find_node("/cpus").ok_or(BoardError::NoCpus)?;
    let (cpu_ac, _) = child_cells(&cpus);
    for cpu in cpus.children() {
        let is_cpu = cpu
            .property("device_type")
            .and_then(|p| p.as_str())
            .is_some_and(|s| s == "cpu");
        if !is_cpu {
            continue;
        }
        let reg = cpu.property("reg").ok_or(BoardError::Bad("cpu reg"))?;
        if cpu_ac == 0 || cpu_ac > 2 {
            return Err(BoardError::Bad("/cpus #address-cells"));
        }
        let mpidr = number(&mut cells(reg.value), cpu_ac).ok_or(BoardError::Bad("cpu reg"))?;
        if !b.cpus.push(mpidr) {
            return Err(BoardError::TooMany("CPUs"));
        }
    }
    if b.cpus.is_empty() {
        return Err(BoardError::NoCpus);
    }

    // The interrupt controller: GICv3/v4 first, else GICv2.
    let (gic_node, version) = match fdt.find_compatible(GICV3_COMPATIBLE) {
        Some(n) => (n, GicVersion::V3),
        None => (
            fdt.find_compatible(GICV2_COMPATIBLE)
                .ok_or(BoardError::NoGic)?,
            GicVersion::V2,
        ),
    };
    let icells = gic_node
        .property("#interrupt-cells")
        .and_then(|p| cells(p.value).next())
        .map_or(3, |v| v as usize);
    if icells < 3 {
        return Err(BoardError::Bad("GIC #interrupt-cells"));
    }
    let r = regs::<{ MAX_GICR_REGIONS + 4 }>(&gic_node, root_cells, "GIC reg")?;
    let reg = r.as_slice();
    let mut gic = Gic {
        version,
        gicd: *reg.first().ok_or(BoardError::Bad("GIC reg"))?,
        maintenance_intid: interrupts(&gic_node, icells).get(0).copied(),
        ..Default::default()
    };
    match version {
        GicVersion::V3 => {
            let n = gic_node
                .property("#redistributor-regions")
                .and_then(|p| cells(p.value).next())
                .map_or(1, |v| v as usize);
            if n == 0 || n > MAX_GICR_REGIONS || reg.len() < 1 + n {
                return Err(BoardError::Bad("GICv3 redistributor regions"));
            }
            for r in &reg[1..1 + n] {
                gic.gicr.push(*r);
            }
            gic.gicr_stride = gic_node
                .property("redistributor-stride")
                .and_then(|p| number(&mut cells(p.value), p.value.len() / 4));
            gic.gicc = reg.get(1 + n).copied();
            gic.gich = reg.get(2 + n).copied();
            gic.gicv = reg.get(3 + n).copied();
        }
        GicVersion::V2 => {
            gic.gicc = Some(*reg.get(1).ok_or(BoardError::Bad("GICv2 GICC reg"))?);
            gic.gich = reg.get(2).copied();
            gic.gicv = reg.get(3).copied();
        }
    }
    b.gic = gic;

    // The UART: /chosen's stdout-path if it names a PL011, else the first PL011.
    let stdout = fdt
        .find_node("/chosen")
        .and_then(|c| c.property("stdout-path"))
        .and_then(|p| p.as_str())
        .and_then(|path| path.split(':').next())
        // A path or an alias (find_node resolves both).
        .and_then(|path| fdt.find_node(path));
    let uart_node = stdout
        .filter(|n| compatible_with(n, &["arm,pl011"]))
        .or_else(|| fdt.find_compatible(&["arm,pl011"]))
        .ok_or(BoardError::NoUart)?;
    let ur = regs::<4>(&uart_node, root_cells, "UART reg")?;
    let u = ur.get(0).ok_or(BoardError::Bad("UART reg"))?;
    b.uart = Uart {
        base: u.base,
        size: u.size,
        intid: interrupts(&uart_node, icells).get(0).copied(),
    };

    let timer = fdt
        .find_compatible(TIMER_COMPATIBLE)
        .ok_or(BoardError::NoTimer)?;
    let t = interrupts(&timer, icells);
    match t.as_slice() {
        [s, p, v, h, rest @ ..] => {
            b.timer = Timer {
                sec_phys: *s,
                phys: *p,
                virt: *v,
                hyp_phys: *h,
                hyp_virt: rest.first().copied(),
            }
        }
        _ => return Err(BoardError::NoTimer),
    }

    let psci = fdt
        .find_compatible(PSCI_COMPATIBLE)
        .ok_or(BoardError::NoPsci)?;
    b.psci = match psci.property("method").and_then(|p| p.as_str()) {
        Some("smc") => Conduit::Smc,
        Some("hvc") => Conduit::Hvc,
        _ => return Err(BoardError::NoPsci),
    };
    Ok(b)
}

/// `GICR_TYPER` fields (Arm IHI 0069, 12.11.37).
pub mod gicr_typer {
    /// VLPIS [1]: virtual LPIs supported (GICv4): each redistributor has four 64 KiB
    /// frames (RD, SGI, VLPI, reserved) instead of two.
    pub const VLPIS: u64 = 1 << 1;
    /// Last [4]: the last redistributor of its region.
    pub const LAST: u64 = 1 << 4;
    /// Affinity_Value [63:32] as an MPIDR affinity (Aff3 [39:32], Aff2..Aff0 [23:0]).
    pub fn mpidr(typer: u64) -> u64 {
        let a = typer >> 32;
        (a & 0xff_ffff) | ((a >> 24) << 32)
    }
}

/// Offset of `GICR_TYPER` in a redistributor's RD frame.
pub const GICR_TYPER_OFFSET: u64 = 0x8;
/// Frame size of a GICv3 redistributor (RD + SGI) and of a GICv4 one (+ VLPI +
/// reserved).
pub const GICR_STRIDE_V3: u64 = 0x2_0000;
pub const GICR_STRIDE_V4: u64 = 0x4_0000;
/// One 64 KiB page of a redistributor.
pub const GICR_PAGE: u64 = 0x1_0000;

/// One redistributor, as the hardware describes itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RedistFrame {
    /// Physical address of its RD frame.
    pub base: u64,
    /// Bytes to the next frame: 0x20000, or 0x40000 with `GICR_TYPER.VLPIS`, or the
    /// device tree's `redistributor-stride`.
    pub stride: u64,
    /// The affinity of the CPU it serves (MPIDR format).
    pub mpidr: u64,
    /// Its `GICR_TYPER`.
    pub typer: u64,
}

impl RedistFrame {
    pub fn is_last(&self) -> bool {
        self.typer & gicr_typer::LAST != 0
    }
}

/// Walks the redistributor `regions` as the architecture says: each region holds
/// frames one after the other, each frame's size follows from its `GICR_TYPER.VLPIS`
/// (unless the device tree gives a `redistributor-stride`), and the frame whose
/// `GICR_TYPER.Last` is set ends the region. `read_typer(addr)` reads the 64-bit
/// `GICR_TYPER` at `addr`. A region that ends before a frame with `Last` ends the walk
/// of that region (its frames found so far are kept).
pub fn walk_redistributors(
    regions: &[Range],
    dt_stride: Option<u64>,
    mut read_typer: impl FnMut(u64) -> u64,
) -> Result<List<RedistFrame, MAX_CPUS>, BoardError> {
    let mut out = List::default();
    for region in regions {
        let mut base = region.base;
        while base
            .checked_add(GICR_STRIDE_V3)
            .is_some_and(|e| e <= region.end())
        {
            let typer = read_typer(base + GICR_TYPER_OFFSET);
            let stride = match dt_stride {
                Some(s) if s >= GICR_STRIDE_V3 => s,
                _ if typer & gicr_typer::VLPIS != 0 => GICR_STRIDE_V4,
                _ => GICR_STRIDE_V3,
            };
            let f = RedistFrame {
                base,
                stride,
                mpidr: gicr_typer::mpidr(typer),
                typer,
            };
            if !out.push(f) {
                return Err(BoardError::TooMany("redistributors"));
            }
            if f.is_last() {
                break;
            }
            base += stride;
        }
    }
    Ok(out)
}

/// The redistributors a guest gets when it owns the physical GIC of some cores: for
/// each run of frames that follow one another (in vCPU order) a region for its device
/// tree and its stage 2, and the frames that end a region without `GICR_TYPER.Last`
/// set in hardware (the board's last CPU is not the guest's), whose RD page
/// (`GICR_PAGE` at the frame's base) must be trapped so the guest reads `Last` there
/// — Linux walks a region until it finds `Last`, past the region's end.
#[derive(Clone, Copy, Debug, Default)]
pub struct GuestRedists {
    pub regions: List<Range, MAX_CPUS>,
    /// RD frames whose `GICR_TYPER` the hypervisor emulates with `Last` set.
    pub emulate_last: List<u64, MAX_CPUS>,
}

/// [`GuestRedists`] for the frames `frames` (one per vCPU, in vCPU order).
pub fn guest_redistributors(frames: &[RedistFrame]) -> GuestRedists {
    let mut g = GuestRedists::default();
    let mut i = 0;
    while i < frames.len() {
        let first = frames[i];
        let mut j = i;
        while j + 1 < frames.len() && frames[j + 1].base == frames[j].base + frames[j].stride {
            j += 1;
        }
        let last = frames[j];
        g.regions
            .push(Range::new(first.base, last.base + last.stride - first.base));
        if !last.is_last() {
            g.emulate_last.push(last.base);
        }
        i = j + 1;
    }
    g
}

/// Physical memory not yet given out, carved top-down.
#[derive(Clone, Copy, Debug, Default)]
pub struct Carver {
    free: List<Range, 32>,
}

/// A request the free memory cannot satisfy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoRoom {
    pub wanted: u64,
    /// The largest block that was free (before alignment).
    pub largest_free: u64,
}

impl Carver {
    /// The memory ranges `memory` less every range in `reserved`, below `limit`
    /// (the end of what the hypervisor can address).
    pub fn new(memory: &[Range], reserved: &[Range], limit: u64) -> Self {
        let mut c = Carver::default();
        for m in memory {
            let end = m.end().min(limit);
            if end > m.base {
                c.free.push(Range::new(m.base, end - m.base));
            }
        }
        for r in reserved {
            c.reserve(*r);
        }
        c
    }

    /// Takes `r` out of the free ranges.
    pub fn reserve(&mut self, r: Range) {
        let mut i = 0;
        while i < self.free.len() {
            let f = self.free.as_slice()[i];
            if !f.overlaps(&r) {
                i += 1;
                continue;
            }
            self.free.remove(i);
            if f.base < r.base {
                self.free.push(Range::new(f.base, r.base - f.base));
            }
            if r.end() < f.end() {
                self.free.push(Range::new(r.end(), f.end() - r.end()));
            }
            // The pieces went to the end of the list: look at index i again.
        }
    }

    /// `size` bytes aligned to `align` (a power of two), from the highest free range
    /// where they fit.
    pub fn alloc(&mut self, size: u64, align: u64) -> Result<u64, NoRoom> {
        let align = align.max(1);
        let mut best: Option<u64> = None;
        for f in self.free.iter() {
            let Some(top) = f.end().checked_sub(size) else {
                continue;
            };
            let base = top & !(align - 1);
            if size != 0 && base >= f.base && best.is_none_or(|b| base > b) {
                best = Some(base);
            }
        }
        match best {
            Some(base) => {
                self.reserve(Range::new(base, size));
                Ok(base)
            }
            None => Err(NoRoom {
                wanted: size,
                largest_free: self.largest_free(),
            }),
        }
    }

    /// The size of the largest free range.
    pub fn largest_free(&self) -> u64 {
        self.free.iter().map(|f| f.size).max().unwrap_or(0)
    }

    /// Total free bytes.
    pub fn free_bytes(&self) -> u64 {
        self.free.iter().map(|f| f.size).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_fdt::FdtWriter;

    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;

    /// What a test board has.
    struct Spec {
        cpus: u32,
        mem: u64,
        gic: GicVersion,
        /// GICv3 redistributor region size.
        gicr_size: u64,
        psci: &'static str,
    }

    impl Default for Spec {
        fn default() -> Self {
            Spec {
                cpus: 2,
                mem: GIB,
                gic: GicVersion::V3,
                gicr_size: 2 * GICR_STRIDE_V3,
                psci: "smc",
            }
        }
    }

    /// A device tree shaped like QEMU virt's (`dumpdtb`), written with vm-fdt.
    fn qemu_like(s: &Spec) -> Vec<u8> {
        let mut f =
            FdtWriter::new_with_mem_reserv(&[
                vm_fdt::FdtReserveEntry::new(0x4400_0000, 0x1000).unwrap()
            ])
            .unwrap();
        let root = f.begin_node("").unwrap();
        f.property_u32("#address-cells", 2).unwrap();
        f.property_u32("#size-cells", 2).unwrap();
        f.property_u32("interrupt-parent", 1).unwrap();
        let chosen = f.begin_node("chosen").unwrap();
        f.property_string("stdout-path", "/pl011@9000000").unwrap();
        f.property_string("bootargs", "scenario=demo").unwrap();
        f.end_node(chosen).unwrap();
        let m = f.begin_node("memory@40000000").unwrap();
        f.property_string("device_type", "memory").unwrap();
        f.property_array_u64("reg", &[0x4000_0000, s.mem]).unwrap();
        f.end_node(m).unwrap();
        let cpus = f.begin_node("cpus").unwrap();
        f.property_u32("#address-cells", 1).unwrap();
        f.property_u32("#size-cells", 0).unwrap();
        for i in 0..s.cpus {
            let c = f.begin_node(&format!("cpu@{i}")).unwrap();
            f.property_string("device_type", "cpu").unwrap();
            f.property_string("compatible", "arm,cortex-a57").unwrap();
            f.property_u32("reg", i).unwrap();
            f.property_string("enable-method", "psci").unwrap();
            f.end_node(c).unwrap();
        }
        let map = f.begin_node("cpu-map").unwrap();
        f.end_node(map).unwrap();
        f.end_node(cpus).unwrap();
        let psci = f.begin_node("psci").unwrap();
        f.property_string_list(
            "compatible",
            vec![
                "arm,psci-1.0".into(),
                "arm,psci-0.2".into(),
                "arm,psci".into(),
            ],
        )
        .unwrap();
        f.property_string("method", s.psci).unwrap();
        f.end_node(psci).unwrap();
        match s.gic {
            GicVersion::V3 => {
                let g = f.begin_node("intc@8000000").unwrap();
                f.property_string("compatible", "arm,gic-v3").unwrap();
                f.property_u32("#interrupt-cells", 3).unwrap();
                f.property_null("interrupt-controller").unwrap();
                f.property_u32("#redistributor-regions", 1).unwrap();
                f.property_array_u64("reg", &[0x0800_0000, 0x1_0000, 0x080a_0000, s.gicr_size])
                    .unwrap();
                f.property_array_u32("interrupts", &[1, 9, 4]).unwrap();
                f.property_phandle(1).unwrap();
                f.end_node(g).unwrap();
            }
            GicVersion::V2 => {
                let g = f.begin_node("intc@8000000").unwrap();
                f.property_string("compatible", "arm,cortex-a15-gic")
                    .unwrap();
                f.property_u32("#interrupt-cells", 3).unwrap();
                f.property_null("interrupt-controller").unwrap();
                f.property_array_u64(
                    "reg",
                    &[
                        0x0800_0000,
                        0x1_0000,
                        0x0801_0000,
                        0x1_0000,
                        0x0803_0000,
                        0x1_0000,
                        0x0804_0000,
                        0x1_0000,
                    ],
                )
                .unwrap();
                f.property_array_u32("interrupts", &[1, 9, 0xf04]).unwrap();
                f.property_phandle(1).unwrap();
                f.end_node(g).unwrap();
            }
        }
        let t = f.begin_node("timer").unwrap();
        f.property_string_list(
            "compatible",
            vec!["arm,armv8-timer".into(), "arm,armv7-timer".into()],
        )
        .unwrap();
        f.property_array_u32("interrupts", &[1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4])
            .unwrap();
        f.property_null("always-on").unwrap();
        f.end_node(t).unwrap();
        // A second PL011 first: stdout-path must win over "the first one".
        let u2 = f.begin_node("pl011@9040000").unwrap();
        f.property_string_list(
            "compatible",
            vec!["arm,pl011".into(), "arm,primecell".into()],
        )
        .unwrap();
        f.property_array_u64("reg", &[0x0904_0000, 0x1000]).unwrap();
        f.property_array_u32("interrupts", &[0, 8, 4]).unwrap();
        f.end_node(u2).unwrap();
        let u = f.begin_node("pl011@9000000").unwrap();
        f.property_string_list(
            "compatible",
            vec!["arm,pl011".into(), "arm,primecell".into()],
        )
        .unwrap();
        f.property_array_u64("reg", &[0x0900_0000, 0x1000]).unwrap();
        f.property_array_u32("interrupts", &[0, 1, 4]).unwrap();
        f.end_node(u).unwrap();
        f.end_node(root).unwrap();
        f.finish().unwrap()
    }

    /// A fake redistributor region: `n` frames of `stride` from 0x080a_0000 (VLPIS set
    /// when the stride is 0x40000), `Last` on frame `last`, Aff0 = index.
    fn fake_typer(n: u64, stride: u64, last: u64) -> impl FnMut(u64) -> u64 {
        move |addr| {
            let off = addr - 0x080a_0000 - GICR_TYPER_OFFSET;
            assert_eq!(off % stride, 0, "read between frames at {addr:#x}");
            let i = off / stride;
            assert!(i < n, "read past the last frame at {addr:#x}");
            let vlpis = if stride == GICR_STRIDE_V4 {
                gicr_typer::VLPIS
            } else {
                0
            };
            let l = if i == last { gicr_typer::LAST } else { 0 };
            (i << 32) | (i << 8) | vlpis | l
        }
    }

    #[test]
    fn qemu_virt_gicv3_two_cpus() {
        let dtb = qemu_like(&Spec::default());
        let b = parse(&dtb, 0x4000_0000).unwrap();
        assert_eq!(b.memory.as_slice(), [Range::new(0x4000_0000, GIB)]);
        assert_eq!(b.reserved.as_slice(), [Range::new(0x4400_0000, 0x1000)]);
        assert_eq!(b.cpus.as_slice(), [0, 1]);
        assert_eq!(b.gic.version, GicVersion::V3);
        assert_eq!(b.gic.gicd, Range::new(0x0800_0000, 0x1_0000));
        assert_eq!(b.gic.gicr.as_slice(), [Range::new(0x080a_0000, 0x4_0000)]);
        assert_eq!(b.gic.gicr_stride, None);
        assert_eq!(b.gic.gicc, None);
        assert_eq!(b.gic.maintenance_intid, Some(25));
        assert_eq!(
            b.uart,
            Uart {
                base: 0x0900_0000,
                size: 0x1000,
                intid: Some(33)
            }
        );
        assert_eq!(
            b.timer,
            Timer {
                sec_phys: 29,
                phys: 30,
                virt: 27,
                hyp_phys: 26,
                hyp_virt: None
            }
        );
        assert_eq!(b.psci, Conduit::Smc);
        assert_eq!(b.dtb, Range::new(0x4000_0000, dtb.len() as u64));
    }

    #[test]
    fn gicv3_stride_0x20000_walk() {
        let s = Spec {
            cpus: 2,
            gicr_size: 2 * GICR_STRIDE_V3,
            ..Default::default()
        };
        let b = parse(&qemu_like(&s), 0x4000_0000).unwrap();
        let frames = walk_redistributors(
            b.gic.gicr.as_slice(),
            b.gic.gicr_stride,
            fake_typer(2, GICR_STRIDE_V3, 1),
        )
        .unwrap();
        let bases: Vec<_> = frames.iter().map(|f| (f.base, f.mpidr, f.stride)).collect();
        assert_eq!(
            bases,
            [
                (0x080a_0000, 0, GICR_STRIDE_V3),
                (0x080c_0000, 1, GICR_STRIDE_V3)
            ]
        );
        assert!(frames.get(1).unwrap().is_last() && !frames.get(0).unwrap().is_last());
    }

    #[test]
    fn gicv4_stride_0x40000_four_cpus() {
        let s = Spec {
            cpus: 4,
            gicr_size: 4 * GICR_STRIDE_V4,
            ..Default::default()
        };
        let b = parse(&qemu_like(&s), 0x4000_0000).unwrap();
        assert_eq!(b.cpus.as_slice(), [0, 1, 2, 3]);
        let frames = walk_redistributors(
            b.gic.gicr.as_slice(),
            None,
            fake_typer(4, GICR_STRIDE_V4, 3),
        )
        .unwrap();
        let bases: Vec<_> = frames.iter().map(|f| f.base).collect();
        assert_eq!(bases, [0x080a_0000, 0x080e_0000, 0x0812_0000, 0x0816_0000]);
        assert!(frames.iter().all(|f| f.stride == GICR_STRIDE_V4));
        assert_eq!(frames.get(3).unwrap().mpidr, 3);
    }

    #[test]
    fn walk_stops_at_last_and_at_the_region_end() {
        // Last on frame 1 of a region with room for 4: frames 2 and 3 are never read.
        let frames = walk_redistributors(
            &[Range::new(0x080a_0000, 4 * GICR_STRIDE_V3)],
            None,
            fake_typer(2, GICR_STRIDE_V3, 1),
        )
        .unwrap();
        assert_eq!(frames.len(), 2);
        // No Last at all: the region's end stops the walk.
        let frames = walk_redistributors(
            &[Range::new(0x080a_0000, 3 * GICR_STRIDE_V3)],
            None,
            fake_typer(3, GICR_STRIDE_V3, 99),
        )
        .unwrap();
        assert_eq!(frames.len(), 3);
        // The device tree's stride wins over VLPIS.
        let frames = walk_redistributors(
            &[Range::new(0x080a_0000, 2 * GICR_STRIDE_V4)],
            Some(GICR_STRIDE_V4),
            fake_typer(2, GICR_STRIDE_V4, 1),
        )
        .unwrap();
        assert_eq!(frames.get(1).unwrap().base, 0x080e_0000);
    }

    #[test]
    fn affinity_from_gicr_typer() {
        assert_eq!(gicr_typer::mpidr(0x0102_0304_0000_0000), 0x01_0002_0304);
        assert_eq!(gicr_typer::mpidr(0x0000_0007_0000_0010), 7);
    }

    #[test]
    fn guest_redistributors_of_a_subset_emulate_last() {
        let frames = walk_redistributors(
            &[Range::new(0x080a_0000, 4 * GICR_STRIDE_V4)],
            None,
            fake_typer(4, GICR_STRIDE_V4, 3),
        )
        .unwrap();
        let all = frames.as_slice();
        // 2 vCPUs on cores 0 and 1 of 4: one region of 2 frames, frame 1 needs Last.
        let g = guest_redistributors(&all[..2]);
        assert_eq!(
            g.regions.as_slice(),
            [Range::new(0x080a_0000, 2 * GICR_STRIDE_V4)]
        );
        assert_eq!(g.emulate_last.as_slice(), [0x080e_0000]);
        // All four: the hardware's Last is already right.
        let g = guest_redistributors(all);
        assert_eq!(
            g.regions.as_slice(),
            [Range::new(0x080a_0000, 4 * GICR_STRIDE_V4)]
        );
        assert!(g.emulate_last.is_empty());
        // Cores 0 and 2: two regions, each ending in an emulated Last.
        let g = guest_redistributors(&[all[0], all[2]]);
        assert_eq!(g.regions.len(), 2);
        assert_eq!(g.emulate_last.as_slice(), [0x080a_0000, 0x0812_0000]);
    }

    #[test]
    fn gicv2_with_virtualization_frames() {
        let s = Spec {
            gic: GicVersion::V2,
            ..Default::default()
        };
        let b = parse(&qemu_like(&s), 0x4000_0000).unwrap();
        assert_eq!(b.gic.version, GicVersion::V2);
        assert_eq!(b.gic.gicd.base, 0x0800_0000);
        assert_eq!(b.gic.gicc, Some(Range::new(0x0801_0000, 0x1_0000)));
        assert_eq!(b.gic.gich, Some(Range::new(0x0803_0000, 0x1_0000)));
        assert_eq!(b.gic.gicv, Some(Range::new(0x0804_0000, 0x1_0000)));
        assert!(b.gic.gicr.is_empty());
        assert_eq!(b.gic.maintenance_intid, Some(25));
    }

    #[test]
    fn memory_512m_and_4g_and_hvc() {
        let b = parse(
            &qemu_like(&Spec {
                mem: 512 * MIB,
                psci: "hvc",
                ..Default::default()
            }),
            0x4000_0000,
        )
        .unwrap();
        assert_eq!(b.memory.as_slice(), [Range::new(0x4000_0000, 512 * MIB)]);
        assert_eq!(b.psci, Conduit::Hvc);
        let b = parse(
            &qemu_like(&Spec {
                mem: 4 * GIB,
                ..Default::default()
            }),
            0x4000_0000,
        )
        .unwrap();
        assert_eq!(b.memory.get(0).unwrap().end(), 0x1_4000_0000);
    }

    #[test]
    fn not_a_device_tree() {
        assert_eq!(
            parse(&[0u8; 64], 0).unwrap_err(),
            BoardError::NotADeviceTree
        );
        assert_eq!(parse(&[], 0).unwrap_err(), BoardError::NotADeviceTree);
        let mut dtb = qemu_like(&Spec::default());
        dtb.truncate(dtb.len() / 2);
        assert!(parse(&dtb, 0).is_err());
    }

    #[test]
    fn missing_pieces_are_named() {
        let mut f = FdtWriter::new().unwrap();
        let root = f.begin_node("").unwrap();
        f.end_node(root).unwrap();
        assert_eq!(
            parse(&f.finish().unwrap(), 0).unwrap_err(),
            BoardError::NoMemory
        );
        assert!(BoardError::NoMemory.to_string().contains("memory"));
    }

    /// The reservations of a QEMU run: the DTB, the hypervisor image, the staging area.
    fn reserved() -> [Range; 3] {
        [
            Range::new(0x4000_0000, 0x10_0000),
            Range::new(0x4020_0000, 0x140_0000),
            Range::new(0x4800_0000, 0x800_0000),
        ]
    }

    #[test]
    fn carve_512m() {
        let mem = [Range::new(0x4000_0000, 512 * MIB)];
        let mut c = Carver::new(&mem, &reserved(), 1 << 40);
        // 1 GiB does not fit; the largest free block is the 256 MiB above staging.
        let e = c.alloc(GIB, 2 * MIB).unwrap_err();
        assert_eq!(
            e,
            NoRoom {
                wanted: GIB,
                largest_free: 256 * MIB
            }
        );
        let vm = c.alloc(256 * MIB, 2 * MIB).unwrap();
        assert_eq!(vm, 0x5000_0000);
        // The heap goes into what is left below the staging area.
        let heap = c.alloc(16 * MIB, 2 * MIB).unwrap();
        assert!(heap >= 0x4160_0000 && heap + 16 * MIB <= 0x4800_0000);
        for r in reserved() {
            assert!(!Range::new(heap, 16 * MIB).overlaps(&r));
        }
    }

    #[test]
    fn carve_4g_top_down_and_limit() {
        let mem = [Range::new(0x4000_0000, 4 * GIB)];
        let mut c = Carver::new(&mem, &reserved(), 1 << 40);
        assert_eq!(c.alloc(GIB, 2 * MIB).unwrap(), 0x1_0000_0000);
        assert_eq!(c.alloc(GIB, 2 * MIB).unwrap(), 0xc000_0000);
        // Below a 4 GiB limit the top gigabyte is out of reach.
        let mut c = Carver::new(&mem, &reserved(), 1 << 32);
        assert_eq!(c.alloc(GIB, 2 * MIB).unwrap(), 0xc000_0000);
        let before = c.free_bytes();
        assert!(c.alloc(0, 1).is_err());
        assert_eq!(c.free_bytes(), before);
    }

    #[test]
    fn carve_never_overlaps() {
        let mem = [
            Range::new(0x4000_0000, 2 * GIB),
            Range::new(0x1_0000_0000, GIB),
        ];
        let mut c = Carver::new(&mem, &reserved(), 1 << 40);
        let mut got: Vec<Range> = Vec::new();
        for size in [300 * MIB, GIB, 7 * MIB, 64 * MIB, 500 * MIB, 3 * MIB] {
            if let Ok(b) = c.alloc(size, 2 * MIB) {
                assert_eq!(b % (2 * MIB), 0);
                let r = Range::new(b, size);
                assert!(mem.iter().any(|m| m.covers(&r)), "{r:?} outside RAM");
                for x in got.iter().chain(reserved().iter()) {
                    assert!(!r.overlaps(x), "{r:?} overlaps {x:?}");
                }
                got.push(r);
            }
        }
        assert!(got.len() >= 5);
    }
}
