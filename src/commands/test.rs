//! `test`: prove each architecture runs, by executing its probe through the kernel (so
//! binfmt_misc itself is tested), all at once, by default inside an empty chroot.

use std::path::Path;
use std::time::Duration;

use anyhow::anyhow;
use serde::Serialize;

use crate::arch::{Arch, ArchTable, Host};
use crate::binfmt::{Registry, Snapshot};
use crate::cli::{GlobalArgs, TestArgs};
use crate::diagnose;
use crate::error::{Exit, Failure};
use crate::inspect::Inspector;
use crate::messages::{self, printable};
use crate::probe::runner::{self, Job, Place};
use crate::probe::{self, EXIT_CODE};
use crate::sys::exec::{Ending, Outcome, Step, signal_name};

#[derive(Debug, Serialize)]
pub(super) struct Report {
    pub results: Vec<TestResult>,
    /// Platforms proven to run, as buildx's --platform takes them.
    pub supported: Vec<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct TestResult {
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
}

/// argv[0] every probe gets; a handler without `P` replaces it by the program's path.
const ARGV0: &str = "binfmt-setup-probe";

pub fn run(global: &GlobalArgs, args: &TestArgs) -> Result<Exit, Failure> {
    let table = super::load_table(global)?;
    let timeout = Duration::try_from_secs_f64(args.timeout)
        .ok()
        .filter(|t| !t.is_zero())
        .ok_or_else(|| {
            Failure::bad_input(anyhow!(
                "--timeout {}: give a positive number of seconds",
                args.timeout
            ))
        })?;
    if let Some(file) = &args.binary {
        return run_binary(global, &table, file, !args.no_chroot, timeout);
    }
    let registry = Registry::new(&global.binfmt_dir);
    let snap = super::snapshot(&registry)?;
    let arches = match &args.arch {
        Some(list) => table
            .lookup_list(list)
            .map_err(|e| Failure::bad_input(anyhow!("--arch: {e}")))?,
        None => default_set(&table, &snap),
    };
    let report = test_arches(&table, &snap, &arches, !args.no_chroot, timeout)
        .map_err(|e| Failure::environment(anyhow::anyhow!(e)))?;
    if global.json {
        messages::json(&report);
    } else {
        print_report(&report);
    }
    Ok(if report.results.iter().all(|r| r.ok) {
        Exit::Success
    } else {
        Exit::Problem
    })
}

/// Every arch a handler takes, the host's own, and those the kernel runs itself.
pub(super) fn default_set<'t>(table: &'t ArchTable, snap: &Snapshot) -> Vec<&'t Arch> {
    let host = Host::detect(table);
    let machine = crate::machine::Live::new();
    let inspector = Inspector::new(&machine, table, snap.clone());
    table
        .iter()
        .filter(|a| {
            host.arch.as_deref() == Some(a.name.as_str())
                || probe::program(a).is_some_and(|p| {
                    snap.handler_for(Path::new("/probe"), &p).is_some()
                        || inspector.runs_natively(a)
                })
        })
        .collect()
}

/// Run the probes of `arches` and judge each.
pub(super) fn test_arches(
    table: &ArchTable,
    snap: &Snapshot,
    arches: &[&Arch],
    chroot: bool,
    timeout: Duration,
) -> Result<Report, String> {
    let host = Host::detect(table);
    let mut results = Vec::new();
    let mut jobs = Vec::new();
    let mut tested = Vec::new();
    for &a in arches {
        match probe::program(a) {
            Some(image) => {
                jobs.push(Job {
                    file: a.name.replace('/', "_"),
                    image,
                    argv0: ARGV0.to_string(),
                    args: vec![token(a)],
                    place: place(chroot),
                });
                tested.push(a);
            }
            None => results.push(TestResult {
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
            }),
        }
    }
    let outcomes = runner::run_all(&jobs, timeout).map_err(|e| e.to_string())?;
    for ((a, job), out) in tested.iter().zip(&jobs).zip(&outcomes) {
        let native = host.arch.as_deref() == Some(a.name.as_str());
        results.push(judge(a, job, out, snap, native, chroot, timeout));
    }
    // Table order, whatever order they finished in.
    let order = |name: &str| table.iter().position(|a| a.name == name);
    results.sort_by_key(|r| order(&r.arch));
    let mut supported: Vec<String> = Vec::new();
    for r in results.iter().filter(|r| r.ok) {
        if let Some(a) = table.find(&r.arch) {
            supported.extend(a.platforms());
        }
    }
    Ok(Report { results, supported })
}

fn place(chroot: bool) -> Place {
    if chroot { Place::Chroot } else { Place::Here }
}

fn token(a: &Arch) -> String {
    format!("token-{}-{}", a.name.replace('/', "_"), std::process::id())
}

/// What one probe's run proves, and in a user's words what went wrong.
fn judge(
    a: &Arch,
    job: &Job,
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
        Ending::Exited(code) if *code == EXIT_CODE => {
            let want_token = format!("{}\n", job.args[0]);
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

/// `--binary FILE`: the user's own program, through the kernel the same way, without a token.
fn run_binary(
    global: &GlobalArgs,
    table: &ArchTable,
    file: &Path,
    chroot: bool,
    timeout: Duration,
) -> Result<Exit, Failure> {
    let image = std::fs::read(file)
        .map_err(|e| Failure::bad_input(anyhow!("cannot read --binary {}: {e}", file.display())))?;
    let registry = Registry::new(&global.binfmt_dir);
    let snap = super::snapshot(&registry)?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "program".into());
    let job = Job {
        file: name.clone(),
        image,
        argv0: name.clone(),
        args: Vec::new(),
        place: place(chroot),
    };
    let out = runner::run_all(std::slice::from_ref(&job), timeout)
        .map_err(Failure::environment)?
        .remove(0);
    let arch = table.match_header(&job.image);
    let handler = snap.handler_for(Path::new(&job.file), &job.image);
    // The program's own exit status is its business: it ran.
    let error = match &out.ending {
        Ending::Exited(_) => None,
        Ending::Signaled(s) => Some(format!("it was killed by {}", signal_name(*s))),
        Ending::TimedOut => Some(format!("no answer within {:.1} s", timeout.as_secs_f64())),
        Ending::Failed { step, errno } if *step != Step::Exec => Some(start_failure(*step, *errno)),
        Ending::Failed { errno, .. } => Some(exec_failure(arch, *errno, &snap, &job, chroot)),
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
    };
    if global.json {
        messages::json(&serde_json::json!({
            "path": file.display().to_string(),
            "result": result,
            "exit_code": match out.ending { Ending::Exited(c) => Some(c), _ => None },
            "stdout": String::from_utf8_lossy(&out.stdout),
            "stderr": String::from_utf8_lossy(&out.stderr),
        }));
    } else {
        print_line(&result, &file.display().to_string());
        for line in String::from_utf8_lossy(&out.stdout).lines().take(20) {
            messages::out(&format!("  | {}", printable(line)));
        }
    }
    Ok(if result.ok {
        Exit::Success
    } else {
        Exit::Problem
    })
}

fn print_line(r: &TestResult, label: &str) {
    let verdict = if r.ok { "ok" } else { "FAIL" };
    let level = r.level.map_or("-".to_string(), |l| l.to_string());
    let mut line = format!(
        "{verdict:<5}{:<14}{:<18}{:<18}level {level}  {:>6.1} ms",
        printable(label),
        r.platform,
        r.handler.as_deref().unwrap_or("-"),
        r.ms
    );
    if let Some(e) = &r.error {
        line.push_str("  ");
        line.push_str(&printable(e));
    }
    messages::out(&line);
}

fn print_report(r: &Report) {
    for res in &r.results {
        print_line(res, &res.arch);
    }
    let failed = r.results.iter().filter(|x| !x.ok).count();
    messages::out(&format!(
        "{} of {} architectures run; supported: {}",
        r.results.len() - failed,
        r.results.len(),
        if r.supported.is_empty() {
            "none".to_string()
        } else {
            r.supported.join(",")
        }
    ));
}
