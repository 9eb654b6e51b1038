//! Zero-width characters, which split a key word or token without showing: `pass\u{200B}word=x`
//! reads as `password=x` to a person and to nothing else. They are removed before the rules
//! run, and stay removed in the output: the marker must cover the secret exactly, which
//! position maps between two spellings of the text would make fragile, and an invisible
//! character in a log record only hides what it says from `grep`.
//!
//! Where they carry meaning they are kept: between two non-ASCII characters (U+200D joins emoji
//! sequences, U+200C and U+200D shape Persian and Indic words). A key word or token made of
//! ASCII cannot be split there.

use memchr::memchr2_iter;

/// U+200B ZERO WIDTH SPACE, U+200C ZERO WIDTH NON-JOINER, U+200D ZERO WIDTH JOINER, U+2060 WORD
/// JOINER, U+FEFF ZERO WIDTH NO-BREAK SPACE (the byte-order mark).
pub(super) fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}')
}

/// The same characters as a regex class body, for key matching.
pub(super) const INVISIBLE_CLASS: &str = r"\u{200B}-\u{200D}\u{2060}\u{FEFF}";

/// Byte offset of the first zero-width character in `bytes` (UTF-8), for the prefilter. Their
/// encodings start with `E2` or `EF`, rare bytes in most text.
pub(super) fn find(bytes: &[u8]) -> Option<usize> {
    memchr2_iter(0xE2, 0xEF, bytes).find(|&i| {
        matches!(
            bytes.get(i..i + 3),
            Some([0xE2, 0x80, 0x8B..=0x8D] | [0xE2, 0x81, 0xA0] | [0xEF, 0xBB, 0xBF])
        )
    })
}

/// `s` without its zero-width characters, except a run of them between two non-ASCII
/// characters; `None` when nothing is removed.
pub(super) fn strip(s: &str) -> Option<String> {
    let mut out: Option<String> = None;
    let mut copied = 0; // bytes of `s` already accounted for in `out`
    let mut chars = s.char_indices().peekable();
    let mut prev: Option<char> = None;
    while let Some((i, c)) = chars.next() {
        if !is_invisible(c) {
            prev = Some(c);
            continue;
        }
        // The whole run of zero-width characters, and what follows it.
        let mut end = i + c.len_utf8();
        while let Some(&(j, d)) = chars.peek() {
            if !is_invisible(d) {
                break;
            }
            end = j + d.len_utf8();
            chars.next();
        }
        let next = chars.peek().map(|&(_, d)| d);
        let meaningful =
            matches!((prev, next), (Some(p), Some(n)) if !p.is_ascii() && !n.is_ascii());
        if !meaningful {
            let o = out.get_or_insert_with(|| String::with_capacity(s.len()));
            o.push_str(s.get(copied..i).unwrap_or_default());
            copied = end;
        }
    }
    let mut o = out?;
    o.push_str(s.get(copied..).unwrap_or_default());
    Some(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::sanitize::tests::{san, text};

    #[test]
    fn stripped_next_to_ascii_kept_between_non_ascii() {
        assert_eq!(strip("pass\u{200B}word").as_deref(), Some("password"));
        assert_eq!(
            strip("\u{FEFF}a\u{200C}\u{200D}b\u{2060}").as_deref(),
            Some("ab")
        );
        assert_eq!(strip("plain"), None);
        // Emoji ZWJ sequence, Persian ZWNJ: kept.
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
        assert_eq!(strip(family), None);
        assert_eq!(
            strip("\u{645}\u{6CC}\u{200C}\u{62E}\u{648}\u{627}\u{647}\u{645}"),
            None
        );
        // A run of them next to an ASCII character goes.
        assert_eq!(strip("é\u{200B}\u{200B}x").as_deref(), Some("éx"));
    }

    #[test]
    fn found_by_the_prefilter_scan() {
        for c in ['\u{200B}', '\u{200C}', '\u{200D}', '\u{2060}', '\u{FEFF}'] {
            let s = format!("ab “quoted” … {c}x");
            assert_eq!(find(s.as_bytes()), s.find(c), "{c:?}");
        }
        // Other characters encoded with E2 or EF: quotes, ellipsis, dash, ™, the ﬁ ligature.
        assert_eq!(find("“quoted” … — ™ ﬁ".as_bytes()), None);
    }

    #[test]
    fn split_keys_and_tokens_are_redacted() {
        let zw = ['\u{200B}', '\u{200C}', '\u{200D}', '\u{2060}', '\u{FEFF}'];
        for c in zw {
            assert_eq!(
                text(&format!("pass{c}word=hunter2")),
                "password=[REDACTED]",
                "{c:?}"
            );
            assert_eq!(
                text(&format!("api{c}_key: k1")),
                "api_key: [REDACTED]",
                "{c:?}"
            );
            assert_eq!(text(&format!("Bea{c}rer abc")), "Bearer [REDACTED]");
            assert_eq!(text(&format!("AKIA{c}IOSFODNN7EXAMPLE")), "[REDACTED]");
        }
        // In JSON keys too (the escape is decoded first).
        let s = san();
        assert_eq!(
            s.redact_json(r#"{"pass\u200bword":"x","api\u200b_key":1}"#)
                .as_deref(),
            Some(r#"{"password":"[REDACTED]","api_key":"[REDACTED]"}"#)
        );
        assert_eq!(
            s.redact_escaped("x pass\u{200B}word=y").as_deref(),
            Some("x password=[REDACTED]")
        );
        // Nothing else changes when there is nothing to strip.
        assert_eq!(s.redact_text("\u{1F468}\u{200D}\u{1F469} ok"), None);
    }
}
