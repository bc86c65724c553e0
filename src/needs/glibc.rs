//! The baseline a glibc loader enforces. When glibc itself is compiled for more than its
//! architecture's baseline, its loader checks the CPU before it runs anything and stops
//! every program with a fatal error; the checks and their words are glibc's own:
//!
//! - x86-64 (`sysdeps/x86/dl-get-cpu-features.c`, `_dl_x86_init_cpu_features`, glibc 2.33
//!   and later): "Fatal glibc error: CPU does not support x86-64-v%d", compiled in for each
//!   level the compiler was told to use. The level is the format's argument, so the loader's
//!   own `GNU_PROPERTY_X86_ISA_1_NEEDED` mark names it (glibc marks its objects).
//! - ppc64le (`sysdeps/powerpc/powerpc64/le/dl-hwcap-check.h`): "CPU lacks ISA 3.00 support
//!   (POWER9 or later required)", "... ISA 3.10 support (POWER10 or later required)".
//! - s390x (`sysdeps/s390/s390-64/dl-hwcap-check.h`): "CPU lacks VXE support (z14 or later
//!   required)", "CPU lacks VXRS_EXT2 support (z15 or later required)".
//!
//! Measured here: Debian 12's loaders (libc6 2.36 for amd64, libc6-arm64-cross) hold none
//! of these messages (`debian_12s_own_loader_enforces_nothing`). Distributions that build
//! glibc for a higher baseline (RHEL 9 and its UBI images: x86-64-v2, POWER9, z14, by their
//! own documentation) are where users meet them.

use super::gnu_property;
use super::{Evidence, Source, level_mask};
use crate::elf::{ElfInfo, ReadAt};
use crate::probe::levels::{Family, power, s390x, x86};

/// Loaders are a few hundred KiB; no more than this is read.
pub const MAX_LOADER: usize = 8 << 20;

/// What the loader (its bytes, and its ELF identity) enforces, for the family of programs
/// it loads.
pub fn enforced(bytes: &[u8], info: &ElfInfo, family: &'static Family) -> Option<Evidence> {
    let has = |needle: &str| memmem(bytes, needle.as_bytes());
    let (level, said) = match family.arch {
        "amd64" if has("CPU does not support x86-64-v") => {
            let marked = gnu_property::x86_isa_needed(&bytes, bytes.len() as u64, info, family)
                .map(|e| e.mask)
                .unwrap_or(0);
            let level = [x86::V4, x86::V3, x86::V2]
                .into_iter()
                .find(|l| level_mask(family, l).is_some_and(|m| m & marked == m && m != 0))
                .unwrap_or(x86::V2);
            (level, "CPU does not support x86-64-v")
        }
        "ppc64le" if has("(POWER10 or later required)") => {
            (power::POWER10, "(POWER10 or later required)")
        }
        "ppc64le" if has("(POWER9 or later required)") => {
            (power::POWER9, "(POWER9 or later required)")
        }
        "s390x" if has("(z15 or later required)") => (s390x::Z15, "(z15 or later required)"),
        "s390x" if has("(z14 or later required)") => (s390x::Z14, "(z14 or later required)"),
        _ => return None,
    };
    Some(Evidence {
        source: Source::GlibcLoader,
        detail: format!("{level}: the loader says \"{said}\""),
        mask: level_mask(family, level)?,
    })
}

/// Read a loader's first [`MAX_LOADER`] bytes from `src`.
pub fn loader_bytes(src: &dyn ReadAt, len: u64) -> Option<Vec<u8>> {
    let n = usize::try_from(len).ok()?.min(MAX_LOADER);
    let mut buf = vec![0u8; n];
    src.read_exact_at(&mut buf, 0).ok()?;
    Some(buf)
}

fn memmem(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::levels::{power, s390x};

    fn info() -> ElfInfo {
        crate::elf::read_bytes(&crate::machine::testing::program("ppc64le")).expect("elf")
    }

    #[test]
    fn the_loaders_own_words_name_its_baseline() {
        let mut bytes = b"\x7fELF....".to_vec();
        bytes.extend_from_slice(
            b"Fatal glibc error: CPU lacks ISA 3.00 support (POWER9 or later required)\n\0",
        );
        let e = enforced(&bytes, &info(), &power::FAMILY).expect("power9");
        assert_eq!(
            e.mask,
            level_mask(&power::FAMILY, power::POWER9).expect("m")
        );
        assert!(enforced(b"nothing here", &info(), &power::FAMILY).is_none());
        let z = b"CPU lacks VXE support (z14 or later required)";
        let e = enforced(z, &info(), &s390x::FAMILY).expect("z14");
        assert!(e.detail.starts_with("z14"), "{e:?}");
    }

    #[test]
    fn debian_12s_own_loader_enforces_nothing() {
        let ld = std::fs::read("/lib64/ld-linux-x86-64.so.2").expect("loader");
        let info = crate::elf::read_bytes(&ld).expect("elf");
        assert_eq!(enforced(&ld, &info, &x86::FAMILY), None);
    }
}
