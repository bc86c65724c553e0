//! `diagnose`: one test per cause code, each set up for real (fixture programs, registrations
//! in a private binfmt_misc instance, populated chroots, a noexec tmpfs), and each checked
//! against the kernel with `--run`: the errno exec really returns must be the predicted one.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::{
    AARCH64_MAGIC, AARCH64_MASK, HOST_BINFMT, PrivateBinfmt, fixture, fx, register_string,
};

/// `diagnose --json --run ARGS…` inside the instance. Checks the exit code against `ok`.
#[track_caller]
fn diagnose(ns: &PrivateBinfmt, args: &[&str]) -> Value {
    let mut all = vec!["diagnose", "--json", "--run"];
    all.extend_from_slice(args);
    let r = ns.run(&all);
    let v = r.json();
    let want = if v["ok"] == true && v["run"]["agrees"] != false {
        0
    } else {
        1
    };
    r.expect_code(want);
    v
}

/// The cause, the predicted errno (`None`: exec succeeds), and that the real run agreed.
#[track_caller]
fn expect(v: &Value, cause: &str, errno: Option<&str>) {
    assert_eq!(v["cause"], cause, "{v:#}");
    assert_eq!(v["ok"], cause == "OK", "{v:#}");
    let want = errno.map_or(Value::Null, Value::from);
    assert_eq!(v["errno"], want, "predicted errno: {v:#}");
    assert_eq!(v["run"]["errno"], want, "the kernel's errno: {v:#}");
    assert_eq!(v["run"]["agrees"], true, "{v:#}");
    assert!(v["message"].as_str().is_some_and(|m| m.len() > 10), "{v:#}");
    if cause != "OK" {
        assert!(v["fix"].as_str().is_some_and(|f| !f.is_empty()), "{v:#}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v:#}");
    }
}

/// Why a test took another branch or stopped early, on the test's stderr: a skip must be
/// visible, never silent.
#[allow(clippy::print_stderr)]
fn say(reason: &str) {
    eprintln!("{reason}");
}

/// A directory to populate as a root; world-searchable so any uid in any namespace gets in.
fn rootfs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// Copy `from` to `inside` below `root` with `mode`, creating directories.
fn put(root: &Path, inside: &str, from: &Path, mode: u32) -> PathBuf {
    let to = root.join(inside.trim_start_matches('/'));
    std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
    std::fs::copy(from, &to).expect("copy");
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode)).expect("chmod");
    to
}

/// Write `text` to `inside` below `root` with `mode`.
fn write(root: &Path, inside: &str, text: &[u8], mode: u32) -> PathBuf {
    let to = root.join(inside.trim_start_matches('/'));
    std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
    std::fs::write(&to, text).expect("write");
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode)).expect("chmod");
    to
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The aarch64 rule with an interpreter and flags, as a raw register string.
fn aarch64_rule(name: &str, interpreter: &str, flags: &str) -> String {
    register_string(name, AARCH64_MAGIC, AARCH64_MASK, interpreter, flags)
}

#[test]
fn ok_native_emulated_in_a_chroot_and_a_script() {
    let ns = PrivateBinfmt::new();
    let v = diagnose(&ns, &[&fx("amd64")]);
    expect(&v, "OK", None);
    assert_eq!(v["run"]["exit"], 42, "{v:#}");

    ns.run(&["install", "--arch", "arm64"]).expect_code(0);
    let v = diagnose(&ns, &[&fx("arm64")]);
    expect(&v, "OK", None);
    assert_eq!(
        (
            v["handler"].as_str(),
            v["platform"].as_str(),
            &v["run"]["exit"]
        ),
        (Some("qemu-aarch64"), Some("linux/arm64"), &Value::from(42)),
        "{v:#}"
    );

    // F: the interpreter works inside a root that lacks it.
    let root = rootfs();
    put(root.path(), "/bin/hello", &fixture("arm64"), 0o755);
    let v = diagnose(&ns, &["--root", &s(root.path()), "/bin/hello"]);
    expect(&v, "OK", None);
    assert_eq!(v["run"]["exit"], 42, "{v:#}");

    let v = diagnose(&ns, &[&fx("script-sh")]);
    expect(&v, "OK", None);
    assert_eq!(v["chain"][1]["path"], "/bin/sh", "{v:#}");
    assert_eq!(v["run"]["exit"], 42, "{v:#}");
}

#[test]
fn not_found_paths_commands_and_symlinks_resolved_inside_the_root() {
    let ns = PrivateBinfmt::new();
    let v = diagnose(&ns, &["/nonexistent/program"]);
    expect(&v, "NOT_FOUND", Some("ENOENT"));

    // A command not in PATH: nothing to execute, so no run.
    let v = ns
        .run(&["diagnose", "--json", "--run", "no-such-command-anywhere"])
        .expect_code(1)
        .json();
    assert_eq!(v["cause"], "NOT_FOUND", "{v:#}");
    assert!(v["run"].is_null(), "{v:#}");

    // An absolute symlink inside a root points into the root: /opt/app exists on neither.
    let root = rootfs();
    std::fs::create_dir_all(root.path().join("usr/local/bin")).expect("mkdir");
    std::os::unix::fs::symlink("/opt/app/server", root.path().join("usr/local/bin/server"))
        .expect("symlink");
    let v = diagnose(&ns, &["--root", &s(root.path()), "/usr/local/bin/server"]);
    expect(&v, "NOT_FOUND", Some("ENOENT"));
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .contains("/opt/app/server"),
        "{v:#}"
    );

    // Put the target in the root (not on the host): now the same link runs, and a command
    // is found through PATH inside the root.
    put(root.path(), "/opt/app/server", &fixture("amd64"), 0o755);
    let v = diagnose(&ns, &["--root", &s(root.path()), "/usr/local/bin/server"]);
    expect(&v, "OK", None);
    assert_eq!(v["resolved"], s(&root.path().join("opt/app/server")));
    put(
        root.path(),
        "/usr/bin/only-in-this-root",
        &fixture("amd64"),
        0o755,
    );
    let v = diagnose(&ns, &["--root", &s(root.path()), "only-in-this-root"]);
    expect(&v, "OK", None);
    assert_eq!(v["run"]["exit"], 42, "{v:#}");
}

#[test]
fn not_executable_for_root_and_for_another_user() {
    let ns = PrivateBinfmt::new();
    let dir = rootfs();
    let plain = put(dir.path(), "prog", &fixture("amd64"), 0o644);
    let v = diagnose(&ns, &[&s(&plain)]);
    expect(&v, "NOT_EXECUTABLE", Some("EACCES"));
    assert!(
        v["fix"].as_str().unwrap_or("").starts_with("chmod +x"),
        "{v:#}"
    );
    // A directory, even with every x bit: exec refuses it the same way.
    let v = diagnose(&ns, &[&s(dir.path())]);
    expect(&v, "NOT_EXECUTABLE", Some("EACCES"));

    // Owner-only execute: root may run it, uid 65534 may not (no namespace needed: this
    // reads an empty --binfmt-dir, never the host's binfmt_misc).
    let owner_only = put(dir.path(), "owner-only", &fixture("amd64"), 0o744);
    let empty = rootfs();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(crate::util::bin())
        .args(["diagnose", "--json", "--run", "--binfmt-dir"])
        .arg(empty.path())
        .arg(&owner_only)
        .env_remove("BINFMT_SETUP_DIR")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("setpriv");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    assert_eq!(out.status.code(), Some(1), "{v:#}");
    expect(&v, "NOT_EXECUTABLE", Some("EACCES"));
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .contains("neither its owner"),
        "{v:#}"
    );
    assert_eq!(v["fix"], format!("chmod o+x {}", s(&owner_only)));
}

#[test]
fn noexec_mount() {
    let ns = PrivateBinfmt::new();
    let dir = rootfs();
    let d = s(dir.path());
    let r = ns.sh(&format!(
        "mount -t tmpfs -o noexec tmpfs {d} && cp {} {d}/prog && chmod 755 {d}/prog",
        fx("amd64")
    ));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let v = diagnose(&ns, &[&format!("{d}/prog")]);
    expect(&v, "NOEXEC_MOUNT", Some("EACCES"));
    assert!(
        v["fix"].as_str().unwrap_or("").contains("remount,exec"),
        "{v:#}"
    );
}

#[test]
fn not_a_binary_text_object_and_empty() {
    let ns = PrivateBinfmt::new();
    let dir = rootfs();
    let text = write(dir.path(), "notes.txt", b"echo hello\n", 0o755);
    let object = put(dir.path(), "loong64.o", &fixture("loong64.o"), 0o755);
    let empty = write(dir.path(), "empty", b"", 0o755);
    for f in [&text, &object, &empty] {
        let v = diagnose(&ns, &[&s(f)]);
        expect(&v, "NOT_A_BINARY", Some("ENOEXEC"));
    }
}

#[test]
fn foreign_os_macho_pe_and_freebsd() {
    let ns = PrivateBinfmt::new();
    for f in [
        "macho-arm64",
        "macho-universal",
        "pe-x86_64.exe",
        "pe-aarch64.exe",
    ] {
        let v = diagnose(&ns, &[&fx(f)]);
        expect(&v, "FOREIGN_OS", Some("ENOEXEC"));
    }
    // Linux's ELF loader ignores the OS ABI: a FreeBSD amd64 program starts here, then its
    // FreeBSD system calls go wrong.
    let v = diagnose(&ns, &[&fx("freebsd-amd64")]);
    expect(&v, "FOREIGN_OS", None);
    assert!(v["run"]["exit"] != 42, "{v:#}");
}

#[test]
fn truncated_elf() {
    let ns = PrivateBinfmt::new();
    let dir = rootfs();
    for f in ["truncated-header", "truncated-phdrs"] {
        let p = put(dir.path(), f, &fixture(f), 0o755);
        let v = diagnose(&ns, &[&s(&p)]);
        expect(&v, "TRUNCATED", Some("ENOEXEC"));
    }
}

#[test]
fn binfmt_not_mounted() {
    let ns = PrivateBinfmt::new();
    let r = ns.sh(&format!("umount {HOST_BINFMT}"));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    // After the umount the directory shows what is beneath: the host's mount point. Where
    // the host has binfmt_misc mounted there, an empty directory stands for "not mounted".
    let empty = tempfile::tempdir().expect("tempdir");
    let shown = empty.path().display().to_string();
    let mut args = vec![];
    if ns.listing().iter().any(|n| n == "status") {
        args.extend(["--binfmt-dir", shown.as_str()]);
    }
    let arm64 = fx("arm64");
    args.push(&arm64);
    let v = diagnose(&ns, &args);
    expect(&v, "BINFMT_NOT_MOUNTED", Some("ENOEXEC"));
    assert!(
        v["fix"]
            .as_str()
            .unwrap_or("")
            .contains("binfmt-setup install --arch arm64"),
        "{v:#}"
    );
}

#[test]
fn binfmt_disabled() {
    let ns = PrivateBinfmt::new();
    ns.run(&["install", "--arch", "arm64"]).expect_code(0);
    ns.control("status", "0");
    let v = diagnose(&ns, &[&fx("arm64")]);
    expect(&v, "BINFMT_DISABLED", Some("ENOEXEC"));
    assert_eq!(v["fix"], format!("echo 1 > {HOST_BINFMT}/status"));
}

#[test]
fn no_handler() {
    let ns = PrivateBinfmt::new();
    let v = diagnose(&ns, &[&fx("arm64")]);
    expect(&v, "NO_HANDLER", Some("ENOEXEC"));
    let msg = v["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("an arm64 program") && msg.contains("this host is amd64"),
        "{v:#}"
    );
    assert!(
        v["fix"]
            .as_str()
            .unwrap_or("")
            .starts_with("binfmt-setup install --arch arm64"),
        "{v:#}"
    );
    // A handler for another arch changes nothing.
    ns.run(&["install", "--arch", "riscv64"]).expect_code(0);
    expect(
        &diagnose(&ns, &[&fx("arm64")]),
        "NO_HANDLER",
        Some("ENOEXEC"),
    );
}

#[test]
fn handler_disabled() {
    let ns = PrivateBinfmt::new();
    ns.run(&["install", "--arch", "arm64"]).expect_code(0);
    ns.control("qemu-aarch64", "0");
    let v = diagnose(&ns, &[&fx("arm64")]);
    expect(&v, "HANDLER_DISABLED", Some("ENOEXEC"));
    assert_eq!(v["fix"], format!("echo 1 > {HOST_BINFMT}/qemu-aarch64"));
}

#[test]
fn interpreter_missing_and_the_newest_enabled_entry_wins() {
    let ns = PrivateBinfmt::new();
    ns.run(&["install", "--arch", "arm64"]).expect_code(0);
    // Registered after the good one, so the kernel tries it first (no F: a missing path is
    // accepted at registration).
    ns.register(&aarch64_rule(
        "broken-arm64",
        "/nonexistent/qemu-aarch64-static",
        "",
    ));
    let v = diagnose(&ns, &[&fx("arm64")]);
    expect(&v, "INTERPRETER_MISSING", Some("ENOENT"));
    assert_eq!(v["handler"], "broken-arm64", "{v:#}");
    // Disabled, the older, working entry takes over.
    ns.control("broken-arm64", "0");
    let v = diagnose(&ns, &[&fx("arm64")]);
    expect(&v, "OK", None);
    assert_eq!(v["handler"], "qemu-aarch64", "{v:#}");
}

#[test]
fn interpreter_not_in_root() {
    let ns = PrivateBinfmt::new();
    ns.run(&["install", "--arch", "arm64", "--no-fix-binary"])
        .expect_code(0);
    let root = rootfs();
    put(root.path(), "/bin/hello", &fixture("arm64"), 0o755);
    let r = s(root.path());
    let v = diagnose(&ns, &["--root", &r, "/bin/hello"]);
    expect(&v, "INTERPRETER_NOT_IN_ROOT", Some("ENOENT"));
    // Outside the root the same handler works.
    expect(&diagnose(&ns, &[&fx("arm64")]), "OK", None);
    // The fix that copies the interpreter in, done for real.
    put(
        root.path(),
        "/usr/bin/qemu-aarch64-static",
        Path::new("/usr/bin/qemu-aarch64-static"),
        0o755,
    );
    let v = diagnose(&ns, &["--root", &r, "/bin/hello"]);
    expect(&v, "OK", None);
    assert_eq!(v["run"]["exit"], 42, "{v:#}");
}

#[test]
fn interpreter_dynamic() {
    // Debian's qemu-user (scripts/setup.sh installs it) is the dynamically linked build.
    let dynamic = "/usr/bin/qemu-aarch64";
    assert!(
        Path::new(dynamic).exists(),
        "{dynamic} is missing: scripts/setup.sh installs it (Debian package qemu-user)"
    );
    let ns = PrivateBinfmt::new();
    ns.register(&aarch64_rule("qemu-aarch64", dynamic, "F"));
    let root = rootfs();
    put(root.path(), "/bin/hello", &fixture("arm64"), 0o755);
    let v = diagnose(&ns, &["--root", &s(root.path()), "/bin/hello"]);
    expect(&v, "INTERPRETER_DYNAMIC", Some("ENOENT"));
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .contains("/lib64/ld-linux-x86-64.so.2"),
        "{v:#}"
    );
    assert!(
        v["fix"].as_str().unwrap_or("").contains("qemu-user-static"),
        "{v:#}"
    );
    // On the host, where its libraries are, the same handler works, with a warning.
    let v = diagnose(&ns, &[&fx("arm64")]);
    expect(&v, "OK", None);
    assert!(
        v["notes"][0]
            .as_str()
            .unwrap_or("")
            .contains("dynamically linked"),
        "{v:#}"
    );

    // With the amd64 loader in the root, exec succeeds and the loader fails on the
    // libraries instead.
    let loader = "/lib64/ld-linux-x86-64.so.2";
    put(
        root.path(),
        loader,
        &std::fs::canonicalize(loader).expect("loader"),
        0o755,
    );
    let v = diagnose(&ns, &["--root", &s(root.path()), "/bin/hello"]);
    expect(&v, "INTERPRETER_DYNAMIC", None);
    assert_eq!(v["run"]["exit"], 127, "{v:#}");
    assert!(
        v["run"]["stderr"]
            .as_str()
            .unwrap_or("")
            .contains("error while loading shared libraries"),
        "{v:#}"
    );
    // Every library ldd names, copied to the same place: now the dynamic QEMU runs there.
    let ldd = std::process::Command::new("ldd")
        .arg(dynamic)
        .output()
        .expect("ldd");
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let Some(lib) = line.split_whitespace().find(|w| w.starts_with('/')) else {
            continue;
        };
        put(
            root.path(),
            lib,
            &std::fs::canonicalize(lib).expect("lib"),
            0o755,
        );
    }
    let v = diagnose(&ns, &["--root", &s(root.path()), "/bin/hello"]);
    expect(&v, "OK", None);
    assert_eq!(v["run"]["exit"], 42, "{v:#}");
}

#[test]
fn loader_missing_native_and_emulated() {
    let ns = PrivateBinfmt::new();
    // A dynamically linked amd64 program in a root without /lib64/ld-linux-x86-64.so.2:
    // the kernel says ENOENT although the file is there.
    let root = rootfs();
    let r = s(root.path());
    let env = std::fs::canonicalize("/usr/bin/env").expect("env");
    put(root.path(), "/bin/env", &env, 0o755);
    let v = diagnose(&ns, &["--root", &r, "/bin/env"]);
    expect(&v, "LOADER_MISSING", Some("ENOENT"));
    assert_eq!(v["chain"][1]["role"], "loader", "{v:#}");

    // An arm64 program under an F handler: the kernel starts QEMU, which cannot open the
    // arm64 loader in the root.
    ns.run(&["install", "--arch", "arm64"]).expect_code(0);
    put(root.path(), "/bin/dyn", &fixture("arm64-dynamic"), 0o755);
    let v = diagnose(&ns, &["--root", &r, "/bin/dyn"]);
    expect(&v, "LOADER_MISSING", None);
    assert!(
        v["fix"].as_str().unwrap_or("").contains("libc6:arm64"),
        "{v:#}"
    );
    let stderr = v["run"]["stderr"].as_str().unwrap_or("");
    assert!(
        stderr.contains("Could not open '/lib/ld-linux-aarch64.so.1'"),
        "{v:#}"
    );
}

#[test]
fn shebang_interpreter_missing_direct_and_through_env() {
    let ns = PrivateBinfmt::new();
    let v = diagnose(&ns, &[&fx("script-missing")]);
    expect(&v, "SHEBANG_INTERPRETER_MISSING", Some("ENOENT"));
    assert_eq!(v["chain"][1]["path"], "/nonexistent/interpreter", "{v:#}");
    // env starts, then finds nothing in PATH: exec succeeds, env exits 127.
    let dir = rootfs();
    let script = write(
        dir.path(),
        "tool",
        b"#!/usr/bin/env no-such-interpreter-here\n",
        0o755,
    );
    let v = diagnose(&ns, &[&s(&script)]);
    expect(&v, "SHEBANG_INTERPRETER_MISSING", None);
    assert_eq!(v["run"]["exit"], 127, "{v:#}");
}

#[test]
fn shebang_crlf() {
    let ns = PrivateBinfmt::new();
    let v = diagnose(&ns, &[&fx("script-crlf")]);
    expect(&v, "SHEBANG_CRLF", Some("ENOENT"));
    assert!(
        v["fix"]
            .as_str()
            .unwrap_or("")
            .starts_with("sed -i 's/\\r$//' "),
        "{v:#}"
    );
    // With an argument the CR lands in it instead: env starts and fails on "sh\r".
    let dir = rootfs();
    let script = write(
        dir.path(),
        "env-crlf",
        b"#!/usr/bin/env sh\r\nexit 42\r\n",
        0o755,
    );
    let v = diagnose(&ns, &[&s(&script)]);
    expect(&v, "SHEBANG_CRLF", None);
    assert_eq!(v["run"]["exit"], 127, "{v:#}");
}

#[test]
fn unsupported_arch() {
    let ns = PrivateBinfmt::new();
    // Even with the arm64 handler: ILP32 is a 32-bit ELF its rule does not take, and QEMU
    // has no emulator for it.
    ns.run(&["install", "--arch", "arm64"]).expect_code(0);
    let v = diagnose(&ns, &[&fx("arm64-ilp32")]);
    expect(&v, "UNSUPPORTED_ARCH", Some("ENOEXEC"));
}

/// x32 is an ABI of amd64 hosts only.
#[cfg(target_arch = "x86_64")]
#[test]
fn host_abi_unsupported_x32() {
    let ns = PrivateBinfmt::new();
    // Ask the kernel first: if it runs x32, there is nothing to diagnose here.
    let native = ns.exec(fixture("x32"), &[]);
    if native.code == Some(42) {
        say("this kernel runs x32 (CONFIG_X86_X32_ABI=y): diagnose must say OK");
        expect(&diagnose(&ns, &[&fx("x32")]), "OK", None);
        return;
    }
    let v = diagnose(&ns, &[&fx("x32")]);
    expect(&v, "HOST_ABI_UNSUPPORTED", Some("ENOEXEC"));
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .contains("was refused by this kernel"),
        "{v:#}"
    );
}

#[test]
fn human_output_and_bad_input() {
    let ns = PrivateBinfmt::new();
    let r = ns.run(&["diagnose", "--run", &fx("arm64")]);
    r.expect_code(1);
    for want in [
        "NO_HANDLER",
        "you see:  Exec format error (ENOEXEC)",
        "fix:      binfmt-setup install --arch arm64",
        "as predicted",
    ] {
        assert!(r.stdout.contains(want), "{want:?} missing:\n{}", r.stdout);
    }
    ns.run(&["diagnose"]).expect_code(2);
    ns.run(&["diagnose", "--root", "/nonexistent-root", "sh"])
        .expect_code(2);
    ns.run(&["diagnose", "--root", &fx("amd64"), "sh"])
        .expect_code(2);
}

#[test]
fn run_with_root_needs_chroot_permission() {
    let root = rootfs();
    put(root.path(), "/bin/hello", &fixture("amd64"), 0o755);
    let empty = rootfs();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(crate::util::bin())
        .args(["diagnose", "--run", "--binfmt-dir"])
        .arg(empty.path())
        .arg("--root")
        .arg(root.path())
        .arg("/bin/hello")
        .env_remove("BINFMT_SETUP_DIR")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("setpriv");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("cannot chroot"), "{stderr}");
}
