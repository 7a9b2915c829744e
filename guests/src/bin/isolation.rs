//! `isolation`: two VMs (A and B, the same image) share one core, switched by the
//! host's timer; each one fills every register a switch must save and restore with a
//! role-specific pattern and checks, over many switches, that it still finds its own
//! values (docs/test-protocol.md, "Issue 4 additions").
//!
//! Role from x2 at entry (0 = A, 1 = B); x1 = the number of VM switches to survive.
//!
//! 1. Setup: CPACR_EL1.FPEN = 0b11, ICC_IGRPEN1_EL1 = 1, ICC_PMR_EL1, ICC_BPR1_EL1
//!    (on a GICv2 board GICC_CTLR, GICC_PMR, GICC_BPR: `guests::gic`); acknowledge
//!    the VM's own highest-priority interrupt (ICC_IAR1_EL1 / GICC_IAR = 50 / 51) and
//!    leave it active.
//! 2. Patterns: V0..V31, FPCR, FPSR (asm/isolation.S), SP_EL0 and the EL1/EL0 system
//!    registers, written once and then left alone (the target is soft-float: compiled
//!    code never touches the FP/SIMD registers).
//! 3. Rounds until the host's switch count (TEST_CALL 0x81) reaches x1, plus one:
//!    `isolation_hold` loads x0..x30 and SP with round-specific patterns, spins, and
//!    stores them to memory before anything else runs; then every register is compared
//!    in Rust. The first three rounds time a short spin; the others spin for about
//!    three of the host's ~1 ms time slices, so that switches happen while x0..x30/SP
//!    hold their patterns (the final line counts how many did).
//!
//! A mismatch names the register, the value expected and the value found, and says
//! so when the value found is the other VM's pattern. Some registers do not keep
//! what is written on QEMU 7.2 `-cpu max`: AMAIR_EL1, AFSR0_EL1 and AFSR1_EL1 are
//! RAZ/WI there (found at run time, see [`Kind::ImpDef`]); CNTV_CTL_EL0.ISTATUS is
//! read-only (see [`Kind::TimerCtl`]). Every other pattern reads back as written, so
//! nothing is masked.
//!
//! PSTATE.I stays masked from entry to EXIT (nothing writes DAIF).
#![no_std]
#![no_main]

use core::arch::asm;
use core::fmt;

use guests::rt::{Checks, Entry};
use guests::{gic, hvc, println, read_sysreg, sysreg};

guests::guest_main!("isolation", main, x2_argument);

guests::global_asm_file!("isolation.S");

/// Layout shared with asm/isolation.S: V0..V31, then FPCR and FPSR.
#[repr(C, align(16))]
#[derive(Clone, Copy)]
struct FpState {
    v: [u128; 32],
    fpcr: u64,
    fpsr: u64,
}

/// x0..x30 and SP as `isolation_hold` stores them (16-byte aligned: it is the SP).
#[repr(C, align(16))]
#[derive(Clone, Copy)]
struct GprSnap([u64; 32]);

extern "C" {
    /// See asm/isolation.S: x0..x30 = `init`, SP = `snap`, spin on x29's low half,
    /// then x0..x30 and SP stored to `snap`.
    fn isolation_hold(init: *const [u64; 31], snap: *mut GprSnap);
    /// V0..V31, FPCR, FPSR = `*state`.
    fn isolation_fp_load(state: *const FpState);
    /// `*state` = V0..V31, FPCR, FPSR (changes no FP/SIMD register).
    fn isolation_fp_store(state: *mut FpState);
    /// The role-specific VBAR_EL1 values: two equivalent vector tables.
    static isolation_vectors_a: u8;
    static isolation_vectors_b: u8;
}

const ROLE_NAME: [&str; 2] = ["A", "B"];
/// TEST_CALL(x1 = 0x81): the number of VM switches the host has made.
const SWITCH_COUNT: u64 = 0x81;
/// What ICC_IAR1_EL1 must return: the VM's highest-priority pending interrupt.
const ACK_INTID: [u64; 2] = [50, 51];
/// Its priority, the running priority once it is active.
const RUNNING_PRIORITY: [u64; 2] = [0x80, 0x90];
/// The VM's other interrupt, still pending (and lower priority than the active one).
const PENDING_INTID: [u64; 2] = [40, 41];
/// Priority mask: lets both of the VM's interrupts through. QEMU's virtual CPU
/// interface implements 5 priority bits; both values have bits [2:0] clear.
const PMR: [u64; 2] = [0xf0, 0xe8];
/// Binary point (group 1). 3 is the minimum with 5 preemption bits.
const BPR1: [u64; 2] = [3, 4];
/// CPACR_EL1 with FPEN = 0b11 (nothing else).
const CPACR_FPEN: u64 = 0b11 << 20;
/// DAIF: all four masked.
const DAIF_MASKED: u64 = 0xF << 6;
/// Round-independent high nibble of every GPR/V pattern.
const TAG: [u64; 2] = [0xA000_0000_0000_0000, 0xB000_0000_0000_0000];
/// Low half of the GPR patterns.
const LOW: [u64; 2] = [0xA5A5_A5A5, 0x5B5B_5B5B];
/// What the snapshot area holds before `isolation_hold` stores to it.
const POISON: u64 = 0x0BAD_0BAD_0BAD_0BAD;
/// How long a hold of x0..x30/SP lasts (without switches), in milliseconds: three of
/// the host's ~1 ms time slices, so that every hold sees switches.
const HOLD_SLICES: u64 = 3;
/// Spin iterations of the timed rounds at the start (microseconds each).
const CALIBRATION_SPIN: u64 = 1 << 12;
/// Number of timed rounds (the first one also pays for translating the code).
const CALIBRATION_ROUNDS: u64 = 3;
/// Spin if the timing failed (no counter frequency, or a switch in every timed hold).
const DEFAULT_SPIN: u64 = 1 << 20;
/// Upper bound of the spin (x29's low half counts it).
const MAX_SPIN: u64 = 1 << 30;
/// Give up if the host's switch count does not move for this long (seconds).
const STUCK_SECONDS: u64 = 10;

/// `x<k>` in round `round`: 0xT0KK_RRRR_LLLL_LLLL with T = A/B, KK = k, RRRR = the
/// round (low 16 bits), L = the role's low half XOR k * 0x0101_0101.
fn gpr_pattern(role: usize, round: u64, k: u64) -> u64 {
    TAG[role] | (k << 48) | ((round & 0xffff) << 32) | (LOW[role] ^ (k * 0x0101_0101))
}

/// `V<k>`: distinct per role and register.
fn v_pattern(role: usize, k: u64) -> u128 {
    let lo = TAG[role] | 0x0F00_0000_0000_0000 | (k << 48) | (LOW[role] * (k + 1));
    let hi = lo.rotate_left(32) ^ 0x0F0F_0000_0000_F0F0;
    (u128::from(hi) << 64) | u128::from(lo)
}

/// FPCR: A = DN | FZ | RMode 01 (towards +inf), B = DN | RMode 10 (towards -inf).
const FPCR: [u64; 2] = [0x0340_0000, 0x0280_0000];
/// FPSR: A = QC, B = IDC | IXC | UFC | OFC | DZC | IOC.
const FPSR: [u64; 2] = [0x0800_0000, 0x0000_009f];

fn fp_pattern(role: usize) -> FpState {
    let mut s = FpState {
        v: [0; 32],
        fpcr: FPCR[role],
        fpsr: FPSR[role],
    };
    for (k, v) in s.v.iter_mut().enumerate() {
        *v = v_pattern(role, k as u64);
    }
    s
}

/// Writes a system register by name with one `msr`.
macro_rules! write_sysreg {
    ($name:literal, $v:expr) => {{
        let v: u64 = $v;
        // SAFETY: `msr` to an EL1/EL0 register this guest owns (or to its virtual GIC
        // CPU interface); none of them maps memory the compiler uses (the MMU stays
        // off, VBAR_EL1 only ever points at a valid vector table) and PSTATE.I stays
        // masked, so no exception or interrupt can follow from it.
        unsafe {
            asm!(
                concat!("msr ", $name, ", {}"),
                in(reg) v,
                options(nostack, preserves_flags),
            );
        }
    }};
}

fn isb() {
    // SAFETY: `isb` only synchronises the instruction stream.
    unsafe { asm!("isb", options(nomem, nostack, preserves_flags)) };
}

/// How a patterned system register reads back.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Exactly the value written.
    Exact,
    /// IMPLEMENTATION DEFINED register, possibly RAZ/WI (QEMU 7.2 makes AMAIR_EL1,
    /// AFSR0_EL1 and AFSR1_EL1 constant 0): right after the write it must read either
    /// the pattern or 0, and from then on whatever it read then.
    ImpDef,
    /// CNTV_CTL_EL0: ENABLE and IMASK as written, plus ISTATUS (bit 2, read-only) =
    /// "CNTVCT_EL0 >= CNTV_CVAL_EL0", from the VM's own CVAL.
    TimerCtl,
}

/// A register of step 2: written once with `pattern[role]`, then checked every round.
struct SysReg {
    name: &'static str,
    read: fn() -> u64,
    write: fn(u64),
    pattern: [u64; 2],
    kind: Kind,
}

macro_rules! sysreg {
    ($name:literal, $a:expr, $b:expr) => {
        sysreg!($name, $a, $b, Kind::Exact)
    };
    ($name:literal, $a:expr, $b:expr, $kind:expr) => {
        SysReg {
            name: $name,
            read: || read_sysreg!($name),
            write: |v| write_sysreg!($name, v),
            pattern: [$a, $b],
            kind: $kind,
        }
    };
}

/// CNTV_CVAL_EL0: A's is long past (ISTATUS reads 1), B's is far in the future
/// (ISTATUS reads 0), so each VM also sees its own timer condition.
const CNTV_CVAL: [u64; 2] = [0x0000_0000_0000_0a5a, 0x7b00_0000_0000_0b5b];
/// CNTV_CTL_EL0 = ENABLE | IMASK: the timer runs, its interrupt is masked.
const CNTV_CTL: u64 = 0b011;
const CNTV_ISTATUS: u64 = 0b100;

/// TCR_EL1 from its fields, the same for both halves where that keeps it short:
/// T0SZ = T1SZ = `tsz`, IRGN0/1 = ORGN0/1 = `cache`, SH0 = SH1 = `sh`, TG0, TG1, IPS
/// (the MMU stays off, so none of them takes effect).
const fn tcr(tsz: u64, cache: u64, sh: u64, tg0: u64, tg1: u64, ips: u64) -> u64 {
    tsz | cache << 8
        | cache << 10
        | sh << 12
        | tg0 << 14
        | tsz << 16
        | cache << 24
        | cache << 26
        | sh << 28
        | tg1 << 30
        | ips << 32
}

/// The registers of step 2 other than the GPRs, SP_EL1 and the FP/SIMD state, with
/// A's and B's patterns. Every pattern keeps the register's RES0 bits clear and uses
/// valid field encodings; each one reads back as written on QEMU 7.2 `-cpu max`
/// (checked right after the write in every run).
fn sysregs() -> [SysReg; 24] {
    let vbar_a = core::ptr::addr_of!(isolation_vectors_a) as u64;
    let vbar_b = core::ptr::addr_of!(isolation_vectors_b) as u64;
    [
        // Not used as a stack: the guest runs at EL1h (SP_EL1) throughout.
        sysreg!("SP_EL0", 0xA0A0_5050_0000_5E00, 0xB0B0_5050_0000_5E00),
        sysreg!("TPIDR_EL0", 0xAAAA_0000_7D00_E0E0, 0xBBBB_0000_7D00_E0E0),
        sysreg!("TPIDR_EL1", 0xAAAA_1111_7D01_E1E1, 0xBBBB_1111_7D01_E1E1),
        sysreg!("TPIDRRO_EL0", 0xAAAA_2222_7D02_E0E0, 0xBBBB_2222_7D02_E0E0),
        // PROCID is [31:0]; [63:32] are RES0.
        sysreg!("CONTEXTIDR_EL1", 0xAAAA_C1D0, 0xBBBB_C1D0),
        // [10:0] RES0: the tables are 2 KiB aligned.
        sysreg!("VBAR_EL1", vbar_a, vbar_b),
        // Attr7..Attr0, all valid encodings (device nGnRnE/nGnRE/nGRE/GRE, normal
        // NC/WT/WB).
        sysreg!("MAIR_EL1", 0x4404_FF0C_BB08_0044, 0xFF44_0408_0C00_BBAA),
        sysreg!(
            "AMAIR_EL1",
            0x0A11_A11A_0A11_A11A,
            0x0B11_B11B_0B11_B11B,
            Kind::ImpDef
        ),
        // A: 48-bit VA halves, 4K/4K granules, 48-bit IPS, WB inner shareable.
        // B: 39-bit halves, 16K/16K granules, 40-bit IPS, WT outer shareable.
        sysreg!(
            "TCR_EL1",
            tcr(16, 1, 3, 0b00, 0b10, 0b101),
            tcr(25, 2, 2, 0b10, 0b01, 0b010)
        ),
        // ASID [63:48], BADDR (4 KiB aligned), CnP = 0.
        sysreg!("TTBR0_EL1", 0x00A0_0000_4012_3000, 0x00B0_0000_4045_6000),
        sysreg!("TTBR1_EL1", 0x00A1_0000_4078_9000, 0x00B1_0000_40AB_C000),
        // F = 0 format: ATTR [63:56], PA [47:12], NS [9], SH [8:7]; [6:1] RES0.
        sysreg!("PAR_EL1", 0xFF00_0000_4123_4180, 0x4400_0000_4567_8300),
        sysreg!(
            "AFSR0_EL1",
            0x0000_0000_A0A0_F5F0,
            0x0000_0000_B0B0_F5F0,
            Kind::ImpDef
        ),
        sysreg!(
            "AFSR1_EL1",
            0x0000_0000_A1A1_F5F1,
            0x0000_0000_B1B1_F5F1,
            Kind::ImpDef
        ),
        sysreg!("FAR_EL1", 0xFA0A_0000_1234_5678, 0xFA0B_0000_8765_4320),
        // A: EC 0x25 (data abort, same EL), IL, DFSC 0x05. B: EC 0x15 (SVC), IL,
        // imm16 0x0b0b. [63:37] are RES0.
        sysreg!("ESR_EL1", 0x9600_0045, 0x5600_0B0B),
        sysreg!("ELR_EL1", 0xE1E1_A000_4A4A_A004, 0xE1E1_B000_4B4B_B008),
        // A: Z C, DAIF masked, EL1h. B: N V, A F masked, EL0t.
        sysreg!("SPSR_EL1", 0x6000_03C5, 0x9000_0140),
        // Level [3:1] and InD [0] of an existing cache: A = L1 instruction, B = L2.
        sysreg!("CSSELR_EL1", 0b0001, 0b0010),
        // A: EL0PTEN | EL0VTEN | EL0VCTEN | EL0PCTEN, EVNTI = 5 (event stream off).
        // B: EL0VCTEN, EVNTI = 0xa (event stream off).
        sysreg!("CNTKCTL_EL1", 0x353, 0x0a2),
        // Switched lazily with the other debug registers. A: MDE | TDCC. B: KDE (ERR
        // and the other EDSCR save/restore bits are read-only while the OS lock is
        // unlocked). No single-step, no halting debug.
        sysreg!("MDSCR_EL1", 0x9000, 0x2000),
        sysreg!("CNTV_CVAL_EL0", CNTV_CVAL[0], CNTV_CVAL[1]),
        // Written after CNTV_CVAL_EL0 (the order of this table).
        sysreg!("CNTV_CTL_EL0", CNTV_CTL, CNTV_CTL, Kind::TimerCtl),
        // Written in step 1 already; here to be checked every round like the rest.
        sysreg!("CPACR_EL1", CPACR_FPEN, CPACR_FPEN),
    ]
}

/// What the VM's virtual GIC CPU interface state (from step 1, `gic::state`'s order:
/// group enable, priority mask, binary point, running priority, highest pending) must
/// read every round: the VM's own, never the other's.
const GIC_STATE: [[u64; 5]; 2] = [
    [1, PMR[0], BPR1[0], RUNNING_PRIORITY[0], PENDING_INTID[0]],
    [1, PMR[1], BPR1[1], RUNNING_PRIORITY[1], PENDING_INTID[1]],
];

/// The runtime's failure bookkeeping, every message tagged with the VM's role.
struct Report<'a> {
    role: usize,
    c: &'a mut Checks,
}

impl Report<'_> {
    fn fail(&mut self, why: fmt::Arguments) {
        self.c
            .fail(format_args!("[{}] {why}", ROLE_NAME[self.role]));
    }

    /// One register check: `name` found `found`, must be `expected`; `other` is what
    /// the other VM holds there (named in the message if that is what was found).
    fn reg(&mut self, when: &When, name: fmt::Arguments, found: u64, expected: u64, other: u64) {
        if found == expected {
            return;
        }
        let whose = if found == other {
            " (the other VM's value)"
        } else {
            ""
        };
        self.fail(format_args!(
            "{when}: {name}: expected {expected:#018x}, found {found:#018x}{whose}"
        ));
    }
}

/// When a check ran, for the messages.
enum When {
    AfterWrite,
    Round(u64),
    Final(u64),
}

impl fmt::Display for When {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            When::AfterWrite => f.write_str("right after the write"),
            When::Round(r) => write!(f, "round {r}"),
            When::Final(r) => write!(f, "final check (round {r})"),
        }
    }
}

fn main(c: &mut Checks, entry: Entry) {
    if entry.x2 > 1 {
        c.fail(format_args!(
            "x2 at entry = {:#x}: expected the role, 0 (A) or 1 (B)",
            entry.x2
        ));
        return;
    }
    let role = entry.x2 as usize;
    run(&mut Report { role, c }, entry.x1);
}

fn run(rep: &mut Report, target: u64) {
    let role = rep.role;
    let tag = ROLE_NAME[role];

    // Step 1: FP/SIMD on, virtual GIC CPU interface, acknowledge our interrupt.
    write_sysreg!("CPACR_EL1", CPACR_FPEN);
    // ICC_IGRPEN1_EL1, ICC_PMR_EL1, ICC_BPR1_EL1 (GICv2: GICC_CTLR, PMR, BPR).
    gic::enable(PMR[role]);
    gic::set_bpr(BPR1[role]);
    isb();
    let intid = gic::ack(); // ICC_IAR1_EL1 / GICC_IAR
    isb();
    if intid != ACK_INTID[role] {
        rep.fail(format_args!(
            "{:?} acknowledge: expected INTID {}, found {intid}{}",
            gic::interface(),
            ACK_INTID[role],
            if intid == ACK_INTID[1 - role] {
                " (the other VM's interrupt)"
            } else {
                ""
            }
        ));
    }

    // Step 2: patterns. The FP/SIMD state first (the first FP access: a lazy-FP trap).
    let fp = fp_pattern(role);
    // SAFETY: reads 528 bytes from `fp` (16-byte aligned) into V0..V31, FPCR and FPSR,
    // which compiled code never uses (soft-float target); FPEN was enabled above.
    unsafe { isolation_fp_load(&fp) };
    let regs = sysregs();
    for r in &regs {
        (r.write)(r.pattern[role]);
    }
    isb();
    // What each register must read from now on; checked once right away. Nothing is
    // printed before the rounds unless something fails: every console byte is an
    // exit, and a line costs about a time slice.
    let mut expected = [0u64; 24];
    let mut raz_wi = [""; 24];
    let mut raz_wi_count = 0;
    for (r, e) in regs.iter().zip(expected.iter_mut()) {
        let found = (r.read)();
        *e = match r.kind {
            Kind::Exact => r.pattern[role],
            Kind::TimerCtl => timer_ctl_expected(role),
            // Written and read once more, so that a switch right between the write
            // and the read (with a host that zeroes the register) cannot make it look
            // RAZ/WI.
            Kind::ImpDef if found == 0 && rewrite_reads_zero(r, role) => {
                raz_wi[raz_wi_count] = r.name;
                raz_wi_count += 1;
                0
            }
            Kind::ImpDef => r.pattern[role],
        };
        rep.reg(
            &When::AfterWrite,
            format_args!("{}", r.name),
            found,
            *e,
            r.pattern[1 - role],
        );
    }

    // Step 3: rounds until the host has switched `target` times, then one more.
    // The first few rounds use a short spin and time it; the others hold x0..x30/SP
    // for about HOLD_SLICES time slices, so that switches hit them.
    let freq = sysreg::cntfrq();
    let mut round = 0u64;
    let mut held_switches = 0u64;
    let mut fastest = u64::MAX;
    for _ in 0..CALIBRATION_ROUNDS {
        let (elapsed, during) =
            check_round(rep, &When::Round(round), &regs, &expected, CALIBRATION_SPIN);
        held_switches += during;
        // A hold with a switch in it also timed the other VM's slice.
        if during == 0 {
            fastest = fastest.min(elapsed);
        }
        round += 1;
    }
    let hold_ticks = freq * HOLD_SLICES / 1000;
    let spin = if fastest == u64::MAX || hold_ticks == 0 {
        DEFAULT_SPIN
    } else {
        let scaled =
            u128::from(CALIBRATION_SPIN) * u128::from(hold_ticks) / u128::from(fastest.max(1));
        scaled.clamp(u128::from(CALIBRATION_SPIN), MAX_SPIN.into()) as u64
    };

    let mut switches = hvc::k(SWITCH_COUNT);
    let mut last_progress = sysreg::cntvct();
    while switches < target {
        let before = switches;
        let (_, during) = check_round(rep, &When::Round(round), &regs, &expected, spin);
        held_switches += during;
        switches = hvc::k(SWITCH_COUNT);
        let now = sysreg::cntvct();
        if switches != before {
            last_progress = now;
        } else if freq != 0 && now.wrapping_sub(last_progress) > STUCK_SECONDS * freq {
            rep.fail(format_args!(
                "the host's switch count stayed at {switches} for {STUCK_SECONDS} s \
                 (round {round}, target {target})"
            ));
            break;
        }
        round += 1;
    }
    let (_, during) = check_round(rep, &When::Final(round), &regs, &expected, spin);
    held_switches += during;

    println!(
        "guest isolation [{tag}]: role {role}, {} rounds, host switch count {switches} \
         (target {target}), {held_switches} switch(es) while x0..x30/SP held their \
         patterns (spin {spin})",
        round + 1
    );
    for name in &raz_wi[..raz_wi_count] {
        println!(
            "guest isolation [{tag}]: {name} read 0 after the write: RAZ/WI here, \
             checked to stay 0"
        );
    }
    // Not a failure: how many switches hit a hold is up to the host's timing (a VM
    // that starts after the other one has ended sees none at all).
    if held_switches == 0 {
        println!(
            "guest isolation [{tag}]: note: no VM switch happened while x0..x30/SP held \
             their patterns; only the other registers were tested across switches"
        );
    }
}

/// Writes `r`'s pattern again; whether it still reads 0.
fn rewrite_reads_zero(r: &SysReg, role: usize) -> bool {
    (r.write)(r.pattern[role]);
    isb();
    (r.read)() == 0
}

/// CNTV_CTL_EL0 as it must read now: ENABLE | IMASK and ISTATUS from our own CVAL.
fn timer_ctl_expected(role: usize) -> u64 {
    let istatus = if sysreg::cntvct() >= CNTV_CVAL[role] {
        CNTV_ISTATUS
    } else {
        0
    };
    CNTV_CTL | istatus
}

/// One round: hold x0..x30/SP patterns over a spin of `spin` iterations, then check
/// them, the FP/SIMD state, the step-2 registers and the GIC state. Returns the
/// counter ticks the hold took and the switches the host made meanwhile.
fn check_round(
    rep: &mut Report,
    when: &When,
    regs: &[SysReg; 24],
    expected: &[u64; 24],
    spin: u64,
) -> (u64, u64) {
    let role = rep.role;
    let round = match when {
        When::AfterWrite => 0,
        When::Round(r) | When::Final(r) => *r,
    };

    // x0..x30 and SP. The snapshot areas are poisoned first: if SP were not ours,
    // the stores would land elsewhere and the poison would show.
    let mut init = [0u64; 31];
    for (k, v) in init.iter_mut().enumerate() {
        *v = gpr_pattern(role, round, k as u64);
    }
    // x29 is the spin counter: its low half counts down to 0.
    let spin = spin.clamp(1, 0xffff_ffff);
    init[29] = (init[29] & !0xffff_ffff) | spin;
    let mut areas = [GprSnap([POISON; 32]); 2];
    let snap: *mut GprSnap = &mut areas[role];
    let before = hvc::k(SWITCH_COUNT);
    let t0 = sysreg::cntvct();
    // SAFETY: isolation_hold follows the C ABI for the caller (callee-saved registers
    // and SP restored), reads 31 u64s from `init` and writes 32 u64s to `snap`
    // (16-byte aligned, used as its SP meanwhile); nothing else in memory changes
    // except its own saved-SP word. No exception can happen in between (PSTATE.I
    // masked, no faulting access).
    unsafe { isolation_hold(&init, snap) };
    let t1 = sysreg::cntvct();
    let after = hvc::k(SWITCH_COUNT);
    let got = areas[role].0;
    for k in 0..31 {
        let mut want = init[k];
        let mut other = gpr_pattern(1 - role, round, k as u64);
        if k == 29 {
            want &= !0xffff_ffff;
            other &= !0xffff_ffff;
        }
        rep.reg(when, format_args!("x{k}"), got[k], want, other);
    }
    let sp = snap as u64;
    let other_sp = &areas[1 - role] as *const GprSnap as u64;
    rep.reg(when, format_args!("SP (SP_EL1)"), got[31], sp, other_sp);

    // V0..V31, FPCR, FPSR: written once in step 2, never touched since.
    let mut fp = FpState {
        v: [0; 32],
        fpcr: 0,
        fpsr: 0,
    };
    // SAFETY: writes 528 bytes to `fp` (16-byte aligned); changes no FP/SIMD register.
    unsafe { isolation_fp_store(&mut fp) };
    for (k, &found) in fp.v.iter().enumerate() {
        let want = v_pattern(role, k as u64);
        if found != want {
            let whose = if found == v_pattern(1 - role, k as u64) {
                " (the other VM's value)"
            } else {
                ""
            };
            rep.fail(format_args!(
                "{when}: V{k}: expected {want:#034x}, found {found:#034x}{whose}"
            ));
        }
    }
    rep.reg(
        when,
        format_args!("FPCR"),
        fp.fpcr,
        FPCR[role],
        FPCR[1 - role],
    );
    rep.reg(
        when,
        format_args!("FPSR"),
        fp.fpsr,
        FPSR[role],
        FPSR[1 - role],
    );

    // The step-2 system registers.
    for (r, &want) in regs.iter().zip(expected.iter()) {
        let (want, found) = if r.kind == Kind::TimerCtl {
            (timer_ctl_expected(role), (r.read)())
        } else {
            (want, (r.read)())
        };
        let other = if r.kind == Kind::TimerCtl {
            // The other VM's ISTATUS: the opposite of ours (see CNTV_CVAL).
            want ^ CNTV_ISTATUS
        } else {
            r.pattern[1 - role]
        };
        rep.reg(when, format_args!("{}", r.name), found, want, other);
    }

    // The virtual GIC CPU interface (ICC_* or GICC, `gic::state`) and PSTATE.
    for (k, (name, found)) in gic::state().into_iter().enumerate() {
        rep.reg(
            when,
            format_args!("{name}"),
            found,
            GIC_STATE[role][k],
            GIC_STATE[1 - role][k],
        );
    }
    rep.reg(
        when,
        format_args!("DAIF"),
        read_sysreg!("DAIF"),
        DAIF_MASKED,
        DAIF_MASKED,
    );

    (t1.wrapping_sub(t0), after.wrapping_sub(before))
}
