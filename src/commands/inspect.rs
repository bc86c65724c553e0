//! `inspect FILE…`: format, platform and runnability of each file.

use crate::binfmt::Registry;
use crate::cli::{GlobalArgs, InspectArgs};
use crate::error::{BadArgument, Exit, Failure};
use crate::inspect::{Expect, Inspection, Inspector};
use crate::machine::{Live, Machine};
use crate::messages::{self, printable};

pub fn run(global: &GlobalArgs, args: &InspectArgs) -> Result<Exit, Failure> {
    let table = super::load_table(global)?;
    // Resolve --expect before reading any file, so a typo fails fast and alone.
    let expected = match &args.expect {
        Some(name) => {
            Some(Expect::parse(&table, name).map_err(|e| BadArgument(format!("--expect: {e}")))?)
        }
        None => None,
    };
    let registry = Registry::new(&global.binfmt_dir);
    let machine = Live::new();
    let snapshot = machine.binfmt(registry.dir()).unwrap_or_else(|e| {
        messages::warn(&format!(
            "{e}; judging runnability without binfmt_misc handlers"
        ));
        crate::binfmt::Snapshot::empty()
    });
    let inspector = Inspector::new(&machine, &table, snapshot);

    let mut reports = Vec::with_capacity(args.files.len());
    let mut exit = Exit::Success;
    for path in &args.files {
        let report = inspector.inspect(path);
        let mismatch = expected.as_ref().and_then(|x| x.mismatch(&report));
        if report.unreadable {
            exit = Exit::BadInput;
        } else if (report.error.is_some() || mismatch.is_some()) && exit == Exit::Success {
            exit = Exit::Problem;
        }
        reports.push(Row { report, mismatch });
    }

    if global.json {
        let docs: Vec<serde_json::Value> = reports.iter().map(Row::to_json).collect();
        messages::json(&docs);
    } else {
        print_table(&reports);
        for row in &reports {
            if let Some(m) = &row.mismatch {
                messages::warn(&format!("{}: {m}", printable(&row.report.path)));
            }
            if row.report.unreadable {
                messages::error(&printable(
                    row.report.error.as_deref().unwrap_or("unreadable"),
                ));
            }
        }
    }
    Ok(exit)
}

struct Row {
    report: Inspection,
    mismatch: Option<String>,
}

impl Row {
    fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.report).unwrap_or_default();
        if let (Some(obj), Some(m)) = (v.as_object_mut(), &self.mismatch) {
            obj.insert("mismatch".into(), m.clone().into());
        }
        v
    }
}

fn print_table(rows: &[Row]) {
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|row| {
            let r = &row.report;
            [
                printable(&r.path),
                r.format.as_str().to_string(),
                r.platform.clone().unwrap_or_else(|| "-".into()),
                r.runnable.as_str().to_string(),
                printable(&details(r)),
            ]
        })
        .collect();
    let header = ["PATH", "FORMAT", "PLATFORM", "RUNNABLE", "DETAILS"].map(String::from);
    let rows: Vec<Vec<String>> = std::iter::once(header)
        .chain(cells)
        .map(Vec::from)
        .collect();
    messages::table(&rows, 2);
}

fn details(r: &Inspection) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(e) = &r.error {
        parts.push(format!("error: {e}"));
        return parts.join(", ");
    }
    if let Some(k) = &r.kind {
        parts.push(k.clone());
    }
    if let Some(abi) = &r.abi {
        parts.push(abi.clone());
    }
    match (r.is_static, &r.interpreter) {
        (Some(true), _) if r.kind.as_deref() != Some("static-pie") => parts.push("static".into()),
        (Some(true), _) => {}
        (Some(false), Some(i)) => parts.push(format!("loader {i}")),
        (Some(false), None) => {}
        (None, Some(i)) => parts.push(format!("#! {i}")),
        (None, None) => {}
    }
    // A mark of the baseline alone says nothing a user needs to read.
    if let Some(n) = r.needs.as_ref().filter(|n| n.mask != 0) {
        let from: Vec<&str> = n.evidence.iter().map(|e| e.source.as_str()).collect();
        parts.push(format!("needs {} ({})", n.describe(), from.join(", ")));
    }
    if let Some(h) = &r.handler {
        parts.push(format!("handler {h}"));
    } else if r.runnable == crate::inspect::Runnable::No {
        if let Some(reason) = &r.reason {
            parts.push(reason.clone());
        }
    }
    parts.join(", ")
}
