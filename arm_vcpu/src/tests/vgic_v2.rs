//! The list-register abstraction against both backends — the GICv3 `ICH_*_EL2`
//! registers and the GICv2 GICH frame — through fake register files that behave as
//! the architecture says (the empty-register bitmap and the maintenance status follow
//! the list registers; read-only registers ignore writes); both list-register
//! encodings (IHI 0048B 5.3.11 `GICH_LR<n>`, IHI 0069 `ICH_LR<n>_EL2`), the VMCR
//! layouts, `GICD_SGIR` decoding, the maintenance decisions and the choice of
//! interface.

use proptest::prelude::*;

use crate::vgic::list_registers::{
    self as lrs, hcr, maintenance_asserted, maintenance_hcr, ListRegisters, SavedLrs, VgicRegisters,
};
use crate::vgic::v2::{self, decode_sgir, gich, Gich, Mmio32, SgirRequest, SgirTargets};
use crate::vgic::v3::{self, Ich, IchAccess, IchReg};
use crate::vgic::{
    InjectIrqError, InterfaceKind, ListEntry, LrFormat, LrState, PendingQueue, Placement,
    QueuedInterrupt, VgicState, VirtualInterface, VirtualInterrupt, VirtualMachineControl, VtrInfo,
};
use crate::*;

/// QEMU 7.2's `GICH_VTR` (`gic-version=2`): 4 list registers, 5 priority and 5
/// preemption bits.
const QEMU_GICH_VTR: u32 = 0x9000_0003;
/// QEMU 7.2's `ICH_VTR_EL2` (`-cpu max`).
const QEMU_ICH_VTR: u64 = 0x90b8_0003;

fn vi(intid: u32) -> VirtualInterrupt {
    VirtualInterrupt {
        intid,
        priority: 0xa0,
        group1: true,
        hw_intid: None,
    }
}

fn q(intid: u32) -> QueuedInterrupt {
    QueuedInterrupt::new(vi(intid))
}

// ---- Fake register files ----

/// `ICH_*_EL2` as a GICv3 CPU interface keeps them.
#[derive(Clone, Debug, Default)]
struct FakeIch {
    /// Implemented list registers.
    n: usize,
    lr: [u64; 16],
    hcr: u64,
    vmcr: u64,
    ap0r: [u64; 4],
    ap1r: [u64; 4],
    reads: usize,
    writes: usize,
    /// `ICH_ELRSR_EL2` as last synchronized: without a context synchronization a
    /// direct read need not reflect list-register writes made since.
    frozen_elrsr: Option<u64>,
    /// Context synchronization events (`IchAccess::sync`).
    syncs: usize,
    /// Real hardware's worst case: after a list-register write `ICH_ELRSR_EL2` keeps
    /// its value until the next synchronization (`frozen_elrsr` set at the write).
    stale_after_write: bool,
}

impl FakeIch {
    /// The vINTIDs of the list registers that hold an interrupt, in register order.
    fn held_intids(&self) -> Vec<u32> {
        self.lr[..self.n]
            .iter()
            .filter(|&&l| LrFormat::V3.state(l) != LrState::Invalid)
            .map(|&l| LrFormat::V3.decode(l).intid)
            .collect()
    }

    fn occupancy(&self) -> (usize, usize) {
        let mut v = (0, 0);
        for &l in &self.lr[..self.n] {
            match LrFormat::V3.state(l) {
                LrState::Invalid => {}
                LrState::Active => v.0 += 1,
                _ => {
                    v.0 += 1;
                    v.1 += 1
                }
            }
        }
        v
    }
}

impl IchAccess for FakeIch {
    fn sync(&mut self) {
        self.syncs += 1;
        self.frozen_elrsr = None;
    }

    fn read(&mut self, r: IchReg) -> u64 {
        self.reads += 1;
        match r {
            IchReg::Lr(n) if n < self.n => self.lr[n],
            IchReg::Lr(_) => 0,
            IchReg::Hcr => self.hcr,
            IchReg::Vmcr => self.vmcr,
            IchReg::Elrsr if self.frozen_elrsr.is_some() => self.frozen_elrsr.unwrap_or(0),
            // ICH_ELRSR_EL2: state invalid and (HW = 1 or EOI = 0).
            IchReg::Elrsr => (0..self.n)
                .filter(|&i| {
                    let l = self.lr[i];
                    l >> 62 == 0 && (l & (1 << 61) != 0 || l & (1 << 41) == 0)
                })
                .fold(0, |m, i| m | 1 << i),
            IchReg::Misr => {
                let (valid, pending) = self.occupancy();
                let h = self.hcr as u32;
                ((h & hcr::UIE != 0 && valid <= 1) as u64) << 1
                    | ((h & hcr::NPIE != 0 && pending == 0) as u64) << 3
            }
            IchReg::Ap0r(n) => self.ap0r[n],
            IchReg::Ap1r(n) => self.ap1r[n],
        }
    }

    fn write(&mut self, r: IchReg, v: u64) {
        self.writes += 1;
        if self.stale_after_write && matches!(r, IchReg::Lr(_)) && self.frozen_elrsr.is_none() {
            self.frozen_elrsr = Some(self.read(IchReg::Elrsr));
        }
        match r {
            IchReg::Lr(n) if n < self.n => self.lr[n] = v,
            IchReg::Lr(_) | IchReg::Misr | IchReg::Elrsr => {}
            IchReg::Hcr => self.hcr = v,
            IchReg::Vmcr => self.vmcr = v,
            IchReg::Ap0r(n) => self.ap0r[n] = v,
            IchReg::Ap1r(n) => self.ap1r[n] = v,
        }
    }
}

/// A list register of `format` holding `intid` in `state` (group 1, priority 0xa0).
fn lr_in(format: LrFormat, intid: u32, state: LrState) -> u64 {
    format
        .encode(&ListEntry {
            intid,
            priority: 0xa0,
            group1: true,
            state,
            ..ListEntry::default()
        })
        .unwrap()
}

/// A GICH frame as a GIC-400 class GIC keeps it.
#[derive(Clone, Debug)]
struct FakeGich {
    regs: [u32; gich::SIZE / 4],
    reads: usize,
    writes: usize,
}

impl FakeGich {
    fn new(vtr: u32) -> Self {
        let mut regs = [0; gich::SIZE / 4];
        regs[gich::VTR / 4] = vtr;
        Self {
            regs,
            reads: 0,
            writes: 0,
        }
    }
    fn n(&self) -> usize {
        v2::decode_vtr(self.regs[gich::VTR / 4]).list_regs
    }
    fn lr(&self, i: usize) -> u32 {
        self.regs[gich::LR0 / 4 + i]
    }
    fn occupancy(&self) -> (usize, usize) {
        let mut v = (0, 0);
        for i in 0..self.n() {
            match LrFormat::V2.state(self.lr(i) as u64) {
                LrState::Invalid => {}
                LrState::Active => v.0 += 1,
                _ => {
                    v.0 += 1;
                    v.1 += 1
                }
            }
        }
        v
    }
    fn elrsr(&self) -> u64 {
        // GICH_ELRSR: state invalid and (HW = 1 or EOI = 0).
        (0..self.n())
            .filter(|&i| {
                let l = self.lr(i);
                l >> 28 & 3 == 0 && (l & v2::lr::HW != 0 || l & v2::lr::EOI == 0)
            })
            .fold(0, |m, i| m | 1 << i)
    }
}

impl Mmio32 for FakeGich {
    fn read32(&mut self, off: usize) -> u32 {
        self.reads += 1;
        match off {
            gich::ELRSR0 => self.elrsr() as u32,
            gich::ELRSR1 => (self.elrsr() >> 32) as u32,
            gich::MISR => {
                let (valid, pending) = self.occupancy();
                let h = self.regs[0];
                ((h & hcr::UIE != 0 && valid <= 1) as u32) << 1
                    | ((h & hcr::NPIE != 0 && pending == 0) as u32) << 3
            }
            o if o < gich::SIZE && o % 4 == 0 => self.regs[o / 4],
            _ => 0,
        }
    }

    fn write32(&mut self, off: usize, v: u32) {
        self.writes += 1;
        match off {
            gich::VTR | gich::MISR | gich::EISR0 | gich::EISR1 | gich::ELRSR0 | gich::ELRSR1 => {}
            o if o >= gich::LR0 && (o - gich::LR0) / 4 >= self.n() => {}
            o if o < gich::SIZE && o % 4 == 0 => self.regs[o / 4] = v,
            _ => {}
        }
    }
}

/// What the tests do to a backend beyond the crate's own calls: the guest taking and
/// ending interrupts, and the access counts.
trait Backend: VgicRegisters {
    fn name(&self) -> &'static str;
    /// The guest acknowledges the interrupt in LR `n` (pending → active).
    fn guest_ack(&mut self, n: usize);
    /// The guest deactivates it (→ invalid, as the hardware leaves it).
    fn guest_eoi(&mut self, n: usize);
    fn raw_lr(&self, n: usize) -> u64;
    fn hcr_now(&self) -> u32;
    fn accesses(&self) -> (usize, usize);
    fn reset_counts(&mut self);
}

impl Backend for Ich<FakeIch> {
    fn name(&self) -> &'static str {
        "GICv3 ICH_*_EL2"
    }
    fn guest_ack(&mut self, n: usize) {
        let l = &mut self.regs.lr[n];
        *l = (*l & !(3 << 62)) | (2 << 62);
    }
    fn guest_eoi(&mut self, n: usize) {
        self.regs.lr[n] &= !(3 << 62);
    }
    fn raw_lr(&self, n: usize) -> u64 {
        self.regs.lr[n]
    }
    fn hcr_now(&self) -> u32 {
        self.regs.hcr as u32
    }
    fn accesses(&self) -> (usize, usize) {
        (self.regs.reads, self.regs.writes)
    }
    fn reset_counts(&mut self) {
        self.regs.reads = 0;
        self.regs.writes = 0;
    }
}

impl Backend for Gich<FakeGich> {
    fn name(&self) -> &'static str {
        "GICv2 GICH"
    }
    fn guest_ack(&mut self, n: usize) {
        let l = &mut self.frame.regs[gich::LR0 / 4 + n];
        *l = (*l & !(3 << 28)) | (2 << 28);
    }
    fn guest_eoi(&mut self, n: usize) {
        self.frame.regs[gich::LR0 / 4 + n] &= !(3 << 28);
    }
    fn raw_lr(&self, n: usize) -> u64 {
        self.frame.lr(n) as u64
    }
    fn hcr_now(&self) -> u32 {
        self.frame.regs[0]
    }
    fn accesses(&self) -> (usize, usize) {
        (self.frame.reads, self.frame.writes)
    }
    fn reset_counts(&mut self) {
        self.frame.reads = 0;
        self.frame.writes = 0;
    }
}

fn ich(vtr: u64) -> Ich<FakeIch> {
    let vtr = VtrInfo::decode(vtr);
    Ich::new(
        FakeIch {
            n: vtr.list_regs,
            ..Default::default()
        },
        vtr,
    )
}

fn gich_frame(vtr: u32) -> Gich<FakeGich> {
    Gich::new(FakeGich::new(vtr), v2::decode_vtr(vtr))
}

/// Runs `f` on a fresh QEMU-shaped backend of each kind.
fn each_backend(mut f: impl FnMut(&mut dyn Backend)) {
    f(&mut ich(QEMU_ICH_VTR));
    f(&mut gich_frame(QEMU_GICH_VTR));
}

fn place(b: &mut dyn Backend, x: &QueuedInterrupt) -> Placement {
    let mut empty = b.empty_lrs();
    lrs::place(b, &mut empty, x).unwrap()
}

fn intid_of(b: &dyn Backend, n: usize) -> u32 {
    b.format().decode(b.raw_lr(n)).intid
}

// ---- The existing vGIC behaviour, on both backends ----

/// `placement_in_list_registers` (vgic_timer.rs) through the hardware backends.
#[test]
fn placement_on_both_backends() {
    each_backend(|b| {
        let name = b.name();
        assert_eq!(place(b, &q(27)), Placement::Lr(0), "{name}");
        assert_eq!(
            place(b, &q(27)),
            Placement::AlreadyPending(0),
            "{name}: no double count"
        );
        assert_eq!(place(b, &q(33)), Placement::Lr(1), "{name}");
        // An active-only interrupt becomes active and pending in its own register.
        b.guest_ack(1);
        assert_eq!(place(b, &q(33)), Placement::Lr(1), "{name}");
        assert_eq!(
            b.format().state(b.raw_lr(1)),
            LrState::PendingActive,
            "{name}"
        );
        assert_eq!(place(b, &q(40)), Placement::Lr(2), "{name}");
        assert_eq!(place(b, &q(41)), Placement::Lr(3), "{name}");
        assert_eq!(place(b, &q(42)), Placement::NoRoom, "{name}");
        // The guest EOIs LR 2: it becomes free (the empty bitmap says so).
        b.guest_eoi(2);
        assert_eq!(place(b, &q(42)), Placement::Lr(2), "{name}");
        assert_eq!(intid_of(b, 2), 42, "{name}");
    });
}

/// `queue_overflow_and_refill` (vgic_timer.rs) through the hardware backends.
#[test]
fn queue_refill_on_both_backends() {
    each_backend(|b| {
        let name = b.name();
        let mut queue = PendingQueue::default();
        for i in 0..vgic::QUEUE_LEN as u32 {
            queue.push(vi(100 + i)).unwrap();
        }
        assert_eq!(
            queue.push(vi(9999)),
            Err(InjectIrqError::QueueFull),
            "{name}"
        );
        assert_eq!(lrs::refill(b, &mut queue), 0b1111, "{name}");
        assert_eq!(queue.len(), vgic::QUEUE_LEN - 4);
        let got: Vec<u32> = (0..4).map(|n| intid_of(b, n)).collect();
        assert_eq!(got, [100, 101, 102, 103], "{name}: oldest first");
        assert_eq!(lrs::refill(b, &mut queue), 0, "{name}: no free register");
        b.guest_eoi(1);
        assert_eq!(lrs::refill(b, &mut queue), 0b0010, "{name}");
        assert_eq!(intid_of(b, 1), 104, "{name}");
        assert_eq!(
            queue.iter().next().map(|v| v.intid),
            Some(105),
            "{name}: order kept"
        );
    });
}

/// The injection hot path reads the empty-register bitmap and nothing else when no
/// list register holds an interrupt, and writes one list register: one `mrs` + one
/// `msr` on GICv3, one load + one store on GICv2 (≤ 32 list registers). Before, it
/// read every list register.
#[test]
fn injection_reads_only_the_empty_bitmap_and_occupied_registers() {
    each_backend(|b| {
        let name = b.name();
        let mut queue = PendingQueue::default();
        b.reset_counts();
        lrs::inject_bound(b, &mut queue, &q(27)).unwrap();
        assert_eq!(b.accesses(), (1, 1), "{name}: ELRSR read, LR written");
        // One occupied register: it is read to look for a duplicate, nothing else.
        b.reset_counts();
        lrs::inject_bound(b, &mut queue, &q(30)).unwrap();
        assert_eq!(b.accesses(), (2, 1), "{name}");
        b.reset_counts();
        lrs::inject_bound(b, &mut queue, &q(30)).unwrap();
        assert_eq!(
            b.accesses(),
            (3, 0),
            "{name}: already pending, nothing written"
        );
    });
    // 64 GICv2 list registers: the crate uses 16 (ELRSR0 only) and clears all 64.
    let mut g = gich_frame(QEMU_GICH_VTR | 0x3f);
    assert_eq!(g.list_regs(), vgic::MAX_LRS);
    for n in 0..64 {
        g.frame.regs[gich::LR0 / 4 + n] = v2::lr::PENDING | 40;
    }
    lrs::reset(&mut g);
    assert!(
        (0..64).all(|n| g.frame.lr(n) == 0),
        "every implemented LR cleared"
    );
    let mut queue = PendingQueue::default();
    g.reset_counts();
    lrs::inject_bound(&mut g, &mut queue, &q(40)).unwrap();
    assert_eq!(g.accesses(), (1, 1), "ELRSR0 only");
}

/// Overflow: queued, with the maintenance interrupts armed so that none is asserted
/// now; the guest frees registers, the maintenance interrupt asserts, the handler
/// refills in order and re-arms; with the queue drained only En stays.
#[test]
fn maintenance_cycle_on_both_backends() {
    each_backend(|b| {
        let name = b.name();
        let mut queue = PendingQueue::default();
        for i in 0..6 {
            lrs::inject_bound(b, &mut queue, &q(40 + i)).unwrap();
        }
        assert_eq!(queue.len(), 2, "{name}");
        assert_eq!(b.hcr_now(), hcr::EN | hcr::UIE | hcr::NPIE, "{name}: armed");
        assert!(!lrs::maintenance(b, &mut queue), "{name}: not asserted yet");
        // The guest takes all four: nothing pending (NP), but no register is free:
        // nothing moves, and NP is disarmed.
        for n in 0..4 {
            b.guest_ack(n);
        }
        assert!(lrs::maintenance(b, &mut queue), "{name}: no pending");
        assert_eq!(queue.len(), 2, "{name}");
        assert_eq!(b.hcr_now(), hcr::EN | hcr::UIE, "{name}");
        // It ends three: at most one valid, underflow.
        for n in 0..3 {
            b.guest_eoi(n);
        }
        assert!(b.misr() & hcr::MISR_U != 0, "{name}: underflow asserted");
        assert!(lrs::maintenance(b, &mut queue), "{name}");
        assert_eq!(
            (intid_of(b, 0), intid_of(b, 1)),
            (44, 45),
            "{name}: refilled in order"
        );
        assert!(queue.is_empty(), "{name}");
        assert_eq!(
            b.hcr_now(),
            hcr::EN,
            "{name}: nothing queued, nothing armed"
        );
        assert_eq!(b.misr(), 0, "{name}: deasserted");
        assert!(
            !lrs::maintenance(b, &mut queue),
            "{name}: another interrupt"
        );
    });
}

/// No storm: when every list register is active (the guest is in nested handlers)
/// and more is queued, "no pending" would hold at once; the decision leaves it off
/// and keeps underflow armed.
#[test]
fn all_active_with_a_queue_arms_only_underflow() {
    each_backend(|b| {
        let name = b.name();
        let mut queue = PendingQueue::default();
        for i in 0..5 {
            lrs::inject_bound(b, &mut queue, &q(50 + i)).unwrap();
        }
        for n in 0..4 {
            b.guest_ack(n);
        }
        // NP fires: the handler finds no free register and must not leave NP armed.
        assert!(lrs::maintenance(b, &mut queue), "{name}");
        assert_eq!(b.hcr_now(), hcr::EN | hcr::UIE, "{name}");
        assert_eq!(b.misr(), 0, "{name}: nothing asserted after the decision");
        assert_eq!(queue.len(), 1, "{name}");
    });
}

/// The bind/unbind switch: save reads the bitmap and only the occupied registers,
/// leaves the hardware disabled and empty; load restores exactly what was saved.
#[test]
fn switch_round_trip_on_both_backends() {
    each_backend(|b| {
        let name = b.name();
        let mut queue = PendingQueue::default();
        lrs::inject_bound(b, &mut queue, &q(27)).unwrap();
        lrs::inject_bound(b, &mut queue, &q(33)).unwrap();
        b.guest_ack(0);
        b.set_vmcr(0xf000_0003);
        let mut aps = VgicState::default();
        aps.ap0r[0] = 1 << 20;
        b.load_aprs(&aps);
        let before: Vec<u64> = (0..4).map(|n| b.raw_lr(n)).collect();
        let mut s = VgicState::default();
        lrs::save(b, &mut s);
        assert_eq!(&s.lr[..4], &before[..], "{name}");
        assert_eq!((s.vmcr, s.ap0r[0]), (0xf000_0003, 1 << 20), "{name}");
        assert_eq!(b.hcr_now(), 0, "{name}: disabled");
        assert!((0..4).all(|n| b.raw_lr(n) == 0), "{name}: emptied");
        assert_eq!(b.empty_lrs(), 0b1111, "{name}");
        // Another vCPU's state in between does not leak into this one's.
        lrs::load(b, &VgicState::default(), false, None);
        assert!((0..4).all(|n| b.raw_lr(n) == 0), "{name}");
        s.hcr = hcr::EN as u64;
        lrs::load(b, &s, false, None);
        let after: Vec<u64> = (0..4).map(|n| b.raw_lr(n)).collect();
        assert_eq!(after, before, "{name}");
        assert_eq!((b.vmcr(), b.hcr_now()), (0xf000_0003, hcr::EN), "{name}");
        // The rebind shortcut: `save`'s bitmap names exactly the saved registers, and
        // a load of only those (APRs and VMCR resident) gives the same hardware.
        let held = lrs::save(b, &mut s);
        let nonzero = (0..16)
            .filter(|&n| s.lr[n] != 0)
            .fold(0u64, |m, n| m | 1 << n);
        assert_eq!(held, nonzero, "{name}: held bitmap");
        assert_eq!(held.count_ones(), 2, "{name}");
        assert!(
            s.lr[4..].iter().all(|&l| l == 0),
            "{name}: beyond the interface"
        );
        b.reset_counts();
        lrs::load(b, &s, true, Some(held));
        let (reads, writes) = b.accesses();
        assert_eq!(
            (reads, writes),
            (0, 3),
            "{name}: two list registers and HCR"
        );
        let after: Vec<u64> = (0..4).map(|n| b.raw_lr(n)).collect();
        assert_eq!(after, before, "{name}: resident reload");
        // A stale copy in the array beyond the saved ones is cleared by the save.
        s.lr[3] = 0xdead;
        let held = lrs::save(b, &mut s);
        assert_eq!((held.count_ones(), s.lr[3]), (2, 0), "{name}");
        // An idle switch costs the bitmap read and the controls, no list register.
        lrs::save(b, &mut s);
        b.reset_counts();
        lrs::save(b, &mut s);
        // ELRSR, VMCR and the active priorities (GICv3: AP0R0 + AP1R0; GICv2: APR).
        let (reads, _) = b.accesses();
        assert!(reads <= 4, "{name}: {reads} reads for an empty interface");
    });
}

/// `hardware_enable`'s reset: list registers of UNKNOWN reset value cleared.
#[test]
fn reset_clears_unknown_state() {
    let mut b = ich(QEMU_ICH_VTR);
    b.regs.lr = [0xdead_beef_0000_0000 | (1 << 62); 16];
    b.regs.hcr = 1;
    lrs::reset(&mut b);
    assert_eq!(&b.regs.lr[..4], &[0; 4]);
    assert_eq!(b.regs.hcr, 0);
    let mut g = gich_frame(QEMU_GICH_VTR);
    for n in 0..4 {
        g.frame.regs[gich::LR0 / 4 + n] = 0x1000_0000 | n as u32;
    }
    lrs::reset(&mut g);
    assert_eq!(g.empty_lrs(), 0b1111);
}

// ---- GICv2 list registers (IHI 0048B 5.3.11) ----

#[test]
fn gicv2_list_register_examples() {
    // Pending, Group 1, priority 0xa0 (top 5 bits 0b10100), virtual ID 27, hardware-
    // linked to physical ID 27: HW [31] | Grp1 [30] | State 01 [29:28] |
    // Priority [27:23] | PhysicalID [19:10] | VirtualID [9:0].
    let e = ListEntry {
        intid: 27,
        priority: 0xa0,
        group1: true,
        state: LrState::Pending,
        hw_intid: Some(27),
        ..Default::default()
    };
    let want = (1 << 31) | (1 << 30) | (1 << 28) | (0b10100 << 23) | (27 << 10) | 27;
    assert_eq!(v2::encode_lr(&e), Ok(want));
    assert_eq!(v2::decode_lr(want), e);
    // SGI 3 from CPU interface 5, Group 0, priority 0: CPUID [12:10] = 5.
    let sgi = ListEntry {
        intid: 3,
        state: LrState::Pending,
        source_cpu: 5,
        ..Default::default()
    };
    assert_eq!(v2::encode_lr(&sgi), Ok((1 << 28) | (5 << 10) | 3));
    // Software interrupt with EOI maintenance: bit 19.
    let eoi = ListEntry {
        intid: 40,
        state: LrState::Active,
        eoi_maintenance: true,
        ..Default::default()
    };
    assert_eq!(v2::encode_lr(&eoi), Ok((2 << 28) | (1 << 19) | 40));
    // SPI 1019, the largest: fits; the low 3 priority bits are not implemented.
    let top = ListEntry {
        intid: 1019,
        priority: 0xff,
        state: LrState::PendingActive,
        ..Default::default()
    };
    let raw = v2::encode_lr(&top).unwrap();
    assert_eq!(raw, (3 << 28) | (0x1f << 23) | 1019);
    assert_eq!(v2::decode_lr(raw).priority, 0xf8);
}

/// INTIDs that do not fit are refused with a typed error, never truncated to the
/// 10-bit field (1020 would become a special INTID, 1024 would alias SGI 0).
#[test]
fn gicv2_list_register_limits() {
    let base = ListEntry {
        state: LrState::Pending,
        ..Default::default()
    };
    for bad in [1020, 1023, 1024, 1056, 8192, u32::MAX] {
        assert_eq!(
            v2::encode_lr(&ListEntry { intid: bad, ..base }),
            Err(InjectIrqError::InvalidIntid),
            "{bad}"
        );
    }
    for p in [0, 15, 1020, 1024] {
        assert_eq!(
            v2::encode_lr(&ListEntry {
                intid: 40,
                hw_intid: Some(p),
                ..base
            }),
            Err(InjectIrqError::InvalidHwIntid),
            "physical {p}"
        );
    }
    assert_eq!(
        v2::encode_lr(&ListEntry {
            intid: 2,
            source_cpu: 8,
            ..base
        }),
        Err(InjectIrqError::InvalidSourceCpu)
    );
    assert_eq!(
        v2::encode_lr(&ListEntry {
            intid: 16,
            source_cpu: 1,
            ..base
        }),
        Err(InjectIrqError::InvalidSourceCpu),
        "only SGIs have a source"
    );
    assert_eq!(
        v2::encode_lr(&ListEntry {
            intid: 40,
            hw_intid: Some(40),
            eoi_maintenance: true,
            ..base
        }),
        Err(InjectIrqError::InvalidHwIntid),
        "HW = 1 has no EOI bit"
    );
}

/// A GICv2 SGI's identity includes its source: SGI 2 from CPU 0 and from CPU 1 are two
/// list registers, the same pair twice is one.
#[test]
fn gicv2_sgis_from_two_sources_are_two_interrupts() {
    let mut b = gich_frame(QEMU_GICH_VTR);
    let mut queue = PendingQueue::default();
    let from = |src| QueuedInterrupt {
        vi: vi(2),
        source_cpu: src,
    };
    lrs::inject_bound(&mut b, &mut queue, &from(0)).unwrap();
    lrs::inject_bound(&mut b, &mut queue, &from(1)).unwrap();
    lrs::inject_bound(&mut b, &mut queue, &from(1)).unwrap();
    assert_eq!(b.empty_lrs(), 0b1100);
    assert_eq!(v2::decode_lr(b.frame.lr(1)).source_cpu, 1);
    // On GICv3 the source does not exist: one interrupt.
    let mut g3 = ich(QEMU_ICH_VTR);
    lrs::inject_bound(&mut g3, &mut queue, &from(0)).unwrap();
    lrs::inject_bound(&mut g3, &mut queue, &from(1)).unwrap();
    assert_eq!(g3.empty_lrs(), 0b1110);
    assert_eq!(g3.regs.lr[0] >> 32 & 0x1fff, 0, "no source bits in ICH_LR");
    // The queue keeps them apart too.
    let mut pq = PendingQueue::default();
    pq.push_queued(from(0)).unwrap();
    pq.push_queued(from(1)).unwrap();
    pq.push_queued(from(1)).unwrap();
    assert_eq!(pq.len(), 2);
}

#[test]
fn gicv2_vtr_decode() {
    let v = v2::decode_vtr(QEMU_GICH_VTR);
    assert_eq!(
        (v.list_regs, v.pri_bits, v.pre_bits, v.id_bits),
        (4, 5, 5, 10)
    );
    assert_eq!(v2::decode_vtr(0x3f).list_regs, 64);
}

// ---- GICv3 list registers (IHI 0069 ICH_LR<n>_EL2) ----

#[test]
fn gicv3_list_register_examples() {
    let e = ListEntry {
        intid: 27,
        priority: 0xa0,
        group1: true,
        state: LrState::Pending,
        hw_intid: Some(27),
        ..Default::default()
    };
    // State [63:62] | HW [61] | Group [60] | Priority [55:48] | pINTID [44:32] | vINTID.
    let want = (1u64 << 62) | (1 << 61) | (1 << 60) | (0xa0 << 48) | (27 << 32) | 27;
    assert_eq!(v3::encode_lr(&e), Ok(want));
    assert_eq!(v3::decode_lr(want), e);
    assert_eq!(want, vgic::encode(&vi(27).with_hw(27)));
    // EOI [41] for a software interrupt; a 24-bit LPI keeps all its bits.
    let lpi = ListEntry {
        intid: 0x00ab_cdef,
        state: LrState::Pending,
        eoi_maintenance: true,
        ..Default::default()
    };
    assert_eq!(v3::encode_lr(&lpi), Ok((1 << 62) | (1 << 41) | 0x00ab_cdef));
    assert_eq!(
        v3::encode_lr(&ListEntry {
            source_cpu: 1,
            ..lpi
        }),
        Err(InjectIrqError::InvalidSourceCpu)
    );
}

trait WithHw {
    fn with_hw(self, p: u32) -> Self;
}
impl WithHw for VirtualInterrupt {
    fn with_hw(mut self, p: u32) -> Self {
        self.hw_intid = Some(p);
        self
    }
}

fn state() -> impl Strategy<Value = LrState> {
    (0u64..4).prop_map(LrState::from_bits)
}

proptest! {
    /// Every encodable GICv2 entry comes back as it went in (priority: top 5 bits).
    #[test]
    fn gicv2_lr_round_trip(
        intid in 0u32..=1019, prio: u8, group1: bool, st in state(),
        hw in prop::option::of(16u32..=1019), src in 0u8..8, eoi: bool,
    ) {
        let e = ListEntry {
            intid, priority: prio, group1, state: st, hw_intid: hw,
            source_cpu: if hw.is_none() && intid < 16 { src } else { 0 },
            eoi_maintenance: hw.is_none() && eoi,
        };
        let raw = v2::encode_lr(&e).unwrap();
        prop_assert_eq!(v2::decode_lr(raw), ListEntry { priority: prio & 0xf8, ..e });
    }

    /// Every GICv2 register value with its reserved bits clear re-encodes to itself.
    #[test]
    fn gicv2_lr_raw_round_trip(raw: u32) {
        let hw = raw & v2::lr::HW != 0;
        let reserved = if hw { 0x0070_0000 } else { 0x0077_e000 };
        let raw = raw & !reserved;
        let e = v2::decode_lr(raw);
        prop_assume!(e.intid <= 1019);
        prop_assume!(!hw || (16..=1019).contains(&e.hw_intid.unwrap_or(0)));
        prop_assume!(hw || e.source_cpu == 0 || e.intid < 16);
        prop_assert_eq!(v2::encode_lr(&e), Ok(raw));
    }

    #[test]
    fn gicv3_lr_round_trip(
        intid: u32, prio: u8, group1: bool, st in state(),
        hw in prop::option::of(0u32..0x2000), eoi: bool,
    ) {
        let e = ListEntry {
            intid, priority: prio, group1, state: st, hw_intid: hw,
            source_cpu: 0, eoi_maintenance: hw.is_none() && eoi,
        };
        prop_assert_eq!(v3::decode_lr(v3::encode_lr(&e).unwrap()), e);
    }

    /// The maintenance decision never arms a condition that already holds (a level
    /// maintenance interrupt asserted at entry would fire without end), and with two
    /// or more list registers, all valid after a refill, something is armed while
    /// anything is queued.
    #[test]
    fn maintenance_never_storms(list_regs in 1usize..=64, valid in 0usize..=64, pending in 0usize..=64, queued in 0usize..=64) {
        let valid = valid.min(list_regs);
        let pending = pending.min(valid);
        let h = maintenance_hcr(queued, valid, pending);
        prop_assert!(h & hcr::EN != 0);
        prop_assert!(!maintenance_asserted(h, valid, pending));
        if queued == 0 {
            prop_assert_eq!(h, hcr::EN);
        }
        if queued != 0 && list_regs >= 2 && valid == list_regs {
            prop_assert!(h & hcr::UIE != 0, "underflow armed");
        }
    }

    /// GICD_SGIR: decode and encode are inverse on the defined fields.
    #[test]
    fn sgir_round_trip(v: u32) {
        let defined = v & 0x03ff_800f;
        let r = decode_sgir(defined);
        prop_assert_eq!(r.encode() & 0x03ff_800f, if matches!(r.targets, SgirTargets::List(_)) { defined } else { defined & !0x00ff_0000 });
        prop_assert_eq!(decode_sgir(v), r, "reserved bits ignored");
    }

    /// The VMCR fields survive both layouts; only GICv2's priority mask loses its
    /// low 3 bits.
    #[test]
    fn vmcr_round_trip(bits: u16, bpr0 in 0u8..8, bpr1 in 0u8..8, pmr: u8) {
        let c = VirtualMachineControl {
            grp0_enable: bits & 1 != 0, grp1_enable: bits & 2 != 0, ack_ctl: bits & 4 != 0,
            fiq_enable: bits & 8 != 0, common_bpr: bits & 16 != 0, eoi_mode: bits & 32 != 0,
            bpr0, bpr1, priority_mask: pmr,
        };
        prop_assert_eq!(VirtualMachineControl::decode(LrFormat::V3, c.encode(LrFormat::V3)), c);
        prop_assert_eq!(
            VirtualMachineControl::decode(LrFormat::V2, c.encode(LrFormat::V2)),
            VirtualMachineControl { priority_mask: pmr & 0xf8, ..c }
        );
    }
}

// ---- VMCR ----

/// `ICH_VMCR_EL2.VPMR` is 8 bits at [31:24]; `GICH_VMCR.VMPriMask` 5 bits at [31:27]
/// (IHI 0048B 5.3.3). A priority mask of 0xf0 with both groups enabled and EOImode:
#[test]
fn vmcr_layouts() {
    let c = VirtualMachineControl {
        grp0_enable: true,
        grp1_enable: true,
        eoi_mode: true,
        bpr0: 2,
        bpr1: 3,
        priority_mask: 0xf0,
        ..Default::default()
    };
    assert_eq!(
        v3::encode_vmcr(&c),
        0xf000_0000 | (2 << 21) | (3 << 18) | (1 << 9) | 3
    );
    assert_eq!(
        v2::encode_vmcr(&c),
        (0x1e << 27) | (2 << 21) | (3 << 18) | (1 << 9) | 3
    );
    // The top 5 mask bits sit at the same place; GICv3's low 3 bits are reserved
    // bits of GICH_VMCR, so a raw GICv3 value is no GICv2 value.
    let fine = VirtualMachineControl {
        priority_mask: 0xf7,
        ..c
    };
    assert_eq!(v3::encode_vmcr(&fine) >> 24, 0xf7);
    assert_eq!(v2::encode_vmcr(&fine) >> 24, 0xf0);
    assert_eq!(v2::decode_vmcr(0xf800_0000).priority_mask, 0xf8);
    assert_eq!(v3::decode_vmcr(0xf800_0000).priority_mask, 0xf8);
    assert_eq!(v3::decode_vmcr(0x0700_0000).priority_mask, 0x07);
    assert_eq!(
        v2::decode_vmcr(0x0700_0000).priority_mask,
        0,
        "[26:24] reserved in GICv2"
    );
}

// ---- GICD_SGIR (IHI 0048B 4.3.15) ----

#[test]
fn sgir_decoding() {
    // TargetListFilter 0b00, CPUTargetList 0b0000_0110, SGIINTID 5.
    let r = decode_sgir(0x0006_0005);
    assert_eq!(
        r,
        SgirRequest {
            intid: 5,
            targets: SgirTargets::List(0b110),
            nsatt: false
        }
    );
    assert_eq!(r.target_mask(0, 2), 0b10, "only interfaces 0..2 exist");
    assert_eq!(r.target_mask(0, 8), 0b110);
    // 0b01: all but self (what Linux's IPI broadcast uses), with NSATT.
    let all = decode_sgir((1 << 24) | (1 << 15) | 0xff_0000 | 1);
    assert_eq!(
        (all.intid, all.targets, all.nsatt),
        (1, SgirTargets::AllButSelf, true)
    );
    assert_eq!(all.target_mask(1, 4), 0b1101, "the list is ignored");
    // 0b10: self only.
    let me = decode_sgir((2 << 24) | 0xf);
    assert_eq!((me.intid, me.targets), (15, SgirTargets::SelfOnly));
    assert_eq!(me.target_mask(3, 4), 0b1000);
    assert_eq!(me.target_mask(9, 8), 0, "a sender that is no interface");
    // 0b11: reserved: nowhere.
    let res = decode_sgir((3 << 24) | 0xff_0000);
    assert_eq!(res.targets, SgirTargets::Reserved);
    assert_eq!(res.target_mask(0, 8), 0);
    assert_eq!(all.target_mask(0, 100), 0xfe, "at most 8 interfaces");
}

// ---- Choosing the interface ----

#[test]
fn interface_choice() {
    let mut asked = false;
    // The host named a GICH frame: GICv2; ICC_SRE_EL2 is not touched.
    assert_eq!(
        VirtualInterface::choose(Some(0x0803_0000), true, || {
            asked = true;
            true
        }),
        InterfaceKind::V2
    );
    assert!(!asked);
    // QEMU gic-version=2: ID_AA64PFR0_EL1.GIC = 0, ICC_* UNDEFINED: never written.
    assert_eq!(
        VirtualInterface::choose(None, false, || panic!("ICC_SRE_EL2 touched")),
        InterfaceKind::None
    );
    assert_eq!(
        VirtualInterface::choose(None, true, || true),
        InterfaceKind::V3
    );
    // SRE does not stick (a GICv3 in legacy operation): no system-register interface.
    assert_eq!(
        VirtualInterface::choose(None, true, || false),
        InterfaceKind::None
    );
    assert_eq!(
        VirtualInterface::v2(0x1000, VtrInfo::NONE, 25).kind,
        InterfaceKind::None
    );
}

#[test]
fn percpu_interface_setters() {
    let mut p = Aarch64PerCpu::new(0);
    assert_eq!(
        p.set_gicv2_interface(0),
        Err(VCpuError::InvalidConfig(
            "GICH frame address is zero or not 4 KiB aligned"
        ))
    );
    assert!(p.set_gicv2_interface(0x0803_0004).is_err());
    assert_eq!(p.set_gicv2_interface(0x0803_0000), Ok(()));
    assert!(p.set_maintenance_interrupt(15).is_err());
    assert!(p.set_maintenance_interrupt(32).is_err());
    assert_eq!(p.set_maintenance_interrupt(25), Ok(()));
    assert_eq!(
        p.virtual_interface().kind,
        InterfaceKind::None,
        "not probed yet"
    );
}

// ---- The vCPU on a GICv2 interface ----

fn v2_vcpu() -> Aarch64VCpu {
    let mut v = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    v.setup(Aarch64VCpuSetupConfig::default()).unwrap();
    v.set_entry(0x4008_0000).unwrap();
    v.test_set_interface(VirtualInterface::v2(
        0x0803_0000,
        v2::decode_vtr(QEMU_GICH_VTR),
        25,
    ));
    v
}

#[test]
fn vcpu_on_gicv2_refuses_what_gicv2_cannot_hold() {
    let mut v = v2_vcpu();
    for bad in [1020, 1056, 4096, 8192] {
        assert_eq!(
            v.inject_interrupt(vi(bad)),
            Err(InjectIrqError::InvalidIntid),
            "{bad}"
        );
    }
    assert_eq!(v.inject_interrupt(vi(1019)), Ok(()));
    assert_eq!(v2::decode_lr(v.vgic_state().lr[0] as u32).intid, 1019);
    assert_eq!(v.inject_sgi(vi(16), 0), Err(InjectIrqError::InvalidIntid));
    assert_eq!(
        v.inject_sgi(vi(3), 8),
        Err(InjectIrqError::InvalidSourceCpu)
    );
    assert_eq!(
        v.inject_sgi(vi(3).with_hw(27), 0),
        Err(InjectIrqError::InvalidHwIntid)
    );
    assert_eq!(v.inject_sgi(vi(3), 7), Ok(()));
    let e = v2::decode_lr(v.vgic_state().lr[1] as u32);
    assert_eq!((e.intid, e.source_cpu, e.state), (3, 7, LrState::Pending));
    // The hardware-linked PPI goes in with its physical ID.
    assert_eq!(v.inject_interrupt(vi(27).with_hw(27)), Ok(()));
    assert_eq!(
        v2::decode_lr(v.vgic_state().lr[2] as u32).hw_intid,
        Some(27)
    );
    // power_on hands the link back.
    let released = v.power_on(0x4008_0000, 0).unwrap();
    assert_eq!(released.iter().collect::<Vec<_>>(), [27]);
}

/// Interrupts queued before the first bind (INTID size not known yet) that a GICv2
/// cannot encode make the bind fail, typed, instead of being truncated or stuck.
#[test]
fn bind_refuses_queued_interrupts_gicv2_cannot_encode() {
    let mut v = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    v.setup(Aarch64VCpuSetupConfig::default()).unwrap();
    v.inject_interrupt(vi(8192)).unwrap();
    assert_eq!(v.queued_interrupts(), 1);
    let g2 = VirtualInterface::v2(0x0803_0000, v2::decode_vtr(QEMU_GICH_VTR), 25);
    let g3 = VirtualInterface::v3(VtrInfo::decode(QEMU_ICH_VTR), 25);
    assert!(matches!(
        v.test_vgic().check_bind(&g2, false),
        Err(VCpuError::InvalidConfig(_))
    ));
    assert_eq!(v.test_vgic().check_bind(&g3, false), Ok(()));
    // Binding on GICv2 with encodable interrupts: refilled into the GICv2 format.
    let mut w = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    w.setup(Aarch64VCpuSetupConfig::default()).unwrap();
    w.inject_interrupt(vi(33)).unwrap();
    w.inject_sgi(vi(1), 2).unwrap();
    assert!(w.test_vgic().prepare_bind(&g2, false, true));
    let e = v2::decode_lr(w.vgic_state().lr[1] as u32);
    assert_eq!((e.intid, e.source_cpu), (1, 2));
    assert_eq!(w.vgic_state().hcr, hcr::EN as u64);
}

/// A vCPU moving between interface versions carries its VMCR over in the other
/// layout (it differs in the priority mask), and refuses to move live state.
#[test]
fn vmcr_converted_when_the_interface_version_changes() {
    let mut v = v2_vcpu();
    let g3 = VirtualInterface::v3(VtrInfo::decode(QEMU_ICH_VTR), 25);
    let g2 = VirtualInterface::v2(0x0803_0000, v2::decode_vtr(QEMU_GICH_VTR), 25);
    v.test_set_interface(g3);
    // ICH_VMCR_EL2: VENG1, VPMR 0xf7.
    v.test_vgic_mut().vmcr = 0xf700_0002;
    assert_eq!(v.test_vgic().check_bind(&g2, false), Ok(()));
    v.test_vgic().prepare_bind(&g2, false, true);
    assert_eq!(
        v.vgic_state().vmcr,
        0xf000_0002,
        "GICH_VMCR: VMPriMask, [26:24] clear"
    );
    let c = v.virtual_machine_control();
    assert_eq!((c.grp1_enable, c.priority_mask), (true, 0xf0));
    v.inject_interrupt(vi(33)).unwrap();
    assert!(
        v.test_vgic().check_bind(&g3, false).is_err(),
        "a live list register"
    );
}

/// The unbound-vCPU tests of vgic_timer.rs, on a GICv2 interface: typed errors without
/// an interface, and the saved copy in GICv2 format with one.
#[test]
fn inject_without_a_virtual_interface_is_an_error_on_gicv2_too() {
    let mut v = v2_vcpu();
    v.test_set_interface(VirtualInterface::NONE);
    assert_eq!(
        v.inject_interrupt(vi(33)),
        Err(InjectIrqError::NoVirtualInterface)
    );
    let mut p = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    p.setup(Aarch64VCpuSetupConfig {
        passthrough_interrupt: true,
        ..Default::default()
    })
    .unwrap();
    p.test_set_interface(VirtualInterface::v2(
        0x0803_0000,
        v2::decode_vtr(QEMU_GICH_VTR),
        25,
    ));
    assert_eq!(
        p.inject_sgi(vi(1), 1),
        Err(InjectIrqError::NoVirtualInterface)
    );
    // Saved list registers fill, then the queue.
    let mut v = v2_vcpu();
    for i in 0..6 {
        v.inject_interrupt(vi(40 + i)).unwrap();
    }
    assert_eq!(v.queued_interrupts(), 2);
    let mut s = SavedLrs {
        format: LrFormat::V2,
        lrs: &mut v.test_vgic_mut().lr[..4],
    };
    assert_eq!(s.empty_lrs(), 0);
    assert_eq!(v2::decode_lr(s.lr(3) as u32).intid, 43);
}

/// A guest SGI system-register write becomes `SendSgi` only on GICv3 (on GICv2 the
/// guest's SGIs are GICD_SGIR writes, MMIO exits).
#[test]
fn icc_sgi_writes_are_not_sgi_exits_on_gicv2() {
    let mut v = v2_vcpu();
    v.set_gpr(2, (3u64 << 24) | 1).unwrap();
    let esr = crate::esr::build::sysreg(3, 0, 12, 11, 5, 2, false);
    let exit = v.handle_sync_exit(&crate::esr::Syndrome {
        esr,
        ..Default::default()
    });
    assert!(!matches!(exit, Some(VmExit::SendSgi { .. })), "{exit:?}");
}

/// The maintenance handler refills and then decides from the list registers it wrote,
/// not from a re-read of `ICH_ELRSR_EL2` (which, without an ISB after the writes, may
/// still show them empty and leave the queue's remainder without a maintenance
/// interrupt).
#[test]
fn maintenance_decides_from_what_it_wrote() {
    let mut b = ich(QEMU_ICH_VTR);
    let mut queue = PendingQueue::default();
    for i in 0..8 {
        lrs::inject_bound(&mut b, &mut queue, &q(40 + i)).unwrap();
    }
    for n in 0..4 {
        b.guest_ack(n);
    }
    for n in 0..3 {
        b.guest_eoi(n);
    }
    // The bitmap as of the exception entry; list-register writes do not update it.
    b.regs.frozen_elrsr = Some(0b0111);
    assert!(lrs::maintenance(&mut b, &mut queue));
    assert_eq!(queue.len(), 1);
    assert_eq!(
        b.hcr_now(),
        hcr::EN | hcr::UIE | hcr::NPIE,
        "the queued remainder keeps a maintenance interrupt armed"
    );
}

/// A core whose virtual interface is not the GICv3 one shows no GIC system registers
/// (`ID_AA64PFR0_EL1.GIC` = 0): not in the crate's feature set (the inventory's
/// FEAT_GICv3 rows, `ICC_*`) nor in the VM's ID view. A GICv3 core keeps the field.
#[test]
fn gic_sysregs_follow_the_interface_backend() {
    use crate::idregs::{IdRegisters, ID_AA64PFR0, ID_SPACE_LEN};
    use crate::percpu::id_space_for_interface;
    use crate::sysreg::{Feature, FeatureSet};
    let mut host = [0u64; ID_SPACE_LEN];
    // EL0/EL1 AArch64, FP/AdvSIMD, GIC = 1 (GICv3 system registers).
    host[ID_AA64PFR0] = 0x0100_0011;
    for (kind, gicv3) in [
        (InterfaceKind::V3, true),
        (InterfaceKind::V2, false),
        (InterfaceKind::None, false),
    ] {
        let id = id_space_for_interface(host, kind);
        assert_eq!(
            FeatureSet::from_id_space(&id).has(Feature::Gicv3),
            gicv3,
            "{kind:?}"
        );
        let view = IdRegisters::sanitized(&id, false, 40);
        assert_eq!(
            (view.values()[ID_AA64PFR0] >> 24) & 0xf,
            u64::from(gicv3),
            "{kind:?}"
        );
        // Nothing else changes.
        assert_eq!(
            id[ID_AA64PFR0] & !(0xf << 24),
            host[ID_AA64PFR0] & !(0xf << 24)
        );
    }
}

// ---- registers by ID and snapshots on a GICv2-shaped vCPU ----

#[test]
fn vgic_registers_by_id_follow_the_gicv2_layout() {
    use crate::reg::{Reg, RegError, VgicReg};
    use crate::snapshot::{Incompatibility, Snapshot};
    let lr = |n| Reg::Vgic(VgicReg::Lr(n));
    let mut v = v2_vcpu();
    // QEMU's GICH: 4 list registers, one GICH_APR (as AP0R0), no AP1R.
    let list: Vec<Reg> = v.reg_list().collect();
    for n in 0..4 {
        assert!(list.contains(&lr(n)), "LR{n}");
    }
    assert!(!list.contains(&lr(4)));
    assert!(list.contains(&Reg::Vgic(VgicReg::Ap0r(0))));
    assert!(!list.contains(&Reg::Vgic(VgicReg::Ap0r(1))));
    assert!(!list.contains(&Reg::Vgic(VgicReg::Ap1r(0))));
    assert!(list.contains(&Reg::Vgic(VgicReg::Vmcr)));
    // An injected interrupt reads back as the GICH_LR the bind would load.
    v.inject_interrupt(vi(40)).unwrap();
    let raw = v.get_reg(lr(0)).unwrap();
    assert_eq!(raw, v.vgic_state().lr[0] as u128);
    assert_eq!(v2::decode_lr(raw as u32).intid, 40);
    // GICH_LR values are checked as GICH_LR values.
    let pending = |id: u32| (v2::lr::PENDING | v2::lr::GROUP1 | id) as u128;
    assert_eq!(v.set_reg(lr(1), pending(1019)), Ok(()));
    assert_eq!(v2::decode_lr(v.vgic_state().lr[1] as u32).intid, 1019);
    for bad in [
        pending(1020),
        (vgic::lr::PENDING | 40) as u128, // an ICH_LR<n>_EL2 value
        (v2::lr::PENDING | v2::lr::HW | (3 << v2::lr::PHYSICAL_SHIFT) | 40) as u128,
    ] {
        assert_eq!(
            v.set_reg(lr(2), bad),
            Err(RegError::InvalidValue(lr(2))),
            "{bad:#x}"
        );
    }
    // GICH_APR and GICH_VMCR are 32 bits.
    let apr = Reg::Vgic(VgicReg::Ap0r(0));
    let vmcr = Reg::Vgic(VgicReg::Vmcr);
    assert_eq!(v.set_reg(apr, 1 << 32), Err(RegError::InvalidValue(apr)));
    assert_eq!(v.set_reg(apr, 1 << 31), Ok(()));
    assert_eq!(v.get_reg(apr), Ok(1 << 31));
    assert_eq!(v.set_reg(vmcr, 0xf800_0003), Ok(()));
    assert_eq!(v.get_reg(vmcr), Ok(0xf800_0003));
    assert_eq!(v.set_reg(vmcr, 1 << 40), Err(RegError::InvalidValue(vmcr)));
    // The list registers full: an SGI from CPU interface 5 is queued with its source.
    v.set_reg(lr(2), pending(41)).unwrap();
    v.set_reg(lr(3), pending(42)).unwrap();
    v.inject_sgi(vi(3), 5).unwrap();
    let q0 = Reg::Vgic(VgicReg::Queued(0));
    let queued = v.get_reg(q0).unwrap();
    assert_ne!(queued, 0);
    // A snapshot carries it all: restored on a GICv2 vCPU, the same registers.
    let snap = v.snapshot().unwrap();
    let mut bytes = vec![0u8; 1 << 16];
    let n = snap.to_bytes(&mut bytes).unwrap();
    let back = Snapshot::from_bytes(&bytes[..n]).unwrap();
    let mut w = v2_vcpu();
    w.restore(&back).unwrap();
    for r in v.reg_list().filter(|r| matches!(r, Reg::Vgic(_))) {
        assert_eq!(w.get_reg(r), v.get_reg(r), "{r}");
    }
    let q = w.test_vgic().queue.get_queued(0).unwrap();
    assert_eq!((q.vi.intid, q.source_cpu), (3, 5));
    // On a GICv3 interface the same state means something else: refused, typed.
    let v3_vtr = VtrInfo::decode(QEMU_ICH_VTR);
    assert_eq!(
        back.check_core(
            crate::sysreg::FeatureSet::EMPTY,
            &crate::idregs::IdRegisters::default(),
            &v3_vtr,
            &Default::default()
        ),
        Err(Incompatibility::InterfaceKind)
    );
    // A queued SGI with a source is a GICv2 value only.
    let mut g3 = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    g3.test_set_interface(VirtualInterface::v3(v3_vtr, 25));
    assert_eq!(g3.set_reg(q0, queued), Err(RegError::InvalidValue(q0)));
    assert_eq!(w.set_reg(q0, queued), Ok(()));
}

/// `irq_state`: what an emulated distributor reports as pending/active for an INTID,
/// from list registers of either format in every state and from the queue.
#[test]
fn irq_state_from_list_registers_and_queue() {
    use crate::vgic::{irq_state, irq_states, IrqState, LrFormat, LrState, PendingQueue};
    for format in [LrFormat::V3, LrFormat::V2] {
        let lr = |intid, state| lr_in(format, intid, state);
        let lrs = [
            lr(27, LrState::Pending),
            lr(30, LrState::Active),
            lr(33, LrState::PendingActive),
            lr(40, LrState::Invalid),
        ];
        let mut q = PendingQueue::default();
        q.push(VirtualInterrupt::new(41)).unwrap();
        q.push(VirtualInterrupt::new(30)).unwrap();
        let st = |intid| irq_state(format, &lrs, &q, intid);
        let (p, a, pa, none) = (
            IrqState {
                pending: true,
                active: false,
            },
            IrqState {
                pending: false,
                active: true,
            },
            IrqState {
                pending: true,
                active: true,
            },
            IrqState::default(),
        );
        assert_eq!(st(27), p, "{format:?}");
        // Active in a list register and queued again: both.
        assert_eq!(st(30), pa, "{format:?}");
        assert_eq!(st(33), pa, "{format:?}");
        // An invalid list register holds nothing; a queued one is pending.
        assert_eq!(st(40), none, "{format:?}");
        assert_eq!(st(41), p, "{format:?}");
        assert_eq!(st(26), none, "{format:?}");
        // A block of 32 at once: 27 pending, 30 active and queued (PPIs); 33 pending
        // and active, 41 queued (SPIs from 32).
        let b = irq_states(format, &lrs, &q, 0);
        assert_eq!(
            (b.pending, b.active),
            (1 << 27 | 1 << 30, 1 << 30),
            "{format:?}"
        );
        let b = irq_states(format, &lrs, &q, 32);
        assert_eq!(
            (b.pending, b.active),
            (1 << 1 | 1 << 9, 1 << 1),
            "{format:?}"
        );
        // Only the list registers given count.
        assert_eq!(
            irq_state(format, &lrs[..1], &PendingQueue::default(), 30),
            none
        );
        assert_eq!(
            irq_state(format, &lrs[1..2], &PendingQueue::default(), 30),
            a
        );
    }
}

/// Through a vCPU: injected while unbound (queued), the state is pending; a vCPU
/// without any injection reports nothing.
#[test]
fn interrupt_state_of_an_unbound_vcpu() {
    let mut v = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    assert_eq!(v.interrupt_state(33).unwrap(), IrqState::default());
    v.inject_interrupt(VirtualInterrupt::new(33)).unwrap();
    assert_eq!(
        v.interrupt_state(33).unwrap(),
        IrqState {
            pending: true,
            active: false
        }
    );
    assert_eq!(v.interrupt_state(34).unwrap(), IrqState::default());
}

// ---- The plain-injection fast path (`inject_plain`) ----

fn plain(intid: u32, priority: u8, group1: bool, hw: Option<u32>) -> QueuedInterrupt {
    QueuedInterrupt::new(VirtualInterrupt {
        intid,
        priority,
        group1,
        hw_intid: hw,
    })
}

/// `LrFormat::encode_plain` against the field layouts: `ICH_LR<n>_EL2` (IHI 0069,
/// DDI 0487: State [63:62], HW [61], Group [60], Priority [55:48], pINTID [44:32],
/// vINTID [31:0]) and `GICH_LR<n>` (IHI 0048B 5.3.11: HW [31], Grp1 [30], State
/// [29:28], Priority [27:23], PhysicalID [19:10], VirtualID [9:0]); each the same as
/// the checked encoder's.
#[test]
fn plain_list_register_vectors() {
    let cases: [(QueuedInterrupt, u64, u64); 5] = [
        // The bench's SPI 40, priority 0xa0, Group 1.
        (
            plain(40, 0xa0, true, None),
            0x50a0_0000_0000_0028,
            0x5a00_0028,
        ),
        // The virtual timer's PPI 27 linked to the physical one, priority 0x80.
        (
            plain(27, 0x80, true, Some(27)),
            0x7080_001b_0000_001b,
            0xd800_6c1b,
        ),
        // SPI 1019 (the largest plain INTID), Group 0, priority 0.
        (
            plain(1019, 0, false, None),
            0x4000_0000_0000_03fb,
            0x1000_03fb,
        ),
        // SGI 0, priority 0xff (GICv2 keeps the top 5 bits: 0x1f << 23).
        (
            plain(0, 0xff, true, None),
            0x50ff_0000_0000_0000,
            0x5f80_0000,
        ),
        // SPI 100 linked to SPI 1019.
        (
            plain(100, 0x10, false, Some(1019)),
            0x6010_03fb_0000_0064,
            0x9100_0000 | (1019 << 10) | 100,
        ),
    ];
    for (q, v3_raw, v2_raw) in cases {
        assert!(q.is_plain(), "{q:?}");
        assert_eq!(LrFormat::V3.encode_plain(&q), v3_raw, "{q:?}");
        assert_eq!(LrFormat::V2.encode_plain(&q), v2_raw, "{q:?}");
        assert_eq!(LrFormat::V3.encode_pending(&q), Ok(v3_raw), "{q:?}");
        assert_eq!(LrFormat::V2.encode_pending(&q), Ok(v2_raw), "{q:?}");
        assert_eq!(LrFormat::V3.decode(v3_raw), q.entry(), "{q:?}");
        assert_eq!(LrFormat::V2.decode(v2_raw).intid, q.vi.intid, "{q:?}");
    }
    // Not plain: a special or large INTID, a link to an SGI or beyond 1019, a source.
    for q in [
        plain(1020, 0xa0, true, None),
        plain(1023, 0xa0, true, None),
        plain(8192, 0xa0, true, None),
        plain(40, 0xa0, true, Some(15)),
        plain(40, 0xa0, true, Some(1020)),
        QueuedInterrupt {
            vi: vi(3),
            source_cpu: 1,
        },
    ] {
        assert!(!q.is_plain(), "{q:?}");
    }
}

/// `all_empty`: the `n` low bits of the empty bitmap set (others ignored), `n` ≥ 1.
#[test]
fn all_empty_examples() {
    for (empty, n, want) in [
        (0b1111, 4, true),
        (u64::MAX, 4, true),
        (0xffff_0000_0000_000f, 4, true),
        (0b0111, 4, false),
        (0b1110, 4, false),
        (0b1011, 4, false),
        (0, 4, false),
        (0xffff, 16, true),
        (0x7fff, 16, false),
        (1, 1, true),
        (0, 1, false),
        (u64::MAX, 0, false),
        (u64::MAX, 64, true),
        (u64::MAX >> 1, 64, false),
        (u64::MAX, 65, false),
    ] {
        assert_eq!(lrs::all_empty(empty, n), want, "{empty:#x}, {n}");
    }
}

/// One random list-register content: empty, or a plain-or-not interrupt in any state.
fn lr_content() -> impl Strategy<Value = Option<(u32, u8, LrState)>> {
    prop_oneof![
        Just(None),
        (
            prop_oneof![0u32..64, 1000u32..1030],
            any::<u8>(),
            prop_oneof![
                Just(LrState::Invalid),
                Just(LrState::Pending),
                Just(LrState::Active),
                Just(LrState::PendingActive),
            ]
        )
            .prop_map(Some),
    ]
}

fn queued_interrupt() -> impl Strategy<Value = QueuedInterrupt> {
    (
        prop_oneof![0u32..64, 1000u32..1030, any::<u32>()],
        any::<u8>(),
        any::<bool>(),
        prop_oneof![
            Just(None),
            (0u32..40).prop_map(Some),
            (1000u32..1100).prop_map(Some)
        ],
        prop_oneof![Just(0u8), 0u8..10],
    )
        .prop_map(
            |(intid, priority, group1, hw, source_cpu)| QueuedInterrupt {
                vi: VirtualInterrupt {
                    intid,
                    priority,
                    group1,
                    hw_intid: hw,
                },
                source_cpu,
            },
        )
}

/// A backend of `kind` with the list registers `lrs` (1–4 registers).
fn backend_with(v3: bool, lrs: &[Option<(u32, u8, LrState)>]) -> Box<dyn Backend> {
    let n = lrs.len() as u32 - 1;
    let mut b: Box<dyn Backend> = if v3 {
        Box::new(ich((QEMU_ICH_VTR & !0x1f) | n as u64))
    } else {
        Box::new(gich_frame((QEMU_GICH_VTR & !0x3f) | n))
    };
    let fmt = b.format();
    for (i, l) in lrs.iter().enumerate() {
        if let Some((intid, priority, state)) = *l {
            let e = ListEntry {
                intid: intid.min(1019),
                priority,
                group1: true,
                state,
                ..Default::default()
            };
            let raw = fmt.encode(&e).unwrap();
            b.set_lr(i, raw);
        }
    }
    b.reset_counts();
    b
}

proptest! {
    /// For every plain interrupt the cheap encoder gives what the checked one gives,
    /// in both formats; and "plain" is exactly what its documentation says.
    #[test]
    fn plain_encoding_is_the_checked_encoding(q in queued_interrupt()) {
        let want_plain = q.vi.intid <= 1019
            && q.source_cpu == 0
            && q.vi.hw_intid.is_none_or(|p| (16..=1019).contains(&p));
        prop_assert_eq!(q.is_plain(), want_plain);
        if q.is_plain() {
            for fmt in [LrFormat::V3, LrFormat::V2] {
                prop_assert_eq!(fmt.encode_pending(&q), Ok(fmt.encode_plain(&q)));
            }
            // Valid on every interface: GICv2's 10 INTID bits, GICv3's 16 and 24.
            for id_bits in [10, 16, 24] {
                prop_assert!(vgic::valid_intid(q.vi.intid, id_bits));
            }
        }
    }

    /// `inject_plain` against `inject_bound` on both backends, from any list-register
    /// contents: where it injects, `inject_bound` writes the same register with the
    /// same value (and queues nothing); where it does not, it has written nothing and
    /// read at most the empty bitmap; and it injects exactly when `q` is plain and
    /// every list register is empty.
    #[test]
    fn plain_injection_is_inject_bound(
        v3 in any::<bool>(),
        lrs in proptest::collection::vec(lr_content(), 1..=4),
        q in queued_interrupt(),
    ) {
        let mut fast = backend_with(v3, &lrs);
        let mut slow = backend_with(v3, &lrs);
        let n = lrs.len();
        let before: Vec<u64> = (0..n).map(|i| fast.raw_lr(i)).collect();
        let every_empty = before.iter().all(|&l| fast.format().state(l) == LrState::Invalid);
        let done = lrs::inject_plain(&mut *fast, &q);
        prop_assert_eq!(done, q.is_plain() && every_empty);
        let (reads, writes) = fast.accesses();
        if done {
            prop_assert_eq!((reads, writes), (1, 1), "one bitmap read, one LR write");
            let mut queue = PendingQueue::default();
            prop_assert_eq!(lrs::inject_bound(&mut *slow, &mut queue, &q), Ok(()));
            prop_assert!(queue.is_empty());
            for i in 0..n {
                prop_assert_eq!(fast.raw_lr(i), slow.raw_lr(i), "LR {}", i);
            }
            prop_assert_eq!(fast.hcr_now(), slow.hcr_now());
        } else {
            prop_assert_eq!(writes, 0);
            prop_assert!(reads <= 1);
            for (i, &was) in before.iter().enumerate() {
                prop_assert_eq!(fast.raw_lr(i), was, "LR {}", i);
            }
        }
    }
}

/// Two injections before the next entry on a GICv3 whose `ICH_ELRSR_EL2` lags the
/// list-register writes (what the architecture allows without an `ISB`): each inject
/// synchronizes after its write, so the second finds list register 0 taken and both
/// interrupts are there — through the plain fast path and through the checked one.
#[test]
fn back_to_back_injections_see_each_others_list_register() {
    for plain_first in [true, false] {
        let mut r = ich(QEMU_ICH_VTR);
        r.regs.stale_after_write = true;
        let mut q = PendingQueue::default();
        let a = QueuedInterrupt::new(VirtualInterrupt::new(40));
        let b = QueuedInterrupt::new(VirtualInterrupt::new(41));
        if plain_first {
            assert!(lrs::inject_plain(&mut r, &a));
        } else {
            lrs::inject_bound(&mut r, &mut q, &a).unwrap();
        }
        assert_eq!(r.regs.syncs, 1, "synchronized after the write");
        // The plain path refuses (a register is in use), the checked one places it.
        assert!(!lrs::inject_plain(&mut r, &b));
        lrs::inject_bound(&mut r, &mut q, &b).unwrap();
        let held = r.regs.held_intids();
        assert_eq!(held, [40, 41], "plain first: {plain_first}");
        assert!(q.is_empty());
    }
}

/// A bind that loads held list registers, then an injection before the entry, on a
/// GICv3 whose `ICH_ELRSR_EL2` lags: the load synchronizes, so the injection does not
/// take a loaded register.
#[test]
fn an_injection_after_a_bind_sees_the_loaded_list_registers() {
    let mut r = ich(QEMU_ICH_VTR);
    r.regs.stale_after_write = true;
    let mut s = VgicState::default();
    s.lr[0] = LrFormat::V3
        .encode_pending(&QueuedInterrupt::new(VirtualInterrupt::new(40)))
        .unwrap();
    lrs::load(&mut r, &s, false, None);
    assert_eq!(r.regs.syncs, 1);
    let mut q = PendingQueue::default();
    let b = QueuedInterrupt::new(VirtualInterrupt::new(41));
    assert!(!lrs::inject_plain(&mut r, &b));
    lrs::inject_bound(&mut r, &mut q, &b).unwrap();
    let held = r.regs.held_intids();
    assert_eq!(held, [40, 41]);
}

/// A vCPU moving to a core with fewer list registers (cores whose `ICH_VTR_EL2`
/// differ): pending interrupts the copy holds beyond the new count wait in the queue;
/// an active one there refuses the bind, typed.
#[test]
fn fewer_list_registers_on_the_new_core() {
    let four = VirtualInterface::v3(VtrInfo::decode(QEMU_ICH_VTR), 25);
    // ListRegs [4:0] = 1: two list registers.
    let two = VirtualInterface::v3(VtrInfo::decode(QEMU_ICH_VTR & !0x1f | 1), 25);
    assert_eq!(two.vtr.list_regs, 2);
    let lr = |intid, state| lr_in(LrFormat::V3, intid, state);
    let mut v = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    v.setup(Aarch64VCpuSetupConfig::default()).unwrap();
    v.test_set_interface(four);
    let s = v.test_vgic_mut();
    s.lr[0] = lr(40, LrState::Pending);
    s.lr[1] = lr(41, LrState::Active);
    s.lr[2] = lr(42, LrState::Pending);
    s.lr[3] = lr(43, LrState::Pending);
    assert_eq!(v.test_vgic().check_bind(&two, false), Ok(()));
    assert!(v.test_vgic().prepare_bind(&two, false, true));
    let held: Vec<(u32, LrState)> = v.vgic_state().lr[..2]
        .iter()
        .map(|&l| (LrFormat::V3.decode(l).intid, LrFormat::V3.state(l)))
        .collect();
    assert_eq!(held, [(40, LrState::Pending), (41, LrState::Active)]);
    assert_eq!(v.vgic_state().lr[2..4], [0, 0]);
    assert_eq!(
        v.queued_interrupts(),
        2,
        "42 and 43 wait for a list register"
    );
    assert_eq!(
        v.interrupt_state(42).unwrap(),
        IrqState {
            pending: true,
            active: false
        }
    );
    // An active interrupt beyond the count cannot move.
    let mut w = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    w.setup(Aarch64VCpuSetupConfig::default()).unwrap();
    w.test_set_interface(four);
    w.test_vgic_mut().lr[3] = lr(44, LrState::Active);
    assert!(matches!(
        w.test_vgic().check_bind(&two, false),
        Err(VCpuError::InvalidConfig(_))
    ));
}
