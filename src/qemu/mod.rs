//! QEMU as the interpreter behind a handler: which version it is, the CPU models it offers
//! and the one it picks without `QEMU_CPU`, and what is known to go wrong with some versions.
//!
//! The facts are the emulator's own answers, asked the way `test` runs its probes (`ask`):
//! the kernel starts the handler's interpreter for a probe in an empty chroot, with
//! `QEMU_VERSION=1` or `QEMU_CPU=help` in the environment (QEMU reads its options from the
//! environment too, and those two print and exit before the program is loaded). This module
//! reads those answers; `known` holds the table of known-bad versions.

pub mod ask;
pub mod cpus;
pub mod known;

use std::fmt;

use serde::Serialize;

/// A QEMU release number: `7.2.22`, `9.2.2`, `10.0.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub micro: u32,
}

impl Version {
    /// `7.2.22` or `7.2` (micro 0). Anything after the numbers (`-rc1`) is ignored; the
    /// numbers themselves must be plain decimal.
    pub fn parse(text: &str) -> Option<Version> {
        let numeric = text
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .next()?;
        let mut parts = numeric.split('.');
        let number = |p: Option<&str>| -> Option<u32> {
            let p = p?;
            (!p.is_empty() && p.len() <= 9).then(|| p.parse().ok())?
        };
        let major = number(parts.next())?;
        let minor = number(parts.next())?;
        let micro = match parts.next() {
            None => 0,
            some => number(some)?,
        };
        parts.next().is_none().then_some(Version {
            major,
            minor,
            micro,
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

/// What `QEMU_VERSION=1` (or `-version`) printed, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Banner {
    /// The emulator's own name, `qemu-<target>` (`qemu-aarch64`): QEMU prints its target's
    /// name, not the file's (Debian's 35 emulators all print `qemu-<cpu>`, measured).
    pub program: String,
    pub version: Version,
    /// What the build calls itself after the number, without the parentheses: Debian's
    /// package version (`Debian 1:7.2+dfsg-7+deb12u18+b3`), a git description; `None` for a
    /// plain upstream build.
    pub package: Option<String>,
}

/// Read QEMU's version banner. Debian's qemu-user-static 7.2 prints, for `-version` and for
/// `QEMU_VERSION=1` alike (measured; exit status 0):
///
/// ```text
/// qemu-aarch64 version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)
/// Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers
/// ```
///
/// `None` when the first line is not of that form (an interpreter that is not QEMU ran the
/// probe instead, and printed the probe's output).
pub fn parse_banner(stdout: &str) -> Option<Banner> {
    let line = stdout.lines().next()?.trim();
    let (name, rest) = line.split_once(" version ")?;
    if !name.starts_with("qemu") || name.contains(char::is_whitespace) {
        return None;
    }
    let rest = rest.trim();
    let (number, tail) = match rest.find(char::is_whitespace) {
        Some(i) => (&rest[..i], rest[i..].trim()),
        None => (rest, ""),
    };
    let version = Version::parse(number)?;
    let package = tail
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    Some(Banner {
        program: name.to_string(),
        version,
        package,
    })
}

/// The CPU model QEMU's user mode picks when `QEMU_CPU` is not set, for the versions this
/// project measured. It is the name QEMU's `cpu_get_model` returns in that release's
/// `linux-user/<target>/target_elf.h`: `max` for x86 since the 7.2 change "linux-user: use
/// 'max' instead of 'qemu32' / 'qemu64' by default" (pulled for 7.2 in September 2022),
/// `POWER9` for 64-bit POWER since 2019, `any` for Arm and for RISC-V (until 8.1 made it
/// `max`), `qemu` for s390x. The unit test `defaults_behave_like_their_model` runs each level
/// probe with and without the name and finds the same levels. `None` for other versions and
/// for targets whose default depends on the program's ELF flags (MIPS, m68k).
pub fn default_cpu(arch: &str, version: Version) -> Option<&'static str> {
    if (version.major, version.minor) != (7, 2) {
        return None;
    }
    Some(match arch {
        "amd64" | "386" => "max",
        "arm64" | "arm" => "any",
        "ppc64le" | "ppc64" => "POWER9",
        "s390x" => "qemu",
        "riscv64" => "any",
        _ => return None,
    })
}

/// What is known about the interpreter behind one handler, as JSON shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Facts {
    /// `7.2.22`; `null` when the interpreter did not answer as QEMU does.
    pub qemu_version: Option<String>,
    /// The build's own name for itself (`Debian 1:7.2+dfsg-7+deb12u18+b3`).
    pub qemu_package: Option<String>,
    /// Every name `QEMU_CPU` accepts, as `-cpu help` lists them (aliases included).
    pub cpu_models: Vec<String>,
    /// The model it runs without `QEMU_CPU` (see [`default_cpu`]).
    pub cpu_default: Option<String>,
    /// Rows of the known-issue table this version falls in.
    pub known_issues: Vec<known::Warning>,
}

#[cfg(test)]
mod tests;
