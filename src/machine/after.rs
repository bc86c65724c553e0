//! The live machine's answer for what happens at exec: which processes hold a file open for
//! writing (exec then fails with ETXTBSY).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::Writer;

/// File descriptors looked at, in all, before the scan gives up.
const MAX_FDS: usize = 1 << 20;

/// Every process (that this one may look at) with a descriptor open for writing on the file
/// `path` names: /proc/PID/fd/N resolves to the same device and inode, and
/// /proc/PID/fdinfo/N's `flags` has O_WRONLY or O_RDWR.
pub(super) fn writers(path: &Path) -> Vec<Writer> {
    let Ok(target) = std::fs::metadata(path) else {
        return Vec::new();
    };
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut seen = 0usize;
    let me = std::process::id();
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        // This process never execs the file itself; a descriptor it inherited is not why
        // exec fails elsewhere.
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            seen += 1;
            if seen > MAX_FDS {
                return out;
            }
            let same = std::fs::metadata(fd.path())
                .is_ok_and(|m| m.dev() == target.dev() && m.ino() == target.ino());
            if !same {
                continue;
            }
            let info = format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_string_lossy());
            if opened_for_writing(&std::fs::read_to_string(info).unwrap_or_default()) {
                let command = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .map(|c| c.trim_end().to_string())
                    .unwrap_or_default();
                out.push(Writer { pid, command });
                break;
            }
        }
    }
    out
}

/// Whether an fdinfo text's `flags:` (octal) has write access.
fn opened_for_writing(fdinfo: &str) -> bool {
    fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        .is_some_and(|f| f & 0o3 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_and_this_process_itself_are_not_writers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("busy");
        std::fs::write(&path, b"x").expect("write");
        let reader = std::fs::File::open(&path).expect("open");
        assert!(writers(&path).is_empty());
        let writer = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open for writing");
        // This process is the one asking, and is left out; another process holding it is
        // found (tests/integration/after_exec.rs).
        assert!(writers(&path).is_empty(), "{:?}", writers(&path));
        drop((reader, writer));
        assert!(opened_for_writing("pos:\t0\nflags:\t0100001\n"));
        assert!(!opened_for_writing("pos:\t0\nflags:\t0100000\n"));
    }
}
