//! `perf-check`: counts its own work with `perf_event_open(2)` (the guest kernel's
//! armv8 PMU driver on the virtual PMU): CPU cycles in user space over a loop, the
//! count stopping once the event is disabled, and instructions where the PMU offers
//! them. Prints `PERF_CHECK: PASS cycles=C instructions=I` (I = `none` when the event
//! is not supported) or `PERF_CHECK: FAIL <reason>`; exit status 0 on a pass.
//!
//! A static AArch64 Linux executable with raw system calls (no libc), built by
//! `cargo xtask` for `aarch64-unknown-none-softfloat` and put in the initramfs as
//! `/bin/perf-check`.
#![no_std]
#![no_main]

use core::arch::asm;

const SYS_IOCTL: u64 = 29;
const SYS_WRITE: u64 = 64;
const SYS_READ: u64 = 63;
const SYS_EXIT_GROUP: u64 = 94;
const SYS_PERF_EVENT_OPEN: u64 = 241;

const PERF_TYPE_HARDWARE: u32 = 0;
const PERF_COUNT_HW_CPU_CYCLES: u64 = 0;
const PERF_COUNT_HW_INSTRUCTIONS: u64 = 1;
/// `perf_event_attr` flags: disabled (bit 0), exclude_kernel (5), exclude_hv (6).
const FLAGS: u64 = 1 | 1 << 5 | 1 << 6;
const IOC_ENABLE: u64 = 0x2400;
const IOC_DISABLE: u64 = 0x2401;
const IOC_RESET: u64 = 0x2403;

/// `struct perf_event_attr`, first version (PERF_ATTR_SIZE_VER0 = 64 bytes).
#[repr(C)]
struct Attr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
}

/// A system call with up to five arguments; returns x0.
fn syscall(n: u64, a: [u64; 5]) -> i64 {
    let r: i64;
    // SAFETY: the calls made here only read or write the buffers passed, which live
    // across the call.
    unsafe {
        asm!("svc #0", in("x8") n, inlateout("x0") a[0] as i64 => r, in("x1") a[1],
            in("x2") a[2], in("x3") a[3], in("x4") a[4], options(nostack));
    }
    r
}

fn write(s: &[u8]) {
    syscall(SYS_WRITE, [1, s.as_ptr() as u64, s.len() as u64, 0, 0]);
}

fn write_u64(mut v: u64) {
    let mut b = [0u8; 20];
    let mut i = b.len();
    loop {
        i -= 1;
        b[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    write(&b[i..]);
}

fn exit(code: u64) -> ! {
    loop {
        // exit_group does not return.
        syscall(SYS_EXIT_GROUP, [code, 0, 0, 0, 0]);
    }
}

fn fail(why: &str) -> ! {
    write(b"PERF_CHECK: FAIL ");
    write(why.as_bytes());
    write(b"\n");
    exit(1)
}

/// Opens a disabled user-space-only counter of `config` for this process.
fn open(config: u64) -> i64 {
    let attr = Attr {
        kind: PERF_TYPE_HARDWARE,
        size: core::mem::size_of::<Attr>() as u32,
        config,
        sample_period: 0,
        sample_type: 0,
        read_format: 0,
        flags: FLAGS,
        wakeup_events: 0,
        bp_type: 0,
        config1: 0,
    };
    // pid 0 (this process), cpu -1 (any), no group, no flags.
    syscall(
        SYS_PERF_EVENT_OPEN,
        [&attr as *const Attr as u64, 0, u64::MAX, u64::MAX, 0],
    )
}

fn ioctl(fd: i64, req: u64) {
    if syscall(SYS_IOCTL, [fd as u64, req, 0, 0, 0]) != 0 {
        fail("ioctl on the perf event failed");
    }
}

fn read(fd: i64) -> u64 {
    let mut v = 0u64;
    if syscall(SYS_READ, [fd as u64, &mut v as *mut u64 as u64, 8, 0, 0]) != 8 {
        fail("read of the perf event failed");
    }
    v
}

fn work(n: u64) {
    // SAFETY: a register-only loop.
    unsafe {
        asm!("1: subs {0}, {0}, #1", "b.ne 1b", inout(reg) n.max(1) => _, options(nomem, nostack))
    };
}

/// Counts `config` over a loop of `n` iterations; `None` if the event cannot be opened.
fn count(config: u64, n: u64) -> Option<u64> {
    let fd = open(config);
    if fd < 0 {
        return None;
    }
    ioctl(fd, IOC_RESET);
    ioctl(fd, IOC_ENABLE);
    work(n);
    ioctl(fd, IOC_DISABLE);
    let v = read(fd);
    work(n);
    if read(fd) != v {
        fail("the count moved while the event was disabled");
    }
    Some(v)
}

#[no_mangle]
extern "C" fn _start() -> ! {
    const N: u64 = 1_000_000;
    let Some(cycles) = count(PERF_COUNT_HW_CPU_CYCLES, N) else {
        fail("perf_event_open(PERF_COUNT_HW_CPU_CYCLES) failed: no PMU?");
    };
    if cycles == 0 {
        fail("0 cycles counted over the loop");
    }
    let insns = count(PERF_COUNT_HW_INSTRUCTIONS, N);
    if let Some(i) = insns {
        if i < 2 * N {
            fail("fewer instructions counted than the loop has");
        }
    }
    write(b"PERF_CHECK: PASS cycles=");
    write_u64(cycles);
    write(b" instructions=");
    match insns {
        Some(i) => write_u64(i),
        None => write(b"none"),
    }
    write(b"\n");
    exit(0)
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    fail("panic")
}
