//! The crate as a product, checked by `cargo xtask test`:
//!
//! * `package`: `cargo package` and `cargo publish --dry-run` of the library with no
//!   warning, and no mutation switch among the published package's features;
//! * `doc`: `cargo doc` of the published crates for the bare-metal aarch64 targets
//!   (what docs.rs builds) with `RUSTDOCFLAGS=-D warnings`;
//! * `msrv`: the library and the AxVM adapter built for `aarch64-unknown-none`, each
//!   with the toolchain of its `rust-version`, installed with rustup if needed.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::ws::{self, Workspace};

/// The library's package (`[lib] name = "arm_vcpu"`).
pub const LIB_PACKAGE: &str = "arm-vcpu-el2";
/// Its directory in the workspace.
const LIB_DIR: &str = "arm_vcpu";
/// The AxVM adapter's package.
pub const ADAPTER_PACKAGE: &str = "axvm-arm-vcpu";
/// Its directory.
const ADAPTER_DIR: &str = "axvm-arm-vcpu";
/// Targets docs.rs builds (`[package.metadata.docs.rs] targets`).
const DOC_TARGETS: &[&str] = &["aarch64-unknown-none", "aarch64-unknown-none-softfloat"];
/// Target the MSRV build is for.
const MSRV_TARGET: &str = "aarch64-unknown-none";
/// The one warning `cargo publish --dry-run` always prints.
const DRY_RUN_NOTE: &str = "warning: aborting upload due to dry run";

/// The outcome of one check: what it did (shown on the PASS/FAIL line), or why it
/// failed, plus lines to show under a failure.
pub struct Check {
    pub ok: bool,
    pub line: String,
    pub details: Vec<String>,
}

impl Check {
    fn pass(what: &str, t: Instant) -> Check {
        Check {
            ok: true,
            line: format!("{what} ({:.1} s)", t.elapsed().as_secs_f64()),
            details: Vec::new(),
        }
    }

    fn fail(what: &str, t: Instant, why: String, details: Vec<String>) -> Check {
        Check {
            ok: false,
            line: format!("{what} ({:.1} s): {why}", t.elapsed().as_secs_f64()),
            details,
        }
    }
}

/// Output of a finished command.
struct Ran {
    shown: String,
    success: bool,
    status: String,
    /// stdout and stderr, stderr last.
    text: String,
}

fn run(mut c: Command) -> Result<Ran, String> {
    let shown = ws::display(&c);
    println!("$ {shown}");
    let out = c.output().map_err(|e| format!("`{shown}`: {e}"))?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok(Ran {
        shown,
        success: out.status.success(),
        status: out.status.to_string(),
        text,
    })
}

/// The warnings in cargo's output, except the dry-run note.
pub fn warnings(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim_end)
        .filter(|l| l.starts_with("warning") && *l != DRY_RUN_NOTE)
        .collect()
}

/// Whether a failed cargo run failed for want of the crates.io index (no network),
/// with the line that says so.
pub fn network_failure(text: &str) -> Option<&str> {
    const SIGNS: &[&str] = &[
        "download of config.json failed",
        "failed to download from `https://index.crates.io",
        "failed to update registry",
        "Unable to update registry",
        "Could not resolve host",
        "Could not connect to server",
        "spurious network error",
    ];
    let hit = text.lines().any(|l| SIGNS.iter().any(|s| l.contains(s)));
    hit.then(|| {
        text.lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("")
    })
}

/// Features of a packaged `Cargo.toml` whose name mentions a mutation.
pub fn mutation_features(manifest: &str) -> Vec<String> {
    let mut in_features = false;
    let mut found = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_features = line == "[features]" || line.starts_with("[features.");
            continue;
        }
        if in_features {
            if let Some((name, _)) = line.split_once('=') {
                let name = name.trim().trim_matches('"');
                if name.contains("mutat") {
                    found.push(name.to_string());
                }
            }
        }
    }
    found
}

/// `rust-version = "X.Y"` of a manifest.
pub fn rust_version(manifest: &str) -> Option<String> {
    manifest.lines().find_map(|l| {
        let (key, value) = l.split_once('=')?;
        if key.trim() != "rust-version" {
            return None;
        }
        let v = value.trim().trim_matches('"');
        let ok = !v.is_empty() && v.split('.').all(|p| p.parse::<u32>().is_ok());
        ok.then(|| v.to_string())
    })
}

/// `version = "..."` of a manifest's `[package]`.
fn package_version(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for l in manifest.lines().map(str::trim) {
        if l.starts_with('[') {
            in_package = l == "[package]";
        } else if in_package {
            if let Some((k, v)) = l.split_once('=') {
                if k.trim() == "version" {
                    return Some(v.trim().trim_matches('"').to_string());
                }
            }
        }
    }
    None
}

fn tail(text: &str, n: usize) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("| {l}"))
        .collect()
}

/// A cargo step that must succeed without warnings; on failure, why.
fn clean(r: &Ran, what: &str) -> Result<(), (String, Vec<String>)> {
    if !r.success {
        let why = match network_failure(&r.text) {
            Some(line) => format!(
                "{what} needs the crates.io index (https://index.crates.io), which was not \
                 reachable: {line}"
            ),
            None => format!("`{}` exited with {}", r.shown, r.status),
        };
        return Err((why, tail(&r.text, 30)));
    }
    let w = warnings(&r.text);
    if !w.is_empty() {
        return Err((
            format!("`{}` warned ({} warning line(s))", r.shown, w.len()),
            w.iter().map(|l| format!("| {l}")).collect(),
        ));
    }
    Ok(())
}

/// `cargo package` (which builds the packaged crate) and `cargo publish --dry-run`.
pub fn package(ws: &Workspace) -> Check {
    let what = format!("package ({LIB_PACKAGE}: cargo package, cargo publish --dry-run)");
    let t = Instant::now();
    let steps: [(&str, &[&str]); 2] = [
        (
            "cargo package",
            &["package", "-p", LIB_PACKAGE, "--allow-dirty"],
        ),
        (
            "cargo publish --dry-run",
            // `cargo package` has just built the packaged crate.
            &[
                "publish",
                "--dry-run",
                "--no-verify",
                "-p",
                LIB_PACKAGE,
                "--allow-dirty",
            ],
        ),
    ];
    for (name, args) in steps {
        let r = match run(ws.cargo(args)) {
            Ok(r) => r,
            Err(e) => return Check::fail(&what, t, e, Vec::new()),
        };
        if let Err((why, details)) = clean(&r, name) {
            return Check::fail(&what, t, why, details);
        }
    }
    // What crates.io would show: no mutation switch among the features.
    let manifest_path = ws.root.join(LIB_DIR).join("Cargo.toml");
    let version = std::fs::read_to_string(&manifest_path)
        .ok()
        .and_then(|m| package_version(&m));
    let Some(version) = version else {
        return Check::fail(
            &what,
            t,
            format!("no [package] version in {}", manifest_path.display()),
            Vec::new(),
        );
    };
    let packaged = ws
        .target()
        .join("package")
        .join(format!("{LIB_PACKAGE}-{version}"))
        .join("Cargo.toml");
    match std::fs::read_to_string(&packaged) {
        Ok(m) => {
            let bad = mutation_features(&m);
            if !bad.is_empty() {
                return Check::fail(
                    &what,
                    t,
                    format!("the published package has mutation features: {bad:?}"),
                    Vec::new(),
                );
            }
        }
        Err(e) => {
            return Check::fail(
                &what,
                t,
                format!("cannot read {}: {e}", packaged.display()),
                Vec::new(),
            )
        }
    }
    Check::pass(&what, t)
}

/// `cargo doc` of the library and the adapter for docs.rs' targets, warnings denied.
pub fn doc(ws: &Workspace) -> Check {
    let what = format!(
        "doc ({LIB_PACKAGE}, {ADAPTER_PACKAGE} for {}: RUSTDOCFLAGS=-D warnings)",
        DOC_TARGETS.join(", ")
    );
    let t = Instant::now();
    for target in DOC_TARGETS {
        let mut c = ws.cargo([
            "doc",
            "--no-deps",
            "-p",
            LIB_PACKAGE,
            "-p",
            ADAPTER_PACKAGE,
            "--target",
            target,
        ]);
        c.env("RUSTDOCFLAGS", "-D warnings");
        let r = match run(c) {
            Ok(r) => r,
            Err(e) => return Check::fail(&what, t, e, Vec::new()),
        };
        if let Err((why, details)) = clean(&r, "cargo doc") {
            return Check::fail(&what, t, why, details);
        }
    }
    Check::pass(&what, t)
}

/// Installs toolchain `version` with the MSRV target through rustup if it is missing.
fn ensure_toolchain(root: &Path, version: &str) -> Result<(), String> {
    if !ws::in_path("rustup") {
        return Err(format!(
            "no rustup in PATH: install Rust {version} with the {MSRV_TARGET} target to check the MSRV"
        ));
    }
    let listed = Command::new("rustup")
        .current_dir(root)
        .args(["run", version, "rustc", "--print", "sysroot"])
        .env("RUSTUP_AUTO_INSTALL", "0")
        .output();
    let sysroot = match listed {
        Ok(o) if o.status.success() => Some(String::from_utf8_lossy(&o.stdout).trim().to_string()),
        _ => None,
    };
    let has_target = sysroot
        .as_deref()
        .is_some_and(|s| Path::new(s).join("lib/rustlib").join(MSRV_TARGET).is_dir());
    if has_target {
        return Ok(());
    }
    let mut c = Command::new("rustup");
    c.current_dir(root);
    if sysroot.is_none() {
        c.args([
            "toolchain",
            "install",
            version,
            "--profile",
            "minimal",
            "--target",
            MSRV_TARGET,
        ]);
    } else {
        c.args(["target", "add", "--toolchain", version, MSRV_TARGET]);
    }
    ws::run_status(c)
}

/// Each published crate (the library, the adapter) built for `aarch64-unknown-none`
/// with the toolchain of its own `rust-version`.
pub fn msrv(ws: &Workspace) -> Check {
    let t = Instant::now();
    let mut done = Vec::new();
    for (package, dir) in [(LIB_PACKAGE, LIB_DIR), (ADAPTER_PACKAGE, ADAPTER_DIR)] {
        let manifest_path = ws.root.join(dir).join("Cargo.toml");
        let version = std::fs::read_to_string(&manifest_path)
            .ok()
            .and_then(|m| rust_version(&m));
        let Some(version) = version else {
            return Check::fail(
                "msrv",
                t,
                format!("no rust-version in {}", manifest_path.display()),
                Vec::new(),
            );
        };
        let what = format!("msrv ({package} with Rust {version} for {MSRV_TARGET})");
        if let Err(e) = ensure_toolchain(&ws.root, &version) {
            return Check::fail(&what, t, e, Vec::new());
        }
        // `rustup run` picks the toolchain whatever rust-toolchain.toml says; what the
        // outer cargo exported for its own toolchain must not leak in.
        let mut c = Command::new("rustup");
        c.current_dir(&ws.root)
            .args(["run", &version, "cargo", "build", "-p", package])
            .args(["--target", MSRV_TARGET, "--target-dir", "target/msrv"]);
        for v in [
            "CARGO",
            "RUSTC",
            "RUSTDOC",
            "RUSTUP_TOOLCHAIN",
            "CARGO_ENCODED_RUSTFLAGS",
            "RUSTFLAGS",
        ] {
            c.env_remove(v);
        }
        let r = match run(c) {
            Ok(r) => r,
            Err(e) => return Check::fail(&what, t, e, Vec::new()),
        };
        if !r.success {
            return Check::fail(
                &what,
                t,
                format!(
                    "{package} does not build with Rust {version} (`{}`: {}): raise its \
                     rust-version or avoid what needs a newer compiler",
                    r.shown, r.status
                ),
                tail(&r.text, 30),
            );
        }
        done.push(format!("{package} {version}"));
    }
    Check::pass(&format!("msrv ({} for {MSRV_TARGET})", done.join(", ")), t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dry_run_note_is_not_a_warning() {
        let out = "   Packaging x v0.1.0\n   Uploading x v0.1.0\nwarning: aborting upload due to dry run\n";
        assert!(warnings(out).is_empty());
        let out = "warning: manifest has no documentation, homepage or repository.\n\
                   warning: aborting upload due to dry run\n";
        assert_eq!(
            warnings(out),
            ["warning: manifest has no documentation, homepage or repository."]
        );
        assert_eq!(warnings("warning[E0]: x\n").len(), 1);
    }

    #[test]
    fn network_failures_are_told_apart() {
        let out =
            "    Updating crates.io index\nerror: download of config.json failed\n\nCaused by:\n  \
                   failed to download from `https://index.crates.io/config.json`\n\nCaused by:\n  \
                   [7] Could not connect to server (Failed to connect to 127.0.0.1 port 9)\n";
        assert_eq!(
            network_failure(out),
            Some("[7] Could not connect to server (Failed to connect to 127.0.0.1 port 9)")
        );
        assert_eq!(network_failure("error: could not compile `x`\n"), None);
    }

    #[test]
    fn mutation_features_found() {
        let m = "[package]\nname = \"x\"\n\n[features]\ndefault = []\nmutate-gpr-restore = []\n\n[dependencies]\nmutate = \"1\"\n";
        assert_eq!(mutation_features(m), ["mutate-gpr-restore"]);
        assert!(mutation_features("[package]\nname = \"x\"\n[lints.rust.unexpected_cfgs]\ncheck-cfg = ['cfg(arm_vcpu_mutate)']\n").is_empty());
    }

    #[test]
    fn manifest_fields() {
        let m = "[package]\nname = \"x\"\nversion = \"0.1.0\"\nrust-version = \"1.87\"\n[dependencies]\nversion = \"9\"\n";
        assert_eq!(rust_version(m).as_deref(), Some("1.87"));
        assert_eq!(package_version(m).as_deref(), Some("0.1.0"));
        assert_eq!(rust_version("rust-version = \"stable\"\n"), None);
        assert_eq!(rust_version("[package]\n"), None);
    }

    #[test]
    fn the_library_manifest_declares_what_the_checks_read() {
        let ws = Workspace::locate();
        let m = std::fs::read_to_string(ws.root.join(LIB_DIR).join("Cargo.toml")).unwrap();
        assert!(m.contains(&format!("name = \"{LIB_PACKAGE}\"")));
        assert!(rust_version(&m).is_some());
        for t in DOC_TARGETS {
            assert!(m.contains(t), "docs.rs target {t}");
        }
        assert!(mutation_features(&m).is_empty());
    }
}
