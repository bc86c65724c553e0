//! The shared libraries a dynamically linked program needs, looked up inside a root roughly
//! as glibc's loader finds them: RPATH/RUNPATH (with `$ORIGIN`), LD_LIBRARY_PATH, the
//! directories of the root's /etc/ld.so.conf (what its ld.so.cache is built from), and the
//! usual system directories. Over-inclusive on purpose: a library reported missing was
//! looked for everywhere the loader could find it.

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

use super::root::{Lookup, RootFs};
use crate::fileio::Follow;
use crate::machine::{self, Machine};

/// ld.so.conf files are a few lines; a bigger one is not read.
const MAX_CONF_BYTES: usize = 1 << 20;

/// Stop after this many objects: real programs need a few dozen.
const MAX_OBJECTS: usize = 256;
/// Libraries larger than this are not parsed for their own needs.
const MAX_OBJECT_BYTES: u64 = 256 << 20;

/// Names of libraries (DT_NEEDED, transitively) that cannot be found inside `root` for the
/// program at `program` (a host path; `inside` its path in the root, for `$ORIGIN`), in the
/// order the loader meets them (breadth first, as glibc loads them).
pub fn missing(root: &RootFs, program: &Path, inside: &str) -> Vec<String> {
    let dirs = search_dirs(root);
    let mut missing: Vec<String> = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut queue: VecDeque<(PathBuf, String)> = VecDeque::new();
    queue.push_back((program.to_path_buf(), inside.to_string()));
    let mut objects = 0;
    while let Some((host, inside)) = queue.pop_front() {
        objects += 1;
        if objects > MAX_OBJECTS {
            break;
        }
        // The program itself is the caller's path; every library was resolved in the root.
        let follow = if objects == 1 {
            Follow::Yes
        } else {
            Follow::Nowhere
        };
        let Some(needs) = needs(root.machine(), &host, follow) else {
            continue;
        };
        let origin = Path::new(&inside)
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "/".into());
        let own: Vec<String> = needs
            .rpaths
            .iter()
            .flat_map(|r| r.split(':'))
            .map(|d| d.replace("$ORIGIN", &origin).replace("${ORIGIN}", &origin))
            .collect();
        for lib in needs.libraries {
            if !seen.insert(lib.clone()) {
                continue;
            }
            let candidates: Vec<String> = if lib.contains('/') {
                vec![lib.clone()]
            } else {
                own.iter()
                    .chain(dirs.iter())
                    .map(|d| format!("{}/{lib}", d.trim_end_matches('/')))
                    .collect()
            };
            let found = candidates.iter().find_map(|c| match root.resolve(c) {
                Lookup::Found(h) if is_file(root, &h) => Some((h, c.clone())),
                _ => None,
            });
            match found {
                Some(f) => queue.push_back(f),
                None => missing.push(lib),
            }
        }
    }
    missing
}

struct Needs {
    libraries: Vec<String>,
    rpaths: Vec<String>,
}

fn is_file(root: &RootFs, host: &Path) -> bool {
    root.machine().stat(host).is_ok_and(|m| m.is_file())
}

fn needs(machine: &dyn Machine, host: &Path, follow: Follow) -> Option<Needs> {
    // Only a regular file is opened, no symlink followed where the path was resolved inside
    // the root already, and no more than MAX_OBJECT_BYTES read.
    let (file, meta) = machine.open(host, follow).ok()?;
    if meta.len > MAX_OBJECT_BYTES {
        return None;
    }
    let bytes = file.read_prefix(MAX_OBJECT_BYTES as usize).ok()?;
    let elf = goblin::elf::Elf::parse(&bytes).ok()?;
    Some(Needs {
        libraries: elf.libraries.iter().map(|s| s.to_string()).collect(),
        rpaths: elf
            .runpaths
            .iter()
            .chain(elf.rpaths.iter())
            .map(|s| s.to_string())
            .collect(),
    })
}

/// LD_LIBRARY_PATH, the root's ld.so.conf directories, then the system directories and any
/// multiarch directories (`/usr/lib/<triplet>`) the root has.
fn search_dirs(root: &RootFs) -> Vec<String> {
    let mut dirs: Vec<String> = root
        .machine()
        .env("LD_LIBRARY_PATH")
        .map(|p| {
            p.to_string_lossy()
                .split(':')
                .filter(|d| !d.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let mut conf_files = vec!["/etc/ld.so.conf".to_string()];
    let mut read = 0;
    while let Some(conf) = conf_files.pop() {
        read += 1;
        if read > 64 {
            break;
        }
        let Lookup::Found(host) = root.resolve(&conf) else {
            continue;
        };
        let Ok(text) = machine::read_text(root.machine(), &host, Follow::Nowhere, MAX_CONF_BYTES)
        else {
            continue;
        };
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if let Some(pattern) = line.strip_prefix("include") {
                for p in pattern.split_whitespace() {
                    let p = if p.starts_with('/') {
                        p.to_string()
                    } else {
                        format!("/etc/{p}")
                    };
                    conf_files.extend(expand(root, &p));
                }
            } else if line.starts_with('/') {
                dirs.push(line.split_whitespace().next().unwrap_or(line).to_string());
            }
        }
    }
    for base in ["/lib64", "/usr/lib64", "/lib", "/usr/lib"] {
        dirs.push(base.to_string());
    }
    for base in ["/lib", "/usr/lib"] {
        if let Lookup::Found(host) = root.resolve(base) {
            if let Ok(entries) = root.machine().read_dir(&host) {
                let mut multiarch: Vec<String> = entries
                    .iter()
                    .map(|e| e.to_string_lossy().into_owned())
                    .filter(|n| n.contains("-linux-"))
                    .map(|n| format!("{base}/{n}"))
                    .collect();
                multiarch.sort();
                dirs.extend(multiarch);
            }
        }
    }
    dirs
}

/// `/etc/ld.so.conf.d/*.conf`: a `*` in the last component only, as ld.so.conf uses it.
fn expand(root: &RootFs, pattern: &str) -> Vec<String> {
    let path = Path::new(pattern);
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let name = name.to_string_lossy();
    let Some((before, after)) = name.split_once('*') else {
        return vec![pattern.to_string()];
    };
    let dir_s = dir.display().to_string();
    let Lookup::Found(host) = root.resolve(&dir_s) else {
        return Vec::new();
    };
    let mut out: Vec<String> = root
        .machine()
        .read_dir(&host)
        .map(|d| {
            d.iter()
                .map(|e| e.to_string_lossy().into_owned())
                .filter(|n| {
                    n.starts_with(before)
                        && n.ends_with(after)
                        && n.len() >= before.len() + after.len()
                })
                .map(|n| format!("{}/{n}", dir_s.trim_end_matches('/')))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::{Fake, Live};

    #[test]
    fn this_hosts_own_programs_miss_nothing() {
        let live = Live::new();
        let root = RootFs::host(&live);
        for p in ["/bin/ls", "/usr/bin/env"] {
            let host = std::fs::canonicalize(p).expect("canonicalize");
            assert_eq!(missing(&root, &host, p), Vec::<String>::new(), "{p}");
        }
    }

    #[test]
    fn an_empty_root_misses_every_library() {
        let ls = std::fs::read("/bin/ls").expect("ls");
        let m = Fake::new().file("/srv/root/bin/ls", ls, 0o755);
        let root = RootFs::new(&m, Path::new("/srv/root")).expect("root");
        let missed = missing(&root, Path::new("/srv/root/bin/ls"), "/bin/ls");
        assert!(
            missed.iter().any(|l| l.starts_with("libc.so")),
            "{missed:?}"
        );
    }

    #[test]
    fn libraries_are_found_through_ld_so_conf_and_runpath() {
        let ls = std::fs::read("/bin/ls").expect("ls");
        let wanted = missing(
            &RootFs::new(
                &Fake::new().file("/r/bin/ls", ls.clone(), 0o755),
                Path::new("/r"),
            )
            .expect("root"),
            Path::new("/r/bin/ls"),
            "/bin/ls",
        );
        assert!(!wanted.is_empty());
        // Every library ls needs, in a directory only ld.so.conf.d names.
        let mut m = Fake::new()
            .file("/r/bin/ls", ls, 0o755)
            .file(
                "/r/etc/ld.so.conf",
                b"include ld.so.conf.d/*.conf\n".to_vec(),
                0o644,
            )
            .file(
                "/r/etc/ld.so.conf.d/x.conf",
                b"/opt/lib # ours\n".to_vec(),
                0o644,
            );
        for lib in &wanted {
            m = m.file(format!("/r/opt/lib/{lib}"), Vec::new(), 0o644);
        }
        let root = RootFs::new(&m, Path::new("/r")).expect("root");
        assert_eq!(
            missing(&root, Path::new("/r/bin/ls"), "/bin/ls"),
            Vec::<String>::new()
        );
    }
}
