//! Text a client wrote, made inert before a person sees it: one rule for every human-readable
//! output (`qerrorsctl`, `/metrics` labels; the dashboard applies the same rule in its script).
//!
//! Made visible as escapes: C0 controls (`\n`, `\r`, `\t` and `\x1b`-style for the rest), DEL,
//! C1 controls (U+0080–U+009F, including NEL U+0085 and the 8-bit CSI U+009B), the line and
//! paragraph separators U+2028/U+2029, bidirectional formatting (U+061C, U+200E/F,
//! U+202A–U+202E, U+2066–U+2069) and invisible joiners (U+200B–U+200D, U+2060, U+FEFF). So no
//! escape sequence reaches a terminal, no text is reordered or hidden, and a value is one line.

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` is shown as an escape rather than as itself.
pub fn is_unsafe(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        | '\u{61c}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
        | '\u{2060}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// `s` with every [`is_unsafe`] character written as an escape (`\n`, `\x1b`, `\u202e`);
/// borrowed when there is none.
pub fn visible(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !is_unsafe(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

/// JSON text (one document or line) with every [`is_unsafe`] character that is still raw
/// written as a `\uXXXX` escape: the same JSON value, inert on a terminal. Such characters can
/// only be inside strings in valid JSON (or be whitespace, which `\r`, `\n`, `\t` outside
/// strings are: those are left alone, as they are not raw inside strings).
pub fn json_visible(json: &str) -> Cow<'_, str> {
    let raw_unsafe = |c: char| is_unsafe(c) && !matches!(c, '\n' | '\r' | '\t');
    if !json.chars().any(raw_unsafe) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        if raw_unsafe(c) {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `s` without control characters (C0 except `\n` and `\t`, DEL, C1) and bidirectional or
/// invisible formatting: for text the daemon keeps and shows later, such as LLM advice.
pub fn strip_controls(s: &str) -> Cow<'_, str> {
    let drop = |c: char| is_unsafe(c) && !matches!(c, '\n' | '\t');
    if !s.chars().any(drop) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.chars().filter(|&c| !drop(c)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `cat -v` would flag, and what reorders or hides text.
    pub fn inert(s: &str) -> bool {
        !s.chars().any(|c| is_unsafe(c) && c != '\n')
    }

    const HOSTILE: &str = "title\u{1b}]0;pwned\u{7}link\u{1b}]8;;http://x\u{1b}\\ok\u{1b}[8mhidden\u{1b}[0m\
        \u{9b}31m\u{85}nel\u{2028}ls\u{2029}ps\u{202e}txt.exe\u{2066}iso\u{200b}zw\u{feff}\r\nfake record\u{7f}";

    #[test]
    fn every_unsafe_character_becomes_a_visible_escape() {
        let v = visible(HOSTILE);
        assert!(inert(&v) && !v.contains('\n'), "{v:?}");
        assert!(v.contains("\\x1b]0;pwned\\x07"), "{v}");
        assert!(
            v.contains("\\x9b31m\\x85nel\\u2028ls\\u2029ps\\u202etxt.exe"),
            "{v}"
        );
        assert!(v.contains("\\r\\nfake record\\x7f"), "{v}");
        // ordinary text, accents, emoji and CJK are left alone, borrowed
        for ok in ["plain", "ünïcødé ✓ 😀 漢字", "tab-free", ""] {
            assert!(matches!(visible(ok), Cow::Borrowed(_)), "{ok}");
        }
    }

    #[test]
    fn json_visible_keeps_the_value_and_is_inert() {
        let json = serde_json::to_string(&serde_json::json!({"m": HOSTILE})).unwrap();
        let v = json_visible(&json);
        assert!(inert(&v), "{v:?}");
        let back: serde_json::Value = serde_json::from_str(&v).unwrap();
        assert_eq!(back["m"], HOSTILE);
        // pretty JSON's own newlines stay
        let pretty = serde_json::to_string_pretty(&serde_json::json!({"a": 1})).unwrap();
        assert_eq!(json_visible(&pretty), pretty);
    }

    #[test]
    fn strip_controls_keeps_lines_and_drops_the_rest() {
        let s = strip_controls("fix:\n\t1. run\u{1b}[31m it\u{202e}\u{200b}\u{85}");
        assert_eq!(s, "fix:\n\t1. run[31m it");
    }
}
