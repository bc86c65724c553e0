//! `run [--arch LIST|all] [--rootfs DIR] -- CMD…`: a command with its own private binfmt_misc,
//! for any user on Linux ≥ 6.7. Nothing on the host changes; the exit status is the command's.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::anyhow;

use crate::arch::Host;
use crate::binfmt::apply::{self, Report, Step};
use crate::binfmt::plan::{self, Planned};
use crate::binfmt::{DEFAULT_DIR, Registry};
use crate::cli::{GlobalArgs, RunArgs};
use crate::error::{Exit, Failure};
use crate::sandbox::{self, LookupError};
use crate::{messages, namespace};

pub fn run(global: &GlobalArgs, args: &RunArgs) -> Result<Exit, Failure> {
    let table = super::load_table(global)?;
    let arches = table
        .lookup_list(&args.arch)
        .map_err(|e| Failure::bad_input(anyhow!("--arch: {e}")))?;
    let root = args.rootfs.as_deref().map(check_root).transpose()?;
    let opts = plan::Options {
        search: super::qemu_paths(global),
        fix_binary: true,
        // Where a probe shows QEMU keeps argv[0]: a multi-call program (busybox) that runs
        // its applets through /proc/self/exe learns which one from it.
        preserve_argv0: true,
        all: args.arch.trim().eq_ignore_ascii_case("all"),
        ..plan::Options::default()
    };
    let host = Host::detect(&table);
    // Nativeness and P are probed in private instances of their own, before ours exists.
    let (planned, skipped) =
        plan::plan(&arches, &opts, &host).map_err(|e| Failure::bad_input(anyhow!(e)))?;
    for s in &skipped {
        if opts.all {
            tracing::info!("skip {}: {}", s.arch, s.reason);
        } else {
            messages::warn(&format!("skip {}: {}", s.arch, s.reason));
        }
    }

    namespace::enter_rootless().map_err(Failure::environment)?;
    let registry = Registry::new(DEFAULT_DIR);
    register(&registry, &planned)?;
    if let Some(root) = &root {
        let prepared = sandbox::enter_root(root)
            .map_err(|e| Failure::environment(anyhow!("cannot prepare {}: {e}", root.display())))?;
        for note in prepared.notes {
            tracing::info!("{}: {note}", root.display());
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| sandbox::DEFAULT_PATH.into());
    let program = sandbox::find_command(&args.command[0], &path).map_err(|e: LookupError| {
        let inside = root
            .as_ref()
            .map(|r| format!(" inside {}", r.display()))
            .unwrap_or_default();
        Failure::bad_input(anyhow!("{e}{inside}"))
    })?;
    let argv: Vec<OsString> = args.command.clone();
    let running = sandbox::spawn(&program, &argv).map_err(|e| {
        let shown = program.display();
        if e.raw_os_error() == Some(nix::errno::Errno::ENOEXEC as i32) {
            Failure {
                exit: Exit::Problem,
                error: anyhow!(
                    "cannot run {shown}: {e}; no handler registered for --arch {} matches it (binfmt-setup inspect {shown})",
                    args.arch
                ),
            }
        } else if e.kind() == std::io::ErrorKind::NotFound {
            // The file is there, so a missing loader (PT_INTERP) or `#!` interpreter.
            Failure::bad_input(anyhow!(
                "cannot run {shown}: {e}; its loader or script interpreter is missing in this root"
            ))
        } else {
            Failure::bad_input(anyhow!("cannot run {shown}: {e}"))
        }
    })?;
    tracing::debug!("started {} as pid {}", program.display(), running.pid());
    let code = running
        .wait()
        .map_err(|e| Failure::environment(anyhow!("lost track of the command: {e}")))?;
    Ok(Exit::Command(code))
}

/// Register every planned entry in the private instance.
fn register(registry: &Registry, planned: &[Planned<'_>]) -> Result<(), Failure> {
    let steps: Vec<Step> = planned
        .iter()
        .map(|p| Step::Register(p.reg.clone(), Some(p.emulator.pin.clone())))
        .collect();
    let report = apply::apply(registry, &steps, Report::default());
    if let Some(f) = &report.failed {
        return Err(Failure {
            exit: Exit::Problem,
            error: anyhow!(
                "cannot register {} in the private binfmt_misc: {}",
                f.name,
                f.error
            ),
        });
    }
    tracing::info!("registered {}", report.installed.join(", "));
    Ok(())
}

/// `--rootfs` as an absolute directory; anything else is bad input.
fn check_root(dir: &std::path::Path) -> Result<PathBuf, Failure> {
    let meta = std::fs::metadata(dir)
        .map_err(|e| Failure::bad_input(anyhow!("--rootfs {}: {e}", dir.display())))?;
    if !meta.is_dir() {
        return Err(Failure::bad_input(anyhow!(
            "--rootfs {}: not a directory",
            dir.display()
        )));
    }
    std::fs::canonicalize(dir)
        .map_err(|e| Failure::bad_input(anyhow!("--rootfs {}: {e}", dir.display())))
}
