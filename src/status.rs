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
use crate::probe::levels::proof::{self, Proven};
use crate::qemu::Facts;
use crate::qemu::ask;
use crate::qemu::known::IssueTable;
use crate::rule::{encode_hex, kernel_buffer};

/// How long each probe `status` runs may take.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

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
    /// The levels its arch's level probe proved through it (as `test` reports them); `null`
    /// unless it is the handler the kernel picks for that probe.
    pub levels: Option<Proven>,
    /// What QEMU it runs, asked the same way; nulls and empty lists when it was not asked
    /// (not the kernel's pick, disabled) or did not answer as QEMU.
    #[serde(flatten)]
    pub qemu: Facts,
}

pub fn gather(
    machine: &dyn Machine,
    table: &ArchTable,
    host: Host,
    registry: &Registry,
    snap: Snapshot,
    issues: &IssueTable,
    cpu_models: bool,
) -> Status {
    let snap_unreadable = snap.unreadable.clone();
    let mut entries: Vec<EntryView> = snap.entries.iter().map(|e| view(table, e)).collect();
    let host_arch = host.arch.as_deref().and_then(|a| table.find(a));
    // Each entry the kernel would hand its arch's probe to is asked about, as `test` asks,
    // all at once: its level probe, its QEMU; and the host CPU's own levels.
    let picked: Vec<(usize, &Arch, Option<&str>)> = snap
        .entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let (arch, ext) = match &e.rule {
                Rule::Extension(x) => (table.by_interpreter(&e.interpreter)?, Some(x.as_str())),
                Rule::Magic { .. } => (table.find(entries[i].arch.as_deref()?)?, None),
            };
            let probe = crate::probe::program(arch)?;
            let name = format!("probe{}", ext.map(|x| format!(".{x}")).unwrap_or_default());
            let pick = snap.handler_for(Path::new(&name), &probe)?;
            (pick.name == e.name).then_some((i, arch, ext))
        })
        .collect();
    let mut level_subjects: Vec<proof::Subject<'_>> = picked
        .iter()
        .map(|&(_, arch, extension)| proof::Subject {
            interpreter: None,
            arch,
            extension,
            emulated: true,
        })
        .collect();
    if let Some(a) = host_arch {
        level_subjects.push(proof::Subject {
            interpreter: None,
            arch: a,
            extension: None,
            emulated: false,
        });
    }
    let proving = proof::start(machine, &level_subjects, true, PROBE_TIMEOUT);
    let ask_subjects: Vec<ask::Subject<'_>> = picked
        .iter()
        .map(|&(i, arch, extension)| ask::Subject {
            arch,
            extension,
            interpreter: Path::new(&snap.entries[i].interpreter),
        })
        .collect();
    let asking = ask::start(
        machine,
        &ask_subjects,
        true,
        PROBE_TIMEOUT,
        cpu_models,
        ask::Keep::No,
    );
    let mount = Mount {
        path: registry.dir().display().to_string(),
        mounted: snap.mounted,
        enabled: snap.enabled,
        private: in_child_user_namespace(),
    };
    let inspector = Inspector::new(machine, table, snap.clone());
    let mut levels = proving.finish();
    let host_levels = host_arch.and_then(|_| levels.pop().flatten());
    let facts = asking.finish(issues);
    for ((&(i, _, _), l), f) in picked.iter().zip(levels).zip(facts) {
        entries[i].levels = l;
        entries[i].qemu = f.unwrap_or_default();
    }
    let mut native: Vec<String> = Vec::new();
    if let Some(a) = host_arch {
        native.extend(match &host_levels {
            Some(p) => proof::platforms(a, p),
            None => a.platforms(),
        });
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
                let platforms = match &e.levels {
                    Some(p) => proof::platforms(a, p),
                    None => a.platforms(),
                };
                for p in platforms {
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
        levels: None,
        qemu: Facts::default(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binfmt::Entry;
    use crate::machine::testing::{entry, table};
    use crate::machine::{AskProgram, Fake, Reply};

    fn said(exit: i32, stdout: &str) -> Reply {
        Reply {
            exit: Some(exit),
            stdout: stdout.into(),
            ..Reply::default()
        }
    }

    /// What `status` reports on an amd64 host with AVX-512, an arm64 handler, an older
    /// arm64 entry it hides, a disabled riscv64 one and an amd64 handler under an extension
    /// rule: levels and QEMU facts for the handlers the kernel picks, and only those; the
    /// native and supported platforms with their proven variants.
    #[test]
    fn levels_and_qemu_facts_of_the_handlers_the_kernel_picks() {
        let banner = "qemu-x86_64 version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\n";
        let version = &[("QEMU_VERSION", "1")];
        let help = &[("QEMU_CPU", "help")];
        let ext = Entry {
            name: "x86-ext".into(),
            enabled: true,
            interpreter: "/usr/bin/qemu-x86_64-static".into(),
            flags: "F".into(),
            rule: Rule::Extension("probe-ext".into()),
        };
        let mut hidden = entry("arm64", "/opt/qemu-aarch64", "F", true);
        hidden.name = "older-arm64".into();
        let f = Fake::new()
            .file("/usr/bin/qemu-aarch64-static", b"q".to_vec(), 0o755)
            .file("/usr/bin/qemu-x86_64-static", b"x".to_vec(), 0o755)
            .handler(hidden)
            .handler(entry("riscv64", "/usr/bin/qemu-riscv64-static", "F", false))
            .handler(entry("arm64", "/usr/bin/qemu-aarch64-static", "PF", true))
            .handler(ext)
            .reply(
                "amd64",
                AskProgram::Levels,
                None,
                &[],
                said(100 + 0b111, ""),
            )
            .reply("arm64", AskProgram::Levels, None, &[], said(100 + 0b1, ""))
            .reply("arm64", AskProgram::Echo, None, help, said(1, "  max\n"))
            .reply(
                "amd64",
                AskProgram::Levels,
                Some("probe-ext"),
                &[],
                said(100 + 0b11, ""),
            )
            .reply(
                "amd64",
                AskProgram::Echo,
                Some("probe-ext"),
                help,
                said(1, "x86 max  x\n"),
            )
            // One build, asked once for its version: through the newest entry, the first.
            .reply(
                "amd64",
                AskProgram::Echo,
                Some("probe-ext"),
                version,
                said(0, banner),
            );
        let host = crate::machine::host(&f, table());
        let snap = f.binfmt(Path::new("/b")).expect("snapshot");
        let registry = Registry::new("/b");
        let s = gather(
            &f,
            table(),
            host,
            &registry,
            snap,
            &IssueTable::embedded(),
            true,
        );
        assert_eq!(
            s.native,
            [
                "linux/amd64",
                "linux/amd64/v2",
                "linux/amd64/v3",
                "linux/amd64/v4"
            ]
        );
        assert!(
            s.supported.contains(&"linux/arm64/v8.1".to_string()),
            "{:?}",
            s.supported
        );
        assert!(
            !s.supported.iter().any(|p| p.contains("riscv64")),
            "{:?}",
            s.supported
        );
        let by = |n: &str| s.entries.iter().find(|e| e.name == n).expect(n);
        let arm64 = by("qemu-aarch64");
        assert_eq!(arm64.levels.as_ref().and_then(|l| l.highest), Some("v8.1"));
        assert_eq!(arm64.qemu.qemu_version.as_deref(), Some("7.2.22"));
        assert_eq!(arm64.qemu.cpu_models, ["max"]);
        assert_eq!(arm64.qemu.cpu_default.as_deref(), Some("any"));
        // The extension handler's interpreter is of the same build (same directory and
        // time): one version for both, and models and levels of its own.
        let x86 = by("x86-ext");
        assert_eq!(
            x86.levels.as_ref().and_then(|l| l.highest),
            Some("x86-64-v3")
        );
        assert_eq!(x86.qemu.qemu_version.as_deref(), Some("7.2.22"));
        assert_eq!(x86.qemu.cpu_models, ["max"]);
        // Not asked: the hidden and the disabled entry.
        for n in ["older-arm64", "qemu-riscv64"] {
            assert_eq!(
                (&by(n).levels, &by(n).qemu),
                (&None, &Facts::default()),
                "{n}"
            );
        }
        let asked = f.asked();
        assert!(asked.iter().all(|a| a.arch != "riscv64"), "{asked:?}");
        // Levels: the host, arm64 and the extension handler; QEMU: two CPU lists, one version.
        assert_eq!(asked.len(), 3 + 3, "{asked:?}");
    }
}
