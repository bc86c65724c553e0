//! `run`'s work, as a library: check the root filesystem asked for, register the handlers in
//! the private binfmt_misc (`sys::ns` makes it), put the root in place (/proc, a minimal
//! /dev, chroot), find the command there and start it through the process layer.
//!
//! Every mount here is made in the private mount namespace: it vanishes with the process and
//! never changes the root filesystem's directory as others see it.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MsFlags, mount};

use crate::binfmt::Registry;
use crate::binfmt::apply::{self, Report, Step};
use crate::binfmt::plan::Planned;
use crate::error::{Class, Classify};
use crate::sys::exec::{self, Candidate, Child, Output, Spec, Stdin};
use crate::sys::signals::SignalWatch;

/// Why `run` could not start its command.
#[derive(Debug, thiserror::Error)]
pub enum RootlessError {
    #[error("--rootfs {}: {source}", .dir.display())]
    Rootfs { dir: PathBuf, source: io::Error },
    #[error("--rootfs {}: not a directory", .0.display())]
    RootfsNotDir(PathBuf),
    #[error("cannot register {name} in the private binfmt_misc: {error}")]
    Register { name: String, error: String },
    #[error("cannot prepare {}: {source}", .root.display())]
    Prepare { root: PathBuf, source: io::Error },
    /// `{0}` says what was looked for and where.
    #[error("{0}")]
    Lookup(String),
    #[error("cannot run {}: {source}", .program.display())]
    Spawn { program: PathBuf, source: io::Error },
    #[error("cannot run {}: {}{hint}", .program.display(), io::Error::from(*.errno))]
    Exec {
        program: PathBuf,
        errno: Errno,
        hint: String,
    },
    #[error("cannot watch signals: {0}")]
    Signals(io::Error),
    #[error("lost track of the command: {0}")]
    Wait(io::Error),
}

impl Classify for RootlessError {
    fn class(&self) -> Class {
        match self {
            RootlessError::Rootfs { .. }
            | RootlessError::RootfsNotDir(_)
            | RootlessError::Lookup(_)
            | RootlessError::Spawn { .. } => Class::BadInput,
            RootlessError::Register { .. } => Class::Problem,
            // The kernel has no handler for it: what `run` exists to provide, so a problem
            // found, not bad input.
            RootlessError::Exec {
                errno: Errno::ENOEXEC,
                ..
            } => Class::Problem,
            RootlessError::Exec { .. } => Class::BadInput,
            RootlessError::Prepare { .. } | RootlessError::Signals(_) | RootlessError::Wait(_) => {
                Class::Environment
            }
        }
    }
}

/// `--rootfs` as a canonical directory; anything else is bad input.
pub fn check_root(dir: &Path) -> Result<PathBuf, RootlessError> {
    let failed = |source| RootlessError::Rootfs {
        dir: dir.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(dir).map_err(failed)?;
    if !meta.is_dir() {
        return Err(RootlessError::RootfsNotDir(dir.to_path_buf()));
    }
    std::fs::canonicalize(dir).map_err(failed)
}

/// Register every planned entry in the private instance.
pub fn register(
    registry: &Registry,
    planned: &[Planned<'_>],
) -> Result<Vec<String>, RootlessError> {
    let steps: Vec<Step> = planned
        .iter()
        .map(|p| Step::Register(p.reg.clone(), Some(p.emulator.pin.clone())))
        .collect();
    let report = apply::apply(registry, &steps, Report::default());
    match report.failed {
        Some(f) => Err(RootlessError::Register {
            name: f.name,
            error: f.error,
        }),
        None => Ok(report.installed),
    }
}

/// The file the command names, looked up as exec's callers do (`sys::exec::search_path`),
/// after the chroot, so inside the root (`inside` names it in messages). A name with a `/`
/// is a path.
pub fn find_command(command: &OsStr, inside: &str) -> Result<PathBuf, RootlessError> {
    let shown = command.to_string_lossy();
    let lookup = |what: String| RootlessError::Lookup(format!("{what}{inside}"));
    if command.as_bytes().contains(&b'/') {
        return match exec::look_live(Path::new(command)) {
            Candidate::Executable => Ok(PathBuf::from(command)),
            Candidate::Absent if !Path::new(command).exists() => {
                Err(lookup(format!("{shown}: no such file")))
            }
            _ => Err(lookup(format!("{shown}: not an executable file"))),
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| exec::DEFAULT_PATH.into());
    exec::search_path(command, &path, exec::look_live).map_err(|e| lookup(e.to_string()))
}

/// Start `program` with `argv` on our terminal, with the signal mask we had before `watch`
/// blocked its signals. `arch` is the `--arch` asked for, for the message when no handler
/// takes the program.
pub fn start(
    program: &Path,
    argv: &[OsString],
    watch: &SignalWatch,
    arch: &str,
) -> Result<Child, RootlessError> {
    let spec = Spec::new(program)
        .argv(argv.iter().cloned())
        .stdin(Stdin::Inherit)
        .output(Output::Inherit)
        .signal_mask(*watch.previous_mask());
    let child = exec::spawn(&spec).map_err(|source| RootlessError::Spawn {
        program: program.to_path_buf(),
        source,
    })?;
    let Some((_, errno)) = child.failed() else {
        return Ok(child);
    };
    let shown = program.display();
    let hint = match errno {
        Errno::ENOEXEC => format!(
            "; no handler registered for --arch {arch} matches it (binfmt-setup inspect {shown})"
        ),
        // The file is there, so a missing loader (PT_INTERP) or `#!` interpreter.
        Errno::ENOENT => "; its loader or script interpreter is missing in this root".to_string(),
        _ => String::new(),
    };
    Err(RootlessError::Exec {
        program: program.to_path_buf(),
        errno,
        hint,
    })
}

/// Device nodes bound into the root's /dev, each when the host has it.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// A root filesystem made ready, with notes on what could not be provided.
#[derive(Debug, Default)]
pub struct Prepared {
    pub notes: Vec<String>,
}

/// Mount /proc and a minimal /dev inside `root` (each where the root has the directory or it
/// can be made), then chroot into it. `root` must be an absolute path to a directory.
pub fn enter_root(root: &Path) -> Result<Prepared, RootlessError> {
    prepare_root(root).map_err(|source| RootlessError::Prepare {
        root: root.to_path_buf(),
        source,
    })
}

fn prepare_root(root: &Path) -> io::Result<Prepared> {
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

fn io_context(e: Errno, what: &str) -> io::Error {
    io::Error::new(io::Error::from(e).kind(), format!("{what}: {e}"))
}
