//! Redaction of decoded text: one pass collects the spans to replace, family by family of the
//! rules the prefilter hit (plus the user patterns), and replaces them with the marker; passes
//! repeat until nothing changes. Zero-width characters are removed first (`invisible`).

use std::ops::Range;

use regex::Captures;

use super::rules::{
    is_basic_credential, is_error_name, is_prose_key, is_source_location, kv_value_span,
    prose_value, token_end, token_start, AUTH, CARD, EMAIL, INVISIBLE, KEY, KEYED, PASS, SHAPE,
    URL,
};
use super::shapes::is_systemd_unit;
use super::{cards, invisible, Sanitizer, REDACTED};

/// Upper bound on redaction passes over one text. A replacement can expose a new match (the
/// marker ends in `]`, a word boundary: `ACME-1Bearer t` → `[REDACTED]Bearer t`), so the slow
/// path repeats until nothing changes; built-in rules settle in two passes, the cap only guards
/// against pathological user patterns.
const MAX_PASSES: usize = 4;

impl Sanitizer {
    /// [`redact_text`](Self::redact_text); `builtin: false` skips the built-in rules in the
    /// first pass, for text already known to hold no trigger (only user patterns can match).
    pub(super) fn redact_text_with(&self, s: &str, builtin: bool) -> Option<String> {
        let mut out = self.redact_pass(s, builtin)?;
        // Later passes run everything: a replacement may have exposed a built-in match.
        for _ in 1..MAX_PASSES {
            match self.redact_pass(&out, true) {
                Some(next) => out = next,
                None => break,
            }
        }
        Some(out)
    }

    /// One pass of [`redact_text`](Self::redact_text).
    fn redact_pass(&self, s: &str, builtin: bool) -> Option<String> {
        let mut families = 0u16;
        // Key-word and `pass` hits: position, families. Allocates only on such a hit.
        let mut key_hits: Vec<(usize, u16)> = Vec::new();
        if builtin {
            self.text_prefilter.scan(s, |family, at| {
                families |= family;
                if family & (KEY | PASS) != 0 {
                    key_hits.push((at, family));
                }
                false
            });
        }
        if families & INVISIBLE != 0 {
            if let Some(visible) = invisible::strip(s) {
                // Removing them may join a key word or a token: this pass goes on with the
                // visible text (which has none left to strip, so this recurses once).
                return Some(self.redact_pass(&visible, true).unwrap_or(visible));
            }
        }
        // One `is_match` per pattern rather than a `RegexSet`: a single regex keeps the regex
        // crate's literal optimisations (`\b\d{3}-\d{2}-\d{4}\b` on 875 bytes: ~85 ns alone,
        // ~1.9 µs in a set).
        let user_hit = self.user.iter().any(|re| re.is_match(s));
        if families == 0 && !user_hit {
            return None;
        }
        let mut spans = Vec::new();
        if families & (KEY | PASS) != 0 {
            self.kv_spans(s, key_hits, &mut spans);
        }
        if families & AUTH != 0 {
            let mut at = 0;
            while let Some(caps) = self.auth_re.captures_at(s, at) {
                let (Some(scheme), Some(cred)) = (caps.get(1), caps.get(2)) else {
                    break;
                };
                // "Basic" is an English word; only a credential decoding to `user:pass` counts.
                // A rejected credential may itself start the next match (`Basic Basic dXNl…`).
                if scheme.as_str().eq_ignore_ascii_case("basic")
                    && !is_basic_credential(cred.as_str())
                {
                    at = cred.start();
                } else {
                    push_span(s, &mut spans, cred.range());
                    at = cred.end();
                }
            }
        }
        if families & URL != 0 {
            for caps in self.url_re.captures_iter(s) {
                if let Some(userinfo) = caps.get(1) {
                    push_span(s, &mut spans, userinfo.range());
                }
            }
        }
        if families & SHAPE != 0 {
            for m in self.shapes_re.find_iter(s) {
                push_span(s, &mut spans, m.range());
            }
        }
        if families & KEYED != 0 {
            for caps in self.keyed_re.captures_iter(s) {
                if let Some(secret) = first_group(&caps) {
                    push_span(s, &mut spans, secret);
                }
            }
        }
        if families & CARD != 0 {
            cards::spans(s, &mut spans);
        }
        if let (true, Some(re)) = (families & EMAIL != 0, &self.email_re) {
            for caps in re.captures_iter(s) {
                if let (Some(address), Some(local)) = (caps.get(0), caps.get(1)) {
                    if !is_systemd_unit(address.as_str()) {
                        push_span(s, &mut spans, local.range());
                    }
                }
            }
        }
        if user_hit {
            for re in &self.user {
                for m in re.find_iter(s) {
                    push_span(s, &mut spans, m.range());
                }
            }
        }
        apply_spans(s, spans)
    }

    /// Values of `key=value` pairs whose key token contains one of the key-word hits (or is
    /// a `pass` key), and of `password hunter2` in prose.
    fn kv_spans(&self, s: &str, mut key_hits: Vec<(usize, u16)>, spans: &mut Vec<Range<usize>>) {
        key_hits.sort_unstable();
        // End of the last token examined: later hits inside it are the same token. This keeps a
        // huge token with many hits (`passwordpasswordpassword…`) linear.
        let mut covered = 0;
        for (at, family) in key_hits {
            if at < covered {
                continue;
            }
            let start = token_start(s, at);
            let end = token_end(s, at);
            covered = end;
            let (Some(key), Some(rest)) = (s.get(start..end), s.get(start..)) else {
                continue;
            };
            // A `pass` hit is a key only as a `pass` segment, or when the whole token, fully
            // normalized, holds a key word (`pass_word`, which the trigger search cannot see):
            // what `is_sensitive_key` says of JSON keys. A token with a key-word hit in it
            // passes that test too, so skipping the rest of a rejected token loses nothing.
            if family & KEY == 0 && !self.is_sensitive_key(key) {
                continue;
            }
            let after_key = rest.get(key.len()..).unwrap_or_default();
            if is_error_name(key) || is_source_location(key, after_key) {
                continue;
            }
            let span = match self.kv_re.captures(rest) {
                Some(caps) => {
                    if let Some(m) = caps.get(0) {
                        covered = covered.max(start + m.end());
                    }
                    kv_value_span(rest, &caps)
                }
                None if is_prose_key(key) => self.prose_value_span(rest),
                None => None,
            };
            if let Some(span) = span {
                // Key words inside a redacted value need no look of their own.
                covered = covered.max(start + span.end);
                push_span(s, spans, start + span.start..start + span.end);
            }
        }
    }

    /// The value of `password hunter2` / `the password is hunter2` at the start of `rest` (the
    /// key token), see [`rules::prose_value`](super::rules::prose_value).
    fn prose_value_span(&self, rest: &str) -> Option<Range<usize>> {
        let caps = self.prose_re.captures(rest)?;
        if let Some(quoted) = caps.name("v2").or_else(|| caps.name("v3")) {
            return Some(quoted.range());
        }
        let v = caps.name("v4")?;
        let kept = prose_value(v.as_str())?;
        Some(v.start()..v.start() + kept.len())
    }
}

/// The range of the first capture group that took part in a match.
fn first_group(caps: &Captures<'_>) -> Option<Range<usize>> {
    caps.iter().skip(1).flatten().next().map(|m| m.range())
}

/// Records a span to replace, unless it is empty, already the marker (idempotence) or not on
/// UTF-8 boundaries (cannot happen for regex matches; checked so slicing can never panic).
fn push_span(s: &str, spans: &mut Vec<Range<usize>>, span: Range<usize>) {
    match s.get(span.clone()) {
        Some(text) if !text.is_empty() && text != REDACTED => spans.push(span),
        _ => {}
    }
}

/// Replaces the union of `spans` with [`REDACTED`]; `None` if there is nothing to replace.
fn apply_spans(s: &str, mut spans: Vec<Range<usize>>) -> Option<String> {
    if spans.is_empty() {
        return None;
    }
    spans.sort_unstable_by_key(|r| r.start);
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(spans.len());
    for span in spans {
        match merged.last_mut() {
            Some(last) if span.start <= last.end => last.end = last.end.max(span.end),
            _ => merged.push(span),
        }
    }
    let mut out = String::with_capacity(s.len() + merged.len() * REDACTED.len());
    let mut last = 0;
    for span in merged {
        out.push_str(s.get(last..span.start).unwrap_or_default());
        out.push_str(REDACTED);
        last = span.end;
    }
    out.push_str(s.get(last..).unwrap_or_default());
    Some(out)
}

#[cfg(test)]
mod tests {
    use crate::event::sanitize::tests::{san, text};
    use crate::event::sanitize::{Sanitizer, DEFAULT_KEYS};
    use crate::json;

    #[test]
    fn pathological_inputs_stay_linear() {
        let s = san();
        let many_hits = "password".repeat(32 * 1024);
        let t = std::time::Instant::now();
        assert_eq!(s.redact_text(&many_hits), None);
        let pairs = "token=a&".repeat(32 * 1024);
        let out = s.redact_text(&pairs).unwrap();
        assert!(!out.contains("=a&"));
        let quotes = format!("password=\"{}", "x ".repeat(128 * 1024));
        assert!(s.redact_text(&quotes).is_some());
        let escapes = r"\u0070assword=".repeat(16 * 1024);
        assert!(s.redact_escaped(&escapes).is_some());
        println!("pathological inputs: {:?}", t.elapsed());
    }

    #[test]
    fn idempotent_on_corpus() {
        let s = san();
        let corpus = [
            "password=hunter2 token=abc&x=1",
            "Authorization: Bearer abc.def\nCookie: a=1; b=2",
            "postgres://user:p@ss@db:5432/x and https://t@h/",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc AKIAIOSFODNN7EXAMPLE",
            "password = \"unterminated value",
            "api_key='a' secret:\"b\" pwd=c,d",
            "Basic dXNlcjpwYXNz Bearer [REDACTED]",
            "password=[REDACTED]x token=[REDACTED]",
            "token:password=abc",
            r#"{\"password\":\"x\",\"Cookie\":\"a=b; c=d\"}"#,
            "authorization: Bearer ",
            "xoxb-1234567890-abcdefghij ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "card 4111 1111 1111 1111 and 4111-1111-1111-1111 and 5555555555554444",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEp\n-----END RSA PRIVATE KEY-----",
            "-----BEGIN OPENSSH PRIVATE KEY-----\ncut",
            "AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "?key=AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe&sig=abc",
            "https://hooks.slack.com/services/T0/B0/XyZ glpat-xXo5_b2Yk-9qzW3nE8rT",
            "the password is hunter2; db_pass=x; pass\u{200B}word=y",
            "AccountKey=abc==;SharedAccessKey=def=",
        ];
        for input in corpus {
            let once = text(input);
            assert_eq!(text(&once), once, "input: {input}");
            assert_eq!(s.redact_text(&once), None, "second pass changed: {once}");
            let esc = json::escaped(input);
            let once = s.redact_escaped(&esc).unwrap_or(esc);
            assert_eq!(s.redact_escaped(&once), None, "escaped: {once}");
            let json = format!(
                r#"{{"m":"{}","password":"x","n":{{"token":[1]}}}}"#,
                json::escaped(input)
            );
            let once = s.redact_json(&json).unwrap();
            assert_eq!(s.redact_json(&once), None, "json: {once}");
        }
        for secret in [
            "hunter2",
            "p@ss",
            "AKIAIOSFODNN7",
            "dXNlcjpwYXNz",
            "abc.def",
            "4111",
            "5555555555554444",
            "MIIEp",
            "wJalr",
            "AIza",
            "XyZ",
            "glpat",
            "abc==",
        ] {
            for input in corpus {
                assert!(!text(input).contains(secret), "{input}");
            }
        }
    }

    #[test]
    fn idempotent_and_panic_free_on_generated_input() {
        let s = Sanitizer::new(
            &DEFAULT_KEYS
                .iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>(),
            &[r"ACME-\d+".to_owned()],
            false,
        )
        .unwrap();
        let parts = [
            "password",
            "Token",
            "=",
            ":",
            " ",
            "\"",
            "'",
            "\\",
            "\\u0077",
            "\\ud800",
            "abc",
            "@",
            "://",
            "Bearer ",
            "Basic ",
            "dXNlcjpwYXNz",
            "eyJhbGciOi",
            ".",
            ";",
            "&",
            ",",
            "\n",
            "AKIA",
            "IOSFODNN7EXAMPLE",
            "xoxb-",
            "sk-",
            "é",
            "[REDACTED]",
            "ACME-1",
            "Error",
            "cookie",
            "{",
            "}",
            "[",
            "]",
            "\\n",
            "\\\"",
            "42",
            "4111",
            "1111",
            "-",
            "5555555555554444",
            "+",
            "0.",
            "-----BEGIN RSA PRIVATE KEY-----",
            "-----END RSA PRIVATE KEY-----",
            "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
            "?key=",
            "&sig=",
            "hooks.slack.com/",
            "pass",
            "db_pass",
            "Pass",
            " is ",
            "hunter2",
            "\u{200B}",
            "\u{200D}",
            "\\u200b",
            "\u{1F468}",
            "glpat-",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ];
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..3000 {
            let mut input = String::new();
            for _ in 0..(seed % 12 + 1) {
                seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                input.push_str(parts[(seed >> 33) as usize % parts.len()]);
            }
            if let Some(once) = s.redact_text(&input) {
                assert_eq!(s.redact_text(&once), None, "text {input:?} -> {once:?}");
            }
            if let Some(once) = s.redact_escaped(&input) {
                assert!(
                    serde_json::from_str::<String>(&format!("\"{once}\"")).is_ok(),
                    "{once:?}"
                );
                assert_eq!(
                    s.redact_escaped(&once),
                    None,
                    "escaped {input:?} -> {once:?}"
                );
            }
            if let Some(once) = s.redact_json(&input) {
                assert!(
                    serde_json::from_str::<serde_json::Value>(&once).is_ok(),
                    "{once:?}"
                );
                if let Some(twice) = s.redact_json(&once) {
                    assert_eq!(twice, once, "json {input:?}");
                }
            }
        }
    }
}
