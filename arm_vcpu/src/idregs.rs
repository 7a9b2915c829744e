//! The ID registers a guest sees: the feature ID space (op0 = 3, op1 = 0, CRn = 0,
//! CRm = 1..7) trapped by `HCR_EL2.TID3` and answered from a per-VM view built from
//! the host's values with the features this crate does not switch per vCPU removed.

use crate::exit::SysRegAddr;

/// Number of encodings in the trapped ID space (CRm 1..7 × op2 0..7).
pub const ID_SPACE_LEN: usize = 56;

/// Index of an encoding in the ID space, or `None` outside it.
pub const fn index(reg: SysRegAddr) -> Option<usize> {
    if reg.op0() == 3 && reg.op1() == 0 && reg.crn() == 0 && reg.crm() >= 1 && reg.crm() <= 7 {
        Some((reg.crm() as usize - 1) * 8 + reg.op2() as usize)
    } else {
        None
    }
}

/// The exit fast path's test of a raw `ESR_EL2` value: an MRS of the ID space trapped
/// by `HCR_EL2.TID3` (EC 0x18, IL 1, ISS Op0 \[21:20\] = 3, Op1 \[16:14\] = 0, CRn \[13:10\]
/// = 0, CRm \[4:1\] = 1..7, Direction \[0\] = 1 (read)). Returns the register's [`index`]
/// and Rt \[9:5\]; the same answer as [`crate::esr::SysRegIss::decode`] + [`index`]
/// without building either. Bit 63 (set by the vectors for asynchronous exits) never
/// matches.
pub const fn fast_id_read(esr: u64) -> Option<(usize, u8)> {
    const MASK: u64 =
        (1 << 63) | (0x3f << 26) | (1 << 25) | (3 << 20) | (7 << 14) | (0xf << 10) | 1;
    const WANT: u64 = (0x18 << 26) | (1 << 25) | (3 << 20) | 1;
    if esr & MASK != WANT {
        return None;
    }
    let crm = ((esr >> 1) & 0xf) as usize;
    if crm == 0 || crm > 7 {
        return None;
    }
    let op2 = ((esr >> 17) & 7) as usize;
    Some(((crm - 1) * 8 + op2, ((esr >> 5) & 0x1f) as u8))
}

/// Encoding of index `i` (the inverse of [`index`]).
pub const fn encoding(i: usize) -> SysRegAddr {
    SysRegAddr::new(3, 0, 0, (i / 8) as u8 + 1, (i % 8) as u8)
}

const fn idx(crm: u8, op2: u8) -> usize {
    (crm as usize - 1) * 8 + op2 as usize
}

/// `ID_PFR0_EL1` (CRm 1, op2 0), AArch32 view.
pub const ID_PFR0: usize = idx(1, 0);
/// `ID_PFR1_EL1`.
pub const ID_PFR1: usize = idx(1, 1);
/// `ID_DFR0_EL1`.
pub const ID_DFR0: usize = idx(1, 2);
/// `ID_PFR2_EL1` (CRm 3, op2 4).
pub const ID_PFR2: usize = idx(3, 4);
/// `ID_DFR1_EL1` (CRm 3, op2 5).
pub const ID_DFR1: usize = idx(3, 5);
/// End of the AArch32 ID registers (CRm 1..3) in [`index`] order.
pub const AARCH32_ID_END: usize = idx(4, 0);
/// `ID_AA64MMFR0_EL1` (CRm 7, op2 0).
pub const ID_AA64MMFR0: usize = idx(7, 0);
/// `ID_AA64PFR0_EL1` (CRm 4, op2 0).
pub const ID_AA64PFR0: usize = idx(4, 0);
/// `ID_AA64PFR1_EL1`.
pub const ID_AA64PFR1: usize = idx(4, 1);
/// `ID_AA64ZFR0_EL1` (SVE).
pub const ID_AA64ZFR0: usize = idx(4, 4);
/// `ID_AA64SMFR0_EL1` (SME).
pub const ID_AA64SMFR0: usize = idx(4, 5);
/// `ID_AA64DFR0_EL1`.
pub const ID_AA64DFR0: usize = idx(5, 0);
/// `ID_AA64DFR1_EL1`.
pub const ID_AA64DFR1: usize = idx(5, 1);
/// `ID_AA64ISAR1_EL1`.
pub const ID_AA64ISAR1: usize = idx(6, 1);
/// `ID_AA64ISAR2_EL1`.
pub const ID_AA64ISAR2: usize = idx(6, 2);
/// `ID_AA64MMFR1_EL1`.
pub const ID_AA64MMFR1: usize = idx(7, 1);
/// `ID_AA64MMFR2_EL1`.
pub const ID_AA64MMFR2: usize = idx(7, 2);

/// A 4-bit field at `lsb`.
const fn f(lsb: u32) -> u64 {
    0xf << lsb
}

/// Fields cleared from the host's value, per register: (index, mask of fields).
///
/// * PFR0: EL2 \[11:8\] (no nested virtualization), RAS \[31:28\] (error records are not
///   virtualized), SVE \[35:32\], SEL2 \[39:36\], MPAM \[43:40\], AMU \[47:44\], RME \[55:52\].
/// * PFR1: MTE \[11:8\], RAS_frac \[15:12\], MPAM_frac \[19:16\], SME \[27:24\],
///   RNDR_trap \[31:28\], NMI \[39:36\], MTE_frac \[43:40\], GCS \[47:44\], THE \[51:48\].
/// * ZFR0, SMFR0: all (SVE and SME are trapped: CPTR_EL2.TZ/TSM).
/// * DFR0: TraceVer \[7:4\], PMUVer \[11:8\] (PMU accesses trap), PMSVer \[35:32\] (SPE),
///   TraceFilt \[43:40\], TraceBuffer \[47:44\] (TRBE), BRBE \[55:52\].
/// * MMFR1: VH \[11:8\] (no EL2 in the guest), LO \[19:16\] (LORegions trap: TLOR),
///   HCX \[43:40\] (HCRX_EL2 is an EL2 register).
/// * MMFR2: NV \[27:24\].
/// * The AArch32 views of the same features: ID_PFR0 AMU \[23:20\], RAS \[31:28\];
///   ID_PFR1 Virtualization \[15:12\], Virt_frac \[27:24\]; ID_DFR0 CopTrc \[15:12\],
///   MMapTrc \[19:16\], PerfMon \[27:24\], TraceFilt \[31:28\]; ID_DFR1 (MTPMU, HPMN0: PMU);
///   ID_PFR2 RAS_frac \[11:8\].
const HIDDEN: [(usize, u64); 12] = [
    (
        ID_AA64PFR0,
        f(8) | f(28) | f(32) | f(36) | f(40) | f(44) | f(52),
    ),
    (
        ID_AA64PFR1,
        f(8) | f(12) | f(16) | f(24) | f(28) | f(36) | f(40) | f(44) | f(48),
    ),
    (ID_AA64ZFR0, u64::MAX),
    (ID_AA64SMFR0, u64::MAX),
    (ID_AA64DFR0, f(4) | f(8) | f(32) | f(40) | f(44) | f(52)),
    (ID_AA64MMFR1, f(8) | f(16) | f(40)),
    (ID_AA64MMFR2, f(24)),
    (ID_PFR0, f(20) | f(28)),
    (ID_PFR1, f(12) | f(24)),
    (ID_DFR0, f(12) | f(16) | f(24) | f(28)),
    (ID_DFR1, u64::MAX),
    (ID_PFR2, f(8)),
];

/// Pointer-authentication fields: ISAR1 APA \[7:4\], API \[11:8\], GPA \[27:24\], GPI
/// \[31:28\]; ISAR2 GPA3 \[11:8\], APA3 \[15:12\]. Hidden unless the keys are switched.
const PAUTH: [(usize, u64); 2] = [
    (ID_AA64ISAR1, f(4) | f(8) | f(24) | f(28)),
    (ID_AA64ISAR2, f(8) | f(12)),
];

/// The ID registers of one VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdRegisters {
    regs: [u64; ID_SPACE_LEN],
}

impl Default for IdRegisters {
    fn default() -> Self {
        Self {
            regs: [0; ID_SPACE_LEN],
        }
    }
}

impl IdRegisters {
    /// The view a guest gets of a host whose ID space holds `host` (index order of
    /// [`index`]); `pauth_switched` keeps pointer authentication visible; `ipa_bits` is
    /// the size of the VM's guest-physical space: `ID_AA64MMFR0_EL1.PARange` \[3:0\]
    /// becomes the largest encoding not above it (and not above the host's).
    pub const fn sanitized(host: &[u64; ID_SPACE_LEN], pauth_switched: bool, ipa_bits: u8) -> Self {
        let mut regs = *host;
        let host_pa = (regs[ID_AA64MMFR0] & 0xf) as u8;
        let mut pa = 0u8;
        while pa < 6 {
            match crate::stage2::pa_range_bits(pa + 1) {
                Some(bits) if bits <= ipa_bits && pa < host_pa => pa += 1,
                _ => break,
            }
        }
        regs[ID_AA64MMFR0] = (regs[ID_AA64MMFR0] & !0xf) | pa as u64;
        // ID_AA64PFR0_EL1.EL1 [7:4]: HCR_EL2.RW = 1 makes EL1 AArch64-only (0b0001),
        // whatever the CPU could do.
        if (regs[ID_AA64PFR0] >> 4) & 0xf > 1 {
            regs[ID_AA64PFR0] = (regs[ID_AA64PFR0] & !0xf0) | 0x10;
        }
        let mut i = 0;
        while i < HIDDEN.len() {
            regs[HIDDEN[i].0] &= !HIDDEN[i].1;
            i += 1;
        }
        // Self-hosted debug: only what `crate::debug` switches is shown.
        let (dfr0, dfr1) = crate::debug::id_view(regs[ID_AA64DFR0], regs[ID_AA64DFR1]);
        regs[ID_AA64DFR0] = dfr0;
        regs[ID_AA64DFR1] = dfr1;
        if !pauth_switched {
            let mut i = 0;
            while i < PAUTH.len() {
                regs[PAUTH[i].0] &= !PAUTH[i].1;
                i += 1;
            }
        }
        Self { regs }
    }

    /// This view with AArch32 EL0 hidden (`Aarch64VCpuSetupConfig::hide_aarch32_el0`):
    /// `ID_AA64PFR0_EL1.EL0` \[3:0\] = 0b0001 (AArch64 only) where it was 0b0010, and the
    /// AArch32 ID registers (CRm 1..3: ID_PFR0 .. ID_MMFR5, MVFR0..2) zero, as KVM shows
    /// them to a VM without AArch32 (the architecture makes them UNKNOWN when no EL
    /// implements AArch32; EL1 is already AArch64-only here).
    pub const fn without_aarch32_el0(mut self) -> Self {
        if self.regs[ID_AA64PFR0] & 0xf == 0b0010 {
            self.regs[ID_AA64PFR0] = (self.regs[ID_AA64PFR0] & !0xf) | 0b0001;
        }
        let mut i = 0;
        while i < AARCH32_ID_END {
            self.regs[i] = 0;
            i += 1;
        }
        self
    }

    /// The value a guest reads from `reg`, if `reg` is in the ID space.
    pub const fn read(&self, reg: SysRegAddr) -> Option<u64> {
        match index(reg) {
            Some(i) => Some(self.regs[i]),
            None => None,
        }
    }

    /// All values, in [`index`] order.
    pub const fn values(&self) -> &[u64; ID_SPACE_LEN] {
        &self.regs
    }
}
