//! `inspect` on real programs of many architectures and formats.

use serde_json::Value;

use crate::util::{fixture, fixtures, fx, run};

fn inspect_one(path: &std::path::Path) -> Value {
    let r = run(&["inspect", "--json", path.to_str().expect("utf-8 path")]);
    let v = r.json();
    v.as_array()
        .and_then(|a| a.first())
        .cloned()
        .unwrap_or_else(|| panic!("no report: {}", r.stdout))
}

fn host_platform() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "linux/amd64",
        "aarch64" => "linux/arm64",
        "riscv64" => "linux/riscv64",
        "s390x" => "linux/s390x",
        "powerpc64" => "linux/ppc64le",
        other => panic!("add {other} to host_platform()"),
    }
}

#[test]
fn bin_ls_is_the_hosts_platform_and_native() {
    let v = inspect_one(std::path::Path::new("/bin/ls"));
    assert_eq!(v["platform"], host_platform());
    assert_eq!(v["runnable"], "native");
    assert_eq!(v["format"], "elf");
    assert_eq!(v["static"], false);
    assert!(
        v["interpreter"]
            .as_str()
            .is_some_and(|i| i.starts_with('/')),
        "{v}"
    );
}

/// Every fixture, and the platform a Docker user would pass to `--platform` for it.
const EXPECTED: &[(&str, &str, &str)] = &[
    // (fixture, platform, abi or other detail that must appear)
    ("amd64", "linux/amd64", ""),
    ("arm64", "linux/arm64", ""),
    ("armhf", "linux/arm/v7", "hard-float"),
    ("armel", "linux/arm/v5", "soft-float"),
    ("armv6hf", "linux/arm/v6", "hard-float"),
    ("armv7-softfp", "linux/arm/v7", "soft-float"),
    ("armhf-noattr", "linux/arm/v7", "hard-float"),
    ("armel-noattr", "linux/arm/v5", "soft-float"),
    ("riscv64", "linux/riscv64", "lp64d"),
    ("s390x", "linux/s390x", ""),
    ("ppc64le", "linux/ppc64le", "elfv2"),
    ("ppc64-elfv1", "linux/ppc64", "elfv1"),
    ("ppc64-elfv2", "linux/ppc64", "elfv2"),
    ("ppc", "linux/ppc", ""),
    ("i386", "linux/386", ""),
    ("mips", "linux/mips", "o32"),
    ("mipsel", "linux/mipsle", "o32"),
    ("mips64", "linux/mips64", "n64"),
    ("mips64el", "linux/mips64le", "n64"),
    ("mipsn32", "linux/mipsn32", "n32"),
    ("sparc64", "linux/sparc64", ""),
    ("m68k", "linux/m68k", ""),
    ("x32", "linux/x32", "x32"),
    ("arm64-ilp32", "linux/arm64_ilp32", "ilp32"),
    ("loong64.o", "linux/loong64", ""),
    ("freebsd-amd64", "freebsd/amd64", ""),
    ("arm64-dynamic", "linux/arm64", ""),
    ("arm64-static-pie", "linux/arm64", ""),
    ("riscv64-dynamic", "linux/riscv64", ""),
    ("macho-arm64", "darwin/arm64", ""),
    ("macho-universal", "darwin/amd64,darwin/arm64", ""),
    ("pe-x86_64.exe", "windows/amd64", ""),
    ("pe-aarch64.exe", "windows/arm64", ""),
];

#[test]
fn every_fixture_gets_the_platform_docker_users_write() {
    let mut args = vec!["inspect".to_string(), "--json".to_string()];
    args.extend(
        EXPECTED
            .iter()
            .map(|(f, _, _)| fixture(f).display().to_string()),
    );
    let r = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let reports = r.json();
    let reports = reports.as_array().expect("array");
    assert_eq!(reports.len(), EXPECTED.len());
    let mut wrong = Vec::new();
    for ((name, platform, abi), v) in EXPECTED.iter().zip(reports) {
        if v["platform"] != *platform {
            wrong.push(format!(
                "{name}: platform {} (want {platform})",
                v["platform"]
            ));
        }
        if !abi.is_empty() && !v["abi"].as_str().unwrap_or("").contains(abi) {
            wrong.push(format!("{name}: abi {} (want {abi})", v["abi"]));
        }
        if !v["error"].is_null() {
            wrong.push(format!("{name}: error {}", v["error"]));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    r.expect_code(0);
}

#[test]
fn elf_details_loader_static_type_os() {
    let dynamic = inspect_one(&fixture("arm64-dynamic"));
    assert_eq!(dynamic["interpreter"], "/lib/ld-linux-aarch64.so.1");
    assert_eq!(dynamic["static"], false);
    assert_eq!(dynamic["type"], "pie");
    let stat = inspect_one(&fixture("arm64"));
    assert_eq!(
        (
            stat["static"].clone(),
            stat["type"].clone(),
            stat["interpreter"].clone()
        ),
        (true.into(), "exec".into(), Value::Null)
    );
    assert_eq!(
        (
            stat["class"].clone(),
            stat["endian"].clone(),
            stat["machine"].clone()
        ),
        (64.into(), "little".into(), 183.into())
    );
    let s390 = inspect_one(&fixture("s390x"));
    assert_eq!(s390["endian"], "big");
    let obj = inspect_one(&fixture("loong64.o"));
    assert_eq!(
        (obj["type"].clone(), obj["runnable"].clone()),
        ("rel".into(), "no".into())
    );
    let bsd = inspect_one(&fixture("freebsd-amd64"));
    assert_eq!(
        (bsd["os_abi"].clone(), bsd["runnable"].clone()),
        ("freebsd".into(), "no".into())
    );
    assert!(
        bsd["reason"].as_str().unwrap_or("").contains("freebsd"),
        "{bsd}"
    );
}

#[test]
fn static_pie_is_static_and_a_shared_library_is_not() {
    let pie = inspect_one(&fixture("arm64-static-pie"));
    assert_eq!(
        (pie["type"].as_str(), pie["static"].as_bool()),
        (Some("static-pie"), Some(true)),
        "{pie}"
    );
    let lib = inspect_one(&fixture("arm64-shared.so"));
    assert_eq!(
        (lib["type"].as_str(), lib["static"].as_bool()),
        (Some("dyn"), Some(false)),
        "{lib}"
    );
    // Debian's emulators are static-pie: F-flag registration depends on calling them static.
    let qemu = inspect_one(std::path::Path::new("/usr/bin/qemu-aarch64-static"));
    assert_eq!(
        (qemu["type"].as_str(), qemu["static"].as_bool()),
        (Some("static-pie"), Some(true)),
        "{qemu}"
    );
}

#[test]
fn macho_universal_lists_each_slice() {
    let v = inspect_one(&fixture("macho-universal"));
    assert_eq!(v["format"], "macho");
    let slices: Vec<&str> = v["slices"]
        .as_array()
        .expect("slices")
        .iter()
        .map(|s| s["arch"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(slices, ["amd64", "arm64"]);
    assert_eq!(v["runnable"], "no");
}

#[test]
fn scripts_interpreter_and_crlf() {
    let ok = inspect_one(&fixture("script-sh"));
    assert_eq!(
        (
            ok["format"].clone(),
            ok["interpreter"].clone(),
            ok["crlf"].clone()
        ),
        ("script".into(), "/bin/sh".into(), false.into())
    );
    assert_eq!(
        ok["platform"],
        host_platform(),
        "a script runs on its interpreter's platform"
    );
    assert_eq!(ok["runnable"], "native");
    let crlf = inspect_one(&fixture("script-crlf"));
    assert_eq!(
        (crlf["crlf"].clone(), crlf["runnable"].clone()),
        (true.into(), "no".into())
    );
    assert!(
        crlf["reason"].as_str().unwrap_or("").contains("CR LF"),
        "{crlf}"
    );
    let missing = inspect_one(&fixture("script-missing"));
    assert_eq!(missing["runnable"], "no");
    assert!(
        missing["reason"]
            .as_str()
            .unwrap_or("")
            .contains("/nonexistent/interpreter"),
        "{missing}"
    );
}

#[test]
fn the_386_fixture_runs_natively_on_amd64_found_by_a_probe() {
    if std::env::consts::ARCH != "x86_64" {
        return;
    }
    // Whether this kernel has IA-32 emulation is measured, not assumed: compare with what
    // really happens when the program is run here.
    let v = inspect_one(&fixture("i386"));
    let real = std::process::Command::new(fixture("i386"))
        .status()
        .map(|s| s.code());
    let runs = matches!(real, Ok(Some(42)));
    assert_eq!(
        v["runnable"] == "native",
        runs,
        "inspect says {}, a real run gave {real:?}",
        v["runnable"]
    );
}

#[test]
fn damaged_files_are_reported_and_the_rest_still_inspected() {
    let args = [
        "inspect",
        "--json",
        &fx("truncated-header"),
        "/nonexistent/binfmt-setup-test",
        &fx("truncated-phdrs"),
        &fx("arm64"),
    ];
    let r = run(&args);
    r.expect_code(2); // an unreadable file is bad input
    let v = r.json();
    let a = v.as_array().expect("array");
    assert_eq!(a.len(), 4, "every file gets a report");
    assert!(
        a[0]["error"].as_str().unwrap_or("").contains("truncated"),
        "{}",
        a[0]
    );
    assert!(
        a[1]["error"]
            .as_str()
            .unwrap_or("")
            .contains("/nonexistent/binfmt-setup-test"),
        "{}",
        a[1]
    );
    assert!(
        a[2]["error"].as_str().unwrap_or("").contains("truncated"),
        "{}",
        a[2]
    );
    assert_eq!(a[3]["platform"], "linux/arm64");
    // Damaged but readable files alone: a problem found, exit 1.
    run(&["inspect", &fx("truncated-phdrs")]).expect_code(1);
}

#[test]
fn special_files_never_hang() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).expect("mkfifo");
    let r = run(&[
        "inspect",
        "--json",
        fifo.to_str().unwrap_or_default(),
        "/dev/zero",
        dir.path().to_str().unwrap_or_default(),
    ]);
    r.expect_code(2);
    let v = r.json();
    for (i, what) in ["FIFO", "device", "directory"].iter().enumerate() {
        assert!(
            v[i]["error"].as_str().unwrap_or("").contains(what),
            "{}",
            v[i]
        );
    }
}

#[test]
fn expect_checks_the_platform() {
    let arm64 = fixture("arm64");
    let p = arm64.to_str().unwrap_or_default();
    run(&["inspect", "--expect", "arm64", p]).expect_code(0);
    run(&["inspect", "--expect", "linux/arm64", p]).expect_code(0);
    run(&["inspect", "--expect", "aarch64", p]).expect_code(0);
    let r = run(&["inspect", "--expect", "amd64", p]);
    r.expect_code(1);
    assert!(
        r.stderr.contains("expected linux/amd64, found linux/arm64"),
        "{}",
        r.stderr
    );
    let armel = fixture("armel");
    run(&[
        "inspect",
        "--expect",
        "arm/v5",
        armel.to_str().unwrap_or_default(),
    ])
    .expect_code(0);
    run(&[
        "inspect",
        "--expect",
        "linux/arm/v7",
        armel.to_str().unwrap_or_default(),
    ])
    .expect_code(1);
}

#[test]
fn unknown_arch_exits_2_listing_known_names() {
    let r = run(&["inspect", "--expect", "vax", "/bin/ls"]);
    r.expect_code(2);
    assert!(r.stdout.is_empty(), "nothing on stdout: {}", r.stdout);
    for name in [
        "'vax'", "amd64", "arm64", "riscv64", "s390x", "ppc64le", "loong64",
    ] {
        assert!(r.stderr.contains(name), "stderr lacks {name}: {}", r.stderr);
    }
}

#[test]
fn arch_table_override_and_its_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A table with only arm64, under another canonical name: inspect uses it.
    let text =
        std::fs::read_to_string(crate::util::repo().join("configs/arches.toml")).expect("table");
    let start = text.find("name = \"arm64\"").expect("arm64 row");
    let row_start = text[..start].rfind("[[arch]]").expect("row");
    let row_end = text[start..]
        .find("[[arch]]")
        .map(|e| start + e)
        .unwrap_or(text.len());
    let row = text[row_start..row_end].replace("name = \"arm64\"", "name = \"myarm\"");
    let good = dir.path().join("good.toml");
    std::fs::write(&good, &row).expect("write");
    let r = run(&[
        "inspect",
        "--json",
        "--arch-table",
        good.to_str().unwrap_or_default(),
        &fx("arm64"),
    ]);
    assert_eq!(r.json()[0]["arch"], "myarm");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, row.replace("class = 64", "class = 65")).expect("write");
    let r = run(&[
        "inspect",
        "--arch-table",
        bad.to_str().unwrap_or_default(),
        "/bin/ls",
    ]);
    r.expect_code(2);
    assert!(
        r.stderr.contains("bad.toml") && r.stderr.contains("class"),
        "{}",
        r.stderr
    );
    let r = run(&[
        "inspect",
        "--arch-table",
        "/nonexistent/table.toml",
        "/bin/ls",
    ]);
    r.expect_code(2);
    assert!(r.stderr.contains("/nonexistent/table.toml"), "{}", r.stderr);
}

#[test]
fn bad_flags_exit_2_and_help_exits_0() {
    run(&["inspect", "--no-such-flag", "/bin/ls"]).expect_code(2);
    run(&["no-such-command"]).expect_code(2);
    let r = run(&["inspect", "--help"]);
    r.expect_code(0);
    assert!(
        r.stdout.contains("--expect") && r.stdout.contains("Examples"),
        "{}",
        r.stdout
    );
}

#[test]
fn fixtures_are_real_programs_that_run_under_qemu() {
    // The fixtures are compiler output, not headers we wrote: each runs under the matching
    // QEMU emulator and exits 42. (ppc64 ELFv2 big-endian is left out: QEMU's ppc64 assumes
    // ELFv1 and crashes on it, which is why inspect reports the ABI.)
    let _ = fixtures();
    let mut failures = Vec::new();
    for (name, cpu) in [
        ("arm64", "aarch64"),
        ("armhf", "arm"),
        ("armel", "arm"),
        ("armv6hf", "arm"),
        ("riscv64", "riscv64"),
        ("s390x", "s390x"),
        ("ppc64le", "ppc64le"),
        ("ppc64-elfv1", "ppc64"),
        ("ppc", "ppc"),
        ("i386", "i386"),
        ("mips", "mips"),
        ("mipsel", "mipsel"),
        ("mips64", "mips64"),
        ("mips64el", "mips64el"),
        ("mipsn32", "mipsn32"),
        ("sparc64", "sparc64"),
        ("m68k", "m68k"),
        ("amd64", "x86_64"),
    ] {
        let qemu = format!("/usr/bin/qemu-{cpu}-static");
        let status = std::process::Command::new(&qemu)
            .arg(fixture(name))
            .status();
        if !matches!(status.as_ref().map(|s| s.code()), Ok(Some(42))) {
            failures.push(format!("{name} under {qemu}: {status:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
