//! The register inventory checked both ways against the code: the switch list, the
//! trap composition, the ID view and the emulation, for every supported combination
//! of host features (sampled: none, all, each one alone, all but each one, random).

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use crate::context::{GuestSystemRegisters, Kind, RegFile, SWITCHED};
use crate::emulate::{self, SysRegAction};
use crate::esr::Syndrome;
use crate::exit::SysRegAddr;
use crate::idregs::{self, IdRegisters, ID_SPACE_LEN};
use crate::sysreg::{
    self, key, lookup, Emulation, Exists, Feature, FeatureSet, Passthrough, Treatment, FEATURES,
    INVENTORY,
};
use crate::traps::{self, compose, trapping, Ctl, Inputs, Role, TrapId, When, BITS};
use crate::{aarch32, debug};
use crate::{Aarch64VCpu, Aarch64VCpuCreateConfig, Aarch64VCpuSetupConfig};

/// Architectural dependencies between features (a host with the first has the second;
/// DDI 0487 A2, "Architectural features"): FEAT_BRBE and FEAT_PFAR come with FEAT_FGT /
/// FEAT_FGT2 (Armv9.2 / 9.5 include Armv8.6's FGT), FEAT_TCR2, SCTLR2 and FPMR with
/// FEAT_HCX (Armv8.7), the "v1p1" levels with their base, the extra active-priority
/// registers with the GICv3 interface.
const IMPLIES: &[(Feature, Feature)] = &[
    (Feature::Brbe, Feature::Fgt),
    (Feature::Pfar, Feature::Fgt2),
    (Feature::Fgt2, Feature::Fgt),
    (Feature::Tcr2, Feature::Hcx),
    (Feature::Sctlr2, Feature::Hcx),
    (Feature::Fpmr, Feature::Hcx),
    (Feature::RasV1p1, Feature::Ras),
    (Feature::Mte2, Feature::Mte),
    (Feature::AmuV1p1, Feature::Amu),
    (Feature::VgicApr3, Feature::VgicApr1),
    (Feature::VgicApr1, Feature::Gicv3),
];

fn closure(mut f: FeatureSet) -> FeatureSet {
    loop {
        let before = f;
        for &(a, b) in IMPLIES {
            if f.has(a) {
                f = f.with(b);
            }
        }
        if f == before {
            return f;
        }
    }
}

/// The feature sets the checks run on.
fn feature_sets() -> Vec<FeatureSet> {
    let mut v = vec![FeatureSet::EMPTY, FeatureSet::ALL];
    for f in FEATURES {
        v.push(closure(FeatureSet::EMPTY.with(f)));
        v.push(closure(FeatureSet::ALL.without(f)));
    }
    // A few hosts by name: QEMU 7.2 -cpu max (no FGT, no HCX, SME without FGT), a
    // Cortex-A53, an Armv9.2 server core.
    let qemu_max = [
        Feature::Fp,
        Feature::Gicv3,
        Feature::Pauth,
        Feature::Sve,
        Feature::Sme,
        Feature::Ras,
        Feature::Pmu,
        Feature::Lor,
        Feature::Pan,
        Feature::Uao,
        Feature::Dit,
        Feature::Ssbs,
        Feature::Rng,
        Feature::Mte,
        Feature::Mte2,
    ];
    v.push(qemu_max.iter().fold(FeatureSet::EMPTY, |s, &f| s.with(f)));
    v.push(
        FeatureSet::EMPTY
            .with(Feature::Fp)
            .with(Feature::Gicv3)
            .with(Feature::Pmu),
    );
    v.into_iter().map(closure).collect()
}

fn setups() -> Vec<Aarch64VCpuSetupConfig> {
    let mut v = Vec::new();
    for bits in 0..16u8 {
        v.push(Aarch64VCpuSetupConfig {
            passthrough_interrupt: bits & 1 != 0,
            passthrough_timer: bits & 2 != 0,
            trap_wfi: bits & 4 != 0,
            trap_wfe: bits & 8 != 0,
            ..Default::default()
        });
    }
    v
}

/// Whether `row`'s treatment needs its trap in effect for the inputs.
fn needs_trap(row: &sysreg::SysReg, i: &Inputs) -> bool {
    match row.treat {
        Treatment::Emulated(_) | Treatment::Undef | Treatment::Hidden => true,
        // Hidden by default, or trapped at bind until the first use loads the PMU.
        Treatment::LazyPmu => true,
        // Trapped at bind until the first use loads the state.
        Treatment::LazyDebug | Treatment::LazyPauth => true,
        Treatment::Sgi => !i.setup.passthrough_interrupt,
        Treatment::PhysTimer => !i.setup.passthrough_timer,
        Treatment::Vgic => !i.setup.passthrough_interrupt,
        Treatment::LazyFp => i.fp_trapped,
        Treatment::Cpacr => i.features.any(&[
            Feature::Sve,
            Feature::Sme,
            Feature::TraceSys,
            Feature::S1poe,
        ]),
        Treatment::Untrappable(Some(id)) => id.location().0.exists(i.features),
        _ => false,
    }
}

#[test]
fn table_is_sorted_unique_and_names_are_unique() {
    assert!(sysreg::table_is_sorted(INVENTORY));
    let mut names = BTreeSet::new();
    for r in INVENTORY {
        assert!(names.insert(r.name), "duplicate name {}", r.name);
        assert!(key(r.first) <= key(r.last), "{}", r.name);
        assert!(r.first.op0() >= 1, "{}", r.name);
        // Lookup finds every row from both ends.
        assert_eq!(lookup(r.first).map(|x| x.name), Some(r.name));
        assert_eq!(lookup(r.last).map(|x| x.name), Some(r.name));
    }
    // The EL2/EL3 spaces are in no row (UNDEFINED at EL1), except IMPDEF blocks.
    for op1 in 4..8 {
        for crn in [0u8, 1, 2, 4, 5, 6, 10, 12, 13, 14] {
            assert!(lookup(SysRegAddr::new(3, op1, crn, 0, 0)).is_none());
        }
    }
    assert!(
        lookup(SysRegAddr::new(3, 4, 4, 1, 0)).is_none(),
        "SP_EL1 is EL2's"
    );
}

/// A recording register file: what was written and read, by encoding.
#[derive(Default)]
struct Fake {
    regs: BTreeMap<u32, u64>,
    writes: Vec<u32>,
    reads: Vec<u32>,
}

impl RegFile for Fake {
    fn read<const E: u32>(&mut self) -> u64 {
        self.reads.push(E);
        *self.regs.get(&E).unwrap_or(&0)
    }
    fn write<const E: u32>(&mut self, v: u64) {
        self.writes.push(E);
        self.regs.insert(E, v);
    }
}

fn fill(seed: u64) -> GuestSystemRegisters {
    // Give every field a distinct value through the fake: save from a file whose
    // registers hold `seed ^ encoding`.
    let mut f = Fake::default();
    for s in SWITCHED {
        f.regs.insert(
            s.addr.0,
            seed ^ u64::from(s.addr.0).wrapping_mul(0x9E37_79B9),
        );
    }
    let mut r = GuestSystemRegisters::default();
    r.save(FeatureSet::ALL, &mut f);
    r
}

#[test]
fn every_switched_register_is_in_both_the_load_and_the_save_sequence() {
    for has in feature_sets() {
        let regs = fill(0xA5A5_0000_0000_0000);
        let mut f = Fake::default();
        regs.load(has, &mut f);
        let written: BTreeSet<u32> = f.writes.iter().copied().collect();
        let mut g = Fake::default();
        for s in SWITCHED {
            g.regs.insert(s.addr.0, 0x5A00 ^ u64::from(s.addr.0));
        }
        let mut back = GuestSystemRegisters::default();
        back.save(has, &mut g);
        let read: BTreeSet<u32> = g.reads.iter().copied().collect();
        for s in SWITCHED {
            let on = s.gate.on(has);
            assert_eq!(written.contains(&s.addr.0), on, "{} loaded", s.name);
            let saved = on && !s.kind.is_control();
            assert_eq!(read.contains(&s.addr.0), saved, "{} saved", s.name);
            if s.kind == Kind::TimerCtl && on {
                assert_eq!(g.regs[&s.addr.0], 0, "{} stopped after the save", s.name);
            }
        }
        // Each register moves once per direction.
        assert_eq!(written.len(), f.writes.len(), "a register loaded twice");
        let timers = SWITCHED
            .iter()
            .filter(|s| s.kind == Kind::TimerCtl && s.gate.on(has))
            .count();
        assert_eq!(read.len(), g.reads.len(), "a register saved twice");
        assert_eq!(g.writes.len(), timers);
        // Round trip: what save read, load writes back.
        let mut h = Fake::default();
        back.load(has, &mut h);
        for s in SWITCHED
            .iter()
            .filter(|s| s.gate.on(has) && !s.kind.is_control())
        {
            assert_eq!(
                h.regs[&s.addr.0],
                0x5A00 ^ u64::from(s.addr.0),
                "{} round trip",
                s.name
            );
        }
    }
}

#[test]
fn the_switch_list_and_the_inventory_agree() {
    let listed: BTreeMap<u32, &crate::context::Switched> =
        SWITCHED.iter().map(|s| (s.addr.0, s)).collect();
    assert_eq!(listed.len(), SWITCHED.len(), "a register listed twice");
    // Every row whose state the bind/unbind switch owns is in the list (guest state,
    // not a control), on exactly the hosts where the register exists.
    for r in INVENTORY {
        let target = match r.treat {
            Treatment::Switched
            | Treatment::Untrappable(_)
            | Treatment::Cpacr
            | Treatment::LazyPauth => Some(r.first),
            Treatment::SwitchedAs(t) => Some(t),
            // Live in the hardware only with `passthrough_timer`.
            Treatment::PhysTimer if r.name != "CNTP_TVAL_EL0" => Some(r.first),
            _ => None,
        };
        let Some(t) = target else { continue };
        assert_eq!(
            key(r.first),
            key(r.last),
            "{}: a block cannot be switched",
            r.name
        );
        let s = listed
            .get(&t.0)
            .unwrap_or_else(|| panic!("{} is {:?} but not in the switch list", r.name, r.treat));
        assert!(
            !s.kind.is_control(),
            "{}: guest state must be saved",
            r.name
        );
        let gate_feature = match s.gate {
            crate::context::Gate::Always => None,
            crate::context::Gate::Feat(f) => Some(f),
        };
        assert_eq!(gate_feature, r.exists.feature(), "{}: gate", r.name);
    }
    // Every entry of the list is a switched row, the target of one, or an EL2 control.
    for s in SWITCHED {
        if s.kind.is_control() {
            assert_eq!(s.addr.op1(), 4, "{}: controls are EL2 registers", s.name);
            continue;
        }
        let row = lookup(s.addr);
        let as_target = INVENTORY
            .iter()
            .any(|r| r.treat == Treatment::SwitchedAs(s.addr));
        let ok = match row {
            Some(r) => r.treat.switched() || r.treat == Treatment::PhysTimer,
            // EL2 registers holding guest state: SP_EL1, VDISR_EL2 (DISR_EL1), VSESR_EL2
            // (the pending virtual SError's syndrome).
            None => as_target || matches!(s.name, "SP_EL1" | "VSESR_EL2"),
        };
        assert!(
            ok,
            "{} is switched but the inventory does not say so",
            s.name
        );
    }
}

#[test]
fn every_trapped_row_has_its_trap_in_effect() {
    for features in feature_sets() {
        for setup in setups() {
            for fp_trapped in [false, true] {
                let i = Inputs {
                    features,
                    setup,
                    fp_trapped,
                    hpmn: 6,
                };
                let v = compose(&i);
                for r in INVENTORY {
                    let exists = match r.exists {
                        Exists::Feat(f) => features.has(f),
                        _ => true,
                    };
                    if !exists || !needs_trap(r, &i) {
                        continue;
                    }
                    let Some(id) = r.trap else {
                        assert!(
                            matches!(r.treat, Treatment::Undef | Treatment::Untrappable(_)),
                            "{} ({:?}) names no trap",
                            r.name,
                            r.treat
                        );
                        continue;
                    };
                    assert!(
                        trapping(&v, features, id),
                        "{}: {} not in effect for {:?} / {:?} (values {:x?})",
                        r.name,
                        id.name(),
                        features,
                        setup,
                        v
                    );
                }
            }
        }
    }
}

#[test]
fn switched_registers_are_not_trapped() {
    // A switched register the guest reaches directly must not trap (it would UNDEF).
    for features in feature_sets() {
        let i = Inputs {
            features,
            setup: Aarch64VCpuSetupConfig::default(),
            fp_trapped: false,
            hpmn: 0,
        };
        let v = compose(&i);
        for r in INVENTORY
            .iter()
            .filter(|r| matches!(r.treat, Treatment::Switched | Treatment::Passthrough(_)))
        {
            if let Some(id) = r.trap {
                assert!(!trapping(&v, features, id), "{} is trapped", r.name);
            }
        }
    }
}

#[test]
fn the_composition_table_is_consistent() {
    let mut by_ctl: BTreeMap<Ctl, Vec<&traps::Bit>> = BTreeMap::new();
    for b in BITS {
        by_ctl.entry(b.ctl).or_default().push(b);
        match b.role {
            Role::Trap(id) | Role::TrapWhenClear(id) => {
                let (c, m, pol, second) = id.location();
                assert!(c == b.ctl || second == Some(b.ctl), "{}: control", b.name);
                assert_eq!(m, b.mask, "{}: mask", b.name);
                assert_eq!(
                    matches!(b.role, Role::TrapWhenClear(_)),
                    pol == traps::Polarity::Clear,
                    "{}: polarity",
                    b.name
                );
            }
            _ => {}
        }
    }
    // No two rows of a control share a bit, except a trap-when-clear row and the control
    // row that sets the same bit for the opposite setup (CNTHCTL_EL2.EL1PCEN).
    for (ctl, rows) in &by_ctl {
        for (i, a) in rows.iter().enumerate() {
            for b in &rows[i + 1..] {
                if a.mask & b.mask != 0 {
                    let pair = matches!(
                        (a.when, b.when),
                        (When::Setup(x), When::NotSetup(y)) | (When::NotSetup(x), When::Setup(y)) if x == y
                    );
                    assert!(pair, "{}: {} and {} overlap", ctl.name(), a.name, b.name);
                }
            }
        }
    }
    // Every trap the inventory names has a row; every row's control exists when it applies;
    // a trap-when-clear bit is clear whenever its row applies.
    for r in INVENTORY {
        for id in r.trap.into_iter().chain(match r.treat {
            Treatment::Untrappable(Some(id)) => Some(id),
            _ => None,
        }) {
            assert!(
                BITS.iter()
                    .any(|b| matches!(b.role, Role::Trap(x) | Role::TrapWhenClear(x) if x == id)),
                "{}: {} has no row in traps::BITS",
                r.name,
                id.name()
            );
        }
    }
    for features in feature_sets() {
        for setup in setups() {
            let i = Inputs {
                features,
                setup,
                fp_trapped: true,
                hpmn: 0,
            };
            let v = compose(&i);
            for b in BITS {
                if !b.when.holds(&i) {
                    continue;
                }
                assert!(
                    b.ctl.exists(features),
                    "{}: {} absent",
                    b.name,
                    b.ctl.name()
                );
                match b.role {
                    Role::TrapWhenClear(id) => {
                        assert_eq!(v.get(b.ctl) & b.mask, 0, "{}", b.name);
                        assert!(trapping(&v, features, id), "{}", b.name);
                    }
                    _ => assert_eq!(v.get(b.ctl) & b.mask, b.mask, "{}", b.name),
                }
            }
            for ctl in traps::CTLS {
                if !ctl.exists(features) {
                    assert_eq!(v.get(ctl), 0, "{} absent but composed", ctl.name());
                }
            }
        }
    }
}

/// The composed values on named hosts, written out from the Arm ARM bit positions.
#[test]
fn composed_values_on_named_hosts() {
    let base = Aarch64VCpuSetupConfig::default();
    let inputs = |features, fp_trapped| Inputs {
        features,
        setup: base,
        fp_trapped,
        hpmn: 6,
    };
    // Cortex-A53-like: v8.0, GICv3, PMUv3, no SVE/SME/RAS/trace sysreg/AMU.
    let a53 = FeatureSet::EMPTY
        .with(Feature::Fp)
        .with(Feature::Gicv3)
        .with(Feature::Pmu);
    let v = compose(&inputs(a53, true));
    assert_eq!(
        v.get(Ctl::Cptr),
        0x33ff | (1 << 10),
        "RES1 + TZ + TSM + TFP, no TCPAC"
    );
    assert_eq!(
        v.get(Ctl::Mdcr),
        6 | (1 << 5) | (1 << 6) | (1 << 9) | (1 << 10) | (1 << 11)
    );
    assert_eq!(v.get(Ctl::Cnthctl), 1);
    assert_eq!(
        v.get(Ctl::Hcr),
        (1 << 0)  // VM
            | (1 << 1)  // SWIO
            | (1 << 3)  // FMO
            | (1 << 4)  // IMO
            | (1 << 5)  // AMO
            | (1 << 9)  // FB
            | (1 << 10) // BSU = IS
            | (1 << 16) // TID1
            | (1 << 18) // TID3
            | (1 << 19) // TSC
            | (1 << 20) // TIDCP
            | (1 << 21) // TACR
            | (1 << 22) // TSW
            | (1 << 31) // RW
    );
    for ctl in [Ctl::Hcrx, Ctl::Hfgrtr, Ctl::Mpam2] {
        assert_eq!(v.get(ctl), 0);
    }
    // Everything: TTA, TAM, TCPAC; TPMS, TTRF; TERR, TEA, TLOR, TID5, APK/API; HCRX
    // only MSCEn; every fine-grained trap register 0; MPAM2 traps.
    let all = compose(&inputs(FeatureSet::ALL, false));
    assert_eq!(
        all.get(Ctl::Cptr),
        0x33ff | (1 << 20) | (1 << 30) | (1 << 31)
    );
    assert_eq!(
        all.get(Ctl::Mdcr) & ((1 << 14) | (1 << 19)),
        (1 << 14) | (1 << 19)
    );
    assert_eq!(
        all.get(Ctl::Mdcr) & ((3 << 12) | (3 << 24)),
        0,
        "E2PB = E2TB = 0"
    );
    let h = all.get(Ctl::Hcr);
    for bit in [35, 36, 37, 58] {
        assert_ne!(h & (1 << bit), 0, "HCR_EL2 bit {bit}");
    }
    assert_eq!(h & ((1 << 40) | (1 << 41)), 0, "APK = API = 0: lazy PAuth");
    assert_eq!(h & ((1 << 53) | (1 << 56)), 0, "EnSCXT = ATA = 0");
    assert_eq!(all.get(Ctl::Hcrx), 1 << 11);
    for ctl in [
        Ctl::Hfgrtr,
        Ctl::Hfgwtr,
        Ctl::Hfgitr,
        Ctl::Hdfgrtr,
        Ctl::Hdfgwtr,
        Ctl::Hfgrtr2,
        Ctl::Hfgwtr2,
        Ctl::Hfgitr2,
        Ctl::Hdfgrtr2,
        Ctl::Hdfgwtr2,
    ] {
        assert_eq!(all.get(ctl), 0, "{}", ctl.name());
    }
    assert_eq!(all.get(Ctl::Mpam2), (1 << 48) | (1 << 49));
    // The setup choices.
    let pt = compose(&Inputs {
        setup: Aarch64VCpuSetupConfig {
            passthrough_interrupt: true,
            passthrough_timer: true,
            trap_wfi: true,
            trap_wfe: true,
            ..base
        },
        ..inputs(a53, false)
    });
    assert_eq!(pt.get(Ctl::Hcr) & 0x18, 0, "no IMO/FMO");
    assert_eq!(pt.get(Ctl::Hcr) & (3 << 13), 3 << 13, "TWI, TWE");
    assert_eq!(pt.get(Ctl::Cnthctl), 3);
}

fn sanitized_all_ones() -> IdRegisters {
    IdRegisters::sanitized(&sysreg::host_with_everything(), true, 52)
}

#[test]
fn the_id_view_and_the_inventory_agree() {
    let view = sanitized_all_ones();
    let visible = |f: Feature| f.present(view.values());
    for r in INVENTORY {
        let Some(f) = r.exists.feature() else {
            assert!(
                !matches!(
                    r.treat,
                    Treatment::Hidden | Treatment::LazyPmu | Treatment::Untrappable(_)
                ),
                "{}: hidden but exists on every host",
                r.name
            );
            continue;
        };
        if matches!(f, Feature::VgicApr1 | Feature::VgicApr3) {
            continue;
        }
        match r.treat {
            // A hidden feature's registers read as absent in the view.
            Treatment::Hidden | Treatment::LazyPmu | Treatment::Untrappable(_) => {
                assert!(!visible(f), "{}: {} is visible", r.name, f.name())
            }
            // Registers of a hidden feature that nothing traps carry no state, or their
            // state is switched with something else (VDISR_EL2, the virtual interface).
            Treatment::Passthrough(p) if !visible(f) => assert!(
                matches!(p, Passthrough::ReadOnly | Passthrough::Pstate),
                "{}",
                r.name
            ),
            Treatment::SwitchedAs(_) | Treatment::Vgic if !visible(f) => {}
            Treatment::SwitchedAs(_) | Treatment::Passthrough(_) => {}
            // Every register of an advertised feature is accounted for: reachable.
            t => {
                assert!(visible(f), "{}: {:?} but {} is hidden", r.name, t, f.name());
                assert!(t.accessible(), "{}", r.name);
            }
        }
    }
    // Every advertised feature has registers, or is instructions only.
    const INSTRUCTIONS_ONLY: &[Feature] = &[Feature::Mops];
    for f in FEATURES {
        if visible(f) && !INSTRUCTIONS_ONLY.contains(&f) {
            assert!(
                INVENTORY.iter().any(|r| r.exists == Exists::Feat(f)),
                "{} is advertised but no register of it is in the inventory",
                f.name()
            );
        }
    }
    // The host really has everything.
    for f in FEATURES {
        if !matches!(f, Feature::VgicApr1 | Feature::VgicApr3) {
            assert!(f.present(&sysreg::host_with_everything()), "{}", f.name());
        }
    }
    // Every hidden field reads 0 in the view of an all-ones host, every capped one at
    // most its cap.
    let view = IdRegisters::sanitized(&[u64::MAX; ID_SPACE_LEN], true, 52);
    for f in idregs::VIEW {
        let v = view.values()[f.reg];
        let m = if f.width >= 64 {
            u64::MAX
        } else {
            ((1 << f.width) - 1) << f.lsb
        };
        match f.rule {
            idregs::Rule::Hide => assert_eq!(v & m, 0, "{}", f.name),
            idregs::Rule::Cap(c) => assert!((v & m) >> f.lsb <= c as u64, "{}", f.name),
            // Hidden by default; the version the PMU view decided with a PMU.
            idregs::Rule::ShownWithPmu => {
                assert_eq!(v & m, 0, "{}", f.name);
                let shown = view.with_pmu(4).values()[f.reg] & m;
                assert_eq!(shown >> f.lsb, 4, "{}", f.name);
            }
            idregs::Rule::HideUnlessPauth => {
                let no_keys = IdRegisters::sanitized(&[u64::MAX; ID_SPACE_LEN], false, 52);
                assert_eq!(no_keys.values()[f.reg] & m, 0, "{}", f.name);
            }
            // Conditional on the setup: kept by default, applied with the option.
            idregs::Rule::HideWithoutAarch32El0 | idregs::Rule::CapWithoutAarch32El0(_) => {
                let hidden = view.without_aarch32_el0().values()[f.reg] & m;
                match f.rule {
                    idregs::Rule::CapWithoutAarch32El0(c) => {
                        assert!(hidden >> f.lsb <= c as u64, "{}", f.name)
                    }
                    _ => assert_eq!(hidden, 0, "{}", f.name),
                }
            }
        }
    }
}

fn cx(ids: &IdRegisters) -> emulate::Context<'_> {
    emulate::Context {
        ids: Some(ids),
        actlr: 0,
        cpacr: 0,
        revidr: 0x1234,
        aidr: 0x5678,
        has: FeatureSet::ALL,
    }
}

#[test]
fn emulated_rows_are_answered_and_undefined_rows_are_not() {
    let ids = sanitized_all_ones();
    let c = cx(&ids);
    for r in INVENTORY {
        let samples = [r.first, r.last];
        for reg in samples {
            for read in [true, false] {
                let exists = if read {
                    r.access.readable()
                } else {
                    r.access.writable()
                };
                let mut a = emulate::sysreg(reg, read, 0, &c);
                let is_debug = matches!(
                    r.treat,
                    Treatment::LazyDebug
                        | Treatment::Emulated(Emulation::OsLock | Emulation::DebugRom)
                );
                if reg.op0() == 2 {
                    // Every op0 = 2 access goes to crate::debug, which loads, emulates or
                    // UNDEFs (a core with every register, 16 breakpoints/watchpoints).
                    assert_eq!(a, SysRegAction::Debug, "{} goes to crate::debug", r.name);
                    a = match debug_switch(u64::MAX).trap(reg, read, 0) {
                        debug::Outcome::Undef => SysRegAction::Unhandled,
                        debug::Outcome::Done(v) if read => SysRegAction::Read(v),
                        _ => SysRegAction::Write,
                    };
                }
                match r.treat {
                    _ if is_debug && exists => {
                        assert_ne!(a, SysRegAction::Unhandled, "{} is UNDEFINED", r.name)
                    }
                    Treatment::Emulated(_) | Treatment::Cpacr if exists => assert_ne!(
                        a,
                        SysRegAction::Unhandled,
                        "{} ({}) is emulated but not answered",
                        r.name,
                        if read { "MRS" } else { "MSR" }
                    ),
                    Treatment::Undef | Treatment::Hidden | Treatment::LazyPmu => {
                        assert_eq!(a, SysRegAction::Unhandled, "{} must be UNDEFINED", r.name)
                    }
                    Treatment::Emulated(Emulation::IdView) if !exists => {
                        assert_eq!(a, SysRegAction::Unhandled, "MSR to {}", r.name)
                    }
                    _ => {}
                }
            }
        }
    }
}

fn vcpu() -> Aarch64VCpu {
    let mut v = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    v.setup(Aarch64VCpuSetupConfig::default()).unwrap();
    v.set_entry(0x4008_0000).unwrap();
    v
}

#[test]
fn trapped_undefined_rows_become_undefined_in_the_guest() {
    // Through a vCPU (unbound: the injection goes to the saved EL1 state): every UNDEF
    // and hidden row, both directions, is answered with an UNDEFINED exception at
    // VBAR_EL1 + 0x200 (EL1h) and never exits to the host.
    for r in INVENTORY.iter().filter(|r| {
        matches!(
            r.treat,
            Treatment::Undef | Treatment::Hidden | Treatment::LazyPmu
        ) && r.first.op0() != 1
    }) {
        for read in [true, false] {
            let mut v = vcpu();
            let syn = Syndrome {
                esr: crate::esr::build::sysreg(
                    r.first.op0(),
                    r.first.op1(),
                    r.first.crn(),
                    r.first.crm(),
                    r.first.op2(),
                    1,
                    read,
                ),
                ..Default::default()
            };
            assert_eq!(v.handle_sync_exit(&syn), None, "{}", r.name);
            assert_eq!(v.system_registers().esr_el1 >> 26, 0, "{}: EC 0", r.name);
            assert_eq!(v.pc(), 0x200, "{}: at the EL1h vector", r.name);
        }
    }
}

#[test]
fn traps_of_hidden_features_become_undefined() {
    // SVE (0x19), SME (0x1D), pointer authentication without keys (0x09), LS64 (0x0A,
    // HCRX_EL2.EnALS/EnAS0/EnASR = 0), MRRS/MSRR (0x14), GCS instructions (0x2D,
    // HFGITR_EL2.nGCS* = 0): UNDEFINED in the guest, never an exit for the host.
    for ec in [0x19u64, 0x1d, 0x09, 0x0a, 0x14, 0x2d] {
        let mut v = vcpu();
        let syn = Syndrome {
            esr: (ec << 26) | (1 << 25),
            ..Default::default()
        };
        assert_eq!(v.handle_sync_exit(&syn), None, "EC {ec:#x}");
        assert_eq!(
            v.system_registers().esr_el1 >> 26,
            0,
            "EC {ec:#x}: UNDEFINED"
        );
    }
}

#[test]
fn tid1_answers_revidr_and_aidr_and_undefs_smidr() {
    let ids = sanitized_all_ones();
    let c = cx(&ids);
    assert_eq!(
        emulate::sysreg(emulate::REVIDR_EL1, true, 0, &c),
        SysRegAction::Read(0x1234)
    );
    assert_eq!(
        emulate::sysreg(emulate::AIDR_EL1, true, 0, &c),
        SysRegAction::Read(0x5678)
    );
    let smidr = SysRegAddr::new(3, 1, 0, 0, 6);
    assert_eq!(emulate::sysreg(smidr, true, 0, &c), SysRegAction::Unhandled);
    assert_eq!(
        emulate::sysreg(emulate::REVIDR_EL1, false, 0, &c),
        SysRegAction::Unhandled,
        "REVIDR_EL1 is read-only"
    );
}

#[test]
fn cpacr_hides_the_fields_of_hidden_features() {
    let sve_sme = FeatureSet::EMPTY.with(Feature::Sve).with(Feature::Sme);
    // FPEN follows the guest; ZEN and SMEN are forced open so SVE/SME reach CPTR_EL2.
    assert_eq!(emulate::cpacr_hw(0, sve_sme), (3 << 16) | (3 << 24));
    assert_eq!(
        emulate::cpacr_hw(u64::MAX, sve_sme),
        (3 << 16) | (3 << 20) | (3 << 24)
    );
    assert_eq!(emulate::cpacr_hw(u64::MAX, FeatureSet::EMPTY), 3 << 20);
    assert_eq!(
        emulate::cpacr_hw(0, FeatureSet::EMPTY.with(Feature::S1poe)),
        1 << 29
    );
    // Through a vCPU: MSR CPACR_EL1 with ZEN|FPEN|TTA, MRS reads back FPEN only.
    let mut v = vcpu();
    let sys = |rt, read| Syndrome {
        esr: crate::esr::build::sysreg(3, 0, 1, 0, 2, rt, read),
        ..Default::default()
    };
    v.set_gpr(2, (3 << 16) | (3 << 20) | (1 << 28)).unwrap();
    assert_eq!(v.handle_sync_exit(&sys(2, false)), None);
    assert_eq!(v.handle_sync_exit(&sys(3, true)), None);
    assert_eq!(v.gpr(3), Some(3 << 20));
    assert_eq!(v.pc(), 0x4008_0008);
}

#[test]
fn sweep_expectations_follow_the_treatment() {
    use sysreg::Expect;
    for r in INVENTORY {
        for read in [true, false] {
            let e = r.sweep_expect(read);
            let exists = if read {
                r.access.readable()
            } else {
                r.access.writable()
            };
            if !exists {
                assert_eq!(e, Expect::Undef, "{}", r.name);
                continue;
            }
            match r.treat {
                Treatment::Undef | Treatment::Hidden => {
                    assert!(matches!(e, Expect::Undef | Expect::Tidcp), "{}", r.name)
                }
                Treatment::LazyPmu => {
                    let counter = r.first != r.last;
                    assert_eq!(
                        e,
                        if counter {
                            Expect::PmuCounter
                        } else {
                            Expect::Pmu
                        },
                        "{}",
                        r.name
                    )
                }
                Treatment::Untrappable(Some(_)) => {
                    assert_eq!(e, Expect::AccessWithoutFgt, "{}", r.name)
                }
                _ => assert_eq!(e, Expect::Access, "{}", r.name),
            }
        }
        if r.pattern != 0 {
            assert!(
                r.treat.switched()
                    || matches!(
                        r.treat,
                        Treatment::LazyFp
                            | Treatment::LazyDebug
                            | Treatment::LazyPmu
                            | Treatment::Vgic
                            | Treatment::PhysTimer
                            | Treatment::Emulated(_)
                            // patterned to show it holds no VM state
                            | Treatment::Passthrough(Passthrough::ReadOnly)
                    ),
                "{}: only state can be patterned",
                r.name
            );
        }
    }
}

#[test]
fn generated_files_are_current() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    for (path, text) in [
        ("docs/registers.md", sysreg::render::docs_page()),
        ("guests/src/inventory.rs", sysreg::render::guest_table()),
    ] {
        let full = format!("{root}/{path}");
        if std::env::var_os("ARM_VCPU_BLESS").is_some() {
            std::fs::write(&full, &text).unwrap();
            continue;
        }
        let committed = std::fs::read_to_string(&full).unwrap_or_default();
        assert!(
            committed == text,
            "{path} differs from what the inventory renders: run \
             `ARM_VCPU_BLESS=1 cargo test -p arm-vcpu-el2 generated_files` and commit it"
        );
    }
}

#[test]
fn the_readme_switch_table_lists_every_switched_register() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let table: String = readme
        .lines()
        .filter(|l| l.starts_with("| bind/unbind"))
        .collect();
    for s in SWITCHED {
        let found = table
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|w| w == s.name);
        assert!(
            found,
            "README's state-switching table does not list {}",
            s.name
        );
    }
}

/// A vCPU's debug switch on a core showing `dfr0` with every optional register.
fn debug_switch(dfr0: u64) -> debug::DebugSwitch {
    let mut d = debug::DebugSwitch::default();
    d.set_view(
        debug::DebugView::from_dfr0(dfr0),
        debug::DebugCaps {
            claim_bits: 0xff,
            dtr: true,
            mdccint: true,
        },
    );
    d
}

#[test]
fn the_debug_rows_and_crate_debug_agree() {
    // Both ways, over every op0 = 2 encoding: a register `crate::debug` decodes has a
    // Debug row whose treatment is its group's (lazily switched under TDA, the OS lock
    // emulated under TDOSA, MDRAR_EL1 under TDRA) with the same directions, and every
    // Debug row of op0 = 2 is one it decodes.
    for k in 0..(1u32 << 14) {
        let reg = sysreg::from_key((2 << 14) | k);
        let row = lookup(reg).filter(|r| r.group == sysreg::Group::Debug);
        let Some(d) = debug::DebugReg::decode(reg) else {
            assert!(
                row.is_none(),
                "{} is a debug row crate::debug does not know",
                row.map_or("", |r| r.name)
            );
            continue;
        };
        let r = row.unwrap_or_else(|| panic!("{d:?} ({reg:?}) is not in the inventory"));
        assert_eq!(
            key(r.first),
            key(r.last),
            "{}: one register per row",
            r.name
        );
        let (treat, trap) = match d.group() {
            debug::Group::Switched => (Treatment::LazyDebug, TrapId::Tda),
            debug::Group::OsLock => (Treatment::Emulated(Emulation::OsLock), TrapId::Tdosa),
            debug::Group::Rom => (Treatment::Emulated(Emulation::DebugRom), TrapId::Tdra),
        };
        assert_eq!(r.treat, treat, "{}: treatment", r.name);
        assert_eq!(r.trap, Some(trap), "{}: trap", r.name);
        assert_eq!(d.accessible(true), r.access.readable(), "{}: MRS", r.name);
        assert_eq!(d.accessible(false), r.access.writable(), "{}: MSR", r.name);
        assert_eq!(d.encoding(), reg, "{}: encoding", r.name);
        // Which exist: the breakpoint/watchpoint counts of the VM's ID_AA64DFR0_EL1.
        for (brps, wrps) in (0..16u64).flat_map(|b| [(b, b), (b, 15 - b)]) {
            let dfr0 = (brps << 12) | (wrps << 20);
            let sw = debug_switch(dfr0);
            assert_eq!(
                sw.exists(d),
                r.exists.on(FeatureSet::ALL, dfr0),
                "{} with BRPs {brps} WRPs {wrps}",
                r.name
            );
            // What the first trapped access does: the lazy group loads, the others
            // are emulated, a missing register is UNDEFINED.
            for read in [true, false] {
                let mut sw = sw;
                let want = if !sw.exists(d) || !d.accessible(read) {
                    debug::Outcome::Undef
                } else if treat == Treatment::LazyDebug {
                    debug::Outcome::Load
                } else {
                    debug::Outcome::Done(match (d, read) {
                        (debug::DebugReg::OsLsr, true) => debug::oslsr(false),
                        _ => 0,
                    })
                };
                assert_eq!(sw.trap(reg, read, 0), want, "{} read {read}", r.name);
            }
        }
    }
}

#[test]
fn the_lazily_switched_debug_state_holds_every_patterned_register() {
    // The sweep patterns debug registers across VMs; each must be state of the
    // vCPU's copy (what the lazy switch saves and loads), not a constant.
    for r in INVENTORY
        .iter()
        .filter(|r| r.treat == Treatment::LazyDebug && r.pattern != 0)
    {
        let d = debug::DebugReg::decode(r.first).unwrap();
        let mut regs = debug::DebugRegs::default();
        let mut os = debug::OsLock::default();
        let caps = debug::DebugCaps {
            claim_bits: 0xff,
            dtr: true,
            mdccint: true,
        };
        regs.emulate(d, false, r.pattern, &mut os, &caps);
        assert_eq!(
            regs.emulate(d, true, 0, &mut os, &caps) & r.pattern,
            r.pattern,
            "{} is patterned but holds no state",
            r.name
        );
    }
}

#[test]
fn the_aarch32_table_and_the_inventory_agree() {
    // Every AArch32 EL0 row names the trap of its AArch64 counterpart's row (the same
    // control in traps::BITS), and the two are answered alike: emulated or switched
    // there, emulated here; hidden or UNDEFINED there, UNDEFINED here.
    let counterpart = |name: &str| -> Option<&'static str> {
        Some(match name {
            "CNTP_TVAL" => "CNTP_TVAL_EL0",
            "CNTP_CTL" => "CNTP_CTL_EL0",
            "CNTP_CVAL" => "CNTP_CVAL_EL0",
            "DBGDSCRint" => "MDSCR_EL1",
            "DBGDTRRXint/DBGDTRTXint" => "DBGDTRRX_EL0 (MRS) / DBGDTRTX_EL0 (MSR)",
            "LDC/STC DBGDTRTXint/DBGDTRRXint" => "DBGDTRRX_EL0 (MRS) / DBGDTRTX_EL0 (MSR)",
            "DBGDRAR (32-bit)" | "DBGDRAR" => "MDRAR_EL1",
            "PMU (PMCR, PMCNTENSET, ..., PMUSERENR)" => "PMCR_EL0",
            "PMCCNTR (64-bit)" => "PMCCNTR_EL0",
            // DBGDIDR (from ID_AA64DFR0_EL1), DBGDSAR (AArch32 only, RAZ) and the
            // IMPLEMENTATION DEFINED space have no single AArch64 register.
            _ => return None,
        })
    };
    let mut matched = 0;
    for r in aarch32::REGISTERS.iter() {
        let id = r.trap.trap_id();
        // The composition sets the control for the default setup on any host.
        for features in [FeatureSet::EMPTY, FeatureSet::ALL] {
            let v = compose(&Inputs {
                features,
                setup: Aarch64VCpuSetupConfig::default(),
                fp_trapped: true,
                hpmn: 0,
            });
            assert!(
                trapping(&v, features, id),
                "{}: {} not set",
                r.name,
                id.name()
            );
        }
        let Some(n) = counterpart(r.name) else {
            assert!(
                matches!(r.name, "DBGDIDR" | "DBGDSAR (32-bit)" | "DBGDSAR")
                    || matches!(r.trap, aarch32::TrapControl::HcrTidcp),
                "{}: no AArch64 counterpart named",
                r.name
            );
            continue;
        };
        let a64 = INVENTORY
            .iter()
            .find(|x| x.name == n)
            .unwrap_or_else(|| panic!("{n} not in the inventory"));
        matched += 1;
        // The same trap, except where AArch32 EL0 reaches MDSCR_EL1/DTR state through
        // the TDA-trapped DCC view of a TDA register (same control).
        assert_eq!(a64.trap, Some(id), "{}: trap differs from {}", r.name, n);
        match r.treatment {
            aarch32::Treatment::Emulated(_) => assert!(
                a64.treat.accessible(),
                "{}: emulated, but {} is {:?}",
                r.name,
                n,
                a64.treat
            ),
            aarch32::Treatment::Undef => assert!(
                !a64.treat.accessible() || r.encoding == aarch32::Encoding::LdcStc,
                "{}: UNDEFINED, but {} is {:?}",
                r.name,
                n,
                a64.treat
            ),
        }
        if let aarch32::Treatment::Emulated(aarch32::Emulation::Timer(t)) = r.treatment {
            assert_eq!(key(t), key(a64.first), "{}: timer register", r.name);
            assert_eq!(a64.treat, Treatment::PhysTimer, "{}", r.name);
        }
    }
    assert!(matched >= 8);
    // And the other way: the AArch64 rows the AArch32 views stand for are all named.
    for n in [
        "CNTP_CTL_EL0",
        "CNTP_CVAL_EL0",
        "CNTP_TVAL_EL0",
        "MDSCR_EL1",
        "MDRAR_EL1",
    ] {
        assert!(
            aarch32::REGISTERS
                .iter()
                .any(|r| counterpart(r.name) == Some(n)),
            "{n} has no AArch32 EL0 view in aarch32::REGISTERS"
        );
    }
}

proptest! {
    #[test]
    fn any_host_composes_without_contradiction(bits: u64, flags in 0u8..32) {
        let features = closure(FeatureSet(bits & FeatureSet::ALL.0));
        let i = Inputs {
            features,
            setup: Aarch64VCpuSetupConfig {
                passthrough_interrupt: flags & 1 != 0,
                passthrough_timer: flags & 2 != 0,
                trap_wfi: flags & 4 != 0,
                trap_wfe: flags & 8 != 0,
                ..Default::default()
            },
            fp_trapped: flags & 16 != 0,
            hpmn: 0,
        };
        let v = compose(&i);
        for r in INVENTORY {
            if let (Some(id), true) = (r.trap, needs_trap(r, &i)) {
                if let Exists::Feat(f) = r.exists {
                    if !features.has(f) { continue; }
                }
                prop_assert!(trapping(&v, features, id), "{}", r.name);
            }
        }
    }
}
