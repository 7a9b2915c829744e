//! The exit-cost budget gate: `cargo xtask test` profiles every bench row (release
//! hypervisor, instruction-counting plugin, deterministic under `-icount`) and fails
//! when a row's per-round-trip EL2 instructions, system-register accesses, ISBs or
//! TLB/cache maintenance exceed what `bench/budgets.toml` allows.
//!
//! Budgets are the measured figures plus a small margin: a change that adds work to
//! an exit path fails with the row, the budget, the figure and the delta; a change
//! that improves a row lowers its budget in the same commit.

use crate::profile::ExitCost;

/// Where the budgets live (relative to the workspace root).
pub const FILE: &str = "bench/budgets.toml";

/// Iteration counts of the gate's two runs per row (rows with their own counts use
/// those). Smaller than `cargo xtask bench`'s, with the same digit count, so the
/// gate stays fast; a one-off difference between the runs moves a figure by at most
/// a few thousandths, far inside every margin.
pub const GATE_ITERS: (u64, u64) = (10_000, 90_000);

/// What one row may cost per round trip.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Budget {
    /// EL2 instructions.
    pub el2_instructions: f64,
    /// System-register accesses (`mrs` + `msr`).
    pub sysreg: f64,
    /// `isb`s.
    pub isb: f64,
    /// TLB and cache maintenance instructions.
    pub maint: f64,
}

/// The keys of a row's table, in file order.
const KEYS: [&str; 4] = ["el2_instructions", "sysreg", "isb", "maint"];

/// Parses the budget file: `[row]` headers, each followed by the four
/// `key = number` lines of [`KEYS`]; `#` starts a comment. (xtask has no
/// dependencies; this is the TOML subset the file uses, and anything else is an
/// error, so a typo cannot silently drop a budget.)
pub fn parse(text: &str) -> Result<Vec<(String, Budget)>, String> {
    let mut rows: Vec<(String, Budget, [bool; 4])> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        let at = |why: String| format!("{FILE}:{}: {why}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            if name.is_empty() || rows.iter().any(|(r, _, _)| r == name) {
                return Err(at(format!("empty or repeated row [{name}]")));
            }
            rows.push((name.to_string(), Budget::default(), [false; 4]));
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| at(format!("expected `key = number`, got {line:?}")))?;
        let (k, v) = (k.trim(), v.trim());
        let v: f64 = v
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| at(format!("{k}: not a non-negative number: {v:?}")))?;
        let (_, b, seen) = rows
            .last_mut()
            .ok_or_else(|| at("a key before the first [row]".into()))?;
        let i = KEYS
            .iter()
            .position(|key| *key == k)
            .ok_or_else(|| at(format!("unknown key {k:?} (expected one of {KEYS:?})")))?;
        if seen[i] {
            return Err(at(format!("{k} given twice")));
        }
        seen[i] = true;
        match i {
            0 => b.el2_instructions = v,
            1 => b.sysreg = v,
            2 => b.isb = v,
            _ => b.maint = v,
        }
    }
    rows.into_iter()
        .map(|(name, b, seen)| match seen.iter().position(|s| !s) {
            Some(i) => Err(format!("{FILE}: [{name}] has no {}", KEYS[i])),
            None => Ok((name, b)),
        })
        .collect()
}

/// One figure over its budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub row: String,
    pub what: &'static str,
    pub budget: f64,
    pub measured: f64,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} {:.1} over budget {:.1} (+{:.1})",
            self.row,
            self.what,
            self.measured,
            self.budget,
            self.measured - self.budget
        )
    }
}

/// Compares measured rows with the budgets. Every measured row needs a budget and
/// every budget a measured row (a renamed or new row must be budgeted).
pub fn check(
    measured: &[(&str, ExitCost)],
    budgets: &[(String, Budget)],
) -> Result<Vec<Violation>, String> {
    for (name, _) in budgets {
        if !measured.iter().any(|(m, _)| m == name) {
            return Err(format!("{FILE}: [{name}] is not a bench row"));
        }
    }
    let mut out = Vec::new();
    for (row, c) in measured {
        let b = budgets
            .iter()
            .find(|(n, _)| n == row)
            .map(|(_, b)| *b)
            .ok_or_else(|| format!("bench row {row} has no budget in {FILE}"))?;
        // Judged on the figures as printed (one decimal), like the bench table.
        let r = |v: f64| crate::profile::round_to(v, 1);
        for (what, budget, measured) in [
            ("EL2 instructions", b.el2_instructions, c.el2_instructions),
            ("system-register accesses", b.sysreg, c.sysreg()),
            ("ISBs", b.isb, c.isb),
            ("TLB/cache maintenance", b.maint, c.maint),
        ] {
            if r(measured) > budget {
                out.push(Violation {
                    row: row.to_string(),
                    what,
                    budget,
                    measured: r(measured),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE_TEXT: &str = "# comment\n[hvc]\nel2_instructions = 76 # margin 2\nsysreg = 5\n\
                             isb = 0\nmaint = 0\n\n[virq]\nel2_instructions = 460\nsysreg = 10\n\
                             isb = 0\nmaint = 0\n";

    fn cost(insns: f64, mrs: f64, isb: f64, maint: f64) -> ExitCost {
        ExitCost {
            el2_instructions: insns,
            mrs,
            isb,
            maint,
            ..ExitCost::default()
        }
    }

    #[test]
    fn parses_rows() {
        let b = parse(FILE_TEXT).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].0, "hvc");
        assert_eq!(
            b[0].1,
            Budget {
                el2_instructions: 76.0,
                sysreg: 5.0,
                isb: 0.0,
                maint: 0.0
            }
        );
        assert_eq!(b[1].1.el2_instructions, 460.0);
    }

    #[test]
    fn refuses_malformed_files() {
        for bad in [
            "el2_instructions = 1\n",                              // key before a row
            "[hvc]\nel2_instructions = 1\nsysreg = 1\nisb = 0\n",  // missing maint
            "[hvc]\nel2_instrs = 1\n",                             // unknown key
            "[hvc]\nel2_instructions = -1\n",                      // negative
            "[hvc]\nel2_instructions = x\n",                       // not a number
            "[hvc]\nel2_instructions = 1\nel2_instructions = 2\n", // twice
            "[hvc]\nel2_instructions=1\nsysreg=1\nisb=0\nmaint=0\n[hvc]\n", // repeated row
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn within_and_over_budget() {
        let b = parse(FILE_TEXT).unwrap();
        let ok = [
            ("hvc", cost(76.0, 5.0, 0.0, 0.0)),
            ("virq", cost(455.0, 7.0, 0.0, 0.0)),
        ];
        assert_eq!(check(&ok, &b).unwrap(), vec![]);
        let over = [
            ("hvc", cost(77.0, 5.0, 1.0, 0.0)),
            ("virq", cost(455.0, 7.0, 0.0, 1.0)),
        ];
        let v = check(&over, &b).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(
            v[0].to_string(),
            "hvc: EL2 instructions 77.0 over budget 76.0 (+1.0)"
        );
        assert_eq!(v[1].what, "ISBs");
        assert_eq!(v[2].what, "TLB/cache maintenance");
        // 76.04 prints as 76.0: within.
        assert!(check(&[("hvc", cost(76.04, 5.0, 0.0, 0.0)), ok[1]], &b)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn every_row_needs_a_budget_and_back() {
        let b = parse(FILE_TEXT).unwrap();
        assert!(check(&[("hvc", cost(1.0, 0.0, 0.0, 0.0))], &b).is_err());
        let extra = [
            ("hvc", cost(1.0, 0.0, 0.0, 0.0)),
            ("virq", cost(1.0, 0.0, 0.0, 0.0)),
            ("new_row", cost(1.0, 0.0, 0.0, 0.0)),
        ];
        assert!(check(&extra, &b).is_err());
    }

    #[test]
    fn committed_budgets_cover_the_bench_rows() {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(FILE),
        )
        .unwrap();
        let b = parse(&text).unwrap();
        let rows: Vec<&str> = crate::scenarios::SCENARIOS
            .iter()
            .filter_map(|s| s.bench_row)
            .collect();
        let mut names: Vec<&str> = b.iter().map(|(n, _)| n.as_str()).collect();
        let mut want = rows.clone();
        names.sort_unstable();
        want.sort_unstable();
        assert_eq!(names, want);
    }
}
