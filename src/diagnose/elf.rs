//! The ELF layer: what the kernel's own ELF loader does with a program no handler took.
//! Damaged files, programs for another OS, another CPU (which needs a handler), or a second
//! ABI of this CPU the kernel lacks; and a native program's loader (PT_INTERP), which must
//! exist inside the root, as must a handler interpreter's libraries.

use std::path::Path;

use nix::errno::Errno;

use super::prose::{self, Foreign, LoaderMissing};
use super::{Cause, DiagnoseError, Diagnoser, Finding, Link, Lookup, Role, libs};
use crate::arch::Arch;
use crate::binfmt::Entry;
use crate::elf::{self, ElfError, ElfInfo};
use crate::inspect::ElfVerdict;
use crate::machine::Handle;

impl Diagnoser<'_> {
    /// An ELF handed to the kernel's own loader.
    pub(super) fn elf(
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
        let what = prose::program_words(&info, arch_name.as_deref(), naming.platform.as_deref());
        let host = self.host_arch();
        let mut f = match self.inspector.elf_verdict(&info, arch_name.as_deref()) {
            ElfVerdict::NotProgram(why) => Finding::fails(
                Cause::NotABinary,
                Errno::ENOEXEC,
                prose::not_a_program(path, why, info.e_type),
            ),
            ElfVerdict::ForeignOs(os) => self.foreign_os_elf(&info, os, arch_name.as_deref()),
            ElfVerdict::UnknownMachine(machine) => {
                let target = self.target_arch().unwrap_or(host.clone());
                Finding::fails(
                    Cause::UnsupportedArch,
                    Errno::ENOEXEC,
                    prose::unknown_machine(machine, &host, &target),
                )
            }
            verdict @ (ElfVerdict::Host(_) | ElfVerdict::Compat(_)) => {
                let program = (path, on_host);
                match self.native_loader(&info, &what, arch_name.as_deref(), program, role)? {
                    Some(f) => f,
                    None => {
                        let how = match verdict {
                            ElfVerdict::Compat(a) => prose::runs_compat(&host, &a.name),
                            _ => prose::runs_natively(&host),
                        };
                        let mut f = Finding::ok(prose::runs(&what, &how));
                        let arch = arch_name.as_deref().and_then(|a| self.table().find(a));
                        if let (Role::Program, Some(arch)) = (role, arch) {
                            if let Some(n) = self.needs_check(&what, (file, len, &info), arch, None)
                            {
                                if n.is_ok() {
                                    f.needs = n.needs;
                                    f.available = n.available;
                                    f.notes.extend(n.notes);
                                } else {
                                    f = n;
                                }
                            }
                        }
                        f
                    }
                }
            }
            ElfVerdict::Foreign { arch, compat } => {
                self.foreign_arch(path, head, arch, compat, &what)
            }
        };
        f.platform = naming.platform;
        if role == Role::Program {
            if f.arch.is_none() {
                f.arch = arch_name.clone();
            }
            f.what.get_or_insert(what);
        }
        Ok(f)
    }

    /// A file whose ELF headers cannot be read. `handler`: the binfmt_misc entry that takes it
    /// anyway, so exec starts and its interpreter fails.
    pub(super) fn damaged_elf(
        &self,
        path: &str,
        head: &[u8],
        len: u64,
        e: ElfError,
        handler: Option<&Entry>,
    ) -> Result<Finding, DiagnoseError> {
        let arch = self.table().match_header(head).map(|a| a.name.as_str());
        let what = prose::damaged_what(arch);
        let (cause, words) = match e {
            ElfError::Truncated(m) => (Cause::Truncated, prose::truncated(&what, &m, path, len)),
            ElfError::Malformed(m) => (Cause::NotABinary, prose::malformed(&what, &m, path)),
            ElfError::Io(error) => {
                return Err(DiagnoseError::Damaged {
                    path: path.to_string(),
                    error,
                });
            }
        };
        Ok(match handler {
            None => Finding::fails(cause, Errno::ENOEXEC, words),
            Some(h) => Finding::starts(cause, prose::damaged_through_handler(words, h)),
        })
    }

    fn foreign_os_elf(&self, info: &ElfInfo, os: &str, arch: Option<&str>) -> Finding {
        let arch_name = arch.unwrap_or("an unknown CPU");
        let native = arch.and_then(|a| self.table().find(a)).is_some_and(|a| {
            self.inspector.host().arch.as_deref() == Some(a.name.as_str())
                || self.inspector.runs_natively(a)
        });
        let target = self.target_arch().unwrap_or_else(|| arch_name.to_string());
        if native {
            Finding::starts(
                Cause::ForeignOs,
                prose::foreign_os_starts(os, arch_name, &info.os_abi_name(), &target),
            )
        } else {
            Finding::fails(
                Cause::ForeignOs,
                Errno::ENOEXEC,
                prose::foreign_os(os, arch_name, &self.host_arch(), &target),
            )
        }
    }

    /// A Linux ELF of an architecture the kernel does not run itself, and that no handler
    /// took: no emulator for it at all, or binfmt_misc lacks a usable handler.
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
                let probe = self
                    .inspector
                    .native_probe(arch)
                    .map(|_| ())
                    .map_err(|e| e.to_string());
                return Finding::fails(
                    Cause::HostAbiUnsupported,
                    Errno::ENOEXEC,
                    prose::host_abi_unsupported(what, &host, name, probe),
                );
            }
            let target = self.target_arch().unwrap_or(host.clone());
            return Finding::fails(
                Cause::UnsupportedArch,
                Errno::ENOEXEC,
                prose::no_emulator(what, &host, name, &target),
            );
        }
        let lacks = prose::lacks(&host, name, compat);
        let rebuild = prose::rebuild_hint(self.target_arch().as_deref(), name);
        let facts = Foreign {
            what,
            lacks: &lacks,
            arch: name,
            dir: &self.binfmt_dir,
            rebuild: &rebuild,
        };
        let snap = self.inspector.binfmt();
        let fails = |cause, words| Finding::fails(cause, Errno::ENOEXEC, words);
        if !snap.mounted {
            return fails(Cause::BinfmtNotMounted, prose::binfmt_not_mounted(facts));
        }
        if !snap.enabled {
            return fails(Cause::BinfmtDisabled, prose::binfmt_disabled(facts));
        }
        let matching = snap.matching(Path::new(path), head);
        if let Some(entry) = matching.first() {
            let names: Vec<&str> = matching.iter().map(|e| e.name.as_str()).collect();
            let words = prose::handler_disabled(facts, &names, &entry.name);
            return fails(Cause::HandlerDisabled, words);
        }
        let mut f = fails(Cause::NoHandler, prose::no_handler(facts));
        // An entry named for this arch whose rule misses this file deserves a word.
        for e in &snap.entries {
            if self.entry_arch(e).is_some_and(|a| a.name == *name) {
                f = f.note(prose::rule_misses(&e.name, name));
            }
        }
        f
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
                        if missing.is_empty() {
                            return Ok(None);
                        }
                        let words =
                            prose::libraries_missing(what, loader, path, &missing, self.place());
                        let mut f = Finding::starts(Cause::LoaderMissing, words);
                        f.libs = missing;
                        f
                    }
                    None if role == Role::Program => {
                        let arch = arch.and_then(|a| self.table().find(a));
                        match self.libraries(what, on_host, path, arch) {
                            Some(f) => f,
                            None => return Ok(None),
                        }
                    }
                    None => return Ok(None),
                }
            }
            denied @ Lookup::Denied { .. } => self.not_found(loader, denied),
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
    pub(super) fn loader_missing(
        &self,
        loader: &str,
        what: &str,
        arch: Option<&str>,
        errno: Option<Errno>,
        emulator: Option<&str>,
    ) -> Finding {
        let target = self.target_arch();
        // A root built for another architecture than the program's is worth saying.
        let root_arch = match (&target, arch) {
            (Some(t), Some(a)) if self.root.is_given() && t != a => Some(t.as_str()),
            _ => None,
        };
        let words = prose::loader_missing(LoaderMissing {
            what,
            loader,
            arch: arch.and_then(|a| self.table().find(a)),
            root_arch,
            emulator,
            place: self.place(),
        });
        match emulator {
            None => Finding::fails(Cause::LoaderMissing, errno.unwrap_or(Errno::ENOENT), words),
            Some(_) => Finding::starts(Cause::LoaderMissing, words),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::tests::{LD, diagnose, expect};
    use crate::machine::Fake;
    use crate::machine::testing::{dynamic_program, program};

    #[test]
    fn roots_keep_absolute_links_inside_and_name_the_roots_arch() {
        // The root is an arm64 system; the program is an amd64 one whose loader it lacks.
        let m = Fake::new()
            .file("/srv/root/bin/busybox", program("arm64"), 0o755)
            .symlink("/srv/root/bin/sh", "/bin/busybox")
            .file("/srv/root/app", dynamic_program("amd64", LD, &[]), 0o755);
        let d = diagnose(&m, Some("/srv/root"), "/app");
        expect(
            &d,
            Cause::LoaderMissing,
            Some(Errno::ENOENT),
            &["not in the root /srv/root", "looks like an arm64 system"],
            &["rebuild it for arm64 (Go: GOARCH=arm64)"],
        );
        assert_eq!(d.exec_path.as_deref(), Some("/app"));
    }
}
