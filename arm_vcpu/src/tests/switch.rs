//! The bind/unbind switch against recording register files: what a bind writes, and
//! that the shortcuts (the rebind shortcut, the per-core copy of the per-VM EL2
//! controls) never skip a load a correct switch needs. Each core is a fake register
//! file that keeps what was written; after every bind, every register the switch list
//! loads must hold what the vCPU's saved state says (what a full load would write).

use std::collections::{BTreeMap, BTreeSet};

use crate::context::{Kind, RegFile, SWITCHED};
use crate::esr::Syndrome;
use crate::percpu::{CpuFeatures, HOST_HCR_EL2};
use crate::reg::Reg;
use crate::sysreg::{Feature, FeatureSet};
use crate::{
    Aarch64PerCpu, Aarch64VCpu, Aarch64VCpuCreateConfig, Aarch64VCpuSetupConfig, FpSwitch,
    Stage2Config, SysRegAddr,
};

/// One core's system registers: values by encoding, and what was written / read.
#[derive(Default)]
struct Core {
    regs: BTreeMap<u32, u64>,
    writes: Vec<u32>,
    reads: Vec<u32>,
}

impl RegFile for Core {
    fn read<const E: u32>(&mut self) -> u64 {
        self.reads.push(E);
        *self.regs.get(&E).unwrap_or(&0)
    }
    fn write<const E: u32>(&mut self, v: u64) {
        self.writes.push(E);
        self.regs.insert(E, v);
    }
}

impl Core {
    fn written(&self) -> BTreeSet<u32> {
        self.writes.iter().copied().collect()
    }
}

fn has() -> FeatureSet {
    FeatureSet::EMPTY
        .with(Feature::Pauth)
        .with(Feature::Hcx)
        .with(Feature::Ras)
        .with(Feature::Sme)
}

fn features(mpidr: u64) -> CpuFeatures {
    let mut f = CpuFeatures::from_id_registers(5, 2 << 4, 1 << 4, 0, 1 << 28, 0x410f_d083, mpidr);
    f.has = has();
    f
}

fn percpu(i: usize) -> Aarch64PerCpu {
    Aarch64PerCpu::test_enabled(i, features(i as u64))
}

const HCR: u32 = SysRegAddr::new(3, 4, 1, 1, 0).0;
const CPTR: u32 = SysRegAddr::new(3, 4, 1, 1, 2).0;
const VTTBR: u32 = SysRegAddr::new(3, 4, 2, 1, 0).0;
const VMPIDR: u32 = SysRegAddr::new(3, 4, 0, 0, 5).0;
const TPIDR_EL1: SysRegAddr = SysRegAddr::new(3, 0, 13, 0, 4);
const APIA_LO: u32 = SysRegAddr::new(3, 0, 2, 1, 0).0;

/// vCPU `i` of VM `vm` (VMID `vm + 1`, its own stage-2 root).
fn vcpu(vm: u64, i: u64) -> Aarch64VCpu {
    let mut v = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default().with_mpidr_el1(i)).unwrap();
    v.setup(Aarch64VCpuSetupConfig::default()).unwrap();
    v.set_entry(0x4008_0000).unwrap();
    v.set_stage2_root(stage2(vm)).unwrap();
    v
}

fn stage2(vm: u64) -> Stage2Config {
    Stage2Config::new(0x8000_0000 + vm * 0x10_0000, vm as u16 + 1, 39, 1)
}

/// Every register a bind leaves loaded holds the vCPU's saved value (`why` names the
/// step).
fn check_loaded(v: &Aarch64VCpu, core: &Core, why: &str) {
    let saved = v.system_registers();
    for s in SWITCHED.iter().filter(|s| s.gate.on(has())) {
        if s.kind == Kind::Lazy && !v.pauth_loaded() {
            continue;
        }
        let want = saved.by_addr(s.addr).unwrap();
        assert_eq!(
            core.regs.get(&s.addr.0).copied(),
            Some(want),
            "{why}: {} after bind",
            s.name
        );
    }
}

/// The guest changes every register it can while bound (what unbind must save).
fn guest_scribbles(core: &mut Core, seed: u64) {
    for (k, s) in SWITCHED.iter().enumerate() {
        if matches!(s.kind, Kind::Rw | Kind::TimerCtl) && s.gate.on(has()) {
            core.regs.insert(
                s.addr.0,
                seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ k as u64,
            );
        }
    }
}

fn bind(v: &mut Aarch64VCpu, p: &mut Aarch64PerCpu, c: &mut Core) {
    c.writes.clear();
    c.reads.clear();
    v.bind_with(p, c).unwrap();
}

fn unbind(v: &mut Aarch64VCpu, p: &mut Aarch64PerCpu, c: &mut Core) {
    c.writes.clear();
    c.reads.clear();
    v.unbind_with(p, c).unwrap();
    assert_eq!(
        c.regs[&HCR], HOST_HCR_EL2,
        "the host's HCR_EL2 after unbind"
    );
}

#[test]
fn a_rebind_with_nothing_in_between_writes_only_what_unbind_changed() {
    let (mut p, mut c) = (percpu(0), Core::default());
    let mut a = vcpu(0, 0);
    bind(&mut a, &mut p, &mut c);
    let full = c.written();
    assert!(full.contains(&TPIDR_EL1.0) && full.contains(&VTTBR) && full.contains(&VMPIDR));
    guest_scribbles(&mut c, 1);
    unbind(&mut a, &mut p, &mut c);
    bind(&mut a, &mut p, &mut c);
    let names: BTreeSet<&str> = c
        .writes
        .iter()
        .map(|e| SWITCHED.iter().find(|s| s.addr.0 == *e).unwrap().name)
        .collect();
    // HCR_EL2 and MDCR_EL2 (given back to the host at unbind) and the timer controls
    // (stopped at unbind): nothing else.
    assert_eq!(
        names,
        ["CNTP_CTL_EL0", "CNTV_CTL_EL0", "HCR_EL2", "MDCR_EL2"]
            .into_iter()
            .collect()
    );
    check_loaded(&a, &c, "rebind");
}

#[test]
fn another_vcpu_in_between_makes_the_next_bind_load_everything() {
    let (mut p, mut c) = (percpu(0), Core::default());
    let (mut a, mut b) = (vcpu(0, 0), vcpu(0, 1));
    bind(&mut a, &mut p, &mut c);
    guest_scribbles(&mut c, 1);
    unbind(&mut a, &mut p, &mut c);
    bind(&mut b, &mut p, &mut c);
    check_loaded(&b, &c, "b after a");
    // Same VM: the per-VM controls are the core's already (after one comparison).
    assert!(
        !c.written().contains(&VTTBR),
        "VTTBR_EL2 rewritten for the same VM"
    );
    assert!(c.written().contains(&VMPIDR) && c.written().contains(&TPIDR_EL1.0));
    guest_scribbles(&mut c, 2);
    unbind(&mut b, &mut p, &mut c);
    bind(&mut a, &mut p, &mut c);
    assert!(c.written().contains(&TPIDR_EL1.0));
    check_loaded(&a, &c, "a after b");
    // Another VM: its own stage 2.
    unbind(&mut a, &mut p, &mut c);
    let mut o = vcpu(1, 0);
    bind(&mut o, &mut p, &mut c);
    assert!(c.written().contains(&VTTBR));
    check_loaded(&o, &c, "another VM");
    unbind(&mut o, &mut p, &mut c);
    bind(&mut a, &mut p, &mut c);
    assert!(c.written().contains(&VTTBR));
    check_loaded(&a, &c, "back to the first VM");
}

#[test]
fn a_vcpu_that_ran_elsewhere_is_loaded_again() {
    let (mut p0, mut c0) = (percpu(0), Core::default());
    let (mut p1, mut c1) = (percpu(1), Core::default());
    let mut a = vcpu(0, 0);
    bind(&mut a, &mut p0, &mut c0);
    guest_scribbles(&mut c0, 1);
    unbind(&mut a, &mut p0, &mut c0);
    bind(&mut a, &mut p1, &mut c1);
    check_loaded(&a, &c1, "on core 1");
    guest_scribbles(&mut c1, 2);
    unbind(&mut a, &mut p1, &mut c1);
    // Core 0 still holds what the vCPU had when it left core 0: stale.
    bind(&mut a, &mut p0, &mut c0);
    assert!(c0.written().contains(&TPIDR_EL1.0));
    check_loaded(&a, &c0, "back on core 0");
}

/// Every way the host changes an unbound vCPU's saved state makes the next bind on
/// the same core load it.
#[test]
fn every_change_while_unbound_makes_the_rebind_load() {
    type Change = fn(&mut Aarch64VCpu);
    let changes: [(&str, Change); 9] = [
        ("set_reg", |v| {
            v.set_reg(Reg::Sys(TPIDR_EL1), 0x1234).unwrap();
        }),
        ("set_reg CNTVOFF_EL2", |v| {
            v.set_reg(Reg::Sys(crate::reg::CNTVOFF_EL2), 0x77).unwrap();
        }),
        ("set_sp_el0", |v| v.set_sp_el0(0x5500)),
        ("inject_undef", |v| v.inject_undef().unwrap()),
        ("inject_data_abort", |v| {
            v.inject_data_abort(0x1000, true).unwrap()
        }),
        ("power_on", |v| {
            let _ = v.power_on(0x4010_0000, 7).unwrap();
        }),
        ("setup", |v| {
            v.setup(Aarch64VCpuSetupConfig::default()).unwrap()
        }),
        ("set_stage2_root", |v| v.set_stage2_root(stage2(0)).unwrap()),
        ("restore", |v| {
            let snap = v.snapshot().unwrap();
            v.restore(&snap).unwrap();
        }),
    ];
    for (name, change) in changes {
        let (mut p, mut c) = (percpu(0), Core::default());
        let mut a = vcpu(0, 0);
        bind(&mut a, &mut p, &mut c);
        guest_scribbles(&mut c, 3);
        unbind(&mut a, &mut p, &mut c);
        // The core's registers keep what the vCPU had; the host then changes it.
        change(&mut a);
        bind(&mut a, &mut p, &mut c);
        check_loaded(&a, &c, name);
        assert!(c.written().contains(&TPIDR_EL1.0), "{name}: no full load");
    }
}

#[test]
fn forget_loaded_state_and_hardware_enable_make_the_next_bind_load_everything() {
    let (mut p, mut c) = (percpu(0), Core::default());
    let mut a = vcpu(0, 0);
    bind(&mut a, &mut p, &mut c);
    unbind(&mut a, &mut p, &mut c);
    // The host wrote EL1 registers behind the crate's back, and says so.
    c.regs.insert(TPIDR_EL1.0, 0xdead);
    c.regs.insert(VTTBR, 0xdead);
    p.forget_loaded_state();
    bind(&mut a, &mut p, &mut c);
    check_loaded(&a, &c, "after forget_loaded_state");
}

#[test]
fn fp_used_before_unbind_leaves_cptr_trapping_for_the_next_bind() {
    let (mut p, mut c) = (percpu(0), Core::default());
    let (mut a, mut b) = (vcpu(0, 0), vcpu(0, 1));
    bind(&mut a, &mut p, &mut c);
    let trapping = c.regs[&CPTR];
    assert_ne!(trapping & crate::traps::CPTR_TFP, 0);
    // The guest's first FP instruction: CPTR_EL2.TFP cleared in the hardware.
    let fp = Syndrome {
        esr: 0x07 << 26 | 1 << 25,
        far: 0,
        hpfar: 0,
    };
    assert!(a.handle_sync_exit(&fp).is_none());
    assert!(a.fp_loaded());
    c.regs.insert(CPTR, trapping & !crate::traps::CPTR_TFP);
    unbind(&mut a, &mut p, &mut c);
    assert_eq!(c.regs[&CPTR], trapping, "CPTR_EL2.TFP set again at unbind");
    // B (same VM) finds the core's copy of the controls valid: FP traps for it.
    bind(&mut b, &mut p, &mut c);
    assert_eq!(c.regs[&CPTR], trapping);
    assert!(!b.fp_loaded());
    check_loaded(&b, &c, "b after a used FP");
}

#[test]
fn pauth_keys_load_on_first_use_and_stay_only_for_the_same_vcpu() {
    let (mut p, mut c) = (percpu(0), Core::default());
    let (mut a, mut b) = (vcpu(0, 0), vcpu(0, 1));
    bind(&mut a, &mut p, &mut c);
    let api_apk = crate::traps::HCR_API | crate::traps::HCR_APK;
    assert_eq!(c.regs[&HCR] & api_apk, 0, "PAuth traps until first use");
    assert!(!c.written().contains(&APIA_LO), "keys loaded at bind");
    // A PAC instruction traps (EC 0x09): the keys are loaded, the trap bits set.
    let pac = Syndrome {
        esr: 0x09 << 26 | 1 << 25,
        far: 0,
        hpfar: 0,
    };
    assert!(a.handle_sync_exit(&pac).is_none());
    assert!(a.pauth_loaded());
    // (The hardware side of the load, as `hw` does it on the target.)
    c.regs.insert(HCR, c.regs[&HCR] | api_apk);
    for s in SWITCHED.iter().filter(|s| s.kind == Kind::Lazy) {
        c.regs.insert(s.addr.0, 0x0ab0_0000 ^ s.addr.0 as u64);
    }
    unbind(&mut a, &mut p, &mut c);
    assert!(c.reads.contains(&APIA_LO), "loaded keys saved at unbind");
    assert_eq!(
        a.system_registers().apia_lo,
        0x0ab0_0000 ^ APIA_LO as u64,
        "the guest's key saved"
    );
    assert_eq!(a.system_registers().hcr_el2 & api_apk, 0);
    // Rebound with nothing in between: the keys are still the hardware's.
    bind(&mut a, &mut p, &mut c);
    assert!(a.pauth_loaded());
    assert_eq!(c.regs[&HCR] & api_apk, api_apk);
    check_loaded(&a, &c, "pauth rebind");
    unbind(&mut a, &mut p, &mut c);
    // Another vCPU: trapped, whatever the hardware holds.
    bind(&mut b, &mut p, &mut c);
    assert!(!b.pauth_loaded());
    assert_eq!(c.regs[&HCR] & api_apk, 0, "b must not reach a's keys");
    unbind(&mut b, &mut p, &mut c);
    assert!(!c.reads.contains(&APIA_LO), "unloaded keys are not saved");
    bind(&mut a, &mut p, &mut c);
    assert!(!a.pauth_loaded(), "a's keys were not kept across b");
    // A second trap once loaded is the guest's: UNDEFINED (injected, not loaded again).
    assert!(a.handle_sync_exit(&pac).is_none());
    assert!(a.pauth_loaded());
}

#[test]
fn a_key_register_access_loads_the_keys_and_runs_again() {
    let (mut p, mut c) = (percpu(0), Core::default());
    let mut a = vcpu(0, 0);
    bind(&mut a, &mut p, &mut c);
    let pc = a.pc();
    // MRS x3, APIAKeyLo_EL1 (EC 0x18, op0 3, op1 0, CRn 2, CRm 1, op2 0, read).
    let iss = (3 << 20) | (2 << 10) | (1 << 1) | (3 << 5) | 1;
    let mrs = Syndrome {
        esr: 0x18 << 26 | 1 << 25 | iss,
        far: 0,
        hpfar: 0,
    };
    assert!(a.handle_sync_exit(&mrs).is_none());
    assert!(a.pauth_loaded());
    assert_eq!(a.pc(), pc, "the access runs again");
    assert!(crate::sysreg::is_pauth_key(SysRegAddr::new(3, 0, 2, 3, 1)));
    assert!(!crate::sysreg::is_pauth_key(SysRegAddr::new(3, 0, 2, 3, 2)));
    assert!(!crate::sysreg::is_pauth_key(SysRegAddr::new(3, 0, 2, 0, 0)));
}

/// Random sequences of binds, guest runs, unbinds and host changes over three vCPUs
/// (two of one VM) and two cores: after every bind the core holds exactly the vCPU's
/// state.
#[test]
fn random_switch_sequences_always_leave_the_bound_vcpus_state_loaded() {
    for seed in 1..200u64 {
        let mut rng = seed;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut cores = [(percpu(0), Core::default()), (percpu(1), Core::default())];
        let mut vs = [vcpu(0, 0), vcpu(0, 1), vcpu(1, 0)];
        let mut on: [Option<usize>; 3] = [None; 3];
        for step in 0..60 {
            let i = (next() % 3) as usize;
            let why = format!("seed {seed} step {step}");
            match (on[i], next() % 5) {
                (None, 0 | 1) => {
                    let k = (next() % 2) as usize;
                    if on.contains(&Some(k)) {
                        continue;
                    }
                    let (p, c) = &mut cores[k];
                    bind(&mut vs[i], p, c);
                    check_loaded(&vs[i], c, &why);
                    on[i] = Some(k);
                }
                (None, 2) => {
                    let v = &mut vs[i];
                    match next() % 4 {
                        0 => v
                            .set_reg(Reg::Sys(TPIDR_EL1), u128::from(next() as u32))
                            .unwrap(),
                        1 => v.set_sp_el0(next()),
                        2 => v.inject_undef().unwrap(),
                        _ => {
                            let _ = v.power_on(0x4008_0000, next()).unwrap();
                        }
                    }
                }
                (None, _) => {}
                (Some(k), 0 | 1) => guest_scribbles(&mut cores[k].1, next()),
                (Some(k), _) => {
                    let (p, c) = &mut cores[k];
                    unbind(&mut vs[i], p, c);
                    on[i] = None;
                }
            }
        }
    }
}

#[test]
fn eager_fp_and_bind_errors_leave_no_stale_record() {
    let (mut p, mut c) = (percpu(0), Core::default());
    let mut a = vcpu(0, 0);
    a.setup(Aarch64VCpuSetupConfig {
        fp_switch: FpSwitch::Eager,
        ..Default::default()
    })
    .unwrap();
    bind(&mut a, &mut p, &mut c);
    assert!(a.fp_loaded());
    // A second bind while bound is refused and changes nothing.
    let mut b = vcpu(0, 1);
    assert!(b.bind_with(&mut p, &mut c).is_err());
    unbind(&mut a, &mut p, &mut c);
    bind(&mut a, &mut p, &mut c);
    check_loaded(&a, &c, "eager rebind");
}

/// Unbind finds its core by the state it was bound with (bound, the core key): another
/// core's state, or one nothing is bound to, is refused and changes nothing; the right
/// one then unbinds and records the vCPU for the rebind shortcut.
#[test]
fn unbind_refuses_a_state_the_vcpu_is_not_bound_to() {
    let (mut p0, mut c0) = (percpu(0), Core::default());
    let (mut p1, mut c1) = (percpu(1), Core::default());
    let mut a = vcpu(0, 0);
    bind(&mut a, &mut p0, &mut c0);
    guest_scribbles(&mut c0, 7);
    for (p, why) in [
        (&mut p1, "another core"),
        (&mut Aarch64PerCpu::new(2), "disabled"),
    ] {
        c1.writes.clear();
        assert_eq!(
            a.unbind_with(p, &mut c1),
            Err(crate::VCpuError::WrongCpu),
            "{why}"
        );
        assert!(a.is_bound() && p0.bound && c1.writes.is_empty(), "{why}");
    }
    unbind(&mut a, &mut p0, &mut c0);
    assert!(!a.is_bound() && !p0.bound);
    bind(&mut a, &mut p0, &mut c0);
    check_loaded(&a, &c0, "rebind after refused unbinds");
    assert!(
        !c0.written().contains(&TPIDR_EL1.0),
        "the rebind shortcut still holds"
    );
}
