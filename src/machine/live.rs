//! The real machine: the kernel, this process's environment, its file system, probes run in
//! private binfmt_misc instances.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use nix::errno::Errno;

use super::proofs::{Key, Proofs};
use super::{Answers, Credentials, Handle, Machine, Meta, Mount, MountsError, Probe, ProbeError};
use super::{Ask, AskProgram, Replies, Reply};
use crate::arch::Arch;
use crate::binfmt::{BinfmtError, Registration, Registry, Snapshot};
use crate::fileio::{self, Follow, OpenError};
use crate::probe::{self, runner};
use crate::sys::exec::{Ending, Outcome, Step};

/// How long a probe asked for by [`Machine::runs_natively`] may take.
const NATIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a batch from [`Machine::start_probes`] may take.
const BATCH_TIMEOUT: Duration = Duration::from_secs(10);
/// argv[0] given to a preserve-argv0 probe; a handler without a working P replaces it.
const ARGV0: &str = "binfmt-setup-argv0";

/// This machine. Native-probe answers are kept, so each arch is probed once per process, and
/// proofs made to the end are kept for later runs too (`proofs`). The credentials are read
/// once: a process of this tool never changes them, and `install` asks for each interpreter.
#[derive(Debug, Default)]
pub struct Live {
    native: Mutex<HashMap<String, Result<bool, ProbeError>>>,
    proofs: OnceLock<Arc<Proofs>>,
    credentials: OnceLock<Credentials>,
}

impl Live {
    pub fn new() -> Live {
        Live::default()
    }

    /// Where proofs are kept, opened (made) on first use.
    fn proofs(&self) -> Arc<Proofs> {
        Arc::clone(self.proofs.get_or_init(|| Arc::new(Proofs::open())))
    }
}

impl Machine for Live {
    fn machine(&self) -> String {
        nix::sys::utsname::uname()
            .map(|u| u.machine().to_string_lossy().into_owned())
            .unwrap_or_else(|_| std::env::consts::ARCH.to_string())
    }

    fn credentials(&self) -> Credentials {
        self.credentials.get_or_init(read_credentials).clone()
    }

    fn mounts(&self) -> Result<Vec<Mount>, MountsError> {
        let infos = procfs::process::Process::myself()
            .and_then(|p| p.mountinfo())
            .map_err(|e| MountsError(e.to_string()))?;
        Ok(infos
            .into_iter()
            .map(|m| Mount {
                noexec: m.mount_options.contains_key("noexec"),
                point: m.mount_point,
                fstype: m.fs_type,
            })
            .collect())
    }

    fn statvfs_noexec(&self, path: &Path) -> Option<bool> {
        nix::sys::statvfs::statvfs(path)
            .ok()
            .map(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_NOEXEC))
    }

    fn env(&self, name: &str) -> Option<OsString> {
        std::env::var_os(name)
    }

    fn current_dir(&self) -> std::io::Result<PathBuf> {
        std::env::current_dir()
    }

    fn binfmt(&self, dir: &Path) -> Result<Snapshot, BinfmtError> {
        Registry::new(dir).snapshot()
    }

    fn runs_natively(&self, arch: &Arch) -> Result<bool, ProbeError> {
        let cached = self
            .native
            .lock()
            .ok()
            .and_then(|c| c.get(&arch.name).cloned());
        if let Some(known) = cached {
            return known;
        }
        let proofs = self.proofs();
        let key = probe::program(arch).and_then(|image| Key::native(arch, &image));
        let kept = key.as_ref().and_then(|k| proofs.get(k));
        let verdict = match kept {
            Some(answer) => {
                tracing::debug!("{}: native {answer} (proven earlier this boot)", arch.name);
                Ok(answer)
            }
            None => {
                let (verdict, proven) = probe_natively(arch);
                if let (Some(k), Ok(answer), true) = (&key, &verdict, proven) {
                    proofs.put(k, *answer);
                }
                verdict
            }
        };
        if let Ok(mut cache) = self.native.lock() {
            cache.insert(arch.name.clone(), verdict.clone());
        }
        verdict
    }

    fn start_probes(&self, probes: &[Probe<'_>]) -> Box<dyn Answers> {
        let proofs = self.proofs();
        let mut jobs = Vec::new();
        let mut expect = Vec::new();
        for p in probes {
            let Some((job, key)) = job_for(p) else {
                expect.push(Expect::Known(false));
                continue;
            };
            if let Some(answer) = key.as_ref().and_then(|k| proofs.get(k)) {
                tracing::debug!("{}: {answer} (proven earlier this boot)", job.file);
                expect.push(Expect::Known(answer));
                continue;
            }
            let want = match p {
                Probe::Native(_) => probe::expected_output("yes", "native"),
                Probe::PreserveArgv0 { .. } => probe::expected_output("p", ARGV0),
            };
            let native = matches!(p, Probe::Native(_));
            expect.push(Expect::Run {
                job: jobs.len(),
                want,
                key,
                native,
            });
            jobs.push(job);
        }
        let batch = if jobs.is_empty() {
            None
        } else {
            runner::start(&jobs)
                .map_err(|e| tracing::debug!("probes in private instances could not start: {e}"))
                .ok()
        };
        Box::new(Running {
            batch,
            expect,
            proofs,
        })
    }

    fn writers(&self, path: &Path) -> Vec<super::Writer> {
        super::after::writers(path)
    }

    fn self_exe_head(&self, max: usize) -> Option<Vec<u8>> {
        let (file, _) = fileio::open_regular(Path::new("/proc/self/exe"), Follow::Yes).ok()?;
        fileio::read_prefix(&file, max).ok()
    }

    fn lstat(&self, path: &Path) -> std::io::Result<Meta> {
        std::fs::symlink_metadata(path).map(|m| Meta::of(&m))
    }

    fn stat(&self, path: &Path) -> std::io::Result<Meta> {
        std::fs::metadata(path).map(|m| Meta::of(&m))
    }

    fn read_link(&self, path: &Path) -> std::io::Result<PathBuf> {
        std::fs::read_link(path)
    }

    fn canonicalize(&self, path: &Path) -> std::io::Result<PathBuf> {
        std::fs::canonicalize(path)
    }

    fn read_dir(&self, path: &Path) -> std::io::Result<Vec<OsString>> {
        std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.file_name()))
            .collect()
    }

    fn may_execute(&self, path: &Path) -> bool {
        crate::sys::path::may_execute(path)
    }

    fn beyond_reach(&self, path: &Path) -> bool {
        use nix::errno::Errno;
        use nix::fcntl::{AT_FDCWD, AtFlags};
        use nix::unistd::{AccessFlags, faccessat};
        const CAP_DAC_OVERRIDE: u32 = 1;
        let holds = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("CapEff:"))
                    .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            })
            .is_some_and(|caps| caps & (1 << CAP_DAC_OVERRIDE) != 0);
        holds
            && matches!(
                faccessat(AT_FDCWD, path, AccessFlags::W_OK, AtFlags::AT_EACCESS),
                Err(Errno::EACCES | Errno::EROFS)
            )
    }

    fn open(&self, path: &Path, follow: Follow) -> Result<(Handle, Meta), OpenError> {
        let (file, meta) = fileio::open_regular(path, follow)?;
        Ok((Handle::Disk(file), Meta::of(&meta)))
    }

    fn kept(&self, key: &Key) -> Option<Reply> {
        Reply::from_kept(&self.proofs().get_text(key)?)
    }

    fn keep(&self, key: &Key, reply: &Reply) {
        if let Some(text) = reply.kept_text() {
            self.proofs().put_text(key, &text);
        }
    }

    fn start_asking(&self, asks: &[Ask<'_>], timeout: Duration) -> Box<dyn Replies> {
        use runner::{Job, Place};
        let mut jobs = Vec::new();
        // Per ask: the index of its job; None: there is no such program for its arch.
        let mut index = Vec::new();
        for a in asks {
            let image = match a.program {
                AskProgram::Echo => probe::program(a.arch),
                AskProgram::Levels => probe::levels::program(a.arch).map(|p| p.image),
            };
            let Some(image) = image else {
                index.push(None);
                continue;
            };
            // One name per ask; the extension, when there is one, comes after the only dot.
            // Numbered across the run: the batches alive at once share a directory.
            let n = ASKED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut file = format!("ask-{n}-{}", a.arch.name.replace(['/', '.'], "_"));
            if let Some(ext) = a.extension {
                file.push('.');
                file.push_str(ext);
            }
            index.push(Some(jobs.len()));
            jobs.push(Job {
                file,
                image,
                argv0: "binfmt-setup-ask".into(),
                args: Vec::new(),
                place: if a.chroot { Place::Chroot } else { Place::Here },
                env: Some(a.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            });
        }
        let batch = runner::start(&jobs)
            .map_err(|e| tracing::debug!("asks could not start: {e}"))
            .ok();
        Box::new(Asking {
            batch,
            index,
            timeout,
        })
    }
}

/// Asks made so far by this process, for their file names.
static ASKED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Asks running in the background.
struct Asking {
    batch: Option<runner::Batch>,
    index: Vec<Option<usize>>,
    timeout: Duration,
}

impl Replies for Asking {
    fn collect(self: Box<Self>) -> Vec<Reply> {
        let outcomes = self.batch.map(|b| b.wait(self.timeout)).unwrap_or_default();
        self.index
            .iter()
            .map(|i| match i.and_then(|i| outcomes.get(i)) {
                None => Reply {
                    failure: Some("there is no such program for this architecture".into()),
                    ..Reply::default()
                },
                Some(o) => Reply::of(o, self.timeout),
            })
            .collect()
    }
}

/// The program and place that answer one probe, and the key its answer is kept under (none
/// when it may not be kept).
fn job_for(p: &Probe<'_>) -> Option<(runner::Job, Option<Key>)> {
    use runner::{Job, Place};
    match *p {
        Probe::Native(a) => {
            let image = probe::program(a)?;
            let key = Key::native(a, &image);
            let job = Job {
                file: format!("native-{}", a.name),
                image,
                argv0: "native".into(),
                args: vec!["yes".into()],
                place: Place::PrivateInstance(None),
                env: None,
            };
            Some((job, key))
        }
        Probe::PreserveArgv0 { arch, interpreter } => {
            let reg = Registration::for_arch(arch, interpreter.display().to_string(), "P".into());
            reg.validate().ok()?;
            let image = probe::program(arch)?;
            let register = reg.register_string();
            let key = Key::argv0(arch, &image, &register, interpreter);
            let job = Job {
                file: format!("argv0-{}", arch.name),
                image,
                argv0: ARGV0.into(),
                args: vec!["p".into()],
                place: Place::PrivateInstance(Some(register)),
                env: None,
            };
            Some((job, key))
        }
    }
}

/// How one probe is answered.
enum Expect {
    /// Without running it: it cannot run, or was proven before.
    Known(bool),
    /// By job `job`, which proves yes by printing `want`.
    Run {
        job: usize,
        want: String,
        key: Option<Key>,
        native: bool,
    },
}

/// Probes running in the background.
struct Running {
    batch: Option<runner::Batch>,
    expect: Vec<Expect>,
    proofs: Arc<Proofs>,
}

impl Answers for Running {
    fn collect(self: Box<Self>) -> Vec<bool> {
        let outcomes = self
            .batch
            .map(|b| b.wait(BATCH_TIMEOUT))
            .unwrap_or_default();
        self.expect
            .iter()
            .map(|e| match e {
                Expect::Known(answer) => *answer,
                Expect::Run {
                    job,
                    want,
                    key,
                    native,
                } => {
                    let Some(o) = outcomes.get(*job) else {
                        return false;
                    };
                    let yes =
                        o.ending == Ending::Exited(probe::EXIT_CODE) && o.stdout == want.as_bytes();
                    if let Some(k) = key {
                        if proven(o, *native, want) {
                            self.proofs.put(k, yes);
                        }
                    }
                    yes
                }
            })
            .collect()
    }
}

/// Whether a probe's outcome proves its answer, either way, so it may be kept: it ran to its
/// end and echoed its token (whatever argv[0] it got), or, asked whether the kernel runs it,
/// the kernel refused it (ENOEXEC). Failing to start, a timeout or a crash prove nothing.
fn proven(o: &Outcome, native: bool, want: &str) -> bool {
    let token = want.split('\n').next().unwrap_or_default();
    let echoed = o.ending == Ending::Exited(probe::EXIT_CODE)
        && o.stdout.starts_with(format!("{token}\n").as_bytes());
    let refused = native
        && o.ending
            == Ending::Failed {
                step: Step::Exec,
                errno: Errno::ENOEXEC,
            };
    echoed || refused
}

/// Run the arch's probe against a private, empty binfmt_misc: exit 42 with its token echoed
/// means the kernel ran it itself, as no handler exists there. Also whether the answer is a
/// proof that may be kept ([`proven`]).
fn probe_natively(arch: &Arch) -> (Result<bool, ProbeError>, bool) {
    use runner::{Job, Place, run_all};
    let Some(image) = probe::program(arch) else {
        return (
            Err(ProbeError(format!("no probe for {}", arch.name))),
            false,
        );
    };
    let job = Job {
        file: "probe".into(),
        image,
        argv0: "probe".into(),
        args: vec!["native".into()],
        place: Place::PrivateInstance(None),
        env: None,
    };
    let out = match run_all(&[job], NATIVE_TIMEOUT) {
        Ok(out) => out,
        Err(e) => return (Err(ProbeError(e.to_string())), false),
    };
    let Some(out) = out.first() else {
        return (Err(ProbeError("the probe did not run".into())), false);
    };
    let proof = proven(out, true, &probe::expected_output("native", "probe"));
    let verdict = match &out.ending {
        Ending::Exited(code) => {
            Ok(*code == probe::EXIT_CODE && out.stdout.starts_with(b"native\n"))
        }
        Ending::Failed {
            step: Step::Exec,
            errno: Errno::ENOEXEC,
        } => Ok(false),
        // unshare or mount refused: no private instance on this kernel or for this user.
        Ending::Failed { step, errno } => Err(ProbeError(format!(
            "cannot run the probe in a private binfmt_misc: {}: {}",
            step.as_str(),
            errno.desc()
        ))),
        other => Err(ProbeError(format!("the probe ended with {other:?}"))),
    };
    (verdict, proof)
}
/// Who this process is, for exec's permission checks.
fn read_credentials() -> Credentials {
    Credentials {
        euid: nix::unistd::geteuid().as_raw(),
        egid: nix::unistd::getegid().as_raw(),
        groups: nix::unistd::getgroups()
            .map(|g| g.iter().map(|g| g.as_raw()).collect())
            .unwrap_or_default(),
        outside: unmapped_owner(),
    }
}

/// The uid that files of ids this user namespace does not map show as, when the parent's
/// root is among those ids (see [`Credentials::outside`]). A namespace that maps the parent's
/// root shows root's files as 0, so a file showing the overflow uid there is certainly
/// someone else's; the first namespace maps every id.
fn unmapped_owner() -> Option<u32> {
    let map = std::fs::read_to_string("/proc/self/uid_map").ok()?;
    let overflow: u32 = std::fs::read_to_string("/proc/sys/kernel/overflowuid")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // Each line: first id inside, first id in the parent, count.
    let maps_parent_root = map.lines().any(|l| {
        let f: Vec<u64> = l
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        matches!(f[..], [_, 0, n] if n > 0)
    });
    (!maps_parent_root).then_some(overflow)
}
