//! One file per subcommand: gather input, call the library, print human text or JSON.

mod diagnose;
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

use crate::arch::ArchTable;
use crate::cli::{Cli, Command, GlobalArgs};
use crate::error::{Exit, Failure};

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
    }
}

/// The architecture table the user asked for; a bad `--arch-table` is bad input.
fn load_table(global: &GlobalArgs) -> Result<ArchTable, Failure> {
    ArchTable::load(global.arch_table.as_deref()).map_err(Failure::bad_input)
}

/// Where to look for interpreters: `--qemu-path` dirs, else the defaults.
fn qemu_paths(global: &GlobalArgs) -> Vec<std::path::PathBuf> {
    if global.qemu_path.is_empty() {
        crate::emulator::DEFAULT_PATHS
            .iter()
            .map(Into::into)
            .collect()
    } else {
        global.qemu_path.clone()
    }
}

/// Read binfmt_misc; failing to read it at all is an environment problem.
fn snapshot(registry: &crate::binfmt::Registry) -> Result<crate::binfmt::Snapshot, Failure> {
    registry.snapshot().map_err(Failure::environment)
}
