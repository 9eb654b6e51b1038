//! JSON string text, written by hand where the hot path needs it: escaping a string into a
//! record, decoding an escaped string body (strictly or leniently), borrowing object keys, and
//! cutting text at a byte bound without splitting a character.
//!
//! Everything else in the daemon uses serde_json; these exist because records are written by
//! hand (field order fixed, raw client JSON copied through) and stacks are kept escaped, as the
//! client sent them, from parse to the log (`../shared/PERF-NOTES.md`: ~110 ns per event saved).

use std::borrow::Cow;
use std::fmt;

use bytes::{BufMut, BytesMut};
use serde::de::{self, Deserialize, Deserializer, Visitor};

/// Bytes that must be escaped inside a JSON string: `"`, `\` and control characters.
const fn escape_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
}
static ESCAPE: [bool; 256] = escape_table();

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Calls `put` with the escaped body of `s`, piece by piece: runs that need no escaping as they
/// are, each escape as its own piece. Every piece is whole UTF-8 (only ASCII bytes are escaped).
#[inline]
fn escape_pieces(s: &str, mut put: impl FnMut(&[u8])) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !ESCAPE[b as usize] {
            continue;
        }
        put(&bytes[start..i]);
        match b {
            b'"' => put(b"\\\""),
            b'\\' => put(b"\\\\"),
            b'\n' => put(b"\\n"),
            b'\r' => put(b"\\r"),
            b'\t' => put(b"\\t"),
            _ => put(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]),
        }
        start = i + 1;
    }
    put(&bytes[start..]);
}

/// Appends `s` as a quoted JSON string.
pub fn put_str(out: &mut BytesMut, s: &str) {
    out.reserve(s.len() + 2);
    out.put_u8(b'"');
    put_escaped(out, s);
    out.put_u8(b'"');
}

/// Appends the escaped body of `s` (no quotes).
pub fn put_escaped(out: &mut BytesMut, s: &str) {
    escape_pieces(s, |p| out.extend_from_slice(p));
}

/// Appends the escaped body of `s` (no quotes) to a `String`.
pub fn push_escaped(out: &mut String, s: &str) {
    // Pieces are whole UTF-8: runs of `s` cut at ASCII bytes, or ASCII escapes.
    escape_pieces(s, |p| {
        out.push_str(std::str::from_utf8(p).unwrap_or_default())
    });
}

/// `s` as the escaped body of a JSON string literal (no quotes).
pub fn escaped(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    push_escaped(&mut out, s);
    out
}

/// `s` as a JSON string literal (with quotes).
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    push_escaped(&mut out, s);
    out.push('"');
    out
}

/// The value of the four hex digits at the start of `s`, if there are four.
pub fn hex4(s: &[u8]) -> Option<u32> {
    let digits = s.get(..4)?;
    digits.iter().try_fold(0u32, |acc, &b| {
        char::from(b).to_digit(16).map(|d| (acc << 4) | d)
    })
}

/// Decodes the escape at the start of `s` (which begins with a backslash): the character and
/// how many input bytes it used. Lenient: a malformed escape yields the backslash alone (one
/// byte used, the rest is then read as text); a lone or invalid surrogate yields U+FFFD.
pub fn decode_escape(s: &[u8]) -> (char, usize) {
    let simple = match s.get(1) {
        Some(b'"') => Some('"'),
        Some(b'\\') => Some('\\'),
        Some(b'/') => Some('/'),
        Some(b'b') => Some('\u{8}'),
        Some(b'f') => Some('\u{c}'),
        Some(b'n') => Some('\n'),
        Some(b'r') => Some('\r'),
        Some(b't') => Some('\t'),
        _ => None,
    };
    if let Some(c) = simple {
        return (c, 2);
    }
    if s.get(1) != Some(&b'u') {
        return ('\\', 1);
    }
    let Some(hi) = s.get(2..).and_then(hex4) else {
        return ('\\', 1);
    };
    if (0xD800..0xDC00).contains(&hi) {
        if s.get(6..8) == Some(b"\\u") {
            if let Some(lo) = s.get(8..).and_then(hex4) {
                if (0xDC00..0xE000).contains(&lo) {
                    let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                    return (char::from_u32(cp).unwrap_or('\u{FFFD}'), 12);
                }
            }
        }
        return ('\u{FFFD}', 6);
    }
    (char::from_u32(hi).unwrap_or('\u{FFFD}'), 6)
}

/// Decodes a JSON string body leniently (see [`decode_escape`]). Never fails.
pub fn unescape_lenient(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = memchr::memchr(b'\\', rest.as_bytes()) {
        out.push_str(&rest[..i]);
        let (c, used) = decode_escape(&rest.as_bytes()[i..]);
        out.push(c);
        // `used` ends on a char boundary: escapes are ASCII, a lone backslash is one byte.
        rest = rest.get(i + used..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

/// Decodes a string body that a byte cap may have cut inside an escape: the cut escape is
/// backed off; text that is not a valid body is returned as is.
pub fn unescape_capped(escaped: &str) -> String {
    for back in 0..6 {
        let end = floor_char_boundary(escaped, escaped.len().saturating_sub(back));
        if let Ok(s) = serde_json::from_str::<String>(&format!("\"{}\"", &escaped[..end])) {
            return s;
        }
    }
    escaped.to_string()
}

/// A JSON string literal's value (strict): borrowed when it has no escapes; `None` when `raw`
/// is not a string literal.
pub fn unquote(raw: &str) -> Option<Cow<'_, str>> {
    let body = raw.strip_prefix('"')?.strip_suffix('"')?;
    if memchr::memchr(b'\\', body.as_bytes()).is_none() {
        Some(Cow::Borrowed(body))
    } else {
        serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
    }
}

/// The largest index `<= max` on a char boundary of `s`.
pub fn floor_char_boundary(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    &s[..floor_char_boundary(s, max)]
}

/// An object key, borrowed from the input unless it had escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key<'de>(pub Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLES: [&str; 7] = [
        "plain",
        "q\"b\\s",
        "nl\nr\rt\t",
        "\u{1}\u{1f}\u{7f}",
        "ünïcødé ✓ 😀",
        "",
        "/ slash",
    ];

    #[test]
    fn escapes_round_trip_through_serde() {
        for s in SAMPLES {
            let mut out = BytesMut::new();
            put_str(&mut out, s);
            let back: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, s);
            assert_eq!(quoted(s).as_bytes(), &out[..]);
            assert_eq!(format!("\"{}\"", escaped(s)), quoted(s));
            // The same text serde writes (serde escapes the same set, lowercase hex).
            assert_eq!(quoted(s), serde_json::to_string(s).unwrap());
        }
    }

    #[test]
    fn lenient_unescape_matches_serde_on_valid_bodies() {
        for s in SAMPLES {
            assert_eq!(unescape_lenient(&escaped(s)), s);
        }
        assert_eq!(unescape_lenient(r"\ud83d\ude00 \u00e9"), "😀 é");
    }

    #[test]
    fn lenient_unescape_keeps_malformed_escapes_as_text() {
        assert_eq!(unescape_lenient(r"a\qb"), r"a\qb");
        assert_eq!(unescape_lenient(r"a\u12"), r"a\u12");
        assert_eq!(unescape_lenient(r"end\"), r"end\");
        assert_eq!(unescape_lenient(r"\ud83d alone"), "\u{FFFD} alone");
        assert_eq!(unescape_lenient(r"\ude00"), "\u{FFFD}");
        assert_eq!(unescape_lenient(r"\ud83d\u0041"), "\u{FFFD}A");
    }

    #[test]
    fn decode_escape_reports_what_it_used() {
        assert_eq!(decode_escape(br"\n"), ('\n', 2));
        assert_eq!(decode_escape(br"\u00e9x"), ('é', 6));
        assert_eq!(decode_escape(br"\ud83d\ude00"), ('😀', 12));
        assert_eq!(decode_escape(br"\x"), ('\\', 1));
        assert_eq!(decode_escape(br"\"), ('\\', 1));
    }

    #[test]
    fn capped_unescape_backs_off_cut_escapes() {
        assert_eq!(unescape_capped("a\\nb"), "a\nb");
        assert_eq!(unescape_capped("a\\u00e9"), "aé");
        assert_eq!(unescape_capped("a\\u00"), "a");
        assert_eq!(unescape_capped("x\\"), "x");
    }

    #[test]
    fn unquote_borrows_plain_strings() {
        assert!(matches!(unquote("\"abc\""), Some(Cow::Borrowed("abc"))));
        assert_eq!(unquote(r#""a\nb""#).as_deref(), Some("a\nb"));
        assert_eq!(unquote("12"), None);
        assert_eq!(unquote("\""), None);
    }

    #[test]
    fn truncation_stays_on_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
        assert_eq!(floor_char_boundary("ééé", 5), 4);
    }

    #[test]
    fn keys_borrow_unless_escaped() {
        let k: Key = serde_json::from_str("\"plain\"").unwrap();
        assert!(matches!(k.0, Cow::Borrowed("plain")));
        let k: Key = serde_json::from_str(r#""a\u0062""#).unwrap();
        assert_eq!(k.0, "ab");
    }
}
