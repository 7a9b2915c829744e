//! `classes`: one exit of every class an EL1 guest can route to EL2, each answer
//! checked (see docs/test-protocol.md). Every probe runs in the code slot
//! (`guests::slot`) with all registers preset, so an exception it raises at EL1 is
//! caught and checked exactly, and a fall-through is checked for registers that
//! changed but should not have.
#![no_std]
#![no_main]

use core::fmt;
use core::ptr::addr_of;

use guests::rng::Rng;
use guests::rt::{Checks, Entry};
use guests::slot::{self, enc, Caught, SlotState, EL1H_DAIF, VEC_SYNC_EL1H};
use guests::{gic, hvc, println};

guests::guest_main!("classes", main);

/// Guest RAM (IPA).
const RAM_START: u64 = 0x4000_0000;
const RAM_END: u64 = 0x5000_0000;
/// Nothing is mapped or emulated at these IPAs.
const UNMAPPED_DATA: u64 = 0x0c00_0000;
const UNMAPPED_CODE: u64 = 0x0d00_0000;

/// ESR_EL1 of an injected UNDEFINED exception: EC 0, IL 1.
const ESR_UNDEF: u64 = 0x0200_0000;
/// ESR_EL1 of an injected synchronous external data abort from EL1 (EC 0x25, IL,
/// DFSC 0x10); WnR is bit 6.
const ESR_DABT: u64 = (0x25 << 26) | (1 << 25) | 0x10;
const WNR: u64 = 1 << 6;
/// ... and of an instruction abort (EC 0x21, IL, IFSC 0x10).
const ESR_IABT: u64 = (0x21 << 26) | (1 << 25) | 0x10;

/// PSTATE the probes that expect an exception start with: N and C set, so the
/// SPSR_EL1 check sees that NZCV was kept.
const PSTATE_NC: u64 = EL1H_DAIF | (0b1010 << 28);

/// Stack the probes run on.
#[repr(C, align(16))]
struct Stack([u64; 512]);
static STACK: Stack = Stack([0; 512]);

/// Preset register values: distinct per register, never an address.
fn pattern(k: usize) -> u64 {
    0xC1A5_0000_0000_0000 | ((k as u64) << 40) | (0x5A5A_0000 + k as u64)
}

fn fresh() -> SlotState {
    let mut s = SlotState::default();
    for (k, r) in s.regs.iter_mut().enumerate() {
        *r = pattern(k);
    }
    s.sp = addr_of!(STACK) as u64 + core::mem::size_of::<Stack>() as u64;
    s.pstate = EL1H_DAIF;
    s
}

/// A state with some registers set.
fn with(regs: &[(usize, u64)]) -> SlotState {
    let mut s = fresh();
    for &(k, v) in regs {
        s.regs[k] = v;
    }
    s
}

/// Bit `k` for register xk (`changed` masks).
const fn x(k: u32) -> u32 {
    1 << k
}

fn describe(e: &Caught) -> impl fmt::Display + '_ {
    struct D<'a>(&'a Caught);
    impl fmt::Display for D<'_> {
        fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
            let e = self.0;
            write!(
                f,
                "vector {:#x} ESR_EL1 {:#x} (EC {:#x}) ELR_EL1 {:#x} (slot {:#x}) FAR_EL1 {:#x} \
                 SPSR_EL1 {:#x}",
                e.vector * 0x80,
                e.esr,
                e.ec(),
                e.elr,
                slot::slot_address(),
                e.far,
                e.spsr
            )
        }
    }
    D(e)
}

/// Runs `words` from `init`, expecting a fall-through that changes no register
/// outside `changed` (bit k = xk) and leaves SP alone. Returns the final state.
fn pass(
    c: &mut Checks,
    what: fmt::Arguments,
    words: &[u32],
    init: &SlotState,
    changed: u32,
) -> Option<SlotState> {
    let mut s = *init;
    if let Some(e) = slot::run(words, &mut s) {
        c.fail(format_args!(
            "{what}: unexpected exception: {}",
            describe(&e)
        ));
        return None;
    }
    let mut ok = true;
    for k in 0..31 {
        if changed & (1 << k) == 0 {
            ok &= c.check_eq(
                format_args!("{what}: x{k} must be unchanged"),
                s.regs[k],
                init.regs[k],
            );
        }
    }
    ok &= c.check_eq(format_args!("{what}: SP must be unchanged"), s.sp, init.sp);
    ok.then_some(s)
}

/// What an exception the words must raise looks like.
struct Want {
    /// ESR_EL1, exactly.
    esr: u64,
    /// ELR_EL1: `None` for the slot word `idx`.
    elr: Option<u64>,
    /// FAR_EL1, if it must have a value.
    far: Option<u64>,
    /// Index of the word that raises it.
    idx: u64,
    /// SPSR_EL1 bits the words set on the way (BTYPE after a BLR).
    spsr_extra: u64,
}

/// Runs `words` from `init`, expecting the exception `want` at EL1h (offset 0x200)
/// with SPSR_EL1 = the PSTATE the words ran with.
fn raise(c: &mut Checks, what: fmt::Arguments, words: &[u32], init: &SlotState, want: Want) {
    let mut s = *init;
    let Some(e) = slot::run(words, &mut s) else {
        c.fail(format_args!(
            "{what}: no exception (expected ESR_EL1 {:#x})",
            want.esr
        ));
        return;
    };
    let elr = want.elr.unwrap_or(slot::slot_address() + 4 * want.idx);
    let ok = e.vector == VEC_SYNC_EL1H
        && e.esr == want.esr
        && e.elr == elr
        && e.spsr == init.pstate | want.spsr_extra
        && want.far.is_none_or(|f| f == e.far);
    c.check(
        ok,
        format_args!(
            "{what}: got {}; expected vector 0x200 ESR_EL1 {:#x} ELR_EL1 {elr:#x} SPSR_EL1 {:#x}{}",
            describe(&e),
            want.esr,
            init.pstate | want.spsr_extra,
            FarNote(want.far)
        ),
    );
}

struct FarNote(Option<u64>);
impl fmt::Display for FarNote {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.0 {
            Some(v) => write!(f, " FAR_EL1 {v:#x}"),
            None => Ok(()),
        }
    }
}

/// An UNDEFINED exception at word `idx`.
fn undef(c: &mut Checks, what: fmt::Arguments, words: &[u32], idx: u64) {
    let init = SlotState {
        pstate: PSTATE_NC,
        ..fresh()
    };
    raise(
        c,
        what,
        words,
        &init,
        Want {
            esr: ESR_UNDEF,
            elr: None,
            far: None,
            idx,
            spsr_extra: 0,
        },
    );
}

/// Exits the host must have seen, by class (reported with TEST_CALL 0x71/0x72).
#[derive(Default)]
struct Exits {
    wfi: u64,
    wfe: u64,
    /// DataAbort exits (ISV = 0 accesses to nothing).
    data_abort: u64,
    /// MMIO exits (ISV = 1) to addresses no device serves.
    mmio_unbacked: u64,
    instruction_abort: u64,
    /// Hypercall exits for PRNG function IDs (NULL is answered before the scenario
    /// sees it, so it does not count).
    hypercall: u64,
    /// PSCI requests the crate hands to the host.
    psci: u64,
    /// SGIs sent (SendSgi exits).
    sgi: u64,
}

/// `S3_0_C0_C<crm>_<op2>`: index in the ID space (CRm 1..7, op2 0..7).
const fn id_index(crm: u32, op2: u32) -> usize {
    ((crm - 1) * 8 + op2) as usize
}

const fn field(v: u64, lsb: u32) -> u64 {
    (v >> lsb) & 0xf
}

fn id_registers(c: &mut Checks) -> [u64; 56] {
    let mut ids = [0u64; 56];
    for crm in 1..=7 {
        for op2 in 0..8 {
            let words = [
                enc::mrs(1, 3, 0, 0, crm, op2),
                enc::mrs(2, 3, 0, 0, crm, op2),
            ];
            let name = format_args!("ID register S3_0_C0_C{crm}_{op2}");
            if let Some(s) = pass(c, name, &words, &fresh(), x(1) | x(2)) {
                c.check_eq(
                    format_args!("S3_0_C0_C{crm}_{op2} read twice"),
                    s.regs[2],
                    s.regs[1],
                );
                ids[id_index(crm, op2)] = s.regs[1];
            }
        }
    }
    let pfr0 = ids[id_index(4, 0)];
    let pfr1 = ids[id_index(4, 1)];
    let dfr0 = ids[id_index(5, 0)];
    let mmfr1 = ids[id_index(7, 1)];
    println!(
        "guest classes: ID_AA64PFR0 {pfr0:#x} PFR1 {pfr1:#x} DFR0 {dfr0:#x} MMFR1 {mmfr1:#x} \
         ISAR1 {:#x}",
        ids[id_index(6, 1)]
    );
    let hidden = [
        ("ID_AA64PFR0_EL1.SVE", pfr0, 32),
        ("ID_AA64PFR0_EL1.EL2", pfr0, 8),
        ("ID_AA64PFR0_EL1.MPAM", pfr0, 40),
        ("ID_AA64PFR0_EL1.AMU", pfr0, 44),
        ("ID_AA64PFR1_EL1.MTE", pfr1, 8),
        ("ID_AA64PFR1_EL1.SME", pfr1, 24),
        ("ID_AA64DFR0_EL1.PMUVer", dfr0, 8),
        ("ID_AA64DFR0_EL1.PMSVer", dfr0, 32),
        ("ID_AA64MMFR1_EL1.VH", mmfr1, 8),
        // The AArch32 views of the same features.
        ("ID_PFR0_EL1.AMU", ids[id_index(1, 0)], 20),
        ("ID_PFR0_EL1.RAS", ids[id_index(1, 0)], 28),
        ("ID_PFR1_EL1.Virtualization", ids[id_index(1, 1)], 12),
        ("ID_PFR1_EL1.Virt_frac", ids[id_index(1, 1)], 24),
        ("ID_DFR0_EL1.CopTrc", ids[id_index(1, 2)], 12),
        ("ID_DFR0_EL1.MMapTrc", ids[id_index(1, 2)], 16),
        ("ID_DFR0_EL1.PerfMon", ids[id_index(1, 2)], 24),
        ("ID_DFR0_EL1.TraceFilt", ids[id_index(1, 2)], 28),
        ("ID_PFR2_EL1.RAS_frac", ids[id_index(3, 4)], 8),
    ];
    for (name, v, lsb) in hidden {
        c.check_eq(format_args!("{name} (hidden)"), field(v, lsb), 0);
    }
    c.check_eq(
        format_args!("ID_AA64ZFR0_EL1 (SVE hidden)"),
        ids[id_index(4, 4)],
        0,
    );
    c.check_eq(
        format_args!("ID_AA64SMFR0_EL1 (SME hidden)"),
        ids[id_index(4, 5)],
        0,
    );
    c.check_eq(
        format_args!("ID_DFR1_EL1 (PMU hidden)"),
        ids[id_index(3, 5)],
        0,
    );
    // PARange follows the VM's guest-physical space (39 bits in the test VMs): the
    // largest encoding not above it is 1 (36 bits).
    c.check_eq(
        format_args!("ID_AA64MMFR0_EL1.PARange (39-bit IPA space)"),
        field(ids[id_index(7, 0)], 0),
        1,
    );
    // Not all zero: the view is the host's, sanitized.
    c.check(
        field(pfr0, 4) != 0 && field(pfr0, 0) != 0,
        format_args!("ID_AA64PFR0_EL1.EL1/EL0 must show AArch64 ({pfr0:#x})"),
    );
    ids
}

fn untrapped(c: &mut Checks) {
    let words = [enc::mrs(1, 3, 0, 0, 0, 0), enc::mrs(2, 3, 0, 0, 0, 5)];
    if let Some(s) = pass(
        c,
        format_args!("MIDR_EL1, MPIDR_EL1"),
        &words,
        &fresh(),
        x(1) | x(2),
    ) {
        c.check(
            s.regs[1] != 0 && s.regs[1] >> 32 == 0,
            format_args!("MIDR_EL1 {:#x}", s.regs[1]),
        );
        c.check_eq(format_args!("MPIDR_EL1"), s.regs[2], 0x8000_0000);
    }
}

fn undefined(c: &mut Checks, ids: &[u64; 56]) {
    // MSR to ID registers: read-only, UNDEFINED; the value does not change.
    for (crm, op2) in [(4, 0), (6, 0), (7, 0), (5, 0)] {
        undef(
            c,
            format_args!("MSR S3_0_C0_C{crm}_{op2} (ID register)"),
            &[enc::msr(1, 3, 0, 0, crm, op2)],
            0,
        );
        if let Some(s) = pass(
            c,
            format_args!("ID register after MSR"),
            &[enc::mrs(1, 3, 0, 0, crm, op2)],
            &fresh(),
            x(1),
        ) {
            c.check_eq(
                format_args!("S3_0_C0_C{crm}_{op2} after an MSR to it"),
                s.regs[1],
                ids[id_index(crm, op2)],
            );
        }
    }
    // IMPLEMENTATION DEFINED registers (HCR_EL2.TIDCP). QEMU 7.2 does not trap on
    // TIDCP and answers S3_1_C15_C0_0 (the Cortex-A57 L2ACTLR) itself, as zero: then
    // the read is checked for that and the write for having no effect, with a note.
    let impdef = [enc::mrs(0, 3, 1, 15, 0, 0)];
    let mut s = fresh();
    match slot::run(&impdef, &mut s) {
        Some(_) => {
            undef(c, format_args!("MRS S3_1_C15_C0_0 (IMPDEF)"), &impdef, 0);
            undef(
                c,
                format_args!("MSR S3_1_C15_C0_0 (IMPDEF)"),
                &[enc::msr(0, 3, 1, 15, 0, 0)],
                0,
            );
        }
        None => {
            println!(
                "guest classes: note: S3_1_C15_C0_0 did not trap (QEMU < 8.0 ignores \
                 HCR_EL2.TIDCP); checked as RAZ/WI instead"
            );
            c.check_eq(format_args!("S3_1_C15_C0_0 (untrapped)"), s.regs[0], 0);
            let words = [enc::msr(1, 3, 1, 15, 0, 0), enc::mrs(2, 3, 1, 15, 0, 0)];
            if let Some(s) = pass(
                c,
                format_args!("MSR/MRS S3_1_C15_C0_0 (untrapped)"),
                &words,
                &with(&[(1, u64::MAX)]),
                x(2),
            ) {
                c.check_eq(format_args!("S3_1_C15_C0_0 after a write"), s.regs[2], 0);
            }
        }
    }
    // An IMPDEF encoding QEMU does not implement at all: UNDEFINED either way.
    undef(
        c,
        format_args!("MRS S3_0_C11_C0_0 (IMPDEF)"),
        &[enc::mrs(0, 3, 0, 11, 0, 0)],
        0,
    );
    // SVE and SME: enabled at EL1 (CPACR_EL1.ZEN, FPEN, SMEN), trapped at EL2
    // (CPTR_EL2.TZ/TSM), so the UNDEF must come from the hypervisor.
    let cpacr = pass(
        c,
        format_args!("MRS CPACR_EL1"),
        &[enc::mrs(1, 3, 0, 1, 0, 2)],
        &fresh(),
        x(1),
    )
    .map_or(0, |s| s.regs[1]);
    let enable = cpacr | (3 << 16) | (3 << 20) | (3 << 24);
    let set_cpacr = enc::msr(1, 3, 0, 1, 0, 2);
    pass(
        c,
        format_args!("MSR CPACR_EL1 (ZEN, FPEN, SMEN)"),
        &[set_cpacr, enc::ISB],
        &with(&[(1, enable)]),
        0,
    );
    undef(c, format_args!("RDVL x0, #1 (SVE)"), &[enc::rdvl1(0)], 0);
    undef(c, format_args!("SMSTART (SME)"), &[enc::SMSTART], 0);
    pass(
        c,
        format_args!("MSR CPACR_EL1 (restore)"),
        &[set_cpacr, enc::ISB],
        &with(&[(1, cpacr)]),
        0,
    );
    // PMU registers (MDCR_EL2.TPM/TPMCR).
    undef(
        c,
        format_args!("MRS PMCR_EL0"),
        &[enc::mrs(0, 3, 3, 9, 12, 0)],
        0,
    );
    undef(
        c,
        format_args!("MSR PMCR_EL0"),
        &[enc::msr(0, 3, 3, 9, 12, 0)],
        0,
    );
    undef(
        c,
        format_args!("MRS PMCCNTR_EL0"),
        &[enc::mrs(0, 3, 3, 9, 13, 0)],
        0,
    );
    // LORegions (HCR_EL2.TLOR).
    undef(
        c,
        format_args!("MRS LORC_EL1"),
        &[enc::mrs(0, 3, 0, 10, 4, 3)],
        0,
    );
}

fn emulated(c: &mut Checks, exits: &mut Exits) {
    // MDSCR_EL1: kept per vCPU, also across a vCPU switch (the trapped WFI).
    let mdscr_w = enc::msr(1, 2, 0, 0, 2, 2);
    let mdscr_r = enc::mrs(2, 2, 0, 0, 2, 2);
    let v = 0xB000u64;
    if let Some(s) = pass(
        c,
        format_args!("MSR/MRS MDSCR_EL1"),
        &[mdscr_w, mdscr_r],
        &with(&[(1, v)]),
        x(2),
    ) {
        c.check_eq(format_args!("MDSCR_EL1 read back"), s.regs[2], v);
    }
    exits.wfi += 1;
    if let Some(s) = pass(
        c,
        format_args!("WFI, MRS MDSCR_EL1"),
        &[enc::WFI, mdscr_r],
        &fresh(),
        x(2),
    ) {
        c.check_eq(format_args!("MDSCR_EL1 after a WFI exit"), s.regs[2], v);
    }
    pass(
        c,
        format_args!("MSR MDSCR_EL1 (0)"),
        &[mdscr_w],
        &with(&[(1, 0)]),
        0,
    );
    // OSLSR_EL1: OS lock implemented, unlocked.
    if let Some(s) = pass(
        c,
        format_args!("MRS OSLSR_EL1"),
        &[enc::mrs(2, 2, 0, 1, 1, 4)],
        &fresh(),
        x(2),
    ) {
        c.check_eq(format_args!("OSLSR_EL1"), s.regs[2], 0x8);
    }
    // The OS lock follows OSLAR_EL1, per vCPU (also across a vCPU switch).
    let oslar = enc::msr(1, 2, 0, 1, 0, 4);
    let oslsr = enc::mrs(2, 2, 0, 1, 1, 4);
    if let Some(s) = pass(
        c,
        format_args!("MSR OSLAR_EL1 (1), MRS OSLSR_EL1"),
        &[oslar, oslsr],
        &with(&[(1, 1)]),
        x(2),
    ) {
        c.check_eq(format_args!("OSLSR_EL1 after locking"), s.regs[2], 0xa);
    }
    exits.wfi += 1;
    if let Some(s) = pass(
        c,
        format_args!("WFI, MRS OSLSR_EL1"),
        &[enc::WFI, oslsr],
        &fresh(),
        x(2),
    ) {
        c.check_eq(format_args!("OSLSR_EL1 after a WFI exit"), s.regs[2], 0xa);
    }
    if let Some(s) = pass(
        c,
        format_args!("MSR OSLAR_EL1 (0), MRS OSLSR_EL1"),
        &[oslar, oslsr],
        &with(&[(1, 0)]),
        x(2),
    ) {
        c.check_eq(format_args!("OSLSR_EL1 after unlocking"), s.regs[2], 0x8);
    }
    // Breakpoint/watchpoint registers: the vCPU's own (switched lazily), so they read
    // back what was written (valid values: an aligned address, a disabled breakpoint
    // with PMC = 0b11, BAS = 0xf).
    for (name, op2, v) in [
        ("DBGBVR0_EL1", 4, 0x4008_0000),
        ("DBGBCR0_EL1", 5, 0x1e6),
        ("DBGWVR0_EL1", 6, 0x4008_0000),
    ] {
        let words = [enc::msr(1, 2, 0, 0, 0, op2), enc::mrs(2, 2, 0, 0, 0, op2)];
        if let Some(s) = pass(
            c,
            format_args!("MSR/MRS {name}"),
            &words,
            &with(&[(1, v)]),
            x(2),
        ) {
            c.check_eq(format_args!("{name} after a write"), s.regs[2], v);
        }
    }
    pass(
        c,
        format_args!("MSR OSLAR_EL1"),
        &[enc::msr(1, 2, 0, 1, 0, 4)],
        &with(&[(1, 0)]),
        0,
    );
    // ACTLR_EL1: the vCPU's value (0); writes ignored.
    let words = [enc::msr(1, 3, 0, 1, 0, 1), enc::mrs(2, 3, 0, 1, 0, 1)];
    if let Some(s) = pass(
        c,
        format_args!("MSR/MRS ACTLR_EL1"),
        &words,
        &with(&[(1, 0xFFFF)]),
        x(2),
    ) {
        c.check_eq(format_args!("ACTLR_EL1 after a write"), s.regs[2], 0);
    }
    // Set/way cache maintenance (HCR_EL2.TSW): completes.
    let words = [
        enc::sys(1, 0, 7, 6, 2),
        enc::sys(1, 0, 7, 10, 2),
        enc::sys(1, 0, 7, 14, 2),
    ];
    pass(
        c,
        format_args!("DC ISW, DC CSW, DC CISW"),
        &words,
        &with(&[(1, 0)]),
        0,
    );
}

fn pointer_auth(c: &mut Checks, ids: &[u64; 56], exits: &mut Exits) {
    let isar1 = ids[id_index(6, 1)];
    let isar2 = ids[id_index(6, 2)];
    let present = field(isar1, 4) | field(isar1, 8) | field(isar2, 12) != 0;
    let ptr = 0x0000_0000_4008_1230u64;
    let modifier = 0x1234_5678_9abc_def0u64;
    // pacia x3, x4 / autia x3, x4
    let pac = enc::pacia(3, 4);
    let aut = enc::autia(3, 4);
    if !present {
        println!("guest classes: no pointer authentication in the ID registers");
        undef(c, format_args!("PACIA (no FEAT_PAuth)"), &[pac], 0);
        return;
    }
    let sctlr = pass(
        c,
        format_args!("MRS SCTLR_EL1"),
        &[enc::mrs(1, 3, 0, 1, 0, 0)],
        &fresh(),
        x(1),
    )
    .map_or(0, |s| s.regs[1]);
    let set_sctlr = enc::msr(1, 3, 0, 1, 0, 0);
    // SCTLR_EL1.EnIA, then APIAKey_EL1 = (x1, x2).
    pass(
        c,
        format_args!("MSR SCTLR_EL1 (EnIA)"),
        &[set_sctlr, enc::ISB],
        &with(&[(1, sctlr | 1 << 31)]),
        0,
    );
    let set_key = |c: &mut Checks, lo: u64, hi: u64| {
        pass(
            c,
            format_args!("MSR APIAKeyLo/Hi_EL1"),
            &[
                enc::msr(1, 3, 0, 2, 1, 0),
                enc::msr(2, 3, 0, 2, 1, 1),
                enc::ISB,
            ],
            &with(&[(1, lo), (2, hi)]),
            0,
        );
    };
    let sign = |c: &mut Checks, what: fmt::Arguments, words: &[u32], v: u64| {
        pass(c, what, words, &with(&[(3, v), (4, modifier)]), x(3)).map_or(0, |s| s.regs[3])
    };
    set_key(c, 0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);
    let signed = sign(c, format_args!("PACIA"), &[pac], ptr);
    c.check(
        signed != ptr && signed & 0x0000_ffff_ffff_ffff == ptr,
        format_args!("PACIA {ptr:#x} gave {signed:#x}: expected a PAC in the top bits"),
    );
    let back = sign(c, format_args!("AUTIA"), &[aut], signed);
    c.check_eq(format_args!("AUTIA(PACIA(p)) = p"), back, ptr);
    // The key survives a vCPU switch (trapped WFI: unbind and bind).
    exits.wfi += 1;
    let again = sign(c, format_args!("WFI, PACIA"), &[enc::WFI, pac], ptr);
    c.check_eq(
        format_args!("PACIA after a WFI exit (same key)"),
        again,
        signed,
    );
    // Another key signs differently, and does not authenticate the old PAC.
    set_key(c, 0x1111_2222_3333_4444, 0x5555_6666_7777_8888);
    let other = sign(c, format_args!("PACIA (new key)"), &[pac], ptr);
    c.check(
        other != signed,
        format_args!("PACIA with another key gave the same {other:#x}"),
    );
    let mut s = with(&[(3, signed), (4, modifier)]);
    match slot::run(&[aut], &mut s) {
        // FEAT_FPAC: an authentication failure faults (EC 0x1C).
        Some(e) => c.check_eq(format_args!("AUTIA failure (FPAC) EC"), e.ec(), 0x1c),
        None => c.check(
            s.regs[3] != ptr,
            format_args!("AUTIA with the wrong key authenticated {signed:#x}"),
        ),
    };
    set_key(c, 0, 0);
    pass(
        c,
        format_args!("MSR SCTLR_EL1 (restore)"),
        &[set_sctlr, enc::ISB],
        &with(&[(1, sctlr)]),
        0,
    );
}

// SMCCC / PSCI function IDs and results (docs/test-protocol.md).
const NOT_SUPPORTED: u64 = -1i64 as u64;
const INVALID_PARAMETERS: u64 = -2i64 as u64;
const ALREADY_ON: u64 = -4i64 as u64;
const INVALID_ADDRESS: u64 = -9i64 as u64;
const AFFINITY_MASK: u64 = 0xff_00ff_ffff;
/// PSCI functions PSCI_FEATURES reports as implemented.
const PSCI_IMPLEMENTED: [u32; 13] = [
    0x8400_0000,
    0x8400_0001,
    0xC400_0001,
    0x8400_0002,
    0x8400_0003,
    0xC400_0003,
    0x8400_0004,
    0xC400_0004,
    0x8400_0006,
    0x8400_0008,
    0x8400_0009,
    0x8400_000A,
    0x8000_0000,
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Conduit {
    Hvc,
    Smc,
}

/// Where a call is answered.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    /// By the crate, inside `run()`.
    Crate,
    /// By the host, as a PSCI request.
    Psci,
    /// By the host, as a hypercall exit.
    Hypercall,
    /// By the host before the scenario sees it (NULL).
    HostFast,
}

/// What a call must return, and who answers; `None` for calls this test skips
/// (CPU_OFF, SYSTEM_OFF, SYSTEM_RESET, and the protocol's TEST_CALL/EXIT/PUTC).
fn expect(conduit: Conduit, imm: u32, a: &[u64; 4]) -> Option<(u64, Route)> {
    let x0 = a[0];
    let fid = x0 as u32;
    let owner = (fid >> 24) & 0x3f;
    let fast = fid & (1 << 31) != 0;
    // SMC32/HVC32 calls use only the low 32 bits of their arguments.
    let arg = |v: u64| {
        if fid & (1 << 30) == 0 {
            v & 0xffff_ffff
        } else {
            v
        }
    };
    let host = |x0: u64| -> Option<(u64, Route)> {
        match x0 {
            hvc::NULL => Some((0, Route::HostFast)),
            hvc::TEST_CALL | hvc::EXIT | hvc::PUTC => None,
            // YIELD: this single vCPU runs again at once.
            0xC600_0004 => Some((0, Route::Hypercall)),
            _ => Some((NOT_SUPPORTED, Route::Hypercall)),
        }
    };
    if imm != 0 {
        return match conduit {
            // Not an SMCCC call: the host's; it knows none with a non-zero immediate.
            Conduit::Hvc => Some((NOT_SUPPORTED, Route::Hypercall)),
            Conduit::Smc => Some((NOT_SUPPORTED, Route::Crate)),
        };
    }
    let crate_answer = |v: u64| Some((v, Route::Crate));
    if owner == 0 && fast {
        // The Spectre workarounds: as this CPU needs them (guests::workaround).
        let wa = guests::workaround::Facts::read().expected();
        let call = guests::workaround::Facts::call_result;
        return match fid {
            0x8000_0000 => crate_answer(0x10001),
            // ARCH_FEATURES of itself and of SMCCC_VERSION: implemented.
            0x8000_0001 => crate_answer(match a[1] as u32 {
                0x8000_0000 | 0x8000_0001 => 0,
                0x8000_8000 => wa[0],
                0x8000_7fff => wa[1],
                0x8000_3fff => wa[2],
                _ => NOT_SUPPORTED,
            }),
            0x8000_8000 => crate_answer(call(wa[0])),
            0x8000_7fff => crate_answer(call(wa[1])),
            0x8000_3fff => crate_answer(call(wa[2])),
            _ => crate_answer(NOT_SUPPORTED),
        };
    }
    if owner == 4 && fast && fid & 0x00ff_0000 == 0 && fid & 0xffff <= 0x1f {
        return match fid {
            0x8400_0000 => crate_answer(0x10001),
            0x8400_0001 | 0xC400_0001 => {
                // Original format: only a StateID [15:0] with a level-0 standby;
                // powerdown [16], PowerLevel [25:24] and reserved bits are refused.
                let ps = arg(a[1]) as u32;
                if ps & 0xffff_0000 != 0 {
                    crate_answer(INVALID_PARAMETERS)
                } else {
                    Some((0, Route::Psci))
                }
            }
            0x8400_0003 | 0xC400_0003 => {
                let (target, entry) = (arg(a[1]), arg(a[2]));
                if target & !AFFINITY_MASK != 0 {
                    crate_answer(INVALID_PARAMETERS)
                } else if entry & 3 != 0 {
                    crate_answer(INVALID_ADDRESS)
                } else if target != 0 {
                    // No such vCPU (this VM has one, MPIDR affinity 0).
                    Some((INVALID_PARAMETERS, Route::Psci))
                } else if (RAM_START..=RAM_END - 4).contains(&entry) {
                    Some((ALREADY_ON, Route::Psci))
                } else {
                    Some((INVALID_ADDRESS, Route::Psci))
                }
            }
            0x8400_0004 | 0xC400_0004 => {
                let (target, level) = (arg(a[1]), arg(a[2]));
                if level != 0 || target & !AFFINITY_MASK != 0 {
                    crate_answer(INVALID_PARAMETERS)
                } else if target == 0 {
                    Some((0, Route::Psci))
                } else {
                    Some((INVALID_PARAMETERS, Route::Psci))
                }
            }
            0x8400_0006 => crate_answer(2),
            0x8400_000A => crate_answer(if PSCI_IMPLEMENTED.contains(&(a[1] as u32)) {
                0
            } else {
                NOT_SUPPORTED
            }),
            // Power off, reset: would end the run.
            0x8400_0002 | 0x8400_0008 | 0x8400_0009 => None,
            _ => crate_answer(NOT_SUPPORTED),
        };
    }
    match conduit {
        Conduit::Hvc => host(x0),
        Conduit::Smc => crate_answer(NOT_SUPPORTED),
    }
}

/// A PRNG call: function ID in x0, arguments in x1..x3.
fn gen_call(r: &mut Rng) -> [u64; 4] {
    let bit30 = |r: &mut Rng| if r.below(2) == 0 { 0 } else { 1 << 30 };
    let fid: u32 = match r.below(16) {
        0..=2 => 0x8400_0000 | bit30(r) | r.below(0x22) as u32,
        // The calls the host completes: CPU_SUSPEND, CPU_ON, AFFINITY_INFO.
        3..=5 => 0x8400_0000 | bit30(r) | r.pick(&[1, 3, 4]),
        6 | 7 => {
            let any = r.next_u32() & 0xffff;
            0x8000_0000 | bit30(r) | r.pick(&[0, 1, 2, 0x3fff, 0x7fff, 0x8000, any])
        }
        8 => 0xC600_0000 | r.below(8) as u32,
        9 => 0x8400_0000 | (r.next_u32() & 0x7fff_ffff & !0x3f00_0000),
        _ => r.next_u32(),
    };
    // Some calls to the crate's owners carry junk in x0[63:32] (W0 is the ID).
    let upper = if (fid >> 24) & 0x3b == 0 && r.below(4) == 0 {
        r.next_u64() << 32
    } else {
        0
    };
    let junk_hi = |r: &mut Rng| {
        if r.below(3) == 0 {
            r.next_u64() << 32
        } else {
            0
        }
    };
    let x1 = match r.below(6) {
        0 => u64::from(r.pick(&PSCI_IMPLEMENTED)) | junk_hi(r),
        1 => r.pick(&[0x8000_0000, 0x8000_0001]),
        2 => (r.below(2) << 16) | (r.below(4) << 24) | (r.next_u64() & 0xffff) | junk_hi(r),
        3 => r.pick(&[0, 1, 7, 0x100, 1 << 32]) | junk_hi(r),
        4 => r.pick(&[
            0x8000_8000,
            0x8000_7fff,
            0x8000_3fff,
            0x8000_0002,
            0x8400_0005,
        ]),
        _ => r.next_u64(),
    };
    let x2 = match r.below(4) {
        0 | 1 => 0,
        2 => r.pick(&[0x4008_0000, 0x4008_0002, 0x1000, 0x5000_0000, 1]) | junk_hi(r),
        _ => r.next_u64(),
    };
    // Half of CPU_SUSPEND, CPU_ON and AFFINITY_INFO get arguments that pass the
    // crate's checks (so the host sees the request).
    let (x1, x2) = if fid & 0xbfff_ffff == 0x8400_0001 && r.below(2) == 0 {
        (r.pick(&[0, 0x1234]), x2)
    } else if matches!(fid & 0xbfff_ffff, 0x8400_0003 | 0x8400_0004) && r.below(2) == 0 {
        (r.pick(&[0, 1, 0x100]), r.pick(&[0, 0x4008_0000, 0x1000]))
    } else {
        (x1, x2)
    };
    [u64::from(fid) | upper, x1, x2, r.next_u64()]
}

fn calls(c: &mut Checks, exits: &mut Exits) {
    const IDS: u32 = 200;
    let mut r = Rng::new(0x00C1_A55E_5000_0001);
    let (mut done, mut skipped, mut by_crate) = (0u32, 0u32, 0u32);
    while done < IDS {
        let a = gen_call(&mut r);
        let (Some(h), Some(s)) = (expect(Conduit::Hvc, 0, &a), expect(Conduit::Smc, 0, &a)) else {
            skipped += 1;
            continue;
        };
        done += 1;
        for (conduit, (want, route)) in [(Conduit::Hvc, h), (Conduit::Smc, s)] {
            let (word, name) = match conduit {
                Conduit::Hvc => (enc::hvc(0), "HVC"),
                Conduit::Smc => (enc::smc(0), "SMC"),
            };
            call(c, exits, name, word, &a, want, route);
            by_crate += u32::from(route == Route::Crate);
        }
    }
    // A few calls that are not SMCCC calls (non-zero immediate).
    for imm in [1, 0x1234, 0xffff] {
        let a = [0x8400_0000, 0, 0, 0];
        for (conduit, word, name) in [
            (Conduit::Hvc, enc::hvc(imm), "HVC #imm"),
            (Conduit::Smc, enc::smc(imm), "SMC #imm"),
        ] {
            if let Some((want, route)) = expect(conduit, imm, &a) {
                call(c, exits, name, word, &a, want, route);
            }
        }
    }
    println!(
        "guest classes: {IDS} PRNG function IDs over HVC and SMC ({by_crate} calls answered \
         by the crate, {} host hypercalls, {} PSCI requests; {skipped} IDs skipped)",
        exits.hypercall, exits.psci
    );
}

fn call(
    c: &mut Checks,
    exits: &mut Exits,
    name: &str,
    word: u32,
    a: &[u64; 4],
    want: u64,
    route: Route,
) {
    let init = with(&[(0, a[0]), (1, a[1]), (2, a[2]), (3, a[3])]);
    // x0..x3 are results; SMCCC 1.1 preserves x4..x17, and everything else stays.
    if let Some(s) = pass(
        c,
        format_args!(
            "{name} x0={:#x} x1={:#x} x2={:#x} x3={:#x}",
            a[0], a[1], a[2], a[3]
        ),
        &[word],
        &init,
        x(0) | x(1) | x(2) | x(3),
    ) {
        c.check_eq(
            format_args!(
                "{name} x0={:#x} x1={:#x} x2={:#x} x3={:#x}: result",
                a[0], a[1], a[2], a[3]
            ),
            s.regs[0],
            want,
        );
    }
    match route {
        Route::Psci => exits.psci += 1,
        Route::Hypercall => exits.hypercall += 1,
        Route::Crate | Route::HostFast => {}
    }
}

fn wait(c: &mut Checks, exits: &mut Exits) {
    for i in 0..3 {
        pass(c, format_args!("WFI #{i}"), &[enc::WFI], &fresh(), 0);
        exits.wfi += 1;
        pass(c, format_args!("WFE #{i}"), &[enc::WFE], &fresh(), 0);
        exits.wfe += 1;
    }
}

fn aborts(c: &mut Checks, exits: &mut Exits, ids: &[u64; 56]) {
    let init = SlotState {
        pstate: PSTATE_NC,
        ..with(&[(2, UNMAPPED_DATA)])
    };
    let data = |esr| Want {
        esr,
        elr: None,
        far: Some(UNMAPPED_DATA),
        idx: 0,
        spsr_extra: 0,
    };
    // ISV = 1: MMIO exits for an address no device serves.
    raise(
        c,
        format_args!("LDR from unmapped IPA {UNMAPPED_DATA:#x} (ISV = 1)"),
        &[enc::ldr(0, 2)],
        &init,
        data(ESR_DABT),
    );
    raise(
        c,
        format_args!("STR to unmapped IPA {UNMAPPED_DATA:#x} (ISV = 1)"),
        &[enc::str(0, 2)],
        &init,
        data(ESR_DABT | WNR),
    );
    exits.mmio_unbacked += 2;
    // ISV = 0: DataAbort exits.
    raise(
        c,
        format_args!("LDP from unmapped IPA {UNMAPPED_DATA:#x} (ISV = 0)"),
        &[enc::ldp(0, 1, 2)],
        &init,
        data(ESR_DABT),
    );
    raise(
        c,
        format_args!("STP to unmapped IPA {UNMAPPED_DATA:#x} (ISV = 0)"),
        &[enc::stp(0, 1, 2)],
        &init,
        data(ESR_DABT | WNR),
    );
    exits.data_abort += 2;
    // Instruction fetch from an unmapped IPA.
    raise(
        c,
        format_args!("BLR to unmapped IPA {UNMAPPED_CODE:#x}"),
        &[enc::blr(2)],
        &SlotState {
            pstate: PSTATE_NC,
            ..with(&[(2, UNMAPPED_CODE)])
        },
        Want {
            esr: ESR_IABT,
            elr: Some(UNMAPPED_CODE),
            far: Some(UNMAPPED_CODE),
            idx: 0,
            // With FEAT_BTI (ID_AA64PFR1_EL1.BT) a BLR sets PSTATE.BTYPE = 0b10; the
            // abort on the target's fetch is taken with it.
            spsr_extra: if field(ids[id_index(4, 1)], 0) != 0 {
                0b10 << 10
            } else {
                0
            },
        },
    );
    exits.instruction_abort += 1;
}

fn interrupts(c: &mut Checks, exits: &mut Exits) {
    if gic::interface() == gic::Interface::V2 {
        return interrupts_gicv2(c);
    }
    // GICv3 CPU interface (the virtual one: HCR_EL2.IMO routes the guest's ICC_*
    // accesses to ICV_*): priority mask open, group 1 on. Interrupts stay masked in
    // PSTATE; pending ones are acknowledged through ICC_IAR1_EL1.
    let pmr = enc::msr(1, 3, 0, 4, 6, 0);
    let igrpen1 = enc::msr(2, 3, 0, 12, 12, 7);
    let sgi1r = enc::msr(3, 3, 0, 12, 11, 5);
    let iar1 = enc::mrs(4, 3, 0, 12, 12, 0);
    let eoir1 = enc::msr(4, 3, 0, 12, 12, 1);
    pass(
        c,
        format_args!("ICC_PMR_EL1, ICC_IGRPEN1_EL1"),
        &[pmr, igrpen1, enc::ISB],
        &with(&[(1, 0xff), (2, 1)]),
        0,
    );
    // (ICC_SGI1R_EL1 value, SGI delivered to this vCPU, what)
    let sgis = [
        (5 << 24 | 1, true, "SGI 5 to Aff 0.0.0.0 (this vCPU)"),
        (9 << 24 | 1 << 40, false, "SGI 9 to all but self"),
        (
            11 << 24 | 1 << 16 | 1,
            false,
            "SGI 11 to Aff 0.0.1.0 (no such vCPU)",
        ),
        (13 << 24 | 2, false, "SGI 13 to Aff 0.0.0.1 (no such vCPU)"),
    ];
    for (value, delivered, what) in sgis {
        exits.sgi += 1;
        let intid = (value >> 24) & 0xf;
        let Some(s) = pass(
            c,
            format_args!("MSR ICC_SGI1R_EL1 ({what}), MRS ICC_IAR1_EL1"),
            &[sgi1r, enc::ISB, iar1],
            &with(&[(3, value)]),
            x(4),
        ) else {
            continue;
        };
        let got = s.regs[4] & 0xff_ffff;
        if delivered {
            c.check_eq(format_args!("ICC_IAR1_EL1 after {what}"), got, intid);
            pass(
                c,
                format_args!("ICC_EOIR1_EL1 ({what})"),
                &[eoir1, enc::ISB],
                &with(&[(4, got)]),
                0,
            );
        } else {
            c.check_eq(
                format_args!("ICC_IAR1_EL1 after {what} (spurious)"),
                got,
                1023,
            );
        }
    }
    pass(
        c,
        format_args!("ICC_IGRPEN1_EL1 off"),
        &[igrpen1, enc::ISB],
        &with(&[(2, 0)]),
        0,
    );
}

/// The GIC part on a GICv2 board (ID_AA64PFR0_EL1.GIC = 0): the GICv3 system
/// registers are UNDEFINED (the crate's trap of ICC_* on a core without them, never
/// the host's), and the CPU interface is GICC, the GICV frame the host mapped at stage
/// 2 — accessed without exits: enabled, nothing pending (GICC_IAR reads 1023), the
/// priority mask keeps what the virtual interface implements (5 bits), disabled again.
/// SGIs are distributor writes there (GICD_SGIR, the emulated distributor of the
/// virtual mode, which a test VM has not): no SGI exit is expected.
fn interrupts_gicv2(c: &mut Checks) {
    let pmr = enc::msr(1, 3, 0, 4, 6, 0);
    let sgi1r = enc::msr(3, 3, 0, 12, 11, 5);
    let iar1 = enc::mrs(4, 3, 0, 12, 12, 0);
    undef(c, format_args!("MSR ICC_PMR_EL1 on GICv2"), &[pmr], 0);
    undef(c, format_args!("MSR ICC_SGI1R_EL1 on GICv2"), &[sgi1r], 0);
    undef(c, format_args!("MRS ICC_IAR1_EL1 on GICv2"), &[iar1], 0);
    gic::enable(0xff);
    let st = gic::state();
    c.check_eq(format_args!("GICC_CTLR after enable"), st[0].1, 1);
    // 5 priority bits: bits [2:0] read as zero.
    c.check_eq(format_args!("GICC_PMR after writing 0xff"), st[1].1, 0xf8);
    let raw = gic::ack_raw();
    c.check_eq(
        format_args!("GICC_IAR with nothing pending (spurious)"),
        gic::intid_of(raw),
        1023,
    );
    c.check_eq(format_args!("GICC_RPR when idle"), st[3].1, 0xff);
    gic::disable();
    c.check_eq(
        format_args!("GICC_CTLR after disable"),
        gic::state()[0].1,
        0,
    );
}

fn fp_simd(c: &mut Checks, exits: &mut Exits) {
    // FP/SIMD enabled at EL1; the crate switches its registers lazily (the first use
    // after each bind traps to EL2, EC 0x07). Values written before a vCPU switch
    // (the trapped WFI) must read back after it.
    let cpacr_w = enc::msr(1, 3, 0, 1, 0, 2);
    pass(
        c,
        format_args!("MSR CPACR_EL1 (FPEN)"),
        &[cpacr_w, enc::ISB],
        &with(&[(1, 3 << 20)]),
        0,
    );
    // fmov d0, x1; fmov d31, x2; msr fpcr, x3 / fmov x1, d0; fmov x2, d31; mrs x3, fpcr
    let fmov_to = |d: u32, xn: u32| 0x9e67_0000 | xn << 5 | d;
    let fmov_from = |xd: u32, d: u32| 0x9e66_0000 | d << 5 | xd;
    let (v0, v31, fpcr) = (
        0x0123_4567_89ab_cdefu64,
        0xfedc_ba98_7654_3210u64,
        0x0340_0000,
    );
    pass(
        c,
        format_args!("FMOV to d0/d31, MSR FPCR"),
        &[fmov_to(0, 1), fmov_to(31, 2), enc::msr(3, 3, 3, 4, 4, 0)],
        &with(&[(1, v0), (2, v31), (3, fpcr)]),
        0,
    );
    exits.wfi += 1;
    let words = [
        enc::WFI,
        fmov_from(1, 0),
        fmov_from(2, 31),
        enc::mrs(3, 3, 3, 4, 4, 0),
    ];
    if let Some(s) = pass(
        c,
        format_args!("WFI, FMOV from d0/d31, MRS FPCR"),
        &words,
        &fresh(),
        x(1) | x(2) | x(3),
    ) {
        c.check_eq(format_args!("d0 after a WFI exit"), s.regs[1], v0);
        c.check_eq(format_args!("d31 after a WFI exit"), s.regs[2], v31);
        c.check_eq(format_args!("FPCR after a WFI exit"), s.regs[3], fpcr);
    }
    pass(
        c,
        format_args!("MSR FPCR (0), CPACR_EL1 (0)"),
        &[enc::msr(3, 3, 3, 4, 4, 0), cpacr_w, enc::ISB],
        &with(&[(1, 0), (3, 0)]),
        0,
    );
}

fn main(c: &mut Checks, _entry: Entry) {
    let mut exits = Exits::default();
    let ids = id_registers(c);
    untrapped(c);
    undefined(c, &ids);
    emulated(c, &mut exits);
    pointer_auth(c, &ids, &mut exits);
    calls(c, &mut exits);
    wait(c, &mut exits);
    aborts(c, &mut exits, &ids);
    interrupts(c, &mut exits);
    fp_simd(c, &mut exits);

    let e = &exits;
    println!(
        "guest classes: exits expected: WFI {} WFE {} DataAbort {} unbacked MMIO {} \
         InstructionAbort {} hypercall {} PSCI {} SGI {}",
        e.wfi,
        e.wfe,
        e.data_abort,
        e.mmio_unbacked,
        e.instruction_abort,
        e.hypercall,
        e.psci,
        e.sgi
    );
    let r1 = hvc::test_call([
        0x71,
        e.wfi,
        e.wfe,
        e.data_abort,
        e.mmio_unbacked,
        e.instruction_abort,
    ]);
    c.check_eq(
        format_args!(
            "TEST_CALL(0x71: WFI, WFE, DataAbort, unbacked MMIO, InstructionAbort): host \
             counts differ (bit per field)"
        ),
        r1,
        0,
    );
    let r2 = hvc::test_call([0x72, e.hypercall, e.psci, e.sgi, 0, 0]);
    c.check_eq(
        format_args!(
            "TEST_CALL(0x72: hypercall, PSCI, SGI, system register, other exits): host \
             counts differ (bit per field)"
        ),
        r2,
        0,
    );
}
