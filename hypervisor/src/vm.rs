//! One VM on one physical core: its memory, its vCPUs (run one at a time, switched
//! on CPU_ON/CPU_OFF/yield/WFx), its devices, and the host side of PSCI.

use alloc::boxed::Box;
use alloc::vec::Vec;

use arm_vcpu::smccc::ret;
use arm_vcpu::{
    Aarch64PerCpu, Aarch64VCpu, Aarch64VCpuCreateConfig, PowerState, PsciRequest, SgiRequest,
    Stage2Config, VCpuError, VirtualInterrupt, VmExit,
};
use log::{error, info};

use crate::devices::{self, TestDevice, CONSOLE_IPA, TESTDEV_IPA, TESTDEV_SIZE};
use crate::memory::{self, GuestMemory};
use crate::scenario::{AbortPolicy, Scenario, VmInfo};
use crate::{gic, loader};

/// Hypercall function IDs of the test protocol (SMCCC vendor-specific hypervisor
/// service range, owner 6).
pub mod hvc {
    pub const NULL: u64 = 0xC600_0000;
    pub const TEST_CALL: u64 = 0xC600_0001;
    pub const EXIT: u64 = 0xC600_0002;
    pub const PUTC: u64 = 0xC600_0003;
    pub const YIELD: u64 = 0xC600_0004;
}

/// About 1 ms at QEMU's 62.5 MHz counter.
const IRQ_TICKS: u64 = 62_500;

/// Exit counts by kind, printed at the end of a run.
#[derive(Default, Debug, Clone, Copy)]
pub struct ExitStats {
    pub hypercall: u64,
    pub psci: u64,
    pub mmio_read: u64,
    pub mmio_write: u64,
    pub sysreg: u64,
    pub abort: u64,
    pub wfx: u64,
    pub irq: u64,
    pub sgi: u64,
    pub other: u64,
    pub console: u64,
    pub testdev: u64,
}

impl ExitStats {
    /// Prints the counts as a table: exits by kind, then accesses by emulated device.
    pub fn print_table(&self) {
        let kinds = [
            ("hypercall (host-answered HVC)", self.hypercall),
            ("PSCI request", self.psci),
            ("MMIO read", self.mmio_read),
            ("MMIO write", self.mmio_write),
            ("system register (host-answered)", self.sysreg),
            ("stage-2 abort (injected)", self.abort),
            ("WFI/WFE", self.wfx),
            ("physical IRQ", self.irq),
            ("SGI request", self.sgi),
            ("other", self.other),
        ];
        crate::println!(
            "exit statistics (exits the host handled; traps the crate answers are not counted)"
        );
        crate::println!("  {:<36} {:>12}", "exit kind", "count");
        for (k, v) in kinds {
            crate::println!("  {:<36} {:>12}", k, v);
        }
        crate::println!("  {:<36} {:>12}", "emulated device", "accesses");
        crate::println!("  {:<36} {:>12}", "PL011 console", self.console);
        crate::println!("  {:<36} {:>12}", "test device", self.testdev);
    }

    /// Adds another set of counts (e.g. another core's).
    pub fn add(&mut self, o: &ExitStats) {
        self.hypercall += o.hypercall;
        self.psci += o.psci;
        self.mmio_read += o.mmio_read;
        self.mmio_write += o.mmio_write;
        self.sysreg += o.sysreg;
        self.abort += o.abort;
        self.wfx += o.wfx;
        self.irq += o.irq;
        self.sgi += o.sgi;
        self.other += o.other;
        self.console += o.console;
        self.testdev += o.testdev;
    }
}

/// One vCPU of the VM; its PSCI power state is the crate's (`power_state()`).
struct Slot {
    vcpu: Aarch64VCpu,
}

/// Everything but the vCPUs, so the run loop can borrow one vCPU and this at once.
struct Host {
    scenario: Box<dyn Scenario>,
    mem: GuestMemory,
    entry: u64,
    iters: u64,
    dev: TestDevice,
    stats: ExitStats,
    irqs: u64,
    /// `scenario.checks_after_unbind()` (asked once: the switch path stays lean).
    after_unbind: bool,
}

/// What the loop does after an exit.
enum Next {
    Continue,
    /// Run another vCPU (the current one yielded, halted or powered off).
    Switch,
    /// PSCI SYSTEM_RESET: every vCPU off, the boot vCPU restarts at the entry point.
    Reset,
    End(Result<(), &'static str>),
}

type Verdict = Result<(), &'static str>;

/// Builds the VM for `scenario`, runs it to its end and returns the verdict and the
/// exit counts.
pub fn run(scenario: Box<dyn Scenario>, iters: u64) -> (Verdict, ExitStats) {
    match build_and_run(scenario, iters) {
        Ok(r) => r,
        Err(e) => (Err(e), ExitStats::default()),
    }
}

fn build_and_run(
    scenario: Box<dyn Scenario>,
    iters: u64,
) -> Result<(Verdict, ExitStats), &'static str> {
    if !arm_vcpu::has_hardware_support() {
        return Err("no EL2 virtualization support");
    }
    let mut percpu = crate::firmware::percpu(0);
    percpu
        .hardware_enable()
        .map_err(|_| "hardware_enable failed")?;
    crate::firmware::report(&percpu);
    let mem = GuestMemory::new()?;
    let entry = loader::load_elf(loader::staging(), &mem).map_err(|e| {
        error!("guest image: {:?}", e);
        "cannot load the guest image"
    })?;
    info!(
        "guest loaded, entry {:#x}, stage-2 root {:#x}, {} vCPU(s)",
        entry,
        mem.root_pa(),
        scenario.vcpus()
    );

    let stage2 = Stage2Config::new(mem.root_pa(), 1, memory::IPA_BITS, memory::ROOT_LEVEL);
    let mut slots = Vec::new();
    // The VM's virtual count starts near 0 now; every vCPU of the VM shares the offset.
    let cntvoff_el2 = arm_vcpu::physical_count();
    for i in 0..scenario.vcpus() {
        let mut vcpu = Aarch64VCpu::new(
            Aarch64VCpuCreateConfig::default()
                .with_mpidr_el1(i as u64)
                .with_cntvoff_el2(cntvoff_el2)
                // vCPU 0 boots; the others wait for the guest's PSCI CPU_ON.
                .with_powered_off(i != 0),
        )
        .map_err(|_| "vcpu create")?;
        vcpu.setup(scenario.setup_config())
            .map_err(|_| "vcpu setup")?;
        vcpu.set_stage2_root(stage2).map_err(|_| "stage-2 root")?;
        vcpu.set_entry(entry).map_err(|_| "vcpu entry")?;
        slots.push(Slot { vcpu });
    }
    boot_regs(&mut slots[0].vcpu, iters, scenario.entry_regs()).map_err(|_| "vcpu registers")?;

    let wants_irqs = scenario.wants_timer_irqs();
    let after_unbind = scenario.checks_after_unbind();
    let mut host = Host {
        after_unbind,
        scenario,
        mem,
        entry,
        iters,
        dev: TestDevice::default(),
        stats: ExitStats::default(),
        irqs: 0,
    };
    if wants_irqs {
        gic::init();
        gic::arm_hyp_timer(IRQ_TICKS);
    }
    let verdict = schedule(&mut slots, &mut host, &mut percpu);
    gic::stop_hyp_timer();
    percpu.hardware_disable().map_err(|_| "hardware_disable")?;
    Ok((verdict, host.stats))
}

fn boot_regs(vcpu: &mut Aarch64VCpu, iters: u64, extra: &[(usize, u64)]) -> Result<(), VCpuError> {
    vcpu.set_gpr(1, iters)?;
    for &(r, v) in extra {
        vcpu.set_gpr(r, v)?;
    }
    Ok(())
}

/// Runs the vCPUs one at a time on this core, round robin among those powered on.
fn schedule(slots: &mut [Slot], host: &mut Host, percpu: &mut Aarch64PerCpu) -> Verdict {
    let mut cur = 0;
    loop {
        slots[cur].vcpu.bind(percpu).map_err(|_| "vcpu bind")?;
        let next = run_vcpu(cur, slots, host);
        slots[cur].vcpu.unbind(percpu).map_err(|_| "vcpu unbind")?;
        if host.after_unbind {
            host.scenario.after_unbind()?;
        }
        match next {
            Next::End(v) => return v,
            Next::Reset => {
                for s in slots.iter_mut() {
                    s.vcpu.set_power_state(PowerState::Off);
                }
                let boot = &mut slots[0].vcpu;
                boot.power_on(host.entry, 0)
                    .map_err(|_| "power_on")?
                    .iter()
                    .for_each(crate::gic::deactivate);
                boot_regs(boot, host.iters, host.scenario.entry_regs())
                    .map_err(|_| "vcpu registers")?;
                cur = 0;
            }
            Next::Continue | Next::Switch => {
                // The next vCPU that is on (or being powered on), after `cur`.
                let n = slots.len();
                match (1..=n)
                    .map(|k| (cur + k) % n)
                    .find(|&i| slots[i].vcpu.power_state() != PowerState::Off)
                {
                    Some(i) => cur = i,
                    None => return Err("every vCPU is off"),
                }
            }
        }
    }
}

/// Runs vCPU `cur` until it must give the core up or the VM ends.
fn run_vcpu(cur: usize, slots: &mut [Slot], host: &mut Host) -> Next {
    loop {
        let vcpu = &mut slots[cur].vcpu;
        // Match the Result in place: binding it first costs a copy of the exit per
        // round trip. The benchmarked null call is matched on its own, first.
        let next = match vcpu.run() {
            Ok(VmExit::Hypercall {
                imm: 0,
                args: [hvc::NULL, ..],
            }) => {
                host.stats.hypercall += 1;
                vcpu.set_return_value(0);
                continue;
            }
            Ok(exit) => {
                let next = handle(cur, slots, host, &exit);
                host.scenario.observe(&exit);
                next
            }
            Err(e) => {
                error!("run: {}", e);
                Next::End(Err("run() returned an error"))
            }
        };
        match next {
            Next::Continue => {}
            other => return other,
        }
    }
}

#[inline(never)]
fn handle(cur: usize, slots: &mut [Slot], host: &mut Host, exit: &VmExit) -> Next {
    match handle_exit(cur, slots, host, exit) {
        Ok(n) => n,
        Err(e) => Next::End(Err(e)),
    }
}

fn handle_exit(
    cur: usize,
    slots: &mut [Slot],
    host: &mut Host,
    exit: &VmExit,
) -> Result<Next, &'static str> {
    if let VmExit::Psci { request, conduit } = *exit {
        host.stats.psci += 1;
        host.scenario.psci_request(cur, &request, conduit);
        return psci(cur, slots, host, request);
    }
    if let VmExit::SendSgi { request } = *exit {
        host.stats.sgi += 1;
        return send_sgi(cur, slots, request);
    }
    // What a scenario asks about the VM: built only for the calls that hand it over
    // (TEST_CALL, EXIT), never on the other exits' path.
    fn info<'a>(host: &Host, vcpu: &'a arm_vcpu::Aarch64VCpu) -> VmInfo<'a> {
        VmInfo {
            dev_reads: host.dev.reads,
            dev_writes: host.dev.writes,
            irqs: host.irqs,
            vcpu,
        }
    }
    let vcpu = &mut slots[cur].vcpu;
    let st = &mut host.stats;
    match *exit {
        VmExit::Hypercall { imm: 0, ref args } => {
            st.hypercall += 1;
            match args[0] {
                hvc::TEST_CALL => {
                    let info = info(host, vcpu);
                    let v = host.scenario.test_call(cur, args, &info)?;
                    vcpu.set_return_value(v);
                    if let Some(esr) = host.scenario.serror_after_test_call(cur) {
                        vcpu.inject_serror(esr).map_err(|_| "inject_serror")?;
                    }
                    if let Some(vi) = host.scenario.irq_after_test_call(cur) {
                        vcpu.inject_interrupt(vi).map_err(|_| "inject_interrupt")?;
                    }
                }
                hvc::PUTC => crate::console::putc(args[1] as u8),
                hvc::YIELD => {
                    // YIELD returns 0 when this vCPU runs again.
                    vcpu.set_return_value(0);
                    return Ok(Next::Switch);
                }
                hvc::EXIT => {
                    if args[1] != 0 {
                        error!("guest reports {} failed checks", args[1]);
                    }
                    let info = info(host, vcpu);
                    return Ok(Next::End(host.scenario.finish(args[1], &info)));
                }
                // Unknown function IDs: SMCCC NOT_SUPPORTED (-1).
                _ => vcpu.set_return_value(u64::MAX),
            }
            Ok(Next::Continue)
        }
        VmExit::Hypercall { .. } => {
            // Not an SMCCC call (non-zero immediate): nothing here answers it.
            st.hypercall += 1;
            vcpu.set_return_value(u64::MAX);
            Ok(Next::Continue)
        }
        VmExit::MmioRead { addr, width, .. } => {
            st.mmio_read += 1;
            let v = if (TESTDEV_IPA..TESTDEV_IPA + TESTDEV_SIZE).contains(&addr) {
                st.testdev += 1;
                host.dev.read(addr - TESTDEV_IPA, width)
            } else if (CONSOLE_IPA..CONSOLE_IPA + 0x1000).contains(&addr) {
                // Console FR: TX FIFO never full.
                st.console += 1;
                0
            } else {
                return unbacked(vcpu, host.scenario.abort_policy(), addr, false);
            };
            vcpu.complete_mmio_read(v)
                .map_err(|_| "complete_mmio_read")?;
            Ok(Next::Continue)
        }
        VmExit::MmioWrite { addr, width, data } => {
            st.mmio_write += 1;
            if (TESTDEV_IPA..TESTDEV_IPA + TESTDEV_SIZE).contains(&addr) {
                st.testdev += 1;
                host.dev.write(addr - TESTDEV_IPA, width, data);
            } else if (CONSOLE_IPA..CONSOLE_IPA + 0x1000).contains(&addr) {
                st.console += 1;
                devices::console_write(addr - CONSOLE_IPA, data);
            } else {
                return unbacked(vcpu, host.scenario.abort_policy(), addr, true);
            }
            Ok(Next::Continue)
        }
        VmExit::SysRegRead { reg, .. } => {
            st.sysreg += 1;
            match host.scenario.sysreg_read(reg) {
                Some(v) => vcpu
                    .complete_sysreg_read(v)
                    .map_err(|_| "complete_sysreg_read")?,
                None => vcpu.inject_undef().map_err(|_| "inject_undef")?,
            }
            Ok(Next::Continue)
        }
        VmExit::SysRegWrite { .. } => {
            st.sysreg += 1;
            vcpu.inject_undef().map_err(|_| "inject_undef")?;
            Ok(Next::Continue)
        }
        VmExit::DataAbort { va, write, .. } => {
            st.abort += 1;
            match host.scenario.abort_policy() {
                AbortPolicy::Inject => vcpu
                    .inject_data_abort(va, write)
                    .map_err(|_| "inject_data_abort")?,
                AbortPolicy::Fail => return Err("unexpected data abort"),
            }
            Ok(Next::Continue)
        }
        VmExit::InstructionAbort { va, .. } => {
            st.abort += 1;
            match host.scenario.abort_policy() {
                AbortPolicy::Inject => vcpu
                    .inject_instruction_abort(va)
                    .map_err(|_| "inject_instruction_abort")?,
                AbortPolicy::Fail => return Err("unexpected instruction abort"),
            }
            Ok(Next::Continue)
        }
        VmExit::WaitForInterrupt | VmExit::WaitForEvent => {
            st.wfx += 1;
            // Nothing to wait for on this core: give it to another vCPU, if any.
            Ok(Next::Switch)
        }
        VmExit::ExternalInterrupt { .. } => {
            st.irq += 1;
            let intid = gic::ack();
            if intid == gic::HYP_TIMER_INTID {
                host.irqs += 1;
                gic::eoi(intid);
                if host.irqs < 3 {
                    gic::arm_hyp_timer(IRQ_TICKS);
                } else {
                    gic::stop_hyp_timer();
                }
            } else if intid < 1020 {
                gic::eoi(intid);
            }
            Ok(Next::Continue)
        }
        _ => {
            st.other += 1;
            error!("unexpected exit {:?} at pc {:#x}", exit, vcpu.pc());
            Err("unexpected exit")
        }
    }
}

/// An MMIO access to an address no device claims.
fn unbacked(
    vcpu: &mut Aarch64VCpu,
    policy: AbortPolicy,
    addr: u64,
    write: bool,
) -> Result<Next, &'static str> {
    match policy {
        AbortPolicy::Inject => {
            // The guest runs with its MMU off in the test VMs, so the IPA is its VA;
            // a guest with its MMU on gets FAR from its own tables' point of view
            // wrong here, which the test guests do not rely on.
            vcpu.inject_data_abort(addr, write)
                .map_err(|_| "inject_data_abort")?;
            Ok(Next::Continue)
        }
        AbortPolicy::Fail => {
            error!("access to unbacked IPA {:#x}", addr);
            Err("access to an address no device serves")
        }
    }
}

/// An SGI the guest sent (a trapped ICC_SGI*R_EL1 write): made pending on every vCPU
/// of this VM it targets.
fn send_sgi(cur: usize, slots: &mut [Slot], request: SgiRequest) -> Result<Next, &'static str> {
    const AFFINITY: u64 = 0xff_00ff_ffff;
    let sender = slots[cur].vcpu.system_registers().vmpidr_el2 & AFFINITY;
    for s in slots.iter_mut() {
        let mpidr = s.vcpu.system_registers().vmpidr_el2 & AFFINITY;
        if request.targets.includes(mpidr, sender) {
            s.vcpu
                .inject_interrupt(
                    VirtualInterrupt::new(request.intid.into())
                        .with_priority(0xa0)
                        .with_group1(request.group1),
                )
                .map_err(|_| "inject_interrupt (SGI)")?;
        }
    }
    Ok(Next::Continue)
}

/// The host side of PSCI for a VM whose vCPUs share this core.
fn psci(
    cur: usize,
    slots: &mut [Slot],
    host: &mut Host,
    request: PsciRequest,
) -> Result<Next, &'static str> {
    let find = |slots: &[Slot], mpidr: u64| {
        slots
            .iter()
            .position(|s| s.vcpu.system_registers().vmpidr_el2 & 0xff_00ff_ffff == mpidr)
    };
    let (result, next) = match request {
        PsciRequest::CpuOn {
            target_mpidr,
            entry,
            context_id,
        } => match find(slots, target_mpidr) {
            None => (ret::INVALID_PARAMETERS, Next::Continue),
            Some(_) if host.mem.host_ptr(entry, 4).is_none() => {
                (ret::INVALID_ADDRESS, Next::Continue)
            }
            Some(t) => match slots[t].vcpu.power_state() {
                PowerState::On => (ret::ALREADY_ON, Next::Continue),
                PowerState::OnPending => (ret::ON_PENDING, Next::Continue),
                PowerState::Off => {
                    // The crate makes it ON_PENDING until its first entry.
                    slots[t]
                        .vcpu
                        .power_on(entry, context_id)
                        .map_err(|_| "power_on")?
                        .iter()
                        .for_each(crate::gic::deactivate);
                    (ret::SUCCESS, Next::Continue)
                }
                _ => (ret::INTERNAL_FAILURE, Next::Continue),
            },
        },
        PsciRequest::AffinityInfo { target_mpidr } => match find(slots, target_mpidr) {
            None => (ret::INVALID_PARAMETERS, Next::Continue),
            Some(t) => (slots[t].vcpu.power_state().affinity_info(), Next::Continue),
        },
        // The crate has marked the caller off: it is not scheduled until a CPU_ON.
        PsciRequest::CpuOff => return Ok(Next::Switch),
        PsciRequest::CpuSuspend { .. } => (ret::SUCCESS, Next::Switch),
        PsciRequest::SystemOff => return Ok(Next::End(host.scenario.system_off())),
        PsciRequest::SystemReset => {
            return Ok(if host.scenario.system_reset()? {
                Next::Reset
            } else {
                Next::End(Ok(()))
            });
        }
        // A request this host does not know (the enum may grow): refuse it.
        _ => (ret::NOT_SUPPORTED, Next::Continue),
    };
    slots[cur]
        .vcpu
        .complete_psci(result)
        .map_err(|_| "complete_psci")?;
    Ok(next)
}
