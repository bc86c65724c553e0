//! One binfmt_misc entry, parsed from the file the kernel shows for it.

use std::path::Path;

use crate::arch::{decode_hex, rule_matches};

/// A magic rule's offset, magic and (full) mask.
pub type MagicRule<'a> = (usize, &'a [u8], std::borrow::Cow<'a, [u8]>);

/// What an entry matches on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    Magic {
        offset: usize,
        magic: Vec<u8>,
        /// `None` when registered without a mask (every bit compared).
        mask: Option<Vec<u8>>,
    },
    Extension(String),
}

impl Rule {
    /// Offset, magic and mask of a magic rule; a rule registered without a mask compares
    /// every bit, so its mask is all ones.
    pub fn magic_rule(&self) -> Option<MagicRule<'_>> {
        match self {
            Rule::Magic {
                offset,
                magic,
                mask,
            } => Some((
                *offset,
                magic,
                match mask {
                    Some(m) => m.as_slice().into(),
                    None => vec![0xff; magic.len()].into(),
                },
            )),
            Rule::Extension(_) => None,
        }
    }

    /// The kernel's test. `buf` is the file's first BINPRM_BUF_SIZE bytes, zero-padded.
    pub fn matches(&self, path: &Path, buf: &[u8]) -> bool {
        match self {
            Rule::Magic { .. } => self
                .magic_rule()
                .is_some_and(|(offset, magic, mask)| rule_matches(magic, &mask, offset, buf)),
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
    /// Parse the kernel's entry file:
    /// ```text
    /// enabled
    /// interpreter /usr/bin/qemu-aarch64-static
    /// flags: F
    /// offset 0
    /// magic 7f454c46…
    /// mask ffffffff…
    /// ```
    /// or `extension .ext` in place of offset/magic/mask.
    pub fn parse(name: &str, text: &str) -> Result<Entry, String> {
        let mut lines = text.lines();
        let enabled = match lines.next().map(str::trim) {
            Some("enabled") => true,
            Some("disabled") => false,
            other => return Err(format!("first line is {other:?}, not enabled/disabled")),
        };
        let mut interpreter = None;
        let mut flags = None;
        let mut offset = None;
        let mut magic = None;
        let mut mask = None;
        let mut extension = None;
        for line in lines {
            let (key, value) = line.split_once([' ', ':']).unwrap_or((line, ""));
            let value = value.trim_start_matches(':').trim();
            match key {
                "interpreter" => interpreter = Some(value.to_string()),
                "flags" => flags = Some(value.to_string()),
                "offset" => {
                    offset = Some(
                        value
                            .parse::<usize>()
                            .map_err(|_| format!("offset '{value}' is not a number"))?,
                    )
                }
                "magic" => magic = Some(decode_hex(value)?),
                "mask" => mask = Some(decode_hex(value)?),
                "extension" => extension = Some(value.trim_start_matches('.').to_string()),
                _ => {}
            }
        }
        let rule = match (extension, magic) {
            (Some(ext), _) => Rule::Extension(ext),
            (None, Some(magic)) => Rule::Magic {
                offset: offset.unwrap_or(0),
                magic,
                mask,
            },
            (None, None) => return Err("neither magic nor extension".into()),
        };
        Ok(Entry {
            name: name.to_string(),
            enabled,
            interpreter: interpreter.ok_or("no interpreter line")?,
            flags: flags.unwrap_or_default(),
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
        let Rule::Magic {
            offset,
            magic,
            mask,
        } = &e.rule
        else {
            panic!("not magic")
        };
        assert_eq!(
            (*offset, magic.len(), mask.as_ref().map(Vec::len)),
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
    }
}
