//! `test`'s verdicts: run each architecture's probe through the kernel (so binfmt_misc itself
//! is tested), a core's worth at a time, by default as the only file of an empty chroot, and
//! judge what each run proves; and the same for a user's own program (`test --binary`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

mod extras;

use super::levels::proof::{self, Proven};
use super::levels::{self, Family};
use super::runner::{self, Job, Place};
use super::{EXIT_CODE, program};
use crate::arch::{Arch, ArchTable, Host};
use crate::binfmt::{Rule, Snapshot};
use crate::diagnose;
use crate::error::{Class, Classify};
use crate::fileio::{self, Follow, OpenError};
use crate::inspect::Inspector;
use crate::machine::{Machine, Reply};
use crate::messages::printable;
use crate::qemu::Facts;
use crate::qemu::known::IssueTable;
use crate::sys::exec::{Ending, Outcome, Step, signal_name};

/// Why the checks could not run.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// No run directory, or the probes could not be written: the environment's doing.
    #[error("cannot run the probes: {0}")]
    Probes(std::io::Error),
    #[error("cannot read --binary {}: {source}", .path.display())]
    Binary { path: PathBuf, source: OpenError },
    #[error(
        "cannot run programs from {}: exec is refused there (Permission denied), so it is probably on a file system mounted noexec; set TMPDIR to a directory where programs may run",
        .0.display()
    )]
    NoExec(PathBuf),
}

impl Classify for CheckError {
    fn class(&self) -> Class {
        match self {
            CheckError::Probes(_) | CheckError::NoExec(_) => Class::Environment,
            CheckError::Binary { .. } => Class::BadInput,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub results: Vec<TestResult>,
    /// Platforms proven to run, as buildx's --platform takes them.
    pub supported: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct TestResult {
    pub arch: String,
    pub platform: String,
    /// The entry the kernel used (`native` when it ran the program itself).
    pub handler: Option<String>,
    pub ok: bool,
    /// 0: it ran; 1: it echoed its token; 2: it also got its own argv[0] (a `P` handler, or
    /// native). `null` when it did not run.
    pub level: Option<u8>,
    pub error: Option<String>,
    pub ms: f64,
    /// The instruction-set levels its level probe proved through the same handler (or on the
    /// host's own CPU); `null` when its arch has no level probe or the probe did not run.
    pub levels: Option<Proven>,
    /// What QEMU the handler runs (`qemu_version`, `qemu_package`, `cpu_models`,
    /// `cpu_default`, `known_issues`); nulls and empty lists when it is native or not QEMU.
    #[serde(flatten)]
    pub qemu: Facts,
}

/// How `test` runs its probes.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    /// Each probe as the only file of an empty chroot (only `F` handlers serve it).
    pub chroot: bool,
    pub timeout: Duration,
    /// Ask each handler's interpreter what QEMU it is and warn of the rows of this table it
    /// falls in; `None`: levels only, as `platforms` needs.
    pub issues: Option<&'a IssueTable>,
    /// Ask for each interpreter's CPU models too (one more start each): what JSON shows.
    pub cpu_models: bool,
}

/// argv[0] every probe gets; a handler without `P` replaces it by the program's path.
const ARGV0: &str = "binfmt-setup-probe";

/// Every arch a handler takes, the host's own, and those the kernel runs itself.
pub fn default_set<'t>(table: &'t ArchTable, snap: &Snapshot) -> Vec<&'t Arch> {
    let host = Host::detect(table);
    let machine = crate::machine::Live::new();
    let inspector = Inspector::new(&machine, table, snap.clone());
    table
        .iter()
        .filter(|a| {
            host.arch.as_deref() == Some(a.name.as_str())
                || program(a).is_some_and(|p| {
                    snap.handler_for(Path::new("/probe"), &p).is_some()
                        || inspector.runs_natively(a)
                })
        })
        .collect()
}

/// One probe to run: an architecture's, under a plain name or one with an extension (for
/// a handler under an extension rule).
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub arch: &'a Arch,
    pub extension: Option<&'a str>,
}

impl<'a> Target<'a> {
    /// The arch's plain probe.
    pub fn plain(arch: &'a Arch) -> Target<'a> {
        Target {
            arch,
            extension: None,
        }
    }
}

/// The probe that goes through the binfmt_misc entry `name`, or why there is none. The arch
/// is the one whose probe the entry's magic rule takes, or, for an extension rule, the one
/// its interpreter is QEMU for by its name (`qemu-x86_64-static` → amd64); the kernel must
/// hand that probe to this very entry (not disabled, no newer entry taking it first).
pub fn entry_target<'a>(
    table: &'a ArchTable,
    snap: &'a Snapshot,
    name: &str,
) -> Result<Target<'a>, String> {
    let entry = snap.find(name).ok_or_else(|| {
        let names: Vec<&str> = snap.entries.iter().map(|e| e.name.as_str()).collect();
        format!(
            "no binfmt_misc entry '{name}' (there are: {})",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        )
    })?;
    let (arch, extension) = match &entry.rule {
        Rule::Extension(x) => (
            table.by_interpreter(&entry.interpreter).ok_or_else(|| {
                format!(
                    "entry '{name}' is an extension rule whose interpreter {} is not named like QEMU (qemu-<cpu>[-static]), so which architecture it runs is unknown",
                    entry.interpreter
                )
            })?,
            Some(x.as_str()),
        ),
        Rule::Magic { .. } => (
            table
                .iter()
                .find(|a| {
                    program(a).is_some_and(|p| {
                        entry
                            .rule
                            .matches(Path::new("probe"), &crate::rule::kernel_buffer(&p))
                    })
                })
                .ok_or_else(|| {
                    format!(
                        "entry '{name}' takes no architecture's programs that binfmt-setup has a probe for"
                    )
                })?,
            None,
        ),
    };
    let target = Target { arch, extension };
    let image = program(arch).unwrap_or_default();
    match snap.handler_for(Path::new(&file_name(&target)), &image) {
        Some(e) if e.name == entry.name => Ok(target),
        Some(e) => Err(format!(
            "the kernel hands the {} probe to entry '{}', not to '{name}'{}",
            arch.name,
            e.name,
            if entry.enabled {
                ""
            } else {
                ", which is disabled"
            }
        )),
        None => Err(format!(
            "entry '{name}' would take no probe: {}",
            if snap.enabled {
                "it is disabled"
            } else {
                "binfmt_misc is disabled"
            }
        )),
    }
}

/// The probe's file name: the arch's, and the extension after the only dot.
fn file_name(t: &Target<'_>) -> String {
    let base = t.arch.name.replace(['/', '.'], "_");
    match t.extension {
        Some(x) => format!("{base}.{x}"),
        None => base,
    }
}

/// Run the probes of `targets` and judge each. Beside the probes: the questions to each
/// handler's interpreter (with `settings.issues`), and any second run a probe's levels call
/// for, started as that probe comes in.
pub fn test_arches(
    machine: &dyn Machine,
    table: &ArchTable,
    snap: &Snapshot,
    targets: &[Target<'_>],
    settings: Settings<'_>,
) -> Result<Report, CheckError> {
    let Settings {
        chroot, timeout, ..
    } = settings;
    let host = crate::machine::host(machine, table);
    let mut results = Vec::new();
    let mut jobs = Vec::new();
    let mut tested = Vec::new();
    // Per job: the level family whose probe is joined to it, when there is one.
    let mut joined = Vec::new();
    // Probes joined to a level probe first: one of them may call for a second run, which
    // then starts while the rest still run (the verdicts come out in table order).
    let mut ordered: Vec<&Target<'_>> = targets.iter().collect();
    ordered.sort_by_key(|t| levels::family(t.arch).is_none());
    for t in ordered {
        let a = t.arch;
        let with_levels = levels::echo_then_levels(a);
        joined.push(with_levels.as_ref().map(|p| p.family));
        match with_levels.map(|p| p.image).or_else(|| program(a)) {
            Some(image) => {
                jobs.push(Job {
                    file: file_name(t),
                    image,
                    argv0: ARGV0.to_string(),
                    args: vec![token(a)],
                    place: place(chroot),
                    env: None,
                });
                tested.push((a, t.extension));
            }
            None => {
                joined.pop();
                results.push(TestResult {
                    arch: a.name.clone(),
                    platform: a.default_platform(),
                    handler: None,
                    ok: false,
                    level: None,
                    error: Some(format!(
                        "no probe program for {}: QEMU cannot emulate it",
                        a.name
                    )),
                    ms: 0.0,
                    levels: None,
                    qemu: Facts::default(),
                });
            }
        }
    }
    tracing::info!(
        "running {} probes{}",
        jobs.len(),
        if chroot {
            ", each in an empty chroot"
        } else {
            ""
        }
    );
    let batch = runner::start(&jobs).map_err(CheckError::Probes)?;
    let mut extras = extras::start(machine, snap, &tested, &jobs, settings);
    // A probe joined to its level probe may call for a second run: started as it comes in.
    let outcomes = batch.wait_each(timeout, |i, o| {
        if let (Some(Some(_)), Some(job)) = (joined.get(i), jobs.get(i)) {
            extras.offer(i, &first_reply(job, o, timeout));
        }
    });
    refuse_unrunnable(&tested, &outcomes, &host)?;
    let firsts: Vec<Option<Reply>> = joined
        .iter()
        .zip(outcomes.iter().zip(&jobs))
        .map(|(f, (o, job))| f.map(|_| first_reply(job, o, timeout)))
        .collect();
    let ran: Vec<_> = outcomes.iter().map(|o| o.exe).collect();
    let (levels, facts) = extras.finish(&firsts, &ran);
    for (((((a, _), job), out), (levels, qemu)), family) in tested
        .iter()
        .zip(&jobs)
        .zip(&outcomes)
        .zip(levels.into_iter().zip(facts))
        .zip(&joined)
    {
        tracing::debug!(
            "{}: {:?} after {:.1} ms, stdout {:?}",
            a.name,
            out.ending,
            out.elapsed.as_secs_f64() * 1000.0,
            String::from_utf8_lossy(&out.stdout)
        );
        let native = host.arch.as_deref() == Some(a.name.as_str());
        let mut r = judge(a, job, *family, out, snap, native, chroot, timeout);
        r.levels = levels;
        r.qemu = qemu;
        results.push(r);
    }
    // Table order, whatever order they finished in.
    let order = |name: &str| table.iter().position(|a| a.name == name);
    results.sort_by_key(|r| order(&r.arch));
    let mut supported: Vec<String> = Vec::new();
    for r in results.iter().filter(|r| r.ok) {
        if let Some(a) = table.find(&r.arch) {
            let platforms = match &r.levels {
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
    Ok(Report { results, supported })
}

/// Exec refused with EACCES is never binfmt_misc's answer (it gives ENOEXEC, ENOENT or
/// ELOOP): when the host's own probe, or every probe, gets it, programs may not run from the
/// temporary directory at all (a noexec mount), and no verdict about handlers can be made.
fn refuse_unrunnable(
    tested: &[(&Arch, Option<&str>)],
    outcomes: &[Outcome],
    host: &Host,
) -> Result<(), CheckError> {
    let denied = |o: &Outcome| o.ending.exec_errno() == Some(nix::errno::Errno::EACCES);
    // The host's plain probe: the kernel runs it itself, whatever handlers there are.
    let host_denied = tested.iter().zip(outcomes).any(|((a, ext), o)| {
        ext.is_none() && host.arch.as_deref() == Some(a.name.as_str()) && denied(o)
    });
    if host_denied || (!outcomes.is_empty() && outcomes.iter().all(denied)) {
        return Err(CheckError::NoExec(runner::base()));
    }
    Ok(())
}

fn place(chroot: bool) -> Place {
    if chroot { Place::Chroot } else { Place::Here }
}

fn token(a: &Arch) -> String {
    format!("token-{}-{}", a.name.replace('/', "_"), std::process::id())
}

/// The first line a probe run as `job` prints: its token.
fn token_line(job: &Job) -> String {
    format!("{}\n", job.args[0])
}

/// What a joined probe's run says as its level probe's reply. Its status tells levels only
/// after its token: an interpreter that fails with a status in the level range ran nothing.
fn first_reply(job: &Job, out: &Outcome, timeout: Duration) -> Reply {
    let mut reply = Reply::of(out, timeout);
    if !printed_token(job, out) {
        reply.exit = None;
        reply.failure = Some("the probe printed no token: it did not run".into());
    }
    reply
}

/// Whether the probe's run began with its token, so it ran.
fn printed_token(job: &Job, out: &Outcome) -> bool {
    out.stdout.starts_with(token_line(job).as_bytes())
}

/// What one probe's run proves, and in a user's words what went wrong.
#[allow(clippy::too_many_arguments)] // each is one fact the verdict weighs
fn judge(
    a: &Arch,
    job: &Job,
    joined: Option<&'static Family>,
    out: &Outcome,
    snap: &Snapshot,
    native_host: bool,
    chroot: bool,
    timeout: Duration,
) -> TestResult {
    let handler = snap.handler_for(Path::new(&job.file), &job.image);
    let handler_name = match handler {
        Some(e) => Some(e.name.clone()),
        None if matches!(out.ending, Ending::Exited(_)) => Some("native".into()),
        None => None,
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stderr = stderr.trim();
    let (level, error) = match &out.ending {
        // The echo probe's status, or, where the level probe is joined to it, a status that
        // probe gives (it exits 100 + the mask of the levels that ran) after the token: an
        // interpreter that fails with a status in that range printed no token first.
        Ending::Exited(code)
            if *code == EXIT_CODE
                || (joined.is_some_and(|f| f.decode(*code).is_some())
                    && printed_token(job, out)) =>
        {
            let want_token = token_line(job);
            let text = String::from_utf8_lossy(&out.stdout);
            if !text.starts_with(&want_token) {
                (
                    Some(0),
                    Some(format!(
                        "it ran, but printed {:?} instead of its token",
                        printable(&text)
                    )),
                )
            } else {
                let argv0 = text[want_token.len()..].trim_end_matches('\n');
                let preserves = argv0 == ARGV0;
                let has_p = handler.is_some_and(|e| e.has_flag('P'));
                if has_p && !preserves {
                    (
                        Some(1),
                        Some(format!(
                            "the handler has P but the program got argv[0] {:?}: the interpreter ignores preserve-argv0",
                            printable(argv0)
                        )),
                    )
                } else {
                    (Some(if preserves { 2 } else { 1 }), None)
                }
            }
        }
        Ending::Exited(code) => (
            None,
            Some(match handler {
                Some(e) => format!(
                    "the interpreter {} exited {code} instead of running the program{}",
                    e.interpreter,
                    if stderr.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", printable(first_line(stderr)))
                    }
                ),
                None => format!("the program exited {code}, not {EXIT_CODE}"),
            }),
        ),
        Ending::Signaled(sig) => (
            None,
            Some(format!(
                "{} was killed by {}",
                match handler {
                    Some(e) => format!("the interpreter {}", e.interpreter),
                    None => "the program".into(),
                },
                signal_name(*sig)
            )),
        ),
        Ending::TimedOut => (
            None,
            Some(format!("no answer within {:.1} s", timeout.as_secs_f64())),
        ),
        Ending::Failed {
            step: Step::Exec,
            errno,
        } => (None, Some(exec_failure(Some(a), *errno, snap, job, chroot))),
        Ending::Failed { step, errno } => (None, Some(start_failure(*step, *errno))),
    };
    let ok = error.is_none() && level.is_some_and(|l| l >= 1);
    TestResult {
        arch: a.name.clone(),
        platform: a.default_platform(),
        handler: if native_host && handler.is_none() {
            Some("native".into())
        } else {
            handler_name
        },
        ok,
        level,
        error,
        ms: millis(out.elapsed),
        levels: None,
        qemu: Facts::default(),
    }
}

fn exec_failure(
    a: Option<&Arch>,
    errno: nix::errno::Errno,
    snap: &Snapshot,
    job: &Job,
    chroot: bool,
) -> String {
    diagnose::explain_exec_failure(&diagnose::Exec {
        errno,
        binfmt: snap,
        path: Path::new(&job.file),
        head: &job.image,
        chrooted: chroot,
        arch: a,
    })
    .sentence()
}

/// A step before exec failed: the program was never handed to the kernel.
fn start_failure(step: Step, errno: nix::errno::Errno) -> String {
    match step {
        Step::Chroot => format!(
            "could not enter an empty chroot to run it ({}: no privilege and no user namespaces); try --no-chroot",
            errno.desc()
        ),
        _ => format!("could not start it: {}: {}", step.as_str(), errno.desc()),
    }
}

/// Milliseconds to one decimal place, as reported.
fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// The most of a `--binary` program that is read: it is copied whole into the run
/// directory, and no program of a gibibyte is a test subject.
const MAX_BINARY: usize = 1 << 30;

/// `test --binary`: the user's own program, run through the kernel the same way as a probe,
/// without a token.
#[derive(Debug, Serialize)]
pub struct BinaryRun {
    pub path: String,
    pub result: TestResult,
    /// Its exit status, when it exited.
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Run the program at `file` as [`test_arches`] runs probes, and judge it: it passes when it
/// ran and ended by itself, whatever its exit status (that is its own business).
pub fn check_binary(
    table: &ArchTable,
    snap: &Snapshot,
    file: &Path,
    chroot: bool,
    timeout: Duration,
) -> Result<BinaryRun, CheckError> {
    let unreadable = |source| CheckError::Binary {
        path: file.to_path_buf(),
        source,
    };
    let (opened, _) = fileio::open_regular(file, Follow::Yes).map_err(unreadable)?;
    let image =
        fileio::read_prefix(&opened, MAX_BINARY + 1).map_err(|e| unreadable(OpenError::Io(e)))?;
    if image.len() > MAX_BINARY {
        return Err(unreadable(OpenError::Io(std::io::Error::other(format!(
            "larger than {} MiB",
            MAX_BINARY >> 20
        )))));
    }
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "program".into());
    let job = Job {
        file: name.clone(),
        image,
        argv0: name,
        args: Vec::new(),
        place: place(chroot),
        env: None,
    };
    let out = runner::run_all(std::slice::from_ref(&job), timeout)
        .map_err(CheckError::Probes)?
        .remove(0);
    let arch = table.match_header(&job.image);
    let handler = snap.handler_for(Path::new(&job.file), &job.image);
    let error = match &out.ending {
        Ending::Exited(_) => None,
        Ending::Signaled(s) => Some(format!("it was killed by {}", signal_name(*s))),
        Ending::TimedOut => Some(format!("no answer within {:.1} s", timeout.as_secs_f64())),
        Ending::Failed { step, errno } if *step != Step::Exec => Some(start_failure(*step, *errno)),
        Ending::Failed { errno, .. } => Some(exec_failure(arch, *errno, snap, &job, chroot)),
    };
    let result = TestResult {
        arch: arch.map(|a| a.name.clone()).unwrap_or_default(),
        platform: arch.map(Arch::default_platform).unwrap_or_default(),
        handler: handler
            .map(|e| e.name.clone())
            .or_else(|| matches!(out.ending, Ending::Exited(_)).then(|| "native".to_string())),
        ok: error.is_none(),
        level: matches!(out.ending, Ending::Exited(_) | Ending::Signaled(_)).then_some(0),
        error,
        ms: millis(out.elapsed),
        levels: None,
        qemu: Facts::default(),
    };
    Ok(BinaryRun {
        path: crate::names::escape(file.as_os_str().as_encoded_bytes()).into_owned(),
        result,
        exit_code: match out.ending {
            Ending::Exited(c) => Some(c),
            _ => None,
        },
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}
