//! Registrations as files that register them again at boot: binfmt.d `.conf` files for
//! systemd-binfmt, format files for Debian's update-binfmts, or the raw register strings.
//! `export` writes them on request and `init` after installing, so both say the same.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::binfmt::plan::Planned;
use crate::binfmt::registration::Registration;
use crate::error::{Class, Classify, io_class};
use crate::rule::escape;

/// The file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// binfmt.d `.conf` files for systemd-binfmt (/etc/binfmt.d).
    Systemd,
    /// Format files for Debian's update-binfmts (/usr/share/binfmts).
    Debian,
    /// The raw register strings, one per file.
    Register,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Systemd => "systemd",
            Format::Debian => "debian",
            Format::Register => "register",
        }
    }

    /// Files are named after their entry, so a later export replaces an earlier one and, in
    /// /etc/binfmt.d, takes the place of qemu-user-static's file of the same name.
    pub fn file_name(self, reg: &Registration) -> String {
        match self {
            Format::Systemd => format!("{}.conf", reg.name),
            Format::Debian => reg.name.clone(),
            Format::Register => format!("{}.register", reg.name),
        }
    }

    /// The file's content for one planned registration.
    pub fn render(self, p: &Planned<'_>) -> String {
        let reg = &p.reg;
        match self {
            Format::Systemd => format!(
                "# {}: {} programs run by {} (flags {}).\n# Written by binfmt-setup export; systemd-binfmt registers it at boot.\n{}\n",
                reg.name,
                p.arch.default_platform(),
                reg.interpreter,
                if reg.flags.is_empty() {
                    "none"
                } else {
                    &reg.flags
                },
                reg.register_string()
            ),
            // update-binfmts reads `key value` lines; it takes no comments.
            Format::Debian => {
                let yes = |flag: char| {
                    if reg.flags.contains(flag) {
                        "yes"
                    } else {
                        "no"
                    }
                };
                format!(
                    "package binfmt-setup\ninterpreter {}\nmagic {}\noffset {}\nmask {}\ncredentials {}\nfix_binary {}\npreserve {}\n",
                    reg.interpreter,
                    escape(&reg.rule.magic),
                    reg.rule.offset,
                    escape(&reg.rule.mask),
                    yes('C'),
                    yes('F'),
                    yes('P'),
                )
            }
            // One string per file: the kernel takes one rule per write(2), and
            // `cat FILE > register` writes a short file in one.
            Format::Register => format!("{}\n", reg.register_string()),
        }
    }
}

/// One rendered file.
#[derive(Debug, Clone, Serialize)]
pub struct File {
    /// The entry the file registers.
    pub entry: String,
    /// The file's name (in the output directory, when there is one).
    pub name: String,
    /// `written`, `unchanged` (the same bytes were there), or `printed`.
    pub status: &'static str,
    pub content: String,
}

/// Every planned registration as a file of `format`, not yet written (`printed`).
pub fn render_all(format: Format, planned: &[Planned<'_>]) -> Vec<File> {
    planned
        .iter()
        .map(|p| File {
            entry: p.reg.name.clone(),
            name: format.file_name(&p.reg),
            status: "printed",
            content: format.render(p),
        })
        .collect()
}

/// Why files could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{what} {}: not a directory", .dir.display())]
    NotADirectory { what: &'static str, dir: PathBuf },
    #[error("{what} {}: {source}", .dir.display())]
    Directory {
        what: &'static str,
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create {what} {}: {source}", .dir.display())]
    Create {
        what: &'static str,
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Classify for ExportError {
    fn class(&self) -> Class {
        match self {
            ExportError::NotADirectory { .. } => Class::BadInput,
            ExportError::Directory { source, .. }
            | ExportError::Create { source, .. }
            | ExportError::Write { source, .. } => io_class(source),
        }
    }
}

/// An output directory that was checked and may be written to: it is a directory, or it does
/// not exist yet and its nearest existing ancestor is one. Checking writes nothing, so a
/// request can be checked whole before anything changes; the directory is made on the first
/// write.
#[derive(Debug, Clone)]
pub struct Output {
    dir: PathBuf,
    /// `--output` or `export.directory`, for messages.
    what: &'static str,
}

impl Output {
    pub fn check(dir: &Path, what: &'static str) -> Result<Output, ExportError> {
        let not_dir = || ExportError::NotADirectory {
            what,
            dir: dir.to_path_buf(),
        };
        let mut probe = dir;
        loop {
            match std::fs::metadata(probe) {
                Ok(m) if m.is_dir() => break,
                Ok(_) => return Err(not_dir()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    match probe.parent().filter(|p| !p.as_os_str().is_empty()) {
                        Some(parent) => probe = parent,
                        None => break,
                    }
                }
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOTDIR) => return Err(not_dir()),
                Err(source) => {
                    return Err(ExportError::Directory {
                        what,
                        dir: dir.to_path_buf(),
                        source,
                    });
                }
            }
        }
        Ok(Output {
            dir: dir.to_path_buf(),
            what,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Write every file, each whole or not at all, marking it `written` or `unchanged`.
    pub fn write_all(&self, files: &mut [File]) -> Result<(), ExportError> {
        if !self.dir.is_dir() {
            std::fs::create_dir_all(&self.dir).map_err(|source| ExportError::Create {
                what: self.what,
                dir: self.dir.clone(),
                source,
            })?;
        }
        for f in files {
            f.status = self.write(&f.name, &f.content)?;
        }
        Ok(())
    }

    /// Write `content` to `dir/name` whole or not at all: a temporary file in the same
    /// directory, renamed over the old one.
    fn write(&self, name: &str, content: &str) -> Result<&'static str, ExportError> {
        let path = self.dir.join(name);
        if std::fs::read(&path).is_ok_and(|old| old == content.as_bytes()) {
            return Ok("unchanged");
        }
        let tmp: PathBuf = self.dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let result = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&tmp)?;
            f.write_all(content.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        })();
        result.map_err(|source| {
            let _ = std::fs::remove_file(&tmp);
            ExportError::Write { path, source }
        })?;
        Ok("written")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_is_checked_without_writing_anything() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("file");
        std::fs::write(&file, "x").expect("write");
        assert!(matches!(
            Output::check(&file, "--output"),
            Err(ExportError::NotADirectory { .. })
        ));
        assert!(matches!(
            Output::check(&file.join("below"), "--output"),
            Err(ExportError::NotADirectory { .. })
        ));
        let fresh = dir.path().join("a/b");
        let out = Output::check(&fresh, "--output").expect("a path that can be made");
        assert!(!dir.path().join("a").exists(), "checking made nothing");
        out.write_all(&mut []).expect("made on write");
        assert!(fresh.is_dir());
    }
}
