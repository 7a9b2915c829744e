//! The physical platform: what the board's device tree says (`board`, pure), read once
//! at boot by [`discover`], and the hypervisor's drivers for it — the physical GIC
//! (`gic`), the firmware's PSCI (`firmware`), and the EL2 address space and memory
//! carving (here).
//!
//! Everything that used to be a constant of QEMU `virt` (GICD/GICR bases and stride,
//! the core count, where guest RAM lies, the console's base) comes from [`board()`],
//! [`redistributors()`] and [`alloc_ram`].

pub mod board;
pub mod firmware;
pub mod gic;

use board::{Board, Carver, GicVersion, List, Range, RedistFrame, MAX_CPUS};
use spin::{Mutex, Once};

/// Where QEMU puts its device tree (the start of RAM) for an ELF kernel, which gets no
/// pointer in x0 (docs/test-protocol.md).
pub const DTB_PA: u64 = 0x4000_0000;
/// The guest-image staging area QEMU's loader fills (docs/test-protocol.md); never
/// given out.
pub const STAGING: Range = Range::new(0x4800_0000, 0x0800_0000);
/// The hypervisor's heap, carved from RAM at boot.
const HEAP_SIZE: u64 = 16 << 20;
/// Each secondary core's stack, carved from the heap when it starts.
pub const SECONDARY_STACK: usize = 128 << 10;
/// Alignment of RAM handed out (stage-2 block mappings, 2 MiB).
const RAM_ALIGN: u64 = 2 << 20;
/// The EL2 identity map: 1 GiB blocks from a 512-entry level-1 table (TCR_EL2.T0SZ =
/// 25, 512 GiB). boot.S maps the first 4 GiB; [`discover`] adds RAM above.
const EL2_MAP_LIMIT: u64 = 1 << 39;
const GIB: u64 = 1 << 30;

static BOARD: Once<Board> = Once::new();
static REDISTS: Once<List<RedistFrame, MAX_CPUS>> = Once::new();
static CARVER: Mutex<Option<Carver>> = Mutex::new(None);

extern "C" {
    static __image_start: u8;
    static __image_end: u8;
    /// boot.S's level-1 translation table of the EL2 identity map.
    static mut el2_l1_table: [u64; 512];
}

/// The board, as [`discover`] found it.
pub fn board() -> &'static Board {
    match BOARD.get() {
        Some(b) => b,
        None => early_fail("the platform was used before discovery"),
    }
}

/// The redistributor frames (GICv3/v4), one per CPU, in the order the walk found them.
pub fn redistributors() -> &'static [RedistFrame] {
    REDISTS.get().map_or(&[], |l| l.as_slice())
}

/// Physical cores of the board.
pub fn cpu_count() -> usize {
    board().cpus.len()
}

/// MPIDR affinity of core `index`.
pub fn cpu_mpidr(index: usize) -> Option<u64> {
    board().cpus.get(index).copied()
}

/// This core's MPIDR affinity (Aff3..Aff0 of MPIDR_EL1).
pub fn current_mpidr() -> u64 {
    let v: u64;
    // SAFETY: reading MPIDR_EL1 at EL2 gives this core's affinity; no side effects.
    unsafe {
        core::arch::asm!("mrs {0}, mpidr_el1", out(reg) v, options(nomem, nostack, preserves_flags))
    };
    v & 0xff_00ff_ffff
}

/// The redistributor of core `index`.
pub fn redistributor(index: usize) -> Option<RedistFrame> {
    let mpidr = cpu_mpidr(index)?;
    redistributors().iter().find(|f| f.mpidr == mpidr).copied()
}

/// Ends the run before the console works: the reason on the semihosting console,
/// status 104.
pub fn early_fail(why: &str) -> ! {
    crate::console::semihost_write("ARM_VCPU_PANIC platform: ");
    crate::console::semihost_write(why);
    crate::console::semihost_write("\n");
    crate::console::exit(104)
}

/// Reads the board's device tree, points the console at its UART, maps RAM above
/// 4 GiB into the EL2 identity map, carves the heap and returns its range, and walks
/// the redistributors. Runs first on the boot core, before anything allocates.
pub fn discover() -> Range {
    // SAFETY: QEMU places its DTB at the start of RAM, below our image, and it stays
    // there for the whole run; the header gives its size, checked against a 2 MiB cap
    // (the gap below the image) before the slice is made.
    let dtb = unsafe {
        let hdr = core::slice::from_raw_parts(DTB_PA as *const u8, 8);
        let magic = u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
        let size = u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]) as usize;
        if magic != 0xd00d_feed || size > (2 << 20) {
            early_fail("no device tree at 0x4000_0000 (QEMU puts it there for an ELF kernel)");
        }
        core::slice::from_raw_parts(DTB_PA as *const u8, size)
    };
    let b = match board::parse(dtb, DTB_PA) {
        Ok(b) => b,
        Err(e) => {
            let mut buf = Buf::default();
            let _ = core::fmt::write(&mut buf, format_args!("device tree: {}", e));
            early_fail(buf.as_str())
        }
    };
    let b = BOARD.call_once(|| b);
    crate::console::set_base(b.uart.base as usize);

    for r in b.memory.iter() {
        map_high_ram(r);
    }

    // Linker symbols; only their addresses are used.
    let image = {
        let s = core::ptr::addr_of!(__image_start) as u64;
        let e = core::ptr::addr_of!(__image_end) as u64;
        Range::new(s, e - s)
    };
    let mut reserved: List<Range, 24> = List::default();
    for r in [b.dtb, image, STAGING].iter().chain(b.reserved.iter()) {
        reserved.push(*r);
    }
    let mut carver = Carver::new(b.memory.as_slice(), reserved.as_slice(), EL2_MAP_LIMIT);
    // The heap goes as low as it can (just above the image when there is room), so
    // the large blocks above stay whole for VMs.
    let heap = match carve_low(&mut carver, HEAP_SIZE, image.end()) {
        Some(h) => h,
        None => early_fail("no room for the hypervisor's 16 MiB heap in the board's memory"),
    };
    *CARVER.lock() = Some(carver);

    if b.gic.version == GicVersion::V3 {
        let frames = board::walk_redistributors(b.gic.gicr.as_slice(), b.gic.gicr_stride, |a| {
            // SAFETY: GICR_TYPER of a redistributor frame inside the device tree's
            // region, mapped as Device memory by the boot page table (0..1 GiB).
            unsafe { core::ptr::read_volatile(a as *const u64) }
        });
        match frames {
            Ok(f) => {
                REDISTS.call_once(|| f);
            }
            Err(e) => {
                let mut buf = Buf::default();
                let _ = core::fmt::write(&mut buf, format_args!("redistributors: {}", e));
                early_fail(buf.as_str())
            }
        }
    }
    heap
}

/// `size` bytes from the free block nearest above `at_least` (falling back to the
/// top-down carve).
fn carve_low(c: &mut Carver, size: u64, at_least: u64) -> Option<Range> {
    let base = (at_least + RAM_ALIGN - 1) & !(RAM_ALIGN - 1);
    let want = Range::new(base, size);
    let mut probe = *c;
    probe.reserve(want);
    if c.free_bytes() - probe.free_bytes() == size {
        // All of it was free.
        *c = probe;
        return Some(want);
    }
    c.alloc(size, RAM_ALIGN).ok().map(|b| Range::new(b, size))
}

/// Adds 1 GiB blocks of normal memory to the EL2 identity map for the part of `r`
/// above the 4 GiB boot.S maps.
fn map_high_ram(r: &Range) {
    let first = (r.base / GIB).max(4);
    let last = r.end().min(EL2_MAP_LIMIT).div_ceil(GIB);
    for i in first..last {
        // Block descriptor: bits[1:0] = 0b01, AttrIndx 1 (normal write-back), SH inner
        // shareable (3 << 8), AF (bit 10).
        let desc = (i * GIB) | (1 << 10) | (3 << 8) | (1 << 2) | 1;
        // SAFETY: entry i of the EL2 level-1 table, invalid until now (boot.S fills
        // 0..4 only); no other core runs yet, and the barriers make the entry visible
        // to the table walker before RAM there is used.
        unsafe {
            let t = core::ptr::addr_of_mut!(el2_l1_table) as *mut u64;
            core::ptr::write_volatile(t.add(i as usize), desc);
            core::arch::asm!(
                "dsb ishst",
                "tlbi alle2",
                "dsb ish",
                "isb",
                options(nostack)
            );
        }
    }
}

/// `size` bytes of RAM (2 MiB-aligned) for `what`, or a one-line reason it does not
/// fit the board's memory.
pub fn alloc_ram(size: u64, what: &str) -> Result<u64, &'static str> {
    let mut g = CARVER.lock();
    let c = g.as_mut().ok_or("memory not discovered yet")?;
    match c.alloc(size, RAM_ALIGN) {
        Ok(base) => {
            log::info!("{}: {:#x} bytes of RAM at {:#x}", what, size, base);
            Ok(base)
        }
        Err(e) => {
            crate::println!(
                "refhv: {} needs {} MiB of RAM, but the largest free block of the board's memory is {} MiB (QEMU -m; or give the VM less)",
                what,
                e.wanted >> 20,
                e.largest_free >> 20
            );
            Err("the VM does not fit in the board's memory")
        }
    }
}

/// Bytes of the board's RAM not yet given out (all free blocks together).
pub fn free_ram() -> u64 {
    CARVER.lock().as_ref().map_or(0, |c| c.free_bytes())
}

/// A one-line description of the board, for the log.
pub fn describe() {
    let b = board();
    let mem: u64 = b.memory.iter().map(|r| r.size).sum();
    log::info!(
        "board: {} CPUs, {} MiB RAM in {} range(s), GIC{:?} GICD {:#x}, {} redistributors (stride {:#x}), UART {:#x} (INTID {:?}), timer PPIs virt {} phys {} hyp {}, PSCI {:?}",
        b.cpus.len(),
        mem >> 20,
        b.memory.len(),
        b.gic.version,
        b.gic.gicd.base,
        redistributors().len(),
        redistributors().first().map_or(0, |f| f.stride),
        b.uart.base,
        b.uart.intid,
        b.timer.virt,
        b.timer.phys,
        b.timer.hyp_phys,
        b.psci
    );
}

/// A small text buffer for messages formed before the heap exists.
struct Buf {
    b: [u8; 160],
    n: usize,
}

impl Default for Buf {
    fn default() -> Self {
        Self { b: [0; 160], n: 0 }
    }
}

impl Buf {
    fn as_str(&self) -> &str {
        core::str::from_utf8(self.b.get(..self.n).unwrap_or(&[])).unwrap_or("?")
    }
}

impl core::fmt::Write for Buf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &c in s.as_bytes() {
            if let Some(slot) = self.b.get_mut(self.n) {
                *slot = c;
                self.n += 1;
            }
        }
        Ok(())
    }
}
