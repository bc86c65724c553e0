//! `scan` on real trees: a root file system made of the cross-compiled fixtures, the same
//! tree packed by GNU tar, and OCI images built from it by umoci (Debian's package).

use std::io::Write;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{Run, bin, fixture};

/// Run the binary with a deadline: a scan that opened a FIFO or followed a symlink loop
/// would hang, and must fail the test instead.
fn scan_with(prefix: &[&str], args: &[&str]) -> Run {
    let (program, rest): (PathBuf, Vec<String>) = match prefix.split_first() {
        Some((p, more)) => (
            PathBuf::from(p),
            more.iter()
                .map(|s| s.to_string())
                .chain(std::iter::once(bin().display().to_string()))
                .collect(),
        ),
        None => (bin(), Vec::new()),
    };
    let mut child = Command::new(program)
        .args(rest)
        .arg("scan")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn binfmt-setup");
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("scan {args:?} did not finish in 120 s (a FIFO opened? a symlink followed?)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn scan(args: &[&str]) -> Run {
    scan_with(&[], args)
}

fn scan_json(path: &Path, extra: &[&str]) -> (Run, Value) {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    args.push(path.to_str().expect("utf-8 path"));
    let r = scan(&args);
    let v = r.json();
    (r, v)
}

#[allow(clippy::print_stderr)]
fn skip(what: &str, why: &str) {
    eprintln!("skipped: {what}: {why}");
}

#[track_caller]
pub(crate) fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (scripts/setup.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

pub(crate) fn copy(fixture_name: &str, to: &Path) {
    std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
    std::fs::copy(fixture(fixture_name), to).expect("copy fixture");
}

/// The regular files and ELF programs the arm64 tree holds (the amd64 /server aside).
const TREE_FILES: u64 = 9;
const TREE_ELF: u64 = 4;

/// An arm64 root file system from the real fixtures, with the non-ELF files, links and
/// special files a real one has, and, when `amd64`, an amd64 program at /server.
pub(crate) fn arm64_tree(root: &Path, amd64: bool) {
    copy("arm64", &root.join("bin/hello"));
    copy("arm64-dynamic", &root.join("usr/bin/hello-dyn"));
    copy("arm64-static-pie", &root.join("usr/bin/qemu-like-static"));
    copy(
        "arm64-shared.so",
        &root.join("usr/lib/aarch64-linux-gnu/libhello.so"),
    );
    // Not ELF: a script, a Windows program, a macOS program, text, an empty file.
    copy("script-sh", &root.join("usr/bin/start.sh"));
    copy("pe-x86_64.exe", &root.join("opt/win/tool.exe"));
    copy("macho-arm64", &root.join("opt/mac/tool"));
    std::fs::create_dir_all(root.join("etc")).expect("mkdir etc");
    std::fs::write(root.join("etc/os-release"), "ID=debian\n").expect("write");
    std::fs::write(root.join("etc/empty"), "").expect("write");
    if amd64 {
        copy("amd64", &root.join("server"));
    }
    // A loop, a link to itself, and links out of the root to the host's amd64 programs:
    // following any of them would hang or count programs that are not in the image.
    std::fs::create_dir_all(root.join("loop")).expect("mkdir");
    symlink("b", root.join("loop/a")).expect("symlink");
    symlink("a", root.join("loop/b")).expect("symlink");
    symlink(".", root.join("loop/self")).expect("symlink");
    symlink("/usr/bin", root.join("usr/host-bin")).expect("symlink");
    symlink("../../../../../../usr/bin/env", root.join("bin/env")).expect("symlink");
    std::fs::create_dir_all(root.join("run")).expect("mkdir");
    nix::unistd::mkfifo(
        &root.join("run/fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .expect("mkfifo");
}

pub(crate) fn paths(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("array")
        .iter()
        .map(|m| m["path"].as_str().expect("path").to_string())
        .collect()
}

/// A tempdir others may enter (a scan run as `nobody` must reach the tree).
pub(crate) fn open_tempdir() -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    t
}

#[test]
fn arm64_tree_with_an_amd64_program_names_exactly_that_file() {
    let t = open_tempdir();
    let root = t.path().join("rootfs");
    arm64_tree(&root, true);
    let (r, v) = scan_json(&root, &[]);
    r.expect_code(1);
    assert_eq!(paths(&v["mismatches"]), ["/server"], "{v:#}");
    assert_eq!(v["mismatches"][0]["platform"], "linux/amd64");
    assert_eq!(v["expected"], "linux/arm64");
    assert_eq!(v["inferred"], true);
    assert_eq!(v["expected_from"], "majority");
    assert_eq!(v["files"], TREE_FILES + 1);
    assert_eq!(v["elf_files"], TREE_ELF + 1);
    assert_eq!(v["by_platform"]["linux/arm64"], TREE_ELF);
    assert_eq!(v["by_platform"]["linux/amd64"], 1);
    assert_eq!(v["by_platform"].as_object().map(|o| o.len()), Some(2));
    assert_eq!(v["kind"], "directory");
    assert!(v["broken"].as_array().is_some_and(Vec::is_empty));
    assert!(v["unreadable"].as_array().is_some_and(Vec::is_empty));

    // The human report names the file and ends in one verdict line.
    let r = scan(&[s(&root)]);
    r.expect_code(1);
    assert!(r.stdout.contains("/server") && r.stdout.contains("linux/amd64"));
    let last = r.stdout.lines().last().unwrap_or_default();
    assert_eq!(last, "FAIL: 1 program is not linux/arm64", "{}", r.stdout);
}

#[test]
fn clean_arm64_tree_exits_0() {
    let t = open_tempdir();
    let root = t.path().join("rootfs");
    arm64_tree(&root, false);
    let (r, v) = scan_json(&root, &[]);
    r.expect_code(0);
    assert_eq!(v["ok"], true);
    assert_eq!(v["elf_files"], TREE_ELF);
    let r = scan(&["--platform", "linux/arm64", s(&root)]);
    r.expect_code(0);
    assert!(r.stdout.contains("(--platform)"), "{}", r.stdout);
    assert!(
        r.stdout
            .lines()
            .last()
            .unwrap_or_default()
            .starts_with("ok: ")
    );
}

#[test]
fn platform_flag_overrides_the_majority() {
    let t = open_tempdir();
    let root = t.path().join("rootfs");
    arm64_tree(&root, true);
    let (r, v) = scan_json(&root, &["--platform", "amd64"]);
    r.expect_code(1);
    assert_eq!(v["expected"], "linux/amd64");
    assert_eq!(v["inferred"], false);
    let mut want = vec![
        "/bin/hello",
        "/usr/bin/hello-dyn",
        "/usr/bin/qemu-like-static",
        "/usr/lib/aarch64-linux-gnu/libhello.so",
    ];
    want.sort();
    assert_eq!(paths(&v["mismatches"]), want);
}

#[test]
fn unreadable_file_is_reported_and_the_scan_goes_on() {
    let t = open_tempdir();
    let root = t.path().join("rootfs");
    arm64_tree(&root, false);
    copy("arm64", &root.join("secret"));
    std::fs::set_permissions(root.join("secret"), std::fs::Permissions::from_mode(0o000))
        .expect("chmod");
    // Root reads any file; as root the scan is run as nobody, for whom mode 000 is closed.
    let prefix: &[&str] = if nix::unistd::geteuid().is_root() {
        if Command::new("setpriv").arg("--version").output().is_err() {
            skip(
                "unreadable_file_is_reported_and_the_scan_goes_on",
                "running as root and setpriv (util-linux) is missing, so no file can be made unreadable",
            );
            return;
        }
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
        ]
    } else {
        &[]
    };
    let r = scan_with(prefix, &["--json", s(&root)]);
    r.expect_code(1);
    let v = r.json();
    assert_eq!(paths(&v["unreadable"]), ["/secret"], "{v:#}");
    assert!(
        v["unreadable"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("EACCES")),
        "{v:#}"
    );
    assert!(v["mismatches"].as_array().is_some_and(Vec::is_empty));
    assert_eq!(v["elf_files"], TREE_ELF, "the other files were still read");
}

#[test]
fn damaged_elf_is_reported_as_broken_not_as_a_mismatch() {
    let t = open_tempdir();
    let root = t.path().join("rootfs");
    arm64_tree(&root, false);
    copy("truncated-header", &root.join("usr/lib/broken.so"));
    let (r, v) = scan_json(&root, &[]);
    r.expect_code(1);
    assert_eq!(paths(&v["broken"]), ["/usr/lib/broken.so"]);
    assert!(v["mismatches"].as_array().is_some_and(Vec::is_empty));
    assert!(
        v["broken"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("truncated"))
    );
}

#[test]
fn arm_variants_v7_runs_v5_but_arm64_runs_neither() {
    let t = open_tempdir();
    let root = t.path().join("rootfs");
    copy("armhf", &root.join("bin/v7"));
    copy("armel", &root.join("bin/v5"));
    copy("armv6hf", &root.join("bin/v6"));
    let (r, v) = scan_json(&root, &["--platform", "linux/arm/v7"]);
    r.expect_code(0);
    assert_eq!(v["by_platform"]["linux/arm/v5"], 1, "{v:#}");
    let (r, v) = scan_json(&root, &["--platform", "arm/v6"]);
    r.expect_code(1);
    assert_eq!(paths(&v["mismatches"]), ["/bin/v7"]);
    let (r, v) = scan_json(&root, &["--platform", "armel"]);
    r.expect_code(1);
    assert_eq!(paths(&v["mismatches"]), ["/bin/v6", "/bin/v7"]);
    let (r, v) = scan_json(&root, &["--platform", "arm64"]);
    r.expect_code(1);
    assert_eq!(v["mismatches"].as_array().map(Vec::len), Some(3));
}

/// In a tar, plain or compressed, 32-bit ARM programs are named from their attributes as in
/// a tree: by position in a plain tar, from the spans kept as a compressed one streams by.
#[test]
fn arm_variants_are_named_alike_in_a_tree_and_in_every_tar() {
    let t = open_tempdir();
    let root = t.path().join("rootfs");
    copy("armhf", &root.join("bin/v7"));
    copy("armel", &root.join("bin/v5"));
    copy("armv6hf", &root.join("bin/v6"));
    let (r, tree) = scan_json(&root, &["--platform", "linux/arm/v6"]);
    r.expect_code(1);
    assert_eq!(tree["by_platform"]["linux/arm/v6"], 1, "{tree:#}");
    for (archive, _) in archives(t.path(), &root) {
        let (r, v) = scan_json(&archive, &["--platform", "linux/arm/v6"]);
        r.expect_code(1);
        assert_eq!(
            v["by_platform"],
            tree["by_platform"],
            "{}",
            archive.display()
        );
        assert_eq!(
            paths(&v["mismatches"]),
            ["/bin/v7"],
            "{}",
            archive.display()
        );
    }
}

/// Each archive GNU tar makes of the tree, and the compression it should be read as.
fn archives(dir: &Path, root: &Path) -> Vec<(PathBuf, Option<&'static str>)> {
    let mut out = vec![
        (dir.join("rootfs.tar"), None),
        (dir.join("rootfs.tar.gz"), Some("gzip")),
    ];
    tool("tar", &["-C", s(root), "-cf", s(&out[0].0), "."]);
    tool("tar", &["-C", s(root), "-czf", s(&out[1].0), "."]);
    if Command::new("zstd").arg("--version").output().is_ok() {
        let z = dir.join("rootfs.tar.zst");
        tool("tar", &["-C", s(root), "--zstd", "-cf", s(&z), "."]);
        out.push((z, Some("zstd")));
    } else {
        skip("the .tar.zst case", "zstd is not installed");
    }
    out
}

#[test]
fn tar_and_tar_gz_give_the_same_verdict() {
    let t = open_tempdir();
    let root = t.path().join("rootfs");
    arm64_tree(&root, true);
    for (archive, compression) in archives(t.path(), &root) {
        let (r, v) = scan_json(&archive, &[]);
        r.expect_code(1);
        assert_eq!(
            paths(&v["mismatches"]),
            ["/server"],
            "{}",
            archive.display()
        );
        assert_eq!(v["kind"], "tar");
        assert_eq!(v["compression"].as_str(), compression);
        assert_eq!(v["files"], TREE_FILES + 1, "{}", archive.display());
        assert_eq!(v["elf_files"], TREE_ELF + 1);
        assert_eq!(v["expected"], "linux/arm64");
    }
    let clean = t.path().join("clean");
    arm64_tree(&clean, false);
    let tgz = t.path().join("clean.tar.gz");
    tool("tar", &["-C", s(&clean), "-czf", s(&tgz), "."]);
    scan(&[s(&tgz)]).expect_code(0);
}

#[test]
fn tar_members_named_with_dotdot_or_absolute_paths_are_only_names() {
    let t = open_tempdir();
    let root = t.path().join("rootfs");
    arm64_tree(&root, true);
    let dotdot = t.path().join("dotdot.tar");
    let absolute = t.path().join("absolute.tar");
    // -P keeps the names as written: ../../server and /abs/server.
    tool(
        "tar",
        &[
            "-C",
            s(&root),
            "-cPf",
            s(&dotdot),
            "--transform",
            "s,^\\./,../../,",
            ".",
        ],
    );
    tool(
        "tar",
        &[
            "-C",
            s(&root),
            "-cPf",
            s(&absolute),
            "--transform",
            "s,^\\./,/abs/,",
            ".",
        ],
    );
    assert!(tool("tar", &["-tPf", s(&dotdot)]).contains("../../server"));
    let before: Vec<_> = std::fs::read_dir(t.path()).expect("ls").collect();
    let (r, v) = scan_json(&dotdot, &[]);
    r.expect_code(1);
    assert_eq!(paths(&v["mismatches"]), ["/server"]);
    let (r, v) = scan_json(&absolute, &[]);
    r.expect_code(1);
    assert_eq!(paths(&v["mismatches"]), ["/abs/server"]);
    let after: Vec<_> = std::fs::read_dir(t.path()).expect("ls").collect();
    assert_eq!(before.len(), after.len(), "scan wrote nothing");
}

/// An OCI layout built by umoci: `tag` is an image of `arch` with one layer holding `tree`.
pub(crate) fn umoci_image(layout: &Path, tag: &str, arch: &str, tree: &Path) {
    if !layout.join("index.json").exists() {
        tool("umoci", &["init", "--layout", s(layout)]);
    }
    let image = format!("{}:{tag}", s(layout));
    tool("umoci", &["new", "--image", &image]);
    tool(
        "umoci",
        &[
            "config",
            "--image",
            &image,
            "--os",
            "linux",
            "--architecture",
            arch,
        ],
    );
    tool("umoci", &["insert", "--image", &image, s(tree), "/"]);
}

/// The manifest descriptor umoci's index.json lists for `tag`.
pub(crate) fn descriptor(layout: &Path, tag: &str) -> Value {
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index.json"))
            .expect("index.json is JSON");
    index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .cloned()
        .unwrap_or_else(|| panic!("no tag {tag} in {index}"))
}

/// The digests of the layers of image `tag`, lowest first.
pub(crate) fn layer_digests(layout: &Path, tag: &str) -> Vec<String> {
    let digest = descriptor(layout, tag)["digest"]
        .as_str()
        .expect("digest")
        .to_string();
    let hex = digest.trim_start_matches("sha256:");
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(layout.join("blobs/sha256").join(hex)).expect("manifest blob"),
    )
    .expect("manifest is JSON");
    manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().expect("digest").to_string())
        .collect()
}

#[test]
fn oci_image_from_umoci_names_the_file_and_its_layer() {
    let t = open_tempdir();
    let root = t.path().join("rootfs");
    arm64_tree(&root, true);
    let layout = t.path().join("oci");
    umoci_image(&layout, "latest", "arm64", &root);
    let layers = layer_digests(&layout, "latest");
    let (r, v) = scan_json(&layout, &[]);
    r.expect_code(1);
    assert_eq!(v["kind"], "oci");
    assert_eq!(paths(&v["mismatches"]), ["/server"], "{v:#}");
    assert_eq!(
        v["mismatches"][0]["layer"].as_str(),
        layers.last().map(String::as_str)
    );
    assert_eq!(v["expected"], "linux/arm64");
    assert_eq!(v["expected_from"], "image");
    assert_eq!(v["files"], TREE_FILES + 1);
    assert_eq!(v["images"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        v["images"][0]["manifest"],
        descriptor(&layout, "latest")["digest"]
    );

    // The same layout packed in a tar (an OCI archive) gives the same answer.
    let packed = t.path().join("oci.tar");
    tool("tar", &["-C", s(&layout), "-cf", s(&packed), "."]);
    let (r, w) = scan_json(&packed, &[]);
    r.expect_code(1);
    assert_eq!(w["kind"], "image-archive");
    assert_eq!(w["mismatches"], v["mismatches"]);
}

#[test]
fn clean_oci_image_exits_0() {
    let t = open_tempdir();
    let root = t.path().join("rootfs");
    arm64_tree(&root, false);
    let layout = t.path().join("oci");
    umoci_image(&layout, "latest", "arm64", &root);
    let (r, v) = scan_json(&layout, &[]);
    r.expect_code(0);
    assert_eq!(v["ok"], true);
    assert_eq!(v["elf_files"], TREE_ELF);
}

#[test]
fn whiteout_in_an_upper_layer_hides_the_amd64_program() {
    let t = open_tempdir();
    let root = t.path().join("rootfs");
    arm64_tree(&root, true);
    copy("amd64", &root.join("opt/vendor/agent"));
    let layout = t.path().join("oci");
    umoci_image(&layout, "latest", "arm64", &root);
    let image = format!("{}:latest", s(&layout));
    // Upper layers: a whiteout for /server, and /opt/vendor replaced by an opaque directory.
    tool(
        "umoci",
        &["insert", "--image", &image, "--whiteout", "/server"],
    );
    let empty = t.path().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    tool(
        "umoci",
        &[
            "insert",
            "--image",
            &image,
            "--opaque",
            s(&empty),
            "/opt/vendor",
        ],
    );
    assert_eq!(layer_digests(&layout, "latest").len(), 3);
    let (r, v) = scan_json(&layout, &[]);
    r.expect_code(0);
    assert_eq!(v["files"], TREE_FILES, "{v:#}");
    assert!(v["mismatches"].as_array().is_some_and(Vec::is_empty));
}

#[test]
fn two_platform_index_catches_the_arm64_image_only() {
    let t = open_tempdir();
    let arm = t.path().join("arm64-root");
    arm64_tree(&arm, true);
    let amd = t.path().join("amd64-root");
    copy("amd64", &amd.join("bin/hello"));
    copy("amd64", &amd.join("server"));
    let layout = t.path().join("oci");
    umoci_image(&layout, "arm64", "arm64", &arm);
    umoci_image(&layout, "amd64", "amd64", &amd);
    // One index listing both manifests with their platforms, as `docker buildx` writes it.
    let mut a = descriptor(&layout, "amd64");
    a["platform"] = serde_json::json!({"os": "linux", "architecture": "amd64"});
    let mut b = descriptor(&layout, "arm64");
    b["platform"] = serde_json::json!({"os": "linux", "architecture": "arm64"});
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [a, b],
    });
    std::fs::write(layout.join("index.json"), index.to_string()).expect("write index");

    let (r, v) = scan_json(&layout, &[]);
    r.expect_code(1);
    let images = v["images"].as_array().expect("images");
    assert_eq!(images.len(), 2);
    let by = |p: &str| {
        images
            .iter()
            .find(|i| i["platform"] == p)
            .cloned()
            .unwrap_or_else(|| panic!("no image {p}: {v:#}"))
    };
    assert_eq!(by("linux/amd64")["ok"], true);
    assert_eq!(by("linux/arm64")["ok"], false);
    assert_eq!(paths(&by("linux/arm64")["mismatches"]), ["/server"]);
    assert_eq!(paths(&v["mismatches"]), ["/server"]);
    assert_eq!(v["mismatches"][0]["image"], "linux/arm64");
    assert_eq!(v["expected"], Value::Null);

    // --platform picks one image of the index.
    let (r, v) = scan_json(&layout, &["--platform", "linux/amd64"]);
    r.expect_code(0);
    assert_eq!(v["images"].as_array().map(Vec::len), Some(1));
    scan(&["--platform", "arm64", s(&layout)]).expect_code(1);
    let r = scan(&["--platform", "s390x", s(&layout)]);
    r.expect_code(2);
    assert!(
        r.stderr.contains("no image for linux/s390x") && r.stderr.contains("linux/arm64"),
        "{}",
        r.stderr
    );
}

/// A bad input exits 2 with one line on stderr that names the input.
#[track_caller]
fn refused(args: &[&str], names: &str, why: &str) {
    let r = scan(args);
    r.expect_code(2);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {}", r.stderr);
    assert!(
        lines[0].contains(names) && lines[0].contains(why),
        "wanted '{names}' and '{why}' in: {}",
        lines[0]
    );
}

#[test]
fn bad_inputs_exit_2_naming_the_input() {
    let t = open_tempdir();
    let missing = t.path().join("no-such-rootfs");
    refused(&[s(&missing)], s(&missing), "No such file");
    refused(&["--platform", "vax", s(t.path())], "vax", "known names");

    let not_tar = t.path().join("notes.txt");
    std::fs::write(
        &not_tar,
        "this is not a tar file, just some text of some length\n".repeat(20),
    )
    .expect("write");
    refused(&[s(&not_tar)], s(&not_tar), "tar");

    let root = t.path().join("rootfs");
    arm64_tree(&root, false);
    let layout = t.path().join("oci");
    umoci_image(&layout, "latest", "arm64", &root);
    let index = layout.join("index.json");
    let good = std::fs::read_to_string(&index).expect("index");

    std::fs::write(&index, &good[..good.len() / 2]).expect("truncate");
    refused(&[s(&layout)], "index.json", "malformed");

    std::fs::write(
        &index,
        good.replace("\"schemaVersion\":2", "\"schemaVersion\":7"),
    )
    .expect("write");
    refused(&[s(&layout)], "index.json", "schemaVersion is 7");

    let digest = descriptor_from(&good);
    std::fs::write(&index, good.replace(&digest, "sha256:../../../etc/passwd")).expect("write");
    refused(&[s(&layout)], "index.json", "not a sha256 or sha512 digest");

    std::fs::write(&index, &good).expect("restore");
    let layer = layer_digests(&layout, "latest").pop().expect("a layer");
    let blob = layout
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    std::fs::remove_file(&blob).expect("rm layer");
    refused(&[s(&layout)], s(&blob), "No such file");
}

fn descriptor_from(index: &str) -> String {
    let v: Value = serde_json::from_str(index).expect("json");
    v["manifests"][0]["digest"]
        .as_str()
        .expect("digest")
        .to_string()
}

#[test]
fn docker_save_archive_with_manifest_json_is_read_as_an_image() {
    let t = open_tempdir();
    let root = t.path().join("rootfs");
    arm64_tree(&root, true);
    let layout = t.path().join("oci");
    umoci_image(&layout, "latest", "arm64", &root);
    let layers = layer_digests(&layout, "latest");
    let manifest: Value = {
        let d = descriptor(&layout, "latest")["digest"]
            .as_str()
            .expect("digest")
            .to_string();
        let blob = layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"));
        serde_json::from_slice(&std::fs::read(blob).expect("manifest")).expect("json")
    };
    let member = |digest: &str| format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
    // docker save (Docker 25 and later) writes manifest.json beside the OCI blobs; this one
    // names umoci's config and layer blobs the same way, and index.json is left out.
    let docker_manifest = serde_json::json!([{
        "Config": member(manifest["config"]["digest"].as_str().expect("config")),
        "RepoTags": ["example/app:latest"],
        "Layers": layers.iter().map(|l| member(l)).collect::<Vec<_>>(),
    }]);
    let save = t.path().join("save");
    std::fs::create_dir_all(&save).expect("mkdir");
    tool("cp", &["-r", s(&layout.join("blobs")), s(&save)]);
    std::fs::write(save.join("manifest.json"), docker_manifest.to_string()).expect("write");
    let archive = t.path().join("image.tar");
    tool(
        "tar",
        &["-C", s(&save), "-cf", s(&archive), "blobs", "manifest.json"],
    );
    let (r, v) = scan_json(&archive, &[]);
    r.expect_code(1);
    assert_eq!(v["kind"], "image-archive");
    assert_eq!(paths(&v["mismatches"]), ["/server"], "{v:#}");
    assert_eq!(
        v["mismatches"][0]["layer"].as_str(),
        layers.last().map(String::as_str)
    );
    assert_eq!(v["expected"], "linux/arm64");
    assert_eq!(v["expected_from"], "image");
}

#[test]
fn deep_and_wide_trees_are_walked_past_path_max() {
    use nix::fcntl::{OFlag, openat};
    use nix::sys::stat::{Mode, mkdirat};
    let t = open_tempdir();
    let root = t.path().join("rootfs");
    arm64_tree(&root, false);
    // Wide: thousands of files in one directory.
    let wide = root.join("usr/share/wide");
    std::fs::create_dir_all(&wide).expect("mkdir");
    for i in 0..3000 {
        std::fs::write(wide.join(format!("f{i}")), "text").expect("write");
    }
    // Deep: longer than PATH_MAX (4096) below the root, made one level at a time.
    let depth = 1500;
    let mut dir = nix::fcntl::open(&root, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty())
        .expect("open root");
    for _ in 0..depth {
        mkdirat(&dir, "ddd", Mode::from_bits_truncate(0o755)).expect("mkdirat");
        dir = openat(
            &dir,
            "ddd",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .expect("openat");
    }
    let fd = openat(
        &dir,
        "server",
        OFlag::O_WRONLY | OFlag::O_CREAT,
        Mode::from_bits_truncate(0o755),
    )
    .expect("create deep file");
    std::fs::File::from(fd)
        .write_all(&std::fs::read(fixture("amd64")).expect("fixture"))
        .expect("write deep file");
    drop(dir);

    let (r, v) = scan_json(&root, &[]);
    r.expect_code(1);
    let want = format!("{}/server", "/ddd".repeat(depth));
    assert!(want.len() > 4096);
    assert_eq!(paths(&v["mismatches"]), [want]);
    assert_eq!(v["files"], TREE_FILES + 3000 + 1);
}

#[test]
fn elf_files_are_the_ones_scanelf_finds() {
    let dir = crate::util::fixtures();
    let (_, v) = scan_json(dir, &[]);
    let Ok(out) = Command::new("scanelf").arg("-R").arg(dir).output() else {
        skip(
            "elf_files_are_the_ones_scanelf_finds",
            "scanelf (pax-utils) is not installed",
        );
        return;
    };
    let listed = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("ET_"))
        .count() as u64;
    assert_eq!(v["elf_files"], listed, "{v:#}");
    let counted: u64 = v["by_platform"]
        .as_object()
        .expect("by_platform")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    let broken = v["broken"].as_array().map_or(0, Vec::len) as u64;
    assert_eq!(counted + broken, listed);
    assert_eq!(paths(&v["broken"]), ["/truncated-header"]);
    assert_eq!(v["by_platform"]["freebsd/amd64"], 1);
    assert_eq!(v["by_platform"]["linux/arm/v7"], 3);
}

#[test]
fn truncated_tar_and_gzip_streams_exit_2() {
    let t = open_tempdir();
    let root = t.path().join("rootfs");
    arm64_tree(&root, true);
    let tar = t.path().join("rootfs.tar");
    let tgz = t.path().join("rootfs.tar.gz");
    tool("tar", &["-C", s(&root), "-cf", s(&tar), "."]);
    tool("tar", &["-C", s(&root), "-czf", s(&tgz), "."]);
    for full in [&tar, &tgz] {
        let bytes = std::fs::read(full).expect("read");
        let cut = full.with_extension("cut");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
        refused(&[s(&cut)], s(&cut), "");
    }
}
