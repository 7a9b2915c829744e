//! Host-side runner for the arm_vcpu workspace: `cargo xtask <command>`.
//!
//! See `docs/test-protocol.md` for the QEMU command line, bootargs and markers,
//! and [`scenarios::SCENARIOS`] for the one table of scenarios.

mod bench;
mod budget;
mod cpio;
mod deps;
mod elf;
mod libtest;
mod linux;
mod package;
mod pool;
mod profile;
mod qemu;
mod scenarios;
mod test;
// The renderer of `cargo xtask trace` (issue 11); the command is wired once the
// hypervisor's scheduler records exits.
#[allow(dead_code)]
mod trace;
mod ws;

/// The reference hypervisor's device-tree parser and memory carver (pure code), tested
/// here on the host against device trees written with vm-fdt.
#[cfg(test)]
#[path = "../../hypervisor/src/platform/board.rs"]
#[allow(dead_code)]
mod board;

use std::process::ExitCode;

use ws::{HvBuild, Profile, Workspace};

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  build [--release] [--mutate M]
        build the hypervisor (refhv) and the test guests; --mutate M builds a
        mutant (`--cfg arm_vcpu_mutate=\"M\"`, see MUTATIONS in xtask/src/scenarios.rs)
  run [--guest NAME] [--release] [--iters N] [--seed S] [--mode M] [--cores N] [--vcpus N]
      [--mutate M] [--cpu MODEL]
        build, then boot guest NAME (default {default_guest}) under QEMU interactively
        with bootargs `scenario=NAME iters=N` (default N = 100), plus `seed=S`
        if given (the PRNG seed of the hostile scenario; default 1).
        `--guest linux`: Debian's arm64 Linux with a busybox shell (packages
        fetched into target/linux-cache/ on first use), bootargs
        `scenario=linux guest=linux mode=M cores=C initrd_size=BYTES vcpus=N`; --vcpus 1|2 (default
        2): its vCPUs; --cores 1|2 (default 2): the physical cores they run on;
        --mode passthrough (default: the guest owns the physical GIC, vCPU i on
        core i) or virtual (emulated GIC, list registers, vCPU i on core i, or
        all time-sliced on one core with --cores 1 = `--guest linux-virtual`).
        `--guest uboot`: Debian's U-Boot. --cpu: QEMU's CPU model (default max;
        {models}). Ctrl-A x quits QEMU
  test [--jobs N] [--seed S] [--mode M] [--cpu MODEL] [ITEM...]
        host unit tests, the package checks, the exit-cost budgets, every QEMU
        scenario (debug hypervisor) and the mutation checks, each scenario once per
        CPU model of its row (default {default_models}); ends with `N passed, M failed`.
        ITEMs (unit; package: cargo package + publish --dry-run without
        warnings; doc: cargo doc for the aarch64 targets, warnings denied; msrv:
        build with the rust-version toolchain, installed by rustup; budgets: the
        bench rows against bench/budgets.toml; a scenario name; mutation) select a
        subset; scenarios marked `(named only)` below run
        only when named. --jobs: QEMU runs at once (default 2). --seed: appends
        `seed=S` to every scenario's bootargs (decimal or 0x hex). --mode:
        Linux's `mode=` (passthrough or virtual). --cpu: run on MODEL only (rows
        bound to other models are left out unless named)
  bench [--iters N1,N2]
        exit-cost benchmark (release hypervisor, instruction-counting plugin);
        writes target/bench/exit-cost.json (default iters 100000,900000)
  help  this text

scenarios: ";

/// A parsed command line.
#[derive(Debug, PartialEq)]
enum Cmd {
    Build {
        release: bool,
        mutation: Option<String>,
    },
    Run {
        guest: String,
        release: bool,
        iters: u64,
        seed: Option<u64>,
        mode: Option<String>,
        /// `--vcpus`: the Linux guest's vCPU count (default: the scenario's).
        vcpus: Option<u64>,
        mutation: Option<String>,
        /// `--cpu`: QEMU's CPU model (default [`qemu::DEFAULT_CPU`]).
        cpu: Option<&'static str>,
    },
    Test {
        jobs: usize,
        only: Vec<String>,
        seed: Option<u64>,
        mode: Option<String>,
        /// `--cpu`: the one CPU model to test on.
        cpu: Option<&'static str>,
    },
    Bench {
        n1: u64,
        n2: u64,
    },
    Help,
}

fn value<'a>(it: &mut impl Iterator<Item = &'a str>, flag: &str) -> Result<&'a str, String> {
    it.next().ok_or_else(|| format!("{flag} needs a value"))
}

fn number<T: std::str::FromStr>(s: &str, flag: &str) -> Result<T, String> {
    s.parse()
        .map_err(|_| format!("{flag}: expected a number, got {s:?}"))
}

/// A PRNG seed: decimal or `0x` hexadecimal.
fn seed(s: &str) -> Result<u64, String> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
    .ok_or_else(|| format!("--seed: expected a number, got {s:?}"))
}

/// `--cores N` for Linux: the physical cores its two vCPUs run on. Passthrough needs
/// one core per vCPU (2); the virtual mode runs on 2 (vCPU i on core i) or 1 (both
/// time-sliced: scenario `linux-virtual`).
fn linux_variant(guest: String, mode: Option<&str>, cores: Option<u64>) -> Result<String, String> {
    let Some(cores) = cores else {
        return Ok(guest);
    };
    if guest != "linux" {
        return Err(format!("--cores applies to --guest linux, not {guest:?}"));
    }
    match (mode.unwrap_or(scenarios::DEFAULT_LINUX_MODE), cores) {
        (_, 2) => Ok(guest),
        ("virtual", 1) => Ok("linux-virtual".into()),
        ("passthrough", 1) => {
            Err("--cores 1 needs --mode virtual (passthrough runs one vCPU per core)".into())
        }
        (_, n) => Err(format!("--cores: Linux runs on 1 or 2 cores, not {n}")),
    }
}

/// `--vcpus N` for Linux: 1 or 2 (the runners have two vCPU slots).
fn vcpus(s: &str) -> Result<u64, String> {
    match s.parse() {
        Ok(n @ 1..=2) => Ok(n),
        _ => Err(format!("--vcpus: Linux runs 1 or 2 vCPUs, not {s:?}")),
    }
}

/// A Linux interrupt mode (`--mode`).
fn mode(s: &str) -> Result<String, String> {
    if scenarios::LINUX_MODES.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "--mode: expected one of {}, got {s:?}",
            scenarios::LINUX_MODES.join(", ")
        ))
    }
}

fn parse_args(args: &[&str]) -> Result<Cmd, String> {
    let Some((&sub, rest)) = args.split_first() else {
        return Ok(Cmd::Help);
    };
    let mut it = rest.iter().copied();
    let mut release = false;
    let mut mutation = None;
    let mut guest = scenarios::DEFAULT_GUEST.to_string();
    let mut iters = scenarios::DEFAULT_ITERS;
    let mut jobs = 2;
    let mut only = Vec::new();
    let mut seed_arg = None;
    let mut mode_arg = None;
    let mut cores_arg: Option<u64> = None;
    let mut vcpus_arg: Option<u64> = None;
    let mut cpu_arg = None;
    let (mut n1, mut n2) = bench::DEFAULT_ITERS;
    while let Some(a) = it.next() {
        // `--flag=value` is accepted as well as `--flag value`.
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v)),
            _ => (a, None),
        };
        let mut get = || -> Result<&str, String> {
            match inline {
                Some(v) => Ok(v),
                None => value(&mut it, flag),
            }
        };
        match (sub, flag) {
            ("build" | "run", "--release") => release = true,
            ("build" | "run", "--mutate") => mutation = Some(get()?.to_string()),
            ("run", "--guest") => guest = get()?.to_string(),
            ("run", "--iters") => iters = number(get()?, flag)?,
            ("run" | "test", "--seed") => seed_arg = Some(seed(get()?)?),
            ("run" | "test", "--mode") => mode_arg = Some(mode(get()?)?),
            ("run", "--cores") => cores_arg = Some(number(get()?, flag)?),
            ("run", "--vcpus") => vcpus_arg = Some(vcpus(get()?)?),
            ("run" | "test", "--cpu") => cpu_arg = Some(qemu::cpu_model(get()?)?),
            ("test", "--jobs" | "-j") => jobs = number(get()?, flag)?,
            ("test", item) if !item.starts_with('-') => only.push(item.to_string()),
            ("bench", "--iters") => {
                let v = get()?;
                let (a, b) = v
                    .split_once(',')
                    .ok_or_else(|| format!("--iters: expected N1,N2, got {v:?}"))?;
                (n1, n2) = (number(a, flag)?, number(b, flag)?);
                if n1 == n2 {
                    return Err("--iters: N1 and N2 must differ".into());
                }
            }
            (_, "-h" | "--help") => return Ok(Cmd::Help),
            _ => return Err(format!("unknown option {a:?} for `{sub}`")),
        }
    }
    Ok(match sub {
        "build" => Cmd::Build { release, mutation },
        "run" => Cmd::Run {
            guest: linux_variant(guest, mode_arg.as_deref(), cores_arg)?,
            release,
            iters,
            seed: seed_arg,
            mode: mode_arg,
            vcpus: vcpus_arg,
            mutation,
            cpu: cpu_arg,
        },
        "test" => Cmd::Test {
            jobs,
            only,
            seed: seed_arg,
            mode: mode_arg,
            cpu: cpu_arg,
        },
        "bench" => Cmd::Bench { n1, n2 },
        "help" | "-h" | "--help" => Cmd::Help,
        other => return Err(format!("unknown command {other:?}")),
    })
}

fn hv_build(release: bool, mutation: Option<String>) -> HvBuild {
    let profile = if release {
        Profile::Release
    } else {
        Profile::Debug
    };
    HvBuild {
        mutation,
        ..HvBuild::new(profile)
    }
}

fn build(ws: &Workspace, b: &HvBuild) -> Result<std::path::PathBuf, String> {
    let hv = ws.build_hv(b)?;
    ws.build_guests()?;
    Ok(hv)
}

/// `cargo xtask run`'s options.
struct RunOptions<'a> {
    guest: &'a str,
    iters: u64,
    seed: Option<u64>,
    mode: Option<&'a str>,
    vcpus: Option<u64>,
    cpu: Option<&'static str>,
}

fn cmd_run(ws: &Workspace, b: &HvBuild, o: &RunOptions) -> Result<ExitCode, String> {
    let guest = o.guest;
    let scenario = scenarios::find(guest);
    let linux = scenario.filter(|s| s.guest != scenarios::Guest::TestElf);
    let is_linux = linux.is_some_and(|s| s.guest == scenarios::Guest::Linux);
    if o.vcpus.is_some() && !is_linux {
        return Err(format!(
            "--vcpus applies to Linux guests (--guest linux), not {guest:?}"
        ));
    }
    if o.mode.is_some() && linux.is_none() {
        return Err(format!(
            "--mode applies to Linux guests (--guest linux), not {guest:?}"
        ));
    }
    deps::ensure(
        ws,
        deps::Needs {
            qemu: true,
            gcc: false,
        },
    )?;
    let run = if let Some(s) = linux {
        let hv = ws.build_hv(b)?;
        let assets = linux::prepare(ws)?;
        let mode = o.mode.unwrap_or(scenarios::DEFAULT_LINUX_MODE);
        let bootargs = if s.guest == scenarios::Guest::UBoot {
            let len = std::fs::metadata(&assets.u_boot)
                .map_err(|e| e.to_string())?
                .len();
            scenarios::uboot_bootargs(s.name, len)
        } else {
            let vcpus = o.vcpus.unwrap_or(u64::from(s.vcpus));
            scenarios::linux_bootargs(s, mode, assets.initramfs_len, false, vcpus)
        };
        let bootargs = scenarios::with_seed(scenarios::row_bootargs(s, bootargs), o.seed);
        println!("(QEMU's console: Ctrl-A x quits, Ctrl-A h lists its other keys)");
        linux::qemu_run(&hv, &assets, s, bootargs)
    } else {
        let hv = build(ws, b)?;
        if scenario.is_none() {
            println!("note: {guest:?} is not one of the protocol's scenarios");
        }
        let guest_elf = ws.guest_elf(scenario.map_or(guest, |s| s.guest_bin()));
        if !guest_elf.is_file() {
            return Err(format!("no guest binary {}", guest_elf.display()));
        }
        let mut bootargs = scenarios::bootargs(guest, o.iters);
        if let Some(s) = scenario {
            bootargs = scenarios::row_bootargs(s, bootargs);
        }
        let run = qemu::Run::new(&hv, &guest_elf, scenarios::with_seed(bootargs, o.seed));
        match scenario {
            Some(s) => run
                .with_cpus(s.cpus)
                .with_mem(s.mem)
                .with_machine(s.machine),
            None => run,
        }
    };
    let run = run.with_cpu(o.cpu.unwrap_or(qemu::DEFAULT_CPU));
    println!("$ {}", run.display());
    let status = run
        .command()
        .status()
        .map_err(|e| format!("{}: {e}", qemu::QEMU))?;
    let code = status.code().unwrap_or(1);
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let cmd = match parse_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}\n\n{}", usage());
            return ExitCode::from(2);
        }
    };
    let ws = Workspace::locate();
    let result = match cmd {
        Cmd::Help => {
            println!("{}", usage());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Build { release, mutation } => {
            build(&ws, &hv_build(release, mutation)).map(|_| ExitCode::SUCCESS)
        }
        Cmd::Run {
            guest,
            release,
            iters,
            seed,
            mode,
            vcpus,
            mutation,
            cpu,
        } => cmd_run(
            &ws,
            &hv_build(release, mutation),
            &RunOptions {
                guest: &guest,
                iters,
                seed,
                mode: mode.as_deref(),
                vcpus,
                cpu,
            },
        ),
        Cmd::Test {
            jobs,
            only,
            seed,
            mode,
            cpu,
        } => test::run(
            &ws,
            &test::Options {
                jobs,
                only: &only,
                seed,
                mode: mode.as_deref().unwrap_or(scenarios::DEFAULT_LINUX_MODE),
                cpu,
            },
        ),
        Cmd::Bench { n1, n2 } => bench::run(&ws, n1, n2),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The usage text and the scenario list.
fn usage() -> String {
    let names = scenarios::SCENARIOS
        .iter()
        .map(|s| {
            let mut n = s.name.to_string();
            if s.models != scenarios::DEFAULT_MODELS {
                let only = if s.model_bound { " only" } else { "" };
                n.push_str(&format!(" [{}{only}]", s.models.join(", ")));
            }
            if !s.in_default_tests {
                n.push_str(" (named only)");
            }
            n
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{}{names}",
        USAGE
            .replace("{default_guest}", scenarios::DEFAULT_GUEST)
            .replace("{models}", &qemu::CPU_MODELS.join(", "))
            .replace("{default_models}", &scenarios::DEFAULT_MODELS.join(" and "))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Cmd, String> {
        let v: Vec<&str> = s.split_whitespace().collect();
        parse_args(&v)
    }

    #[test]
    fn parses_commands() {
        assert_eq!(parse(""), Ok(Cmd::Help));
        assert_eq!(
            parse("build --release --mutate skip-tpidr"),
            Ok(Cmd::Build {
                release: true,
                mutation: Some("skip-tpidr".into())
            })
        );
        assert_eq!(
            parse("run"),
            Ok(Cmd::Run {
                guest: "linux".into(),
                release: false,
                iters: 100,
                seed: None,
                mode: None,
                vcpus: None,
                mutation: None,
                cpu: None
            })
        );
        assert_eq!(
            parse("run --guest=mmio --iters 7 --release"),
            Ok(Cmd::Run {
                guest: "mmio".into(),
                release: true,
                iters: 7,
                seed: None,
                mode: None,
                vcpus: None,
                mutation: None,
                cpu: None
            })
        );
        assert_eq!(
            parse("run --guest hostile --iters 1000 --seed 0x2a"),
            Ok(Cmd::Run {
                guest: "hostile".into(),
                release: false,
                iters: 1000,
                seed: Some(42),
                mode: None,
                vcpus: None,
                mutation: None,
                cpu: None
            })
        );
        assert_eq!(
            parse("test --seed=7 hostile"),
            Ok(Cmd::Test {
                jobs: 2,
                only: vec!["hostile".into()],
                seed: Some(7),
                mode: None,
                cpu: None
            })
        );
        assert_eq!(
            parse("test -j 1 irq mutation"),
            Ok(Cmd::Test {
                jobs: 1,
                only: vec!["irq".into(), "mutation".into()],
                seed: None,
                mode: None,
                cpu: None
            })
        );
        assert_eq!(
            parse("run --guest linux --mode virtual"),
            Ok(Cmd::Run {
                guest: "linux".into(),
                release: false,
                iters: 100,
                seed: None,
                mode: Some("virtual".into()),
                vcpus: None,
                mutation: None,
                cpu: None
            })
        );
        assert_eq!(
            parse("test --mode=passthrough linux"),
            Ok(Cmd::Test {
                jobs: 2,
                only: vec!["linux".into()],
                seed: None,
                mode: Some("passthrough".into()),
                cpu: None
            })
        );
        assert_eq!(
            parse("bench"),
            Ok(Cmd::Bench {
                n1: 100_000,
                n2: 900_000
            })
        );
        assert_eq!(
            parse("bench --iters 10,30"),
            Ok(Cmd::Bench { n1: 10, n2: 30 })
        );
    }

    #[test]
    fn parses_cpu_models() {
        assert!(matches!(
            parse("run --guest irq --cpu cortex-a53"),
            Ok(Cmd::Run { ref guest, cpu: Some("cortex-a53"), .. }) if guest == "irq"
        ));
        assert_eq!(
            parse("test --cpu=cortex-a57 irq"),
            Ok(Cmd::Test {
                jobs: 2,
                only: vec!["irq".into()],
                seed: None,
                mode: None,
                cpu: Some("cortex-a57")
            })
        );
        assert!(parse("test --cpu cortex-a15").is_err(), "no AArch64 EL2");
        assert!(parse("test --cpu").is_err());
        assert!(
            parse("bench --cpu cortex-a53").is_err(),
            "bench measures on max"
        );
        assert!(parse("build --cpu max").is_err());
        assert!(usage().contains("cortex-a53"));
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(parse("frobnicate").is_err());
        assert!(parse("build --guest demo").is_err());
        assert!(parse("run --iters").is_err());
        assert!(parse("run --iters many").is_err());
        assert!(parse("bench --iters 5,5").is_err());
        assert!(parse("bench --iters 5").is_err());
        assert!(parse("test --what").is_err());
        assert!(parse("test --seed").is_err());
        assert!(parse("run --seed x").is_err());
        assert!(parse("bench --seed 1").is_err());
        assert!(parse("run --guest linux --mode fast").is_err());
        assert!(matches!(
            parse("run --mode virtual --cores 1"),
            Ok(Cmd::Run { ref guest, .. }) if guest == "linux-virtual"
        ));
        assert!(
            matches!(parse("run --cores 2"), Ok(Cmd::Run { ref guest, .. }) if guest == "linux")
        );
        assert!(
            parse("run --cores 1").is_err(),
            "passthrough needs a core per vCPU"
        );
        assert!(parse("run --guest demo --cores 2").is_err());
        assert!(matches!(
            parse("run --vcpus 1 --mode virtual --cores 1"),
            Ok(Cmd::Run { ref guest, vcpus: Some(1), .. }) if guest == "linux-virtual"
        ));
        assert!(parse("run --vcpus 3").is_err());
        assert!(parse("run --vcpus 0").is_err());
        assert!(parse("run --mode virtual --cores 3").is_err());
        assert!(parse("run --mode").is_err());
        assert!(parse("bench --mode virtual").is_err());
    }
}
