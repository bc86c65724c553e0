//! `uninstall`: remove our entries, or one named entry on purpose. Never writes `status`.

use crate::binfmt::{Registry, steps};
use crate::cli::{GlobalArgs, UninstallArgs};
use crate::error::{BadArgument, Exit, Failure};
use crate::messages::{self, printable};

pub fn run(global: &GlobalArgs, args: &UninstallArgs) -> Result<Exit, Failure> {
    let table = super::load_table(global)?;
    let names: Vec<String> = match (&args.arch, &args.name) {
        (Some(list), _) => table
            .lookup_list(list)
            .map_err(|e| BadArgument(format!("--arch: {e}")))?
            .into_iter()
            .filter_map(|a| a.entry_name())
            .collect(),
        (None, Some(name)) => {
            crate::rule::check_entry_name(name)
                .map_err(|e| BadArgument(format!("--name '{name}' is not an entry name: {e}")))?;
            vec![name.clone()]
        }
        (None, None) => unreachable!("clap requires --arch or --name"),
    };
    let registry = Registry::new(&global.binfmt_dir);
    let report = steps::remove_entries(&registry, names)?;
    if global.json {
        messages::json(&report);
    } else {
        for n in &report.removed {
            messages::out(&format!("removed  {}", printable(n)));
        }
        for n in &report.absent {
            messages::out(&format!("absent   {}", printable(n)));
        }
    }
    Ok(Exit::Success)
}
