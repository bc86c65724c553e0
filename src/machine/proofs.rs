//! Proofs kept between runs, so that a second `install`, init's repair pass or `run` does not
//! start QEMU again to learn what it learnt an hour ago: whether this kernel runs an
//! architecture itself (the native probe), and whether an interpreter honours `P` (the argv0
//! probe, one QEMU start).
//!
//! An answer is read back only when everything it depends on is unchanged, so a kept proof is
//! as good as one made now:
//!
//! - both: this boot of this kernel (`/proc/sys/kernel/random/boot_id`; a new kernel, or new
//!   boot parameters such as `ia32_emulation=`, means a new boot), and the probe program and
//!   register string used (hashed; another build or `--arch-table` that changes either asks
//!   again);
//! - `P`: the interpreter file as the kernel would open it: its path, and the device, inode,
//!   size, modification and change times of the file it names. A file replaced by a package
//!   upgrade has a new inode; one written in place, or chmodded, has a new change time, which
//!   no program can set back. Only a static interpreter is kept: a dynamic one or a wrapper
//!   script runs other files, whose changes its own identity would not show.
//!
//! Only answers the probe gave by running to its end are kept (it printed what it was given,
//! or the kernel refused it with ENOEXEC); a probe that could not run (no user namespaces, a
//! timeout) proves nothing and is asked again next time.
//!
//! Where: `/run/binfmt-setup` for root, `$XDG_RUNTIME_DIR/binfmt-setup` for others; both are
//! on tmpfs and emptied at boot. The directory is made 0700 and used only when it is ours and
//! nobody else may write to it; one file per answer, named by a hash of its key, holding the
//! whole key (compared on reading) and the answer, written whole and renamed into place, so
//! racing runs see an answer or none. Removing the directory forgets every proof.

use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::fcntl::{OFlag, openat, renameat};
use nix::sys::stat::{Mode, fstat};
use nix::unistd::mkdir;

use crate::arch::Arch;
use crate::fileio::{self, Follow};
use crate::sys::exec::FileId;

/// What one answer depends on, in words (kept in its file and compared on reading).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key(String);

/// This boot's id, read once.
fn boot_id() -> Option<&'static str> {
    static ID: OnceLock<Option<String>> = OnceLock::new();
    ID.get_or_init(|| {
        let text = fileio::read_text(
            Path::new("/proc/sys/kernel/random/boot_id"),
            Follow::Yes,
            64,
        )
        .ok()?;
        let id = text.trim();
        (!id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
            .then(|| id.to_string())
    })
    .as_deref()
}

/// A hash that is the same in every run of one build (std's SipHash with fixed keys).
pub(crate) fn digest(bytes: &[u8]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

impl Key {
    /// Whether the kernel runs `arch`'s probe `image` itself.
    pub fn native(arch: &Arch, image: &[u8]) -> Option<Key> {
        Some(Key(format!(
            "native arch={} probe={:016x} boot={}",
            arch.name,
            digest(image),
            boot_id()?
        )))
    }

    /// Whether the static interpreter at `interpreter`, registered as `register`, hands the
    /// probe `image` its own argv[0]. None when the interpreter is not a static ELF (or cannot
    /// be read): that answer is never kept.
    pub fn argv0(arch: &Arch, image: &[u8], register: &str, interpreter: &Path) -> Option<Key> {
        let boot = boot_id()?;
        let file = static_file(interpreter)?;
        Some(Key(format!(
            "argv0 arch={} probe={:016x} register={:016x} interpreter={:?} {} boot={boot}",
            arch.name,
            digest(image),
            digest(register.as_bytes()),
            interpreter,
            words(&file),
        )))
    }

    /// What the static interpreter at `path` answers when asked `question` (what is run, and
    /// with which environment), where `exe` is the file a run through the handler found the
    /// kernel running (`/proc/PID/exe`). None unless `path` names that very file now, and it
    /// is a static ELF: an `F` handler holds the file it opened when registered, which its
    /// path may no longer name, and the path's file would then answer for another.
    pub fn asked(question: &str, path: &Path, exe: FileId) -> Option<Key> {
        let boot = boot_id()?;
        if static_file(path)? != exe {
            return None;
        }
        Some(Key(format!(
            "asked question={:016x} interpreter={:?} {} boot={boot}",
            digest(question.as_bytes()),
            path,
            words(&exe),
        )))
    }

    fn file_name(&self) -> String {
        format!("proof-{:016x}", digest(self.0.as_bytes()))
    }
}

/// The file `path` names, when it is a static ELF: a wrapper script or a dynamic program runs
/// other files, whose changes its own identity would not show.
fn static_file(path: &Path) -> Option<FileId> {
    let (file, meta) = fileio::open_regular(path, Follow::Yes).ok()?;
    let head = fileio::read_prefix(&file, crate::format::HEAD_BYTES).ok()?;
    let info = crate::elf::read(&file, &head, meta.len()).ok()?;
    info.is_static().then(|| FileId::of(&meta))
}

/// A file's identity in a key.
fn words(f: &FileId) -> String {
    format!(
        "dev={} ino={} size={} mtime={}.{} ctime={}.{}",
        f.dev, f.ino, f.size, f.mtime.0, f.mtime.1, f.ctime.0, f.ctime.1
    )
}

/// The directory proofs are kept in, when there is a safe one.
#[derive(Debug)]
pub struct Proofs {
    dir: Option<OwnedFd>,
}

impl Proofs {
    /// The directory for this user, made if missing; none (nothing kept) when it cannot be
    /// made or is not safe to trust.
    pub fn open() -> Proofs {
        let euid = nix::unistd::geteuid();
        let base = if euid.is_root() {
            Some(PathBuf::from("/run"))
        } else {
            std::env::var_os("XDG_RUNTIME_DIR")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
        };
        let dir = base.and_then(|b| {
            let path = b.join("binfmt-setup");
            match mkdir(&path, Mode::S_IRWXU) {
                Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                Err(e) => {
                    tracing::debug!("proofs are not kept: cannot make {}: {e}", path.display());
                    return None;
                }
            }
            let fd = nix::fcntl::open(
                &path,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .ok()?;
            let st = fstat(&fd).ok()?;
            if st.st_uid != euid.as_raw() || st.st_mode & 0o022 != 0 {
                tracing::debug!(
                    "proofs are not kept: {} is not ours alone (owner {}, mode {:o})",
                    path.display(),
                    st.st_uid,
                    st.st_mode & 0o7777
                );
                return None;
            }
            Some(fd)
        });
        Proofs { dir }
    }

    /// Keep nothing (tests, or where no directory can be trusted).
    pub fn none() -> Proofs {
        Proofs { dir: None }
    }

    /// The answer kept for `key`, if any.
    pub fn get(&self, key: &Key) -> Option<bool> {
        match self.get_text(key)?.as_str() {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        }
    }

    /// Keep `answer` for `key`. Failing to keep it only means asking again next time.
    pub fn put(&self, key: &Key, answer: bool) {
        self.put_text(key, if answer { "yes" } else { "no" });
    }

    /// The text kept for `key`, if any.
    pub fn get_text(&self, key: &Key) -> Option<String> {
        let dir = self.dir.as_ref()?;
        let fd = openat(
            dir.as_fd(),
            key.file_name().as_str(),
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let mut text = String::new();
        std::fs::File::from(fd)
            .take(MAX_KEPT as u64 + 1)
            .read_to_string(&mut text)
            .ok()?;
        // The key is one line (it holds no newline), the answer all that follows.
        let (kept, answer) = text.split_once('\n')?;
        (kept == key.0 && text.len() <= MAX_KEPT).then(|| answer.to_string())
    }

    /// Keep `answer` for `key`; one too long to keep is not. Failing to keep it only means
    /// asking again next time.
    pub fn put_text(&self, key: &Key, answer: &str) {
        let Some(dir) = self.dir.as_ref() else { return };
        let text = format!("{}\n{answer}", key.0);
        if text.len() > MAX_KEPT {
            return;
        }
        let name = key.file_name();
        let temp = format!("{name}.{}.tmp", std::process::id());
        let written = (|| -> std::io::Result<()> {
            let fd = openat(
                dir.as_fd(),
                temp.as_str(),
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::S_IRUSR | Mode::S_IWUSR,
            )?;
            let mut f = std::fs::File::from(fd);
            f.write_all(text.as_bytes())?;
            renameat(dir.as_fd(), temp.as_str(), dir.as_fd(), name.as_str())?;
            Ok(())
        })();
        if let Err(e) = written {
            let _ = nix::unistd::unlinkat(
                dir.as_fd(),
                temp.as_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
            tracing::debug!("a proof was not kept: {e}");
        }
    }
}

/// The most one kept file holds, key and answer: a QEMU's banner is about 150 bytes.
const MAX_KEPT: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::ArchTable;

    fn in_dir(dir: &Path) -> Proofs {
        let fd = nix::fcntl::open(
            dir,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .expect("open");
        Proofs { dir: Some(fd) }
    }

    /// A kept answer comes back only for the very same key; another key that happened to
    /// hash alike, or a damaged file, is no answer.
    #[test]
    fn an_answer_is_read_back_only_for_its_own_key() {
        let t = ArchTable::embedded();
        let arm64 = t.find("arm64").expect("arm64");
        let dir = tempfile::tempdir().expect("tempdir");
        let proofs = in_dir(dir.path());
        let Some(key) = Key::native(arm64, b"probe") else {
            return; // no boot id here: nothing is ever kept
        };
        assert_eq!(proofs.get(&key), None);
        proofs.put(&key, true);
        assert_eq!(proofs.get(&key), Some(true));
        proofs.put(&key, false);
        assert_eq!(proofs.get(&key), Some(false));
        let other = Key::native(arm64, b"another probe").expect("key");
        assert_eq!(proofs.get(&other), None);
        // Someone else's key under this key's name.
        std::fs::write(dir.path().join(key.file_name()), "native arch=x\nyes").expect("write");
        assert_eq!(proofs.get(&key), None);
        assert_eq!(Proofs::none().get(&key), None);
    }

    /// Only a static interpreter's answer is kept, and its key changes with the file.
    #[test]
    fn an_interpreter_is_known_by_its_file() {
        let t = ArchTable::embedded();
        let arm64 = t.find("arm64").expect("arm64");
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("wrapper");
        std::fs::write(&script, "#!/bin/sh\nexec qemu-aarch64 \"$@\"\n").expect("write");
        assert_eq!(Key::argv0(arm64, b"p", "reg", &script), None);
        // This test binary's own file is an ELF, static or not: use a probe program instead.
        let probe = dir.path().join("static");
        std::fs::write(&probe, crate::probe::program(arm64).expect("probe")).expect("write");
        let Some(first) = Key::argv0(arm64, b"p", "reg", &probe) else {
            return; // no boot id here
        };
        assert_eq!(Key::argv0(arm64, b"p", "reg", &probe), Some(first.clone()));
        assert_ne!(
            Key::argv0(arm64, b"p", "other reg", &probe),
            Some(first.clone())
        );
        // Written in place: another size (and change time).
        let mut longer = crate::probe::program(arm64).expect("probe");
        longer.push(0);
        std::fs::write(&probe, longer).expect("write");
        assert_ne!(Key::argv0(arm64, b"p", "reg", &probe), Some(first));
    }

    /// A question's answer is keyed to the very file a run found the kernel running: the
    /// path must name it, and it must be static; the answer comes back as it was kept.
    #[test]
    fn answers_are_kept_for_the_static_file_the_path_names() {
        use crate::sys::exec::FileId;
        let t = ArchTable::embedded();
        let arm64 = t.find("arm64").expect("arm64");
        let dir = tempfile::tempdir().expect("tempdir");
        let probe = dir.path().join("static");
        std::fs::write(&probe, crate::probe::program(arm64).expect("probe")).expect("write");
        let exe = FileId::of(&std::fs::metadata(&probe).expect("stat"));
        let Some(key) = Key::asked("QEMU_VERSION=1", &probe, exe) else {
            return; // no boot id here
        };
        let elsewhere = FileId {
            ino: exe.ino + 1,
            ..exe
        };
        assert_eq!(Key::asked("QEMU_VERSION=1", &probe, elsewhere), None);
        let dynamic = std::env::current_exe().expect("this test binary");
        let its = FileId::of(&std::fs::metadata(&dynamic).expect("stat"));
        assert_eq!(Key::asked("QEMU_VERSION=1", &dynamic, its), None);
        assert_ne!(Key::asked("other", &probe, exe), Some(key.clone()));
        let kept = dir.path().join("kept");
        std::fs::create_dir(&kept).expect("mkdir");
        let proofs = in_dir(&kept);
        assert_eq!(proofs.get_text(&key), None);
        proofs.put_text(&key, "exit=0\nqemu-aarch64 version 7.2.22\nCopyright\n");
        assert_eq!(
            proofs.get_text(&key).as_deref(),
            Some("exit=0\nqemu-aarch64 version 7.2.22\nCopyright\n")
        );
        proofs.put_text(&key, &"x".repeat(MAX_KEPT));
        assert!(
            proofs.get_text(&key).is_some(),
            "one too long is not kept over it"
        );
    }
}
