//! Carrying out a plan of registrations: all or nothing, and safe when many processes do the
//! same at once.
//!
//! No lock file: racing installers are often in different containers that share the kernel's
//! binfmt_misc but no directory. Instead each step re-reads the kernel's state when a write
//! collides (EEXIST), and counts "someone else already made exactly this entry" as done.

use serde::Serialize;

use super::Registry;
use super::entry::Entry;
use super::registration::{Registration, from_entry};
use crate::emulator::Pin;

/// One step of a plan.
#[derive(Debug, Clone)]
pub enum Step {
    /// Nothing there yet.
    Register(Registration, Option<Pin>),
    /// Entries there now that give way: ours that differs, and other owners' overlapping
    /// entries the user asked to replace.
    Replace {
        old: Vec<Entry>,
        new: Registration,
        pin: Option<Pin>,
    },
    /// Already exactly as wanted.
    Unchanged(String),
    /// Exactly as wanted but disabled (an entry, or `status`: binfmt_misc as a whole), so
    /// matching nothing: write `1` to it.
    Enable(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub arch: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failed {
    pub name: String,
    pub error: String,
}

/// What happened. Keys are the JSON contract.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Report {
    pub installed: Vec<String>,
    pub unchanged: Vec<String>,
    pub replaced: Vec<String>,
    /// Entries (or `status`, binfmt_misc as a whole) that were disabled, enabled again.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub enabled: Vec<String>,
    /// Other owners' entries removed to make way for ours (`--replace-foreign`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed_foreign: Vec<String>,
    pub skipped: Vec<Skipped>,
    /// The step that failed, when one did; everything this run changed was then undone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<Failed>,
    /// Entries restored or removed while undoing a failed run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rolled_back: Vec<String>,
    /// Undo steps that themselves failed: the instance may need `install` again.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rollback_errors: Vec<String>,
    /// The first write was refused for lack of permission or a read-only mount.
    #[serde(skip)]
    pub not_permitted: bool,
}

/// How a change can be undone.
enum Undo {
    Remove(String),
    Restore(Registration),
    Disable(String),
}

/// Times a step re-reads and retries after colliding with another process.
const RACE_RETRIES: usize = 8;

pub fn apply(registry: &Registry, steps: &[Step], mut report: Report) -> Report {
    let mut undo: Vec<Undo> = Vec::new();
    for step in steps {
        let result = match step {
            Step::Unchanged(name) => {
                report.unchanged.push(name.clone());
                Ok(())
            }
            Step::Register(new, pin) => {
                converge(registry, new, &[], pin.as_ref(), &mut undo).map(|outcome| match outcome {
                    Outcome::Made => report.installed.push(new.name.clone()),
                    Outcome::AlreadyThere => report.unchanged.push(new.name.clone()),
                })
            }
            Step::Replace { old, new, pin } => {
                converge(registry, new, old, pin.as_ref(), &mut undo).map(|outcome| {
                    for o in old.iter().filter(|o| o.name != new.name) {
                        report.removed_foreign.push(o.name.clone());
                    }
                    match outcome {
                        Outcome::Made => report.replaced.push(new.name.clone()),
                        Outcome::AlreadyThere => report.unchanged.push(new.name.clone()),
                    }
                })
            }
            Step::Enable(name) => registry.enable(name, true).map(|()| {
                undo.push(Undo::Disable(name.clone()));
                report.enabled.push(name.clone());
            }),
        };
        if let Err(e) = result {
            report.not_permitted =
                is_permission(&e) && report.installed.is_empty() && report.replaced.is_empty();
            report.failed = Some(Failed {
                name: match step {
                    Step::Register(r, _) | Step::Replace { new: r, .. } => r.name.clone(),
                    Step::Unchanged(n) | Step::Enable(n) => n.clone(),
                },
                error: describe(&e, registry),
            });
            roll_back(registry, undo, &mut report);
            report.installed.clear();
            report.replaced.clear();
            report.enabled.clear();
            report.removed_foreign.clear();
            return report;
        }
    }
    report
}

enum Outcome {
    Made,
    AlreadyThere,
}

/// Make the entry for `new` exist exactly, removing `old` entries of other names first.
/// `pin`, when given, is the interpreter as it was checked: it must still be that file just
/// before the write and just after it (the kernel opens an `F` interpreter during the write),
/// or the entry is taken out again.
fn converge(
    registry: &Registry,
    new: &Registration,
    old: &[Entry],
    pin: Option<&Pin>,
    undo: &mut Vec<Undo>,
) -> std::io::Result<Outcome> {
    let verify = || pin.map_or(Ok(()), |p| p.verify().map_err(std::io::Error::other));
    for old in old.iter().filter(|o| o.name != new.name) {
        remove_recording(registry, old, undo)?;
    }
    for _ in 0..RACE_RETRIES {
        match current(registry, &new.name)? {
            Some(e) if new.same_as(&e) => return Ok(Outcome::AlreadyThere),
            Some(e) => remove_recording(registry, &e, undo)?,
            None => {}
        }
        verify()?;
        #[cfg(debug_assertions)]
        pause_for_tests(&new.name);
        tracing::debug!("writing {}", new.register_string());
        match registry.register(new) {
            Ok(()) => {
                undo.push(Undo::Remove(new.name.clone()));
                // Made with whatever the path named during the write: if that was not the
                // checked file, the rollback takes the entry out again.
                verify()?;
                return Ok(Outcome::Made);
            }
            // Another process registered the name between our read and our write: look again.
            Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EEXIST as i32) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other(format!(
        "{} kept changing under us ({RACE_RETRIES} attempts); another tool is rewriting it",
        new.name
    )))
}

/// Remove an entry, remembering how to put it back.
fn remove_recording(registry: &Registry, e: &Entry, undo: &mut Vec<Undo>) -> std::io::Result<()> {
    tracing::debug!("removing {}", e.name);
    if registry.remove(&e.name)? {
        if let Some(r) = from_entry(e) {
            undo.push(Undo::Restore(r));
        }
    }
    Ok(())
}

fn current(registry: &Registry, name: &str) -> std::io::Result<Option<Entry>> {
    match super::read_control(&registry.dir().join(name)) {
        Ok(text) => Entry::parse(name, &text).map(Some).map_err(|reason| {
            std::io::Error::other(format!(
                "entry {name} is there but not in the kernel's format ({reason}); left alone"
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn roll_back(registry: &Registry, undo: Vec<Undo>, report: &mut Report) {
    for u in undo.into_iter().rev() {
        let (what, result) = match &u {
            Undo::Remove(name) => (name.clone(), registry.remove(name).map(|_| ())),
            Undo::Restore(r) => (r.name.clone(), {
                let _ = registry.remove(&r.name);
                registry.register(r)
            }),
            Undo::Disable(name) => (name.clone(), registry.enable(name, false)),
        };
        match result {
            Ok(()) => report.rolled_back.push(what),
            Err(e) => report.rollback_errors.push(format!("{what}: {e}")),
        }
    }
}

fn is_permission(e: &std::io::Error) -> bool {
    use nix::errno::Errno;
    [Errno::EACCES, Errno::EPERM, Errno::EROFS]
        .iter()
        .any(|x| e.raw_os_error() == Some(*x as i32))
}

fn describe(e: &std::io::Error, registry: &Registry) -> String {
    let register = registry.dir().join("register");
    if is_permission(e) {
        format!(
            "cannot write {}: {e} (run as root, or with CAP_SYS_ADMIN)",
            register.display()
        )
    } else {
        format!("{}: {e}", register.display())
    }
}

/// Tests only (debug builds): with `BINFMT_SETUP_TEST_PAUSE_DIR` set, stop just before each
/// write to `register`, announce it with `<dir>/<entry>.ready` (holding this process's id),
/// and go on when `<dir>/<entry>.go` appears (or after 30 s), so a test can change the
/// interpreter or kill the process there.
#[cfg(debug_assertions)]
fn pause_for_tests(name: &str) {
    let Some(dir) = std::env::var_os("BINFMT_SETUP_TEST_PAUSE_DIR") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let _ = std::fs::write(
        dir.join(format!("{name}.ready")),
        std::process::id().to_string(),
    );
    let go = dir.join(format!("{name}.go"));
    let start = std::time::Instant::now();
    while !go.exists() && start.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
