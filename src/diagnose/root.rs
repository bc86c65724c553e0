//! Paths as a program sees them from inside a root directory (`--root`), or from `/`.
//!
//! The lookup is the kernel's, done by hand so that an absolute symlink inside the root points
//! into the root and `..` never climbs out of it: what `chroot ROOT` would see, without
//! needing the privilege to chroot.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Class, Classify};
use crate::machine::Machine;

/// The kernel's limit on symlinks followed in one lookup (MAXSYMLINKS).
const MAX_LINKS: usize = 40;

/// A root directory: `/` itself, or a directory given with `--root`, on a machine.
#[derive(Debug, Clone)]
pub struct RootFs<'m> {
    machine: &'m dyn Machine,
    /// Canonical host path of the root.
    dir: PathBuf,
    /// True for `--root`; false when the root is the host's own `/`.
    given: bool,
}

/// `--root` names no directory: bad input.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("--root {dir}: {error}")]
    Unusable { dir: String, error: std::io::Error },
    #[error("--root {0} is not a directory")]
    NotADirectory(String),
}

impl Classify for RootError {
    fn class(&self) -> Class {
        Class::BadInput
    }
}

/// The result of looking a path up inside the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The file, as a host path with every symlink resolved.
    Found(PathBuf),
    /// A component does not exist. `at` is the missing path as seen inside the root;
    /// `link` the last symlink followed on the way (name, target), if any.
    Missing {
        at: String,
        link: Option<(String, String)>,
    },
    /// A component on the way is not a directory (ENOTDIR).
    NotDir { at: String },
    /// More than 40 symlinks (ELOOP).
    Loop { at: String },
    /// A directory on the way cannot be searched, or another error (EACCES, …).
    Denied {
        at: String,
        errno: nix::errno::Errno,
    },
}

impl<'m> RootFs<'m> {
    /// The host's own root.
    pub fn host(machine: &'m dyn Machine) -> RootFs<'m> {
        RootFs {
            machine,
            dir: PathBuf::from("/"),
            given: false,
        }
    }

    /// A directory to look paths up in. Fails when it is not a directory.
    pub fn new(machine: &'m dyn Machine, dir: &Path) -> Result<RootFs<'m>, RootError> {
        let canonical = machine
            .canonicalize(dir)
            .map_err(|error| RootError::Unusable {
                dir: dir.display().to_string(),
                error,
            })?;
        if !machine.stat(&canonical).is_ok_and(|m| m.is_dir()) {
            return Err(RootError::NotADirectory(dir.display().to_string()));
        }
        Ok(RootFs {
            machine,
            given: canonical != Path::new("/"),
            dir: canonical,
        })
    }

    /// The machine the root is on.
    pub fn machine(&self) -> &'m dyn Machine {
        self.machine
    }

    /// Whether this is a `--root` other than `/`.
    pub fn is_given(&self) -> bool {
        self.given
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The absolute path a program inside the root would pass to exec for `path`: relative
    /// paths are taken from the root's `/` (where `--run` chdirs after chroot), or, without
    /// `--root`, from the current directory.
    pub fn absolute(&self, path: &str) -> String {
        if path.starts_with('/') {
            return path.to_string();
        }
        if self.given {
            return format!("/{path}");
        }
        match self.machine.current_dir() {
            // "./x" is shown as the user means it: the current directory's x.
            Ok(cwd) => cwd
                .join(path)
                .components()
                .filter(|c| *c != Component::CurDir)
                .collect::<PathBuf>()
                .display()
                .to_string(),
            Err(_) => format!("/{path}"),
        }
    }

    /// A host path below the root, shown as the program inside the root sees it.
    pub fn inside(&self, host: &Path) -> String {
        match host.strip_prefix(&self.dir) {
            Ok(rest) => format!("/{}", rest.display()),
            Err(_) => host.display().to_string(),
        }
    }

    /// Where a path inside the root lives on the host, without resolving anything: for
    /// messages and fixes that name a file that does not exist yet.
    pub fn on_host(&self, inside: &str) -> PathBuf {
        self.dir.join(inside.trim_start_matches('/'))
    }

    /// Look `path` up as exec would from inside the root, following every symlink, the last
    /// one included.
    pub fn resolve(&self, path: &str) -> Lookup {
        let mut todo: Vec<OsString> = Vec::new();
        push_front(&mut todo, Path::new(&self.absolute(path)));
        // Components below the root, each an existing directory (or, last, the file).
        let mut done: Vec<OsString> = Vec::new();
        let mut links = 0usize;
        let mut last_link: Option<(String, String)> = None;
        // `todo` is a stack: the next component is at the end.
        while let Some(part) = todo.pop() {
            if part.as_bytes() == b".." {
                done.pop();
                continue;
            }
            let shown = show(&done, Some(&part));
            let host = self.host_path(&done).join(&part);
            let meta = match self.machine.lstat(&host) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Lookup::Missing {
                        at: shown,
                        link: last_link,
                    };
                }
                Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ENOTDIR as i32) => {
                    return Lookup::NotDir {
                        at: show(&done, None),
                    };
                }
                Err(e) => {
                    return Lookup::Denied {
                        at: shown,
                        errno: errno_of(&e),
                    };
                }
            };
            if meta.is_symlink() {
                links += 1;
                if links > MAX_LINKS {
                    return Lookup::Loop { at: shown };
                }
                let target = match self.machine.read_link(&host) {
                    Ok(t) => t,
                    Err(e) => {
                        return Lookup::Denied {
                            at: shown,
                            errno: errno_of(&e),
                        };
                    }
                };
                last_link = Some((shown, target.display().to_string()));
                if target.is_absolute() {
                    done.clear();
                }
                push_front(&mut todo, &target);
                continue;
            }
            if !todo.is_empty() && !meta.is_dir() {
                return Lookup::NotDir { at: shown };
            }
            done.push(part);
        }
        Lookup::Found(self.host_path(&done))
    }

    fn host_path(&self, parts: &[OsString]) -> PathBuf {
        let mut p = self.dir.clone();
        p.extend(parts);
        p
    }
}

fn errno_of(e: &std::io::Error) -> nix::errno::Errno {
    nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(nix::errno::Errno::EIO as i32))
}

/// Put a path's components in front of what is still to be looked up (`todo` is a stack).
fn push_front(todo: &mut Vec<OsString>, path: &Path) {
    let parts: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    todo.extend(parts.into_iter().rev());
}

fn show(done: &[OsString], next: Option<&OsString>) -> String {
    let mut s = String::new();
    for p in done.iter().chain(next) {
        s.push('/');
        s.push_str(&p.to_string_lossy());
    }
    if s.is_empty() {
        s.push('/');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::Fake;

    fn root(m: &Fake) -> RootFs<'_> {
        RootFs::new(m, Path::new("/srv/root")).expect("root")
    }

    #[test]
    fn absolute_links_stay_inside_the_root() {
        let m = Fake::new()
            .file("/srv/root/opt/app/run", b"x".to_vec(), 0o755)
            .symlink("/srv/root/bin/run", "/opt/app/run")
            // A relative link that climbs too far stops at the root, as chroot's does.
            .symlink("/srv/root/bin/up", "../../../../../opt/app/run");
        let r = root(&m);
        let want = Lookup::Found("/srv/root/opt/app/run".into());
        assert_eq!(r.resolve("/bin/run"), want);
        assert_eq!(r.resolve("bin/run"), want);
        assert_eq!(r.resolve("/bin/up"), want);
    }

    #[test]
    fn a_link_to_a_host_file_is_not_followed_out() {
        // /etc/passwd exists on the host but not in this root.
        let m = Fake::new()
            .file("/etc/passwd", b"root:x:0:0".to_vec(), 0o644)
            .symlink("/srv/root/bin/esc", "/etc/passwd");
        let r = root(&m);
        assert_eq!(
            r.resolve("/bin/esc"),
            Lookup::Missing {
                at: "/etc".into(),
                link: Some(("/bin/esc".into(), "/etc/passwd".into()))
            }
        );
        assert!(matches!(
            r.resolve("/../../etc/passwd"),
            Lookup::Missing { .. }
        ));
    }

    #[test]
    fn loops_files_used_as_directories_and_closed_directories() {
        let m = Fake::new()
            .symlink("/srv/root/a", "/b")
            .symlink("/srv/root/b", "/a")
            .file("/srv/root/f", b"x".to_vec(), 0o644)
            .dir("/srv/root/closed", 0o700)
            .file("/srv/root/closed/x", b"x".to_vec(), 0o755)
            .user(1000, 1000, &[]);
        let r = root(&m);
        assert!(matches!(r.resolve("/a"), Lookup::Loop { .. }));
        assert!(matches!(r.resolve("/f/x"), Lookup::NotDir { .. }));
        assert!(matches!(
            r.resolve("/closed/x"),
            Lookup::Denied {
                errno: nix::errno::Errno::EACCES,
                ..
            }
        ));
    }

    #[test]
    fn inside_names_paths_as_the_root_sees_them() {
        let m = Fake::new()
            .dir("/srv/root", 0o755)
            .file("/f", b"".to_vec(), 0o644);
        let r = root(&m);
        assert_eq!(r.inside(&r.dir().join("usr/bin/x")), "/usr/bin/x");
        assert_eq!(
            RootFs::host(&m).inside(Path::new("/usr/bin/x")),
            "/usr/bin/x"
        );
        assert!(RootFs::new(&m, Path::new("/nonexistent-root")).is_err());
        assert!(RootFs::new(&m, Path::new("/f")).is_err());
        // Relative paths are the current directory's without --root, the root's with it.
        let m = m.cwd("/home/u");
        assert_eq!(RootFs::host(&m).absolute("./x"), "/home/u/x");
        assert_eq!(root(&m).absolute("x"), "/x");
    }
}
