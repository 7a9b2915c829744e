//! Generic timer: the guest's EL1 physical timer when it is not passed through
//! (`CNTHCTL_EL2.EL1PCEN = 0`: `CNTP_CTL_EL0`, `CNTP_CVAL_EL0` and `CNTP_TVAL_EL0`
//! accesses trap and are emulated here against the physical count), and the deadlines
//! a host needs to wake a descheduled vCPU. Pure.

use crate::exit::SysRegAddr;

/// `CNTP_TVAL_EL0` (op0 3, op1 3, CRn 14, CRm 2, op2 0).
pub const CNTP_TVAL_EL0: SysRegAddr = SysRegAddr::new(3, 3, 14, 2, 0);
/// `CNTP_CTL_EL0` (3, 3, 14, 2, 1).
pub const CNTP_CTL_EL0: SysRegAddr = SysRegAddr::new(3, 3, 14, 2, 1);
/// `CNTP_CVAL_EL0` (3, 3, 14, 2, 2).
pub const CNTP_CVAL_EL0: SysRegAddr = SysRegAddr::new(3, 3, 14, 2, 2);

/// `CNTx_CTL` bits: ENABLE \[0\], IMASK \[1\], ISTATUS \[2\] (read-only).
pub mod ctl {
    /// Timer enabled.
    pub const ENABLE: u64 = 1 << 0;
    /// Interrupt masked.
    pub const IMASK: u64 = 1 << 1;
    /// Condition met (read-only).
    pub const ISTATUS: u64 = 1 << 2;
}

/// When a timer with control `ctl` and compare value `cval` (in the count it compares
/// against) asserts its interrupt, in that count; `None` if disabled or masked.
pub const fn deadline(ctl: u64, cval: u64) -> Option<u64> {
    if ctl & ctl::ENABLE != 0 && ctl & ctl::IMASK == 0 {
        Some(cval)
    } else {
        None
    }
}

/// An emulated EL1 physical timer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EmulatedTimer {
    /// `CNTP_CTL_EL0` (ENABLE and IMASK; ISTATUS is computed).
    pub ctl: u64,
    /// `CNTP_CVAL_EL0`.
    pub cval: u64,
}

impl EmulatedTimer {
    /// Whether `reg` is one of the registers emulated here.
    pub fn handles(reg: SysRegAddr) -> bool {
        reg == CNTP_TVAL_EL0 || reg == CNTP_CTL_EL0 || reg == CNTP_CVAL_EL0
    }

    /// A read at physical count `now`: CTL with ISTATUS = (now ≥ CVAL) while enabled;
    /// TVAL's TimerValue \[31:0\] = CVAL − now (a signed 32-bit value), bits \[63:32\]
    /// RES0 (DDI 0487 `CNTP_TVAL_EL0`): zero, not a sign extension.
    pub fn read(&self, reg: SysRegAddr, now: u64) -> u64 {
        if reg == CNTP_CTL_EL0 {
            let met = self.ctl & ctl::ENABLE != 0 && now >= self.cval;
            (self.ctl & (ctl::ENABLE | ctl::IMASK)) | if met { ctl::ISTATUS } else { 0 }
        } else if reg == CNTP_CVAL_EL0 {
            self.cval
        } else {
            self.cval.wrapping_sub(now) & 0xffff_ffff
        }
    }

    /// A write at physical count `now`: TVAL sets CVAL = now + sign-extended TVAL\[31:0\].
    pub fn write(&mut self, reg: SysRegAddr, value: u64, now: u64) {
        if reg == CNTP_CTL_EL0 {
            self.ctl = value & (ctl::ENABLE | ctl::IMASK);
        } else if reg == CNTP_CVAL_EL0 {
            self.cval = value;
        } else {
            self.cval = now.wrapping_add(value as u32 as i32 as i64 as u64);
        }
    }

    /// When the interrupt asserts, in physical count.
    pub const fn deadline(&self) -> Option<u64> {
        deadline(self.ctl, self.cval)
    }
}

/// When a vCPU's timers next assert their interrupts, in physical count
/// (`CNTPCT_EL0`), so a host can wake a descheduled vCPU and inject them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimerDeadlines {
    /// The EL1 virtual timer (CNTV): `CNTV_CVAL_EL0 + CNTVOFF_EL2`.
    pub virt: Option<u64>,
    /// The EL1 physical timer when emulated (CNTP).
    pub phys: Option<u64>,
}

impl TimerDeadlines {
    /// The earlier of the two.
    pub fn next(&self) -> Option<u64> {
        match (self.virt, self.phys) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
