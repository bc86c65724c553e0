//! `scan`'s preflight on a root file system and on images (tars, compressed or not, and OCI
//! layouts): programs that need more than this host runs for them (natively, or through the
//! handler, whose level probe decides), setuid programs under a handler without C, and 64-bit
//! directory cookies for a 32-bit emulated root.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::Value;

use crate::util::{PrivateBinfmt, fixture};

fn put(root: &Path, inside: &str, name: &str, mode: u32) {
    let to = root.join(inside.trim_start_matches('/'));
    std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
    std::fs::copy(fixture(name), &to).expect("copy");
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn scan(ns: &PrivateBinfmt, dir: &Path) -> (Option<i32>, Value) {
    let r = ns.run(&["scan", "--json", &dir.display().to_string()]);
    (r.code, r.json())
}

#[test]
fn a_program_needing_more_than_the_handler_fails_the_scan_and_without_it_passes() {
    let ns = PrivateBinfmt::new();
    ns.run(&["install", "--arch", "riscv64"]).expect_code(0);
    let image = tempfile::tempdir().expect("tempdir");
    put(image.path(), "/bin/sh", "riscv64", 0o755);
    put(image.path(), "/usr/bin/vec", "riscv64-rvv", 0o755);
    put(image.path(), "/usr/bin/su", "riscv64", 0o4755);

    let (code, v) = scan(&ns, image.path());
    assert_eq!(code, Some(1), "{v:#}");
    let p = &v["preflight"];
    assert_eq!(p["will_not_run"][0]["path"], "/usr/bin/vec", "{v:#}");
    assert_eq!(p["will_not_run"][0]["needs"], "rva20u64 + v", "{v:#}");
    assert_eq!(p["will_not_run"][0]["by"], "qemu-riscv64", "{v:#}");
    assert_eq!(p["will_not_run"][0]["lacks"][0], "v", "{v:#}");
    assert_eq!(p["setuid_without_c"][0]["path"], "/usr/bin/su", "{v:#}");
    assert_eq!(p["setuid_without_c"][0]["mode"], "4755", "{v:#}");

    std::fs::remove_file(image.path().join("usr/bin/vec")).expect("rm");
    let (code, v) = scan(&ns, image.path());
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(
        v["preflight"]["will_not_run"],
        Value::Array(vec![]),
        "{v:#}"
    );
}

#[test]
fn an_emulated_arm_v7_image_on_ext4_meets_64_bit_directory_cookies_and_on_tmpfs_does_not() {
    let ns = PrivateBinfmt::new();
    ns.run(&["install", "--arch", "arm"]).expect_code(0);
    let image = tempfile::tempdir().expect("tempdir");
    let fstype = ns.tool(
        "stat",
        &["-f", "-c", "%T", &image.path().display().to_string()],
    );
    put(image.path(), "/bin/sh", "armhf", 0o755);
    for i in 0..50 {
        std::fs::write(image.path().join(format!("bin/f{i}")), b"").expect("write");
    }
    let (_, v) = scan(&ns, image.path());
    let cookies = &v["preflight"]["dir_cookies"];
    // ext4 here (stat calls it ext2/ext3): hash cookies past 2^31.
    assert_eq!(
        fstype.stdout.trim(),
        "ext2/ext3",
        "the test directory's file system"
    );
    assert_eq!(cookies["filesystem"], "ext4", "{v:#}");
    assert!(
        cookies["largest"]
            .as_u64()
            .is_some_and(|c| c > i32::MAX as u64),
        "{v:#}"
    );
    assert!(
        cookies["advice"]
            .as_str()
            .is_some_and(|a| a.contains("tmpfs")),
        "{v:#}"
    );

    // The same tree on a tmpfs mounted in the instance's own mount namespace.
    let mnt = tempfile::tempdir().expect("tempdir");
    let m = mnt.path().display().to_string();
    ns.sh(&format!(
        "mount -t tmpfs tmpfs '{m}' && cp -a '{}/.' '{m}/'",
        image.path().display()
    ))
    .expect_code(0);
    let (_, v) = scan(&ns, mnt.path());
    assert!(v["preflight"]["dir_cookies"].is_null(), "{v:#}");
    assert_eq!(v["preflight"]["programs"], 1, "{v:#}");
}

/// The same root packed as a plain tar (read by position), a gzip tar and a zstd tar (read as
/// streams), and an OCI image (umoci, one gzip layer): the program that needs the vector
/// extension fails each scan with its layer named where there is one, and the setuid one is
/// listed; without the vector program each scan passes.
#[test]
fn images_get_the_same_preflight_as_the_root_they_were_made_from() {
    use crate::scan::umoci_image;
    let ns = PrivateBinfmt::new();
    ns.run(&["install", "--arch", "riscv64"]).expect_code(0);
    let work = tempfile::tempdir().expect("tempdir");
    let pack = |tree: &Path, name: &str| -> Vec<std::path::PathBuf> {
        let base = work.path().join(name);
        let mut out = Vec::new();
        for (ext, flag) in [
            ("tar", None),
            ("tar.gz", Some("--gzip")),
            ("tar.zst", Some("--zstd")),
        ] {
            let file = base.with_extension(ext);
            let mut args = vec![
                "-C",
                tree.to_str().expect("utf-8"),
                "--numeric-owner",
                "-cf",
            ];
            args.push(file.to_str().expect("utf-8"));
            args.extend(flag);
            args.push(".");
            let ok = std::process::Command::new("tar")
                .args(&args)
                .status()
                .expect("tar");
            assert!(ok.success(), "tar {args:?}");
            out.push(file);
        }
        let layout = base.with_extension("oci");
        umoci_image(&layout, "1", "riscv64", tree);
        out.push(layout);
        out
    };
    let tree = work.path().join("root");
    put(&tree, "/bin/sh", "riscv64", 0o755);
    put(&tree, "/usr/bin/vec", "riscv64-rvv", 0o755);
    put(&tree, "/usr/bin/su", "riscv64", 0o4755);
    let with = pack(&tree, "with");
    std::fs::remove_file(tree.join("usr/bin/vec")).expect("rm");
    let without = pack(&tree, "without");

    for image in &with {
        let (code, v) = scan(&ns, image);
        assert_eq!(code, Some(1), "{}: {v:#}", image.display());
        let p = &v["preflight"];
        let w = &p["will_not_run"];
        assert_eq!(
            w.as_array().map(Vec::len),
            Some(1),
            "{}: {v:#}",
            image.display()
        );
        assert_eq!(w[0]["path"], "/usr/bin/vec", "{v:#}");
        assert_eq!(w[0]["needs"], "rva20u64 + v", "{v:#}");
        assert_eq!(w[0]["by"], "qemu-riscv64", "{v:#}");
        assert_eq!(w[0]["lacks"][0], "v", "{v:#}");
        assert_eq!(p["ok"], false, "{v:#}");
        if image.extension().is_some_and(|e| e == "oci") {
            let layer = w[0]["layer"].as_str().unwrap_or_default();
            assert!(layer.starts_with("sha256:"), "{v:#}");
        } else {
            assert_eq!(p["setuid_without_c"][0]["path"], "/usr/bin/su", "{v:#}");
            assert_eq!(p["setuid_without_c"][0]["mode"], "4755", "{v:#}");
        }
        // The human report names it too.
        let r = ns.run(&["scan", &image.display().to_string()]);
        r.expect_code(1);
        assert!(
            r.stdout.contains("will not run  /usr/bin/vec"),
            "{}",
            r.stdout
        );
    }
    for image in &without {
        let (code, v) = scan(&ns, image);
        assert_eq!(code, Some(0), "{}: {v:#}", image.display());
        assert_eq!(
            v["preflight"]["will_not_run"],
            Value::Array(vec![]),
            "{v:#}"
        );
        assert_eq!(v["preflight"]["ok"], true, "{v:#}");
    }
}
