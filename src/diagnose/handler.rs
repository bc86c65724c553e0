//! The binfmt_misc layer: the newest enabled entry that matches takes the file before the
//! kernel's own loaders do. Its interpreter must be usable from inside the root (opened by
//! path at each exec, or once at registration with `F`), and QEMU must then find the
//! program's own loader.

use std::path::Path;

use super::prose::{self, Handler};
use super::{Cause, DiagnoseError, Diagnoser, Finding, Link, Lookup, Opened, Role};
use crate::arch::Arch;
use crate::binfmt::Entry;
use crate::elf::{self, ElfError, ElfInfo};
use crate::format::Format;
use crate::inspect::read_head;
use crate::machine::{Handle, Machine};

/// The file a handler takes, as read.
pub(super) struct Program<'f> {
    /// As seen inside the root.
    pub path: &'f str,
    /// On the host.
    pub host: &'f Path,
    pub file: &'f Handle,
    pub head: &'f [u8],
    pub len: u64,
    pub format: Format,
    pub meta: crate::machine::Meta,
}

impl Program<'_> {
    /// Its ELF headers, when it is an ELF.
    fn elf(&self) -> Result<Option<ElfInfo>, ElfError> {
        (self.format == Format::Elf)
            .then(|| elf::read(self.file, self.head, self.len))
            .transpose()
    }
}

impl<'a> Diagnoser<'a> {
    /// `entry` takes `program`: first its interpreter, then what QEMU does with the program.
    pub(super) fn via_handler(
        &self,
        entry: &Entry,
        program: &Program<'_>,
        depth: usize,
    ) -> Result<Finding, DiagnoseError> {
        let arch = self.entry_arch(entry);
        let info = program.elf();
        let what = match &info {
            Ok(Some(i)) => {
                let n = elf::name(i, self.table());
                prose::program_words(i, n.arch.as_deref(), n.platform.as_deref())
            }
            _ => prose::file_words(program.format.as_str()),
        };
        let facts = Handler {
            what: &what,
            entry,
            arch,
            place: self.place(),
        };

        let inner = self.handler_interpreter(entry, depth)?;
        if !inner.is_ok() {
            return Ok(self.interpreter_fails(facts, inner));
        }
        let mut notes = inner.notes;
        let interp = Path::new(&entry.interpreter);
        if entry.has_flag('F') && !self.root.is_given() && is_dynamic(self.machine, interp) {
            notes.push(prose::dynamic_with_f(&entry.interpreter));
        }

        let mut f = self.emulated(facts, program, info)?;
        if f.is_ok() {
            if let Some(s) = self.setuid_without_c(&what, &program.meta, entry) {
                f = Finding {
                    needs: f.needs,
                    available: f.available,
                    ..s
                };
            }
        }
        f.handler = Some(entry.name.clone());
        f.notes.append(&mut notes);
        if f.platform.is_none() && program.format == Format::Elf {
            if let Ok(info) = elf::read(program.file, program.head, program.len) {
                f.platform = elf::name(&info, self.table()).platform;
            }
        }
        Ok(f)
    }

    /// The handler's interpreter, as the kernel reaches it: by path inside the root at each
    /// exec, or (with `F`) the file opened at registration, outside any root.
    fn handler_interpreter(&self, entry: &Entry, depth: usize) -> Result<Finding, DiagnoseError> {
        let interp = entry.interpreter.as_str();
        if !entry.has_flag('F') {
            return self.examine(interp, depth + 1, Role::BinfmtInterpreter);
        }
        if self.machine.stat(Path::new(interp)).is_err() {
            return Ok(Finding::ok("").note(prose::fixed_interpreter_gone(interp)));
        }
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
        Ok(f)
    }

    /// The interpreter does not run: missing (here, or only inside the root), dynamically
    /// linked without its loader or libraries, or failing for a reason of its own.
    fn interpreter_fails(&self, h: Handler<'_>, inner: Finding) -> Finding {
        let interp = Path::new(&h.entry.interpreter);
        let mut f = match inner.cause {
            Cause::NotFound if self.root.is_given() && self.is_file(interp) => {
                let copy_to = self.root.on_host(&h.entry.interpreter);
                let words = prose::interpreter_not_in_root(h, self.root.dir(), &copy_to);
                Finding::new(Cause::InterpreterNotInRoot, inner.errno, words)
            }
            Cause::NotFound => Finding::new(
                Cause::InterpreterMissing,
                inner.errno,
                prose::interpreter_missing(h),
            ),
            Cause::LoaderMissing => {
                let loader = inner
                    .chain
                    .iter()
                    .find(|l| l.role == Role::Loader)
                    .map(|l| l.path.as_str())
                    .unwrap_or_default();
                let words = prose::interpreter_dynamic(h, loader, &inner.libs);
                let mut f = Finding::new(Cause::InterpreterDynamic, inner.errno, words);
                f.error = inner.error.clone();
                f
            }
            _ => {
                let mut f = inner.clone();
                f.message = prose::interpreter_fails(h.what, h.entry, &inner.message);
                f.notes.clear();
                f
            }
        };
        f.chain = inner.chain;
        f.handler = Some(h.entry.name.clone());
        f.notes.extend(inner.notes);
        f
    }

    /// What QEMU does with the program once its interpreter runs: it loads the ELF and its
    /// loader itself, and emulates Linux system calls only. Another interpreter's work is
    /// its own business.
    fn emulated(
        &self,
        h: Handler<'_>,
        program: &Program<'_>,
        info: Result<Option<ElfInfo>, ElfError>,
    ) -> Result<Finding, DiagnoseError> {
        let by = prose::handled_by(h.entry);
        let runs = || Finding::ok(prose::runs(h.what, &by));
        if h.arch.is_none() {
            return Ok(runs());
        }
        let info = match info {
            Err(e) => {
                let (path, head, len) = (program.path, program.head, program.len);
                return self.damaged_elf(path, head, len, e, Some(h.entry));
            }
            Ok(None) => return Ok(runs()),
            Ok(Some(info)) => info,
        };
        let arch_name = elf::name(&info, self.table()).arch;
        if !info.is_linux() {
            let words = prose::foreign_os_emulated(info.os(), arch_name.as_deref(), &by);
            return Ok(Finding::starts(Cause::ForeignOs, words));
        }
        let mut f = match &info.interpreter {
            Some(loader) if !self.emulated_loader_present(loader, h.arch) => {
                let emulator = prose::interp_name(h.entry);
                let mut f = self.loader_missing(
                    loader,
                    &prose::runs(h.what, &by),
                    arch_name.as_deref(),
                    None,
                    Some(&emulator),
                );
                f.chain.push(Link {
                    role: Role::Loader,
                    path: loader.clone(),
                });
                return Ok(f);
            }
            // The loader in the root (not under QEMU's prefix, whose own search is QEMU's
            // business) looks for the libraries there.
            Some(loader) if self.loader_in_root_only(loader, h.arch) => {
                let what = prose::runs(h.what, &by);
                match self.libraries(&what, program.host, program.path, h.arch) {
                    Some(f) => return Ok(f),
                    None => runs(),
                }
            }
            _ => runs(),
        };
        let arch = arch_name.as_deref().and_then(|a| self.table().find(a));
        if let Some(arch) = arch {
            let program_facts = (program.file, program.len, &info);
            if let Some(n) = self.needs_check(h.what, program_facts, arch, Some(h.entry)) {
                if n.is_ok() {
                    f.needs = n.needs;
                    f.available = n.available;
                    f.notes.extend(n.notes);
                } else {
                    f = n;
                }
            }
            f.arch = Some(arch.name.clone());
        }
        f.what = Some(h.what.to_string());
        Ok(f)
    }

    /// The emulated program's loader is found at its own path in the root, and not under
    /// QEMU's prefix.
    fn loader_in_root_only(&self, loader: &str, arch: Option<&Arch>) -> bool {
        let prefix = self.ld_prefix.clone().or_else(|| {
            arch.and_then(|a| a.qemu.as_ref())
                .map(|cpu| format!("/etc/qemu-binfmt/{cpu}"))
        });
        let found = |p: &str| matches!(self.root.resolve(p), Lookup::Found(h) if self.is_file(&h));
        !prefix.is_some_and(|pre| found(&format!("{pre}{loader}"))) && found(loader)
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

    /// The architecture an entry serves: by its name (`qemu-aarch64`), else by its
    /// interpreter's (`…/qemu-aarch64-static`).
    pub(super) fn entry_arch(&self, e: &Entry) -> Option<&'a Arch> {
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
}

/// An ELF with a loader (PT_INTERP): it needs that loader and its libraries wherever it runs.
fn is_dynamic(machine: &dyn Machine, path: &Path) -> bool {
    read_head(machine, path)
        .ok()
        .and_then(|(file, head, len)| elf::read(&file, &head, len).ok())
        .is_some_and(|info| !info.is_static())
}
