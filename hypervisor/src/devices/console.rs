//! A VM's console output on the real UART. With one VM, bytes go straight through;
//! with several, each VM's output is gathered into lines and every line is printed
//! whole with the VM's name in front (`[linux0] ...`), so lines of VMs running at the
//! same time on different cores never interleave. A partial line (a shell's prompt)
//! is printed once the VM has been quiet for a while (the scheduler asks,
//! [`ConsoleOut::quiet_since`]).

use alloc::string::String;
use alloc::vec::Vec;

/// Longest line kept before it is printed anyway.
const MAX_LINE: usize = 512;

/// One VM's console output.
pub struct ConsoleOut {
    /// `[name] `, when lines are told apart.
    prefix: Option<String>,
    line: Vec<u8>,
    /// Physical count at the last byte of a partial line.
    last: u64,
}

impl ConsoleOut {
    /// Output for a VM called `name`; `prefixed`: several VMs share the UART.
    pub fn new(name: &str, prefixed: bool) -> Self {
        Self {
            prefix: prefixed.then(|| alloc::format!("[{name}] ")),
            line: Vec::new(),
            last: 0,
        }
    }

    /// One byte the guest sent.
    pub fn put(&mut self, b: u8) {
        if self.prefix.is_none() {
            crate::console::putc(b);
            return;
        }
        if b == b'\r' {
            return;
        }
        self.line.push(b);
        if b == b'\n' || self.line.len() >= MAX_LINE {
            self.flush();
        } else {
            self.last = arm_vcpu::physical_count();
        }
    }

    /// When the partial line got its last byte, if there is one.
    pub fn quiet_since(&self) -> Option<u64> {
        (!self.line.is_empty()).then_some(self.last)
    }

    /// Prints what is gathered of the current line (the guest went quiet, or ended:
    /// a prompt without a newline is shown).
    pub fn flush(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let prefix = self.prefix.as_deref().unwrap_or("");
        if self.line.last() != Some(&b'\n') {
            self.line.push(b'\n');
        }
        crate::console::write_line(prefix, &self.line);
        self.line.clear();
    }
}
