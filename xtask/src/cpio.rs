//! A writer for the cpio `newc` format (the "new ASCII" format, magic `070701`),
//! the format Linux unpacks an initramfs from (the kernel's
//! Documentation/driver-api/early-userspace/buffer-format.rst).
//!
//! Each entry is a 110-byte header, the NUL-terminated path name padded with NULs
//! so that header + name end on a 4-byte boundary, then the file data padded the
//! same way. The header is `070701` and thirteen 8-digit hexadecimal fields: ino,
//! mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor,
//! namesize (including the NUL) and check (0 for `newc`). The archive ends with an
//! entry named `TRAILER!!!`.

/// File type bits of `mode` (as in `st_mode`).
pub const S_IFDIR: u32 = 0o040_000;
pub const S_IFREG: u32 = 0o100_000;
pub const S_IFCHR: u32 = 0o020_000;
pub const S_IFLNK: u32 = 0o120_000;

/// Length of a `newc` header.
pub const HEADER_LEN: usize = 110;
/// Magic of a `newc` header (no checksums).
pub const MAGIC: &[u8; 6] = b"070701";
/// Name of the entry that ends an archive.
pub const TRAILER: &str = "TRAILER!!!";

/// An archive being written, in memory. Owner root, mtime 0 (reproducible output).
#[derive(Debug, Default)]
pub struct Newc {
    out: Vec<u8>,
    next_ino: u32,
}

/// The header fields of one entry that vary.
struct Header<'a> {
    name: &'a str,
    mode: u32,
    nlink: u32,
    filesize: u32,
    rdev: (u32, u32),
}

impl Newc {
    pub fn new() -> Newc {
        Newc::default()
    }

    fn pad4(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    fn entry(&mut self, h: Header, data: &[u8]) {
        // Only the trailer has ino 0; every other entry a distinct one (the kernel
        // treats entries with nlink >= 2 and equal ino as hard links).
        let ino = if h.name == TRAILER {
            0
        } else {
            self.next_ino += 1;
            self.next_ino
        };
        let namesize = u32::try_from(h.name.len() + 1).expect("cpio name too long");
        // ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor,
        // rdevminor, namesize, check.
        let fields = [
            ino, h.mode, 0, 0, h.nlink, 0, h.filesize, 0, 0, h.rdev.0, h.rdev.1, namesize, 0,
        ];
        let start = self.out.len();
        debug_assert!(start.is_multiple_of(4));
        self.out.extend_from_slice(MAGIC);
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        debug_assert_eq!(self.out.len() - start, HEADER_LEN);
        self.out.extend_from_slice(h.name.as_bytes());
        self.out.push(0);
        self.pad4();
        self.out.extend_from_slice(data);
        self.pad4();
    }

    /// Path names in the archive are relative (`bin/busybox`), as the kernel and
    /// `cpio -i` expect; a leading `/` is dropped.
    fn name(path: &str) -> &str {
        let n = path.trim_start_matches('/');
        assert!(
            !n.is_empty() && !n.contains('\0') && n != TRAILER,
            "bad cpio path {path:?}"
        );
        n
    }

    /// A directory with permission bits `perm` (e.g. 0o755).
    pub fn dir(&mut self, path: &str, perm: u32) -> &mut Newc {
        let h = Header {
            name: Newc::name(path),
            mode: S_IFDIR | (perm & 0o7777),
            nlink: 2,
            filesize: 0,
            rdev: (0, 0),
        };
        self.entry(h, &[]);
        self
    }

    /// A regular file with permission bits `perm`.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> &mut Newc {
        let h = Header {
            name: Newc::name(path),
            mode: S_IFREG | (perm & 0o7777),
            nlink: 1,
            filesize: u32::try_from(data.len()).expect("cpio file over 4 GiB"),
            rdev: (0, 0),
        };
        self.entry(h, data);
        self
    }

    /// A character device node `major:minor` with permission bits `perm`.
    pub fn char_dev(&mut self, path: &str, perm: u32, major: u32, minor: u32) -> &mut Newc {
        let h = Header {
            name: Newc::name(path),
            mode: S_IFCHR | (perm & 0o7777),
            nlink: 1,
            filesize: 0,
            rdev: (major, minor),
        };
        self.entry(h, &[]);
        self
    }

    /// A symbolic link to `target` (the link's data is the target path).
    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Newc {
        let h = Header {
            name: Newc::name(path),
            mode: S_IFLNK | 0o777,
            nlink: 1,
            filesize: u32::try_from(target.len()).expect("symlink target too long"),
            rdev: (0, 0),
        };
        self.entry(h, target.as_bytes());
        self
    }

    /// Ends the archive with the trailer and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        let h = Header {
            name: TRAILER,
            mode: 0,
            nlink: 1,
            filesize: 0,
            rdev: (0, 0),
        };
        self.entry(h, &[]);
        self.out
    }
}

/// An independent reader of the format, for tests.
#[cfg(test)]
pub mod testing {
    use super::{HEADER_LEN, MAGIC, TRAILER};

    /// One entry read back by an independent parser of the format.
    #[derive(Debug, PartialEq)]
    pub struct Parsed {
        pub ino: u32,
        pub mode: u32,
        pub uid: u32,
        pub gid: u32,
        pub nlink: u32,
        pub mtime: u32,
        pub rdev: (u32, u32),
        pub name: String,
        pub data: Vec<u8>,
    }

    fn hex(b: &[u8]) -> u32 {
        assert_eq!(b.len(), 8);
        assert!(
            b.iter()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c)),
            "{:?}",
            String::from_utf8_lossy(b)
        );
        u32::from_str_radix(std::str::from_utf8(b).unwrap(), 16).unwrap()
    }

    /// Parses a whole archive, checking alignment, padding and the trailer.
    pub fn parse(a: &[u8]) -> Vec<Parsed> {
        let mut out = Vec::new();
        let mut off = 0usize;
        loop {
            assert!(off.is_multiple_of(4), "entry not 4-byte aligned");
            let h = &a[off..off + HEADER_LEN];
            assert_eq!(&h[..6], MAGIC);
            let f: Vec<u32> = (0..13).map(|i| hex(&h[6 + 8 * i..14 + 8 * i])).collect();
            let (filesize, namesize) = (f[6] as usize, f[11] as usize);
            assert_eq!((f[7], f[8]), (0, 0), "devmajor/devminor");
            assert_eq!(f[12], 0, "check field of newc");
            let name_start = off + HEADER_LEN;
            let name = &a[name_start..name_start + namesize];
            assert_eq!(name.last(), Some(&0), "name not NUL-terminated");
            let name = String::from_utf8(name[..namesize - 1].to_vec()).unwrap();
            let mut data_start = name_start + namesize;
            while !data_start.is_multiple_of(4) {
                assert_eq!(a[data_start], 0, "name padding");
                data_start += 1;
            }
            let data = a[data_start..data_start + filesize].to_vec();
            off = data_start + filesize;
            while !off.is_multiple_of(4) {
                assert_eq!(a[off], 0, "data padding");
                off += 1;
            }
            let done = name == TRAILER;
            out.push(Parsed {
                ino: f[0],
                mode: f[1],
                uid: f[2],
                gid: f[3],
                nlink: f[4],
                mtime: f[5],
                rdev: (f[9], f[10]),
                name,
                data,
            });
            if done {
                assert_eq!(off, a.len(), "bytes after the trailer");
                return out;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::parse;
    use super::*;

    #[test]
    fn header_bytes_match_the_format() {
        let mut w = Newc::new();
        w.file("/init", 0o755, b"hi\n");
        let a = w.finish();
        // 110-byte header, "init\0" (5 bytes: 115, padded to 116), 3 bytes of data
        // padded to 4: the trailer starts at 120.
        let want_header = concat!(
            "070701", "00000001", "000081ed", "00000000", "00000000", "00000001", "00000000",
            "00000003", "00000000", "00000000", "00000000", "00000000", "00000005", "00000000"
        );
        assert_eq!(&a[..HEADER_LEN], want_header.as_bytes());
        assert_eq!(&a[110..120], b"init\0\0hi\n\0");
        let trailer = concat!(
            "070701",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000001",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "00000000",
            "0000000b",
            "00000000",
            "TRAILER!!!\0"
        );
        assert_eq!(&a[120..120 + trailer.len()], trailer.as_bytes());
        // 110 + 11 = 121 → padded to 124: the archive ends at 120 + 124.
        assert_eq!(a.len(), 244);
        assert_eq!(&a[241..], &[0, 0, 0]);
    }

    #[test]
    fn round_trip_every_kind_and_padding() {
        let mut w = Newc::new();
        w.dir("dev", 0o755)
            .char_dev("/dev/console", 0o600, 5, 1)
            .symlink("/bin/sh", "busybox");
        // Names and data of every length mod 4.
        for n in 0..8 {
            let name = format!("f{}", "x".repeat(n));
            let data: Vec<u8> = (0..n as u8 * 3 + 1).collect();
            w.file(&name, 0o644, &data);
        }
        let a = w.finish();
        let p = parse(&a);
        assert_eq!(p.len(), 3 + 8 + 1);
        assert_eq!(p[0].name, "dev");
        assert_eq!(p[0].mode, 0o040_755);
        assert_eq!(p[0].nlink, 2);
        assert_eq!(p[1].name, "dev/console");
        assert_eq!(p[1].mode, 0o020_600);
        assert_eq!(p[1].rdev, (5, 1));
        assert!(p[1].data.is_empty());
        assert_eq!(p[2].mode, 0o120_777);
        assert_eq!(p[2].data, b"busybox");
        for (n, e) in p[3..11].iter().enumerate() {
            assert_eq!(e.name, format!("f{}", "x".repeat(n)));
            assert_eq!(e.mode, 0o100_644);
            assert_eq!(e.data, (0..n as u8 * 3 + 1).collect::<Vec<u8>>());
        }
        let t = p.last().unwrap();
        assert_eq!((t.name.as_str(), t.ino, t.mode), (TRAILER, 0, 0));
        // Distinct inode numbers, owner root, mtime 0.
        let mut inos: Vec<u32> = p[..p.len() - 1].iter().map(|e| e.ino).collect();
        inos.sort_unstable();
        inos.dedup();
        assert_eq!(inos.len(), p.len() - 1);
        assert!(inos.iter().all(|&i| i != 0));
        assert!(p.iter().all(|e| e.uid == 0 && e.gid == 0 && e.mtime == 0));
    }

    #[test]
    #[should_panic(expected = "bad cpio path")]
    fn rejects_empty_names() {
        Newc::new().dir("/", 0o755);
    }

    /// The system's cpio (GNU cpio), if installed, lists the same entries.
    #[test]
    fn system_cpio_reads_it() {
        if !crate::ws::in_path("cpio") {
            eprintln!("note: no cpio in PATH; format checked by the parser above only");
            return;
        }
        let mut w = Newc::new();
        w.dir("bin", 0o755)
            .file("bin/busybox", 0o755, &[0x7f, b'E', b'L', b'F', 1, 2, 3])
            .char_dev("dev/console", 0o600, 5, 1)
            .file("init", 0o755, b"#!/bin/busybox sh\n");
        let a = w.finish();
        let dir = std::env::temp_dir().join(format!("xtask-cpio-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.cpio");
        std::fs::write(&path, &a).unwrap();
        let out = std::process::Command::new("cpio")
            .args(["-t", "-v", "--quiet", "-H", "newc", "-F"])
            .arg(&path)
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = listing.lines().collect();
        assert_eq!(lines.len(), 4, "{listing}");
        assert!(lines[0].starts_with("drwxr-xr-x") && lines[0].ends_with(" bin"));
        assert!(lines[1].starts_with("-rwxr-xr-x") && lines[1].ends_with(" bin/busybox"));
        assert!(lines[1].contains(" 7 "), "{}", lines[1]);
        assert!(lines[2].starts_with("crw-------") && lines[2].contains("5,"));
        assert!(lines[3].starts_with("-rwxr-xr-x") && lines[3].ends_with(" init"));
    }
}
