//! Whether the mount a file lives on forbids exec (`noexec`).

use std::path::{Path, PathBuf};

use crate::machine::{self, Machine, Mount, MountsError};

/// Whether the mount holding `path` (a host path with symlinks resolved) forbids exec, and,
/// when the mount list names it, that mount's point and type. Where the list cannot be read
/// or holds no mount for the path, statvfs answers, and no mount is named.
pub fn noexec(
    machine: &dyn Machine,
    mounts: &Result<Vec<Mount>, MountsError>,
    path: &Path,
) -> (bool, Option<(PathBuf, String)>) {
    let statvfs = || machine.statvfs_noexec(path).unwrap_or(false);
    match mounts {
        Ok(list) => match machine::mount_of(list, path) {
            Some(m) => (m.noexec, Some((m.point.clone(), m.fstype.clone()))),
            None => (statvfs(), None),
        },
        Err(e) => {
            tracing::debug!("{e}; asking statvfs instead");
            (statvfs(), None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::{Fake, Live};

    fn m(point: &str, noexec: bool) -> Mount {
        Mount {
            point: point.into(),
            fstype: "tmpfs".into(),
            noexec,
        }
    }

    #[test]
    fn longest_prefix_then_latest_wins() {
        let mounts = [
            m("/", false),
            m("/tmp", true),
            m("/tmp/x", false),
            m("/tmp", false),
        ];
        assert_eq!(
            machine::mount_of(&mounts, Path::new("/tmp/a")),
            Some(&mounts[3]),
            "a later mount on /tmp hides the earlier one"
        );
        assert_eq!(
            machine::mount_of(&mounts, Path::new("/tmp/x/b")),
            Some(&mounts[2])
        );
        assert_eq!(
            machine::mount_of(&mounts, Path::new("/tmpfoo")),
            Some(&mounts[0])
        );
    }

    #[test]
    fn statvfs_answers_when_the_list_cannot() {
        let fake = Fake::new().mount("/tmp", "tmpfs", true);
        let list = fake.mounts();
        assert_eq!(
            noexec(&fake, &list, Path::new("/tmp/x")),
            (true, Some(("/tmp".into(), "tmpfs".into())))
        );
        let fake = fake.unreadable_mounts();
        let list = fake.mounts();
        assert_eq!(noexec(&fake, &list, Path::new("/tmp/x")), (true, None));
    }

    #[test]
    fn this_process_has_a_root_mount() {
        let live = Live::new();
        let mounts = live.mounts().expect("mountinfo");
        assert!(machine::mount_of(&mounts, Path::new("/usr/bin/env")).is_some());
    }
}
