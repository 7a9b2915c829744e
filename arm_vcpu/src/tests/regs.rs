//! Registers by ID (`reg`) and snapshots (`snapshot`): the list against the switch list
//! and the inventory, every listed register readable and writable (or typed
//! read-only), IDs, typed errors, the byte format (round trip, version, length and
//! checksum refusal) and the compatibility check.

use proptest::prelude::*;
use std::collections::BTreeSet;
use std::vec::Vec;

use crate::context::SWITCHED;
use crate::debug::{self, Counts, DebugCaps, DebugReg, DebugView};
use crate::esr::{build, Syndrome};
use crate::idregs::{self, IdRegisters};
use crate::reg::{self, Access, Completion, Reg, RegError, Shape, SysKind, VcpuReg, VgicReg};
use crate::snapshot::{self, Incompatibility, Snapshot, SnapshotError};
use crate::sysreg::{Emulation, Feature, FeatureSet, Treatment, INVENTORY};
use crate::vgic::{self, VirtualInterrupt, VtrInfo};
use crate::*;

/// QEMU 7.2 `-cpu max`: 4 list registers, 5 priority bits, 24-bit INTIDs.
const QEMU_VTR: VtrInfo = VtrInfo {
    list_regs: 4,
    pri_bits: 5,
    pre_bits: 5,
    id_bits: 24,
};
/// The largest interface: 16 list registers, 7 priority bits (4 APRs per group).
const BIG_VTR: VtrInfo = VtrInfo {
    list_regs: 16,
    pri_bits: 7,
    pre_bits: 7,
    id_bits: 24,
};

/// QEMU's `-cpu max` debug view: 6 breakpoints (2 context-aware), 4 watchpoints, and
/// no claim tags, DTR or MDCCINT (what its probe finds).
const QEMU_DEBUG: (DebugView, DebugCaps) = (
    DebugView {
        counts: Counts {
            brps: 6,
            wrps: 4,
            ctx_cmps: 2,
        },
        double_lock: false,
    },
    DebugCaps {
        claim_bits: 0,
        dtr: false,
        mdccint: false,
    },
);
/// Everything: 16 of each, FEAT_DoubleLock, 8 claim tags, DTR, MDCCINT.
const FULL_DEBUG: (DebugView, DebugCaps) = (
    DebugView {
        counts: Counts {
            brps: 16,
            wrps: 16,
            ctx_cmps: 2,
        },
        double_lock: true,
    },
    DebugCaps {
        claim_bits: 0xff,
        dtr: true,
        mdccint: true,
    },
);

fn shape_of(has: FeatureSet, vtr: VtrInfo, passthrough_timer: bool) -> Shape {
    Shape {
        has,
        vtr,
        passthrough_timer,
        debug: QEMU_DEBUG.0,
        caps: QEMU_DEBUG.1,
    }
}

fn ids(seed: u64) -> IdRegisters {
    let mut v = [0u64; idregs::ID_SPACE_LEN];
    for (i, x) in v.iter_mut().enumerate() {
        *x = seed.rotate_left(i as u32) ^ (i as u64) << 56;
    }
    IdRegisters::from_values(v)
}

fn shapes() -> Vec<(Shape, Option<IdRegisters>)> {
    let mut out = Vec::new();
    for has in [
        FeatureSet::EMPTY,
        FeatureSet::ALL,
        FeatureSet::EMPTY.with(Feature::Pauth),
    ] {
        for vtr in [VtrInfo::default(), QEMU_VTR, BIG_VTR] {
            for passthrough_timer in [false, true] {
                for i in [None, Some(ids(0x1234_5678_9abc_def0))] {
                    for (debug, caps) in [
                        (DebugView::default(), DebugCaps::default()),
                        QEMU_DEBUG,
                        FULL_DEBUG,
                    ] {
                        out.push((
                            Shape {
                                has,
                                vtr,
                                passthrough_timer,
                                debug,
                                caps,
                            },
                            i,
                        ));
                    }
                }
            }
        }
    }
    out
}

/// A vCPU whose registers have `shape` (as after restoring a snapshot taken on such a
/// core: the host tests cannot bind).
fn vcpu_with(shape: Shape, i: Option<IdRegisters>) -> Aarch64VCpu {
    let mut v = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    v.setup(Aarch64VCpuSetupConfig {
        passthrough_timer: shape.passthrough_timer,
        ..Default::default()
    })
    .unwrap();
    v.restore(&Snapshot::empty(shape, i)).unwrap();
    assert_eq!(v.reg_shape(), shape);
    v
}

/// Whether `r` holds any 64-bit (or 128-bit) value as it is, so distinct values can be
/// written to all such registers and read back.
fn plain(r: Reg, shape: &Shape) -> bool {
    match r {
        // The virtual count is CNTVOFF_EL2 seen from the guest (an alias by design).
        Reg::VirtualCount => false,
        Reg::Pstate | Reg::Vgic(VgicReg::Lr(_) | VgicReg::Queued(_)) | Reg::Vcpu(_) => false,
        Reg::Sys(a) => {
            matches!(
                reg::sys_kind(a, shape, true),
                Some(
                    SysKind::Switched
                        | SysKind::HostOffset
                        | SysKind::Debug(
                            DebugReg::Bvr(_)
                                | DebugReg::Bcr(_)
                                | DebugReg::Wvr(_)
                                | DebugReg::Wcr(_)
                                | DebugReg::Mdscr
                                | DebugReg::Mdccint
                        )
                )
            ) || (shape.passthrough_timer
                && reg::sys_kind(a, shape, true) == Some(SysKind::PhysTimer))
        }
        _ => true,
    }
}

/// A valid value for any writable register, different for different `seed`s where the
/// register allows it.
fn sample(r: Reg, seed: u64, shape: &Shape) -> u128 {
    let x = seed ^ r.id().wrapping_mul(0x9E37_79B9_7F4A_7C15);
    match r {
        Reg::V(_) => (x as u128) << 64 | !x as u128,
        Reg::Pstate => [0x3c5, 0x5, 0x4, 0x0, 0x10][(x % 5) as usize],
        Reg::Sys(a) => match reg::sys_kind(a, shape, true) {
            Some(SysKind::Cpacr) => ((x & 3) << 20) as u128,
            Some(SysKind::PhysTimer) if !shape.passthrough_timer => {
                if a == timer::CNTP_CTL_EL0 {
                    (x & 3) as u128
                } else {
                    x as u128
                }
            }
            Some(SysKind::Debug(d)) => match d {
                DebugReg::OsDtrRx | DebugReg::OsDtrTx | DebugReg::OsEccr => (x as u32) as u128,
                DebugReg::ClaimClr => (x & shape.caps.claim_bits) as u128,
                DebugReg::OsLsr => debug::oslsr(x & 1 != 0) as u128,
                DebugReg::OsDlr | DebugReg::DbgPrcr => (x & 1) as u128,
                _ => x as u128,
            },
            _ => x as u128,
        },
        Reg::Vgic(VgicReg::Lr(n)) => vgic::encode(&VirtualInterrupt {
            intid: 32 + n as u32 + (seed % 32) as u32 * 16,
            priority: (x >> 8) as u8 & 0xf8,
            group1: x & 1 != 0,
            hw_intid: None,
        }) as u128,
        Reg::Vgic(VgicReg::Queued(_)) => 0,
        Reg::Vcpu(VcpuReg::SErrorPending) => (x & 1) as u128,
        Reg::Vcpu(VcpuReg::Completion) => Completion::Advance(4).encode() as u128,
        Reg::Vcpu(VcpuReg::PowerState) => (x % 3) as u128,
        _ => x as u128,
    }
}

#[test]
fn ids_round_trip_and_name_one_register_each() {
    for (shape, i) in shapes() {
        let v = vcpu_with(shape, i);
        let mut seen = BTreeSet::new();
        for r in v.reg_list() {
            assert_eq!(Reg::from_id(r.id()), Ok(r), "{r}");
            assert!(seen.insert(r.id()), "{r} listed twice");
            assert_eq!(r.bits(), if matches!(r, Reg::V(_)) { 128 } else { 64 });
        }
        assert!(seen.len() <= reg::MAX_REGS);
    }
    // SP_EL0/SP_EL1 have one name each.
    let sp0 = Reg::Sys(SysRegAddr::new(3, 0, 4, 1, 0));
    assert_eq!(sp0.canonical(), Reg::SpEl0);
    assert!(Reg::from_id(sp0.id()).is_err());
}

proptest! {
    #[test]
    fn any_id_is_a_register_or_a_typed_error(id: u64) {
        match Reg::from_id(id) {
            Ok(r) => prop_assert_eq!(r.id(), id),
            Err(e) => prop_assert_eq!(e, RegError::UnknownId(id)),
        }
    }
}

#[test]
fn every_listed_register_is_gettable_and_settable_or_typed_read_only() {
    for (shape, i) in shapes() {
        let mut v = vcpu_with(shape, i);
        let list: Vec<Reg> = v.reg_list().collect();
        for &r in &list {
            let got = v.get_reg(r).unwrap_or_else(|e| panic!("{r}: {e}"));
            match v.reg_access(r) {
                Access::ReadOnly => {
                    assert_eq!(v.set_reg(r, got), Err(RegError::ReadOnly(r)), "{r}");
                    assert!(
                        matches!(r, Reg::Sys(a) if idregs::index(a).is_some()
                            || SWITCHED.iter().any(|s| s.addr == a && s.kind.is_control())),
                        "{r} read-only but neither an ID register nor an EL2 control"
                    );
                }
                Access::ReadWrite => {
                    // Writing back what was read changes nothing.
                    v.set_reg(r, got).unwrap_or_else(|e| panic!("{r}: {e}"));
                    assert_eq!(v.get_reg(r), Ok(got), "{r} write-back");
                    // A new value sticks.
                    let s = sample(r, 7, &shape);
                    v.set_reg(r, s)
                        .unwrap_or_else(|e| panic!("{r} = {s:#x}: {e}"));
                    assert_eq!(v.get_reg(r), Ok(s), "{r}");
                }
            }
        }
        // Distinct values in every plain register: no two IDs share storage.
        for (k, &r) in list.iter().enumerate() {
            if plain(r, &shape) {
                v.set_reg(r, sample(r, k as u64, &shape)).unwrap();
            }
        }
        for (k, &r) in list.iter().enumerate() {
            if plain(r, &shape) {
                assert_eq!(v.get_reg(r), Ok(sample(r, k as u64, &shape)), "{r} aliased");
            }
        }
    }
}

#[test]
fn the_register_list_is_the_switch_list_the_emulated_rows_and_the_id_view() {
    for has in [
        FeatureSet::EMPTY,
        FeatureSet::ALL,
        FeatureSet::EMPTY.with(Feature::Sme),
    ] {
        for known in [false, true] {
            let shape = Shape {
                debug: FULL_DEBUG.0,
                caps: FULL_DEBUG.1,
                ..shape_of(has, QEMU_VTR, false)
            };
            let v = vcpu_with(shape, known.then(|| ids(1)));
            let listed: BTreeSet<u32> = v
                .reg_list()
                .filter_map(|r| match r {
                    Reg::Sys(a) => Some(a.0),
                    Reg::SpEl0 | Reg::SpEl1 => None,
                    _ => None,
                })
                .collect();
            let mut expected = BTreeSet::new();
            for s in SWITCHED {
                let sp = s.name == "SP_EL0" || s.name == "SP_EL1";
                if s.gate.on(has) && !sp {
                    expected.insert(s.addr.0);
                }
            }
            // The debug state: every breakpoint/watchpoint register of the view, and
            // the nine others (MDSCR, MDCCINT, OSDTRRX/TX, claim tags, OSECCR, OSLSR,
            // OSDLR, DBGPRCR), each an inventory row the crate switches or emulates.
            let mut debug_regs = 0;
            for row in INVENTORY {
                let lazy = matches!(
                    row.treat,
                    Treatment::LazyDebug | Treatment::Emulated(Emulation::OsLock)
                );
                if lazy
                    && row.first == row.last
                    && DebugReg::decode(row.first).is_some_and(reg::debug_state)
                {
                    expected.insert(row.first.0);
                    debug_regs += 1;
                }
            }
            assert_eq!(debug_regs, 16 * 4 + 9, "debug registers in the inventory");
            if known {
                for i in 0..idregs::ID_SPACE_LEN {
                    expected.insert(idregs::encoding(i).0);
                }
            }
            assert_eq!(listed, expected, "has {has:?} ids {known}");
            // Every inventory row whose state is switched is reachable by ID where the
            // host has it (through the register an access is redirected to).
            for row in INVENTORY.iter().filter(|r| r.treat.switched()) {
                let target = match row.treat {
                    Treatment::SwitchedAs(t) => t,
                    _ => row.first,
                };
                let Some(s) = SWITCHED.iter().find(|s| s.addr == target) else {
                    panic!("{} switched but not in the switch list", row.name)
                };
                if s.gate.on(has) {
                    assert!(v.get_reg(Reg::Sys(target)).is_ok(), "{}", row.name);
                } else {
                    assert_eq!(
                        v.get_reg(Reg::Sys(target)),
                        Err(RegError::Unknown(Reg::Sys(target).canonical())),
                        "{} without its feature",
                        row.name
                    );
                }
            }
        }
    }
}

#[test]
fn every_switch_list_field_is_reachable_by_its_encoding() {
    // The generated by-address accessors and the generated fields agree: each entry's
    // field is found by its encoding and holds what was written through it.
    let mut r = GuestSystemRegisters::default();
    for (k, s) in SWITCHED.iter().enumerate() {
        *r.by_addr_mut(s.addr)
            .unwrap_or_else(|| panic!("{}", s.name)) = k as u64 + 1;
    }
    for (k, s) in SWITCHED.iter().enumerate() {
        assert_eq!(r.by_addr(s.addr), Some(k as u64 + 1), "{}", s.name);
    }
    assert_eq!(
        r.by_addr(SysRegAddr::new(3, 0, 1, 0, 1)),
        None,
        "ACTLR_EL1 is not switched"
    );
}

#[test]
fn unknown_read_only_and_invalid_accesses_are_typed_errors() {
    let shape = shape_of(FeatureSet::EMPTY, QEMU_VTR, false);
    let mut v = vcpu_with(shape, Some(ids(3)));
    let actlr = Reg::Sys(SysRegAddr::new(3, 0, 1, 0, 1));
    let apia = Reg::Sys(SysRegAddr::new(3, 0, 2, 1, 0));
    for r in [
        Reg::X(31),
        Reg::V(32),
        actlr,
        apia,
        Reg::Vgic(VgicReg::Lr(4)),
        Reg::Vgic(VgicReg::Ap0r(1)),
        Reg::Vgic(VgicReg::Queued(64)),
    ] {
        assert_eq!(v.get_reg(r), Err(RegError::Unknown(r)), "{r}");
        assert_eq!(v.set_reg(r, 0), Err(RegError::Unknown(r)), "{r}");
    }
    let hcr = Reg::Sys(SysRegAddr::new(3, 4, 1, 1, 0));
    let pfr0 = Reg::Sys(SysRegAddr::new(3, 0, 0, 4, 0));
    for r in [hcr, pfr0] {
        assert!(v.get_reg(r).is_ok());
        assert_eq!(v.set_reg(r, 0), Err(RegError::ReadOnly(r)), "{r}");
    }
    let bad = [
        (Reg::Pstate, 0x3c9),     // EL2h
        (Reg::X(0), 1u128 << 64), // too wide
        (Reg::Vcpu(VcpuReg::SErrorPending), 2),
        (Reg::Vcpu(VcpuReg::Completion), 0xff),
        (
            Reg::Vgic(VgicReg::Lr(0)),
            (vgic::lr::PENDING | 1020) as u128,
        ), // special INTID
        (
            Reg::Vgic(VgicReg::Queued(1)),
            vgic::encode(&VirtualInterrupt {
                intid: 40,
                priority: 0,
                group1: true,
                hw_intid: None,
            }) as u128,
        ), // past the end
        (Reg::Sys(SysRegAddr::new(2, 0, 1, 1, 4)), 0), // OSLSR_EL1 without OSLM
    ];
    for (r, val) in bad {
        assert_eq!(
            v.set_reg(r, val),
            Err(RegError::InvalidValue(r)),
            "{r} = {val:#x}"
        );
    }
    // A PSCI completion needs a PSCI call in x0..x3.
    let psci = Completion::Psci {
        conduit: Conduit::Hvc,
    };
    let c = Reg::Vcpu(VcpuReg::Completion);
    assert_eq!(
        v.set_reg(c, psci.encode() as u128),
        Err(RegError::InvalidValue(c))
    );
    v.set_reg(Reg::X(0), 0x8400_0002).unwrap(); // CPU_OFF
    v.set_reg(c, psci.encode() as u128).unwrap();
    assert_eq!(v.complete_psci(smccc::ret::DENIED), Ok(()));
}

#[test]
fn queued_interrupts_by_id() {
    let shape = shape_of(FeatureSet::EMPTY, QEMU_VTR, false);
    let mut v = vcpu_with(shape, None);
    let vi = |intid| VirtualInterrupt {
        intid,
        priority: 0x80,
        group1: true,
        hw_intid: (intid == 48).then_some(48),
    };
    for (n, id) in [40, 41, 48].into_iter().enumerate() {
        let q = Reg::Vgic(VgicReg::Queued(n as u8));
        v.set_reg(q, vgic::encode(&vi(id)) as u128).unwrap();
    }
    assert_eq!(v.queued_interrupts(), 3);
    // A duplicate INTID is refused; 0 truncates.
    let q1 = Reg::Vgic(VgicReg::Queued(1));
    assert_eq!(
        v.set_reg(q1, vgic::encode(&vi(40)) as u128),
        Err(RegError::InvalidValue(q1))
    );
    assert_eq!(vgic::decode_queued(vgic::encode(&vi(48)), 24), Some(vi(48)));
    v.set_reg(q1, 0).unwrap();
    assert_eq!(v.queued_interrupts(), 1);
    assert_eq!(v.get_reg(q1), Ok(0));
}

// ---- snapshots ----

/// A vCPU of `shape` with distinct values in its registers, a queue and a pending
/// completion.
fn filled(shape: Shape, i: Option<IdRegisters>, seed: u64) -> Aarch64VCpu {
    let mut v = vcpu_with(shape, i);
    let list: Vec<Reg> = v.reg_list().collect();
    for &r in &list {
        if v.reg_access(r) == Access::ReadWrite && !matches!(r, Reg::Vgic(VgicReg::Queued(_))) {
            v.set_reg(r, sample(r, seed, &shape)).unwrap();
        }
    }
    for k in 0..(seed % 5) as u32 {
        v.inject_interrupt(VirtualInterrupt {
            intid: 100 + k,
            priority: 0x40,
            group1: true,
            hw_intid: None,
        })
        .unwrap();
    }
    v
}

fn all_regs(v: &Aarch64VCpu) -> Vec<(Reg, u128)> {
    v.reg_list()
        .filter(|r| !matches!(r, Reg::Sys(a) if *a == reg::CNTVOFF_EL2))
        .map(|r| (r, v.get_reg(r).unwrap()))
        .collect()
}

fn bytes(s: &Snapshot) -> Vec<u8> {
    let mut buf = std::vec![0u8; Snapshot::MAX_BYTES];
    let n = s.to_bytes(&mut buf).unwrap();
    assert_eq!(n, s.encoded_len());
    buf.truncate(n);
    buf
}

/// Rewrites the checksum after a deliberate change.
fn reseal(b: &mut [u8]) {
    b[16..20].fill(0);
    let c = snapshot::crc32(b);
    b[16..20].copy_from_slice(&c.to_le_bytes());
}

fn shape_strategy() -> impl Strategy<Value = (Shape, Option<IdRegisters>)> {
    (0usize..shapes().len()).prop_map(|k| shapes()[k])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn snapshots_round_trip_through_bytes_and_restore((shape, i) in shape_strategy(), seed: u64) {
        let a = filled(shape, i, seed);
        let snap = a.snapshot().unwrap();
        let b = bytes(&snap);
        let back = Snapshot::from_bytes(&b).unwrap();
        prop_assert_eq!(&back, &snap);
        let mut c = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
        c.setup(Aarch64VCpuSetupConfig { passthrough_timer: shape.passthrough_timer, ..Default::default() }).unwrap();
        c.restore(&back).unwrap();
        prop_assert_eq!(all_regs(&c), all_regs(&a));
        prop_assert_eq!(c.queued_interrupts(), a.queued_interrupts());
        // And again: a snapshot of the restored vCPU is the same bytes.
        prop_assert_eq!(bytes(&c.snapshot().unwrap()), b);
    }

    #[test]
    fn any_changed_byte_is_refused(seed: u64, pos: usize, bit in 0u8..8) {
        let shape = shape_of(FeatureSet::ALL, QEMU_VTR, false );
        let mut b = bytes(&filled(shape, Some(ids(seed)), seed).snapshot().unwrap());
        let pos = pos % b.len();
        b[pos] ^= 1 << bit;
        prop_assert!(Snapshot::from_bytes(&b).is_err(), "byte {} bit {} accepted", pos, bit);
    }

    #[test]
    fn any_truncation_is_refused(seed: u64, cut: usize) {
        let shape = shape_of(FeatureSet::EMPTY, QEMU_VTR, false );
        let b = bytes(&filled(shape, None, seed).snapshot().unwrap());
        let cut = cut % b.len();
        prop_assert!(Snapshot::from_bytes(&b[..cut]).is_err());
    }
}

#[test]
fn version_magic_length_and_records_are_checked() {
    let shape = shape_of(FeatureSet::EMPTY, QEMU_VTR, false);
    let good = bytes(&filled(shape, Some(ids(9)), 9).snapshot().unwrap());
    assert_eq!(&good[0..8], b"AVCPUSNP");
    assert_eq!(
        u16::from_le_bytes([good[8], good[9]]),
        snapshot::FORMAT_VERSION
    );
    assert!(Snapshot::from_bytes(&good).is_ok());
    // Trailing bytes after the stated length are ignored.
    let mut longer = good.clone();
    longer.extend_from_slice(&[0xaa; 16]);
    assert!(Snapshot::from_bytes(&longer).is_ok());

    let mut b = good.clone();
    b[8] = 2;
    reseal(&mut b);
    assert_eq!(
        Snapshot::from_bytes(&b),
        Err(SnapshotError::UnsupportedVersion(2))
    );
    let mut b = good.clone();
    b[0] = b'X';
    assert_eq!(Snapshot::from_bytes(&b), Err(SnapshotError::BadMagic));
    let mut b = good.clone();
    b[100] ^= 0x10;
    assert!(matches!(
        Snapshot::from_bytes(&b),
        Err(SnapshotError::Checksum { .. })
    ));
    assert!(matches!(
        Snapshot::from_bytes(&good[..good.len() - 1]),
        Err(SnapshotError::Truncated { .. })
    ));
    // The stated length must cover the records exactly.
    let mut b = good.clone();
    b.extend_from_slice(&[0; 8]);
    let l = (b.len() as u32).to_le_bytes();
    b[12..16].copy_from_slice(&l);
    reseal(&mut b);
    assert!(matches!(
        Snapshot::from_bytes(&b),
        Err(SnapshotError::Malformed(_))
    ));
    // A record naming no register, or a read-only one, is refused.
    let first = snapshot::HEADER_LEN + 56 * 16; // after the ID view
    for (id, err) in [
        (
            0x3f_0000_0000_0000u64 | 3 << 60,
            SnapshotError::Register(RegError::UnknownId(0x3f_0000_0000_0000 | 3 << 60)),
        ),
        (
            Reg::Sys(SysRegAddr::new(3, 4, 1, 1, 0)).id(),
            SnapshotError::Register(RegError::ReadOnly(Reg::Sys(SysRegAddr::new(3, 4, 1, 1, 0)))),
        ),
    ] {
        let mut b = good.clone();
        b[first..first + 8].copy_from_slice(&id.to_le_bytes());
        reseal(&mut b);
        assert_eq!(Snapshot::from_bytes(&b), Err(err));
    }
    // CRC-32 check value.
    assert_eq!(snapshot::crc32(b"123456789"), 0xcbf4_3926);
}

#[test]
fn incompatible_cores_are_refused() {
    let shape = shape_of(FeatureSet::EMPTY.with(Feature::Pauth), QEMU_VTR, false);
    let view = ids(5);
    let mut a = vcpu_with(shape, Some(view));
    let snap = a.snapshot().unwrap();
    assert_eq!(
        snap.check_core(shape.has, &view, &QEMU_VTR, &QEMU_DEBUG.1),
        Ok(())
    );
    // Another ID view: refused, naming the first register that differs.
    let mut other = *view.values();
    other[3] ^= 0x10;
    assert_eq!(
        snap.check_core(
            shape.has,
            &IdRegisters::from_values(other),
            &QEMU_VTR,
            &QEMU_DEBUG.1
        ),
        Err(Incompatibility::IdRegister {
            reg: idregs::encoding(3),
            snapshot: view.values()[3],
            core: other[3],
        })
    );
    // The PAuth keys are zero: a core without PAuth is fine; with a key set it is not.
    assert_eq!(
        snap.check_core(FeatureSet::EMPTY, &view, &QEMU_VTR, &QEMU_DEBUG.1),
        Ok(())
    );
    let key = Reg::Sys(SysRegAddr::new(3, 0, 2, 1, 0));
    a.set_reg(key, 0x1234).unwrap();
    let snap = a.snapshot().unwrap();
    assert_eq!(
        snap.check_core(FeatureSet::EMPTY, &view, &QEMU_VTR, &QEMU_DEBUG.1),
        Err(Incompatibility::MissingFeature(Feature::Pauth))
    );
    // List registers in use beyond the core's; another priority width.
    a.set_reg(key, 0).unwrap();
    a.set_reg(Reg::Vgic(VgicReg::Lr(3)), (vgic::lr::PENDING | 40) as u128)
        .unwrap();
    let snap = a.snapshot().unwrap();
    let two = VtrInfo {
        list_regs: 2,
        ..QEMU_VTR
    };
    assert_eq!(
        snap.check_core(shape.has, &view, &two, &QEMU_DEBUG.1),
        Err(Incompatibility::ListRegisters { lr: 3, core: 2 })
    );
    assert_eq!(
        snap.check_core(shape.has, &view, &BIG_VTR, &QEMU_DEBUG.1),
        Err(Incompatibility::PriorityBits {
            snapshot: 5,
            core: 7
        })
    );
    assert_eq!(
        snap.check_core(shape.has, &view, &VtrInfo::default(), &QEMU_DEBUG.1),
        Err(Incompatibility::VirtualInterface)
    );
    // A vCPU that passes the physical interface through cannot take the interrupts.
    let mut p = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    p.setup(Aarch64VCpuSetupConfig {
        passthrough_interrupt: true,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        p.restore(&snap),
        Err(SnapshotError::Incompatible(
            Incompatibility::VirtualInterface
        ))
    );
    // Without interrupts in flight it restores (the interface's registers are left).
    a.set_reg(Reg::Vgic(VgicReg::Lr(3)), 0).unwrap();
    p.restore(&a.snapshot().unwrap()).unwrap();
    // Restoring into a vCPU that has the same shape works.
    let mut b = vcpu_with(shape, Some(view));
    b.restore(&snap).unwrap();
}

#[test]
fn pending_completions_survive_a_snapshot() {
    // An MMIO load (LDRSH W5) waits for its value; the restored vCPU completes it.
    let mut a = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    a.setup(Aarch64VCpuSetupConfig::default()).unwrap();
    a.set_entry(0x4008_0000).unwrap();
    // SAS 1 (halfword), SSE, Rt 5, W destination, read, DFSC translation level 3.
    let esr = build::data_abort(1, true, 5, false, false, false, false, 0x07);
    let syn = Syndrome {
        esr,
        far: 0x0b00_0100,
        hpfar: (0x0b00_0100 >> 12) << 4,
    };
    assert!(matches!(
        a.handle_sync_exit(&syn),
        Some(VmExit::MmioRead { .. })
    ));
    let snap = a.snapshot().unwrap();
    let mut b = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    b.restore(&Snapshot::from_bytes(&bytes(&snap)).unwrap())
        .unwrap();
    assert!(matches!(
        Completion::decode(b.get_reg(Reg::Vcpu(VcpuReg::Completion)).unwrap() as u64),
        Some(Completion::MmioRead {
            reg: 5,
            sign_extend: true,
            ..
        })
    ));
    b.complete_mmio_read(0x8000).unwrap();
    assert_eq!(b.gpr(5), Some(0xffff_8000));
    assert_eq!(b.pc(), 0x4008_0004);

    // A PSCI CPU_ON over SMC waits for its result; the request comes back from x0..x3.
    let mut a = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    a.setup(Aarch64VCpuSetupConfig::default()).unwrap();
    a.set_entry(0x4008_0000).unwrap();
    for (n, x) in [0xC400_0003u64, 1, 0x4008_1000, 7].into_iter().enumerate() {
        a.set_gpr(n, x).unwrap();
    }
    let smc = Syndrome {
        esr: build::call(0x17, 0),
        far: 0,
        hpfar: 0,
    };
    assert!(matches!(
        a.handle_sync_exit(&smc),
        Some(VmExit::Psci { .. })
    ));
    let mut b = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    b.restore(&a.snapshot().unwrap()).unwrap();
    assert_eq!(
        b.complete_psci(smccc::ret::DENIED),
        Err(VCpuError::InvalidConfig(
            "PSCI does not allow this result for this call"
        ))
    );
    b.complete_psci(smccc::ret::SUCCESS).unwrap();
    assert_eq!((b.gpr(0), b.pc()), (Some(0), 0x4008_0004));
}

#[test]
fn the_virtual_count_is_stored_not_the_offset() {
    // On the host the physical count is 0: the guest count is -CNTVOFF_EL2.
    let mut a = Aarch64VCpu::new(Aarch64VCpuCreateConfig {
        cntvoff_el2: 0u64.wrapping_sub(5000),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(a.get_reg(Reg::VirtualCount), Ok(5000));
    let snap = a.snapshot().unwrap();
    assert_eq!(snap.virtual_count(), 5000);
    assert!(snap.registers().all(|r| r != Reg::Sys(reg::CNTVOFF_EL2)));
    // Another VM offset: the restored guest still reads 5000.
    let mut b = Aarch64VCpu::new(Aarch64VCpuCreateConfig {
        cntvoff_el2: 77,
        ..Default::default()
    })
    .unwrap();
    b.restore(&snap).unwrap();
    assert_eq!(b.get_reg(Reg::VirtualCount), Ok(5000));
    assert_eq!(
        b.get_reg(Reg::Sys(reg::CNTVOFF_EL2)),
        Ok(0u64.wrapping_sub(5000) as u128)
    );
    a.set_reg(Reg::VirtualCount, 1).unwrap();
    assert_eq!(a.system_registers().cntvoff_el2, u64::MAX);
}

#[cfg(feature = "serde")]
mod serde_format {
    //! The `serde` feature: a snapshot serializes as its byte format.
    use super::*;
    use serde::de::value::{BytesDeserializer, Error as DeError};
    use serde::ser::{self, Impossible, Serialize};
    use serde::Deserialize;

    /// A serializer that only takes one byte string.
    struct Bytes;

    #[derive(Debug)]
    struct E(std::string::String);
    impl core::fmt::Display for E {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.write_str(&self.0)
        }
    }
    impl std::error::Error for E {}
    impl ser::Error for E {
        fn custom<T: core::fmt::Display>(m: T) -> Self {
            E(std::format!("{m}"))
        }
    }

    macro_rules! no {
        ($($f:ident($($t:ty),*)),*) => { $(fn $f(self $(, _: $t)*) -> Result<Vec<u8>, E> { Err(E("unsupported".into())) })* };
    }

    impl ser::Serializer for Bytes {
        type Ok = Vec<u8>;
        type Error = E;
        type SerializeSeq = Impossible<Vec<u8>, E>;
        type SerializeTuple = Impossible<Vec<u8>, E>;
        type SerializeTupleStruct = Impossible<Vec<u8>, E>;
        type SerializeTupleVariant = Impossible<Vec<u8>, E>;
        type SerializeMap = Impossible<Vec<u8>, E>;
        type SerializeStruct = Impossible<Vec<u8>, E>;
        type SerializeStructVariant = Impossible<Vec<u8>, E>;
        fn serialize_bytes(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        no!(
            serialize_bool(bool),
            serialize_i8(i8),
            serialize_i16(i16),
            serialize_i32(i32),
            serialize_i64(i64),
            serialize_u8(u8),
            serialize_u16(u16),
            serialize_u32(u32),
            serialize_u64(u64),
            serialize_f32(f32),
            serialize_f64(f64),
            serialize_char(char),
            serialize_str(&str),
            serialize_none(),
            serialize_unit(),
            serialize_unit_struct(&'static str),
            serialize_unit_variant(&'static str, u32, &'static str)
        );
        fn collect_str<T: ?Sized + core::fmt::Display>(self, _: &T) -> Result<Vec<u8>, E> {
            Err(E("unsupported".into()))
        }
        fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<Vec<u8>, E> {
            Err(E("unsupported".into()))
        }
        fn serialize_newtype_struct<T: ?Sized + Serialize>(
            self,
            _: &'static str,
            _: &T,
        ) -> Result<Vec<u8>, E> {
            Err(E("unsupported".into()))
        }
        fn serialize_newtype_variant<T: ?Sized + Serialize>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> Result<Vec<u8>, E> {
            Err(E("unsupported".into()))
        }
        fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, E> {
            Err(E("unsupported".into()))
        }
        fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, E> {
            Err(E("unsupported".into()))
        }
        fn serialize_tuple_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleStruct, E> {
            Err(E("unsupported".into()))
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleVariant, E> {
            Err(E("unsupported".into()))
        }
        fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, E> {
            Err(E("unsupported".into()))
        }
        fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, E> {
            Err(E("unsupported".into()))
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStructVariant, E> {
            Err(E("unsupported".into()))
        }
    }

    #[test]
    fn serde_carries_the_checked_byte_format() {
        let shape = shape_of(FeatureSet::ALL, QEMU_VTR, false);
        let snap = filled(shape, Some(ids(4)), 4).snapshot().unwrap();
        let out = snap.serialize(Bytes).unwrap();
        assert_eq!(out, bytes(&snap));
        let back = Snapshot::deserialize(BytesDeserializer::<DeError>::new(&out)).unwrap();
        assert_eq!(back, snap);
        let mut bad = out.clone();
        bad[50] ^= 1;
        assert!(Snapshot::deserialize(BytesDeserializer::<DeError>::new(&bad)).is_err());
    }
}

#[test]
fn a_virtual_pmu_is_refused_by_snapshot_and_restore() {
    // The format does not hold the PMU's counters: refused, never silently dropped.
    let pmu = crate::pmu::PmuConfig::V3 { counters: None };
    let mut a = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    a.setup(Aarch64VCpuSetupConfig::default().with_pmu(pmu))
        .unwrap();
    assert!(matches!(a.snapshot(), Err(SnapshotError::Unsupported(_))));
    let mut plain = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    plain.setup(Aarch64VCpuSetupConfig::default()).unwrap();
    let snap = plain.snapshot().unwrap();
    assert!(matches!(
        a.restore(&snap),
        Err(SnapshotError::Unsupported(_))
    ));
    // Without a PMU both work.
    let mut b = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    b.setup(Aarch64VCpuSetupConfig::default()).unwrap();
    b.restore(&snap).unwrap();
}
