//! Host unit tests of the crate's pure logic.

mod calls;
mod exits;
mod injection;
mod vgic_timer;
mod vgic_v2;
mod workaround;
