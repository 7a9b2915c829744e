//! VM descriptions on the runner's side: a user's `--vm FILE.toml` or `--kernel ...`
//! options, and the Linux / U-Boot rows, become [`VmConfig`]s (the hypervisor's own
//! type and parser, compiled in from `hypervisor/src/vm/config.rs`); [`stage`] then
//! gives every file they name an address in the staging area QEMU's loader fills,
//! writes the manifest the hypervisor reads (the same language, files as `[address,
//! size]`) and returns the loader images and the `vms=ADDR,SIZE` bootarg.
//!
//! Staging (physical addresses): the manifest at 0x4800_0000, then each distinct file
//! 2 MiB-aligned above it, everything below 0x5000_0000 (`platform::STAGING` of the
//! hypervisor, which it never gives to a VM).

use std::path::{Path, PathBuf};

use crate::qemu::{self, Image, GUEST_STAGING_ADDR, GUEST_STAGING_END};

use crate::hv;
pub use hv::vm::config::{self, IrqMode, KernelFormat, Placement, Source, VmConfig};

/// Most bytes the manifest may have (its slot below the first file).
const MANIFEST_MAX: u64 = 2 << 20;
const ALIGN: u64 = 2 << 20;

/// A run's VMs, staged.
#[derive(Debug, Clone)]
pub struct Staged {
    /// The manifest file (staged at [`GUEST_STAGING_ADDR`]).
    pub manifest: PathBuf,
    /// Every file, where QEMU's loader puts it.
    pub images: Vec<Image>,
    /// `vms=ADDR,SIZE`.
    pub bootarg: String,
    /// The VMs, files replaced by their staged addresses.
    #[allow(dead_code)]
    pub vms: Vec<VmConfig>,
}

/// Gives every file of `vms` a staging address, checks what the hypervisor would
/// refuse anyway (a missing or unrecognisable kernel, a device tree without its
/// magic, too much to stage), and writes the manifest to `manifest`.
pub fn stage(vms: &[VmConfig], manifest: &Path) -> Result<Staged, String> {
    stage_with(vms, manifest, true)
}

fn stage_with(vms: &[VmConfig], manifest: &Path, check: bool) -> Result<Staged, String> {
    let mut files: Vec<(PathBuf, u64, u64)> = Vec::new();
    let mut next = GUEST_STAGING_ADDR + MANIFEST_MAX;
    let mut place = |path: &str, what: &str, vm: &str| -> Result<Source, String> {
        let p = PathBuf::from(path);
        let meta =
            std::fs::metadata(&p).map_err(|e| format!("VM {vm}: {what} {}: {e}", p.display()))?;
        if !meta.is_file() {
            return Err(format!("VM {vm}: {what} {} is not a file", p.display()));
        }
        let canon = p.canonicalize().unwrap_or(p.clone());
        if let Some((_, addr, size)) = files.iter().find(|(f, _, _)| *f == canon) {
            return Ok(Source::Staged {
                addr: *addr,
                size: *size,
            });
        }
        let size = meta.len();
        if size == 0 {
            return Err(format!("VM {vm}: {what} {} is empty", p.display()));
        }
        let addr = next;
        let end = addr.saturating_add(size);
        if end > GUEST_STAGING_END {
            return Err(format!(
                "VM {vm}: {what} {} ({} MiB) does not fit the staging area with the other files \
                 ({} MiB at {:#x}..{:#x})",
                p.display(),
                size >> 20,
                (GUEST_STAGING_END - GUEST_STAGING_ADDR) >> 20,
                GUEST_STAGING_ADDR,
                GUEST_STAGING_END
            ));
        }
        next = end.div_ceil(ALIGN) * ALIGN;
        files.push((canon, addr, size));
        Ok(Source::Staged { addr, size })
    };
    let mut out = Vec::new();
    for v in vms {
        let mut s = v.clone();
        if let Some(Source::Path(k)) = &v.kernel {
            let bytes = std::fs::read(k).map_err(|e| format!("VM {}: kernel {k}: {e}", v.name))?;
            if check {
                hv::vm::image::recognise(&bytes, v.format, v.load_offset)
                    .map_err(|e| format!("VM {}: kernel {k}: {}", v.name, e.0))?;
            }
            s.kernel = Some(place(k, "kernel", &v.name)?);
        }
        if let Some(Source::Path(i)) = &v.initrd {
            s.initrd = Some(place(i, "initrd", &v.name)?);
        }
        if let Some(Source::Path(d)) = &v.dtb {
            let bytes = std::fs::read(d).map_err(|e| format!("VM {}: dtb {d}: {e}", v.name))?;
            if bytes.get(0..4) != Some(&[0xd0, 0x0d, 0xfe, 0xed][..]) {
                return Err(format!(
                    "VM {}: dtb {d}: not a flattened device tree (no 0xd00dfeed magic)",
                    v.name
                ));
            }
            s.dtb = Some(place(d, "dtb", &v.name)?);
        }
        out.push(s);
    }
    let text: String = out.iter().map(|v| v.to_toml()).collect();
    if text.len() as u64 > MANIFEST_MAX {
        return Err("too many VMs for the manifest's 2 MiB".into());
    }
    if let Some(dir) = manifest.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(manifest, &text).map_err(|e| format!("{}: {e}", manifest.display()))?;
    Ok(Staged {
        manifest: manifest.to_path_buf(),
        images: files
            .into_iter()
            .map(|(file, addr, _)| Image { file, addr })
            .collect(),
        bootarg: format!("vms={:#x},{}", GUEST_STAGING_ADDR, text.len()),
        vms: out,
    })
}

/// The QEMU run of staged VMs: the manifest as the staged "guest", the files as more
/// loader images, `cpus` cores and `mem` of RAM.
pub fn qemu_run(hv: &Path, s: &Staged, bootargs: String, cpus: u8, mem: &str) -> qemu::Run {
    let mut r = qemu::Run::new(hv, &s.manifest, bootargs)
        .with_cpus(cpus)
        .with_mem(mem);
    for i in &s.images {
        r = r.with_image(&i.file, i.addr);
    }
    r
}

/// The VMs of a user's file; relative paths are taken from the file's directory.
pub fn load_file(path: &Path) -> Result<Vec<VmConfig>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut vms = config::parse_vms(&text).map_err(|e| format!("{}: {}", path.display(), e.0))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let rel = |s: &mut Option<Source>| {
        if let Some(Source::Path(p)) = s {
            if Path::new(p).is_relative() {
                *p = dir.join(&*p).to_string_lossy().into_owned();
            }
        }
    };
    for v in &mut vms {
        rel(&mut v.kernel);
        rel(&mut v.initrd);
        rel(&mut v.dtb);
        if v.name.starts_with("vm") && v.name[2..].chars().all(|c| c.is_ascii_digit()) {
            // Unnamed: the file's stem.
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                if vms_name_ok(stem) {
                    v.name = stem.to_string();
                }
            }
        }
    }
    Ok(vms)
}

fn vms_name_ok(n: &str) -> bool {
    !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// `cargo xtask run --kernel ...`'s options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelArgs {
    pub kernel: String,
    pub initrd: Option<String>,
    pub dtb: Option<String>,
    pub append: Option<String>,
    pub mem: Option<String>,
    pub vcpus: Option<usize>,
    /// Allowed cores: a count (`2`: cores 0 and 1) or a list (`0,2`).
    pub cores: Option<String>,
    pub mode: Option<String>,
    pub load_offset: Option<u64>,
    pub name: Option<String>,
}

/// Allowed cores from `--cores`: a count or a comma-separated list.
pub fn parse_cores(s: &str) -> Result<Vec<usize>, String> {
    let bad = || format!("--cores: a count (2) or a list of core numbers (0,1), not {s:?}");
    if s.contains(',') {
        s.split(',')
            .map(|c| c.trim().parse().map_err(|_| bad()))
            .collect()
    } else {
        let n: usize = s.trim().parse().map_err(|_| bad())?;
        if n == 0 {
            return Err(bad());
        }
        Ok((0..n).collect())
    }
}

/// The VM `--kernel` describes: a virtual-mode VM with 2 vCPUs and 512 MiB unless
/// told otherwise; the command line is `--append`'s (default: the console).
pub fn from_kernel_args(a: &KernelArgs) -> Result<VmConfig, String> {
    let mode = match a.mode.as_deref() {
        None | Some("virtual") => IrqMode::Virtual,
        Some("passthrough") => IrqMode::Passthrough,
        Some(m) => return Err(format!("--mode: virtual or passthrough, not {m:?}")),
    };
    let mem = match &a.mem {
        Some(m) => {
            config::parse_size(m).ok_or_else(|| format!("--mem: a size such as 512M, not {m:?}"))?
        }
        None => 512 << 20,
    };
    let cores = a.cores.as_deref().map(parse_cores).transpose()?;
    Ok(VmConfig {
        name: a.name.clone().unwrap_or_else(|| "kernel".into()),
        kernel: Some(Source::Path(a.kernel.clone())),
        format: if a.load_offset.is_some() {
            KernelFormat::Raw
        } else {
            KernelFormat::Auto
        },
        load_offset: a.load_offset,
        initrd: a.initrd.clone().map(Source::Path),
        dtb: a.dtb.clone().map(Source::Path),
        cmdline: a
            .append
            .clone()
            .unwrap_or_else(|| LINUX_CONSOLE.to_string()),
        mem,
        vcpus: a.vcpus.unwrap_or(2),
        cores,
        mode,
        ..Default::default()
    })
}

/// The console part of a Linux command line (the emulated PL011).
pub const LINUX_CONSOLE: &str = "console=ttyAMA0 earlycon=pl011,0x9000000";

/// Debian's Linux with the busybox initramfs as a VM: `vcpus` vCPUs on `cores`, in
/// `mode`, with `mem` of RAM; `autotest`: /init checks itself and powers off.
pub fn linux_vm(
    assets: &crate::linux::Assets,
    name: &str,
    vcpus: usize,
    cores: Option<Vec<usize>>,
    mode: IrqMode,
    mem: u64,
    autotest: bool,
) -> VmConfig {
    let mut cmdline = format!("{LINUX_CONSOLE} rdinit=/init vcpus={vcpus}");
    if autotest {
        cmdline.push_str(" autotest");
    }
    VmConfig {
        name: name.into(),
        kernel: Some(Source::Path(assets.image.to_string_lossy().into_owned())),
        format: KernelFormat::Image,
        initrd: Some(Source::Path(
            assets.initramfs.to_string_lossy().into_owned(),
        )),
        cmdline,
        mem,
        vcpus,
        cores,
        mode,
        // A passthrough vCPU i has core i; virtual-mode vCPUs go where there is room.
        placement: if mode == IrqMode::Passthrough {
            Placement::Pinned
        } else {
            Placement::Balanced
        },
        ..Default::default()
    }
}

/// U-Boot (Debian's `u-boot.bin` for QEMU) as a VM: a raw image 2 MiB into RAM, its
/// device tree at the start of RAM with a `/config` `bootcmd`.
pub fn uboot_vm(assets: &crate::linux::Assets, name: &str, bootcmd: &str) -> VmConfig {
    VmConfig {
        name: name.into(),
        kernel: Some(Source::Path(assets.u_boot.to_string_lossy().into_owned())),
        format: KernelFormat::Raw,
        load_offset: Some(2 << 20),
        bootcmd: Some(bootcmd.into()),
        mem: 256 << 20,
        vcpus: 2,
        cores: Some(vec![0, 1]),
        mode: IrqMode::Passthrough,
        ..Default::default()
    }
}

/// QEMU cores for `vms`: the highest core any of them names, plus one (at least
/// `min`).
pub fn cores_needed(vms: &[VmConfig], min: u8) -> u8 {
    let top = vms
        .iter()
        .filter_map(|v| v.cores.as_ref())
        .flat_map(|c| c.iter().copied())
        .max()
        .map_or(0, |c| c + 1);
    (top.max(min as usize)).min(255) as u8
}

/// QEMU RAM for `vms`: their RAM together plus 512 MiB (the hypervisor, its heap, the
/// staging area), in whole GiB, at least 1 GiB.
pub fn mem_needed(vms: &[VmConfig]) -> String {
    let total: u64 = vms.iter().map(|v| v.mem).sum::<u64>() + (512 << 20);
    format!("{}G", total.div_ceil(1 << 30).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("xtask-vms-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn linux_image(len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        b[16..24].copy_from_slice(&(len as u64 * 2).to_le_bytes());
        b[0x38..0x3c].copy_from_slice(b"ARM\x64");
        b
    }

    #[test]
    fn stages_files_once_each() {
        let d = tmp("stage");
        let k = d.join("Image");
        std::fs::write(&k, linux_image(5000)).unwrap();
        let i = d.join("initrd");
        std::fs::write(&i, vec![7u8; 3 << 20]).unwrap();
        let vm = |n: &str| VmConfig {
            name: n.into(),
            kernel: Some(Source::Path(k.to_string_lossy().into())),
            initrd: Some(Source::Path(i.to_string_lossy().into())),
            ..Default::default()
        };
        let s = stage(&[vm("a"), vm("b")], &d.join("vms.toml")).unwrap();
        assert_eq!(
            s.images.len(),
            2,
            "the shared kernel and initrd are staged once"
        );
        assert_eq!(s.images[0].addr, 0x4820_0000);
        assert_eq!(s.images[1].addr, 0x4840_0000);
        assert_eq!(
            s.vms[1].kernel,
            Some(Source::Staged {
                addr: 0x4820_0000,
                size: 5000
            })
        );
        let text = std::fs::read_to_string(&s.manifest).unwrap();
        assert_eq!(s.bootarg, format!("vms=0x48000000,{}", text.len()));
        // The hypervisor reads back exactly what was staged.
        assert_eq!(config::parse_vms(&text).unwrap(), s.vms);
    }

    #[test]
    fn refuses_bad_files_in_one_line() {
        let d = tmp("bad");
        let vm = |k: &Path| VmConfig {
            name: "x".into(),
            kernel: Some(Source::Path(k.to_string_lossy().into())),
            ..Default::default()
        };
        let e = stage(&[vm(&d.join("missing"))], &d.join("m")).unwrap_err();
        assert!(
            e.starts_with("VM x: kernel ") && e.contains("missing"),
            "{e}"
        );
        let junk = d.join("junk");
        std::fs::write(&junk, b"#!/bin/sh\necho not a kernel\n").unwrap();
        let e = stage(&[vm(&junk)], &d.join("m")).unwrap_err();
        assert!(e.contains("a raw binary needs `load_offset`"), "{e}");
        assert!(!e.contains('\n'));
        let big = d.join("big");
        let mut b = linux_image(4096);
        b.resize(130 << 20, 0);
        std::fs::write(&big, b).unwrap();
        let e = stage(&[vm(&big)], &d.join("m")).unwrap_err();
        assert!(e.contains("does not fit the staging area"), "{e}");
        let mut dt = vm(&d.join("missing"));
        dt.kernel = None;
        dt.scenario = Some("demo".into());
        dt.dtb = Some(Source::Path(junk.to_string_lossy().into()));
        assert!(stage(&[dt], &d.join("m"))
            .unwrap_err()
            .contains("no 0xd00dfeed magic"));
    }

    #[test]
    fn the_shipped_examples_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("vms");
        let mut names = Vec::new();
        for f in ["linux0.toml", "linux1.toml"] {
            let mut v = load_file(&root.join(f)).unwrap();
            assert_eq!(v.len(), 1, "{f}");
            let v = v.remove(0);
            assert!(
                matches!(&v.kernel, Some(Source::Path(p)) if p.ends_with("target/linux/Image")),
                "{f}: {:?}",
                v.kernel
            );
            assert_eq!((v.vcpus, v.mode), (2, IrqMode::Virtual), "{f}");
            names.push(v);
        }
        config::check_set(&mut names, 2, 2 << 30).unwrap();
    }

    #[test]
    fn user_files_and_options() {
        let d = tmp("user");
        std::fs::write(
            d.join("guest1.toml"),
            "kernel = \"Image\"\nmemory = \"256M\"\ncores = [1]\nmode = \"virtual\"\n",
        )
        .unwrap();
        let v = load_file(&d.join("guest1.toml")).unwrap();
        assert_eq!(v[0].name, "guest1");
        assert_eq!(
            v[0].kernel,
            Some(Source::Path(d.join("Image").to_string_lossy().into()))
        );
        assert!(load_file(&d.join("none.toml")).is_err());
        let k = from_kernel_args(&KernelArgs {
            kernel: "k".into(),
            mem: Some("1G".into()),
            cores: Some("0,2".into()),
            vcpus: Some(3),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            (k.mem, k.vcpus, k.cores.clone()),
            (1 << 30, 3, Some(vec![0, 2]))
        );
        assert_eq!(k.cmdline, LINUX_CONSOLE);
        assert_eq!(cores_needed(std::slice::from_ref(&k), 1), 3);
        assert_eq!(mem_needed(&[k.clone(), k]), "3G");
        assert!(from_kernel_args(&KernelArgs {
            kernel: "k".into(),
            mode: Some("fast".into()),
            ..Default::default()
        })
        .is_err());
        assert_eq!(parse_cores("2"), Ok(vec![0, 1]));
        assert!(parse_cores("0").is_err() && parse_cores("a,b").is_err());
    }
}

/// How a row's VMs are made.
#[derive(Debug, Clone, Default)]
pub struct RowOptions {
    /// `--mode` (for VMs without their own).
    pub mode: String,
    /// /init checks itself and powers off (`cargo xtask test`, `bench`).
    pub autotest: bool,
    /// `--vcpus` / `--cores` of `cargo xtask run` (single-VM rows).
    pub vcpus: Option<usize>,
    pub cores: Option<Vec<usize>>,
}

fn mode_of(m: &str) -> Result<IrqMode, String> {
    match m {
        "virtual" => Ok(IrqMode::Virtual),
        "passthrough" => Ok(IrqMode::Passthrough),
        _ => Err(format!("--mode: virtual or passthrough, not {m:?}")),
    }
}

/// The VMs of a row that is not a test guest's.
pub fn row_vms(
    ws: &crate::ws::Workspace,
    s: &crate::scenarios::Scenario,
    o: &RowOptions,
) -> Result<Vec<VmConfig>, String> {
    use crate::scenarios::{Guest, Refusal};
    let demo = || ws.guest_elf("demo").to_string_lossy().into_owned();
    Ok(match s.guest {
        Guest::TestElf => return Err(format!("{} runs its scenario's own VMs", s.name)),
        Guest::Linux(list) => {
            let assets = crate::linux::prepare(ws)?;
            let many = list.len() > 1;
            let mut out = Vec::new();
            for (i, l) in list.iter().enumerate() {
                let mode = mode_of(l.mode.unwrap_or(&o.mode))?;
                let vcpus = o.vcpus.filter(|_| !many).unwrap_or(l.vcpus as usize);
                let cores = match (&o.cores, many) {
                    (Some(c), false) => Some(c.clone()),
                    _ if l.cores.is_empty() => None,
                    _ => Some(l.cores.to_vec()),
                };
                let name = if many {
                    format!("linux{i}")
                } else {
                    s.name.to_string()
                };
                let mut v = linux_vm(
                    &assets,
                    &name,
                    vcpus,
                    cores,
                    mode,
                    l.mem_mib << 20,
                    o.autotest && s.typing.is_none(),
                );
                if !l.cmdline.is_empty() {
                    v.cmdline = format!("{} {}", v.cmdline, l.cmdline);
                }
                if l.phys_timer {
                    v.timer = config::GuestTimer::Physical;
                }
                v.snapshot_every = l.snapshot_every;
                out.push(v);
            }
            out
        }
        Guest::UBoot => {
            let assets = crate::linux::prepare(ws)?;
            vec![uboot_vm(
                &assets,
                s.name,
                "echo UBOOT_GUEST: PASS bootcmd ran; poweroff",
            )]
        }
        Guest::KernelArg => {
            let assets = crate::linux::prepare(ws)?;
            let mut append = format!("{LINUX_CONSOLE} rdinit=/init vcpus=2");
            if o.autotest {
                append.push_str(" autotest");
            }
            vec![from_kernel_args(&KernelArgs {
                kernel: assets.image.to_string_lossy().into_owned(),
                initrd: Some(assets.initramfs.to_string_lossy().into_owned()),
                append: Some(append),
                mem: Some("512M".into()),
                vcpus: Some(2),
                cores: Some("2".into()),
                mode: Some(o.mode.clone()),
                name: Some(s.name.into()),
                ..Default::default()
            })?]
        }
        Guest::FaultyPair => {
            let test_vm = |name: &str, bin: &str| VmConfig {
                name: name.into(),
                kernel: Some(Source::Path(
                    ws.guest_elf(bin).to_string_lossy().into_owned(),
                )),
                format: KernelFormat::Elf,
                scenario: Some("demo".into()),
                mem: 64 << 20,
                cores: Some(vec![0]),
                slice_us: 0,
                wfi: config::Wfi::Yield,
                ..Default::default()
            };
            vec![test_vm("faulty", "inject"), test_vm("good", "demo")]
        }
        Guest::ElfVm(l) => vec![VmConfig {
            name: s.name.into(),
            kernel: Some(Source::Path(
                ws.guest_elf(s.guest_bin()).to_string_lossy().into_owned(),
            )),
            format: KernelFormat::Elf,
            no_dtb: true,
            mem: l.mem_mib << 20,
            vcpus: l.vcpus as usize,
            cores: Some(l.cores.to_vec()),
            mode: mode_of(l.mode.unwrap_or(&o.mode))?,
            ..Default::default()
        }],
        Guest::Refused(r) => {
            let mut v = VmConfig {
                name: s.name.into(),
                kernel: Some(Source::Path(demo())),
                mem: 64 << 20,
                ..Default::default()
            };
            match r {
                Refusal::TooManyVcpus => v.vcpus = 9,
                Refusal::BadKernel => {
                    v.kernel = Some(Source::Path(
                        ws.root.join("README.md").to_string_lossy().into(),
                    ));
                    v.format = KernelFormat::Image;
                }
                Refusal::TooBig => v.mem = 4 << 30,
            }
            vec![v]
        }
    })
}

/// The QEMU run of row `s` (not a test guest's): its VMs staged, `bootargs_extra`
/// appended to `scenario=NAME vms=...`. Refusal rows are staged without the runner's
/// own checks, so the hypervisor's are what they test.
pub fn row_run(
    ws: &crate::ws::Workspace,
    hv: &Path,
    s: &crate::scenarios::Scenario,
    o: &RowOptions,
    bootargs_extra: &str,
) -> Result<qemu::Run, String> {
    let vms = row_vms(ws, s, o)?;
    let manifest = ws
        .target()
        .join("xtask")
        .join("vms")
        .join(format!("{}.toml", s.name));
    let staged = if matches!(s.guest, crate::scenarios::Guest::Refused(_)) {
        stage_unchecked(&vms, &manifest)?
    } else {
        stage(&vms, &manifest)?
    };
    let mut bootargs = format!("scenario={} {}", s.name, staged.bootarg);
    if !s.hv_bootargs.is_empty() {
        bootargs.push(' ');
        bootargs.push_str(s.hv_bootargs);
    }
    if !bootargs_extra.is_empty() {
        bootargs.push(' ');
        bootargs.push_str(bootargs_extra);
    }
    Ok(qemu_run(hv, &staged, bootargs, s.cpus, s.mem).with_machine(s.machine))
}

/// [`stage`] without the kernel checks (for the rows that test the hypervisor's).
fn stage_unchecked(vms: &[VmConfig], manifest: &Path) -> Result<Staged, String> {
    stage_with(vms, manifest, false)
}
