//! `cargo xtask bench`: per-round-trip cost of a guest exit, counted by the shared
//! QEMU instruction-profile plugin on the release hypervisor.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use crate::profile::{self, ExitCost, Profile};
use crate::qemu;
use crate::scenarios::{self, SCENARIOS};
use crate::split::{self, Histogram, Split};
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

/// Builds the histogram plugin (`xtask/insn-hist/`, the crate/host split) into
/// `target/bench/`.
fn build_hist_plugin(ws: &Workspace, out_dir: &Path) -> Result<PathBuf, String> {
    let script = ws.root.join("xtask").join("insn-hist").join("build.sh");
    let so = out_dir.join("libinsn-hist.so");
    let mut c = Command::new("sh");
    c.arg(&script).arg(&so);
    run_status(c)?;
    Ok(so)
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
    /// Whether the histogram plugin is loaded too (the crate/host split).
    hist: bool,
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

fn profile_run(r: &BenchRun) -> Result<(Profile, Option<Histogram>, String), String> {
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
    let hist = if r.hist {
        let h = split::parse_hist(&log).map_err(|e| fail(format!("{}: {e}", r.log.display())))?;
        let sum: u64 = h.values().sum();
        if sum != p.inside.total {
            return Err(fail(format!(
                "insn-hist counted {sum} EL2 instructions, insn-profile {}",
                p.inside.total
            )));
        }
        Some(h)
    } else {
        None
    };
    let progress = format!(
        "  {what}: EL2 {} instructions, guest {} instructions ({:.1} s)",
        p.inside.total,
        p.outside.total,
        c.elapsed.as_secs_f64()
    );
    Ok((p, hist, progress))
}

/// Per-round-trip figures by bench row, in table order.
pub type Rows = Vec<(&'static str, ExitCost)>;

/// Builds the release hypervisor, the guests and the plugin, profiles every bench row
/// at `n1` and `n2` iterations (rows with their own counts use those) and returns the
/// per-round-trip figures, in table order, with the hypervisor's path. `quiet` drops
/// the progress lines (the budget gate prints only its verdicts).
pub fn measure(ws: &Workspace, n1: u64, n2: u64, quiet: bool) -> Result<(Rows, PathBuf), String> {
    measure_split(ws, n1, n2, quiet, false).map(|(rows, hv, _)| (rows, hv))
}

/// [`measure`], and with `with_split` each row's EL2 instructions split into the
/// crate's, the host's and the rest (see [`split`]), in table order.
fn measure_split(
    ws: &Workspace,
    n1: u64,
    n2: u64,
    quiet: bool,
    with_split: bool,
) -> Result<(Rows, PathBuf, Vec<Split>), String> {
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
    let hist_plugin = if with_split {
        let mut p = build_hist_plugin(ws, &out_dir)?.into_os_string();
        p.push(format!(",lo={:#x},hi={:#x}", range.start, range.end));
        Some(p)
    } else {
        None
    };
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
            if let Some(h) = &hist_plugin {
                run.extra.extend(["-plugin".into(), h.clone()]);
            }
            runs.push(BenchRun {
                scenario: s.name,
                iters,
                run,
                log,
                hist: hist_plugin.is_some(),
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
                Ok((_, _, progress)) => say(progress.clone()),
                Err(e) => println!("FAIL {e}"),
            }
            profiles.push(p.map(|(p, h, _)| (p, h)));
        },
    );
    let (profiles, hists): (Vec<_>, Vec<_>) = profiles
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| "a benchmark run failed (see above)".to_string())?
        .into_iter()
        .unzip();

    let mut splits = Vec::new();
    if with_split {
        let mut who = split::Attributor::new(&hv)?;
        for ((s, _), h) in benches.iter().zip(hists.chunks(2)) {
            let (a, b) = bench_iters(s, n1, n2);
            let k = u64::from(s.bench_round_trips.max(1));
            let (Some(h1), Some(h2)) = (&h[0], &h[1]) else {
                return Err(format!("{}: no histogram", s.name));
            };
            splits.push(split::split(h1, h2, a * k, b * k, |pc| who.owner(pc)));
        }
    }

    let rows: Vec<(&'static str, ExitCost)> = benches
        .iter()
        .zip(profiles.chunks(2))
        .map(|((s, row), p)| {
            let (a, b) = bench_iters(s, n1, n2);
            let k = u64::from(s.bench_round_trips.max(1));
            (*row, ExitCost::from_runs(&p[0], &p[1], a * k, b * k))
        })
        .collect();
    Ok((rows, hv, splits))
}

pub fn run(ws: &Workspace, n1: u64, n2: u64, pairs: u32) -> Result<ExitCode, String> {
    let (rows, hv, splits) = measure_split(ws, n1, n2, false, true)?;
    let benches: Vec<_> = SCENARIOS
        .iter()
        .filter_map(|s| s.bench_row.map(|row| (s, row)))
        .collect();
    print_table(&rows, n1, n2);
    print_split(&rows, &splits);
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
    let boots = linux_boots(ws, &hv, pairs)?;
    for b in &boots {
        b.print();
    }
    let mut text = profile::to_json(&rows);
    // Each row's split, as `<row>_split` objects beside it.
    if let Some(end) = text.rfind('}') {
        let mut body = text[..end].trim_end().to_string();
        for ((row, _), sp) in rows.iter().zip(&splits) {
            body = format!(
                "{body},\n  \"{row}_split\": {{\"crate\": {:.1}, \"host\": {:.1}, \"other\": {:.1}}}",
                sp.krate, sp.host, sp.other
            );
        }
        text = format!("{body}\n}}\n");
    }
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

/// The crate/host split of each row (EL2 instructions per round trip).
fn print_split(rows: &[(&str, ExitCost)], splits: &[Split]) {
    println!();
    println!(
        "Where each round trip's EL2 instructions are (by the innermost inlined frame of \
         arm_vcpu or refhv at each address, xtask/src/split.rs; \"other\" is out-of-line \
         library code such as memcpy):"
    );
    let w = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(9).max(9);
    println!(
        "{:<w$}  {:>9}  {:>9}  {:>9}  {:>9}",
        "exit kind", "total", "crate", "host", "other"
    );
    // No "-0.0" for a sum that cancels out.
    let z = |v: f64| if v.abs() < 0.05 { 0.0 } else { v };
    for ((name, c), sp) in rows.iter().zip(splits) {
        println!(
            "{name:<w$}  {:>9.1}  {:>9.1}  {:>9.1}  {:>9.1}",
            c.el2_instructions,
            z(sp.krate),
            z(sp.host),
            z(sp.other)
        );
        if (sp.total() - c.el2_instructions).abs() > 0.05 {
            println!(
                "warning: {name}: the split adds up to {:.1}, the profile says {:.1}",
                sp.total(),
                c.el2_instructions
            );
        }
    }
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

/// A Linux boot row: Debian's kernel with the busybox autotest (in one interrupt
/// mode or VM layout) under the release hypervisor, beside the same kernel and
/// initramfs booted directly by QEMU at EL1, in alternating pairs (direct, then
/// hypervised), so a busy machine slows both sides of a pair alike.
struct LinuxBoot {
    /// Row name (`linux_boot`, `linux_boot_virtual_smp`, `linux_boot_virtual_1core`).
    row: &'static str,
    /// How the guest ran.
    how: &'static str,
    /// The hypervisor's exit counts by kind (its `exits:` line, first pair).
    exits: Vec<(String, u64)>,
    /// One entry per pair.
    pairs: Vec<Pair>,
}

/// One direct and one hypervised boot, back to back.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Pair {
    /// QEMU's CPU time (user + sys), seconds: directly, under the hypervisor.
    direct_cpu: f64,
    hv_cpu: f64,
    /// Wall time, seconds (noisy; reported, not the figure).
    direct_wall: f64,
    hv_wall: f64,
}

impl Pair {
    fn ratio(&self) -> f64 {
        self.hv_cpu / self.direct_cpu.max(0.01)
    }
}

/// The median of `v` (the mean of the middle two for an even count); 0 when empty.
fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

impl LinuxBoot {
    fn ratio(&self) -> f64 {
        median(self.pairs.iter().map(Pair::ratio).collect())
    }

    fn print(&self) {
        println!();
        let each: Vec<String> = self
            .pairs
            .iter()
            .map(|p| format!("{:.2}/{:.2} s = {:.2}", p.hv_cpu, p.direct_cpu, p.ratio()))
            .collect();
        println!(
            "{} ({}): boot to userspace, autotest and power-off; QEMU CPU time (user + sys) \
             under refhv / directly at EL1: {} (median ratio {:.2} of {} pairs; wall {:.1} s / \
             {:.1} s, median)",
            self.row,
            self.how,
            each.join(", "),
            self.ratio(),
            self.pairs.len(),
            median(self.pairs.iter().map(|p| p.hv_wall).collect()),
            median(self.pairs.iter().map(|p| p.direct_wall).collect()),
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
        let pairs: Vec<String> = self
            .pairs
            .iter()
            .map(|p| {
                format!(
                    "{{\"cpu_s\": {:.3}, \"direct_cpu_s\": {:.3}, \"wall_s\": {:.3}, \
                     \"direct_wall_s\": {:.3}}}",
                    p.hv_cpu, p.direct_cpu, p.hv_wall, p.direct_wall
                )
            })
            .collect();
        format!(
            "{{\"cpu_ratio_median\": {:.3}, \"pairs\": [{}], \"exits\": {{{}}}}}",
            self.ratio(),
            pairs.join(", "),
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

/// CPU time (user + sys) of this process's waited-for children so far, from
/// `/proc/self/stat` (`cutime`, `cstime`, in the kernel's USER_HZ ticks: 100 on
/// Linux). The Linux rows run one QEMU at a time, so the difference across one run
/// is that QEMU's.
fn children_cpu() -> Result<f64, String> {
    let stat =
        std::fs::read_to_string("/proc/self/stat").map_err(|e| format!("/proc/self/stat: {e}"))?;
    children_cpu_of(&stat).ok_or_else(|| format!("cannot parse /proc/self/stat: {stat:?}"))
}

/// [`children_cpu`] from the text of a `stat` file: fields 16 and 17, counted after
/// the `(comm)` field, which may contain spaces.
fn children_cpu_of(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // rest starts at field 3 (state); cutime is field 16, cstime 17.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let cutime: u64 = f.get(13)?.parse().ok()?;
    let cstime: u64 = f.get(14)?.parse().ok()?;
    Some((cutime + cstime) as f64 / 100.0)
}

/// Runs `cmd`, returning its capture and its CPU time.
fn timed(cmd: Command, timeout: Duration) -> Result<(qemu::Captured, f64), String> {
    let before = children_cpu()?;
    let c = qemu::run_captured(cmd, timeout).map_err(|e| e.to_string())?;
    let after = children_cpu()?;
    Ok((c, after - before))
}

/// The Linux boot rows: each interrupt mode under the release hypervisor, `pairs`
/// times, each beside a direct boot of the same kernel and initramfs by QEMU at EL1.
fn linux_boots(ws: &Workspace, hv: &std::path::Path, pairs: u32) -> Result<Vec<LinuxBoot>, String> {
    if pairs == 0 {
        return Ok(Vec::new());
    }
    let s = scenarios::find("linux").ok_or("no linux scenario")?;
    let assets = crate::linux::prepare(ws)?;
    // The direct boot runs on the row's GIC (without EL2).
    let direct = |machine: &str| {
        let gic = if machine.contains("gic-version=2") {
            "virt,gic-version=2"
        } else {
            "virt,gic-version=3"
        };
        let mut direct = Command::new(qemu::QEMU);
        direct.args([
            "-M",
            gic,
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
        direct
    };
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
        (
            "linux_boot_gicv2",
            "linux-gicv2",
            "GICv2 board, passthrough GIC, 2 vCPUs on 2 cores",
        ),
        (
            "linux_boot_virtual_smp_gicv2",
            "linux-virtual-smp-gicv2",
            "GICv2 board, virtual GIC (GICH/GICV), 2 vCPUs on 2 cores",
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
        let mut boot = LinuxBoot {
            row,
            how,
            exits: Vec::new(),
            pairs: Vec::new(),
        };
        for _ in 0..pairs {
            let (d, direct_cpu) = timed(direct(s.machine), s.timeout)?;
            if !d.output.contains("LINUX_AUTOTEST: PASS") {
                return Err("linux_boot: the direct boot did not pass its autotest".into());
            }
            let run = crate::vms::row_run(ws, hv, s, &o, "")?;
            let (under, hv_cpu) = timed(run.command(), s.timeout)?;
            crate::test::judge_row(s, under.end, &under.output)
                .map_err(|e| format!("{row} under the hypervisor: {e}"))?;
            if boot.exits.is_empty() {
                boot.exits = parse_exit_stats(&under.output);
            }
            boot.pairs.push(Pair {
                direct_cpu,
                hv_cpu,
                direct_wall: d.elapsed.as_secs_f64(),
                hv_wall: under.elapsed.as_secs_f64(),
            });
        }
        out.push(boot);
    }
    Ok(out)
}

#[cfg(test)]
mod linux_boot_tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), 0.0);
        assert_eq!(median(vec![3.0]), 3.0);
        assert_eq!(median(vec![5.0, 1.0, 3.0]), 3.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn children_cpu_time_from_stat() {
        // Fields 14..17: utime stime cutime cstime; comm with spaces and a ')'.
        let stat = "1234 (cargo x) y) S 1 2 3 4 5 6 7 8 9 10 11 12 250 130 14 15 16";
        assert_eq!(children_cpu_of(stat), Some(3.8));
        assert_eq!(children_cpu_of("1 (x) S 1 2"), None);
        assert!(children_cpu().is_ok());
    }

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
