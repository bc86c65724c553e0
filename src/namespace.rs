//! Running a program against a private, empty binfmt_misc instance (Linux ≥ 6.7): a new user
//! and mount namespace with binfmt_misc mounted fresh, so no handler of the host's can take
//! part. No privilege is needed and nothing outside the child changes.

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};

use crate::binfmt::DEFAULT_DIR;

/// Put the calling process into a new user and mount namespace with its own empty
/// binfmt_misc at the usual path, as root of that namespace (mapped to the caller's own uid
/// and gid, so it may write the instance's `register`). Allocation-free, so it may run between
/// fork and exec.
pub fn enter_private_instance() -> std::io::Result<()> {
    // Read before unsharing: afterwards, until mapped, they read as the overflow ids.
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS).map_err(std::io::Error::from)?;
    let mut buf = [0u8; 32];
    write_proc(c"/proc/self/uid_map", id_map(&mut buf, uid))?;
    // An unprivileged process may map its gid only after giving up setgroups(2).
    write_proc(c"/proc/self/setgroups", b"deny")?;
    write_proc(c"/proc/self/gid_map", id_map(&mut buf, gid))?;
    // Keep our mounts from propagating anywhere (they could not reach the host's namespace
    // anyway, being owned by a less privileged user namespace).
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(std::io::Error::from)?;
    mount(
        Some("binfmt_misc"),
        DEFAULT_DIR,
        Some("binfmt_misc"),
        MsFlags::empty(),
        None::<&str>,
    )
    .map_err(std::io::Error::from)?;
    Ok(())
}

/// A private binfmt_misc instance could not be made: the kernel is older than 6.7, or user
/// namespaces are turned off or restricted.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot create a private binfmt_misc instance: {0}{hint} (needs Linux 6.7 or later with unprivileged user namespaces)",
    hint = requirement_hint()
)]
pub struct Unavailable(#[source] std::io::Error);

/// [`enter_private_instance`] for a process that stays in the namespace (`run`), with an
/// error that says what the kernel requires. The process must be single-threaded: the kernel
/// refuses CLONE_NEWUSER otherwise (EINVAL), so success also proves it is.
pub fn enter_rootless() -> Result<(), Unavailable> {
    enter_private_instance().map_err(Unavailable)
}

/// This kernel's version, or the setting that turns user namespaces off, when one of them
/// explains a refusal.
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

/// `0 <id> 1`: the namespace's root is the caller's own id, and nobody else is mapped.
fn id_map(buf: &mut [u8; 32], id: u32) -> &[u8] {
    let mut digits = [0u8; 10];
    let mut n = id;
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf[..2].copy_from_slice(b"0 ");
    for i in 0..len {
        buf[2 + i] = digits[len - 1 - i];
    }
    buf[2 + len..2 + len + 3].copy_from_slice(b" 1\n");
    &buf[..2 + len + 3]
}

/// One write to a /proc file, without allocating.
fn write_proc(path: &std::ffi::CStr, bytes: &[u8]) -> std::io::Result<()> {
    use nix::fcntl::{OFlag, open};
    use nix::sys::stat::Mode;
    let fd = open(path, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(std::io::Error::from)?;
    nix::unistd::write(&fd, bytes).map_err(std::io::Error::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn id_maps_are_written_without_allocating() {
        let mut buf = [0u8; 32];
        assert_eq!(super::id_map(&mut buf, 0), b"0 0 1\n");
        assert_eq!(super::id_map(&mut buf, 1000), b"0 1000 1\n");
        assert_eq!(super::id_map(&mut buf, u32::MAX), b"0 4294967295 1\n");
    }
}
