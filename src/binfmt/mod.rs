//! The binfmt_misc registry: reading entries and applying the kernel's matching rule.
//!
//! Every function takes the directory as a parameter (`--binfmt-dir`), so tests point it at a
//! private instance and never at the host's.

pub mod apply;
pub mod entry;
pub mod plan;
pub mod rule;

use std::path::{Path, PathBuf};

pub use entry::{Entry, Rule};
pub use rule::Registration;

use std::io::Write;

/// The usual mount point.
pub const DEFAULT_DIR: &str = "/proc/sys/fs/binfmt_misc";
/// statfs f_type of a binfmt_misc mount.
pub const BINFMT_MAGIC: i64 = 0x4249_4e4d;
/// How many bytes of a file the kernel compares magic against (BINPRM_BUF_SIZE).
pub const BINPRM_BUF_SIZE: usize = 256;

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

/// What the kernel compares magic against: the file's first BINPRM_BUF_SIZE bytes in a
/// zero-filled buffer, so a file shorter than a magic is compared against zeros past its end.
pub fn kernel_buffer(head: &[u8]) -> [u8; BINPRM_BUF_SIZE] {
    let mut buf = [0u8; BINPRM_BUF_SIZE];
    let n = head.len().min(BINPRM_BUF_SIZE);
    buf[..n].copy_from_slice(&head[..n]);
    buf
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
}

impl Registry {
    pub fn new(dir: impl Into<PathBuf>) -> Registry {
        Registry { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether a binfmt_misc filesystem is mounted at the directory (statfs magic).
    pub fn is_mounted(&self) -> bool {
        // f_type is i64 on x86_64 glibc but narrower elsewhere, hence the cast.
        #[allow(clippy::unnecessary_cast)]
        nix::sys::statfs::statfs(&self.dir)
            .map(|s| s.filesystem_type().0 as i64 == BINFMT_MAGIC)
            .unwrap_or(false)
    }

    /// Mount binfmt_misc at the directory when nothing is mounted there. Returns whether it
    /// mounted. Mounts made here are left in place: others may rely on them.
    pub fn ensure_mounted(&self) -> std::io::Result<bool> {
        if self.dir.join("register").exists() {
            return Ok(false);
        }
        nix::mount::mount(
            Some("binfmt_misc"),
            &self.dir,
            Some("binfmt_misc"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .map_err(std::io::Error::from)?;
        Ok(true)
    }

    /// Register one rule with a single write(2), as the kernel requires.
    pub fn register(&self, reg: &Registration) -> std::io::Result<()> {
        let text = reg.register_string();
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(self.dir.join("register"))?;
        let n = f.write(text.as_bytes())?;
        if n != text.len() {
            return Err(std::io::Error::other(format!(
                "short write: {n} of {} bytes",
                text.len()
            )));
        }
        Ok(())
    }

    /// Remove an entry by writing -1 to its file. `Ok(false)` when it was already gone.
    pub fn remove(&self, name: &str) -> std::io::Result<bool> {
        match std::fs::OpenOptions::new()
            .write(true)
            .open(self.dir.join(name))
        {
            Ok(mut f) => match f.write(b"-1") {
                Ok(_) => Ok(true),
                Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ENOENT as i32) => Ok(false),
                Err(e) => Err(e),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Read status and every entry. A directory that does not exist reads as "not mounted,
    /// no entries": that is what a host without binfmt_misc looks like.
    pub fn snapshot(&self) -> Result<Snapshot, BinfmtError> {
        let status_path = self.dir.join("status");
        let status = match std::fs::read_to_string(&status_path) {
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
            return Ok(Snapshot {
                mounted: false,
                enabled: false,
                entries: Vec::new(),
            });
        };
        let mut entries = Vec::new();
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
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                // Removed between readdir and read by another process: not an entry any more.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(BinfmtError::ReadEntry { path, source }),
            };
            let entry = Entry::parse(&name, &text).map_err(|reason| BinfmtError::Parse {
                path: path.clone(),
                reason,
            })?;
            entries.push(entry);
        }
        Ok(Snapshot {
            mounted: true,
            enabled: status.trim() == "enabled",
            entries,
        })
    }
}

impl Snapshot {
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
        let buf = kernel_buffer(head);
        self.entries
            .iter()
            .filter(|e| e.rule.matches(path, &buf))
            .collect()
    }

    pub fn find(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }
}
