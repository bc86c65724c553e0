//! The one rule for finding a command in PATH (execvp's, without its fallback of running a
//! file that exec refused through /bin/sh).
//!
//! The rule is [`pick`], which allocates nothing, so the process layer's child can apply it
//! between fork and exec, after a chroot, to candidates built before the fork; callers in a
//! normal process use [`search_path`].

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// PATH when the environment has none: the usual one of a Debian root, and glibc's default.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What is at a candidate path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Candidate {
    /// Nothing there, or not a regular file.
    Absent,
    /// A regular file the caller may not execute.
    NotExecutable,
    /// A regular file the caller may execute.
    Executable,
}

/// Why a command was not found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{command}: command not found (looked in PATH {path})")]
pub struct NotFound {
    pub command: String,
    pub path: String,
}

/// The paths a command may be at, in PATH order: `dir/command` for each entry, an empty
/// entry meaning the current directory. A command holding a `/` is a path already: it is its
/// own only candidate.
pub fn candidates(command: &OsStr, path: &OsStr) -> Vec<PathBuf> {
    if command.as_bytes().contains(&b'/') {
        return vec![PathBuf::from(command)];
    }
    path.as_bytes()
        .split(|&b| b == b':')
        .map(|dir| {
            let dir = if dir.is_empty() {
                Path::new(".")
            } else {
                Path::new(OsStr::from_bytes(dir))
            };
            dir.join(command)
        })
        .collect()
}

/// The rule: the first candidate that may be executed wins; failing that, the first that
/// exists (exec of it then fails with EACCES, as a shell reports); failing that, none.
/// Returns the index chosen and what was found there. Allocates nothing.
pub fn pick<C>(candidates: &[C], look: impl Fn(&C) -> Candidate) -> Option<(usize, Candidate)> {
    let mut first = None;
    for (i, c) in candidates.iter().enumerate() {
        match look(c) {
            Candidate::Executable => return Some((i, Candidate::Executable)),
            Candidate::NotExecutable if first.is_none() => {
                first = Some((i, Candidate::NotExecutable));
            }
            _ => {}
        }
    }
    first
}

/// [`pick`] over the PATH candidates of `command`, with `look` saying what is at each (the
/// live system, a root looked into by hand, a test's fake).
pub fn search_path(
    command: &OsStr,
    path: &OsStr,
    look: impl Fn(&Path) -> Candidate,
) -> Result<PathBuf, NotFound> {
    let mut all = candidates(command, path);
    match pick(&all, |p| look(p)) {
        Some((i, _)) => Ok(all.swap_remove(i)),
        None => Err(NotFound {
            command: command.to_string_lossy().into_owned(),
            path: path.to_string_lossy().into_owned(),
        }),
    }
}

/// [`search_path`]'s `look` for the live system: the kernel is asked whether we may execute,
/// with the effective ids, as exec checks.
pub fn look_live(path: &Path) -> Candidate {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {
            if may_execute(path) {
                Candidate::Executable
            } else {
                Candidate::NotExecutable
            }
        }
        _ => Candidate::Absent,
    }
}

/// Whether the caller may execute `path`, asked of the kernel (so ACLs and capabilities
/// count), with the effective ids, as exec uses.
pub fn may_execute(path: &Path) -> bool {
    nix::unistd::faccessat(
        nix::fcntl::AT_FDCWD,
        path,
        nix::unistd::AccessFlags::X_OK,
        nix::fcntl::AtFlags::AT_EACCESS,
    )
    .is_ok()
}

/// The PATH of the environment, or [`DEFAULT_PATH`].
pub fn env_path() -> OsString {
    std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_search_follows_execvp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let path = OsString::from(format!("{}:{}", a.display(), b.display()));
        let look = |p: &Path| {
            if p == a.join("tool") || p == a.join("only") {
                Candidate::NotExecutable
            } else if p == b.join("tool") {
                Candidate::Executable
            } else {
                Candidate::Absent
            }
        };
        assert_eq!(
            search_path(OsStr::new("tool"), &path, look),
            Ok(b.join("tool"))
        );
        assert_eq!(
            search_path(OsStr::new("only"), &path, look),
            Ok(a.join("only"))
        );
        assert!(search_path(OsStr::new("nope"), &path, look).is_err());
        let empty_entry = OsString::from(format!(":{}", b.display()));
        let here = |p: &Path| {
            if p == Path::new("./x") {
                Candidate::Executable
            } else {
                Candidate::Absent
            }
        };
        assert_eq!(
            search_path(OsStr::new("x"), &empty_entry, here),
            Ok(PathBuf::from("./x"))
        );
        assert_eq!(
            candidates(OsStr::new("./run"), &path),
            [PathBuf::from("./run")]
        );
    }
}
