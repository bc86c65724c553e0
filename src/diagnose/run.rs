//! `diagnose --run`: execute the file for real with a plain execve(2), chrooted when asked,
//! and report what the kernel said.
//!
//! Not `std::process::Command`: it execs through execvp, which answers ENOEXEC by running the
//! file with /bin/sh, and so would hide the very error being diagnosed.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::libc;
use serde::Serialize;

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

/// Stage markers the child writes before its errno when something fails before exec.
const STAGE_CHROOT: u8 = 1;
const STAGE_EXEC: u8 = 2;
const STAGE_OTHER: u8 = 3;

/// Execute `path` (as seen inside `root`, when given) with argv `[path]`, stdin from
/// /dev/null, the current environment, and a timeout after which its process group is killed.
pub fn run(path: &str, root: Option<&Path>, timeout: Duration) -> Result<RunOutcome, RunError> {
    let setup = |what: &'static str| {
        move |errno: Errno| RunError::Setup {
            path: path.to_string(),
            what,
            errno,
        }
    };
    // Everything the child needs is prepared here: between fork and exec it only makes
    // system calls.
    let c_path = CString::new(path.as_bytes()).map_err(|_| setup("path")(Errno::EINVAL))?;
    let c_root = match root {
        Some(r) => {
            Some(CString::new(r.as_os_str().as_bytes()).map_err(|_| setup("root")(Errno::EINVAL))?)
        }
        None => None,
    };
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv: OsString = k;
            kv.push("=");
            kv.push(v);
            CString::new(kv.as_bytes()).ok()
        })
        .collect();
    let argv = [c_path.as_ptr(), std::ptr::null()];
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    let devnull = File::open("/dev/null")
        .map_err(|e| setup("open /dev/null")(Errno::from_raw(e.raw_os_error().unwrap_or(0))))?;
    let (status_r, status_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(setup("pipe"))?;
    let (out_r, out_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(setup("pipe"))?;
    let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(setup("pipe"))?;

    // SAFETY: the child below only calls async-signal-safe functions (setpgid, dup2, chroot,
    // chdir, execve, write, _exit) on data prepared before the fork; it never returns.
    let pid = match unsafe { nix::unistd::fork() }.map_err(setup("fork"))? {
        nix::unistd::ForkResult::Child => {
            // SAFETY: see above; every pointer is to a CString or array that outlives the call.
            unsafe {
                child(
                    &c_path,
                    &argv,
                    &envp,
                    c_root.as_deref(),
                    devnull.as_raw_fd(),
                    out_w.as_raw_fd(),
                    err_w.as_raw_fd(),
                    status_w.as_raw_fd(),
                )
            }
        }
        nix::unistd::ForkResult::Parent { child } => child,
    };
    drop((status_w, out_w, err_w, devnull));

    // The status pipe closes on a successful exec (O_CLOEXEC) and carries stage + errno
    // otherwise.
    let mut report = Vec::new();
    let _ = File::from(status_r).read_to_end(&mut report);
    if report.len() >= 5 {
        let errno = Errno::from_raw(i32::from_ne_bytes([
            report[1], report[2], report[3], report[4],
        ]));
        let _ = wait(pid.as_raw(), None);
        return match report[0] {
            STAGE_CHROOT => Err(RunError::ChrootDenied {
                root: root.map(|r| r.display().to_string()).unwrap_or_default(),
                errno,
            }),
            STAGE_EXEC => Ok(RunOutcome {
                errno: Some(errno),
                exit: None,
                signal: None,
                timed_out: false,
                stdout: String::new(),
                stderr: String::new(),
            }),
            _ => Err(setup("prepare the child")(errno)),
        };
    }

    let out = reader(out_r);
    let err = reader(err_r);
    let (status, timed_out) = match wait(pid.as_raw(), Some(timeout)) {
        Some(s) => (s, false),
        None => {
            // SAFETY: kill(2) on the child's own process group; no memory is involved.
            unsafe { libc::kill(-pid.as_raw(), libc::SIGKILL) };
            (wait(pid.as_raw(), None).unwrap_or(0), true)
        }
    };
    // A daemon the program left behind may hold the pipes open: wait briefly, not forever.
    let grace = Duration::from_millis(300);
    let stdout = out.recv_timeout(grace).unwrap_or_default();
    let stderr = err.recv_timeout(grace).unwrap_or_default();
    let (exit, signal) = if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        (None, Some(signal_name(sig)))
    } else {
        (None, None)
    };
    Ok(RunOutcome {
        errno: None,
        exit,
        signal,
        timed_out,
        stdout,
        stderr,
    })
}

/// The forked child: own process group, stdio, chroot, exec. Reports failure on `status`.
///
/// # Safety
/// Only to be called in a freshly forked child; all pointers must be valid C strings and
/// NULL-terminated arrays of them.
#[allow(clippy::too_many_arguments)]
unsafe fn child(
    path: &CString,
    argv: &[*const libc::c_char; 2],
    envp: &[*const libc::c_char],
    root: Option<&std::ffi::CStr>,
    stdin: i32,
    stdout: i32,
    stderr: i32,
    status: i32,
) -> ! {
    let fail = |stage: u8| -> ! {
        let errno = Errno::last_raw().to_ne_bytes();
        let msg = [stage, errno[0], errno[1], errno[2], errno[3]];
        // SAFETY: write(2) and _exit(2) are async-signal-safe; msg lives on this stack.
        unsafe {
            libc::write(status, msg.as_ptr().cast(), msg.len());
            libc::_exit(127)
        }
    };
    // SAFETY: plain system calls on integers and on C strings prepared before fork.
    unsafe {
        if libc::setpgid(0, 0) != 0
            || libc::dup2(stdin, 0) < 0
            || libc::dup2(stdout, 1) < 0
            || libc::dup2(stderr, 2) < 0
        {
            fail(STAGE_OTHER);
        }
        if let Some(root) = root {
            if libc::chroot(root.as_ptr()) != 0 {
                fail(STAGE_CHROOT);
            }
            if libc::chdir(c"/".as_ptr()) != 0 {
                fail(STAGE_CHROOT);
            }
        }
        libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
    }
    fail(STAGE_EXEC)
}

/// Read a pipe to its end on a thread, keeping the first [`KEEP_OUTPUT`] bytes.
fn reader(fd: OwnedFd) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut file = File::from(fd);
        let mut kept = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match file.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = KEEP_OUTPUT.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
        let _ = tx.send(String::from_utf8_lossy(&kept).into_owned());
    });
    rx
}

/// waitpid with an optional deadline; `None` when the deadline passed first.
fn wait(pid: i32, timeout: Option<Duration>) -> Option<i32> {
    let start = Instant::now();
    loop {
        let mut status = 0;
        let flags = if timeout.is_some() { libc::WNOHANG } else { 0 };
        // SAFETY: waitpid(2) writes only to `status`, a local.
        let r = unsafe { libc::waitpid(pid, &mut status, flags) };
        if r == pid {
            return Some(status);
        }
        if r < 0 && Errno::last() != Errno::EINTR {
            return Some(0);
        }
        if let Some(t) = timeout {
            if start.elapsed() > t {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl RunOutcome {
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

/// The name of a signal that commonly ends a program that should not have run.
fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGILL => "SIGILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGABRT => "SIGABRT",
        libc::SIGFPE => "SIGFPE",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGSYS => "SIGSYS",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGPIPE => "SIGPIPE",
        _ => return format!("signal {sig}"),
    };
    name.to_string()
}
