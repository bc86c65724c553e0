//! One file per subcommand: gather input, call the library, print human text or JSON.

mod diagnose;
mod docs;
mod export;
mod init;
mod inspect;
mod install;
mod platforms;
mod run;
mod scan;
mod status;
mod test;
mod uninstall;

use std::collections::HashMap;
use std::path::PathBuf;

use crate::arch::ArchTable;
use crate::cli::{Cli, Command, GlobalArgs, HandlerArgs};
use crate::error::{BadArgument, Exit, Failure};

/// Run the parsed command line.
pub fn run(cli: Cli) -> Result<Exit, Failure> {
    match &cli.command {
        Command::Inspect(args) => inspect::run(&cli.global, args),
        Command::Status => status::run(&cli.global),
        Command::Install(args) => install::run(&cli.global, args),
        Command::Uninstall(args) => uninstall::run(&cli.global, args),
        Command::Export(args) => export::run(&cli.global, args),
        Command::Test(args) => test::run(&cli.global, args),
        Command::Platforms => platforms::run(&cli.global),
        Command::Diagnose(args) => diagnose::run(&cli.global, args),
        Command::Run(args) => run::run(&cli.global, args),
        Command::Init(args) => init::run(&cli.global, args),
        Command::Scan(args) => scan::run(&cli.global, args),
        Command::Completions(args) => docs::completions(args.shell),
        Command::Man(args) => docs::man(args.command.as_deref()),
    }
}

/// The architecture table the user asked for; a bad `--arch-table` is bad input.
fn load_table(global: &GlobalArgs) -> Result<ArchTable, Failure> {
    Ok(ArchTable::load(global.arch_table.as_deref())?)
}

/// The known-bad QEMU versions the user asked for; a bad `--qemu-table` is bad input.
fn load_issues(
    global: &GlobalArgs,
    table: &ArchTable,
) -> Result<crate::qemu::known::IssueTable, Failure> {
    Ok(crate::qemu::known::IssueTable::load(
        global.qemu_table.as_deref(),
        table,
    )?)
}

/// Where to look for interpreters: `--qemu-path` dirs, else the defaults. A directory the
/// user names must be one: a typo would otherwise read as "no interpreter found".
fn qemu_paths(global: &GlobalArgs) -> Result<Vec<PathBuf>, BadArgument> {
    if global.qemu_path.is_empty() {
        return Ok(crate::emulator::DEFAULT_PATHS
            .iter()
            .map(Into::into)
            .collect());
    }
    for dir in &global.qemu_path {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(m) => {
                return Err(BadArgument(format!(
                    "--qemu-path {}: {}, not a directory",
                    dir.display(),
                    crate::machine::Meta::of(&m).kind.words()
                )));
            }
            Err(e) => {
                return Err(BadArgument(format!(
                    "--qemu-path {}: {}",
                    dir.display(),
                    crate::error::io_words(&e)
                )));
            }
        }
    }
    Ok(global.qemu_path.clone())
}

/// Read binfmt_misc; failing to read it at all is an environment problem.
fn snapshot(registry: &crate::binfmt::Registry) -> Result<crate::binfmt::Snapshot, Failure> {
    Ok(registry.snapshot()?)
}

/// The registration options a command line asks for (`install` and `export`).
pub(super) fn handler_options(
    global: &GlobalArgs,
    table: &ArchTable,
    arch_list: &str,
    args: &HandlerArgs,
) -> Result<crate::binfmt::plan::Options, BadArgument> {
    if args.credential {
        crate::messages::warn(crate::binfmt::plan::CREDENTIAL_WARNING);
    }
    Ok(crate::binfmt::plan::Options {
        interpreters: parse_overrides(table, &args.interpreter)?,
        search: qemu_paths(global)?,
        fix_binary: !args.no_fix_binary,
        credential: args.credential,
        preserve_argv0: !args.no_preserve_argv0,
        all: ArchTable::mentions_all(arch_list.split(',')),
    })
}

/// `--interpreter ARCH=PATH` pairs.
fn parse_overrides(
    table: &ArchTable,
    pairs: &[String],
) -> Result<HashMap<String, PathBuf>, BadArgument> {
    let mut out = HashMap::new();
    for p in pairs {
        let (name, path) = p
            .split_once('=')
            .ok_or_else(|| BadArgument(format!("--interpreter '{p}' is not ARCH=PATH")))?;
        let arch = table
            .lookup(name)
            .map_err(|e| BadArgument(format!("--interpreter: {e}")))?;
        out.insert(arch.name.clone(), PathBuf::from(path));
    }
    Ok(out)
}

/// What an install did, a line per entry (`install`, and `init`'s first pass).
fn print_install_report(r: &crate::binfmt::apply::Report) {
    use crate::messages::{self, printable};
    for (word, names) in [
        ("installed", &r.installed),
        ("replaced", &r.replaced),
        ("enabled", &r.enabled),
        ("unchanged", &r.unchanged),
    ] {
        for n in names {
            messages::out(&format!("{word:<10} {}", printable(n)));
        }
    }
    for n in &r.removed_foreign {
        messages::out(&format!(
            "{:<10} {} (another owner's entry whose rule overlapped ours; --replace-foreign)",
            "removed",
            printable(n)
        ));
    }
    for s in &r.skipped {
        messages::out(&format!(
            "{:<10} {}: {}",
            "skipped",
            s.arch,
            printable(&s.reason)
        ));
    }
    if let Some(f) = &r.failed {
        messages::error(&format!("{}: {}", printable(&f.name), printable(&f.error)));
        if !r.rolled_back.is_empty() {
            messages::error(&format!(
                "undid this run's changes: {}",
                r.rolled_back.join(", ")
            ));
        }
        for e in &r.rollback_errors {
            messages::error(&format!(
                "could not undo {}; run install again",
                printable(e)
            ));
        }
    }
}
