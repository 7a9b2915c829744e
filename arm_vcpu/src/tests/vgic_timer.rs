//! GICv3 list registers, the overflow queue, SGI decoding, the emulated physical timer
//! and timer deadlines (IHI 0069 ICH_LR<n>_EL2 / ICC_SGI1R_EL1; DDI 0487 CNTP_*).

use proptest::prelude::*;

use crate::timer::{self, ctl, EmulatedTimer, TimerDeadlines};
use crate::vgic::{
    self, lr, InjectIrqError, PendingQueue, Placement, SgiRegister, SgiTargets, VirtualInterrupt,
    VtrInfo,
};
use crate::*;

fn vi(intid: u32) -> VirtualInterrupt {
    VirtualInterrupt {
        intid,
        priority: 0xa0,
        group1: true,
        hw_intid: None,
    }
}

#[test]
fn list_register_encoding() {
    // Pending, group 1, priority 0xa0, vINTID 27.
    assert_eq!(
        vgic::encode(&vi(27)),
        (0b01 << 62) | (1 << 60) | (0xa0 << 48) | 27
    );
    // Hardware-linked SPI 40 to physical 48, group 0.
    let v = VirtualInterrupt {
        intid: 40,
        priority: 0,
        group1: false,
        hw_intid: Some(48),
    };
    assert_eq!(vgic::encode(&v), (0b01 << 62) | (1 << 61) | (48 << 32) | 40);
    // A 24-bit LPI keeps all its bits.
    assert_eq!(vgic::lr_intid(vgic::encode(&vi(0x00ab_cdef))), 0x00ab_cdef);
}

#[test]
fn vtr_decode() {
    // QEMU 7.2 -cpu max: ICH_VTR_EL2 = 0x90b80003 → 4 LRs, 5 priority bits, IDbits 1 (24).
    let v = VtrInfo::decode(0x90b8_0003);
    assert_eq!(
        (v.list_regs, v.pri_bits, v.id_bits, v.ap_regs()),
        (4, 5, 24, 1)
    );
    let v = VtrInfo::decode((6 << 29) | (6 << 26) | (1 << 23) | 15);
    assert_eq!(
        (v.list_regs, v.pri_bits, v.id_bits, v.ap_regs()),
        (16, 7, 24, 4)
    );
}

/// `ICH_AP0R<n>_EL2` / `ICH_AP1R<n>_EL2` exist as `ICH_VTR_EL2.PREbits` \[28:26\] says
/// (IHI 0069: n = 0 with 5 preemption bits, 0–1 with 6, 0–3 with 7), whatever PRIbits
/// \[31:29\] is: a core may implement more priority than preemption bits, and
/// touching an unimplemented active-priority register faults at EL2.
#[test]
fn active_priority_registers_follow_prebits() {
    // (PRIbits field, PREbits field, expected AP registers per group)
    #[rustfmt::skip]
    let vectors: [(u64, u64, usize); 9] = [
        (4, 4, 1), // 5 priority, 5 preemption bits (QEMU's 0x90b80003)
        (5, 4, 1), // 6 priority bits but only 5 preemption bits: still one register
        (6, 4, 1), // 7 priority, 5 preemption
        (5, 5, 2),
        (6, 5, 2), // 7 priority, 6 preemption
        (6, 6, 4),
        (7, 6, 4), // PRIbits 8 (out of range) does not add registers
        (4, 7, 4), // PREbits field 7 (8 bits, reserved): at most 4 registers
        (0, 0, 1), // out-of-range small values: at least ICH_AP{0,1}R0
    ];
    for (pri, pre, aps) in vectors {
        let v = VtrInfo::decode((pri << 29) | (pre << 26) | 3);
        assert_eq!(v.ap_regs(), aps, "PRIbits field {pri}, PREbits field {pre}");
        assert_eq!(v.pre_bits as u64, pre + 1);
        assert_eq!(v.pri_bits as u64, pri + 1);
    }
    assert_eq!(
        VtrInfo::decode(0x90b8_0003).pre_bits,
        5,
        "QEMU 7.2 -cpu max"
    );
}

#[test]
fn valid_intids() {
    for ok in [0, 15, 16, 31, 32, 1019, 1056, 1119, 4096, 5119, 8192, 65535] {
        assert!(vgic::valid_intid(ok, 16), "{ok}");
    }
    for bad in [1020, 1023, 1055, 1120, 4095, 5120, 8191, 65536] {
        assert!(!vgic::valid_intid(bad, 16), "{bad}");
    }
    assert!(vgic::valid_intid(0xff_ffff, 24) && !vgic::valid_intid(0x100_0000, 24));
}

#[test]
fn placement_in_list_registers() {
    let mut lrs = [0u64; 4];
    assert_eq!(vgic::place(&mut lrs, &vi(27)), Placement::Lr(0));
    assert_eq!(
        vgic::place(&mut lrs, &vi(27)),
        Placement::AlreadyPending(0),
        "no double count"
    );
    assert_eq!(vgic::place(&mut lrs, &vi(33)), Placement::Lr(1));
    // An active-only interrupt becomes active and pending in its own register.
    lrs[1] = (lrs[1] & !lr::STATE) | lr::ACTIVE;
    assert_eq!(vgic::place(&mut lrs, &vi(33)), Placement::Lr(1));
    assert_eq!(lrs[1] & lr::STATE, lr::STATE);
    assert_eq!(vgic::place(&mut lrs, &vi(40)), Placement::Lr(2));
    assert_eq!(vgic::place(&mut lrs, &vi(41)), Placement::Lr(3));
    assert_eq!(vgic::place(&mut lrs, &vi(42)), Placement::NoRoom);
    // The guest EOIs LR 2: it becomes free.
    lrs[2] = 0;
    assert_eq!(vgic::place(&mut lrs, &vi(42)), Placement::Lr(2));
}

#[test]
fn queue_overflow_and_refill() {
    let mut q = PendingQueue::default();
    for i in 0..vgic::QUEUE_LEN as u32 {
        q.push(vi(100 + i)).unwrap();
    }
    q.push(vi(100)).unwrap(); // duplicate: already queued
    assert_eq!(q.len(), vgic::QUEUE_LEN);
    assert_eq!(
        q.push(vi(9999)),
        Err(InjectIrqError::QueueFull),
        "full: the host is told, nothing lost"
    );
    let mut lrs = [0u64; 4];
    assert_eq!(q.refill(&mut lrs), 0b1111);
    assert_eq!(q.len(), vgic::QUEUE_LEN - 4);
    assert_eq!(
        lrs.map(vgic::lr_intid),
        [100, 101, 102, 103],
        "oldest first"
    );
    assert_eq!(q.refill(&mut lrs), 0, "no free register");
    lrs[1] = 0;
    assert_eq!(q.refill(&mut lrs), 0b0010);
    assert_eq!(vgic::lr_intid(lrs[1]), 104);
}

#[test]
fn interrupts_for_an_unbound_vcpu_are_kept() {
    let mut v = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    v.setup(Aarch64VCpuSetupConfig::default()).unwrap();
    // Never bound: the list registers are unknown, so everything queues.
    v.inject_interrupt(vi(27)).unwrap();
    v.inject_interrupt(vi(27)).unwrap();
    assert_eq!(v.queued_interrupts(), 1);
    assert_eq!(
        v.inject_interrupt(vi(1022)),
        Err(InjectIrqError::InvalidIntid)
    );
    let hw = VirtualInterrupt {
        hw_intid: Some(3),
        ..vi(40)
    };
    assert_eq!(
        v.inject_interrupt(hw),
        Err(InjectIrqError::InvalidHwIntid),
        "SGIs cannot be linked"
    );
}

/// Without a usable virtual CPU interface an interrupt can never be delivered: the
/// host gets a typed error instead of a queued interrupt that silently stays queued.
#[test]
fn inject_without_a_virtual_interface_is_an_error() {
    // Interrupts passed through: the guest owns the physical CPU interface.
    let mut v = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    v.setup(Aarch64VCpuSetupConfig {
        passthrough_interrupt: true,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        v.inject_interrupt(vi(27)),
        Err(InjectIrqError::NoVirtualInterface)
    );
    assert_eq!(v.queued_interrupts(), 0);
    // Bound (last) to a core without GICv3 list registers.
    let mut v = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    v.setup(Aarch64VCpuSetupConfig::default()).unwrap();
    v.test_set_vtr(VtrInfo::NONE);
    assert_eq!(
        v.inject_interrupt(vi(33)),
        Err(InjectIrqError::NoVirtualInterface)
    );
    assert_eq!(v.queued_interrupts(), 0);
    // With list registers: delivered (an unbound vCPU keeps it in its saved LRs).
    v.test_set_vtr(VtrInfo::decode(0x90b8_0003));
    assert_eq!(v.inject_interrupt(vi(33)), Ok(()));
    assert_eq!(vgic::lr_intid(v.vgic_state().lr[0]), 33);
    // A bind to a core without an interface with interrupts waiting is refused
    // (they would never be delivered); with an interface, or nothing waiting, it is not.
    let mut q = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    q.setup(Aarch64VCpuSetupConfig::default()).unwrap();
    q.inject_interrupt(vi(40)).unwrap();
    assert_eq!(
        q.queued_interrupts(),
        1,
        "never bound: kept for the first bind"
    );
    assert_eq!(
        q.check_interface_for_bind(&VtrInfo::NONE),
        Err(VCpuError::NoVirtualInterface)
    );
    assert_eq!(
        q.check_interface_for_bind(&VtrInfo::decode(0x90b8_0003)),
        Ok(())
    );
    assert_eq!(
        v.check_interface_for_bind(&VtrInfo::NONE),
        Ok(()),
        "nothing queued"
    );
}

/// CPU_ON after CPU_OFF and SYSTEM_RESET (`power_on`) reset the virtual CPU interface
/// and the emulated timer as a CPU reset would: no list register, active priority,
/// VMCR or queued interrupt survives, and the timer is disabled. Hardware-linked
/// interrupts that were live are handed back for the host to deactivate.
#[test]
fn power_on_resets_interrupt_and_timer_state() {
    let mut v = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    v.setup(Aarch64VCpuSetupConfig::default()).unwrap();
    v.set_entry(0x4008_0000).unwrap();
    v.test_set_vtr(VtrInfo::decode(0x90b8_0003));
    // Fill the 4 list registers (one hardware-linked), then queue two more (one linked).
    let linked = |intid, p| VirtualInterrupt {
        hw_intid: Some(p),
        ..vi(intid)
    };
    for x in [
        vi(1),
        linked(27, 27),
        vi(33),
        vi(34),
        vi(35),
        linked(40, 48),
    ] {
        v.inject_interrupt(x).unwrap();
    }
    assert_eq!(v.queued_interrupts(), 2);
    v.test_vgic_mut().vmcr = 0xf000_0003;
    v.test_vgic_mut().ap1r[0] = 1 << 20;
    v.test_vgic_mut().ap0r[0] = 1;
    // Arm the emulated physical timer through the guest's MSRs.
    for (op2, value) in [(2u8, 5_000u64), (1, 1)] {
        v.set_gpr(3, value).unwrap();
        let esr = crate::esr::build::sysreg(3, 3, 14, 2, op2, 3, false);
        assert_eq!(
            v.handle_sync_exit(&crate::esr::Syndrome {
                esr,
                ..Default::default()
            }),
            None
        );
    }
    assert_eq!(v.timer_deadlines().phys, Some(5_000));

    let released = v.power_on(0x4020_0000, 0).unwrap();
    assert_eq!(
        v.vgic_state(),
        &vgic::VgicState::default(),
        "LRs, APRs, VMCR"
    );
    assert_eq!(v.queued_interrupts(), 0);
    assert_eq!(v.timer_deadlines(), TimerDeadlines::default());
    let mut ids: [u32; 2] = [0; 2];
    assert_eq!(released.len(), 2);
    for (slot, id) in ids.iter_mut().zip(released.iter()) {
        *slot = id;
    }
    ids.sort_unstable();
    assert_eq!(ids, [27, 48], "physical INTIDs of the live hardware links");
    // A second reset has nothing left to release.
    assert!(v.power_on(0x4020_0000, 0).unwrap().is_empty());
}

#[test]
fn sgi_decoding() {
    // ICC_SGI1R_EL1: INTID 5, Aff3 1, Aff2 2, Aff1 3, RS 1, TargetList 0b1010.
    let value = (1u64 << 48) | (2 << 32) | (3 << 16) | (1 << 44) | (5 << 24) | 0b1010;
    let r = vgic::decode_sgi(value, SgiRegister::Sgi1r);
    assert_eq!(r.intid, 5);
    assert!(r.group1);
    assert_eq!(r.register, SgiRegister::Sgi1r);
    assert_eq!(
        r.targets,
        SgiTargets::List {
            aff3: 1,
            aff2: 2,
            aff1: 3,
            rs: 1,
            target_list: 0b1010
        }
    );
    let aff = |a3: u64, a2: u64, a1: u64, a0: u64| (a3 << 32) | (a2 << 16) | (a1 << 8) | a0;
    assert!(
        r.targets.includes(aff(1, 2, 3, 17), 0),
        "RS 1, bit 1 → Aff0 17"
    );
    assert!(r.targets.includes(aff(1, 2, 3, 19), 0));
    assert!(!r.targets.includes(aff(1, 2, 3, 18), 0));
    assert!(!r.targets.includes(aff(1, 2, 3, 1), 0), "RS 0");
    assert!(!r.targets.includes(aff(0, 2, 3, 17), 0), "other Aff3");
    // IRM = 1: everyone but the sender.
    let b = vgic::decode_sgi((1 << 40) | (7 << 24), SgiRegister::Sgi0r);
    assert_eq!(
        (b.intid, b.group1, b.targets),
        (7, false, SgiTargets::AllButSelf)
    );
    assert!(b.targets.includes(1, 0) && !b.targets.includes(0, 0));
}

#[test]
fn sgi_writes_become_exits_when_the_vgic_is_in_use() {
    // Without a known virtual interface (never bound) an SGI write is just an
    // unhandled register: with the default policy, UNDEF.
    let mut v = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    v.setup(Aarch64VCpuSetupConfig::default()).unwrap();
    v.set_entry(0x4008_0000).unwrap();
    let esr = crate::esr::build::sysreg(3, 0, 12, 11, 5, 2, false);
    assert_eq!(
        v.handle_sync_exit(&crate::esr::Syndrome {
            esr,
            ..Default::default()
        }),
        None
    );
    assert_eq!(v.system_registers().esr_el1, 0x0200_0000);
}

/// ICC_ASGI1R_EL1 generates Group 1 SGIs for the Security state that is *not* the
/// current one (IHI 0069, ICC_ASGI1R_EL1). A VM has one Security state, so there are no
/// such SGIs; a target where the SGI is configured as Group 0 still gets it ("Forwarding
/// an SGI to a target PE"), as with ICC_SGI0R_EL1 (KVM and QEMU's GIC model agree).
/// Through a vCPU with a virtual interface: SGI1R → Group 1, ASGI1R and SGI0R → Group 0.
#[test]
fn asgi1r_generates_group0_sgis_in_a_single_security_state() {
    let mut v = Aarch64VCpu::new(Aarch64VCpuCreateConfig::default()).unwrap();
    v.setup(Aarch64VCpuSetupConfig::default()).unwrap();
    v.set_entry(0x4008_0000).unwrap();
    v.test_set_vtr(VtrInfo::decode(0x90b8_0003));
    let value = (3u64 << 24) | 0b10;
    for (op2, register, group1) in [
        (5, SgiRegister::Sgi1r, true),
        (6, SgiRegister::Asgi1r, false),
        (7, SgiRegister::Sgi0r, false),
    ] {
        v.set_gpr(2, value).unwrap();
        let esr = crate::esr::build::sysreg(3, 0, 12, 11, op2, 2, false);
        let exit = v.handle_sync_exit(&crate::esr::Syndrome {
            esr,
            ..Default::default()
        });
        match exit {
            Some(VmExit::SendSgi { request }) => {
                assert_eq!(request.register, register, "op2 {op2}");
                assert_eq!(request.group1, group1, "{register:?}: group");
                assert_eq!(request.intid, 3);
                assert!(request.targets.includes(1, 0) && !request.targets.includes(0, 1));
            }
            other => panic!("op2 {op2}: {other:?}"),
        }
        v.resolve_pending().unwrap();
    }
    assert!(!vgic::decode_sgi(value, SgiRegister::Asgi1r).group1);
}

#[test]
fn emulated_physical_timer() {
    let mut t = EmulatedTimer::default();
    t.write(timer::CNTP_TVAL_EL0, 1000, 5_000);
    assert_eq!(t.cval, 6_000);
    assert_eq!(t.read(timer::CNTP_TVAL_EL0, 5_400), 600);
    // CNTP_TVAL_EL0: TimerValue [31:0] is CVAL - count as a signed 32-bit value;
    // bits [63:32] are RES0 (DDI 0487, CNTP_TVAL_EL0), so a negative TimerValue is not
    // sign-extended into them.
    assert_eq!(
        t.read(timer::CNTP_TVAL_EL0, 6_100),
        (-100i32) as u32 as u64,
        "TVAL: signed 32-bit TimerValue, bits [63:32] RES0"
    );
    assert_eq!(t.read(timer::CNTP_TVAL_EL0, 6_100) >> 32, 0);
    // A negative TVAL write: CVAL in the past.
    t.write(timer::CNTP_TVAL_EL0, 0xffff_ff9c, 5_000);
    assert_eq!(t.cval, 4_900);
    t.write(timer::CNTP_CVAL_EL0, 6_000, 0);
    assert_eq!(t.deadline(), None, "disabled");
    t.write(timer::CNTP_CTL_EL0, ctl::ENABLE | ctl::ISTATUS, 0);
    assert_eq!(t.ctl, ctl::ENABLE, "ISTATUS is read-only");
    assert_eq!(t.read(timer::CNTP_CTL_EL0, 5_999), ctl::ENABLE);
    assert_eq!(
        t.read(timer::CNTP_CTL_EL0, 6_000),
        ctl::ENABLE | ctl::ISTATUS
    );
    assert_eq!(t.deadline(), Some(6_000));
    t.write(timer::CNTP_CTL_EL0, ctl::ENABLE | ctl::IMASK, 0);
    assert_eq!(t.deadline(), None, "masked");
    assert_eq!(
        t.read(timer::CNTP_CTL_EL0, 7_000),
        ctl::ENABLE | ctl::IMASK | ctl::ISTATUS
    );
}

#[test]
fn timer_deadlines_of_a_descheduled_vcpu() {
    let mut v = Aarch64VCpu::new(Aarch64VCpuCreateConfig {
        cntvoff_el2: 1_000_000,
        ..Default::default()
    })
    .unwrap();
    v.setup(Aarch64VCpuSetupConfig::default()).unwrap();
    assert_eq!(v.timer_deadlines(), TimerDeadlines::default());
    // A trapped CNTP_TVAL/CTL write through the exit path arms the emulated timer.
    v.set_entry(0x4008_0000).unwrap();
    v.set_gpr(2, 500).unwrap();
    let tval = crate::esr::build::sysreg(3, 3, 14, 2, 0, 2, false);
    assert_eq!(
        v.handle_sync_exit(&crate::esr::Syndrome {
            esr: tval,
            ..Default::default()
        }),
        None
    );
    v.set_gpr(2, ctl::ENABLE).unwrap();
    let ctl_w = crate::esr::build::sysreg(3, 3, 14, 2, 1, 2, false);
    assert_eq!(
        v.handle_sync_exit(&crate::esr::Syndrome {
            esr: ctl_w,
            ..Default::default()
        }),
        None
    );
    assert_eq!(v.pc(), 0x4008_0008, "both emulated, PC past each");
    // On the host physical_count() is 0, so CVAL = 500.
    assert_eq!(
        v.timer_deadlines(),
        TimerDeadlines {
            virt: None,
            phys: Some(500)
        }
    );
    assert_eq!(
        TimerDeadlines {
            virt: Some(7),
            phys: Some(500)
        }
        .next(),
        Some(7)
    );
}

proptest! {
    #[test]
    fn tval_round_trip(now in 0u64..(1 << 60), tval in any::<i32>()) {
        let mut t = EmulatedTimer::default();
        t.write(timer::CNTP_TVAL_EL0, tval as u32 as u64, now);
        let read = t.read(timer::CNTP_TVAL_EL0, now);
        // TimerValue comes back as written; bits [63:32] read as zero (RES0).
        prop_assert_eq!(read, tval as u32 as u64);
        // Any distance from CVAL reads as its low 32 bits, never with the upper half set.
        prop_assert_eq!(t.read(timer::CNTP_TVAL_EL0, now.wrapping_add(tval as u32 as u64)) >> 32, 0);
    }

    #[test]
    fn sgi_targets_round_trip(aff1: u8, aff2: u8, aff3: u8, rs in 0u8..16, list: u16, intid in 0u8..16) {
        let value = ((aff3 as u64) << 48) | ((aff2 as u64) << 32) | ((rs as u64) << 44)
            | ((aff1 as u64) << 16) | ((intid as u64) << 24) | list as u64;
        let r = vgic::decode_sgi(value, SgiRegister::Sgi1r);
        prop_assert_eq!(r.intid, intid);
        prop_assert_eq!(r.targets, SgiTargets::List { aff3, aff2, aff1, rs, target_list: list });
    }
}
