//! `sysoff` (4 vCPUs on 2 physical cores, time-sliced): vCPU 0 starts vCPUs 1, 2 and
//! 3 with PSCI CPU_ON, one after the other; each spins once started. The last one
//! started (vCPU 3) waits until it sees all four running, then calls PSCI SYSTEM_OFF
//! while the others still spin. That must end the VM (and the run) at once, from the
//! last-started vCPU, whatever core it runs on; the guest never EXITs. The host checks
//! the SYSTEM_OFF came from vCPU 3 with the other three on.
#![no_std]
#![no_main]

use core::ptr::{addr_of_mut, read_volatile, write_volatile};

use guests::hvc;
use guests::rt::{Checks, Entry};

guests::guest_main!("sysoff", main);

const CPU_ON_64: u64 = 0xC400_0003;
const SYSTEM_OFF: u64 = 0x8400_0008;
const VCPUS: usize = 4;

/// Set by each vCPU once it runs (the MMU is off: Device memory, no caching).
static mut STARTED: [u64; VCPUS] = [0; VCPUS];
/// Spin counts, so each vCPU keeps doing something the host must stop.
static mut SPINS: [u64; VCPUS] = [0; VCPUS];

/// Stacks of vCPUs 1..3.
#[repr(C, align(16))]
struct Stacks([[u8; 8192]; VCPUS]);
#[no_mangle]
static mut SYSOFF_STACKS: Stacks = Stacks([[0; 8192]; VCPUS]);

core::arch::global_asm!(
    ".section .text, \"ax\"",
    ".global sysoff_secondary_entry",
    ".balign 4",
    "sysoff_secondary_entry:",
    // x0 = context ID = the vCPU's index: stack i, the shared EL1 vectors.
    "    adrp x9, SYSOFF_STACKS",
    "    add x9, x9, :lo12:SYSOFF_STACKS",
    "    add x10, x0, #1",
    "    lsl x10, x10, #13",
    "    add x9, x9, x10",
    "    mov sp, x9",
    "    adrp x9, guest_vectors",
    "    add x9, x9, :lo12:guest_vectors",
    "    msr vbar_el1, x9",
    "    isb",
    "    bl sysoff_secondary_rust",
    "1:  wfe",
    "    b 1b",
);

extern "C" {
    fn sysoff_secondary_entry();
}

fn load(p: *const u64) -> u64 {
    // SAFETY: `p` points into the statics above; volatile because other vCPUs write
    // them concurrently (aligned 64-bit accesses are single-copy atomic).
    unsafe { read_volatile(p) }
}

fn store(p: *mut u64, v: u64) {
    // SAFETY: as in `load`.
    unsafe { write_volatile(p, v) }
}

fn started(i: usize) -> *mut u64 {
    // SAFETY: only the address is taken; `i` < VCPUS at every call.
    unsafe { addr_of_mut!(STARTED[i]) }
}

fn spins(i: usize) -> *mut u64 {
    // SAFETY: as in `started`.
    unsafe { addr_of_mut!(SPINS[i]) }
}

/// Spins forever (the host must stop it), counting.
fn spin(i: usize) -> ! {
    let mut n = 0u64;
    loop {
        n = n.wrapping_add(1);
        store(spins(i), n);
    }
}

/// vCPUs 1..3, entered through `sysoff_secondary_entry` with x0 = their index.
#[no_mangle]
extern "C" fn sysoff_secondary_rust(me: u64) -> ! {
    let me = (me as usize).min(VCPUS - 1);
    store(started(me), 1);
    if me == VCPUS - 1 {
        // The last one started: everyone must be running (and spinning) first.
        while (0..VCPUS).any(|i| load(started(i)) == 0) || load(spins(0)) == 0 {
            core::hint::spin_loop();
        }
        guests::println!(
            "guest sysoff: vCPU {} sees all {} running: SYSTEM_OFF",
            me,
            VCPUS
        );
        hvc::call(SYSTEM_OFF, [0; 6]);
        // SYSTEM_OFF returned: the host did not end the VM.
        guests::println!("SYSOFF_GUEST: FAIL SYSTEM_OFF returned");
    }
    spin(me)
}

fn main(c: &mut Checks, _entry: Entry) {
    store(started(0), 1);
    let entry = sysoff_secondary_entry as *const () as u64;
    for i in 1..VCPUS {
        let r = hvc::call(CPU_ON_64, [i as u64, entry, i as u64, 0, 0, 0]);
        if !c.check(r == 0, format_args!("CPU_ON({i}) returned {r:#x}")) {
            // EXIT with the failure: the host fails the run (no SYSTEM_OFF).
            return;
        }
        // The next one only once this one runs (the last started is vCPU 3).
        while load(started(i)) == 0 {
            core::hint::spin_loop();
        }
    }
    spin(0)
}
