//! Harness pieces for the `run` and `init` tests: an arm64 busybox root filesystem, running
//! the binary as an unprivileged host user, the host's binfmt_misc state, and waiting.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::util::{HOST_BINFMT, bin, host_entries, nix_is_root, repo};

/// The unprivileged host user the rootless tests act as (nobody).
pub const NOBODY: &str = "65534";

/// An arm64 root filesystem of Debian's static busybox (scripts/rootfs.sh; cached in target/).
pub fn busybox_rootfs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = repo().join("target/rootfs/arm64");
        let status = Command::new("bash")
            .arg(repo().join("scripts/rootfs.sh"))
            .arg(&out)
            .status()
            .expect("run scripts/rootfs.sh");
        assert!(
            status.success(),
            "scripts/rootfs.sh failed; run scripts/setup.sh first"
        );
        out
    })
}

/// `program` run as an unprivileged host user: `nobody` via setpriv when the tests run as
/// root, else the tests' own (already unprivileged) user.
pub fn unprivileged_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = if nix_is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            "--",
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    };
    c.env_remove("BINFMT_SETUP_DIR");
    c
}

/// The binary under test with `args`, as an unprivileged host user.
pub fn unprivileged(args: &[&str]) -> Command {
    let mut c = unprivileged_command(bin());
    c.args(args);
    c
}

/// What the host's binfmt_misc looks like from here: whether something is mounted at the
/// usual path (from mountinfo, which touching the directory cannot change) and its listing.
pub fn host_binfmt_state() -> (bool, Vec<String>) {
    let mounted = std::fs::read_to_string("/proc/self/mountinfo")
        .expect("read mountinfo")
        .lines()
        .any(|l| l.split_whitespace().nth(4) == Some(HOST_BINFMT));
    let mut entries = host_entries();
    entries.sort();
    (mounted, entries)
}

/// Poll `check` every 50 ms until it holds or `limit` passes; whether it held.
pub fn wait_for(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if check() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A temporary directory every user can enter and read (the tests' files are read inside
/// namespaces and by unprivileged users).
pub fn open_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    d
}
