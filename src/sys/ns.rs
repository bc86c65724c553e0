//! The system calls that give a process a private binfmt_misc instance (Linux ≥ 6.7): a new
//! user and mount namespace, the caller's own ids mapped to root there, and binfmt_misc
//! mounted fresh at its usual path. See docs/KERNEL.md, "User namespaces".
//!
//! Everything here is allocation-free and calls libc directly, because the process layer
//! (`sys::exec`) runs it in a child between fork and exec, where another thread of the parent
//! may have held the allocator's lock at the moment of the fork. `run` calls the same code in
//! its own (single-threaded) process.

use std::ffi::CStr;
use std::io;

use nix::libc;

/// The usual mount point of binfmt_misc, as a C string for the child's system calls.
pub const BINFMT_DIR: &CStr = c"/proc/sys/fs/binfmt_misc";
/// Its `register` file.
pub const REGISTER: &CStr = c"/proc/sys/fs/binfmt_misc/register";

/// `0 <id> 1\n`: the namespace's root is the caller's own id, nobody else is mapped. Fits
/// 32 bytes for any u32.
pub fn id_map(buf: &mut [u8; 32], id: u32) -> &[u8] {
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

/// The last OS error, read without allocating.
fn last_error() -> io::Error {
    io::Error::last_os_error()
}

/// Fail with errno when a libc call returned -1.
fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 { Err(last_error()) } else { Ok(()) }
}

/// One write(2) of `bytes` to the file at `path` (a /proc control file, or binfmt_misc's
/// `register`, which takes exactly one rule per write).
pub fn write_once(path: &CStr, bytes: &[u8]) -> io::Result<()> {
    // SAFETY: `path` is NUL-terminated; open(2) reads only it.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    check(fd)?;
    // SAFETY: `bytes` is valid for `bytes.len()` bytes; `fd` was just opened and is ours.
    let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    let err = last_error();
    // SAFETY: closing the descriptor opened above, once.
    unsafe { libc::close(fd) };
    if n < 0 {
        return Err(err);
    }
    if n as usize != bytes.len() {
        return Err(io::Error::from(io::ErrorKind::WriteZero));
    }
    Ok(())
}

/// Enter a new user and mount namespace (as their owner, with every capability there). The
/// process must be single-threaded: the kernel refuses CLONE_NEWUSER otherwise.
pub fn unshare_user_and_mounts() -> io::Result<()> {
    // SAFETY: unshare(2) takes flags only.
    check(unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) })
}

/// Map `uid` and `gid` (the caller's own ids, read before unsharing: afterwards, until mapped,
/// they read as the overflow ids) to root in the namespace just entered, and nobody else.
/// setgroups is denied first, as the kernel requires of an unprivileged gid_map.
pub fn map_own_ids(uid: u32, gid: u32) -> io::Result<()> {
    let mut buf = [0u8; 32];
    write_once(c"/proc/self/uid_map", id_map(&mut buf, uid))?;
    write_once(c"/proc/self/setgroups", b"deny")?;
    write_once(c"/proc/self/gid_map", id_map(&mut buf, gid))
}

/// Keep the new mount namespace's mounts from propagating anywhere, and mount a fresh,
/// empty binfmt_misc at the usual path: the namespace's private instance.
pub fn mount_private_binfmt() -> io::Result<()> {
    // SAFETY: mount(2) with NUL-terminated literals and null pointers where none is needed.
    check(unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    })?;
    // SAFETY: as above.
    check(unsafe {
        libc::mount(
            c"binfmt_misc".as_ptr(),
            BINFMT_DIR.as_ptr(),
            c"binfmt_misc".as_ptr(),
            0,
            std::ptr::null(),
        )
    })
}

/// All three: a new user and mount namespace, the caller's own ids mapped to root, and a
/// private binfmt_misc.
pub fn enter_private_instance() -> io::Result<()> {
    // SAFETY: getuid(2) and getgid(2) cannot fail and touch no memory.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    unshare_user_and_mounts()?;
    map_own_ids(uid, gid)?;
    mount_private_binfmt()
}

/// A private binfmt_misc instance could not be made: the kernel is older than 6.7, or user
/// namespaces are turned off or restricted.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot create a private binfmt_misc instance: {0}{hint} (needs Linux 6.7 or later with unprivileged user namespaces)",
    hint = requirement_hint()
)]
pub struct Unavailable(#[source] pub io::Error);

impl crate::error::Classify for Unavailable {
    fn class(&self) -> crate::error::Class {
        crate::error::Class::Environment
    }
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
