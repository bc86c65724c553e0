//! Which registrations a request stands for: one per architecture, with its interpreter found
//! and checked, or a reason it is skipped. `install` applies them to the kernel; `export`
//! writes them as files for systemd-binfmt or Debian's update-binfmts, so both give the same
//! entries.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::apply::Skipped;
use super::rule::Registration;
use crate::arch::{Arch, Host};
use crate::emulator::{self, Emulator};
use crate::rule::{BINPRM_BUF_SIZE, kernel_buffer};

/// How handlers are to be registered.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--interpreter ARCH=PATH`, by canonical arch name.
    pub interpreters: HashMap<String, PathBuf>,
    /// Directories searched for `qemu-<cpu>-static`, then `qemu-<cpu>`.
    pub search: Vec<PathBuf>,
    /// `F`: open the interpreter now and use it everywhere (needs a static one).
    pub fix_binary: bool,
    /// `OC`: setuid programs run with their own credentials.
    pub credential: bool,
    /// `P` where the interpreter honours it (found by a probe): programs keep their own
    /// argv[0].
    pub preserve_argv0: bool,
    /// The request was `all`: an arch without an interpreter is skipped, not an error.
    pub all: bool,
}

/// A registration ready to be made, with the interpreter it was checked against.
#[derive(Debug, Clone)]
pub struct Planned<'t> {
    pub arch: &'t Arch,
    pub reg: Registration,
    pub emulator: Emulator,
}

impl<'t> Planned<'t> {
    /// The same registration with its interpreter checked again now: a plan kept for later
    /// (init's repair loop) must not register a file that changed since, nor refuse one that
    /// was legitimately upgraded.
    pub fn rechecked(&self) -> Result<Planned<'t>, String> {
        let emulator = emulator::check(&self.emulator.path, self.reg.flags.contains('F'))
            .map_err(|e| format!("{}: {e}", self.arch.name))?;
        if emulator.path != self.emulator.path {
            return Err(format!(
                "{}: interpreter {} now resolves to {}",
                self.arch.name,
                self.emulator.path.display(),
                emulator.path.display()
            ));
        }
        Ok(Planned {
            arch: self.arch,
            reg: self.reg.clone(),
            emulator,
        })
    }
}

/// The registrations for `arches`, and the arches skipped with their reasons. An error is bad
/// input (a missing or unfit interpreter the user asked for by name): nothing may be written.
///
/// Two questions are answered by running probes, all in one parallel batch, each in a private
/// binfmt_misc: does the kernel run an arch itself (386 on amd64), and does an interpreter
/// honour `P`. Interpreters sharing a directory and modification time come from one package
/// build, so one of each such group is asked.
pub fn plan<'t>(
    arches: &[&'t Arch],
    opts: &Options,
    host: &Host,
) -> Result<(Vec<Planned<'t>>, Vec<Skipped>), String> {
    let mut skipped = Vec::new();
    let skip = |arch: &Arch, reason: String| Skipped {
        arch: arch.name.clone(),
        reason,
    };
    // Pass 1: what needs asking.
    let mut wanted: Vec<(&'t Arch, Option<PathBuf>)> = Vec::new();
    for &arch in arches {
        if arch.qemu.is_none() {
            skipped.push(skip(
                arch,
                format!("QEMU has no user-mode emulator for {}", arch.name),
            ));
            continue;
        }
        if host.arch.as_deref() == Some(arch.name.as_str()) {
            skipped.push(skip(
                arch,
                "the host's own architecture: a handler would send every native program through QEMU".into(),
            ));
            continue;
        }
        let path = opts
            .interpreters
            .get(&arch.name)
            .cloned()
            .or_else(|| emulator::find(arch, &opts.search));
        wanted.push((arch, path));
    }
    let native_jobs: Vec<&'t Arch> = wanted
        .iter()
        .map(|(a, _)| *a)
        .filter(|a| host.may_run(a))
        .collect();
    let mut groups: Vec<(GroupKey, &'t Arch, PathBuf)> = Vec::new();
    if opts.preserve_argv0 {
        for (arch, path) in &wanted {
            if let Some(path) = path {
                let key = group_key(path);
                if !groups.iter().any(|(k, _, _)| *k == key) {
                    groups.push((key, arch, path.clone()));
                }
            }
        }
    }
    let pending = ask(&native_jobs, &groups);
    // While the probes run, check every interpreter (reading its header is the slow part).
    let checked: Vec<Option<Result<Emulator, String>>> = wanted
        .iter()
        .map(|(_, p)| p.as_deref().map(|p| emulator::check(p, opts.fix_binary)))
        .collect();
    let answers = pending.answers(native_jobs.len() + groups.len());
    let native = |a: &Arch| {
        native_jobs
            .iter()
            .zip(&answers)
            .any(|(n, yes)| n.name == a.name && *yes)
    };
    let p_answers = &answers[native_jobs.len()..];

    // Pass 2: the plan. No rule may take the host's own programs: read them once.
    let host_heads = host_programs(host);
    let mut planned: Vec<Planned<'t>> = Vec::new();
    for ((arch, path), checked) in wanted.into_iter().zip(checked) {
        let cpu = arch.qemu.as_deref().unwrap_or_default();
        if native(arch) {
            skipped.push(skip(
                arch,
                format!(
                    "this kernel runs {} programs itself (a probe ran in a private binfmt_misc)",
                    arch.name
                ),
            ));
            continue;
        }
        let Some(path) = path else {
            if opts.all {
                skipped.push(skip(
                    arch,
                    format!("no interpreter qemu-{cpu}-static found"),
                ));
                continue;
            }
            return Err(format!(
                "no interpreter for {}: looked for qemu-{cpu}-static and qemu-{cpu} in {} (apt-get install qemu-user-static, or --interpreter {}=PATH)",
                arch.name,
                opts.search
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                arch.name,
            ));
        };
        let key = group_key(&path);
        let preserve = groups
            .iter()
            .zip(p_answers)
            .any(|((k, _, _), yes)| *k == key && *yes);
        let emu = checked
            .unwrap_or_else(|| emulator::check(&path, opts.fix_binary))
            .map_err(|e| format!("{}: {e}", arch.name))?;
        let next = plan_one(arch, &path, emu, opts, &host_heads, preserve)?;
        // Two of our own rules that can match one file: the newer would silently win. A table
        // that says so is wrong, not a choice to make quietly.
        if let Some(other) = planned.iter().find(|p| next.reg.rule.overlaps(&p.reg.rule)) {
            return Err(format!(
                "the rules for {} and {} overlap: some file would match both (fix the architecture table)",
                other.arch.name, arch.name
            ));
        }
        planned.push(next);
    }
    Ok((planned, skipped))
}

/// Interpreters from one package build: same directory, same modification time.
type GroupKey = (PathBuf, i64);

fn group_key(path: &Path) -> GroupKey {
    use std::os::unix::fs::MetadataExt;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    match std::fs::metadata(path) {
        Ok(m) => (dir, m.mtime()),
        // Unreadable: a group of its own (its check will say what is wrong).
        Err(_) => (path.to_path_buf(), i64::MIN),
    }
}

const ARGV0: &str = "binfmt-setup-argv0";

/// Probes started by [`ask`].
struct Pending {
    batch: Option<crate::probe::runner::Batch>,
    expect: Vec<String>,
}

impl Pending {
    /// One answer per question asked, in order; a probe that did not run answers no.
    fn answers(self, asked: usize) -> Vec<bool> {
        use crate::sys::exec::Ending;
        let outcomes = self
            .batch
            .map(|b| b.wait(std::time::Duration::from_secs(10)))
            .unwrap_or_default();
        let mut answers: Vec<bool> = outcomes
            .iter()
            .zip(&self.expect)
            .map(|(o, want)| {
                o.ending == Ending::Exited(crate::probe::EXIT_CODE) && o.stdout == want.as_bytes()
            })
            .collect();
        answers.resize(asked, false);
        answers
    }
}

/// Start, in one parallel batch, the native probe of each of `native` (against an empty
/// private instance) and, for each group, the probe of its arch through a `P` handler for its
/// interpreter (in a private instance holding only that).
fn ask(native: &[&Arch], groups: &[(GroupKey, &Arch, PathBuf)]) -> Pending {
    use crate::probe::runner::{Job, Place, start};
    let mut jobs = Vec::new();
    let mut expect = Vec::new();
    for a in native {
        let Some(image) = crate::probe::program(a) else {
            continue;
        };
        jobs.push(Job {
            file: format!("native-{}", a.name),
            image,
            argv0: "native".into(),
            args: vec!["yes".into()],
            place: Place::PrivateInstance(None),
        });
        expect.push("yes\nnative\n".to_string());
    }
    for (_, a, path) in groups {
        let Some(image) = crate::probe::program(a) else {
            continue;
        };
        let reg = Registration::for_arch(a, path.display().to_string(), "P".into());
        if reg.validate().is_err() {
            continue;
        }
        jobs.push(Job {
            file: format!("argv0-{}", a.name),
            image,
            argv0: ARGV0.into(),
            args: vec!["p".into()],
            place: Place::PrivateInstance(Some(reg.register_string())),
        });
        expect.push(format!("p\n{ARGV0}\n"));
    }
    let batch = start(&jobs)
        .map_err(|e| tracing::debug!("probes in private instances could not start: {e}"))
        .ok();
    Pending { batch, expect }
}

/// The registration for one arch with the interpreter at `path` (checked: `emu`); no rule may
/// match one of `host_heads` (see [`host_programs`]).
fn plan_one<'t>(
    arch: &'t Arch,
    path: &Path,
    emu: Emulator,
    opts: &Options,
    host_heads: &[(String, Vec<u8>)],
    preserve_argv0: bool,
) -> Result<Planned<'t>, String> {
    let mut flags = String::new();
    if preserve_argv0 {
        flags.push('P');
    }
    if opts.credential {
        if !emu.root_owned {
            return Err(format!(
                "{}: --credential needs a root-owned interpreter; {} is not (C runs setuid programs with their privileges through it)",
                arch.name,
                path.display()
            ));
        }
        flags.push_str("OC");
    }
    if opts.fix_binary {
        flags.push('F');
    }
    if emu.path != path {
        tracing::info!(
            "{}: interpreter {} is a symlink; registering its target {}",
            arch.name,
            path.display(),
            emu.path.display()
        );
    }
    let reg = Registration::for_arch(arch, emu.path.display().to_string(), flags);
    reg.validate().map_err(|e| format!("{}: {e}", arch.name))?;
    // The rule must not take the host's own programs: every native exec would go to QEMU.
    if let Some(what) = host_heads
        .iter()
        .find_map(|(what, head)| reg.rule.matches(&kernel_buffer(head)).then_some(what))
    {
        return Err(format!(
            "the rule for {} would match {what}: every native program would be sent to {} (fix the architecture table)",
            arch.name,
            emu.path.display()
        ));
    }
    // The rule must not take its own interpreter: every exec would loop (ELOOP).
    if reg.rule.matches(&kernel_buffer(&emu.head)) {
        return Err(format!(
            "the rule for {} would match its own interpreter {}; exec would loop (ELOOP)",
            arch.name,
            path.display()
        ));
    }
    Ok(Planned {
        arch,
        reg,
        emulator: emu,
    })
}

/// Heads of programs the host runs natively, which no rule of ours may match: this very
/// binary, and an executable and a position-independent program of the host's architecture
/// as its kernel runs them (built from the table, so a custom `--arch-table` row that copies
/// the host's magic under another name is caught too).
fn host_programs(host: &Host) -> Vec<(String, Vec<u8>)> {
    let mut heads = Vec::new();
    if let Ok((file, _)) =
        crate::fileio::open_regular(Path::new("/proc/self/exe"), crate::fileio::Follow::Yes)
    {
        if let Ok(head) = crate::fileio::read_prefix(&file, BINPRM_BUF_SIZE) {
            heads.push(("this program (binfmt-setup itself)".to_string(), head));
        }
    }
    let table = crate::arch::ArchTable::embedded();
    if let Some(a) = host.arch.as_deref().and_then(|h| table.find(h)) {
        let image = crate::probe::elf_image(a, &[]);
        for (e_type, what) in [(2u16, "executables"), (3, "position-independent programs")] {
            let mut h = image.clone();
            let bytes = match a.endian {
                crate::arch::Endian::Little => e_type.to_le_bytes(),
                crate::arch::Endian::Big => e_type.to_be_bytes(),
            };
            h[16..18].copy_from_slice(&bytes);
            heads.push((format!("the host's own {} {what}", a.name), h));
        }
    }
    heads
}
