//! The GIC CPU interface a test guest has, chosen from `ID_AA64PFR0_EL1.GIC` \[27:24\]:
//! the GICv3 system registers (`ICC_*_EL1`, GIC ≠ 0) or, on a GICv2 board (GIC = 0:
//! the crate hides FEAT_GICv3 there and `ICC_*` are UNDEFINED), the memory-mapped CPU
//! interface `GICC` at [`GICC_BASE`], where the host maps the GICv2 virtual CPU
//! interface (GICV) at stage 2 (docs/test-protocol.md).
//!
//! Both interfaces are used the same way: Group 1 interrupts acknowledged and ended
//! through one register pair (`ICC_IAR1/EOIR1_EL1`; `GICC_IAR/EOIR` with
//! `GICC_CTLR.AckCtl` = 1, so Group 1 interrupts are acknowledged there too).

use crate::mmio;
use crate::read_sysreg;

/// The guest's GICC (QEMU virt's address): GICV behind it.
pub const GICC_BASE: u64 = 0x0801_0000;

/// GICv2 CPU interface registers (IHI 0048B 4.4), offsets from [`GICC_BASE`].
pub mod gicc {
    /// `GICC_CTLR`: EnableGrp0 \[0\], EnableGrp1 \[1\], AckCtl \[2\].
    pub const CTLR: u64 = 0x00;
    /// `GICC_PMR`: priority mask \[7:0\].
    pub const PMR: u64 = 0x04;
    /// `GICC_BPR`: binary point \[2:0\].
    pub const BPR: u64 = 0x08;
    /// `GICC_IAR`: INTID \[9:0\], an SGI's source CPU \[12:10\].
    pub const IAR: u64 = 0x0c;
    /// `GICC_EOIR`.
    pub const EOIR: u64 = 0x10;
    /// `GICC_RPR`: running priority \[7:0\].
    pub const RPR: u64 = 0x14;
    /// `GICC_HPPIR`: highest-priority pending INTID \[9:0\].
    pub const HPPIR: u64 = 0x18;
    /// `GICC_CTLR` value the guests use: both groups, Group 1 acknowledged via IAR.
    pub const CTLR_ENABLE: u64 = 0b111;
}

/// Which CPU interface this guest has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interface {
    /// `ICC_*_EL1` system registers.
    V3,
    /// Memory-mapped `GICC` at [`GICC_BASE`].
    V2,
}

/// The interface `ID_AA64PFR0_EL1.GIC` \[27:24\] names.
pub fn interface() -> Interface {
    if (read_sysreg!("ID_AA64PFR0_EL1") >> 24) & 0xf == 0 {
        Interface::V2
    } else {
        Interface::V3
    }
}

/// `GICC_BASE` when the interface is GICv2, else 0 (what the guests' IRQ vectors
/// test).
pub fn gicc_or_zero() -> u64 {
    match interface() {
        Interface::V2 => GICC_BASE,
        Interface::V3 => 0,
    }
}

/// Writes a GICv3 CPU interface register by its generic name with one `msr`.
macro_rules! msr {
    ($name:literal, $v:expr) => {{
        let v: u64 = $v;
        // SAFETY: `msr` to the guest's own (virtual) GIC CPU interface; no memory the
        // compiler owns is touched.
        unsafe {
            core::arch::asm!(concat!("msr ", $name, ", {}"), "isb", in(reg) v,
                options(nostack, preserves_flags))
        };
    }};
}

/// Turns the CPU interface on for Group 1 with priority mask `pmr`
/// (`ICC_PMR_EL1`, `ICC_IGRPEN1_EL1` = 1; `GICC_PMR`, `GICC_CTLR` =
/// [`gicc::CTLR_ENABLE`]).
pub fn enable(pmr: u64) {
    match interface() {
        Interface::V3 => {
            msr!("S3_0_C4_C6_0", pmr); // ICC_PMR_EL1
            msr!("S3_0_C12_C12_7", 1); // ICC_IGRPEN1_EL1
        }
        Interface::V2 => {
            mmio::write32(GICC_BASE + gicc::PMR, pmr);
            mmio::write32(GICC_BASE + gicc::CTLR, gicc::CTLR_ENABLE);
        }
    }
}

/// Turns Group 1 off again (`ICC_IGRPEN1_EL1` = 0; `GICC_CTLR` = 0).
pub fn disable() {
    match interface() {
        Interface::V3 => msr!("S3_0_C12_C12_7", 0),
        Interface::V2 => mmio::write32(GICC_BASE + gicc::CTLR, 0),
    }
}

/// Sets the binary point (`ICC_BPR1_EL1`; `GICC_BPR`).
pub fn set_bpr(v: u64) {
    match interface() {
        Interface::V3 => msr!("S3_0_C12_C12_3", v),
        Interface::V2 => mmio::write32(GICC_BASE + gicc::BPR, v),
    }
}

/// Acknowledges the highest-priority pending interrupt: the raw value to hand to
/// [`eoi`] (`ICC_IAR1_EL1`; `GICC_IAR`, with an SGI's source CPU in \[12:10\]).
pub fn ack_raw() -> u64 {
    match interface() {
        Interface::V3 => read_sysreg!("S3_0_C12_C12_0"),
        Interface::V2 => mmio::read32(GICC_BASE + gicc::IAR),
    }
}

/// The INTID of an [`ack_raw`] value (1023: none pending).
pub fn intid_of(raw: u64) -> u64 {
    match interface() {
        Interface::V3 => raw & 0xff_ffff,
        Interface::V2 => raw & 0x3ff,
    }
}

/// Acknowledges and returns the INTID (see [`ack_raw`]).
pub fn ack() -> u64 {
    intid_of(ack_raw())
}

/// Ends an interrupt (`ICC_EOIR1_EL1`; `GICC_EOIR`), EOImode 0: also deactivates.
pub fn eoi(raw: u64) {
    match interface() {
        Interface::V3 => msr!("S3_0_C12_C12_1", raw),
        Interface::V2 => mmio::write32(GICC_BASE + gicc::EOIR, raw),
    }
}

/// The CPU interface's state registers a switch must keep, by name: the group
/// enable, priority mask, binary point, running priority and highest pending INTID.
pub fn state() -> [(&'static str, u64); 5] {
    match interface() {
        Interface::V3 => [
            ("ICC_IGRPEN1_EL1", read_sysreg!("S3_0_C12_C12_7")),
            ("ICC_PMR_EL1", read_sysreg!("S3_0_C4_C6_0")),
            ("ICC_BPR1_EL1", read_sysreg!("S3_0_C12_C12_3")),
            ("ICC_RPR_EL1", read_sysreg!("S3_0_C12_C11_3")),
            ("ICC_HPPIR1_EL1", read_sysreg!("S3_0_C12_C12_2") & 0xff_ffff),
        ],
        Interface::V2 => [
            (
                "GICC_CTLR",
                u64::from(mmio::read32(GICC_BASE + gicc::CTLR) == gicc::CTLR_ENABLE),
            ),
            ("GICC_PMR", mmio::read32(GICC_BASE + gicc::PMR)),
            ("GICC_BPR", mmio::read32(GICC_BASE + gicc::BPR)),
            ("GICC_RPR", mmio::read32(GICC_BASE + gicc::RPR)),
            ("GICC_HPPIR", mmio::read32(GICC_BASE + gicc::HPPIR) & 0x3ff),
        ],
    }
}
