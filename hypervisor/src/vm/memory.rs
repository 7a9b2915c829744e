//! Guest memory: a contiguous host-physical region mapped at stage 2, built with
//! `aarch64-paging`'s stage-2 regime.

use aarch64_paging::descriptor::{PhysicalAddress, Stage2Attributes};
use aarch64_paging::idmap::IdTranslation;
use aarch64_paging::paging::{Constraints, MemoryRegion, Stage2};
use aarch64_paging::Mapping;

/// Guest-physical base of guest RAM.
pub const GUEST_RAM_IPA: u64 = 0x4000_0000;
/// Root level of the stage-2 tables and the IPA size it covers.
pub const ROOT_LEVEL: u8 = 1;
/// IPA bits covered by one level-1 root table (4 KiB granule).
pub const IPA_BITS: u8 = 39;

/// A VM's memory: its RAM region and the stage-2 tables that map it.
pub struct GuestMemory {
    // The tables live on the heap; the hypervisor runs with an identity map, so their
    // virtual and physical addresses agree (IdTranslation).
    mapping: Mapping<IdTranslation<Stage2Attributes>, Stage2>,
    /// Host-physical base and size of the RAM.
    pa: u64,
    size: u64,
}

impl GuestMemory {
    /// `size` bytes of guest RAM (normal write-back memory, read/write/execute) carved
    /// from the board's memory for `what`, or the one-line reason it does not fit.
    /// Everything else in the IPA space is unmapped, so guest accesses there exit as
    /// MMIO.
    pub fn alloc(size: u64, what: &str) -> Result<Self, &'static str> {
        let pa = crate::platform::alloc_ram(size, what)?;
        Self::at(pa, size).map_err(|_| "stage-2 mapping failed")
    }

    /// Guest RAM of `size` bytes at host-physical `pa`, mapped at IPA
    /// [`GUEST_RAM_IPA`] (several VMs each get their own region and tables).
    pub fn at(pa: u64, size: u64) -> Result<Self, aarch64_paging::MapError> {
        let mut mapping = Mapping::new(IdTranslation::new(), ROOT_LEVEL as usize, Stage2);
        let attrs = Stage2Attributes::VALID
            | Stage2Attributes::MEMATTR_NORMAL_INNER_WB
            | Stage2Attributes::MEMATTR_NORMAL_OUTER_WB
            | Stage2Attributes::S2AP_ACCESS_RW
            | Stage2Attributes::SH_INNER
            | Stage2Attributes::ACCESS_FLAG;
        let ipa = GUEST_RAM_IPA as usize;
        mapping.map_range(
            &MemoryRegion::new(ipa, ipa + size as usize),
            PhysicalAddress(pa as usize),
            attrs,
            Constraints::empty(),
        )?;
        // Make the table writes visible to the stage-2 walker before it is used.
        // SAFETY: a barrier has no other effect.
        unsafe { core::arch::asm!("dsb ish", options(nostack, preserves_flags)) };
        Ok(Self { mapping, pa, size })
    }

    /// Maps a device region of the physical machine straight into the guest at the same
    /// address (Device-nGnRE, read/write, never executable): a passed-through device.
    /// Only valid before the tables are in use.
    pub fn map_device(&mut self, pa: u64, size: u64) -> Result<(), aarch64_paging::MapError> {
        let attrs = Stage2Attributes::VALID
            | Stage2Attributes::MEMATTR_DEVICE_nGnRE
            | Stage2Attributes::S2AP_ACCESS_RW
            | Stage2Attributes::ACCESS_FLAG
            | Stage2Attributes::XN;
        self.mapping.map_range(
            &MemoryRegion::new(pa as usize, (pa + size) as usize),
            PhysicalAddress(pa as usize),
            attrs,
            Constraints::empty(),
        )?;
        // SAFETY: a barrier has no other effect.
        unsafe { core::arch::asm!("dsb ish", options(nostack, preserves_flags)) };
        Ok(())
    }

    /// Maps the physical device frame at `pa` into the guest at IPA `ipa` (Device-nGnRE,
    /// read/write, never executable): the GICv2 GICV frame at the guest's GICC address.
    /// Only valid before the tables are in use.
    pub fn map_device_at(
        &mut self,
        ipa: u64,
        pa: u64,
        size: u64,
    ) -> Result<(), aarch64_paging::MapError> {
        let attrs = Stage2Attributes::VALID
            | Stage2Attributes::MEMATTR_DEVICE_nGnRE
            | Stage2Attributes::S2AP_ACCESS_RW
            | Stage2Attributes::ACCESS_FLAG
            | Stage2Attributes::XN;
        self.mapping.map_range(
            &MemoryRegion::new(ipa as usize, (ipa + size) as usize),
            PhysicalAddress(pa as usize),
            attrs,
            Constraints::empty(),
        )?;
        // SAFETY: a barrier has no other effect.
        unsafe { core::arch::asm!("dsb ish", options(nostack, preserves_flags)) };
        Ok(())
    }

    /// Host-physical base of the RAM.
    pub fn pa(&self) -> u64 {
        self.pa
    }

    /// Physical address of the root table.
    pub fn root_pa(&self) -> u64 {
        self.mapping.root_address().0 as u64
    }

    /// Host pointer for a guest-physical range inside RAM, or `None` if it is not
    /// entirely inside.
    pub fn host_ptr(&self, ipa: u64, len: u64) -> Option<*mut u8> {
        let off = ipa.checked_sub(GUEST_RAM_IPA)?;
        if off.checked_add(len)? > self.size {
            return None;
        }
        Some((self.pa + off) as *mut u8)
    }
}

/// Cleans the data cache to the point of coherency and invalidates the instruction
/// cache for a range the host wrote and the guest will execute with its MMU (and so
/// its caches) off.
pub fn sync_for_guest(start: *const u8, len: usize) {
    const LINE: usize = 64;
    let mut a = start as usize & !(LINE - 1);
    let end = start as usize + len;
    while a < end {
        // SAFETY: cache maintenance by address on memory the hypervisor owns.
        unsafe { core::arch::asm!("dc cvac, {0}", in(reg) a, options(nostack, preserves_flags)) };
        a += LINE;
    }
    // SAFETY: barriers and a full I-cache invalidation have no other effect.
    unsafe {
        core::arch::asm!(
            "dsb ish",
            "ic iallu",
            "dsb ish",
            "isb",
            options(nostack, preserves_flags)
        )
    };
}
