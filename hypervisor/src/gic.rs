//! The physical GIC, as the runners use it: re-exported from `platform::gic`, which
//! drives it at the addresses discovered from the board's device tree.

pub use crate::platform::gic::*;
