//! `hostile`: `iters` pseudo-random instruction words (xorshift64*, seed in x2 at
//! entry) executed at EL1 from the code slot (`guests::slot`), every register and
//! PSTATE reset before each word, the slot's vectors catching whatever faults at EL1.
//! The generator skips only what would take the harness away (branches, exception
//! returns, HLT, writes of SPSel/SCTLR_EL1/VBAR_EL1, FEAT_MOPS); hypercalls, SMCs,
//! system-register accesses, SVE/SME, WFI/WFE and loads/stores to the test device
//! and to nothing stay in. See docs/test-protocol.md.
#![no_std]
#![no_main]

use core::ptr::addr_of;

use guests::mmio::{RAM, TESTDEV_BASE as TESTDEV, UNMAPPED};
use guests::rng::Rng;
use guests::rt::{Checks, Entry};
use guests::slot::{self, enc, Caught, SlotState, EL1H_DAIF, EL1T_DAIF};
use guests::{hvc, println, read_sysreg};

guests::guest_main!("hostile", main, x2_argument);

/// Scratch memory the registers point into: 512 KiB, the pointers within 8 KiB of
/// the middle and SP 16 KiB above it, so that the largest immediate offsets
/// (LDR Q: 65520 bytes) stay inside.
const SCRATCH_SIZE: usize = 512 * 1024;
#[repr(C, align(4096))]
struct Scratch([u8; SCRATCH_SIZE]);
static SCRATCH: Scratch = Scratch([0; SCRATCH_SIZE]);

fn scratch_mid() -> u64 {
    addr_of!(SCRATCH) as u64 + SCRATCH_SIZE as u64 / 2
}

/// Whether a word would take the harness itself away.
fn harness_breaking(w: u32) -> bool {
    w & 0x7c00_0000 == 0x1400_0000 // B, BL
        || w & 0x7e00_0000 == 0x3400_0000 // CBZ, CBNZ
        || w & 0x7e00_0000 == 0x3600_0000 // TBZ, TBNZ
        || w & 0xfe00_0000 == 0x5400_0000 // B.cond, BC.cond
        || w & 0xfe00_0000 == 0xd600_0000 // BR, BLR, RET, ERET, DRPS, BRA*, RETA*, ERETA*
        || w & 0xffe0_001f == 0xd440_0000 // HLT (QEMU semihosting)
        || w & 0xffff_f0ff == 0xd500_40bf // MSR SPSel, #imm
        || w & 0xffff_ffe0 == 0xd518_4200 // MSR SPSel, Xt
        || w & 0xffff_ffe0 == 0xd518_1000 // MSR SCTLR_EL1, Xt
        || w & 0xffff_ffe0 == 0xd518_c000 // MSR VBAR_EL1, Xt
        || w & 0x3b20_0c00 == 0x1900_0400 // FEAT_MOPS CPY*/SET*: copy/set Xn bytes
        || qemu_aborts(w)
}

/// Encodings QEMU 7.2's translator aborts on (`g_assert_not_reached`, the whole
/// machine goes): AdvSIMD two-register miscellaneous FP16, scalar and vector (some
/// unallocated opcodes, e.g. 0x5ef8f88d).
fn qemu_aborts(w: u32) -> bool {
    w & 0xdf7e_0c00 == 0x5e78_0800 || w & 0x9f7e_0c00 == 0x0e78_0800
}

/// One PRNG instruction word: uniform words, and words from the encoding classes
/// that reach EL2 or fault most.
fn gen_word(r: &mut Rng) -> u32 {
    loop {
        let any = r.next_u32();
        let w = match r.below(100) {
            0..=34 => any,
            // System instruction space: MSR (imm), hints, barriers, SYS, MSR/MRS.
            35..=49 => 0xd500_0000 | (any & 0x003f_ffff),
            // MRS/MSR to the groups that trap: ID (CRn 0), debug (op0 2), IMPDEF
            // (CRn 11, 15), PMU (CRn 9), LORegions/MPAM (CRn 10), timers (CRn 14),
            // and the GIC CPU interface (CRn 12, CRn 4: ICC_PMR; SGIs trap).
            50..=56 => {
                let crn = r.pick(&[0, 0, 0, 1, 4, 9, 10, 11, 12, 12, 14, 15]);
                let op0 = 2 + r.below(2) as u32;
                let op1 = r.pick(&[0, 0, 3, 1, 4]);
                0xd500_0000
                    | (r.below(2) as u32) << 21
                    | op0 << 19
                    | op1 << 16
                    | crn << 12
                    | (any & 0xfff)
            }
            // Exception generation: SVC, HVC, SMC, BRK, DCPS, mostly #0.
            57..=62 => {
                let imm = if r.below(4) == 0 { any >> 16 } else { 0 };
                let (opc, ll) = r.pick(&[(0, 1), (0, 2), (0, 2), (0, 3), (0, 3), (1, 0), (5, 1)]);
                0xd400_0000 | opc << 21 | imm << 5 | ll
            }
            // Hints (WFE, WFI, SEV, YIELD, PAC*, AUT*, BTI, ...).
            63..=65 => 0xd503_201f | (any & 0x7f) << 5,
            66 => 0xd503_207f, // WFI
            67 => 0xd503_205f, // WFE
            // Loads and stores (op0 = x1x0).
            68..=86 => (any & !(1 << 25)) | 1 << 27,
            // SVE (op0 = 0010) and SME (op0 = 0000 with bit 31 set).
            87..=91 => (any & !0x1e00_0000) | 0x0400_0000,
            92..=94 => (any & !0x1e00_0000) | 0x8000_0000,
            // Data processing and SIMD/FP.
            _ => any | 5 << 25,
        };
        if !harness_breaking(w) {
            return w;
        }
    }
}

/// Function IDs a hypercall or SMC word gets in x0 (those that would end the run
/// or fake the protocol's calls are replaced by NULL).
fn gen_fid(r: &mut Rng) -> u64 {
    let fid = match r.below(8) {
        0..=2 => 0x8400_0000 | (r.below(2) << 30) | r.below(0x22),
        3 => 0x8000_0000 | r.pick(&[0, 1, 2, 0x3fff, 0x7fff, 0x8000]),
        4 => 0xc600_0000 | r.below(6),
        _ => u64::from(r.next_u32()),
    };
    if is_forbidden_fid(fid) {
        hvc::NULL
    } else {
        fid
    }
}

/// CPU_OFF, SYSTEM_OFF, SYSTEM_RESET; TEST_CALL, EXIT, PUTC.
fn is_forbidden_fid(x0: u64) -> bool {
    matches!(
        x0 as u32,
        0x8400_0002 | 0x8400_0008 | 0x8400_0009 | 0xc600_0001 | 0xc600_0002 | 0xc600_0003
    )
}

/// A register value: mostly a scratch pointer, some at the test device, some at the
/// unmapped page, some anything outside RAM.
fn gen_reg(r: &mut Rng, mid: u64) -> u64 {
    let v = match r.below(100) {
        0..=69 => {
            let p = mid.wrapping_add((r.below(2048) * 8).wrapping_sub(8192));
            if r.below(4) == 0 {
                p + r.below(8)
            } else {
                p
            }
        }
        70..=81 => TESTDEV + r.pick(&[0, 8, 0x10, 0x80, 0xf8, 0x100, 0x104, 0x200, 0xff8]),
        82..=91 => UNMAPPED + r.below(512) * 8,
        _ => r.next_u64(),
    };
    if RAM.contains(&v) && !(mid - 0x10000..mid + 0x10000).contains(&v) {
        v ^ 1 << 62
    } else {
        v
    }
}

/// Registers an instruction may legitimately write after a fall-through: its
/// register fields (Rd/Rt, Rn, Rt2/Ra, Rm/Rs, and the pair partners Rt+1, Rs+1),
/// x0..x3 for HVC/SMC (results), x16/x17/x30 for hints (PACIA1716, PACIASP, XPACLRI).
fn may_write(w: u32) -> u64 {
    let f = |lsb: u32| (w >> lsb) & 31;
    let mut m = 0u64;
    for r in [f(0), f(0) + 1, f(5), f(10), f(16), f(16) + 1] {
        m |= 1 << r;
    }
    if w & 0xff00_0000 == 0xd400_0000 {
        m |= 0xf;
    }
    if w & 0xffff_f01f == 0xd503_201f {
        m |= 1 << 16 | 1 << 17 | 1 << 30;
    }
    m
}

struct Stats {
    fell_through: u64,
    exceptions: u64,
    by_ec: [u64; 64],
    /// The first word (index, encoding) and ESR_EL1 of each class.
    first: [(u64, u32, u64); 64],
    /// Synchronous external aborts (DFSC/IFSC 0x10): what the host injects.
    injected: u64,
    /// Virtual IRQs/FIQs taken (a word unmasked one the host made pending for an SGI
    /// the guest sent itself).
    interrupts: u64,
}

/// Checks one word's outcome.
fn check(
    c: &mut Checks,
    s: &mut Stats,
    i: u64,
    w: u32,
    init: &SlotState,
    out: &SlotState,
    caught: Option<Caught>,
) {
    let slot = slot::slot_address();
    let Some(e) = caught else {
        s.fell_through += 1;
        let may = may_write(w);
        for k in 0..31 {
            if may & 1 << k == 0 && out.regs[k] != init.regs[k] {
                c.fail(format_args!(
                    "word {i} {w:#010x}: x{k} changed from {:#x} to {:#x} (not a register of the \
                     instruction)",
                    init.regs[k], out.regs[k]
                ));
            }
        }
        if may & 1 << 31 == 0 && out.sp != init.sp {
            c.fail(format_args!(
                "word {i} {w:#010x}: SP changed from {:#x} to {:#x}",
                init.sp, out.sp
            ));
        }
        return;
    };
    // Vectors 0..3: from EL1t, 4..7: from EL1h (sync, IRQ, FIQ, SError).
    let base = if init.pstate & 1 == 0 { 0 } else { 4 };
    if e.vector == base + 1 || e.vector == base + 2 {
        // IRQ/FIQ: taken right after a word that unmasked it.
        s.interrupts += 1;
        let mask = if e.vector == base + 1 { 1 << 7 } else { 1 << 6 };
        c.check(
            e.elr == slot + 4 && e.spsr & mask == 0,
            format_args!(
                "word {i} {w:#010x}: interrupt at offset {:#x} with ELR_EL1 {:#x} SPSR_EL1 {:#x}; \
                 expected ELR_EL1 {:#x} (after the word) and the interrupt unmasked",
                e.vector * 0x80,
                e.elr,
                e.spsr,
                slot + 4
            ),
        );
        return;
    }
    s.exceptions += 1;
    let ec = e.ec();
    if s.by_ec[ec as usize] == 0 {
        s.first[ec as usize] = (i, w, e.esr);
    }
    s.by_ec[ec as usize] += 1;
    // SVC returns to the next instruction; every other exception to the word.
    let elr = if ec == 0x15 { slot + 4 } else { slot };
    if e.vector != base || e.elr != elr || e.spsr != init.pstate {
        c.fail(format_args!(
            "word {i} {w:#010x}: exception at offset {:#x} ESR_EL1 {:#x} ELR_EL1 {:#x} SPSR_EL1 \
             {:#x} FAR_EL1 {:#x}; expected offset {:#x}, ELR_EL1 {elr:#x}, SPSR_EL1 {:#x}",
            e.vector * 0x80,
            e.esr,
            e.elr,
            e.spsr,
            e.far,
            base * 0x80,
            init.pstate
        ));
    }
    let fsc = e.esr & 0x3f;
    match ec {
        0x24 | 0x25 | 0x20 | 0x21 if fsc == 0x10 => {
            s.injected += 1;
            // Injected for an access to nothing: never inside RAM (all mapped), and
            // the IL bit set.
            c.check(
                !RAM.contains(&e.far) && e.esr & 1 << 25 != 0,
                format_args!(
                    "word {i} {w:#010x}: injected abort ESR_EL1 {:#x} with FAR_EL1 {:#x}",
                    e.esr, e.far
                ),
            );
        }
        0x20 | 0x21 => c.fail(format_args!(
            "word {i} {w:#010x}: instruction abort ESR_EL1 {:#x} FAR_EL1 {:#x} (nothing branches)",
            e.esr, e.far
        )),
        _ => {}
    }
}

fn main(c: &mut Checks, entry: Entry) {
    let seed = entry.x2;
    let words = entry.iters();
    println!(
        "guest hostile: seed {seed:#x} ({seed}), {words} words, slot at {:#x}",
        slot::slot_address()
    );
    let mut r = Rng::new(seed);
    let mid = scratch_mid();
    let sctlr = read_sysreg!("sctlr_el1");
    let vbar = read_sysreg!("vbar_el1");
    let mut s = Stats {
        fell_through: 0,
        exceptions: 0,
        by_ec: [0; 64],
        first: [(0, 0, 0); 64],
        injected: 0,
        interrupts: 0,
    };
    // FP/SIMD, SVE and SME enabled at EL1 (CPACR_EL1.FPEN, ZEN, SMEN): their
    // instructions then reach EL2 (lazy FP switching, the SVE/SME traps) instead of
    // trapping at EL1. Words may change CPACR_EL1 again.
    let mut st = SlotState {
        pstate: EL1H_DAIF,
        sp: mid + 0x4000,
        ..SlotState::default()
    };
    st.regs[1] = (3 << 16) | (3 << 20) | (3 << 24);
    let enable = [enc::msr(1, 3, 0, 1, 0, 2), enc::ISB];
    c.check(
        slot::run(&enable, &mut st).is_none(),
        format_args!("MSR CPACR_EL1 faulted"),
    );
    let mut init = SlotState::default();
    for i in 0..words {
        let w = gen_word(&mut r);
        for k in 0..31 {
            init.regs[k] = gen_reg(&mut r, mid);
        }
        if w & 0xff00_0000 == 0xd400_0000 && r.below(4) != 0 {
            init.regs[0] = gen_fid(&mut r);
            init.regs[1] = r.pick(&[0, 1, 0x8400_0000, 0x8000_0001, init.regs[1]]);
            init.regs[2] = r.pick(&[0, 0x4008_0000, init.regs[2]]);
        }
        if is_forbidden_fid(init.regs[0]) {
            init.regs[0] = hvc::NULL;
        }
        init.sp = mid + 0x4000;
        // EL1h mostly, EL1t (SP_EL0) for a quarter of the words; random NZCV.
        let mode = if r.below(4) == 0 {
            EL1T_DAIF
        } else {
            EL1H_DAIF
        };
        init.pstate = mode | r.below(16) << 28;
        slot::load_one(w);
        let mut out = init;
        let caught = slot::exec(&mut out);
        check(c, &mut s, i, w, &init, &out, caught);
        if w & 0xfff8_0000 == 0xd510_0000 {
            // An MSR to the debug space (op0 = 2): the debug registers are the vCPU's
            // own (switched lazily), so one word enabling software step (MDSCR_EL1.SS |
            // KDE) and a later one clearing PSTATE.D would take a real Software Step
            // exception. MDSCR_EL1 = 0 disables every debug exception but BRK again.
            guests::debug::set_mdscr(0);
        }
        if i % 4096 == 4095 {
            guests::rt::harness_intact(c, i, sctlr, vbar);
        }
        if i % 25_000 == 24_999 {
            println!(
                "guest hostile: {} words: {} fell through, {} exceptions ({} injected aborts)",
                i + 1,
                s.fell_through,
                s.exceptions,
                s.injected
            );
        }
    }
    guests::rt::harness_intact(c, words, sctlr, vbar);
    println!(
        "guest hostile: seed {seed:#x}: {words} words, {} fell through, {} exceptions at EL1, {} \
         of them injected aborts",
        s.fell_through, s.exceptions, s.injected
    );
    for (ec, n) in s.by_ec.iter().enumerate().filter(|(_, n)| **n != 0) {
        let (i, w, esr) = s.first[ec];
        println!(
            "guest hostile:   EL1 exceptions with EC {ec:#04x}: {n} (first: word #{i} \
             {w:#010x}, ESR_EL1 {esr:#x})"
        );
    }
    println!(
        "guest hostile:   virtual interrupts taken: {}",
        s.interrupts
    );
    c.check_eq(
        format_args!("TEST_CALL(0x81, {words} words, {} injected aborts): host counts differ (bit 0 words, bit 1 aborts)", s.injected),
        hvc::test_call([0x81, words, s.injected, 0, 0, 0]),
        0,
    );
}
