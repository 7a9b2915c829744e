//! Host unit tests of the crate's pure logic.

mod aarch32;
mod calls;
mod debug;
mod exits;
mod fast_paths;
mod injection;
mod inventory;
mod pmu;
mod power;
mod regs;
mod switch;
mod vgic_timer;
mod vgic_v2;
mod workaround;
