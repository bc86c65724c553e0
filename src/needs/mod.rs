//! What a program needs of its CPU beyond its architecture's baseline, and where that was
//! learnt. Each source is a record a toolchain or a library leaves in the file:
//!
//! - `gnu_property`: x86's `GNU_PROPERTY_X86_ISA_1_NEEDED` in `.note.gnu.property`
//!   (PT_GNU_PROPERTY or a PT_NOTE), written by GNU ld (`-z x86-64-v3`) or by GNU as
//!   (`-mx86-used-note=yes`); glibc's loader refuses a dynamically linked object whose mark
//!   exceeds the CPU ("CPU ISA level is lower than required").
//! - `riscv_attributes`: `Tag_RISCV_arch` in `.riscv.attributes`, the extensions the
//!   compiler was told to use (`-march=rv64gcv`).
//! - `arm_attributes`: `Tag_CPU_arch` in `.ARM.attributes`.
//! - `go_buildinfo`: the build settings Go (1.18 and later) records in `.go.buildinfo`:
//!   `GOAMD64`, `GOARM`, `GOARM64`, `GOPPC64`, `GORISCV64`.
//! - `glibc_loader`: the check glibc compiles into its loader when glibc itself is built for
//!   a higher baseline (RHEL 9 builds for x86-64-v2): it stops every program with "Fatal
//!   glibc error: CPU does not support x86-64-v2" and the like (see [`glibc`]).
//!
//! Levels and checks are those of the level probes (`probe::levels`), so a need compares
//! directly with what a probe proved: a program runs when every check it needs ran.

pub mod attributes;
pub mod glibc;
pub mod gnu_property;
pub mod go;
mod sections;

use serde::Serialize;

use crate::elf::{ElfInfo, ReadAt};
use crate::probe::levels::{self, Family, Found};

/// Where a need was learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    GnuProperty,
    RiscvAttributes,
    ArmAttributes,
    GoBuildinfo,
    GlibcLoader,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::GnuProperty => "gnu_property",
            Source::RiscvAttributes => "riscv_attributes",
            Source::ArmAttributes => "arm_attributes",
            Source::GoBuildinfo => "go_buildinfo",
            Source::GlibcLoader => "glibc_loader",
        }
    }
}

/// One record and what it asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    pub source: Source,
    /// The record as the file holds it: `x86-64-v4`, `rv64i2p1_m2p0_…_v1p0`, `GOAMD64=v3`.
    pub detail: String,
    /// The checks of the family's level probe this record needs (bit i: check i).
    #[serde(skip)]
    pub mask: u32,
}

/// Everything a program was found to need. JSON: `{level, extra, evidence: [{source,
/// detail}]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Needs {
    /// The highest level of the family every check of which is needed.
    pub level: Option<&'static str>,
    /// Checks needed beyond that level (`v`: RISC-V vectors).
    pub extra: Vec<&'static str>,
    pub evidence: Vec<Evidence>,
    /// The level-probe family (`amd64`, `riscv64`, …).
    #[serde(skip)]
    pub family: &'static Family,
    /// Every check needed, as a probe's mask.
    #[serde(skip)]
    pub mask: u32,
}

impl Needs {
    /// Gather evidence into needs; `None` when there is none.
    pub fn from_evidence(family: &'static Family, evidence: Vec<Evidence>) -> Option<Needs> {
        if evidence.is_empty() {
            return None;
        }
        let mask = evidence.iter().fold(0, |m, e| m | e.mask);
        let level = family
            .levels
            .iter()
            .take_while(|l| l.needs & mask == l.needs)
            .last();
        let covered = level.map_or(0, |l| l.needs);
        let extra = names(family, mask & !covered);
        Some(Needs {
            level: level.map(|l| l.name),
            extra,
            evidence,
            family,
            mask,
        })
    }

    /// Add the evidence of another record (the loader's, found separately).
    pub fn with(self, more: Evidence) -> Needs {
        let mut evidence = self.evidence;
        evidence.push(more);
        Needs::from_evidence(self.family, evidence).expect("not empty")
    }

    /// What it needs, in words: `x86-64-v4`, `rva20u64 + v`.
    pub fn describe(&self) -> String {
        let mut parts: Vec<&str> = self.level.into_iter().collect();
        parts.extend(self.extra.iter().copied());
        if parts.is_empty() {
            parts.push("its baseline");
        }
        parts.join(" + ")
    }

    /// Where it was learnt, in words: `GNU_PROPERTY_X86_ISA_1_NEEDED x86-64-v4`.
    pub fn sources(&self) -> String {
        self.evidence
            .iter()
            .map(|e| format!("{} {}", e.source.as_str(), e.detail))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The checks it needs that a probe's run did not prove, by name.
    pub fn missing(&self, found: &Found) -> Vec<&'static str> {
        names(self.family, self.mask & !found.mask)
    }
}

/// The names of the checks in `mask`, lowest bit first.
pub fn names(family: &Family, mask: u32) -> Vec<&'static str> {
    family
        .checks
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// The mask a named level of `family` needs.
pub(crate) fn level_mask(family: &Family, level: &str) -> Option<u32> {
    family.level(level).map(|l| l.needs)
}

/// The needs an ELF program records about itself (every source but the loader's). `arch` is
/// the arch table's name for it.
pub fn of_program(src: &dyn ReadAt, len: u64, info: &ElfInfo, arch: &str) -> Option<Needs> {
    let family = levels::FAMILIES.iter().copied().find(|f| f.arch == arch)?;
    let mut evidence = Vec::new();
    let secs = sections::Sections::read(src, len, info);
    match arch {
        "amd64" => evidence.extend(gnu_property::x86_isa_needed(src, len, info, family)),
        "riscv64" => {
            if let Some(s) = &secs {
                evidence.extend(attributes::riscv(s, family));
            }
        }
        "arm" => evidence.extend(attributes::arm(info, family)),
        _ => {}
    }
    if let Some(s) = &secs {
        evidence.extend(go::buildinfo(s, arch, family));
    }
    Needs::from_evidence(family, evidence)
}

/// The family of levels for an arch table name.
pub fn family(arch: &str) -> Option<&'static Family> {
    levels::FAMILIES.iter().copied().find(|f| f.arch == arch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::levels::{riscv, x86};

    #[test]
    fn evidence_folds_into_a_level_and_extras() {
        let f = &riscv::FAMILY;
        let ev = Evidence {
            source: Source::RiscvAttributes,
            detail: "rv64gcv".into(),
            mask: 0b10_0001,
        };
        let n = Needs::from_evidence(f, vec![ev]).expect("needs");
        assert_eq!((n.level, n.extra.clone()), (Some("rva20u64"), vec!["v"]));
        assert_eq!(n.describe(), "rva20u64 + v");
        let default_qemu = f.decode(100 + 0b1111).expect("decodes");
        assert_eq!(n.missing(&default_qemu), vec!["v"]);
        let with_v = f.decode(100 + 0b10_1111).expect("decodes");
        assert!(n.missing(&with_v).is_empty());

        let x = &x86::FAMILY;
        let n = Needs::from_evidence(
            x,
            vec![Evidence {
                source: Source::GoBuildinfo,
                detail: "GOAMD64=v3".into(),
                mask: level_mask(x, x86::V3).expect("v3"),
            }],
        )
        .expect("needs");
        assert_eq!((n.level, n.extra.len()), (Some(x86::V3), 0));
        assert!(Needs::from_evidence(x, Vec::new()).is_none());
    }
}
