//! A virtual PMUv3 (DDI 0487 D13 "The Performance Monitors Extension"), switched lazily
//! like the self-hosted debug registers (`crate::debug`).
//!
//! **The choice** ([`PmuConfig`], per VM through the setup of its vCPUs): the PMU
//! hidden (the default: `ID_AA64DFR0_EL1.PMUVer` = 0, every PMU register UNDEFINED),
//! or a PMUv3 with `N` event counters (`N` ≤ the host's `MDCR_EL2.HPMN`, i.e. the
//! counters the host leaves to EL1/EL0; default: all of them) plus the cycle counter.
//! The VM then sees `PMUVer` capped at PMUv3p4 ([`PMUVER_SHOWN_MAX`]), `PMCR_EL0.N` =
//! `N` and the host's `PMCEID0/1_EL0` without the events of features it does not have
//! ([`ceid_view`]). The guest's `MDCR_EL2.HPMN` is `N`: counters `N..` are EL2's.
//!
//! **Lazy switch.** At bind `MDCR_EL2.TPM` and `.TPMCR` trap every PMU register. The
//! first trapped access after bind saves the host's PMU registers of the VM's range
//! (counters `0..N`, the cycle counter, their bits in the SET/CLR registers, `PMCR_EL0`,
//! `PMSELR_EL0`, `PMUSERENR_EL0`), loads the vCPU's ([`PmuRegs`]) and runs the access
//! again. Unbind saves the vCPU's registers only if loaded, stops its counters (the
//! enable bits of its range are cleared before anything else is moved) and restores the
//! host's. A vCPU whose counters run (`PMCR_EL0.E` and an enable bit), whose overflow
//! interrupt is asserted, or whose `PMUSERENR_EL0` opens the PMU to EL0 is loaded at
//! bind ([`PmuSwitch::load_at_bind`]): it must count, interrupt or reach its registers
//! from EL0 before touching a register again.
//!
//! **Guest-only counting** and what stays trapped after the load:
//! * `PMCR_EL0` stays trapped (`TPMCR`) on every core and is emulated
//!   ([`PmuSwitch::emulate`]): `N` must read as the VM's, `PMCR.P` written at EL2 would
//!   reset *all* event counters (the host's above HPMN too), and `PMCR.DP` is forced in
//!   the hardware where the cycle counter needs it (below).
//! * Counting at EL2 by the guest's counters is prohibited by the hardware where the
//!   host has FEAT_PMUv3p1: `MDCR_EL2.HPMD` for the event counters and, for the cycle
//!   counter, `MDCR_EL2.HCCD` (FEAT_PMUv3p5) or `PMCR_EL0.DP` (forced to 1 in the
//!   hardware, shown as the guest wrote it). Where the host has FEAT_PMUv3p5 and, in
//!   addition, the VM has every counter of the core (none of the host's lies above its
//!   range), every other PMU register is passed through ([`Mode::Passthrough`]): the
//!   guest may even set the NSH filter bit, EL2 is not counted all the same.
//! * Otherwise — a PMUv3 (v8.0) core has no HPMD, so a guest that set
//!   `PMEVTYPER<n>_EL0.NSH` or `PMCCFILTR_EL0.NSH` would count the host; on a
//!   PMUv3p1..p4 core only `PMCR_EL0.DP` would stop the cycle counter at EL2, which
//!   QEMU 7.2 does not apply (its HPMD test leaves the cycle counter out); and with
//!   host counters above the VM's range, QEMU 7.2 lets EL1 reach them (it does not apply
//!   HPMN to EL1's accesses, as the architecture does) — every PMU register stays
//!   trapped after the load ([`Mode::Trapped`]) and is emulated against the loaded
//!   hardware: the SET/CLR registers masked to the VM's range, the filter registers'
//!   writes without NSH ([`filter_evtyper`], [`filter_ccfiltr`]), `PMSWINC_EL0`
//!   carried out in software (a write at EL2 is itself filtered).
//! * The host's counters above HPMN are never read or written, and neither are their
//!   bits of the SET/CLR registers (every write is masked to the VM's range,
//!   [`PmuView::mask`]).
//!
//! **Overflow.** The PMU's interrupt is PPI 23 ([`PMU_INTID`]). With `HCR_EL2.IMO` the
//! physical one is taken at EL2 while a vCPU runs; the host asks
//! [`crate::Aarch64VCpu::pmu_irq_line`] whether the vCPU's PMU asserts it (`PMCR.E`, an
//! overflow flag and its interrupt enable) and, if so, injects virtual PPI 23 linked to
//! the physical one (priority drop only: the guest's deactivation ends it, and a line
//! still high fires again). An overflow pending at unbind is saved with `PMOVSSET` and
//! asserts the line again when the state is loaded.
//!
//! **Not offered**: PMUv3p5+ (64-bit event counters: `PMCR.LP` RES0), the AArch32 views (`ID_DFR0_EL1.PerfMon` stays 0), `MDCR_EL2.HPMN0`, MTPMU,
//! the event counters of FEAT_PMUv3_ICNTR / SS / EDGE / TH, and the PMU in a snapshot
//! (a restored vCPU's PMU starts at reset). With `passthrough_interrupt` the PMU's
//! physical PPI goes to the guest's EL1 directly (the guest owns the GIC), so the
//! overflow interrupt works without the host; everything else is as above.

use crate::exit::SysRegAddr;

/// The PMU's interrupt: PPI 7, INTID 23 (the Server Base System Architecture's, which
/// QEMU `virt` uses).
pub const PMU_INTID: u32 = 23;

/// Highest `ID_AA64DFR0_EL1.PMUVer` a VM is shown: PMUv3p4 (`0b0101`: PMUv3p1's 16-bit
/// event numbers and `PMCEID<n>_EL0[63:32]`, and `PMMIR_EL1`, which no trap can hide
/// once the registers are passed through); PMUv3p5 would add 64-bit event counters.
pub const PMUVER_SHOWN_MAX: u8 = 0b0101;

/// `PMUVer` of PMUv3p1 (`MDCR_EL2.HPMD`, the upper halves of `PMCEID<n>_EL0`).
pub const PMUVER_V3P1: u8 = 0b0100;

/// Most event counters PMUv3 has (`PMEVCNTR<n>_EL0`, n ≤ 30).
pub const MAX_COUNTERS: usize = 31;

/// The cycle counter's bit in `PMCNTENSET/CLR`, `PMINTENSET/CLR`, `PMOVSSET/CLR`.
pub const CYCLE_BIT: u64 = 1 << 31;

/// The per-VM PMU choice (`Aarch64VCpuSetupConfig::pmu`; give every vCPU of a VM the
/// same).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PmuConfig {
    /// No PMU: `ID_AA64DFR0_EL1.PMUVer` = 0 and the PMU registers UNDEFINED.
    #[default]
    Hidden,
    /// A PMUv3 with this many event counters (`None`: as many as the host's
    /// `MDCR_EL2.HPMN` leaves to EL1/EL0) and the cycle counter. More than that is a
    /// bind error ([`crate::VCpuError::InvalidConfig`]).
    V3 {
        /// Event counters (1..=HPMN), `None` for all the host leaves.
        counters: Option<u8>,
    },
}

/// `PMCR_EL0` fields (DDI 0487 D13.4.13).
pub mod pmcr {
    /// E, bit 0: enables the counters of the EL1/EL0 range and the cycle counter.
    pub const E: u64 = 1 << 0;
    /// P, bit 1 (write-only): event counter reset.
    pub const P: u64 = 1 << 1;
    /// C, bit 2 (write-only): cycle counter reset.
    pub const C: u64 = 1 << 2;
    /// D, bit 3: cycle counter counts every 64th cycle.
    pub const D: u64 = 1 << 3;
    /// X, bit 4: export of events.
    pub const X: u64 = 1 << 4;
    /// DP, bit 5: disable the cycle counter where event counting is prohibited.
    pub const DP: u64 = 1 << 5;
    /// LC, bit 6: cycle counter overflow at 64 bits.
    pub const LC: u64 = 1 << 6;
    /// N, bits \[15:11\]: event counters (at EL1/EL0: `MDCR_EL2.HPMN`).
    pub const N_SHIFT: u32 = 11;
    /// The N field.
    pub const N: u64 = 0x1f << N_SHIFT;
    /// IDCODE \[23:16\] and IMP \[31:24\]: the host's identification.
    pub const ID: u64 = 0xffff << 16;
    /// What a guest may write and read back.
    pub const GUEST_RW: u64 = E | D | X | DP | LC;
}

/// `MDCR_EL2` PMU fields (DDI 0487 D23.2.96).
pub mod mdcr {
    /// HPMN, bits \[4:0\]: counters `0..HPMN` belong to EL1/EL0.
    pub const HPMN: u64 = 0x1f;
    /// HPME, bit 7: enables the counters `HPMN..` (EL2's); the host's value is kept.
    pub const HPME: u64 = 1 << 7;
    /// TPMCR, bit 5: traps `PMCR_EL0`.
    pub const TPMCR: u64 = 1 << 5;
    /// TPM, bit 6: traps every PMU register.
    pub const TPM: u64 = 1 << 6;
    /// HPMD, bit 17 (FEAT_PMUv3p1): no event counting at EL2 by counters `0..HPMN`.
    pub const HPMD: u64 = 1 << 17;
    /// HCCD, bit 23 (FEAT_PMUv3p5): the cycle counter does not count at EL2.
    pub const HCCD: u64 = 1 << 23;
}

/// `PMEVTYPER<n>_EL0` / `PMCCFILTR_EL0` filter bits.
pub mod evtyper {
    /// P, bit 31: do not count at EL1.
    pub const P: u64 = 1 << 31;
    /// U, bit 30: do not count at EL0.
    pub const U: u64 = 1 << 30;
    /// NSK, bit 29: with EL3, Non-secure EL1 counts if NSK != P.
    pub const NSK: u64 = 1 << 29;
    /// NSU, bit 28: with EL3, Non-secure EL0 counts if NSU != U.
    pub const NSU: u64 = 1 << 28;
    /// NSH, bit 27: count at EL2. Never set for a guest's counter.
    pub const NSH: u64 = 1 << 27;
    /// M, bit 26: with EL3, EL3 filtering.
    pub const M: u64 = 1 << 26;
    /// evtCount, bits \[15:0\] (PMUv3p1).
    pub const EVENT: u64 = 0xffff;
    /// What a guest's `PMEVTYPER<n>_EL0` keeps: the EL1/EL0 filters and the event; not
    /// NSH (EL2), MT (FEAT_MTPMU, not offered), SH (Secure EL2).
    pub const GUEST_EVTYPER: u64 = P | U | NSK | NSU | M | EVENT;
    /// What a guest's `PMCCFILTR_EL0` keeps.
    pub const GUEST_CCFILTR: u64 = P | U | NSK | NSU | M;
}

/// Common event numbers the tests use (DDI 0487 D13.11).
pub mod event {
    /// SW_INCR: `PMSWINC_EL0` writes.
    pub const SW_INCR: u64 = 0x00;
    /// INST_RETIRED: instructions architecturally executed.
    pub const INST_RETIRED: u64 = 0x08;
    /// CPU_CYCLES.
    pub const CPU_CYCLES: u64 = 0x11;
}

/// A guest `PMEVTYPER<n>_EL0` value as the hardware gets it: NSH (and the bits of
/// features not offered) cleared.
pub const fn filter_evtyper(v: u64) -> u64 {
    if cfg!(arm_vcpu_mutate = "pmu-count-el2") {
        // The mutation build lets the guest count EL2.
        return v & (evtyper::GUEST_EVTYPER | evtyper::NSH);
    }
    v & evtyper::GUEST_EVTYPER
}

/// A guest `PMCCFILTR_EL0` value as the hardware gets it (NSH cleared).
pub const fn filter_ccfiltr(v: u64) -> u64 {
    if cfg!(arm_vcpu_mutate = "pmu-count-el2") {
        return v & (evtyper::GUEST_CCFILTR | evtyper::NSH);
    }
    v & evtyper::GUEST_CCFILTR
}

/// The VM's `PMCEID0_EL0`/`PMCEID1_EL0` from the host's: the events of the Statistical
/// Profiling Extension (SAMPLE_POP .. SAMPLE_COLLISION, 0x4000–0x4003:
/// `PMCEID0_EL0[35:32]`), which the VM does not have, are removed; shown a PMU older
/// than PMUv3p1 (`pmuver` < 4), the upper halves (events 0x4000–0x403F) read 0.
pub const fn ceid_view(host: [u64; 2], pmuver: u8) -> [u64; 2] {
    let mut c = host;
    c[0] &= !(0xf << 32);
    if pmuver < PMUVER_V3P1 {
        c[0] &= u32::MAX as u64;
        c[1] &= u32::MAX as u64;
    }
    c
}

/// What the core's PMU is (read at `hardware_enable`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PmuCaps {
    /// `ID_AA64DFR0_EL1.PMUVer` (0: none; 0xF: IMPLEMENTATION DEFINED, not PMUv3).
    pub pmuver: u8,
    /// `PMCR_EL0` as read at EL2 (N is every counter).
    pub pmcr: u64,
    /// `PMCEID0_EL0`, `PMCEID1_EL0`.
    pub ceid: [u64; 2],
    /// The host's `MDCR_EL2.HPMN`.
    pub hpmn: u8,
    /// The core implements EL3 (`ID_AA64PFR0_EL1.EL3`): the NSK/NSU filter bits apply.
    pub el3: bool,
}

impl PmuCaps {
    /// Whether the core has a PMUv3 (`PMUVer` 1..=14).
    pub const fn has_pmuv3(&self) -> bool {
        self.pmuver >= 1 && self.pmuver != 0xf
    }
}

/// How the PMU registers are reached once loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `MDCR_EL2.TPM` cleared: everything but `PMCR_EL0` is the hardware's (the host
    /// has `MDCR_EL2.HPMD`, FEAT_PMUv3p1, and the VM every counter).
    Passthrough,
    /// `MDCR_EL2.TPM` stays set: every access is emulated against the loaded hardware
    /// (PMUv3 without HPMD: the NSH filter bit must be taken out of every write; or
    /// host counters above the VM's range).
    Trapped,
}

/// What a VM with a PMU is shown and how its state is switched (decided per core).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PmuView {
    /// Event counters (`PMCR_EL0.N`, the guest's `MDCR_EL2.HPMN`).
    pub counters: u8,
    /// `ID_AA64DFR0_EL1.PMUVer` shown.
    pub pmuver: u8,
    /// How the loaded registers are reached.
    pub mode: Mode,
    /// `MDCR_EL2.HPMD` is set (FEAT_PMUv3p1).
    pub hpmd: bool,
    /// `MDCR_EL2.HCCD` is set (FEAT_PMUv3p5).
    pub hccd: bool,
    /// `PMCR_EL0.DP` is forced to 1 in the hardware (HPMD without HCCD: so the cycle
    /// counter does not count at EL2 either).
    pub force_dp: bool,
    /// `PMCR_EL0`'s read-only part: the host's IDCODE/IMP and N = `counters`.
    pub pmcr_ro: u64,
    /// `PMCEID0_EL0`, `PMCEID1_EL0` ([`ceid_view`]).
    pub ceid: [u64; 2],
    /// The NSK/NSU bits apply (the core has EL3).
    pub el3: bool,
}

impl PmuView {
    /// Decides the view for `cfg` on a core with `caps` (pure). `Ok(None)`: no PMU.
    pub const fn decide(cfg: PmuConfig, caps: &PmuCaps) -> Result<Option<Self>, &'static str> {
        let want = match cfg {
            PmuConfig::Hidden => return Ok(None),
            PmuConfig::V3 { counters } => counters,
        };
        if !caps.has_pmuv3() {
            return Err("a PMU is configured but the core has no PMUv3");
        }
        let counters = match want {
            None => caps.hpmn,
            Some(n) => n,
        };
        if counters == 0 {
            return Err(
                "a PMU needs at least one event counter the host leaves to EL1 (MDCR_EL2.HPMN)",
            );
        }
        if counters > caps.hpmn || counters as usize > MAX_COUNTERS {
            return Err("more PMU event counters than the host's MDCR_EL2.HPMN leaves");
        }
        let hpmd = caps.pmuver >= PMUVER_V3P1;
        let hccd = caps.pmuver >= 6;
        let pmuver = if caps.pmuver > PMUVER_SHOWN_MAX {
            PMUVER_SHOWN_MAX
        } else {
            caps.pmuver
        };
        Ok(Some(Self {
            counters,
            pmuver,
            // Passed through only where the hardware keeps every guest counter from
            // counting EL2 whatever the guest's filters say — HPMD for the event
            // counters and HCCD (FEAT_PMUv3p5) for the cycle counter: on a PMUv3p1..p4
            // core only PMCR_EL0.DP could stop the cycle counter at EL2, and QEMU 7.2
            // does not apply HPMD (nor so DP) to the cycle counter (cortex-a76,
            // neoverse-n1 and a64fx counted host time with NSH set). And only where no
            // counter of the host's lies above the VM's range: QEMU 7.2 does not apply
            // MDCR_EL2.HPMN to EL1's accesses (the host's PMCNTENSET bits and
            // PMEVCNTR<n> above HPMN are reachable there).
            mode: if hccd
                && counters as u64 == (caps.pmcr & pmcr::N) >> pmcr::N_SHIFT
                && !cfg!(arm_vcpu_mutate = "pmu-count-el2")
            {
                Mode::Passthrough
            } else {
                Mode::Trapped
            },
            hpmd,
            hccd,
            force_dp: hpmd && !hccd,
            pmcr_ro: (caps.pmcr & pmcr::ID) | ((counters as u64) << pmcr::N_SHIFT),
            ceid: ceid_view(caps.ceid, pmuver),
            el3: caps.el3,
        }))
    }

    /// The VM's bits in `PMCNTENSET/CLR`, `PMINTENSET/CLR`, `PMOVSSET/CLR`: counters
    /// `0..N` and the cycle counter (bit 31).
    pub const fn mask(&self) -> u64 {
        ((1u64 << self.counters) - 1) | CYCLE_BIT
    }

    /// The guest's `MDCR_EL2` PMU bits (HPMN = N, HPMD, HCCD; TPM/TPMCR come from
    /// `traps::BITS`).
    pub const fn mdcr_bits(&self) -> u64 {
        let mut m = self.counters as u64;
        if cfg!(arm_vcpu_mutate = "pmu-count-el2") {
            return m;
        }
        if self.hpmd {
            m |= mdcr::HPMD;
        }
        if self.hccd {
            m |= mdcr::HCCD;
        }
        m
    }

    /// `MDCR_EL2` bits cleared while the state is loaded (TPM in [`Mode::Passthrough`]).
    pub const fn untrapped_when_loaded(&self) -> u64 {
        match self.mode {
            Mode::Passthrough => mdcr::TPM,
            Mode::Trapped => 0,
        }
    }

    /// The hardware `PMCR_EL0` for a guest value (its writable part).
    pub const fn hw_pmcr(&self, guest: u64) -> u64 {
        let v = guest & pmcr::GUEST_RW;
        if self.force_dp {
            v | pmcr::DP
        } else {
            v
        }
    }

    /// Whether an event counter with type `t` counts at the guest's EL1 (`el0` false)
    /// or EL0 (DDI 0487 D13.1.3, Non-secure state).
    pub const fn counts_at(&self, t: u64, el0: bool) -> bool {
        let (bit, ns) = if el0 {
            (t & evtyper::U != 0, t & evtyper::NSU != 0)
        } else {
            (t & evtyper::P != 0, t & evtyper::NSK != 0)
        };
        let filtered = if self.el3 { bit != ns } else { bit };
        !filtered
    }
}

/// One PMU system register (op0 = 3, CRn 9 or 14).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum PmuReg {
    /// `PMCR_EL0` (3, 3, 9, 12, 0).
    Pmcr,
    CntenSet,
    CntenClr,
    OvsClr,
    /// `PMSWINC_EL0`, write-only.
    Swinc,
    Selr,
    /// `PMCEID0_EL0`, read-only.
    Ceid0,
    /// `PMCEID1_EL0`, read-only.
    Ceid1,
    Ccntr,
    Xevtyper,
    Xevcntr,
    Userenr,
    OvsSet,
    /// `PMINTENSET_EL1` (3, 0, 9, 14, 1).
    IntenSet,
    /// `PMINTENCLR_EL1` (3, 0, 9, 14, 2).
    IntenClr,
    /// `PMMIR_EL1` (3, 0, 9, 14, 6), read-only (PMUv3p4).
    Mmir,
    /// `PMEVCNTR<n>_EL0` (3, 3, 14, 8 + n / 8, n % 8).
    Evcntr(u8),
    /// `PMEVTYPER<n>_EL0` (3, 3, 14, 12 + n / 8, n % 8).
    Evtyper(u8),
    /// `PMCCFILTR_EL0` (3, 3, 14, 15, 7).
    Ccfiltr,
}

impl PmuReg {
    /// The register at `reg`, if it is a PMU register.
    pub const fn decode(reg: SysRegAddr) -> Option<Self> {
        if reg.op0() != 3 {
            return None;
        }
        let (op1, crn, crm, op2) = (reg.op1(), reg.crn(), reg.crm(), reg.op2());
        Some(match (op1, crn, crm, op2) {
            (0, 9, 14, 1) => Self::IntenSet,
            (0, 9, 14, 2) => Self::IntenClr,
            (0, 9, 14, 6) => Self::Mmir,
            (3, 9, 12, 0) => Self::Pmcr,
            (3, 9, 12, 1) => Self::CntenSet,
            (3, 9, 12, 2) => Self::CntenClr,
            (3, 9, 12, 3) => Self::OvsClr,
            (3, 9, 12, 4) => Self::Swinc,
            (3, 9, 12, 5) => Self::Selr,
            (3, 9, 12, 6) => Self::Ceid0,
            (3, 9, 12, 7) => Self::Ceid1,
            (3, 9, 13, 0) => Self::Ccntr,
            (3, 9, 13, 1) => Self::Xevtyper,
            (3, 9, 13, 2) => Self::Xevcntr,
            (3, 9, 14, 0) => Self::Userenr,
            (3, 9, 14, 3) => Self::OvsSet,
            (3, 14, 15, 7) => Self::Ccfiltr,
            (3, 14, 8..=11, n) => Self::Evcntr((crm - 8) * 8 + n),
            (3, 14, 12..=15, n) => Self::Evtyper((crm - 12) * 8 + n),
            _ => return None,
        })
    }

    /// The encoding (inverse of [`decode`](Self::decode)).
    pub const fn encoding(self) -> SysRegAddr {
        let (op1, crn, crm, op2) = match self {
            Self::IntenSet => (0, 9, 14, 1),
            Self::IntenClr => (0, 9, 14, 2),
            Self::Mmir => (0, 9, 14, 6),
            Self::Pmcr => (3, 9, 12, 0),
            Self::CntenSet => (3, 9, 12, 1),
            Self::CntenClr => (3, 9, 12, 2),
            Self::OvsClr => (3, 9, 12, 3),
            Self::Swinc => (3, 9, 12, 4),
            Self::Selr => (3, 9, 12, 5),
            Self::Ceid0 => (3, 9, 12, 6),
            Self::Ceid1 => (3, 9, 12, 7),
            Self::Ccntr => (3, 9, 13, 0),
            Self::Xevtyper => (3, 9, 13, 1),
            Self::Xevcntr => (3, 9, 13, 2),
            Self::Userenr => (3, 9, 14, 0),
            Self::OvsSet => (3, 9, 14, 3),
            Self::Ccfiltr => (3, 14, 15, 7),
            Self::Evcntr(n) => (3, 14, 8 + n / 8, n % 8),
            Self::Evtyper(n) => (3, 14, 12 + n / 8, n % 8),
        };
        SysRegAddr::new(3, op1, crn, crm, op2)
    }

    /// Whether an access in this direction exists.
    pub const fn accessible(self, read: bool) -> bool {
        match self {
            Self::Swinc => !read,
            Self::Ceid0 | Self::Ceid1 | Self::Mmir => read,
            _ => true,
        }
    }
}

/// The switched PMU registers of one context (a vCPU's, or the host's part of the
/// VM's range while a vCPU's are loaded). Only the first `N` counters are used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PmuRegs {
    /// `PMCR_EL0`: for a vCPU its writable part as the guest wrote it
    /// ([`pmcr::GUEST_RW`]); for the host the hardware value.
    pub pmcr: u64,
    /// `PMCNTENSET_EL0` (the range's bits).
    pub cnten: u64,
    /// `PMINTENSET_EL1` (the range's bits).
    pub inten: u64,
    /// `PMOVSSET_EL0` (the range's bits).
    pub ovs: u64,
    /// `PMSELR_EL0`.
    pub selr: u64,
    /// `PMUSERENR_EL0`.
    pub userenr: u64,
    /// `PMCCNTR_EL0`.
    pub ccntr: u64,
    /// `PMCCFILTR_EL0`.
    pub ccfiltr: u64,
    /// `PMEVCNTR<n>_EL0`.
    pub evcntr: [u64; MAX_COUNTERS],
    /// `PMEVTYPER<n>_EL0`.
    pub evtyper: [u64; MAX_COUNTERS],
}

/// Register access for [`PmuSwitch::emulate`]: the hardware (`crate::hw::pmu`) or, in
/// host tests, a model.
pub trait PmuAccess {
    /// Reads `r` (an index the caller checked).
    fn read(&mut self, r: PmuReg) -> u64;
    /// Writes `r`.
    fn write(&mut self, r: PmuReg, v: u64);
}

/// What [`PmuSwitch::trap`] decided for one trapped access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Emulated; the value read goes to Rt. The instruction completes.
    Done(u64),
    /// First use: load the state and execute the instruction again.
    Load,
    /// UNDEFINED.
    Undef,
}

/// A vCPU's PMU state and where it lives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PmuSwitch {
    /// The vCPU's registers (current while not loaded).
    pub guest: PmuRegs,
    /// The host's registers of the VM's range, saved at load.
    pub host: PmuRegs,
    /// The vCPU's registers are in the hardware.
    pub loaded: bool,
    /// What the VM is shown (`None`: no PMU).
    pub view: Option<PmuView>,
}

impl PmuSwitch {
    /// A vCPU at reset (DDI 0487 D13: `PMCR_EL0.E` and the enable, interrupt-enable
    /// and overflow bits 0; KVM's reset values for the rest: counters, types, `PMSELR`,
    /// `PMUSERENR` 0).
    pub fn reset(&mut self) {
        self.guest = PmuRegs::default();
    }

    /// Takes the VM's view (whenever the vCPU's view of its core is computed).
    pub fn set_view(&mut self, view: Option<PmuView>) {
        self.view = view;
    }

    /// The guest's `MDCR_EL2.HPMN` and PMU bits for a host `MDCR_EL2` of `host_mdcr`:
    /// the host's HPMN without a PMU; the host's HPME either way (its own counters
    /// above HPMN keep counting, or not, as it had them).
    pub const fn mdcr_bits(&self, host_mdcr: u64) -> u64 {
        let hpme = host_mdcr & mdcr::HPME;
        match &self.view {
            Some(v) => v.mdcr_bits() | hpme,
            None => (host_mdcr & mdcr::HPMN) | hpme,
        }
    }

    /// Whether the state must be loaded at bind: the counters run (`PMCR_EL0.E` and an
    /// enable bit), the overflow interrupt is asserted, or `PMUSERENR_EL0` gives EL0
    /// access (which the physical register checks before any EL2 trap).
    pub const fn load_at_bind(&self) -> bool {
        if self.view.is_none() {
            return false;
        }
        let g = &self.guest;
        (g.pmcr & pmcr::E != 0 && (g.cnten != 0 || g.ovs & g.inten != 0)) || g.userenr != 0
    }

    /// Whether register `r` exists for this VM.
    pub const fn exists(&self, r: PmuReg) -> bool {
        let Some(v) = &self.view else {
            return false;
        };
        match r {
            PmuReg::Evcntr(n) | PmuReg::Evtyper(n) => n < v.counters,
            // PMUv3p4 (the host's PMMIR_EL1, read-only).
            PmuReg::Mmir => v.pmuver >= 5,
            _ => true,
        }
    }

    /// Decides a trapped access to a PMU register (pure): UNDEFINED without a PMU or
    /// for a register the VM does not have, `Load` while not loaded; loaded, the
    /// caller emulates it ([`emulate`](Self::emulate)) — `Done(0)` here is only a
    /// placeholder for that.
    pub const fn trap(&self, r: PmuReg, read: bool) -> Outcome {
        if !r.accessible(read) || !self.exists(r) {
            return Outcome::Undef;
        }
        if !self.loaded {
            return Outcome::Load;
        }
        Outcome::Done(0)
    }

    /// The guest's overflow interrupt line from saved state: `PMCR_EL0.E` and an
    /// overflow flag whose interrupt is enabled.
    pub const fn saved_line(&self) -> bool {
        let g = &self.guest;
        g.pmcr & pmcr::E != 0 && g.ovs & g.inten != 0
    }

    /// One access to a loaded PMU, emulated against `hw` (the guest's registers):
    /// `PMCR_EL0` from the guest's copy and the view; the SET/CLR registers masked to
    /// the VM's range; the filter registers without NSH; `PMSWINC_EL0` in software;
    /// `PMXEVTYPER/PMXEVCNTR_EL0` through `PMSELR_EL0.SEL` (31: the cycle counter's
    /// filter; `PMXEVCNTR` then RAZ/WI, CONSTRAINED UNPREDICTABLE; SEL ≥ N UNDEFINED).
    /// `el0`: the access came from EL0. The caller checked [`trap`](Self::trap).
    pub fn emulate(
        &mut self,
        r: PmuReg,
        read: bool,
        value: u64,
        el0: bool,
        hw: &mut impl PmuAccess,
    ) -> Outcome {
        let Some(v) = self.view else {
            return Outcome::Undef;
        };
        let mask = v.mask();
        let r = match r {
            PmuReg::Xevtyper | PmuReg::Xevcntr => {
                let sel = (hw.read(PmuReg::Selr) & 0x1f) as u8;
                match (r, sel) {
                    (PmuReg::Xevtyper, 31) => PmuReg::Ccfiltr,
                    (_, 31) => return Outcome::Done(0),
                    (PmuReg::Xevtyper, n) if n < v.counters => PmuReg::Evtyper(n),
                    (_, n) if n < v.counters => PmuReg::Evcntr(n),
                    _ => return Outcome::Undef,
                }
            }
            r => r,
        };
        if read {
            return Outcome::Done(match r {
                PmuReg::Pmcr => self.guest.pmcr | v.pmcr_ro,
                PmuReg::Ceid0 => v.ceid[0],
                PmuReg::Ceid1 => v.ceid[1],
                PmuReg::CntenSet
                | PmuReg::CntenClr
                | PmuReg::IntenSet
                | PmuReg::IntenClr
                | PmuReg::OvsSet
                | PmuReg::OvsClr => hw.read(r) & mask,
                r => hw.read(r),
            });
        }
        match r {
            PmuReg::Pmcr => {
                self.guest.pmcr = value & pmcr::GUEST_RW;
                hw.write(PmuReg::Pmcr, v.hw_pmcr(value));
                if value & pmcr::P != 0 {
                    // At EL2 PMCR.P would reset the host's counters too.
                    let mut n = 0;
                    while n < v.counters {
                        hw.write(PmuReg::Evcntr(n), 0);
                        n += 1;
                    }
                }
                if value & pmcr::C != 0 {
                    hw.write(PmuReg::Ccntr, 0);
                }
            }
            PmuReg::CntenSet
            | PmuReg::CntenClr
            | PmuReg::IntenSet
            | PmuReg::IntenClr
            | PmuReg::OvsSet
            | PmuReg::OvsClr => hw.write(r, value & mask),
            PmuReg::Selr => hw.write(r, value & 0x1f),
            PmuReg::Userenr => hw.write(r, value & 0xf),
            PmuReg::Evcntr(_) => hw.write(r, value & u32::MAX as u64),
            PmuReg::Evtyper(_) => hw.write(r, filter_evtyper(value)),
            PmuReg::Ccfiltr => hw.write(r, filter_ccfiltr(value)),
            PmuReg::Swinc => self.software_increment(value, el0, hw),
            _ => hw.write(r, value),
        }
        Outcome::Done(0)
    }

    /// `PMSWINC_EL0` written with `value` at the guest's EL1 or EL0: every counter of
    /// the VM's range that is enabled, counts SW_INCR and is not filtered at that EL is
    /// incremented (overflow at 32 bits sets its `PMOVSSET` bit). Done in software: a
    /// write at EL2 is filtered by the counters' own NSH = 0.
    fn software_increment(&mut self, value: u64, el0: bool, hw: &mut impl PmuAccess) {
        let Some(v) = self.view else {
            return;
        };
        if self.guest.pmcr & pmcr::E == 0 {
            return;
        }
        let enabled = hw.read(PmuReg::CntenSet);
        let mut n = 0;
        while n < v.counters {
            let bit = 1u64 << n;
            if value & enabled & bit != 0 {
                let t = hw.read(PmuReg::Evtyper(n));
                if t & evtyper::EVENT == event::SW_INCR && v.counts_at(t, el0) {
                    let c = (hw.read(PmuReg::Evcntr(n)) & u32::MAX as u64) + 1;
                    if c > u32::MAX as u64 {
                        hw.write(PmuReg::OvsSet, bit);
                    }
                    hw.write(PmuReg::Evcntr(n), c & u32::MAX as u64);
                }
            }
            n += 1;
        }
    }
}

/// The lazy switch's hardware side (on aarch64 builds; on the host only the
/// bookkeeping runs, so the decisions above are tested as they run).
impl PmuSwitch {
    /// At bind, after the debug state's (`dbg` owns the vCPU's `MDCR_EL2`): nothing is
    /// loaded (unbind left `loaded` false), unless
    /// [`load_at_bind`](Self::load_at_bind). A VM without a PMU pays one test.
    #[inline(always)]
    pub(crate) fn bind(&mut self, dbg: &mut crate::debug::DebugSwitch) {
        if self.view.is_some() {
            self.bind_slow(dbg);
        }
    }

    #[inline(never)]
    fn bind_slow(&mut self, dbg: &mut crate::debug::DebugSwitch) {
        if self.load_at_bind() {
            self.load(dbg);
        }
    }

    /// Loads the vCPU's registers (the host's of the VM's range saved) and, in
    /// [`Mode::Passthrough`], stops trapping them (`MDCR_EL2.TPM` cleared, ISB).
    pub(crate) fn load(&mut self, dbg: &mut crate::debug::DebugSwitch) {
        let Some(v) = self.view else {
            return;
        };
        #[cfg(target_arch = "aarch64")]
        crate::hw::pmu::load(&self.guest, &mut self.host, &v);
        dbg.update_mdcr(0, v.untrapped_when_loaded());
        self.loaded = true;
    }

    /// At unbind: saves the vCPU's registers if loaded (its counters stopped first)
    /// and gives the host its own back (`MDCR_EL2` is the debug switch's to restore).
    /// Not loaded: one test.
    #[inline(always)]
    pub(crate) fn unbind(&mut self) {
        if self.loaded {
            self.unload_at_unbind();
        }
    }

    #[inline(never)]
    fn unload_at_unbind(&mut self) {
        #[cfg(target_arch = "aarch64")]
        if let Some(v) = self.view {
            crate::hw::pmu::unload(&mut self.guest, &self.host, &v);
        }
        self.loaded = false;
    }

    /// Whether the vCPU's PMU asserts its overflow interrupt (PPI 23): from the
    /// hardware while loaded, from the saved registers otherwise.
    pub(crate) fn line(&self) -> bool {
        #[cfg(target_arch = "aarch64")]
        if self.loaded {
            if let Some(v) = self.view {
                return crate::hw::pmu::line(v.mask());
            }
        }
        self.saved_line()
    }

    /// A trapped MSR/MRS of a PMU register: decides it ([`trap`](Self::trap)) and
    /// carries it out. `Load`: the state is loaded now, execute the instruction again.
    pub(crate) fn handle(
        &mut self,
        reg: SysRegAddr,
        read: bool,
        value: u64,
        el0: bool,
        dbg: &mut crate::debug::DebugSwitch,
    ) -> Outcome {
        let Some(r) = PmuReg::decode(reg) else {
            return Outcome::Undef;
        };
        match self.trap(r, read) {
            Outcome::Load => {
                self.load(dbg);
                Outcome::Load
            }
            Outcome::Undef => Outcome::Undef,
            Outcome::Done(_) => {
                #[cfg(target_arch = "aarch64")]
                return self.emulate(r, read, value, el0, &mut crate::hw::pmu::Hw);
                #[cfg(not(target_arch = "aarch64"))]
                {
                    let _ = (value, el0);
                    Outcome::Undef
                }
            }
        }
    }
}
