//! [gicv2] Host tests of the hypervisor's emulated GICv2 distributor
//! (`hypervisor/src/vgicd_v2.rs`): register semantics from IHI 0048B chapter 4, the
//! sequences Linux's `irq-gic` driver runs, SGI routing with sources, and the guest's
//! device-tree node read back with the `fdt` crate.

use crate::vgicd_v2::*;

fn collect(f: impl FnOnce(&mut dyn FnMut(Delivery))) -> Vec<Delivery> {
    let mut v = Vec::new();
    f(&mut |d| v.push(d));
    v
}

fn w(g: &mut VGicV2, vcpu: usize, off: u64, width: usize, val: u64) -> Vec<Delivery> {
    collect(|out| g.write(vcpu, off, width, val, out))
}

#[test]
fn identification_and_limits() {
    let g = VGicV2::new(2).unwrap();
    // ITLinesNumber 1 (64 INTIDs), CPUNumber 1 (2 interfaces), no Security Extensions.
    assert_eq!(g.read(0, 0x004, 4), 0x21);
    assert_eq!(g.read(0, 0x008, 4), IIDR as u64);
    assert_eq!(g.read(0, 0xfe8, 4) >> 4 & 0xf, 2, "PIDR2.ArchRev");
    assert_eq!(g.read(0, 0x000, 4), 0, "disabled at reset");
    assert_eq!(VGicV2::new(9).unwrap_err(), Error::TooManyVcpus);
    assert_eq!(VGicV2::new(0).unwrap_err(), Error::NoVcpu);
    assert_eq!(VGicV2::new(8).unwrap().read(7, 0x004, 4) >> 5 & 7, 7);
}

/// Linux's `gic_dist_init` + `gic_cpu_init` order, then the console's SPI: priority
/// and target bytes, enable, raise. Linux leaves every interrupt in Group 0 and
/// enables Group 0 only (`GICD_CTLR` = 1).
#[test]
fn linux_style_spi_delivery() {
    let mut g = VGicV2::new(2).unwrap();
    assert!(w(&mut g, 0, 0x000, 4, 0).is_empty());
    // All SPIs: level, priority 0xa0, target CPU 0; ICACTIVER/ICENABLER all.
    for off in (0xc08..0xc10).step_by(4) {
        w(&mut g, 0, off, 4, 0);
    }
    for off in (0x420..0x440).step_by(4) {
        w(&mut g, 0, off, 4, 0xa0a0_a0a0);
    }
    for off in (0x820..0x840).step_by(4) {
        w(&mut g, 0, off, 4, 0x0101_0101);
    }
    w(&mut g, 0, 0x184, 4, u64::from(u32::MAX));
    w(&mut g, 0, 0x384, 4, u64::from(u32::MAX));
    w(&mut g, 0, 0x000, 4, 1);
    // The console (SPI 1 = INTID 33) to CPU 1, by a byte write, then enabled.
    w(&mut g, 0, 0x821, 1, 0x02);
    assert_eq!(g.read(0, 0x820, 4), 0x0101_0201);
    assert_eq!(g.spi_target(33), Some(1));
    assert!(
        w(&mut g, 0, 0x104, 4, 1 << 1).is_empty(),
        "nothing pending yet"
    );
    let d = g.raise(0, 33, None).unwrap();
    assert_eq!(
        (d.vcpu, d.vi.intid, d.vi.priority, d.vi.group1, d.source_cpu),
        (1, 33, 0xa0, false, None)
    );
    assert_eq!(g.read(0, 0x104, 4), 1 << 1, "ISENABLER1");
    assert_eq!(g.read(0, 0x184, 4), 1 << 1, "ICENABLER1 reads the same");
    assert_eq!(g.read(0, 0x421, 1), 0xa0, "byte read of IPRIORITYR");
}

#[test]
fn held_interrupts_are_delivered_when_they_can_be() {
    let mut g = VGicV2::new(2).unwrap();
    w(&mut g, 0, 0x000, 4, 1);
    // Disabled: held, and shown pending.
    assert_eq!(g.raise(0, 40, None), None);
    assert_eq!(g.read(0, 0x204, 4), 1 << 8, "ISPENDR1");
    // Enabled but without a target: still held.
    assert!(w(&mut g, 0, 0x104, 4, 1 << 8).is_empty());
    // Given a target: delivered then.
    let d = w(&mut g, 0, 0x828, 1, 0x01);
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].vcpu, d[0].vi.intid), (0, 40));
    assert_eq!(g.read(0, 0x204, 4), 0, "moved to a list register");
    // ICPENDR drops a held interrupt.
    w(&mut g, 0, 0x184, 4, 1 << 8);
    g.raise(0, 40, None);
    w(&mut g, 0, 0x284, 4, 1 << 8);
    assert!(
        w(&mut g, 0, 0x104, 4, 1 << 8).is_empty(),
        "cleared, nothing delivered"
    );
    // A disabled distributor holds everything; enabling it releases.
    w(&mut g, 0, 0x000, 4, 0);
    assert_eq!(g.raise(0, 40, None), None);
    assert_eq!(w(&mut g, 0, 0x000, 4, 1).len(), 1);
}

/// Group 1 interrupts need `GICD_CTLR.EnableGrp1` and are delivered as Group 1.
#[test]
fn groups() {
    let mut g = VGicV2::new(1).unwrap();
    w(&mut g, 0, 0x084, 4, 1 << 8);
    w(&mut g, 0, 0x828, 1, 1);
    w(&mut g, 0, 0x104, 4, 1 << 8);
    w(&mut g, 0, 0x000, 4, 1);
    assert_eq!(g.raise(0, 40, None), None, "Group 1 not enabled");
    let d = w(&mut g, 0, 0x000, 4, 3);
    assert_eq!(d.len(), 1);
    assert!(d[0].vi.group1);
    assert_eq!(g.read(0, 0x084, 4), 1 << 8, "IGROUPR1 reads back");
}

/// GICD_SGIR: target list, all-but-self, self; the source travels with the SGI.
#[test]
fn sgir_routes_sgis_with_their_source() {
    let mut g = VGicV2::new(4).unwrap();
    w(&mut g, 0, 0x000, 4, 1);
    for cpu in 0..4 {
        // Each CPU enables its own SGIs (banked ISENABLER0).
        w(&mut g, cpu, 0x100, 4, 0xffff);
    }
    let d = w(&mut g, 0, 0xf00, 4, (0b0110 << 16) | 3);
    let got: Vec<_> = d
        .iter()
        .map(|d| (d.vcpu, d.vi.intid, d.source_cpu))
        .collect();
    assert_eq!(got, [(1, 3, Some(0)), (2, 3, Some(0))]);
    let d = w(&mut g, 2, 0xf00, 4, (1 << 24) | 1);
    let got: Vec<_> = d.iter().map(|d| (d.vcpu, d.source_cpu)).collect();
    assert_eq!(
        got,
        [(0, Some(2)), (1, Some(2)), (3, Some(2))],
        "all but self"
    );
    let d = w(&mut g, 3, 0xf00, 4, (2 << 24) | 7);
    assert_eq!((d[0].vcpu, d[0].vi.intid, d[0].source_cpu), (3, 7, Some(3)));
    assert!(
        w(&mut g, 0, 0xf00, 4, (3 << 24) | 0xff_0000).is_empty(),
        "reserved filter"
    );
    assert!(
        w(&mut g, 0, 0xf00, 4, 0xf0_0000 | 1).is_empty(),
        "no such CPUs"
    );
}

/// SGIs that cannot be delivered are held per source (SPENDSGIR), cleared by
/// CPENDSGIR, released when enabled; SPENDSGIR raises them by hand.
#[test]
fn sgi_pending_per_source() {
    let mut g = VGicV2::new(2).unwrap();
    w(&mut g, 0, 0x000, 4, 1);
    // SGI 5 disabled on CPU 1: held, from source 0.
    assert!(w(&mut g, 0, 0xf00, 4, (0b10 << 16) | 5).is_empty());
    assert_eq!(
        g.read(1, 0xf25, 1),
        0b01,
        "SPENDSGIR1 byte 1: SGI 5 from CPU 0"
    );
    assert_eq!(g.read(1, 0x200, 4), 1 << 5, "ISPENDR0 shows it");
    assert_eq!(g.read(0, 0x200, 4), 0, "banked: not CPU 0's");
    // CPENDSGIR clears it; SPENDSGIR sets it (from CPU 1 itself and CPU 0).
    w(&mut g, 1, 0xf15, 1, 0b01);
    assert_eq!(g.read(1, 0xf24, 4), 0);
    assert!(w(&mut g, 1, 0xf25, 1, 0b11).is_empty());
    // Enabling releases one delivery per source.
    let d = w(&mut g, 1, 0x100, 4, 1 << 5);
    let got: Vec<_> = d
        .iter()
        .map(|d| (d.vcpu, d.vi.intid, d.source_cpu))
        .collect();
    assert_eq!(got, [(1, 5, Some(0)), (1, 5, Some(1))]);
    // ISPENDR0 writes to SGI bits are ignored.
    w(&mut g, 1, 0x200, 4, 0xffff);
    assert_eq!(g.read(1, 0x200, 4), 0);
}

/// Registers of INTIDs 0–31 are banked; ITARGETSR0–7 and ICFGR0 are read-only.
#[test]
fn banked_and_read_only_registers() {
    let mut g = VGicV2::new(2).unwrap();
    w(&mut g, 0, 0x000, 4, 1);
    w(&mut g, 1, 0x100, 4, 1 << 27);
    assert_eq!(g.read(1, 0x100, 4), 1 << 27);
    assert_eq!(g.read(0, 0x100, 4), 0);
    assert_eq!(g.raise(0, 27, Some(27)), None, "CPU 0's PPI 27 is disabled");
    let d = g.raise(1, 27, Some(27)).unwrap();
    assert_eq!((d.vcpu, d.vi.hw_intid), (1, Some(27)));
    w(&mut g, 1, 0x41b, 1, 0x80);
    assert_eq!(g.read(1, 0x418, 4), 0x8000_0000);
    assert_eq!(g.read(0, 0x418, 4), 0);
    assert_eq!(g.read(1, 0x800, 4), 0x0202_0202, "own interface bit");
    w(&mut g, 1, 0x800, 4, 0);
    assert_eq!(g.read(0, 0x81c, 4), 0x0101_0101);
    assert_eq!(g.read(0, 0xc00, 4), 0xaaaa_aaaa, "SGIs edge");
    w(&mut g, 0, 0xc00, 4, 0);
    assert_eq!(g.read(0, 0xc00, 4), 0xaaaa_aaaa);
    w(&mut g, 0, 0xc08, 4, 0b10 << 2);
    assert_eq!(g.read(0, 0xc08, 4), 0b10 << 2, "SPI 33 edge");
    // ITARGETSR keeps only interfaces that exist.
    w(&mut g, 0, 0x820, 4, 0xffff_ffff);
    assert_eq!(g.read(0, 0x820, 4), 0x0303_0303);
    assert_eq!(
        g.spi_target(32),
        Some(0),
        "several targets: the lowest gets it"
    );
    w(&mut g, 0, 0x820, 1, 0x02);
    assert_eq!(g.spi_target(32), Some(1));
    // Active state set/clear.
    w(&mut g, 0, 0x304, 4, 1 << 3);
    assert_eq!(g.read(0, 0x304, 4), 1 << 3);
    w(&mut g, 0, 0x384, 4, 1 << 3);
    assert_eq!(g.read(0, 0x304, 4), 0);
    // Banked: vCPU 1's PPI 27 is its own.
    w(&mut g, 1, 0x300, 4, 1 << 27);
    assert_eq!(g.read(1, 0x300, 4), 1 << 27);
    assert_eq!(g.read(0, 0x300, 4), 0);
}

/// Nothing a guest writes at any offset or width panics or leaves the model
/// inconsistent (reads stay in range).
#[test]
fn any_access_is_safe() {
    let mut g = VGicV2::new(3).unwrap();
    let mut x: u64 = 0x1234_5678_9abc_def1;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let off = x % GICD_SIZE;
        let width = [1, 2, 4, 8][(x >> 20) as usize % 4];
        let vcpu = (x >> 30) as usize % 5;
        if x & 1 == 0 {
            for d in w(&mut g, vcpu, off, width, x >> 3) {
                assert!(d.vcpu < 3 && d.vi.intid < NR_IRQS as u32);
                assert!(d.source_cpu.is_none_or(|s| s < 3 && d.vi.intid < 16));
            }
        } else {
            let _ = g.read(vcpu, off, width);
        }
        let _ = g.raise(vcpu, (x >> 40) as u32 % 80, None);
    }
}

#[test]
fn device_tree_node() {
    let mut fdt = vm_fdt::FdtWriter::new().unwrap();
    let root = fdt.begin_node("").unwrap();
    fdt.property_u32("#address-cells", 2).unwrap();
    fdt.property_u32("#size-cells", 2).unwrap();
    let regions = GicV2Regions {
        gicd: (0x0800_0000, 0x1_0000),
        gicc: (0x0801_0000, 0x1_0000),
        virt: Some(GicV2Virt {
            gich: (0x0803_0000, 0x1_0000),
            gicv: (0x0804_0000, 0x1_0000),
            maintenance_ppi: 9,
        }),
    };
    fdt_node(&mut fdt, &regions, 2, 1).unwrap();
    fdt.end_node(root).unwrap();
    let blob = fdt.finish().unwrap();
    let dt = fdt::Fdt::new(&blob).unwrap();
    let node = dt.find_node("/intc@8000000").unwrap();
    assert_eq!(node.compatible().unwrap().first(), "arm,cortex-a15-gic");
    assert!(node.property("interrupt-controller").is_some());
    let cells = node
        .property("#interrupt-cells")
        .unwrap()
        .as_usize()
        .unwrap();
    assert_eq!(cells, 3);
    let reg: Vec<_> = node
        .reg()
        .unwrap()
        .map(|r| (r.starting_address as u64, r.size.unwrap_or(0) as u64))
        .collect();
    assert_eq!(
        reg,
        [
            (0x0800_0000, 0x1_0000),
            (0x0801_0000, 0x1_0000),
            (0x0803_0000, 0x1_0000),
            (0x0804_0000, 0x1_0000)
        ]
    );
    let irq: Vec<u32> = node
        .property("interrupts")
        .unwrap()
        .value
        .chunks(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(irq, [1, 9, 0x304], "PPI 9, CPUs 0-1, level high");
    assert_eq!(ppi_flags(8), 0xff04);
    assert_eq!(ppi_flags(1), 0x104);
}

/// ISPENDR/ISACTIVER also report the reading vCPU's interface (list registers and
/// queue, `Aarch64VCpu::interrupt_states`): PPI 27 pending, SPI 40 active there.
#[test]
fn pending_and_active_include_the_vcpus_interface() {
    use arm_vcpu::IrqStates;
    let g = VGicV2::new(2).unwrap();
    // The block of 32 INTIDs starting at `first`, as `Aarch64VCpu::interrupt_states`.
    let live = |first: u32| match first {
        0 => IrqStates {
            pending: 1 << 27,
            active: 0,
        },
        32 => IrqStates {
            pending: 0,
            active: 1 << 8,
        },
        _ => IrqStates::default(),
    };
    assert_eq!(
        g.read(0, 0x200, 4),
        0,
        "nothing held: ISPENDR0 without the interface"
    );
    assert_eq!(g.read_live(0, 0x200, 4, &live), 1 << 27, "ISPENDR0");
    assert_eq!(
        g.read_live(0, 0x280, 4, &live),
        1 << 27,
        "ICPENDR0 reads the same"
    );
    assert_eq!(g.read_live(0, 0x304, 4, &live), 1 << 8, "ISACTIVER1");
    assert_eq!(g.read_live(0, 0x384, 4, &live), 1 << 8, "ICACTIVER1");
    assert_eq!(g.read_live(0, 0x204, 4, &live), 0, "SPI 40 not pending");
}
