//! `demo`: console output, a few TEST_CALLs and one test-device word.
#![no_std]
#![no_main]

use guests::mmio::{self, TESTDEV_BASE};
use guests::rt::{Checks, Entry};
use guests::{hvc, println};

guests::guest_main!("demo", main);

fn main(c: &mut Checks, _entry: Entry) {
    println!("Hello from an EL1 guest running on arm_vcpu!");

    // TEST_CALL(x1 = 0xD0 + i) returns x1 + 1.
    for i in 0..4 {
        let x1 = 0xD0 + i;
        c.check_eq(format_args!("TEST_CALL(x1 = {x1:#x})"), hvc::k(x1), x1 + 1);
    }

    // One scratch word: write, read back.
    let word = 0xC0DE_5EED;
    mmio::write32(TESTDEV_BASE, word);
    c.check_eq(
        format_args!("test device scratch word at +0x0 (ldr w after str w)"),
        mmio::read32(TESTDEV_BASE),
        word,
    );

    println!("demo guest done");
}
