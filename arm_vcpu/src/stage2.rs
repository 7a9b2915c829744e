//! Stage-2 translation controls: `VTTBR_EL2` and `VTCR_EL2` for a guest's tables.
//!
//! The crate does not build stage-2 tables (the host does, e.g. with `aarch64-paging`'s
//! stage-2 regime); it programs the registers that point the MMU at them, from a
//! description it validates here.

use crate::VCpuError;

/// Where a VM's stage-2 tables are and how they are shaped (4 KiB granule). The root
/// is one table, or at level 1 or 2 up to 16 concatenated tables (Arm ARM D8.2
/// "Concatenated translation tables for the initial stage 2 lookup"), e.g. two level-1
/// tables for a 40-bit IPA space, which level 0 cannot give on a core with a physical
/// address size below 44 bits (Cortex-A53 and -A35: 40 bits; -A57 and -A72 have 44).
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
    /// Size of the guest-physical address space in bits (`VTCR_EL2.T0SZ = 64 - ipa_bits`):
    /// at root level 0, 40 to 48; at level 1, 31 to 43; at level 2, 22 to 34. Above 39
    /// (level 1) or 30 (level 2) bits the root is 2^(bits - 39) (or 2^(bits - 30))
    /// concatenated tables ([`Stage2Config::root_tables`]).
    pub ipa_bits: u8,
    /// Level of the root table: 0, 1 or 2 (`VTCR_EL2.SL0`). Level 0 needs a physical
    /// address size of at least 44 bits (`ID_AA64MMFR0_EL1.PARange` >= 0b0100).
    pub root_level: u8,
}

/// Concatenated tables at the initial stage-2 lookup level, at most (4 KiB granule).
pub const MAX_CONCATENATED_TABLES: u64 = 16;

/// The smallest physical address size (bits) with which a 4 KiB-granule stage-2 walk
/// may start at level 0: `VTCR_EL2.SL0` = 0b10 is invalid below it (the Arm ARM's
/// `AArch64.S2InvalidSL()`: `PAMax() < 44`).
pub const LEVEL0_MIN_PA_BITS: u8 = 44;

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
    /// `VTCR_EL2.SL0` and the number of concatenated 4 KiB root tables, checked
    /// against the architecture's rules for the initial lookup level (the Arm ARM's
    /// `AArch64.S2InconsistentSL()`: the IPA size must leave at least one bit to the
    /// root level and at most 9 + 4 bits, the 4 being up to 16 concatenated tables;
    /// level 0 resolves at most bit 47 without FEAT_LPA2).
    fn root_shape(&self) -> Result<(u64, u64), VCpuError> {
        // IPA bits resolved below the root level: 12 + 9 * (3 - L).
        let (sl0, below, max_bits) = match self.root_level {
            0 => (2u64, 39u8, 48u8),
            1 => (1, 30, 43),
            2 => (0, 21, 34),
            _ => {
                return Err(VCpuError::InvalidConfig(
                    "stage-2 root level must be 0, 1 or 2",
                ))
            }
        };
        if self.ipa_bits <= below || self.ipa_bits > max_bits {
            return Err(VCpuError::InvalidConfig(
                "IPA size does not fit the root level",
            ));
        }
        let tables = match self.ipa_bits.checked_sub(below + 9) {
            Some(extra) if extra > 0 => 1u64 << extra,
            _ => 1,
        };
        Ok((sl0, tables))
    }

    /// How many 4 KiB tables the root is (1, or 2..16 concatenated): the host
    /// allocates `4096 * n` contiguous bytes, aligned to their size, at `root_pa`.
    pub fn root_tables(&self) -> Result<u64, VCpuError> {
        self.root_shape().map(|(_, n)| n)
    }

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
        let (sl0, tables) = self.root_shape()?;
        // VTTBR_EL2.BADDR: concatenated tables are aligned to their total size.
        if self.root_pa & (tables * 4096 - 1) != 0 {
            return Err(VCpuError::InvalidConfig(
                "concatenated stage-2 root tables are not aligned to their size",
            ));
        }
        let implemented =
            pa_range_bits(parange).ok_or(VCpuError::InvalidConfig("unknown PARange"))?;
        if self.root_level == 0
            && implemented < LEVEL0_MIN_PA_BITS
            && !cfg!(arm_vcpu_mutate = "stage2-level0")
        {
            return Err(VCpuError::InvalidConfig(
                "stage-2 root level 0 needs a physical address size of 44 bits or more \
                 (use concatenated level-1 tables)",
            ));
        }
        // 52-bit output addresses with 4 KiB pages need FEAT_LPA2 descriptors, which
        // this crate does not use: cap the output size at 48 bits.
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
