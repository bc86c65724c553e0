//! What `test` learns beside each verdict, started with the probes and collected after
//! them: the levels each probe's handler (or the host's own CPU) reaches, and what QEMU the
//! handler runs.

use std::path::Path;

use super::Settings;
use crate::arch::Arch;
use crate::binfmt::Snapshot;
use crate::machine::Machine;
use crate::probe::levels::proof::{self, Proven, Proving};
use crate::probe::runner::Job;
use crate::qemu::Facts;
use crate::qemu::ask::{self, Asking};
use crate::qemu::known::IssueTable;

/// The questions in flight.
pub(super) struct Extras<'m, 'i> {
    proving: Proving<'m>,
    /// The interpreter questions, and per probe the index of its subject there.
    asking: Option<(Asking, Vec<Option<usize>>, &'i IssueTable)>,
}

/// Start, for each probe (`tested[i]` runs `jobs[i]`), its level probe through the same
/// handler, and with `settings.issues` the questions to that handler's interpreter.
pub(super) fn start<'m, 'i>(
    machine: &'m dyn Machine,
    snap: &Snapshot,
    tested: &[(&Arch, Option<&str>)],
    jobs: &[Job],
    settings: Settings<'i>,
) -> Extras<'m, 'i> {
    let handlers: Vec<Option<&crate::binfmt::Entry>> = jobs
        .iter()
        .map(|j| snap.handler_for(Path::new(&j.file), &j.image))
        .collect();
    let subjects: Vec<proof::Subject<'_>> = tested
        .iter()
        .zip(&handlers)
        .map(|(&(arch, extension), h)| proof::Subject {
            arch,
            extension,
            emulated: h.is_some(),
        })
        .collect();
    let proving = proof::start(machine, &subjects, settings.chroot, settings.timeout);
    let asking = settings.issues.map(|issues| {
        let mut subjects = Vec::new();
        let mut index = Vec::new();
        for (&(arch, extension), h) in tested.iter().zip(&handlers) {
            match h {
                Some(entry) => {
                    index.push(Some(subjects.len()));
                    subjects.push(ask::Subject {
                        arch,
                        extension,
                        interpreter: Path::new(&entry.interpreter),
                    });
                }
                None => index.push(None),
            }
        }
        let asking = ask::start(
            machine,
            &subjects,
            settings.chroot,
            settings.timeout,
            settings.cpu_models,
        );
        (asking, index, issues)
    });
    Extras { proving, asking }
}

impl Extras<'_, '_> {
    /// Per probe: the levels proven, and what its handler's QEMU said of itself.
    pub(super) fn finish(self) -> (Vec<Option<Proven>>, Vec<Facts>) {
        let levels = self.proving.finish();
        let facts = match self.asking {
            Some((asking, index, issues)) => {
                let answers = asking.finish(issues);
                index
                    .iter()
                    .map(|i| {
                        i.and_then(|i| answers.get(i).cloned().flatten())
                            .unwrap_or_default()
                    })
                    .collect()
            }
            None => vec![Facts::default(); levels.len()],
        };
        (levels, facts)
    }
}
