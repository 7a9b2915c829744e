//! The real PL011 UART (the board's, from its device tree), the logger, and run
//! endings.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicUsize, Ordering};
use spin::Mutex;

/// The real UART's base (`platform::discover` sets it; 0 until then: output before
/// discovery goes to the semihosting console, see [`semihost_write`]).
static UART: AtomicUsize = AtomicUsize::new(0);

/// Points the console at the PL011 at `base`.
pub fn set_base(base: usize) {
    UART.store(base, Ordering::Release);
}

/// Writes `s` on the semihosting console (SYS_WRITEC per byte: QEMU's stderr), for
/// what must be said before the UART is known.
pub fn semihost_write(s: &str) {
    for b in s.bytes() {
        let c = b;
        // SAFETY: semihosting SYS_WRITEC (0x03) reads the byte x1 points to; QEMU runs
        // with semihosting enabled (docs/test-protocol.md).
        unsafe {
            core::arch::asm!("hlt #0xf000", inout("x0") 0x03u64 => _, in("x1") &c as *const u8, options(nostack))
        };
    }
}
/// UARTFR (flag register) and its TXFF (transmit FIFO full) bit.
const UARTFR: usize = 0x18;
const FR_TXFF: u32 = 1 << 5;

static LOCK: Mutex<()> = Mutex::new(());

/// Writes one byte to the real UART, waiting while its FIFO is full.
pub fn putc(c: u8) {
    let base = UART.load(Ordering::Acquire);
    if base == 0 {
        semihost_write(core::str::from_utf8(&[c]).unwrap_or("?"));
        return;
    }
    // SAFETY: the board's PL011 (device tree), mapped as Device memory by the boot page
    // table (0..1 GiB); DR and FR are 32-bit registers.
    unsafe {
        while core::ptr::read_volatile((base + UARTFR) as *const u32) & FR_TXFF != 0 {}
        core::ptr::write_volatile(base as *mut u32, c as u32);
    }
}

/// A byte from the real UART's receive FIFO, if one is waiting (UARTFR.RXFE clear).
pub fn try_getc() -> Option<u8> {
    const FR_RXFE: u32 = 1 << 4;
    let base = UART.load(Ordering::Acquire);
    if base == 0 {
        return None;
    }
    // SAFETY: the board's PL011, Device memory; reading DR pops one byte.
    unsafe {
        if core::ptr::read_volatile((base + UARTFR) as *const u32) & FR_RXFE != 0 {
            return None;
        }
        Some(core::ptr::read_volatile(base as *const u32) as u8)
    }
}

/// Turns the real UART's receive interrupts on or off: UARTIMSC (offset 0x38) RXIM
/// [4] and RTIM [6]; the other sources stay masked. QEMU's PL011 raises RX at the
/// first byte, and its line is the one the device tree gives (SPI 1, INTID 33, on
/// QEMU virt).
pub fn set_rx_interrupt(on: bool) {
    const UARTIMSC: usize = 0x38;
    let mask: u32 = if on { (1 << 4) | (1 << 6) } else { 0 };
    let base = UART.load(Ordering::Acquire);
    if base == 0 {
        return;
    }
    // SAFETY: the board's PL011, Device memory; the host uses no other UART interrupt
    // source.
    unsafe { core::ptr::write_volatile((base + UARTIMSC) as *mut u32, mask) }
}

/// The real UART as the input of an emulated PL011.
///
/// While the emulated receive FIFO has room, the real UART's receive interrupt is on:
/// its line (SPI 33) is the one the guest's device tree gives the emulated PL011, and
/// the host can route it to itself, so input wakes an idle vCPU and the guest's reads
/// of the emulated UART (exits) bring the bytes over. With the FIFO full it is off, so
/// a guest that stopped reading is not stormed by a line it cannot clear.
#[derive(Default)]
pub struct HostInput {
    /// The receive interrupt is on (`set_rx_interrupt`).
    rx_irq: bool,
}

impl HostInput {
    /// Moves bytes waiting on the real UART into `uart`'s receive FIFO; whether any
    /// arrived.
    pub fn pull(&mut self, uart: &mut crate::devices::pl011::Pl011) -> bool {
        let mut any = false;
        while uart.can_receive() {
            match try_getc() {
                Some(b) => {
                    uart.receive(b);
                    any = true;
                }
                None => break,
            }
        }
        let room = uart.can_receive();
        if room != self.rx_irq {
            set_rx_interrupt(room);
            self.rx_irq = room;
        }
        any
    }
}

struct Uart;

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                putc(b'\r');
            }
            putc(b);
        }
        Ok(())
    }
}

/// Prints `prefix` and `line` (which ends with a newline) as one piece, so lines of
/// VMs on different cores do not interleave.
pub fn write_line(prefix: &str, line: &[u8]) {
    let _guard = LOCK.lock();
    for &b in prefix.as_bytes().iter().chain(line) {
        if b == b'\n' {
            putc(b'\r');
        }
        putc(b);
    }
}

/// Prints formatted text on the real UART.
pub fn print(args: fmt::Arguments) {
    let _guard = LOCK.lock();
    let _ = Uart.write_fmt(args);
}

#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}

struct Logger;

impl log::Log for Logger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        print(format_args!(
            "[refhv {:5}] {}\n",
            record.level(),
            record.args()
        ));
    }
    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

/// Installs the logger.
pub fn init_logging() {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
}

/// Ends the run: semihosting SYS_EXIT with `code` (QEMU exits with it). Without
/// semihosting, falls back to PSCI SYSTEM_OFF through the firmware (status 0: the
/// runner also requires the PASS marker, so a failure still fails).
pub fn exit(code: u8) -> ! {
    let block: [u64; 2] = [0x20026, code as u64];
    // SAFETY: the semihosting call reads the two-word block and ends the emulator.
    unsafe {
        core::arch::asm!("hlt #0xf000", in("x0") 0x18u64, in("x1") block.as_ptr(), options(nostack));
    }
    let _ = crate::platform::firmware::system_off();
    loop {
        core::hint::spin_loop();
    }
}
