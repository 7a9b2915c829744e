//! The typed exits that [`crate::Aarch64VCpu::run`] returns, and the pure function that
//! turns a captured syndrome plus the guest registers into one.

use crate::context::Aarch64ContextFrame;
use crate::esr::{
    self, DataAbortIss, ExceptionClass, FaultStatus, InstrAbortIss, Syndrome, SysRegIss,
};
use crate::smccc::{Conduit, PsciRequest};

/// Width of a memory access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessWidth {
    /// 1 byte.
    Byte = 1,
    /// 2 bytes.
    Half = 2,
    /// 4 bytes.
    Word = 4,
    /// 8 bytes.
    Dword = 8,
}

impl AccessWidth {
    /// From `ESR_EL2.ISS.SAS` (access size 1 << SAS bytes).
    pub const fn from_sas(sas: u8) -> Self {
        match sas & 3 {
            0 => Self::Byte,
            1 => Self::Half,
            2 => Self::Word,
            _ => Self::Dword,
        }
    }

    /// Size in bytes.
    pub const fn bytes(self) -> usize {
        self as usize
    }

    /// Mask of the access's bits.
    pub const fn mask(self) -> u64 {
        match self {
            Self::Dword => u64::MAX,
            w => (1u64 << (w as u32 * 8)) - 1,
        }
    }
}

/// A system register encoding `(op0, op1, CRn, CRm, op2)`, packed as in the ISS of a
/// trapped MSR/MRS: op0 \[21:20\], op2 \[19:17\], op1 \[16:14\], CRn \[13:10\], CRm \[4:1\].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SysRegAddr(pub u32);

impl SysRegAddr {
    /// Packs an encoding.
    pub const fn new(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> Self {
        Self(
            ((op0 as u32 & 3) << 20)
                | ((op2 as u32 & 7) << 17)
                | ((op1 as u32 & 7) << 14)
                | ((crn as u32 & 0xf) << 10)
                | ((crm as u32 & 0xf) << 1),
        )
    }

    /// From the ISS of a trapped MSR/MRS (Rt and direction are dropped).
    pub const fn from_iss(iss: u32) -> Self {
        Self(iss & 0x003f_fc1e)
    }

    /// op0.
    pub const fn op0(self) -> u8 {
        ((self.0 >> 20) & 3) as u8
    }
    /// op1.
    pub const fn op1(self) -> u8 {
        ((self.0 >> 14) & 7) as u8
    }
    /// CRn.
    pub const fn crn(self) -> u8 {
        ((self.0 >> 10) & 0xf) as u8
    }
    /// CRm.
    pub const fn crm(self) -> u8 {
        ((self.0 >> 1) & 0xf) as u8
    }
    /// op2.
    pub const fn op2(self) -> u8 {
        ((self.0 >> 17) & 7) as u8
    }

    /// `ID_AA64PFR0_EL1` (S3_0_C0_C4_0).
    pub const ID_AA64PFR0_EL1: Self = Self::new(3, 0, 0, 4, 0);
    /// `ID_AA64DFR0_EL1` (S3_0_C0_C5_0).
    pub const ID_AA64DFR0_EL1: Self = Self::new(3, 0, 0, 5, 0);
    /// `ID_AA64ISAR0_EL1` (S3_0_C0_C6_0).
    pub const ID_AA64ISAR0_EL1: Self = Self::new(3, 0, 0, 6, 0);
    /// `ID_AA64MMFR0_EL1` (S3_0_C0_C7_0).
    pub const ID_AA64MMFR0_EL1: Self = Self::new(3, 0, 0, 7, 0);
}

/// What kind of stage-2 fault stopped the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stage2Fault {
    /// No stage-2 mapping (translation fault) at the given level.
    Translation(u8),
    /// Mapping present but the access flag is clear.
    AccessFlag(u8),
    /// Mapping present but the access is not permitted.
    Permission(u8),
    /// Any other fault status (address size, external abort, alignment, ...).
    Other(FaultStatus),
}

impl Stage2Fault {
    const fn from_status(s: FaultStatus) -> Self {
        match s {
            FaultStatus::Translation(l) => Self::Translation(l),
            FaultStatus::AccessFlag(l) => Self::AccessFlag(l),
            FaultStatus::Permission(l) => Self::Permission(l),
            other => Self::Other(other),
        }
    }
}

/// Why [`crate::Aarch64VCpu::run`] returned.
///
/// `#[non_exhaustive]`: a later version may report more kinds of exit, so a host's
/// `match` ends with a catch-all arm (for instance one that stops the VM).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[must_use = "an exit says what the guest waits for: a read to complete, a PSCI call to answer"]
pub enum VmExit {
    /// `HVC #imm` from AArch64 (EC 0x16). `args` are x0..x6; the PC already points
    /// after the HVC. Set results with `set_gpr`/`set_return_value` and call `run()`.
    Hypercall {
        /// The HVC immediate.
        imm: u16,
        /// x0..x6 at the time of the call.
        args: [u64; 7],
    },
    /// `SMC #imm` from AArch64, trapped by `HCR_EL2.TSC` (EC 0x17). The PC is advanced
    /// past the SMC when `run()` is next called.
    SecureMonitorCall {
        /// The SMC immediate.
        imm: u16,
        /// x0..x6 at the time of the call.
        args: [u64; 7],
    },
    /// A load from an unmapped guest-physical address with a valid syndrome.
    /// Complete with [`crate::Aarch64VCpu::complete_mmio_read`].
    MmioRead {
        /// Guest-physical address (page from HPFAR_EL2, offset from FAR_EL2).
        addr: u64,
        /// Access width.
        width: AccessWidth,
        /// Destination register number (31 = XZR: the value is discarded).
        reg: u8,
        /// The destination is a 64-bit X register (otherwise a 32-bit W register).
        reg_64bit: bool,
        /// The load sign-extends (LDRSB/LDRSH/LDRSW).
        sign_extend: bool,
    },
    /// A store to an unmapped guest-physical address with a valid syndrome. The PC is
    /// advanced past the store when `run()` is next called.
    MmioWrite {
        /// Guest-physical address.
        addr: u64,
        /// Access width.
        width: AccessWidth,
        /// The stored value, truncated to `width` (0 for XZR/WZR).
        data: u64,
    },
    /// A trapped `MRS` (EC 0x18, direction read). Complete with
    /// [`crate::Aarch64VCpu::complete_sysreg_read`].
    SysRegRead {
        /// The register's encoding.
        reg: SysRegAddr,
        /// Destination register (31 = XZR: discarded).
        rt: u8,
    },
    /// A trapped `MSR` (EC 0x18, direction write). The PC is advanced when `run()` is
    /// next called.
    SysRegWrite {
        /// The register's encoding.
        reg: SysRegAddr,
        /// The written value (0 for XZR).
        value: u64,
    },
    /// A PSCI call the host must carry out (CPU_ON, CPU_OFF, CPU_SUSPEND,
    /// AFFINITY_INFO, SYSTEM_OFF, SYSTEM_RESET), arguments validated. Complete it with
    /// [`crate::Aarch64VCpu::complete_psci`] (except a successful CPU_OFF, SYSTEM_OFF
    /// or SYSTEM_RESET, after which the vCPU is not run again).
    Psci {
        /// The call.
        request: PsciRequest,
        /// HVC or SMC.
        conduit: Conduit,
    },
    /// The guest wrote an SGI generation register (`ICC_SGI1R_EL1`, `ICC_ASGI1R_EL1`,
    /// `ICC_SGI0R_EL1`; trapped while the virtual GIC is in use): deliver SGI
    /// `request.intid` to the targets with `inject_interrupt`. The PC is advanced on the
    /// next `run()`.
    SendSgi {
        /// The decoded request.
        request: crate::vgic::SgiRequest,
    },
    /// A physical IRQ (or FIQ, `fiq = true`) arrived while the guest ran. The crate
    /// does not acknowledge it: the host's interrupt controller driver does.
    ExternalInterrupt {
        /// It was an FIQ rather than an IRQ.
        fiq: bool,
    },
    /// A trapped WFI (`trap_wfi`): the host may deschedule the vCPU until an interrupt
    /// is due. The PC is advanced past the WFI when `run()` is next called.
    WaitForInterrupt,
    /// A trapped WFE (`trap_wfe`): the host may yield. The PC is advanced past the WFE
    /// when `run()` is next called.
    WaitForEvent,
    /// A stage-2 data abort that cannot be emulated from its syndrome (ISV = 0: load
    /// or store pair, writeback, SIMD, atomics; or a walk / cache-maintenance fault).
    /// The PC still points at the instruction.
    DataAbort {
        /// Guest-physical address (page offset included only if `far_valid`).
        ipa: u64,
        /// `FAR_EL2` was valid, so `ipa` and `va` include the page offset.
        far_valid: bool,
        /// The faulting guest virtual address (`FAR_EL2`).
        va: u64,
        /// The access was a write (WnR).
        write: bool,
        /// The fault was on a stage-1 table walk (S1PTW).
        s1ptw: bool,
        /// The kind of fault.
        fault: Stage2Fault,
        /// The raw `ESR_EL2`.
        esr: u64,
    },
    /// A stage-2 instruction abort (fetch from an unmapped or non-executable IPA).
    InstructionAbort {
        /// Guest-physical address of the fetch.
        ipa: u64,
        /// The faulting guest virtual address (`FAR_EL2`).
        va: u64,
        /// The kind of fault.
        fault: Stage2Fault,
        /// The raw `ESR_EL2`.
        esr: u64,
    },
    /// An SError was taken to EL2 while the guest ran (`HCR_EL2.AMO`).
    SError {
        /// `ESR_EL2`.
        esr: u64,
    },
    /// Any other exception class (e.g. a trapped SVE or pointer-authentication use, or
    /// an AArch32 EL0 coprocessor access the crate does not emulate — only with
    /// `TrapPolicy::ExitToHost`; [`crate::aarch32`] decodes it). The PC still points at
    /// the instruction.
    Unhandled {
        /// The raw `ESR_EL2`.
        esr: u64,
        /// The exception class, when the crate has a name for it.
        class: Option<ExceptionClass>,
    },
}

/// What must happen before the guest resumes, decided when an exit is decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum Pending {
    /// Nothing: resume at ELR as it is.
    #[default]
    None,
    /// Advance the PC by this many bytes (the instruction was emulated).
    Advance(u8),
    /// A load waits for its value: write it to its register, extended, then advance.
    MmioRead(MmioLoad),
    /// An MRS waits for its value.
    SysRegRead { rt: u8, len: u8 },
    /// The host changed the frame: check the SPSR before entering.
    CheckFrame,
    /// A PSCI call waits for its result; then the PC advances by `advance` (4 after an
    /// SMC, whose ELR points at the SMC; 0 after an HVC).
    Psci { request: PsciRequest, advance: u8 },
}

/// An emulated load waiting for its value: the fields of its data-abort syndrome the
/// completion needs, kept where `ESR_EL2` has them — IL \[25\] (instruction length),
/// SAS \[23:22\], SSE \[21\], SRT \[20:16\] and SF \[15\] — so that recording it at
/// the exit is one store and the completion decodes it with shifts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MmioLoad(u32);

impl MmioLoad {
    /// `ESR_EL2` bits kept.
    const FIELDS: u32 = (1 << 25) | (3 << 22) | (1 << 21) | (0x1f << 16) | (1 << 15);

    /// From the syndrome of a data abort with a valid instruction syndrome (ISV = 1).
    #[inline(always)]
    pub(crate) const fn from_esr(esr: u64) -> Self {
        Self(esr as u32 & Self::FIELDS)
    }

    /// From its fields (`reg` 0..=31, `len` 2 or 4).
    pub(crate) const fn new(
        reg: u8,
        width: AccessWidth,
        reg_64bit: bool,
        sign_extend: bool,
        len: u8,
    ) -> Self {
        let sas = match width {
            AccessWidth::Byte => 0,
            AccessWidth::Half => 1,
            AccessWidth::Word => 2,
            AccessWidth::Dword => 3,
        };
        Self(
            ((len == 4) as u32) << 25
                | sas << 22
                | (sign_extend as u32) << 21
                | (reg as u32 & 0x1f) << 16
                | (reg_64bit as u32) << 15,
        )
    }

    /// The destination register (SRT; 31 = XZR).
    #[inline(always)]
    pub(crate) const fn reg(self) -> u8 {
        ((self.0 >> 16) & 0x1f) as u8
    }

    /// The access width (SAS).
    #[inline(always)]
    pub(crate) const fn width(self) -> AccessWidth {
        AccessWidth::from_sas((self.0 >> 22) as u8)
    }

    /// The destination is an X register (SF).
    #[inline(always)]
    pub(crate) const fn reg_64bit(self) -> bool {
        self.0 & (1 << 15) != 0
    }

    /// The load sign-extends (SSE).
    #[inline(always)]
    pub(crate) const fn sign_extend(self) -> bool {
        self.0 & (1 << 21) != 0
    }

    /// The load instruction's length in bytes (IL: 4, or 2 for a 16-bit T32 one).
    #[inline(always)]
    pub(crate) const fn len(self) -> u8 {
        // 2 + 2 * IL.
        2 + ((self.0 >> 24) & 2) as u8
    }

    /// `value`'s low `8 << SAS` bits, sign-extended to 64 (`Self::extend`).
    #[cold]
    #[inline(never)]
    const fn sign_extended(self, value: u64) -> u64 {
        let shift = 64 - (8u32 << ((self.0 >> 22) & 3));
        (((value << shift) as i64) >> shift) as u64
    }

    /// Completes the load with `value`: its register (none for XZR) gets
    /// [`Self::extend`]ed `value`, the PC moves past the load ([`Self::len`]; either
    /// Execution state) and `SPSR_EL2.SS` is cleared.
    #[inline(always)]
    pub(crate) fn complete(self, frame: &mut Aarch64ContextFrame, value: u64) {
        let reg = self.reg();
        if reg < 31 {
            frame.gpr[reg as usize] = self.extend(value);
        }
        crate::debug::complete_instruction(frame, self.len() as u64);
    }

    /// [`Self::complete`] for a load from AArch64 state, which is 4 bytes long (no
    /// AArch32 PC wrap or IT state to look at; IL is 1, as `is_fast_mmio` checked).
    /// `width` is the load's ([`Self::width`], which the caller has at hand: the
    /// zero extension's shift is then one negation of it).
    #[inline(always)]
    pub(crate) fn complete_aarch64(
        self,
        frame: &mut Aarch64ContextFrame,
        value: u64,
        width: AccessWidth,
    ) {
        // XZR (31) is no slot: discarded.
        if let Some(r) = frame.gpr.get_mut(self.reg() as usize) {
            let v = if self.sign_extend() {
                self.sign_extended(value)
            } else {
                // 64 - 8 * bytes, modulo 64 as the shifts take it.
                let shift = (width.bytes() as u32 * 8).wrapping_neg();
                value.wrapping_shl(shift).wrapping_shr(shift)
            };
            *r = if self.reg_64bit() { v } else { v & 0xffff_ffff };
        }
        complete_aarch64_access(frame, 4);
    }

    /// `value` as the load leaves it in its register: `extend_load` (the tests'
    /// reference) with this load's width, SSE and SF, as a shift pair (`64 - 8 << SAS`
    /// bits up, then back down arithmetically for SSE, logically otherwise) and a mask
    /// for a W register.
    /// (The sign-extending loads, LDRSB/LDRSH/LDRSW, are the rare ones: out of line,
    /// so the common load is one shift pair with no select.)
    #[inline(always)]
    pub(crate) const fn extend(self, value: u64) -> u64 {
        let v = if self.sign_extend() {
            self.sign_extended(value)
        } else {
            // 64 - (8 << SAS), modulo 64 as the shifts take it.
            let shift = (8u32 << ((self.0 >> 22) & 3)).wrapping_neg();
            value.wrapping_shl(shift).wrapping_shr(shift)
        };
        if self.reg_64bit() {
            v
        } else {
            v & 0xffff_ffff
        }
    }
}

/// Exits a host serves inside [`crate::Aarch64VCpu::run_with`], without an exit: its
/// hottest hypercalls ([`Self::hvc0`]) and devices that need nothing of the vCPU and
/// no lock (an in-kernel device, in KVM's terms: [`Self::read`], [`Self::write`]).
/// Each method is offered the event first and answers whether it served it; what it
/// declines (every default does) is the exit [`crate::Aarch64VCpu::run`] returns. They
/// run on the exit path, with the vCPU bound and the guest's state not yet saved
/// anywhere else: they must not block.
pub trait InlineExits {
    /// An `HVC #0` from AArch64 with the guest's x0..x30 in `x`: `true` completes it
    /// (the guest resumes after the HVC with `x` as left here; nothing to advance: an
    /// HVC's preferred return is the next instruction), `false` lets it go on as in
    /// `run()` (the crate's SMCCC/PSCI calls, or a [`VmExit::Hypercall`]). Return
    /// `false` for the function IDs the crate owns (SMCCC owners 0, the architecture's,
    /// and 4, PSCI).
    #[inline(always)]
    fn hvc0(&mut self, x: &mut [u64; 31]) -> bool {
        let _ = x;
        false
    }
    /// An emulatable load of `width` at guest-physical `addr` from AArch64 state (one
    /// that would be a [`VmExit::MmioRead`]): `Some(value)` serves it — its register
    /// gets `value` truncated to the width and extended as the instruction says (as
    /// [`crate::Aarch64VCpu::complete_mmio_read`] does), the PC moves past it and
    /// `SPSR_EL2.SS` is cleared — `None` makes it the exit.
    #[inline(always)]
    fn read(&mut self, addr: u64, width: AccessWidth) -> Option<u64> {
        let _ = (addr, width);
        None
    }
    /// An emulatable store of `data` (truncated to `width`; 0 from XZR) at `addr`:
    /// `true` serves it (the PC moves past it), `false` makes it a
    /// [`VmExit::MmioWrite`] exit.
    #[inline(always)]
    fn write(&mut self, addr: u64, width: AccessWidth, data: u64) -> bool {
        let _ = (addr, width, data);
        false
    }
}

/// Nothing served inside `run()`: every event is an exit ([`crate::Aarch64VCpu::run`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoInlineExits;

impl InlineExits for NoInlineExits {}

/// `debug::complete_aarch64_instruction` for an access served inside `run()`: the
/// same frame, written SPSR first (the ID-register fast path's tail writes ELR first;
/// the same tail would be merged into one, a branch more on that path).
#[inline(always)]
fn complete_aarch64_access(frame: &mut Aarch64ContextFrame, len: u64) {
    frame.spsr &= !crate::debug::SPSR_SS;
    frame.elr = frame.elr.wrapping_add(len);
}

/// Whether `code` (what the exit vector returns: `ESR_EL2`, bit 63 clear) is a data
/// abort from a lower EL (EC 0x24) that [`mmio_access`] emulates: ISV = 1, FnV = 0,
/// EA = 0, CM = 0, S1PTW = 0, and a translation, access flag or permission fault
/// (DFSC 0b0001LL, 0b0010LL, 0b0011LL), of a 32-bit instruction (IL = 1: every one
/// from AArch64 state, the only state the fast path takes; in the same mask test).
/// Exactly the aborts `decode_sync` turns into `MmioRead`/`MmioWrite` (tested on
/// every ISS bit pattern that matters), except one with ISS2 (bits \[36:32\]) set or
/// IL = 0, which takes the generic path (it decodes the same).
#[inline(always)]
pub(crate) const fn is_fast_mmio(code: u64) -> bool {
    code >> 26 == 0x24 && is_fast_mmio_iss(code)
}

/// The ISS half of [`is_fast_mmio`], for a caller that has matched EC 0x24 already.
#[inline(always)]
pub(crate) const fn is_fast_mmio_iss(code: u64) -> bool {
    // IL and ISV set; FnV, EA, CM and S1PTW (bits [10:7]) clear; DFSC 0x04..=0x0f:
    // bits [5:4] clear and bits [3:2] not both clear.
    code & (3 << 24) == 3 << 24 && code & 0x780 == 0 && code & 0x30 == 0 && code & 0x0c != 0
}

/// The exit and pending completion of an emulatable data abort (one `is_fast_mmio`
/// accepts, or `decode_sync`'s equivalent test): a load waits for its value, a store
/// carries its data (truncated to the width; XZR stores 0) and advances the PC by the
/// instruction's length when the guest resumes. `fault_ipa` is the IPA with the page
/// offset (FnV = 0).
#[inline(always)]
pub(crate) fn mmio_access(esr: u64, addr: u64, frame: &Aarch64ContextFrame) -> (VmExit, Pending) {
    let width = AccessWidth::from_sas((esr >> 22) as u8);
    let srt = ((esr >> 16) & 0x1f) as u8;
    if esr & (1 << 6) != 0 {
        // WnR: a store.
        let data = operand(frame, srt) & width.mask();
        (
            VmExit::MmioWrite { addr, width, data },
            Pending::Advance(esr::instruction_length(esr) as u8),
        )
    } else {
        (
            VmExit::MmioRead {
                addr,
                width,
                reg: srt,
                reg_64bit: esr & (1 << 15) != 0,
                sign_extend: esr & (1 << 21) != 0,
            },
            Pending::MmioRead(MmioLoad::from_esr(esr)),
        )
    }
}

/// An emulatable access from AArch64 state (an abort `is_fast_mmio` accepts: IL = 1)
/// offered to devices served inside `run()`: `true` when `dev` served it and the
/// frame is complete (a load's value in its register, the PC past the 4-byte
/// instruction, `SPSR_EL2.SS` clear); `false`, the frame untouched, when it is
/// [`mmio_access`]'s exit.
#[inline(always)]
pub(crate) fn serve_mmio_aarch64(
    esr: u64,
    addr: u64,
    frame: &mut Aarch64ContextFrame,
    dev: &mut impl InlineExits,
) -> bool {
    let width = AccessWidth::from_sas((esr >> 22) as u8);
    if esr & (1 << 6) != 0 {
        let data = operand(frame, ((esr >> 16) & 0x1f) as u8) & width.mask();
        if !dev.write(addr, width, data) {
            return false;
        }
        complete_aarch64_access(frame, 4);
        return true;
    }
    match dev.read(addr, width) {
        Some(value) => {
            MmioLoad::from_esr(esr).complete_aarch64(frame, value, width);
            true
        }
        None => false,
    }
}

/// Extends a value loaded by an emulated MMIO read the way the load instruction
/// would: truncate to the access width, sign-extend if SSE, and for a W destination
/// clear bits \[63:32\] (writes to a W register zero-extend into the X register).
/// The reference [`MmioLoad::extend`] is tested against.
#[cfg(test)]
#[must_use]
pub const fn extend_load(
    value: u64,
    width: AccessWidth,
    sign_extend: bool,
    reg_64bit: bool,
) -> u64 {
    let bits = width as u32 * 8;
    let v = value & width.mask();
    let v = if sign_extend && bits < 64 {
        let shift = 64 - bits;
        (((v << shift) as i64) >> shift) as u64
    } else {
        v
    };
    if reg_64bit {
        v
    } else {
        v & 0xffff_ffff
    }
}

/// Reads register `n` of the frame as an instruction operand: n = 31 is XZR (0).
#[inline(always)]
pub(crate) const fn operand(frame: &Aarch64ContextFrame, n: u8) -> u64 {
    if n >= 31 {
        0
    } else {
        frame.gpr[n as usize]
    }
}

#[inline(always)]
fn args(frame: &Aarch64ContextFrame) -> [u64; 7] {
    [
        frame.gpr[0],
        frame.gpr[1],
        frame.gpr[2],
        frame.gpr[3],
        frame.gpr[4],
        frame.gpr[5],
        frame.gpr[6],
    ]
}

/// Turns a synchronous exit's syndrome into the exit the host sees and what must
/// happen before the guest resumes. Pure: all hardware state comes in `syn` and
/// `frame`. Never panics, whatever the syndrome.
pub(crate) fn decode_sync(syn: &Syndrome, frame: &Aarch64ContextFrame) -> (VmExit, Pending) {
    let esr = syn.esr;
    let len = esr::instruction_length(esr) as u8;
    // Match the raw class number: the common classes are found without building the
    // `ExceptionClass` (only `Unhandled` needs it).
    match esr::ec(esr) {
        0x16 => (
            VmExit::Hypercall {
                imm: esr::imm16(esr),
                args: args(frame),
            },
            Pending::None,
        ),
        0x17 => (
            VmExit::SecureMonitorCall {
                imm: esr::imm16(esr),
                args: args(frame),
            },
            // ELR_EL2 points at the SMC itself (preferred return address of the trap).
            Pending::Advance(4),
        ),
        0x24 => {
            let iss = DataAbortIss::decode(esr);
            if iss.is_emulatable_mmio() && !iss.fnv {
                mmio_access(esr, syn.fault_ipa(true), frame)
            } else {
                (
                    VmExit::DataAbort {
                        ipa: syn.fault_ipa(!iss.fnv),
                        far_valid: !iss.fnv,
                        va: syn.far,
                        write: iss.wnr,
                        s1ptw: iss.s1ptw,
                        fault: Stage2Fault::from_status(iss.dfsc),
                        esr,
                    },
                    Pending::None,
                )
            }
        }
        0x20 => {
            let iss = InstrAbortIss::decode(esr);
            (
                VmExit::InstructionAbort {
                    ipa: syn.fault_ipa(!iss.fnv),
                    va: syn.far,
                    fault: Stage2Fault::from_status(iss.ifsc),
                    esr,
                },
                Pending::None,
            )
        }
        0x18 => {
            let iss = SysRegIss::decode(esr);
            let reg = SysRegAddr::from_iss(esr::iss(esr));
            if iss.read {
                (
                    VmExit::SysRegRead { reg, rt: iss.rt },
                    Pending::SysRegRead { rt: iss.rt, len },
                )
            } else {
                let value = operand(frame, iss.rt);
                (VmExit::SysRegWrite { reg, value }, Pending::Advance(len))
            }
        }
        0x01 => {
            // The trapped WFx is complete from the guest's point of view once the host
            // has decided when to resume it; skip it now.
            let exit = match esr::wfx_kind(esr) {
                esr::WfxKind::Wfi | esr::WfxKind::Wfit => VmExit::WaitForInterrupt,
                _ => VmExit::WaitForEvent,
            };
            (exit, Pending::Advance(len))
        }
        ec => (
            VmExit::Unhandled {
                esr,
                class: ExceptionClass::from_bits(ec),
            },
            Pending::None,
        ),
    }
}
