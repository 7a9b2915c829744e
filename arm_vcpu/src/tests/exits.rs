//! Host unit tests of the pure logic: syndrome decoding, MMIO completion, stage-2
//! controls, HCR composition, register bookkeeping and context layout.
//!
//! Syndrome words are written out from the Arm ARM (DDI 0487) encodings of ESR_EL2
//! (EC \[31:26\], IL \[25\], ISS \[24:0\]); the builders in `esr::build` are checked against
//! the same literals and by round-trip property tests.

use proptest::prelude::*;
use std::vec::Vec;

use crate::context::offsets;
use crate::context::*;
use crate::esr::{self, build, DataAbortIss, ExceptionClass, FaultStatus, Syndrome, SysRegIss};
use crate::exit::{decode_sync, extend_load, Pending};
use crate::percpu::CpuFeatures;
use crate::sysreg::{Feature, FeatureSet};
use crate::vcpu::{guest_hcr_el2, is_valid_guest_spsr};
use crate::*;

/// Test device IPA used in the vectors (QEMU virt has nothing here).
const DEV: u64 = 0x0b00_0100;
/// HPFAR_EL2 for DEV: FIPA (bits \[47:4\]) = IPA\[51:12\].
const DEV_HPFAR: u64 = (DEV >> 12) << 4;

fn vcpu_with_regs() -> Aarch64VCpu {
    let mut v = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    for n in 0..31 {
        v.set_gpr(n, 0x1111_0000_0000_0000 | n as u64).unwrap();
    }
    v.regs_mut().elr = 0x4008_0000;
    v
}

/// A vCPU that hands every trap to the host (no crate-side emulation).
fn host_policy_vcpu() -> Aarch64VCpu {
    let mut v = vcpu_with_regs();
    v.setup(Aarch64VCpuSetupConfig {
        id_registers: IdRegisterPolicy::ExitToHost,
        unhandled_traps: TrapPolicy::ExitToHost,
        ..Default::default()
    })
    .unwrap();
    v
}

/// The exit for the host; fails the test if the crate handled it itself.
#[track_caller]
fn exit_of(v: &mut Aarch64VCpu, syn: &Syndrome) -> VmExit {
    match v.handle_sync_exit(syn) {
        Some(e) => e,
        None => panic!("ESR {:#x} was handled inside the crate", syn.esr),
    }
}

fn mmio_syn(esr: u64) -> Syndrome {
    Syndrome {
        esr,
        far: DEV,
        hpfar: DEV_HPFAR,
    }
}

struct LoadCase {
    insn: &'static str,
    esr: u64,
    reg: u8,
    width: AccessWidth,
    reg_64bit: bool,
    sign_extend: bool,
    device_value: u64,
    expect: u64,
}

/// The sign/zero-extension cases KVM's selftests exercise, against the pattern the
/// test device returns (0xF0E0_D0C0_B0A0_9080), with the destination pre-filled.
const LOADS: &[LoadCase] = &[
    LoadCase {
        insn: "ldrsb x3",
        esr: 0x9323_8005,
        reg: 3,
        width: AccessWidth::Byte,
        reg_64bit: true,
        sign_extend: true,
        device_value: 0x80,
        expect: 0xFFFF_FFFF_FFFF_FF80,
    },
    LoadCase {
        insn: "ldrsb w3",
        esr: 0x9323_0005,
        reg: 3,
        width: AccessWidth::Byte,
        reg_64bit: false,
        sign_extend: true,
        device_value: 0x80,
        expect: 0x0000_0000_FFFF_FF80,
    },
    LoadCase {
        insn: "ldrsh x4",
        esr: 0x9364_8005,
        reg: 4,
        width: AccessWidth::Half,
        reg_64bit: true,
        sign_extend: true,
        device_value: 0x9080,
        expect: 0xFFFF_FFFF_FFFF_9080,
    },
    LoadCase {
        insn: "ldrsh w4",
        esr: 0x9364_0005,
        reg: 4,
        width: AccessWidth::Half,
        reg_64bit: false,
        sign_extend: true,
        device_value: 0x9080,
        expect: 0x0000_0000_FFFF_9080,
    },
    LoadCase {
        insn: "ldrsw x5",
        esr: 0x93A5_8005,
        reg: 5,
        width: AccessWidth::Word,
        reg_64bit: true,
        sign_extend: true,
        device_value: 0xB0A0_9080,
        expect: 0xFFFF_FFFF_B0A0_9080,
    },
    LoadCase {
        insn: "ldr w6",
        esr: 0x9386_0005,
        reg: 6,
        width: AccessWidth::Word,
        reg_64bit: false,
        sign_extend: false,
        device_value: 0xB0A0_9080,
        expect: 0xB0A0_9080,
    },
    LoadCase {
        insn: "ldr x7",
        esr: 0x93C7_8005,
        reg: 7,
        width: AccessWidth::Dword,
        reg_64bit: true,
        sign_extend: false,
        device_value: 0xF0E0_D0C0_B0A0_9080,
        expect: 0xF0E0_D0C0_B0A0_9080,
    },
    LoadCase {
        insn: "ldrb w8",
        esr: 0x9308_0005,
        reg: 8,
        width: AccessWidth::Byte,
        reg_64bit: false,
        sign_extend: false,
        device_value: 0x80,
        expect: 0x80,
    },
    LoadCase {
        insn: "ldrh w9",
        esr: 0x9349_0005,
        reg: 9,
        width: AccessWidth::Half,
        reg_64bit: false,
        sign_extend: false,
        device_value: 0x9080,
        expect: 0x9080,
    },
    // A device that returns more bits than the access width: only the width counts.
    LoadCase {
        insn: "ldrb w10 (wide device value)",
        esr: 0x930A_0005,
        reg: 10,
        width: AccessWidth::Byte,
        reg_64bit: false,
        sign_extend: false,
        device_value: 0xFFFF_FF7F,
        expect: 0x7F,
    },
];

#[test]
fn mmio_loads_decode_and_extend_like_the_instruction() {
    for c in LOADS {
        let mut v = vcpu_with_regs();
        v.set_gpr(c.reg as usize, u64::MAX).unwrap();
        let exit = exit_of(&mut v, &mmio_syn(c.esr));
        assert_eq!(
            exit,
            VmExit::MmioRead {
                addr: DEV,
                width: c.width,
                reg: c.reg,
                reg_64bit: c.reg_64bit,
                sign_extend: c.sign_extend
            },
            "{}",
            c.insn
        );
        v.complete_mmio_read(c.device_value).unwrap();
        assert_eq!(v.gpr(c.reg as usize), Some(c.expect), "{}", c.insn);
        assert_eq!(v.pc(), 0x4008_0004, "{}: PC advances by IL", c.insn);
        for n in (0..31).filter(|&n| n != c.reg as usize) {
            assert_eq!(
                v.gpr(n),
                Some(0x1111_0000_0000_0000 | n as u64),
                "{}: x{} untouched",
                c.insn,
                n
            );
        }
        assert_eq!(
            v.complete_mmio_read(0),
            Err(VCpuError::NothingToComplete),
            "{}: completes once",
            c.insn
        );
    }
}

#[test]
fn load_into_xzr_is_discarded() {
    let mut v = vcpu_with_regs();
    let before = *v.regs();
    let exit = exit_of(&mut v, &mmio_syn(0x93DF_8005)); // ldr xzr, [x1]
    assert!(matches!(exit, VmExit::MmioRead { reg: 31, .. }));
    v.complete_mmio_read(0xdead_beef).unwrap();
    assert_eq!(v.regs().gpr, before.gpr);
    assert_eq!(v.pc(), before.elr + 4);
}

#[test]
fn stores_carry_the_register_truncated_and_zero_for_xzr() {
    let cases: &[(&str, u64, AccessWidth, u64)] = &[
        ("str xzr", 0x93DF_8045, AccessWidth::Dword, 0),
        ("str wzr", 0x939F_0045, AccessWidth::Word, 0),
        ("strb w2", 0x9302_0045, AccessWidth::Byte, 0x02),
        ("strh w2", 0x9342_0045, AccessWidth::Half, 0x0002),
        ("str w2", 0x9382_0045, AccessWidth::Word, 0x0000_0002),
        (
            "str x2",
            0x93C2_8045,
            AccessWidth::Dword,
            0x1111_0000_0000_0002,
        ),
    ];
    for &(insn, esr, width, data) in cases {
        let mut v = vcpu_with_regs();
        let exit = exit_of(&mut v, &mmio_syn(esr));
        assert_eq!(
            exit,
            VmExit::MmioWrite {
                addr: DEV,
                width,
                data
            },
            "{insn}"
        );
        assert_eq!(v.pending, Pending::Advance(4), "{insn}");
        v.resolve_pending().unwrap();
        assert_eq!(v.pc(), 0x4008_0004, "{insn}");
    }
}

#[test]
fn aborts_without_valid_syndrome_are_not_decoded_as_mmio() {
    // (description, ESR, FAR valid, write, expected fault)
    let cases: &[(&str, u64, bool, bool, Stage2Fault)] = &[
        (
            "ldp (ISV=0), translation L1",
            0x9200_0005,
            true,
            false,
            Stage2Fault::Translation(1),
        ),
        (
            "stp (ISV=0), translation L3",
            0x9200_0047,
            true,
            true,
            Stage2Fault::Translation(3),
        ),
        (
            "ISV=0, FnV=1",
            0x9200_0405,
            false,
            false,
            Stage2Fault::Translation(1),
        ),
        (
            "ISV=1 but stage-1 walk (S1PTW)",
            0x9383_8087,
            true,
            false,
            Stage2Fault::Translation(3),
        ),
        (
            "ISV=1, permission fault on walk",
            0x9383_808F,
            true,
            false,
            Stage2Fault::Permission(3),
        ),
        (
            "ISV=1 external abort",
            0x9383_8210,
            true,
            false,
            Stage2Fault::Other(FaultStatus::SyncExternal),
        ),
        (
            "ISV=0 access flag L2",
            0x9200_000A,
            true,
            false,
            Stage2Fault::AccessFlag(2),
        ),
        (
            "ISV=1 cache maintenance (CM)",
            0x9383_8145,
            true,
            true,
            Stage2Fault::Translation(1),
        ),
    ];
    for &(what, esr, far_valid, write, fault) in cases {
        let mut v = vcpu_with_regs();
        let exit = exit_of(
            &mut v,
            &Syndrome {
                esr,
                far: 0x1234_5678,
                hpfar: DEV_HPFAR,
            },
        );
        let ipa = if far_valid {
            (DEV & !0xfff) | 0x678
        } else {
            DEV & !0xfff
        };
        match exit {
            VmExit::DataAbort {
                ipa: i,
                far_valid: fv,
                write: w,
                fault: f,
                esr: e,
                ..
            } => {
                assert_eq!(
                    (i, fv, w, f, e),
                    (ipa, far_valid, write, fault, esr),
                    "{what}"
                );
            }
            other => panic!("{what}: {other:?}"),
        }
        assert_eq!(
            v.pending,
            Pending::None,
            "{what}: PC stays at the instruction"
        );
    }
}

#[test]
fn calls_wfx_sysregs_and_other_classes() {
    let mut v = host_policy_vcpu();
    let args = [0, 1, 2, 3, 4, 5, 6].map(|n| 0x1111_0000_0000_0000 | n);
    assert_eq!(
        exit_of(
            &mut v,
            &Syndrome {
                esr: 0x5A00_0000,
                ..Default::default()
            }
        ),
        VmExit::Hypercall { imm: 0, args }
    );
    assert_eq!(
        v.pending,
        Pending::None,
        "HVC: ELR already points after the HVC"
    );
    assert_eq!(
        exit_of(
            &mut v,
            &Syndrome {
                esr: 0x5A00_4711,
                ..Default::default()
            }
        ),
        VmExit::Hypercall { imm: 0x4711, args }
    );
    // A trapped SMC with a function ID nobody serves: NOT_SUPPORTED from the crate,
    // and the PC moves past the SMC (ELR pointed at it).
    let pc = v.pc();
    assert_eq!(
        v.handle_sync_exit(&Syndrome {
            esr: 0x5E00_0000,
            ..Default::default()
        }),
        None
    );
    assert_eq!((v.gpr(0), v.pc()), (Some(u64::MAX), pc + 4));
    assert_eq!(
        (v.gpr(1), v.gpr(2), v.gpr(3)),
        (Some(0), Some(0), Some(0)),
        "x1..x3 results"
    );
    for n in 0..4 {
        v.set_gpr(n, 0x1111_0000_0000_0000 | n as u64).unwrap();
    }

    // MRS x5, ID_AA64PFR0_EL1 (S3_0_C0_C4_0)
    assert_eq!(
        exit_of(
            &mut v,
            &Syndrome {
                esr: 0x6230_00A9,
                ..Default::default()
            }
        ),
        VmExit::SysRegRead {
            reg: SysRegAddr::ID_AA64PFR0_EL1,
            rt: 5
        }
    );
    assert_eq!(v.resolve_pending(), Err(VCpuError::PendingCompletion));
    v.complete_sysreg_read(0x42).unwrap();
    assert_eq!(v.gpr(5), Some(0x42));
    // MSR TTBR0_EL1, x2 (S3_0_C2_C0_0)
    assert_eq!(
        exit_of(
            &mut v,
            &Syndrome {
                esr: 0x6230_0840,
                ..Default::default()
            }
        ),
        VmExit::SysRegWrite {
            reg: SysRegAddr::new(3, 0, 2, 0, 0),
            value: 0x1111_0000_0000_0002
        }
    );
    // MSR TTBR0_EL1, xzr
    assert_eq!(
        exit_of(
            &mut v,
            &Syndrome {
                esr: 0x6230_0BE0,
                ..Default::default()
            }
        ),
        VmExit::SysRegWrite {
            reg: SysRegAddr::new(3, 0, 2, 0, 0),
            value: 0
        }
    );
    assert_eq!(
        exit_of(
            &mut v,
            &Syndrome {
                esr: 0x0600_0000,
                ..Default::default()
            }
        ),
        VmExit::WaitForInterrupt
    );
    assert_eq!(v.pending, Pending::Advance(4));
    assert_eq!(
        exit_of(
            &mut v,
            &Syndrome {
                esr: 0x0600_0001,
                ..Default::default()
            }
        ),
        VmExit::WaitForEvent
    );
    // Instruction abort from a lower EL, translation fault level 3.
    let syn = Syndrome {
        esr: 0x8200_0007,
        far: 0x4010_0abc,
        hpfar: (0x4010_0000u64 >> 12) << 4,
    };
    assert_eq!(
        exit_of(&mut v, &syn),
        VmExit::InstructionAbort {
            ipa: 0x4010_0abc,
            va: 0x4010_0abc,
            fault: Stage2Fault::Translation(3),
            esr: 0x8200_0007
        }
    );
    // Unknown reason (EC 0) and a class the crate does not name (EC 0x3F).
    assert_eq!(
        exit_of(
            &mut v,
            &Syndrome {
                esr: 0x0200_0000,
                ..Default::default()
            }
        ),
        VmExit::Unhandled {
            esr: 0x0200_0000,
            class: Some(ExceptionClass::Unknown)
        }
    );
    assert_eq!(
        exit_of(
            &mut v,
            &Syndrome {
                esr: 0xFE00_0000,
                ..Default::default()
            }
        ),
        VmExit::Unhandled {
            esr: 0xFE00_0000,
            class: None
        }
    );
}

#[test]
fn builders_match_the_literal_vectors() {
    assert_eq!(
        build::data_abort(0, true, 3, true, false, false, false, 5),
        0x9323_8005
    );
    assert_eq!(
        build::data_abort(3, false, 31, true, false, true, false, 5),
        0x93DF_8045
    );
    assert_eq!(build::sysreg(3, 0, 0, 4, 0, 5, true), 0x6230_00A9);
    assert_eq!(build::sysreg(3, 0, 2, 0, 0, 2, false), 0x6230_0840);
    assert_eq!(build::call(0x16, 0), 0x5A00_0000);
    assert_eq!(build::call(0x17, 0), 0x5E00_0000);
}

#[test]
fn fault_status_codes() {
    let cases: &[(u8, FaultStatus)] = &[
        (0b000000, FaultStatus::AddressSize(0)),
        (0b000101, FaultStatus::Translation(1)),
        (0b000111, FaultStatus::Translation(3)),
        (0b001001, FaultStatus::AccessFlag(1)),
        (0b001111, FaultStatus::Permission(3)),
        (0b010000, FaultStatus::SyncExternal),
        (0b010101, FaultStatus::SyncExternalOnWalk(1)),
        (0b100001, FaultStatus::Alignment),
        (0b110000, FaultStatus::TlbConflict),
        (0b111111, FaultStatus::Other(0b111111)),
    ];
    for &(fsc, expect) in cases {
        assert_eq!(FaultStatus::from_bits(fsc), expect, "{fsc:#08b}");
    }
}

#[test]
fn exception_classes_round_trip() {
    for ec in 0u8..64 {
        if let Some(c) = ExceptionClass::from_bits(ec) {
            assert_eq!(c as u8, ec);
        }
    }
    assert_eq!(esr::ec(0x5A00_0000), 0x16);
    assert_eq!(esr::instruction_length(0x5A00_0000), 4);
    assert_eq!(esr::instruction_length(0x5800_0000), 2);
}

#[test]
fn stage2_registers() {
    let ok = Stage2Config {
        root_pa: 0x4040_1000,
        vmid: 1,
        ipa_bits: 39,
        root_level: 1,
    };
    // T0SZ 25, SL0 1, IRGN0 1, ORGN0 1, SH0 3, TG0 0, PS 2 (40 bits), VS 1, RES1 bit 31.
    assert_eq!(
        ok.registers(2, true),
        Ok(((1 << 48) | 0x4040_1000, 0x800A_3559))
    );
    assert_eq!(ok.registers(2, false).map(|r| r.1), Ok(0x8002_3559));
    // PARange above 48 bits is capped at 48 (no LPA2 descriptors).
    assert_eq!(ok.registers(6, true).map(|r| (r.1 >> 16) & 7), Ok(5));
    let bad = |c: Stage2Config, parange| c.registers(parange, true).is_err();
    assert!(
        bad(
            Stage2Config {
                root_pa: 0x4040_1008,
                ..ok
            },
            2
        ),
        "unaligned root"
    );
    assert!(
        bad(Stage2Config { ipa_bits: 44, ..ok }, 5),
        "too many bits for level 1, even with 16 concatenated tables"
    );
    assert!(
        bad(Stage2Config { ipa_bits: 30, ..ok }, 2),
        "too few bits for level 1"
    );
    assert!(
        bad(
            Stage2Config {
                root_level: 3,
                ..ok
            },
            2
        ),
        "level 3 root"
    );
    assert!(
        bad(
            Stage2Config {
                ipa_bits: 44,
                root_level: 0,
                ..ok
            },
            2
        ),
        "IPA above PA size"
    );
    assert!(
        bad(
            Stage2Config {
                root_pa: 1 << 40,
                ..ok
            },
            2
        ),
        "root outside PA space"
    );
    assert!(ok.registers(7, true).is_err(), "unknown PARange");
    assert!(
        Stage2Config { vmid: 256, ..ok }
            .registers(2, false)
            .is_err(),
        "16-bit VMID on 8-bit CPU"
    );
    assert!(Stage2Config { vmid: 256, ..ok }.registers(2, true).is_ok());
    assert_eq!(
        Stage2Config {
            ipa_bits: 48,
            root_level: 0,
            ..ok
        }
        .registers(5, true)
        .map(|r| r.1 & 0xff),
        Ok(16 | (2 << 6))
    );
}

/// The initial stage-2 lookup level against the IPA and PA sizes (4 KiB granule), as
/// the Arm ARM's `AArch64.S2InvalidSL()` / `AArch64.S2InconsistentSL()` define it: a
/// 40-bit PA core (Cortex-A53, PARange 0b0010) cannot start a walk at level 0,
/// and gets its 40-bit IPA space from two concatenated level-1 tables instead.
#[test]
fn stage2_root_level_follows_the_pa_size() {
    use crate::stage2::pa_range_bits;
    let cfg = |ipa_bits, root_level, root_pa| Stage2Config {
        root_pa,
        vmid: 1,
        ipa_bits,
        root_level,
    };
    // PARange 2 (40 bits): level 0 is refused whatever the IPA size ...
    for parange in [0, 1, 2, 3] {
        for bits in [40, 42] {
            if pa_range_bits(parange).unwrap() >= bits {
                assert!(
                    cfg(bits, 0, 0x4000_0000).registers(parange, false).is_err(),
                    "level 0 with PARange {parange}, {bits}-bit IPA"
                );
            }
        }
    }
    // ... and allowed from 44 bits (PARange 4) on.
    for parange in [4, 5, 6] {
        let (_, vtcr) = cfg(40, 0, 0x4000_0000).registers(parange, true).unwrap();
        assert_eq!(vtcr & 0xff, 24 | (2 << 6), "T0SZ 24, SL0 0b10");
    }
    // Two concatenated level-1 tables: T0SZ 24, SL0 0b01, PS 40 bits, 8 KiB root.
    let two = cfg(40, 1, 0x4040_2000);
    assert_eq!(two.root_tables(), Ok(2));
    assert_eq!(
        two.registers(2, false),
        Ok(((1 << 48) | 0x4040_2000, 0x8002_3558))
    );
    // Aligned to the tables' total size, not just 4 KiB.
    assert!(cfg(40, 1, 0x4040_1000).registers(2, false).is_err());
    // 16 tables at most: 43 bits at level 1, 34 at level 2; 64 KiB alignment.
    assert_eq!(cfg(43, 1, 0x4041_0000).root_tables(), Ok(16));
    assert!(cfg(43, 1, 0x4041_0000).registers(4, true).is_ok());
    assert!(cfg(43, 1, 0x4040_8000).registers(4, true).is_err());
    assert!(
        cfg(43, 1, 0x4041_0000).registers(2, true).is_err(),
        "IPA above PA"
    );
    assert_eq!(cfg(34, 2, 0x4041_0000).root_tables(), Ok(16));
    assert!(cfg(35, 2, 0x4041_0000).root_tables().is_err());
    assert_eq!(cfg(31, 2, 0x4040_2000).root_tables(), Ok(2));
    // One table: every size up to 9 bits above the level, and one bit at least.
    for (level, lo, hi) in [(0u8, 40u8, 48u8), (1, 31, 39), (2, 22, 30)] {
        assert_eq!(cfg(lo, level, 0x1000).root_tables(), Ok(1));
        assert_eq!(cfg(hi, level, 0x1000).root_tables(), Ok(1));
        assert!(cfg(lo - 1, level, 0x1000).root_tables().is_err());
    }
    // Level 0 never concatenates (it would need FEAT_LPA2's 52-bit IPA).
    assert!(cfg(49, 0, 0x4041_0000).root_tables().is_err());
}

#[test]
fn guest_hcr_composition() {
    /// `HCR_EL2` bits from DDI 0487 D23.2.53, written out independently of the table.
    mod hcr {
        pub const VM: u64 = 1 << 0;
        pub const SWIO: u64 = 1 << 1;
        pub const FMO: u64 = 1 << 3;
        pub const IMO: u64 = 1 << 4;
        pub const AMO: u64 = 1 << 5;
        pub const FB: u64 = 1 << 9;
        pub const TWI: u64 = 1 << 13;
        pub const TWE: u64 = 1 << 14;
        pub const TID1: u64 = 1 << 16;
        pub const TID3: u64 = 1 << 18;
        pub const TSC: u64 = 1 << 19;
        pub const TSW: u64 = 1 << 22;
        pub const RW: u64 = 1 << 31;
        pub const TLOR: u64 = 1 << 35;
        pub const TERR: u64 = 1 << 36;
        pub const TEA: u64 = 1 << 37;
        pub const APK: u64 = 1 << 40;
        pub const API: u64 = 1 << 41;
        pub const TID5: u64 = 1 << 58;
    }
    let base = Aarch64VCpuSetupConfig::default();
    let v = guest_hcr_el2(&base, FeatureSet::EMPTY);
    for bit in [
        hcr::VM,
        hcr::SWIO,
        hcr::IMO,
        hcr::FMO,
        hcr::AMO,
        hcr::TSC,
        hcr::RW,
        hcr::FB,
        hcr::TSW,
        hcr::TID3,
        hcr::TID1,
    ] {
        assert_ne!(v & bit, 0, "{bit:#x}");
    }
    assert_eq!(v & (hcr::TWI | hcr::TWE | hcr::API | hcr::APK), 0);
    // Bits of features the host lacks are RES0: not set.
    assert_eq!(v & (hcr::TLOR | hcr::TERR | hcr::TEA | hcr::TID5), 0);
    let rich = FeatureSet::EMPTY
        .with(Feature::Lor)
        .with(Feature::Ras)
        .with(Feature::Mte2);
    let v = guest_hcr_el2(&base, rich);
    assert_eq!(
        v & (hcr::TLOR | hcr::TERR | hcr::TEA | hcr::TID5),
        hcr::TLOR | hcr::TERR | hcr::TEA | hcr::TID5
    );
    let all = Aarch64VCpuSetupConfig {
        passthrough_interrupt: true,
        passthrough_timer: true,
        trap_wfi: true,
        trap_wfe: true,
        ..Default::default()
    };
    let v = guest_hcr_el2(&all, FeatureSet::EMPTY.with(Feature::Pauth));
    assert_eq!(
        v & (hcr::IMO | hcr::FMO),
        0,
        "passthrough: IRQs go straight to EL1"
    );
    assert_eq!(
        v & (hcr::TID3 | hcr::TWI | hcr::TWE),
        hcr::TID3 | hcr::TWI | hcr::TWE
    );
    // Lazy PAuth: API/APK clear (trapping) until the keys are loaded.
    assert_eq!(v & (hcr::API | hcr::APK), 0);
    // E2H (bit 34) and TGE (bit 27) stay clear: the host is non-VHE.
    assert_eq!(v & ((1 << 34) | (1 << 27)), 0);
}

#[test]
fn guest_spsr_validation() {
    assert!(is_valid_guest_spsr(SPSR_EL1H_DAIF_MASKED));
    assert!(is_valid_guest_spsr(0x3c4)); // EL1t
    assert!(is_valid_guest_spsr(0x0)); // EL0t
    assert!(is_valid_guest_spsr(0x10)); // AArch32 User
    assert!(
        !is_valid_guest_spsr(0x3c9),
        "EL2h must never be entered as a guest"
    );
    assert!(!is_valid_guest_spsr(0x3c8), "EL2t");
    assert!(!is_valid_guest_spsr(0x3cd), "EL3h");
    assert!(
        !is_valid_guest_spsr(0x13),
        "AArch32 Supervisor (EL1 is AArch64)"
    );
}

#[test]
fn host_frame_changes_are_checked_before_entry() {
    let mut v = vcpu_with_regs();
    v.regs_mut().spsr = 0x3c9; // EL2h
    assert!(matches!(
        v.resolve_pending(),
        Err(VCpuError::InvalidConfig(_))
    ));
    v.regs_mut().spsr = 0x3c5;
    assert_eq!(v.resolve_pending(), Ok(()));
}

#[test]
fn lifecycle_errors_are_typed() {
    let cfg = Aarch64VCpuCreateConfig {
        mpidr_el1: 1 << 31,
        ..Default::default()
    };
    assert!(matches!(
        Aarch64VCpu::new(cfg),
        Err(VCpuError::InvalidConfig(_))
    ));
    let mut v = Aarch64VCpu::new(Aarch64VCpuCreateConfig {
        dtb_addr: 0x4800_0000,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(v.run(), Err(VCpuError::NotBound));
    let mut percpu = Aarch64PerCpu::new(0);
    assert!(
        matches!(v.bind(&mut percpu), Err(VCpuError::InvalidState { .. })),
        "bind before setup"
    );
    v.setup(Aarch64VCpuSetupConfig::default()).unwrap();
    assert!(
        matches!(v.bind(&mut percpu), Err(VCpuError::InvalidState { .. })),
        "bind before entry/stage 2"
    );
    assert!(matches!(
        v.set_entry(0x4008_0002),
        Err(VCpuError::InvalidConfig(_))
    ));
    v.set_entry(0x4008_0000).unwrap();
    assert_eq!(v.gpr(0), Some(0x4800_0000), "x0 = DTB address");
    assert_eq!(v.regs().spsr, SPSR_EL1H_DAIF_MASKED);
    assert!(v
        .set_stage2_root(Stage2Config {
            root_pa: 0x1001,
            vmid: 1,
            ipa_bits: 39,
            root_level: 1
        })
        .is_err());
    v.set_stage2_root(Stage2Config {
        root_pa: 0x4040_1000,
        vmid: 1,
        ipa_bits: 39,
        root_level: 1,
    })
    .unwrap();
    assert_eq!(v.bind(&mut percpu), Err(VCpuError::CpuNotEnabled));
    assert_eq!(percpu.hardware_enable(), Err(VCpuError::NoHardwareSupport));
    assert!(!has_hardware_support());
    assert!(matches!(
        v.unbind(&mut percpu),
        Err(VCpuError::InvalidState { .. })
    ));
    assert_eq!(v.set_gpr(31, 0), Err(VCpuError::InvalidRegister(31)));
    assert_eq!(v.gpr(31), Some(0), "x31 reads as XZR");
    assert_eq!(v.gpr(32), None);
    assert_eq!(v.complete_sysreg_read(0), Err(VCpuError::NothingToComplete));
    v.set_sp_el0(0x1234);
    assert_eq!(v.sp_el0(), 0x1234);
    assert_eq!(
        v.system_registers().vmpidr_el2,
        1 << 31,
        "VMPIDR_EL2 has RES1 bit 31"
    );
    assert_eq!(v.system_registers().sctlr_el1, SCTLR_EL1_RESET);
}

#[test]
fn context_layout_matches_the_assembly() {
    use core::mem::{align_of, offset_of, size_of};
    assert_eq!(size_of::<Aarch64ContextFrame>(), 34 * 8);
    assert_eq!(align_of::<Aarch64ContextFrame>(), 16);
    assert_eq!(offset_of!(Aarch64ContextFrame, sp_el0), 31 * 8);
    assert_eq!(offset_of!(Aarch64ContextFrame, elr), 32 * 8);
    assert_eq!(offset_of!(Aarch64ContextFrame, spsr), 33 * 8);
    assert_eq!(size_of::<FpSimdState>(), 32 * 16 + 16);
    assert_eq!(size_of::<crate::percpu::HostTrapFrame>() % 16, 0);
}

#[test]
fn cpu_features_from_id_registers() {
    // QEMU 7.2 -cpu max-like values: PARange 5 (48 bits), VMIDBits 2 (16), APA/API set, GIC 1.
    let f = CpuFeatures::from_id_registers(
        0x5,
        0x2 << 4,
        (1 << 4) | (1 << 8),
        0,
        1 << 24,
        0x000f_0510,
        0x8000_0001,
    );
    assert_eq!(
        (f.pa_range, f.vmid16, f.pauth, f.gicv3, f.mpidr),
        (5, true, true, true, 1)
    );
    let f = CpuFeatures::from_id_registers(0x2, 0x0, 0, 0x1 << 12, 0, 0, 0x0100_0203_0000);
    assert_eq!(
        (f.pa_range, f.vmid16, f.pauth, f.gicv3),
        (2, false, true, false),
        "APA3 alone means PAuth"
    );
    assert_eq!(
        f.mpidr, 0x03_0000,
        "bits [31:24] (U, MT, RES1) are not affinity"
    );
}

fn reference_extend(v: u64, w: AccessWidth, sign: bool, sf: bool) -> u64 {
    let x: u64 = match (w, sign) {
        (AccessWidth::Byte, true) => v as u8 as i8 as i64 as u64,
        (AccessWidth::Half, true) => v as u16 as i16 as i64 as u64,
        (AccessWidth::Word, true) => v as u32 as i32 as i64 as u64,
        (AccessWidth::Byte, false) => v as u8 as u64,
        (AccessWidth::Half, false) => v as u16 as u64,
        (AccessWidth::Word, false) => v as u32 as u64,
        (AccessWidth::Dword, _) => v,
    };
    if sf {
        x
    } else {
        x as u32 as u64
    }
}

fn width() -> impl Strategy<Value = AccessWidth> {
    prop_oneof![
        Just(AccessWidth::Byte),
        Just(AccessWidth::Half),
        Just(AccessWidth::Word),
        Just(AccessWidth::Dword)
    ]
}

proptest! {
    #[test]
    fn data_abort_iss_round_trips(sas in 0u8..4, sse: bool, srt in 0u8..32, sf: bool, ar: bool, wnr: bool, s1ptw: bool, dfsc in 0u8..64) {
        let esr = build::data_abort(sas, sse, srt, sf, ar, wnr, s1ptw, dfsc);
        let iss = DataAbortIss::decode(esr);
        prop_assert!(iss.isv);
        prop_assert_eq!((iss.sas, iss.sse, iss.srt, iss.sf, iss.ar, iss.wnr, iss.s1ptw), (sas, sse, srt, sf, ar, wnr, s1ptw));
        prop_assert_eq!(iss.dfsc, FaultStatus::from_bits(dfsc));
        prop_assert_eq!(esr::ec(esr), 0x24);
    }

    #[test]
    fn sysreg_iss_round_trips(op0 in 0u8..4, op1 in 0u8..8, crn in 0u8..16, crm in 0u8..16, op2 in 0u8..8, rt in 0u8..32, read: bool) {
        let esr = build::sysreg(op0, op1, crn, crm, op2, rt, read);
        let iss = SysRegIss::decode(esr);
        prop_assert_eq!((iss.op0, iss.op1, iss.crn, iss.crm, iss.op2, iss.rt, iss.read), (op0, op1, crn, crm, op2, rt, read));
        let addr = SysRegAddr::from_iss(esr::iss(esr));
        prop_assert_eq!(addr, SysRegAddr::new(op0, op1, crn, crm, op2));
        prop_assert_eq!((addr.op0(), addr.op1(), addr.crn(), addr.crm(), addr.op2()), (op0, op1, crn, crm, op2));
    }

    #[test]
    fn extend_load_matches_integer_casts(v: u64, w in width(), sign: bool, sf: bool) {
        // A sign-extending load of 64 bits does not exist; SSE is only set below 64.
        let sign = sign && w != AccessWidth::Dword;
        prop_assert_eq!(extend_load(v, w, sign, sf), reference_extend(v, w, sign, sf));
    }

    #[test]
    fn mmio_exit_address_and_register_round_trip(ipa in 0u64..(1 << 40), sas in 0u8..4, srt in 0u8..31, sf: bool, wnr: bool) {
        let esr = build::data_abort(sas, false, srt, sf, false, wnr, false, 0b000111);
        let syn = Syndrome { esr, far: ipa, hpfar: (ipa >> 12) << 4 };
        let frame = Aarch64ContextFrame { gpr: [0xAAAA_BBBB_CCCC_DDDD; 31], ..Default::default() };
        let (exit, _) = decode_sync(&syn, &frame);
        let width = AccessWidth::from_sas(sas);
        if wnr {
            prop_assert_eq!(exit, VmExit::MmioWrite { addr: ipa, width, data: 0xAAAA_BBBB_CCCC_DDDD & width.mask() });
        } else {
            prop_assert_eq!(exit, VmExit::MmioRead { addr: ipa, width, reg: srt, reg_64bit: sf, sign_extend: false });
        }
    }

    #[test]
    fn any_syndrome_decodes_without_panic(esr: u64, far: u64, hpfar: u64) {
        let frame = Aarch64ContextFrame::default();
        let _ = decode_sync(&Syndrome { esr, far, hpfar }, &frame);
    }
}

#[test]
fn offsets_are_consistent() {
    let v: Vec<usize> = std::vec![offsets::ELR, offsets::SPSR, offsets::HOST_X19];
    assert_eq!(v, std::vec![256, 264, 272]);
}

/// The exit fast path's ID-register test gives the decoder's answer for every
/// system-register trap syndrome (all Op0/Op1/CRn/CRm/Op2, both directions, several
/// Rt) and never fires for another class, a 16-bit IL or an asynchronous exit.
#[test]
fn fast_id_read_agrees_with_the_decoder() {
    let mut hits = 0;
    for op0 in 0..4u64 {
        for op1 in 0..8u64 {
            for crn in 0..16u64 {
                for crm in 0..16u64 {
                    for op2 in 0..8u64 {
                        for rt in [0u64, 7, 30, 31] {
                            for dir in 0..2u64 {
                                let iss = (op0 << 20)
                                    | (op2 << 17)
                                    | (op1 << 14)
                                    | (crn << 10)
                                    | (rt << 5)
                                    | (crm << 1)
                                    | dir;
                                let esr = (0x18 << 26) | (1 << 25) | iss;
                                let d = SysRegIss::decode(esr);
                                let reg = SysRegAddr::new(d.op0, d.op1, d.crn, d.crm, d.op2);
                                let want = match (d.read, crate::idregs::index(reg)) {
                                    (true, Some(i)) => Some((i, d.rt)),
                                    _ => None,
                                };
                                let got = crate::idregs::fast_id_read(esr);
                                assert_eq!(got, want, "esr {esr:#x}");
                                if let Some((i, _)) = got {
                                    assert!(i < crate::idregs::ID_SPACE_LEN);
                                    hits += 1;
                                }
                                // Another class, IL = 0, or the async-exit flag: never.
                                assert_eq!(crate::idregs::fast_id_read(esr ^ (1 << 26)), None);
                                assert_eq!(crate::idregs::fast_id_read(esr & !(1 << 25)), None);
                                assert_eq!(crate::idregs::fast_id_read(esr | (1 << 63)), None);
                                // A vCPU whose ID registers exit to the host: never.
                                assert_eq!(
                                    crate::idregs::fast_id_read_as(
                                        esr,
                                        [crate::idregs::FAST_ID_MASK, crate::idregs::FAST_ID_NEVER]
                                    ),
                                    None
                                );
                            }
                        }
                    }
                }
            }
        }
    }
    // 7 CRm values x 8 Op2 values x 4 Rt values.
    assert_eq!(hits, 7 * 8 * 4);
}

/// An ID register read from ID_AA64PFR0_EL1 (MRS x3, ID_AA64PFR0_EL1 = 0xd5380403):
/// the literal syndrome EC 0x18, IL 1, ISS Op0 3, Op2 0, Op1 0, CRn 0, Rt 3, CRm 4, read.
#[test]
fn fast_id_read_literal() {
    let esr = 0x6230_0069u64;
    assert_eq!(crate::idregs::fast_id_read(esr), Some((24, 3)));
    // The same with Direction = 0 (MSR, UNDEFINED for an ID register): slow path.
    assert_eq!(crate::idregs::fast_id_read(esr & !1), None);
}

/// The fast path's pattern follows the setup's ID-register policy.
#[test]
fn fast_id_pattern_follows_the_policy() {
    use crate::idregs::{fast_id_read_as, FAST_ID_MASK, FAST_ID_NEVER, FAST_ID_WANT};
    let esr = 0x6230_0069u64;
    let mut v = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    assert_eq!(v.id_fast_pattern(), [FAST_ID_MASK, FAST_ID_WANT]);
    let host = Aarch64VCpuSetupConfig {
        id_registers: IdRegisterPolicy::ExitToHost,
        ..Default::default()
    };
    v.setup(host).unwrap();
    assert_eq!(v.id_fast_pattern(), [FAST_ID_MASK, FAST_ID_NEVER]);
    assert_eq!(fast_id_read_as(esr, v.id_fast_pattern()), None);
    v.setup(Aarch64VCpuSetupConfig::default()).unwrap();
    assert_eq!(fast_id_read_as(esr, v.id_fast_pattern()), Some((24, 3)));
}
