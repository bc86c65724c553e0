//! A started child, and waiting for it: its output read as it comes, a timeout that kills
//! its process group, signals passed on.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::{Spec, Step, spawn};
use crate::sys::signals::SignalWatch;

/// How long output is still read after the child ended: a daemon it left behind may hold the
/// pipes open, and is not waited for.
const DRAIN_GRACE: Duration = Duration::from_millis(300);

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
    fn read_some(&mut self) {
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
            }
        }
    }

    /// The step and errno with which the child failed before its program ran.
    pub fn failed(&self) -> Option<(Step, Errno)> {
        self.failed
    }

    /// Reap the child if it has ended.
    fn try_reap(&mut self) -> bool {
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
    fn kill(&mut self) {
        let target = if self.new_group {
            Pid::from_raw(-self.pid.as_raw())
        } else {
            self.pid
        };
        let _ = nix::sys::signal::kill(target, Signal::SIGKILL);
        while let Err(Errno::EINTR) = waitpid(self.pid, None) {}
        self.status = Some(Ending::TimedOut);
    }

    fn outcome(self) -> Outcome {
        self.outcome_so_far()
    }

    /// Its outcome as it stands: final once it has ended and its output is read.
    fn outcome_so_far(&self) -> Outcome {
        let [out, err] = &self.pipes;
        Outcome {
            ending: self.status.unwrap_or(Ending::TimedOut),
            truncated: out.truncated || err.truncated,
            stdout: out.kept.clone(),
            stderr: err.kept.clone(),
            elapsed: self
                .ended_at
                .map_or_else(|| self.started.elapsed(), |at| at - self.started),
        }
    }

    /// Wait for it to end, at most `timeout` from its start (then it is killed), reading its
    /// output meanwhile.
    pub fn wait(self, timeout: Option<Duration>) -> Outcome {
        let mut all = wait_all(vec![self], timeout);
        all.remove(0)
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

/// Wait for every child, each bounded by `timeout` from its own start, reading all their
/// output as it comes. One outcome per child, in order.
pub fn wait_all(children: Vec<Child>, timeout: Option<Duration>) -> Vec<Outcome> {
    Pool::of(children).wait_each(timeout, |_, _| {})
}

/// How long a program of a [`Pool`] holds its place.
const SLOW: Duration = Duration::from_millis(250);

/// One program of a [`Pool`].
#[derive(Debug)]
enum Slot {
    Waiting(Box<Spec>),
    Running(Child),
    Done(Outcome),
}

/// Programs run at most `limit` at a time: the first ones start at once
/// ([`Pool::start`]), each next one as soon as one is done ([`Pool::wait_each`]). Started
/// all at once, 20 emulators share two cores until nearly the end, so each ends late, and so
/// does whatever one of them calls for; a few at a time, they end one after another, and
/// what one calls for starts early, beside the rest. A program still running after
/// [`SLOW`] no longer holds its place, so programs that hang (each until its own timeout)
/// delay the others by that much at most, not by their timeout.
#[derive(Debug)]
pub struct Pool {
    limit: usize,
    /// How long a running program holds its place: [`SLOW`].
    hold: Duration,
    slots: Vec<Slot>,
    /// Per slot: whether its outcome was handed over.
    told: Vec<bool>,
}

impl Pool {
    /// Start the first `limit` of `specs` (at least one); the others wait their turn.
    pub fn start(specs: Vec<Spec>, limit: usize) -> Pool {
        let mut pool = Pool {
            limit: limit.max(1),
            hold: SLOW,
            told: vec![false; specs.len()],
            slots: specs
                .into_iter()
                .map(|s| Slot::Waiting(Box::new(s)))
                .collect(),
        };
        pool.fill();
        pool
    }

    /// The same, each running program holding its place for `hold`.
    #[cfg(test)]
    pub(super) fn holding(mut self, hold: Duration) -> Pool {
        self.hold = hold;
        self
    }

    /// Children already running, all waited for at once.
    fn of(children: Vec<Child>) -> Pool {
        Pool {
            limit: usize::MAX,
            hold: SLOW,
            told: vec![false; children.len()],
            slots: children.into_iter().map(Slot::Running).collect(),
        }
    }

    /// The limit to use: one program per core. Measured with hyperfine on `test` over
    /// arch-test's architectures (19 emulators) on 2 cores, 3 rounds of 30 runs: a limit of
    /// 2 took 55 to 61 ms and about 100 ms of CPU, 4 took 60 to 68 ms, 8 took 60 to 67 ms,
    /// no limit 64 to 65 ms and 110 to 117 ms of CPU: emulators that share a core also share
    /// its caches, and each runs slower.
    pub fn default_limit() -> usize {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }

    /// Start waiting programs, in order, while fewer than `limit` hold a place (run, for
    /// less than [`SLOW`]). One that cannot be spawned is done at once, failed at its first
    /// step.
    fn fill(&mut self) {
        let mut running = self
            .slots
            .iter()
            .filter(|s| matches!(s, Slot::Running(c) if c.started.elapsed() < self.hold))
            .count();
        for slot in &mut self.slots {
            if running >= self.limit {
                break;
            }
            if let Slot::Waiting(spec) = slot {
                *slot = match spawn(spec) {
                    Ok(child) => {
                        running += 1;
                        Slot::Running(child)
                    }
                    Err(e) => Slot::Done(Outcome::not_started(&e)),
                };
            }
        }
    }

    /// Wait for every program, each bounded by `timeout` from its own start, reading all
    /// their output as it comes, and starting the waiting ones as others are done. Each
    /// outcome goes to `done` (with the program's index) as soon as it is complete, ended and
    /// its output read, while the others still run: what it calls for can start at once.
    /// One outcome per program, in order.
    pub fn wait_each(
        mut self,
        timeout: Option<Duration>,
        mut done: impl FnMut(usize, &Outcome),
    ) -> Vec<Outcome> {
        let mut pause = Duration::from_micros(50);
        loop {
            let now = Instant::now();
            // The earliest moment something falls due: a deadline, the end of a grace, or
            // a place freed by a slow program while others wait for one.
            let mut due: Option<Instant> = None;
            let waiting = self.slots.iter().any(|s| matches!(s, Slot::Waiting(_)));
            for slot in &mut self.slots {
                let Slot::Running(c) = slot else {
                    continue;
                };
                let mut soon = |t: Instant| due = Some(due.map_or(t, |d| d.min(t)));
                if c.ended_at.is_none() {
                    let ended = (c.may_have_ended || c.pidfd.is_none()) && c.try_reap();
                    c.may_have_ended = false;
                    if ended {
                        c.ended_at = Some(now);
                    } else if timeout.is_some_and(|t| now >= c.started + t) {
                        c.kill();
                        c.ended_at = Some(now);
                    } else if let Some(t) = timeout {
                        soon(c.started + t);
                    }
                    if waiting && now < c.started + self.hold {
                        soon(c.started + self.hold);
                    }
                }
                if let Some(at) = c.ended_at {
                    if c.pipes.iter().any(|d| d.file.is_some()) {
                        if now >= at + DRAIN_GRACE {
                            // A daemon it left behind holds the pipe open: what came is kept.
                            c.pipes.iter_mut().for_each(|d| d.file = None);
                        } else {
                            soon(at + DRAIN_GRACE);
                        }
                    }
                }
                if c.ended_at.is_some() && c.pipes.iter().all(|d| d.file.is_none()) {
                    *slot = Slot::Done(c.outcome_so_far());
                }
            }
            self.fill();
            for (i, slot) in self.slots.iter().enumerate() {
                if let (Slot::Done(outcome), false) = (slot, self.told[i]) {
                    self.told[i] = true;
                    done(i, outcome);
                }
            }
            if self.slots.iter().all(|s| matches!(s, Slot::Done(_))) {
                break;
            }
            pause = self.sleep(now, due, pause);
        }
        self.slots
            .into_iter()
            .map(|s| match s {
                Slot::Done(outcome) => outcome,
                // Unreachable: the loop ends only when every slot is done.
                Slot::Running(child) => child.outcome(),
                Slot::Waiting(_) => Outcome::not_started(&io::Error::other("never started")),
            })
            .collect()
    }

    /// Sleep until a pipe has data, a child ends (its pidfd turns readable) or something
    /// falls due, and read what came. A child without a pidfd is polled, backing off to half
    /// a millisecond; the next pause is returned.
    fn sleep(&mut self, now: Instant, due: Option<Instant>, mut pause: Duration) -> Duration {
        let mut unwatched = false;
        let mut owners: Vec<(usize, Option<usize>)> = Vec::new();
        let ready: Vec<bool> = {
            let mut fds: Vec<PollFd<'_>> = Vec::new();
            for (i, slot) in self.slots.iter().enumerate() {
                let Slot::Running(c) = slot else {
                    continue;
                };
                for (k, d) in c.pipes.iter().enumerate() {
                    if let Some(f) = &d.file {
                        fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
                        owners.push((i, Some(k)));
                    }
                }
                if c.ended_at.is_none() {
                    match &c.pidfd {
                        Some(p) => {
                            fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
                            owners.push((i, None));
                        }
                        None => unwatched = true,
                    }
                }
            }
            let mut wait = due.map(|d| d.saturating_duration_since(now));
            if unwatched {
                wait = Some(wait.map_or(pause, |w| w.min(pause)));
                pause = (pause * 2).min(Duration::from_micros(500));
            }
            let wait = match wait {
                None => PollTimeout::NONE,
                // Rounded up: poll counts whole milliseconds, and 0 would spin.
                Some(w) => PollTimeout::try_from(w.max(Duration::from_millis(1)))
                    .unwrap_or(PollTimeout::MAX),
            };
            if let Err(e) = poll(&mut fds, wait) {
                if e != Errno::EINTR {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            fds.iter()
                .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
                .collect()
        };
        for ((i, pipe), ready) in owners.into_iter().zip(ready) {
            if let (Slot::Running(c), true) = (&mut self.slots[i], ready) {
                match pipe {
                    Some(k) => c.pipes[k].read_some(),
                    None => c.may_have_ended = true,
                }
            }
        }
        pause
    }
}

/// Run one program to its end: [`spawn`] then [`Child::wait`].
pub fn run(spec: &Spec, timeout: Option<Duration>) -> io::Result<Outcome> {
    Ok(spawn(spec)?.wait(timeout))
}
