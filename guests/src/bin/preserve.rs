//! `preserve`: every general-purpose register, SP_EL0 and SP_EL1 survive each kind
//! of exit (NULL hvc, MMIO read, MMIO write, trapped ID register read, console FR
//! read), except the one register the exit defines.
//!
//! The fill / exit / store / compare part is assembly (asm/preserve.S); this file
//! builds the tables of values, and prints what differed.
#![no_std]
#![no_main]

use guests::console::UART_FR;
use guests::mmio::{self, TESTDEV_BASE};
use guests::rt::{Checks, Entry};
use guests::{hvc, println};

guests::guest_main!("preserve", main);

guests::global_asm_file!("preserve.S");

extern "C" {
    /// See asm/preserve.S: loads x0..x30 and SP_EL0 from `init`, causes exit
    /// `variant`, compares x0..x30 and SP_EL0 against `expect` and SP against its
    /// value before the exit. Writes what it found to `got` (x0..x30, SP_EL0, SP
    /// after, SP before) and returns the mismatch mask (bit k = xk, bit 31 =
    /// SP_EL0, bit 32 = SP).
    fn preserve_exit(
        variant: u64,
        init: *const [u64; 32],
        expect: *const [u64; 32],
        got: *mut [u64; 34],
    ) -> u64;
}

/// Registers the exits are numbered over (x0..x30).
const NREGS: u64 = 31;
/// Scratch word loaded by the MMIO-read exit and stored by the MMIO-write exit.
const WORD: u64 = TESTDEV_BASE + 0x40;
/// The value every trapped read of ID_AA64PFR0_EL1 returns.
const PFR0_ANSWER: u64 = 0x1D00_0000_0000_0000 | 0x30040;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Hvc,
    MmioRead,
    MmioWrite,
    SysRegRead,
    ConsoleFr,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Hvc => "NULL hvc",
            Kind::MmioRead => "MMIO read (ldr x)",
            Kind::MmioWrite => "MMIO write (str x)",
            Kind::SysRegRead => "trapped ID register read (mrs ID_AA64PFR0_EL1)",
            Kind::ConsoleFr => "console FR read (ldr w)",
        }
    }

    /// First entry of this kind's block of variants in asm/preserve.S.
    fn first_variant(self) -> u64 {
        match self {
            Kind::Hvc => 0,
            Kind::MmioRead => 1,
            Kind::MmioWrite => 1 + NREGS,
            Kind::SysRegRead => 1 + 2 * NREGS,
            Kind::ConsoleFr => 1 + 3 * NREGS,
        }
    }
}

/// `pattern(r, k)` of the protocol (k = 31 for SP_EL0).
fn pattern(r: u64, k: u64) -> u64 {
    (r << 32) ^ k.wrapping_mul(0x0101_0101_0101_0101) ^ 0xA5A5_0000_0000_0000
}

/// Base register of the load/store variants with transfer register `rt`
/// (must match asm/preserve.S).
fn base_of(rt: u64) -> u64 {
    (rt + 16) % NREGS
}

fn main(c: &mut Checks, entry: Entry) {
    let rounds = entry.iters();
    // The MMIO-read exit of round r loads what round r - 1 stored; seed round 0.
    let mut word = 0x5EED_0000_0000_0000 | 0x1234_5678;
    mmio::write64(WORD, word);

    for r in 0..rounds {
        for (i, kind) in [
            Kind::Hvc,
            Kind::MmioRead,
            Kind::MmioWrite,
            Kind::SysRegRead,
            Kind::ConsoleFr,
        ]
        .into_iter()
        .enumerate()
        {
            // Vary the transfer register over rounds (and between kinds).
            let rt = (r + 7 * i as u64) % NREGS;
            let mut init = [0u64; 32];
            for (k, v) in init.iter_mut().enumerate() {
                *v = pattern(r, k as u64);
            }
            let mut expect = init;
            let variant = match kind {
                Kind::Hvc => {
                    init[0] = hvc::NULL;
                    expect[0] = 0;
                    kind.first_variant()
                }
                Kind::MmioRead | Kind::ConsoleFr => {
                    let base = base_of(rt) as usize;
                    let (addr, value) = if kind == Kind::MmioRead {
                        (WORD, word)
                    } else {
                        (UART_FR, 0)
                    };
                    init[base] = addr;
                    expect[base] = addr;
                    expect[rt as usize] = value;
                    kind.first_variant() + rt
                }
                Kind::MmioWrite => {
                    let base = base_of(rt) as usize;
                    init[base] = WORD;
                    expect[base] = WORD;
                    word = init[rt as usize];
                    kind.first_variant() + rt
                }
                Kind::SysRegRead => {
                    expect[rt as usize] = PFR0_ANSWER;
                    kind.first_variant() + rt
                }
            };
            let mut got = [0u64; 34];
            // SAFETY: preserve_exit follows the C ABI (restores x18..x30 and SP), reads
            // 32 u64s from `init` and `expect` and writes 34 u64s to `got`; `variant`
            // is below 1 + 4 * NREGS, the number of variants it has.
            let mismatch = unsafe { preserve_exit(variant, &init, &expect, &mut got) };
            if mismatch != 0 {
                report(c, r, kind, rt, mismatch, &init, &expect, &got);
            }
        }
    }

    // The last round's store has not been read back by a following round.
    let got = mmio::read64(WORD);
    c.check_eq(
        format_args!("scratch word after the last MMIO-write exit"),
        got,
        word,
    );
}

/// Prints every register that differed after one exit (one failed check per exit).
#[allow(clippy::too_many_arguments)]
fn report(
    c: &mut Checks,
    round: u64,
    kind: Kind,
    rt: u64,
    mismatch: u64,
    init: &[u64; 32],
    expect: &[u64; 32],
    got: &[u64; 34],
) {
    let detail = match kind {
        Kind::Hvc => "",
        Kind::MmioRead => " (Rt must hold what the previous MMIO-write exit stored)",
        _ => " (Rt is the register the exit defines)",
    };
    let rt = if kind == Kind::Hvc { 0 } else { rt };
    c.fail(format_args!(
        "round {round}, exit {} with Rt = x{rt}: {} register(s) differ{detail}",
        kind.name(),
        mismatch.count_ones()
    ));
    if c.failed() > 16 {
        return;
    }
    for k in 0..33usize {
        if mismatch & (1 << k) == 0 {
            continue;
        }
        match k {
            31 => println!(
                "    SP_EL0: got {:#018x}, expected {:#018x}",
                got[31], expect[31]
            ),
            32 => println!(
                "    SP (SP_EL1): got {:#018x}, expected {:#018x} (its value before the exit)",
                got[32], got[33]
            ),
            _ => println!(
                "    x{k}: got {:#018x}, expected {:#018x} (was {:#018x} before the exit)",
                got[k], expect[k], init[k]
            ),
        }
    }
}
