//! `platforms`: the platforms this host is proven to run, as `docker buildx --platform` takes
//! them. Each is proven by running its probe (as `test` does, default set, in a chroot).

use std::time::Duration;

use crate::binfmt::Registry;
use crate::cli::GlobalArgs;
use crate::error::{Exit, Failure};
use crate::machine::Live;
use crate::messages;
use crate::probe::check;

pub fn run(global: &GlobalArgs) -> Result<Exit, Failure> {
    let table = super::load_table(global)?;
    let registry = Registry::new(&global.binfmt_dir);
    let snap = super::snapshot(&registry)?;
    let targets: Vec<check::Target<'_>> = check::default_set(&table, &snap)
        .into_iter()
        .map(check::Target::plain)
        .collect();
    // Levels, not QEMU's own facts: the variants buildx takes come from the level probes.
    let settings = check::Settings {
        chroot: true,
        timeout: Duration::from_secs(10),
        issues: None,
        cpu_models: false,
    };
    let report = check::test_arches(&Live::new(), &table, &snap, &targets, settings)?;
    for r in report.results.iter().filter(|r| !r.ok) {
        messages::warn(&format!(
            "{} is not listed: {}",
            r.platform,
            r.error.as_deref().unwrap_or("it did not run")
        ));
    }
    if global.json {
        messages::json(&serde_json::json!({ "supported": report.supported }));
    } else {
        messages::out(&report.supported.join(","));
    }
    Ok(Exit::Success)
}
