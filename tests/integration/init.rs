//! `init`: the container and boot step, in private binfmt_misc instances: install, test,
//! export, bad configs, and `--keep-running` putting back what disappears.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::fleet_util::{open_tempdir, wait_for};
use crate::util::{PrivateBinfmt, Run, bin, repo};

fn example_config() -> String {
    repo()
        .join("configs/binfmt-setup.toml")
        .display()
        .to_string()
}

/// Entry names in the instance, sorted.
fn entries(ns: &PrivateBinfmt) -> Vec<String> {
    let mut names: Vec<String> = ns
        .listing()
        .into_iter()
        .filter(|n| n != "register" && n != "status")
        .collect();
    names.sort();
    names
}

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("binfmt-setup.toml");
    std::fs::write(&path, text).expect("write config");
    path.display().to_string()
}

fn names(v: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|n| n.as_str().map(str::to_string))
        .collect();
    out.sort();
    out
}

#[test]
fn init_with_the_example_config_registers_tests_and_exits_0() {
    let ns = PrivateBinfmt::new();
    let r = ns.run(&["init", "--json", "--config", &example_config()]);
    r.expect_code(0);
    let v = r.json();
    let want = [
        "qemu-aarch64",
        "qemu-arm",
        "qemu-loongarch64",
        "qemu-mips64el",
        "qemu-ppc64le",
        "qemu-riscv64",
        "qemu-s390x",
    ];
    assert_eq!(names(&v["installed"]), want);
    assert_eq!(entries(&ns), want);
    // Every entry's probe and the host's own (run natively), all through the kernel.
    let results = v["results"].as_array().expect("results");
    assert_eq!(results.len(), want.len() + 1, "{results:?}");
    assert!(results.iter().any(|t| t["handler"] == "native"));
    for t in results {
        assert_eq!(t["ok"], true, "{t}");
        for key in ["arch", "platform", "handler", "level", "ms"] {
            assert!(!t[key].is_null(), "{key} missing in {t}");
        }
    }
    assert!(names(&v["supported"]).iter().any(|p| p == "linux/arm64"));

    // Again: nothing changes, still tested, still 0.
    let r = ns.run(&["init", "--json", "--config", &example_config()]);
    r.expect_code(0);
    let v = r.json();
    assert_eq!(names(&v["unchanged"]), want);
    assert!(names(&v["installed"]).is_empty());
    assert_eq!(entries(&ns), want);

    // The human summary ends with one line that says it all.
    let r = ns.run(&["init", "--config", &example_config()]);
    r.expect_code(0);
    assert_eq!(
        r.stdout.lines().last(),
        Some("init: 7 handlers in place; 8 architectures tested ok")
    );
}

#[test]
fn init_mounts_binfmt_misc_itself_when_nothing_is_mounted() {
    // An empty directory of our own, not the usual path: a new mount namespace inherits
    // the host's mount there when it has one, and init would (fail to) write that instance.
    let dir = open_tempdir();
    let config = write_config(dir.path(), "architectures = [\"arm64\"]\n");
    let mount_point = dir.path().join("binfmt_misc");
    std::fs::create_dir(&mount_point).expect("mkdir");
    let script = format!(
        "{} --binfmt-dir {m} init --config {config} && cat {m}/qemu-aarch64",
        bin().display(),
        m = mount_point.display()
    );
    let r = Run::capture(
        Command::new("unshare")
            .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
            .arg(script),
    );
    r.expect_code(0);
    assert!(r.stdout.contains("installed  qemu-aarch64"), "{}", r.stdout);
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("flags: ") && l.contains('F')),
        "{}",
        r.stdout
    );
    assert!(
        std::fs::read_dir(&mount_point)
            .expect("dir")
            .next()
            .is_none(),
        "the mount stayed in the namespace"
    );
}

#[test]
fn a_broken_config_exits_2_naming_the_key_and_line() {
    let dir = open_tempdir();
    let ns = PrivateBinfmt::new();
    for (text, says) in [
        (
            "test = true\n\n[keep_running]\nintervall_seconds = 5\n",
            &["line 4", "keep_running.intervall_seconds"][..],
        ),
        (
            "architectures = [\"arm64\"]\n[flags]\nfix_binary = \"yes\"\n",
            &["line 3", "flags.fix_binary", "expected a boolean"][..],
        ),
        (
            "[keep_running]\ninterval_seconds = \"60s\"\n",
            &["line 2", "keep_running.interval_seconds"][..],
        ),
        (
            "architectures = [\n  \"arm64\",\n  \"vax\",\n]\n",
            &["line 3", "architectures", "vax"][..],
        ),
        ("architectures = [\"arm64\"\n", &["line 1"][..]),
    ] {
        let config = write_config(dir.path(), text);
        // --keep-running too: a bad config must end it at once, not start a loop.
        let r = ns.run(&["init", "--keep-running", "--config", &config]);
        r.expect_code(2);
        for s in says {
            assert!(r.stderr.contains(s), "{text:?}: {s:?} not in {}", r.stderr);
        }
        assert!(r.stderr.contains(&config), "names the file: {}", r.stderr);
    }
    let r = ns.run(&["init", "--config", "/nonexistent/binfmt-setup.toml"]);
    r.expect_code(2);
    assert!(
        entries(&ns).is_empty(),
        "nothing registered: {:?}",
        entries(&ns)
    );
}

#[test]
fn init_exits_1_when_a_test_fails() {
    // arm64 handed to the riscv64 emulator: it registers, but the probe cannot run.
    let dir = open_tempdir();
    let config = write_config(
        dir.path(),
        "architectures = [\"arm64\"]\n[interpreters]\narm64 = \"/usr/bin/qemu-riscv64-static\"\n",
    );
    let ns = PrivateBinfmt::new();
    let r = ns.run(&["init", "--json", "--config", &config]);
    r.expect_code(1);
    let v = r.json();
    let arm64 = v["results"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["arch"] == "arm64"))
        .cloned()
        .expect("arm64 result");
    assert_eq!(arm64["ok"], false);
    assert!(arm64["error"].is_string());
    assert!(!names(&v["supported"]).iter().any(|p| p == "linux/arm64"));
}

#[test]
fn init_exports_what_it_installed() {
    let dir = open_tempdir();
    let out = dir.path().join("binfmt.d");
    let config = write_config(
        dir.path(),
        &format!(
            "architectures = [\"arm64\", \"riscv64\"]\ntest = false\n[export]\nformat = \"systemd\"\ndirectory = \"{}\"\n",
            out.display()
        ),
    );
    let ns = PrivateBinfmt::new();
    let r = ns.run(&["init", "--json", "--config", &config]);
    r.expect_code(0);
    assert!(r.json()["results"].as_array().expect("results").is_empty());
    let conf = std::fs::read_to_string(out.join("qemu-aarch64.conf")).expect("exported file");
    assert!(conf.contains(":qemu-aarch64:M:0:"), "{conf}");
    assert!(out.join("qemu-riscv64.conf").exists());
}

/// A running `init --keep-running`, killed if the test ends (a failed assertion included)
/// before [`terminate`] stops it: no supervisor outlives its test.
struct Supervisor(Option<Child>);

impl Drop for Supervisor {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `init --keep-running` inside `ns` with a 1 s interval; stdout is not read.
fn keep_running(
    ns: &PrivateBinfmt,
    dir: &Path,
    on_sigterm: &str,
) -> (Supervisor, std::path::PathBuf) {
    let ready = dir.join("run/ready");
    let config = write_config(
        dir,
        &format!(
            "architectures = [\"arm64\", \"riscv64\"]\n[keep_running]\ninterval_seconds = 1\nreadiness_file = \"{}\"\non_sigterm = \"{on_sigterm}\"\n",
            ready.display()
        ),
    );
    let log = std::fs::File::create(dir.join("stderr")).expect("log file");
    let child = ns
        .command(bin())
        .args(["init", "--keep-running", "--config", &config])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn init --keep-running");
    (Supervisor(Some(child)), ready)
}

/// SIGTERM to the supervisor (nsenter execs binfmt-setup in place: the same pid) and its
/// status.
fn terminate(mut supervisor: Supervisor) -> Option<i32> {
    let mut child = supervisor.0.take()?;
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    let done = wait_for(Duration::from_secs(10), || {
        child.try_wait().ok().flatten().is_some()
    });
    if !done {
        let _ = child.kill();
    }
    child.wait().expect("wait").code()
}

#[test]
fn keep_running_puts_back_a_removed_entry_and_sigterm_leaves_the_handlers() {
    let dir = open_tempdir();
    let ns = PrivateBinfmt::new();
    let (child, ready) = keep_running(&ns, dir.path(), "leave");
    let log = || std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
    // A warning follows its repair: wait for it as for the repair.
    let logged = |warning: &str| {
        assert!(
            wait_for(Duration::from_secs(5), || log().contains(warning)),
            "{}",
            log()
        )
    };
    assert!(
        wait_for(Duration::from_secs(30), || ready.exists()),
        "no readiness file after install and test; stderr:\n{}",
        log()
    );
    assert_eq!(entries(&ns), ["qemu-aarch64", "qemu-riscv64"]);

    // Someone removes an entry; it is back within one interval (plus a little for a busy
    // machine).
    ns.control("qemu-aarch64", "-1");
    let removed = Instant::now();
    assert_eq!(entries(&ns), ["qemu-riscv64"]);
    assert!(
        wait_for(Duration::from_secs(5), || entries(&ns).len() == 2),
        "qemu-aarch64 was not registered again; stderr:\n{}",
        log()
    );
    let took = removed.elapsed();
    assert!(
        took < Duration::from_millis(2500),
        "took {took:?} for a 1 s interval"
    );
    logged("qemu-aarch64 had disappeared");
    assert!(ready.exists());

    // Someone disables an entry, then binfmt_misc as a whole: each is enabled again.
    ns.control("qemu-riscv64", "0");
    assert!(
        wait_for(Duration::from_secs(5), || ns
            .read("qemu-riscv64")
            .starts_with("enabled\n")),
        "qemu-riscv64 was not enabled again; stderr:\n{}",
        log()
    );
    logged("qemu-riscv64 had been disabled");
    ns.control("status", "0");
    assert!(
        wait_for(Duration::from_secs(5), || ns.read("status") == "enabled\n"),
        "binfmt_misc was not enabled again; stderr:\n{}",
        log()
    );
    logged("disabled as a whole");

    // SIGTERM: exit 0, handlers left in place, no longer ready.
    assert_eq!(terminate(child), Some(0), "stderr:\n{}", log());
    assert_eq!(entries(&ns), ["qemu-aarch64", "qemu-riscv64"]);
    assert!(!ready.exists());
}

#[test]
fn keep_running_uninstalls_on_sigterm_when_configured() {
    let dir = open_tempdir();
    let ns = PrivateBinfmt::new();
    let (child, ready) = keep_running(&ns, dir.path(), "uninstall");
    assert!(wait_for(Duration::from_secs(30), || ready.exists()));
    assert_eq!(entries(&ns).len(), 2);
    assert_eq!(terminate(child), Some(0));
    assert!(entries(&ns).is_empty(), "{:?}", entries(&ns));
}
