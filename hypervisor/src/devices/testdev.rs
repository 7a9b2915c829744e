//! Emulated devices of the test VM: a PL011 console (data and flag registers only)
//! and the scenario test device (see docs/test-protocol.md).

use arm_vcpu::AccessWidth;

/// IPA of the console PL011.
pub const CONSOLE_IPA: u64 = 0x0900_0000;
/// IPA and size of the test device.
pub const TESTDEV_IPA: u64 = 0x0b00_0000;
pub const TESTDEV_SIZE: u64 = 0x1000;
/// Read-only pattern at test device offset 0x100.
pub const TESTDEV_PATTERN: u64 = 0xF0E0_D0C0_B0A0_9080;

/// Accesses counted per width (index: log2 of the width in bytes).
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct WidthCounts(pub [u64; 4]);

impl WidthCounts {
    fn add(&mut self, w: AccessWidth) {
        let i = match w {
            AccessWidth::Byte => 0,
            AccessWidth::Half => 1,
            AccessWidth::Word => 2,
            AccessWidth::Dword => 3,
        };
        self.0[i] += 1;
    }
}

/// The test device: 256 bytes of scratch storage and a read-only pattern.
pub struct TestDevice {
    scratch: [u8; 256],
    pub reads: WidthCounts,
    pub writes: WidthCounts,
}

impl Default for TestDevice {
    fn default() -> Self {
        Self {
            scratch: [0; 256],
            reads: WidthCounts::default(),
            writes: WidthCounts::default(),
        }
    }
}

impl TestDevice {
    pub fn read(&mut self, off: u64, w: AccessWidth) -> u64 {
        self.reads.add(w);
        let n = w.bytes();
        let o = off as usize;
        if o + n <= self.scratch.len() {
            let mut b = [0u8; 8];
            b[..n].copy_from_slice(&self.scratch[o..o + n]);
            return u64::from_le_bytes(b);
        }
        if (0x100..=0x108 - n as u64).contains(&off) {
            return (TESTDEV_PATTERN >> ((off - 0x100) * 8)) & w.mask();
        }
        // Straddling accesses cannot happen (accesses are naturally aligned); the rest
        // of the page reads as zero.
        0
    }

    pub fn write(&mut self, off: u64, w: AccessWidth, data: u64) {
        self.writes.add(w);
        for i in 0..w.bytes() as u64 {
            let o = off + i;
            if o < 0x100 {
                self.scratch[o as usize] = (data >> (i * 8)) as u8;
            }
        }
    }
}
