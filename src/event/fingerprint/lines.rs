//! The escaped stack as lines: the stack is read as the client sent it inside the JSON
//! string, split at `\n` escapes (and `\r\n`, `\u000a`, raw newlines) without unescaping it
//! first; a line that contains escapes is unescaped into a stack buffer only when it is read.

use crate::json;
use memchr::{memchr, memchr2};

/// Stack lines containing escapes (other than leading `\t`) are unescaped into a stack buffer
/// of this size; longer lines are truncated (deterministically). Real frame lines are far shorter.
pub(super) const LINE_BUF: usize = 512;

/// Stack offsets are stored as `u32`; a stack is only read up to this length (the protocol's
/// line limit is far below).
const MAX_STACK_BYTES: usize = u32::MAX as usize;

/// A line of the escaped stack: leading whitespace (including `\t` escapes) and the separator
/// excluded. `escaped` says whether it still contains an escape (then it must be unescaped
/// before parsing); `indented` whether leading whitespace was skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct LineRef {
    start: u32,
    end: u32,
    escaped: bool,
    pub(super) indented: bool,
}

/// Splits the body of a JSON string at `\n` escapes (and `\u000a`, and raw newlines), treating
/// `\r\n` as one separator. Escapes are walked in order, so `\\n` (an escaped backslash, then
/// `n`) does not split.
pub(super) struct Lines<'a> {
    s: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Lines<'a> {
    /// Offsets are kept as `u32`; only the first [`MAX_STACK_BYTES`] are looked at.
    pub(super) fn new(s: &'a [u8]) -> Self {
        Lines {
            s: &s[..s.len().min(MAX_STACK_BYTES)],
            pos: 0,
        }
    }
}

impl Iterator for Lines<'_> {
    type Item = LineRef;

    #[inline]
    fn next(&mut self) -> Option<LineRef> {
        let s = self.s;
        if self.pos >= s.len() {
            return None;
        }
        let mut start = self.pos;
        loop {
            start += s[start..].iter().take_while(|&&c| c == b' ').count();
            match s.get(start..start + 2) {
                Some([b'\t', _]) => start += 1,
                Some(b"\\t") => start += 2,
                _ => break,
            }
        }
        let indented = start > self.pos;
        let mut escaped = false;
        let mut j = start;
        loop {
            let Some(off) = s.get(j..).and_then(|rest| memchr2(b'\\', b'\n', rest)) else {
                self.pos = s.len();
                return Some(LineRef {
                    start: start as u32,
                    end: s.len() as u32,
                    escaped,
                    indented,
                });
            };
            let k = j + off;
            // (separator length, or 0 and the escape's length)
            let (sep_len, esc_len) = if s[k] == b'\n' {
                (1, 0)
            } else {
                match s.get(k + 1) {
                    Some(b'n') => (2, 0),
                    Some(b'r') if s.get(k + 2..k + 4) == Some(b"\\n") => (4, 0),
                    Some(b'u') => match s.get(k + 2..).and_then(json::hex4) {
                        Some(0x0a) => (6, 0),
                        Some(_) => (0, 6),
                        None => (0, 2),
                    },
                    Some(_) => (0, 2),
                    None => (0, 1),
                }
            };
            if sep_len > 0 {
                self.pos = k + sep_len;
                return Some(LineRef {
                    start: start as u32,
                    end: k as u32,
                    escaped,
                    indented,
                });
            }
            escaped = true;
            j = k + esc_len;
        }
    }
}

/// The text of a line: borrowed when it has no escapes, else unescaped into `buf`.
pub(super) fn view<'s>(stack: &'s [u8], line: LineRef, buf: &'s mut [u8; LINE_BUF]) -> &'s [u8] {
    let raw = stack
        .get(line.start as usize..line.end as usize)
        .unwrap_or_default();
    if line.escaped {
        unescape(raw, buf)
    } else {
        raw
    }
}

/// JSON-unescapes `src` into `buf` (truncating at its size). Malformed escapes are copied
/// literally; lone surrogates become U+FFFD.
fn unescape<'b>(src: &[u8], buf: &'b mut [u8; LINE_BUF]) -> &'b [u8] {
    let mut n = 0;
    let mut i = 0;
    while i < src.len() && n < LINE_BUF {
        let rest = &src[i..];
        let run = memchr(b'\\', rest).unwrap_or(rest.len());
        let take = run.min(LINE_BUF - n);
        buf[n..n + take].copy_from_slice(&rest[..take]);
        n += take;
        i += run;
        if i >= src.len() || n >= LINE_BUF {
            break;
        }
        let (ch, used) = json::decode_escape(&src[i..]);
        let mut tmp = [0u8; 4];
        let enc = ch.encode_utf8(&mut tmp).as_bytes();
        let take = enc.len().min(LINE_BUF - n);
        buf[n..n + take].copy_from_slice(&enc[..take]);
        n += take;
        i += used;
    }
    &buf[..n]
}

/// Substring search for short haystacks (frame lines), anchored on the needle's first byte;
/// `memmem::find` would build a searcher per call for haystacks of 64 bytes or more.
pub(super) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut i = 0;
    while let Some(off) = memchr(first, hay.get(i..)?) {
        let k = i + off;
        if hay.get(k + 1..)?.starts_with(rest) {
            return Some(k);
        }
        i = k + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::fingerprint::compute;
    use crate::event::fingerprint::tests::{chosen, esc, js_stack, names};

    #[test]
    fn escaped_stack_variants_group_together() {
        let raw = js_stack("/srv/app", 10, "getUser");
        let lf = esc(&raw);
        let crlf = esc(&raw.replace('\n', "\r\n"));
        let unicode_nl = lf.replace("\\n", "\\u000a");
        let raw_newlines = raw.clone(); // not escaped at all: raw newlines also split
        let slash = lf.replace('/', "\\/");
        let base = compute(Some("E"), "m", Some(&lf));
        for (what, s) in [
            ("crlf", &crlf),
            ("\\u000a", &unicode_nl),
            ("raw", &raw_newlines),
            ("\\/", &slash),
        ] {
            assert_eq!(compute(Some("E"), "m", Some(s)), base, "{what}");
        }
    }

    #[test]
    fn unicode_escapes_decode_to_the_raw_text() {
        let raw = "Error: x\n    at caf\u{e9}.\u{1F600} (/app/\u{fc}ber.js:1:1)";
        let escaped = "Error: x\\n    at caf\\u00e9.\\ud83d\\ude00 (/app/\\u00FCber.js:1:1)";
        assert_eq!(
            compute(None, "m", Some(escaped)),
            compute(None, "m", Some(&esc(raw)))
        );
        assert_eq!(names(&chosen(escaped)), vec![("café.\u{1F600}", "über.js")]);
    }

    #[test]
    fn escaped_backslash_before_n_is_not_a_newline() {
        // Windows path `C:\new\app.js` arrives as `C:\\new\\app.js`.
        let s = "Error: x\\n    at f (C:\\\\new\\\\app.js:1:1)";
        assert_eq!(names(&chosen(s)), vec![("f", "app.js")]);
        let lines: Vec<_> = Lines::new(s.as_bytes()).collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[1].escaped);
        assert!(!lines[0].escaped);
    }

    #[test]
    fn unescape_handles_every_json_escape() {
        let mut buf = [0u8; LINE_BUF];
        let got = unescape(
            br#"a\"b\\c\/d\be\ff\ng\rh\ti\u0041\u00e9\ud83d\ude00"#,
            &mut buf,
        );
        assert_eq!(
            got,
            "a\"b\\c/d\u{8}e\u{c}f\ng\rh\ti\u{41}\u{e9}\u{1F600}".as_bytes()
        );
        // Malformed escapes are literal; lone surrogates become U+FFFD.
        let got = unescape(br"\x \u12 \ud800 \udc00x \", &mut buf);
        assert_eq!(got, "\\x \\u12 \u{FFFD} \u{FFFD}x \\".as_bytes());
    }

    #[test]
    fn long_escaped_lines_are_truncated_not_panicking() {
        let long = format!(
            "    at f (/app/{}x.js:1:1)\\t",
            "\\\\d".repeat(2 * LINE_BUF)
        );
        let s = format!("Error: x\\n{long}\\n{long}");
        let _ = compute(None, "m", Some(&s));
        let mut buf = [0u8; LINE_BUF];
        assert_eq!(unescape(long.as_bytes(), &mut buf).len(), LINE_BUF);
    }
}
