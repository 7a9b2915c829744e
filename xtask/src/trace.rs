//! Exit timeline: parses the exit records the reference hypervisor prints when run
//! with recording on, and renders them as an SVG a person reads at a glance — one
//! strip per vCPU with exits by kind over time (stacked per time bin), the boot's
//! phases as vertical markers, and a table of exit kinds by count and host time.
//!
//! Record format (one per line on the hypervisor's console, after the run):
//!
//! ```text
//! ARM_VCPU_TRACE begin freq=<counter Hz>
//! X <core> <vm> <vcpu> <kind> <exit time, counter ticks> <host ticks until re-entry>
//! P <time, counter ticks> <phase label ...>
//! ARM_VCPU_TRACE end dropped=<records lost to full ring buffers>
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub core: u32,
    pub vm: u32,
    pub vcpu: u32,
    pub kind: String,
    /// Counter ticks at the exit.
    pub at: u64,
    /// Counter ticks the host spent before the vCPU ran again.
    pub host: u64,
}

/// A named point in time (e.g. "kernel starts", "/init runs").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    pub at: u64,
    pub label: String,
}

/// A parsed recording.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Trace {
    /// Counter frequency (Hz).
    pub freq: u64,
    pub exits: Vec<Exit>,
    pub phases: Vec<Phase>,
    /// Records the hypervisor could not keep (its ring buffers were full).
    pub dropped: u64,
}

/// Parses the records out of a run's console output (other lines are ignored; the
/// console may put `\r` at line ends).
pub fn parse(output: &str) -> Result<Trace, String> {
    let mut t = Trace::default();
    let mut inside = false;
    let mut ended = false;
    for (n, line) in output.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        let bad = |why: &str| format!("trace line {}: {why}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("ARM_VCPU_TRACE begin") {
            let freq = rest
                .trim()
                .strip_prefix("freq=")
                .and_then(|f| f.parse().ok())
                .filter(|f| *f > 0)
                .ok_or_else(|| bad("expected freq=<Hz>"))?;
            t.freq = freq;
            inside = true;
            continue;
        }
        if !inside {
            continue;
        }
        if let Some(rest) = line.strip_prefix("ARM_VCPU_TRACE end") {
            t.dropped = rest
                .trim()
                .strip_prefix("dropped=")
                .and_then(|d| d.parse().ok())
                .ok_or_else(|| bad("expected dropped=<n>"))?;
            inside = false;
            ended = true;
            continue;
        }
        let mut f = line.split_whitespace();
        match f.next() {
            Some("X") => {
                let mut num = || -> Result<u64, String> {
                    f.next()
                        .and_then(|v| v.parse().ok())
                        .ok_or_else(|| bad("bad number"))
                };
                let (core, vm, vcpu) = (num()?, num()?, num()?);
                let kind = f.next().ok_or_else(|| bad("no kind"))?.to_string();
                let at = f
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| bad("no time"))?;
                let host = f
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| bad("no host time"))?;
                let small = |v: u64| u32::try_from(v).map_err(|_| bad("index too large"));
                t.exits.push(Exit {
                    core: small(core)?,
                    vm: small(vm)?,
                    vcpu: small(vcpu)?,
                    kind,
                    at,
                    host,
                });
            }
            Some("P") => {
                let at = f
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| bad("no time"))?;
                let label: Vec<&str> = f.collect();
                t.phases.push(Phase {
                    at,
                    label: label.join(" "),
                });
            }
            // Other console output interleaved with the records (another core).
            _ => {}
        }
    }
    if t.freq == 0 {
        return Err("no ARM_VCPU_TRACE records in the output".into());
    }
    if !ended {
        return Err("the trace has no end line (run cut short?)".into());
    }
    Ok(t)
}

/// Exits and host time of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KindTotals {
    pub count: u64,
    pub host_ticks: u64,
}

impl Trace {
    /// Exit kinds present, by count (largest first), then name.
    pub fn kinds(&self) -> Vec<(String, KindTotals)> {
        let mut m: BTreeMap<&str, KindTotals> = BTreeMap::new();
        for e in &self.exits {
            let k = m.entry(&e.kind).or_default();
            k.count += 1;
            k.host_ticks = k.host_ticks.saturating_add(e.host);
        }
        let mut v: Vec<(String, KindTotals)> =
            m.into_iter().map(|(k, t)| (k.to_string(), t)).collect();
        v.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(&b.0)));
        v
    }

    /// The (vm, vcpu) strips, in order.
    pub fn lanes(&self) -> Vec<(u32, u32)> {
        let mut l: Vec<(u32, u32)> = self.exits.iter().map(|e| (e.vm, e.vcpu)).collect();
        l.sort_unstable();
        l.dedup();
        l
    }

    /// First and last counter value of the recording (exits and phases).
    pub fn time_range(&self) -> (u64, u64) {
        let times = self
            .exits
            .iter()
            .map(|e| e.at)
            .chain(self.phases.iter().map(|p| p.at));
        let lo = times.clone().min().unwrap_or(0);
        let hi = times.max().unwrap_or(0);
        (lo, hi.max(lo + 1))
    }
}

/// The exit kinds as a text table: count, host time (from the counter deltas the
/// recorder keeps: exit to re-entry), its share, and the mean per exit.
pub fn kinds_table(t: &Trace) -> String {
    let kinds = t.kinds();
    let all: u64 = kinds.iter().map(|(_, k)| k.host_ticks).sum();
    let us = |ticks: u64| ticks as f64 * 1e6 / t.freq.max(1) as f64;
    let w = kinds.iter().map(|(n, _)| n.len()).max().unwrap_or(4).max(9);
    let mut s = format!(
        "{:<w$}  {:>9}  {:>13}  {:>6}  {:>11}\n",
        "exit kind", "count", "host time µs", "share", "µs per exit"
    );
    for (name, k) in &kinds {
        let _ = writeln!(
            s,
            "{name:<w$}  {:>9}  {:>13.0}  {:>5.1}%  {:>11.2}",
            k.count,
            us(k.host_ticks),
            100.0 * k.host_ticks as f64 / all.max(1) as f64,
            us(k.host_ticks) / k.count.max(1) as f64
        );
    }
    let n: u64 = kinds.iter().map(|(_, k)| k.count).sum();
    let _ = writeln!(s, "{:<w$}  {n:>9}  {:>13.0}", "all", us(all));
    s
}

/// Colours for exit kinds (stable per name: the same kind has the same colour in
/// every picture).
fn colour(kind: &str) -> &'static str {
    const PALETTE: [&str; 12] = [
        "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
        "#9c755f", "#bab0ac", "#1f77b4", "#8c564b",
    ];
    let h = kind
        .bytes()
        .fold(5381u32, |h, b| h.wrapping_mul(33) ^ u32::from(b));
    PALETTE[h as usize % PALETTE.len()]
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A "nice" step for about `n` ticks over `span` seconds (1, 2 or 5 × 10^k).
fn nice_step(span: f64, n: f64) -> f64 {
    let raw = (span / n).max(1e-9);
    let p = 10f64.powf(raw.log10().floor());
    let m = raw / p;
    let k = if m < 1.5 {
        1.0
    } else if m < 3.5 {
        2.0
    } else if m < 7.5 {
        5.0
    } else {
        10.0
    };
    k * p
}

/// Layout constants of the picture.
const WIDTH: f64 = 1100.0;
const LEFT: f64 = 110.0;
const RIGHT: f64 = 20.0;
const LANE_H: f64 = 80.0;
const LANE_GAP: f64 = 18.0;
const TOP: f64 = 62.0;
/// Time bins across the plot.
pub const BINS: usize = 200;

/// Renders the timeline as a standalone SVG document.
pub fn render_svg(t: &Trace, title: &str) -> String {
    let kinds = t.kinds();
    let lanes = t.lanes();
    let (lo, hi) = t.time_range();
    let secs = |ticks: u64| ticks as f64 / t.freq as f64;
    let span = secs(hi - lo);
    let plot_w = WIDTH - LEFT - RIGHT;
    let x_of = |ticks: u64| LEFT + plot_w * (ticks.saturating_sub(lo)) as f64 / (hi - lo) as f64;
    let lanes_h = lanes.len() as f64 * (LANE_H + LANE_GAP);
    let axis_y = TOP + lanes_h + 4.0;
    let legend_y = axis_y + 40.0;
    let table_y = legend_y + 24.0 * (kinds.len().div_ceil(5) as f64) + 20.0;
    let height = table_y + 22.0 * (kinds.len() as f64 + 2.0) + 20.0;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let total: u64 = kinds.iter().map(|(_, k)| k.count).sum();
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="24" font-size="16" font-weight="bold">{} — {total} exits over {span:.3} s</text>"#,
        esc(title)
    );

    // Per lane: stacked counts of each kind per bin, scaled to the busiest bin.
    let bin_of = |at: u64| (((at - lo) as u128 * BINS as u128) / (hi - lo + 1) as u128) as usize;
    let mut counts: BTreeMap<((u32, u32), usize, &str), u64> = BTreeMap::new();
    for e in &t.exits {
        *counts
            .entry(((e.vm, e.vcpu), bin_of(e.at).min(BINS - 1), e.kind.as_str()))
            .or_default() += 1;
    }
    let mut per_bin: BTreeMap<((u32, u32), usize), u64> = BTreeMap::new();
    for ((lane, bin, _), c) in &counts {
        *per_bin.entry((*lane, *bin)).or_default() += c;
    }
    let peak = per_bin.values().copied().max().unwrap_or(1).max(1);
    let bin_w = plot_w / BINS as f64;
    for (li, lane) in lanes.iter().enumerate() {
        let y0 = TOP + li as f64 * (LANE_H + LANE_GAP);
        let _ = writeln!(
            s,
            r##"<g class="lane" data-vm="{}" data-vcpu="{}"><rect x="{LEFT}" y="{y0:.1}" width="{plot_w:.1}" height="{LANE_H}" fill="#f6f6f6"/>"##,
            lane.0, lane.1
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">VM {} vCPU {}</text>"#,
            LEFT - 8.0,
            y0 + LANE_H / 2.0 + 4.0,
            lane.0,
            lane.1
        );
        for bin in 0..BINS {
            let mut y = y0 + LANE_H;
            for (kind, _) in &kinds {
                let c = counts
                    .get(&(*lane, bin, kind.as_str()))
                    .copied()
                    .unwrap_or(0);
                if c == 0 {
                    continue;
                }
                let h = LANE_H * c as f64 / peak as f64;
                y -= h;
                let _ = writeln!(
                    s,
                    r#"<rect class="exit kind-{k}" x="{:.2}" y="{y:.2}" width="{:.2}" height="{h:.2}" fill="{}"><title>{k}: {c}</title></rect>"#,
                    LEFT + bin as f64 * bin_w,
                    bin_w.max(0.5),
                    colour(kind),
                    k = esc(kind)
                );
            }
        }
        let _ = writeln!(s, "</g>");
    }

    // Time axis in seconds from the first record.
    let _ = writeln!(
        s,
        r#"<g class="axis"><line x1="{LEFT}" y1="{axis_y:.1}" x2="{:.1}" y2="{axis_y:.1}" stroke="black"/>"#,
        LEFT + plot_w
    );
    let step = nice_step(span, 10.0);
    let mut k = 0u32;
    loop {
        let v = f64::from(k) * step;
        if v > span + step * 1e-6 {
            break;
        }
        let x = LEFT + plot_w * v / span.max(1e-12);
        let _ = writeln!(
            s,
            r#"<line x1="{x:.1}" y1="{axis_y:.1}" x2="{x:.1}" y2="{:.1}" stroke="black"/><text class="tick" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            axis_y + 5.0,
            axis_y + 18.0,
            trim_float(v)
        );
        k += 1;
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="end">time (s)</text></g>"#,
        LEFT + plot_w,
        axis_y + 32.0
    );

    // Phases: vertical dashed markers across all lanes.
    // Labels alternate between two rows (phases close in time, such as the
    // secondary vCPUs' CPU_ON, stay readable) and end at the marker on the right half.
    for (i, p) in t.phases.iter().enumerate() {
        let x = x_of(p.at);
        let right = x > LEFT + plot_w / 2.0;
        let _ = writeln!(
            s,
            r##"<g class="phase"><line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{axis_y:.1}" stroke="#333" stroke-dasharray="4,3"/><text x="{:.1}" y="{:.1}" font-size="11"{}>{}</text></g>"##,
            TOP - 8.0 - 11.0 * (i % 2) as f64,
            if right { x - 3.0 } else { x + 3.0 },
            TOP - 10.0 - 11.0 * (i % 2) as f64,
            if right { r#" text-anchor="end""# } else { "" },
            esc(&p.label)
        );
    }

    // Legend: one entry per kind present.
    for (i, (kind, _)) in kinds.iter().enumerate() {
        let x = LEFT + (i % 5) as f64 * 190.0;
        let y = legend_y + (i / 5) as f64 * 24.0;
        let _ = writeln!(
            s,
            r#"<g class="legend"><rect x="{x:.1}" y="{:.1}" width="14" height="14" fill="{}"/><text x="{:.1}" y="{y:.1}">{}</text></g>"#,
            y - 11.0,
            colour(kind),
            x + 20.0,
            esc(kind)
        );
    }

    // Table: kinds by count and by host time.
    let host_total: u64 = kinds.iter().map(|(_, k)| k.host_ticks).sum();
    let cols = [LEFT, LEFT + 200.0, LEFT + 320.0, LEFT + 460.0, LEFT + 600.0];
    let head = [
        "exit kind",
        "exits",
        "host time (ms)",
        "host share",
        "µs per exit",
    ];
    let mut y = table_y;
    let _ = writeln!(s, r#"<g class="table" font-weight="bold">"#);
    for (c, h) in cols.iter().zip(head) {
        let _ = writeln!(s, r#"<text x="{c:.1}" y="{y:.1}">{h}</text>"#);
    }
    let _ = writeln!(s, "</g>");
    for (kind, k) in &kinds {
        y += 22.0;
        let ms = secs(k.host_ticks) * 1e3;
        let share = if host_total == 0 {
            0.0
        } else {
            100.0 * k.host_ticks as f64 / host_total as f64
        };
        let per = if k.count == 0 {
            0.0
        } else {
            secs(k.host_ticks) * 1e6 / k.count as f64
        };
        let _ = writeln!(
            s,
            r#"<g class="row"><text x="{:.1}" y="{y:.1}">{}</text><text x="{:.1}" y="{y:.1}">{}</text><text x="{:.1}" y="{y:.1}">{ms:.2}</text><text x="{:.1}" y="{y:.1}">{share:.1} %</text><text x="{:.1}" y="{y:.1}">{per:.2}</text></g>"#,
            cols[0],
            esc(kind),
            cols[1],
            k.count,
            cols[2],
            cols[3],
            cols[4]
        );
    }
    if t.dropped != 0 {
        y += 22.0;
        let _ = writeln!(
            s,
            r#"<text x="{LEFT}" y="{y:.1}" fill="red">{} records dropped (ring buffers full): the picture is incomplete</text>"#,
            t.dropped
        );
    }
    let _ = writeln!(s, "</svg>");
    s
}

/// `v` without trailing zeros (`0.5`, `2`, `0.25`).
fn trim_float(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "boot noise\r\n\
        ARM_VCPU_TRACE begin freq=1000\r\n\
        P 0 kernel starts\n\
        X 0 0 0 mmio_read 10 2\n\
        X 0 0 0 mmio_read 20 2\n\
        X 1 0 1 wfi 500 30\n\
        [refhv INFO ] interleaved line from another core\n\
        X 0 0 0 hvc 900 1\n\
        P 1000 init runs\n\
        ARM_VCPU_TRACE end dropped=0\n";

    /// A minimal well-formedness check: every tag closed in order, attributes quoted.
    fn well_formed(svg: &str) -> Result<(), String> {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = svg;
        while let Some(i) = rest.find('<') {
            let j = rest[i..].find('>').ok_or("unclosed <")? + i;
            let tag = &rest[i + 1..j];
            rest = &rest[j + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                let open = stack.pop().ok_or(format!("</{name}> without opening"))?;
                if open != name {
                    return Err(format!("<{open}> closed by </{name}>"));
                }
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().ok_or("empty tag")?;
                stack.push(name.to_string());
            }
            if !tag.matches('"').count().is_multiple_of(2) {
                return Err(format!("unbalanced quotes in <{tag}>"));
            }
        }
        if stack.is_empty() {
            Ok(())
        } else {
            Err(format!("unclosed {stack:?}"))
        }
    }

    #[test]
    fn parses_records_amid_other_output() {
        let t = parse(SAMPLE).unwrap();
        assert_eq!(t.freq, 1000);
        assert_eq!(t.exits.len(), 4);
        assert_eq!(
            t.exits[2],
            Exit {
                core: 1,
                vm: 0,
                vcpu: 1,
                kind: "wfi".into(),
                at: 500,
                host: 30
            }
        );
        assert_eq!(t.phases[1].label, "init runs");
        assert_eq!(t.time_range(), (0, 1000));
        assert_eq!(t.lanes(), vec![(0, 0), (0, 1)]);
        let k = t.kinds();
        assert_eq!(k[0].0, "mmio_read");
        assert_eq!(
            k[0].1,
            KindTotals {
                count: 2,
                host_ticks: 4
            }
        );
    }

    #[test]
    fn refuses_broken_recordings() {
        assert!(parse("nothing here").is_err());
        assert!(parse("ARM_VCPU_TRACE begin freq=10\nX 0 0 0 hvc 1 1\n").is_err()); // no end
        assert!(parse("ARM_VCPU_TRACE begin freq=0\nARM_VCPU_TRACE end dropped=0\n").is_err());
        assert!(parse(
            "ARM_VCPU_TRACE begin freq=10\nX 0 0 zero hvc 1 1\nARM_VCPU_TRACE end dropped=0\n"
        )
        .is_err());
    }

    #[test]
    fn svg_is_well_formed_with_one_series_per_kind() {
        let t = parse(SAMPLE).unwrap();
        let svg = render_svg(&t, "sample <boot>");
        well_formed(&svg).unwrap();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.contains("sample &lt;boot&gt;"));
        // One legend entry and one table row per kind present, nothing for others.
        assert_eq!(svg.matches("class=\"legend\"").count(), 3);
        assert_eq!(svg.matches("class=\"row\"").count(), 3);
        for k in ["mmio_read", "wfi", "hvc"] {
            assert!(svg.contains(&format!("kind-{k}")), "{k}");
        }
        assert!(!svg.contains("kind-irq"));
        // One strip per vCPU, phases drawn.
        assert_eq!(svg.matches("class=\"lane\"").count(), 2);
        assert_eq!(svg.matches("class=\"phase\"").count(), 2);
    }

    #[test]
    fn axis_spans_the_recording() {
        let t = parse(SAMPLE).unwrap();
        let svg = render_svg(&t, "x");
        // 1000 ticks at 1 kHz = 1 s: ticks 0 .. 1 in steps of 0.1.
        let ticks: Vec<&str> = svg
            .split("class=\"tick\"")
            .skip(1)
            .filter_map(|p| p.split('>').nth(1))
            .filter_map(|p| p.split('<').next())
            .collect();
        assert_eq!(ticks.first(), Some(&"0"));
        assert_eq!(ticks.last(), Some(&"1"));
        assert_eq!(ticks.len(), 11);
        // Host time in the table: mmio_read 4 ticks = 4 ms.
        assert!(svg.contains(">4.00<"));
    }

    #[test]
    fn kinds_table_adds_up() {
        let out = "ARM_VCPU_TRACE begin freq=1000000\nX 0 0 0 hvc 10 5\nX 0 0 1 hvc 20 15\nX 1 0 0 wfx 30 80\nARM_VCPU_TRACE end dropped=0\n";
        let t = parse(out).unwrap();
        let table = kinds_table(&t);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        // By count: hvc (2 exits, 20 µs, 20%), wfx (1, 80 µs, 80%), all.
        assert!(
            lines[1].starts_with("hvc") && lines[1].contains(" 2 ") && lines[1].contains("20.0%"),
            "{table}"
        );
        assert!(
            lines[2].starts_with("wfx") && lines[2].contains("80.0%"),
            "{table}"
        );
        assert!(
            lines[3].starts_with("all") && lines[3].contains(" 3 ") && lines[3].ends_with(" 100"),
            "{table}"
        );
    }

    #[test]
    fn steps_are_nice() {
        assert_eq!(nice_step(1.0, 10.0), 0.1);
        assert_eq!(nice_step(3.7, 10.0), 0.5);
        assert_eq!(nice_step(25.0, 10.0), 2.0);
        assert_eq!(trim_float(0.5), "0.5");
        assert_eq!(trim_float(2.0), "2");
    }

    #[test]
    fn colours_are_stable() {
        assert_eq!(colour("mmio_read"), colour("mmio_read"));
    }
}
