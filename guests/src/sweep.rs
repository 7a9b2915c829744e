//! The register sweep (`sweep`, `sweep-isolation`; docs/test-protocol.md): every MRS and
//! every MSR encoding with op0 = 2 and 3 (op1 0–7, CRn 0–15, CRm 0–15, op2 0–7, 32768
//! each) executed at EL1 and compared with the crate's register inventory
//! ([`crate::inventory`], generated from `arm_vcpu::sysreg`).
//!
//! How: every encoding gets a 16-byte stub in RAM (`MRS X0, <enc>; RET; MSR <enc>,
//! X1; RET`), written once and made visible to instruction fetch once; the sweep calls
//! each stub with `BLR`. An UNDEFINED (or any synchronous exception) raised in the stub
//! area is caught by the sweep's vectors (asm/sweep.S), which record ESR_EL1 and resume
//! at the stub's RET. The MRS pass runs first; the MSR pass then writes back the value
//! each register read (0 for write-only registers), so no write changes the guest's
//! state: SCTLR_EL1, VBAR_EL1 (the sweep's own vectors by then), SPSel, DAIF (all
//! masked throughout), the timers (disabled) and MDSCR_EL1 keep their values; the
//! TVAL views move their compare values by the time between the read and the write
//! (the timers are off); OSLAR_EL1 gets 0 (unlocks). Rows the inventory marks
//! `no_write` are not written, with the reason printed: the SGI generation registers
//! (an exit to the host) and EOIR/DIR (an EOI with nothing active).
//!
//! Checks: an access the inventory says must be UNDEFINED is; an access to a register
//! the host has and the crate handles is not; nothing raises another exception class
//! (EC 0x19/0x1D would reveal SVE/SME); reads of emulated and ID registers have their
//! hidden bits 0 (and the capped ID fields at most their cap); an encoding in no row
//! (EL2/EL3 registers, unallocated) is UNDEFINED. IMPLEMENTATION DEFINED encodings
//! (CRn 11, 15) must be UNDEFINED where HCR_EL2.TIDCP works; QEMU 7.2 does not implement
//! TIDCP, so what they reach is counted and printed, not failed.
//!
//! `sweep-isolation` (two VMs time-sliced on one core, role in x2) then writes a
//! VM-specific pattern into every register the sweep found readable and writable and
//! the inventory allows to hold one (`Row::pattern`), and checks over many VM switches
//! that it still reads its own value; a mismatch names the register and says when the
//! value found is the other VM's. Last, on hosts with FEAT_RAS, each VM asks the host
//! for a virtual SError with its own syndrome while it masks SErrors, waits for VM
//! switches, unmasks it and checks ESR_EL1 (VSESR_EL2 and HCR_EL2.VSE must follow
//! the vCPU).

use core::arch::asm;
use core::fmt;
use core::ptr::{addr_of, addr_of_mut};

use crate::inventory::{self, feature, Exists, Expect, Row, ROWS};
use crate::rt::{Checks, Entry};
use crate::{hvc, print, println, read_sysreg};

crate::global_asm_file!("sweep.S");

extern "C" {
    static mut sweep_stubs: [u32; 0x20000];
    static sweep_vectors: u8;
}

/// Encodings per direction: op0 2..3 × op1 × CRn × CRm × op2.
const N: usize = 2 * 8 * 16 * 16 * 8;
/// What x0 holds before an MRS (a read that does not write x0 is visible).
const POISON: u64 = 0xDEAD_5EE9_DEAD_5EE9;
/// TEST_CALL numbers (docs/test-protocol.md).
const SWITCH_COUNT: u64 = 0x81;
const HOST_FEATURES: u64 = 0x82;
const VIRTUAL_SERROR: u64 = 0x83;
const RENDEZVOUS: u64 = 0x84;

/// Waits until every VM has reached `phase` (TEST_CALL 0x84), so that the VMs' phases
/// overlap and none ends while another still waits for VM switches.
fn rendezvous(phase: u64) {
    while hvc::test_call([RENDEZVOUS, phase, 0, 0, 0, 0]) == 0 {}
}

/// The value each MRS returned (valid where the MRS worked).
static mut VALUES: [u64; N] = [0; N];
/// What each MRS and each MSR did: [`OK`], [`SKIPPED`], or the EC of the exception.
static mut MRS_OUT: [u8; N] = [0; N];
static mut MSR_OUT: [u8; N] = [0; N];
/// The access worked.
const OK: u8 = 0x80;
/// The access was not made (`Row::no_write`).
const SKIPPED: u8 = 0xff;

fn outcome(esr: u64) -> u8 {
    if esr == 0 {
        OK
    } else {
        (esr >> 26) as u8 & 0x3f
    }
}

/// The encoding of index `i` (op0 2/3, op1, CRn, CRm, op2 from the high bits).
#[derive(Clone, Copy)]
struct Enc {
    op0: u32,
    op1: u32,
    crn: u32,
    crm: u32,
    op2: u32,
}

impl Enc {
    fn of(i: usize) -> Self {
        let i = i as u32;
        Self {
            op0: 2 + (i >> 14),
            op1: (i >> 11) & 7,
            crn: (i >> 7) & 0xf,
            crm: (i >> 3) & 0xf,
            op2: i & 7,
        }
    }
    fn key(self) -> u32 {
        inventory::key(self.op0, self.op1, self.crn, self.crm, self.op2)
    }
    fn fields(self) -> u32 {
        (self.op0 << 19) | (self.op1 << 16) | (self.crn << 12) | (self.crm << 8) | (self.op2 << 5)
    }
}

impl fmt::Display for Enc {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "S{}_{}_C{}_C{}_{}",
            self.op0, self.op1, self.crn, self.crm, self.op2
        )
    }
}

/// The row covering `key` (binary search; the rows are sorted and disjoint).
fn row(key: u32) -> Option<&'static Row> {
    let i = ROWS.partition_point(|r| r.last < key);
    ROWS.get(i).filter(|r| r.first <= key)
}

fn stub(i: usize) -> u64 {
    addr_of!(sweep_stubs) as u64 + 16 * i as u64
}

/// Writes every stub and makes them visible to instruction fetch.
fn build_stubs() {
    const RET: u32 = 0xd65f_03c0;
    // SAFETY: the stub area belongs to this module; nothing executes from it while it
    // is written (single core). Volatile: the writes must happen before the IC below.
    unsafe {
        let base = addr_of_mut!(sweep_stubs) as *mut u32;
        for i in 0..N {
            let f = Enc::of(i).fields();
            base.add(4 * i).write_volatile(0xd520_0000 | f); // MRS X0, <enc>
            base.add(4 * i + 1).write_volatile(RET);
            base.add(4 * i + 2).write_volatile(0xd500_0001 | f); // MSR <enc>, X1
            base.add(4 * i + 3).write_volatile(RET);
        }
        asm!(
            "dsb ish",
            "ic iallu",
            "dsb ish",
            "isb",
            options(nostack, preserves_flags)
        );
    }
}

/// Runs the stub at `addr` with x0 = POISON, x1 = `value`; returns x0 and the ESR_EL1 of
/// the exception it raised (0: none).
fn call(addr: u64, value: u64) -> (u64, u64) {
    let (v, esr): (u64, u64);
    // SAFETY: the stub is one MRS or MSR and a RET; the sweep's vectors (installed by
    // `run`) resume after any synchronous exception it raises, changing only x14..x17.
    // Every register the MSR pass writes gets the value it read, so the writes do not
    // change this program's state (see the module documentation); flags may change.
    unsafe {
        asm!(
            "mov x17, xzr",
            "blr {a}",
            a = in(reg) addr,
            inout("x0") POISON => v,
            in("x1") value,
            out("x14") _,
            out("x15") _,
            out("x16") _,
            out("x17") esr,
            out("x30") _,
        );
    }
    (v, esr)
}

fn read(i: usize) -> (u64, u64) {
    call(stub(i), 0)
}

fn write(i: usize, v: u64) -> u64 {
    call(stub(i) + 8, v).1
}

/// What the guest must see for one access.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Undef,
    Access,
    /// IMPLEMENTATION DEFINED (HCR_EL2.TIDCP): counted.
    Either,
    /// A register the architecture requires but QEMU 7.2 does not implement: UNDEFINED
    /// there by itself, before any trap to EL2. Counted and named.
    AccessOrMissing,
}

/// Debug registers the base architecture requires (DDI 0487 D2, "AArch64 self-hosted
/// debug") that QEMU 7.2 does not implement: an access to one is UNDEFINED at EL1 there,
/// before `MDCR_EL2.TDA` could trap it. The sweep accepts UNDEFINED for these and names
/// them; a host that implements them must let the crate answer them.
const MISSING_IN_QEMU_7_2: &[&str] = &[
    "OSDTRRX_EL1",
    "OSDTRTX_EL1",
    "OSECCR_EL1",
    "DBGPRCR_EL1",
    "DBGCLAIMSET_EL1",
    "DBGCLAIMCLR_EL1",
    "DBGAUTHSTATUS_EL1",
    "DBGDTR_EL0",
    "DBGDTRRX_EL0 (MRS) / DBGDTRTX_EL0 (MSR)",
];

/// Whether an encoding is in the ID space of FEAT_IDST (op0 3, op1 0/1/3, CRn 0, CRm
/// 0..7): with ID_AA64MMFR2_EL1.IDS = 1 an UNDEFINED access there is reported with EC
/// 0x18 instead of 0x00.
fn in_idst_space(e: Enc) -> bool {
    e.op0 == 3 && matches!(e.op1, 0 | 1 | 3) && e.crn == 0 && e.crm <= 7
}

struct Host {
    features: u64,
    dfr0: u64,
    /// The VM's PMU event counters (`PMCR_EL0.N`), if its view shows a PMU.
    pmu_counters: Option<u64>,
}

impl Host {
    fn has(&self, f: u8) -> bool {
        self.features & (1 << f) != 0
    }
    fn exists(&self, e: Exists) -> bool {
        match e {
            Exists::Always => true,
            Exists::Feat(f) => self.has(f),
            Exists::Breakpoint(n) => u64::from(n) <= (self.dfr0 >> 12) & 0xf,
            Exists::Watchpoint(n) => u64::from(n) <= (self.dfr0 >> 20) & 0xf,
        }
    }
    /// What an access of `e`'s kind to encoding `at` (sort key) must give.
    fn want(&self, e: Expect, exists: bool, at: u32) -> Want {
        // A PMU event counter's number: CRm[1:0] * 8 + op2.
        let counter = u64::from((at >> 3) & 3) * 8 + u64::from(at & 7);
        match e {
            Expect::Pmu if exists && self.pmu_counters.is_some() => Want::Access,
            Expect::PmuCounter if exists && self.pmu_counters.is_some_and(|n| counter < n) => {
                Want::Access
            }
            Expect::Pmu | Expect::PmuCounter => Want::Undef,
            Expect::Undef => Want::Undef,
            Expect::Access if exists => Want::Access,
            Expect::Access => Want::Undef,
            Expect::AccessWithout(f) if exists && !self.has(f) => Want::Access,
            Expect::AccessWithout(_) => Want::Undef,
            Expect::Tidcp => Want::Either,
        }
    }
}

#[derive(Default)]
struct Counts {
    mrs_ok: u64,
    mrs_undef: u64,
    msr_ok: u64,
    msr_undef: u64,
    msr_skipped: u64,
    other: u64,
    impdef_reached: u64,
    /// UNDEFINED ID-space reads reported with EC 0x18 (FEAT_IDST).
    idst: u64,
    /// Accesses to registers QEMU 7.2 does not implement.
    missing: u64,
    /// The VM's ID view has FEAT_IDST (ID_AA64MMFR2_EL1.IDS != 0).
    idst_view: bool,
}

fn describe(ec: u8) -> &'static str {
    match ec {
        0x00 => "UNDEFINED",
        0x07 => "an FP/SIMD trap",
        0x18 => "a System register trap to EL1",
        0x19 => "an SVE trap",
        0x1d => "an SME trap",
        _ => "another exception",
    }
}

fn check_access(
    c: &mut Checks,
    n: &mut Counts,
    e: Enc,
    name: &str,
    dir: &str,
    want: Want,
    out: u8,
) {
    // FEAT_IDST: an UNDEFINED ID-space MRS made by the hardware itself reports EC 0x18.
    let out = if n.idst_view && out == 0x18 && dir == "MRS" && in_idst_space(e) {
        n.idst += 1;
        0
    } else {
        out
    };
    match (want, out) {
        (_, SKIPPED) => {}
        (Want::Either, OK) => {
            n.impdef_reached += 1;
            if n.impdef_reached <= 24 {
                println!("guest sweep: IMPLEMENTATION DEFINED {dir} {e} works");
            }
        }
        (Want::AccessOrMissing, 0) => n.missing += 1,
        (Want::AccessOrMissing, OK) => {}
        (Want::Undef, OK) => c.fail(format_args!(
            "{dir} {name} ({e}): works, but must be UNDEFINED"
        )),
        (Want::Access, 0) => c.fail(format_args!(
            "{dir} {name} ({e}): UNDEFINED, but the host has it and the crate handles it"
        )),
        (_, OK | 0) => {}
        (w, ec) => {
            n.other += 1;
            c.fail(format_args!(
                "{dir} {name} ({e}): {} (EC {ec:#x}), expected {}",
                describe(ec),
                if matches!(w, Want::Access | Want::AccessOrMissing) {
                    "it to work"
                } else {
                    "UNDEFINED"
                }
            ));
        }
    }
}

/// The host's features (TEST_CALL 0x82) and the VM's ID_AA64DFR0_EL1.
fn host() -> Host {
    let dfr0 = read_sysreg!("S3_0_C0_C5_0");
    // PMUVer [11:8] in the VM's view: then PMCR_EL0 exists (N [15:11]).
    let pmu_counters =
        ((dfr0 >> 8) & 0xf != 0).then(|| (read_sysreg!("S3_3_C9_C12_0") >> 11) & 0x1f);
    Host {
        features: hvc::test_call([HOST_FEATURES, 0, 0, 0, 0, 0]),
        dfr0,
        pmu_counters,
    }
}

fn switches() -> u64 {
    hvc::test_call([SWITCH_COUNT, 0, 0, 0, 0, 0])
}

/// The sweep of one VM: both passes and the checks. Returns the host.
fn sweep(c: &mut Checks, tag: &str) -> Host {
    let h = host();
    print!("guest {tag}: host features:");
    for (i, name) in inventory::FEATURE_NAMES.iter().enumerate() {
        if h.has(i as u8) {
            print!(" {name},");
        }
    }
    println!();
    // FP/SIMD registers (FPCR, FPSR) need CPACR_EL1.FPEN = 0b11 (lazily loaded at EL2).
    // SAFETY: enabling FP/SIMD at EL1/EL0 changes no memory; this soft-float program
    // uses no FP/SIMD register itself.
    unsafe { asm!("msr cpacr_el1, {0}", "isb", in(reg) 3u64 << 20, options(nostack)) };
    build_stubs();
    // SAFETY: the sweep's vector table is a valid one (asm/sweep.S); everything it does
    // not expect goes to the runtime's report, as with the runtime's vectors.
    unsafe {
        asm!(
            "msr vbar_el1, {0}",
            "isb",
            in(reg) addr_of!(sweep_vectors) as u64,
            options(nostack)
        )
    };
    let mut n = Counts {
        // ID_AA64MMFR2_EL1.IDS [39:36] in the VM's view.
        idst_view: (read_sysreg!("S3_0_C0_C7_2") >> 36) & 0xf != 0,
        ..Counts::default()
    };
    // SAFETY: single-threaded access to this module's statics.
    let (values, mrs_out, msr_out) = unsafe {
        (
            &mut *addr_of_mut!(VALUES),
            &mut *addr_of_mut!(MRS_OUT),
            &mut *addr_of_mut!(MSR_OUT),
        )
    };
    // MRS pass.
    for i in 0..N {
        let (v, esr) = read(i);
        values[i] = v;
        mrs_out[i] = outcome(esr);
        match mrs_out[i] {
            OK => n.mrs_ok += 1,
            0 => n.mrs_undef += 1,
            _ => {}
        }
    }
    // MSR pass: write back what was read (0 where the MRS did not work).
    for i in 0..N {
        if row(Enc::of(i).key()).is_some_and(|r| r.no_write.is_some()) {
            n.msr_skipped += 1;
            msr_out[i] = SKIPPED;
            continue;
        }
        let v = if mrs_out[i] == OK { values[i] } else { 0 };
        msr_out[i] = outcome(write(i, v));
        match msr_out[i] {
            OK => n.msr_ok += 1,
            0 => n.msr_undef += 1,
            _ => {}
        }
    }
    // Compare with the inventory.
    for i in 0..N {
        let e = Enc::of(i);
        let r = row(e.key());
        let (name, mut rd, mut wr, zero) = match r {
            Some(r) => {
                let ex = h.exists(r.exists);
                let at = e.key();
                (
                    r.name,
                    h.want(r.read, ex, at),
                    h.want(r.write, ex, at),
                    r.zero_mask,
                )
            }
            None => ("(no row)", Want::Undef, Want::Undef, 0),
        };
        if MISSING_IN_QEMU_7_2.contains(&name) {
            for w in [&mut rd, &mut wr] {
                if *w == Want::Access {
                    *w = Want::AccessOrMissing;
                }
            }
        }
        check_access(c, &mut n, e, name, "MRS", rd, mrs_out[i]);
        check_access(c, &mut n, e, name, "MSR", wr, msr_out[i]);
        if let (Some(r), OK) = (r, mrs_out[i]) {
            let v = values[i];
            if v & zero != 0 {
                c.fail(format_args!(
                    "MRS {name} ({e}) = {v:#x}: bits {:#x} must read as 0 (hidden or RES0)",
                    v & zero
                ));
            }
            for &(k, lsb, max) in inventory::ID_CAPS {
                if k == e.key() && (v >> lsb) & 0xf > max {
                    c.fail(format_args!(
                        "MRS {name} ({e}) = {v:#x}: field [{}:{lsb}] above {max}",
                        lsb + 3
                    ));
                }
            }
            let _ = r;
        }
        if msr_out[i] == SKIPPED && r.is_some_and(|r| r.first == e.key()) {
            if let Some(why) = r.and_then(|r| r.no_write) {
                println!("guest {tag}: MSR {name} not written: {why}");
            }
        }
    }
    println!(
        "guest {tag}: swept {N} MRS and {N} MSR encodings: MRS {} work / {} UNDEFINED, \
         MSR {} work / {} UNDEFINED / {} not written; {} other exceptions; \
         {} IMPLEMENTATION DEFINED accesses reached (HCR_EL2.TIDCP not implemented by QEMU 7.2); \
         {} UNDEFINED ID-space reads reported as EC 0x18 (FEAT_IDST); \
         {} accesses to debug registers QEMU 7.2 does not implement",
        n.mrs_ok,
        n.mrs_undef,
        n.msr_ok,
        n.msr_undef,
        n.msr_skipped,
        n.other,
        n.impdef_reached,
        n.idst,
        n.missing
    );
    print_classes(tag, mrs_out, msr_out);
    h
}

/// Per inventory class: how many encodings, how many MRS/MSR reached the register.
fn print_classes(tag: &str, mrs: &[u8; N], msr: &[u8; N]) {
    let mut classes: [(&str, u32, u32, u32); 12] = [("", 0, 0, 0); 12];
    let mut used = 0;
    for i in 0..N {
        let e = Enc::of(i);
        let class = row(e.key()).map_or("no row (UNDEFINED)", |r| r.class);
        let k = match classes[..used].iter().position(|x| x.0 == class) {
            Some(k) => k,
            None if used < classes.len() => {
                classes[used].0 = class;
                used += 1;
                used - 1
            }
            None => continue,
        };
        classes[k].1 += 1;
        classes[k].2 += u32::from(mrs[i] == OK);
        classes[k].3 += u32::from(msr[i] == OK);
    }
    for (class, total, r, w) in &classes[..used] {
        println!("guest {tag}:   {class}: {total} encodings, {r} MRS and {w} MSR reached");
    }
}

/// The two-VM checks: patterns across switches, then the virtual SError.
fn isolation(c: &mut Checks, tag: &str, role: usize, h: &Host, iters: u64) {
    const ALT: u64 = 0xAAAA_AAAA_AAAA_AAAA;
    // SAFETY: single-threaded access to this module's statics.
    let (mrs, msr) = unsafe { (&*addr_of!(MRS_OUT), &*addr_of!(MSR_OUT)) };
    struct Held {
        i: usize,
        name: &'static str,
        mine: u64,
        other: u64,
    }
    rendezvous(1);
    let mut held: [Option<Held>; 96] = [const { None }; 96];
    let mut k = 0;
    let mut constant = 0;
    for (i, r) in (0..N).filter_map(|i| row(Enc::of(i).key()).map(|r| (i, r))) {
        if r.pattern == 0 || mrs[i] != OK || msr[i] != OK || r.first != Enc::of(i).key() {
            continue;
        }
        let (a, b) = match (r.pattern & ALT, r.pattern & !ALT) {
            (0, _) | (_, 0) => (r.pattern, 0),
            ab => ab,
        };
        let (mine, other) = if role == 0 { (a, b) } else { (b, a) };
        // How the other VM's pattern reads here, then this VM's own.
        let _ = write(i, other);
        let other_rb = read(i).0;
        let _ = write(i, mine);
        let mine_rb = read(i).0;
        if mine_rb == other_rb {
            constant += 1;
            continue;
        }
        if k < held.len() {
            held[k] = Some(Held {
                i,
                name: r.name,
                mine: mine_rb,
                other: other_rb,
            });
            k += 1;
        }
    }
    println!(
        "guest {tag}: {k} registers hold a VM-specific pattern ({constant} patterned ones \
         read back the same for both VMs and are not checked)"
    );
    if role == 0 {
        print!("guest {tag}: patterned:");
        for hd in held[..k].iter().flatten() {
            print!(" {}", hd.name);
        }
        println!();
    }
    // Both VMs' patterns are in place before either checks.
    rendezvous(2);
    let start = switches();
    let mut failed = [false; 96];
    let mut rounds = 0u64;
    loop {
        rounds += 1;
        for (j, hd) in held[..k].iter().flatten().enumerate() {
            let got = read(hd.i).0;
            if got != hd.mine && !failed[j] {
                failed[j] = true;
                let whose = if got == hd.other {
                    " (the other VM's value)"
                } else {
                    ""
                };
                c.fail(format_args!(
                    "{}: expected {:#x} found {got:#x}{whose}",
                    hd.name, hd.mine
                ));
            }
        }
        if switches() >= start + iters {
            break;
        }
    }
    println!(
        "guest {tag}: patterns checked {rounds} times over {} VM switches",
        switches() - start
    );
    rendezvous(3);
    if !h.has(feature::RAS) {
        println!("guest {tag}: host has no FEAT_RAS: virtual SError syndrome not checked");
        rendezvous(4);
        return;
    }
    // The virtual SError: pending (PSTATE.A masked) across VM switches, with this VM's
    // syndrome (IDS = 1, an IMPLEMENTATION DEFINED ISS).
    let iss: [u64; 2] = [(1 << 24) | 0xA5A5, (1 << 24) | 0x5A5A];
    c.check_eq(
        format_args!("TEST_CALL(0x83) (a virtual SError)"),
        hvc::test_call([VIRTUAL_SERROR, iss[role], 0, 0, 0, 0]),
        0,
    );
    let start = switches();
    while switches() < start + 3 {}
    let esr = take_serror();
    let want = (0x2f << 26) | (1 << 25) | iss[role];
    if esr == 0 {
        c.fail(format_args!(
            "HCR_EL2.VSE: the pending virtual SError was lost across VM switches \
             (expected ESR_EL1 {want:#x})"
        ));
    } else if esr != want {
        let whose = if esr == (0x2f << 26) | (1 << 25) | iss[1 - role] {
            " (the other VM's value)"
        } else {
            ""
        };
        c.fail(format_args!(
            "VSESR_EL2: expected ESR_EL1 {want:#x} found {esr:#x}{whose}"
        ));
    } else {
        println!("guest {tag}: virtual SError ESR_EL1 {esr:#x}, this VM's own");
    }
    // Neither VM ends while the other still waits for switches.
    rendezvous(4);
}

/// Unmasks SErrors for a moment; returns the ESR_EL1 of the one taken (0: none).
fn take_serror() -> u64 {
    let esr: u64;
    // SAFETY: the sweep's SError vector only records ESR_EL1 in x17 and returns.
    unsafe {
        asm!(
            "mov x17, xzr",
            "msr daifclr, #4",
            "isb",
            "nop",
            "nop",
            "msr daifset, #4",
            "isb",
            out("x17") esr,
            options(nostack),
        )
    };
    esr
}

/// `sweep` (one VM) and `sweep-isolation` (two, `two_vms`; role from x2).
pub fn run(c: &mut Checks, entry: Entry, tag: &str, two_vms: bool) {
    let role = (entry.x2 & 1) as usize;
    let h = sweep(c, tag);
    if two_vms {
        isolation(c, tag, role, &h, entry.iters().max(2));
    }
}
