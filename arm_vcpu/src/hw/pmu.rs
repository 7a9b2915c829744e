//! The PMUv3 registers (DDI 0487 D13): the lazy switch's accesses and the probe. The
//! decisions are in `crate::pmu` (host-tested); this is only the hardware.

use core::arch::asm;

use crate::pmu::{PmuAccess, PmuCaps, PmuReg, PmuRegs, PmuView, MAX_COUNTERS};

/// Whether `PMCCNTR_EL0` of a vCPU is switched: not in the mutation-test build
/// `pmu-skip-ccntr`, where the two-VM PMU scenario must catch it.
const SWITCH_CCNTR: bool = !cfg!(arm_vcpu_mutate = "pmu-skip-ccntr");

/// Expands `$body!(index, "CRm of PMEVCNTR", "CRm of PMEVTYPER", "op2")` for the
/// counters below `$n`, in order (straight-line code).
macro_rules! upto {
    ($n:expr, $body:ident) => {
        'done: {
            upto!(@ $n, 'done, $body, [
                0 "8" "12" "0", 1 "8" "12" "1", 2 "8" "12" "2", 3 "8" "12" "3",
                4 "8" "12" "4", 5 "8" "12" "5", 6 "8" "12" "6", 7 "8" "12" "7",
                8 "9" "13" "0", 9 "9" "13" "1", 10 "9" "13" "2", 11 "9" "13" "3",
                12 "9" "13" "4", 13 "9" "13" "5", 14 "9" "13" "6", 15 "9" "13" "7",
                16 "10" "14" "0", 17 "10" "14" "1", 18 "10" "14" "2", 19 "10" "14" "3",
                20 "10" "14" "4", 21 "10" "14" "5", 22 "10" "14" "6", 23 "10" "14" "7",
                24 "11" "15" "0", 25 "11" "15" "1", 26 "11" "15" "2", 27 "11" "15" "3",
                28 "11" "15" "4", 29 "11" "15" "5", 30 "11" "15" "6"]);
        }
    };
    (@ $n:expr, $done:lifetime, $body:ident, [$($i:literal $c:literal $t:literal $op2:literal),*]) => {
        $(
            if ($n as usize) <= $i {
                break $done;
            }
            $body!($i, $c, $t, $op2);
        )*
    };
}

/// `mrs` of `S3_3_C14_C<crm>_<op2>` (`PMEVCNTR<n>_EL0` / `PMEVTYPER<n>_EL0`).
macro_rules! mrs_ev {
    ($crm:literal, $op2:literal) => {{
        let v: u64;
        // SAFETY: reading an implemented event counter register at EL2 has no memory
        // effect (callers stay below the VM's counter count, itself below PMCR.N).
        unsafe {
            asm!(concat!("mrs {0}, S3_3_C14_C", $crm, "_", $op2), out(reg) v,
                options(nomem, nostack, preserves_flags))
        };
        v
    }};
}

/// `msr` of `S3_3_C14_C<crm>_<op2>`.
macro_rules! msr_ev {
    ($crm:literal, $op2:literal, $v:expr) => {{
        let v: u64 = $v;
        // SAFETY: the crate owns the VM's counter range while it switches it; no
        // memory effect.
        unsafe {
            asm!(concat!("msr S3_3_C14_C", $crm, "_", $op2, ", {0}"), in(reg) v,
                options(nomem, nostack, preserves_flags))
        };
    }};
}

/// `PMSELR_EL0.SEL` = `n`, synchronised (for the indirect `PMXEV*` accesses).
fn select(n: u8) {
    write_sysreg!("S3_3_C9_C12_5", n as u64);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}

/// Saves counters `0..n`, their types, the cycle counter and filter, `PMSELR_EL0`,
/// `PMUSERENR_EL0` (not `PMCR_EL0` or the SET/CLR registers).
fn save_counters(r: &mut PmuRegs, n: u8) {
    macro_rules! one {
        ($i:literal, $c:literal, $t:literal, $op2:literal) => {
            r.evcntr[$i] = mrs_ev!($c, $op2);
            r.evtyper[$i] = mrs_ev!($t, $op2);
        };
    }
    upto!(n, one);
    if SWITCH_CCNTR {
        r.ccntr = read_sysreg!("S3_3_C9_C13_0");
    }
    r.ccfiltr = read_sysreg!("S3_3_C14_C15_7");
    r.selr = read_sysreg!("S3_3_C9_C12_5");
    r.userenr = read_sysreg!("S3_3_C9_C14_0");
}

/// Writes what [`save_counters`] saves.
fn restore_counters(r: &PmuRegs, n: u8) {
    macro_rules! one {
        ($i:literal, $c:literal, $t:literal, $op2:literal) => {
            msr_ev!($c, $op2, r.evcntr[$i]);
            msr_ev!($t, $op2, r.evtyper[$i]);
        };
    }
    upto!(n, one);
    if SWITCH_CCNTR {
        write_sysreg!("S3_3_C9_C13_0", r.ccntr);
    }
    write_sysreg!("S3_3_C14_C15_7", r.ccfiltr);
    write_sysreg!("S3_3_C9_C12_5", r.selr);
    write_sysreg!("S3_3_C9_C14_0", r.userenr);
}

/// `PMCNTENSET_EL0`, `PMINTENSET_EL1`, `PMOVSSET_EL0`.
fn bits() -> (u64, u64, u64) {
    (
        read_sysreg!("S3_3_C9_C12_1"),
        read_sysreg!("S3_0_C9_C14_1"),
        read_sysreg!("S3_3_C9_C14_3"),
    )
}

/// Stops the counters of `mask` (`PMCNTENCLR_EL0`).
fn stop(mask: u64) {
    write_sysreg!("S3_3_C9_C12_2", mask);
}

/// Sets the interrupt-enable and overflow bits of `mask` to `inten`/`ovs` (CLR then
/// SET: a 0 written to a SET register changes nothing).
fn set_flags(mask: u64, inten: u64, ovs: u64) {
    write_sysreg!("S3_0_C9_C14_2", mask);
    write_sysreg!("S3_0_C9_C14_1", inten & mask);
    write_sysreg!("S3_3_C9_C12_3", mask);
    write_sysreg!("S3_3_C9_C14_3", ovs & mask);
}

/// Loads a vCPU's PMU registers (the VM's range `v.mask()`), saving the host's into
/// `host`. The counters of the range are stopped first and started last.
pub(crate) fn load(guest: &PmuRegs, host: &mut PmuRegs, v: &PmuView) {
    let mask = v.mask();
    let (cnten, inten, ovs) = bits();
    host.cnten = cnten & mask;
    host.inten = inten & mask;
    host.ovs = ovs & mask;
    host.pmcr = read_sysreg!("S3_3_C9_C12_0");
    stop(mask);
    save_counters(host, v.counters);
    restore_counters(guest, v.counters);
    set_flags(mask, guest.inten, guest.ovs);
    write_sysreg!("S3_3_C9_C12_0", v.hw_pmcr(guest.pmcr));
    write_sysreg!("S3_3_C9_C12_1", guest.cnten & mask);
}

/// Saves a vCPU's PMU registers into `guest` and gives the range back to the host: the
/// vCPU's counters are stopped before anything else moves.
pub(crate) fn unload(guest: &mut PmuRegs, host: &PmuRegs, v: &PmuView) {
    let mask = v.mask();
    let (cnten, _, _) = bits();
    stop(mask);
    // The guest's PMCR_EL0 as the hardware has it (where TPMCR is not honoured its
    // writes went straight there), DP as the guest wrote it where it is forced.
    let hw = read_sysreg!("S3_3_C9_C12_0") & crate::pmu::pmcr::GUEST_RW;
    guest.pmcr = if v.force_dp {
        (hw & !crate::pmu::pmcr::DP) | (guest.pmcr & crate::pmu::pmcr::DP)
    } else {
        hw
    };
    let (_, inten, ovs) = bits();
    guest.cnten = cnten & mask;
    guest.inten = inten & mask;
    guest.ovs = ovs & mask;
    save_counters(guest, v.counters);
    restore_counters(host, v.counters);
    set_flags(mask, host.inten, host.ovs);
    write_sysreg!(
        "S3_3_C9_C12_0",
        host.pmcr & !(crate::pmu::pmcr::P | crate::pmu::pmcr::C)
    );
    write_sysreg!("S3_3_C9_C12_1", host.cnten & mask);
}

/// Whether the loaded PMU asserts its overflow interrupt for `mask`: `PMCR_EL0.E` and
/// an overflow flag with its interrupt enabled.
pub(crate) fn line(mask: u64) -> bool {
    let (_, inten, ovs) = bits();
    read_sysreg!("S3_3_C9_C12_0") & crate::pmu::pmcr::E != 0 && inten & ovs & mask != 0
}

/// Reads the core's PMU at `hardware_enable` (`PMCR_EL0`, `PMCEID0/1_EL0`) if
/// `ID_AA64DFR0_EL1` = `dfr0` announces a PMUv3.
pub(crate) fn probe(dfr0: u64, pfr0: u64, mdcr: u64) -> PmuCaps {
    let pmuver = ((dfr0 >> 8) & 0xf) as u8;
    let mut c = PmuCaps {
        pmuver,
        hpmn: (mdcr & crate::pmu::mdcr::HPMN) as u8,
        el3: (pfr0 >> 12) & 0xf != 0,
        ..PmuCaps::default()
    };
    if c.has_pmuv3() {
        c.pmcr = read_sysreg!("S3_3_C9_C12_0");
        c.ceid = [read_sysreg!("S3_3_C9_C12_6"), read_sysreg!("S3_3_C9_C12_7")];
    }
    c
}

/// The loaded hardware, for `PmuSwitch::emulate`.
pub(crate) struct Hw;

/// Reads `PMEVCNTR<n>_EL0` (`typer` false) or `PMEVTYPER<n>_EL0` through `PMSELR_EL0`,
/// which keeps its value.
fn indirect_read(n: u8, typer: bool) -> u64 {
    let sel = read_sysreg!("S3_3_C9_C12_5");
    select(n);
    let v = if typer {
        read_sysreg!("S3_3_C9_C13_1")
    } else {
        read_sysreg!("S3_3_C9_C13_2")
    };
    write_sysreg!("S3_3_C9_C12_5", sel);
    v
}

fn indirect_write(n: u8, typer: bool, v: u64) {
    let sel = read_sysreg!("S3_3_C9_C12_5");
    select(n);
    if typer {
        write_sysreg!("S3_3_C9_C13_1", v);
    } else {
        write_sysreg!("S3_3_C9_C13_2", v);
    }
    write_sysreg!("S3_3_C9_C12_5", sel);
}

impl PmuAccess for Hw {
    fn read(&mut self, r: PmuReg) -> u64 {
        match r {
            PmuReg::Pmcr => read_sysreg!("S3_3_C9_C12_0"),
            PmuReg::CntenSet | PmuReg::CntenClr => read_sysreg!("S3_3_C9_C12_1"),
            PmuReg::OvsSet | PmuReg::OvsClr => read_sysreg!("S3_3_C9_C14_3"),
            PmuReg::IntenSet | PmuReg::IntenClr => read_sysreg!("S3_0_C9_C14_1"),
            PmuReg::Selr => read_sysreg!("S3_3_C9_C12_5"),
            PmuReg::Ceid0 => read_sysreg!("S3_3_C9_C12_6"),
            PmuReg::Ceid1 => read_sysreg!("S3_3_C9_C12_7"),
            PmuReg::Ccntr => read_sysreg!("S3_3_C9_C13_0"),
            PmuReg::Userenr => read_sysreg!("S3_3_C9_C14_0"),
            PmuReg::Ccfiltr => read_sysreg!("S3_3_C14_C15_7"),
            // Emulated only where the view shows PMUv3p4 (the host has it).
            PmuReg::Mmir => read_sysreg!("S3_0_C9_C14_6"),
            PmuReg::Evcntr(n) if (n as usize) < MAX_COUNTERS => indirect_read(n, false),
            PmuReg::Evtyper(n) if (n as usize) < MAX_COUNTERS => indirect_read(n, true),
            _ => 0,
        }
    }

    fn write(&mut self, r: PmuReg, v: u64) {
        match r {
            PmuReg::Pmcr => write_sysreg!("S3_3_C9_C12_0", v),
            PmuReg::CntenSet => write_sysreg!("S3_3_C9_C12_1", v),
            PmuReg::CntenClr => write_sysreg!("S3_3_C9_C12_2", v),
            PmuReg::OvsClr => write_sysreg!("S3_3_C9_C12_3", v),
            PmuReg::OvsSet => write_sysreg!("S3_3_C9_C14_3", v),
            PmuReg::IntenSet => write_sysreg!("S3_0_C9_C14_1", v),
            PmuReg::IntenClr => write_sysreg!("S3_0_C9_C14_2", v),
            PmuReg::Swinc => write_sysreg!("S3_3_C9_C12_4", v),
            PmuReg::Selr => write_sysreg!("S3_3_C9_C12_5", v),
            PmuReg::Ccntr => write_sysreg!("S3_3_C9_C13_0", v),
            PmuReg::Userenr => write_sysreg!("S3_3_C9_C14_0", v),
            PmuReg::Ccfiltr => write_sysreg!("S3_3_C14_C15_7", v),
            PmuReg::Evcntr(n) if (n as usize) < MAX_COUNTERS => indirect_write(n, false, v),
            PmuReg::Evtyper(n) if (n as usize) < MAX_COUNTERS => indirect_write(n, true, v),
            _ => {}
        }
    }
}
