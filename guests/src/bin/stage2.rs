//! `stage2`: the guest half of the stage-2 geometry scenario. The host runs this guest
//! once per stage-2 configuration it can build on this CPU (one level-1 table, two
//! concatenated level-1 tables, a level-0 root, a VMID above 255); x2 says what this
//! run's tables look like: bits \[3:0\] the `ID_AA64MMFR0_EL1.PARange` the VM's IPA size
//! gives, bits \[63:12\] the IPA of an alias of guest RAM (0: none) that only the
//! second root table (or the second level-0 entry) maps.
#![no_std]
#![no_main]

use guests::rt::{Checks, Entry};
use guests::{println, read_sysreg};

guests::guest_main!("stage2", main, x2_argument);

/// Words the alias check writes through one address and reads through the other.
static mut WORDS: [u64; 4] = [0; 4];

fn main(c: &mut Checks, entry: Entry) {
    let parange = entry.x2 & 0xf;
    let alias = entry.x2 & !0xfff;
    let mmfr0 = read_sysreg!("S3_0_C0_C7_0");
    c.check_eq(
        format_args!("ID_AA64MMFR0_EL1.PARange (the VM's IPA size)"),
        mmfr0 & 0xf,
        parange,
    );
    if alias == 0 {
        println!("guest stage2: no alias in this VM's IPA space");
        return;
    }
    // Raw pointers only: no reference to the `static mut` is made.
    let base = core::ptr::addr_of_mut!(WORDS) as *mut u64;
    for i in 0..4 {
        // SAFETY: `base + i` is inside WORDS; `base + i + alias` is the same RAM
        // through the alias the host mapped (x2), at an IPA above bit 38 that only the
        // second root table covers. Plain aligned 64-bit accesses.
        unsafe {
            let p = base.add(i);
            let q = (p as u64 + alias) as *mut u64;
            let a = 0x5a5a_0000_0000_0000 | (i as u64) << 32 | alias >> 12;
            core::ptr::write_volatile(p, a);
            let got = core::ptr::read_volatile(q);
            c.check_eq(
                format_args!("word {i} read through the alias at {:#x}", q as u64),
                got,
                a,
            );
            let b = !a;
            core::ptr::write_volatile(q, b);
            c.check_eq(
                format_args!(
                    "word {i} written through the alias, read at {:#x}",
                    p as u64
                ),
                core::ptr::read_volatile(p),
                b,
            );
        }
    }
    println!("guest stage2: RAM aliased at IPA +{alias:#x}: 4 words each way");
}
