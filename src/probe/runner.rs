//! Running programs through the kernel, a core's worth at a time: each is written into a
//! fresh directory and executed through the process layer (`sys::exec`) with a plain execve,
//! optionally as the only file of an empty chroot (which only an `F` handler can serve, since
//! the interpreter's path does not exist there) or against a private binfmt_misc of its own.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::sys::exec::{self, ChrootFallback, Env, Outcome, Spec};

/// How much of a program's stdout and stderr is kept.
const KEEP_OUTPUT: usize = 64 * 1024;

/// One program to run.
#[derive(Debug, Clone)]
pub struct Job {
    /// File name inside the run directory (also how results are matched up).
    pub file: String,
    pub image: Vec<u8>,
    /// argv[0] to pass; a handler with `P` hands it on, one without replaces it by the path.
    pub argv0: String,
    pub args: Vec<String>,
    pub place: Place,
    /// Its whole environment (`KEY=value`); `None`: ours.
    pub env: Option<Vec<String>>,
}

/// Where programs run: a directory of our own, removed when dropped.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
}

thread_local! {
    /// The directory this thread's batches share while any of them is alive.
    static SHARED: std::cell::RefCell<std::rc::Weak<RunDir>> =
        const { std::cell::RefCell::new(std::rc::Weak::new()) };
}

/// Where run directories go: `$TMPDIR` when it is set; else /dev/shm when it is a tmpfs
/// that lets its files run and us write, for creating and removing files there costs
/// nothing like it does on a disk (on this project's ext4 `/tmp`, mounted `discard`, a run
/// of `test` spent about 3 ms of its own 10 in mkdir, creat, unlink and rmdir); else the
/// system temp dir, /tmp.
pub fn base() -> PathBuf {
    static BASE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BASE.get_or_init(|| {
        if std::env::var_os("TMPDIR").is_some() {
            return std::env::temp_dir();
        }
        let shm = Path::new("/dev/shm");
        let tmpfs = nix::sys::statfs::statfs(shm)
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC);
        let runs = nix::sys::statvfs::statvfs(shm).is_ok_and(|s| {
            !s.flags().intersects(
                nix::sys::statvfs::FsFlags::ST_NOEXEC | nix::sys::statvfs::FsFlags::ST_RDONLY,
            )
        });
        let writable = nix::unistd::access(
            shm,
            nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
        )
        .is_ok();
        if tmpfs && runs && writable {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        }
    })
    .clone()
}

impl RunDir {
    /// A new directory under [`base`], 0755 so a child in another user namespace (where our
    /// uid is unmapped) can still reach the files through the "other" bits.
    pub fn new(prefix: &str) -> std::io::Result<RunDir> {
        use std::os::unix::fs::DirBuilderExt;
        let base = base();
        for n in 0..100u32 {
            let path = base.join(format!("{prefix}-{}-{n}", std::process::id()));
            // Made 0755 at once: created 0777 and chmodded after, a umask of 0 would leave a
            // moment in which anyone could plant a symlink where a probe is then written.
            match std::fs::DirBuilder::new().mode(0o755).create(&path) {
                Ok(()) => {
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
                    return Ok(RunDir { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::other(format!(
            "no free name for a directory {prefix}-* in {}",
            base.display()
        )))
    }

    /// The directory this thread's live batches use, or a new one: one mkdir and one rmdir
    /// for all of a run's batches.
    fn shared(prefix: &str) -> std::io::Result<std::rc::Rc<RunDir>> {
        if let Some(dir) = SHARED.with_borrow(std::rc::Weak::upgrade) {
            return Ok(dir);
        }
        let dir = std::rc::Rc::new(RunDir::new(prefix)?);
        SHARED.set(std::rc::Rc::downgrade(&dir));
        Ok(dir)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write a new executable file into the directory: never through a symlink, never over
    /// a file already there ([`exec::write_program`]).
    pub fn write(&self, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
        let p = self.path.join(name);
        exec::write_program(&p, bytes)?;
        Ok(p)
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Where a program runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// From the run directory, in this process's namespaces.
    Here,
    /// With the run directory as the root (as root; otherwise inside a new user namespace,
    /// which still execs through the same binfmt_misc instance).
    Chroot,
    /// Against a private binfmt_misc (see `sys::ns`) holding only this register string, if
    /// any: with none, only what the kernel runs by itself runs there.
    PrivateInstance(Option<String>),
}

/// Run every job (a core's worth at a time) and wait for all, each bounded by `timeout`.
pub fn run_all(jobs: &[Job], timeout: Duration) -> std::io::Result<Vec<Outcome>> {
    Ok(start(jobs)?.wait(timeout))
}

/// Programs started by [`start`], running while the caller does other work.
#[derive(Debug)]
pub struct Batch {
    pool: exec::Pool,
    /// Per job, its file in `dir`: removed as soon as the job is done.
    files: Vec<PathBuf>,
    // Removed only after every program of every batch sharing it has finished with it.
    dir: std::rc::Rc<RunDir>,
}

/// Start the jobs: the first few now, the rest as those end ([`exec::Pool`]);
/// [`Batch::wait`] collects them. The batches alive at once on a thread share one
/// directory, so job file names must differ between them.
pub fn start(jobs: &[Job]) -> std::io::Result<Batch> {
    let made = |e: std::io::Error| {
        std::io::Error::new(
            e.kind(),
            format!(
                "cannot make a directory for the probes in {}: {e}",
                base().display()
            ),
        )
    };
    let mut dir = RunDir::shared("binfmt-setup-test").map_err(made)?;
    // A name another live batch uses already: a directory of this batch's own.
    if jobs
        .iter()
        .any(|j| std::fs::symlink_metadata(dir.path().join(&j.file)).is_ok())
    {
        dir = std::rc::Rc::new(RunDir::new("binfmt-setup-test").map_err(made)?);
    }
    let write = |j: &Job| {
        dir.write(&j.file, &j.image)
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot write {}: {e}", dir.path().join(&j.file).display()),
                )
            })
            .map(drop)
    };
    // The first ones start as soon as their files are there; each of the rest joins the
    // pool once written, and places freed meanwhile (a native probe ends within a tenth of
    // a millisecond) are filled at once: 19 files written before the first start held it
    // back by 2 ms, and written after it without a refill they left a core idle as long.
    // Should a later file fail, the probes already started end on their own.
    let limit = exec::Pool::default_limit();
    let (first, rest) = jobs.split_at(limit.min(jobs.len()));
    first.iter().try_for_each(write)?;
    let mut pool = exec::Pool::start(first.iter().map(|j| spec(&dir, j)).collect(), limit);
    for j in rest {
        write(j)?;
        pool.push(spec(&dir, j));
        exec::Pool::refill();
    }
    Ok(Batch {
        pool,
        files: jobs.iter().map(|j| dir.path().join(&j.file)).collect(),
        dir,
    })
}

/// The process layer's description of one job.
fn spec(dir: &RunDir, j: &Job) -> Spec {
    let program = match j.place {
        Place::Chroot => PathBuf::from("/").join(&j.file),
        _ => dir.path().join(&j.file),
    };
    let spec = Spec::new(program)
        .argv(std::iter::once(&j.argv0).chain(&j.args))
        .output(exec::Output::Capture { limit: KEEP_OUTPUT })
        .new_process_group();
    let spec = match &j.env {
        Some(env) => spec.env(Env::Exactly(env.iter().map(Into::into).collect())),
        None => spec,
    };
    match &j.place {
        Place::Here => spec,
        Place::Chroot => spec.chroot(dir.path(), ChrootFallback::UserNamespace),
        Place::PrivateInstance(rule) => spec.private_binfmt(rule.iter().cloned().collect()),
    }
}

impl Batch {
    /// Wait for every program, each bounded by `timeout` from its start; one outcome per job,
    /// in order. A job that could not be started at all reads as failed at its first step.
    pub fn wait(self, timeout: Duration) -> Vec<Outcome> {
        self.wait_each(timeout, |_, _| {})
    }

    /// [`wait`](Self::wait), handing each job's outcome to `done` (with the job's index) as
    /// soon as it is complete, while the others still run. Each job's file is removed as it
    /// is done, while the others still run, rather than all of them after the last.
    pub fn wait_each(
        self,
        timeout: Duration,
        mut done: impl FnMut(usize, &Outcome),
    ) -> Vec<Outcome> {
        let Batch { pool, files, dir } = self;
        let outcomes = pool.wait_each(Some(timeout), |i, o| {
            if let Some(f) = files.get(i) {
                let _ = std::fs::remove_file(f);
            }
            done(i, o);
        });
        drop(dir);
        outcomes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Probes are written as root: a name planted in the run directory (a symlink to
    /// /etc/passwd) must make the write fail, not redirect it.
    #[test]
    fn probes_are_never_written_through_a_planted_symlink() {
        let dir = RunDir::new("binfmt-setup-unit").expect("run dir");
        let mode = std::fs::metadata(dir.path())
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        let victim = tempfile::NamedTempFile::new().expect("victim");
        std::os::unix::fs::symlink(victim.path(), dir.path().join("probe")).expect("plant");
        assert!(dir.write("probe", b"\x7fELF").is_err());
        assert_eq!(std::fs::read(victim.path()).expect("read").len(), 0);
        let p = dir
            .write("other", b"\x7fELF")
            .expect("a new name is written");
        assert_eq!(std::fs::read(p).expect("read"), b"\x7fELF");
    }
}
