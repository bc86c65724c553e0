//! `export`: the files it writes are loaded by the real peers (systemd-binfmt, Debian's
//! update-binfmts) inside private instances, and leave exactly the entries `install` makes.

use std::path::{Path, PathBuf};

use crate::util::{HOST_BINFMT, PrivateBinfmt, fixture, repo, run};

/// What `install --arch all` leaves in a fresh instance.
fn installed_all() -> Vec<(String, String)> {
    let ns = PrivateBinfmt::new();
    ns.run(&["install", "--arch", "all"]).expect_code(0);
    let e = ns.entries();
    assert!(e.iter().any(|(n, _)| n == "qemu-aarch64"), "{e:?}");
    e
}

/// Export into a fresh directory others can read (the peers run as root of a user namespace,
/// where the test's own uid is root too, so 0755 is enough).
fn export(format: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join(format);
    run(&[
        "export",
        "--format",
        format,
        "--output",
        out.to_str().expect("utf-8 path"),
    ])
    .expect_code(0);
    (dir, out)
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read export dir")
        .map(|e| e.expect("entry").path().display().to_string())
        .collect();
    v.sort();
    v
}

pub fn update_binfmts() -> PathBuf {
    let p = repo().join("target/peers/root/usr/sbin/update-binfmts");
    assert!(
        p.exists(),
        "{} missing: scripts/setup.sh unpacks binfmt-support there",
        p.display()
    );
    p
}

pub const SYSTEMD_BINFMT: &str = "/lib/systemd/systemd-binfmt";

#[test]
fn systemd_binfmt_loads_the_same_entries_install_makes() {
    let want = installed_all();
    let (_keep, dir) = export("systemd");
    let ns = PrivateBinfmt::new();
    let confs = files(&dir);
    let args: Vec<&str> = confs.iter().map(String::as_str).collect();
    // With file arguments systemd-binfmt registers just those (no flush of other entries).
    ns.tool(SYSTEMD_BINFMT, &args).expect_code(0);
    assert_eq!(ns.entries(), want);
    let r = ns.exec(fixture("arm64"), &[]);
    assert_eq!(
        r.code,
        Some(42),
        "arm64 program after systemd-binfmt: {}",
        r.stderr
    );
}

#[test]
fn update_binfmts_imports_the_same_entries_install_makes() {
    let want = installed_all();
    let (keep, dir) = export("debian");
    let admin = keep.path().join("admin");
    std::fs::create_dir(&admin).expect("admindir");
    let ns = PrivateBinfmt::new();
    let r = ns.tool(
        update_binfmts(),
        &[
            "--admindir",
            admin.to_str().expect("utf-8"),
            "--importdir",
            dir.to_str().expect("utf-8"),
            "--import",
        ],
    );
    assert_eq!(r.code, Some(0), "update-binfmts --import: {}", r.stderr);
    assert_eq!(ns.entries(), want);
    let r = ns.exec(fixture("riscv64"), &[]);
    assert_eq!(
        r.code,
        Some(42),
        "riscv64 program after update-binfmts: {}",
        r.stderr
    );
}

#[test]
fn register_files_written_to_the_kernel_make_the_same_entries() {
    let want = installed_all();
    let (_keep, dir) = export("register");
    let ns = PrivateBinfmt::new();
    // One file, one write(2): cat writes a file this short in one go.
    let r = ns.sh(&format!(
        "for f in {}/*.register; do cat \"$f\" > {HOST_BINFMT}/register || exit 1; done",
        dir.display()
    ));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(ns.entries(), want);
}

#[test]
fn export_without_output_prints_each_file_and_a_repeat_is_unchanged() {
    let r = run(&["export", "--format", "systemd", "--arch", "arm64,riscv64"]);
    r.expect_code(0);
    let heads: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("# file: "))
        .collect();
    assert_eq!(
        heads,
        ["# file: qemu-aarch64.conf", "# file: qemu-riscv64.conf"]
    );
    assert!(
        r.stdout.contains(":qemu-aarch64:M:0:\\x7f\\x45\\x4c\\x46"),
        "{}",
        r.stdout
    );

    let (_keep, dir) = export("debian");
    let again = run(&[
        "--json",
        "export",
        "--format",
        "debian",
        "--output",
        dir.to_str().expect("utf-8"),
    ]);
    again.expect_code(0);
    let j = again.json();
    let statuses: Vec<&str> = j["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["status"].as_str().expect("status"))
        .collect();
    assert!(
        !statuses.is_empty() && statuses.iter().all(|s| *s == "unchanged"),
        "{statuses:?}"
    );
    // The host's own arch is never exported: its rule would take every native program.
    assert!(!dir.join("qemu-x86_64").exists());
}
