//! What `C` gives away, measured (SECURITY.md, "C: what a setuid program through QEMU gives
//! away"): with a `POCF` handler the kernel runs QEMU itself with the setuid program's
//! credentials, and Debian's QEMU 7.2 still reads the caller's QEMU_* variables with plain
//! getenv (linux-user/main.c, parse_args). An unprivileged user can then make a root QEMU
//! write where only root may, load a loader of the user's choosing as root, and open a port.
//! The same program through an `F` handler runs as the user, and QEMU's writes fail.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::util::{PrivateBinfmt, Run, fixture};

/// uid 1000 runs `program` with `env` inside the instance.
fn as_user(ns: &PrivateBinfmt, env: &[(&str, &str)], program: &str) -> std::process::Command {
    let mut c = ns.command("setpriv");
    c.args(["--reuid=1000", "--regid=1000", "--clear-groups", "env"]);
    for (k, v) in env {
        c.arg(format!("{k}={v}"));
    }
    c.arg(program);
    c
}

fn setuid_root(dir: &Path, name: &str, from: &Path) -> String {
    let p = dir.join(name);
    std::fs::copy(from, &p).expect("copy");
    std::os::unix::fs::chown(&p, Some(0), Some(0)).expect("chown");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o4755)).expect("chmod");
    p.display().to_string()
}

/// Whether something listens on TCP `port` as uid `uid` (/proc/net/tcp, state 0A).
fn listening(port: u16, uid: u32) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 7
            && f[1].ends_with(&format!(":{port:04X}"))
            && f[3] == "0A"
            && f[7] == uid.to_string()
    })
}

#[test]
fn with_c_a_user_steers_a_root_qemu_and_without_c_cannot() {
    let ns = PrivateBinfmt::with_users().expect("a namespace mapping uids 0-65535 (root)");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let d = dir.path();
    // A directory only root may write; a loader of the user's own, in a prefix the user owns.
    let root_only = d.join("root-only");
    std::fs::create_dir(&root_only).expect("mkdir");
    std::fs::set_permissions(&root_only, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let prefix = d.join("prefix");
    std::fs::create_dir_all(prefix.join("lib")).expect("mkdir");
    let loader = prefix.join("lib/ld-linux-aarch64.so.1");
    std::fs::copy(fixture("arm64-euid"), &loader).expect("copy");
    for p in [&prefix, &prefix.join("lib"), &loader] {
        std::os::unix::fs::chown(p, Some(1000), Some(1000)).expect("chown");
    }
    let exit42 = setuid_root(d, "suid-static", &fixture("arm64"));
    let dynamic = setuid_root(d, "suid-dynamic", &fixture("arm64-dynamic"));
    let prefix = prefix.display().to_string();

    for (flags, with_c) in [("F", false), ("POCF", true)] {
        let mut args = vec!["install", "--arch", "arm64", "--no-preserve-argv0"];
        if with_c {
            args.push("--credential");
        }
        ns.run(&args).expect_code(0);
        assert!(
            ns.read("qemu-aarch64")
                .contains(&format!("flags: {}", flags.replace("P", "")))
        );

        // QEMU_LOG_FILENAME: where the log lands, and whose it is.
        let log = root_only.join(format!("log-{flags}"));
        let r = Run::capture(&mut as_user(
            &ns,
            &[
                ("QEMU_LOG", "in_asm"),
                ("QEMU_LOG_FILENAME", &log.display().to_string()),
            ],
            &exit42,
        ));
        if with_c {
            assert_eq!(r.code, Some(42), "{}", r.stderr);
            let meta = std::fs::metadata(&log).expect("QEMU as root wrote the log");
            assert_eq!(meta.uid(), 0, "written by root");
            let text = std::fs::read_to_string(&log).expect("log");
            assert!(text.contains("IN:"), "{text}");
        } else {
            assert!(r.stderr.contains("Permission denied"), "{}", r.stderr);
            assert!(!log.exists());
        }

        // QEMU_LD_PREFIX: the user's "loader" runs, and exits with its effective uid.
        let r = Run::capture(&mut as_user(&ns, &[("QEMU_LD_PREFIX", &prefix)], &dynamic));
        let want = if with_c { 0 } else { 1000 & 0xff };
        assert_eq!(
            r.code,
            Some(want),
            "the user's code ran as uid {want}: {}",
            r.stderr
        );

        // QEMU_GDB: QEMU waits for a debugger on the user's port, listening as root.
        let port = 40000 + (std::process::id() % 20000) as u16 + u16::from(with_c);
        let mut child = as_user(&ns, &[("QEMU_GDB", &port.to_string())], &exit42)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        let started = Instant::now();
        let mut seen = None;
        while started.elapsed() < Duration::from_secs(30) && seen.is_none() {
            seen = [0u32, 1000].into_iter().find(|uid| listening(port, *uid));
            if child.try_wait().expect("wait").is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        let want = if with_c { 0 } else { 1000 };
        assert_eq!(seen, Some(want), "port {port} listened to by uid {want}");
    }
}
