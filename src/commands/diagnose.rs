//! `diagnose FILE|COMMAND [--root DIR] [--run]`: why it will not run, and the fix.

use std::path::Path;
use std::time::Duration;

use crate::arch::ArchTable;
use crate::binfmt::{Registry, Rule, Snapshot};
use crate::cli::{DiagnoseArgs, GlobalArgs};
use crate::diagnose::{Diagnoser, Diagnosis, RootFs, RunOutcome, run, settle};
use crate::error::{BadArgument, Exit, Failure};
use crate::inspect::Inspector;
use crate::machine::{Live, Machine};
use crate::messages::{self, printable};
use crate::qemu::Facts;
use crate::qemu::ask;
use crate::qemu::known::IssueTable;

pub fn run(global: &GlobalArgs, args: &DiagnoseArgs) -> Result<Exit, Failure> {
    let table = super::load_table(global)?;
    let issues = super::load_issues(global, &table)?;
    if args.target.is_empty() {
        return Err(BadArgument("give a file or a command to diagnose".into()).into());
    }
    let machine = Live::new();
    let root = match &args.root {
        Some(dir) => RootFs::new(&machine, dir)?,
        None => RootFs::host(&machine),
    };
    let registry = Registry::new(&global.binfmt_dir);
    let snapshot = machine.binfmt(registry.dir())?;
    let inspector = Inspector::new(&machine, &table, snapshot.clone());
    let diagnoser = Diagnoser::new(&inspector, root.clone(), registry.dir());
    let mut diagnosis = diagnoser.diagnose(&args.target)?;

    let timeout = Duration::from_secs(args.timeout.max(1));
    let chroot = root.is_given().then(|| root.dir());
    let ran = match (args.run, &diagnosis.exec_path) {
        (false, _) | (true, None) => None,
        (true, Some(path)) => Some(run::run(path, chroot, timeout)?),
    };
    let agrees = match (&ran, diagnosis.exec_path.clone()) {
        (Some(r), Some(path)) => {
            let rerun = |k: &str, v: &str| run::run_with(&path, chroot, timeout, Some((k, v)));
            Some(settle::settle(&mut diagnosis, r, &machine, &table, &rerun)?)
        }
        _ => None,
    };
    let qemu = handler_qemu(&machine, &table, &snapshot, &diagnosis, &issues);
    if let (Some(handler), Some(version)) = (&diagnosis.handler, &qemu.qemu_version) {
        for w in &qemu.known_issues {
            messages::warn(&w.sentence(handler, version));
        }
    }

    if global.json {
        let mut doc = serde_json::to_value(&diagnosis).unwrap_or_default();
        if let Some(obj) = doc.as_object_mut() {
            obj.insert("qemu_version".into(), qemu.qemu_version.clone().into());
            obj.insert(
                "known_issues".into(),
                serde_json::to_value(&qemu.known_issues).unwrap_or_default(),
            );
        }
        if let (Some(obj), Some(r)) = (doc.as_object_mut(), &ran) {
            let mut run_doc = serde_json::to_value(r).unwrap_or_default();
            if let Some(run_obj) = run_doc.as_object_mut() {
                run_obj.insert("agrees".into(), agrees.unwrap_or(false).into());
            }
            obj.insert("run".into(), run_doc);
        }
        messages::json(&doc);
    } else {
        print_human(&diagnosis, ran.as_ref(), agrees, args.run);
        if let (Some(h), Some(v)) = (&diagnosis.handler, &qemu.qemu_version) {
            messages::out(&format!("  {:<9} {} runs QEMU {v}", "qemu:", printable(h)));
        }
    }
    Ok(if diagnosis.ok && agrees != Some(false) {
        Exit::Success
    } else {
        Exit::Problem
    })
}

/// What QEMU the handler that takes the program runs, asked as `test` asks (its arch's
/// probe through that handler, in an empty chroot); nothing when no handler takes it.
fn handler_qemu(
    machine: &Live,
    table: &ArchTable,
    snapshot: &Snapshot,
    d: &Diagnosis,
    issues: &IssueTable,
) -> Facts {
    let Some(entry) = d.handler.as_deref().and_then(|h| snapshot.find(h)) else {
        return Facts::default();
    };
    let extension = match &entry.rule {
        Rule::Extension(x) => Some(x.as_str()),
        Rule::Magic { .. } => None,
    };
    let arch = d
        .platform
        .as_deref()
        .and_then(|p| table.find(p))
        .or_else(|| table.by_interpreter(&entry.interpreter));
    let Some(arch) = arch else {
        return Facts::default();
    };
    let subject = ask::Subject {
        arch,
        extension,
        interpreter: Path::new(&entry.interpreter),
    };
    ask::start(
        machine,
        &[subject],
        true,
        Duration::from_secs(10),
        false,
        ask::Keep::No,
    )
    .finish(issues)
    .pop()
    .flatten()
    .unwrap_or_default()
}

fn print_human(d: &Diagnosis, ran: Option<&RunOutcome>, agrees: Option<bool>, asked: bool) {
    let line = |label: &str, text: &str| {
        messages::out(&format!("  {label:<9} {}", printable(text)));
    };
    messages::out(&format!("{}: {}", printable(&d.path), d.cause.as_str()));
    messages::out(&format!("  {}", printable(&d.message)));
    if d.chain.len() > 1 {
        let chain: Vec<String> = d.chain.iter().map(|l| l.describe()).collect();
        line("chain:", &chain.join(" -> "));
    }
    if let Some(error) = &d.error {
        let shown = match d.errno {
            Some(e) => format!("{error} ({e:?})"),
            None => format!("{error} (exec itself succeeds)"),
        };
        line("you see:", &shown);
    }
    if let Some(n) = &d.needs {
        line("needs:", &format!("{} ({})", n.describe(), n.sources()));
    }
    if let Some(a) = &d.available {
        line(
            "cpu:",
            &format!("{} runs up to {}", a.by, a.level.unwrap_or("no level")),
        );
    }
    if let Some(fix) = &d.fix {
        line("fix:", fix);
    }
    for note in &d.notes {
        line("note:", note);
    }
    match (ran, agrees) {
        (Some(r), Some(true)) => line("run:", &format!("{}, as predicted", r.describe())),
        (Some(r), _) if d.predicted.is_some() => line(
            "run:",
            &format!(
                "{} (DISAGREES: diagnose predicted {}; the run shows {})",
                r.describe(),
                d.predicted.map_or("", |c| c.as_str()),
                d.cause.as_str()
            ),
        ),
        (Some(r), _) => {
            let predicted = match d.errno {
                Some(e) => format!("exec to fail with {e:?}"),
                None => "exec to succeed".to_string(),
            };
            line(
                "run:",
                &format!(
                    "{} (DISAGREES: diagnose predicted {predicted})",
                    r.describe()
                ),
            );
        }
        (None, _) if asked => line("run:", "not run: there is no file to execute"),
        (None, _) => {}
    }
    if let Some(r) = ran {
        let stderr = r.stderr.trim_end();
        if !stderr.is_empty() {
            let first: Vec<&str> = stderr.lines().take(3).collect();
            line("stderr:", &first.join(" | "));
        }
    }
}
