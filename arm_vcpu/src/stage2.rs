//! Stage-2 translation controls: `VTTBR_EL2` and `VTCR_EL2` for a guest's tables.
//!
//! The crate does not build stage-2 tables (the host does, e.g. with `aarch64-paging`'s
//! stage-2 regime); it programs the registers that point the MMU at them, from a
//! description it validates here.

use crate::VCpuError;

/// Where a VM's stage-2 tables are and how they are shaped (4 KiB granule, no
/// concatenated root tables).
///
/// ```
/// use arm_vcpu::Stage2Config;
///
/// // A 39-bit IPA space from a level-1 root table, tagged with VMID 1.
/// let s2 = Stage2Config::new(0x8000_0000, 1, 39, 1);
/// assert_eq!(s2.ipa_bits, 39);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stage2Config {
    /// Physical address of the root table (4 KiB aligned).
    pub root_pa: u64,
    /// The VM's VMID; TLB entries are tagged with it. Must fit the implemented VMID
    /// size (8 or 16 bits, `ID_AA64MMFR1_EL1.VMIDBits`).
    pub vmid: u16,
    /// Size of the guest-physical address space in bits (`VTCR_EL2.T0SZ = 64 - ipa_bits`).
    pub ipa_bits: u8,
    /// Level of the root table: 0, 1 or 2 (`VTCR_EL2.SL0`).
    pub root_level: u8,
}

/// Bits of the physical address size for each `ID_AA64MMFR0_EL1.PARange` encoding.
pub const fn pa_range_bits(parange: u8) -> Option<u8> {
    Some(match parange {
        0 => 32,
        1 => 36,
        2 => 40,
        3 => 42,
        4 => 44,
        5 => 48,
        6 => 52,
        _ => return None,
    })
}

/// `VTCR_EL2.RES1` bit 31.
const VTCR_RES1: u64 = 1 << 31;

impl Stage2Config {
    /// A description of the tables at `root_pa` (4 KiB aligned) for VMID `vmid`,
    /// resolving `ipa_bits` of guest-physical address from a root table at
    /// `root_level` (0, 1 or 2). Validated by
    /// [`Aarch64VCpu::set_stage2_root`](crate::Aarch64VCpu::set_stage2_root) and,
    /// against the CPU, at bind.
    #[must_use]
    pub const fn new(root_pa: u64, vmid: u16, ipa_bits: u8, root_level: u8) -> Self {
        Self {
            root_pa,
            vmid,
            ipa_bits,
            root_level,
        }
    }

    /// Checks the description against the architecture and this CPU: `parange` is
    /// `ID_AA64MMFR0_EL1.PARange`, `vmid16` whether 16-bit VMIDs are implemented.
    /// Returns `(VTTBR_EL2, VTCR_EL2)`.
    ///
    /// `VTCR_EL2` fields (DDI 0487 D23.2): T0SZ \[5:0\], SL0 \[7:6\], IRGN0 \[9:8\] = 1 and
    /// ORGN0 \[11:10\] = 1 (write-back walks), SH0 \[13:12\] = 3 (inner shareable),
    /// TG0 \[15:14\] = 0 (4 KiB), PS \[18:16\], VS \[19\] (16-bit VMID).
    pub fn registers(&self, parange: u8, vmid16: bool) -> Result<(u64, u64), VCpuError> {
        if self.root_pa & 0xfff != 0 {
            return Err(VCpuError::InvalidConfig(
                "stage-2 root table is not 4 KiB aligned",
            ));
        }
        // One 4 KiB root table at level L resolves IPA bits up to 12 + 9 * (4 - L).
        let (sl0, min_bits, max_bits) = match self.root_level {
            0 => (2u64, 40u8, 48u8),
            1 => (1, 31, 39),
            2 => (0, 22, 30),
            _ => {
                return Err(VCpuError::InvalidConfig(
                    "stage-2 root level must be 0, 1 or 2",
                ))
            }
        };
        if self.ipa_bits < min_bits || self.ipa_bits > max_bits {
            return Err(VCpuError::InvalidConfig(
                "IPA size does not fit the root level",
            ));
        }
        // 52-bit output addresses with 4 KiB pages need FEAT_LPA2 descriptors, which
        // this crate does not use: cap the output size at 48 bits.
        pa_range_bits(parange).ok_or(VCpuError::InvalidConfig("unknown PARange"))?;
        let parange = parange.min(5);
        let pa_bits = pa_range_bits(parange).ok_or(VCpuError::InvalidConfig("unknown PARange"))?;
        if self.ipa_bits > pa_bits {
            return Err(VCpuError::InvalidConfig(
                "IPA size exceeds the physical address size",
            ));
        }
        if self.root_pa >> pa_bits != 0 {
            return Err(VCpuError::InvalidConfig(
                "stage-2 root is outside the physical address space",
            ));
        }
        if !vmid16 && self.vmid > 0xff {
            return Err(VCpuError::InvalidConfig("VMID does not fit in 8 bits"));
        }
        let t0sz = 64 - self.ipa_bits as u64;
        let vtcr = VTCR_RES1
            | t0sz
            | (sl0 << 6)
            | (1 << 8)
            | (1 << 10)
            | (3 << 12)
            | ((parange as u64) << 16)
            | ((vmid16 as u64) << 19);
        let vttbr = ((self.vmid as u64) << 48) | self.root_pa;
        Ok((vttbr, vtcr))
    }
}
