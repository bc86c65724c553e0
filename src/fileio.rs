//! Opening and reading files named by input we do not trust (a binary's loader path, a file
//! inside an image root, an `--arch-table`, an interpreter): only regular files are opened
//! for reading, and every read is bounded.
//!
//! A FIFO would hang a plain `open`, and opening a device can act on it (a watchdog starts
//! counting, a tape rewinds), so the path is first opened with `O_PATH`, which touches
//! nothing, and only a regular file is then reopened through that very descriptor.

use std::fs::{File, Metadata};
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use nix::fcntl::{OFlag, ResolveFlag};
use nix::sys::stat::Mode;

/// How the path is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// Symlinks anywhere, as exec and the shell follow them (a path the user typed).
    Yes,
    /// Not a symlink as the last component.
    NotLast,
    /// No symlink anywhere: the path was already resolved by hand (inside an image root), so a
    /// symlink found now was swapped in since, and could point out of the root.
    Nowhere,
}

/// Why a file was not opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Exists, but is not a regular file: the words say what it is (`a directory`, …).
    #[error("is {0}, not a regular file")]
    NotRegular(&'static str),
}

impl OpenError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, OpenError::Io(e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

/// Open `path` for reading if, and only if, it is a regular file. Returns the file and its
/// metadata (from the open descriptor, so they describe the same file).
pub fn open_regular(path: &Path, follow: Follow) -> Result<(File, Metadata), OpenError> {
    let located = locate(path, follow)?;
    // fstat of the O_PATH descriptor: what the name pointed at when we looked.
    let st = nix::sys::stat::fstat(&located).map_err(std::io::Error::from)?;
    let kind = st.st_mode & nix::libc::S_IFMT;
    if kind != nix::libc::S_IFREG {
        return Err(OpenError::NotRegular(match kind {
            nix::libc::S_IFDIR => "a directory",
            nix::libc::S_IFIFO => "a FIFO",
            nix::libc::S_IFSOCK => "a socket",
            nix::libc::S_IFCHR | nix::libc::S_IFBLK => "a device",
            nix::libc::S_IFLNK => "a symbolic link",
            _ => "not a regular file",
        }));
    }
    let flags = nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY | nix::libc::O_CLOEXEC;
    // Reopening the descriptor's magic link gives the same inode, whatever the name now says.
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(format!("/proc/self/fd/{}", located.as_raw_fd()))
    {
        Ok(f) => f,
        // No /proc (a bare chroot): open the name again and make sure it is the same file.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let nofollow = if follow == Follow::Yes {
                0
            } else {
                nix::libc::O_NOFOLLOW
            };
            let f = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(flags | nofollow)
                .open(path)?;
            let m = f.metadata()?;
            if (m.dev(), m.ino()) != (st.st_dev, st.st_ino) {
                return Err(OpenError::Io(std::io::Error::other(
                    "the file was replaced while it was being opened",
                )));
            }
            f
        }
        Err(e) => return Err(e.into()),
    };
    let meta = file.metadata()?;
    Ok((file, meta))
}

/// An `O_PATH` descriptor for `path`, resolved as `follow` says.
fn locate(path: &Path, follow: Follow) -> Result<OwnedFd, OpenError> {
    let base = OFlag::O_PATH | OFlag::O_CLOEXEC;
    let open = |flags: OFlag| {
        nix::fcntl::open(path, flags, Mode::empty()).map_err(|e| OpenError::Io(e.into()))
    };
    match follow {
        Follow::Yes => open(base),
        Follow::NotLast => open(base | OFlag::O_NOFOLLOW),
        Follow::Nowhere => {
            let how = nix::fcntl::OpenHow::new()
                .flags(base)
                .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS);
            match nix::fcntl::openat2(nix::fcntl::AT_FDCWD, path, how) {
                Ok(fd) => Ok(fd),
                // openat2 needs Linux 5.6 and may be filtered by seccomp: the last component,
                // at least, must not be a link.
                Err(nix::errno::Errno::ENOSYS | nix::errno::Errno::EPERM) => {
                    open(base | OFlag::O_NOFOLLOW)
                }
                Err(e) => Err(OpenError::Io(e.into())),
            }
        }
    }
}

/// The first `max` bytes of an open file.
pub fn read_prefix(file: &File, max: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(max.min(64 * 1024));
    file.take(max as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// A whole small regular file as text. Larger than `max` bytes is an error, not a truncation:
/// half a config is worse than none.
pub fn read_text(path: &Path, follow: Follow, max: usize) -> Result<String, OpenError> {
    let (file, _) = open_regular(path, follow)?;
    let bytes = read_prefix(&file, max + 1)?;
    if bytes.len() > max {
        return Err(OpenError::Io(std::io::Error::other(format!(
            "larger than {max} bytes"
        ))));
    }
    String::from_utf8(bytes)
        .map_err(|_| OpenError::Io(std::io::Error::from(std::io::ErrorKind::InvalidData)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_or_a_device_is_refused_without_being_opened() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o644)).expect("mkfifo");
        // A plain open(O_RDONLY) of a FIFO with no writer blocks forever.
        assert!(matches!(
            open_regular(&fifo, Follow::Yes),
            Err(OpenError::NotRegular("a FIFO"))
        ));
        assert!(matches!(
            open_regular(Path::new("/dev/zero"), Follow::Yes),
            Err(OpenError::NotRegular("a device"))
        ));
        assert!(matches!(
            read_text(Path::new("/dev/zero"), Follow::Yes, 10),
            Err(OpenError::NotRegular(_))
        ));
    }

    /// Opening a FIFO for reading, even non-blocking, is seen by the other side: a writer
    /// blocked in open(2) wakes up. Looking at one through O_PATH is not.
    #[test]
    fn a_fifo_is_not_opened_at_all() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o644)).expect("mkfifo");
        let (tx, rx) = std::sync::mpsc::channel();
        let writer_path = fifo.clone();
        let writer = std::thread::spawn(move || {
            // Blocks until some reader opens the FIFO.
            let f = std::fs::OpenOptions::new().write(true).open(&writer_path);
            let _ = tx.send(());
            f.is_ok()
        });
        // Give the writer time to block in open(2).
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(open_regular(&fifo, Follow::Yes).is_err());
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(300))
                .is_err(),
            "the FIFO was opened: its writer woke up"
        );
        // Let the writer go.
        let _reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(&fifo)
            .expect("open reader");
        assert!(writer.join().expect("writer"));
    }

    #[test]
    fn symlinks_are_followed_only_where_asked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("target");
        std::fs::write(&target, b"hello").expect("write");
        std::fs::create_dir(dir.path().join("d")).expect("mkdir");
        std::fs::write(dir.path().join("d/f"), b"x").expect("write");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let dlink = dir.path().join("dlink");
        std::os::unix::fs::symlink(dir.path().join("d"), &dlink).expect("symlink");
        assert!(open_regular(&link, Follow::Yes).is_ok());
        assert!(open_regular(&link, Follow::NotLast).is_err());
        assert!(open_regular(&link, Follow::Nowhere).is_err());
        assert!(open_regular(&dlink.join("f"), Follow::NotLast).is_ok());
        assert!(open_regular(&dlink.join("f"), Follow::Nowhere).is_err());
        assert!(open_regular(&dir.path().join("d/f"), Follow::Nowhere).is_ok());
    }

    #[test]
    fn text_reads_are_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("big");
        std::fs::write(&f, vec![b'a'; 100]).expect("write");
        assert_eq!(read_text(&f, Follow::Yes, 100).expect("fits").len(), 100);
        assert!(read_text(&f, Follow::Yes, 99).is_err());
    }
}
