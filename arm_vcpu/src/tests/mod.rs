//! Host unit tests of the crate's pure logic.

mod calls;
mod debug;
mod exits;
mod injection;
mod vgic_timer;
