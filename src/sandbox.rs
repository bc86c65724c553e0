//! What `run` does once it is root of its own user and mount namespace: put a root
//! filesystem in place (/proc, a minimal /dev) and chroot into it. The command itself is
//! started by the process layer (`sys::exec`).
//!
//! Every mount here is made in the private mount namespace: it vanishes with the process and
//! never changes the root filesystem's directory as others see it.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};

/// Device nodes bound into the root's /dev, each when the host has it.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

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
