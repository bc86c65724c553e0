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
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

mod child;

use super::path;
use super::signals::SignalWatch;
use child::{Maps, Op, Prepared, Private};

pub use child::RootOp;

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
    /// Putting a root file system in place (mounts in the child's mount namespace).
    Root,
    /// chroot(2) and chdir("/").
    Chroot,
    /// Finding the command in PATH (inside any root): ENOENT, nothing of that name.
    Lookup,
    /// execve(2) itself.
    Exec,
}

impl Step {
    const ALL: [Step; 8] = [
        Step::Prepare,
        Step::Join,
        Step::PrivateInstance,
        Step::Register,
        Step::Root,
        Step::Chroot,
        Step::Lookup,
        Step::Exec,
    ];

    fn from_u8(b: u8) -> Step {
        Step::ALL
            .get(usize::from(b))
            .copied()
            .unwrap_or(Step::Prepare)
    }

    pub(super) fn as_u8(self) -> u8 {
        Step::ALL.iter().position(|s| *s == self).unwrap_or(0) as u8
    }

    /// In words, for messages: "chroot", "exec", …
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Prepare => "preparing the child",
            Step::Join => "joining the namespaces",
            Step::PrivateInstance => "making a private binfmt_misc",
            Step::Register => "registering in the private binfmt_misc",
            Step::Root => "putting the root file system in place",
            Step::Chroot => "chroot",
            Step::Lookup => "looking the command up in PATH",
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
    private: Option<(Vec<String>, IdMaps)>,
    root: Vec<RootOp>,
    chroot: Option<(PathBuf, ChrootFallback)>,
    search: Option<OsString>,
}

/// Who writes the id maps of a private instance's new user namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdMaps {
    /// The child maps only our own uid and gid to root (anyone may; setgroups is denied).
    Own,
    /// The parent does, between [`spawn_paused`] and [`Paused::resume`]: a full range as
    /// root, subordinate ids through newuidmap. setgroups stays allowed.
    ByParent,
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
            root: Vec::new(),
            chroot: None,
            search: None,
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
        self.private = Some((rules, IdMaps::Own));
        self
    }

    /// As [`private_binfmt`](Self::private_binfmt), with the id maps written by the parent
    /// (spawn it with [`spawn_paused`]).
    pub fn private_binfmt_mapped_by_parent(mut self, rules: Vec<String>) -> Spec {
        self.private = Some((rules, IdMaps::ByParent));
        self
    }

    /// Put a root file system in place before the chroot (mounts made in the child's own
    /// mount namespace, so a private instance is needed first).
    pub fn prepare_root(mut self, ops: Vec<RootOp>) -> Spec {
        self.root = ops;
        self
    }

    /// The program is a command looked up in `path` (a PATH value) by the one rule of
    /// `sys::path`, inside any root, after the chroot. A command holding a `/` is a path.
    pub fn search(mut self, path: impl Into<OsString>) -> Spec {
        self.search = Some(path.into());
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

fn c_string(s: &OsStr, what: &str) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} {:?} holds a NUL byte", s.to_string_lossy()),
        )
    })
}

fn c_path(p: &Path, what: &str) -> io::Result<CString> {
    c_string(p.as_os_str(), what)
}

fn pointers(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
}

/// The root operations as the child performs them.
fn lower(ops: &[RootOp]) -> io::Result<Vec<Op>> {
    ops.iter()
        .map(|op| {
            Ok(match op {
                RootOp::Bind {
                    src,
                    dst,
                    recursive,
                    optional,
                } => Op::Bind {
                    src: c_path(src, "bind source")?,
                    dst: c_path(dst, "bind target")?,
                    flags: libc::MS_BIND | if *recursive { libc::MS_REC } else { 0 },
                    optional: *optional,
                },
                RootOp::Tmpfs { dst, options } => Op::Tmpfs {
                    dst: c_path(dst, "tmpfs mount point")?,
                    options: c_string(OsStr::new(options), "tmpfs options")?,
                },
                RootOp::Touch(p) => Op::Touch(c_path(p, "file")?),
                RootOp::Symlink { target, path } => Op::Symlink {
                    target: c_path(target, "symlink target")?,
                    path: c_path(path, "symlink")?,
                },
                RootOp::Mkdir { path, mode } => Op::Mkdir {
                    path: c_path(path, "directory")?,
                    mode: *mode as libc::mode_t,
                },
            })
        })
        .collect()
}

/// A child that has entered its new user namespace and waits for the parent to write its id
/// maps (see [`IdMaps::ByParent`]); [`resume`](Paused::resume) lets it go on.
#[derive(Debug)]
pub struct Paused {
    pid: u32,
    child: Option<Child>,
    gate: Option<OwnedFd>,
    report: Option<OwnedFd>,
}

impl Paused {
    /// The child's pid, for /proc/PID/uid_map or newuidmap.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether it waits for its maps; `false` when it failed before (resume says how).
    pub fn waiting(&self) -> bool {
        self.gate.is_some()
    }

    /// Let it go on to its program; the [`Child`] says how that went.
    pub fn resume(mut self) -> Child {
        let mut child = self
            .child
            .take()
            .unwrap_or_else(|| unreachable!("resumed once"));
        if let Some(mut gate) = self.gate.take().map(File::from) {
            let _ = gate.write_all(b"g");
        }
        if let Some(report) = self.report.take() {
            child.started_by(read_report(report));
        }
        child
    }
}

impl Drop for Paused {
    /// Given up without a resume: the gate closes unwritten, and the child, which reads end
    /// of file there, ends at once.
    fn drop(&mut self) {
        if let (Some(child), Some(_)) = (self.child.take(), self.report.take()) {
            drop(self.gate.take());
            let _ = waitpid(child.pid, None);
        }
    }
}

/// Start the program. `Err` only when it could not even be tried (a NUL byte in an
/// argument, no pipe, no fork); a failure of any step in the child, exec included, is a
/// [`Child`] whose outcome says so. A spec whose id maps the parent writes is started with
/// [`spawn_paused`] instead.
pub fn spawn(spec: &Spec) -> io::Result<Child> {
    if matches!(spec.private, Some((_, IdMaps::ByParent))) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a child whose id maps the parent writes is started with spawn_paused",
        ));
    }
    let (mut child, report, _) = fork(spec, None)?;
    child.started_by(read_report(report));
    Ok(child)
}

/// Start a child with a private binfmt_misc whose id maps the parent writes: returns once the
/// child has entered its new user namespace (or failed before that).
pub fn spawn_paused(spec: &Spec) -> io::Result<Paused> {
    let (sync_r, sync_w) = pipe()?;
    let (gate_r, gate_w) = pipe()?;
    let (mut child, report, ends) = fork(spec, Some((sync_w, gate_r, sync_r, gate_w)))?;
    let [sync_r, gate_w] = ends.unwrap_or_else(|| unreachable!("paused forks keep their ends"));
    // One byte: it unshared and waits. End of file: it failed first, and says why.
    let mut byte = [0u8; 1];
    let pid = child.pid();
    if File::from(sync_r).read(&mut byte).ok() != Some(1) {
        child.started_by(read_report(report));
        return Ok(Paused {
            pid,
            child: Some(child),
            gate: None,
            report: None,
        });
    }
    Ok(Paused {
        pid,
        child: Some(child),
        gate: Some(gate_w),
        report: Some(report),
    })
}

/// Prepare everything, fork, and run the child's steps there. Returns the parent's view of
/// the child, the read end of its report pipe, and, for a paused child, the parent's ends
/// of its sync and gate pipes.
#[allow(clippy::type_complexity)]
fn fork(
    spec: &Spec,
    paused: Option<(OwnedFd, OwnedFd, OwnedFd, OwnedFd)>,
) -> io::Result<(Child, OwnedFd, Option<[OwnedFd; 2]>)> {
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
    let programs: Vec<CString> = match &spec.search {
        Some(path) => path::candidates(spec.program.as_os_str(), path)
            .iter()
            .map(|c| c_path(c, "program"))
            .collect::<io::Result<_>>()?,
        None => vec![c_path(&spec.program, "program")?],
    };
    let stdin = match spec.stdin {
        Stdin::Null => Some(OwnedFd::from(File::open("/dev/null")?)),
        Stdin::Inherit => None,
    };
    let (mut readers, mut writers) = (Vec::new(), Vec::new());
    if let Output::Capture { .. } = spec.output {
        for _ in 0..2 {
            let (r, w) = pipe()?;
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
    // SAFETY: getuid(2) and getgid(2) cannot fail and touch no memory.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let (maps, parent_ends) = match paused {
        None => (Maps::Own { uid, gid }, None),
        Some((sync, gate, sync_r, gate_w)) => {
            // The child closes its copies of the parent's ends; the parent keeps these.
            let copies = [sync_r.try_clone()?, gate_w.try_clone()?];
            (
                Maps::ByParent {
                    sync,
                    gate,
                    parent_ends: copies,
                },
                Some([sync_r, gate_w]),
            )
        }
    };
    let (report_r, report_w) = pipe()?;
    let mut writers = writers.into_iter();
    let prepared = Prepared {
        programs,
        search: spec.search.is_some(),
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
        private: spec.private.as_ref().map(|(rules, _)| Private {
            maps,
            rules: rules.iter().map(|r| r.as_bytes().to_vec()).collect(),
        }),
        root: lower(&spec.root)?,
        chroot: match &spec.chroot {
            Some((dir, fallback)) => Some((c_path(dir, "chroot directory")?, *fallback)),
            None => None,
        },
        report: report_w,
    };
    let started = Instant::now();
    // SAFETY: the child branch runs only `child::run`, which makes async-signal-safe system
    // calls on `prepared` (built above, not touched by anyone else) and never returns; so a
    // fork from a multi-threaded process is sound here.
    let pid = match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => {
            // SAFETY: see above; we are the freshly forked child.
            unsafe { child::run(&prepared) }
        }
        nix::unistd::ForkResult::Parent { child } => child,
    };
    // Our copies of the child's ends go, so its death is seen on every pipe.
    drop(prepared);
    let limit = match spec.output {
        Output::Capture { limit } => limit,
        Output::Inherit => 0,
    };
    let mut readers = readers.into_iter().map(|fd| Drain::new(fd, limit));
    let child = Child {
        pid,
        pidfd: None,
        new_group: spec.new_group,
        started,
        ended_at: None,
        failed: None,
        pipes: [
            readers.next().unwrap_or_default(),
            readers.next().unwrap_or_default(),
        ],
        status: None,
    };
    Ok((child, report_r, parent_ends))
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

impl Child {
    pub fn pid(&self) -> u32 {
        self.pid.as_raw() as u32
    }

    /// Record how its start went: exec done (`None`), or a step failed.
    fn started_by(&mut self, failed: Option<(Step, Errno)>) {
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

/// A signal's name (`SIGSEGV`), or `signal N` for a number without one.
pub fn signal_name(sig: i32) -> String {
    match Signal::try_from(sig) {
        Ok(s) => s.as_str().to_string(),
        Err(_) => format!("signal {sig}"),
    }
}

#[cfg(test)]
mod tests;
