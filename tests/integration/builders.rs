//! Real builders on our handlers. buildah and podman run inside `binfmt-setup run` as an
//! unprivileged user with subordinate ids (the user scripts/setup.sh adds), build
//! `--platform` images whose `RUN` step records `uname -m`, and the test reads that record
//! back out of the built image. Nothing here touches the host's binfmt_misc: every handler
//! lives in the private instance `run` makes.
//!
//! The base images are Debian's busybox-static for arm64 and s390x, made offline by
//! scripts/images.sh (no registry is reachable).

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::util::{Run, bin, repo, require_root};

/// The user scripts/setup.sh adds for these tests, with a range in /etc/subuid and
/// /etc/subgid.
const USER: &str = "binfmt-builder";

/// The OCI layout scripts/images.sh makes (tags `arm64`, `s390x`); made once per run.
fn images() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = repo().join("target/images");
        let status = Command::new("bash")
            .arg(repo().join("scripts/images.sh"))
            .arg(&out)
            .status()
            .expect("run scripts/images.sh");
        assert!(
            status.success(),
            "scripts/images.sh failed; run scripts/setup.sh first"
        );
        out.join("oci")
    })
}

/// A workspace owned by the builder user: storage, runtime and temporary directories, a
/// build context whose Containerfile records `uname -m` in /arch.
struct Builder {
    uid: u32,
    dir: tempfile::TempDir,
}

impl Builder {
    fn new() -> Builder {
        require_root("switching to the builder user");
        let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
        let uid = passwd
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.first() == Some(&USER)).then(|| f[2].parse::<u32>().expect("uid"))
            })
            .unwrap_or_else(|| panic!("no user {USER}: scripts/setup.sh adds it"));
        for file in ["/etc/subuid", "/etc/subgid"] {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            assert!(
                text.lines().any(|l| l.starts_with(&format!("{USER}:"))),
                "{USER} has no range in {file}: scripts/setup.sh adds one"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("binfmt-builders")
            .tempdir()
            .expect("tempdir");
        let w = dir.path();
        for sub in ["home", "tmp", "xdg", "ctx"] {
            std::fs::create_dir(w.join(sub)).expect("mkdir");
        }
        std::fs::write(
            w.join("registries.conf"),
            "unqualified-search-registries = []\n",
        )
        .expect("registries.conf");
        let base = images().display().to_string();
        std::fs::write(
            w.join("ctx/Containerfile"),
            format!("ARG TARGETARCH\nFROM oci:{base}:${{TARGETARCH}}\nRUN uname -m > /arch\n"),
        )
        .expect("Containerfile");
        let ok = Command::new("chown")
            .args(["-R", &format!("{uid}:{uid}")])
            .arg(w)
            .status()
            .expect("chown")
            .success();
        assert!(ok, "chown the workspace");
        std::fs::set_permissions(w.join("xdg"), std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        Builder { uid, dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `binfmt-setup run --arch ARCHES -- sh -c SCRIPT` as the builder user, with `b` and
    /// `p` defined as buildah and podman on the workspace's own storage, `$ctx` the build
    /// context and `$base` the base images' layout.
    fn run(&self, arches: &str, script: &str) -> Run {
        let w = self.dir.path().display().to_string();
        let store = format!("--root {w}/root --runroot {w}/run --storage-driver vfs");
        let preamble = format!(
            "set -e; ctx={w}/ctx; out={w}; base={base}\n\
             b() {{ buildah {store} \"$@\"; }}\n\
             p() {{ podman {store} --tmpdir {w}/tmp \"$@\"; }}\n",
            base = images().display()
        );
        Run::capture(
            Command::new("setpriv")
                .args([
                    &format!("--reuid={}", self.uid),
                    &format!("--regid={}", self.uid),
                    "--init-groups",
                    "env",
                    "-i",
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                ])
                .arg(format!("HOME={w}/home"))
                .arg(format!("TMPDIR={w}/tmp"))
                .arg(format!("XDG_RUNTIME_DIR={w}/xdg"))
                .arg(format!("CONTAINERS_REGISTRIES_CONF={w}/registries.conf"))
                .arg(bin())
                .args(["run", "--arch", arches, "--", "sh", "-c"])
                .arg(format!("{preamble}{script}")),
        )
    }
}

/// What `/arch` holds in each image of an OCI layout, by the platform architecture its
/// index or manifest names: every index followed, each image's layers read newest first.
fn recorded_arches(layout: &Path) -> BTreeMap<String, String> {
    let blob = |digest: &str| -> Vec<u8> {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        std::fs::read(layout.join("blobs/sha256").join(hex)).expect("read blob")
    };
    let json = |bytes: &[u8]| -> serde_json::Value {
        serde_json::from_slice(bytes).expect("JSON document")
    };
    let mut found = BTreeMap::new();
    let mut todo = vec![json(
        &std::fs::read(layout.join("index.json")).expect("index.json"),
    )];
    while let Some(doc) = todo.pop() {
        if let Some(list) = doc["manifests"].as_array() {
            for m in list {
                todo.push(json(&blob(m["digest"].as_str().expect("digest"))));
            }
            continue;
        }
        let config = json(&blob(doc["config"]["digest"].as_str().expect("config")));
        let arch = config["architecture"].as_str().expect("architecture");
        let layers = doc["layers"].as_array().expect("layers");
        let recorded = layers
            .iter()
            .rev()
            .find_map(|l| file_in_layer(&blob(l["digest"].as_str().expect("digest")), "arch"));
        found.insert(
            arch.to_string(),
            recorded.unwrap_or_else(|| panic!("no /arch in the {arch} image")),
        );
    }
    found
}

/// A file's text in a layer (tar, plain or gzip-compressed), if the layer holds it.
fn file_in_layer(bytes: &[u8], name: &str) -> Option<String> {
    let reader: Box<dyn Read + '_> = if bytes.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(bytes))
    } else {
        Box::new(bytes)
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().expect("tar entries") {
        let mut entry = entry.expect("tar entry");
        let path = entry.path().expect("entry path").into_owned();
        if path.strip_prefix("./").unwrap_or(&path) == Path::new(name) {
            let mut text = String::new();
            entry.read_to_string(&mut text).expect("read entry");
            return Some(text.trim().to_string());
        }
    }
    None
}

/// `run` gives a user with subordinate ids what rootless builders expect: its own id as
/// root, its range from 1 up, setgroups allowed, and the variables that tell buildah and
/// podman the namespace is already made.
#[test]
fn run_maps_a_users_subordinate_ids_as_rootless_builders_expect() {
    let b = Builder::new();
    let r = b.run(
        "arm64",
        "cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; \
         echo \"configured=$_CONTAINERS_USERNS_CONFIGURED\"",
    );
    r.expect_ok("run");
    let maps: Vec<Vec<String>> = r
        .stdout
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    let own = vec!["0".to_string(), b.uid.to_string(), "1".to_string()];
    assert_eq!(maps[0], own, "{}", r.stdout);
    assert_eq!(maps[1][0], "1", "the range starts at 1: {}", r.stdout);
    assert_eq!(maps[1][2], "65536", "{}", r.stdout);
    assert_eq!(maps[2], own, "{}", r.stdout);
    assert!(r.stdout.contains("\nallow\n"), "{}", r.stdout);
    assert!(r.stdout.contains("configured=done"), "{}", r.stdout);
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
}

/// The acceptance: an unprivileged user builds a two-platform manifest list with
/// buildah `--isolation chroot` inside `run`, and each platform's image holds its own
/// `uname -m`. Without the arm64 handler the same build fails with exec format error.
#[test]
fn buildah_builds_a_two_platform_manifest_list_with_chroot_isolation() {
    let b = Builder::new();
    let r = b.run(
        "arm64,s390x",
        "b manifest create localhost/multi:1 >/dev/null\n\
         b bud -q --platform linux/arm64,linux/s390x --isolation chroot \
           --manifest localhost/multi:1 -f $ctx/Containerfile $ctx >/dev/null\n\
         b manifest push -q --all localhost/multi:1 oci:$out/multi",
    );
    r.expect_ok("buildah bud --isolation chroot");
    let arches = recorded_arches(&b.path("multi"));
    let want: BTreeMap<String, String> = [("arm64", "aarch64"), ("s390x", "s390x")]
        .into_iter()
        .map(|(a, m)| (a.to_string(), m.to_string()))
        .collect();
    assert_eq!(arches, want);

    // The negative control: the same build with only the s390x handler.
    let r = b.run(
        "s390x",
        "b bud -q --platform linux/arm64 --isolation chroot -f $ctx/Containerfile $ctx",
    );
    assert_ne!(r.code, Some(0), "built without a handler: {}", r.stdout);
    assert!(r.stderr.contains("exec format error"), "{}", r.stderr);
}

/// buildah with `--isolation oci` runs each step under runc, which needs the same ids.
#[test]
fn buildah_builds_with_oci_isolation_under_runc() {
    let b = Builder::new();
    let r = b.run(
        "arm64",
        "b bud -q --platform linux/arm64 --isolation oci --runtime runc --network none \
           -t localhost/oci-iso:1 -f $ctx/Containerfile $ctx >/dev/null\n\
         b push -q localhost/oci-iso:1 oci:$out/oci-iso",
    );
    r.expect_ok("buildah bud --isolation oci");
    let arches = recorded_arches(&b.path("oci-iso"));
    assert_eq!(arches.get("arm64").map(String::as_str), Some("aarch64"));
}

/// podman inside `run`: `build --platform` and `run --platform` of the built image and of a
/// base image straight from its layout.
#[test]
fn podman_builds_and_runs_foreign_platforms() {
    let b = Builder::new();
    let r = b.run(
        "arm64,s390x",
        "p build -q --platform linux/arm64 --network none -t localhost/p:arm64 \
           -f $ctx/Containerfile $ctx >/dev/null\n\
         echo \"built=$(p run --rm --pull never --network none --platform linux/arm64 \
           localhost/p:arm64 cat /arch)\"\n\
         echo \"ran=$(p run --rm --pull never --network none --platform linux/s390x \
           oci:$base:s390x uname -m)\"",
    );
    r.expect_ok("podman build and run");
    assert!(r.stdout.contains("built=aarch64\n"), "{}", r.stdout);
    assert!(r.stdout.contains("ran=s390x\n"), "{}", r.stdout);
}
