//! The crate/host split of the bench: which EL2 instructions of a round trip are the
//! library's (`arm_vcpu`) and which are the reference hypervisor's host loop
//! (`refhv`), which users copy.
//!
//! The `insn-hist` plugin (`xtask/insn-hist/`) counts every instruction address of
//! the hypervisor's code range; each address is attributed by the release image's
//! debug info. The image is built with LTO, so most of the crate is inlined into the
//! host's functions and the ELF symbol alone would say "host" for crate code: the
//! attribution walks the inlined frames at the address, innermost first, and takes
//! the first frame that belongs to one of the two crates (library code such as
//! `core::ptr::write` inlined into a crate function counts as that function's).
//! Addresses with no such frame — out-of-line library functions (`memcpy`,
//! `core::fmt`), or code without debug info — fall back to the ELF symbol, and are
//! counted as "other" when that does not name a crate either.

use std::collections::BTreeMap;
use std::path::Path;

/// Who an EL2 instruction belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Owner {
    /// The library (`arm_vcpu`, including its vectors in `hw/exception.S`).
    Crate,
    /// The reference hypervisor (`refhv`).
    Host,
    /// Neither: an out-of-line function of `core`, `compiler_builtins` or another
    /// dependency, shared by both.
    Other,
}

/// The crate a demangled Rust path names, if it is one of ours: `arm_vcpu::a::b`,
/// `<arm_vcpu::X as core::fmt::Debug>::fmt` (the impl's self type decides),
/// `refhv::sched::run`; the `__arm_vcpu_*` symbols are the crate's assembly.
pub fn owner_of_name(name: &str) -> Option<Owner> {
    if name.starts_with("__arm_vcpu") {
        return Some(Owner::Crate);
    }
    let path = name.trim_start_matches(['<', '&', '*', ' ']);
    let path = path.strip_prefix("mut ").unwrap_or(path);
    let krate = path.split("::").next().unwrap_or("");
    match krate {
        "arm_vcpu" => Some(Owner::Crate),
        "refhv" => Some(Owner::Host),
        _ => None,
    }
}

/// The owner of a source file path (for frames without a function name).
pub fn owner_of_file(file: &str) -> Option<Owner> {
    if file.contains("/arm_vcpu/src/") || file.starts_with("arm_vcpu/src/") {
        Some(Owner::Crate)
    } else if file.contains("/hypervisor/src/") || file.starts_with("hypervisor/src/") {
        Some(Owner::Host)
    } else {
        None
    }
}

/// One inlined frame at an address: its function's demangled name and the file of
/// the location inside that function, where known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frame {
    pub function: Option<String>,
    pub file: Option<String>,
}

/// The rule: the innermost frame that names one of our crates (by function name,
/// else by file), else the ELF symbol, else [`Owner::Other`].
pub fn attribute(frames: &[Frame], symbol: Option<&str>) -> Owner {
    frames
        .iter()
        .find_map(|f| {
            f.function
                .as_deref()
                .and_then(owner_of_name)
                .or_else(|| f.file.as_deref().and_then(owner_of_file))
        })
        .or_else(|| symbol.and_then(owner_of_name))
        .unwrap_or(Owner::Other)
}

/// A parsed histogram: instruction address → times executed.
pub type Histogram = BTreeMap<u64, u64>;

/// Reads the `insn-hist:` lines of a QEMU log and checks them against the plugin's
/// `insn-hist-total:` (a truncated log must not pass as a smaller count).
pub fn parse_hist(log: &str) -> Result<Histogram, String> {
    let mut h = Histogram::new();
    let mut total = None;
    for line in log.lines() {
        if let Some(rest) = line.strip_prefix("insn-hist: ") {
            let (pc, n) = rest
                .trim()
                .split_once(' ')
                .ok_or_else(|| format!("bad insn-hist line {line:?}"))?;
            let pc = u64::from_str_radix(pc, 16).map_err(|e| format!("{line:?}: {e}"))?;
            let n: u64 = n.parse().map_err(|e| format!("{line:?}: {e}"))?;
            if h.insert(pc, n).is_some() {
                return Err(format!("address {pc:#x} listed twice"));
            }
        } else if let Some(rest) = line.strip_prefix("insn-hist-total: ") {
            total = Some(
                rest.trim()
                    .parse::<u64>()
                    .map_err(|e| format!("{line:?}: {e}"))?,
            );
        }
    }
    let total = total.ok_or("no insn-hist-total line (was the insn-hist plugin loaded?)")?;
    let sum: u64 = h.values().sum();
    if sum != total {
        return Err(format!(
            "insn-hist lines add up to {sum}, the plugin counted {total}"
        ));
    }
    Ok(h)
}

/// Instructions per round trip by owner: the difference of two runs' histograms
/// (`n1` and `n2` round trips) divided by `n2 - n1`, as the bench does for totals.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Split {
    pub krate: f64,
    pub host: f64,
    pub other: f64,
}

impl Split {
    pub fn total(&self) -> f64 {
        self.krate + self.host + self.other
    }
}

/// Splits the per-round-trip difference of `h1` and `h2` by `owner`.
pub fn split(
    h1: &Histogram,
    h2: &Histogram,
    n1: u64,
    n2: u64,
    mut owner: impl FnMut(u64) -> Owner,
) -> Split {
    let mut sums: BTreeMap<Owner, i128> = BTreeMap::new();
    for (&pc, &b) in h2 {
        let a = h1.get(&pc).copied().unwrap_or(0);
        *sums.entry(owner(pc)).or_default() += i128::from(b) - i128::from(a);
    }
    for (&pc, &a) in h1 {
        if !h2.contains_key(&pc) {
            *sums.entry(owner(pc)).or_default() -= i128::from(a);
        }
    }
    let per = |o: Owner| {
        let d = n2.saturating_sub(n1).max(1) as f64;
        sums.get(&o).copied().unwrap_or(0) as f64 / d
    };
    Split {
        krate: per(Owner::Crate),
        host: per(Owner::Host),
        other: per(Owner::Other),
    }
}

/// Attributes addresses of one ELF image through its debug info (memoised: the
/// two runs of a row, and the rows, share most addresses).
pub struct Attributor {
    loader: addr2line::Loader,
    /// The ELF symbols by address: assembly labels (the crate's vectors) have no
    /// size, so the debug-info loader's own symbol map leaves them out.
    symbols: Vec<(u64, String)>,
    cache: BTreeMap<u64, Owner>,
}

/// A symbol's demangled Rust path (legacy `_ZN...E` or v0 `_R...`), or the name.
fn demangle_symbol(name: &str) -> String {
    addr2line::demangle(name, addr2line::gimli::DW_LANG_Rust).unwrap_or_else(|| name.to_string())
}

/// The symbol at or before `pc` in `symbols` (sorted by address).
pub fn symbol_before(symbols: &[(u64, String)], pc: u64) -> Option<&str> {
    let i = symbols.partition_point(|(a, _)| *a <= pc);
    i.checked_sub(1)
        .and_then(|i| symbols.get(i))
        .map(|(_, n)| n.as_str())
}

impl Attributor {
    pub fn new(image: &Path) -> Result<Self, String> {
        let loader = addr2line::Loader::new(image)
            .map_err(|e| format!("{}: cannot read debug info: {e}", image.display()))?;
        let data = std::fs::read(image).map_err(|e| format!("{}: {e}", image.display()))?;
        let symbols = crate::elf::Elf::parse(&data)
            .and_then(|e| e.symbols())
            .map_err(|e| format!("{}: {e}", image.display()))?;
        Ok(Attributor {
            loader,
            symbols,
            cache: BTreeMap::new(),
        })
    }

    fn frames(&self, pc: u64) -> Vec<Frame> {
        let mut out = Vec::new();
        let Ok(mut it) = self.loader.find_frames(pc) else {
            return out;
        };
        while let Ok(Some(f)) = it.next() {
            out.push(Frame {
                function: f
                    .function
                    .as_ref()
                    .and_then(|n| n.demangle().ok())
                    .map(|n| n.into_owned()),
                file: f.location.and_then(|l| l.file).map(str::to_string),
            });
        }
        out
    }

    pub fn owner(&mut self, pc: u64) -> Owner {
        if let Some(o) = self.cache.get(&pc) {
            return *o;
        }
        let sym = symbol_before(&self.symbols, pc).map(demangle_symbol);
        let o = attribute(&self.frames(pc), sym.as_deref());
        self.cache.insert(pc, o);
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(function: &str, file: &str) -> Frame {
        Frame {
            function: (!function.is_empty()).then(|| function.to_string()),
            file: (!file.is_empty()).then(|| file.to_string()),
        }
    }

    #[test]
    fn names() {
        let cases = [
            ("arm_vcpu::vcpu::Aarch64VCpu::run", Some(Owner::Crate)),
            ("arm_vcpu::vcpu::Aarch64VCpu::run::{{closure}}", Some(Owner::Crate)),
            (
                "<arm_vcpu::vgic::v3::Ich<S> as arm_vcpu::vgic::list_registers::VgicRegisters>::load",
                Some(Owner::Crate),
            ),
            ("<refhv::devices::Uart as arm_vcpu::Mmio>::read", Some(Owner::Host)),
            ("<&mut refhv::X as core::fmt::Write>::write_str", Some(Owner::Host)),
            ("refhv::sched::exits::handle", Some(Owner::Host)),
            ("__arm_vcpu_enter", Some(Owner::Crate)),
            ("__arm_vcpu_lower_sync", Some(Owner::Crate)),
            ("core::ptr::write<u64>", None),
            ("<core::option::Option<T> as core::clone::Clone>::clone", None),
            ("compiler_builtins::mem::memcpy", None),
            ("memcpy", None),
            ("arm_vcpuX::f", None),
            ("refhvish::f", None),
            ("", None),
        ];
        for (name, want) in cases {
            assert_eq!(owner_of_name(name), want, "{name}");
        }
    }

    #[test]
    fn files() {
        assert_eq!(
            owner_of_file("/work/main/arm_vcpu/src/vcpu.rs"),
            Some(Owner::Crate)
        );
        assert_eq!(
            owner_of_file("/x/hypervisor/src/sched/mod.rs"),
            Some(Owner::Host)
        );
        assert_eq!(
            owner_of_file("/rustc/abc/library/core/src/ptr/mod.rs"),
            None
        );
    }

    #[test]
    fn innermost_crate_frame_wins() {
        // core::ptr::write inlined into the crate, inlined into the host loop.
        let frames = [
            f(
                "core::ptr::write<u64>",
                "/rustc/x/library/core/src/ptr/mod.rs",
            ),
            f(
                "arm_vcpu::vcpu::Aarch64VCpu::run",
                "/w/arm_vcpu/src/vcpu.rs",
            ),
            f("refhv::sched::run_vcpu", "/w/hypervisor/src/sched/mod.rs"),
        ];
        assert_eq!(
            attribute(&frames, Some("refhv::sched::run_vcpu")),
            Owner::Crate
        );
        // The host's own instruction in the same function.
        assert_eq!(attribute(&frames[2..], Some("_ZN5refhv")), Owner::Host);
        // A frame without a name falls back to its file.
        assert_eq!(
            attribute(&[f("", "/w/arm_vcpu/src/exit.rs")], None),
            Owner::Crate
        );
        // No debug info: the symbol decides, else "other".
        assert_eq!(attribute(&[], Some("__arm_vcpu_vectors")), Owner::Crate);
        assert_eq!(attribute(&[], Some("memcpy")), Owner::Other);
        assert_eq!(attribute(&[], None), Owner::Other);
        assert_eq!(
            attribute(
                &[f("core::fmt::write", "/rustc/x/core/src/fmt/mod.rs")],
                None
            ),
            Owner::Other
        );
    }

    #[test]
    fn nearest_symbol() {
        let syms = vec![(0x100, "a".to_string()), (0x200, "b".to_string())];
        assert_eq!(symbol_before(&syms, 0x50), None);
        assert_eq!(symbol_before(&syms, 0x100), Some("a"));
        assert_eq!(symbol_before(&syms, 0x1fc), Some("a"));
        assert_eq!(symbol_before(&syms, 0x200), Some("b"));
        assert_eq!(symbol_before(&syms, 0x9999), Some("b"));
    }

    #[test]
    fn histogram_parses_and_checks_its_total() {
        let log = "noise\ninsn-hist: 40200000 10\ninsn-hist: 40200004 7\ninsn-hist-total: 17\n";
        let h = parse_hist(log).unwrap();
        assert_eq!(h.get(&0x4020_0000), Some(&10));
        assert_eq!(h.get(&0x4020_0004), Some(&7));
        assert!(parse_hist("insn-hist: 40200000 10\ninsn-hist-total: 11\n").is_err());
        assert!(parse_hist("insn-hist: 40200000 10\n").is_err());
        assert!(parse_hist("insn-hist: 40200000 x\ninsn-hist-total: 0\n").is_err());
        assert!(parse_hist("insn-hist: 4 1\ninsn-hist: 4 1\ninsn-hist-total: 2\n").is_err());
    }

    #[test]
    fn split_is_the_per_round_trip_difference() {
        // Setup code (0x0) runs once in both runs; 0x4 (crate) 3 and 0x8 (host) 2
        // per round trip; 0xc (other) only in the longer run's tail.
        let h1: Histogram = [(0x0, 50), (0x4, 30), (0x8, 20)].into();
        let h2: Histogram = [(0x0, 50), (0x4, 330), (0x8, 220), (0xc, 100)].into();
        let owner = |pc| match pc {
            0x4 => Owner::Crate,
            0x8 => Owner::Host,
            _ => Owner::Other,
        };
        let s = split(&h1, &h2, 10, 110, owner);
        assert_eq!(s.krate, 3.0);
        assert_eq!(s.host, 2.0);
        assert_eq!(s.other, 1.0);
        assert_eq!(s.total(), 6.0);
        // An address only the shorter run executed counts negative.
        let s = split(&[(0xc, 100)].into(), &Histogram::new(), 10, 110, owner);
        assert_eq!(s.other, -1.0);
    }
}
