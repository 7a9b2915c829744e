//! Kernel images and where a VM's files go in its RAM. Pure (no hardware, `core` and
//! `alloc`), host-tested in xtask.
//!
//! A kernel is recognised by its content: an ELF64 AArch64 executable by its ELF
//! header, a Linux arm64 `Image` by the header `Documentation/arch/arm64/booting.rst`
//! gives it (magic `ARM\x64` at offset 0x38), anything else is a raw binary, which
//! needs a load offset. The layout then follows the arm64 boot protocol: the `Image`
//! at `text_offset` above a 2 MiB-aligned base, the initrd and the device tree above
//! the kernel's `image_size` (its BSS included), each 2 MiB-aligned, all inside RAM.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::config::KernelFormat;

/// What a kernel image is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// A Linux arm64 `Image`.
    Linux(LinuxHeader),
    /// An ELF executable: its entry and loadable segments.
    Elf(Elf),
    /// A raw binary, loaded and entered at `load_offset` from the start of RAM.
    Raw { load_offset: u64 },
}

/// The header of a Linux arm64 `Image` (booting.rst, "Call the kernel image").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinuxHeader {
    /// `text_offset`: the Image sits this far above a 2 MiB-aligned base.
    pub text_offset: u64,
    /// `image_size`: bytes the kernel occupies from its start, BSS included.
    pub image_size: u64,
}

/// One `PT_LOAD` segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Offset of its bytes in the file.
    pub offset: u64,
    /// Guest-physical address.
    pub paddr: u64,
    pub filesz: u64,
    pub memsz: u64,
}

/// An ELF executable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Elf {
    pub entry: u64,
    pub segments: Vec<Segment>,
}

/// Why an image cannot be used (one line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageError(pub String);

fn fail<T>(m: impl Into<String>) -> Result<T, ImageError> {
    Err(ImageError(m.into()))
}

fn u16_at(b: &[u8], off: usize) -> Result<u16, ImageError> {
    match b.get(off..off.saturating_add(2)) {
        Some(s) => Ok(u16::from_le_bytes([s[0], s[1]])),
        None => fail("truncated image"),
    }
}
fn u32_at(b: &[u8], off: usize) -> Result<u32, ImageError> {
    match b.get(off..off.saturating_add(4)) {
        Some(s) => Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]])),
        None => fail("truncated image"),
    }
}
fn u64_at(b: &[u8], off: usize) -> Result<u64, ImageError> {
    match b.get(off..off.saturating_add(8)) {
        Some(s) => {
            let mut a = [0u8; 8];
            a.copy_from_slice(s);
            Ok(u64::from_le_bytes(a))
        }
        None => fail("truncated image"),
    }
}

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
/// "ARM\x64", little endian, at offset 0x38 of an arm64 Image.
const IMAGE_MAGIC: u32 = 0x644d_5241;

/// Whether `b` starts like a Linux arm64 Image.
pub fn is_linux_image(b: &[u8]) -> bool {
    u32_at(b, 0x38) == Ok(IMAGE_MAGIC)
}

/// Reads a Linux arm64 Image header.
pub fn linux_header(b: &[u8]) -> Result<LinuxHeader, ImageError> {
    if b.len() < 64 {
        return fail(format!(
            "a {}-byte file is no Linux Image (its header is 64 bytes)",
            b.len()
        ));
    }
    if !is_linux_image(b) {
        return fail("not a Linux arm64 Image (no ARM\\x64 magic at 0x38)");
    }
    // flags bit 0: kernel endianness, 1 = big endian.
    if u64_at(b, 0x18)? & 1 != 0 {
        return fail("a big-endian kernel");
    }
    let text_offset = u64_at(b, 0x08)?;
    let mut image_size = u64_at(b, 0x10)?;
    if image_size == 0 {
        // Kernels before 3.17 leave it 0: booting.rst says assume 16 MiB... of which
        // the file is at least part.
        image_size = (16u64 << 20).max(b.len() as u64);
    }
    if text_offset >= 2 << 20 {
        return fail("text_offset beyond the 2 MiB alignment");
    }
    Ok(LinuxHeader {
        text_offset,
        image_size,
    })
}

/// Reads an ELF64 little-endian AArch64 executable's entry and `PT_LOAD` segments
/// (bounds-checked: every segment's bytes lie in the file).
pub fn elf(b: &[u8]) -> Result<Elf, ImageError> {
    if b.get(0..4) != Some(&ELF_MAGIC[..]) {
        return fail("not an ELF file");
    }
    // EI_CLASS = 2 (64-bit), EI_DATA = 1 (little endian), e_machine = 183 (AArch64).
    if b.get(4) != Some(&2) || b.get(5) != Some(&1) {
        return fail("not an ELF64 little-endian file");
    }
    if u16_at(b, 18)? != 183 {
        return fail("an ELF for another machine than AArch64");
    }
    let entry = u64_at(b, 24)?;
    let phoff = u64_at(b, 32)? as usize;
    let phentsize = u16_at(b, 54)? as usize;
    let phnum = u16_at(b, 56)? as usize;
    if phentsize < 56 {
        return fail("ELF program headers too small");
    }
    let mut segments = Vec::new();
    for i in 0..phnum {
        let ph = phoff
            .checked_add(i.saturating_mul(phentsize))
            .ok_or_else(|| ImageError("truncated image".into()))?;
        if u32_at(b, ph)? != 1 {
            continue; // not PT_LOAD
        }
        let s = Segment {
            offset: u64_at(b, ph + 8)?,
            paddr: u64_at(b, ph + 24)?,
            filesz: u64_at(b, ph + 32)?,
            memsz: u64_at(b, ph + 40)?,
        };
        if s.filesz > s.memsz {
            return fail("an ELF segment's file size is above its memory size");
        }
        match s.offset.checked_add(s.filesz) {
            Some(end) if end <= b.len() as u64 => {}
            _ => return fail("an ELF segment lies beyond the end of the file"),
        }
        segments.push(s);
    }
    if segments.is_empty() {
        return fail("an ELF without loadable segments");
    }
    Ok(Elf { entry, segments })
}

/// What `b` is, read as `format` says (`Auto`: by its content).
pub fn recognise(
    b: &[u8],
    format: KernelFormat,
    load_offset: Option<u64>,
) -> Result<Kernel, ImageError> {
    if b.is_empty() {
        return fail("the kernel file is empty");
    }
    let raw = || {
        match load_offset {
        Some(o) => Ok(Kernel::Raw { load_offset: o }),
        None => fail(
            "neither an ELF nor a Linux arm64 Image: a raw binary needs `load_offset` (--load-offset)",
        ),
    }
    };
    match format {
        KernelFormat::Image => linux_header(b).map(Kernel::Linux),
        KernelFormat::Elf => elf(b).map(Kernel::Elf),
        KernelFormat::Raw => raw(),
        KernelFormat::Auto => {
            if b.starts_with(ELF_MAGIC) {
                elf(b).map(Kernel::Elf)
            } else if is_linux_image(b) {
                linux_header(b).map(Kernel::Linux)
            } else {
                raw()
            }
        }
    }
}

const MIB2: u64 = 2 << 20;

fn align_up(v: u64, a: u64) -> Option<u64> {
    Some(v.checked_add(a - 1)? & !(a - 1))
}

/// Where a VM's files go (guest-physical addresses) and where it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Where the kernel file's bytes go (ELF: unused, segments go to their addresses).
    pub kernel: u64,
    /// The entry point (vCPU 0's PC).
    pub entry: u64,
    /// The initrd's [start, end).
    pub initrd: Option<(u64, u64)>,
    /// The device tree's address (x0 at entry).
    pub dtb: u64,
}

/// Plans the layout in RAM `[ram, ram + size)` for `kernel` (its file `kernel_len`
/// bytes), an initrd of `initrd_len` bytes, and a device tree of at most `dtb_max`
/// bytes. Linux: the Image 2 MiB above the start of RAM plus its `text_offset`, then
/// the initrd, then the device tree, each 2 MiB-aligned. ELF: its segments must lie
/// in RAM; initrd and device tree above the highest. Raw: the image at `load_offset`;
/// the device tree at the start of RAM when the offset leaves room for it (U-Boot
/// looks there), otherwise above the image like the initrd.
pub fn plan(
    kernel: &Kernel,
    kernel_len: u64,
    initrd_len: Option<u64>,
    dtb_max: u64,
    ram: u64,
    size: u64,
) -> Result<Layout, ImageError> {
    let ram_end = ram
        .checked_add(size)
        .ok_or_else(|| ImageError("RAM beyond the address space".into()))?;
    let too_big = |what: &str, need: u64| -> ImageError {
        ImageError(format!(
            "{what} does not fit the VM's {} MiB of RAM (needs {} MiB; give the VM more `memory`)",
            size >> 20,
            need.saturating_sub(ram).div_ceil(1 << 20)
        ))
    };
    let (kernel_at, entry, kernel_end, mut dtb_low) = match kernel {
        Kernel::Linux(h) => {
            let base = ram + MIB2;
            let at = base + h.text_offset;
            (at, at, at.saturating_add(h.image_size), None)
        }
        Kernel::Elf(e) => {
            let mut end = ram;
            for s in &e.segments {
                let seg_end = s.paddr.checked_add(s.memsz);
                match seg_end {
                    Some(se) if s.paddr >= ram && se <= ram_end => end = end.max(se),
                    _ => {
                        return fail(format!(
                            "an ELF segment at {:#x} (+{:#x}) lies outside the VM's RAM {ram:#x}..{ram_end:#x}",
                            s.paddr, s.memsz
                        ))
                    }
                }
            }
            if !(ram..ram_end).contains(&e.entry) {
                return fail(format!(
                    "the ELF's entry {:#x} lies outside the VM's RAM",
                    e.entry
                ));
            }
            (ram, e.entry, end, None)
        }
        Kernel::Raw { load_offset } => {
            let at = ram
                .checked_add(*load_offset)
                .ok_or_else(|| ImageError("load_offset beyond the address space".into()))?;
            if load_offset % 4 != 0 {
                return fail("load_offset must be 4-byte aligned (it is the entry point)");
            }
            let low = (*load_offset >= dtb_max).then_some(ram);
            (at, at, at.saturating_add(kernel_len), low)
        }
    };
    if kernel_end > ram_end {
        return Err(too_big("the kernel", kernel_end));
    }
    let mut cursor = align_up(kernel_end, MIB2).ok_or_else(|| too_big("the kernel", u64::MAX))?;
    let initrd = match initrd_len {
        Some(len) => {
            let start = cursor;
            let end = start.saturating_add(len);
            if end > ram_end {
                return Err(too_big("the initrd", end));
            }
            cursor = align_up(end, MIB2).ok_or_else(|| too_big("the initrd", u64::MAX))?;
            Some((start, end))
        }
        None => None,
    };
    let dtb = match dtb_low.take() {
        Some(d) => d,
        None => {
            if cursor.saturating_add(dtb_max) > ram_end {
                return Err(too_big("the device tree", cursor.saturating_add(dtb_max)));
            }
            cursor
        }
    };
    Ok(Layout {
        kernel: kernel_at,
        entry,
        initrd,
        dtb,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn image(text_offset: u64, image_size: u64, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        b[8..16].copy_from_slice(&text_offset.to_le_bytes());
        b[16..24].copy_from_slice(&image_size.to_le_bytes());
        b[0x38..0x3c].copy_from_slice(&IMAGE_MAGIC.to_le_bytes());
        b
    }

    fn elf_file(entry: u64, segs: &[(u64, u64, u64)]) -> Vec<u8> {
        let phoff = 64u64;
        let mut b = vec![0u8; 64 + 56 * segs.len() + 0x100];
        b[0..4].copy_from_slice(ELF_MAGIC);
        b[4] = 2;
        b[5] = 1;
        b[18..20].copy_from_slice(&183u16.to_le_bytes());
        b[24..32].copy_from_slice(&entry.to_le_bytes());
        b[32..40].copy_from_slice(&phoff.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&(segs.len() as u16).to_le_bytes());
        for (i, &(paddr, filesz, memsz)) in segs.iter().enumerate() {
            let p = 64 + 56 * i;
            b[p..p + 4].copy_from_slice(&1u32.to_le_bytes());
            b[p + 8..p + 16].copy_from_slice(&0u64.to_le_bytes());
            b[p + 24..p + 32].copy_from_slice(&paddr.to_le_bytes());
            b[p + 32..p + 40].copy_from_slice(&filesz.to_le_bytes());
            b[p + 40..p + 48].copy_from_slice(&memsz.to_le_bytes());
        }
        b
    }

    const RAM: u64 = 0x4000_0000;

    #[test]
    fn recognises_each_kind() {
        let img = image(0, 0x200_0000, 4096);
        assert_eq!(
            recognise(&img, KernelFormat::Auto, None),
            Ok(Kernel::Linux(LinuxHeader {
                text_offset: 0,
                image_size: 0x200_0000
            }))
        );
        let e = elf_file(0x4008_0000, &[(0x4008_0000, 0x100, 0x2000)]);
        assert!(matches!(
            recognise(&e, KernelFormat::Auto, None),
            Ok(Kernel::Elf(Elf {
                entry: 0x4008_0000,
                ..
            }))
        ));
        let raw = vec![0x14u8; 1000];
        assert_eq!(
            recognise(&raw, KernelFormat::Auto, Some(0x20_0000)),
            Ok(Kernel::Raw {
                load_offset: 0x20_0000
            })
        );
        assert!(recognise(&raw, KernelFormat::Auto, None)
            .unwrap_err()
            .0
            .contains("needs `load_offset`"));
        // Told what it is, a file that is not says so.
        assert!(recognise(&raw, KernelFormat::Image, None)
            .unwrap_err()
            .0
            .starts_with("not a Linux arm64 Image"));
        assert_eq!(
            recognise(&img, KernelFormat::Elf, None).unwrap_err().0,
            "not an ELF file"
        );
        assert_eq!(
            recognise(&[], KernelFormat::Auto, None).unwrap_err().0,
            "the kernel file is empty"
        );
    }

    #[test]
    fn malformed_images() {
        let mut big_endian = image(0, 0x100_0000, 4096);
        big_endian[0x18] = 1;
        assert_eq!(
            linux_header(&big_endian).unwrap_err().0,
            "a big-endian kernel"
        );
        assert!(linux_header(&[0u8; 30])
            .unwrap_err()
            .0
            .contains("no Linux Image"));
        assert!(
            linux_header(&image(2 << 20, 0x100_0000, 4096)).is_err(),
            "text_offset"
        );
        // Pre-3.17 kernels: image_size 0 means 16 MiB.
        assert_eq!(
            linux_header(&image(0x8_0000, 0, 4096)).unwrap().image_size,
            16 << 20
        );
        let mut e = elf_file(0x4008_0000, &[(0x4008_0000, 0x100, 0x2000)]);
        e[18] = 62; // x86-64
        assert_eq!(
            elf(&e).unwrap_err().0,
            "an ELF for another machine than AArch64"
        );
        let past = elf_file(0x4008_0000, &[(0x4008_0000, 0x10_0000, 0x10_0000)]);
        assert_eq!(
            elf(&past).unwrap_err().0,
            "an ELF segment lies beyond the end of the file"
        );
        let fsz = elf_file(0x4008_0000, &[(0x4008_0000, 0x20, 0x10)]);
        assert!(elf(&fsz).is_err());
        assert!(elf(&elf_file(0x4008_0000, &[])).is_err());
        let mut short = elf_file(0x4008_0000, &[(0x4008_0000, 0x10, 0x10)]);
        short.truncate(70);
        assert_eq!(elf(&short).unwrap_err().0, "truncated image");
    }

    #[test]
    fn linux_layout() {
        let k = Kernel::Linux(LinuxHeader {
            text_offset: 0,
            image_size: 0x1d0_0000,
        });
        let l = plan(&k, 27_000_000, Some(1_850_860), 64 << 10, RAM, 256 << 20).unwrap();
        assert_eq!(l.kernel, RAM + 0x20_0000);
        assert_eq!(l.entry, l.kernel);
        // Above the kernel's image_size, 2 MiB-aligned; then the device tree.
        assert_eq!(
            l.initrd,
            Some((RAM + 0x200_0000, RAM + 0x200_0000 + 1_850_860))
        );
        assert_eq!(l.dtb, RAM + 0x220_0000);
        // Too little RAM says how much is needed.
        let e = plan(&k, 27_000_000, Some(1 << 20), 64 << 10, RAM, 16 << 20).unwrap_err();
        assert_eq!(
            e.0,
            "the kernel does not fit the VM's 16 MiB of RAM (needs 31 MiB; give the VM more `memory`)"
        );
        assert!(plan(&k, 1, Some(300 << 20), 64 << 10, RAM, 256 << 20)
            .unwrap_err()
            .0
            .starts_with("the initrd does not fit"));
    }

    #[test]
    fn elf_and_raw_layouts() {
        let e = match recognise(
            &elf_file(0x4008_0000, &[(0x4008_0000, 0x100, 0x30_0000)]),
            KernelFormat::Auto,
            None,
        ) {
            Ok(k) => k,
            Err(e) => panic!("{e:?}"),
        };
        let l = plan(&e, 0x400, None, 64 << 10, RAM, 256 << 20).unwrap();
        assert_eq!(
            (l.entry, l.initrd, l.dtb),
            (0x4008_0000, None, RAM + 0x40_0000)
        );
        let outside = elf(&elf_file(0x4008_0000, &[(0x2000_0000, 0x10, 0x10)])).unwrap();
        assert!(plan(&Kernel::Elf(outside), 0, None, 4096, RAM, 256 << 20)
            .unwrap_err()
            .0
            .contains("outside the VM's RAM"));
        // U-Boot: raw at 2 MiB, its device tree at the start of RAM.
        let u = Kernel::Raw {
            load_offset: 0x20_0000,
        };
        let l = plan(&u, 971_304, None, 64 << 10, RAM, 256 << 20).unwrap();
        assert_eq!(
            (l.kernel, l.entry, l.dtb),
            (RAM + 0x20_0000, RAM + 0x20_0000, RAM)
        );
        // A raw image at the start of RAM: the device tree above it.
        let l = plan(
            &Kernel::Raw { load_offset: 0 },
            0x1000,
            None,
            4096,
            RAM,
            256 << 20,
        )
        .unwrap();
        assert_eq!(l.dtb, RAM + 0x20_0000);
        assert!(plan(
            &Kernel::Raw { load_offset: 2 },
            4,
            None,
            4096,
            RAM,
            256 << 20
        )
        .is_err());
    }
}
