//! One file per subcommand: gather input, call the library, print human text or JSON.

mod inspect;

use crate::arch::ArchTable;
use crate::cli::{Cli, Command, GlobalArgs};
use crate::error::{Exit, Failure};

/// Run the parsed command line.
pub fn run(cli: Cli) -> Result<Exit, Failure> {
    match &cli.command {
        Command::Inspect(args) => inspect::run(&cli.global, args),
    }
}

/// The architecture table the user asked for; a bad `--arch-table` is bad input.
fn load_table(global: &GlobalArgs) -> Result<ArchTable, Failure> {
    ArchTable::load(global.arch_table.as_deref()).map_err(Failure::bad_input)
}
