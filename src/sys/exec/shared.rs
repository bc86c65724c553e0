//! Starting a child that shares our memory until it execs, as posix_spawn(3) does: clone(2)
//! with CLONE_VM and CLONE_VFORK, on a stack of its own. A fork copies our page tables and
//! then faults in every page either side writes; for a probe that execs a moment later that
//! is most of the cost of starting it (measured with `perf` on `test`: the forks, and tearing
//! down their copies at exec, took about a third of binfmt-setup's own CPU time).
//!
//! The calling thread is suspended until the child has exec'd or ended, so the prepared data
//! stays valid and untouched. The child runs the same steps as a forked one
//! ([`child::run`]), which only make system calls on prepared data; besides its own stack it
//! writes only errno (the suspended thread's), which no code of ours reads after a
//! successful clone. Used only where every step is sound in a child that shares memory:
//! joining a user namespace refuses a process whose memory is shared (EINVAL), and a child
//! that waits for the parent (id maps written by it) would wait forever.

use std::io;

use nix::libc;
use nix::sys::signal::{SigSet, SigmaskHow, pthread_sigmask};
use nix::unistd::Pid;

use super::child::{self, Prepared};

/// Bytes of the child's stack. Its steps need a few KiB (no buffers, no recursion); the stack
/// lives in the suspended caller's frame, so no mapping is made and unmapped per child (each
/// unmapping interrupts every other thread of ours to flush its TLB).
const STACK: usize = 64 * 1024;

/// The child's stack, aligned as every ABI here wants a stack pointer.
#[repr(C, align(16))]
struct Stack([u8; STACK]);

/// Whether a child with these steps may share our memory until exec.
pub(super) fn sound(p: &Prepared) -> bool {
    p.join.is_none() && p.private.is_none() && p.root.is_empty()
}

/// Start the child; returns once it has exec'd or ended.
pub(super) fn spawn(p: &Prepared) -> io::Result<Pid> {
    let mut stack = std::mem::MaybeUninit::<Stack>::uninit();
    // No handler of ours may run in the child while it shares our memory: every signal is
    // blocked across the clone, and the child resets caught ones before it unblocks.
    let mut old = SigSet::empty();
    pthread_sigmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        Some(&mut old),
    )
    .map_err(io::Error::from)?;
    // SAFETY: `entry` runs `child::run` on `p`, which outlives the call: CLONE_VFORK returns
    // only after the child has exec'd or ended, and until then this thread, whose frame
    // holds the stack, does not run. The stack pointer is the stack's (aligned) top.
    let pid = unsafe {
        libc::clone(
            entry,
            stack.as_mut_ptr().cast::<u8>().add(STACK).cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            std::ptr::from_ref(p).cast_mut().cast(),
        )
    };
    let error = io::Error::last_os_error();
    let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    if pid < 0 {
        return Err(error);
    }
    Ok(Pid::from_raw(pid))
}

extern "C" fn entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `&Prepared` given to clone, alive while we run (see `spawn`).
    let p = unsafe { &*arg.cast::<Prepared>() };
    // A handler inherited from us would run on our memory: back to the default action for
    // each caught signal, before `run` sets the spec's mask. Ignored ones stay ignored, as
    // across a fork.
    for sig in 1..=64 {
        // SAFETY: sigaction(2) with a zeroed struct to read into and one to write from.
        unsafe {
            let mut now: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut now) == 0
                && now.sa_sigaction != libc::SIG_DFL
                && now.sa_sigaction != libc::SIG_IGN
            {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
    }
    // SAFETY: as a forked child's: system calls only, on prepared data; never returns.
    unsafe { child::run(p) }
}
