//! What `run` does once it is root of its own user and mount namespace: put a root
//! filesystem in place (/proc, a minimal /dev, chroot), find the command in that root's PATH,
//! start it, pass signals on to it, and return its status.
//!
//! Every mount here is made in the private mount namespace: it vanishes with the process and
//! never changes the root filesystem's directory as others see it.

use std::ffi::{CString, OsStr, OsString};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use nix::sys::signal::{SigHandler, SigmaskHow, Signal, kill, pthread_sigmask, signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};

use crate::signals::SignalWatch;

/// Device nodes bound into the root's /dev, each when the host has it.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// PATH when the caller has none: the usual one of a Debian root.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Signals passed on to the command. SIGCHLD is watched too, to learn when it ends.
const FORWARDED: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGWINCH,
];

/// A root filesystem made ready, with notes on what could not be provided.
#[derive(Debug, Default)]
pub struct Prepared {
    pub notes: Vec<String>,
}

/// Mount /proc and a minimal /dev inside `root` (each where the root has the directory or it
/// can be made), then chroot into it. `root` must be an absolute path to a directory.
pub fn enter_root(root: &Path) -> io::Result<Prepared> {
    let mut prepared = Prepared::default();
    // /proc is bound from ours rather than mounted fresh: a new procfs needs a PID namespace
    // of our own, and in one the command would be PID 1, which ignores SIGTERM and SIGINT
    // unless it handles them. The bind carries the private binfmt_misc mounted below it.
    match dir_in(root, "proc") {
        Ok(proc) => mount(
            Some("/proc"),
            &proc,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| io_context(e, &format!("cannot bind /proc to {}", proc.display())))?,
        Err(e) => prepared
            .notes
            .push(format!("no /proc in the root filesystem: {e}")),
    }
    match dir_in(root, "dev") {
        Ok(dev) => minimal_dev(&dev, &mut prepared)?,
        Err(e) => prepared
            .notes
            .push(format!("no /dev in the root filesystem: {e}")),
    }
    nix::unistd::chroot(root)
        .map_err(|e| io_context(e, &format!("cannot chroot to {}", root.display())))?;
    std::env::set_current_dir("/")?;
    Ok(prepared)
}

/// `root/name` as a directory, made when missing (which fails on a root the caller cannot
/// write: the directory is then left out).
fn dir_in(root: &Path, name: &str) -> io::Result<PathBuf> {
    let path = root.join(name);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.is_dir() => Ok(path),
        Ok(_) => Err(io::Error::other(format!(
            "{} is not a directory",
            path.display()
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir(&path).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot create {}: {e}", path.display()))
            })?;
            Ok(path)
        }
        Err(e) => Err(e),
    }
}

/// A small tmpfs on `dev` holding bind mounts of the host's harmless devices, the usual
/// /proc/self/fd links, and an empty /dev/shm. A tmpfs, so nothing is written to the root,
/// which may belong to someone else; binds, because a user namespace may not make device
/// nodes but may bind existing ones.
fn minimal_dev(dev: &Path, prepared: &mut Prepared) -> io::Result<()> {
    mount(
        Some("tmpfs"),
        dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=755,size=1m"),
    )
    .map_err(|e| io_context(e, &format!("cannot mount a tmpfs on {}", dev.display())))?;
    for name in DEVICES {
        let host = Path::new("/dev").join(name);
        if !host.exists() {
            prepared
                .notes
                .push(format!("{} is missing on this host", host.display()));
            continue;
        }
        let target = dev.join(name);
        std::fs::File::create(&target)?;
        if let Err(e) = mount(
            Some(&host),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        ) {
            prepared
                .notes
                .push(format!("cannot bind {}: {e}", host.display()));
            let _ = std::fs::remove_file(&target);
        }
    }
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(to, dev.join(link))?;
    }
    std::fs::create_dir(dev.join("shm"))?;
    std::fs::set_permissions(dev.join("shm"), std::fs::Permissions::from_mode(0o1777))?;
    Ok(())
}

fn io_context(e: nix::errno::Errno, what: &str) -> io::Error {
    io::Error::new(io::Error::from(e).kind(), format!("{what}: {e}"))
}

/// Why a command could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("{0}: command not found (looked in PATH {1})")]
    NotFound(String, String),
    #[error("{0}: no such file")]
    NoSuchFile(String),
    #[error("{0}: not an executable file")]
    NotExecutable(String),
}

/// The file `command` names: itself when it holds a `/`, else the first executable regular
/// file of that name in `path` (a `:` list; an empty entry is the current directory), as a
/// shell looks it up. Run after chroot, so it looks inside the root.
pub fn find_command(command: &OsStr, path: &OsStr) -> Result<PathBuf, LookupError> {
    let shown = command.to_string_lossy().into_owned();
    let is_program = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if command.as_bytes().contains(&b'/') {
        let p = PathBuf::from(command);
        return match std::fs::metadata(&p) {
            Err(_) => Err(LookupError::NoSuchFile(shown)),
            Ok(_) if is_program(&p) => Ok(p),
            Ok(_) => Err(LookupError::NotExecutable(shown)),
        };
    }
    for dir in path.as_bytes().split(|&b| b == b':') {
        let dir = if dir.is_empty() {
            Path::new(".")
        } else {
            Path::new(OsStr::from_bytes(dir))
        };
        let candidate = dir.join(command);
        if is_program(&candidate) {
            return Ok(candidate);
        }
    }
    Err(LookupError::NotFound(
        shown,
        path.to_string_lossy().into_owned(),
    ))
}

/// A started command, its signals being watched.
#[derive(Debug)]
pub struct Running {
    pid: Pid,
    watch: SignalWatch,
}

/// Start `program` with `argv` (argv[0] first) and the current environment, with a plain
/// execve(2): no shell fallback on ENOEXEC, so a foreign program without a handler fails
/// as the kernel says rather than being read as a script. Exec errors come back as `Err`.
///
/// The calling process must be single-threaded (see [`crate::namespace::enter_rootless`]).
pub fn spawn(program: &Path, argv: &[OsString]) -> io::Result<Running> {
    let to_c = |s: &OsStr| {
        CString::new(s.as_bytes()).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "an argument holds a NUL byte")
        })
    };
    let path = to_c(program.as_os_str())?;
    let args = argv
        .iter()
        .map(|a| to_c(a))
        .collect::<io::Result<Vec<_>>>()?;
    let env = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            to_c(&kv)
        })
        .collect::<io::Result<Vec<_>>>()?;
    let mut watched = FORWARDED.to_vec();
    watched.push(Signal::SIGCHLD);
    // Blocked before the fork: a signal or the child's exit arriving at once is kept.
    let watch = SignalWatch::new(&watched)?;
    // Exec failure is reported through a close-on-exec pipe: EOF means exec succeeded.
    let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // SAFETY: fork is sound here because the process is single-threaded (the caller entered a
    // user namespace, which the kernel allows only then), so the child is a complete copy
    // with no lock held by a vanished thread. The child only restores signal state, calls
    // execve, and on failure writes the errno and _exits.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Child => {
            let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(watch.previous_mask()), None);
            // Rust ignores SIGPIPE in its own processes; an ignored signal stays ignored across
            // exec, and a command must get the default (`yes | head` ends by SIGPIPE).
            // SAFETY: installing SIG_DFL runs no handler code.
            let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
            let errno = match nix::unistd::execve(&path, &args, &env) {
                Err(e) => e as i32,
                Ok(never) => match never {},
            };
            let _ = nix::unistd::write(&write_end, &errno.to_ne_bytes());
            // SAFETY: _exit ends the child at once, running no destructor or atexit handler
            // of the parent's copied state.
            unsafe { nix::libc::_exit(127) }
        }
        ForkResult::Parent { child } => {
            drop(write_end);
            let mut buf = Vec::new();
            std::fs::File::from(read_end).read_to_end(&mut buf)?;
            if let Ok(bytes) = <[u8; 4]>::try_from(buf.as_slice()) {
                let _ = waitpid(child, None);
                return Err(io::Error::from_raw_os_error(i32::from_ne_bytes(bytes)));
            }
            Ok(Running { pid: child, watch })
        }
    }
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.pid.as_raw() as u32
    }

    /// Pass signals on until the command ends; its exit code, or 128 + N for a death by
    /// signal N, as a shell reports it.
    pub fn wait(self) -> io::Result<u8> {
        loop {
            if let Some(code) = self.reap()? {
                return Ok(code);
            }
            let Some(got) = self.watch.next(None)? else {
                continue;
            };
            if got.signal == Signal::SIGCHLD {
                continue;
            }
            // A terminal's ^C reaches the whole foreground process group, the command
            // included; passing it on would deliver it twice.
            if got.from_kernel {
                continue;
            }
            tracing::debug!("passing {} on to {}", got.signal, self.pid);
            match kill(self.pid, got.signal) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The command's status once it has ended.
    fn reap(&self) -> io::Result<Option<u8>> {
        loop {
            match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(Some(code as u8)),
                Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(Some(128 + sig as u8)),
                Ok(WaitStatus::StillAlive) => return Ok(None),
                Ok(_) => return Ok(None),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_found_along_path_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        for d in [&a, &b] {
            std::fs::create_dir(d).expect("mkdir");
        }
        let exe = |p: &Path, mode| {
            std::fs::write(p, "#!/bin/sh\n").expect("write");
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        };
        exe(&a.join("tool"), 0o644); // not executable: passed over
        exe(&b.join("tool"), 0o755);
        let path = OsString::from(format!("{}:{}", a.display(), b.display()));
        assert_eq!(
            find_command(OsStr::new("tool"), &path).expect("found"),
            b.join("tool")
        );
        assert!(matches!(
            find_command(OsStr::new("nope"), &path),
            Err(LookupError::NotFound(..))
        ));
        assert!(matches!(
            find_command(a.join("tool").as_os_str(), &path),
            Err(LookupError::NotExecutable(_))
        ));
    }
}
