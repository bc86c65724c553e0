//! `install --arch LIST|all`: register QEMU interpreters. Everything is checked before the
//! first write; a failure part way undoes this run's changes.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::anyhow;

use crate::arch::{Arch, ArchTable, Host};
use crate::binfmt::apply::{self, Report, Skipped, Step};
use crate::binfmt::{Registration, Registry, kernel_buffer};
use crate::cli::{GlobalArgs, InstallArgs};
use crate::emulator;
use crate::error::{Exit, Failure};
use crate::inspect::Inspector;
use crate::messages::{self, printable};

pub fn run(global: &GlobalArgs, args: &InstallArgs) -> Result<Exit, Failure> {
    let table = super::load_table(global)?;
    let all = args.arch.trim().eq_ignore_ascii_case("all");
    let arches = table
        .lookup_list(&args.arch)
        .map_err(|e| Failure::bad_input(anyhow!("--arch: {e}")))?;
    let overrides = parse_overrides(&table, &args.interpreter)?;
    let search = super::qemu_paths(global);

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
    let inspector = Inspector::new(&table, host.clone(), snap.clone());

    let mut steps: Vec<Step> = Vec::new();
    let mut report = Report::default();
    for arch in arches {
        let skip = |reason: String| Skipped {
            arch: arch.name.clone(),
            reason,
        };
        if arch.qemu.is_none() {
            report.skipped.push(skip(format!(
                "QEMU has no user-mode emulator for {}",
                arch.name
            )));
            continue;
        }
        if host.arch.as_deref() == Some(arch.name.as_str()) {
            report.skipped.push(skip(
                "the host's own architecture: a handler would send every native program through QEMU".into(),
            ));
            continue;
        }
        if inspector.runs_natively(arch) {
            report.skipped.push(skip(format!(
                "this kernel runs {} programs itself (a probe ran in a private binfmt_misc)",
                arch.name
            )));
            continue;
        }
        let path = match overrides.get(&arch.name) {
            Some(p) => p.clone(),
            None => match emulator::find(arch, &search) {
                Some(p) => p,
                None if all => {
                    report.skipped.push(skip(format!(
                        "no interpreter qemu-{}-static found",
                        qemu(arch)
                    )));
                    continue;
                }
                None => {
                    return Err(Failure::bad_input(anyhow!(
                        "no interpreter for {}: looked for qemu-{cpu}-static and qemu-{cpu} in {} (apt-get install qemu-user-static, or --interpreter {}=PATH)",
                        arch.name,
                        search
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                        arch.name,
                        cpu = qemu(arch),
                    )));
                }
            },
        };
        let (reg, emu) = plan_one(arch, &path, args)?;
        // The rule must not take its own interpreter: every exec would loop (ELOOP).
        if crate::arch::rule_matches(&reg.magic, &reg.mask, reg.offset, &kernel_buffer(&emu.head)) {
            return Err(Failure::bad_input(anyhow!(
                "the rule for {} would match its own interpreter {}; exec would loop (ELOOP)",
                arch.name,
                path.display()
            )));
        }
        let existing = snap.find(&reg.name);
        let foreign: Vec<_> = snap
            .entries
            .iter()
            .filter(|e| e.name != reg.name && reg.overlaps(e))
            .collect();
        if !foreign.is_empty() && !args.replace_foreign {
            let names: Vec<String> = foreign
                .iter()
                .map(|e| format!("{} ({})", e.name, e.interpreter))
                .collect();
            report.skipped.push(skip(format!(
                "its rule overlaps another owner's entry {}; left alone (--replace-foreign to override)",
                names.join(", ")
            )));
            continue;
        }
        let mut old: Vec<_> = foreign.into_iter().cloned().collect();
        steps.push(match existing {
            Some(e) if reg.same_as(e) && old.is_empty() => Step::Unchanged(reg.name.clone()),
            Some(e) => {
                old.push(e.clone());
                Step::Replace { old, new: reg }
            }
            None if old.is_empty() => Step::Register(reg),
            None => Step::Replace { old, new: reg },
        });
    }

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

fn qemu(arch: &Arch) -> &str {
    arch.qemu.as_deref().unwrap_or("?")
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

/// The registration for one arch, and its interpreter as checked.
fn plan_one(
    arch: &Arch,
    path: &std::path::Path,
    args: &InstallArgs,
) -> Result<(Registration, emulator::Emulator), Failure> {
    let fix = !args.no_fix_binary;
    let emu = emulator::check(path, fix)
        .map_err(|e| Failure::bad_input(anyhow!("{}: {e}", arch.name)))?;
    let mut flags = String::new();
    if args.credential {
        if !emu.root_owned {
            return Err(Failure::bad_input(anyhow!(
                "{}: --credential needs a root-owned interpreter; {} is not (C runs setuid programs with their privileges through it)",
                arch.name,
                path.display()
            )));
        }
        flags.push_str("OC");
    }
    if fix {
        flags.push('F');
    }
    let reg = Registration {
        name: arch.entry_name().unwrap_or_default(),
        offset: 0,
        magic: arch.magic.clone(),
        mask: arch.mask.clone(),
        interpreter: path.display().to_string(),
        flags,
    };
    reg.validate()
        .map_err(|e| Failure::bad_input(anyhow!("{}: {e}", arch.name)))?;
    Ok((reg, emu))
}

fn print_dry_run(global: &GlobalArgs, steps: &[Step], report: &Report) -> Exit {
    let strings: Vec<String> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Register(r) | Step::Replace { new: r, .. } => Some(r.register_string()),
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
            messages::warn(&format!("skip {}: {}", s.arch, s.reason));
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
        messages::out(&format!("skipped    {}: {}", s.arch, s.reason));
    }
    if let Some(f) = &r.failed {
        messages::error(&format!("{}: {}", f.name, f.error));
        if !r.rolled_back.is_empty() {
            messages::error(&format!(
                "undid this run's changes: {}",
                r.rolled_back.join(", ")
            ));
        }
        for e in &r.rollback_errors {
            messages::error(&format!("could not undo {e}; run install again"));
        }
    }
}
