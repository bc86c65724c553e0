//! Instruction-set levels and QEMU's own facts, for real: level probes through Debian's QEMU
//! 7.2 handlers in private instances, the host's CPU natively, and the known-issue warning
//! from a table given with `--qemu-table`.

use crate::util::{PrivateBinfmt, Run, fx};

fn results(r: &Run) -> Vec<serde_json::Value> {
    r.json()["results"].as_array().expect("results").clone()
}

fn by<'a>(rs: &'a [serde_json::Value], key: &str, value: &str) -> &'a serde_json::Value {
    rs.iter()
        .find(|r| r[key] == value)
        .unwrap_or_else(|| panic!("no result with {key} {value}: {rs:?}"))
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

/// The amd64 platforms this host's CPU has, by /proc/cpuinfo's flags (the level probe must
/// find the same, natively).
fn native_amd64_platforms() -> Vec<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").expect("/proc/cpuinfo");
    let flags: Vec<&str> = info
        .lines()
        .find(|l| l.starts_with("flags"))
        .expect("flags line")
        .split_whitespace()
        .collect();
    let has = |want: &[&str]| want.iter().all(|f| flags.contains(f));
    let mut out = vec!["linux/amd64".to_string()];
    if has(&["popcnt", "sse4_2", "ssse3", "sse4_1", "lahf_lm", "cx16"]) {
        out.push("linux/amd64/v2".into());
        if has(&["avx2", "fma", "f16c", "bmi1", "bmi2", "movbe"]) {
            out.push("linux/amd64/v3".into());
            if has(&["avx512f", "avx512bw", "avx512dq", "avx512cd", "avx512vl"]) {
                out.push("linux/amd64/v4".into());
            }
        }
    }
    out
}

/// This host's own CPU, proven by running the amd64 level probe natively: `platforms` lists
/// every amd64 variant it has (on this project's machines, with AVX-512, v2 to v4).
#[test]
#[cfg(target_arch = "x86_64")]
fn platforms_lists_the_hosts_own_proven_variants() {
    let ns = PrivateBinfmt::new();
    let want = native_amd64_platforms();
    let p = ns.run(&["platforms"]);
    p.expect_code(0);
    let list: Vec<&str> = p.stdout.trim().split(',').collect();
    assert_eq!(&list[..want.len()], &want[..], "{}", p.stdout);
    let s = ns.run(&["--json", "status"]);
    s.expect_code(0);
    assert_eq!(&strings(&s.json()["native"])[..want.len()], &want[..]);
}

/// amd64 emulated on an amd64 host: a magic rule for x86_64 would take every program of the
/// host, qemu-x86_64-static itself included, and loop (ELOOP), so the rule is an extension
/// rule, which takes only files named `*.probe-ext`; `test --entry` names the probe so.
/// Debian's QEMU 7.2 runs x86-64-v3 and no more: no model of it has AVX-512 (the v4 check
/// dies of SIGILL), so no QEMU_CPU value is tried.
#[test]
fn qemu_x86_64_under_an_extension_rule_reaches_x86_64_v3() {
    let ns = PrivateBinfmt::new();
    ns.register(":qemu-x86_64-ext:E::probe-ext::/usr/bin/qemu-x86_64-static:F");
    let r = ns.run(&["--json", "test", "--entry", "qemu-x86_64-ext"]);
    r.expect_code(0);
    let rs = results(&r);
    assert_eq!(rs.len(), 1, "{rs:?}");
    let x = &rs[0];
    assert_eq!(x["arch"], "amd64");
    assert_eq!(x["handler"], "qemu-x86_64-ext");
    assert_eq!(x["ok"], true, "{x}");
    let levels = &x["levels"];
    assert_eq!(levels["highest"], "x86-64-v3", "{x}");
    assert_eq!(
        strings(&levels["proven"]),
        ["x86-64-v1", "x86-64-v2", "x86-64-v3"]
    );
    assert_eq!(levels["top"], "x86-64-v4");
    assert!(levels["lift"].is_null(), "{x}");
    assert_eq!(x["qemu_version"], "7.2.22", "{x}");
    assert_eq!(x["cpu_default"], "max");
    let models = strings(&x["cpu_models"]);
    for m in ["qemu64", "Nehalem", "Haswell", "Skylake-Server", "max"] {
        assert!(models.iter().any(|x| x == m), "{m} not in {models:?}");
    }
    assert_eq!(
        strings(&r.json()["supported"]),
        ["linux/amd64", "linux/amd64/v2", "linux/amd64/v3"]
    );
    // Human output: the level on the handler's line.
    let h = ns.run(&["test", "--entry", "qemu-x86_64-ext"]);
    h.expect_code(0);
    assert!(
        h.stdout.contains("qemu-x86_64-ext") && h.stdout.contains("x86-64-v3"),
        "{}",
        h.stdout
    );
    // status sees the same through the entry the kernel picks for the probe's name.
    let s = ns.run(&["--json", "status"]);
    s.expect_code(0);
    let entries = s.json()["entries"].as_array().expect("entries").clone();
    let e = by(&entries, "name", "qemu-x86_64-ext");
    assert_eq!(e["levels"]["highest"], "x86-64-v3", "{e}");
    assert_eq!(e["qemu_version"], "7.2.22");
}

/// Every family through Debian's QEMU 7.2 handlers: the default model's level, and for
/// ppc64le the second run that proves QEMU_CPU=power10 lifts it to POWER10.
#[test]
fn each_family_reaches_what_qemu_7_2_gives_and_power10_needs_qemu_cpu() {
    let ns = PrivateBinfmt::new();
    ns.run(&["install", "--arch", "arm64,arm,ppc64le,s390x,riscv64"])
        .expect_code(0);
    let r = ns.run(&[
        "--json",
        "test",
        "--arch",
        "arm64,arm,ppc64le,s390x,riscv64",
    ]);
    r.expect_code(0);
    let rs = results(&r);
    let highest = |a: &str| by(&rs, "arch", a)["levels"]["highest"].clone();
    assert_eq!(highest("arm64"), "v8.1");
    assert_eq!(highest("arm"), "v8");
    assert_eq!(highest("ppc64le"), "power9");
    assert_eq!(highest("s390x"), "z15");
    assert_eq!(highest("riscv64"), "rva20u64");
    let ppc = by(&rs, "arch", "ppc64le");
    assert_eq!(ppc["levels"]["lift"]["qemu_cpu"], "power10", "{ppc}");
    assert_eq!(ppc["levels"]["lift"]["highest"], "power10", "{ppc}");
    assert_eq!(ppc["cpu_default"], "POWER9");
    for a in ["arm64", "arm", "s390x", "riscv64"] {
        assert!(by(&rs, "arch", a)["levels"]["lift"].is_null(), "{a}");
    }
    let riscv = strings(&by(&rs, "arch", "riscv64")["levels"]["checks"]);
    assert_eq!(riscv, ["rv64gc", "zba", "zbb", "zbs"]);
    for (a, n) in [("arm64", 8), ("arm", 36), ("s390x", 78), ("riscv64", 6)] {
        let models = strings(&by(&rs, "arch", a)["cpu_models"]);
        assert_eq!(models.len(), n, "{a}: {models:?}");
    }
    let supported = strings(&r.json()["supported"]);
    for p in [
        "linux/arm64",
        "linux/arm64/v8.1",
        "linux/arm/v7",
        "linux/arm/v6",
        "linux/arm/v5",
        "linux/arm/v8",
        "linux/ppc64le",
        "linux/s390x",
        "linux/riscv64",
    ] {
        assert!(supported.iter().any(|s| s == p), "{p} not in {supported:?}");
    }
    assert!(
        !supported.iter().any(|s| s.contains("v8.2")),
        "{supported:?}"
    );
    let human = ns.run(&["test", "--arch", "ppc64le"]);
    assert!(
        human
            .stdout
            .contains("power9 (power10 with QEMU_CPU=power10)"),
        "{}",
        human.stdout
    );
}

/// A table row that matches Debian's QEMU 7.2 for arm64 (made for this test: nothing in the
/// built-in table does) makes status, test and diagnose warn, in JSON and on stderr; the
/// built-in table warns of nothing here.
#[test]
fn a_known_bad_version_is_warned_of_by_status_test_and_diagnose() {
    let ns = PrivateBinfmt::new();
    ns.run(&["install", "--arch", "arm64"]).expect_code(0);
    let dir = tempfile::tempdir().expect("tempdir");
    let table = dir.path().join("issues.toml");
    std::fs::write(
        &table,
        r#"[[issue]]
id = "test-row"
arches = ["aarch64"]
introduced = "7.2.0"
fixed = "7.2.99"
symptom = "a row this test makes so that Debian 12's QEMU falls in it"
source = "https://gitlab.com/qemu-project/qemu/-/issues"
"#,
    )
    .expect("write table");
    let t = table.display().to_string();
    let row_of = |v: &serde_json::Value| {
        let w = v["known_issues"].as_array().expect("known_issues").clone();
        assert_eq!(w.len(), 1, "{v}");
        assert_eq!(w[0]["id"], "test-row");
        assert_eq!(w[0]["versions"], ">= 7.2.0, < 7.2.99");
        assert_eq!(w[0]["fixed"], "7.2.99");
    };
    let warned = |r: &Run| {
        assert!(
            r.stderr.contains("qemu-aarch64 runs QEMU 7.2.22")
                && r.stderr.contains("test-row")
                && r.stderr.contains("fixed in 7.2.99"),
            "{}",
            r.stderr
        );
    };

    let s = ns.run(&["--json", "--qemu-table", &t, "status"]);
    s.expect_code(0);
    let entries = s.json()["entries"].as_array().expect("entries").clone();
    row_of(by(&entries, "name", "qemu-aarch64"));
    warned(&s);

    let r = ns.run(&["--json", "--qemu-table", &t, "test", "--arch", "arm64"]);
    r.expect_code(0);
    row_of(by(&results(&r), "arch", "arm64"));
    warned(&r);

    let d = ns.run(&["--json", "--qemu-table", &t, "diagnose", &fx("arm64")]);
    d.expect_code(0);
    assert_eq!(d.json()["qemu_version"], "7.2.22");
    row_of(&d.json());
    warned(&d);
    let human = ns.run(&["--qemu-table", &t, "diagnose", &fx("arm64")]);
    assert!(
        human.stdout.contains("qemu-aarch64 runs QEMU 7.2.22"),
        "{}",
        human.stdout
    );

    // The built-in table: nothing for 7.2.22.
    let plain = ns.run(&["--json", "test", "--arch", "arm64"]);
    plain.expect_code(0);
    assert_eq!(
        by(&results(&plain), "arch", "arm64")["known_issues"],
        serde_json::json!([])
    );
    assert!(!plain.stderr.contains("known problem"), "{}", plain.stderr);
}

/// A table that cannot be used is bad input: exit 2, the file and the fault named, nothing
/// run or written.
#[test]
fn a_bad_qemu_table_is_refused_before_anything_runs() {
    let ns = PrivateBinfmt::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[issue]]\nid = \"x\"\narches = [\"vax\"]\n").expect("write");
    let b = bad.display().to_string();
    for args in [
        vec!["--qemu-table", &b, "status"],
        vec!["--qemu-table", &b, "test"],
        vec!["--qemu-table", "/nonexistent/t.toml", "diagnose", "/bin/sh"],
    ] {
        let r = ns.run(&args);
        r.expect_code(2);
        assert!(
            r.stderr.contains("QEMU issue table") && r.stdout.is_empty(),
            "{args:?}: {}",
            r.stderr
        );
    }
    let r = ns.run(&["--json", "--qemu-table", &b, "test"]);
    r.expect_code(2);
    assert_eq!(r.json()["error"]["class"], "bad_input");
    assert!(ns.entries().is_empty());
}

/// `test --entry` refuses, with exit 2 and the reason, what it cannot test through the
/// entry named: no such entry, one whose interpreter's name says no architecture, one the
/// kernel would not hand the probe to.
#[test]
fn test_entry_refuses_what_it_cannot_test_through_that_entry() {
    let ns = PrivateBinfmt::new();
    ns.run(&["install", "--arch", "arm64"]).expect_code(0);
    ns.register(":wrapped:E::w::/usr/bin/true:");
    ns.register(":qemu-x86_64-ext:E::probe-ext::/usr/bin/qemu-x86_64-static:F");
    ns.control("qemu-x86_64-ext", "0");
    for (name, says) in [
        ("nope", "no binfmt_misc entry 'nope'"),
        ("wrapped", "not named like QEMU"),
        ("qemu-x86_64-ext", "would take no probe: it is disabled"),
    ] {
        let r = ns.run(&["test", "--entry", name]);
        r.expect_code(2);
        assert!(r.stderr.contains(says), "{name}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{name}: {}", r.stdout);
    }
    ns.run(&["test", "--entry", "qemu-aarch64", "--arch", "arm64"])
        .expect_code(2);
    ns.run(&["test", "--entry", "qemu-aarch64"]).expect_code(0);
}
