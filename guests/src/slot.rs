//! Code-slot harness: runs instruction words at EL1 from a RAM code slot with every
//! general-purpose register, SP and PSTATE chosen beforehand, and catches whatever
//! they raise at EL1 through its own vectors (`asm/slot.S`).
//!
//! While the words run, `VBAR_EL1` points at the harness's vectors; every exception
//! taken at EL1 is recorded (vector, ESR_EL1, ELR_EL1, FAR_EL1, SPSR_EL1) and the
//! harness returns to the caller with its own SP, registers, vectors and a clean
//! PSTATE (EL1h, DAIF masked). If the words fall through, the registers they leave
//! are reported. The words must not branch away or change `SPSel`, `SCTLR_EL1` or
//! `VBAR_EL1` (the hostile guest's generator filters those).

use core::fmt;
use core::ptr::{addr_of, addr_of_mut};

crate::global_asm_file!("slot.S");

/// Most words one [`exec`] runs.
pub const MAX_WORDS: usize = 16;

/// PSTATE for EL1h with D, A, I and F masked (NZCV clear).
pub const EL1H_DAIF: u64 = 0x3c5;

/// PSTATE for EL1t (SP_EL0) with D, A, I and F masked.
pub const EL1T_DAIF: u64 = 0x3c4;

/// Vector number (0..15, `VBAR_EL1 + 0x80 * n`) of a synchronous exception taken
/// from EL1 with SP_EL1.
pub const VEC_SYNC_EL1H: u64 = 4;
/// ... from EL1 with SP_EL0.
pub const VEC_SYNC_EL1T: u64 = 0;

/// What the words start with and, after a fall-through, end with.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SlotState {
    /// x0..x30.
    pub regs: [u64; 31],
    /// SP: SP_EL1 and SP_EL0 at the start; after a fall-through, the SP the words
    /// were using.
    pub sp: u64,
    /// PSTATE the words start with (an EL1h or EL1t SPSR value).
    pub pstate: u64,
    /// 0: fell through; 1 + n: exception at vector n.
    pub result: u64,
    /// ESR_EL1 of the exception.
    pub esr: u64,
    /// ELR_EL1 of the exception.
    pub elr: u64,
    /// FAR_EL1 at the exception.
    pub far: u64,
    /// SPSR_EL1 of the exception.
    pub spsr: u64,
    /// TPIDR_EL1 after a fall-through (the harness uses it as scratch afterwards).
    pub tpidr: u64,
}

/// An exception the words raised at EL1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caught {
    /// Vector number: offset from VBAR_EL1 / 0x80.
    pub vector: u64,
    /// ESR_EL1.
    pub esr: u64,
    /// ELR_EL1.
    pub elr: u64,
    /// FAR_EL1.
    pub far: u64,
    /// SPSR_EL1.
    pub spsr: u64,
}

impl Caught {
    /// ESR_EL1.EC.
    pub fn ec(&self) -> u64 {
        (self.esr >> 26) & 0x3f
    }
}

/// For messages: the vector number and the EL1 exception registers.
impl fmt::Display for Caught {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "vector {} ESR_EL1 {:#x} ELR_EL1 {:#x} FAR_EL1 {:#x} SPSR_EL1 {:#x}",
            self.vector, self.esr, self.elr, self.far, self.spsr
        )
    }
}

/// For messages: what [`run`] caught, or `no exception`.
pub fn describe(e: &Option<Caught>) -> impl fmt::Display + '_ {
    struct D<'a>(&'a Option<Caught>);
    impl fmt::Display for D<'_> {
        fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
            match self.0 {
                None => write!(f, "no exception"),
                Some(e) => e.fmt(f),
            }
        }
    }
    D(e)
}

extern "C" {
    /// See asm/slot.S.
    fn slot_exec(state: *mut SlotState) -> u64;
    /// First word of the slot (the middle of a page of UDF #0).
    static mut slot_code: [u32; 512];
    /// Where the words branch back to.
    fn slot_after();
}

/// Address of the first word.
pub fn slot_address() -> u64 {
    addr_of!(slot_code) as u64
}

/// `B target` placed at `at`.
fn branch(at: u64, target: u64) -> u32 {
    0x1400_0000 | ((target.wrapping_sub(at) >> 2) as u32 & 0x03ff_ffff)
}

/// Words currently loaded (after them: the branch back, then UDF).
static mut LOADED: usize = 0;

/// Writes `words` into the slot, followed by the branch back to the harness, and
/// makes the new code visible to instruction fetches.
pub fn load(words: &[u32]) {
    assert!(words.len() <= MAX_WORDS, "too many words for the slot");
    let base = slot_address();
    // SAFETY: the slot page belongs to this module; nothing executes from it while
    // it is rewritten (single core, no exec in progress). Writes are volatile: the
    // compiler must not drop or reorder them around the cache maintenance below.
    unsafe {
        let slot = addr_of_mut!(slot_code) as *mut u32;
        let n = words.len();
        for (i, w) in words.iter().enumerate() {
            slot.add(i).write_volatile(*w);
        }
        slot.add(n)
            .write_volatile(branch(base + 4 * n as u64, slot_after as *const () as u64));
        // Whatever was loaded beyond this is UDF again.
        for i in n + 1..=LOADED + 1 {
            slot.add(i).write_volatile(0);
        }
        LOADED = n;
        core::arch::asm!(
            "dsb ish",
            "ic iallu",
            "dsb ish",
            "isb",
            options(nostack, preserves_flags)
        );
    }
}

/// Loads a single word, assuming the previous load was also a single word (the
/// branch back is already in place): the hostile guest's fast path.
pub fn load_one(word: u32) {
    // SAFETY: as in `load`; LOADED is only touched by this module.
    unsafe {
        if LOADED != 1 {
            load(&[word]);
            return;
        }
        (addr_of_mut!(slot_code) as *mut u32).write_volatile(word);
        core::arch::asm!(
            "dsb ish",
            "ic iallu",
            "dsb ish",
            "isb",
            options(nostack, preserves_flags)
        );
    }
}

/// Runs the loaded words with `state`; returns the exception they raised, if any.
/// After a fall-through `state` holds the registers the words left.
pub fn exec(state: &mut SlotState) -> Option<Caught> {
    // SAFETY: slot_exec follows the C ABI (restores x18..x30, SP and VBAR_EL1 and
    // returns with EL1h, DAIF masked) and only writes `*state`. The words themselves
    // run with SP and every register pointing where the caller chose; the caller is
    // responsible for keeping them away from this program's memory.
    let result = unsafe { slot_exec(state) };
    if result == 0 {
        None
    } else {
        Some(Caught {
            vector: result - 1,
            esr: state.esr,
            elr: state.elr,
            far: state.far,
            spsr: state.spsr,
        })
    }
}

/// Loads `words` and runs them with `state`.
pub fn run(words: &[u32], state: &mut SlotState) -> Option<Caught> {
    load(words);
    exec(state)
}

/// Instruction encodings the tests use.
pub mod enc {
    /// `MRS Xt, S<op0>_<op1>_C<crn>_C<crm>_<op2>`.
    pub const fn mrs(rt: u32, op0: u32, op1: u32, crn: u32, crm: u32, op2: u32) -> u32 {
        0xd520_0000 | (op0 << 19) | (op1 << 16) | (crn << 12) | (crm << 8) | (op2 << 5) | rt
    }
    /// `MSR S<op0>_<op1>_C<crn>_C<crm>_<op2>, Xt`.
    pub const fn msr(rt: u32, op0: u32, op1: u32, crn: u32, crm: u32, op2: u32) -> u32 {
        0xd500_0000 | (op0 << 19) | (op1 << 16) | (crn << 12) | (crm << 8) | (op2 << 5) | rt
    }
    /// `SYS #op1, C<crn>, C<crm>, #op2, Xt` (op0 = 1: DC, IC, AT, TLBI).
    pub const fn sys(rt: u32, op1: u32, crn: u32, crm: u32, op2: u32) -> u32 {
        msr(rt, 1, op1, crn, crm, op2)
    }
    /// `HVC #imm`.
    pub const fn hvc(imm: u32) -> u32 {
        0xd400_0002 | (imm << 5)
    }
    /// `SMC #imm`.
    pub const fn smc(imm: u32) -> u32 {
        0xd400_0003 | (imm << 5)
    }
    /// `WFI`.
    pub const WFI: u32 = 0xd503_207f;
    /// `WFE`.
    pub const WFE: u32 = 0xd503_205f;
    /// `ISB`.
    pub const ISB: u32 = 0xd503_3fdf;
    /// `NOP`.
    pub const NOP: u32 = 0xd503_201f;
    /// `LDR Xt, [Xn]`.
    pub const fn ldr(rt: u32, rn: u32) -> u32 {
        0xf940_0000 | (rn << 5) | rt
    }
    /// `STR Xt, [Xn]`.
    pub const fn str(rt: u32, rn: u32) -> u32 {
        0xf900_0000 | (rn << 5) | rt
    }
    /// `LDP Xt, Xt2, [Xn]`.
    pub const fn ldp(rt: u32, rt2: u32, rn: u32) -> u32 {
        0xa940_0000 | (rt2 << 10) | (rn << 5) | rt
    }
    /// `STP Xt, Xt2, [Xn]`.
    pub const fn stp(rt: u32, rt2: u32, rn: u32) -> u32 {
        0xa900_0000 | (rt2 << 10) | (rn << 5) | rt
    }
    /// `BLR Xn`.
    pub const fn blr(rn: u32) -> u32 {
        0xd63f_0000 | (rn << 5)
    }
    /// `PACIA Xd, Xn` (Xn: the modifier).
    pub const fn pacia(rd: u32, rn: u32) -> u32 {
        0xdac1_0000 | (rn << 5) | rd
    }
    /// `AUTIA Xd, Xn`.
    pub const fn autia(rd: u32, rn: u32) -> u32 {
        0xdac1_1000 | (rn << 5) | rd
    }
    /// `RDVL Xd, #1` (SVE).
    pub const fn rdvl1(rd: u32) -> u32 {
        0x04bf_5020 | rd
    }
    /// `SMSTART` (`MSR SVCRSMZA, #1`, SME).
    pub const SMSTART: u32 = 0xd503_477f;
}
