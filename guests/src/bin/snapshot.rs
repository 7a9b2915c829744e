//! `snapshot` (N = iters): the guest is snapshotted mid-computation, its vCPU
//! destroyed, and a new vCPU restored from the snapshot's bytes on the other physical
//! core finishes it.
//!
//! The guest sets recognisable values in EL1 system registers, SP_EL0, FPCR/FPSR,
//! MDSCR_EL1, the virtual timer (armed 100 s ahead, masked) and its GIC CPU interface (PMR,
//! group 1 enable), asks the host for six virtual interrupts while IRQs are masked
//! (more than the list registers hold: some wait in the crate's queue), then runs a
//! computation whose state lives in x2..x17, x20..x28 and V0..V31 across N device
//! reads (MMIO exits); before that the host reads and writes some of its registers with
//! `get_reg`/`set_reg` while the vCPU is bound (TEST_CALL 0x63). The host snapshots the vCPU at one of those reads, before
//! completing it, and the restored vCPU on core 1 completes it. The guest then checks:
//! it now runs on another physical core (TEST_CALL 0x62), the same computation run
//! again without a migration gives the same result, every register it set holds its
//! value, the virtual count moved forward by less than 10 s across the migration and
//! the timer's compare value still lies 90..100 s ahead, and, once it unmasks IRQs,
//! it takes exactly the six interrupts (INTIDs 40..45).
#![no_std]
#![no_main]

use core::arch::asm;
use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};

use guests::rt::{Checks, Entry};
use guests::{gic, hvc, read_sysreg, sysreg};

guests::guest_main!("snapshot", main);

/// The host's device: a 64-bit read at `DEV + 8k` (k < 32) returns `value(k)`.
const DEV: u64 = 0x0b00_0000;
/// TEST_CALL(0x61, first INTID, count): the host injects that many interrupts;
/// returns how many wait in the queue.
const INJECT: u64 = 0x61;
/// TEST_CALL(0x62, phase): returns the physical core (MPIDR affinity) the vCPU runs
/// on. Phase 1: the migrating run starts; 2: it ended.
const WHERE: u64 = 0x62;
/// TEST_CALL(0x63, tag): the host reads the bound vCPU's registers with `get_reg`
/// (TPIDR_EL1, V7, FPCR, MDSCR_EL1, ICH_VMCR_EL2.VPMR, x2 = tag) and writes
/// TPIDRRO_EL0 and V7 with `set_reg`; returns a bit mask of what was wrong.
const LIVE: u64 = 0x63;
const LIVE_TAG: u64 = 0x07a9_0000_1234;
const V7: u128 = 0x0777_4444_5555_6666_0777_1111_2222_3333;
const NEW_TPIDRRO: u64 = 0x1111_2222_3333_4444;
const NEW_V7: u128 = 0x0888_aaaa_bbbb_cccc_0888_dddd_eeee_ffff;
/// The interrupts asked for.
const FIRST_INTID: u64 = 40;
const COUNT: u64 = 6;

/// INTIDs taken (bit n: INTID 40 + n) and how many; written by the IRQ vector.
#[no_mangle]
static mut SNAP_IRQ_SEEN: u64 = 0;
#[no_mangle]
static mut SNAP_IRQ_COUNT: u64 = 0;
/// The GICC's address on a GICv2 board, 0 with the GICv3 system registers
/// (`guests::gic::gicc_or_zero`, set before IRQs are unmasked).
#[no_mangle]
static mut SNAP_GICC: u64 = 0;

core::arch::global_asm!(
    guests::asm_macros!(),
    ".section .text.vectors, \"ax\"",
    ".balign 0x800",
    ".global snapshot_vectors",
    "snapshot_vectors:",
    "vector_forward 0, 1, 2, 3, 4",
    ".balign 0x80",
    // 0x280: IRQ from EL1h: acknowledge, record, end (ICC_IAR1/EOIR1_EL1, or
    // GICC_IAR/EOIR on a GICv2 board).
    "    stp x0, x1, [sp, #-48]!",
    "    stp x2, x3, [sp, #16]",
    "    str x4, [sp, #32]",
    "    adrp x4, SNAP_GICC",
    "    ldr x4, [x4, :lo12:SNAP_GICC]",
    "    cbnz x4, 1f",
    "    mrs x0, S3_0_C12_C12_0", // ICC_IAR1_EL1
    "    b 2f",
    "1:  ldr w0, [x4, #0xc]", // GICC_IAR
    "    and x0, x0, #0x3ff",
    "2:",
    "    sub x1, x0, #40",
    "    mov x2, #1",
    "    cmp x1, #64",
    "    lsl x2, x2, x1",
    "    csel x2, x2, xzr, lo",
    "    adrp x1, SNAP_IRQ_SEEN",
    "    ldr x3, [x1, :lo12:SNAP_IRQ_SEEN]",
    "    orr x3, x3, x2",
    "    str x3, [x1, :lo12:SNAP_IRQ_SEEN]",
    "    adrp x1, SNAP_IRQ_COUNT",
    "    ldr x3, [x1, :lo12:SNAP_IRQ_COUNT]",
    "    add x3, x3, #1",
    "    str x3, [x1, :lo12:SNAP_IRQ_COUNT]",
    "    cbnz x4, 3f",
    "    msr S3_0_C12_C12_1, x0", // ICC_EOIR1_EL1
    "    b 4f",
    "3:  str w0, [x4, #0x10]", // GICC_EOIR (an SPI: no source CPU to give back)
    "4:",
    "    ldr x4, [sp, #32]",
    "    ldp x2, x3, [sp, #16]",
    "    ldp x0, x1, [sp], #48",
    "    eret",
    "vector_forward 6, 7, 8, 9, 10, 11, 12, 13, 14, 15",
);

// The computation: `snapshot_compute(n, dev, out)` (AAPCS64; saves x19..x29 itself).
// x2..x17 and x20..x28 are a chain of mixing steps, V0..V31 another; every round
// reads one device word (an MMIO exit) in the middle of it, so any register the
// migration loses or swaps changes the result. The four results are written to out.
core::arch::global_asm!(
    ".section .text, \"ax\"",
    ".arch_extension fp",
    ".arch_extension simd",
    ".global snapshot_compute",
    ".balign 4",
    "snapshot_compute:",
    "    stp x19, x20, [sp, #-96]!",
    "    stp x21, x22, [sp, #16]",
    "    stp x23, x24, [sp, #32]",
    "    stp x25, x26, [sp, #48]",
    "    stp x27, x28, [sp, #64]",
    "    stp x29, x2, [sp, #80]", // x2 = out (saved: the loop uses x2)
    "    mov x19, x0",            // rounds left
    "    mov x29, x1",            // device base
    // Distinct starting values.
    "    movz x2, #0x1111",
    "    movz x3, #0x2222",
    "    movz x4, #0x3333",
    "    movz x5, #0x4444",
    "    movz x6, #0x5555",
    "    movz x7, #0x6666",
    "    movz x8, #0x7777",
    "    movz x9, #0x8888",
    "    movz x10, #0x9999",
    "    movz x11, #0xaaaa",
    "    movz x12, #0xbbbb",
    "    movz x13, #0xcccc",
    "    movz x14, #0xdddd",
    "    movz x15, #0xeeee",
    "    movz x16, #0xf0f0",
    "    movz x17, #0x0f0f",
    "    movz x20, #0x1234",
    "    movz x21, #0x2345",
    "    movz x22, #0x3456",
    "    movz x23, #0x4567",
    "    movz x24, #0x5678",
    "    movz x25, #0x6789",
    "    movz x26, #0x789a",
    "    movz x27, #0x89ab",
    "    movz x28, #0x9abc",
    ".irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
    "    movz x0, #(\\n * 0x135 + 0x2468)",
    "    dup v\\n\\().2d, x0",
    "    mov v\\n\\().d[1], x19",
    ".endr",
    "1:",
    "    and x0, x19, #31",
    "    ldr x1, [x29, x0, lsl #3]", // the device read: an exit
    "    eor x2, x2, x1",
    "    add x3, x3, x2, lsr #7",
    "    eor x4, x4, x3, lsl #3",
    "    add x5, x5, x4, lsr #11",
    "    eor x6, x6, x5, lsr #5",
    "    add x7, x7, x6, lsr #13",
    "    eor x8, x8, x7, lsl #9",
    "    add x9, x9, x8, lsr #17",
    "    eor x10, x10, x9, lsr #3",
    "    add x11, x11, x10, lsr #19",
    "    eor x12, x12, x11, lsl #1",
    "    add x13, x13, x12, lsr #23",
    "    eor x14, x14, x13, lsr #7",
    "    add x15, x15, x14, lsr #29",
    "    eor x16, x16, x15, lsl #5",
    "    add x17, x17, x16, lsr #31",
    "    eor x20, x20, x17, lsr #9",
    "    add x21, x21, x20, lsr #37",
    "    eor x22, x22, x21, lsl #11",
    "    add x23, x23, x22, lsr #41",
    "    eor x24, x24, x23, lsr #13",
    "    add x25, x25, x24, lsr #43",
    "    eor x26, x26, x25, lsl #15",
    "    add x27, x27, x26, lsr #47",
    "    eor x28, x28, x27, lsr #17",
    "    add x2, x2, x28, lsr #53",
    "    fmov d31, x1",
    "    mov v31.d[1], x28",
    ".irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30",
    "    eor v\\n\\().16b, v\\n\\().16b, v31.16b",
    "    ext v31.16b, v31.16b, v\\n\\().16b, #5",
    "    add v31.2d, v31.2d, v\\n\\().2d",
    ".endr",
    "    subs x19, x19, #1",
    "    b.ne 1b",
    // Fold: x0 = the GPR chain, x1 = V0..V31 low halves, x19 = high halves.
    "    eor x0, x2, x3",
    "    eor x0, x0, x4",
    "    eor x0, x0, x5",
    "    eor x0, x0, x6",
    "    eor x0, x0, x7",
    "    eor x0, x0, x8",
    "    eor x0, x0, x9",
    "    eor x0, x0, x10",
    "    eor x0, x0, x11",
    "    eor x0, x0, x12",
    "    eor x0, x0, x13",
    "    eor x0, x0, x14",
    "    eor x0, x0, x15",
    "    eor x0, x0, x16",
    "    eor x0, x0, x17",
    "    eor x0, x0, x20",
    "    eor x0, x0, x21",
    "    eor x0, x0, x22",
    "    eor x0, x0, x23",
    "    eor x0, x0, x24",
    "    eor x0, x0, x25",
    "    eor x0, x0, x26",
    "    eor x0, x0, x27",
    "    eor x0, x0, x28",
    "    mov x1, #0",
    "    mov x19, #0",
    ".irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
    "    fmov x3, d\\n",
    "    eor x1, x3, x1, ror #3",
    "    mov x3, v\\n\\().d[1]",
    "    eor x19, x3, x19, ror #5",
    ".endr",
    "    ldp x29, x3, [sp, #80]",
    "    str x0, [x3]",
    "    str x1, [x3, #8]",
    "    str x19, [x3, #16]",
    "    add x2, x2, x28",
    "    str x2, [x3, #24]",
    "    ldp x21, x22, [sp, #16]",
    "    ldp x23, x24, [sp, #32]",
    "    ldp x25, x26, [sp, #48]",
    "    ldp x27, x28, [sp, #64]",
    "    ldp x19, x20, [sp], #96",
    "    ret",
);

extern "C" {
    static snapshot_vectors: u8;
    fn snapshot_compute(n: u64, dev: u64, out: *mut [u64; 4]);
}

fn compute(n: u64) -> [u64; 4] {
    let mut out = [0u64; 4];
    // SAFETY: `snapshot_compute` follows AAPCS64 (it saves the callee-saved registers
    // it uses), reads only the host's device at DEV and writes `out`. The soft-float
    // compiler keeps nothing in the V registers it overwrites.
    unsafe { snapshot_compute(n, DEV, &mut out) };
    out
}

/// Register values the migration must carry (x: the value written, then read back).
const TPIDR_EL0: u64 = 0x7e57_0000_0000_0e10;
const TPIDRRO_EL0: u64 = 0x7e57_0000_0000_0e11;
const TPIDR_EL1: u64 = 0x7e57_0000_0000_0e12;
const CONTEXTIDR: u64 = 0x5a5a_1234;
const SP_EL0: u64 = 0x4123_4560;
const FAR_EL1: u64 = 0xfa4_0000_1230;
const MAIR_EL1: u64 = 0x0044_ff04_00bb_ff00;
/// FPCR: RMode = +inf (bits 23:22 = 01), FZ (24).
const FPCR: u64 = (1 << 22) | (1 << 24);
/// FPSR: QC (27) and the cumulative flags IDC, IXC, UFC, OFC, DZC, IOC.
const FPSR: u64 = (1 << 27) | 0x9f;
/// MDSCR_EL1.TDCC (12).
const MDSCR: u64 = 1 << 12;
const PMR: u64 = 0xf0;

fn irq_seen() -> (u64, u64) {
    // SAFETY: written only by the IRQ vector on this vCPU (between instructions).
    unsafe {
        (
            read_volatile(addr_of!(SNAP_IRQ_SEEN)),
            read_volatile(addr_of!(SNAP_IRQ_COUNT)),
        )
    }
}

fn main(c: &mut Checks, entry: Entry) {
    let n = entry.iters().max(64);
    let freq = sysreg::cntfrq();
    // SAFETY: this EL1 program owns these registers: FP/SIMD on (CPACR_EL1.FPEN), its
    // own vectors, and the values the migration must keep; PSTATE.I stays set.
    unsafe {
        asm!(
            "mrs {t}, cpacr_el1",
            "orr {t}, {t}, #(3 << 20)",
            "msr cpacr_el1, {t}",
            "isb",
            "msr vbar_el1, {v}",
            "isb",
            v = in(reg) addr_of!(snapshot_vectors),
            t = out(reg) _,
        );
        asm!(
            ".arch_extension fp",
            "msr tpidr_el0, {a}",
            "msr tpidrro_el0, {b}",
            "msr tpidr_el1, {c}",
            "msr contextidr_el1, {d}",
            "msr sp_el0, {e}",
            "msr far_el1, {f}",
            "msr mair_el1, {g}",
            "msr fpcr, {h}",
            "msr fpsr, {i}",
            "msr mdscr_el1, {j}",
            "isb",
            a = in(reg) TPIDR_EL0,
            b = in(reg) TPIDRRO_EL0,
            c = in(reg) TPIDR_EL1,
            d = in(reg) CONTEXTIDR,
            e = in(reg) SP_EL0,
            f = in(reg) FAR_EL1,
            g = in(reg) MAIR_EL1,
            h = in(reg) FPCR,
            i = in(reg) FPSR,
            j = in(reg) MDSCR,
        );
    }
    // The GIC CPU interface: priority mask and Group 1 on (ICC_PMR_EL1 and
    // ICC_IGRPEN1_EL1, or GICC_PMR and GICC_CTLR on a GICv2 board).
    // SAFETY: the vector reads it only once IRQs are unmasked, after this store.
    unsafe { write_volatile(addr_of_mut!(SNAP_GICC), gic::gicc_or_zero()) };
    gic::enable(PMR);
    let cval = sysreg::cntvct() + 100 * freq;
    // SAFETY: arms the virtual timer 100 s ahead, its interrupt masked (IMASK): only
    // its state matters here, and a guest time gone wrong must not flood the host.
    unsafe {
        asm!("msr cntv_cval_el0, {0}", "mov {t}, #3", "msr cntv_ctl_el0, {t}", "isb", in(reg) cval, t = out(reg) _)
    };

    // The host's get_reg/set_reg on the bound vCPU.
    // SAFETY: V7 is this program's (the soft-float compiler never uses it).
    unsafe {
        asm!(".arch_extension fp", ".arch_extension simd", "fmov d7, {lo}", "mov v7.d[1], {hi}",
            lo = in(reg) V7 as u64, hi = in(reg) (V7 >> 64) as u64)
    };
    let live = hvc::test_call([LIVE, LIVE_TAG, 0, 0, 0, 0]);
    c.check_eq(
        format_args!("host's get_reg/set_reg on the bound vCPU (bit mask)"),
        live,
        0,
    );
    let (lo, hi): (u64, u64);
    // SAFETY: reads V7 back.
    unsafe {
        asm!(".arch_extension fp", ".arch_extension simd", "fmov {lo}, d7", "mov {hi}, v7.d[1]",
            lo = out(reg) lo, hi = out(reg) hi)
    };
    c.check_eq(
        format_args!("V7 written by the host (low)"),
        lo,
        NEW_V7 as u64,
    );
    c.check_eq(
        format_args!("V7 written by the host (high)"),
        hi,
        (NEW_V7 >> 64) as u64,
    );
    c.check_eq(
        format_args!("TPIDRRO_EL0 written by the host"),
        read_sysreg!("tpidrro_el0"),
        NEW_TPIDRRO,
    );
    // SAFETY: puts back this program's own value.
    unsafe { asm!("msr tpidrro_el0, {0}", in(reg) TPIDRRO_EL0) };

    let queued = hvc::test_call([INJECT, FIRST_INTID, COUNT, 0, 0, 0]);
    guests::println!("guest snapshot: {COUNT} interrupts injected, {queued} queued");
    let core_before = hvc::test_call([WHERE, 1, 0, 0, 0, 0]);
    let t0 = sysreg::cntvct();
    let migrated = compute(n);
    let t1 = sysreg::cntvct();
    let core_after = hvc::test_call([WHERE, 2, 0, 0, 0, 0]);
    c.check(
        core_after != core_before,
        format_args!("still on physical core {core_after:#x} after the migration"),
    );
    let fpsr: u64 = read_sysreg!("S3_3_C4_C4_1");
    let again = compute(n);
    for k in 0..4 {
        c.check_eq(
            format_args!("result word {k} of the migrated run (vs a run without migration)"),
            migrated[k],
            again[k],
        );
    }
    let regs: [(&str, u64, u64); 10] = [
        ("TPIDR_EL0", read_sysreg!("tpidr_el0"), TPIDR_EL0),
        ("TPIDRRO_EL0", read_sysreg!("tpidrro_el0"), TPIDRRO_EL0),
        ("TPIDR_EL1", read_sysreg!("tpidr_el1"), TPIDR_EL1),
        ("CONTEXTIDR_EL1", read_sysreg!("contextidr_el1"), CONTEXTIDR),
        ("SP_EL0", read_sysreg!("sp_el0"), SP_EL0),
        ("FAR_EL1", read_sysreg!("far_el1"), FAR_EL1),
        ("MAIR_EL1", read_sysreg!("mair_el1"), MAIR_EL1),
        ("FPCR", read_sysreg!("S3_3_C4_C4_0"), FPCR),
        ("FPSR", fpsr, FPSR),
        ("MDSCR_EL1", read_sysreg!("mdscr_el1"), MDSCR),
    ];
    for (name, got, want) in regs {
        c.check_eq(format_args!("{name} after the migration"), got, want);
    }
    // The CPU interface (`gic::state`: the group enable, then the priority mask).
    let [(en_name, en), (pmr_name, pmr), ..] = gic::state();
    c.check_eq(format_args!("{en_name} after the migration"), en & 1, 1);
    c.check_eq(format_args!("{pmr_name} after the migration"), pmr, PMR);
    // Guest time: continuous across the migration, the timer still 90..100 s ahead.
    c.check(
        t1 >= t0 && t1 - t0 < 10 * freq,
        format_args!("virtual count jumped across the migration: {t0:#x} -> {t1:#x}"),
    );
    let cval_now: u64 = read_sysreg!("cntv_cval_el0");
    let ctl: u64 = read_sysreg!("cntv_ctl_el0");
    c.check_eq(
        format_args!("CNTV_CVAL_EL0 after the migration"),
        cval_now,
        cval,
    );
    c.check_eq(
        format_args!("CNTV_CTL_EL0 (enabled, masked, condition not met)"),
        ctl & 7,
        3,
    );
    let ahead = cval.wrapping_sub(sysreg::cntvct());
    c.check(
        ahead <= 100 * freq && ahead > 90 * freq,
        format_args!("virtual timer now {ahead:#x} ticks ahead (freq {freq})"),
    );
    // The interrupts: in list registers and the queue at the snapshot, all taken now.
    // SAFETY: unmasks IRQs; the vector preserves what it uses.
    unsafe { asm!("msr daifclr, #2", "isb") };
    let deadline = sysreg::cntvct() + 2 * freq;
    while irq_seen().1 < COUNT && sysreg::cntvct() < deadline {}
    // SAFETY: masks them again.
    unsafe { asm!("msr daifset, #2", "isb") };
    let (seen, count) = irq_seen();
    c.check_eq(
        format_args!("virtual interrupts taken after the migration"),
        count,
        COUNT,
    );
    c.check_eq(
        format_args!("INTIDs taken (bit n: 40 + n)"),
        seen,
        (1 << COUNT) - 1,
    );
}
