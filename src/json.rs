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

/// Bytes that start something escaped inside a JSON string: `"`, `\` and control characters,
/// plus the lead bytes of U+2028, U+2029 (0xE2) and U+0085 (0xC2), which JSON allows raw but
/// line-oriented readers (Python's `splitlines`, JavaScript before ES2019) take as line ends: a
/// record must read back as exactly one line everywhere.
const fn escape_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[0xE2] = true;
    t[0xC2] = true;
    t
}
static ESCAPE: [bool; 256] = escape_table();

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The escape of a Unicode line or paragraph separator starting at `bytes[i]` (a lead byte
/// 0xE2 or 0xC2), with its length in bytes; `None` for any other character.
#[inline]
fn line_separator(bytes: &[u8], i: usize) -> Option<(&'static [u8], usize)> {
    match (bytes.get(i), bytes.get(i + 1), bytes.get(i + 2)) {
        (Some(0xE2), Some(0x80), Some(0xA8)) => Some((b"\\u2028", 3)),
        (Some(0xE2), Some(0x80), Some(0xA9)) => Some((b"\\u2029", 3)),
        (Some(0xC2), Some(0x85), _) => Some((b"\\u0085", 2)),
        _ => None,
    }
}

/// Calls `put` with the escaped body of `s`, piece by piece: runs that need no escaping as they
/// are, each escape as its own piece. Every piece is whole UTF-8 (runs are cut before an ASCII
/// byte or before a whole separator character).
#[inline]
fn escape_pieces(s: &str, mut put: impl FnMut(&[u8])) {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !ESCAPE[b as usize] {
            i += 1;
            continue;
        }
        if b >= 0x80 {
            if let Some((esc, len)) = line_separator(bytes, i) {
                put(&bytes[start..i]);
                put(esc);
                i += len;
                start = i;
            } else {
                i += 1;
            }
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
        i += 1;
        start = i;
    }
    put(&bytes[start..]);
}

/// Appends JSON text a client sent (a `context`, a stack's escaped body, a value kept under
/// `extra`) so that the record stays one line for every reader: a raw CR (JSON whitespace
/// between tokens; inside strings it cannot occur in valid JSON) becomes a space, and raw
/// U+2028, U+2029 and U+0085 (only possible inside strings) their `\u` escapes. Valid JSON in,
/// the same JSON value out.
pub fn put_raw(out: &mut BytesMut, raw: &str) {
    let bytes = raw.as_bytes();
    if memchr::memchr3(b'\r', 0xE2, 0xC2, bytes).is_none() {
        out.extend_from_slice(bytes);
        return;
    }
    out.reserve(bytes.len() + 8);
    let mut start = 0;
    let mut i = 0;
    while let Some(off) = memchr::memchr3(b'\r', 0xE2, 0xC2, &bytes[i..]) {
        let at = i + off;
        if bytes[at] == b'\r' {
            out.extend_from_slice(&bytes[start..at]);
            out.put_u8(b' ');
            i = at + 1;
            start = i;
        } else if let Some((esc, len)) = line_separator(bytes, at) {
            out.extend_from_slice(&bytes[start..at]);
            out.extend_from_slice(esc);
            i = at + len;
            start = i;
        } else {
            i = at + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
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

    /// No byte sequence a line reader takes as a line end: LF, CR, U+2028, U+2029, U+0085.
    fn one_line(b: &[u8]) -> bool {
        let text = std::str::from_utf8(b).unwrap();
        !text.contains(['\n', '\r', '\u{2028}', '\u{2029}', '\u{85}'])
    }

    #[test]
    fn line_separators_are_escaped_and_other_non_ascii_is_not() {
        let s = "a\u{2028}b\u{2029}c\u{85}d \u{2027}\u{202a}\u{84}\u{a0}é“x”";
        let mut out = BytesMut::new();
        put_str(&mut out, s);
        assert!(one_line(&out));
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "\"a\\u2028b\\u2029c\\u0085d \u{2027}\u{202a}\u{84}\u{a0}é“x”\""
        );
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, s);
        assert_eq!(quoted(s).as_bytes(), &out[..]);
        // at the very end of the text, and cut short (not a separator): kept as is
        assert_eq!(quoted("x\u{2028}"), "\"x\\u2028\"");
        assert_eq!(quoted("\u{85}"), "\"\\u0085\"");
    }

    #[test]
    fn raw_json_keeps_its_value_and_becomes_one_line() {
        let raw = "{\"a\":\"x\u{2028}y\u{2029}z\u{85}\",\r\n\"b\":[1,\r2],\"é\":\"“ok”\"}";
        let mut out = BytesMut::new();
        put_raw(&mut out, raw);
        let text = std::str::from_utf8(&out).unwrap();
        assert!(
            !text.contains(['\r', '\u{2028}', '\u{2029}', '\u{85}']),
            "{text:?}"
        );
        let before: serde_json::Value = serde_json::from_str(raw).unwrap();
        let after: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(before, after);
        // nothing to change: copied as is
        let mut out = BytesMut::new();
        put_raw(&mut out, "{\"é\":\"✓\"}");
        assert_eq!(&out[..], "{\"é\":\"✓\"}".as_bytes());
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
