//! binfmt_misc's magic rule, as one type, with the kernel's limits on registering one.
//!
//! A leaf module: it imports nothing from this crate, so the architecture table (`arch`), the
//! registry (`binfmt`) and the fuzz targets share the rule without importing one another.

/// The kernel's limits (docs/KERNEL.md, "Limits", measured on 6.18).
pub const MAX_REGISTER: usize = 1920;
pub const MIN_REGISTER: usize = 11;
pub const MAX_NAME: usize = 255;
pub const MAX_MAGIC: usize = 256;
/// How many bytes of a file the kernel compares magic against (BINPRM_BUF_SIZE).
pub const BINPRM_BUF_SIZE: usize = 256;

/// What the kernel compares magic against: the file's first BINPRM_BUF_SIZE bytes in a
/// zero-filled buffer, so a file shorter than a magic is compared against zeros past its end.
pub fn kernel_buffer(head: &[u8]) -> [u8; BINPRM_BUF_SIZE] {
    let mut buf = [0u8; BINPRM_BUF_SIZE];
    let n = head.len().min(BINPRM_BUF_SIZE);
    buf[..n].copy_from_slice(&head[..n]);
    buf
}

/// A magic rule: a file matches when its bytes at `offset` equal `magic` in every bit that
/// `mask` sets. A rule registered without a mask compares every bit, so its mask is all ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MagicRule {
    pub offset: usize,
    pub magic: Vec<u8>,
    /// As long as `magic` in a rule that passed [`check`](Self::check).
    pub mask: Vec<u8>,
}

/// Why a rule, an entry name or an entry file is not what the kernel takes: the reason, in
/// words (the caller's error says what was being checked).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// The reason reads as the text it is.
impl std::ops::Deref for Invalid {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<Invalid> for String {
    fn from(e: Invalid) -> String {
        e.0
    }
}

impl MagicRule {
    /// A rule as the architecture table writes it: magic and mask in hex, at offset 0.
    pub fn from_hex(magic: &str, mask: &str) -> Result<MagicRule, Invalid> {
        Self::from_hex_reason(magic, mask).map_err(Invalid)
    }

    /// The reason, in words, for `from_hex`.
    fn from_hex_reason(magic: &str, mask: &str) -> Result<MagicRule, String> {
        let magic = decode_hex(magic).map_err(|e| format!("magic: {e}"))?;
        let mask = decode_hex(mask).map_err(|e| format!("mask: {e}"))?;
        if magic.is_empty() || magic.len() > MAX_MAGIC {
            return Err(format!("magic must be 1 to {MAX_MAGIC} bytes"));
        }
        if mask.len() != magic.len() {
            return Err(format!(
                "mask has {} bytes but magic has {}; they must be the same length",
                mask.len(),
                magic.len()
            ));
        }
        Ok(MagicRule {
            offset: 0,
            magic,
            mask,
        })
    }

    /// A rule registered without a mask.
    pub fn unmasked(offset: usize, magic: Vec<u8>) -> MagicRule {
        let mask = vec![0xff; magic.len()];
        MagicRule {
            offset,
            magic,
            mask,
        }
    }

    /// The mask byte for magic byte `i`; a mask cut short compares every bit past its end.
    fn mask_at(&self, i: usize) -> u8 {
        self.mask.get(i).copied().unwrap_or(0xff)
    }

    /// The kernel's test (`fs/binfmt_misc.c`): `(buf[offset + i] ^ magic[i]) & mask[i] == 0`
    /// for every byte of the magic. A buffer too short to hold the magic never matches (the
    /// kernel compares against the at most 256 bytes it read; see [`kernel_buffer`]).
    pub fn matches(&self, buf: &[u8]) -> bool {
        let Some(window) = self
            .offset
            .checked_add(self.magic.len())
            .and_then(|end| buf.get(self.offset..end))
        else {
            return false;
        };
        window
            .iter()
            .zip(&self.magic)
            .enumerate()
            .all(|(i, (b, m))| (b ^ m) & self.mask_at(i) == 0)
    }

    /// Whether some file would match both rules: unless a byte both rules test demands
    /// different bits, one file can satisfy both.
    pub fn overlaps(&self, other: &MagicRule) -> bool {
        let (a0, b0) = (self.offset, other.offset);
        let start = a0.max(b0);
        let end = (a0 + self.magic.len()).min(b0 + other.magic.len());
        (start..end).all(|pos| {
            let (i, j) = (pos - a0, pos - b0);
            let both = self.mask_at(i) & other.mask_at(j);
            (self.magic[i] ^ other.magic[j]) & both == 0
        })
    }

    /// The same test: same offset and mask, and the same magic in every bit the mask keeps
    /// (the kernel ignores the others, and may print them as given).
    pub fn same(&self, other: &MagicRule) -> bool {
        let kept = |r: &MagicRule| -> Vec<u8> {
            r.magic.iter().zip(&r.mask).map(|(m, k)| m & k).collect()
        };
        self.offset == other.offset && self.mask == other.mask && kept(self) == kept(other)
    }

    /// The limits the kernel puts on a rule it registers.
    pub fn check(&self) -> Result<(), Invalid> {
        self.check_reason().map_err(Invalid)
    }

    /// The reason, in words, for `check`.
    fn check_reason(&self) -> Result<(), String> {
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
        Ok(())
    }
}

/// Whether `name` can be a binfmt_misc entry's file name at all: 1 to 255 bytes, no '/',
/// not `.`, `..`, or the control files `register` and `status`.
pub fn check_entry_name(n: &str) -> Result<(), Invalid> {
    entry_name_reason(n).map_err(Invalid)
}

/// The reason, in words, for `check_entry_name`.
fn entry_name_reason(n: &str) -> Result<(), String> {
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

/// Every byte as `\xHH`, as register strings carry magic and mask (a raw NUL would cut the
/// magic short, a raw ':' would end the field).
pub fn escape(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 4);
    for b in bytes {
        s.push_str("\\x");
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

/// Decode a hex string; whitespace and a `\x` prefix per byte are accepted.
pub fn decode_hex(s: &str) -> Result<Vec<u8>, String> {
    let cleaned: String = s
        .replace("\\x", "")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    // Slicing two bytes at a time below is only sound on ASCII (a multi-byte character
    // would put a slice boundary inside it, and panic).
    if let Some(c) = cleaned.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(format!(
            "'{}' is not a hex byte string ({c:?} is no hex digit)",
            s.escape_debug()
        ));
    }
    if cleaned.len() % 2 != 0 {
        return Err(format!("'{s}' has an odd number of hex digits"));
    }
    (0..cleaned.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&cleaned[i..i + 2], 16)
                .map_err(|_| format!("'{}' is not a hex byte", &cleaned[i..i + 2]))
        })
        .collect()
}

/// Magic and mask as the kernel prints them in an entry file: 1 to 256 bytes in lower-case
/// hex, nothing else.
pub fn decode_kernel_hex(s: &str) -> Result<Vec<u8>, String> {
    let ok = !s.is_empty()
        && s.len() % 2 == 0
        && s.len() <= 2 * BINPRM_BUF_SIZE
        && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !ok {
        return Err(format!("'{}' is not the kernel's hex", s.escape_debug()));
    }
    decode_hex(s)
}

/// Lower-case hex, as binfmt_misc prints magic and mask.
pub fn encode_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(offset: usize, magic: &[u8], mask: &[u8]) -> MagicRule {
        MagicRule {
            offset,
            magic: magic.to_vec(),
            mask: mask.to_vec(),
        }
    }

    #[test]
    fn matches_under_the_mask_at_the_offset() {
        let r = rule(2, b"\x7fE", b"\xffF");
        assert!(r.matches(b"..\x7fE"));
        assert!(r.matches(b"..\x7f\x44"), "a bit outside the mask");
        assert!(!r.matches(b"..\x7e\x45"), "a bit inside the mask");
        assert!(!r.matches(b"..\x7f"), "a buffer too short never matches");
        assert!(!rule(usize::MAX, b"x", b"\xff").matches(b"x"));
        assert!(MagicRule::unmasked(0, b"PK".to_vec()).matches(b"PK\x03\x04"));
        let short = kernel_buffer(b"\x7f");
        assert!(rule(0, b"\x7f\0\0", b"\xff\xff\xff").matches(&short));
    }

    #[test]
    fn overlap_is_about_the_bytes_both_rules_test() {
        let elf = rule(0, b"\x7fELF", b"\xff\xff\xff\xff");
        let arm64 = rule(0, b"\x7fELF\x02", b"\xff\xff\xff\xff\xff");
        let x86 = rule(0, b"\x7fELF\x01", b"\xff\xff\xff\xff\xff");
        assert!(elf.overlaps(&arm64) && arm64.overlaps(&elf));
        assert!(!arm64.overlaps(&x86) && !x86.overlaps(&arm64));
        assert!(rule(4, b"\x02", b"\xff").overlaps(&arm64));
        assert!(
            rule(4, b"\x03", b"\xfe").overlaps(&arm64),
            "the differing bit is masked"
        );
        assert!(!rule(0, b"PK", b"\xff\xff").overlaps(&elf));
    }

    #[test]
    fn sameness_ignores_magic_bits_outside_the_mask() {
        let a = rule(0, b"\x7f\x01", b"\xff\xfe");
        assert!(a.same(&rule(0, b"\x7f\x00", b"\xff\xfe")));
        assert!(!a.same(&rule(0, b"\x7f\x01", b"\xff\xff")));
        assert!(!a.same(&rule(1, b"\x7f\x01", b"\xff\xfe")));
    }

    #[test]
    fn limits_and_names() {
        assert!(rule(0, b"\x7f", b"\xff").check().is_ok());
        assert!(rule(0, b"", b"").check().unwrap_err().contains("empty"));
        assert!(
            rule(0, b"ab", b"\xff")
                .check()
                .unwrap_err()
                .contains("must match")
        );
        let e = rule(255, b"ab", b"\xff\xff").check().unwrap_err();
        assert!(e.contains("window"), "{e}");
        assert!(check_entry_name("qemu-aarch64").is_ok());
        for bad in ["", "status", "register", ".", "..", "a/b"] {
            assert!(check_entry_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_entry_name(&"x".repeat(MAX_NAME + 1)).is_err());
    }

    #[test]
    fn hex_forms() {
        assert_eq!(escape(b"\x7f\0:"), "\\x7f\\x00\\x3a");
        assert_eq!(encode_hex(b"\x7f\0\xab"), "7f00ab");
        assert_eq!(decode_kernel_hex("7f00ab"), Ok(vec![0x7f, 0, 0xab]));
        for bad in ["", "7F", "7f 00", "\\x7f", "7", &"00".repeat(257)] {
            assert!(decode_kernel_hex(bad).is_err(), "{bad:?}");
        }
        let e = MagicRule::from_hex("7f45", "ff").unwrap_err();
        assert!(e.contains("same length"), "{e}");
        assert!(MagicRule::from_hex("", "").is_err());
        assert_eq!(
            MagicRule::from_hex("7f 45", "\\xff\\xfe"),
            Ok(rule(0, b"\x7fE", b"\xff\xfe"))
        );
    }

    /// Found by the arch_table fuzz target: a multi-byte character in a magic or mask put a
    /// two-byte slice boundary inside it, and `--arch-table` panicked instead of refusing.
    #[test]
    fn regression_hex_with_a_multibyte_character_is_refused_not_a_panic() {
        for bad in [
            "a\u{fffd}a",
            "\u{e9}\u{e9}",
            "7f45\u{fffd}",
            "+f",
            "\\x\u{e9}0",
        ] {
            assert!(decode_hex(bad).is_err(), "{bad:?}");
        }
        assert_eq!(decode_hex("\\x7f 45"), Ok(vec![0x7f, 0x45]));
    }
}
