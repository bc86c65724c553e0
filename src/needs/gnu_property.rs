//! x86's ISA level mark: `GNU_PROPERTY_X86_ISA_1_NEEDED` (0xc0008002, binutils 2.36 and
//! later, `include/elf/common.h`), a bit set of x86-64-baseline (1), -v2 (2), -v3 (4) and -v4
//! (8), in an `NT_GNU_PROPERTY_TYPE_0` (5) note of owner `GNU`. The linker merges it into
//! `.note.gnu.property`, which a PT_GNU_PROPERTY segment (and a PT_NOTE) covers. Each
//! property is `u32 type, u32 size, data`, padded to 8 bytes in a 64-bit file.

use goblin::elf::program_header::{PT_NOTE, ProgramHeader};

use super::sections::read_at;
use super::{Evidence, Source, level_mask};
use crate::arch::Endian;
use crate::elf::{ElfInfo, ReadAt};
use crate::probe::levels::{Family, x86};

const PT_GNU_PROPERTY: u32 = 0x6474_e553;
const NT_GNU_PROPERTY_TYPE_0: u32 = 5;
const GNU_PROPERTY_X86_ISA_1_NEEDED: u32 = 0xc000_8002;
const MAX_NOTES: u64 = 64 * 1024;
const MAX_PHDRS: u64 = 1 << 20;

/// The ISA level the program's `GNU_PROPERTY_X86_ISA_1_NEEDED` asks for, if it has one
/// above the baseline (a baseline mark is recorded too: it says the level was looked at).
pub fn x86_isa_needed(
    src: &dyn ReadAt,
    len: u64,
    info: &ElfInfo,
    family: &'static Family,
) -> Option<Evidence> {
    let bits = notes(src, len, info)
        .iter()
        .find_map(|n| isa_needed(n, info.endian, info.class))?;
    let level = if bits & 8 != 0 {
        x86::V4
    } else if bits & 4 != 0 {
        x86::V3
    } else if bits & 2 != 0 {
        x86::V2
    } else {
        x86::V1
    };
    let shown = if level == x86::V1 {
        "x86-64-baseline"
    } else {
        level
    };
    Some(Evidence {
        source: Source::GnuProperty,
        detail: format!("GNU_PROPERTY_X86_ISA_1_NEEDED {shown}"),
        mask: level_mask(family, level)?,
    })
}

/// The bytes of every PT_GNU_PROPERTY and PT_NOTE segment, each bounded.
fn notes(src: &dyn ReadAt, len: u64, info: &ElfInfo) -> Vec<Vec<u8>> {
    let Some(ident) = read_at(src, len, 0, 64) else {
        return Vec::new();
    };
    let Ok(hdr) = goblin::elf::Elf::parse_header(&ident) else {
        return Vec::new();
    };
    let size = u64::from(hdr.e_phnum) * u64::from(hdr.e_phentsize);
    if hdr.e_phoff == 0 || size == 0 || size > MAX_PHDRS {
        return Vec::new();
    }
    let Some(raw) = read_at(src, len, hdr.e_phoff, size) else {
        return Vec::new();
    };
    let ctx = crate::elf::ctx(info.class, info.endian);
    let Ok(phdrs) = ProgramHeader::parse(&raw, 0, usize::from(hdr.e_phnum), ctx) else {
        return Vec::new();
    };
    let mut out: Vec<Vec<u8>> = Vec::new();
    // PT_GNU_PROPERTY first: it is the one glibc's loader reads.
    for want in [PT_GNU_PROPERTY, PT_NOTE] {
        for ph in phdrs.iter().filter(|p| p.p_type == want) {
            if let Some(b) = read_at(src, len, ph.p_offset, ph.p_filesz.min(MAX_NOTES)) {
                out.push(b);
            }
        }
    }
    out
}

/// The ISA_1_NEEDED bits in a block of notes.
fn isa_needed(raw: &[u8], endian: Endian, class: u8) -> Option<u32> {
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = raw.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(match endian {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        })
    };
    let align = if class == 64 { 8 } else { 4 };
    let pad = |n: usize, a: usize| n.checked_add(a - 1).map(|v| v & !(a - 1));
    let mut at = 0usize;
    while at.checked_add(12)? <= raw.len() {
        let namesz = u32_at(at)? as usize;
        let descsz = u32_at(at + 4)? as usize;
        let kind = u32_at(at + 8)?;
        let name_at = at + 12;
        let desc_at = name_at.checked_add(pad(namesz, 4)?)?;
        let desc_end = desc_at.checked_add(descsz)?;
        let name = raw.get(name_at..name_at.checked_add(namesz)?)?;
        if kind == NT_GNU_PROPERTY_TYPE_0 && name == b"GNU\0" {
            let desc = raw.get(desc_at..desc_end)?;
            let mut p = 0usize;
            while p + 8 <= desc.len() {
                let pr_type = u32_at(desc_at + p)?;
                let pr_size = u32_at(desc_at + p + 4)? as usize;
                if pr_type == GNU_PROPERTY_X86_ISA_1_NEEDED && pr_size >= 4 {
                    return u32_at(desc_at + p + 8);
                }
                p = p.checked_add(8)?.checked_add(pad(pr_size, align)?)?;
            }
        }
        // Property notes are 8-aligned in 64-bit files; others 4-aligned.
        let next = desc_at.checked_add(pad(descsz, if kind == 5 { align } else { 4 })?)?;
        if next <= at {
            return None;
        }
        at = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One `.note.gnu.property` as GNU ld writes it for `-z x86-64-v3`.
    fn note(bits: u32) -> Vec<u8> {
        let mut n = Vec::new();
        for v in [4u32, 16, 5] {
            n.extend_from_slice(&v.to_le_bytes());
        }
        n.extend_from_slice(b"GNU\0");
        n.extend_from_slice(&GNU_PROPERTY_X86_ISA_1_NEEDED.to_le_bytes());
        n.extend_from_slice(&4u32.to_le_bytes());
        n.extend_from_slice(&bits.to_le_bytes());
        n.extend_from_slice(&[0; 4]);
        n
    }

    #[test]
    fn the_needed_bits_are_found_and_damage_is_harmless() {
        assert_eq!(isa_needed(&note(4), Endian::Little, 64), Some(4));
        let full = note(8);
        for n in 0..full.len() {
            let _ = isa_needed(&full[..n], Endian::Little, 64);
        }
        let mut other = note(4);
        other[12..16].copy_from_slice(b"XYZ\0");
        assert_eq!(isa_needed(&other, Endian::Little, 64), None);
    }
}
