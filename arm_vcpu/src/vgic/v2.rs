//! GICv2 virtual CPU interface (IHI 0048B, chapter 5 "GIC Support for
//! Virtualization"): the GICH virtual interface control frame (MMIO), its list-register
//! and VMCR formats, the backend over the frame ([`Gich`], generic over the MMIO
//! access so the host tests run it on a fake frame), and the decoder of the guest's
//! SGI requests, which on GICv2 are distributor writes (`GICD_SGIR`) the host sees as
//! MMIO exits.
//!
//! # What the host maps for a GICv2 guest
//! * **Virtual interrupts** (the crate's list registers): the host's **GICV** frame
//!   (the virtual CPU interface, 8 KiB: `GICV_DIR` is at 0x1000) mapped at stage 2
//!   where the guest's device tree puts its **GICC**; the distributor emulated (MMIO
//!   exits; [`decode_sgir`] for `GICD_SGIR`); the **GICH** frame mapped at EL2 only
//!   (Device memory) and handed to
//!   [`Aarch64PerCpu::set_gicv2_interface`](crate::Aarch64PerCpu::set_gicv2_interface).
//!   The crate owns GICH: it switches `GICH_LR<n>`, `GICH_VMCR`, `GICH_APR` and
//!   `GICH_HCR` at bind/unbind.
//! * **Passthrough** (`passthrough_interrupt`: `HCR_EL2.IMO/FMO` clear, the guest
//!   takes the physical interrupts itself): the physical **GICC** frame (8 KiB) at the
//!   guest's GICC address and the physical GICD at its GICD address. The virtual
//!   interface is not used (`GICH_HCR.En` stays 0); the crate switches nothing of GICH.
//!   Mapping GICV there instead would not work: with IMO clear no virtual interrupt
//!   is ever signalled, and the guest's `GICC_IAR` reads would find none.

use super::list_registers::{
    all_empty, lr_mask, ListEntry, ListRegisters, LrFormat, LrState, VgicRegisters,
};
use super::{InjectIrqError, VgicState, VirtualMachineControl, VtrInfo};

/// Register offsets in the GICH frame (IHI 0048B, table 5-1).
pub mod gich {
    /// Hypervisor Control Register.
    pub const HCR: usize = 0x000;
    /// VGIC Type Register.
    pub const VTR: usize = 0x004;
    /// Virtual Machine Control Register.
    pub const VMCR: usize = 0x008;
    /// Maintenance Interrupt Status Register.
    pub const MISR: usize = 0x010;
    /// End of Interrupt Status Registers (LRs 0–31, 32–63).
    pub const EISR0: usize = 0x020;
    /// LRs 32–63.
    pub const EISR1: usize = 0x024;
    /// Empty List Register Status Registers (LRs 0–31, 32–63).
    pub const ELRSR0: usize = 0x030;
    /// LRs 32–63.
    pub const ELRSR1: usize = 0x034;
    /// Active Priorities Register.
    pub const APR: usize = 0x0f0;
    /// List Register 0; `LR<n>` is at `LR0 + 4 n`, n < 64.
    pub const LR0: usize = 0x100;
    /// Size of the frame's register space.
    pub const SIZE: usize = 0x200;
}

/// `GICH_LR<n>` fields (IHI 0048B, 5.3.11).
pub mod lr {
    /// VirtualID \[9:0\].
    pub const VIRTUAL_ID: u32 = 0x3ff;
    /// PhysicalID \[19:10\] when HW = 1.
    pub const PHYSICAL_SHIFT: u32 = 10;
    /// HW = 0: CPUID \[12:10\], the source CPU of an SGI.
    pub const CPUID_SHIFT: u32 = 10;
    /// HW = 0: EOI \[19\], a maintenance interrupt when the guest deactivates it.
    pub const EOI: u32 = 1 << 19;
    /// Priority \[27:23\] (the top 5 bits of an 8-bit priority).
    pub const PRIORITY_SHIFT: u32 = 23;
    /// State \[29:28\].
    pub const STATE_SHIFT: u32 = 28;
    /// State: pending.
    pub const PENDING: u32 = 1 << 28;
    /// State: active.
    pub const ACTIVE: u32 = 2 << 28;
    /// Grp1 \[30\].
    pub const GROUP1: u32 = 1 << 30;
    /// HW \[31\].
    pub const HW: u32 = 1 << 31;
}

/// Largest INTID a GICv2 list register holds (1020–1023 are special).
pub const MAX_INTID: u32 = 1019;
/// Most list registers `GICH_VTR.ListRegs` can describe (the crate uses the first
/// [`super::MAX_LRS`]).
pub const MAX_LRS: usize = 64;
/// CPU interfaces of a GICv2 (SGI targets and sources are 3-bit numbers).
pub const MAX_CPUS: usize = 8;

/// Encodes `GICH_LR<n>`. Fails for a virtual INTID above 1019 ([`InjectIrqError::
/// InvalidIntid`], never truncated to 10 bits), a physical INTID outside 16–1019 or
/// a link combined with a source CPU or EOI ([`InjectIrqError::InvalidHwIntid`]), a
/// source CPU of 8 or more, or one on an interrupt that is not an SGI
/// ([`InjectIrqError::InvalidSourceCpu`]). The priority keeps its top 5 bits.
#[inline]
pub fn encode_lr(e: &ListEntry) -> Result<u32, InjectIrqError> {
    if e.intid > MAX_INTID {
        return Err(InjectIrqError::InvalidIntid);
    }
    if e.source_cpu as usize >= MAX_CPUS || (e.source_cpu != 0 && e.intid >= 16) {
        return Err(InjectIrqError::InvalidSourceCpu);
    }
    let mut v = e.intid
        | ((e.priority as u32 >> 3) << lr::PRIORITY_SHIFT)
        | ((e.state.bits() as u32) << lr::STATE_SHIFT);
    if e.group1 {
        v |= lr::GROUP1;
    }
    match e.hw_intid {
        Some(p) => {
            if !(16..=MAX_INTID).contains(&p) || e.source_cpu != 0 || e.eoi_maintenance {
                return Err(InjectIrqError::InvalidHwIntid);
            }
            v |= lr::HW | (p << lr::PHYSICAL_SHIFT);
        }
        None => {
            v |= (e.source_cpu as u32) << lr::CPUID_SHIFT;
            if e.eoi_maintenance {
                v |= lr::EOI;
            }
        }
    }
    Ok(v)
}

/// Decodes `GICH_LR<n>` (reserved bits ignored).
pub const fn decode_lr(v: u32) -> ListEntry {
    let hw = v & lr::HW != 0;
    ListEntry {
        intid: v & lr::VIRTUAL_ID,
        priority: (((v >> lr::PRIORITY_SHIFT) & 0x1f) << 3) as u8,
        group1: v & lr::GROUP1 != 0,
        state: LrState::from_bits((v >> lr::STATE_SHIFT) as u64),
        hw_intid: if hw {
            Some((v >> lr::PHYSICAL_SHIFT) & 0x3ff)
        } else {
            None
        },
        source_cpu: if hw {
            0
        } else {
            ((v >> lr::CPUID_SHIFT) & 7) as u8
        },
        eoi_maintenance: !hw && v & lr::EOI != 0,
    }
}

/// Decodes `GICH_VTR` (IHI 0048B 5.3.2): ListRegs \[5:0\] + 1, PREbits \[28:26\] + 1,
/// PRIbits \[31:29\] + 1; virtual INTIDs are 10 bits (0–1019).
pub const fn decode_vtr(v: u32) -> VtrInfo {
    VtrInfo {
        list_regs: (v & 0x3f) as usize + 1,
        pri_bits: ((v >> 29) & 7) + 1,
        pre_bits: ((v >> 26) & 7) + 1,
        id_bits: 10,
    }
}

/// Decodes `GICH_VMCR` (IHI 0048B 5.3.3): VMGrp0En \[0\], VMGrp1En \[1\], VMAckCtl
/// \[2\], VMFIQEn \[3\], VMCBPR \[4\], VEM \[9\], VMABP \[20:18\] (the aliased, Group 1
/// binary point), VMBP \[23:21\], VMPriMask \[31:27\]: **5 bits** at \[31:27\] where
/// `ICH_VMCR_EL2.VPMR` is 8 bits at \[31:24\] (bits \[26:24\] are reserved here).
pub const fn decode_vmcr(v: u32) -> VirtualMachineControl {
    VirtualMachineControl {
        grp0_enable: v & 1 != 0,
        grp1_enable: v & 2 != 0,
        ack_ctl: v & 4 != 0,
        fiq_enable: v & 8 != 0,
        common_bpr: v & 0x10 != 0,
        eoi_mode: v & (1 << 9) != 0,
        bpr1: ((v >> 18) & 7) as u8,
        bpr0: ((v >> 21) & 7) as u8,
        priority_mask: (((v >> 27) & 0x1f) << 3) as u8,
    }
}

/// Encodes `GICH_VMCR` (the priority mask keeps its top 5 bits).
pub const fn encode_vmcr(c: &VirtualMachineControl) -> u32 {
    (c.grp0_enable as u32)
        | (c.grp1_enable as u32) << 1
        | (c.ack_ctl as u32) << 2
        | (c.fiq_enable as u32) << 3
        | (c.common_bpr as u32) << 4
        | (c.eoi_mode as u32) << 9
        | ((c.bpr1 & 7) as u32) << 18
        | ((c.bpr0 & 7) as u32) << 21
        | ((c.priority_mask >> 3) as u32) << 27
}

/// 32-bit access to a GICH frame (the hardware in `hw/gich.rs`, a fake frame in the
/// host tests). Offsets are those of [`gich`].
pub trait Mmio32 {
    /// Reads the register at `off`.
    fn read32(&mut self, off: usize) -> u32;
    /// Writes the register at `off`.
    fn write32(&mut self, off: usize, v: u32);
}

/// The GICv2 virtual interface control of the calling core (its GICH frame), shaped
/// as `GICH_VTR` said.
#[derive(Debug)]
pub struct Gich<M> {
    /// The frame.
    pub frame: M,
    /// The interface's shape.
    pub vtr: VtrInfo,
}

impl<M: Mmio32> Gich<M> {
    /// The interface through `frame`.
    pub const fn new(frame: M, vtr: VtrInfo) -> Self {
        Self { frame, vtr }
    }
}

impl<M: Mmio32> ListRegisters for Gich<M> {
    #[inline]
    fn format(&self) -> LrFormat {
        LrFormat::V2
    }
    #[inline]
    fn list_regs(&self) -> usize {
        self.vtr.list_regs.min(super::MAX_LRS)
    }
    #[inline]
    fn empty_lrs(&mut self) -> u64 {
        let n = self.list_regs();
        let mut e = self.frame.read32(gich::ELRSR0) as u64;
        if n > 32 {
            e |= (self.frame.read32(gich::ELRSR1) as u64) << 32;
        }
        e & lr_mask(n)
    }
    #[inline]
    fn all_empty(&mut self) -> bool {
        // `GICH_ELRSR0` covers list registers 0–31; with more (the crate uses the
        // first 16, the others stay empty) the test only fails, never passes wrongly.
        all_empty(self.frame.read32(gich::ELRSR0) as u64, self.vtr.list_regs)
    }
    #[inline]
    fn lr(&mut self, n: usize) -> u64 {
        self.frame.read32(gich::LR0 + 4 * (n % MAX_LRS)) as u64
    }
    #[inline]
    fn set_lr(&mut self, n: usize, v: u64) {
        self.frame.write32(gich::LR0 + 4 * (n % MAX_LRS), v as u32)
    }
}

impl<M: Mmio32> VgicRegisters for Gich<M> {
    fn misr(&mut self) -> u32 {
        self.frame.read32(gich::MISR)
    }
    fn set_hcr(&mut self, v: u32) {
        self.frame.write32(gich::HCR, v)
    }
    fn vmcr(&mut self) -> u64 {
        self.frame.read32(gich::VMCR) as u64
    }
    fn set_vmcr(&mut self, v: u64) {
        // (The mutation build `gicv2-vmcr` never loads GICH_VMCR: a vCPU restored on
        // another core keeps that core's priority mask and group enables.)
        if cfg!(arm_vcpu_mutate = "gicv2-vmcr") {
            return;
        }
        self.frame.write32(gich::VMCR, v as u32)
    }
    fn save_aprs(&mut self, s: &mut VgicState) {
        s.ap0r[0] = self.frame.read32(gich::APR) as u64;
    }
    fn load_aprs(&mut self, s: &VgicState) {
        self.frame.write32(gich::APR, s.ap0r[0] as u32)
    }
    fn implemented_lrs(&self) -> usize {
        self.vtr.list_regs.min(MAX_LRS)
    }
}

/// `GICD_SGIR.TargetListFilter` \[25:24\] (IHI 0048B 4.3.15): who gets the SGI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SgirTargets {
    /// 0b00: the CPU interfaces in CPUTargetList \[23:16\] (bit n: interface n).
    List(u8),
    /// 0b01: every CPU interface except the requesting one.
    AllButSelf,
    /// 0b10: only the requesting CPU interface.
    SelfOnly,
    /// 0b11: reserved; [`SgirRequest::target_mask`] is empty (the SGI goes nowhere).
    Reserved,
}

/// A decoded write to `GICD_SGIR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SgirRequest {
    /// SGIINTID \[3:0\].
    pub intid: u8,
    /// TargetListFilter and CPUTargetList.
    pub targets: SgirTargets,
    /// NSATT \[15\]: a Secure write asks for the SGI only where it is Group 1. A VM's
    /// distributor has one (Non-secure) Security state, where the field is ignored; it
    /// is reported for hosts that emulate two.
    pub nsatt: bool,
}

/// Decodes a value written to `GICD_SGIR` (reserved bits \[31:26\], \[14:4\] ignored).
pub const fn decode_sgir(v: u32) -> SgirRequest {
    SgirRequest {
        intid: (v & 0xf) as u8,
        targets: match (v >> 24) & 3 {
            0 => SgirTargets::List((v >> 16) as u8),
            1 => SgirTargets::AllButSelf,
            2 => SgirTargets::SelfOnly,
            _ => SgirTargets::Reserved,
        },
        nsatt: v & (1 << 15) != 0,
    }
}

impl SgirRequest {
    /// The `GICD_SGIR` value that makes this request.
    pub const fn encode(&self) -> u32 {
        let (filter, list) = match self.targets {
            SgirTargets::List(l) => (0, l),
            SgirTargets::AllButSelf => (1, 0),
            SgirTargets::SelfOnly => (2, 0),
            SgirTargets::Reserved => (3, 0),
        };
        (filter << 24) | ((list as u32) << 16) | ((self.nsatt as u32) << 15) | self.intid as u32
    }

    /// The CPU interfaces the SGI goes to, as a bitmap (bit n: interface n), when CPU
    /// interface `sender` wrote it and interfaces `0..cpus` exist (at most 8). A sender
    /// that is not one of them gets nothing for "self only" and is excluded from no
    /// one for "all but self".
    pub const fn target_mask(&self, sender: u8, cpus: usize) -> u8 {
        let all: u32 = if cpus >= MAX_CPUS {
            0xff
        } else {
            (1u32 << cpus) - 1
        };
        let me: u32 = if (sender as usize) < MAX_CPUS {
            1 << sender
        } else {
            0
        };
        (match self.targets {
            SgirTargets::List(l) => l as u32 & all,
            SgirTargets::AllButSelf => all & !me,
            SgirTargets::SelfOnly => me & all,
            SgirTargets::Reserved => 0,
        }) as u8
    }
}
