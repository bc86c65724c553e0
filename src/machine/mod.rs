//! The machine as `inspect`, `diagnose`, the emulator check and install's plan see it: one
//! trait for every question they ask of the kernel, the file system, the environment and the
//! probes, so the decisions can be tested against an in-memory machine ([`Fake`]) as well as
//! run against the real one ([`Live`]).
//!
//! Paths given to the file methods are host paths; looking a path up inside `--root` is the
//! caller's business (`diagnose::RootFs`), done with [`Machine::lstat`] and
//! [`Machine::read_link`] one component at a time.

mod after;
pub mod fake;
pub mod live;
pub mod proofs;
#[cfg(test)]
pub mod testing;

use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use fake::{Fake, Node};
pub use live::Live;

use crate::arch::{Arch, ArchTable, Host};
use crate::binfmt::{BinfmtError, Snapshot};
use crate::elf::ReadAt;
use crate::error::{Class, Classify};
use crate::fileio::{Follow, OpenError};

/// How long one level probe may take ([`Machine::levels`]: one emulator start).
const LEVELS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Every question the checks ask of the machine they run on.
pub trait Machine: Send + Sync + fmt::Debug {
    /// `uname -m`.
    fn machine(&self) -> String;
    /// The effective ids and supplementary groups exec checks permission with.
    fn credentials(&self) -> Credentials;
    /// Every mount this process sees, in mount order.
    fn mounts(&self) -> Result<Vec<Mount>, MountsError>;
    /// The kernel's own answer (statvfs) to whether the mount holding `path` is noexec, for
    /// when the mount list cannot say.
    fn statvfs_noexec(&self, path: &Path) -> Option<bool>;
    /// An environment variable (PATH, QEMU_LD_PREFIX, LD_LIBRARY_PATH).
    fn env(&self, name: &str) -> Option<OsString>;
    fn current_dir(&self) -> std::io::Result<PathBuf>;
    /// The binfmt_misc instance at `dir`, as read now.
    fn binfmt(&self, dir: &Path) -> Result<Snapshot, BinfmtError>;
    /// Whether the kernel runs `arch` programs itself, without any handler.
    fn runs_natively(&self, arch: &Arch) -> Result<bool, ProbeError>;
    /// Start answering `probes` and return at once: the caller does other work, then
    /// collects one answer per probe, in order. A probe that cannot run answers no.
    fn start_probes(&self, probes: &[Probe<'_>]) -> Box<dyn Answers>;
    /// The first `max` bytes of this very program (/proc/self/exe).
    fn self_exe_head(&self, max: usize) -> Option<Vec<u8>>;
    /// The file `path` names, a symlink as itself.
    fn lstat(&self, path: &Path) -> std::io::Result<Meta>;
    /// The file `path` names, every symlink followed.
    fn stat(&self, path: &Path) -> std::io::Result<Meta>;
    fn read_link(&self, path: &Path) -> std::io::Result<PathBuf>;
    fn canonicalize(&self, path: &Path) -> std::io::Result<PathBuf>;
    /// The names in a directory, in no particular order.
    fn read_dir(&self, path: &Path) -> std::io::Result<Vec<OsString>>;
    /// Whether the caller may execute `path`, as the kernel decides it for exec.
    fn may_execute(&self, path: &Path) -> bool;
    /// Whether `path` is out of this user namespace's reach: the caller holds
    /// CAP_DAC_OVERRIDE here and still may not write it, which the kernel decides that way
    /// only for a file whose owner (or group) the namespace does not map. A file of the
    /// namespace's own nobody reads as the same overflow uid, but its root may write it.
    fn beyond_reach(&self, path: &Path) -> bool;
    /// The processes that hold `path` open for writing, as far as /proc lets this process
    /// see (exec of such a file fails with ETXTBSY).
    fn writers(&self, path: &Path) -> Vec<Writer>;
    /// The checks of `arch`'s level probe that run here, as the probe's mask: natively for
    /// the host's own architecture, else through whatever binfmt_misc handler this process's
    /// exec reaches, with the default CPU (an empty environment). `Ok(None)`: `arch` has no
    /// level probe. One [`Machine::start_asking`] of the level probe.
    fn levels(&self, arch: &Arch) -> Result<Option<u32>, ProbeError> {
        let Some(family) = crate::probe::levels::family(arch) else {
            return Ok(None);
        };
        let ask = Ask {
            arch,
            program: AskProgram::Levels,
            extension: None,
            chroot: false,
            env: Vec::new(),
        };
        let reply = self
            .start_asking(&[ask], LEVELS_TIMEOUT)
            .collect()
            .pop()
            .unwrap_or_default();
        let fail = |what: String| ProbeError(format!("the {} level probe {what}", arch.name));
        match reply.exit {
            Some(code) => family
                .decode(code)
                .map(|f| Some(f.mask))
                .ok_or_else(|| fail(format!("exited with {code}, not a level report"))),
            None => Err(fail(
                reply
                    .failure
                    .unwrap_or_else(|| "did not run its course".into()),
            )),
        }
    }
    /// Open a regular file for reading with `fileio`'s rules: never a FIFO or a device,
    /// symlinks followed only as `follow` allows. The metadata is the open file's.
    fn open(&self, path: &Path, follow: Follow) -> Result<(Handle, Meta), OpenError>;
    /// Start running `asks` through the kernel (a core's worth at a time) and return at
    /// once; the caller collects one reply per ask, in order.
    /// Each is bounded by `timeout` from its start.
    fn start_asking(&self, asks: &[Ask<'_>], timeout: std::time::Duration) -> Box<dyn Replies>;
    /// The reply kept from an earlier run for `key` ([`proofs`]), if any. None by default:
    /// a machine that keeps nothing asks again.
    fn kept(&self, _key: &proofs::Key) -> Option<Reply> {
        None
    }
    /// Keep `reply` for `key`: only a program that exited by itself is kept.
    fn keep(&self, _key: &proofs::Key, _reply: &Reply) {}
}

/// The host as the arch table names it, from the machine's `uname -m`. MIPS and ppc names say
/// nothing of byte order, so this binary's own byte order settles it (as `Host::detect` does).
pub fn host(machine: &dyn Machine, table: &ArchTable) -> Host {
    let name = machine.machine();
    let arch = Host::arch_for_machine(table, &name, cfg!(target_endian = "little"));
    Host {
        machine: name,
        arch,
    }
}

/// A whole small regular file as text, as `fileio::read_text` reads it.
pub fn read_text(
    machine: &dyn Machine,
    path: &Path,
    follow: Follow,
    max: usize,
) -> Result<String, OpenError> {
    let (file, _) = machine.open(path, follow)?;
    let bytes = file.read_prefix(max + 1)?;
    if bytes.len() > max {
        return Err(OpenError::Io(std::io::Error::other(format!(
            "larger than {max} bytes"
        ))));
    }
    String::from_utf8(bytes)
        .map_err(|_| OpenError::Io(std::io::Error::from(std::io::ErrorKind::InvalidData)))
}

/// Who exec checks permission for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub euid: u32,
    pub egid: u32,
    pub groups: Vec<u32>,
    /// In a user namespace that leaves the parent's root unmapped (a subordinate range, as
    /// `buildah unshare` and rootlesskit make): the uid that files of unmapped ids, root's
    /// among them, show as (the overflow uid, 65534). The namespace may map a nobody of its
    /// own to the same number, so a file showing it is outside only when
    /// [`Machine::beyond_reach`] also says so. `None` in the first namespace, and in one
    /// that maps the parent's root.
    pub outside: Option<u32>,
}

/// A process holding a file open for writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writer {
    pub pid: u32,
    /// Its command name (`/proc/PID/comm`).
    pub command: String,
}

/// One mount, as /proc/self/mountinfo lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub point: PathBuf,
    pub fstype: String,
    pub noexec: bool,
}

/// The mount holding `path` (a path with symlinks already resolved): the one with the
/// longest mount point that contains it, and of those the last mounted, which hides the
/// ones under it.
pub fn mount_of<'m>(mounts: &'m [Mount], path: &Path) -> Option<&'m Mount> {
    mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| path.starts_with(&m.point))
        .max_by_key(|(i, m)| (m.point.components().count(), *i))
        .map(|(_, m)| m)
}

/// What a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    Device,
    Other,
}

impl Kind {
    /// In words: "a directory", "a FIFO", …
    pub fn words(self) -> &'static str {
        match self {
            Kind::File => "a regular file",
            Kind::Dir => "a directory",
            Kind::Symlink => "a symbolic link",
            Kind::Fifo => "a FIFO",
            Kind::Socket => "a socket",
            Kind::Device => "a device",
            Kind::Other => "not a regular file",
        }
    }
}

/// The metadata the checks use; a plain struct, so a fake machine can make one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    /// Permission bits, setuid, setgid and sticky included (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub len: u64,
    pub dev: u64,
    pub ino: u64,
    /// Seconds and nanoseconds.
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

impl Meta {
    /// The file's identity, as answers are kept under it.
    pub fn file_id(&self) -> crate::sys::exec::FileId {
        crate::sys::exec::FileId {
            dev: self.dev,
            ino: self.ino,
            size: self.len,
            mtime: self.mtime,
            ctime: self.ctime,
        }
    }

    pub fn of(m: &std::fs::Metadata) -> Meta {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let t = m.file_type();
        let kind = if t.is_file() {
            Kind::File
        } else if t.is_dir() {
            Kind::Dir
        } else if t.is_symlink() {
            Kind::Symlink
        } else if t.is_fifo() {
            Kind::Fifo
        } else if t.is_socket() {
            Kind::Socket
        } else if t.is_char_device() || t.is_block_device() {
            Kind::Device
        } else {
            Kind::Other
        };
        Meta {
            kind,
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            len: m.size(),
            dev: m.dev(),
            ino: m.ino(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }

    pub fn is_file(&self) -> bool {
        self.kind == Kind::File
    }

    pub fn is_dir(&self) -> bool {
        self.kind == Kind::Dir
    }

    pub fn is_symlink(&self) -> bool {
        self.kind == Kind::Symlink
    }
}

/// A regular file opened for reading: on disk, or a fake machine's bytes.
#[derive(Debug)]
pub enum Handle {
    Disk(File),
    Memory(Arc<[u8]>),
}

impl Handle {
    /// The first `max` bytes.
    pub fn read_prefix(&self, max: usize) -> std::io::Result<Vec<u8>> {
        match self {
            Handle::Disk(f) => crate::fileio::read_prefix(f, max),
            Handle::Memory(b) => Ok(b[..b.len().min(max)].to_vec()),
        }
    }

    /// The open file, when there is one: what `emulator::Pin` holds.
    pub fn into_file(self) -> Option<File> {
        match self {
            Handle::Disk(f) => Some(f),
            Handle::Memory(_) => None,
        }
    }
}

impl ReadAt for Handle {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        match self {
            Handle::Disk(f) => ReadAt::read_exact_at(f, buf, offset),
            Handle::Memory(b) => (&b[..]).read_exact_at(buf, offset),
        }
    }
}

/// A question answered by running a probe program through the kernel.
#[derive(Debug, Clone, Copy)]
pub enum Probe<'a> {
    /// Does the kernel run `arch` programs itself (in a binfmt_misc with no handler)?
    Native(&'a Arch),
    /// Does the interpreter hand a program its own argv[0] when registered with `P`?
    PreserveArgv0 {
        arch: &'a Arch,
        interpreter: &'a Path,
    },
}

/// Probes started by [`Machine::start_probes`].
pub trait Answers {
    /// Wait for them: one answer per probe, in the order asked.
    fn collect(self: Box<Self>) -> Vec<bool>;
}

/// A program run through the kernel the way `test` runs its probes, to learn what the
/// emulator behind a handler does: its version, its CPU models, the levels it reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask<'a> {
    /// The architecture whose program runs.
    pub arch: &'a Arch,
    pub program: AskProgram,
    /// The file name's extension, so that an extension (`E`) rule takes it; `None`: a plain
    /// name, which only magic rules (or the kernel itself) take.
    pub extension: Option<&'a str>,
    /// As the only file of an empty chroot (as `test` runs probes), or from a directory of
    /// its own.
    pub chroot: bool,
    /// The program's whole environment (`QEMU_CPU=power10`, `QEMU_VERSION=1`, or nothing).
    pub env: Vec<(String, String)>,
}

/// Which program an [`Ask`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AskProgram {
    /// The echo probe (`probe::program`), run without arguments.
    Echo,
    /// The level probe (`probe::levels::program`).
    Levels,
}

/// How an [`Ask`] ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    /// Its exit status; `None` when it did not exit by itself (a signal, the timeout) or
    /// never ran.
    pub exit: Option<i32>,
    pub stdout: String,
    /// What went wrong, in words, when it did not exit: `killed by SIGILL`, `exec: …`.
    pub failure: Option<String>,
    /// The file the kernel ran for it ([`crate::sys::exec::Outcome::exe`]).
    pub exe: Option<crate::sys::exec::FileId>,
}

impl Reply {
    /// How a run ended, as a reply; `timeout` is the limit it ran under.
    pub fn of(o: &crate::sys::exec::Outcome, timeout: std::time::Duration) -> Reply {
        use crate::sys::exec::{Ending, signal_name};
        Reply {
            exit: match o.ending {
                Ending::Exited(c) => Some(c),
                _ => None,
            },
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            failure: match &o.ending {
                Ending::Exited(_) => None,
                Ending::Signaled(s) => Some(format!("killed by {}", signal_name(*s))),
                Ending::TimedOut => {
                    Some(format!("no answer within {:.1} s", timeout.as_secs_f64()))
                }
                Ending::Failed { step, errno } => {
                    Some(format!("{}: {}", step.as_str(), errno.desc()))
                }
            },
            exe: o.exe,
        }
    }

    /// As kept: its exit status, then its output. None for a program that did not exit by
    /// itself, which proves nothing worth keeping.
    pub fn kept_text(&self) -> Option<String> {
        match (self.exit, &self.failure) {
            (Some(code), None) => Some(format!("exit={code}\n{}", self.stdout)),
            _ => None,
        }
    }

    /// Read back from [`Reply::kept_text`].
    pub fn from_kept(text: &str) -> Option<Reply> {
        let (status, stdout) = text.split_once('\n')?;
        let exit = status.strip_prefix("exit=")?.parse().ok()?;
        Some(Reply {
            exit: Some(exit),
            stdout: stdout.to_string(),
            ..Reply::default()
        })
    }
}

/// Asks started by [`Machine::start_asking`].
pub trait Replies {
    /// Wait for them: one reply per ask, in the order asked.
    fn collect(self: Box<Self>) -> Vec<Reply>;
}

/// Replies known already.
#[derive(Debug)]
pub struct Answered(pub Vec<Reply>);

impl Replies for Answered {
    fn collect(self: Box<Self>) -> Vec<Reply> {
        self.0
    }
}

/// Answers known already.
#[derive(Debug)]
pub struct Known(pub Vec<bool>);

impl Answers for Known {
    fn collect(self: Box<Self>) -> Vec<bool> {
        self.0
    }
}

/// The mount list could not be read.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot read /proc/self/mountinfo: {0}")]
pub struct MountsError(pub String);

impl Classify for MountsError {
    fn class(&self) -> Class {
        Class::Environment
    }
}

/// A probe could not be run, so the kernel was not asked.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ProbeError(pub String);

impl Classify for ProbeError {
    fn class(&self) -> Class {
        Class::Environment
    }
}
