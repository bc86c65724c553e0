//! Finding QEMU user-mode interpreters and checking they are fit to register.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::arch::Arch;
use crate::elf;
use crate::format::{self, Format, HEAD_BYTES};

/// Where interpreters are looked for when no `--qemu-path` is given.
pub const DEFAULT_PATHS: &[&str] = &["/usr/bin", "/usr/local/bin", "/usr/libexec/qemu-binfmt"];

/// An interpreter that passed the checks.
#[derive(Debug, Clone)]
pub struct Emulator {
    pub path: PathBuf,
    pub is_static: bool,
    pub root_owned: bool,
    /// The first bytes of the interpreter, to make sure a rule does not match it (ELOOP).
    pub head: Vec<u8>,
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
/// executable file, not writable by group or others (nor its directory), static when it is
/// to be opened once and used everywhere (`F`).
pub fn check(path: &Path, need_static: bool) -> Result<Emulator, String> {
    let shown = path.display();
    if !path.is_absolute() {
        return Err(format!("interpreter {shown} is not an absolute path"));
    }
    let meta = std::fs::metadata(path).map_err(|e| format!("interpreter {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("interpreter {shown} is not a regular file"));
    }
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
    if let Some(dir) = path.parent() {
        let dmode = std::fs::metadata(dir)
            .map(|m| m.permissions().mode())
            .unwrap_or(0);
        if dmode & 0o022 != 0 && dmode & 0o1000 == 0 {
            return Err(format!(
                "interpreter {shown} sits in {} which group or others may write (mode {:o})",
                dir.display(),
                dmode & 0o7777
            ));
        }
    }
    let mut file = File::open(path).map_err(|e| format!("interpreter {shown}: {e}"))?;
    let mut head = Vec::with_capacity(HEAD_BYTES);
    (&mut file)
        .take(HEAD_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(|e| format!("interpreter {shown}: {e}"))?;
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
        path: path.to_path_buf(),
        is_static,
        root_owned: meta.uid() == 0,
        head,
    })
}
