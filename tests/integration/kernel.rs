//! The kernel's own side of the contract in docs/KERNEL.md: what binfmt_misc and execve
//! answer, asked directly of a private instance with no binfmt-setup code in between. If one
//! of these fails, the kernel changed under the code that relies on it; the page says where.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::errno::Errno;

use crate::util::{
    AARCH64_MAGIC, AARCH64_MASK, HOST_BINFMT, PrivateBinfmt, Run, exec_in, fixture, host_entries,
    register_string, require_root,
};

const QEMU_AARCH64: &str = "/usr/bin/qemu-aarch64-static";

/// One write(2) of `bytes` to `path`, the way the kernel takes control writes; the errno of a
/// refusal.
#[track_caller]
fn write_once(path: &Path, bytes: &[u8]) -> Result<(), Errno> {
    let errno = |e: std::io::Error| Errno::from_raw(e.raw_os_error().unwrap_or(0));
    let mut f = OpenOptions::new().write(true).open(path).map_err(errno)?;
    let n = f.write(bytes).map_err(errno)?;
    assert_eq!(n, bytes.len(), "short write to {}", path.display());
    Ok(())
}

fn register(ns: &PrivateBinfmt, rule: impl AsRef<[u8]>) -> Result<(), Errno> {
    write_once(&ns.dir().join("register"), rule.as_ref())
}

/// Names in a binfmt_misc directory in readdir order, unsorted.
fn names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

/// execve itself failed with `errno` (the harness reports it as `exec: … (ERRNO)`).
#[track_caller]
fn assert_exec_fails(r: &Run, errno: Errno) {
    assert!(
        r.code.is_none()
            && r.stderr.contains("exec: ")
            && r.stderr.ends_with(&format!("({errno:?})")),
        "expected exec to fail with {errno:?}; code {:?}, stderr:\n{}",
        r.code,
        r.stderr
    );
}

fn aarch64_rule(name: &str, interpreter: &str, flags: &str) -> String {
    register_string(name, AARCH64_MAGIC, AARCH64_MASK, interpreter, flags)
}

/// A directory every uid the test may act as can reach from inside a namespace.
fn shared_tempdir() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    d
}

/// An executable file holding `text`. Files that will be exec'd are written by a child
/// process, never by this one: another test's thread may fork while our write descriptor is
/// open, its child keeps a copy until it execs, and exec of the file meanwhile fails with
/// ETXTBSY.
fn script(path: &Path, text: &str) -> PathBuf {
    let write = r#"printf %s "$1" > "$0" && chmod 755 "$0""#;
    Run::capture(Command::new("sh").args(["-c", write]).arg(path).arg(text)).expect_code(0);
    path.to_path_buf()
}

// §1 The register string.

#[test]
fn a_rule_split_across_two_writes_fails_with_einval_twice() {
    let ns = PrivateBinfmt::new();
    assert_eq!(register(&ns, ":split:E::"), Err(Errno::EINVAL));
    assert_eq!(register(&ns, "xyz::/x:"), Err(Errno::EINVAL));
    assert_eq!(ns.listing(), ["register", "status"]);
}

#[test]
fn a_raw_nul_ends_the_magic_and_an_escaped_one_does_not() {
    let ns = PrivateBinfmt::new();
    assert_eq!(register(&ns, b":raw:M::ab\0cd::/x:"), Ok(()));
    assert!(
        ns.read("raw").contains("magic 6162\n"),
        "{}",
        ns.read("raw")
    );
    assert_eq!(register(&ns, ":escaped:M::ab\\x00cd::/x:"), Ok(()));
    assert!(ns.read("escaped").contains("magic 6162006364\n"));
}

#[test]
fn the_string_ends_at_the_flags_with_at_most_one_newline() {
    let ns = PrivateBinfmt::new();
    // The delimiter after the interpreter is required, even with no flags…
    assert_eq!(register(&ns, ":noend:E::a::/x"), Err(Errno::EINVAL));
    // … and nothing may follow the flags but one newline: not a delimiter, not two.
    assert_eq!(register(&ns, ":delim:E::a::/x:P:"), Err(Errno::EINVAL));
    assert_eq!(register(&ns, ":two:E::a::/x:P\n\n"), Err(Errno::EINVAL));
    assert_eq!(register(&ns, ":one:E::a::/x:P\n"), Ok(()));
    assert_eq!(register(&ns, ":bare:E::b::/x:"), Ok(()));
    assert!(ns.read("one").contains("interpreter /x\nflags: P\n"));
}

#[test]
fn the_first_byte_is_the_delimiter_whatever_it_is() {
    let ns = PrivateBinfmt::new();
    assert_eq!(register(&ns, ",comma,M,,\\x50\\x51,,/x:y,"), Ok(()));
    let entry = ns.read("comma");
    assert!(
        entry.contains("interpreter /x:y\n") && entry.contains("magic 5051\n"),
        "{entry}"
    );
}

#[test]
fn an_empty_mask_compares_every_bit() {
    let dir = shared_tempdir();
    let say = script(&dir.path().join("say"), "#!/bin/sh\necho matched\n");
    let ns = PrivateBinfmt::new();
    ns.register(&format!(":every:M::\\x7fXY::{}:", say.display()));
    let same = script(&dir.path().join("same"), "\x7fXY");
    let one_bit_off = script(&dir.path().join("off"), "\x7fXX");
    assert_eq!(ns.exec(&same, &[]).stdout, "matched\n");
    assert_exec_fails(&ns.exec(&one_bit_off, &[]), Errno::ENOEXEC);
}

// §2 Limits.

#[test]
fn the_kernel_answers_the_limits_table() {
    let ns = PrivateBinfmt::new();
    // `:l:E::x::/` and a closing `:` are 11 bytes; the interpreter's name makes up the rest.
    let long_interp = |total: usize| format!(":l:E::x::/{}:", "a".repeat(total - 11));
    assert_eq!(long_interp(1921).len(), 1921);
    let name = |n: usize| format!(":{}:E::x::/x:", "n".repeat(n));
    let magic = |name: &str, at: &str, bytes: usize| {
        format!(":{name}:M:{at}:{}::/x:", "\\xff".repeat(bytes))
    };
    let n255 = "n".repeat(255);
    let refused = [
        (":a:E::b::/".to_string(), Errno::EINVAL, "10 bytes"),
        (long_interp(1921), Errno::EINVAL, "1921 bytes"),
        (name(256), Errno::ENAMETOOLONG, "name of 256"),
        ("::E::x::/x:".into(), Errno::EINVAL, "empty name"),
        (":.:E::x::/x:".into(), Errno::EINVAL, "name ."),
        (":..:E::x::/x:".into(), Errno::EINVAL, "name .."),
        (":a/b:E::x::/x:".into(), Errno::EINVAL, "name with /"),
        (":register:E::x::/x:".into(), Errno::EEXIST, "name register"),
        (":status:E::x::/x:".into(), Errno::EEXIST, "name status"),
        (magic("m", "0", 257), Errno::EINVAL, "257 bytes at 0"),
        (magic("m", "1", 256), Errno::EINVAL, "256 bytes at 1"),
        (magic("m", "256", 1), Errno::EINVAL, "1 byte at 256"),
        (
            ":m:M::\\x01\\x02:\\xff::/x:".into(),
            Errno::EINVAL,
            "mask shorter",
        ),
        (":m:M::::/x:".into(), Errno::EINVAL, "empty magic"),
        (":m:M:-1:\\x01::/x:".into(), Errno::EINVAL, "offset -1"),
        (":m:M:0x10:\\x01::/x:".into(), Errno::EINVAL, "offset 0x10"),
        (":m:E::x::/x:X".into(), Errno::EINVAL, "flag X"),
        (":m:E::x::/x:p".into(), Errno::EINVAL, "flag p"),
        (":m:E::x:::".into(), Errno::EINVAL, "empty interpreter"),
        (":m:Z::x::/x:".into(), Errno::EINVAL, "type Z"),
        (":m:E::a/b::/x:".into(), Errno::EINVAL, "extension with /"),
    ];
    for (rule, errno, what) in &refused {
        assert_eq!(register(&ns, rule), Err(*errno), "{what}");
    }
    assert_eq!(
        ns.listing(),
        ["register", "status"],
        "a refusal left an entry"
    );

    let accepted = [
        (":a:E::b::/:".to_string(), "a", "11 bytes"),
        (long_interp(1920), "l", "1920 bytes"),
        (name(255), n255.as_str(), "name of 255"),
        (magic("m256", "0", 256), "m256", "256 bytes at 0"),
        (":m255:M:255:\\x01::/x:".into(), "m255", "1 byte at 255"),
        (":rel:E::r::x:".into(), "rel", "relative interpreter"),
    ];
    for (rule, entry, what) in &accepted {
        assert_eq!(register(&ns, rule), Ok(()), "{what}");
        assert!(ns.listing().iter().any(|n| n == entry), "{what}");
    }
    assert_eq!(
        register(&ns, ":a:E::c::/x:"),
        Err(Errno::EEXIST),
        "duplicate"
    );
}

#[test]
fn offsets_are_decimal_with_an_optional_plus() {
    let ns = PrivateBinfmt::new();
    for (name, offset, reads) in [("plus", "+1", 1), ("octal", "010", 10), ("empty", "", 0)] {
        assert_eq!(
            register(&ns, format!(":{name}:M:{offset}:\\x01::/x:")),
            Ok(())
        );
        let entry = ns.read(name);
        assert!(
            entry.contains(&format!("offset {reads}\n")),
            "{offset:?}: {entry}"
        );
    }
}

// §3 Flags: F takes the interpreter at registration.

#[test]
fn f_opens_the_interpreter_at_registration_and_without_f_nothing_is_opened() {
    let dir = shared_tempdir();
    let (missing, directory) = (dir.path().join("missing"), dir.path().display().to_string());
    let ns = PrivateBinfmt::new();
    let missing = missing.display().to_string();
    assert_eq!(
        register(&ns, aarch64_rule("d", &directory, "F")),
        Err(Errno::EACCES)
    );
    assert_eq!(
        register(&ns, aarch64_rule("m", &missing, "F")),
        Err(Errno::ENOENT)
    );
    assert_eq!(register(&ns, aarch64_rule("d", &directory, "")), Ok(()));
    assert_eq!(register(&ns, aarch64_rule("m", &missing, "")), Ok(()));
}

/// Copy QEMU with `cp`, not from this process (see [`script`]).
fn copy_qemu(to: &Path) {
    Run::capture(Command::new("cp").arg(QEMU_AARCH64).arg(to)).expect_code(0);
}

#[test]
fn a_deleted_f_interpreter_still_runs_programs_and_without_f_it_is_enoent() {
    let dir = shared_tempdir();
    let arm64 = fixture("arm64");
    let copy = dir.path().join("qemu-aarch64-static");
    let ns = PrivateBinfmt::new();

    copy_qemu(&copy);
    ns.register(&aarch64_rule("held", &copy.display().to_string(), "F"));
    std::fs::remove_file(&copy).expect("delete");
    ns.exec(&arm64, &[]).expect_code(42);
    ns.control("held", "-1");

    copy_qemu(&copy);
    ns.register(&aarch64_rule("by-path", &copy.display().to_string(), ""));
    ns.exec(&arm64, &[]).expect_code(42);
    std::fs::remove_file(&copy).expect("delete");
    assert_exec_fails(&ns.exec(&arm64, &[]), Errno::ENOENT);
}

// §4 Entry files.

#[test]
fn register_is_write_only_and_entries_cannot_be_unlinked_or_renamed() {
    let ns = PrivateBinfmt::new();
    ns.register(":kept:E::k::/x:");
    // Read inside: there root owns the instance's files, as it does nowhere else when the
    // tests run unprivileged, and only the owner's read of a 0200 file reaches the kernel.
    let r = ns.tool("cat", &[&format!("{HOST_BINFMT}/register")]);
    assert!(
        r.code == Some(1) && r.stderr.trim_end().ends_with("Invalid argument"),
        "{r:?}"
    );
    let entry = ns.dir().join("kept");
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o7777;
    assert_eq!(mode(&ns.dir().join("register")), 0o200);
    assert_eq!(
        (mode(&ns.dir().join("status")), mode(&entry)),
        (0o644, 0o644)
    );
    let errno = |r: std::io::Result<()>| r.map_err(|e| e.raw_os_error());
    assert_eq!(
        errno(std::fs::remove_file(&entry)),
        Err(Some(nix::libc::EPERM))
    );
    assert_eq!(
        errno(std::fs::rename(&entry, ns.dir().join("moved"))),
        Err(Some(nix::libc::EPERM))
    );
    assert!(ns.read("kept").starts_with("enabled\n"));
}

// §5 Control writes.

#[test]
fn control_values_other_than_0_1_and_minus_1_are_einval_and_change_nothing() {
    let ns = PrivateBinfmt::new();
    ns.register(":ctl:E::c::/x:");
    let entry = ns.dir().join("ctl");
    let status = ns.dir().join("status");
    for value in ["2", "yes", "0\n\n"] {
        assert_eq!(
            write_once(&entry, value.as_bytes()),
            Err(Errno::EINVAL),
            "{value:?}"
        );
        assert_eq!(
            write_once(&status, value.as_bytes()),
            Err(Errno::EINVAL),
            "{value:?}"
        );
    }
    assert!(ns.read("ctl").starts_with("enabled\n"));
    assert_eq!(ns.read("status"), "enabled\n");
    // One trailing newline is allowed.
    assert_eq!(write_once(&entry, b"0\n"), Ok(()));
    assert!(ns.read("ctl").starts_with("disabled\n"));
}

#[test]
fn minus_1_to_status_removes_every_entry() {
    let ns = PrivateBinfmt::new();
    for name in ["ours", "theirs", "another"] {
        ns.register(&format!(":{name}:E::{name}::/x:"));
    }
    ns.control("status", "-1");
    assert_eq!(ns.listing(), ["register", "status"]);
}

// §6 Matching.

#[test]
fn readdir_lists_entries_newest_first_then_register_and_status() {
    let ns = PrivateBinfmt::new();
    for name in ["zz", "aa", "mm", "bb"] {
        ns.register(&format!(":{name}:E::{name}::/x:"));
    }
    assert_eq!(
        names(&ns.dir()),
        ["bb", "mm", "aa", "zz", "register", "status"]
    );
}

// §7 What execve returns.

#[test]
fn a_rule_matching_its_own_interpreter_is_eloop() {
    let dir = shared_tempdir();
    let head = "#!/bin/sh\n#L";
    let own = script(&dir.path().join("loop"), &format!("{head}\n"));
    let hex: String = head.bytes().map(|b| format!("{b:02x}")).collect();
    let ns = PrivateBinfmt::new();
    ns.register(&register_string(
        "loop",
        &hex,
        "",
        &own.display().to_string(),
        "",
    ));
    assert_exec_fails(&ns.exec(&own, &[]), Errno::ELOOP);
}

#[test]
fn five_interpreter_rewrites_run_and_a_sixth_is_eloop() {
    let dir = shared_tempdir();
    // Each script's interpreter is the one before; the first names `bottom`. Returns the
    // chain, shortest first.
    let chain = |prefix: &str, bottom: &Path| {
        let mut below = bottom.to_path_buf();
        (1..=6)
            .map(|i| {
                let path = dir.path().join(format!("{prefix}{i}"));
                below = script(&path, &format!("#!{}\necho chained\n", below.display()));
                below.clone()
            })
            .collect::<Vec<_>>()
    };
    let ns = PrivateBinfmt::new();

    // Five `#!` rewrites, then the shell: runs. Six: ELOOP.
    let scripts = chain("s", Path::new("/bin/sh"));
    let r = ns.exec(&scripts[4], &[]);
    assert_eq!((r.code, r.stdout.trim()), (Some(0), "chained"), "{r:?}");
    assert_exec_fails(&ns.exec(&scripts[5], &[]), Errno::ELOOP);

    // binfmt_misc's rewrite counts the same: four scripts in front of an emulated program
    // run, five do not.
    ns.register(&aarch64_rule("qemu-aarch64", QEMU_AARCH64, "F"));
    let scripts = chain("e", &fixture("arm64"));
    ns.exec(&scripts[3], &[]).expect_code(42);
    assert_exec_fails(&ns.exec(&scripts[4], &[]), Errno::ELOOP);
}

// §8 Private instances in user namespaces.

/// What a holder runs: say its pid, then keep its namespaces alive.
const HOLD: &str = "echo $$; exec sleep 3600";

/// A process holding namespaces the test made (`cmd` ends in `sh -c HOLD`); exec and writes
/// reach them by its pid. Killed when dropped.
struct Holder {
    child: Child,
    pid: u32,
}

impl Holder {
    fn start(mut cmd: Command) -> Holder {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn holder");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read holder pid");
        let Ok(pid) = line.trim().parse() else {
            let out = child.wait_with_output().expect("holder output");
            panic!(
                "{cmd:?} did not start: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        Holder { child, pid }
    }

    /// A new user and mount namespace inside `ns`'s, with no binfmt_misc mount of its own: it
    /// sees `ns`'s mount, copied with the rest.
    fn nested_in(ns: &PrivateBinfmt) -> Holder {
        let mut cmd = ns.command("unshare");
        cmd.args([
            "--user",
            "--map-root-user",
            "--mount",
            "--fork",
            "sh",
            "-c",
            HOLD,
        ]);
        Holder::start(cmd)
    }

    fn dir(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{HOST_BINFMT}", self.pid))
    }

    fn exec(&self, program: &Path) -> Run {
        exec_in(self.pid, program, &[])
    }

    /// A native tool run in the holder's namespaces.
    fn tool(&self, program: &str, args: &[&str]) -> Run {
        let mut cmd = Command::new("nsenter");
        cmd.args([
            "-t",
            &self.pid.to_string(),
            "-U",
            "-m",
            "--preserve-credentials",
            "--",
        ])
        .arg(program)
        .args(args);
        Run::capture(&mut cmd)
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, kill};
        let _ = kill(nix::unistd::Pid::from_raw(self.pid as i32), Signal::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `setpriv` to uid and gid 65534 with no groups: an ordinary user on the host.
fn as_nobody() -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .current_dir("/")
        .env("LC_ALL", "C");
    cmd
}

/// Write `bytes` to `path` as uid 65534, in one write(2): dd takes its whole input as one
/// block.
fn write_as_nobody(path: &Path, bytes: &[u8]) -> Run {
    let mut child = as_nobody()
        .args([
            "dd",
            "bs=4096",
            "iflag=fullblock",
            "conv=notrunc",
            "status=none",
        ])
        .arg(format!("of={}", path.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn setpriv dd");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(bytes)
        .expect("feed dd");
    let out = child.wait_with_output().expect("dd output");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn a_nested_user_namespace_without_a_mount_execs_through_its_parents_instance() {
    let arm64 = fixture("arm64");
    let ns = PrivateBinfmt::new();
    ns.register(&aarch64_rule("parent", QEMU_AARCH64, "F"));
    let nested = Holder::nested_in(&ns);
    nested.exec(&arm64).expect_code(42);
    // The parent's entry, not the host's (which may also run arm64): disabled there, the
    // nested exec finds no handler.
    ns.control("parent", "0");
    assert_exec_fails(&nested.exec(&arm64), Errno::ENOEXEC);
}

#[test]
fn after_an_umount_the_listing_shows_the_parents_entries_but_exec_uses_the_emptied_own_instance() {
    let arm64 = fixture("arm64");
    let ns = PrivateBinfmt::new();
    ns.register(&aarch64_rule("parent", QEMU_AARCH64, "F"));
    let child = Holder::nested_in(&ns);
    let mount = ["-t", "binfmt_misc", "binfmt_misc", HOST_BINFMT];

    child.tool("mount", &mount).expect_code(0);
    assert_eq!(names(&child.dir()), ["register", "status"]);
    assert_exec_fails(&child.exec(&arm64), Errno::ENOEXEC);
    let own = aarch64_rule("own", QEMU_AARCH64, "F");
    assert_eq!(
        write_once(&child.dir().join("register"), own.as_bytes()),
        Ok(())
    );
    child.exec(&arm64).expect_code(42);

    child.tool("umount", &[HOST_BINFMT]).expect_code(0);
    assert_eq!(names(&child.dir()), ["parent", "register", "status"]);
    assert_exec_fails(&child.exec(&arm64), Errno::ENOEXEC);

    child.tool("mount", &mount).expect_code(0);
    assert_eq!(names(&child.dir()), ["register", "status"]);
}

#[test]
fn writes_through_proc_pid_root_land_in_that_namespaces_instance() {
    let arm64 = fixture("arm64");
    let ns = PrivateBinfmt::new();
    // ns.dir() is /proc/<holder>/root/proc/sys/fs/binfmt_misc: written from out here.
    ns.register(&aarch64_rule("outside", QEMU_AARCH64, "F"));
    let inside = ns.tool("ls", &[HOST_BINFMT]);
    assert!(inside.stdout.lines().any(|l| l == "outside"), "{inside:?}");
    assert!(!host_entries().iter().any(|n| n == "outside"));
    ns.exec(&arm64, &[]).expect_code(42);
    ns.control("outside", "0");
    assert_exec_fails(&ns.exec(&arm64, &[]), Errno::ENOEXEC);
    ns.control("outside", "-1");
    let inside = ns.tool("ls", &[HOST_BINFMT]);
    assert_eq!(inside.stdout, "register\nstatus\n");
}

#[test]
fn an_ordinary_user_writes_its_own_instance_through_proc_pid_root() {
    require_root("acting as uid 65534");
    let arm64 = fixture("arm64");
    let mut cmd = as_nobody();
    cmd.args([
        "unshare",
        "--user",
        "--map-root-user",
        "--mount",
        "--fork",
        "sh",
        "-c",
    ])
    .arg(format!(
        "mount -t binfmt_misc binfmt_misc {HOST_BINFMT} || exit 1; {HOLD}"
    ));
    let holder = Holder::start(cmd);
    let rule = aarch64_rule("nobody", QEMU_AARCH64, "F");
    write_as_nobody(&holder.dir().join("register"), rule.as_bytes()).expect_code(0);
    holder.exec(&arm64).expect_code(42);
    write_as_nobody(&holder.dir().join("nobody"), b"0").expect_code(0);
    assert_exec_fails(&holder.exec(&arm64), Errno::ENOEXEC);
    write_as_nobody(&holder.dir().join("nobody"), b"-1").expect_code(0);
    assert_eq!(names(&holder.dir()), ["register", "status"]);
}

#[test]
fn unsharing_a_user_namespace_is_einval_while_a_second_thread_exists() {
    // This test's thread and the one spawned here (and the harness's) share the process.
    // Were the call to succeed, only the spawned thread's credentials would change, and it
    // ends at once.
    let tried = std::thread::spawn(|| nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER))
        .join()
        .expect("thread");
    assert_eq!(tried, Err(Errno::EINVAL));
    // A single-threaded process may: the refusal is the threads', not a policy's.
    Run::capture(Command::new("unshare").args(["--user", "true"])).expect_code(0);
}

#[test]
fn an_ordinary_users_gid_map_is_eperm_until_setgroups_is_denied() {
    require_root("acting as uid 65534");
    let mut cmd = as_nobody();
    cmd.args(["unshare", "--user", "sh", "-c", HOLD]);
    let holder = Holder::start(cmd);
    let proc = PathBuf::from(format!("/proc/{}", holder.pid));
    let r = write_as_nobody(&proc.join("gid_map"), b"0 65534 1\n");
    assert!(
        r.code == Some(1) && r.stderr.trim_end().ends_with("Operation not permitted"),
        "{r:?}"
    );
    write_as_nobody(&proc.join("setgroups"), b"deny").expect_code(0);
    write_as_nobody(&proc.join("gid_map"), b"0 65534 1\n").expect_code(0);
    let map = std::fs::read_to_string(proc.join("gid_map")).expect("read gid_map");
    assert_eq!(
        map.split_whitespace().collect::<Vec<_>>(),
        ["0", "65534", "1"]
    );
}

// §9 Mount detection and QEMU.

#[test]
fn binfmt_misc_has_the_statfs_magic_place_reads() {
    use binfmt_setup::binfmt::{BINFMT_MAGIC, Place, Registry};
    let ns = PrivateBinfmt::new();
    let r = ns.tool("stat", &["-f", "-c", "%t", HOST_BINFMT]);
    assert_eq!(r.stdout.trim(), "42494e4d", "{r:?}");
    assert_eq!(format!("{BINFMT_MAGIC:x}"), "42494e4d");
    assert_eq!(Registry::new(ns.dir()).place(), Place::Binfmt);
}

#[test]
fn qemu_ppc64_crashes_on_big_endian_elfv2_and_runs_elfv1() {
    // QEMU writes its own core file into the working directory.
    let cwd = tempfile::tempdir().expect("tempdir");
    let run = |name: &str| {
        Command::new("/usr/bin/qemu-ppc64-static")
            .arg(fixture(name))
            .current_dir(cwd.path())
            .stdin(Stdio::null())
            .output()
            .expect("run qemu-ppc64-static")
    };
    let v2 = run("ppc64-elfv2");
    let stderr = String::from_utf8_lossy(&v2.stderr);
    assert_eq!(v2.status.signal(), Some(nix::libc::SIGSEGV), "{stderr}");
    assert!(stderr.contains("uncaught target signal 11"), "{stderr}");
    assert_eq!(run("ppc64-elfv1").status.code(), Some(42));
}
