//! A failed exec explained after the fact, for the commands that run programs themselves
//! (`test`, `run`): from the errno and what binfmt_misc held, the same causes `diagnose`
//! predicts beforehand.

use std::path::Path;

use nix::errno::Errno;

use super::{Cause, prose};
use crate::arch::Arch;
use crate::binfmt::Snapshot;
use crate::elf;
use crate::format;

/// An exec that failed, and what is known of it.
#[derive(Debug, Clone, Copy)]
pub struct Exec<'a> {
    pub errno: Errno,
    /// binfmt_misc as it was read before the program ran.
    pub binfmt: &'a Snapshot,
    /// The path exec was given.
    pub path: &'a Path,
    /// The program's first bytes (or all of them).
    pub head: &'a [u8],
    /// Whether it ran in a chroot, where a handler without `F` cannot find its interpreter.
    pub chrooted: bool,
    /// The architecture the program is for, when the table names it.
    pub arch: Option<&'a Arch>,
}

/// Why it failed, in a user's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecFailure {
    pub cause: Cause,
    pub message: String,
    pub fix: Option<String>,
}

impl ExecFailure {
    /// One line: the message, then the fix in parentheses.
    pub fn sentence(&self) -> String {
        match &self.fix {
            Some(fix) => format!("{} ({fix})", self.message),
            None => self.message.clone(),
        }
    }
}

/// Why `exec.path` failed with `exec.errno`. Errnos the causes do not cover (E2BIG, …) are
/// named as they are, as NOT_EXECUTABLE: exec refused the file.
pub fn explain_exec_failure(exec: &Exec<'_>) -> ExecFailure {
    let said = |cause, words: prose::Words| ExecFailure {
        cause,
        message: words.message,
        fix: words.fix,
    };
    if exec.errno == Errno::ETXTBSY {
        let shown = exec.path.display().to_string();
        return said(Cause::TextBusy, prose::text_busy(&shown, &[]));
    }
    if exec.errno == Errno::ELOOP && format::sniff(exec.head) == format::Format::Script {
        let shown = exec.path.display().to_string();
        return said(
            Cause::ShebangLoop,
            prose::shebang_loop(&shown, std::slice::from_ref(&shown), false),
        );
    }
    let Some(arch) = exec.arch else {
        let cause = match exec.errno {
            Errno::ENOEXEC => Cause::NotABinary,
            Errno::ENOENT => Cause::NotFound,
            _ => Cause::NotExecutable,
        };
        return ExecFailure {
            cause,
            message: prose::exec_failed(exec.errno),
            fix: None,
        };
    };
    let name = arch.name.as_str();
    let snap = exec.binfmt;
    match exec.errno {
        Errno::ENOEXEC if !snap.mounted => {
            said(Cause::BinfmtNotMounted, prose::ran_binfmt_not_mounted(name))
        }
        Errno::ENOEXEC if !snap.enabled => {
            said(Cause::BinfmtDisabled, prose::ran_binfmt_disabled(name))
        }
        Errno::ENOEXEC => match snap.matching(exec.path, exec.head).first() {
            Some(e) if e.enabled => said(
                Cause::NoHandler,
                prose::ran_handler_went_away(name, &e.name),
            ),
            Some(e) => said(Cause::HandlerDisabled, prose::ran_handler_disabled(&e.name)),
            None => said(Cause::NoHandler, prose::ran_no_handler(name)),
        },
        Errno::ENOENT => match snap.handler_for(exec.path, exec.head) {
            Some(e) if !e.has_flag('F') && exec.chrooted => said(
                Cause::InterpreterNotInRoot,
                prose::ran_without_f_in_chroot(e, name),
            ),
            Some(e) => said(
                Cause::InterpreterMissing,
                prose::ran_interpreter_missing(e, name),
            ),
            None => needs_missing(exec.head),
        },
        Errno::ELOOP => said(Cause::InterpreterMissing, prose::ran_loops()),
        other => ExecFailure {
            cause: Cause::NotExecutable,
            message: prose::exec_failed_with(other),
            fix: None,
        },
    }
}

/// ENOENT for a file no handler took: its loader or its `#!` interpreter is missing.
fn needs_missing(head: &[u8]) -> ExecFailure {
    let (cause, needs) = match format::sniff(head) {
        format::Format::Script => (
            Cause::ShebangInterpreterMissing,
            format::shebang(head).map(|sb| ("interpreter", sb.interpreter)),
        ),
        format::Format::Elf => (
            Cause::LoaderMissing,
            elf::read_bytes(head)
                .ok()
                .and_then(|i| i.interpreter)
                .map(|l| ("loader", l)),
        ),
        _ => (Cause::NotFound, None),
    };
    let words = prose::ran_needs_missing(needs.as_ref().map(|(r, p)| (*r, p.as_str())));
    ExecFailure {
        cause,
        message: words.message,
        fix: words.fix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::testing::{arch, entry, program};

    fn explain(errno: Errno, binfmt: &Snapshot, head: &[u8], chrooted: bool) -> ExecFailure {
        explain_exec_failure(&Exec {
            errno,
            binfmt,
            path: Path::new("arm64"),
            head,
            chrooted,
            arch: Some(arch("arm64")),
        })
    }

    fn binfmt(entries: Vec<crate::binfmt::Entry>) -> Snapshot {
        Snapshot {
            mounted: true,
            enabled: true,
            entries,
            unreadable: Vec::new(),
        }
    }

    #[test]
    fn a_busy_file_and_a_looping_script_are_named() {
        let snap = Snapshot::empty();
        let f = explain(Errno::ETXTBSY, &snap, &program("amd64"), false);
        assert_eq!(f.cause, Cause::TextBusy, "{f:?}");
        let f = explain(Errno::ELOOP, &snap, b"#!/x/loop\n", false);
        assert_eq!(f.cause, Cause::ShebangLoop, "{f:?}");
    }

    #[test]
    fn exec_format_errors_name_binfmt_misc_state() {
        let p = program("arm64");
        let f = explain(Errno::ENOEXEC, &Snapshot::empty(), &p, true);
        assert_eq!(f.cause, Cause::BinfmtNotMounted);
        assert!(f.sentence().contains("not mounted"), "{f:?}");
        let off = Snapshot {
            enabled: false,
            ..binfmt(Vec::new())
        };
        let f = explain(Errno::ENOEXEC, &off, &p, true);
        assert_eq!(f.cause, Cause::BinfmtDisabled);
        let f = explain(Errno::ENOEXEC, &binfmt(Vec::new()), &p, true);
        assert_eq!(f.cause, Cause::NoHandler);
        assert!(
            f.sentence().contains("no handler for arm64")
                && f.sentence().contains("binfmt-setup install --arch arm64"),
            "{f:?}"
        );
        let disabled = binfmt(vec![entry("arm64", "/q", "F", false)]);
        let f = explain(Errno::ENOEXEC, &disabled, &p, true);
        assert_eq!(f.cause, Cause::HandlerDisabled);
        assert!(f.sentence().contains("qemu-aarch64 is disabled"), "{f:?}");
        // Enabled when read, yet exec said ENOEXEC: it went away meanwhile.
        let there = binfmt(vec![entry("arm64", "/q", "F", true)]);
        let f = explain(Errno::ENOEXEC, &there, &p, true);
        assert!(
            f.sentence().contains("removed or disabled meanwhile"),
            "{f:?}"
        );
    }

    #[test]
    fn missing_files_name_what_is_missing() {
        let p = program("arm64");
        let without_f = binfmt(vec![entry("arm64", "/usr/bin/q", "", true)]);
        let f = explain(Errno::ENOENT, &without_f, &p, true);
        assert_eq!(f.cause, Cause::InterpreterNotInRoot);
        assert!(f.sentence().contains("no F flag"), "{f:?}");
        let f = explain(Errno::ENOENT, &without_f, &p, false);
        assert_eq!(f.cause, Cause::InterpreterMissing);
        let dynamic = crate::machine::testing::dynamic_program("arm64", "/lib/ld.so.1", &[]);
        let f = explain(Errno::ENOENT, &binfmt(Vec::new()), &dynamic, false);
        assert_eq!(f.cause, Cause::LoaderMissing);
        assert!(f.message.contains("its loader /lib/ld.so.1"), "{f:?}");
        let f = explain(Errno::ELOOP, &without_f, &p, false);
        assert_eq!(f.cause, Cause::InterpreterMissing);
        let f = explain(Errno::ETXTBSY, &without_f, &p, false);
        assert_eq!(f.cause, Cause::TextBusy, "{f:?}");
    }
}
