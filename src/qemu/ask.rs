//! Asking the interpreter behind each handler what QEMU it is, the way `test` runs its
//! probes: the kernel runs the arch's echo probe (as the only file of an empty chroot) through
//! the handler, with `QEMU_VERSION=1` as its whole environment, and again with
//! `QEMU_CPU=help`. QEMU reads both before it loads the program, prints, and exits (0 and 1);
//! an interpreter that is not QEMU runs the probe instead, and is reported as unknown. So is
//! an answer from QEMU for another target (`qemu-aarch64` where `qemu-x86_64` was asked): a
//! QEMU that is itself emulated, whose own emulator reads the variables first.
//!
//! Each file is asked once per run: subjects whose interpreter is the same file (device,
//! inode, size and times) share its answers. The version is asked once per package build,
//! which gives all its emulators the same number: interpreters in one directory with one
//! modification time (the grouping install's `P` probe relies on too). So a run costs one
//! start per build for the version and, when the CPU lists are wanted (JSON shows them, a
//! human table does not), one per interpreter for its list, all started at once, beside the
//! other probes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::known::IssueTable;
use super::{Facts, cpus, default_cpu, parse_banner};
use crate::arch::Arch;
use crate::machine::proofs::Key;
use crate::machine::{Ask, AskProgram, Machine, Replies, Reply};
use crate::sys::exec::FileId;

/// One handler to ask about.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The architecture whose probe the handler takes.
    pub arch: &'a Arch,
    /// On the probe's name, for a handler under an extension rule.
    pub extension: Option<&'a str>,
    /// The handler's interpreter, as its entry names it.
    pub interpreter: &'a Path,
}

/// Which file an interpreter is, for sharing answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Identity {
    File(FileId),
    /// Not there to look at (an `F` handler can outlive its file): the path stands for it.
    Path(PathBuf),
}

/// Questions started by [`start`].
pub struct Asking<'a> {
    machine: &'a dyn Machine,
    /// Per subject: its version group and the index of its CPU-list ask, if made.
    plan: Vec<(usize, Option<usize>)>,
    /// Per package build: where its version comes from.
    groups: Vec<Group<'a>>,
    arches: Vec<String>,
    replies: Box<dyn Replies>,
    timeout: Duration,
}

/// One package build's version question.
struct Group<'a> {
    /// The subject it is asked through.
    subject: usize,
    ask: Ask<'a>,
    /// The name the QEMU it goes to calls itself (`qemu-x86_64`, the arch of that subject).
    program: Option<String>,
    /// The file its interpreter's path named when the run began, and the key its answer is
    /// kept under (only with [`Keep::ForTheBoot`]).
    presumed: Option<FileId>,
    key: Option<Key>,
    answer: Answer,
}

enum Answer {
    /// The index of its ask.
    Asked(usize),
    /// Kept from an earlier run of the same interpreter file: good only if the subject's
    /// probe ran that very file ([`Asking::finish_seen`]).
    Kept(Reply),
}

impl std::fmt::Debug for Asking<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Asking").field("plan", &self.plan).finish()
    }
}

/// Whether a version is kept between runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Asked every time.
    No,
    /// A version a static interpreter file gave in an earlier run of this boot is used
    /// instead of asking again (`machine::proofs`), and one asked is kept, both only where
    /// [`Asking::finish_seen`] is told which file each subject's probe ran.
    ForTheBoot,
}

/// What a version ask is kept under: the question is the same for every QEMU.
const VERSION_QUESTION: &str = "QEMU_VERSION=1";

/// Start asking about every subject's interpreter, all at once: its version and, with
/// `cpu_models`, its CPU list.
pub fn start<'a>(
    machine: &'a dyn Machine,
    subjects: &[Subject<'a>],
    chroot: bool,
    timeout: Duration,
    cpu_models: bool,
    keep: Keep,
) -> Asking<'a> {
    let mut asks: Vec<Ask<'a>> = Vec::new();
    let mut by_file: HashMap<Identity, usize> = HashMap::new();
    let mut by_build: HashMap<(PathBuf, (i64, i64)), usize> = HashMap::new();
    let mut groups: Vec<Group<'a>> = Vec::new();
    let mut plan = Vec::new();
    for (n, s) in subjects.iter().enumerate() {
        let meta = machine.stat(s.interpreter).ok();
        let presumed = meta.as_ref().map(crate::machine::Meta::file_id);
        let identity = match presumed {
            Some(id) => Identity::File(id),
            None => Identity::Path(s.interpreter.to_path_buf()),
        };
        let ask = |env: (&str, &str)| Ask {
            arch: s.arch,
            program: AskProgram::Echo,
            extension: s.extension,
            chroot,
            env: vec![(env.0.to_string(), env.1.to_string())],
        };
        let cpus = cpu_models.then(|| {
            *by_file.entry(identity).or_insert_with(|| {
                asks.push(ask(("QEMU_CPU", "help")));
                asks.len() - 1
            })
        });
        let build = meta.as_ref().map(|m| {
            let dir = s.interpreter.parent().unwrap_or(Path::new("/"));
            (dir.to_path_buf(), m.mtime)
        });
        let mut new_group = || {
            let version = ask(("QEMU_VERSION", "1"));
            let key = presumed
                .filter(|_| keep == Keep::ForTheBoot)
                .and_then(|id| Key::asked(VERSION_QUESTION, s.interpreter, id));
            let answer = match key.as_ref().and_then(|k| machine.kept(k)) {
                Some(reply) => {
                    tracing::debug!(
                        "{}: QEMU_VERSION=1: kept from an earlier run of {}",
                        s.arch.name,
                        s.interpreter.display()
                    );
                    Answer::Kept(reply)
                }
                None => {
                    asks.push(version.clone());
                    Answer::Asked(asks.len() - 1)
                }
            };
            groups.push(Group {
                subject: n,
                ask: version,
                program: s.arch.entry_name(),
                presumed,
                key,
                answer,
            });
            groups.len() - 1
        };
        let group = match build {
            Some(key) => *by_build.entry(key).or_insert_with(new_group),
            None => new_group(),
        };
        plan.push((group, cpus));
    }
    tracing::debug!(
        "asking {} interpreters: {} starts",
        subjects.len(),
        asks.len()
    );
    Asking {
        machine,
        plan,
        groups,
        arches: subjects.iter().map(|s| s.arch.name.clone()).collect(),
        replies: machine.start_asking(&asks, timeout),
        timeout,
    }
}

impl Asking<'_> {
    /// Wait for the answers: per subject, what its interpreter said it is, with the rows of
    /// `issues` its version falls in; `None` when it did not answer as QEMU does.
    pub fn finish(self, issues: &IssueTable) -> Vec<Option<Facts>> {
        self.finish_seen(issues, &[])
    }

    /// [`finish`](Self::finish), told per subject which file its own probe found the kernel
    /// running (`ran[i]`). A kept version stands only where the probe of the subject it
    /// belongs to ran the very file it was kept for; elsewhere the version is asked now. A
    /// version asked is kept when the ask and that probe ran the file its path names.
    pub fn finish_seen(self, issues: &IssueTable, ran: &[Option<FileId>]) -> Vec<Option<Facts>> {
        let replies = self.replies.collect();
        let none = Reply::default();
        let machine = self.machine;
        let timeout = self.timeout;
        let expected: Vec<Option<String>> = self.groups.iter().map(|g| g.program.clone()).collect();
        let versions: Vec<Reply> = self
            .groups
            .into_iter()
            .map(|g| {
                let seen = ran.get(g.subject).copied().flatten();
                let same = |exe: Option<FileId>| exe.is_some() && exe == seen && seen == g.presumed;
                match g.answer {
                    Answer::Kept(reply) if same(seen) => reply,
                    Answer::Kept(_) => {
                        tracing::debug!(
                            "a kept QEMU version is not used: the handler ran another file"
                        );
                        let again = machine.start_asking(std::slice::from_ref(&g.ask), timeout);
                        again.collect().into_iter().next().unwrap_or_default()
                    }
                    Answer::Asked(i) => {
                        let reply = replies.get(i).cloned().unwrap_or_default();
                        if let Some(key) = g.key.filter(|_| same(reply.exe)) {
                            machine.keep(&key, &reply);
                        }
                        reply
                    }
                }
            })
            .collect();
        self.plan
            .iter()
            .zip(&self.arches)
            .map(|(&(g, c), arch)| {
                let version_reply = versions.get(g).unwrap_or(&none);
                if version_reply.exit != Some(0) {
                    return None;
                }
                let banner = parse_banner(&version_reply.stdout)?;
                let expected = expected.get(g).cloned().flatten();
                if expected.is_some_and(|p| p != banner.program) {
                    tracing::info!(
                        "{arch}: the answer came from {}, not from the handler's own QEMU",
                        banner.program
                    );
                    return None;
                }
                // QEMU lists its models and exits 1; anything else is not a list.
                let cpu_reply = c.and_then(|c| replies.get(c)).unwrap_or(&none);
                let cpu_models = if cpu_reply.exit == Some(1) {
                    cpus::parse(&cpu_reply.stdout)
                } else {
                    Vec::new()
                };
                Some(Facts {
                    qemu_version: Some(banner.version.to_string()),
                    qemu_package: banner.package,
                    cpu_models,
                    cpu_default: default_cpu(arch, banner.version).map(str::to_string),
                    known_issues: issues.warnings(arch, banner.version),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::Fake;
    use crate::machine::testing::arch;
    use crate::qemu::Version;

    const BANNER: &str = "qemu-aarch64 version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\n\
                          Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n";

    fn said(exit: i32, stdout: &str) -> Reply {
        Reply {
            exit: Some(exit),
            stdout: stdout.into(),
            ..Reply::default()
        }
    }

    fn qemu_for(f: Fake, name: &str, ext: Option<&str>, banner: &str, list: &str) -> Fake {
        f.reply(
            name,
            AskProgram::Echo,
            ext,
            &[("QEMU_VERSION", "1")],
            said(0, banner),
        )
        .reply(
            name,
            AskProgram::Echo,
            ext,
            &[("QEMU_CPU", "help")],
            said(1, list),
        )
    }

    fn facts(f: &Fake, subjects: &[Subject<'_>], issues: &IssueTable) -> Vec<Option<Facts>> {
        start(f, subjects, true, Duration::from_secs(5), true, Keep::No).finish(issues)
    }

    #[test]
    fn an_interpreter_says_its_version_and_models() {
        let f = qemu_for(
            Fake::new().file("/usr/bin/qemu-aarch64-static", b"x".to_vec(), 0o755),
            "arm64",
            None,
            BANNER,
            "Available CPUs:\n  cortex-a57\n  max\n",
        );
        let s = Subject {
            arch: arch("arm64"),
            extension: None,
            interpreter: Path::new("/usr/bin/qemu-aarch64-static"),
        };
        let got = facts(&f, &[s], &IssueTable::embedded());
        assert_eq!(
            got,
            [Some(Facts {
                qemu_version: Some("7.2.22".into()),
                qemu_package: Some("Debian 1:7.2+dfsg-7+deb12u18+b3".into()),
                cpu_models: vec!["cortex-a57".into(), "max".into()],
                cpu_default: Some("any".into()),
                known_issues: Vec::new(),
            })]
        );
        // Both asks ran the arch's echo probe with nothing but the one variable.
        let asked = f.asked();
        assert_eq!(asked.len(), 2);
        assert!(asked.iter().all(|a| a.arch == "arm64" && a.env.len() == 1));
    }

    /// The same file behind two handlers is asked once; interpreters of one build share one
    /// version ask; another directory is another build.
    #[test]
    fn each_file_is_asked_once_and_each_build_once_for_its_version() {
        let riscv_banner = BANNER.replace("qemu-aarch64", "qemu-riscv64");
        let f = Fake::new()
            .entry(
                "/usr/bin/qemu-aarch64-static",
                crate::machine::Node::file(b"a".to_vec(), 0o755).modified(100),
            )
            .entry(
                "/usr/bin/qemu-riscv64-static",
                crate::machine::Node::file(b"r".to_vec(), 0o755).modified(100),
            )
            .entry(
                "/opt/qemu/qemu-s390x",
                crate::machine::Node::file(b"s".to_vec(), 0o755).modified(100),
            );
        let f = qemu_for(f, "arm64", None, BANNER, "max\n");
        let f = qemu_for(f, "arm64", Some("ext"), BANNER, "max\n");
        let f = qemu_for(f, "riscv64", None, &riscv_banner, "rv64\n");
        let f = qemu_for(
            f,
            "s390x",
            None,
            "qemu-s390x version 9.0.0\n",
            "s390 qemu   x\n",
        );
        let sub = |a: &'static str, ext: Option<&'static str>, i: &'static str| Subject {
            arch: arch(a),
            extension: ext,
            interpreter: Path::new(i),
        };
        let subjects = [
            sub("arm64", None, "/usr/bin/qemu-aarch64-static"),
            sub("arm64", Some("ext"), "/usr/bin/qemu-aarch64-static"),
            sub("riscv64", None, "/usr/bin/qemu-riscv64-static"),
            sub("s390x", None, "/opt/qemu/qemu-s390x"),
        ];
        let got = facts(&f, &subjects, &IssueTable::embedded());
        // aarch64: one list, one version; riscv64: its own list, the build's version; the
        // s390x from /opt: both.
        assert_eq!(f.asked().len(), 5, "{:?}", f.asked());
        let versions: Vec<Option<String>> = got
            .iter()
            .map(|g| g.as_ref().and_then(|g| g.qemu_version.clone()))
            .collect();
        assert_eq!(
            versions,
            [
                Some("7.2.22".into()),
                Some("7.2.22".into()),
                Some("7.2.22".into()),
                Some("9.0.0".into())
            ]
        );
        let riscv = got[2].as_ref().expect("riscv64");
        assert_eq!(riscv.cpu_models, ["rv64"]);
        assert_eq!(riscv.cpu_default.as_deref(), Some("any"));
        let s390x = got[3].as_ref().expect("s390x");
        assert_eq!(s390x.cpu_default, None, "no default known for 9.0");
        assert_eq!(s390x.qemu_package, None);
    }

    /// Without the CPU lists, one start per build: the version alone.
    #[test]
    fn without_the_lists_only_the_version_is_asked() {
        let f = qemu_for(
            Fake::new().file("/usr/bin/qemu-aarch64-static", b"x".to_vec(), 0o755),
            "arm64",
            None,
            BANNER,
            "  max\n",
        );
        let s = Subject {
            arch: arch("arm64"),
            extension: None,
            interpreter: Path::new("/usr/bin/qemu-aarch64-static"),
        };
        let got = start(&f, &[s], true, Duration::from_secs(5), false, Keep::No)
            .finish(&IssueTable::embedded());
        let got = got[0].as_ref().expect("facts");
        assert_eq!(got.qemu_version.as_deref(), Some("7.2.22"));
        assert!(got.cpu_models.is_empty());
        assert_eq!(f.asked().len(), 1);
    }

    /// Something that is not QEMU runs the probe instead (exit 41, its echo): unknown.
    #[test]
    fn an_interpreter_that_is_not_qemu_is_unknown() {
        let f = Fake::new()
            .reply(
                "amd64",
                AskProgram::Echo,
                None,
                &[("QEMU_VERSION", "1")],
                said(41, "\nbinfmt-setup-ask\n"),
            )
            .reply(
                "amd64",
                AskProgram::Echo,
                None,
                &[("QEMU_CPU", "help")],
                said(41, "\nbinfmt-setup-ask\n"),
            );
        let s = Subject {
            arch: arch("amd64"),
            extension: None,
            interpreter: Path::new("/usr/bin/box64"),
        };
        assert_eq!(facts(&f, &[s], &IssueTable::embedded()), [None]);
        // QEMU for another target answered (the handler's QEMU is itself emulated): unknown.
        let f = qemu_for(Fake::new(), "amd64", None, BANNER, "  cortex-a57\n");
        let s = Subject {
            arch: arch("amd64"),
            extension: None,
            interpreter: Path::new("/opt/arm64/qemu-x86_64-static"),
        };
        assert_eq!(facts(&f, &[s], &IssueTable::embedded()), [None]);
        // A version without a list (a QEMU whose target prints none) keeps the version.
        let f = qemu_for(Fake::new(), "hppa", None, "qemu-hppa version 7.2.22\n", "");
        let s = Subject {
            arch: arch("hppa"),
            extension: None,
            interpreter: Path::new("/usr/bin/qemu-hppa-static"),
        };
        let got = facts(&f, &[s], &IssueTable::embedded());
        let hppa = got[0].as_ref().expect("hppa");
        assert_eq!(hppa.qemu_version.as_deref(), Some("7.2.22"));
        assert!(hppa.cpu_models.is_empty());
    }

    /// A version in the table's range brings the row's warning along.
    #[test]
    fn a_known_bad_version_is_warned_of() {
        let issues = IssueTable::parse(
            "[[issue]]\nid = \"t\"\narches = [\"arm64\"]\nintroduced = \"7.2.0\"\nfixed = \"7.3.0\"\n\
             symptom = \"s\"\nsource = \"https://example.org/t\"\n",
            "t.toml",
            &crate::arch::ArchTable::embedded(),
        )
        .expect("table");
        let f = qemu_for(Fake::new(), "arm64", None, BANNER, "max\n");
        let s = Subject {
            arch: arch("arm64"),
            extension: None,
            interpreter: Path::new("/usr/bin/qemu-aarch64-static"),
        };
        let got = facts(&f, &[s], &issues);
        let w = &got[0].as_ref().expect("facts").known_issues;
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].id, "t");
        assert_eq!(w[0].versions, ">= 7.2.0, < 7.3.0");
        assert!(Version::parse("7.2.22").is_some());
    }
}
