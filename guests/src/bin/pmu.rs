//! `pmu`: the virtual PMUv3 (docs/test-protocol.md, "Issue 13: guest PMU"). The VM has
//! N event counters (TEST_CALL(0xE0); the host keeps values of its own in counters 4
//! and 5 and in the cycle counter, and checks them after every unbind):
//!
//! 1. the view: `ID_AA64DFR0_EL1.PMUVer` in 1..=5 (PMUv3p4 at most), `PMCR_EL0.N` = N,
//!    `PMCEID0_EL0` has SW_INCR and CPU_CYCLES; `PMEVCNTR<N>_EL0` UNDEFINED;
//!    the registers start at their reset values, not the host's;
//! 2. the cycle counter and two event counters (INST_RETIRED where `PMCEID0_EL0`
//!    offers it — QEMU only with `-icount` — else CPU_CYCLES; SW_INCR) count guest work
//!    and stop when disabled;
//! 3. the EL0/EL1 filter bits (P, U): an EL0 loop counts in the counter that filters
//!    EL1 out, an EL1 loop in the one that filters EL0 out;
//! 4. the host's time is not counted: the counters with NSH set (which asks to count
//!    EL2) do not advance across a TEST_CALL(0xE1) in which the host spins ~20 ms,
//!    nor across a vCPU switch (YIELD) after which the host spins again;
//! 5. `PMUSERENR_EL0` gates EL0: an EL0 read of `PMCCNTR_EL0` traps to EL1 (EC 0x18)
//!    with EN = 0 and completes with EN = 1;
//! 6. an overflow with its interrupt enabled raises PPI 23 through the virtual CPU
//!    interface while the guest runs (twice: the first was deactivated), and an
//!    overflow flag set before a vCPU switch is still set after it and raises the
//!    interrupt once enabled.
//!
//! TEST_CALL(0xE0) = the VM's event counters; (0xE1) = spin, returns the ns spun; (0xE2) = the
//! host's unbinds so far; (0xE3) = ns the host spun after unbinds.
#![no_std]
#![no_main]

use core::ptr::addr_of;

use guests::rt::{Checks, Entry};
use guests::slot::{self, enc, SlotState};
use guests::{hvc, println, read_sysreg, sysreg};

guests::guest_main!("pmu", main);

macro_rules! wr {
    ($name:literal, $v:expr) => {{
        let v: u64 = $v;
        // SAFETY: `msr` to a PMU register or the virtual GIC CPU interface: no memory
        // the compiler uses is affected; PSTATE.I stays masked here.
        unsafe { core::arch::asm!(concat!("msr ", $name, ", {}"), "isb", in(reg) v, options(nostack)) };
    }};
}

const PMCR_E: u64 = 1;
const PMCR_P: u64 = 2;
const PMCR_C: u64 = 4;
const CYCLE: u64 = 1 << 31;
const EV_SW_INCR: u64 = 0x00;
const EV_INST_RETIRED: u64 = 0x08;
const EV_CPU_CYCLES: u64 = 0x11;
const FILTER_P: u64 = 1 << 31;
const FILTER_U: u64 = 1 << 30;
const FILTER_NSH: u64 = 1 << 27;
const PMU_INTID: u64 = 23;

const COUNTERS: u64 = 0xE0;
const SPIN: u64 = 0xE1;
const UNBINDS: u64 = 0xE2;
const SPUN_AFTER_UNBIND: u64 = 0xE3;

#[repr(C, align(16))]
struct Stack([u8; 4096]);
static mut STACK: Stack = Stack([0; 4096]);

fn state(pstate: u64) -> SlotState {
    SlotState {
        sp: addr_of!(STACK) as u64 + 4096,
        pstate,
        ..Default::default()
    }
}

/// PSTATE: EL1h, D/A/F masked, I clear (IRQs taken).
const EL1H_IRQ: u64 = 0x345;
/// PSTATE: EL0t, DAIF masked.
const EL0T: u64 = 0x3c0;
/// The IRQ vector from EL1h (current EL, SPx): VBAR_EL1 + 0x280.
const VEC_IRQ_EL1H: u64 = 5;
/// A synchronous exception from EL0 (lower EL, AArch64): VBAR_EL1 + 0x400.
const VEC_SYNC_EL0: u64 = 8;

fn evcntr(n: u8) -> u64 {
    wr!("S3_3_C9_C12_5", n as u64); // PMSELR_EL0
    read_sysreg!("S3_3_C9_C13_2") // PMXEVCNTR_EL0
}

fn set_evcntr(n: u8, v: u64) {
    wr!("S3_3_C9_C12_5", n as u64);
    wr!("S3_3_C9_C13_2", v);
}

fn set_evtyper(n: u8, v: u64) {
    wr!("S3_3_C9_C12_5", n as u64);
    wr!("S3_3_C9_C13_1", v);
}

fn ccntr() -> u64 {
    // SAFETY: `isb` orders the read after the work measured.
    unsafe { core::arch::asm!("isb", options(nomem, nostack, preserves_flags)) };
    read_sysreg!("S3_3_C9_C13_0")
}

/// `n` iterations of a 2-instruction loop at EL1.
fn work(n: u64) {
    // SAFETY: a register-only loop.
    unsafe {
        core::arch::asm!("1: subs {0}, {0}, #1", "b.ne 1b", inout(reg) n.max(1) => _, options(nomem, nostack))
    };
}

/// The words `subs x0, x0, #1; b.ne -4` (a loop of x0 iterations in the slot).
const LOOP: [u32; 2] = [0xf100_0400, 0x54ff_ffe1];

fn view(c: &mut Checks, n: u64) -> u64 {
    let dfr0 = read_sysreg!("id_aa64dfr0_el1");
    let ver = dfr0 >> 8 & 0xf;
    c.check(
        (1..=5).contains(&ver),
        format_args!("ID_AA64DFR0_EL1.PMUVer = {ver}: expected a PMUv3 up to v3p4"),
    );
    let pmcr = read_sysreg!("S3_3_C9_C12_0");
    println!("guest pmu: ID_AA64DFR0_EL1 {dfr0:#x}, PMCR_EL0 {pmcr:#x}");
    c.check_eq(format_args!("PMCR_EL0.N"), pmcr >> 11 & 0x1f, n);
    let ceid0 = read_sysreg!("S3_3_C9_C12_6");
    c.check(
        ceid0 & 1 != 0 && ceid0 & 1 << EV_CPU_CYCLES != 0,
        format_args!("PMCEID0_EL0 {ceid0:#x} lacks SW_INCR or CPU_CYCLES"),
    );
    c.check_eq(
        format_args!("PMCEID0_EL0 SPE sample events"),
        ceid0 >> 32 & 0xf,
        0,
    );
    // Reset values, not the host's (it planted values in its counters 4, 5 and the
    // cycle counter, PMSELR_EL0 and PMCCFILTR_EL0).
    c.check_eq(
        format_args!("PMCR_EL0.E/P/C/D/X/DP at reset"),
        pmcr & 0x3f,
        0,
    );
    c.check_eq(
        format_args!("PMCNTENSET_EL0 at reset"),
        read_sysreg!("S3_3_C9_C12_1"),
        0,
    );
    c.check_eq(
        format_args!("PMINTENSET_EL1 at reset"),
        read_sysreg!("S3_0_C9_C14_1"),
        0,
    );
    c.check_eq(
        format_args!("PMOVSSET_EL0 at reset"),
        read_sysreg!("S3_3_C9_C14_3"),
        0,
    );
    c.check_eq(
        format_args!("PMSELR_EL0 at reset"),
        read_sysreg!("S3_3_C9_C12_5"),
        0,
    );
    c.check_eq(
        format_args!("PMCCNTR_EL0 at reset"),
        read_sysreg!("S3_3_C9_C13_0"),
        0,
    );
    c.check_eq(
        format_args!("PMCCFILTR_EL0 at reset"),
        read_sysreg!("S3_3_C14_C15_7"),
        0,
    );
    for i in 0..n as u8 {
        c.check_eq(format_args!("PMEVCNTR{i}_EL0 at reset"), evcntr(i), 0);
    }
    // PMEVCNTR<N>_EL0 is beyond the VM's counters: UNDEFINED.
    let mut s = state(slot::EL1H_DAIF);
    let (crm, op2) = (8 + n as u32 / 8, n as u32 % 8);
    let got = slot::run(&[enc::mrs(1, 3, 3, 14, crm, op2)], &mut s);
    c.check(
        matches!(got, Some(e) if e.vector == slot::VEC_SYNC_EL1H && e.ec() == 0),
        format_args!("PMEVCNTR{n}_EL0 (beyond N): expected UNDEFINED, got {got:?}"),
    );
    ceid0
}

fn counting(c: &mut Checks, ev: u64) {
    // Cycle counter (EL0 and EL1), counter 0 = `ev`, counter 1 = SW_INCR.
    wr!("S3_3_C14_C15_7", 0);
    set_evtyper(0, ev);
    set_evtyper(1, EV_SW_INCR);
    wr!("S3_3_C9_C12_0", PMCR_E | PMCR_P | PMCR_C);
    wr!("S3_3_C9_C12_1", CYCLE | 0b11);
    let (c0, e0) = (ccntr(), evcntr(0));
    work(20_000);
    let (c1, e1) = (ccntr(), evcntr(0));
    c.check(
        c1 > c0,
        format_args!("PMCCNTR_EL0 did not count: {c0} -> {c1}"),
    );
    let de = e1.wrapping_sub(e0) & 0xffff_ffff;
    if ev == EV_INST_RETIRED {
        c.check(
            (40_000..44_000).contains(&de),
            format_args!("INST_RETIRED over a 40000-instruction loop: {de}"),
        );
    } else {
        c.check(
            de > 0,
            format_args!("CPU_CYCLES did not count: {e0} -> {e1}"),
        );
    }
    for _ in 0..5 {
        wr!("S3_3_C9_C12_4", 0b11); // PMSWINC_EL0: counter 0 is not SW_INCR
    }
    c.check_eq(format_args!("SW_INCR after 5 PMSWINC writes"), evcntr(1), 5);
    // Disabled: nothing moves.
    wr!("S3_3_C9_C12_2", CYCLE | 0b11);
    let (c2, e2, s2) = (ccntr(), evcntr(0), evcntr(1));
    work(20_000);
    wr!("S3_3_C9_C12_4", 0b10);
    c.check_eq(format_args!("disabled PMCCNTR_EL0"), ccntr(), c2);
    c.check_eq(format_args!("disabled PMEVCNTR0_EL0"), evcntr(0), e2);
    c.check_eq(format_args!("disabled SW_INCR counter"), evcntr(1), s2);
    println!(
        "guest pmu: counted {} cycles and {de} events ({ev:#x}) in a loop",
        c1 - c0
    );
}

/// Iterations of each loop of [`filters`].
const FILTER_LOOP: u64 = 2_000_000;

fn filters(c: &mut Checks, ev: u64) {
    // Counter 2: EL0 only (P set); counter 3: EL1 only (U set).
    set_evtyper(2, ev | FILTER_P);
    set_evtyper(3, ev | FILTER_U);
    wr!("S3_3_C9_C12_0", PMCR_E | PMCR_P);
    wr!("S3_3_C9_C12_1", 0b1100);
    // Long loops: the harness's own EL1 instructions around each one (the slot's
    // entry, the exception that ends the EL0 loop) stay a small part of the counts
    // even when QEMU's cycle counter, which follows host time, runs on a loaded host.
    let mut s = state(EL0T);
    s.regs[0] = FILTER_LOOP;
    let got = slot::run(&LOOP, &mut s);
    // The words end by branching back into the EL1 harness, which is UNDEFINED at EL0.
    c.check(
        matches!(got, Some(e) if e.vector == VEC_SYNC_EL0),
        format_args!("EL0 loop: {got:?}"),
    );
    let (a0, a1) = (evcntr(2), evcntr(3));
    let mut s = state(slot::EL1H_DAIF);
    s.regs[0] = FILTER_LOOP;
    let _ = slot::run(&LOOP, &mut s);
    let (b0, b1) = (evcntr(2), evcntr(3));
    wr!("S3_3_C9_C12_2", 0b1100);
    let (el0_in_el0, el1_in_el0) = (a0, a1);
    let (el0_in_el1, el1_in_el1) = (b0 - a0, b1 - a1);
    c.check(
        el0_in_el0 > 4 * el1_in_el0.max(1),
        format_args!("EL0 loop: EL0-only counter {el0_in_el0}, EL1-only {el1_in_el0}"),
    );
    c.check(
        el1_in_el1 > 4 * el0_in_el1.max(1),
        format_args!("EL1 loop: EL1-only counter {el1_in_el1}, EL0-only {el0_in_el1}"),
    );
    println!(
        "guest pmu: filters: EL0 loop {el0_in_el0}/{el1_in_el0}, EL1 loop {el0_in_el1}/{el1_in_el1} (EL0-only/EL1-only)"
    );
}

fn host_time(c: &mut Checks, ev: u64) {
    // Ask for EL2 counting (NSH): the guest must count only itself.
    wr!("S3_3_C14_C15_7", FILTER_NSH);
    set_evtyper(0, ev | FILTER_NSH);
    wr!("S3_3_C9_C12_0", PMCR_E | PMCR_P | PMCR_C);
    wr!("S3_3_C9_C12_1", CYCLE | 1);
    let (c0, e0) = (ccntr(), evcntr(0));
    let spun = hvc::k(SPIN);
    let (c1, e1) = (ccntr(), evcntr(0));
    c.check(
        spun >= 5_000_000,
        format_args!("the host spun only {spun} ns"),
    );
    c.check(
        c1 - c0 < spun / 4,
        format_args!(
            "PMCCNTR_EL0 (NSH) counted host time: +{} across {spun} ns in the host",
            c1 - c0
        ),
    );
    let de = e1.wrapping_sub(e0) & 0xffff_ffff;
    c.check(
        de < spun / 4,
        format_args!("event counter (NSH) counted host time: +{de} across {spun} ns in the host"),
    );
    // Across a vCPU switch, the host spinning after the unbind.
    let u0 = hvc::k(UNBINDS);
    let (c2, e2) = (ccntr(), evcntr(0));
    hvc::call(hvc::YIELD, [0; 6]);
    let (c3, e3) = (ccntr(), evcntr(0));
    let u1 = hvc::k(UNBINDS);
    let away = hvc::k(SPUN_AFTER_UNBIND);
    c.check(
        u1 > u0,
        format_args!("YIELD did not unbind the vCPU ({u0} -> {u1})"),
    );
    c.check(
        c3 >= c2 && c3 - c2 < away / 4,
        format_args!("PMCCNTR_EL0 across a switch: {c2} -> {c3}, the host away {away} ns"),
    );
    let de = e3.wrapping_sub(e2) & 0xffff_ffff;
    c.check(
        de < away / 4,
        format_args!("event counter across a switch: +{de}, the host away {away} ns"),
    );
    wr!("S3_3_C9_C12_2", CYCLE | 1);
    wr!("S3_3_C14_C15_7", 0);
    println!(
        "guest pmu: host spin {spun} ns counted {} cycles; a switch with {away} ns away counted {}",
        c1 - c0,
        c3 - c2
    );
}

fn el0_access(c: &mut Checks) {
    let read = [enc::mrs(1, 3, 3, 9, 13, 0)]; // mrs x1, PMCCNTR_EL0
    let base = slot::slot_address();
    wr!("S3_3_C9_C14_0", 0); // PMUSERENR_EL0
    let mut s = state(EL0T);
    let got = slot::run(&read, &mut s);
    c.check(
        matches!(got, Some(e) if e.vector == VEC_SYNC_EL0 && e.ec() == 0x18 && e.elr == base),
        format_args!(
            "EL0 PMCCNTR_EL0 read with PMUSERENR_EL0.EN = 0: expected EC 0x18 at EL1, got {got:?}"
        ),
    );
    wr!("S3_3_C9_C14_0", 1);
    let mut s = state(EL0T);
    let got = slot::run(&read, &mut s);
    // It completes: the next thing that traps is the branch back into the harness.
    c.check(
        matches!(got, Some(e) if e.vector == VEC_SYNC_EL0 && e.elr != base),
        format_args!("EL0 PMCCNTR_EL0 read with PMUSERENR_EL0.EN = 1: got {got:?}"),
    );
    // Still open after a vCPU switch (loaded at bind for EL0's sake).
    hvc::call(hvc::YIELD, [0; 6]);
    let mut s = state(EL0T);
    let got = slot::run(&read, &mut s);
    c.check(
        matches!(got, Some(e) if e.vector == VEC_SYNC_EL0 && e.elr != base),
        format_args!("EL0 PMCCNTR_EL0 read with EN = 1 after a switch: got {got:?}"),
    );
    wr!("S3_3_C9_C14_0", 0);
}

/// Runs NOPs with IRQs unmasked; `Some(INTID)` if an IRQ was taken (acknowledged,
/// its overflow flag cleared, ended).
fn take_irq(c: &mut Checks, what: &str) -> Option<u64> {
    let mut s = state(EL1H_IRQ);
    let got = slot::run(&[enc::NOP; 8], &mut s);
    match got {
        Some(e) if e.vector == VEC_IRQ_EL1H => {
            let intid = read_sysreg!("S3_0_C12_C12_0") & 0xff_ffff; // ICC_IAR1_EL1
            let ovs = read_sysreg!("S3_3_C9_C14_3");
            wr!("S3_3_C9_C12_3", ovs); // PMOVSCLR_EL0
            wr!("S3_0_C12_C12_1", intid); // ICC_EOIR1_EL1
            c.check(
                ovs & 1 << 3 != 0,
                format_args!("{what}: PMOVSSET_EL0 {ovs:#x} in the handler"),
            );
            Some(intid)
        }
        _ => None,
    }
}

fn overflow(c: &mut Checks) {
    wr!("S3_0_C4_C6_0", 0xff); // ICC_PMR_EL1
    wr!("S3_0_C12_C12_7", 1); // ICC_IGRPEN1_EL1
    set_evtyper(3, EV_SW_INCR);
    wr!("S3_3_C9_C12_0", PMCR_E);
    wr!("S3_3_C9_C12_1", 1 << 3);
    wr!("S3_0_C9_C14_1", 1 << 3); // PMINTENSET_EL1
    for round in 0..2 {
        set_evcntr(3, 0xffff_fffe);
        wr!("S3_3_C9_C12_4", 1 << 3);
        wr!("S3_3_C9_C12_4", 1 << 3);
        let got = take_irq(c, "overflow");
        c.check(
            got == Some(PMU_INTID),
            format_args!("overflow {round}: expected PPI 23, got {got:?}"),
        );
    }
    // An overflow with its interrupt disabled, then a vCPU switch.
    wr!("S3_0_C9_C14_2", 1 << 3); // PMINTENCLR_EL1
    set_evcntr(3, 0xffff_ffff);
    wr!("S3_3_C9_C12_4", 1 << 3);
    wr!("S3_3_C9_C12_2", u64::MAX >> 32); // every counter off: not loaded at bind
    let got = take_irq(c, "masked overflow");
    c.check(
        got.is_none(),
        format_args!("an overflow with its interrupt disabled raised {got:?}"),
    );
    let u0 = hvc::k(UNBINDS);
    hvc::call(hvc::YIELD, [0; 6]);
    c.check(hvc::k(UNBINDS) > u0, format_args!("YIELD did not unbind"));
    let ovs = read_sysreg!("S3_3_C9_C14_3");
    c.check(
        ovs & 1 << 3 != 0,
        format_args!("PMOVSSET_EL0 after a switch: {ovs:#x}"),
    );
    wr!("S3_0_C9_C14_1", 1 << 3);
    let got = take_irq(c, "overflow pending across a switch");
    c.check(
        got == Some(PMU_INTID),
        format_args!("the overflow pending across a switch, enabled: expected PPI 23, got {got:?}"),
    );
    // And an interrupt already raised (masked by PSTATE.I) when the vCPU switches.
    set_evcntr(3, 0xffff_ffff);
    wr!("S3_3_C9_C12_1", 1 << 3);
    wr!("S3_3_C9_C12_4", 1 << 3);
    work(1000);
    hvc::call(hvc::YIELD, [0; 6]);
    let got = take_irq(c, "overflow raised before a switch");
    c.check(
        got == Some(PMU_INTID),
        format_args!("the interrupt raised before a switch: expected PPI 23 after it, got {got:?}"),
    );
    wr!("S3_0_C9_C14_2", u64::MAX >> 32);
    wr!("S3_3_C9_C12_2", u64::MAX >> 32);
    wr!("S3_3_C9_C12_0", 0);
    println!("guest pmu: overflow interrupts delivered (PPI 23), also across a switch");
}

fn main(c: &mut Checks, _entry: Entry) {
    let n = hvc::k(COUNTERS);
    println!("guest pmu: {n} event counters expected");
    let ceid0 = view(c, n);
    let ev = if ceid0 & 1 << EV_INST_RETIRED != 0 {
        EV_INST_RETIRED
    } else {
        println!("guest pmu: INST_RETIRED not offered (QEMU counts it only with -icount): CPU_CYCLES instead");
        EV_CPU_CYCLES
    };
    counting(c, ev);
    filters(c, ev);
    host_time(c, ev);
    el0_access(c);
    overflow(c);
    let _ = sysreg::cntvct();
}
