//! Just enough ELF64 (little endian) reading to find the hypervisor's code range.

use std::ops::Range;

const SHT_SYMTAB: u32 = 2;

fn rd<const N: usize>(d: &[u8], off: usize) -> Result<[u8; N], String> {
    d.get(off..off + N)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| format!("ELF truncated at offset {off:#x}"))
}
fn u16_at(d: &[u8], off: usize) -> Result<u16, String> {
    rd::<2>(d, off).map(u16::from_le_bytes)
}
fn u32_at(d: &[u8], off: usize) -> Result<u32, String> {
    rd::<4>(d, off).map(u32::from_le_bytes)
}
fn u64_at(d: &[u8], off: usize) -> Result<u64, String> {
    rd::<8>(d, off).map(u64::from_le_bytes)
}
fn usize_at(d: &[u8], off: usize) -> Result<usize, String> {
    usize::try_from(u64_at(d, off)?).map_err(|e| e.to_string())
}

/// A section header, as far as we need it.
#[derive(Debug, Clone)]
struct Section {
    name: u32,
    kind: u32,
    addr: u64,
    offset: usize,
    size: usize,
    link: u32,
}

fn cstr(d: &[u8], off: usize) -> Result<&str, String> {
    let tail = d.get(off..).ok_or("string offset out of range")?;
    let end = tail
        .iter()
        .position(|&b| b == 0)
        .ok_or("unterminated string")?;
    std::str::from_utf8(&tail[..end]).map_err(|e| e.to_string())
}

/// A parsed ELF64 little-endian file.
pub struct Elf<'a> {
    data: &'a [u8],
    sections: Vec<Section>,
    shstrndx: usize,
}

impl<'a> Elf<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Self, String> {
        if data.get(..4) != Some(b"\x7fELF") {
            return Err("not an ELF file".into());
        }
        if data[4] != 2 || data[5] != 1 {
            return Err("not a 64-bit little-endian ELF file".into());
        }
        let shoff = usize_at(data, 0x28)?;
        let shentsize = usize::from(u16_at(data, 0x3a)?);
        let shnum = usize::from(u16_at(data, 0x3c)?);
        let shstrndx = usize::from(u16_at(data, 0x3e)?);
        if shnum > 0 && shentsize < 64 {
            return Err(format!("bad section header size {shentsize}"));
        }
        let sections = (0..shnum)
            .map(|i| {
                let h = shoff + i * shentsize;
                Ok(Section {
                    name: u32_at(data, h)?,
                    kind: u32_at(data, h + 4)?,
                    addr: u64_at(data, h + 16)?,
                    offset: usize_at(data, h + 24)?,
                    size: usize_at(data, h + 32)?,
                    link: u32_at(data, h + 40)?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Elf {
            data,
            sections,
            shstrndx,
        })
    }

    fn section_data(&self, s: &Section) -> Result<&'a [u8], String> {
        self.data
            .get(s.offset..s.offset + s.size)
            .ok_or_else(|| "section data out of range".to_string())
    }

    /// Calls `f(name, value, st_info)` for each `.symtab` entry in file order until it
    /// returns `true`.
    fn walk_symbols(&self, mut f: impl FnMut(&str, u64, u8) -> bool) -> Result<(), String> {
        for symtab in self.sections.iter().filter(|s| s.kind == SHT_SYMTAB) {
            let strtab = self
                .sections
                .get(symtab.link as usize)
                .ok_or("bad symtab link")?;
            let strs = self.section_data(strtab)?;
            let syms = self.section_data(symtab)?;
            for sym in syms.chunks_exact(24) {
                if f(
                    cstr(strs, u32_at(sym, 0)? as usize)?,
                    u64_at(sym, 8)?,
                    sym[4],
                ) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// The value of the first symbol called `name` in `.symtab`.
    pub fn symbol(&self, name: &str) -> Result<Option<u64>, String> {
        let mut found = None;
        self.walk_symbols(|n, v, _| {
            if n == name {
                found = Some(v);
            }
            found.is_some()
        })?;
        Ok(found)
    }

    /// Every named symbol of `.symtab` with its address, sorted by address (labels
    /// of assembly code included, which have no type or size).
    pub fn symbols(&self) -> Result<Vec<(u64, String)>, String> {
        let mut out = Vec::new();
        self.walk_symbols(|name, value, info| {
            // Skip the empty name, section and file symbols and mapping symbols
            // ($x, $d).
            let kind = info & 0xf;
            if !(name.is_empty() || kind == 3 || kind == 4 || name.starts_with('$')) {
                out.push((value, name.to_string()));
            }
            false
        })?;
        out.sort();
        Ok(out)
    }

    /// The address range of the section called `name`.
    pub fn section_range(&self, name: &str) -> Result<Option<Range<u64>>, String> {
        let names = self
            .sections
            .get(self.shstrndx)
            .ok_or("no section name table")?;
        let names = self.section_data(names)?;
        for s in &self.sections {
            if cstr(names, s.name as usize)? == name {
                return Ok(Some(s.addr..s.addr + s.size as u64));
            }
        }
        Ok(None)
    }
}

/// Where the code range came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSource {
    Symbols,
    TextSection,
}

/// The hypervisor's code range: `[__text_start, __text_end)`, else the `.text` section.
pub fn code_range(data: &[u8]) -> Result<(Range<u64>, RangeSource), String> {
    let elf = Elf::parse(data)?;
    if let (Some(lo), Some(hi)) = (elf.symbol("__text_start")?, elf.symbol("__text_end")?) {
        if hi > lo {
            return Ok((lo..hi, RangeSource::Symbols));
        }
    }
    match elf.section_range(".text")? {
        Some(r) if r.end > r.start => Ok((r, RangeSource::TextSection)),
        _ => Err("neither __text_start/__text_end symbols nor a .text section".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a tiny ELF64 LE file: sections [null, .text, .symtab, .strtab, .shstrtab].
    fn build_elf(symbols: &[(&str, u64)]) -> Vec<u8> {
        let shstr = b"\0.text\0.symtab\0.strtab\0.shstrtab\0".to_vec();
        let mut strtab = vec![0u8];
        let mut symtab = vec![0u8; 24]; // null symbol
        for (name, value) in symbols {
            let off = strtab.len() as u32;
            strtab.extend_from_slice(name.as_bytes());
            strtab.push(0);
            let mut sym = [0u8; 24];
            sym[0..4].copy_from_slice(&off.to_le_bytes());
            sym[8..16].copy_from_slice(&value.to_le_bytes());
            symtab.extend_from_slice(&sym);
        }
        let mut data = vec![0u8; 64];
        data[..4].copy_from_slice(b"\x7fELF");
        data[4] = 2;
        data[5] = 1;
        let mut place = |bytes: &[u8]| {
            let off = data.len();
            data.extend_from_slice(bytes);
            off
        };
        let symtab_off = place(&symtab);
        let strtab_off = place(&strtab);
        let shstr_off = place(&shstr);
        let shoff = data.len();
        // (name, type, addr, offset, size, link)
        let headers: [(u32, u32, u64, usize, usize, u32); 5] = [
            (0, 0, 0, 0, 0, 0),
            (1, 1, 0x4020_0000, 0, 0x1234, 0),
            (7, SHT_SYMTAB, 0, symtab_off, symtab.len(), 3),
            (15, 3, 0, strtab_off, strtab.len(), 0),
            (23, 3, 0, shstr_off, shstr.len(), 0),
        ];
        for (name, kind, addr, offset, size, link) in headers {
            let mut h = [0u8; 64];
            h[0..4].copy_from_slice(&name.to_le_bytes());
            h[4..8].copy_from_slice(&kind.to_le_bytes());
            h[16..24].copy_from_slice(&addr.to_le_bytes());
            h[24..32].copy_from_slice(&(offset as u64).to_le_bytes());
            h[32..40].copy_from_slice(&(size as u64).to_le_bytes());
            h[40..44].copy_from_slice(&link.to_le_bytes());
            data.extend_from_slice(&h);
        }
        data[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        data[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        data[0x3c..0x3e].copy_from_slice(&5u16.to_le_bytes());
        data[0x3e..0x40].copy_from_slice(&4u16.to_le_bytes());
        data
    }

    #[test]
    fn range_from_symbols() {
        let elf = build_elf(&[
            ("_start", 0x4020_0000),
            ("__text_start", 0x4020_0000),
            ("__text_end", 0x4020_8000),
        ]);
        assert_eq!(
            code_range(&elf).unwrap(),
            (0x4020_0000..0x4020_8000, RangeSource::Symbols)
        );
    }

    #[test]
    fn symbols_sorted_by_address_without_mapping_symbols() {
        let elf = build_elf(&[
            ("b", 0x4020_0100),
            ("$x", 0x4020_0000),
            ("a", 0x4020_0000),
            ("__arm_vcpu_enter", 0x4020_0080),
        ]);
        let e = Elf::parse(&elf).unwrap();
        assert_eq!(
            e.symbols().unwrap(),
            [
                (0x4020_0000, "a".to_string()),
                (0x4020_0080, "__arm_vcpu_enter".to_string()),
                (0x4020_0100, "b".to_string())
            ]
        );
        assert_eq!(e.symbol("b").unwrap(), Some(0x4020_0100));
        assert_eq!(e.symbol("c").unwrap(), None);
    }

    #[test]
    fn range_falls_back_to_text_section() {
        let elf = build_elf(&[("_start", 0x4020_0000)]);
        assert_eq!(
            code_range(&elf).unwrap(),
            (0x4020_0000..0x4020_1234, RangeSource::TextSection)
        );
    }

    #[test]
    fn rejects_non_elf() {
        assert!(code_range(b"hello world").is_err());
        assert!(code_range(&build_elf(&[])[..70]).is_err());
    }
}
