//! The devices of a Linux VM in the virtual-interrupt mode, shared by the one-core and
//! the two-core runners: the emulated GIC (`vgicd`), the emulated console (`pl011`),
//! and how exits that concern them turn into register values and interrupt deliveries.

use alloc::vec::Vec;

use arm_vcpu::{
    Aarch64PerCpu, Aarch64VCpu, Aarch64VCpuCreateConfig, Aarch64VCpuSetupConfig, AccessWidth,
    SgiRequest, Stage2Config, VirtualInterrupt, VmExit,
};
use log::error;

use crate::devices::CONSOLE_IPA;
use crate::gic;
use crate::memory::{self, GuestMemory};
use crate::pl011::Pl011;
use crate::vgicd::{Delivery, VGic, GICD_BASE, GICD_SIZE, GICR_BASE};
use crate::vm::ExitStats;

/// The console's SPI: the guest's emulated PL011 uses the line of the board's UART
/// (the device tree's; SPI 1 on QEMU virt), so the real UART's interrupt, routed to
/// the host, and the guest's agree.
pub fn uart_intid() -> u32 {
    crate::platform::board().uart.intid.unwrap_or(33)
}

/// The EL1 timers' PPIs the host links to the guest's (virtual 27, physical 30), and
/// their index in per-timer state.
pub const TIMER_INTIDS: [u32; 2] = [gic::VTIMER_INTID, gic::PTIMER_INTID];

fn timer_index(intid: u32) -> Option<usize> {
    TIMER_INTIDS.iter().position(|&t| t == intid)
}

/// One interrupt to inject into vCPU `vcpu`. `resample`: a level-sensitive timer
/// interrupt that fired while the guest had its PPI disabled, released by the enable;
/// its line must be sampled again before it is injected ([`inject`]).
#[derive(Clone, Copy, Debug)]
pub struct Injection {
    pub vcpu: usize,
    pub vi: VirtualInterrupt,
    pub resample: bool,
}

/// Whether `vcpu`'s EL1 timer `intid` (27 virtual, 30 physical) asserts its line now:
/// CNTx_CTL_EL0.ENABLE and ISTATUS set, IMASK clear — from the hardware registers
/// while the vCPU is bound here (they are the guest's then), from its deadlines
/// (`timer_deadlines`, in physical count) while it is not.
pub fn timer_line(vcpu: &Aarch64VCpu, intid: u32) -> bool {
    if vcpu.is_bound() {
        let ctl: u64;
        // SAFETY: at EL2 (non-VHE) CNTV_CTL_EL0 / CNTP_CTL_EL0 are the EL1 timers' control
        // registers, loaded with the bound vCPU's state; reading has no side effect.
        unsafe {
            if intid == gic::VTIMER_INTID {
                core::arch::asm!("mrs {0}, cntv_ctl_el0", out(reg) ctl, options(nomem, nostack));
            } else {
                core::arch::asm!("mrs {0}, cntp_ctl_el0", out(reg) ctl, options(nomem, nostack));
            }
        }
        ctl & 0b111 == 0b101
    } else {
        let d = vcpu.timer_deadlines();
        let deadline = if intid == gic::VTIMER_INTID {
            d.virt
        } else {
            d.phys
        };
        deadline.is_some_and(|t| t <= arm_vcpu::physical_count())
    }
}

/// Injects `inj` into `vcpu`. A released timer interrupt is sampled again first, as a
/// level-sensitive line is when it is enabled: only if the timer still asserts it is
/// it injected (linked to the physical PPI, which stayed active); if the timer has
/// stopped asserting it, nothing is injected and the physical PPI is deactivated here
/// when the vCPU is bound (its core took it). Returns whether it was injected; `false`
/// for an unbound vCPU tells the caller to drop the physical active state it keeps
/// for it.
pub fn inject(vcpu: &mut Aarch64VCpu, inj: Injection) -> bool {
    if inj.resample && !timer_line(vcpu, inj.vi.intid) {
        if vcpu.is_bound() {
            gic::deactivate(inj.vi.intid);
        }
        return false;
    }
    if vcpu.inject_interrupt(inj.vi).is_err() {
        error!(
            "cannot inject INTID {} into vCPU {}",
            inj.vi.intid, inj.vcpu
        );
        return false;
    }
    true
}

/// PSCI power state of a vCPU, as AFFINITY_INFO reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Power {
    On = 0,
    Off = 1,
    OnPending = 2,
}

/// The PSCI checks of a guest's CPU_ON of MPIDR `target` (vCPU `target`; `vcpus` of
/// the slots in `power` exist): the vCPU to start, or the PSCI error —
/// INVALID_PARAMETERS for a vCPU the VM does not have, ALREADY_ON / ON_PENDING, and
/// INVALID_ADDRESS when the entry point is not in the VM's RAM (`entry_in_ram`).
pub fn psci_cpu_on(
    power: &[Power],
    vcpus: u64,
    target: u64,
    entry_in_ram: bool,
) -> Result<usize, i32> {
    let t = match usize::try_from(target) {
        Ok(t) if target < vcpus && t < power.len() => t,
        _ => return Err(arm_vcpu::smccc::ret::INVALID_PARAMETERS),
    };
    match power[t] {
        Power::On => Err(arm_vcpu::smccc::ret::ALREADY_ON),
        Power::OnPending => Err(arm_vcpu::smccc::ret::ON_PENDING),
        Power::Off if !entry_in_ram => Err(arm_vcpu::smccc::ret::INVALID_ADDRESS),
        Power::Off => Ok(t),
    }
}

/// PSCI AFFINITY_INFO of MPIDR `target`: its power state (ON 0, OFF 1, ON_PENDING 2),
/// or INVALID_PARAMETERS for a vCPU the VM does not have.
pub fn psci_affinity_info(power: &[Power], vcpus: u64, target: u64) -> i32 {
    match usize::try_from(target) {
        Ok(t) if target < vcpus && t < power.len() => power[t] as i32,
        _ => arm_vcpu::smccc::ret::INVALID_PARAMETERS,
    }
}

/// Turns on EL2 virtualization on core 0 and sets up the physical GIC for guests whose
/// interrupts all arrive through list registers.
pub fn enable_core0() -> Result<Aarch64PerCpu, &'static str> {
    let mut percpu = crate::firmware::percpu(0);
    percpu
        .hardware_enable()
        .map_err(|_| "hardware_enable failed")?;
    gic::init_distributor();
    gic::init_cpu_for_virtual_guests(0);
    Ok(percpu)
}

/// Makes the vCPUs of one virtual-mode Linux VM: same stage 2 (VMID 1), same virtual
/// counter offset (taken at creation, so the guest's count starts near 0), entry point
/// and DTB; the virtual timer is the guest's, WFI exits so an idle vCPU gives way.
pub struct VCpuMaker {
    stage2: Stage2Config,
    cntvoff_el2: u64,
    entry: u64,
    dtb: u64,
}

impl VCpuMaker {
    pub fn new(mem: &GuestMemory, entry: u64, dtb: u64) -> Self {
        Self {
            stage2: Stage2Config::new(mem.root_pa(), 1, memory::IPA_BITS, memory::ROOT_LEVEL),
            cntvoff_el2: arm_vcpu::physical_count(),
            entry,
            dtb,
        }
    }

    /// Replaces unbound vCPU `i` by a new one restored from its snapshot's bytes (the
    /// old one is destroyed), with the VM's `CNTVOFF_EL2` again: all vCPUs of a VM
    /// share one offset. Returns the snapshot's size in bytes.
    pub fn snapshot_restore(&self, vcpu: &mut Aarch64VCpu, i: u64) -> Result<usize, &'static str> {
        use arm_vcpu::snapshot::Snapshot;
        let snap = vcpu.snapshot().map_err(|_| "snapshot() failed")?;
        let mut bytes = alloc::vec![0u8; Snapshot::MAX_BYTES];
        let n = snap.to_bytes(&mut bytes).map_err(|_| "to_bytes failed")?;
        let back = Snapshot::from_bytes(&bytes[..n]).map_err(|_| "from_bytes failed")?;
        let mut new = self.make(i)?;
        new.restore(&back).map_err(|_| "restore failed")?;
        new.set_reg(
            arm_vcpu::reg::Reg::Sys(arm_vcpu::reg::CNTVOFF_EL2),
            self.cntvoff_el2 as u128,
        )
        .map_err(|_| "CNTVOFF_EL2")?;
        *vcpu = new;
        Ok(n)
    }

    /// vCPU `i` (MPIDR `i`), ready to bind.
    pub fn make(&self, i: u64) -> Result<Aarch64VCpu, &'static str> {
        let mut v = Aarch64VCpu::new(
            Aarch64VCpuCreateConfig::default()
                .with_mpidr_el1(i)
                .with_cntvoff_el2(self.cntvoff_el2)
                .with_dtb_addr(self.dtb),
        )
        .map_err(|_| "vcpu create")?;
        v.setup(
            Aarch64VCpuSetupConfig::default()
                .with_passthrough_timer(true)
                .with_trap_wfi(true),
        )
        .map_err(|_| "vcpu setup")?;
        v.set_stage2_root(self.stage2).map_err(|_| "stage-2 root")?;
        v.set_entry(self.entry).map_err(|_| "entry")?;
        Ok(v)
    }
}

/// Sleeps the core after a vCPU's trapped WFI, when nothing is queued for any vCPU it
/// could run. A trapped WFI means the guest had no pending virtual interrupt; anything
/// raised since (a timer, an SGI, console input) is a pending physical interrupt, which
/// ends WFI although the host runs with interrupts masked, and makes the next entry
/// exit at once to deliver it.
pub fn sleep_after_guest_wfi() {
    // SAFETY: DSB and WFI only wait; no state of the host changes.
    unsafe { core::arch::asm!("dsb sy", "wfi", options(nostack, preserves_flags)) };
}

/// Answers the exits of a virtual-mode Linux vCPU (`me`) that no device handles: an
/// HVC outside SMCCC's owners gets NOT_SUPPORTED (-1); an abort outside RAM and the
/// devices is injected back into the guest, as a bus error would be. Anything else
/// ends the VM with the returned reason.
pub fn answer_rest(
    vcpu: &mut Aarch64VCpu,
    me: usize,
    exit: arm_vcpu::VCpuResult<VmExit>,
    stats: &mut ExitStats,
) -> Result<(), &'static str> {
    match exit {
        Ok(VmExit::Hypercall { .. }) => {
            stats.hypercall += 1;
            vcpu.set_return_value(u64::MAX);
        }
        // An injection that fails would leave the guest at the faulting instruction,
        // to fault again forever: end the VM instead. (AArch32 EL0 is injectable too.)
        Ok(VmExit::DataAbort { va, write, .. }) => {
            stats.abort += 1;
            if let Err(e) = vcpu.inject_data_abort(va, write) {
                error!(
                    "vCPU {}: inject_data_abort: {} at pc {:#x}",
                    me,
                    e,
                    vcpu.pc()
                );
                return Err("inject_data_abort");
            }
        }
        Ok(VmExit::InstructionAbort { va, .. }) => {
            stats.abort += 1;
            if let Err(e) = vcpu.inject_instruction_abort(va) {
                error!(
                    "vCPU {}: inject_instruction_abort: {} at pc {:#x}",
                    me,
                    e,
                    vcpu.pc()
                );
                return Err("inject_instruction_abort");
            }
        }
        Ok(other) => {
            stats.other += 1;
            error!(
                "vCPU {}: unexpected exit {:?} at pc {:#x}",
                me,
                other,
                vcpu.pc()
            );
            return Err("unexpected exit");
        }
        Err(e) => {
            error!("vCPU {}: run: {}", me, e);
            return Err("run() returned an error");
        }
    }
    Ok(())
}

/// Emulated GIC and console of one VM.
pub struct Platform {
    pub vgic: VGic,
    pub uart: Pl011,
    /// Per vCPU and EL1 timer ([`TIMER_INTIDS`]): its interrupt arrived while the
    /// guest had the PPI disabled (the physical PPI stays active until it is delivered,
    /// linked, and deactivated — or found low when the guest enables it).
    timer_held: [[bool; 2]; 2],
    /// The console was accessed or got input since the last `deliveries` call.
    uart_touched: bool,
    /// The real UART feeding `uart`.
    input: crate::console::HostInput,
    /// Interrupts to deliver.
    pending: Vec<Delivery>,
}

impl Platform {
    pub fn new(vcpus: usize) -> Self {
        Self {
            vgic: VGic::new(vcpus),
            uart: Pl011::default(),
            timer_held: [[false; 2]; 2],
            uart_touched: false,
            input: Default::default(),
            pending: Vec::new(),
        }
    }

    /// Moves bytes waiting on the real UART into the console's receive FIFO
    /// (`HostInput`; its interrupt wakes the two-core runner, which routes it to core 0).
    pub fn poll_input(&mut self) {
        if self.input.pull(&mut self.uart) {
            self.uart_touched = true;
        }
    }

    /// A guest MMIO read; unknown addresses read as zero.
    pub fn mmio_read(&mut self, addr: u64, width: AccessWidth, stats: &mut ExitStats) -> u64 {
        stats.mmio_read += 1;
        let w = width.bytes();
        if (GICD_BASE..GICD_BASE + GICD_SIZE).contains(&addr) {
            self.vgic.gicd_read(addr - GICD_BASE, w)
        } else if let Some((r, off)) = addr
            .checked_sub(GICR_BASE)
            .and_then(|o| self.vgic.gicr_locate(o))
        {
            self.vgic.gicr_read(r, off, w)
        } else if (CONSOLE_IPA..CONSOLE_IPA + 0x1000).contains(&addr) {
            stats.console += 1;
            self.uart_touched = true;
            self.uart.read(addr - CONSOLE_IPA) as u64
        } else {
            0
        }
    }

    /// A guest MMIO write; unknown addresses ignore it.
    pub fn mmio_write(&mut self, addr: u64, width: AccessWidth, data: u64, stats: &mut ExitStats) {
        stats.mmio_write += 1;
        let w = width.bytes();
        let pending = &mut self.pending;
        let mut out = |d: Delivery| pending.push(d);
        if (GICD_BASE..GICD_BASE + GICD_SIZE).contains(&addr) {
            self.vgic.gicd_write(addr - GICD_BASE, w, data, &mut out);
        } else if let Some((r, off)) = addr
            .checked_sub(GICR_BASE)
            .and_then(|o| self.vgic.gicr_locate(o))
        {
            self.vgic.gicr_write(r, off, w, data, &mut out);
        } else if (CONSOLE_IPA..CONSOLE_IPA + 0x1000).contains(&addr) {
            stats.console += 1;
            self.uart_touched = true;
            if let Some(b) = self.uart.write(addr - CONSOLE_IPA, data as u32) {
                crate::console::putc(b);
            }
        }
    }

    /// vCPU `me` wrote an SGI register: make the SGI pending on every target.
    pub fn send_sgi(
        &mut self,
        me: usize,
        request: &SgiRequest,
        vcpus: usize,
        stats: &mut ExitStats,
    ) {
        stats.sgi += 1;
        for v in 0..vcpus {
            // An SGI reaches a target only where it is configured in the group the
            // register generates (ICC_SGI0R/ASGI1R: Group 0 in a one-Security-state VM).
            let intid = request.intid as u32;
            if request.targets.includes(v as u64, me as u64)
                && self.vgic.is_group1(v, intid) == request.group1
            {
                if let Some(d) = self.vgic.raise(v, intid, None) {
                    self.pending.push(d);
                }
            }
        }
    }

    /// A physical interrupt taken while vCPU `me` ran (acknowledged here). The EL1
    /// timers' PPIs (virtual 27, physical 30) get only a priority drop and are
    /// delivered linked to the physical ones; the host's own interrupts are ended.
    /// Returns the INTID (1023: spurious).
    pub fn physical_irq(&mut self, me: usize, stats: &mut ExitStats) -> u32 {
        stats.irq += 1;
        let intid = gic::ack();
        if intid >= 1020 {
            return intid;
        }
        gic::eoi(intid);
        if let Some(t) = timer_index(intid) {
            match self.vgic.raise(me, intid, Some(intid)) {
                Some(d) => self.pending.push(d),
                None => {
                    if let Some(h) = self.timer_held.get_mut(me) {
                        h[t] = true;
                    }
                }
            }
        } else {
            gic::deactivate(intid);
        }
        intid
    }

    /// What to inject, and where, after an exit of vCPU `me`: what the exit raised,
    /// plus the console's interrupt while its line is high.
    pub fn deliveries(&mut self, me: usize) -> Vec<Injection> {
        if core::mem::take(&mut self.uart_touched) && self.uart.irq_level() {
            if let Some(d) = self.vgic.raise(me, uart_intid(), None) {
                self.pending.push(d);
            }
        }
        let mut out = Vec::new();
        for d in core::mem::take(&mut self.pending) {
            let mut vi = d.vi;
            let mut resample = false;
            if let (Some(t), Some(h)) = (timer_index(vi.intid), self.timer_held.get_mut(d.vcpu)) {
                if h[t] && vi.hw_intid.is_none() {
                    // Released after the guest enabled the PPI: keep the physical link,
                    // and sample the line again before injecting.
                    h[t] = false;
                    vi.hw_intid = Some(vi.intid);
                    resample = true;
                }
            }
            out.push(Injection {
                vcpu: d.vcpu,
                vi,
                resample,
            });
        }
        out
    }
}
