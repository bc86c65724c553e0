//! `run`'s work, as a library: a command in a new user and mount namespace with its own
//! binfmt_misc (Linux ≥ 6.7), the handlers registered there, optionally inside a root file
//! system, started through the process layer (`sys::exec`). Nothing outside the command's
//! namespaces changes.
//!
//! The ids the namespace maps decide what builders can do inside it. With only the caller's
//! own uid and gid mapped (what any user may do), setgroups must be denied and no file can
//! belong to anyone else: `buildah --isolation chroot` and `podman run` fail. So where the
//! caller has subordinate ids (/etc/subuid, /etc/subgid) and newuidmap/newgidmap exist, they
//! are mapped as rootless container tools map them; as root, every id is mapped to itself.
//! Those maps are written from outside the namespace, by this process, while the child waits
//! (`IdMaps::ByParent`).

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::arch::ArchTable;
use crate::binfmt::Snapshot;
use crate::binfmt::plan::Planned;
use crate::diagnose::{self, Cause, Lookup, RootFs};
use crate::error::{Class, Classify};
use crate::fileio::{self, Follow};
use crate::machine::Live;
use crate::sys::exec::{self, Child, Env, Output, RootOp, Spec, Stdin, Step};
use crate::sys::ns::Unavailable;
use crate::sys::path as pathrule;
use crate::sys::signals::SignalWatch;

/// Why `run` could not start its command.
#[derive(Debug, thiserror::Error)]
pub enum RootlessError {
    #[error("--rootfs {}: {source}", .dir.display())]
    Rootfs { dir: PathBuf, source: io::Error },
    #[error("--rootfs {}: not a directory", .0.display())]
    RootfsNotDir(PathBuf),
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    #[error("cannot register the handlers in the private binfmt_misc: {0}")]
    Register(String),
    #[error("cannot map the namespace's ids with {tool}: {detail}")]
    Maps { tool: String, detail: String },
    #[error("cannot prepare {}: {what}: {}", .root.display(), .errno.desc())]
    Prepare {
        root: PathBuf,
        what: &'static str,
        errno: Errno,
    },
    /// `{0}` says what was looked for and where.
    #[error("{0}")]
    Lookup(String),
    #[error("cannot run {}: {source}", .program.display())]
    Spawn { program: PathBuf, source: io::Error },
    /// `why`: diagnose's explanation of the errno, and the fix in `run`'s terms.
    #[error("cannot run {}: {why}", .program.display())]
    Exec {
        program: PathBuf,
        errno: Errno,
        why: String,
    },
    #[error("lost track of the command: {0}")]
    Wait(io::Error),
}

impl Classify for RootlessError {
    fn class(&self) -> Class {
        match self {
            RootlessError::Rootfs { .. }
            | RootlessError::RootfsNotDir(_)
            | RootlessError::Lookup(_)
            | RootlessError::Spawn { .. } => Class::BadInput,
            RootlessError::Register(_) => Class::Problem,
            // The kernel has no handler for it: what `run` exists to provide, so a problem
            // found, not bad input.
            RootlessError::Exec {
                errno: Errno::ENOEXEC,
                ..
            } => Class::Problem,
            RootlessError::Exec { .. } => Class::BadInput,
            RootlessError::Unavailable(_)
            | RootlessError::Maps { .. }
            | RootlessError::Prepare { .. }
            | RootlessError::Wait(_) => Class::Environment,
        }
    }
}

/// `--rootfs` as a canonical directory; anything else is bad input.
pub fn check_root(dir: &Path) -> Result<PathBuf, RootlessError> {
    let failed = |source| RootlessError::Rootfs {
        dir: dir.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(dir).map_err(failed)?;
    if !meta.is_dir() {
        return Err(RootlessError::RootfsNotDir(dir.to_path_buf()));
    }
    std::fs::canonicalize(dir).map_err(failed)
}

/// The ids the namespace maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ids {
    /// Only the caller's own uid and gid, as root: setgroups denied, no other owners.
    Own,
    /// Root: every id mapped to itself.
    Identity,
    /// The caller as root, and its subordinate ranges (start, count) from 1 up.
    Subordinate {
        uid: u32,
        gid: u32,
        uids: Vec<(u32, u32)>,
        gids: Vec<(u32, u32)>,
        newuidmap: PathBuf,
        newgidmap: PathBuf,
    },
}

impl Ids {
    /// The mapping this caller can have, and, when it is only its own ids, why.
    pub fn for_caller() -> (Ids, Option<String>) {
        let (uid, gid) = (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        );
        if uid == 0 {
            return (Ids::Identity, None);
        }
        let name = user_name(uid);
        let ranges = |file: &str, id: u32| {
            fileio::read_text(Path::new(file), Follow::Yes, 1 << 20)
                .map(|text| subordinate(&text, name.as_deref(), id))
                .unwrap_or_default()
        };
        let (uids, gids) = (ranges("/etc/subuid", uid), ranges("/etc/subgid", gid));
        let path = pathrule::env_path();
        let tool = |t: &str| pathrule::search_path(OsStr::new(t), &path, pathrule::look_live);
        let why = match (
            uids.is_empty() || gids.is_empty(),
            tool("newuidmap"),
            tool("newgidmap"),
        ) {
            (false, Ok(newuidmap), Ok(newgidmap)) => {
                return (
                    Ids::Subordinate {
                        uid,
                        gid,
                        uids,
                        gids,
                        newuidmap,
                        newgidmap,
                    },
                    None,
                );
            }
            (true, _, _) => {
                format!("uid {uid} has no subordinate ids in /etc/subuid and /etc/subgid")
            }
            _ => "newuidmap and newgidmap are missing (Debian: apt-get install uidmap)".into(),
        };
        (Ids::Own, Some(why))
    }
}

/// The login name of `uid` from /etc/passwd (no NSS: the files are what newuidmap reads).
fn user_name(uid: u32) -> Option<String> {
    let text = fileio::read_text(Path::new("/etc/passwd"), Follow::Yes, 16 << 20).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let (name, _, id) = (f.next()?, f.next()?, f.next()?);
        (id.parse::<u32>().ok() == Some(uid)).then(|| name.to_string())
    })
}

/// The ranges of an /etc/subuid or /etc/subgid text for a user, by name or by number.
pub fn subordinate(text: &str, name: Option<&str>, id: u32) -> Vec<(u32, u32)> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let (who, start, count) = (f.next()?, f.next()?, f.next()?);
            let mine = Some(who) == name || who.parse::<u32>().ok() == Some(id);
            let (start, count) = (start.parse::<u32>().ok()?, count.parse::<u32>().ok()?);
            (mine && count > 0).then_some((start, count))
        })
        .collect()
}

/// Device nodes bound into the root's /dev, each when the host has it.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// What putting `root` in place takes, done by the child in its own mount namespace: /proc
/// bound from ours, a small tmpfs /dev with the host's harmless devices bound in, the
/// /proc/self/fd links and an empty /dev/shm. A missing `proc` or `dev` directory is made
/// here, where the caller may; where it may not, it is left out, with a note.
pub fn root_ops(root: &Path) -> (Vec<RootOp>, Vec<String>) {
    let mut ops = Vec::new();
    let mut notes = Vec::new();
    // /proc is bound from ours rather than mounted fresh: a new procfs needs a PID namespace
    // of our own, and in one the command would be PID 1, which ignores SIGTERM and SIGINT
    // unless it handles them. The bind carries the private binfmt_misc mounted below it.
    match dir_in(root, "proc") {
        Ok(proc) => ops.push(RootOp::Bind {
            src: "/proc".into(),
            dst: proc,
            recursive: true,
            optional: false,
        }),
        Err(e) => notes.push(format!("no /proc in the root filesystem: {e}")),
    }
    // A tmpfs, so nothing is written to the root, which may belong to someone else; binds,
    // because a user namespace may not make device nodes but may bind existing ones.
    match dir_in(root, "dev") {
        Ok(dev) => {
            ops.push(RootOp::Tmpfs {
                dst: dev.clone(),
                options: "mode=755,size=1m".into(),
            });
            for name in DEVICES {
                let host = Path::new("/dev").join(name);
                if !host.exists() {
                    notes.push(format!("{} is missing on this host", host.display()));
                    continue;
                }
                ops.push(RootOp::Touch(dev.join(name)));
                ops.push(RootOp::Bind {
                    src: host,
                    dst: dev.join(name),
                    recursive: false,
                    optional: true,
                });
            }
            for (link, to) in [
                ("fd", "/proc/self/fd"),
                ("stdin", "/proc/self/fd/0"),
                ("stdout", "/proc/self/fd/1"),
                ("stderr", "/proc/self/fd/2"),
            ] {
                ops.push(RootOp::Symlink {
                    target: to.into(),
                    path: dev.join(link),
                });
            }
            ops.push(RootOp::Mkdir {
                path: dev.join("shm"),
                mode: 0o1777,
            });
        }
        Err(e) => notes.push(format!("no /dev in the root filesystem: {e}")),
    }
    (ops, notes)
}

/// `root/name` as a directory, made when missing (which fails on a root the caller cannot
/// write: the directory is then left out).
fn dir_in(root: &Path, name: &str) -> io::Result<PathBuf> {
    let path = root.join(name);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.is_dir() => Ok(path),
        Ok(_) => Err(io::Error::other(format!(
            "{} is not a directory",
            path.display()
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir(&path).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot create {}: {e}", path.display()))
            })?;
            Ok(path)
        }
        Err(e) => Err(e),
    }
}

/// What to start: the command and its arguments, where, with which handlers and ids.
#[derive(Debug)]
pub struct Request<'a, 't> {
    pub table: &'t ArchTable,
    pub command: &'a [OsString],
    pub root: Option<&'a Path>,
    pub planned: &'a [Planned<'t>],
    pub ids: &'a Ids,
    /// `--arch` as given, for the message when no handler takes the command.
    pub arch: &'a str,
}

/// Start the command on our terminal, with the signal mask we had before `watch` blocked its
/// signals, in its new namespaces.
pub fn start(req: &Request<'_, '_>, watch: &SignalWatch) -> Result<Child, RootlessError> {
    let shown = PathBuf::from(&req.command[0]);
    let rules: Vec<String> = req
        .planned
        .iter()
        .map(|p| p.reg.register_string())
        .collect();
    let mut spec = Spec::new(&req.command[0])
        .argv(req.command.iter().cloned())
        .search(pathrule::env_path())
        .env(environment(req.ids))
        .stdin(Stdin::Inherit)
        .output(Output::Inherit)
        .signal_mask(*watch.previous_mask());
    spec = match req.ids {
        Ids::Own => spec.private_binfmt(rules),
        _ => spec.private_binfmt_mapped_by_parent(rules),
    };
    if let Some(root) = req.root {
        let (ops, notes) = root_ops(root);
        for note in notes {
            tracing::info!("{}: {note}", root.display());
        }
        spec = spec
            .prepare_root(ops)
            .chroot(root, exec::ChrootFallback::None);
    }
    // The interpreters are registered by the child, as they are now: each must still be
    // the file that was checked, before and after.
    verify_pins(req.planned)?;
    let spawn_error = |source| RootlessError::Spawn {
        program: shown.clone(),
        source,
    };
    let child = match req.ids {
        Ids::Own => exec::spawn(&spec).map_err(spawn_error)?,
        ids => {
            let paused = exec::spawn_paused(&spec).map_err(spawn_error)?;
            if paused.waiting() {
                write_maps(paused.pid(), ids)?;
            }
            paused.resume()
        }
    };
    if let Some((step, errno)) = child.failed() {
        return Err(start_failure(req, step, errno));
    }
    verify_pins(req.planned)?;
    Ok(child)
}

fn verify_pins(planned: &[Planned<'_>]) -> Result<(), RootlessError> {
    for p in planned {
        p.emulator
            .pin
            .verify()
            .map_err(|e| RootlessError::Register(e.to_string()))?;
    }
    Ok(())
}

/// Our environment, and for a caller who is not root the variables that tell buildah and
/// podman they already run in a user namespace of their own (so they do not try to make
/// one, which a nested unprivileged namespace may not) and whose ids it maps.
fn environment(ids: &Ids) -> Env {
    let mut env: Vec<OsString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            kv
        })
        .collect();
    if let Ids::Own | Ids::Subordinate { .. } = ids {
        let (uid, gid) = (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        );
        for (key, value) in [
            ("_CONTAINERS_USERNS_CONFIGURED", "done".to_string()),
            ("_CONTAINERS_ROOTLESS_UID", uid.to_string()),
            ("_CONTAINERS_ROOTLESS_GID", gid.to_string()),
        ] {
            if std::env::var_os(key).is_none() {
                env.push(format!("{key}={value}").into());
            }
        }
    }
    Env::Exactly(env)
}

/// Write the waiting child's id maps from outside its namespace.
fn write_maps(pid: u32, ids: &Ids) -> Result<(), RootlessError> {
    match ids {
        Ids::Own => Ok(()),
        Ids::Identity => {
            for file in ["uid_map", "gid_map"] {
                let failed = |tool: String, e: &io::Error| RootlessError::Maps {
                    tool,
                    detail: crate::error::io_words(e),
                };
                // Every id this namespace has, to itself: all of them in the first one, those
                // of a container's range inside one.
                let ours = std::fs::read_to_string(format!("/proc/self/{file}"))
                    .map_err(|e| failed(format!("/proc/self/{file}"), &e))?;
                let path = format!("/proc/{pid}/{file}");
                std::fs::write(&path, identity_map(&ours)).map_err(|e| failed(path.clone(), &e))?;
            }
            Ok(())
        }
        Ids::Subordinate {
            uid,
            gid,
            uids,
            gids,
            newuidmap,
            newgidmap,
        } => {
            map_with(newuidmap, pid, *uid, uids)?;
            map_with(newgidmap, pid, *gid, gids)
        }
    }
}

/// Each range of ids a map text gives its namespace (`inside outside count` lines), mapped
/// to itself: one write, as the kernel takes a map.
fn identity_map(ours: &str) -> String {
    ours.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                [inside, _, count] => Some(format!("{inside} {inside} {count}\n")),
                _ => None,
            }
        })
        .collect()
}

/// `newuidmap PID 0 OWN 1 1 START COUNT …`: the caller as root, its ranges from 1 up.
fn map_with(tool: &Path, pid: u32, own: u32, ranges: &[(u32, u32)]) -> Result<(), RootlessError> {
    let mut args: Vec<String> = vec![
        tool.display().to_string(),
        pid.to_string(),
        "0".into(),
        own.to_string(),
        "1".into(),
    ];
    let mut inside: u64 = 1;
    for (start, count) in ranges {
        args.extend([inside.to_string(), start.to_string(), count.to_string()]);
        inside += u64::from(*count);
    }
    let failed = |detail: String| RootlessError::Maps {
        tool: tool.display().to_string(),
        detail,
    };
    let out = exec::run(
        &Spec::new(tool).argv(args),
        Some(std::time::Duration::from_secs(30)),
    )
    .map_err(|e| failed(e.to_string()))?;
    match out.ending {
        exec::Ending::Exited(0) => Ok(()),
        other => Err(failed(format!(
            "{other:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
    }
}

/// A step of the child that failed, in the words of what `run` was doing.
fn start_failure(req: &Request<'_, '_>, step: Step, errno: Errno) -> RootlessError {
    let program = PathBuf::from(&req.command[0]);
    let inside = req
        .root
        .map(|r| format!(" inside {}", r.display()))
        .unwrap_or_default();
    match step {
        Step::PrivateInstance => RootlessError::Unavailable(Unavailable(errno.into())),
        Step::Register => RootlessError::Register(errno.desc().to_string()),
        Step::Root | Step::Chroot => RootlessError::Prepare {
            root: req.root.map(Path::to_path_buf).unwrap_or_default(),
            what: step.as_str(),
            errno,
        },
        Step::Lookup => {
            let command = OsStr::new(&req.command[0]);
            RootlessError::Lookup(if command.as_bytes().contains(&b'/') {
                // Something there that is no regular file, or nothing at all: as the child
                // saw it, inside the root (where it chdir'd to /) or from here.
                let seen = match req.root {
                    Some(root) => root.join(program.strip_prefix("/").unwrap_or(&program)),
                    None => program.clone(),
                };
                match std::fs::symlink_metadata(&seen) {
                    Ok(m) => format!(
                        "{}: not an executable file (it is {}){inside}",
                        program.display(),
                        crate::machine::Meta::of(&m).kind.words()
                    ),
                    Err(_) => format!("{}: no such file{inside}", program.display()),
                }
            } else {
                format!(
                    "{}{inside}",
                    pathrule::NotFound {
                        command: command.to_string_lossy().into_owned(),
                        path: pathrule::env_path().to_string_lossy().into_owned(),
                    }
                )
            })
        }
        Step::Exec if errno == Errno::EACCES => RootlessError::Lookup(format!(
            "{}: not an executable file{inside}",
            program.display()
        )),
        Step::Exec => RootlessError::Exec {
            why: explain_exec(req, &program, errno),
            program,
            errno,
        },
        Step::Prepare | Step::Join => RootlessError::Spawn {
            program,
            source: errno.into(),
        },
    }
}

/// Why exec of the command failed, as `diagnose` explains a failed exec (one explanation in
/// the program), from what the private instance held and the command's first bytes, with
/// the fix in `run`'s own terms.
fn explain_exec(req: &Request<'_, '_>, program: &Path, errno: Errno) -> String {
    let machine = Live::new();
    let root = match req.root {
        Some(dir) => RootFs::new(&machine, dir).ok(),
        None => Some(RootFs::host(&machine)),
    };
    // The file the child found: the same PATH rule, looked up inside the root.
    let found = root.as_ref().and_then(|root| {
        pathrule::candidates(program.as_os_str(), &pathrule::env_path())
            .iter()
            .find_map(|c| match root.resolve(&c.to_string_lossy()) {
                Lookup::Found(host) if host.is_file() => Some(host),
                _ => None,
            })
    });
    let head = found
        .and_then(|host| fileio::open_regular(&host, Follow::Nowhere).ok())
        .and_then(|(file, _)| fileio::read_prefix(&file, crate::format::HEAD_BYTES).ok())
        .unwrap_or_default();
    let binfmt = Snapshot {
        mounted: true,
        enabled: true,
        entries: req
            .planned
            .iter()
            .map(|p| crate::binfmt::registration::to_entry(&p.reg))
            .rev()
            .collect(),
        unreadable: Vec::new(),
    };
    let arch = req.table.match_header(&head);
    let said = diagnose::explain_exec_failure(&diagnose::Exec {
        errno,
        binfmt: &binfmt,
        path: program,
        head: &head,
        chrooted: req.root.is_some(),
        arch,
    });
    let fix = match (said.cause, arch) {
        // run registers what --arch names, and nothing else.
        (Cause::NoHandler, Some(a)) => Some(format!(
            "it is a program for {}, and --arch {} does not take it: binfmt-setup run --arch {} …",
            a.name, req.arch, a.name
        )),
        _ => said.fix,
    };
    match fix {
        Some(fix) => format!("{} ({fix})", said.message),
        None => said.message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_maps_the_ids_its_own_namespace_has() {
        assert_eq!(
            identity_map("         0          0 4294967295\n"),
            "0 0 4294967295\n"
        );
        assert_eq!(
            identity_map("0 100000 65536\n65536 2000 10\n"),
            "0 0 65536\n65536 65536 10\n"
        );
    }

    #[test]
    fn subordinate_ranges_by_name_or_number() {
        let text = "alice:100000:65536\n1001:200000:1000\nbob:300000:65536\nalice:400000:0\n";
        assert_eq!(
            subordinate(text, Some("alice"), 1000),
            [(100000, 65536)],
            "a zero count is no range"
        );
        assert_eq!(subordinate(text, Some("carol"), 1001), [(200000, 1000)]);
        assert!(subordinate(text, None, 5).is_empty());
    }
}
