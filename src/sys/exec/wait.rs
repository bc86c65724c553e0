//! A started child, and waiting for it: its output read as it comes, a timeout that kills
//! its process group, signals passed on.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::{Spec, Step, spawn};
use crate::sys::signals::SignalWatch;

/// How long output is still read after the child ended: a daemon it left behind may hold the
/// pipes open, and is not waited for.
pub(super) const DRAIN_GRACE: Duration = Duration::from_millis(300);

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Exited(i32),
    /// Killed by this signal number.
    Signaled(i32),
    /// A step before the program ran failed; [`Step::Exec`] is exec itself (ENOEXEC: no
    /// handler; ENOENT: interpreter or loader missing; …).
    Failed {
        step: Step,
        errno: Errno,
    },
    /// Still running at the deadline; killed.
    TimedOut,
}

impl Ending {
    /// The errno exec itself failed with, if that is how it ended.
    pub fn exec_errno(&self) -> Option<Errno> {
        match self {
            Ending::Failed {
                step: Step::Exec,
                errno,
            } => Some(*errno),
            _ => None,
        }
    }

    /// The shell's way of saying it: the exit code, or 128 + N for a death by signal N.
    pub fn shell_status(&self) -> Option<u8> {
        match self {
            Ending::Exited(code) => Some(*code as u8),
            Ending::Signaled(sig) => Some(128u8.wrapping_add(*sig as u8)),
            _ => None,
        }
    }
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub ending: Ending,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// More was written than the capture limit kept.
    pub truncated: bool,
    /// From the spawn to the end.
    pub elapsed: Duration,
    /// The file the kernel ran for it (an interpreter, for a program a binfmt_misc handler
    /// took), as seen just after its exec; `None` when it ended or failed before we looked.
    pub exe: Option<FileId>,
}

/// Which file, and which state of it: what a file's answers may be kept under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

impl FileId {
    pub fn of(m: &std::fs::Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }

    /// The file process `pid` runs, through /proc/PID/exe: the very file the kernel opened,
    /// even when its path now names another or none (an `F` handler's interpreter).
    pub fn running(pid: u32) -> Option<FileId> {
        std::fs::metadata(format!("/proc/{pid}/exe"))
            .ok()
            .map(|m| FileId::of(&m))
    }
}

impl Outcome {
    /// What a program that could not even be spawned (no pipe, no memory) reads as: failed
    /// at its first step.
    pub fn not_started(e: &io::Error) -> Outcome {
        Outcome {
            ending: Ending::Failed {
                step: Step::Prepare,
                errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            },
            stdout: Vec::new(),
            stderr: e.to_string().into_bytes(),
            truncated: false,
            elapsed: Duration::ZERO,
            exe: None,
        }
    }
}

/// A spawned child: running, or already failed before its program ran.
#[derive(Debug)]
pub struct Child {
    pub(super) pid: Pid,
    /// Readable when the child ends (Linux ≥ 5.3); without it, waiting polls.
    pub(super) pidfd: Option<OwnedFd>,
    /// Whether waitpid is worth asking: its pidfd turned readable, or it has none. With many
    /// children, asking each one at every wake-up would cost more than they do.
    pub(super) may_have_ended: bool,
    pub(super) new_group: bool,
    pub(super) started: Instant,
    /// When it ended (reaped or killed), to stop reading pipes a daemon of its keeps open.
    pub(super) ended_at: Option<Instant>,
    pub(super) failed: Option<(Step, Errno)>,
    /// stdout, stderr.
    pub(super) pipes: [Drain; 2],
    pub(super) status: Option<Ending>,
    /// See [`Outcome::exe`].
    pub(super) exe: Option<FileId>,
}

/// One output pipe being read.
#[derive(Debug, Default)]
pub(super) struct Drain {
    /// `None` once at end of file, or when nothing is captured.
    pub(super) file: Option<File>,
    pub(super) kept: Vec<u8>,
    pub(super) limit: usize,
    pub(super) truncated: bool,
}

impl Drain {
    pub(super) fn new(fd: OwnedFd, limit: usize) -> Drain {
        // Non-blocking: one poll wake-up reads what is there and no more.
        let _ = nix::fcntl::fcntl(
            &fd,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        Drain {
            file: Some(File::from(fd)),
            kept: Vec::new(),
            limit,
            truncated: false,
        }
    }

    /// Read what is there now, closing the pipe at end of file.
    pub(super) fn read_some(&mut self) {
        let Some(file) = self.file.as_mut() else {
            return;
        };
        let mut buf = [0u8; 16 * 1024];
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let room = self.limit.saturating_sub(self.kept.len());
                    self.kept.extend_from_slice(&buf[..n.min(room)]);
                    self.truncated |= n > room;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => break,
            }
        }
        self.file = None;
    }
}

impl Child {
    pub fn pid(&self) -> u32 {
        self.pid.as_raw() as u32
    }

    /// Record how its start went: exec done (`None`), or a step failed.
    pub(super) fn started_by(&mut self, failed: Option<(Step, Errno)>) {
        self.failed = failed;
        match failed {
            Some((step, errno)) => {
                // It _exits at once after reporting.
                let _ = waitpid(self.pid, None);
                self.ended_at = Some(Instant::now());
                self.status = Some(Ending::Failed { step, errno });
            }
            None => {
                self.pidfd = rustix::process::Pid::from_raw(self.pid.as_raw()).and_then(|p| {
                    rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()
                });
                // Its exec is done (we are past the vfork, or read the report's end), and an
                // emulator takes milliseconds to start: it is almost always still there.
                self.exe = FileId::running(self.pid());
            }
        }
    }

    /// The step and errno with which the child failed before its program ran.
    pub fn failed(&self) -> Option<(Step, Errno)> {
        self.failed
    }

    /// Reap the child if it has ended.
    pub(super) fn try_reap(&mut self) -> bool {
        if self.status.is_some() {
            return true;
        }
        loop {
            self.status = Some(match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => Ending::Exited(code),
                Ok(WaitStatus::Signaled(_, sig, _)) => Ending::Signaled(sig as i32),
                Ok(_) => return false,
                Err(Errno::EINTR) => continue,
                // Not our child any more (reaped elsewhere): nothing more can be learnt.
                Err(_) => Ending::Exited(-1),
            });
            return true;
        }
    }

    /// Kill it (its whole process group when it has one) and reap it.
    pub(super) fn kill(&mut self) {
        let target = if self.new_group {
            Pid::from_raw(-self.pid.as_raw())
        } else {
            self.pid
        };
        let _ = nix::sys::signal::kill(target, Signal::SIGKILL);
        while let Err(Errno::EINTR) = waitpid(self.pid, None) {}
        self.status = Some(Ending::TimedOut);
    }

    /// Its outcome as it stands: final once it has ended and its output is read.
    pub(super) fn outcome_so_far(&self) -> Outcome {
        let [out, err] = &self.pipes;
        Outcome {
            ending: self.status.unwrap_or(Ending::TimedOut),
            truncated: out.truncated || err.truncated,
            stdout: out.kept.clone(),
            stderr: err.kept.clone(),
            elapsed: self
                .ended_at
                .map_or_else(|| self.started.elapsed(), |at| at - self.started),
            exe: self.exe,
        }
    }

    /// Wait for it to end while passing the signals `watch` reads on to it, except those
    /// the kernel sent itself (a terminal's ^C reaches the whole foreground process group,
    /// the child included: passing it on would deliver it twice). `watch` must include
    /// SIGCHLD, which wakes the wait when the child ends.
    pub fn wait_forwarding(mut self, watch: &SignalWatch) -> io::Result<Ending> {
        loop {
            if self.try_reap() {
                return Ok(self.status.unwrap_or(Ending::Exited(-1)));
            }
            let Some(got) = watch.next(None)? else {
                continue;
            };
            if got.signal == Signal::SIGCHLD || got.from_kernel {
                continue;
            }
            tracing::debug!("passing {} on to {}", got.signal, self.pid);
            match nix::sys::signal::kill(self.pid, got.signal) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Run one program to its end: [`spawn`] then [`Child::wait`].
pub fn run(spec: &Spec, timeout: Option<Duration>) -> io::Result<Outcome> {
    Ok(spawn(spec)?.wait(timeout))
}
