//! Docker Engine (Debian's docker.io, BuildKit built in) on our handlers. The test starts a
//! dockerd of its own inside a private user, mount, network and PID namespace whose ids
//! 0-65535 are the host's (written by the test, as root), with its own binfmt_misc; the
//! handlers are registered there by `binfmt-setup install`, so the host's binfmt_misc is
//! never read or written. The daemon and everything it starts die with the namespace.

use std::process::Command;

use crate::dockerd::{DOCKER, Dockerd};
use crate::util::{Run, bin, repo};

/// Debian's CLI against `d`, with BuildKit (Docker 20.10 builds with the classic builder
/// unless asked).
fn docker(d: &Dockerd, args: &[&str]) -> Run {
    Run::capture(d.command(DOCKER).env("DOCKER_BUILDKIT", "1").args(args))
}

/// The binary under test inside the daemon's namespaces, with its binfmt_misc.
fn binfmt_setup(d: &Dockerd, args: &[&str]) -> Run {
    Run::capture(d.inside(bin()).args(args).env_remove("BINFMT_SETUP_DIR"))
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
    d.load(&images.join("arm64.tar"));
    let work = tempfile::tempdir().expect("tempdir");
    let ctx = work.path().join("ctx");
    std::fs::create_dir(&ctx).expect("mkdir ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM localhost/busybox:arm64\nRUN uname -m > /arch\n",
    )
    .expect("Dockerfile");
    let ctx = ctx.display().to_string();
    let build = |tag: &str| {
        docker(
            &d,
            &[
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
            ],
        )
    };

    // Without a handler: the RUN step cannot exec, and diagnose says why and what to do.
    let r = build("localhost/no-handler:1");
    assert_ne!(r.code, Some(0), "built without a handler: {}", r.stdout);
    assert!(r.stderr.contains("exec format error"), "{}", r.stderr);
    let root = repo().join("target/rootfs/arm64").display().to_string();
    let r = binfmt_setup(&d, &["diagnose", "--json", "--root", &root, "/bin/sh"]);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    let v = r.json();
    assert_eq!(v["cause"], "NO_HANDLER", "{v}");
    assert!(
        v["fix"]
            .as_str()
            .is_some_and(|f| f.contains("binfmt-setup install --arch arm64")),
        "{v}"
    );

    binfmt_setup(&d, &["install", "--arch", "arm64"]).expect_ok("install");
    build("localhost/arm64:1").expect_ok("docker build --platform linux/arm64");
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
        docker(&d, &all)
    };
    let r = run(&["cat", "/arch"]);
    r.expect_ok("docker run cat /arch");
    assert_eq!(r.stdout.trim(), "aarch64", "what the RUN step recorded");
    let r = run(&["uname", "-m"]);
    r.expect_ok("docker run uname -m");
    assert_eq!(r.stdout.trim(), "aarch64");
    let r = binfmt_setup(&d, &["diagnose", "--root", &root, "/bin/sh"]);
    assert_eq!(r.code, Some(0), "{}", r.stdout);
}
