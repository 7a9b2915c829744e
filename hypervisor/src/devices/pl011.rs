//! An emulated PL011 UART (ARM PrimeCell UART, DDI 0183): the guest's console. Output
//! goes to the real UART; input comes from the real UART's receive FIFO, polled by the
//! host. Enough of the programming model for Linux's `amba-pl011` driver and
//! `earlycon`: data, flags, control and interrupt registers and the PrimeCell
//! identification registers. Transmission is instantaneous, so the transmit FIFO is
//! always empty.

use alloc::collections::VecDeque;

/// Register offsets.
mod reg {
    pub const DR: u64 = 0x000;
    pub const RSR: u64 = 0x004;
    pub const FR: u64 = 0x018;
    pub const ILPR: u64 = 0x020;
    pub const IBRD: u64 = 0x024;
    pub const FBRD: u64 = 0x028;
    pub const LCR_H: u64 = 0x02c;
    pub const CR: u64 = 0x030;
    pub const IFLS: u64 = 0x034;
    pub const IMSC: u64 = 0x038;
    pub const RIS: u64 = 0x03c;
    pub const MIS: u64 = 0x040;
    pub const ICR: u64 = 0x044;
    pub const DMACR: u64 = 0x048;
    /// PeriphID0..3 then PCellID0..3.
    pub const ID_START: u64 = 0xfe0;
}

/// UARTFR bits: TXFE (7), RXFF (6), TXFF (5), RXFE (4).
const FR_TXFE: u32 = 1 << 7;
const FR_RXFF: u32 = 1 << 6;
const FR_RXFE: u32 = 1 << 4;
/// Interrupt bits (RIS/MIS/IMSC/ICR): RX (4), TX (5), receive timeout (6).
const INT_RX: u32 = 1 << 4;
const INT_TX: u32 = 1 << 5;
const INT_RT: u32 = 1 << 6;
/// PeriphID0..3 (part 0x011, designer ARM, revision 1) and PCellID0..3.
const ID: [u32; 8] = [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1];
/// Receive FIFO depth.
const FIFO: usize = 16;

/// The UART's state.
pub struct Pl011 {
    rx: VecDeque<u8>,
    ibrd: u32,
    fbrd: u32,
    lcr_h: u32,
    cr: u32,
    ifls: u32,
    imsc: u32,
    /// The transmit interrupt is raised when the FIFO drains (always, here) and cleared
    /// by ICR until the next write.
    tx_raw: bool,
    ilpr: u32,
    dmacr: u32,
}

impl Default for Pl011 {
    fn default() -> Self {
        Self {
            rx: VecDeque::new(),
            ibrd: 0,
            fbrd: 0,
            lcr_h: 0,
            // Reset value: TXE and RXE set, UART disabled.
            cr: 0x300,
            ifls: 0x12,
            imsc: 0,
            tx_raw: true,
            ilpr: 0,
            dmacr: 0,
        }
    }
}

impl Pl011 {
    /// Raw interrupt status.
    fn ris(&self) -> u32 {
        let mut r = 0;
        if !self.rx.is_empty() {
            r |= INT_RX | INT_RT;
        }
        if self.tx_raw {
            r |= INT_TX;
        }
        r
    }

    /// Whether the interrupt line is asserted (UARTMIS != 0).
    pub fn irq_level(&self) -> bool {
        self.ris() & self.imsc != 0
    }

    /// A byte arrived on the real UART.
    pub fn receive(&mut self, b: u8) {
        if self.rx.len() < FIFO {
            self.rx.push_back(b);
        }
    }

    /// Whether the receive FIFO has room.
    pub fn can_receive(&self) -> bool {
        self.rx.len() < FIFO
    }

    /// A guest read of `off` (32-bit registers; narrower accesses read the low bits).
    pub fn read(&mut self, off: u64) -> u32 {
        match off {
            reg::DR => self.rx.pop_front().map_or(0, u32::from),
            reg::RSR => 0,
            reg::FR => {
                let mut fr = FR_TXFE;
                if self.rx.is_empty() {
                    fr |= FR_RXFE;
                }
                if self.rx.len() == FIFO {
                    fr |= FR_RXFF;
                }
                fr
            }
            reg::ILPR => self.ilpr,
            reg::IBRD => self.ibrd,
            reg::FBRD => self.fbrd,
            reg::LCR_H => self.lcr_h,
            reg::CR => self.cr,
            reg::IFLS => self.ifls,
            reg::IMSC => self.imsc,
            reg::RIS => self.ris(),
            reg::MIS => self.ris() & self.imsc,
            reg::DMACR => self.dmacr,
            o if (reg::ID_START..reg::ID_START + 0x20).contains(&o) && o % 4 == 0 => {
                ID[((o - reg::ID_START) / 4) as usize]
            }
            _ => 0,
        }
    }

    /// A guest write of `v` to `off`; returns a byte to transmit.
    pub fn write(&mut self, off: u64, v: u32) -> Option<u8> {
        match off {
            reg::DR => {
                // Sent at once; the FIFO is empty again, so TX is raised again.
                self.tx_raw = true;
                return Some(v as u8);
            }
            reg::RSR => {}
            reg::ILPR => self.ilpr = v & 0xff,
            reg::IBRD => self.ibrd = v & 0xffff,
            reg::FBRD => self.fbrd = v & 0x3f,
            reg::LCR_H => self.lcr_h = v & 0xff,
            reg::CR => self.cr = v & 0xffff,
            reg::IFLS => self.ifls = v & 0x3f,
            reg::IMSC => self.imsc = v & 0x7ff,
            // RX and timeout follow the FIFO: they clear when it is read empty.
            reg::ICR if v & INT_TX != 0 => self.tx_raw = false,
            reg::DMACR => self.dmacr = v & 0x7,
            _ => {}
        }
        None
    }
}
