//! `debug-isolation`: two VMs (A and B, the same image) time-sliced on one core, each
//! with its own breakpoints and watchpoints armed, see only their own
//! (docs/test-protocol.md, "Issue 8: guest debug").
//!
//! Role from x2 (0 = A, 1 = B); x1 = the number of VM switches to survive. Each VM
//! arms breakpoint 0 and the last breakpoint on its own words of the code slot and
//! the last watchpoint on its own doubleword, with different values in the same
//! slots as the other VM (A's breakpoint comes after B's in the slot, so an extra
//! breakpoint of B's in A would be hit first, and the other way round). Then, round
//! after round until the host's switch count (TEST_CALL 0x81) reaches x1:
//! the registers read back as written; running four NOPs from the slot with PSTATE.D
//! clear stops exactly at the VM's own breakpoint; a load of the other VM's
//! doubleword is not caught, a load of its own is. Every other round the VM turns
//! MDSCR_EL1 off before asking for the switch count (so a bind in between does not
//! load its state, and the next access loads it on first use) and on again after.
#![no_std]
#![no_main]

use core::ptr::addr_of;

use guests::debug::{self as dbg, Counts};
use guests::rt::{Checks, Entry};
use guests::slot::{self, enc, SlotState, VEC_SYNC_EL1H};
use guests::{hvc, println};

guests::guest_main!("debug-isolation", main, x2_argument);

const ROLE: [&str; 2] = ["A", "B"];
/// TEST_CALL(x1 = 0x81): the number of VM switches the host has made.
const SWITCH_COUNT: u64 = 0x81;
/// Per role: offsets in the slot of the word breakpoint 0 is on, and of the word the
/// last breakpoint is on (checked with breakpoint 0 disabled).
const BP0_WORD: [u64; 2] = [12, 8];
const BPN_WORD: [u64; 2] = [8, 4];
/// Per role: the doubleword the last watchpoint watches.
const WATCH: [usize; 2] = [0, 1];

/// Rounds at most (a bound in case the host never switches).
const MAX_ROUNDS: u64 = 100_000;

#[repr(C, align(16))]
struct Stack([u8; 4096]);
static mut STACK: Stack = Stack([0; 4096]);

#[repr(C, align(16))]
struct Watched([u64; 2]);
static mut WATCHED: Watched = Watched([0xa, 0xb]);

fn watched(i: usize) -> u64 {
    addr_of!(WATCHED) as u64 + 8 * i as u64
}

fn state() -> SlotState {
    SlotState {
        sp: addr_of!(STACK) as u64 + 4096,
        pstate: dbg::EL1H_DEBUG,
        ..Default::default()
    }
}

struct Vm {
    role: usize,
    n: Counts,
    slot: u64,
}

impl Vm {
    fn arm(&self) {
        let r = self.role;
        dbg::set_bvr(0, self.slot + BP0_WORD[r]);
        dbg::set_bcr(0, dbg::BCR_EL1_EL0);
        // The last breakpoint: the same value, disabled until checked on its own.
        dbg::set_bvr(self.n.brps - 1, self.slot + BPN_WORD[r]);
        dbg::set_bcr(self.n.brps - 1, dbg::BCR_EL1_EL0 & !1);
        dbg::set_wvr(self.n.wrps - 1, watched(WATCH[r]));
        dbg::set_wcr(self.n.wrps - 1, dbg::WCR_LOAD);
        dbg::set_mdscr(dbg::MDSCR_MDE | dbg::MDSCR_KDE);
        dbg::isb();
    }

    /// One round of checks; the registers as armed.
    fn check(&self, c: &mut Checks, round: u64) {
        let r = self.role;
        let who = ROLE[r];
        let (bp0, bpn) = (self.slot + BP0_WORD[r], self.slot + BPN_WORD[r]);
        let last_b = self.n.brps - 1;
        let last_w = self.n.wrps - 1;
        for (name, got, want) in [
            ("DBGBVR0_EL1", dbg::bvr(0), bp0),
            ("DBGBCR0_EL1", dbg::bcr(0), dbg::BCR_EL1_EL0),
            ("DBGBVR<last>_EL1", dbg::bvr(last_b), bpn),
            ("DBGWVR<last>_EL1", dbg::wvr(last_w), watched(WATCH[r])),
            ("DBGWCR<last>_EL1", dbg::wcr(last_w), dbg::WCR_LOAD),
            ("MDSCR_EL1", dbg::mdscr(), dbg::MDSCR_MDE | dbg::MDSCR_KDE),
        ] {
            c.check(
                got == want,
                format_args!("VM {who} round {round}: {name}: expected {want:#x}, found {got:#x}"),
            );
        }
        let words = [enc::NOP; 4];
        let got = slot::run(&words, &mut state());
        let own = matches!(got, Some(e) if e.vector == VEC_SYNC_EL1H
            && e.esr == dbg::ESR_BREAKPOINT && e.elr == bp0);
        let other = self.slot + BP0_WORD[1 - r];
        if !own {
            let why = match got {
                Some(e) if e.elr == other || e.elr == self.slot + BPN_WORD[1 - r] => {
                    "a breakpoint of the other VM fired"
                }
                _ => "own breakpoint did not fire",
            };
            c.fail(format_args!(
                "VM {who} round {round}: breakpoint 0: {why}: {} (own at {bp0:#x})",
                slot::describe(&got)
            ));
        }
        // The last breakpoint on its own.
        dbg::set_bcr(0, 0);
        dbg::set_bcr(last_b, dbg::BCR_EL1_EL0);
        dbg::isb();
        let got = slot::run(&words, &mut state());
        if !matches!(got, Some(e) if e.esr == dbg::ESR_BREAKPOINT && e.elr == bpn) {
            c.fail(format_args!(
                "VM {who} round {round}: breakpoint {last_b}: own breakpoint did not fire \
                 where expected: {} (own at {bpn:#x})",
                slot::describe(&got)
            ));
        }
        dbg::set_bcr(last_b, dbg::BCR_EL1_EL0 & !1);
        dbg::set_bcr(0, dbg::BCR_EL1_EL0);
        dbg::isb();
        // Watchpoints: the other VM's doubleword is not watched here, its own is.
        let load = [enc::ldr(1, 0)];
        let mut s = state();
        s.regs[0] = watched(WATCH[1 - r]);
        let got = slot::run(&load, &mut s);
        if got.is_some() {
            c.fail(format_args!(
                "VM {who} round {round}: a watchpoint of the other VM fired: {}",
                slot::describe(&got)
            ));
        }
        let mut s = state();
        s.regs[0] = watched(WATCH[r]);
        let got = slot::run(&load, &mut s);
        if !matches!(got, Some(e) if e.esr == dbg::ESR_WATCHPOINT && e.far == watched(WATCH[r])) {
            c.fail(format_args!(
                "VM {who} round {round}: own watchpoint did not fire: {}",
                slot::describe(&got)
            ));
        }
    }
}

fn main(c: &mut Checks, entry: Entry) {
    let role = (entry.x2 & 1) as usize;
    let target = entry.iters();
    let vm = Vm {
        role,
        n: Counts::read(),
        slot: slot::slot_address(),
    };
    println!(
        "guest debug-isolation [{}]: {} breakpoints, {} watchpoints, switches to survive {}",
        ROLE[role], vm.n.brps, vm.n.wrps, target
    );
    vm.arm();
    let mut round = 0;
    let mut lazy_rounds = 0;
    loop {
        vm.check(c, round);
        let lazy = round % 2 == 1;
        if lazy {
            // Nothing enabled while the host may switch: the bind will not load the
            // state; the MDSCR_EL1 write below is the first use then.
            dbg::set_mdscr(0);
            lazy_rounds += 1;
        }
        // A little time for the host's slice timer.
        for _ in 0..2000 {
            core::hint::spin_loop();
        }
        let switches = hvc::k(SWITCH_COUNT);
        if lazy {
            dbg::set_mdscr(dbg::MDSCR_MDE | dbg::MDSCR_KDE);
            dbg::isb();
        }
        round += 1;
        if switches >= target || round >= MAX_ROUNDS || c.failed() > 20 {
            println!(
                "guest debug-isolation [{}]: {} rounds ({} with MDSCR_EL1 off across the \
                 switch count call), host switch count {}",
                ROLE[role], round, lazy_rounds, switches
            );
            break;
        }
    }
    vm.check(c, round);
    dbg::disarm(&vm.n);
}
