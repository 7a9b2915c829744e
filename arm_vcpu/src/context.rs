//! Guest register state, grouped by when it is switched.
//!
//! * [`Aarch64ContextFrame`]: the general-purpose registers and the exception return
//!   state, saved and restored by the assembly world switch on every exit and entry.
//! * [`GuestSystemRegisters`]: EL1 system registers, timer, pointer-authentication
//!   keys and the per-VM EL2 controls, switched only at bind/unbind.
//! * [`FpSimdState`]: V0–V31, FPCR, FPSR, switched at bind/unbind.

use core::mem::{offset_of, size_of};

/// General-purpose register state of a vCPU (the "trap frame").
///
/// `gpr`, `elr` and `spsr` are saved on every exit and restored on every entry.
/// `sp_el0` is switched at bind/unbind only: the host runs at EL2 on `SP_EL2` and never
/// touches `SP_EL0`, so it stays live in the register while the vCPU is bound. Read it
/// with [`crate::Aarch64VCpu::sp_el0`].
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Aarch64ContextFrame {
    /// x0..x30.
    pub gpr: [u64; 31],
    /// `SP_EL0`.
    pub sp_el0: u64,
    /// `ELR_EL2`: where the guest resumes.
    pub elr: u64,
    /// `SPSR_EL2`: the guest's PSTATE.
    pub spsr: u64,
}

/// The trap frame type of this architecture.
pub type TrapFrame = Aarch64ContextFrame;

/// `SPSR_EL2` for a vCPU's first entry: EL1h (M\[3:0\] = 0b0101), D, A, I, F masked.
pub const SPSR_EL1H_DAIF_MASKED: u64 = 0x3c5;

impl Aarch64ContextFrame {
    /// A frame that enters `pc` at EL1h with all exceptions masked.
    pub const fn new_el1h(pc: u64) -> Self {
        Self {
            gpr: [0; 31],
            sp_el0: 0,
            elr: pc,
            spsr: SPSR_EL1H_DAIF_MASKED,
        }
    }
}

/// State the assembly sees while a guest runs. `SP_EL2` points at it from the guest
/// entry until the exit vector has saved the guest registers, so the vector needs no
/// scratch register and no system-register read to find it.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WorldSwitch {
    /// The guest registers; must be at offset 0.
    pub frame: Aarch64ContextFrame,
    /// The host's x19 and x29 at guest entry (inline asm cannot declare them clobbered).
    pub host_x19_x29: [u64; 2],
    /// The host's x30 (return address) and `SP_EL2` at guest entry.
    pub host_x30_sp: [u64; 2],
    /// `ESR_EL2` of an SError exit (synchronous exits return it in x0 instead).
    pub serror_esr: u64,
}

/// Offsets the assembly uses, all derived from the Rust layout.
pub(crate) mod offsets {
    use super::*;
    /// Offset of x0 in [`WorldSwitch`].
    pub const GPR: usize = offset_of!(WorldSwitch, frame) + offset_of!(Aarch64ContextFrame, gpr);
    /// Offset of `ELR_EL2` (followed by `SPSR_EL2`, stored as one pair).
    pub const ELR: usize = offset_of!(WorldSwitch, frame) + offset_of!(Aarch64ContextFrame, elr);
    /// Offset of `SPSR_EL2`.
    pub const SPSR: usize = offset_of!(WorldSwitch, frame) + offset_of!(Aarch64ContextFrame, spsr);
    /// Offset of the saved host x19, x29 pair.
    pub const HOST_X19: usize = offset_of!(WorldSwitch, host_x19_x29);
    /// Offset of the saved host x30, SP pair.
    pub const HOST_X30: usize = offset_of!(WorldSwitch, host_x30_sp);
    /// Offset of the SError syndrome.
    pub const SERROR_ESR: usize = offset_of!(WorldSwitch, serror_esr);
    /// Size of the host trap frame pushed by the current-EL vectors.
    pub const HOST_TRAP_FRAME: usize = size_of::<crate::percpu::HostTrapFrame>();
    /// Offset of `ELR_EL2` in the host trap frame.
    pub const HOST_ELR: usize = offset_of!(crate::percpu::HostTrapFrame, elr);
    /// Offset of `ESR_EL2` in the host trap frame.
    pub const HOST_ESR: usize = offset_of!(crate::percpu::HostTrapFrame, esr);

    // The vectors store the frame with SP-relative pairs: x0 must be at the base of
    // the structure SP points to, the GPRs contiguous, and ELR/SPSR one pair.
    const _: () = assert!(GPR == 0);
    const _: () = assert!(offset_of!(Aarch64ContextFrame, gpr) == 0);
    const _: () = assert!(SPSR == ELR + 8);
    const _: () = assert!(ELR.is_multiple_of(16));
    const _: () = assert!(size_of::<WorldSwitch>().is_multiple_of(16));
    const _: () = assert!(HOST_TRAP_FRAME.is_multiple_of(16));
    const _: () = assert!(offset_of!(crate::percpu::HostTrapFrame, gpr) == 0);
    const _: () = assert!(offset_of!(crate::percpu::HostTrapFrame, spsr) == HOST_ELR + 8);
    // Immediate offsets of LDP/STP (64-bit) must be multiples of 8 below 512.
    const _: () = assert!(
        ELR < 504 && HOST_X19 < 504 && HOST_X30 < 504 && SERROR_ESR < 504 && HOST_ESR < 504
    );
    const _: () = assert!(HOST_X19.is_multiple_of(8) && HOST_X30.is_multiple_of(8));
}

/// The EL1 system registers and per-VM EL2 controls of one vCPU, switched at
/// bind/unbind (never on an exit). Field names are the registers they hold.
#[allow(missing_docs)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestSystemRegisters {
    // EL1/EL0 system registers.
    pub sctlr_el1: u64,
    pub actlr_el1: u64,
    pub cpacr_el1: u64,
    pub ttbr0_el1: u64,
    pub ttbr1_el1: u64,
    pub tcr_el1: u64,
    pub mair_el1: u64,
    pub amair_el1: u64,
    pub vbar_el1: u64,
    pub contextidr_el1: u64,
    pub tpidr_el0: u64,
    pub tpidr_el1: u64,
    pub tpidrro_el0: u64,
    pub sp_el0: u64,
    pub sp_el1: u64,
    pub elr_el1: u64,
    pub spsr_el1: u64,
    pub esr_el1: u64,
    pub far_el1: u64,
    pub par_el1: u64,
    pub afsr0_el1: u64,
    pub afsr1_el1: u64,
    pub csselr_el1: u64,
    pub cntkctl_el1: u64,
    // Virtual timer, and the EL1 physical timer when it is passed through.
    pub cntv_ctl_el0: u64,
    pub cntv_cval_el0: u64,
    pub cntp_ctl_el0: u64,
    pub cntp_cval_el0: u64,
    // Pointer-authentication keys (only switched when FEAT_PAuth is implemented).
    pub apia_key: [u64; 2],
    pub apib_key: [u64; 2],
    pub apda_key: [u64; 2],
    pub apdb_key: [u64; 2],
    pub apga_key: [u64; 2],
    // Per-VM EL2 controls.
    pub hcr_el2: u64,
    pub vttbr_el2: u64,
    pub vtcr_el2: u64,
    pub vmpidr_el2: u64,
    pub vpidr_el2: u64,
    pub cptr_el2: u64,
    pub mdcr_el2: u64,
    pub cnthctl_el2: u64,
    pub cntvoff_el2: u64,
}

/// `SCTLR_EL1` at reset as a guest expects it: MMU and caches off, RES1 bits
/// (29, 28, 23, 22, 20, 11) set.
pub const SCTLR_EL1_RESET: u64 = 0x30d0_0800;

/// FP/SIMD state: V0–V31, FPCR, FPSR.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FpSimdState {
    /// V0..V31 as 128-bit values.
    pub v: [u128; 32],
    /// `FPCR`.
    pub fpcr: u64,
    /// `FPSR`.
    pub fpsr: u64,
}

/// Offsets of [`FpSimdState`] for the assembly.
pub(crate) mod fp_offsets {
    use super::*;
    /// Offset of `FPCR` (followed by `FPSR`).
    pub const FPCR: usize = offset_of!(FpSimdState, fpcr);
    const _: () = assert!(offset_of!(FpSimdState, v) == 0);
    const _: () = assert!(offset_of!(FpSimdState, fpsr) == FPCR + 8);
}
