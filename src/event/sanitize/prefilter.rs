//! The trigger search, the fast path of every entry point: one Aho-Corasick automaton over the
//! lowercase trigger literals of the built-in rules and the configured key words. Only on a hit
//! do the regexes run (or the JSON get parsed).
//!
//! The automaton is case-sensitive (leftmost-first, so aho-corasick can use its SIMD "Teddy"
//! searcher) and the input is ASCII-lowercased into a stack buffer, `PREFILTER_CHUNK` bytes at
//! a time, before the search. Why not the alternatives from PERF-NOTES:
//! * ASCII-case-insensitive mode loses the SIMD prefilter (~1.5 µs instead of ~0.17 µs a line;
//!   measured here on the 875-byte test event: ~2.7 µs against ~0.23 µs for this design);
//! * lower/Capitalized/UPPER variants of each literal miss mixed-case spellings (`PassWord=`,
//!   `apiKey`, `X-Api-Key`, `sessionId`) and triple the literal count past Teddy's sweet spot.
//!
//! Lowercasing is one vectorised pass (~35 ns for 875 bytes) and makes the search fully
//! ASCII-case-insensitive.
//!
//! The order of the literals matters twice ([`search_order`]):
//! * for correctness: at one position leftmost-first reports only the first pattern that
//!   matches there, so `password` must come before its prefix `pass` (whose rule, a whole
//!   `pass` segment, would reject it);
//! * for speed: Teddy puts literals whose first three bytes have the same low nibbles in one
//!   of 16 buckets, a new group in bucket `15 - (id % 16)`, and a bucket's candidates are
//!   every byte triple whose nibbles are in the union of its literals'. Which groups share a
//!   bucket decides how many false candidates a text gives. The literal search alone (with
//!   the lowercasing) on the three events of `benches/pipeline.rs`, 50 default literals,
//!   minimum of 300 rounds in a scratch harness on the loaded 2-core box: alphabetical
//!   664/729/339 ns (JS/pino/structlog), longest first 340/381/262, group leaders first with
//!   punctuation-led groups last 297/343/158 — against 290/313/155 for the 40 literals before
//!   the PEM, token-prefix, query-parameter and `pass` triggers were added.
//!
//! Three triggers are not literals, each a scan of its own after the automaton's: a digit run
//! that may be a card number (`cards::candidate`, one byte in 13 looked at), a zero-width
//! character (`invisible::find`, a `memchr2` for their lead bytes) and, with
//! `sanitize.emails`, an `@` (`memchr`). The automaton stays under 64 literals with the
//! default keys, the most its SIMD searcher takes (aho-corasick's Teddy; past that it falls
//! back to a search several times slower).

use aho_corasick::{AhoCorasick, Input, MatchKind};
use memchr::{memchr, memmem};

use super::rules::{Boundary, CARD, EMAIL, ESCAPE, INVISIBLE, KEY};
use super::{cards, invisible, SanitizeError};

/// Bytes lowercased into the stack buffer per prefilter step: a typical event text (~1 KiB) is
/// one step, and the buffer stays a cheap stack array.
const PREFILTER_CHUNK: usize = 1024;

/// Prefilter buffer for short texts (JSON keys and values): zeroing 1 KiB for a 10-byte string
/// would cost more than the search.
const SMALL_CHUNK: usize = 128;

/// Haystacks shorter than this are zero-padded before the trigger search; aho-corasick's SIMD
/// searcher needs at least 18 bytes (fat AVX2 Teddy) and uses Rabin-Karp below that.
const MIN_SEARCH_LEN: usize = 32;

/// How a trigger literal can appear in escaped JSON text besides itself (`://` → `:\/\/`).
pub(super) fn escaped_spelling(t: &str) -> String {
    t.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('/', "\\/")
}

/// A prefilter literal.
#[derive(Clone)]
pub(super) struct Trigger {
    /// Lowercase.
    pub(super) literal: String,
    /// Rule families ([`KEY`], [`AUTH`](super::rules::AUTH), [`URL`](super::rules::URL),
    /// [`SHAPE`](super::rules::SHAPE), …), a bit set.
    pub(super) family: u16,
    /// What must surround the literal; see [`boundary_ok`].
    pub(super) boundary: Boundary,
}

/// The trigger search: one case-sensitive Aho-Corasick automaton over lowercase literals, run on
/// an ASCII-lowercased copy of the input made in a stack buffer (see the module docs for why).
pub(super) struct Prefilter {
    ac: AhoCorasick,
    /// Per automaton pattern: families, boundary and literal length.
    triggers: Vec<(u16, Boundary, usize)>,
    /// Longest literal minus one: how far consecutive chunks overlap.
    overlap: usize,
    /// For escaped text: finds `\u`, which is a hit of family [`ESCAPE`].
    unicode_escape: Option<memmem::Finder<'static>>,
    /// `sanitize.emails`: an `@` is a hit of family [`EMAIL`].
    emails: bool,
}

impl Prefilter {
    pub(super) fn new(
        mut triggers: Vec<Trigger>,
        escaped: bool,
        emails: bool,
    ) -> Result<Prefilter, SanitizeError> {
        // Identical literals (a key word may equal a shape trigger, e.g. a key `bearer`): keep
        // one that hits all their families, with a boundary only if all of them need the same.
        triggers.sort_by(|a, b| a.literal.cmp(&b.literal));
        triggers.dedup_by(|dup, kept| {
            let same = dup.literal == kept.literal;
            if same {
                kept.family |= dup.family;
                if kept.boundary != dup.boundary {
                    kept.boundary = Boundary::None;
                }
            }
            same
        });
        let triggers = search_order(triggers);
        let overlap = triggers.iter().map(|t| t.literal.len()).max().unwrap_or(1) - 1;
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .build(triggers.iter().map(|t| &t.literal))
            .map_err(|e| SanitizeError::KeysTooComplex(e.to_string()))?;
        Ok(Prefilter {
            ac,
            triggers: triggers
                .iter()
                .map(|t| (t.family, t.boundary, t.literal.len()))
                .collect(),
            overlap,
            unicode_escape: escaped.then(|| memmem::Finder::new(b"\\u").into_owned()),
            emails,
        })
    }

    /// Whether `s` contains any trigger. Allocation-free.
    pub(super) fn any(&self, s: &str) -> bool {
        self.scan(s, |_, _| true)
    }

    /// Calls `hit(families, position in s)` for every trigger occurrence (ASCII-case-insensitive;
    /// occurrences in the overlap of two chunks may be reported twice) until `hit` returns true.
    /// Returns whether it did.
    pub(super) fn scan(&self, s: &str, mut hit: impl FnMut(u16, usize) -> bool) -> bool {
        let bytes = s.as_bytes();
        if let Some(finder) = &self.unicode_escape {
            if let Some(at) = finder.find(bytes) {
                if hit(ESCAPE, at) {
                    return true;
                }
            }
        }
        // Zeroing the buffer is part of the cost; JSON keys and values are mostly short.
        let mut all_bits = 0u8;
        let found = if bytes.len() <= SMALL_CHUNK {
            self.scan_chunks::<SMALL_CHUNK>(bytes, &mut all_bits, &mut hit)
        } else {
            self.scan_chunks::<PREFILTER_CHUNK>(bytes, &mut all_bits, &mut hit)
        };
        let mut other = |family: u16, at: Option<usize>| at.is_some_and(|at| hit(family, at));
        found
            || other(CARD, cards::candidate(bytes))
            // Zero-width characters are not ASCII: most texts need no look (the OR of their
            // bytes, taken while lowercasing, costs less than the `memchr2`).
            || (all_bits >= 0x80 && other(INVISIBLE, invisible::find(bytes)))
            || (self.emails && other(EMAIL, memchr(b'@', bytes)))
    }

    /// [`scan`](Self::scan) of the triggers, lowercasing `N` bytes at a time into the stack.
    /// `all_bits` gets the OR of the bytes lowercased (complete only when this returns false).
    fn scan_chunks<const N: usize>(
        &self,
        bytes: &[u8],
        all_bits: &mut u8,
        hit: &mut impl FnMut(u16, usize) -> bool,
    ) -> bool {
        let mut buf = [0u8; N];
        let mut start = 0;
        loop {
            let end = bytes.len().min(start + N);
            let window = bytes.get(start..end).unwrap_or_default();
            // Zero padding up to Teddy's minimum haystack length: below it aho-corasick falls
            // back to a slower Rabin-Karp search. No trigger contains a NUL byte.
            let search_len = window.len().max(MIN_SEARCH_LEN).min(N);
            let lower = &mut buf[..search_len];
            let mut bits = 0u8;
            for (d, &s) in lower.iter_mut().zip(window) {
                *d = s.to_ascii_lowercase();
                bits |= s;
            }
            *all_bits |= bits;
            lower[window.len()..].fill(0);
            let lower = &*lower;
            let mut from = 0;
            while let Some(m) = self.ac.find(Input::new(lower).range(from..)) {
                let (family, boundary, len) = self
                    .triggers
                    .get(m.pattern().as_usize())
                    .copied()
                    .unwrap_or((KEY, Boundary::None, 0));
                let at = start + m.start();
                if boundary_ok(bytes, at, len, boundary) && hit(family, at) {
                    return true;
                }
                // Resume one byte further, not after the match: triggers may overlap.
                from = m.start() + 1;
            }
            // `overlap < N` (triggers are at most MAX_KEY_LEN bytes), so this always advances;
            // the small buffer is only used for input that fits it whole.
            if end == bytes.len() || N <= self.overlap {
                return false;
            }
            start = end - self.overlap;
        }
    }
}

/// Bytes of a literal that decide its bucket in the SIMD searcher (its "mask length", the
/// shortest literal's length up to this; ours are at least 3 bytes long).
const BUCKET_PREFIX: usize = 3;

/// The order the literals are given to the automaton in (module docs): one literal of each
/// bucket group first (the group's longest), those whose prefix has fewer non-letters first,
/// then the rest of the groups longest first, then literals shorter than [`BUCKET_PREFIX`]
/// longest first. A literal always comes before its proper prefixes: a prefix of 3 or more
/// bytes is in its group and shorter, a shorter one is in the last part, after it.
fn search_order(mut triggers: Vec<Trigger>) -> Vec<Trigger> {
    triggers.sort_by(|a, b| {
        b.literal
            .len()
            .cmp(&a.literal.len())
            .then_with(|| a.literal.cmp(&b.literal))
    });
    let group = |t: &Trigger| -> Vec<u8> {
        t.literal
            .bytes()
            .take(BUCKET_PREFIX)
            .map(|b| b & 0x0f)
            .collect()
    };
    let non_letters = |t: &Trigger| {
        t.literal
            .bytes()
            .take(BUCKET_PREFIX)
            .filter(|b| !b.is_ascii_alphabetic())
            .count()
    };
    let mut seen = std::collections::BTreeSet::new();
    let (mut leaders, mut members, mut short) = (Vec::new(), Vec::new(), Vec::new());
    for t in triggers {
        if t.literal.len() < BUCKET_PREFIX {
            short.push(t);
        } else if seen.insert(group(&t)) {
            leaders.push(t);
        } else {
            members.push(t);
        }
    }
    leaders.sort_by(|a, b| {
        non_letters(a)
            .cmp(&non_letters(b))
            .then_with(|| a.literal.cmp(&b.literal))
    });
    leaders.extend(members);
    leaders.extend(short);
    leaders
}

/// Whether a literal of `len` bytes found at `at` counts, given its [`Boundary`]. Conservative:
/// it may accept what the rule then rejects, never the other way round. In escaped text
/// `\neyJ…` decodes to a newline before `eyJ`, so a word byte preceded by `\` also counts as
/// a boundary before.
fn boundary_ok(bytes: &[u8], at: usize, len: usize, boundary: Boundary) -> bool {
    let escaped_before = || at >= 2 && bytes.get(at - 2) == Some(&b'\\');
    let prev = at.checked_sub(1).and_then(|i| bytes.get(i)).copied();
    match boundary {
        Boundary::None => true,
        // `\b` before a literal that starts with a word character.
        Boundary::Word => match prev {
            Some(p) if p.is_ascii_alphanumeric() || p == b'_' => escaped_before(),
            _ => true,
        },
        // A whole key segment: see `rules::is_pass_key`.
        Boundary::Segment => {
            let before = match prev {
                Some(p) if p.is_ascii_alphanumeric() => {
                    escaped_before()
                        || (bytes.get(at) == Some(&b'P')
                            && (p.is_ascii_lowercase() || p.is_ascii_digit()))
                }
                _ => true,
            };
            before && !bytes.get(at + len).is_some_and(u8::is_ascii_alphanumeric)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::sanitize::tests::{san, text, EVENT};
    use crate::json;

    #[test]
    fn key_words_are_found_in_configured_spellings() {
        let s = san();
        // Any ASCII case, contiguous or split where the configured word has a separator.
        assert_eq!(text("private.key=x"), "private.key=[REDACTED]");
        assert_eq!(text("PRIVATE-KEY: x"), "PRIVATE-KEY: [REDACTED]");
        // Split elsewhere, the key word is no trigger (documented limit) ...
        assert_eq!(s.redact_text("sec_ret=x"), None);
        assert_eq!(s.redact_json(r#"{"Sec_Ret":"x"}"#), None);
        // ... but once a context is inspected, its keys get the full normalization.
        assert!(s.is_sensitive_key("Sec_Ret"));
        assert!(s.is_sensitive_key("user password"));
        assert_eq!(
            s.redact_json(r#"{"Sec_Ret":"x","auth":"Bearer abc"}"#)
                .as_deref(),
            Some(r#"{"Sec_Ret":"[REDACTED]","auth":"Bearer [REDACTED]"}"#)
        );
        // `pass_word` is found through its `pass` segment, then normalized like a JSON key.
        assert_eq!(text("pass_word=x"), "pass_word=[REDACTED]");
        assert_eq!(
            s.redact_json(r#"{"Pass_Word":"x"}"#).as_deref(),
            Some(r#"{"Pass_Word":"[REDACTED]"}"#)
        );
    }

    #[test]
    fn default_triggers_fit_the_simd_searcher() {
        // aho-corasick's Teddy takes at most 64 literals (module docs); the default keys and
        // the built-in triggers must leave room for a few configured ones.
        let s = san();
        for p in [&s.text_prefilter, &s.escaped_prefilter] {
            assert!(p.ac.patterns_len() <= 52, "{}", p.ac.patterns_len());
        }
    }

    #[test]
    fn a_literal_comes_before_its_prefixes() {
        let t = |literal: &str| Trigger {
            literal: literal.to_owned(),
            family: KEY,
            boundary: Boundary::None,
        };
        let order: Vec<String> = search_order(
            [
                "pa", "pass", "p", "password", "passwd", "bearer", "bea", "be", "sk-", "xox",
            ]
            .map(t)
            .into(),
        )
        .into_iter()
        .map(|t| t.literal)
        .collect();
        let pos = |l: &str| order.iter().position(|o| o == l).unwrap();
        for (long, prefix) in [
            ("password", "pass"),
            ("passwd", "pass"),
            ("pass", "pa"),
            ("pa", "p"),
            ("bearer", "bea"),
            ("bearer", "be"),
        ] {
            assert!(pos(long) < pos(prefix), "{order:?}");
        }
    }

    #[test]
    fn a_literal_wins_over_its_prefix() {
        // `pass` (a segment rule) is a prefix of `password`, `passwd` and `passphrase` (key
        // words): at one position only the longest is reported.
        let s = san();
        let mut families = Vec::new();
        s.text_prefilter.scan("password=x", |f, at| {
            families.push((f, at));
            false
        });
        assert_eq!(families, [(KEY, 0)]);
        for (input, hit) in [
            ("db_pass=x", true),
            ("dbPass=x", true),
            ("SMTP-PASS: x", true),
            ("pass", true),
            ("bypass=x", false),
            ("compass", false),
            ("passport=x", false),
            ("passed", false),
        ] {
            assert_eq!(s.text_prefilter.any(input), hit, "{input}");
        }
    }

    #[test]
    fn long_input_crosses_prefilter_chunks() {
        let s = san();
        for pad in [
            PREFILTER_CHUNK - 3,
            PREFILTER_CHUNK - 1,
            PREFILTER_CHUNK,
            5 * PREFILTER_CHUNK + 7,
        ] {
            let input = format!("{}Password=x", "a ".repeat(pad / 2) + &"b".repeat(pad % 2));
            let out = s.redact_text(&input).unwrap();
            assert!(out.ends_with("Password=[REDACTED]"), "pad {pad}");
        }
        assert_eq!(s.redact_text(&"x".repeat(300_000)), None);
    }

    /// Best of a few rounds of `f`, in ns per call (the box is shared; the minimum is the
    /// least noisy figure).
    pub(super) fn ns_per_call(mut f: impl FnMut()) -> u128 {
        const ROUNDS: u32 = 5;
        const ITERS: u32 = 10_000;
        (0..ROUNDS)
            .map(|_| {
                let t = std::time::Instant::now();
                for _ in 0..ITERS {
                    f();
                }
                t.elapsed().as_nanos() / u128::from(ITERS)
            })
            .min()
            .unwrap_or_default()
    }

    #[test]
    fn fast_path_timing() {
        // Printed, not asserted: run with `--release -- --nocapture` for meaningful numbers.
        use std::hint::black_box;
        let s = san();
        assert_eq!(EVENT.len(), 875);
        assert_eq!(s.redact_text(EVENT), None);
        let escaped = json::escaped(EVENT);
        assert_eq!(s.redact_escaped(&escaped), None);
        let context = r#"{"path":"/cart/checkout","method":"POST","user_id":1842,"items":[1,2,3]}"#;
        assert_eq!(s.redact_json(context), None);
        // A prefilter hit without a secret ("tokenize" contains the key word "token").
        let hit = EVENT.replace("mapItems", "tokenize");
        assert_eq!(s.redact_text(&hit), None);

        let text = ns_per_call(|| drop(black_box(s.redact_text(black_box(EVENT)))));
        let esc = ns_per_call(|| drop(black_box(s.redact_escaped(black_box(&escaped)))));
        let json = ns_per_call(|| drop(black_box(s.redact_json(black_box(context)))));
        let slow = ns_per_call(|| drop(black_box(s.redact_text(black_box(&hit)))));
        println!(
            "no-secret {}-byte event: redact_text {text} ns, redact_escaped {esc} ns; \
             {}-byte context: redact_json {json} ns; prefilter hit without secret: {slow} ns",
            EVENT.len(),
            context.len()
        );
    }
}
