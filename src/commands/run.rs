//! `run [--arch LIST|all] [--rootfs DIR] -- CMD…`: a command with its own private binfmt_misc,
//! for any user on Linux ≥ 6.7. Nothing on the host changes; the exit status is the command's.

use nix::sys::signal::Signal;

use crate::arch::Host;
use crate::binfmt::plan;
use crate::binfmt::{DEFAULT_DIR, Registry};
use crate::cli::{GlobalArgs, RunArgs};
use crate::error::{BadArgument, Exit, Failure};
use crate::messages;
use crate::rootless::{self, RootlessError};
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
    Signal::SIGCHLD,
];

pub fn run(global: &GlobalArgs, args: &RunArgs) -> Result<Exit, Failure> {
    let table = super::load_table(global)?;
    let arches = table
        .lookup_list(&args.arch)
        .map_err(|e| BadArgument(format!("--arch: {e}")))?;
    let root = args
        .rootfs
        .as_deref()
        .map(rootless::check_root)
        .transpose()?;
    let opts = plan::Options {
        search: super::qemu_paths(global)?,
        fix_binary: true,
        // Where a probe shows QEMU keeps argv[0]: a multi-call program (busybox) that runs
        // its applets through /proc/self/exe learns which one from it.
        preserve_argv0: true,
        all: crate::arch::ArchTable::mentions_all(args.arch.split(',')),
        ..plan::Options::default()
    };
    let host = Host::detect(&table);
    // Nativeness and P are probed in private instances of their own, before ours exists.
    let (planned, skipped) =
        plan::plan(&arches, &opts, &host).map_err(|e| Failure::bad_input(anyhow::anyhow!(e)))?;
    for s in &skipped {
        if opts.all {
            tracing::info!("skip {}: {}", s.arch, s.reason);
        } else {
            messages::warn(&format!("skip {}: {}", s.arch, s.reason));
        }
    }

    ns::enter_rootless()?;
    let registered = rootless::register(&Registry::new(DEFAULT_DIR), &planned)?;
    tracing::info!("registered {}", registered.join(", "));
    if let Some(root) = &root {
        for note in rootless::enter_root(root)?.notes {
            tracing::info!("{}: {note}", root.display());
        }
    }
    let inside = root
        .as_ref()
        .map(|r| format!(" inside {}", r.display()))
        .unwrap_or_default();
    let program = rootless::find_command(&args.command[0], &inside)?;
    // Blocked before the spawn: a signal, or the command's end, arriving at once is kept.
    let watch = SignalWatch::new(FORWARDED).map_err(RootlessError::Signals)?;
    let child = rootless::start(&program, &args.command, &watch, &args.arch)?;
    tracing::debug!("started {} as pid {}", program.display(), child.pid());
    let ending = child.wait_forwarding(&watch).map_err(RootlessError::Wait)?;
    Ok(Exit::Command(ending.shell_status().unwrap_or(1)))
}
