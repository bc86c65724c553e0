//! `test`: prove each architecture runs, by executing its probe through the kernel, or run
//! the user's own program the same way (`--binary`). The verdicts are `probe::check`'s.

use std::time::Duration;

use crate::binfmt::Registry;
use crate::cli::{GlobalArgs, TestArgs};
use crate::error::{BadArgument, Exit, Failure};
use crate::machine::Live;
use crate::messages::{self, printable};
use crate::probe::check::{self, Report, Settings, Target, TestResult};

pub fn run(global: &GlobalArgs, args: &TestArgs) -> Result<Exit, Failure> {
    let table = super::load_table(global)?;
    let issues = super::load_issues(global, &table)?;
    let timeout = Duration::try_from_secs_f64(args.timeout)
        .ok()
        .filter(|t| !t.is_zero())
        .ok_or_else(|| {
            BadArgument(format!(
                "--timeout {}: give a positive number of seconds",
                args.timeout
            ))
        })?;
    let registry = Registry::new(&global.binfmt_dir);
    let snap = super::snapshot(&registry)?;
    if let Some(file) = &args.binary {
        let run = check::check_binary(&table, &snap, file, !args.no_chroot, timeout)?;
        if global.json {
            messages::json(&run);
        } else {
            messages::table(&[row(&run.result, &run.path)], 1);
            for line in run.stdout.lines().take(20) {
                messages::out(&format!("  | {}", printable(line)));
            }
        }
        return Ok(verdict(run.result.ok));
    }
    let arches = match &args.arch {
        Some(list) => table
            .lookup_list(list)
            .map_err(|e| BadArgument(format!("--arch: {e}")))?,
        None => check::default_set(&table, &snap),
    };
    let targets: Vec<Target<'_>> = if args.entry.is_empty() {
        arches.into_iter().map(Target::plain).collect()
    } else {
        args.entry
            .iter()
            .map(|name| {
                check::entry_target(&table, &snap, name).map_err(|e| {
                    BadArgument(format!(
                        "--entry {name}: {e} in {}",
                        registry.dir().display()
                    ))
                })
            })
            .collect::<Result<_, _>>()?
    };
    let settings = Settings {
        chroot: !args.no_chroot,
        timeout,
        issues: Some(&issues),
        cpu_models: global.json,
    };
    let report = check::test_arches(&Live::new(), &table, &snap, &targets, settings)?;
    warn_known_issues(&report.results);
    if global.json {
        messages::json(&report);
    } else {
        print_report(&report);
    }
    Ok(verdict(report.results.iter().all(|r| r.ok)))
}

fn verdict(ok: bool) -> Exit {
    if ok { Exit::Success } else { Exit::Problem }
}

/// A warning on stderr for each known problem of a handler's QEMU version.
fn warn_known_issues(results: &[TestResult]) {
    for r in results {
        let (Some(handler), Some(version)) = (&r.handler, &r.qemu.qemu_version) else {
            continue;
        };
        for w in &r.qemu.known_issues {
            messages::warn(&w.sentence(handler, version));
        }
    }
}

/// One result as a row of cells: verdict, what, platform, handler, level, instruction-set
/// level (and the `QEMU_CPU` value that lifts it), QEMU version, time, error.
fn row(r: &TestResult, label: &str) -> Vec<String> {
    let isa = match &r.levels {
        Some(p) => {
            let mut s = p.highest.unwrap_or("none").to_string();
            if let Some(l) = &p.lift {
                s.push_str(&format!(
                    " ({} with QEMU_CPU={})",
                    l.highest.unwrap_or("none"),
                    l.qemu_cpu
                ));
            }
            s
        }
        None => "-".to_string(),
    };
    vec![
        (if r.ok { "ok" } else { "FAIL" }).to_string(),
        printable(label),
        r.platform.clone(),
        printable(r.handler.as_deref().unwrap_or("-")),
        format!(
            "level {}",
            r.level.map_or("-".to_string(), |l| l.to_string())
        ),
        isa,
        r.qemu
            .qemu_version
            .as_deref()
            .map_or("-".to_string(), |v| format!("QEMU {v}")),
        format!("{:>6.1} ms", r.ms),
        r.error.as_deref().map(printable).unwrap_or_default(),
    ]
}

fn print_report(r: &Report) {
    let rows: Vec<Vec<String>> = r.results.iter().map(|res| row(res, &res.arch)).collect();
    messages::table(&rows, 1);
    let failed = r.results.iter().filter(|x| !x.ok).count();
    let ran = r.results.len() - failed;
    messages::out(&format!(
        "{ran} of {} {}; supported: {}",
        messages::count(r.results.len(), "architecture"),
        if ran == 1 { "runs" } else { "run" },
        if r.supported.is_empty() {
            "none".to_string()
        } else {
            r.supported.join(",")
        }
    ));
}
