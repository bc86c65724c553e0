//! Programs run a core's worth at a time: [`Pool`], the one list all of a thread's pools
//! share ([`Programs`]), and waiting for children already started ([`wait_all`]).

use std::cell::RefCell;
use std::io;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::wait::{Child, DRAIN_GRACE, Outcome};
use super::{Spec, spawn};

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
                Slot::Running(child) => child.outcome_so_far(),
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

impl Child {
    /// Wait for it to end, at most `timeout` from its start (then it is killed), reading its
    /// output meanwhile.
    pub fn wait(self, timeout: Option<Duration>) -> Outcome {
        let mut all = wait_all(vec![self], timeout);
        all.remove(0)
    }
}

/// Wait for every child, each bounded by `timeout` from its own start, reading all their
/// output as it comes. One outcome per child, in order.
pub fn wait_all(children: Vec<Child>, timeout: Option<Duration>) -> Vec<Outcome> {
    Pool::of(children).wait_each(timeout, |_, _| {})
}
