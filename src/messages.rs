//! Everything the binary says to the user goes through here: stdout for results, stderr for
//! errors and warnings. Library code never prints.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);

/// `-q`: from now on only errors reach stderr.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// One line of a human result on stdout.
pub fn out(line: &str) {
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth reporting.
    let _ = writeln!(stdout, "{line}");
}

/// The one JSON document of a `--json` run.
pub fn json<T: serde::Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => out(&text),
        Err(e) => error(&format!("cannot encode JSON: {e}")),
    }
}

pub fn error(message: &str) {
    eprintln!("binfmt-setup: error: {message}");
}

pub fn warn(message: &str) {
    if QUIET.load(Ordering::Relaxed) {
        return;
    }
    eprintln!("binfmt-setup: warning: {message}");
}

/// Overwrite the progress line on stderr (only called when stderr is a terminal).
pub fn progress(line: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = write!(stderr, "\r\x1b[K{line}");
    let _ = stderr.flush();
}

/// Erase the progress line.
pub fn progress_done() {
    progress("");
}

/// Make a path or name safe to print on a terminal: control characters are escaped, so a
/// file named with escape sequences cannot rewrite the screen.
pub fn printable(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(super::printable("a\x1b[2Jb\n"), "a\\u{1b}[2Jb\\n");
        assert_eq!(super::printable("plain/path"), "plain/path");
    }
}
