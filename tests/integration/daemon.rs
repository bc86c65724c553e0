//! `scan docker-daemon:` against a dockerd of the test's own (`dockerd::Dockerd`), and
//! `docker save | scan -`: both give the verdict the OCI layout of the same image gives.

use std::process::Command;

use serde_json::Value;

use crate::dockerd::{DOCKER, Dockerd};
use crate::registry::{scan, two_platform_layout};
use crate::scan::{open_tempdir, paths, s, tool};
use crate::util::{Run, bin};

/// What a verdict is, whatever the image was read from.
fn verdict(r: &Run) -> (Option<i32>, Value, Vec<String>, Value, Value, Value) {
    let v = r.json();
    let platforms: Vec<String> = v["mismatches"]
        .as_array()
        .expect("mismatches")
        .iter()
        .map(|m| format!("{} {}", m["path"], m["platform"]))
        .collect();
    (
        r.code,
        v["expected"].clone(),
        platforms,
        v["files"].clone(),
        v["elf_files"].clone(),
        v["ok"].clone(),
    )
}

#[test]
fn docker_daemon_and_a_docker_save_stream_agree_with_the_oci_layout() {
    let t = open_tempdir();
    let layout = two_platform_layout(t.path());
    let daemon = Dockerd::start();
    let images = [
        ("arm64", "localhost/app:1", 1),
        ("arm64-clean", "localhost/app:clean", 0),
    ];
    for (tag, name, _) in images {
        let archive = t.path().join(format!("{tag}.tar"));
        tool(
            "skopeo",
            &[
                "copy",
                "--quiet",
                &format!("oci:{}:{tag}", s(&layout)),
                &format!("docker-archive:{}:{name}", s(&archive)),
            ],
        );
        daemon.load(&archive);
    }
    for (tag, name, code) in images {
        let from_layout = scan(&["--json", &format!("oci:{}:{tag}", s(&layout))]);
        from_layout.expect_code(code);
        let want = verdict(&from_layout);
        if code == 1 {
            assert_eq!(paths(&from_layout.json()["mismatches"]), ["/server"]);
        }

        let from_daemon = scan(&[
            "--json",
            "--daemon-host",
            &daemon.host(),
            &format!("docker-daemon:{name}"),
        ]);
        assert_eq!(
            verdict(&from_daemon),
            want,
            "docker-daemon:{name}: {}",
            from_daemon.stderr
        );

        // docker save, piped; DOCKER_HOST reaches both the CLI and scan (which ignores it here).
        let piped = Run::capture(daemon.command("bash").args([
            "-c",
            &format!(
                "set -o pipefail; {DOCKER} save {name} | {} scan --json -",
                bin().display()
            ),
        ]));
        assert_eq!(
            verdict(&piped),
            want,
            "docker save {name} | scan -: {}",
            piped.stderr
        );
        assert_eq!(piped.json()["root"], "-");
    }

    // An image the daemon does not have is bad input; a daemon that is not there, the
    // environment's refusal.
    let r = Run::capture(
        daemon
            .command(bin())
            .args(["scan", "docker-daemon:localhost/none:1"]),
    );
    r.expect_code(2);
    assert!(
        r.stderr.contains("no such image") && r.stderr.contains("docker images"),
        "{}",
        r.stderr
    );
    let gone = t.path().join("no.sock");
    let r = scan(&[
        "--daemon-host",
        &format!("unix://{}", s(&gone)),
        "docker-daemon:localhost/app:1",
    ]);
    r.expect_code(3);
    assert!(
        r.stderr.contains("cannot reach the Docker daemon"),
        "{}",
        r.stderr
    );
}

/// `scan -` without a daemon: a gzip root file system tar and a skopeo docker-archive on
/// standard input read as the same files on disk do; a terminal or junk is refused.
#[test]
fn standard_input_reads_tars_and_image_archives_as_files_are_read() {
    let t = open_tempdir();
    let layout = two_platform_layout(t.path());
    let tgz = t.path().join("rootfs.tar.gz");
    tool(
        "tar",
        &["-C", s(&t.path().join("arm64-root")), "-czf", s(&tgz), "."],
    );
    let archive = t.path().join("app.tar");
    tool(
        "skopeo",
        &[
            "copy",
            "--quiet",
            &format!("oci:{}:arm64", s(&layout)),
            &format!("docker-archive:{}:localhost/app:1", s(&archive)),
        ],
    );
    for (file, kind) in [(&tgz, "tar"), (&archive, "image-archive")] {
        let from_file = scan(&["--json", s(file)]);
        from_file.expect_code(1);
        let piped = Run::capture(Command::new("bash").args([
            "-c",
            &format!("{} scan --json - < {}", bin().display(), s(file)),
        ]));
        assert_eq!(verdict(&piped), verdict(&from_file), "{}", piped.stderr);
        assert_eq!(piped.json()["kind"], kind);
        assert_eq!(paths(&piped.json()["mismatches"]), ["/server"]);
    }
    let junk = Run::capture(Command::new("bash").args([
        "-c",
        &format!("echo not a tar | {} scan -", bin().display()),
    ]));
    junk.expect_code(2);
    assert!(
        junk.stderr.contains("standard input is not a tar stream"),
        "{}",
        junk.stderr
    );
}
