//! Every file under configs/ is checked by what reads it: TOML by our own config types,
//! YAML by a YAML parser and the DaemonSet's essentials, the systemd unit by
//! `systemd-analyze verify`, the Dockerfile by its structure. A new kind of file fails here
//! until it has a check.

use std::path::{Path, PathBuf};
use std::process::Command;

use binfmt_setup::arch::ArchTable;
use binfmt_setup::config::Config;
use binfmt_setup::qemu::known::IssueTable;
use serde_norway::Value;

use crate::util::{Run, bin, repo};

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read configs/") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[test]
fn every_file_under_configs_is_checked() {
    let files = files_under(&repo().join("configs"));
    assert!(files.len() >= 5, "{files:?}");
    for path in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") if name == "arches.toml" => {
                let table = ArchTable::load(Some(&path)).expect("arches.toml");
                assert!(!table.is_empty());
            }
            Some("toml") if name == "qemu-issues.toml" => {
                let arches = ArchTable::embedded();
                let table =
                    IssueTable::load(Some(&path), &arches).unwrap_or_else(|e| panic!("{e}"));
                assert!(!table.issues().is_empty());
            }
            Some("toml") => {
                Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
            }
            Some("yaml" | "yml") => check_kubernetes(&path),
            Some("service") => check_unit(&path),
            _ if name == "Dockerfile" => check_dockerfile(&path),
            _ => panic!("{}: no check for this kind of file", path.display()),
        }
    }
}

/// Every document parses; the DaemonSet is privileged, runs `init --keep-running`, tolerates
/// every taint, has limits, and its readiness probe reads the file its config names.
fn check_kubernetes(path: &Path) {
    let text = std::fs::read_to_string(path).expect("read yaml");
    let docs: Vec<Value> = serde_norway::Deserializer::from_str(&text)
        .map(|d| {
            serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect();
    let kind = |k: &str| docs.iter().find(|d| d["kind"] == k);
    let Some(ds) = kind("DaemonSet") else {
        panic!("{}: no DaemonSet", path.display())
    };
    let pod = &ds["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["privileged"], true);
    let args: Vec<&str> = c["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(args.contains(&"--keep-running"), "{args:?}");
    assert!(
        pod["tolerations"].as_sequence().is_some_and(|t| t
            .iter()
            .any(|t| t["operator"] == "Exists" && t.get("key").is_none())),
        "tolerates every taint"
    );
    for r in ["requests", "limits"] {
        assert!(c["resources"][r]["memory"].is_string(), "resources.{r}");
    }
    let probe: Vec<&str> = c["readinessProbe"]["exec"]["command"]
        .as_sequence()
        .expect("readiness probe command")
        .iter()
        .filter_map(Value::as_str)
        .collect();

    // The config it mounts is a valid init config whose readiness file the probe reads.
    let cm = kind("ConfigMap").expect("ConfigMap");
    let toml = cm["data"]["binfmt-setup.toml"]
        .as_str()
        .expect("config in ConfigMap");
    let config = Config::parse(toml, "daemonset.yaml ConfigMap").unwrap_or_else(|e| panic!("{e}"));
    let ready = config.keep_running.readiness_file();
    assert_eq!(probe.last().copied(), ready.to_str(), "probe {probe:?}");
    assert!(config.keep_running.enabled || args.contains(&"--keep-running"));
    let mount = c["volumeMounts"][0]["mountPath"]
        .as_str()
        .expect("config mount");
    assert!(
        args.iter().any(|a| a.starts_with(mount)),
        "--config under {mount}: {args:?}"
    );
}

/// `systemd-analyze verify` with ExecStart pointed at the binary under test (verify wants it
/// to exist); any complaint fails, since verify exits 0 on unknown keys.
fn check_unit(path: &Path) {
    let text = std::fs::read_to_string(path).expect("read unit");
    for key in [
        "Type=oneshot",
        "After=",
        "Before=",
        "ExecStart=",
        "WantedBy=",
    ] {
        assert!(text.contains(key), "{}: no {key}", path.display());
    }
    let exec = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let program = exec.split_whitespace().next().expect("program");
    assert!(exec.contains(" init"), "{exec}");
    assert!(
        Command::new("systemd-analyze")
            .arg("--version")
            .output()
            .is_ok(),
        "systemd-analyze is missing: scripts/setup.sh installs it (package systemd)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join(path.file_name().expect("name"));
    std::fs::write(&copy, text.replace(program, &bin().display().to_string())).expect("copy");
    let r = Run::capture(
        Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&copy),
    );
    r.expect_code(0);
    assert!(
        r.stderr.trim().is_empty(),
        "{}: {}",
        path.display(),
        r.stderr
    );
}

/// Multi-stage: a build stage, the interpreters copied from another, ENTRYPOINT `init`.
fn check_dockerfile(path: &Path) {
    let text = std::fs::read_to_string(path).expect("read Dockerfile");
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let froms: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    assert!(lines[0].starts_with("FROM "), "starts with FROM");
    let known = [
        "FROM",
        "RUN",
        "COPY",
        "WORKDIR",
        "ENTRYPOINT",
        "ENV",
        "ARG",
        "LABEL",
        "&&",
    ];
    let mut continued = false;
    for l in &lines {
        let word = l.split_whitespace().next().unwrap_or_default();
        assert!(
            continued || known.contains(&word),
            "unknown instruction: {l}"
        );
        continued = l.ends_with('\\');
    }
    assert!(
        text.contains("scripts/build-static.sh"),
        "builds the static binary"
    );
    assert!(text.contains("qemu-user-static"));
    let last_from = text.rfind("\nFROM ").expect("final stage");
    let last = &text[last_from..];
    assert!(
        last.contains("COPY --from="),
        "final stage copies from the others"
    );
    assert!(
        last.contains(r#"ENTRYPOINT ["/usr/local/bin/binfmt-setup", "init"]"#),
        "ENTRYPOINT binfmt-setup init"
    );
    let script = repo().join("scripts/build-static.sh");
    assert!(script.exists(), "{}", script.display());
}

/// Every ```toml block in the README is a config `init` accepts.
#[test]
fn toml_snippets_in_the_readme_parse() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README");
    let mut found = 0;
    for block in readme.split("```toml\n").skip(1) {
        let text = block.split("```").next().unwrap_or_default();
        Config::parse(text, "README.md").unwrap_or_else(|e| panic!("{e}\n{text}"));
        found += 1;
    }
    assert!(found >= 1, "no toml snippet in the README");
}
