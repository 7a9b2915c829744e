//! The GICv2 virtual interface control frame (GICH, IHI 0048B 5.3), by MMIO,
//! for [`crate::vgic::v2::Gich`].

use crate::vgic::v2::{gich, Mmio32};

/// The calling core's GICH frame at an EL2 address the host mapped as Device memory
/// (`Aarch64PerCpu::set_gicv2_interface`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Frame(usize);

impl Frame {
    /// The frame at `base`.
    #[inline(always)]
    pub(crate) const fn new(base: usize) -> Self {
        Self(base)
    }
}

impl Mmio32 for Frame {
    #[inline(always)]
    fn read32(&mut self, off: usize) -> u32 {
        let off = (off % gich::SIZE) & !3;
        // SAFETY: the host gave this frame's address before `hardware_enable` and
        // mapped it as Device memory at EL2 (the setter's contract); `off` stays inside
        // the frame's register space and is 4-byte aligned.
        unsafe { core::ptr::read_volatile((self.0 + off) as *const u32) }
    }

    #[inline(always)]
    fn write32(&mut self, off: usize, v: u32) {
        let off = (off % gich::SIZE) & !3;
        // SAFETY: as for `read32`; the crate owns the GICH frame of this core.
        unsafe { core::ptr::write_volatile((self.0 + off) as *mut u32, v) }
    }
}
