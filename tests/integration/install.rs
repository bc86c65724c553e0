//! `install`, `uninstall`, `status` against real private binfmt_misc instances.

use std::os::unix::fs::PermissionsExt;

use crate::util::{
    AARCH64_MAGIC, AARCH64_MASK, HOST_BINFMT, PrivateBinfmt, fixture, register_string, repo,
};

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
    let before = ns.entries();
    let r = ns.run(&["install", "--arch", "arm64,riscv64", "--json"]);
    r.expect_code(0);
    let v = r.json();
    assert_eq!(v["installed"].as_array().map(Vec::len), Some(0), "{v}");
    assert_eq!(v["unchanged"].as_array().map(Vec::len), Some(2), "{v}");
    assert_eq!(ns.entries(), before);
}

#[test]
fn sixteen_concurrent_installs_all_succeed_and_agree() {
    let single = PrivateBinfmt::new();
    single.run(&["install", "--arch", "all"]).expect_code(0);
    let want = single.entries();
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
    assert_eq!(ns.entries(), want);
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
    let before = ns.entries();

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
    let after_install: Vec<_> = ns
        .entries()
        .into_iter()
        .filter(|(n, _)| !n.starts_with("qemu-"))
        .collect();
    assert_eq!(after_install, before);

    ns.run(&["uninstall", "--arch", "all"]).expect_code(0);
    assert_eq!(
        ns.entries(),
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
    // Architecture tables that break the kernel's limits or our own rules.
    let table = |name: &str, edit: &dyn Fn(String) -> String| {
        let path = dir.path().join(name);
        let text = std::fs::read_to_string(repo().join("configs/arches.toml")).expect("table");
        std::fs::write(&path, edit(text)).expect("write table");
        path.display().to_string()
    };
    let arm64_row = "qemu = \"aarch64\"";
    let short_mask = table("short-mask.toml", &|t| {
        t.replacen(
            &format!("mask  = \"{AARCH64_MASK}\""),
            "mask  = \"ffff\"",
            1,
        )
    });
    let big_magic = table("big-magic.toml", &|t| {
        t.replacen(
            &format!("magic = \"{AARCH64_MAGIC}\""),
            &format!("magic = \"{}\"", "7f".repeat(300)),
            1,
        )
        .replacen(
            &format!("mask  = \"{AARCH64_MASK}\""),
            &format!("mask  = \"{}\"", "ff".repeat(300)),
            1,
        )
    });
    let slash_name = table("slash.toml", &|t| {
        t.replacen(arm64_row, "qemu = \"aarch/64\"", 1)
    });
    let long_name = table("long.toml", &|t| {
        t.replacen(arm64_row, &format!("qemu = \"{}\"", "a".repeat(300)), 1)
    });
    let unknown_key = table("unknown-key.toml", &|t| {
        t.replacen(arm64_row, "qemu = \"aarch64\"\ncolour = \"blue\"", 1)
    });
    let twin = table("twin.toml", &|t| {
        format!(
            "{t}\n[[arch]]\nname = \"arm64twin\"\nqemu = \"aarch64twin\"\nplatform = \"linux/arm64twin\"\nclass = 64\nendian = \"little\"\nmachine = [0xb7]\nflags = 0\nfamily = \"arm\"\nmagic = \"{AARCH64_MAGIC}\"\nmask  = \"{AARCH64_MASK}\"\n"
        )
    });
    let colon = dir.path().join("qemu:aarch64");
    std::fs::copy("/usr/bin/qemu-aarch64-static", &colon).expect("copy");
    let colon = format!("arm64={}", colon.display());
    // Owned by nobody: --credential must refuse it.
    let not_roots = dir.path().join("qemu-nobody");
    std::fs::copy("/usr/bin/qemu-aarch64-static", &not_roots).expect("copy");
    let chown = std::process::Command::new("chown")
        .args(["65534:65534", not_roots.to_str().expect("utf-8")])
        .status()
        .expect("chown");
    assert!(chown.success() || !crate::util::nix_is_root());
    let not_roots = format!("arm64={}", not_roots.display());
    let a_file = dir.path().join("a-file");
    std::fs::write(&a_file, "x").expect("write");
    let a_file = a_file.display().to_string();

    let ns = PrivateBinfmt::new();
    ns.run(&["install", "--arch", "riscv64"]).expect_code(0);
    let before = ns.entries();
    for (args, want) in [
        (
            vec!["--arch-table", &short_mask, "install", "--arch", "arm64"],
            "same length",
        ),
        (
            vec!["--arch-table", &big_magic, "install", "--arch", "arm64"],
            "256",
        ),
        (
            vec!["--arch-table", &slash_name, "install", "--arch", "arm64"],
            "qemu must be letters",
        ),
        (
            vec!["--arch-table", &long_name, "install", "--arch", "arm64"],
            "255 bytes",
        ),
        (
            vec!["--arch-table", &unknown_key, "install", "--arch", "arm64"],
            "colour",
        ),
        (
            vec![
                "--arch-table",
                "/nonexistent/arches.toml",
                "install",
                "--arch",
                "arm64",
            ],
            "/nonexistent/arches.toml",
        ),
        (
            vec![
                "--arch-table",
                &twin,
                "install",
                "--arch",
                "arm64,arm64twin",
                "--interpreter",
                "arm64twin=/usr/bin/qemu-aarch64-static",
            ],
            "overlap",
        ),
        (
            vec!["install", "--arch", "arm64", "--interpreter", &colon],
            "':'",
        ),
        (
            vec![
                "install",
                "--arch",
                "arm64",
                "--credential",
                "--interpreter",
                &not_roots,
            ],
            "root-owned",
        ),
        (
            vec!["export", "--format", "systemd", "--output", &a_file],
            "not a directory",
        ),
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
        assert_eq!(ns.entries(), before, "{args:?} changed the instance");
    }
    // A bad flag: clap's message names it first, then shows the usage.
    let r = ns.run(&["install", "--arch", "arm64", "--bogus"]);
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.lines().next().unwrap_or("").contains("'--bogus'"),
        "{}",
        r.stderr
    );
    assert_eq!(ns.entries(), before);
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
            .ends_with(":/usr/bin/qemu-aarch64-static:PF"),
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

/// The environment refuses: each is exit 3 with the reason, and nothing changes.
#[test]
fn a_refusing_environment_exits_3_and_changes_nothing() {
    // Read-only binfmt_misc.
    let ns = PrivateBinfmt::new();
    ns.run(&["install", "--arch", "riscv64"]).expect_code(0);
    let before = ns.entries();
    ns.sh(&format!("mount -o remount,ro {HOST_BINFMT}"))
        .expect_code(0);
    let r = ns.run(&["install", "--arch", "arm64"]);
    assert_eq!(r.code, Some(3), "read-only: {}", r.stderr);
    assert!(r.stderr.contains("Read-only"), "{}", r.stderr);
    let r = ns.run(&["uninstall", "--arch", "riscv64"]);
    assert_eq!(r.code, Some(3), "read-only uninstall: {}", r.stderr);
    assert_eq!(ns.entries(), before);

    // No permission: an ordinary user of the namespace cannot write `register`.
    crate::util::require_root("the unprivileged-user case (mapping users)");
    match PrivateBinfmt::with_users() {
        None => unreachable!("root maps users"),
        Some(ns) => {
            ns.run(&["install", "--arch", "riscv64"]).expect_code(0);
            let before = ns.entries();
            let r = ns.tool(
                "setpriv",
                &[
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                    "--",
                    crate::util::bin().to_str().expect("utf-8"),
                    "install",
                    "--arch",
                    "arm64",
                ],
            );
            assert_eq!(r.code, Some(3), "as nobody: {}", r.stderr);
            assert!(r.stderr.contains("Permission denied"), "{}", r.stderr);
            assert_eq!(ns.entries(), before);
        }
    }

    // Not mounted and not mountable: a plain directory, and a user who may not mount.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // As nobody when the tests run as root; else the tests' own user may not mount either.
    let r = crate::util::Run::capture(&mut crate::fleet_util::unprivileged(&[
        "--binfmt-dir",
        dir.path().to_str().expect("utf-8"),
        "install",
        "--arch",
        "arm64",
    ]));
    assert_eq!(r.code, Some(3), "unmountable: {}", r.stderr);
    assert!(r.stderr.contains("mounting it failed"), "{}", r.stderr);
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
}

/// P is added when a probe shows the interpreter hands the program its own argv[0], and not
/// for one that ignores it: a wrapper script that re-executes QEMU loses the kernel's hint,
/// so under P the program would get its own path as a first argument.
#[test]
fn p_is_added_only_when_the_interpreter_honours_it() {
    let ns = PrivateBinfmt::new();
    ns.run(&["install", "--arch", "arm64"]).expect_code(0);
    let status = ns.run(&["--json", "status"]).json();
    let flags = status["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["name"] == "qemu-aarch64")
        .map(|e| e["flags"].as_str().unwrap_or_default().to_string());
    assert_eq!(flags.as_deref(), Some("PF"), "{status}");
    let r = ns.run(&["--json", "test", "--arch", "arm64"]);
    r.expect_code(0);
    assert_eq!(r.json()["results"][0]["level"], 2, "{}", r.stdout);

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let wrapper = dir.path().join("qemu-wrapper");
    std::fs::write(
        &wrapper,
        "#!/bin/sh\nexec /usr/bin/qemu-riscv64-static \"$@\"\n",
    )
    .expect("write");
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let spec = format!("riscv64={}", wrapper.display());
    let r = ns.run(&[
        "--json",
        "install",
        "--arch",
        "riscv64",
        "--no-fix-binary",
        "--interpreter",
        &spec,
    ]);
    r.expect_code(0);
    let entry = ns.read("qemu-riscv64");
    assert!(entry.contains("flags: \n"), "{entry}");
    ns.run(&["test", "--arch", "riscv64", "--no-chroot"])
        .expect_code(0);
    // --no-preserve-argv0 leaves P off even where it would work.
    let r = ns.run(&[
        "install",
        "--arch",
        "s390x",
        "--no-preserve-argv0",
        "--dry-run",
    ]);
    assert!(r.stdout.trim_end().ends_with(":F"), "{}", r.stdout);
}

/// `all,-NAME` (asked of tonistiigi/binfmt since 2023): everything but what is named.
#[test]
fn all_minus_named_architectures_leaves_those_out() {
    let ns = PrivateBinfmt::new();
    let r = ns.run(&["--json", "install", "--arch", "all,-riscv64,-s390x"]);
    r.expect_code(0);
    let names: Vec<String> = ns.listing();
    assert!(names.contains(&"qemu-aarch64".to_string()), "{names:?}");
    assert!(!names.contains(&"qemu-riscv64".to_string()), "{names:?}");
    assert!(!names.contains(&"qemu-s390x".to_string()), "{names:?}");
    let r = ns.run(&["export", "--format", "register", "--arch", "all,-arm64"]);
    r.expect_code(0);
    assert!(!r.stdout.contains(":qemu-aarch64:"), "{}", r.stdout);
    assert!(r.stdout.contains(":qemu-riscv64:"), "{}", r.stdout);
    let r = ns.run(&["install", "--arch", "-riscv64"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("all,-riscv64"), "{}", r.stderr);
}

/// Inside a user namespace that maps a subordinate range (as `buildah unshare` or
/// rootlesskit make), the host's root-owned interpreters show as the overflow uid 65534.
/// Nobody inside can change them, so install accepts them there and says why; the handler
/// then runs programs.
#[test]
fn install_inside_a_subordinate_range_accepts_interpreters_owned_outside() {
    let ns = PrivateBinfmt::mapped("0 100000 65536");
    let r = ns.run_as_root(&["-v", "install", "--arch", "arm64"]);
    r.expect_code(0);
    assert!(
        r.stderr
            .contains("owned by an id outside this user namespace"),
        "{}",
        r.stderr
    );
    ns.exec(fixture("arm64"), &[]).expect_code(42);
    // --credential still needs a root-owned interpreter: one owned outside is not.
    let r = ns.run_as_root(&["install", "--arch", "riscv64", "--credential"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("--credential needs a root-owned"),
        "{}",
        r.stderr
    );
    // The namespace's own nobody (host uid 165534) shows as the same 65534, but its root
    // could change that file: refused.
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("qemu-riscv64-static");
    std::fs::copy("/usr/bin/qemu-riscv64-static", &copy).expect("copy qemu");
    std::os::unix::fs::chown(&copy, Some(165_534), Some(165_534)).expect("chown");
    let shown = dir.path().to_str().expect("utf-8 tempdir");
    let r = ns.run_as_root(&["--qemu-path", shown, "install", "--arch", "riscv64"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("owned by uid 65534"), "{}", r.stderr);
}
