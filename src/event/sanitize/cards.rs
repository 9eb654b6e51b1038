//! Payment card numbers (PANs): 13 to 19 digits, contiguous or in groups, that pass the Luhn
//! check. They have no literal to trigger on, so the prefilter gets a cheap scan of its own
//! ([`candidate`]) and the slow path the exact rule ([`spans`]).
//!
//! The exact rule, chosen so that order numbers, timestamps, phone numbers and ids are left
//! alone as far as a digit string allows:
//! * contiguous: 13–19 digits; or in groups separated by single spaces or single dashes (one
//!   kind per number): a first group of exactly 4 digits, inner groups of 3–6, a last group of
//!   1–6, 13–19 digits in all (`4111 1111 1111 1111`, `3782-822463-10005`, `4222 2222 2222 2`);
//! * it starts like an issued card: `3`, `4`, `5` or `6` (Amex, Diners, JCB, Visa, Mastercard,
//!   Maestro, Discover, UnionPay), or `2221`–`2720` (Mastercard's 2-series). This keeps out
//!   millisecond and nanosecond epoch timestamps (`17…`), compact dates (`2026…`) and most
//!   snowflake ids (`1…`);
//! * the Luhn checksum holds (9 in 10 random digit strings fail it);
//! * not glued to a word (`a4111…`, `4111…x`), not a decimal fraction or a number with a
//!   fraction (`0.4111…`, `4111….5`), not a phone number (`+4111…`).
//!
//! A longer digit run is searched for such numbers at group boundaries, so
//! `4111 1111 1111 1111 0426` (a card and its expiry) loses the card, not the expiry; a
//! contiguous run of 20 or more digits is not a card.
//!
//! What remains: a 13–19-digit id or order number that happens to start with 3–6 and pass
//! Luhn (1 in 10 of those that get this far) is redacted. docs/sanitizing.md says so.

use std::ops::{Range, RangeInclusive};

/// Digits in the shortest card number (old 13-digit Visa) and in the longest (19, Visa,
/// Maestro, UnionPay).
const DIGITS: RangeInclusive<usize> = 13..=19;
/// The fewest digits a run must hold to be worth a look: the prefilter's stride.
const MIN_DIGITS: usize = 13;
/// Digits in the first group of a grouped number (every scheme's printed format starts so).
const FIRST_GROUP: usize = 4;
/// Digits in an inner group (4-4-4-4, 4-6-5 Amex, 4-6-4 Diners, 4-3-3-3).
const INNER_GROUP: RangeInclusive<usize> = 3..=6;
/// Digits in the last group (4-4-4-1 is a 13-digit Visa, 4-4-4-4-3 a 19-digit one).
const LAST_GROUP: RangeInclusive<usize> = 1..=6;

fn is_sep(b: u8) -> bool {
    b == b' ' || b == b'-'
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether the byte at `i` belongs to a digit run: a digit, or a single separator between two
/// digits. A run always starts and ends with a digit.
fn in_run(bytes: &[u8], i: usize) -> bool {
    let digit = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_digit);
    match bytes.get(i) {
        Some(b) if b.is_ascii_digit() => true,
        Some(&b) if is_sep(b) => i > 0 && digit(i - 1) && digit(i + 1),
        _ => false,
    }
}

/// The prefilter's look: the start of a digit run that may hold a card number (at least 13
/// digits from the start of a group that begins with `2`–`6`), or `None`. Sound for [`spans`]:
/// every number it redacts lies in such a run.
///
/// A run with 13 digits is at least 13 bytes long, so looking at every 13th byte finds it;
/// only a byte that is part of a run costs a walk over that run (usually a line or column
/// number, a few bytes). On an 875-byte stack trace that is about 70 byte checks instead of
/// 875, see the module's cost note in docs/sanitizing.md.
pub(super) fn candidate(bytes: &[u8]) -> Option<usize> {
    let digit = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_digit);
    let mut i = MIN_DIGITS - 1;
    while i < bytes.len() {
        // A run of 13 or more bytes around `i` reaches `i - 6` or `i + 6`, and of two
        // neighbouring bytes of a run one is a digit: most short numbers (`:41:23`) stop here.
        if !in_run(bytes, i) || !(digit(i - 6) || digit(i - 5) || digit(i + 5) || digit(i + 6)) {
            i += MIN_DIGITS;
            continue;
        }
        let mut start = i;
        while start > 0 && in_run(bytes, start - 1) {
            start -= 1;
        }
        let mut end = i + 1;
        while in_run(bytes, end) {
            end += 1;
        }
        if run_may_hold_card(bytes.get(start..end).unwrap_or_default()) {
            return Some(start);
        }
        // The byte at `end` is in no run, so the next run starts after it and, being at least
        // 13 bytes long, covers `end + 13`.
        i = end + MIN_DIGITS;
    }
    None
}

/// Whether a digit run has at least 13 digits from the start of some group that begins with a
/// digit a card can begin with.
fn run_may_hold_card(run: &[u8]) -> bool {
    let mut digits_after = 0;
    for (i, &b) in run.iter().enumerate().rev() {
        if !b.is_ascii_digit() {
            continue;
        }
        digits_after += 1;
        let group_start = i == 0 || run.get(i - 1).is_some_and(|&p| is_sep(p));
        if group_start && digits_after >= MIN_DIGITS && (b'2'..=b'6').contains(&b) {
            return true;
        }
    }
    false
}

/// Adds the byte ranges of the card numbers in `s` (the exact rule of the module docs).
pub(super) fn spans(s: &str, out: &mut Vec<Range<usize>>) {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
            continue;
        }
        let mut end = i + 1;
        while in_run(bytes, end) {
            end += 1;
        }
        run_spans(bytes, i..end, out);
        i = end;
    }
}

/// The card numbers in one maximal digit run `run` of `bytes`.
fn run_spans(bytes: &[u8], run: Range<usize>, out: &mut Vec<Range<usize>>) {
    let before = run.start.checked_sub(1).and_then(|i| bytes.get(i)).copied();
    let after = bytes.get(run.end).copied();
    // `+49 151 …` is a phone number, whatever follows.
    if before == Some(b'+') {
        return;
    }
    let digit_at = |i: Option<usize>| i.and_then(|i| bytes.get(i)).is_some_and(u8::is_ascii_digit);
    // Glued to a word, or the fraction of a decimal number (`0.4111…`).
    let lead_ok = match before {
        None => true,
        Some(b'.' | b',') => !digit_at(run.start.checked_sub(2)),
        Some(b) => !is_word(b),
    };
    // Glued to a word, or the integer part of a decimal number (`4111….5`).
    let trail_ok = match after {
        None => true,
        Some(b'.' | b',') => !digit_at(Some(run.end + 1)),
        Some(b) => !is_word(b),
    };
    // Groups: (start, end) of each digit sequence; the separator before each group but the first.
    let mut groups: Vec<Range<usize>> = Vec::new();
    let mut at = run.start;
    while at < run.end {
        let len = bytes
            .get(at..run.end)
            .unwrap_or_default()
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        groups.push(at..at + len);
        at += len + 1; // the single separator
    }
    let sep_before = |g: &Range<usize>| g.start.checked_sub(1).and_then(|i| bytes.get(i)).copied();
    for (i, first) in groups.iter().enumerate() {
        if i == 0 && !lead_ok {
            continue;
        }
        let ends_run = |j: usize| j + 1 == groups.len();
        // Contiguous.
        if DIGITS.contains(&first.len()) && (!ends_run(i) || trail_ok) {
            push_if_card(bytes, first.clone(), out);
        }
        // Grouped.
        if first.len() != FIRST_GROUP {
            continue;
        }
        let sep = groups.get(i + 1).and_then(sep_before);
        let mut digits = first.len();
        for (j, g) in groups.iter().enumerate().skip(i + 1) {
            if sep_before(g) != sep {
                break;
            }
            digits += g.len();
            if digits > *DIGITS.end() {
                break;
            }
            if DIGITS.contains(&digits)
                && LAST_GROUP.contains(&g.len())
                && (!ends_run(j) || trail_ok)
            {
                push_if_card(bytes, first.start..g.end, out);
            }
            // Going on makes `g` an inner group.
            if !INNER_GROUP.contains(&g.len()) {
                break;
            }
        }
    }
}

/// Adds `span` (digits and separators) when its digits start like a card and pass Luhn.
fn push_if_card(bytes: &[u8], span: Range<usize>, out: &mut Vec<Range<usize>>) {
    let digits = bytes
        .get(span.clone())
        .unwrap_or_default()
        .iter()
        .filter(|b| b.is_ascii_digit())
        .map(|b| b - b'0');
    if is_card_digits(digits) {
        out.push(span);
    }
}

/// A JSON number that is a card number (`"card": 4111111111111111`): the same rule on its
/// decimal digits, without the context checks.
pub(super) fn is_card_number(n: u64) -> bool {
    let mut buf = [0u8; 20];
    let mut len = 0;
    let mut rest = n;
    loop {
        if let Some(slot) = buf.get_mut(len) {
            *slot = (rest % 10) as u8;
        }
        len += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    is_card_digits(buf.iter().take(len).rev().copied())
}

/// 13–19 digits (values 0–9), an issuer prefix, a valid Luhn checksum.
fn is_card_digits(digits: impl DoubleEndedIterator<Item = u8> + Clone) -> bool {
    let count = digits.clone().count();
    if !DIGITS.contains(&count) {
        return false;
    }
    let prefix = digits
        .clone()
        .take(4)
        .fold(0u32, |acc, d| acc * 10 + u32::from(d));
    let issued = match prefix / 1000 {
        3..=6 => true,
        2 => (2221..=2720).contains(&prefix),
        _ => false,
    };
    issued && luhn(digits)
}

/// The Luhn checksum: from the right, every second digit doubled (minus 9 past 9); the sum
/// is a multiple of 10.
fn luhn(digits: impl DoubleEndedIterator<Item = u8>) -> bool {
    let sum: u32 = digits
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let twice = d * 2;
                if twice > 9 {
                    twice - 9
                } else {
                    twice
                }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::sanitize::tests::{san, text, EVENT};

    fn found(s: &str) -> Vec<&str> {
        let mut out = Vec::new();
        spans(s, &mut out);
        out.into_iter().map(|r| &s[r]).collect()
    }

    #[test]
    fn luhn_and_issuer() {
        for card in [
            "4111111111111111",
            "4222222222222",
            "5555555555554444",
            "2223003122003222",
            "378282246310005",
            "6011111111111117",
            "3530111333300000",
            "30569309025904",
            "6200000000000005",
            "4000056655665556",
        ] {
            assert_eq!(found(card), [card], "{card}");
            assert!(is_card_number(card.parse().unwrap()), "{card}");
        }
        // Luhn fails; issuer prefix missing (1, 7–9, 0, 2 outside 2221–2720).
        for not in [
            "4111111111111112",
            "1111111111111117",
            "7111111111111115",
            "9111111111111113",
            "2020202020202020",
            "0000000000000000",
        ] {
            assert!(found(not).is_empty(), "{not}");
        }
        assert!(!is_card_number(0));
        assert!(!is_card_number(u64::MAX));
        assert!(!is_card_number(1_764_345_943_123));
    }

    #[test]
    fn grouped_numbers() {
        let cases = [
            ("card 4111 1111 1111 1111 declined", "4111 1111 1111 1111"),
            ("card 4111-1111-1111-1111 declined", "4111-1111-1111-1111"),
            ("amex 3782 822463 10005.", "3782 822463 10005"),
            ("visa13 4222 2222 2222 2", "4222 2222 2222 2"),
            // A card and what follows it in the same run.
            ("4111 1111 1111 1111 0426 cvc", "4111 1111 1111 1111"),
            ("order 2024 4111 1111 1111 1111", "4111 1111 1111 1111"),
            ("id:4111111111111111,", "4111111111111111"),
            ("\"4111111111111111\"", "4111111111111111"),
        ];
        for (input, card) in cases {
            assert_eq!(found(input), [card], "{input}");
        }
        // Mixed separators or groups that no card format uses are not a card.
        assert!(found("4111 1111-1111 1111").is_empty());
        assert!(found("41 11 11 11 11 11 11 11").is_empty());
        assert!(found("4111  1111 1111 1111").is_empty());
    }

    #[test]
    fn numbers_that_are_not_cards() {
        for t in [
            // Epoch timestamps in ms / µs / ns, compact timestamps.
            "at 1764345943123",
            "ts=1764345943123456789",
            "20261128164903123",
            // Phone numbers, order ids, decimals, hex, UUIDs, versions, ISBNs.
            "call +4915112345678 now",
            "+1 415-555-0100",
            "order 48151623 for 4711",
            "score 0.4111111111111111",
            "total 4111111111111111.50",
            "sha 4111111111111111ab9f",
            "x4111111111111111",
            "6f1c2a9e-3b7d-4c55-9a1e-0d2f8e7b6c41",
            "12345678-1234-1234-1234-123456789012",
            "v4.1.111111.11111",
            "ISBN 978-3-16-148410-0",
            "9783161484100",
            // Too long to be one card, too short.
            "41111111111111111111111",
            "411111111111",
        ] {
            assert!(found(t).is_empty(), "{t}: {:?}", found(t));
            assert_eq!(san().redact_text(t), None, "{t}");
        }
    }

    #[test]
    fn the_prefilter_finds_every_card_the_rule_finds() {
        for t in [
            "4111111111111111",
            "x 4111 1111 1111 1111",
            "id 2024 4111-1111-1111-1111 y",
            "12 4222222222222",
            &format!("{} 4111111111111111", "a".repeat(1000)),
            &format!(
                "{}5555 5555 5555 4444{}",
                "ab 12 ".repeat(37),
                " c".repeat(9)
            ),
        ] {
            assert!(!found(t).is_empty(), "{t}");
            assert!(candidate(t.as_bytes()).is_some(), "{t}");
            // Every start offset, so runs meet the stride at every phase.
            for pad in 0..14 {
                let padded = format!("{}{t}", "z".repeat(pad));
                assert!(candidate(padded.as_bytes()).is_some(), "{pad} {t}");
            }
        }
        for t in [
            EVENT,
            "1764345943123 1764345943123456789",
            "order 48151623 at 2026-11-28 16:49:03",
            "12 34 56 78 90 12 34",
            "",
        ] {
            assert_eq!(candidate(t.as_bytes()), None, "{t}");
        }
    }

    #[test]
    fn redacted_in_text() {
        assert_eq!(
            text("card 4111 1111 1111 1111 exp 04/26"),
            "card [REDACTED] exp 04/26"
        );
        assert_eq!(text("pan=4111111111111111;x"), "pan=[REDACTED];x");
        assert_eq!(text(&text("4111-1111-1111-1111")), "[REDACTED]");
    }
}
