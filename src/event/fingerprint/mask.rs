//! Message masking: the volatile parts of a message (quoted values, UUIDs, hex ids, digit
//! runs) are replaced by placeholders before it is hashed, so that one message template
//! groups as one error. The rules are listed in the [parent module](super) documentation.

use memchr::memchr;

use super::sink::Sink;

/// Only this many leading bytes of the message are hashed: enough for any real message
/// template, and it bounds the work spent on a pathological multi-kilobyte message.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// Shortest word (run of ASCII letters and digits) treated as a hex identifier when it is all
/// hex digits and contains at least one decimal digit (commit ids, object ids, hashes). Eight
/// keeps short numbers-with-letters (`v2beta`, `e5`) and ordinary words out.
pub const MIN_HEX_RUN: usize = 8;

/// Placeholders written in place of masked message parts.
const MASK_DIGITS: &[u8] = b"0";
const MASK_HEX: &[u8] = b"<hex>";
const MASK_UUID: &[u8] = b"<uuid>";
const MASK_QUOTED: u8 = b'?';

/// Byte classes for the message scan.
const ALNUM: u8 = 1;
const DIGIT: u8 = 2;
/// A byte that may start a masked part: a digit or a quote.
const TRIGGER: u8 = 4;
static CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        let mut v = 0;
        if c.is_ascii_alphanumeric() {
            v |= ALNUM;
        }
        if c.is_ascii_digit() {
            v |= DIGIT | TRIGGER;
        }
        if c == b'\'' || c == b'"' || c == b'`' {
            v |= TRIGGER;
        }
        table[i] = v;
        i += 1;
    }
    table
};

#[inline]
fn class(b: u8) -> u8 {
    CLASS[b as usize]
}

#[inline]
fn is_alnum(b: u8) -> bool {
    class(b) & ALNUM != 0
}

pub(super) fn mask_message(msg: &[u8], out: &mut Sink) {
    let msg = &msg[..msg.len().min(MAX_MESSAGE_BYTES)];
    let n = msg.len();
    // `lit` is the start of the literal text not yet written; `i` the scan position. The scan
    // only stops on digits and quotes and always consumes whole words, so `lit <= i` and no
    // word is ever split between two steps.
    let mut lit = 0;
    let mut i = 0;
    // Once a search for a closing quote of some kind failed, later ones would fail too.
    let mut unclosed = [false; 3];
    loop {
        i = next_trigger(msg, i);
        let Some(&b) = msg.get(i) else { break };
        if let Some(q) = quote_kind(b) {
            let after_word = i > 0 && is_alnum(msg[i - 1]);
            if !after_word && !unclosed[q] {
                match closing_quote(msg, i + 1, b) {
                    Some(end) => {
                        out.write(&msg[lit..i]);
                        out.write(&[b, MASK_QUOTED, b]);
                        i = end + 1;
                        lit = i;
                        continue;
                    }
                    None => unclosed[q] = true,
                }
            }
            i += 1;
            continue;
        }
        // A digit: look at the whole word around it.
        let mut start = i;
        while start > lit && is_alnum(msg[start - 1]) {
            start -= 1;
        }
        let mut end = i + 1;
        while end < n && is_alnum(msg[end]) {
            end += 1;
        }
        if let Some(u) = uuid_around(msg, lit, start, end) {
            out.write(&msg[lit..u]);
            out.write(MASK_UUID);
            i = u + 36;
            lit = i;
            continue;
        }
        if is_hex_word(&msg[start..end]) {
            out.write(&msg[lit..start]);
            out.write(MASK_HEX);
            lit = end;
        } else {
            // Letters before `i` in this word are not digits (the scan stopped at the first).
            let mut j = i;
            while j < end {
                if class(msg[j]) & DIGIT != 0 {
                    out.write(&msg[lit..j]);
                    out.write(MASK_DIGITS);
                    while j < end && class(msg[j]) & DIGIT != 0 {
                        j += 1;
                    }
                    lit = j;
                } else {
                    j += 1;
                }
            }
        }
        i = end;
    }
    out.write(&msg[lit..]);
}

/// Position of the first digit or quote at or after `i` (or `msg.len()`), eight bytes at a time.
fn next_trigger(msg: &[u8], mut i: usize) -> usize {
    while let Some(bytes) = msg.get(i..i + 8).and_then(|c| <[u8; 8]>::try_from(c).ok()) {
        let hits = trigger_bytes(u64::from_le_bytes(bytes));
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < msg.len() && class(msg[i]) & TRIGGER == 0 {
        i += 1;
    }
    i
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// High bit set in exactly the bytes of `x` that are zero (no carries between bytes).
#[inline]
fn zero_bytes(x: u64) -> u64 {
    !(((x & LOW7) + LOW7) | x | LOW7)
}

/// High bit set in exactly the bytes of `x` that are ASCII digits or quotes.
#[inline]
fn trigger_bytes(x: u64) -> u64 {
    // Digits become 0x00..=0x09: high nibble zero and low nibble below ten.
    let y = x ^ (0x30 * ONES);
    let high_nonzero = ((y >> 4) & (0x0f * ONES)) + (0x7f * ONES);
    let low_ge_ten = (((y & (0x0f * ONES)) + (0x06 * ONES)) << 3) & HIGHS;
    let digits = !(high_nonzero | low_ge_ten) & HIGHS;
    digits
        | zero_bytes(x ^ (u64::from(b'\'') * ONES))
        | zero_bytes(x ^ (u64::from(b'"') * ONES))
        | zero_bytes(x ^ (u64::from(b'`') * ONES))
}

/// Index of a quote character (`'`, `"`, `` ` ``) for per-kind state; shared with `classify`.
pub(crate) fn quote_kind(b: u8) -> Option<usize> {
    match b {
        b'\'' => Some(0),
        b'"' => Some(1),
        b'`' => Some(2),
        _ => None,
    }
}

/// The first `q` at or after `from` that is not followed by a letter or digit.
pub(crate) fn closing_quote(msg: &[u8], from: usize, q: u8) -> Option<usize> {
    let mut j = from;
    while let Some(off) = memchr(q, msg.get(j..)?) {
        let k = j + off;
        if !msg.get(k + 1).is_some_and(|&c| is_alnum(c)) {
            return Some(k);
        }
        j = k + 1;
    }
    None
}

/// Start of a UUID (`8-4-4-4-12` hex digits, not glued to other letters/digits) containing the
/// word `msg[start..end]`, not starting before `floor`.
fn uuid_around(msg: &[u8], floor: usize, start: usize, end: usize) -> Option<usize> {
    // Offset of the word inside the UUID, by the word's length.
    let offsets: &[usize] = match end - start {
        8 => &[0],
        4 => &[9, 14, 19],
        12 => &[24],
        _ => return None,
    };
    offsets.iter().find_map(|&off| {
        let u = start.checked_sub(off)?;
        let ok = u >= floor
            && (u == 0 || !is_alnum(msg[u - 1]))
            && msg.get(u..u + 36).is_some_and(is_uuid)
            && !msg.get(u + 36).is_some_and(|&c| is_alnum(c));
        ok.then_some(u)
    })
}

fn is_uuid(u: &[u8]) -> bool {
    u.len() == 36
        && u.iter().enumerate().all(|(k, &c)| match k {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// `0x…` hex literal, or at least [`MIN_HEX_RUN`] hex digits (callers only pass words that
/// contain a decimal digit).
fn is_hex_word(word: &[u8]) -> bool {
    if let Some(digits) = word
        .strip_prefix(b"0x")
        .or_else(|| word.strip_prefix(b"0X"))
    {
        if !digits.is_empty() && digits.iter().all(u8::is_ascii_hexdigit) {
            return true;
        }
    }
    word.len() >= MIN_HEX_RUN && word.iter().all(u8::is_ascii_hexdigit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::fingerprint::tests::msg_fp;

    #[test]
    fn volatile_message_parts_group_together() {
        let same = [
            ("User 123 not found", "User 98765 not found"),
            ("timeout after 3000ms", "timeout after 5000ms"),
            (
                "ENOENT: no such file or directory, open '/tmp/a1.txt'",
                "ENOENT: no such file or directory, open '/tmp/b22.txt'",
            ),
            (
                "Cannot read properties of undefined (reading 'id')",
                "Cannot read properties of undefined (reading 'name')",
            ),
            (
                "order 550e8400-e29b-41d4-a716-446655440000 failed",
                "order 6BA7B810-9DAD-11D1-80B4-00C04FD430C8 failed",
            ),
            ("commit 3fa9c2b1d4e5 missing", "commit 0123abcd4567 missing"),
            (
                "object 65f1c2e3a4b5c6d7e8f90a1b gone",
                "object 65f1c2e3a4b5c6d7e8f90a1c gone",
            ),
            ("trace a1b2c3d4", "trace 9f8e7d6c"),
            ("bad pointer 0x7ffe3a2c10", "bad pointer 0xdeadbeef"),
            (
                "connect ECONNREFUSED 10.0.0.7:5432",
                "connect ECONNREFUSED 127.0.0.1:6379",
            ),
            (
                "at /srv/app/x.js:10:5 failed",
                "at /srv/app/x.js:212:15 failed",
            ),
            (r#"key "user:17" expired"#, r#"key "session:abc" expired"#),
            ("field `email` required", "field `phone_number` required"),
            ("can't parse 'x1'", "can't parse 'y'"),
            ("v1.2.3 rejected", "v10.20.30 rejected"),
        ];
        for (a, b) in same {
            assert_eq!(msg_fp(a), msg_fp(b), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn different_messages_differ() {
        let differ = [
            ("User 1 not found", "Order 1 not found"),
            ("timeout after 3000ms", "timeout after 3000s"),
            ("can't connect", "cant connect"),
            (
                "Cannot read properties of undefined",
                "Cannot read properties of null",
            ),
            ("abc", "abd"),
            ("", " "),
            ("User not found", "user not found"),
            // Apostrophes are not quotes: the text after them stays significant.
            ("can't open foo", "can't open bar"),
            // Words without a decimal digit are words, even when they are valid hex.
            ("facade broken", "decade broken"),
            ("magic deadbeef", "magic cafebabe"),
            // Too short for a hex id: only the digits are masked.
            ("code e1f2", "code a1b2"),
        ];
        for (a, b) in differ {
            assert_ne!(msg_fp(a), msg_fp(b), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn only_the_message_prefix_is_hashed() {
        let long_a = format!("{}A", "x".repeat(MAX_MESSAGE_BYTES));
        let long_b = format!("{}B", "x".repeat(MAX_MESSAGE_BYTES));
        assert_eq!(msg_fp(&long_a), msg_fp(&long_b));
        let short_a = format!("{}A", "x".repeat(MAX_MESSAGE_BYTES - 2));
        let short_b = format!("{}B", "x".repeat(MAX_MESSAGE_BYTES - 2));
        assert_ne!(msg_fp(&short_a), msg_fp(&short_b));
    }

    #[test]
    fn swar_trigger_scan_matches_the_byte_table() {
        for b in 0..=255u8 {
            let trigger = b.is_ascii_digit() || matches!(b, b'\'' | b'"' | b'`');
            assert_eq!(class(b) & TRIGGER != 0, trigger);
            for pos in 0..8 {
                for fill in [b'a', b'5', b'\'', 0, 0xff] {
                    let mut bytes = [fill; 8];
                    bytes[pos] = b;
                    let hits = trigger_bytes(u64::from_le_bytes(bytes));
                    let expect = bytes.iter().enumerate().fold(0u64, |m, (k, &c)| {
                        m | if class(c) & TRIGGER != 0 {
                            0x80 << (8 * k)
                        } else {
                            0
                        }
                    });
                    assert_eq!(hits, expect, "byte {b:#x} at {pos} in {fill:#x}");
                }
            }
        }
        let msg = b"abcdefghijklmnopqrstuvwxyz 'q' 7";
        assert_eq!(next_trigger(msg, 0), 27);
        assert_eq!(next_trigger(msg, 28), 29);
        assert_eq!(next_trigger(msg, 30), 31);
        assert_eq!(next_trigger(msg, 32), 32);
    }
}
