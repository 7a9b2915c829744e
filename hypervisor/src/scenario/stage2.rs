//! `stage2`: stage-2 geometry and VMID size follow the CPU. The same guest runs as one
//! VM per stage-2 configuration (instances 0..3, one after the other on core 0), each
//! with its own root and VMID:
//!
//! 0. one level-1 root table, 39-bit IPA (every CPU);
//! 1. two concatenated level-1 root tables, 40-bit IPA (every CPU with a 40-bit or
//!    larger PA size, which is all of QEMU's 64-bit models): guest RAM is also mapped
//!    at IPA + 2^39, which only the second table covers;
//! 2. a level-0 root, 40-bit IPA, the same alias through its second entry: runs where
//!    the PA size is at least 44 bits (`max`, Cortex-A57/A72), and must be refused by
//!    `bind()` with `InvalidConfig` below that (Cortex-A53: 40 bits), where the walk
//!    could not start at level 0;
//! 3. VMID 0x1ff: runs with 16-bit VMIDs, refused on a CPU with 8-bit VMIDs.
//!
//! The scenario works out from the CPU's ID registers (`CpuFeatures`) which of them
//! must run and which must be refused (a refusal is that VM's pass; an accepted
//! configuration the CPU cannot walk its failure); the guest checks its alias and the
//! PARange of its ID view (x2).

use alloc::alloc::{alloc_zeroed, Layout};
use alloc::boxed::Box;

use arm_vcpu::stage2::pa_range_bits;
use arm_vcpu::{CpuFeatures, Stage2Config, VCpuError};

use super::Scenario;

pub fn by_name(name: &str, instance: usize) -> Option<Box<dyn Scenario>> {
    match name {
        "stage2" => Some(Box::new(Stage2::new(&CASES[instance.min(CASES.len() - 1)]))),
        _ => None,
    }
}

/// One VM per configuration.
pub fn vm_count(name: &str) -> Option<usize> {
    (name == "stage2").then_some(CASES.len())
}

/// IPA of the second level-1 table's (or level-0 entry's) alias of guest RAM.
const ALIAS: u64 = 1 << 39;

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

struct Stage2 {
    case: &'static Case,
    must_run: bool,
    /// x2 at entry: the alias IPA | the view's PARange.
    entry: [(usize, u64); 1],
}

impl Stage2 {
    fn new(case: &'static Case) -> Self {
        let f = super::boot_core_features();
        if case.vmid == 1 {
            crate::println!(
                "stage2: CPU PARange {} ({} bits), {}-bit VMIDs",
                f.pa_range,
                pa_range_bits(f.pa_range).unwrap_or(0),
                if f.vmid16 { 16 } else { 8 }
            );
        }
        let alias = if case.ipa_bits > 39 { ALIAS } else { 0 };
        Self {
            case,
            must_run: must_run(case, &f),
            entry: [(2, alias | view_parange(case.ipa_bits, &f))],
        }
    }
}

impl Scenario for Stage2 {
    fn ram(&self) -> u64 {
        64 << 20
    }

    fn entry_regs(&self) -> &[(usize, u64)] {
        &self.entry
    }

    fn stage2(&self, ram_root: u64) -> Option<Result<Stage2Config, &'static str>> {
        let c = self.case;
        Some(
            build_root(c, ram_root)
                .map(|root| Stage2Config::new(root, c.vmid, c.ipa_bits, c.root_level)),
        )
    }

    fn bind_refused(&mut self, e: &VCpuError) -> Result<(), &'static str> {
        match (e, self.must_run) {
            (VCpuError::InvalidConfig(why), false) => {
                crate::println!(
                    "stage2: {}: refused by bind() as it must be: {}",
                    self.case.what,
                    why
                );
                Ok(())
            }
            _ => {
                crate::println!("stage2: {}: bind() failed: {}", self.case.what, e);
                Err("a stage-2 configuration this CPU can walk was refused")
            }
        }
    }

    fn first_bind(&mut self) -> Result<(), &'static str> {
        if self.must_run {
            crate::println!("stage2: {}: runs", self.case.what);
            Ok(())
        } else {
            crate::println!("stage2: {}: bind() accepted it", self.case.what);
            Err("bind() accepted what this CPU cannot walk")
        }
    }
}

/// A root of `c`'s shape over the RAM's level-1 table `ram_root`, zeroed and aligned
/// to its size (leaked: the vCPUs' stage-2 roots point into it until the run ends).
fn build_root(c: &Case, ram_root: u64) -> Result<u64, &'static str> {
    if c.tables == 1 && c.root_level == 1 {
        return Ok(ram_root);
    }
    let bytes = (c.tables * 4096) as usize;
    let layout = Layout::from_size_align(bytes, bytes).map_err(|_| "root layout")?;
    // SAFETY: the layout has a non-zero size.
    let p = unsafe { alloc_zeroed(layout) } as *mut u64;
    if p.is_null() {
        return Err("out of memory for a stage-2 root");
    }
    let src = ram_root as *const u64;
    for t in 0..c.tables as usize {
        for i in 0..512 {
            let v = if c.root_level == 0 {
                // Level-0 table descriptors (bits [1:0] = 0b11) for IPA [0, 2^39) and
                // [2^39, 2^40), both to the RAM's level-1 table.
                if i < 2 {
                    ram_root | 0b11
                } else {
                    0
                }
            } else {
                // SAFETY: `src` is the 4 KiB level-1 root of the VM's RAM (identity
                // mapped).
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
