//! `inspect`'s `needs`: each source read from a real program built by scripts/fixtures.sh
//! (clang, GNU ld, Go), and from the host's own programs and loader.

use serde_json::Value;

use crate::util::{fx, run};

fn needs(name: &str) -> Value {
    let path = fx(name);
    let r = run(&["inspect", "--json", &path]);
    r.json()[0]["needs"].clone()
}

#[track_caller]
fn expect(v: &Value, level: &str, extra: &[&str], source: &str, detail: &str) {
    assert_eq!(v["level"], level, "{v:#}");
    let got: Vec<&str> = v["extra"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(got, extra, "{v:#}");
    let ev = &v["evidence"][0];
    assert_eq!(ev["source"], source, "{v:#}");
    assert!(
        ev["detail"].as_str().is_some_and(|d| d.contains(detail)),
        "{v:#}"
    );
}

#[test]
fn each_source_names_the_level_a_real_program_needs() {
    // GNU ld -z x86-64-v4
    expect(
        &needs("amd64-v4"),
        "x86-64-v4",
        &[],
        "gnu_property",
        "GNU_PROPERTY_X86_ISA_1_NEEDED x86-64-v4",
    );
    // clang -march=rv64gcv
    expect(
        &needs("riscv64-rvv"),
        "rva20u64",
        &["v"],
        "riscv_attributes",
        "_v1p0",
    );
    // clang -target armv7a / armv5te
    expect(
        &needs("armhf"),
        "v7",
        &[],
        "arm_attributes",
        "Tag_CPU_arch 10",
    );
    expect(&needs("armel"), "v5", &[], "arm_attributes", "Tag_CPU_arch");
    // Go 1.19's build information
    expect(
        &needs("go-amd64-v3"),
        "x86-64-v3",
        &[],
        "go_buildinfo",
        "GOAMD64=v3",
    );
    expect(&needs("go-arm-v6"), "v6", &[], "go_buildinfo", "GOARM=6");
}

#[test]
fn what_nothing_records_is_not_invented() {
    // POWER10 code leaves no record in the file: nothing is claimed.
    assert!(needs("ppc64le-power10").is_null());
    assert!(needs("arm64").is_null());
    // Debian's own programs carry a baseline mark, and Debian 12's glibc loader enforces
    // nothing beyond it (it holds no "CPU does not support x86-64-v" check).
    let r = run(&["inspect", "--json", "/bin/ls"]);
    let v = &r.json()[0]["needs"];
    assert_eq!(v["level"], "x86-64-v1", "{v:#}");
    let sources: Vec<&str> = v["evidence"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["source"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(sources, ["gnu_property"], "{v:#}");
    let human = run(&["inspect", "/bin/ls", &fx("amd64-v4")]);
    assert!(
        !human.stdout.lines().nth(1).unwrap_or("").contains("needs"),
        "{}",
        human.stdout
    );
    assert!(
        human.stdout.contains("needs x86-64-v4 (gnu_property)"),
        "{}",
        human.stdout
    );
}
