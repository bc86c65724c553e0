//! One binfmt_misc entry, parsed from the file the kernel shows for it.

use std::path::Path;

use crate::rule::{BINPRM_BUF_SIZE, Invalid, MagicRule, decode_kernel_hex};

/// Flags as the kernel prints them: a subsequence of `POCF`.
fn is_kernel_flags(flags: &str) -> bool {
    let mut order = "POCF".chars();
    flags.chars().all(|c| order.any(|o| o == c))
}

/// What an entry matches on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    Magic {
        rule: MagicRule,
        /// The entry file shows a mask: one was registered (without, every bit is compared).
        mask_shown: bool,
    },
    Extension(String),
}

impl Rule {
    /// The magic rule, if this is one.
    pub fn magic_rule(&self) -> Option<&MagicRule> {
        match self {
            Rule::Magic { rule, .. } => Some(rule),
            Rule::Extension(_) => None,
        }
    }

    /// The kernel's test. `buf` is the file's first BINPRM_BUF_SIZE bytes, zero-padded.
    pub fn matches(&self, path: &Path, buf: &[u8]) -> bool {
        match self {
            Rule::Magic { rule, .. } => rule.matches(buf),
            // The kernel compares what follows the last '.' of the path as passed to exec.
            Rule::Extension(ext) => {
                let p = path.as_os_str().as_encoded_bytes();
                match p.iter().rposition(|&b| b == b'.') {
                    Some(i) => &p[i + 1..] == ext.as_bytes(),
                    None => false,
                }
            }
        }
    }
}

/// One registered handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub enabled: bool,
    pub interpreter: String,
    /// Flags as the kernel prints them, in `POCF` order.
    pub flags: String,
    pub rule: Rule,
}

impl Entry {
    /// Parse the kernel's entry file, which has exactly this shape:
    /// ```text
    /// enabled
    /// interpreter /usr/bin/qemu-aarch64-static
    /// flags: F
    /// offset 0
    /// magic 7f454c46…
    /// mask ffffffff…
    /// ```
    /// with `mask` only when one was registered, or `extension .ext` in place of
    /// offset/magic/mask.
    ///
    /// Strictly: the interpreter (and an extension) may hold any byte but NUL and the
    /// delimiter, newlines included, so whoever registers an entry can make its file show
    /// extra lines. Every line must be the kernel's, in the kernel's order, or the file is
    /// refused: a line smuggled in through the interpreter shifts the kernel's own lines out
    /// of place, and cannot pass for them.
    pub fn parse(name: &str, text: &str) -> Result<Entry, Invalid> {
        Self::parse_reason(name, text).map_err(Invalid)
    }

    /// The reason, in words, for `parse`.
    fn parse_reason(name: &str, text: &str) -> Result<Entry, String> {
        let Some(body) = text.strip_suffix('\n') else {
            return Err("does not end in a newline".into());
        };
        let lines: Vec<&str> = body.split('\n').collect();
        let field = |i: usize, key: &str| -> Result<&str, String> {
            let line = lines
                .get(i)
                .ok_or_else(|| format!("line {} ({key}) is missing", i + 1))?;
            line.strip_prefix(key)
                .ok_or_else(|| format!("line {} is not '{key}…'", i + 1))
        };
        let enabled = match lines.first().copied() {
            Some("enabled") => true,
            Some("disabled") => false,
            other => return Err(format!("first line is {other:?}, not enabled/disabled")),
        };
        let interpreter = field(1, "interpreter ")?;
        let flags = field(2, "flags: ")?;
        if !is_kernel_flags(flags) {
            return Err(format!(
                "flags '{}' are not the kernel's",
                flags.escape_debug()
            ));
        }
        let (rule, used) = if let Ok(ext) = field(3, "extension .") {
            (Rule::Extension(ext.to_string()), 4)
        } else {
            let offset = field(3, "offset ")?;
            let offset = offset
                .parse::<usize>()
                .ok()
                .filter(|o| *o < BINPRM_BUF_SIZE && !offset.starts_with('+'))
                .ok_or_else(|| format!("offset '{}' is not the kernel's", offset.escape_debug()))?;
            let magic = decode_kernel_hex(field(4, "magic ")?)?;
            let (mask, used) = match field(5, "mask ") {
                Ok(m) => (Some(decode_kernel_hex(m)?), 6),
                Err(_) => (None, 5),
            };
            let mask_shown = mask.is_some();
            let rule = match mask {
                Some(mask) if mask.len() != magic.len() => {
                    return Err("mask and magic differ in length".into());
                }
                Some(mask) => MagicRule {
                    offset,
                    magic,
                    mask,
                },
                None => MagicRule::unmasked(offset, magic),
            };
            (Rule::Magic { rule, mask_shown }, used)
        };
        if lines.len() != used {
            return Err(format!(
                "{} lines where the kernel writes {used} (a newline inside the interpreter or extension?)",
                lines.len()
            ));
        }
        Ok(Entry {
            name: name.to_string(),
            enabled,
            interpreter: interpreter.to_string(),
            flags: flags.to_string(),
            rule,
        })
    }

    pub fn has_flag(&self, flag: char) -> bool {
        self.flags.contains(flag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AARCH64: &str = "enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: F\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";

    #[test]
    fn parses_magic_entry() {
        let e = Entry::parse("qemu-aarch64", AARCH64).expect("parse");
        assert!(e.enabled);
        assert_eq!(e.interpreter, "/usr/bin/qemu-aarch64-static");
        assert_eq!(e.flags, "F");
        let Rule::Magic { rule, mask_shown } = &e.rule else {
            panic!("not magic")
        };
        assert_eq!(
            (
                rule.offset,
                rule.magic.len(),
                mask_shown.then_some(rule.mask.len())
            ),
            (0, 20, Some(20))
        );
    }

    #[test]
    fn parses_extension_and_maskless_and_empty_flags() {
        let e = Entry::parse(
            "jarx",
            "disabled\ninterpreter /usr/bin/jexec\nflags: \nextension .jar\n",
        )
        .expect("parse");
        assert!(!e.enabled);
        assert_eq!(e.rule, Rule::Extension("jar".into()));
        assert!(e.rule.matches(Path::new("/x/app.jar"), &[]));
        assert!(!e.rule.matches(Path::new("/x.jar/app"), &[]));
        let e = Entry::parse(
            "jar",
            "enabled\ninterpreter /usr/bin/jexec\nflags: \noffset 0\nmagic 504b0304\n",
        )
        .expect("parse");
        assert!(e.rule.matches(Path::new("a"), b"PK\x03\x04rest"));
        assert!(!e.rule.matches(Path::new("a"), b"PK\x03\x05"));
    }

    #[test]
    fn refuses_garbage() {
        assert!(Entry::parse("x", "").is_err());
        assert!(Entry::parse("x", "enabled\nflags: F\n").is_err());
        assert!(Entry::parse("x", "maybe\n").is_err());
        assert!(Entry::parse("x", "enabled\ninterpreter /a\noffset zz\nmagic 00\n").is_err());
        assert!(
            Entry::parse(
                "x",
                "enabled\ninterpreter /a\nflags: FP\noffset 0\nmagic 00\n"
            )
            .is_err(),
            "flags out of the kernel's order"
        );
        assert!(
            Entry::parse(
                "x",
                "enabled\ninterpreter /a\nflags: \noffset 0\nmagic 0g\n"
            )
            .is_err()
        );
    }

    /// Measured on 6.18: the kernel takes a newline inside the interpreter and shows it as is,
    /// so an entry registered as `:evil:M::\x50\x51::/x\nextension .foo\noffset zz:` lists
    /// these lines. Read leniently they either broke every command that reads binfmt_misc
    /// (`offset zz`) or passed for an extension rule with interpreter `/x`.
    #[test]
    fn regression_lines_smuggled_through_the_interpreter_are_refused() {
        for text in [
            "enabled\ninterpreter /x\nextension .foo\noffset zz\nflags: \noffset 0\nmagic 5051\n",
            "enabled\ninterpreter /x\nextension .foo\nflags: \noffset 0\nmagic 5051\n",
            // Posing as ours: the kernel's real interpreter is "/evil\ninterpreter /usr/bin/…".
            "enabled\ninterpreter /evil\ninterpreter /usr/bin/qemu-aarch64-static\nflags: F\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n",
            // A mask smuggled into a mask-less rule, then the kernel's own lines.
            "enabled\ninterpreter /x\nflags: \noffset 0\nmagic 00\nmask 00\nflags: \noffset 0\nmagic 5051\n",
            // An extension with a newline in it.
            "enabled\ninterpreter /z\nflags: \nextension .fo\no\n",
        ] {
            assert!(Entry::parse("evil", text).is_err(), "{text:?}");
        }
    }
}
