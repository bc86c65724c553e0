//! What `test` learns beside each verdict, started with the probes and collected after
//! them: what QEMU each probe's handler runs, and the levels the handler (or the host's own
//! CPU) reaches. The levels come from the probe itself where its arch has a level probe (the
//! echo probe joined to it: `levels::echo_then_levels`), so the default run costs no start
//! of its own; what is left is the second run that may lift a level, started as soon as the
//! probe that calls for it is in ([`Extras::offer`]).

use std::path::{Path, PathBuf};

use super::Settings;
use crate::arch::Arch;
use crate::binfmt::Snapshot;
use crate::machine::{Machine, Reply};
use crate::probe::levels::proof::{self, Lifting, Proven};
use crate::probe::runner::Job;
use crate::qemu::Facts;
use crate::qemu::ask::{self, Asking};
use crate::qemu::known::IssueTable;
use crate::sys::exec::FileId;

/// The questions in flight.
pub(super) struct Extras<'m, 'i> {
    /// Per probe: its arch, the extension on its name, and the interpreter of the handler
    /// that runs it, if one does.
    subjects: Vec<(&'m Arch, Option<&'m str>, Option<PathBuf>)>,
    /// The second runs started so far.
    lifting: Lifting<'m>,
    /// The interpreter questions, and per probe the index of its subject there.
    asking: Option<(Asking<'m>, Vec<Option<usize>>, &'i IssueTable)>,
}

/// Start, for each probe (`tested[i]` runs `jobs[i]`), with `settings.issues`, the questions
/// to its handler's interpreter.
pub(super) fn start<'m, 'i>(
    machine: &'m dyn Machine,
    snap: &'m Snapshot,
    tested: &[(&'m Arch, Option<&'m str>)],
    jobs: &[Job],
    settings: Settings<'i>,
) -> Extras<'m, 'i> {
    let handlers: Vec<Option<&crate::binfmt::Entry>> = jobs
        .iter()
        .map(|j| snap.handler_for(Path::new(&j.file), &j.image))
        .collect();
    let subjects = tested
        .iter()
        .zip(&handlers)
        .map(|(&(arch, extension), h)| (arch, extension, h.map(|e| PathBuf::from(&e.interpreter))))
        .collect();
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
            ask::Keep::ForTheBoot,
        );
        (asking, index, issues)
    });
    Extras {
        subjects,
        lifting: Lifting::new(machine, settings.chroot, settings.timeout),
        asking,
    }
}

/// A probe's entry in the level proof.
fn subject<'a>(
    (arch, extension, interpreter): &'a (&'a Arch, Option<&'a str>, Option<PathBuf>),
) -> proof::Subject<'a> {
    proof::Subject {
        arch,
        extension: *extension,
        emulated: interpreter.is_some(),
        interpreter: interpreter.as_deref(),
    }
}

impl Extras<'_, '_> {
    /// Probe `i`, joined to its level probe, is in with `first`: start the second run it
    /// calls for, if any.
    pub(super) fn offer(&mut self, i: usize, first: &Reply) {
        if let Some(s) = self.subjects.get(i) {
            self.lifting.offer(i, &subject(s), first);
        }
    }

    /// Per probe: the levels proven, from its own run (`firsts[i]`, where it was joined to
    /// the level probe) and a second run where one may lift a level, and what its handler's
    /// QEMU said of itself; `ran[i]` is the file probe `i` found the kernel running, which
    /// decides whether a version kept from an earlier run stands. A probe not
    /// [offered](Self::offer) gets no second run.
    pub(super) fn finish(
        self,
        firsts: &[Option<Reply>],
        ran: &[Option<FileId>],
    ) -> (Vec<Option<Proven>>, Vec<Facts>) {
        let subjects: Vec<proof::Subject<'_>> = self.subjects.iter().map(subject).collect();
        let levels = self.lifting.conclude(&subjects, firsts);
        let facts = match self.asking {
            Some((asking, index, issues)) => {
                let mut seen = vec![None; index.iter().flatten().count()];
                for (i, k) in index.iter().enumerate() {
                    if let (Some(k), Some(exe)) = (k, ran.get(i)) {
                        if let Some(slot) = seen.get_mut(*k) {
                            *slot = *exe;
                        }
                    }
                }
                let answers = asking.finish_seen(issues, &seen);
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
