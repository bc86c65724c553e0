//! ELF identity: class, byte order, machine, ABI details, loader path. Reads only the bytes it
//! needs (header, program headers, PT_INTERP, PT_NOTE, and for ARM the attributes section),
//! each read bounded, so a hostile file can neither make it allocate much nor loop.

use std::fs::File;
use std::os::unix::fs::FileExt;

use goblin::container::{Container, Ctx};
use goblin::elf::header::{self, Header};
use goblin::elf::program_header::{PT_DYNAMIC, PT_INTERP, PT_NOTE, ProgramHeader};
use goblin::elf::section_header::SectionHeader;

use crate::arch::{ArchTable, EF_MIPS_ABI2, EM_MIPS, Endian};

/// Program or section tables bigger than this are refused as corrupt (real ones are a few KiB).
const MAX_TABLE_BYTES: u64 = 1 << 20;
/// PT_INTERP longer than PATH_MAX is corrupt.
const MAX_INTERP: u64 = 4096;
/// Notes and ARM attributes are small; read at most this much of each.
const MAX_NOTE: u64 = 64 * 1024;

const EM_386: u16 = 3;
const EM_ARM: u16 = 40;
const EM_X86_64: u16 = 62;
const EM_PPC64: u16 = 21;
const EM_RISCV: u16 = 243;
const EM_AARCH64: u16 = 183;
const SHT_ARM_ATTRIBUTES: u32 = 0x7000_0003;
const EF_ARM_ABI_FLOAT_SOFT: u32 = 0x200;
const EF_ARM_ABI_FLOAT_HARD: u32 = 0x400;

/// Why an ELF could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("truncated ELF: {0}")]
    Truncated(String),
    #[error("malformed ELF: {0}")]
    Malformed(String),
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

/// goblin's parsing context for an ELF of `class` (32 or 64) and `endian`. goblin calls
/// 64-bit `Container::Big` and 32-bit `Container::Little`.
pub fn ctx(class: u8, endian: Endian) -> Ctx {
    Ctx::new(
        if class == 64 {
            Container::Big
        } else {
            Container::Little
        },
        match endian {
            Endian::Little => scroll::Endian::Little,
            Endian::Big => scroll::Endian::Big,
        },
    )
}

/// What an ELF header and its few interesting tables say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    pub class: u8,
    pub endian: Endian,
    pub os_abi: u8,
    pub e_type: u16,
    pub machine: u16,
    pub flags: u32,
    pub interpreter: Option<String>,
    /// Has a PT_DYNAMIC segment (dynamic linking information, also present in static-pie).
    pub dynamic: bool,
    /// DT_FLAGS_1 carries DF_1_PIE: an executable, not a shared library, even without a loader.
    pub pie_flag: bool,
    /// OS named by an ABI note (`.note.ABI-tag` or a BSD ident note), when present.
    pub note_os: Option<&'static str>,
    /// ARM Tag_CPU_arch from `.ARM.attributes`.
    pub arm_cpu_arch: Option<u64>,
    /// ARM Tag_ABI_VFP_args == 1 (arguments in VFP registers: hard float).
    pub arm_vfp_args: Option<bool>,
}

impl ElfInfo {
    /// `exec`, `pie`, `dyn` (shared object), `rel`, `core`, or the raw value.
    pub fn type_name(&self) -> String {
        match self.e_type {
            header::ET_REL => "rel".into(),
            header::ET_EXEC => "exec".into(),
            header::ET_DYN if self.interpreter.is_none() && self.pie_flag => "static-pie".into(),
            header::ET_DYN if self.interpreter.is_some() => "pie".into(),
            header::ET_DYN => "dyn".into(),
            header::ET_CORE => "core".into(),
            t => format!("0x{t:x}"),
        }
    }

    /// The operating system the file is built for. OSABI first, then notes.
    pub fn os(&self) -> &'static str {
        match self.os_abi {
            0 | 3 => self.note_os.unwrap_or("linux"),
            1 => "hpux",
            2 => "netbsd",
            6 => "solaris",
            7 => "aix",
            8 => "irix",
            9 => "freebsd",
            10 => "tru64",
            12 => "openbsd",
            97 => "linux", // ELFOSABI_ARM: old ARM Linux toolchains
            _ => "unknown",
        }
    }

    pub fn os_abi_name(&self) -> String {
        match self.os_abi {
            0 => "sysv".into(),
            3 => "gnu".into(),
            97 => "arm".into(),
            _ => self.os().to_string(),
        }
    }

    pub fn is_linux(&self) -> bool {
        self.os() == "linux"
    }

    /// Statically linked: a program the kernel starts with no loader (PT_INTERP). A
    /// static-pie (Debian's qemu-*-static) has a dynamic section but no loader, and is static;
    /// a shared library has neither loader nor PIE flag, and is not.
    pub fn is_static(&self) -> bool {
        self.interpreter.is_none() && (self.e_type != header::ET_DYN || self.pie_flag)
    }

    pub fn is_program(&self) -> bool {
        matches!(self.e_type, header::ET_EXEC | header::ET_DYN)
    }
}

/// The ELF header's identity (class, byte order, machine, flags, type, OS ABI) and nothing
/// else; `len` is the file's length, for messages.
fn identity(head: &[u8], len: u64) -> Result<(Header, Ctx, ElfInfo), ElfError> {
    let need = match head.get(header::EI_CLASS) {
        Some(&header::ELFCLASS32) => header::header32::SIZEOF_EHDR,
        Some(&header::ELFCLASS64) => header::header64::SIZEOF_EHDR,
        Some(c) => return Err(ElfError::Malformed(format!("EI_CLASS is {c}, not 1 or 2"))),
        None => {
            return Err(ElfError::Truncated(format!(
                "{len} bytes, no ELF class byte"
            )));
        }
    };
    if head.len() < need {
        return Err(ElfError::Truncated(format!(
            "{len} bytes, shorter than the {need}-byte ELF header"
        )));
    }
    let hdr =
        goblin::elf::Elf::parse_header(head).map_err(|e| ElfError::Malformed(e.to_string()))?;
    let endian = match hdr.e_ident[header::EI_DATA] {
        header::ELFDATA2LSB => Endian::Little,
        header::ELFDATA2MSB => Endian::Big,
        d => return Err(ElfError::Malformed(format!("EI_DATA is {d}, not 1 or 2"))),
    };
    let class = if hdr.e_ident[header::EI_CLASS] == header::ELFCLASS64 {
        64
    } else {
        32
    };
    let ctx = ctx(class, endian);
    let info = ElfInfo {
        class,
        endian,
        os_abi: hdr.e_ident[header::EI_OSABI],
        e_type: hdr.e_type,
        machine: hdr.e_machine,
        flags: hdr.e_flags,
        interpreter: None,
        dynamic: false,
        pie_flag: false,
        note_os: None,
        arm_cpu_arch: None,
        arm_vfp_args: None,
    };
    Ok((hdr, ctx, info))
}

/// Only what names a platform: the header, and for 32-bit ARM the attributes section
/// (its variant). `scan` reads thousands of files and needs neither loader nor notes.
pub fn read_identity(src: &dyn ReadAt, head: &[u8], len: u64) -> Result<ElfInfo, ElfError> {
    let (hdr, ctx, mut info) = identity(head, len)?;
    if info.machine == EM_ARM {
        Reader { file: src, len }.arm_attributes(&hdr, ctx, &mut info)?;
    }
    Ok(info)
}

/// Positional reads: a file on disk, or bytes already in memory (a member of a tar stream).
pub trait ReadAt {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()>;
}

impl ReadAt for File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }
}

impl ReadAt for &[u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let src = usize::try_from(offset)
            .ok()
            .and_then(|at| self.get(at..at.checked_add(buf.len())?))
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// Read an ELF held in memory, as a file is read.
pub fn read_bytes(data: &[u8]) -> Result<ElfInfo, ElfError> {
    let head = &data[..data.len().min(crate::format::HEAD_BYTES)];
    read(&data, head, data.len() as u64)
}

/// Read the ELF at `file` (whose first bytes are `head`).
pub fn read(file: &dyn ReadAt, head: &[u8], len: u64) -> Result<ElfInfo, ElfError> {
    let (hdr, ctx, mut info) = identity(head, len)?;
    let class = info.class;
    let endian = info.endian;
    let reader = Reader { file, len };

    let phdrs = reader.table(
        hdr.e_phoff,
        hdr.e_phnum as u64,
        hdr.e_phentsize as u64,
        "program header",
    )?;
    let phdrs = if phdrs.is_empty() {
        Vec::new()
    } else {
        ProgramHeader::parse(&phdrs, 0, hdr.e_phnum as usize, ctx)
            .map_err(|e| ElfError::Malformed(format!("program headers: {e}")))?
    };
    for ph in &phdrs {
        match ph.p_type {
            PT_INTERP => {
                if ph.p_filesz > MAX_INTERP {
                    return Err(ElfError::Malformed(format!(
                        "PT_INTERP is {} bytes long",
                        ph.p_filesz
                    )));
                }
                let raw = reader.bytes(ph.p_offset, ph.p_filesz, "PT_INTERP")?;
                let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
                info.interpreter = Some(String::from_utf8_lossy(&raw[..end]).into_owned());
            }
            PT_DYNAMIC => {
                info.dynamic = true;
                // Damaged dynamic sections do not stop inspection; the flag stays unset.
                if let Ok(raw) = reader.bytes(ph.p_offset, ph.p_filesz.min(MAX_NOTE), "PT_DYNAMIC")
                {
                    info.pie_flag = has_pie_flag(&raw, class, endian);
                }
            }
            PT_NOTE if info.note_os.is_none() => {
                // A damaged note is not worth failing the file for.
                if let Ok(raw) = reader.bytes(ph.p_offset, ph.p_filesz.min(MAX_NOTE), "PT_NOTE") {
                    info.note_os = note_os(&raw, endian);
                }
            }
            _ => {}
        }
    }

    if info.machine == EM_ARM {
        reader.arm_attributes(&hdr, ctx, &mut info)?;
    }
    Ok(info)
}

/// Bounded positional reads.
struct Reader<'a> {
    file: &'a dyn ReadAt,
    len: u64,
}

impl Reader<'_> {
    fn bytes(&self, offset: u64, size: u64, what: &str) -> Result<Vec<u8>, ElfError> {
        let end = offset
            .checked_add(size)
            .ok_or_else(|| ElfError::Malformed(format!("{what} offset overflows")))?;
        if end > self.len {
            return Err(ElfError::Truncated(format!(
                "{what} at {offset}+{size} lies past the end of the {}-byte file",
                self.len
            )));
        }
        let mut buf = vec![0u8; size as usize];
        self.file.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    fn table(
        &self,
        offset: u64,
        count: u64,
        entsize: u64,
        what: &str,
    ) -> Result<Vec<u8>, ElfError> {
        if count == 0 || offset == 0 {
            return Ok(Vec::new());
        }
        let size = count * entsize;
        if entsize == 0 || size > MAX_TABLE_BYTES {
            return Err(ElfError::Malformed(format!(
                "{what} table of {count} entries of {entsize} bytes"
            )));
        }
        self.bytes(offset, size, what)
    }

    /// Find the section of type SHT_ARM_ATTRIBUTES and read Tag_CPU_arch and Tag_ABI_VFP_args.
    /// Section headers are optional in a program: missing or damaged ones leave the fields
    /// empty and the float-ABI bits of e_flags decide.
    fn arm_attributes(&self, hdr: &Header, ctx: Ctx, info: &mut ElfInfo) -> Result<(), ElfError> {
        let Ok(raw) = self.table(
            hdr.e_shoff,
            hdr.e_shnum as u64,
            hdr.e_shentsize as u64,
            "section header",
        ) else {
            return Ok(());
        };
        if raw.is_empty() {
            return Ok(());
        }
        let Ok(shdrs) = SectionHeader::parse_from(&raw, 0, hdr.e_shnum as usize, ctx) else {
            return Ok(());
        };
        let Some(sh) = shdrs.iter().find(|s| s.sh_type == SHT_ARM_ATTRIBUTES) else {
            return Ok(());
        };
        if let Ok(data) = self.bytes(sh.sh_offset, sh.sh_size.min(MAX_NOTE), "ARM attributes") {
            let (arch, vfp) = parse_arm_attributes(&data, info.endian);
            info.arm_cpu_arch = arch;
            info.arm_vfp_args = vfp;
        }
        Ok(())
    }
}

/// Whether the dynamic section holds DT_FLAGS_1 with DF_1_PIE.
fn has_pie_flag(raw: &[u8], class: u8, endian: Endian) -> bool {
    const DT_NULL: u64 = 0;
    const DT_FLAGS_1: u64 = 0x6fff_fffb;
    const DF_1_PIE: u64 = 0x0800_0000;
    let word = if class == 64 { 8 } else { 4 };
    let read = |b: &[u8]| -> u64 {
        match (word, endian) {
            (8, Endian::Little) => u64::from_le_bytes(b.try_into().unwrap_or_default()),
            (8, Endian::Big) => u64::from_be_bytes(b.try_into().unwrap_or_default()),
            (_, Endian::Little) => u32::from_le_bytes(b.try_into().unwrap_or_default()).into(),
            (_, Endian::Big) => u32::from_be_bytes(b.try_into().unwrap_or_default()).into(),
        }
    };
    for entry in raw.chunks_exact(2 * word) {
        let (tag, value) = (read(&entry[..word]), read(&entry[word..]));
        match tag {
            DT_NULL => return false,
            DT_FLAGS_1 => return value & DF_1_PIE != 0,
            _ => {}
        }
    }
    false
}

/// The OS an ABI note names: GNU's ABI tag (0 = Linux), or a BSD ident note.
fn note_os(raw: &[u8], endian: Endian) -> Option<&'static str> {
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = raw.get(at..at + 4)?.try_into().ok()?;
        Some(match endian {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        })
    };
    let mut at = 0usize;
    // Each note: namesz, descsz, type, name (4-aligned), desc (4-aligned).
    while at + 12 <= raw.len() {
        let namesz = u32_at(at)? as usize;
        let descsz = u32_at(at + 4)? as usize;
        let ntype = u32_at(at + 8)?;
        let name_at = at + 12;
        let desc_at = name_at.checked_add(namesz.checked_add(3)? & !3)?;
        let next = desc_at.checked_add(descsz.checked_add(3)? & !3)?;
        let name = raw.get(name_at..name_at + namesz)?;
        let name = name.strip_suffix(b"\0").unwrap_or(name);
        match (name, ntype) {
            (b"GNU", 1) => {
                return Some(match u32_at(desc_at)? {
                    0 => "linux",
                    1 => "hurd",
                    2 => "solaris",
                    3 => "freebsd",
                    _ => "unknown",
                });
            }
            (b"FreeBSD", 1) => return Some("freebsd"),
            (b"NetBSD", 1) => return Some("netbsd"),
            (b"OpenBSD", 1) => return Some("openbsd"),
            _ => {}
        }
        if next <= at {
            return None;
        }
        at = next;
    }
    None
}

/// Read Tag_CPU_arch (6) and Tag_ABI_VFP_args (28) from the "aeabi" subsection.
fn parse_arm_attributes(data: &[u8], endian: Endian) -> (Option<u64>, Option<bool>) {
    let mut cpu_arch = None;
    let mut vfp_args = None;
    for attrs in file_attribute_blocks(data, b"aeabi", endian) {
        read_attrs(attrs, &mut cpu_arch, &mut vfp_args);
    }
    (cpu_arch, vfp_args)
}

/// The Tag_File (1) attribute blocks of `vendor`'s subsections of a build-attributes section
/// (ARM's `.ARM.attributes`, RISC-V's `.riscv.attributes`, one layout): `'A'`, then
/// subsections of `u32 length, vendor NUL, sub-subsections`, a sub-subsection being
/// `uleb tag, u32 size (tag and size included), attributes`. Reading stops at the first
/// length that does not fit. How a block's attributes read is the vendor's.
pub(crate) fn file_attribute_blocks<'d>(
    data: &'d [u8],
    vendor: &[u8],
    endian: Endian,
) -> Vec<&'d [u8]> {
    const TAG_FILE: u64 = 1;
    let mut out = Vec::new();
    if data.first() != Some(&b'A') {
        return out;
    }
    let u32_at = |d: &[u8], at: usize| -> Option<usize> {
        let b: [u8; 4] = d.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(match endian {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        } as usize)
    };
    let mut sub = 1usize;
    while let Some(len) = u32_at(data, sub) {
        let Some(end) = sub
            .checked_add(len)
            .filter(|e| len >= 4 && *e <= data.len())
        else {
            break;
        };
        let body = &data[sub + 4..end];
        let name_end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
        if &body[..name_end] == vendor {
            let mut at = name_end + 1;
            while at < body.len() {
                let Some((tag, n)) = uleb(&body[at..]) else {
                    break;
                };
                let Some(size) = u32_at(body, at + n) else {
                    break;
                };
                let Some(stop) = at
                    .checked_add(size)
                    .filter(|s| size >= n + 4 && *s <= body.len())
                else {
                    break;
                };
                if tag == TAG_FILE {
                    out.push(&body[at + n + 4..stop]);
                }
                at = stop;
            }
        }
        sub = end;
    }
    out
}

fn read_attrs(mut attrs: &[u8], cpu_arch: &mut Option<u64>, vfp_args: &mut Option<bool>) {
    while let Some((tag, n)) = uleb(attrs) {
        attrs = &attrs[n..];
        // Tags 4, 5, 65 and 67 hold strings; 32 a number then a string; above 32, odd tags
        // hold strings and even ones numbers; the rest below 32 hold numbers.
        let is_string = matches!(tag, 4 | 5 | 65 | 67) || (tag > 32 && tag % 2 == 1);
        if tag == 32 {
            let Some((_, n)) = uleb(attrs) else { return };
            attrs = &attrs[n..];
        }
        if is_string || tag == 32 {
            let Some(end) = attrs.iter().position(|&b| b == 0) else {
                return;
            };
            attrs = &attrs[end + 1..];
            continue;
        }
        let Some((value, n)) = uleb(attrs) else {
            return;
        };
        attrs = &attrs[n..];
        match tag {
            6 => *cpu_arch = Some(value),
            28 => *vfp_args = Some(value == 1),
            _ => {}
        }
    }
}

/// Unsigned LEB128 (Go's uvarint too): the value and the bytes it took; `None` when it runs
/// off the end or past 64 bits.
pub(crate) fn uleb(data: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in data.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// The name a Docker user, or failing that QEMU, gives a file's architecture and platform,
/// plus ABI details worth showing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naming {
    pub arch: Option<String>,
    pub platform: Option<String>,
    /// ABI words: `eabi5 hard-float`, `o32`, `n32`, `elfv2`, `lp64d`, `x32`, `ilp32`.
    pub abi: Option<String>,
    /// Where an arm variant came from: `attributes` or `float-abi`.
    pub variant_source: Option<&'static str>,
}

/// Name the platform of an ELF.
pub fn name(info: &ElfInfo, table: &ArchTable) -> Naming {
    let arch = table.by_identity(info.class, info.endian, info.machine, info.flags);
    let mut naming = Naming {
        arch: arch.map(|a| a.name.clone()),
        platform: None,
        abi: abi_words(info),
        variant_source: None,
    };
    let Some(arch) = arch else { return naming };
    let os = if info.is_linux() { "linux" } else { info.os() };
    let base = arch.platform.replacen("linux/", &format!("{os}/"), 1);
    naming.platform = Some(if info.machine == EM_ARM && info.class == 32 {
        let (variant, source) = arm_variant(info);
        naming.variant_source = Some(source);
        format!("{base}/{variant}")
    } else {
        base
    });
    naming
}

/// v5/v6/v7/v8 from Tag_CPU_arch; otherwise guessed from the float ABI as Debian does
/// (hard float: armhf, built for v7; soft float: armel, v5).
fn arm_variant(info: &ElfInfo) -> (&'static str, &'static str) {
    if let Some(cpu) = info.arm_cpu_arch {
        let v = match cpu {
            0..=5 => "v5",
            6..=9 | 11 | 12 => "v6",
            10 | 13 => "v7",
            _ => "v8",
        };
        return (v, "attributes");
    }
    if info.flags & EF_ARM_ABI_FLOAT_HARD != 0 {
        ("v7", "float-abi")
    } else {
        ("v5", "float-abi")
    }
}

fn abi_words(info: &ElfInfo) -> Option<String> {
    let f = info.flags;
    match (info.machine, info.class) {
        (EM_ARM, 32) => {
            let eabi = f >> 24;
            let hard = info.arm_vfp_args.unwrap_or(false) || f & EF_ARM_ABI_FLOAT_HARD != 0;
            let float = if hard {
                "hard-float"
            } else if f & EF_ARM_ABI_FLOAT_SOFT != 0 || eabi >= 5 {
                "soft-float"
            } else {
                "float-abi unknown"
            };
            Some(if eabi == 0 {
                format!("oabi {float}")
            } else {
                format!("eabi{eabi} {float}")
            })
        }
        (EM_MIPS, 32) if f & EF_MIPS_ABI2 != 0 => Some("n32".into()),
        (EM_MIPS, 32) => Some("o32".into()),
        (EM_MIPS, 64) => Some("n64".into()),
        (EM_PPC64, 64) => Some(match f & 3 {
            1 => "elfv1".into(),
            2 => "elfv2".into(),
            _ => "elfv1 (unmarked)".into(),
        }),
        (EM_RISCV, c) => {
            let float = match f & 0x6 {
                0 => "",
                2 => "f",
                4 => "d",
                _ => "q",
            };
            let rvc = if f & 1 != 0 { " rvc" } else { "" };
            Some(format!(
                "{}{float}{rvc}",
                if c == 64 { "lp64" } else { "ilp32" }
            ))
        }
        (EM_X86_64, 32) => Some("x32".into()),
        (EM_AARCH64, 32) => Some("ilp32".into()),
        (EM_386, _) => None,
        _ => None,
    }
}

/// An attributes section as compilers write it (little-endian lengths): the format byte `A`,
/// one subsection of `vendor` (`aeabi\0`, `riscv\0`), and in it one Tag_File holding
/// `attrs`. For tests here and in the readers that find such sections.
#[cfg(test)]
pub(crate) fn attributes_section(vendor: &[u8], attrs: &[u8]) -> Vec<u8> {
    let mut file = vec![1u8];
    file.extend_from_slice(&((attrs.len() + 5) as u32).to_le_bytes());
    file.extend_from_slice(attrs);
    let mut out = vec![b'A'];
    out.extend_from_slice(&((file.len() + 4 + vendor.len()) as u32).to_le_bytes());
    out.extend_from_slice(vendor);
    out.extend_from_slice(&file);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uleb_reads_multibyte_and_refuses_overrun() {
        assert_eq!(uleb(&[0x05]), Some((5, 1)));
        assert_eq!(uleb(&[0xe5, 0x8e, 0x26]), Some((624_485, 3)));
        assert_eq!(uleb(&[0x80, 0x80]), None);
        assert_eq!(uleb(&[0xff; 12]), None);
    }

    /// A minimal attributes section as compilers write it: 'A', subsection "aeabi",
    /// Tag_File with Tag_CPU_name (string), Tag_CPU_arch and Tag_ABI_VFP_args.
    fn attributes(cpu_arch: u8, vfp: u8) -> Vec<u8> {
        let mut attrs = vec![5u8];
        attrs.extend_from_slice(b"7-A\0");
        attrs.extend_from_slice(&[6, cpu_arch, 28, vfp]);
        attributes_section(b"aeabi\0", &attrs)
    }

    #[test]
    fn arm_attributes_give_arch_and_vfp() {
        assert_eq!(
            parse_arm_attributes(&attributes(10, 1), Endian::Little),
            (Some(10), Some(true))
        );
        assert_eq!(
            parse_arm_attributes(&attributes(4, 0), Endian::Little),
            (Some(4), Some(false))
        );
    }

    #[test]
    fn arm_attributes_survive_every_truncation() {
        let full = attributes(10, 1);
        for n in 0..full.len() {
            let _ = parse_arm_attributes(&full[..n], Endian::Little);
        }
    }

    #[test]
    fn notes_name_the_os() {
        let mut n = Vec::new();
        for v in [4u32, 16, 1] {
            n.extend_from_slice(&v.to_le_bytes());
        }
        n.extend_from_slice(b"GNU\0");
        for v in [0u32, 3, 2, 0] {
            n.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(note_os(&n, Endian::Little), Some("linux"));
        n[16..20].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(note_os(&n, Endian::Little), Some("freebsd"));
        assert_eq!(note_os(&n[..10], Endian::Little), None);
    }
}
