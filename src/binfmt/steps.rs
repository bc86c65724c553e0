//! From planned registrations to the steps that make binfmt_misc hold them: what is there
//! already, what must be replaced, what belongs to another owner and is left alone.
//! `install`, `init` and its keep-running checks all go through here.

use super::Snapshot;
use super::apply::{Report, Skipped, Step};
use super::plan::Planned;

/// The steps for one request, the report they start from (skips filled in), and warnings
/// about entries that could not be judged.
#[derive(Debug)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub report: Report,
    pub warnings: Vec<String>,
}

impl Plan {
    /// Whether carrying it out would change anything.
    pub fn changes(&self) -> bool {
        self.steps.iter().any(|s| !matches!(s, Step::Unchanged(_)))
    }
}

/// The steps that bring `snap` to the planned entries: `Unchanged` where one is already
/// exactly there, `Replace` where ours differs (or another owner's overlapping entry is to
/// go, with `replace_foreign`), `Register` otherwise. An arch whose rule overlaps another
/// owner's entry is skipped instead when `replace_foreign` is off. Shared with `init`.
pub fn steps_for(
    snap: &Snapshot,
    planned: Vec<Planned<'_>>,
    skipped: Vec<Skipped>,
    replace_foreign: bool,
) -> Plan {
    let mut steps: Vec<Step> = Vec::new();
    let mut report = Report {
        skipped,
        ..Report::default()
    };
    // A disabled binfmt_misc runs no handler at all: ours would be in place for nothing.
    if snap.mounted && !snap.enabled && !planned.is_empty() {
        steps.push(Step::Enable("status".into()));
    }
    let warnings = snap
        .unreadable
        .iter()
        .filter(|u| !planned.iter().any(|p| p.reg.name == u.name))
        .map(|u| {
            format!(
                "entry {} is not in the kernel's format ({}); it was not checked for overlap",
                u.name, u.reason
            )
        })
        .collect();
    for Planned {
        arch,
        reg,
        emulator,
    } in planned
    {
        let pin = Some(emulator.pin);
        if let Some(u) = snap.unreadable.iter().find(|u| u.name == reg.name) {
            report.skipped.push(Skipped {
                arch: arch.name.clone(),
                reason: format!(
                    "an entry named {} is there but not in the kernel's format ({}); left alone (uninstall --name {} removes it)",
                    u.name, u.reason, u.name
                ),
            });
            continue;
        }
        let existing = snap.find(&reg.name);
        let foreign: Vec<_> = snap
            .entries
            .iter()
            .filter(|e| e.name != reg.name && reg.overlaps(e))
            .collect();
        if !foreign.is_empty() && !replace_foreign {
            let names: Vec<String> = foreign
                .iter()
                .map(|e| format!("{} ({})", e.name, e.interpreter))
                .collect();
            report.skipped.push(Skipped {
                arch: arch.name.clone(),
                reason: format!(
                    "its rule overlaps another owner's entry {}; left alone (--replace-foreign to override)",
                    names.join(", ")
                ),
            });
            continue;
        }
        let mut old: Vec<_> = foreign.into_iter().cloned().collect();
        tracing::debug!(
            "{}: {}",
            reg.name,
            match existing {
                Some(e) if reg.same_as(e) && old.is_empty() && !e.enabled => "there, disabled",
                Some(e) if reg.same_as(e) && old.is_empty() => "there already",
                Some(_) => "there, but different",
                None if old.is_empty() => "not there",
                None => "not there, another owner's entry overlaps",
            }
        );
        steps.push(match existing {
            Some(e) if reg.same_as(e) && old.is_empty() && !e.enabled => {
                Step::Enable(reg.name.clone())
            }
            Some(e) if reg.same_as(e) && old.is_empty() => Step::Unchanged(reg.name.clone()),
            Some(e) => {
                old.push(e.clone());
                Step::Replace { old, new: reg, pin }
            }
            None if old.is_empty() => Step::Register(reg, pin),
            None => Step::Replace { old, new: reg, pin },
        });
    }
    Plan {
        steps,
        report,
        warnings,
    }
}

/// What `uninstall` did. Keys are the JSON contract.
#[derive(Debug, Default, serde::Serialize)]
pub struct Removal {
    pub removed: Vec<String>,
    pub absent: Vec<String>,
}

/// Why entries could not be removed.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    #[error("{0}; nothing to uninstall")]
    NotMounted(super::MountError),
    #[error("cannot remove {}: {source}", .path.display())]
    Write {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl crate::error::Classify for RemoveError {
    fn class(&self) -> crate::error::Class {
        use crate::error::Class;
        match self {
            RemoveError::NotMounted(e) => e.class(),
            RemoveError::Write { source, .. } => match source.kind() {
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                    Class::Environment
                }
                _ => Class::Problem,
            },
        }
    }
}

/// Remove the entries named, each by writing -1 to its file; one already gone is `absent`.
/// Stops at the first that cannot be removed.
pub fn remove_entries(
    registry: &super::Registry,
    names: Vec<String>,
) -> Result<Removal, RemoveError> {
    registry
        .require_mounted()
        .map_err(RemoveError::NotMounted)?;
    let mut done = Removal::default();
    for name in names {
        match registry.remove(&name) {
            Ok(true) => done.removed.push(name),
            Ok(false) => done.absent.push(name),
            Err(source) => {
                return Err(RemoveError::Write {
                    path: registry.dir().join(&name),
                    source,
                });
            }
        }
    }
    Ok(done)
}
