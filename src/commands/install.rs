//! `install --arch LIST|all`: register QEMU interpreters. Everything is checked before the
//! first write; a failure part way undoes this run's changes.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::anyhow;

use crate::arch::{ArchTable, Host};
use crate::binfmt::apply::{self, Report, Skipped, Step};
use crate::binfmt::plan::{self, Planned};
use crate::binfmt::{Registry, Snapshot};
use crate::cli::{GlobalArgs, HandlerArgs, InstallArgs};
use crate::error::{Exit, Failure};
use crate::messages::{self, printable};

pub fn run(global: &GlobalArgs, args: &InstallArgs) -> Result<Exit, Failure> {
    let table = super::load_table(global)?;
    let arches = table
        .lookup_list(&args.arch)
        .map_err(|e| Failure::bad_input(anyhow!("--arch: {e}")))?;
    let opts = handler_options(global, &table, &args.arch, &args.handler)?;

    let registry = Registry::new(&global.binfmt_dir);
    if !args.dry_run {
        match registry.ensure_mounted() {
            Ok(true) => messages::warn(&format!(
                "mounted binfmt_misc at {}",
                registry.dir().display()
            )),
            Ok(false) => {}
            Err(e) => {
                return Err(Failure::environment(anyhow!(
                    "binfmt_misc is not mounted at {} and mounting it failed: {e} (run as root, or mount -t binfmt_misc binfmt_misc {})",
                    registry.dir().display(),
                    registry.dir().display()
                )));
            }
        }
    }
    let snap = super::snapshot(&registry)?;
    let host = Host::detect(&table);
    let (planned, skipped) = plan::plan(&crate::machine::Live::new(), &arches, &opts, &host)?;

    let (steps, report) = steps_for(&snap, planned, skipped, args.replace_foreign);

    if args.dry_run {
        return Ok(print_dry_run(global, &steps, &report));
    }
    let report = apply::apply(&registry, &steps, report);
    if global.json {
        messages::json(&report);
    } else {
        print_report(&report);
    }
    Ok(match (&report.failed, report.not_permitted) {
        (None, _) => Exit::Success,
        (Some(_), true) => Exit::Environment,
        (Some(_), false) => Exit::Problem,
    })
}

/// The steps that bring `snap` to the planned entries: `Unchanged` where one is already
/// exactly there, `Replace` where ours differs (or another owner's overlapping entry is to
/// go, with `replace_foreign`), `Register` otherwise. An arch whose rule overlaps another
/// owner's entry is skipped instead when `replace_foreign` is off. Shared with `init`.
pub(super) fn steps_for(
    snap: &Snapshot,
    planned: Vec<Planned<'_>>,
    skipped: Vec<Skipped>,
    replace_foreign: bool,
) -> (Vec<Step>, Report) {
    let mut steps: Vec<Step> = Vec::new();
    let mut report = Report {
        skipped,
        ..Report::default()
    };
    for u in snap
        .unreadable
        .iter()
        .filter(|u| !planned.iter().any(|p| p.reg.name == u.name))
    {
        messages::warn(&format!(
            "entry {} is not in the kernel's format ({}); it was not checked for overlap",
            printable(&u.name),
            printable(&u.reason)
        ));
    }
    for Planned {
        arch,
        reg,
        emulator,
    } in planned
    {
        let pin = Some(emulator.pin);
        if let Some(u) = snap.unreadable.iter().find(|u| u.name == reg.name) {
            report.skipped.push(Skipped {
                arch: arch.name.clone(),
                reason: format!(
                    "an entry named {} is there but not in the kernel's format ({}); left alone (uninstall --name {} removes it)",
                    u.name, u.reason, u.name
                ),
            });
            continue;
        }
        let existing = snap.find(&reg.name);
        let foreign: Vec<_> = snap
            .entries
            .iter()
            .filter(|e| e.name != reg.name && reg.overlaps(e))
            .collect();
        if !foreign.is_empty() && !replace_foreign {
            let names: Vec<String> = foreign
                .iter()
                .map(|e| format!("{} ({})", e.name, e.interpreter))
                .collect();
            report.skipped.push(Skipped {
                arch: arch.name.clone(),
                reason: format!(
                    "its rule overlaps another owner's entry {}; left alone (--replace-foreign to override)",
                    names.join(", ")
                ),
            });
            continue;
        }
        let mut old: Vec<_> = foreign.into_iter().cloned().collect();
        steps.push(match existing {
            Some(e) if reg.same_as(e) && old.is_empty() => Step::Unchanged(reg.name.clone()),
            Some(e) => {
                old.push(e.clone());
                Step::Replace { old, new: reg, pin }
            }
            None if old.is_empty() => Step::Register(reg, pin),
            None => Step::Replace { old, new: reg, pin },
        });
    }
    (steps, report)
}

/// The registration options a command line asks for (shared with `export`).
pub(super) fn handler_options(
    global: &GlobalArgs,
    table: &ArchTable,
    arch_list: &str,
    args: &HandlerArgs,
) -> Result<plan::Options, Failure> {
    Ok(plan::Options {
        interpreters: parse_overrides(table, &args.interpreter)?,
        search: super::qemu_paths(global),
        fix_binary: !args.no_fix_binary,
        credential: args.credential,
        preserve_argv0: !args.no_preserve_argv0,
        all: arch_list.trim().eq_ignore_ascii_case("all"),
    })
}

/// `--interpreter ARCH=PATH` pairs.
fn parse_overrides(
    table: &ArchTable,
    pairs: &[String],
) -> Result<HashMap<String, PathBuf>, Failure> {
    let mut out = HashMap::new();
    for p in pairs {
        let (name, path) = p
            .split_once('=')
            .ok_or_else(|| Failure::bad_input(anyhow!("--interpreter '{p}' is not ARCH=PATH")))?;
        let arch = table
            .lookup(name)
            .map_err(|e| Failure::bad_input(anyhow!("--interpreter: {e}")))?;
        out.insert(arch.name.clone(), PathBuf::from(path));
    }
    Ok(out)
}

fn print_dry_run(global: &GlobalArgs, steps: &[Step], report: &Report) -> Exit {
    let strings: Vec<String> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Register(r, _) | Step::Replace { new: r, .. } => Some(r.register_string()),
            Step::Unchanged(_) => None,
        })
        .collect();
    if global.json {
        messages::json(&serde_json::json!({
            "register": strings,
            "unchanged": steps.iter().filter_map(|s| match s { Step::Unchanged(n) => Some(n), _ => None }).collect::<Vec<_>>(),
            "skipped": report.skipped,
        }));
    } else {
        for s in &strings {
            messages::out(&printable(s));
        }
        for s in &report.skipped {
            messages::warn(&format!("skip {}: {}", s.arch, printable(&s.reason)));
        }
    }
    Exit::Success
}

fn print_report(r: &Report) {
    for n in &r.installed {
        messages::out(&format!("installed  {n}"));
    }
    for n in &r.replaced {
        messages::out(&format!("replaced   {n}"));
    }
    for n in &r.unchanged {
        messages::out(&format!("unchanged  {n}"));
    }
    for s in &r.skipped {
        messages::out(&format!("skipped    {}: {}", s.arch, printable(&s.reason)));
    }
    if let Some(f) = &r.failed {
        messages::error(&format!("{}: {}", f.name, printable(&f.error)));
        if !r.rolled_back.is_empty() {
            messages::error(&format!(
                "undid this run's changes: {}",
                r.rolled_back.join(", ")
            ));
        }
        for e in &r.rollback_errors {
            messages::error(&format!(
                "could not undo {}; run install again",
                printable(e)
            ));
        }
    }
}
