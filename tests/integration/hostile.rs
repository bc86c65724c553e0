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

/// Class 3: a `--binfmt-dir` that is not binfmt_misc is never written to or read as one,
/// and binfmt_misc is mounted only on an empty directory.
#[test]
fn a_binfmt_dir_that_is_not_binfmt_misc_is_never_written_or_mounted_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let plain = dir.path().join("plain");
    std::fs::create_dir(&plain).expect("mkdir");
    let register = plain.join("register");
    std::fs::write(&register, "keep me\n").expect("write");
    std::fs::write(plain.join("status"), "enabled\n").expect("write");
    let passwd = plain.join("passwd");
    std::fs::write(&passwd, "root:x:0:0\n").expect("write");
    std::fs::write(
        plain.join("qemu-aarch64"),
        "enabled\ninterpreter /x\nflags: F\noffset 0\nmagic 7f454c46\n",
    )
    .expect("write");
    let p = plain.to_str().expect("utf-8");
    let ns = PrivateBinfmt::new();
    for args in [
        vec!["--binfmt-dir", p, "install", "--arch", "arm64"],
        vec!["--binfmt-dir", p, "uninstall", "--name", "passwd"],
        vec!["--binfmt-dir", p, "uninstall", "--arch", "arm64"],
        vec!["--binfmt-dir", p, "init"],
    ] {
        // Inside a user namespace, where a mount would be allowed: it must not be made.
        let r = ns.run(&args);
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("is not binfmt_misc"),
            "{args:?}: {}",
            r.stderr
        );
        let mounts = ns.tool("cat", &["/proc/self/mountinfo"]).stdout;
        assert!(!mounts.contains(p), "{args:?} mounted over {p}");
    }
    assert_eq!(
        std::fs::read_to_string(&register).expect("read"),
        "keep me\n"
    );
    assert_eq!(
        std::fs::read_to_string(&passwd).expect("read"),
        "root:x:0:0\n"
    );
    // Read as what it is: no binfmt_misc, no entries, whatever its files say.
    let j = run(&["--json", "--binfmt-dir", p, "status"]).json();
    assert_eq!(j["binfmt_misc"]["mounted"], false, "{j}");
    assert_eq!(j["entries"], serde_json::json!([]), "{j}");
    // An empty directory is where binfmt_misc may be mounted.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let e = empty.to_str().expect("utf-8");
    ns.run(&["--binfmt-dir", e, "install", "--arch", "arm64"])
        .expect_code(0);
}

/// Class 1, every file-taking argument and option of every command: given a FIFO (with no
/// writer: opening it would block), a device that never ends (/dev/zero), or a symlink to
/// the FIFO, each finishes at once with its documented code and says what the file is. No
/// command blocks, and none reads a device.
#[test]
fn every_file_argument_refuses_fifos_and_devices_without_blocking() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let fifo = fifo(dir.path());
    let link = dir.path().join("link-to-fifo");
    std::os::unix::fs::symlink(&fifo, &link).expect("symlink");
    let link = link.display().to_string();
    // `@` stands for the odd file. The code is what each documents: 2 bad input, except
    // diagnose, for which a FIFO or a device is a finding (exec refuses it: EACCES) and so 1,
    // and status, which reads a non-binfmt_misc directory as nothing mounted there.
    let cases: &[(&[&str], i32)] = &[
        (&["inspect", "@"], 2),
        (&["--arch-table", "@", "status"], 2),
        (&["--binfmt-dir", "@", "install", "--arch", "arm64"], 2),
        (&["--binfmt-dir", "@", "uninstall", "--arch", "arm64"], 2),
        (&["--binfmt-dir", "@", "status"], 0),
        (&["--qemu-path", "@", "install", "--arch", "arm64"], 2),
        (
            &["install", "--arch", "arm64", "--interpreter", "arm64=@"],
            2,
        ),
        (
            &[
                "export", "--format", "systemd", "--arch", "arm64", "--output", "@",
            ],
            2,
        ),
        (
            &[
                "export",
                "--format",
                "systemd",
                "--arch",
                "arm64",
                "--interpreter",
                "arm64=@",
            ],
            2,
        ),
        (&["test", "--binary", "@"], 2),
        (&["diagnose", "@"], 1),
        (&["diagnose", "--root", "@", "/bin/sh"], 2),
        (
            &["run", "--arch", "arm64", "--rootfs", "@", "--", "/bin/sh"],
            2,
        ),
        (&["run", "--arch", "arm64", "--", "@"], 2),
        (&["init", "--config", "@"], 2),
        (&["scan", "@"], 2),
        (&["scan", "docker-archive:@"], 2),
        (&["scan", "oci:@"], 2),
        (
            &["scan", "--authfile", "@", "docker://127.0.0.1:9/app:1"],
            2,
        ),
        (
            &["scan", "--cert-dir", "@", "docker://127.0.0.1:9/app:1"],
            2,
        ),
    ];
    let ns = PrivateBinfmt::new();
    for (args, code) in cases {
        for odd in [fifo.as_str(), "/dev/zero", link.as_str()] {
            let args: Vec<String> = args.iter().map(|a| a.replace('@', odd)).collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let r = ns.run_within(Duration::from_secs(30), &args);
            assert_eq!(r.code, Some(*code), "{args:?}:\n{}{}", r.stdout, r.stderr);
            if *code != 0 {
                let said = format!("{}{}", r.stdout, r.stderr);
                assert!(
                    [
                        "FIFO",
                        "device",
                        "not a directory",
                        "not binfmt_misc",
                        "not a regular file",
                        "not an executable",
                        "no interpreter"
                    ]
                    .iter()
                    .any(|w| said.contains(w)),
                    "{args:?} does not say what the file is:\n{said}"
                );
            }
        }
    }
    // The config's own paths, too.
    for key in ["interpreters = { arm64 = \"@\" }", "qemu_paths = [\"@\"]"] {
        for odd in [fifo.as_str(), "/dev/zero", link.as_str()] {
            let config = dir.path().join("odd.toml");
            std::fs::write(
                &config,
                format!("architectures = [\"arm64\"]\n{}\n", key.replace('@', odd)),
            )
            .expect("config");
            let r = ns.run_within(
                Duration::from_secs(30),
                &["init", "--config", config.to_str().expect("utf-8")],
            );
            assert_eq!(r.code, Some(2), "{key} = {odd}: {}", r.stderr);
            assert_eq!(ns.listing(), ["register", "status"], "nothing registered");
        }
    }
}

/// Class 1: symlinks are followed only where documented. Inside an OCI layout none is: an
/// index.json that links to /etc/passwd, or a blob that is a FIFO, is refused at once.
#[test]
fn an_oci_layout_is_read_without_following_symlinks_or_opening_fifos() {
    let dir = tempfile::tempdir().expect("tempdir");
    let layout = dir.path().join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).expect("mkdir");
    std::fs::write(
        layout.join("oci-layout"),
        "{\"imageLayoutVersion\":\"1.0.0\"}",
    )
    .expect("write");
    std::os::unix::fs::symlink("/etc/passwd", layout.join("index.json")).expect("symlink");
    let l = layout.to_str().expect("utf-8");
    let r = run(&["scan", l]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("index.json"), "{}", r.stderr);
    assert!(!r.stderr.contains("root:"), "{}", r.stderr);

    // A well-formed index whose manifest blob is a FIFO.
    std::fs::remove_file(layout.join("index.json")).expect("rm");
    let hex = "a".repeat(64);
    std::fs::write(
        layout.join("index.json"),
        format!(
            "{{\"schemaVersion\":2,\"manifests\":[{{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:{hex}\",\"size\":1}}]}}"
        ),
    )
    .expect("index");
    nix::unistd::mkfifo(
        &layout.join("blobs/sha256").join(&hex),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .expect("mkfifo");
    let mut cmd = std::process::Command::new(crate::util::bin());
    cmd.args(["scan", l]);
    let r = crate::util::Run::within(&mut cmd, Duration::from_secs(30));
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("FIFO"), "{}", r.stderr);
}

/// Class 4: `diagnose --run` agrees with a prediction only when the outcome is the one
/// predicted: a program predicted to run that dies of SIGILL disagrees (exit 1), and is
/// then named for what the run showed.
#[test]
fn a_program_predicted_to_run_that_dies_of_sigill_disagrees() {
    let table = binfmt_setup::arch::ArchTable::embedded();
    let host = binfmt_setup::arch::Host::detect(&table);
    let arch = table
        .find(host.arch.as_deref().expect("a known host"))
        .expect("host row");
    // One instruction that is undefined on purpose on every host this runs on.
    let undefined: &[u8] = match arch.name.as_str() {
        "amd64" | "386" => &[0x0f, 0x0b],     // ud2
        "arm64" => &[0x00, 0x00, 0x00, 0x00], // udf #0
        other => panic!("no undefined instruction written for {other}"),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let prog = dir.path().join("illegal");
    std::fs::write(&prog, binfmt_setup::probe::elf_image(arch, undefined)).expect("write");
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let shown = prog.to_str().expect("utf-8");
    let r = run(&["diagnose", "--json", "--run", shown]);
    let j = r.json();
    // The prediction (OK) is kept; the run's cause replaces it, and still disagrees.
    assert_eq!(j["predicted"], "OK", "{j}");
    assert_eq!(j["cause"], "ILLEGAL_INSTRUCTION", "{j}");
    assert_eq!(j["run"]["signal"], "SIGILL", "{j}");
    assert_eq!(j["run"]["agrees"], false, "{j}");
    r.expect_code(1);
    let r = run(&["diagnose", "--run", shown]);
    assert!(r.stdout.contains("DISAGREES"), "{}", r.stdout);
}

/// Class 4: `status` lists in `supported` only platforms whose handler's interpreter is QEMU
/// for that architecture, not one whose rule takes arm64 programs but runs riscv64's QEMU.
#[test]
fn status_supports_no_platform_whose_interpreter_is_for_another() {
    let ns = PrivateBinfmt::new();
    ns.register(&register_string(
        "qemu-aarch64",
        AARCH64_MAGIC,
        AARCH64_MASK,
        "/usr/bin/qemu-riscv64-static",
        "F",
    ));
    let j = ns.run(&["--json", "status"]).json();
    let supported = j["supported"].as_array().expect("supported");
    assert!(
        !supported.iter().any(|p| p == "linux/arm64"),
        "{supported:?}"
    );
    assert_eq!(j["entries"][0]["interpreter_fits"], false, "{j}");
    let r = ns.run(&["status"]);
    assert!(
        r.stdout.contains("QEMU for another architecture"),
        "{}",
        r.stdout
    );
    // The right one is supported.
    ns.control("qemu-aarch64", "-1");
    ns.run(&["install", "--arch", "arm64"]).expect_code(0);
    let j = ns.run(&["--json", "status"]).json();
    assert!(
        j["supported"]
            .as_array()
            .expect("supported")
            .iter()
            .any(|p| p == "linux/arm64"),
        "{j}"
    );
    assert_eq!(j["entries"][0]["interpreter_fits"], true, "{j}");
}

/// Class 4: `inspect --expect` checks the operating system and the variant a name implies:
/// linux/amd64 is not a FreeBSD program, armhf (arm/v7) is not armel (arm/v5).
#[test]
fn inspect_expect_checks_the_os_and_the_variant_a_name_implies() {
    for (expect, file, code) in [
        ("linux/amd64", "freebsd-amd64", 1),
        ("amd64", "freebsd-amd64", 1),
        ("armhf", "armel", 1),
        ("linux/arm/v7", "armel", 1),
        ("armel", "armel", 0),
        ("arm", "armel", 0),
        ("armhf", "armhf", 0),
        ("linux/arm/v6", "armv6hf", 0),
    ] {
        let r = run(&["inspect", "--expect", expect, &crate::util::fx(file)]);
        assert_eq!(r.code, Some(code), "--expect {expect} {file}: {}", r.stderr);
    }
    // And with no handler installed: the same answer (it is about the file, not the host).
    let _ = fixture("armhf");
}

/// Class 4: `install --arch all` with no interpreter anywhere is an error, not an install of
/// nothing that exits 0.
#[test]
fn install_all_with_no_interpreter_anywhere_fails() {
    let empty = tempfile::tempdir().expect("tempdir");
    let e = empty.path().to_str().expect("utf-8");
    let ns = PrivateBinfmt::new();
    for args in [
        vec!["--qemu-path", e, "install", "--arch", "all"],
        vec!["--qemu-path", e, "install", "--arch", "all,-riscv64"],
        vec!["--qemu-path", e, "export", "--format", "systemd"],
    ] {
        let r = ns.run(&args);
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("no QEMU interpreter found for any"),
            "{args:?}: {}",
            r.stderr
        );
    }
    assert_eq!(ns.listing(), ["register", "status"]);
}

/// Class 6: -v and -vv say more, on stderr, and stdout stays the same.
#[test]
fn verbose_flags_say_more_and_leave_stdout_alone() {
    let ns = PrivateBinfmt::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).expect("mkdir");
    std::fs::copy(fixture("arm64"), tree.join("prog")).expect("copy");
    let t = tree.to_str().expect("utf-8");
    let arm64 = crate::util::fx("arm64");
    for args in [
        vec!["install", "--arch", "arm64,riscv64"],
        vec!["test", "--arch", "arm64"],
        vec!["inspect", arm64.as_str()],
        vec!["diagnose", arm64.as_str()],
        vec!["scan", t],
    ] {
        let lines = |v: &[&str]| {
            let mut all = v.to_vec();
            all.extend(&args);
            let r = ns.run(&all);
            (r.stderr.lines().count(), r.stdout, r.code)
        };
        let (quiet, out0, code0) = lines(&[]);
        let (v, out1, code1) = lines(&["-v"]);
        let (vv, out2, code2) = lines(&["-vv"]);
        assert!(
            v > quiet,
            "{args:?}: -v says no more ({v} vs {quiet} lines)"
        );
        assert!(vv > v, "{args:?}: -vv says no more ({vv} vs {v} lines)");
        assert_eq!((code0, code1), (code1, code2), "{args:?}");
        if args[0] != "install" && args[0] != "test" {
            // install's second run says `unchanged`; test's times differ.
            assert_eq!((&out0, &out1), (&out1, &out2), "{args:?}");
        }
    }
}

/// Class 6: two files whose names differ only in bytes that are not UTF-8 print and
/// serialise differently, the JSON keeps their exact bytes, and one very long name does not
/// widen every row of the table.
#[test]
fn non_utf8_names_stay_distinct_and_tables_stay_aligned() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join(std::ffi::OsStr::from_bytes(b"prog\xff"));
    let b = dir.path().join(std::ffi::OsStr::from_bytes(b"prog\xfe"));
    let long = dir.path().join("x".repeat(200));
    for p in [&a, &b, &long] {
        std::fs::copy(fixture("arm64"), p).expect("copy");
    }
    let mut cmd = std::process::Command::new(crate::util::bin());
    cmd.args(["inspect", "--json"]).arg(&a).arg(&b);
    let r = crate::util::Run::capture(&mut cmd);
    let j = r.json();
    let (pa, pb) = (&j[0]["path"], &j[1]["path"]);
    assert_ne!(pa, pb, "{j}");
    let hex = |name: &[u8]| {
        let mut bytes = dir.path().as_os_str().as_bytes().to_vec();
        bytes.push(b'/');
        bytes.extend_from_slice(name);
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    assert_eq!(j[0]["path_hex"], hex(b"prog\xff"), "{j}");
    assert_eq!(j[1]["path_hex"], hex(b"prog\xfe"), "{j}");
    let mut cmd = std::process::Command::new(crate::util::bin());
    cmd.arg("inspect").arg(&a).arg(&b).arg(&long);
    let r = crate::util::Run::capture(&mut cmd);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(
        lines[1].contains("prog\\xff") && lines[2].contains("prog\\xfe"),
        "{}",
        r.stdout
    );
    // The FORMAT column starts at the same place in the header and the short rows.
    let at = |l: &str| l.find("elf").or_else(|| l.find("FORMAT"));
    assert_eq!(at(lines[0]), at(lines[1]), "{}", r.stdout);
    assert!(
        lines[0].len() < 200,
        "the header was padded to the long name: {}",
        lines[0]
    );
    // scan keeps them apart too.
    let mut cmd = std::process::Command::new(crate::util::bin());
    cmd.args(["scan", "--json", "--platform", "linux/amd64"])
        .arg(dir.path());
    let r = crate::util::Run::capture(&mut cmd);
    let j = r.json();
    let paths: Vec<&str> = j["mismatches"]
        .as_array()
        .expect("mismatches")
        .iter()
        .filter_map(|m| m["path"].as_str())
        .collect();
    assert!(
        paths.contains(&"/prog\\xff") && paths.contains(&"/prog\\xfe"),
        "{paths:?}"
    );
}
