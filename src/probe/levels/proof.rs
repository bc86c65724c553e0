//! What a handler, or the host's own CPU, is proven to reach: its family's level probe run
//! through the kernel the way `test` runs probes, once with the emulator's default CPU (one
//! start: the probe tries every level itself), and, where that stops below the family's top
//! and a `QEMU_CPU` value is known for a level above, once more with that value in the
//! environment. Only what a run showed is reported.

use std::time::Duration;

use serde::Serialize;

use super::{Family, Found, Level, family};
use crate::arch::Arch;
use crate::machine::proofs::{Key, digest};
use crate::machine::{Ask, AskProgram, Machine, Replies, Reply};

/// One thing to prove the levels of.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub arch: &'a Arch,
    /// On the file's name, for a handler under an extension rule.
    pub extension: Option<&'a str>,
    /// Run by an emulator (a handler), so `QEMU_CPU` may change what it reaches; `false` for
    /// the host's own CPU.
    pub emulated: bool,
    /// The handler's interpreter as its entry names it, when a second run's answer may be
    /// kept for later runs (`test`); `None`: it is asked every time.
    pub interpreter: Option<&'a std::path::Path>,
}

/// The levels one run proved, as JSON shows them (`levels` of a test result or an entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Proven {
    /// The highest level proven; `null` when not even the family's first one ran.
    pub highest: Option<&'static str>,
    /// Every level proven, lowest first.
    pub proven: Vec<&'static str>,
    /// Every check that ran, levels or not (`sve`, `zba`, `v`).
    pub checks: Vec<&'static str>,
    /// The family's highest level, to read `highest` against.
    pub top: &'static str,
    /// A `QEMU_CPU` value proven, by a second run, to reach higher than the default.
    pub lift: Option<Lift>,
}

/// What a second run with `QEMU_CPU` proved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lift {
    pub qemu_cpu: &'static str,
    pub highest: Option<&'static str>,
    pub proven: Vec<&'static str>,
}

impl Proven {
    fn of(found: &Found) -> Proven {
        Proven {
            highest: found.highest().map(|l| l.name),
            proven: found.levels(),
            checks: found.checks(),
            top: found.family.levels.last().map_or("", |l| l.name),
            lift: None,
        }
    }
}

/// The level worth a second run: the highest one the default did not reach that has a
/// `QEMU_CPU` value. None when the default reaches the family's top.
pub fn lift_candidate(found: &Found) -> Option<&'static Level> {
    let reached = found.levels().len();
    let levels = found.family.levels;
    if reached >= levels.len() {
        return None;
    }
    levels[reached..]
        .iter()
        .rev()
        .find(|l| l.qemu_cpu.is_some())
}

/// The platforms a proof lets `arch` claim, as containerd and BuildKit write them: each
/// proven level's (`levels::platform`), each once, the table's own platforms first in its
/// order (`linux/arm/v7` before `v6`), the rest lowest level first (`linux/amd64`,
/// `linux/amd64/v2`, …). The bare platform when no level was proven (the echo probe still
/// ran); levels reached only with `QEMU_CPU` are not claimed.
pub fn platforms(arch: &Arch, proven: &Proven) -> Vec<String> {
    let mut by_level: Vec<String> = Vec::new();
    for l in &proven.proven {
        if let Some(p) = super::platform(arch, l) {
            if !by_level.contains(&p) {
                by_level.push(p);
            }
        }
    }
    if by_level.is_empty() {
        return vec![arch.platform.clone()];
    }
    let mut out: Vec<String> = arch
        .platforms()
        .into_iter()
        .filter(|p| by_level.contains(p))
        .collect();
    for p in by_level {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// Level probes started by [`start`].
pub struct Proving<'m> {
    machine: &'m dyn Machine,
    /// Per subject: its family and the index of its ask; None: nothing to prove.
    plan: Vec<Option<(&'static Family, usize)>>,
    subjects: Vec<(Arch, Option<String>, bool)>,
    first: Box<dyn Replies>,
    chroot: bool,
    timeout: Duration,
}

impl std::fmt::Debug for Proving<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proving").field("plan", &self.plan).finish()
    }
}

/// Start the default runs: one level probe per subject whose arch has a family, all at once.
pub fn start<'m>(
    machine: &'m dyn Machine,
    subjects: &[Subject<'_>],
    chroot: bool,
    timeout: Duration,
) -> Proving<'m> {
    let mut asks = Vec::new();
    let mut plan = Vec::new();
    for s in subjects {
        match family(s.arch) {
            Some(f) => {
                plan.push(Some((f, asks.len())));
                asks.push(ask(s.arch, s.extension, chroot, None));
            }
            None => plan.push(None),
        }
    }
    let first = machine.start_asking(&asks, timeout);
    Proving {
        machine,
        plan,
        subjects: subjects
            .iter()
            .map(|s| (s.arch.clone(), s.extension.map(str::to_string), s.emulated))
            .collect(),
        first,
        chroot,
        timeout,
    }
}

fn ask<'a>(arch: &'a Arch, extension: Option<&'a str>, chroot: bool, cpu: Option<&str>) -> Ask<'a> {
    Ask {
        arch,
        program: AskProgram::Levels,
        extension,
        chroot,
        env: cpu
            .map(|c| vec![("QEMU_CPU".to_string(), c.to_string())])
            .unwrap_or_default(),
    }
}

/// What a reply proves for `family`, or why nothing.
fn read(family: &'static Family, reply: &Reply) -> Result<Found, String> {
    match reply.exit {
        Some(code) => family
            .decode(code)
            .ok_or_else(|| format!("the level probe exited {code}, which it never does")),
        None => Err(reply
            .failure
            .clone()
            .unwrap_or_else(|| "the level probe did not run".into())),
    }
}

impl Proving<'_> {
    /// Wait for the default runs, make the second runs that may lift a level (all at once),
    /// and report: one entry per subject, `None` where its arch has no level probe or the
    /// probe did not run its course (logged).
    pub fn finish(self) -> Vec<Option<Proven>> {
        let replies = self.first.collect();
        let firsts: Vec<Option<Reply>> = self
            .plan
            .iter()
            .map(|p| p.map(|(_, at)| replies.get(at).cloned().unwrap_or_default()))
            .collect();
        let subjects: Vec<Subject<'_>> = self
            .subjects
            .iter()
            .map(|(arch, extension, emulated)| Subject {
                arch,
                extension: extension.as_deref(),
                emulated: *emulated,
                interpreter: None,
            })
            .collect();
        conclude(self.machine, &subjects, &firsts, self.chroot, self.timeout)
    }
}

/// Report the levels of `subjects` from their default runs already made (`firsts[i]`, the
/// reply of subject `i`'s level probe, or of the echo probe joined to it; `None` where none
/// ran), after the second runs that may lift a level (all at once): one entry per subject,
/// `None` where its arch has no level probe or the probe did not run its course (logged).
pub fn conclude(
    machine: &dyn Machine,
    subjects: &[Subject<'_>],
    firsts: &[Option<Reply>],
    chroot: bool,
    timeout: Duration,
) -> Vec<Option<Proven>> {
    let mut lifting = Lifting::new(machine, chroot, timeout);
    for (i, (s, first)) in subjects.iter().zip(firsts).enumerate() {
        if let Some(reply) = first {
            lifting.offer(i, s, reply);
        }
    }
    lifting.conclude(subjects, firsts)
}

/// Second runs, each started as soon as the default run that calls for it is in, so that it
/// runs beside the probes still running rather than after them all. What a static QEMU
/// answers to a `QEMU_CPU` value does not change while its file does not, so where the
/// subject names its interpreter, the answer is kept for later runs
/// ([`crate::machine::proofs::Key::asked`]: only when the file the default run ran is the
/// one the interpreter's path names) and a kept one is used instead of a start.
pub struct Lifting<'m> {
    machine: &'m dyn Machine,
    chroot: bool,
    timeout: Duration,
    /// Per second run: its subject's index, the level it tries for, its reply to come.
    started: Vec<(usize, &'static Level, Second)>,
}

/// A second run's reply: kept from an earlier run, or to come (and to keep under the key,
/// when there is one).
enum Second {
    Kept(Reply),
    Asked(Box<dyn Replies>, Option<Key>),
}

impl std::fmt::Debug for Lifting<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tries: Vec<(usize, &str)> = self.started.iter().map(|(i, l, _)| (*i, l.name)).collect();
        f.debug_struct("Lifting").field("started", &tries).finish()
    }
}

impl<'m> Lifting<'m> {
    pub fn new(machine: &'m dyn Machine, chroot: bool, timeout: Duration) -> Lifting<'m> {
        Lifting {
            machine,
            chroot,
            timeout,
            started: Vec::new(),
        }
    }

    /// Subject `i`'s default run is in: start its second run when it is emulated and stopped
    /// below a level with a `QEMU_CPU` value, unless its answer is kept.
    pub fn offer(&mut self, i: usize, subject: &Subject<'_>, first: &Reply) {
        if !subject.emulated || self.started.iter().any(|(j, _, _)| *j == i) {
            return;
        }
        let Some(found) = family(subject.arch).and_then(|f| read(f, first).ok()) else {
            return;
        };
        let Some(level) = lift_candidate(&found) else {
            return;
        };
        let cpu = level.qemu_cpu.unwrap_or_default();
        let key = subject.interpreter.zip(first.exe).and_then(|(path, exe)| {
            let image = super::program(subject.arch)?.image;
            let question = format!(
                "levels arch={} QEMU_CPU={cpu} probe={:016x}",
                subject.arch.name,
                digest(&image)
            );
            Key::asked(&question, path, exe)
        });
        if let Some(reply) = key.as_ref().and_then(|k| self.machine.kept(k)) {
            tracing::debug!(
                "{}: QEMU_CPU={cpu}: kept from an earlier run of this interpreter file",
                subject.arch.name
            );
            self.started.push((i, level, Second::Kept(reply)));
            return;
        }
        let asks = [ask(
            subject.arch,
            subject.extension,
            self.chroot,
            level.qemu_cpu,
        )];
        let replies = self.machine.start_asking(&asks, self.timeout);
        self.started.push((i, level, Second::Asked(replies, key)));
    }

    /// Wait for the second runs and report, as [`conclude`] does; `firsts` are the default
    /// runs offered (a subject whose default run was not offered gets no second run).
    pub fn conclude(
        self,
        subjects: &[Subject<'_>],
        firsts: &[Option<Reply>],
    ) -> Vec<Option<Proven>> {
        let mut out: Vec<Option<(Found, Proven)>> = Vec::new();
        for (s, first) in subjects.iter().zip(firsts) {
            out.push(family(s.arch).zip(first.as_ref()).and_then(|(f, reply)| {
                match read(f, reply) {
                    Ok(found) => Some((found, Proven::of(&found))),
                    Err(why) => {
                        tracing::info!("{}: levels not proven: {why}", s.arch.name);
                        None
                    }
                }
            }));
        }
        for (i, level, second) in self.started {
            let reply = match second {
                Second::Kept(reply) => reply,
                Second::Asked(replies, key) => {
                    let reply = replies.collect().into_iter().next().unwrap_or_default();
                    // Kept only when the second run ran the very file the first did.
                    let first = firsts.get(i).and_then(|f| f.as_ref()).and_then(|f| f.exe);
                    if let Some(key) = key.filter(|_| reply.exe.is_some() && reply.exe == first) {
                        self.machine.keep(&key, &reply);
                    }
                    reply
                }
            };
            let Some((found, proven)) = out.get_mut(i).and_then(Option::as_mut) else {
                continue;
            };
            let name = &subjects[i].arch.name;
            let cpu = level.qemu_cpu.unwrap_or_default();
            match read(found.family, &reply) {
                Ok(lifted) if lifted.levels().len() > found.levels().len() => {
                    proven.lift = Some(Lift {
                        qemu_cpu: cpu,
                        highest: lifted.highest().map(|l| l.name),
                        proven: lifted.levels(),
                    });
                }
                Ok(lifted) => tracing::info!(
                    "{name}: QEMU_CPU={cpu} reached {:?}, no higher than the default",
                    lifted.highest().map(|l| l.name)
                ),
                Err(why) => tracing::info!("{name}: QEMU_CPU={cpu}: {why}"),
            }
        }
        out.into_iter().map(|o| o.map(|(_, p)| p)).collect()
    }
}

#[cfg(test)]
mod tests;
