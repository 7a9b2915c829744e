//! `inject`: every exception the hypervisor injects arrives at the guest's own
//! VBAR_EL1 vectors with exactly the registers the architecture specifies.
//!
//! Each case runs through `inject_probe` (asm/inject.S), which ERETs into a one-
//! instruction target with a chosen PSTATE and records what its vectors saw: vector
//! offset, ESR_EL1, FAR_EL1, ELR_EL1, SPSR_EL1, and DAIF/SPSel inside the handler.
#![no_std]
#![no_main]

use core::fmt;
use core::ptr::addr_of;

use guests::arch::{C, IL, N, V, Z};
use guests::rt::{Checks, Entry};
use guests::{hvc, println};

guests::guest_main!("inject", main);

guests::global_asm_file!("inject.S");

extern "C" {
    fn inject_probe(target: u64, spsr: u64, arg: u64, rec: *mut Record);
    static inject_t_impdef: u8;
    static inject_t_pmu: u8;
    static inject_t_load: u8;
    static inject_t_store: u8;
    static inject_t_ldp: u8;
    static inject_t_el0_load: u8;
    static inject_t_blr: u8;
    static inject_t_serror: u8;
}

/// What the probe's vectors record (layout shared with asm/inject.S).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct Record {
    taken: u64,
    offset: u64,
    esr: u64,
    far: u64,
    elr: u64,
    spsr: u64,
    daif: u64,
    spsel: u64,
}

/// IPA with nothing behind it (neither RAM nor a device).
const UNMAPPED_DATA: u64 = 0x0c00_0000;
/// IPA with nothing behind it, branched to.
const UNMAPPED_CODE: u64 = 0x0d00_0000;

/// Synchronous external abort, DFSC/IFSC.
const FSC_EXT: u64 = 0x10;
/// ESR_EL1.WnR.
const WNR: u64 = 1 << 6;
/// PSTATE.DAIF all set.
const DAIF: u64 = 0xf << 6;
/// PSTATE.BTYPE (set by BLR when FEAT_BTI is implemented).
const BTYPE: u64 = 0b11 << 10;
const EL0T: u64 = 0b0000;
const EL1T: u64 = 0b0100;
const EL1H: u64 = 0b0101;

/// Vector offsets.
const CUR_SP0_SYNC: u64 = 0x000;
const CUR_SPX_SYNC: u64 = 0x200;
const CUR_SPX_SERROR: u64 = 0x380;
const LOWER_A64_SYNC: u64 = 0x400;

/// Runs one probe and returns what the vectors recorded.
fn probe(target: u64, spsr: u64, arg: u64) -> Record {
    let mut rec = Record::default();
    // SAFETY: `inject_probe` follows the AAPCS64 (callee-saved registers, SP and
    // VBAR_EL1 restored on both ways out); it writes only `rec` and its own .bss
    // words. The targets touch only the unmapped IPA in x2 (which faults) and
    // registers the call clobbers anyway.
    unsafe { inject_probe(target, spsr, arg, &mut rec) };
    rec
}

/// What one case expects. `None` fields are not checked.
struct Expect {
    offset: u64,
    esr: u64,
    /// Mask applied to ESR_EL1 before comparing.
    esr_mask: u64,
    far: Option<u64>,
    elr: Option<u64>,
    spsr: u64,
    /// Mask applied to SPSR_EL1 before comparing.
    spsr_mask: u64,
}

/// Checks one case; returns whether it took exactly one exception at the right vector.
fn check(c: &mut Checks, what: fmt::Arguments, rec: &Record, e: &Expect) -> bool {
    if !c.check(
        rec.taken == 1,
        format_args!("{what}: {} exceptions taken, expected exactly 1", rec.taken),
    ) {
        if rec.taken == 0 {
            return false;
        }
        println!("guest inject: {what}: last one recorded: {rec:#x?}");
    }
    let at_vector = c.check_eq(format_args!("{what}: vector offset"), rec.offset, e.offset);
    c.check_eq(
        format_args!("{what}: ESR_EL1 (mask {:#x})", e.esr_mask),
        rec.esr & e.esr_mask,
        e.esr,
    );
    if let Some(far) = e.far {
        c.check_eq(format_args!("{what}: FAR_EL1"), rec.far, far);
    }
    if let Some(elr) = e.elr {
        c.check_eq(format_args!("{what}: ELR_EL1"), rec.elr, elr);
    }
    c.check_eq(
        format_args!("{what}: SPSR_EL1 (mask {:#x})", e.spsr_mask),
        rec.spsr & e.spsr_mask,
        e.spsr,
    );
    // The exception entry itself: EL1h with every exception masked.
    c.check_eq(format_args!("{what}: DAIF in the handler"), rec.daif, DAIF);
    c.check_eq(format_args!("{what}: SPSel in the handler"), rec.spsel, 1);
    rec.taken == 1 && at_vector
}

fn main(c: &mut Checks, _entry: Entry) {
    // Taking the address of an extern symbol reads nothing (no `unsafe` needed).
    let t_impdef = addr_of!(inject_t_impdef) as u64;
    let t_pmu = addr_of!(inject_t_pmu) as u64;
    let t_load = addr_of!(inject_t_load) as u64;
    let t_store = addr_of!(inject_t_store) as u64;
    let t_ldp = addr_of!(inject_t_ldp) as u64;
    let t_el0 = addr_of!(inject_t_el0_load) as u64;
    let t_blr = addr_of!(inject_t_blr) as u64;
    let t_serror = addr_of!(inject_t_serror) as u64;
    let all = u64::MAX;

    // UNDEF for traps nobody handles, from EL1h and from EL1t; the interrupted
    // PSTATE (NZCV included) must come back in SPSR_EL1.
    let undef = |offset, elr, spsr| Expect {
        offset,
        esr: IL,
        esr_mask: all,
        far: None,
        elr: Some(elr),
        spsr,
        spsr_mask: all,
    };
    let from = [
        ("EL1h", CUR_SPX_SYNC, N | C | DAIF | EL1H),
        ("EL1t", CUR_SP0_SYNC, Z | C | DAIF | EL1T),
    ];
    // A PMU register (MDCR_EL2.TPM: PMU state is not switched per vCPU).
    for (el, offset, spsr) in from {
        let rec = probe(t_pmu, spsr, 0);
        check(
            c,
            format_args!("UNDEF (mrs pmcr_el0) from {el}"),
            &rec,
            &undef(offset, t_pmu, spsr),
        );
    }
    // An IMPDEF register (HCR_EL2.TIDCP). QEMU 7.2 does not trap on TIDCP and
    // answers this encoding itself (L2ACTLR, RAZ), so the read may complete
    // without reaching EL2: then there is nothing to check, and the guest says so.
    for (el, offset, spsr) in from {
        let rec = probe(t_impdef, spsr, 0);
        if rec.taken == 0 {
            println!(
                "guest inject: note: UNDEF (mrs S3_1_C15_C0_0, IMPDEF) from {el}: no exception (the CPU did not trap the \
                 IMPDEF register to EL2: no HCR_EL2.TIDCP in this QEMU); not checked"
            );
        } else {
            check(
                c,
                format_args!("UNDEF (mrs S3_1_C15_C0_0, IMPDEF) from {el}"),
                &rec,
                &undef(offset, t_impdef, spsr),
            );
        }
    }

    // Data aborts at an IPA nothing serves: the host injects a synchronous external
    // abort with FAR_EL1 = the address (MMU off: VA = IPA).
    let mut injected = 0;
    let dabt = |ec: u64, write: bool, offset, elr, spsr| Expect {
        offset,
        esr: (ec << 26) | IL | if write { WNR } else { 0 } | FSC_EXT,
        esr_mask: all,
        far: Some(UNMAPPED_DATA),
        elr: Some(elr),
        spsr,
        spsr_mask: all,
    };
    let spsr = N | V | DAIF | EL1H;
    let rec = probe(t_load, spsr, UNMAPPED_DATA);
    injected += rec.taken;
    check(
        c,
        format_args!("data abort, load (ISV = 1) from EL1"),
        &rec,
        &dabt(0x25, false, CUR_SPX_SYNC, t_load, spsr),
    );
    let spsr = Z | V | DAIF | EL1H;
    let rec = probe(t_store, spsr, UNMAPPED_DATA);
    injected += rec.taken;
    check(
        c,
        format_args!("data abort, store (ISV = 1) from EL1"),
        &rec,
        &dabt(0x25, true, CUR_SPX_SYNC, t_store, spsr),
    );
    let spsr = C | V | DAIF | EL1H;
    let rec = probe(t_ldp, spsr, UNMAPPED_DATA);
    injected += rec.taken;
    check(
        c,
        format_args!("data abort, LDP (ISV = 0) from EL1"),
        &rec,
        &dabt(0x25, false, CUR_SPX_SYNC, t_ldp, spsr),
    );
    let spsr = Z | DAIF | EL0T;
    let rec = probe(t_el0, spsr, UNMAPPED_DATA);
    injected += rec.taken;
    check(
        c,
        format_args!("data abort, load from EL0"),
        &rec,
        &dabt(0x24, false, LOWER_A64_SYNC, t_el0, spsr),
    );

    // Instruction abort: BLR to an IPA nothing serves. BLR may leave PSTATE.BTYPE
    // = 0b10 (FEAT_BTI) in SPSR_EL1; that field is not the injection's business.
    let spsr = N | DAIF | EL1H;
    let rec = probe(t_blr, spsr, UNMAPPED_CODE);
    injected += rec.taken;
    check(
        c,
        format_args!("instruction abort (BLR to an unmapped IPA)"),
        &rec,
        &Expect {
            offset: CUR_SPX_SYNC,
            esr: (0x21 << 26) | IL | FSC_EXT,
            esr_mask: all,
            far: Some(UNMAPPED_CODE),
            elr: Some(UNMAPPED_CODE),
            spsr,
            spsr_mask: !BTYPE,
        },
    );

    // Virtual SError: the host makes one pending; it stays pending while PSTATE.A is
    // set (an early one would hit the runtime's vectors and end the run), and is taken
    // at offset 0x380 once the target unmasks it. ESR_EL1's ISS is IMPLEMENTATION
    // DEFINED without FEAT_RAS: only EC is checked. SPSR_EL1 is the PSTATE after the
    // unmask (EL1h, D, I, F set, A clear).
    c.check_eq(
        format_args!("TEST_CALL(0x61) (inject a virtual SError)"),
        hvc::k(0x61),
        0,
    );
    let rec = probe(t_serror, DAIF | EL1H, 0);
    injected += rec.taken;
    check(
        c,
        format_args!("virtual SError"),
        &rec,
        &Expect {
            offset: CUR_SPX_SERROR,
            esr: 0x2f << 26,
            esr_mask: 0x3f << 26,
            far: None,
            elr: None,
            spsr: (DAIF & !(1 << 8)) | EL1H,
            spsr_mask: all,
        },
    );
    println!("guest inject: virtual SError ESR_EL1 = {:#x}", rec.esr);

    // The host counted the aborts and SErrors it injected.
    c.check_eq(
        format_args!("TEST_CALL(0x62, {injected} injections seen): host's verdict"),
        hvc::test_call([0x62, injected, 0, 0, 0, 0]),
        0,
    );
}
