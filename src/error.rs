//! Exit codes, and how an error picks its own.
//!
//! Every error the library returns is a typed error (thiserror) that implements [`Classify`]:
//! the type, not the caller, says whether it is bad input (exit 2), the environment's refusal
//! (exit 3) or a problem the check found (exit 1). Commands pass errors up with `?`, and
//! [`Failure`] turns any classified error into the exit code `main` returns.

use std::fmt;

/// The exit codes every command shares (README, "Exit codes").
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

    /// The word for it in a JSON error document.
    pub fn as_str(self) -> &'static str {
        match self {
            Exit::Success => "success",
            Exit::Problem => "problem",
            Exit::BadInput => "bad_input",
            Exit::Environment => "environment",
            Exit::Command(_) => "command",
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e.code())
    }
}

/// The class of a failure, which decides its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The check ran and found something wrong (exit 1).
    Problem,
    /// The request is wrong: fix the input (exit 2).
    BadInput,
    /// The machine refuses: permission, a missing kernel feature (exit 3).
    Environment,
}

impl From<Class> for Exit {
    fn from(c: Class) -> Exit {
        match c {
            Class::Problem => Exit::Problem,
            Class::BadInput => Exit::BadInput,
            Class::Environment => Exit::Environment,
        }
    }
}

/// Every library error says which class it is.
pub trait Classify {
    fn class(&self) -> Class;
}

/// The class of an I/O error met while acting on the user's behalf: a refusal for
/// permission or a read-only file system is the environment's; anything else (no such
/// file, not a directory, …) is the input's.
pub fn io_class(e: &std::io::Error) -> Class {
    use std::io::ErrorKind::{PermissionDenied, ReadOnlyFilesystem};
    match e.kind() {
        PermissionDenied | ReadOnlyFilesystem => Class::Environment,
        _ => Class::BadInput,
    }
}

/// An I/O error in words, without the OS's "(os error N)" suffix: "No such file or
/// directory".
pub fn io_words(e: &std::io::Error) -> String {
    strip_os_code(&e.to_string())
}

/// A command-line value that cannot be used (`--timeout 0`, `--interpreter x`): bad input,
/// with a message that names the flag.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadArgument(pub String);

impl Classify for BadArgument {
    fn class(&self) -> Class {
        Class::BadInput
    }
}

/// An error on its way to `main`, with the exit code it stands for.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub error: anyhow::Error,
}

impl<E> From<E> for Failure
where
    E: Classify + std::error::Error + Send + Sync + 'static,
{
    fn from(e: E) -> Failure {
        Failure {
            exit: e.class().into(),
            error: e.into(),
        }
    }
}

impl fmt::Display for Failure {
    /// The error and each cause under it, once: a cause the message above already quotes is
    /// not repeated, and the OS's "(os error N)" suffix, which tells a user nothing the
    /// words do not, is left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = strip_os_code(&self.error.to_string());
        for cause in self.error.chain().skip(1) {
            let c = strip_os_code(&cause.to_string());
            if !c.is_empty() && !text.contains(&c) {
                text.push_str(": ");
                text.push_str(&c);
            }
        }
        f.write_str(&text)
    }
}

/// `No such file or directory (os error 2)` → `No such file or directory`, wherever it stands.
fn strip_os_code(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(" (os error ") {
        let after = &rest[i + " (os error ".len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && after[digits..].starts_with(')') {
            out.push_str(&rest[..i]);
            rest = &after[digits + 1..];
        } else {
            out.push_str(&rest[..i + 1]);
            rest = &rest[i + 1..];
        }
    }
    out.push_str(rest);
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read {path}: {source}")]
    struct Quoting {
        path: String,
        source: std::io::Error,
    }

    impl Classify for Quoting {
        fn class(&self) -> Class {
            io_class(&self.source)
        }
    }

    /// Regression: a message that quotes its cause was followed by the cause again:
    /// "… (os error 2): No such file or directory (os error 2)".
    #[test]
    fn regression_a_cause_is_said_once_and_without_its_os_code() {
        let f = Failure::from(Quoting {
            path: "/x".into(),
            source: std::io::Error::from_raw_os_error(2),
        });
        assert_eq!(f.exit, Exit::BadInput);
        assert_eq!(f.to_string(), "cannot read /x: No such file or directory");
        let denied = Failure::from(Quoting {
            path: "/y".into(),
            source: std::io::Error::from_raw_os_error(13),
        });
        assert_eq!(denied.exit, Exit::Environment);
        assert_eq!(
            strip_os_code("a (os error x) b (os error 12)"),
            "a (os error x) b"
        );
    }
}
