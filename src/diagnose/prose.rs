//! Every sentence `diagnose` says: the message, the fix and the error the user sees, each a
//! function of the facts the decision found. The decision modules choose the cause; the
//! words are here, in one place, so they can be read (and changed) together.

use std::path::Path;

use nix::errno::Errno;

use super::MAX_DEPTH;

mod after;
mod elf;
mod handler;

pub(super) use after::*;
pub(super) use elf::*;
pub(super) use handler::*;

/// What one finding says: a message, and perhaps a fix and what the user sees.
#[derive(Debug, Clone, Default)]
pub(super) struct Words {
    pub message: String,
    pub fix: Option<String>,
    /// None: the errno's own description, when exec fails.
    pub error: Option<String>,
}

impl Words {
    fn new(message: impl Into<String>) -> Words {
        Words {
            message: message.into(),
            ..Words::default()
        }
    }

    fn fix(mut self, fix: impl Into<String>) -> Words {
        self.fix = Some(fix.into());
        self
    }

    fn error(mut self, error: impl Into<String>) -> Words {
        self.error = Some(error.into());
        self
    }
}

/// Where programs are looked for: this system, or a `--root`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Place<'a> {
    pub root: Option<&'a Path>,
}

impl Place<'_> {
    /// " inside ROOT", or nothing.
    pub fn inside(&self) -> String {
        match self.root {
            Some(r) => format!(" inside {}", r.display()),
            None => String::new(),
        }
    }

    /// "in the root ROOT" or "on this system".
    pub fn where_(&self) -> String {
        match self.root {
            Some(r) => format!("in the root {}", r.display()),
            None => "on this system".to_string(),
        }
    }
}

// ---- Looking the file up (file.rs, mod.rs) ----

pub(super) fn no_such_command(cmd: &str, path_env: &str, place: Place) -> Words {
    Words::new(format!(
        "there is no command {cmd} in PATH ({path_env}){}",
        place.inside()
    ))
    .fix(format!(
        "install {cmd}, give its path (./{cmd}), or add its directory to PATH"
    ))
    .error(format!("{cmd}: command not found"))
}

pub(super) fn too_deep(path: &str) -> Words {
    Words::new(format!(
        "exec is passed from interpreter to interpreter more than {MAX_DEPTH} times before {path}; the kernel gives up (a binfmt_misc rule that matches its own interpreter does this)"
    ))
    .fix("remove the entry whose rule matches its own interpreter (binfmt-setup status lists them), or shorten the #! chain")
}

/// `at`: the first missing component; `link`: the last symlink followed (name, target).
pub(super) fn missing(
    path: &str,
    at: &str,
    link: Option<&(String, String)>,
    place: Place,
) -> Words {
    let where_ = place.where_();
    let mut message = if at == path {
        format!("{path} does not exist {where_}")
    } else {
        format!("{path} does not exist {where_}: there is no {at}")
    };
    let mut fix = "check the path".to_string();
    if let Some((name, target)) = link {
        message.push_str(&format!(" (the symlink {name} points to {target})"));
        if place.root.is_some() && target.starts_with('/') {
            message.push_str(", and absolute symlinks are resolved inside the root");
        }
        fix = format!("repair the symlink {name}, or put {target} in place");
    }
    Words::new(message).fix(fix)
}

pub(super) fn not_a_directory(path: &str, at: &str, place: Place) -> Words {
    Words::new(format!(
        "{path} cannot exist {}: {at} is not a directory",
        place.where_()
    ))
    .fix("check the path")
}

pub(super) fn symlink_loop(path: &str, at: &str, place: Place) -> Words {
    Words::new(format!(
        "{path} cannot be found {}: the symlinks at {at} form a loop",
        place.where_()
    ))
    .fix("repair the symlinks")
}

pub(super) fn unreachable(path: &str, at: &str, errno: Errno) -> Words {
    Words::new(format!("{path} cannot be reached: {at}: {}", errno.desc())).fix(format!(
        "give search (x) permission on the directories on the way to {path}"
    ))
}

pub(super) fn not_a_file(path: &str, kind: &str) -> Words {
    Words::new(format!("{path} is {kind}, not a program")).fix("give the path of a program file")
}

// ---- Opening it: mount and permission (file.rs) ----

/// `mount`: the mount point and its type, when the mount list names them.
pub(super) fn noexec_mount(path: &str, mount: Option<&(std::path::PathBuf, String)>) -> Words {
    let (on, fix) = match mount {
        Some((p, fstype)) => (
            format!("{} ({fstype})", p.display()),
            format!(
                "mount -o remount,exec {}, or move {path} to a filesystem mounted without noexec",
                p.display()
            ),
        ),
        None => (
            "its filesystem".to_string(),
            format!("move {path} to a filesystem mounted without noexec"),
        ),
    };
    Words::new(format!(
        "{path} lies on {on}, which is mounted noexec: the kernel runs nothing from there, whatever its permissions"
    ))
    .fix(fix)
}

/// The caller, and the file's owner, group and mode, as exec's permission check sees them.
#[derive(Debug, Clone, Copy)]
pub(super) struct ExecBits<'a> {
    pub mode: u32,
    pub owner: u32,
    pub group: u32,
    pub euid: u32,
    pub egid: u32,
    pub groups: &'a [u32],
}

/// Why execute permission is refused, from the mode bits, and the fix for the file shown as
/// `shown`. Linux uses the owner's bits for the owner, the group's for a member, else others'.
pub(super) fn not_executable(path: &str, shown: &str, bits: ExecBits) -> Words {
    let (why, fix) = explain_exec_bits(bits);
    Words::new(format!("{path} may not be executed: {why}")).fix(fix.replace("FILE", shown))
}

fn explain_exec_bits(b: ExecBits) -> (String, String) {
    let perm = b.mode & 0o7777;
    if b.mode & 0o111 == 0 {
        return (
            format!("it has no execute permission at all (mode {perm:04o})"),
            "chmod +x FILE".into(),
        );
    }
    if b.euid == 0 {
        return (
            format!("mode {perm:04o} allows it, so an ACL or a security module refuses it"),
            "check getfacl FILE and the security module's log".into(),
        );
    }
    let (owner, group, euid) = (b.owner, b.group, b.euid);
    let (who, bit, class) = if euid == owner {
        (format!("you own it (uid {owner})"), 0o100, "u")
    } else if b.egid == group || b.groups.contains(&group) {
        (format!("you are in its group (gid {group})"), 0o010, "g")
    } else {
        (
            format!(
                "you (uid {euid}) are neither its owner (uid {owner}) nor in its group (gid {group})"
            ),
            0o001,
            "o",
        )
    };
    if b.mode & bit != 0 {
        return (
            format!(
                "{who} and mode {perm:04o} allows it, so an ACL or a security module refuses it"
            ),
            "check getfacl FILE and the security module's log".into(),
        );
    }
    let whose = match class {
        "u" => "the owner's",
        "g" => "the group's",
        _ => "others'",
    };
    (
        format!("{who}, and {whose} execute bit is not set (mode {perm:04o})"),
        format!("chmod {class}+x FILE"),
    )
}

// ---- Files the kernel has no loader for (file.rs) ----

/// `target`: the architecture programs should be built for, when known.
pub(super) fn macho(archs: &str, target: Option<&str>) -> Words {
    Words::new(format!(
        "a macOS (Mach-O) program for {archs}; Linux cannot run Mach-O files"
    ))
    .fix(format!(
        "build it for Linux (Go: GOOS=linux GOARCH={})",
        target.unwrap_or("…")
    ))
}

pub(super) fn pe(arch: &str, target: Option<&str>) -> Words {
    Words::new(format!(
        "a Windows (PE) program for {arch}; Linux runs Windows programs only through Wine, and no binfmt_misc handler takes it"
    ))
    .fix(format!(
        "build it for Linux (Go: GOOS=linux GOARCH={}), or run it with wine",
        target.unwrap_or("…")
    ))
}

pub(super) fn empty(path: &str) -> Words {
    Words::new(format!("{path} is empty")).fix(format!("copy or build {path} again"))
}

pub(super) fn text_without_shebang(path: &str, shown: &str) -> Words {
    Words::new(format!(
        "{path} is a text file without a '#!' line: the kernel cannot run it (a shell would run it as a shell script; exec does not)"
    ))
    .fix(format!(
        "add a first line naming its interpreter: sed -i '1i #!/bin/sh' {shown}"
    ))
}

pub(super) fn unknown_format(path: &str) -> Words {
    Words::new(format!(
        "{path} is neither a program nor a script the kernel knows, and no binfmt_misc handler takes it"
    ))
    .fix("run it with the program it belongs to")
}

// ---- Scripts (script.rs) ----

pub(super) fn shebang_names_nothing(path: &str) -> Words {
    Words::new(format!("{path} starts with '#!' but names no interpreter"))
        .fix("write the interpreter after '#!', e.g. #!/bin/sh")
}

/// The fix for CR LF line endings, for the script shown as `shown`.
fn crlf_fix(shown: &str) -> String {
    format!("sed -i 's/\\r$//' {shown}   (or: dos2unix {shown})")
}

/// The kernel looks for "INTERP\r"; `only_without_cr`: INTERP itself exists.
pub(super) fn crlf_interpreter(
    path: &str,
    shown: &str,
    interp: &str,
    only_without_cr: bool,
) -> Words {
    let without_cr = if only_without_cr {
        format!(" (only {interp} does)")
    } else {
        String::new()
    };
    Words::new(format!(
        "a script saved with Windows line endings (CR LF): the kernel looks for the interpreter '{interp}\\r', with a carriage return, which does not exist{without_cr}"
    ))
    .fix(crlf_fix(shown))
    .error(format!(
        "No such file or directory (a shell says: {path}: {interp}^M: bad interpreter)"
    ))
}

/// The interpreter starts, and is given its argument with the CR.
pub(super) fn crlf_argument(shown: &str, interp: &str, arg: &str) -> Words {
    let shown_arg = arg.replace('\r', "\\r");
    let error = if is_env(interp) {
        format!("{interp}: '{shown_arg}': No such file or directory")
    } else {
        format!("{interp} fails on its argument '{shown_arg}'")
    };
    Words::new(format!(
        "a script saved with Windows line endings (CR LF): {interp} starts, but is given '{shown_arg}', carriage return included"
    ))
    .fix(crlf_fix(shown))
    .error(error)
}

pub(super) fn shebang_missing(path: &str, interp: &str, place: Place) -> Words {
    Words::new(format!(
        "a script for {interp}, which does not exist {}",
        place.where_()
    ))
    .fix(format!(
        "install {interp}{}{}, or correct the '#!' line of {path}",
        place.inside(),
        package_hint(interp)
    ))
    .error(format!(
        "No such file or directory (a shell says: {path}: {interp}: bad interpreter)"
    ))
}

/// A script whose interpreter runs: `then` says how.
pub(super) fn script_runs(interp: &str, then: &str) -> String {
    format!("a script run by {interp}: {then}")
}

/// A script whose interpreter fails for its own reason (`why`).
pub(super) fn script_fails(interp: &str, why: &str) -> String {
    format!("a script run by {interp}; {why}")
}

pub(super) fn env_runs(env: &str, arg: &str, then: &str) -> String {
    format!("a script run by {env} {arg}: {then}")
}

pub(super) fn env_command_runs(env: &str, cmd: &str, cmd_path: &str, then: &str) -> String {
    format!("a script run by {env} {cmd} ({cmd_path}): {then}")
}

pub(super) fn env_command_missing(path: &str, env: &str, cmd: &str, place: Place) -> Words {
    Words::new(format!(
        "a script run by '{env} {cmd}', and there is no {cmd} in PATH{}",
        place.inside()
    ))
    .fix(format!(
        "install {cmd}{}{}, or correct the '#!' line of {path}",
        place.inside(),
        package_hint(cmd)
    ))
    .error(format!("{env}: '{cmd}': No such file or directory"))
}

/// env started, so exec of the script succeeded; env reports `error`, CMD's failure.
pub(super) fn env_command_fails(env: &str, cmd: &str, why: &str, error: &str) -> Words {
    Words::new(format!("a script run by {env} {cmd}; {why}"))
        .error(format!("{env}: '{cmd}': {error}"))
}

pub(super) fn is_env(interp: &str) -> bool {
    Path::new(interp).file_name().is_some_and(|n| n == "env")
}

// ---- Word helpers ----

/// "a" or "an", by how the word is said: "an amd64", "an s390x", "a riscv64", "a 386".
pub(super) fn article(word: &str) -> &'static str {
    let w = word.to_ascii_lowercase();
    let vowel_sound = w.starts_with(['a', 'e', 'i', 'o', 'u', 'x'])
        || w.starts_with("s390")
        || w.starts_with("m68k")
        || w.starts_with("sh4")
        || w.starts_with("hppa")
        || w == "elf";
    if vowel_sound { "an" } else { "a" }
}

fn os_display(os: &str) -> &str {
    match os {
        "freebsd" => "FreeBSD",
        "netbsd" => "NetBSD",
        "openbsd" => "OpenBSD",
        "solaris" => "Solaris",
        "hpux" => "HP-UX",
        "aix" => "AIX",
        "irix" => "IRIX",
        "hurd" => "GNU Hurd",
        other => other,
    }
}

/// " (Go: GOARCH=arm64)" for architectures Go names the same way Docker does.
pub(super) fn go_hint(arch: &str) -> String {
    const GO: &[&str] = &[
        "amd64", "386", "arm64", "arm", "ppc64le", "ppc64", "s390x", "riscv64", "mips", "mipsle",
        "mips64", "mips64le", "loong64",
    ];
    if GO.contains(&arch) {
        format!(" (Go: GOARCH={arch})")
    } else {
        String::new()
    }
}

/// " (Debian: apt-get install python3)" for common script interpreters.
fn package_hint(interp: &str) -> String {
    let name = Path::new(interp)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let pkg = match name.as_str() {
        "python3" | "python" => "python3",
        "bash" => "bash",
        "perl" => "perl",
        "ruby" => "ruby",
        "node" | "nodejs" => "nodejs",
        "php" => "php-cli",
        "zsh" => "zsh",
        "ksh" => "ksh",
        "tclsh" => "tcl",
        "lua" => "lua5.4",
        _ => return String::new(),
    };
    format!(" (Debian: apt-get install {pkg})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::ArchTable;

    #[test]
    fn exec_bits_name_the_class_that_applies() {
        let bits = |mode, owner, group, euid, egid, groups| ExecBits {
            mode,
            owner,
            group,
            euid,
            egid,
            groups,
        };
        // Owner without x although others have it: Linux uses the owner's bits only.
        let (why, fix) = explain_exec_bits(bits(0o100601, 1000, 1000, 1000, 1000, &[]));
        assert!(why.contains("you own it"), "{why}");
        assert_eq!(fix, "chmod u+x FILE");
        let (why, fix) = explain_exec_bits(bits(0o100740, 0, 50, 1000, 1000, &[50]));
        assert!(why.contains("in its group"), "{why}");
        assert_eq!(fix, "chmod g+x FILE");
        let (why, fix) = explain_exec_bits(bits(0o100750, 0, 0, 1000, 1000, &[]));
        assert!(why.contains("neither its owner"), "{why}");
        assert_eq!(fix, "chmod o+x FILE");
        let (_, fix) = explain_exec_bits(bits(0o100644, 0, 0, 0, 0, &[]));
        assert_eq!(fix, "chmod +x FILE");
    }

    #[test]
    fn articles_follow_the_sound() {
        assert_eq!(article("amd64"), "an");
        assert_eq!(article("s390x"), "an");
        assert_eq!(article("x32"), "an");
        assert_eq!(article("riscv64"), "a");
        assert_eq!(article("386"), "a");
        assert_eq!(article("mips64le"), "a");
    }

    #[test]
    fn loader_fixes_name_the_package() {
        let table = ArchTable::embedded();
        let arm64 = table.find("arm64");
        assert!(loader_fix("/lib/ld-linux-aarch64.so.1", arm64).contains("libc6:arm64"));
        assert!(loader_fix("/lib/ld-musl-aarch64.so.1", arm64).contains("apk add musl"));
    }
}
