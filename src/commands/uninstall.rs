//! `uninstall`: remove our entries, or one named entry on purpose. Never writes `status`.

use anyhow::anyhow;
use serde::Serialize;

use crate::binfmt::Registry;
use crate::cli::{GlobalArgs, UninstallArgs};
use crate::error::{Exit, Failure};
use crate::messages::{self, printable};

#[derive(Debug, Default, Serialize)]
struct Report {
    removed: Vec<String>,
    absent: Vec<String>,
}

pub fn run(global: &GlobalArgs, args: &UninstallArgs) -> Result<Exit, Failure> {
    let table = super::load_table(global)?;
    let names: Vec<String> = match (&args.arch, &args.name) {
        (Some(list), _) => table
            .lookup_list(list)
            .map_err(|e| Failure::bad_input(anyhow!("--arch: {e}")))?
            .into_iter()
            .filter_map(|a| a.entry_name())
            .collect(),
        (None, Some(name)) => {
            crate::rule::check_entry_name(name).map_err(|e| {
                Failure::bad_input(anyhow!("--name '{name}' is not an entry name: {e}"))
            })?;
            vec![name.clone()]
        }
        (None, None) => unreachable!("clap requires --arch or --name"),
    };
    let registry = Registry::new(&global.binfmt_dir);
    if !registry.dir().join("register").exists() {
        return Err(Failure::environment(anyhow!(
            "binfmt_misc is not mounted at {}; nothing to uninstall",
            registry.dir().display()
        )));
    }
    let mut report = Report::default();
    for name in names {
        match registry.remove(&name) {
            Ok(true) => report.removed.push(name),
            Ok(false) => report.absent.push(name),
            Err(e) => {
                let path = registry.dir().join(&name);
                let failure = anyhow!("cannot remove {}: {e}", path.display());
                return Err(match e.kind() {
                    std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::ReadOnlyFilesystem => Failure::environment(failure),
                    _ => Failure {
                        exit: Exit::Problem,
                        error: failure,
                    },
                });
            }
        }
    }
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
