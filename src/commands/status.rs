//! `status`: binfmt_misc's state and every entry.

use std::os::unix::fs::PermissionsExt;

use serde::Serialize;

use crate::arch::{ArchTable, Host};
use crate::binfmt::{Registry, Rule, Snapshot};
use crate::cli::GlobalArgs;
use crate::error::{Exit, Failure};
use crate::inspect::Inspector;
use crate::messages::{self, printable};
use crate::rule::{encode_hex, kernel_buffer};

#[derive(Debug, Serialize)]
struct Status {
    binfmt_misc: Mount,
    native: Vec<String>,
    supported: Vec<String>,
    emulators: Vec<String>,
    entries: Vec<EntryView>,
    /// Entries whose file is not in the kernel's format (see `Entry::parse`): named, with
    /// the reason, and otherwise ignored.
    unreadable: Vec<crate::binfmt::Unreadable>,
}

#[derive(Debug, Serialize)]
struct Mount {
    path: String,
    mounted: bool,
    enabled: bool,
    /// This process is in a user namespace other than the first: the instance it sees is
    /// most likely private to that namespace (Linux >= 6.7), not the host's.
    private: bool,
}

#[derive(Debug, Serialize)]
struct EntryView {
    name: String,
    enabled: bool,
    interpreter: String,
    flags: String,
    offset: Option<usize>,
    magic: Option<String>,
    mask: Option<String>,
    extension: Option<String>,
    /// Named qemu-<cpu> for a cpu of our table: binfmt-setup may replace or remove it.
    owned: bool,
    /// The architecture whose programs the rule takes, when it is one of the table's.
    arch: Option<String>,
    /// The interpreter path exists and is executable. (An F entry keeps working from the file
    /// it opened at registration even after the path is gone.)
    interpreter_ok: bool,
}

pub fn run(global: &GlobalArgs) -> Result<Exit, Failure> {
    let table = super::load_table(global)?;
    let registry = Registry::new(&global.binfmt_dir);
    let snap = super::snapshot(&registry)?;
    let host = Host::detect(&table);
    let status = gather(&table, host, &registry, snap);
    if status.binfmt_misc.private && status.binfmt_misc.mounted {
        messages::warn(&format!(
            "this process runs in a user namespace: {} is probably a private instance, not the host's",
            registry.dir().display()
        ));
    }
    if global.json {
        messages::json(&status);
    } else {
        print_human(&status);
    }
    Ok(Exit::Success)
}

fn gather(table: &ArchTable, host: Host, registry: &Registry, snap: Snapshot) -> Status {
    let snap_unreadable = snap.unreadable.clone();
    let entries: Vec<EntryView> = snap.entries.iter().map(|e| view(table, e)).collect();
    let mount = Mount {
        path: registry.dir().display().to_string(),
        mounted: snap.mounted,
        enabled: snap.enabled,
        private: in_child_user_namespace(),
    };
    let machine = crate::machine::Live::new();
    let inspector = Inspector::new(&machine, table, snap);
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
        for e in entries.iter().filter(|e| e.enabled && e.interpreter_ok) {
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

fn view(table: &ArchTable, e: &crate::binfmt::Entry) -> EntryView {
    let (offset, magic, mask, extension, arch) = match &e.rule {
        Rule::Magic { rule, mask_shown } => {
            // The arch whose typical header this rule takes.
            let arch = table
                .iter()
                .find(|a| {
                    let probe = crate::probe::elf_image(a, &[]);
                    e.rule
                        .matches(std::path::Path::new(""), &kernel_buffer(&probe))
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
    }
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

fn print_human(s: &Status) {
    let m = &s.binfmt_misc;
    messages::out(&format!(
        "binfmt_misc: {} ({}{})",
        printable(&m.path),
        if m.mounted { "mounted" } else { "not mounted" },
        if m.mounted {
            if m.enabled { ", enabled" } else { ", DISABLED" }
        } else {
            ""
        }
    ));
    messages::out(&format!("native:     {}", s.native.join(",")));
    messages::out(&format!("supported:  {}", s.supported.join(",")));
    for u in &s.unreadable {
        messages::warn(&format!(
            "entry {} is not in the kernel's format: {}",
            printable(&u.name),
            printable(&u.reason)
        ));
    }
    if s.entries.is_empty() {
        messages::out("entries:    none");
        return;
    }
    messages::out("");
    messages::out(&format!(
        "{:<28} {:<8} {:<6} {:<6} {:<10} INTERPRETER",
        "ENTRY", "STATE", "FLAGS", "OWNED", "ARCH"
    ));
    for e in &s.entries {
        messages::out(&format!(
            "{:<28} {:<8} {:<6} {:<6} {:<10} {}{}",
            printable(&e.name),
            if e.enabled { "enabled" } else { "disabled" },
            if e.flags.is_empty() { "-" } else { &e.flags },
            if e.owned { "yes" } else { "no" },
            e.arch
                .as_deref()
                .unwrap_or(e.extension.as_deref().map(|_| "(ext)").unwrap_or("-")),
            printable(&e.interpreter),
            if e.interpreter_ok { "" } else { "  (missing)" },
        ));
    }
}
