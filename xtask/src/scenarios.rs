//! The one table of QEMU scenarios (see `docs/test-protocol.md`).
//!
//! Everything that runs a scenario (`run`, `test`, `bench`) reads this table:
//! add a scenario here and every command knows it.

use std::time::Duration;

/// What QEMU's loader stages for the hypervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guest {
    /// The test guest ELF named after the scenario (`guests/`), at the staging base:
    /// the hypervisor runs the scenario's own VMs (bootargs `scenario=NAME`).
    TestElf,
    /// Debian's arm64 Linux kernel `Image` and the busybox initramfs (files from
    /// [`crate::linux::prepare`], fetched on first use), one VM per entry, staged with
    /// a VM manifest ([`crate::vms::stage`]).
    Linux(&'static [LinuxVm]),
    /// Debian's `u-boot.bin` (u-boot-qemu), staged with a VM manifest.
    UBoot,
    /// Debian's `Image` given by path through `cargo xtask run --kernel`'s own code
    /// path ([`crate::vms::from_kernel_args`]), not through the Linux rows'.
    KernelArg,
    /// A VM description the hypervisor must refuse with one line and a non-zero
    /// status (the row's `expect_failure`), never hang.
    Refused(Refusal),
    /// Two test VMs on one core: the first (the `inject` guest under `demo`'s host
    /// checks, which serve no unbacked address) faults; the second (`demo`) must still
    /// run and pass: one VM's fault ends that VM only.
    FaultyPair,
    /// The row's test guest ELF ([`Scenario::guest_bin`]) as a VM of its own, without
    /// a scenario's host checks: the emulated GIC and console of the virtual mode, no
    /// device tree (x0 = 0, as the test protocol says); it ends with PSCI SYSTEM_OFF.
    ElfVm(LinuxVm),
}

/// A description the hypervisor must refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// More vCPUs than a VM may have.
    TooManyVcpus,
    /// A kernel that is no kernel (this README, told to be a Linux Image).
    BadKernel,
    /// More RAM than the board has.
    TooBig,
}

/// One Linux VM of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinuxVm {
    pub vcpus: u8,
    /// Physical cores its vCPUs may run on (`&[]`: every core of the machine).
    pub cores: &'static [usize],
    /// Its interrupt mode (`None`: the one `--mode` gives).
    pub mode: Option<&'static str>,
    /// RAM in MiB.
    pub mem_mib: u64,
    /// Words added to its kernel command line (e.g. `reboot=s1`).
    pub cmdline: &'static str,
    /// Its device tree lists only the physical timers (Linux then uses PPI 30).
    pub phys_timer: bool,
    /// `snapshot_every` of its description (0: its vCPUs are never replaced).
    pub snapshot_every: u64,
}

/// Two vCPUs in the `--mode` mode on every core, 1 GiB.
pub const LINUX_2: LinuxVm = LinuxVm {
    vcpus: 2,
    cores: &[],
    mode: None,
    mem_mib: 1024,
    cmdline: "",
    phys_timer: false,
    snapshot_every: 0,
};

/// The same in the virtual mode.
pub const LINUX_2V: LinuxVm = LinuxVm {
    mode: Some("virtual"),
    ..LINUX_2
};

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
    /// Text typed on the console under `cargo xtask test` (a Linux row with it boots
    /// to the interactive shell instead of the autotest).
    pub typing: Option<crate::qemu::Typing>,
    /// The guest's own verdict marker (`<marker>: PASS` / `<marker>: FAIL <reason>`,
    /// printed on the console), also required for a pass under `cargo xtask test`;
    /// with several VMs, each VM's, on its console lines (`[name] <marker>: PASS`).
    pub guest_marker: Option<&'static str>,
    /// QEMU CPU models (`-cpu`, [`crate::qemu::CPU_MODELS`]) `cargo xtask test` runs
    /// the row on, once each ([`DEFAULT_MODELS`] unless the row names others).
    pub models: &'static [&'static str],
    /// The row's checks only make sense on [`Scenario::models`] (e.g. a CPU erratum's
    /// workaround): `test --cpu M` leaves it out for another M unless it is named.
    /// `false`: any model will do, `models` is only what the default matrix runs.
    pub model_bound: bool,
    /// The run must fail this way (a refusal the row checks); `None`: it must pass.
    pub expect_failure: Option<ExpectFailure>,
    /// QEMU's machine (`-M`): the board the hypervisor discovers.
    pub machine: &'static str,
    /// More bootargs words for the hypervisor (`selftest=...`).
    pub hv_bootargs: &'static str,
    /// The test guest binary, when it is not the one named after the scenario.
    pub guest_bin: Option<&'static str>,
}

/// How a row that checks a refusal must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectFailure {
    /// QEMU's exit status.
    pub status: i32,
    /// Text the output must contain (the one clear line).
    pub text: &'static str,
}

/// The CPU models every row runs on unless it says otherwise: QEMU's `max` (VHE,
/// 16-bit VMIDs, PAuth, SVE/SME, PMUv3, GICv3 with 4 list registers) and a real
/// core without most of that: Cortex-A53 (ARMv8.0: 8-bit VMIDs, 40-bit PA, no
/// PAuth, VHE, SVE or SME).
///
/// A row names other models with [`Scenario::with_models`] (any model will do; these
/// are the ones `cargo xtask test` runs) or [`Scenario::only_on`] (its checks need
/// them, e.g. a Spectre-v2 check: `timed("spectre", 1, 30).only_on(&["cortex-a57"])`,
/// with a comment saying why).
pub const DEFAULT_MODELS: &[&str] = &["max", "cortex-a53"];

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
        typing: None,
        guest_marker: None,
        models: DEFAULT_MODELS,
        model_bound: false,
        expect_failure: None,
        machine: crate::qemu::DEFAULT_MACHINE,
        hv_bootargs: "",
        guest_bin: None,
    }
}

/// Linux VMs `vms` on `cpus` cores with 2 GiB, its own time limit and the guests'
/// `LINUX_AUTOTEST` verdicts; `in_default_tests`: part of plain `cargo xtask test`.
const fn linux(
    name: &'static str,
    cpus: u8,
    secs: u64,
    in_default_tests: bool,
    vms: &'static [LinuxVm],
) -> Scenario {
    Scenario {
        guest: Guest::Linux(vms),
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
    /// The test guest binary this row runs.
    pub fn guest_bin(&self) -> &'static str {
        self.guest_bin.unwrap_or(self.name)
    }

    const fn with_timeout(self, secs: u64) -> Scenario {
        Scenario {
            timeout: Duration::from_secs(secs),
            ..self
        }
    }

    /// The row on `models` instead of [`DEFAULT_MODELS`]; it still runs on any model
    /// `--cpu` names.
    pub const fn with_models(self, models: &'static [&'static str]) -> Scenario {
        Scenario {
            models,
            model_bound: false,
            ..self
        }
    }

    /// The row only on `models`: its checks need one of them (say why beside the row).
    #[cfg_attr(not(test), allow(dead_code))]
    pub const fn only_on(self, models: &'static [&'static str]) -> Scenario {
        Scenario {
            models,
            model_bound: true,
            ..self
        }
    }

    /// Whether `test --cpu model` (no ITEMs) runs the row.
    pub fn runs_on(&self, model: &str) -> bool {
        !self.model_bound || self.models.contains(&model)
    }

    /// The same row on another board: QEMU machine `machine`, `cpus` cores, `mem` RAM.
    const fn on_board(self, machine: &'static str, cpus: u8, mem: &'static str) -> Scenario {
        Scenario {
            machine,
            cpus,
            mem,
            ..self
        }
    }
}

/// QEMU `virt` with a GICv4 (redistributors 0x40000 apart).
pub const GICV4: &str = "virt,virtualization=on,gic-version=4";
/// QEMU `virt` with a GICv2 and its virtualization extensions (GICH/GICV, the
/// maintenance interrupt): GIC-400 class boards.
pub const GICV2: &str = "virt,virtualization=on,gic-version=2";
/// QEMU `virt` with a GICv3 (the default).
const GICV3: &str = crate::qemu::DEFAULT_MACHINE;

/// Test-guest row `s` on the GICv2 board as row `name` (`<scenario>-gicv2`: the
/// hypervisor runs the scenario without the suffix, the guest binary is the
/// scenario's), on `cpus` cores.
const fn on_gicv2(s: Scenario, name: &'static str, cpus: u8) -> Scenario {
    Scenario {
        name,
        guest_bin: Some(s.name),
        ..s
    }
    .on_board(GICV2, cpus, crate::qemu::DEFAULT_MEM)
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
    // SMCCC_ARCH_WORKAROUND_1/2/3 answers and calls as this CPU needs them: max (CSV2_2,
    // SSBS2), cortex-a53 (in order: none needed), cortex-a57/a72 (Spectre v2, SSB and
    // BHB: QEMU's firmware lacks the workarounds, so NOT_SUPPORTED and nothing
    // forwarded), cortex-a76 (CSV2 and SSBS, but BHB-affected).
    timed("spectre", 1, 30).with_models(&[
        "max",
        "cortex-a53",
        "cortex-a57",
        "cortex-a72",
        "cortex-a76",
    ]),
    // cortex-a76 too: AArch32 at EL0 only (EL1 AArch64-only: no AArch32 DBGDIDR there).
    timed("aarch32", 1, 30).with_models(&["max", "cortex-a53", "cortex-a76"]),
    // iters = PRNG instruction words executed at EL1 (seed: bootargs `seed=`).
    timed("hostile", 100_000, 60),
    // iters = PRNG A32/T32 instructions executed single-stepped at AArch32 EL0.
    timed("hostile32", 10_000, 60).with_models(&["max", "cortex-a53", "cortex-a76"]),
    bench("bench-sysreg", 100, "sysreg_trap", 0),
    bench("bench-psci", 100, "psci_version", 1),
    // A CPACR_EL1 write trapped (CPTR_EL2.TCPAC) and emulated in the crate. Only on
    // `max`: the crate sets TCPAC on cores with SVE, SME, trace or S1POE, and
    // cortex-a53 has none (its CPACR_EL1 is the guest's own, and QEMU keeps the RES0
    // ZEN bits the guest writes there).
    bench("bench-cpacr", 100, "cpacr_trap", 0).only_on(&["max"]),
    // Two physical cores: vCPU 1 starts on core 1 through the guest's PSCI CPU_ON.
    smp("smp", 1, 2),
    // A guest snapshotted mid-computation on core 0, its vCPU destroyed, a new one
    // restored from the snapshot's bytes on core 1; iters = device reads per run.
    smp("snapshot", 3000, 2),
    // Stage-2 geometry and VMID size follow the CPU: a level-0 root and VMID 0x1ff run
    // or are refused by bind() as the CPU's PA size and VMIDBits say (refused on
    // cortex-a53); two concatenated level-1 tables give a 40-bit IPA space everywhere.
    // One VM per configuration, one after the other.
    timed("stage2", 1, 30),
    // Four vCPUs on two cores (time-sliced): the last one started calls SYSTEM_OFF
    // while the others spin; the VM and the run end there. Its exits are recorded
    // (`trace=1`) and the record checked: every vCPU's exits, on both cores.
    Scenario {
        hv_bootargs: "trace=1",
        ..smp("sysoff", 1, 2).with_timeout(30)
    },
    // One VM's fault ends that VM with its reason, never another: the run fails (status
    // bit 0: VM 0) with the good VM's PASS.
    Scenario {
        guest: Guest::FaultyPair,
        expect_failure: Some(ExpectFailure {
            status: 1,
            text: "ARM_VCPU_VM good: PASS",
        }),
        ..timed("vm-fault", 1, 30)
    },
    // Two VMs time-sliced on one core; iters = VM switches to survive.
    timed("isolation", 8, 60),
    // Every MRS/MSR encoding (op0 2, 3) against the register inventory; iters unused.
    timed("sweep", 1, 60),
    // The sweep in two time-sliced VMs, then VM-specific patterns held across
    // iters = VM switches, then a virtual SError each.
    timed("sweep-isolation", 6, 90),
    // Issue 8: guest self-hosted debug (breakpoints, watchpoints, software step over
    // emulated instructions, the OS lock), one VM; iters unused.
    timed("debug", 1, 30),
    // Two VMs time-sliced on one core with different breakpoints and watchpoints armed;
    // iters = VM switches to survive.
    timed("debug-isolation", 40, 60),
    // Issue 13: the virtual PMUv3 (counting, filters, host time not counted, PMUSERENR,
    // overflow interrupts, the host's own PMU values kept), one VM; iters unused.
    // cortex-a76 too: a PMUv3p1 (HPMD without HCCD), where the PMU stays trapped.
    timed("pmu", 1, 60).with_models(&["max", "cortex-a53", "cortex-a76"]),
    // Two VMs time-sliced on one core, each counting only its own work; iters = VM
    // switches to survive.
    timed("pmu-isolation", 20, 60),
    // Issue 4 benchmarks: switching a core between vCPUs, virtual interrupts, lazy FP.
    slow_bench("bench-switch", "vcpu_switch", 1, (2_000, 10_000), 2),
    slow_bench("bench-yield", "vcpu_rebind", 1, (2_000, 10_000), 1),
    slow_bench("bench-fp", "fp_first_use", 1, (2_000, 10_000), 1),
    slow_bench("bench-virq", "virq", 1, (2_000, 10_000), 1),
    // The same on a GICv2 board: the list registers in the GICH frame (MMIO), the
    // guest's CPU interface GICV at its GICC.
    on_gicv2(
        slow_bench("bench-virq", "virq_v2", 1, (2_000, 10_000), 1),
        "bench-virq-gicv2",
        1,
    ),
    // Issue 8: the first debug register access after a bind (lazy debug switching).
    slow_bench("bench-debug", "debug_first_use", 1, (2_000, 10_000), 1),
    // Issue 13: vcpu_switch with both vCPUs counting (their PMU state loaded at every
    // bind), and the first PMU register access after a bind (lazy PMU switching).
    slow_bench("bench-switch-pmu", "vcpu_switch_pmu", 1, (2_000, 10_000), 2),
    slow_bench("bench-pmu", "pmu_first_use", 1, (2_000, 10_000), 1),
    // Debian's arm64 Linux kernel with a busybox initramfs on 2 vCPUs (Debian's
    // packages fetched into target/linux-cache/ on first use). Runs when named
    // (`cargo xtask test linux`); the last argument `true` puts it in the default set.
    linux("linux", 2, 180, true, &[LINUX_2]),
    // Virtual-interrupt mode: emulated GIC, both vCPUs time-sliced on one core ...
    linux("linux-virtual", 1, 180, true, &[LINUX_2V]),
    // ... and with vCPU i on physical core i.
    linux("linux-virtual-smp", 2, 180, true, &[LINUX_2V]),
    // Overcommitted: 4 vCPUs on 2 cores (placed on the less loaded core at CPU_ON,
    // time-sliced there, sleeping in WFI).
    linux(
        "linux-4v2c",
        2,
        240,
        true,
        &[LinuxVm {
            vcpus: 4,
            mode: Some("virtual"),
            ..LINUX_2
        }],
    ),
    // 4 vCPUs on the 4 cores of `-smp 4`, in both modes.
    linux(
        "linux-smp4",
        4,
        240,
        true,
        &[LinuxVm {
            vcpus: 4,
            mode: Some("passthrough"),
            ..LINUX_2
        }],
    ),
    linux(
        "linux-smp4-virtual",
        4,
        240,
        true,
        &[LinuxVm {
            vcpus: 4,
            mode: Some("virtual"),
            ..LINUX_2
        }],
    ),
    // Two Linux VMs at once on the same 2 cores, each its own autotest and power-off,
    // each console line prefixed with its VM's name.
    linux(
        "linux-2vm",
        2,
        300,
        true,
        &[
            LinuxVm {
                mode: Some("virtual"),
                mem_mib: 512,
                ..LINUX_2
            },
            LinuxVm {
                mode: Some("virtual"),
                mem_mib: 512,
                ..LINUX_2
            },
        ],
    ),
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
        ..linux("linux-shell", 2, 180, true, &[LINUX_2])
    },
    // The shell of Linux in the virtual mode (both vCPUs time-sliced on one core) whose
    // vCPUs are snapshotted and replaced by restored ones every 8th unbind.
    Scenario {
        typing: Some(crate::qemu::Typing {
            after: "/ # ",
            pause_ms: 2000,
            text: "echo LINUX_SHELL: PA''SS $(grep -c ^processor /proc/cpuinfo) cpus\npoweroff\n",
        }),
        guest_marker: Some("LINUX_SHELL"),
        ..linux(
            "linux-virtual-snapshot",
            1,
            180,
            true,
            &[LinuxVm {
                mode: Some("virtual"),
                snapshot_every: 8,
                ..LINUX_2
            }],
        )
    },
    // One vCPU (the device tree lists one CPU; PSCI refuses MPIDR 1), passthrough mode.
    linux(
        "linux-1vcpu",
        2,
        180,
        true,
        &[LinuxVm {
            vcpus: 1,
            ..LINUX_2
        }],
    ),
    uboot("uboot"),
    // `cargo xtask run --kernel target/linux/Image --initrd ... --append ...`: a kernel
    // given by path, through the option parser's own VM description.
    Scenario {
        guest: Guest::KernelArg,
        ..linux("kernel-arg", 2, 180, true, &[])
    },
    // VM descriptions the hypervisor refuses with one line, a FAIL marker, status 1.
    refused(
        "refuse-vcpus",
        Refusal::TooManyVcpus,
        "FAIL VM refuse-vcpus: 9 vCPUs (a VM has 1 to 8)",
    ),
    refused(
        "refuse-kernel",
        Refusal::BadKernel,
        "FAIL VM refuse-kernel: kernel: not a Linux arm64 Image",
    ),
    refused(
        "refuse-memory",
        Refusal::TooBig,
        "MiB of RAM together, the board has",
    ),
    // Board variants: the hypervisor discovers each board from its device tree.
    // GICv4: redistributors 0x40000 apart, in both interrupt modes.
    linux("linux-gicv4", 2, 60, true, &[LINUX_2]).on_board(GICV4, 2, "2G"),
    linux("linux-virtual-smp-gicv4", 2, 60, true, &[LINUX_2V]).on_board(GICV4, 2, "2G"),
    // GICv2 (GIC-400 class, `gic-version=2`): the virtual interrupts through the GICH
    // list registers, the guests' CPU interface the GICV frame at their GICC (test
    // guests pick GICC MMIO from ID_AA64PFR0_EL1.GIC = 0), the emulated GICv2
    // distributor (virtual mode) or the physical GICD and GICC (passthrough). A
    // `-gicv2` row runs the scenario without the suffix.
    on_gicv2(scenario("irq", 100), "irq-gicv2", 1),
    on_gicv2(timed("isolation", 8, 60), "isolation-gicv2", 1),
    on_gicv2(timed("classes", 1, 30), "classes-gicv2", 1),
    // A snapshot taken and restored on another core on the GICv2 board: list registers,
    // GICH_VMCR/APR and the queue (6 interrupts, 4 list registers: the maintenance
    // interrupt moves the rest) in the snapshot.
    on_gicv2(smp("snapshot", 3000, 2), "snapshot-gicv2", 2),
    linux("linux-gicv2", 2, 180, true, &[LINUX_2]).on_board(GICV2, 2, "2G"),
    linux("linux-virtual-smp-gicv2", 2, 180, true, &[LINUX_2V]).on_board(GICV2, 2, "2G"),
    linux("linux-virtual-gicv2", 1, 180, true, &[LINUX_2V]).on_board(GICV2, 1, "2G"),
    Scenario {
        typing: Some(crate::qemu::Typing {
            after: "/ # ",
            pause_ms: 2000,
            text: "echo LINUX_SHELL: PA''SS $(grep -c ^processor /proc/cpuinfo) cpus\npoweroff\n",
        }),
        guest_marker: Some("LINUX_SHELL"),
        ..linux("linux-shell-gicv2", 2, 180, true, &[LINUX_2V])
    }
    .on_board(GICV2, 2, "2G"),
    uboot("uboot-gicv2").on_board(GICV2, 2, "2G"),
    // Four cores of a GICv4 with a 2-vCPU passthrough VM: the guest's last frame gets
    // an emulated GICR_TYPER.Last.
    linux("linux-smp4-2vcpu", 4, 60, true, &[LINUX_2]).on_board(GICV4, 4, "2G"),
    // 512 MiB boards with VMs sized to fit, and a 4 GiB board (the VM's RAM is carved
    // above 4 GiB there).
    linux(
        "linux-512m",
        2,
        60,
        true,
        &[LinuxVm {
            mem_mib: 256,
            ..LINUX_2
        }],
    )
    .on_board(GICV3, 2, "512M"),
    Scenario {
        guest: Guest::UBoot,
        ..uboot("uboot-512m").on_board(GICV3, 2, "512M")
    },
    linux("linux-4g", 2, 60, true, &[LINUX_2]).on_board(GICV3, 2, "4G"),
    // A VM that does not fit the board is refused with one line and status 1, at once.
    Scenario {
        expect_failure: Some(ExpectFailure {
            status: 1,
            text: "MiB of RAM together, the board has",
        }),
        guest_marker: None,
        ..linux("linux-too-big", 2, 30, true, &[LINUX_2]).on_board(GICV3, 2, "512M")
    },
    // PSCI SYSTEM_OFF from vCPU 1 (`reboot=s1`: Linux powers off on CPU 1) ends the
    // VM in passthrough mode.
    linux(
        "linux-off-vcpu1",
        2,
        60,
        true,
        &[LinuxVm {
            cmdline: "reboot=s1",
            ..LINUX_2
        }],
    ),
    // Virtual mode with Linux on the EL1 physical timer (PPI 30): the device tree
    // lists only the physical timers.
    linux(
        "linux-virtual-smp-ptimer",
        2,
        60,
        true,
        &[LinuxVm {
            phys_timer: true,
            ..LINUX_2V
        }],
    ),
    linux(
        "linux-virtual-ptimer",
        1,
        60,
        true,
        &[LinuxVm {
            phys_timer: true,
            ..LINUX_2V
        }],
    ),
    // The EL1 timers' PPIs through the emulated GIC (a test guest in the
    // virtual-interrupt mode): PPI 30 delivered, a held PPI 27 re-sampled on enable.
    Scenario {
        guest: Guest::ElfVm(ELF_VM),
        guest_marker: Some("VGIC_TIMERS"),
        ..timed("vgic-timers", 1, 30)
    },
    Scenario {
        guest: Guest::ElfVm(LinuxVm {
            cores: &[0, 1],
            ..ELF_VM
        }),
        guest_marker: Some("VGIC_TIMERS"),
        guest_bin: Some("vgic-timers"),
        ..smp("vgic-timers-smp", 1, 2)
    },
    // A fault of the hypervisor before arm_vcpu's vectors are installed is reported
    // (ESR/ELR/FAR) by boot.S's vector, status 102.
    Scenario {
        expect_failure: Some(ExpectFailure {
            status: 102,
            text: "ARM_VCPU_PANIC early exception at EL2 (before the arm_vcpu vectors): ESR_EL2 0x",
        }),
        hv_bootargs: "selftest=early-fault",
        guest_marker: None,
        ..linux("early-fault", 2, 30, true, &[LINUX_2])
    },
];

/// A test guest as a VM of its own: one vCPU on core 0, the virtual mode, 256 MiB.
const ELF_VM: LinuxVm = LinuxVm {
    vcpus: 1,
    cores: &[0],
    mode: Some("virtual"),
    mem_mib: 256,
    cmdline: "",
    phys_timer: false,
    snapshot_every: 0,
};

/// A row whose VM description the hypervisor must refuse, status 1, with `text`.
const fn refused(name: &'static str, r: Refusal, text: &'static str) -> Scenario {
    Scenario {
        guest: Guest::Refused(r),
        expect_failure: Some(ExpectFailure { status: 1, text }),
        ..scenario(name, 1)
    }
    .with_timeout(30)
}

/// The VM names of Linux row `s` (one VM: the row's name; several: `linux<i>`).
pub fn linux_vm_names(s: &Scenario) -> Vec<String> {
    match s.guest {
        Guest::Linux(v) if v.len() > 1 => (0..v.len()).map(|i| format!("linux{i}")).collect(),
        Guest::Linux(_) => vec![s.name.to_string()],
        _ => Vec::new(),
    }
}

/// Whether each Linux VM of row `s` ran on as many physical cores as it could: its
/// vCPUs on `min(vCPUs, allowed cores)` different cores (the placement spreads them;
/// the hypervisor prints `VM <name> vCPUs ran on cores: 0, 1, 0+1` at the VM's end).
pub fn spread_as_placed(s: &Scenario, output: &str) -> Result<(), String> {
    let Guest::Linux(vms) = s.guest else {
        return Ok(());
    };
    let mut why = Vec::new();
    for (vm, name) in vms.iter().zip(linux_vm_names(s)) {
        let allowed = if vm.cores.is_empty() {
            usize::from(s.cpus)
        } else {
            vm.cores.len()
        };
        let want = usize::from(vm.vcpus).min(allowed);
        let tag = format!("VM {name} vCPUs ran on cores: ");
        let Some(list) = output
            .lines()
            .find_map(|l| l.split_once(tag.as_str()).map(|(_, r)| r.trim()))
        else {
            why.push(format!("no `{tag}` line"));
            continue;
        };
        let mut used: Vec<&str> = list
            .split([',', '+'])
            .map(str::trim)
            .filter(|c| !c.is_empty() && *c != "-")
            .collect();
        used.sort_unstable();
        used.dedup();
        if used.len() < want {
            why.push(format!(
                "VM {name}: {} vCPUs ran on {} core(s) ({list}), expected {want}",
                vm.vcpus,
                used.len()
            ));
        }
    }
    if why.is_empty() {
        Ok(())
    } else {
        Err(why.join(", "))
    }
}

/// Whether a refusal row's run ended as `e` says: that exit status, the text in the
/// output, no timeout (a hang is not a refusal) and, for a refusal (status 1), no
/// hypervisor panic.
pub fn failed_as_expected(
    e: &ExpectFailure,
    end: crate::qemu::End,
    output: &str,
) -> Result<(), String> {
    match end {
        crate::qemu::End::Exited(Some(c)) if c == e.status => {}
        other => {
            return Err(format!(
                "expected exit status {} (a refusal), got {other:?}",
                e.status
            ))
        }
    }
    if e.status == 1 && output.contains("ARM_VCPU_PANIC") {
        return Err("the hypervisor panicked (a refusal is one clear line)".into());
    }
    if !output.contains(e.text) {
        return Err(format!("the output lacks {:?}", e.text));
    }
    Ok(())
}

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
    /// CPU models the check runs on (`None`: the scenario's): where what the mutation
    /// breaks shows at all.
    pub models: Option<&'static [&'static str]>,
}

/// Every mutation check `cargo xtask test` runs.
pub const MUTATIONS: &[Mutation] = &[
    Mutation {
        scenario: "preserve",
        cfg: "gpr-restore",
        breaks: "the exit vector does not save guest x28",
        reason: "x28: got",
        models: None,
    },
    Mutation {
        scenario: "isolation",
        cfg: "skip-tpidr",
        breaks: "TPIDR_EL1 is left out of the bind/unbind switch",
        reason: "TPIDR_EL1: expected",
        models: None,
    },
    Mutation {
        scenario: "spectre",
        cfg: "workaround-forward",
        breaks: "SMCCC workarounds are offered and forwarded whatever the firmware implements",
        reason: "workaround call(s) reached the firmware",
        // Where a workaround is needed (cortex-a57: all three; max: WORKAROUND_3), not
        // on a core that needs none (cortex-a53).
        models: Some(&["max", "cortex-a57"]),
    },
    Mutation {
        scenario: "aarch32",
        cfg: "aarch32-it",
        breaks: "an emulated AArch32 instruction does not advance the T32 IT state",
        reason: "T32 mrceq DBGDIDR in an IT block: r0: got",
        // Where DBGDIDR is emulated (cortex-a76 has none: EL1 is AArch64-only).
        models: Some(&["max", "cortex-a53"]),
    },
    Mutation {
        scenario: "debug-isolation",
        cfg: "skip-dbgbvr",
        breaks: "a vCPU's DBGBVR0_EL1 is left out of the lazy debug switch",
        reason: "own breakpoint did not fire",
        models: None,
    },
    Mutation {
        scenario: "pmu",
        cfg: "pmu-count-el2",
        breaks: "a guest's PMU counters may count EL2 (its NSH filter bit kept, no MDCR_EL2.HPMD/HCCD)",
        reason: "(NSH) counted host time",
        models: None,
    },
    Mutation {
        scenario: "pmu",
        cfg: "pmu-skip-ccntr",
        breaks: "a vCPU's PMCCNTR_EL0 is left out of the lazy PMU switch",
        reason: "PMCCNTR_EL0 at reset: got",
        models: None,
    },
    Mutation {
        scenario: "sweep-isolation",
        cfg: "skip-tpidr2",
        breaks: "TPIDR2_EL0 (FEAT_SME, not trapped by CPTR_EL2.TSM) is left out of the bind/unbind switch",
        reason: "TPIDR2_EL0: expected",
        // TPIDR2_EL0 exists with FEAT_SME only (max; not cortex-a53).
        models: Some(&["max"]),
    },
    Mutation {
        scenario: "sweep-isolation",
        cfg: "skip-dbgbvr",
        breaks: "a vCPU's DBGBVR0_EL1 is left out of the lazy debug switch (the two-VM sweep patterns it)",
        reason: "DBGBVR0_EL1: expected",
        models: None,
    },
    Mutation {
        scenario: "snapshot-gicv2",
        cfg: "gicv2-vmcr",
        breaks: "a GICv2 vCPU's GICH_VMCR (the guest's GICC_PMR, GICC_CTLR enables) is not loaded at bind",
        reason: "GICC_PMR after the migration",
        models: None,
    },
    Mutation {
        scenario: "vgic-timers",
        cfg: "irq-state-saved",
        breaks: "Aarch64VCpu::interrupt_states reads the saved list registers of a bound vCPU (the emulated GICR_ISPENDR0 misses a pending PPI)",
        reason: "GICR_ISPENDR0 bit 30 with the EL1 physical timer fired",
        models: None,
    },
    Mutation {
        scenario: "hostile",
        cfg: "gpr-restore",
        breaks: "the exit vector does not save guest x28 (a register no word names changes)",
        reason: "x28 changed from",
        models: None,
    },
    Mutation {
        scenario: "stage2",
        cfg: "stage2-level0",
        breaks: "bind() accepts a level-0 stage-2 root on a core with a PA size below 44 bits",
        reason: "bind() accepted what this CPU cannot walk",
        // Only a core with a 40-bit PA shows it: on max (52 bits) level 0 is valid.
        models: Some(&["cortex-a53"]),
    },
    Mutation {
        scenario: "snapshot",
        cfg: "snapshot-vcount",
        breaks: "snapshots leave out the guest's virtual count (restore keeps the new vCPU's CNTVOFF_EL2)",
        reason: "virtual count jumped across the migration",
        models: Some(&["max"]),
    },
    Mutation {
        scenario: "snapshot",
        cfg: "snapshot-queue",
        breaks: "snapshots leave out the interrupts queued for a free list register",
        reason: "virtual interrupts taken after the migration",
        models: Some(&["max"]),
    },
    Mutation {
        scenario: "sweep-isolation",
        cfg: "pauth-any-vcpu",
        breaks: "the rebind shortcut keeps the PAuth keys a core holds without checking which vCPU loaded them",
        reason: "APIAKeyLo_EL1: expected",
        // The keys exist with FEAT_PAuth only (max; not cortex-a53).
        models: Some(&["max"]),
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

/// The bootargs of test-guest row `s` under `cargo xtask test`: the scenario, its
/// iterations and the row's own words.
pub fn test_bootargs(s: &Scenario) -> String {
    let mut b = bootargs(s.name, s.test_iters);
    if !s.hv_bootargs.is_empty() {
        b.push(' ');
        b.push_str(s.hv_bootargs);
    }
    b
}

/// The vCPU counts of a run's VMs, in the hypervisor's order (its VM ids), from its
/// `VM <name> (<mode>): ... , <n> vCPU(s) on cores [..]` lines.
pub fn vm_vcpus(output: &str) -> Vec<u32> {
    output
        .lines()
        .filter(|l| l.contains("[refhv INFO ] VM "))
        .filter_map(|l| {
            let (head, _) = l.split_once(" vCPU(s) on cores")?;
            head.rsplit(' ').next()?.parse().ok()
        })
        .collect()
}

/// Whether a run of row `s` with `trace=1` printed a whole exit record
/// ([`crate::trace`]'s format) in which every vCPU of its VMs (`vcpus`: per VM) left
/// exits, on `cores` different cores, none dropped.
pub fn trace_complete(
    s: &Scenario,
    vcpus: &[u32],
    cores: usize,
    output: &str,
) -> Result<(), String> {
    if !s.hv_bootargs.split_whitespace().any(|w| w == "trace=1") {
        return Ok(());
    }
    let t = crate::trace::parse(output)?;
    if t.dropped != 0 {
        return Err(format!("the trace dropped {} exits", t.dropped));
    }
    let mut why = Vec::new();
    for (vm, &n) in vcpus.iter().enumerate() {
        for vcpu in 0..n {
            if !t.exits.iter().any(|e| e.vm == vm as u32 && e.vcpu == vcpu) {
                why.push(format!("no exit of VM {vm} vCPU {vcpu} in the trace"));
            }
        }
    }
    let mut seen: Vec<u32> = t.exits.iter().map(|e| e.core).collect();
    seen.sort_unstable();
    seen.dedup();
    if seen.len() < cores {
        why.push(format!(
            "the trace has exits on {} core(s), expected {cores}",
            seen.len()
        ));
    }
    if why.is_empty() {
        Ok(())
    } else {
        Err(why.join(", "))
    }
}

/// Whether `cargo xtask test` runs scenario `s` given the ITEMs `only`.
pub fn selected(s: &Scenario, only: &[String]) -> bool {
    if only.is_empty() {
        s.in_default_tests
    } else {
        only.iter().any(|o| o == s.name)
    }
}

/// The CPU models `cargo xtask test` runs row `s` on, given the ITEMs `only` and
/// `--cpu` (`cpu`): without `--cpu`, the row's [`Scenario::models`]; with it, that one
/// model, for a named row always, otherwise if the row [`Scenario::runs_on`] it.
/// Empty when the row does not run at all.
pub fn models_for(
    s: &'static Scenario,
    only: &[String],
    cpu: Option<&'static str>,
) -> Vec<&'static str> {
    if !selected(s, only) {
        return Vec::new();
    }
    match cpu {
        None => s.models.to_vec(),
        Some(m) if !only.is_empty() || s.runs_on(m) => vec![m],
        Some(_) => Vec::new(),
    }
}

/// The QEMU scenario runs of `cargo xtask test`: every selected row once per model,
/// in table order, a row's models together.
pub fn matrix(
    only: &[String],
    cpu: Option<&'static str>,
) -> Vec<(&'static Scenario, &'static str)> {
    SCENARIOS
        .iter()
        .flat_map(|s| models_for(s, only, cpu).into_iter().map(move |m| (s, m)))
        .collect()
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
    #[test]
    fn traced_rows_record_every_vcpu_on_every_core() {
        let s = SCENARIOS.iter().find(|s| s.name == "sysoff").unwrap();
        assert_eq!(test_bootargs(s), "scenario=sysoff iters=1 trace=1");
        let out = "[refhv INFO ] VM sysoff (Test): 256 MiB RAM at 0x70000000, 2 vCPU(s) on cores [0, 1], kernel\n\
                   ARM_VCPU_TRACE begin freq=62500000\nX 0 0 0 hvc 10 5\nX 1 0 1 wfi 20 5\n";
        assert_eq!(vm_vcpus(out), vec![2]);
        let whole = format!("{out}ARM_VCPU_TRACE end dropped=0\n");
        assert_eq!(trace_complete(s, &[2], 2, &whole), Ok(()));
        assert!(trace_complete(s, &[3], 2, &whole)
            .unwrap_err()
            .contains("no exit of VM 0 vCPU 2"));
        assert!(trace_complete(s, &[2], 3, &whole)
            .unwrap_err()
            .contains("exits on 2 core(s), expected 3"));
        assert!(trace_complete(s, &[2], 2, out)
            .unwrap_err()
            .contains("no end line"));
        let lost = format!("{out}ARM_VCPU_TRACE end dropped=4\n");
        assert!(trace_complete(s, &[2], 2, &lost)
            .unwrap_err()
            .contains("dropped 4"));
        // A row without trace=1 is not checked.
        let demo = SCENARIOS.iter().find(|s| s.name == "demo").unwrap();
        assert_eq!(trace_complete(demo, &[2], 2, ""), Ok(()));
    }

    #[test]
    fn linux_vcpus_spread_over_the_cores() {
        let row = |n: &str| SCENARIOS.iter().find(|s| s.name == n).unwrap();
        let s = row("linux-4v2c");
        let spread = "[refhv INFO ] VM linux-4v2c vCPUs ran on cores: 0, 1, 0, 1\n";
        assert_eq!(spread_as_placed(s, spread), Ok(()));
        let one = "[refhv INFO ] VM linux-4v2c vCPUs ran on cores: 0, 0, 0, 0\n";
        assert!(spread_as_placed(s, one)
            .unwrap_err()
            .contains("ran on 1 core(s)"));
        assert!(spread_as_placed(s, "")
            .unwrap_err()
            .contains("no `VM linux-4v2c"));
        let s = row("linux-2vm");
        let both = "VM linux0 vCPUs ran on cores: 0, 1\nVM linux1 vCPUs ran on cores: 0+1, 1\n";
        assert_eq!(spread_as_placed(s, both), Ok(()));
        let half = "VM linux0 vCPUs ran on cores: 0, 1\nVM linux1 vCPUs ran on cores: 1, 1\n";
        assert!(spread_as_placed(s, half).unwrap_err().contains("VM linux1"));
        // One vCPU needs one core; not a Linux row: nothing to check.
        assert_eq!(
            spread_as_placed(row("linux-1vcpu"), "VM linux-1vcpu vCPUs ran on cores: 0\n"),
            Ok(())
        );
        assert_eq!(spread_as_placed(row("uboot"), ""), Ok(()));
    }

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
    fn real_guest_rows() {
        assert!(LINUX_MODES.contains(&DEFAULT_LINUX_MODE));
        // The scale rows: what they ask of the scheduler and the board.
        let vms = |n: &str| match find(n).unwrap().guest {
            Guest::Linux(v) => v,
            g => panic!("{n}: {g:?}"),
        };
        assert_eq!(vms("linux-4v2c")[0].vcpus, 4);
        assert_eq!(find("linux-4v2c").unwrap().cpus, 2);
        assert_eq!(find("linux-smp4").unwrap().cpus, 4);
        assert_eq!(vms("linux-smp4")[0].mode, Some("passthrough"));
        assert_eq!(vms("linux-smp4-virtual")[0].mode, Some("virtual"));
        assert_eq!(vms("linux-2vm").len(), 2);
        assert_eq!(vms("linux-virtual")[0].mode, Some("virtual"));
        for r in SCENARIOS
            .iter()
            .filter(|s| matches!(s.guest, Guest::Refused(_)))
        {
            assert!(r.expect_failure.is_some() && r.timeout <= Duration::from_secs(30));
        }
    }

    #[test]
    fn linux_row() {
        let l = find("linux").unwrap();
        assert_eq!(l.guest, Guest::Linux(&[LINUX_2]));
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
    fn board_variant_rows() {
        let g4 = find("linux-gicv4").unwrap();
        assert_eq!(g4.machine, "virt,virtualization=on,gic-version=4");
        assert_eq!(find("linux").unwrap().machine, crate::qemu::DEFAULT_MACHINE);
        let small = find("linux-512m").unwrap();
        assert_eq!(small.mem, "512M");
        assert!(matches!(
            small.guest,
            Guest::Linux([LinuxVm { mem_mib: 256, .. }])
        ));
        assert!(matches!(
            find("linux-off-vcpu1").unwrap().guest,
            Guest::Linux([LinuxVm {
                cmdline: "reboot=s1",
                ..
            }])
        ));
        assert_eq!(find("linux-smp4").unwrap().cpus, 4);
        assert_eq!(find("vgic-timers-smp").unwrap().guest_bin(), "vgic-timers");
        assert_eq!(find("demo").unwrap().guest_bin(), "demo");
    }

    #[test]
    fn refusal_rows_need_their_status_and_line() {
        use crate::qemu::End;
        let e = find("linux-too-big").unwrap().expect_failure.unwrap();
        let out = format!("refhv: the VMs need 1024 {}", e.text);
        assert!(failed_as_expected(&e, End::Exited(Some(1)), &out).is_ok());
        assert!(failed_as_expected(&e, End::Exited(Some(0)), &out).is_err());
        assert!(failed_as_expected(&e, End::TimedOut, &out).is_err());
        assert!(failed_as_expected(&e, End::Exited(Some(1)), "other failure").is_err());
        let panicked = format!("{out}\nARM_VCPU_PANIC at x.rs");
        assert!(failed_as_expected(&e, End::Exited(Some(1)), &panicked).is_err());
        let f = find("early-fault").unwrap().expect_failure.unwrap();
        assert_eq!(f.status, 102);
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
    fn every_row_runs_on_max_and_a53() {
        for s in SCENARIOS {
            if !s.model_bound {
                for m in DEFAULT_MODELS {
                    assert!(s.models.contains(m), "{} is not run on {m}", s.name);
                }
            }
            assert!(!s.models.is_empty(), "{}", s.name);
            for m in s.models {
                assert!(crate::qemu::cpu_model(m).is_ok(), "{}: {m}", s.name);
            }
        }
    }

    #[test]
    fn matrix_runs_each_row_once_per_model() {
        let all = matrix(&[], None);
        let default_rows = SCENARIOS.iter().filter(|s| s.in_default_tests);
        assert_eq!(
            all.len(),
            default_rows.map(|s| s.models.len()).sum::<usize>()
        );
        let irq: Vec<_> = all
            .iter()
            .filter(|(s, _)| s.name == "irq")
            .map(|c| c.1)
            .collect();
        assert_eq!(irq, ["max", "cortex-a53"]);
        // A row's models are next to each other, in table order.
        let names: Vec<_> = all.iter().map(|(s, _)| s.name).collect();
        let mut dedup = names.clone();
        dedup.dedup();
        assert_eq!(
            dedup.len(),
            SCENARIOS.iter().filter(|s| s.in_default_tests).count()
        );
        // Named rows only.
        let named = matrix(&["irq".into(), "demo".into()], None);
        let got: Vec<_> = named.iter().map(|(s, m)| (s.name, *m)).collect();
        assert_eq!(
            got,
            [
                ("demo", "max"),
                ("demo", "cortex-a53"),
                ("irq", "max"),
                ("irq", "cortex-a53")
            ]
        );
        // --cpu picks one model.
        let one = matrix(&["irq".into()], Some("cortex-a72"));
        let got: Vec<_> = one.iter().map(|(s, m)| (s.name, *m)).collect();
        assert_eq!(got, [("irq", "cortex-a72")]);
        let every = matrix(&[], Some("cortex-a53"));
        assert!(every.iter().all(|(_, m)| *m == "cortex-a53"));
        assert!(every.iter().any(|(s, _)| s.name == "irq"));
    }

    #[test]
    fn model_bound_rows() {
        static BOUND: Scenario = scenario("x", 1).only_on(&["cortex-a57"]);
        static WIDE: Scenario = scenario("y", 1).with_models(&["max", "cortex-a53", "cortex-a57"]);
        assert_eq!(models_for(&BOUND, &[], None), ["cortex-a57"]);
        // --cpu of another model leaves a bound row out unless it is named ...
        assert!(models_for(&BOUND, &[], Some("max")).is_empty());
        assert_eq!(models_for(&BOUND, &["x".into()], Some("max")), ["max"]);
        assert_eq!(models_for(&BOUND, &[], Some("cortex-a57")), ["cortex-a57"]);
        // ... and an unbound row runs on whatever --cpu says.
        assert_eq!(
            models_for(&WIDE, &[], None),
            ["max", "cortex-a53", "cortex-a57"]
        );
        assert_eq!(models_for(&WIDE, &[], Some("cortex-a76")), ["cortex-a76"]);
        // Not selected: nowhere.
        assert!(models_for(&WIDE, &["x".into()], None).is_empty());
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
            for model in m.models.unwrap_or(&[]) {
                assert!(crate::qemu::cpu_model(model).is_ok(), "{}: {model}", m.cfg);
            }
        }
        // Every mutation name is declared in arm_vcpu's check-cfg list.
        let toml = include_str!("../../arm_vcpu/Cargo.toml");
        for m in MUTATIONS {
            assert!(
                toml.contains(&format!("\"{}\"", m.cfg)),
                "{} not declared",
                m.cfg
            );
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
                "cpacr_trap",
                "vcpu_switch",
                "vcpu_rebind",
                "fp_first_use",
                "virq",
                "virq_v2",
                "debug_first_use",
                "vcpu_switch_pmu",
                "pmu_first_use"
            ]
        );
        // GICv2 board variants: `<scenario>-gicv2` on QEMU's GICv2 machine, the
        // scenario's guest (the hypervisor strips the suffix, scenario::base_name).
        let v2: Vec<_> = SCENARIOS.iter().filter(|s| s.machine == GICV2).collect();
        assert_eq!(v2.len(), 10);
        for s in v2 {
            assert!(s.name.ends_with("-gicv2"), "{}", s.name);
            if s.guest == Guest::TestElf {
                assert_eq!(
                    s.guest_bin(),
                    s.name.trim_end_matches("-gicv2"),
                    "{}",
                    s.name
                );
            }
        }
        assert_eq!(find("bench-virq-gicv2").unwrap().bench_row, Some("virq_v2"));
        for s in SCENARIOS.iter().filter(|s| s.bench_iters.0 != 0) {
            assert!(s.bench_iters.0 < s.bench_iters.1, "{}", s.name);
        }
        for s in SCENARIOS {
            assert!(!s.name.contains(char::is_whitespace));
            assert!(s.test_iters > 0);
        }
    }
}
