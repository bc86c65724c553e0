//! The one place this program starts another program.
//!
//! A [`Spec`] says what to run (program, argv, environment, stdin, what becomes of the output)
//! and the steps the child takes before exec: its signal mask, a new process group, joining
//! another process's namespaces, a private binfmt_misc instance with registrations, a chroot.
//! Every spawn ends in an [`Outcome`]: exited N, killed by signal S, failed at step X with
//! errno E (exec itself being the last step), or timed out.
//!
//! Not `std::process::Command`: it execs with execvp semantics, which answer ENOEXEC by
//! running the file through /bin/sh, and so would hide the very error binfmt_misc gives.
//! The child calls execve(2) itself. Between fork and exec it runs only async-signal-safe
//! system calls on data prepared before the fork (another thread of ours may hold the
//! allocator's lock when we fork), and reports a failure, with the step it failed at, through
//! a close-on-exec pipe: end-of-file on that pipe means the exec happened.
//!
//! Output is drained while the child runs, so a program that writes more than a pipe holds
//! cannot stall; a timeout kills the child's whole process group when it has its own.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::ns;
use super::signals::SignalWatch;

/// PATH when the environment has none: the usual one of a Debian root, and glibc's default.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How long output is still read after the child ended: a daemon it left behind may hold the
/// pipes open, and is not waited for.
const DRAIN_GRACE: Duration = Duration::from_millis(300);

/// Where the child's standard input comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdin {
    /// /dev/null: a probe or a diagnosed program must not read our terminal.
    Null,
    /// Ours.
    Inherit,
}

/// What becomes of the child's stdout and stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Ours.
    Inherit,
    /// Read through pipes while the child runs; the first `limit` bytes of each are kept,
    /// the rest read and dropped.
    Capture { limit: usize },
}

/// The environment the program gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Env {
    /// Ours, as it is when the child is spawned.
    Inherit,
    /// Exactly these `KEY=value` strings.
    Exactly(Vec<OsString>),
}

/// What to do when chroot(2) is refused for lack of privilege.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChrootFallback {
    /// Fail at [`Step::Chroot`].
    None,
    /// Enter a new user namespace, where we may chroot. Exec still finds handlers in the
    /// nearest binfmt_misc instance above, so the instance being tested is the one used.
    UserNamespace,
}

/// The steps the child takes before exec, in this order. A failure names its step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Signal mask and dispositions, process group, standard descriptors.
    Prepare,
    /// Joining another process's user and mount namespaces.
    Join,
    /// Entering a new user and mount namespace with a fresh binfmt_misc.
    PrivateInstance,
    /// Writing a rule to that instance's `register`.
    Register,
    /// chroot(2) and chdir("/").
    Chroot,
    /// execve(2) itself.
    Exec,
}

impl Step {
    fn from_u8(b: u8) -> Step {
        match b {
            1 => Step::Join,
            2 => Step::PrivateInstance,
            3 => Step::Register,
            4 => Step::Chroot,
            5 => Step::Exec,
            _ => Step::Prepare,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            Step::Prepare => 0,
            Step::Join => 1,
            Step::PrivateInstance => 2,
            Step::Register => 3,
            Step::Chroot => 4,
            Step::Exec => 5,
        }
    }

    /// In words, for messages: "chroot", "exec", …
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Prepare => "preparing the child",
            Step::Join => "joining the namespaces",
            Step::PrivateInstance => "making a private binfmt_misc",
            Step::Register => "registering in the private binfmt_misc",
            Step::Chroot => "chroot",
            Step::Exec => "exec",
        }
    }
}

/// What to run, and how.
#[derive(Debug, Clone)]
pub struct Spec {
    program: PathBuf,
    argv: Vec<OsString>,
    env: Env,
    stdin: Stdin,
    output: Output,
    mask: Option<SigSet>,
    new_group: bool,
    join: Option<u32>,
    private: Option<Vec<String>>,
    chroot: Option<(PathBuf, ChrootFallback)>,
}

impl Spec {
    /// `program` (the path passed to execve) with argv `[program]`, our environment, stdin
    /// from /dev/null, output captured up to 64 KiB, and no other step.
    pub fn new(program: impl Into<PathBuf>) -> Spec {
        let program = program.into();
        Spec {
            argv: vec![program.clone().into_os_string()],
            program,
            env: Env::Inherit,
            stdin: Stdin::Null,
            output: Output::Capture { limit: 64 * 1024 },
            mask: None,
            new_group: false,
            join: None,
            private: None,
            chroot: None,
        }
    }

    /// The whole argv, argv[0] first (a `P` handler hands argv[0] on; one without replaces
    /// it by the path).
    pub fn argv<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, argv: I) -> Spec {
        self.argv = argv.into_iter().map(Into::into).collect();
        self
    }

    pub fn env(mut self, env: Env) -> Spec {
        self.env = env;
        self
    }

    pub fn stdin(mut self, stdin: Stdin) -> Spec {
        self.stdin = stdin;
        self
    }

    pub fn output(mut self, output: Output) -> Spec {
        self.output = output;
        self
    }

    /// The signal mask the program starts with (default: nothing blocked). SIGPIPE is
    /// always reset to its default action, which Rust programs ignore and exec would keep.
    pub fn signal_mask(mut self, mask: SigSet) -> Spec {
        self.mask = Some(mask);
        self
    }

    /// Its own process group, so a timeout kills whatever it started too.
    pub fn new_process_group(mut self) -> Spec {
        self.new_group = true;
        self
    }

    /// Join the user and mount namespaces of process `pid` first (a test's private
    /// binfmt_misc instance, held by a sleeping process).
    pub fn join_namespaces_of(mut self, pid: u32) -> Spec {
        self.join = Some(pid);
        self
    }

    /// Run against a private, empty binfmt_misc (see `sys::ns`) holding only `rules`
    /// (register strings, one write each): with none, only what the kernel runs itself runs.
    pub fn private_binfmt(mut self, rules: Vec<String>) -> Spec {
        self.private = Some(rules);
        self
    }

    /// chroot to `dir` before exec; `program` is then looked up inside it.
    pub fn chroot(mut self, dir: impl Into<PathBuf>, fallback: ChrootFallback) -> Spec {
        self.chroot = Some((dir.into(), fallback));
        self
    }

    pub fn program(&self) -> &Path {
        &self.program
    }
}

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

/// A spawned child: running, or already failed before its program ran.
#[derive(Debug)]
pub struct Child {
    pid: Pid,
    /// Readable when the child ends (Linux ≥ 5.3); without it, waiting polls.
    pidfd: Option<OwnedFd>,
    new_group: bool,
    started: Instant,
    /// When it ended (reaped or killed), to stop reading pipes a daemon of its keeps open.
    ended_at: Option<Instant>,
    failed: Option<(Step, Errno)>,
    /// stdout, stderr.
    pipes: [Drain; 2],
    status: Option<Ending>,
}

/// One output pipe being read.
#[derive(Debug, Default)]
struct Drain {
    /// `None` once at end of file, or when nothing is captured.
    file: Option<File>,
    kept: Vec<u8>,
    limit: usize,
    truncated: bool,
}

impl Drain {
    fn new(fd: OwnedFd, limit: usize) -> Drain {
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

/// Everything the child needs, built before the fork.
struct Prepared {
    program: CString,
    _args: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    _env: Vec<CString>,
    envp: Vec<*const libc::c_char>,
    mask: SigSet,
    new_group: bool,
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    join: Option<(OwnedFd, OwnedFd)>,
    private: Option<Vec<Vec<u8>>>,
    chroot: Option<(CString, ChrootFallback)>,
    report: OwnedFd,
}

fn c_string(s: &OsStr, what: &str) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} {:?} holds a NUL byte", s.to_string_lossy()),
        )
    })
}

fn pointers(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// Start the program. `Err` only when it could not even be tried (a NUL byte in an
/// argument, no pipe, no fork); a failure of any step in the child, exec included, is a
/// [`Child`] whose outcome says so.
pub fn spawn(spec: &Spec) -> io::Result<Child> {
    let args: Vec<CString> = spec
        .argv
        .iter()
        .map(|a| c_string(a, "argument"))
        .collect::<io::Result<_>>()?;
    let env: Vec<CString> = match &spec.env {
        Env::Inherit => std::env::vars_os()
            .filter_map(|(k, v)| {
                let mut kv = k;
                kv.push("=");
                kv.push(v);
                // A variable holding NUL cannot be passed on; std drops it too.
                CString::new(kv.as_bytes()).ok()
            })
            .collect(),
        Env::Exactly(list) => list
            .iter()
            .map(|kv| c_string(kv, "environment entry"))
            .collect::<io::Result<_>>()?,
    };
    let stdin = match spec.stdin {
        Stdin::Null => Some(OwnedFd::from(File::open("/dev/null")?)),
        Stdin::Inherit => None,
    };
    let (mut readers, mut writers) = (Vec::new(), Vec::new());
    if let Output::Capture { .. } = spec.output {
        for _ in 0..2 {
            let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
            readers.push(r);
            writers.push(w);
        }
    }
    let join = match spec.join {
        Some(pid) => {
            let open = |ns: &str| File::open(format!("/proc/{pid}/ns/{ns}")).map(OwnedFd::from);
            Some((open("user")?, open("mnt")?))
        }
        None => None,
    };
    let (report_r, report_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let mut writers = writers.into_iter();
    let prepared = Prepared {
        program: c_string(spec.program.as_os_str(), "program")?,
        argv: pointers(&args),
        _args: args,
        envp: pointers(&env),
        _env: env,
        mask: spec.mask.unwrap_or_else(SigSet::empty),
        new_group: spec.new_group,
        stdin,
        stdout: writers.next(),
        stderr: writers.next(),
        join,
        private: spec
            .private
            .as_ref()
            .map(|rules| rules.iter().map(|r| r.as_bytes().to_vec()).collect()),
        chroot: match &spec.chroot {
            Some((dir, fallback)) => {
                Some((c_string(dir.as_os_str(), "chroot directory")?, *fallback))
            }
            None => None,
        },
        report: report_w,
    };
    let started = Instant::now();
    // SAFETY: the child branch runs only `child`, which makes async-signal-safe system calls
    // on `prepared` (built above, not touched by anyone else) and never returns; so a fork
    // from a multi-threaded process is sound here.
    let pid = match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => {
            // SAFETY: see above; we are the freshly forked child.
            unsafe { child(&prepared) }
        }
        nix::unistd::ForkResult::Parent { child } => child,
    };
    let Prepared { report, .. } = prepared;
    drop(report);
    let failed = read_report(report_r);
    if failed.is_some() {
        // It _exits at once after reporting.
        let _ = waitpid(pid, None);
    }
    let pidfd = match failed {
        Some(_) => None,
        None => rustix::process::Pid::from_raw(pid.as_raw()).and_then(|p| {
            rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()
        }),
    };
    let limit = match spec.output {
        Output::Capture { limit } => limit,
        Output::Inherit => 0,
    };
    let mut readers = readers.into_iter().map(|fd| Drain::new(fd, limit));
    Ok(Child {
        pid,
        pidfd,
        new_group: spec.new_group,
        started,
        ended_at: failed.map(|_| Instant::now()),
        failed,
        pipes: [
            readers.next().unwrap_or_default(),
            readers.next().unwrap_or_default(),
        ],
        status: failed.map(|(step, errno)| Ending::Failed { step, errno }),
    })
}

/// The step and errno the child reported, or `None` when the pipe closed without a word:
/// its exec succeeded.
fn read_report(fd: OwnedFd) -> Option<(Step, Errno)> {
    let mut buf = Vec::new();
    let _ = File::from(fd).read_to_end(&mut buf);
    let bytes: [u8; 5] = buf.get(..5)?.try_into().ok()?;
    let errno = i32::from_ne_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    Some((Step::from_u8(bytes[0]), Errno::from_raw(errno)))
}

/// The forked child: each step of the spec, then execve. Reports a failure on `p.report`.
///
/// # Safety
/// Only in a freshly forked child. It calls async-signal-safe functions only, on data
/// prepared before the fork, and never returns.
unsafe fn child(p: &Prepared) -> ! {
    let fail = |step: Step| -> ! {
        let errno = Errno::last_raw().to_ne_bytes();
        let msg = [step.as_u8(), errno[0], errno[1], errno[2], errno[3]];
        // SAFETY: write(2) and _exit(2) are async-signal-safe; msg lives on this stack.
        unsafe {
            libc::write(p.report.as_raw_fd(), msg.as_ptr().cast(), msg.len());
            libc::_exit(127)
        }
    };
    let ok = |r: libc::c_int| r >= 0;
    // SAFETY: sigprocmask and signal take a pointer to a mask on our stack or constants.
    unsafe {
        if !ok(libc::sigprocmask(
            libc::SIG_SETMASK,
            p.mask.as_ref(),
            std::ptr::null_mut(),
        )) {
            fail(Step::Prepare);
        }
        // Rust ignores SIGPIPE in its own processes; an ignored signal stays ignored across
        // exec, and a program must get the default (`yes | head` ends by SIGPIPE).
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // SAFETY: setpgid and dup2 on integers; the descriptors were opened before the fork.
    unsafe {
        if p.new_group && !ok(libc::setpgid(0, 0)) {
            fail(Step::Prepare);
        }
        for (fd, target) in [(&p.stdin, 0), (&p.stdout, 1), (&p.stderr, 2)] {
            if let Some(fd) = fd {
                if !ok(libc::dup2(fd.as_raw_fd(), target)) {
                    fail(Step::Prepare);
                }
            }
        }
    }
    if let Some((user, mnt)) = &p.join {
        // SAFETY: setns(2) on descriptors opened before the fork.
        unsafe {
            if !ok(libc::setns(user.as_raw_fd(), libc::CLONE_NEWUSER))
                || !ok(libc::setns(mnt.as_raw_fd(), libc::CLONE_NEWNS))
            {
                fail(Step::Join);
            }
        }
    }
    if let Some(rules) = &p.private {
        if ns::enter_private_instance().is_err() {
            fail(Step::PrivateInstance);
        }
        for rule in rules {
            if ns::write_once(ns::REGISTER, rule).is_err() {
                fail(Step::Register);
            }
        }
    }
    if let Some((dir, fallback)) = &p.chroot {
        // SAFETY: chroot, unshare and chdir on NUL-terminated strings prepared before fork.
        unsafe {
            if !ok(libc::chroot(dir.as_ptr())) {
                let denied = Errno::last() == Errno::EPERM;
                if !(denied
                    && *fallback == ChrootFallback::UserNamespace
                    && ok(libc::unshare(libc::CLONE_NEWUSER))
                    && ok(libc::chroot(dir.as_ptr())))
                {
                    fail(Step::Chroot);
                }
            }
            if !ok(libc::chdir(c"/".as_ptr())) {
                fail(Step::Chroot);
            }
        }
    }
    // SAFETY: `program` is NUL-terminated; `argv` and `envp` are NULL-terminated arrays of
    // pointers into CStrings that live as long as `p`.
    unsafe { libc::execve(p.program.as_ptr(), p.argv.as_ptr(), p.envp.as_ptr()) };
    fail(Step::Exec)
}

impl Child {
    pub fn pid(&self) -> u32 {
        self.pid.as_raw() as u32
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
        let [out, err] = self.pipes;
        Outcome {
            ending: self.status.unwrap_or(Ending::TimedOut),
            truncated: out.truncated || err.truncated,
            stdout: out.kept,
            stderr: err.kept,
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

/// Spawn every spec, from a few threads at once: a spawn returns only once the child's
/// execve is done, and an exec through QEMU's handler takes a millisecond or more, so one
/// thread would start 33 probes one after another. Results are in spec order.
pub fn spawn_all(specs: &[Spec]) -> Vec<io::Result<Child>> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get() * 2)
        .min(specs.len());
    if threads <= 1 {
        return specs.iter().map(spawn).collect();
    }
    let mut results: Vec<(usize, io::Result<Child>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    specs
                        .iter()
                        .enumerate()
                        .skip(t)
                        .step_by(threads)
                        .map(|(i, s)| (i, spawn(s)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// Wait for every child, each bounded by `timeout` from its own start, reading all their
/// output as it comes. One outcome per child, in order.
pub fn wait_all(mut children: Vec<Child>, timeout: Option<Duration>) -> Vec<Outcome> {
    let mut pause = Duration::from_micros(50);
    loop {
        let now = Instant::now();
        // The earliest moment something falls due: a deadline, or the end of a grace.
        let mut due: Option<Instant> = None;
        let mut busy = false;
        for c in &mut children {
            let mut soon = |t: Instant| due = Some(due.map_or(t, |d| d.min(t)));
            if c.ended_at.is_none() {
                if c.try_reap() {
                    c.ended_at = Some(now);
                } else if timeout.is_some_and(|t| now >= c.started + t) {
                    c.kill();
                    c.ended_at = Some(now);
                } else {
                    busy = true;
                    if let Some(t) = timeout {
                        soon(c.started + t);
                    }
                }
            }
            if let Some(at) = c.ended_at {
                if c.pipes.iter().any(|d| d.file.is_some()) {
                    if now >= at + DRAIN_GRACE {
                        // A daemon it left behind holds the pipe open: what came is kept.
                        c.pipes.iter_mut().for_each(|d| d.file = None);
                    } else {
                        busy = true;
                        soon(at + DRAIN_GRACE);
                    }
                }
            }
        }
        if !busy {
            break;
        }
        // Sleep until a pipe has data, a child ends (its pidfd turns readable) or something
        // falls due. A child without a pidfd is polled, backing off to half a millisecond.
        let mut unwatched = false;
        let mut owners: Vec<(usize, Option<usize>)> = Vec::new();
        let ready: Vec<bool> = {
            let mut fds: Vec<PollFd<'_>> = Vec::new();
            for (i, c) in children.iter().enumerate() {
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
            if let (Some(k), true) = (pipe, ready) {
                children[i].pipes[k].read_some();
            }
        }
    }
    children.into_iter().map(Child::outcome).collect()
}

/// Run one program to its end: [`spawn`] then [`Child::wait`].
pub fn run(spec: &Spec, timeout: Option<Duration>) -> io::Result<Outcome> {
    Ok(spawn(spec)?.wait(timeout))
}

/// What [`search_path`] found at one candidate path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Candidate {
    /// Nothing there, or not a regular file.
    Absent,
    /// A regular file the caller may not execute.
    NotExecutable,
    /// A regular file the caller may execute.
    Executable,
}

/// Why a command was not found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{command}: command not found (looked in PATH {path})")]
pub struct NotFound {
    pub command: String,
    pub path: String,
}

/// The one PATH rule (execvp's): the entries of `path` are tried in order, an empty entry
/// meaning the current directory; the first regular file named `command` that may be
/// executed wins; failing that, the first regular file of that name (exec of it then fails
/// with EACCES, as a shell reports); failing that, not found. `look` says what is at a
/// candidate path, so the same rule serves the live system, a root directory looked into by
/// hand, and tests. A `command` holding a `/` is not looked up: callers take it as a path.
pub fn search_path(
    command: &OsStr,
    path: &OsStr,
    look: impl Fn(&Path) -> Candidate,
) -> Result<PathBuf, NotFound> {
    let mut first = None;
    for dir in path.as_bytes().split(|&b| b == b':') {
        let dir = if dir.is_empty() {
            Path::new(".")
        } else {
            Path::new(OsStr::from_bytes(dir))
        };
        let candidate = dir.join(command);
        match look(&candidate) {
            Candidate::Executable => return Ok(candidate),
            Candidate::NotExecutable => {
                first.get_or_insert(candidate);
            }
            Candidate::Absent => {}
        }
    }
    first.ok_or_else(|| NotFound {
        command: command.to_string_lossy().into_owned(),
        path: path.to_string_lossy().into_owned(),
    })
}

/// [`search_path`]'s `look` for the live system (inside a chroot, after it): the kernel is
/// asked whether we may execute, with the effective ids, as exec checks.
pub fn look_live(path: &Path) -> Candidate {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {
            if may_execute(path) {
                Candidate::Executable
            } else {
                Candidate::NotExecutable
            }
        }
        _ => Candidate::Absent,
    }
}

/// Whether the caller may execute `path`, asked of the kernel (so ACLs and capabilities
/// count), with the effective ids, as exec uses.
pub fn may_execute(path: &Path) -> bool {
    nix::unistd::faccessat(
        nix::fcntl::AT_FDCWD,
        path,
        nix::unistd::AccessFlags::X_OK,
        nix::fcntl::AtFlags::AT_EACCESS,
    )
    .is_ok()
}

/// A signal's name (`SIGSEGV`), or `signal N` for a number without one.
pub fn signal_name(sig: i32) -> String {
    match Signal::try_from(sig) {
        Ok(s) => s.as_str().to_string(),
        Err(_) => format!("signal {sig}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Spec {
        Spec::new("/bin/sh").argv(["sh", "-c", script])
    }

    #[test]
    fn exit_codes_and_signals_are_told_apart() {
        let out = run(&sh("exit 7"), None).expect("spawn");
        assert_eq!(out.ending, Ending::Exited(7));
        let out = run(&sh("kill -SEGV $$"), None).expect("spawn");
        assert_eq!(out.ending, Ending::Signaled(libc::SIGSEGV));
        assert_eq!(signal_name(libc::SIGSEGV), "SIGSEGV");
        assert_eq!(out.ending.shell_status(), Some(128 + 11));
    }

    /// The kernel's own answer, not execvp's: a file without `#!` is ENOEXEC, not a shell
    /// script, and the step is exec.
    #[test]
    fn exec_failures_come_back_with_their_step_and_errno() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = dir.path().join("text");
        std::fs::write(&text, "echo not run\n").expect("write");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&text, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let out = run(&Spec::new(&text), None).expect("spawn");
        assert_eq!(out.ending.exec_errno(), Some(Errno::ENOEXEC));
        assert!(out.stdout.is_empty());
        let out = run(&Spec::new(dir.path().join("missing")), None).expect("spawn");
        assert_eq!(out.ending.exec_errno(), Some(Errno::ENOENT));
        let out = run(
            &Spec::new("/x").chroot(dir.path().join("nowhere"), ChrootFallback::None),
            None,
        )
        .expect("spawn");
        assert!(
            matches!(
                out.ending,
                Ending::Failed {
                    step: Step::Chroot,
                    ..
                }
            ),
            "{:?}",
            out.ending
        );
    }

    /// Output is read while the child runs: 1 MiB through a 64 KiB pipe does not stall it,
    /// and what passes the limit is counted as truncated.
    #[test]
    fn output_is_drained_while_the_child_runs() {
        let spec =
            sh("head -c 1048576 /dev/zero; echo done >&2").output(Output::Capture { limit: 4096 });
        let out = run(&spec, Some(Duration::from_secs(20))).expect("spawn");
        assert_eq!(out.ending, Ending::Exited(0));
        assert_eq!(out.stdout.len(), 4096);
        assert!(out.truncated);
        assert_eq!(out.stderr, b"done\n");
    }

    /// A timeout kills the whole process group: the child's own children too.
    #[test]
    fn a_timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mark = dir.path().join("grandchild");
        let script = format!("(sleep 1; touch {}) & sleep 30", mark.display());
        let spec = sh(&script).new_process_group();
        let started = Instant::now();
        let out = run(&spec, Some(Duration::from_millis(200))).expect("spawn");
        assert_eq!(out.ending, Ending::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(1500));
        assert!(!mark.exists(), "the grandchild outlived the timeout");
    }

    #[test]
    fn path_search_follows_execvp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let path = OsString::from(format!("{}:{}", a.display(), b.display()));
        let look = |p: &Path| {
            if p == a.join("tool") || p == a.join("only") {
                Candidate::NotExecutable
            } else if p == b.join("tool") {
                Candidate::Executable
            } else {
                Candidate::Absent
            }
        };
        assert_eq!(
            search_path(OsStr::new("tool"), &path, look),
            Ok(b.join("tool"))
        );
        assert_eq!(
            search_path(OsStr::new("only"), &path, look),
            Ok(a.join("only"))
        );
        assert!(search_path(OsStr::new("nope"), &path, look).is_err());
        let empty_entry = OsString::from(format!(":{}", b.display()));
        let here = |p: &Path| {
            if p == Path::new("./x") {
                Candidate::Executable
            } else {
                Candidate::Absent
            }
        };
        assert_eq!(
            search_path(OsStr::new("x"), &empty_entry, here),
            Ok(PathBuf::from("./x"))
        );
    }
}
