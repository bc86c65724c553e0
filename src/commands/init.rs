//! `init [--config FILE] [--keep-running]`: the step a container, a boot unit or a DaemonSet
//! runs. Mount binfmt_misc, install the configured handlers, prove them by running each
//! architecture's probe through the kernel, export them for the next boot, print a summary.
//! With `--keep-running` it stays up and keeps the handlers in place.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use nix::sys::signal::Signal;
use serde::Serialize;

use crate::arch::{ArchTable, Host};
use crate::binfmt::apply::{self, Report, Skipped, Step};
use crate::binfmt::plan::{self, Planned};
use crate::binfmt::{Registry, Snapshot};
use crate::cli::{ExportFormat, GlobalArgs, InitArgs};
use crate::config::{self, Config, OnSigterm};
use crate::error::{Exit, Failure};
use crate::inspect::Inspector;
use crate::messages;
use crate::signals::SignalWatch;

/// What one pass did; with `--json`, the document printed (install's keys and test's).
#[derive(Debug, Serialize)]
struct Summary {
    #[serde(flatten)]
    install: Report,
    /// One per architecture whose entry is in place, when the config asks for tests.
    results: Vec<probe_test::TestResult>,
    /// Platforms this host runs: its own, and each emulated one that passed its test (or,
    /// untested, whose entry is in place).
    supported: Vec<String>,
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
        self.install.failed.is_none() && self.results.iter().all(|r| r.ok)
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
    // Nativeness is probed in a private instance of its own, whatever is registered here.
    let empty = Snapshot {
        mounted: false,
        enabled: false,
        entries: Vec::new(),
    };
    let inspector = Inspector::new(&table, host.clone(), empty);
    let (planned, skipped) = plan::plan(&arches, &opts, &host, |a| inspector.runs_natively(a))
        .map_err(|e| Failure::bad_input(anyhow!("config {}: {e}", config.origin())))?;

    let snap = super::snapshot(&registry)?;
    let (steps, report) =
        super::install::steps_for(&snap, planned.clone(), skipped, config.replace_foreign);
    let install = apply::apply(&registry, &steps, report);
    let in_place = in_place(&planned, &install);
    let results = if config.test && install.failed.is_none() {
        probe_test::run(&in_place)
    } else {
        Vec::new()
    };
    let export = match (&config.export, &install.failed) {
        (Some(e), None) => Some(export(e, &planned)?),
        _ => None,
    };
    let summary = Summary {
        supported: supported(&host, &table, &in_place, &results, config.test),
        install,
        results,
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

fn supported(
    host: &Host,
    table: &ArchTable,
    in_place: &[&Planned<'_>],
    results: &[probe_test::TestResult],
    tested: bool,
) -> Vec<String> {
    let mut out: Vec<String> = host
        .arch
        .as_deref()
        .and_then(|a| table.find(a))
        .map(|a| a.platforms())
        .unwrap_or_default();
    for p in in_place {
        let passed = !tested || results.iter().any(|r| r.arch == p.arch.name && r.ok);
        if passed {
            out.extend(p.arch.platforms());
        }
    }
    out.dedup();
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
    for t in &s.results {
        match &t.error {
            None => messages::out(&format!(
                "{:<10} {} ({} through {}, {} ms)",
                "tested", t.arch, t.platform, t.handler, t.ms
            )),
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
    let failed = s.results.iter().filter(|t| !t.ok).count();
    let handlers = r.installed.len() + r.replaced.len() + r.unchanged.len();
    let line = match (&r.failed, failed) {
        (Some(_), _) => {
            "init: installing failed; nothing of this run was left in place".to_string()
        }
        (None, 0) if s.results.is_empty() => format!("init: {handlers} handlers in place"),
        (None, 0) => format!(
            "init: {handlers} handlers in place, {} tested ok",
            s.results.len()
        ),
        (None, n) => format!(
            "init: {handlers} handlers in place, {n} of {} failed their test",
            s.results.len()
        ),
    };
    messages::out(&line);
}

/// `--keep-running`: keeps the handlers in place until SIGTERM.
struct Keeper<'a, 't> {
    registry: &'a Registry,
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
        let (steps, report) = super::install::steps_for(
            &snap,
            self.planned.to_vec(),
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
            let results = probe_test::run(&touched);
            for r in results.iter().filter(|r| !r.ok) {
                messages::warn(&format!(
                    "{} failed its test: {}",
                    r.arch,
                    r.error.as_deref().unwrap_or("")
                ));
            }
            results.iter().all(|r| r.ok)
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

/// The TEST step: each architecture's echo probe run through the kernel.
mod probe_test {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use serde::Serialize;

    use crate::binfmt::plan::Planned;
    use crate::probe;

    /// A probe that has not finished by then is stuck (QEMU starts in milliseconds).
    const TIMEOUT: Duration = Duration::from_secs(10);

    /// One architecture's probe run; keys as `test --json` has them.
    #[derive(Debug, Clone, Serialize)]
    pub struct TestResult {
        pub arch: String,
        pub platform: String,
        pub handler: String,
        pub ok: bool,
        /// `echo`: it ran, printed its token and argv[0] and exited 42; `exit`: it ran and
        /// exited 42 but printed something else; `none`: it did not run as it should.
        pub level: &'static str,
        pub error: Option<String>,
        pub ms: u64,
    }

    pub fn run(planned: &[&Planned<'_>]) -> Vec<TestResult> {
        let dir = std::env::temp_dir().join(format!("binfmt-setup-init-{}", std::process::id()));
        let results = match std::fs::create_dir_all(&dir) {
            Ok(()) => planned.iter().map(|p| one(&dir, p)).collect(),
            Err(e) => planned
                .iter()
                .map(|p| {
                    failed(
                        p,
                        "none",
                        format!("cannot create {}: {e}", dir.display()),
                        0,
                    )
                })
                .collect(),
        };
        let _ = std::fs::remove_dir_all(&dir);
        results
    }

    fn failed(p: &Planned<'_>, level: &'static str, error: String, ms: u64) -> TestResult {
        TestResult {
            arch: p.arch.name.clone(),
            platform: p.arch.default_platform(),
            handler: p.reg.name.clone(),
            ok: false,
            level,
            error: Some(error),
            ms,
        }
    }

    fn one(dir: &Path, p: &Planned<'_>) -> TestResult {
        let start = Instant::now();
        let ms = |start: Instant| start.elapsed().as_millis() as u64;
        let Some(image) = probe::program(p.arch) else {
            return failed(p, "none", format!("no probe for {}", p.arch.name), 0);
        };
        let path = dir.join(format!("probe-{}", p.arch.name));
        let written = std::fs::write(&path, &image)
            .and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)));
        if let Err(e) = written {
            return failed(
                p,
                "none",
                format!("cannot write {}: {e}", path.display()),
                0,
            );
        }
        let token = format!("binfmt-setup-{}", std::process::id());
        // No pre_exec and no changed credentials: std spawns with posix_spawn, which (unlike
        // execvp) does not retry an ENOEXEC file as a shell script.
        let mut child = match Command::new(&path)
            .arg(&token)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                return failed(
                    p,
                    "none",
                    format!("exec {}: {e}", path.display()),
                    ms(start),
                );
            }
        };
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if start.elapsed() > TIMEOUT => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return failed(p, "none", format!("no answer in {TIMEOUT:?}"), ms(start));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                Err(e) => return failed(p, "none", format!("wait: {e}"), ms(start)),
            }
        };
        let mut out = String::new();
        if let Some(mut stdout) = child.stdout.take() {
            let _ = stdout.read_to_string(&mut out);
        }
        let elapsed = ms(start);
        let want = probe::expected_output(&token, &path.display().to_string());
        if status.code() != Some(probe::EXIT_CODE) {
            return failed(
                p,
                "none",
                format!(
                    "the probe ended with {status}, not exit {}",
                    probe::EXIT_CODE
                ),
                elapsed,
            );
        }
        // argv[0] is the path as exec'd; without P QEMU passes the path, so both agree.
        if out != want && out.lines().next() != Some(token.as_str()) {
            return failed(
                p,
                "exit",
                format!("the probe printed {out:?}, not {want:?}"),
                elapsed,
            );
        }
        TestResult {
            arch: p.arch.name.clone(),
            platform: p.arch.default_platform(),
            handler: p.reg.name.clone(),
            ok: true,
            level: "echo",
            error: None,
            ms: elapsed,
        }
    }
}
