//! What a file is, which platform it is for, and whether this host can run it.

use std::path::Path;

use serde::Serialize;

use crate::arch::{Arch, ArchTable, Host};
use crate::binfmt::Snapshot;
use crate::elf::{self, ElfError, ElfInfo};
use crate::error::{Class, Classify};
use crate::fileio::{Follow, OpenError};
use crate::format::{self, Format, HEAD_BYTES, MachSlice};
use crate::machine::{self, Handle, Machine, ProbeError};

/// How deep `#!` chains are followed (the kernel itself allows 4 levels).
const MAX_SCRIPT_DEPTH: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Runnable {
    /// The kernel runs it directly.
    Native,
    /// A binfmt_misc handler takes it (named in `handler`).
    Emulated,
    /// Exec will fail.
    No,
}

impl Runnable {
    pub fn as_str(self) -> &'static str {
        match self {
            Runnable::Native => "native",
            Runnable::Emulated => "emulated",
            Runnable::No => "no",
        }
    }
}

/// What the kernel does with an ELF program on its own, without binfmt_misc.
#[derive(Debug, Clone, Copy)]
pub enum ElfVerdict<'t> {
    /// Not a program at all (object file, core dump, …).
    NotProgram(&'static str),
    /// Built for another operating system (FreeBSD, …).
    ForeignOs(&'static str),
    /// An e_machine the table does not know.
    UnknownMachine(u16),
    /// The host's own architecture.
    Host(&'t Arch),
    /// A second ABI the kernel was found, by a probe, to run itself (386 on amd64).
    Compat(&'t Arch),
    /// Needs emulation. `compat`: a second ABI of the host's CPU that this kernel lacks.
    Foreign { arch: &'t Arch, compat: bool },
}

/// The report for one file. Field names are the JSON contract (README, `inspect`).
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// The path as text: itself, or escaped losslessly when it is not UTF-8 (`names`).
    pub path: String,
    /// The path's exact bytes in hex, when `path` had to be escaped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
    pub format: Format,
    pub platform: Option<String>,
    pub arch: Option<String>,
    pub class: Option<u8>,
    pub endian: Option<&'static str>,
    pub machine: Option<u32>,
    pub os_abi: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// ELF loader (PT_INTERP) or a script's `#!` interpreter.
    pub interpreter: Option<String>,
    #[serde(rename = "static")]
    pub is_static: Option<bool>,
    pub runnable: Runnable,
    pub handler: Option<String>,
    /// ABI details: `eabi5 hard-float`, `n32`, `elfv2`, `lp64d rvc`, `x32`, …
    pub abi: Option<String>,
    /// For arm: whether the variant came from the ARM attributes or was guessed from the float ABI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant_source: Option<&'static str>,
    /// Each architecture of a Mach-O file (several for a universal binary).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub slices: Vec<MachSlice>,
    /// A script whose `#!` line ends in CR LF.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crlf: Option<bool>,
    /// The instruction-set level the program needs beyond its architecture's baseline, and
    /// where that was learnt (`needs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub needs: Option<crate::needs::Needs>,
    /// Why it is, or is not, runnable, in a user's words.
    pub reason: Option<String>,
    /// What went wrong reading it.
    pub error: Option<String>,
    /// The file could not be opened or read at all (bad input, exit 2), as opposed to a file
    /// that was read and found damaged (exit 1).
    #[serde(skip)]
    pub unreadable: bool,
}

impl Inspection {
    fn new(path: &Path, format: Format) -> Inspection {
        let text = crate::names::escape(path.as_os_str().as_encoded_bytes()).into_owned();
        Inspection {
            path_hex: crate::names::hex_of_escaped(&text),
            path: text,
            format,
            platform: None,
            arch: None,
            class: None,
            endian: None,
            machine: None,
            os_abi: None,
            kind: None,
            interpreter: None,
            is_static: None,
            runnable: Runnable::No,
            handler: None,
            abi: None,
            variant_source: None,
            slices: Vec::new(),
            crlf: None,
            needs: None,
            reason: None,
            error: None,
            unreadable: false,
        }
    }
}

/// Inspects files against one view of the host: its arch table, its kernel, its binfmt_misc,
/// all as `machine` answers.
#[derive(Debug)]
pub struct Inspector<'a> {
    machine: &'a dyn Machine,
    table: &'a ArchTable,
    host: Host,
    binfmt: Snapshot,
}

impl<'a> Inspector<'a> {
    pub fn new(machine: &'a dyn Machine, table: &'a ArchTable, binfmt: Snapshot) -> Inspector<'a> {
        Inspector {
            machine,
            table,
            host: machine::host(machine, table),
            binfmt,
        }
    }

    pub fn machine(&self) -> &'a dyn Machine {
        self.machine
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    pub fn table(&self) -> &'a ArchTable {
        self.table
    }

    /// The binfmt_misc state this inspector judges against.
    pub fn binfmt(&self) -> &Snapshot {
        &self.binfmt
    }

    /// Inspect one file. Never fails: problems are reported in the result.
    pub fn inspect(&self, path: &Path) -> Inspection {
        let r = self.inspect_depth(path, 0);
        tracing::info!(
            "{}: {} {}",
            crate::names::escape(path.as_os_str().as_encoded_bytes()),
            r.format.as_str(),
            r.platform.as_deref().unwrap_or("-")
        );
        r
    }

    fn inspect_depth(&self, path: &Path, depth: usize) -> Inspection {
        let (file, head, len) = match read_head(self.machine, path) {
            Ok(x) => x,
            Err(e) => {
                let mut r = Inspection::new(path, Format::Unknown);
                r.error = Some(e.to_string());
                r.unreadable = true;
                r.reason = Some("cannot be read".into());
                return r;
            }
        };
        let format = format::sniff(&head);
        tracing::debug!(
            "{}: {len} bytes, first {} read: {}",
            crate::names::escape(path.as_os_str().as_encoded_bytes()),
            head.len(),
            format.as_str()
        );
        let mut r = Inspection::new(path, format);
        match format {
            Format::Elf => self.fill_elf(&mut r, &file, &head, len),
            Format::Macho => match format::macho_slices(&head) {
                Ok(slices) => {
                    r.platform = Some(
                        slices
                            .iter()
                            .map(|s| s.platform.as_str())
                            .collect::<Vec<_>>()
                            .join(","),
                    );
                    r.arch = Some(
                        slices
                            .iter()
                            .map(|s| s.arch.as_str())
                            .collect::<Vec<_>>()
                            .join(","),
                    );
                    r.class = slices.first().map(|s| s.class).filter(|c| *c != 0);
                    r.slices = slices;
                    r.reason = Some("a macOS program; Linux cannot run Mach-O files".into());
                }
                Err(e) => r.error = Some(e.0),
            },
            Format::Pe => match format::pe_info(&head) {
                Ok(pe) => {
                    r.platform = Some(format!("windows/{}", pe.arch));
                    r.machine = Some(pe.machine.into());
                    r.class = (pe.class != 0).then_some(pe.class);
                    r.arch = Some(pe.arch);
                    r.reason = Some("a Windows program; Linux runs it only through Wine".into());
                }
                Err(e) => r.error = Some(e.0),
            },
            Format::Script => self.fill_script(&mut r, &head, depth),
            Format::Unknown => {
                r.reason = Some(if len == 0 {
                    "an empty file".into()
                } else {
                    "neither a program nor a script the kernel knows".into()
                });
            }
        }
        // binfmt_misc is consulted before the kernel's own ELF and script loaders, so a
        // matching handler decides, whatever the format.
        if let Some(entry) = self.binfmt.handler_for(path, &head) {
            r.runnable = Runnable::Emulated;
            r.handler = Some(entry.name.clone());
            r.reason = Some(format!(
                "binfmt_misc handler {} runs it with {}",
                entry.name, entry.interpreter
            ));
        }
        r
    }

    fn fill_elf(&self, r: &mut Inspection, file: &Handle, head: &[u8], len: u64) {
        let info = match elf::read(file, head, len) {
            Ok(info) => info,
            Err(e) => {
                // Name what can be named from the identity bytes alone.
                if let (Some(&c), Some(&d)) = (head.get(4), head.get(5)) {
                    r.class = match c {
                        1 => Some(32),
                        2 => Some(64),
                        _ => None,
                    };
                    r.endian = match d {
                        1 => Some("little"),
                        2 => Some("big"),
                        _ => None,
                    };
                }
                r.reason = Some(match &e {
                    ElfError::Truncated(_) => "a damaged (truncated) ELF file".into(),
                    _ => "a damaged ELF file".into(),
                });
                r.error = Some(e.to_string());
                return;
            }
        };
        let naming = elf::name(&info, self.table);
        r.class = Some(info.class);
        r.endian = Some(info.endian.as_str());
        r.machine = Some(info.machine.into());
        r.os_abi = Some(info.os_abi_name());
        r.kind = Some(info.type_name());
        r.is_static = Some(info.is_static());
        r.interpreter = info.interpreter.clone();
        r.arch = naming.arch.clone();
        r.platform = naming.platform;
        r.abi = naming.abi;
        r.variant_source = naming.variant_source;
        if let Some(arch) = naming.arch.as_deref() {
            r.needs = self.needs(file, len, &info, arch);
        }
        let (runnable, reason) = self.elf_runnable(&info, naming.arch.as_deref());
        r.runnable = runnable;
        r.reason = Some(reason);
    }

    /// What the program records it needs, and what its loader (PT_INTERP, here on this
    /// host) enforces.
    pub fn needs(
        &self,
        file: &Handle,
        len: u64,
        info: &ElfInfo,
        arch: &str,
    ) -> Option<crate::needs::Needs> {
        let own = crate::needs::of_program(file, len, info, arch);
        let loader = info
            .interpreter
            .as_deref()
            .and_then(|l| loader_needs(self.machine, Path::new(l), arch));
        match (own, loader) {
            (Some(n), Some(e)) => Some(n.with(e)),
            (own, Some(e)) => own.or_else(|| {
                crate::needs::Needs::from_evidence(crate::needs::family(arch)?, vec![e])
            }),
            (own, None) => own,
        }
    }

    fn elf_runnable(&self, info: &ElfInfo, arch: Option<&str>) -> (Runnable, String) {
        let host = self.host.arch.as_deref().unwrap_or("unknown");
        match self.elf_verdict(info, arch) {
            ElfVerdict::NotProgram(what) => (Runnable::No, what.into()),
            ElfVerdict::ForeignOs(os) => (
                Runnable::No,
                format!("a program for {os}; Linux cannot run it"),
            ),
            ElfVerdict::UnknownMachine(machine) => (
                Runnable::No,
                format!("e_machine {machine:#x} is not an architecture binfmt-setup knows"),
            ),
            ElfVerdict::Host(_) => (Runnable::Native, format!("this host is {host}")),
            ElfVerdict::Compat(arch) => (
                Runnable::Native,
                format!("this {host} kernel runs {} programs itself", arch.name),
            ),
            ElfVerdict::Foreign { arch, compat } => {
                // A second ABI of the host's own CPU (x32 on amd64) that the probe found
                // missing is a kernel configuration matter, not one of emulation.
                let host_is = if compat {
                    format!(
                        "this {host} kernel does not run {} programs itself",
                        arch.name
                    )
                } else {
                    format!("this host is {host}")
                };
                let reason = match &arch.qemu {
                    Some(_) => format!(
                        "a program for {}; {host_is} and has no binfmt_misc handler for it (binfmt-setup install --arch {})",
                        arch.name, arch.name
                    ),
                    None => format!(
                        "a program for {}; {host_is} and QEMU cannot emulate {}",
                        arch.name, arch.name
                    ),
                };
                (Runnable::No, reason)
            }
        }
    }

    /// What the kernel makes of an ELF by itself, before binfmt_misc is asked: the decision
    /// `inspect` reports as `runnable` and `diagnose` builds its causes on.
    pub fn elf_verdict<'t>(&'t self, info: &ElfInfo, arch: Option<&str>) -> ElfVerdict<'t> {
        if !info.is_program() {
            return ElfVerdict::NotProgram(match info.e_type {
                1 => "a relocatable object (.o), not a program",
                4 => "a core dump, not a program",
                _ => "not an executable ELF type",
            });
        }
        if !info.is_linux() {
            return ElfVerdict::ForeignOs(info.os());
        }
        let Some(arch) = arch.and_then(|a| self.table.find(a)) else {
            return ElfVerdict::UnknownMachine(info.machine);
        };
        if self.host.arch.as_deref() == Some(arch.name.as_str()) {
            return ElfVerdict::Host(arch);
        }
        if self.runs_natively(arch) {
            return ElfVerdict::Compat(arch);
        }
        ElfVerdict::Foreign {
            arch,
            compat: self.host.may_run(arch),
        }
    }

    /// Whether the kernel runs `arch` itself (386 on amd64, arm on many arm64 machines):
    /// a probe is run in a private, empty binfmt_misc, so no handler can pretend.
    pub fn runs_natively(&self, arch: &Arch) -> bool {
        self.native_probe(arch).unwrap_or_else(|e| {
            tracing::debug!("cannot tell whether {} runs natively: {e}", arch.name);
            false
        })
    }

    /// Like [`runs_natively`](Self::runs_natively), but says when the probe could not run
    /// at all, so a caller can tell "the kernel refused it" from "nobody asked the kernel".
    /// Arches that are no second ABI of the host's are `Ok(false)` without a probe.
    pub fn native_probe(&self, arch: &Arch) -> Result<bool, ProbeError> {
        if !self.host.may_run(arch) {
            return Ok(false);
        }
        self.machine.runs_natively(arch)
    }

    fn fill_script(&self, r: &mut Inspection, head: &[u8], depth: usize) {
        let Some(sb) = format::shebang(head) else {
            r.reason = Some("a '#!' line that names no interpreter".into());
            return;
        };
        r.crlf = Some(sb.crlf);
        r.interpreter = Some(sb.interpreter.clone());
        if sb.crlf {
            r.reason = Some(format!(
                "the '#!' line ends in CR LF, so the kernel looks for '{}\\r', which does not exist (convert with dos2unix)",
                sb.interpreter
            ));
            return;
        }
        let interp = Path::new(&sb.interpreter);
        if depth >= MAX_SCRIPT_DEPTH {
            r.reason = Some("too many levels of '#!' interpreters".into());
            return;
        }
        if self.machine.stat(interp).is_err() {
            r.reason = Some(format!("its interpreter {} does not exist", sb.interpreter));
            return;
        }
        let inner = self.inspect_depth(interp, depth + 1);
        r.platform = inner.platform.clone();
        r.arch = inner.arch.clone();
        r.runnable = inner.runnable;
        r.handler = inner.handler.clone();
        r.reason = Some(format!(
            "run by {}: {}",
            sb.interpreter,
            inner.reason.unwrap_or_default()
        ));
    }
}

/// What the glibc loader at `path` (a host path) enforces for programs of `arch`.
pub(crate) fn loader_needs(
    machine: &dyn Machine,
    path: &Path,
    arch: &str,
) -> Option<crate::needs::Evidence> {
    use crate::needs::glibc;
    let family = crate::needs::family(arch)?;
    let (file, meta) = machine.open(path, Follow::Yes).ok()?;
    let bytes = glibc::loader_bytes(&file, meta.len)?;
    let info = elf::read_bytes(&bytes).ok()?;
    glibc::enforced(&bytes, &info, family)
}

/// A file that cannot be opened or read at all: bad input.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path} is {what}, not a program")]
    NotRegular { path: String, what: &'static str },
    #[error("cannot open {path}: {error}")]
    Open { path: String, error: std::io::Error },
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
}

impl Classify for ReadError {
    fn class(&self) -> Class {
        Class::BadInput
    }
}

/// Open a file and read its first bytes. Only regular files are opened (see `fileio`): a FIFO
/// cannot hang us, nor a device be opened. Symlinks are followed, as exec follows them.
pub(crate) fn read_head(
    machine: &dyn Machine,
    path: &Path,
) -> Result<(Handle, Vec<u8>, u64), ReadError> {
    read_head_with(machine, path, Follow::Yes)
}

/// Like [`read_head`] for a path already resolved by hand inside a root: a symlink anywhere
/// on it now was swapped in since, and is not followed out of the root.
pub(crate) fn read_head_resolved(
    machine: &dyn Machine,
    path: &Path,
) -> Result<(Handle, Vec<u8>, u64), ReadError> {
    read_head_with(machine, path, Follow::Nowhere)
}

fn read_head_with(
    machine: &dyn Machine,
    path: &Path,
    follow: Follow,
) -> Result<(Handle, Vec<u8>, u64), ReadError> {
    let shown = || path.display().to_string();
    let (file, meta) = machine.open(path, follow).map_err(|e| match e {
        OpenError::NotRegular(what) => ReadError::NotRegular {
            path: shown(),
            what,
        },
        OpenError::Io(error) => ReadError::Open {
            path: shown(),
            error,
        },
    })?;
    let head = file
        .read_prefix(HEAD_BYTES)
        .map_err(|error| ReadError::Read {
            path: shown(),
            error,
        })?;
    Ok((file, head, meta.len))
}

/// What `inspect --expect` asks every file to be: a Linux program of this architecture, and,
/// when the name says which (`linux/arm/v6`, `armhf`, `armel`), of this variant.
#[derive(Debug, Clone)]
pub struct Expect<'t> {
    arch: &'t Arch,
    variant: Option<String>,
}

impl<'t> Expect<'t> {
    pub fn parse(table: &'t ArchTable, name: &str) -> Result<Expect<'t>, crate::arch::ArchError> {
        let arch = table.lookup(name)?;
        Ok(Expect {
            arch,
            variant: arch.variant_named(name),
        })
    }

    /// Why `r` is not what is expected, or `None` when it is.
    pub fn mismatch(&self, r: &Inspection) -> Option<String> {
        let found = || {
            r.platform
                .clone()
                .or_else(|| r.arch.clone())
                .unwrap_or_else(|| r.format.as_str().to_string())
        };
        let mut parts = r.platform.as_deref().unwrap_or("").split('/');
        let (os, variant) = (parts.next(), parts.nth(1));
        let right = r.arch.as_deref() == Some(self.arch.name.as_str())
            && os == Some("linux")
            && self
                .variant
                .as_deref()
                .is_none_or(|want| variant == Some(want));
        (!right).then(|| format!("expected {}, found {}", self.want(), found()))
    }

    /// `linux/arm64`, `linux/arm/v7`.
    pub fn want(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{v}", self.arch.platform),
            None => self.arch.platform.clone(),
        }
    }
}
