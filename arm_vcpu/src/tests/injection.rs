//! Exception injection (Arm ARM D1.3 exception entry), ID-register sanitizing, and the
//! system registers the crate emulates, including the UNDEF policy through a vCPU.

use crate::emulate::{self, SysRegAction};
use crate::esr::Syndrome;
use crate::exit::SysRegAddr;
use crate::idregs::{self, IdRegisters, ID_SPACE_LEN};
use crate::inject::{enter, vector_offset, Entered, GuestState, InjectError, Injection};
use crate::*;

const VBAR: u64 = 0x4009_0000;

/// SCTLR_EL1 with SPAN (bit 23) clear: exception entry sets PSTATE.PAN. (The usual
/// reset value has bit 23 set, RES1 before FEAT_PAN made it SPAN.)
const SCTLR_SPAN0: u64 = crate::context::SCTLR_EL1_RESET & !(1 << 23);

fn state(pstate: u64) -> GuestState {
    GuestState {
        pstate,
        pc: 0x4008_1234,
        vbar_el1: VBAR,
        sctlr_el1: SCTLR_SPAN0,
    }
}

#[test]
fn vector_offsets_by_current_el_and_stack() {
    // (PSTATE.M, expected offset)
    let cases: &[(u64, Result<u64, InjectError>)] = &[
        (0b0101, Ok(0x200)),  // EL1h: current EL with SP_ELx
        (0b0100, Ok(0x000)),  // EL1t: current EL with SP_EL0
        (0b0000, Ok(0x400)),  // EL0t: lower EL, AArch64
        (0b10000, Ok(0x600)), // AArch32 User: lower EL, AArch32
        (0b1001, Err(InjectError::NotAGuestState)),
        (0b10011, Err(InjectError::NotAGuestState)),
    ];
    for &(m, expect) in cases {
        assert_eq!(vector_offset(m), expect, "M = {m:#b}");
    }
}

/// (what, injection, PSTATE before, expected PC, ESR_EL1, FAR_EL1)
type InjectionCase = (&'static str, Injection, u64, u64, u64, Option<u64>);

#[test]
fn injected_exceptions_match_the_architecture() {
    // (what, from PSTATE, expected (pc, esr, far))
    let nzcv_el1h = (0b1010 << 28) | 0x3c5;
    #[rustfmt::skip]
    let cases: &[InjectionCase] = &[
        ("UNDEF from EL1h", Injection::Undef, nzcv_el1h, VBAR + 0x200, 0x0200_0000, None),
        ("UNDEF from EL1t", Injection::Undef, 0x3c4, VBAR, 0x0200_0000, None),
        ("UNDEF from EL0", Injection::Undef, 0x0, VBAR + 0x400, 0x0200_0000, None),
        ("data abort (read) from EL1h", Injection::DataAbort { va: 0xc00_0000, write: false, dfsc: 0x10 }, 0x3c5, VBAR + 0x200, 0x9600_0010, Some(0xc00_0000)),
        ("data abort (write) from EL1h", Injection::DataAbort { va: 0xc00_0008, write: true, dfsc: 0x10 }, 0x3c5, VBAR + 0x200, 0x9600_0050, Some(0xc00_0008)),
        ("data abort from EL0", Injection::DataAbort { va: 0xc00_0000, write: false, dfsc: 0x10 }, 0x0, VBAR + 0x400, 0x9200_0010, Some(0xc00_0000)),
        ("instruction abort from EL1h", Injection::InstructionAbort { va: 0xd00_0000, ifsc: 0x10 }, 0x3c5, VBAR + 0x200, 0x8600_0010, Some(0xd00_0000)),
        ("instruction abort from EL0", Injection::InstructionAbort { va: 0xd00_0000, ifsc: 0x10 }, 0x0, VBAR + 0x400, 0x8200_0010, Some(0xd00_0000)),
    ];
    for &(what, inj, pstate, pc, esr, far) in cases {
        let e: Entered = enter(&state(pstate), &inj).unwrap();
        assert_eq!((e.pc, e.esr_el1, e.far_el1), (pc, esr, far), "{what}");
        assert_eq!(
            e.elr_el1, 0x4008_1234,
            "{what}: ELR_EL1 = the faulting instruction"
        );
        assert_eq!(
            e.spsr_el1, pstate,
            "{what}: SPSR_EL1 = the interrupted PSTATE"
        );
        // New PSTATE: EL1h, D/A/I/F masked, NZCV kept, PAN set (SCTLR_EL1.SPAN = 0).
        assert_eq!(e.pstate & 0x1f, 0b0101, "{what}");
        assert_eq!(e.pstate & 0x3c0, 0x3c0, "{what}");
        assert_eq!(e.pstate >> 28, pstate >> 28 & 0xf, "{what}: NZCV");
        assert_eq!(e.pstate & (1 << 22), 1 << 22, "{what}: PAN");
    }
    // SCTLR_EL1.SPAN = 1 keeps PAN as it was; DSSBS sets SSBS.
    let s = GuestState {
        sctlr_el1: SCTLR_SPAN0 | (1 << 23) | (1 << 44),
        ..state(0x3c5)
    };
    let e = enter(&s, &Injection::Undef).unwrap();
    assert_eq!(e.pstate & (1 << 22), 0);
    assert_eq!(e.pstate & (1 << 12), 1 << 12);
    // VBAR_EL1 bits [10:0] are RES0.
    let s = GuestState {
        vbar_el1: VBAR | 0x7ff,
        ..state(0x3c5)
    };
    assert_eq!(enter(&s, &Injection::Undef).unwrap().pc, VBAR + 0x200);
    // AArch32 modes other than User (EL1 is AArch64) are not guest states.
    assert_eq!(
        enter(&state(0x13), &Injection::Undef),
        Err(InjectError::NotAGuestState)
    );
}

#[test]
fn injection_through_an_unbound_vcpu() {
    let mut v = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    v.setup(Aarch64VCpuSetupConfig::default()).unwrap();
    v.set_entry(0x4008_0000).unwrap();
    v.inject_data_abort(0xc00_0000, true).unwrap();
    let r = v.system_registers();
    assert_eq!(
        (r.esr_el1, r.far_el1, r.elr_el1, r.spsr_el1),
        (0x9600_0050, 0xc00_0000, 0x4008_0000, 0x3c5)
    );
    assert_eq!(v.pc(), 0x200, "VBAR_EL1 is 0 at reset");
    assert_eq!(v.inject_serror(0), Err(VCpuError::NotBound));
    // AArch32 EL0 (User mode, T32) is injectable: vector 0x600, ELR/SPSR as saved.
    v.regs_mut().spsr = 0x6000_0030;
    v.regs_mut().elr = 0x8000_1002;
    v.inject_undef().unwrap();
    let r = v.system_registers();
    assert_eq!(
        (r.esr_el1, r.elr_el1, r.spsr_el1, v.pc(), v.regs().spsr),
        (0x0200_0000, 0x8000_1002, 0x6000_0030, 0x600, 0x6000_03c5)
    );
}

#[test]
fn unhandled_traps_become_undef_or_exits_by_policy() {
    // An IMPDEF register read (S3_1_C15_C0_0 into x3), trapped by HCR_EL2.TIDCP.
    let esr = crate::esr::build::sysreg(3, 1, 15, 0, 0, 3, true);
    let mut v = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    v.setup(Aarch64VCpuSetupConfig::default()).unwrap();
    v.set_entry(0x4008_0000).unwrap();
    assert_eq!(
        v.handle_sync_exit(&Syndrome {
            esr,
            ..Default::default()
        }),
        None
    );
    assert_eq!(
        (
            v.pc(),
            v.system_registers().esr_el1,
            v.system_registers().elr_el1
        ),
        (0x200, 0x0200_0000, 0x4008_0000)
    );

    let mut v = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    v.setup(Aarch64VCpuSetupConfig {
        unhandled_traps: TrapPolicy::ExitToHost,
        ..Default::default()
    })
    .unwrap();
    v.set_entry(0x4008_0000).unwrap();
    assert_eq!(
        v.handle_sync_exit(&Syndrome {
            esr,
            ..Default::default()
        }),
        Some(VmExit::SysRegRead {
            reg: SysRegAddr::new(3, 1, 15, 0, 0),
            rt: 3
        })
    );
    // SVE use (EC 0x19) under ExitToHost is an Unhandled exit; under the default, UNDEF.
    let sve = 0x19 << 26 | 1 << 25;
    assert!(matches!(
        v.handle_sync_exit(&Syndrome {
            esr: sve,
            ..Default::default()
        }),
        Some(VmExit::Unhandled { .. })
    ));
    let mut v = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    v.setup(Aarch64VCpuSetupConfig::default()).unwrap();
    v.set_entry(0x4008_0000).unwrap();
    assert_eq!(
        v.handle_sync_exit(&Syndrome {
            esr: sve,
            ..Default::default()
        }),
        None
    );
    assert_eq!(v.system_registers().esr_el1, 0x0200_0000);
}

#[test]
fn id_registers_hide_what_is_not_switched() {
    let host = [u64::MAX; ID_SPACE_LEN];
    let ids = IdRegisters::sanitized(&host, false, 48);
    let read = |crm, op2| ids.read(SysRegAddr::new(3, 0, 0, crm, op2)).unwrap();
    let field = |v: u64, lsb: u32| (v >> lsb) & 0xf;
    let pfr0 = read(4, 0);
    for (lsb, name) in [
        (8, "EL2"),
        (28, "RAS"),
        (32, "SVE"),
        (36, "SEL2"),
        (40, "MPAM"),
        (44, "AMU"),
        (52, "RME"),
    ] {
        assert_eq!(field(pfr0, lsb), 0, "ID_AA64PFR0_EL1.{name}");
    }
    assert_eq!(field(pfr0, 0), 0xf, "EL0 field kept");
    assert_eq!(field(pfr0, 4), 1, "EL1 is AArch64-only under HCR_EL2.RW");
    assert_eq!(field(read(7, 1), 40), 0, "ID_AA64MMFR1_EL1.HCX");
    let pfr1 = read(4, 1);
    for (lsb, name) in [(8, "MTE"), (24, "SME"), (44, "GCS")] {
        assert_eq!(field(pfr1, lsb), 0, "ID_AA64PFR1_EL1.{name}");
    }
    assert_eq!(read(4, 4), 0, "ID_AA64ZFR0_EL1");
    assert_eq!(read(4, 5), 0, "ID_AA64SMFR0_EL1");
    let dfr0 = read(5, 0);
    for (lsb, name) in [(8, "PMUVer"), (32, "PMSVer"), (44, "TraceBuffer")] {
        assert_eq!(field(dfr0, lsb), 0, "ID_AA64DFR0_EL1.{name}");
    }
    assert_eq!(field(read(7, 1), 8), 0, "ID_AA64MMFR1_EL1.VH");
    assert_eq!(field(read(7, 2), 24), 0, "ID_AA64MMFR2_EL1.NV");
    assert_eq!(
        field(read(6, 1), 4),
        0,
        "ID_AA64ISAR1_EL1.APA hidden without switched keys"
    );
    let with_keys = IdRegisters::sanitized(&host, true, 48);
    assert_eq!(
        field(with_keys.read(SysRegAddr::new(3, 0, 0, 6, 1)).unwrap(), 4),
        0xf
    );
    assert_eq!(read(6, 0), u64::MAX, "ID_AA64ISAR0_EL1 passes through");
    // The AArch32 views hide the same features.
    assert_eq!(field(read(1, 2), 24), 0, "ID_DFR0_EL1.PerfMon");
    assert_eq!(field(read(1, 2), 16), 0, "ID_DFR0_EL1.MMapTrc");
    assert_eq!(field(read(1, 0), 28), 0, "ID_PFR0_EL1.RAS");
    assert_eq!(field(read(1, 1), 12), 0, "ID_PFR1_EL1.Virtualization");
    assert_eq!(read(3, 5), 0, "ID_DFR1_EL1");
    // PARange follows the VM's IPA size: 48 bits → 5; 39 → 1 (36 bits); 40 → 2; the
    // host's own range caps it.
    let pa = |host_pa: u64, ipa: u8| {
        let mut h = [0u64; ID_SPACE_LEN];
        h[idregs::ID_AA64MMFR0] = 0x1120 | host_pa;
        IdRegisters::sanitized(&h, false, ipa)
            .read(SysRegAddr::ID_AA64MMFR0_EL1)
            .unwrap()
    };
    assert_eq!(pa(6, 48), 0x1125);
    assert_eq!(pa(6, 39), 0x1121);
    assert_eq!(pa(6, 40), 0x1122);
    assert_eq!(pa(2, 48), 0x1122, "never above the host");
    assert_eq!(pa(6, 31), 0x1120);
    // The index mapping covers CRm 1..7 exactly.
    for i in 0..ID_SPACE_LEN {
        assert_eq!(idregs::index(idregs::encoding(i)), Some(i));
    }
    assert_eq!(
        idregs::index(SysRegAddr::new(3, 0, 0, 0, 0)),
        None,
        "MIDR_EL1 is not trapped"
    );
    assert_eq!(idregs::index(SysRegAddr::new(3, 0, 0, 8, 0)), None);
}

#[test]
fn emulated_system_registers() {
    let ids = IdRegisters::sanitized(&[7; ID_SPACE_LEN], true, 48);
    let id = SysRegAddr::ID_AA64ISAR0_EL1;
    let dbgbvr0 = SysRegAddr::new(2, 0, 0, 0, 4);
    let oslar = SysRegAddr::new(2, 0, 1, 0, 4);
    let dc_isw = SysRegAddr::new(1, 0, 7, 6, 2);
    let dc_civac = SysRegAddr::new(1, 3, 7, 14, 1);
    let pmcr = SysRegAddr::new(3, 3, 9, 12, 0);
    #[rustfmt::skip]
    let cases: &[(&str, SysRegAddr, bool, Option<&IdRegisters>, SysRegAction)] = &[
        ("ID read, crate view", id, true, Some(&ids), SysRegAction::Read(7)),
        ("ID write is UNDEFINED", id, false, Some(&ids), SysRegAction::Unhandled),
        ("ID read, host answers", id, true, None, SysRegAction::Unhandled),
        // op0 = 2: crate::debug decides (tests/debug.rs).
        ("MDSCR_EL1 read", emulate::MDSCR_EL1, true, None, SysRegAction::Debug),
        ("MDSCR_EL1 write", emulate::MDSCR_EL1, false, None, SysRegAction::Debug),
        ("OSLSR_EL1", emulate::OSLSR_EL1, true, None, SysRegAction::Debug),
        ("OSLAR_EL1 write", oslar, false, None, SysRegAction::Debug),
        ("DBGBVR0_EL1 read", dbgbvr0, true, None, SysRegAction::Debug),
        ("DBGBVR0_EL1 write", dbgbvr0, false, None, SysRegAction::Debug),
        ("ACTLR_EL1 read", emulate::ACTLR_EL1, true, None, SysRegAction::Read(0x66)),
        ("ACTLR_EL1 write", emulate::ACTLR_EL1, false, None, SysRegAction::Write),
        ("DC ISW", dc_isw, false, None, SysRegAction::Write),
        ("DC CIVAC is not set/way", dc_civac, false, None, SysRegAction::Unhandled),
        ("PMCR_EL0 (PMU hidden)", pmcr, true, Some(&ids), SysRegAction::Unhandled),
        ("IMPDEF", SysRegAddr::new(3, 1, 15, 0, 0), true, Some(&ids), SysRegAction::Unhandled),
    ];
    for &(what, reg, read, ids, expect) in cases {
        let cx = emulate::Context {
            ids,
            actlr: 0x66,
            cpacr: 0,
            revidr: 0,
            aidr: 0,
            has: crate::sysreg::FeatureSet::EMPTY,
        };
        assert_eq!(emulate::sysreg(reg, read, 0x99, &cx), expect, "{what}");
    }
}

#[test]
fn os_lock_and_mdscr_round_trip_through_a_vcpu() {
    let mut v = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    v.setup(Aarch64VCpuSetupConfig::default()).unwrap();
    v.set_entry(0x4008_0000).unwrap();
    let sys = |op0, op1, crn, crm, op2, rt, read| Syndrome {
        esr: crate::esr::build::sysreg(op0, op1, crn, crm, op2, rt, read),
        ..Default::default()
    };
    // msr oslar_el1, x2 (x2 = 1): lock; mrs x3, oslsr_el1 → OSLM | OSLK = 0xA.
    v.set_gpr(2, 1).unwrap();
    assert_eq!(v.handle_sync_exit(&sys(2, 0, 1, 0, 4, 2, false)), None);
    assert_eq!(v.handle_sync_exit(&sys(2, 0, 1, 1, 4, 3, true)), None);
    assert_eq!(v.gpr(3), Some(0xA));
    // With the OS lock held, MDSCR_EL1 is emulated: it keeps what the guest wrote.
    v.set_gpr(4, 0x8000).unwrap();
    assert_eq!(v.handle_sync_exit(&sys(2, 0, 0, 2, 2, 4, false)), None);
    assert_eq!(v.handle_sync_exit(&sys(2, 0, 0, 2, 2, 5, true)), None);
    assert_eq!(v.gpr(5), Some(0x8000));
    assert!(!v.debug_loaded());
    // Unlock: MDSCR_EL1.MDE is set, so the state is loaded at once.
    v.set_gpr(2, 0).unwrap();
    assert_eq!(v.handle_sync_exit(&sys(2, 0, 1, 0, 4, 2, false)), None);
    assert_eq!(v.handle_sync_exit(&sys(2, 0, 1, 1, 4, 3, true)), None);
    assert_eq!(v.gpr(3), Some(0x8));
    assert!(v.debug_loaded());
    assert_eq!(v.pc(), 0x4008_0000 + 6 * 4);
}
