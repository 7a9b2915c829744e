//! `psci` (2 vCPUs): the SMCCC/PSCI conformance table over both conduits, CPU_ON /
//! AFFINITY_INFO / CPU_OFF of vCPU 1 (once with HVC and 64-bit IDs, once with SMC
//! and 32-bit IDs), the started vCPU's own checks, then SYSTEM_RESET once; the
//! second boot reports the verdict with TEST_CALL(0x51) and ends with SYSTEM_OFF
//! through `smc #0`.
#![no_std]
#![no_main]

use core::fmt;
use core::ptr::addr_of;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use guests::rt::{Checks, Entry};
use guests::smccc::{self, Conduit, CONDUITS};
use guests::{hvc, println, read_sysreg};

guests::guest_main!("psci", main);

guests::global_asm_file!("psci.S");

extern "C" {
    /// asm/psci.S: CPU_ON entry of vCPU 1; calls `psci_secondary_main`.
    static psci_secondary_entry: u8;
}

/// SMCCC / PSCI function IDs.
mod fid {
    pub const SMCCC_VERSION: u64 = 0x8000_0000;
    pub const SMCCC_ARCH_FEATURES: u64 = 0x8000_0001;
    pub const SMCCC_ARCH_SOC_ID: u64 = 0x8000_0002;
    pub const WORKAROUND_1: u64 = 0x8000_8000;
    pub const WORKAROUND_2: u64 = 0x8000_7FFF;
    pub const WORKAROUND_3: u64 = 0x8000_3FFF;
    pub const PSCI_VERSION: u64 = 0x8400_0000;
    pub const CPU_SUSPEND_32: u64 = 0x8400_0001;
    pub const CPU_SUSPEND_64: u64 = 0xC400_0001;
    pub const CPU_OFF: u64 = 0x8400_0002;
    pub const CPU_ON_32: u64 = 0x8400_0003;
    pub const CPU_ON_64: u64 = 0xC400_0003;
    pub const AFFINITY_INFO_32: u64 = 0x8400_0004;
    pub const AFFINITY_INFO_64: u64 = 0xC400_0004;
    pub const MIGRATE_32: u64 = 0x8400_0005;
    pub const MIGRATE_64: u64 = 0xC400_0005;
    pub const MIGRATE_INFO_TYPE: u64 = 0x8400_0006;
    pub const MIGRATE_INFO_UP_CPU_32: u64 = 0x8400_0007;
    pub const MIGRATE_INFO_UP_CPU_64: u64 = 0xC400_0007;
    pub const SYSTEM_OFF: u64 = 0x8400_0008;
    pub const SYSTEM_RESET: u64 = 0x8400_0009;
    pub const PSCI_FEATURES: u64 = 0x8400_000A;
    pub const CPU_FREEZE: u64 = 0x8400_000B;
    pub const SYSTEM_SUSPEND_32: u64 = 0x8400_000E;
    pub const SYSTEM_SUSPEND_64: u64 = 0xC400_000E;
    pub const SYSTEM_RESET2_32: u64 = 0x8400_0012;
    pub const SYSTEM_RESET2_64: u64 = 0xC400_0012;
}

/// PSCI / SMCCC return values, as the 64-bit x0 the guest gets (sign-extended).
mod ret {
    pub const SUCCESS: u64 = 0;
    pub const NOT_SUPPORTED: u64 = -1i64 as u64;
    pub const INVALID_PARAMETERS: u64 = -2i64 as u64;
    pub const ALREADY_ON: u64 = -4i64 as u64;
    pub const ON_PENDING: u64 = -5i64 as u64;
    pub const INVALID_ADDRESS: u64 = -9i64 as u64;
}

/// AFFINITY_INFO results.
const AFF_ON: u64 = 0;
const AFF_OFF: u64 = 1;
const AFF_ON_PENDING: u64 = 2;

/// Version 1.1 (SMCCC and PSCI).
const V1_1: u64 = 0x1_0001;
/// MIGRATE_INFO_TYPE: no Trusted OS, migration not needed.
const MIGRATE_NONE: u64 = 2;
/// YIELD hypercall (test protocol).
const YIELD: u64 = 0xC600_0004;
/// Context ID passed to CPU_ON.
const CONTEXT: u64 = 0x1234_5678;
/// Guest RAM (IPA).
const RAM_START: u64 = 0x4000_0000;
const RAM_END: u64 = 0x5000_0000;

/// One SMCCC call with x0..x3 = `x`; returns x0.
fn call(conduit: Conduit, x: [u64; 4]) -> u64 {
    smccc::call(conduit, x)[0]
}

/// YIELD: lets the host run the other vCPU; returns 0 when this one runs again.
fn yield_now() -> u64 {
    call(Conduit::Hvc, [YIELD, 0, 0, 0])
}

/// Word the shared statics are read and written with: plain loads and stores only
/// (the MMU is off: Device memory, no exclusives or atomic read-modify-write).
fn bump(a: &AtomicU64) {
    a.store(a.load(Relaxed) + 1, Relaxed);
}

// ---- State shared between vCPU 0 and vCPU 1 (one physical core; switches happen
// only inside hypercalls, which the compiler treats as touching memory).

/// Round of the secondary test (0: HVC and 64-bit IDs, 1: SMC and 32-bit IDs).
static SEC_ROUND: AtomicU64 = AtomicU64::new(0);
/// Conduit vCPU 1 uses for CPU_OFF (0 HVC, 1 SMC).
static SEC_CONDUIT: AtomicU64 = AtomicU64::new(0);
/// How far vCPU 1 got: `stage(round, STAGE_*)`.
static SEC_STAGE: AtomicU64 = AtomicU64::new(0);
/// Failed checks on vCPU 1.
static SEC_FAILURES: AtomicU64 = AtomicU64::new(0);

const STAGE_RUNNING: u64 = 1;
const STAGE_CPU_OFF: u64 = 2;
const STAGE_CPU_OFF_RETURNED: u64 = 3;

const fn stage(round: u64, s: u64) -> u64 {
    0x5EC0_0000 | (round << 8) | s
}

// ---- State that survives SYSTEM_RESET: initialised data (loaded with the image,
// not zeroed at entry like .bss); guest RAM is kept across the reset.

const BOOT_FIRST: u64 = 0xB007_0001;
const BOOT_RESETTING: u64 = 0xB007_0002;
const BOOT_SECOND: u64 = 0xB007_0003;

#[link_section = ".data.psci_persist"]
static BOOT: AtomicU64 = AtomicU64::new(BOOT_FIRST);
/// Failed checks of the first boot (+ 0x100 so that the initial value is not 0).
#[link_section = ".data.psci_persist"]
static FIRST_FAILURES: AtomicU64 = AtomicU64::new(0x100);

fn main(c: &mut Checks, _entry: Entry) {
    match BOOT.load(Relaxed) {
        BOOT_FIRST => first_boot(c),
        BOOT_RESETTING => second_boot(c),
        other => c.fail(format_args!(
            "boot marker {other:#x}: this is neither the first boot nor the one after \
             SYSTEM_RESET (a second reset?)"
        )),
    }
    // Reaching here ends the run with EXIT, which the host counts as a failure.
}

fn secondary_entry() -> u64 {
    addr_of!(psci_secondary_entry) as u64
}

fn first_boot(c: &mut Checks) {
    println!("guest psci: first boot");
    table(c);
    errors_before_cpu_on(c);
    secondary_round(c, 0, Conduit::Hvc);
    secondary_round(c, 1, Conduit::Smc);

    FIRST_FAILURES.store(0x100 + c.failed(), Relaxed);
    BOOT.store(BOOT_RESETTING, Relaxed);
    println!(
        "guest psci: first boot done ({} failed check(s)); SYSTEM_RESET",
        c.failed()
    );
    let r = call(Conduit::Hvc, [fid::SYSTEM_RESET, 0, 0, 0]);
    BOOT.store(BOOT_SECOND, Relaxed);
    c.fail(format_args!("SYSTEM_RESET returned {r:#x}"));
}

fn second_boot(c: &mut Checks) {
    BOOT.store(BOOT_SECOND, Relaxed);
    let first = FIRST_FAILURES.load(Relaxed).wrapping_sub(0x100);
    println!("guest psci: second boot (after SYSTEM_RESET; first boot: {first} failed)");
    // The reset powered every vCPU off and restarted this one.
    for conduit in CONDUITS {
        c.check_eq(
            format_args!("{conduit}: AFFINITY_INFO(0, 0) after the reset"),
            call(conduit, [fid::AFFINITY_INFO_64, 0, 0, 0]),
            AFF_ON,
        );
        c.check_eq(
            format_args!("{conduit}: AFFINITY_INFO(1, 0) after the reset"),
            call(conduit, [fid::AFFINITY_INFO_64, 1, 0, 0]),
            AFF_OFF,
        );
    }
    let failures = first + c.failed();
    let verdict = hvc::test_call([0x51, failures, 0, 0, 0, 0]);
    c.check_eq(
        format_args!("TEST_CALL(0x51, {failures} failures): host's verdict"),
        verdict,
        0,
    );
    println!("guest psci: {failures} failed check(s) over both boots; SYSTEM_OFF via smc #0");
    let r = call(Conduit::Smc, [fid::SYSTEM_OFF, 0, 0, 0]);
    c.fail(format_args!("SYSTEM_OFF returned {r:#x}"));
}

/// One row of the conformance table: x0..x3 and the expected x0.
struct Row {
    what: &'static str,
    x: [u64; 4],
    expect: u64,
}

const fn row(what: &'static str, x: [u64; 4], expect: u64) -> Row {
    Row { what, x, expect }
}

fn run_rows(c: &mut Checks, conduits: &[Conduit], rows: &[Row]) {
    for &conduit in conduits {
        for r in rows {
            let got = call(conduit, r.x);
            let [x0, x1, x2, x3] = r.x;
            c.check_eq(
                format_args!(
                    "{conduit}: {} (x0..x3 = {x0:#x}, {x1:#x}, {x2:#x}, {x3:#x})",
                    r.what
                ),
                got,
                r.expect,
            );
        }
    }
}

/// Queries whose answer does not depend on the vCPUs' state, over both conduits.
fn table(c: &mut Checks) {
    use fid::*;
    use ret::*;
    // The Spectre workarounds: the `spectre` scenario checks them in full.
    let wa = guests::workaround::Facts::read().expected();
    let rows = [
        row("PSCI_VERSION", [PSCI_VERSION, 0, 0, 0], V1_1),
        row("SMCCC_VERSION", [SMCCC_VERSION, 0, 0, 0], V1_1),
        row(
            "SMCCC_ARCH_FEATURES(SMCCC_ARCH_FEATURES)",
            [SMCCC_ARCH_FEATURES, SMCCC_ARCH_FEATURES, 0, 0],
            SUCCESS,
        ),
        row(
            "SMCCC_ARCH_FEATURES(WORKAROUND_1) (as this CPU needs it)",
            [SMCCC_ARCH_FEATURES, WORKAROUND_1, 0, 0],
            wa[0],
        ),
        row(
            "SMCCC_ARCH_FEATURES(WORKAROUND_2) (as this CPU needs it)",
            [SMCCC_ARCH_FEATURES, WORKAROUND_2, 0, 0],
            wa[1],
        ),
        row(
            "SMCCC_ARCH_FEATURES(WORKAROUND_3) (as this CPU needs it)",
            [SMCCC_ARCH_FEATURES, WORKAROUND_3, 0, 0],
            wa[2],
        ),
        row(
            "SMCCC_ARCH_FEATURES(SOC_ID)",
            [SMCCC_ARCH_FEATURES, SMCCC_ARCH_SOC_ID, 0, 0],
            NOT_SUPPORTED,
        ),
        row(
            "MIGRATE_INFO_TYPE",
            [MIGRATE_INFO_TYPE, 0, 0, 0],
            MIGRATE_NONE,
        ),
        row("MIGRATE (32)", [MIGRATE_32, 1, 0, 0], NOT_SUPPORTED),
        row("MIGRATE (64)", [MIGRATE_64, 1, 0, 0], NOT_SUPPORTED),
        row(
            "MIGRATE_INFO_UP_CPU (32)",
            [MIGRATE_INFO_UP_CPU_32, 0, 0, 0],
            NOT_SUPPORTED,
        ),
        row(
            "MIGRATE_INFO_UP_CPU (64)",
            [MIGRATE_INFO_UP_CPU_64, 0, 0, 0],
            NOT_SUPPORTED,
        ),
        // 64-bit forms of 32-bit-only calls.
        row(
            "PSCI_VERSION (64-bit ID)",
            [0xC400_0000, 0, 0, 0],
            NOT_SUPPORTED,
        ),
        row("CPU_OFF (64-bit ID)", [0xC400_0002, 0, 0, 0], NOT_SUPPORTED),
        row(
            "MIGRATE_INFO_TYPE (64-bit ID)",
            [0xC400_0006, 0, 0, 0],
            NOT_SUPPORTED,
        ),
        row(
            "SYSTEM_OFF (64-bit ID)",
            [0xC400_0008, 0, 0, 0],
            NOT_SUPPORTED,
        ),
        row(
            "SYSTEM_RESET (64-bit ID)",
            [0xC400_0009, 0, 0, 0],
            NOT_SUPPORTED,
        ),
        row(
            "PSCI_FEATURES (64-bit ID)",
            [0xC400_000A, PSCI_VERSION, 0, 0],
            NOT_SUPPORTED,
        ),
        // Unimplemented and unknown IDs in the PSCI range.
        row("CPU_FREEZE", [CPU_FREEZE, 0, 0, 0], NOT_SUPPORTED),
        row(
            "SYSTEM_SUSPEND (64)",
            [SYSTEM_SUSPEND_64, RAM_START, 0, 0],
            NOT_SUPPORTED,
        ),
        row(
            "unknown PSCI ID 0x8400_0016",
            [0x8400_0016, 0, 0, 0],
            NOT_SUPPORTED,
        ),
        row(
            "unknown PSCI ID 0x8400_001F",
            [0x8400_001F, 0, 0, 0],
            NOT_SUPPORTED,
        ),
        row(
            "unknown PSCI ID 0xC400_001F",
            [0xC400_001F, 0, 0, 0],
            NOT_SUPPORTED,
        ),
        // Other owners the crate does not implement (over HVC the host answers).
        row(
            "SiP call 0x8200_0000",
            [0x8200_0000, 0, 0, 0],
            NOT_SUPPORTED,
        ),
        row(
            "OEM call 0x8300_0000",
            [0x8300_0000, 0, 0, 0],
            NOT_SUPPORTED,
        ),
        row(
            "reserved owner 0x8F00_0000",
            [0x8F00_0000, 0, 0, 0],
            NOT_SUPPORTED,
        ),
        row(
            "Trusted OS call 0xB200_0000",
            [0xB200_0000, 0, 0, 0],
            NOT_SUPPORTED,
        ),
        row(
            "unknown vendor-hypervisor ID 0xC600_00FF",
            [0xC600_00FF, 0, 0, 0],
            NOT_SUPPORTED,
        ),
        row(
            "yielding call 0x0400_0000",
            [0x0400_0000, 0, 0, 0],
            NOT_SUPPORTED,
        ),
    ];
    run_rows(c, &CONDUITS, &rows);

    // PSCI_FEATURES of every implemented function: 0; of the others: NOT_SUPPORTED.
    let implemented = [
        ("PSCI_VERSION", PSCI_VERSION),
        ("CPU_SUSPEND (32)", CPU_SUSPEND_32),
        ("CPU_SUSPEND (64)", CPU_SUSPEND_64),
        ("CPU_OFF", CPU_OFF),
        ("CPU_ON (32)", CPU_ON_32),
        ("CPU_ON (64)", CPU_ON_64),
        ("AFFINITY_INFO (32)", AFFINITY_INFO_32),
        ("AFFINITY_INFO (64)", AFFINITY_INFO_64),
        ("MIGRATE_INFO_TYPE", MIGRATE_INFO_TYPE),
        ("SYSTEM_OFF", SYSTEM_OFF),
        ("SYSTEM_RESET", SYSTEM_RESET),
        ("PSCI_FEATURES", PSCI_FEATURES),
        ("SMCCC_VERSION", SMCCC_VERSION),
    ];
    let missing = [
        ("SYSTEM_SUSPEND (32)", SYSTEM_SUSPEND_32),
        ("SYSTEM_SUSPEND (64)", SYSTEM_SUSPEND_64),
        ("SYSTEM_RESET2 (32)", SYSTEM_RESET2_32),
        ("SYSTEM_RESET2 (64)", SYSTEM_RESET2_64),
        ("MIGRATE (32)", MIGRATE_32),
        ("MIGRATE (64)", MIGRATE_64),
        ("MIGRATE_INFO_UP_CPU (32)", MIGRATE_INFO_UP_CPU_32),
        ("unknown 0x8400_001F", 0x8400_001F),
        ("unknown 0x1234_5678", 0x1234_5678),
    ];
    for conduit in CONDUITS {
        for (name, f) in implemented {
            c.check_eq(
                format_args!("{conduit}: PSCI_FEATURES({name} = {f:#x})"),
                call(conduit, [PSCI_FEATURES, f, 0, 0]),
                SUCCESS,
            );
        }
        for (name, f) in missing {
            c.check_eq(
                format_args!("{conduit}: PSCI_FEATURES({name} = {f:#x})"),
                call(conduit, [PSCI_FEATURES, f, 0, 0]),
                NOT_SUPPORTED,
            );
        }
    }

    // An SMC to anything outside PSCI and the Arm architecture calls: NOT_SUPPORTED
    // (no EL3 here, nothing allow-listed), even for the IDs that are hypercalls over
    // HVC.
    let smc_only = [
        row(
            "vendor-hypervisor NULL over SMC",
            [0xC600_0000, 0, 0, 0],
            NOT_SUPPORTED,
        ),
        row(
            "vendor-hypervisor TEST_CALL over SMC",
            [0xC600_0001, 0x51, 0, 0],
            NOT_SUPPORTED,
        ),
        row(
            "SiP call 0xC200_0001",
            [0xC200_0001, 0, 0, 0],
            NOT_SUPPORTED,
        ),
    ];
    run_rows(c, &[Conduit::Smc], &smc_only);
}

/// CPU_ON / AFFINITY_INFO / CPU_SUSPEND answers while vCPU 1 is still off.
fn errors_before_cpu_on(c: &mut Checks) {
    use fid::*;
    use ret::*;
    let entry = secondary_entry();
    let rows = [
        row(
            "AFFINITY_INFO (32) (1, 0) before CPU_ON",
            [AFFINITY_INFO_32, 1, 0, 0],
            AFF_OFF,
        ),
        row(
            "AFFINITY_INFO (64) (1, 0) before CPU_ON",
            [AFFINITY_INFO_64, 1, 0, 0],
            AFF_OFF,
        ),
        // SMC32/HVC32 calls use only the low 32 bits of their arguments.
        row(
            "AFFINITY_INFO (32) (1 | 0xffff_ffff << 32, 0) before CPU_ON",
            [AFFINITY_INFO_32, 0xFFFF_FFFF_0000_0001, 0, 0],
            AFF_OFF,
        ),
        row(
            "AFFINITY_INFO (32) (0, 0)",
            [AFFINITY_INFO_32, 0, 0, 0],
            AFF_ON,
        ),
        row(
            "AFFINITY_INFO (64) (0, 0)",
            [AFFINITY_INFO_64, 0, 0, 0],
            AFF_ON,
        ),
        row(
            "AFFINITY_INFO (32) (0, level 1)",
            [AFFINITY_INFO_32, 0, 1, 0],
            INVALID_PARAMETERS,
        ),
        row(
            "AFFINITY_INFO (64) (1, level 1)",
            [AFFINITY_INFO_64, 1, 1, 0],
            INVALID_PARAMETERS,
        ),
        row(
            "AFFINITY_INFO (32) (mpidr 7, 0)",
            [AFFINITY_INFO_32, 7, 0, 0],
            INVALID_PARAMETERS,
        ),
        row(
            "AFFINITY_INFO (64) (mpidr 7, 0)",
            [AFFINITY_INFO_64, 7, 0, 0],
            INVALID_PARAMETERS,
        ),
        row(
            "CPU_ON (32) (mpidr 7)",
            [CPU_ON_32, 7, entry, 0],
            INVALID_PARAMETERS,
        ),
        row(
            "CPU_ON (64) (mpidr 7)",
            [CPU_ON_64, 7, entry, 0],
            INVALID_PARAMETERS,
        ),
        row(
            "CPU_ON (32) (target 1 | 1 << 24: bits outside Aff3..Aff0)",
            [CPU_ON_32, 1 | 1 << 24, entry, 0],
            INVALID_PARAMETERS,
        ),
        row(
            "CPU_ON (64) (target 1 | 1 << 40: bits outside Aff3..Aff0)",
            [CPU_ON_64, 1 | 1 << 40, entry, 0],
            INVALID_PARAMETERS,
        ),
        row(
            "CPU_ON (32) (1, unaligned entry)",
            [CPU_ON_32, 1, entry + 2, 0],
            INVALID_ADDRESS,
        ),
        row(
            "CPU_ON (64) (1, unaligned entry)",
            [CPU_ON_64, 1, entry + 2, 0],
            INVALID_ADDRESS,
        ),
        row(
            "CPU_ON (32) (1, entry 0x1000_0000 outside RAM)",
            [CPU_ON_32, 1, 0x1000_0000, 0],
            INVALID_ADDRESS,
        ),
        row(
            "CPU_ON (64) (1, entry just below RAM)",
            [CPU_ON_64, 1, RAM_START - 4, 0],
            INVALID_ADDRESS,
        ),
        row(
            "CPU_ON (64) (1, entry at the end of RAM)",
            [CPU_ON_64, 1, RAM_END, 0],
            INVALID_ADDRESS,
        ),
        row(
            "CPU_ON (32) (0: the caller)",
            [CPU_ON_32, 0, entry, 0],
            ALREADY_ON,
        ),
        row(
            "CPU_ON (64) (0: the caller)",
            [CPU_ON_64, 0, entry, 0],
            ALREADY_ON,
        ),
        row(
            "CPU_SUSPEND (32) (standby, level 0)",
            [CPU_SUSPEND_32, 0, entry, 0],
            SUCCESS,
        ),
        row(
            "CPU_SUSPEND (64) (standby, level 0)",
            [CPU_SUSPEND_64, 0, entry, 0],
            SUCCESS,
        ),
        row(
            "CPU_SUSPEND (32) (powerdown: bit 16)",
            [CPU_SUSPEND_32, 1 << 16, entry, 0],
            INVALID_PARAMETERS,
        ),
        row(
            "CPU_SUSPEND (64) (powerdown: bit 16)",
            [CPU_SUSPEND_64, 1 << 16, entry, 0],
            INVALID_PARAMETERS,
        ),
        row(
            "CPU_SUSPEND (64) (standby, power level 1)",
            [CPU_SUSPEND_64, 1 << 24, entry, 0],
            INVALID_PARAMETERS,
        ),
        // Original power_state format: bits [31:26] and [23:17] are reserved.
        row(
            "CPU_SUSPEND (32) (reserved bit 17 set)",
            [CPU_SUSPEND_32, 1 << 17, entry, 0],
            INVALID_PARAMETERS,
        ),
        row(
            "CPU_SUSPEND (64) (reserved bit 28 set)",
            [CPU_SUSPEND_64, 1 << 28, entry, 0],
            INVALID_PARAMETERS,
        ),
    ];
    run_rows(c, &CONDUITS, &rows);
}

/// Starts vCPU 1 with CPU_ON over `conduit` (64-bit IDs over HVC, 32-bit IDs with
/// junk in the upper argument halves over SMC), follows it through ON_PENDING, ON
/// and, after its CPU_OFF, OFF.
fn secondary_round(c: &mut Checks, round: u64, conduit: Conduit) {
    use fid::*;
    use ret::*;
    let entry = secondary_entry();
    let (cpu_on, aff, entry_arg, ctx_arg) = match conduit {
        Conduit::Hvc => (CPU_ON_64, AFFINITY_INFO_64, entry, CONTEXT),
        Conduit::Smc => (
            CPU_ON_32,
            AFFINITY_INFO_32,
            entry | 0xFFFF_FFFF << 32,
            CONTEXT | 0xDEAD_BEEF << 32,
        ),
    };
    println!("guest psci: round {round}: CPU_ON(1) over {conduit}");
    SEC_ROUND.store(round, Relaxed);
    SEC_CONDUIT.store(conduit as u64, Relaxed);
    SEC_STAGE.store(0, Relaxed);
    let failures_before = SEC_FAILURES.load(Relaxed);

    let r = call(conduit, [cpu_on, 1, entry_arg, ctx_arg]);
    if !c.check_eq(
        format_args!("round {round}: {conduit}: CPU_ON(1, entry, context)"),
        r,
        SUCCESS,
    ) {
        return;
    }
    // Started but not yet run.
    for cd in CONDUITS {
        c.check_eq(
            format_args!("round {round}: {cd}: AFFINITY_INFO(1) before vCPU 1 ran"),
            call(cd, [aff, 1, 0, 0]),
            AFF_ON_PENDING,
        );
        c.check_eq(
            format_args!("round {round}: {cd}: CPU_ON(1) while ON_PENDING"),
            call(cd, [cpu_on, 1, entry_arg, ctx_arg]),
            ON_PENDING,
        );
    }
    c.check_eq(format_args!("round {round}: YIELD result"), yield_now(), 0);
    let s = SEC_STAGE.load(Relaxed);
    c.check_eq(
        format_args!("round {round}: vCPU 1's marker after the first YIELD (did it run?)"),
        s,
        stage(round, STAGE_RUNNING),
    );
    for cd in CONDUITS {
        c.check_eq(
            format_args!("round {round}: {cd}: AFFINITY_INFO(1) while vCPU 1 is on"),
            call(cd, [aff, 1, 0, 0]),
            AFF_ON,
        );
        c.check_eq(
            format_args!("round {round}: {cd}: CPU_ON(1) while on"),
            call(cd, [cpu_on, 1, entry_arg, ctx_arg]),
            ALREADY_ON,
        );
    }
    // vCPU 1 now calls CPU_OFF, which must not return.
    c.check_eq(format_args!("round {round}: YIELD result"), yield_now(), 0);
    c.check_eq(
        format_args!(
            "round {round}: vCPU 1's marker after the second YIELD (CPU_OFF made, not returned)"
        ),
        SEC_STAGE.load(Relaxed),
        stage(round, STAGE_CPU_OFF),
    );
    for cd in CONDUITS {
        c.check_eq(
            format_args!("round {round}: {cd}: AFFINITY_INFO(1) after its CPU_OFF"),
            call(cd, [aff, 1, 0, 0]),
            AFF_OFF,
        );
    }
    let sec = SEC_FAILURES.load(Relaxed) - failures_before;
    c.check_eq(
        format_args!("round {round}: failed checks on vCPU 1"),
        sec,
        0,
    );
}

/// vCPU 1, from asm/psci.S: `context` is its x0 at entry, `others` the OR of x1..x30.
#[no_mangle]
extern "C" fn psci_secondary_main(context: u64, others: u64) -> ! {
    // Read the state PSCI defines before anything can change it.
    let mpidr = read_sysreg!("mpidr_el1");
    let current_el = read_sysreg!("CurrentEL");
    let spsel = read_sysreg!("SPSel");
    let daif = read_sysreg!("DAIF");
    let sctlr = read_sysreg!("sctlr_el1");
    let round = SEC_ROUND.load(Relaxed);
    println!("guest psci: vCPU 1 running (round {round}, context {context:#x})");

    let checks: [(&str, u64, u64); 6] = [
        (
            "x0 (context_id, low 32 bits for a 32-bit CPU_ON)",
            context,
            CONTEXT,
        ),
        ("OR of x1..x30", others, 0),
        ("MPIDR_EL1", mpidr, 0x8000_0001),
        ("CurrentEL", current_el, 1 << 2),
        ("SPSel (EL1h)", spsel, 1),
        ("DAIF (all masked)", daif, 0xf << 6),
    ];
    for (what, got, expected) in checks {
        secondary_check(
            got == expected,
            format_args!("{what}: got {got:#018x}, expected {expected:#018x}"),
        );
    }
    secondary_check(
        sctlr & 1 == 0,
        format_args!("SCTLR_EL1.M: MMU on at entry (SCTLR_EL1 {sctlr:#x})"),
    );

    SEC_STAGE.store(stage(round, STAGE_RUNNING), Relaxed);
    let y = yield_now();
    secondary_check(y == 0, format_args!("YIELD returned {y:#x}"));

    SEC_STAGE.store(stage(round, STAGE_CPU_OFF), Relaxed);
    let conduit = if SEC_CONDUIT.load(Relaxed) == Conduit::Smc as u64 {
        Conduit::Smc
    } else {
        Conduit::Hvc
    };
    let r = call(conduit, [fid::CPU_OFF, 0, 0, 0]);
    SEC_STAGE.store(stage(round, STAGE_CPU_OFF_RETURNED), Relaxed);
    secondary_check(
        false,
        format_args!("CPU_OFF over {conduit} returned {r:#x}"),
    );
    loop {
        yield_now();
    }
}

fn secondary_check(ok: bool, why: fmt::Arguments) {
    if !ok {
        bump(&SEC_FAILURES);
        println!("guest psci: FAIL: vCPU 1: {why}");
    }
}
