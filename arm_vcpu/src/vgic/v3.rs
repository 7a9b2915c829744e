//! GICv3 virtual CPU interface (`ICH_*_EL2`, IHI 0069 / DDI 0487): the list-register
//! encoding, the VMCR layout, and the backend over the system registers ([`Ich`]),
//! generic over the register access so the host tests run it on a fake file.

use super::list_registers::{
    all_empty, lr_mask, ListEntry, ListRegisters, LrFormat, LrState, VgicRegisters,
};
use super::{InjectIrqError, VgicState, VirtualMachineControl, VtrInfo};

/// `ICH_LR<n>_EL2` (IHI 0069 "`ICH_LR<n>_EL2`"): vINTID \[31:0\], pINTID \[44:32\]
/// when HW is set or EOI \[41\] when it is not, Priority \[55:48\], Group \[60\],
/// HW \[61\], State \[63:62\]. Encodes `e`; fails for a physical INTID wider than
/// 13 bits, a source CPU (GICv3 list registers have none), or EOI together with HW.
pub fn encode_lr(e: &ListEntry) -> Result<u64, InjectIrqError> {
    if e.source_cpu != 0 {
        return Err(InjectIrqError::InvalidSourceCpu);
    }
    let mut v = (e.state.bits() << 62) | ((e.priority as u64) << 48) | e.intid as u64;
    if e.group1 {
        v |= super::lr::GROUP1;
    }
    match e.hw_intid {
        Some(p) if p > 0x1fff || e.eoi_maintenance => return Err(InjectIrqError::InvalidHwIntid),
        Some(p) => v |= super::lr::HW | ((p as u64) << 32),
        None if e.eoi_maintenance => v |= 1 << 41,
        None => {}
    }
    Ok(v)
}

/// Decodes `ICH_LR<n>_EL2` (RES0 bits ignored).
pub const fn decode_lr(v: u64) -> ListEntry {
    let hw = v & super::lr::HW != 0;
    ListEntry {
        intid: v as u32,
        priority: (v >> 48) as u8,
        group1: v & super::lr::GROUP1 != 0,
        state: LrState::from_bits(v >> 62),
        hw_intid: if hw {
            Some(((v >> 32) & 0x1fff) as u32)
        } else {
            None
        },
        source_cpu: 0,
        eoi_maintenance: !hw && v & (1 << 41) != 0,
    }
}

/// `ICH_VMCR_EL2` (IHI 0069): VENG0 \[0\], VENG1 \[1\], VAckCtl \[2\], VFIQEn \[3\],
/// VCBPR \[4\], VEOIM \[9\], VBPR1 \[20:18\], VBPR0 \[23:21\], VPMR \[31:24\] (8 bits).
pub const fn decode_vmcr(v: u64) -> VirtualMachineControl {
    VirtualMachineControl {
        grp0_enable: v & 1 != 0,
        grp1_enable: v & 2 != 0,
        ack_ctl: v & 4 != 0,
        fiq_enable: v & 8 != 0,
        common_bpr: v & 0x10 != 0,
        eoi_mode: v & (1 << 9) != 0,
        bpr1: ((v >> 18) & 7) as u8,
        bpr0: ((v >> 21) & 7) as u8,
        priority_mask: (v >> 24) as u8,
    }
}

/// Encodes `ICH_VMCR_EL2`.
pub const fn encode_vmcr(c: &VirtualMachineControl) -> u64 {
    (c.grp0_enable as u64)
        | (c.grp1_enable as u64) << 1
        | (c.ack_ctl as u64) << 2
        | (c.fiq_enable as u64) << 3
        | (c.common_bpr as u64) << 4
        | (c.eoi_mode as u64) << 9
        | ((c.bpr1 & 7) as u64) << 18
        | ((c.bpr0 & 7) as u64) << 21
        | (c.priority_mask as u64) << 24
}

/// The `ICH_*_EL2` registers the crate uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IchReg {
    /// `ICH_LR<n>_EL2`, n < 16.
    Lr(usize),
    /// `ICH_HCR_EL2`.
    Hcr,
    /// `ICH_VMCR_EL2`.
    Vmcr,
    /// `ICH_MISR_EL2`.
    Misr,
    /// `ICH_ELRSR_EL2`.
    Elrsr,
    /// `ICH_AP0R<n>_EL2`, n < 4.
    Ap0r(usize),
    /// `ICH_AP1R<n>_EL2`, n < 4.
    Ap1r(usize),
}

/// Access to the `ICH_*_EL2` system registers (the hardware in `hw/ich.rs`, a fake
/// in the host tests).
pub trait IchAccess {
    /// Reads a register.
    fn read(&mut self, r: IchReg) -> u64;
    /// Writes a register.
    fn write(&mut self, r: IchReg, v: u64);
    /// A context synchronization event (`ISB`): reads that follow reflect the writes
    /// made before (`ICH_ELRSR_EL2`, `ICH_MISR_EL2` after `ICH_LR<n>_EL2` writes).
    fn sync(&mut self);
}

/// The GICv3 virtual CPU interface of the calling core, shaped as `ICH_VTR_EL2` said.
#[derive(Debug)]
pub struct Ich<S> {
    /// The register access.
    pub regs: S,
    /// The interface's shape.
    pub vtr: VtrInfo,
}

impl<S: IchAccess> Ich<S> {
    /// The interface through `regs`.
    pub const fn new(regs: S, vtr: VtrInfo) -> Self {
        Self { regs, vtr }
    }
}

impl<S: IchAccess> ListRegisters for Ich<S> {
    #[inline]
    fn format(&self) -> LrFormat {
        LrFormat::V3
    }
    #[inline]
    fn list_regs(&self) -> usize {
        self.vtr.list_regs.min(16)
    }
    #[inline]
    fn empty_lrs(&mut self) -> u64 {
        self.regs.read(IchReg::Elrsr) & lr_mask(self.list_regs())
    }
    #[inline]
    fn all_empty(&mut self) -> bool {
        // Bits at or above ListRegs + 1 are RES0, not relied on: only the low
        // `list_regs` bits are looked at (more than 16 could only ask more of it).
        all_empty(self.regs.read(IchReg::Elrsr), self.vtr.list_regs)
    }
    #[inline]
    fn lr(&mut self, n: usize) -> u64 {
        self.regs.read(IchReg::Lr(n))
    }
    #[inline]
    fn set_lr(&mut self, n: usize, v: u64) {
        self.regs.write(IchReg::Lr(n), v)
    }
    #[inline]
    fn sync_lrs(&mut self) {
        self.regs.sync()
    }
}

impl<S: IchAccess> VgicRegisters for Ich<S> {
    fn misr(&mut self) -> u32 {
        self.regs.read(IchReg::Misr) as u32
    }
    fn set_hcr(&mut self, v: u32) {
        self.regs.write(IchReg::Hcr, v as u64)
    }
    fn vmcr(&mut self) -> u64 {
        self.regs.read(IchReg::Vmcr)
    }
    fn set_vmcr(&mut self, v: u64) {
        self.regs.write(IchReg::Vmcr, v)
    }
    // Unrolled over the three shapes `VtrInfo::ap_regs` allows (1, 2 or 4 registers
    // a group): two tests instead of a loop with a register jump table.
    fn save_aprs(&mut self, s: &mut VgicState) {
        let k = self.vtr.ap_regs();
        s.ap0r[0] = self.regs.read(IchReg::Ap0r(0));
        s.ap1r[0] = self.regs.read(IchReg::Ap1r(0));
        if k > 1 {
            s.ap0r[1] = self.regs.read(IchReg::Ap0r(1));
            s.ap1r[1] = self.regs.read(IchReg::Ap1r(1));
            if k > 2 {
                s.ap0r[2] = self.regs.read(IchReg::Ap0r(2));
                s.ap1r[2] = self.regs.read(IchReg::Ap1r(2));
                s.ap0r[3] = self.regs.read(IchReg::Ap0r(3));
                s.ap1r[3] = self.regs.read(IchReg::Ap1r(3));
            }
        }
    }
    fn load_aprs(&mut self, s: &VgicState) {
        let k = self.vtr.ap_regs();
        self.regs.write(IchReg::Ap0r(0), s.ap0r[0]);
        self.regs.write(IchReg::Ap1r(0), s.ap1r[0]);
        if k > 1 {
            self.regs.write(IchReg::Ap0r(1), s.ap0r[1]);
            self.regs.write(IchReg::Ap1r(1), s.ap1r[1]);
            if k > 2 {
                self.regs.write(IchReg::Ap0r(2), s.ap0r[2]);
                self.regs.write(IchReg::Ap1r(2), s.ap1r[2]);
                self.regs.write(IchReg::Ap0r(3), s.ap0r[3]);
                self.regs.write(IchReg::Ap1r(3), s.ap1r[3]);
            }
        }
    }
}
