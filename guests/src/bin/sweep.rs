//! `sweep`: every MRS and MSR encoding with op0 = 2 and 3 executed at EL1 and compared
//! with the crate's register inventory (see `guests::sweep`, docs/test-protocol.md).
#![no_std]
#![no_main]

use guests::rt::{Checks, Entry};

guests::guest_main!("sweep", main, x2_argument);

fn main(c: &mut Checks, entry: Entry) {
    guests::sweep::run(c, entry, "sweep", false);
}
