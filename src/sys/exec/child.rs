//! The child's side of the process layer: everything between fork and exec.
//!
//! Another thread of the parent may have held a lock (the allocator's, say) at the moment of
//! the fork, so the child must not allocate: it only makes system calls, through libc, on
//! data the parent prepared before forking ([`Prepared`]). A failure is reported on a
//! close-on-exec pipe as the step it happened at and its errno, then the child `_exit`s.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::libc;
use nix::sys::signal::SigSet;

use super::{ChrootFallback, Step};
use crate::sys::ns;
use crate::sys::path::{self, Candidate};

/// One step in putting a root file system in place inside the child's mount namespace
/// (`run --rootfs`): what exists on the host was decided before the fork.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootOp {
    /// Bind `src` on `dst`. An optional one that fails is passed over, and `dst` (an empty
    /// file made for it) removed.
    Bind {
        src: std::path::PathBuf,
        dst: std::path::PathBuf,
        recursive: bool,
        optional: bool,
    },
    /// A small tmpfs on `dst` (nosuid, noexec) with these mount options.
    Tmpfs {
        dst: std::path::PathBuf,
        options: String,
    },
    /// An empty file, the mount point of a device bound next.
    Touch(std::path::PathBuf),
    /// A symlink at `path` to `target`.
    Symlink {
        target: std::path::PathBuf,
        path: std::path::PathBuf,
    },
    /// A directory of exactly this mode (umask notwithstanding).
    Mkdir { path: std::path::PathBuf, mode: u32 },
}

/// A [`RootOp`] with its strings made C strings before the fork.
pub(super) enum Op {
    Bind {
        src: CString,
        dst: CString,
        flags: libc::c_ulong,
        optional: bool,
    },
    Tmpfs {
        dst: CString,
        options: CString,
    },
    Touch(CString),
    Symlink {
        target: CString,
        path: CString,
    },
    Mkdir {
        path: CString,
        mode: libc::mode_t,
    },
}

/// How the child's new user namespace gets its id maps.
pub(super) enum Maps {
    /// The child maps its own uid and gid (nothing else can be mapped that way).
    Own { uid: u32, gid: u32 },
    /// The parent writes them (a full range as root, subordinate ids through newuidmap):
    /// the child says it has unshared on `sync`, then waits on `gate`.
    ByParent {
        sync: OwnedFd,
        gate: OwnedFd,
        /// The parent's ends, which the child closes so that either side's death is seen.
        parent_ends: [OwnedFd; 2],
    },
}

/// A private binfmt_misc for the child: maps, then the rules to register there.
pub(super) struct Private {
    pub maps: Maps,
    pub rules: Vec<Vec<u8>>,
}

/// Everything the child needs, built before the fork.
pub(super) struct Prepared {
    /// The path to exec, or (`search`) the PATH candidates to pick from after any chroot.
    pub programs: Vec<CString>,
    pub search: bool,
    pub _args: Vec<CString>,
    pub argv: Vec<*const libc::c_char>,
    pub _env: Vec<CString>,
    pub envp: Vec<*const libc::c_char>,
    pub mask: SigSet,
    pub new_group: bool,
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    pub join: Option<(OwnedFd, OwnedFd)>,
    pub private: Option<Private>,
    pub root: Vec<Op>,
    pub chroot: Option<(CString, ChrootFallback)>,
    pub report: OwnedFd,
}

fn ok(r: libc::c_int) -> bool {
    r >= 0
}

/// Report `step` and the current errno on `report`, and end.
fn fail(report: &OwnedFd, step: Step) -> ! {
    let errno = Errno::last_raw().to_ne_bytes();
    let msg = [step.as_u8(), errno[0], errno[1], errno[2], errno[3]];
    // SAFETY: write(2) and _exit(2) are async-signal-safe; msg lives on this stack.
    unsafe {
        libc::write(report.as_raw_fd(), msg.as_ptr().cast(), msg.len());
        libc::_exit(127)
    }
}

/// The forked child: each step of the spec, then execve.
///
/// # Safety
/// Only in a freshly forked child. It calls async-signal-safe functions only, on data
/// prepared before the fork, and never returns.
pub(super) unsafe fn run(p: &Prepared) -> ! {
    let fail = |step: Step| -> ! { fail(&p.report, step) };
    // SAFETY: sigprocmask and signal take a pointer to a mask on our stack or constants.
    unsafe {
        if !ok(libc::sigprocmask(
            libc::SIG_SETMASK,
            p.mask.as_ref(),
            std::ptr::null_mut(),
        )) {
            fail(Step::Prepare);
        }
        // Rust ignores SIGPIPE in its own processes; an ignored signal stays ignored across
        // exec, and a program must get the default (`yes | head` ends by SIGPIPE).
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // SAFETY: setpgid and dup2 on integers; the descriptors were opened before the fork.
    unsafe {
        if p.new_group && !ok(libc::setpgid(0, 0)) {
            fail(Step::Prepare);
        }
        for (fd, target) in [(&p.stdin, 0), (&p.stdout, 1), (&p.stderr, 2)] {
            if let Some(fd) = fd {
                if !ok(libc::dup2(fd.as_raw_fd(), target)) {
                    fail(Step::Prepare);
                }
            }
        }
    }
    if let Some((user, mnt)) = &p.join {
        // SAFETY: setns(2) on descriptors opened before the fork.
        unsafe {
            if !ok(libc::setns(user.as_raw_fd(), libc::CLONE_NEWUSER))
                || !ok(libc::setns(mnt.as_raw_fd(), libc::CLONE_NEWNS))
            {
                fail(Step::Join);
            }
        }
    }
    if let Some(private) = &p.private {
        if ns::unshare_user_and_mounts().is_err() {
            fail(Step::PrivateInstance);
        }
        match &private.maps {
            Maps::Own { uid, gid } => {
                if ns::map_own_ids(*uid, *gid).is_err() {
                    fail(Step::PrivateInstance);
                }
            }
            Maps::ByParent {
                sync,
                gate,
                parent_ends,
            } => {
                let mut byte = [0u8; 1];
                // SAFETY: close, write and read on descriptors made before the fork, with a
                // one-byte buffer on this stack.
                unsafe {
                    for fd in parent_ends {
                        libc::close(fd.as_raw_fd());
                    }
                    if libc::write(sync.as_raw_fd(), b"u".as_ptr().cast(), 1) != 1 {
                        fail(Step::PrivateInstance);
                    }
                    libc::close(sync.as_raw_fd());
                    // The parent writes the maps, then one byte; end of file means it gave up.
                    if libc::read(gate.as_raw_fd(), byte.as_mut_ptr().cast(), 1) != 1 {
                        libc::_exit(127);
                    }
                }
            }
        }
        if ns::mount_private_binfmt().is_err() {
            fail(Step::PrivateInstance);
        }
        for rule in &private.rules {
            if ns::write_once(ns::REGISTER, rule).is_err() {
                fail(Step::Register);
            }
        }
    }
    for op in &p.root {
        // SAFETY: mount, open, close, unlink, symlink, mkdir and chmod on C strings made
        // before the fork.
        unsafe { root_op(op, &p.report) };
    }
    if let Some((dir, fallback)) = &p.chroot {
        // SAFETY: chroot, unshare and chdir on NUL-terminated strings prepared before fork.
        unsafe {
            if !ok(libc::chroot(dir.as_ptr())) {
                let denied = Errno::last() == Errno::EPERM;
                if !(denied
                    && *fallback == ChrootFallback::UserNamespace
                    && ok(libc::unshare(libc::CLONE_NEWUSER))
                    && ok(libc::chroot(dir.as_ptr())))
                {
                    fail(Step::Chroot);
                }
            }
            if !ok(libc::chdir(c"/".as_ptr())) {
                fail(Step::Chroot);
            }
        }
    }
    let program = if p.search {
        // PATH candidates: the one rule, applied here, inside any root.
        match path::pick(&p.programs, look) {
            Some((i, _)) => &p.programs[i],
            None => {
                Errno::set_raw(libc::ENOENT);
                fail(Step::Lookup)
            }
        }
    } else {
        &p.programs[0]
    };
    // SAFETY: `program` is NUL-terminated; `argv` and `envp` are NULL-terminated arrays of
    // pointers into CStrings that live as long as `p`.
    unsafe { libc::execve(program.as_ptr(), p.argv.as_ptr(), p.envp.as_ptr()) };
    fail(Step::Exec)
}

/// What is at a candidate path, asked with stat(2) and access(2) (effective ids, as exec).
fn look(c: &CString) -> Candidate {
    // SAFETY: a zeroed stat is a valid value to be overwritten; stat and access read the C
    // string and write only `st`.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::stat(c.as_ptr(), &mut st) != 0 || st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Candidate::Absent;
        }
        if libc::faccessat(libc::AT_FDCWD, c.as_ptr(), libc::X_OK, libc::AT_EACCESS) == 0 {
            Candidate::Executable
        } else {
            Candidate::NotExecutable
        }
    }
}

/// One root operation; a failure of a required one ends the child.
///
/// # Safety
/// Only in the forked child, as [`run`].
unsafe fn root_op(op: &Op, report: &OwnedFd) {
    let fail = |step: Step| -> ! { fail(report, step) };
    // SAFETY: system calls on C strings prepared before the fork (see `run`).
    unsafe {
        match op {
            Op::Bind {
                src,
                dst,
                flags,
                optional,
            } => {
                let r = libc::mount(
                    src.as_ptr(),
                    dst.as_ptr(),
                    std::ptr::null(),
                    *flags,
                    std::ptr::null(),
                );
                if !ok(r) {
                    if !*optional {
                        fail(Step::Root);
                    }
                    libc::unlink(dst.as_ptr());
                }
            }
            Op::Tmpfs { dst, options } => {
                let r = libc::mount(
                    c"tmpfs".as_ptr(),
                    dst.as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NOEXEC,
                    options.as_ptr().cast(),
                );
                if !ok(r) {
                    fail(Step::Root);
                }
            }
            Op::Touch(path) => {
                let fd = libc::open(
                    path.as_ptr(),
                    libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                    0o644,
                );
                if fd < 0 {
                    fail(Step::Root);
                }
                libc::close(fd);
            }
            Op::Symlink { target, path } => {
                if !ok(libc::symlink(target.as_ptr(), path.as_ptr())) {
                    fail(Step::Root);
                }
            }
            Op::Mkdir { path, mode } => {
                if !ok(libc::mkdir(path.as_ptr(), *mode)) || !ok(libc::chmod(path.as_ptr(), *mode))
                {
                    fail(Step::Root);
                }
            }
        }
    }
}
