//! Guest runtime: entry-state checks, failure bookkeeping, panic and exception
//! handlers.

use core::fmt;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::{hvc, println, read_sysreg};

/// EXIT status after a Rust panic.
pub const PANIC_STATUS: u64 = 0xEE;
/// EXIT status after an unexpected exception taken to EL1.
pub const EXCEPTION_STATUS: u64 = 0xEF;
/// Failures beyond this many are counted but not printed.
const MAX_REPORTED: u64 = 16;

/// Register values at entry.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    /// x0: the DTB IPA (0 for test guests).
    pub x0: u64,
    /// x1: `iters` from the bootargs.
    pub x1: u64,
    /// x2: 0, or the guest's argument if it takes one (`x2_argument`).
    pub x2: u64,
    /// Bitwise OR of x3..x30 (must be 0).
    pub other_gprs: u64,
    /// The guest takes an argument in x2 (`guest_main!(.., x2_argument)`).
    pub x2_argument: bool,
}

impl Entry {
    /// The iteration count (x1).
    pub fn iters(&self) -> u64 {
        self.x1
    }
}

/// Counts failed checks and reports each one on the console.
pub struct Checks {
    name: &'static str,
    failed: u64,
}

impl Checks {
    fn new(name: &'static str) -> Self {
        Self { name, failed: 0 }
    }

    /// The guest's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Number of failed checks so far.
    pub fn failed(&self) -> u64 {
        self.failed
    }

    /// Records one failed check and prints `why` (the first few only).
    pub fn fail(&mut self, why: fmt::Arguments) {
        self.failed += 1;
        if self.failed <= MAX_REPORTED {
            println!("guest {}: FAIL: {}", self.name, why);
        } else if self.failed == MAX_REPORTED + 1 {
            println!(
                "guest {}: (further failures are counted, not printed)",
                self.name
            );
        }
    }

    /// Records a failure (printing `why`) unless `ok`; returns `ok`.
    pub fn check(&mut self, ok: bool, why: fmt::Arguments) -> bool {
        if !ok {
            self.fail(why);
        }
        ok
    }

    /// Checks `got == expected`; on failure prints `what` and both values.
    pub fn check_eq(&mut self, what: fmt::Arguments, got: u64, expected: u64) -> bool {
        self.check(
            got == expected,
            format_args!("{what}: got {got:#018x}, expected {expected:#018x}"),
        )
    }
}

/// The state a single-vCPU test guest's harness keeps between the PRNG words of
/// `hostile` and `hostile32`: still EL1 with the MMU off as it started (`sctlr`), its
/// own vectors (`vbar`), the virtual MPIDR of vCPU 0, and a host that answers.
pub fn harness_intact(c: &mut Checks, i: u64, sctlr: u64, vbar: u64) {
    c.check_eq(
        format_args!("after word {i}: SCTLR_EL1"),
        read_sysreg!("sctlr_el1"),
        sctlr,
    );
    c.check_eq(
        format_args!("after word {i}: VBAR_EL1"),
        read_sysreg!("vbar_el1"),
        vbar,
    );
    c.check_eq(
        format_args!("after word {i}: CurrentEL"),
        read_sysreg!("CurrentEL"),
        1 << 2,
    );
    c.check_eq(
        format_args!("after word {i}: MPIDR_EL1"),
        read_sysreg!("mpidr_el1"),
        0x8000_0000,
    );
    c.check_eq(
        format_args!("after word {i}: NULL hypercall"),
        hvc::null(),
        0,
    );
}

/// Runs a guest: start line, entry-state checks, `main`, summary, EXIT(failures).
pub fn run(name: &'static str, entry: Entry, main: fn(&mut Checks, Entry)) -> ! {
    println!("guest {name}: start (iters = {})", entry.iters());
    let mut checks = Checks::new(name);
    check_entry_state(&mut checks, &entry);
    main(&mut checks, entry);
    let failed = checks.failed();
    if failed == 0 {
        println!("guest {name}: all checks passed");
    } else {
        println!("guest {name}: {failed} check(s) failed");
    }
    hvc::exit(failed)
}

/// The protocol's entry state: EL1h, MMU off, DAIF masked, x0 = 0, x2..x30 = 0 (x3..x30
/// for a guest that takes an argument in x2).
fn check_entry_state(c: &mut Checks, entry: &Entry) {
    c.check_eq(format_args!("entry x0 (DTB IPA)"), entry.x0, 0);
    if entry.x2_argument {
        c.check_eq(format_args!("entry x3|x4|..|x30"), entry.other_gprs, 0);
    } else {
        c.check_eq(
            format_args!("entry x2|x3|..|x30"),
            entry.x2 | entry.other_gprs,
            0,
        );
    }
    c.check_eq(format_args!("CurrentEL"), read_sysreg!("CurrentEL"), 1 << 2);
    c.check_eq(format_args!("SPSel (EL1h)"), read_sysreg!("SPSel"), 1);
    // DAIF was not touched since entry.
    c.check_eq(
        format_args!("DAIF at entry"),
        read_sysreg!("DAIF"),
        0xF << 6,
    );
    c.check_eq(
        format_args!("SCTLR_EL1.M (MMU off)"),
        read_sysreg!("sctlr_el1") & 1,
        0,
    );
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    println!("guest: {info}");
    hvc::exit(PANIC_STATUS)
}

/// Set once the first unexpected exception is being reported, so that a fault in
/// the console path does not recurse.
static IN_EXCEPTION: AtomicBool = AtomicBool::new(false);

/// Called from the EL1 vectors (asm/entry.S) for every exception: all unexpected.
#[no_mangle]
extern "C" fn guest_exception(vector: u64, esr: u64, elr: u64, far: u64) -> ! {
    // Plain load and store (no read-modify-write atomics on Device memory).
    if !IN_EXCEPTION.load(Ordering::Relaxed) {
        IN_EXCEPTION.store(true, Ordering::Relaxed);
        const SOURCES: [&str; 4] = ["EL1t", "EL1h", "lower EL AArch64", "lower EL AArch32"];
        const KINDS: [&str; 4] = ["synchronous", "IRQ", "FIQ", "SError"];
        println!(
            "guest: unexpected {} exception from {}: ESR_EL1={esr:#x} (EC {:#x}) \
             ELR_EL1={elr:#x} FAR_EL1={far:#x}",
            KINDS[(vector & 3) as usize],
            SOURCES[((vector >> 2) & 3) as usize],
            esr >> 26,
        );
    }
    hvc::exit(EXCEPTION_STATUS)
}
