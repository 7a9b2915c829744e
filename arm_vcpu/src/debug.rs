//! Self-hosted debug for guests (DDI 0487, D2 "AArch64 Self-hosted Debug"), switched
//! lazily like FP/SIMD.
//!
//! At bind `MDCR_EL2.TDA`, `.TDOSA` and `.TDRA` trap the guest's debug registers, and
//! the physical `MDSCR_EL1` is set inert (0: no breakpoint, watchpoint or step
//! exceptions, whatever the host's breakpoint registers hold). The guest's first trapped
//! access to a register of the [`Group::Switched`] group saves the host's values, loads
//! the vCPU's ([`DebugRegs`]: `DBGBCR<n>`/`DBGBVR<n>` and `DBGWCR<n>`/`DBGWVR<n>` for as
//! many as the VM's `ID_AA64DFR0_EL1` advertises, `MDSCR_EL1`, `MDCCINT_EL1`, the claim
//! tags, `OSDTRRX/OSDTRTX_EL1`), clears TDA and re-executes the instruction; unbind
//! saves them only if loaded and restores the host's. A vCPU whose `MDSCR_EL1` has
//! MDE, KDE or SS set is loaded at bind already ([`DebugSwitch::load_at_bind`]), so its
//! breakpoints fire before it touches a debug register again. Debug exceptions go to
//! the guest's EL1 (`MDCR_EL2.TDE = 0`): at EL2 none are generated for EL1's debug
//! target, so the guest's state may stay loaded while the host runs.
//!
//! The OS lock registers stay trapped and are emulated per vCPU in every state
//! ([`Group::OsLock`]: `OSLAR_EL1`, `OSLSR_EL1`, `OSDLR_EL1`, `DBGPRCR_EL1`; the
//! physical OS lock stays the host's), as KVM does; `MDRAR_EL1` ([`Group::Rom`]) reads
//! 0 (no ROM table). While the guest's OS lock (or OS double lock) is set, debug
//! exceptions other than BRK must not happen: the state is then not loaded (unloaded if
//! it was), every debug register access traps and is emulated against the vCPU's copy
//! ([`DebugRegs::emulate`]), and `OSECCR_EL1` is a plain register (it is UNKNOWN/WI
//! while unlocked, which is also what the hardware gives an unlocked guest: the
//! physical OS lock is unlocked while the guest's state is loaded).
//!
//! Not switched, with the reason: `DBGVCR32_EL2` (vector catch applies to an AArch32
//! EL1 only, and the guest's EL1 is AArch64-only: `HCR_EL2.RW = 1`); `MDSELR_EL1` and
//! breakpoints/watchpoints beyond 16 (FEAT_Debugv8p9: hidden in the ID view, and
//! `MDCR_EL2.EBWE = 0` keeps their effective enable at 0); the external debug state
//! (EDSCR bits other than the DCC flags, which [`MDSCR_DCC_FLAGS`] keeps per vCPU).
//!
//! Software step keeps its meaning across instructions the crate or the host completes
//! (MMIO, MSR/MRS, WFx, SMC, PSCI): [`complete_instruction`] advances the PC and clears
//! `SPSR_EL2.SS`, so the guest takes the step exception right after the emulated
//! instruction, as after one the hardware executed. An HVC needs nothing: the hardware
//! advanced the step state machine before taking the exception (`SPSR_EL2.SS = 0`) and
//! `ELR_EL2` already points past it.

use crate::context::Aarch64ContextFrame;
use crate::exit::SysRegAddr;

/// `SPSR_ELx.SS`, bit 21 (AArch64 and AArch32 formats): the software step state.
pub const SPSR_SS: u64 = 1 << 21;

/// Completes an instruction the crate or the host emulated: the PC moves past its
/// `len` bytes and `PSTATE.SS` is cleared, so that with software step active the guest
/// takes the Software Step exception straight after it (the instruction counts as
/// stepped, DDI 0487 D2.12). `len` 0 (an HVC, whose return address is already past
/// it) only clears SS, which the hardware did already. A host that completes an
/// instruction itself through [`crate::Aarch64VCpu::regs_mut`] should use it too.
#[inline(always)]
pub fn complete_instruction(frame: &mut Aarch64ContextFrame, len: u64) {
    // Either Execution state: AArch32 EL0 also wraps the PC at 32 bits and advances
    // the T32 IT state (SPSR_EL2.SS is bit 21 in both).
    crate::aarch32::step(frame, len);
    frame.spsr &= !SPSR_SS;
}

/// [`complete_instruction`] for an exit that only AArch64 state can take (EC 0x18
/// MSR/MRS, 0x16 HVC64, 0x17 SMC64): no AArch32 PC wrap or IT state to look at.
#[inline(always)]
pub fn complete_aarch64_instruction(frame: &mut Aarch64ContextFrame, len: u64) {
    frame.elr = frame.elr.wrapping_add(len);
    frame.spsr &= !SPSR_SS;
}

/// `MDSCR_EL1` fields (DDI 0487 D23.3.20).
pub mod mdscr {
    /// SS, bit 0: software step enable.
    pub const SS: u64 = 1 << 0;
    /// ERR, bit 6 (save/restore of EDSCR.ERR; RW only with the OS lock held).
    pub const ERR: u64 = 1 << 6;
    /// TDCC, bit 12: traps EL0 accesses to the DCC registers to EL1.
    pub const TDCC: u64 = 1 << 12;
    /// KDE, bit 13: debug exceptions from EL1 (with PSTATE.D clear).
    pub const KDE: u64 = 1 << 13;
    /// HDE, bit 14 (save/restore of EDSCR.HDE; RW only with the OS lock held).
    pub const HDE: u64 = 1 << 14;
    /// MDE, bit 15: breakpoint, watchpoint and vector catch exceptions.
    pub const MDE: u64 = 1 << 15;
    /// TDA, bit 21 (save/restore of EDSCR.TDA; RW only with the OS lock held).
    pub const TDA: u64 = 1 << 21;
    /// INTdis, bits \[23:22\] (save/restore of EDSCR.INTdis).
    pub const INTDIS: u64 = 3 << 22;
    /// TXU, bit 26: DTRTX underrun (EDSCR.TXU).
    pub const TXU: u64 = 1 << 26;
    /// RXO, bit 27: DTRRX overrun (EDSCR.RXO).
    pub const RXO: u64 = 1 << 27;
    /// TXfull, bit 29 (EDSCR.TXfull; also in `MDCCSR_EL0`).
    pub const TXFULL: u64 = 1 << 29;
    /// RXfull, bit 30 (EDSCR.RXfull; also in `MDCCSR_EL0`).
    pub const RXFULL: u64 = 1 << 30;
    /// The bits that enable debug exceptions for EL0/EL1 (other than BRK).
    pub const ENABLES: u64 = SS | KDE | MDE;
    /// Bits that are read-only unless the OS lock is locked (EDSCR save/restore).
    pub const LOCKED_ONLY: u64 = ERR | HDE | TDA | INTDIS | TXU | RXO | TXFULL | RXFULL;
}

/// The Debug Communications Channel flags of `MDSCR_EL1` a guest changes through its
/// own DCC accesses (a write of `DBGDTRTX_EL0` sets TXfull, and so on). They are part
/// of the vCPU's state; the hardware only takes them with the OS lock held.
pub const MDSCR_DCC_FLAGS: u64 = mdscr::RXFULL | mdscr::TXFULL | mdscr::RXO | mdscr::TXU;

/// `MDCR_EL2` debug bits (DDI 0487 D23.2.96).
pub mod mdcr {
    /// TDE, bit 8: route debug exceptions to EL2 (kept 0 for guests).
    pub const TDE: u64 = 1 << 8;
    /// TDA, bit 9: trap the debug registers (except the OS lock and ROM ones).
    pub const TDA: u64 = 1 << 9;
    /// TDOSA, bit 10: trap the OS lock registers.
    pub const TDOSA: u64 = 1 << 10;
    /// TDRA, bit 11: trap `MDRAR_EL1`.
    pub const TDRA: u64 = 1 << 11;
}

/// Most breakpoints or watchpoints `ID_AA64DFR0_EL1` can describe (4-bit fields).
pub const MAX_POINTS: usize = 16;

/// How many breakpoints, watchpoints and context-aware breakpoints a VM has, from the
/// `ID_AA64DFR0_EL1` value it is shown: BRPs \[15:12\], WRPs \[23:20\], CTX_CMPs \[31:28\],
/// each "number minus one".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Breakpoints (`DBGBCR<n>`/`DBGBVR<n>`, n < brps).
    pub brps: u8,
    /// Watchpoints (`DBGWCR<n>`/`DBGWVR<n>`, n < wrps).
    pub wrps: u8,
    /// Context-aware breakpoints (the highest-numbered ones).
    pub ctx_cmps: u8,
}

impl Counts {
    /// Decodes `ID_AA64DFR0_EL1`.
    pub const fn from_dfr0(dfr0: u64) -> Self {
        Self {
            brps: ((dfr0 >> 12) & 0xf) as u8 + 1,
            wrps: ((dfr0 >> 20) & 0xf) as u8 + 1,
            ctx_cmps: ((dfr0 >> 28) & 0xf) as u8 + 1,
        }
    }
}

/// `ID_AA64DFR0_EL1.DebugVer` \[3:0\] for Armv8.8 debug: the highest this crate
/// switches (Armv8.9 adds breakpoint banks through `MDSELR_EL1`).
pub const DEBUGVER_V8P8: u64 = 0b1010;

/// The VM's view of `ID_AA64DFR0_EL1` and `ID_AA64DFR1_EL1` (pure), as the ID view's
/// table [`crate::idregs::VIEW`] makes it: DebugVer \[3:0\] is capped at Armv8.8
/// ([`DEBUGVER_V8P8`]), and `ID_AA64DFR1_EL1` reads 0 — with its extended counts BRPs
/// \[15:8\], WRPs \[23:16\], CTX_CMPs \[31:24\], ABLE \[43:40\] and ABL_CMPs \[63:56\] —
/// so the counts in `ID_AA64DFR0_EL1` (all of them switched) are the whole truth.
pub const fn id_view(dfr0: u64, dfr1: u64) -> (u64, u64) {
    use crate::idregs::{view_of, ID_AA64DFR0, ID_AA64DFR1};
    (view_of(ID_AA64DFR0, dfr0), view_of(ID_AA64DFR1, dfr1))
}

/// What the VM is shown, as far as debug is concerned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DebugView {
    /// Breakpoint and watchpoint counts (switched exactly).
    pub counts: Counts,
    /// FEAT_DoubleLock (`ID_AA64DFR0_EL1.DoubleLock` \[39:36\] = 0): `OSDLR_EL1.DLK` is
    /// RW; otherwise `OSDLR_EL1` is RAZ/WI.
    pub double_lock: bool,
}

impl DebugView {
    /// From the VM's `ID_AA64DFR0_EL1`.
    pub const fn from_dfr0(dfr0: u64) -> Self {
        Self {
            counts: Counts::from_dfr0(dfr0),
            double_lock: (dfr0 >> 36) & 0xf == 0,
        }
    }
}

/// Which optional-in-practice debug registers the core implements (probed at
/// `hardware_enable`, since no ID register tells: QEMU 7.2, for one, lacks the claim
/// tags and `OSDTRRX/OSDTRTX_EL1`, which DDI 0487 makes mandatory). The crate never
/// accesses one the probe did not find.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DebugCaps {
    /// `DBGCLAIMSET_EL1` read value: the implemented claim tag bits (0: none, or the
    /// registers are missing).
    pub claim_bits: u64,
    /// `OSDTRRX_EL1` and `OSDTRTX_EL1`.
    pub dtr: bool,
    /// `MDCCINT_EL1`.
    pub mdccint: bool,
}

/// One debug system register (op0 = 2) a guest may access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DebugReg {
    /// `DBGBVR<n>_EL1` (2, 0, 0, n, 4).
    Bvr(u8),
    /// `DBGBCR<n>_EL1` (2, 0, 0, n, 5).
    Bcr(u8),
    /// `DBGWVR<n>_EL1` (2, 0, 0, n, 6).
    Wvr(u8),
    /// `DBGWCR<n>_EL1` (2, 0, 0, n, 7).
    Wcr(u8),
    /// `OSDTRRX_EL1` (2, 0, 0, 0, 2).
    OsDtrRx,
    /// `MDCCINT_EL1` (2, 0, 0, 2, 0).
    Mdccint,
    /// `MDSCR_EL1` (2, 0, 0, 2, 2).
    Mdscr,
    /// `OSDTRTX_EL1` (2, 0, 0, 3, 2).
    OsDtrTx,
    /// `OSECCR_EL1` (2, 0, 0, 6, 2).
    OsEccr,
    /// `MDRAR_EL1` (2, 0, 1, 0, 0), read-only.
    Mdrar,
    /// `OSLAR_EL1` (2, 0, 1, 0, 4), write-only.
    OsLar,
    /// `OSLSR_EL1` (2, 0, 1, 1, 4), read-only.
    OsLsr,
    /// `OSDLR_EL1` (2, 0, 1, 3, 4).
    OsDlr,
    /// `DBGPRCR_EL1` (2, 0, 1, 4, 4).
    DbgPrcr,
    /// `DBGCLAIMSET_EL1` (2, 0, 7, 8, 6).
    ClaimSet,
    /// `DBGCLAIMCLR_EL1` (2, 0, 7, 9, 6).
    ClaimClr,
    /// `DBGAUTHSTATUS_EL1` (2, 0, 7, 14, 6), read-only.
    AuthStatus,
    /// `MDCCSR_EL0` (2, 3, 0, 1, 0), read-only.
    Mdccsr,
    /// `DBGDTR_EL0` (2, 3, 0, 4, 0).
    DbgDtr,
    /// `DBGDTRRX_EL0` (read) / `DBGDTRTX_EL0` (write) (2, 3, 0, 5, 0).
    DtrRxTx,
}

/// The trap control that catches a debug register, i.e. how the crate treats it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// `MDCR_EL2.TDA`: switched lazily (loaded on first use, then untrapped).
    Switched,
    /// `MDCR_EL2.TDOSA`: always trapped, emulated per vCPU.
    OsLock,
    /// `MDCR_EL2.TDRA`: always trapped, reads 0.
    Rom,
}

impl DebugReg {
    /// The register at `reg`, if it is one of the debug registers (whether the VM has
    /// it, e.g. breakpoint `n`, is [`DebugSwitch::trap`]'s business).
    pub const fn decode(reg: SysRegAddr) -> Option<Self> {
        if reg.op0() != 2 {
            return None;
        }
        let (op1, crn, crm, op2) = (reg.op1(), reg.crn(), reg.crm(), reg.op2());
        Some(match (op1, crn, crm, op2) {
            (0, 0, n, 4) => Self::Bvr(n),
            (0, 0, n, 5) => Self::Bcr(n),
            (0, 0, n, 6) => Self::Wvr(n),
            (0, 0, n, 7) => Self::Wcr(n),
            (0, 0, 0, 2) => Self::OsDtrRx,
            (0, 0, 2, 0) => Self::Mdccint,
            (0, 0, 2, 2) => Self::Mdscr,
            (0, 0, 3, 2) => Self::OsDtrTx,
            (0, 0, 6, 2) => Self::OsEccr,
            (0, 1, 0, 0) => Self::Mdrar,
            (0, 1, 0, 4) => Self::OsLar,
            (0, 1, 1, 4) => Self::OsLsr,
            (0, 1, 3, 4) => Self::OsDlr,
            (0, 1, 4, 4) => Self::DbgPrcr,
            (0, 7, 8, 6) => Self::ClaimSet,
            (0, 7, 9, 6) => Self::ClaimClr,
            (0, 7, 14, 6) => Self::AuthStatus,
            (3, 0, 1, 0) => Self::Mdccsr,
            (3, 0, 4, 0) => Self::DbgDtr,
            (3, 0, 5, 0) => Self::DtrRxTx,
            _ => return None,
        })
    }

    /// The encoding (inverse of [`decode`](Self::decode)).
    pub const fn encoding(self) -> SysRegAddr {
        let (op1, crn, crm, op2) = match self {
            Self::Bvr(n) => (0, 0, n, 4),
            Self::Bcr(n) => (0, 0, n, 5),
            Self::Wvr(n) => (0, 0, n, 6),
            Self::Wcr(n) => (0, 0, n, 7),
            Self::OsDtrRx => (0, 0, 0, 2),
            Self::Mdccint => (0, 0, 2, 0),
            Self::Mdscr => (0, 0, 2, 2),
            Self::OsDtrTx => (0, 0, 3, 2),
            Self::OsEccr => (0, 0, 6, 2),
            Self::Mdrar => (0, 1, 0, 0),
            Self::OsLar => (0, 1, 0, 4),
            Self::OsLsr => (0, 1, 1, 4),
            Self::OsDlr => (0, 1, 3, 4),
            Self::DbgPrcr => (0, 1, 4, 4),
            Self::ClaimSet => (0, 7, 8, 6),
            Self::ClaimClr => (0, 7, 9, 6),
            Self::AuthStatus => (0, 7, 14, 6),
            Self::Mdccsr => (3, 0, 1, 0),
            Self::DbgDtr => (3, 0, 4, 0),
            Self::DtrRxTx => (3, 0, 5, 0),
        };
        SysRegAddr::new(2, op1, crn, crm, op2)
    }

    /// The trap control that catches it.
    pub const fn group(self) -> Group {
        match self {
            Self::OsLar | Self::OsLsr | Self::OsDlr | Self::DbgPrcr => Group::OsLock,
            Self::Mdrar => Group::Rom,
            _ => Group::Switched,
        }
    }

    /// Whether an access in this direction exists (MRS of a write-only register and MSR
    /// of a read-only one are UNDEFINED).
    pub const fn accessible(self, read: bool) -> bool {
        match self {
            Self::OsLar => !read,
            Self::Mdrar | Self::OsLsr | Self::AuthStatus | Self::Mdccsr => read,
            _ => true,
        }
    }
}

/// `OSLSR_EL1` value: OSLM = 0b10 (OS lock implemented: bit 3), OSLK (bit 1).
pub const fn oslsr(locked: bool) -> u64 {
    0b1000 | ((locked as u64) << 1)
}

/// `DBGAUTHSTATUS_EL1` while emulated: non-secure invasive and non-invasive debug
/// implemented and enabled (NSID \[1:0\] = NSNID \[3:2\] = 0b11), no Secure state (SID,
/// SNID = 0b00): the VM has none.
pub const AUTHSTATUS: u64 = 0b1111;

/// The OS lock state of a vCPU, emulated whatever else is loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OsLock {
    /// `OSLSR_EL1.OSLK`: the OS lock (unlocked at vCPU reset, as KVM resets it).
    pub locked: bool,
    /// `OSDLR_EL1.DLK`: the OS double lock.
    pub double_lock: bool,
    /// `DBGPRCR_EL1.CORENPDRQ`: core no-powerdown request (the double lock only
    /// takes effect without it).
    pub core_npdrq: bool,
    /// `OSECCR_EL1` bits \[31:0\] (EDECCR save/restore; meaningful while locked).
    pub oseccr: u64,
}

impl OsLock {
    /// Whether debug exceptions other than BRK are disabled by the OS lock or the OS
    /// double lock (`DoubleLockStatus()`: DLK set, CORENPDRQ clear).
    pub const fn exceptions_disabled(&self) -> bool {
        self.locked || (self.double_lock && !self.core_npdrq)
    }
}

/// The switched debug registers of one context (a vCPU's, or the host's while a vCPU
/// owns the hardware). Only the first [`Counts`] entries of the arrays are used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DebugRegs {
    /// `DBGBCR<n>_EL1`.
    pub bcr: [u64; MAX_POINTS],
    /// `DBGBVR<n>_EL1`.
    pub bvr: [u64; MAX_POINTS],
    /// `DBGWCR<n>_EL1`.
    pub wcr: [u64; MAX_POINTS],
    /// `DBGWVR<n>_EL1`.
    pub wvr: [u64; MAX_POINTS],
    /// `MDSCR_EL1` (with the DCC flags, [`MDSCR_DCC_FLAGS`]).
    pub mdscr: u64,
    /// `MDCCINT_EL1`.
    pub mdccint: u64,
    /// The claim tags (`DBGCLAIMCLR_EL1` read value).
    pub claim: u64,
    /// `OSDTRRX_EL1` (DTRRX, without side effects).
    pub dtrrx: u64,
    /// `OSDTRTX_EL1` (DTRTX, without side effects).
    pub dtrtx: u64,
}

impl DebugRegs {
    /// One access to this copy, as the registers behave while the OS lock is held
    /// (the only time the crate emulates them; otherwise the hardware runs them):
    /// breakpoint/watchpoint registers, `MDSCR_EL1` (every bit writable), `MDCCINT_EL1`
    /// and `OSDTRRX/OSDTRTX_EL1` are plain storage, `OSECCR_EL1` too (bits \[31:0\];
    /// UNKNOWN/WI — here 0 — when neither lock is set), the claim tags set and clear
    /// (`DBGCLAIMSET_EL1` reads the implemented bits as ones), `MDCCSR_EL0` shows the
    /// DCC flags, the DCC data registers read 0 and ignore writes (no external
    /// debugger behind them), and `DBGAUTHSTATUS_EL1` is [`AUTHSTATUS`]. Returns the
    /// value read (0 for a write). The caller checked that the access exists.
    pub fn emulate(
        &mut self,
        r: DebugReg,
        read: bool,
        value: u64,
        os: &mut OsLock,
        caps: &DebugCaps,
    ) -> u64 {
        let slot = match r {
            DebugReg::Bvr(n) => self.bvr.get_mut(n as usize),
            DebugReg::Bcr(n) => self.bcr.get_mut(n as usize),
            DebugReg::Wvr(n) => self.wvr.get_mut(n as usize),
            DebugReg::Wcr(n) => self.wcr.get_mut(n as usize),
            DebugReg::Mdscr => Some(&mut self.mdscr),
            DebugReg::Mdccint => Some(&mut self.mdccint),
            DebugReg::OsDtrRx => Some(&mut self.dtrrx),
            DebugReg::OsDtrTx => Some(&mut self.dtrtx),
            _ => None,
        };
        if let Some(slot) = slot {
            let mask = match r {
                DebugReg::OsDtrRx | DebugReg::OsDtrTx => u32::MAX as u64,
                _ => u64::MAX,
            };
            if read {
                return *slot;
            }
            *slot = value & mask;
            return 0;
        }
        match (r, read) {
            (DebugReg::OsEccr, true) if os.exceptions_disabled() => os.oseccr,
            (DebugReg::OsEccr, false) if os.exceptions_disabled() => {
                os.oseccr = value & u32::MAX as u64;
                0
            }
            (DebugReg::ClaimSet, true) => caps.claim_bits,
            (DebugReg::ClaimSet, false) => {
                self.claim |= value & caps.claim_bits;
                0
            }
            (DebugReg::ClaimClr, true) => self.claim,
            (DebugReg::ClaimClr, false) => {
                self.claim &= !value;
                0
            }
            (DebugReg::Mdccsr, true) => self.mdscr & (mdscr::RXFULL | mdscr::TXFULL),
            (DebugReg::AuthStatus, true) => AUTHSTATUS,
            _ => 0,
        }
    }
}

/// What [`DebugSwitch::trap`] decided for one trapped access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Emulated; the value read (for an MRS) goes to Rt. The instruction completes.
    Done(u64),
    /// First use: load the state (which stops trapping it) and execute the
    /// instruction again.
    Load,
    /// The register trapped although the state is loaded (`MDCR_EL2.TDA` does not do
    /// that; a fine-grained trap could): unload it, then
    /// [`DebugSwitch::trap_unloaded`] emulates the access, so the instruction always
    /// completes and nothing loops.
    Unload,
    /// UNDEFINED (no such register, or not in this direction).
    Undef,
}

/// What the OS lock state asks of the hardware after it changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reconcile {
    /// Nothing.
    Keep,
    /// The state is loaded but debug exceptions are now disabled: save it, give the
    /// hardware back to the host and trap again.
    Unload,
    /// Debug exceptions are enabled again and `MDSCR_EL1` enables some: load now.
    Load,
}

/// A vCPU's debug state and where it lives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DebugSwitch {
    /// The vCPU's registers (current while not loaded).
    pub guest: DebugRegs,
    /// The host's registers, saved when the vCPU's were loaded (their `mdscr` is the
    /// host's own value, [`host_mdscr`](Self::host_mdscr)).
    pub host: DebugRegs,
    /// The emulated OS lock.
    pub os: OsLock,
    /// The vCPU's registers are in the hardware and untrapped.
    pub loaded: bool,
    /// What the VM is shown (set at bind).
    pub view: DebugView,
    /// What the core implements (set at bind).
    pub caps: DebugCaps,
    /// The host's `MDSCR_EL1` at bind (the physical one is 0 while the vCPU is bound
    /// and its state not loaded).
    pub host_mdscr: u64,
    /// The host's `MDCR_EL2` at bind, restored at unbind.
    pub host_mdcr: u64,
    /// The host's physical OS lock was locked at load (it is unlocked while the
    /// vCPU's state is loaded, and locked again when the host's comes back).
    pub host_os_locked: bool,
    /// The vCPU's `MDCR_EL2` with TDA set (TDA is cleared while loaded).
    pub mdcr_trapping: u64,
}

impl DebugSwitch {
    /// A vCPU at reset: every register 0, the OS lock unlocked, nothing loaded.
    pub fn reset(&mut self) {
        self.guest = DebugRegs::default();
        self.os = OsLock::default();
        self.loaded = false;
    }

    /// Whether the state must be loaded at bind: `MDSCR_EL1` enables breakpoints,
    /// watchpoints or software step (MDE, KDE, SS) and neither OS lock disables them.
    /// Otherwise nothing could fire before the guest touches a debug register (which
    /// traps and loads).
    pub const fn load_at_bind(&self) -> bool {
        self.guest.mdscr & mdscr::ENABLES != 0 && !self.os.exceptions_disabled()
    }

    /// The guest's `MDCR_EL2` while its state is loaded: TDA cleared (TDOSA and TDRA
    /// stay set).
    pub const fn mdcr_loaded(&self) -> u64 {
        self.mdcr_trapping & !mdcr::TDA
    }

    /// Whether register `r` exists for this VM on this core.
    pub const fn exists(&self, r: DebugReg) -> bool {
        let c = self.view.counts;
        match r {
            DebugReg::Bvr(n) | DebugReg::Bcr(n) => n < c.brps,
            DebugReg::Wvr(n) | DebugReg::Wcr(n) => n < c.wrps,
            DebugReg::ClaimSet | DebugReg::ClaimClr => self.caps.claim_bits != 0,
            DebugReg::OsDtrRx | DebugReg::OsDtrTx => self.caps.dtr,
            DebugReg::Mdccint => self.caps.mdccint,
            _ => true,
        }
    }

    /// Decides a trapped MSR/MRS of op0 = 2 (pure). The OS lock registers are emulated
    /// and `MDRAR_EL1` reads 0 in every state; a switched register loads the state and
    /// retries, unless the OS lock disables debug exceptions (then it is emulated
    /// against the vCPU's copy); see [`Outcome`].
    pub fn trap(&mut self, reg: SysRegAddr, read: bool, value: u64) -> Outcome {
        let Some(r) = DebugReg::decode(reg) else {
            return Outcome::Undef;
        };
        if !r.accessible(read) || !self.exists(r) {
            return Outcome::Undef;
        }
        match r.group() {
            Group::Rom => Outcome::Done(0),
            Group::OsLock => Outcome::Done(self.os_lock_access(r, read, value)),
            Group::Switched if self.loaded => Outcome::Unload,
            Group::Switched if !self.os.exceptions_disabled() => Outcome::Load,
            Group::Switched => {
                Outcome::Done(self.guest.emulate(r, read, value, &mut self.os, &self.caps))
            }
        }
    }

    /// [`trap`](Self::trap) for a switched register after the caller unloaded the state
    /// (the register trapped although loaded): emulated against the vCPU's copy.
    pub fn trap_unloaded(&mut self, reg: SysRegAddr, read: bool, value: u64) -> Outcome {
        match DebugReg::decode(reg) {
            Some(r) if r.accessible(read) && self.exists(r) => {
                Outcome::Done(self.guest.emulate(r, read, value, &mut self.os, &self.caps))
            }
            _ => Outcome::Undef,
        }
    }

    /// `OSLAR_EL1` (OSLK = bit 0 of the value written), `OSLSR_EL1`, `OSDLR_EL1` (DLK,
    /// RAZ/WI without FEAT_DoubleLock) and `DBGPRCR_EL1` (CORENPDRQ). Returns the value
    /// read.
    fn os_lock_access(&mut self, r: DebugReg, read: bool, value: u64) -> u64 {
        let os = &mut self.os;
        match (r, read) {
            (DebugReg::OsLar, false) => os.locked = value & 1 != 0,
            (DebugReg::OsLsr, true) => return oslsr(os.locked),
            (DebugReg::OsDlr, true) => return os.double_lock as u64,
            (DebugReg::OsDlr, false) => os.double_lock = self.view.double_lock && value & 1 != 0,
            (DebugReg::DbgPrcr, true) => return os.core_npdrq as u64,
            (DebugReg::DbgPrcr, false) => os.core_npdrq = value & 1 != 0,
            _ => {}
        }
        0
    }

    /// What the hardware must do after an OS lock register changed (pure).
    pub const fn reconcile(&self) -> Reconcile {
        if self.loaded && self.os.exceptions_disabled() {
            Reconcile::Unload
        } else if !self.loaded && self.load_at_bind() {
            Reconcile::Load
        } else {
            Reconcile::Keep
        }
    }
}

/// The moves between the hardware and the vCPU. Only the `hw::debug` calls touch the
/// hardware (aarch64 builds); on the host these keep the bookkeeping alone, so the
/// decisions above are tested as they run.
impl DebugSwitch {
    /// `MDSCR_EL1` as the guest sees it: the hardware's while its state is loaded,
    /// its saved copy otherwise (for the AArch32 EL0 views of the debug registers).
    pub(crate) fn guest_mdscr(&self) -> u64 {
        #[cfg(target_arch = "aarch64")]
        if self.loaded {
            return crate::hw::debug::mdscr();
        }
        self.guest.mdscr
    }

    /// Takes the VM's view and the core's capabilities (whenever the vCPU's view of
    /// its core is computed: first bind, another core, new stage-2 tables).
    pub(crate) fn set_view(&mut self, view: DebugView, caps: DebugCaps) {
        self.view = view;
        self.caps = caps;
    }

    /// At bind, before the EL2 controls are written: records the host's `MDCR_EL2`
    /// and `MDSCR_EL1`, and makes the physical `MDSCR_EL1` inert for the guest (the
    /// host's breakpoint registers stay in the hardware until the guest's are loaded).
    /// `mdcr` is the guest's `MDCR_EL2` with TDA set.
    pub(crate) fn bind(&mut self, mdcr: u64) {
        self.mdcr_trapping = mdcr | mdcr::TDA | mdcr::TDOSA | mdcr::TDRA;
        self.loaded = false;
        #[cfg(target_arch = "aarch64")]
        {
            self.host_mdcr = crate::hw::debug::mdcr_el2();
            self.host_mdscr = crate::hw::debug::mdscr();
            if self.host_mdscr != 0 {
                crate::hw::debug::set_mdscr(0);
            }
        }
    }

    /// Loads the vCPU's registers: saves the host's, unlocks the physical OS lock if
    /// the host had it locked, writes the vCPU's and stops trapping them (`MDCR_EL2`
    /// write and ISB).
    pub(crate) fn load(&mut self) {
        #[cfg(target_arch = "aarch64")]
        {
            use crate::hw::debug as hw;
            let c = self.view.counts;
            hw::save(&mut self.host, c, &self.caps, false);
            self.host_os_locked = hw::os_locked();
            hw::restore(&self.guest, c, &self.caps, true);
            hw::write_mdscr(self.guest.mdscr, self.host_os_locked, false);
            hw::set_mdcr_el2(self.mdcr_loaded());
        }
        self.loaded = true;
    }

    /// Saves the vCPU's registers and gives the hardware back to the host: its
    /// registers, its OS lock, and `MDSCR_EL1` = the host's own (`at_unbind`) or 0 (the
    /// vCPU stays bound, trapped again: `MDCR_EL2` with TDA).
    pub(crate) fn unload(&mut self, at_unbind: bool) {
        #[cfg(target_arch = "aarch64")]
        {
            use crate::hw::debug as hw;
            let c = self.view.counts;
            hw::save(&mut self.guest, c, &self.caps, true);
            self.guest.mdscr = hw::mdscr();
            hw::restore(&self.host, c, &self.caps, false);
            let mdscr = if at_unbind { self.host_mdscr } else { 0 };
            hw::write_mdscr(mdscr, false, self.host_os_locked);
            if !at_unbind {
                hw::set_mdcr_el2(self.mdcr_trapping);
            }
        }
        let _ = at_unbind;
        self.loaded = false;
    }

    /// At unbind: saves the vCPU's registers if loaded and restores the host's debug
    /// state (`MDSCR_EL1`, `MDCR_EL2`; the caller's ISB follows).
    pub(crate) fn unbind(&mut self) {
        if self.loaded {
            self.unload(true);
        } else {
            #[cfg(target_arch = "aarch64")]
            if self.host_mdscr != 0 {
                crate::hw::debug::set_mdscr(self.host_mdscr);
            }
        }
        #[cfg(target_arch = "aarch64")]
        crate::hw::debug::set_mdcr_el2_nosync(self.host_mdcr);
    }

    /// Changes the vCPU's `MDCR_EL2` bits other than TDA (the PMU's TPM, `crate::pmu`),
    /// in the trapping value and in the hardware (synchronised).
    pub(crate) fn update_mdcr(&mut self, set: u64, clear: u64) {
        self.mdcr_trapping = (self.mdcr_trapping | set) & !clear;
        #[cfg(target_arch = "aarch64")]
        crate::hw::debug::set_mdcr_el2(if self.loaded {
            self.mdcr_loaded()
        } else {
            self.mdcr_trapping
        });
    }

    /// Applies [`reconcile`](Self::reconcile) after an OS lock register changed.
    pub(crate) fn apply_lock_change(&mut self) {
        match self.reconcile() {
            Reconcile::Keep => {}
            Reconcile::Unload => self.unload(false),
            Reconcile::Load => self.load(),
        }
    }

    /// A debug register access the caller decoded itself as one `MDCR_EL2.TDA` traps —
    /// from AArch32 EL0: MRC/MCR (EC 0x05), LDC/STC (EC 0x06) or MRRC (EC 0x0C) to
    /// coprocessor 14 other than the OS lock registers. Loads the state if nothing
    /// keeps it unloaded and returns `true`: execute the instruction again, the
    /// hardware then answers it from the vCPU's registers. `false`: the OS lock holds
    /// it unloaded (or it is loaded already); the caller emulates or UNDEFs.
    // For the AArch32 EL0 trap handler (`self.dbg.first_use()` in vcpu.rs), which
    // decodes those classes; host-tested meanwhile.
    #[cfg_attr(target_arch = "aarch64", allow(dead_code))]
    pub(crate) fn first_use(&mut self) -> bool {
        if self.loaded || self.os.exceptions_disabled() {
            return false;
        }
        self.load();
        true
    }

    /// A trapped MSR/MRS of op0 = 2: decides it ([`trap`](Self::trap)) and carries it
    /// out. Returns `Done(value read)` when the instruction completed, `Load` when it
    /// must run again (the state is loaded now), or `Undef`.
    pub(crate) fn handle(&mut self, reg: SysRegAddr, read: bool, value: u64) -> Outcome {
        match self.trap(reg, read, value) {
            Outcome::Load => {
                self.load();
                Outcome::Load
            }
            Outcome::Unload => {
                self.unload(false);
                self.trap_unloaded(reg, read, value)
            }
            done @ Outcome::Done(_) => {
                if matches!(DebugReg::decode(reg), Some(r) if r.group() == Group::OsLock) && !read {
                    self.apply_lock_change();
                }
                done
            }
            Outcome::Undef => Outcome::Undef,
        }
    }
}
