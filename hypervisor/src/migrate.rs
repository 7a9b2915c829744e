//! The `snapshot` scenario: a one-vCPU test guest runs on core 0 until the middle of
//! its computation (a device read it is waiting for), its vCPU is unbound,
//! snapshotted into the crate's byte format and destroyed; core 1 reads the bytes
//! back, creates a new vCPU (another `CNTVOFF_EL2`: the virtual count must come from
//! the snapshot), restores it, binds it there, completes the read the old vCPU was
//! waiting for and runs the guest to its end (docs/test-protocol.md, "snapshot").
//!
//! On the way the host checks what only it can see: the snapshot's bytes read back to
//! the same snapshot, a changed byte and another format version are refused, the
//! snapshot holds queued interrupts and the pending read, and a snapshot whose ID
//! registers differ from the core's is refused by `bind` with a typed error.

use core::sync::atomic::{AtomicBool, Ordering};

use alloc::vec;
use alloc::vec::Vec;
use arm_vcpu::reg::{Completion, Reg, VcpuReg};
use arm_vcpu::snapshot::{self, Incompatibility, Snapshot, SnapshotError};
use arm_vcpu::{
    Aarch64PerCpu, Aarch64VCpu, Aarch64VCpuCreateConfig, Aarch64VCpuSetupConfig, AccessWidth,
    Stage2Config, SysRegAddr, VCpuError, VirtualInterrupt, VmExit,
};
use log::{error, info};
use spin::Mutex;

use crate::devices::{self, CONSOLE_IPA, TESTDEV_IPA};
use crate::loader;
use crate::memory::{self, GuestMemory};
use crate::vm::{hvc, ExitStats};

type Verdict = Result<(), &'static str>;

/// Set while this scenario runs: core 1 enters [`secondary`].
pub static ACTIVE: AtomicBool = AtomicBool::new(false);

/// What core 0 hands to core 1.
struct Handoff {
    /// The snapshot, in the byte format.
    bytes: Vec<u8>,
    /// The device read the snapshotted vCPU waits for (the VMM's own record of the
    /// exit, as KVM's `kvm_run.mmio` is the VMM's): address and width.
    read: (u64, AccessWidth),
    /// How the VM is built.
    mem: &'static GuestMemory,
    /// The snapshotted vCPU's PC and x2..x28 (checked against the restored vCPU).
    pc: u64,
    gprs: [u64; 31],
    stats: ExitStats,
}

static HANDOFF: Mutex<Option<Handoff>> = Mutex::new(None);
static RESULT: Mutex<Option<(Verdict, ExitStats)>> = Mutex::new(None);

/// The device's word `k` (the guest reads `TESTDEV_IPA + 8k`, k < 32).
const fn device_word(k: u64) -> u64 {
    (k + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5555_0000_5555
}

/// How many device reads the migrating run makes before the snapshot.
const fn migrate_at(iters: u64) -> u64 {
    iters / 3 + 7
}

/// The counter frequency (`CNTFRQ_EL0`).
fn cntfrq() -> u64 {
    let v: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effects.
    unsafe { core::arch::asm!("mrs {0}, cntfrq_el0", out(reg) v, options(nomem, nostack)) };
    v
}

fn make(
    mem: &GuestMemory,
    entry: u64,
    cntvoff_el2: u64,
) -> Result<Aarch64VCpu, arm_vcpu::VCpuError> {
    let mut v = Aarch64VCpu::new(
        Aarch64VCpuCreateConfig::default()
            .with_mpidr_el1(0)
            .with_cntvoff_el2(cntvoff_el2),
    )?;
    v.setup(Aarch64VCpuSetupConfig::default())?;
    v.set_stage2_root(Stage2Config::new(
        mem.root_pa(),
        1,
        memory::IPA_BITS,
        memory::ROOT_LEVEL,
    ))?;
    v.set_entry(entry)?;
    Ok(v)
}

/// What one exit asks of the runner.
enum Step {
    Continue,
    /// A device read to stop at (not completed).
    Stop(u64, AccessWidth),
    Exit(u64),
    Fail(&'static str),
}

/// Handles one exit of the guest on core `core`. `stop_after`: stop at the device
/// read after this many in the migrating phase.
fn step(
    core: u64,
    vcpu: &mut Aarch64VCpu,
    stats: &mut ExitStats,
    phase: &mut u64,
    reads: &mut u64,
    stop_after: Option<u64>,
) -> Step {
    match vcpu.run() {
        Ok(VmExit::Hypercall { imm: 0, args }) => {
            stats.hypercall += 1;
            let r = match args[0] {
                hvc::EXIT => return Step::Exit(args[1]),
                hvc::PUTC => {
                    crate::console::putc(args[1] as u8);
                    0
                }
                hvc::TEST_CALL if args[1] == 0x61 => {
                    let mut failed = false;
                    for intid in args[2]..args[2] + args[3] {
                        let vi = VirtualInterrupt::new(intid as u32).with_priority(0x80);
                        failed |= vcpu.inject_interrupt(vi).is_err();
                    }
                    if failed {
                        return Step::Fail("inject_interrupt failed");
                    }
                    vcpu.queued_interrupts() as u64
                }
                hvc::TEST_CALL if args[1] == 0x63 => live_registers(vcpu, args[2]),
                hvc::TEST_CALL if args[1] == 0x62 => {
                    *phase = args[2];
                    core
                }
                _ => u64::MAX,
            };
            vcpu.set_return_value(r);
            Step::Continue
        }
        Ok(VmExit::MmioRead { addr, width, .. })
            if (TESTDEV_IPA..TESTDEV_IPA + 0x100).contains(&addr) =>
        {
            stats.mmio_read += 1;
            stats.testdev += 1;
            if *phase == 1 {
                *reads += 1;
                if stop_after.is_some_and(|n| *reads > n) {
                    return Step::Stop(addr, width);
                }
            }
            match vcpu.complete_mmio_read(device_word((addr - TESTDEV_IPA) / 8)) {
                Ok(()) => Step::Continue,
                Err(_) => Step::Fail("complete_mmio_read"),
            }
        }
        Ok(VmExit::MmioRead { addr, .. })
            if (CONSOLE_IPA..CONSOLE_IPA + 0x1000).contains(&addr) =>
        {
            stats.mmio_read += 1;
            stats.console += 1;
            match vcpu.complete_mmio_read(0) {
                Ok(()) => Step::Continue,
                Err(_) => Step::Fail("complete_mmio_read"),
            }
        }
        Ok(VmExit::MmioWrite { addr, data, .. })
            if (CONSOLE_IPA..CONSOLE_IPA + 0x1000).contains(&addr) =>
        {
            stats.mmio_write += 1;
            stats.console += 1;
            devices::console_write(addr - CONSOLE_IPA, data);
            Step::Continue
        }
        Ok(VmExit::ExternalInterrupt { .. }) => {
            // Only the maintenance interrupt is expected, and the crate handles it.
            stats.irq += 1;
            if stats.irq > 10_000 {
                return Step::Fail("a physical interrupt storm the runner does not handle");
            }
            Step::Continue
        }
        Ok(other) => {
            stats.other += 1;
            error!(
                "core {}: unexpected exit {:?} at pc {:#x}",
                core,
                other,
                vcpu.pc()
            );
            Step::Fail("unexpected exit")
        }
        Err(e) => {
            error!("core {}: run: {}", core, e);
            Step::Fail("run() returned an error")
        }
    }
}

/// What the guest set before TEST_CALL(0x63) (guests/src/bin/snapshot.rs).
const GUEST_TPIDR_EL1: u64 = 0x7e57_0000_0000_0e12;
const GUEST_V7: u128 = 0x0777_4444_5555_6666_0777_1111_2222_3333;
const GUEST_FPCR: u64 = (1 << 22) | (1 << 24);
const NEW_TPIDRRO: u64 = 0x1111_2222_3333_4444;
const NEW_V7: u128 = 0x0888_aaaa_bbbb_cccc_0888_dddd_eeee_ffff;

/// TEST_CALL(0x63, tag) while bound: `get_reg` gives the live values (the core's
/// TPIDR_EL1, the loaded FP/SIMD and debug registers, the virtual interface's VMCR),
/// `set_reg` writes TPIDRRO_EL0 and V7 before the guest resumes. Returns a bit mask of
/// what was wrong (0: nothing).
fn live_registers(v: &mut Aarch64VCpu, tag: u64) -> u64 {
    let tpidr_el1 = Reg::Sys(SysRegAddr::new(3, 0, 13, 0, 4));
    let mdscr = Reg::Sys(SysRegAddr::new(2, 0, 0, 2, 2));
    let tpidrro = Reg::Sys(SysRegAddr::new(3, 3, 13, 0, 3));
    let checks = [
        v.get_reg(tpidr_el1) == Ok(GUEST_TPIDR_EL1 as u128),
        v.get_reg(Reg::V(7)) == Ok(GUEST_V7),
        v.get_reg(Reg::Fpcr) == Ok(GUEST_FPCR as u128),
        v.get_reg(mdscr).is_ok_and(|m| m & (1 << 12) != 0),
        v.get_reg(Reg::Vgic(arm_vcpu::reg::VgicReg::Vmcr))
            .is_ok_and(|m| (m >> 24) & 0xff == 0xf0),
        v.get_reg(Reg::X(2)) == Ok(tag as u128),
        v.set_reg(tpidrro, NEW_TPIDRRO as u128).is_ok(),
        v.set_reg(Reg::V(7), NEW_V7).is_ok(),
        v.get_reg(Reg::V(7)) == Ok(NEW_V7),
    ];
    let mut bad = 0;
    for (i, ok) in checks.iter().enumerate() {
        if !ok {
            error!("live register check {} failed", i);
            bad |= 1 << i;
        }
    }
    bad
}

/// Core 0: runs the guest to the snapshot point, checks the snapshot, hands it over
/// and waits for core 1's verdict.
pub fn run(iters: u64) -> (Verdict, ExitStats) {
    let mut stats = ExitStats::default();
    let v = run_core0(iters, &mut stats);
    if let Err(why) = v {
        return (Err(why), stats);
    }
    // Core 1 finishes the guest.
    loop {
        if let Some(r) = RESULT.lock().take() {
            return r;
        }
        core::hint::spin_loop();
    }
}

fn run_core0(iters: u64, stats: &mut ExitStats) -> Verdict {
    if !arm_vcpu::has_hardware_support() {
        return Err("no EL2 virtualization support");
    }
    let mem: &'static GuestMemory =
        alloc::boxed::Box::leak(alloc::boxed::Box::new(GuestMemory::new()?));
    let entry =
        loader::load_elf(loader::staging(), mem).map_err(|_| "cannot load the guest image")?;
    // EL2 on core 0, the distributor and this core's maintenance interrupt (the queue
    // is drained on underflow).
    let mut percpu = crate::vplatform::enable_core0()?;
    ACTIVE.store(true, Ordering::Release);
    if crate::smp::start_core(1) != 0 {
        return Err("cannot start the second physical core (run QEMU with -smp 2)");
    }
    // The guest's virtual count starts near 0.
    let mut vcpu = make(mem, entry, arm_vcpu::physical_count()).map_err(|_| "vcpu")?;
    vcpu.set_gpr(1, iters).map_err(|_| "x1")?;
    vcpu.bind(&mut percpu).map_err(|_| "bind")?;
    let (mut phase, mut reads) = (0, 0);
    let read = loop {
        match step(
            0,
            &mut vcpu,
            stats,
            &mut phase,
            &mut reads,
            Some(migrate_at(iters)),
        ) {
            Step::Continue => {}
            Step::Stop(addr, width) => break (addr, width),
            Step::Exit(_) => return Err("the guest ended before its snapshot"),
            Step::Fail(why) => return Err(why),
        }
    };
    vcpu.unbind(&mut percpu).map_err(|_| "unbind")?;
    info!(
        "core 0: snapshot at device read {} (pc {:#x}), {} interrupts queued",
        reads,
        vcpu.pc(),
        vcpu.queued_interrupts()
    );
    if vcpu.queued_interrupts() == 0 {
        return Err("no interrupt waits in the queue at the snapshot");
    }
    let snap = vcpu.snapshot().map_err(|_| "snapshot() failed")?;
    let mut buf = vec![0u8; Snapshot::MAX_BYTES];
    let n = snap.to_bytes(&mut buf).map_err(|_| "to_bytes failed")?;
    buf.truncate(n);
    check_snapshot(&vcpu, &snap, &buf)?;
    check_refusals(&buf, mem, entry, &mut percpu)?;
    let (pc, gprs) = (vcpu.pc(), vcpu.regs().gpr);
    // The vCPU is destroyed (it goes out of scope here): only the bytes go on.
    let handoff = {
        let _destroyed = vcpu;
        Handoff {
            bytes: buf,
            read,
            mem,
            pc,
            gprs,
            stats: *stats,
        }
    };
    info!(
        "core 0: vCPU destroyed, {} snapshot bytes handed to core 1",
        n
    );
    *HANDOFF.lock() = Some(handoff);
    Ok(())
}

/// The snapshot reads back to itself and holds what the host expects.
fn check_snapshot(vcpu: &Aarch64VCpu, snap: &Snapshot, bytes: &[u8]) -> Verdict {
    let back = Snapshot::from_bytes(bytes).map_err(|e| {
        error!("from_bytes: {}", e);
        "the snapshot's bytes do not read back"
    })?;
    if &back != snap {
        return Err("the snapshot's bytes read back to another snapshot");
    }
    if back.get_reg(Reg::Pc).ok() != Some(vcpu.pc() as u128) {
        return Err("the snapshot's PC is not the vCPU's");
    }
    let c = back
        .get_reg(Reg::Vcpu(VcpuReg::Completion))
        .map(|v| Completion::decode(v as u64));
    if !matches!(c, Ok(Some(Completion::MmioRead { reg: 1, .. }))) {
        error!("completion in the snapshot: {:?}", c);
        return Err("the snapshot does not hold the pending device read into x1");
    }
    for r in vcpu.reg_list().filter(|r| *r != Reg::VirtualCount) {
        if back.registers().any(|s| s == r) && back.get_reg(r) != vcpu.get_reg(r) {
            error!(
                "{}: snapshot {:?}, vCPU {:?}",
                r,
                back.get_reg(r),
                vcpu.get_reg(r)
            );
            return Err("a register of the snapshot differs from the vCPU's");
        }
    }
    Ok(())
}

/// A changed byte, another version, and another core's ID registers are refused.
fn check_refusals(
    good: &[u8],
    mem: &GuestMemory,
    entry: u64,
    percpu: &mut Aarch64PerCpu,
) -> Verdict {
    let mut b = good.to_vec();
    b[good.len() / 2] ^= 0x20;
    if !matches!(
        Snapshot::from_bytes(&b),
        Err(SnapshotError::Checksum { .. })
    ) {
        return Err("a changed byte was not refused");
    }
    let reseal = |b: &mut [u8]| {
        b[16..20].fill(0);
        let c = snapshot::crc32(b);
        b[16..20].copy_from_slice(&c.to_le_bytes());
    };
    let mut b = good.to_vec();
    b[8] = 0x7f;
    reseal(&mut b);
    if Snapshot::from_bytes(&b) != Err(SnapshotError::UnsupportedVersion(0x7f)) {
        return Err("another format version was not refused");
    }
    // ID_AA64ISAR0_EL1 with one more feature than this core has: the records start
    // with the ID view, one (ID, value) pair of 16 bytes each in index order.
    let isar0 = SysRegAddr::new(3, 0, 0, 6, 0);
    let i = arm_vcpu::idregs::index(isar0).ok_or("ID_AA64ISAR0_EL1 index")?;
    let at = snapshot::HEADER_LEN + 16 * i;
    let mut b = good.to_vec();
    if b.get(at..at + 8) != Some(&Reg::Sys(isar0).id().to_le_bytes()[..]) {
        return Err("the snapshot does not start with the ID view");
    }
    b[at + 8] ^= 0x10; // AES [7:4]
    reseal(&mut b);
    let other = Snapshot::from_bytes(&b).map_err(|_| "a consistent snapshot was refused")?;
    let mut probe = make(mem, entry, 0).map_err(|_| "vcpu")?;
    probe
        .restore(&other)
        .map_err(|_| "restore into a new vCPU failed")?;
    match probe.bind(percpu) {
        Err(VCpuError::Snapshot(SnapshotError::Incompatible(Incompatibility::IdRegister {
            reg,
            ..
        }))) if reg == isar0 => {
            info!("core 0: a snapshot with another ID_AA64ISAR0_EL1 is refused by bind");
            Ok(())
        }
        Ok(()) => {
            let _ = probe.unbind(percpu);
            Err("a snapshot with other ID registers was bound")
        }
        Err(e) => {
            error!("bind: {:?}", e);
            Err("a snapshot with other ID registers was refused for another reason")
        }
    }
}

/// Core 1 (entered from `secondary_main` while [`ACTIVE`]): restores the vCPU from
/// the bytes and runs the guest to its end.
pub fn secondary(index: u64) -> ! {
    let mut percpu = crate::firmware::percpu(index as usize);
    if percpu.hardware_enable().is_err() {
        crate::end_run(
            Err("hardware_enable failed on core 1"),
            &ExitStats::default(),
        );
    }
    crate::gic::init_cpu_for_virtual_guests(index as usize);
    info!("core {} online", index);
    let h = loop {
        if let Some(h) = HANDOFF.lock().take() {
            break h;
        }
        core::hint::spin_loop();
    };
    let mut stats = h.stats;
    let v = run_core1(index, &h, &mut percpu, &mut stats);
    *RESULT.lock() = Some((v, stats));
    loop {
        core::hint::spin_loop();
    }
}

fn run_core1(
    index: u64,
    h: &Handoff,
    percpu: &mut Aarch64PerCpu,
    stats: &mut ExitStats,
) -> Verdict {
    let snap = Snapshot::from_bytes(&h.bytes).map_err(|e| {
        error!("core {}: from_bytes: {}", index, e);
        "core 1 cannot read the snapshot"
    })?;
    // Another VM offset, an hour ahead: only the snapshot's virtual count can give the
    // guest its time back.
    let cntvoff = arm_vcpu::physical_count().wrapping_add(3600 * cntfrq());
    let mut vcpu = make(h.mem, 0x4008_0000, cntvoff).map_err(|_| "vcpu")?;
    vcpu.restore(&snap).map_err(|e| {
        error!("core {}: restore: {}", index, e);
        "restore failed"
    })?;
    if vcpu.pc() != h.pc || vcpu.regs().gpr != h.gprs {
        return Err("the restored vCPU's PC or registers differ");
    }
    vcpu.bind(percpu).map_err(|e| {
        error!("core {}: bind: {}", index, e);
        "bind of the restored vCPU failed"
    })?;
    info!(
        "core {}: vCPU restored (pc {:#x}, {} interrupts queued), completing the read of {:#x}",
        index,
        vcpu.pc(),
        vcpu.queued_interrupts(),
        h.read.0
    );
    let _ = h.read.1;
    vcpu.complete_mmio_read(device_word((h.read.0 - TESTDEV_IPA) / 8))
        .map_err(|_| "the restored vCPU does not wait for the read")?;
    let (mut phase, mut reads) = (1, 0);
    let verdict = loop {
        match step(index, &mut vcpu, stats, &mut phase, &mut reads, None) {
            Step::Continue => {}
            Step::Stop(..) => break Err("stopped"),
            Step::Exit(0) => break Ok(()),
            Step::Exit(_) => break Err("guest checks failed"),
            Step::Fail(why) => break Err(why),
        }
    };
    let _ = vcpu.unbind(percpu);
    verdict
}
