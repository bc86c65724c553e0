//! The architecture table: names, platforms, ELF identity and QEMU's binfmt_misc rule per arch.
//!
//! The table is `configs/arches.toml`, embedded at build time and replaceable with
//! `--arch-table FILE`. Everything that needs to know about an architecture asks this module,
//! so no other code guesses `qemu-{ARCH}` names or magic bytes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::rule::{MagicRule, check_entry_name};

/// A table is a few KiB; a file much larger is not one (and is not read whole).
const MAX_TABLE_BYTES: usize = 1 << 20;

/// The table shipped inside the binary.
pub const EMBEDDED_TABLE: &str = include_str!("../../configs/arches.toml");

/// Byte order of an ELF file or rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Endian {
    Little,
    Big,
}

impl Endian {
    pub fn as_str(self) -> &'static str {
        match self {
            Endian::Little => "little",
            Endian::Big => "big",
        }
    }
}

/// One architecture as the TOML file spells it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArch {
    name: String,
    qemu: String,
    platform: String,
    #[serde(default)]
    variants: Vec<String>,
    #[serde(default)]
    debian: Option<String>,
    #[serde(default)]
    aliases: Vec<String>,
    class: u8,
    endian: Endian,
    machine: Vec<u16>,
    flags: u32,
    family: String,
    magic: String,
    mask: String,
    #[serde(default)]
    compat_on: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    arch: Vec<RawArch>,
}

/// One architecture, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arch {
    /// Canonical name: Docker/OCI's where it has one, else QEMU's.
    pub name: String,
    /// QEMU user-mode cpu name; `None` when QEMU cannot emulate it.
    pub qemu: Option<String>,
    /// OCI platform without variant, e.g. `linux/arm`.
    pub platform: String,
    /// OCI variants served (arm), most common first.
    pub variants: Vec<String>,
    pub debian: Option<String>,
    pub aliases: Vec<String>,
    pub class: u8,
    pub endian: Endian,
    /// e_machine values; the first is the one the rule matches.
    pub machine: Vec<u16>,
    /// e_flags of a typical binary of this arch.
    pub flags: u32,
    pub family: String,
    /// QEMU's binfmt_misc rule for this arch's programs, at offset 0.
    pub rule: MagicRule,
    /// Canonical names of arches whose kernels may run this one without emulation.
    pub compat_on: Vec<String>,
}

impl Arch {
    /// The binfmt_misc entry name QEMU, Debian and tonistiigi/binfmt all use: `qemu-<cpu>`.
    pub fn entry_name(&self) -> Option<String> {
        self.qemu.as_ref().map(|q| format!("qemu-{q}"))
    }

    /// The platform string with the default variant (`linux/arm/v7` for arm).
    pub fn default_platform(&self) -> String {
        match self.variants.first() {
            Some(v) => format!("{}/{}", self.platform, v),
            None => self.platform.clone(),
        }
    }

    /// Every platform string this arch serves (`linux/arm/v7`, `linux/arm/v6`, …).
    pub fn platforms(&self) -> Vec<String> {
        if self.variants.is_empty() {
            vec![self.platform.clone()]
        } else {
            self.variants
                .iter()
                .map(|v| format!("{}/{}", self.platform, v))
                .collect()
        }
    }

    /// Whether this arch's rule takes a file starting with `header` (see [`MagicRule::matches`]).
    pub fn matches(&self, header: &[u8]) -> bool {
        self.rule.matches(header)
    }

    /// The variant a name asks for, when it names one: `linux/arm/v6` → v6, and the aliases
    /// that imply one (`armel` is v5, `armhf` v7). `None` for a bare `arm` or `linux/arm`.
    pub fn variant_named(&self, name: &str) -> Option<String> {
        let lower = name.trim().to_ascii_lowercase();
        if let Some(v) = self
            .variants
            .iter()
            .find(|v| lower.ends_with(&format!("/{v}")))
        {
            return Some(v.clone());
        }
        let bare = lower.rsplit('/').next().unwrap_or(&lower);
        let implied = match bare {
            "armel" | "armv5" | "armv5l" | "armv5te" | "armv5tel" => "v5",
            "armv6" | "armv6l" => "v6",
            "armhf" | "armv7" | "armv7l" | "armv7a" => "v7",
            "armv8l" | "aarch32" => "v8",
            _ => return None,
        };
        self.variants
            .iter()
            .any(|v| v == implied)
            .then(|| implied.to_string())
    }

    /// Every name this arch answers to, lower-case.
    fn names(&self) -> impl Iterator<Item = String> + '_ {
        let mut names = vec![self.name.clone(), self.platform.clone()];
        names.extend(self.platforms());
        names.extend(self.qemu.iter().cloned());
        names.extend(self.debian.iter().cloned());
        names.extend(self.aliases.iter().cloned());
        names.into_iter().map(|n| n.to_ascii_lowercase())
    }
}

/// Errors from loading the table or resolving names.
#[derive(Debug, thiserror::Error)]
pub enum ArchError {
    #[error("unknown architecture '{name}'; known names: {known}")]
    Unknown { name: String, known: String },
    #[error("cannot read architecture table {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("architecture table {origin} is not valid: {message}")]
    Invalid { origin: String, message: String },
    #[error("'{item}' takes an architecture away, so something must come before it (all,{item})")]
    Exclusion { item: String },
}

impl crate::error::Classify for ArchError {
    /// A name, a list or a table the user gave: always the input's fault.
    fn class(&self) -> crate::error::Class {
        crate::error::Class::BadInput
    }
}

/// The loaded table.
#[derive(Debug, Clone)]
pub struct ArchTable {
    arches: Vec<Arch>,
}

impl ArchTable {
    /// The table embedded in the binary, parsed once per process.
    pub fn embedded() -> ArchTable {
        static PARSED: std::sync::OnceLock<ArchTable> = std::sync::OnceLock::new();
        PARSED
            .get_or_init(|| {
                // The embedded table is checked by unit tests, so failing here is a build
                // defect.
                Self::parse(EMBEDDED_TABLE, "embedded arches.toml")
                    .unwrap_or_else(|e| panic!("embedded architecture table is broken: {e}"))
            })
            .clone()
    }

    /// The embedded table, or the file given with `--arch-table`.
    pub fn load(path: Option<&Path>) -> Result<ArchTable, ArchError> {
        match path {
            None => Ok(Self::embedded()),
            Some(path) => {
                let text =
                    crate::fileio::read_text(path, crate::fileio::Follow::Yes, MAX_TABLE_BYTES)
                        .map_err(|e| ArchError::Read {
                            path: path.to_path_buf(),
                            source: match e {
                                crate::fileio::OpenError::Io(e) => e,
                                other => std::io::Error::other(other.to_string()),
                            },
                        })?;
                Self::parse(&text, &path.display().to_string())
            }
        }
    }

    /// Parse and validate a table. `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<ArchTable, ArchError> {
        let invalid = |message: String| ArchError::Invalid {
            origin: origin.to_string(),
            message,
        };
        let raw: RawTable =
            toml::from_str(text).map_err(|e| invalid(crate::error::toml_error(text, &e)))?;
        let mut arches = Vec::with_capacity(raw.arch.len());
        for r in raw.arch {
            let what = |m: &str| invalid(format!("arch '{}': {m}", r.name));
            let rule = MagicRule::from_hex(&r.magic, &r.mask).map_err(|e| what(&e.0))?;
            if r.class != 32 && r.class != 64 {
                return Err(what("class must be 32 or 64"));
            }
            if r.machine.is_empty() {
                return Err(what("machine needs at least one e_machine value"));
            }
            if r.name.is_empty() || r.name.contains(['/', ',', ' ']) {
                return Err(what("name must be non-empty, without '/', ',' or spaces"));
            }
            if !r.platform.starts_with("linux/") {
                return Err(what("platform must start with 'linux/'"));
            }
            if !r
                .qemu
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(what("qemu must be letters, digits and '_'"));
            }
            // The entry is named qemu-<qemu>: it must fit the kernel's name limit.
            if !r.qemu.is_empty() {
                check_entry_name(&format!("qemu-{}", r.qemu))
                    .map_err(|e| what(&format!("qemu: {e}")))?;
            }
            arches.push(Arch {
                qemu: (!r.qemu.is_empty()).then_some(r.qemu),
                name: r.name,
                platform: r.platform,
                variants: r.variants,
                debian: r.debian,
                aliases: r.aliases,
                class: r.class,
                endian: r.endian,
                machine: r.machine,
                flags: r.flags,
                family: r.family,
                rule,
                compat_on: r.compat_on,
            });
        }
        let table = ArchTable { arches };
        table.check_names().map_err(invalid)?;
        Ok(table)
    }

    /// No name may point at two arches, and `compat_on` must name arches in the table.
    fn check_names(&self) -> Result<(), String> {
        let mut seen = std::collections::HashMap::new();
        for a in &self.arches {
            let mut own = BTreeSet::new();
            for n in a.names() {
                if !own.insert(n.clone()) {
                    continue;
                }
                if let Some(other) = seen.insert(n.clone(), a.name.clone()) {
                    return Err(format!(
                        "name '{n}' is used by both '{other}' and '{}'",
                        a.name
                    ));
                }
            }
        }
        for a in &self.arches {
            for c in &a.compat_on {
                if self.by_canonical(c).is_none() {
                    return Err(format!(
                        "arch '{}': compat_on names unknown arch '{c}'",
                        a.name
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arch> {
        self.arches.iter()
    }

    pub fn len(&self) -> usize {
        self.arches.len()
    }

    pub fn is_empty(&self) -> bool {
        self.arches.is_empty()
    }

    fn by_canonical(&self, name: &str) -> Option<&Arch> {
        self.arches.iter().find(|a| a.name == name)
    }

    /// Resolve any accepted spelling: canonical, QEMU, Debian, alias, `linux/…` platform,
    /// or a `qemu-<cpu>` entry name. Case-insensitive.
    pub fn lookup(&self, name: &str) -> Result<&Arch, ArchError> {
        self.find(name).ok_or_else(|| ArchError::Unknown {
            name: name.to_string(),
            known: self.known_names(),
        })
    }

    /// Like [`lookup`](Self::lookup) without the error.
    pub fn find(&self, name: &str) -> Option<&Arch> {
        let wanted = name.trim().to_ascii_lowercase();
        let wanted = wanted.strip_prefix("qemu-").unwrap_or(&wanted);
        let bare = wanted.strip_prefix("linux/").unwrap_or(wanted);
        self.arches
            .iter()
            .find(|a| a.names().any(|n| n == wanted || n == bare))
    }

    /// The architecture an interpreter is QEMU for, by its file name: `qemu-<cpu>` or
    /// `qemu-<cpu>-static` (`/usr/bin/qemu-x86_64-static` → amd64). `None` when the name says
    /// nothing (a wrapper, another emulator).
    pub fn by_interpreter(&self, interpreter: &str) -> Option<&Arch> {
        let file = interpreter.rsplit('/').next()?;
        let cpu = file.strip_prefix("qemu-")?;
        let cpu = cpu.strip_suffix("-static").unwrap_or(cpu);
        self.arches.iter().find(|a| a.qemu.as_deref() == Some(cpu))
    }

    /// Resolve a comma-separated list, or `all` (every arch QEMU can emulate).
    pub fn lookup_list(&self, list: &str) -> Result<Vec<&Arch>, ArchError> {
        self.select(list.split(',')).map_err(|(_, e)| match e {
            ArchError::Unknown { name, known } if name.is_empty() => ArchError::Unknown {
                name: list.to_string(),
                known,
            },
            e => e,
        })
    }

    /// The arches a list of items asks for, in order: a name adds its arch, `all` every
    /// arch QEMU can emulate, and `-NAME` takes one away from what came before
    /// (`all,-riscv64`). The error carries the index of the item at fault.
    pub fn select<'i>(
        &self,
        items: impl IntoIterator<Item = &'i str>,
    ) -> Result<Vec<&Arch>, (usize, ArchError)> {
        let mut out: Vec<&Arch> = Vec::new();
        let mut last = 0;
        for (i, item) in items.into_iter().enumerate() {
            last = i;
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            if item.eq_ignore_ascii_case("all") {
                for a in self.arches.iter().filter(|a| a.qemu.is_some()) {
                    if !out.iter().any(|o| o.name == a.name) {
                        out.push(a);
                    }
                }
            } else if let Some(name) = item.strip_prefix('-') {
                let arch = self.lookup(name).map_err(|e| (i, e))?;
                if out.is_empty() {
                    return Err((
                        i,
                        ArchError::Exclusion {
                            item: item.to_string(),
                        },
                    ));
                }
                out.retain(|a| a.name != arch.name);
            } else {
                let arch = self.lookup(item).map_err(|e| (i, e))?;
                if !out.iter().any(|a| a.name == arch.name) {
                    out.push(arch);
                }
            }
        }
        if out.is_empty() {
            return Err((
                last,
                ArchError::Unknown {
                    name: String::new(),
                    known: self.known_names(),
                },
            ));
        }
        Ok(out)
    }

    /// Whether a list (`--arch`, or the config's items joined) asks for `all`: an arch
    /// without an interpreter is then skipped rather than an error.
    pub fn mentions_all<'i>(items: impl IntoIterator<Item = &'i str>) -> bool {
        items
            .into_iter()
            .any(|i| i.trim().eq_ignore_ascii_case("all"))
    }

    /// The canonical names, for error messages.
    pub fn known_names(&self) -> String {
        let names: Vec<&str> = self.arches.iter().map(|a| a.name.as_str()).collect();
        format!(
            "{} (or their QEMU/Debian names, e.g. aarch64, armhf, ppc64el, or linux/… platforms)",
            names.join(", ")
        )
    }

    /// The arch whose rule matches an ELF header, if any.
    pub fn match_header(&self, header: &[u8]) -> Option<&Arch> {
        self.arches.iter().find(|a| a.matches(header))
    }

    /// The arch for an ELF identity (class, byte order, e_machine, e_flags), independent of
    /// the rule's extra conditions. Used by `inspect`, which must name files the rules do not
    /// match (e_type other than EXEC/DYN, unusual OSABI bytes).
    pub fn by_identity(
        &self,
        class: u8,
        endian: Endian,
        machine: u16,
        flags: u32,
    ) -> Option<&Arch> {
        let candidates = self
            .arches
            .iter()
            .filter(|a| a.class == class && a.endian == endian && a.machine.contains(&machine));
        let mut first = None;
        for a in candidates {
            if machine == EM_MIPS && class == 32 {
                // o32 and n32 share class and machine; EF_MIPS_ABI2 tells them apart.
                if (a.flags & EF_MIPS_ABI2) != (flags & EF_MIPS_ABI2) {
                    continue;
                }
            }
            first.get_or_insert(a);
        }
        first
    }
}

pub const EM_MIPS: u16 = 0x08;
pub const EF_MIPS_ABI2: u32 = 0x20;

/// What the kernel under us is: the `uname -m` machine and the arch it maps to.
#[derive(Debug, Clone)]
pub struct Host {
    pub machine: String,
    /// Canonical name of the kernel's own architecture, when the table knows it.
    pub arch: Option<String>,
}

impl Host {
    /// Read `uname -m`; 32/64-bit MIPS and ppc names say nothing of byte order, so this
    /// binary's own byte order (the kernel's, since we run natively) settles it.
    pub fn detect(table: &ArchTable) -> Host {
        let machine = nix::sys::utsname::uname()
            .map(|u| u.machine().to_string_lossy().into_owned())
            .unwrap_or_else(|_| std::env::consts::ARCH.to_string());
        let arch = Self::arch_for_machine(table, &machine, cfg!(target_endian = "little"));
        Host { machine, arch }
    }

    /// Map a `uname -m` string to a canonical arch.
    pub fn arch_for_machine(table: &ArchTable, machine: &str, little: bool) -> Option<String> {
        let m = machine.to_ascii_lowercase();
        let name = match m.as_str() {
            "mips" => {
                if little {
                    "mipsle"
                } else {
                    "mips"
                }
            }
            "mips64" => {
                if little {
                    "mips64le"
                } else {
                    "mips64"
                }
            }
            "ppc64" if little => "ppc64le",
            "aarch64_be" => "aarch64_be",
            "parisc64" => "hppa",
            "sh4a" => "sh4",
            other if other.starts_with("armv") && other.ends_with('b') => "armeb",
            other => other,
        };
        table.find(name).map(|a| a.name.clone())
    }

    /// Arches this host might run without emulation besides its own (386 on amd64, arm on
    /// arm64). Only candidates: whether the kernel and CPU really do is found by running a
    /// probe, never assumed.
    pub fn compat_candidates<'t>(&self, table: &'t ArchTable) -> Vec<&'t Arch> {
        table.iter().filter(|a| self.may_run(a)).collect()
    }

    /// Whether `arch` is a second ABI this host's kernel may run itself (386 on amd64): worth
    /// a probe, never assumed.
    pub fn may_run(&self, arch: &Arch) -> bool {
        self.arch
            .as_ref()
            .is_some_and(|h| arch.compat_on.contains(h))
    }
}

#[cfg(test)]
mod tests;
