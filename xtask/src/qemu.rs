//! Building QEMU command lines (see `docs/test-protocol.md`), running QEMU with a
//! timeout while capturing its output, and judging a scenario run.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const QEMU: &str = "qemu-system-aarch64";

/// Where the QEMU loader stages the guest image.
pub const GUEST_STAGING: &str = "0x48000000";
/// [`GUEST_STAGING`] as a number.
pub const GUEST_STAGING_ADDR: u64 = 0x4800_0000;
/// End of the staging area (guest RAM starts here).
pub const GUEST_STAGING_END: u64 = 0x5000_0000;
/// RAM QEMU gives the machine (`-m`) unless a scenario asks for more.
pub const DEFAULT_MEM: &str = "1G";
/// QEMU's machine (`-M`) unless a scenario names another board.
pub const DEFAULT_MACHINE: &str = "virt,virtualization=on,gic-version=3";
/// A line of the guest kernel's that ends a run at once (a failure): Linux's panic.
pub const GUEST_PANIC: &str = "Kernel panic - not syncing";

/// The CPU model of a run unless it names another (`cargo xtask run`, `bench`).
pub const DEFAULT_CPU: &str = "max";

/// QEMU 7.2's 64-bit CPU models that implement EL2 (the hypervisor starts there with
/// `virtualization=on`): what `--cpu` accepts.
pub const CPU_MODELS: &[&str] = &[
    "max",
    "cortex-a35",
    "cortex-a53",
    "cortex-a57",
    "cortex-a72",
    "cortex-a76",
    "neoverse-n1",
    "a64fx",
];

/// Checks a `--cpu` model name against [`CPU_MODELS`].
pub fn cpu_model(s: &str) -> Result<&'static str, String> {
    CPU_MODELS.iter().copied().find(|m| *m == s).ok_or_else(|| {
        format!(
            "--cpu: expected one of {} (QEMU's 64-bit models with EL2), got {s:?}",
            CPU_MODELS.join(", ")
        )
    })
}

/// QEMU's `-cpu` value for `model`: `max` gets the IMPLEMENTATION DEFINED pointer
/// authentication algorithm (QARMA, QEMU's default, runs guests ~3x slower); a named
/// core is given as is (it has what that core has: cortex-a53 has no PAuth).
pub fn cpu_option(model: &str) -> String {
    if model == "max" {
        "max,pauth-impdef=on".to_string()
    } else {
        model.to_string()
    }
}

/// A file QEMU's loader copies, raw, to a physical address before the hypervisor starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub file: PathBuf,
    pub addr: u64,
}

/// One QEMU run: the hypervisor, the guest, the bootargs and any extra options.
#[derive(Debug, Clone)]
pub struct Run {
    pub kernel: PathBuf,
    /// Staged at [`GUEST_STAGING`].
    pub guest: PathBuf,
    pub bootargs: String,
    /// The CPU model (`-cpu`, through [`cpu_option`]).
    pub cpu: String,
    /// Physical cores (`-smp`); 1 leaves QEMU's default.
    pub cpus: u8,
    /// Machine RAM (`-m`).
    pub mem: String,
    /// The board (`-M`).
    pub machine: String,
    /// More files for QEMU's loader, after the guest.
    pub images: Vec<Image>,
    pub extra: Vec<OsString>,
}

fn loader(file: &Path, addr: &str) -> OsString {
    let mut l = OsString::from("loader,file=");
    l.push(file);
    l.push(format!(",addr={addr},force-raw=on"));
    l
}

impl Run {
    pub fn new(kernel: &Path, guest: &Path, bootargs: String) -> Run {
        Run {
            kernel: kernel.to_path_buf(),
            guest: guest.to_path_buf(),
            bootargs,
            cpu: DEFAULT_CPU.to_string(),
            cpus: 1,
            mem: DEFAULT_MEM.to_string(),
            machine: DEFAULT_MACHINE.to_string(),
            images: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// The same run on CPU model `model` (a [`CPU_MODELS`] name).
    pub fn with_cpu(mut self, model: &str) -> Run {
        self.cpu = model.to_string();
        self
    }

    /// The same run with `cpus` physical cores.
    pub fn with_cpus(mut self, cpus: u8) -> Run {
        self.cpus = cpus;
        self
    }

    /// The same run with `mem` of RAM (QEMU's `-m` syntax: `1G`, `2048M`).
    pub fn with_mem(mut self, mem: &str) -> Run {
        self.mem = mem.to_string();
        self
    }

    /// The same run on board `machine` (QEMU's `-M` syntax).
    pub fn with_machine(mut self, machine: &str) -> Run {
        self.machine = machine.to_string();
        self
    }

    /// The same run with `file` also loaded at `addr`.
    pub fn with_image(mut self, file: &Path, addr: u64) -> Run {
        self.images.push(Image {
            file: file.to_path_buf(),
            addr,
        });
        self
    }

    /// QEMU's arguments, as the protocol gives them.
    pub fn args(&self) -> Vec<OsString> {
        let cpu = cpu_option(&self.cpu);
        let mut a: Vec<OsString> = [
            "-M",
            &self.machine,
            "-cpu",
            &cpu,
            "-m",
            &self.mem,
            "-nographic",
            "-semihosting-config",
            "enable=on,target=native",
            "-kernel",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        a.push(self.kernel.clone().into());
        a.push("-device".into());
        a.push(loader(&self.guest, GUEST_STAGING));
        for i in &self.images {
            a.push("-device".into());
            a.push(loader(&i.file, &format!("{:#x}", i.addr)));
        }
        a.push("-append".into());
        a.push(self.bootargs.clone().into());
        if self.cpus > 1 {
            a.push("-smp".into());
            a.push(self.cpus.to_string().into());
        }
        a.extend(self.extra.iter().cloned());
        a
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(QEMU);
        c.args(self.args());
        c
    }

    /// The command line, quoted for a shell, for logs and failure reports.
    pub fn display(&self) -> String {
        std::iter::once(OsString::from(QEMU))
            .chain(self.args())
            .map(|a| shell_quote(&a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=.,/:+@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// How a captured run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// QEMU exited with this status code (`None`: killed by a signal).
    Exited(Option<i32>),
    /// We killed QEMU after the timeout.
    TimedOut,
    /// We killed QEMU when this line appeared (e.g. [`GUEST_PANIC`]).
    Stopped(&'static str),
}

/// The result of a captured run: how it ended and everything it printed
/// (stdout and stderr, interleaved as written).
#[derive(Debug, Clone)]
pub struct Captured {
    pub end: End,
    pub output: String,
    pub elapsed: Duration,
}

fn code(status: ExitStatus) -> End {
    End::Exited(status.code())
}

/// Waits for `child`, killing it after `timeout`, or a second after `stopped` says
/// which stop line appeared (time for the lines after it).
fn wait_with_timeout(
    child: &mut Child,
    timeout: Duration,
    stopped: &std::sync::Mutex<Option<(&'static str, Instant)>>,
) -> std::io::Result<End> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(code(status));
        }
        let stop = *stopped.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((line, at)) = stop {
            if at.elapsed() >= Duration::from_secs(1) {
                // Only our own child, by its pid.
                let _ = child.kill();
                let _ = child.wait();
                return Ok(End::Stopped(line));
            }
        }
        if start.elapsed() >= timeout {
            // Only our own child, by its pid.
            let _ = child.kill();
            let _ = child.wait();
            return Ok(End::TimedOut);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Output kept per run, at most (bytes).
const MAX_OUTPUT: usize = 32 << 20;

/// Runs `cmd` with no stdin and stdout+stderr captured into one stream, killing
/// it after `timeout`.
pub fn run_captured(cmd: Command, timeout: Duration) -> std::io::Result<Captured> {
    run_captured_typing(cmd, timeout, None)
}

/// Text typed into a run: `text` goes to its stdin `pause_ms` after `after` has
/// appeared in its output (e.g. a shell prompt; the pause lets the guest go idle).
#[derive(Clone, Copy, Debug)]
pub struct Typing {
    pub after: &'static str,
    pub pause_ms: u64,
    pub text: &'static str,
}

/// [`run_captured`], with `typing`'s text written to stdin when its cue appears.
pub fn run_captured_typing(
    cmd: Command,
    timeout: Duration,
    typing: Option<Typing>,
) -> std::io::Result<Captured> {
    run_captured_full(cmd, timeout, typing, &[])
}

/// [`run_captured_typing`], also ending the run (`End::Stopped`) a second after a line
/// containing one of `stop_on` appears.
pub fn run_captured_full(
    mut cmd: Command,
    timeout: Duration,
    typing: Option<Typing>,
    stop_on: &'static [&'static str],
) -> std::io::Result<Captured> {
    let start = Instant::now();
    let stopped = std::sync::Arc::new(std::sync::Mutex::new(None));
    let stopped_w = stopped.clone();
    let (mut reader, writer) = std::io::pipe()?;
    cmd.stdin(if typing.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(writer.try_clone()?)
    .stderr(writer);
    let mut child = cmd.spawn()?;
    // The Command holds the pipe's write ends: drop it so we see EOF.
    drop(cmd);
    let mut stdin = child.stdin.take();
    let collector = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 64 * 1024];
        let mut dropped = false;
        let mut pending = typing;
        while let Ok(n @ 1..) = reader.read(&mut chunk) {
            buf.extend_from_slice(&chunk[..n]);
            for &cue in stop_on {
                let from = buf.len().saturating_sub(n + cue.len());
                if buf[from..].windows(cue.len()).any(|w| w == cue.as_bytes()) {
                    let mut g = stopped_w.lock().unwrap_or_else(|e| e.into_inner());
                    g.get_or_insert((cue, Instant::now()));
                }
            }
            if let (Some(t), Some(input)) = (pending, stdin.as_mut()) {
                // Only the new bytes (and a cue split across reads) need a look.
                let from = buf.len().saturating_sub(n + t.after.len());
                let cue = t.after.as_bytes();
                if buf[from..].windows(cue.len()).any(|w| w == cue) {
                    std::thread::sleep(Duration::from_millis(t.pause_ms));
                    // A failed write shows up as the run's missing answer.
                    let _ = input.write_all(t.text.as_bytes());
                    let _ = input.flush();
                    pending = None;
                }
            }
            // A runaway printer must not eat the host's memory: keep the newest part
            // (the verdict is printed last).
            if buf.len() > MAX_OUTPUT {
                buf.drain(..buf.len() - MAX_OUTPUT / 2);
                dropped = true;
            }
        }
        if dropped {
            let mut b = b"[... earlier output dropped ...]\n".to_vec();
            b.extend_from_slice(&buf);
            buf = b;
        }
        buf
    });
    let end = wait_with_timeout(&mut child, timeout, &stopped)?;
    let output = collector.join().unwrap_or_default();
    Ok(Captured {
        end,
        output: String::from_utf8_lossy(&output).into_owned(),
        elapsed: start.elapsed(),
    })
}

/// The hypervisor's verdict line for `scenario`.
pub fn pass_marker(scenario: &str) -> String {
    format!("ARM_VCPU_SCENARIO {scenario}: PASS")
}

/// Judges one scenario run: it passes only with exit status 0, the PASS marker
/// for that scenario alone on a line, and no timeout. `Err` carries the reason.
pub fn judge(scenario: &str, end: End, output: &str) -> Result<(), String> {
    judge_with_guest(scenario, None, end, output)
}

/// [`judge`], and when `guest_marker` is given (e.g. `LINUX_AUTOTEST`) the guest's
/// own verdict too: a line starting with `<marker>: PASS` must appear, and
/// `<marker>: FAIL <reason>` or a Linux kernel panic is reported.
pub fn judge_with_guest(
    scenario: &str,
    guest_marker: Option<&str>,
    end: End,
    output: &str,
) -> Result<(), String> {
    let pass = pass_marker(scenario);
    let fail_prefix = format!("ARM_VCPU_SCENARIO {scenario}: FAIL");
    let mut saw_pass = false;
    let mut fail_reason = None;
    let mut panicked = false;
    for line in output.lines() {
        let line = line.trim();
        if line == pass {
            saw_pass = true;
        } else if let Some(r) = line.strip_prefix(&fail_prefix) {
            fail_reason.get_or_insert_with(|| r.trim().to_string());
        } else if line.contains("ARM_VCPU_PANIC") {
            panicked = true;
        }
    }
    let mut why = Vec::new();
    match end {
        End::TimedOut => why.push("TIMEOUT".to_string()),
        End::Stopped(line) => why.push(format!("stopped at `{line}`")),
        End::Exited(Some(0)) => {}
        End::Exited(Some(c)) => why.push(format!("exit status {c}")),
        End::Exited(None) => why.push("killed by a signal".to_string()),
    }
    if let Some(r) = fail_reason {
        why.push(format!("FAIL marker ({r})"));
    }
    if panicked {
        why.push("hypervisor panic".to_string());
    }
    if !saw_pass {
        why.push("no PASS marker".to_string());
    }
    if let Some(m) = guest_marker {
        why.extend(guest_verdict(m, "", output));
    }
    if why.is_empty() {
        Ok(())
    } else {
        Err(why.join(", "))
    }
}

/// [`judge_with_guest`] for a run of several VMs: each VM's own verdict is on its
/// console lines, which start with `prefix` (`[linux0] `).
pub fn judge_vms(
    scenario: &str,
    guest_marker: &str,
    prefixes: &[String],
    end: End,
    output: &str,
) -> Result<(), String> {
    let mut why: Vec<String> = match judge(scenario, end, output) {
        Ok(()) => Vec::new(),
        Err(w) => vec![w],
    };
    for p in prefixes {
        why.extend(guest_verdict(guest_marker, p, output));
    }
    if why.is_empty() {
        Ok(())
    } else {
        Err(why.join(", "))
    }
}

/// What is wrong with the guest's own verdict (marker `m`, on lines starting with
/// `prefix`) in `output`, if anything.
fn guest_verdict(m: &str, prefix: &str, output: &str) -> Vec<String> {
    let pass = format!("{prefix}{m}: PASS");
    let fail = format!("{prefix}{m}: FAIL");
    let mut saw_pass = false;
    let mut why = Vec::new();
    for line in output.lines().map(str::trim) {
        if line.starts_with(&pass) {
            saw_pass = true;
        } else if let Some(r) = line.strip_prefix(&fail) {
            why.push(format!("guest FAIL marker ({})", r.trim()));
        } else if let Some(i) = line.find("Kernel panic - not syncing") {
            if line.starts_with(prefix) {
                why.push(format!("guest kernel panic ({})", line[i..].trim()));
            }
        }
    }
    if !saw_pass {
        why.push(format!("no `{pass}` from the guest"));
    }
    why
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> Vec<&str> {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_follows_protocol() {
        let r = Run::new(
            Path::new("/t/refhv"),
            Path::new("/t/demo"),
            "scenario=demo iters=100".into(),
        );
        assert_eq!(
            r.display(),
            "qemu-system-aarch64 -M virt,virtualization=on,gic-version=3 -cpu max,pauth-impdef=on \
             -m 1G -nographic -semihosting-config enable=on,target=native -kernel /t/refhv \
             -device loader,file=/t/demo,addr=0x48000000,force-raw=on -append 'scenario=demo iters=100'"
        );
    }

    #[test]
    fn command_line_follows_the_cpu_model() {
        let r = |model: &str| {
            Run::new(
                Path::new("/t/refhv"),
                Path::new("/t/irq"),
                "scenario=irq iters=1".into(),
            )
            .with_cpu(model)
            .display()
        };
        let line = |cpu: &str| {
            format!(
                "qemu-system-aarch64 -M virt,virtualization=on,gic-version=3 -cpu {cpu} \
                 -m 1G -nographic -semihosting-config enable=on,target=native -kernel /t/refhv \
                 -device loader,file=/t/irq,addr=0x48000000,force-raw=on -append 'scenario=irq iters=1'"
            )
        };
        assert_eq!(r("max"), line("max,pauth-impdef=on"));
        assert_eq!(r("cortex-a53"), line("cortex-a53"));
        assert_eq!(r("cortex-a57"), line("cortex-a57"));
        // Without a model: max.
        assert_eq!(
            Run::new(
                Path::new("/t/refhv"),
                Path::new("/t/irq"),
                "scenario=irq iters=1".into()
            )
            .display(),
            line("max,pauth-impdef=on")
        );
    }

    #[test]
    fn cpu_models() {
        assert_eq!(cpu_model("cortex-a53"), Ok("cortex-a53"));
        assert_eq!(cpu_model("max"), Ok("max"));
        assert!(CPU_MODELS.contains(&DEFAULT_CPU));
        // 32-bit and M-profile cores have no AArch64 EL2; options are not a model.
        for bad in ["cortex-a15", "cortex-m4", "max,pauth-impdef=on", "", "host"] {
            assert!(cpu_model(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn linux_command_line() {
        let r = Run::new(
            Path::new("/t/refhv"),
            Path::new("/l/Image"),
            "scenario=linux mode=passthrough initrd_size=1234".into(),
        )
        .with_cpus(2)
        .with_mem("2G")
        .with_image(Path::new("/l/initramfs.cpio"), 0x4e00_0000);
        assert_eq!(
            r.display(),
            "qemu-system-aarch64 -M virt,virtualization=on,gic-version=3 -cpu max,pauth-impdef=on \
             -m 2G -nographic -semihosting-config enable=on,target=native -kernel /t/refhv \
             -device loader,file=/l/Image,addr=0x48000000,force-raw=on \
             -device loader,file=/l/initramfs.cpio,addr=0x4e000000,force-raw=on \
             -append 'scenario=linux mode=passthrough initrd_size=1234' -smp 2"
        );
    }

    #[test]
    fn judge_guest_marker() {
        let hv = "ARM_VCPU_SCENARIO linux: PASS\r\n";
        let guest = "\rLINUX_AUTOTEST: PASS cpus=2 timer=10->260\r\n";
        let both = format!("{guest}{hv}");
        let m = Some("LINUX_AUTOTEST");
        assert_eq!(
            judge_with_guest("linux", m, End::Exited(Some(0)), &both),
            Ok(())
        );
        assert_eq!(
            judge_with_guest("linux", m, End::Exited(Some(0)), hv),
            Err("no `LINUX_AUTOTEST: PASS` from the guest".into())
        );
        assert_eq!(
            judge_with_guest("linux", m, End::Exited(Some(0)), guest),
            Err("no PASS marker".into())
        );
        assert_eq!(
            judge_with_guest("linux", m, End::Exited(Some(1)), &both),
            Err("exit status 1".into())
        );
        let failed = format!("LINUX_AUTOTEST: FAIL /proc/cpuinfo lists 1 processors\n{hv}");
        assert_eq!(
            judge_with_guest("linux", m, End::Exited(Some(0)), &failed),
            Err("guest FAIL marker (/proc/cpuinfo lists 1 processors), \
                 no `LINUX_AUTOTEST: PASS` from the guest"
                .into())
        );
        let panic = "[    1.2] Kernel panic - not syncing: No working init found.\n";
        assert_eq!(
            judge_with_guest("linux", m, End::TimedOut, panic),
            Err(
                "TIMEOUT, no PASS marker, guest kernel panic (Kernel panic - not syncing: \
                 No working init found.), no `LINUX_AUTOTEST: PASS` from the guest"
                    .into()
            )
        );
        // Without a guest marker the guest's lines do not matter.
        assert_eq!(judge("linux", End::Exited(Some(0)), hv), Ok(()));
    }

    #[test]
    fn judge_pass() {
        let out = "hello\r\nARM_VCPU_SCENARIO demo: PASS\r\n";
        assert_eq!(judge("demo", End::Exited(Some(0)), out), Ok(()));
    }

    #[test]
    fn judge_needs_everything() {
        let ok = "ARM_VCPU_SCENARIO mmio: PASS\n";
        assert_eq!(
            judge("mmio", End::Exited(Some(1)), ok),
            Err("exit status 1".into())
        );
        assert_eq!(judge("mmio", End::TimedOut, ok), Err("TIMEOUT".into()));
        assert_eq!(
            judge("mmio", End::Exited(Some(0)), "nothing\n"),
            Err("no PASS marker".into())
        );
        // A marker for another scenario does not count.
        assert_eq!(
            judge(
                "mmio",
                End::Exited(Some(0)),
                "ARM_VCPU_SCENARIO demo: PASS\n"
            ),
            Err("no PASS marker".into())
        );
        // Nor does one that is not alone on its line.
        assert!(judge(
            "mmio",
            End::Exited(Some(0)),
            "x ARM_VCPU_SCENARIO mmio: PASSED\n"
        )
        .is_err());
    }

    #[test]
    fn judge_reports_fail_marker_and_panic() {
        let out = "ARM_VCPU_SCENARIO preserve: FAIL x19 mismatch in round 3\n";
        assert_eq!(
            judge("preserve", End::Exited(Some(1)), out),
            Err("exit status 1, FAIL marker (x19 mismatch in round 3), no PASS marker".into())
        );
        assert_eq!(
            judge(
                "irq",
                End::Exited(Some(101)),
                "ARM_VCPU_PANIC at foo.rs:1\n"
            ),
            Err("exit status 101, hypervisor panic, no PASS marker".into())
        );
    }

    #[test]
    fn tail_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), ["b", "c"]);
        assert_eq!(tail("a\n", 5), ["a"]);
        assert!(tail("", 3).is_empty());
    }

    #[test]
    fn runaway_output_is_capped() {
        let mut c = Command::new("sh");
        c.args([
            "-c",
            "head -c 40000000 /dev/zero | tr '\\0' x; echo; echo END",
        ]);
        let r = run_captured(c, Duration::from_secs(30)).unwrap();
        assert_eq!(r.end, End::Exited(Some(0)));
        assert!(r.output.starts_with("[... earlier output dropped ...]\n"));
        assert!(r.output.ends_with("x\nEND\n"));
        assert!(r.output.len() <= MAX_OUTPUT + 64);
    }

    #[test]
    fn typing_waits_for_its_cue() {
        let mut c = Command::new("sh");
        // Prints the prompt after a pause, then echoes what it reads.
        c.args([
            "-c",
            "sleep 0.2; echo 'ready>'; read line; echo \"got $line\"",
        ]);
        let t = Typing {
            after: "ready>",
            pause_ms: 10,
            text: "hello\n",
        };
        let r = run_captured_typing(c, Duration::from_secs(10), Some(t)).unwrap();
        assert_eq!(r.end, End::Exited(Some(0)));
        assert_eq!(r.output, "ready>\ngot hello\n");
    }

    #[test]
    fn a_guest_panic_ends_the_run_at_once() {
        let mut c = Command::new("sh");
        c.args([
            "-c",
            "echo booting; echo '[ 1.0] Kernel panic - not syncing: Attempted to kill init!'; \
             echo trace; exec sleep 30",
        ]);
        let r = run_captured_full(c, Duration::from_secs(20), None, &[GUEST_PANIC]).unwrap();
        assert_eq!(r.end, End::Stopped(GUEST_PANIC));
        assert!(r.elapsed < Duration::from_secs(5), "{:?}", r.elapsed);
        assert!(r.output.contains("trace\n"));
        let why = judge_with_guest("linux", Some("LINUX_AUTOTEST"), r.end, &r.output).unwrap_err();
        assert!(
            why.starts_with("stopped at `Kernel panic - not syncing`"),
            "{why}"
        );
        assert!(why.contains("guest kernel panic (Kernel panic - not syncing: Attempted"));
    }

    #[test]
    fn captured_run_and_timeout() {
        let mut c = Command::new("sh");
        c.args(["-c", "echo out; echo err >&2; exit 3"]);
        let r = run_captured(c, Duration::from_secs(10)).unwrap();
        assert_eq!(r.end, End::Exited(Some(3)));
        assert!(r.output.contains("out\n") && r.output.contains("err\n"));

        let mut c = Command::new("sh");
        c.args(["-c", "echo started; exec sleep 30"]);
        let r = run_captured(c, Duration::from_millis(300)).unwrap();
        assert_eq!(r.end, End::TimedOut);
        assert_eq!(r.output, "started\n");
        assert!(r.elapsed < Duration::from_secs(10));
    }
}
