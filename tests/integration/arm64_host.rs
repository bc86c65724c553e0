//! The arm64-host direction, simulated: binfmt-setup built for aarch64 (static, musl) runs
//! under this machine's qemu-aarch64-static, through an arm64 handler in a private
//! binfmt_misc instance, as it would on an arm64 machine running amd64 images (an Apple
//! silicon Mac's Linux VM, a Graviton or Ampere runner). What this cannot show is written in
//! docs/ARM64.md; each limit it meets is pinned here, so a change in it is noticed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::fleet_util::busybox_rootfs;
use crate::util::{
    AARCH64_MAGIC, AARCH64_MASK, PrivateBinfmt, Run, fixture, register_string, repo,
};

/// The aarch64 build (scripts/build-static.sh --target aarch64 --profile quick, in
/// target/cross as scripts/test.sh builds it; built here too when missing).
fn arm64_build() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = repo().join("target/cross");
        let status = Command::new("bash")
            .arg(repo().join("scripts/build-static.sh"))
            .args(["--target", "aarch64", "--profile", "quick"])
            .env("CARGO_TARGET_DIR", &dir)
            .status()
            .expect("run scripts/build-static.sh");
        assert!(
            status.success(),
            "scripts/build-static.sh --target aarch64 failed; run scripts/setup.sh first (it adds the Rust target)"
        );
        dir.join("aarch64-unknown-linux-musl/quick/binfmt-setup")
    })
}

/// qemu-x86_64-static as Debian builds it for arm64 (scripts/arm64-host.sh).
fn arm64_qemu_x86_64() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = repo().join("target/arm64-host");
        let status = Command::new("bash")
            .arg(repo().join("scripts/arm64-host.sh"))
            .arg(&out)
            .status()
            .expect("run scripts/arm64-host.sh");
        assert!(
            status.success(),
            "scripts/arm64-host.sh failed; run scripts/setup.sh first"
        );
        out.join("usr/bin/qemu-x86_64-static")
    })
}

/// A private instance whose only handler sends arm64 programs to this machine's
/// qemu-aarch64-static: the "arm64 host".
fn arm64_host() -> PrivateBinfmt {
    let ns = PrivateBinfmt::new();
    ns.register(&register_string(
        "qemu-aarch64",
        AARCH64_MAGIC,
        AARCH64_MASK,
        "/usr/bin/qemu-aarch64-static",
        "F",
    ));
    ns
}

/// The arm64 binfmt-setup run with a plain execve in the instance: the kernel hands it to
/// qemu-aarch64.
fn arm64(ns: &PrivateBinfmt, args: &[&str]) -> Run {
    ns.exec(arm64_build(), args)
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

#[test]
fn the_arm64_build_sees_an_arm64_host_and_names_an_amd64_program_in_an_arm64_root() {
    let ns = arm64_host();
    // An arm64 root (Debian's busybox) with an amd64 program copied in: what an Apple
    // silicon user gets from an image built for the wrong platform.
    let root = tempfile::tempdir().expect("tempdir");
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", busybox_rootfs().display()))
        .arg(root.path())
        .status()
        .expect("cp");
    assert!(status.success());
    std::fs::copy(fixture("amd64"), root.path().join("server")).expect("copy server");
    let rootdir = root.path().display().to_string();

    // It is an aarch64 program, run by QEMU, and it sees an arm64 host.
    let me = arm64(
        &ns,
        &["--json", "inspect", &arm64_build().display().to_string()],
    );
    me.expect_code(0);
    assert_eq!(me.json()[0]["platform"], "linux/arm64", "{}", me.stdout);
    assert_eq!(me.json()[0]["static"], true);
    let s = arm64(&ns, &["--json", "status"]);
    s.expect_code(0);
    let native = strings(&s.json()["native"]);
    assert_eq!(native[0], "linux/arm64", "{native:?}");
    // Its "native" levels are QEMU's: the kernel runs its arm64 level probe through the
    // same qemu-aarch64 (an Apple M1 has Armv8.5; QEMU 7.2 proves v8.1).
    assert_eq!(native, ["linux/arm64", "linux/arm64/v8.1"]);
    assert!(!native.iter().any(|p| p.contains("amd64")), "{native:?}");

    // inspect and diagnose say what the user needs: an amd64 program, an arm64 host, no
    // handler, and the two ways out.
    let i = arm64(&ns, &["--json", "inspect", &format!("{rootdir}/server")]);
    i.expect_code(0);
    let info = &i.json()[0];
    assert_eq!(info["platform"], "linux/amd64");
    assert_eq!(info["runnable"], "no");
    let reason = info["reason"].as_str().expect("reason");
    assert!(
        reason.contains("this host is arm64") && reason.contains("install --arch amd64"),
        "{reason}"
    );
    let d = arm64(&ns, &["--json", "diagnose", "--root", &rootdir, "/server"]);
    d.expect_code(1);
    let d = d.json();
    assert_eq!(d["cause"], "NO_HANDLER", "{d}");
    assert_eq!(d["errno"], "ENOEXEC");
    assert!(
        d["message"]
            .as_str()
            .is_some_and(|m| m.contains("amd64 program") && m.contains("this host is arm64")),
        "{d}"
    );
    assert!(
        d["fix"].as_str().is_some_and(
            |f| f.contains("binfmt-setup install --arch amd64") && f.contains("GOARCH=arm64")
        ),
        "{d}"
    );
}

#[test]
fn the_arm64_build_registers_qemu_x86_64_and_proves_the_amd64_levels_qemu_reaches() {
    let ns = arm64_host();
    let qemu = arm64_qemu_x86_64().display().to_string();

    // Nested: the emulated arm64 binfmt-setup writes the instance's register file itself,
    // with the qemu-x86_64-static an arm64 Debian host has.
    let r = arm64(
        &ns,
        &[
            "--json",
            "install",
            "--arch",
            "amd64",
            "--interpreter",
            &format!("amd64={qemu}"),
        ],
    );
    r.expect_code(0);
    assert_eq!(
        r.json()["installed"],
        serde_json::json!(["qemu-x86_64"]),
        "{}",
        r.stdout
    );
    let entry = ns.read("qemu-x86_64");
    assert_eq!(
        entry,
        format!(
            "enabled\ninterpreter {qemu}\nflags: F\noffset 0\nmagic 7f454c4602010100000000000000000002003e00\nmask fffffffffffefe00fffffffffffffffffeffffff\n"
        ),
        "what an arm64 host gets, but without P (see below)"
    );
    // Here the entry cannot be used: on this x86_64 kernel it takes every x86_64 program,
    // qemu-aarch64-static (the emulator the arm64 side runs on) among them, and each exec in
    // the instance loops.
    let looped = ns.exec("/bin/true", &[]);
    assert_eq!(looped.code, None);
    assert!(looped.stderr.contains("ELOOP"), "{}", looped.stderr);
    ns.control("qemu-x86_64", "0");

    // The levels: qemu-x86_64 (the arm64 build) under an extension rule, proven by the arm64
    // binfmt-setup. Outside a chroot: inside an empty one, qemu-aarch64 is handed the arm64
    // QEMU by its path, which is not there (pinned below).
    ns.register(&format!(":qemu-x86_64-arm64:E::probe-ext::{qemu}:"));
    let t = arm64(
        &ns,
        &[
            "--json",
            "test",
            "--entry",
            "qemu-x86_64-arm64",
            "--no-chroot",
        ],
    );
    t.expect_code(0);
    let res = &t.json()["results"][0];
    assert_eq!(res["arch"], "amd64");
    assert_eq!(res["handler"], "qemu-x86_64-arm64");
    assert_eq!(res["levels"]["highest"], "x86-64-v3", "{res}");
    assert!(res["levels"]["lift"].is_null(), "{res}");
    assert_eq!(
        strings(&t.json()["supported"]),
        ["linux/amd64", "linux/amd64/v2", "linux/amd64/v3"]
    );
    // Its QEMU cannot be asked here: qemu-aarch64, which runs it, reads QEMU_VERSION and
    // QEMU_CPU=help first and answers for itself (`qemu-aarch64 version 7.2.22`, aarch64's
    // models). That answer names another target, so it is reported as unknown, not as
    // qemu-x86_64's.
    assert!(res["qemu_version"].is_null(), "{res}");
    assert_eq!(res["cpu_models"], serde_json::json!([]));

    // What the simulation cannot hide.
    // 1. The kernel is x86_64: an amd64 program the arm64 side execs runs natively.
    let leak = arm64(&ns, &["--json", "test", "--arch", "amd64"]);
    leak.expect_code(0);
    assert_eq!(leak.json()["results"][0]["handler"], "native");
    // 2. Under QEMU no private binfmt_misc can be made (unshare(CLONE_NEWUSER) is EINVAL
    //    in a process with threads, and QEMU has them), so install could not ask whether
    //    qemu-x86_64 honours P, and registered without it; `run` stops with exit 3.
    let run = arm64(&ns, &["run", "--arch", "riscv64", "--", "/bin/true"]);
    run.expect_code(3);
    assert!(
        run.stderr.contains("private binfmt_misc") && run.stderr.contains("Invalid argument"),
        "{}",
        run.stderr
    );
    // 3. In an empty chroot the arm64 QEMU, itself run by qemu-aarch64, is not found.
    let chrooted = arm64(&ns, &["--json", "test", "--entry", "qemu-x86_64-arm64"]);
    chrooted.expect_code(1);
    assert!(chrooted.json()["results"][0]["levels"].is_null());
}
