//! Finding QEMU user-mode interpreters and checking they are fit to register.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::arch::Arch;
use crate::elf::{self, ElfError};
use crate::error::{Class, Classify};
use crate::fileio::{Follow, OpenError};
use crate::format::{self, Format, HEAD_BYTES};
use crate::machine::{Machine, Meta};

/// Where interpreters are looked for when no `--qemu-path` is given.
pub const DEFAULT_PATHS: &[&str] = &["/usr/bin", "/usr/local/bin", "/usr/libexec/qemu-binfmt"];

/// An interpreter that passed the checks.
#[derive(Debug, Clone)]
pub struct Emulator {
    /// The canonical path: every symlink resolved. This is the path registered.
    pub path: PathBuf,
    pub is_static: bool,
    pub root_owned: bool,
    /// Owned by an id outside this user namespace (see `Credentials::outside`).
    pub owned_outside: bool,
    /// The first bytes of the interpreter, to make sure a rule does not match it (ELOOP).
    pub head: Vec<u8>,
    /// The file that was checked, held open, to prove later that the path still names it.
    pub pin: Pin,
}

/// Why an interpreter is not fit to register: bad input, since the user named it or chose
/// where to look for it.
#[derive(Debug, thiserror::Error)]
pub enum InterpreterError {
    #[error("interpreter {0} is not an absolute path")]
    NotAbsolute(String),
    #[error("interpreter {shown}: {error}")]
    Io {
        shown: String,
        error: std::io::Error,
    },
    #[error("interpreter {0} is not a regular file")]
    NotRegular(String),
    #[error("interpreter {0} is not executable (chmod +x)")]
    NotExecutable(String),
    #[error(
        "interpreter {shown} is writable by group or others (mode {mode:o}); anyone could replace what every foreign program runs (chmod go-w)"
    )]
    Writable { shown: String, mode: u32 },
    #[error(
        "interpreter {shown} is owned by uid {uid}, not root-owned (nor the caller's): its owner could replace what every foreign program runs (chown root)"
    )]
    Owner { shown: String, uid: u32 },
    #[error("interpreter {shown} sits in {dir} which group or others may write (mode {mode:o})")]
    DirWritable {
        shown: String,
        dir: String,
        mode: u32,
    },
    #[error(
        "interpreter {shown} sits in {dir} owned by uid {uid}, who could put another file in its place"
    )]
    DirOwner {
        shown: String,
        dir: String,
        uid: u32,
    },
    #[error("interpreter {shown}: {error}")]
    Elf { shown: String, error: ElfError },
    #[error(
        "interpreter {0} is dynamically linked; the F flag needs a static one, since it must run inside containers that lack its libraries (apt-get install qemu-user-static, or --no-fix-binary)"
    )]
    Dynamic(String),
}

impl Classify for InterpreterError {
    fn class(&self) -> Class {
        Class::BadInput
    }
}

/// The checked interpreter is no longer the file that was checked.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("interpreter {shown} changed after it was checked: {error}")]
    Gone {
        shown: String,
        error: std::io::Error,
    },
    #[error("interpreter {shown}: {error}")]
    Held {
        shown: String,
        error: std::io::Error,
    },
    #[error("interpreter {0} was replaced by another file after it was checked")]
    Replaced(String),
    #[error(
        "interpreter {shown} was modified after it was checked (now mode {mode:o}, {size} bytes)"
    )]
    Modified { shown: String, mode: u32, size: u64 },
    #[error("interpreter {0} was checked on another machine, not this one")]
    NotHere(String),
}

impl Classify for PinError {
    fn class(&self) -> Class {
        Class::Problem
    }
}

/// The identity of the checked interpreter: registration re-checks it just before and just
/// after the write to `register`, so the file the kernel takes (opened there with `F`, looked
/// up by path at each exec without) is the file that was checked.
#[derive(Debug, Clone)]
pub struct Pin {
    path: PathBuf,
    /// None when the check ran on a machine other than this one (a fake): nothing to hold.
    file: Option<Arc<File>>,
    seen: Stamp,
}

/// What must not change between the check and the registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    mode: u32,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(m: &Meta) -> Stamp {
        Stamp {
            dev: m.dev,
            ino: m.ino,
            mode: m.mode,
            size: m.len,
            mtime: m.mtime,
            // Any write to the file or change of its mode or owner moves ctime. (The owner is
            // not compared itself: `run` checks before entering a user namespace, where
            // the same owner reads as another uid.)
            ctime: m.ctime,
        }
    }
}

impl Pin {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path still names the checked file, unchanged: same inode, not written, not
    /// re-moded, not re-owned. The error says what changed. Asked of this machine itself,
    /// just before and after the kernel opens the file.
    pub fn verify(&self) -> Result<(), PinError> {
        let shown = || self.path.display().to_string();
        let Some(file) = &self.file else {
            return Err(PinError::NotHere(shown()));
        };
        let now = std::fs::symlink_metadata(&self.path).map_err(|error| PinError::Gone {
            shown: shown(),
            error,
        })?;
        let held = file.metadata().map_err(|error| PinError::Held {
            shown: shown(),
            error,
        })?;
        let (now, held) = (Stamp::of(&Meta::of(&now)), Stamp::of(&Meta::of(&held)));
        if (now.dev, now.ino) != (self.seen.dev, self.seen.ino) {
            return Err(PinError::Replaced(shown()));
        }
        if held != self.seen {
            return Err(PinError::Modified {
                shown: shown(),
                mode: held.mode & 0o7777,
                size: held.size,
            });
        }
        Ok(())
    }
}

/// The interpreter for `arch`: `qemu-<cpu>-static`, then `qemu-<cpu>`, in each search dir.
pub fn find(machine: &dyn Machine, arch: &Arch, search: &[PathBuf]) -> Option<PathBuf> {
    let cpu = arch.qemu.as_ref()?;
    let names = [format!("qemu-{cpu}-static"), format!("qemu-{cpu}")];
    search
        .iter()
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| machine.stat(p).is_ok_and(|m| m.is_file()))
}

/// Check an interpreter as the kernel and a careful admin would: absolute, a regular
/// executable file, owned by root (or the caller), writable by nobody else, in directories
/// nobody else may write, static when it is to be opened once and used everywhere (`F`).
///
/// Symlinks are resolved and the canonical path is what gets checked and registered: a link
/// could later be pointed elsewhere by whoever owns it, and the kernel would follow it at
/// every exec. The checks run on the open file, not on a name that could change meanwhile.
pub fn check(
    machine: &dyn Machine,
    path: &Path,
    need_static: bool,
) -> Result<Emulator, InterpreterError> {
    let shown = path.display().to_string();
    if !path.is_absolute() {
        return Err(InterpreterError::NotAbsolute(shown));
    }
    let canonical = machine
        .canonicalize(path)
        .map_err(|error| InterpreterError::Io {
            shown: shown.clone(),
            error,
        })?;
    let shown = if canonical == path {
        shown
    } else {
        format!("{shown} (= {})", canonical.display())
    };
    let (file, meta) = machine
        .open(&canonical, Follow::NotLast)
        .map_err(|e| match e {
            OpenError::NotRegular(_) => InterpreterError::NotRegular(shown.clone()),
            OpenError::Io(error) => InterpreterError::Io {
                shown: shown.clone(),
                error,
            },
        })?;
    let mode = meta.mode;
    if mode & 0o111 == 0 {
        return Err(InterpreterError::NotExecutable(shown));
    }
    if mode & 0o022 != 0 {
        return Err(InterpreterError::Writable {
            shown,
            mode: mode & 0o7777,
        });
    }
    let creds = machine.credentials();
    let me = creds.euid;
    // Owned by an id this user namespace does not map: nobody inside can change it (no
    // capability here applies to an unmapped owner's file). What its owner outside may do is
    // the trust the namespace's creator already places in the host (SECURITY.md).
    let outside = |uid: u32, path: &Path| Some(uid) == creds.outside && machine.beyond_reach(path);
    let fits = |uid: u32, path: &Path| uid == 0 || uid == me || outside(uid, path);
    if !fits(meta.uid, &canonical) {
        return Err(InterpreterError::Owner {
            shown,
            uid: meta.uid,
        });
    }
    // Whoever may write a directory on the way may rename another file into its place.
    for dir in canonical.ancestors().skip(1) {
        let Ok(dmeta) = machine.lstat(dir) else {
            continue;
        };
        let dmode = dmeta.mode;
        // A sticky directory (/tmp) lets others add names, not replace ours.
        if dmode & 0o022 != 0 && dmode & 0o1000 == 0 {
            return Err(InterpreterError::DirWritable {
                shown,
                dir: dir.display().to_string(),
                mode: dmode & 0o7777,
            });
        }
        if !fits(dmeta.uid, dir) {
            return Err(InterpreterError::DirOwner {
                shown,
                dir: dir.display().to_string(),
                uid: dmeta.uid,
            });
        }
    }
    let head = file
        .read_prefix(HEAD_BYTES)
        .map_err(|error| InterpreterError::Io {
            shown: shown.clone(),
            error,
        })?;
    let is_static = match format::sniff(&head) {
        Format::Elf => elf::read(&file, &head, meta.len)
            .map(|i| i.is_static())
            .map_err(|error| InterpreterError::Elf {
                shown: shown.clone(),
                error,
            })?,
        _ => false,
    };
    if need_static && !is_static {
        return Err(InterpreterError::Dynamic(shown));
    }
    let owned_outside = meta.uid != 0 && meta.uid != me && outside(meta.uid, &canonical);
    Ok(Emulator {
        pin: Pin {
            path: canonical.clone(),
            seen: Stamp::of(&meta),
            file: file.into_file().map(Arc::new),
        },
        path: canonical,
        is_static,
        root_owned: meta.uid == 0,
        owned_outside,
        head,
    })
}
