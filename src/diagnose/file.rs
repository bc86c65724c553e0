//! The file layer: the path looked up inside the root, what exec checks when it opens the
//! file (a `noexec` mount, execute permission), and files no loader of the kernel's takes
//! (empty, text without `#!`, Mach-O, PE, anything else).

use std::path::Path;

use nix::errno::Errno;

use super::prose::{self, ExecBits};
use super::{Cause, DiagnoseError, Diagnoser, Finding, Lookup, Opened, Role, mounts};
use crate::format::{self, Format};
use crate::inspect::{read_head, read_head_resolved};
use crate::machine::Meta;

impl Diagnoser<'_> {
    /// A lookup that found nothing: ENOENT, ENOTDIR, ELOOP, or a directory on the way that
    /// may not be searched.
    pub(super) fn not_found(&self, path: &str, lookup: Lookup) -> Finding {
        let place = self.place();
        match lookup {
            Lookup::Found(_) => Finding::ok(""),
            Lookup::Missing { at, link } => Finding::fails(
                Cause::NotFound,
                Errno::ENOENT,
                prose::missing(path, &at, link.as_ref(), place),
            ),
            Lookup::NotDir { at } => Finding::fails(
                Cause::NotFound,
                Errno::ENOTDIR,
                prose::not_a_directory(path, &at, place),
            ),
            Lookup::Loop { at } => Finding::fails(
                Cause::NotFound,
                Errno::ELOOP,
                prose::symlink_loop(path, &at, place),
            ),
            Lookup::Denied { at, errno } => Finding::fails(
                Cause::NotExecutable,
                errno,
                prose::unreachable(path, &at, errno),
            ),
        }
    }

    /// Examine a file that exists (`host` is its path on the host, `path` as seen inside).
    pub(super) fn examine_file(
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
            return Ok(Finding::fails(
                Cause::NotExecutable,
                Errno::EACCES,
                prose::not_a_file(path, meta.kind.words()),
            ));
        }
        if opened == Opened::ByPath {
            if let Some(f) = self.access_problem(path, host, &meta) {
                return Ok(f);
            }
            if let Some(f) = self.text_busy(path, host) {
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
            Some(entry) => {
                let program = super::handler::Program {
                    path,
                    host,
                    file: &file,
                    head: &head,
                    len,
                    format,
                    meta,
                };
                self.via_handler(entry, &program, depth)?
            }
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
    pub(super) fn access_problem(&self, path: &str, host: &Path, meta: &Meta) -> Option<Finding> {
        let mounts = self.mounts.get_or_init(|| self.machine.mounts());
        let (noexec, mount) = mounts::noexec(self.machine, mounts, host);
        if noexec {
            return Some(Finding::fails(
                Cause::NoexecMount,
                Errno::EACCES,
                prose::noexec_mount(path, mount.as_ref()),
            ));
        }
        if self.machine.may_execute(host) {
            return None;
        }
        let me = self.machine.credentials();
        let bits = ExecBits {
            mode: meta.mode,
            owner: meta.uid,
            group: meta.gid,
            euid: me.euid,
            egid: me.egid,
            groups: &me.groups,
        };
        Some(Finding::fails(
            Cause::NotExecutable,
            Errno::EACCES,
            prose::not_executable(path, &self.host_shown(host), bits),
        ))
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
        let target = self.target_arch();
        Finding::fails(
            Cause::ForeignOs,
            Errno::ENOEXEC,
            prose::macho(&archs, target.as_deref()),
        )
    }

    fn pe(&self, head: &[u8]) -> Finding {
        let arch = format::pe_info(head)
            .map(|p| p.arch)
            .unwrap_or_else(|_| "an unknown CPU".into());
        let target = self.target_arch();
        Finding::fails(
            Cause::ForeignOs,
            Errno::ENOEXEC,
            prose::pe(&arch, target.as_deref()),
        )
    }

    /// A file no loader takes: empty, text without `#!`, or anything else.
    fn unknown(&self, path: &str, host: &Path, head: &[u8], len: u64) -> Finding {
        let words = if len == 0 {
            prose::empty(path)
        } else if is_text(head) {
            prose::text_without_shebang(path, &self.host_shown(host))
        } else {
            prose::unknown_format(path)
        };
        Finding::fails(Cause::NotABinary, Errno::ENOEXEC, words)
    }
}

/// Printable ASCII, tabs, line ends, and any byte of a UTF-8 sequence.
fn is_text(head: &[u8]) -> bool {
    !head.is_empty()
        && head.iter().all(|&b| {
            b == b'\n' || b == b'\r' || b == b'\t' || (0x20..0x7f).contains(&b) || b >= 0x80
        })
}
