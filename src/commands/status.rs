//! `status`: binfmt_misc's state and every entry.

use crate::arch::Host;
use crate::binfmt::{Place, Registry};
use crate::cli::GlobalArgs;
use crate::error::{Exit, Failure};
use crate::machine::Live;
use crate::messages::{self, printable};
use crate::status::{self, Status};

pub fn run(global: &GlobalArgs) -> Result<Exit, Failure> {
    let table = super::load_table(global)?;
    let issues = super::load_issues(global, &table)?;
    let registry = Registry::new(&global.binfmt_dir);
    let snap = super::snapshot(&registry)?;
    let host = Host::detect(&table);
    let status = status::gather(
        &Live::new(),
        &table,
        host,
        &registry,
        snap,
        &issues,
        global.json,
    );
    for e in &status.entries {
        if let Some(version) = &e.qemu.qemu_version {
            for w in &e.qemu.known_issues {
                messages::warn(&w.sentence(&e.name, version));
            }
        }
    }
    if let Place::Other(fstype) = registry.place() {
        messages::warn(&format!(
            "{} is not binfmt_misc (it is a {fstype} directory): nothing is mounted there",
            registry.dir().display()
        ));
    }
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
    let mut rows = vec![
        [
            "ENTRY",
            "STATE",
            "FLAGS",
            "OWNED",
            "ARCH",
            "LEVEL",
            "QEMU",
            "INTERPRETER",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for e in &s.entries {
        let note = match (e.interpreter_ok, e.interpreter_fits) {
            (false, _) => "  (missing)",
            (true, Some(false)) => "  (QEMU for another architecture)",
            _ => "",
        };
        rows.push(vec![
            printable(&e.name),
            (if e.enabled { "enabled" } else { "disabled" }).to_string(),
            (if e.flags.is_empty() { "-" } else { &e.flags }).to_string(),
            (if e.owned { "yes" } else { "no" }).to_string(),
            e.arch
                .as_deref()
                .unwrap_or(e.extension.as_deref().map(|_| "(ext)").unwrap_or("-"))
                .to_string(),
            e.levels
                .as_ref()
                .and_then(|l| l.highest)
                .unwrap_or("-")
                .to_string(),
            e.qemu.qemu_version.clone().unwrap_or_else(|| "-".into()),
            format!("{}{note}", printable(&e.interpreter)),
        ]);
    }
    messages::table(&rows, 2);
}
