//! `cargo xtask bench`: per-round-trip cost of a guest exit, counted by the shared
//! QEMU instruction-profile plugin on the release hypervisor.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use crate::profile::{self, ExitCost, Profile};
use crate::qemu;
use crate::scenarios::{self, SCENARIOS};
use crate::ws::{run_status, HvBuild, Workspace};
use crate::{deps, elf, pool};

/// Iteration counts of the two runs per scenario. Far apart, so that a one-off
/// difference between the runs (a guest printing a longer number at the end costs
/// one more console exit) moves the per-round-trip figure by < 0.001; with the
/// same number of digits, so the bootargs cost the same to parse.
pub const DEFAULT_ITERS: (u64, u64) = (100_000, 900_000);

/// Wall-clock limit for one profiled run.
const TIMEOUT: Duration = Duration::from_secs(300);

/// Goal and the crate we measure against (per round trip).
const GOAL_INSNS: f64 = 80.0;
const GOAL_SYSREG: f64 = 5.0;
const BASELINE_INSNS: u64 = 309;
const BASELINE_SYSREG: u64 = 76;

/// The plugin's build script: the project's shared tool (`../shared/tools/
/// qemu-insn-profile/`) when it is beside the workspace, else the copy in
/// `xtask/insn-profile/` (a fresh clone elsewhere, e.g. CI).
fn plugin_script(ws: &Workspace) -> Option<PathBuf> {
    let shared = ws
        .shared()
        .join("tools")
        .join("qemu-insn-profile")
        .join("build.sh");
    let copy = ws.root.join("xtask").join("insn-profile").join("build.sh");
    [shared, copy].into_iter().find(|p| p.is_file())
}

/// Builds the plugin into `target/bench/` with its build script.
fn build_plugin(ws: &Workspace, out_dir: &Path) -> Result<PathBuf, String> {
    let script = plugin_script(ws).ok_or_else(|| {
        "plugin build script not found (neither ../shared/tools/qemu-insn-profile nor \
         xtask/insn-profile)"
            .to_string()
    })?;
    let so = out_dir.join("libinsn-profile.so");
    let mut c = Command::new("sh");
    c.arg(&script).arg(&so);
    run_status(c)?;
    Ok(so)
}

#[cfg(test)]
mod plugin_tests {
    /// The repository's copy of the plugin is the shared tool's (when it is here).
    #[test]
    fn plugin_copy_matches_the_shared_tool() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let shared = root.join("../../shared/tools/qemu-insn-profile");
        for f in ["insn-profile.c", "build.sh"] {
            let copy = std::fs::read(root.join("insn-profile").join(f)).unwrap();
            if let Ok(orig) = std::fs::read(shared.join(f)) {
                assert_eq!(
                    orig, copy,
                    "xtask/insn-profile/{f} differs from the shared tool"
                );
            }
        }
    }
}

struct BenchRun {
    scenario: &'static str,
    iters: u64,
    run: qemu::Run,
    log: PathBuf,
}

/// One profiled run: its profile and a progress line.
/// The two iteration counts of one benchmark: its own, or the global ones.
fn bench_iters(s: &scenarios::Scenario, n1: u64, n2: u64) -> (u64, u64) {
    if s.bench_iters.0 != 0 {
        s.bench_iters
    } else {
        (n1, n2)
    }
}

fn profile_run(r: &BenchRun) -> Result<(Profile, String), String> {
    let _ = std::fs::remove_file(&r.log);
    let what = format!("{} iters={}", r.scenario, r.iters);
    let c = qemu::run_captured(r.run.command(), TIMEOUT)
        .map_err(|e| format!("{what}: cannot start {}: {e}", qemu::QEMU))?;
    let fail = |why: String| {
        let tail = qemu::tail(&c.output, 40)
            .iter()
            .map(|l| format!("\n    | {l}"))
            .collect::<String>();
        format!(
            "{what}: {why}\n    command: {}\n    output (last 40 lines):{tail}",
            r.run.display()
        )
    };
    qemu::judge(r.scenario, c.end, &c.output).map_err(fail)?;
    let log = std::fs::read_to_string(&r.log)
        .map_err(|e| fail(format!("cannot read {}: {e}", r.log.display())))?;
    let p = profile::parse_log(&log).map_err(|e| fail(format!("{}: {e}", r.log.display())))?;
    if p.inside.total == 0 {
        return Err(fail(format!(
            "no instructions counted in [{:#x},{:#x}): wrong code range?",
            p.lo, p.hi
        )));
    }
    let progress = format!(
        "  {what}: EL2 {} instructions, guest {} instructions ({:.1} s)",
        p.inside.total,
        p.outside.total,
        c.elapsed.as_secs_f64()
    );
    Ok((p, progress))
}

/// Per-round-trip figures by bench row, in table order.
pub type Rows = Vec<(&'static str, ExitCost)>;

/// Builds the release hypervisor, the guests and the plugin, profiles every bench row
/// at `n1` and `n2` iterations (rows with their own counts use those) and returns the
/// per-round-trip figures, in table order, with the hypervisor's path. `quiet` drops
/// the progress lines (the budget gate prints only its verdicts).
pub fn measure(ws: &Workspace, n1: u64, n2: u64, quiet: bool) -> Result<(Rows, PathBuf), String> {
    deps::ensure(
        ws,
        deps::Needs {
            qemu: true,
            gcc: true,
        },
    )?;
    let hv = ws.build_hv(&HvBuild::new(crate::ws::Profile::Release))?;
    ws.build_guests()?;
    let out_dir = ws.target().join("bench");
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let so = build_plugin(ws, &out_dir)?;

    let image = std::fs::read(&hv).map_err(|e| format!("{}: {e}", hv.display()))?;
    let (range, source) = elf::code_range(&image).map_err(|e| format!("{}: {e}", hv.display()))?;
    let say = |s: String| {
        if !quiet {
            println!("{s}");
        }
    };
    say(format!(
        "hypervisor code: [{:#x}, {:#x}) ({} bytes, from {})",
        range.start,
        range.end,
        range.end - range.start,
        match source {
            elf::RangeSource::Symbols => "__text_start/__text_end",
            elf::RangeSource::TextSection =>
                "the .text section: no __text_start/__text_end symbols",
        }
    ));

    let mut plugin = so.into_os_string();
    plugin.push(format!(",lo={:#x},hi={:#x}", range.start, range.end));
    let benches: Vec<_> = SCENARIOS
        .iter()
        .filter_map(|s| s.bench_row.map(|row| (s, row)))
        .collect();
    let mut runs = Vec::new();
    for (s, _) in &benches {
        let guest = ws.guest_elf(s.guest_bin());
        if !guest.is_file() {
            return Err(format!("no guest binary {}", guest.display()));
        }
        let (a, b) = bench_iters(s, n1, n2);
        for iters in [a, b] {
            let log = out_dir.join(format!("{}-{iters}.log", s.name));
            // The exit path itself, without the per-exit guest/host timing (two counter
            // reads and their ISBs per round trip, `timing=1` by default; README).
            let bootargs = format!("{} timing=0", scenarios::bootargs(s.name, iters));
            let mut run = qemu::Run::new(&hv, &guest, bootargs).with_machine(s.machine);
            run.extra = vec![
                "-icount".into(),
                "shift=0,align=off,sleep=off".into(),
                "-accel".into(),
                "tcg,thread=single".into(),
                "-smp".into(),
                "1".into(),
                "-plugin".into(),
                plugin.clone(),
                "-d".into(),
                "plugin".into(),
                "-D".into(),
                log.clone().into(),
            ];
            runs.push(BenchRun {
                scenario: s.name,
                iters,
                run,
                log,
            });
        }
    }
    if n1.to_string().len() != n2.to_string().len() {
        println!(
            "note: {n1} and {n2} have different digit counts; bootargs parsing may not cancel out"
        );
    }
    say(format!(
        "profiling {} runs (iters {n1} and {n2})",
        runs.len()
    ));
    let mut profiles = Vec::new();
    pool::run(
        2,
        runs,
        |r| profile_run(&r),
        |_, p| {
            match &p {
                Ok((_, progress)) => say(progress.clone()),
                Err(e) => println!("FAIL {e}"),
            }
            profiles.push(p.map(|(p, _)| p));
        },
    );
    let profiles = profiles
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| "a benchmark run failed (see above)".to_string())?;

    let rows: Vec<(&'static str, ExitCost)> = benches
        .iter()
        .zip(profiles.chunks(2))
        .map(|((s, row), p)| {
            let (a, b) = bench_iters(s, n1, n2);
            let k = u64::from(s.bench_round_trips.max(1));
            (*row, ExitCost::from_runs(&p[0], &p[1], a * k, b * k))
        })
        .collect();
    Ok((rows, hv))
}

pub fn run(ws: &Workspace, n1: u64, n2: u64) -> Result<ExitCode, String> {
    let (rows, hv) = measure(ws, n1, n2, false)?;
    let benches: Vec<_> = SCENARIOS
        .iter()
        .filter_map(|s| s.bench_row.map(|row| (s, row)))
        .collect();
    print_table(&rows, n1, n2);
    for ((s, row), c) in benches.iter().zip(rows.iter().map(|(_, c)| c)) {
        let want_hvc = f64::from(s.bench_guest_hvcs);
        if c.guest_hvc != want_hvc {
            println!(
                "warning: {row}: {} guest hvc per iteration (expected {want_hvc})",
                c.guest_hvc
            );
        }
    }
    for (row, c) in &rows {
        if c.fields().iter().any(|(_, v)| (v - v.round()).abs() > 0.01) {
            println!(
                "note: {row}: fractional figures: something besides the round trip differs \
                 between the two runs (a periodic or one-off exit); larger --iters dilute it"
            );
        }
    }
    let boots = linux_boots(ws, &hv)?;
    for b in &boots {
        b.print();
    }
    let mut text = profile::to_json(&rows);
    // Append the linux_boot objects to the JSON map.
    if let Some(end) = text.rfind('}') {
        let mut body = text[..end].trim_end().to_string();
        for b in &boots {
            body = format!("{body},\n  \"{}\": {}", b.row, b.json());
        }
        text = format!("{body}\n}}\n");
    }
    let json = ws.target().join("bench").join("exit-cost.json");
    std::fs::write(&json, text).map_err(|e| format!("{}: {e}", json.display()))?;
    println!("wrote {}", json.display());
    Ok(ExitCode::SUCCESS)
}

fn print_table(rows: &[(&str, ExitCost)], n1: u64, n2: u64) {
    println!();
    println!(
        "Exit cost per round trip (instructions executed under QEMU TCG with -icount; \
         difference of the iters={n2} and iters={n1} runs, divided by {})",
        n2 - n1
    );
    let heads = [
        "exit kind",
        "EL2 instructions",
        "guest instructions",
        "mrs",
        "msr",
        "isb",
        "dsb",
        "TLB/cache maint",
        "eret",
    ];
    let mut widths: Vec<usize> = heads.iter().map(|h| h.len().max(9)).collect();
    // The first column fits the longest row name.
    widths[0] = rows
        .iter()
        .map(|(n, _)| n.len())
        .fold(widths[0], usize::max);
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i == 0 {
                s += &format!("{c:<w$}");
            } else {
                s += &format!("  {c:>w$}");
            }
        }
        println!("{}", s.trim_end());
    };
    line(heads.iter().map(|h| h.to_string()).collect());
    for (name, c) in rows {
        let mut cells = vec![name.to_string()];
        cells.extend(c.fields().iter().map(|(_, v)| format!("{v:.1}")));
        line(cells);
    }
    println!();
    println!(
        "Reference: goal <= {GOAL_INSNS:.0} EL2 instructions and <= {GOAL_SYSREG:.0} system-register \
         accesses (mrs+msr) per round trip; the crate we measure against: {BASELINE_INSNS} \
         instructions, {BASELINE_SYSREG} system-register accesses."
    );
    for (name, c) in rows {
        // Judged on the figures as printed (one decimal).
        let verdict = |v: f64, goal: f64| {
            if profile::round_to(v, 1) <= goal {
                "within goal"
            } else {
                "over goal"
            }
        };
        println!(
            "  {name}: {:.1} EL2 instructions ({}), {:.1} system-register accesses ({})",
            c.el2_instructions,
            verdict(c.el2_instructions, GOAL_INSNS),
            c.sysreg(),
            verdict(c.sysreg(), GOAL_SYSREG)
        );
    }
}

/// A Linux boot row: Debian's kernel with the busybox autotest (2 vCPUs, in one
/// interrupt mode) under the release hypervisor, beside the same kernel and initramfs
/// booted directly by QEMU at EL1, both timed in this run.
struct LinuxBoot {
    /// Row name (`linux_boot`, `linux_boot_virtual_smp`, `linux_boot_virtual_1core`).
    row: &'static str,
    /// How the guest ran.
    how: &'static str,
    /// The hypervisor's exit counts by kind (its `exits:` line).
    exits: Vec<(String, u64)>,
    /// Wall time under the hypervisor and directly, in seconds.
    under_hv: f64,
    direct: f64,
}

impl LinuxBoot {
    fn ratio(&self) -> f64 {
        self.under_hv / self.direct
    }

    fn print(&self) {
        println!();
        println!(
            "{} ({}): boot to userspace, autotest and power-off: {:.2} s under refhv, {:.2} s \
             directly at EL1 (ratio {:.2}; wall time, noisy)",
            self.row,
            self.how,
            self.under_hv,
            self.direct,
            self.ratio()
        );
        let list: Vec<String> = self.exits.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("  exits by kind: {}", list.join(", "));
    }

    fn json(&self) -> String {
        let exits: Vec<String> = self
            .exits
            .iter()
            .map(|(k, v)| format!("\"{k}\": {v}"))
            .collect();
        format!(
            "{{\"wall_s\": {:.3}, \"direct_wall_s\": {:.3}, \"ratio\": {:.3}, \"exits\": {{{}}}}}",
            self.under_hv,
            self.direct,
            self.ratio(),
            exits.join(", ")
        )
    }
}

/// Parses the hypervisor's `exits: ExitStats { hypercall: 2, psci: 2, ... }` lines
/// (one per VM), added up by kind in the order they first appear.
fn parse_exit_stats(output: &str) -> Vec<(String, u64)> {
    let mut total: Vec<(String, u64)> = Vec::new();
    for line in output.lines().filter(|l| l.contains("exits: ExitStats {")) {
        let inner = line
            .split('{')
            .nth(1)
            .unwrap_or("")
            .trim_end_matches(['}', ' ', '\r']);
        for kv in inner.split(',') {
            let Some((k, v)) = kv.split_once(':') else {
                continue;
            };
            let Ok(n) = v.trim().trim_end_matches('}').trim().parse::<u64>() else {
                continue;
            };
            let k = k.trim();
            match total.iter_mut().find(|(name, _)| name == k) {
                Some((_, t)) => *t += n,
                None => total.push((k.to_string(), n)),
            }
        }
    }
    total
}

/// The Linux boot rows: each interrupt mode under the release hypervisor, beside one
/// direct boot of the same kernel and initramfs by QEMU at EL1 (same run).
fn linux_boots(ws: &Workspace, hv: &std::path::Path) -> Result<Vec<LinuxBoot>, String> {
    let s = scenarios::find("linux").ok_or("no linux scenario")?;
    let assets = crate::linux::prepare(ws)?;
    let mut direct = std::process::Command::new(qemu::QEMU);
    direct.args([
        "-M",
        "virt,gic-version=3",
        "-cpu",
        "max,pauth-impdef=on",
        "-m",
        s.mem,
        "-smp",
        &s.cpus.to_string(),
        "-nographic",
        "-append",
        "console=ttyAMA0 rdinit=/init autotest",
    ]);
    direct
        .arg("-kernel")
        .arg(&assets.image)
        .arg("-initrd")
        .arg(&assets.initramfs);
    let d = qemu::run_captured(direct, s.timeout).map_err(|e| e.to_string())?;
    if !d.output.contains("LINUX_AUTOTEST: PASS") {
        return Err("linux_boot: the direct boot did not pass its autotest".into());
    }
    // Row, scenario, how it runs (each mode; one VM and two).
    let rows = [
        ("linux_boot", "linux", "passthrough GIC, 2 vCPUs on 2 cores"),
        (
            "linux_boot_virtual_smp",
            "linux-virtual-smp",
            "virtual GIC, 2 vCPUs on 2 cores",
        ),
        (
            "linux_boot_virtual_1core",
            "linux-virtual",
            "virtual GIC, 2 vCPUs time-sliced on 1 core",
        ),
        (
            "linux_boot_virtual_4v2c",
            "linux-4v2c",
            "virtual GIC, 4 vCPUs on 2 cores",
        ),
        (
            "linux_boot_2vm",
            "linux-2vm",
            "two VMs at once, virtual GIC, 2 vCPUs each on the same 2 cores",
        ),
    ];
    let mut out = Vec::new();
    for (row, name, how) in rows {
        let s = scenarios::find(name).ok_or("no linux scenario")?;
        let o = crate::vms::RowOptions {
            mode: "passthrough".into(),
            autotest: true,
            ..Default::default()
        };
        let run = crate::vms::row_run(ws, hv, s, &o, "")?;
        let under = qemu::run_captured(run.command(), s.timeout).map_err(|e| e.to_string())?;
        crate::test::judge_row(s, under.end, &under.output)
            .map_err(|e| format!("{row} under the hypervisor: {e}"))?;
        out.push(LinuxBoot {
            row,
            how,
            exits: parse_exit_stats(&under.output),
            under_hv: under.elapsed.as_secs_f64(),
            direct: d.elapsed.as_secs_f64(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod linux_boot_tests {
    use super::*;

    #[test]
    fn exit_stats_line() {
        let out = "x\n[refhv INFO ] exits: ExitStats { hypercall: 2, psci: 3, wfx: 1371054 }\ny";
        let e = parse_exit_stats(out);
        assert_eq!(
            e,
            [
                ("hypercall".into(), 2),
                ("psci".into(), 3),
                ("wfx".into(), 1_371_054)
            ]
        );
        assert!(parse_exit_stats("nothing").is_empty());
        // Two VMs: added up.
        let two = "VM a exits: ExitStats { psci: 2, wfx: 5 }\r\nVM b exits: ExitStats { psci: 3, irq: 1 }";
        assert_eq!(
            parse_exit_stats(two),
            [("psci".into(), 5), ("wfx".into(), 5), ("irq".into(), 1)]
        );
    }
}
