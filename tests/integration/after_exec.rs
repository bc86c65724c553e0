//! `diagnose --run` for what fails at and after exec, each situation built for real (fixture
//! programs from scripts/fixtures.sh, Debian's QEMU, registrations in private binfmt_misc
//! instances, roots holding Debian's arm64 loader) and checked against the kernel.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::Value;

use crate::util::{PrivateBinfmt, bin, fixture, fx, require_root};

/// `diagnose --json --run ARGS…` inside the instance, as its root.
fn diagnose(ns: &PrivateBinfmt, args: &[&str]) -> (Option<i32>, Value) {
    let mut all = vec!["diagnose", "--json", "--run"];
    all.extend_from_slice(args);
    let r = ns.run(&all);
    (r.code, r.json())
}

#[track_caller]
fn expect(v: &Value, cause: &str, errno: Option<&str>, agrees: bool) {
    assert_eq!(v["cause"], cause, "{v:#}");
    assert_eq!(v["errno"], errno.map_or(Value::Null, Value::from), "{v:#}");
    assert_eq!(v["run"]["agrees"], agrees, "{v:#}");
    assert!(v["fix"].as_str().is_some_and(|f| !f.is_empty()), "{v:#}");
}

/// A directory every uid may enter.
fn open_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

fn put(dir: &Path, name: &str, from: &Path, mode: u32) -> String {
    let to = dir.join(name.trim_start_matches('/'));
    std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
    std::fs::copy(from, &to).expect("copy");
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode)).expect("chmod");
    to.display().to_string()
}

fn script(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    p.display().to_string()
}

/// The two programs: a RISC-V vector program is predicted from its Tag_RISCV_arch;
/// a POWER10 program records nothing, so only the run shows it. Both get the QEMU_CPU value
/// a rerun proved.
#[test]
fn illegal_instruction_rvv_predicted_power10_found_both_fixed_by_a_proven_qemu_cpu() {
    let ns = PrivateBinfmt::new();
    ns.run(&["install", "--arch", "riscv64,ppc64le"])
        .expect_code(0);

    let (code, v) = diagnose(&ns, &[&fx("riscv64-rvv")]);
    assert_eq!(code, Some(1));
    expect(&v, "ILLEGAL_INSTRUCTION", None, true);
    assert_eq!(v["run"]["signal"], "SIGILL", "{v:#}");
    assert_eq!(v["needs"]["extra"][0], "v", "{v:#}");
    assert_eq!(v["available"]["by"], "qemu-riscv64", "{v:#}");
    assert_eq!(v["qemu_cpu"]["value"], "rv64,v=true", "{v:#}");
    assert_eq!(v["qemu_cpu"]["proven"], true, "{v:#}");

    let (code, v) = diagnose(&ns, &[&fx("ppc64le-power10")]);
    assert_eq!(code, Some(1));
    expect(&v, "ILLEGAL_INSTRUCTION", None, false);
    assert_eq!(v["predicted"], "OK", "{v:#}");
    assert_eq!(v["available"]["level"], "power9", "{v:#}");
    assert_eq!(v["qemu_cpu"]["value"], "power10", "{v:#}");
    assert_eq!(v["qemu_cpu"]["proven"], true, "{v:#}");
    assert!(
        v["notes"][0]
            .as_str()
            .is_some_and(|n| n.contains("QEMU_CPU=power10: started; exited with status 42")),
        "{v:#}"
    );
}

#[test]
fn library_missing_native_and_in_an_arm64_root_with_only_the_loader() {
    require_root("--run with --root (chroot)");
    let ns = PrivateBinfmt::new();
    let (_, v) = diagnose(&ns, &[&fx("amd64-needs-stub")]);
    expect(&v, "LIBRARY_MISSING", None, true);
    assert_eq!(v["run"]["exit"], 127, "{v:#}");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("libbinfmt-setup-stub.so.1")),
        "{v:#}"
    );

    ns.run(&["install", "--arch", "arm64"]).expect_code(0);
    let root = open_dir();
    let cross = Path::new("/usr/aarch64-linux-gnu/lib");
    put(
        root.path(),
        "/lib/ld-linux-aarch64.so.1",
        &cross.join("ld-linux-aarch64.so.1"),
        0o755,
    );
    put(root.path(), "/bin/app", &fixture("arm64-needs-libc"), 0o755);
    let r = root.path().display().to_string();
    let (_, v) = diagnose(&ns, &["--root", &r, "/bin/app"]);
    expect(&v, "LIBRARY_MISSING", None, true);
    assert!(
        v["fix"]
            .as_str()
            .is_some_and(|f| f.contains("libc.so.6 (Debian: libc6:arm64)")),
        "{v:#}"
    );
    // With libc in place it runs.
    put(
        root.path(),
        "/lib/libc.so.6",
        &cross.join("libc.so.6"),
        0o755,
    );
    let (code, v) = diagnose(&ns, &["--root", &r, "/bin/app"]);
    assert_eq!(
        (code, &v["cause"], &v["run"]["exit"]),
        (Some(0), &Value::from("OK"), &Value::from(42)),
        "{v:#}"
    );
}

#[test]
fn text_busy_from_a_writer_inside_and_one_only_the_run_reveals() {
    let ns = PrivateBinfmt::new();
    let dir = open_dir();
    let prog = put(dir.path(), "busy", &fixture("amd64"), 0o755);
    // A writer in the namespace: diagnose sees it in /proc and names it.
    let mut holder = ns
        .command("sh")
        .args([
            "-c",
            &format!("exec 3>>'{prog}'; echo ready; exec sleep 60"),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the writer");
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().expect("stdout")),
        &mut ready,
    )
    .expect("writer ready");
    let (_, v) = diagnose(&ns, &[&prog]);
    expect(&v, "TEXT_BUSY", Some("ETXTBSY"), true);
    let pid = holder.id().to_string();
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains(&format!("(pid {pid})"))),
        "names the writer, pid {pid}: {v:#}"
    );
    let _ = holder.kill();
    let _ = holder.wait();

    // This test process writes it: from inside the namespace its descriptors cannot be
    // read (measured: EACCES on /proc/PID/fd), so only the run shows ETXTBSY.
    let writer = std::fs::OpenOptions::new()
        .append(true)
        .open(&prog)
        .expect("open for writing");
    let (_, v) = diagnose(&ns, &[&prog]);
    assert_eq!(
        (&v["cause"], &v["predicted"]),
        (&Value::from("TEXT_BUSY"), &Value::from("OK")),
        "{v:#}"
    );
    assert_eq!(v["run"]["errno"], "ETXTBSY", "{v:#}");
    assert_eq!(v["run"]["agrees"], false, "{v:#}");
    drop(writer);
    let (code, v) = diagnose(&ns, &[&prog]);
    assert_eq!((code, &v["cause"]), (Some(0), &Value::from("OK")), "{v:#}");
}

#[test]
fn shebang_loop_and_a_line_past_the_kernels_buffer() {
    let ns = PrivateBinfmt::new();
    let dir = open_dir();
    let own = dir.path().join("self").display().to_string();
    let looped = script(dir.path(), "self", &format!("#!{own}\n"));
    let (_, v) = diagnose(&ns, &[&looped]);
    expect(&v, "SHEBANG_LOOP", Some("ELOOP"), true);

    // "#!" and a 254-byte path: the newline is past the 256 bytes the kernel reads.
    let long = format!("/{}", "x".repeat(253));
    let too_long = script(dir.path(), "long", &format!("#!{long}\nexit 7\n"));
    let (_, v) = diagnose(&ns, &[&too_long]);
    expect(&v, "SHEBANG_TOO_LONG", Some("ENOEXEC"), true);
}

/// A setuid-root arm64 program that exits with its effective uid, run by uid 1000 through a
/// handler without C (it runs as 1000: exit 232) and with C (as root: exit 0).
#[test]
fn setuid_needs_credential_measured_by_the_programs_own_euid() {
    let ns = PrivateBinfmt::with_users().expect("a namespace mapping uids 0-65535 (root)");
    ns.run(&["install", "--arch", "arm64"]).expect_code(0);
    let dir = open_dir();
    let prog = put(dir.path(), "whoami", &fixture("arm64-euid"), 0o755);
    std::os::unix::fs::chown(&prog, Some(0), Some(0)).expect("chown");
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o4755)).expect("chmod");
    let as_user = |args: &[&str]| {
        let r = crate::util::Run::capture(
            ns.command("setpriv")
                .args(["--reuid=1000", "--regid=1000", "--clear-groups"])
                .arg(bin())
                .args(args),
        );
        r.json()
    };
    let v = as_user(&["diagnose", "--json", "--run", &prog]);
    expect(&v, "SETUID_NEEDS_CREDENTIAL", None, true);
    assert_eq!(v["run"]["exit"], 1000 & 0xff, "it ran as uid 1000: {v:#}");

    let r = ns.run(&["install", "--arch", "arm64", "--credential"]);
    r.expect_code(0);
    assert!(
        r.stderr.contains("QEMU_LD_PREFIX"),
        "C is warned about: {}",
        r.stderr
    );
    let v = as_user(&["diagnose", "--json", "--run", &prog]);
    assert_eq!(
        (&v["cause"], &v["run"]["exit"]),
        (&Value::from("OK"), &Value::from(0)),
        "{v:#}"
    );
}
