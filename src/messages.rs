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
    let _ = writeln!(stdout, "{}", terminal_safe(line));
}

/// The one JSON document of a `--json` run.
pub fn json<T: serde::Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{}", json_safe(&text));
        }
        Err(e) => error(&format!("cannot encode JSON: {e}")),
    }
}

/// serde_json escapes the C0 controls but leaves DEL and the C1 controls (U+0080 to U+009F,
/// among them U+009B, a one-character CSI to some terminals) as they are. They can only stand
/// inside JSON strings, where `\u00XX` means the same character.
fn json_safe(text: &str) -> std::borrow::Cow<'_, str> {
    let raw = |c: char| ('\u{7f}'..='\u{9f}').contains(&c);
    if !text.chars().any(raw) {
        return text.into();
    }
    text.chars()
        .map(|c| {
            if raw(c) {
                format!("\\u{:04x}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// The one JSON document of a `--json` run that failed: the error, its class and exit code.
pub fn json_error(exit: crate::error::Exit, message: &str) {
    json(&serde_json::json!({
        "error": {
            "message": message,
            "class": exit.as_str(),
            "exit_code": exit.code(),
        }
    }));
}

/// One error line: every control character escaped, newlines included, so a hostile name in
/// a message (a tar member's, an entry's) can neither rewrite the screen nor pose as more
/// lines.
pub fn error(message: &str) {
    to_stderr(&format!("binfmt-setup: error: {}\n", printable(message)));
}

pub fn warn(message: &str) {
    if QUIET.load(Ordering::Relaxed) {
        return;
    }
    to_stderr(&format!(
        "binfmt-setup: warning: {}\n",
        terminal_safe(message)
    ));
}

/// A whole message in one write, so that whoever reads the stream meanwhile (a log
/// collector, a supervisor's log file) never sees half a line; formatting straight to the
/// unbuffered stderr writes it in pieces.
fn to_stderr(text: &str) {
    use std::io::Write;
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// The last line of defence, applied to everything printed: every control character but the
/// newline is escaped, so a name or path that reached a message unescaped still cannot send
/// the terminal an escape sequence. (JSON escapes its own strings; its newlines are layout.)
fn terminal_safe(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() && c != '\n') {
        return s.into();
    }
    s.chars()
        .map(|c| {
            if c.is_control() && c != '\n' {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// The widest a table column is padded to: a longer cell runs past it instead of widening
/// every row.
pub const MAX_COLUMN: usize = 48;

/// Rows of cells as aligned columns, `gap` spaces apart: each column but the last as wide as
/// its widest cell, up to [`MAX_COLUMN`] (a longer cell runs past it rather than padding
/// every other row out to its length). Cells are printed as given: escape them first.
pub fn table(rows: &[Vec<String>], gap: usize) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; columns.saturating_sub(1)];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count().min(MAX_COLUMN));
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if let Some(w) = widths.get(i) {
                let pad = w.saturating_sub(cell.chars().count()) + gap;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out(line.trim_end());
    }
}

/// "1 handler", "7 handlers": a count and its noun, in agreement.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Ask for a secret on the terminal (not stdin, which may carry a stream), echo off:
/// `--creds USER` without its password.
pub fn ask_secret(prompt: &str) -> std::io::Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    use std::io::BufRead;
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")?;
    let saved = tcgetattr(&tty).map_err(std::io::Error::from)?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&tty, SetArg::TCSAFLUSH, &quiet).map_err(std::io::Error::from)?;
    let mut line = String::new();
    let read = (&tty)
        .write_all(prompt.as_bytes())
        .and_then(|()| std::io::BufReader::new(&tty).read_line(&mut line));
    let _ = tcsetattr(&tty, SetArg::TCSAFLUSH, &saved);
    let _ = (&tty).write_all(b"\n");
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
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
    fn json_escapes_del_and_c1_controls_and_stays_json() {
        let text = serde_json::to_string(&"a\u{9b}2J\u{7f}b").expect("encode");
        let safe = super::json_safe(&text);
        assert!(!safe.chars().any(char::is_control), "{safe}");
        let back: String = serde_json::from_str(&safe).expect("still JSON");
        assert_eq!(back, "a\u{9b}2J\u{7f}b");
    }

    #[test]
    fn every_message_is_terminal_safe() {
        assert_eq!(
            super::terminal_safe("a\x1b]0;pwned\x07\nb"),
            "a\\u{1b}]0;pwned\\u{7}\nb"
        );
        assert_eq!(super::terminal_safe("plain\nlines"), "plain\nlines");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(super::printable("a\x1b[2Jb\n"), "a\\u{1b}[2Jb\\n");
        assert_eq!(super::printable("plain/path"), "plain/path");
    }
}
