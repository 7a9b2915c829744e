//! Everything that touches the hardware: system registers, the vectors and the world
//! switch. Only built for aarch64; the rest of the crate is plain logic.

use core::arch::{asm, global_asm};

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::*;

use crate::context::{fp_offsets, offsets, FpSimdState, RegFile, WorldSwitch};
use crate::percpu::CpuFeatures;

global_asm!(
    include_str!("exception.S"),
    GPR = const offsets::GPR,
    ELR = const offsets::ELR,
    HOST_X19 = const offsets::HOST_X19,
    HOST_X30 = const offsets::HOST_X30,
    SERROR_ESR = const offsets::SERROR_ESR,
    HOST_FRAME = const offsets::HOST_TRAP_FRAME,
    HOST_ELR = const offsets::HOST_ELR,
    HOST_ESR = const offsets::HOST_ESR,
    FPCR = const fp_offsets::FPCR,
    MUTATE = const cfg!(arm_vcpu_mutate = "gpr-restore") as u8,
);

extern "C" {
    static __arm_vcpu_vectors: u8;
    fn __arm_vcpu_fpsimd_save(state: *mut FpSimdState);
    fn __arm_vcpu_fpsimd_restore(state: *const FpSimdState);
}

/// Reads a system register by its (possibly generic `S3_...`) name.
macro_rules! read_sysreg {
    ($name:literal) => {{
        let v: u64;
        // SAFETY: reading a system register has no memory effects; callers only name
        // registers that exist at EL2 on the CPUs this crate supports.
        unsafe { asm!(concat!("mrs {0}, ", $name), out(reg) v, options(nomem, nostack, preserves_flags)) };
        v
    }};
}

/// Writes a system register by name.
macro_rules! write_sysreg {
    ($name:literal, $v:expr) => {{
        let v: u64 = $v;
        // SAFETY: callers write guest-owned or EL2 control registers at points where the
        // contract in lib.rs says the crate owns them.
        unsafe { asm!(concat!("msr ", $name, ", {0}"), in(reg) v, options(nomem, nostack, preserves_flags)) };
    }};
}

// Self-hosted debug registers and the probe (after the macros above, which it uses).
pub(crate) mod debug;
// [gicv2] The virtual CPU interface backends (they use the macros above).
pub(crate) mod gich;
pub(crate) mod ich;
// The PMUv3 registers (they use the macros above).
pub(crate) mod pmu;

/// Reads the whole feature ID space (op0 = 3, op1 = 0, CRn = 0, CRm = 1..7; unallocated
/// encodings there read as zero), in `idregs::index` order.
pub(crate) fn read_id_space() -> [u64; crate::idregs::ID_SPACE_LEN] {
    [
        read_sysreg!("S3_0_C0_C1_0"),
        read_sysreg!("S3_0_C0_C1_1"),
        read_sysreg!("S3_0_C0_C1_2"),
        read_sysreg!("S3_0_C0_C1_3"),
        read_sysreg!("S3_0_C0_C1_4"),
        read_sysreg!("S3_0_C0_C1_5"),
        read_sysreg!("S3_0_C0_C1_6"),
        read_sysreg!("S3_0_C0_C1_7"),
        read_sysreg!("S3_0_C0_C2_0"),
        read_sysreg!("S3_0_C0_C2_1"),
        read_sysreg!("S3_0_C0_C2_2"),
        read_sysreg!("S3_0_C0_C2_3"),
        read_sysreg!("S3_0_C0_C2_4"),
        read_sysreg!("S3_0_C0_C2_5"),
        read_sysreg!("S3_0_C0_C2_6"),
        read_sysreg!("S3_0_C0_C2_7"),
        read_sysreg!("S3_0_C0_C3_0"),
        read_sysreg!("S3_0_C0_C3_1"),
        read_sysreg!("S3_0_C0_C3_2"),
        read_sysreg!("S3_0_C0_C3_3"),
        read_sysreg!("S3_0_C0_C3_4"),
        read_sysreg!("S3_0_C0_C3_5"),
        read_sysreg!("S3_0_C0_C3_6"),
        read_sysreg!("S3_0_C0_C3_7"),
        read_sysreg!("S3_0_C0_C4_0"),
        read_sysreg!("S3_0_C0_C4_1"),
        read_sysreg!("S3_0_C0_C4_2"),
        read_sysreg!("S3_0_C0_C4_3"),
        read_sysreg!("S3_0_C0_C4_4"),
        read_sysreg!("S3_0_C0_C4_5"),
        read_sysreg!("S3_0_C0_C4_6"),
        read_sysreg!("S3_0_C0_C4_7"),
        read_sysreg!("S3_0_C0_C5_0"),
        read_sysreg!("S3_0_C0_C5_1"),
        read_sysreg!("S3_0_C0_C5_2"),
        read_sysreg!("S3_0_C0_C5_3"),
        read_sysreg!("S3_0_C0_C5_4"),
        read_sysreg!("S3_0_C0_C5_5"),
        read_sysreg!("S3_0_C0_C5_6"),
        read_sysreg!("S3_0_C0_C5_7"),
        read_sysreg!("S3_0_C0_C6_0"),
        read_sysreg!("S3_0_C0_C6_1"),
        read_sysreg!("S3_0_C0_C6_2"),
        read_sysreg!("S3_0_C0_C6_3"),
        read_sysreg!("S3_0_C0_C6_4"),
        read_sysreg!("S3_0_C0_C6_5"),
        read_sysreg!("S3_0_C0_C6_6"),
        read_sysreg!("S3_0_C0_C6_7"),
        read_sysreg!("S3_0_C0_C7_0"),
        read_sysreg!("S3_0_C0_C7_1"),
        read_sysreg!("S3_0_C0_C7_2"),
        read_sysreg!("S3_0_C0_C7_3"),
        read_sysreg!("S3_0_C0_C7_4"),
        read_sysreg!("S3_0_C0_C7_5"),
        read_sysreg!("S3_0_C0_C7_6"),
        read_sysreg!("S3_0_C0_C7_7"),
    ]
}

/// `CurrentEL.EL == 2` and `ID_AA64PFR0_EL1.EL2 != 0`.
pub(crate) fn has_hardware_support() -> bool {
    let el = CurrentEL.read(CurrentEL::EL);
    if el != 2 {
        return false;
    }
    // ID_AA64PFR0_EL1.EL2, bits [11:8] (not named by aarch64-cpu).
    (ID_AA64PFR0_EL1.get() >> 8) & 0xf != 0
}

/// Reads the features this crate depends on from the ID registers.
pub(crate) fn probe_features() -> CpuFeatures {
    let mmfr0 = ID_AA64MMFR0_EL1.get();
    let mmfr1 = ID_AA64MMFR1_EL1.get();
    let isar1 = ID_AA64ISAR1_EL1.get();
    let isar2: u64 = read_sysreg!("S3_0_C0_C6_2");
    let pfr0 = ID_AA64PFR0_EL1.get();
    CpuFeatures::from_id_registers(
        mmfr0,
        mmfr1,
        isar1,
        isar2,
        pfr0,
        MIDR_EL1.get(),
        MPIDR_EL1.get(),
    )
}

/// The physical core's affinity (`MPIDR_EL1` Aff3..Aff0).
#[inline]
pub(crate) fn current_mpidr() -> u64 {
    MPIDR_EL1.get() & crate::percpu::MPIDR_AFFINITY_MASK
}

/// `MPIDR_EL1` as it reads (affinity, MT, U and the RES1 bit 31): constant for a core.
#[inline]
pub(crate) fn mpidr_raw() -> u64 {
    MPIDR_EL1.get()
}

pub(crate) fn vbar_el2() -> u64 {
    VBAR_EL2.get()
}

/// Installs `VBAR_EL2` and the host's `HCR_EL2`.
pub(crate) fn install_vectors(vbar: u64, hcr: u64) {
    VBAR_EL2.set(vbar);
    HCR_EL2.set(hcr);
    barrier::isb(barrier::SY);
}

pub(crate) fn vectors_address() -> u64 {
    core::ptr::addr_of!(__arm_vcpu_vectors) as u64
}

pub(crate) fn hcr_el2() -> u64 {
    HCR_EL2.get()
}

pub(crate) fn mdcr_el2() -> u64 {
    MDCR_EL2.get()
}

/// Runs the guest until it exits. Returns `ESR_EL2` for a synchronous exit, or
/// `1 << 63 | kind` (1 IRQ, 2 FIQ, 3 SError) for an asynchronous one.
///
/// # Safety
/// The vCPU owning `ws` must be bound to this core (its EL1 and EL2 state loaded), and
/// `ws.frame` must hold a valid AArch64 EL1/EL0 return state.
#[inline(always)]
pub(crate) unsafe fn enter_guest(ws: *mut WorldSwitch) -> u64 {
    let code: u64;
    // SAFETY: `__arm_vcpu_enter` saves x19, x29, the return address and SP in `ws`,
    // runs the guest with SP_EL2 = ws, and returns here through the exit vector with
    // them restored. Every other register it or the guest may change is
    // declared clobbered. The caller guarantees the state requirements above.
    unsafe {
        asm!(
            "bl __arm_vcpu_enter",
            inout("x0") ws => code,
            clobber_abi("C"),
            out("x20") _, out("x21") _, out("x22") _, out("x23") _, out("x24") _,
            out("x25") _, out("x26") _, out("x27") _, out("x28") _,
        );
    }
    code
}

/// Reads `FAR_EL2` and `HPFAR_EL2` (for aborts; call before anything else can fault).
#[inline]
pub(crate) fn read_fault_address() -> (u64, u64) {
    (FAR_EL2.get(), HPFAR_EL2.get())
}

/// The core's system registers, one `mrs`/`msr` per access (the encoding is a const
/// generic formatted into the instruction as `S<op0>_<op1>_C<n>_C<m>_<op2>`).
pub(crate) struct Cpu;

impl RegFile for Cpu {
    #[inline(always)]
    fn read<const E: u32>(&mut self) -> u64 {
        let v: u64;
        // SAFETY: reading a system register has no memory effects; the switch list
        // names only registers that exist on the host (feature-gated entries are
        // skipped elsewhere) and that EL2 may read.
        unsafe {
            asm!(
                "mrs {v}, S{o0}_{o1}_C{n}_C{m}_{o2}",
                v = out(reg) v,
                o0 = const (E >> 20) & 3,
                o1 = const (E >> 14) & 7,
                n = const (E >> 10) & 0xf,
                m = const (E >> 1) & 0xf,
                o2 = const (E >> 17) & 7,
                options(nomem, nostack, preserves_flags),
            )
        };
        v
    }

    #[inline(always)]
    fn write<const E: u32>(&mut self, v: u64) {
        // SAFETY: the switch list writes guest-owned EL1 registers and the per-VM EL2
        // controls at bind, when the contract in lib.rs says the crate owns them.
        unsafe {
            asm!(
                "msr S{o0}_{o1}_C{n}_C{m}_{o2}, {v}",
                v = in(reg) v,
                o0 = const (E >> 20) & 3,
                o1 = const (E >> 14) & 7,
                n = const (E >> 10) & 0xf,
                m = const (E >> 1) & 0xf,
                o2 = const (E >> 17) & 7,
                options(nomem, nostack, preserves_flags),
            )
        };
    }
}

/// Writes `CPACR_EL1` of the bound vCPU (its emulated write under `CPTR_EL2.TCPAC`).
pub(crate) fn set_cpacr_el1(v: u64) {
    CPACR_EL1.set(v);
}

/// `REVIDR_EL1` and `AIDR_EL1` of this core (answered to guests under `HCR_EL2.TID1`).
pub(crate) fn revidr_aidr() -> (u64, u64) {
    (read_sysreg!("revidr_el1"), read_sysreg!("aidr_el1"))
}

/// `SP_EL0` of the bound vCPU (live in the register while bound).
pub(crate) fn sp_el0() -> u64 {
    SP_EL0.get()
}

/// Sets `SP_EL0` of the bound vCPU.
pub(crate) fn set_sp_el0(v: u64) {
    SP_EL0.set(v)
}

/// Invalidates this core's stage-1 and stage-2 TLB entries of the VM whose VMID is
/// in `VTTBR_EL2` (`TLBI VMALLS12E1`), local to this core, and waits for it to
/// complete (`DSB NSH`). `DSB ISHST` first: stage-2 table writes this core made
/// before (the host's, before `notify_stage2_changed`) reach the table walker before
/// the invalidation, so no walk after it can load the old entries. No `ISB` before: the caller's last `VTTBR_EL2` write was
/// followed by one (`load_vm_controls`, or unbind's). None after: only the guest's
/// translations change, and the guest runs after an `ERET` (a context synchronization
/// event); EL2's own regime is not affected.
pub(crate) fn flush_current_vmid_local() {
    // SAFETY: TLB maintenance for the current VMID only affects guest translations,
    // which are reloaded from the tables on demand.
    unsafe {
        asm!(
            "dsb ishst",
            "tlbi vmalls12e1",
            "dsb nsh",
            options(nostack, preserves_flags)
        )
    };
}

/// `ISB`: the preceding system-register writes take effect.
#[inline(always)]
pub(crate) fn isb() {
    barrier::isb(barrier::SY);
}

/// Restores the host's `HCR_EL2` after an unbind.
pub(crate) fn set_hcr_el2(v: u64) {
    HCR_EL2.set(v);
    barrier::isb(barrier::SY);
}

/// `HCR_EL2.VSE`, bit 8: a virtual SError is pending.
const HCR_VSE: u64 = 1 << 8;

/// `VBAR_EL1` and `SCTLR_EL1` of the bound vCPU (for exception injection).
pub(crate) fn vbar_sctlr_el1() -> (u64, u64) {
    (VBAR_EL1.get(), SCTLR_EL1.get())
}

/// Writes the EL1 exception registers of the bound vCPU.
pub(crate) fn write_exception_regs(elr: u64, spsr: u64, esr: u64, far: Option<u64>) {
    ELR_EL1.set(elr);
    SPSR_EL1.set(spsr);
    ESR_EL1.set(esr);
    if let Some(far) = far {
        FAR_EL1.set(far);
    }
}

/// Makes a virtual SError pending for the bound vCPU (`HCR_EL2.VSE`), with syndrome
/// `esr` in `VSESR_EL2` when FEAT_RAS provides it.
pub(crate) fn raise_virtual_serror(esr: u64, ras: bool) {
    if ras {
        write_sysreg!("S3_4_C5_C2_3", esr);
    }
    HCR_EL2.set(HCR_EL2.get() | HCR_VSE);
}

/// Makes an SMCCC call to the firmware through `conduit`: x0 = function ID, x1..x6
/// arguments, x7 = the hypervisor client ID (the VMID, SMCCC 1.1 section 4.2). Returns
/// x0..x3. x4..x17 are declared changed (SMCCC 1.0 lets the callee corrupt them, and the
/// firmware's version is not known before discovery); x18..x30 are preserved by every
/// version of the convention. With [`FirmwareConduit::None`] nothing is called and x0 is
/// NOT_SUPPORTED.
pub(crate) fn firmware_call(
    conduit: crate::workaround::FirmwareConduit,
    x: &[u64; 7],
    client_id: u64,
) -> [u64; 4] {
    use crate::workaround::FirmwareConduit;
    match conduit {
        FirmwareConduit::None => [crate::smccc::ret::NOT_SUPPORTED as i64 as u64, 0, 0, 0],
        FirmwareConduit::Smc => smc_call(x, client_id),
        FirmwareConduit::Hvc => hvc_call(x, client_id),
    }
}

/// `SMC #0` with the registers of [`firmware_call`].
fn smc_call(x: &[u64; 7], client_id: u64) -> [u64; 4] {
    let (r0, r1, r2, r3): (u64, u64, u64, u64);
    // SAFETY: an SMC to the firmware the host named, with arguments the crate chose
    // (an allow-listed guest call, a workaround or a discovery call). Registers the
    // convention lets the callee change are declared.
    unsafe {
        asm!(
            "smc #0",
            inout("x0") x[0] => r0,
            inout("x1") x[1] => r1,
            inout("x2") x[2] => r2,
            inout("x3") x[3] => r3,
            inout("x4") x[4] => _,
            inout("x5") x[5] => _,
            inout("x6") x[6] => _,
            inout("x7") client_id => _,
            out("x8") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _,
            out("x13") _, out("x14") _, out("x15") _, out("x16") _, out("x17") _,
            options(nostack),
        );
    }
    [r0, r1, r2, r3]
}

/// `HVC #0` (the crate runs under another hypervisor) with the registers of
/// [`firmware_call`].
fn hvc_call(x: &[u64; 7], client_id: u64) -> [u64; 4] {
    let (r0, r1, r2, r3): (u64, u64, u64, u64);
    // SAFETY: as for `smc_call`, to the hypervisor the host named as its firmware.
    unsafe {
        asm!(
            "hvc #0",
            inout("x0") x[0] => r0,
            inout("x1") x[1] => r1,
            inout("x2") x[2] => r2,
            inout("x3") x[3] => r3,
            inout("x4") x[4] => _,
            inout("x5") x[5] => _,
            inout("x6") x[6] => _,
            inout("x7") client_id => _,
            out("x8") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _,
            out("x13") _, out("x14") _, out("x15") _, out("x16") _, out("x17") _,
            options(nostack),
        );
    }
    [r0, r1, r2, r3]
}

// ---- Virtual CPU interfaces: `ich` (GICv3 ICH_*_EL2), `gich` (GICv2 GICH frame) ----

// ---- FP/SIMD ----

/// Restores a vCPU's V0-V31, FPCR, FPSR.
pub(crate) fn fpsimd_restore(fp: &FpSimdState) {
    // SAFETY: `fp` is a valid, aligned FpSimdState; the routine only reads it and
    // writes V0-V31/FPCR/FPSR, which the host (soft-float) does not use.
    unsafe { __arm_vcpu_fpsimd_restore(fp) };
}

/// Saves V0-V31, FPCR, FPSR into `fp`.
pub(crate) fn fpsimd_save(fp: &mut FpSimdState) {
    // SAFETY: `fp` is a valid, aligned, writable FpSimdState.
    unsafe { __arm_vcpu_fpsimd_save(fp) };
}

/// Writes `CPTR_EL2` (used to stop trapping FP/SIMD on first use).
pub(crate) fn set_cptr_el2(v: u64) {
    CPTR_EL2.set(v);
    barrier::isb(barrier::SY);
}

// ---- Timers ----

/// `CNTPCT_EL0`, the physical count.
pub(crate) fn cntpct() -> u64 {
    barrier::isb(barrier::SY);
    CNTPCT_EL0.get()
}

/// `CNTV_CTL_EL0` and `CNTV_CVAL_EL0` of the bound vCPU.
pub(crate) fn cntv() -> (u64, u64) {
    (CNTV_CTL_EL0.get(), CNTV_CVAL_EL0.get())
}

/// Invalidates this core's TLB entries of the VM whose VMID is in `VTTBR_EL2`, in the
/// inner-shareable domain (used when the host changed a bound VM's tables).
pub(crate) fn flush_current_vmid_is() {
    // SAFETY: TLB maintenance for the current VMID only affects guest translations.
    unsafe {
        asm!(
            "dsb ishst",
            "tlbi vmalls12e1is",
            "dsb ish",
            "isb",
            options(nostack, preserves_flags)
        );
    }
}
