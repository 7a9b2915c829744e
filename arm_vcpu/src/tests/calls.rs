//! SMCCC 1.1 / PSCI 1.1 dispatch (Arm DEN 0028, DEN 0022) and the crate-side answers
//! seen through a vCPU: one table row per call, over both conduits.

use proptest::prelude::*;

use crate::esr::Syndrome;
use crate::exit::Pending;
use crate::smccc::{dispatch, fid, ret, Conduit, Outcome, PsciRequest, SmcForwardList};
use crate::workaround::Workarounds;
use crate::*;

const NS: u64 = ret::NOT_SUPPORTED as i64 as u64;
const INV: u64 = ret::INVALID_PARAMETERS as i64 as u64;
const BAD_ADDR: u64 = ret::INVALID_ADDRESS as i64 as u64;

fn call(conduit: Conduit, x: [u64; 7]) -> Outcome {
    dispatch(
        conduit,
        0,
        &x,
        &SmcForwardList::new(),
        &Workarounds::UNKNOWN,
    )
}

fn answer(v: u64) -> Outcome {
    Outcome::Answer([v, 0, 0, 0])
}

#[test]
fn conformance_table_both_conduits() {
    let on = |t: u64, e: u64, c: u64| {
        Outcome::Request(PsciRequest::CpuOn {
            target_mpidr: t,
            entry: e,
            context_id: c,
        })
    };
    #[rustfmt::skip]
    let table: &[(&str, [u64; 7], Outcome)] = &[
        ("PSCI_VERSION", [fid::PSCI_VERSION as u64, 0, 0, 0, 0, 0, 0], answer(0x1_0001)),
        ("PSCI_VERSION upper bits of x0 ignored", [0xffff_ffff_0000_0000 | fid::PSCI_VERSION as u64, 0, 0, 0, 0, 0, 0], answer(0x1_0001)),
        ("PSCI_VERSION 64-bit form does not exist", [0xC400_0000, 0, 0, 0, 0, 0, 0], answer(NS)),
        ("SMCCC_VERSION", [fid::SMCCC_VERSION as u64, 0, 0, 0, 0, 0, 0], answer(0x1_0001)),
        ("ARCH_FEATURES(ARCH_FEATURES)", [fid::SMCCC_ARCH_FEATURES as u64, fid::SMCCC_ARCH_FEATURES as u64, 0, 0, 0, 0, 0], answer(0)),
        ("ARCH_FEATURES(SMCCC_VERSION)", [fid::SMCCC_ARCH_FEATURES as u64, fid::SMCCC_VERSION as u64, 0, 0, 0, 0, 0], answer(0)),
        ("ARCH_FEATURES(WORKAROUND_1)", [fid::SMCCC_ARCH_FEATURES as u64, fid::SMCCC_ARCH_WORKAROUND_1 as u64, 0, 0, 0, 0, 0], answer(NS)),
        ("ARCH_FEATURES(WORKAROUND_2)", [fid::SMCCC_ARCH_FEATURES as u64, fid::SMCCC_ARCH_WORKAROUND_2 as u64, 0, 0, 0, 0, 0], answer(NS)),
        ("ARCH_FEATURES(WORKAROUND_3)", [fid::SMCCC_ARCH_FEATURES as u64, fid::SMCCC_ARCH_WORKAROUND_3 as u64, 0, 0, 0, 0, 0], answer(NS)),
        ("ARCH_FEATURES(SOC_ID)", [fid::SMCCC_ARCH_FEATURES as u64, fid::SMCCC_ARCH_SOC_ID as u64, 0, 0, 0, 0, 0], answer(NS)),
        ("WORKAROUND_1 called", [fid::SMCCC_ARCH_WORKAROUND_1 as u64, 0, 0, 0, 0, 0, 0], answer(NS)),
        ("MIGRATE_INFO_TYPE", [fid::MIGRATE_INFO_TYPE as u64, 0, 0, 0, 0, 0, 0], answer(2)),
        ("MIGRATE", [fid::MIGRATE_64 as u64, 1, 0, 0, 0, 0, 0], answer(NS)),
        ("MIGRATE_INFO_UP_CPU", [fid::MIGRATE_INFO_UP_CPU_32 as u64, 0, 0, 0, 0, 0, 0], answer(NS)),
        ("PSCI_FEATURES(CPU_ON_64)", [fid::PSCI_FEATURES as u64, fid::CPU_ON_64 as u64, 0, 0, 0, 0, 0], answer(0)),
        ("PSCI_FEATURES(CPU_SUSPEND_64): original format", [fid::PSCI_FEATURES as u64, fid::CPU_SUSPEND_64 as u64, 0, 0, 0, 0, 0], answer(0)),
        ("PSCI_FEATURES(SMCCC_VERSION)", [fid::PSCI_FEATURES as u64, fid::SMCCC_VERSION as u64, 0, 0, 0, 0, 0], answer(0)),
        ("PSCI_FEATURES(SYSTEM_SUSPEND_64)", [fid::PSCI_FEATURES as u64, 0xC400_000E, 0, 0, 0, 0, 0], answer(NS)),
        ("PSCI_FEATURES(SYSTEM_RESET2_64)", [fid::PSCI_FEATURES as u64, 0xC400_0012, 0, 0, 0, 0, 0], answer(NS)),
        ("PSCI_FEATURES(unknown)", [fid::PSCI_FEATURES as u64, 0x8400_001F, 0, 0, 0, 0, 0], answer(NS)),
        ("unknown PSCI function", [0x8400_001F, 0, 0, 0, 0, 0, 0], answer(NS)),
        ("SYSTEM_SUSPEND not offered", [0xC400_000E, 0x4008_0000, 0, 0, 0, 0, 0], answer(NS)),
        ("CPU_ON_64", [fid::CPU_ON_64 as u64, 1, 0x4010_0000, 0xdead_beef_0000_0001, 0, 0, 0], on(1, 0x4010_0000, 0xdead_beef_0000_0001)),
        ("CPU_ON_32 truncates arguments", [fid::CPU_ON_32 as u64, 0xffff_ffff_0000_0001, 0xffff_ffff_4010_0000, 0xffff_ffff_0000_0002, 0, 0, 0], on(1, 0x4010_0000, 2)),
        ("CPU_ON Aff3", [fid::CPU_ON_64 as u64, 0x01_0000_0000, 0x4010_0000, 0, 0, 0, 0], on(0x01_0000_0000, 0x4010_0000, 0)),
        ("CPU_ON bits outside Aff3..Aff0", [fid::CPU_ON_64 as u64, 1 << 40, 0x4010_0000, 0, 0, 0, 0], answer(INV)),
        ("CPU_ON MPIDR bit 31 is not affinity", [fid::CPU_ON_64 as u64, 1 << 31, 0x4010_0000, 0, 0, 0, 0], answer(INV)),
        ("CPU_ON unaligned entry", [fid::CPU_ON_64 as u64, 1, 0x4010_0002, 0, 0, 0, 0], answer(BAD_ADDR)),
        ("AFFINITY_INFO level 0", [fid::AFFINITY_INFO_64 as u64, 1, 0, 0, 0, 0, 0], Outcome::Request(PsciRequest::AffinityInfo { target_mpidr: 1 })),
        ("AFFINITY_INFO level 1", [fid::AFFINITY_INFO_64 as u64, 1, 1, 0, 0, 0, 0], answer(INV)),
        ("AFFINITY_INFO bad target", [fid::AFFINITY_INFO_32 as u64, 1 << 24, 0, 0, 0, 0, 0], answer(INV)),
        ("CPU_OFF", [fid::CPU_OFF as u64, 0, 0, 0, 0, 0, 0], Outcome::Request(PsciRequest::CpuOff)),
        ("CPU_SUSPEND standby", [fid::CPU_SUSPEND_64 as u64, 0, 0x4010_0000, 0, 0, 0, 0], Outcome::Request(PsciRequest::CpuSuspend { power_state: 0 })),
        ("CPU_SUSPEND powerdown", [fid::CPU_SUSPEND_64 as u64, 1 << 16, 0x4010_0000, 0, 0, 0, 0], answer(INV)),
        ("CPU_SUSPEND level 1", [fid::CPU_SUSPEND_32 as u64, 1 << 24, 0, 0, 0, 0, 0], answer(INV)),
        // Original power_state format (PSCI_FEATURES(CPU_SUSPEND) bit 1 = 0): bits
        // [31:26] and [23:17] are reserved and must be zero (DEN 0022, 5.4.2).
        ("CPU_SUSPEND reserved bit 17", [fid::CPU_SUSPEND_64 as u64, 1 << 17, 0x4010_0000, 0, 0, 0, 0], answer(INV)),
        ("CPU_SUSPEND reserved bit 23", [fid::CPU_SUSPEND_32 as u64, 1 << 23, 0, 0, 0, 0, 0], answer(INV)),
        ("CPU_SUSPEND reserved bit 26", [fid::CPU_SUSPEND_64 as u64, 1 << 26, 0x4010_0000, 0, 0, 0, 0], answer(INV)),
        ("CPU_SUSPEND reserved bit 31", [fid::CPU_SUSPEND_32 as u64, 1 << 31, 0, 0, 0, 0, 0], answer(INV)),
        ("CPU_SUSPEND extended-format StateType bit 30 is reserved here", [fid::CPU_SUSPEND_64 as u64, 1 << 30, 0x4010_0000, 0, 0, 0, 0], answer(INV)),
        ("CPU_SUSPEND standby with a StateID", [fid::CPU_SUSPEND_64 as u64, 0xffff, 0x4010_0000, 0, 0, 0, 0], Outcome::Request(PsciRequest::CpuSuspend { power_state: 0xffff })),
        ("CPU_SUSPEND_64: power_state is 32 bits, x1[63:32] ignored", [fid::CPU_SUSPEND_64 as u64, 0xffff_ffff_0000_0000, 0x4010_0000, 0, 0, 0, 0], Outcome::Request(PsciRequest::CpuSuspend { power_state: 0 })),
        ("SYSTEM_OFF", [fid::SYSTEM_OFF as u64, 0, 0, 0, 0, 0, 0], Outcome::Request(PsciRequest::SystemOff)),
        ("SYSTEM_RESET", [fid::SYSTEM_RESET as u64, 0, 0, 0, 0, 0, 0], Outcome::Request(PsciRequest::SystemReset)),
    ];
    for conduit in [Conduit::Hvc, Conduit::Smc] {
        for (what, x, expect) in table {
            assert_eq!(call(conduit, *x), *expect, "{what} over {conduit:?}");
        }
    }
}

/// PSCI_FEATURES(CPU_SUSPEND) bit 1 announces the power_state format; the check of
/// CPU_SUSPEND's argument must use the same one (DEN 0022, 5.4.2 and 5.15.2).
#[test]
fn cpu_suspend_format_matches_psci_features() {
    use crate::smccc::{PowerStateFormat, POWER_STATE_FORMAT};
    let flags = crate::smccc::psci_features(fid::CPU_SUSPEND_64);
    assert!(flags >= 0);
    assert_eq!(
        flags & 2 != 0,
        POWER_STATE_FORMAT == PowerStateFormat::Extended,
        "format bit"
    );
    assert_eq!(flags & 1, 0, "platform-coordinated mode only");
    // Each format's reserved bits (and nothing else) are refused by its check.
    for (format, reserved) in [
        (PowerStateFormat::Original, 0xfc00_0000u32 | 0x00fe_0000),
        (PowerStateFormat::Extended, 0x8000_0000 | 0x3000_0000),
    ] {
        assert_eq!(format.reserved_bits(), reserved, "{format:?}");
        for bit in 0..32 {
            let ps = 1u32 << bit;
            if reserved & ps != 0 {
                assert!(!format.is_valid_standby(ps), "{format:?} bit {bit}");
            }
        }
        assert!(format.is_valid_standby(0) && format.is_valid_standby(0x1234));
    }
    // Original: StateType [16] powerdown and PowerLevel [25:24] != 0 are not offered.
    assert!(!PowerStateFormat::Original.is_valid_standby(1 << 16));
    assert!(!PowerStateFormat::Original.is_valid_standby(2 << 24));
    // Extended: StateType [30] powerdown is not offered; StateID is 28 bits.
    assert!(!PowerStateFormat::Extended.is_valid_standby(1 << 30));
    assert!(PowerStateFormat::Extended.is_valid_standby(0x0fff_ffff));
}

#[test]
fn calls_outside_psci_and_arch() {
    // Vendor hypervisor service (the test protocol's calls): the host's over HVC.
    assert_eq!(
        call(Conduit::Hvc, [0xC600_0001, 0, 0, 0, 0, 0, 0]),
        Outcome::Host
    );
    // ...and NOT_SUPPORTED over SMC: SMCs never reach the host unless allow-listed.
    assert_eq!(
        call(Conduit::Smc, [0xC600_0001, 0, 0, 0, 0, 0, 0]),
        answer(NS)
    );
    // SiP call over SMC: forwarded only when allow-listed.
    let allow = SmcForwardList::new()
        .with(0x8200_0000, 0x82ff_ffff)
        .unwrap();
    assert_eq!(
        dispatch(
            Conduit::Smc,
            0,
            &[0x8200_0010, 0, 0, 0, 0, 0, 0],
            &SmcForwardList::new(),
            &Workarounds::UNKNOWN
        ),
        answer(NS)
    );
    assert_eq!(
        dispatch(
            Conduit::Smc,
            0,
            &[0x8200_0010, 0, 0, 0, 0, 0, 0],
            &allow,
            &Workarounds::UNKNOWN
        ),
        Outcome::Forward
    );
    // PSCI and arch calls are never forwarded, whatever the list says.
    let everything = SmcForwardList::new().with(0, u32::MAX).unwrap();
    assert_eq!(
        dispatch(
            Conduit::Smc,
            0,
            &[fid::SYSTEM_OFF as u64, 0, 0, 0, 0, 0, 0],
            &everything,
            &Workarounds::UNKNOWN
        ),
        Outcome::Request(PsciRequest::SystemOff)
    );
    assert_eq!(
        dispatch(
            Conduit::Smc,
            0,
            &[fid::SMCCC_VERSION as u64, 0, 0, 0, 0, 0, 0],
            &everything,
            &Workarounds::UNKNOWN
        ),
        answer(0x1_0001)
    );
    // Yielding (bit 31 clear) arch-owner IDs are not arch calls.
    assert_eq!(
        call(Conduit::Hvc, [0x0000_0000, 0, 0, 0, 0, 0, 0]),
        Outcome::Host
    );
    // A non-zero immediate is not SMCCC.
    assert_eq!(
        dispatch(
            Conduit::Hvc,
            1,
            &[fid::PSCI_VERSION as u64, 0, 0, 0, 0, 0, 0],
            &SmcForwardList::new(),
            &Workarounds::UNKNOWN
        ),
        Outcome::Host
    );
    assert_eq!(
        dispatch(
            Conduit::Smc,
            1,
            &[fid::PSCI_VERSION as u64, 0, 0, 0, 0, 0, 0],
            &SmcForwardList::new(),
            &Workarounds::UNKNOWN
        ),
        answer(NS)
    );
    // The forward list holds at most 4 ranges and refuses backwards ones.
    let l = SmcForwardList::new()
        .with(1, 2)
        .and_then(|l| l.with(3, 4))
        .and_then(|l| l.with(5, 6))
        .and_then(|l| l.with(7, 8));
    assert!(l.is_some() && l.unwrap().with(9, 10).is_none());
    assert!(SmcForwardList::new().with(2, 1).is_none());
}

#[test]
fn psci_results_are_checked_against_the_call() {
    use PsciRequest::*;
    let cpu_on = CpuOn {
        target_mpidr: 1,
        entry: 0,
        context_id: 0,
    };
    for r in [
        ret::SUCCESS,
        ret::INVALID_PARAMETERS,
        ret::INVALID_ADDRESS,
        ret::ALREADY_ON,
        ret::ON_PENDING,
        ret::INTERNAL_FAILURE,
    ] {
        assert!(cpu_on.allows(r), "CPU_ON {r}");
    }
    assert!(!cpu_on.allows(ret::DENIED) && !cpu_on.allows(1));
    assert!(CpuOff.allows(ret::DENIED) && !CpuOff.allows(ret::SUCCESS));
    for r in [0, 1, 2, ret::INVALID_PARAMETERS, ret::DISABLED] {
        assert!(AffinityInfo { target_mpidr: 0 }.allows(r));
    }
    assert!(!AffinityInfo { target_mpidr: 0 }.allows(3));
    assert!(!SystemOff.allows(ret::SUCCESS));
}

fn vcpu() -> Aarch64VCpu {
    let mut v = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    v.setup(Aarch64VCpuSetupConfig::default()).unwrap();
    v.set_entry(0x4008_0000).unwrap();
    v
}

const HVC: u64 = 0x5A00_0000;
const SMC: u64 = 0x5E00_0000;

#[test]
fn psci_through_a_vcpu() {
    // PSCI_VERSION over HVC: answered inside the crate, ELR already past the HVC.
    let mut v = vcpu();
    v.set_gpr(0, fid::PSCI_VERSION as u64).unwrap();
    assert_eq!(
        v.handle_sync_exit(&Syndrome {
            esr: HVC,
            ..Default::default()
        }),
        None
    );
    assert_eq!((v.gpr(0), v.pc()), (Some(0x1_0001), 0x4008_0000));
    // ...over SMC: the PC moves past the SMC.
    v.set_gpr(0, fid::PSCI_VERSION as u64).unwrap();
    assert_eq!(
        v.handle_sync_exit(&Syndrome {
            esr: SMC,
            ..Default::default()
        }),
        None
    );
    assert_eq!((v.gpr(0), v.pc()), (Some(0x1_0001), 0x4008_0004));

    // CPU_ON over SMC: an exit with the request; the result and the PC move wait for
    // completion, which PSCI's rules constrain.
    let mut v = vcpu();
    for (n, x) in [fid::CPU_ON_64 as u64, 1, 0x4010_0000, 7]
        .into_iter()
        .enumerate()
    {
        v.set_gpr(n, x).unwrap();
    }
    let exit = v.handle_sync_exit(&Syndrome {
        esr: SMC,
        ..Default::default()
    });
    assert_eq!(
        exit,
        Some(VmExit::Psci {
            request: PsciRequest::CpuOn {
                target_mpidr: 1,
                entry: 0x4010_0000,
                context_id: 7
            },
            conduit: Conduit::Smc
        })
    );
    assert_eq!(v.resolve_pending(), Err(VCpuError::PendingCompletion));
    assert!(matches!(
        v.complete_psci(ret::DENIED),
        Err(VCpuError::InvalidConfig(_))
    ));
    v.complete_psci(ret::ALREADY_ON).unwrap();
    assert_eq!(
        (v.gpr(0), v.pc()),
        (Some(ret::ALREADY_ON as i64 as u64), 0x4008_0004)
    );
    assert_eq!(
        v.complete_psci(ret::SUCCESS),
        Err(VCpuError::NothingToComplete)
    );
    assert_eq!(v.pending, Pending::None);
}

#[test]
fn power_on_resets_to_the_psci_entry_state() {
    let mut v = vcpu();
    v.set_gpr(5, 55).unwrap();
    v.set_sp_el0(0x1234);
    assert!(v.power_on(0x4020_0000, 0xabcd).unwrap().is_empty());
    assert_eq!(v.gpr(0), Some(0xabcd));
    assert_eq!(v.gpr(5), Some(0));
    assert_eq!(v.pc(), 0x4020_0000);
    assert_eq!(v.regs().spsr, crate::context::SPSR_EL1H_DAIF_MASKED);
    assert_eq!(v.sp_el0(), 0);
    assert_eq!(
        v.system_registers().sctlr_el1,
        crate::context::SCTLR_EL1_RESET
    );
    assert_eq!(
        v.system_registers().vmpidr_el2,
        1 << 31,
        "EL2 controls kept"
    );
    assert!(matches!(
        v.power_on(0x4020_0002, 0),
        Err(VCpuError::InvalidConfig(_))
    ));
}

proptest! {
    /// Any function ID over either conduit, with any workaround decision, gets a
    /// decision, and whatever the crate answers itself is NOT_SUPPORTED or a defined
    /// value, never a panic; only a workaround decided "by firmware" is forwarded.
    #[test]
    fn any_call_is_decided(
        x0: u64, x1: u64, x2: u64, x3: u64, imm: u16, smc: bool, m in prop::array::uniform3(0u8..4),
    ) {
        use crate::workaround::Mitigation;
        let pick = |k: u8| [Mitigation::Firmware, Mitigation::NotRequired, Mitigation::Permanent, Mitigation::NotSupported][k as usize];
        let w = Workarounds { wa1: pick(m[0]), wa2: pick(m[1]), wa3: pick(m[2]), ..Workarounds::UNKNOWN };
        let conduit = if smc { Conduit::Smc } else { Conduit::Hvc };
        let out = dispatch(conduit, imm, &[x0, x1, x2, x3, 0, 0, 0], &SmcForwardList::new(), &w);
        if smc {
            prop_assert!(out != Outcome::Host && out != Outcome::Forward);
        }
        if let Outcome::Answer([r, 0, 0, 0]) = out {
            prop_assert!(matches!(r as i64, -9..=-1 | 0..=2 | 0x1_0001), "{:#x}", r);
        }
        if let Outcome::Workaround(wa) = out {
            prop_assert_eq!(w.get(wa), Mitigation::Firmware);
            prop_assert_eq!(x0 as u32, wa.fid());
            prop_assert_eq!(imm, 0);
        }
    }
}
