//! Self-hosted debug from EL1 (DDI 0487 D2): the breakpoint and watchpoint registers
//! by number, the control values the debug guests program, and the syndromes the
//! debug exceptions they expect must carry.

use core::arch::asm;

use crate::arch::IL;
use crate::read_sysreg;

/// `MDSCR_EL1.SS` (bit 0): software step.
pub const MDSCR_SS: u64 = 1 << 0;
/// `MDSCR_EL1.KDE` (bit 13): debug exceptions from EL1 (with PSTATE.D clear).
pub const MDSCR_KDE: u64 = 1 << 13;
/// `MDSCR_EL1.MDE` (bit 15): breakpoint and watchpoint exceptions.
pub const MDSCR_MDE: u64 = 1 << 15;

/// `SPSR_EL1.SS` (bit 21).
pub const SPSR_SS: u64 = 1 << 21;
/// PSTATE for EL1h with A, I, F masked and D clear: debug exceptions enabled at EL1.
pub const EL1H_DEBUG: u64 = 0x1c5;

/// `DBGBCR<n>_EL1` for an unlinked address match at EL1 and EL0 of an A64 instruction:
/// E (bit 0), PMC = 0b11 (\[2:1\]), BAS = 0b1111 (\[8:5\]), HMC = SSC = BT = 0.
pub const BCR_EL1_EL0: u64 = 1 | 0b11 << 1 | 0b1111 << 5;
/// `DBGWCR<n>_EL1` watching 8 bytes (BAS \[12:5\] = 0xff) at EL1 and EL0 (PAC \[2:1\] =
/// 0b11) for loads (LSC \[4:3\] = 0b01), enabled (E, bit 0).
pub const WCR_LOAD: u64 = 1 | 0b11 << 1 | 0b01 << 3 | 0xff << 5;
/// The same for stores (LSC = 0b10).
pub const WCR_STORE: u64 = 1 | 0b11 << 1 | 0b10 << 3 | 0xff << 5;

/// IFSC/DFSC 0b100010: debug exception.
const FSC_DEBUG: u64 = 0x22;
/// ESR_EL1 of a Breakpoint exception taken without a change of EL (EC 0x31).
pub const ESR_BREAKPOINT: u64 = 0x31 << 26 | IL | FSC_DEBUG;
/// ESR_EL1 of a Watchpoint exception without a change of EL (EC 0x35); WnR is bit 6.
pub const ESR_WATCHPOINT: u64 = 0x35 << 26 | IL | FSC_DEBUG;
/// ESR_EL1.WnR.
pub const WNR: u64 = 1 << 6;
/// ESR_EL1 of a Software Step exception without a change of EL (EC 0x33) after an
/// instruction the PE stepped: ISV (bit 24) = 1, EX (bit 6) = 0 (not a
/// load-exclusive).
pub const ESR_STEP: u64 = 0x33 << 26 | IL | 1 << 24 | FSC_DEBUG;
/// The same when the PE entered the active-pending state by an exception return with
/// SPSR.SS = 0, i.e. after an instruction a higher EL completed: no instruction was
/// stepped at this EL, ISV = 0.
pub const ESR_STEP_NO_SYNDROME: u64 = 0x33 << 26 | IL | FSC_DEBUG;

/// Breakpoint and watchpoint counts of this VM's `ID_AA64DFR0_EL1` (BRPs \[15:12\],
/// WRPs \[23:20\], CTX_CMPs \[31:28\], each "number minus one").
#[derive(Clone, Copy, Debug)]
pub struct Counts {
    /// Breakpoints.
    pub brps: usize,
    /// Watchpoints.
    pub wrps: usize,
    /// Context-aware breakpoints.
    pub ctx_cmps: usize,
}

impl Counts {
    /// Reads `ID_AA64DFR0_EL1`.
    pub fn read() -> Self {
        let d = read_sysreg!("ID_AA64DFR0_EL1");
        Self {
            brps: ((d >> 12) & 0xf) as usize + 1,
            wrps: ((d >> 20) & 0xf) as usize + 1,
            ctx_cmps: ((d >> 28) & 0xf) as usize + 1,
        }
    }
}

/// Writes a debug system register by name.
#[macro_export]
macro_rules! write_debug_reg {
    ($name:literal, $v:expr) => {{
        let v: u64 = $v;
        // SAFETY: `msr` to an EL1 debug register this guest owns; it maps no memory.
        // Debug exceptions it enables are only taken with PSTATE.D clear, which the
        // guests only do inside their own harnesses (slot.rs, the step harness).
        unsafe {
            core::arch::asm!(concat!("msr ", $name, ", {}"), in(reg) v,
                options(nostack, preserves_flags));
        }
    }};
}

/// One kind of breakpoint/watchpoint register by number (`S2_0_C0_C<n>_<op2>`);
/// `n` >= 16 reads 0 and ignores the write.
macro_rules! indexed {
    ($read:ident, $write:ident, $op2:literal, $what:literal) => {
        indexed!(@ $read, $write, $op2, $what, [0 "0", 1 "1", 2 "2", 3 "3", 4 "4", 5 "5",
            6 "6", 7 "7", 8 "8", 9 "9", 10 "10", 11 "11", 12 "12", 13 "13", 14 "14", 15 "15"]);
    };
    (@ $read:ident, $write:ident, $op2:literal, $what:literal,
        [$($n:literal $crm:literal),*]) => {
        #[doc = concat!("Reads ", $what, ".")]
        pub fn $read(n: usize) -> u64 {
            let mut v: u64 = 0;
            match n {
                $($n => {
                    // SAFETY: reading a debug register has no memory effect.
                    unsafe {
                        asm!(concat!("mrs {0}, S2_0_C0_C", $crm, "_", $op2), out(reg) v,
                            options(nomem, nostack, preserves_flags))
                    }
                })*
                _ => {}
            }
            v
        }

        #[doc = concat!("Writes ", $what, ".")]
        pub fn $write(n: usize, v: u64) {
            match n {
                $($n => {
                    // SAFETY: as in `write_debug_reg!`.
                    unsafe {
                        asm!(concat!("msr S2_0_C0_C", $crm, "_", $op2, ", {0}"), in(reg) v,
                            options(nostack, preserves_flags))
                    }
                })*
                _ => {}
            }
        }
    };
}

indexed!(bvr, set_bvr, "4", "DBGBVR<n>_EL1");
indexed!(bcr, set_bcr, "5", "DBGBCR<n>_EL1");
indexed!(wvr, set_wvr, "6", "DBGWVR<n>_EL1");
indexed!(wcr, set_wcr, "7", "DBGWCR<n>_EL1");

/// `MDSCR_EL1`.
pub fn mdscr() -> u64 {
    read_sysreg!("mdscr_el1")
}

/// Writes `MDSCR_EL1`.
pub fn set_mdscr(v: u64) {
    write_debug_reg!("mdscr_el1", v);
}

/// Disables every breakpoint and watchpoint (E = 0) and clears `MDSCR_EL1`.
pub fn disarm(c: &Counts) {
    for n in 0..c.brps {
        set_bcr(n, 0);
    }
    for n in 0..c.wrps {
        set_wcr(n, 0);
    }
    set_mdscr(0);
    // SAFETY: `isb` only synchronises the context (the writes take effect).
    unsafe { asm!("isb", options(nomem, nostack, preserves_flags)) };
}

/// Synchronises debug register writes (they take effect for what follows).
pub fn isb() {
    // SAFETY: as in `disarm`.
    unsafe { asm!("isb", options(nomem, nostack, preserves_flags)) };
}
