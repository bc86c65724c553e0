//! Which registrations a request stands for: one per architecture, with its interpreter found
//! and checked, or a reason it is skipped. `install` applies them to the kernel; `export`
//! writes them as files for systemd-binfmt or Debian's update-binfmts, so both give the same
//! entries.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::apply::Skipped;
use super::registration::Registration;
use crate::arch::{Arch, Host};
use crate::emulator::{self, Emulator, InterpreterError};
use crate::error::{Class, Classify};
use crate::machine::{Machine, Probe};
use crate::rule::{BINPRM_BUF_SIZE, kernel_buffer};

/// Why nothing may be registered: bad input (an interpreter the user asked for is missing or
/// unfit, or the architecture table contradicts itself).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{arch}: {error}")]
    Interpreter {
        arch: String,
        error: InterpreterError,
    },
    #[error(
        "no interpreter for {arch}: looked for qemu-{cpu}-static and qemu-{cpu} in {dirs} (apt-get install qemu-user-static, or --interpreter {arch}=PATH)"
    )]
    NoInterpreter {
        arch: String,
        cpu: String,
        dirs: String,
    },
    #[error(
        "no QEMU interpreter found for any of the {} asked for: looked for qemu-<cpu>-static and qemu-<cpu> in {dirs} (apt-get install qemu-user-static, or --qemu-path DIR)",
        crate::messages::count(*.count, "architecture")
    )]
    NoInterpreters { count: usize, dirs: String },
    #[error(
        "the rules for {first} and {second} overlap: some file would match both (fix the architecture table)"
    )]
    Overlap { first: String, second: String },
    #[error(
        "{arch}: --credential needs a root-owned interpreter; {path} is not (C runs setuid programs with their privileges through it)"
    )]
    CredentialNeedsRoot { arch: String, path: String },
    #[error("{arch}: {reason}")]
    Invalid { arch: String, reason: String },
    #[error(
        "the rule for {arch} would match {what}: every native program would be sent to {interpreter} (fix the architecture table)"
    )]
    MatchesHost {
        arch: String,
        what: String,
        interpreter: String,
    },
    #[error("the rule for {arch} would match its own interpreter {path}; exec would loop (ELOOP)")]
    MatchesItself { arch: String, path: String },
    #[error("{arch}: interpreter {old} now resolves to {new}")]
    Moved {
        arch: String,
        old: String,
        new: String,
    },
}

impl Classify for PlanError {
    fn class(&self) -> Class {
        Class::BadInput
    }
}

/// What `C` costs, said whenever it is asked for. Measured with Debian's QEMU 7.2 (SECURITY.md,
/// "C: what a setuid program through QEMU gives away", pinned by
/// `tests/integration/credential.rs`): QEMU reads its QEMU_* variables with plain getenv even
/// when the kernel ran it setuid, so any local user can make a root QEMU write files where
/// root may, load a loader of the user's choosing, or open a port.
pub const CREDENTIAL_WARNING: &str = "C runs every setuid program of this architecture as its owner through QEMU, and QEMU 7.2 still obeys the caller's QEMU_LOG_FILENAME, QEMU_LD_PREFIX and QEMU_GDB then: any local user can make a root-owned QEMU write files, run code of their choosing, or open a port (see SECURITY.md); use it only where every user may be root";

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
    pub fn rechecked(&self, machine: &dyn Machine) -> Result<Planned<'t>, PlanError> {
        let emulator = emulator::check(machine, &self.emulator.path, self.reg.flags.contains('F'))
            .map_err(|error| PlanError::Interpreter {
                arch: self.arch.name.clone(),
                error,
            })?;
        if emulator.path != self.emulator.path {
            return Err(PlanError::Moved {
                arch: self.arch.name.clone(),
                old: self.emulator.path.display().to_string(),
                new: emulator.path.display().to_string(),
            });
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
    machine: &dyn Machine,
    arches: &[&'t Arch],
    opts: &Options,
    host: &Host,
) -> Result<(Vec<Planned<'t>>, Vec<Skipped>), PlanError> {
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
            .or_else(|| emulator::find(machine, arch, &opts.search));
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
                let key = group_key(machine, path);
                if !groups.iter().any(|(k, _, _)| *k == key) {
                    groups.push((key, arch, path.clone()));
                }
            }
        }
    }
    let probes: Vec<Probe<'_>> = native_jobs
        .iter()
        .map(|a| Probe::Native(a))
        .chain(groups.iter().map(|(_, arch, path)| Probe::PreserveArgv0 {
            arch,
            interpreter: path,
        }))
        .collect();
    let pending = machine.start_probes(&probes);
    // While the probes run, check every interpreter (reading its header is the slow part).
    let checked: Vec<Option<Result<Emulator, InterpreterError>>> = wanted
        .iter()
        .map(|(_, p)| {
            p.as_deref()
                .map(|p| emulator::check(machine, p, opts.fix_binary))
        })
        .collect();
    let mut answers = pending.collect();
    answers.resize(probes.len(), false);
    let native = |a: &Arch| {
        native_jobs
            .iter()
            .zip(&answers)
            .any(|(n, yes)| n.name == a.name && *yes)
    };
    let p_answers = &answers[native_jobs.len()..];

    // Pass 2: the plan. No rule may take the host's own programs: read them once.
    let host_heads = host_programs(machine, host);
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
            return Err(PlanError::NoInterpreter {
                arch: arch.name.clone(),
                cpu: cpu.to_string(),
                dirs: shown_dirs(&opts.search),
            });
        };
        let key = group_key(machine, &path);
        let preserve = groups
            .iter()
            .zip(p_answers)
            .any(|((k, _, _), yes)| *k == key && *yes);
        let emu = checked
            .unwrap_or_else(|| emulator::check(machine, &path, opts.fix_binary))
            .map_err(|error| PlanError::Interpreter {
                arch: arch.name.clone(),
                error,
            })?;
        if emu.owned_outside {
            tracing::info!(
                "{}: {} is owned by an id outside this user namespace, so nobody inside can change it: accepted",
                arch.name,
                emu.path.display()
            );
        }
        tracing::debug!(
            "{}: interpreter {} checked ({}, {}root-owned); P {}",
            arch.name,
            emu.path.display(),
            if emu.is_static { "static" } else { "dynamic" },
            if emu.root_owned { "" } else { "not " },
            if preserve {
                "honoured (probe)"
            } else {
                "not asked or not honoured"
            }
        );
        let next = plan_one(arch, &path, emu, opts, &host_heads, preserve)?;
        // Two of our own rules that can match one file: the newer would silently win. A table
        // that says so is wrong, not a choice to make quietly.
        if let Some(other) = planned.iter().find(|p| next.reg.rule.overlaps(&p.reg.rule)) {
            return Err(PlanError::Overlap {
                first: other.arch.name.clone(),
                second: arch.name.clone(),
            });
        }
        tracing::info!(
            "{}: {} with flags {}",
            arch.name,
            next.reg.interpreter,
            if next.reg.flags.is_empty() {
                "none"
            } else {
                &next.reg.flags
            }
        );
        planned.push(next);
    }
    for s in &skipped {
        tracing::debug!("{}: skipped: {}", s.arch, s.reason);
    }
    let missing = skipped
        .iter()
        .filter(|s| s.reason.starts_with("no interpreter"))
        .count();
    if planned.is_empty() && missing > 0 {
        return Err(PlanError::NoInterpreters {
            count: missing,
            dirs: shown_dirs(&opts.search),
        });
    }
    Ok((planned, skipped))
}

fn shown_dirs(search: &[PathBuf]) -> String {
    search
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Interpreters from one package build: same directory, same modification time.
type GroupKey = (PathBuf, i64);

fn group_key(machine: &dyn Machine, path: &Path) -> GroupKey {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    match machine.stat(path) {
        Ok(m) => (dir, m.mtime.0),
        // Unreadable: a group of its own (its check will say what is wrong).
        Err(_) => (path.to_path_buf(), i64::MIN),
    }
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
) -> Result<Planned<'t>, PlanError> {
    let mut flags = String::new();
    if preserve_argv0 {
        flags.push('P');
    }
    if opts.credential {
        if !emu.root_owned {
            return Err(PlanError::CredentialNeedsRoot {
                arch: arch.name.clone(),
                path: path.display().to_string(),
            });
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
    reg.validate().map_err(|reason| PlanError::Invalid {
        arch: arch.name.clone(),
        reason: reason.0,
    })?;
    // The rule must not take the host's own programs: every native exec would go to QEMU.
    if let Some(what) = host_heads
        .iter()
        .find_map(|(what, head)| reg.rule.matches(&kernel_buffer(head)).then_some(what))
    {
        return Err(PlanError::MatchesHost {
            arch: arch.name.clone(),
            what: what.clone(),
            interpreter: emu.path.display().to_string(),
        });
    }
    // The rule must not take its own interpreter: every exec would loop (ELOOP).
    if reg.rule.matches(&kernel_buffer(&emu.head)) {
        return Err(PlanError::MatchesItself {
            arch: arch.name.clone(),
            path: path.display().to_string(),
        });
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
fn host_programs(machine: &dyn Machine, host: &Host) -> Vec<(String, Vec<u8>)> {
    let mut heads = Vec::new();
    if let Some(head) = machine.self_exe_head(BINPRM_BUF_SIZE) {
        heads.push(("this program (binfmt-setup itself)".to_string(), head));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::testing::{arch, dynamic_program, program, table};
    use crate::machine::{Fake, Node};

    const QEMU: &str = "/usr/bin/qemu-aarch64-static";

    type Plan = (Vec<Planned<'static>>, Vec<Skipped>);

    fn opts() -> Options {
        Options {
            search: vec!["/usr/bin".into()],
            fix_binary: true,
            preserve_argv0: true,
            ..Options::default()
        }
    }

    fn plan_on(m: &Fake, names: &[&str], opts: &Options) -> Result<Plan, PlanError> {
        let arches: Vec<&'static Arch> = names.iter().map(|n| arch(n)).collect();
        let host = crate::machine::host(m, table());
        plan(m, &arches, opts, &host)
    }

    /// The plan's error, as a user reads it.
    fn refused(m: &Fake, names: &[&str], opts: &Options) -> String {
        match plan_on(m, names, opts) {
            Ok((planned, skipped)) => panic!("planned {planned:?}, skipped {skipped:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn skipped(m: &Fake, names: &[&str], opts: &Options) -> Vec<String> {
        let (planned, skipped) = plan_on(m, names, opts).expect("plan");
        assert!(planned.is_empty(), "{planned:?}");
        skipped.into_iter().map(|s| s.reason).collect()
    }

    /// A static QEMU for arm64 where the search finds it.
    fn with_qemu() -> Fake {
        Fake::new().file(QEMU, program("amd64"), 0o755)
    }

    #[test]
    fn the_hosts_own_arch_and_arches_qemu_lacks_are_skipped() {
        let reasons = skipped(&with_qemu(), &["amd64", "x32"], &opts());
        assert!(
            reasons[0].contains("the host's own architecture"),
            "{reasons:?}"
        );
        assert!(
            reasons[1].contains("no user-mode emulator for x32"),
            "{reasons:?}"
        );
    }

    #[test]
    fn an_arch_the_kernel_runs_itself_is_skipped() {
        let m = Fake::new().file("/usr/bin/qemu-i386-static", program("amd64"), 0o755);
        let reasons = skipped(&m.clone().native("386", true), &["386"], &opts());
        assert!(
            reasons[0].contains("runs 386 programs itself"),
            "{reasons:?}"
        );
        let (planned, _) = plan_on(&m.native("386", false), &["386"], &opts()).expect("plan");
        assert_eq!(planned[0].reg.name, "qemu-i386");
    }

    #[test]
    fn a_missing_interpreter_is_an_error_when_named_and_a_skip_for_all() {
        let e = refused(&Fake::new(), &["arm64"], &opts());
        assert!(
            e.contains("no interpreter for arm64: looked for qemu-aarch64-static and qemu-aarch64 in /usr/bin"),
            "{e}"
        );
        let all = Options {
            all: true,
            ..opts()
        };
        // With `all`, one missing interpreter is a skip among the others found...
        let riscv = Fake::new().file("/usr/bin/qemu-riscv64-static", program("amd64"), 0o755);
        let (planned, skipped) = plan_on(&riscv, &["arm64", "riscv64"], &all).expect("plan");
        assert_eq!(planned[0].reg.name, "qemu-riscv64");
        assert!(
            skipped[0]
                .reason
                .contains("no interpreter qemu-aarch64-static found"),
            "{skipped:?}"
        );
        // ...but none found at all is an error, not an install of nothing that exits 0.
        let e = refused(&Fake::new(), &["arm64", "riscv64"], &all);
        assert!(
            e.contains("no QEMU interpreter found for any of the 2 architectures"),
            "{e}"
        );
    }

    #[test]
    fn interpreters_others_could_replace_are_refused() {
        let e = refused(
            &Fake::new().file(QEMU, program("amd64"), 0o775),
            &["arm64"],
            &opts(),
        );
        assert!(e.starts_with("arm64: interpreter"), "{e}");
        assert!(e.contains("writable by group or others (mode 775)"), "{e}");
        let theirs = Node::file(program("amd64"), 0o755).owned_by(1000, 1000);
        let e = refused(&Fake::new().entry(QEMU, theirs), &["arm64"], &opts());
        assert!(e.contains("owned by uid 1000, not root-owned"), "{e}");
        // By --interpreter, in a directory anyone may write; a sticky one is safe.
        let named = |dir: &str| Options {
            interpreters: [("arm64".to_string(), format!("{dir}/qemu").into())].into(),
            ..opts()
        };
        let m = Fake::new()
            .dir("/opt/open", 0o777)
            .file("/opt/open/qemu", program("amd64"), 0o755)
            .dir("/opt/sticky", 0o1777)
            .file("/opt/sticky/qemu", program("amd64"), 0o755);
        let e = refused(&m, &["arm64"], &named("/opt/open"));
        assert!(
            e.contains("sits in /opt/open which group or others may write"),
            "{e}"
        );
        assert!(plan_on(&m, &["arm64"], &named("/opt/sticky")).is_ok());
    }

    /// In a user namespace that maps a subordinate range (buildah unshare, rootlesskit),
    /// the host's root-owned interpreter and its directories show as the overflow uid: no
    /// process inside can change them, so they are accepted there, and only there.
    #[test]
    fn an_interpreter_owned_outside_the_user_namespace_is_accepted_inside_it() {
        let outside = |m: Fake| {
            m.entry("/usr", Node::dir(0o755).owned_by(65534, 65534))
                .entry("/usr/bin", Node::dir(0o755).owned_by(65534, 65534))
                .entry(
                    QEMU,
                    Node::file(program("amd64"), 0o755).owned_by(65534, 65534),
                )
        };
        let e = refused(&outside(Fake::new()), &["arm64"], &opts());
        assert!(e.contains("owned by uid 65534"), "{e}");
        let inside = outside(Fake::new().user(0, 0, &[]).in_user_namespace(65534));
        let (planned, _) = plan_on(&inside, &["arm64"], &opts()).expect("accepted inside");
        assert!(planned[0].emulator.owned_outside);
        assert!(
            !planned[0].emulator.root_owned,
            "so --credential is still refused"
        );
        // Still refused when group or others may write it.
        let writable = Fake::new().in_user_namespace(65534).entry(
            QEMU,
            Node::file(program("amd64"), 0o775).owned_by(65534, 65534),
        );
        let e = refused(&writable, &["arm64"], &opts());
        assert!(e.contains("writable by group or others"), "{e}");
        // The namespace's own nobody shows as the same uid, but is inside: refused.
        let own = outside(Fake::new().in_user_namespace(65534).maps_its_own_nobody());
        let e = refused(&own, &["arm64"], &opts());
        assert!(e.contains("owned by uid 65534"), "{e}");
    }

    #[test]
    fn a_dynamic_interpreter_is_refused_with_f_only() {
        let qemu = dynamic_program("amd64", "/lib64/ld-linux-x86-64.so.2", &["libc.so.6"]);
        let m = Fake::new().file(QEMU, qemu, 0o755);
        let e = refused(&m, &["arm64"], &opts());
        assert!(
            e.contains("is dynamically linked; the F flag needs a static one"),
            "{e}"
        );
        let no_f = Options {
            fix_binary: false,
            ..opts()
        };
        let (planned, _) = plan_on(&m, &["arm64"], &no_f).expect("plan");
        assert!(!planned[0].reg.flags.contains('F'));
        assert!(!planned[0].emulator.is_static);
    }

    #[test]
    fn credential_needs_a_root_owned_interpreter() {
        let mine = |n: Node| n.owned_by(1000, 1000);
        let m = Fake::new()
            .entry("/home/u", mine(Node::dir(0o755)))
            .entry("/home/u/bin", mine(Node::dir(0o755)))
            .entry(
                "/home/u/bin/qemu-aarch64-static",
                mine(Node::file(program("amd64"), 0o755)),
            )
            .user(1000, 1000, &[]);
        let own = Options {
            search: vec!["/home/u/bin".into()],
            ..opts()
        };
        // The caller's own interpreter will do, but not to run setuid programs through.
        let (planned, _) = plan_on(&m, &["arm64"], &own).expect("plan");
        assert!(!planned[0].emulator.root_owned);
        let with_c = Options {
            credential: true,
            ..own
        };
        let e = refused(&m, &["arm64"], &with_c);
        assert!(
            e.contains("--credential needs a root-owned interpreter"),
            "{e}"
        );
        let (planned, _) = plan_on(
            &with_qemu(),
            &["arm64"],
            &Options {
                credential: true,
                ..opts()
            },
        )
        .expect("plan");
        assert_eq!(planned[0].reg.flags, "OCF");
    }

    #[test]
    fn p_is_asked_for_only_where_the_probe_says_it_works() {
        let flags = |m: &Fake, opts: &Options| {
            let (planned, _) = plan_on(m, &["arm64"], opts).expect("plan");
            planned[0].reg.flags.clone()
        };
        assert_eq!(flags(&with_qemu(), &opts()), "F");
        let honours = with_qemu().preserves_argv0(QEMU, true);
        assert_eq!(flags(&honours, &opts()), "PF");
        let not_asked = Options {
            preserve_argv0: false,
            ..opts()
        };
        assert_eq!(flags(&honours, &not_asked), "F");
    }

    #[test]
    fn rules_that_take_the_hosts_programs_or_their_own_interpreter_are_refused() {
        let m = with_qemu().self_exe(program("arm64"));
        let e = refused(&m, &["arm64"], &opts());
        assert!(
            e.contains("would match this program (binfmt-setup itself)"),
            "{e}"
        );
        let m = Fake::new().file(QEMU, program("arm64"), 0o755);
        let e = refused(&m, &["arm64"], &opts());
        assert!(e.contains("would match its own interpreter"), "{e}");
        assert!(e.contains("(ELOOP)"), "{e}");
    }

    #[test]
    fn a_plan_made_on_another_machine_is_rechecked_but_never_pinned_here() {
        let m = with_qemu();
        let (planned, _) = plan_on(&m, &["arm64"], &opts()).expect("plan");
        let again = planned[0].rechecked(&m).expect("recheck");
        assert_eq!(again.emulator.path, PathBuf::from(QEMU));
        let e = again.emulator.pin.verify().expect_err("no file held");
        assert!(e.to_string().contains("checked on another machine"), "{e}");
    }
}
