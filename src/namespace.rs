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

/// Make the calling process root of a new user namespace (the caller's uid and gid mapped to
/// 0, so any user can do it) with a new mount namespace and its own empty binfmt_misc at the
/// usual path. The process must be single-threaded: the kernel refuses CLONE_NEWUSER
/// otherwise (EINVAL), so success also proves it is.
pub fn enter_rootless() -> Result<(), NamespaceError> {
    let uid = nix::unistd::geteuid();
    let gid = nix::unistd::getegid();
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)
        .map_err(|e| unavailable("cannot create a user namespace", e.into()))?;
    // An unprivileged process may map only its own ids, one line each, and must give up
    // setgroups(2) before it may write gid_map (else it could drop a group that denies it
    // access). As root on the host the same single mapping is enough.
    let write = |file: &str, text: String| {
        std::fs::write(format!("/proc/self/{file}"), text)
            .map_err(|e| unavailable(&format!("cannot write /proc/self/{file}"), e))
    };
    if std::path::Path::new("/proc/self/setgroups").exists() {
        write("setgroups", "deny".into())?;
    }
    write("uid_map", format!("0 {uid} 1\n"))?;
    write("gid_map", format!("0 {gid} 1\n"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| unavailable("cannot make mounts private", e.into()))?;
    mount(
        Some("binfmt_misc"),
        DEFAULT_DIR,
        Some("binfmt_misc"),
        MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| {
        unavailable(
            &format!("cannot mount binfmt_misc at {DEFAULT_DIR}"),
            e.into(),
        )
    })?;
    Ok(())
}

/// The error for a refused step, naming this kernel's version or the setting that turns user
/// namespaces off when one of them is the cause.
fn unavailable(what: &str, e: io::Error) -> NamespaceError {
    NamespaceError::Unavailable(io::Error::new(
        e.kind(),
        format!("{what}: {e}{}", requirement_hint()),
    ))
}

fn requirement_hint() -> String {
    if let Some((release, version)) = kernel_release() {
        if version < (6, 7) {
            return format!("; this kernel is {release}");
        }
    }
    let settings = [
        (
            "/proc/sys/user/max_user_namespaces",
            "0",
            "user.max_user_namespaces is 0",
        ),
        (
            "/proc/sys/kernel/unprivileged_userns_clone",
            "0",
            "kernel.unprivileged_userns_clone is 0",
        ),
        (
            "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
            "1",
            "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns is 1)",
        ),
    ];
    settings
        .iter()
        .find(|(file, off, _)| std::fs::read_to_string(file).is_ok_and(|s| s.trim() == *off))
        .map(|(_, _, say)| format!("; {say}"))
        .unwrap_or_default()
}

/// The kernel release string and its (major, minor).
fn kernel_release() -> Option<(String, (u32, u32))> {
    let release = nix::sys::utsname::uname()
        .ok()?
        .release()
        .to_string_lossy()
        .into_owned();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    let version = (parts.next()?, parts.next()?);
    Some((release, version))
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
