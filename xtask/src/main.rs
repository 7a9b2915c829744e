//! Host-side runner for the arm_vcpu workspace: `cargo xtask <command>`.
//!
//! See `docs/test-protocol.md` for the QEMU command line, bootargs and markers,
//! and [`scenarios::SCENARIOS`] for the one table of scenarios.

mod bench;
mod budget;
mod cpio;
mod deps;
mod elf;
mod hv;
mod libtest;
mod linux;
mod package;
mod pool;
mod profile;
mod qemu;
mod scenarios;
mod split;
mod test;
mod trace;
mod vms;
mod ws;

// The hypervisor's pure modules compiled in here (`vms::hv`) use `alloc::`.
extern crate alloc;

/// The reference hypervisor's device-tree parser and memory carver (pure code), tested
/// here on the host against device trees written with vm-fdt.
#[cfg(test)]
#[path = "../../hypervisor/src/platform/board.rs"]
#[allow(dead_code)]
mod board;

// [gicv2] The reference hypervisor's emulated GICv2 distributor and its guest
// device-tree node (pure code), tested here on the host.
#[cfg(test)]
#[path = "../../hypervisor/src/vgicd_v2.rs"]
#[allow(dead_code)]
mod vgicd_v2;
#[cfg(test)]
mod vgicd_v2_tests;

/// The reference hypervisor's test device (lock-free, pure code), tested here on the
/// host against the byte array it replaced.
#[cfg(test)]
#[path = "../../hypervisor/src/devices/testdev.rs"]
#[allow(dead_code)]
mod testdev;

use std::process::ExitCode;

use ws::{HvBuild, Profile, Workspace};

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  build [--release] [--mutate M]
        build the hypervisor (refhv) and the test guests; --mutate M builds a
        mutant (`--cfg arm_vcpu_mutate=\"M\"`, see MUTATIONS in xtask/src/scenarios.rs)
  run [--guest NAME] [--release] [--iters N] [--seed S] [--mode M] [--cores C] [--vcpus N]
      [--trace] [--mutate M] [--gic 2|3|4]
        build, then boot guest NAME (default {default_guest}) under QEMU interactively.
        A test scenario runs with bootargs `scenario=NAME iters=N` (default N = 100),
        plus `seed=S` if given. `--guest linux` (the default): Debian's arm64 Linux
        with a busybox shell (packages fetched into target/linux-cache/ on first use),
        2 vCPUs; --vcpus N: its vCPUs (1 to 8); --cores C: the physical cores they may
        run on (a count, or a list such as 0,2); --mode passthrough (default: the
        guest owns the physical GIC, one vCPU per core) or virtual (emulated GIC, list
        registers; any number of vCPUs on any cores, time-sliced when fewer).
        `--guest uboot`: Debian's U-Boot. --trace: record exits (`trace=1`).
        --cpu: QEMU's CPU model (default max; {models}). --gic 2: on QEMU virt with a
        GICv2 (gic-version=2, GIC-400 class; 3 and 4 likewise; default: the row's
        board, GICv3). Ctrl-A x quits QEMU
  run --kernel PATH [--initrd PATH] [--dtb PATH] [--append \"...\"] [--mem SIZE]
      [--vcpus N] [--cores C] [--mode M] [--load-offset OFF] [--name NAME] [--smp N]
        boot your own kernel: a Linux arm64 Image (recognised by its header), an ELF,
        or a raw binary (with --load-offset, where in RAM it goes and starts); a device
        tree is written unless --dtb gives one; --append is its command line (default
        `console=ttyAMA0 earlycon=pl011,0x9000000`); defaults: 512M, 2 vCPUs, virtual
        mode, every core. The files are staged with QEMU's loader and described to the
        hypervisor in a VM manifest (docs/test-protocol.md)
  run --vm FILE.toml [--vm FILE.toml ...] [--smp N]
        boot the VMs the files describe, side by side (keys: name, kernel, format,
        load_offset, initrd, dtb, cmdline, bootcmd, memory, vcpus, cores, placement,
        mode, console, slice_us, wfi, timer; see vms/*.toml)
  trace [--guest NAME | --kernel ... | --vm FILE ...] [--release]
        run once with exit recording (Linux with its autotest) and render
        target/trace/<name>.svg: exits per vCPU over time, by kind
  test [--jobs N] [--seed S] [--mode M] [--cpu MODEL] [ITEM...]
        host unit tests, the package checks, the exit-cost budgets, every QEMU
        scenario (debug hypervisor) and the mutation checks, each scenario once per
        CPU model of its row (default {default_models}); ends with `N passed, M failed`.
        ITEMs (unit; package: cargo package + publish --dry-run without
        warnings; doc: cargo doc for the aarch64 targets, warnings denied; msrv:
        build with the rust-version toolchain, installed by rustup; budgets: the
        bench rows against bench/budgets.toml; a scenario name; mutation) select a
        subset; scenarios marked `(named only)` below run only when named. --jobs:
        QEMU runs at once (default 2). --seed: appends `seed=S` to every scenario's
        bootargs (decimal or 0x hex). --mode: Linux's mode (passthrough or virtual)
        for rows without their own. --cpu: run on MODEL only (rows bound to other
        models are left out unless named)
  bench [--iters N1,N2] [--linux-pairs P]
        exit-cost benchmark (release hypervisor, instruction-counting plugin), each
        row split into the crate's and the host's instructions; then each Linux boot
        row P times (default 3, 0: none) beside a direct boot, alternating, with
        QEMU's CPU time (user + sys) and the median ratio; writes
        target/bench/exit-cost.json (default iters 100000,900000)
  help  this text

scenarios: ";

/// What `run` and `trace` boot.
#[derive(Debug, PartialEq, Default)]
struct RunArgs {
    guest: String,
    release: bool,
    iters: u64,
    seed: Option<u64>,
    mode: Option<String>,
    vcpus: Option<usize>,
    /// `--cores` (a count or a list).
    cores: Option<String>,
    mutation: Option<String>,
    /// `--kernel` and its companions.
    kernel: Option<vms::KernelArgs>,
    /// `--vm FILE` (repeatable).
    vm_files: Vec<String>,
    /// QEMU's core count, when the VMs' own would not do.
    smp: Option<u8>,
    trace: bool,
    /// `--cpu`: QEMU's CPU model (default [`qemu::DEFAULT_CPU`]).
    cpu: Option<&'static str>,
    /// `--gic N`: QEMU's machine with GIC version N (2, 3 or 4) instead of the row's.
    machine: Option<&'static str>,
}

/// A parsed command line.
#[derive(Debug, PartialEq)]
enum Cmd {
    Build {
        release: bool,
        mutation: Option<String>,
    },
    Run(RunArgs),
    Trace(RunArgs),
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
        /// Alternating direct/hypervised pairs per Linux boot row (0: none).
        pairs: u32,
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

/// A number: decimal or `0x` hexadecimal.
fn number_or_hex(s: &str, flag: &str) -> Result<u64, String> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
    .ok_or_else(|| format!("{flag}: expected a number, got {s:?}"))
}

/// A PRNG seed: decimal or `0x` hexadecimal.
fn seed(s: &str) -> Result<u64, String> {
    number_or_hex(s, "--seed")
}

/// `--vcpus N`: 1 to the most a VM may have.
fn vcpus(s: &str) -> Result<usize, String> {
    match s.parse() {
        Ok(n @ 1..=vms::config::MAX_VCPUS) => Ok(n),
        _ => Err(format!(
            "--vcpus: a VM has 1 to {} vCPUs, not {s:?}",
            vms::config::MAX_VCPUS
        )),
    }
}

/// A Linux interrupt mode (`--mode`).
/// `--gic N`: the QEMU `virt` machine with that GIC (the hypervisor discovers it).
fn gic_machine(s: &str) -> Result<&'static str, String> {
    match s {
        "2" => Ok(scenarios::GICV2),
        "3" => Ok(qemu::DEFAULT_MACHINE),
        "4" => Ok(scenarios::GICV4),
        _ => Err(format!("--gic: expected 2, 3 or 4, got {s:?}")),
    }
}

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
    let mut r = RunArgs {
        guest: scenarios::DEFAULT_GUEST.to_string(),
        iters: scenarios::DEFAULT_ITERS,
        ..Default::default()
    };
    let mut guest_given = false;
    let mut k = vms::KernelArgs::default();
    let mut kernel_opts = Vec::new();
    let mut jobs = 2;
    let mut only = Vec::new();
    let mut seed_arg = None;
    let mut mode_arg = None;
    let mut cpu_arg = None;
    let (mut n1, mut n2) = bench::DEFAULT_ITERS;
    let mut pairs: u32 = 3;
    let run_like = sub == "run" || sub == "trace";
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
            ("build" | "run" | "trace", "--release") => release = true,
            ("build" | "run", "--mutate") => mutation = Some(get()?.to_string()),
            (_, "--guest") if run_like => {
                r.guest = get()?.to_string();
                guest_given = true;
            }
            ("run", "--iters") => r.iters = number(get()?, flag)?,
            ("run" | "test", "--seed") => seed_arg = Some(seed(get()?)?),
            ("run" | "test" | "trace", "--mode") => mode_arg = Some(mode(get()?)?),
            ("run" | "test" | "trace", "--cpu") => cpu_arg = Some(qemu::cpu_model(get()?)?),
            (_, "--gic") if run_like => r.machine = Some(gic_machine(get()?)?),
            (_, "--cores") if run_like => r.cores = Some(get()?.to_string()),
            (_, "--vcpus") if run_like => r.vcpus = Some(vcpus(get()?)?),
            (_, "--kernel") if run_like => k.kernel = get()?.to_string(),
            (_, "--initrd") if run_like => kernel_opts.push(("--initrd", get()?.to_string())),
            (_, "--dtb") if run_like => kernel_opts.push(("--dtb", get()?.to_string())),
            (_, "--append") if run_like => kernel_opts.push(("--append", get()?.to_string())),
            (_, "--mem") if run_like => kernel_opts.push(("--mem", get()?.to_string())),
            (_, "--name") if run_like => kernel_opts.push(("--name", get()?.to_string())),
            (_, "--load-offset") if run_like => {
                k.load_offset = Some(number_or_hex(get()?, flag)?);
                kernel_opts.push(("--load-offset", String::new()));
            }
            (_, "--vm") if run_like => r.vm_files.push(get()?.to_string()),
            (_, "--smp") if run_like => r.smp = Some(number(get()?, flag)?),
            ("run", "--trace") => r.trace = true,
            ("test", "--jobs" | "-j") => jobs = number(get()?, flag)?,
            ("test", item) if !item.starts_with('-') => only.push(item.to_string()),
            ("bench", "--linux-pairs") => pairs = number(get()?, flag)?,
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
    if run_like {
        for (f, v) in kernel_opts.drain(..) {
            if k.kernel.is_empty() {
                return Err(format!("{f} goes with --kernel"));
            }
            match f {
                "--initrd" => k.initrd = Some(v),
                "--dtb" => k.dtb = Some(v),
                "--append" => k.append = Some(v),
                "--mem" => k.mem = Some(v),
                "--name" => k.name = Some(v),
                _ => {}
            }
        }
        let kinds = usize::from(!k.kernel.is_empty())
            + usize::from(!r.vm_files.is_empty())
            + usize::from(guest_given);
        if kinds > 1 {
            return Err("give one of --guest, --kernel and --vm".into());
        }
        if !r.vm_files.is_empty() && (r.vcpus.is_some() || r.cores.is_some() || mode_arg.is_some())
        {
            return Err("--vcpus, --cores and --mode describe --kernel or --guest VMs; a --vm file says its own".into());
        }
        if let Some(c) = &r.cores {
            vms::parse_cores(c)?;
        }
        if !k.kernel.is_empty() {
            k.vcpus = r.vcpus;
            k.cores = r.cores.clone();
            k.mode = mode_arg.clone();
            r.kernel = Some(k);
        }
    }
    r.release = release;
    r.mutation = mutation;
    r.seed = seed_arg;
    r.mode = mode_arg.clone();
    r.cpu = cpu_arg;
    Ok(match sub {
        "build" => Cmd::Build {
            release,
            mutation: r.mutation,
        },
        "run" => Cmd::Run(r),
        "trace" => Cmd::Trace(r),
        "test" => Cmd::Test {
            jobs,
            only,
            seed: seed_arg,
            mode: mode_arg,
            cpu: cpu_arg,
        },
        "bench" => Cmd::Bench { n1, n2, pairs },
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

/// The QEMU run `run`/`trace` asks for, and its name; `autotest`: Linux checks itself
/// and powers off (`trace`), `extra`: more bootargs.
fn make_run(
    ws: &Workspace,
    b: &HvBuild,
    o: &RunArgs,
    autotest: bool,
    extra: &str,
) -> Result<(qemu::Run, String), String> {
    deps::ensure(
        ws,
        deps::Needs {
            qemu: true,
            gcc: false,
        },
    )?;
    let mut extra = extra.to_string();
    if let Some(s) = o.seed {
        extra = format!("{extra} seed={s}").trim().to_string();
    }
    // A user's own VMs: from --kernel or --vm files.
    let own: Option<(Vec<vms::VmConfig>, String)> = if let Some(k) = &o.kernel {
        let v = vms::from_kernel_args(k)?;
        let name = v.name.clone();
        Some((vec![v], name))
    } else if !o.vm_files.is_empty() {
        let mut all = Vec::new();
        for f in &o.vm_files {
            all.extend(vms::load_file(std::path::Path::new(f))?);
        }
        Some((all, "vms".into()))
    } else {
        None
    };
    if let Some((mut list, name)) = own {
        let hv = ws.build_hv(b)?;
        let cpus = o.smp.unwrap_or_else(|| vms::cores_needed(&list, 2));
        let mem = vms::mem_needed(&list);
        // What the hypervisor would refuse, refused here first (same checks).
        vms::config::check_set(&mut list, cpus as usize, u64::MAX).map_err(|e| e.0)?;
        let staged = vms::stage(
            &list,
            &ws.target()
                .join("xtask")
                .join("vms")
                .join(format!("{name}.toml")),
        )?;
        let mut bootargs = format!("scenario={name} {}", staged.bootarg);
        if !extra.is_empty() {
            bootargs = format!("{bootargs} {extra}");
        }
        return Ok((vms::qemu_run(&hv, &staged, bootargs, cpus, &mem), name));
    }
    let guest = o.guest.as_str();
    let scenario = scenarios::find(guest);
    let os = scenario.filter(|s| s.guest != scenarios::Guest::TestElf);
    if (o.vcpus.is_some() || o.cores.is_some() || o.mode.is_some())
        && !os.is_some_and(|s| matches!(s.guest, scenarios::Guest::Linux(_)))
    {
        return Err(format!(
            "--vcpus, --cores and --mode apply to Linux guests (--guest linux), not {guest:?}"
        ));
    }
    if let Some(s) = os {
        let hv = ws.build_hv(b)?;
        if matches!(
            s.guest,
            scenarios::Guest::Refused(_)
                | scenarios::Guest::ElfVm(_)
                | scenarios::Guest::FaultyPair
        ) {
            ws.build_guests()?;
        }
        let ro = vms::RowOptions {
            mode: o
                .mode
                .clone()
                .unwrap_or_else(|| scenarios::DEFAULT_LINUX_MODE.to_string()),
            autotest,
            vcpus: o.vcpus,
            cores: o.cores.as_deref().map(vms::parse_cores).transpose()?,
        };
        let mut run = vms::row_run(ws, &hv, s, &ro, &extra)?;
        if let Some(cores) = &ro.cores {
            // Enough QEMU cores for the ones asked for.
            let top = cores.iter().max().map_or(0, |c| c + 1) as u8;
            let cpus = run.cpus.max(top);
            run = run.with_cpus(cpus);
        }
        if let Some(n) = o.smp {
            run = run.with_cpus(n);
        }
        return Ok((run, s.name.to_string()));
    }
    let hv = build(ws, b)?;
    if scenario.is_none() {
        println!("note: {guest:?} is not one of the protocol's scenarios");
    }
    let guest_elf = ws.guest_elf(scenario.map_or(guest, |s| s.guest_bin()));
    if !guest_elf.is_file() {
        return Err(format!("no guest binary {}", guest_elf.display()));
    }
    let mut bootargs = scenarios::bootargs(guest, o.iters);
    if !extra.is_empty() {
        bootargs = format!("{bootargs} {extra}");
    }
    let run = qemu::Run::new(&hv, &guest_elf, bootargs);
    let run = match scenario {
        Some(s) => run
            .with_cpus(o.smp.unwrap_or(s.cpus))
            .with_mem(s.mem)
            .with_machine(s.machine),
        None => run,
    };
    Ok((run, guest.to_string()))
}

/// The run on the machine `--gic` names, if it names one.
fn with_gic(run: qemu::Run, o: &RunArgs) -> qemu::Run {
    match o.machine {
        Some(m) => run.with_machine(m),
        None => run,
    }
}

fn cmd_run(ws: &Workspace, b: &HvBuild, o: &RunArgs) -> Result<ExitCode, String> {
    let extra = if o.trace { "trace=1" } else { "" };
    let (run, _) = make_run(ws, b, o, false, extra)?;
    let run = with_gic(run, o).with_cpu(o.cpu.unwrap_or(qemu::DEFAULT_CPU));
    println!("(QEMU's console: Ctrl-A x quits, Ctrl-A h lists its other keys)");
    println!("$ {}", run.display());
    let status = run
        .command()
        .status()
        .map_err(|e| format!("{}: {e}", qemu::QEMU))?;
    let code = status.code().unwrap_or(1);
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// `cargo xtask trace`: one run with `trace=1`, its records rendered as an SVG.
fn cmd_trace(ws: &Workspace, b: &HvBuild, o: &RunArgs) -> Result<ExitCode, String> {
    let (run, name) = make_run(ws, b, o, true, "trace=1")?;
    // `--mode virtual` and the default passthrough draw different pictures, and so
    // do the GIC versions.
    let name = match &o.mode {
        Some(m) => format!("{name}-{m}"),
        None => name,
    };
    let name = match o.machine {
        Some(m) if m.contains("gic-version=2") => format!("{name}-gicv2"),
        Some(m) if m.contains("gic-version=4") => format!("{name}-gicv4"),
        _ => name,
    };
    let run = with_gic(run, o).with_cpu(o.cpu.unwrap_or(qemu::DEFAULT_CPU));
    println!("$ {}", run.display());
    let c = qemu::run_captured(run.command(), std::time::Duration::from_secs(600))
        .map_err(|e| format!("{}: {e}", qemu::QEMU))?;
    let dir = ws.target().join("trace");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let log = dir.join(format!("{name}.log"));
    let _ = std::fs::write(&log, &c.output);
    let t = trace::parse(&c.output).map_err(|e| format!("{e} (log: {})", log.display()))?;
    let svg = dir.join(format!("{name}.svg"));
    std::fs::write(&svg, trace::render_svg(&t, &name))
        .map_err(|e| format!("{}: {e}", svg.display()))?;
    print!("{}", trace::kinds_table(&t));
    println!(
        "{} exits recorded ({} dropped) in {:.1} s; wrote {} (log {})",
        t.exits.len(),
        t.dropped,
        c.elapsed.as_secs_f64(),
        svg.display(),
        log.display()
    );
    Ok(if c.end == qemu::End::Exited(Some(0)) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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
        Cmd::Run(r) => cmd_run(&ws, &hv_build(r.release, r.mutation.clone()), &r),
        Cmd::Trace(r) => cmd_trace(&ws, &hv_build(r.release, r.mutation.clone()), &r),
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
        Cmd::Bench { n1, n2, pairs } => bench::run(&ws, n1, n2, pairs),
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

    fn run(guest: &str) -> RunArgs {
        RunArgs {
            guest: guest.into(),
            iters: 100,
            ..Default::default()
        }
    }

    #[test]
    fn parses_the_gic_option() {
        assert_eq!(
            parse("run --gic 2"),
            Ok(Cmd::Run(RunArgs {
                machine: Some("virt,virtualization=on,gic-version=2"),
                ..run("linux")
            }))
        );
        assert_eq!(
            parse("trace --gic=4"),
            Ok(Cmd::Trace(RunArgs {
                machine: Some(scenarios::GICV4),
                ..run("linux")
            }))
        );
        assert!(parse("run --gic 1").is_err());
        assert!(parse("test --gic 2").is_err());
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
        assert_eq!(parse("run"), Ok(Cmd::Run(run("linux"))));
        assert_eq!(
            parse("run --guest=mmio --iters 7 --release"),
            Ok(Cmd::Run(RunArgs {
                iters: 7,
                release: true,
                ..run("mmio")
            }))
        );
        assert_eq!(
            parse("run --guest hostile --iters 1000 --seed 0x2a"),
            Ok(Cmd::Run(RunArgs {
                iters: 1000,
                seed: Some(42),
                ..run("hostile")
            }))
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
            parse("run --guest linux --mode virtual --cores 1 --vcpus 4"),
            Ok(Cmd::Run(RunArgs {
                mode: Some("virtual".into()),
                cores: Some("1".into()),
                vcpus: Some(4),
                ..run("linux")
            }))
        );
        assert_eq!(
            parse("bench --iters 10,30"),
            Ok(Cmd::Bench {
                n1: 10,
                n2: 30,
                pairs: 3
            })
        );
        assert!(
            matches!(parse("trace --guest linux-2vm"), Ok(Cmd::Trace(RunArgs { ref guest, .. })) if guest == "linux-2vm")
        );
    }

    #[test]
    fn parses_a_users_kernel() {
        let c = parse(
            "run --kernel my/Image --initrd my/initrd --append=console=ttyAMA0 --mem 1G \
             --vcpus 3 --cores 0,1 --mode passthrough --smp 4",
        )
        .unwrap();
        let Cmd::Run(r) = c else { panic!("{c:?}") };
        assert_eq!(
            r.kernel,
            Some(vms::KernelArgs {
                kernel: "my/Image".into(),
                initrd: Some("my/initrd".into()),
                append: Some("console=ttyAMA0".into()),
                mem: Some("1G".into()),
                vcpus: Some(3),
                cores: Some("0,1".into()),
                mode: Some("passthrough".into()),
                ..Default::default()
            })
        );
        assert_eq!(r.smp, Some(4));
        let Ok(Cmd::Run(r)) = parse("run --kernel u-boot.bin --load-offset 0x200000") else {
            panic!()
        };
        assert_eq!(r.kernel.unwrap().load_offset, Some(0x20_0000));
        let Ok(Cmd::Run(r)) = parse("run --vm a.toml --vm b.toml") else {
            panic!()
        };
        assert_eq!(r.vm_files, ["a.toml", "b.toml"]);
    }

    #[test]
    fn parses_cpu_models() {
        assert!(matches!(
            parse("run --guest irq --cpu cortex-a53"),
            Ok(Cmd::Run(RunArgs { ref guest, cpu: Some("cortex-a53"), .. })) if guest == "irq"
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
        assert!(parse("run --vcpus 9").is_err());
        assert!(parse("run --vcpus 0").is_err());
        assert!(parse("run --cores 0").is_err());
        assert!(parse("run --cores x,1").is_err());
        assert!(parse("run --mode").is_err());
        assert!(parse("bench --mode virtual").is_err());
        assert_eq!(
            parse("run --initrd x"),
            Err("--initrd goes with --kernel".into())
        );
        assert!(parse("run --kernel k --vm v.toml").is_err());
        assert!(parse("run --kernel k --guest demo").is_err());
        assert!(parse("run --vm v.toml --vcpus 2").is_err());
        assert!(parse("run --load-offset zz --kernel k").is_err());
    }
}
