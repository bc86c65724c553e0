//! Go's build information: the Go linker writes a `.go.buildinfo` section that starts with a
//! 32-byte header, `"\xff Go buildinf:"` (14 bytes), the pointer size, and a flags byte. Since
//! Go 1.18 flag 2 is set and the two strings follow the header inline, each as a varint
//! length and bytes: the Go version, then the module information, whose `build\tKEY=VALUE`
//! lines hold the build settings (`GOAMD64=v3`, `GOARM=7`, ...). The module text is framed by
//! 16 sentinel bytes at each end. (Go's `src/debug/buildinfo/buildinfo.go`,
//! `readRawBuildInfo`, and `src/runtime/debug/mod.go`, `BuildInfo.String`.) Older binaries
//! hold pointers instead of inline strings; they predate the settings and are skipped.

use super::sections::Sections;
use super::{Evidence, Source, level_mask};
use crate::elf::uleb;
use crate::probe::levels::{Family, aarch64, arm, power, riscv, x86};

const MAGIC: &[u8] = b"\xff Go buildinf:";
const HEADER: usize = 32;
const FLAG_INLINE: u8 = 2;
const MAX_BUILDINFO: u64 = 1 << 20;

/// The build setting of `arch`'s level (`GOAMD64`, …) and the level it names.
pub fn buildinfo(sections: &Sections<'_>, arch: &str, family: &'static Family) -> Option<Evidence> {
    let data = sections.named(".go.buildinfo", MAX_BUILDINFO)?;
    let settings = settings(&data)?;
    let key = match arch {
        "amd64" => "GOAMD64",
        "arm" => "GOARM",
        "arm64" => "GOARM64",
        "ppc64le" => "GOPPC64",
        "riscv64" => "GORISCV64",
        _ => return None,
    };
    let value = settings
        .iter()
        .find_map(|(k, v)| (k == key).then_some(v.as_str()))?;
    let level = level_of(arch, value)?;
    Some(Evidence {
        source: Source::GoBuildinfo,
        detail: format!("{key}={value}"),
        mask: level_mask(family, level)?,
    })
}

/// The family level a Go setting names: `v3` → x86-64-v3, `7` (or `7,softfloat`) → v7,
/// `power9`, `rva22u64`, `v8.2`.
fn level_of(arch: &str, value: &str) -> Option<&'static str> {
    let value = value.split(',').next()?;
    Some(match (arch, value) {
        ("amd64", "v1") => x86::V1,
        ("amd64", "v2") => x86::V2,
        ("amd64", "v3") => x86::V3,
        ("amd64", "v4") => x86::V4,
        ("arm", "5") => arm::V5,
        ("arm", "6") => arm::V6,
        ("arm", "7") => arm::V7,
        ("arm64", "v8.0") => aarch64::V8_0,
        ("arm64", "v8.1") => aarch64::V8_1,
        ("arm64", "v8.2") => aarch64::V8_2,
        ("arm64", "v8.3") => aarch64::V8_3,
        ("arm64", "v8.4") => aarch64::V8_4,
        ("arm64", "v8.5") => aarch64::V8_5,
        ("arm64", "v9.0") => aarch64::V9_0,
        ("ppc64le", "power8") => power::POWER8,
        ("ppc64le", "power9") => power::POWER9,
        ("ppc64le", "power10") => power::POWER10,
        ("riscv64", "rva20u64") => riscv::RVA20U64,
        ("riscv64", "rva22u64") => riscv::RVA22U64,
        ("riscv64", "rva23u64") => riscv::RVA23U64,
        _ => return None,
    })
}

/// The `build` settings of a `.go.buildinfo` blob, in order; `None` when it is not one Go
/// 1.18 or later wrote.
pub fn settings(data: &[u8]) -> Option<Vec<(String, String)>> {
    let start = (0..data.len().saturating_sub(HEADER))
        .step_by(16)
        .find(|&i| data[i..].starts_with(MAGIC))?;
    let blob = &data[start..];
    if blob.get(15)? & FLAG_INLINE == 0 {
        return None;
    }
    let mut at = HEADER;
    let (_version, next) = string(blob, at)?;
    at = next;
    let (module, _) = string(blob, at)?;
    // 16 sentinel bytes frame the text; the lines are plain either way.
    let text = String::from_utf8_lossy(module);
    Some(
        text.lines()
            .filter_map(|l| l.strip_prefix("build\t"))
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// A varint-prefixed string at `at`, and where the next one starts.
fn string(blob: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let (len, n) = uleb(blob.get(at..)?)?;
    let start = at.checked_add(n)?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    Some((blob.get(start..end)?, end))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A `.go.buildinfo` section as Go 1.18+ writes it (inline strings).
    pub(crate) fn blob(settings: &[&str]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.push(8);
        out.push(FLAG_INLINE);
        out.resize(HEADER, 0);
        let version = b"go1.19.8";
        out.push(version.len() as u8);
        out.extend_from_slice(version);
        let mut module = vec![0x30u8; 16];
        module.extend_from_slice(b"path\tcommand-line-arguments\n");
        for s in settings {
            module.extend_from_slice(format!("build\t{s}\n").as_bytes());
        }
        module.extend_from_slice(&[0xf9; 16]);
        let mut n = module.len();
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
        out.extend_from_slice(&module);
        out
    }

    #[test]
    fn settings_are_read_and_damage_is_harmless() {
        let b = blob(&["-compiler=gc", "GOARCH=amd64", "GOAMD64=v3"]);
        let s = settings(&b).expect("settings");
        assert!(s.contains(&("GOAMD64".into(), "v3".into())), "{s:?}");
        for n in 0..b.len() {
            let _ = settings(&b[..n]);
        }
        let mut old = b.clone();
        old[15] = 0;
        assert_eq!(settings(&old), None);
        assert_eq!(level_of("arm", "7,softfloat"), Some(arm::V7));
        assert_eq!(level_of("amd64", "v5"), None);
    }
}
