//! File names as text, losslessly. A Linux file name is bytes; most are UTF-8 and are shown
//! as they are, but two names that differ only in bytes that are not UTF-8 must not print,
//! or serialise, the same.
//!
//! The rule: a name that is valid UTF-8 and holds no backslash is its own text. Any other
//! name is escaped: each backslash doubled, each byte that is not part of valid UTF-8 (and
//! each control character) written `\xHH`. So a text with a backslash in it is always an
//! escaped one, and [`unescape`] gives the exact bytes back; JSON carries them as
//! `path_hex` beside such a text.

use std::borrow::Cow;
use std::fmt::Write;

/// A name's text: itself when it can be, escaped when not (see the module).
pub fn escape(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.contains('\\') => Cow::Borrowed(s),
        _ => Cow::Owned(escape_all(bytes)),
    }
}

fn escape_all(mut bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 8);
    while !bytes.is_empty() {
        // The longest valid prefix, then one byte that is not UTF-8 (if any).
        let (valid, rest) = match std::str::from_utf8(bytes) {
            Ok(s) => (s, &[][..]),
            Err(e) => {
                let (ok, bad) = bytes.split_at(e.valid_up_to());
                (std::str::from_utf8(ok).unwrap_or_default(), bad)
            }
        };
        for c in valid.chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else if c.is_control() {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "\\x{b:02x}");
                }
            } else {
                out.push(c);
            }
        }
        match rest.split_first() {
            Some((b, after)) => {
                let _ = write!(out, "\\x{b:02x}");
                bytes = after;
            }
            None => bytes = &[],
        }
    }
    out
}

/// The bytes an [`escape`]d text stands for.
pub fn unescape(text: &str) -> Vec<u8> {
    if !text.contains('\\') {
        return text.as_bytes().to_vec();
    }
    let mut out = Vec::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1)) {
            (b'\\', Some(b'\\')) => {
                out.push(b'\\');
                i += 2;
            }
            (b'\\', Some(b'x')) => {
                let byte = text
                    .get(i + 2..i + 4)
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match byte {
                    Some(v) => {
                        out.push(v);
                        i += 4;
                    }
                    None => {
                        out.push(b'\\');
                        i += 1;
                    }
                }
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The exact bytes of an escaped name, in hex, for JSON; `None` for a name that is its own
/// text.
pub fn hex_of_escaped(text: &str) -> Option<String> {
    text.contains('\\').then(|| {
        unescape(text).iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: two names differing only in bytes that are not UTF-8 printed and
    /// serialised identically (each byte became U+FFFD).
    #[test]
    fn regression_different_bytes_give_different_text() {
        let a = escape(b"prog\xff");
        let b = escape(b"prog\xfe");
        assert_ne!(a, b);
        assert_eq!(a, "prog\\xff");
        assert_eq!(unescape(&a), b"prog\xff");
        // A name that literally reads like an escape is escaped itself, so never collides.
        let literal = escape(b"prog\\xff");
        assert_eq!(literal, "prog\\\\xff");
        assert_ne!(literal, a);
        assert_eq!(unescape(&literal), b"prog\\xff");
    }

    #[test]
    fn plain_names_are_their_own_text_and_every_name_round_trips() {
        assert!(matches!(
            escape(b"/usr/bin/ls"),
            Cow::Borrowed("/usr/bin/ls")
        ));
        assert_eq!(hex_of_escaped("/usr/bin/ls"), None);
        for name in [
            &b"caf\xc3\xa9"[..],
            b"a\\b",
            b"\xff\xfe\\x41",
            b"tab\there",
            b"\xc3",
            b"ok\xe2\x82",
        ] {
            let text = escape(name);
            assert_eq!(unescape(&text), name, "{text}");
        }
        assert_eq!(hex_of_escaped("a\\xff"), Some("61ff".into()));
    }
}
