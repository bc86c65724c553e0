//! What `init` does, as a library: one pass (install the planned handlers, prove them by
//! running each architecture's probe through the kernel, export them for the next boot), and,
//! with `--keep-running`, the supervisor that keeps them in place until SIGTERM.
//!
//! Nothing here prints: the supervisor reports what it does as [`Event`]s.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::Serialize;

use crate::arch::{Arch, ArchTable, Host};
use crate::binfmt::Registry;
use crate::binfmt::apply::{self, Report, Skipped};
use crate::binfmt::plan::Planned;
use crate::binfmt::steps;
use crate::error::{Class, Classify};
use crate::export::{self, ExportError, Format, Output};
use crate::probe::check::{self, CheckError};
use crate::qemu::known::IssueTable;
use crate::sys::signals::SignalWatch;

/// Each probe's limit, as `test`'s default.
const TEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What init was asked to do, checked whole before anything is written.
#[derive(Debug)]
pub struct Request<'t> {
    pub planned: Vec<Planned<'t>>,
    pub skipped: Vec<Skipped>,
    pub replace_foreign: bool,
    /// Prove each handler by running its probe.
    pub test: bool,
    /// Where to export the handlers for the next boot.
    pub export: Option<(Format, Output)>,
    /// Known-bad QEMU versions, for the test step's warnings.
    pub issues: IssueTable,
}

/// What one pass did; with `--json`, the document printed (install's keys and test's).
#[derive(Debug, Serialize)]
pub struct Summary {
    #[serde(flatten)]
    pub install: Report,
    /// `test`'s report on every entry in place and the host's own architecture (with
    /// `test = false`: no results, and `supported` from the entries in place).
    #[serde(flatten)]
    pub test: check::Report,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export: Option<Exported>,
    /// Entries binfmt-setup could not judge (not in the kernel's format).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Exported {
    pub format: &'static str,
    pub directory: String,
    pub files: Vec<ExportedFile>,
}

#[derive(Debug, Serialize)]
pub struct ExportedFile {
    pub name: String,
    /// `written` or `unchanged`.
    pub status: &'static str,
}

impl Summary {
    pub fn ok(&self) -> bool {
        self.install.failed.is_none() && self.test.results.iter().all(|r| r.ok)
    }
}

/// Why a pass could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error(transparent)]
    Read(#[from] crate::binfmt::BinfmtError),
    #[error(transparent)]
    Check(#[from] CheckError),
    #[error(transparent)]
    Export(#[from] ExportError),
}

impl Classify for PassError {
    fn class(&self) -> Class {
        match self {
            PassError::Read(e) => e.class(),
            PassError::Check(e) => e.class(),
            PassError::Export(e) => e.class(),
        }
    }
}

/// Install, test and export, once. binfmt_misc must be mounted already.
pub fn first_pass(
    registry: &Registry,
    table: &ArchTable,
    host: &Host,
    req: &Request<'_>,
) -> Result<Summary, PassError> {
    let snap = registry.snapshot()?;
    let plan = steps::steps_for(
        &snap,
        req.planned.clone(),
        req.skipped.clone(),
        req.replace_foreign,
    );
    let install = apply::apply(registry, &plan.steps, plan.report);
    let in_place = in_place(&req.planned, &install);
    let test = match (req.test, &install.failed) {
        (true, None) => test_step(registry, table, host, &in_place, Some(&req.issues))?,
        _ => check::Report {
            results: Vec::new(),
            supported: untested_platforms(host, table, &in_place),
        },
    };
    let export = match (&req.export, &install.failed) {
        (Some((format, out)), None) => {
            let mut files = export::render_all(*format, &req.planned);
            out.write_all(&mut files)?;
            Some(Exported {
                format: format.as_str(),
                directory: out.dir().display().to_string(),
                files: files
                    .into_iter()
                    .map(|f| ExportedFile {
                        name: f.name,
                        status: f.status,
                    })
                    .collect(),
            })
        }
        _ => None,
    };
    Ok(Summary {
        install,
        test,
        export,
        warnings: plan.warnings,
    })
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
                || report.enabled.contains(n)
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
    issues: Option<&IssueTable>,
) -> Result<check::Report, PassError> {
    let snap = registry.snapshot()?;
    let mut arches: Vec<&Arch> = host.arch.iter().filter_map(|a| table.find(a)).collect();
    arches.extend(in_place.iter().map(|p| p.arch));
    let settings = check::Settings {
        chroot: true,
        timeout: TEST_TIMEOUT,
        issues,
        cpu_models: true,
    };
    let targets: Vec<check::Target<'_>> = arches.into_iter().map(check::Target::plain).collect();
    Ok(check::test_arches(
        &crate::machine::Live::new(),
        table,
        &snap,
        &targets,
        settings,
    )?)
}

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

/// What the supervisor did or met, for the caller to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Something is wrong and could not be repaired (now): the handlers stay as they are.
    Warning(String),
    /// An entry was registered again, or replaced by ours.
    Repaired(String),
    /// An entry was removed on SIGTERM (`on_sigterm = "uninstall"`).
    Removed(String),
}

/// `--keep-running`: keeps the handlers in place until SIGTERM.
#[derive(Debug)]
pub struct Keeper<'a, 't> {
    pub registry: &'a Registry,
    pub table: &'t ArchTable,
    pub host: &'a Host,
    pub planned: &'a [Planned<'t>],
    pub replace_foreign: bool,
    pub test: bool,
    pub interval: Duration,
    pub ready_file: PathBuf,
    /// Remove the handlers on SIGTERM.
    pub uninstall_on_stop: bool,
    pub ready: bool,
}

impl Keeper<'_, '_> {
    /// Check every `interval` (and on SIGHUP) until SIGTERM or SIGINT, then stop.
    pub fn keep(
        mut self,
        watch: SignalWatch,
        first_pass_ok: bool,
        on: &mut dyn FnMut(Event),
    ) -> std::io::Result<()> {
        self.set_ready(first_pass_ok, on);
        tracing::info!(
            "keeping {} handlers in place, checking every {} s",
            self.planned.len(),
            self.interval.as_secs()
        );
        loop {
            match watch.next(Some(self.interval))?.map(|g| g.signal) {
                Some(Signal::SIGTERM | Signal::SIGINT) => {
                    self.stop(on);
                    return Ok(());
                }
                // SIGHUP or the interval: check now.
                _ => self.check(on),
            }
        }
    }

    /// Put back what is missing or changed, and test what was put back (everything, while
    /// not yet ready).
    fn check(&mut self, on: &mut dyn FnMut(Event)) {
        if let Err(e) = self.registry.ensure_mounted() {
            on(Event::Warning(e.to_string()));
            self.set_ready(false, on);
            return;
        }
        let snap = match self.registry.snapshot() {
            Ok(s) => s,
            Err(e) => {
                on(Event::Warning(format!("cannot read binfmt_misc: {e}")));
                self.set_ready(false, on);
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
                on(Event::Warning(format!("cannot put handlers back: {e}")));
                self.set_ready(false, on);
                return;
            }
        };
        let plan = steps::steps_for(&snap, planned, Vec::new(), self.replace_foreign);
        if !plan.changes() && self.ready {
            return;
        }
        let report = apply::apply(self.registry, &plan.steps, plan.report);
        if let Some(f) = &report.failed {
            on(Event::Warning(format!(
                "cannot put {} back: {}",
                f.name, f.error
            )));
            self.set_ready(false, on);
            return;
        }
        for n in &report.installed {
            on(Event::Repaired(format!(
                "{n} had disappeared; registered it again"
            )));
        }
        for n in &report.replaced {
            on(Event::Repaired(format!(
                "{n} had been changed; registered ours again"
            )));
        }
        for n in &report.enabled {
            on(Event::Repaired(match n.as_str() {
                "status" => "binfmt_misc had been disabled as a whole; enabled it again".into(),
                _ => format!("{n} had been disabled; enabled it again"),
            }));
        }
        let touched: Vec<&Planned<'_>> = self
            .planned
            .iter()
            .filter(|p| {
                !self.ready
                    || report.installed.contains(&p.reg.name)
                    || report.replaced.contains(&p.reg.name)
                    || report.enabled.contains(&p.reg.name)
                    || report.enabled.iter().any(|n| n == "status")
            })
            .filter(|p| !report.skipped.iter().any(|s| s.arch == p.arch.name))
            .collect();
        let ok = !self.test
            || match test_step(self.registry, self.table, self.host, &touched, None) {
                Ok(report) => {
                    for r in report.results.iter().filter(|r| !r.ok) {
                        on(Event::Warning(format!(
                            "{} failed its test: {}",
                            r.arch,
                            r.error.as_deref().unwrap_or("")
                        )));
                    }
                    report.results.iter().all(|r| r.ok)
                }
                Err(e) => {
                    on(Event::Warning(e.to_string()));
                    false
                }
            };
        self.set_ready(ok, on);
    }

    /// Write the readiness file on becoming ready, remove it on ceasing to be.
    fn set_ready(&mut self, ready: bool, on: &mut dyn FnMut(Event)) {
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
            Err(e) => on(Event::Warning(format!(
                "readiness file {}: {e}",
                self.ready_file.display()
            ))),
        }
    }

    fn stop(mut self, on: &mut dyn FnMut(Event)) {
        self.set_ready(false, on);
        if self.uninstall_on_stop {
            for p in self.planned {
                match self.registry.remove(&p.reg.name) {
                    Ok(true) => on(Event::Removed(p.reg.name.clone())),
                    Ok(false) => {}
                    Err(e) => on(Event::Warning(format!("cannot remove {}: {e}", p.reg.name))),
                }
            }
        }
        tracing::info!("stopping on signal; exit 0");
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
