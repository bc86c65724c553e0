//! The private-instance harness itself, and `inspect` against real registrations: the handler
//! it names is the one the kernel really uses.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::util::{
    AARCH64_MAGIC, AARCH64_MASK, HOST_BINFMT, PrivateBinfmt, fixture, host_entries, register_string,
};

const QEMU_AARCH64: &str = "/usr/bin/qemu-aarch64-static";

fn inspect_in(ns: &PrivateBinfmt, path: &Path) -> serde_json::Value {
    let r = ns.run(&["inspect", "--json", path.to_str().unwrap_or_default()]);
    r.json()[0].clone()
}

#[test]
fn a_private_instance_starts_empty_and_stays_private() {
    let arm64 = fixture("arm64");
    let a = PrivateBinfmt::new();
    assert_eq!(
        a.listing(),
        ["register", "status"],
        "a fresh instance is empty"
    );

    // Nothing registered: the kernel refuses the foreign program with ENOEXEC.
    let r = a.exec(&arm64, &[]);
    assert_ne!(r.code, Some(42));
    assert!(r.stderr.contains("Exec format error"), "{}", r.stderr);
    assert_eq!(inspect_in(&a, &arm64)["runnable"], "no");

    // Registered with F: the real program runs under QEMU and exits 42.
    let name = format!("qemu-aarch64-isolation-{}", std::process::id());
    a.register(&register_string(
        &name,
        AARCH64_MAGIC,
        AARCH64_MASK,
        QEMU_AARCH64,
        "F",
    ));
    a.exec(&arm64, &[]).expect_code(42);
    let v = inspect_in(&a, &arm64);
    assert_eq!(
        (v["runnable"].as_str(), v["handler"].as_str()),
        (Some("emulated"), Some(name.as_str()))
    );

    // Absent on the host, and absent from another fresh instance, where exec still fails.
    assert!(
        !host_entries().contains(&name),
        "registration leaked to the host's {HOST_BINFMT}"
    );
    assert!(!Path::new(HOST_BINFMT).join(&name).exists());
    let b = PrivateBinfmt::new();
    assert!(!b.listing().contains(&name));
    assert!(b.exec(&arm64, &[]).stderr.contains("Exec format error"));
}

/// Interpreter scripts that say who ran the program.
fn say(dir: &Path, word: &str) -> String {
    let p = dir.join(format!("{word}.sh"));
    std::fs::write(&p, format!("#!/bin/sh\necho {word}\n")).expect("write interpreter");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    p.display().to_string()
}

/// A directory reachable from inside the namespace whatever uid the test runs as.
fn shared_tempdir() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    d
}

#[test]
fn inspect_names_the_handler_the_kernel_picks() {
    let dir = shared_tempdir();
    let arm64 = fixture("arm64");
    let ns = PrivateBinfmt::new();
    ns.register(&register_string(
        "pick-old",
        AARCH64_MAGIC,
        AARCH64_MASK,
        &say(dir.path(), "old"),
        "",
    ));
    ns.register(&register_string(
        "pick-new",
        AARCH64_MAGIC,
        AARCH64_MASK,
        &say(dir.path(), "new"),
        "",
    ));

    // The newest matching entry wins.
    assert_eq!(ns.exec(&arm64, &[]).stdout.trim(), "new");
    assert_eq!(inspect_in(&ns, &arm64)["handler"], "pick-new");

    // A disabled entry is passed over.
    ns.control("pick-new", "0");
    assert_eq!(ns.exec(&arm64, &[]).stdout.trim(), "old");
    assert_eq!(inspect_in(&ns, &arm64)["handler"], "pick-old");

    // binfmt_misc disabled as a whole: nothing matches, the kernel refuses the program.
    ns.control("status", "0");
    assert!(ns.exec(&arm64, &[]).stderr.contains("Exec format error"));
    let v = inspect_in(&ns, &arm64);
    assert_eq!(
        (v["runnable"].as_str(), v["handler"].as_str()),
        (Some("no"), None)
    );
}

#[test]
fn extension_rules_and_short_files_follow_the_kernel() {
    let dir = shared_tempdir();
    let ns = PrivateBinfmt::new();
    ns.register(&format!(":ext-rule:E::xyz::{}:", say(dir.path(), "ext")));
    // A magic longer than the file: the kernel compares against its zero-filled buffer.
    ns.register(&format!(
        ":short-rule:M::ab\\x00\\x00::{}:",
        say(dir.path(), "short")
    ));

    let data = dir.path().join("data.xyz");
    std::fs::write(&data, b"no magic here").expect("write");
    let short = dir.path().join("tiny");
    std::fs::write(&short, b"ab").expect("write");
    for f in [&data, &short] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    assert_eq!(ns.exec(&data, &[]).stdout.trim(), "ext");
    assert_eq!(inspect_in(&ns, &data)["handler"], "ext-rule");
    assert_eq!(ns.exec(&short, &[]).stdout.trim(), "short");
    assert_eq!(inspect_in(&ns, &short)["handler"], "short-rule");
}
