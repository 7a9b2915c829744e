//! What to run, from `/chosen/bootargs` of QEMU's device tree (`-append`).

/// The run's parameters.
pub struct BootArgs<'a> {
    /// Scenario (host checker) name.
    pub scenario: &'a str,
    /// Iteration count handed to the guest in x1.
    pub iters: u64,
    /// Seed for scenarios that use a PRNG (`seed=`, default 1).
    pub seed: u64,
    /// Size of the staged initramfs (`initrd_size=`, Linux).
    pub initrd_size: u64,
    /// Size of a staged raw image that has no header giving it (`image_size=`, U-Boot).
    pub image_size: u64,
    /// Linux runs its self-checks and powers off (`autotest=1`).
    pub autotest: bool,
    /// What runs: `guest=linux` (Debian's kernel), otherwise the scenario's own guest.
    pub guest: &'a str,
    /// Interrupt mode for Linux (`mode=passthrough|virtual`).
    pub mode: &'a str,
    /// Physical cores for Linux's vCPUs (`cores=`, default 2; 1: time-sliced).
    pub cores: u64,
    /// vCPUs of the Linux guest (`vcpus=`, default 2).
    pub vcpus: u64,
    /// RAM of the Linux or U-Boot VM in bytes (`vm_mem=`, with an optional `K`, `M` or
    /// `G` suffix; default 1 GiB).
    pub vm_mem: u64,
    /// A self-test of the hypervisor itself (`selftest=early-fault`).
    pub selftest: &'a str,
    /// The whole bootargs line (for repeated keys such as `kernel_arg=`).
    pub line: &'a str,
}

/// A size: a number with an optional K/M/G suffix (binary units).
fn size(v: &str) -> Option<u64> {
    let (n, shift) = match v.as_bytes().last() {
        Some(b'K' | b'k') => (&v[..v.len() - 1], 10),
        Some(b'M' | b'm') => (&v[..v.len() - 1], 20),
        Some(b'G' | b'g') => (&v[..v.len() - 1], 30),
        _ => (v, 0),
    };
    n.parse::<u64>().ok()?.checked_mul(1 << shift)
}

impl<'a> BootArgs<'a> {
    /// Parses `key=value` words; unknown keys are ignored.
    pub fn parse(s: &'a str) -> Self {
        let mut args = BootArgs {
            scenario: "demo",
            iters: 100,
            seed: 1,
            initrd_size: 0,
            image_size: 0,
            autotest: false,
            guest: "",
            mode: "passthrough",
            cores: 2,
            vcpus: 2,
            vm_mem: 1 << 30,
            selftest: "",
            line: s,
        };
        for word in s.split_ascii_whitespace() {
            if let Some(v) = word.strip_prefix("scenario=") {
                args.scenario = v;
            } else if let Some(v) = word.strip_prefix("iters=") {
                if let Ok(n) = v.parse() {
                    args.iters = n;
                }
            } else if let Some(v) = word.strip_prefix("initrd_size=") {
                if let Ok(n) = v.parse() {
                    args.initrd_size = n;
                }
            } else if let Some(v) = word.strip_prefix("image_size=") {
                if let Ok(n) = v.parse() {
                    args.image_size = n;
                }
            } else if let Some(v) = word.strip_prefix("autotest=") {
                args.autotest = v == "1";
            } else if let Some(v) = word.strip_prefix("vcpus=") {
                // Unparsable is 0, which the runners refuse (not silently 2).
                args.vcpus = v.parse().unwrap_or(0);
            } else if let Some(v) = word.strip_prefix("vm_mem=") {
                // Unparsable is 0, which the VM builders refuse.
                args.vm_mem = size(v).unwrap_or(0);
            } else if let Some(v) = word.strip_prefix("selftest=") {
                args.selftest = v;
            } else if let Some(v) = word.strip_prefix("guest=") {
                args.guest = v;
            } else if let Some(v) = word.strip_prefix("cores=") {
                args.cores = v.parse().unwrap_or(0);
            } else if let Some(v) = word.strip_prefix("mode=") {
                args.mode = v;
            } else if let Some(v) = word.strip_prefix("seed=") {
                let parsed = match v.strip_prefix("0x") {
                    Some(hex) => u64::from_str_radix(hex, 16),
                    None => v.parse(),
                };
                if let Ok(n) = parsed {
                    args.seed = n;
                }
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
