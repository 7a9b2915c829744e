//! The `insn-profile:` line of the shared QEMU plugin, and per-round-trip arithmetic.
//!
//! Line format (see `shared/tools/qemu-insn-profile/insn-profile.c`):
//! `insn-profile: [lo,hi) total=.. mrs=.. msr=.. pstate=.. isb=.. dsb=.. dmb=.. maint=.. eret=.. | outside total=.. hvc=.. smc=..`

/// Instruction counts inside the hypervisor's code range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Inside {
    pub total: u64,
    pub mrs: u64,
    pub msr: u64,
    pub pstate: u64,
    pub isb: u64,
    pub dsb: u64,
    pub dmb: u64,
    pub maint: u64,
    pub eret: u64,
}

/// Instruction counts outside the range (the guest, and QEMU's boot code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outside {
    pub total: u64,
    pub hvc: u64,
    pub smc: u64,
}

/// One parsed `insn-profile:` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Profile {
    pub lo: u64,
    pub hi: u64,
    pub inside: Inside,
    pub outside: Outside,
}

const MARK: &str = "insn-profile:";

fn parse_num(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("bad number {s:?}: {e}"))
}

/// Reads `key=value` pairs, calling `set` for each; unknown keys are an error
/// (a changed plugin must not be misread silently).
fn pairs(s: &str, mut set: impl FnMut(&str, u64) -> bool) -> Result<(), String> {
    for word in s.split_whitespace() {
        let (k, v) = word
            .split_once('=')
            .ok_or_else(|| format!("expected key=value, got {word:?}"))?;
        if !set(k, parse_num(v)?) {
            return Err(format!("unknown counter {k:?}"));
        }
    }
    Ok(())
}

/// Parses one `insn-profile:` line (leading text before the marker is ignored).
pub fn parse_line(line: &str) -> Result<Profile, String> {
    let at = line.find(MARK).ok_or("no insn-profile: marker")?;
    let rest = line[at + MARK.len()..].trim();
    let range = rest
        .strip_prefix('[')
        .ok_or("expected [lo,hi) after the marker")?;
    let (range, rest) = range.split_once(')').ok_or("unterminated [lo,hi)")?;
    let (lo, hi) = range.split_once(',').ok_or("expected lo,hi")?;
    let (ins, outs) = rest.split_once('|').ok_or("missing '|' separator")?;
    let outs = outs
        .trim()
        .strip_prefix("outside")
        .ok_or("expected 'outside' after '|'")?;

    let mut p = Profile {
        lo: parse_num(lo.trim())?,
        hi: parse_num(hi.trim())?,
        ..Profile::default()
    };
    let mut seen = 0u32;
    pairs(ins, |k, v| {
        let i = &mut p.inside;
        let slot = match k {
            "total" => &mut i.total,
            "mrs" => &mut i.mrs,
            "msr" => &mut i.msr,
            "pstate" => &mut i.pstate,
            "isb" => &mut i.isb,
            "dsb" => &mut i.dsb,
            "dmb" => &mut i.dmb,
            "maint" => &mut i.maint,
            "eret" => &mut i.eret,
            _ => return false,
        };
        *slot = v;
        seen += 1;
        true
    })?;
    if seen != 9 {
        return Err(format!("expected 9 inside counters, got {seen}"));
    }
    seen = 0;
    pairs(outs, |k, v| {
        let o = &mut p.outside;
        let slot = match k {
            "total" => &mut o.total,
            "hvc" => &mut o.hvc,
            "smc" => &mut o.smc,
            _ => return false,
        };
        *slot = v;
        seen += 1;
        true
    })?;
    if seen != 3 {
        return Err(format!("expected 3 outside counters, got {seen}"));
    }
    Ok(p)
}

/// Finds and parses the (last) `insn-profile:` line of a QEMU log.
pub fn parse_log(log: &str) -> Result<Profile, String> {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains(MARK))
        .ok_or("no insn-profile: line in the log")?;
    parse_line(line)
}

/// Per-round-trip cost of one class: the difference between two runs of the same
/// scenario, divided by the difference in iterations. Constant setup and teardown
/// costs cancel out.
pub fn per_iter(c1: u64, c2: u64, n1: u64, n2: u64) -> f64 {
    assert!(n2 != n1, "the two runs need different iteration counts");
    (c2 as f64 - c1 as f64) / (n2 as f64 - n1 as f64)
}

/// Per-round-trip figures for one exit kind (the JSON record and the table row).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ExitCost {
    pub el2_instructions: f64,
    pub guest_instructions: f64,
    pub mrs: f64,
    pub msr: f64,
    pub isb: f64,
    pub dsb: f64,
    pub maint: f64,
    pub eret: f64,
    /// Guest `hvc` instructions per iteration (a sanity check, not in the JSON).
    pub guest_hvc: f64,
}

impl ExitCost {
    /// The per-round-trip cost from runs with `n1` and `n2` iterations.
    pub fn from_runs(p1: &Profile, p2: &Profile, n1: u64, n2: u64) -> ExitCost {
        let d = |a: u64, b: u64| per_iter(a, b, n1, n2);
        let (a, b) = (&p1.inside, &p2.inside);
        ExitCost {
            el2_instructions: d(a.total, b.total),
            guest_instructions: d(p1.outside.total, p2.outside.total),
            mrs: d(a.mrs, b.mrs),
            msr: d(a.msr, b.msr),
            isb: d(a.isb, b.isb),
            dsb: d(a.dsb, b.dsb),
            maint: d(a.maint, b.maint),
            eret: d(a.eret, b.eret),
            guest_hvc: d(p1.outside.hvc, p2.outside.hvc),
        }
    }

    /// System-register accesses (`mrs` + `msr`) per round trip.
    pub fn sysreg(&self) -> f64 {
        self.mrs + self.msr
    }

    /// The JSON fields, in order.
    pub fn fields(&self) -> [(&'static str, f64); 8] {
        [
            ("el2_instructions", self.el2_instructions),
            ("guest_instructions", self.guest_instructions),
            ("mrs", self.mrs),
            ("msr", self.msr),
            ("isb", self.isb),
            ("dsb", self.dsb),
            ("maint", self.maint),
            ("eret", self.eret),
        ]
    }
}

/// `v` rounded to `decimals` decimal places.
pub fn round_to(v: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (v * scale).round() / scale
}

/// A JSON number for `v`, rounded to 3 decimals (integers without a fraction).
fn json_number(v: f64) -> String {
    if v.is_finite() {
        format!("{}", round_to(v, 3))
    } else {
        "null".to_string()
    }
}

/// `{"hvc": {...}, "mmio_read": {...}}` with rows in the given order.
pub fn to_json(rows: &[(&str, ExitCost)]) -> String {
    let mut s = String::from("{\n");
    for (i, (name, cost)) in rows.iter().enumerate() {
        s += &format!("  \"{name}\": {{");
        for (j, (k, v)) in cost.fields().iter().enumerate() {
            let sep = if j == 0 { "" } else { ", " };
            s += &format!("{sep}\"{k}\": {}", json_number(*v));
        }
        s += if i + 1 == rows.len() { "}\n" } else { "},\n" };
    }
    s += "}\n";
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "insn-profile: [0x40200000,0x40260000) total=123456 mrs=10 msr=20 pstate=3 isb=4 dsb=5 dmb=6 maint=7 eret=8 | outside total=999 hvc=1000 smc=2";

    #[test]
    fn parses_plugin_line() {
        let p = parse_line(LINE).unwrap();
        assert_eq!(p.lo, 0x4020_0000);
        assert_eq!(p.hi, 0x4026_0000);
        assert_eq!(
            p.inside,
            Inside {
                total: 123456,
                mrs: 10,
                msr: 20,
                pstate: 3,
                isb: 4,
                dsb: 5,
                dmb: 6,
                maint: 7,
                eret: 8
            }
        );
        assert_eq!(
            p.outside,
            Outside {
                total: 999,
                hvc: 1000,
                smc: 2
            }
        );
    }

    #[test]
    fn finds_line_in_log() {
        let log = format!("some qemu noise\n{LINE}\ntrailing\n");
        assert_eq!(parse_log(&log).unwrap().inside.total, 123456);
        assert!(parse_log("nothing here\n").is_err());
    }

    #[test]
    fn rejects_malformed_lines() {
        assert!(parse_line("insn-profile: total=1").is_err());
        assert!(parse_line(&LINE.replace(" | outside", " outside")).is_err());
        assert!(parse_line(&LINE.replace("eret=8 ", "")).is_err());
        assert!(parse_line(&LINE.replace("mrs=10", "mrs=ten")).is_err());
        assert!(parse_line(&LINE.replace("dmb=6", "dmb=6 wfi=1")).is_err());
        assert!(parse_line(&LINE.replace("smc=2", "")).is_err());
    }

    #[test]
    fn per_round_trip_arithmetic() {
        assert_eq!(per_iter(5_000, 62_000, 1000, 2000), 57.0);
        assert_eq!(per_iter(10, 25, 1000, 3000), 0.0075);
        assert_eq!(per_iter(100, 100, 1, 2), 0.0);
        assert_eq!(per_iter(100, 90, 1, 2), -10.0);
    }

    #[test]
    fn exit_cost_from_two_runs() {
        let mut p1 = parse_line(LINE).unwrap();
        p1.inside.total = 1_000;
        p1.outside.total = 500;
        p1.outside.hvc = 1_001;
        let mut p2 = p1;
        p2.inside.total = 58_000;
        p2.inside.mrs += 2_000;
        p2.inside.msr += 1_000;
        p2.inside.eret += 1_000;
        p2.outside.total = 5_500;
        p2.outside.hvc = 2_001;
        let c = ExitCost::from_runs(&p1, &p2, 1000, 2000);
        assert_eq!(c.el2_instructions, 57.0);
        assert_eq!(c.guest_instructions, 5.0);
        assert_eq!((c.mrs, c.msr, c.sysreg()), (2.0, 1.0, 3.0));
        assert_eq!((c.isb, c.dsb, c.maint, c.eret), (0.0, 0.0, 0.0, 1.0));
        assert_eq!(c.guest_hvc, 1.0);
    }

    #[test]
    fn rounding() {
        assert_eq!(round_to(79.00030375, 3), 79.0);
        assert_eq!(round_to(79.243, 1), 79.2);
        assert_eq!(round_to(5.0000025, 1), 5.0);
        assert_eq!(json_number(79.00030375), "79");
        assert_eq!(json_number(0.0075), "0.008");
        assert_eq!(json_number(f64::NAN), "null");
    }

    #[test]
    fn json_shape() {
        let c = ExitCost {
            el2_instructions: 57.0,
            guest_instructions: 5.5,
            eret: 1.0,
            ..ExitCost::default()
        };
        let j = to_json(&[("hvc", c), ("mmio_read", c)]);
        assert_eq!(
            j,
            "{\n  \"hvc\": {\"el2_instructions\": 57, \"guest_instructions\": 5.5, \"mrs\": 0, \"msr\": 0, \"isb\": 0, \"dsb\": 0, \"maint\": 0, \"eret\": 1},\n  \"mmio_read\": {\"el2_instructions\": 57, \"guest_instructions\": 5.5, \"mrs\": 0, \"msr\": 0, \"isb\": 0, \"dsb\": 0, \"maint\": 0, \"eret\": 1}\n}\n"
        );
    }
}
