//! `test` and `platforms`: generated probes executed through real handlers in private
//! instances, in empty chroots.

use std::os::unix::fs::PermissionsExt;

use crate::util::{AARCH64_MAGIC, AARCH64_MASK, PrivateBinfmt, fixture, fx, register_string};

fn results(r: &crate::util::Run) -> Vec<serde_json::Value> {
    r.json()["results"].as_array().expect("results").clone()
}

fn result_for<'a>(rs: &'a [serde_json::Value], arch: &str) -> &'a serde_json::Value {
    rs.iter()
        .find(|r| r["arch"] == arch)
        .unwrap_or_else(|| panic!("no result for {arch}: {rs:?}"))
}

#[test]
fn after_install_all_every_installed_architecture_passes() {
    let ns = PrivateBinfmt::new();
    let installed = ns.run(&["--json", "install", "--arch", "all"]);
    installed.expect_code(0);
    let names: Vec<String> = installed.json()["installed"]
        .as_array()
        .expect("installed")
        .iter()
        .map(|n| n.as_str().expect("name").to_string())
        .collect();
    assert!(names.len() >= 25, "{names:?}");

    let r = ns.run(&["--json", "test"]);
    r.expect_code(0);
    let rs = results(&r);
    for name in &names {
        let hit = rs
            .iter()
            .find(|x| x["handler"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} was not tested: {rs:?}"));
        assert_eq!(hit["ok"], true, "{hit}");
        assert!(hit["level"].as_u64() >= Some(1), "{hit}");
        assert!(hit["error"].is_null(), "{hit}");
    }
    // The host's own arch runs natively and keeps its argv[0].
    let amd64 = result_for(&rs, "amd64");
    if std::env::consts::ARCH == "x86_64" {
        assert_eq!(
            (&amd64["handler"], &amd64["level"]),
            (&"native".into(), &2.into())
        );
    }
    let supported = r.json()["supported"].clone();
    for p in [
        "linux/arm64",
        "linux/riscv64",
        "linux/arm/v7",
        "linux/s390x",
    ] {
        assert!(
            supported
                .as_array()
                .expect("supported")
                .iter()
                .any(|s| s == p),
            "{p} missing from {supported}"
        );
    }

    // platforms: the same proof, as buildx takes it.
    let p = ns.run(&["platforms"]);
    p.expect_code(0);
    let list = p.stdout.trim();
    assert!(
        !list.contains(' ') && list.contains("linux/arm64,"),
        "{list}"
    );
    assert!(list.split(',').any(|x| x == "linux/riscv64"), "{list}");
}

#[test]
fn without_a_handler_the_failure_names_the_cause_and_the_fix() {
    let ns = PrivateBinfmt::new();
    ns.run(&["install", "--arch", "arm64,riscv64"])
        .expect_code(0);
    ns.run(&["uninstall", "--arch", "arm64"]).expect_code(0);
    let r = ns.run(&["--json", "test", "--arch", "arm64"]);
    r.expect_code(1);
    let rs = results(&r);
    let arm64 = result_for(&rs, "arm64");
    assert_eq!(arm64["ok"], false);
    let err = arm64["error"].as_str().expect("error");
    assert!(
        err.contains("no handler for arm64") && err.contains("install --arch arm64"),
        "{err}"
    );
    // Human output says the same on one line.
    let r = ns.run(&["test", "--arch", "arm64,riscv64"]);
    r.expect_code(1);
    assert!(
        r.stdout.contains("FAIL arm64") && r.stdout.contains("Exec format error"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("ok   riscv64"), "{}", r.stdout);
}

#[test]
fn a_handler_without_f_fails_in_the_chroot_and_says_f_is_missing() {
    let ns = PrivateBinfmt::new();
    ns.run(&["install", "--arch", "arm64", "--no-fix-binary"])
        .expect_code(0);
    let r = ns.run(&["--json", "test", "--arch", "arm64"]);
    r.expect_code(1);
    let rs = results(&r);
    let err = result_for(&rs, "arm64")["error"]
        .as_str()
        .expect("error")
        .to_string();
    assert!(err.contains("no F flag") && err.contains("chroot"), "{err}");
    // Outside a chroot the interpreter's path exists, so the same handler works.
    ns.run(&["test", "--arch", "arm64", "--no-chroot"])
        .expect_code(0);
}

/// Interpreters that are not QEMU: one exits 1, one dies of a signal. Scripts, so they run
/// outside a chroot only (their own `#!` interpreter is not in an empty root).
#[test]
fn a_broken_interpreter_is_reported_as_broken() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // arm64's probe is joined to its level probe, which exits 100 + a mask: 127 lies in that
    // range, and still proves neither the handler nor a level.
    for (name, body) in [
        ("exits-1", "#!/bin/sh\necho 'not an emulator' >&2\nexit 1\n"),
        ("exits-127", "#!/bin/sh\nexit 127\n"),
        ("crashes", "#!/bin/sh\nkill -SEGV $$\n"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, body).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let ns = PrivateBinfmt::new();
        ns.register(&register_string(
            "qemu-aarch64",
            AARCH64_MAGIC,
            AARCH64_MASK,
            path.to_str().expect("utf-8"),
            "",
        ));
        let r = ns.run(&["--json", "test", "--arch", "arm64", "--no-chroot"]);
        r.expect_code(1);
        let rs = results(&r);
        let err = result_for(&rs, "arm64")["error"]
            .as_str()
            .expect("error")
            .to_string();
        let want = match name {
            "exits-1" => "exited 1 instead of running the program (not an emulator)",
            "exits-127" => "exited 127 instead of running the program",
            _ => "was killed by SIGSEGV",
        };
        assert!(
            err.contains(want) && err.contains(path.to_str().expect("utf-8")),
            "{name}: {err}"
        );
        assert!(
            result_for(&rs, "arm64")["levels"].is_null(),
            "{name}: no level is proven: {rs:?}"
        );
    }
}

#[test]
fn a_p_handler_hands_on_argv0_for_level_2() {
    let ns = PrivateBinfmt::new();
    ns.register(&register_string(
        "qemu-aarch64",
        AARCH64_MAGIC,
        AARCH64_MASK,
        "/usr/bin/qemu-aarch64-static",
        "PF",
    ));
    let r = ns.run(&["--json", "test", "--arch", "arm64"]);
    r.expect_code(0);
    let rs = results(&r);
    assert_eq!(result_for(&rs, "arm64")["level"], 2, "{rs:?}");
}

#[test]
fn test_binary_runs_the_users_own_program_the_same_way() {
    let ns = PrivateBinfmt::new();
    let r = ns.run(&["test", "--binary", &fx("arm64")]);
    r.expect_code(1);
    assert!(r.stdout.contains("no handler for arm64"), "{}", r.stdout);
    ns.run(&["install", "--arch", "arm64"]).expect_code(0);
    let r = ns.run(&["--json", "test", "--binary", &fx("arm64")]);
    r.expect_code(0);
    let j = r.json();
    assert_eq!(
        (&j["exit_code"], &j["result"]["handler"]),
        (&42.into(), &"qemu-aarch64".into()),
        "{j}"
    );
    let _ = fixture("arm64");
}

#[test]
fn bad_test_arguments_exit_2() {
    let ns = PrivateBinfmt::new();
    for args in [
        vec!["test", "--arch", "vax"],
        vec!["test", "--timeout", "0"],
        vec!["test", "--timeout", "-1"],
        vec!["test", "--binary", "/nonexistent/program"],
        vec!["test", "--arch", "arm64", "--binary", "/bin/true"],
    ] {
        let r = ns.run(&args);
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.stderr);
    }
}

/// Regression: the probe runner read a program's output only after it had exited, so one
/// that wrote more than a pipe holds (64 KiB) blocked, and `test --binary` reported "no
/// answer within …" for a program that had done nothing wrong.
#[test]
fn regression_a_program_writing_200_kb_is_drained_while_it_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chatty = dir.path().join("chatty");
    std::fs::write(
        &chatty,
        "#!/bin/sh\nhead -c 204800 /dev/zero\necho done >&2\n",
    )
    .expect("write");
    std::fs::set_permissions(&chatty, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let shown = chatty.display().to_string();
    let r = crate::util::run(&[
        "--json",
        "test",
        "--binary",
        &shown,
        "--no-chroot",
        "--timeout",
        "20",
    ]);
    r.expect_code(0);
    let j = r.json();
    assert_eq!(j["exit_code"], 0, "{j}");
    assert_eq!(j["result"]["ok"], true, "{j}");
    assert_eq!(j["stderr"], "done\n", "{j}");
}

/// A QEMU's version and its answer to a `QEMU_CPU` lift are kept for later runs under the
/// interpreter file the kernel runs (seen through each probe's /proc/PID/exe), and stand
/// only while the handler's path names that very file: an `F` handler keeps the file it
/// opened when registered, whatever its path names now.
#[test]
fn kept_qemu_answers_stand_only_for_the_file_the_handler_runs() {
    let ns = PrivateBinfmt::new();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let a = dir.path().join("a");
    std::fs::create_dir(&a).expect("mkdir");
    std::fs::set_permissions(&a, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = a.join("qemu-ppc64le-static");
    let other = dir.path().join("other-qemu");
    for to in [&path, &other] {
        std::fs::copy("/usr/bin/qemu-ppc64le-static", to).expect("copy qemu");
    }
    let qemu_path = a.to_str().expect("utf-8");
    let install = || {
        ns.run(&["--qemu-path", qemu_path, "uninstall", "--arch", "ppc64le"]);
        ns.run(&["--qemu-path", qemu_path, "install", "--arch", "ppc64le"])
            .expect_code(0);
    };
    let test = || {
        let r = ns.run(&["-vv", "test", "--arch", "ppc64le"]);
        r.expect_code(0);
        assert!(
            r.stdout.contains("QEMU 7.2") && r.stdout.contains("power10"),
            "{}",
            r.stdout
        );
        let version = r
            .stderr
            .contains("QEMU_VERSION=1: kept from an earlier run");
        let lift = r
            .stderr
            .contains("QEMU_CPU=power10: kept from an earlier run");
        (version, lift, r.stderr)
    };
    install();
    let (version, lift, log) = test();
    assert!(!version && !lift, "nothing kept yet for this file:\n{log}");
    let (version, lift, log) = test();
    assert!(
        version && lift,
        "the second run uses what the first kept:\n{log}"
    );

    // The path now names another file; the kernel still runs the one it opened.
    let bind = format!("mount --bind {} {}", other.display(), path.display());
    let r = ns.sh(&bind);
    assert_eq!(r.code, Some(0), "{bind}: {}", r.stderr);
    for _ in 0..2 {
        let (version, lift, log) = test();
        assert!(!version && !lift, "the path's file was never run:\n{log}");
    }
    // Registered again, the kernel runs that other file, and its answers are kept; with the
    // bind gone the path names the first file again, whose answers are kept, but the kernel
    // runs the other one: nothing kept for the first stands.
    install();
    test();
    let (version, lift, _) = test();
    assert!(version && lift);
    // Lazily: the handler holds the bound file open.
    ns.sh(&format!("umount -l {}", path.display()))
        .expect_code(0);
    // The first file's version is found, and then refused: the probe ran the other file.
    let (_, lift, log) = test();
    assert!(!lift, "{log}");
    assert!(
        log.contains("a kept QEMU version is not used: the handler ran another file"),
        "{log}"
    );
}
