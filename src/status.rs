//! `status` as a library: binfmt_misc's state, every entry seen for what it is (ours or
//! another owner's, which architecture its rule takes, whether its interpreter is there and
//! is QEMU for that architecture), and the platforms this host runs natively or through a
//! handler.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde::Serialize;

use crate::arch::{Arch, ArchTable, Host};
use crate::binfmt::{Entry, Registry, Rule, Snapshot};
use crate::inspect::Inspector;
use crate::machine::Machine;
use crate::rule::{encode_hex, kernel_buffer};

#[derive(Debug, Serialize)]
pub struct Status {
    pub binfmt_misc: Mount,
    pub native: Vec<String>,
    pub supported: Vec<String>,
    pub emulators: Vec<String>,
    pub entries: Vec<EntryView>,
    /// Entries whose file is not in the kernel's format (see `Entry::parse`): named, with
    /// the reason, and otherwise ignored.
    pub unreadable: Vec<crate::binfmt::Unreadable>,
}

#[derive(Debug, Serialize)]
pub struct Mount {
    pub path: String,
    pub mounted: bool,
    pub enabled: bool,
    /// This process is in a user namespace other than the first: the instance it sees is
    /// most likely private to that namespace (Linux >= 6.7), not the host's.
    pub private: bool,
}

#[derive(Debug, Serialize)]
pub struct EntryView {
    pub name: String,
    pub enabled: bool,
    pub interpreter: String,
    pub flags: String,
    pub offset: Option<usize>,
    pub magic: Option<String>,
    pub mask: Option<String>,
    pub extension: Option<String>,
    /// Named qemu-<cpu> for a cpu of our table: binfmt-setup may replace or remove it.
    pub owned: bool,
    /// The architecture whose programs the rule takes, when it is one of the table's.
    pub arch: Option<String>,
    /// The interpreter path exists and is executable. (An F entry keeps working from the file
    /// it opened at registration even after the path is gone.)
    pub interpreter_ok: bool,
    /// The interpreter is, by its name, QEMU for `arch` (`null` when its name does not say:
    /// a wrapper, another emulator). `false` keeps the entry's platforms out of `supported`.
    pub interpreter_fits: Option<bool>,
}

pub fn gather(
    machine: &dyn Machine,
    table: &ArchTable,
    host: Host,
    registry: &Registry,
    snap: Snapshot,
) -> Status {
    let snap_unreadable = snap.unreadable.clone();
    let entries: Vec<EntryView> = snap.entries.iter().map(|e| view(table, e)).collect();
    let mount = Mount {
        path: registry.dir().display().to_string(),
        mounted: snap.mounted,
        enabled: snap.enabled,
        private: in_child_user_namespace(),
    };
    let inspector = Inspector::new(machine, table, snap);
    let mut native: Vec<String> = Vec::new();
    if let Some(a) = host.arch.as_deref().and_then(|a| table.find(a)) {
        native.extend(a.platforms());
    }
    for a in host.compat_candidates(table) {
        if inspector.runs_natively(a) {
            native.extend(a.platforms());
        }
    }
    let mut supported = native.clone();
    if mount.enabled {
        for e in entries
            .iter()
            .filter(|e| e.enabled && e.interpreter_ok && e.interpreter_fits != Some(false))
        {
            if let Some(a) = e.arch.as_deref().and_then(|a| table.find(a)) {
                for p in a.platforms() {
                    if !supported.contains(&p) {
                        supported.push(p);
                    }
                }
            }
        }
    }
    Status {
        binfmt_misc: mount,
        native,
        supported,
        emulators: entries.iter().map(|e| e.name.clone()).collect(),
        entries,
        unreadable: snap_unreadable,
    }
}

fn view(table: &ArchTable, e: &Entry) -> EntryView {
    let (offset, magic, mask, extension, arch) = match &e.rule {
        Rule::Magic { rule, mask_shown } => {
            // The arch whose typical header this rule takes.
            let arch = table
                .iter()
                .find(|a| {
                    let probe = crate::probe::elf_image(a, &[]);
                    e.rule.matches(Path::new(""), &kernel_buffer(&probe))
                })
                .map(|a| a.name.clone());
            (
                Some(rule.offset),
                Some(encode_hex(&rule.magic)),
                mask_shown.then(|| encode_hex(&rule.mask)),
                None,
                arch,
            )
        }
        Rule::Extension(x) => (None, None, None, Some(x.clone()), None),
    };
    let owned = e
        .name
        .strip_prefix("qemu-")
        .is_some_and(|cpu| table.iter().any(|a| a.qemu.as_deref() == Some(cpu)));
    let interpreter_ok = std::fs::metadata(&e.interpreter)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false);
    let interpreter_fits = arch
        .as_deref()
        .and_then(|a| table.find(a))
        .and_then(|a| interpreter_fits(a, &e.interpreter));
    EntryView {
        name: e.name.clone(),
        enabled: e.enabled,
        interpreter: e.interpreter.clone(),
        flags: e.flags.clone(),
        offset,
        magic,
        mask,
        extension,
        owned,
        arch,
        interpreter_ok,
        interpreter_fits,
    }
}

/// Whether an interpreter named like QEMU's (`qemu-<cpu>`, `qemu-<cpu>-static`) is QEMU for
/// the architecture the rule takes; `None` when its name says nothing (a wrapper, another
/// emulator). An entry whose rule takes arm64 programs but runs `qemu-riscv64-static` runs
/// none of them.
fn interpreter_fits(arch: &Arch, interpreter: &str) -> Option<bool> {
    let file = Path::new(interpreter).file_name()?.to_str()?;
    let cpu = file.strip_prefix("qemu-")?;
    let cpu = cpu.strip_suffix("-static").unwrap_or(cpu);
    Some(arch.qemu.as_deref() == Some(cpu))
}

/// The initial user namespace maps every id onto itself; any other mapping means a child.
fn in_child_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| {
            let f: Vec<&str> = m.split_whitespace().collect();
            f != ["0", "0", "4294967295"]
        })
        .unwrap_or(false)
}
