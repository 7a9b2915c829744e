//! Loads a guest image from the staging area (where QEMU's `-device loader` put the
//! file bytes) into guest RAM.
//!
//! Only ELF64 little-endian AArch64 executables are accepted for now. The parser is a
//! few bounds-checked reads of the header and program headers; a general ELF crate
//! would add far more code than this needs.

use crate::memory::{sync_for_guest, GuestMemory};

/// Physical address of the staging area and its size.
pub const STAGING_PA: u64 = 0x4800_0000;
pub const STAGING_SIZE: u64 = 0x0800_0000;

/// Why an image could not be loaded (fields are reported through `Debug`).
#[derive(Debug)]
#[allow(dead_code)]
pub enum LoadError {
    NotElf,
    Unsupported(&'static str),
    Truncated,
    OutsideGuestRam { ipa: u64, len: u64 },
}

fn read_u16(b: &[u8], off: usize) -> Result<u16, LoadError> {
    let s = b.get(off..off + 2).ok_or(LoadError::Truncated)?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}
fn read_u32(b: &[u8], off: usize) -> Result<u32, LoadError> {
    let s = b.get(off..off + 4).ok_or(LoadError::Truncated)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}
fn read_u64(b: &[u8], off: usize) -> Result<u64, LoadError> {
    let s = b.get(off..off + 8).ok_or(LoadError::Truncated)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Ok(u64::from_le_bytes(a))
}

/// Loads the PT_LOAD segments of the ELF in `image` into guest RAM; returns the entry
/// point (an IPA).
pub fn load_elf(image: &[u8], mem: &GuestMemory) -> Result<u64, LoadError> {
    if image.get(0..4) != Some(b"\x7fELF") {
        return Err(LoadError::NotElf);
    }
    // EI_CLASS = 2 (64-bit), EI_DATA = 1 (little endian), e_machine = 183 (AArch64).
    if image[4] != 2 || image[5] != 1 {
        return Err(LoadError::Unsupported("not ELF64 little endian"));
    }
    if read_u16(image, 18)? != 183 {
        return Err(LoadError::Unsupported("not an AArch64 ELF"));
    }
    let entry = read_u64(image, 24)?;
    let phoff = read_u64(image, 32)? as usize;
    let phentsize = read_u16(image, 54)? as usize;
    let phnum = read_u16(image, 56)? as usize;
    if phentsize < 56 {
        return Err(LoadError::Unsupported("program header too small"));
    }
    for i in 0..phnum {
        let ph = phoff
            .checked_add(i * phentsize)
            .ok_or(LoadError::Truncated)?;
        if read_u32(image, ph)? != 1 {
            continue; // not PT_LOAD
        }
        let offset = read_u64(image, ph + 8)? as usize;
        let paddr = read_u64(image, ph + 24)?;
        let filesz = read_u64(image, ph + 32)?;
        let memsz = read_u64(image, ph + 40)?;
        if filesz > memsz {
            return Err(LoadError::Unsupported(
                "segment file size above memory size",
            ));
        }
        let src = image
            .get(
                offset
                    ..offset
                        .checked_add(filesz as usize)
                        .ok_or(LoadError::Truncated)?,
            )
            .ok_or(LoadError::Truncated)?;
        let dst = mem
            .host_ptr(paddr, memsz)
            .ok_or(LoadError::OutsideGuestRam {
                ipa: paddr,
                len: memsz,
            })?;
        // SAFETY: `host_ptr` checked that [paddr, paddr + memsz) lies in guest RAM, which
        // the hypervisor owns and nothing else references while the guest is loaded.
        unsafe {
            core::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len());
            core::ptr::write_bytes(dst.add(src.len()), 0, (memsz - filesz) as usize);
        }
        sync_for_guest(dst, memsz as usize);
    }
    if mem.host_ptr(entry, 4).is_none() {
        return Err(LoadError::OutsideGuestRam { ipa: entry, len: 4 });
    }
    Ok(entry)
}

/// The staging area as a byte slice.
pub fn staging() -> &'static [u8] {
    // SAFETY: the staging area is RAM reserved for QEMU's loader (see the test
    // protocol); the hypervisor never writes it.
    unsafe { core::slice::from_raw_parts(STAGING_PA as *const u8, STAGING_SIZE as usize) }
}

/// The header of a Linux arm64 `Image` (Documentation/arch/arm64/booting.rst).
#[derive(Debug, Clone, Copy)]
pub struct LinuxImage {
    /// `text_offset`: the Image must sit this far above a 2 MiB-aligned base.
    pub text_offset: u64,
    /// `image_size`: bytes the kernel occupies from its start, BSS included.
    pub image_size: u64,
}

/// Reads and checks the header at the start of `image` (magic "ARM\x64" at 0x38).
pub fn linux_header(image: &[u8]) -> Result<LinuxImage, LoadError> {
    if read_u32(image, 0x38)? != 0x644d_5241 {
        return Err(LoadError::Unsupported(
            "not a Linux arm64 Image (no ARM\\x64 magic)",
        ));
    }
    let flags = read_u64(image, 0x18)?;
    // flags bit 0: kernel endianness, 1 = big endian.
    if flags & 1 != 0 {
        return Err(LoadError::Unsupported("big-endian kernel"));
    }
    let text_offset = read_u64(image, 0x08)?;
    let mut image_size = read_u64(image, 0x10)?;
    if image_size == 0 {
        // Kernels before 3.17 leave it 0: assume the documented 16 MiB.
        image_size = 16 << 20;
    }
    Ok(LinuxImage {
        text_offset,
        image_size,
    })
}

/// Copies `len` bytes of `src` into guest RAM at `ipa`, making them visible to a guest
/// running with caches off.
pub fn copy_to_guest(mem: &GuestMemory, ipa: u64, src: &[u8]) -> Result<(), LoadError> {
    let dst = mem
        .host_ptr(ipa, src.len() as u64)
        .ok_or(LoadError::OutsideGuestRam {
            ipa,
            len: src.len() as u64,
        })?;
    // SAFETY: `host_ptr` checked the range lies in guest RAM, which the hypervisor owns
    // and nothing else references while the guest is being loaded.
    unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) };
    sync_for_guest(dst, src.len());
    Ok(())
}
