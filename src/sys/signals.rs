//! Signals read as data: the signals of interest are blocked and read from a signalfd, so
//! there is no handler code, and a signal that arrives at any moment (even before the loop
//! that waits for it) is kept until it is read. As PID 1 of a container this also works:
//! the kernel never drops a blocked signal.

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// `si_code` of a signal the kernel sent itself: a terminal's ^C, ^\ or hangup, a window
/// resize. Those go to the whole foreground process group, so a child has its own copy.
const SI_KERNEL: i32 = 0x80;

/// One received signal and whether the kernel (rather than a process) sent it.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    pub signal: Signal,
    pub from_kernel: bool,
    /// The process that sent it (0 for the kernel).
    pub sender: i32,
}

/// Signals could not be blocked or read: the environment's refusal.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch signals: {0}")]
pub struct WatchError(#[from] pub io::Error);

impl crate::error::Classify for WatchError {
    fn class(&self) -> crate::error::Class {
        crate::error::Class::Environment
    }
}

impl From<nix::errno::Errno> for WatchError {
    fn from(e: nix::errno::Errno) -> WatchError {
        WatchError(e.into())
    }
}

/// Blocks a set of signals for as long as it lives and reads them from a signalfd.
#[derive(Debug)]
pub struct SignalWatch {
    fd: SignalFd,
    /// The mask before blocking: restored on drop, and what children should start with.
    previous: SigSet,
}

impl SignalWatch {
    pub fn new(signals: &[Signal]) -> Result<SignalWatch, WatchError> {
        let mut set = SigSet::empty();
        for s in signals {
            set.add(*s);
        }
        let mut previous = SigSet::empty();
        pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut previous))?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .inspect_err(|_| {
                let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&previous), None);
            })?;
        Ok(SignalWatch { fd, previous })
    }

    /// The signal mask the process had before; a child must get it back before exec, since a
    /// blocked mask is inherited across execve.
    pub fn previous_mask(&self) -> &SigSet {
        &self.previous
    }

    /// The next signal, waiting at most `timeout` (`None`: as long as it takes).
    pub fn next(&self, timeout: Option<Duration>) -> io::Result<Option<Received>> {
        loop {
            if let Some(info) = self.fd.read_signal()? {
                let Ok(signal) = Signal::try_from(info.ssi_signo as i32) else {
                    continue;
                };
                return Ok(Some(Received {
                    signal,
                    from_kernel: info.ssi_code == SI_KERNEL,
                    sender: info.ssi_pid as i32,
                }));
            }
            let wait = match timeout {
                None => PollTimeout::NONE,
                Some(d) => PollTimeout::try_from(d).unwrap_or(PollTimeout::MAX),
            };
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, wait) {
                Ok(0) => return Ok(None),
                Ok(_) => continue,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Drop for SignalWatch {
    fn drop(&mut self) {
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&self.previous), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_sent_before_waiting_is_kept_and_a_timeout_returns_none() {
        // SIGWINCH: harmless if the test harness's threads get it unblocked (default: ignore).
        let watch = SignalWatch::new(&[Signal::SIGWINCH]).expect("watch");
        nix::sys::signal::raise(Signal::SIGWINCH).expect("raise");
        let got = watch
            .next(Some(Duration::from_secs(5)))
            .expect("read")
            .expect("a signal");
        assert_eq!(got.signal, Signal::SIGWINCH);
        assert!(!got.from_kernel);
        assert_eq!(got.sender, std::process::id() as i32);
        let none = watch.next(Some(Duration::from_millis(10))).expect("read");
        assert!(none.is_none());
    }
}
