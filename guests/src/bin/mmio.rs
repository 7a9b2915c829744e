//! `mmio`: test-device loads and stores of every width, sign/zero extension, the
//! zero register as source and destination, and the host's access counts.
#![no_std]
#![no_main]

use guests::mmio::{self, TESTDEV_BASE as BASE, TESTDEV_PATTERN as PATTERN};
use guests::rt::{Checks, Entry};
use guests::{hvc, println};

guests::guest_main!("mmio", main);

guests::global_asm_file!("ldr_xzr.S");

extern "C" {
    /// See asm/ldr_xzr.S.
    fn mmio_ldr_xzr(addr: u64, out: *mut [u64; 33]);
}

/// A load instruction (the accessor pre-fills the destination with all ones).
#[derive(Clone, Copy)]
struct Load {
    name: &'static str,
    size: u64,
    f: fn(u64) -> u64,
}

impl Load {
    const fn new(name: &'static str, size: u64, f: fn(u64) -> u64) -> Self {
        Self { name, size, f }
    }
}

/// A store instruction (stores the low `size` bytes of the value register).
#[derive(Clone, Copy)]
struct Store {
    size: u64,
    f: fn(u64, u64),
}

const LDRB: Load = Load::new("ldrb w", 1, mmio::read8);
const LDRH: Load = Load::new("ldrh w", 2, mmio::read16);
const LDR_W: Load = Load::new("ldr w", 4, mmio::read32);
const LDR_X: Load = Load::new("ldr x", 8, mmio::read64);
const LDRSB_X: Load = Load::new("ldrsb x", 1, mmio::read8_sx64);
const LDRSB_W: Load = Load::new("ldrsb w", 1, mmio::read8_sx32);
const LDRSH_X: Load = Load::new("ldrsh x", 2, mmio::read16_sx64);
const LDRSH_W: Load = Load::new("ldrsh w", 2, mmio::read16_sx32);
const LDRSW_X: Load = Load::new("ldrsw x", 4, mmio::read32_sx64);

impl Store {
    const fn new(size: u64, f: fn(u64, u64)) -> Self {
        Self { size, f }
    }
}

const STRB: Store = Store::new(1, mmio::write8);
const STRH: Store = Store::new(2, mmio::write16);
const STR_W: Store = Store::new(4, mmio::write32);
const STR_X: Store = Store::new(8, mmio::write64);

/// Junk placed above the stored bits: narrow stores must ignore it.
const JUNK: u64 = 0xDEAD_BEEF_A5C3_E17B;

const fn slot(size: u64) -> usize {
    match size {
        1 => 0,
        2 => 1,
        4 => 2,
        _ => 3,
    }
}

const fn mask(size: u64) -> u64 {
    if size == 8 {
        u64::MAX
    } else {
        (1 << (size * 8)) - 1
    }
}

/// The test device, counting this guest's accesses by width.
struct Dev {
    reads: [u64; 4],
    writes: [u64; 4],
}

impl Dev {
    fn load(&mut self, ld: Load, off: u64) -> u64 {
        self.reads[slot(ld.size)] += 1;
        (ld.f)(BASE + off)
    }

    /// Stores the low `st.size` bytes of `v`, with junk in the register above them.
    fn store(&mut self, st: Store, off: u64, v: u64) {
        self.writes[slot(st.size)] += 1;
        (st.f)(BASE + off, (v & mask(st.size)) | (JUNK & !mask(st.size)));
    }

    fn expect(&mut self, c: &mut Checks, ld: Load, off: u64, expected: u64) {
        let got = self.load(ld, off);
        c.check_eq(format_args!("{} [dev+{off:#x}]", ld.name), got, expected);
    }
}

/// A value with the top bit of every `size`-byte lane mixed, distinct per `i`.
fn value(i: u64, size: u64) -> u64 {
    ((i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x8080_8080_8080_8080) & mask(size)
}

fn main(c: &mut Checks, _entry: Entry) {
    let mut d = Dev {
        reads: [0; 4],
        writes: [0; 4],
    };

    // 1. The whole scratch area with 8-byte stores, then read back.
    for s in 0..32 {
        d.store(STR_X, s * 8, value(100 + s, 8));
    }
    for s in 0..32 {
        d.expect(c, LDR_X, s * 8, value(100 + s, 8));
    }

    // 2. Each width in its own region (bytes 0x00.., half-words 0x10.., words
    //    0x20.., double words 0x40..0x80): store all, then load all (the loads
    //    pre-fill the destination with ones, so zero extension is checked too), then
    //    read the region back 8 bytes at a time (little-endian layout).
    let regions = [
        (STRB, LDRB, 0x00, 16),
        (STRH, LDRH, 0x10, 8),
        (STR_W, LDR_W, 0x20, 8),
        (STR_X, LDR_X, 0x40, 8),
    ];
    for (st, ld, region, count) in regions {
        let size = st.size;
        for i in 0..count {
            d.store(st, region + i * size, value(region + i, size));
        }
        for i in 0..count {
            d.expect(c, ld, region + i * size, value(region + i, size));
        }
        let per = 8 / size;
        for q in 0..count / per {
            let mut expected = 0;
            for j in 0..per {
                expected |= value(region + q * per + j, size) << (j * size * 8);
            }
            d.expect(c, LDR_X, region + q * 8, expected);
        }
    }

    // 3. One 8-byte store read back in narrower pieces (little endian).
    let p = 0x8877_6655_4433_2211;
    d.store(STR_X, 0x80, p);
    for i in 0..8 {
        d.expect(c, LDRB, 0x80 + i, (p >> (8 * i)) & 0xFF);
    }
    for i in 0..4 {
        d.expect(c, LDRH, 0x80 + 2 * i, (p >> (16 * i)) & 0xFFFF);
    }
    for i in 0..2 {
        d.expect(c, LDR_W, 0x80 + 4 * i, (p >> (32 * i)) & 0xFFFF_FFFF);
    }

    // 4. Narrow stores change only their own bytes.
    d.store(STR_X, 0x90, u64::MAX);
    d.store(STRB, 0x93, 0x00);
    d.store(STRH, 0x96, 0x1234);
    d.expect(c, LDR_X, 0x90, 0x1234_FFFF_00FF_FFFF);
    d.store(STR_X, 0x98, 0);
    d.store(STR_W, 0x9C, 0xCAFE_BABE);
    d.expect(c, LDR_X, 0x98, 0xCAFE_BABE_0000_0000);
    d.store(STRB, 0xFF, 0x5A);
    d.expect(c, LDRB, 0xFF, 0x5A);

    // 5. The zero register as the store source.
    d.store(STR_X, 0xA0, u64::MAX);
    d.writes[slot(8)] += 1;
    mmio::write64_zr(BASE + 0xA0);
    d.expect(c, LDR_X, 0xA0, 0);
    d.store(STR_X, 0xA8, u64::MAX);
    d.writes[slot(4)] += 1;
    mmio::write32_zr(BASE + 0xA8);
    d.expect(c, LDR_X, 0xA8, 0xFFFF_FFFF_0000_0000);

    // 6. Sign and zero extension of the read-only pattern (destination pre-filled
    //    with all ones), then at other offsets of it.
    d.expect(c, LDRSB_X, 0x100, 0xFFFF_FFFF_FFFF_FF80);
    d.expect(c, LDRSB_W, 0x100, 0x0000_0000_FFFF_FF80);
    d.expect(c, LDRSH_X, 0x100, 0xFFFF_FFFF_FFFF_9080);
    d.expect(c, LDRSH_W, 0x100, 0x0000_0000_FFFF_9080);
    d.expect(c, LDRSW_X, 0x100, 0xFFFF_FFFF_B0A0_9080);
    d.expect(c, LDRB, 0x100, 0x80);
    d.expect(c, LDRH, 0x100, 0x9080);
    d.expect(c, LDR_W, 0x100, 0xB0A0_9080);
    d.expect(c, LDR_X, 0x100, PATTERN);
    d.expect(c, LDRB, 0x107, 0xF0);
    d.expect(c, LDRSB_X, 0x107, 0xFFFF_FFFF_FFFF_FFF0);
    d.expect(c, LDRH, 0x106, 0xF0E0);
    d.expect(c, LDRSH_W, 0x102, 0xFFFF_B0A0);
    d.expect(c, LDR_W, 0x104, 0xF0E0_D0C0);
    d.expect(c, LDRSW_X, 0x104, 0xFFFF_FFFF_F0E0_D0C0);
    //    ...and signed loads of non-negative values must not extend ones.
    d.store(STRB, 0xB0, 0x7F);
    d.store(STRH, 0xB2, 0x7FFE);
    d.store(STR_W, 0xB4, 0x7FFF_FFFD);
    d.expect(c, LDRSB_X, 0xB0, 0x7F);
    d.expect(c, LDRSB_W, 0xB0, 0x7F);
    d.expect(c, LDRSH_X, 0xB2, 0x7FFE);
    d.expect(c, LDRSH_W, 0xB2, 0x7FFE);
    d.expect(c, LDRSW_X, 0xB4, 0x7FFF_FFFD);

    // 7. The pattern ignores writes.
    d.store(STR_X, 0x100, 0);
    d.store(STRB, 0x101, 0);
    d.store(STR_W, 0x104, 0);
    d.expect(c, LDR_X, 0x100, PATTERN);

    // 8. The rest of the page reads 0 and ignores writes.
    d.expect(c, LDR_X, 0x108, 0);
    d.expect(c, LDRB, 0x200, 0);
    d.store(STR_X, 0x200, u64::MAX);
    d.expect(c, LDR_X, 0x200, 0);
    d.expect(c, LDR_W, 0xFFC, 0);

    // 9. `ldr xzr, [x0]`: the value is discarded; SP and x0..x30 are unchanged.
    let mut out = [0u64; 33];
    d.reads[slot(8)] += 1;
    // SAFETY: mmio_ldr_xzr follows the C ABI (saves x18..x30 and restores SP) and
    // writes exactly 33 u64s to `out`.
    unsafe { mmio_ldr_xzr(BASE + 0x100, &mut out) };
    for (k, &got) in out.iter().enumerate().take(31) {
        let k = k as u64;
        let expected = if k == 0 {
            BASE + 0x100
        } else {
            0x5A5A_0000_0000_0000 ^ (k * 0x0101_0101_0101_0101)
        };
        c.check_eq(format_args!("x{k} around `ldr xzr, [x0]`"), got, expected);
    }
    c.check_eq(format_args!("SP around `ldr xzr, [x0]`"), out[32], out[31]);

    // 10. The host's counts of test-device accesses must match ours.
    let [r1, r2, r4, r8] = d.reads;
    let [w1, w2, w4, w8] = d.writes;
    println!("guest mmio: device reads 1/2/4/8 bytes: {r1}/{r2}/{r4}/{r8}");
    println!("guest mmio: device writes 1/2/4/8 bytes: {w1}/{w2}/{w4}/{w8}");
    c.check_eq(
        format_args!("TEST_CALL(0x11, reads {r1}/{r2}/{r4}/{r8}): host read counts differ"),
        hvc::test_call([0x11, r1, r2, r4, r8, 0]),
        0,
    );
    c.check_eq(
        format_args!("TEST_CALL(0x12, writes {w1}/{w2}/{w4}/{w8}): host write counts differ"),
        hvc::test_call([0x12, w1, w2, w4, w8, 0]),
        0,
    );
}
