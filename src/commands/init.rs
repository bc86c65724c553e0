//! `init [--config FILE] [--keep-running]`: the step a container, a boot unit or a DaemonSet
//! runs. Mount binfmt_misc, install the configured handlers, prove them by running each
//! architecture's probe through the kernel, export them for the next boot, print a summary.
//! With `--keep-running` it stays up and keeps the handlers in place.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::anyhow;
use nix::sys::signal::Signal;
use serde::Serialize;

use super::test::Report as TestReport;
use crate::arch::{Arch, ArchTable, Host};
use crate::binfmt::Registry;
use crate::binfmt::apply::{self, Report, Skipped, Step};
use crate::binfmt::plan::{self, Planned};
use crate::cli::{ExportFormat, GlobalArgs, InitArgs};
use crate::config::{self, Config, OnSigterm};
use crate::error::{Exit, Failure};
use crate::messages;
use crate::sys::signals::SignalWatch;

/// What one pass did; with `--json`, the document printed (install's keys and test's).
#[derive(Debug, Serialize)]
struct Summary {
    #[serde(flatten)]
    install: Report,
    /// `test`'s report on every entry in place and the host's own architecture (with
    /// `test = false`: no results, and `supported` from the entries in place).
    #[serde(flatten)]
    test: TestReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    export: Option<ExportSummary>,
}

#[derive(Debug, Serialize)]
struct ExportSummary {
    format: &'static str,
    directory: String,
    files: Vec<ExportedFile>,
}

#[derive(Debug, Serialize)]
struct ExportedFile {
    name: String,
    /// `written` or `unchanged`.
    status: &'static str,
}

impl Summary {
    fn ok(&self) -> bool {
        self.install.failed.is_none() && self.test.results.iter().all(|r| r.ok)
    }
}

pub fn run(global: &GlobalArgs, args: &InitArgs) -> Result<Exit, Failure> {
    let config = match &args.config {
        Some(path) => Config::load(path),
        None => Ok(Config::defaults()),
    }
    .map_err(Failure::bad_input)?;
    let table = super::load_table(global)?;
    let arches = config.arches(&table).map_err(Failure::bad_input)?;
    let opts = options(global, &config, &table)?;
    let keep_running = args.keep_running || config.keep_running.enabled;
    // Watched from the start, so a SIGTERM during the first pass is answered after it
    // rather than cutting an install in half.
    let watch = if keep_running {
        Some(
            SignalWatch::new(&[Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP])
                .map_err(|e| Failure::environment(anyhow!("cannot watch signals: {e}")))?,
        )
    } else {
        None
    };

    let registry = Registry::new(&global.binfmt_dir);
    mount(&registry)?;
    let host = Host::detect(&table);
    let (planned, skipped) = plan::plan(&crate::machine::Live::new(), &arches, &opts, &host)
        .map_err(|e| Failure::bad_input(anyhow!("config {}: {e}", config.origin())))?;

    let snap = super::snapshot(&registry)?;
    let (steps, report) =
        super::install::steps_for(&snap, planned.clone(), skipped, config.replace_foreign);
    let install = apply::apply(&registry, &steps, report);
    let in_place = in_place(&planned, &install);
    let test = match (config.test, &install.failed) {
        (true, None) => test_step(&registry, &table, &host, &in_place)?,
        _ => TestReport {
            results: Vec::new(),
            supported: untested_platforms(&host, &table, &in_place),
        },
    };
    let export = match (&config.export, &install.failed) {
        (Some(e), None) => Some(export(e, &planned)?),
        _ => None,
    };
    let summary = Summary {
        install,
        test,
        export,
    };
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
                config: &config,
                planned: &planned,
                ready_file: config.keep_running.readiness_file(),
                ready: false,
            };
            keeper.keep(watch, summary.ok())
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
    Ok(plan::Options {
        interpreters: config.interpreters(table).map_err(Failure::bad_input)?,
        search: if config.qemu_paths.is_empty() {
            super::qemu_paths(global)
        } else {
            config.qemu_paths()
        },
        fix_binary: config.flags.fix_binary,
        credential: config.flags.credential,
        preserve_argv0: config.flags.preserve_argv0,
        all: config.all(),
    })
}

fn mount(registry: &Registry) -> Result<(), Failure> {
    match registry.ensure_mounted() {
        Ok(true) => {
            tracing::info!("mounted binfmt_misc at {}", registry.dir().display());
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(e) => Err(Failure::environment(anyhow!(
            "binfmt_misc is not mounted at {} and mounting it failed: {e} (run as root or in a privileged container, or mount -t binfmt_misc binfmt_misc {})",
            registry.dir().display(),
            registry.dir().display()
        ))),
    }
}

/// The planned registrations whose entries are now in place.
fn in_place<'p, 't>(planned: &'p [Planned<'t>], report: &Report) -> Vec<&'p Planned<'t>> {
    if report.failed.is_some() {
        return Vec::new();
    }
    planned
        .iter()
        .filter(|p| {
            let n = &p.reg.name;
            report.installed.contains(n)
                || report.unchanged.contains(n)
                || report.replaced.contains(n)
        })
        .collect()
}

/// The TEST step: `test`'s own check of each entry in place, and of the host's own
/// architecture, each probe run through the kernel from an empty chroot (so only an `F`
/// handler passes, as inside a container).
fn test_step(
    registry: &Registry,
    table: &ArchTable,
    host: &Host,
    in_place: &[&Planned<'_>],
) -> Result<TestReport, Failure> {
    let snap = super::snapshot(registry)?;
    let mut arches: Vec<&Arch> = host.arch.iter().filter_map(|a| table.find(a)).collect();
    arches.extend(in_place.iter().map(|p| p.arch));
    super::test::test_arches(table, &snap, &arches, true, TEST_TIMEOUT)
        .map_err(|e| Failure::environment(anyhow!("cannot run the probes: {e}")))
}

/// Each probe's limit, as `test`'s default.
const TEST_TIMEOUT: Duration = Duration::from_secs(10);

/// With `test = false`: the host's platforms and those of every entry in place.
fn untested_platforms(host: &Host, table: &ArchTable, in_place: &[&Planned<'_>]) -> Vec<String> {
    let mut out: Vec<String> = host
        .arch
        .as_deref()
        .and_then(|a| table.find(a))
        .map(|a| a.platforms())
        .unwrap_or_default();
    for p in in_place {
        out.extend(p.arch.platforms());
    }
    out
}

fn export(e: &config::Export, planned: &[Planned<'_>]) -> Result<ExportSummary, Failure> {
    let format = match e.format {
        config::ExportFormat::Systemd => ExportFormat::Systemd,
        config::ExportFormat::Debian => ExportFormat::Debian,
        config::ExportFormat::Register => ExportFormat::Register,
    };
    let dir = e.directory.get_ref();
    super::export::check_output_dir(dir)?;
    let mut files = Vec::new();
    for p in planned {
        let name = super::export::file_name(format, &p.reg);
        let content = super::export::render(format, p);
        let status = super::export::write_file(dir, &name, &content)?;
        files.push(ExportedFile { name, status });
    }
    Ok(ExportSummary {
        format: super::export::format_name(format),
        directory: dir.display().to_string(),
        files,
    })
}

fn print_summary(s: &Summary) {
    let r = &s.install;
    for (word, names) in [
        ("installed", &r.installed),
        ("replaced", &r.replaced),
        ("unchanged", &r.unchanged),
    ] {
        for n in names {
            messages::out(&format!("{word:<10} {n}"));
        }
    }
    for k in &r.skipped {
        messages::out(&format!("{:<10} {}: {}", "skipped", k.arch, k.reason));
    }
    if let Some(f) = &r.failed {
        messages::error(&format!("{}: {}", f.name, f.error));
        if !r.rolled_back.is_empty() {
            messages::error(&format!(
                "undid this run's changes: {}",
                r.rolled_back.join(", ")
            ));
        }
    }
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
            Some(e) => messages::out(&format!("{:<10} {}: {e}", "FAILED", t.arch)),
        }
    }
    if let Some(e) = &s.export {
        for f in &e.files {
            messages::out(&format!(
                "{:<10} {}",
                format!("exported ({})", f.status),
                Path::new(&e.directory).join(&f.name).display()
            ));
        }
    }
    let failed = s.test.results.iter().filter(|t| !t.ok).count();
    let handlers = r.installed.len() + r.replaced.len() + r.unchanged.len();
    let line = match (&r.failed, failed) {
        (Some(_), _) => {
            "init: installing failed; nothing of this run was left in place".to_string()
        }
        (None, 0) if s.test.results.is_empty() => format!("init: {handlers} handlers in place"),
        (None, 0) => format!(
            "init: {handlers} handlers in place; {} architectures tested ok",
            s.test.results.len()
        ),
        (None, n) => format!(
            "init: {handlers} handlers in place; {n} of {} architectures failed their test",
            s.test.results.len()
        ),
    };
    messages::out(&line);
}

/// `--keep-running`: keeps the handlers in place until SIGTERM.
struct Keeper<'a, 't> {
    registry: &'a Registry,
    table: &'t ArchTable,
    host: &'a Host,
    config: &'a Config,
    planned: &'a [Planned<'t>],
    ready_file: PathBuf,
    ready: bool,
}

impl Keeper<'_, '_> {
    fn keep(mut self, watch: SignalWatch, first_pass_ok: bool) -> Result<Exit, Failure> {
        let interval = self.config.keep_running.interval();
        self.set_ready(first_pass_ok);
        tracing::info!(
            "keeping {} handlers in place, checking every {} s",
            self.planned.len(),
            interval.as_secs()
        );
        loop {
            let got = watch
                .next(Some(interval))
                .map_err(|e| Failure::environment(anyhow!("cannot wait for signals: {e}")))?;
            match got.map(|g| g.signal) {
                Some(Signal::SIGTERM | Signal::SIGINT) => return Ok(self.stop()),
                // SIGHUP or the interval: check now.
                _ => self.check(),
            }
        }
    }

    /// Put back what is missing or changed, and test what was put back (everything, while
    /// not yet ready).
    fn check(&mut self) {
        if let Err(e) = mount(self.registry) {
            messages::warn(&e.to_string());
            self.set_ready(false);
            return;
        }
        let snap = match self.registry.snapshot() {
            Ok(s) => s,
            Err(e) => {
                messages::warn(&format!("cannot read binfmt_misc: {e}"));
                self.set_ready(false);
                return;
            }
        };
        // Pins from the first check would refuse an interpreter upgraded since: check again.
        let machine = crate::machine::Live::new();
        let planned: Result<Vec<Planned<'_>>, _> =
            self.planned.iter().map(|p| p.rechecked(&machine)).collect();
        let planned = match planned {
            Ok(p) => p,
            Err(e) => {
                messages::warn(&format!("cannot put handlers back: {e}"));
                self.set_ready(false);
                return;
            }
        };
        let (steps, report) = super::install::steps_for(
            &snap,
            planned,
            Vec::<Skipped>::new(),
            self.config.replace_foreign,
        );
        let changing = steps.iter().any(|s| !matches!(s, Step::Unchanged(_)));
        if !changing && self.ready {
            return;
        }
        let report = apply::apply(self.registry, &steps, report);
        if let Some(f) = &report.failed {
            messages::warn(&format!("cannot put {} back: {}", f.name, f.error));
            self.set_ready(false);
            return;
        }
        for n in &report.installed {
            messages::warn(&format!("{n} had disappeared; registered it again"));
        }
        for n in &report.replaced {
            messages::warn(&format!("{n} had been changed; registered ours again"));
        }
        let touched: Vec<&Planned<'_>> = self
            .planned
            .iter()
            .filter(|p| {
                !self.ready
                    || report.installed.contains(&p.reg.name)
                    || report.replaced.contains(&p.reg.name)
            })
            .filter(|p| !report.skipped.iter().any(|s| s.arch == p.arch.name))
            .collect();
        let ok = if self.config.test {
            match test_step(self.registry, self.table, self.host, &touched) {
                Ok(report) => {
                    for r in report.results.iter().filter(|r| !r.ok) {
                        messages::warn(&format!(
                            "{} failed its test: {}",
                            r.arch,
                            r.error.as_deref().unwrap_or("")
                        ));
                    }
                    report.results.iter().all(|r| r.ok)
                }
                Err(e) => {
                    messages::warn(&e.to_string());
                    false
                }
            }
        } else {
            true
        };
        self.set_ready(ok);
    }

    /// Write the readiness file on becoming ready, remove it on ceasing to be.
    fn set_ready(&mut self, ready: bool) {
        if ready == self.ready {
            return;
        }
        let result = if ready {
            write_ready(&self.ready_file, self.planned)
        } else {
            remove_ready(&self.ready_file)
        };
        match result {
            Ok(()) => {
                self.ready = ready;
                tracing::info!(
                    "{} {}",
                    if ready {
                        "ready: wrote"
                    } else {
                        "not ready: removed"
                    },
                    self.ready_file.display()
                );
            }
            Err(e) => messages::warn(&format!(
                "readiness file {}: {e}",
                self.ready_file.display()
            )),
        }
    }

    fn stop(mut self) -> Exit {
        self.set_ready(false);
        if self.config.keep_running.on_sigterm == OnSigterm::Uninstall {
            for p in self.planned {
                match self.registry.remove(&p.reg.name) {
                    Ok(true) => messages::out(&format!("{:<10} {}", "removed", p.reg.name)),
                    Ok(false) => {}
                    Err(e) => messages::warn(&format!("cannot remove {}: {e}", p.reg.name)),
                }
            }
        }
        tracing::info!("stopping on signal; exit 0");
        Exit::Success
    }
}

/// The readiness file, written whole (a temporary file renamed over it): a probe never sees
/// half of it.
fn write_ready(path: &Path, planned: &[Planned<'_>]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let names: Vec<&str> = planned.iter().map(|p| p.reg.name.as_str()).collect();
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, format!("ready {}\n", names.join(" ")))?;
    std::fs::rename(&tmp, path)
}

fn remove_ready(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
