//! Console output through the emulated PL011 (every access is an MMIO exit).

use core::fmt;

use crate::mmio;

/// PL011 data register.
pub const UART_DR: u64 = 0x0900_0000;
/// PL011 flag register (reads 0 = "TX FIFO not full").
pub const UART_FR: u64 = 0x0900_0018;

/// Writes one byte to the PL011 data register (a 32-bit store).
///
/// The flag register is not polled: the emulated UART never reports a full FIFO,
/// and each poll would cost another exit.
#[inline]
pub fn putc(byte: u8) {
    mmio::write32(UART_DR, u64::from(byte));
}

/// Writes a string byte by byte.
pub fn puts(s: &str) {
    for b in s.bytes() {
        putc(b);
    }
}

/// [`fmt::Write`] over [`putc`].
pub struct Console;

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        puts(s);
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    // Console::write_str never fails.
    let _ = fmt::Write::write_fmt(&mut Console, args);
}

/// Prints to the guest console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::_print(format_args!($($arg)*)) };
}

/// Prints a line to the guest console.
#[macro_export]
macro_rules! println {
    () => { $crate::console::putc(b'\n') };
    ($($arg:tt)*) => {{
        $crate::console::_print(format_args!($($arg)*));
        $crate::console::putc(b'\n');
    }};
}
