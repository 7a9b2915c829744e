//! Host tests of self-hosted debug (`crate::debug`): the counts the ID view gives, the
//! register decoding, the lazy-switch decisions, the emulated OS lock, and the
//! software-step rule for every instruction the crate or the host completes.

use crate::debug::*;
use crate::esr::{build, Syndrome};
use crate::exit::Pending;
use crate::idregs::{IdRegisters, ID_AA64DFR0, ID_AA64DFR1, ID_SPACE_LEN};
use crate::*;

/// `ID_AA64DFR0_EL1` of a Cortex-A53/A57/A72 (their TRMs): DebugVer 6 (v8.0), PMUVer
/// 1, BRPs 5 (6 breakpoints), WRPs 3 (4 watchpoints), CTX_CMPs 1 (2 context-aware).
const DFR0_A53: u64 = 0x0000_0000_1030_5106;

fn sys(reg: SysRegAddr, rt: u8, read: bool) -> Syndrome {
    Syndrome {
        esr: build::sysreg(
            reg.op0(),
            reg.op1(),
            reg.crn(),
            reg.crm(),
            reg.op2(),
            rt,
            read,
        ),
        ..Default::default()
    }
}

/// A switch as bind leaves it for a VM shown `dfr0`, on a core with every probed
/// register.
fn switch(dfr0: u64) -> DebugSwitch {
    let mut d = DebugSwitch::default();
    d.set_view(
        DebugView::from_dfr0(dfr0),
        DebugCaps {
            claim_bits: 0xff,
            dtr: true,
            mdccint: true,
        },
    );
    d.bind(0x13); // HPMN
    d
}

#[test]
fn counts_come_from_id_aa64dfr0() {
    assert_eq!(
        Counts::from_dfr0(DFR0_A53),
        Counts {
            brps: 6,
            wrps: 4,
            ctx_cmps: 2
        }
    );
    // The fields hold "number - 1": 0 is one, 0xf is sixteen.
    assert_eq!(
        Counts::from_dfr0(0),
        Counts {
            brps: 1,
            wrps: 1,
            ctx_cmps: 1
        }
    );
    assert_eq!(
        Counts::from_dfr0(0xf0f0_f000),
        Counts {
            brps: 16,
            wrps: 16,
            ctx_cmps: 16
        }
    );
    // DoubleLock [39:36]: 0 = implemented, 0xf = not.
    assert!(DebugView::from_dfr0(DFR0_A53).double_lock);
    assert!(!DebugView::from_dfr0(DFR0_A53 | 0xf << 36).double_lock);
}

#[test]
fn the_id_view_shows_what_is_switched() {
    // Armv8.9 debug (breakpoint banks beyond 16, MDSELR_EL1) is capped at v8.8, and
    // so is every value above it (DebugVer is unsigned; the Arm ARM reserves them);
    // older versions stay. PMUVer [11:8] is the PMU's (hidden: its registers trap).
    assert_eq!(id_view(0x1030_500b, 0).0, 0x1030_500a);
    assert_eq!(id_view(0x1030_500f, 0).0, 0x1030_500a);
    assert_eq!(id_view(0x1030_5009, 0).0, 0x1030_5009);
    assert_eq!(id_view(DFR0_A53, 0).0, DFR0_A53 & !(0xf << 8));
    // ID_AA64DFR1_EL1 reads 0: the extended BRPs/WRPs/CTX_CMPs, ABLE, ABL_CMPs (not
    // switched), and SYSPMUID, SPMU, PMICNTR, ITE, EBEP, DPFZS (features not offered).
    let dfr1 = 0xffff_ffff_ffff_ffff;
    assert_eq!(id_view(0, dfr1).1, 0);
    // Through the sanitized view: the counts a VM sees are the host's.
    let mut host = [0u64; ID_SPACE_LEN];
    host[ID_AA64DFR0] = DFR0_A53;
    host[ID_AA64DFR1] = 0x0000_0000_0f0f_0f00;
    let ids = IdRegisters::sanitized(&host, false, 40);
    let dfr0 = ids.values()[ID_AA64DFR0];
    assert_eq!(Counts::from_dfr0(dfr0), Counts::from_dfr0(DFR0_A53));
    assert_eq!(ids.values()[ID_AA64DFR1], 0);
}

const ALL: &[DebugReg] = &[
    DebugReg::OsDtrRx,
    DebugReg::Mdccint,
    DebugReg::Mdscr,
    DebugReg::OsDtrTx,
    DebugReg::OsEccr,
    DebugReg::Mdrar,
    DebugReg::OsLar,
    DebugReg::OsLsr,
    DebugReg::OsDlr,
    DebugReg::DbgPrcr,
    DebugReg::ClaimSet,
    DebugReg::ClaimClr,
    DebugReg::AuthStatus,
    DebugReg::Mdccsr,
    DebugReg::DbgDtr,
    DebugReg::DtrRxTx,
];

/// (op0, op1, CRn, CRm, op2).
type Enc = (u8, u8, u8, u8, u8);

#[test]
fn debug_registers_decode_from_their_arm_arm_encodings() {
    // (op0, op1, CRn, CRm, op2) from DDI 0487 D23.3.
    #[rustfmt::skip]
    let table: &[(DebugReg, Enc)] = &[
        (DebugReg::Bvr(0), (2, 0, 0, 0, 4)), (DebugReg::Bcr(5), (2, 0, 0, 5, 5)),
        (DebugReg::Wvr(3), (2, 0, 0, 3, 6)), (DebugReg::Wcr(15), (2, 0, 0, 15, 7)),
        (DebugReg::OsDtrRx, (2, 0, 0, 0, 2)), (DebugReg::Mdccint, (2, 0, 0, 2, 0)),
        (DebugReg::Mdscr, (2, 0, 0, 2, 2)), (DebugReg::OsDtrTx, (2, 0, 0, 3, 2)),
        (DebugReg::OsEccr, (2, 0, 0, 6, 2)), (DebugReg::Mdrar, (2, 0, 1, 0, 0)),
        (DebugReg::OsLar, (2, 0, 1, 0, 4)), (DebugReg::OsLsr, (2, 0, 1, 1, 4)),
        (DebugReg::OsDlr, (2, 0, 1, 3, 4)), (DebugReg::DbgPrcr, (2, 0, 1, 4, 4)),
        (DebugReg::ClaimSet, (2, 0, 7, 8, 6)), (DebugReg::ClaimClr, (2, 0, 7, 9, 6)),
        (DebugReg::AuthStatus, (2, 0, 7, 14, 6)), (DebugReg::Mdccsr, (2, 3, 0, 1, 0)),
        (DebugReg::DbgDtr, (2, 3, 0, 4, 0)), (DebugReg::DtrRxTx, (2, 3, 0, 5, 0)),
    ];
    for &(r, (op0, op1, crn, crm, op2)) in table {
        let enc = SysRegAddr::new(op0, op1, crn, crm, op2);
        assert_eq!(DebugReg::decode(enc), Some(r), "{r:?}");
        assert_eq!(r.encoding(), enc, "{r:?}");
    }
    for n in 0..16 {
        for r in [
            DebugReg::Bvr(n),
            DebugReg::Bcr(n),
            DebugReg::Wvr(n),
            DebugReg::Wcr(n),
        ] {
            assert_eq!(DebugReg::decode(r.encoding()), Some(r));
        }
    }
    for &r in ALL {
        assert_eq!(DebugReg::decode(r.encoding()), Some(r));
    }
    // Not debug registers: trace (op1 1), DBGVCR32_EL2 (an EL2 register), MDSELR_EL1
    // (FEAT_Debugv8p9, hidden), op0 3.
    for enc in [
        SysRegAddr::new(2, 1, 0, 0, 0),
        SysRegAddr::new(2, 4, 0, 7, 0),
        SysRegAddr::new(2, 0, 0, 4, 2),
        SysRegAddr::new(3, 0, 0, 2, 2),
    ] {
        assert_eq!(DebugReg::decode(enc), None, "{enc:?}");
    }
    // Which trap control catches what (MDCR_EL2.TDOSA, .TDRA, .TDA).
    for &r in ALL {
        let want = match r {
            DebugReg::OsLar | DebugReg::OsLsr | DebugReg::OsDlr | DebugReg::DbgPrcr => {
                Group::OsLock
            }
            DebugReg::Mdrar => Group::Rom,
            _ => Group::Switched,
        };
        assert_eq!(r.group(), want, "{r:?}");
    }
}

#[test]
fn nonexistent_accesses_are_undefined() {
    let mut d = switch(DFR0_A53);
    let undef = |d: &mut DebugSwitch, r: DebugReg, read: bool| {
        assert_eq!(
            d.trap(r.encoding(), read, 0),
            Outcome::Undef,
            "{r:?} read={read}"
        );
    };
    // Beyond the 6 breakpoints and 4 watchpoints the VM is shown.
    undef(&mut d, DebugReg::Bvr(6), true);
    undef(&mut d, DebugReg::Bcr(15), false);
    undef(&mut d, DebugReg::Wvr(4), true);
    undef(&mut d, DebugReg::Wcr(4), false);
    // Wrong direction.
    undef(&mut d, DebugReg::OsLar, true);
    undef(&mut d, DebugReg::OsLsr, false);
    undef(&mut d, DebugReg::Mdrar, false);
    undef(&mut d, DebugReg::AuthStatus, false);
    undef(&mut d, DebugReg::Mdccsr, false);
    // Registers the core does not have (the probe did not find them).
    d.caps = DebugCaps::default();
    undef(&mut d, DebugReg::ClaimSet, true);
    undef(&mut d, DebugReg::ClaimClr, false);
    undef(&mut d, DebugReg::OsDtrRx, true);
    undef(&mut d, DebugReg::OsDtrTx, false);
    undef(&mut d, DebugReg::Mdccint, true);
    // Not a debug register at all.
    assert_eq!(
        d.trap(SysRegAddr::new(2, 1, 0, 0, 0), true, 0),
        Outcome::Undef
    );
    assert!(!d.loaded);
}

#[test]
fn first_use_loads_every_switched_register() {
    for r in [
        DebugReg::Bvr(0),
        DebugReg::Bcr(5),
        DebugReg::Wvr(3),
        DebugReg::Wcr(0),
        DebugReg::Mdscr,
        DebugReg::Mdccint,
        DebugReg::OsDtrRx,
        DebugReg::OsDtrTx,
        DebugReg::OsEccr,
        DebugReg::ClaimSet,
        DebugReg::ClaimClr,
        DebugReg::AuthStatus,
        DebugReg::Mdccsr,
        DebugReg::DbgDtr,
        DebugReg::DtrRxTx,
    ] {
        for read in [true, false] {
            if !r.accessible(read) {
                continue;
            }
            let mut d = switch(DFR0_A53);
            assert_eq!(d.trap(r.encoding(), read, 7), Outcome::Load, "{r:?}");
            // The caller loads: TDA off, TDOSA/TDRA stay.
            assert_eq!(d.handle(r.encoding(), read, 7), Outcome::Load);
            assert!(d.loaded);
            assert_eq!(d.mdcr_loaded() & mdcr::TDA, 0);
            assert_eq!(
                d.mdcr_loaded() & (mdcr::TDOSA | mdcr::TDRA | 0x1f),
                mdcr::TDOSA | mdcr::TDRA | 0x13
            );
            assert_eq!(
                d.mdcr_loaded() & mdcr::TDE,
                0,
                "debug exceptions stay at EL1"
            );
            // Trapped anyway (not by MDCR_EL2): unload and emulate, never loop.
            assert_eq!(d.trap(r.encoding(), read, 7), Outcome::Unload);
            assert!(matches!(d.handle(r.encoding(), read, 7), Outcome::Done(_)));
            assert!(!d.loaded);
        }
    }
}

#[test]
fn the_os_lock_is_emulated_in_every_state() {
    let mut d = switch(DFR0_A53);
    let lsr = DebugReg::OsLsr.encoding();
    let lar = DebugReg::OsLar.encoding();
    // Unlocked at reset: OSLM = 0b10, OSLK = 0.
    assert_eq!(d.handle(lsr, true, 0), Outcome::Done(0x8));
    // OSLAR_EL1.OSLK is bit 0 of the value.
    assert_eq!(d.handle(lar, false, 0x99), Outcome::Done(0));
    assert_eq!(d.handle(lsr, true, 0), Outcome::Done(0xa));
    assert_eq!(d.handle(lar, false, 0x2), Outcome::Done(0));
    assert_eq!(d.handle(lsr, true, 0), Outcome::Done(0x8));
    // MDRAR_EL1: no ROM table.
    assert_eq!(
        d.handle(DebugReg::Mdrar.encoding(), true, 0),
        Outcome::Done(0)
    );
    // OSDLR_EL1.DLK with FEAT_DoubleLock; DBGPRCR_EL1.CORENPDRQ.
    let dlr = DebugReg::OsDlr.encoding();
    let prcr = DebugReg::DbgPrcr.encoding();
    assert_eq!(d.handle(dlr, false, 1), Outcome::Done(0));
    assert_eq!(d.handle(dlr, true, 0), Outcome::Done(1));
    assert!(d.os.exceptions_disabled(), "double lock without CORENPDRQ");
    assert_eq!(d.handle(prcr, false, 1), Outcome::Done(0));
    assert_eq!(d.handle(prcr, true, 0), Outcome::Done(1));
    assert!(
        !d.os.exceptions_disabled(),
        "CORENPDRQ keeps the core debuggable"
    );
    d.handle(dlr, false, 0);
    d.handle(prcr, false, 0);
    // Without FEAT_DoubleLock OSDLR_EL1 is RAZ/WI.
    let mut d = switch(DFR0_A53 | 0xf << 36);
    assert_eq!(d.handle(dlr, false, 1), Outcome::Done(0));
    assert_eq!(d.handle(dlr, true, 0), Outcome::Done(0));
    assert!(!d.os.exceptions_disabled());
}

#[test]
fn while_the_os_lock_is_held_the_registers_are_emulated() {
    let mut d = switch(DFR0_A53);
    d.handle(DebugReg::OsLar.encoding(), false, 1);
    // Nothing loads; each access completes against the vCPU's copy.
    let rw = |d: &mut DebugSwitch, r: DebugReg, v: u64| {
        assert_eq!(d.handle(r.encoding(), false, v), Outcome::Done(0), "{r:?}");
        d.handle(r.encoding(), true, 0)
    };
    assert_eq!(
        rw(&mut d, DebugReg::Bvr(5), 0x4008_1000),
        Outcome::Done(0x4008_1000)
    );
    assert_eq!(rw(&mut d, DebugReg::Bcr(0), 0x1e7), Outcome::Done(0x1e7));
    assert_eq!(
        rw(&mut d, DebugReg::Wvr(3), 0x4010_0008),
        Outcome::Done(0x4010_0008)
    );
    assert_eq!(rw(&mut d, DebugReg::Wcr(1), 0x1ff7), Outcome::Done(0x1ff7));
    // Every MDSCR_EL1 bit is writable with the OS lock held (EDSCR save/restore).
    let all = mdscr::ENABLES | mdscr::LOCKED_ONLY | mdscr::TDCC;
    assert_eq!(rw(&mut d, DebugReg::Mdscr, all), Outcome::Done(all));
    assert_eq!(
        d.handle(DebugReg::Mdccsr.encoding(), true, 0),
        Outcome::Done(mdscr::RXFULL | mdscr::TXFULL)
    );
    assert_eq!(
        rw(&mut d, DebugReg::Mdccint, 1 << 29),
        Outcome::Done(1 << 29)
    );
    assert_eq!(
        rw(&mut d, DebugReg::OsDtrRx, u64::MAX),
        Outcome::Done(0xffff_ffff)
    );
    assert_eq!(rw(&mut d, DebugReg::OsDtrTx, 0x1234), Outcome::Done(0x1234));
    assert_eq!(
        rw(&mut d, DebugReg::OsEccr, u64::MAX),
        Outcome::Done(0xffff_ffff)
    );
    // Claim tags: SET sets, CLR clears; SET reads the implemented bits as ones.
    assert_eq!(rw(&mut d, DebugReg::ClaimSet, 0x1_05), Outcome::Done(0xff));
    assert_eq!(
        d.handle(DebugReg::ClaimClr.encoding(), true, 0),
        Outcome::Done(0x05)
    );
    assert_eq!(rw(&mut d, DebugReg::ClaimClr, 0x04), Outcome::Done(0x01));
    // The DCC data registers: nothing behind them.
    assert_eq!(rw(&mut d, DebugReg::DbgDtr, 5), Outcome::Done(0));
    assert_eq!(rw(&mut d, DebugReg::DtrRxTx, 5), Outcome::Done(0));
    assert_eq!(
        d.handle(DebugReg::AuthStatus.encoding(), true, 0),
        Outcome::Done(AUTHSTATUS)
    );
    assert!(!d.loaded);
    assert_eq!(d.guest.bvr[5], 0x4008_1000);
    // MDSCR_EL1 enables debug exceptions: unlocking loads the state at once.
    assert_eq!(d.reconcile(), Reconcile::Keep);
    d.handle(DebugReg::OsLar.encoding(), false, 0);
    assert!(d.loaded, "unlocking with MDE/KDE/SS set loads");
    // OSECCR_EL1 is UNKNOWN/WI while unlocked: the emulation (only reachable through
    // a stray trap while loaded) reads 0 and ignores writes.
    let eccr = DebugReg::OsEccr.encoding();
    assert_eq!(d.trap_unloaded(eccr, false, 3), Outcome::Done(0));
    assert_eq!(d.trap_unloaded(eccr, true, 0), Outcome::Done(0));
}

#[test]
fn locking_unloads_and_unlocking_reloads_only_when_needed() {
    let mut d = switch(DFR0_A53);
    assert_eq!(
        d.handle(DebugReg::Bvr(0).encoding(), false, 0x4000),
        Outcome::Load
    );
    assert!(d.loaded);
    // The OS lock disables debug exceptions: the state leaves the hardware.
    assert_eq!(d.reconcile(), Reconcile::Keep);
    d.handle(DebugReg::OsLar.encoding(), false, 1);
    assert!(!d.loaded);
    assert_eq!(d.reconcile(), Reconcile::Keep);
    // Unlocked with MDSCR_EL1 enabling nothing: stays unloaded until the next access.
    d.handle(DebugReg::OsLar.encoding(), false, 0);
    assert!(!d.loaded);
    // The OS double lock does the same as the OS lock.
    assert_eq!(
        d.handle(DebugReg::Mdscr.encoding(), false, mdscr::MDE),
        Outcome::Load
    );
    assert!(d.loaded);
    // (The MSR ran again in the hardware; unloading saves what it wrote.)
    d.guest.mdscr = mdscr::MDE;
    d.handle(DebugReg::OsDlr.encoding(), false, 1);
    assert!(!d.loaded);
    d.handle(DebugReg::DbgPrcr.encoding(), false, 1);
    assert!(
        d.loaded,
        "CORENPDRQ lifts the double lock; MDE is set: loaded"
    );
}

#[test]
fn load_at_bind_when_mdscr_enables_debug_exceptions() {
    let mut d = switch(DFR0_A53);
    assert!(!d.load_at_bind());
    for bit in [mdscr::MDE, mdscr::KDE, mdscr::SS] {
        d.guest.mdscr = bit;
        assert!(d.load_at_bind(), "{bit:#x}");
    }
    // Bits that generate no debug exception by themselves (Linux keeps TDCC set).
    for bit in [mdscr::TDCC, mdscr::TXFULL, mdscr::HDE, mdscr::ERR] {
        d.guest.mdscr = bit;
        assert!(!d.load_at_bind(), "{bit:#x}");
    }
    // Either OS lock disables them: nothing to load.
    d.guest.mdscr = mdscr::MDE | mdscr::KDE | mdscr::SS;
    d.os.locked = true;
    assert!(!d.load_at_bind());
    d.os = OsLock {
        double_lock: true,
        ..Default::default()
    };
    assert!(!d.load_at_bind());
    d.os.core_npdrq = true;
    assert!(d.load_at_bind());
}

#[test]
fn reset_clears_the_vcpu_state() {
    let mut d = switch(DFR0_A53);
    d.handle(DebugReg::OsLar.encoding(), false, 1);
    d.handle(DebugReg::Bvr(1).encoding(), false, 0x4000);
    d.reset();
    assert_eq!(d.guest, DebugRegs::default());
    assert_eq!(d.os, OsLock::default());
    assert!(!d.loaded);
}

// ---- Software step across emulated instructions ----

/// A bound-looking vCPU state for the step tests: PC, and PSTATE with SS set (the
/// guest is stepping and the instruction has not completed: active-not-pending).
fn stepping_vcpu() -> Aarch64VCpu {
    let mut v = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    v.setup(Aarch64VCpuSetupConfig {
        trap_wfi: true,
        ..Default::default()
    })
    .unwrap();
    v.set_entry(0x4008_0000).unwrap();
    v.regs_mut().spsr = 0x1c5 | SPSR_SS;
    v.resolve_pending().unwrap();
    v
}

#[track_caller]
fn assert_stepped(v: &Aarch64VCpu, pc: u64, what: &str) {
    assert_eq!(v.pc(), pc, "{what}: PC");
    assert_eq!(
        v.regs().spsr & SPSR_SS,
        0,
        "{what}: SPSR_EL2.SS must be clear"
    );
    assert_eq!(
        v.regs().spsr & !SPSR_SS,
        0x1c5,
        "{what}: the rest of PSTATE"
    );
}

#[track_caller]
fn assert_not_stepped(v: &Aarch64VCpu, pc: u64, what: &str) {
    assert_eq!(v.pc(), pc, "{what}: PC");
    assert_ne!(
        v.regs().spsr & SPSR_SS,
        0,
        "{what}: SPSR_EL2.SS must stay set"
    );
}

const PC: u64 = 0x4008_0000;
const DEV: u64 = 0x0b00_0100;

fn mmio(write: bool) -> Syndrome {
    Syndrome {
        // ISV, SAS = word, SRT = x1, WnR, DFSC translation level 3.
        esr: build::data_abort(2, false, 1, false, false, write, false, 0x07),
        far: DEV,
        hpfar: (DEV >> 12) << 4,
    }
}

#[test]
fn completing_an_emulated_instruction_counts_as_a_step() {
    // Every place the crate or the host completes an instruction the guest did not
    // finish itself moves the PC past it and clears SPSR_EL2.SS.
    let mut v = stepping_vcpu();
    assert!(matches!(
        v.handle_sync_exit(&mmio(false)),
        Some(VmExit::MmioRead { .. })
    ));
    assert_not_stepped(&v, PC, "MMIO read pending");
    v.complete_mmio_read(5).unwrap();
    assert_stepped(&v, PC + 4, "complete_mmio_read");

    let mut v = stepping_vcpu();
    assert!(matches!(
        v.handle_sync_exit(&mmio(true)),
        Some(VmExit::MmioWrite { .. })
    ));
    v.resolve_pending().unwrap();
    assert_stepped(&v, PC + 4, "MMIO write (Pending::Advance)");

    // A trapped WFI the host handled.
    let mut v = stepping_vcpu();
    let wfi = Syndrome {
        esr: 0x0600_0000,
        ..Default::default()
    };
    assert_eq!(v.handle_sync_exit(&wfi), Some(VmExit::WaitForInterrupt));
    v.resolve_pending().unwrap();
    assert_stepped(&v, PC + 4, "WFI");

    // A system register the crate emulates (ACTLR_EL1 write, TACR).
    let mut v = stepping_vcpu();
    assert_eq!(v.handle_sync_exit(&sys(emulate::ACTLR_EL1, 1, false)), None);
    assert_stepped(&v, PC + 4, "emulated MSR");

    // The OS lock (emulated by the crate).
    let mut v = stepping_vcpu();
    assert_eq!(v.handle_sync_exit(&sys(emulate::OSLSR_EL1, 1, true)), None);
    assert_stepped(&v, PC + 4, "emulated MRS OSLSR_EL1");

    // An ID register answered on the slow path (the fast path in run() uses the same
    // helper).
    let mut v = stepping_vcpu();
    assert_eq!(
        v.handle_sync_exit(&sys(SysRegAddr::ID_AA64ISAR0_EL1, 1, true)),
        None
    );
    assert_stepped(&v, PC + 4, "ID register");

    // The emulated EL1 physical timer (CNTP_CTL_EL0 read).
    let mut v = stepping_vcpu();
    assert_eq!(
        v.handle_sync_exit(&sys(SysRegAddr::new(3, 3, 14, 2, 1), 1, true)),
        None
    );
    assert_stepped(&v, PC + 4, "emulated timer");

    // A system register the host answers.
    let mut v = stepping_vcpu();
    v.setup(Aarch64VCpuSetupConfig {
        unhandled_traps: TrapPolicy::ExitToHost,
        ..Default::default()
    })
    .unwrap();
    let pmcr = SysRegAddr::new(3, 3, 9, 12, 0);
    assert!(matches!(
        v.handle_sync_exit(&sys(pmcr, 1, true)),
        Some(VmExit::SysRegRead { .. })
    ));
    v.complete_sysreg_read(0).unwrap();
    assert_stepped(&v, PC + 4, "complete_sysreg_read");
    assert!(matches!(
        v.handle_sync_exit(&sys(pmcr, 1, false)),
        Some(VmExit::SysRegWrite { .. })
    ));
    v.regs_mut().spsr |= SPSR_SS;
    v.resolve_pending().unwrap();
    assert_stepped(&v, PC + 8, "host-handled MSR (Pending::Advance)");

    // SMC answered by the crate (PSCI_VERSION): ELR pointed at the SMC.
    let mut v = stepping_vcpu();
    v.set_gpr(0, 0x8400_0000).unwrap();
    let smc = Syndrome {
        esr: build::call(0x17, 0),
        ..Default::default()
    };
    assert_eq!(v.handle_sync_exit(&smc), None);
    assert_stepped(&v, PC + 4, "SMC answered");
    // SMC that becomes a PSCI request, completed by the host.
    let mut v = stepping_vcpu();
    v.set_gpr(0, 0x8400_0004).unwrap(); // AFFINITY_INFO (32-bit)
    assert!(matches!(
        v.handle_sync_exit(&smc),
        Some(VmExit::Psci { .. })
    ));
    assert_not_stepped(&v, PC, "PSCI pending");
    v.complete_psci(1).unwrap();
    assert_stepped(&v, PC + 4, "complete_psci (SMC)");
    // An SMC nobody serves (a SiP call, not allow-listed): NOT_SUPPORTED.
    let mut v = stepping_vcpu();
    v.set_gpr(0, 0xC200_0000).unwrap();
    assert_eq!(v.handle_sync_exit(&smc), None);
    assert_stepped(&v, PC + 4, "SMC refused");

    // HVC: the hardware already advanced ELR and the step state machine (SS = 0);
    // a PSCI completion over HVC moves nothing and leaves SS clear.
    let mut v = stepping_vcpu();
    v.regs_mut().spsr &= !SPSR_SS;
    v.resolve_pending().unwrap();
    v.set_gpr(0, 0x8400_0004).unwrap();
    let hvc = Syndrome {
        esr: build::call(0x16, 0),
        ..Default::default()
    };
    assert!(matches!(
        v.handle_sync_exit(&hvc),
        Some(VmExit::Psci { .. })
    ));
    v.complete_psci(0).unwrap();
    assert_stepped(&v, PC, "complete_psci (HVC)");
}

#[test]
fn an_instruction_run_again_is_not_stepped() {
    // First FP/SIMD use: the registers are loaded and the instruction runs again.
    let mut v = stepping_vcpu();
    let fp = Syndrome {
        esr: 0x1e00_0000,
        ..Default::default()
    };
    assert_eq!(v.handle_sync_exit(&fp), None);
    assert_not_stepped(&v, PC, "lazy FP load");
    // First debug register use: loaded, untrapped, the MSR runs again.
    let mut v = stepping_vcpu();
    assert!(!v.debug_loaded());
    assert_eq!(v.handle_sync_exit(&sys(emulate::MDSCR_EL1, 1, false)), None);
    assert!(v.debug_loaded());
    assert_not_stepped(&v, PC, "lazy debug load");
    // An UNDEF injected for a debug register that does not exist (breakpoint 15 on
    // a VM shown fewer): the exception is taken, nothing completed.
    let mut v = stepping_vcpu();
    assert_eq!(
        v.handle_sync_exit(&sys(DebugReg::Bvr(15).encoding(), 1, true)),
        None
    );
    assert_ne!(v.pc(), PC + 4);
    assert!(!v.debug_loaded());
}

#[test]
fn complete_instruction_is_the_one_rule() {
    let mut f = Aarch64ContextFrame::new_el1h(0x1000);
    f.spsr |= SPSR_SS | (1 << 20);
    debug::complete_instruction(&mut f, 2);
    assert_eq!((f.elr, f.spsr), (0x1002, 0x3c5 | (1 << 20)));
    f.elr = u64::MAX - 1;
    debug::complete_instruction(&mut f, 4);
    assert_eq!(f.elr, 2, "wraps, never overflows");
    assert!(matches!(Pending::default(), Pending::None));
}

#[test]
fn first_use_from_aarch32_loads_unless_locked() {
    let mut d = switch(DFR0_A53);
    assert!(d.first_use());
    assert!(d.loaded);
    assert!(!d.first_use(), "already loaded");
    d.unload(false);
    d.os.locked = true;
    assert!(!d.first_use(), "the OS lock keeps it unloaded");
    assert!(!d.loaded);
}
