//! A VM: what its description ([`config::VmConfig`]) says, made real — RAM carved
//! from the board and mapped at stage 2 (`memory`), the kernel recognised and loaded
//! (`image`, `loader`), a device tree written unless one was given (`fdt`), its
//! devices and, for a test scenario, the scenario's host-side checks. The scheduler
//! (`sched`) makes and runs its vCPUs.
//!
//! Where the descriptions come from ([`configs`]): a manifest the runner staged
//! (`vms=ADDR,SIZE` in the bootargs; `cargo xtask run --kernel/--vm` and every Linux
//! and U-Boot row write one), or a test scenario's name (`scenario=NAME`: its VMs, the
//! staged test guest ELF as their kernel).

pub mod config;
pub mod fdt;
pub mod image;
pub mod loader;
pub mod memory;

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use arm_vcpu::{
    Aarch64VCpu, Aarch64VCpuCreateConfig, Aarch64VCpuSetupConfig, Stage2Config, VirtualInterrupt,
};
use log::info;
use spin::Mutex;

use crate::devices::{self, Devices};
use crate::platform::board::{self, List, Range, MAX_CPUS};
use crate::platform::gic::TrappedRdPages;
use crate::scenario::{self, AbortPolicy, Scenario};
use config::{Console, IrqMode, Source, VmConfig, Wfi};
use fdt::GicDesc;
use image::Kernel;
use memory::GuestMemory;

/// The refhv hypercalls (SMCCC vendor-specific hypervisor service range, owner 6;
/// docs/test-protocol.md).
pub mod hvc {
    pub const NULL: u64 = 0xC600_0000;
    pub const TEST_CALL: u64 = 0xC600_0001;
    pub const EXIT: u64 = 0xC600_0002;
    pub const PUTC: u64 = 0xC600_0003;
    pub const YIELD: u64 = 0xC600_0004;
}

/// Guest-physical base of every VM's RAM.
pub const RAM_IPA: u64 = memory::GUEST_RAM_IPA;
/// Room kept for a generated device tree.
const DTB_MAX: u64 = 64 << 10;
/// A user's device tree may be this large (booting.rst).
const USER_DTB_MAX: u64 = 2 << 20;

/// A VM's verdict.
pub type Verdict = Result<(), &'static str>;

/// What changes while a VM runs, behind its one lock: its devices and its scenario.
pub struct VmState {
    pub dev: Devices,
    pub scenario: Option<Box<dyn Scenario>>,
}

/// One VM, built. Lives for the whole run.
pub struct Vm {
    /// Index in the run (VMID = id + 1).
    pub id: usize,
    pub cfg: VmConfig,
    pub kind: devices::Kind,
    pub mem: GuestMemory,
    /// vCPU 0's entry point.
    pub entry: u64,
    /// x0 at entry (the DTB's IPA; 0 for test guests).
    pub x0: u64,
    /// Registers of vCPU 0 at entry (x1 = iters for test guests, a scenario's own).
    pub boot_regs: Vec<(usize, u64)>,
    /// vCPU i's MPIDR affinity.
    pub mpidrs: Vec<u64>,
    /// Physical cores its vCPUs may run on.
    pub allowed: Vec<usize>,
    setup: Aarch64VCpuSetupConfig,
    /// Its vCPUs' stage 2 (a scenario may give another shape, `Scenario::stage2`).
    stage2: Stage2Config,
    cntvoff_el2: u64,
    initial_irqs: Vec<VirtualInterrupt>,
    /// An access no device serves: abort (test scenarios that say so) or RAZ/WI.
    pub abort_policy: Option<AbortPolicy>,
    /// The scenario wants to see every exit (`Scenario::observe`).
    pub observes: bool,
    /// The scenario may hold device reads and move vCPUs (`Scenario::migrates`).
    pub migrates: bool,
    /// Something to do after every unbind (`checks_after_unbind`, `migrates`,
    /// `snapshot_every`).
    pub after_unbind_work: bool,
    /// The scenario checks the host after every unbind (`Scenario::after_unbind`).
    pub checks_after_unbind: bool,
    /// A trapped WFI yields instead of blocking.
    pub wfi_yields: bool,
    /// The guest's EL1 timer PPIs are linked to the physical ones (virtual mode).
    pub links_timers: bool,
    /// A scenario's host tick, in counter ticks.
    pub host_tick: Option<u64>,
    /// Time slice, in counter ticks (0: none).
    pub slice: u64,
    /// Every N-th unbind of one of its vCPUs replaces it by a restored copy
    /// ([`Vm::restored_copy`]; 0: never).
    pub snapshot_every: u64,
    pub state: Mutex<VmState>,
    /// A test VM's test device: lock-free, outside `state` (`Core::mmio`). Boxed
    /// (4 KiB): inline, it would push the fields after it beyond the load
    /// instructions' immediate offsets.
    pub testdev: Box<devices::TestDevice>,
    ended: AtomicBool,
    verdict: Mutex<Option<Verdict>>,
}

impl Vm {
    /// Whether the VM has ended.
    #[inline]
    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// Ends the VM with `verdict`; `false` if it had ended already (the first
    /// verdict stands).
    pub fn end(&self, verdict: Verdict) -> bool {
        let mut v = self.verdict.lock();
        if v.is_some() {
            return false;
        }
        *v = Some(verdict);
        self.ended.store(true, Ordering::Release);
        true
    }

    /// Its verdict, once ended.
    pub fn verdict(&self) -> Option<Verdict> {
        *self.verdict.lock()
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// Makes vCPU `i`, ready to bind (vCPU 0 with its boot registers).
    pub fn make_vcpu(&self, i: usize) -> Result<Aarch64VCpu, &'static str> {
        let mpidr = *self.mpidrs.get(i).ok_or("no such vCPU")?;
        let mut v = Aarch64VCpu::new(
            Aarch64VCpuCreateConfig::default()
                .with_mpidr_el1(mpidr)
                .with_cntvoff_el2(self.cntvoff_el2)
                .with_dtb_addr(self.x0)
                // vCPU 0 boots; the others wait for the guest's PSCI CPU_ON.
                .with_powered_off(i != 0),
        )
        .map_err(|_| "vcpu create")?;
        v.setup(self.setup).map_err(|_| "vcpu setup")?;
        v.set_stage2_root(self.stage2).map_err(|_| "stage-2 root")?;
        v.set_entry(self.entry).map_err(|_| "vcpu entry")?;
        if i == 0 {
            self.boot_regs_into(&mut v)?;
            for &vi in &self.initial_irqs {
                // Not bound yet: queued, in the list registers at the first bind.
                v.inject_interrupt(vi).map_err(|_| "inject_interrupt")?;
            }
        }
        Ok(v)
    }

    /// A new vCPU `i` restored from `old`'s snapshot gone through the byte format
    /// (`to_bytes`, `from_bytes`), with the VM's `CNTVOFF_EL2` (all its vCPUs share
    /// one offset; `restore` sets the snapshot's). `old` must be unbound; it is
    /// the caller's to destroy.
    pub fn restored_copy(&self, i: usize, old: &Aarch64VCpu) -> Result<Aarch64VCpu, &'static str> {
        let snap = old.snapshot().map_err(|_| "snapshot() failed")?;
        let mut buf = alloc::vec![0u8; arm_vcpu::snapshot::Snapshot::MAX_BYTES];
        let n = snap.to_bytes(&mut buf).map_err(|_| "to_bytes failed")?;
        let back = arm_vcpu::snapshot::Snapshot::from_bytes(buf.get(..n).unwrap_or(&[]))
            .map_err(|_| "the snapshot's bytes do not read back")?;
        let mut v = self.make_vcpu(i)?;
        v.restore(&back).map_err(|_| "restore failed")?;
        v.set_reg(
            arm_vcpu::reg::Reg::Sys(arm_vcpu::reg::CNTVOFF_EL2),
            self.cntvoff_el2 as u128,
        )
        .map_err(|_| "set_reg(CNTVOFF_EL2) failed")?;
        Ok(v)
    }

    /// Sets vCPU 0's boot registers (at creation and after a SYSTEM_RESET).
    pub fn boot_regs_into(&self, v: &mut Aarch64VCpu) -> Result<(), &'static str> {
        for &(r, val) in &self.boot_regs {
            v.set_gpr(r, val).map_err(|_| "vcpu registers")?;
        }
        Ok(())
    }

    /// Whether an entry point lies in the VM's RAM (PSCI CPU_ON).
    pub fn in_ram(&self, ipa: u64) -> bool {
        self.mem.host_ptr(ipa, 4).is_some()
    }

    /// The vCPU whose MPIDR affinity is `mpidr`.
    pub fn vcpu_of(&self, mpidr: u64) -> Option<usize> {
        self.mpidrs.iter().position(|&m| m == mpidr)
    }
}

/// The descriptions of the run's VMs, from the bootargs.
pub fn configs(args: &crate::bootargs::BootArgs) -> Result<Vec<VmConfig>, String> {
    if let Some((addr, size)) = args.vms {
        let bytes = loader::staged(addr, size).map_err(String::from)?;
        let text = core::str::from_utf8(bytes).map_err(|_| "the VM manifest is not UTF-8")?;
        return config::parse_vms(text).map_err(|e| format!("VM manifest: {e}"));
    }
    let name = args.scenario;
    let n = scenario::vm_count(name);
    let mut out = Vec::new();
    for instance in 0..n {
        let sc = scenario::by_name(name, args.iters, args.seed, instance)
            .ok_or_else(|| format!("unknown scenario {name:?}"))?;
        let s = crate::platform::STAGING;
        out.push(VmConfig {
            name: if n == 1 {
                name.into()
            } else {
                format!("{name}{instance}")
            },
            kernel: Some(Source::Staged {
                addr: s.base,
                size: s.size,
            }),
            format: config::KernelFormat::Elf,
            mem: sc.ram(),
            vcpus: sc.vcpus(),
            cores: Some(sc.cores()),
            slice_us: sc.slice_us(),
            wfi: Wfi::Yield,
            scenario: Some(name.into()),
            iters: args.iters,
            seed: args.seed,
            instance,
            ..Default::default()
        });
    }
    Ok(out)
}

/// The bytes of a file of the description.
fn file(src: &Source, what: &str) -> Result<&'static [u8], String> {
    match src {
        Source::Staged { addr, size } => {
            loader::staged(*addr, *size).map_err(|e| format!("{what}: {e}"))
        }
        Source::Path(p) => Err(format!(
            "{what}: {p:?} is a path; the runner stages files and names them by address"
        )),
    }
}

/// Counter ticks in `us` microseconds.
pub fn us_to_ticks(us: u64) -> u64 {
    let hz: u64;
    // SAFETY: reading CNTFRQ_EL0 (the counter's frequency) has no side effect.
    unsafe { core::arch::asm!("mrs {0}, cntfrq_el0", out(reg) hz, options(nomem, nostack)) };
    (hz / 1000).saturating_mul(us) / 1000
}

/// Builds VM `id` of `count` from its description: RAM, kernel, initrd, device tree,
/// devices, scenario. A one-line reason when something does not fit.
pub fn build(cfg: VmConfig, id: usize, count: usize) -> Result<Vm, String> {
    let name = cfg.name.clone();
    let fail = |m: &str| format!("VM {name}: {m}");
    let scenario = match &cfg.scenario {
        Some(s) => Some(
            scenario::by_name(s, cfg.iters, cfg.seed, cfg.instance)
                .ok_or_else(|| fail(&format!("unknown scenario {s:?}")))?,
        ),
        None => None,
    };
    let kind = match (&scenario, cfg.mode) {
        (Some(_), _) => devices::Kind::Test,
        (None, IrqMode::Virtual) => devices::Kind::Virtual,
        (None, IrqMode::Passthrough) => devices::Kind::Passthrough,
    };
    let board_cores = crate::platform::cpu_count();
    let allowed = cfg.allowed_cores(board_cores);

    let kernel_src = cfg.kernel.as_ref().ok_or_else(|| fail("no kernel"))?;
    let mut kbytes = file(kernel_src, "kernel").map_err(|e| fail(&e))?;
    let kernel = image::recognise(kbytes, cfg.format, cfg.load_offset)
        .map_err(|e| fail(&format!("kernel: {}", e.0)))?;
    if let Kernel::Linux(h) = &kernel {
        // A staged area may be larger than the file; the Image is image_size at most.
        kbytes = &kbytes[..kbytes.len().min(h.image_size as usize)];
    }
    let initrd = match &cfg.initrd {
        Some(s) => Some(file(s, "initrd").map_err(|e| fail(&e))?),
        None => None,
    };
    let user_dtb = match &cfg.dtb {
        Some(s) => {
            let d = file(s, "dtb").map_err(|e| fail(&e))?;
            if d.get(0..4) != Some(&[0xd0, 0x0d, 0xfe, 0xed][..]) {
                return Err(fail(
                    "dtb: not a flattened device tree (no 0xd00dfeed magic)",
                ));
            }
            if d.len() as u64 > USER_DTB_MAX {
                return Err(fail("dtb: larger than the 2 MiB the boot protocol allows"));
            }
            Some(d)
        }
        None => None,
    };
    let dtb_room = user_dtb.map_or(DTB_MAX, |d| d.len() as u64);
    let layout = image::plan(
        &kernel,
        kbytes.len() as u64,
        initrd.map(|i| i.len() as u64),
        dtb_room,
        RAM_IPA,
        cfg.mem,
    )
    .map_err(|e| fail(&e.0))?;

    let mut mem = GuestMemory::alloc(cfg.mem, &format!("VM {name}")).map_err(&fail)?;
    // vCPU i's MPIDR: a passthrough guest finds its redistributor by it, so vCPU i has
    // its core's; others (and the test protocol) 0, 1, ...
    let mpidrs: Vec<u64> = (0..cfg.vcpus)
        .map(|i| match kind {
            devices::Kind::Passthrough => allowed
                .get(i)
                .and_then(|&c| crate::platform::cpu_mpidr(c))
                .unwrap_or(i as u64),
            _ => i as u64,
        })
        .collect();
    let v2 = crate::platform::gic::v2().is_some();
    if v2 && cfg.vcpus > arm_vcpu::vgic::v2::MAX_CPUS {
        return Err(fail(&format!(
            "{} vCPUs, a GICv2 serves at most {}",
            cfg.vcpus,
            arm_vcpu::vgic::v2::MAX_CPUS
        )));
    }
    let (gic, rd_pages) = match kind {
        devices::Kind::Passthrough if v2 => {
            (passthrough_gicv2(&mut mem)?, TrappedRdPages::default())
        }
        devices::Kind::Passthrough => passthrough_gic(&mut mem, &allowed[..cfg.vcpus])?,
        _ if v2 => (virtual_gicv2(&mut mem)?, TrappedRdPages::default()),
        _ => (virtual_gic(cfg.vcpus), TrappedRdPages::default()),
    };

    loader::load_kernel(&mem, &kernel, kbytes, &layout).map_err(&fail)?;
    if let (Some(bytes), Some((start, _))) = (initrd, layout.initrd) {
        loader::copy_to_guest(&mem, start, bytes).map_err(&fail)?;
    }
    let x0 = if kind == devices::Kind::Test || cfg.no_dtb {
        // The test protocol (or `dtb = false`): no device tree, x0 = 0.
        0
    } else {
        // [pmu] The counters Linux's driver will report (event counters + cycle),
        // for the Linux guest's autotest.
        let pmu_counters = pmu_counters(&cfg).filter(|_| scenario.is_none());
        let bootargs = match pmu_counters {
            Some(n) => alloc::format!("{} pmu_counters={}", cfg.cmdline, n + 1),
            None => cfg.cmdline.clone(),
        };
        let dtb = match user_dtb {
            Some(d) => d.to_vec(),
            None => fdt::write(&fdt::Machine {
                ram: (RAM_IPA, cfg.mem),
                mpidrs: &mpidrs,
                gic: &gic,
                timer: cfg.timer,
                bootargs: &bootargs,
                initrd: layout.initrd,
                bootcmd: cfg.bootcmd.as_deref(),
                pmu: pmu_counters.is_some(),
            })
            .map_err(|_| fail("cannot write its device tree"))?,
        };
        loader::copy_to_guest(&mem, layout.dtb, &dtb).map_err(&fail)?;
        layout.dtb
    };
    info!(
        "VM {} ({:?}): {} MiB RAM at {:#x}, {} vCPU(s) on cores {:?}, kernel {} bytes at {:#x} (entry {:#x}), initrd {:x?}, DTB at {:#x}",
        name,
        kind,
        cfg.mem >> 20,
        mem.pa(),
        cfg.vcpus,
        allowed,
        kbytes.len(),
        layout.kernel,
        layout.entry,
        layout.initrd,
        x0
    );

    let setup = match (&scenario, kind) {
        (Some(sc), _) => sc.setup_config(),
        // A passthrough guest idles in WFI on its own core: nothing to switch to, and
        // its interrupts wake it directly.
        (None, devices::Kind::Passthrough) => Aarch64VCpuSetupConfig::default()
            .with_passthrough_interrupt(true)
            .with_passthrough_timer(true)
            .with_trap_wfi(false)
            .with_pmu(os_pmu(&cfg)),
        // The EL1 physical timer is the guest's; its PPI 30 is linked to the physical
        // one, like the virtual timer's PPI 27 (and the PMU's PPI 23).
        (None, _) => Aarch64VCpuSetupConfig::default()
            .with_passthrough_timer(true)
            .with_trap_wfi(true)
            .with_pmu(os_pmu(&cfg)),
    };
    let mut boot_regs = Vec::new();
    let mut initial_irqs = Vec::new();
    let checks_after_unbind = scenario.as_ref().is_some_and(|sc| sc.checks_after_unbind());
    let (abort_policy, observes, host_tick) = match &scenario {
        Some(sc) => {
            boot_regs.push((1, cfg.iters));
            boot_regs.extend_from_slice(sc.entry_regs());
            initial_irqs.extend_from_slice(sc.initial_irqs());
            (
                Some(sc.abort_policy()),
                sc.observes(),
                sc.host_tick_us().map(us_to_ticks),
            )
        }
        None => (None, false, None),
    };
    let default_stage2 = Stage2Config::new(
        mem.root_pa(),
        id as u16 + 1,
        memory::IPA_BITS,
        memory::ROOT_LEVEL,
    );
    let stage2 = match scenario.as_ref().and_then(|sc| sc.stage2(mem.root_pa())) {
        Some(s) => s.map_err(&fail)?,
        None => default_stage2,
    };
    let prefixed = count > 1;
    let dev = Devices::new(
        kind,
        &name,
        cfg.vcpus,
        prefixed,
        cfg.console == Console::Io,
        rd_pages,
    );
    Ok(Vm {
        id,
        kind,
        mem,
        entry: layout.entry,
        x0,
        boot_regs,
        mpidrs,
        allowed,
        setup,
        stage2,
        // The VM's virtual count starts near 0 now; every vCPU shares the offset.
        cntvoff_el2: arm_vcpu::physical_count(),
        initial_irqs,
        abort_policy,
        observes,
        migrates: scenario.as_ref().is_some_and(|sc| sc.migrates()),
        after_unbind_work: checks_after_unbind
            || cfg.snapshot_every != 0
            || scenario.as_ref().is_some_and(|sc| sc.migrates()),
        checks_after_unbind,
        wfi_yields: cfg.wfi == Wfi::Yield,
        links_timers: kind == devices::Kind::Virtual,
        host_tick,
        slice: us_to_ticks(cfg.slice_us),
        snapshot_every: cfg.snapshot_every,
        state: Mutex::new(VmState { dev, scenario }),
        testdev: Box::default(),
        ended: AtomicBool::new(false),
        verdict: Mutex::new(None),
        cfg,
    })
}

/// The physical GIC for a guest that owns it, vCPU i on core `cores[i]`: the board's
/// distributor and the redistributors of those cores (mapped at stage 2 except the
/// RD pages whose `GICR_TYPER.Last` is emulated, returned).
fn passthrough_gic(
    mem: &mut GuestMemory,
    cores: &[usize],
) -> Result<(GicDesc, TrappedRdPages), String> {
    let b = crate::platform::board();
    let mut frames: List<board::RedistFrame, MAX_CPUS> = List::default();
    for &c in cores {
        let f = crate::platform::redistributor(c)
            .ok_or_else(|| format!("no redistributor for core {c}"))?;
        frames.push(f);
    }
    let layout = board::guest_redistributors(frames.as_slice());
    let trapped = TrappedRdPages::new(layout.emulate_last.as_slice());
    let map = |mem: &mut GuestMemory, base: u64, end: u64| -> Result<(), String> {
        if end > base {
            mem.map_device(base, end - base)
                .map_err(|_| String::from("stage-2 device mapping failed"))
        } else {
            Ok(())
        }
    };
    map(mem, b.gic.gicd.base, b.gic.gicd.end())?;
    for r in layout.regions.iter() {
        let mut cursor = r.base;
        for &page in layout.emulate_last.iter().filter(|&&p| r.contains(p)) {
            map(mem, cursor, page)?;
            cursor = page + board::GICR_PAGE;
        }
        map(mem, cursor, r.end())?;
    }
    if !layout.emulate_last.is_empty() {
        info!(
            "passthrough GIC: {} of the board's {} redistributors, GICR_TYPER.Last emulated at {:x?}",
            cores.len(),
            crate::platform::redistributors().len(),
            layout.emulate_last.as_slice()
        );
    }
    let t = b.timer;
    Ok((
        GicDesc {
            gicd: b.gic.gicd,
            gicr: layout.regions,
            timer: [t.sec_phys, t.phys, t.virt, t.hyp_phys],
            uart_intid: devices::uart_intid(),
            maintenance: b.gic.maintenance_intid.unwrap_or(25),
            v2: None,
        },
        trapped,
    ))
}

/// The physical GICv2 for a guest that owns it (passthrough): the board's distributor
/// and its CPU interface **GICC** (not GICV: with `HCR_EL2.IMO` clear no virtual
/// interrupt is signalled, `arm_vcpu::vgic::v2`), mapped at their own addresses.
fn passthrough_gicv2(mem: &mut GuestMemory) -> Result<GicDesc, String> {
    let b = crate::platform::board();
    let gicc = b.gic.gicc.ok_or("the board's GICv2 has no GICC")?;
    for r in [b.gic.gicd, gicc] {
        mem.map_device(r.base, r.size)
            .map_err(|_| String::from("stage-2 device mapping failed"))?;
    }
    let t = b.timer;
    Ok(GicDesc {
        gicd: b.gic.gicd,
        gicr: List::default(),
        timer: [t.sec_phys, t.phys, t.virt, t.hyp_phys],
        uart_intid: devices::uart_intid(),
        maintenance: b.gic.maintenance_intid.unwrap_or(25),
        v2: Some(crate::vgicd_v2::GicV2Regions {
            gicd: (b.gic.gicd.base, b.gic.gicd.size),
            gicc: (gicc.base, gicc.size),
            virt: None,
        }),
    })
}

/// Maps the board's GICV frame at the guest's GICC address
/// ([`devices::GICV2_GICC_IPA`]): the CPU interface of a guest whose interrupts come
/// through the GICv2 list registers (virtual mode, test VMs).
fn map_gicv(mem: &mut GuestMemory) -> Result<(), String> {
    let gicv = crate::platform::board()
        .gic
        .gicv
        .ok_or("the board's GICv2 has no GICV frame")?;
    mem.map_device_at(devices::GICV2_GICC_IPA, gicv.base, devices::GICV2_GICC_SIZE)
        .map_err(|_| String::from("stage-2 mapping of GICV failed"))
}

/// The GIC of the virtual-interrupt mode on a GICv2 board: the emulated distributor
/// (`crate::vgicd_v2`, MMIO exits) at QEMU virt's GICD address, GICV at its GICC.
fn virtual_gicv2(mem: &mut GuestMemory) -> Result<GicDesc, String> {
    use crate::devices::vgic::GICD_BASE;
    use crate::platform::gic::{HYP_TIMER_INTID, PTIMER_INTID, VTIMER_INTID};
    map_gicv(mem)?;
    Ok(GicDesc {
        gicd: Range::new(GICD_BASE, crate::vgicd_v2::GICD_SIZE),
        gicr: List::default(),
        timer: [29, PTIMER_INTID, VTIMER_INTID, HYP_TIMER_INTID],
        uart_intid: devices::uart_intid(),
        maintenance: 25,
        v2: Some(crate::vgicd_v2::GicV2Regions {
            gicd: (GICD_BASE, crate::vgicd_v2::GICD_SIZE),
            gicc: (devices::GICV2_GICC_IPA, devices::GICV2_GICC_SIZE),
            virt: None,
        }),
    })
}

/// The emulated GIC of the virtual-interrupt mode (`devices::vgic`), for `vcpus`
/// vCPUs: GICv3 frames 0x20000 apart, whatever the board's stride.
fn virtual_gic(vcpus: usize) -> GicDesc {
    use crate::devices::vgic::{GICD_BASE, GICD_SIZE, GICR_BASE, GICR_STRIDE};
    use crate::platform::gic::{HYP_TIMER_INTID, PTIMER_INTID, VTIMER_INTID};
    let mut gicr = List::default();
    gicr.push(Range::new(GICR_BASE, vcpus as u64 * GICR_STRIDE));
    GicDesc {
        gicd: Range::new(GICD_BASE, GICD_SIZE),
        gicr,
        timer: [29, PTIMER_INTID, VTIMER_INTID, HYP_TIMER_INTID],
        uart_intid: devices::uart_intid(),
        maintenance: 25,
        v2: None,
    }
}

/// An OS VM's PMU choice (`pmu` in its description; hidden where the boot core has
/// no PMUv3 or leaves EL1 no counter).
fn os_pmu(cfg: &VmConfig) -> arm_vcpu::pmu::PmuConfig {
    match (cfg.pmu, pmu_counters(cfg)) {
        (Some(counters), Some(_)) => arm_vcpu::pmu::PmuConfig::V3 { counters },
        _ => arm_vcpu::pmu::PmuConfig::Hidden,
    }
}

/// The event counters an OS VM's PMU has: its `pmu = N`, or what the boot core's
/// `MDCR_EL2.HPMN` leaves EL1; `None` without a PMU (none asked for, the core has no
/// PMUv3 — `ID_AA64DFR0_EL1.PMUVer` 0 or 0xF —, or its vCPUs are replaced by
/// snapshots, which do not carry the PMU's state).
fn pmu_counters(cfg: &VmConfig) -> Option<u64> {
    let want = cfg.pmu?;
    if cfg.snapshot_every != 0 {
        return None;
    }
    let (dfr0, mdcr): (u64, u64);
    // SAFETY: reading ID_AA64DFR0_EL1 and MDCR_EL2 at EL2 has no side effect.
    unsafe {
        core::arch::asm!("mrs {0}, id_aa64dfr0_el1", "mrs {1}, mdcr_el2",
            out(reg) dfr0, out(reg) mdcr, options(nomem, nostack))
    };
    let ver = (dfr0 >> 8) & 0xf;
    let hpmn = mdcr & 0x1f;
    if ver == 0 || ver == 0xf || hpmn == 0 {
        return None;
    }
    Some(want.map_or(hpmn, u64::from))
}
