//! What to run, from `/chosen/bootargs` of QEMU's device tree (`-append`).

/// The run's parameters.
pub struct BootArgs<'a> {
    /// The run's name (its verdict line); for a test scenario also which one runs.
    pub scenario: &'a str,
    /// Iteration count handed to a scenario guest in x1.
    pub iters: u64,
    /// Seed for scenarios that use a PRNG (`seed=`, default 1).
    pub seed: u64,
    /// The staged VM manifest (`vms=ADDR,SIZE`): the VMs to run. Without it the
    /// scenario's own VMs run.
    pub vms: Option<(u64, u64)>,
    /// Record every exit and print the records at the end (`trace=1`).
    pub trace: bool,
    /// Time guest and host per exit (`timing=1`, the default; `timing=0` leaves the
    /// two counter reads per exit out, as the exit-cost benchmark does).
    pub timing: bool,
    /// A self-test of the hypervisor itself (`selftest=early-fault`).
    pub selftest: &'a str,
    /// A bootargs word the hypervisor did not understand (reported, not ignored).
    pub unknown: Option<&'a str>,
}

/// A number, decimal or `0x` hex.
fn number(v: &str) -> Option<u64> {
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

impl<'a> BootArgs<'a> {
    /// Parses `key=value` words.
    pub fn parse(s: &'a str) -> Self {
        let mut args = BootArgs {
            scenario: "demo",
            iters: 100,
            seed: 1,
            vms: None,
            trace: false,
            timing: true,
            selftest: "",
            unknown: None,
        };
        for word in s.split_ascii_whitespace() {
            let (k, v) = word.split_once('=').unwrap_or((word, ""));
            let ok = match k {
                "scenario" => {
                    args.scenario = v;
                    true
                }
                "iters" => number(v).map(|n| args.iters = n).is_some(),
                "seed" => number(v).map(|n| args.seed = n).is_some(),
                "vms" => match v.split_once(',').map(|(a, b)| (number(a), number(b))) {
                    Some((Some(a), Some(b))) => {
                        args.vms = Some((a, b));
                        true
                    }
                    _ => false,
                },
                "trace" => {
                    args.trace = v == "1";
                    v == "0" || v == "1"
                }
                "timing" => {
                    args.timing = v != "0";
                    v == "0" || v == "1"
                }
                "selftest" => {
                    args.selftest = v;
                    true
                }
                _ => false,
            };
            if !ok && args.unknown.is_none() {
                args.unknown = Some(word);
            }
        }
        args
    }
}

/// Reads `/chosen/bootargs` from the DTB QEMU placed at `addr`.
pub fn from_dtb(addr: usize) -> &'static str {
    // SAFETY: QEMU places its DTB at the start of RAM (below our image); the fdt crate
    // checks the header magic and sizes before reading further.
    let fdt = match unsafe { fdt::Fdt::from_ptr(addr as *const u8) } {
        Ok(f) => f,
        Err(_) => return "",
    };
    // The DTB stays in place for the whole run, so the string may be 'static.
    let fdt: &'static fdt::Fdt<'static> = alloc::boxed::Box::leak(alloc::boxed::Box::new(fdt));
    fdt.chosen().bootargs().unwrap_or("")
}
