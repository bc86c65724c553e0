//! `diagnose --run`: execute the file for real through the process layer (`sys::exec`, a
//! plain execve), chrooted when asked, and report what the kernel said.

use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use serde::Serialize;

use crate::sys::exec::{self, ChrootFallback, Ending, Env, Output, Spec, Step};

/// How much of the program's stdout and stderr is kept.
const KEEP_OUTPUT: usize = 4096;

/// What happened when the file was executed.
#[derive(Debug, Clone, Serialize)]
pub struct RunOutcome {
    /// The errno execve(2) failed with (`ENOEXEC`, …); `None` when the program started.
    #[serde(serialize_with = "errno_name")]
    pub errno: Option<Errno>,
    /// Exit status, when it started and exited.
    pub exit: Option<i32>,
    /// The signal that ended it (`SIGILL`, …).
    pub signal: Option<String>,
    /// Killed after the timeout.
    pub timed_out: bool,
    /// The start of what it wrote (lossy UTF-8).
    pub stdout: String,
    pub stderr: String,
}

pub(crate) fn errno_name<S: serde::Serializer>(e: &Option<Errno>, s: S) -> Result<S::Ok, S::Error> {
    match e {
        Some(e) => s.serialize_str(&format!("{e:?}")),
        None => s.serialize_none(),
    }
}

/// Why the file could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "cannot chroot into {root}: {errno} (--run with --root needs CAP_SYS_CHROOT: run as root, or leave out --run)"
    )]
    ChrootDenied { root: String, errno: Errno },
    #[error("cannot run {path}: {what}: {errno}")]
    Setup {
        path: String,
        what: &'static str,
        errno: Errno,
    },
}

impl crate::error::Classify for RunError {
    /// A refused chroot, or a child that could not be started: the environment's doing.
    fn class(&self) -> crate::error::Class {
        crate::error::Class::Environment
    }
}

/// Execute `path` (as seen inside `root`, when given) with argv `[path]`, stdin from
/// /dev/null, the current environment, in a process group of its own, and a timeout after
/// which that group is killed.
pub fn run(path: &str, root: Option<&Path>, timeout: Duration) -> Result<RunOutcome, RunError> {
    run_with(path, root, timeout, None)
}

/// [`run`] with one more variable in its environment (`QEMU_CPU=power10`).
pub fn run_with(
    path: &str,
    root: Option<&Path>,
    timeout: Duration,
    extra: Option<(&str, &str)>,
) -> Result<RunOutcome, RunError> {
    let mut spec = Spec::new(path)
        .output(Output::Capture { limit: KEEP_OUTPUT })
        .new_process_group();
    if let Some((key, value)) = extra {
        let mut env: Vec<std::ffi::OsString> = std::env::vars_os()
            .filter(|(k, _)| k.as_os_str() != key)
            .map(|(k, v)| {
                let mut kv = k;
                kv.push("=");
                kv.push(v);
                kv
            })
            .collect();
        env.push(format!("{key}={value}").into());
        spec = spec.env(Env::Exactly(env));
    }
    if let Some(root) = root {
        spec = spec.chroot(root, ChrootFallback::None);
    }
    let out = exec::run(&spec, Some(timeout)).map_err(|e| RunError::Setup {
        path: path.to_string(),
        what: "start it",
        errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
    })?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut outcome = RunOutcome {
        errno: None,
        exit: None,
        signal: None,
        timed_out: false,
        stdout: text(&out.stdout),
        stderr: text(&out.stderr),
    };
    match out.ending {
        Ending::Exited(code) => outcome.exit = Some(code),
        Ending::Signaled(sig) => outcome.signal = Some(exec::signal_name(sig)),
        Ending::TimedOut => outcome.timed_out = true,
        Ending::Failed {
            step: Step::Exec,
            errno,
        } => outcome.errno = Some(errno),
        Ending::Failed {
            step: Step::Chroot,
            errno,
        } => {
            return Err(RunError::ChrootDenied {
                root: root.map(|r| r.display().to_string()).unwrap_or_default(),
                errno,
            });
        }
        Ending::Failed { step, errno } => {
            return Err(RunError::Setup {
                path: path.to_string(),
                what: step.as_str(),
                errno,
            });
        }
    }
    Ok(outcome)
}

impl RunOutcome {
    /// It exited 127 with a dynamic loader's (or QEMU's) complaint that it could not load
    /// the program or its libraries.
    pub fn loader_failed(&self) -> bool {
        self.exit == Some(127)
            && ["error while loading shared libraries", "Could not open"]
                .iter()
                .any(|w| self.stderr.contains(w))
    }

    /// A short phrase for the human report: "Exec format error (ENOEXEC)", "exited with 42".
    pub fn describe(&self) -> String {
        if let Some(e) = self.errno {
            return format!("exec failed: {} ({e:?})", e.desc());
        }
        let mut s = String::from("started; ");
        if self.timed_out {
            s.push_str("still running after the timeout, killed");
        } else if let Some(code) = self.exit {
            s.push_str(&format!("exited with status {code}"));
        } else if let Some(sig) = &self.signal {
            s.push_str(&format!("killed by {sig}"));
        } else {
            s.push_str("ended");
        }
        s
    }
}
