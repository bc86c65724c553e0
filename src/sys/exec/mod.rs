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
//! a close-on-exec pipe: end-of-file on that pipe means the exec happened. Where its steps
//! allow, the child shares our memory until it execs instead of copying it (`shared.rs`).
//!
//! A child started while another thread of ours holds a file open for writing keeps a copy of
//! that descriptor until its own exec, and exec of the file meanwhile fails with ETXTBSY. So
//! files this process will execute are written with [`write_program`], and no child is
//! started while one is being written.
//!
//! Output is drained while the child runs, so a program that writes more than a pipe holds
//! cannot stall; a timeout kills the child's whole process group when it has its own.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use nix::errno::Errno;
use nix::libc;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::waitpid;

mod child;
mod pool;
mod shared;
mod spec;
mod wait;

use super::path;
use child::{Maps, Op, Prepared, Private};
use wait::Drain;

pub use child::RootOp;
pub use pool::{Pool, wait_all};
pub use spec::{ChrootFallback, Env, IdMaps, Output, Spec, Stdin, Step};
pub use wait::{Child, Ending, FileId, Outcome, run};

/// Held shared while a file to be executed is open for writing, and exclusive while a child
/// is started (until it has exec'd, or for a copying fork until fork returns).
static WRITING_PROGRAMS: RwLock<()> = RwLock::new(());

fn writing_programs() -> RwLockReadGuard<'static, ()> {
    WRITING_PROGRAMS.read().unwrap_or_else(|e| e.into_inner())
}

fn starting_child() -> RwLockWriteGuard<'static, ()> {
    WRITING_PROGRAMS.write().unwrap_or_else(|e| e.into_inner())
}

/// Create `path` (never through a symlink, never over a file already there) as an
/// executable (0755, whatever the umask) holding `bytes`, such that no child of ours keeps
/// it open for writing: exec of it cannot then fail with ETXTBSY because of us.
pub fn write_program(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let _writing = writing_programs();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    f.write_all(bytes)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o755))
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
    let starting = starting_child();
    let pid = if shared::sound(&prepared) {
        shared::spawn(&prepared)?
    } else {
        // SAFETY: the child branch runs only `child::run`, which makes async-signal-safe
        // system calls on `prepared` (built above, not touched by anyone else) and never
        // returns; so a fork from a multi-threaded process is sound here.
        match unsafe { nix::unistd::fork() }? {
            nix::unistd::ForkResult::Child => {
                // SAFETY: see above; we are the freshly forked child.
                unsafe { child::run(&prepared) }
            }
            nix::unistd::ForkResult::Parent { child } => child,
        }
    };
    drop(starting);
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
        may_have_ended: true,
        new_group: spec.new_group,
        started,
        ended_at: None,
        failed: None,
        pipes: [
            readers.next().unwrap_or_default(),
            readers.next().unwrap_or_default(),
        ],
        status: None,
        exe: None,
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

/// A signal's name (`SIGSEGV`), or `signal N` for a number without one.
pub fn signal_name(sig: i32) -> String {
    match Signal::try_from(sig) {
        Ok(s) => s.as_str().to_string(),
        Err(_) => format!("signal {sig}"),
    }
}

#[cfg(test)]
mod tests;
