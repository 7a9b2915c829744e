//! AArch32 EL0 under an AArch64 EL1 (aarch32.rs): syndrome decoding with words
//! written out from the Arm ARM ISS layouts, the condition-code check and IT state,
//! the emulated CP15 timer and CP14 debug registers, UNDEF and abort injection into
//! AArch32 EL0, and the option that hides AArch32 EL0.

use proptest::prelude::*;

use crate::aarch32::{
    self, build, psr, Access, Context, CpRrtIss, CpRtIss, DebugView, El1Trap, Encoding, Handled,
    LdcIss, TrapControl, Treatment, REGISTERS,
};
use crate::esr::Syndrome;
use crate::idregs::{self, IdRegisters, ID_SPACE_LEN};
use crate::inject::{enter, GuestState, Injection};
use crate::timer::{self, ctl, EmulatedTimer};
use crate::*;

const VBAR: u64 = 0x4009_0000;
/// AArch32 User mode, A32 (M[4:0] = 0b10000).
const USR: u64 = 0x10;
/// AArch32 User mode, T32.
const USR_T: u64 = 0x30;

// ---------------------------------------------------------------------------------
// Syndromes: words composed by hand from the ISS layouts of DDI 0487 D24.2.40
// ("ISS encoding for an exception from an MCR or MRC access", "... MCRR or MRRC
// access", "... LDC or STC instruction").
// ---------------------------------------------------------------------------------

/// `mrc p14, 0, r0, c0, c0, 0` (DBGDIDR), A32, unconditional: EC 0x05, IL 1, CV 1,
/// COND 0b1110, Opc2 0, Opc1 0, CRn 0, Rt 0, CRm 0, Direction 1.
const MRC_DBGDIDR_R0: u64 = 0x17e0_0001;
/// `mrc p15, 0, r3, c14, c2, 1` (CNTP_CTL), A32 AL: EC 0x03, Opc2 1 [19:17], CRn 14
/// [13:10], Rt 3 [9:5], CRm 2 [4:1], read.
const MRC_CNTP_CTL_R3: u64 = 0x0fe2_3865;
/// `mrrc p15, 2, r4, r5, c14` (CNTP_CVAL), A32 AL: EC 0x04, Opc1 2 [19:16], Rt2 5
/// [14:10], Rt 4 [9:5], CRm 14 [4:1], read.
const MRRC_CNTP_CVAL_R4_R5: u64 = 0x13e2_149d;
/// `stc p14, c5, [r2], #8` (STC from DBGDTRRXint, post-indexed): EC 0x06, CV 1, COND
/// 0xE, imm8 2 [19:12], Rn 2 [9:5], Offset 1 (add) [4], AM 0b001 [3:1], Direction 0.
const STC_DTR_R2: u64 = 0x1be0_2052;

#[test]
fn iss_decoders_match_the_arm_arm_layouts() {
    assert_eq!(
        CpRtIss::decode(MRC_DBGDIDR_R0),
        CpRtIss {
            cv: true,
            cond: 0xe,
            opc2: 0,
            opc1: 0,
            crn: 0,
            rt: 0,
            crm: 0,
            read: true
        }
    );
    assert_eq!(
        CpRtIss::decode(MRC_CNTP_CTL_R3),
        CpRtIss {
            cv: true,
            cond: 0xe,
            opc2: 1,
            opc1: 0,
            crn: 14,
            rt: 3,
            crm: 2,
            read: true
        }
    );
    assert_eq!(
        CpRrtIss::decode(MRRC_CNTP_CVAL_R4_R5),
        CpRrtIss {
            cv: true,
            cond: 0xe,
            opc1: 2,
            rt2: 5,
            rt: 4,
            crm: 14,
            read: true
        }
    );
    assert_eq!(
        LdcIss::decode(STC_DTR_R2),
        LdcIss {
            cv: true,
            cond: 0xe,
            imm8: 2,
            rn: 2,
            add: true,
            am: 1,
            read: false
        }
    );
    // The builders produce the same words.
    assert_eq!(
        build::mcr(14, 0, 0, 0, 0, 0, true, true, Some(0xe)),
        MRC_DBGDIDR_R0
    );
    assert_eq!(
        build::mcr(15, 0, 14, 2, 1, 3, true, true, Some(0xe)),
        MRC_CNTP_CTL_R3
    );
    assert_eq!(
        build::mcrr(15, 2, 14, 4, 5, true, true, Some(0xe)),
        MRRC_CNTP_CVAL_R4_R5
    );
    assert_eq!(build::ldc(2, 2, true, 1, false, Some(0xe)), STC_DTR_R2);
    // The classes.
    assert!(matches!(
        Access::decode(MRC_DBGDIDR_R0),
        Some(Access::Cp32 { cp: 14, .. })
    ));
    assert!(matches!(
        Access::decode(MRC_CNTP_CTL_R3),
        Some(Access::Cp32 { cp: 15, .. })
    ));
    assert!(matches!(
        Access::decode(MRRC_CNTP_CVAL_R4_R5),
        Some(Access::Cp64 { cp: 15, .. })
    ));
    assert!(matches!(
        Access::decode(build::mcrr(14, 0, 1, 0, 1, true, true, None)),
        Some(Access::Cp64 { cp: 14, .. })
    ));
    assert!(matches!(
        Access::decode(STC_DTR_R2),
        Some(Access::LdcStc(_))
    ));
    assert_eq!(Access::decode(0x9200_0010), None, "data abort");
    assert_eq!(Access::decode(0x1e00_0000), None, "FP/SIMD");
}

/// For every condition: the set of NZCV values (bit n = NZCV value n, N = bit 3) for
/// which it holds, from the Arm ARM's condition code table (worked out by hand).
const HOLDS: [u16; 16] = [
    0xf0f0, // EQ  Z
    0x0f0f, // NE  !Z
    0xcccc, // CS  C
    0x3333, // CC  !C
    0xff00, // MI  N
    0x00ff, // PL  !N
    0xaaaa, // VS  V
    0x5555, // VC  !V
    0x0c0c, // HI  C && !Z
    0xf3f3, // LS  !C || Z
    0xaa55, // GE  N == V
    0x55aa, // LT  N != V
    0x0a05, // GT  !Z && N == V
    0xf5fa, // LE  Z || N != V
    0xffff, // AL
    0xffff, // 0b1111: unconditional
];

#[test]
fn condition_codes_follow_the_architecture_table() {
    for cond in 0..16u8 {
        for nzcv in 0..16u8 {
            assert_eq!(
                aarch32::condition_holds(cond, nzcv),
                HOLDS[cond as usize] & (1 << nzcv) != 0,
                "cond {cond:#06b} with NZCV {nzcv:#06b}"
            );
        }
    }
}

#[test]
fn it_state_and_current_condition() {
    // ITSTATE = firstcond:mask. `ITTE NE` (firstcond 0b0001; mask T,E,end = 1,0,1,0):
    // conditions NE, NE, EQ, then the block ends.
    let mut it = 0x1a;
    let mut conds = vec![];
    while it != 0 {
        let spsr = aarch32::with_itstate(USR_T, it);
        assert_eq!(aarch32::itstate(spsr), it);
        // A T32 trap with CV = 0 takes its condition from the IT state.
        conds.push(aarch32::trapped_condition(0x1600_0000, spsr));
        it = aarch32::it_advance(it);
    }
    assert_eq!(conds, [0x1, 0x1, 0x0]);
    // `ITE EQ` (mask 1100): EQ then NE.
    assert_eq!(aarch32::it_advance(0x0c), 0x18);
    assert_eq!(aarch32::it_advance(0x18), 0x00);
    // Field placement: IT[1:0] in SPSR[26:25], IT[7:2] in SPSR[15:10].
    assert_eq!(aarch32::with_itstate(0, 0xff), (0x3f << 10) | (0b11 << 25));
    assert_eq!(aarch32::with_itstate(0, 0x01), 1 << 25);
    assert_eq!(aarch32::with_itstate(0, 0x04), 1 << 10);
    // Outside an IT block, and in A32: always; CV = 1: the reported COND.
    assert_eq!(aarch32::trapped_condition(0x1600_0000, USR_T), 0xe);
    assert_eq!(
        aarch32::trapped_condition(0x1600_0000, USR | (1 << 10)),
        0xe
    );
    assert_eq!(
        aarch32::trapped_condition(0x1710_0000, USR_T),
        0x1,
        "CV 1, COND NE"
    );
}

#[test]
fn advancing_an_aarch32_pc() {
    // A32: +4, wraps at 32 bits, IT bits untouched (zero in A32).
    assert_eq!(aarch32::advance(0x8000, USR, 4), (0x8004, USR));
    assert_eq!(aarch32::advance(0xffff_fffc, USR, 4), (0, USR));
    // T32 16-bit inside `ITT EQ` (ITSTATE 0x04) → 0x08 → 0.
    let s = aarch32::with_itstate(USR_T | (0b0100 << 28), 0x04);
    let (pc, s2) = aarch32::advance(0x9002, s, 2);
    assert_eq!((pc, aarch32::itstate(s2), s2 >> 28), (0x9004, 0x08, 0b0100));
    let (pc, s3) = aarch32::advance(pc, s2, 4);
    assert_eq!(
        (pc, aarch32::itstate(s3), s3),
        (0x9008, 0, USR_T | (0b0100 << 28))
    );
    // AArch64: plain add.
    let mut f = Aarch64ContextFrame::new_el1h(0x4008_0000);
    aarch32::step(&mut f, 4);
    assert_eq!(f.elr, 0x4008_0004);
    f.spsr = USR_T;
    f.elr = 0xffff_fffe;
    aarch32::step(&mut f, 2);
    assert_eq!(f.elr, 0);
}

#[test]
fn entry_into_aarch32_needs_the_cpu_and_the_view() {
    assert!(
        aarch32::entry_allowed(0x3c5, false, true),
        "AArch64 is never refused here"
    );
    assert!(aarch32::entry_allowed(USR, true, false));
    assert!(
        !aarch32::entry_allowed(USR, false, false),
        "CPU without AArch32 EL0"
    );
    assert!(
        !aarch32::entry_allowed(USR_T, true, true),
        "hidden by setup"
    );
    // A vCPU never bound knows no CPU with AArch32 EL0: the host's frame is refused
    // before the entry would be an illegal exception return at EL2.
    let mut v = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    v.setup(Aarch64VCpuSetupConfig::default()).unwrap();
    v.set_entry(0x4008_0000).unwrap();
    v.regs_mut().spsr = USR;
    assert_eq!(v.resolve_pending(), Err(VCpuError::Aarch32NotSupported));
    // A refused entry keeps what the last exit left pending, applied once later: an
    // A32 store to MMIO (advance 4), refused, then allowed.
    v.regs_mut().elr = 0x8000;
    let str_w = (0x24 << 26) | (1 << 25) | (1 << 24) | (2 << 22) | (1 << 6) | 0x07;
    assert!(matches!(
        exit(&mut v, str_w),
        Some(VmExit::MmioWrite { .. })
    ));
    assert_eq!(v.resolve_pending(), Err(VCpuError::Aarch32NotSupported));
    assert_eq!(v.pc(), 0x8000, "nothing applied");
    v.set_features_for_test(CpuFeatures {
        aarch32_el0: true,
        ..Default::default()
    });
    v.resolve_pending().unwrap();
    v.resolve_pending().unwrap();
    assert_eq!(v.pc(), 0x8004, "applied exactly once");
}

// ---------------------------------------------------------------------------------
// The table and its trap controls.
// ---------------------------------------------------------------------------------

#[test]
fn every_row_is_trapped_by_what_the_crate_sets() {
    use crate::sysreg::FeatureSet;
    use crate::traps::{compose, trapping, Inputs};
    for r in REGISTERS.iter() {
        for features in [FeatureSet::EMPTY, FeatureSet::ALL] {
            for passthrough_timer in [false, true] {
                let setup =
                    Aarch64VCpuSetupConfig::default().with_passthrough_timer(passthrough_timer);
                let v = compose(&Inputs {
                    features,
                    setup,
                    fp_trapped: true,
                    hpmn: 0,
                });
                let set = trapping(&v, features, r.trap.trap_id());
                // The EL1 physical timer traps exactly when it is emulated.
                let want = !(passthrough_timer && r.trap == TrapControl::CnthctlEl1pcen);
                assert_eq!(
                    set, want,
                    "{}: {:?} in the guest's controls (passthrough_timer {passthrough_timer})",
                    r.name, r.trap
                );
            }
        }
        // The DCC registers are the ones MDSCR_EL1.TDCC traps to EL1.
        if r.el1_trap == Some(El1Trap::MdscrTdcc) {
            assert!(
                matches!(r.trap, TrapControl::MdcrTda | TrapControl::MdcrTdra),
                "{}",
                r.name
            );
        }
        // The first row matching its own encoding is itself (no row is shadowed).
        let probe = match r.encoding {
            Encoding::Cp32 {
                cp,
                opc1,
                crn,
                crm,
                opc2,
            } => build::mcr(cp, opc1, crn, crm, opc2, 0, true, true, None),
            Encoding::Cp32Group {
                cp,
                opc1,
                crn,
                crm,
                opc2,
            } => build::mcr(cp, opc1.1, crn, crm.1, opc2.1, 0, true, true, None),
            Encoding::Cp64 { cp, opc1, crm } => build::mcrr(cp, opc1, crm, 0, 1, true, true, None),
            Encoding::LdcStc => build::ldc(0, 0, true, 0, true, None),
        };
        let a = Access::decode(probe).unwrap();
        assert_eq!(aarch32::lookup(&a).map(|x| x.name), Some(r.name));
    }
}

#[test]
fn the_emulated_registers_are_the_architected_el0_ones() {
    let names: Vec<_> = REGISTERS
        .iter()
        .filter(|r| matches!(r.treatment, Treatment::Emulated(_)))
        .map(|r| r.name)
        .collect();
    assert_eq!(
        names,
        [
            "CNTP_TVAL",
            "CNTP_CTL",
            "CNTP_CVAL",
            "DBGDIDR",
            "DBGDSCRint",
            "DBGDTRRXint/DBGDTRTXint",
            "DBGDRAR (32-bit)",
            "DBGDSAR (32-bit)",
            "DBGDRAR",
            "DBGDSAR"
        ]
    );
}

// ---------------------------------------------------------------------------------
// The handler.
// ---------------------------------------------------------------------------------

/// A VM view with ID_AA64DFR0_EL1 = Cortex-A53-like 0x1030_5106 (CTX_CMPs 1, WRPs 3,
/// BRPs 5, DebugVer 6) and ID_AA64PFR0_EL1.EL3 = `el3`.
fn ids(el3: u64) -> IdRegisters {
    let mut h = [0u64; ID_SPACE_LEN];
    h[idregs::ID_AA64DFR0] = 0x1030_5106;
    h[idregs::ID_AA64PFR0] = 0x2222 & !0xf000 | (el3 << 12);
    IdRegisters::sanitized(&h, false, 40)
}

fn frame(spsr: u64) -> Aarch64ContextFrame {
    let mut f = Aarch64ContextFrame::new_el1h(0x8000);
    f.spsr = spsr;
    for (n, r) in f.gpr.iter_mut().enumerate() {
        *r = 0xdead_0000_0000_0000 | n as u64;
    }
    f
}

struct Run {
    frame: Aarch64ContextFrame,
    timer: EmulatedTimer,
    result: Handled,
}

fn run(
    esr: u64,
    f: Aarch64ContextFrame,
    timer: EmulatedTimer,
    debug: DebugView,
    emulated_timer: bool,
) -> Run {
    let ids = ids(0);
    let cx = Context {
        emulated_timer,
        ids: &ids,
        debug,
    };
    let mut frame = f;
    let mut timer = timer;
    let result = aarch32::handle(esr, &mut frame, &mut timer, &cx, || 10_000);
    Run {
        frame,
        timer,
        result,
    }
}

#[test]
fn dbgdidr_comes_from_the_vm_view() {
    // WRPs 3 [31:28], BRPs 5 [27:24], CTX_CMPs 1 [23:20], Version 6 [19:16], RES1 [15].
    assert_eq!(aarch32::dbgdidr(&ids(0)), 0x3516_8000);
    // EL3 implemented: nSUHD_imp [14] and SE_imp [12].
    assert_eq!(aarch32::dbgdidr(&ids(1)), 0x3516_d000);
    // Through the handler into r0: 32 bits, PC past the MRC.
    let r = run(
        MRC_DBGDIDR_R0,
        frame(USR),
        EmulatedTimer::default(),
        DebugView::default(),
        true,
    );
    assert_eq!(r.result, Handled::Resume);
    assert_eq!(r.frame.gpr[0], 0x3516_8000, "upper half of x0 cleared");
    assert_eq!(
        r.frame.gpr[1], 0xdead_0000_0000_0001,
        "nothing else written"
    );
    assert_eq!((r.frame.elr, r.frame.spsr), (0x8004, USR));
    // MCR to it (read-only) is UNDEFINED.
    let w = MRC_DBGDIDR_R0 & !1;
    assert_eq!(
        run(
            w,
            frame(USR),
            EmulatedTimer::default(),
            DebugView::default(),
            true
        )
        .result,
        Handled::Undef
    );
}

#[test]
fn dbgdscrint_and_the_dcc() {
    let dbg = DebugView {
        mdscr: (1 << 15) | (0b1010 << 2),
        mdccsr: 1 << 30,
    };
    // RXfull [30], MDBGen [15], MOE [5:2], NS [18].
    assert_eq!(
        aarch32::dbgdscrint(&dbg),
        (1 << 30) | (1 << 18) | (1 << 15) | (0b1010 << 2)
    );
    // mrc p14, 0, r7, c0, c1, 0.
    let esr = build::mcr(14, 0, 0, 1, 0, 7, true, true, Some(0xe));
    let r = run(esr, frame(USR), EmulatedTimer::default(), dbg, true);
    assert_eq!((r.result, r.frame.gpr[7]), (Handled::Resume, 0x4004_8028));
    // mrc p14, 0, APSR_nzcv, c0, c1, 0: NZCV = DBGDSCRint[31:28] = 0b0100 (Z: RXfull).
    let esr = build::mcr(14, 0, 0, 1, 0, 15, true, true, Some(0xe));
    let r = run(
        esr,
        frame(USR | (0b1011 << 28)),
        EmulatedTimer::default(),
        dbg,
        true,
    );
    assert_eq!(
        (r.result, r.frame.spsr),
        (Handled::Resume, USR | (0b0100 << 28))
    );
    // Any MRC may target APSR_nzcv: DBGDIDR[31:28] = WRPs = 0b0011 (C, V).
    let esr = build::mcr(14, 0, 0, 0, 0, 15, true, true, Some(0xe));
    let r = run(
        esr,
        frame(USR | (0b1100 << 28)),
        EmulatedTimer::default(),
        dbg,
        true,
    );
    assert_eq!(
        (r.result, r.frame.spsr),
        (Handled::Resume, USR | (0b0011 << 28))
    );
    // R15 in the AArch64 view (0b11111, as QEMU reports it): the same.
    let esr = build::mcr(14, 0, 0, 0, 0, 31, true, true, Some(0xe));
    let r = run(
        esr,
        frame(USR | (0b1100 << 28)),
        EmulatedTimer::default(),
        dbg,
        true,
    );
    assert_eq!(
        (r.result, r.frame.spsr),
        (Handled::Resume, USR | (0b0011 << 28))
    );
    // MCR from R15 is UNPREDICTABLE: UNDEFINED here.
    let esr = build::mcr(14, 0, 0, 5, 0, 15, false, true, Some(0xe));
    assert_eq!(
        run(esr, frame(USR), EmulatedTimer::default(), dbg, true).result,
        Handled::Undef
    );
    // DBGDTRRXint reads 0; DBGDTRTXint (MCR, same encoding) ignores the write.
    let esr = build::mcr(14, 0, 0, 5, 0, 2, true, true, Some(0xe));
    let r = run(esr, frame(USR), EmulatedTimer::default(), dbg, true);
    assert_eq!((r.result, r.frame.gpr[2]), (Handled::Resume, 0));
    let r = run(esr & !1, frame(USR), EmulatedTimer::default(), dbg, true);
    assert_eq!(
        (r.result, r.frame.gpr[2], r.frame.elr),
        (Handled::Resume, 0xdead_0000_0000_0002, 0x8004)
    );
    // DBGDRAR (mrrc p14, 0, r0, r1, c1) and DBGDSAR (mrc p14, 0, r3, c2, c0, 0) RAZ.
    let esr = build::mcrr(14, 0, 1, 0, 1, true, true, Some(0xe));
    let r = run(esr, frame(USR), EmulatedTimer::default(), dbg, true);
    assert_eq!(
        (r.result, r.frame.gpr[0], r.frame.gpr[1]),
        (Handled::Resume, 0, 0)
    );
    let esr = build::mcr(14, 0, 2, 0, 0, 3, true, true, Some(0xe));
    assert_eq!(
        run(esr, frame(USR), EmulatedTimer::default(), dbg, true)
            .frame
            .gpr[3],
        0
    );
    // LDC/STC: not emulated (guest virtual addresses), UNDEFINED.
    assert_eq!(
        run(STC_DTR_R2, frame(USR), EmulatedTimer::default(), dbg, true).result,
        Handled::Undef
    );
}

#[test]
fn mdscr_tdcc_traps_the_dcc_to_el1_with_the_same_syndrome() {
    let tdcc = DebugView {
        mdscr: 1 << 12,
        mdccsr: 0,
    };
    for esr in [
        MRC_DBGDIDR_R0,
        build::mcr(14, 0, 0, 1, 0, 7, true, true, Some(0xe)),
        build::mcr(14, 0, 0, 5, 0, 7, false, false, None),
        build::mcrr(14, 0, 2, 0, 1, true, true, Some(0xe)),
        STC_DTR_R2,
    ] {
        let r = run(esr, frame(USR), EmulatedTimer::default(), tdcc, true);
        assert_eq!(
            r.result,
            Handled::Inject(Injection::Trap { esr: esr as u32 }),
            "{esr:#x}"
        );
        assert_eq!(r.frame.elr, 0x8000, "not completed");
    }
    // The timer is not a DCC register.
    let r = run(
        MRC_CNTP_CTL_R3,
        frame(USR),
        EmulatedTimer::default(),
        tdcc,
        true,
    );
    assert_eq!(r.result, Handled::Resume);
    // Taken to EL1 from AArch32 EL0: VBAR + 0x600, ESR_EL1 = the trap's syndrome.
    let s = GuestState {
        pstate: USR,
        pc: 0x8000,
        vbar_el1: VBAR,
        sctlr_el1: 0,
    };
    let e = enter(
        &s,
        &Injection::Trap {
            esr: MRC_DBGDIDR_R0 as u32,
        },
    )
    .unwrap();
    assert_eq!(
        (e.pc, e.esr_el1, e.elr_el1, e.spsr_el1),
        (VBAR + 0x600, MRC_DBGDIDR_R0, 0x8000, USR)
    );
}

#[test]
fn cp15_physical_timer_views() {
    let dbg = DebugView::default();
    // mcrr p15, 2, r4, r5, c14: CVAL = r5:r4 (32 bits each).
    let mut f = frame(USR);
    f.gpr[4] = 0xffff_ffff_0000_2710; // low word 10_000 + junk above
    f.gpr[5] = 0xffff_ffff_0000_0001;
    let r = run(
        MRRC_CNTP_CVAL_R4_R5 & !1,
        f,
        EmulatedTimer::default(),
        dbg,
        true,
    );
    assert_eq!((r.result, r.timer.cval), (Handled::Resume, 0x1_0000_2710));
    // mrrc back into r4, r5.
    let r = run(MRRC_CNTP_CVAL_R4_R5, frame(USR), r.timer, dbg, true);
    assert_eq!((r.frame.gpr[4], r.frame.gpr[5]), (0x2710, 0x1));
    // CNTP_CTL write (ENABLE) then read at count 10_000 (now ≥ CVAL 9_000): ISTATUS.
    let t = EmulatedTimer {
        ctl: 0,
        cval: 9_000,
    };
    let mut f = frame(USR);
    f.gpr[3] = 0xffff_ffff_0000_0001;
    let esr_w = MRC_CNTP_CTL_R3 & !1;
    let r = run(esr_w, f, t, dbg, true);
    assert_eq!(r.timer.ctl, ctl::ENABLE);
    let r = run(MRC_CNTP_CTL_R3, frame(USR), r.timer, dbg, true);
    assert_eq!(r.frame.gpr[3], ctl::ENABLE | ctl::ISTATUS);
    // CNTP_TVAL read: CVAL − now as 32 bits, zero-extended (no sign in [63:32]).
    let tval_r1 = build::mcr(15, 0, 14, 2, 0, 1, true, true, Some(0xe));
    let r = run(tval_r1, frame(USR), t, dbg, true);
    assert_eq!(r.frame.gpr[1], (-1000i32) as u32 as u64);
    // CNTP_TVAL write of -1 (0xffff_ffff): CVAL = now − 1, sign-extended from 32 bits.
    let mut f = frame(USR);
    f.gpr[1] = 0xffff_ffff;
    let r = run(tval_r1 & !1, f, t, dbg, true);
    assert_eq!(r.timer.cval, 9_999);
    // The same timer answers the AArch64 view.
    assert_eq!(r.timer.read(timer::CNTP_CVAL_EL0, 0), 9_999);
    // With the timer passed through, a trap is not the crate's: UNDEF.
    assert_eq!(
        run(MRC_CNTP_CTL_R3, frame(USR), t, dbg, false).result,
        Handled::Undef
    );
    // MRRC with Rt = Rt2, or Rt = PC: UNPREDICTABLE, UNDEFINED here.
    assert_eq!(
        run(
            build::mcrr(15, 2, 14, 4, 4, true, true, None),
            frame(USR),
            t,
            dbg,
            true
        )
        .result,
        Handled::Undef
    );
    assert_eq!(
        run(
            build::mcrr(15, 2, 14, 15, 4, false, true, None),
            frame(USR),
            t,
            dbg,
            true
        )
        .result,
        Handled::Undef
    );
}

#[test]
fn conditional_instructions_that_fail_are_skipped() {
    let dbg = DebugView::default();
    // mrcne p14, 0, r0, c0, c0, 0 with Z set: fails; r0 untouched, PC + 4.
    let esr = build::mcr(14, 0, 0, 0, 0, 0, true, true, Some(0x1));
    let r = run(
        esr,
        frame(USR | (0b0100 << 28)),
        EmulatedTimer::default(),
        dbg,
        true,
    );
    assert_eq!(
        (r.result, r.frame.gpr[0], r.frame.elr),
        (Handled::Resume, 0xdead_0000_0000_0000, 0x8004)
    );
    // ... and with Z clear it executes.
    let r = run(esr, frame(USR), EmulatedTimer::default(), dbg, true);
    assert_eq!(r.frame.gpr[0], 0x3516_8000);
    // A failing conditional access to a register that would UNDEF is skipped, not UNDEF.
    let pmcr = build::mcr(15, 0, 9, 12, 0, 0, true, true, Some(0x0));
    assert_eq!(
        run(pmcr, frame(USR), EmulatedTimer::default(), dbg, true).result,
        Handled::Resume
    );
    // T32 in an IT block with CV = 0: condition from ITSTATE ("ITE EQ", second slot:
    // NE) with Z set: skipped, and the IT state advances (block ends).
    let spsr = aarch32::with_itstate(USR_T | (0b0100 << 28), 0x18);
    let esr = build::mcr(14, 0, 0, 0, 0, 0, true, true, None);
    let r = run(esr, frame(spsr), EmulatedTimer::default(), dbg, true);
    assert_eq!(r.result, Handled::Resume);
    assert_eq!(
        (r.frame.gpr[0], r.frame.elr, r.frame.spsr),
        (0xdead_0000_0000_0000, 0x8004, USR_T | (0b0100 << 28))
    );
    // First slot (EQ) passes and executes; the IT state advances to the second slot.
    let spsr = aarch32::with_itstate(USR_T | (0b0100 << 28), 0x0c);
    let r = run(esr, frame(spsr), EmulatedTimer::default(), dbg, true);
    assert_eq!(
        (r.frame.gpr[0], aarch32::itstate(r.frame.spsr)),
        (0x3516_8000, 0x18)
    );
    // FP/SIMD (EC 0x07) that fails its condition is skipped without loading anything;
    // one that passes goes to the lazy FP path.
    let fp = |cond| build::header(0x07, true, Some(cond));
    assert_eq!(
        run(fp(0x0), frame(USR), EmulatedTimer::default(), dbg, true).result,
        Handled::Resume
    );
    assert_eq!(
        run(fp(0xe), frame(USR), EmulatedTimer::default(), dbg, true).result,
        Handled::Pass
    );
    // Aborts and WFx are not coprocessor traps.
    assert_eq!(
        run(0x9200_0010, frame(USR), EmulatedTimer::default(), dbg, true).result,
        Handled::Pass
    );
    assert_eq!(
        run(0x05e0_0000, frame(USR), EmulatedTimer::default(), dbg, true).result,
        Handled::Pass
    );
}

#[test]
fn everything_else_is_undefined() {
    let dbg = DebugView::default();
    for (what, esr) in [
        (
            "PMCR (mrc p15, 0, r0, c9, c12, 0)",
            build::mcr(15, 0, 9, 12, 0, 0, true, true, Some(0xe)),
        ),
        (
            "PMCCNTR 64-bit (mrrc p15, 0, r0, r1, c9)",
            build::mcrr(15, 0, 9, 0, 1, true, true, Some(0xe)),
        ),
        (
            "IMPDEF (mrc p15, 1, r0, c15, c0, 0)",
            build::mcr(15, 1, 15, 0, 0, 0, true, true, Some(0xe)),
        ),
        (
            "unknown p15 (mcr p15, 0, r0, c1, c0, 0: SCTLR)",
            build::mcr(15, 0, 1, 0, 0, 0, false, true, Some(0xe)),
        ),
        (
            "unknown p14 (mrc p14, 0, r0, c0, c2, 2: DBGDTRRXext)",
            build::mcr(14, 0, 0, 2, 2, 0, true, true, Some(0xe)),
        ),
        (
            "trace (mrc p14, 1, r0, c0, c2, 0)",
            build::mcr(14, 1, 0, 2, 0, 0, true, true, Some(0xe)),
        ),
        (
            "mcrr p14 (DBGDRAR is read-only)",
            build::mcrr(14, 0, 1, 0, 1, false, true, Some(0xe)),
        ),
    ] {
        let r = run(esr, frame(USR), EmulatedTimer::default(), dbg, true);
        assert_eq!(r.result, Handled::Undef, "{what}");
        assert_eq!(r.frame, frame(USR), "{what}: frame untouched");
    }
}

proptest! {
    #[test]
    fn mcr_syndromes_round_trip(cp in prop::sample::select(vec![14u8, 15]), opc1 in 0u8..8, crn in 0u8..16,
                                crm in 0u8..16, opc2 in 0u8..8, rt in 0u8..16, read: bool, il: bool,
                                cond in prop::option::of(0u8..16)) {
        let esr = build::mcr(cp, opc1, crn, crm, opc2, rt, read, il, cond);
        let i = CpRtIss::decode(esr);
        prop_assert_eq!((i.opc1, i.crn, i.crm, i.opc2, i.rt, i.read), (opc1, crn, crm, opc2, rt, read));
        prop_assert_eq!(i.cv, cond.is_some());
        prop_assert_eq!(esr::instruction_length(esr), if il { 4 } else { 2 });
    }

    #[test]
    fn mcrr_syndromes_round_trip(opc1 in 0u8..16, crm in 0u8..16, rt in 0u8..16, rt2 in 0u8..16, read: bool) {
        let i = CpRrtIss::decode(build::mcrr(15, opc1, crm, rt, rt2, read, true, Some(0xe)));
        prop_assert_eq!((i.opc1, i.crm, i.rt, i.rt2, i.read), (opc1, crm, rt, rt2, read));
    }

    #[test]
    fn itstate_round_trips(spsr: u32, it: u8) {
        let s = aarch32::with_itstate(spsr as u64, it);
        prop_assert_eq!(aarch32::itstate(s), it);
        prop_assert_eq!(s & !(psr::IT_HI | psr::IT_LO), spsr as u64 & !(psr::IT_HI | psr::IT_LO));
    }

    /// Any syndrome from any AArch32 state: the handler never panics, and never
    /// writes a register outside R0..R14 or moves the PC by anything but 0, 2 or 4.
    #[test]
    fn any_aarch32_syndrome_is_safe(esr: u32, spsr: u32, mdscr: u64) {
        let spsr = (spsr as u64 & !0x1f) | USR;
        let before = frame(spsr);
        let r = run(esr as u64, before, EmulatedTimer::default(), DebugView { mdscr, mdccsr: 0 }, true);
        prop_assert_eq!(&r.frame.gpr[15..], &before.gpr[15..]);
        let moved = r.frame.elr.wrapping_sub(before.elr);
        prop_assert!(moved == 0 || moved == 2 || moved == 4);
    }
}

use crate::esr;

// ---------------------------------------------------------------------------------
// Injection into AArch32 EL0 and the vCPU glue.
// ---------------------------------------------------------------------------------

#[test]
fn undef_and_aborts_into_aarch32_el0() {
    // (what, PSTATE at the instruction, injection, ESR_EL1, FAR_EL1)
    let a32 = USR | (0b1001 << 28) | (0xa << 16); // NV set, GE = 0b1010
    let t32_it = aarch32::with_itstate(USR_T | (0b0010 << 28), 0x1a); // C set, in an IT block
    #[rustfmt::skip]
    let cases: &[(&str, u64, Injection, u64, Option<u64>)] = &[
        ("UNDEF from A32", a32, Injection::Undef, 0x0200_0000, None),
        // IL = 1 for EC 0x00 whatever the instruction's length (16-bit T32 too).
        ("UNDEF from T32 in an IT block", t32_it, Injection::Undef, 0x0200_0000, None),
        ("data abort, read, from A32", a32,
            Injection::DataAbort { va: 0x1_0c00_0004, write: false, dfsc: 0x10 }, 0x9200_0010, Some(0x0c00_0004)),
        ("data abort, write, from T32", t32_it,
            Injection::DataAbort { va: 0x0c00_0008, write: true, dfsc: 0x10 }, 0x9200_0050, Some(0x0c00_0008)),
        ("instruction abort from T32", USR_T,
            Injection::InstructionAbort { va: 0x0d00_0002, ifsc: 0x10 }, 0x8200_0010, Some(0x0d00_0002)),
    ];
    for &(what, pstate, inj, esr, far) in cases {
        let s = GuestState {
            pstate,
            pc: 0xffff_ffff_8000_1002,
            vbar_el1: VBAR | 0x7ff,
            sctlr_el1: 0,
        };
        let e = enter(&s, &inj).unwrap();
        assert_eq!(e.pc, VBAR + 0x600, "{what}: lower EL using AArch32");
        assert_eq!((e.esr_el1, e.far_el1), (esr, far), "{what}");
        assert_eq!(e.elr_el1, 0x8000_1002, "{what}: ELR_EL1 = the 32-bit PC");
        assert_eq!(
            e.spsr_el1, pstate,
            "{what}: SPSR_EL1 keeps M[4], T, IT, GE, NZCV"
        );
        // EL1h, D/A/I/F masked, NZCV kept, AArch64 (no T/IT/GE), PAN set (SPAN = 0).
        assert_eq!(
            e.pstate,
            (pstate & psr::NZCV) | 0x3c5 | (1 << 22),
            "{what}: new PSTATE"
        );
    }
}

fn aarch32_vcpu(setup: Aarch64VCpuSetupConfig) -> Aarch64VCpu {
    let mut v = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    v.setup(setup).unwrap();
    // As if last bound to a core with AArch32 at EL0.
    v.set_features_for_test(CpuFeatures {
        aarch32_el0: true,
        ..Default::default()
    });
    v.set_entry(0x4008_0000).unwrap();
    let f = v.regs_mut();
    f.spsr = USR_T | (0b0110 << 28);
    f.elr = 0x0001_0004;
    v
}

fn exit(v: &mut Aarch64VCpu, esr: u64) -> Option<VmExit> {
    v.handle_sync_exit(&Syndrome {
        esr,
        far: 0x0c00_0000,
        hpfar: 0x0c00_0000 >> 8,
    })
}

#[test]
fn aarch32_traps_through_a_vcpu() {
    // An emulated register (DBGDIDR; never bound: the view is empty, RES1 bit 15).
    let mut v = aarch32_vcpu(Aarch64VCpuSetupConfig::default());
    assert_eq!(exit(&mut v, MRC_DBGDIDR_R0), None);
    assert_eq!((v.gpr(0), v.pc()), (Some(0x8000), 0x0001_0008));
    // An access nobody emulates: UNDEF into AArch32 EL0.
    let spsr = v.regs().spsr;
    assert_eq!(
        exit(&mut v, build::mcr(15, 0, 9, 12, 0, 2, true, true, None)),
        None
    );
    let r = v.system_registers();
    assert_eq!(
        (r.esr_el1, r.elr_el1, r.spsr_el1),
        (0x0200_0000, 0x0001_0008, spsr)
    );
    assert_eq!((v.pc(), v.regs().spsr), (0x600, (0b0110 << 28) | 0x3c5));
    // The host asked for the exits: it gets the trap, PC at the instruction.
    let mut v = aarch32_vcpu(Aarch64VCpuSetupConfig {
        unhandled_traps: TrapPolicy::ExitToHost,
        ..Default::default()
    });
    let pmcr = build::mcr(15, 0, 9, 12, 0, 2, true, true, None);
    assert_eq!(
        exit(&mut v, pmcr),
        Some(VmExit::Unhandled {
            esr: pmcr,
            class: Some(crate::esr::ExceptionClass::Mcr15)
        })
    );
    assert_eq!(v.pc(), 0x0001_0004);
    // A class the crate has no use for (e.g. an SVC32 routed here): never fatal by
    // default, UNDEF.
    let mut v = aarch32_vcpu(Aarch64VCpuSetupConfig::default());
    assert_eq!(exit(&mut v, 0x4600_0000), None);
    assert_eq!(v.pc(), 0x600);
    // TDCC set by the guest: the DCC access goes to EL1 as EC 0x05.
    let mut v = aarch32_vcpu(Aarch64VCpuSetupConfig::default());
    // The guest's MSR MDSCR_EL1 at EL1 loads its debug state and runs again on the
    // hardware (lazy debug), which a host test cannot do: set what it leaves.
    v.test_set_guest_mdscr(1 << 12);
    v.regs_mut().spsr = USR;
    v.regs_mut().elr = 0x0001_0004;
    assert_eq!(exit(&mut v, MRC_DBGDIDR_R0), None);
    assert_eq!(
        (v.system_registers().esr_el1, v.pc()),
        (MRC_DBGDIDR_R0, 0x600)
    );
}

#[test]
fn lazy_fp_from_aarch32() {
    let mut v = aarch32_vcpu(Aarch64VCpuSetupConfig::default());
    assert!(!v.fp_loaded());
    assert_eq!(exit(&mut v, build::header(0x07, true, Some(0xe))), None);
    assert!(v.fp_loaded(), "loaded, instruction re-executed");
    assert_eq!(v.pc(), 0x0001_0004);
}

#[test]
fn mmio_from_aarch32_advances_like_the_instruction() {
    // T32 16-bit `strh r2, [r1]` (IL = 0, ISV = 1, SAS = 1, SRT = 2) in an `ITT` block.
    let mut v = aarch32_vcpu(Aarch64VCpuSetupConfig::default());
    let it = aarch32::with_itstate(USR_T | (0b0110 << 28), 0x04);
    v.regs_mut().spsr = it;
    v.set_gpr(2, 0xffff_ffff_1234_abcd).unwrap();
    let strh = (0x24 << 26) | (1 << 24) | (1 << 22) | (2 << 16) | (1 << 6) | 0x07;
    assert_eq!(
        exit(&mut v, strh),
        Some(VmExit::MmioWrite {
            addr: 0x0c00_0000,
            width: AccessWidth::Half,
            data: 0xabcd
        })
    );
    v.resolve_pending().unwrap();
    assert_eq!(
        (v.pc(), aarch32::itstate(v.regs().spsr)),
        (0x0001_0006, 0x08)
    );
    // A32 `ldrsh r3, [r1]` (IL = 1, SSE, SF = 0): sign-extended to 32 bits only.
    let mut v = aarch32_vcpu(Aarch64VCpuSetupConfig::default());
    v.regs_mut().spsr = USR;
    let ldrsh = (0x24 << 26) | (1 << 25) | (1 << 24) | (1 << 22) | (1 << 21) | (3 << 16) | 0x07;
    assert!(matches!(
        exit(&mut v, ldrsh),
        Some(VmExit::MmioRead {
            reg: 3,
            reg_64bit: false,
            ..
        })
    ));
    v.complete_mmio_read(0x8001).unwrap();
    assert_eq!((v.gpr(3), v.pc()), (Some(0xffff_8001), 0x0001_0008));
    // T32 16-bit `ldrsh r3, [r1, r2]` (IL = 0) as the first slot of `ITE EQ` (0x0c):
    // the completed load moves the IT state to the second slot (0x18).
    let mut v = aarch32_vcpu(Aarch64VCpuSetupConfig::default());
    v.regs_mut().spsr = aarch32::with_itstate(USR_T | (0b0100 << 28), 0x0c);
    let ldrsh16 = ldrsh & !(1 << 25);
    assert!(matches!(
        exit(&mut v, ldrsh16),
        Some(VmExit::MmioRead { reg: 3, .. })
    ));
    v.complete_mmio_read(0x7f01).unwrap();
    assert_eq!((v.gpr(3), v.pc()), (Some(0x7f01), 0x0001_0006));
    assert_eq!(aarch32::itstate(v.regs().spsr), 0x18);
}

#[test]
fn aborts_injected_into_aarch32_el0_through_a_vcpu() {
    let mut v = aarch32_vcpu(Aarch64VCpuSetupConfig::default());
    v.inject_data_abort(0xffff_ffff_0c00_0010, true).unwrap();
    let r = *v.system_registers();
    assert_eq!(
        (r.esr_el1, r.far_el1, r.elr_el1),
        (0x9200_0050, 0x0c00_0010, 0x0001_0004)
    );
    assert_eq!(r.spsr_el1, USR_T | (0b0110 << 28));
    assert_eq!(v.pc(), 0x600);
    let mut v = aarch32_vcpu(Aarch64VCpuSetupConfig::default());
    v.inject_instruction_abort(0x0d00_0000).unwrap();
    assert_eq!(
        (v.system_registers().esr_el1, v.system_registers().far_el1),
        (0x8200_0010, 0x0d00_0000)
    );
}

#[test]
fn hiding_aarch32_el0() {
    let mut host = [0x1111_1111u64; ID_SPACE_LEN];
    host[idregs::ID_AA64PFR0] = 0x0000_0000_0100_2222; // EL0..EL3 AArch64+AArch32, GIC
    let shown = IdRegisters::sanitized(&host, false, 40);
    let hidden = shown.without_aarch32_el0();
    let pfr0 = |ids: &IdRegisters| ids.read(SysRegAddr::ID_AA64PFR0_EL1).unwrap();
    assert_eq!(
        pfr0(&shown) & 0xff,
        0x12,
        "default follows the CPU (EL1 AArch64-only)"
    );
    assert_eq!(pfr0(&hidden) & 0xff, 0x11, "EL0 AArch64-only");
    assert_eq!(
        pfr0(&hidden) & !0xf,
        pfr0(&shown) & !0xf,
        "nothing else in PFR0"
    );
    for i in 0..ID_SPACE_LEN {
        let e = idregs::encoding(i);
        let v = hidden.read(e).unwrap();
        if e.crm() <= 3 {
            assert_eq!(
                v,
                0,
                "AArch32 ID register CRm {} op2 {} reads 0",
                e.crm(),
                e.op2()
            );
        } else if i != idregs::ID_AA64PFR0 {
            assert_eq!(v, shown.values()[i], "AArch64 ID registers unchanged");
        }
    }
    // A CPU without AArch32 EL0: nothing to change in PFR0.
    let mut host64 = host;
    host64[idregs::ID_AA64PFR0] = 0x1111;
    let v = IdRegisters::sanitized(&host64, false, 40).without_aarch32_el0();
    assert_eq!(pfr0(&v) & 0xf, 1);
    // A vCPU that hides it and finds its guest in AArch32 EL0 anyway: the Illegal
    // Execution state exception a CPU without AArch32 would have given at EL1.
    let mut v = aarch32_vcpu(Aarch64VCpuSetupConfig {
        hide_aarch32_el0: true,
        ..Default::default()
    });
    assert_eq!(exit(&mut v, MRC_DBGDIDR_R0), None);
    let r = v.system_registers();
    assert_eq!(r.esr_el1, 0x3a00_0000, "EC 0x0E, IL 1");
    assert_eq!(r.elr_el1, 0x0001_0004);
    assert_eq!(
        r.spsr_el1,
        (0b0110 << 28) | (1 << 20) | 0b0101,
        "EL1h with PSTATE.IL"
    );
    assert_eq!(v.pc(), 0x200);
    assert_eq!(v.gpr(0), Some(0), "the access was not emulated");
}

#[test]
fn virtual_serror_is_not_refused_in_aarch32() {
    // inject_serror needs a bound vCPU; unbound it says so, never "AArch32".
    let mut v = aarch32_vcpu(Aarch64VCpuSetupConfig::default());
    assert_eq!(v.inject_serror(0), Err(VCpuError::NotBound));
}

#[test]
fn cpu_features_know_aarch32_el0() {
    let f = CpuFeatures::from_id_registers(0, 0, 0, 0, 0x2222, 0, 0);
    assert!(f.aarch32_el0);
    let f = CpuFeatures::from_id_registers(0, 0, 0, 0, 0x1111, 0, 0);
    assert!(!f.aarch32_el0);
}

#[test]
fn injected_timer_syndromes_use_the_same_registers_as_aarch64() {
    for r in REGISTERS.iter() {
        if let Treatment::Emulated(aarch32::Emulation::Timer(reg)) = r.treatment {
            assert!(EmulatedTimer::handles(reg), "{}", r.name);
        }
    }
    let _ = Encoding::LdcStc;
}

#[test]
fn trapped_wfi_from_t32_advances_the_it_state() {
    // T32 16-bit `wfieq` (IL = 0, EC 0x01, TI = 0) as the first slot of `ITT EQ`.
    let mut v = aarch32_vcpu(Aarch64VCpuSetupConfig {
        trap_wfi: true,
        ..Default::default()
    });
    v.regs_mut().spsr = aarch32::with_itstate(USR_T | (0b0100 << 28), 0x04);
    v.resolve_pending().unwrap();
    let wfi = (0x01 << 26) | (1 << 24) | (0xe << 20);
    assert_eq!(exit(&mut v, wfi), Some(VmExit::WaitForInterrupt));
    v.resolve_pending().unwrap();
    assert_eq!(
        (v.pc(), aarch32::itstate(v.regs().spsr)),
        (0x0001_0006, 0x08)
    );
}
