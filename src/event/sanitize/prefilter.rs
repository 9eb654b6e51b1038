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

use aho_corasick::{AhoCorasick, Input, MatchKind};
use memchr::memmem;

use super::rules::{ESCAPE, KEY};
use super::SanitizeError;

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
    /// [`SHAPE`](super::rules::SHAPE)), a bit set.
    pub(super) family: u8,
    /// The family's regex needs a word boundary before the literal (`\bsk-`), so `task-` is no
    /// hit; see [`boundary_before`].
    pub(super) boundary: bool,
}

/// The trigger search: one case-sensitive Aho-Corasick automaton over lowercase literals, run on
/// an ASCII-lowercased copy of the input made in a stack buffer (see the module docs for why).
pub(super) struct Prefilter {
    ac: AhoCorasick,
    /// Per automaton pattern: family and boundary flag.
    triggers: Vec<(u8, bool)>,
    /// Longest literal minus one: how far consecutive chunks overlap.
    overlap: usize,
    /// For escaped text: finds `\u`, which is a hit of family [`ESCAPE`].
    unicode_escape: Option<memmem::Finder<'static>>,
}

impl Prefilter {
    pub(super) fn new(
        mut triggers: Vec<Trigger>,
        escaped: bool,
    ) -> Result<Prefilter, SanitizeError> {
        // Identical literals (a key word may equal a shape trigger, e.g. a key `bearer`): keep
        // one that hits all their families, and needs a boundary only if all of them do.
        triggers.sort_by(|a, b| a.literal.cmp(&b.literal));
        triggers.dedup_by(|dup, kept| {
            let same = dup.literal == kept.literal;
            if same {
                kept.family |= dup.family;
                kept.boundary &= dup.boundary;
            }
            same
        });
        let overlap = triggers.iter().map(|t| t.literal.len()).max().unwrap_or(1) - 1;
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .build(triggers.iter().map(|t| &t.literal))
            .map_err(|e| SanitizeError::KeysTooComplex(e.to_string()))?;
        Ok(Prefilter {
            ac,
            triggers: triggers.iter().map(|t| (t.family, t.boundary)).collect(),
            overlap,
            unicode_escape: escaped.then(|| memmem::Finder::new(b"\\u").into_owned()),
        })
    }

    /// Whether `s` contains any trigger. Allocation-free.
    pub(super) fn any(&self, s: &str) -> bool {
        self.scan(s, |_, _| true)
    }

    /// Calls `hit(families, position in s)` for every trigger occurrence (ASCII-case-insensitive;
    /// occurrences in the overlap of two chunks may be reported twice) until `hit` returns true.
    /// Returns whether it did.
    pub(super) fn scan(&self, s: &str, mut hit: impl FnMut(u8, usize) -> bool) -> bool {
        let bytes = s.as_bytes();
        if let Some(finder) = &self.unicode_escape {
            if let Some(at) = finder.find(bytes) {
                if hit(ESCAPE, at) {
                    return true;
                }
            }
        }
        // Zeroing the buffer is part of the cost; JSON keys and values are mostly short.
        if bytes.len() <= SMALL_CHUNK {
            self.scan_chunks::<SMALL_CHUNK>(bytes, &mut hit)
        } else {
            self.scan_chunks::<PREFILTER_CHUNK>(bytes, &mut hit)
        }
    }

    /// [`scan`](Self::scan) of the triggers, lowercasing `N` bytes at a time into the stack.
    fn scan_chunks<const N: usize>(
        &self,
        bytes: &[u8],
        hit: &mut impl FnMut(u8, usize) -> bool,
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
            for (d, s) in lower.iter_mut().zip(window) {
                *d = s.to_ascii_lowercase();
            }
            lower[window.len()..].fill(0);
            let lower = &*lower;
            let mut from = 0;
            while let Some(m) = self.ac.find(Input::new(lower).range(from..)) {
                let (family, boundary) = self
                    .triggers
                    .get(m.pattern().as_usize())
                    .copied()
                    .unwrap_or((KEY, false));
                let at = start + m.start();
                if (!boundary || boundary_before(bytes, at)) && hit(family, at) {
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

/// Conservative `\b` check before `at` for a literal that starts with a word character: true
/// unless the previous byte is an ASCII word character. In escaped text `\neyJ…` decodes to a
/// newline before `eyJ`, so a word byte preceded by `\` also counts as a boundary.
fn boundary_before(bytes: &[u8], at: usize) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    match at.checked_sub(1).and_then(|i| bytes.get(i)) {
        None => true,
        Some(&prev) if !word(prev) => true,
        Some(_) => at >= 2 && bytes.get(at - 2) == Some(&b'\\'),
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
        assert_eq!(s.redact_text("pass_word=x"), None);
        assert_eq!(s.redact_json(r#"{"Pass_Word":"x"}"#), None);
        // ... but once a context is inspected, its keys get the full normalization.
        assert!(s.is_sensitive_key("Pass_Word"));
        assert!(s.is_sensitive_key("user password"));
        assert_eq!(
            s.redact_json(r#"{"Pass_Word":"x","auth":"Bearer abc"}"#)
                .as_deref(),
            Some(r#"{"Pass_Word":"[REDACTED]","auth":"Bearer [REDACTED]"}"#)
        );
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
