//! Host unit tests of the crate's pure logic.

mod calls;
mod exits;
mod injection;
mod inventory;
mod regs;
mod vgic_timer;
