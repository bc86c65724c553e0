//! `run [--arch LIST|all] [--rootfs DIR] -- CMD…`: a command with its own private binfmt_misc,
//! for any user on Linux ≥ 6.7. Nothing on the host changes; the exit status is the command's.

use nix::sys::signal::Signal;

use crate::arch::{ArchTable, Host};
use crate::binfmt::plan;
use crate::cli::{GlobalArgs, RunArgs};
use crate::error::{BadArgument, Exit, Failure};
use crate::messages;
use crate::rootless::{self, Ids, Request, RootlessError};
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
        all: ArchTable::mentions_all(args.arch.split(',')),
        ..plan::Options::default()
    };
    let host = Host::detect(&table);
    // Interpreters are checked, and nativeness and P probed in private instances of their
    // own, from here, outside the namespace the command will have.
    let (planned, skipped) = plan::plan(&crate::machine::Live::new(), &arches, &opts, &host)?;
    for s in &skipped {
        if opts.all {
            tracing::info!("skip {}: {}", s.arch, s.reason);
        } else {
            messages::warn(&format!("skip {}: {}", s.arch, s.reason));
        }
    }
    let (ids, why_own) = Ids::for_caller();
    if let Some(why) = why_own {
        messages::warn(&format!(
            "{why}: only your own ids are mapped in the command's namespace, so it cannot change groups or make files of other owners (buildah --isolation chroot and podman run fail there)"
        ));
    }
    tracing::info!("ids in the namespace: {ids:?}");
    // Blocked before the spawn: a signal, or the command's end, arriving at once is kept.
    let watch = SignalWatch::new(FORWARDED)?;
    let request = Request {
        table: &table,
        command: &args.command,
        root: root.as_deref(),
        planned: &planned,
        ids: &ids,
        arch: &args.arch,
    };
    let child = rootless::start(&request, &watch)?;
    tracing::debug!("started {:?} as pid {}", args.command[0], child.pid());
    let ending = child.wait_forwarding(&watch).map_err(RootlessError::Wait)?;
    Ok(Exit::Command(ending.shell_status().unwrap_or(1)))
}
