//! `hostile32`: `iters` pseudo-random A32 and T32 instructions (xorshift64*, seed in x2
//! at entry) executed in AArch32 User mode (EL0) under the guest's AArch64 EL1, one at a
//! time: each runs single-stepped (MDSCR_EL1.SS, SPSR_EL1.SS) from a page of SVCs
//! through `aarch32_probe` (asm/aarch32.S), R0..R14 pointing into scratch memory, at the
//! test device or at nothing, or holding small values, NZCV random. Whatever it does —
//! branch anywhere, trap to EL2 (coprocessor, FP, WFx, aborts), write the PC — exactly
//! one exception comes back to the probe's vectors at EL1: the step after it completed,
//! or the exception it raised. Nothing is filtered: with single-step no word can take
//! the harness away.
//!
//! Checked for every word: one exception, at a lower-EL AArch32 vector, with an
//! exception class EL0 AArch32 code may cause; an UNDEF, SVC-less trap or abort
//! reported at the word itself; injected aborts (FSC 0x10) never for a RAM address; the
//! harness's EL1 state intact and the host answering (NULL hypercall). At the end the
//! guest reports its words and the injected aborts it took (TEST_CALL 0x81), which the
//! host compares with its own counts (`hostile`'s host side).
#![no_std]
#![no_main]

use core::arch::asm;
use core::ptr::{addr_of, addr_of_mut};

use guests::a32::{aarch32_probe, Probe, LOWER_A32_SERROR, LOWER_A32_SYNC, T, USR};
use guests::debug::{MDSCR_SS, SPSR_SS as SS};
use guests::mmio::{RAM, TESTDEV_BASE as TESTDEV, UNMAPPED};
use guests::rng::Rng;
use guests::rt::{Checks, Entry};
use guests::{hvc, println, read_sysreg};

guests::guest_main!("hostile32", main, x2_argument);

guests::global_asm_file!("aarch32.S");

/// The code page: SVCs of the word's instruction set everywhere (a backstop: the step
/// is taken before the instruction after the word), the word in the middle.
const CODE_WORDS: usize = 1024;
#[repr(C, align(4096))]
struct Code([u32; CODE_WORDS]);
static mut CODE: Code = Code([0; CODE_WORDS]);
/// Where the word goes (a word index).
const AT: usize = CODE_WORDS / 2;

/// A32 `svc #0`.
const A32_SVC: u32 = 0xef00_0000;
/// T32 `svc #0` twice (little-endian halfwords 0xdf00, 0xdf00).
const T32_SVC2: u32 = 0xdf00_df00;

/// Scratch memory the registers point into.
const SCRATCH_SIZE: usize = 64 * 1024;
#[repr(C, align(4096))]
struct Scratch([u8; SCRATCH_SIZE]);
static mut SCRATCH: Scratch = Scratch([0; SCRATCH_SIZE]);

/// Fills the code page for one state (A32: A32 SVCs; T32: T32 SVCs) and puts `w` at
/// [`AT`] (T32: its first halfword first), then makes it visible to instruction fetch.
fn load(w: u32, thumb: bool) {
    let fill = if thumb { T32_SVC2 } else { A32_SVC };
    // T32: `w` is first halfword << 16 | second; the first goes to the lower address.
    let w = if thumb { w.rotate_left(16) } else { w };
    // SAFETY: the code page is this program's; nothing runs from it while it is
    // written (EL0 runs only inside `aarch32_probe`).
    unsafe {
        let code = &mut *addr_of_mut!(CODE);
        for (k, v) in code.0.iter_mut().enumerate() {
            *v = if k == AT { w } else { fill };
        }
        let a = addr_of!(code.0[AT]) as u64;
        asm!("dc cvau, {a}", "dsb ish", "ic ivau, {a}", "dsb ish", "isb", a = in(reg) a);
    }
}

fn code_at() -> u64 {
    addr_of!(CODE) as u64 + AT as u64 * 4
}

fn scratch_mid() -> u64 {
    addr_of!(SCRATCH) as u64 + SCRATCH_SIZE as u64 / 2
}

/// An instruction word: random, or (one in three) from the classes that reach EL2 or
/// the crate's AArch32 decoding — MCR/MRC, MCRR/MRRC and LDC/STC to cp10/11/14/15
/// (every opc/CRn/CRm/Rt), VMRS/VMSR, WFI/WFE/SEV/YIELD — with a random condition
/// (A32) or as T32's 32-bit forms (the same bits under 0b1110, or 0b1111 for the
/// unconditional *2 forms). T32 words are `first halfword << 16 | second`.
fn gen_word(r: &mut Rng, thumb: bool) -> u32 {
    let w = r.next_u32();
    if r.below(3) != 0 {
        return w;
    }
    let cp = [10u32, 11, 14, 15][r.below(4) as usize] << 8;
    let low = w & 0x00ff_f0ff; // opc1/L/CRn, Rt, opc2/CRm (or the like)
    let body = match r.below(6) {
        // MCR/MRC: 1110 opc1 L CRn | Rt cp opc2 1 CRm; half of them with opc1 0 and
        // CRn 0, 13 or 14 (the debug ID/DCC, thread ID and generic timer registers EL0
        // may reach, which trap to EL2 and are emulated).
        0 => 0x0e00_0010 | low & !0x10 | cp,
        1 => {
            let crn = [0u32, 13, 14][r.below(3) as usize] << 16;
            0x0e00_0010 | w & 0x0010_f0ef | crn | cp
        }
        // MCRR/MRRC: 1100 010L Rt2 | Rt cp opc1 CRm.
        2 => 0x0c40_0000 | w & 0x001f_f0ff | cp,
        // LDC/STC: 110P UNWL Rn | CRd cp imm8 (P or W set: not MCRR).
        3 => 0x0c00_0000 | w & 0x01ff_f0ff | 1 << 24 | cp,
        // VMRS/VMSR: 1110 111L reg | Rt 1010 0001 0000.
        4 => 0x0ee0_0a10 | w & 0x001f_f000,
        // WFE, WFI, SEV, YIELD (hint 2, 3, 4, 1).
        _ => 0x0320_f000 | [1, 2, 3, 4][(w & 3) as usize],
    };
    if thumb {
        if body & 0x0ff0_0000 == 0x0320_0000 {
            // The T32 hints: 16-bit (BF10/BF20/BF30/BF40) or the 32-bit F3AF 80xx.
            let h = (body & 0xf) << 4;
            return if w >> 31 != 0 {
                0xbf00_0000 | h << 16 | 0xbf00
            } else {
                0xf3af_8000 | (body & 0xf)
            };
        }
        // Coprocessor forms: T1 = 1110 + the A32 bits, T2 = 1111 + the same.
        (if w >> 31 != 0 {
            0xf000_0000
        } else {
            0xe000_0000
        }) | body
    } else {
        // A random condition (0b1111 is another space: kept in).
        (w & 0xf000_0000) | body
    }
}

/// A register value: a pointer into scratch memory (most), at the test device, at
/// nothing, or a small number.
fn gen_reg(r: &mut Rng, mid: u64) -> u64 {
    match r.below(8) {
        0 => TESTDEV + r.below(8) * 4,
        1 => UNMAPPED + r.below(64) * 4,
        2 => r.below(256),
        _ => mid + r.below(1024) * 4 - 2048,
    }
}

/// Exception classes an AArch32 EL0 instruction may bring to AArch64 EL1 (DDI 0487
/// D17.2.37): unknown, WFx, the coprocessor traps, FP, the illegal state, SVC, the
/// aborts, PC alignment, FP exceptions, the debug exceptions and BKPT.
fn expected_ec(ec: u64) -> bool {
    matches!(
        ec,
        0x00 | 0x01
            | 0x03
            | 0x04
            | 0x05
            | 0x06
            | 0x07
            | 0x0c
            | 0x0e
            | 0x11
            | 0x20
            | 0x22
            | 0x24
            | 0x28
            | 0x30
            | 0x32
            | 0x34
            | 0x38
    )
}

struct Stats {
    by_ec: [u64; 64],
    first: [(u64, u32); 64],
    injected: u64,
    stepped: u64,
}

fn set_mdscr(v: u64) {
    // SAFETY: MDSCR_EL1 only controls self-hosted debug (the vCPU's own, switched by
    // the hypervisor); PSTATE.D stays set at EL1, so no step is taken here.
    unsafe { asm!("msr mdscr_el1, {}", "isb", in(reg) v) };
}

fn main(c: &mut Checks, entry: Entry) {
    let pfr0 = read_sysreg!("id_aa64pfr0_el1");
    if pfr0 & 0xf != 2 {
        // (a64fx: AArch64 only.) Nothing to run; the host's counts must say the same.
        println!("guest hostile32: note: no AArch32 at EL0 on this CPU (ID_AA64PFR0_EL1.EL0 = 1)");
        c.check_eq(
            format_args!("TEST_CALL(0x81): host counts differ"),
            hvc::test_call([0x81, entry.iters(), 0, 0, 0, 0]),
            0,
        );
        return;
    }
    let seed = entry.x2;
    let words = entry.iters();
    println!(
        "guest hostile32: seed {seed:#x}, {words} words at {:#x}",
        code_at()
    );
    // EL0 may use FP/SIMD (CPACR_EL1.FPEN), the counters and the EL1 physical timer
    // (CNTKCTL_EL1.EL0PCTEN, EL0VCTEN, EL0PTEN).
    // SAFETY: grants EL0 access only; the soft-float EL1 code uses neither.
    unsafe {
        asm!(
            "mrs {t}, cpacr_el1", "orr {t}, {t}, #(3 << 20)", "msr cpacr_el1, {t}",
            "mrs {t}, cntkctl_el1", "orr {t}, {t}, #0x3", "orr {t}, {t}, #0x200", "msr cntkctl_el1, {t}", "isb",
            t = out(reg) _,
        )
    };
    let sctlr = read_sysreg!("sctlr_el1");
    let vbar = read_sysreg!("vbar_el1");
    let mut r = Rng::new(seed);
    let mid = scratch_mid();
    let at = code_at();
    let mut s = Stats {
        by_ec: [0; 64],
        first: [(0, 0); 64],
        injected: 0,
        stepped: 0,
    };
    set_mdscr(MDSCR_SS);
    for i in 0..words {
        let thumb = r.below(2) == 0;
        let w = gen_word(&mut r, thumb);
        load(w, thumb);
        let mut p = Probe::default();
        for k in 0..15 {
            p.r[k] = gen_reg(&mut r, mid);
        }
        let spsr = USR | SS | if thumb { T } else { 0 } | r.below(16) << 28;
        // SAFETY: `aarch32_probe` follows the AAPCS64 and returns through its vectors
        // with the caller's SP, callee-saved registers and VBAR_EL1; the word runs at
        // EL0 with the registers above, whose pointers reach only scratch memory, the
        // test device, nothing, or low addresses (no RAM of this program's but
        // `SCRATCH` and `CODE`, and neither is read or executed again before it is
        // written anew).
        unsafe { aarch32_probe(at, spsr, &mut p) };
        let ec = p.esr >> 26 & 0x3f;
        if s.by_ec[ec as usize] == 0 {
            s.first[ec as usize] = (i, w);
        }
        s.by_ec[ec as usize] += 1;
        let what = if thumb { "T32" } else { "A32" };
        c.check(
            p.taken == 1
                && (LOWER_A32_SYNC..=LOWER_A32_SERROR).contains(&p.vector)
                && p.vector % 0x80 == 0,
            format_args!(
                "word {i} {what} {w:#010x}: {} exceptions, vector {:#x}",
                p.taken, p.vector
            ),
        );
        if p.vector == LOWER_A32_SYNC {
            c.check(
                expected_ec(ec),
                format_args!(
                    "word {i} {what} {w:#010x}: ESR_EL1 {:#x} (EC {ec:#x}) ELR_EL1 {:#x}",
                    p.esr, p.elr
                ),
            );
            match ec {
                // Stepped: the word completed (or was skipped by its condition).
                0x32 => s.stepped += 1,
                // An SVC returns after itself; a PC alignment fault or an abort on a
                // fetch is reported where the branch went.
                0x11 | 0x20 | 0x22 => {}
                // Everything else is reported at the word.
                _ => {
                    c.check(
                        p.elr == at,
                        format_args!(
                            "word {i} {what} {w:#010x}: ESR_EL1 {:#x} at ELR_EL1 {:#x}, expected {at:#x}",
                            p.esr, p.elr
                        ),
                    );
                }
            }
            let fsc = p.esr & 0x3f;
            if matches!(ec, 0x20 | 0x24) && fsc == 0x10 {
                s.injected += 1;
                c.check(
                    !RAM.contains(&p.far),
                    format_args!(
                        "word {i} {what} {w:#010x}: injected abort ESR_EL1 {:#x} with FAR_EL1 {:#x} in RAM",
                        p.esr, p.far
                    ),
                );
            }
        }
        // The harness's EL1 state, and a host that answers.
        if i % 64 == 0 || i + 1 == words {
            guests::rt::harness_intact(c, i, sctlr, vbar);
        }
    }
    set_mdscr(0);
    println!(
        "guest hostile32: {words} words: {} stepped, {} injected aborts",
        s.stepped, s.injected
    );
    for (ec, n) in s.by_ec.iter().enumerate().filter(|(_, n)| **n != 0) {
        let (i, w) = s.first[ec];
        println!("guest hostile32:   EC {ec:#04x}: {n} (first: word {i}, {w:#010x})");
    }
    c.check(
        s.stepped > words / 8,
        format_args!("only {} of {words} words completed (stepped)", s.stepped),
    );
    c.check_eq(
        format_args!(
            "TEST_CALL(0x81, {words} words, {} injected aborts): host counts differ (bit 0 words, bit 1 aborts)",
            s.injected
        ),
        hvc::test_call([0x81, words, s.injected, 0, 0, 0]),
        0,
    );
}
