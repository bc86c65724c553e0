//! Running a program against a private, empty binfmt_misc instance (Linux ≥ 6.7): a new user
//! and mount namespace with binfmt_misc mounted fresh, so no handler of the host's can take
//! part. No privilege is needed and nothing outside the child changes.

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};

use crate::binfmt::DEFAULT_DIR;

/// Put the calling process into a new user and mount namespace with its own empty
/// binfmt_misc at the usual path. Allocation-free, so it may run between fork and exec.
pub fn enter_private_instance() -> std::io::Result<()> {
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS).map_err(std::io::Error::from)?;
    // Keep our mounts from propagating anywhere (they could not reach the host's namespace
    // anyway, being owned by a less privileged user namespace).
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(std::io::Error::from)?;
    mount(
        Some("binfmt_misc"),
        DEFAULT_DIR,
        Some("binfmt_misc"),
        MsFlags::empty(),
        None::<&str>,
    )
    .map_err(std::io::Error::from)?;
    Ok(())
}
