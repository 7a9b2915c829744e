//! Self-hosted debug registers (DDI 0487 D2, D23.3): the lazy switch's register
//! accesses, `MDCR_EL2`, and the probe of registers no ID register announces.
//! The decisions are in `crate::debug` (host-tested); this is only the hardware.

use core::arch::{asm, global_asm};

use aarch64_cpu::asm::barrier;

use crate::debug::{mdscr as m, Counts, DebugCaps, DebugRegs, MDSCR_DCC_FLAGS};
use crate::percpu::HostTrapFrame;

/// Whether `DBGBVR0_EL1` of a vCPU is switched: not in the mutation-test build
/// `skip-dbgbvr`, where the two-VM debug scenario must catch it.
const SWITCH_GUEST_BVR0: bool = !cfg!(arm_vcpu_mutate = "skip-dbgbvr");

/// Expands `$body!(index, "CRm")` for the 16 breakpoint/watchpoint numbers in order,
/// stopping before number `$n` (straight-line code: one compare per pair of registers).
macro_rules! upto {
    ($n:expr, $body:ident) => {
        'done: {
            upto!(@ $n, 'done, $body, [0 "0", 1 "1", 2 "2", 3 "3", 4 "4", 5 "5", 6 "6",
                7 "7", 8 "8", 9 "9", 10 "10", 11 "11", 12 "12", 13 "13", 14 "14", 15 "15"]);
        }
    };
    (@ $n:expr, $done:lifetime, $body:ident, [$($i:literal $crm:literal),*]) => {
        $(
            if $n <= $i {
                break $done;
            }
            $body!($i, $crm);
        )*
    };
}

/// `mrs` of `S2_0_C0_C<crm>_<op2>` (a breakpoint/watchpoint register).
macro_rules! mrs_point {
    ($crm:literal, $op2:literal) => {{
        let v: u64;
        // SAFETY: reading an implemented debug register at EL2 has no memory effect
        // (callers stay below the implemented count).
        unsafe {
            asm!(concat!("mrs {0}, S2_0_C0_C", $crm, "_", $op2), out(reg) v,
                options(nomem, nostack, preserves_flags))
        };
        v
    }};
}

/// `msr` of `S2_0_C0_C<crm>_<op2>`.
macro_rules! msr_point {
    ($crm:literal, $op2:literal, $v:expr) => {{
        let v: u64 = $v;
        // SAFETY: the crate owns the debug registers while it switches them
        // (bind..unbind); no memory effect.
        unsafe {
            asm!(concat!("msr S2_0_C0_C", $crm, "_", $op2, ", {0}"), in(reg) v,
                options(nomem, nostack, preserves_flags))
        };
    }};
}

/// Saves the implemented breakpoint/watchpoint registers (`DBGBCR<n>` op2 5,
/// `DBGBVR<n>` 4, `DBGWCR<n>` 7, `DBGWVR<n>` 6), `MDCCINT_EL1`, the claim tags and
/// `OSDTRRX/OSDTRTX_EL1` (those the core has) into `r`; not `MDSCR_EL1`. `guest`:
/// these are a vCPU's (only the mutation build treats them differently).
pub(crate) fn save(r: &mut DebugRegs, c: Counts, caps: &DebugCaps, guest: bool) {
    macro_rules! bp {
        ($i:literal, $crm:literal) => {
            r.bcr[$i] = mrs_point!($crm, "5");
            if $i != 0 || SWITCH_GUEST_BVR0 || !guest {
                r.bvr[$i] = mrs_point!($crm, "4");
            }
        };
    }
    macro_rules! wp {
        ($i:literal, $crm:literal) => {
            r.wcr[$i] = mrs_point!($crm, "7");
            r.wvr[$i] = mrs_point!($crm, "6");
        };
    }
    upto!(c.brps, bp);
    upto!(c.wrps, wp);
    if caps.mdccint {
        r.mdccint = read_sysreg!("S2_0_C0_C2_0");
    }
    if caps.claim_bits != 0 {
        // DBGCLAIMCLR_EL1 reads the current tags.
        r.claim = read_sysreg!("S2_0_C7_C9_6");
    }
    if caps.dtr {
        r.dtrrx = read_sysreg!("S2_0_C0_C0_2");
        r.dtrtx = read_sysreg!("S2_0_C0_C3_2");
    }
}

/// Writes what [`save`] saves (not `MDSCR_EL1`: [`write_mdscr`]).
pub(crate) fn restore(r: &DebugRegs, c: Counts, caps: &DebugCaps, guest: bool) {
    macro_rules! bp {
        ($i:literal, $crm:literal) => {
            msr_point!($crm, "5", r.bcr[$i]);
            if $i != 0 || SWITCH_GUEST_BVR0 || !guest {
                msr_point!($crm, "4", r.bvr[$i]);
            }
        };
    }
    macro_rules! wp {
        ($i:literal, $crm:literal) => {
            msr_point!($crm, "7", r.wcr[$i]);
            msr_point!($crm, "6", r.wvr[$i]);
        };
    }
    upto!(c.brps, bp);
    upto!(c.wrps, wp);
    if caps.mdccint {
        write_sysreg!("S2_0_C0_C2_0", r.mdccint);
    }
    if caps.claim_bits != 0 {
        // Clear every implemented tag, then set the saved ones.
        write_sysreg!("S2_0_C7_C9_6", caps.claim_bits);
        write_sysreg!("S2_0_C7_C8_6", r.claim);
    }
    if caps.dtr {
        write_sysreg!("S2_0_C0_C0_2", r.dtrrx);
        write_sysreg!("S2_0_C0_C3_2", r.dtrtx);
    }
}

/// `MDSCR_EL1`.
#[inline]
pub(crate) fn mdscr() -> u64 {
    read_sysreg!("mdscr_el1")
}

/// Writes `MDSCR_EL1` (its EDSCR save/restore bits are read-only here: the physical
/// OS lock is unlocked).
#[inline]
pub(crate) fn set_mdscr(v: u64) {
    write_sysreg!("mdscr_el1", v);
}

/// Whether the physical OS lock is locked (`OSLSR_EL1.OSLK`, bit 1).
pub(crate) fn os_locked() -> bool {
    read_sysreg!("S2_0_C1_C1_4") & 2 != 0
}

/// `OSLAR_EL1.OSLK` = `locked`, synchronised.
fn set_os_lock(locked: bool) {
    write_sysreg!("S2_0_C1_C0_4", locked as u64);
    barrier::isb(barrier::SY);
}

/// Writes `MDSCR_EL1` = `v` including its DCC flags (RXfull, TXfull, RXO, TXU), which
/// the hardware only takes with the OS lock held: if they differ from the physical
/// ones, the OS lock is held for the write (the other EDSCR save/restore bits keep
/// their physical values). `locked_now`: the physical OS lock is locked now;
/// `locked_after`: leave it so. Synchronised.
pub(crate) fn write_mdscr(v: u64, locked_now: bool, locked_after: bool) {
    let cur = mdscr();
    let mut locked = locked_now;
    if (cur ^ v) & MDSCR_DCC_FLAGS != 0 && !locked {
        set_os_lock(true);
        locked = true;
    }
    let w = if locked {
        (v & !m::LOCKED_ONLY) | (cur & m::LOCKED_ONLY & !MDSCR_DCC_FLAGS) | (v & MDSCR_DCC_FLAGS)
    } else {
        v
    };
    set_mdscr(w);
    if locked != locked_after {
        set_os_lock(locked_after);
    }
    barrier::isb(barrier::SY);
}

/// `MDCR_EL2`.
#[inline]
pub(crate) fn mdcr_el2() -> u64 {
    read_sysreg!("mdcr_el2")
}

/// Writes `MDCR_EL2` and synchronises (the trap change applies to the next
/// instruction the guest runs).
pub(crate) fn set_mdcr_el2(v: u64) {
    write_sysreg!("mdcr_el2", v);
    barrier::isb(barrier::SY);
}

/// Writes `MDCR_EL2`; the caller synchronises.
#[inline]
pub(crate) fn set_mdcr_el2_nosync(v: u64) {
    write_sysreg!("mdcr_el2", v);
}

// Probes: each returns x0 = the register read and x1 = 1, or x1 = 0 if the MRS was
// UNDEFINED at EL2 (`probe_fixup` then skips it). The routines lie between
// `__arm_vcpu_probe_begin` and `__arm_vcpu_probe_end`, nothing else does.
global_asm!(
    ".pushsection .text.arm_vcpu.probe, \"ax\"",
    ".balign 4",
    ".global __arm_vcpu_probe_begin, __arm_vcpu_probe_end",
    ".global __arm_vcpu_probe_claim, __arm_vcpu_probe_dtr, __arm_vcpu_probe_mdccint",
    ".hidden __arm_vcpu_probe_begin, __arm_vcpu_probe_end",
    ".hidden __arm_vcpu_probe_claim, __arm_vcpu_probe_dtr, __arm_vcpu_probe_mdccint",
    "__arm_vcpu_probe_begin:",
    // DBGCLAIMSET_EL1 (reads the implemented tags as ones).
    "__arm_vcpu_probe_claim:",
    "mov x1, #1",
    "mrs x0, S2_0_C7_C8_6",
    "ret",
    // OSDTRRX_EL1 (a read has no side effect), then OSDTRTX_EL1.
    "__arm_vcpu_probe_dtr:",
    "mov x1, #1",
    "mrs x0, S2_0_C0_C0_2",
    "cbz x1, 1f",
    "mrs x0, S2_0_C0_C3_2",
    "1: ret",
    // MDCCINT_EL1.
    "__arm_vcpu_probe_mdccint:",
    "mov x1, #1",
    "mrs x0, S2_0_C0_C2_0",
    "ret",
    "__arm_vcpu_probe_end:",
    ".popsection",
);

extern "C" {
    static __arm_vcpu_probe_begin: u8;
    static __arm_vcpu_probe_end: u8;
}

/// Calls one probe routine; `Some(value)` if its register exists.
macro_rules! probe {
    ($label:literal) => {{
        let (v, ok): (u64, u64);
        // SAFETY: the routine only reads one system register into x0 and sets x1; an
        // UNDEFINED read is skipped by `probe_fixup` (the crate's EL2 vectors are
        // installed). Registers it may change are declared.
        unsafe {
            asm!(
                concat!("bl ", $label),
                out("x0") v,
                out("x1") ok,
                out("x30") _,
                options(nomem),
            );
        }
        (ok == 1).then_some(v)
    }};
}

/// Finds the debug registers the crate switches only where they exist. Call with the
/// crate's vectors installed.
pub(crate) fn probe() -> DebugCaps {
    DebugCaps {
        claim_bits: probe!("__arm_vcpu_probe_claim").unwrap_or(0) & 0xffff_ffff,
        dtr: probe!("__arm_vcpu_probe_dtr").is_some(),
        mdccint: probe!("__arm_vcpu_probe_mdccint").is_some(),
    }
}

/// Called for a synchronous exception in host code: if it is an UNDEFINED register
/// read inside a probe routine (EC 0x00), marks the probe failed (x1 = 0), skips the
/// instruction and returns `true`.
pub(crate) fn probe_fixup(frame: &mut HostTrapFrame) -> bool {
    let begin = core::ptr::addr_of!(__arm_vcpu_probe_begin) as u64;
    let end = core::ptr::addr_of!(__arm_vcpu_probe_end) as u64;
    if frame.esr >> 26 & 0x3f != 0 || !(begin..end).contains(&frame.elr) {
        return false;
    }
    frame.gpr[1] = 0;
    frame.elr = frame.elr.wrapping_add(4);
    true
}
