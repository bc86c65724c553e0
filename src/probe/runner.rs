//! Running programs through the kernel, all at once: each is written into a fresh directory,
//! optionally made the root of its own chroot (which only an `F` handler can serve, since the
//! interpreter's path does not exist there), executed with a plain execve, and timed out.

use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;

/// One program to run.
#[derive(Debug, Clone)]
pub struct Job {
    /// File name inside the run directory (also how results are matched up).
    pub file: String,
    pub image: Vec<u8>,
    /// argv[0] to pass; a handler with `P` hands it on, one without replaces it by the path.
    pub argv0: String,
    pub args: Vec<String>,
    pub place: Place,
}

/// How one run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Exited(i32),
    Signaled(i32),
    /// execve itself failed: ENOEXEC (no handler), ENOENT (interpreter or loader not found), …
    ExecFailed(Errno),
    TimedOut,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub ending: Ending,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub elapsed: Duration,
}

/// Where programs run: a directory of our own, removed when dropped.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// A new directory under the system temp dir, 0755 so a child in another user namespace
    /// (where our uid is unmapped) can still reach the files through the "other" bits.
    pub fn new(prefix: &str) -> std::io::Result<RunDir> {
        use std::os::unix::fs::DirBuilderExt;
        let base = std::env::temp_dir();
        for n in 0..100u32 {
            let path = base.join(format!("{prefix}-{}-{n}", std::process::id()));
            // Made 0755 at once: created 0777 and chmodded after, a umask of 0 would leave a
            // moment in which anyone could plant a symlink where a probe is then written.
            match std::fs::DirBuilder::new().mode(0o755).create(&path) {
                Ok(()) => {
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
                    return Ok(RunDir { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::other(format!(
            "no free name for a directory {prefix}-* in {}",
            base.display()
        )))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write a new executable file into the directory: never through a symlink, never over
    /// a file already there.
    pub fn write(&self, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let p = self.path.join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o755)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(&p)?;
        f.write_all(bytes)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o755))?;
        Ok(p)
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Where a program runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// From the run directory, in this process's namespaces.
    Here,
    /// With the run directory as the root (as root; otherwise inside a new user namespace,
    /// which still execs through the same binfmt_misc instance).
    Chroot,
    /// Against a private binfmt_misc (see `namespace`) holding only this register string, if
    /// any: with none, only what the kernel runs by itself runs there.
    PrivateInstance(Option<String>),
}

/// Run every job at once and wait for all, each bounded by `timeout`.
pub fn run_all(jobs: &[Job], timeout: Duration) -> Result<Vec<Outcome>, String> {
    Ok(start(jobs)?.wait(timeout))
}

/// A program as started: when, and the child, or how its start ended.
type Started = (Instant, Option<Child>, Option<Ending>);

/// Programs started by [`start`], running while the caller does other work.
#[derive(Debug)]
pub struct Batch {
    running: Vec<Started>,
    // Removed only after every program has finished with it.
    _dir: RunDir,
}

/// Start every job now; [`Batch::wait`] collects them.
pub fn start(jobs: &[Job]) -> Result<Batch, String> {
    let dir = RunDir::new("binfmt-setup-test").map_err(|e| format!("temporary directory: {e}"))?;
    for j in jobs {
        dir.write(&j.file, &j.image)
            .map_err(|e| format!("cannot write {}: {e}", dir.path().join(&j.file).display()))?;
    }
    let root = CString::new(dir.path().as_os_str().as_bytes())
        .map_err(|_| format!("{} contains a NUL byte", dir.path().display()))?;

    let mut commands: Vec<Command> = Vec::with_capacity(jobs.len());
    let register = CString::new(format!("{}/register", crate::binfmt::DEFAULT_DIR))
        .map_err(|_| "register path".to_string())?;
    for j in jobs {
        let chroot = j.place == Place::Chroot;
        let (private, rule) = match &j.place {
            Place::PrivateInstance(rule) => (true, rule.clone()),
            _ => (false, None),
        };
        let register = register.clone();
        let program = if chroot {
            PathBuf::from("/").join(&j.file)
        } else {
            dir.path().join(&j.file)
        };
        let exec = Exec::new(&program, &j.argv0, &j.args)?;
        let mut cmd = Command::new(&program);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let new_root = chroot.then(|| root.clone());
        // SAFETY: runs in the child between fork and exec. It makes only raw syscalls
        // (chroot, chdir, unshare, execv) on C strings and a pointer array built before the
        // fork: no allocation, no locks.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(root) = &new_root {
                    enter_root(root)?;
                }
                if private {
                    crate::namespace::enter_private_instance()?;
                }
                if let Some(rule) = &rule {
                    register_rule(&register, rule.as_bytes())?;
                }
                Err(exec.run())
            });
        }
        commands.push(cmd);
    }
    Ok(Batch {
        running: spawn_all(commands),
        _dir: dir,
    })
}

/// Spawn every command, from a few threads at once: spawn() returns only when the child's
/// execve has finished, and an exec through QEMU's handler takes a millisecond or more, so
/// one thread would start 33 probes one after another.
fn spawn_all(commands: Vec<Command>) -> Vec<Started> {
    let spawn = |mut cmd: Command| {
        let started = Instant::now();
        match cmd.spawn() {
            Ok(child) => (started, Some(child), None),
            Err(e) => (
                started,
                None,
                Some(Ending::ExecFailed(Errno::from_raw(
                    e.raw_os_error().unwrap_or(0),
                ))),
            ),
        }
    };
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get() * 2)
        .min(commands.len());
    if threads <= 1 {
        return commands.into_iter().map(spawn).collect();
    }
    // Deal the commands round-robin, then put the results back in job order.
    let mut hands: Vec<Vec<(usize, Command)>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, cmd) in commands.into_iter().enumerate() {
        hands[i % threads].push((i, cmd));
    }
    let mut results: Vec<(usize, Started)> = std::thread::scope(|scope| {
        let handles: Vec<_> = hands
            .into_iter()
            .map(|hand| {
                scope.spawn(move || {
                    hand.into_iter()
                        .map(|(i, cmd)| (i, spawn(cmd)))
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

impl Batch {
    /// Wait for every program, each bounded by `timeout` from its start; one outcome per job,
    /// in order.
    pub fn wait(mut self, timeout: Duration) -> Vec<Outcome> {
        let running = &mut self.running;
        let mut outcomes: Vec<Option<Outcome>> = vec![None; running.len()];
        for (i, (started, child, ending)) in running.iter_mut().enumerate() {
            if child.is_none() {
                outcomes[i] = Some(Outcome {
                    ending: ending.clone().unwrap_or(Ending::TimedOut),
                    stdout: Vec::new(),
                    stderr: Vec::new(),
                    elapsed: started.elapsed(),
                });
            }
        }
        let mut pause = Duration::from_micros(50);
        while outcomes.iter().any(Option::is_none) {
            for (i, (started, child, _)) in running.iter_mut().enumerate() {
                let Some(c) = child.as_mut() else { continue };
                if outcomes[i].is_some() {
                    continue;
                }
                let ending = match c.try_wait() {
                    Ok(Some(status)) => match (status.code(), status.signal()) {
                        (Some(code), _) => Ending::Exited(code),
                        (None, Some(sig)) => Ending::Signaled(sig),
                        (None, None) => Ending::Exited(-1),
                    },
                    Ok(None) if started.elapsed() > timeout => {
                        let _ = c.kill();
                        let _ = c.wait();
                        Ending::TimedOut
                    }
                    Ok(None) => continue,
                    Err(e) => Ending::ExecFailed(Errno::from_raw(e.raw_os_error().unwrap_or(0))),
                };
                outcomes[i] = Some(Outcome {
                    ending,
                    stdout: drain(c.stdout.take()),
                    stderr: drain(c.stderr.take()),
                    elapsed: started.elapsed(),
                });
            }
            std::thread::sleep(pause);
            // At most half a millisecond late: a probe's whole run is a few milliseconds,
            // and a poll of every child costs microseconds.
            pause = (pause * 2).min(Duration::from_micros(500));
        }
        outcomes.into_iter().flatten().collect()
    }
}

/// A prepared execv(2). std's Command execs with execvp semantics, which answer ENOEXEC by
/// running the file through /bin/sh; a test of binfmt_misc needs the kernel's own answer.
struct Exec {
    program: CString,
    _args: Vec<CString>,
    argv: Vec<*const nix::libc::c_char>,
}

// SAFETY: the raw pointers point into `_args`, owned by the same value and never mutated.
unsafe impl Send for Exec {}
unsafe impl Sync for Exec {}

impl Exec {
    fn new(program: &Path, argv0: &str, args: &[String]) -> Result<Exec, String> {
        let c =
            |s: &[u8]| CString::new(s).map_err(|_| "an argument contains a NUL byte".to_string());
        let program = c(program.as_os_str().as_bytes())?;
        let mut owned = vec![c(argv0.as_bytes())?];
        for a in args {
            owned.push(c(a.as_bytes())?);
        }
        let mut argv: Vec<*const nix::libc::c_char> = owned.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        Ok(Exec {
            program,
            _args: owned,
            argv,
        })
    }

    /// Replace the process; returns only the error.
    fn run(&self) -> std::io::Error {
        // SAFETY: `program` is NUL-terminated and `argv` is a NULL-terminated array of
        // pointers to NUL-terminated strings that outlive the call.
        unsafe { nix::libc::execv(self.program.as_ptr(), self.argv.as_ptr()) };
        std::io::Error::last_os_error()
    }
}

/// Up to 64 KiB of what a finished child wrote (it has exited, so this cannot block long).
fn drain(pipe: Option<impl Read>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(p) = pipe {
        let _ = p.take(64 * 1024).read_to_end(&mut out);
    }
    out
}

/// One write(2) of a rule to `register` (the kernel takes one rule per write).
fn register_rule(register: &std::ffi::CStr, rule: &[u8]) -> std::io::Result<()> {
    use nix::fcntl::{OFlag, open};
    use nix::sys::stat::Mode;
    let fd = open(register, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(std::io::Error::from)?;
    let written = nix::unistd::write(&fd, rule).map_err(std::io::Error::from)?;
    if written != rule.len() {
        return Err(std::io::Error::from(std::io::ErrorKind::WriteZero));
    }
    Ok(())
}

/// Make `root` the root directory. Without the privilege, a new user namespace gives it: exec
/// still finds handlers in the nearest binfmt_misc instance above, the one being tested.
fn enter_root(root: &std::ffi::CStr) -> std::io::Result<()> {
    use nix::sched::{CloneFlags, unshare};
    if nix::unistd::chroot(root).is_err() {
        unshare(CloneFlags::CLONE_NEWUSER).map_err(std::io::Error::from)?;
        nix::unistd::chroot(root).map_err(std::io::Error::from)?;
    }
    nix::unistd::chdir(c"/").map_err(std::io::Error::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Probes are written as root: a name planted in the run directory (a symlink to
    /// /etc/passwd) must make the write fail, not redirect it.
    #[test]
    fn probes_are_never_written_through_a_planted_symlink() {
        let dir = RunDir::new("binfmt-setup-unit").expect("run dir");
        let mode = std::fs::metadata(dir.path())
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        let victim = tempfile::NamedTempFile::new().expect("victim");
        std::os::unix::fs::symlink(victim.path(), dir.path().join("probe")).expect("plant");
        assert!(dir.write("probe", b"\x7fELF").is_err());
        assert_eq!(std::fs::read(victim.path()).expect("read").len(), 0);
        let p = dir
            .write("other", b"\x7fELF")
            .expect("a new name is written");
        assert_eq!(std::fs::read(p).expect("read"), b"\x7fELF");
    }
}
