//! Build attributes: RISC-V's `Tag_RISCV_arch` (section type SHT_RISCV_ATTRIBUTES,
//! `.riscv.attributes`) and ARM's `Tag_CPU_arch` (`.ARM.attributes`, read by `elf`).
//!
//! Both sections share one layout (the ARM ABI's "build attributes", which the RISC-V psABI
//! adopted): `'A'`, then subsections of `u32 length, vendor NUL, sub-subsections`; a
//! sub-subsection is `uleb tag, u32 size, attributes`, and tag 1 (Tag_File) holds the
//! attributes for the whole file. RISC-V attributes with an odd tag are strings, even ones
//! ULEB128 numbers; `Tag_RISCV_arch` is 5.

use super::sections::Sections;
use super::{Evidence, Source, level_mask};
use crate::arch::Endian;
use crate::elf::{ElfInfo, file_attribute_blocks, uleb};
use crate::probe::levels::{Family, arm, riscv};

const SHT_RISCV_ATTRIBUTES: u32 = 0x7000_0003;
const TAG_RISCV_ARCH: u64 = 5;
const MAX_ATTRIBUTES: u64 = 64 * 1024;

/// `Tag_RISCV_arch` and what it needs.
pub fn riscv(sections: &Sections<'_>, family: &'static Family) -> Option<Evidence> {
    let data = sections.of_type(SHT_RISCV_ATTRIBUTES, MAX_ATTRIBUTES)?;
    let arch = file_attributes(&data, b"riscv", Endian::Little)
        .into_iter()
        .find_map(|(tag, value)| match value {
            Value::Text(s) if tag == TAG_RISCV_ARCH => Some(s),
            _ => None,
        })?;
    let mask = riscv_mask(&arch, family);
    Some(Evidence {
        source: Source::RiscvAttributes,
        detail: arch,
        mask,
    })
}

/// The checks of the riscv64 family an ISA string (`rv64i2p1_m2p0_…_v1p0`) needs.
pub fn riscv_mask(isa: &str, family: &Family) -> u32 {
    let bit = |check: &str| {
        family
            .checks
            .iter()
            .position(|c| *c == check)
            .map_or(0, |i| 1u32 << i)
    };
    let mut mask = 0;
    for ext in extensions(isa) {
        mask |= match ext.as_str() {
            "m" | "a" | "f" | "d" | "c" | "g" => bit(riscv::RV64GC),
            "zba" => bit(riscv::ZBA),
            "zbb" => bit(riscv::ZBB),
            "zbs" => bit(riscv::ZBS),
            "zicbom" | "zicboz" | "zfhmin" => bit(riscv::RVA22_REST),
            "v" => bit(riscv::V),
            e if e.starts_with("zve") => bit(riscv::V),
            "zicond" | "zfa" | "zcb" => bit(riscv::RVA23_REST),
            _ => 0,
        };
    }
    mask
}

/// The extensions an ISA string names, lower case, versions dropped: `rv64imac` and
/// `rv64i2p1_m2p0_a2p1_c2p0_zba1p0` both give `i m a c` (and `zba`).
pub fn extensions(isa: &str) -> Vec<String> {
    let isa = isa.to_ascii_lowercase();
    let mut out = Vec::new();
    for (n, token) in isa.split('_').enumerate() {
        let token = if n == 0 {
            let Some(rest) = token
                .strip_prefix("rv64")
                .or_else(|| token.strip_prefix("rv32"))
            else {
                return out;
            };
            rest
        } else {
            token
        };
        if token.len() > 1 && matches!(token.as_bytes()[0], b'z' | b's' | b'x') {
            out.push(without_version(token).to_string());
            continue;
        }
        // Single letters, each with an optional version (`i2p1m2p0`, `imafdc`).
        let mut chars = token.chars().peekable();
        while let Some(c) = chars.next() {
            if c.is_ascii_alphabetic() {
                out.push(c.to_string());
                while chars
                    .peek()
                    .is_some_and(|d| d.is_ascii_digit() || *d == 'p')
                {
                    chars.next();
                }
            }
        }
    }
    out
}

/// `zba1p0` → `zba`.
fn without_version(token: &str) -> &str {
    let trimmed = token.trim_end_matches(|c: char| c.is_ascii_digit());
    match trimmed.strip_suffix('p') {
        Some(t) if t.ends_with(|c: char| c.is_ascii_digit()) => {
            t.trim_end_matches(|c: char| c.is_ascii_digit())
        }
        _ => trimmed,
    }
}

/// `Tag_CPU_arch` of a 32-bit ARM program, as the arm family's level it needs.
pub fn arm(info: &ElfInfo, family: &'static Family) -> Option<Evidence> {
    let cpu = info.arm_cpu_arch?;
    // Tag_CPU_arch values (ARM ABI addenda): 0-5 up to v5TEJ, 6-9 v6 kinds, 10 v7, 11 v6-M,
    // 12 v6S-M, 13 v7E-M, 14 and later v8 and up.
    let level = match cpu {
        0..=5 => arm::V5,
        6..=9 | 11 | 12 => arm::V6,
        10 | 13 => arm::V7,
        _ => arm::V8,
    };
    Some(Evidence {
        source: Source::ArmAttributes,
        detail: format!("Tag_CPU_arch {cpu} ({level})"),
        mask: level_mask(family, level)?,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Number(u64),
    Text(String),
}

/// The Tag_File attributes of `vendor`'s subsection, in order. RISC-V's rule for which
/// tags hold strings (odd ones) is used; ARM is read by `elf`.
pub fn file_attributes(data: &[u8], vendor: &[u8], endian: Endian) -> Vec<(u64, Value)> {
    let mut out = Vec::new();
    for block in file_attribute_blocks(data, vendor, endian) {
        attrs(block, &mut out);
    }
    out
}

fn attrs(mut d: &[u8], out: &mut Vec<(u64, Value)>) {
    while let Some((tag, n)) = uleb(d) {
        d = &d[n..];
        if tag % 2 == 1 {
            let Some(end) = d.iter().position(|&b| b == 0) else {
                return;
            };
            out.push((
                tag,
                Value::Text(String::from_utf8_lossy(&d[..end]).into_owned()),
            ));
            d = &d[end + 1..];
        } else {
            let Some((v, n)) = uleb(d) else { return };
            out.push((tag, Value::Number(v)));
            d = &d[n..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `.riscv.attributes` section as LLVM writes it.
    pub(crate) fn section(arch: &str) -> Vec<u8> {
        let mut attrs = vec![4u8, 16, 5];
        attrs.extend_from_slice(arch.as_bytes());
        attrs.push(0);
        crate::elf::attributes_section(b"riscv\0", &attrs)
    }

    #[test]
    fn isa_strings_name_their_extensions() {
        assert_eq!(extensions("rv64imac"), ["i", "m", "a", "c"]);
        assert_eq!(
            extensions("rv64i2p1_m2p0_a2p1_c2p0_zba1p0_zve64d1p0_v1p0"),
            ["i", "m", "a", "c", "zba", "zve64d", "v"]
        );
        assert!(extensions("armv7").is_empty());
        let f = &riscv::FAMILY;
        assert_eq!(riscv_mask("rv64i2p1", f), 0);
        assert_eq!(riscv_mask("rv64gc", f), 0b1);
        assert_eq!(riscv_mask("rv64gcv", f), 0b10_0001);
        assert_eq!(riscv_mask("rv64i_zbb1p0_zicbom1p0", f), 0b1_0100);
    }

    #[test]
    fn the_arch_tag_is_read_and_truncations_are_harmless() {
        let s = section("rv64i2p1_m2p0_v1p0");
        let attrs = file_attributes(&s, b"riscv", Endian::Little);
        assert_eq!(
            attrs,
            [
                (4, Value::Number(16)),
                (5, Value::Text("rv64i2p1_m2p0_v1p0".into()))
            ]
        );
        for n in 0..s.len() {
            let _ = file_attributes(&s[..n], b"riscv", Endian::Little);
        }
        assert!(file_attributes(&s, b"aeabi", Endian::Little).is_empty());
    }
}
