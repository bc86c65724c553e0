//! Why a program will not run: the decision tree behind `diagnose`.
//!
//! It follows the kernel's own steps for execve(2), in the kernel's order, one module per
//! layer: look the path up inside `--root`, symlinks included, and refuse a `noexec` mount
//! or missing execute permission (`file`); hand the file to the newest enabled binfmt_misc
//! entry that matches (`handler`), else to the `#!` (`script`) or ELF (`elf`) loader. A
//! script's interpreter, a handler's interpreter and an ELF's loader are examined the same
//! way, recursively. The first step that fails is the cause (`cause`). Each finding predicts
//! what exec returns (an errno, or "starts") so `--run` can check it. The words are in
//! `prose`; every question to the machine goes through `machine::Machine`. Nothing here
//! prints.

mod after;
mod cause;
mod elf;
mod explain;
mod file;
mod handler;
mod libs;
mod mounts;
mod prose;
pub mod root;
pub mod run;
mod script;
pub mod settle;
#[cfg(test)]
mod tests;

use std::cell::OnceCell;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use serde::Serialize;

use crate::arch::ArchTable;
use crate::error::{Class, Classify};
use crate::format::Format;
use crate::inspect::{Inspector, ReadError, read_head_resolved};
use crate::machine::{Machine, Mount, MountsError};
use crate::sys::path::{self as exec, Candidate};

pub use after::{Available, QemuCpu};
pub use cause::Cause;
pub use explain::{Exec, ExecFailure, explain_exec_failure};
pub use root::{Lookup, RootError, RootFs};
pub use run::{RunError, RunOutcome};

use prose::{Place, Words};

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

/// The answer for one file. Field names are the JSON contract (README, `diagnose`).
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
    /// The instruction-set level the program needs, and where that was learnt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub needs: Option<crate::needs::Needs>,
    /// What the CPU it meets (this host's, or QEMU's behind its handler) was proven to run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available: Option<Available>,
    /// The `QEMU_CPU` value that lifts the emulated CPU far enough, and whether a rerun
    /// proved it (ILLEGAL_INSTRUCTION).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qemu_cpu: Option<QemuCpu>,
    /// What was predicted before `--run` showed another cause.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted: Option<Cause>,
    /// The path `--run` executes (inside the root), when there is one.
    #[serde(skip)]
    pub exec_path: Option<String>,
    /// The program's architecture (arch table name), when it is an ELF.
    #[serde(skip)]
    pub arch: Option<String>,
    /// What the program is, in words ("an arm64 program (linux/arm64, static)").
    #[serde(skip)]
    pub what: Option<String>,
}

impl Diagnosis {
    /// Whether a real run bears the prediction out: the same errno; or, when it was to run,
    /// that it ran and ended by itself. A program predicted to run that a signal killed
    /// (SIGILL: an instruction the CPU lacks; SIGSEGV) or that its loader gave up on (exit
    /// 127 with the loader's complaint) did not do what was predicted.
    pub fn agrees(&self, run: &RunOutcome) -> bool {
        if self.errno != run.errno {
            return false;
        }
        if run.errno.is_some() || run.timed_out {
            return true;
        }
        match self.cause {
            Cause::Ok | Cause::SetuidNeedsCredential => {
                run.signal.is_none() && !run.loader_failed()
            }
            Cause::IllegalInstruction => run.signal.as_deref() == Some("SIGILL"),
            Cause::LibraryMissing => run.loader_failed(),
            _ => true,
        }
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
    needs: Option<crate::needs::Needs>,
    available: Option<Available>,
    qemu_cpu: Option<QemuCpu>,
    arch: Option<String>,
    what: Option<String>,
}

impl Finding {
    /// Exec fails with `errno`, or (None) starts and the user sees `words.error`.
    fn new(cause: Cause, errno: Option<Errno>, words: Words) -> Finding {
        Finding {
            cause,
            errno,
            error: words.error.or_else(|| errno.map(|e| e.desc().to_string())),
            message: words.message,
            fix: words.fix,
            chain: Vec::new(),
            format: None,
            platform: None,
            handler: None,
            notes: Vec::new(),
            resolved: None,
            libs: Vec::new(),
            needs: None,
            available: None,
            qemu_cpu: None,
            arch: None,
            what: None,
        }
    }

    /// Exec fails with `errno`.
    fn fails(cause: Cause, errno: Errno, words: Words) -> Finding {
        Finding::new(cause, Some(errno), words)
    }

    /// Exec succeeds, but the user sees `words.error` from what runs next.
    fn starts(cause: Cause, words: Words) -> Finding {
        Finding::new(cause, None, words)
    }

    fn ok(message: impl Into<String>) -> Finding {
        Finding::new(
            Cause::Ok,
            None,
            Words {
                message: message.into(),
                ..Words::default()
            },
        )
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

    /// Diagnose a path (anything with a `/`) or a command looked up in PATH. `Err` only when
    /// a file exists but cannot be read at all (bad input).
    pub fn diagnose(&self, target: &str) -> Result<Diagnosis, DiagnoseError> {
        let binfmt = self.inspector.binfmt();
        tracing::info!(
            "diagnosing {target} {}; binfmt_misc {}, {} entries",
            self.place().where_(),
            match (binfmt.mounted, binfmt.enabled) {
                (false, _) => "not mounted",
                (true, false) => "disabled",
                (true, true) => "enabled",
            },
            binfmt.entries.len()
        );
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
                    let path_env = self.path_env.to_string_lossy();
                    let words = prose::no_such_command(target, &path_env, self.place());
                    (Finding::fails(Cause::NotFound, Errno::ENOENT, words), None)
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
            needs: finding.needs,
            available: finding.available,
            qemu_cpu: finding.qemu_cpu,
            predicted: None,
            exec_path,
            arch: finding.arch,
            what: finding.what,
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

    /// Look `path` up inside the root, then examine what it names: the file, with the link
    /// to it first in the chain.
    fn examine(&self, path: &str, depth: usize, role: Role) -> Result<Finding, DiagnoseError> {
        tracing::debug!("examining {path} ({role:?}, depth {depth})");
        let link = Link {
            role,
            path: path.to_string(),
        };
        let mut f = if depth > MAX_DEPTH {
            let cause = match role {
                Role::BinfmtInterpreter => Cause::InterpreterMissing,
                _ => Cause::ShebangLoop,
            };
            Finding::fails(cause, Errno::ELOOP, prose::too_deep(path))
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

    fn table(&self) -> &'a ArchTable {
        self.inspector.table()
    }

    /// A host path that names a regular file, symlinks followed.
    fn is_file(&self, host: &Path) -> bool {
        self.machine.stat(host).is_ok_and(|m| m.is_file())
    }

    /// Where programs run, for the words.
    fn place(&self) -> Place<'_> {
        Place {
            root: self.root.is_given().then(|| self.root.dir()),
        }
    }

    /// A path as the user on the host would type it in a fix.
    fn host_shown(&self, host: &Path) -> String {
        host.display().to_string()
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
        let info = crate::elf::read(&file, &head, len).ok()?;
        crate::elf::name(&info, self.table()).arch
    }
}
