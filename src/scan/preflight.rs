//! Preflight for a root file system about to be built or run here: which programs will not
//! run on this host (natively, or through the binfmt_misc handler their platform has here),
//! with the level each needs and the level its CPU was proven to run; which setuid programs
//! a handler without `C` runs without their privilege; and whether a 32-bit image meets
//! 64-bit directory cookies.
//!
//! Directory cookies, measured here (Linux 6.18, Debian's qemu-arm-static 7.2, a 32-bit ARM
//! program listing 300 files with raw getdents64 and getdents): on ext4 every d_off is
//! above 2^31-1 (hash cookies, the last one 0x7fffffffffffffff), because QEMU is a 64-bit
//! process and ext4 gives 32-bit hashes only to 32-bit system calls; QEMU's old getdents
//! cuts them to 32 bits silently (146 of 302 wrapped past 2^31). On tmpfs every d_off stays
//! below 2^31. glibc's readdir for 32-bit programs built without _FILE_OFFSET_BITS=64 then
//! fails with EOVERFLOW ("Value too large for defined data type") when a d_off does not fit
//! (glibc `sysdeps/unix/sysv/linux/readdir.c`). The check here asks the file system itself:
//! it lists the scanned directory with getdents64 from this 64-bit process, as QEMU would.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde::Serialize;

use crate::arch::ArchTable;
use crate::binfmt::Snapshot;
use crate::elf;
use crate::machine::Machine;
use crate::needs;
use crate::probe::levels::Found;

/// Files looked at, at most.
const MAX_FILES: usize = 1 << 20;
const MAX_DEPTH: usize = 64;

/// A program that will not run here.
#[derive(Debug, Clone, Serialize)]
pub struct WontRun {
    pub path: String,
    pub platform: String,
    /// `rva20u64 + v`.
    pub needs: String,
    /// Where that was learnt.
    pub from: String,
    /// `native`, or the handler.
    pub by: String,
    /// The highest level proven there.
    pub available: Option<&'static str>,
    pub lacks: Vec<&'static str>,
}

/// A setuid or setgid program that its handler runs without its privilege.
#[derive(Debug, Clone, Serialize)]
pub struct Setuid {
    pub path: String,
    pub mode: String,
    pub handler: String,
}

/// 64-bit directory cookies a 32-bit emulated program would meet.
#[derive(Debug, Clone, Serialize)]
pub struct Cookies {
    pub directory: String,
    pub filesystem: String,
    pub largest: u64,
    pub advice: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Preflight {
    pub programs: u64,
    pub will_not_run: Vec<WontRun>,
    pub setuid_without_c: Vec<Setuid>,
    pub dir_cookies: Option<Cookies>,
    /// Nothing found that will not run.
    pub ok: bool,
}

/// Check the tree at `root`; `expected` is the platform scan judged it against.
pub fn check(
    machine: &dyn Machine,
    table: &ArchTable,
    binfmt: &Snapshot,
    root: &Path,
    expected: Option<&str>,
) -> Preflight {
    let host = crate::machine::host(machine, table);
    let mut out = Preflight::default();
    let mut files = Vec::new();
    let mut levels: std::collections::HashMap<String, Option<u32>> = Default::default();
    collect(root, root, 0, &mut files);
    for (inside, path, mode) in files {
        let Ok((file, meta)) = crate::fileio::open_regular(&path, crate::fileio::Follow::NotLast)
        else {
            continue;
        };
        let Ok(head) = crate::fileio::read_prefix(&file, crate::format::HEAD_BYTES) else {
            continue;
        };
        if !head.starts_with(b"\x7fELF") {
            continue;
        }
        let Ok(info) = elf::read(&file, &head, meta.len()) else {
            continue;
        };
        if !info.is_program() || !info.is_linux() {
            continue;
        }
        out.programs += 1;
        let naming = elf::name(&info, table);
        let Some(arch) = naming.arch.as_deref().and_then(|a| table.find(a)) else {
            continue;
        };
        let native = host.arch.as_deref() == Some(arch.name.as_str());
        let handler = (!native)
            .then(|| binfmt.handler_for(Path::new(&inside), &head))
            .flatten();
        if mode & 0o6000 != 0 {
            if let Some(h) = handler.filter(|h| !h.has_flag('C')) {
                out.setuid_without_c.push(Setuid {
                    path: inside.clone(),
                    mode: format!("{:04o}", mode & 0o7777),
                    handler: h.name.clone(),
                });
            }
        }
        let Some(n) = needs::of_program(&file, meta.len(), &info, &arch.name) else {
            continue;
        };
        if n.mask == 0 || (!native && handler.is_none()) {
            continue;
        }
        // One probe per architecture, however many programs need a level.
        let proven = *levels
            .entry(arch.name.clone())
            .or_insert_with(|| machine.levels(arch).ok().flatten());
        let Some(mask) = proven else {
            continue;
        };
        let found = Found {
            mask,
            family: n.family,
        };
        let lacks = n.missing(&found);
        if !lacks.is_empty() {
            out.will_not_run.push(WontRun {
                path: inside,
                platform: naming.platform.unwrap_or_default(),
                needs: n.describe(),
                from: n.sources(),
                by: handler.map_or("native".into(), |h| h.name.clone()),
                available: found.highest().map(|l| l.name),
                lacks,
            });
        }
    }
    out.dir_cookies = cookies(machine, table, root, expected);
    out.will_not_run.sort_by(|a, b| a.path.cmp(&b.path));
    out.setuid_without_c.sort_by(|a, b| a.path.cmp(&b.path));
    out.ok = out.will_not_run.is_empty();
    out
}

/// Every regular file with an execute or set-id bit below `dir`, symlinks not followed:
/// (path inside the root, host path, mode).
fn collect(
    root: &Path,
    dir: &Path,
    depth: usize,
    out: &mut Vec<(String, std::path::PathBuf, u32)>,
) {
    if depth > MAX_DEPTH || out.len() >= MAX_FILES {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(meta) = e.path().symlink_metadata() else {
            continue;
        };
        let path = e.path();
        if meta.is_dir() {
            collect(root, &path, depth + 1, out);
        } else if meta.is_file() && meta.permissions().mode() & 0o7111 != 0 {
            let inside = Path::new("/").join(path.strip_prefix(root).unwrap_or(&path));
            out.push((
                inside.display().to_string(),
                path.clone(),
                meta.permissions().mode(),
            ));
        }
    }
}

/// For a 32-bit platform this host emulates: the largest directory cookie the file system
/// under `root` hands a 64-bit process, when it does not fit in 32 bits.
fn cookies(
    machine: &dyn Machine,
    table: &ArchTable,
    root: &Path,
    expected: Option<&str>,
) -> Option<Cookies> {
    let arch = table.lookup(expected?).ok()?;
    let host = crate::machine::host(machine, table);
    if arch.class != 32 || host.arch.as_deref() == Some(arch.name.as_str()) {
        return None;
    }
    if machine.runs_natively(arch).unwrap_or(false) {
        return None;
    }
    let largest = largest_cookie(root)?;
    if largest <= i32::MAX as u64 {
        return None;
    }
    let filesystem = filesystem_name(root);
    Some(Cookies {
        directory: root.display().to_string(),
        filesystem: filesystem.clone(),
        largest,
        advice: format!(
            "{} programs run here under QEMU, a 64-bit process, so {filesystem} hands them 64-bit directory cookies and 32-bit readdir fails with EOVERFLOW (\"Value too large for defined data type\"; cargo, git, npm); build on tmpfs (measured: 32-bit cookies), build the programs with _FILE_OFFSET_BITS=64, or build on a host that runs {} natively",
            arch.platform, arch.name
        ),
    })
}

/// The largest d_off getdents64 gives for `dir`.
fn largest_cookie(dir: &Path) -> Option<u64> {
    use rustix::fs::{Mode, OFlags, RawDir};
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )
    .ok()?;
    let mut buf = vec![std::mem::MaybeUninit::<u8>::uninit(); 64 * 1024];
    let mut raw = RawDir::new(&fd, &mut buf);
    let mut largest = 0u64;
    let mut seen = 0;
    while let Some(entry) = raw.next() {
        let entry = entry.ok()?;
        largest = largest.max(entry.next_entry_cookie());
        seen += 1;
        if seen > 4096 {
            break;
        }
    }
    Some(largest)
}

/// ext4, tmpfs, xfs, btrfs, overlay, … by statfs magic.
fn filesystem_name(dir: &Path) -> String {
    let Ok(s) = rustix::fs::statfs(dir) else {
        return "this file system".into();
    };
    #[allow(clippy::unnecessary_cast)]
    match s.f_type as i64 {
        0xEF53 => "ext4".into(),
        0x0102_1994 => "tmpfs".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        0x794C_7630 => "overlayfs".into(),
        other => format!("file system 0x{other:x}"),
    }
}
