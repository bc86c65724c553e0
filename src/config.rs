//! The TOML configuration of `init`: which handlers to register and how, whether to test and
//! export them, and how to keep them in place when running as a long-lived DaemonSet pod.
//!
//! Unknown keys are refused (a misspelt `intervall_seconds` must not silently mean "60"), and
//! every error names the file, the line and the key, so a broken ConfigMap is found from the
//! pod's log alone. `configs/binfmt-setup.toml` is the documented example.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::arch::{Arch, ArchTable};
use crate::error::{line_column, toml_error};

/// Where the DaemonSet's readiness probe looks when the config names no file.
pub const DEFAULT_READINESS_FILE: &str = "/run/binfmt-setup/ready";
/// Seconds between checks with `--keep-running` when the config gives none.
pub const DEFAULT_INTERVAL_SECONDS: u64 = 60;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Architecture names, or `["all"]`: every one QEMU can emulate here.
    #[serde(default = "all_arches")]
    pub architectures: Vec<Spanned<String>>,
    #[serde(default)]
    pub flags: Flags,
    /// Interpreter per architecture, instead of searching `qemu_paths`.
    #[serde(default)]
    pub interpreters: BTreeMap<Spanned<String>, Spanned<PathBuf>>,
    /// Directories searched for `qemu-<cpu>-static`, then `qemu-<cpu>` (default: the global
    /// `--qemu-path`, else /usr/bin, /usr/local/bin, /usr/libexec/qemu-binfmt).
    #[serde(default)]
    pub qemu_paths: Vec<Spanned<PathBuf>>,
    /// Replace other owners' entries whose rules overlap ours, instead of skipping the arch.
    #[serde(default)]
    pub replace_foreign: bool,
    /// Run each registered architecture's probe through the kernel after installing.
    #[serde(default = "yes")]
    pub test: bool,
    /// Also write the handlers as files that register them again at the next boot.
    #[serde(default)]
    pub export: Option<Export>,
    #[serde(default)]
    pub keep_running: KeepRunning,

    /// The file's text and name, to turn spans into line numbers in later errors.
    #[serde(skip)]
    source: Source,
}

#[derive(Debug, Clone, Default)]
struct Source {
    origin: String,
    text: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flags {
    /// `F`: open the interpreter once at registration, so it works in every container.
    #[serde(default = "yes")]
    pub fix_binary: bool,
    /// `C` (reads back `OC`): setuid programs keep their privileges through the interpreter.
    #[serde(default)]
    pub credential: bool,
    /// `P` where a probe shows the interpreter honours it: programs keep their own argv[0].
    #[serde(default = "yes")]
    pub preserve_argv0: bool,
}

impl Default for Flags {
    fn default() -> Flags {
        Flags {
            fix_binary: true,
            credential: false,
            preserve_argv0: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Export {
    pub format: crate::export::Format,
    /// Created when missing.
    pub directory: Spanned<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeepRunning {
    /// Stay up after the first pass (as `--keep-running` does).
    #[serde(default)]
    pub enabled: bool,
    /// Seconds between checks that put back entries which disappeared.
    #[serde(default = "default_interval")]
    pub interval_seconds: Spanned<u64>,
    /// Written after the first pass that installed and tested everything; removed when a
    /// later check cannot repair what it finds.
    #[serde(default)]
    pub readiness_file: Option<Spanned<PathBuf>>,
    /// What SIGTERM does besides exiting 0.
    #[serde(default)]
    pub on_sigterm: OnSigterm,
}

impl Default for KeepRunning {
    fn default() -> KeepRunning {
        KeepRunning {
            enabled: false,
            interval_seconds: default_interval(),
            readiness_file: None,
            on_sigterm: OnSigterm::default(),
        }
    }
}

impl KeepRunning {
    pub fn interval(&self) -> Duration {
        Duration::from_secs(*self.interval_seconds.get_ref())
    }

    pub fn readiness_file(&self) -> PathBuf {
        self.readiness_file
            .as_ref()
            .map_or_else(|| DEFAULT_READINESS_FILE.into(), |p| p.get_ref().clone())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnSigterm {
    /// Leave the handlers registered: a pod being rescheduled must not break running builds.
    #[default]
    Leave,
    /// Remove the handlers this config registers.
    Uninstall,
}

fn all_arches() -> Vec<Spanned<String>> {
    vec![Spanned::new(0..0, "all".to_string())]
}

fn yes() -> bool {
    true
}

fn default_interval() -> Spanned<u64> {
    Spanned::new(0..0, DEFAULT_INTERVAL_SECONDS)
}

/// A config that cannot be used: always bad input (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("config {origin}: {detail}")]
pub struct ConfigError {
    pub origin: String,
    pub detail: String,
}

impl crate::error::Classify for ConfigError {
    fn class(&self) -> crate::error::Class {
        crate::error::Class::BadInput
    }
}

impl Config {
    /// The configuration used when `init` is given no file: every architecture, `F`, tested.
    pub fn defaults() -> Config {
        Config::parse("", "(built-in defaults)").unwrap_or_else(|_| unreachable!())
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        // A config is a few KiB: only a regular file of at most 1 MiB is read.
        let text =
            crate::fileio::read_text(path, crate::fileio::Follow::Yes, 1 << 20).map_err(|e| {
                ConfigError {
                    origin: path.display().to_string(),
                    detail: format!("cannot read it: {e}"),
                }
            })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parse and check everything that does not need the architecture table.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError {
            origin: origin.to_string(),
            detail: describe_toml_error(text, &e),
        })?;
        config.source = Source {
            origin: origin.to_string(),
            text: text.to_string(),
        };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let interval = &self.keep_running.interval_seconds;
        if *interval.get_ref() == 0 {
            return Err(self.at(
                interval.span(),
                "keep_running.interval_seconds",
                "must be at least 1",
            ));
        }
        // A day is a generous ceiling; past it a typo (seconds meant as milliseconds) is likelier.
        if *interval.get_ref() > 86_400 {
            return Err(self.at(
                interval.span(),
                "keep_running.interval_seconds",
                "must be at most 86400 (a day)",
            ));
        }
        let mut paths: Vec<(&Spanned<PathBuf>, &str)> = Vec::new();
        paths.extend(self.qemu_paths.iter().map(|p| (p, "qemu_paths")));
        paths.extend(self.interpreters.values().map(|p| (p, "interpreters")));
        if let Some(e) = &self.export {
            paths.push((&e.directory, "export.directory"));
        }
        if let Some(r) = &self.keep_running.readiness_file {
            paths.push((r, "keep_running.readiness_file"));
        }
        for (path, key) in paths {
            if !path.get_ref().is_absolute() {
                return Err(self.at(
                    path.span(),
                    key,
                    &format!(
                        "{} is not an absolute path (init may run from any directory)",
                        path.get_ref().display()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// What only the machine can tell: every `qemu_paths` entry is a directory here (the
    /// interpreters and the export directory are checked by what uses them). Part of
    /// checking the whole request before anything is written.
    pub fn check_paths(&self) -> Result<(), ConfigError> {
        for dir in &self.qemu_paths {
            let problem = match std::fs::metadata(dir.get_ref()) {
                Ok(m) if m.is_dir() => continue,
                Ok(m) => format!(
                    "{} is not a directory",
                    crate::machine::Meta::of(&m).kind.words()
                ),
                Err(e) => crate::error::io_words(&e),
            };
            return Err(self.at(
                dir.span(),
                "qemu_paths",
                &format!("{}: {problem}", dir.get_ref().display()),
            ));
        }
        Ok(())
    }

    /// The architectures asked for, checked against `table`, as `--arch` reads a list: names,
    /// `all` for every one QEMU can emulate, `-NAME` to take one away (`["all", "-riscv64"]`).
    pub fn arches<'t>(&self, table: &'t ArchTable) -> Result<Vec<&'t Arch>, ConfigError> {
        if self.architectures.is_empty() {
            return Err(self.at(
                0..0,
                "architectures",
                "is empty; list names or write [\"all\"]",
            ));
        }
        table
            .select(self.architectures.iter().map(|a| a.get_ref().as_str()))
            .map_err(|(i, e)| {
                let message = match e {
                    crate::arch::ArchError::Unknown { name, known } if name.is_empty() => {
                        format!("asks for no architecture at all; known names: {known}")
                    }
                    e => e.to_string(),
                };
                let span = self.architectures.get(i).map_or(0..0, |a| a.span());
                self.at(span, "architectures", &message)
            })
    }

    /// Whether `architectures` asks for every architecture (an arch without an interpreter is
    /// then skipped rather than an error).
    pub fn all(&self) -> bool {
        ArchTable::mentions_all(self.architectures.iter().map(|a| a.get_ref().as_str()))
    }

    /// `interpreters`, keyed by canonical arch name.
    pub fn interpreters(
        &self,
        table: &ArchTable,
    ) -> Result<std::collections::HashMap<String, PathBuf>, ConfigError> {
        let mut out = std::collections::HashMap::new();
        for (name, path) in &self.interpreters {
            let arch = table
                .lookup(name.get_ref())
                .map_err(|e| self.at(name.span(), "interpreters", &e.to_string()))?;
            out.insert(arch.name.clone(), path.get_ref().clone());
        }
        Ok(out)
    }

    pub fn qemu_paths(&self) -> Vec<PathBuf> {
        self.qemu_paths
            .iter()
            .map(|p| p.get_ref().clone())
            .collect()
    }

    pub fn origin(&self) -> &str {
        &self.source.origin
    }

    /// An error about `key`, located at `span` when the value came from the file.
    fn at(&self, span: Range<usize>, key: &str, message: &str) -> ConfigError {
        let detail = if span.is_empty() && span.start == 0 {
            format!("key `{key}`: {message}")
        } else {
            let (line, column) = line_column(&self.source.text, span.start);
            format!("line {line}, column {column}: key `{key}`: {message}")
        };
        ConfigError {
            origin: self.source.origin.clone(),
            detail,
        }
    }
}

/// `line L, column C: key `a.b`: message`. The key path is the one toml's own rendering puts
/// on its "in `a.b`" line, else the `key =` of the line the error points at.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let mut bare = e.clone();
    bare.set_input(None);
    let rendered = bare.to_string();
    let key = rendered
        .lines()
        .filter_map(|l| l.strip_prefix("in `")?.strip_suffix('`'))
        .next_back()
        .map(str::to_string)
        .or_else(|| key_on_line(text, e.span()?.start));
    let place = |message: &str| match e.span() {
        Some(span) => {
            let (line, column) = line_column(text, span.start);
            format!("line {line}, column {column}: {message}")
        }
        None => message.to_string(),
    };
    // serde says "unknown field `x`" for a key of the table named in `key`: say the full key.
    if let Some(rest) = e.message().strip_prefix("unknown field `") {
        if let Some((field, rest)) = rest.split_once('`') {
            let full = match &key {
                Some(k) if k == field || k.ends_with(&format!(".{field}")) => k.clone(),
                Some(table) => format!("{table}.{field}"),
                None => field.to_string(),
            };
            return place(&format!("unknown key `{full}`{}", rest.trim_end()));
        }
    }
    match key {
        Some(key) if !e.message().contains(&format!("`{key}`")) => {
            place(&format!("key `{key}`: {}", e.message().trim_end()))
        }
        _ => toml_error(text, e),
    }
}

/// The dotted key a `key = value` line at `offset` sets, inside the table header above it.
/// Used when toml does not say which key a value belonged to.
fn key_on_line(text: &str, offset: usize) -> Option<String> {
    let before = &text[..offset.min(text.len())];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[line_start..]
        .find('\n')
        .map_or(text.len(), |i| line_start + i);
    let (key, _) = text[line_start..line_end].split_once('=')?;
    let key = key.trim().trim_matches('"');
    if key.is_empty() || key.starts_with('#') || key.starts_with('[') {
        return None;
    }
    let table = before[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && !l.starts_with("[["))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Config::parse(text, "t.toml")
            .expect_err("should be refused")
            .to_string()
    }

    #[test]
    fn empty_file_means_every_arch_fixed_and_tested() {
        let c = Config::parse("", "t.toml").expect("parse");
        assert!(c.all() && c.flags.fix_binary && c.test && !c.flags.credential);
        assert!(c.export.is_none() && !c.keep_running.enabled);
        assert_eq!(c.keep_running.interval(), Duration::from_secs(60));
        assert_eq!(
            c.keep_running.readiness_file(),
            PathBuf::from(DEFAULT_READINESS_FILE)
        );
        assert_eq!(c.keep_running.on_sigterm, OnSigterm::Leave);
    }

    #[test]
    fn the_example_config_parses_and_names_real_arches() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/binfmt-setup.toml");
        let c = Config::load(&path).expect("example config");
        let table = ArchTable::embedded();
        assert!(!c.arches(&table).expect("arches").is_empty());
        c.interpreters(&table).expect("interpreters");
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line() {
        let e = err("test = true\n\n[keep_running]\nintervall_seconds = 5\n");
        assert!(e.starts_with("config t.toml: line 4, column 1:"), "{e}");
        assert!(e.contains("intervall_seconds"), "{e}");
    }

    #[test]
    fn a_wrong_type_names_the_key_and_line() {
        let e = err("architectures = [\"arm64\"]\n[flags]\nfix_binary = \"yes\"\n");
        assert!(e.contains("line 3"), "{e}");
        assert!(e.contains("fix_binary"), "{e}");
        let e = err("test = 1\n");
        assert!(e.contains("line 1") && e.contains("`test`"), "{e}");
    }

    #[test]
    fn values_are_checked_where_they_stand() {
        let e = err("[keep_running]\ninterval_seconds = 0\n");
        assert!(
            e.contains("line 2") && e.contains("interval_seconds") && e.contains("at least 1"),
            "{e}"
        );
        let e = err("qemu_paths = [\"usr/bin\"]\n");
        assert!(e.contains("line 1") && e.contains("absolute"), "{e}");
        let e = err("[export]\nformat = \"rpm\"\ndirectory = \"/x\"\n");
        assert!(e.contains("line 2") && e.contains("rpm"), "{e}");
    }

    #[test]
    fn unknown_arch_names_are_bad_input_with_a_line() {
        let c =
            Config::parse("architectures = [\"arm64\",\n  \"vax\"]\n", "t.toml").expect("parse");
        let e = c
            .arches(&ArchTable::embedded())
            .expect_err("vax")
            .to_string();
        assert!(e.contains("line 2, column 3") && e.contains("vax"), "{e}");
        let c = Config::parse("[interpreters]\npdp11 = \"/x\"\n", "t.toml").expect("parse");
        let e = c
            .interpreters(&ArchTable::embedded())
            .expect_err("pdp11")
            .to_string();
        assert!(e.contains("line 2") && e.contains("pdp11"), "{e}");
    }

    #[test]
    fn aliases_are_accepted_and_duplicates_collapse() {
        let c = Config::parse(
            "architectures = [\"aarch64\", \"arm64\", \"linux/riscv64\"]",
            "t",
        )
        .expect("parse");
        let names: Vec<_> = c
            .arches(&ArchTable::embedded())
            .expect("arches")
            .iter()
            .map(|a| a.name.clone())
            .collect();
        assert_eq!(names, ["arm64", "riscv64"]);
    }
}
