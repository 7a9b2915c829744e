//! `spectre`: SMCCC_ARCH_WORKAROUND_1/2/3 as a guest sees them (DEN 0028), over HVC
//! and SMC: SMCCC_VERSION, SMCCC_ARCH_FEATURES of each workaround (expected from this
//! CPU's MIDR and ID registers, `guests::workaround`), and a call of each with junk in
//! x1..x3 (x0 = 0 where not required, NOT_SUPPORTED where the CPU needs it and
//! QEMU's firmware lacks it; x1..x3 come back 0). Then TEST_CALL(0x60) reports the
//! answers to the host, which checks them against the crate's decision and that no
//! call reached the firmware.
#![no_std]
#![no_main]

use guests::rt::{Checks, Entry};
use guests::smccc::{call, CONDUITS};
use guests::workaround::{Facts, NOT_SUPPORTED};
use guests::{hvc, println};

guests::guest_main!("spectre", main);

const SMCCC_VERSION: u64 = 0x8000_0000;
const SMCCC_ARCH_FEATURES: u64 = 0x8000_0001;
const WORKAROUNDS: [(u64, &str); 3] = [
    (0x8000_8000, "WORKAROUND_1"),
    (0x8000_7FFF, "WORKAROUND_2"),
    (0x8000_3FFF, "WORKAROUND_3"),
];

fn main(c: &mut Checks, _entry: Entry) {
    let f = Facts::read();
    let want = f.expected();
    println!(
        "guest spectre: MIDR_EL1 {:#x}, CSV2 {}, CSV3 {}, SSBS {}, ECBHB {} -> expected \
         ARCH_FEATURES(WORKAROUND_1/2/3) = {}, {}, {}",
        f.midr, f.csv2, f.csv3, f.ssbs, f.ecbhb, want[0] as i64, want[1] as i64, want[2] as i64
    );
    let mut seen = [0u64; 3];
    for conduit in CONDUITS {
        c.check_eq(
            format_args!("{conduit}: SMCCC_VERSION"),
            call(conduit, [SMCCC_VERSION, 0, 0, 0])[0],
            0x1_0001,
        );
        for (i, (fid, wa)) in WORKAROUNDS.into_iter().enumerate() {
            let got = call(conduit, [SMCCC_ARCH_FEATURES, fid, 0, 0])[0];
            c.check_eq(
                format_args!("{conduit}: SMCCC_ARCH_FEATURES({wa})"),
                got,
                want[i],
            );
            seen[i] = got;
            // The call, with junk where arguments would be (WORKAROUND_2's x1).
            let r = call(conduit, [fid, 0xdead_beef, 0x1234, 0x5678]);
            c.check_eq(
                format_args!("{conduit}: {wa} call: x0"),
                r[0],
                Facts::call_result(want[i]),
            );
            c.check_eq(
                format_args!("{conduit}: {wa} call: x1 | x2 | x3 (nothing comes back)"),
                r[1] | r[2] | r[3],
                0,
            );
            // The 64-bit form of a workaround ID does not exist.
            c.check_eq(
                format_args!("{conduit}: SMCCC_ARCH_FEATURES({wa}, SMC64 ID)"),
                call(conduit, [SMCCC_ARCH_FEATURES, fid | 1 << 30, 0, 0])[0],
                NOT_SUPPORTED,
            );
        }
    }
    let verdict = hvc::test_call([0x60, seen[0], seen[1], seen[2], 0, 0]);
    c.check_eq(
        format_args!("TEST_CALL(0x60): host's check of the decision and the calls"),
        verdict,
        0,
    );
}
