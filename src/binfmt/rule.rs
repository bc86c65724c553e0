//! A registration we intend to make: its register string, the kernel's limits on it, and how
//! it compares with entries already there.

use super::entry::Entry;

/// The kernel's limits (KERNEL.md, measured on 6.18).
pub const MAX_REGISTER: usize = 1920;
pub const MIN_REGISTER: usize = 11;
pub const MAX_NAME: usize = 255;
pub const MAX_MAGIC: usize = 256;

/// One handler to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub name: String,
    pub offset: usize,
    pub magic: Vec<u8>,
    pub mask: Vec<u8>,
    pub interpreter: String,
    /// Subset of `POCF`, in that order.
    pub flags: String,
}

impl Registration {
    /// The entry for one row of the table: named `qemu-<cpu>`, the row's rule at offset 0.
    pub fn for_arch(arch: &crate::arch::Arch, interpreter: String, flags: String) -> Registration {
        Registration {
            name: arch.entry_name().unwrap_or_default(),
            offset: 0,
            magic: arch.magic.clone(),
            mask: arch.mask.clone(),
            interpreter,
            flags,
        }
    }

    /// Check every limit the kernel enforces, so nothing is written that it would refuse.
    pub fn validate(&self) -> Result<(), String> {
        let n = &self.name;
        check_entry_name(n)?;
        // The register string's delimiter, and what would garble our own output.
        if let Some(c) = n
            .chars()
            .find(|c| *c == ':' || c.is_control() || c.is_whitespace())
        {
            return Err(format!("entry name '{}' contains {c:?}", n.escape_debug()));
        }
        if self.magic.is_empty() {
            return Err("magic is empty".into());
        }
        if self.mask.len() != self.magic.len() {
            return Err(format!(
                "mask is {} bytes but magic is {}; they must match",
                self.mask.len(),
                self.magic.len()
            ));
        }
        if self.offset + self.magic.len() > MAX_MAGIC {
            return Err(format!(
                "offset {} + magic {} bytes exceeds the kernel's {MAX_MAGIC}-byte window",
                self.offset,
                self.magic.len()
            ));
        }
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
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let esc = |bytes: &[u8]| {
            let mut s = String::with_capacity(bytes.len() * 4);
            for b in bytes {
                s.push_str("\\x");
                s.push(char::from(HEX[usize::from(b >> 4)]));
                s.push(char::from(HEX[usize::from(b & 0xf)]));
            }
            s
        };
        format!(
            ":{}:M:{}:{}:{}:{}:{}",
            self.name,
            self.offset,
            esc(&self.magic),
            esc(&self.mask),
            self.interpreter,
            self.flags
        )
    }

    /// The same rule, interpreter and flags as an existing entry: nothing to do.
    pub fn same_as(&self, e: &Entry) -> bool {
        let Some((offset, magic, mask)) = e.rule.magic_rule() else {
            return false;
        };
        e.name == self.name
            && offset == self.offset
            && masked(magic, &mask) == masked(&self.magic, &self.mask)
            && *mask == *self.mask
            && e.interpreter == self.interpreter
            && normalise_flags(&e.flags) == normalise_flags(&self.flags)
    }

    /// Some file could match both this rule and the entry's.
    pub fn overlaps(&self, e: &Entry) -> bool {
        match e.rule.magic_rule() {
            Some((offset, magic, mask)) => self.overlaps_rule(offset, magic, &mask),
            None => false,
        }
    }

    /// Whether some file would match both this rule and the magic rule given.
    pub fn overlaps_rule(&self, offset: usize, magic: &[u8], mask: &[u8]) -> bool {
        // Two rules conflict unless some byte both of them test demands different bits.
        let (a0, b0) = (self.offset, offset);
        let start = a0.max(b0);
        let end = (a0 + self.magic.len()).min(b0 + magic.len());
        (start..end).all(|pos| {
            let (i, j) = (pos - a0, pos - b0);
            let both = self.mask[i] & mask[j];
            (self.magic[i] ^ magic[j]) & both == 0
        })
    }
}

/// Whether `name` can be a binfmt_misc entry's file name at all: 1 to 255 bytes, no '/',
/// not `.`, `..`, or the control files `register` and `status`.
pub fn check_entry_name(n: &str) -> Result<(), String> {
    if n.is_empty() || n.len() > MAX_NAME {
        return Err(format!("entry name '{n}' must be 1 to {MAX_NAME} bytes"));
    }
    if n == "." || n == ".." || n == "register" || n == "status" {
        return Err(format!("entry name '{n}' is reserved"));
    }
    if n.contains('/') {
        return Err(format!("entry name '{}' contains '/'", n.escape_debug()));
    }
    Ok(())
}

/// Flags as the kernel stores them: `C` implies `O`, order `POCF`.
pub fn normalise_flags(flags: &str) -> String {
    let has = |c| flags.contains(c);
    "POCF"
        .chars()
        .filter(|&c| has(c) || (c == 'O' && has('C')))
        .collect()
}

fn masked(magic: &[u8], mask: &[u8]) -> Vec<u8> {
    magic.iter().zip(mask).map(|(m, k)| m & k).collect()
}

/// Rebuild the registration an entry came from, to restore it after a failed change.
pub fn from_entry(e: &Entry) -> Option<Registration> {
    let (offset, magic, mask) = e.rule.magic_rule()?;
    Some(Registration {
        name: e.name.clone(),
        offset,
        magic: magic.to_vec(),
        mask: mask.into_owned(),
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
            offset: 0,
            magic: a.magic.clone(),
            mask: a.mask.clone(),
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
                    mask: vec![0xff],
                    ..ok.clone()
                },
                "must match",
            ),
            (
                Registration {
                    offset: 240,
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
