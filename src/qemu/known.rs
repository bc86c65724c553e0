//! The table of QEMU versions known to break programs (`configs/qemu-issues.toml`, embedded;
//! `--qemu-table FILE` replaces it), and which of its rows a handler's QEMU falls in.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Version;
use crate::arch::ArchTable;
use crate::error::{Class, Classify};

/// The table built into the binary.
pub const EMBEDDED: &str = include_str!("../../configs/qemu-issues.toml");

/// The most of a `--qemu-table` file that is read.
const MAX_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("cannot read QEMU issue table {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: crate::fileio::OpenError,
    },
    #[error("QEMU issue table {origin} is not valid: {message}")]
    Invalid { origin: String, message: String },
}

impl Classify for IssueError {
    /// A file the user named: always the input's fault.
    fn class(&self) -> Class {
        Class::BadInput
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    #[serde(default)]
    issue: Vec<RawIssue>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIssue {
    id: String,
    arches: Vec<String>,
    introduced: Option<String>,
    fixed: Option<String>,
    symptom: String,
    workaround: Option<String>,
    source: String,
    fix: Option<String>,
}

/// One row: a range of versions and what goes wrong in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub id: String,
    /// Canonical arch names; empty: every architecture.
    pub arches: Vec<String>,
    pub introduced: Option<Version>,
    pub fixed: Option<Version>,
    pub symptom: String,
    pub workaround: Option<String>,
    pub source: String,
    pub fix: Option<String>,
}

impl Issue {
    /// Whether a handler for `arch` running `version` may meet it.
    pub fn affects(&self, arch: &str, version: Version) -> bool {
        (self.arches.is_empty() || self.arches.iter().any(|a| a == arch))
            && self.introduced.is_none_or(|v| version >= v)
            && self.fixed.is_none_or(|v| version < v)
    }

    /// The range in words: `>= 8.1.1, < 9.2.2`, `< 7.2.0`, `>= 5.2.0`.
    pub fn range(&self) -> String {
        let mut parts = Vec::new();
        if let Some(v) = self.introduced {
            parts.push(format!(">= {v}"));
        }
        if let Some(v) = self.fixed {
            parts.push(format!("< {v}"));
        }
        parts.join(", ")
    }
}

/// A row a handler falls in, as reports show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub id: String,
    /// The affected versions (`>= 8.1.1, < 9.2.2`).
    pub versions: String,
    pub symptom: String,
    pub workaround: Option<String>,
    /// The first version without it; `null`: none yet.
    pub fixed: Option<String>,
    pub source: String,
}

impl Warning {
    fn of(issue: &Issue) -> Warning {
        Warning {
            id: issue.id.clone(),
            versions: issue.range(),
            symptom: issue.symptom.clone(),
            workaround: issue.workaround.clone(),
            fixed: issue.fixed.map(|v| v.to_string()),
            source: issue.source.clone(),
        }
    }

    /// One line for stderr: who runs what, what goes wrong, what helps, and where it is
    /// written up.
    pub fn sentence(&self, handler: &str, version: &str) -> String {
        let mut s = format!(
            "{handler} runs QEMU {version}, in the range of a known problem ({}, {}): {}",
            self.id, self.versions, self.symptom
        );
        match &self.fixed {
            Some(v) => s.push_str(&format!("; fixed in {v}")),
            None => s.push_str("; not fixed yet"),
        }
        if let Some(w) = &self.workaround {
            s.push_str(&format!("; workaround: {w}"));
        }
        s.push_str(&format!(" ({})", self.source));
        s
    }
}

/// The loaded table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueTable {
    issues: Vec<Issue>,
}

impl IssueTable {
    /// The embedded table, checked against the embedded arch table (a unit test keeps it
    /// valid, so failing here is a build defect).
    pub fn embedded() -> IssueTable {
        Self::parse(
            EMBEDDED,
            "embedded qemu-issues.toml",
            &ArchTable::embedded(),
        )
        .unwrap_or_else(|e| panic!("embedded QEMU issue table is broken: {e}"))
    }

    /// The embedded table, or the file given with `--qemu-table`, whose arch names must be
    /// ones `arches` knows.
    pub fn load(path: Option<&Path>, arches: &ArchTable) -> Result<IssueTable, IssueError> {
        let Some(path) = path else {
            return Self::parse(EMBEDDED, "embedded qemu-issues.toml", arches);
        };
        let text = crate::fileio::read_text(path, crate::fileio::Follow::Yes, MAX_BYTES).map_err(
            |source| IssueError::Read {
                path: path.to_path_buf(),
                source,
            },
        )?;
        Self::parse(&text, &path.display().to_string(), arches)
    }

    /// Parse and check a table; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str, arches: &ArchTable) -> Result<IssueTable, IssueError> {
        let invalid = |message: String| IssueError::Invalid {
            origin: origin.to_string(),
            message,
        };
        let raw: RawTable =
            toml::from_str(text).map_err(|e| invalid(crate::error::toml_error(text, &e)))?;
        let mut issues: Vec<Issue> = Vec::with_capacity(raw.issue.len());
        for r in raw.issue {
            let what = |m: String| invalid(format!("issue '{}': {m}", r.id));
            if r.id.is_empty() || r.id.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(invalid(format!(
                    "issue id '{}' must be non-empty, without spaces",
                    r.id.escape_debug()
                )));
            }
            if issues.iter().any(|i| i.id == r.id) {
                return Err(what("id is used twice".into()));
            }
            let version =
                |field: &str, v: &Option<String>| -> Result<Option<Version>, IssueError> {
                    v.as_deref()
                        .map(|t| {
                            Version::parse(t).ok_or_else(|| {
                                what(format!("{field} '{t}' is not a version like 7.2.0"))
                            })
                        })
                        .transpose()
                };
            let introduced = version("introduced", &r.introduced)?;
            let fixed = version("fixed", &r.fixed)?;
            if let (Some(i), Some(f)) = (introduced, fixed) {
                if i >= f {
                    return Err(what(format!(
                        "introduced {i} is not before fixed {f}: no version is affected"
                    )));
                }
            }
            if r.arches.is_empty() {
                return Err(what("arches is empty; name some, or [\"all\"]".into()));
            }
            let mut names = Vec::new();
            if !r.arches.iter().any(|a| a == "all") {
                for a in &r.arches {
                    let found = arches.lookup(a).map_err(|e| what(format!("arches: {e}")))?;
                    names.push(found.name.clone());
                }
            } else if r.arches.len() > 1 {
                return Err(what("arches: \"all\" stands alone".into()));
            }
            if !r.source.starts_with("https://") || r.source.contains(char::is_whitespace) {
                return Err(what(format!(
                    "source '{}' must be an https:// address of the public report",
                    r.source.escape_debug()
                )));
            }
            if r.symptom.trim().is_empty() {
                return Err(what("symptom is empty".into()));
            }
            issues.push(Issue {
                id: r.id,
                arches: names,
                introduced,
                fixed,
                symptom: r.symptom,
                workaround: r.workaround,
                source: r.source,
                fix: r.fix,
            });
        }
        Ok(IssueTable { issues })
    }

    pub fn issues(&self) -> &[Issue] {
        &self.issues
    }

    /// The rows a handler for `arch` (canonical name) running `version` falls in.
    pub fn warnings(&self, arch: &str, version: Version) -> Vec<Warning> {
        self.issues
            .iter()
            .filter(|i| i.affects(arch, version))
            .map(Warning::of)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).expect("version")
    }

    fn parse(text: &str) -> Result<IssueTable, IssueError> {
        IssueTable::parse(text, "test.toml", &ArchTable::embedded())
    }

    #[test]
    fn the_embedded_table_loads_and_says_what_it_should() {
        let t = IssueTable::embedded();
        assert!(t.issues().len() >= 4);
        for i in t.issues() {
            assert!(i.source.starts_with("https://"), "{}", i.id);
        }
        // Debian 12's QEMU falls in none of its rows for the architectures it is used for.
        for arch in ["amd64", "arm64", "arm", "riscv64", "s390x", "ppc64le"] {
            assert_eq!(t.warnings(arch, v("7.2.22")), Vec::new(), "{arch}");
        }
        // The qemu64 default hits amd64 only, before 7.2.
        let w = t.warnings("amd64", v("7.1.0"));
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].id, "x86-64-v2-default-cpu");
        assert_eq!(w[0].versions, "< 7.2.0");
        assert_eq!(w[0].fixed.as_deref(), Some("7.2.0"));
        assert!(t.warnings("arm64", v("7.1.0")).is_empty());
        // The static-pie regression: from 8.1.1 up to 9.2.2, every architecture.
        for (ver, hit) in [
            ("8.1.0", false),
            ("8.1.1", true),
            ("9.2.1", true),
            ("9.2.2", false),
        ] {
            let ids: Vec<String> = t
                .warnings("riscv64", v(ver))
                .into_iter()
                .map(|w| w.id)
                .collect();
            assert_eq!(
                ids.contains(&"static-pie-brk-alignment".to_string()),
                hit,
                "{ver}: {ids:?}"
            );
        }
    }

    #[test]
    fn names_are_read_as_the_arch_table_reads_them() {
        let t = parse(
            r#"[[issue]]
id = "x"
arches = ["aarch64", "armhf"]
introduced = "7.2"
fixed = "7.2.30"
symptom = "s"
source = "https://example.org/1"
"#,
        )
        .expect("valid");
        assert_eq!(t.issues()[0].arches, ["arm64", "arm"]);
        assert_eq!(t.warnings("arm64", v("7.2.22")).len(), 1);
        assert_eq!(t.warnings("arm", v("7.2.0")).len(), 1);
        assert!(t.warnings("amd64", v("7.2.22")).is_empty());
        assert!(t.warnings("arm64", v("7.2.30")).is_empty());
        assert!(t.warnings("arm64", v("7.1.9")).is_empty());
        let w = &t.warnings("arm64", v("7.2.22"))[0];
        assert_eq!(w.versions, ">= 7.2.0, < 7.2.30");
        let line = w.sentence("qemu-aarch64", "7.2.22");
        assert!(line.contains("qemu-aarch64 runs QEMU 7.2.22"), "{line}");
        assert!(
            line.contains("fixed in 7.2.30") && line.contains("https://example.org/1"),
            "{line}"
        );
    }

    #[test]
    fn an_empty_table_warns_of_nothing() {
        let t = parse("").expect("valid");
        assert!(t.issues().is_empty());
        assert!(t.warnings("amd64", v("1.0")).is_empty());
    }

    /// Every mistake is named with the file, and where it can be, the line.
    #[test]
    fn bad_tables_are_refused_naming_what_is_wrong() {
        let row = |extra: &str| {
            format!(
                "[[issue]]\nid = \"x\"\narches = [\"amd64\"]\nsymptom = \"s\"\nsource = \"https://e.org\"\n{extra}"
            )
        };
        let cases: Vec<(String, &str)> = vec![
            (row("colour = \"red\""), "unknown field `colour`"),
            (row("fixed = \"seven\""), "fixed 'seven' is not a version"),
            (
                row("introduced = \"8.0\"\nfixed = \"7.0\""),
                "is not before fixed",
            ),
            (
                row("").replace("amd64", "vax"),
                "unknown architecture 'vax'",
            ),
            (row("").replace("\"amd64\"", ""), "arches is empty"),
            (
                row("").replace("\"amd64\"", "\"all\", \"arm\""),
                "\"all\" stands alone",
            ),
            (
                row("").replace("https://e.org", "http://e.org"),
                "must be an https://",
            ),
            (row("").replace("\"s\"", "\" \""), "symptom is empty"),
            (format!("{}\n{}", row(""), row("")), "id is used twice"),
            (
                row("").replace("id = \"x\"", "id = \"a b\""),
                "without spaces",
            ),
            ("[[issue]]\nid = 3\n".to_string(), "line 2"),
        ];
        for (text, want) in cases {
            let e = parse(&text).expect_err(want).to_string();
            assert!(e.contains("test.toml") && e.contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn a_table_file_that_cannot_be_read_is_named() {
        let missing = Path::new("/nonexistent/qemu-issues.toml");
        let e = IssueTable::load(Some(missing), &ArchTable::embedded()).expect_err("missing");
        assert!(
            e.to_string().contains("/nonexistent/qemu-issues.toml"),
            "{e}"
        );
        assert_eq!(e.class(), Class::BadInput);
    }
}
