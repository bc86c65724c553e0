//! Finding QEMU user-mode interpreters and checking they are fit to register.

use std::fs::File;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::arch::Arch;
use crate::elf;
use crate::fileio::{self, Follow, OpenError};
use crate::format::{self, Format, HEAD_BYTES};

/// Where interpreters are looked for when no `--qemu-path` is given.
pub const DEFAULT_PATHS: &[&str] = &["/usr/bin", "/usr/local/bin", "/usr/libexec/qemu-binfmt"];

/// An interpreter that passed the checks.
#[derive(Debug, Clone)]
pub struct Emulator {
    /// The canonical path: every symlink resolved. This is the path registered.
    pub path: PathBuf,
    pub is_static: bool,
    pub root_owned: bool,
    /// The first bytes of the interpreter, to make sure a rule does not match it (ELOOP).
    pub head: Vec<u8>,
    /// The file that was checked, held open, to prove later that the path still names it.
    pub pin: Pin,
}

/// The identity of the checked interpreter: registration re-checks it just before and just
/// after the write to `register`, so the file the kernel takes (opened there with `F`, looked
/// up by path at each exec without) is the file that was checked.
#[derive(Debug, Clone)]
pub struct Pin {
    path: PathBuf,
    file: Arc<File>,
    seen: Stamp,
}

/// What must not change between the check and the registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    mode: u32,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            mode: m.mode(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            // Any write to the file or change of its mode or owner moves ctime. (The owner is
            // not compared itself: `run` checks before entering a user namespace, where
            // the same owner reads as another uid.)
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

impl Pin {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path still names the checked file, unchanged: same inode, not written, not
    /// re-moded, not re-owned. The error says what changed.
    pub fn verify(&self) -> Result<(), String> {
        let shown = self.path.display();
        let now = std::fs::symlink_metadata(&self.path)
            .map_err(|e| format!("interpreter {shown} changed after it was checked: {e}"))?;
        let held = self
            .file
            .metadata()
            .map_err(|e| format!("interpreter {shown}: {e}"))?;
        let (now, held) = (Stamp::of(&now), Stamp::of(&held));
        if (now.dev, now.ino) != (self.seen.dev, self.seen.ino) {
            return Err(format!(
                "interpreter {shown} was replaced by another file after it was checked"
            ));
        }
        if held != self.seen {
            return Err(format!(
                "interpreter {shown} was modified after it was checked (now mode {:o}, {} bytes)",
                held.mode & 0o7777,
                held.size
            ));
        }
        Ok(())
    }
}

/// The interpreter for `arch`: `qemu-<cpu>-static`, then `qemu-<cpu>`, in each search dir.
pub fn find(arch: &Arch, search: &[PathBuf]) -> Option<PathBuf> {
    let cpu = arch.qemu.as_ref()?;
    let names = [format!("qemu-{cpu}-static"), format!("qemu-{cpu}")];
    search
        .iter()
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// Check an interpreter as the kernel and a careful admin would: absolute, a regular
/// executable file, owned by root (or the caller), writable by nobody else, in directories
/// nobody else may write, static when it is to be opened once and used everywhere (`F`).
///
/// Symlinks are resolved and the canonical path is what gets checked and registered: a link
/// could later be pointed elsewhere by whoever owns it, and the kernel would follow it at
/// every exec. The checks run on the open file, not on a name that could change meanwhile.
pub fn check(path: &Path, need_static: bool) -> Result<Emulator, String> {
    let shown = path.display();
    if !path.is_absolute() {
        return Err(format!("interpreter {shown} is not an absolute path"));
    }
    let canonical = std::fs::canonicalize(path).map_err(|e| format!("interpreter {shown}: {e}"))?;
    let shown = if canonical == path {
        shown.to_string()
    } else {
        format!("{shown} (= {})", canonical.display())
    };
    let (file, meta) = fileio::open_regular(&canonical, Follow::NotLast).map_err(|e| match e {
        OpenError::NotRegular(_) => format!("interpreter {shown} is not a regular file"),
        OpenError::Io(e) => format!("interpreter {shown}: {e}"),
    })?;
    let mode = meta.permissions().mode();
    if mode & 0o111 == 0 {
        return Err(format!("interpreter {shown} is not executable (chmod +x)"));
    }
    if mode & 0o022 != 0 {
        return Err(format!(
            "interpreter {shown} is writable by group or others (mode {:o}); anyone could replace what every foreign program runs (chmod go-w)",
            mode & 0o7777
        ));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != me {
        return Err(format!(
            "interpreter {shown} is owned by uid {}, not root-owned (nor the caller's): its owner could replace what every foreign program runs (chown root)",
            meta.uid()
        ));
    }
    // Whoever may write a directory on the way may rename another file into its place.
    for dir in canonical.ancestors().skip(1) {
        let Ok(dmeta) = std::fs::symlink_metadata(dir) else {
            continue;
        };
        let dmode = dmeta.permissions().mode();
        // A sticky directory (/tmp) lets others add names, not replace ours.
        if dmode & 0o022 != 0 && dmode & 0o1000 == 0 {
            return Err(format!(
                "interpreter {shown} sits in {} which group or others may write (mode {:o})",
                dir.display(),
                dmode & 0o7777
            ));
        }
        if dmeta.uid() != 0 && dmeta.uid() != me {
            return Err(format!(
                "interpreter {shown} sits in {} owned by uid {}, who could put another file in its place",
                dir.display(),
                dmeta.uid()
            ));
        }
    }
    let head =
        fileio::read_prefix(&file, HEAD_BYTES).map_err(|e| format!("interpreter {shown}: {e}"))?;
    let is_static = match format::sniff(&head) {
        Format::Elf => elf::read(&file, &head, meta.len())
            .map(|i| i.is_static())
            .map_err(|e| format!("interpreter {shown}: {e}"))?,
        _ => false,
    };
    if need_static && !is_static {
        return Err(format!(
            "interpreter {shown} is dynamically linked; the F flag needs a static one, since it must run inside containers that lack its libraries (apt-get install qemu-user-static, or --no-fix-binary)"
        ));
    }
    Ok(Emulator {
        pin: Pin {
            path: canonical.clone(),
            seen: Stamp::of(&meta),
            file: Arc::new(file),
        },
        path: canonical,
        is_static,
        root_owned: meta.uid() == 0,
        head,
    })
}
