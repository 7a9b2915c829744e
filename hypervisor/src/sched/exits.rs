//! One exit the exit loop does not answer itself: the VM's devices (MMIO), the refhv
//! hypercalls, PSCI, SGIs, physical interrupts (timers, kicks, console input), WFI,
//! system registers and aborts. An error ends only the exiting vCPU's VM, with its
//! reason.

use arm_vcpu::smccc::ret;
use arm_vcpu::{AccessWidth, Conduit, InlineExits, PsciRequest, VmExit};
use log::{error, info};

use super::irq::drain_mail;
use super::policy::Stop;
use super::stats::VcpuStats;
use super::{vm_info, Core, Power, VCpu, VcpuShared, VmSched};
use crate::devices::{self, timer_index, TestDevice};
use crate::platform::gic::{self, HYP_TIMER_INTID, KICK_SGI};
use crate::scenario::AbortPolicy;
use crate::vm::hvc;
use core::sync::atomic::Ordering;

/// What a vCPU's exit loop serves inside `run_with` ([`InlineExits`]): the null
/// hypercall (HVC #0 with x0 = NULL: x0 = 0 back, counted in `null_calls`, folded into
/// the statistics when the loop returns), and its test VM's lock-free test device,
/// when the VM's exits go straight to the devices
/// (`VCpu::direct`: no scenario observes or holds them). Counted as the MMIO exits
/// they replace, in the vCPU's statistics (counting locally and folding in when the
/// loop returns, like the null calls, would cost every switch the fold); not exits
/// otherwise: `trace=1` records none, `timing=1` counts their time as the guest's.
/// Everything else exits as usual. Kept in the `VCpu` (`VCpu::inline`): the exit loop
/// reaches it through the vCPU pointer, with no register of its own held across the
/// loop (which would cost the other exit paths theirs).
pub(super) struct InlineDevices {
    testdev: Option<&'static TestDevice>,
    stats: &'static VcpuStats,
    /// Null hypercalls answered since the loop started (one add, no shared line).
    pub(super) null_calls: u64,
}

impl InlineDevices {
    /// For vCPU `sh` of `vs`, whose exits go straight to the devices if `direct`.
    pub(super) fn new(vs: &'static VmSched, sh: &'static VcpuShared, direct: bool) -> Self {
        let vm = vs.vm;
        Self {
            testdev: (direct && vm.kind == devices::Kind::Test).then_some(&*vm.testdev),
            stats: &sh.stats,
            null_calls: 0,
        }
    }
}

impl InlineExits for InlineDevices {
    /// The null call; every other HVC #0 goes on (the crate's, or an exit).
    #[inline(always)]
    fn hvc0(&mut self, x: &mut [u64; 31]) -> bool {
        if x[0] != hvc::NULL {
            return false;
        }
        self.null_calls += 1;
        x[0] = 0;
        true
    }

    #[inline(always)]
    fn read(&mut self, addr: u64, width: AccessWidth) -> Option<u64> {
        let (Some(dev), Some(off)) = (self.testdev, devices::testdev::offset(addr)) else {
            // The exit loop's registers are allocated for the served access and the
            // other exits, not for this one (whose exit costs far more than a
            // register copy).
            core::hint::cold_path();
            return None;
        };
        self.stats.mmio_read.bump();
        self.stats.testdev_reads.bump(width);
        Some(dev.read(off, width))
    }

    /// Writes take the exit (to the same lock-free device, `Core::mmio`): served here
    /// too, they cost the read two instructions of register allocation in the loop.
    #[inline(always)]
    fn write(&mut self, _: u64, _: AccessWidth, _: u64) -> bool {
        false
    }
}

impl Core {
    /// One exit the fast path did not answer: devices, hypercalls, PSCI, SGIs,
    /// physical interrupts, WFI, traps. `Some`: the vCPU stops. An error ends its VM
    /// (only its VM) with the reason.
    #[inline(never)]
    pub(super) fn exit(&mut self, v: &mut VCpu, e: &VmExit) -> Option<Stop> {
        let vm = v.vm.vm;
        if vm.migrates {
            if let Some(stop) = self.migrating_exit(v, e) {
                return stop;
            }
        }
        let r = self.handle(v, e);
        if vm.observes {
            if let Some(sc) = vm.state.lock().scenario.as_mut() {
                sc.observe(e);
            }
        }
        match r {
            Ok(stop) => stop,
            Err(why) => Some(self.exit_failed(v, e, why)),
        }
    }

    /// An MMIO access (`data`: a write's value) of a VM whose exits go straight to its
    /// devices (`VCpu::direct`): the exit loop's device arm.
    #[inline(always)]
    pub(super) fn device_access(
        &mut self,
        v: &mut VCpu,
        addr: u64,
        width: AccessWidth,
        data: Option<u64>,
    ) -> Option<Stop> {
        let st = &v.sh.stats;
        match data {
            None => st.mmio_read.bump(),
            Some(_) => st.mmio_write.bump(),
        }
        match self.mmio(v, addr, width, data) {
            Ok(stop) => stop,
            Err(why) => Some(self.device_failed(v, addr, width, data, why)),
        }
    }

    /// A TEST_CALL of a VM whose exits go straight to their handlers (`VCpu::direct`:
    /// its scenario neither observes exits nor moves vCPUs): the exit loop's TEST_CALL
    /// arm, without `Core::exit`'s dispatch. One lock and one call into the scenario,
    /// which does on the vCPU what the call asks (e.g. `inject_interrupt`).
    #[inline(always)]
    pub(super) fn test_call(&mut self, v: &mut VCpu, args: &[u64; 7]) -> Option<Stop> {
        v.sh.stats.hypercall.bump();
        match scenario_test_call(v, args) {
            Ok(()) => None,
            Err(why) => Some(self.test_call_failed(v, args, why)),
        }
    }

    /// A TEST_CALL the scenario refused: its VM ends with the reason.
    #[cold]
    #[inline(never)]
    fn test_call_failed(&mut self, v: &mut VCpu, args: &[u64; 7], why: &'static str) -> Stop {
        let e = VmExit::Hypercall {
            imm: 0,
            args: *args,
        };
        self.exit_failed(v, &e, why)
    }

    /// A device access that could not be handled: its VM ends with the reason.
    #[cold]
    #[inline(never)]
    fn device_failed(
        &mut self,
        v: &mut VCpu,
        addr: u64,
        width: AccessWidth,
        data: Option<u64>,
        why: &'static str,
    ) -> Stop {
        error!(
            "VM {}: vCPU {}: {} ({} {:?} at IPA {:#x}, pc {:#x})",
            v.vm.vm.name(),
            v.index,
            why,
            if data.is_some() { "write" } else { "read" },
            width,
            addr,
            v.vcpu.pc()
        );
        self.end_vm(v.vm, Err(why));
        Stop::VmEnded
    }

    /// Exit `e` could not be handled: its VM ends (only its VM) with the reason.
    #[cold]
    #[inline(never)]
    fn exit_failed(&mut self, v: &mut VCpu, e: &VmExit, why: &'static str) -> Stop {
        error!(
            "VM {}: vCPU {}: {} (exit {:?} at pc {:#x})",
            v.vm.vm.name(),
            v.index,
            why,
            e,
            v.vcpu.pc()
        );
        self.end_vm(v.vm, Err(why));
        Stop::VmEnded
    }

    /// An exit of a VM whose scenario migrates: a device read it holds
    /// (`Scenario::hold_read`, the vCPU stops with the read pending) or a TEST_CALL
    /// on the calling vCPU (`Scenario::vcpu_test_call`). `None`: the usual path.
    #[cold]
    #[inline(never)]
    fn migrating_exit(&mut self, v: &mut VCpu, e: &VmExit) -> Option<Option<Stop>> {
        let vm = v.vm.vm;
        match *e {
            VmExit::MmioRead { addr, .. } if v.held_read.is_none() => {
                let hold = vm
                    .state
                    .lock()
                    .scenario
                    .as_mut()
                    .is_some_and(|sc| sc.hold_read(v.index, addr));
                if !hold {
                    return None;
                }
                v.sh.stats.mmio_read.bump();
                v.held_read = Some(*e);
                Some(Some(Stop::Yielded))
            }
            VmExit::Hypercall { imm: 0, ref args } if args[0] == hvc::TEST_CALL => {
                let r = vm
                    .state
                    .lock()
                    .scenario
                    .as_mut()
                    .and_then(|sc| sc.vcpu_test_call(v.index, self.id, args, &mut v.vcpu))?;
                v.sh.stats.hypercall.bump();
                match r {
                    Ok(x) => {
                        v.vcpu.set_return_value(x);
                        Some(None)
                    }
                    Err(why) => {
                        error!("VM {}: vCPU {}: {}", vm.name(), v.index, why);
                        self.end_vm(v.vm, Err(why));
                        Some(Some(Stop::VmEnded))
                    }
                }
            }
            _ => None,
        }
    }

    pub(super) fn handle(
        &mut self,
        v: &mut VCpu,
        e: &VmExit,
    ) -> Result<Option<Stop>, &'static str> {
        let st = &v.sh.stats;
        match *e {
            VmExit::MmioRead { addr, width, .. } => {
                st.mmio_read.bump();
                self.mmio(v, addr, width, None)
            }
            VmExit::MmioWrite { addr, width, data } => {
                st.mmio_write.bump();
                self.mmio(v, addr, width, Some(data))
            }
            VmExit::Hypercall { imm, ref args } => {
                st.hypercall.bump();
                self.hypercall(v, imm, args)
            }
            VmExit::Psci { request, conduit } => {
                st.psci.bump();
                self.psci(v, request, conduit)
            }
            VmExit::ExternalInterrupt { .. } => {
                st.irq.bump();
                Ok(self.host_irq(v))
            }
            VmExit::WaitForInterrupt => {
                st.wfi.bump();
                Ok(self.wfi(v))
            }
            _ => self.handle_rest(v, e),
        }
    }

    /// The exits that are neither MMIO, hypercalls, PSCI, interrupts nor WFI.
    #[inline(never)]
    pub(super) fn handle_rest(
        &mut self,
        v: &mut VCpu,
        e: &VmExit,
    ) -> Result<Option<Stop>, &'static str> {
        let vm = v.vm.vm;
        let st = &v.sh.stats;
        match *e {
            VmExit::SendSgi { request } => {
                st.sgi.bump();
                let mpidrs = &vm.mpidrs;
                {
                    let mut s = vm.state.lock();
                    s.dev.send_sgi(v.index, &request, mpidrs.len(), |i| {
                        mpidrs.get(i).copied().unwrap_or(u64::MAX)
                    });
                    s.dev.deliveries(v.index, &mut self.out);
                }
                self.deliver_out(v);
                Ok(None)
            }
            VmExit::WaitForEvent => {
                // Its wake-up event (SEV) is not an interrupt: let others run first.
                st.wfe.bump();
                Ok(Some(Stop::Yielded))
            }
            VmExit::SysRegRead { reg, .. } => {
                st.sysreg.bump();
                let answer = vm
                    .state
                    .lock()
                    .scenario
                    .as_mut()
                    .and_then(|sc| sc.sysreg_read(reg));
                match answer {
                    Some(val) => v
                        .vcpu
                        .complete_sysreg_read(val)
                        .map_err(|_| "complete_sysreg_read")?,
                    None => v.vcpu.inject_undef().map_err(|_| "inject_undef")?,
                }
                Ok(None)
            }
            VmExit::SysRegWrite { .. } => {
                st.sysreg.bump();
                v.vcpu.inject_undef().map_err(|_| "inject_undef")?;
                Ok(None)
            }
            VmExit::DataAbort { va, write, .. } => {
                st.abort.bump();
                if vm.abort_policy == Some(AbortPolicy::Fail) {
                    return Err("unexpected data abort");
                }
                v.vcpu
                    .inject_data_abort(va, write)
                    .map_err(|_| "inject_data_abort")?;
                Ok(None)
            }
            VmExit::InstructionAbort { va, .. } => {
                st.abort.bump();
                if vm.abort_policy == Some(AbortPolicy::Fail) {
                    return Err("unexpected instruction abort");
                }
                v.vcpu
                    .inject_instruction_abort(va)
                    .map_err(|_| "inject_instruction_abort")?;
                Ok(None)
            }
            _ => {
                st.other.bump();
                Err("unexpected exit")
            }
        }
    }

    /// An MMIO access (`data`: a write's value) to the VM's devices. Nothing there:
    /// an OS reads zero and its writes are ignored (U-Boot and Linux probe); a test
    /// scenario injects an abort or fails, as it says. A test VM's test device is
    /// lock-free: served first, without the VM state lock (it raises no interrupt, so
    /// nothing waits for delivery after it).
    #[inline(always)]
    pub(super) fn mmio(
        &mut self,
        v: &mut VCpu,
        addr: u64,
        width: AccessWidth,
        data: Option<u64>,
    ) -> Result<Option<Stop>, &'static str> {
        let vm = v.vm.vm;
        if let (devices::Kind::Test, Some(off)) = (vm.kind, devices::testdev::offset(addr)) {
            let st = &v.sh.stats;
            match data {
                None => {
                    st.testdev_reads.bump(width);
                    v.vcpu
                        .complete_mmio_read(vm.testdev.read(off, width))
                        .map_err(|_| "complete_mmio_read")?
                }
                Some(d) => {
                    st.testdev_writes.bump(width);
                    vm.testdev.write(off, d, width)
                }
            }
            return Ok(None);
        }
        let (served, val, deliver) = {
            let mut s = vm.state.lock();
            let (served, val) = match data {
                // The emulated GIC's pending/active registers include what this
                // vCPU's list registers hold (it is bound here: they are live).
                None => match s.dev.read(v.index, addr, width, &|i| {
                    v.vcpu.interrupt_states(i).unwrap_or_default()
                }) {
                    Some(x) => (true, x),
                    None => (false, 0),
                },
                Some(d) => (s.dev.write(v.index, addr, width, d), 0),
            };
            let deliver = s.dev.has_deliveries();
            if deliver {
                s.dev.deliveries(v.index, &mut self.out);
            }
            (served, val, deliver)
        };
        if !served {
            match vm.abort_policy {
                Some(AbortPolicy::Inject) => {
                    // The test guests run with their MMU off: the IPA is the VA.
                    v.vcpu
                        .inject_data_abort(addr, data.is_some())
                        .map_err(|_| "inject_data_abort")?;
                    return Ok(None);
                }
                Some(AbortPolicy::Fail) => {
                    error!("VM {}: access to unbacked IPA {:#x}", vm.name(), addr);
                    return Err("access to an address no device serves");
                }
                None => {}
            }
        }
        if data.is_none() {
            v.vcpu
                .complete_mmio_read(val)
                .map_err(|_| "complete_mmio_read")?;
        }
        if deliver {
            self.deliver_out(v);
        }
        Ok(None)
    }

    /// The refhv hypercalls (docs/test-protocol.md); anything else NOT_SUPPORTED.
    pub(super) fn hypercall(
        &mut self,
        v: &mut VCpu,
        imm: u16,
        args: &[u64; 7],
    ) -> Result<Option<Stop>, &'static str> {
        let vs = v.vm;
        let vm = vs.vm;
        if imm != 0 {
            // Not an SMCCC call: nothing here answers it.
            v.vcpu.set_return_value(u64::MAX);
            return Ok(None);
        }
        match args[0] {
            hvc::NULL => v.vcpu.set_return_value(0),
            hvc::TEST_CALL => scenario_test_call(v, args)?,
            hvc::PUTC => vm.state.lock().dev.putc(args[1] as u8),
            hvc::YIELD => {
                // YIELD returns 0 when this vCPU runs again.
                v.vcpu.set_return_value(0);
                return Ok(Some(Stop::Yielded));
            }
            hvc::EXIT => {
                if args[1] != 0 {
                    error!(
                        "VM {}: the guest reports {} failed checks",
                        vm.name(),
                        args[1]
                    );
                }
                let verdict = {
                    let mut s = vm.state.lock();
                    let st = &mut *s;
                    match st.scenario.as_mut() {
                        Some(sc) => {
                            let info = vm_info(vs, &st.dev, &mut v.vcpu);
                            sc.finish(args[1], &info)
                        }
                        None if args[1] == 0 => Ok(()),
                        None => Err("the guest reports failed checks"),
                    }
                };
                self.end_vm(vs, verdict);
                return Ok(Some(Stop::VmEnded));
            }
            // Unknown function IDs: SMCCC NOT_SUPPORTED (-1).
            _ => v.vcpu.set_return_value(u64::MAX),
        }
        Ok(None)
    }

    /// The host side of PSCI for `v`'s VM.
    #[inline(never)]
    pub(super) fn psci(
        &mut self,
        v: &mut VCpu,
        request: PsciRequest,
        conduit: Conduit,
    ) -> Result<Option<Stop>, &'static str> {
        let vs = v.vm;
        let vm = vs.vm;
        if vm.kind == devices::Kind::Test {
            if let Some(sc) = vm.state.lock().scenario.as_mut() {
                sc.psci_request(v.index, &request, conduit);
            }
        }
        let result = match request {
            PsciRequest::CpuOn {
                target_mpidr,
                entry,
                context_id,
            } => self.cpu_on(vs, target_mpidr, entry, context_id),
            PsciRequest::AffinityInfo { target_mpidr } => match vm.vcpu_of(target_mpidr) {
                Some(t) => i32::from(vs.vcpus[t].power.load(Ordering::Acquire)),
                None => ret::INVALID_PARAMETERS,
            },
            // The vCPU does not run again until a CPU_ON (power_on resets it); the
            // call does not return.
            PsciRequest::CpuOff => return Ok(Some(Stop::Off)),
            PsciRequest::CpuSuspend { .. } => {
                // Standby: like WFI.
                v.vcpu
                    .complete_psci(ret::SUCCESS)
                    .map_err(|_| "complete_psci")?;
                return Ok(Some(if vm.wfi_yields {
                    Stop::Yielded
                } else {
                    Stop::Blocked { deadline: None }
                }));
            }
            PsciRequest::SystemOff => {
                info!("VM {}: vCPU {}: PSCI SYSTEM_OFF", vm.name(), v.index);
                let verdict = {
                    let mut s = vm.state.lock();
                    let st = &mut *s;
                    match st.scenario.as_mut() {
                        Some(sc) => sc.system_off(&vm_info(vs, &st.dev, &mut v.vcpu)),
                        None => Ok(()),
                    }
                };
                self.end_vm(vs, verdict);
                return Ok(Some(Stop::VmEnded));
            }
            PsciRequest::SystemReset => {
                info!("VM {}: vCPU {}: PSCI SYSTEM_RESET", vm.name(), v.index);
                let r = match vm.state.lock().scenario.as_mut() {
                    Some(sc) => sc.system_reset(),
                    // An OS's reset ends it (the reference hypervisor does not reload
                    // kernels), as a pass.
                    None => Ok(false),
                };
                match r {
                    Ok(true) => return Ok(Some(Stop::Reset)),
                    Ok(false) => self.end_vm(vs, Ok(())),
                    Err(why) => self.end_vm(vs, Err(why)),
                }
                return Ok(Some(Stop::VmEnded));
            }
            // A request this host does not know (the enum may grow): refuse it.
            _ => ret::NOT_SUPPORTED,
        };
        v.vcpu.complete_psci(result).map_err(|_| "complete_psci")?;
        Ok(None)
    }

    /// PSCI CPU_ON of MPIDR `target` in `vs`'s VM: INVALID_PARAMETERS for a vCPU it
    /// does not have, INVALID_ADDRESS for an entry outside its RAM, ALREADY_ON /
    /// ON_PENDING; otherwise the vCPU starts at `entry` with x0 = `ctx`, placed by the
    /// policy.
    pub(super) fn cpu_on(
        &mut self,
        vs: &'static VmSched,
        target: u64,
        entry: u64,
        ctx: u64,
    ) -> i32 {
        let vm = vs.vm;
        let Some(t) = vm.vcpu_of(target) else {
            return ret::INVALID_PARAMETERS;
        };
        if !vm.in_ram(entry) {
            return ret::INVALID_ADDRESS;
        }
        match Power::from(vs.vcpus[t].power.load(Ordering::Acquire)) {
            Power::On => return ret::ALREADY_ON,
            Power::OnPending => return ret::ON_PENDING,
            Power::Off => {}
        }
        match self.start_vcpu(vs, t, Some((entry, ctx))) {
            Ok(()) => {
                self.trace_phase(alloc::format!("{} vCPU {t} on", vm.name()));
                ret::SUCCESS
            }
            // Another CPU_ON got there first, or it is still on its way to parking.
            Err(_) => match Power::from(vs.vcpus[t].power.load(Ordering::Acquire)) {
                Power::OnPending => ret::ON_PENDING,
                Power::On => ret::ALREADY_ON,
                Power::Off => ret::INTERNAL_FAILURE,
            },
        }
    }

    /// A trapped WFI. A VM whose WFI yields gives the core up; otherwise the vCPU
    /// blocks — unbound, if another vCPU waits for the core; bound, with the core
    /// asleep, if none does (its own timers stay live in the hardware and wake it).
    #[inline(never)]
    pub(super) fn wfi(&mut self, v: &mut VCpu) -> Option<Stop> {
        let vm = v.vm.vm;
        if vm.wfi_yields {
            return Some(Stop::Yielded);
        }
        if drain_mail(v) {
            return None;
        }
        self.console_idle(v.vm);
        if !self.queue.is_empty() {
            return Some(Stop::Blocked { deadline: None });
        }
        let st = &v.sh.stats;
        st.blocks.bump();
        self.program_timer();
        if self.sh.flags.load(Ordering::Acquire) == 0 {
            // A trapped WFI means the guest had no pending virtual interrupt; anything
            // raised since is a pending physical interrupt, which ends the WFI and
            // makes the next entry exit at once to deliver it.
            // SAFETY: DSB and WFI only wait; no state of the host changes.
            unsafe { core::arch::asm!("dsb sy", "wfi", options(nostack, preserves_flags)) };
        }
        st.wakeups.bump();
        None
    }

    /// A physical interrupt taken while `v` ran: acknowledged here. The EL1 timers'
    /// PPIs get only a priority drop and are delivered linked to the physical ones;
    /// the host's own are ended.
    #[inline(never)]
    pub(super) fn host_irq(&mut self, v: &mut VCpu) -> Option<Stop> {
        let iar = gic::ack();
        let intid = gic::intid_of(iar);
        if intid >= 1020 {
            return None;
        }
        gic::eoi(iar);
        let vm = v.vm.vm;
        if timer_index(intid).is_some() && vm.links_timers {
            {
                let mut s = vm.state.lock();
                s.dev.timer_fired(v.index, intid);
                s.dev.deliveries(v.index, &mut self.out);
            }
            self.deliver_out(v);
            return None;
        }
        // [pmu] A test VM (no emulated GIC): the PMU's overflow straight into the
        // vCPU, linked to the physical PPI (the guest's deactivation ends it).
        if intid == arm_vcpu::pmu::PMU_INTID && v.vcpu.pmu_irq_line() {
            let vi = arm_vcpu::VirtualInterrupt::new(intid).with_hw_intid(intid);
            if v.vcpu.inject_interrupt(vi).is_ok() {
                return None;
            }
        }
        gic::deactivate(iar);
        match intid {
            HYP_TIMER_INTID => self.on_timer(Some(v)),
            KICK_SGI => self.service(Some(v)),
            i if Some(i) == crate::platform::board().uart.intid => {
                self.console_input_for(Some(v));
                None
            }
            _ => None,
        }
    }
}

/// TEST_CALL(x1..x6) of `v` answered by its VM's scenario (x0: its result; without a
/// scenario NOT_SUPPORTED), under the VM's lock; the scenario acts on the vCPU
/// itself. An error ends the VM.
#[inline(always)]
fn scenario_test_call(v: &mut VCpu, args: &[u64; 7]) -> Result<(), &'static str> {
    let vs = v.vm;
    let r = {
        let mut s = vs.vm.state.lock();
        let st = &mut *s;
        match st.scenario.as_mut() {
            Some(sc) => {
                let mut info = vm_info(vs, &st.dev, &mut v.vcpu);
                sc.test_call(v.index, args, &mut info)?
            }
            None => u64::MAX,
        }
    };
    v.vcpu.set_return_value(r);
    Ok(())
}
