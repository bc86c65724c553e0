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

impl RunDir {
    /// A new directory under the system temp dir, 0755 so a child in another user namespace
    /// (where our uid is unmapped) can still reach the files through the "other" bits.
    pub fn new(prefix: &str) -> std::io::Result<RunDir> {
        use std::os::unix::fs::DirBuilderExt;
        let base = std::env::temp_dir();
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
    // Removed only after every program has finished with it.
    dir: RunDir,
}

/// Start the jobs: the first few now, the rest as those end ([`exec::Pool`]);
/// [`Batch::wait`] collects them.
pub fn start(jobs: &[Job]) -> std::io::Result<Batch> {
    let dir = RunDir::new("binfmt-setup-test").map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "cannot make a directory for the probes in {}: {e}",
                std::env::temp_dir().display()
            ),
        )
    })?;
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
    // The first ones start as soon as their files are there; the rest are written while
    // those run (the pool starts no more before `wait`): creating a file costs about a tenth
    // of a millisecond here, and 19 of them held back the first probe by 2 ms (a sched
    // trace: the first probe's exec 4.8 to 6.3 ms after ours, then 3.0 to 4.2 ms). Should a
    // later file fail, the probes already started end on their own, in a directory removed.
    let limit = exec::Pool::default_limit();
    let (first, rest) = jobs.split_at(limit.min(jobs.len()));
    first.iter().try_for_each(write)?;
    let specs: Vec<Spec> = jobs.iter().map(|j| spec(&dir, j)).collect();
    let pool = exec::Pool::start(specs, limit);
    rest.iter().try_for_each(write)?;
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
