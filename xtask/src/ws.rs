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

/// A hypervisor build: profile and mutation.
#[derive(Debug, Clone)]
pub struct HvBuild {
    pub profile: Profile,
    /// A mutant build: `--cfg arm_vcpu_mutate="<name>"` for the crate (declared in
    /// arm_vcpu's `check-cfg`; see `scenarios::MUTATIONS`).
    pub mutation: Option<String>,
}

impl HvBuild {
    pub fn new(profile: Profile) -> HvBuild {
        HvBuild {
            profile,
            mutation: None,
        }
    }
}

/// Target dir of every mutant build (relative to the workspace root). The mutants
/// share it: only arm_vcpu and refhv differ between them, so the dependencies are
/// built once, not once per mutant.
pub const MUTANT_TARGET_DIR: &str = "target/mutant";

/// The `RUSTC_WORKSPACE_WRAPPER` script of mutant `mutation`: rustc, with
/// `--cfg arm_vcpu_mutate="<mutation>"` when it compiles the crate. Cargo runs it for
/// workspace members only and keys their artifacts by it, so each mutant's arm_vcpu
/// and refhv are kept apart while the dependencies (never given the cfg) are shared.
pub fn mutant_wrapper(mutation: &str) -> String {
    format!(
        "#!/bin/sh\n\
         # rustc for the workspace members of the mutant build `{mutation}` (cargo xtask)\n\
         case \" $* \" in\n\
         *\" --crate-name arm_vcpu \"*) exec \"$@\" --cfg 'arm_vcpu_mutate=\"{mutation}\"' ;;\n\
         esac\n\
         exec \"$@\"\n"
    )
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

    /// Where the hypervisor of build `b` is (a mutant's is copied out of the shared
    /// mutant target dir into its own file).
    pub fn hv_elf(&self, b: &HvBuild) -> PathBuf {
        match &b.mutation {
            Some(m) => self
                .root
                .join(MUTANT_TARGET_DIR)
                .join("bin")
                .join(format!("refhv-{m}-{}", b.profile.dir())),
            None => self
                .target()
                .join(TARGET)
                .join(b.profile.dir())
                .join("refhv"),
        }
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
        let Some(m) = &b.mutation else {
            run_status(self.cargo(&args)).map_err(|e| format!("hypervisor build failed: {e}"))?;
            return Ok(self.hv_elf(b));
        };
        let dir = self.root.join(MUTANT_TARGET_DIR);
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).map_err(|e| format!("{}: {e}", bin.display()))?;
        let wrapper = dir.join(format!("rustc-{m}"));
        write_script(&wrapper, &mutant_wrapper(m))?;
        args.push("--target-dir".into());
        args.push(dir.clone().into());
        let mut cmd = self.cargo(&args);
        cmd.env("RUSTC_WORKSPACE_WRAPPER", &wrapper);
        run_status(cmd).map_err(|e| format!("hypervisor build failed: {e}"))?;
        let built = dir.join(TARGET).join(b.profile.dir()).join("refhv");
        let out = self.hv_elf(b);
        std::fs::copy(&built, &out).map_err(|e| format!("{}: {e}", out.display()))?;
        Ok(out)
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

/// Writes an executable script (rewritten only when its text changed: cargo keys the
/// mutants' artifacts by the wrapper's path, and a rewrite must not look like a change).
fn write_script(path: &Path, text: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wrapper, run with `echo` as its "rustc": the cfg goes to arm_vcpu only.
    #[test]
    fn mutant_wrapper_adds_the_cfg_to_arm_vcpu_only() {
        let dir = std::env::temp_dir().join(format!("xtask-wrapper-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let w = dir.join("rustc-skip-tpidr");
        write_script(&w, &mutant_wrapper("skip-tpidr")).unwrap();
        let run = |args: &[&str]| {
            let o = Command::new(&w).arg("echo").args(args).output().unwrap();
            assert!(o.status.success());
            String::from_utf8(o.stdout).unwrap()
        };
        assert_eq!(
            run(&["--crate-name", "arm_vcpu", "--edition=2021"]),
            "--crate-name arm_vcpu --edition=2021 --cfg arm_vcpu_mutate=\"skip-tpidr\"\n"
        );
        assert_eq!(run(&["--crate-name", "refhv"]), "--crate-name refhv\n");
        assert_eq!(
            run(&["--crate-name", "arm_vcpu_x"]),
            "--crate-name arm_vcpu_x\n"
        );
        // Rewritten only when the text changes (cargo keys artifacts by it).
        let before = std::fs::metadata(&w).unwrap().modified().unwrap();
        write_script(&w, &mutant_wrapper("skip-tpidr")).unwrap();
        assert_eq!(std::fs::metadata(&w).unwrap().modified().unwrap(), before);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
