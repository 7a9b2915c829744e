//! Host-side runner for the arm_vcpu workspace: `cargo xtask <command>`.
//!
//! See `docs/test-protocol.md` for the QEMU command line, bootargs and markers,
//! and [`scenarios::SCENARIOS`] for the one table of scenarios.

mod bench;
mod deps;
mod elf;
mod libtest;
mod pool;
mod profile;
mod qemu;
mod scenarios;
mod test;
mod ws;

use std::process::ExitCode;

use ws::{HvBuild, Profile, Workspace};

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  build [--release] [--features F]
        build the hypervisor (refhv) and the test guests
  run [--guest NAME] [--release] [--iters N] [--seed S] [--features F]
        build, then boot guest NAME (default demo) under QEMU interactively
        with bootargs `scenario=NAME iters=N` (default N = 100), plus `seed=S`
        if given (the PRNG seed of the hostile scenario; default 1)
  test [--jobs N] [--seed S] [ITEM...]
        host unit tests, every QEMU scenario (debug hypervisor) and the mutation
        check; ends with `N passed, M failed`. ITEMs (unit, a scenario name,
        mutation) select a subset. --jobs: QEMU runs at once (default 2).
        --seed: appends `seed=S` to every scenario's bootargs (decimal or 0x hex)
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
        features: Vec<String>,
    },
    Run {
        guest: String,
        release: bool,
        iters: u64,
        seed: Option<u64>,
        features: Vec<String>,
    },
    Test {
        jobs: usize,
        only: Vec<String>,
        seed: Option<u64>,
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

fn features(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split([',', ' '])
        .filter(|f| !f.is_empty())
        .map(str::to_string)
}

fn parse_args(args: &[&str]) -> Result<Cmd, String> {
    let Some((&sub, rest)) = args.split_first() else {
        return Ok(Cmd::Help);
    };
    let mut it = rest.iter().copied();
    let mut release = false;
    let mut feats = Vec::new();
    let mut guest = scenarios::DEFAULT_GUEST.to_string();
    let mut iters = scenarios::DEFAULT_ITERS;
    let mut jobs = 2;
    let mut only = Vec::new();
    let mut seed_arg = None;
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
            ("build" | "run", "--features" | "-F") => feats.extend(features(get()?)),
            ("run", "--guest") => guest = get()?.to_string(),
            ("run", "--iters") => iters = number(get()?, flag)?,
            ("run" | "test", "--seed") => seed_arg = Some(seed(get()?)?),
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
        "build" => Cmd::Build {
            release,
            features: feats,
        },
        "run" => Cmd::Run {
            guest,
            release,
            iters,
            seed: seed_arg,
            features: feats,
        },
        "test" => Cmd::Test {
            jobs,
            only,
            seed: seed_arg,
        },
        "bench" => Cmd::Bench { n1, n2 },
        "help" | "-h" | "--help" => Cmd::Help,
        other => return Err(format!("unknown command {other:?}")),
    })
}

fn hv_build(release: bool, features: Vec<String>) -> HvBuild {
    let profile = if release {
        Profile::Release
    } else {
        Profile::Debug
    };
    HvBuild {
        features,
        ..HvBuild::new(profile)
    }
}

fn build(ws: &Workspace, b: &HvBuild) -> Result<std::path::PathBuf, String> {
    let hv = ws.build_hv(b)?;
    ws.build_guests()?;
    Ok(hv)
}

fn cmd_run(
    ws: &Workspace,
    guest: &str,
    b: &HvBuild,
    iters: u64,
    seed: Option<u64>,
) -> Result<ExitCode, String> {
    deps::ensure(
        ws,
        deps::Needs {
            qemu: true,
            gcc: false,
        },
    )?;
    let hv = build(ws, b)?;
    if scenarios::find(guest).is_none() {
        println!("note: {guest:?} is not one of the protocol's scenarios");
    }
    let guest_elf = ws.guest_elf(guest);
    if !guest_elf.is_file() {
        return Err(format!("no guest binary {}", guest_elf.display()));
    }
    let cpus = scenarios::find(guest).map_or(1, |s| s.cpus);
    let bootargs = scenarios::with_seed(scenarios::bootargs(guest, iters), seed);
    let run = qemu::Run::new(&hv, &guest_elf, bootargs).with_cpus(cpus);
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
            eprintln!("error: {e}\n\n{USAGE}{}", scenario_names());
            return ExitCode::from(2);
        }
    };
    let ws = Workspace::locate();
    let result = match cmd {
        Cmd::Help => {
            println!("{USAGE}{}", scenario_names());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Build { release, features } => {
            build(&ws, &hv_build(release, features)).map(|_| ExitCode::SUCCESS)
        }
        Cmd::Run {
            guest,
            release,
            iters,
            seed,
            features,
        } => cmd_run(&ws, &guest, &hv_build(release, features), iters, seed),
        Cmd::Test { jobs, only, seed } => test::run(&ws, jobs, &only, seed),
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

fn scenario_names() -> String {
    scenarios::SCENARIOS
        .iter()
        .map(|s| s.name)
        .collect::<Vec<_>>()
        .join(", ")
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
            parse("build --release --features a,b -F c"),
            Ok(Cmd::Build {
                release: true,
                features: vec!["a".into(), "b".into(), "c".into()]
            })
        );
        assert_eq!(
            parse("run"),
            Ok(Cmd::Run {
                guest: "demo".into(),
                release: false,
                iters: 100,
                seed: None,
                features: vec![]
            })
        );
        assert_eq!(
            parse("run --guest=mmio --iters 7 --release"),
            Ok(Cmd::Run {
                guest: "mmio".into(),
                release: true,
                iters: 7,
                seed: None,
                features: vec![]
            })
        );
        assert_eq!(
            parse("run --guest hostile --iters 1000 --seed 0x2a"),
            Ok(Cmd::Run {
                guest: "hostile".into(),
                release: false,
                iters: 1000,
                seed: Some(42),
                features: vec![]
            })
        );
        assert_eq!(
            parse("test --seed=7 hostile"),
            Ok(Cmd::Test {
                jobs: 2,
                only: vec!["hostile".into()],
                seed: Some(7)
            })
        );
        assert_eq!(
            parse("test -j 1 irq mutation"),
            Ok(Cmd::Test {
                jobs: 1,
                only: vec!["irq".into(), "mutation".into()],
                seed: None
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
    }
}
