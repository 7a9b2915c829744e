//! Emulated devices of the test VM: a PL011 console (data and flag registers only)
//! and the scenario test device (see docs/test-protocol.md).
//!
//! The test device is lock-free (atomics): it lives in the VM itself (`Vm::testdev`),
//! outside the VM state lock, so the exit loop serves its accesses without taking
//! the lock (they raise no interrupt, so there is nothing to deliver after them).
//! Its accesses are counted by width per vCPU ([`WidthCounters`], in the vCPU's
//! statistics), by the core running the vCPU: no atomic read-modify-write.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use arm_vcpu::AccessWidth;

/// IPA of the console PL011.
pub const CONSOLE_IPA: u64 = 0x0900_0000;
/// IPA and size of the test device.
pub const TESTDEV_IPA: u64 = 0x0b00_0000;
pub const TESTDEV_SIZE: u64 = 0x1000;
/// Read-only pattern at test device offset 0x100.
pub const TESTDEV_PATTERN: u64 = 0xF0E0_D0C0_B0A0_9080;
/// Bytes of scratch storage at offset 0.
const SCRATCH: u64 = 0x100;
/// The words of the page: the scratch storage, the pattern, zeros (a word for every
/// offset, so that an aligned read is one load with no range check).
const WORDS: usize = TESTDEV_SIZE as usize / 8;
/// The pattern's word.
const PATTERN_WORD: usize = SCRATCH as usize / 8;

/// Accesses counted per width (index: log2 of the width in bytes).
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct WidthCounts(pub [u64; 4]);

impl WidthCounts {
    /// The counts of both.
    pub fn plus(self, other: Self) -> Self {
        let mut s = self;
        for (a, b) in s.0.iter_mut().zip(other.0) {
            *a = a.wrapping_add(b);
        }
        s
    }

    /// All widths.
    pub fn total(self) -> u64 {
        self.0.iter().fold(0u64, |s, &n| s.wrapping_add(n))
    }
}

/// [`WidthCounts`] with one writer at a time (a vCPU's, bumped by the core running
/// it: a plain load and store, read by any core), indexed by the width in bytes (1,
/// 2, 4, 8: no log2 on the access path; the other slots stay zero).
#[derive(Default, Debug)]
pub struct WidthCounters([AtomicU64; 9]);

impl WidthCounters {
    /// One more access of `w`.
    #[inline(always)]
    pub fn bump(&self, w: AccessWidth) {
        if let Some(c) = self.0.get(w.bytes()) {
            c.store(c.load(Relaxed).wrapping_add(1), Relaxed);
        }
    }

    /// The counts so far.
    pub fn get(&self) -> WidthCounts {
        WidthCounts([1, 2, 4, 8].map(|n| self.0[n].load(Relaxed)))
    }
}

/// The test device: 256 bytes of scratch storage and a read-only pattern; reads as
/// zero elsewhere in its page. Little-endian: the byte at offset `o` is byte `o % 8`
/// of word `o / 8`.
pub struct TestDevice {
    /// Words 0..32: the scratch storage; word 32: [`TESTDEV_PATTERN`]; the rest zero
    /// (never written).
    words: [AtomicU64; WORDS],
}

impl Default for TestDevice {
    fn default() -> Self {
        Self {
            words: core::array::from_fn(|i| {
                AtomicU64::new(if i == PATTERN_WORD {
                    TESTDEV_PATTERN
                } else {
                    0
                })
            }),
        }
    }
}

/// The test device's offset of guest-physical address `addr`, if it is in its page
/// (its page number compared, the offset masked).
#[inline(always)]
pub const fn offset(addr: u64) -> Option<u64> {
    if addr / TESTDEV_SIZE == TESTDEV_IPA / TESTDEV_SIZE {
        Some(addr % TESTDEV_SIZE)
    } else {
        None
    }
}

impl TestDevice {
    /// A read of `w` at offset `off` (< [`TESTDEV_SIZE`]): the bytes there in the
    /// low `w` bytes; zero outside the scratch storage and the pattern, and for an
    /// access that straddles their boundary. The bits above the width are not the
    /// access's (the next bytes of the word, or zero): whoever completes the load
    /// truncates it to its width (`complete_mmio_read`, `run_with`), so the device
    /// does not mask it a second time.
    #[inline(always)]
    pub fn read(&self, off: u64, w: AccessWidth) -> u64 {
        let n = w.bytes() as u64;
        // A naturally aligned access (every one from a guest with its MMU off) is
        // inside one word: one load, shifted down.
        match self.words.get((off / 8) as usize) {
            Some(word) if off & (n - 1) == 0 => word.load(Relaxed) >> ((off % 8) * 8),
            _ => self.read_other(off, w),
        }
    }

    /// A read that is not naturally aligned (or beyond the page): byte by byte from
    /// the scratch storage or the pattern when it is inside one of them, zero
    /// otherwise.
    #[cold]
    #[inline(never)]
    fn read_other(&self, off: u64, w: AccessWidth) -> u64 {
        let n = w.bytes() as u64;
        let inside = (off + n <= SCRATCH) || (SCRATCH..=SCRATCH + 8 - n).contains(&off);
        if !inside {
            return 0;
        }
        (0..n).fold(0, |v, i| v | u64::from(self.byte(off + i)) << (i * 8))
    }

    /// The byte at offset `o` (zero beyond the pattern; beyond the page too).
    fn byte(&self, o: u64) -> u8 {
        self.words
            .get((o / 8) as usize)
            .map_or(0, |word| (word.load(Relaxed) >> ((o % 8) * 8)) as u8)
    }

    /// A write of the low `w` bytes of `data` at offset `off` (< [`TESTDEV_SIZE`]):
    /// the bytes that fall in the scratch storage are stored; the rest is ignored.
    /// Out of line: its byte loop would otherwise claim registers across the exit
    /// loop it is inlined into (a constant hoisted for it cost the ID-register path
    /// its own).
    #[inline(never)]
    pub fn write(&self, off: u64, data: u64, w: AccessWidth) {
        for i in 0..w.bytes() as u64 {
            let o = off + i;
            if o >= SCRATCH {
                continue;
            }
            let Some(word) = self.words.get((o / 8) as usize) else {
                continue;
            };
            let sh = (o % 8) * 8;
            let b = (data >> (i * 8)) & 0xff;
            // One byte of the word, atomically (another vCPU may write its neighbours).
            let _ = word.fetch_update(Relaxed, Relaxed, |x| Some(x & !(0xff << sh) | b << sh));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AccessWidth::*;

    /// The device as it was (a byte array under the VM lock), as the reference.
    fn reference_read(scratch: &[u8; 256], off: u64, w: AccessWidth) -> u64 {
        let n = w.bytes();
        let o = off as usize;
        if o + n <= scratch.len() {
            let mut b = [0u8; 8];
            b[..n].copy_from_slice(&scratch[o..o + n]);
            return u64::from_le_bytes(b);
        }
        if (0x100..=0x108 - n as u64).contains(&off) {
            return (TESTDEV_PATTERN >> ((off - 0x100) * 8)) & w.mask();
        }
        0
    }

    #[test]
    fn reads_and_writes_match_a_byte_array_at_every_offset_and_width() {
        let d = TestDevice::default();
        let mut scratch = [0u8; 256];
        let widths = [Byte, Half, Word, Dword];
        let mut x = 0x0123_4567_89ab_cdefu64;
        // Writes of every width at every offset near and in the storage (straddling
        // ones included), each followed by reads of every width everywhere around.
        for off in (0..0x110u64).step_by(3) {
            for &w in &widths {
                x = x.rotate_left(7) ^ 0x9e37_79b9_7f4a_7c15;
                d.write(off, x, w);
                for i in 0..w.bytes() as u64 {
                    if off + i < 0x100 {
                        scratch[(off + i) as usize] = (x >> (i * 8)) as u8;
                    }
                }
            }
            for o in 0..0x118u64 {
                for &w in &widths {
                    let got = d.read(o, w) & w.mask();
                    assert_eq!(got, reference_read(&scratch, o, w), "{o:#x} {w:?}");
                }
            }
        }
        assert_eq!(d.read(0x100, Dword), TESTDEV_PATTERN);
        assert_eq!(d.read(0x104, Word), TESTDEV_PATTERN >> 32);
        assert_eq!(d.read(0x102, Half) & 0xffff, 0xb0a0);
        assert_eq!(d.read(0xff8, Dword), 0);
        assert_eq!(d.read(0xfff, Byte), 0);
        assert_eq!(d.read(0xffe, Dword), 0);
        assert_eq!(d.read(0x108, Byte), 0);
    }

    #[test]
    fn counters_count_by_width() {
        let c = WidthCounters::default();
        for w in [Byte, Word, Half, Dword, Dword] {
            c.bump(w);
        }
        assert_eq!(c.get(), WidthCounts([1, 1, 1, 2]));
        let sum = c.get().plus(WidthCounts([1, 0, 0, 0]));
        assert_eq!(sum, WidthCounts([2, 1, 1, 2]));
        assert_eq!(sum.total(), 6);
    }

    #[test]
    fn offset_is_the_page_only() {
        assert_eq!(offset(TESTDEV_IPA), Some(0));
        assert_eq!(offset(TESTDEV_IPA + 0xfff), Some(0xfff));
        assert_eq!(offset(TESTDEV_IPA + 0x1000), None);
        assert_eq!(offset(TESTDEV_IPA - 1), None);
        assert_eq!(offset(TESTDEV_IPA + (1 << 32)), None);
    }
}
