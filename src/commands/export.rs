//! `export --format systemd|debian|register`: the handlers `install` would register, as files
//! that systemd-binfmt or Debian's update-binfmts load at boot.

use std::path::Path;

use serde::Serialize;

use crate::arch::Host;
use crate::binfmt::apply::Skipped;
use crate::binfmt::plan;
use crate::cli::{ExportArgs, GlobalArgs};
use crate::error::{BadArgument, Exit, Failure};
use crate::export::{self, Output};
use crate::messages::{self, printable};

#[derive(Debug, Serialize)]
struct Report {
    format: &'static str,
    /// The directory written to; absent when the files were printed.
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<String>,
    files: Vec<export::File>,
    skipped: Vec<Skipped>,
}

pub fn run(global: &GlobalArgs, args: &ExportArgs) -> Result<Exit, Failure> {
    let table = super::load_table(global)?;
    let arches = table
        .lookup_list(&args.arch)
        .map_err(|e| BadArgument(format!("--arch: {e}")))?;
    let opts = super::handler_options(global, &table, &args.arch, &args.handler)?;
    let output = match &args.output {
        Some(dir) => Some(Output::check(dir, "--output")?),
        None => None,
    };
    let host = Host::detect(&table);
    let (planned, skipped) = plan::plan(&crate::machine::Live::new(), &arches, &opts, &host)?;
    let mut files = export::render_all(args.format, &planned);
    if let Some(out) = &output {
        out.write_all(&mut files)?;
    }
    let report = Report {
        format: args.format.as_str(),
        output: output.as_ref().map(|o| o.dir().display().to_string()),
        files,
        skipped,
    };
    if global.json {
        messages::json(&report);
    } else {
        print_report(&report);
    }
    Ok(Exit::Success)
}

fn print_report(r: &Report) {
    match &r.output {
        None => {
            for f in &r.files {
                messages::out(&format!("# file: {}", f.name));
                for line in f.content.lines() {
                    messages::out(&printable(line));
                }
            }
        }
        Some(dir) => {
            for f in &r.files {
                messages::out(&format!(
                    "{:<10} {}",
                    f.status,
                    printable(&Path::new(dir).join(&f.name).display().to_string())
                ));
            }
        }
    }
    for s in &r.skipped {
        messages::warn(&format!("skip {}: {}", s.arch, printable(&s.reason)));
    }
}
