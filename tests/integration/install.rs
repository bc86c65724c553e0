//! `install`, `uninstall`, `status` against real private binfmt_misc instances.

use std::os::unix::fs::PermissionsExt;

use crate::util::{
    AARCH64_MAGIC, AARCH64_MASK, HOST_BINFMT, PrivateBinfmt, fixture, register_string,
};

/// Every entry file's exact bytes, by name.
fn entries(ns: &PrivateBinfmt) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = ns
        .listing()
        .into_iter()
        .filter(|n| n != "register" && n != "status")
        .map(|n| {
            let text = ns.tool("cat", &[&format!("{HOST_BINFMT}/{n}")]).stdout;
            (n, text)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn install_arm64_runs_a_real_program_and_status_shows_f() {
    let ns = PrivateBinfmt::new();
    ns.run(&["install", "--arch", "arm64"]).expect_code(0);
    ns.exec(fixture("arm64"), &[]).expect_code(42);
    let s = ns.run(&["status", "--json"]);
    let v = s.json();
    let e = v["entries"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["name"] == "qemu-aarch64"))
        .cloned()
        .expect("qemu-aarch64 entry");
    assert!(e["flags"].as_str().unwrap_or("").contains('F'), "{e}");
    assert_eq!(
        (
            e["owned"].as_bool(),
            e["arch"].as_str(),
            e["interpreter_ok"].as_bool()
        ),
        (Some(true), Some("arm64"), Some(true))
    );
    assert!(
        v["supported"]
            .as_array()
            .expect("supported")
            .iter()
            .any(|p| p == "linux/arm64")
    );
    assert!(v["emulators"].is_array());
}

#[test]
fn a_second_identical_install_changes_nothing() {
    let ns = PrivateBinfmt::new();
    ns.run(&["install", "--arch", "arm64,riscv64"])
        .expect_code(0);
    let before = entries(&ns);
    let r = ns.run(&["install", "--arch", "arm64,riscv64", "--json"]);
    r.expect_code(0);
    let v = r.json();
    assert_eq!(v["installed"].as_array().map(Vec::len), Some(0), "{v}");
    assert_eq!(v["unchanged"].as_array().map(Vec::len), Some(2), "{v}");
    assert_eq!(entries(&ns), before);
}

#[test]
fn sixteen_concurrent_installs_all_succeed_and_agree() {
    let single = PrivateBinfmt::new();
    single.run(&["install", "--arch", "all"]).expect_code(0);
    let want = entries(&single);
    assert!(
        want.len() > 20,
        "install all registered only {}",
        want.len()
    );

    let ns = PrivateBinfmt::new();
    let children: Vec<_> = (0..16)
        .map(|_| {
            ns.command(crate::util::bin())
                .args(["install", "--arch", "all"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{err}");
        assert!(!err.contains("File exists"), "{err}");
    }
    assert_eq!(entries(&ns), want);
}

#[test]
fn foreign_entries_are_never_touched() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let interp = dir.path().join("foreign-interp");
    std::fs::write(&interp, "#!/bin/sh\nexit 0\n").expect("write");
    std::fs::set_permissions(&interp, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let i = interp.display().to_string();
    let ns = PrivateBinfmt::new();
    ns.register(&format!(":jar:M::PK\\x03\\x04::{i}:"));
    ns.register(&format!(":python3.11:M::\\xa7\\x0d\\x0d\\x0a::{i}:"));
    // An x86_64 rule under another name, like Rosetta's. Registered disabled: enabled on an
    // amd64 host it would take every native program, this test's tools included.
    ns.register_disabled(
        "rosetta",
        &register_string(
            "rosetta",
            "7f454c4602010100000000000000000002003e00",
            "fffffffffffefe00fffffffffffffffffeffffff",
            &i,
            "",
        ),
    );
    ns.register(&register_string(
        "my-aarch64",
        AARCH64_MAGIC,
        AARCH64_MASK,
        &i,
        "",
    ));
    let before = entries(&ns);

    let r = ns.run(&["install", "--arch", "all", "--json"]);
    r.expect_code(0);
    let v = r.json();
    let skipped = v["skipped"].as_array().expect("skipped");
    assert!(
        skipped
            .iter()
            .any(|s| s["arch"] == "arm64"
                && s["reason"].as_str().unwrap_or("").contains("my-aarch64")),
        "{v}"
    );
    let after_install: Vec<_> = entries(&ns)
        .into_iter()
        .filter(|(n, _)| !n.starts_with("qemu-"))
        .collect();
    assert_eq!(after_install, before);

    ns.run(&["uninstall", "--arch", "all"]).expect_code(0);
    assert_eq!(
        entries(&ns),
        before,
        "uninstall left exactly the foreign entries"
    );
}

#[test]
fn bad_inputs_exit_2_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let writable = dir.path().join("qemu-writable");
    std::fs::copy("/usr/bin/qemu-aarch64-static", &writable).expect("copy");
    std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let w = format!("arm64={}", writable.display());
    // An arm64 program as the arm64 interpreter: the rule would take its own interpreter.
    let looping = format!("arm64={}", fixture("arm64").display());
    let ns = PrivateBinfmt::new();
    ns.run(&["install", "--arch", "riscv64"]).expect_code(0);
    let before = entries(&ns);
    for (args, want) in [
        (
            vec!["install", "--arch", "vax"],
            "unknown architecture 'vax'",
        ),
        (vec!["install", "--arch", "arm64,nope"], "'nope'"),
        (vec!["install", "--arch", ""], "unknown architecture"),
        (
            vec![
                "install",
                "--arch",
                "arm64",
                "--interpreter",
                "arm64=qemu-aarch64-static",
            ],
            "absolute",
        ),
        (
            vec![
                "install",
                "--arch",
                "arm64",
                "--interpreter",
                "arm64=/nonexistent/qemu",
            ],
            "/nonexistent/qemu",
        ),
        (
            vec![
                "install",
                "--arch",
                "arm64",
                "--interpreter",
                "arm64=/bin/true",
            ],
            "dynamically linked",
        ),
        (
            vec!["install", "--arch", "arm64", "--interpreter", &w],
            "writable by group or others",
        ),
        (
            vec!["install", "--arch", "arm64", "--interpreter", "arm64=/tmp"],
            "not a regular file",
        ),
        (
            vec!["install", "--arch", "arm64", "--interpreter", "nonsense"],
            "ARCH=PATH",
        ),
        (
            vec![
                "install",
                "--arch",
                "arm64",
                "--interpreter",
                "vax=/bin/true",
            ],
            "'vax'",
        ),
        (
            vec!["install", "--arch", "arm64", "--interpreter", &looping],
            "ELOOP",
        ),
        (vec!["uninstall", "--arch", "vax"], "'vax'"),
        (vec!["uninstall", "--name", "status"], "not an entry name"),
    ] {
        let r = ns.run(&args);
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains(want),
            "{args:?}: stderr lacks {want:?}: {}",
            r.stderr
        );
        assert!(
            r.stderr.trim().lines().count() <= 2,
            "{args:?}: one-line reason: {}",
            r.stderr
        );
        assert_eq!(entries(&ns), before, "{args:?} changed the instance");
    }
    // A bad flag: clap's message names it first, then shows the usage.
    let r = ns.run(&["install", "--arch", "arm64", "--bogus"]);
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.lines().next().unwrap_or("").contains("'--bogus'"),
        "{}",
        r.stderr
    );
    assert_eq!(entries(&ns), before);
}

#[test]
fn dry_run_prints_register_strings_and_writes_nothing() {
    let ns = PrivateBinfmt::new();
    let r = ns.run(&["install", "--arch", "arm64", "--dry-run"]);
    r.expect_code(0);
    assert!(
        r.stdout
            .starts_with(":qemu-aarch64:M:0:\\x7f\\x45\\x4c\\x46"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .trim_end()
            .ends_with(":/usr/bin/qemu-aarch64-static:F"),
        "{}",
        r.stdout
    );
    assert_eq!(ns.listing(), ["register", "status"]);
}

#[test]
fn the_hosts_own_architecture_is_skipped_with_a_reason() {
    let ns = PrivateBinfmt::new();
    let r = ns.run(&["install", "--arch", "amd64,386", "--json"]);
    r.expect_code(0);
    let v = r.json();
    let reasons: Vec<&str> = v["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .filter_map(|s| s["reason"].as_str())
        .collect();
    if std::env::consts::ARCH == "x86_64" {
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("host's own architecture")),
            "{v}"
        );
    }
    assert_eq!(ns.listing(), ["register", "status"], "{v}");
}
