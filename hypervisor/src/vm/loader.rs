//! Puts a VM's files into its RAM: the kernel (an ELF's segments, or the `Image` /
//! raw bytes at the planned address), the initrd and the device tree, from where
//! QEMU's loader staged them (`platform::STAGING`).

use super::image::{Kernel, Layout};
use super::memory::{sync_for_guest, GuestMemory};
use crate::platform::board::Range;

/// The staging area as a byte slice.
pub fn staging() -> &'static [u8] {
    let s = crate::platform::STAGING;
    // SAFETY: the staging area is RAM reserved for QEMU's loader (the carver never
    // hands it out, see `platform::discover`); the hypervisor only reads it.
    unsafe { core::slice::from_raw_parts(s.base as usize as *const u8, s.size as usize) }
}

/// The `size` bytes staged at physical `addr`, if they lie inside the staging area.
pub fn staged(addr: u64, size: u64) -> Result<&'static [u8], &'static str> {
    let s = crate::platform::STAGING;
    if !s.covers(&Range::new(addr, size)) {
        return Err("a staged file lies outside the staging area");
    }
    let off = (addr - s.base) as usize;
    staging()
        .get(off..off + size as usize)
        .ok_or("a staged file lies outside the staging area")
}

/// Copies `src` into guest RAM at `ipa`, visible to a guest running with caches off.
pub fn copy_to_guest(mem: &GuestMemory, ipa: u64, src: &[u8]) -> Result<(), &'static str> {
    let dst = mem
        .host_ptr(ipa, src.len() as u64)
        .ok_or("a file does not fit in the VM's RAM")?;
    // SAFETY: `host_ptr` checked the range lies in guest RAM, which the hypervisor owns
    // and nothing else references while the guest is being loaded.
    unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) };
    sync_for_guest(dst, src.len());
    Ok(())
}

/// Zeroes `len` bytes of guest RAM at `ipa`.
fn zero_guest(mem: &GuestMemory, ipa: u64, len: u64) -> Result<(), &'static str> {
    let dst = mem
        .host_ptr(ipa, len)
        .ok_or("a segment does not fit in the VM's RAM")?;
    // SAFETY: as in `copy_to_guest`.
    unsafe { core::ptr::write_bytes(dst, 0, len as usize) };
    sync_for_guest(dst, len as usize);
    Ok(())
}

/// Loads `kernel` (the file `bytes`) where `layout` says.
pub fn load_kernel(
    mem: &GuestMemory,
    kernel: &Kernel,
    bytes: &[u8],
    layout: &Layout,
) -> Result<(), &'static str> {
    match kernel {
        Kernel::Elf(e) => {
            for s in &e.segments {
                let src = bytes
                    .get(s.offset as usize..(s.offset + s.filesz) as usize)
                    .ok_or("an ELF segment lies beyond the end of the file")?;
                copy_to_guest(mem, s.paddr, src)?;
                zero_guest(mem, s.paddr + s.filesz, s.memsz - s.filesz)?;
            }
            Ok(())
        }
        Kernel::Linux(_) | Kernel::Raw { .. } => copy_to_guest(mem, layout.kernel, bytes),
    }
}
