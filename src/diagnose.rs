//! Why a program will not run: the decision tree behind `diagnose`.
//!
//! It follows the kernel's own steps for execve(2), in the kernel's order: look the path up
//! (inside `--root`, symlinks included), refuse a `noexec` mount or missing execute
//! permission, hand the file to the newest enabled binfmt_misc entry that matches, else to
//! the `#!` or ELF loader; a script's interpreter, a handler's interpreter and an ELF's loader
//! are examined the same way, recursively. The first step that fails is the cause. Each
//! finding predicts what exec returns (an errno, or "starts") so `--run` can check it.
//! Nothing here prints.

mod libs;
mod mounts;
pub mod rootfs;
pub mod run;

use std::cell::OnceCell;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use serde::Serialize;

use crate::arch::{Arch, ArchTable};
use crate::binfmt::Entry;
use crate::elf::{self, ElfError, ElfInfo};
use crate::error::{Class, Classify};
use crate::format::{self, Format};
use crate::inspect::{ElfVerdict, Inspector, ReadError, read_head, read_head_resolved};
use crate::machine::{Handle, Machine, Meta, Mount, MountsError};
use crate::sys::exec::{self, Candidate};

pub use rootfs::{Lookup, RootError, RootFs};
pub use run::{RunError, RunOutcome};

/// How many times exec may be rewritten (script → interpreter, binfmt_misc → interpreter)
/// before the kernel gives ELOOP (`exec_binprm`: depth > 5).
const MAX_DEPTH: usize = 5;

/// A file exists but cannot be read at all: bad input, not a cause.
#[derive(Debug, thiserror::Error)]
pub enum DiagnoseError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("cannot stat {path}: {error}")]
    Stat { path: String, error: std::io::Error },
    #[error("cannot read {path}: {error}")]
    Damaged { path: String, error: std::io::Error },
}

impl Classify for DiagnoseError {
    fn class(&self) -> Class {
        Class::BadInput
    }
}

/// The stable cause codes (DESIGN.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Cause {
    Ok,
    NotFound,
    NotExecutable,
    NoexecMount,
    NotABinary,
    ForeignOs,
    Truncated,
    BinfmtNotMounted,
    BinfmtDisabled,
    NoHandler,
    HandlerDisabled,
    InterpreterMissing,
    InterpreterNotInRoot,
    InterpreterDynamic,
    LoaderMissing,
    ShebangInterpreterMissing,
    ShebangCrlf,
    UnsupportedArch,
    HostAbiUnsupported,
}

impl Cause {
    pub const ALL: [Cause; 19] = [
        Cause::Ok,
        Cause::NotFound,
        Cause::NotExecutable,
        Cause::NoexecMount,
        Cause::NotABinary,
        Cause::ForeignOs,
        Cause::Truncated,
        Cause::BinfmtNotMounted,
        Cause::BinfmtDisabled,
        Cause::NoHandler,
        Cause::HandlerDisabled,
        Cause::InterpreterMissing,
        Cause::InterpreterNotInRoot,
        Cause::InterpreterDynamic,
        Cause::LoaderMissing,
        Cause::ShebangInterpreterMissing,
        Cause::ShebangCrlf,
        Cause::UnsupportedArch,
        Cause::HostAbiUnsupported,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Ok => "OK",
            Cause::NotFound => "NOT_FOUND",
            Cause::NotExecutable => "NOT_EXECUTABLE",
            Cause::NoexecMount => "NOEXEC_MOUNT",
            Cause::NotABinary => "NOT_A_BINARY",
            Cause::ForeignOs => "FOREIGN_OS",
            Cause::Truncated => "TRUNCATED",
            Cause::BinfmtNotMounted => "BINFMT_NOT_MOUNTED",
            Cause::BinfmtDisabled => "BINFMT_DISABLED",
            Cause::NoHandler => "NO_HANDLER",
            Cause::HandlerDisabled => "HANDLER_DISABLED",
            Cause::InterpreterMissing => "INTERPRETER_MISSING",
            Cause::InterpreterNotInRoot => "INTERPRETER_NOT_IN_ROOT",
            Cause::InterpreterDynamic => "INTERPRETER_DYNAMIC",
            Cause::LoaderMissing => "LOADER_MISSING",
            Cause::ShebangInterpreterMissing => "SHEBANG_INTERPRETER_MISSING",
            Cause::ShebangCrlf => "SHEBANG_CRLF",
            Cause::UnsupportedArch => "UNSUPPORTED_ARCH",
            Cause::HostAbiUnsupported => "HOST_ABI_UNSUPPORTED",
        }
    }
}

/// What a file in a chain is to the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The file asked about.
    Program,
    /// Named by a `#!` line.
    ShebangInterpreter,
    /// The command `#!/usr/bin/env CMD` runs.
    EnvCommand,
    /// The interpreter of the binfmt_misc entry that takes the file before it.
    BinfmtInterpreter,
    /// An ELF's PT_INTERP (the dynamic loader).
    Loader,
}

impl Role {
    fn label(self) -> &'static str {
        match self {
            Role::Program => "",
            Role::ShebangInterpreter => "#! ",
            Role::EnvCommand => "env ",
            Role::BinfmtInterpreter => "binfmt_misc ",
            Role::Loader => "loader ",
        }
    }
}

/// One file on the way from the program to the cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    pub role: Role,
    /// As a program inside the root sees it.
    pub path: String,
}

impl Link {
    pub fn describe(&self) -> String {
        format!("{}{}", self.role.label(), self.path)
    }
}

/// The answer for one file. Field names are the JSON contract (DESIGN.md).
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    /// As given on the command line.
    pub path: String,
    pub ok: bool,
    pub cause: Cause,
    /// What the program is and what the host lacks, in a user's words.
    pub message: String,
    /// The command or step that fixes it.
    pub fix: Option<String>,
    /// What the user sees: the error exec fails with, or what the program's interpreter or
    /// loader prints when exec itself succeeds. None when it runs.
    pub error: Option<String>,
    /// The errno exec fails with (`ENOEXEC`, `ENOENT`, `EACCES`, …); null when exec succeeds.
    #[serde(serialize_with = "run::errno_name")]
    pub errno: Option<Errno>,
    /// The file examined, as a host path (after PATH lookup and symlinks).
    pub resolved: Option<String>,
    pub root: Option<String>,
    pub format: Option<Format>,
    pub platform: Option<String>,
    /// The binfmt_misc entry the kernel hands it to.
    pub handler: Option<String>,
    /// From the program to the file the cause lies in (a script's interpreter, a handler's
    /// interpreter, a loader).
    pub chain: Vec<Link>,
    /// Further observations that are not the cause.
    pub notes: Vec<String>,
    /// The path `--run` executes (inside the root), when there is one.
    #[serde(skip)]
    pub exec_path: Option<String>,
}

impl Diagnosis {
    /// Whether a real run bears the prediction out: the same errno, or both started.
    pub fn agrees(&self, run: &RunOutcome) -> bool {
        self.errno == run.errno
    }
}

/// A finding inside the tree, before it is tied to the path the user gave.
#[derive(Debug, Clone)]
struct Finding {
    cause: Cause,
    errno: Option<Errno>,
    error: Option<String>,
    message: String,
    fix: Option<String>,
    chain: Vec<Link>,
    format: Option<Format>,
    platform: Option<String>,
    handler: Option<String>,
    notes: Vec<String>,
    resolved: Option<PathBuf>,
    /// Shared libraries a loader will not find (LOADER_MISSING found past the loader).
    libs: Vec<String>,
}

impl Finding {
    fn new(cause: Cause, errno: Option<Errno>, message: impl Into<String>) -> Finding {
        Finding {
            cause,
            errno,
            error: errno.map(|e| e.desc().to_string()),
            message: message.into(),
            fix: None,
            chain: Vec::new(),
            format: None,
            platform: None,
            handler: None,
            notes: Vec::new(),
            resolved: None,
            libs: Vec::new(),
        }
    }

    fn ok(message: impl Into<String>) -> Finding {
        Finding::new(Cause::Ok, None, message)
    }

    /// Exec succeeds, but the user sees `error` from what runs next.
    fn starts(cause: Cause, message: impl Into<String>, error: impl Into<String>) -> Finding {
        let mut f = Finding::new(cause, None, message);
        f.error = Some(error.into());
        f
    }

    fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = Some(fix.into());
        self
    }

    fn note(mut self, note: impl Into<String>) -> Finding {
        self.notes.push(note.into());
        self
    }

    fn is_ok(&self) -> bool {
        self.cause == Cause::Ok
    }
}

/// Whether a file is checked as exec opens it (path, mount, permission) or was opened
/// already (an `F` interpreter, opened once at registration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opened {
    ByPath,
    AtRegistration,
}

/// Diagnoses files against one view of the host: its arch table, kernel and binfmt_misc
/// (through an [`Inspector`]), and a root directory programs run in.
#[derive(Debug)]
pub struct Diagnoser<'a> {
    inspector: &'a Inspector<'a>,
    machine: &'a dyn Machine,
    root: RootFs<'a>,
    binfmt_dir: PathBuf,
    path_env: OsString,
    ld_prefix: Option<String>,
    mounts: OnceCell<Result<Vec<Mount>, MountsError>>,
    root_arch: OnceCell<Option<String>>,
}

impl<'a> Diagnoser<'a> {
    /// `root` must be on the inspector's machine.
    pub fn new(inspector: &'a Inspector<'a>, root: RootFs<'a>, binfmt_dir: &Path) -> Diagnoser<'a> {
        let machine = inspector.machine();
        Diagnoser {
            inspector,
            machine,
            root,
            binfmt_dir: binfmt_dir.to_path_buf(),
            path_env: machine
                .env("PATH")
                .unwrap_or_else(|| exec::DEFAULT_PATH.into()),
            ld_prefix: machine
                .env("QEMU_LD_PREFIX")
                .map(|p| p.to_string_lossy().into_owned())
                .filter(|p| !p.is_empty()),
            mounts: OnceCell::new(),
            root_arch: OnceCell::new(),
        }
    }

    /// Use `path` (a PATH value) to look commands up instead of the environment's.
    pub fn with_path_env(mut self, path: impl Into<OsString>) -> Diagnoser<'a> {
        self.path_env = path.into();
        self
    }

    fn table(&self) -> &'a ArchTable {
        self.inspector.table()
    }

    /// Diagnose a path (anything with a `/`) or a command looked up in PATH. `Err` only when
    /// a file exists but cannot be read at all (bad input).
    pub fn diagnose(&self, target: &str) -> Result<Diagnosis, DiagnoseError> {
        let (finding, exec_path) = if target.contains('/') {
            let inside = self.root.absolute(target);
            let exec_path = if self.root.is_given() {
                inside.clone()
            } else {
                target.to_string()
            };
            (self.examine(&inside, 0, Role::Program)?, Some(exec_path))
        } else {
            match self.lookup_command(target) {
                Some(inside) => (self.examine(&inside, 0, Role::Program)?, Some(inside)),
                None => {
                    let mut f = Finding::new(
                        Cause::NotFound,
                        Some(Errno::ENOENT),
                        format!(
                            "there is no command {target} in PATH ({}){}",
                            self.path_env.to_string_lossy(),
                            self.inside_root()
                        ),
                    )
                    .fix(format!(
                        "install {target}, give its path (./{target}), or add its directory to PATH"
                    ));
                    f.error = Some(format!("{target}: command not found"));
                    (f, None)
                }
            }
        };
        Ok(Diagnosis {
            path: target.to_string(),
            ok: finding.is_ok(),
            cause: finding.cause,
            message: finding.message,
            fix: finding.fix,
            error: finding.error,
            errno: finding.errno,
            resolved: finding.resolved.map(|p| p.display().to_string()),
            root: self
                .root
                .is_given()
                .then(|| self.root.dir().display().to_string()),
            format: finding.format,
            platform: finding.platform,
            handler: finding.handler,
            chain: finding.chain,
            notes: finding.notes,
            exec_path,
        })
    }

    /// The first PATH entry holding `cmd`, as a path inside the root. An entry that exists
    /// but may not be executed is kept only if no later one may (execvp does the same).
    fn lookup_command(&self, cmd: &str) -> Option<String> {
        let look = |candidate: &Path| match self.root.resolve(&candidate.to_string_lossy()) {
            Lookup::Found(host) if self.is_file(&host) => {
                if self.machine.may_execute(&host) {
                    Candidate::Executable
                } else {
                    Candidate::NotExecutable
                }
            }
            _ => Candidate::Absent,
        };
        exec::search_path(OsStr::new(cmd), &self.path_env, look)
            .ok()
            .map(|found| self.root.absolute(&found.to_string_lossy()))
    }

    /// A host path that names a regular file, symlinks followed.
    fn is_file(&self, host: &Path) -> bool {
        self.machine.stat(host).is_ok_and(|m| m.is_file())
    }

    /// Look `path` up inside the root, then examine what it names.
    fn examine(&self, path: &str, depth: usize, role: Role) -> Result<Finding, DiagnoseError> {
        let link = Link {
            role,
            path: path.to_string(),
        };
        let mut f = if depth > MAX_DEPTH {
            self.too_deep(path, role)
        } else {
            match self.root.resolve(path) {
                Lookup::Found(host) => {
                    self.examine_file(path, &host, depth, role, Opened::ByPath)?
                }
                other => self.not_found(path, other),
            }
        };
        f.chain.insert(0, link);
        Ok(f)
    }

    fn too_deep(&self, path: &str, role: Role) -> Finding {
        let cause = match role {
            Role::BinfmtInterpreter => Cause::InterpreterMissing,
            _ => Cause::ShebangInterpreterMissing,
        };
        Finding::new(
            cause,
            Some(Errno::ELOOP),
            format!(
                "exec is passed from interpreter to interpreter more than {MAX_DEPTH} times before {path}; the kernel gives up (a binfmt_misc rule that matches its own interpreter does this)"
            ),
        )
        .fix("remove the entry whose rule matches its own interpreter (binfmt-setup status lists them), or shorten the #! chain")
    }

    fn not_found(&self, path: &str, lookup: Lookup) -> Finding {
        let place = self.where_();
        match lookup {
            Lookup::Found(_) => Finding::ok(""),
            Lookup::Missing { at, link } => {
                let mut message = if at == path {
                    format!("{path} does not exist {place}")
                } else {
                    format!("{path} does not exist {place}: there is no {at}")
                };
                let mut fix = "check the path".to_string();
                if let Some((name, target)) = link {
                    message.push_str(&format!(" (the symlink {name} points to {target})"));
                    if self.root.is_given() && target.starts_with('/') {
                        message.push_str(", and absolute symlinks are resolved inside the root");
                    }
                    fix = format!("repair the symlink {name}, or put {target} in place");
                }
                Finding::new(Cause::NotFound, Some(Errno::ENOENT), message).fix(fix)
            }
            Lookup::NotDir { at } => Finding::new(
                Cause::NotFound,
                Some(Errno::ENOTDIR),
                format!("{path} cannot exist {place}: {at} is not a directory"),
            )
            .fix("check the path"),
            Lookup::Loop { at } => Finding::new(
                Cause::NotFound,
                Some(Errno::ELOOP),
                format!("{path} cannot be found {place}: the symlinks at {at} form a loop"),
            )
            .fix("repair the symlinks"),
            Lookup::Denied { at, errno } => Finding::new(
                Cause::NotExecutable,
                Some(errno),
                format!("{path} cannot be reached: {at}: {}", errno.desc()),
            )
            .fix(format!(
                "give search (x) permission on the directories on the way to {path}"
            )),
        }
    }

    /// Examine a file that exists (`host` is its path on the host, `path` as seen inside).
    fn examine_file(
        &self,
        path: &str,
        host: &Path,
        depth: usize,
        role: Role,
        opened: Opened,
    ) -> Result<Finding, DiagnoseError> {
        let meta = self
            .machine
            .stat(host)
            .map_err(|error| DiagnoseError::Stat {
                path: path.to_string(),
                error,
            })?;
        if !meta.is_file() {
            return Ok(Finding::new(
                Cause::NotExecutable,
                Some(Errno::EACCES),
                format!("{path} is {}, not a program", meta.kind.words()),
            )
            .fix("give the path of a program file"));
        }
        if opened == Opened::ByPath {
            if let Some(f) = self.access_problem(path, host, &meta) {
                return Ok(f);
            }
        }
        // A path resolved inside the root holds no symlink; one found now was swapped in.
        let (file, head, len) = match opened {
            Opened::ByPath => read_head_resolved(self.machine, host)?,
            Opened::AtRegistration => read_head(self.machine, host)?,
        };
        let format = format::sniff(&head);
        // binfmt_misc is asked before the kernel's own script and ELF loaders.
        let mut f = match self.inspector.binfmt().handler_for(Path::new(path), &head) {
            Some(entry) => self.via_handler(entry, path, &file, &head, len, format, depth)?,
            None => match format {
                Format::Elf => self.elf(path, host, &file, &head, len, role)?,
                Format::Script => self.script(path, host, &head, depth)?,
                Format::Macho => self.macho(&head),
                Format::Pe => self.pe(&head),
                Format::Unknown => self.unknown(path, host, &head, len),
            },
        };
        f.resolved.get_or_insert_with(|| host.to_path_buf());
        f.format.get_or_insert(format);
        Ok(f)
    }

    /// The checks exec makes when it opens a file: the mount may not forbid exec, and the
    /// caller needs execute permission.
    fn access_problem(&self, path: &str, host: &Path, meta: &Meta) -> Option<Finding> {
        let mounts = self.mounts.get_or_init(|| self.machine.mounts());
        let (noexec, point) = mounts::noexec(self.machine, mounts, host);
        if noexec {
            let (on, fix) = match point {
                Some((p, fstype)) => (
                    format!("{} ({fstype})", p.display()),
                    format!(
                        "mount -o remount,exec {}, or move {path} to a filesystem mounted without noexec",
                        p.display()
                    ),
                ),
                None => (
                    "its filesystem".to_string(),
                    format!("move {path} to a filesystem mounted without noexec"),
                ),
            };
            return Some(
                Finding::new(
                    Cause::NoexecMount,
                    Some(Errno::EACCES),
                    format!(
                        "{path} lies on {on}, which is mounted noexec: the kernel runs nothing from there, whatever its permissions"
                    ),
                )
                .fix(fix),
            );
        }
        if self.machine.may_execute(host) {
            return None;
        }
        let me = self.machine.credentials();
        let (why, fix) =
            explain_exec_bits(meta.mode, meta.uid, meta.gid, me.euid, me.egid, &me.groups);
        let shown = self.host_shown(host);
        Some(
            Finding::new(
                Cause::NotExecutable,
                Some(Errno::EACCES),
                format!("{path} may not be executed: {why}"),
            )
            .fix(fix.replace("FILE", &shown)),
        )
    }

    /// A path as the user on the host would type it in a fix.
    fn host_shown(&self, host: &Path) -> String {
        host.display().to_string()
    }

    /// " inside ROOT", or nothing.
    fn inside_root(&self) -> String {
        if self.root.is_given() {
            format!(" inside {}", self.root.dir().display())
        } else {
            String::new()
        }
    }

    /// "in the root ROOT" or "on this system".
    fn where_(&self) -> String {
        if self.root.is_given() {
            format!("in the root {}", self.root.dir().display())
        } else {
            "on this system".to_string()
        }
    }

    fn host_arch(&self) -> String {
        let host = self.inspector.host();
        host.arch.clone().unwrap_or_else(|| host.machine.clone())
    }

    /// The architecture programs should be built for: the root's (from its /bin/sh), else
    /// the host's.
    fn target_arch(&self) -> Option<String> {
        if !self.root.is_given() {
            return self.inspector.host().arch.clone();
        }
        self.root_arch
            .get_or_init(|| {
                ["/bin/sh", "/bin/busybox", "/usr/bin/env"]
                    .iter()
                    .find_map(|p| self.arch_of(p))
            })
            .clone()
    }

    fn arch_of(&self, path: &str) -> Option<String> {
        let Lookup::Found(host) = self.root.resolve(path) else {
            return None;
        };
        let (file, head, len) = read_head_resolved(self.machine, &host).ok()?;
        let info = elf::read(&file, &head, len).ok()?;
        elf::name(&info, self.table()).arch
    }

    /// "or rebuild it for arm64 (Go: GOARCH=arm64)", when the target differs from `arch`.
    fn rebuild_hint(&self, arch: &str) -> String {
        match self.target_arch() {
            Some(t) if t != arch => format!(", or rebuild it for {t}{}", go_hint(&t)),
            _ => String::new(),
        }
    }

    /// An ELF handed to the kernel's own loader.
    fn elf(
        &self,
        path: &str,
        on_host: &Path,
        file: &Handle,
        head: &[u8],
        len: u64,
        role: Role,
    ) -> Result<Finding, DiagnoseError> {
        let info = match elf::read(file, head, len) {
            Ok(info) => info,
            Err(e) => return self.damaged_elf(path, head, len, e, None),
        };
        let naming = elf::name(&info, self.table());
        let arch_name = naming.arch.clone();
        let what = program_words(&info, arch_name.as_deref(), naming.platform.as_deref());
        let host = self.host_arch();
        let mut f = match self.inspector.elf_verdict(&info, arch_name.as_deref()) {
            ElfVerdict::NotProgram(why) => {
                let fix = match info.e_type {
                    1 => "link the object into a program",
                    _ => "run the program this file came from, not this file",
                };
                Finding::new(Cause::NotABinary, Some(Errno::ENOEXEC), format!("{path}: {why}"))
                    .fix(fix)
            }
            ElfVerdict::ForeignOs(os) => self.foreign_os_elf(&info, os, arch_name.as_deref()),
            ElfVerdict::UnknownMachine(machine) => Finding::new(
                Cause::UnsupportedArch,
                Some(Errno::ENOEXEC),
                format!(
                    "a program for e_machine {machine:#x}, an architecture binfmt-setup knows no emulator for; this host is {host}"
                ),
            )
            .fix(format!(
                "rebuild it for {}",
                self.target_arch().unwrap_or(host.clone())
            )),
            verdict @ (ElfVerdict::Host(_) | ElfVerdict::Compat(_)) => {
                match self.native_loader(&info, &what, arch_name.as_deref(), (path, on_host), role)? {
                    Some(f) => f,
                    None => {
                        let how = match verdict {
                            ElfVerdict::Compat(a) => {
                                format!("this {host} kernel runs {} programs itself", a.name)
                            }
                            _ => format!("this host is {host} and runs it natively"),
                        };
                        Finding::ok(format!("{what}; {how}"))
                    }
                }
            }
            ElfVerdict::Foreign { arch, compat } => {
                self.foreign_arch(path, head, arch, compat, &what)
            }
        };
        f.platform = naming.platform;
        Ok(f)
    }

    /// A file whose ELF headers cannot be read. `handler`: the binfmt_misc entry that takes it
    /// anyway, so exec starts and its interpreter fails.
    fn damaged_elf(
        &self,
        path: &str,
        head: &[u8],
        len: u64,
        e: ElfError,
        handler: Option<&Entry>,
    ) -> Result<Finding, DiagnoseError> {
        let arch = self.table().match_header(head).map(|a| a.name.clone());
        let what = match &arch {
            Some(a) => format!("{} {a} ELF file", article(a)),
            None => "an ELF file".to_string(),
        };
        let (cause, message, fix) = match e {
            ElfError::Truncated(m) => (
                Cause::Truncated,
                format!("{what} cut short: {m}"),
                format!("the file is damaged ({len} bytes): copy, download or build {path} again"),
            ),
            ElfError::Malformed(m) => (
                Cause::NotABinary,
                format!("{what} with damaged headers: {m}"),
                format!("rebuild or copy {path} again"),
            ),
            ElfError::Io(error) => {
                return Err(DiagnoseError::Damaged {
                    path: path.to_string(),
                    error,
                });
            }
        };
        Ok(match handler {
            None => Finding::new(cause, Some(Errno::ENOEXEC), message).fix(fix),
            Some(h) => Finding::starts(
                cause,
                format!("{message}; binfmt_misc handler {} takes it, and its interpreter cannot load it", h.name),
                format!("{}: the program cannot be loaded", interp_name(h)),
            )
            .fix(fix),
        })
    }

    fn foreign_os_elf(&self, info: &ElfInfo, os: &str, arch: Option<&str>) -> Finding {
        let arch_name = arch.unwrap_or("an unknown CPU");
        let native = arch.and_then(|a| self.table().find(a)).is_some_and(|a| {
            self.inspector.host().arch.as_deref() == Some(a.name.as_str())
                || self.inspector.runs_natively(a)
        });
        let fix = format!(
            "build it for Linux (Go: GOOS=linux GOARCH={})",
            self.target_arch().unwrap_or_else(|| arch_name.to_string())
        );
        let os_name = os_display(os);
        if native {
            // Linux's ELF loader does not look at EI_OSABI: the program starts, then its
            // system calls mean other things here.
            Finding::starts(
                Cause::ForeignOs,
                format!(
                    "a {os_name} program for {arch_name} (OS ABI {}); Linux loads it, since the CPU matches, but its {os_name} system calls mean other things to Linux",
                    info.os_abi_name()
                ),
                "it starts, then crashes or misbehaves (often: Illegal instruction, or Bad system call)",
            )
            .fix(fix)
        } else {
            Finding::new(
                Cause::ForeignOs,
                Some(Errno::ENOEXEC),
                format!(
                    "a {os_name} program for {arch_name}; Linux cannot run it, and this host is {}",
                    self.host_arch()
                ),
            )
            .fix(fix)
        }
    }

    /// A Linux ELF of an architecture the kernel does not run itself, and that no handler
    /// took.
    fn foreign_arch(
        &self,
        path: &str,
        head: &[u8],
        arch: &Arch,
        compat: bool,
        what: &str,
    ) -> Finding {
        let host = self.host_arch();
        let name = &arch.name;
        if arch.qemu.is_none() {
            if compat {
                let evidence = match self.inspector.native_probe(arch) {
                    Ok(_) => format!(
                        "a tiny {name} program, run in a private binfmt_misc instance, was refused by this kernel"
                    ),
                    Err(e) => format!(
                        "binfmt-setup could not ask the kernel ({e}), so it assumes the support is missing"
                    ),
                };
                let kernel = if name == "x32" {
                    " (CONFIG_X86_X32_ABI=y, and not booted with syscall.x32=n)"
                } else {
                    ""
                };
                return Finding::new(
                    Cause::HostAbiUnsupported,
                    Some(Errno::ENOEXEC),
                    format!(
                        "{what}; this {host} CPU could run it, but this kernel was built without {name} support ({evidence}), and QEMU cannot emulate {name}"
                    ),
                )
                .fix(format!(
                    "rebuild it for {host}{}, or boot a kernel with {name} support{kernel}",
                    go_hint(&host)
                ));
            }
            return Finding::new(
                Cause::UnsupportedArch,
                Some(Errno::ENOEXEC),
                format!(
                    "{what}; this host is {host}, and QEMU has no user-mode emulator for {name}"
                ),
            )
            .fix(format!(
                "rebuild it for {}",
                self.target_arch().unwrap_or(host.clone())
            ));
        }
        let lacks = if compat {
            format!("this {host} kernel does not run {name} programs itself")
        } else {
            format!("this host is {host}")
        };
        let install = format!("binfmt-setup install --arch {name}");
        let rebuild = self.rebuild_hint(name);
        let snap = self.inspector.binfmt();
        let dir = self.binfmt_dir.display();
        if !snap.mounted {
            return Finding::new(
                Cause::BinfmtNotMounted,
                Some(Errno::ENOEXEC),
                format!(
                    "{what}; {lacks} and needs a binfmt_misc handler for {name}, but binfmt_misc is not mounted at {dir}, so no handler can exist"
                ),
            )
            .fix(format!("{install} (mounts binfmt_misc first){rebuild}"));
        }
        if !snap.enabled {
            return Finding::new(
                Cause::BinfmtDisabled,
                Some(Errno::ENOEXEC),
                format!(
                    "{what}; {lacks}, and binfmt_misc at {dir} is disabled as a whole (status: disabled), so no handler is used"
                ),
            )
            .fix(format!("echo 1 > {dir}/status"));
        }
        let matching = snap.matching(Path::new(path), head);
        if let Some(entry) = matching.first() {
            let names: Vec<&str> = matching.iter().map(|e| e.name.as_str()).collect();
            return Finding::new(
                Cause::HandlerDisabled,
                Some(Errno::ENOEXEC),
                format!(
                    "{what}; {lacks}, and its binfmt_misc handler {} is disabled",
                    names.join(", ")
                ),
            )
            .fix(format!("echo 1 > {dir}/{}", entry.name));
        }
        let mut f = Finding::new(
            Cause::NoHandler,
            Some(Errno::ENOEXEC),
            format!("{what}; {lacks} and has no binfmt_misc handler for {name}"),
        )
        .fix(format!("{install}{rebuild}"));
        // An entry named for this arch whose rule misses this file deserves a word.
        for e in &snap.entries {
            if self.entry_arch(e).is_some_and(|a| a.name == *name) {
                f = f.note(format!(
                    "entry {} is meant for {name} but its rule does not match this file",
                    e.name
                ));
            }
        }
        f
    }

    /// The architecture an entry serves: by its name (`qemu-aarch64`), else by its
    /// interpreter's (`…/qemu-aarch64-static`).
    fn entry_arch(&self, e: &Entry) -> Option<&'a Arch> {
        let table = self.table();
        table
            .find(&e.name)
            .filter(|a| a.qemu.is_some())
            .or_else(|| {
                let file = Path::new(&e.interpreter).file_name()?.to_str()?;
                let cpu = file.strip_prefix("qemu-")?;
                let cpu = cpu.strip_suffix("-static").unwrap_or(cpu);
                table.iter().find(|a| a.qemu.as_deref() == Some(cpu))
            })
    }

    /// A native ELF: its loader (PT_INTERP) must exist inside the root, on an exec-allowed
    /// mount, with execute permission. A handler's interpreter must also find its shared
    /// libraries there (checked only for those: a dynamic QEMU in a foreign root is the case
    /// that matters, and a search that is not the loader's own should not judge every
    /// program).
    fn native_loader(
        &self,
        info: &ElfInfo,
        what: &str,
        arch: Option<&str>,
        (path, on_host): (&str, &Path),
        role: Role,
    ) -> Result<Option<Finding>, DiagnoseError> {
        let Some(loader) = &info.interpreter else {
            return Ok(None);
        };
        let link = Link {
            role: Role::Loader,
            path: loader.clone(),
        };
        let mut f = match self.root.resolve(loader) {
            Lookup::Found(host) => {
                let meta = self
                    .machine
                    .stat(&host)
                    .map_err(|error| DiagnoseError::Stat {
                        path: format!("loader {loader}"),
                        error,
                    })?;
                match self.access_problem(loader, &host, &meta) {
                    Some(f) => f,
                    None if role == Role::BinfmtInterpreter => {
                        let missing = libs::missing(&self.root, on_host, path);
                        let Some(first) = missing.first() else {
                            return Ok(None);
                        };
                        let mut f = Finding::starts(
                            Cause::LoaderMissing,
                            format!(
                                "{what}; its loader {loader} is {}, the libraries it must load are not: {}",
                                self.where_(),
                                missing.join(", ")
                            ),
                            format!(
                                "{path}: error while loading shared libraries: {first}: cannot open shared object file: No such file or directory"
                            ),
                        );
                        f.libs = missing;
                        f
                    }
                    None => return Ok(None),
                }
            }
            Lookup::Denied { .. } => self.not_found(loader, self.root.resolve(loader)),
            other => {
                let errno = match other {
                    Lookup::NotDir { .. } => Errno::ENOTDIR,
                    Lookup::Loop { .. } => Errno::ELOOP,
                    _ => Errno::ENOENT,
                };
                self.loader_missing(loader, what, arch, Some(errno), None)
            }
        };
        f.chain.insert(0, link);
        Ok(Some(f))
    }

    /// LOADER_MISSING: the kernel says ENOENT (`errno`), or QEMU, which opens the loader
    /// itself, prints it (`emulator`).
    fn loader_missing(
        &self,
        loader: &str,
        what: &str,
        arch: Option<&str>,
        errno: Option<Errno>,
        emulator: Option<&str>,
    ) -> Finding {
        let place = self.where_();
        let consequence = match emulator {
            None => "so exec reports \"No such file or directory\" although the program exists",
            Some(_) => "so the emulator starts but cannot load the program",
        };
        let mut message = format!("{what}; its loader {loader} is not {place}, {consequence}");
        if let (Some(t), Some(a)) = (self.target_arch(), arch) {
            if self.root.is_given() && t != a {
                message.push_str(&format!(
                    "; the root looks like an {t} system, and this program is for {a}"
                ));
            }
        }
        let mut fix = loader_fix(loader, arch.and_then(|a| self.table().find(a)));
        if let Some(a) = arch {
            if let Some(t) = self
                .target_arch()
                .filter(|t| t != a && self.root.is_given())
            {
                fix = format!("rebuild it for {t}{}, or {fix}", go_hint(&t));
            }
        }
        match emulator {
            None => {
                Finding::new(Cause::LoaderMissing, errno.or(Some(Errno::ENOENT)), message).fix(fix)
            }
            Some(emu) => Finding::starts(
                Cause::LoaderMissing,
                message,
                format!("{emu}: Could not open '{loader}': No such file or directory"),
            )
            .fix(fix),
        }
    }

    /// The newest enabled binfmt_misc entry that matches takes the file: its interpreter must
    /// be usable from inside the root, and (for QEMU) the program's own loader too.
    #[allow(clippy::too_many_arguments)]
    fn via_handler(
        &self,
        entry: &Entry,
        path: &str,
        file: &Handle,
        head: &[u8],
        len: u64,
        format: Format,
        depth: usize,
    ) -> Result<Finding, DiagnoseError> {
        let fixed = entry.has_flag('F');
        let interp = entry.interpreter.as_str();
        let arch = self.entry_arch(entry);
        let flags = if entry.flags.is_empty() {
            "no flags".to_string()
        } else {
            format!("flags {}", entry.flags)
        };
        let by = format!(
            "binfmt_misc handler {} runs it with {interp} ({flags})",
            entry.name
        );
        // What the file is, when it is an ELF we can name.
        let info = (format == Format::Elf)
            .then(|| elf::read(file, head, len))
            .transpose();
        let what = match &info {
            Ok(Some(i)) => {
                let n = elf::name(i, self.table());
                program_words(i, n.arch.as_deref(), n.platform.as_deref())
            }
            _ => format!("{} {} file", article(format.as_str()), format.as_str()),
        };
        let install = match arch {
            Some(a) if Some(entry.name.clone()) == a.entry_name() => {
                format!("binfmt-setup install --arch {}", a.name)
            }
            Some(a) => format!("binfmt-setup install --arch {} --replace-foreign", a.name),
            None => format!("re-register {} with an interpreter that exists", entry.name),
        };

        // 1. The interpreter.
        let inner = if fixed {
            if self.machine.stat(Path::new(interp)).is_ok() {
                let mut f = self.examine_file(
                    interp,
                    Path::new(interp),
                    depth + 1,
                    Role::BinfmtInterpreter,
                    Opened::AtRegistration,
                )?;
                f.chain.insert(
                    0,
                    Link {
                        role: Role::BinfmtInterpreter,
                        path: interp.to_string(),
                    },
                );
                f
            } else {
                Finding::ok("").note(format!(
                    "{interp} no longer exists on this host, but with F the kernel keeps the file it opened at registration"
                ))
            }
        } else {
            self.examine(interp, depth + 1, Role::BinfmtInterpreter)?
        };
        let mut notes = inner.notes.clone();
        if !inner.is_ok() {
            let mut f = match inner.cause {
                Cause::NotFound => {
                    let on_host = self.root.is_given() && self.is_file(Path::new(interp));
                    if on_host {
                        Finding::new(
                            Cause::InterpreterNotInRoot,
                            inner.errno,
                            format!(
                                "{what}; {by}, but without F the kernel opens {interp} at each exec from inside the root, and {} has no {interp} (this host has it)",
                                self.root.dir().display()
                            ),
                        )
                        .fix(format!(
                            "{install} (registers with F: the interpreter is opened once, outside any root), or copy it in: cp {interp} {}",
                            self.root.on_host(interp).display()
                        ))
                    } else {
                        Finding::new(
                            Cause::InterpreterMissing,
                            inner.errno,
                            format!(
                                "{what}; {by}, but {interp} does not exist{}",
                                if self.root.is_given() {
                                    " on this host or in the root"
                                } else {
                                    ""
                                }
                            ),
                        )
                        .fix(if arch.is_some() {
                            format!("apt-get install qemu-user-static && {install}")
                        } else {
                            install.clone()
                        })
                    }
                }
                Cause::LoaderMissing => {
                    let loader = inner
                        .chain
                        .iter()
                        .find(|l| l.role == Role::Loader)
                        .map(|l| l.path.clone())
                        .unwrap_or_default();
                    let fix = match arch {
                        Some(_) => format!("apt-get install qemu-user-static && {install}"),
                        None => format!(
                            "register {} with a statically linked interpreter",
                            entry.name
                        ),
                    };
                    let lacking = if inner.libs.is_empty() {
                        format!("its own loader {loader} is not {}", self.where_())
                    } else {
                        format!(
                            "though its loader {loader} is {}, its libraries are not: {}",
                            self.where_(),
                            inner.libs.join(", ")
                        )
                    };
                    let mut f = Finding::new(
                        Cause::InterpreterDynamic,
                        inner.errno,
                        format!(
                            "{what}; {by}, but {interp} is dynamically linked and {lacking}{}",
                            if fixed {
                                ": F spares the interpreter's path, not its loader and libraries"
                            } else {
                                ""
                            }
                        ),
                    )
                    .fix(fix);
                    f.error = inner.error.clone();
                    f
                }
                _ => {
                    let mut f = inner.clone();
                    f.message =
                        format!("{what}; {by}, and the interpreter fails: {}", inner.message);
                    f
                }
            };
            f.chain = inner.chain;
            f.handler = Some(entry.name.clone());
            f.notes.append(&mut notes);
            return Ok(f);
        }
        if fixed && !self.root.is_given() && is_dynamic(self.machine, Path::new(interp)) {
            notes.push(format!(
                "{interp} is dynamically linked: with F it works here, but inside a container or chroot without its loader and libraries it fails (INTERPRETER_DYNAMIC; check with --root); qemu-user-static avoids this"
            ));
        }

        // 2. What QEMU then does with the program: it loads the ELF and its loader itself.
        let is_qemu = arch.is_some();
        let mut f = match (is_qemu, info) {
            (true, Err(e)) => self.damaged_elf(path, head, len, e, Some(entry))?,
            (true, Ok(Some(info))) if !info.is_linux() => {
                let n = elf::name(&info, self.table());
                Finding::starts(
                    Cause::ForeignOs,
                    format!(
                        "a {} program for {}; {by}, but QEMU emulates Linux system calls only",
                        os_display(info.os()),
                        n.arch.as_deref().unwrap_or("an unknown CPU")
                    ),
                    "it starts, then crashes or misbehaves",
                )
                .fix(format!(
                    "build it for Linux (Go: GOOS=linux GOARCH={})",
                    n.arch.as_deref().unwrap_or("…")
                ))
            }
            (true, Ok(Some(info))) => match &info.interpreter {
                Some(loader) if !self.emulated_loader_present(loader, arch) => {
                    let n = elf::name(&info, self.table());
                    let mut f = self.loader_missing(
                        loader,
                        &format!("{what}; {by}"),
                        n.arch.as_deref(),
                        None,
                        Some(interp_name(entry).as_str()),
                    );
                    f.chain.push(Link {
                        role: Role::Loader,
                        path: loader.clone(),
                    });
                    f
                }
                _ => Finding::ok(format!("{what}; {by}")),
            },
            _ => Finding::ok(format!("{what}; {by}")),
        };
        f.handler = Some(entry.name.clone());
        f.notes.append(&mut notes);
        if f.platform.is_none() && format == Format::Elf {
            if let Ok(info) = elf::read(file, head, len) {
                f.platform = elf::name(&info, self.table()).platform;
            }
        }
        Ok(f)
    }

    /// QEMU looks for an emulated program's loader under its prefix (QEMU_LD_PREFIX, else
    /// Debian's /etc/qemu-binfmt/<cpu>), then at the path itself, both inside the root.
    fn emulated_loader_present(&self, loader: &str, arch: Option<&Arch>) -> bool {
        let prefix = self.ld_prefix.clone().or_else(|| {
            arch.and_then(|a| a.qemu.as_ref())
                .map(|cpu| format!("/etc/qemu-binfmt/{cpu}"))
        });
        let found = |p: &str| matches!(self.root.resolve(p), Lookup::Found(h) if self.is_file(&h));
        prefix.is_some_and(|pre| found(&format!("{pre}{loader}"))) || found(loader)
    }

    /// A `#!` script: the kernel runs its interpreter with the script's path.
    fn script(
        &self,
        path: &str,
        host: &Path,
        head: &[u8],
        depth: usize,
    ) -> Result<Finding, DiagnoseError> {
        let Some(sb) = format::shebang(head) else {
            return Ok(Finding::new(
                Cause::NotABinary,
                Some(Errno::ENOEXEC),
                format!("{path} starts with '#!' but names no interpreter"),
            )
            .fix("write the interpreter after '#!', e.g. #!/bin/sh"));
        };
        let sed = format!("sed -i 's/\\r$//' {}", self.host_shown(host));
        let interp = sb.interpreter.as_str();
        if sb.crlf {
            let (k_interp, k_arg) = kernel_shebang(head);
            if k_arg.is_none() {
                // The kernel keeps the CR: it looks for "/bin/sh\r".
                if !matches!(self.root.resolve(&k_interp), Lookup::Found(_)) {
                    let without_cr = if matches!(self.root.resolve(interp), Lookup::Found(_)) {
                        format!(" (only {interp} does)")
                    } else {
                        String::new()
                    };
                    let mut f = Finding::new(
                        Cause::ShebangCrlf,
                        Some(Errno::ENOENT),
                        format!(
                            "a script saved with Windows line endings (CR LF): the kernel looks for the interpreter '{interp}\\r', with a carriage return, which does not exist{without_cr}"
                        ),
                    )
                    .fix(format!("{sed}   (or: dos2unix {})", self.host_shown(host)));
                    f.error = Some(format!(
                        "No such file or directory (a shell says: {path}: {interp}^M: bad interpreter)"
                    ));
                    return Ok(f);
                }
            } else {
                let inner = self.examine(interp, depth + 1, Role::ShebangInterpreter)?;
                if inner.is_ok() {
                    let arg = k_arg.unwrap_or_default();
                    let shown_arg = arg.replace('\r', "\\r");
                    let error = if is_env(interp) {
                        format!("{interp}: '{shown_arg}': No such file or directory")
                    } else {
                        format!("{interp} fails on its argument '{shown_arg}'")
                    };
                    let mut f = Finding::starts(
                        Cause::ShebangCrlf,
                        format!(
                            "a script saved with Windows line endings (CR LF): {interp} starts, but is given '{shown_arg}', carriage return included"
                        ),
                        error,
                    )
                    .fix(format!("{sed}   (or: dos2unix {})", self.host_shown(host)));
                    f.chain = inner.chain;
                    return Ok(f);
                }
            }
        }
        let inner = self.examine(interp, depth + 1, Role::ShebangInterpreter)?;
        let mut f = match inner.cause {
            Cause::NotFound => {
                let mut f = inner.clone();
                f.cause = Cause::ShebangInterpreterMissing;
                f.message = format!(
                    "a script for {interp}, which does not exist {}",
                    self.where_()
                );
                f.fix = Some(format!(
                    "install {interp}{}{}, or correct the '#!' line of {path}",
                    self.inside_root(),
                    package_hint(interp)
                ));
                f.error = Some(format!(
                    "No such file or directory (a shell says: {path}: {interp}: bad interpreter)"
                ));
                f
            }
            Cause::Ok => match sb.argument.as_deref().filter(|_| is_env(interp)) {
                Some(arg) => self.env_command(path, interp, arg, inner.clone(), depth)?,
                None => Finding::ok(format!("a script run by {interp}: {}", inner.message)),
            },
            _ => {
                let mut f = inner.clone();
                f.message = format!("a script run by {interp}; {}", inner.message);
                f
            }
        };
        f.chain = inner.chain;
        if let Some(p) = inner.platform {
            f.platform.get_or_insert(p);
        }
        f.resolved = None;
        f.format = None;
        Ok(f)
    }

    /// `#!/usr/bin/env CMD`: env starts, then looks CMD up in PATH itself.
    fn env_command(
        &self,
        path: &str,
        env: &str,
        arg: &str,
        env_finding: Finding,
        depth: usize,
    ) -> Result<Finding, DiagnoseError> {
        let arg = arg.strip_prefix("-S").map(str::trim_start).unwrap_or(arg);
        let Some(cmd) = arg
            .split_whitespace()
            .next()
            .filter(|c| !c.starts_with('-') && !c.contains('='))
        else {
            return Ok(Finding::ok(format!(
                "a script run by {env} {arg}: {}",
                env_finding.message
            )));
        };
        let found = if cmd.contains('/') {
            Some(cmd.to_string())
        } else {
            self.lookup_command(cmd)
        };
        let Some(cmd_path) = found else {
            let mut f = Finding::starts(
                Cause::ShebangInterpreterMissing,
                format!(
                    "a script run by '{env} {cmd}', and there is no {cmd} in PATH{}",
                    self.inside_root()
                ),
                format!("{env}: '{cmd}': No such file or directory"),
            )
            .fix(format!(
                "install {cmd}{}{}, or correct the '#!' line of {path}",
                self.inside_root(),
                package_hint(cmd)
            ));
            f.chain = env_finding.chain;
            return Ok(f);
        };
        let inner = self.examine(&cmd_path, depth + 1, Role::EnvCommand)?;
        if inner.is_ok() {
            return Ok(Finding::ok(format!(
                "a script run by {env} {cmd} ({cmd_path}): {}",
                inner.message
            )));
        }
        // env itself started, so exec of the script succeeded; env reports the failure.
        let mut f = inner.clone();
        f.message = format!("a script run by {env} {cmd}; {}", inner.message);
        f.error = Some(format!(
            "{env}: '{cmd}': {}",
            inner.error.clone().unwrap_or_default()
        ));
        f.errno = None;
        let mut chain = env_finding.chain;
        chain.extend(inner.chain);
        f.chain = chain;
        Ok(f)
    }

    fn macho(&self, head: &[u8]) -> Finding {
        let archs = format::macho_slices(head)
            .map(|s| {
                s.iter()
                    .map(|s| s.arch.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_else(|_| "an unknown CPU".into());
        Finding::new(
            Cause::ForeignOs,
            Some(Errno::ENOEXEC),
            format!("a macOS (Mach-O) program for {archs}; Linux cannot run Mach-O files"),
        )
        .fix(format!(
            "build it for Linux (Go: GOOS=linux GOARCH={})",
            self.target_arch().unwrap_or_else(|| "…".into())
        ))
    }

    fn pe(&self, head: &[u8]) -> Finding {
        let arch = format::pe_info(head)
            .map(|p| p.arch)
            .unwrap_or_else(|_| "an unknown CPU".into());
        Finding::new(
            Cause::ForeignOs,
            Some(Errno::ENOEXEC),
            format!(
                "a Windows (PE) program for {arch}; Linux runs Windows programs only through Wine, and no binfmt_misc handler takes it"
            ),
        )
        .fix(format!(
            "build it for Linux (Go: GOOS=linux GOARCH={}), or run it with wine",
            self.target_arch().unwrap_or_else(|| "…".into())
        ))
    }

    fn unknown(&self, path: &str, host: &Path, head: &[u8], len: u64) -> Finding {
        let shown = self.host_shown(host);
        if len == 0 {
            return Finding::new(
                Cause::NotABinary,
                Some(Errno::ENOEXEC),
                format!("{path} is empty"),
            )
            .fix(format!("copy or build {path} again"));
        }
        let text = !head.is_empty()
            && head.iter().all(|&b| {
                b == b'\n' || b == b'\r' || b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80
            });
        if text {
            Finding::new(
                Cause::NotABinary,
                Some(Errno::ENOEXEC),
                format!(
                    "{path} is a text file without a '#!' line: the kernel cannot run it (a shell would run it as a shell script; exec does not)"
                ),
            )
            .fix(format!(
                "add a first line naming its interpreter: sed -i '1i #!/bin/sh' {shown}"
            ))
        } else {
            Finding::new(
                Cause::NotABinary,
                Some(Errno::ENOEXEC),
                format!(
                    "{path} is neither a program nor a script the kernel knows, and no binfmt_misc handler takes it"
                ),
            )
            .fix("run it with the program it belongs to")
        }
    }
}

/// Why execute permission is refused, from the mode bits, and the fix (with `FILE` to fill
/// in). Linux uses the owner's bits for the owner, the group's for a member, else others'.
fn explain_exec_bits(
    mode: u32,
    owner: u32,
    group: u32,
    euid: u32,
    egid: u32,
    groups: &[u32],
) -> (String, String) {
    let perm = mode & 0o7777;
    if mode & 0o111 == 0 {
        return (
            format!("it has no execute permission at all (mode {perm:04o})"),
            "chmod +x FILE".into(),
        );
    }
    if euid == 0 {
        return (
            format!("mode {perm:04o} allows it, so an ACL or a security module refuses it"),
            "check getfacl FILE and the security module's log".into(),
        );
    }
    let (who, bit, class) = if euid == owner {
        (format!("you own it (uid {owner})"), 0o100, "u")
    } else if egid == group || groups.contains(&group) {
        (format!("you are in its group (gid {group})"), 0o010, "g")
    } else {
        (
            format!(
                "you (uid {euid}) are neither its owner (uid {owner}) nor in its group (gid {group})"
            ),
            0o001,
            "o",
        )
    };
    if mode & bit != 0 {
        return (
            format!(
                "{who} and mode {perm:04o} allows it, so an ACL or a security module refuses it"
            ),
            "check getfacl FILE and the security module's log".into(),
        );
    }
    let whose = match class {
        "u" => "the owner's",
        "g" => "the group's",
        _ => "others'",
    };
    (
        format!("{who}, and {whose} execute bit is not set (mode {perm:04o})"),
        format!("chmod {class}+x FILE"),
    )
}

/// How the kernel splits a `#!` line: interpreter up to the first blank, the rest (blanks
/// trimmed at both ends, but not CR) as one argument. Only trailing blanks and tabs are
/// trimmed, so a CR stays in the last word.
fn kernel_shebang(head: &[u8]) -> (String, Option<String>) {
    let rest = head.strip_prefix(b"#!").unwrap_or(head);
    let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let line = String::from_utf8_lossy(&rest[..end]).into_owned();
    let line = line
        .trim_start_matches([' ', '\t'])
        .trim_end_matches([' ', '\t']);
    match line.find([' ', '\t']) {
        Some(i) => {
            let arg = line[i..].trim_start_matches([' ', '\t']);
            (
                line[..i].to_string(),
                (!arg.is_empty()).then(|| arg.to_string()),
            )
        }
        None => (line.to_string(), None),
    }
}

fn is_env(interp: &str) -> bool {
    Path::new(interp).file_name().is_some_and(|n| n == "env")
}

/// "an arm64 program (linux/arm64, static)".
fn program_words(info: &ElfInfo, arch: Option<&str>, platform: Option<&str>) -> String {
    let arch = arch.unwrap_or("unknown-architecture");
    let linking = match &info.interpreter {
        Some(l) => format!("loader {l}"),
        None if info.is_static() => "static".to_string(),
        None => "no loader".to_string(),
    };
    let platform = platform.map(|p| format!("{p}, ")).unwrap_or_default();
    format!("{} {arch} program ({platform}{linking})", article(arch))
}

/// "a" or "an", by how the word is said: "an amd64", "an s390x", "a riscv64", "a 386".
fn article(word: &str) -> &'static str {
    let w = word.to_ascii_lowercase();
    let vowel_sound = w.starts_with(['a', 'e', 'i', 'o', 'u', 'x'])
        || w.starts_with("s390")
        || w.starts_with("m68k")
        || w.starts_with("sh4")
        || w.starts_with("hppa")
        || w == "elf";
    if vowel_sound { "an" } else { "a" }
}

fn os_display(os: &str) -> &str {
    match os {
        "freebsd" => "FreeBSD",
        "netbsd" => "NetBSD",
        "openbsd" => "OpenBSD",
        "solaris" => "Solaris",
        "hpux" => "HP-UX",
        "aix" => "AIX",
        "irix" => "IRIX",
        "hurd" => "GNU Hurd",
        other => other,
    }
}

/// " (Go: GOARCH=arm64)" for architectures Go names the same way Docker does.
fn go_hint(arch: &str) -> String {
    const GO: &[&str] = &[
        "amd64", "386", "arm64", "arm", "ppc64le", "ppc64", "s390x", "riscv64", "mips", "mipsle",
        "mips64", "mips64le", "loong64",
    ];
    if GO.contains(&arch) {
        format!(" (Go: GOARCH={arch})")
    } else {
        String::new()
    }
}

/// The interpreter's file name, as it prefixes its own error messages.
fn interp_name(entry: &Entry) -> String {
    Path::new(&entry.interpreter)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| entry.interpreter.clone())
}

/// Which package provides a loader: glibc's ld-linux*/ld64.so, musl's ld-musl-*.
fn loader_fix(loader: &str, arch: Option<&Arch>) -> String {
    let file = Path::new(loader)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let static_hint = "or link it statically (Go: CGO_ENABLED=0)";
    if file.starts_with("ld-musl") {
        return format!("install musl in the root (Alpine: apk add musl), {static_hint}");
    }
    if file.starts_with("ld-linux") || file.starts_with("ld64.so") || file.starts_with("ld.so") {
        let pkg = match arch.and_then(|a| a.debian.as_deref()) {
            Some(deb) => format!("libc6:{deb}"),
            None => "libc6".to_string(),
        };
        return format!(
            "install the C library that provides {loader} (Debian: apt-get install {pkg}; inside an image of that architecture: apt-get install libc6), {static_hint}"
        );
    }
    format!("install the package that provides {loader}, {static_hint}")
}

/// " (Debian: apt-get install python3)" for common script interpreters.
fn package_hint(interp: &str) -> String {
    let name = Path::new(interp)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let pkg = match name.as_str() {
        "python3" | "python" => "python3",
        "bash" => "bash",
        "perl" => "perl",
        "ruby" => "ruby",
        "node" | "nodejs" => "nodejs",
        "php" => "php-cli",
        "zsh" => "zsh",
        "ksh" => "ksh",
        "tclsh" => "tcl",
        "lua" => "lua5.4",
        _ => return String::new(),
    };
    format!(" (Debian: apt-get install {pkg})")
}

/// An ELF with a loader (PT_INTERP): it needs that loader and its libraries wherever it runs.
fn is_dynamic(machine: &dyn Machine, path: &Path) -> bool {
    read_head(machine, path)
        .ok()
        .and_then(|(file, head, len)| elf::read(&file, &head, len).ok())
        .is_some_and(|info| !info.is_static())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cause_codes_are_the_designed_strings() {
        for c in Cause::ALL {
            let json = serde_json::to_string(&c).expect("json");
            assert_eq!(json, format!("\"{}\"", c.as_str()));
        }
        assert_eq!(Cause::NotABinary.as_str(), "NOT_A_BINARY");
        assert_eq!(Cause::HostAbiUnsupported.as_str(), "HOST_ABI_UNSUPPORTED");
    }

    #[test]
    fn exec_bits_name_the_class_that_applies() {
        // Owner without x although others have it: Linux uses the owner's bits only.
        let (why, fix) = explain_exec_bits(0o100601, 1000, 1000, 1000, 1000, &[]);
        assert!(why.contains("you own it"), "{why}");
        assert_eq!(fix, "chmod u+x FILE");
        let (why, fix) = explain_exec_bits(0o100740, 0, 50, 1000, 1000, &[50]);
        assert!(why.contains("in its group"), "{why}");
        assert_eq!(fix, "chmod g+x FILE");
        let (why, fix) = explain_exec_bits(0o100750, 0, 0, 1000, 1000, &[]);
        assert!(why.contains("neither its owner"), "{why}");
        assert_eq!(fix, "chmod o+x FILE");
        let (_, fix) = explain_exec_bits(0o100644, 0, 0, 0, 0, &[]);
        assert_eq!(fix, "chmod +x FILE");
    }

    #[test]
    fn kernel_keeps_the_carriage_return() {
        assert_eq!(kernel_shebang(b"#!/bin/sh\r\n"), ("/bin/sh\r".into(), None));
        assert_eq!(
            kernel_shebang(b"#! /usr/bin/env  bash\r\n"),
            ("/usr/bin/env".into(), Some("bash\r".into()))
        );
        assert_eq!(kernel_shebang(b"#!/bin/sh \t\n"), ("/bin/sh".into(), None));
    }

    #[test]
    fn articles_follow_the_sound() {
        assert_eq!(article("amd64"), "an");
        assert_eq!(article("s390x"), "an");
        assert_eq!(article("x32"), "an");
        assert_eq!(article("riscv64"), "a");
        assert_eq!(article("386"), "a");
        assert_eq!(article("mips64le"), "a");
    }

    #[test]
    fn loader_fixes_name_the_package() {
        let table = ArchTable::embedded();
        let arm64 = table.find("arm64");
        assert!(loader_fix("/lib/ld-linux-aarch64.so.1", arm64).contains("libc6:arm64"));
        assert!(loader_fix("/lib/ld-musl-aarch64.so.1", arm64).contains("apk add musl"));
    }
}
