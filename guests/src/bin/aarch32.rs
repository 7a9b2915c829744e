//! `aarch32`: AArch32 EL0 (A32 and T32) under the guest's AArch64 EL1. Every trapped
//! coprocessor class, FP/SIMD, aborts the host injects, UNDEF and a virtual SError
//! arrive at the guest's EL1 with the architectural ESR/ELR/SPSR, or return the
//! emulated value, and the guest goes on.
//!
//! Each case runs through `aarch32_probe` (asm/aarch32.S): it ERETs into a snippet of
//! hand-encoded A32/T32 code in User mode with R0..R14 and the PSTATE chosen, and the
//! snippet ends with an SVC. What ends it (the SVC after a completed access, or the
//! exception the access raised) is recorded at the probe's vectors: vector offset,
//! ESR_EL1, ELR_EL1, SPSR_EL1, FAR_EL1 and R0..R14.
#![no_std]
#![no_main]

use core::fmt;
use core::ptr::addr_of;

use guests::a32::{aarch32_probe, Probe, LOWER_A32_SERROR, LOWER_A32_SYNC, T, USR};
use guests::arch::{C, IL, N, V, Z};
use guests::rt::{Checks, Entry};
use guests::{hvc, println, read_sysreg};

guests::guest_main!("aarch32", main);

guests::global_asm_file!("aarch32.S");

extern "C" {
    static a32_dbgdidr: u8;
    static a32_dbgdidr_nzcv: u8;
    static a32_dbgdscr: u8;
    static a32_dcc: u8;
    static a32_dbgdrar: u8;
    static a32_timer: u8;
    static a32_undef_cp14: u8;
    static a32_undef_dtrext: u8;
    static a32_undef_mcr_pc: u8;
    static a32_undef_mrrc_same: u8;
    static a32_undef_pmcr: u8;
    static a32_stc: u8;
    static a32_cond_fail: u8;
    static a32_vfp: u8;
    static a32_ldr: u8;
    static a32_ldm: u8;
    static a32_str: u8;
    static a32_bx: u8;
    static a32_udf: u8;
    static a32_serror: u8;
    static t32_dbgdidr: u8;
    static t32_it_emulated: u8;
    static t32_timer: u8;
    static t32_ldr16: u8;
    static t32_ldm16: u8;
    static t32_it_mmio: u8;
    static t32_udf16: u8;
    static t32_udf32: u8;
    static t32_undef_cp14: u8;
    static t32_undef_in_it: u8;
    static t32_undef_in_it_trapped: u8;
    static t32_vfp: u8;
    static t32_cond_fail: u8;
    static t32_str16: u8;
}

/// ESR_EL1 values.
const ESR_UNDEF: u64 = IL; // EC 0x00, IL = 1 (always, for EC 0x00)
const ESR_SVC_A32: u64 = (0x11 << 26) | IL;
const ESR_SVC_T16: u64 = 0x11 << 26;
const ESR_DABT_READ: u64 = (0x24 << 26) | IL | 0x10;
const ESR_DABT_WRITE: u64 = ESR_DABT_READ | (1 << 6);
const ESR_IABT: u64 = (0x20 << 26) | IL | 0x10;

/// Nothing behind these IPAs (neither RAM nor a device).
const UNMAPPED_DATA: u32 = 0x0c00_0000;
const UNMAPPED_CODE: u32 = 0x0d00_0000;
/// The test device's read-only pattern (docs/test-protocol.md): low word 0xB0A0_9080.
const TESTDEV_PATTERN: u32 = 0x0b00_0100;

/// R0..R14 before a probe: a pattern per register, then the case's own values.
fn regs(set: &[(usize, u32)]) -> [u64; 15] {
    let mut r = [0u64; 15];
    for (n, v) in r.iter_mut().enumerate() {
        *v = 0xa320_0000 | (n as u64 * 0x101);
    }
    for &(n, v) in set {
        r[n] = v as u64;
    }
    r
}

fn run(target: u64, spsr: u64, set: &[(usize, u32)]) -> Probe {
    let mut p = Probe {
        r: regs(set),
        ..Default::default()
    };
    // SAFETY: `aarch32_probe` follows the AAPCS64 (callee-saved registers, SP and
    // VBAR_EL1 are restored on its only way out, the vectors); it writes only `p` and
    // its own .bss words. The EL0 snippets access only the addresses the cases put
    // in their registers: unmapped IPAs (which fault), the test device, or `SCRATCH`.
    unsafe { aarch32_probe(target, spsr, &mut p) };
    p
}

/// Checks the probe took exactly one exception, at `vector`, with these ESR_EL1,
/// ELR_EL1 and SPSR_EL1; returns whether it arrived at all.
fn arrived(
    c: &mut Checks,
    what: fmt::Arguments,
    p: &Probe,
    vector: u64,
    esr: u64,
    elr: u64,
    spsr: u64,
) -> bool {
    let once = c.check(
        p.taken == 1,
        format_args!("{what}: {} exceptions taken, expected 1", p.taken),
    );
    if !once && p.taken == 0 {
        return false;
    }
    c.check_eq(format_args!("{what}: vector offset"), p.vector, vector);
    c.check_eq(format_args!("{what}: ESR_EL1"), p.esr, esr);
    c.check_eq(format_args!("{what}: ELR_EL1"), p.elr, elr);
    c.check_eq(format_args!("{what}: SPSR_EL1"), p.spsr, spsr);
    true
}

/// The snippet ran to its SVC at `at` (an A32 SVC unless `spsr` has T).
fn completes(c: &mut Checks, what: fmt::Arguments, p: &Probe, at: u64, spsr: u64) -> bool {
    let (esr, len) = if spsr & T != 0 {
        (ESR_SVC_T16, 2)
    } else {
        (ESR_SVC_A32, 4)
    };
    let ok = p.taken == 1 && p.esr == esr;
    arrived(
        c,
        format_args!("{what} (runs to its SVC)"),
        p,
        LOWER_A32_SYNC,
        esr,
        at + len,
        spsr,
    );
    ok
}

/// The snippet's first instruction, at `at`, was UNDEFINED (EC 0x00, IL 1) with
/// PSTATE `spsr`.
fn undefined(c: &mut Checks, what: fmt::Arguments, p: &Probe, at: u64, spsr: u64) {
    arrived(
        c,
        format_args!("{what} (UNDEF)"),
        p,
        LOWER_A32_SYNC,
        ESR_UNDEF,
        at,
        spsr,
    );
}

/// R`n` (its low 32 bits: the upper half of X`n` is UNKNOWN after AArch32) is `v`.
fn reg(c: &mut Checks, what: fmt::Arguments, p: &Probe, n: usize, v: u32) {
    c.check_eq(format_args!("{what}: r{n}"), p.r[n] & 0xffff_ffff, v as u64);
}

fn msr_mdscr(v: u64) {
    // SAFETY: MDSCR_EL1 only controls self-hosted debug (emulated by the hypervisor);
    // no breakpoint or watchpoint is programmed, and the guest never single-steps.
    unsafe {
        core::arch::asm!("msr mdscr_el1, {}", "isb", in(reg) v, options(nostack, preserves_flags))
    };
}

/// A word an STC could store to if it completed.
static mut SCRATCH: [u32; 4] = [0; 4];

fn main(c: &mut Checks, _entry: Entry) {
    let pfr0 = read_sysreg!("id_aa64pfr0_el1");
    if !c.check_eq(
        format_args!("ID_AA64PFR0_EL1.EL0 (AArch32 at EL0)"),
        pfr0 & 0xf,
        2,
    ) {
        return;
    }
    // DBGDIDR as the VM's ID view implies it: WRPs, BRPs, CTX_CMPs and Version from
    // ID_AA64DFR0_EL1, bit 15 RES1, nSUHD_imp/SE_imp with EL3.
    let dfr0 = read_sysreg!("id_aa64dfr0_el1");
    let f = |lsb: u32| ((dfr0 >> lsb) & 0xf) as u32;
    let el3 = ((pfr0 >> 12) & 0xf != 0) as u32;
    let dbgdidr = (f(20) << 28)
        | (f(12) << 24)
        | (f(28) << 20)
        | (f(0) << 16)
        | (1 << 15)
        | (el3 << 14)
        | (el3 << 12);
    println!("guest aarch32: ID_AA64DFR0_EL1 = {dfr0:#x}, expected DBGDIDR = {dbgdidr:#010x}");

    // EL0 may use FP/SIMD (CPACR_EL1.FPEN = 0b11) and the EL1 physical timer and
    // counters (CNTKCTL_EL1.EL0PTEN, EL0PCTEN, EL0VCTEN).
    // SAFETY: CPACR_EL1 and CNTKCTL_EL1 only grant EL0 (and, for FPEN, EL1) access to
    // FP/SIMD and the timers; the guest's own code uses neither (soft-float target).
    unsafe {
        core::arch::asm!(
            "mrs {t}, cpacr_el1", "orr {t}, {t}, #(3 << 20)", "msr cpacr_el1, {t}",
            "mrs {t}, cntkctl_el1", "orr {t}, {t}, #0x3", "orr {t}, {t}, #0x200", "msr cntkctl_el1, {t}", "isb",
            t = out(reg) _, options(nostack, preserves_flags),
        )
    };

    let mut injected = 0u64;

    // --- CP14 debug registers (MDCR_EL2.TDA/TDRA: emulated from the VM's view) ---
    let base = addr_of!(a32_dbgdidr) as u64;
    let p = run(base, USR | N | C, &[]);
    // Where EL1 is AArch64-only (ID_AA64PFR0_EL1.EL1 = 0b0001: cortex-a76, neoverse-n1,
    // a64fx), QEMU 7.2 implements no AArch32 DBGDIDR (its DBGDIDR value is 0 there):
    // the MRC is UNDEFINED at EL0 before any trap to EL2. Everywhere else the crate's
    // emulation answers it.
    let dbgdidr_absent = (pfr0 >> 4) & 0xf == 1 && p.esr == ESR_UNDEF && p.elr == base;
    if dbgdidr_absent {
        println!(
            "guest aarch32: note: DBGDIDR is UNDEFINED at EL0 on this CPU (EL1 is AArch64-only; \
             QEMU 7.2 implements no AArch32 DBGDIDR there); its MRCs are checked as UNDEFs"
        );
        undefined(
            c,
            format_args!("A32 mrc p14 DBGDIDR"),
            &p,
            base,
            USR | N | C,
        );
    } else if completes(
        c,
        format_args!("A32 mrc p14 DBGDIDR"),
        &p,
        base + 4,
        USR | N | C,
    ) {
        reg(c, format_args!("A32 DBGDIDR"), &p, 0, dbgdidr);
    }
    let base = addr_of!(t32_dbgdidr) as u64;
    let p = run(base, USR | T | V, &[]);
    if dbgdidr_absent {
        undefined(
            c,
            format_args!("T32 mrc p14 DBGDIDR"),
            &p,
            base,
            USR | T | V,
        );
    } else if completes(
        c,
        format_args!("T32 mrc p14 DBGDIDR"),
        &p,
        base + 4,
        USR | T | V,
    ) {
        reg(c, format_args!("T32 DBGDIDR"), &p, 0, dbgdidr);
    }
    // APSR_nzcv as the destination: NZCV = DBGDIDR[31:28].
    let base = addr_of!(a32_dbgdidr_nzcv) as u64;
    let p = run(base, USR | N | Z | C | V, &[]);
    let flags = ((dbgdidr >> 28) as u64) << 28;
    if dbgdidr_absent {
        let what = format_args!("A32 mrc p14 APSR_nzcv, DBGDIDR");
        undefined(c, what, &p, base, USR | N | Z | C | V);
    } else {
        completes(
            c,
            format_args!("A32 mrc p14 APSR_nzcv, DBGDIDR"),
            &p,
            base + 4,
            USR | flags,
        );
    }
    // In an IT block: `ite eq; mrceq DBGDIDR; movne r0, #7` with Z set. The emulated
    // MRC must advance the IT state, or the MOVNE would run as the MRC's EQ slot.
    // (Where DBGDIDR is UNDEFINED, the MRC in its slot is taken as an UNDEF.)
    let base = addr_of!(t32_it_emulated) as u64;
    let p = run(base, USR | T | Z, &[(0, 0x1234)]);
    if dbgdidr_absent {
        c.check_eq(
            format_args!("T32 mrceq DBGDIDR (UNDEF) in an IT block: ESR_EL1"),
            p.esr,
            ESR_UNDEF,
        );
    } else if completes(
        c,
        format_args!("T32 ite eq; mrceq DBGDIDR; movne"),
        &p,
        base + 8,
        USR | T | Z,
    ) {
        reg(
            c,
            format_args!("T32 mrceq DBGDIDR in an IT block"),
            &p,
            0,
            dbgdidr,
        );
    }
    let p = run(base, USR | T, &[(0, 0x1234)]);
    if completes(
        c,
        format_args!("T32 ite eq (Z clear)"),
        &p,
        base + 8,
        USR | T,
    ) {
        reg(c, format_args!("T32 movne after a skipped mrceq"), &p, 0, 7);
    }

    // DBGDSCRint: MDBGen = MDSCR_EL1.MDE (the guest's, emulated), NS = 1.
    msr_mdscr(1 << 15);
    let base = addr_of!(a32_dbgdscr) as u64;
    let p = run(base, USR, &[]);
    if p.esr == ESR_UNDEF && p.elr == base {
        println!(
            "guest aarch32: note: DBGDSCRint is UNDEFINED at EL0 on this CPU (it does not trap it \
             to EL2: QEMU implements no EL0 access to DBGDSCRint); checked as an UNDEF"
        );
        arrived(
            c,
            format_args!("A32 mrc p14 DBGDSCRint (UNDEF)"),
            &p,
            LOWER_A32_SYNC,
            ESR_UNDEF,
            base,
            USR,
        );
    } else if completes(c, format_args!("A32 mrc p14 DBGDSCRint"), &p, base + 4, USR) {
        reg(
            c,
            format_args!("A32 DBGDSCRint (MDBGen, NS)"),
            &p,
            1,
            (1 << 15) | (1 << 18),
        );
    }
    msr_mdscr(0);

    // The DCC: DBGDTRTXint takes a write, DBGDTRRXint reads 0 (nothing received).
    let base = addr_of!(a32_dcc) as u64;
    let p = run(base, USR, &[(2, 0x55)]);
    if p.esr == ESR_UNDEF && p.elr == base {
        println!("guest aarch32: note: the DCC (DBGDTRTXint) is UNDEFINED at EL0 on this CPU; checked as an UNDEF");
        arrived(
            c,
            format_args!("A32 mcr p14 DBGDTRTXint (UNDEF)"),
            &p,
            LOWER_A32_SYNC,
            ESR_UNDEF,
            base,
            USR,
        );
    } else if completes(
        c,
        format_args!("A32 mcr/mrc p14 DBGDTRTXint/RXint"),
        &p,
        base + 8,
        USR,
    ) {
        reg(c, format_args!("A32 DBGDTRRXint"), &p, 1, 0);
    }
    // DBGDRAR (64- and 32-bit) and DBGDSAR read as zero: no ROM table.
    let base = addr_of!(a32_dbgdrar) as u64;
    let p = run(base, USR, &[]);
    if completes(
        c,
        format_args!("A32 mrrc/mrc p14 DBGDRAR, DBGDSAR"),
        &p,
        base + 12,
        USR,
    ) {
        for n in 0..4 {
            reg(c, format_args!("A32 DBGDRAR/DBGDSAR"), &p, n, 0);
        }
    }
    // MDSCR_EL1.TDCC = 1: EL0 DCC accesses trap to EL1 with EC 0x05 and the MRC's ISS.
    // The MSR of MDSCR_EL1 loads the guest's debug state (lazy debug): from here the
    // CPU itself answers EL0's CP14 accesses (MDCR_EL2.TDA clear), so what follows is
    // the CPU's behaviour — the crate's TDCC emulation for the unloaded state is
    // host-tested (`tests::aarch32`). QEMU 7.2 implements no TDCC for DBGDIDR: it then
    // completes the MRC with the CPU's DBGDIDR, which is checked instead, with a note.
    msr_mdscr(1 << 12);
    let base = addr_of!(a32_dbgdidr) as u64;
    let p = run(base, USR | Z, &[]);
    // CV/COND as the CPU reports them are not compared.
    let iss_mask = !(0x1f << 20) & 0xffff_ffff;
    if dbgdidr_absent {
        // No DBGDIDR: UNDEFINED whatever TDCC says.
        undefined(
            c,
            format_args!("MDSCR_EL1.TDCC: DBGDIDR"),
            &p,
            base,
            USR | Z,
        );
    } else if p.taken == 1 && p.esr == ESR_SVC_A32 {
        println!(
            "guest aarch32: note: this CPU does not trap DBGDIDR at EL0 with MDSCR_EL1.TDCC set \
             (QEMU 7.2 implements no TDCC); checked that the MRC completed"
        );
        completes(
            c,
            format_args!("MDSCR_EL1.TDCC (not implemented by the CPU): DBGDIDR"),
            &p,
            base + 4,
            USR | Z,
        );
    } else {
        // EC 0x05, IL 1, Opc2/Opc1/CRn/Rt/CRm 0, read.
        c.check_eq(
            format_args!("MDSCR_EL1.TDCC: vector"),
            p.vector,
            LOWER_A32_SYNC,
        );
        c.check_eq(
            format_args!("MDSCR_EL1.TDCC: ESR_EL1 (without CV/COND)"),
            p.esr & iss_mask,
            (0x05 << 26) | IL | 1,
        );
        c.check_eq(format_args!("MDSCR_EL1.TDCC: ELR_EL1"), p.elr, base);
        c.check_eq(format_args!("MDSCR_EL1.TDCC: SPSR_EL1"), p.spsr, USR | Z);
    }
    msr_mdscr(0);

    // --- CP15 EL1 physical timer (CNTHCTL_EL2.EL1PCEN = 0: emulated) ---
    let base = addr_of!(a32_timer) as u64;
    let p = run(
        base,
        USR,
        &[(0, 3), (2, 0x89ab_cdef), (3, 0x12), (6, 0x4000_0000)],
    );
    if completes(
        c,
        format_args!("A32 CNTP_CVAL/CTL/TVAL"),
        &p,
        base + 24,
        USR,
    ) {
        reg(
            c,
            format_args!("A32 mrrc CNTP_CVAL (low)"),
            &p,
            4,
            0x89ab_cdef,
        );
        reg(c, format_args!("A32 mrrc CNTP_CVAL (high)"), &p, 5, 0x12);
        reg(
            c,
            format_args!("A32 mrc CNTP_CTL (ENABLE | IMASK, not met)"),
            &p,
            1,
            3,
        );
        let tval = p.r[7] & 0xffff_ffff;
        c.check(
            tval <= 0x4000_0000 && tval > 0x4000_0000 - 0x100_0000,
            format_args!("A32 CNTP_TVAL read back {tval:#x} after writing 0x40000000"),
        );
    }
    // The AArch64 view is the same timer.
    let cval = read_sysreg!("cntp_cval_el0");
    let now = read_sysreg!("cntpct_el0");
    c.check(
        cval > now && cval - now <= 0x4000_0000,
        format_args!(
            "CNTP_CVAL_EL0 {cval:#x} = the TVAL written from AArch32 + the count ({now:#x})"
        ),
    );
    c.check_eq(
        format_args!("CNTP_CTL_EL0 after the AArch32 write"),
        read_sysreg!("cntp_ctl_el0"),
        3,
    );
    let base = addr_of!(t32_timer) as u64;
    let p = run(base, USR | T, &[]);
    if completes(c, format_args!("T32 CNTP_CVAL/CTL"), &p, base + 8, USR | T) {
        reg(
            c,
            format_args!("T32 mrrc CNTP_CVAL (low)"),
            &p,
            4,
            cval as u32,
        );
        reg(
            c,
            format_args!("T32 mrrc CNTP_CVAL (high)"),
            &p,
            5,
            (cval >> 32) as u32,
        );
        reg(c, format_args!("T32 mrc CNTP_CTL"), &p, 1, 3);
    }
    // SAFETY: disabling the (emulated) EL1 physical timer has no other effect.
    unsafe { core::arch::asm!("msr cntp_ctl_el0, xzr", options(nostack, preserves_flags)) };

    // --- What must be UNDEFINED at EL0 ---
    for (what, s, spsr) in [
        (
            "A32 mcr p15 CNTP_CTL from pc",
            addr_of!(a32_undef_mcr_pc) as u64,
            USR | Z | V,
        ),
        (
            "A32 mrrc p15 CNTP_CVAL into r4, r4",
            addr_of!(a32_undef_mrrc_same) as u64,
            USR | N,
        ),
        (
            "A32 mrc p14, 3, r0, c0, c5, 0",
            addr_of!(a32_undef_cp14) as u64,
            USR | N | C,
        ),
        (
            "A32 mrc p14 DBGDTRRXext (EL1 only)",
            addr_of!(a32_undef_dtrext) as u64,
            USR | Z,
        ),
        (
            "T32 mrc p14, 3, r0, c0, c5, 0",
            addr_of!(t32_undef_cp14) as u64,
            USR | T | N,
        ),
        ("A32 udf #0", addr_of!(a32_udf) as u64, USR | C),
        (
            "T32 udf #0 (16-bit)",
            addr_of!(t32_udf16) as u64,
            USR | T | Z,
        ),
        (
            "T32 udf.w #0 (32-bit)",
            addr_of!(t32_udf32) as u64,
            USR | T | C | V,
        ),
    ] {
        let base = s;
        let p = run(base, spsr, &[]);
        arrived(
            c,
            format_args!("{what}: UNDEF"),
            &p,
            LOWER_A32_SYNC,
            ESR_UNDEF,
            base,
            spsr,
        );
    }
    // The PMU (hidden in the VM's view): with PMUSERENR_EL0.EN = 0 an EL0 access traps
    // to EL1 first, reported as a trapped MRC (EC 0x03 with the MRC's ISS) when EL1 is
    // AArch64; if it reached EL2 it is UNDEFINED. Either way it never reaches the host.
    let base = addr_of!(a32_undef_pmcr) as u64;
    let p = run(base, USR | V, &[]);
    let pmcr_trap = (0x03 << 26) | IL | (9 << 10) | (12 << 1) | 1;
    if p.esr & iss_mask == pmcr_trap {
        arrived(
            c,
            format_args!("A32 mrc p15 PMCR: EL1 trap (PMUSERENR_EL0.EN = 0)"),
            &p,
            LOWER_A32_SYNC,
            p.esr,
            base,
            USR | V,
        );
    } else {
        arrived(
            c,
            format_args!("A32 mrc p15 PMCR: UNDEF"),
            &p,
            LOWER_A32_SYNC,
            ESR_UNDEF,
            base,
            USR | V,
        );
    }
    let base = addr_of!(a32_stc) as u64;
    let scratch = addr_of!(SCRATCH) as u64 as u32;
    let p = run(base, USR, &[(2, scratch)]);
    arrived(
        c,
        format_args!("A32 stc p14, c5, [r2]: UNDEF"),
        &p,
        LOWER_A32_SYNC,
        ESR_UNDEF,
        base,
        USR,
    );
    // Inside an IT block: SPSR_EL1 keeps the IT state of the faulting instruction
    // (`it eq` → ITSTATE 0x08: IT[7:2] = 0b000010 in SPSR[15:10], IT[1:0] = 0).
    let base = addr_of!(t32_undef_in_it) as u64;
    let p = run(base, USR | T | Z, &[]);
    let it = 0x08u64;
    let spsr_it = USR | T | Z | ((it >> 2) << 10) | ((it & 3) << 25);
    arrived(
        c,
        format_args!("T32 it eq; mrceq p14, 3 (UNDEF in an IT block)"),
        &p,
        LOWER_A32_SYNC,
        ESR_UNDEF,
        base + 2,
        spsr_it,
    );
    // The same for an access that reaches EL2 (QEMU traps it): the crate's UNDEF keeps
    // the IT state in SPSR_EL1 too.
    let base = addr_of!(t32_undef_in_it_trapped) as u64;
    let p = run(base, USR | T | Z, &[]);
    arrived(
        c,
        format_args!("T32 it eq; mrrceq p15, 2, r4, r4, c14 (UNDEF in an IT block)"),
        &p,
        LOWER_A32_SYNC,
        ESR_UNDEF,
        base + 2,
        spsr_it,
    );

    // --- Conditional accesses that fail their condition code check: skipped ---
    let base = addr_of!(a32_cond_fail) as u64;
    let p = run(base, USR | Z, &[(0, 0x5a5a)]);
    if completes(c, format_args!("A32 mrcne (Z set)"), &p, base + 4, USR | Z) {
        reg(c, format_args!("A32 mrcne not executed"), &p, 0, 0x5a5a);
    }
    let base = addr_of!(t32_cond_fail) as u64;
    let p = run(base, USR | T | Z, &[(0, 0x5a5a)]);
    if completes(
        c,
        format_args!("T32 it ne; mrcne (Z set)"),
        &p,
        base + 6,
        USR | T | Z,
    ) {
        reg(c, format_args!("T32 mrcne not executed"), &p, 0, 0x5a5a);
    }

    // --- FP/SIMD from AArch32: the first use after a vCPU switch (YIELD) traps
    // (CPTR_EL2.TFP) and the hypervisor loads the registers lazily ---
    for (what, s, spsr, v) in [
        (
            "A32 vmov s0, r0; vmov r1, s0",
            addr_of!(a32_vfp) as u64,
            USR,
            0x3f80_0000u32,
        ),
        (
            "T32 vmov s0, r0; vmov r1, s0",
            addr_of!(t32_vfp) as u64,
            USR | T,
            0x4049_0fdb,
        ),
    ] {
        c.check_eq(
            format_args!("YIELD before {what}"),
            hvc::call(hvc::YIELD, [0; 6]),
            0,
        );
        let base = s;
        let p = run(base, spsr, &[(0, v), (1, 0)]);
        if completes(c, format_args!("{what}"), &p, base + 8, spsr) {
            reg(c, format_args!("{what}"), &p, 1, v);
        }
    }

    // --- MMIO from AArch32 (emulated by the host from the syndrome) ---
    let base = addr_of!(a32_ldr) as u64;
    let p = run(base, USR, &[(2, TESTDEV_PATTERN)]);
    if completes(
        c,
        format_args!("A32 ldr from the test device"),
        &p,
        base + 4,
        USR,
    ) {
        reg(
            c,
            format_args!("A32 ldr from the test device"),
            &p,
            1,
            0xb0a0_9080,
        );
    }
    // `ite eq; ldreq r1, [r2]; movne r1, #7` with Z set: the completed load must
    // advance the IT state, or the MOVNE would overwrite r1.
    let base = addr_of!(t32_it_mmio) as u64;
    let p = run(base, USR | T | Z, &[(2, TESTDEV_PATTERN)]);
    if completes(
        c,
        format_args!("T32 ite eq; ldreq (test device); movne"),
        &p,
        base + 6,
        USR | T | Z,
    ) {
        reg(
            c,
            format_args!("T32 ldreq from the test device in an IT block"),
            &p,
            1,
            0xb0a0_9080,
        );
    }

    // --- Aborts at IPAs nothing serves: the host injects them ---
    for (what, base, spsr, esr) in [
        (
            "A32 ldr r1, [r2]",
            addr_of!(a32_ldr) as u64,
            USR | N,
            ESR_DABT_READ,
        ),
        (
            "A32 ldm r2, {r3, r4}",
            addr_of!(a32_ldm) as u64,
            USR | Z,
            ESR_DABT_READ,
        ),
        (
            "A32 str r1, [r2]",
            addr_of!(a32_str) as u64,
            USR | C,
            ESR_DABT_WRITE,
        ),
        (
            "T32 ldr r1, [r2] (16-bit)",
            addr_of!(t32_ldr16) as u64,
            USR | T | V,
            ESR_DABT_READ,
        ),
        (
            "T32 ldm r2!, {r3, r4} (16-bit)",
            addr_of!(t32_ldm16) as u64,
            USR | T,
            ESR_DABT_READ,
        ),
        (
            "T32 str r1, [r2] (16-bit)",
            addr_of!(t32_str16) as u64,
            USR | T | N | Z,
            ESR_DABT_WRITE,
        ),
    ] {
        let p = run(base, spsr, &[(2, UNMAPPED_DATA)]);
        injected += p.taken;
        if arrived(
            c,
            format_args!("{what}: data abort"),
            &p,
            LOWER_A32_SYNC,
            esr,
            base,
            spsr,
        ) {
            c.check_eq(format_args!("{what}: FAR_EL1"), p.far, UNMAPPED_DATA as u64);
            // The base register is not written back by a load that aborted.
            reg(
                c,
                format_args!("{what}: base register"),
                &p,
                2,
                UNMAPPED_DATA,
            );
        }
    }
    // bx to an unmapped IPA: instruction abort, FAR = ELR = the target, A32 state.
    let base = addr_of!(a32_bx) as u64;
    let p = run(base, USR | N | V, &[(2, UNMAPPED_CODE)]);
    injected += p.taken;
    if arrived(
        c,
        format_args!("A32 bx r2 to nothing: instruction abort"),
        &p,
        LOWER_A32_SYNC,
        ESR_IABT,
        UNMAPPED_CODE as u64,
        USR | N | V,
    ) {
        c.check_eq(
            format_args!("instruction abort: FAR_EL1"),
            p.far,
            UNMAPPED_CODE as u64,
        );
    }

    // --- Virtual SError taken from AArch32 EL0 (PSTATE.A clear in User mode) ---
    c.check_eq(
        format_args!("TEST_CALL(0xa2) (inject a virtual SError)"),
        hvc::k(0xa2),
        0,
    );
    let base = addr_of!(a32_serror) as u64;
    let p = run(base, USR | Z, &[]);
    injected += p.taken;
    c.check_eq(format_args!("virtual SError: taken"), p.taken, 1);
    c.check_eq(
        format_args!("virtual SError: vector"),
        p.vector,
        LOWER_A32_SERROR,
    );
    c.check_eq(
        format_args!("virtual SError: ESR_EL1.EC"),
        p.esr >> 26,
        0x2f,
    );
    c.check(
        p.elr >= base && p.elr <= base + 8,
        format_args!(
            "virtual SError: ELR_EL1 {:#x} within the snippet at {base:#x}",
            p.elr
        ),
    );
    c.check_eq(format_args!("virtual SError: SPSR_EL1"), p.spsr, USR | Z);
    println!("guest aarch32: virtual SError ESR_EL1 = {:#x}", p.esr);

    // The host counted the aborts and SErrors it injected.
    c.check_eq(
        format_args!("TEST_CALL(0xa1, {injected} injections seen): host's verdict"),
        hvc::test_call([0xa1, injected, 0, 0, 0, 0]),
        0,
    );
}
