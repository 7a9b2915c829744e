//! The Linux guest's files: Debian's arm64 kernel, busybox and U-Boot, fetched with
//! apt's ordinary client into `target/linux-cache/` on first use (never committed;
//! the machine's architecture list is left alone), and the initramfs built from them.
//!
//! Outputs in `target/linux/`: `Image` (the raw arm64 kernel Image), `initramfs.cpio`
//! (uncompressed `newc`) and `u-boot.bin`, which the rows stage with QEMU's loader and
//! describe to the hypervisor in a VM manifest (`vms.rs`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cpio::Newc;
use crate::qemu::{GUEST_STAGING_ADDR, GUEST_STAGING_END};
use crate::ws::{self, in_path, run_status, Workspace};

/// The staging area's split the size checks assume: the Image below, the initramfs
/// above (the files are staged one after the other, see `vms::stage`).
pub const INITRD_ADDR: u64 = 0x4e00_0000;

/// Debian's metapackage of the current cloud kernel; it depends on the real
/// (signed) image package, whose `-unsigned` twin we fetch.
pub const KERNEL_METAPACKAGE: &str = "linux-image-cloud-arm64";
pub const BUSYBOX_PACKAGE: &str = "busybox-static";
pub const U_BOOT_PACKAGE: &str = "u-boot-qemu";

/// The initramfs's `/init`.
pub const INIT_SCRIPT: &str = include_str!("../linux/init");

/// The guest's files, ready for QEMU.
#[derive(Debug, Clone)]
pub struct Assets {
    pub image: PathBuf,
    pub initramfs: PathBuf,
    /// Debian's `u-boot.bin` for QEMU's arm64 board.
    pub u_boot: PathBuf,
}

/// The three packages, by role.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Debs {
    kernel: String,
    busybox: String,
    u_boot: String,
}

/// Name of the file in the download directory listing the downloaded `.deb`s.
const MANIFEST: &str = "MANIFEST";

impl Debs {
    fn manifest(&self) -> String {
        format!(
            "kernel {}\nbusybox {}\nu-boot {}\n",
            self.kernel, self.busybox, self.u_boot
        )
    }

    fn parse_manifest(s: &str) -> Option<Debs> {
        let mut kernel = None;
        let mut busybox = None;
        let mut u_boot = None;
        for line in s.lines() {
            let (role, file) = line.split_once(' ')?;
            let file = file.trim();
            if file.is_empty() || file.contains('/') || !file.ends_with(".deb") {
                return None;
            }
            let slot = match role {
                "kernel" => &mut kernel,
                "busybox" => &mut busybox,
                "u-boot" => &mut u_boot,
                _ => return None,
            };
            *slot = Some(file.to_string());
        }
        Some(Debs {
            kernel: kernel?,
            busybox: busybox?,
            u_boot: u_boot?,
        })
    }
}

/// apt's client pointed at our own state under `cache`: arm64 package lists,
/// an empty dpkg status, its own download cache. Nothing of the machine's apt state
/// (lists, architectures, status) is read or changed; its sources.list entries apply.
struct Apt {
    cache: PathBuf,
}

impl Apt {
    fn lists(&self) -> PathBuf {
        self.cache.join("lists")
    }

    fn debs(&self) -> PathBuf {
        self.cache.join("debs")
    }

    fn options(&self, root: bool) -> Vec<OsString> {
        let mut o = vec![
            "APT::Architecture=arm64".into(),
            "APT::Architectures=arm64".into(),
            path_option("Dir::State::Lists", &self.lists()),
            path_option("Dir::State::status", &self.cache.join("status")),
            path_option("Dir::Cache", &self.cache.join("apt-cache")),
            // Only the Packages indexes: no translations, no AppStream metadata.
            "Acquire::Languages=none".into(),
            "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false".into(),
            // A list that cannot be fetched is an error (apt-get update exits 100),
            // not a warning with status 0.
            "APT::Update::Error-Mode=any".into(),
        ];
        if root {
            // Root's apt downloads as user _apt, which cannot write to our
            // root-owned directories (it warns and goes on as root): say so up front.
            o.push("APT::Sandbox::User=root".into());
        }
        o.into_iter()
            .flat_map(|v| [OsString::from("-o"), v])
            .collect()
    }

    fn command(&self, tool: &str, args: &[&str]) -> Command {
        let mut c = Command::new(tool);
        c.args(self.options(crate::deps::is_root()))
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive");
        c
    }

    fn make_dirs(&self) -> Result<(), String> {
        for d in [
            self.lists().join("partial"),
            self.cache
                .join("apt-cache")
                .join("archives")
                .join("partial"),
            self.debs(),
        ] {
            std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        // An empty dpkg status: apt resolves as if nothing were installed.
        let status = self.cache.join("status");
        std::fs::write(&status, "").map_err(|e| format!("{}: {e}", status.display()))
    }

    /// Whether `apt-get update` left an arm64 Packages index.
    fn have_lists(&self) -> bool {
        std::fs::read_dir(self.lists()).is_ok_and(|d| {
            d.filter_map(Result::ok).any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .contains("binary-arm64_Packages")
            })
        })
    }

    /// `apt-cache show` finds `package` in the lists.
    fn known(&self, package: &str) -> bool {
        self.command("apt-cache", &["show", "--no-all-versions", package])
            .output()
            .is_ok_and(|o| o.status.success() && !o.stdout.is_empty())
    }

    /// The unsigned kernel image package the metapackage currently points at.
    fn kernel_package(&self) -> Result<String, String> {
        let mut c = self.command("apt-cache", &["depends", KERNEL_METAPACKAGE]);
        let shown = ws::display(&c);
        println!("$ {shown}");
        let out = c.output().map_err(|e| format!("`{shown}`: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        print!("{text}");
        let dep = image_dependency(&text).ok_or_else(|| {
            format!(
                "`{shown}` names no linux-image-* package ({}); is {KERNEL_METAPACKAGE} in \
                 Debian's arm64 lists?",
                String::from_utf8_lossy(&out.stderr).trim()
            )
        })?;
        let unsigned = unsigned_name(&dep);
        if self.known(&unsigned) {
            Ok(unsigned)
        } else {
            // The signed package's vmlinuz is the same Image with an EFI signature
            // appended; the header check below still applies.
            println!("note: no {unsigned} in the lists; using {dep}");
            Ok(dep)
        }
    }

    /// Updates the lists and downloads the packages into `debs/`, or says why not.
    fn download(&self) -> Result<Debs, String> {
        for tool in ["apt-get", "apt-cache", "dpkg-deb"] {
            if !in_path(tool) {
                return Err(format!(
                    "{tool} not found: the Linux guest's files come from Debian's \
                     registry through apt (a Debian host is needed)"
                ));
            }
        }
        self.make_dirs()?;
        println!(
            "linux guest: fetching Debian's arm64 packages into {} (first use)",
            self.cache.display()
        );
        let unreachable = |why: String| {
            format!(
                "cannot reach Debian's package registry: {why} (see apt's messages above); \
                 the Linux guest needs {KERNEL_METAPACKAGE}'s image, {BUSYBOX_PACKAGE} and \
                 {U_BOOT_PACKAGE} for arm64 from it"
            )
        };
        run_apt(self.command("apt-get", &["update"]), "apt-get update").map_err(unreachable)?;
        if !self.have_lists() {
            return Err(unreachable(
                "`apt-get update` brought no arm64 Packages index".into(),
            ));
        }
        let kernel = self.kernel_package()?;
        // Leftovers of an interrupted download must not be mistaken for this one's.
        for e in std::fs::read_dir(self.debs()).map_err(|e| format!("{e}"))? {
            let p = e.map_err(|e| format!("{e}"))?.path();
            if p.extension().is_some_and(|x| x == "deb") {
                let _ = std::fs::remove_file(&p);
            }
        }
        let packages = [kernel.as_str(), BUSYBOX_PACKAGE, U_BOOT_PACKAGE];
        let mut args = vec!["download"];
        args.extend(packages);
        let mut c = self.command("apt-get", &args);
        c.current_dir(self.debs());
        run_apt(c, "apt-get download").map_err(unreachable)?;
        let names: Vec<String> = std::fs::read_dir(self.debs())
            .map_err(|e| format!("{}: {e}", self.debs().display()))?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let find = |package: &str| {
            deb_file(&names, package).ok_or_else(|| {
                format!(
                    "apt-get download left no {package}_*.deb in {}",
                    self.debs().display()
                )
            })
        };
        let debs = Debs {
            kernel: find(&kernel)?,
            busybox: find(BUSYBOX_PACKAGE)?,
            u_boot: find(U_BOOT_PACKAGE)?,
        };
        let manifest = self.debs().join(MANIFEST);
        std::fs::write(&manifest, debs.manifest())
            .map_err(|e| format!("{}: {e}", manifest.display()))?;
        Ok(debs)
    }

    /// The cached packages, if a previous download completed.
    fn cached(&self) -> Option<Debs> {
        let s = std::fs::read_to_string(self.debs().join(MANIFEST)).ok()?;
        let d = Debs::parse_manifest(&s)?;
        [&d.kernel, &d.busybox, &d.u_boot]
            .iter()
            .all(|f| self.debs().join(f).is_file())
            .then_some(d)
    }
}

/// Prints and runs an apt command with inherited stdio (apt shows its progress);
/// `Err` names it briefly (the full command line was printed).
fn run_apt(mut c: Command, what: &str) -> Result<(), String> {
    println!("$ {}", ws::display(&c));
    match c.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("`{what}` exited with {s}")),
        Err(e) => Err(format!("`{what}`: {e}")),
    }
}

fn path_option(key: &str, path: &Path) -> OsString {
    let mut o = OsString::from(format!("{key}="));
    o.push(path);
    o
}

/// The first `linux-image-*` package in `apt-cache depends` output.
fn image_dependency(depends: &str) -> Option<String> {
    depends.lines().find_map(|l| {
        let l = l.trim().trim_start_matches('|');
        let name = l.strip_prefix("Depends:")?.trim();
        let name = name.trim_start_matches('<').trim_end_matches('>');
        name.starts_with("linux-image-").then(|| name.to_string())
    })
}

/// The unsigned twin of a (signed) kernel image package.
fn unsigned_name(package: &str) -> String {
    if package.ends_with("-unsigned") {
        package.to_string()
    } else {
        format!("{package}-unsigned")
    }
}

/// The `.deb` apt-get download wrote for `package` (`<package>_<version>_<arch>.deb`).
fn deb_file(names: &[String], package: &str) -> Option<String> {
    let prefix = format!("{package}_");
    names
        .iter()
        .find(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
        .cloned()
}

/// `Package Version` of a `.deb`, for the report.
fn deb_version(deb: &Path) -> String {
    Command::new("dpkg-deb")
        .args(["--field"])
        .arg(deb)
        .args(["Package", "Version"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.split_once(": ").map(|(_, v)| v.trim().to_string()))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| deb.display().to_string())
}

/// Unpacks `deb` into `dir` with `dpkg-deb -x`, unless it already holds that package.
fn extract(deb: &Path, dir: &Path) -> Result<(), String> {
    let stamp = dir.join(".xtask-extracted-from");
    let name = deb.file_name().unwrap_or_default().to_string_lossy();
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == name) {
        return Ok(());
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut c = Command::new("dpkg-deb");
    c.arg("-x").arg(deb).arg(dir);
    run_status(c)?;
    std::fs::write(&stamp, name.as_bytes()).map_err(|e| format!("{}: {e}", stamp.display()))
}

/// Bytes available for the kernel Image: from the staging base up to the initramfs.
pub const MAX_IMAGE: u64 = INITRD_ADDR - GUEST_STAGING_ADDR;
/// Bytes available for the initramfs: up to the end of the staging area.
pub const MAX_INITRAMFS: u64 = GUEST_STAGING_END - INITRD_ADDR;

/// Checks a raw arm64 kernel `Image` (the boot protocol's header: magic `ARM\x64`
/// at 0x38) and that it fits its staging slot.
pub fn check_image(image: &[u8]) -> Result<(), String> {
    if image.len() < 64 || &image[0x38..0x3c] != b"ARM\x64" {
        return Err("not a raw arm64 Linux Image (no \"ARM\\x64\" magic at 0x38)".into());
    }
    if image.len() as u64 > MAX_IMAGE {
        return Err(format!(
            "Image is {} bytes; at most {MAX_IMAGE} fit below the initramfs at {INITRD_ADDR:#x}",
            image.len()
        ));
    }
    Ok(())
}

/// Checks the busybox binary is a 64-bit little-endian AArch64 ELF.
pub fn check_busybox(elf: &[u8]) -> Result<(), String> {
    const EM_AARCH64: u16 = 183;
    let ok = elf.len() >= 20
        && elf[..4] == *b"\x7fELF"
        && elf[4] == 2 // ELFCLASS64
        && elf[5] == 1 // little endian
        && u16::from_le_bytes([elf[18], elf[19]]) == EM_AARCH64;
    if ok {
        Ok(())
    } else {
        Err("busybox is not an AArch64 ELF".into())
    }
}

/// The initramfs: busybox, the directories /init needs, /dev/console (so the
/// kernel can open the console before /init runs), /init and `/bin/perf-check`
/// (`linux-tools`).
pub fn initramfs(busybox: &[u8], perf_check: &[u8]) -> Vec<u8> {
    let mut w = Newc::new();
    for d in ["bin", "sbin", "dev", "etc", "proc", "sys", "root"] {
        w.dir(d, 0o755);
    }
    w.dir("tmp", 0o1777)
        .char_dev("dev/console", 0o600, 5, 1)
        .file("bin/busybox", 0o755, busybox)
        .symlink("bin/sh", "busybox")
        .file("bin/perf-check", 0o755, perf_check)
        .file("init", 0o755, INIT_SCRIPT.as_bytes());
    w.finish()
}

/// Writes `data` to `path` unless it already holds exactly that.
fn write_if_changed(path: &Path, data: &[u8]) -> Result<(), String> {
    if std::fs::read(path).is_ok_and(|old| old == data) {
        return Ok(());
    }
    std::fs::write(path, data).map_err(|e| format!("{}: {e}", path.display()))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The one `boot/vmlinuz-*` of an unpacked kernel package.
fn find_vmlinuz(root: &Path) -> Result<PathBuf, String> {
    let boot = root.join("boot");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&boot)
        .map_err(|e| format!("{}: {e}", boot.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .collect();
    match found.len() {
        1 => Ok(found.remove(0)),
        n => Err(format!(
            "{} holds {n} vmlinuz-* files, expected 1",
            boot.display()
        )),
    }
}

/// Fetches (first use only) and prepares the Linux guest's files; once per run of
/// xtask (every row that boots Linux asks).
pub fn prepare(ws: &Workspace) -> Result<Assets, String> {
    static READY: std::sync::OnceLock<Assets> = std::sync::OnceLock::new();
    if let Some(a) = READY.get() {
        return Ok(a.clone());
    }
    let a = prepare_once(ws)?;
    Ok(READY.get_or_init(|| a).clone())
}

fn prepare_once(ws: &Workspace) -> Result<Assets, String> {
    let apt = Apt {
        cache: ws.target().join("linux-cache"),
    };
    let debs = match apt.cached() {
        Some(d) => {
            println!(
                "linux guest: using the packages cached in {} (delete it to fetch again)",
                apt.cache.display()
            );
            d
        }
        None => {
            let start = std::time::Instant::now();
            let d = apt.download()?;
            println!(
                "linux guest: packages fetched in {:.1} s",
                start.elapsed().as_secs_f64()
            );
            d
        }
    };
    let extracted = apt.cache.join("extract");
    let unpack = |role: &str, deb: &str| -> Result<PathBuf, String> {
        let dir = extracted.join(role);
        extract(&apt.debs().join(deb), &dir)?;
        Ok(dir)
    };
    let kernel_dir = unpack("kernel", &debs.kernel)?;
    let busybox_dir = unpack("busybox", &debs.busybox)?;
    let u_boot_dir = unpack("u-boot", &debs.u_boot)?;

    let out = ws.target().join("linux");
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;

    let vmlinuz = find_vmlinuz(&kernel_dir)?;
    let image = read(&vmlinuz)?;
    check_image(&image).map_err(|e| format!("{}: {e}", vmlinuz.display()))?;
    let image_path = out.join("Image");
    write_if_changed(&image_path, &image)?;

    let bb_path = busybox_dir.join("bin").join("busybox");
    let busybox = read(&bb_path)?;
    check_busybox(&busybox).map_err(|e| format!("{}: {e}", bb_path.display()))?;
    let perf_check = ws.build_linux_tools()?;
    let cpio = initramfs(&busybox, &perf_check);
    if cpio.len() as u64 > MAX_INITRAMFS {
        return Err(format!(
            "initramfs is {} bytes; at most {MAX_INITRAMFS} fit at {INITRD_ADDR:#x}",
            cpio.len()
        ));
    }
    let cpio_path = out.join("initramfs.cpio");
    write_if_changed(&cpio_path, &cpio)?;

    let ub_src = u_boot_dir.join("usr/lib/u-boot/qemu_arm64/u-boot.bin");
    let u_boot = read(&ub_src)?;
    let u_boot_path = out.join("u-boot.bin");
    write_if_changed(&u_boot_path, &u_boot)?;

    println!(
        "linux guest: {} ({} bytes, {}), {} ({} bytes, {}), {} ({} bytes, {})",
        image_path.display(),
        image.len(),
        deb_version(&apt.debs().join(&debs.kernel)),
        cpio_path.display(),
        cpio.len(),
        deb_version(&apt.debs().join(&debs.busybox)),
        u_boot_path.display(),
        u_boot.len(),
        deb_version(&apt.debs().join(&debs.u_boot)),
    );
    Ok(Assets {
        image: image_path,
        initramfs: cpio_path,
        u_boot: u_boot_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpio::testing::parse;

    #[test]
    fn kernel_package_from_the_metapackage() {
        let out = "linux-image-cloud-arm64\n  Depends: linux-image-6.1.0-56-cloud-arm64\n";
        let dep = image_dependency(out).unwrap();
        assert_eq!(dep, "linux-image-6.1.0-56-cloud-arm64");
        assert_eq!(
            unsigned_name(&dep),
            "linux-image-6.1.0-56-cloud-arm64-unsigned"
        );
        assert_eq!(
            unsigned_name("linux-image-x-unsigned"),
            "linux-image-x-unsigned"
        );
        let alt = "m\n  Depends: kmod\n |Depends: <linux-image-6.1.0-9-cloud-arm64>\n";
        assert_eq!(
            image_dependency(alt).as_deref(),
            Some("linux-image-6.1.0-9-cloud-arm64")
        );
        assert_eq!(image_dependency("m\n  Depends: kmod\n"), None);
        assert_eq!(image_dependency(""), None);
    }

    #[test]
    fn deb_files_and_manifest() {
        let names: Vec<String> = [
            "busybox-static_1%3a1.35.0-4+deb12u1+b1_arm64.deb",
            "busybox_1.35_arm64.deb",
            "MANIFEST",
            "u-boot-qemu_2023.01+dfsg-2+deb12u3_all.deb",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            deb_file(&names, "busybox").as_deref(),
            Some("busybox_1.35_arm64.deb")
        );
        assert_eq!(
            deb_file(&names, "busybox-static").as_deref(),
            Some("busybox-static_1%3a1.35.0-4+deb12u1+b1_arm64.deb")
        );
        assert_eq!(deb_file(&names, "u-boot"), None);
        let d = Debs {
            kernel: "k_1_arm64.deb".into(),
            busybox: "b_2_arm64.deb".into(),
            u_boot: "u_3_all.deb".into(),
        };
        assert_eq!(Debs::parse_manifest(&d.manifest()), Some(d));
        assert_eq!(Debs::parse_manifest("kernel k.deb\nbusybox b.deb\n"), None);
        assert_eq!(
            Debs::parse_manifest("kernel ../k.deb\nbusybox b.deb\nu-boot u.deb\n"),
            None
        );
        assert_eq!(Debs::parse_manifest(""), None);
    }

    #[test]
    fn apt_options_keep_the_machine_state_alone() {
        let apt = Apt {
            cache: PathBuf::from("/c"),
        };
        let o: Vec<String> = apt
            .options(true)
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        assert!(o.chunks(2).all(|p| p[0] == "-o"));
        let vals: Vec<&str> = o.iter().skip(1).step_by(2).map(String::as_str).collect();
        for want in [
            "APT::Architecture=arm64",
            "APT::Architectures=arm64",
            "Dir::State::Lists=/c/lists",
            "Dir::State::status=/c/status",
            "Dir::Cache=/c/apt-cache",
            "APT::Update::Error-Mode=any",
            "APT::Sandbox::User=root",
        ] {
            assert!(vals.contains(&want), "{want} missing from {vals:?}");
        }
        assert!(!apt
            .options(false)
            .iter()
            .any(|s| s.to_string_lossy().contains("Sandbox")));
    }

    #[test]
    fn image_header_check() {
        let mut img = vec![0u8; 0x100];
        assert!(check_image(&img).is_err());
        img[0x38..0x3c].copy_from_slice(b"ARM\x64");
        assert_eq!(check_image(&img), Ok(()));
        assert!(check_image(&img[..0x3c]).is_err());
        let mut big = vec![0u8; MAX_IMAGE as usize + 1];
        big[0x38..0x3c].copy_from_slice(b"ARM\x64");
        assert!(check_image(&big).unwrap_err().contains("fit below"));
        assert_eq!(MAX_IMAGE, 0x600_0000);
        assert_eq!(MAX_INITRAMFS, 0x200_0000);
    }

    #[test]
    fn busybox_check() {
        let mut elf = vec![0u8; 64];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[18..20].copy_from_slice(&183u16.to_le_bytes());
        assert_eq!(check_busybox(&elf), Ok(()));
        elf[18] = 62; // x86-64
        assert!(check_busybox(&elf).is_err());
        assert!(check_busybox(b"#!/bin/sh").is_err());
    }

    #[test]
    fn initramfs_contents() {
        let bb = b"\x7fELF busybox";
        let pc = b"\x7fELF perf-check";
        let a = initramfs(bb, pc);
        let e = parse(&a);
        let find = |n: &str| {
            e.iter()
                .find(|x| x.name == n)
                .unwrap_or_else(|| panic!("no {n}"))
        };
        for d in ["proc", "sys", "dev", "bin", "sbin", "etc", "tmp"] {
            assert_eq!(find(d).mode & 0o170_000, 0o040_000, "{d} is a directory");
        }
        let console = find("dev/console");
        assert_eq!((console.mode, console.rdev), (0o020_600, (5, 1)));
        let b = find("bin/busybox");
        assert_eq!((b.mode, b.data.as_slice()), (0o100_755, &bb[..]));
        let p = find("bin/perf-check");
        assert_eq!((p.mode, p.data.as_slice()), (0o100_755, &pc[..]));
        let init = find("init");
        assert_eq!(init.mode, 0o100_755);
        assert_eq!(init.data, INIT_SCRIPT.as_bytes());
        // Every parent directory comes before what it holds.
        for (i, x) in e.iter().enumerate() {
            if let Some((parent, _)) = x.name.rsplit_once('/') {
                assert!(e[..i].iter().any(|p| p.name == parent), "{}", x.name);
            }
        }
    }

    #[test]
    fn init_script() {
        assert!(INIT_SCRIPT.starts_with("#!/bin/busybox sh\n"));
        for want in [
            "/bin/busybox --install -s /bin",
            "mount -t proc proc /proc",
            "mount -t sysfs sysfs /sys",
            "echo \"LINUX_GUEST: init started\"",
            "LINUX_AUTOTEST: PASS cpus=$cpus timer=$before->$after${pmu:+ pmu=$pmu}",
            "hw perfevents: enabled with armv8_pmuv3 PMU driver",
            "/bin/perf-check",
            "LINUX_AUTOTEST: FAIL $fail",
            "setsid cttyhack sh",
            "poweroff -f",
        ] {
            assert!(INIT_SCRIPT.contains(want), "{want}");
        }
        // POSIX shell syntax (busybox ash runs it; the host's sh checks it).
        let out = Command::new("sh")
            .args(["-n", "-c", INIT_SCRIPT])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The script's autotest logic, run by the host's sh against fake /proc files.
    #[test]
    fn init_autotest_logic() {
        // The part between the cmdline check and the poweroff, with /proc paths
        // redirected and `sleep 1` made to advance a fake timer count.
        let start = INIT_SCRIPT.find("timer_irqs() {").unwrap();
        let end = INIT_SCRIPT.find("    poweroff -f\nfi").unwrap();
        let mut body = INIT_SCRIPT[start..end].to_string();
        for (from, to) in [
            ("' /proc/cpuinfo", "' $P/cpuinfo"),
            ("' /proc/interrupts", "' $P/interrupts"),
            ("cat /proc/interrupts", "cat $P/interrupts"),
            ("sleep 1", "cp $P/interrupts.after $P/interrupts"),
            ("if [ -n \"$autotest\" ]; then", ""),
        ] {
            assert!(body.contains(from), "{from}");
            body = body.replace(from, to);
        }
        let dir = std::env::temp_dir().join(format!("xtask-init-{}", std::process::id()));
        let run_want = |want: &str, cpuinfo: &str, before: &str, after: &str| -> String {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("cpuinfo"), cpuinfo).unwrap();
            std::fs::write(dir.join("interrupts"), before).unwrap();
            std::fs::write(dir.join("interrupts.after"), after).unwrap();
            let out = Command::new("sh")
                .args(["-c", &body])
                .env("P", &dir)
                .env("want_cpus", want)
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        // No `vcpus=` on the command line: 2 CPUs expected.
        let run = |cpuinfo: &str, before: &str, after: &str| run_want("", cpuinfo, before, after);
        let two = "processor\t: 0\nBogoMIPS\t: 125\n\nprocessor\t: 1\nBogoMIPS\t: 125\n";
        let irq = |a: u32, b: u32| {
            format!(
                "           CPU0       CPU1\n 11:  {a:>9}  {b:>9}     GICv3  27 Level     \
                 arch_timer\n 12:          3          0     GICv3  33 Level     uart-pl011\n"
            )
        };
        let out = run(two, &irq(100, 20), &irq(300, 70));
        assert!(
            out.starts_with("LINUX_AUTOTEST: PASS cpus=2 timer=120->370\n"),
            "{out}"
        );
        let out = run(two, &irq(100, 20), &irq(100, 20));
        assert!(
            out.starts_with("LINUX_AUTOTEST: FAIL arch_timer interrupts did not grow"),
            "{out}"
        );
        let out = run("processor\t: 0\n", &irq(1, 0), &irq(5, 0));
        assert!(
            out.starts_with("LINUX_AUTOTEST: FAIL /proc/cpuinfo lists 1 processors, want 2\n"),
            "{out}"
        );
        let one = "processor\t: 0\n";
        let out = run_want("1", one, &irq(1, 0), &irq(5, 0));
        assert!(
            out.starts_with("LINUX_AUTOTEST: PASS cpus=1 timer=1->5\n"),
            "{out}"
        );
        let out = run_want("1", two, &irq(1, 0), &irq(5, 0));
        assert!(
            out.starts_with("LINUX_AUTOTEST: FAIL /proc/cpuinfo lists 2 processors, want 1\n"),
            "{out}"
        );
        let out = run(two, "CPU0 CPU1\n", "CPU0 CPU1\n");
        assert!(
            out.starts_with("LINUX_AUTOTEST: FAIL no arch_timer line"),
            "{out}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
