//! Host tests of the virtual PMU (`crate::pmu`): the view a VM gets (ID field,
//! `PMCR_EL0.N`, `PMCEID0/1_EL0`), the HPMN partition, the lazy-switch decisions and
//! the rules that keep a guest counting only itself (emulated against a model PMU).

use crate::idregs::{IdRegisters, ID_AA64DFR0, ID_SPACE_LEN};
use crate::pmu::*;
use crate::sysreg::{Feature, FeatureSet};
use crate::traps::{self, Ctl};
use crate::*;

/// A core like QEMU's `-cpu max` (PMUv3p5, 6 counters, HPMN = 6 at reset) or
/// `cortex-a53` (PMUv3, 6 counters).
fn caps(pmuver: u8, hpmn: u8) -> PmuCaps {
    PmuCaps {
        pmuver,
        pmcr: 0x4100_3000 | (6 << 11) | pmcr::LC,
        ceid: [0x0000_000f_6fff_ffff, 0x0000_0000_0000_00ff],
        hpmn,
        el3: false,
    }
}

fn view(cfg: PmuConfig, c: &PmuCaps) -> PmuView {
    PmuView::decide(cfg, c).unwrap().unwrap()
}

const ALL: PmuConfig = PmuConfig::V3 { counters: None };

#[test]
fn the_choice_decides_the_counters_within_hpmn() {
    assert_eq!(PmuView::decide(PmuConfig::Hidden, &caps(6, 6)), Ok(None));
    // Default: what HPMN leaves; fewer on request; more is refused, and so is none.
    assert_eq!(view(ALL, &caps(6, 6)).counters, 6);
    assert_eq!(view(ALL, &caps(6, 4)).counters, 4);
    assert_eq!(
        view(PmuConfig::V3 { counters: Some(2) }, &caps(6, 6)).counters,
        2
    );
    for bad in [Some(5), Some(0)] {
        assert!(PmuView::decide(PmuConfig::V3 { counters: bad }, &caps(6, 4)).is_err());
    }
    assert!(PmuView::decide(ALL, &caps(6, 0)).is_err());
    // No PMUv3 (none, or an IMPLEMENTATION DEFINED one).
    assert!(PmuView::decide(ALL, &caps(0, 6)).is_err());
    assert!(PmuView::decide(ALL, &caps(0xf, 6)).is_err());
    assert_eq!(view(ALL, &caps(6, 6)).mask(), 0x8000_003f);
    assert_eq!(
        view(PmuConfig::V3 { counters: Some(1) }, &caps(6, 6)).mask(),
        0x8000_0001
    );
}

#[test]
fn id_view_pmcr_n_and_pmceid_agree_with_the_choice() {
    let mut host = [0u64; ID_SPACE_LEN];
    host[ID_AA64DFR0] = 0x6 << 8 | 0x6; // PMUv3p5, DebugVer v8.0
    let ids = IdRegisters::sanitized(&host, false, 40);
    // Hidden by default.
    assert_eq!(ids.values()[ID_AA64DFR0] >> 8 & 0xf, 0);
    for (pmuver, shown) in [(1, 1), (4, 4), (5, 5), (6, 5), (8, 5)] {
        let v = view(PmuConfig::V3 { counters: Some(3) }, &caps(pmuver, 6));
        assert_eq!(v.pmuver, shown, "PMUVer {pmuver}");
        assert_eq!(
            ids.with_pmu(v.pmuver).values()[ID_AA64DFR0] >> 8 & 0xf,
            shown as u64
        );
        // N is the VM's; IMP/IDCODE the host's; no writable bit in the fixed part.
        assert_eq!(v.pmcr_ro & pmcr::N, 3 << 11);
        assert_eq!(v.pmcr_ro & pmcr::ID, 0x4100_0000);
        assert_eq!(v.pmcr_ro & pmcr::GUEST_RW, 0);
        // PMCEID: the SPE sample events (the host's 0x4000..0x4003) go.
        assert_eq!(v.ceid, [0x6fff_ffff, 0xff]);
    }
    let c = [0x0000_00ff_0000_0001, 0x0000_0003_0000_0002];
    assert_eq!(
        ceid_view(c, 4),
        [0x0000_00f0_0000_0001, 0x0000_0003_0000_0002]
    );
    assert_eq!(ceid_view(c, 1), [0x1, 0x2]);
}

#[test]
fn counting_at_el2_is_prohibited_by_the_hardware_or_by_trapping() {
    // PMUv3 (v8.0): no HPMD, so every access stays trapped and is filtered.
    let v3 = view(ALL, &caps(1, 6));
    assert_eq!(v3.mode, Mode::Trapped);
    assert!(!v3.hpmd && !v3.hccd && !v3.force_dp);
    assert_eq!(v3.untrapped_when_loaded(), 0);
    assert_eq!(v3.mdcr_bits(), 6);
    // PMUv3p1..p4: HPMD, and PMCR.DP forced for the cycle counter; still trapped (and
    // NSH filtered): DP alone is not trusted to stop the cycle counter at EL2.
    let v4 = view(ALL, &caps(4, 6));
    assert_eq!(
        (v4.mode, v4.hpmd, v4.hccd, v4.force_dp),
        (Mode::Trapped, true, false, true)
    );
    assert_eq!(v4.mdcr_bits(), 6 | mdcr::HPMD);
    // Fewer counters than the core has (host counters above the VM's): trapped.
    let part = view(PmuConfig::V3 { counters: Some(4) }, &caps(6, 6));
    assert_eq!(
        (part.mode, part.hpmd, part.hccd),
        (Mode::Trapped, true, true)
    );
    assert_eq!(
        view(ALL, &caps(6, 4)).mode,
        Mode::Trapped,
        "HPMN below PMCR.N"
    );
    assert_eq!(v4.hw_pmcr(pmcr::E), pmcr::E | pmcr::DP);
    assert_eq!(v4.untrapped_when_loaded(), 0);
    // PMUv3p5 with every counter: HCCD, DP as the guest wrote it, passed through.
    let v6 = view(ALL, &caps(6, 6));
    assert_eq!((v6.mode, v6.force_dp), (Mode::Passthrough, false));
    assert_eq!(v6.untrapped_when_loaded(), mdcr::TPM);
    assert_eq!(v6.mdcr_bits(), 6 | mdcr::HPMD | mdcr::HCCD);
    assert_eq!(
        v6.hw_pmcr(pmcr::E | pmcr::P | pmcr::C | 0x1f << 11),
        pmcr::E
    );
}

#[test]
fn the_composed_mdcr_has_the_partition_and_the_el2_prohibition() {
    let setup = Aarch64VCpuSetupConfig::default();
    let f = FeatureSet::EMPTY
        .with(Feature::Pmu)
        .with(Feature::PmuV3p1)
        .with(Feature::PmuV3p5);
    let mdcr = |setup: Aarch64VCpuSetupConfig, hpmn: u64, f: FeatureSet| {
        traps::compose(&traps::Inputs {
            features: f,
            setup,
            fp_trapped: false,
            hpmn,
        })
        .get(Ctl::Mdcr)
    };
    // Hidden: the host's HPMN, TPM|TPMCR, nothing else of the PMU's.
    let mut sw = PmuSwitch::default();
    let m = mdcr(setup, sw.mdcr_bits(0x13), f);
    assert_eq!(m & 0x1f, 0x13);
    assert_eq!(m & (mdcr::TPM | mdcr::TPMCR), mdcr::TPM | mdcr::TPMCR);
    assert_eq!(m & (mdcr::HPMD | mdcr::HCCD), 0);
    // With a PMU of 4 counters: HPMN = 4, HPMD and HCCD on a v3p5 host.
    let pmu = setup.with_pmu(PmuConfig::V3 { counters: Some(4) });
    sw.set_view(Some(view(PmuConfig::V3 { counters: Some(4) }, &caps(6, 6))));
    let m = mdcr(pmu, sw.mdcr_bits(0x06), f);
    assert_eq!(m & 0x1f, 4);
    assert_eq!(m & (mdcr::HPMD | mdcr::HCCD), mdcr::HPMD | mdcr::HCCD);
    assert_eq!(m & (mdcr::TPM | mdcr::TPMCR), mdcr::TPM | mdcr::TPMCR);
    // A v8.0 host: neither bit exists (RES0).
    let m = mdcr(pmu, 4, FeatureSet::EMPTY.with(Feature::Pmu));
    assert_eq!(m & (mdcr::HPMD | mdcr::HCCD), 0);
}

/// A PMU of 8 counters with SET/CLR semantics: counters 6 and 7 are the host's.
#[derive(Default)]
struct Model {
    r: PmuRegs,
    pmcr: u64,
}

impl PmuAccess for Model {
    fn read(&mut self, r: PmuReg) -> u64 {
        match r {
            PmuReg::Pmcr => self.pmcr,
            PmuReg::CntenSet | PmuReg::CntenClr => self.r.cnten,
            PmuReg::IntenSet | PmuReg::IntenClr => self.r.inten,
            PmuReg::OvsSet | PmuReg::OvsClr => self.r.ovs,
            PmuReg::Selr => self.r.selr,
            PmuReg::Userenr => self.r.userenr,
            PmuReg::Ccntr => self.r.ccntr,
            PmuReg::Ccfiltr => self.r.ccfiltr,
            PmuReg::Evcntr(n) => self.r.evcntr[n as usize],
            PmuReg::Evtyper(n) => self.r.evtyper[n as usize],
            _ => 0xdead,
        }
    }
    fn write(&mut self, r: PmuReg, v: u64) {
        match r {
            PmuReg::Pmcr => self.pmcr = v,
            PmuReg::CntenSet => self.r.cnten |= v,
            PmuReg::CntenClr => self.r.cnten &= !v,
            PmuReg::IntenSet => self.r.inten |= v,
            PmuReg::IntenClr => self.r.inten &= !v,
            PmuReg::OvsSet => self.r.ovs |= v,
            PmuReg::OvsClr => self.r.ovs &= !v,
            PmuReg::Selr => self.r.selr = v,
            PmuReg::Userenr => self.r.userenr = v,
            PmuReg::Ccntr => self.r.ccntr = v,
            PmuReg::Ccfiltr => self.r.ccfiltr = v,
            PmuReg::Evcntr(n) => self.r.evcntr[n as usize] = v,
            PmuReg::Evtyper(n) => self.r.evtyper[n as usize] = v,
            _ => panic!("unexpected write of {r:?}"),
        }
    }
}

/// A loaded switch of 6 counters on a v8.0 core (every access emulated).
fn loaded() -> (PmuSwitch, Model) {
    let mut sw = PmuSwitch::default();
    sw.set_view(Some(view(ALL, &caps(1, 6))));
    sw.loaded = true;
    let mut m = Model::default();
    m.r.evcntr[6] = 0x1234;
    m.r.evcntr[7] = 0x5678;
    m.r.cnten = 0xc0;
    (sw, m)
}

fn w(sw: &mut PmuSwitch, m: &mut Model, r: PmuReg, v: u64) -> Outcome {
    assert_eq!(sw.trap(r, false), Outcome::Done(0), "{r:?}");
    sw.emulate(r, false, v, false, m)
}

fn rd(sw: &mut PmuSwitch, m: &mut Model, r: PmuReg) -> Outcome {
    sw.emulate(r, true, 0, false, m)
}

#[test]
fn a_guest_cannot_set_nsh() {
    let all = u64::MAX;
    assert_eq!(filter_evtyper(all) & evtyper::NSH, 0);
    assert_eq!(filter_ccfiltr(all) & evtyper::NSH, 0);
    // The EL1/EL0 filters and the event number pass.
    let t = evtyper::P | evtyper::U | event::INST_RETIRED;
    assert_eq!(filter_evtyper(t | evtyper::NSH), t);
    assert_eq!(filter_ccfiltr(evtyper::U | evtyper::NSH), evtyper::U);
    let (mut sw, mut m) = loaded();
    w(
        &mut sw,
        &mut m,
        PmuReg::Evtyper(2),
        evtyper::NSH | event::CPU_CYCLES,
    );
    assert_eq!(m.r.evtyper[2], event::CPU_CYCLES);
    w(&mut sw, &mut m, PmuReg::Ccfiltr, evtyper::NSH);
    assert_eq!(m.r.ccfiltr, 0);
    // Through PMSELR/PMXEVTYPER: counter 1, then SEL = 31 (the cycle filter).
    w(&mut sw, &mut m, PmuReg::Selr, 1);
    w(&mut sw, &mut m, PmuReg::Xevtyper, evtyper::NSH | 0x11);
    assert_eq!(m.r.evtyper[1], 0x11);
    w(&mut sw, &mut m, PmuReg::Selr, 31);
    w(&mut sw, &mut m, PmuReg::Xevtyper, evtyper::NSH | evtyper::P);
    assert_eq!(m.r.ccfiltr, evtyper::P);
    assert_eq!(rd(&mut sw, &mut m, PmuReg::Xevcntr), Outcome::Done(0));
    // SEL beyond the VM's counters: UNDEFINED.
    w(&mut sw, &mut m, PmuReg::Selr, 6);
    assert_eq!(rd(&mut sw, &mut m, PmuReg::Xevcntr), Outcome::Undef);
}

#[test]
fn the_hosts_counters_above_hpmn_are_untouched() {
    let (mut sw, mut m) = loaded();
    for r in [PmuReg::CntenSet, PmuReg::IntenSet, PmuReg::OvsSet] {
        w(&mut sw, &mut m, r, u64::MAX);
    }
    assert_eq!(m.r.cnten, 0x8000_00ff);
    assert_eq!(m.r.inten, 0x8000_003f);
    assert_eq!(m.r.ovs, 0x8000_003f);
    for r in [PmuReg::CntenClr, PmuReg::IntenClr, PmuReg::OvsClr] {
        w(&mut sw, &mut m, r, u64::MAX);
    }
    assert_eq!(m.r.cnten, 0xc0, "the host's enable bits stay");
    // Reads show only the VM's bits.
    assert_eq!(rd(&mut sw, &mut m, PmuReg::CntenSet), Outcome::Done(0));
    // PMCR.P resets the VM's counters only (at EL2 it would reset all), C the cycle one.
    m.r.evcntr[..6].copy_from_slice(&[1, 2, 3, 4, 5, 6]);
    m.r.ccntr = 99;
    w(&mut sw, &mut m, PmuReg::Pmcr, pmcr::P | pmcr::C | pmcr::E);
    assert_eq!(&m.r.evcntr[..8], &[0, 0, 0, 0, 0, 0, 0x1234, 0x5678]);
    assert_eq!(m.r.ccntr, 0);
    assert_eq!(m.pmcr, pmcr::E);
    // PMCR reads: the guest's bits, N = 6, the host's IDCODE/IMP.
    assert_eq!(
        rd(&mut sw, &mut m, PmuReg::Pmcr),
        Outcome::Done(0x4100_0000 | 6 << 11 | pmcr::E)
    );
    // PMSWINC at EL2 is emulated on the VM's counters.
    let _ = w(&mut sw, &mut m, PmuReg::Swinc, u64::MAX);
    assert_eq!(&m.r.evcntr[6..8], &[0x1234, 0x5678]);
}

#[test]
fn software_increment_follows_enable_event_and_filter() {
    let (mut sw, mut m) = loaded();
    w(&mut sw, &mut m, PmuReg::Pmcr, pmcr::E);
    // Counter 0: SW_INCR near overflow; 1: SW_INCR, not counting EL1; 2: another event;
    // 3: SW_INCR but disabled.
    m.r.evcntr[0] = 0xffff_ffff;
    m.r.evtyper[1] = evtyper::P;
    m.r.evtyper[2] = event::CPU_CYCLES;
    w(&mut sw, &mut m, PmuReg::CntenSet, 0b0111);
    w(&mut sw, &mut m, PmuReg::Swinc, 0b1111);
    assert_eq!(&m.r.evcntr[..4], &[0, 0, 0, 0]);
    assert_eq!(m.r.ovs, 1, "counter 0 overflowed");
    // From EL0, counter 1 (U clear) counts.
    sw.emulate(PmuReg::Swinc, false, 0b10, true, &mut m);
    assert_eq!(m.r.evcntr[1], 1);
    // PMCR.E clear: nothing counts.
    w(&mut sw, &mut m, PmuReg::Pmcr, 0);
    w(&mut sw, &mut m, PmuReg::Swinc, 0b10);
    assert_eq!(m.r.evcntr[1], 1);
}

#[test]
fn the_lazy_switch_decisions() {
    let mut sw = PmuSwitch::default();
    // No PMU: everything UNDEFINED, nothing loaded at bind.
    assert_eq!(sw.trap(PmuReg::Pmcr, true), Outcome::Undef);
    assert!(!sw.load_at_bind());
    sw.set_view(Some(view(PmuConfig::V3 { counters: Some(2) }, &caps(6, 6))));
    // Not loaded: the first use loads; registers the VM lacks are UNDEFINED.
    assert_eq!(sw.trap(PmuReg::Pmcr, true), Outcome::Load);
    assert_eq!(sw.trap(PmuReg::Evcntr(1), false), Outcome::Load);
    assert_eq!(sw.trap(PmuReg::Evcntr(2), false), Outcome::Undef);
    assert_eq!(sw.trap(PmuReg::Evtyper(30), true), Outcome::Undef);
    // PMMIR_EL1 with PMUv3p4 only (shown: the host has v3p5).
    assert_eq!(sw.trap(PmuReg::Mmir, true), Outcome::Load);
    assert_eq!(sw.trap(PmuReg::Mmir, false), Outcome::Undef);
    let mut v3 = PmuSwitch::default();
    v3.set_view(Some(view(ALL, &caps(4, 6))));
    assert_eq!(v3.trap(PmuReg::Mmir, true), Outcome::Undef);
    assert_eq!(sw.trap(PmuReg::Swinc, true), Outcome::Undef);
    assert_eq!(sw.trap(PmuReg::Ceid0, false), Outcome::Undef);
    // Loaded at bind only when something must happen before the next access.
    assert!(!sw.load_at_bind());
    sw.guest.pmcr = pmcr::E;
    assert!(!sw.load_at_bind(), "enabled but no counter on");
    sw.guest.cnten = CYCLE_BIT;
    assert!(sw.load_at_bind());
    sw.guest.cnten = 0;
    sw.guest.ovs = 1;
    sw.guest.inten = 1;
    assert!(
        sw.load_at_bind() && sw.saved_line(),
        "overflow interrupt pending"
    );
    sw.guest = PmuRegs {
        userenr: 1,
        ..PmuRegs::default()
    };
    assert!(sw.load_at_bind(), "EL0 access granted");
    assert!(!sw.saved_line());
    // Reset (power_on): all of it back to 0.
    sw.guest.evcntr[0] = 5;
    sw.reset();
    assert_eq!(sw.guest, PmuRegs::default());
}

#[test]
fn decode_and_encoding_are_inverse_and_match_the_inventory() {
    let mut n = 0;
    for op1 in [0u8, 3] {
        for crn in [9u8, 14] {
            for crm in 0..16u8 {
                for op2 in 0..8u8 {
                    let a = SysRegAddr::new(3, op1, crn, crm, op2);
                    if let Some(r) = PmuReg::decode(a) {
                        n += 1;
                        assert_eq!(r.encoding(), a, "{r:?}");
                        let row = crate::sysreg::lookup(a).unwrap();
                        assert_eq!(row.group, crate::sysreg::Group::Pmu, "{}", row.name);
                        let feat = if r == PmuReg::Mmir {
                            Feature::PmuV3p4
                        } else {
                            Feature::Pmu
                        };
                        assert_eq!(
                            row.exists,
                            crate::sysreg::Exists::Feat(feat),
                            "{}",
                            row.name
                        );
                        assert_eq!(row.trap, Some(traps::TrapId::Tpm), "{}", row.name);
                        assert_eq!(row.treat, crate::sysreg::Treatment::LazyPmu, "{}", row.name);
                        assert_eq!(row.access.readable(), r.accessible(true), "{}", row.name);
                        assert_eq!(row.access.writable(), r.accessible(false), "{}", row.name);
                    }
                }
            }
        }
    }
    // 16 + PMINTENSET/CLR + PMMIR + 31 counters + 31 types + PMCCFILTR.
    assert_eq!(n, 14 + 3 + 31 + 31 + 1);
    // Every PMU row decodes.
    for r in crate::sysreg::INVENTORY
        .iter()
        .filter(|r| r.group == crate::sysreg::Group::Pmu)
    {
        assert!(
            PmuReg::decode(r.first).is_some() && PmuReg::decode(r.last).is_some(),
            "{}",
            r.name
        );
    }
}

#[test]
fn a_vcpu_without_a_pmu_undefs_and_one_with_a_pmu_loads() {
    use crate::esr::{build, Syndrome};
    let pmcr_read = Syndrome {
        esr: build::sysreg(3, 3, 9, 12, 0, 1, true),
        ..Default::default()
    };
    // Hidden (default): the trap policy's UNDEFINED, nothing loaded.
    let mut v = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    v.setup(Aarch64VCpuSetupConfig::default()).unwrap();
    v.set_entry(0x4008_0000).unwrap();
    let elr = v.regs().elr;
    assert_eq!(v.handle_sync_exit(&pmcr_read), None);
    assert_ne!(
        v.regs().elr,
        elr + 4,
        "an UNDEFINED exception, not a completed MRS"
    );
    assert!(!v.pmu_loaded() && !v.pmu_irq_line());
}
