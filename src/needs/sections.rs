//! Section headers and their names, read bounded: the few sections the needs live in
//! (`.riscv.attributes`, `.go.buildinfo`). A program may have no section headers at all;
//! then nothing is found, which is not an error.

use goblin::elf::section_header::SectionHeader;

use crate::elf::{ElfInfo, ReadAt};

/// Section tables bigger than this are not read (real ones are a few KiB).
const MAX_TABLE: u64 = 1 << 20;
/// Nor are name tables or sections bigger than this.
const MAX_SECTION: u64 = 1 << 20;

pub struct Sections<'a> {
    src: &'a dyn ReadAt,
    len: u64,
    headers: Vec<SectionHeader>,
    names: Vec<u8>,
}

impl std::fmt::Debug for Sections<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sections({} headers)", self.headers.len())
    }
}

impl<'a> Sections<'a> {
    /// The section table of the ELF `info` describes; `None` when it has none or it is
    /// damaged.
    pub fn read(src: &'a dyn ReadAt, len: u64, info: &ElfInfo) -> Option<Sections<'a>> {
        let ident = read_at(src, len, 0, 64)?;
        let hdr = goblin::elf::Elf::parse_header(&ident).ok()?;
        let (off, num, size) = (hdr.e_shoff, u64::from(hdr.e_shnum), hdr.e_shentsize);
        if off == 0 || num == 0 || size == 0 || num * u64::from(size) > MAX_TABLE {
            return None;
        }
        let raw = read_at(src, len, off, num * u64::from(size))?;
        let ctx = crate::elf::ctx(info.class, info.endian);
        let headers = SectionHeader::parse_from(&raw, 0, num as usize, ctx).ok()?;
        let names = headers
            .get(usize::from(hdr.e_shstrndx))
            .filter(|s| s.sh_size <= MAX_SECTION)
            .and_then(|s| read_at(src, len, s.sh_offset, s.sh_size))
            .unwrap_or_default();
        Some(Sections {
            src,
            len,
            headers,
            names,
        })
    }

    /// The bytes of the first section named `name`, at most `max`.
    pub fn named(&self, name: &str, max: u64) -> Option<Vec<u8>> {
        let h = self
            .headers
            .iter()
            .find(|h| self.name_of(h) == Some(name))?;
        self.data(h, max)
    }

    /// The bytes of the first section of type `kind`, at most `max`.
    pub fn of_type(&self, kind: u32, max: u64) -> Option<Vec<u8>> {
        let h = self.headers.iter().find(|h| h.sh_type == kind)?;
        self.data(h, max)
    }

    fn data(&self, h: &SectionHeader, max: u64) -> Option<Vec<u8>> {
        // SHT_NOBITS has no bytes in the file.
        if h.sh_type == goblin::elf::section_header::SHT_NOBITS {
            return None;
        }
        read_at(self.src, self.len, h.sh_offset, h.sh_size.min(max))
    }

    fn name_of(&self, h: &SectionHeader) -> Option<&str> {
        let start = self.names.get(h.sh_name..)?;
        let end = start.iter().position(|&b| b == 0)?;
        std::str::from_utf8(&start[..end]).ok()
    }
}

/// `size` bytes at `offset`, when they lie inside the file.
pub fn read_at(src: &dyn ReadAt, len: u64, offset: u64, size: u64) -> Option<Vec<u8>> {
    let end = offset.checked_add(size)?;
    if end > len || size > MAX_SECTION.max(MAX_TABLE) * 64 {
        return None;
    }
    let mut buf = vec![0u8; usize::try_from(size).ok()?];
    src.read_exact_at(&mut buf, offset).ok()?;
    Some(buf)
}
