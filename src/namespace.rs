//! Running a program against a private, empty binfmt_misc instance (Linux ≥ 6.7): a new user
//! and mount namespace with binfmt_misc mounted fresh, so no handler of the host's can take
//! part. No privilege is needed and nothing outside the child changes.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};

use crate::binfmt::DEFAULT_DIR;

/// Why a program could not be run in a private instance.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error(
        "cannot create a private binfmt_misc instance: {0} (needs Linux 6.7 or later with unprivileged user namespaces)"
    )]
    Unavailable(io::Error),
    #[error("{0}")]
    Exec(io::Error),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// Put the calling process into a new user and mount namespace with its own empty
/// binfmt_misc at the usual path. Allocation-free, so it may run between fork and exec.
pub fn enter_private_instance() -> io::Result<()> {
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS).map_err(io::Error::from)?;
    // Keep our mounts from propagating anywhere (they could not reach the host's namespace
    // anyway, being owned by a less privileged user namespace).
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(io::Error::from)?;
    mount(
        Some("binfmt_misc"),
        DEFAULT_DIR,
        Some("binfmt_misc"),
        MsFlags::empty(),
        None::<&str>,
    )
    .map_err(io::Error::from)?;
    Ok(())
}

/// Run `program args…` in a private instance and return its exit status.
pub fn run_private(
    program: &std::path::Path,
    args: &[&str],
    timeout: Duration,
) -> Result<ExitStatus, NamespaceError> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: the closure runs in the forked child before exec. It only makes raw syscalls
    // (unshare, mount) with borrowed, NUL-terminated-on-the-stack arguments: no allocation,
    // no locks, so it is async-signal-safe even if the parent had other threads.
    unsafe {
        cmd.pre_exec(enter_private_instance);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        // A failure before exec comes back as a bare errno: the ones unshare and mount give
        // mean "no private instance here"; exec itself gives others (ENOEXEC, EACCES, …).
        Err(e) => {
            return Err(match e.raw_os_error() {
                Some(libc_errno) if is_setup_errno(libc_errno) => NamespaceError::Unavailable(e),
                _ => NamespaceError::Exec(e),
            });
        }
    };
    let start = Instant::now();
    // A probe is done in about a millisecond: poll often at first, then back off.
    let mut pause = Duration::from_micros(50);
    loop {
        if let Some(status) = child.try_wait().map_err(NamespaceError::Exec)? {
            return Ok(status);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(NamespaceError::Timeout(timeout));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(5));
    }
}

/// Errors that unshare(2) and mount(2) give when the kernel or policy refuses a private
/// instance; exec(2) of a foreign binary gives ENOEXEC, which is not among them.
fn is_setup_errno(errno: i32) -> bool {
    use nix::errno::Errno;
    [
        Errno::EPERM,
        Errno::EINVAL,
        Errno::ENOSYS,
        Errno::EUSERS,
        Errno::ENOSPC,
        Errno::ENODEV,
    ]
    .iter()
    .any(|e| *e as i32 == errno)
}
