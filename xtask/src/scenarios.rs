//! The one table of QEMU scenarios (see `docs/test-protocol.md`).
//!
//! Everything that runs a scenario (`run`, `test`, `bench`) reads this table:
//! add a scenario here and every command knows it.

use std::time::Duration;

/// What QEMU's loader stages for the hypervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guest {
    /// The test guest ELF named after the scenario (`guests/`), at the staging base.
    TestElf,
    /// Debian's arm64 Linux kernel `Image` at the staging base and the busybox
    /// initramfs at [`crate::linux::INITRD_ADDR`] (files from [`crate::linux::prepare`],
    /// fetched on first use).
    Linux,
    /// Debian's `u-boot.bin` (u-boot-qemu) at the staging base.
    UBoot,
}

/// One scenario of the test protocol. The guest binary has the scenario's name.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Scenario name: `scenario=<name>` in the bootargs, and the guest binary's name.
    pub name: &'static str,
    /// `iters=<n>` handed to the guest by `cargo xtask test`.
    pub test_iters: u64,
    /// Wall-clock limit for one run under `cargo xtask test` (debug hypervisor).
    pub timeout: Duration,
    /// Row name in the exit-cost benchmark, for the `bench-*` scenarios.
    pub bench_row: Option<&'static str>,
    /// Guest `hvc`s per benchmarked round trip (1 for hypercall-based rows).
    pub bench_guest_hvcs: u8,
    /// Iteration counts for this benchmark's two runs, when the global ones would be
    /// too slow (`(0, 0)`: use the global ones).
    pub bench_iters: (u64, u64),
    /// Round trips per guest iteration (the figures are divided by it).
    pub bench_round_trips: u8,
    /// Physical cores QEMU gives the hypervisor (`-smp`).
    pub cpus: u8,
    /// What the hypervisor gets to run.
    pub guest: Guest,
    /// Machine RAM (QEMU's `-m`).
    pub mem: &'static str,
    /// Part of `cargo xtask test` without ITEMs (any scenario runs when named).
    pub in_default_tests: bool,
    /// vCPUs of a Linux guest (`vcpus=`; 2 unless the row says otherwise).
    pub vcpus: u8,
    /// Text typed on the console under `cargo xtask test` (a Linux row with it boots
    /// to the interactive shell instead of the autotest).
    pub typing: Option<crate::qemu::Typing>,
    /// A Linux row's own interrupt mode (`None`: the one `--mode` gives).
    pub linux_mode: Option<&'static str>,
    /// The guest's own verdict marker (`<marker>: PASS` / `<marker>: FAIL <reason>`,
    /// printed on the console), also required for a pass under `cargo xtask test`.
    pub guest_marker: Option<&'static str>,
}

const fn scenario(name: &'static str, test_iters: u64) -> Scenario {
    Scenario {
        name,
        test_iters,
        timeout: Duration::from_secs(60),
        bench_row: None,
        bench_guest_hvcs: 0,
        cpus: 1,
        bench_iters: (0, 0),
        bench_round_trips: 1,
        guest: Guest::TestElf,
        mem: crate::qemu::DEFAULT_MEM,
        in_default_tests: true,
        vcpus: 2,
        typing: None,
        linux_mode: None,
        guest_marker: None,
    }
}

/// A Linux guest on `cpus` cores with 2 GiB, its own time limit and the guest's
/// `LINUX_AUTOTEST` verdict; `in_default_tests`: part of plain `cargo xtask test`.
const fn linux(name: &'static str, cpus: u8, secs: u64, in_default_tests: bool) -> Scenario {
    Scenario {
        guest: Guest::Linux,
        mem: "2G",
        in_default_tests,
        guest_marker: Some("LINUX_AUTOTEST"),
        ..smp(name, 1, cpus)
    }
    .with_timeout(secs)
}

/// U-Boot on 2 cores (it uses one) with 2 GiB; passes with its `UBOOT_GUEST: PASS`
/// line (printed by the `bootcmd` the hypervisor puts in the device tree).
const fn uboot(name: &'static str) -> Scenario {
    Scenario {
        guest: Guest::UBoot,
        mem: "2G",
        guest_marker: Some("UBOOT_GUEST"),
        ..smp(name, 1, 2)
    }
    .with_timeout(60)
}

impl Scenario {
    const fn with_timeout(self, secs: u64) -> Scenario {
        Scenario {
            timeout: Duration::from_secs(secs),
            ..self
        }
    }
}

/// A benchmark with its own iteration counts and `round_trips` per guest iteration.
const fn slow_bench(
    name: &'static str,
    row: &'static str,
    hvcs: u8,
    iters: (u64, u64),
    round_trips: u8,
) -> Scenario {
    Scenario {
        bench_iters: iters,
        bench_round_trips: round_trips,
        ..bench(name, 100, row, hvcs)
    }
}

/// A scenario that needs `cpus` physical cores.
const fn smp(name: &'static str, test_iters: u64, cpus: u8) -> Scenario {
    Scenario {
        cpus,
        ..scenario(name, test_iters)
    }
}

/// A benchmark scenario: row `row`, `hvcs` guest `hvc`s per round trip.
const fn bench(name: &'static str, test_iters: u64, row: &'static str, hvcs: u8) -> Scenario {
    Scenario {
        bench_row: Some(row),
        bench_guest_hvcs: hvcs,
        ..scenario(name, test_iters)
    }
}

/// A scenario with its own time limit.
const fn timed(name: &'static str, test_iters: u64, secs: u64) -> Scenario {
    Scenario {
        timeout: Duration::from_secs(secs),
        ..scenario(name, test_iters)
    }
}

/// Every scenario of the protocol, in the order `cargo xtask test` runs them.
pub const SCENARIOS: &[Scenario] = &[
    scenario("demo", 100),
    scenario("hypercall", 100),
    scenario("mmio", 100),
    scenario("sysreg", 100),
    scenario("preserve", 100),
    scenario("irq", 100),
    bench("bench-hvc", 100, "hvc", 1),
    bench("bench-mmio", 100, "mmio_read", 0),
    // Two vCPUs on one core; SYSTEM_RESET once, SYSTEM_OFF at the end.
    timed("psci", 1, 30),
    timed("inject", 1, 30),
    // One exit of every class; iters unused (200 PRNG function IDs are fixed).
    timed("classes", 1, 30),
    // iters = PRNG instruction words executed at EL1 (seed: bootargs `seed=`).
    timed("hostile", 100_000, 60),
    bench("bench-sysreg", 100, "sysreg_trap", 0),
    bench("bench-psci", 100, "psci_version", 1),
    // Two physical cores: vCPU 1 starts on core 1 through the guest's PSCI CPU_ON.
    smp("smp", 1, 2),
    // Two VMs time-sliced on one core; iters = VM switches to survive.
    timed("isolation", 8, 60),
    // Issue 8: guest self-hosted debug (breakpoints, watchpoints, software step over
    // emulated instructions, the OS lock), one VM; iters unused.
    timed("debug", 1, 30),
    // Two VMs time-sliced on one core with different breakpoints and watchpoints armed;
    // iters = VM switches to survive.
    timed("debug-isolation", 40, 60),
    // Issue 4 benchmarks: switching a core between vCPUs, virtual interrupts, lazy FP.
    slow_bench("bench-switch", "vcpu_switch", 1, (2_000, 10_000), 2),
    slow_bench("bench-yield", "vcpu_rebind", 1, (2_000, 10_000), 1),
    slow_bench("bench-fp", "fp_first_use", 1, (2_000, 10_000), 1),
    slow_bench("bench-virq", "virq", 1, (2_000, 10_000), 1),
    // Issue 8: the first debug register access after a bind (lazy debug switching).
    slow_bench("bench-debug", "debug_first_use", 1, (2_000, 10_000), 1),
    // Debian's arm64 Linux kernel with a busybox initramfs on 2 vCPUs (Debian's
    // packages fetched into target/linux-cache/ on first use). Runs when named
    // (`cargo xtask test linux`); the last argument `true` puts it in the default set.
    linux("linux", 2, 180, true),
    // Virtual-interrupt mode: emulated GIC, both vCPUs time-sliced on one core ...
    Scenario {
        linux_mode: Some("virtual"),
        ..linux("linux-virtual", 1, 180, true)
    },
    // ... and with vCPU i on physical core i.
    Scenario {
        linux_mode: Some("virtual"),
        ..linux("linux-virtual-smp", 2, 180, true)
    },
    // The interactive shell: typed commands answered, `poweroff` typed at the prompt
    // ends the run with status 0 (the quoting keeps the echoed command line from
    // looking like the verdict).
    Scenario {
        typing: Some(crate::qemu::Typing {
            after: "/ # ",
            // Typed once the guest idles: input must wake it (no exits to poll on).
            pause_ms: 2000,
            text: "echo LINUX_SHELL: PA''SS $(grep -c ^processor /proc/cpuinfo) cpus\npoweroff\n",
        }),
        guest_marker: Some("LINUX_SHELL"),
        ..linux("linux-shell", 2, 180, true)
    },
    // One vCPU (the device tree lists one CPU; PSCI refuses MPIDR 1), passthrough mode.
    Scenario {
        vcpus: 1,
        ..linux("linux-1vcpu", 2, 180, true)
    },
    uboot("uboot"),
];

/// The scenario `cargo xtask run` boots when no `--guest` is given.
pub const DEFAULT_GUEST: &str = "linux";

/// `iters` for `cargo xtask run` when no `--iters` is given (the protocol's default).
pub const DEFAULT_ITERS: u64 = 100;

/// The Linux guest's interrupt modes (`mode=` in the bootargs; `--mode`).
pub const LINUX_MODES: &[&str] = &["passthrough", "virtual"];
/// `mode=` when no `--mode` is given.
pub const DEFAULT_LINUX_MODE: &str = "passthrough";

/// A mutation check: `scenario` must FAIL on a hypervisor built with
/// `--cfg arm_vcpu_mutate="<cfg>"`, which breaks exactly what the scenario guards,
/// and fail for the guarding check's own reason: its output must contain `reason`
/// (a hypervisor panic or a timeout is not a catch).
#[derive(Debug, Clone, Copy)]
pub struct Mutation {
    /// The scenario that must catch it.
    pub scenario: &'static str,
    /// Value of the `arm_vcpu_mutate` cfg (declared in arm_vcpu's `check-cfg`).
    pub cfg: &'static str,
    /// What breaks, for the report.
    pub breaks: &'static str,
    /// Text the guarding check prints when it catches the mutation.
    pub reason: &'static str,
}

/// Every mutation check `cargo xtask test` runs.
pub const MUTATIONS: &[Mutation] = &[
    Mutation {
        scenario: "preserve",
        cfg: "gpr-restore",
        breaks: "the exit vector does not save guest x28",
        reason: "x28: got",
    },
    Mutation {
        scenario: "isolation",
        cfg: "skip-tpidr",
        breaks: "TPIDR_EL1 is left out of the bind/unbind switch",
        reason: "TPIDR_EL1: expected",
    },
    Mutation {
        scenario: "debug-isolation",
        cfg: "skip-dbgbvr",
        breaks: "a vCPU's DBGBVR0_EL1 is left out of the lazy debug switch",
        reason: "own breakpoint did not fire",
    },
    Mutation {
        scenario: "hostile",
        cfg: "gpr-restore",
        breaks: "the exit vector does not save guest x28 (a register no word names changes)",
        reason: "x28 changed from",
    },
];

/// Whether a mutant run's output shows the mutation caught by its own check: the
/// run failed with a FAIL marker, `m.reason` appears, and nothing panicked.
pub fn caught_by_own_check(m: &Mutation, output: &str) -> Result<(), String> {
    if output.contains("ARM_VCPU_PANIC") {
        return Err("the hypervisor panicked (a crash is not the check catching it)".into());
    }
    if !output.contains(m.reason) {
        return Err(format!(
            "failed, but not with the guarding check's reason {:?}",
            m.reason
        ));
    }
    Ok(())
}

/// Looks a scenario up by name.
pub fn find(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name)
}

/// The bootargs (`-append`) for one run.
pub fn bootargs(scenario: &str, iters: u64) -> String {
    format!("scenario={scenario} iters={iters}")
}

/// The bootargs of a U-Boot run: the size of the staged `u-boot.bin`.
pub fn uboot_bootargs(scenario: &str, image_size: u64) -> String {
    format!("scenario={scenario} image_size={image_size}")
}

/// The bootargs of a Linux guest run of row `s`: `guest=linux`, the interrupt mode
/// (the row's own, else `mode`), the physical cores (the row's QEMU `-smp`), the
/// initramfs's size in bytes, the vCPU count, and `autotest=1` (the guest checks itself
/// and powers off) under `test`. The hypervisor chooses its runner from these alone.
pub fn linux_bootargs(
    s: &Scenario,
    mode: &str,
    initrd_size: u64,
    autotest: bool,
    vcpus: u64,
) -> String {
    let mode = s.linux_mode.unwrap_or(mode);
    let mut a = format!(
        "scenario={} guest=linux mode={mode} cores={} initrd_size={initrd_size} vcpus={vcpus}",
        s.name, s.cpus
    );
    if autotest {
        a.push_str(" autotest=1");
    }
    a
}

/// Whether `cargo xtask test` runs scenario `s` given the ITEMs `only`.
pub fn selected(s: &Scenario, only: &[String]) -> bool {
    if only.is_empty() {
        s.in_default_tests
    } else {
        only.iter().any(|o| o == s.name)
    }
}

/// `bootargs` with `seed=S` appended when a seed is given (`--seed`): the PRNG seed
/// of the scenarios that use one (hostile); the hypervisor's default is 1.
pub fn with_seed(bootargs: String, seed: Option<u64>) -> String {
    match seed {
        Some(s) => format!("{bootargs} seed={s}"),
        None => bootargs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootargs_format() {
        assert_eq!(bootargs("demo", 100), "scenario=demo iters=100");
        assert_eq!(bootargs("bench-hvc", 2000), "scenario=bench-hvc iters=2000");
        assert_eq!(
            with_seed(bootargs("hostile", 5), Some(9)),
            "scenario=hostile iters=5 seed=9"
        );
        assert_eq!(
            with_seed(bootargs("demo", 1), None),
            "scenario=demo iters=1"
        );
    }

    #[test]
    fn linux_bootargs_format() {
        assert_eq!(
            linux_bootargs(find("linux").unwrap(), "passthrough", 1_234_567, true, 2),
            "scenario=linux guest=linux mode=passthrough cores=2 initrd_size=1234567 vcpus=2 \
             autotest=1"
        );
        assert_eq!(
            linux_bootargs(find("linux").unwrap(), "virtual", 8, false, 1),
            "scenario=linux guest=linux mode=virtual cores=2 initrd_size=8 vcpus=1"
        );
        // A row with its own mode keeps it.
        assert_eq!(
            linux_bootargs(find("linux-virtual").unwrap(), "passthrough", 8, false, 2),
            "scenario=linux-virtual guest=linux mode=virtual cores=1 initrd_size=8 vcpus=2"
        );
        assert!(LINUX_MODES.contains(&DEFAULT_LINUX_MODE));
    }

    #[test]
    fn linux_row() {
        let l = find("linux").unwrap();
        assert_eq!(l.guest, Guest::Linux);
        assert_eq!((l.cpus, l.mem), (2, "2G"));
        assert_eq!(l.timeout, Duration::from_secs(180));
        assert_eq!(l.guest_marker, Some("LINUX_AUTOTEST"));
        assert!(l.bench_row.is_none());
        // Named, it runs whether or not it is in the default set.
        assert!(selected(l, &["linux".into()]));
        assert!(!selected(l, &["demo".into()]));
        assert_eq!(selected(l, &[]), l.in_default_tests);
    }

    #[test]
    fn mutation_needs_its_own_reason() {
        let m = &MUTATIONS[0];
        let own = format!(
            "guest preserve: FAIL: ... {} 0x0\nARM_VCPU_SCENARIO preserve: FAIL",
            m.reason
        );
        assert!(caught_by_own_check(m, &own).is_ok());
        assert!(caught_by_own_check(m, "ARM_VCPU_SCENARIO preserve: FAIL other").is_err());
        let panic = format!("{own}\nARM_VCPU_PANIC host exception");
        assert!(caught_by_own_check(m, &panic).is_err());
    }

    #[test]
    fn table_is_consistent() {
        let mut names: Vec<_> = SCENARIOS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SCENARIOS.len(), "duplicate scenario name");
        assert!(find(DEFAULT_GUEST).is_some());
        for m in MUTATIONS {
            assert!(find(m.scenario).is_some(), "{}", m.scenario);
            assert!(!m.reason.is_empty() && !m.cfg.contains(char::is_whitespace));
        }
        // Every scenario of the earlier issues stays in the default set, unchanged.
        for s in SCENARIOS.iter().filter(|s| s.guest == Guest::TestElf) {
            assert!(s.in_default_tests, "{}", s.name);
            assert_eq!(s.mem, "1G", "{}", s.name);
            assert_eq!(s.guest_marker, None, "{}", s.name);
        }
        let rows: Vec<_> = SCENARIOS.iter().filter_map(|s| s.bench_row).collect();
        assert_eq!(
            rows,
            [
                "hvc",
                "mmio_read",
                "sysreg_trap",
                "psci_version",
                "vcpu_switch",
                "vcpu_rebind",
                "fp_first_use",
                "virq",
                "debug_first_use"
            ]
        );
        for s in SCENARIOS.iter().filter(|s| s.bench_iters.0 != 0) {
            assert!(s.bench_iters.0 < s.bench_iters.1, "{}", s.name);
        }
        for s in SCENARIOS {
            assert!(!s.name.contains(char::is_whitespace));
            assert!(s.test_iters > 0);
        }
    }
}
