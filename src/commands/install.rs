//! `install --arch LIST|all`: register QEMU interpreters. Everything is checked before the
//! first write; a failure part way undoes this run's changes.

use crate::arch::Host;
use crate::binfmt::apply::{self, Report, Step};
use crate::binfmt::{Registry, plan, steps};
use crate::cli::{GlobalArgs, InstallArgs};
use crate::error::{BadArgument, Exit, Failure};
use crate::messages::{self, printable};

pub fn run(global: &GlobalArgs, args: &InstallArgs) -> Result<Exit, Failure> {
    let table = super::load_table(global)?;
    let arches = table
        .lookup_list(&args.arch)
        .map_err(|e| BadArgument(format!("--arch: {e}")))?;
    let opts = super::handler_options(global, &table, &args.arch, &args.handler)?;
    // Every interpreter is found and checked before anything is written, the mount included.
    let host = Host::detect(&table);
    let (planned, skipped) = plan::plan(&crate::machine::Live::new(), &arches, &opts, &host)?;

    let registry = Registry::new(&global.binfmt_dir);
    if !args.dry_run && registry.ensure_mounted()? {
        messages::warn(&format!(
            "mounted binfmt_misc at {}",
            registry.dir().display()
        ));
    }
    let snap = super::snapshot(&registry)?;
    let plan = steps::steps_for(&snap, planned, skipped, args.replace_foreign);
    for w in &plan.warnings {
        messages::warn(&printable(w));
    }
    if args.dry_run {
        return Ok(print_dry_run(global, &plan.steps, &plan.report));
    }
    let report = apply::apply(&registry, &plan.steps, plan.report);
    if global.json {
        messages::json(&report);
    } else {
        super::print_install_report(&report);
    }
    Ok(match (&report.failed, report.not_permitted) {
        (None, _) => Exit::Success,
        (Some(_), true) => Exit::Environment,
        (Some(_), false) => Exit::Problem,
    })
}

fn print_dry_run(global: &GlobalArgs, steps: &[Step], report: &Report) -> Exit {
    let strings: Vec<String> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Register(r, _) | Step::Replace { new: r, .. } => Some(r.register_string()),
            Step::Unchanged(_) | Step::Enable(_) => None,
        })
        .collect();
    if global.json {
        messages::json(&serde_json::json!({
            "register": strings,
            "unchanged": steps.iter().filter_map(|s| match s { Step::Unchanged(n) => Some(n), _ => None }).collect::<Vec<_>>(),
            "enable": steps.iter().filter_map(|s| match s { Step::Enable(n) => Some(n), _ => None }).collect::<Vec<_>>(),
            "skipped": report.skipped,
        }));
    } else {
        for s in &strings {
            messages::out(&printable(s));
        }
        for s in steps {
            if let Step::Enable(n) = s {
                messages::warn(&format!("would enable {n}: it is there but disabled"));
            }
        }
        for s in &report.skipped {
            messages::warn(&format!("skip {}: {}", s.arch, printable(&s.reason)));
        }
    }
    Exit::Success
}
