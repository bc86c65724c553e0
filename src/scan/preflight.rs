//! Preflight for a root file system or an image about to be built or run here, from the
//! programs its scan kept (read for their needs as the walk or the layer passed them,
//! `needing`): which programs will not run on this host (natively, or through the binfmt_misc handler their platform has here),
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

use std::path::Path;

use serde::Serialize;

use std::collections::HashMap;

use super::Verdict;
use crate::arch::{Arch, ArchTable};
use crate::binfmt::{Entry, Snapshot};
use crate::machine::Machine;
use crate::needs::Needs;
use crate::probe::levels::Found;

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
    /// In an image: the layer that holds it, and the image's platform in a multi-platform
    /// index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// A setuid or setgid program that its handler runs without its privilege.
#[derive(Debug, Clone, Serialize)]
pub struct Setuid {
    pub path: String,
    pub mode: String,
    pub handler: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
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

/// Check the tree at `root`, as its scan judged it (`images`: the one verdict of a directory,
/// whose programs the walk read for their needs); `expected` is the platform it was judged
/// against. Besides what [`check_image`] finds, the tree's file system is asked for its
/// directory cookies.
pub fn check(
    machine: &dyn Machine,
    table: &ArchTable,
    binfmt: &Snapshot,
    images: &[Verdict],
    root: &Path,
    expected: Option<&str>,
) -> Preflight {
    let mut out = check_image(machine, table, binfmt, images);
    out.dir_cookies = cookies(machine, table, root, expected);
    out
}

/// Check the programs a scan kept (`Verdict::programs`: those needing more than their
/// family's baseline, and set-id ones) against this host, for each image of `images`; a
/// program without an execute bit is never run, and is passed over.
/// Handlers are found as the kernel would pick one for a program of the arch (its probe
/// stands in for the program, whose bytes are gone, and its path for an extension rule). An
/// image has no directory cookies to ask: where it will be built is not known here.
pub fn check_image(
    machine: &dyn Machine,
    table: &ArchTable,
    binfmt: &Snapshot,
    images: &[Verdict],
) -> Preflight {
    let mut judge = Judge::new(machine, table);
    let mut out = Preflight::default();
    for v in images {
        // An image's count is its ELF files: its other programs' bytes are gone.
        out.programs += v.elf_files;
        for p in &v.programs {
            if p.id.mode != 0 && p.id.mode & 0o111 == 0 {
                continue;
            }
            let Some(arch) = p.id.arch.as_deref().and_then(|a| table.find(a)) else {
                continue;
            };
            if p.id.os != "linux" {
                continue;
            }
            let probe = crate::probe::program(arch);
            let handler = probe
                .as_deref()
                .and_then(|image| binfmt.handler_for(Path::new(&p.path), image));
            let place = Place {
                path: p.path.clone(),
                layer: p.layer.as_deref().map(str::to_string),
                image: v.platform.clone(),
            };
            let needs = p.id.needs.as_deref();
            judge.program(
                &mut out,
                place,
                arch,
                p.id.platform.clone(),
                handler,
                needs,
                p.id.mode,
            );
        }
    }
    out.finish()
}

/// Where a program is, as the report names it.
struct Place {
    path: String,
    layer: Option<String>,
    image: Option<String>,
}

/// What each architecture is proven to run here, asked once per architecture.
struct Judge<'m> {
    machine: &'m dyn Machine,
    host: Option<String>,
    levels: HashMap<String, Option<u32>>,
}

impl<'m> Judge<'m> {
    fn new(machine: &'m dyn Machine, table: &ArchTable) -> Judge<'m> {
        Judge {
            machine,
            host: crate::machine::host(machine, table).arch,
            levels: HashMap::new(),
        }
    }

    /// One program of `arch`: listed when it is set-id and its handler has no `C`, and when
    /// it needs a level the CPU it runs on here (the host's, or its handler's) lacks.
    #[allow(clippy::too_many_arguments)] // one per fact about the program
    fn program(
        &mut self,
        out: &mut Preflight,
        place: Place,
        arch: &Arch,
        platform: String,
        handler: Option<&Entry>,
        needs: Option<&Needs>,
        mode: u32,
    ) {
        let native = self.host.as_deref() == Some(arch.name.as_str());
        let handler = handler.filter(|_| !native);
        if mode & 0o6000 != 0 {
            if let Some(h) = handler.filter(|h| !h.has_flag('C')) {
                out.setuid_without_c.push(Setuid {
                    path: place.path.clone(),
                    mode: format!("{:04o}", mode & 0o7777),
                    handler: h.name.clone(),
                    layer: place.layer.clone(),
                    image: place.image.clone(),
                });
            }
        }
        let Some(n) = needs else {
            return;
        };
        if n.mask == 0 || (!native && handler.is_none()) {
            return;
        }
        // One probe per architecture, however many programs need a level.
        let machine = self.machine;
        let proven = *self
            .levels
            .entry(arch.name.clone())
            .or_insert_with(|| machine.levels(arch).ok().flatten());
        let Some(mask) = proven else {
            return;
        };
        let found = Found {
            mask,
            family: n.family,
        };
        let lacks = n.missing(&found);
        if !lacks.is_empty() {
            out.will_not_run.push(WontRun {
                path: place.path,
                platform,
                needs: n.describe(),
                from: n.sources(),
                by: handler.map_or("native".into(), |h| h.name.clone()),
                available: found.highest().map(|l| l.name),
                lacks,
                layer: place.layer,
                image: place.image,
            });
        }
    }
}

impl Preflight {
    /// Sorted, and judged.
    fn finish(mut self) -> Preflight {
        self.will_not_run
            .sort_by(|a, b| (&a.image, &a.path).cmp(&(&b.image, &b.path)));
        self.setuid_without_c
            .sort_by(|a, b| (&a.image, &a.path).cmp(&(&b.image, &b.path)));
        self.ok = self.will_not_run.is_empty();
        self
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
