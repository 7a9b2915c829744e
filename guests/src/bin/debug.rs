//! `debug`: self-hosted debug works in a guest (docs/test-protocol.md, "Issue 8:
//! guest debug"). Every debug exception is taken at EL1 with the architectural
//! ESR_EL1, ELR_EL1 (and FAR_EL1 for watchpoints):
//!
//! 1. the registers start as the vCPU's own (0), not the host's;
//! 2. a hardware breakpoint, in every implemented slot; none without MDSCR_EL1.KDE or
//!    with PSTATE.D set; still armed after a vCPU switch (a trapped WFI);
//! 3. watchpoints on a load and on a store (first and last slot), FAR_EL1 = the
//!    address, the store not performed, the other kind of access not caught;
//! 4. the OS lock: breakpoints do not fire while it is locked, the registers keep
//!    what is written, they fire again once it is unlocked;
//! 5. software step of one ordinary instruction, then of a sequence where each
//!    instruction is completed by someone else — the PE, the host (MMIO load and
//!    store, HVC NULL and YIELD, WFI), the crate (ID register, ACTLR_EL1, SMC and HVC PSCI calls,
//!    the emulated timer, the OS lock status) — with one step exception after each;
//! 6. after a vCPU switch with nothing enabled (the state is not loaded at bind), the
//!    registers still hold the vCPU's values.
//!
//! TEST_CALL(x1 = 0xD1) returns how many times the host unbound the vCPU (the host
//! checks its own debug registers after each); the guest checks a WFI really switched.
#![no_std]
#![no_main]

use core::fmt;
use core::ptr::addr_of;

use guests::debug::{self as dbg, Counts};
use guests::rt::{Checks, Entry};
use guests::slot::{self, enc, SlotState, VEC_SYNC_EL1H};
use guests::{hvc, println, read_sysreg};

guests::guest_main!("debug", main);

guests::global_asm_file!("debug.S");

/// See asm/debug.S.
#[repr(C)]
struct StepRun {
    start: u64,
    end: u64,
    spsr: u64,
    log: *mut [u64; 2],
    max: u64,
    count: u64,
}

// `u64 debug_step_run(StepRun *)` is called with `bl` (see `single_step`).
extern "C" {
    static debug_step_code: u8;
    static debug_step_end: u8;
}

/// TEST_CALL(x1 = 0xD1): how many times the host has unbound this vCPU.
const UNBINDS: u64 = 0xD1;

/// What completes each instruction of `debug_step_code`, in order: `false` when the
/// PE executed it (the step exception has ISV = 1), `true` when the host or the crate
/// completed it at EL2 (the guest returns to the active-pending state with an ERET:
/// ISV = 0).
const STEPPED: &[(&str, bool)] = &[
    ("mov x9, #1", false),
    ("add x9, x9, #2", false),
    ("movz x11, #0x0b00, lsl #16", false),
    ("ldr w10, [x11, #0x100] (MMIO)", true),
    ("add x9, x9, x10", false),
    ("str w10, [x11] (MMIO)", true),
    ("movz x0, #0xc600, lsl #16", false),
    ("hvc #0 (NULL, host)", true),
    ("mrs x12, id_aa64pfr0_el1", true),
    ("msr actlr_el1, xzr", true),
    ("movz x0, #0xc600, lsl #16", false),
    ("movk x0, #4", false),
    ("hvc #0 (YIELD: vCPU switch)", true),
    ("wfi (vCPU switch)", true),
    ("movz x0, #0x8400, lsl #16", false),
    ("smc #0 (PSCI_VERSION)", true),
    ("movz x0, #0x8400, lsl #16", false),
    ("hvc #0 (PSCI_VERSION)", true),
    ("mrs x13, mdscr_el1", false),
    ("mrs x14, cntp_ctl_el0 (emulated timer)", true),
    ("mrs x15, oslsr_el1", true),
    ("nop", false),
];

/// Words for the slot: three NOPs (breakpoints on the second or third).
const NOPS: [u32; 3] = [enc::NOP, enc::NOP, enc::NOP];

#[repr(C, align(16))]
struct Stack([u8; 4096]);
static mut STACK: Stack = Stack([0; 4096]);

/// Watched doublewords (8-byte aligned).
#[repr(C, align(16))]
struct Watched([u64; 4]);
static mut WATCHED: Watched = Watched([0x5555_0000_0000_0001, 0, 0, 0]);

fn watched(i: usize) -> u64 {
    addr_of!(WATCHED) as u64 + 8 * i as u64
}

fn state(pstate: u64) -> SlotState {
    SlotState {
        sp: addr_of!(STACK) as u64 + 4096,
        pstate,
        ..Default::default()
    }
}

/// Runs `words` with `s`; checks the exception is exactly `esr` at `elr` (and FAR_EL1
/// = `far`), taken from EL1h to the current-EL SPx vector with SPSR_EL1 = the PSTATE
/// the words started with.
fn expect(
    c: &mut Checks,
    what: fmt::Arguments,
    words: &[u32],
    mut s: SlotState,
    esr: u64,
    elr: u64,
    far: Option<u64>,
) {
    let pstate = s.pstate;
    let got = slot::run(words, &mut s);
    let ok = matches!(got, Some(e) if e.vector == VEC_SYNC_EL1H && e.esr == esr && e.elr == elr
        && e.spsr & !dbg::SPSR_SS == pstate & !dbg::SPSR_SS
        && far.is_none_or(|f| e.far == f));
    c.check(
        ok,
        format_args!(
            "{what}: got {}, expected ESR_EL1 {esr:#x} ELR_EL1 {elr:#x}{}",
            slot::describe(&got),
            match far {
                Some(_) => " and FAR_EL1 = the watched address",
                None => "",
            }
        ),
    );
}

/// Runs `words` with `s`; checks nothing is taken.
fn expect_none(c: &mut Checks, what: fmt::Arguments, words: &[u32], mut s: SlotState) {
    let got = slot::run(words, &mut s);
    c.check(
        got.is_none(),
        format_args!("{what}: got {}", slot::describe(&got)),
    );
}

/// Executes a trapped WFI (the host unbinds and binds the vCPU) and checks that it
/// did switch.
fn vcpu_switch(c: &mut Checks) {
    let before = hvc::k(UNBINDS);
    // SAFETY: WFI only waits (here: traps to the host, which resumes the guest).
    unsafe { core::arch::asm!("wfi", options(nomem, nostack, preserves_flags)) };
    let after = hvc::k(UNBINDS);
    c.check(
        after > before,
        format_args!("a trapped WFI unbinds the vCPU: count {before} -> {after}"),
    );
}

fn own_registers_at_start(c: &mut Checks, n: &Counts) {
    // The first access loads the vCPU's state: its own zeros, not the host's values
    // (the host planted some in breakpoint and watchpoint 1 and in MDSCR_EL1).
    c.check_eq(format_args!("MDSCR_EL1 at start"), dbg::mdscr(), 0);
    for i in 0..n.brps {
        c.check_eq(format_args!("DBGBVR{i}_EL1 at start"), dbg::bvr(i), 0);
        c.check_eq(format_args!("DBGBCR{i}_EL1 at start"), dbg::bcr(i), 0);
    }
    for i in 0..n.wrps {
        c.check_eq(format_args!("DBGWVR{i}_EL1 at start"), dbg::wvr(i), 0);
        c.check_eq(format_args!("DBGWCR{i}_EL1 at start"), dbg::wcr(i), 0);
    }
    c.check_eq(
        format_args!("OSLSR_EL1 (OS lock implemented, unlocked)"),
        read_sysreg!("S2_0_C1_C1_4"),
        0x8,
    );
}

fn breakpoints(c: &mut Checks, n: &Counts) {
    let base = slot::slot_address();
    for i in 0..n.brps {
        dbg::set_bvr(i, base + 4);
        dbg::set_bcr(i, dbg::BCR_EL1_EL0);
        dbg::set_mdscr(dbg::MDSCR_MDE | dbg::MDSCR_KDE);
        dbg::isb();
        c.check_eq(
            format_args!("DBGBVR{i}_EL1 read back"),
            dbg::bvr(i),
            base + 4,
        );
        expect(
            c,
            format_args!("breakpoint {i} on the second NOP"),
            &NOPS,
            state(dbg::EL1H_DEBUG),
            dbg::ESR_BREAKPOINT,
            base + 4,
            None,
        );
        dbg::set_bcr(i, 0);
    }
    // Breakpoint 0 on the third NOP: not from EL1 without KDE, nor with PSTATE.D set.
    dbg::set_bvr(0, base + 8);
    dbg::set_bcr(0, dbg::BCR_EL1_EL0);
    dbg::set_mdscr(dbg::MDSCR_MDE);
    dbg::isb();
    expect_none(
        c,
        format_args!("breakpoint with MDSCR_EL1.KDE clear"),
        &NOPS,
        state(dbg::EL1H_DEBUG),
    );
    dbg::set_mdscr(dbg::MDSCR_MDE | dbg::MDSCR_KDE);
    dbg::isb();
    expect_none(
        c,
        format_args!("breakpoint with PSTATE.D set"),
        &NOPS,
        state(slot::EL1H_DAIF),
    );
    // Armed across a vCPU switch: loaded again at bind, since MDE/KDE are set.
    vcpu_switch(c);
    expect(
        c,
        format_args!("breakpoint 0 after a vCPU switch"),
        &NOPS,
        state(dbg::EL1H_DEBUG),
        dbg::ESR_BREAKPOINT,
        base + 8,
        None,
    );
    dbg::disarm(n);
}

fn watchpoints(c: &mut Checks, n: &Counts) {
    let load = [enc::ldr(1, 0)];
    let store = [enc::str(1, 0)];
    let slot = slot::slot_address();
    for (i, w) in [(0, 0usize), (n.wrps - 1, 1)] {
        let a = watched(w);
        let mut s = state(dbg::EL1H_DEBUG);
        s.regs[0] = a;
        s.regs[1] = 0xaaaa_bbbb_cccc_dddd;
        dbg::set_wvr(i, a);
        dbg::set_wcr(i, dbg::WCR_LOAD);
        dbg::set_mdscr(dbg::MDSCR_MDE | dbg::MDSCR_KDE);
        dbg::isb();
        expect(
            c,
            format_args!("watchpoint {i} on a load"),
            &load,
            s,
            dbg::ESR_WATCHPOINT,
            slot,
            Some(a),
        );
        expect_none(c, format_args!("load watchpoint {i}, a store"), &store, s);
        // SAFETY: plain read of this guest's own static (no reference is kept).
        let stored = unsafe { core::ptr::read_volatile(addr_of!(WATCHED.0[w])) };
        c.check_eq(format_args!("the store went through"), stored, s.regs[1]);
        dbg::set_wcr(i, dbg::WCR_STORE);
        dbg::isb();
        s.regs[1] = 0x1234;
        expect(
            c,
            format_args!("watchpoint {i} on a store"),
            &store,
            s,
            dbg::ESR_WATCHPOINT | dbg::WNR,
            slot,
            Some(a),
        );
        // SAFETY: as above.
        let kept = unsafe { core::ptr::read_volatile(addr_of!(WATCHED.0[w])) };
        c.check_eq(
            format_args!("a store caught by a watchpoint is not performed"),
            kept,
            0xaaaa_bbbb_cccc_dddd,
        );
        expect_none(c, format_args!("store watchpoint {i}, a load"), &load, s);
        dbg::set_wcr(i, 0);
    }
    dbg::disarm(n);
}

fn os_lock(c: &mut Checks, n: &Counts) {
    let base = slot::slot_address();
    guests::write_debug_reg!("S2_0_C1_C0_4", 1); // OSLAR_EL1: lock
    c.check_eq(
        format_args!("OSLSR_EL1 locked"),
        read_sysreg!("S2_0_C1_C1_4"),
        0xa,
    );
    dbg::set_bvr(0, base + 4);
    dbg::set_bcr(0, dbg::BCR_EL1_EL0);
    dbg::set_mdscr(dbg::MDSCR_MDE | dbg::MDSCR_KDE);
    dbg::isb();
    expect_none(
        c,
        format_args!("breakpoint with the OS lock locked"),
        &NOPS,
        state(dbg::EL1H_DEBUG),
    );
    c.check_eq(
        format_args!("DBGBVR0_EL1 written with the OS lock locked"),
        dbg::bvr(0),
        base + 4,
    );
    c.check_eq(
        format_args!("MDSCR_EL1 written with the OS lock locked"),
        dbg::mdscr(),
        dbg::MDSCR_MDE | dbg::MDSCR_KDE,
    );
    // Across a switch, still locked.
    vcpu_switch(c);
    expect_none(
        c,
        format_args!("breakpoint with the OS lock locked, after a vCPU switch"),
        &NOPS,
        state(dbg::EL1H_DEBUG),
    );
    guests::write_debug_reg!("S2_0_C1_C0_4", 0); // unlock
    dbg::isb();
    expect(
        c,
        format_args!("breakpoint once the OS lock is unlocked"),
        &NOPS,
        state(dbg::EL1H_DEBUG),
        dbg::ESR_BREAKPOINT,
        base + 4,
        None,
    );
    dbg::disarm(n);
}

fn single_step(c: &mut Checks) {
    // One ordinary instruction from the slot: ADD x1, x1, #1.
    let base = slot::slot_address();
    dbg::set_mdscr(dbg::MDSCR_SS | dbg::MDSCR_KDE);
    dbg::isb();
    expect(
        c,
        format_args!("software step of ADD"),
        &[0x9100_0421, enc::NOP],
        state(dbg::EL1H_DEBUG | dbg::SPSR_SS),
        dbg::ESR_STEP,
        base + 4,
        None,
    );

    // The sequence: one step exception after each instruction, at the next one.
    let start = addr_of!(debug_step_code) as u64;
    let end = addr_of!(debug_step_end) as u64;
    let mut log = [[0u64; 2]; 32];
    let mut r = StepRun {
        start,
        end,
        spsr: dbg::EL1H_DEBUG | dbg::SPSR_SS,
        log: log.as_mut_ptr(),
        max: log.len() as u64,
        count: 0,
    };
    let before = hvc::k(UNBINDS);
    // SAFETY: the harness follows the C ABI for x18..x30, SP and VBAR_EL1, writes only
    // `r` and `log` (r.max entries) and its own .bss; the stepped code changes x0..x17
    // (declared) and touches only the test device and the hypervisor.
    let count = unsafe {
        let n: u64;
        core::arch::asm!(
            "bl debug_step_run",
            inout("x0") &mut r as *mut StepRun => n,
            clobber_abi("C"),
        );
        n
    } as usize;
    let after = hvc::k(UNBINDS);
    c.check(
        after > before,
        format_args!("the stepped YIELD switched the vCPU ({before} -> {after})"),
    );
    c.check_eq(
        format_args!("step exceptions over the sequence"),
        count as u64,
        STEPPED.len() as u64,
    );
    for (k, &(insn, emulated)) in STEPPED.iter().enumerate() {
        let Some(&[esr, elr]) = log.get(k) else { break };
        if k >= count {
            break;
        }
        let want_elr = start + 4 * (k as u64 + 1);
        let want_esr = if emulated {
            dbg::ESR_STEP_NO_SYNDROME
        } else {
            dbg::ESR_STEP
        };
        // QEMU 7.2 (TCG) runs a WFI as a NOP while single-stepping instead of taking
        // the TWI trap, so the PE itself stepped it.
        if insn.starts_with("wfi") && elr == want_elr && esr == dbg::ESR_STEP {
            println!(
                "guest debug: note: the stepped WFI did not trap (QEMU TCG runs WFI as a \
                 NOP while single-stepping); the YIELD before it switched the vCPU"
            );
            continue;
        }
        c.check(
            elr == want_elr && esr == want_esr,
            format_args!(
                "step over `{insn}`: ESR_EL1 {esr:#x} ELR_EL1 {elr:#x} (instruction {}), \
                 expected {want_esr:#x} at {want_elr:#x}",
                (elr.wrapping_sub(start) / 4) as i64
            ),
        );
    }
    dbg::set_mdscr(0);
    dbg::isb();
}

fn kept_when_not_loaded(c: &mut Checks, n: &Counts) {
    // Nothing enabled: the next bind does not load the state; the first access after
    // it does, and finds the vCPU's values.
    let v = slot::slot_address() + 0x40;
    dbg::set_bvr(n.brps - 1, v);
    dbg::set_wvr(n.wrps - 1, watched(2));
    dbg::disarm(n);
    vcpu_switch(c);
    c.check_eq(
        format_args!(
            "DBGBVR{}_EL1 after a switch with nothing enabled",
            n.brps - 1
        ),
        dbg::bvr(n.brps - 1),
        v,
    );
    c.check_eq(
        format_args!(
            "DBGWVR{}_EL1 after a switch with nothing enabled",
            n.wrps - 1
        ),
        dbg::wvr(n.wrps - 1),
        watched(2),
    );
}

fn main(c: &mut Checks, _entry: Entry) {
    let n = Counts::read();
    println!(
        "guest debug: {} breakpoints ({} context-aware), {} watchpoints",
        n.brps, n.ctx_cmps, n.wrps
    );
    c.check(
        n.brps >= 2 && n.wrps >= 2,
        format_args!("at least 2 breakpoints and 2 watchpoints (DDI 0487 D2.8)"),
    );
    own_registers_at_start(c, &n);
    breakpoints(c, &n);
    watchpoints(c, &n);
    os_lock(c, &n);
    single_step(c);
    kept_when_not_loaded(c, &n);
    dbg::disarm(&n);
}
