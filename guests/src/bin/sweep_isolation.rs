//! `sweep-isolation`: the register sweep in two VMs time-sliced on one core, then a
//! VM-specific pattern in every register it found writable and a virtual SError each,
//! checked across VM switches (see `guests::sweep`, docs/test-protocol.md). Role from
//! x2 at entry (0 = A, 1 = B); x1 = VM switches the pattern check lasts.
#![no_std]
#![no_main]

use guests::rt::{Checks, Entry};

guests::guest_main!("sweep-isolation", main, x2_argument);

fn main(c: &mut Checks, entry: Entry) {
    guests::sweep::run(c, entry, "sweep-isolation", true);
}
