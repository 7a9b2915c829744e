//! Making sure the host has QEMU, the Rust targets and (for `bench`) gcc.

use std::process::Command;

use crate::qemu::QEMU;
use crate::ws::{in_path, run_status, Workspace, TARGETS};

/// What a command needs besides cargo.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    pub qemu: bool,
    pub gcc: bool,
}

/// Effective uid 0? (From /proc; falls back to `id -u`.)
pub fn is_root() -> bool {
    if let Ok(s) = std::fs::read_to_string("/proc/self/status") {
        if let Some(uids) = s.lines().find_map(|l| l.strip_prefix("Uid:")) {
            return uids.split_whitespace().nth(1) == Some("0");
        }
    }
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Installs Debian packages as root, or says how and fails.
fn apt_install(packages: &[&str], updated: &mut bool) -> Result<(), String> {
    let list = packages.join(" ");
    if !is_root() {
        return Err(format!(
            "missing packages; run: sudo apt-get update && sudo apt-get install -y {list}"
        ));
    }
    if !*updated {
        run_status(apt("update", &[]))?;
        *updated = true;
    }
    run_status(apt("install", packages))
}

fn apt(verb: &str, packages: &[&str]) -> Command {
    let mut c = Command::new("apt-get");
    c.env("DEBIAN_FRONTEND", "noninteractive").arg(verb);
    if verb == "install" {
        c.arg("-y");
    }
    c.args(packages);
    c
}

fn ensure_rust_targets(ws: &Workspace) -> Result<(), String> {
    if !in_path("rustup") {
        println!("note: no rustup in PATH; assuming the toolchain has {TARGETS:?}");
        return Ok(());
    }
    let out = Command::new("rustup")
        .current_dir(&ws.root)
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("rustup target list: {e}"))?;
    let installed = String::from_utf8_lossy(&out.stdout);
    let missing: Vec<&str> = TARGETS
        .iter()
        .copied()
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut c = Command::new("rustup");
    c.current_dir(&ws.root)
        .args(["target", "add"])
        .args(&missing);
    run_status(c)
}

pub fn ensure(ws: &Workspace, needs: Needs) -> Result<(), String> {
    let mut updated = false;
    ensure_rust_targets(ws)?;
    if needs.qemu && !in_path(QEMU) {
        println!("{QEMU} not found: installing Debian's qemu-system-arm");
        apt_install(&["qemu-system-arm"], &mut updated)?;
        if !in_path(QEMU) {
            return Err(format!("{QEMU} still not in PATH after installing"));
        }
    }
    if needs.gcc && !in_path("gcc") {
        println!("gcc not found (needed for the QEMU plugin): installing it");
        apt_install(&["gcc", "libc6-dev"], &mut updated)?;
    }
    Ok(())
}
