//! The project's own image, for real: `scripts/image.sh` builds it offline with umoci, and
//! runc (the runtime under Docker, containerd and CRI-O) runs it in a private binfmt_misc
//! instance. The instance is a user + mount namespace mapping ids 0-65535 as the host's
//! (`PrivateBinfmt::with_users`); runc runs in it and makes no user namespace of its own, so
//! the container is root there and its binfmt_misc is that namespace's instance, as a
//! privileged container's is the node's. What it registered is read from outside, through
//! the namespace's holder. The host's binfmt_misc is never touched.
//!
//! Also: the Dockerfile and the script describe the same image.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};

use crate::fleet_util::{busybox_rootfs, host_binfmt_state, open_tempdir, wait_for};
use crate::util::{PrivateBinfmt, Run, repo, require_root};

/// The tag the tests build (with the quick profile: unoptimised, a third of
/// release's build time; the same files otherwise).
const TAG: &str = "ci";
const PROFILE: &str = "quick";
const ENTRYPOINT: [&str; 2] = ["/usr/local/bin/binfmt-setup", "init"];

/// A guard against a hang, not a measure: a run takes seconds.
const LIMIT: Duration = Duration::from_secs(300);

/// `scripts/image.sh --tag ci --profile quick`, once per test run (it rebuilds
/// nothing when the tag holds the same files): the OCI layout's directory.
fn layout() -> &'static Path {
    static LAYOUT: OnceLock<PathBuf> = OnceLock::new();
    LAYOUT.get_or_init(|| {
        let r = Run::capture(
            Command::new("bash")
                .arg(repo().join("scripts/image.sh"))
                .args(["--tag", TAG, "--profile", PROFILE]),
        );
        assert_eq!(
            r.code,
            Some(0),
            "scripts/image.sh failed (scripts/setup.sh installs umoci and qemu-user-static):\n{}",
            r.stderr
        );
        let reference = r.stdout.trim();
        let (path, tag) = reference
            .rsplit_once(':')
            .unwrap_or_else(|| panic!("image.sh printed {reference:?}, not LAYOUT:TAG"));
        assert_eq!(tag, TAG);
        PathBuf::from(path)
    })
}

/// The image's manifest, config and single layer, read from the layout's blobs.
struct Image {
    config: Value,
    layer: PathBuf,
}

fn blob(digest: &str) -> PathBuf {
    let hex = digest
        .strip_prefix("sha256:")
        .unwrap_or_else(|| panic!("digest {digest}"));
    layout().join("blobs/sha256").join(hex)
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn image() -> Image {
    let index = read_json(&layout().join("index.json"));
    let manifest = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == TAG)
        .unwrap_or_else(|| panic!("no {TAG} in {index}"));
    let manifest = read_json(&blob(manifest["digest"].as_str().expect("digest")));
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "one layer: {manifest}");
    Image {
        config: read_json(&blob(
            manifest["config"]["digest"].as_str().expect("config"),
        )),
        layer: blob(layers[0]["digest"].as_str().expect("layer digest")),
    }
}

/// What `runc` is, or a failure naming the script that installs it.
fn runc() -> PathBuf {
    ["/usr/sbin/runc", "/usr/bin/runc"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("runc is not installed: scripts/setup.sh installs it"))
}

/// Every capability this kernel has, by the names runc takes (0 to cap_last_cap).
fn all_capabilities() -> Vec<&'static str> {
    const NAMES: [&str; 41] = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_DAC_READ_SEARCH",
        "CAP_FOWNER",
        "CAP_FSETID",
        "CAP_KILL",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETPCAP",
        "CAP_LINUX_IMMUTABLE",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST",
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_IPC_LOCK",
        "CAP_IPC_OWNER",
        "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO",
        "CAP_SYS_CHROOT",
        "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT",
        "CAP_SYS_ADMIN",
        "CAP_SYS_BOOT",
        "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE",
        "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG",
        "CAP_MKNOD",
        "CAP_LEASE",
        "CAP_AUDIT_WRITE",
        "CAP_AUDIT_CONTROL",
        "CAP_SETFCAP",
        "CAP_MAC_OVERRIDE",
        "CAP_MAC_ADMIN",
        "CAP_SYSLOG",
        "CAP_WAKE_ALARM",
        "CAP_BLOCK_SUSPEND",
        "CAP_AUDIT_READ",
        "CAP_PERFMON",
        "CAP_BPF",
        "CAP_CHECKPOINT_RESTORE",
    ];
    let last: usize = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .expect("read cap_last_cap")
        .trim()
        .parse()
        .expect("cap_last_cap");
    NAMES[..=last.min(NAMES.len() - 1)].to_vec()
}

const CAPABILITY_SETS: [&str; 5] = [
    "bounding",
    "effective",
    "inheritable",
    "permitted",
    "ambient",
];

/// What `docker run --privileged` and Kubernetes' `privileged: true` change in the config
/// that matters here: every capability, nothing under /proc masked or read-only.
fn privileged(config: &mut Value) {
    let caps = all_capabilities();
    for set in CAPABILITY_SETS {
        config["process"]["capabilities"][set] = json!(caps);
    }
    config["linux"]["maskedPaths"] = json!([]);
    config["linux"]["readonlyPaths"] = json!([]);
}

/// The image unpacked into a runtime bundle, and runc's state for it, in one temporary
/// directory. Dropped: the container is killed and deleted whatever state it is in.
struct Container<'a> {
    ns: &'a PrivateBinfmt,
    dir: tempfile::TempDir,
    id: String,
    /// config.json as umoci made it from the image's config (runtime defaults).
    made: Value,
}

impl<'a> Container<'a> {
    /// `umoci unpack`: rootfs/ and a config.json from the image's config, as a runtime
    /// gets from containerd.
    fn unpack(ns: &'a PrivateBinfmt, id: &str) -> Container<'a> {
        let dir = open_tempdir();
        let bundle = dir.path().join("bundle");
        Run::capture(
            Command::new("umoci")
                .arg("unpack")
                .arg("--image")
                .arg(format!("{}:{TAG}", layout().display()))
                .arg(&bundle),
        )
        .expect_code(0);
        let made = read_json(&bundle.join("config.json"));
        assert_eq!(
            made["process"]["args"],
            json!(ENTRYPOINT),
            "the image's entrypoint becomes the process"
        );
        Container {
            ns,
            dir,
            id: id.to_string(),
            made,
        }
    }

    fn bundle(&self) -> PathBuf {
        self.dir.path().join("bundle")
    }

    fn rootfs(&self) -> PathBuf {
        self.bundle().join("rootfs")
    }

    /// Write config.json: umoci's, without a terminal (nobody reads one here), `args` after
    /// the entrypoint (as `docker run IMAGE ARGS` gives them), then `edit`.
    fn configure(&self, args: &[&str], edit: impl FnOnce(&mut Value)) {
        let mut config = self.made.clone();
        config["process"]["terminal"] = json!(false);
        let argv = config["process"]["args"].as_array_mut().expect("args");
        argv.extend(args.iter().map(|a| json!(a)));
        edit(&mut config);
        std::fs::write(
            self.bundle().join("config.json"),
            serde_json::to_vec_pretty(&config).expect("json"),
        )
        .expect("write config.json");
    }

    /// runc in the instance's user and mount namespaces, its state in our directory.
    fn runc(&self) -> Command {
        let mut c = self.ns.command(runc());
        c.arg("--root").arg(self.dir.path().join("state"));
        c
    }

    /// `runc run` in the foreground: the container's exit status and output.
    fn run(&self) -> Run {
        let mut cmd = self.runc();
        cmd.arg("run")
            .arg("--bundle")
            .arg(self.bundle())
            .arg(&self.id);
        Run::within(&mut cmd, LIMIT)
    }

    /// `runc exec` in the running container.
    fn exec(&self, argv: &[&str]) -> Run {
        let mut cmd = self.runc();
        cmd.arg("exec").arg(&self.id).args(argv);
        Run::within(&mut cmd, LIMIT)
    }

    /// Whether runc still knows the container.
    fn exists(&self) -> bool {
        let mut cmd = self.runc();
        cmd.arg("state").arg(&self.id);
        Run::capture(&mut cmd).code == Some(0)
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = self
            .runc()
            .args(["delete", "--force", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn sorted(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|n| n.as_str().expect("name").to_string())
        .collect();
    out.sort();
    out
}

/// Entry name -> its file, from outside.
fn entries(ns: &PrivateBinfmt) -> BTreeMap<String, String> {
    ns.entries().into_iter().collect()
}

/// Every entry is one of ours, for an interpreter the image carries, with F; the
/// container's report agrees with what the kernel holds.
#[track_caller]
fn check_handlers(ns: &PrivateBinfmt, c: &Container, report: &Value) {
    let held = entries(ns);
    assert_eq!(
        held.keys().cloned().collect::<Vec<_>>(),
        sorted(&report["installed"]),
        "the kernel holds what init says it installed"
    );
    for (name, text) in &held {
        let cpu = name.strip_prefix("qemu-").expect("qemu-<cpu>");
        let interpreter = format!("/usr/bin/qemu-{cpu}-static");
        assert!(text.starts_with("enabled\n"), "{name}: {text}");
        assert!(
            text.contains(&format!("\ninterpreter {interpreter}\n")),
            "{name}: {text}"
        );
        assert!(
            c.rootfs()
                .join(interpreter.trim_start_matches('/'))
                .is_file(),
            "{interpreter} is the image's"
        );
        let flags = text
            .lines()
            .find_map(|l| l.strip_prefix("flags: "))
            .unwrap_or_default();
        assert!(flags.contains('F'), "{name}: {text}");
    }
}

/// Every probe passed, and the host's own architecture ran natively.
#[track_caller]
fn check_verdicts(report: &Value) {
    let results = report["results"].as_array().expect("results");
    for installed in sorted(&report["installed"]) {
        assert!(
            results.iter().any(|t| t["handler"] == installed.as_str()),
            "{installed} was tested: {results:?}"
        );
    }
    assert!(results.iter().any(|t| t["handler"] == "native"));
    for t in results {
        assert_eq!(t["ok"], true, "{t}");
    }
}

#[test]
fn the_image_under_runc_registers_and_tests_every_handler_and_exits_0() {
    require_root("running the image with runc in a namespace that maps the host's ids");
    let host_before = host_binfmt_state();
    let ns = PrivateBinfmt::with_users().expect("root");
    let c = Container::unpack(&ns, "binfmt-setup-init");
    c.configure(&["--json"], privileged);

    let r = c.run();
    r.expect_code(0);
    let report = r.json();
    check_handlers(&ns, &c, &report);
    check_verdicts(&report);
    let held = entries(&ns);
    // Every architecture the image has QEMU for, but the host's own (and a second ABI the
    // kernel runs itself, like 386 on amd64).
    assert!(held.len() >= 25, "{:?}", held.keys());
    assert!(
        report["skipped"]
            .as_array()
            .expect("skipped")
            .iter()
            .any(|s| s["reason"]
                .as_str()
                .is_some_and(|r| r.contains("host's own"))),
        "{report}"
    );
    // Privileged, the probe that asks QEMU about argv[0] ran in a private instance of the
    // container's own: P.
    assert!(
        held["qemu-aarch64"].contains("\nflags: PF\n"),
        "{}",
        held["qemu-aarch64"]
    );
    assert!(
        sorted(&report["supported"]).contains(&"linux/arm64".to_string()),
        "{report}"
    );
    assert!(!c.exists(), "runc run deletes the container when it ends");

    // The container and its files are gone; the handlers work on, because with F the kernel
    // opened each interpreter at registration. An arm64 busybox from the host runs there.
    std::fs::remove_dir_all(c.bundle()).expect("remove the bundle");
    let busybox = busybox_rootfs().join("bin/busybox");
    let r = ns.exec(&busybox, &["echo", "still emulated"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (Some(0), "still emulated\n"),
        "{}",
        r.stderr
    );
    assert_eq!(host_binfmt_state(), host_before, "the host's binfmt_misc");
}

#[test]
fn keep_running_under_runc_becomes_ready_and_sigterm_leaves_the_handlers() {
    require_root("running the image with runc in a namespace that maps the host's ids");
    let ns = PrivateBinfmt::with_users().expect("root");
    let c = Container::unpack(&ns, "binfmt-setup-daemon");
    c.configure(&["--keep-running"], privileged);
    let log = c.dir.path().join("stderr");
    let mut run = c.runc();
    run.arg("run").arg("--bundle").arg(c.bundle()).arg(&c.id);
    let mut child = run
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn runc run");
    let stderr = || std::fs::read_to_string(&log).unwrap_or_default();

    // The config's default readiness file, in the container's root file system.
    let ready = c.rootfs().join("run/binfmt-setup/ready");
    let became_ready = wait_for(LIMIT, || {
        ready.exists() || child.try_wait().ok().flatten().is_some()
    });
    assert!(
        became_ready && ready.exists(),
        "no readiness file (the container: {:?}); stderr:\n{}",
        child.try_wait(),
        stderr()
    );
    // The DaemonSet's readiness probe, as the kubelet runs it: cat, through the runtime.
    let probe = c.exec(&["cat", "/run/binfmt-setup/ready"]);
    probe.expect_code(0);
    assert!(probe.stdout.contains("qemu-aarch64"), "{}", probe.stdout);
    let held = entries(&ns);
    assert!(held.len() >= 25, "{:?}", held.keys());

    // A rollout or a drain: SIGTERM through the runtime.
    let mut kill = c.runc();
    kill.args(["kill", &c.id, "TERM"]);
    Run::within(&mut kill, LIMIT).expect_code(0);
    let ended = wait_for(LIMIT, || child.try_wait().ok().flatten().is_some());
    if !ended {
        let _ = child.kill();
    }
    let status = child.wait().expect("wait for runc run");
    assert_eq!(status.code(), Some(0), "stderr:\n{}", stderr());
    assert_eq!(
        entries(&ns),
        held,
        "SIGTERM leaves the handlers as they were"
    );
    assert!(!ready.exists(), "no longer ready once it has ended");
    assert!(!c.exists());
}

/// Remove every entry, from outside, so the next run starts from an empty instance.
fn clear(ns: &PrivateBinfmt) {
    for name in entries(ns).keys() {
        ns.control(name, "-1");
    }
}

/// The runtime's defaults plus `caps` in every capability set.
fn with_capabilities(caps: &'static [&'static str]) -> impl FnOnce(&mut Value) {
    move |config: &mut Value| {
        for set in CAPABILITY_SETS {
            let have = config["process"]["capabilities"][set]
                .as_array_mut()
                .expect("capability set");
            have.extend(caps.iter().map(|c| json!(c)));
        }
    }
}

/// What the container needs, measured: not all of privileged. /proc/sys stays read-only and
/// the masked paths masked in every run here (init mounts binfmt_misc over its directory).
#[test]
fn under_runc_the_image_needs_sys_admin_and_setfcap_and_nothing_more() {
    require_root("running the image with runc in a namespace that maps the host's ids");
    let ns = PrivateBinfmt::with_users().expect("root");
    let c = Container::unpack(&ns, "binfmt-setup-caps");
    assert!(
        c.made["linux"]["readonlyPaths"]
            .as_array()
            .is_some_and(|p| p.contains(&json!("/proc/sys")))
    );

    // The runtime's defaults (three capabilities): mounting binfmt_misc is refused, exit 3
    // with the fix, nothing registered.
    c.configure(&[], |_| {});
    let r = c.run();
    r.expect_code(3);
    assert!(
        r.stderr
            .contains("mounting it failed: Operation not permitted")
            && r.stderr.contains("privileged container"),
        "{}",
        r.stderr
    );
    assert!(entries(&ns).is_empty());

    // CAP_SYS_ADMIN: it mounts, registers and tests, and exits 0. But the probes that run
    // in a private instance of the container's own cannot: mapping root into a new user
    // namespace needs CAP_SETFCAP (Linux 5.12 and later). So no handler gets P, and 386 on
    // amd64 is not found to be native: it gets a QEMU handler.
    c.configure(&["--json"], with_capabilities(&["CAP_SYS_ADMIN"]));
    let r = c.run();
    r.expect_code(0);
    let report = r.json();
    check_handlers(&ns, &c, &report);
    check_verdicts(&report);
    let held = entries(&ns);
    assert!(
        held["qemu-aarch64"].contains("\nflags: F\n"),
        "{}",
        held["qemu-aarch64"]
    );
    if std::env::consts::ARCH == "x86_64" {
        assert!(held.contains_key("qemu-i386"), "{:?}", held.keys());
    }
    clear(&ns);

    // CAP_SYS_ADMIN and CAP_SETFCAP: what privileged gives.
    c.configure(
        &["--json"],
        with_capabilities(&["CAP_SYS_ADMIN", "CAP_SETFCAP"]),
    );
    let r = c.run();
    r.expect_code(0);
    let report = r.json();
    check_handlers(&ns, &c, &report);
    check_verdicts(&report);
    let held = entries(&ns);
    assert!(
        held["qemu-aarch64"].contains("\nflags: PF\n"),
        "{}",
        held["qemu-aarch64"]
    );
    if std::env::consts::ARCH == "x86_64" {
        assert!(!held.contains_key("qemu-i386"), "{:?}", held.keys());
    }
}

/// One instruction of a Dockerfile: its keyword and the rest, continuation lines joined.
fn dockerfile_stages(text: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for instruction in joined {
        let (word, rest) = instruction
            .split_once(' ')
            .unwrap_or((instruction.as_str(), ""));
        let rest = rest.split_whitespace().collect::<Vec<_>>().join(" ");
        if word == "FROM" {
            stages.push((rest, Vec::new()));
        } else {
            let stage = stages.last_mut().expect("an instruction before FROM");
            stage.1.push((word.to_string(), rest));
        }
    }
    stages
}

/// A layer's members: path -> (type, mode, owner, link target or size).
fn layer_tree(layer: &Path) -> BTreeMap<String, String> {
    // gzip(1) rather than flate2, which in a debug build takes seconds over 400 MB.
    let mut gunzip = Command::new("gzip")
        .arg("-dc")
        .arg(layer)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn gzip");
    let stream = gunzip.stdout.take().expect("gzip's stdout");
    // umoci 0.4 ends a layer without the last member's padding and the two zero blocks
    // (Docker and containerd read it as Go's archive/tar does): supply them.
    let padded = std::io::BufReader::new(stream).chain(std::io::repeat(0).take(1536));
    let mut archive = tar::Archive::new(padded);
    let mut tree = BTreeMap::new();
    for entry in archive.entries().expect("layer entries") {
        let entry = entry.expect("layer entry");
        let header = entry.header().clone();
        let path = entry.path().expect("path").display().to_string();
        let path = format!("/{}", path.trim_start_matches("./").trim_start_matches('/'));
        let path = path.trim_end_matches('/').to_string();
        let what = match header.entry_type() {
            tar::EntryType::Directory => "dir".to_string(),
            tar::EntryType::Symlink => format!(
                "link {}",
                header.link_name().ok().flatten().expect("target").display()
            ),
            tar::EntryType::Regular => format!("file {}", header.size().expect("size")),
            other => panic!("{path}: unexpected {other:?}"),
        };
        let mode = header.mode().expect("mode") & 0o7777;
        let owner = (header.uid().expect("uid"), header.gid().expect("gid"));
        tree.insert(
            if path.is_empty() { "/".into() } else { path },
            format!("{what} {mode:o} {}:{}", owner.0, owner.1),
        );
    }
    drop(archive);
    assert!(
        gunzip.wait().expect("wait for gzip").success(),
        "gzip -dc {}",
        layer.display()
    );
    tree
}

/// The same description of a directory laid out on disk, owners as they are there.
fn disk_tree(dir: &Path) -> BTreeMap<String, String> {
    use std::os::unix::fs::MetadataExt;
    let mut tree = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).expect("stat");
        let rel = format!("/{}", p.strip_prefix(dir).expect("inside").display());
        let what = if meta.is_dir() {
            for e in std::fs::read_dir(&p).expect("read_dir") {
                stack.push(e.expect("entry").path());
            }
            "dir".to_string()
        } else if meta.file_type().is_symlink() {
            format!("link {}", std::fs::read_link(&p).expect("link").display())
        } else {
            format!("file {}", meta.len())
        };
        let key = if rel == "/" {
            rel
        } else {
            rel.trim_end_matches('/').to_string()
        };
        tree.insert(
            key,
            format!(
                "{what} {:o} {}:{}",
                meta.mode() & 0o7777,
                meta.uid(),
                meta.gid()
            ),
        );
    }
    tree
}

/// The Dockerfile cannot be built here (its bases come from a registry), so this checks what
/// can be: its final stage is nothing but `image.sh --assemble`'s tree with the ENV and
/// ENTRYPOINT the script gives its image, and the script's image is exactly that tree.
#[test]
fn the_dockerfile_and_image_sh_make_the_same_image() {
    let text = std::fs::read_to_string(repo().join("configs/docker/Dockerfile")).expect("read");
    let stages = dockerfile_stages(&text);
    let names: Vec<&str> = stages.iter().map(|(from, _)| from.as_str()).collect();
    assert_eq!(
        names,
        [
            "rust:1-bookworm AS build",
            "debian:12-slim AS assemble",
            "scratch"
        ],
        "stages"
    );
    let find = |stage: usize, word: &str, has: &str| {
        stages[stage]
            .1
            .iter()
            .any(|(w, rest)| w == word && rest.contains(has))
    };
    assert!(find(
        0,
        "RUN",
        "scripts/build-static.sh && install -D -m 0755 \"target/$(uname -m)-unknown-linux-musl/release/binfmt-setup\" /out/binfmt-setup"
    ));
    assert!(find(
        1,
        "RUN",
        "install -y --no-install-recommends qemu-user-static busybox-static"
    ));
    assert!(find(
        1,
        "COPY",
        "--from=build /out/binfmt-setup /out/binfmt-setup"
    ));
    assert!(find(1, "COPY", "scripts/image.sh /src/scripts/image.sh"));
    assert!(find(
        1,
        "COPY",
        "configs/binfmt-setup.toml /src/configs/binfmt-setup.toml"
    ));
    assert!(find(
        1,
        "RUN",
        "/src/scripts/image.sh --assemble /rootfs --binary /out/binfmt-setup"
    ));

    // The final stage, instruction by instruction, against the config of the script's image.
    let config = image().config;
    let env = config["config"]["Env"].as_array().expect("Env");
    assert_eq!(env.len(), 1, "{env:?}");
    let entrypoint = serde_json::to_string(&config["config"]["Entrypoint"])
        .expect("json")
        .replace("\",\"", "\", \"");
    let want: Vec<(String, String)> = vec![
        ("COPY".into(), "--from=assemble /rootfs/ /".into()),
        ("ENV".into(), env[0].as_str().expect("env").into()),
        ("ENTRYPOINT".into(), entrypoint),
    ];
    assert_eq!(stages[2].1, want, "the Dockerfile's final stage");
    assert_eq!(config["config"]["Entrypoint"], json!(ENTRYPOINT));
    assert_eq!(config["os"], "linux");
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    assert_eq!(config["architecture"], arch);

    // The script's layer is what --assemble lays out (which the Dockerfile copies whole),
    // every member root's: the same paths, types, modes and sizes.
    let dir = open_tempdir();
    let tree = dir.path().join("rootfs");
    let binary = repo().join(format!(
        "target/{}-unknown-linux-musl/{PROFILE}/binfmt-setup",
        std::env::consts::ARCH
    ));
    let debs: Vec<PathBuf> = std::fs::read_dir(repo().join("target/image/debs"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("scripts/image.sh"))
        .arg("--assemble")
        .arg(&tree)
        .arg("--binary")
        .arg(&binary);
    if let [deb] = debs.as_slice() {
        cmd.arg("--busybox-deb").arg(deb);
    }
    Run::capture(&mut cmd).expect_code(0);
    let layer = layer_tree(&image().layer);
    assert_eq!(layer, disk_tree(&tree));
    for (path, what) in &layer {
        assert!(what.ends_with(" 0:0"), "{path} is root's: {what}");
    }
    for path in [
        "/usr/local/bin/binfmt-setup",
        "/usr/bin/qemu-aarch64-static",
        "/usr/bin/busybox",
        "/usr/share/doc/binfmt-setup/binfmt-setup.toml.example",
    ] {
        assert!(layer.contains_key(path), "{path} in {:?}", layer.keys());
    }
    assert_eq!(layer["/usr/bin/cat"], "link busybox 777 0:0");
    assert_eq!(layer["/tmp"], "dir 1777 0:0");
}
