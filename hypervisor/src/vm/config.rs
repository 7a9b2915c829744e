//! The declarative description of a VM ([`VmConfig`]) and the small TOML subset it is
//! written in.
//!
//! The same file is read by two programs: `cargo xtask` (compiled in through `#[path]`)
//! parses a user's `--vm FILE.toml` with it, stages the files it names with QEMU's
//! loader and hands the hypervisor a manifest in the same language, where each file
//! is `[address, size]` instead of a path; the hypervisor parses that manifest. Pure:
//! `core` and `alloc` only, host-tested in xtask.
//!
//! The language: `key = value` lines, `#` comments, `[[vm]]` starting each VM of a
//! file with several (a file without one is one VM). Values: `"strings"` (escapes
//! `\"`, `\\`, `\n`, `\t`), integers (decimal, `0x` hex, `_` separators), `true` /
//! `false`, and one-line arrays of integers or strings. Unknown keys are errors.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// Most vCPUs one VM may have (the emulated GIC's redistributors, Aff0 = index).
pub const MAX_VCPUS: usize = 8;
/// Least RAM a VM gets.
pub const MIN_MEM: u64 = 16 << 20;

/// A value of the language.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Int(u64),
    Bool(bool),
    Ints(Vec<u64>),
    Strs(Vec<String>),
}

/// One `key = value`, with its line number (1-based) for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Value,
    pub line: usize,
}

/// A parse or meaning error, one line for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(line: usize, msg: impl core::fmt::Display) -> Result<T, ConfigError> {
    Err(ConfigError(format!("line {line}: {msg}")))
}

/// Splits a file into tables: one per `[[vm]]`, or one for a file without headers.
pub fn parse_tables(text: &str) -> Result<Vec<Vec<Entry>>, ConfigError> {
    let mut tables: Vec<Vec<Entry>> = Vec::new();
    let mut current: Vec<Entry> = Vec::new();
    let mut saw_header = false;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('[') && !line.contains('=') {
            if line != "[[vm]]" {
                return err(n, format!("unknown section {line} (only [[vm]])"));
            }
            if saw_header || !current.is_empty() {
                if !saw_header {
                    return err(n, "keys before the first [[vm]]");
                }
                tables.push(core::mem::take(&mut current));
            }
            saw_header = true;
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return err(n, format!("expected `key = value`, got {line:?}"));
        };
        let key = k.trim();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return err(n, format!("bad key {key:?}"));
        }
        if current.iter().any(|e| e.key == key) {
            return err(n, format!("`{key}` given twice"));
        }
        let value = parse_value(v.trim()).map_err(|m| ConfigError(format!("line {n}: {m}")))?;
        current.push(Entry {
            key: key.to_string(),
            value,
            line: n,
        });
    }
    if saw_header || !current.is_empty() {
        tables.push(current);
    }
    Ok(tables)
}

/// `line` without a `#` comment (a `#` inside a string is kept).
fn strip_comment(line: &str) -> &str {
    let mut in_str = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            '\\' if in_str && !escaped => {
                escaped = true;
                continue;
            }
            '"' if !escaped => in_str = !in_str,
            '#' if !in_str => return &line[..i],
            _ => {}
        }
        escaped = false;
    }
    line
}

fn parse_value(v: &str) -> Result<Value, String> {
    if let Some(inner) = v.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or("an array must end with `]` on the same line")?;
        let items = split_items(inner)?;
        if items.is_empty() {
            return Ok(Value::Ints(Vec::new()));
        }
        if items[0].starts_with('"') {
            let mut out = Vec::new();
            for it in &items {
                out.push(parse_string(it)?);
            }
            return Ok(Value::Strs(out));
        }
        let mut out = Vec::new();
        for it in &items {
            out.push(parse_int(it)?);
        }
        return Ok(Value::Ints(out));
    }
    if v.starts_with('"') {
        return parse_string(v).map(Value::Str);
    }
    match v {
        "true" => return Ok(Value::Bool(true)),
        "false" => return Ok(Value::Bool(false)),
        _ => {}
    }
    parse_int(v).map(Value::Int)
}

/// The comma-separated items of an array body (commas inside strings kept).
fn split_items(s: &str) -> Result<Vec<String>, String> {
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut in_str = false;
    let mut escaped = false;
    for c in s.chars() {
        if in_str {
            cur.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                cur.push(c);
            }
            ',' => {
                let t = cur.trim();
                if t.is_empty() {
                    return Err("empty array item".into());
                }
                items.push(t.to_string());
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    if in_str {
        return Err("unterminated string in array".into());
    }
    let t = cur.trim();
    if !t.is_empty() {
        items.push(t.to_string());
    }
    Ok(items)
}

fn parse_string(v: &str) -> Result<String, String> {
    let body = v
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .filter(|_| v.len() >= 2)
        .ok_or_else(|| format!("bad string {v}"))?;
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                other => return Err(format!("unknown escape \\{}", other.unwrap_or(' '))),
            },
            '"' => return Err(format!("unescaped quote in {v}")),
            c => out.push(c),
        }
    }
    Ok(out)
}

fn parse_int(v: &str) -> Result<u64, String> {
    let s: String = v.chars().filter(|&c| c != '_').collect();
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("expected a number, a string, true/false or an array, got {v}"))
}

/// A size: bytes, or a string with a `K`, `M` or `G` suffix (binary units; `MiB` etc.
/// also read).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let s = s
        .strip_suffix("iB")
        .or_else(|| s.strip_suffix('B'))
        .unwrap_or(s);
    let (num, shift) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], 10),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 20),
        Some(b'G' | b'g') => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    parse_int(num.trim()).ok()?.checked_mul(1u64 << shift)
}

/// A file a VM uses: a path (the user's file) or where the runner staged it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Path(String),
    Staged { addr: u64, size: u64 },
}

/// How the kernel image is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum KernelFormat {
    /// By its content: an ELF by its magic, a Linux arm64 `Image` by its header, else
    /// raw (which needs `load_offset`).
    #[default]
    Auto,
    Image,
    Elf,
    Raw,
}

/// How the VM's interrupts reach it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IrqMode {
    /// Emulated distributor and redistributors, every interrupt through list registers.
    #[default]
    Virtual,
    /// The guest owns the physical GIC and its cores (one vCPU per core, pinned).
    Passthrough,
}

/// Where vCPUs go when they start (PSCI CPU_ON, or vCPU 0 at boot).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Placement {
    /// vCPU i on allowed core i mod n.
    #[default]
    Pinned,
    /// The allowed core with the fewest vCPUs on it (on a tie, the fewest of this VM's).
    Balanced,
}

/// The VM's console.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Console {
    /// Chosen by the hypervisor: the first VM gets the real UART's input.
    #[default]
    Auto,
    /// Output and input.
    Io,
    /// Output only.
    Out,
}

/// What a trapped WFI does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Wfi {
    /// The vCPU blocks until its timer's deadline, an interrupt or a kick.
    #[default]
    Sleep,
    /// The vCPU gives its core up and runs again at its next turn (the test guests'
    /// protocol: they use WFI as a scheduling point, with nothing to wake them).
    Yield,
}

/// Which EL1 timers the generated device tree offers the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum GuestTimer {
    /// All four of the binding (Linux uses the virtual timer).
    #[default]
    All,
    /// Only the physical ones (Linux then uses the EL1 physical timer, PPI 30).
    Physical,
}

/// One VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmConfig {
    /// Console prefix and verdict label.
    pub name: String,
    /// The kernel; `None` only for a scenario VM, whose kernel is the staged test ELF.
    pub kernel: Option<Source>,
    pub format: KernelFormat,
    /// Raw images: where in RAM (offset from its start) the image goes and starts.
    pub load_offset: Option<u64>,
    pub initrd: Option<Source>,
    /// A device tree of the user's (otherwise one is generated).
    pub dtb: Option<Source>,
    /// No device tree at all (`dtb = false`): x0 = 0 at entry, as the test guests
    /// expect.
    pub no_dtb: bool,
    /// `/chosen/bootargs` of the generated device tree.
    pub cmdline: String,
    /// `/config/bootcmd` of the generated device tree (U-Boot).
    pub bootcmd: Option<String>,
    /// RAM in bytes (at IPA 0x4000_0000).
    pub mem: u64,
    pub vcpus: usize,
    /// Physical cores the vCPUs may run on (`None`: every core of the board).
    pub cores: Option<Vec<usize>>,
    pub placement: Placement,
    pub mode: IrqMode,
    pub console: Console,
    /// Time slice in microseconds when the core has other runnable vCPUs (0: a vCPU
    /// runs until it blocks or yields).
    pub slice_us: u64,
    /// Every N-th time one of its vCPUs is unbound, that vCPU is snapshotted to
    /// bytes, destroyed and replaced by a new one restored from them (0: never).
    pub snapshot_every: u64,
    /// A virtual PMUv3 (`arm_vcpu::pmu`; `pmu = false` hides it): `Some(None)` with
    /// every counter the host leaves, `Some(Some(n))` with `n` event counters. Only for
    /// OS VMs: a scenario's VM takes its scenario's setup.
    pub pmu: Option<Option<u8>>,
    pub wfi: Wfi,
    pub timer: GuestTimer,
    /// The host-side checks of a test scenario (`scenario::by_name`).
    pub scenario: Option<String>,
    /// Handed to a scenario guest in x1.
    pub iters: u64,
    /// A scenario's PRNG seed.
    pub seed: u64,
    /// Which of several VMs of one scenario this is (e.g. `isolation`'s role).
    pub instance: usize,
}

impl Default for VmConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            kernel: None,
            format: KernelFormat::Auto,
            load_offset: None,
            initrd: None,
            dtb: None,
            no_dtb: false,
            cmdline: String::new(),
            bootcmd: None,
            mem: 256 << 20,
            vcpus: 1,
            cores: None,
            placement: Placement::Pinned,
            mode: IrqMode::Virtual,
            console: Console::Auto,
            slice_us: 2000,
            snapshot_every: 0,
            pmu: Some(None),
            wfi: Wfi::Sleep,
            timer: GuestTimer::All,
            scenario: None,
            iters: 100,
            seed: 1,
            instance: 0,
        }
    }
}

/// The keys a VM description may have.
pub const KEYS: &[&str] = &[
    "name",
    "kernel",
    "format",
    "load_offset",
    "initrd",
    "dtb",
    "cmdline",
    "bootcmd",
    "memory",
    "vcpus",
    "cores",
    "placement",
    "mode",
    "console",
    "slice_us",
    "snapshot_every",
    "pmu",
    "wfi",
    "timer",
    "scenario",
    "iters",
    "seed",
    "instance",
];

fn want_str(e: &Entry) -> Result<&str, ConfigError> {
    match &e.value {
        Value::Str(s) => Ok(s),
        _ => err(e.line, format!("`{}` must be a string", e.key)),
    }
}

fn want_int(e: &Entry) -> Result<u64, ConfigError> {
    match &e.value {
        Value::Int(n) => Ok(*n),
        _ => err(e.line, format!("`{}` must be a number", e.key)),
    }
}

fn want_choice<T: Copy>(e: &Entry, choices: &[(&str, T)]) -> Result<T, ConfigError> {
    let s = want_str(e)?;
    match choices.iter().find(|(n, _)| *n == s) {
        Some((_, v)) => Ok(*v),
        None => {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            err(
                e.line,
                format!("`{}` is one of {}, not {s:?}", e.key, names.join(", ")),
            )
        }
    }
}

fn want_source(e: &Entry) -> Result<Source, ConfigError> {
    match &e.value {
        Value::Str(s) if !s.is_empty() => Ok(Source::Path(s.clone())),
        Value::Ints(v) if v.len() == 2 => Ok(Source::Staged {
            addr: v[0],
            size: v[1],
        }),
        _ => err(
            e.line,
            format!(
                "`{}` must be a file path (or [address, size] when staged)",
                e.key
            ),
        ),
    }
}

impl VmConfig {
    /// The VM a table describes; `index` names it when it has no `name`.
    pub fn from_entries(entries: &[Entry], index: usize) -> Result<Self, ConfigError> {
        let mut c = VmConfig {
            name: format!("vm{index}"),
            ..Default::default()
        };
        for e in entries {
            match e.key.as_str() {
                "name" => {
                    let n = want_str(e)?;
                    if n.is_empty()
                        || !n
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                    {
                        return err(e.line, "`name` is letters, digits, `-`, `_` and `.`");
                    }
                    c.name = n.to_string();
                }
                "kernel" => c.kernel = Some(want_source(e)?),
                "initrd" => c.initrd = Some(want_source(e)?),
                "dtb" => match e.value {
                    Value::Bool(false) => c.no_dtb = true,
                    _ => c.dtb = Some(want_source(e)?),
                },
                "format" => {
                    c.format = want_choice(
                        e,
                        &[
                            ("auto", KernelFormat::Auto),
                            ("image", KernelFormat::Image),
                            ("elf", KernelFormat::Elf),
                            ("raw", KernelFormat::Raw),
                        ],
                    )?
                }
                "load_offset" => c.load_offset = Some(want_int(e)?),
                "cmdline" => c.cmdline = want_str(e)?.to_string(),
                "bootcmd" => c.bootcmd = Some(want_str(e)?.to_string()),
                "memory" => {
                    c.mem = match &e.value {
                        Value::Int(n) => *n,
                        Value::Str(s) => match parse_size(s) {
                            Some(n) => n,
                            None => return err(e.line, format!("bad size {s:?} (e.g. \"512M\")")),
                        },
                        _ => return err(e.line, "`memory` is a size (bytes, or \"512M\", \"1G\")"),
                    }
                }
                "vcpus" => c.vcpus = want_int(e)? as usize,
                "cores" => match &e.value {
                    Value::Ints(v) if !v.is_empty() => {
                        c.cores = Some(v.iter().map(|&n| n as usize).collect())
                    }
                    Value::Int(n) => c.cores = Some((0..*n as usize).collect()),
                    _ => {
                        return err(
                            e.line,
                            "`cores` is a list of core numbers ([0, 1]) or a count",
                        )
                    }
                },
                "placement" => {
                    c.placement = want_choice(
                        e,
                        &[
                            ("pinned", Placement::Pinned),
                            ("balanced", Placement::Balanced),
                        ],
                    )?
                }
                "mode" => {
                    c.mode = want_choice(
                        e,
                        &[
                            ("virtual", IrqMode::Virtual),
                            ("passthrough", IrqMode::Passthrough),
                        ],
                    )?
                }
                "console" => {
                    c.console = want_choice(
                        e,
                        &[
                            ("auto", Console::Auto),
                            ("io", Console::Io),
                            ("out", Console::Out),
                        ],
                    )?
                }
                "slice_us" => c.slice_us = want_int(e)?,
                "snapshot_every" => c.snapshot_every = want_int(e)?,
                "pmu" => {
                    c.pmu = match e.value {
                        Value::Bool(b) => b.then_some(None),
                        _ => match u8::try_from(want_int(e)?) {
                            Ok(n) if (1..=31).contains(&n) => Some(Some(n)),
                            _ => return err(e.line, "`pmu` is true, false or 1..=31 counters"),
                        },
                    }
                }
                "wfi" => c.wfi = want_choice(e, &[("sleep", Wfi::Sleep), ("yield", Wfi::Yield)])?,
                "timer" => {
                    c.timer = want_choice(
                        e,
                        &[("all", GuestTimer::All), ("physical", GuestTimer::Physical)],
                    )?
                }
                "scenario" => c.scenario = Some(want_str(e)?.to_string()),
                "iters" => c.iters = want_int(e)?,
                "seed" => c.seed = want_int(e)?,
                "instance" => c.instance = want_int(e)? as usize,
                other => {
                    return err(
                        e.line,
                        format!("unknown key `{other}` (known: {})", KEYS.join(", ")),
                    )
                }
            }
        }
        if c.kernel.is_none() && c.scenario.is_none() {
            return Err(ConfigError(format!("VM {}: no `kernel`", c.name)));
        }
        Ok(c)
    }

    /// Writes the VM back in the language (files as they are: paths or staged); the
    /// runner writes manifests with it.
    #[allow(dead_code)]
    pub fn to_toml(&self) -> String {
        let mut s = String::from("[[vm]]\n");
        let q = |v: &str| {
            let mut o = String::from("\"");
            for c in v.chars() {
                match c {
                    '"' => o.push_str("\\\""),
                    '\\' => o.push_str("\\\\"),
                    '\n' => o.push_str("\\n"),
                    '\t' => o.push_str("\\t"),
                    c => o.push(c),
                }
            }
            o.push('"');
            o
        };
        let src = |v: &Source| match v {
            Source::Path(p) => q(p),
            Source::Staged { addr, size } => format!("[{addr:#x}, {size}]"),
        };
        s += &format!("name = {}\n", q(&self.name));
        if let Some(k) = &self.kernel {
            s += &format!("kernel = {}\n", src(k));
        }
        let format = match self.format {
            KernelFormat::Auto => "auto",
            KernelFormat::Image => "image",
            KernelFormat::Elf => "elf",
            KernelFormat::Raw => "raw",
        };
        s += &format!("format = \"{format}\"\n");
        if let Some(o) = self.load_offset {
            s += &format!("load_offset = {o:#x}\n");
        }
        if let Some(i) = &self.initrd {
            s += &format!("initrd = {}\n", src(i));
        }
        if let Some(d) = &self.dtb {
            s += &format!("dtb = {}\n", src(d));
        }
        if self.no_dtb {
            s += "dtb = false\n";
        }
        if !self.cmdline.is_empty() {
            s += &format!("cmdline = {}\n", q(&self.cmdline));
        }
        if let Some(b) = &self.bootcmd {
            s += &format!("bootcmd = {}\n", q(b));
        }
        s += &format!("memory = {:#x}\nvcpus = {}\n", self.mem, self.vcpus);
        if let Some(c) = &self.cores {
            let l: Vec<String> = c.iter().map(|n| n.to_string()).collect();
            s += &format!("cores = [{}]\n", l.join(", "));
        }
        s += &format!(
            "placement = \"{}\"\nmode = \"{}\"\nconsole = \"{}\"\nslice_us = {}\nwfi = \"{}\"\ntimer = \"{}\"\n",
            match self.placement {
                Placement::Pinned => "pinned",
                Placement::Balanced => "balanced",
            },
            match self.mode {
                IrqMode::Virtual => "virtual",
                IrqMode::Passthrough => "passthrough",
            },
            match self.console {
                Console::Auto => "auto",
                Console::Io => "io",
                Console::Out => "out",
            },
            self.slice_us,
            match self.wfi {
                Wfi::Sleep => "sleep",
                Wfi::Yield => "yield",
            },
            match self.timer {
                GuestTimer::All => "all",
                GuestTimer::Physical => "physical",
            },
        );
        if self.snapshot_every != 0 {
            s += &format!("snapshot_every = {}\n", self.snapshot_every);
        }
        match self.pmu {
            Some(None) => {}
            Some(Some(n)) => s += &format!("pmu = {n}\n"),
            None => s += "pmu = false\n",
        }
        if let Some(sc) = &self.scenario {
            s += &format!(
                "scenario = {}\niters = {}\nseed = {}\ninstance = {}\n",
                q(sc),
                self.iters,
                self.seed,
                self.instance
            );
        }
        s
    }

    /// The allowed cores on a board of `board_cores`.
    pub fn allowed_cores(&self, board_cores: usize) -> Vec<usize> {
        match &self.cores {
            Some(c) => c.clone(),
            None => (0..board_cores).collect(),
        }
    }
}

/// Every VM of a file.
pub fn parse_vms(text: &str) -> Result<Vec<VmConfig>, ConfigError> {
    let tables = parse_tables(text)?;
    if tables.is_empty() {
        return Err(ConfigError("no VM described".into()));
    }
    tables
        .iter()
        .enumerate()
        .map(|(i, t)| VmConfig::from_entries(t, i))
        .collect()
}

/// Checks a set of VMs against a board of `board_cores` cores and `board_mem` bytes of
/// RAM free for VMs: one line saying what does not fit, if anything. Also settles
/// `Console::Auto` (the first VM without `console = "out"` gets the input).
pub fn check_set(
    vms: &mut [VmConfig],
    board_cores: usize,
    board_mem: u64,
) -> Result<(), ConfigError> {
    let fail = |m: String| Err(ConfigError(m));
    if vms.is_empty() {
        return fail("no VM to run".into());
    }
    let mut total_mem = 0u64;
    for (i, v) in vms.iter().enumerate() {
        let name = &v.name;
        if vms[..i].iter().any(|o| o.name == *name) {
            return fail(format!("two VMs are called {name:?}"));
        }
        if v.vcpus == 0 || v.vcpus > MAX_VCPUS {
            return fail(format!(
                "VM {name}: {} vCPUs (a VM has 1 to {MAX_VCPUS})",
                v.vcpus
            ));
        }
        if v.mem < MIN_MEM || v.mem % (2 << 20) != 0 {
            return fail(format!(
                "VM {name}: memory {:#x} (at least {} MiB, a multiple of 2 MiB)",
                v.mem,
                MIN_MEM >> 20
            ));
        }
        total_mem = total_mem.saturating_add(v.mem);
        let cores = v.allowed_cores(board_cores);
        if cores.is_empty() {
            return fail(format!("VM {name}: no cores to run on"));
        }
        for (k, &c) in cores.iter().enumerate() {
            if c >= board_cores {
                return fail(format!(
                    "VM {name}: core {c}, but the board has {board_cores} core(s) (QEMU -smp)"
                ));
            }
            if cores[..k].contains(&c) {
                return fail(format!("VM {name}: core {c} listed twice"));
            }
        }
        if v.mode == IrqMode::Passthrough {
            if v.vcpus > cores.len() {
                return fail(format!(
                    "VM {name}: passthrough runs one vCPU per core: {} vCPUs, {} core(s) (QEMU -smp, or `cores`)",
                    v.vcpus,
                    cores.len()
                ));
            }
            if vms.len() > 1 {
                return fail(format!(
                    "VM {name}: a passthrough VM owns the physical GIC's distributor, so it runs alone (use mode = \"virtual\" with other VMs)"
                ));
            }
            if v.placement != Placement::Pinned {
                return fail(format!("VM {name}: passthrough vCPUs are pinned"));
            }
        }
        if v.format == KernelFormat::Raw && v.load_offset.is_none() {
            return fail(format!("VM {name}: a raw kernel needs `load_offset`"));
        }
    }
    if total_mem > board_mem {
        return fail(format!(
            "the VMs need {} MiB of RAM together, the board has {} MiB free for VMs (QEMU -m, or less `memory`)",
            total_mem >> 20,
            board_mem >> 20
        ));
    }
    let ios = vms.iter().filter(|v| v.console == Console::Io).count();
    if ios > 1 {
        return fail("more than one VM with console = \"io\" (one gets the input)".into());
    }
    if ios == 0 {
        if let Some(v) = vms.iter_mut().find(|v| v.console == Console::Auto) {
            v.console = Console::Io;
        }
    }
    for v in vms.iter_mut() {
        if v.console == Console::Auto {
            v.console = Console::Out;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const USER: &str = r#"
# Two vCPUs of Debian's kernel
name = "linux0"
kernel = "target/linux/Image"   # by path
initrd = "target/linux/initramfs.cpio"
cmdline = "console=ttyAMA0 rdinit=/init # not a comment"
memory = "512M"
vcpus = 2
cores = [0, 1]
mode = "virtual"
"#;

    #[test]
    fn a_user_file() {
        let vms = parse_vms(USER).unwrap();
        assert_eq!(vms.len(), 1);
        let v = &vms[0];
        assert_eq!(v.name, "linux0");
        assert_eq!(v.kernel, Some(Source::Path("target/linux/Image".into())));
        assert_eq!(v.cmdline, "console=ttyAMA0 rdinit=/init # not a comment");
        assert_eq!(v.mem, 512 << 20);
        assert_eq!((v.vcpus, v.cores.clone()), (2, Some(vec![0, 1])));
        assert_eq!(v.mode, IrqMode::Virtual);
    }

    #[test]
    fn round_trip_through_the_manifest() {
        let mut v = parse_vms(USER).unwrap().remove(0);
        v.kernel = Some(Source::Staged {
            addr: 0x4820_0000,
            size: 27_302_400,
        });
        v.bootcmd = Some("echo \"hi\"; poweroff".into());
        v.no_dtb = true;
        let text = format!("{}{}", v.to_toml(), v.to_toml().replace("linux0", "linux1"));
        let back = parse_vms(&text).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0], v);
        assert_eq!(back[1].name, "linux1");
    }

    #[test]
    fn values() {
        assert_eq!(parse_value("0x4800_0000"), Ok(Value::Int(0x4800_0000)));
        assert_eq!(parse_value("12_345"), Ok(Value::Int(12345)));
        assert_eq!(parse_value("[1, 0x2,3]"), Ok(Value::Ints(vec![1, 2, 3])));
        assert_eq!(
            parse_value(r#"["a,b", "c\"d"]"#),
            Ok(Value::Strs(vec!["a,b".into(), "c\"d".into()]))
        );
        assert_eq!(parse_value("true"), Ok(Value::Bool(true)));
        assert!(parse_value("[1, 2").is_err());
        assert!(parse_value("\"open").is_err());
        assert!(parse_value("\"bad \\q\"").is_err());
        assert!(parse_value("twelve").is_err());
        assert!(parse_value("[1,,2]").is_err());
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("0x1000"), Some(4096));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("99999999999G"), None);
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse_vms("name = \"a\"\nkernel = \"k\"\nmemroy = \"1G\"\n").unwrap_err();
        assert!(e.0.starts_with("line 3: unknown key `memroy`"), "{e}");
        let e = parse_vms("kernel = \"k\"\nvcpus = \"two\"\n").unwrap_err();
        assert_eq!(e.0, "line 2: `vcpus` must be a number");
        let e = parse_vms("kernel = \"k\"\nmode = \"fast\"\n").unwrap_err();
        assert_eq!(
            e.0,
            "line 2: `mode` is one of virtual, passthrough, not \"fast\""
        );
        let e = parse_vms("[vm]\nkernel = \"k\"\n").unwrap_err();
        assert!(e.0.starts_with("line 1: unknown section"), "{e}");
        let e = parse_vms("kernel = \"k\"\nkernel = \"j\"\n").unwrap_err();
        assert_eq!(e.0, "line 2: `kernel` given twice");
        assert_eq!(
            parse_vms("name = \"x\"\n").unwrap_err().0,
            "VM x: no `kernel`"
        );
        assert_eq!(parse_vms("# nothing\n").unwrap_err().0, "no VM described");
        assert!(parse_vms("kernel = \"k\"\n[[vm]]\nkernel = \"j\"\n").is_err());
        assert!(parse_vms("kernel = [1]\n").is_err());
        assert!(parse_vms("kernel = \"k\"\nname = \"a b\"\n").is_err());
    }

    fn vm(name: &str, vcpus: usize, mem: u64) -> VmConfig {
        VmConfig {
            name: name.into(),
            kernel: Some(Source::Path("k".into())),
            vcpus,
            mem,
            ..Default::default()
        }
    }

    #[test]
    fn sets_against_the_board() {
        let mut two = vec![vm("a", 2, 256 << 20), vm("b", 2, 256 << 20)];
        check_set(&mut two, 2, 1 << 30).unwrap();
        assert_eq!(
            (two[0].console, two[1].console),
            (Console::Io, Console::Out)
        );
        let msg = |mut v: Vec<VmConfig>, cores, mem| check_set(&mut v, cores, mem).unwrap_err().0;
        assert_eq!(
            msg(vec![vm("a", 9, 256 << 20)], 4, 1 << 30),
            "VM a: 9 vCPUs (a VM has 1 to 8)"
        );
        assert_eq!(
            msg(vec![vm("a", 0, 256 << 20)], 4, 1 << 30),
            "VM a: 0 vCPUs (a VM has 1 to 8)"
        );
        assert!(msg(vec![vm("a", 1, 3 << 20)], 4, 1 << 30).contains("multiple of 2 MiB"));
        assert!(msg(
            vec![vm("a", 1, 512 << 20), vm("b", 1, 512 << 20)],
            4,
            768 << 20
        )
        .starts_with("the VMs need 1024 MiB of RAM together"));
        assert_eq!(
            msg(vec![vm("a", 1, 64 << 20), vm("a", 1, 64 << 20)], 4, 1 << 30),
            "two VMs are called \"a\""
        );
        let mut c = vm("a", 2, 64 << 20);
        c.cores = Some(vec![0, 3]);
        assert_eq!(
            msg(vec![c], 2, 1 << 30),
            "VM a: core 3, but the board has 2 core(s) (QEMU -smp)"
        );
        let mut p = vm("p", 4, 64 << 20);
        p.mode = IrqMode::Passthrough;
        assert!(msg(vec![p.clone()], 2, 1 << 30)
            .starts_with("VM p: passthrough runs one vCPU per core"));
        check_set(&mut [p.clone()], 4, 1 << 30).unwrap();
        assert!(msg(vec![p, vm("b", 1, 64 << 20)], 4, 1 << 30).contains("runs alone"));
        let mut r = vm("r", 1, 64 << 20);
        r.format = KernelFormat::Raw;
        assert_eq!(
            msg(vec![r], 1, 1 << 30),
            "VM r: a raw kernel needs `load_offset`"
        );
        let mut io = vec![vm("a", 1, 64 << 20), vm("b", 1, 64 << 20)];
        io[1].console = Console::Io;
        check_set(&mut io, 1, 1 << 30).unwrap();
        assert_eq!((io[0].console, io[1].console), (Console::Out, Console::Io));
        io[0].console = Console::Io;
        assert!(check_set(&mut io, 1, 1 << 30).is_err());
    }
}
