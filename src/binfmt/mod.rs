//! The binfmt_misc registry: reading entries and applying the kernel's matching rule.
//!
//! Every function takes the directory as a parameter (`--binfmt-dir`), so tests point it at a
//! private instance and never at the host's.

pub mod apply;
pub mod entry;
pub mod plan;
pub mod registration;
pub mod steps;

use std::path::{Path, PathBuf};

pub use entry::{Entry, Rule};
pub use registration::Registration;

use std::io::Write;

/// The usual mount point.
pub const DEFAULT_DIR: &str = "/proc/sys/fs/binfmt_misc";
/// statfs f_type of a binfmt_misc mount.
pub const BINFMT_MAGIC: i64 = 0x4249_4e4d;

#[derive(Debug, thiserror::Error)]
pub enum BinfmtError {
    #[error("cannot read binfmt_misc directory {path}: {source}")]
    ReadDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read binfmt_misc entry {path}: {source}")]
    ReadEntry {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("binfmt_misc entry {path} is not in the kernel's format: {reason}")]
    Parse { path: PathBuf, reason: String },
}

impl crate::error::Classify for BinfmtError {
    /// binfmt_misc that cannot be read is the machine's doing, whatever the cause.
    fn class(&self) -> crate::error::Class {
        crate::error::Class::Environment
    }
}

/// binfmt_misc is not there to be changed, and cannot be put there.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error(
        "binfmt_misc is not mounted at {dir} and mounting it failed: {source} (run as root or in a privileged container, or mount -t binfmt_misc binfmt_misc {dir})",
        dir = .dir.display()
    )]
    Failed {
        dir: PathBuf,
        source: std::io::Error,
    },
    /// A directory of another file system, with files in it: mounting over them would hide
    /// them, and writing there would write into someone's files.
    #[error(
        "{} is not binfmt_misc (it is a {fstype} directory with files in it); binfmt-setup writes only to a binfmt_misc file system and mounts one only on an empty directory (--binfmt-dir names the wrong place?)",
        .dir.display()
    )]
    NotBinfmt { dir: PathBuf, fstype: String },
    #[error(
        "binfmt_misc is not mounted at {}, and there is no such directory to mount it on",
        .0.display()
    )]
    NoDirectory(PathBuf),
}

impl crate::error::Classify for MountError {
    fn class(&self) -> crate::error::Class {
        match self {
            MountError::NotBinfmt { .. } => crate::error::Class::BadInput,
            _ => crate::error::Class::Environment,
        }
    }
}

/// What is at a binfmt_misc directory, as statfs(2) sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// binfmt_misc is mounted there.
    Binfmt,
    /// Nothing is mounted there yet: an empty directory of another file system (as
    /// /proc/sys/fs/binfmt_misc is before the mount).
    Empty,
    /// A directory of another file system that holds files (its type's name).
    Other(String),
    /// No such directory.
    Missing,
}

/// Some common file system magics, to name what `--binfmt-dir` points at.
fn fs_name(magic: i64) -> String {
    match magic {
        0x9fa0 => "proc".into(),
        0x0102_1994 => "tmpfs".into(),
        0xef53 => "ext4".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683e => "btrfs".into(),
        0x794c_7630 => "overlay".into(),
        0x6265_6572 => "sysfs".into(),
        other => format!("file system of type {other:#x}"),
    }
}

/// A binfmt_misc instance at a path.
#[derive(Debug, Clone)]
pub struct Registry {
    dir: PathBuf,
}

/// The state of an instance as seen through its directory.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// A `status` file exists (something is mounted there, or a test built one).
    pub mounted: bool,
    /// `status` reads `enabled`; a disabled instance makes every matched exec fail.
    pub enabled: bool,
    /// Entries newest first: the order the kernel tries them.
    pub entries: Vec<Entry>,
    /// Entries whose file is not in the kernel's format (an interpreter path with a newline
    /// in it, registered by someone else): listed, never trusted, never touched.
    pub unreadable: Vec<Unreadable>,
}

/// An entry that is there but could not be read as the kernel's format.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Unreadable {
    pub name: String,
    pub reason: String,
}

/// Open a control file (`register`, an entry) for writing. binfmt_misc holds no symlinks; a
/// directory given with `--binfmt-dir` that does must not turn our `-1` into a write to
/// whatever file the link names.
fn control_for_writing(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC | nix::libc::O_NONBLOCK)
        .open(path)
}

/// Entry files are a few hundred bytes (the whole register string is at most 1920).
const MAX_ENTRY_FILE: usize = 16 * 1024;

/// Read a binfmt_misc control or entry file: a regular file, at most MAX_ENTRY_FILE bytes
/// (`--binfmt-dir` may name any directory, holding a FIFO or a device).
pub(crate) fn read_control(path: &Path) -> std::io::Result<String> {
    use crate::fileio::{Follow, OpenError, read_text};
    read_text(path, Follow::NotLast, MAX_ENTRY_FILE).map_err(|e| match e {
        OpenError::Io(e) => e,
        OpenError::NotRegular(what) => std::io::Error::other(format!("is {what}")),
    })
}

impl Registry {
    pub fn new(dir: impl Into<PathBuf>) -> Registry {
        Registry { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What is at the directory: binfmt_misc (by its statfs magic), an empty directory it
    /// may be mounted on, another file system's directory with files, or nothing.
    pub fn place(&self) -> Place {
        match nix::sys::statfs::statfs(&self.dir) {
            // f_type is i64 on x86_64 glibc but narrower elsewhere, hence the cast.
            #[allow(clippy::unnecessary_cast)]
            Ok(s) if s.filesystem_type().0 as i64 == BINFMT_MAGIC => Place::Binfmt,
            #[allow(clippy::unnecessary_cast)]
            Ok(s) => match std::fs::read_dir(&self.dir).map(|mut d| d.next().is_none()) {
                Ok(true) => Place::Empty,
                _ => Place::Other(fs_name(s.filesystem_type().0 as i64)),
            },
            Err(_) => Place::Missing,
        }
    }

    /// binfmt_misc is mounted at the directory: the only place written to. Anything else is
    /// refused before a byte is written (an error that names what is there).
    pub fn require_mounted(&self) -> Result<(), MountError> {
        match self.place() {
            Place::Binfmt => Ok(()),
            Place::Other(fstype) => Err(MountError::NotBinfmt {
                dir: self.dir.clone(),
                fstype,
            }),
            Place::Missing => Err(MountError::NoDirectory(self.dir.clone())),
            Place::Empty => Err(MountError::Failed {
                dir: self.dir.clone(),
                source: std::io::Error::other("nothing is mounted there"),
            }),
        }
    }

    /// Mount binfmt_misc at the directory when nothing is mounted there, and only on an empty
    /// directory. Returns whether it mounted. Mounts made here are left in place: others may
    /// rely on them.
    pub fn ensure_mounted(&self) -> Result<bool, MountError> {
        match self.place() {
            Place::Binfmt => return Ok(false),
            Place::Empty => {}
            Place::Other(fstype) => {
                return Err(MountError::NotBinfmt {
                    dir: self.dir.clone(),
                    fstype,
                });
            }
            Place::Missing => return Err(MountError::NoDirectory(self.dir.clone())),
        }
        nix::mount::mount(
            Some("binfmt_misc"),
            &self.dir,
            Some("binfmt_misc"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .map_err(|e| MountError::Failed {
            dir: self.dir.clone(),
            source: e.into(),
        })?;
        Ok(true)
    }

    /// Open a control file for writing, but only on binfmt_misc: a directory of another
    /// file system that merely holds a file named `register` is not written to.
    fn control(&self, name: &str) -> std::io::Result<std::fs::File> {
        if self.place() != Place::Binfmt {
            return Err(std::io::Error::other(format!(
                "{} is not binfmt_misc; nothing is written there",
                self.dir.display()
            )));
        }
        control_for_writing(&self.dir.join(name))
    }

    /// Register one rule with a single write(2), as the kernel requires.
    pub fn register(&self, reg: &Registration) -> std::io::Result<()> {
        let text = reg.register_string();
        let mut f = self.control("register")?;
        let n = f.write(text.as_bytes())?;
        if n != text.len() {
            return Err(std::io::Error::other(format!(
                "short write: {n} of {} bytes",
                text.len()
            )));
        }
        Ok(())
    }

    /// Enable (`1`) or disable (`0`) an entry, or binfmt_misc as a whole (`status`).
    pub fn enable(&self, name: &str, on: bool) -> std::io::Result<()> {
        let mut f = self.control(name)?;
        f.write_all(if on { b"1" } else { b"0" })
    }

    /// Remove an entry by writing -1 to its file. `Ok(false)` when it was already gone.
    pub fn remove(&self, name: &str) -> std::io::Result<bool> {
        match self.control(name) {
            Ok(mut f) => match f.write(b"-1") {
                Ok(_) => Ok(true),
                Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ENOENT as i32) => Ok(false),
                Err(e) => Err(e),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Read status and every entry. A directory that does not exist, or is not binfmt_misc,
    /// reads as "not mounted, no entries": that is what a host without binfmt_misc looks
    /// like, and files of another file system are never taken for entries.
    pub fn snapshot(&self) -> Result<Snapshot, BinfmtError> {
        if self.place() != Place::Binfmt {
            return Ok(Snapshot::empty());
        }
        let status_path = self.dir.join("status");
        let status = match read_control(&status_path) {
            Ok(s) => Some(s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(BinfmtError::ReadEntry {
                    path: status_path,
                    source,
                });
            }
        };
        let Some(status) = status else {
            return Ok(Snapshot::empty());
        };
        let mut entries = Vec::new();
        let mut unreadable = Vec::new();
        // The kernel lists binfmt_misc entries newest first (measured on 6.18: registering
        // zz, aa, mm, bb lists bb, mm, aa, zz), and tries them in that same order.
        let dir = std::fs::read_dir(&self.dir).map_err(|source| BinfmtError::ReadDir {
            path: self.dir.clone(),
            source,
        })?;
        for item in dir {
            let item = item.map_err(|source| BinfmtError::ReadDir {
                path: self.dir.clone(),
                source,
            })?;
            let name = item.file_name().to_string_lossy().into_owned();
            if name == "register" || name == "status" {
                continue;
            }
            let path = item.path();
            let text = match read_control(&path) {
                Ok(t) => t,
                // Removed between readdir and read by another process: not an entry any more.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    return Err(BinfmtError::ReadEntry { path, source: e });
                }
                Err(e) => {
                    unreadable.push(Unreadable {
                        name,
                        reason: e.to_string(),
                    });
                    continue;
                }
            };
            // One hostile entry must not stop every command that reads binfmt_misc.
            match Entry::parse(&name, &text) {
                Ok(entry) => entries.push(entry),
                Err(reason) => unreadable.push(Unreadable {
                    name,
                    reason: reason.0,
                }),
            }
        }
        Ok(Snapshot {
            mounted: true,
            enabled: status.trim() == "enabled",
            entries,
            unreadable,
        })
    }
}

impl Snapshot {
    /// No binfmt_misc: nothing mounted, no entries.
    pub fn empty() -> Snapshot {
        Snapshot {
            mounted: false,
            enabled: false,
            entries: Vec::new(),
            unreadable: Vec::new(),
        }
    }

    /// The entry the kernel would hand `path` (whose first bytes are `head`) to: the newest
    /// enabled entry that matches. `None` when nothing matches or the instance is disabled.
    pub fn handler_for(&self, path: &Path, head: &[u8]) -> Option<&Entry> {
        if !self.enabled {
            return None;
        }
        self.matching(path, head).into_iter().find(|e| e.enabled)
    }

    /// Every entry whose rule matches, enabled or not, newest first.
    pub fn matching(&self, path: &Path, head: &[u8]) -> Vec<&Entry> {
        let buf = crate::rule::kernel_buffer(head);
        self.entries
            .iter()
            .filter(|e| e.rule.matches(path, &buf))
            .collect()
    }

    pub fn find(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--binfmt-dir` may name any directory: one that is not binfmt_misc is neither written
    /// to (a `register` or an "entry" there, symlinks included, stays as it is) nor read.
    #[test]
    fn symlinks_in_the_binfmt_dir_are_neither_written_through_nor_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("status"), "enabled\n").expect("status");
        let victim = dir.path().join("victim");
        let entry = "enabled\ninterpreter /x\nflags: \noffset 0\nmagic 00\n";
        std::fs::write(&victim, entry).expect("victim");
        std::os::unix::fs::symlink(&victim, dir.path().join("qemu-x")).expect("symlink");
        std::os::unix::fs::symlink(&victim, dir.path().join("register")).expect("symlink");
        let registry = Registry::new(dir.path());
        assert!(registry.remove("qemu-x").is_err());
        let reg = Registration {
            name: "qemu-y".into(),
            rule: crate::rule::MagicRule {
                offset: 0,
                magic: vec![0x7f],
                mask: vec![0xff],
            },
            interpreter: "/y".into(),
            flags: String::new(),
        };
        assert!(registry.register(&reg).is_err());
        assert!(registry.enable("qemu-x", false).is_err());
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), entry);
        // Not binfmt_misc: nothing there is taken for an entry, and nothing is mounted over
        // its files.
        assert!(matches!(registry.place(), Place::Other(_)));
        let snap = registry.snapshot().expect("snapshot");
        assert!(!snap.mounted && snap.entries.is_empty() && snap.unreadable.is_empty());
        assert!(matches!(
            registry.ensure_mounted(),
            Err(MountError::NotBinfmt { .. })
        ));
        let empty = tempfile::tempdir().expect("tempdir");
        assert_eq!(Registry::new(empty.path()).place(), Place::Empty);
        assert_eq!(
            Registry::new(empty.path().join("none")).place(),
            Place::Missing
        );
    }
}
