//! Renders the inventory into `docs/registers.md` and the sweep guest's table
//! `guests/src/inventory.rs` (host tests only: a test fails when a committed file
//! differs from what the tables render; `ARM_VCPU_BLESS=1` rewrites them).

use std::fmt::Write;
use std::string::String;

use super::*;
use crate::context::{Gate, Kind, SWITCHED};
use crate::idregs::{self, Rule, VIEW};
use crate::traps::{self, Role, When, BITS};

fn enc(r: SysRegAddr) -> String {
    if r.op0() == 1 {
        format!("S1_{}_C{}_C{}_{}", r.op1(), r.crn(), r.crm(), r.op2())
    } else {
        format!(
            "S{}_{}_C{}_C{}_{}",
            r.op0(),
            r.op1(),
            r.crn(),
            r.crm(),
            r.op2()
        )
    }
}

fn span(r: &SysReg) -> String {
    if key(r.first) == key(r.last) {
        format!("`{}`", enc(r.first))
    } else {
        format!("`{}` – `{}`", enc(r.first), enc(r.last))
    }
}

fn exists(e: Exists) -> String {
    match e {
        Exists::Always => "always".into(),
        Exists::Feat(f) => f.name().into(),
        Exists::Breakpoint(n) => format!("BRPs >= {n}"),
        Exists::Watchpoint(n) => format!("WRPs >= {n}"),
    }
}

fn access(a: Access) -> &'static str {
    match a {
        Access::ReadWrite => "RW",
        Access::ReadOnly => "RO",
        Access::WriteOnly => "WO",
    }
}

fn name_of(a: SysRegAddr) -> String {
    match lookup(a) {
        Some(r) => r.name.into(),
        None => SWITCHED
            .iter()
            .find(|s| s.addr == a)
            .map(|s| s.name.into())
            .unwrap_or_else(|| enc(a)),
    }
}

/// Human description of a treatment.
pub(crate) fn treatment(t: Treatment) -> String {
    match t {
        Treatment::Switched => "switched at bind/unbind".into(),
        Treatment::SwitchedAs(a) => format!("switched as {}", name_of(a)),
        Treatment::Untrappable(Some(id)) => format!(
            "hidden feature, untrappable without FGT: switched; UNDEFINED with {}",
            id.name()
        ),
        Treatment::Untrappable(None) => "hidden feature, untrappable: switched".into(),
        Treatment::LazyFp => "switched lazily (first FP/SIMD use)".into(),
        Treatment::LazyDebug => "switched lazily (debug group: first debug access)".into(),
        Treatment::LazyPauth => "switched lazily (PAuth group: first key or PAC use)".into(),
        Treatment::Vgic => "virtual CPU interface (ICH_* switched)".into(),
        Treatment::PhysTimer => "emulated (switched with `passthrough_timer`)".into(),
        Treatment::Cpacr => "switched; emulated under TCPAC (hidden fields read 0)".into(),
        Treatment::Emulated(e) => format!(
            "trapped, emulated: {}",
            match e {
                Emulation::IdView => "the VM's ID view",
                Emulation::DebugRom => "reads 0 (no ROM table)",
                Emulation::OsLock => "the vCPU's OS lock / power-down state",
                Emulation::Actlr => "0, writes ignored",
                Emulation::HostValue => "the host core's value",
                Emulation::SetWay => "no-op",
            }
        ),
        Treatment::Sgi => "trapped: `VmExit::SendSgi`".into(),
        Treatment::Undef => "UNDEFINED".into(),
        Treatment::Hidden => "hidden in the ID view, trapped: UNDEFINED".into(),
        Treatment::LazyPmu => "default: hidden, trapped: UNDEFINED; with a virtual PMU: switched lazily (first PMU access; PMCR_EL0 always emulated)".into(),
        Treatment::Passthrough(p) => format!(
            "passed through: {}",
            match p {
                Passthrough::ReadOnly => "read-only value, no state",
                Passthrough::Virtualized => "read-only, from the per-VM EL2 value",
                Passthrough::Counter => "counter",
                Passthrough::Pstate => "PSTATE (switched every exit in SPSR_EL2)",
                Passthrough::Random => "random number",
                Passthrough::InterruptStatus => "pending virtual interrupts",
            }
        ),
    }
}

/// The class of a row, for the summaries.
pub(crate) fn class(r: &SysReg) -> &'static str {
    match r.treat {
        Treatment::Switched | Treatment::SwitchedAs(_) | Treatment::Cpacr => "switched",
        Treatment::Untrappable(_) => "untrappable (switched / FGT)",
        Treatment::LazyFp => "switched lazily",
        Treatment::LazyDebug => "switched lazily (debug)",
        Treatment::LazyPauth => "switched lazily (PAuth)",
        Treatment::Vgic => "virtual CPU interface",
        Treatment::PhysTimer | Treatment::Emulated(_) | Treatment::Sgi => "trapped, emulated",
        Treatment::Undef if r.group == Group::Impdef => "IMPLEMENTATION DEFINED (TIDCP)",
        Treatment::Undef => "UNDEFINED",
        Treatment::Hidden => "hidden + trapped",
        Treatment::LazyPmu => "hidden, or switched lazily (PMU)",
        Treatment::Passthrough(_) => "passed through",
    }
}

fn when(w: When) -> String {
    match w {
        When::Always => "always".into(),
        When::Feat(f) => f.name().into(),
        When::Both(a, b) => format!("{} and {}", a.name(), b.name()),
        When::Any(fs) => fs
            .iter()
            .map(|f| f.name())
            .collect::<std::vec::Vec<_>>()
            .join(" or "),
        When::Setup(f) => format!("setup: {f:?}"),
        When::NotSetup(f) => format!("setup: not {f:?}"),
        When::FpTrapped => "FP/SIMD not loaded yet (lazy)".into(),
        When::SetupFeat(s, f) => format!("setup: {s:?}, and {}", f.name()),
    }
}

/// The AArch32 EL0 coprocessor accesses that reach EL2 (`aarch32::REGISTERS`).
fn aarch32_section(w: &mut String) {
    use crate::aarch32::{self, Direction, Encoding, Treatment as T32};
    let _ = writeln!(
        w,
        "\n## AArch32 EL0\n\nCoprocessor accesses from AArch32 EL0 that reach EL2 under the \
         crate's traps (`aarch32::REGISTERS`; the first matching row wins). Everything else \
         from AArch32 EL0 that traps is UNDEFINED into AArch32 EL0 (`VBAR_EL1 + 0x600`). \
         A host test checks each row's trap against `traps::BITS` and its AArch64 \
         counterpart's row above.\n\n\
         | encoding | register | access | treatment | trap |\n|---|---|---|---|---|"
    );
    for r in aarch32::REGISTERS.iter() {
        let e = match r.encoding {
            Encoding::Cp32 {
                cp,
                opc1,
                crn,
                crm,
                opc2,
            } => {
                format!("`p{cp}, {opc1}, c{crn}, c{crm}, {opc2}`")
            }
            Encoding::Cp64 { cp, opc1, crm } => format!("`p{cp}, {opc1}, c{crm}` (64-bit)"),
            Encoding::Cp32Group {
                cp,
                opc1,
                crn,
                crm,
                opc2,
            } => format!(
                "`p{cp}, {}-{}, c{crn}, c{}-c{}, {}-{}`",
                opc1.0, opc1.1, crm.0, crm.1, opc2.0, opc2.1
            ),
            Encoding::LdcStc => "LDC/STC `p14, c5`".into(),
        };
        let t = match r.treatment {
            T32::Emulated(aarch32::Emulation::Timer(reg)) => {
                format!("emulated with {}", name_of(reg))
            }
            T32::Emulated(e) => format!("emulated ({e:?})"),
            T32::Undef => "UNDEFINED".into(),
        };
        let _ = writeln!(
            w,
            "| {e} | {} | {} | {t} | `{}` |",
            r.name,
            match r.direction {
                Direction::Read => "RO",
                Direction::ReadWrite => "RW",
            },
            r.trap.trap_id().name()
        );
    }
}

/// `docs/registers.md`.
pub(crate) fn docs_page() -> String {
    let mut o = String::new();
    let w = &mut o;
    let _ = writeln!(
        w,
        "# Register inventory\n\n\
<!-- GENERATED from arm_vcpu/src/sysreg, traps.rs, idregs.rs and context.rs by the host\n\
     test `tests::inventory::generated_files_are_current`; do not edit. After changing\n\
     a table run `ARM_VCPU_BLESS=1 cargo test -p arm-vcpu-el2 generated_files`. -->\n\n\
Every System register (and trapped System instruction) an AArch64 EL0/EL1 guest can\n\
name, what the crate does with it, and the EL2 controls behind that. One table in the\n\
crate (`arm_vcpu::sysreg::INVENTORY`) is read by the code and the tests alike: the trap\n\
composition (`traps::BITS`), the ID view (`idregs::VIEW`) and the bind/unbind switch list\n\
(`context::SWITCHED`) are checked against it by host tests, and the `sweep` scenarios run\n\
every MRS/MSR encoding in a VM against it. An encoding in no row (EL2/EL3 registers,\n\
unallocated encodings) is UNDEFINED for the guest. What AArch32 EL0 reaches\n\
(`aarch32::REGISTERS`) is listed at the end, checked against these rows.\n\n\
Treatments:\n\n\
- **switched**: loaded at bind, saved at unbind (never on an exit);\n\
- **switched lazily**: FP/SIMD, loaded on the first use after bind; the self-hosted debug\n  \
registers (`crate::debug`), trapped by `MDCR_EL2.TDA` until the first access after bind\n  \
loads them (or at bind when `MDSCR_EL1` enables debug exceptions), saved at unbind;\n\
- **untrappable**: a register of a feature the VM does not see that nothing but FEAT_FGT\n  \
can trap: switched on hosts that have it, and trapped (UNDEFINED) where FEAT_FGT exists;\n\
- **trapped, emulated**: answered inside the crate;\n\
- **hidden**: the feature reads as absent in the ID view and its registers trap: UNDEFINED;\n\
- **UNDEFINED**: trapped by the named control, or UNDEFINED at EL1 by itself;\n\
- **passed through**: no guest state of its own (read-only values, counters, PSTATE).\n"
    );
    // Summary.
    let mut counts: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for r in INVENTORY {
        let k = class(r);
        let e = counts.entry(k).or_default();
        e.0 += 1;
        e.1 += (key(r.last) - key(r.first) + 1) as usize;
    }
    let _ = writeln!(
        w,
        "## Summary\n\n| treatment | rows | encodings |\n|---|---|---|"
    );
    for (k, (rows, encs)) in &counts {
        let _ = writeln!(w, "| {k} | {rows} | {encs} |");
    }
    let _ = writeln!(w);
    // Per group.
    let mut groups: std::vec::Vec<Group> = INVENTORY.iter().map(|r| r.group).collect();
    groups.sort();
    groups.dedup();
    for g in groups {
        let _ = writeln!(
            w,
            "## {}\n\n| encoding | register | exists | access | treatment | trap |\n|---|---|---|---|---|---|",
            g.title()
        );
        for r in INVENTORY.iter().filter(|r| r.group == g) {
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {} |",
                span(r),
                r.name,
                exists(r.exists),
                access(r.access),
                treatment(r.treat),
                r.trap.map_or("—".into(), |t| format!("`{}`", t.name())),
            );
        }
        let _ = writeln!(w);
    }
    // Features.
    let view = idregs::IdRegisters::sanitized(&host_with_everything(), true, 52);
    let _ = writeln!(
        w,
        "## Features\n\nWhat the host's ID registers say, and what a VM sees of it (on a host \
         that has everything; pointer authentication is visible where its keys are switched, \
         i.e. on every host that has it).\n\n| feature | condition | in the VM's view |\n|---|---|---|"
    );
    for f in FEATURES {
        let seen = match f {
            Feature::VgicApr1 | Feature::VgicApr3 => "as the virtual CPU interface offers".into(),
            _ if f.present(view.values()) => "visible".into(),
            _ => std::string::String::from("hidden"),
        };
        let _ = writeln!(w, "| {} | {} | {} |", f.name(), f.condition(), seen);
    }
    let _ = writeln!(
        w,
        "\n## ID view\n\nFields of the host's ID registers the VM does not see as the host has \
         them (`idregs::VIEW`); `ID_AA64MMFR0_EL1.PARange` follows the VM's IPA size.\n\n\
         | field | bits | rule | why |\n|---|---|---|---|"
    );
    for f in VIEW {
        let bits = if f.width >= 64 {
            "[63:0]".into()
        } else {
            format!("[{}:{}]", f.lsb + f.width - 1, f.lsb)
        };
        let rule = match f.rule {
            Rule::Hide => "0".into(),
            Rule::Cap(m) => format!("at most {m}"),
            Rule::HideUnlessPauth => "0 unless the PAuth keys are switched".into(),
            Rule::HideWithoutAarch32El0 => "0 with `hide_aarch32_el0`".into(),
            Rule::CapWithoutAarch32El0(m) => format!("at most {m} with `hide_aarch32_el0`"),
            Rule::ShownWithPmu => format!(
                "0 unless the setup gives a PMU: then at most {}",
                crate::pmu::PMUVER_SHOWN_MAX
            ),
        };
        let _ = writeln!(w, "| {} | {} | {} | {} |", f.name, bits, rule, f.why);
    }
    aarch32_section(w);
    let _ = writeln!(
        w,
        "\n## EL2 controls\n\nEvery bit the crate sets in a guest's EL2 controls, or leaves clear \
         to trap (`traps::BITS`), composed at bind from the core's features and the vCPU's \
         setup. The fine-grained trap registers are written 0 at bind (every \"n\" trap on, \
         every positive trap off); `HCRX_EL2` is 0 except what the ID view offers.\n\n\
         | register | bits | when | role | field | why |\n|---|---|---|---|---|---|"
    );
    for b in BITS {
        let role = match b.role {
            Role::Trap(_) => "trap (set)",
            Role::TrapWhenClear(_) => "trap (left 0)",
            Role::Control => "control",
            Role::Res1 => "RES1",
        };
        let _ = writeln!(
            w,
            "| {} | `{:#x}` | {} | {} | {} | {} |",
            b.ctl.name(),
            b.mask,
            when(b.when),
            role,
            b.name,
            b.why
        );
    }
    let _ = writeln!(
        w,
        "| MDCR_EL2 | `0x9f` | always | host | HPMN, HPME | the host's counter partition (with a virtual PMU: HPMN = its counters) and the host's enable of its own counters |\n"
    );
    let _ = writeln!(
        w,
        "## Switch list\n\nWhat `bind` loads and `unbind` saves, in this order \
         (`context::SWITCHED`); `MDSCR_EL1` is set to 0 after it (emulated), a pending \
         `HCR_EL2.VSE` is saved with it, and the virtual CPU interface (GICv3 `ICH_*_EL2` or \
         the GICv2 GICH frame, only the list registers the empty bitmap marks occupied) \
         and FP/SIMD state are switched apart.\n\n| # | register | encoding | moves | on hosts with |\n|---|---|---|---|---|"
    );
    for (i, s) in SWITCHED.iter().enumerate() {
        let kind = match s.kind {
            Kind::Rw => "load + save",
            Kind::Ctl => "load (per-VM EL2 control, unless the core holds it)",
            Kind::Entry => "load at every bind (EL2 control; unbind gives it back to the host)",
            Kind::VcpuCtl => "load (per-vCPU EL2 control)",
            Kind::Lazy => "lazy: load on first use after bind, save if loaded",
            Kind::TimerCtl => "load + save, then 0",
        };
        let gate = match s.gate {
            Gate::Always => "all".into(),
            Gate::Feat(f) => std::string::String::from(f.name()),
        };
        let _ = writeln!(
            w,
            "| {} | {} | `{}` | {} | {} |",
            i + 1,
            s.name,
            enc(s.addr),
            kind,
            gate
        );
    }
    o
}

fn expect_src(e: Expect, r: &SysReg) -> String {
    match e {
        Expect::Undef => "Expect::Undef".into(),
        Expect::Access => "Expect::Access".into(),
        Expect::Tidcp => "Expect::Tidcp".into(),
        Expect::Pmu => "Expect::Pmu".into(),
        Expect::PmuCounter => "Expect::PmuCounter".into(),
        Expect::AccessWithoutFgt => {
            let f = match r.treat {
                Treatment::Untrappable(Some(id)) => {
                    id.location().0.feature().unwrap_or(Feature::Fgt)
                }
                _ => Feature::Fgt,
            };
            format!("Expect::AccessWithout({})", f as u8)
        }
    }
}

/// `guests/src/inventory.rs`.
pub(crate) fn guest_table() -> String {
    let mut o = String::new();
    let w = &mut o;
    let _ = writeln!(
        w,
        "//! The register inventory as the `sweep` guests read it. GENERATED from\n\
//! `arm_vcpu/src/sysreg` by the host test `tests::inventory::generated_files_are_current`;\n\
//! do not edit: after changing the table run\n\
//! `ARM_VCPU_BLESS=1 cargo test -p arm-vcpu-el2 generated_files`.\n\
//!\n\
//! Rows are sorted by [`key`] and do not overlap; an encoding in no row must be\n\
//! UNDEFINED. Feature numbers are `arm_vcpu::sysreg::Feature` bits, as the host reports\n\
//! its features (TEST_CALL 0x82).\n\
#![allow(missing_docs)]\n\
\n\
/// When a register exists on the host.\n\
#[derive(Clone, Copy, Debug, PartialEq, Eq)]\n\
pub enum Exists {{\n    Always,\n    Feat(u8),\n    Breakpoint(u8),\n    Watchpoint(u8),\n}}\n\
\n\
/// What one direction of an access must give the guest.\n\
#[derive(Clone, Copy, Debug, PartialEq, Eq)]\n\
pub enum Expect {{\n    /// UNDEFINED, whatever the host.\n    Undef,\n    /// Accessible where the register exists, UNDEFINED elsewhere.\n    Access,\n    /// Accessible where the register exists and the host lacks feature `n` (whose fine-grained\n    /// trap catches it), UNDEFINED elsewhere.\n    AccessWithout(u8),\n    /// IMPLEMENTATION DEFINED: UNDEFINED where HCR_EL2.TIDCP works.\n    Tidcp,\n    /// A PMU register: accessible where the VM's ID_AA64DFR0_EL1.PMUVer != 0.\n    Pmu,\n    /// A PMU event counter or type, n = CRm[1:0] * 8 + op2: as `Pmu`, for n < PMCR_EL0.N.\n    PmuCounter,\n}}\n\
\n\
/// One row.\n\
#[derive(Clone, Copy, Debug)]\n\
pub struct Row {{\n    pub first: u32,\n    pub last: u32,\n    pub name: &'static str,\n    pub exists: Exists,\n    pub read: Expect,\n    pub write: Expect,\n    /// Bits a read must return as 0.\n    pub zero_mask: u64,\n    /// Bits the two-VM sweep may fill with a VM-specific pattern (0: none).\n    pub pattern: u64,\n    /// Why the sweep must not write it (`None`: write back what was read).\n    pub no_write: Option<&'static str>,\n    /// The crate's treatment, for the summary.\n    pub class: &'static str,\n}}\n\
\n\
/// The sort key of an encoding: (op0, op1, CRn, CRm, op2), most significant first.\n\
pub const fn key(op0: u32, op1: u32, crn: u32, crm: u32, op2: u32) -> u32 {{\n    op0 << 14 | op1 << 11 | crn << 7 | crm << 3 | op2\n}}\n"
    );
    let _ = writeln!(
        w,
        "/// Feature names by bit.\npub const FEATURE_NAMES: [&str; {}] = [",
        FEATURES.len()
    );
    for f in FEATURES {
        let _ = writeln!(w, "    {:?},", f.name());
    }
    let _ = writeln!(
        w,
        "];\n\n/// Feature bits the guest refers to by name.\npub mod feature {{"
    );
    for f in FEATURES {
        let _ = writeln!(
            w,
            "    pub const {}: u8 = {};",
            format!("{f:?}").to_uppercase(),
            f as u8
        );
    }
    let _ = writeln!(
        w,
        "}}\n\n/// The rows.\n#[rustfmt::skip]\npub const ROWS: &[Row] = &["
    );
    for r in INVENTORY {
        let ex = match r.exists {
            Exists::Always => "Exists::Always".into(),
            Exists::Feat(f) => format!("Exists::Feat({})", f as u8),
            Exists::Breakpoint(n) => format!("Exists::Breakpoint({n})"),
            Exists::Watchpoint(n) => format!("Exists::Watchpoint({n})"),
        };
        let zero = match r.value_rule() {
            ValueRule::Any => 0,
            ValueRule::ZeroMask(m) => m,
        };
        let _ = writeln!(
            w,
            "    Row {{ first: {:#07x}, last: {:#07x}, name: {:?}, exists: {}, read: {}, write: {}, zero_mask: {:#x}, pattern: {:#x}, no_write: {:?}, class: {:?} }},",
            key(r.first),
            key(r.last),
            r.name,
            ex,
            expect_src(r.sweep_expect(true), r),
            expect_src(r.sweep_expect(false), r),
            zero,
            r.pattern,
            r.sweep_no_write,
            class(r),
        );
    }
    let _ = writeln!(
        w,
        "];\n\n/// ID fields the view caps: (encoding key, lowest bit, largest value).\npub const ID_CAPS: &[(u32, u32, u64)] = &["
    );
    for f in VIEW {
        if let Rule::Cap(m) = f.rule {
            let _ = writeln!(
                w,
                "    ({:#07x}, {}, {}), // {}",
                key(idregs::encoding(f.reg)),
                f.lsb,
                m,
                f.name
            );
        }
    }
    let _ = writeln!(w, "];");
    let _ = traps::CTLS;
    o
}
