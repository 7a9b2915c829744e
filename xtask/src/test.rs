//! `cargo xtask test`: host unit tests, every QEMU scenario, the mutation check.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};

use crate::qemu::{self, End};
use crate::scenarios::{self, Guest, Scenario, MUTATIONS, SCENARIOS};
use crate::ws::{self, HvBuild, Profile, Workspace};
use crate::{budget, deps, libtest, linux, package, pool};

/// Host crates whose tests run under `cargo xtask test`.
const HOST_CRATES: &[&str] = &[package::LIB_PACKAGE, package::ADAPTER_PACKAGE, "xtask"];
/// One package check: its item name and what runs it.
type PackageCheck = (&'static str, fn(&Workspace) -> package::Check);
/// The package checks (`package.rs`), each one test item, run after the unit tests.
const PACKAGE_CHECKS: &[PackageCheck] = &[
    ("package", package::package),
    ("doc", package::doc),
    ("msrv", package::msrv),
];
/// Lines of output shown for a failed QEMU run.
const TAIL_LINES: usize = 40;

#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
}

impl Tally {
    fn item(&mut self, ok: bool, line: &str) {
        if ok {
            self.passed += 1;
            println!("PASS {line}");
        } else {
            self.failed += 1;
            println!("FAIL {line}");
        }
    }
}

/// What a QEMU item expects of its scenario.
#[derive(Clone, Copy)]
enum Expect {
    Pass,
    /// The mutation check: the scenario must fail, for this mutation's reason.
    Fail(&'static scenarios::Mutation),
}

/// One QEMU test item, ready to run (or already failed before running).
struct Item {
    label: String,
    /// Log file name (without `.log`): one per item and CPU model.
    log: String,
    scenario: &'static Scenario,
    expect: Expect,
    run: Result<qemu::Run, String>,
}

struct Outcome {
    ok: bool,
    line: String,
    details: Vec<String>,
}

fn selected(only: &[String], item: &str) -> bool {
    only.is_empty() || only.iter().any(|o| o == item)
}

/// `cargo xtask test`'s options.
pub struct Options<'a> {
    pub jobs: usize,
    /// ITEMs; empty: the default set.
    pub only: &'a [String],
    pub seed: Option<u64>,
    /// `mode=` of Linux guests.
    pub mode: &'a str,
    /// `--cpu`: the one CPU model to run on (`None`: each row's models).
    pub cpu: Option<&'static str>,
}

pub fn run(ws: &Workspace, opts: &Options) -> Result<ExitCode, String> {
    let Options {
        jobs,
        only,
        seed,
        mode,
        cpu,
    } = *opts;
    for o in only {
        let check = PACKAGE_CHECKS.iter().any(|(name, _)| name == o);
        if o != "unit"
            && o != "mutation"
            && o != "budgets"
            && !check
            && scenarios::find(o).is_none()
        {
            return Err(format!(
                "unknown test item {o:?} (unit, package, doc, msrv, budgets, mutation, or a scenario name)"
            ));
        }
    }
    let mut tally = Tally::default();
    let matrix = scenarios::matrix(only, cpu);
    let scenarios: Vec<&'static Scenario> = SCENARIOS
        .iter()
        .filter(|s| matrix.iter().any(|(m, _)| m.name == s.name))
        .collect();
    let mutation = selected(only, "mutation");
    let need_qemu = !scenarios.is_empty() || mutation;

    let deps = deps::ensure(
        ws,
        deps::Needs {
            qemu: need_qemu,
            gcc: false,
        },
    );
    if let Err(e) = &deps {
        println!("error: {e}");
    }

    if selected(only, "unit") {
        unit_tests(ws, &mut tally);
    }
    for (name, check) in PACKAGE_CHECKS {
        if selected(only, name) {
            let c = check(ws);
            tally.item(c.ok, &c.line);
            for d in &c.details {
                println!("    {d}");
            }
        }
    }
    if selected(only, "budgets") {
        budget_gate(ws, &mut tally);
    }

    // Debian's kernel and busybox: only when a Linux item runs (the first time
    // downloads them).
    let linux_assets = scenarios
        .iter()
        .any(|s| {
            !matches!(
                s.guest,
                Guest::TestElf | Guest::Refused(_) | Guest::ElfVm(_) | Guest::FaultyPair
            )
        })
        .then(|| linux::prepare(ws));
    if let Some(Err(e)) = &linux_assets {
        println!("error: {e}");
    }

    let mut items = Vec::new();
    if need_qemu {
        let guests = ws.build_guests();
        let normal = HvBuild::new(Profile::Debug);
        let hv = if scenarios.is_empty() {
            Err("not built".into())
        } else {
            ws.build_hv(&normal)
        };
        let mutant_hvs: Vec<Result<PathBuf, String>> = MUTATIONS
            .iter()
            .map(|m| {
                if !mutation {
                    return Err("not built".into());
                }
                ws.build_hv(&HvBuild {
                    mutation: Some(m.cfg.into()),
                    ..HvBuild::new(Profile::Debug)
                })
            })
            .collect();
        let prepare = |hv: &Result<PathBuf, String>,
                       s: &Scenario,
                       model: &str|
         -> Result<qemu::Run, String> {
            deps.clone()?;
            let hv = hv.clone()?;
            if s.guest != Guest::TestElf {
                if matches!(
                    s.guest,
                    Guest::Refused(_) | Guest::ElfVm(_) | Guest::FaultyPair
                ) {
                    guests.clone()?;
                }
                let o = crate::vms::RowOptions {
                    mode: mode.to_string(),
                    autotest: true,
                    ..Default::default()
                };
                let extra = seed.map(|s| format!("seed={s}")).unwrap_or_default();
                return crate::vms::row_run(ws, &hv, s, &o, &extra).map(|r| r.with_cpu(model));
            }
            guests.clone()?;
            let guest = ws.guest_elf(s.guest_bin());
            if !guest.is_file() {
                return Err(format!("no guest binary {}", guest.display()));
            }
            let bootargs = scenarios::with_seed(scenarios::test_bootargs(s), seed);
            Ok(qemu::Run::new(&hv, &guest, bootargs)
                .with_cpu(model)
                .with_cpus(s.cpus)
                .with_mem(s.mem)
                .with_machine(s.machine))
        };
        for &(s, model) in &matrix {
            let what = format!("scenario {}", s.name);
            items.push(Item {
                label: item_label(&what, model),
                log: log_name(&what, model),
                scenario: s,
                expect: Expect::Pass,
                run: prepare(&hv, s, model),
            });
        }
        if mutation {
            for (m, hv) in MUTATIONS.iter().zip(&mutant_hvs) {
                let Some(s) = scenarios::find(m.scenario) else {
                    continue;
                };
                for model in mutation_models(m, s, cpu) {
                    let what = format!(
                        "mutation check ({} with arm_vcpu_mutate={}: {})",
                        s.name, m.cfg, m.breaks
                    );
                    items.push(Item {
                        label: item_label(&what, model),
                        log: log_name(&what, model),
                        scenario: s,
                        expect: Expect::Fail(m),
                        run: prepare(hv, s, model),
                    });
                }
            }
        }
    }

    let logs = ws.target().join("xtask").join("logs");
    let _ = std::fs::create_dir_all(&logs);
    if !items.is_empty() {
        println!(
            "running {} QEMU item(s), {} at a time (logs in {})",
            items.len(),
            jobs.max(1),
            logs.display()
        );
    }
    pool::run(
        jobs,
        items,
        |item| run_item(item, &logs),
        |_, o| {
            tally.item(o.ok, &o.line);
            for d in &o.details {
                println!("    {d}");
            }
        },
    );

    // The summary must be the last line.
    println!("{} passed, {} failed", tally.passed, tally.failed);
    Ok(if tally.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `cargo test` on the host crates, streamed through; each libtest test is an item.
fn unit_tests(ws: &Workspace, tally: &mut Tally) {
    let mut args = vec!["test", "--no-fail-fast"];
    for c in HOST_CRATES {
        args.extend(["-p", c]);
    }
    let mut cmd = ws.cargo(&args);
    let shown = ws::display(&cmd);
    println!("$ {shown}");
    cmd.stdout(Stdio::piped()).stdin(Stdio::null());
    let mut output = String::new();
    let status = cmd.spawn().and_then(|mut child| {
        let out = child.stdout.take().expect("piped stdout");
        for line in BufReader::new(out).lines() {
            let line = line?;
            println!("{line}");
            output.push_str(&line);
            output.push('\n');
        }
        child.wait()
    });
    let counts = libtest::count(&output);
    tally.passed += counts.passed;
    tally.failed += counts.failed;
    let what = format!(
        "unit tests ({shown}): {} passed, {} failed",
        counts.passed, counts.failed
    );
    match status {
        Ok(s) if s.success() && counts.results > 0 => println!("PASS {what}"),
        Ok(s) if s.success() => tally.item(false, &format!("{what}: no test results found")),
        Ok(s) if counts.failed > 0 => println!("FAIL {what} (cargo: {s})"),
        // cargo failed without a failing test (e.g. a build error): one failed item.
        Ok(s) => tally.item(false, &format!("{what}: cargo exited with {s}")),
        Err(e) => tally.item(false, &format!("{what}: {e}")),
    }
}

/// The exit-cost budget gate (`budget.rs`): every bench row profiled and compared with
/// `bench/budgets.toml`; one item per row.
fn budget_gate(ws: &Workspace, tally: &mut Tally) {
    let started = std::time::Instant::now();
    let budgets = std::fs::read_to_string(ws.root.join(budget::FILE))
        .map_err(|e| format!("{}: {e}", budget::FILE))
        .and_then(|t| budget::parse(&t));
    let budgets = match budgets {
        Ok(b) => b,
        Err(e) => return tally.item(false, &format!("exit-cost budgets: {e}")),
    };
    let gcc = deps::ensure(
        ws,
        deps::Needs {
            qemu: true,
            gcc: true,
        },
    );
    let (n1, n2) = budget::GATE_ITERS;
    let measured = gcc.and_then(|_| crate::bench::measure(ws, n1, n2, true));
    let rows = match measured {
        Ok((rows, _)) => rows,
        Err(e) => return tally.item(false, &format!("exit-cost budgets: cannot measure: {e}")),
    };
    let violations = match budget::check(&rows, &budgets) {
        Ok(v) => v,
        Err(e) => return tally.item(false, &format!("exit-cost budgets: {e}")),
    };
    let secs = started.elapsed().as_secs_f64();
    for (row, c) in &rows {
        let b = budgets
            .iter()
            .find(|(n, _)| n == row)
            .map(|(_, b)| *b)
            .unwrap_or_default();
        let over: Vec<String> = violations
            .iter()
            .filter(|v| v.row == *row)
            .map(|v| v.to_string())
            .collect();
        let figures = format!(
            "{:.1} EL2 instructions (budget {:.0}), {:.1} sysreg ({:.0}), {:.1} isb ({:.0}), \
             {:.1} maint ({:.0})",
            c.el2_instructions,
            b.el2_instructions,
            c.sysreg(),
            b.sysreg,
            c.isb,
            b.isb,
            c.maint,
            b.maint
        );
        if over.is_empty() {
            tally.item(true, &format!("budget {row}: {figures}"));
        } else {
            tally.item(
                false,
                &format!(
                    "budget {row}: {} [{figures}; {}]",
                    over.join("; "),
                    budget::FILE
                ),
            );
        }
    }
    println!("    (exit-cost budgets measured in {secs:.1} s)");
}

/// Judges a run of row `s`: the hypervisor's verdict, each guest's own, or the
/// refusal the row expects.
pub fn judge_row(s: &Scenario, end: End, output: &str) -> Result<(), String> {
    if let Some(e) = &s.expect_failure {
        return scenarios::failed_as_expected(e, end, output);
    }
    let verdict = match (s.guest, s.guest_marker) {
        (Guest::Linux(vms), Some(m)) if vms.len() > 1 => {
            let prefixes: Vec<String> = scenarios::linux_vm_names(s)
                .iter()
                .map(|n| format!("[{n}] "))
                .collect();
            qemu::judge_vms(s.name, m, &prefixes, end, output)
        }
        _ => qemu::judge_with_guest(s.name, s.guest_marker, end, output),
    };
    // A passing Linux row also spread its vCPUs over the cores they may use; a traced
    // one recorded them all.
    verdict
        .and_then(|()| scenarios::spread_as_placed(s, output))
        .and_then(|()| {
            let vcpus = scenarios::vm_vcpus(output);
            scenarios::trace_complete(s, &vcpus, usize::from(s.cpus), output)
        })
}

/// An item's label: what runs and, in brackets, the CPU model (`scenario irq [cortex-a53]`).
fn item_label(what: &str, model: &str) -> String {
    format!("{what} [{model}]")
}

/// An item's log file name (without `.log`): [`file_name`] of what runs, `@` the model.
fn log_name(what: &str, model: &str) -> String {
    format!("{}@{}", file_name(what), file_name(model))
}

/// The models mutation check `m` of row `s` runs on: `--cpu`'s if the check runs
/// there, else the check's own or the row's.
fn mutation_models(
    m: &scenarios::Mutation,
    s: &'static Scenario,
    cpu: Option<&'static str>,
) -> Vec<&'static str> {
    let own = m.models.unwrap_or(s.models);
    match cpu {
        Some(c) if m.models.is_none() || own.contains(&c) => vec![c],
        Some(_) => Vec::new(),
        None => own.to_vec(),
    }
}

fn file_name(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn run_item(item: Item, logs: &Path) -> Outcome {
    let s = item.scenario;
    let run = match item.run {
        Ok(r) => r,
        Err(e) => {
            return Outcome {
                ok: false,
                line: format!("{}: {e}", item.label),
                details: Vec::new(),
            }
        }
    };
    // A guest kernel's panic ends a Linux run at once (a failure).
    let stop: &'static [&'static str] = if matches!(s.guest, Guest::Linux(_) | Guest::KernelArg) {
        &[qemu::GUEST_PANIC]
    } else {
        &[]
    };
    let captured = match qemu::run_captured_full(run.command(), s.timeout, s.typing, stop) {
        Ok(c) => c,
        Err(e) => {
            return Outcome {
                ok: false,
                line: format!("{}: cannot start {}: {e}", item.label, qemu::QEMU),
                details: vec![format!("command: {}", run.display())],
            }
        }
    };
    let log = logs.join(format!("{}.log", item.log));
    let _ = std::fs::write(
        &log,
        format!(
            "$ {}\n{}\n[end: {:?}]\n",
            run.display(),
            captured.output,
            captured.end
        ),
    );
    let verdict = judge_row(s, captured.end, &captured.output).map_err(|why| {
        if captured.end == End::TimedOut {
            why.replacen(
                "TIMEOUT",
                &format!("TIMEOUT (killed after {} s)", s.timeout.as_secs()),
                1,
            )
        } else {
            why
        }
    });
    let secs = captured.elapsed.as_secs_f64();
    let (ok, line, show_tail) = match (item.expect, verdict) {
        (Expect::Pass, Ok(())) => (true, format!("{} ({secs:.1} s)", item.label), false),
        (Expect::Pass, Err(why)) => (false, format!("{} ({secs:.1} s): {why}", item.label), true),
        (Expect::Fail(m), Err(why)) => match scenarios::caught_by_own_check(m, &captured.output) {
            Ok(()) => (
                true,
                format!(
                    "{} ({secs:.1} s): caught ({:?}): {why}",
                    item.label, m.reason
                ),
                false,
            ),
            Err(not) => (
                false,
                format!("{} ({secs:.1} s): {not}: {why}", item.label),
                true,
            ),
        },
        (Expect::Fail(_), Ok(())) => (
            false,
            format!(
                "{} ({secs:.1} s): `{}` PASSED on the mutant hypervisor: the scenario does \
                 not catch what the mutation breaks",
                item.label, s.name
            ),
            true,
        ),
    };
    let mut details = Vec::new();
    if show_tail {
        details.push(format!("command: {}", run.display()));
        details.push(format!("log: {}", log.display()));
        details.push(format!("last {TAIL_LINES} lines of output:"));
        details.extend(
            qemu::tail(&captured.output, TAIL_LINES)
                .iter()
                .map(|l| format!("| {l}")),
        );
    }
    Outcome { ok, line, details }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_file_names() {
        assert_eq!(file_name("scenario bench-hvc"), "scenario_bench-hvc");
        assert_eq!(
            file_name("mutation check (preserve with arm_vcpu_mutate=x)"),
            "mutation_check__preserve_with_arm_vcpu_mutate_x_"
        );
    }

    #[test]
    fn labels_and_logs_per_model() {
        assert_eq!(
            item_label("scenario irq", "cortex-a53"),
            "scenario irq [cortex-a53]"
        );
        assert_eq!(
            log_name("scenario irq", "cortex-a53"),
            "scenario_irq@cortex-a53"
        );
        assert_ne!(
            log_name("scenario irq", "max"),
            log_name("scenario irq", "cortex-a53")
        );
        let s = scenarios::find("isolation").unwrap();
        let m = MUTATIONS
            .iter()
            .find(|m| m.scenario == "isolation")
            .unwrap();
        assert_eq!(mutation_models(m, s, None), s.models);
        assert_eq!(mutation_models(m, s, Some("cortex-a72")), ["cortex-a72"]);
        // A check bound to models runs only there.
        let m = MUTATIONS.iter().find(|m| m.cfg == "stage2-level0").unwrap();
        let s = scenarios::find("stage2").unwrap();
        assert_eq!(mutation_models(m, s, None), ["cortex-a53"]);
        assert!(mutation_models(m, s, Some("max")).is_empty());
        assert_eq!(mutation_models(m, s, Some("cortex-a53")), ["cortex-a53"]);
    }

    #[test]
    fn selection() {
        assert!(selected(&[], "demo"));
        assert!(selected(&["demo".into()], "demo"));
        assert!(!selected(&["demo".into()], "unit"));
    }
}
