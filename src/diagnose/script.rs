//! The `#!` layer: the kernel runs a script's interpreter with the script's path. A line
//! ending in CR LF keeps its CR in the last word, and `#!/usr/bin/env CMD` starts env, which
//! then looks CMD up itself.

use std::path::Path;

use nix::errno::Errno;

use super::prose::{self, is_env};
use super::{Cause, DiagnoseError, Diagnoser, Finding, Lookup, Role};
use crate::format;

impl Diagnoser<'_> {
    /// A `#!` script at `path` (`host` on the host), whose first bytes are `head`.
    pub(super) fn script(
        &self,
        path: &str,
        host: &Path,
        head: &[u8],
        depth: usize,
    ) -> Result<Finding, DiagnoseError> {
        if let Some(start) = interpreter_cut_off(head) {
            return Ok(Finding::fails(
                Cause::ShebangTooLong,
                Errno::ENOEXEC,
                prose::shebang_too_long(path, &start),
            ));
        }
        let Some(sb) = format::shebang(head) else {
            return Ok(Finding::fails(
                Cause::NotABinary,
                Errno::ENOEXEC,
                prose::shebang_names_nothing(path),
            ));
        };
        let interp = sb.interpreter.as_str();
        if sb.crlf {
            if let Some(f) = self.crlf(path, host, head, interp, depth)? {
                return Ok(f);
            }
        }
        let inner = self.examine(interp, depth + 1, Role::ShebangInterpreter)?;
        let mut f = match inner.cause {
            Cause::NotFound => {
                let words = prose::shebang_missing(path, interp, self.place());
                let mut f = Finding::new(Cause::ShebangInterpreterMissing, inner.errno, words);
                f.chain = inner.chain.clone();
                f.notes = inner.notes.clone();
                f
            }
            Cause::Ok => match sb.argument.as_deref().filter(|_| is_env(interp)) {
                Some(arg) => self.env_command(path, interp, arg, inner.clone(), depth)?,
                None => {
                    let mut f = Finding::ok(prose::script_runs(interp, &inner.message));
                    f.chain = inner.chain.clone();
                    f
                }
            },
            Cause::ShebangLoop => {
                let mut paths = vec![path.to_string()];
                paths.extend(inner.chain.iter().map(|l| l.path.clone()));
                let cycle = paths
                    .iter()
                    .enumerate()
                    .any(|(i, p)| paths[..i].contains(p));
                let shown: Vec<String> = paths.iter().take(8).cloned().collect();
                let mut f = Finding::new(
                    Cause::ShebangLoop,
                    inner.errno,
                    prose::shebang_loop(path, &shown, cycle),
                );
                f.chain = inner.chain.clone();
                f
            }
            _ => {
                let mut f = inner.clone();
                f.message = prose::script_fails(interp, &inner.message);
                f
            }
        };
        if let Some(p) = inner.platform {
            f.platform.get_or_insert(p);
        }
        f.resolved = None;
        f.format = None;
        Ok(f)
    }

    /// A `#!` line ending in CR LF: the kernel keeps the CR in its last word. None when that
    /// does no harm (the interpreter with a CR exists) or the interpreter fails for another
    /// reason, which the caller finds.
    fn crlf(
        &self,
        path: &str,
        host: &Path,
        head: &[u8],
        interp: &str,
        depth: usize,
    ) -> Result<Option<Finding>, DiagnoseError> {
        let shown = self.host_shown(host);
        let (k_interp, k_arg) = kernel_shebang(head);
        let Some(arg) = k_arg else {
            // The kernel looks for "/bin/sh\r".
            if matches!(self.root.resolve(&k_interp), Lookup::Found(_)) {
                return Ok(None);
            }
            let only_without_cr = matches!(self.root.resolve(interp), Lookup::Found(_));
            return Ok(Some(Finding::fails(
                Cause::ShebangCrlf,
                Errno::ENOENT,
                prose::crlf_interpreter(path, &shown, interp, only_without_cr),
            )));
        };
        let inner = self.examine(interp, depth + 1, Role::ShebangInterpreter)?;
        if !inner.is_ok() {
            return Ok(None);
        }
        let mut f = Finding::starts(
            Cause::ShebangCrlf,
            prose::crlf_argument(&shown, interp, &arg),
        );
        f.chain = inner.chain;
        Ok(Some(f))
    }

    /// `#!/usr/bin/env CMD`: env starts, then looks CMD up in PATH itself.
    fn env_command(
        &self,
        path: &str,
        env: &str,
        arg: &str,
        env_finding: Finding,
        depth: usize,
    ) -> Result<Finding, DiagnoseError> {
        let arg = arg.strip_prefix("-S").map(str::trim_start).unwrap_or(arg);
        let Some(cmd) = arg
            .split_whitespace()
            .next()
            .filter(|c| !c.starts_with('-') && !c.contains('='))
        else {
            let mut f = Finding::ok(prose::env_runs(env, arg, &env_finding.message));
            f.chain = env_finding.chain;
            return Ok(f);
        };
        let found = if cmd.contains('/') {
            Some(cmd.to_string())
        } else {
            self.lookup_command(cmd)
        };
        let Some(cmd_path) = found else {
            let mut f = Finding::starts(
                Cause::ShebangInterpreterMissing,
                prose::env_command_missing(path, env, cmd, self.place()),
            );
            f.chain = env_finding.chain;
            return Ok(f);
        };
        let inner = self.examine(&cmd_path, depth + 1, Role::EnvCommand)?;
        if inner.is_ok() {
            let mut f = Finding::ok(prose::env_command_runs(env, cmd, &cmd_path, &inner.message));
            f.chain = env_finding.chain;
            return Ok(f);
        }
        // env itself started, so exec of the script succeeded; env reports the failure.
        let words = prose::env_command_fails(
            env,
            cmd,
            &inner.message,
            inner.error.as_deref().unwrap_or_default(),
        );
        let mut f = inner.clone();
        f.message = words.message;
        f.error = words.error;
        f.errno = None;
        f.chain = env_finding.chain;
        f.chain.extend(inner.chain);
        Ok(f)
    }
}

/// The kernel reads a script's first 256 bytes (BINPRM_BUF_SIZE, zero-filled past a short
/// file). With no newline among them, the interpreter path must still end (a blank or a NUL)
/// by the last of them, or `load_script` refuses the file with ENOEXEC rather than run a
/// truncated path (`fs/binfmt_script.c`, `next_terminator`); arguments past the buffer are
/// cut silently. The start of the interpreter path when it is cut off, else None.
fn interpreter_cut_off(head: &[u8]) -> Option<String> {
    const BUF: usize = 256;
    let mut buf = [0u8; BUF];
    let n = head.len().min(BUF);
    buf[..n].copy_from_slice(&head[..n]);
    if !buf.starts_with(b"#!") || buf.contains(&b'\n') {
        return None;
    }
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let Some(start) = buf[2..].iter().position(|b| !blank(b)).map(|i| i + 2) else {
        return Some(String::new());
    };
    let ends = buf[start..].iter().any(|b| blank(b) || *b == 0);
    (!ends).then(|| String::from_utf8_lossy(&buf[start..(start + 40).min(BUF)]).into_owned())
}

/// How the kernel splits a `#!` line: interpreter up to the first blank, the rest (blanks
/// trimmed at both ends, but not CR) as one argument. Only trailing blanks and tabs are
/// trimmed, so a CR stays in the last word.
fn kernel_shebang(head: &[u8]) -> (String, Option<String>) {
    let rest = head.strip_prefix(b"#!").unwrap_or(head);
    let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let line = String::from_utf8_lossy(&rest[..end]).into_owned();
    let line = line
        .trim_start_matches([' ', '\t'])
        .trim_end_matches([' ', '\t']);
    match line.find([' ', '\t']) {
        Some(i) => {
            let arg = line[i..].trim_start_matches([' ', '\t']);
            (
                line[..i].to_string(),
                (!arg.is_empty()).then(|| arg.to_string()),
            )
        }
        None => (line.to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::Link;
    use crate::diagnose::tests::{diagnose, expect};
    use crate::machine::Fake;
    use crate::machine::testing::program;

    #[test]
    fn an_interpreter_path_must_end_within_256_bytes() {
        // Measured on Linux 6.18: "#!" and a 253-byte path, newline at byte 255, runs; a
        // 254-byte path is ENOEXEC; a long argument is cut, not refused.
        let line = |n: usize, rest: &str| format!("#!/{}{rest}", "x".repeat(n - 1)).into_bytes();
        assert_eq!(interpreter_cut_off(&line(253, "\nexit 7\n")), None);
        assert!(interpreter_cut_off(&line(254, "\nexit 7\n")).is_some());
        assert_eq!(
            interpreter_cut_off(&line(20, &format!(" {}\n", "A".repeat(300)))),
            None
        );
        // A short file ends in zeros: its path ends.
        assert_eq!(interpreter_cut_off(&line(100, "")), None);
        assert_eq!(interpreter_cut_off(b"echo hi"), None);
    }

    #[test]
    fn kernel_keeps_the_carriage_return() {
        assert_eq!(kernel_shebang(b"#!/bin/sh\r\n"), ("/bin/sh\r".into(), None));
        assert_eq!(
            kernel_shebang(b"#! /usr/bin/env  bash\r\n"),
            ("/usr/bin/env".into(), Some("bash\r".into()))
        );
        assert_eq!(kernel_shebang(b"#!/bin/sh \t\n"), ("/bin/sh".into(), None));
    }

    #[test]
    fn a_failing_env_command_is_in_the_chain() {
        let m = Fake::new()
            .file("/usr/bin/env", program("amd64"), 0o755)
            .file("/usr/bin/tool", b"x".to_vec(), 0o644)
            .file("/srv/s", b"#!/usr/bin/env tool\n".to_vec(), 0o755)
            .env_var("PATH", "/usr/bin");
        let d = diagnose(&m, None, "/srv/s");
        expect(
            &d,
            Cause::NotExecutable,
            None,
            &["a script run by /usr/bin/env tool"],
            &[],
        );
        let chain: Vec<String> = d.chain.iter().map(Link::describe).collect();
        assert_eq!(
            chain,
            ["/srv/s", "#! /usr/bin/env", "env /usr/bin/tool"],
            "{d:#?}"
        );
    }
}
