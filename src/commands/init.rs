//! `init [--config FILE] [--keep-running]`: the step a container, a boot unit or a DaemonSet
//! runs. Everything the config asks for is checked first; then binfmt_misc is mounted, the
//! handlers installed, proven and exported (`supervise::first_pass`), a summary printed, and
//! with `--keep-running` the supervisor keeps them in place (`supervise::Keeper`).

use std::path::Path;

use nix::sys::signal::Signal;

use crate::arch::{ArchTable, Host};
use crate::binfmt::Registry;
use crate::binfmt::plan;
use crate::cli::{GlobalArgs, InitArgs};
use crate::config::{Config, ConfigError, OnSigterm};
use crate::error::{Exit, Failure};
use crate::export::Output;
use crate::messages::{self, printable};
use crate::supervise::{self, Event, Keeper, Request, Summary};
use crate::sys::signals::{SignalWatch, WatchError};

pub fn run(global: &GlobalArgs, args: &InitArgs) -> Result<Exit, Failure> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::defaults(),
    };
    let table = super::load_table(global)?;
    let arches = config.arches(&table)?;
    config.check_paths()?;
    let opts = options(global, &config, &table)?;
    let keep_running = args.keep_running || config.keep_running.enabled;
    // Watched from the start, so a SIGTERM during the first pass is answered after it
    // rather than cutting an install in half.
    let watch = if keep_running {
        Some(SignalWatch::new(&[
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGHUP,
        ])?)
    } else {
        None
    };
    // The whole request is checked before the first write: every interpreter (the plan),
    // and the export directory.
    let export = match &config.export {
        Some(e) => Some((
            e.format,
            Output::check(e.directory.get_ref(), "export.directory")?,
        )),
        None => None,
    };
    let issues = super::load_issues(global, &table)?;
    let host = Host::detect(&table);
    let (planned, skipped) = plan::plan(&crate::machine::Live::new(), &arches, &opts, &host)
        .map_err(|e| ConfigError {
            origin: config.origin().to_string(),
            detail: e.to_string(),
        })?;

    let registry = Registry::new(&global.binfmt_dir);
    if registry.ensure_mounted()? {
        tracing::info!("mounted binfmt_misc at {}", registry.dir().display());
    }
    let request = Request {
        planned,
        skipped,
        replace_foreign: config.replace_foreign,
        test: config.test,
        export,
        issues,
    };
    let summary = supervise::first_pass(&registry, &table, &host, &request)?;
    for w in &summary.warnings {
        messages::warn(w);
    }
    if global.json {
        messages::json(&summary);
    } else {
        print_summary(&summary);
    }
    let exit = match (&summary.install.failed, summary.install.not_permitted) {
        (Some(_), true) => Exit::Environment,
        _ if summary.ok() => Exit::Success,
        _ => Exit::Problem,
    };
    match watch {
        // Nothing will repair a refusal for permission: exit, so the pod's restarts show it.
        Some(watch) if exit != Exit::Environment => {
            let keeper = Keeper {
                registry: &registry,
                table: &table,
                host: &host,
                planned: &request.planned,
                replace_foreign: config.replace_foreign,
                test: config.test,
                interval: config.keep_running.interval(),
                ready_file: config.keep_running.readiness_file(),
                uninstall_on_stop: config.keep_running.on_sigterm == OnSigterm::Uninstall,
                ready: false,
            };
            keeper
                .keep(watch, summary.ok(), &mut |event| match event {
                    Event::Warning(w) | Event::Repaired(w) => messages::warn(&w),
                    Event::Removed(name) => messages::out(&format!("{:<10} {name}", "removed")),
                })
                .map_err(WatchError)?;
            Ok(Exit::Success)
        }
        _ => Ok(exit),
    }
}

/// The registration options the config asks for; `qemu_paths` replaces `--qemu-path`.
fn options(
    global: &GlobalArgs,
    config: &Config,
    table: &ArchTable,
) -> Result<plan::Options, Failure> {
    if config.flags.credential {
        messages::warn(plan::CREDENTIAL_WARNING);
    }
    Ok(plan::Options {
        interpreters: config.interpreters(table)?,
        search: if config.qemu_paths.is_empty() {
            super::qemu_paths(global)?
        } else {
            config.qemu_paths()
        },
        fix_binary: config.flags.fix_binary,
        credential: config.flags.credential,
        preserve_argv0: config.flags.preserve_argv0,
        all: config.all(),
    })
}

fn print_summary(s: &Summary) {
    let r = &s.install;
    super::print_install_report(r);
    for t in &s.test.results {
        match &t.error {
            None => {
                let via = match t.handler.as_deref() {
                    Some("native") | None => "natively".to_string(),
                    Some(h) => format!("through {h}"),
                };
                messages::out(&format!(
                    "{:<10} {} ({} {via}, {} ms)",
                    "tested", t.arch, t.platform, t.ms
                ))
            }
            Some(e) => messages::out(&format!("{:<10} {}: {}", "FAILED", t.arch, printable(e))),
        }
    }
    if let Some(e) = &s.export {
        for f in &e.files {
            messages::out(&format!(
                "{:<10} {}",
                format!("exported ({})", f.status),
                printable(&Path::new(&e.directory).join(&f.name).display().to_string())
            ));
        }
    }
    let failed = s.test.results.iter().filter(|t| !t.ok).count();
    let handlers = r.installed.len() + r.replaced.len() + r.enabled.len() + r.unchanged.len();
    let line = match (&r.failed, failed) {
        (Some(_), _) => {
            "init: installing failed; nothing of this run was left in place".to_string()
        }
        (None, 0) if s.test.results.is_empty() => {
            format!("init: {} in place", messages::count(handlers, "handler"))
        }
        (None, 0) => format!(
            "init: {} in place; {} tested ok",
            messages::count(handlers, "handler"),
            messages::count(s.test.results.len(), "architecture")
        ),
        (None, n) => format!(
            "init: {} in place; {n} of {} failed their test",
            messages::count(handlers, "handler"),
            messages::count(s.test.results.len(), "architecture")
        ),
    };
    messages::out(&line);
}
