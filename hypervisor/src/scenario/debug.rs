//! `debug` and `debug-isolation`: guest self-hosted debug (breakpoints, watchpoints,
//! software step) works, one VM sees only its own, and the host's own debug state
//! survives every vCPU that used the hardware (docs/test-protocol.md, "Issue 8").
//!
//! Before the first bind the host plants distinctive values in its own debug
//! registers — breakpoint 1 and watchpoint 1 (disabled: E = 0), `MDSCR_EL1.TDCC` (it
//! only affects EL0) and `MDCR_EL2.TDRA` (it only affects EL1/EL0) — reads back what
//! the hardware kept, and after every unbind checks they are all still there. The
//! guests use those same slots, so a missing save or restore shows.

use alloc::boxed::Box;
use core::arch::asm;

use arm_vcpu::Aarch64VCpuSetupConfig;
use log::{error, info};

use super::{Scenario, VmInfo};

pub fn by_name(name: &str, _instance: usize) -> Option<Box<dyn Scenario>> {
    match name {
        "debug" => Some(Box::new(Debug {
            host: HostDebug::plant(),
            unbinds: 0,
        })),
        _ => None,
    }
}

macro_rules! rd {
    ($name:literal) => {{
        let v: u64;
        // SAFETY: reading an EL2-accessible debug register has no memory effect.
        unsafe { asm!(concat!("mrs {}, ", $name), out(reg) v, options(nomem, nostack)) };
        v
    }};
}

macro_rules! wr {
    ($name:literal, $v:expr) => {{
        let v: u64 = $v;
        // SAFETY: no vCPU is bound while the host writes its own debug registers; the
        // values planted enable nothing (E = 0; TDCC/TDRA only affect EL0/EL1).
        unsafe { asm!(concat!("msr ", $name, ", {}"), in(reg) v, options(nomem, nostack)) };
    }};
}

/// The host's debug registers that the vCPUs' switch must give back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostDebug {
    bvr1: u64,
    bcr1: u64,
    wvr1: u64,
    wcr1: u64,
    mdscr: u64,
    mdcr: u64,
}

impl HostDebug {
    fn read() -> Self {
        Self {
            bvr1: rd!("dbgbvr1_el1"),
            bcr1: rd!("dbgbcr1_el1"),
            wvr1: rd!("dbgwvr1_el1"),
            wcr1: rd!("dbgwcr1_el1"),
            mdscr: rd!("mdscr_el1"),
            mdcr: rd!("mdcr_el2"),
        }
    }

    /// Writes the host's distinctive values and returns what the hardware kept.
    pub fn plant() -> Self {
        // An aligned address; PMC = 0b11, BAS = 0xf, E = 0.
        wr!("dbgbvr1_el1", 0x0000_0000_dead_b000);
        wr!("dbgbcr1_el1", 0x1e6);
        // Eight bytes, loads and stores, E = 0.
        wr!("dbgwvr1_el1", 0x0000_0000_beef_0008);
        wr!("dbgwcr1_el1", 0x1ffe);
        wr!("mdscr_el1", 1 << 12);
        wr!("mdcr_el2", rd!("mdcr_el2") | 1 << 11);
        // SAFETY: `isb` only synchronises the context.
        unsafe { asm!("isb", options(nomem, nostack)) };
        let h = Self::read();
        info!("host debug state planted: {:x?}", h);
        h
    }

    /// Whether the host's debug registers still hold what was planted.
    pub fn check(&self) -> Result<(), &'static str> {
        let now = Self::read();
        if now == *self {
            return Ok(());
        }
        error!(
            "host debug state after unbind: {:x?}, planted {:x?}",
            now, self
        );
        Err("the host's debug registers changed across a vCPU")
    }
}

/// `debug` (one VM): trapped WFI (each one is an unbind and a bind of the vCPU);
/// TEST_CALL(0xD1) = unbinds so far.
struct Debug {
    host: HostDebug,
    unbinds: u64,
}

impl Scenario for Debug {
    fn setup_config(&self) -> Aarch64VCpuSetupConfig {
        Aarch64VCpuSetupConfig::default().with_trap_wfi(true)
    }

    fn test_call(
        &mut self,
        _cpu: usize,
        args: &[u64; 7],
        _vm: &mut VmInfo,
    ) -> Result<u64, &'static str> {
        match args[1] {
            0xD1 => Ok(self.unbinds),
            _ => Err("unexpected TEST_CALL"),
        }
    }

    fn checks_after_unbind(&self) -> bool {
        true
    }

    fn after_unbind(&mut self) -> Result<(), &'static str> {
        self.unbinds += 1;
        self.host.check()
    }
}
