//! A started child, and waiting for it: its output read as it comes, a timeout that kills
//! its process group, signals passed on.

use std::cell::RefCell;
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
            exe: self.exe,
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

thread_local! {
    /// The programs of every pool this thread has started and not yet waited for.
    static PROGRAMS: RefCell<Programs> = RefCell::new(Programs::default());
}

/// All of a thread's pools as one: they share its places, a pool started later goes ahead
/// of the programs still waiting in earlier ones, and whichever pool is being waited for
/// watches every program, so that the end of any frees its place at once. `test` starts
/// the questions to each QEMU and the second runs of level probes as pools of their own,
/// beside the probes' pool; waited for apart, they ran beyond its limit, and the probes'
/// wait slept through their ends (a sched trace showed a core idle for 1 to 4 ms after
/// each).
#[derive(Debug, Default)]
struct Programs {
    next_pool: u64,
    entries: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    pool: u64,
    /// Its place in its pool's list.
    index: usize,
    /// Its pool's limit, and how long each of its running programs holds its place.
    limit: usize,
    hold: Duration,
    /// False for a child started outside any pool ([`wait_all`]): it holds no place.
    placed: bool,
    slot: Slot,
}

impl Entry {
    /// Running, and still holding its place.
    fn holds_place(&self) -> bool {
        self.placed && matches!(&self.slot, Slot::Running(c) if c.started.elapsed() < self.hold)
    }
}

impl Programs {
    fn add(&mut self, slots: Vec<Slot>, limit: usize, placed: bool) -> u64 {
        let pool = self.next_pool;
        self.next_pool += 1;
        self.entries
            .extend(slots.into_iter().enumerate().map(|(index, slot)| Entry {
                pool,
                index,
                limit,
                hold: SLOW,
                placed,
                slot,
            }));
        pool
    }

    /// Start waiting programs while places are free: fewer than the largest limit of the
    /// pools present hold one, and fewer than its own pool's limit. Later pools first, each
    /// in its own order. One that cannot be spawned is done at once, failed at its first
    /// step.
    fn fill(&mut self) {
        let cap = self
            .entries
            .iter()
            .filter(|e| e.placed)
            .map(|e| e.limit)
            .max()
            .unwrap_or(0);
        let mut held = self.entries.iter().filter(|e| e.holds_place()).count();
        let mut order: Vec<usize> = (0..self.entries.len())
            .filter(|&k| matches!(self.entries[k].slot, Slot::Waiting(_)))
            .collect();
        order.sort_by_key(|&k| {
            (
                std::cmp::Reverse(self.entries[k].pool),
                self.entries[k].index,
            )
        });
        for k in order {
            if held >= cap {
                break;
            }
            let pool = self.entries[k].pool;
            let in_pool = self
                .entries
                .iter()
                .filter(|e| e.pool == pool && e.holds_place())
                .count();
            let e = &mut self.entries[k];
            if in_pool >= e.limit {
                continue;
            }
            if let Slot::Waiting(spec) = &e.slot {
                e.slot = match spawn(spec) {
                    Ok(child) => {
                        held += 1;
                        Slot::Running(child)
                    }
                    Err(err) => Slot::Done(Outcome::not_started(&err)),
                };
            }
        }
    }

    /// Reap what ended, kill `pool`'s programs past `timeout`, finish reading pipes, start
    /// what may start; returns the earliest moment something falls due (a deadline of
    /// `pool`'s, the end of a grace, a place freed by a slow program while others wait).
    fn advance(&mut self, pool: u64, timeout: Option<Duration>, now: Instant) -> Option<Instant> {
        let mut due: Option<Instant> = None;
        let mut soon = |t: Instant| due = Some(due.map_or(t, |d: Instant| d.min(t)));
        let waiting = self
            .entries
            .iter()
            .any(|e| matches!(e.slot, Slot::Waiting(_)));
        for e in &mut self.entries {
            let Slot::Running(c) = &mut e.slot else {
                continue;
            };
            let ours = e.pool == pool;
            if c.ended_at.is_none() {
                let ended = (c.may_have_ended || c.pidfd.is_none()) && c.try_reap();
                c.may_have_ended = false;
                if ended {
                    c.ended_at = Some(now);
                } else if ours && timeout.is_some_and(|t| now >= c.started + t) {
                    c.kill();
                    c.ended_at = Some(now);
                } else if let (true, Some(t)) = (ours, timeout) {
                    soon(c.started + t);
                }
                if waiting && e.placed && now < c.started + e.hold {
                    soon(c.started + e.hold);
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
                e.slot = Slot::Done(c.outcome_so_far());
            }
        }
        self.fill();
        due
    }

    /// Sleep until a pipe has data, a child ends (its pidfd turns readable) or something
    /// falls due, and read what came. A child without a pidfd is polled, backing off to half
    /// a millisecond; the next pause is returned.
    fn sleep(&mut self, now: Instant, due: Option<Instant>, mut pause: Duration) -> Duration {
        self.watch(|unwatched| {
            let mut wait = due.map(|d| d.saturating_duration_since(now));
            if unwatched {
                wait = Some(wait.map_or(pause, |w| w.min(pause)));
                pause = (pause * 2).min(Duration::from_micros(500));
            }
            match wait {
                None => PollTimeout::NONE,
                // Rounded up: poll counts whole milliseconds, and 0 would spin.
                Some(w) => PollTimeout::try_from(w.max(Duration::from_millis(1)))
                    .unwrap_or(PollTimeout::MAX),
            }
        });
        pause
    }

    /// Poll every pipe and pidfd for as long as `wait` says (told whether some child has no
    /// pidfd), and read what came.
    fn watch(&mut self, wait: impl FnOnce(bool) -> PollTimeout) {
        let mut unwatched = false;
        let mut owners: Vec<(usize, Option<usize>)> = Vec::new();
        let ready: Vec<bool> = {
            let mut fds: Vec<PollFd<'_>> = Vec::new();
            for (i, e) in self.entries.iter().enumerate() {
                let Slot::Running(c) = &e.slot else {
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
            if let Err(e) = poll(&mut fds, wait(unwatched)) {
                if e != Errno::EINTR {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            fds.iter()
                .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
                .collect()
        };
        for ((i, pipe), ready) in owners.into_iter().zip(ready) {
            if let (Slot::Running(c), true) = (&mut self.entries[i].slot, ready) {
                match pipe {
                    Some(k) => c.pipes[k].read_some(),
                    None => c.may_have_ended = true,
                }
            }
        }
    }

    /// `pool`'s outcomes done and not yet handed over (`told`), cloned.
    fn fresh(&self, pool: u64, told: &[bool]) -> Vec<(usize, Outcome)> {
        self.entries
            .iter()
            .filter(|e| e.pool == pool && !told.get(e.index).copied().unwrap_or(true))
            .filter_map(|e| match &e.slot {
                Slot::Done(o) => Some((e.index, o.clone())),
                _ => None,
            })
            .collect()
    }

    /// Take `pool`'s programs out, in its order.
    fn remove(&mut self, pool: u64) -> Vec<Slot> {
        let mut mine: Vec<(usize, Slot)> = Vec::new();
        let mut rest = Vec::with_capacity(self.entries.len());
        for e in self.entries.drain(..) {
            if e.pool == pool {
                mine.push((e.index, e.slot));
            } else {
                rest.push(e);
            }
        }
        self.entries = rest;
        mine.sort_by_key(|(i, _)| *i);
        mine.into_iter().map(|(_, s)| s).collect()
    }
}

/// Programs run at most `limit` at a time: the first ones start at once
/// ([`Pool::start`]), each next one as soon as one is done ([`Pool::wait_each`]). Started
/// all at once, 20 emulators share two cores until nearly the end, so each ends late, and so
/// does whatever one of them calls for; a few at a time, they end one after another, and
/// what one calls for starts early, beside the rest. A program still running after
/// [`SLOW`] no longer holds its place, so programs that hang (each until its own timeout)
/// delay the others by that much at most, not by their timeout. A thread's pools share
/// their places ([`Programs`]).
#[derive(Debug)]
pub struct Pool {
    id: u64,
    len: usize,
    /// Its programs are in this thread's list: not to be waited for from another thread.
    _thread: std::marker::PhantomData<*const ()>,
}

impl Pool {
    /// Start the first `limit` of `specs` (at least one) that places free on this thread
    /// allow; the others wait their turn.
    pub fn start(specs: Vec<Spec>, limit: usize) -> Pool {
        let len = specs.len();
        let slots = specs
            .into_iter()
            .map(|s| Slot::Waiting(Box::new(s)))
            .collect();
        let id = PROGRAMS.with_borrow_mut(|p| {
            let id = p.add(slots, limit.max(1), true);
            p.fill();
            id
        });
        Pool {
            id,
            len,
            _thread: std::marker::PhantomData,
        }
    }

    /// One more program, after those given at the start: it waits its turn behind them.
    pub fn push(&mut self, spec: Spec) {
        PROGRAMS.with_borrow_mut(|p| {
            let limit = p
                .entries
                .iter()
                .find(|e| e.pool == self.id)
                .map_or_else(Pool::default_limit, |e| e.limit);
            p.entries.push(Entry {
                pool: self.id,
                index: self.len,
                limit,
                hold: SLOW,
                placed: true,
                slot: Slot::Waiting(Box::new(spec)),
            });
        });
        self.len += 1;
    }

    /// The same, each running program holding its place for `hold`.
    #[cfg(test)]
    pub(super) fn holding(self, hold: Duration) -> Pool {
        PROGRAMS.with_borrow_mut(|p| {
            p.entries
                .iter_mut()
                .filter(|e| e.pool == self.id)
                .for_each(|e| e.hold = hold);
        });
        self
    }

    /// Children already running, all waited for at once.
    fn of(children: Vec<Child>) -> Pool {
        let len = children.len();
        let slots = children.into_iter().map(Slot::Running).collect();
        let id = PROGRAMS.with_borrow_mut(|p| p.add(slots, usize::MAX, false));
        Pool {
            id,
            len,
            _thread: std::marker::PhantomData,
        }
    }

    /// Without waiting: note what ended and start what may start in the places it freed.
    /// For a caller with work of its own to do between starting a pool and waiting for it.
    pub fn refill() {
        PROGRAMS.with_borrow_mut(|p| {
            p.watch(|_| PollTimeout::ZERO);
            p.advance(u64::MAX, None, Instant::now());
        });
    }

    /// The limit to use: one program per core. Measured with hyperfine on `test` over
    /// arch-test's architectures (19 emulators) on 2 cores, 3 rounds of 30 runs: a limit of
    /// 2 took 55 to 61 ms and about 100 ms of CPU, 4 took 60 to 68 ms, 8 took 60 to 67 ms,
    /// no limit 64 to 65 ms and 110 to 117 ms of CPU: emulators that share a core also share
    /// its caches, and each runs slower.
    /// Asked once: std reads the cgroup's CPU quota files for it each time.
    pub fn default_limit() -> usize {
        static LIMIT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        *LIMIT.get_or_init(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
    }

    /// Wait for every program, each bounded by `timeout` from its own start, reading all
    /// their output as it comes, and starting the waiting ones as others are done (this
    /// thread's other pools' too). Each outcome goes to `done` (with the program's index) as
    /// soon as it is complete, ended and its output read, while the others still run: what
    /// it calls for can start at once. One outcome per program, in order.
    pub fn wait_each(
        self,
        timeout: Option<Duration>,
        mut done: impl FnMut(usize, &Outcome),
    ) -> Vec<Outcome> {
        let mut pause = Duration::from_micros(50);
        let mut told = vec![false; self.len];
        loop {
            let now = Instant::now();
            let due = PROGRAMS.with_borrow_mut(|p| p.advance(self.id, timeout, now));
            // Handed over with the list let go: `done` may start a pool of its own.
            let fresh = PROGRAMS.with_borrow(|p| p.fresh(self.id, &told));
            let handed = !fresh.is_empty();
            for (i, outcome) in fresh {
                told[i] = true;
                done(i, &outcome);
            }
            let gone = PROGRAMS.with_borrow(|p| p.entries.iter().all(|e| e.pool != self.id));
            if gone || told.iter().all(|&t| t) {
                break;
            }
            if !handed {
                pause = PROGRAMS.with_borrow_mut(|p| p.sleep(now, due, pause));
            }
        }
        PROGRAMS
            .with_borrow_mut(|p| p.remove(self.id))
            .into_iter()
            .map(|s| match s {
                Slot::Done(outcome) => outcome,
                // Unreachable: the loop ends only when every slot is done.
                Slot::Running(child) => child.outcome(),
                Slot::Waiting(_) => Outcome::not_started(&io::Error::other("never started")),
            })
            .collect()
    }
}

impl Drop for Pool {
    /// Given up unwaited (or waited for: then nothing is left): its programs leave the
    /// thread's list, the running ones still running, unwaited, as a dropped [`Child`] is.
    fn drop(&mut self) {
        let _ = PROGRAMS.try_with(|p| {
            if let Ok(mut p) = p.try_borrow_mut() {
                p.remove(self.id);
            }
        });
    }
}

/// Run one program to its end: [`spawn`] then [`Child::wait`].
pub fn run(spec: &Spec, timeout: Option<Duration>) -> io::Result<Outcome> {
    Ok(spawn(spec)?.wait(timeout))
}
