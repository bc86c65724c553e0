//! Exit codes and the error that carries one.

use std::fmt;

/// The exit codes every command shares (DESIGN.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything asked for is true.
    Success,
    /// The check ran and found a problem.
    Problem,
    /// The request itself is wrong: unknown arch, bad flag, unreadable file or config.
    BadInput,
    /// The environment refuses: no permission, binfmt_misc unavailable, read-only.
    Environment,
    /// `run`: the status of the command it ran, passed on (128 + N for a death by signal N).
    Command(u8),
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Problem => 1,
            Exit::BadInput => 2,
            Exit::Environment => 3,
            Exit::Command(code) => code,
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e.code())
    }
}

/// An error on its way to `main`, with the exit code it stands for.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub error: anyhow::Error,
}

impl Failure {
    pub fn bad_input(error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            exit: Exit::BadInput,
            error: error.into(),
        }
    }

    pub fn environment(error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            exit: Exit::Environment,
            error: error.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

/// A TOML parse error on one line: `line L, column C: message` (toml's own rendering spans
/// several lines with a source excerpt, too much for a one-line reason).
pub fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end_matches('\n');
    match e.span() {
        Some(span) => {
            let (line, column) = line_column(text, span.start);
            format!("line {line}, column {column}: {message}")
        }
        None => message.to_string(),
    }
}

/// The 1-based line and column of byte `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}
