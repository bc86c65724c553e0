//! Docker Engine (Debian's docker.io, BuildKit built in) on our handlers. The test starts a
//! dockerd of its own inside a private user, mount, network and PID namespace whose ids
//! 0-65535 are the host's (written by the test, as root), with its own binfmt_misc; the
//! handlers are registered there by `binfmt-setup install`, so the host's binfmt_misc is
//! never read or written. The daemon and everything it starts die with the namespace.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{HOST_BINFMT, Run, bin, repo, require_root};

/// Debian's Docker CLI. Not whatever `docker` PATH finds first: a newer CLI without the
/// buildx plugin refuses BuildKit builds against this daemon.
const DOCKER: &str = "/usr/bin/docker";

/// A dockerd in namespaces of its own; stopped (and its namespaces gone) on drop.
pub struct Dockerd {
    holder: Child,
    release: Option<ChildStdin>,
    /// The namespace's first process as the host numbers it: nsenter's target.
    inner: u32,
    dir: tempfile::TempDir,
}

impl Dockerd {
    pub fn start() -> Dockerd {
        require_root("a dockerd in a user namespace whose ids are the host's");
        for tool in ["dockerd", DOCKER, "ip"] {
            let found = if tool.starts_with('/') {
                Path::new(tool).exists()
            } else {
                crate::util::which(tool).is_some()
            };
            assert!(found, "{tool} is missing: scripts/setup.sh installs it");
        }
        let dir = tempfile::Builder::new()
            .prefix("bfs-docker")
            .tempdir()
            .expect("tempdir");
        let t = dir.path().display();
        // The shell waits for its maps, mounts its binfmt_misc, starts dockerd, says so,
        // and stops dockerd when the test closes its stdin.
        let script = format!(
            "read -r go || exit 1\n\
             mount -t binfmt_misc binfmt_misc {HOST_BINFMT} || exit 1\n\
             ip link set lo up || exit 1\n\
             dockerd --data-root {t}/data --exec-root {t}/exec --pidfile {t}/dockerd.pid \
               -H unix://{t}/docker.sock --iptables=false --ip6tables=false --bridge=none \
               --log-level warn >{t}/dockerd.log 2>&1 &\n\
             echo started\n\
             read -r stop\n\
             kill $! && wait $!\n"
        );
        let mut holder = Command::new("unshare")
            .args([
                "--user",
                "--mount",
                "--net",
                "--pid",
                "--fork",
                "--mount-proc",
                "sh",
                "-c",
                &script,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn unshare (util-linux)");
        let outer = holder.id();
        // unshare makes the user namespace itself, then forks the shell into the new PID
        // namespace: wait for the first, write its maps, find the second.
        let ours = std::fs::read_link("/proc/self/ns/user").expect("own user namespace");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_link(format!("/proc/{outer}/ns/user")).ok() == Some(ours.clone()) {
            assert!(Instant::now() < deadline, "unshare made no user namespace");
            std::thread::sleep(Duration::from_millis(5));
        }
        for map in ["uid_map", "gid_map"] {
            std::fs::write(format!("/proc/{outer}/{map}"), "0 0 65536\n")
                .unwrap_or_else(|e| panic!("write /proc/{outer}/{map}: {e}"));
        }
        let mut release = holder.stdin.take().expect("holder stdin");
        release.write_all(b"go\n").expect("release the holder");
        let mut lines = BufReader::new(holder.stdout.take().expect("holder stdout"));
        let mut line = String::new();
        lines.read_line(&mut line).expect("holder says started");
        assert_eq!(line.trim(), "started", "the namespace could not be set up");
        let children = std::fs::read_to_string(format!("/proc/{outer}/task/{outer}/children"))
            .expect("unshare's child");
        let inner: u32 = children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the namespace's first process");
        let d = Dockerd {
            holder,
            release: Some(release),
            inner,
            dir,
        };
        d.wait_ready();
        d
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if self.docker(&["version"]).code == Some(0) {
                return;
            }
            let log =
                std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer within 90 s; its log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The Docker CLI against this daemon (from outside: its socket is a file on the
    /// shared file system).
    pub fn docker(&self, args: &[&str]) -> Run {
        Run::capture(
            Command::new(DOCKER)
                .env(
                    "DOCKER_HOST",
                    format!("unix://{}", self.path("docker.sock").display()),
                )
                .env("DOCKER_BUILDKIT", "1")
                .env("DOCKER_CONFIG", self.path("cli"))
                .args(args)
                .stdin(Stdio::null()),
        )
    }

    /// The binary under test inside the daemon's namespaces (user, mount, PID), as root
    /// there: it reads and writes the daemon's binfmt_misc.
    pub fn binfmt_setup(&self, args: &[&str]) -> Run {
        Run::capture(
            Command::new("nsenter")
                .args(["-t", &self.inner.to_string(), "-U", "-m", "-p", "--"])
                .arg(bin())
                .args(args)
                .env_remove("BINFMT_SETUP_DIR")
                .stdin(Stdio::null()),
        )
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // Closing stdin makes the holder stop dockerd and exit; its PID namespace takes
        // whatever is left (containerd, shims) with it.
        drop(self.release.take());
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.holder.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

fn expect_ok(r: &Run, what: &str) {
    assert_eq!(
        r.code,
        Some(0),
        "{what} failed\nstdout:\n{}\nstderr:\n{}",
        r.stdout,
        r.stderr
    );
}

/// `docker build --platform linux/arm64` with a `RUN` step fails with exec format error
/// without a handler, `diagnose` on the image's own program names the cause and the fix,
/// and after `binfmt-setup install` the same build works and the image runs.
#[test]
fn docker_builds_and_runs_arm64_on_installed_handlers() {
    let images = repo().join("target/images");
    let status = Command::new("bash")
        .arg(repo().join("scripts/images.sh"))
        .arg(&images)
        .status()
        .expect("run scripts/images.sh");
    assert!(status.success(), "scripts/images.sh failed");
    let d = Dockerd::start();
    let archive = images.join("arm64.tar").display().to_string();
    expect_ok(&d.docker(&["load", "-q", "-i", &archive]), "docker load");
    let ctx = d.path("ctx");
    std::fs::create_dir(&ctx).expect("mkdir ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM localhost/busybox:arm64\nRUN uname -m > /arch\n",
    )
    .expect("Dockerfile");
    let ctx = ctx.display().to_string();
    let build = |tag: &str| {
        d.docker(&[
            "build",
            "--platform",
            "linux/arm64",
            "--network",
            "none",
            "--progress",
            "plain",
            "-t",
            tag,
            &ctx,
        ])
    };

    // Without a handler: the RUN step cannot exec, and diagnose says why and what to do.
    let r = build("localhost/no-handler:1");
    assert_ne!(r.code, Some(0), "built without a handler: {}", r.stdout);
    assert!(r.stderr.contains("exec format error"), "{}", r.stderr);
    let root = repo().join("target/rootfs/arm64").display().to_string();
    let r = d.binfmt_setup(&["diagnose", "--json", "--root", &root, "/bin/sh"]);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    let v = r.json();
    assert_eq!(v["cause"], "NO_HANDLER", "{v}");
    assert!(
        v["fix"]
            .as_str()
            .is_some_and(|f| f.contains("binfmt-setup install --arch arm64")),
        "{v}"
    );

    expect_ok(&d.binfmt_setup(&["install", "--arch", "arm64"]), "install");
    expect_ok(
        &build("localhost/arm64:1"),
        "docker build --platform linux/arm64",
    );
    let run = |args: &[&str]| {
        let mut all = vec![
            "run",
            "--rm",
            "--platform",
            "linux/arm64",
            "--network",
            "none",
            "localhost/arm64:1",
        ];
        all.extend_from_slice(args);
        d.docker(&all)
    };
    let r = run(&["cat", "/arch"]);
    expect_ok(&r, "docker run cat /arch");
    assert_eq!(r.stdout.trim(), "aarch64", "what the RUN step recorded");
    let r = run(&["uname", "-m"]);
    expect_ok(&r, "docker run uname -m");
    assert_eq!(r.stdout.trim(), "aarch64");
    let r = d.binfmt_setup(&["diagnose", "--root", &root, "/bin/sh"]);
    assert_eq!(r.code, Some(0), "{}", r.stdout);
}
