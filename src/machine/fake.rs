//! An in-memory machine for unit tests: a tree of files, mounts, credentials, a machine name,
//! an environment, a binfmt_misc snapshot and canned probe answers. Paths are looked up as
//! the kernel looks them up, as far as the checks can tell: symlinks (40 at most, then
//! ELOOP), `..`, ENOTDIR for a file used as a directory, EACCES for a directory the fake
//! credentials may not search. Nothing here touches the real machine.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use nix::errno::Errno;

use super::{Answered, Ask, AskProgram, Probe, ProbeError, Replies, Reply};
use super::{Answers, Credentials, Handle, Kind, Known, Machine, Meta, Mount, MountsError};
use crate::arch::Arch;
use crate::binfmt::{BinfmtError, Entry, Snapshot};
use crate::fileio::{Follow, OpenError};

/// The kernel's limit on symlinks followed in one lookup (MAXSYMLINKS).
const MAX_LINKS: usize = 40;

/// One file of the fake tree, as a builder gives it.
#[derive(Debug, Clone)]
pub struct Node {
    what: What,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
}

#[derive(Debug, Clone)]
enum What {
    File(Arc<[u8]>),
    Dir,
    Symlink(PathBuf),
    Fifo,
}

impl Node {
    pub fn file(bytes: impl Into<Vec<u8>>, mode: u32) -> Node {
        Node::new(What::File(bytes.into().into()), mode)
    }

    pub fn dir(mode: u32) -> Node {
        Node::new(What::Dir, mode)
    }

    pub fn symlink(target: impl Into<PathBuf>) -> Node {
        Node::new(What::Symlink(target.into()), 0o777)
    }

    pub fn fifo(mode: u32) -> Node {
        Node::new(What::Fifo, mode)
    }

    fn new(what: What, mode: u32) -> Node {
        Node {
            what,
            mode: mode & 0o7777,
            uid: 0,
            gid: 0,
            mtime: 0,
        }
    }

    /// Owned by `uid`:`gid` (root's by default).
    pub fn owned_by(mut self, uid: u32, gid: u32) -> Node {
        self.uid = uid;
        self.gid = gid;
        self
    }

    /// Last modified at `secs` since the epoch.
    pub fn modified(mut self, secs: i64) -> Node {
        self.mtime = secs;
        self
    }

    fn kind(&self) -> Kind {
        match self.what {
            What::File(_) => Kind::File,
            What::Dir => Kind::Dir,
            What::Symlink(_) => Kind::Symlink,
            What::Fifo => Kind::Fifo,
        }
    }
}

/// The fake machine. Built with its methods, each returning it changed:
/// `Fake::new().file("/bin/prog", bytes, 0o755).user(1000, 1000, &[])`.
#[derive(Debug, Clone)]
pub struct Fake {
    /// Absolute, normalised paths; every parent of a node is a node.
    nodes: BTreeMap<PathBuf, (Node, u64)>,
    next_ino: u64,
    mounts: Vec<Mount>,
    /// Whether the mount list can be read (statvfs answers either way).
    mountinfo: bool,
    credentials: Credentials,
    own_nobody: bool,
    machine: String,
    env: BTreeMap<String, OsString>,
    cwd: PathBuf,
    binfmt: Snapshot,
    native: BTreeMap<String, Result<bool, String>>,
    argv0: BTreeMap<PathBuf, bool>,
    self_exe: Option<Vec<u8>>,
    writers: BTreeMap<PathBuf, Vec<super::Writer>>,
    replies: Vec<(Asked, Reply)>,
    /// Every ask made, in order (shared by clones, so a test can count a run's asks).
    asked: Arc<std::sync::Mutex<Vec<Asked>>>,
}

/// An [`Ask`] as the fake machine keys its replies: everything but the chroot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    pub arch: String,
    pub program: AskProgram,
    pub extension: Option<String>,
    pub env: Vec<(String, String)>,
}

impl Asked {
    fn of(a: &Ask<'_>) -> Asked {
        Asked {
            arch: a.arch.name.clone(),
            program: a.program,
            extension: a.extension.map(str::to_string),
            env: a.env.clone(),
        }
    }
}

impl Default for Fake {
    fn default() -> Self {
        Fake::new()
    }
}

impl Fake {
    /// An x86_64 machine with an empty root directory, one mount (`/`, exec allowed), root's
    /// credentials, an empty environment, no binfmt_misc, and probes that all answer no.
    pub fn new() -> Fake {
        let mut nodes = BTreeMap::new();
        nodes.insert(PathBuf::from("/"), (Node::dir(0o755), 1));
        Fake {
            nodes,
            next_ino: 2,
            mounts: vec![Mount {
                point: "/".into(),
                fstype: "ext4".into(),
                noexec: false,
            }],
            mountinfo: true,
            credentials: Credentials {
                euid: 0,
                egid: 0,
                groups: Vec::new(),
                outside: None,
            },
            own_nobody: false,
            machine: "x86_64".into(),
            env: BTreeMap::new(),
            cwd: "/".into(),
            binfmt: Snapshot::empty(),
            native: BTreeMap::new(),
            argv0: BTreeMap::new(),
            self_exe: None,
            writers: BTreeMap::new(),
            replies: Vec::new(),
            asked: Arc::default(),
        }
    }

    /// Put `node` at `path` (absolute, taken literally: no symlink in it is followed),
    /// replacing what was there; missing parents become root-owned 0755 directories.
    pub fn entry(mut self, path: impl AsRef<Path>, node: Node) -> Fake {
        let path = normalise(path.as_ref());
        for parent in path.ancestors().skip(1) {
            if !self.nodes.contains_key(parent) {
                let ino = self.ino();
                self.nodes
                    .insert(parent.to_path_buf(), (Node::dir(0o755), ino));
            }
        }
        let ino = self.ino();
        self.nodes.insert(path, (node, ino));
        self
    }

    pub fn file(self, path: impl AsRef<Path>, bytes: impl Into<Vec<u8>>, mode: u32) -> Fake {
        self.entry(path, Node::file(bytes, mode))
    }

    pub fn dir(self, path: impl AsRef<Path>, mode: u32) -> Fake {
        self.entry(path, Node::dir(mode))
    }

    pub fn symlink(self, path: impl AsRef<Path>, target: impl Into<PathBuf>) -> Fake {
        self.entry(path, Node::symlink(target))
    }

    pub fn fifo(self, path: impl AsRef<Path>, mode: u32) -> Fake {
        self.entry(path, Node::fifo(mode))
    }

    /// `uname -m`.
    pub fn machine_name(mut self, name: &str) -> Fake {
        self.machine = name.into();
        self
    }

    /// The effective ids and supplementary groups.
    pub fn user(mut self, euid: u32, egid: u32, groups: &[u32]) -> Fake {
        self.credentials = Credentials {
            euid,
            egid,
            groups: groups.to_vec(),
            outside: None,
        };
        self
    }

    /// Inside a user namespace that leaves ids unmapped: files of those ids show as
    /// `overflow`, and are beyond the reach of everyone inside.
    pub fn in_user_namespace(mut self, overflow: u32) -> Fake {
        self.credentials.outside = Some(overflow);
        self
    }

    /// The namespace also maps a nobody of its own, as the overflow uid: files showing that
    /// uid are then its nobody's, which the root inside may write.
    pub fn maps_its_own_nobody(mut self) -> Fake {
        self.own_nobody = true;
        self
    }

    /// Another mount, newer than those before it.
    pub fn mount(mut self, point: &str, fstype: &str, noexec: bool) -> Fake {
        self.mounts.push(Mount {
            point: point.into(),
            fstype: fstype.into(),
            noexec,
        });
        self
    }

    /// The mount list cannot be read (statvfs still answers).
    pub fn unreadable_mounts(mut self) -> Fake {
        self.mountinfo = false;
        self
    }

    pub fn env_var(mut self, name: &str, value: impl Into<OsString>) -> Fake {
        self.env.insert(name.into(), value.into());
        self
    }

    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Fake {
        self.cwd = dir.into();
        self
    }

    /// The binfmt_misc instance every directory shows.
    pub fn binfmt_snapshot(mut self, snapshot: Snapshot) -> Fake {
        self.binfmt = snapshot;
        self
    }

    /// A newer handler in a mounted, enabled binfmt_misc.
    pub fn handler(mut self, entry: Entry) -> Fake {
        self.binfmt.mounted = true;
        self.binfmt.enabled = true;
        self.binfmt.entries.insert(0, entry);
        self
    }

    /// What the native probe of `arch` answers (no, when not given).
    pub fn native(mut self, arch: &str, runs: bool) -> Fake {
        self.native.insert(arch.into(), Ok(runs));
        self
    }

    /// The native probe of `arch` cannot run at all.
    pub fn native_fails(mut self, arch: &str, why: &str) -> Fake {
        self.native.insert(arch.into(), Err(why.into()));
        self
    }

    /// Whether the interpreter at `path` honours P (no, when not given).
    pub fn preserves_argv0(mut self, interpreter: impl Into<PathBuf>, yes: bool) -> Fake {
        self.argv0.insert(interpreter.into(), yes);
        self
    }

    /// Process `pid` (`command`) holds `path` open for writing.
    pub fn writer(mut self, path: impl Into<PathBuf>, pid: u32, command: &str) -> Fake {
        self.writers
            .entry(path.into())
            .or_default()
            .push(super::Writer {
                pid,
                command: command.into(),
            });
        self
    }

    /// What `arch`'s level probe proves here: its mask of checks that ran.
    pub fn levels(self, arch: &str, mask: u32) -> Fake {
        let exit = crate::probe::levels::EXIT_BASE + i32::try_from(mask).unwrap_or(0);
        self.reply(
            arch,
            AskProgram::Levels,
            None,
            &[],
            Reply {
                exit: Some(exit),
                ..Reply::default()
            },
        )
    }

    /// How running `program` of `arch` through the kernel ends, with `env` its whole
    /// environment (`[("QEMU_VERSION", "1")]`) and, when given, `extension` on its name.
    /// An ask without a reply here never ran.
    pub fn reply(
        mut self,
        arch: &str,
        program: AskProgram,
        extension: Option<&str>,
        env: &[(&str, &str)],
        reply: Reply,
    ) -> Fake {
        let key = Asked {
            arch: arch.into(),
            program,
            extension: extension.map(str::to_string),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        self.replies.push((key, reply));
        self
    }

    /// Every ask made of this machine (and its clones) so far, in order.
    pub fn asked(&self) -> Vec<Asked> {
        self.asked.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// The bytes /proc/self/exe starts with.
    pub fn self_exe(mut self, head: impl Into<Vec<u8>>) -> Fake {
        self.self_exe = Some(head.into());
        self
    }

    fn ino(&mut self) -> u64 {
        self.next_ino += 1;
        self.next_ino
    }

    fn meta(&self, path: &Path) -> Option<Meta> {
        let (n, ino) = self.nodes.get(path)?;
        Some(Meta {
            kind: n.kind(),
            mode: n.mode,
            uid: n.uid,
            gid: n.gid,
            len: match &n.what {
                What::File(b) => b.len() as u64,
                What::Symlink(t) => t.as_os_str().len() as u64,
                _ => 0,
            },
            dev: 1,
            ino: *ino,
            mtime: (n.mtime, 0),
            ctime: (n.mtime, 0),
        })
    }

    /// The permission bits that apply to the fake credentials: owner's, group's or others'.
    fn class_bits(&self, n: &Node) -> u32 {
        let c = &self.credentials;
        if c.euid == n.uid {
            (n.mode >> 6) & 7
        } else if c.egid == n.gid || c.groups.contains(&n.gid) {
            (n.mode >> 3) & 7
        } else {
            n.mode & 7
        }
    }

    fn may_search(&self, n: &Node) -> bool {
        self.credentials.euid == 0 || self.class_bits(n) & 1 != 0
    }

    /// Look `path` up as the kernel does. `follow_last`: follow a symlink as the last
    /// component; `no_links`: meeting any symlink is ELOOP (openat2's RESOLVE_NO_SYMLINKS).
    fn walk(&self, path: &Path, follow_last: bool, no_links: bool) -> Result<PathBuf, Errno> {
        if path.as_os_str().is_empty() {
            return Err(Errno::ENOENT);
        }
        let mut cur = if path.is_absolute() {
            PathBuf::from("/")
        } else {
            normalise(&self.cwd)
        };
        // A stack: the next component is at the end.
        let mut todo: Vec<OsString> = Vec::new();
        push_front(&mut todo, path);
        let mut links = 0;
        while let Some(part) = todo.pop() {
            let (dir, _) = self.nodes.get(&cur).ok_or(Errno::ENOENT)?;
            if !matches!(dir.what, What::Dir) {
                return Err(Errno::ENOTDIR);
            }
            if !self.may_search(dir) {
                return Err(Errno::EACCES);
            }
            if part == ".." {
                cur.pop();
                continue;
            }
            let next = cur.join(&part);
            let (node, _) = self.nodes.get(&next).ok_or(Errno::ENOENT)?;
            if let What::Symlink(target) = &node.what {
                if !todo.is_empty() || follow_last {
                    if no_links {
                        return Err(Errno::ELOOP);
                    }
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(Errno::ELOOP);
                    }
                    if target.is_absolute() {
                        cur = PathBuf::from("/");
                    }
                    push_front(&mut todo, target);
                    continue;
                }
            }
            cur = next;
        }
        Ok(cur)
    }

    fn node(&self, path: &Path) -> &Node {
        &self.nodes[path].0
    }
}

fn errno(e: Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e as i32)
}

/// `/a/./b/` → `/a/b`, without resolving `..` (only a lookup may do that).
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        if let Component::Normal(n) = c {
            out.push(n);
        } else if c == Component::ParentDir {
            out.push("..");
        }
    }
    out
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

impl Machine for Fake {
    fn machine(&self) -> String {
        self.machine.clone()
    }

    fn credentials(&self) -> Credentials {
        self.credentials.clone()
    }

    fn mounts(&self) -> Result<Vec<Mount>, MountsError> {
        if self.mountinfo {
            Ok(self.mounts.clone())
        } else {
            Err(MountsError("Permission denied (os error 13)".into()))
        }
    }

    fn statvfs_noexec(&self, path: &Path) -> Option<bool> {
        super::mount_of(&self.mounts, path).map(|m| m.noexec)
    }

    fn env(&self, name: &str) -> Option<OsString> {
        self.env.get(name).cloned()
    }

    fn current_dir(&self) -> std::io::Result<PathBuf> {
        Ok(self.cwd.clone())
    }

    fn binfmt(&self, _dir: &Path) -> Result<Snapshot, BinfmtError> {
        Ok(self.binfmt.clone())
    }

    fn runs_natively(&self, arch: &Arch) -> Result<bool, ProbeError> {
        match self.native.get(&arch.name) {
            Some(Ok(yes)) => Ok(*yes),
            Some(Err(why)) => Err(ProbeError(why.clone())),
            None => Ok(false),
        }
    }

    fn start_probes(&self, probes: &[Probe<'_>]) -> Box<dyn Answers> {
        let answers = probes
            .iter()
            .map(|p| match p {
                Probe::Native(a) => self.runs_natively(a).unwrap_or(false),
                Probe::PreserveArgv0 { interpreter, .. } => {
                    self.argv0.get(*interpreter).copied().unwrap_or(false)
                }
            })
            .collect();
        Box::new(Known(answers))
    }

    fn start_asking(&self, asks: &[Ask<'_>], _timeout: std::time::Duration) -> Box<dyn Replies> {
        let replies = asks
            .iter()
            .map(|a| {
                let key = Asked::of(a);
                if let Ok(mut log) = self.asked.lock() {
                    log.push(key.clone());
                }
                self.replies
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, r)| r.clone())
                    .unwrap_or_else(|| Reply {
                        failure: Some("exec: Exec format error".into()),
                        ..Reply::default()
                    })
            })
            .collect();
        Box::new(Answered(replies))
    }

    fn self_exe_head(&self, max: usize) -> Option<Vec<u8>> {
        self.self_exe
            .as_ref()
            .map(|h| h[..h.len().min(max)].to_vec())
    }

    fn lstat(&self, path: &Path) -> std::io::Result<Meta> {
        let at = self.walk(path, false, false).map_err(errno)?;
        self.meta(&at).ok_or_else(|| errno(Errno::ENOENT))
    }

    fn stat(&self, path: &Path) -> std::io::Result<Meta> {
        let at = self.walk(path, true, false).map_err(errno)?;
        self.meta(&at).ok_or_else(|| errno(Errno::ENOENT))
    }

    fn read_link(&self, path: &Path) -> std::io::Result<PathBuf> {
        let at = self.walk(path, false, false).map_err(errno)?;
        match &self.node(&at).what {
            What::Symlink(t) => Ok(t.clone()),
            _ => Err(errno(Errno::EINVAL)),
        }
    }

    fn canonicalize(&self, path: &Path) -> std::io::Result<PathBuf> {
        self.walk(path, true, false).map_err(errno)
    }

    fn read_dir(&self, path: &Path) -> std::io::Result<Vec<OsString>> {
        let at = self.walk(path, true, false).map_err(errno)?;
        let dir = self.node(&at);
        if !matches!(dir.what, What::Dir) {
            return Err(errno(Errno::ENOTDIR));
        }
        if self.credentials.euid != 0 && self.class_bits(dir) & 4 == 0 {
            return Err(errno(Errno::EACCES));
        }
        Ok(self
            .nodes
            .range(at.clone()..)
            .skip(1)
            .take_while(|(p, _)| p.starts_with(&at))
            .filter(|(p, _)| p.parent() == Some(at.as_path()))
            .filter_map(|(p, _)| p.file_name().map(OsStr::to_os_string))
            .collect())
    }

    fn beyond_reach(&self, path: &Path) -> bool {
        let Ok(at) = self.walk(path, false, false) else {
            return false;
        };
        self.credentials.outside == Some(self.node(&at).uid) && !self.own_nobody
    }

    fn may_execute(&self, path: &Path) -> bool {
        let Ok(at) = self.walk(path, true, false) else {
            return false;
        };
        let n = self.node(&at);
        let noexec = self.statvfs_noexec(&at).unwrap_or(false);
        match n.what {
            What::Dir => self.may_search(n),
            // access(X_OK) refuses a regular file on a noexec mount, as exec does.
            What::File(_) if noexec => false,
            // Root may execute a file when anyone may.
            _ if self.credentials.euid == 0 => n.mode & 0o111 != 0,
            _ => self.class_bits(n) & 1 != 0,
        }
    }

    fn writers(&self, path: &Path) -> Vec<super::Writer> {
        let Ok(at) = self.walk(path, true, false) else {
            return Vec::new();
        };
        self.writers.get(&at).cloned().unwrap_or_default()
    }

    fn open(&self, path: &Path, follow: Follow) -> Result<(Handle, Meta), OpenError> {
        let io = |e: Errno| OpenError::Io(errno(e));
        let at = match follow {
            Follow::Yes => self.walk(path, true, false),
            Follow::NotLast => self.walk(path, false, false),
            Follow::Nowhere => self.walk(path, false, true),
        }
        .map_err(io)?;
        let n = self.node(&at);
        let What::File(bytes) = &n.what else {
            return Err(OpenError::NotRegular(n.kind().words()));
        };
        if self.credentials.euid != 0 && self.class_bits(n) & 4 == 0 {
            return Err(io(Errno::EACCES));
        }
        let meta = self.meta(&at).ok_or_else(|| io(Errno::ENOENT))?;
        Ok((Handle::Memory(bytes.clone()), meta))
    }
}

#[cfg(test)]
mod tests;
