//! `export --format systemd|debian|register`: the handlers `install` would register, as files
//! that systemd-binfmt or Debian's update-binfmts load at boot.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use serde::Serialize;

use crate::arch::Host;
use crate::binfmt::Registration;
use crate::binfmt::apply::Skipped;
use crate::binfmt::plan::{self, Planned};
use crate::cli::{ExportArgs, ExportFormat, GlobalArgs};
use crate::error::{Exit, Failure};
use crate::messages::{self, printable};

#[derive(Debug, Serialize)]
struct Report {
    format: &'static str,
    /// The directory written to; absent when the files were printed.
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<String>,
    files: Vec<FileView>,
    skipped: Vec<Skipped>,
}

#[derive(Debug, Serialize)]
struct FileView {
    /// The entry the file registers.
    entry: String,
    /// The file's name (in `output`, when one was given).
    name: String,
    /// `written`, `unchanged` (the same bytes were there), or `printed`.
    status: &'static str,
    content: String,
}

pub fn run(global: &GlobalArgs, args: &ExportArgs) -> Result<Exit, Failure> {
    let table = super::load_table(global)?;
    let arches = table
        .lookup_list(&args.arch)
        .map_err(|e| Failure::bad_input(anyhow!("--arch: {e}")))?;
    let opts = super::install::handler_options(global, &table, &args.arch, &args.handler)?;
    if let Some(dir) = &args.output {
        check_output_dir(dir)?;
    }
    let host = Host::detect(&table);
    let (planned, skipped) = plan::plan(&crate::machine::Live::new(), &arches, &opts, &host)?;

    let mut files: Vec<FileView> = planned
        .iter()
        .map(|p| FileView {
            entry: p.reg.name.clone(),
            name: file_name(args.format, &p.reg),
            status: "printed",
            content: render(args.format, p),
        })
        .collect();
    if let Some(dir) = &args.output {
        for f in &mut files {
            f.status = write_file(dir, &f.name, &f.content)?;
        }
    }
    let report = Report {
        format: format_name(args.format),
        output: args.output.as_ref().map(|d| d.display().to_string()),
        files,
        skipped,
    };
    if global.json {
        messages::json(&report);
    } else {
        print_report(&report);
    }
    Ok(Exit::Success)
}

pub(super) fn format_name(format: ExportFormat) -> &'static str {
    match format {
        ExportFormat::Systemd => "systemd",
        ExportFormat::Debian => "debian",
        ExportFormat::Register => "register",
    }
}

/// Files are named after their entry, so a later export replaces an earlier one and, in
/// /etc/binfmt.d, takes the place of qemu-user-static's file of the same name.
pub(super) fn file_name(format: ExportFormat, reg: &Registration) -> String {
    match format {
        ExportFormat::Systemd => format!("{}.conf", reg.name),
        ExportFormat::Debian => reg.name.clone(),
        ExportFormat::Register => format!("{}.register", reg.name),
    }
}

pub(super) fn render(format: ExportFormat, p: &Planned<'_>) -> String {
    let reg = &p.reg;
    match format {
        ExportFormat::Systemd => format!(
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
        ExportFormat::Debian => {
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
                escape(&reg.magic),
                reg.offset,
                escape(&reg.mask),
                yes('C'),
                yes('F'),
                yes('P'),
            )
        }
        // One string per file: the kernel takes one rule per write(2), and
        // `cat FILE > register` writes a short file in one.
        ExportFormat::Register => format!("{}\n", reg.register_string()),
    }
}

fn escape(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\x{b:02x}")).collect()
}

pub(super) fn check_output_dir(dir: &Path) -> Result<(), Failure> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Failure::bad_input(anyhow!(
            "--output {}: not a directory",
            dir.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir_all(dir)
            .map_err(|e| io_failure(anyhow!("cannot create --output {}: {e}", dir.display()), &e)),
        Err(e) => Err(io_failure(anyhow!("--output {}: {e}", dir.display()), &e)),
    }
}

/// Permission and read-only refusals are the environment's; anything else is the input's.
fn io_failure(err: anyhow::Error, e: &std::io::Error) -> Failure {
    use std::io::ErrorKind::{PermissionDenied, ReadOnlyFilesystem};
    match e.kind() {
        PermissionDenied | ReadOnlyFilesystem => Failure::environment(err),
        _ => Failure::bad_input(err),
    }
}

/// Write `content` to `dir/name` whole or not at all: a temporary file in the same directory,
/// renamed over the old one.
pub(super) fn write_file(dir: &Path, name: &str, content: &str) -> Result<&'static str, Failure> {
    let path = dir.join(name);
    if std::fs::read(&path).is_ok_and(|old| old == content.as_bytes()) {
        return Ok("unchanged");
    }
    let tmp: PathBuf = dir.join(format!(".{name}.tmp-{}", std::process::id()));
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
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_failure(anyhow!("cannot write {}: {e}", path.display()), &e)
    })?;
    Ok("written")
}

fn print_report(r: &Report) {
    match &r.output {
        None => {
            for f in &r.files {
                messages::out(&format!("# file: {}", f.name));
                for line in f.content.lines() {
                    messages::out(&printable(line));
                }
            }
        }
        Some(dir) => {
            for f in &r.files {
                messages::out(&format!(
                    "{:<10} {}",
                    f.status,
                    printable(&Path::new(dir).join(&f.name).display().to_string())
                ));
            }
        }
    }
    for s in &r.skipped {
        messages::warn(&format!("skip {}: {}", s.arch, printable(&s.reason)));
    }
}
