//! SMCCC_ARCH_WORKAROUND_1/2/3 (Arm DEN 0028): discovery against scripted firmware,
//! the CPU classification from MIDR and the ID registers, the whole decision table,
//! and the answers and calls a guest sees through a vCPU.

use crate::esr::Syndrome;
use crate::smccc::{fid, ret};
use crate::workaround::{
    CallAction, CpuSpeculation, Exposure, FirmwareConduit, FirmwareInfo, Mitigation, Workaround,
    Workarounds, WORKAROUND_1, WORKAROUND_2, WORKAROUND_3,
};
use crate::*;

const NS: i32 = ret::NOT_SUPPORTED;
const NOT_REQUIRED: i32 = -2;

/// A scripted firmware: answers by function ID (and x1 for the FEATURES calls), and
/// records every call.
struct Firmware {
    calls: Vec<(u32, u64)>,
    answer: fn(u32, u64) -> u64,
}

impl Firmware {
    fn new(answer: fn(u32, u64) -> u64) -> Self {
        Self {
            calls: Vec::new(),
            answer,
        }
    }

    fn discover(&mut self, conduit: FirmwareConduit) -> FirmwareInfo {
        let answer = self.answer;
        let calls = &mut self.calls;
        FirmwareInfo::discover(conduit, |f, x1| {
            calls.push((f, x1));
            answer(f, x1)
        })
    }
}

const M1: u64 = -1i64 as u64;

/// QEMU 7.2's firmware at EL2 (../shared/notes/qemu-virt-el2.md): PSCI 1.1, and -1
/// for PSCI_FEATURES(SMCCC_VERSION) and everything else.
fn qemu_7_2(f: u32, _x1: u64) -> u64 {
    match f {
        0x8400_0000 => 0x1_0001,
        _ => M1,
    }
}

/// A TF-A-like firmware on an affected core: PSCI 1.1, SMCCC 1.2, WORKAROUND_1 and _3
/// implemented and needed here (0), WORKAROUND_2 dynamic (0).
fn tf_a_affected(f: u32, x1: u64) -> u64 {
    match (f, x1 as u32) {
        (0x8400_0000, _) => 0x1_0001,
        (0x8400_000A, 0x8000_0000) => 0,
        (0x8000_0000, _) => 0x1_0002,
        (0x8000_0001, WORKAROUND_1 | WORKAROUND_2 | WORKAROUND_3) => 0,
        _ => M1,
    }
}

#[test]
fn no_firmware_means_no_call_at_all() {
    for answer in [qemu_7_2 as fn(u32, u64) -> u64, tf_a_affected] {
        let mut fw = Firmware::new(answer);
        let info = fw.discover(FirmwareConduit::None);
        assert!(fw.calls.is_empty(), "{:?}", fw.calls);
        assert_eq!(info, FirmwareInfo::NONE);
    }
}

/// SMCCC's discovery order: PSCI_VERSION, then PSCI_FEATURES(SMCCC_VERSION) (PSCI ≥
/// 1.0), then SMCCC_VERSION (only if PSCI_FEATURES succeeded), then ARCH_FEATURES (only
/// with SMCCC ≥ 1.1). Each step that fails ends discovery.
#[test]
fn discovery_follows_the_smccc_order() {
    let psci_version = (0x8400_0000, 0);
    let features = (0x8400_000A, 0x8000_0000);
    let smccc_version = (0x8000_0000, 0);
    let arch = |w: u32| (0x8000_0001, w as u64);

    // QEMU 7.2: stops after PSCI_FEATURES says NOT_SUPPORTED; SMCCC_VERSION never asked.
    for conduit in [FirmwareConduit::Smc, FirmwareConduit::Hvc] {
        let mut fw = Firmware::new(qemu_7_2);
        let info = fw.discover(conduit);
        assert_eq!(fw.calls, [psci_version, features], "{conduit:?}");
        assert_eq!(
            info,
            FirmwareInfo {
                conduit,
                psci_version: Some(0x1_0001),
                smccc_version_feature: Some(NS),
                ..FirmwareInfo::NONE
            }
        );
    }

    // TF-A-like: everything asked, in order.
    let mut fw = Firmware::new(tf_a_affected);
    let info = fw.discover(FirmwareConduit::Smc);
    assert_eq!(
        fw.calls,
        [
            psci_version,
            features,
            smccc_version,
            arch(WORKAROUND_1),
            arch(WORKAROUND_2),
            arch(WORKAROUND_3)
        ]
    );
    assert_eq!(
        (info.smccc_version, info.wa1, info.wa2, info.wa3),
        (Some(0x1_0002), Some(0), Some(0), Some(0))
    );

    // PSCI 0.2 has no PSCI_FEATURES; an unknown-ID firmware (-1) is not PSCI at all.
    fn psci_0_2(f: u32, _: u64) -> u64 {
        if f == 0x8400_0000 {
            0x2
        } else {
            0
        }
    }
    let mut fw = Firmware::new(psci_0_2);
    assert_eq!(fw.discover(FirmwareConduit::Smc).psci_version, Some(2));
    assert_eq!(fw.calls, [psci_version]);
    let mut fw = Firmware::new(|_, _| M1);
    fw.discover(FirmwareConduit::Smc);
    assert_eq!(fw.calls, [psci_version]);

    // SMCCC 1.0: no SMCCC_ARCH_FEATURES.
    fn smccc_1_0(f: u32, _: u64) -> u64 {
        match f {
            0x8400_0000 => 0x1_0000,
            0x8400_000A => 0,
            0x8000_0000 => 0x1_0000,
            _ => 0,
        }
    }
    let mut fw = Firmware::new(smccc_1_0);
    let info = fw.discover(FirmwareConduit::Smc);
    assert_eq!(fw.calls, [psci_version, features, smccc_version]);
    assert_eq!(info.wa1, None);

    // w0 is 32 bits: upper bits of x0 do not turn -1 into a large positive value.
    fn junk_upper(f: u32, _: u64) -> u64 {
        match f {
            0x8400_0000 => 0xdead_0000_0001_0001,
            _ => 0x1234_5678_ffff_ffff,
        }
    }
    let mut fw = Firmware::new(junk_upper);
    let info = fw.discover(FirmwareConduit::Smc);
    assert_eq!(
        (info.psci_version, info.smccc_version_feature),
        (Some(0x1_0001), Some(NS))
    );
}

const PFR0_CSV2: u64 = 56;
const PFR0_CSV3: u64 = 60;

fn cpu(midr: u64, csv2: u64, csv3: u64, ssbs: u64, ecbhb: u64) -> CpuSpeculation {
    CpuSpeculation::from_id_registers(
        (csv2 << PFR0_CSV2) | (csv3 << PFR0_CSV3) | 0x0000_0000_0000_2222,
        ssbs << 4,
        ecbhb << 60,
        midr,
    )
}

/// QEMU 7.2's models (MIDR as QEMU sets it) and a few real cores.
const A57: u64 = 0x411f_d070; // QEMU -cpu cortex-a57
const A72: u64 = 0x410f_d083; // QEMU -cpu cortex-a72
const A53: u64 = 0x410f_d034; // QEMU -cpu cortex-a53
const A76: u64 = 0x414f_d0b1;
const UNLISTED: u64 = 0x000f_0510; // QEMU -cpu max: implementer 0 (software)

#[test]
fn cpu_classification() {
    use Exposure::*;
    #[rustfmt::skip]
    let vectors: [(&str, CpuSpeculation, Exposure, Exposure, Exposure, Exposure); 9] = [
        // name, cpu, v2 (WA1), SSB (WA2), BHB alone, WA3 (BHB or v2)
        ("Cortex-A57 (no CSV2, no SSBS)", cpu(A57, 0, 0, 0, 0), Affected, Affected, Affected, Affected),
        ("Cortex-A72", cpu(A72, 0, 0, 0, 0), Affected, Affected, Affected, Affected),
        ("Cortex-A53 (in order)", cpu(A53, 0, 0, 0, 0), Unaffected, Unaffected, Unaffected, Unaffected),
        ("Cortex-A76 (CSV2, SSBS, BHB-affected)", cpu(A76, 1, 0, 1, 0), Unaffected, Unaffected, Affected, Affected),
        ("unlisted, CSV2_2, CSV3, SSBS2 (QEMU max)", cpu(UNLISTED, 2, 1, 2, 0), Unaffected, Unaffected, Unknown, Unknown),
        ("unlisted, CSV2_3", cpu(UNLISTED, 3, 1, 1, 0), Unaffected, Unaffected, Unaffected, Unaffected),
        ("unlisted, CSV2 and ECBHB", cpu(UNLISTED, 1, 0, 1, 1), Unaffected, Unaffected, Unaffected, Unaffected),
        ("unlisted, nothing", cpu(UNLISTED, 0, 0, 0, 0), Unknown, Unknown, Unknown, Unknown),
        // A listed core whose ID registers prove it safe (a later revision) is safe.
        ("Cortex-A72 reporting CSV2 and SSBS", cpu(A72, 1, 0, 1, 0), Unaffected, Unaffected, Affected, Affected),
    ];
    for (name, c, v2, ssb, bhb, wa3) in vectors {
        assert_eq!(
            (
                c.spectre_v2(),
                c.store_bypass(),
                c.branch_history(),
                c.workaround_3()
            ),
            (v2, ssb, bhb, wa3),
            "{name}"
        );
    }
    let max = cpu(UNLISTED, 2, 1, 2, 0);
    assert_eq!((max.csv2, max.csv3, max.ssbs, max.ecbhb), (2, 1, 2, 0));
}

/// The whole per-workaround table: 3 workarounds × 3 exposures × every kind of
/// firmware answer (not asked, NOT_SUPPORTED, 0, 1, NOT_REQUIRED, an undefined value).
#[test]
fn decision_table() {
    use Exposure::*;
    use Mitigation::*;
    let answers = [
        None,
        Some(NS),
        Some(0),
        Some(1),
        Some(NOT_REQUIRED),
        Some(7),
    ];
    // Expected per answer, in that order.
    #[rustfmt::skip]
    let table: [(Workaround, Exposure, [Mitigation; 6]); 9] = [
        (Workaround::W1, Unaffected, [NotRequired; 6]),
        (Workaround::W1, Unknown, [NotSupported, NotSupported, Firmware, NotRequired, NotSupported, NotSupported]),
        (Workaround::W1, Affected, [NotSupported, NotSupported, Firmware, NotSupported, NotSupported, NotSupported]),
        (Workaround::W2, Unaffected, [NotRequired; 6]),
        (Workaround::W2, Unknown, [NotSupported, NotSupported, Permanent, NotRequired, Permanent, NotSupported]),
        (Workaround::W2, Affected, [NotSupported, NotSupported, Permanent, NotRequired, Permanent, NotSupported]),
        (Workaround::W3, Unaffected, [NotRequired; 6]),
        (Workaround::W3, Unknown, [NotSupported, NotSupported, Firmware, NotRequired, NotSupported, NotSupported]),
        (Workaround::W3, Affected, [NotSupported, NotSupported, Firmware, NotSupported, NotSupported, NotSupported]),
    ];
    for (w, exposure, expected) in table {
        for (fw, want) in answers.iter().zip(expected) {
            assert_eq!(
                Mitigation::decide(w, exposure, *fw),
                want,
                "{w:?} on a {exposure:?} core, firmware {fw:?}"
            );
        }
    }
    // What the guest sees for each decision (DEN 0028: 0 implemented and required
    // here, 1 not required here but safe to call, -2 (WA2) must not be called, -1 not
    // implemented).
    for (m, answer, call) in [
        (Firmware, 0, CallAction::Forward),
        (NotRequired, 1, CallAction::Return(0)),
        (Permanent, NOT_REQUIRED, CallAction::Return(NOT_REQUIRED)),
        (NotSupported, NS, CallAction::Return(NS)),
    ] {
        assert_eq!((m.features_answer(), m.call()), (answer, call), "{m:?}");
    }
    // WORKAROUND_2 is never forwarded, whatever the firmware says.
    for exposure in [Unaffected, Unknown, Affected] {
        for fw in answers {
            assert_ne!(Mitigation::decide(Workaround::W2, exposure, fw), Firmware);
        }
    }
}

/// Every CPU of the classification vectors × every scripted firmware × every conduit:
/// the crate forwards only a workaround the firmware answered 0 for, through a
/// conduit the host named, never WORKAROUND_2; it enables WORKAROUND_2 once exactly
/// when that firmware mitigates it dynamically on an exposed core; every answer is one
/// DEN 0028 defines for that workaround.
#[test]
fn decisions_over_cpus_firmware_and_conduits() {
    let cpus = [
        cpu(A57, 0, 0, 0, 0),
        cpu(A72, 0, 0, 0, 0),
        cpu(A53, 0, 0, 0, 0),
        cpu(A76, 1, 0, 1, 0),
        cpu(UNLISTED, 2, 1, 2, 0),
        cpu(UNLISTED, 3, 1, 1, 0),
        cpu(UNLISTED, 0, 0, 0, 0),
    ];
    fn tf_a_unaffected(f: u32, x1: u64) -> u64 {
        match (f, x1 as u32) {
            (0x8400_0000, _) => 0x1_0001,
            (0x8400_000A, _) => 0,
            (0x8000_0000, _) => 0x1_0001,
            (0x8000_0001, WORKAROUND_1 | WORKAROUND_3) => 1,
            (0x8000_0001, WORKAROUND_2) => NOT_REQUIRED as i64 as u64,
            _ => M1,
        }
    }
    fn smccc_1_1_without_workarounds(f: u32, _: u64) -> u64 {
        match f {
            0x8400_0000 => 0x1_0001,
            0x8400_000A => 0,
            0x8000_0000 => 0x1_0001,
            _ => M1,
        }
    }
    let firmwares: [fn(u32, u64) -> u64; 4] = [
        qemu_7_2,
        tf_a_affected,
        tf_a_unaffected,
        smccc_1_1_without_workarounds,
    ];
    let conduits = [
        FirmwareConduit::None,
        FirmwareConduit::Smc,
        FirmwareConduit::Hvc,
    ];
    for c in &cpus {
        for answer in firmwares {
            for conduit in conduits {
                let fw = Firmware::new(answer).discover(conduit);
                let d = Workarounds::decide(c, &fw);
                assert_eq!(d.conduit, conduit);
                for (w, asked) in [
                    (Workaround::W1, fw.wa1),
                    (Workaround::W2, fw.wa2),
                    (Workaround::W3, fw.wa3),
                ] {
                    let m = d.get(w);
                    if m == Mitigation::Firmware {
                        assert!(conduit != FirmwareConduit::None && asked == Some(0));
                        assert_ne!(w, Workaround::W2);
                    }
                    let allowed: &[i32] = match w {
                        Workaround::W2 => &[NS, 0, 1, NOT_REQUIRED],
                        _ => &[NS, 0, 1],
                    };
                    assert!(allowed.contains(&m.features_answer()), "{w:?}: {m:?}");
                }
                assert_eq!(
                    d.enable_wa2,
                    fw.wa2 == Some(0) && c.store_bypass() != Exposure::Unaffected
                );
            }
        }
    }
}

fn vcpu_with(w: Workarounds) -> Aarch64VCpu {
    let mut v = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    v.setup(Aarch64VCpuSetupConfig::default()).unwrap();
    v.set_entry(0x4008_0000).unwrap();
    v.test_set_workarounds(w);
    v
}

const HVC: u64 = 0x5A00_0000;
const SMC: u64 = 0x5E00_0000;

/// One SMCCC call through the vCPU: x0..x3 in, x0..x3 out.
fn guest_call(v: &mut Aarch64VCpu, esr: u64, x: [u64; 4]) -> [u64; 4] {
    for (n, r) in x.into_iter().enumerate() {
        v.set_gpr(n, r).unwrap();
    }
    assert_eq!(
        v.handle_sync_exit(&Syndrome {
            esr,
            ..Default::default()
        }),
        None,
        "answered inside the crate"
    );
    [0, 1, 2, 3].map(|n| v.gpr(n).unwrap())
}

fn features(v: &mut Aarch64VCpu, esr: u64, w: u32) -> i64 {
    guest_call(v, esr, [fid::SMCCC_ARCH_FEATURES as u64, w as u64, 0, 0])[0] as i64
}

/// What a guest sees on QEMU's models with QEMU 7.2's firmware (no SMCCC 1.1, so no
/// workaround calls): `-cpu cortex-a57`/`cortex-a72` must get NOT_SUPPORTED for all
/// three, and no call reaches the firmware; `-cpu max` (CSV2_2, SSBS2) gets 1 for
/// WORKAROUND_1 and _2 and NOT_SUPPORTED for _3.
#[test]
fn guest_answers_on_qemu_models() {
    let qemu = Firmware::new(qemu_7_2).discover(FirmwareConduit::Smc);
    for (name, c, expect) in [
        ("cortex-a57", cpu(A57, 0, 0, 0, 0), [NS, NS, NS]),
        ("cortex-a72", cpu(A72, 0, 0, 0, 0), [NS, NS, NS]),
        ("max", cpu(UNLISTED, 2, 1, 2, 0), [1, 1, NS]),
    ] {
        let mut v = vcpu_with(Workarounds::decide(&c, &qemu));
        for esr in [HVC, SMC] {
            for (w, e) in [WORKAROUND_1, WORKAROUND_2, WORKAROUND_3]
                .into_iter()
                .zip(expect)
            {
                assert_eq!(features(&mut v, esr, w), e as i64, "{name}: {w:#x}");
                // The call itself: refused with the same code, or a no-op (0).
                let x0 = guest_call(&mut v, esr, [w as u64, 1, 0, 0])[0] as i64;
                assert_eq!(x0, if e == 1 { 0 } else { e as i64 }, "{name}: call {w:#x}");
            }
        }
        assert_eq!(
            v.workaround_calls_forwarded(),
            0,
            "{name}: nothing forwarded"
        );
    }
}

/// With a firmware that implements the workarounds on an affected core (Cortex-A57),
/// WORKAROUND_1 and _3 are offered (0) and each call is made to the firmware with the
/// function ID alone, the guest getting zeros back whatever it passed; WORKAROUND_2 is
/// permanent (NOT_REQUIRED) and never forwarded.
#[test]
fn guest_calls_forwarded_only_when_needed_and_implemented() {
    let fw = Firmware::new(tf_a_affected).discover(FirmwareConduit::Smc);
    let d = Workarounds::decide(&cpu(A57, 0, 0, 0, 0), &fw);
    assert!(d.enable_wa2);
    let mut v = vcpu_with(d);
    assert_eq!(features(&mut v, HVC, WORKAROUND_1), 0);
    assert_eq!(features(&mut v, SMC, WORKAROUND_2), NOT_REQUIRED as i64);
    assert_eq!(features(&mut v, HVC, WORKAROUND_3), 0);
    let junk = [WORKAROUND_1 as u64, 0xdead, 0xbeef, 0xf00d];
    assert_eq!(guest_call(&mut v, HVC, junk), [0; 4]);
    assert_eq!(v.workaround_calls_forwarded(), 1);
    let pc = v.pc();
    assert_eq!(
        guest_call(&mut v, SMC, [WORKAROUND_3 as u64, 7, 7, 7]),
        [0; 4]
    );
    assert_eq!(v.pc(), pc + 4, "an SMC is stepped over");
    assert_eq!(v.workaround_calls_forwarded(), 2);
    // WORKAROUND_2(disable) from the guest: refused, not forwarded.
    assert_eq!(
        guest_call(&mut v, HVC, [WORKAROUND_2 as u64, 0, 0, 0])[0] as i64,
        NOT_REQUIRED as i64
    );
    assert_eq!(v.workaround_calls_forwarded(), 2);
    // What the firmware gets: the function ID only.
    assert_eq!(
        Workaround::W1.firmware_args(),
        [WORKAROUND_1 as u64, 0, 0, 0, 0, 0, 0]
    );
    // The same core without firmware (conduit None): nothing is offered.
    let none = Workarounds::decide(&cpu(A57, 0, 0, 0, 0), &FirmwareInfo::NONE);
    let mut v = vcpu_with(none);
    assert_eq!(features(&mut v, HVC, WORKAROUND_1), NS as i64);
    assert_eq!(guest_call(&mut v, HVC, junk)[0] as i64, NS as i64);
    assert_eq!(v.workaround_calls_forwarded(), 0);
    // A vCPU never bound knows nothing: NOT_SUPPORTED.
    let mut v = vcpu_with(Workarounds::UNKNOWN);
    assert_eq!(features(&mut v, SMC, WORKAROUND_3), NS as i64);
}
