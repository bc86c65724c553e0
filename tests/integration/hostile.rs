//! Every input is hostile: the defect classes of a review with some 520 odd inputs, each
//! pinned by a test that failed before its fix, with inputs beyond the example the review
//! gave.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::util::{AARCH64_MAGIC, AARCH64_MASK, PrivateBinfmt, fixture, register_string, run};

/// A FIFO with no writer: opening it for reading blocks for ever.
fn fifo(dir: &Path) -> String {
    let p = dir.join("fifo");
    nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o644)).expect("mkfifo");
    p.display().to_string()
}

/// Class 1: a file that is not a regular one is never read without bound, and never
/// blocks: `test --binary` on a device or a FIFO is refused at once.
#[test]
fn test_binary_refuses_devices_and_fifos_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = fifo(dir.path());
    for (file, says) in [
        ("/dev/zero", "a device"),
        ("/dev/urandom", "a device"),
        (fifo.as_str(), "a FIFO"),
        ("/", "a directory"),
    ] {
        let started = Instant::now();
        let r = run(&["test", "--binary", file]);
        assert_eq!(r.code, Some(2), "{file}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{file}: {}", r.stderr);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{file} took too long"
        );
    }
}

/// Class 2: init refuses an export directory that cannot be one before it registers
/// anything.
#[test]
fn init_checks_the_export_directory_before_registering() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "x").expect("write");
    let ns = PrivateBinfmt::new();
    for target in [file.clone(), file.join("below")] {
        let config = dir.path().join("init.toml");
        std::fs::write(
            &config,
            format!(
                "architectures = [\"arm64\"]\n[export]\nformat = \"systemd\"\ndirectory = \"{}\"\n",
                target.display()
            ),
        )
        .expect("config");
        let r = ns.run(&["init", "--config", config.to_str().expect("utf-8")]);
        assert_eq!(r.code, Some(2), "{}: {}", target.display(), r.stderr);
        assert!(r.stderr.contains("not a directory"), "{}", r.stderr);
        assert_eq!(ns.listing(), ["register", "status"], "nothing registered");
    }
}

/// Class 4: a disabled entry of ours, and a disabled binfmt_misc, are enabled by install and
/// said so, not reported `unchanged` while nothing runs.
#[test]
fn install_enables_what_is_disabled_and_says_so() {
    let ns = PrivateBinfmt::new();
    ns.run(&["install", "--arch", "arm64"]).expect_code(0);
    ns.control("qemu-aarch64", "0");
    let r = ns.run(&["--json", "install", "--arch", "arm64"]);
    r.expect_code(0);
    let j = r.json();
    assert_eq!(j["enabled"], serde_json::json!(["qemu-aarch64"]), "{j}");
    assert_eq!(j["unchanged"], serde_json::json!([]), "{j}");
    ns.exec(fixture("arm64"), &[]).expect_code(42);

    ns.control("status", "0");
    let r = ns.run(&["install", "--arch", "arm64"]);
    r.expect_code(0);
    assert!(r.stdout.contains("enabled    status"), "{}", r.stdout);
    ns.exec(fixture("arm64"), &[]).expect_code(42);
}

/// Class 4: `--replace-foreign` names the other owner's entry it removed.
#[test]
fn replace_foreign_names_what_it_removed() {
    let ns = PrivateBinfmt::new();
    ns.register(&register_string(
        "someone-elses",
        AARCH64_MAGIC,
        AARCH64_MASK,
        "/usr/bin/qemu-aarch64-static",
        "F",
    ));
    let r = ns.run(&["--json", "install", "--arch", "arm64", "--replace-foreign"]);
    r.expect_code(0);
    let j = r.json();
    assert_eq!(
        j["removed_foreign"],
        serde_json::json!(["someone-elses"]),
        "{j}"
    );
    assert_eq!(j["replaced"], serde_json::json!(["qemu-aarch64"]), "{j}");
    ns.register(&register_string(
        "another-one",
        AARCH64_MAGIC,
        AARCH64_MASK,
        "/usr/bin/qemu-aarch64-static",
        "F",
    ));
    let r = ns.run(&["install", "--arch", "arm64", "--replace-foreign"]);
    r.expect_code(0);
    assert!(r.stdout.contains("removed    another-one"), "{}", r.stdout);
}

/// Class 4: `platforms` and `test` cannot run their probes from a noexec TMPDIR: that is the
/// environment's refusal (exit 3, naming the directory), not an empty list and exit 0.
#[test]
fn probes_that_cannot_run_are_an_error_not_an_empty_list() {
    let ns = PrivateBinfmt::new();
    let bin = crate::util::bin().display().to_string();
    for cmd in ["platforms", "test", "--json platforms"] {
        let r = ns.sh(&format!(
            "mount -t tmpfs -o noexec tmpfs /mnt && TMPDIR=/mnt {bin} {cmd}; code=$?; umount /mnt; exit $code"
        ));
        assert_eq!(r.code, Some(3), "{cmd}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains("/mnt") && r.stderr.contains("noexec"),
            "{}",
            r.stderr
        );
        if cmd.starts_with("--json") {
            let j = r.json();
            assert_eq!(j["error"]["exit_code"], 3, "{j}");
        } else {
            assert!(r.stdout.trim().is_empty(), "{cmd}: {}", r.stdout);
        }
    }
}

/// Class 5: with --json every outcome is one JSON document on stdout, argument errors and
/// bad input included.
#[test]
fn json_failures_are_one_json_document() {
    for (args, code) in [
        (vec!["--json", "inspect", "--bogus", "x"], 2),
        (vec!["inspect", "x", "--json", "--expect"], 2),
        (vec!["--json", "install", "--arch", "vax"], 2),
        (vec!["--json", "test", "--timeout", "0"], 2),
        (vec!["--json", "test", "--binary", "/dev/zero"], 2),
        (vec!["--json", "diagnose", "--root", "/nonexistent", "x"], 2),
        (vec!["--json", "scan", "/nonexistent"], 2),
    ] {
        let r = run(&args);
        assert_eq!(r.code, Some(code), "{args:?}: {}", r.stderr);
        let j = r.json();
        assert_eq!(j["error"]["exit_code"], code, "{args:?}: {j}");
        assert_eq!(j["error"]["class"], "bad_input", "{args:?}: {j}");
        assert!(
            !j["error"]["message"].as_str().unwrap_or("").is_empty(),
            "{args:?}: {j}"
        );
    }
}

/// Class 7: a message says its OS error once, in words, and names the input.
#[test]
fn messages_say_the_os_error_once_and_name_the_input() {
    for args in [
        vec!["test", "--binary", "/nonexistent/prog"],
        vec!["init", "--config", "/nonexistent/init.toml"],
        vec!["--arch-table", "/nonexistent/t.toml", "status"],
        vec!["scan", "/nonexistent/root"],
    ] {
        let r = run(&args);
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.stderr);
        assert!(!r.stderr.contains("os error"), "{args:?}: {}", r.stderr);
        assert_eq!(
            r.stderr.matches("No such file or directory").count(),
            1,
            "{args:?}: {}",
            r.stderr
        );
        assert!(r.stderr.contains("/nonexistent/"), "{args:?}: {}", r.stderr);
    }
}
