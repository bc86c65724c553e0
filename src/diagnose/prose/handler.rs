//! The words for binfmt_misc handlers: whose interpreter fails and how, and a failed exec
//! explained after the fact.

use std::path::Path;

use nix::errno::Errno;

use super::{Place, Words, install};
use crate::arch::Arch;
use crate::binfmt::Entry;

/// "binfmt_misc handler qemu-aarch64 runs it with /usr/bin/qemu-aarch64-static (flags PF)".
pub(in crate::diagnose) fn handled_by(entry: &Entry) -> String {
    let flags = if entry.flags.is_empty() {
        "no flags".to_string()
    } else {
        format!("flags {}", entry.flags)
    };
    format!(
        "binfmt_misc handler {} runs it with {} ({flags})",
        entry.name, entry.interpreter
    )
}

/// The command that registers a handler for `arch` again: ours by name, or over another
/// owner's entry.
pub(in crate::diagnose) fn reinstall(entry: &Entry, arch: Option<&Arch>) -> String {
    match arch {
        Some(a) if Some(entry.name.clone()) == a.entry_name() => install(&a.name),
        Some(a) => format!("{} --replace-foreign", install(&a.name)),
        None => format!("re-register {} with an interpreter that exists", entry.name),
    }
}

pub(in crate::diagnose) fn fixed_interpreter_gone(interp: &str) -> String {
    format!(
        "{interp} no longer exists on this host, but with F the kernel keeps the file it opened at registration"
    )
}

/// The facts about a handler whose interpreter is the problem.
#[derive(Debug, Clone, Copy)]
pub(in crate::diagnose) struct Handler<'a> {
    /// What the program is.
    pub what: &'a str,
    pub entry: &'a Entry,
    /// The entry's arch, when it is QEMU's for one of the table's.
    pub arch: Option<&'a Arch>,
    pub place: Place<'a>,
}

impl Handler<'_> {
    fn by(&self) -> String {
        handled_by(self.entry)
    }

    fn interp(&self) -> &str {
        &self.entry.interpreter
    }
}

/// Without F the kernel opens the interpreter inside the root, where it is not.
pub(in crate::diagnose) fn interpreter_not_in_root(
    h: Handler,
    root: &Path,
    copy_to: &Path,
) -> Words {
    let interp = h.interp();
    Words::new(format!(
        "{}; {}, but without F the kernel opens {interp} at each exec from inside the root, and {} has no {interp} (this host has it)",
        h.what,
        h.by(),
        root.display()
    ))
    .fix(format!(
        "{} (registers with F: the interpreter is opened once, outside any root), or copy it in: cp {interp} {}",
        reinstall(h.entry, h.arch),
        copy_to.display()
    ))
}

pub(in crate::diagnose) fn interpreter_missing(h: Handler) -> Words {
    let install = reinstall(h.entry, h.arch);
    Words::new(format!(
        "{}; {}, but {} does not exist{}",
        h.what,
        h.by(),
        h.interp(),
        if h.place.root.is_some() {
            " on this host or in the root"
        } else {
            ""
        }
    ))
    .fix(if h.arch.is_some() {
        format!("apt-get install qemu-user-static && {install}")
    } else {
        install
    })
}

/// A dynamically linked interpreter whose loader (`libs` empty) or libraries are absent.
pub(in crate::diagnose) fn interpreter_dynamic(h: Handler, loader: &str, libs: &[String]) -> Words {
    let where_ = h.place.where_();
    let lacking = if libs.is_empty() {
        format!("its own loader {loader} is not {where_}")
    } else {
        format!(
            "though its loader {loader} is {where_}, its libraries are not: {}",
            libs.join(", ")
        )
    };
    let fixed = h.entry.has_flag('F');
    let fix = match h.arch {
        Some(_) => format!(
            "apt-get install qemu-user-static && {}",
            reinstall(h.entry, h.arch)
        ),
        None => format!(
            "register {} with a statically linked interpreter",
            h.entry.name
        ),
    };
    Words::new(format!(
        "{}; {}, but {} is dynamically linked and {lacking}{}",
        h.what,
        h.by(),
        h.interp(),
        if fixed {
            ": F spares the interpreter's path, not its loader and libraries"
        } else {
            ""
        }
    ))
    .fix(fix)
}

pub(in crate::diagnose) fn interpreter_fails(what: &str, entry: &Entry, why: &str) -> String {
    format!(
        "{what}; {}, and the interpreter fails: {why}",
        handled_by(entry)
    )
}

pub(in crate::diagnose) fn dynamic_with_f(interp: &str) -> String {
    format!(
        "{interp} is dynamically linked: with F it works here, but inside a container or chroot without its loader and libraries it fails (INTERPRETER_DYNAMIC; check with --root); qemu-user-static avoids this"
    )
}

/// The interpreter's file name, as it prefixes its own error messages.
pub(in crate::diagnose) fn interp_name(entry: &Entry) -> String {
    Path::new(&entry.interpreter)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| entry.interpreter.clone())
}

// ---- A failed exec, seen afterwards (explain.rs) ----

pub(in crate::diagnose) fn exec_failed(errno: Errno) -> String {
    format!("exec failed: {}", errno.desc())
}

pub(in crate::diagnose) fn exec_failed_with(errno: Errno) -> String {
    format!("exec failed: {} ({errno})", errno.desc())
}

pub(in crate::diagnose) fn ran_binfmt_not_mounted(arch: &str) -> Words {
    Words::new(format!(
        "binfmt_misc is not mounted, so nothing runs {arch} programs"
    ))
    .fix(install(arch))
}

pub(in crate::diagnose) fn ran_binfmt_disabled(arch: &str) -> Words {
    Words::new(format!(
        "binfmt_misc is disabled (its status is 0), so no handler runs {arch} programs"
    ))
    .fix("echo 1 > …/status")
}

/// Enabled when binfmt_misc was read, gone or off when the program ran.
pub(in crate::diagnose) fn ran_handler_went_away(arch: &str, entry: &str) -> Words {
    Words::new(format!(
        "no handler for {arch} in binfmt_misc by the time the probe ran: {entry} was removed or disabled meanwhile"
    ))
    .fix(install(arch))
}

pub(in crate::diagnose) fn ran_handler_disabled(entry: &str) -> Words {
    Words::new(format!("its handler {entry} is disabled")).fix(format!("echo 1 > …/{entry}"))
}

pub(in crate::diagnose) fn ran_no_handler(arch: &str) -> Words {
    Words::new(format!(
        "no handler for {arch} in binfmt_misc: exec gives Exec format error"
    ))
    .fix(install(arch))
}

pub(in crate::diagnose) fn ran_without_f_in_chroot(entry: &Entry, arch: &str) -> Words {
    Words::new(format!(
        "its handler {} has no F flag, so the kernel looks for {} inside the chroot, where it does not exist (No such file or directory); register it with F",
        entry.name, entry.interpreter
    ))
    .fix(install(arch))
}

pub(in crate::diagnose) fn ran_interpreter_missing(entry: &Entry, arch: &str) -> Words {
    Words::new(format!(
        "its handler {} names the interpreter {}, which does not exist (No such file or directory)",
        entry.name, entry.interpreter
    ))
    .fix(install(arch))
}

/// ENOENT for a file that exists: what it needs is missing (`needs`: its loader, or its
/// `#!` interpreter), when the file says.
pub(in crate::diagnose) fn ran_needs_missing(needs: Option<(&str, &str)>) -> Words {
    let base = exec_failed(Errno::ENOENT);
    Words::new(match needs {
        Some((role, path)) => format!("{base}: its {role} {path} is not there"),
        None => base,
    })
}

pub(in crate::diagnose) fn ran_loops() -> Words {
    Words::new("its handler's rule matches its own interpreter, so exec loops (ELOOP)")
        .fix("remove that handler")
}
