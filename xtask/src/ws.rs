//! The workspace: where things are, and running cargo and other tools in it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::qemu::shell_quote;

/// Target triple of the hypervisor and the guests.
pub const TARGET: &str = "aarch64-unknown-none-softfloat";
/// Targets the toolchain must have (as in `rust-toolchain.toml`).
pub const TARGETS: &[&str] = &["aarch64-unknown-none", "aarch64-unknown-none-softfloat"];

/// Debug or release build of the hypervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Debug,
    Release,
}

impl Profile {
    pub fn dir(self) -> &'static str {
        match self {
            Profile::Debug => "debug",
            Profile::Release => "release",
        }
    }
}

/// A hypervisor build: profile, mutation and (for a mutant) its own target dir.
#[derive(Debug, Clone)]
pub struct HvBuild {
    pub profile: Profile,
    /// A mutant build: `--cfg arm_vcpu_mutate="<name>"` for every crate (declared in
    /// arm_vcpu's `check-cfg`; see `scenarios::MUTATIONS`).
    pub mutation: Option<String>,
    /// Relative to the workspace root; `None` = the default `target/`.
    pub target_dir: Option<PathBuf>,
}

impl HvBuild {
    pub fn new(profile: Profile) -> HvBuild {
        HvBuild {
            profile,
            mutation: None,
            target_dir: None,
        }
    }
}

/// `CARGO_ENCODED_RUSTFLAGS` of a mutant build (`\x1f`-separated).
pub fn mutant_rustflags(mutation: &str) -> String {
    format!("--cfg\x1farm_vcpu_mutate=\"{mutation}\"")
}

pub struct Workspace {
    pub root: PathBuf,
    cargo: OsString,
}

impl Workspace {
    pub fn locate() -> Workspace {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = manifest
            .parent()
            .expect("xtask lives in the workspace root")
            .to_path_buf();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        Workspace { root, cargo }
    }

    pub fn target(&self) -> PathBuf {
        self.root.join("target")
    }

    /// `<workspace>/../shared`.
    pub fn shared(&self) -> PathBuf {
        self.root.join("..").join("shared")
    }

    /// A cargo command run from the workspace root.
    pub fn cargo<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut c = Command::new(&self.cargo);
        c.current_dir(&self.root);
        c.args(args.into_iter().map(Into::into));
        c
    }

    pub fn hv_elf(&self, b: &HvBuild) -> PathBuf {
        let base = match &b.target_dir {
            Some(d) => self.root.join(d),
            None => self.target(),
        };
        base.join(TARGET).join(b.profile.dir()).join("refhv")
    }

    pub fn guest_elf(&self, name: &str) -> PathBuf {
        self.target().join(TARGET).join("release").join(name)
    }

    pub fn build_hv(&self, b: &HvBuild) -> Result<PathBuf, String> {
        let mut args: Vec<OsString> = ["build", "-p", "refhv", "--target", TARGET]
            .iter()
            .map(OsString::from)
            .collect();
        if b.profile == Profile::Release {
            args.push("--release".into());
        }
        if let Some(d) = &b.target_dir {
            args.push("--target-dir".into());
            args.push(d.clone().into());
        }
        let mut cmd = self.cargo(&args);
        if let Some(m) = &b.mutation {
            // A mutant gets its own target dir (above), so these flags never mix
            // with the normal build's artifacts.
            cmd.env("CARGO_ENCODED_RUSTFLAGS", mutant_rustflags(m));
        }
        run_status(cmd).map_err(|e| format!("hypervisor build failed: {e}"))?;
        Ok(self.hv_elf(b))
    }

    /// Builds `linux-tools` (static AArch64 Linux programs for the initramfs) and
    /// returns `perf-check`.
    pub fn build_linux_tools(&self) -> Result<Vec<u8>, String> {
        let c = self.cargo([
            "build",
            "-p",
            "linux-tools",
            "--target",
            TARGET,
            "--release",
        ]);
        run_status(c).map_err(|e| format!("linux-tools build failed: {e}"))?;
        let p = self
            .target()
            .join(TARGET)
            .join("release")
            .join("perf-check");
        std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))
    }

    pub fn build_guests(&self) -> Result<(), String> {
        let c = self.cargo(["build", "-p", "guests", "--target", TARGET, "--release"]);
        run_status(c).map_err(|e| format!("guest build failed: {e}"))
    }
}

/// The command line of `c`, quoted for a shell.
/// (rustup's full path to cargo is shown as `cargo`.)
pub fn display(c: &Command) -> String {
    let program = c.get_program();
    let program = match Path::new(program).file_name() {
        Some(name) if name == "cargo" => name,
        _ => program,
    };
    std::iter::once(program)
        .chain(c.get_args())
        .map(|a| shell_quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Prints and runs `c` with inherited stdio; `Err` unless it exits with 0.
pub fn run_status(mut c: Command) -> Result<(), String> {
    let shown = display(&c);
    println!("$ {shown}");
    let status = c.status().map_err(|e| format!("`{shown}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{shown}` exited with {status}"))
    }
}

/// Whether `program` is an executable in `PATH`.
pub fn in_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|d| {
        std::fs::metadata(d.join(program))
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    })
}
