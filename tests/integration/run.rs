//! `run`: a command with its own binfmt_misc, as an unprivileged user, in an arm64 busybox
//! root. Every instance here is the command's own; the host's binfmt_misc is only compared.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::fleet_util::{busybox_rootfs, host_binfmt_state, unprivileged, unprivileged_command};
use crate::util::{Run, bin};

fn root() -> String {
    busybox_rootfs().display().to_string()
}

#[test]
fn unprivileged_run_in_an_arm64_busybox_root_prints_aarch64_and_leaves_the_host_alone() {
    let rootfs = root();
    let before = host_binfmt_state();
    // The user really is unprivileged on the host.
    let who = Run::capture(unprivileged_command("id").arg("-u"));
    assert_ne!(
        who.stdout.trim(),
        "0",
        "the rootless test must not run as root"
    );

    let r = Run::capture(&mut unprivileged(&[
        "run", "--rootfs", &rootfs, "--", "/bin/sh", "-c", "uname -m",
    ]));
    r.expect_code(0);
    assert_eq!(r.stdout, "aarch64\n", "stderr: {}", r.stderr);
    assert_eq!(
        host_binfmt_state(),
        before,
        "the host's binfmt_misc changed (mounted?, listing)"
    );

    // Inside: root of its own namespace, its own instance with the handler, /dev and /proc
    // in place, PATH searched in the root (busybox applets are in /bin only).
    let r = Run::capture(&mut unprivileged(&[
        "run",
        "--arch",
        "arm64",
        "--rootfs",
        &rootfs,
        "--",
        "sh",
        "-c",
        "id -u; head -n1 /proc/sys/fs/binfmt_misc/qemu-aarch64; ls /proc/sys/fs/binfmt_misc | wc -l; \
         echo x > /dev/null && head -c 3 /dev/zero | wc -c; readlink /proc/self/exe",
    ]));
    r.expect_code(0);
    let lines: Vec<&str> = r.stdout.lines().map(str::trim).collect();
    assert_eq!(
        lines,
        ["0", "enabled", "3", "3", "/bin/busybox"],
        "stderr: {}",
        r.stderr
    );
    assert_eq!(host_binfmt_state(), before);
}

#[test]
fn run_passes_the_exit_code_through() {
    let rootfs = root();
    // A foreign shell's own status, and a host command's.
    Run::capture(&mut unprivileged(&[
        "run", "--rootfs", &rootfs, "--", "/bin/sh", "-c", "exit 7",
    ]))
    .expect_code(7);
    Run::capture(&mut unprivileged(&[
        "run", "--arch", "arm64", "--", "sh", "-c", "exit 7",
    ]))
    .expect_code(7);
    // Death by a signal: 128 + N, as shells say it.
    Run::capture(&mut unprivileged(&[
        "run",
        "--rootfs",
        &rootfs,
        "--",
        "/bin/sh",
        "-c",
        "kill -KILL $$",
    ]))
    .expect_code(137);
    Run::capture(&mut unprivileged(&["run", "--arch", "arm64", "--", "true"])).expect_code(0);
}

/// Start `args` with stdout piped, wait for its first line to be `ready`, send `signal` to
/// binfmt-setup itself, and return the finished run.
fn signal_after_ready(mut cmd: Command, signal: Signal) -> Run {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn binfmt-setup run");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    out.read_line(&mut first).expect("read the ready line");
    assert_eq!(first.trim(), "ready", "the command did not start");
    // setpriv execs binfmt-setup in place: the child's pid is binfmt-setup's.
    kill(Pid::from_raw(child.id() as i32), signal).expect("send signal");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).expect("read stdout");
    let output = child.wait_with_output().expect("wait");
    Run {
        code: output.status.code(),
        stdout: rest,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn signals_sent_to_run_reach_the_command() {
    let rootfs = root();
    // A foreign shell that traps SIGTERM and says so.
    let cmd = unprivileged(&[
        "run",
        "--rootfs",
        &rootfs,
        "--",
        "/bin/sh",
        "-c",
        "trap 'echo got TERM; exit 9' TERM; echo ready; while :; do sleep 0.1; done",
    ]);
    let r = signal_after_ready(cmd, Signal::SIGTERM);
    r.expect_code(9);
    assert_eq!(r.stdout.trim(), "got TERM");

    // A command that does not handle SIGINT dies of it: 130.
    let cmd = unprivileged(&[
        "run",
        "--arch",
        "arm64",
        "--",
        "sh",
        "-c",
        "echo ready; exec sleep 30",
    ]);
    signal_after_ready(cmd, Signal::SIGINT).expect_code(130);
}

#[test]
fn run_refuses_bad_input_with_2() {
    let rootfs = root();
    let file = bin().display().to_string();
    for (args, says) in [
        (
            vec!["run", "--rootfs", "/nonexistent/root", "--", "/bin/sh"],
            "/nonexistent/root",
        ),
        (
            vec!["run", "--rootfs", &file, "--", "/bin/sh"],
            "not a directory",
        ),
        (
            vec!["run", "--rootfs", &rootfs, "--", "no-such-command"],
            "no-such-command: command not found",
        ),
        (
            vec![
                "run",
                "--rootfs",
                &rootfs,
                "--",
                "/usr/bin/qemu-aarch64-static",
            ],
            "/usr/bin/qemu-aarch64-static: no such file",
        ),
        (vec!["run", "--"], "CMD"),
        (vec!["run", "--arch", "vax", "--", "true"], "vax"),
    ] {
        let r = Run::capture(&mut unprivileged(&args));
        r.expect_code(2);
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
    }
    let r = Run::capture(&mut unprivileged(&[
        "run",
        "--rootfs",
        &rootfs,
        "--",
        "no-such-command",
    ]));
    assert!(
        r.stderr.contains(&format!("inside {rootfs}")),
        "{}",
        r.stderr
    );
}

#[test]
fn run_without_user_namespaces_exits_3_naming_the_requirement() {
    // user.max_user_namespaces is per user namespace: 0 inside one of our own turns them off
    // for everything below it, and nothing outside.
    let script = format!(
        "echo 0 > /proc/sys/user/max_user_namespaces || exit 99; exec {} run -- true",
        bin().display()
    );
    let r = Run::capture(
        Command::new("unshare")
            .args(["--user", "--map-root-user", "sh", "-c"])
            .arg(script),
    );
    assert_ne!(
        r.code,
        Some(99),
        "cannot set user.max_user_namespaces inside a user namespace: {}",
        r.stderr
    );
    r.expect_code(3);
    assert!(
        r.stderr.contains("Linux 6.7") && r.stderr.contains("max_user_namespaces"),
        "{}",
        r.stderr
    );
}

/// As the tests' own user (root, in CI) `run` makes its own instance too: it never uses or
/// changes the host's, even where root could.
#[test]
fn run_as_the_calling_user_root_included_uses_its_own_instance() {
    let before = host_binfmt_state();
    let r = crate::util::run(&[
        "run",
        "--arch",
        "arm64",
        "--",
        "sh",
        "-c",
        "ls /proc/sys/fs/binfmt_misc",
    ]);
    r.expect_code(0);
    let mut names: Vec<&str> = r.stdout.lines().collect();
    names.sort();
    assert_eq!(names, ["qemu-aarch64", "register", "status"]);
    assert_eq!(host_binfmt_state(), before);
}
