//! A registration we intend to make: its register string, the kernel's limits on it, and how
//! it compares with entries already there.

use super::entry::Entry;
use crate::rule::{Invalid, MAX_REGISTER, MIN_REGISTER, MagicRule, check_entry_name, escape};

/// One handler to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub name: String,
    pub rule: MagicRule,
    pub interpreter: String,
    /// Subset of `POCF`, in that order.
    pub flags: String,
}

impl Registration {
    /// The entry for one row of the table: named `qemu-<cpu>`, the row's rule at offset 0.
    pub fn for_arch(arch: &crate::arch::Arch, interpreter: String, flags: String) -> Registration {
        Registration {
            name: arch.entry_name().unwrap_or_default(),
            rule: arch.rule.clone(),
            interpreter,
            flags,
        }
    }

    /// Check every limit the kernel enforces, so nothing is written that it would refuse.
    pub fn validate(&self) -> Result<(), Invalid> {
        self.validate_reason().map_err(Invalid)
    }

    /// The reason, in words, for `validate`.
    fn validate_reason(&self) -> Result<(), String> {
        let n = &self.name;
        check_entry_name(n)?;
        // The register string's delimiter, and what would garble our own output.
        if let Some(c) = n
            .chars()
            .find(|c| *c == ':' || c.is_control() || c.is_whitespace())
        {
            return Err(format!("entry name '{}' contains {c:?}", n.escape_debug()));
        }
        self.rule.check()?;
        if let Some(f) = self.flags.chars().find(|c| !"POCF".contains(*c)) {
            return Err(format!("flag '{f}' is not one of P, O, C, F"));
        }
        let i = &self.interpreter;
        if i.is_empty() || !i.starts_with('/') {
            return Err(format!("interpreter '{i}' must be an absolute path"));
        }
        if i.contains(':') || i.chars().any(char::is_control) {
            return Err(format!(
                "interpreter '{}' contains ':' or a control character",
                i.escape_debug()
            ));
        }
        let len = self.register_string().len();
        if !(MIN_REGISTER..=MAX_REGISTER).contains(&len) {
            return Err(format!(
                "register string is {len} bytes; the kernel takes {MIN_REGISTER} to {MAX_REGISTER}"
            ));
        }
        Ok(())
    }

    /// `:name:M:offset:magic:mask:interpreter:flags`, every magic and mask byte escaped as
    /// `\xHH` (a raw NUL would cut the magic short).
    pub fn register_string(&self) -> String {
        format!(
            ":{}:M:{}:{}:{}:{}:{}",
            self.name,
            self.rule.offset,
            escape(&self.rule.magic),
            escape(&self.rule.mask),
            self.interpreter,
            self.flags
        )
    }

    /// The same rule, interpreter and flags as an existing entry: nothing to do.
    pub fn same_as(&self, e: &Entry) -> bool {
        let Some(rule) = e.rule.magic_rule() else {
            return false;
        };
        e.name == self.name
            && rule.same(&self.rule)
            && e.interpreter == self.interpreter
            && normalise_flags(&e.flags) == normalise_flags(&self.flags)
    }

    /// Some file could match both this rule and the entry's.
    pub fn overlaps(&self, e: &Entry) -> bool {
        e.rule
            .magic_rule()
            .is_some_and(|rule| self.rule.overlaps(rule))
    }
}

/// Flags as the kernel stores them: `C` implies `O`, order `POCF`.
pub fn normalise_flags(flags: &str) -> String {
    let has = |c| flags.contains(c);
    "POCF"
        .chars()
        .filter(|&c| has(c) || (c == 'O' && has('C')))
        .collect()
}

/// The entry the kernel shows for a registration once it is made (enabled, flags as the
/// kernel stores them).
pub fn to_entry(r: &Registration) -> Entry {
    Entry {
        name: r.name.clone(),
        enabled: true,
        interpreter: r.interpreter.clone(),
        flags: normalise_flags(&r.flags),
        rule: super::entry::Rule::Magic {
            rule: r.rule.clone(),
            mask_shown: true,
        },
    }
}

/// Rebuild the registration an entry came from, to restore it after a failed change.
pub fn from_entry(e: &Entry) -> Option<Registration> {
    Some(Registration {
        name: e.name.clone(),
        rule: e.rule.magic_rule()?.clone(),
        interpreter: e.interpreter.clone(),
        flags: normalise_flags(&e.flags),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::ArchTable;

    fn aarch64() -> Registration {
        let t = ArchTable::embedded();
        let a = t.lookup("arm64").unwrap();
        Registration {
            name: "qemu-aarch64".into(),
            rule: a.rule.clone(),
            interpreter: "/usr/bin/qemu-aarch64-static".into(),
            flags: "F".into(),
        }
    }

    #[test]
    fn register_string_escapes_every_byte() {
        let s = aarch64().register_string();
        assert!(
            s.starts_with(":qemu-aarch64:M:0:\\x7f\\x45\\x4c\\x46"),
            "{s}"
        );
        assert!(s.ends_with(":/usr/bin/qemu-aarch64-static:F"), "{s}");
        assert!(!s.contains('\0'));
    }

    #[test]
    fn limits() {
        let ok = aarch64();
        assert!(ok.validate().is_ok());
        for (change, want) in [
            (
                Registration {
                    name: String::new(),
                    ..ok.clone()
                },
                "1 to 255",
            ),
            (
                Registration {
                    name: "x".repeat(256),
                    ..ok.clone()
                },
                "1 to 255",
            ),
            (
                Registration {
                    name: "status".into(),
                    ..ok.clone()
                },
                "reserved",
            ),
            (
                Registration {
                    name: "a/b".into(),
                    ..ok.clone()
                },
                "contains",
            ),
            (
                Registration {
                    name: "a:b".into(),
                    ..ok.clone()
                },
                "contains",
            ),
            (
                Registration {
                    rule: MagicRule {
                        mask: vec![0xff],
                        ..ok.rule.clone()
                    },
                    ..ok.clone()
                },
                "must match",
            ),
            (
                Registration {
                    rule: MagicRule {
                        offset: 240,
                        ..ok.rule.clone()
                    },
                    ..ok.clone()
                },
                "window",
            ),
            (
                Registration {
                    flags: "FX".into(),
                    ..ok.clone()
                },
                "flag 'X'",
            ),
            (
                Registration {
                    interpreter: "qemu".into(),
                    ..ok.clone()
                },
                "absolute",
            ),
            (
                Registration {
                    interpreter: "/a:b".into(),
                    ..ok.clone()
                },
                "':'",
            ),
            (
                Registration {
                    interpreter: format!("/{}", "a".repeat(1900)),
                    ..ok.clone()
                },
                "register string",
            ),
        ] {
            let e = change.validate().unwrap_err();
            assert!(e.contains(want), "{e} (want {want})");
        }
    }

    #[test]
    fn overlap_and_sameness() {
        let r = aarch64();
        let entry = |text: &str| Entry::parse("other", text).unwrap();
        let same_rule = entry(
            "enabled\ninterpreter /x\nflags: F\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n",
        );
        assert!(r.overlaps(&same_rule));
        assert!(!r.same_as(&same_rule), "another name is not the same entry");
        let x86 = entry(
            "enabled\ninterpreter /x\nflags: F\noffset 0\nmagic 7f454c4602010100000000000000000002003e00\nmask fffffffffffefe00fffffffffffffffffeffffff\n",
        );
        assert!(!r.overlaps(&x86));
        let jar = entry("enabled\ninterpreter /x\nflags: \noffset 0\nmagic 504b0304\n");
        assert!(!r.overlaps(&jar));
        // A loose ELF-only rule overlaps everything ELF.
        let any_elf = entry("enabled\ninterpreter /x\nflags: \noffset 0\nmagic 7f454c46\n");
        assert!(r.overlaps(&any_elf));
        let mine = Entry::parse("qemu-aarch64", "enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: F\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n").unwrap();
        assert!(r.same_as(&mine));
        assert_eq!(from_entry(&mine).as_ref(), Some(&r));
    }

    #[test]
    fn flags_normalise_like_the_kernel() {
        assert_eq!(normalise_flags("FC"), "OCF");
        assert_eq!(normalise_flags("FP"), "PF");
        assert_eq!(normalise_flags(""), "");
    }
}
