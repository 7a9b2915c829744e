//! The `stage2` scenario: stage-2 geometry and VMID size follow the CPU. The same
//! guest runs once per stage-2 configuration, each a fresh vCPU with its own VMID:
//!
//! 1. one level-1 root table, 39-bit IPA (every CPU);
//! 2. two concatenated level-1 root tables, 40-bit IPA (every CPU with a 40-bit or
//!    larger PA size, which is all of QEMU's 64-bit models): guest RAM is also mapped
//!    at IPA + 2^39, which only the second table covers;
//! 3. a level-0 root, 40-bit IPA, the same alias through its second entry: runs where
//!    the PA size is at least 44 bits (`max`, Cortex-A57/A72), and must be refused by
//!    `bind()` with `InvalidConfig` below that (Cortex-A53: 40 bits), where the walk
//!    could not start at level 0;
//! 4. VMID 0x1ff: runs with 16-bit VMIDs, refused on a CPU with 8-bit VMIDs.
//!
//! The host works out from the CPU's ID registers (through `CpuFeatures`) which of them
//! must run and which must be refused; the guest checks its alias and the PARange of
//! its ID view (x2).

use alloc::alloc::{alloc_zeroed, Layout};

use arm_vcpu::stage2::pa_range_bits;
use arm_vcpu::{
    Aarch64PerCpu, Aarch64VCpu, Aarch64VCpuCreateConfig, Aarch64VCpuSetupConfig, CpuFeatures,
    Stage2Config, VCpuError, VmExit,
};
use log::{error, info};

use crate::devices::{self, CONSOLE_IPA};
use crate::memory::GuestMemory;
use crate::vm::{hvc, ExitStats};
use crate::{loader, println};

/// IPA of the second level-1 table's (or level-0 entry's) alias of guest RAM.
const ALIAS: u64 = 1 << 39;

type Verdict = Result<(), &'static str>;

/// One stage-2 configuration to try.
struct Case {
    what: &'static str,
    ipa_bits: u8,
    root_level: u8,
    vmid: u16,
    /// Root tables: the guest RAM root copied into `tables` concatenated 4 KiB tables
    /// (1 or 2), or for level 0 one table whose first two entries point at it.
    tables: u64,
}

const CASES: [Case; 4] = [
    Case {
        what: "one level-1 table, 39-bit IPA",
        ipa_bits: 39,
        root_level: 1,
        vmid: 1,
        tables: 1,
    },
    Case {
        what: "two concatenated level-1 tables, 40-bit IPA",
        ipa_bits: 40,
        root_level: 1,
        vmid: 2,
        tables: 2,
    },
    Case {
        what: "level-0 root, 40-bit IPA",
        ipa_bits: 40,
        root_level: 0,
        vmid: 3,
        tables: 1,
    },
    Case {
        what: "VMID 0x1ff, one level-1 table",
        ipa_bits: 39,
        root_level: 1,
        vmid: 0x1ff,
        tables: 1,
    },
];

/// Whether `c` must run on a CPU with `f` (else `bind()` must refuse it).
fn must_run(c: &Case, f: &CpuFeatures) -> bool {
    let pa_bits = pa_range_bits(f.pa_range).unwrap_or(0);
    let level_ok = c.root_level != 0 || pa_bits >= 44;
    let vmid_ok = c.vmid <= 0xff || f.vmid16;
    level_ok && vmid_ok && c.ipa_bits <= pa_bits
}

/// `ID_AA64MMFR0_EL1.PARange` of the guest's view: the largest size not above the
/// VM's IPA size nor the CPU's PA size.
fn view_parange(ipa_bits: u8, f: &CpuFeatures) -> u64 {
    (0..=f.pa_range)
        .rev()
        .find(|&p| pa_range_bits(p).is_some_and(|b| b <= ipa_bits))
        .unwrap_or(0) as u64
}

/// Runs the scenario.
pub fn run_stage2() -> (Verdict, ExitStats) {
    let mut stats = ExitStats::default();
    let verdict = run(&mut stats);
    (verdict, stats)
}

/// A root of `c`'s shape over `mem`'s level-1 table, zeroed and aligned to its size
/// (leaked: the vCPUs' stage-2 roots point into it until the run ends).
fn build_root(c: &Case, mem: &GuestMemory) -> Result<u64, &'static str> {
    if c.tables == 1 && c.root_level == 1 {
        return Ok(mem.root_pa());
    }
    let bytes = (c.tables * 4096) as usize;
    let layout = Layout::from_size_align(bytes, bytes).map_err(|_| "root layout")?;
    // SAFETY: the layout has a non-zero size.
    let p = unsafe { alloc_zeroed(layout) } as *mut u64;
    if p.is_null() {
        return Err("out of memory for a stage-2 root");
    }
    let src = mem.root_pa() as *const u64;
    for t in 0..c.tables as usize {
        for i in 0..512 {
            let v = if c.root_level == 0 {
                // Level-0 table descriptors (bits [1:0] = 0b11) for IPA [0, 2^39) and
                // [2^39, 2^40), both to the RAM's level-1 table.
                if i < 2 {
                    mem.root_pa() | 0b11
                } else {
                    0
                }
            } else {
                // SAFETY: `src` is the 4 KiB level-1 root of `mem` (identity mapped).
                unsafe { src.add(i).read_volatile() }
            };
            // SAFETY: `p` has `c.tables * 512` entries.
            unsafe { p.add(t * 512 + i).write_volatile(v) };
        }
    }
    // Make the table writes visible to the stage-2 walker.
    // SAFETY: a barrier has no other effect.
    unsafe { core::arch::asm!("dsb ish", options(nostack, preserves_flags)) };
    Ok(p as u64)
}

fn run(stats: &mut ExitStats) -> Verdict {
    if !arm_vcpu::has_hardware_support() {
        return Err("no EL2 virtualization support");
    }
    let mut percpu = Aarch64PerCpu::new(0);
    percpu
        .hardware_enable()
        .map_err(|_| "hardware_enable failed")?;
    let f = *percpu.features();
    println!(
        "stage2: CPU PARange {} ({} bits), {}-bit VMIDs",
        f.pa_range,
        pa_range_bits(f.pa_range).unwrap_or(0),
        if f.vmid16 { 16 } else { 8 }
    );
    let mem = GuestMemory::new().map_err(|_| "stage-2 mapping failed")?;
    let mut failures = 0u64;
    let (mut ran, mut refused) = (0, 0);
    for c in &CASES {
        let expect_run = must_run(c, &f);
        let root_pa = build_root(c, &mem)?;
        let stage2 = Stage2Config::new(root_pa, c.vmid, c.ipa_bits, c.root_level);
        // A fresh copy of the guest for every case.
        let entry =
            loader::load_elf(loader::staging(), &mem).map_err(|_| "cannot load the guest image")?;
        let mut vcpu =
            Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).map_err(|_| "vcpu create")?;
        vcpu.setup(Aarch64VCpuSetupConfig::default())
            .map_err(|_| "vcpu setup")?;
        vcpu.set_stage2_root(stage2)
            .map_err(|_| "set_stage2_root")?;
        vcpu.set_entry(entry).map_err(|_| "vcpu entry")?;
        let alias = if c.ipa_bits > 39 { ALIAS } else { 0 };
        vcpu.set_gpr(2, alias | view_parange(c.ipa_bits, &f))
            .map_err(|_| "x2")?;
        match (vcpu.bind(&mut percpu), expect_run) {
            (Ok(()), true) => {
                println!("stage2: {}: runs", c.what);
                let status = run_guest(&mut vcpu, stats)?;
                vcpu.unbind(&mut percpu).map_err(|_| "unbind")?;
                if status != 0 {
                    error!("{}: the guest reports {} failed checks", c.what, status);
                    failures += 1;
                }
                ran += 1;
            }
            (Err(VCpuError::InvalidConfig(why)), false) => {
                println!(
                    "stage2: {}: refused by bind() as it must be: {}",
                    c.what, why
                );
                refused += 1;
            }
            (Ok(()), false) => {
                vcpu.unbind(&mut percpu).map_err(|_| "unbind")?;
                error!("{}: bind() accepted what this CPU cannot walk", c.what);
                failures += 1;
            }
            (Err(e), _) => {
                error!("{}: bind() failed: {}", c.what, e);
                failures += 1;
            }
        }
    }
    percpu.hardware_disable().map_err(|_| "hardware_disable")?;
    info!("stage2: {} configurations ran, {} refused", ran, refused);
    if failures != 0 {
        return Err("a stage-2 configuration did not behave as this CPU requires");
    }
    Ok(())
}

/// Runs the guest to its EXIT; returns its status.
fn run_guest(vcpu: &mut Aarch64VCpu, stats: &mut ExitStats) -> Result<u64, &'static str> {
    loop {
        match vcpu.run() {
            Ok(VmExit::Hypercall { imm: 0, ref args }) => {
                stats.hypercall += 1;
                match args[0] {
                    hvc::PUTC => crate::console::putc(args[1] as u8),
                    hvc::EXIT => return Ok(args[1]),
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
                stats.console += 1;
                devices::console_write(addr - CONSOLE_IPA, data);
            }
            Ok(other) => {
                stats.other += 1;
                error!("unexpected exit {:?} at pc {:#x}", other, vcpu.pc());
                return Err("unexpected exit");
            }
            Err(e) => {
                error!("run: {}", e);
                return Err("run() returned an error");
            }
        }
    }
}
