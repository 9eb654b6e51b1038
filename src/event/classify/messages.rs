//! Classification by message: one walk over the first [`MESSAGE_SCAN_BYTES`] bytes, skipping
//! quoted values; at each word start the [`MESSAGE_RULES`] that begin with its first two bytes
//! (an index built at compile time) are compared, and the first rule in table order wins.

use super::names::eq_ignore_case;
use super::tables::{MessageRule, MESSAGE_RULES};
use super::Class;
use crate::event::fingerprint::{closing_quote, quote_kind};

/// Only this many leading bytes of a message are scanned: the phrases that tell the kind of an
/// error come first, and it bounds the cost for huge messages.
pub const MESSAGE_SCAN_BYTES: usize = 512;

/// Slots of the two-byte rule index: `0-9`, `a-z` (case-folded), anything else.
const SLOTS: usize = 37;

const fn slot_of(b: u8) -> u8 {
    match b.to_ascii_lowercase() {
        c @ b'0'..=b'9' => c - b'0',
        c @ b'a'..=b'z' => 10 + (c - b'a'),
        _ => (SLOTS - 1) as u8,
    }
}

static SLOT: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = slot_of(i as u8);
        i += 1;
    }
    table
};

/// Index key of a phrase or of the text at a word start: its first two bytes.
fn key(first: u8, second: u8) -> usize {
    usize::from(SLOT[usize::from(first)]) * SLOTS + usize::from(SLOT[usize::from(second)])
}

/// [`MESSAGE_RULES`] ids grouped by the first two bytes of their phrase, ascending within a
/// group (computed at compile time), so a word start is compared with a handful of rules.
pub(super) struct PrefixIndex {
    /// `ids[start[k]..start[k + 1]]` are the rules whose phrase has key `k`.
    start: [u16; SLOTS * SLOTS + 1],
    pub(super) ids: [u16; MESSAGE_RULES.len()],
}

impl PrefixIndex {
    fn bucket(&self, key: usize) -> &[u16] {
        match (self.start.get(key), self.start.get(key + 1)) {
            (Some(&lo), Some(&hi)) => self
                .ids
                .get(usize::from(lo)..usize::from(hi))
                .unwrap_or_default(),
            _ => &[],
        }
    }
}

const fn phrase_key(phrase: &str) -> usize {
    let p = phrase.as_bytes();
    assert!(p.len() >= 2, "phrases have at least two bytes");
    slot_of(p[0]) as usize * SLOTS + slot_of(p[1]) as usize
}

pub(super) static MESSAGE_INDEX: PrefixIndex = {
    let mut start = [0u16; SLOTS * SLOTS + 1];
    let mut i = 0;
    while i < MESSAGE_RULES.len() {
        let first = MESSAGE_RULES[i].phrase.as_bytes()[0];
        assert!(first.is_ascii_lowercase() || first.is_ascii_digit());
        start[phrase_key(MESSAGE_RULES[i].phrase) + 1] += 1;
        i += 1;
    }
    let start = super::running_totals(start);
    let mut fill = start;
    let mut ids = [0u16; MESSAGE_RULES.len()];
    i = 0;
    while i < MESSAGE_RULES.len() {
        let k = phrase_key(MESSAGE_RULES[i].phrase);
        ids[fill[k] as usize] = i as u16;
        fill[k] += 1;
        i += 1;
    }
    PrefixIndex { start, ids }
};

/// Byte kinds for the message walk.
const OTHER: u8 = 0;
const WORD: u8 = 1;
const QUOTE: u8 = 2;
static BYTE_KIND: [u8; 256] = {
    let mut table = [OTHER; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        if b.is_ascii_alphanumeric() {
            table[i] = WORD;
        } else if b == b'\'' || b == b'"' || b == b'`' {
            table[i] = QUOTE;
        }
        i += 1;
    }
    table
};

pub(super) fn class_by_message(message: &str) -> Option<Class> {
    let msg = message.as_bytes();
    let msg = &msg[..msg.len().min(MESSAGE_SCAN_BYTES)];
    let mut best = usize::MAX;
    let mut unclosed = [false; 3];
    let mut i = 0;
    loop {
        // Next letter, digit or quote.
        i += msg[i..]
            .iter()
            .position(|&c| BYTE_KIND[usize::from(c)] != OTHER)
            .unwrap_or(msg.len() - i);
        let Some(&b) = msg.get(i) else { break };
        if let Some(q) = quote_kind(b) {
            // Skip a quoted value (the fingerprint's masking rule).
            if (i == 0 || !msg[i - 1].is_ascii_alphanumeric()) && !unclosed[q] {
                match closing_quote(msg, i + 1, b) {
                    Some(end) => {
                        i = end + 1;
                        continue;
                    }
                    None => unclosed[q] = true,
                }
            }
            i += 1;
            continue;
        }
        // Start of a word: try the rules that begin with its first two bytes, best first,
        // looking at their first four bytes before comparing whole phrases.
        let k = key(b, msg.get(i + 1).copied().unwrap_or(0));
        let head = head_at(msg, i);
        for &id in MESSAGE_INDEX.bucket(k) {
            let id = usize::from(id);
            if id >= best {
                break;
            }
            let (bytes, mask) = RULE_HEADS[id];
            if head & mask == bytes && rule_matches_at(msg, i, &MESSAGE_RULES[id]) {
                best = id;
                break;
            }
        }
        if best == 0 {
            break;
        }
        // Past the rest of the word.
        i += 1;
        i += msg[i..]
            .iter()
            .position(|&c| BYTE_KIND[usize::from(c)] != WORD)
            .unwrap_or(msg.len() - i);
    }
    MESSAGE_RULES.get(best).map(|rule| rule.class)
}

/// Up to four bytes at `i`, lowercased, little-endian (missing bytes are zero).
fn head_at(msg: &[u8], i: usize) -> u32 {
    let mut head = 0;
    for (k, &c) in msg.iter().skip(i).take(4).enumerate() {
        head |= u32::from(c.to_ascii_lowercase()) << (8 * k);
    }
    head
}

/// The first (up to) four bytes of each rule's phrase and the mask covering them.
static RULE_HEADS: [(u32, u32); MESSAGE_RULES.len()] = {
    let mut heads = [(0u32, 0u32); MESSAGE_RULES.len()];
    let mut i = 0;
    while i < MESSAGE_RULES.len() {
        let p = MESSAGE_RULES[i].phrase.as_bytes();
        let mut k = 0;
        while k < 4 && k < p.len() {
            heads[i].0 |= (p[k] as u32) << (8 * k);
            heads[i].1 |= 0xff << (8 * k);
            k += 1;
        }
        i += 1;
    }
    heads
};

fn rule_matches_at(msg: &[u8], i: usize, rule: &MessageRule) -> bool {
    let phrase = rule.phrase.as_bytes();
    let end = i + phrase.len();
    msg.get(i..end)
        .is_some_and(|text| eq_ignore_case(text, phrase))
        && !(rule.whole_word && msg.get(end).is_some_and(u8::is_ascii_alphanumeric))
}

#[cfg(test)]
mod tests {
    use super::MESSAGE_SCAN_BYTES;
    use crate::event::classify::tests::class_of;
    use crate::event::classify::Class;

    #[test]
    fn first_message_rule_in_table_order_wins() {
        let cases = [
            // Position in the message does not matter; table order does.
            (
                "connection refused while waiting: operation timed out",
                Class::Timeout,
            ),
            (
                "Lock wait timeout exceeded; try restarting transaction",
                Class::Database,
            ),
            (
                "EACCES: permission denied, open '/var/log/app.log'",
                Class::Filesystem,
            ),
            ("permission denied for table users", Class::Authorization),
            ("401 Unauthorized", Class::Authentication),
            ("Invalid token", Class::Authentication),
            ("Invalid email address", Class::Validation),
            (
                "runtime error: invalid memory address or nil pointer dereference",
                Class::Programming,
            ),
            ("Error: Cannot find module './config'", Class::Dependency),
            ("sh: 1: convert: command not found", Class::Dependency),
            ("503 Service Unavailable", Class::Dependency),
            ("redis connection refused", Class::Network),
            (
                "internal error: entered unreachable code",
                Class::Programming,
            ),
            ("connect EHOSTUNREACH", Class::Network),
            ("No route to host", Class::Network),
            // Quoted values are skipped, but a phrase may include the quote itself.
            (
                "called `Option::unwrap()` on a `None` value",
                Class::Programming,
            ),
            ("column \"nme\" does not exist", Class::Database),
            ("Converting circular structure to JSON", Class::Programming),
            ("Connection terminated unexpectedly", Class::Network),
        ];
        for (message, want) in cases {
            assert_eq!(class_of(None, message), want, "{message:?}");
        }
    }

    #[test]
    fn message_matching_is_word_anchored_and_case_insensitive() {
        let cases = [
            ("REQUEST TIMED OUT", Class::Timeout),
            ("Rate Limited by upstream", Class::RateLimit),
            // Word start: "oom" inside "room", "dns" inside "fdns", "429" inside "14290".
            ("no room left", Class::Unknown),
            ("fdns", Class::Unknown),
            ("user 14290 has 4290 items", Class::Unknown),
            // Whole words: "429" but not "4291"; "dns" but not "dnssec".
            ("status 429", Class::RateLimit),
            ("status 4291", Class::Unknown),
            ("dnssec", Class::Unknown),
            ("dns lookup failed", Class::Network),
            // Prefix phrases match longer words.
            ("Throttling: slow down", Class::RateLimit),
            ("Service misconfigured", Class::Configuration),
        ];
        for (message, want) in cases {
            assert_eq!(class_of(None, message), want, "{message:?}");
        }
    }

    #[test]
    fn quoted_values_do_not_classify() {
        let cases = [
            (
                "Cannot read properties of undefined (reading 'timeout')",
                Class::Programming,
            ),
            ("unknown option 'timeout'", Class::Unknown),
            ("field \"password\" rejected", Class::Unknown),
            // An unclosed quote is text.
            ("it's a timeout", Class::Timeout),
            ("'timeout", Class::Timeout),
        ];
        for (message, want) in cases {
            assert_eq!(class_of(None, message), want, "{message:?}");
        }
    }

    #[test]
    fn only_the_message_prefix_is_scanned() {
        let pad = "x ".repeat(MESSAGE_SCAN_BYTES / 2);
        assert_eq!(class_of(None, &format!("{pad}timed out")), Class::Unknown);
        let pad = "x ".repeat(MESSAGE_SCAN_BYTES / 2 - 10);
        assert_eq!(class_of(None, &format!("{pad}timed out")), Class::Timeout);
    }
}
