//! `run [--arch LIST|all] [--rootfs DIR] -- CMD…`: a command with its own private binfmt_misc,
//! for any user on Linux ≥ 6.7. Nothing on the host changes; the exit status is the command's.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use nix::sys::signal::Signal;

use crate::arch::Host;
use crate::binfmt::apply::{self, Report, Step};
use crate::binfmt::plan::{self, Planned};
use crate::binfmt::{DEFAULT_DIR, Registry};
use crate::cli::{GlobalArgs, RunArgs};
use crate::error::{Exit, Failure};
use crate::messages;
use crate::sandbox;
use crate::sys::exec::{self, Candidate, Output, Spec, Stdin};
use crate::sys::ns;
use crate::sys::signals::SignalWatch;

/// Signals passed on to the command. SIGCHLD is watched too, to learn when it ends.
const FORWARDED: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGWINCH,
];

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
    let (planned, skipped) = plan::plan(&crate::machine::Live::new(), &arches, &opts, &host)?;
    for s in &skipped {
        if opts.all {
            tracing::info!("skip {}: {}", s.arch, s.reason);
        } else {
            messages::warn(&format!("skip {}: {}", s.arch, s.reason));
        }
    }

    ns::enter_rootless().map_err(Failure::environment)?;
    let registry = Registry::new(DEFAULT_DIR);
    register(&registry, &planned)?;
    if let Some(root) = &root {
        let prepared = sandbox::enter_root(root)
            .map_err(|e| Failure::environment(anyhow!("cannot prepare {}: {e}", root.display())))?;
        for note in prepared.notes {
            tracing::info!("{}: {note}", root.display());
        }
    }
    let inside = root
        .as_ref()
        .map(|r| format!(" inside {}", r.display()))
        .unwrap_or_default();
    let program =
        find_command(&args.command[0]).map_err(|e| Failure::bad_input(anyhow!("{e}{inside}")))?;
    let mut watched = FORWARDED.to_vec();
    watched.push(Signal::SIGCHLD);
    // Blocked before the spawn: a signal, or the command's end, arriving at once is kept.
    let watch = SignalWatch::new(&watched)
        .map_err(|e| Failure::environment(anyhow!("cannot watch signals: {e}")))?;
    let spec = Spec::new(&program)
        .argv(args.command.iter().cloned())
        .stdin(Stdin::Inherit)
        .output(Output::Inherit)
        .signal_mask(*watch.previous_mask());
    let child = exec::spawn(&spec)
        .map_err(|e| Failure::bad_input(anyhow!("cannot run {}: {e}", program.display())))?;
    if let Some((_, errno)) = child.failed() {
        let shown = program.display();
        let e = std::io::Error::from(errno);
        return Err(match errno {
            nix::errno::Errno::ENOEXEC => Failure {
                exit: Exit::Problem,
                error: anyhow!(
                    "cannot run {shown}: {e}; no handler registered for --arch {} matches it (binfmt-setup inspect {shown})",
                    args.arch
                ),
            },
            // The file is there, so a missing loader (PT_INTERP) or `#!` interpreter.
            nix::errno::Errno::ENOENT => Failure::bad_input(anyhow!(
                "cannot run {shown}: {e}; its loader or script interpreter is missing in this root"
            )),
            _ => Failure::bad_input(anyhow!("cannot run {shown}: {e}")),
        });
    }
    tracing::debug!("started {} as pid {}", program.display(), child.pid());
    let ending = child
        .wait_forwarding(&watch)
        .map_err(|e| Failure::environment(anyhow!("lost track of the command: {e}")))?;
    Ok(Exit::Command(ending.shell_status().unwrap_or(1)))
}

/// The file the command names, looked up as exec's callers do (see `sys::exec::search_path`),
/// after the chroot, so inside the root. A name with a `/` is a path.
fn find_command(command: &OsStr) -> Result<PathBuf, String> {
    let shown = command.to_string_lossy();
    if command.as_bytes().contains(&b'/') {
        return match exec::look_live(Path::new(command)) {
            Candidate::Executable => Ok(PathBuf::from(command)),
            Candidate::NotExecutable => Err(format!("{shown}: not an executable file")),
            Candidate::Absent if Path::new(command).exists() => {
                Err(format!("{shown}: not an executable file"))
            }
            Candidate::Absent => Err(format!("{shown}: no such file")),
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| exec::DEFAULT_PATH.into());
    exec::search_path(command, &path, exec::look_live).map_err(|e| e.to_string())
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
fn check_root(dir: &Path) -> Result<PathBuf, Failure> {
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
