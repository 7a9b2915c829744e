//! `snapshot` (guest `guests/src/bin/snapshot.rs`, one vCPU, cores 0 and 1): the guest
//! runs on core 0 until the middle of its computation — a device read the host holds
//! ([`Scenario::hold_read`]) — and after that unbind ([`Scenario::migrate`]) its vCPU
//! is snapshotted into the crate's byte format; the host checks the bytes and the
//! refusals, and the scheduler destroys the vCPU, restores a new one from the bytes
//! (created with another `CNTVOFF_EL2`: the virtual count must come from the
//! snapshot) and sends it to core 1, which completes the held read and runs the guest
//! to its end (docs/test-protocol.md, "snapshot").

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

use arm_vcpu::reg::{Completion, Reg, VcpuReg};
use arm_vcpu::snapshot::{self, Snapshot, SnapshotError};
use arm_vcpu::{Aarch64PerCpu, Aarch64VCpu, SysRegAddr, VirtualInterrupt};
use log::{error, info};

use super::{Migration, Scenario};
use crate::devices::TESTDEV_IPA;

pub fn by_name(name: &str, iters: u64) -> Option<Box<dyn Scenario>> {
    match name {
        "snapshot" => Some(Box::new(SnapshotScenario {
            iters,
            phase: 0,
            reads: 0,
            migrated: false,
            expect: None,
        })),
        _ => None,
    }
}

/// TEST_CALL numbers of the guest.
const INJECT: u64 = 0x61;
const WHERE: u64 = 0x62;
const LIVE: u64 = 0x63;

/// What the guest set before TEST_CALL(0x63) (guests/src/bin/snapshot.rs).
const GUEST_TPIDR_EL1: u64 = 0x7e57_0000_0000_0e12;
const GUEST_V7: u128 = 0x0777_4444_5555_6666_0777_1111_2222_3333;
const GUEST_FPCR: u64 = (1 << 22) | (1 << 24);
const NEW_TPIDRRO: u64 = 0x1111_2222_3333_4444;
const NEW_V7: u128 = 0x0888_aaaa_bbbb_cccc_0888_dddd_eeee_ffff;

struct SnapshotScenario {
    iters: u64,
    /// The guest's phase (TEST_CALL 0x62): 1 while the migrating computation runs.
    phase: u64,
    /// Device reads in phase 1.
    reads: u64,
    migrated: bool,
    /// The snapshotted vCPU's PC and x0..x30 (checked against the restored vCPU).
    expect: Option<(u64, [u64; 31])>,
}

impl SnapshotScenario {
    /// How many device reads the migrating run makes before the snapshot.
    fn migrate_at(&self) -> u64 {
        self.iters / 3 + 7
    }
}

fn cntfrq() -> u64 {
    let v: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effects.
    unsafe { core::arch::asm!("mrs {0}, cntfrq_el0", out(reg) v, options(nomem, nostack)) };
    v
}

impl Scenario for SnapshotScenario {
    fn cores(&self) -> Vec<usize> {
        vec![0, 1]
    }

    fn abort_policy(&self) -> super::AbortPolicy {
        super::AbortPolicy::Fail
    }

    fn migrates(&self) -> bool {
        true
    }

    fn vcpu_test_call(
        &mut self,
        _cpu: usize,
        core: usize,
        args: &[u64; 7],
        vcpu: &mut Aarch64VCpu,
    ) -> Option<Result<u64, &'static str>> {
        Some(match args[1] {
            INJECT => {
                let mut failed = false;
                for intid in args[2]..args[2].saturating_add(args[3]).min(args[2] + 64) {
                    let vi = VirtualInterrupt::new(intid as u32).with_priority(0x80);
                    failed |= vcpu.inject_interrupt(vi).is_err();
                }
                if failed {
                    Err("inject_interrupt failed")
                } else {
                    Ok(vcpu.queued_interrupts() as u64)
                }
            }
            WHERE => {
                self.phase = args[2];
                Ok(core as u64)
            }
            LIVE => Ok(live_registers(vcpu, args[2])),
            _ => return None,
        })
    }

    fn hold_read(&mut self, _cpu: usize, addr: u64) -> bool {
        if self.phase != 1 || self.migrated || !(TESTDEV_IPA..TESTDEV_IPA + 0x100).contains(&addr) {
            return false;
        }
        self.reads += 1;
        self.reads > self.migrate_at()
    }

    fn migrate(
        &mut self,
        _cpu: usize,
        core: usize,
        vcpu: &Aarch64VCpu,
        held_read: Option<u64>,
        vm: &crate::vm::Vm,
        percpu: &mut Aarch64PerCpu,
    ) -> Result<Option<Migration>, &'static str> {
        if self.migrated || held_read.is_none() {
            return Ok(None);
        }
        self.migrated = true;
        if core != 0 {
            return Err("the vCPU was not on core 0 at the snapshot");
        }
        info!(
            "core 0: snapshot at device read {} (pc {:#x}), {} interrupts queued",
            self.reads,
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
        check_snapshot(vcpu, &snap, &buf)?;
        check_refusals(&buf, vm, percpu)?;
        self.expect = Some((vcpu.pc(), vcpu.regs().gpr));
        // Another VM offset, an hour ahead: only the snapshot's virtual count can give
        // the guest its time back.
        let cntvoff_el2 = arm_vcpu::physical_count().wrapping_add(3600 * cntfrq());
        Ok(Some(Migration {
            bytes: buf,
            cntvoff_el2,
            core: 1,
        }))
    }

    fn restored(&mut self, _cpu: usize, vcpu: &Aarch64VCpu) -> Result<(), &'static str> {
        match self.expect {
            Some((pc, gprs)) if vcpu.pc() == pc && vcpu.regs().gpr == gprs => Ok(()),
            _ => Err("the restored vCPU's PC or registers differ"),
        }
    }

    fn finish(&mut self, guest_failures: u64, _vm: &super::VmInfo) -> Result<(), &'static str> {
        if !self.migrated {
            return Err("the guest ended before its snapshot");
        }
        if guest_failures != 0 {
            return Err("guest checks failed");
        }
        Ok(())
    }
}

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

/// The snapshot reads back to itself and holds what the host expects.
fn check_snapshot(vcpu: &Aarch64VCpu, snap: &Snapshot, bytes: &[u8]) -> Result<(), &'static str> {
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

/// A changed byte and another format version are refused.
fn check_refusals(
    good: &[u8],
    vm: &crate::vm::Vm,
    percpu: &mut Aarch64PerCpu,
) -> Result<(), &'static str> {
    let mut b = good.to_vec();
    let mid = good.len() / 2;
    if let Some(x) = b.get_mut(mid) {
        *x ^= 0x20;
    }
    if !matches!(
        Snapshot::from_bytes(&b),
        Err(SnapshotError::Checksum { .. })
    ) {
        return Err("a changed byte was not refused");
    }
    let reseal = |b: &mut [u8]| {
        if let Some(crc) = b.get_mut(16..20) {
            crc.fill(0);
        }
        let c = snapshot::crc32(b);
        if let Some(crc) = b.get_mut(16..20) {
            crc.copy_from_slice(&c.to_le_bytes());
        }
    };
    let mut b = good.to_vec();
    if let Some(x) = b.get_mut(8) {
        *x = 0x7f;
    }
    reseal(&mut b);
    if Snapshot::from_bytes(&b) != Err(SnapshotError::UnsupportedVersion(0x7f)) {
        return Err("another format version was not refused");
    }
    // (A copy with another ID_AA64ISAR0_EL1 refused by `bind` is the crate's host
    // test: a second call site of `bind` in the hypervisor costs every vCPU switch
    // ~30 EL2 instructions, bench/budgets.toml.)
    let _ = (vm, percpu);
    Ok(())
}
