//! The directory walk: one task per directory on rayon's pool, every open relative to the
//! parent directory's descriptor with `O_NOFOLLOW`, so a symlink is never followed (no loop,
//! no escape from the root, even if the tree changes under us). Only regular files are
//! opened, non-blocking, and only their first bytes are read.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;

use super::{Expected, HEAD, Progress, ScanError, Sniff, Tally, identify, needing};
use crate::arch::ArchTable;

struct Walk<'a> {
    table: &'a ArchTable,
    progress: &'a Progress,
    /// One tally per pool thread (indexed by rayon's thread index), merged at the end.
    tallies: Vec<Mutex<Tally>>,
}

/// Walk `root` and count every regular file below it.
pub fn walk(
    table: &ArchTable,
    root: &Path,
    filter: Option<Arc<Expected>>,
    progress: &Progress,
) -> Result<Tally, ScanError> {
    // The root itself may be a symlink the user named (`scan ./rootfs`); only what is below
    // it is never followed.
    let root_fd = nix::fcntl::open(
        root,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ScanError::new(format!("cannot scan {}: {e}", root.display())))?;
    let threads = rayon::current_num_threads() + 1;
    let walk = Walk {
        table,
        progress,
        tallies: (0..threads)
            .map(|_| Mutex::new(Tally::new(filter.clone())))
            .collect(),
    };
    rayon::scope(|s| walk.directory(s, Arc::new(root_fd), String::new()));
    let mut total = Tally::new(filter);
    for t in walk.tallies {
        total.merge(t.into_inner().unwrap_or_else(|e| e.into_inner()));
    }
    Ok(total)
}

impl<'a> Walk<'a> {
    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        let i = rayon::current_thread_index()
            .map_or(self.tallies.len() - 1, |i| i.min(self.tallies.len() - 1));
        self.tallies[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Read one directory (already open as `fd`; `rel` is its path inside the root, empty for
    /// the root), queue its subdirectories and identify its regular files.
    fn directory<'s>(&'s self, scope: &rayon::Scope<'s>, fd: Arc<OwnedFd>, rel: String) {
        let (subdirs, files) = match list(&fd) {
            Ok(x) => x,
            Err(e) => {
                self.tally()
                    .unreadable_dir(&display(&rel), format!("cannot list directory: {e}"));
                return;
            }
        };
        for name in subdirs {
            let parent = Arc::clone(&fd);
            let path = join(&rel, &name);
            scope.spawn(move |scope| {
                // Opened only now, so pending directories do not hold descriptors.
                match openat(
                    parent.as_fd(),
                    name.as_c_str(),
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(child) => {
                        drop(parent);
                        self.directory(scope, Arc::new(child), path);
                    }
                    // Replaced by a symlink or something else since it was listed: skip.
                    Err(Errno::ELOOP | Errno::ENOTDIR | Errno::ENOENT) => {}
                    Err(e) => self
                        .tally()
                        .unreadable_dir(&path, format!("cannot open directory: {e}")),
                }
            });
        }
        let mut local = Tally::new(None);
        let mut found = Vec::with_capacity(files.len());
        for name in files {
            let path = join(&rel, &name);
            match self.file(&fd, &name) {
                Ok(Some(sniff)) => {
                    self.progress.file(!matches!(sniff, Sniff::NotElf));
                    found.push((path, sniff));
                }
                Ok(None) => {}
                Err(e) => {
                    self.progress.file(false);
                    local.unreadable(&path, e, None);
                }
            }
        }
        let mut tally = self.tally();
        for (path, sniff) in found {
            tally.add(&path, sniff, None);
        }
        tally.merge(local);
    }

    /// Identify one regular file. `Ok(None)`: it is no longer a regular file.
    fn file(&self, dir: &OwnedFd, name: &CStr) -> Result<Option<Sniff>, String> {
        // O_NONBLOCK: should a FIFO have taken the file's place since the listing, opening
        // it does not wait for a writer. O_NOFOLLOW: nor does a symlink lead elsewhere.
        let fd = match openat(
            dir.as_fd(),
            name,
            OFlag::O_RDONLY
                | OFlag::O_NOFOLLOW
                | OFlag::O_NONBLOCK
                | OFlag::O_NOCTTY
                | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ELOOP | Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(format!("cannot open: {e}")),
        };
        let mut file = File::from(fd);
        let mut head = [0u8; HEAD];
        let mut got = 0;
        while got < HEAD {
            match file.read(&mut head[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("cannot read: {e}")),
            }
        }
        let head = &head[..got];
        if !head.starts_with(b"\x7fELF") {
            return Ok(Some(Sniff::NotElf));
        }
        let meta = file.metadata().map_err(|e| format!("cannot stat: {e}"))?;
        if !meta.is_file() {
            return Ok(None);
        }
        // A program of a family with levels is read for its needs, and its mode kept, for
        // the preflight (`needing`).
        let sniff = needing::with_needs(
            identify(self.table, head, &file, meta.len()),
            &file,
            meta.len(),
        );
        Ok(Some(needing::with_mode(sniff, meta.permissions().mode())))
    }
}

/// The subdirectories and regular files of an open directory. Symlinks, FIFOs, sockets and
/// devices are left alone.
fn list(fd: &OwnedFd) -> rustix::io::Result<(Vec<CString>, Vec<CString>)> {
    use rustix::fs::{AtFlags as RAtFlags, FileType, RawDir, statat};
    let mut buf = vec![std::mem::MaybeUninit::<u8>::uninit(); 32 * 1024];
    let mut dir = RawDir::new(fd, &mut buf);
    let mut subdirs = Vec::new();
    let mut files = Vec::new();
    while let Some(entry) = dir.next() {
        let entry = entry?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let kind = match entry.file_type() {
            // File systems that do not fill d_type: ask, without following a symlink.
            FileType::Unknown => match statat(fd, name, RAtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => FileType::from_raw_mode(st.st_mode),
                Err(_) => continue,
            },
            t => t,
        };
        match kind {
            FileType::Directory => subdirs.push(name.to_owned()),
            FileType::RegularFile => files.push(name.to_owned()),
            _ => {}
        }
    }
    Ok((subdirs, files))
}

fn join(rel: &str, name: &CStr) -> String {
    // Losslessly: two names that differ only in bytes that are not UTF-8 stay two.
    let name = crate::names::escape(name.to_bytes());
    let mut p = String::with_capacity(rel.len() + name.len() + 1);
    p.push_str(rel);
    p.push('/');
    p.push_str(&name);
    p
}

fn display(rel: &str) -> String {
    if rel.is_empty() {
        "/".into()
    } else {
        rel.to_string()
    }
}
