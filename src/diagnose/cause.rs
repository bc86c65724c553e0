//! The causes `diagnose` names, written once: one table gives the enum, its stable code
//! strings (part of the JSON contract; see docs/ARCHITECTURE.md, "Adding a cause"),
//! [`Cause::ALL`], and the line `diagnose --help` shows for each.

use serde::Serialize;

/// Builds [`Cause`] from rows of `Variant "CODE" "what it means";`.
macro_rules! causes {
    ($($variant:ident $code:literal $line:literal;)*) => {
        /// Why a program will not run (or `Ok`: it will). The codes are stable.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        pub enum Cause {
            $(#[serde(rename = $code)] $variant,)*
        }

        impl Cause {
            /// Every cause, in the order `--help` lists them.
            pub const ALL: [Cause; [$($code),*].len()] = [$(Cause::$variant),*];

            /// The stable code: `NO_HANDLER`, …
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Cause::$variant => $code,)*
                }
            }

            /// What the cause means, in one line.
            pub fn describe(self) -> &'static str {
                match self {
                    $(Cause::$variant => $line,)*
                }
            }
        }
    };
}

causes! {
    Ok "OK" "it runs (natively, or through a handler)";
    NotFound "NOT_FOUND" "no such file, no such command in PATH, or a dangling symlink";
    NotExecutable "NOT_EXECUTABLE" "no execute permission for you (EACCES)";
    NoexecMount "NOEXEC_MOUNT" "it lies on a filesystem mounted noexec (EACCES)";
    NotABinary "NOT_A_BINARY" "a text file without #!, an object file, an empty file (ENOEXEC)";
    ForeignOs "FOREIGN_OS" "a macOS, Windows or FreeBSD program";
    Truncated "TRUNCATED" "an ELF cut short (ENOEXEC)";
    BinfmtNotMounted "BINFMT_NOT_MOUNTED" "a foreign program, and binfmt_misc is not mounted (ENOEXEC)";
    BinfmtDisabled "BINFMT_DISABLED" "binfmt_misc is disabled as a whole (ENOEXEC)";
    NoHandler "NO_HANDLER" "a foreign program with no handler for its arch (ENOEXEC)";
    HandlerDisabled "HANDLER_DISABLED" "its handler exists but is disabled (ENOEXEC)";
    InterpreterMissing "INTERPRETER_MISSING" "the handler's interpreter does not exist (ENOENT)";
    InterpreterNotInRoot "INTERPRETER_NOT_IN_ROOT" "a handler without F, its interpreter absent in --root (ENOENT)";
    InterpreterDynamic "INTERPRETER_DYNAMIC" "the handler's QEMU is dynamically linked and its loader or libraries are absent in --root (ENOENT)";
    LoaderMissing "LOADER_MISSING" "the program's loader (PT_INTERP) is absent (ENOENT, or QEMU's \"Could not open\")";
    ShebangInterpreterMissing "SHEBANG_INTERPRETER_MISSING" "the #! interpreter does not exist (ENOENT)";
    ShebangCrlf "SHEBANG_CRLF" "the #! line ends in CR LF (Windows line endings)";
    UnsupportedArch "UNSUPPORTED_ARCH" "an architecture QEMU cannot emulate (ENOEXEC)";
    HostAbiUnsupported "HOST_ABI_UNSUPPORTED" "an ABI of this CPU the kernel was built without, e.g. x32";
    IllegalInstruction "ILLEGAL_INSTRUCTION" "it needs an instruction-set level the CPU (or QEMU's CPU model) lacks: SIGILL";
    LibraryMissing "LIBRARY_MISSING" "a DT_NEEDED library is not found where the loader looks (exit 127)";
    TextBusy "TEXT_BUSY" "the file is open for writing by a process (ETXTBSY)";
    ShebangLoop "SHEBANG_LOOP" "#! interpreters lead back to a script already on the way, or too deep (ELOOP)";
    ShebangTooLong "SHEBANG_TOO_LONG" "the #! interpreter path does not end within the kernel's 256-byte buffer (ENOEXEC)";
    SetuidNeedsCredential "SETUID_NEEDS_CREDENTIAL" "a setuid/setgid program under a handler without C: it runs without its privilege";
}

/// Where a description starts, and how wide a help line may be.
const CODE_WIDTH: usize = 28;
const LINE_WIDTH: usize = 94;

impl Cause {
    /// One row per cause for `diagnose --help`: the code, then its description, wrapped
    /// under itself.
    pub fn help_lines() -> String {
        let indent = 2 + CODE_WIDTH + 1;
        let mut out = String::new();
        for cause in Cause::ALL {
            let mut line = format!("  {:<CODE_WIDTH$} ", cause.as_str());
            let mut empty = true;
            for word in cause.describe().split(' ') {
                if !empty && line.len() + 1 + word.len() > LINE_WIDTH {
                    out.push_str(&line);
                    out.push('\n');
                    line = " ".repeat(indent);
                    empty = true;
                }
                if !empty {
                    line.push(' ');
                }
                line.push_str(word);
                empty = false;
            }
            out.push_str(&line);
            out.push('\n');
        }
        out.pop();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cause_codes_are_the_designed_strings() {
        for c in Cause::ALL {
            let json = serde_json::to_string(&c).expect("json");
            assert_eq!(json, format!("\"{}\"", c.as_str()));
        }
        assert_eq!(Cause::ALL.len(), 25);
        assert_eq!(Cause::NotABinary.as_str(), "NOT_A_BINARY");
        assert_eq!(Cause::HostAbiUnsupported.as_str(), "HOST_ABI_UNSUPPORTED");
    }

    #[test]
    fn help_lists_every_cause_within_the_width() {
        let help = Cause::help_lines();
        for c in Cause::ALL {
            assert!(help.contains(&format!("  {} ", c.as_str())), "{help}");
        }
        assert!(help.lines().all(|l| l.len() <= LINE_WIDTH), "{help}");
        assert!(
            help.contains("loader or\n                               libraries"),
            "{help}"
        );
    }
}
