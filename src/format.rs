//! Recognising what a file is from its first bytes, and reading the non-ELF formats a user may
//! hand us by mistake: Mach-O (thin and universal), PE, and `#!` scripts.

use goblin::mach::constants::cputype::{self as cpu, CpuType};

/// How many leading bytes inspection reads. The kernel reads 256 for binfmt_misc matching;
/// a shebang line may be longer (PATH_MAX-ish), and PE headers sit within the first KiB or two.
pub const HEAD_BYTES: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Elf,
    Macho,
    Pe,
    Script,
    Unknown,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Elf => "elf",
            Format::Macho => "macho",
            Format::Pe => "pe",
            Format::Script => "script",
            Format::Unknown => "unknown",
        }
    }
}

const MH_MAGIC: u32 = 0xfeed_face;
const MH_CIGAM: u32 = 0xcefa_edfe;
const MH_MAGIC_64: u32 = 0xfeed_facf;
const MH_CIGAM_64: u32 = 0xcffa_edfe;
const FAT_MAGIC: u32 = 0xcafe_babe;
const FAT_MAGIC_64: u32 = 0xcafe_babf;

/// Decide the format from the leading bytes.
pub fn sniff(head: &[u8]) -> Format {
    if head.starts_with(b"\x7fELF") {
        return Format::Elf;
    }
    if head.starts_with(b"#!") {
        return Format::Script;
    }
    if head.starts_with(b"MZ") {
        return Format::Pe;
    }
    if let Some(m) = be32(head, 0) {
        match m {
            MH_MAGIC | MH_CIGAM | MH_MAGIC_64 | MH_CIGAM_64 => return Format::Macho,
            // 0xcafebabe is also a Java class file; there the next word is the class-file
            // version (45 or more), while a universal binary holds a handful of slices.
            FAT_MAGIC | FAT_MAGIC_64 if be32(head, 4).is_some_and(|n| n > 0 && n < 45) => {
                return Format::Macho;
            }
            _ => {}
        }
    }
    Format::Unknown
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// One architecture slice of a Mach-O file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MachSlice {
    pub arch: String,
    pub platform: String,
    pub class: u8,
}

/// A Mach-O or PE header that cannot be read: what is wrong with it, in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

/// Read the slices of a Mach-O: one for a thin file, several for a universal one.
pub fn macho_slices(head: &[u8]) -> Result<Vec<MachSlice>, Malformed> {
    macho_slices_reason(head).map_err(Malformed)
}

fn macho_slices_reason(head: &[u8]) -> Result<Vec<MachSlice>, String> {
    let magic = be32(head, 0).ok_or("truncated Mach-O header")?;
    let slice = |cputype: CpuType| {
        let (arch, class) = macho_arch(cputype);
        MachSlice {
            platform: format!("darwin/{arch}"),
            arch,
            class,
        }
    };
    match magic {
        MH_MAGIC | MH_MAGIC_64 => Ok(vec![slice(be32(head, 4).ok_or("truncated Mach-O header")?)]),
        MH_CIGAM | MH_CIGAM_64 => Ok(vec![slice(le32(head, 4).ok_or("truncated Mach-O header")?)]),
        FAT_MAGIC | FAT_MAGIC_64 => {
            let n = be32(head, 4).ok_or("truncated universal header")? as usize;
            let entry = if magic == FAT_MAGIC { 20 } else { 32 };
            (0..n)
                .map(|i| {
                    be32(head, 8 + i * entry).map(slice).ok_or_else(|| {
                        format!("universal header lists {n} slices but is truncated at slice {i}")
                    })
                })
                .collect()
        }
        _ => Err("not a Mach-O file".into()),
    }
}

fn macho_arch(cputype: CpuType) -> (String, u8) {
    let name = match cputype {
        cpu::CPU_TYPE_X86_64 => "amd64",
        cpu::CPU_TYPE_X86 => "386",
        cpu::CPU_TYPE_ARM64 => "arm64",
        cpu::CPU_TYPE_ARM64_32 => "arm64_32",
        cpu::CPU_TYPE_ARM => "arm",
        cpu::CPU_TYPE_POWERPC64 => "ppc64",
        cpu::CPU_TYPE_POWERPC => "ppc",
        other => return (format!("cputype-0x{other:x}"), 0),
    };
    let class = if cputype & cpu::CPU_ARCH_ABI64 != 0 {
        64
    } else {
        32
    };
    (name.to_string(), class)
}

/// The PE machine of a Windows executable, named as Docker names Windows platforms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeInfo {
    pub machine: u16,
    pub arch: String,
    pub class: u8,
}

/// The machine of a PE (Windows) program.
pub fn pe_info(head: &[u8]) -> Result<PeInfo, Malformed> {
    pe_info_reason(head).map_err(Malformed)
}

fn pe_info_reason(head: &[u8]) -> Result<PeInfo, String> {
    use goblin::pe::header as pe;
    let hdr = pe::Header::parse(head).map_err(|e| format!("malformed PE header: {e}"))?;
    let machine = hdr.coff_header.machine;
    let arch = match machine {
        pe::COFF_MACHINE_X86_64 => "amd64".to_string(),
        pe::COFF_MACHINE_X86 => "386".to_string(),
        pe::COFF_MACHINE_ARM64 => "arm64".to_string(),
        pe::COFF_MACHINE_ARM | pe::COFF_MACHINE_ARMNT | pe::COFF_MACHINE_THUMB => "arm".to_string(),
        pe::COFF_MACHINE_RISCV64 => "riscv64".to_string(),
        pe::COFF_MACHINE_LOONGARCH64 => "loong64".to_string(),
        pe::COFF_MACHINE_IA64 => "ia64".to_string(),
        m => format!("machine-0x{m:x}"),
    };
    let class = match hdr.optional_header.map(|o| o.standard_fields.magic) {
        Some(0x20b) => 64,
        Some(_) => 32,
        None => 0,
    };
    Ok(PeInfo {
        machine,
        arch,
        class,
    })
}

/// The `#!` line of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shebang {
    pub interpreter: String,
    pub argument: Option<String>,
    /// The line ends in `\r\n`: the kernel then looks for an interpreter named `sh\r`.
    pub crlf: bool,
}

/// Parse the first line as the kernel does: interpreter up to the first blank, the rest (trimmed)
/// as one argument. `None` when the line names no interpreter.
pub fn shebang(head: &[u8]) -> Option<Shebang> {
    let rest = head.strip_prefix(b"#!")?;
    let line_end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let mut line = &rest[..line_end];
    let crlf = line.last() == Some(&b'\r');
    if crlf {
        line = &line[..line.len() - 1];
    }
    let text = String::from_utf8_lossy(line);
    let text = text.trim_matches([' ', '\t']);
    let (interp, arg) = match text.find([' ', '\t']) {
        Some(i) => (&text[..i], Some(text[i..].trim_matches([' ', '\t']))),
        None => (text, None),
    };
    if interp.is_empty() {
        return None;
    }
    Some(Shebang {
        interpreter: interp.to_string(),
        argument: arg.filter(|a| !a.is_empty()).map(str::to_string),
        crlf,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_each_format() {
        assert_eq!(sniff(b"\x7fELF\x02\x01"), Format::Elf);
        assert_eq!(sniff(b"#!/bin/sh\n"), Format::Script);
        assert_eq!(sniff(b"MZ\x90\x00"), Format::Pe);
        assert_eq!(sniff(&[0xcf, 0xfa, 0xed, 0xfe, 7, 0, 0, 1]), Format::Macho);
        assert_eq!(sniff(&[0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 2]), Format::Macho);
        // A Java class file (version 52) shares the universal-binary magic.
        assert_eq!(
            sniff(&[0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 52]),
            Format::Unknown
        );
        assert_eq!(sniff(b""), Format::Unknown);
        assert_eq!(sniff(b"\x7fEL"), Format::Unknown);
    }

    #[test]
    fn shebang_lines() {
        let s = shebang(b"#!/usr/bin/env  python3 \r\nprint()").expect("shebang");
        assert_eq!(s.interpreter, "/usr/bin/env");
        assert_eq!(s.argument.as_deref(), Some("python3"));
        assert!(s.crlf);
        let s = shebang(b"#! /bin/sh").expect("shebang");
        assert_eq!(
            (s.interpreter.as_str(), s.argument, s.crlf),
            ("/bin/sh", None, false)
        );
        assert_eq!(shebang(b"#!\n"), None);
        assert_eq!(shebang(b"#!   \t\n"), None);
    }

    #[test]
    fn macho_slices_thin_and_fat() {
        let thin = [0xcf, 0xfa, 0xed, 0xfe, 0x0c, 0, 0, 0x01];
        assert_eq!(
            macho_slices(&thin).expect("thin")[0].platform,
            "darwin/arm64"
        );
        let mut fat = vec![0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 2];
        fat.extend_from_slice(&[1, 0, 0, 7]);
        fat.extend_from_slice(&[0; 16]);
        fat.extend_from_slice(&[1, 0, 0, 12]);
        let s = macho_slices(&fat).expect("fat");
        assert_eq!(
            s.iter().map(|s| s.arch.as_str()).collect::<Vec<_>>(),
            ["amd64", "arm64"]
        );
        assert!(macho_slices(&fat[..20]).is_err());
    }
}
