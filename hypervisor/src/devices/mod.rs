//! The emulated devices of one VM behind one address map: what an MMIO exit reaches,
//! and which virtual interrupts the devices raise as a result.
//!
//! - `testdev`: the scenario test device and the test guests' two-register console
//!   (the test device itself is lock-free and lives in the VM, `Vm::testdev`: the
//!   exit loop serves it before it takes the VM state lock, see `Core::mmio`);
//! - `pl011`: the PL011 UART an operating system gets as its console, its output on
//!   the real UART (`console`: prefixed lines when several VMs share it), its input
//!   from the real UART when this VM owns the console;
//! - `vgic`: the GICv3 distributor and redistributors of a virtual-mode VM; on a
//!   GICv2 board the GICv2 distributor (`crate::vgicd_v2`) instead, the guest's CPU
//!   interface being the GICV frame mapped at [`GICV2_GICC_IPA`] at stage 2.
//!
//! A passthrough VM's console interrupt is a line of the physical distributor it owns
//! (set/clear pending); its redistributors' `GICR_TYPER.Last` is emulated on trapped
//! RD pages (`platform::gic::TrappedRdPages`).

pub mod console;
pub mod pl011;
pub mod testdev;
pub mod vgic;

use alloc::vec::Vec;

use arm_vcpu::{AccessWidth, SgiRequest, VirtualInterrupt};

use crate::console::HostInput;
use crate::platform::gic::{self, TrappedRdPages, PTIMER_INTID, VTIMER_INTID};
use crate::vgicd_v2::VGicV2;
use console::ConsoleOut;
use pl011::Pl011;
use vgic::{Delivery, VGic, GICD_BASE, GICD_SIZE, GICR_BASE};

/// The guest's GICv2 CPU interface (QEMU virt's GICC address): the host's GICV frame
/// is mapped here at stage 2 (virtual mode and test VMs on a GICv2 board).
pub const GICV2_GICC_IPA: u64 = 0x0801_0000;
/// What of GICV is mapped there: `GICV_CTLR` .. `GICV_DIR` (0x1000).
pub const GICV2_GICC_SIZE: u64 = 0x2000;

pub use testdev::{TestDevice, WidthCounters, WidthCounts, CONSOLE_IPA, TESTDEV_IPA, TESTDEV_SIZE};

/// Size of the console's register page.
pub const CONSOLE_SIZE: u64 = 0x1000;

/// The level-sensitive PPIs the host links to the guest's: the EL1 timers' (virtual
/// 27, physical 30) and the PMU's overflow interrupt (23, `arm_vcpu::pmu`), and their
/// index in per-line state.
pub const TIMER_INTIDS: [u32; 3] = [VTIMER_INTID, PTIMER_INTID, arm_vcpu::pmu::PMU_INTID];

/// Index of a timer PPI in [`TIMER_INTIDS`].
pub fn timer_index(intid: u32) -> Option<usize> {
    TIMER_INTIDS.iter().position(|&t| t == intid)
}

/// One interrupt to inject into vCPU `vcpu` of the VM. `resample`: a level-sensitive
/// timer interrupt that fired while the guest had its PPI disabled, released by the
/// enable; its line is sampled again before it is injected (a level line is never
/// replayed).
#[derive(Clone, Copy, Debug)]
pub struct Injection {
    pub vcpu: usize,
    pub vi: VirtualInterrupt,
    pub resample: bool,
    /// A GICv2 SGI's source CPU (`inject_sgi`).
    pub source_cpu: Option<u8>,
}

/// Which devices a VM has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A scenario's test VM: the test device and the two-register console.
    Test,
    /// An operating system with the emulated GIC (virtual mode).
    Virtual,
    /// An operating system on the physical GIC (passthrough mode).
    Passthrough,
}

/// Device accesses by device, for the statistics (`testdev`: filled in from the
/// vCPUs' counts, `VcpuStats::testdev_reads`/`testdev_writes`, when they are
/// reported).
#[derive(Clone, Copy, Debug, Default)]
pub struct Accesses {
    pub console: u64,
    pub testdev: u64,
    pub gic: u64,
}

/// The devices of one VM.
pub struct Devices {
    kind: Kind,
    uart: Pl011,
    out: ConsoleOut,
    /// The real UART's input, when this VM owns the console.
    input: Option<HostInput>,
    vgic: Option<VGic>,
    /// The GICv2 distributor of a virtual-mode VM on a GICv2 board (boxed: ~2 KiB
    /// inline would push the fields every exit reads beyond the load instructions'
    /// immediate offsets, +5 EL2 instructions on every device exit).
    vgic2: Option<alloc::boxed::Box<VGicV2>>,
    rd_pages: TrappedRdPages,
    /// The console's interrupt (the board UART's line).
    uart_intid: u32,
    /// Passthrough: the level last written to the distributor for the console.
    uart_line: bool,
    /// The console was accessed or got input since the last [`Devices::deliveries`].
    uart_touched: bool,
    /// Per vCPU and EL1 timer ([`TIMER_INTIDS`]): its interrupt arrived while the
    /// guest had the PPI disabled (the physical PPI stays active until it is
    /// delivered, linked, and deactivated — or found low when the guest enables it).
    timer_held: Vec<[bool; TIMER_INTIDS.len()]>,
    /// Interrupts the devices raised, to deliver.
    pending: Vec<Delivery>,
    pub accesses: Accesses,
}

impl Devices {
    /// The devices of a VM called `name` with `vcpus` vCPUs; `prefixed`: its console
    /// lines carry its name; `input`: it owns the real UART's input.
    pub fn new(
        kind: Kind,
        name: &str,
        vcpus: usize,
        prefixed: bool,
        input: bool,
        rd_pages: TrappedRdPages,
    ) -> Self {
        Self {
            kind,
            uart: Pl011::default(),
            out: ConsoleOut::new(name, prefixed),
            input: (input && kind != Kind::Test).then(HostInput::default),
            vgic: (kind == Kind::Virtual && gic::v2().is_none()).then(|| VGic::new(vcpus)),
            // `vm::build` refuses more than 8 vCPUs on a GICv2 first.
            vgic2: if kind == Kind::Virtual && gic::v2().is_some() {
                VGicV2::new(vcpus).ok().map(alloc::boxed::Box::new)
            } else {
                None
            },
            rd_pages,
            uart_intid: uart_intid(),
            uart_line: false,
            uart_touched: false,
            timer_held: alloc::vec![[false; TIMER_INTIDS.len()]; vcpus],
            pending: Vec::new(),
            accesses: Accesses::default(),
        }
    }

    /// A guest read by vCPU `me`; `None`: no device is there. (A test VM's test
    /// device is not here: it is the VM's, served without the lock.) `live`: `me`'s
    /// virtual CPU interface (`Aarch64VCpu::interrupt_states`), for the emulated GIC's
    /// pending and active registers.
    #[inline]
    pub fn read(
        &mut self,
        me: usize,
        addr: u64,
        width: AccessWidth,
        live: vgic::Live,
    ) -> Option<u64> {
        if self.kind == Kind::Test {
            if (CONSOLE_IPA..CONSOLE_IPA + CONSOLE_SIZE).contains(&addr) {
                // FR: the transmit FIFO is never full.
                self.accesses.console += 1;
                return Some(0);
            }
            return None;
        }
        if (CONSOLE_IPA..CONSOLE_IPA + CONSOLE_SIZE).contains(&addr) {
            self.accesses.console += 1;
            self.poll_input();
            self.uart_touched = true;
            let v = u64::from(self.uart.read(addr - CONSOLE_IPA));
            self.reflect_uart_line();
            return Some(v);
        }
        self.gic_read(me, addr, width.bytes(), live)
    }

    /// A guest read in the interrupt controller's frames (emulated distributor and
    /// redistributors, or trapped RD pages); kept out of line, off the test device's
    /// path.
    #[inline(never)]
    fn gic_read(&mut self, me: usize, addr: u64, w: usize, live: vgic::Live) -> Option<u64> {
        if let Some(g) = self.vgic2.as_ref() {
            if (GICD_BASE..GICD_BASE + crate::vgicd_v2::GICD_SIZE).contains(&addr) {
                self.accesses.gic += 1;
                return Some(g.read_live(me, addr - GICD_BASE, w, live));
            }
        } else if let Some(g) = self.vgic.as_mut() {
            if (GICD_BASE..GICD_BASE + GICD_SIZE).contains(&addr) {
                self.accesses.gic += 1;
                return Some(g.gicd_read(addr - GICD_BASE, w, live));
            }
            if let Some((r, off)) = addr.checked_sub(GICR_BASE).and_then(|o| g.gicr_locate(o)) {
                self.accesses.gic += 1;
                // Another vCPU's interface is its own core's to read.
                let live = if r == me { live } else { &vgic::no_live };
                return Some(g.gicr_read(r, off, w, live));
            }
        } else if self.rd_pages.contains(addr) {
            self.accesses.gic += 1;
            return Some(self.rd_pages.read(addr, w));
        }
        None
    }

    /// A guest write by vCPU `me`; `false`: no device is there (see [`Self::read`]).
    #[inline]
    pub fn write(&mut self, me: usize, addr: u64, width: AccessWidth, data: u64) -> bool {
        if (CONSOLE_IPA..CONSOLE_IPA + CONSOLE_SIZE).contains(&addr) {
            self.accesses.console += 1;
            if self.kind == Kind::Test {
                if addr == CONSOLE_IPA {
                    self.out.put(data as u8);
                }
                return true;
            }
            self.uart_touched = true;
            if let Some(b) = self.uart.write(addr - CONSOLE_IPA, data as u32) {
                self.out.put(b);
            }
            self.reflect_uart_line();
            return true;
        }
        if self.kind == Kind::Test {
            return false;
        }
        self.gic_write(me, addr, width.bytes(), data)
    }

    /// A guest write in the interrupt controller's frames (see [`Self::gic_read`]).
    #[inline(never)]
    fn gic_write(&mut self, me: usize, addr: u64, w: usize, data: u64) -> bool {
        let pending = &mut self.pending;
        if let Some(g) = self.vgic2.as_mut() {
            if (GICD_BASE..GICD_BASE + crate::vgicd_v2::GICD_SIZE).contains(&addr) {
                self.accesses.gic += 1;
                g.write(me, addr - GICD_BASE, w, data, &mut |d| pending.push(d));
                return true;
            }
        } else if let Some(g) = self.vgic.as_mut() {
            let mut out = |d: Delivery| pending.push(d);
            if (GICD_BASE..GICD_BASE + GICD_SIZE).contains(&addr) {
                self.accesses.gic += 1;
                g.gicd_write(addr - GICD_BASE, w, data, &mut out);
                return true;
            }
            if let Some((r, off)) = addr.checked_sub(GICR_BASE).and_then(|o| g.gicr_locate(o)) {
                self.accesses.gic += 1;
                g.gicr_write(r, off, w, data, &mut out);
                return true;
            }
        } else if self.rd_pages.contains(addr) {
            self.accesses.gic += 1;
            self.rd_pages.write(addr, w, data);
            return true;
        }
        false
    }

    /// A byte the guest sent through the protocol's PUTC hypercall.
    pub fn putc(&mut self, b: u8) {
        self.out.put(b);
    }

    /// Prints the console's partial line (the guest went quiet or ended).
    pub fn flush_console(&mut self) {
        self.out.flush();
    }

    /// When the console's partial line got its last byte, if there is one.
    pub fn console_quiet_since(&self) -> Option<u64> {
        self.out.quiet_since()
    }

    /// Moves bytes waiting on the real UART into the console's receive FIFO, when
    /// this VM owns the input; whether any arrived.
    pub fn poll_input(&mut self) -> bool {
        let Some(input) = self.input.as_mut() else {
            return false;
        };
        if input.pull(&mut self.uart) {
            self.uart_touched = true;
            self.reflect_uart_line();
            true
        } else {
            false
        }
    }

    /// Passthrough: the console's interrupt line is a pending bit of the physical
    /// distributor the guest owns — set while the line is high (again on each change:
    /// an acknowledge clears a software-set pending state), cleared when it drops.
    fn reflect_uart_line(&mut self) {
        if self.kind != Kind::Passthrough {
            return;
        }
        let level = self.uart.irq_level();
        if level || level != self.uart_line {
            gic::set_spi_pending(self.uart_intid, level);
        }
        self.uart_line = level;
    }

    /// vCPU `me` wrote an SGI register: the SGI becomes pending on every vCPU it
    /// targets (`mpidr(v)`: vCPU v's MPIDR affinity). Without an emulated GIC (test
    /// VMs) it is injected as it is, priority 0xa0.
    pub fn send_sgi(
        &mut self,
        me: usize,
        request: &SgiRequest,
        vcpus: usize,
        mpidr: impl Fn(usize) -> u64,
    ) {
        let sender = mpidr(me);
        for v in 0..vcpus {
            if !request.targets.includes(mpidr(v), sender) {
                continue;
            }
            let intid = u32::from(request.intid);
            match self.vgic.as_mut() {
                // An SGI reaches a target only where it is configured in the group the
                // register generates (ICC_SGI0R/ASGI1R: Group 0 in a one-Security-state
                // VM).
                Some(g) if g.is_group1(v, intid) != request.group1 => {}
                Some(g) => {
                    if let Some(d) = g.raise(v, intid, None) {
                        self.pending.push(d);
                    }
                }
                None => self.pending.push(Delivery {
                    vcpu: v,
                    vi: VirtualInterrupt::new(intid)
                        .with_priority(0xa0)
                        .with_group1(request.group1),
                    source_cpu: None,
                }),
            }
        }
    }

    /// vCPU `me`'s EL1 timer PPI `intid` fired (the physical PPI, acknowledged and
    /// priority-dropped by the host, not deactivated): raised linked to it, or held
    /// (still active) while the guest has the PPI disabled.
    pub fn timer_fired(&mut self, me: usize, intid: u32) {
        let Some(t) = timer_index(intid) else {
            return;
        };
        let raised = match (self.vgic.as_mut(), self.vgic2.as_mut()) {
            (Some(g), _) => Some(g.raise(me, intid, Some(intid))),
            (None, Some(g)) => Some(g.raise(me, intid, Some(intid))),
            (None, None) => None,
        };
        match raised {
            Some(r) => match r {
                Some(d) => self.pending.push(d),
                None => {
                    if let Some(h) = self.timer_held.get_mut(me) {
                        h[t] = true;
                    }
                }
            },
            None => gic::deactivate(intid),
        }
    }

    /// What to inject, and where, after an exit of vCPU `me`: what the devices
    /// raised, plus the console's interrupt while its line is high (virtual mode).
    /// Appended to `out`.
    pub fn deliveries(&mut self, me: usize, out: &mut Vec<Injection>) {
        if core::mem::take(&mut self.uart_touched) && self.uart.irq_level() {
            let d = match (self.vgic.as_mut(), self.vgic2.as_mut()) {
                (Some(g), _) => g.raise(me, self.uart_intid, None),
                (None, Some(g)) => g.raise(me, self.uart_intid, None),
                (None, None) => None,
            };
            if let Some(d) = d {
                self.pending.push(d);
            }
        }
        for d in self.pending.drain(..) {
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
            if vi.intid == self.uart_intid && !self.uart.irq_level() {
                // Released by an enable after the line dropped: a level line is
                // sampled, not replayed.
                continue;
            }
            out.push(Injection {
                vcpu: d.vcpu,
                vi,
                resample,
                source_cpu: d.source_cpu,
            });
        }
    }

    /// Whether anything waits in [`Devices::deliveries`].
    #[inline]
    pub fn has_deliveries(&self) -> bool {
        !self.pending.is_empty() || self.uart_touched
    }
}

/// The console's interrupt: the board UART's line (the device tree's; SPI 1 on QEMU
/// virt), so that the real UART's receive interrupt, routed to the host or (in
/// passthrough) to the guest, and the guest's agree.
pub fn uart_intid() -> u32 {
    crate::platform::board().uart.intid.unwrap_or(33)
}
