//! Which mount a file lives on, and whether that mount forbids exec (`noexec`).

use std::path::{Path, PathBuf};

/// One mount, as /proc/self/mountinfo lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub point: PathBuf,
    pub fstype: String,
    pub noexec: bool,
}

/// Every mount this process sees, in mount order.
pub fn read() -> Result<Vec<Mount>, String> {
    let infos = procfs::process::Process::myself()
        .and_then(|p| p.mountinfo())
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    Ok(infos
        .into_iter()
        .map(|m| Mount {
            noexec: m.mount_options.contains_key("noexec"),
            point: m.mount_point,
            fstype: m.fs_type,
        })
        .collect())
}

/// The mount holding `path` (a path with symlinks already resolved): the one with the
/// longest mount point that contains it, and of those the last mounted, which hides the
/// ones under it.
pub fn containing<'m>(mounts: &'m [Mount], path: &Path) -> Option<&'m Mount> {
    mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| path.starts_with(&m.point))
        .max_by_key(|(i, m)| (m.point.components().count(), *i))
        .map(|(_, m)| m)
}

/// The kernel's own answer for the mount holding `path`, where mountinfo could not be read.
pub fn statvfs_noexec(path: &Path) -> Option<bool> {
    nix::sys::statvfs::statvfs(path)
        .ok()
        .map(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_NOEXEC))
}

#[cfg(test)]
mod tests {
    use super::*;

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
            containing(&mounts, Path::new("/tmp/a")),
            Some(&mounts[3]),
            "a later mount on /tmp hides the earlier one"
        );
        assert_eq!(containing(&mounts, Path::new("/tmp/x/b")), Some(&mounts[2]));
        assert_eq!(containing(&mounts, Path::new("/tmpfoo")), Some(&mounts[0]));
    }

    #[test]
    fn this_process_has_a_root_mount() {
        let mounts = read().expect("mountinfo");
        assert!(containing(&mounts, Path::new("/usr/bin/env")).is_some());
    }
}
