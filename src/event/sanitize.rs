//! Secret redaction for event text (`message`, `stack`) and the client's `context` JSON.
//!
//! A [`Sanitizer`] is built once from `sanitize.keys` / `sanitize.patterns` and shared read-only
//! by every ingest worker. Three entry points, all returning `None` when nothing changed (the
//! caller then copies its input through):
//!
//! * [`Sanitizer::redact_text`] — decoded free text;
//! * [`Sanitizer::redact_escaped`] — the still-escaped body of a JSON string literal (the stack is
//!   kept raw to save an unescape/re-escape per event);
//! * [`Sanitizer::redact_json`] — a raw JSON value (the `context`).
//!
//! # Fast path
//! Almost no event carries a secret, so every call starts with a *prefilter*: one Aho-Corasick
//! automaton over lowercase trigger literals — the key words (also joined with `_`, `-`, `.` when
//! the configured word has parts, so `api_key` gives `apikey`, `api_key`, `api-key`, `api.key`),
//! `bearer`, `basic`, `://`, `eyj`, `akia`, `ghp_`, `xox`, `sk-`, … — plus, for escaped input,
//! the escaped spellings (`:\/\/`) and a `memmem` search for `\u`. Only on a hit do the regexes
//! run (or the JSON get parsed), and only those of the rule families that were hit.
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
//! ASCII-case-insensitive. Limits, documented for users in `docs/sanitizing.md`: a key word is a
//! trigger only contiguous or split where the configured word has a separator (`pass_word=` is
//! not a pair for the key `password`; a JSON key like that is caught only when the object is
//! inspected because of another trigger, as keys then get the full normalization), and
//! case-insensitivity is ASCII-only.
//!
//! The prefilter of escaped text is sound for the decoded text: an escape that could hide a
//! trigger is itself a trigger (`\u`, or the escaped spelling of a trigger with `/`, `"`, `\`).
//! So when escaped text (a stack, a context) has no trigger, only the user patterns are checked
//! after decoding.
//!
//! User patterns (`sanitize.patterns`) cannot be prefiltered: with any configured, every text is
//! also checked with each pattern, every escaped text containing `\` is unescaped first (an
//! allocation), and every context is parsed (strings are then checked against the user patterns
//! only, unless the raw context had a trigger).
//!
//! # Idempotence
//! `redact(redact(x)) == redact(x)`: a match whose text is exactly [`REDACTED`] is not replaced
//! again, no built-in rule matches inside `[REDACTED]`, user patterns matching the marker are
//! rejected at start-up, and the slow path repeats until a pass changes nothing (a replacement
//! can create a word boundary that exposes a new match).

#![forbid(unsafe_code)]

use std::fmt;
use std::fmt::Write as _;
use std::ops::Range;

use crate::json;
use aho_corasick::{AhoCorasick, Input, MatchKind};
use memchr::memchr;
use memchr::memmem;
use regex::{Captures, Regex};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// What a secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Default `sanitize.keys`. A key is sensitive if its normalized form *contains* one of these.
pub const DEFAULT_KEYS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "token",
    "authorization",
    "cookie",
    "api_key",
    "apikey",
    "private_key",
    "access_key",
    "credential",
    "session_id",
];

/// Bytes lowercased into the stack buffer per prefilter step: a typical event text (~1 KiB) is
/// one step, and the buffer stays a cheap stack array.
const PREFILTER_CHUNK: usize = 1024;

/// Prefilter buffer for short texts (JSON keys and values): zeroing 1 KiB for a 10-byte string
/// would cost more than the search.
const SMALL_CHUNK: usize = 128;

/// Haystacks shorter than this are zero-padded before the trigger search; aho-corasick's SIMD
/// searcher needs at least 18 bytes (fat AVX2 Teddy) and uses Rabin-Karp below that.
const MIN_SEARCH_LEN: usize = 32;

/// Longest accepted key word, in bytes. Keeps the prefilter's chunk overlap (longest trigger - 1)
/// far below [`PREFILTER_CHUNK`]; real key names are a few dozen bytes at most.
const MAX_KEY_LEN: usize = 64;

/// Upper bound on redaction passes over one text. A replacement can expose a new match (the
/// marker ends in `]`, a word boundary: `ACME-1Bearer t` → `[REDACTED]Bearer t`), so the slow
/// path repeats until nothing changes; built-in rules settle in two passes, the cap only guards
/// against pathological user patterns.
const MAX_PASSES: usize = 4;

/// Separators removed when normalizing a key (`X-Api-Key` → `xapikey`).
const KEY_SEPARATORS: [char; 3] = ['-', '_', '.'];

/// Rule families, as a bit set: a prefilter hit runs only the families that were hit.
const KEY: u8 = 1;
const AUTH: u8 = 2;
const URL: u8 = 4;
const SHAPE: u8 = 8;
/// A `\u` escape in escaped text: it can hide any trigger, so it sends the text to the slow path.
const ESCAPE: u8 = 16;

/// Lowercase trigger literals of the non-key rules: (literal, family, whether the rule's regex
/// needs a word boundary before it; see [`boundary_before`]).
const SHAPE_TRIGGERS: &[(&str, u8, bool)] = &[
    ("bearer", AUTH, true),
    ("basic", AUTH, true),
    ("://", URL, false),
    ("eyj", SHAPE, true),
    ("akia", SHAPE, true),
    ("asia", SHAPE, true),
    ("ghp_", SHAPE, true),
    ("gho_", SHAPE, true),
    ("ghu_", SHAPE, true),
    ("ghs_", SHAPE, true),
    ("ghr_", SHAPE, true),
    ("github_pat_", SHAPE, true),
    ("xox", SHAPE, true),
    ("sk-", SHAPE, true),
    ("k_live_", SHAPE, false),
    ("k_test_", SHAPE, false),
];

/// Token shapes that are secrets without any key in front of them.
const SHAPES_RE: &str = concat!(
    // JWT: header.payload.signature, base64url; the signature may be empty (alg=none).
    r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",
    // AWS access key ids (long-term AKIA…, temporary ASIA…).
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    // GitHub classic and fine-grained tokens.
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}\b",
    r"|\bgithub_pat_[A-Za-z0-9_]{22,}",
    // Slack tokens.
    r"|\bxox[baprse]-[A-Za-z0-9-]{10,}",
    // OpenAI/Anthropic-style `sk-…` keys and Stripe secret/restricted keys.
    r"|\bsk-[A-Za-z0-9_-]{20,}",
    r"|\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}",
);

/// `Bearer <token68>` and `Basic <base64>`; group 1 is the scheme, group 2 the credential.
const AUTH_RE: &str = r"(?i)\b(bearer|basic)[ \t]+([A-Za-z0-9\-._~+/]+=*)";

/// Userinfo of a URL (`scheme://user:pass@host`); group 1 is `user:pass`. Greedy, so a password
/// with an unencoded `@` is covered up to the last `@` of the authority.
const URL_RE: &str = r#"(?i)\b[a-z][a-z0-9+.\-]*://([^\s/?#"'<>]+)@"#;

/// A `key=value` pair, anchored at the start of the key token (found from a key-word hit).
/// Groups: `key`; `colon` when the separator is a bare `:` (header style);
/// `scheme` (`Bearer ` etc., kept); the value in `v1` (`\"…\"`, from double-encoded JSON), `v2`
/// (`"…"`), `v3` (`'…'`) or `v4` (unquoted: up to whitespace, `,`, `;`, `&` or a quote).
///
/// A bare key needs `=` (blanks allowed around it) or a `:` right after it, so prose such as
/// "Unexpected token : in JSON" is not a pair; a quoted key may have blanks before `:`/`=`. The
/// key class matches exactly what [`is_key_char`] accepts.
const KV_RE: &str = r#"(?x)
    ^ (?P<key> [\p{Alphabetic}\p{N}_.\-]+ )
    (?:
        \\?["'] [\ \t]* [:=] [\ \t]*
      | [\ \t]* = [\ \t]*
      | (?P<colon> : ) [\ \t]*
    )
    (?P<scheme> (?i: bearer | basic | digest | negotiate | token ) [\ \t]+ )?
    (?:
        \\" (?P<v1> (?: [^"\\\n] | \\[^"\n] )* ) \\"
      | " (?P<v2> (?: [^"\\\n] | \\. )* ) "
      | ' (?P<v3> (?: [^'\\\n] | \\. )* ) '
      | \\?["']? (?P<v4> (?: [^\s,;&"'\\] | \\[^"'\s] )+ )
    )"#;

/// Error building a [`Sanitizer`] from configuration.
#[derive(Debug, thiserror::Error)]
pub enum SanitizeError {
    #[error("sanitize.patterns[{index}]: invalid regex: {source}")]
    BadPattern { index: usize, source: regex::Error },
    #[error(
        "sanitize.patterns[{index}]: the pattern matches the redaction marker \"[REDACTED]\" \
         itself, so redacted output would be redacted again"
    )]
    PatternMatchesMarker { index: usize },
    #[error("sanitize.keys[{index}]: {reason}")]
    BadKey { index: usize, reason: &'static str },
    #[error("sanitize.keys: the key list does not compile into a matcher: {0}")]
    KeysTooComplex(String),
    /// A built-in rule failed to compile: a bug, not a configuration problem.
    #[error("sanitize: built-in matcher failed to compile: {0}")]
    Builtin(String),
}

/// Redacts secrets from event text and context JSON. Built once at start, `Send + Sync`.
pub struct Sanitizer {
    /// Prefilter for decoded text.
    text_prefilter: Prefilter,
    /// Prefilter for escaped JSON text: the text triggers, their escaped spellings and `\u`.
    escaped_prefilter: Prefilter,
    /// Matches a (decoded JSON) key that is sensitive; `None` when `sanitize.keys` is empty.
    key_re: Option<Regex>,
    kv_re: Regex,
    auth_re: Regex,
    url_re: Regex,
    shapes_re: Regex,
    user: Vec<Regex>,
    key_count: usize,
}

impl fmt::Debug for Sanitizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sanitizer")
            .field("keys", &self.key_count)
            .field("patterns", &self.user.len())
            .finish_non_exhaustive()
    }
}

impl Sanitizer {
    /// `keys`: sensitive key words (config `sanitize.keys`, defaults [`DEFAULT_KEYS`]). A JSON/text
    /// key is sensitive if, lowercased with `-`/`_`/`.` removed, it contains a normalized key word
    /// (so "X-Api-Key", "apiKey", "db_password", "refresh_token" match). In text (and to decide
    /// whether a context is inspected at all) a key word is found by the prefilter, i.e.
    /// contiguous or split where the configured word has a separator; see the module docs.
    /// `patterns`: extra user regexes (config `sanitize.patterns`); every match is replaced by
    /// [`REDACTED`].
    ///
    /// Errors name the config key and index: a blank, over-long or control-character key word,
    /// a pattern that does not compile or that matches the marker itself.
    pub fn new(keys: &[String], patterns: &[String]) -> Result<Sanitizer, SanitizeError> {
        let mut normalized: Vec<String> = Vec::with_capacity(keys.len());
        let mut triggers: Vec<Trigger> = SHAPE_TRIGGERS
            .iter()
            .map(|&(literal, family, boundary)| Trigger {
                literal: literal.to_owned(),
                family,
                boundary,
            })
            .collect();
        for (index, key) in keys.iter().enumerate() {
            if key.len() > MAX_KEY_LEN {
                return Err(SanitizeError::BadKey {
                    index,
                    reason: "longer than 64 bytes",
                });
            }
            if key.chars().any(char::is_control) {
                return Err(SanitizeError::BadKey {
                    index,
                    reason: "contains a control character",
                });
            }
            let norm = normalize_key(key);
            if norm.trim().is_empty() {
                return Err(SanitizeError::BadKey {
                    index,
                    reason: "blank once '-', '_' and '.' are removed (it would match every key)",
                });
            }
            // Spellings in text: the parts joined by nothing or by one kind of separator.
            let parts: Vec<String> = key
                .split(KEY_SEPARATORS)
                .filter(|p| !p.is_empty())
                .map(str::to_lowercase)
                .collect();
            for sep in ["", "_", "-", "."] {
                triggers.push(Trigger {
                    literal: parts.join(sep),
                    family: KEY,
                    boundary: false,
                });
            }
            if !normalized.contains(&norm) {
                normalized.push(norm);
            }
        }

        let key_re = if normalized.is_empty() {
            None
        } else {
            let alt = normalized
                .iter()
                .map(|k| key_fragment(k))
                .collect::<Vec<_>>()
                .join("|");
            Some(
                Regex::new(&format!("(?i:{alt})"))
                    .map_err(|e| SanitizeError::KeysTooComplex(e.to_string()))?,
            )
        };

        let mut escaped_triggers = triggers.clone();
        for t in &triggers {
            let literal = escaped_spelling(&t.literal);
            if literal != t.literal {
                escaped_triggers.push(Trigger { literal, ..*t });
            }
        }

        let mut user = Vec::with_capacity(patterns.len());
        for (index, p) in patterns.iter().enumerate() {
            let re = Regex::new(p).map_err(|source| SanitizeError::BadPattern { index, source })?;
            if re.is_match(REDACTED) {
                return Err(SanitizeError::PatternMatchesMarker { index });
            }
            user.push(re);
        }

        Ok(Sanitizer {
            text_prefilter: Prefilter::new(triggers, false)?,
            escaped_prefilter: Prefilter::new(escaped_triggers, true)?,
            key_re,
            kv_re: builtin_regex(KV_RE)?,
            auth_re: builtin_regex(AUTH_RE)?,
            url_re: builtin_regex(URL_RE)?,
            shapes_re: builtin_regex(SHAPES_RE)?,
            user,
            key_count: normalized.len(),
        })
    }

    /// Whether a whole client line (raw JSON text) certainly holds nothing to redact: no trigger
    /// in its escaped text and no user patterns configured. One prefilter pass over the line
    /// then replaces the per-field passes; escapes that could hide a trigger are triggers
    /// themselves, so a clean line means every decoded field is clean too.
    pub fn line_is_clean(&self, raw_line: &str) -> bool {
        self.user.is_empty() && !self.escaped_prefilter.any(raw_line)
    }

    /// Free text (message, stack lines, string values). Returns `None` when nothing changed —
    /// the fast, allocation-free, common path.
    pub fn redact_text(&self, s: &str) -> Option<String> {
        self.redact_text_with(s, true)
    }

    /// [`redact_text`](Self::redact_text); `builtin: false` skips the built-in rules in the
    /// first pass, for text already known to hold no trigger (only user patterns can match).
    fn redact_text_with(&self, s: &str, builtin: bool) -> Option<String> {
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

    /// Same as [`redact_text`](Self::redact_text), but `s` is the *body of a JSON string literal*
    /// (still escaped: `\n`, `\"`, `\uXXXX`). Returns the new escaped body (valid inside quotes)
    /// or `None`. Secrets spelled with escapes (`pass\u0077ord=x`, `Bearer\u0020x`) are found: a
    /// prefilter hit (any `\u` is one) unescapes, redacts the decoded text and re-escapes it.
    /// Invalid escapes are kept as literal text and lone surrogates become U+FFFD — only in
    /// output that was rewritten anyway.
    pub fn redact_escaped(&self, s: &str) -> Option<String> {
        // No trigger in the escaped text means none in the decoded text either: escapes that
        // could hide one (`\u`, and `\/` `\"` `\\` inside a trigger) are triggers themselves.
        let builtin = self.escaped_prefilter.any(s);
        if !builtin && self.user.is_empty() {
            return None;
        }
        let redacted = if memchr(b'\\', s.as_bytes()).is_some() {
            self.redact_text_with(&json::unescape_lenient(s), builtin)?
        } else {
            self.redact_text_with(s, builtin)?
        };
        Some(json::escaped(&redacted))
    }

    /// `raw` is a raw JSON value (the client's `context`). Values under sensitive keys become
    /// `"[REDACTED]"` (strings, numbers, objects, arrays; `null` and booleans carry no secret and
    /// are kept); every key and every string value passes through
    /// [`redact_text`](Self::redact_text). Returns the re-serialized (compact) JSON, or `None` if
    /// unchanged. Fast path: prefilter on the raw text, no parse.
    ///
    /// If the slow path cannot parse `raw` (invalid, or nested deeper than serde_json's limit of
    /// 128), the whole text is unescaped, redacted as free text and returned as one JSON *string*
    /// — never passed through unredacted, and still valid JSON for the record.
    pub fn redact_json(&self, raw: &str) -> Option<String> {
        let builtin = self.escaped_prefilter.any(raw);
        if !builtin && self.user.is_empty() {
            return None;
        }
        // Pass 1 only checks (no output, no number formatting): even on the slow path the
        // usual outcome is "unchanged" (a trigger without a secret, or user patterns that do
        // not match). Pass 2 writes, and runs only when there is something to redact.
        match self.walk_json(raw, builtin, None) {
            Some(false) => None,
            Some(true) => {
                let mut out = String::with_capacity(raw.len() + REDACTED.len());
                self.walk_json(raw, builtin, Some(&mut out)).map(|_| out)
            }
            None => {
                let decoded = json::unescape_lenient(raw);
                let text = self.redact_text(&decoded).unwrap_or(decoded);
                Some(format!("\"{}\"", json::escaped(&text)))
            }
        }
    }

    /// Walks the JSON value `raw`, writing the redacted copy into `out` if given. Returns
    /// whether anything is redacted, or `None` if `raw` does not parse. `builtin: false` (no
    /// trigger anywhere in `raw`) checks only the user patterns.
    fn walk_json(&self, raw: &str, builtin: bool, out: Option<&mut String>) -> Option<bool> {
        let mut w = JsonWriter {
            san: self,
            builtin,
            out,
            changed: false,
        };
        let mut de = serde_json::Deserializer::from_str(raw);
        let seed = ValueSeed {
            w: &mut w,
            comma: false,
        };
        seed.deserialize(&mut de).and_then(|()| de.end()).ok()?;
        Some(w.changed)
    }

    /// Whether a decoded JSON key names a secret: the full normalization, so `Pass_Word` counts.
    fn is_sensitive_key(&self, key: &str) -> bool {
        self.key_re.as_ref().is_some_and(|re| re.is_match(key))
    }

    /// One pass of [`redact_text`](Self::redact_text).
    fn redact_pass(&self, s: &str, builtin: bool) -> Option<String> {
        let mut families = 0u8;
        let mut key_hits: Vec<usize> = Vec::new(); // allocates only on a key-word hit
        if builtin {
            self.text_prefilter.scan(s, |family, at| {
                families |= family;
                if family & KEY != 0 {
                    key_hits.push(at);
                }
                false
            });
        }
        // One `is_match` per pattern rather than a `RegexSet`: a single regex keeps the regex
        // crate's literal optimisations (`\b\d{3}-\d{2}-\d{4}\b` on 875 bytes: ~85 ns alone,
        // ~1.9 µs in a set).
        let user_hit = self.user.iter().any(|re| re.is_match(s));
        if families == 0 && !user_hit {
            return None;
        }
        let mut spans = Vec::new();
        if families & KEY != 0 {
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
        if user_hit {
            for re in &self.user {
                for m in re.find_iter(s) {
                    push_span(s, &mut spans, m.range());
                }
            }
        }
        apply_spans(s, spans)
    }

    /// Values of `key=value` pairs whose key token contains one of the key-word hits.
    fn kv_spans(&self, s: &str, mut key_hits: Vec<usize>, spans: &mut Vec<Range<usize>>) {
        key_hits.sort_unstable();
        // End of the last token examined: later hits inside it are the same token. This keeps a
        // huge token with many hits (`passwordpasswordpassword…`) linear.
        let mut covered = 0;
        for at in key_hits {
            if at < covered {
                continue;
            }
            let start = token_start(s, at);
            let end = token_end(s, at);
            covered = end;
            let (Some(key), Some(rest)) = (s.get(start..end), s.get(start..)) else {
                continue;
            };
            let after_key = rest.get(key.len()..).unwrap_or_default();
            if is_error_name(key) || is_source_location(key, after_key) {
                continue;
            }
            let Some(caps) = self.kv_re.captures(rest) else {
                continue;
            };
            if let Some(m) = caps.get(0) {
                covered = covered.max(start + m.end());
            }
            if let Some(span) = kv_value_span(rest, &caps) {
                // Key words inside a redacted value need no look of their own.
                covered = covered.max(start + span.end);
                push_span(s, spans, start + span.start..start + span.end);
            }
        }
    }
}

/// `InvalidTokenError: jwt malformed`, `TokenExpiredError: …`: an error class, not a key.
fn is_error_name(key: &str) -> bool {
    key.ends_with("Error") || key.ends_with("Exception")
}

/// `token.js:42:13)`, `TokenService.java:42)`, `token.rb:42:in`, `token.go:42 +0x1d`: a file
/// name followed by a line number, not a key. `after` is the text after the token.
fn is_source_location(key: &str, after: &str) -> bool {
    let Some(line) = after.strip_prefix(':') else {
        return false;
    };
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    key.contains('.')
        && digits > 0
        && matches!(
            line.as_bytes().get(digits),
            None | Some(b':' | b')' | b',' | b' ' | b'\t' | b'\r' | b'\n')
        )
}

/// Start of the key token around a key-word hit at `at`: back over [`is_key_char`]s.
fn token_start(s: &str, at: usize) -> usize {
    let Some(before) = s.get(..at) else { return at };
    before
        .char_indices()
        .rev()
        .take_while(|&(_, c)| is_key_char(c))
        .last()
        .map_or(at, |(i, _)| i)
}

/// End of the key token around a key-word hit at `at`.
fn token_end(s: &str, at: usize) -> usize {
    let Some(after) = s.get(at..) else { return at };
    at + after.find(|c: char| !is_key_char(c)).unwrap_or(after.len())
}

/// Characters of a key token in text; the same set as the `key` group of [`KV_RE`].
fn is_key_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// The value span of a `KV_RE` match in `s`, or `None` when the match is not a secret.
fn kv_value_span(s: &str, caps: &Captures<'_>) -> Option<Range<usize>> {
    let key = caps.name("key")?.as_str();
    let (group, value) = ["v1", "v2", "v3", "v4"]
        .iter()
        .find_map(|g| caps.name(g).map(|m| (*g, m)))?;
    let mut span = value.range();
    // A `Cookie:` header holds several `name=value;` pairs: redact to the end of the line (or
    // the quote closing the string it is in).
    if group == "v4" && caps.name("colon").is_some() && key.to_ascii_lowercase().contains("cookie")
    {
        let rest = s.as_bytes().get(span.end..).unwrap_or_default();
        let mut stop = rest
            .iter()
            .position(|&b| matches!(b, b'\n' | b'\r' | b'"'))
            .unwrap_or(rest.len());
        // Keep the `\` of a `\"` that closes double-encoded JSON.
        if rest.get(stop) == Some(&b'"') && stop > 0 && rest.get(stop - 1) == Some(&b'\\') {
            stop -= 1;
        }
        span.end += stop;
    }
    Some(span)
}

/// True if `b64` (standard or URL-safe alphabet) decodes to bytes containing `:`, as the
/// `user:password` of HTTP Basic auth does.
fn is_basic_credential(b64: &str) -> bool {
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for b in b64.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => return false,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            if (acc >> bits) & 0xff == u32::from(b':') {
                return true;
            }
            acc &= (1 << bits) - 1;
        }
    }
    false
}

/// Lowercase, separators removed: `X-Api-Key` → `xapikey`.
fn normalize_key(key: &str) -> String {
    key.chars()
        .filter(|c| !KEY_SEPARATORS.contains(c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Regex for a normalized key word that allows separators between its characters, so it matches
/// exactly the keys whose normalized form contains the word.
fn key_fragment(norm: &str) -> String {
    let mut out = String::with_capacity(norm.len() * 8);
    for (i, c) in norm.chars().enumerate() {
        if i > 0 {
            out.push_str(r"[-_.]*");
        }
        out.push_str(&regex::escape(c.encode_utf8(&mut [0; 4])));
    }
    out
}

fn builtin_regex(pattern: &str) -> Result<Regex, SanitizeError> {
    Regex::new(pattern).map_err(|e| SanitizeError::Builtin(e.to_string()))
}

/// How a trigger literal can appear in escaped JSON text besides itself (`://` → `:\/\/`).
fn escaped_spelling(t: &str) -> String {
    t.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('/', "\\/")
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

/// A prefilter literal.
#[derive(Clone)]
struct Trigger {
    /// Lowercase.
    literal: String,
    /// Rule families ([`KEY`], [`AUTH`], [`URL`], [`SHAPE`]), a bit set.
    family: u8,
    /// The family's regex needs a word boundary before the literal (`\bsk-`), so `task-` is no
    /// hit; see [`boundary_before`].
    boundary: bool,
}

/// The trigger search: one case-sensitive Aho-Corasick automaton over lowercase literals, run on
/// an ASCII-lowercased copy of the input made in a stack buffer (see the module docs for why).
struct Prefilter {
    ac: AhoCorasick,
    /// Per automaton pattern: family and boundary flag.
    triggers: Vec<(u8, bool)>,
    /// Longest literal minus one: how far consecutive chunks overlap.
    overlap: usize,
    /// For escaped text: finds `\u`, which is a hit of family [`ESCAPE`].
    unicode_escape: Option<memmem::Finder<'static>>,
}

impl Prefilter {
    fn new(mut triggers: Vec<Trigger>, escaped: bool) -> Result<Prefilter, SanitizeError> {
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
    fn any(&self, s: &str) -> bool {
        self.scan(s, |_, _| true)
    }

    /// Calls `hit(families, position in s)` for every trigger occurrence (ASCII-case-insensitive;
    /// occurrences in the overlap of two chunks may be reported twice) until `hit` returns true.
    /// Returns whether it did.
    fn scan(&self, s: &str, mut hit: impl FnMut(u8, usize) -> bool) -> bool {
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

/// State of a JSON walk: redacts, and writes the result if it has somewhere to write it.
struct JsonWriter<'s, 'o> {
    san: &'s Sanitizer,
    /// The raw JSON has a trigger, so the built-in rules and key checks apply.
    builtin: bool,
    out: Option<&'o mut String>,
    changed: bool,
}

impl JsonWriter<'_, '_> {
    fn push(&mut self, s: &str) {
        if let Some(out) = self.out.as_deref_mut() {
            out.push_str(s);
        }
    }

    fn push_fmt(&mut self, args: fmt::Arguments<'_>) {
        if let Some(out) = self.out.as_deref_mut() {
            let _ = out.write_fmt(args); // writing to a String cannot fail
        }
    }

    /// A key or string value: quoted, after [`Sanitizer::redact_text`].
    fn push_text(&mut self, s: &str) {
        let redacted = self.san.redact_text_with(s, self.builtin);
        self.changed |= redacted.is_some();
        if let Some(out) = self.out.as_deref_mut() {
            out.push('"');
            json::push_escaped(out, redacted.as_deref().unwrap_or(s));
            out.push('"');
        }
    }

    /// `"[REDACTED]"` in place of a value; `was_marker`: the value already was that string.
    fn push_redacted(&mut self, was_marker: bool) {
        self.changed |= !was_marker;
        self.push("\"");
        self.push(REDACTED);
        self.push("\"");
    }
}

/// Copies one JSON value (after a `,` if `comma`), redacting keys, strings and the values of
/// sensitive keys.
struct ValueSeed<'a, 's, 'o> {
    w: &'a mut JsonWriter<'s, 'o>,
    comma: bool,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.comma {
            self.w.push(",");
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.w.push("null");
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.w.push(if v { "true" } else { "false" });
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.w.push_fmt(format_args!("{v}"));
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.w.push_fmt(format_args!("{v}"));
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        // Finite (JSON has no NaN/inf), so this is always `Some`; shortest round-trip form.
        match serde_json::Number::from_f64(v) {
            Some(n) => self.w.push_fmt(format_args!("{n}")),
            None => self.w.push("null"),
        }
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.w.push_text(v);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.w.push("[");
        let mut comma = false;
        while seq
            .next_element_seed(ValueSeed {
                w: &mut *self.w,
                comma,
            })?
            .is_some()
        {
            comma = true;
        }
        self.w.push("]");
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.w.push("{");
        let mut comma = false;
        while let Some(json::Key(key)) = map.next_key()? {
            if comma {
                self.w.push(",");
            }
            comma = true;
            self.w.push_text(&key);
            self.w.push(":");
            if self.w.builtin && self.w.san.is_sensitive_key(&key) {
                map.next_value_seed(MaskSeed(&mut *self.w))?;
            } else {
                let w = &mut *self.w;
                map.next_value_seed(ValueSeed { w, comma: false })?;
            }
        }
        self.w.push("}");
        Ok(())
    }
}

/// Consumes the value of a sensitive key and writes `"[REDACTED]"` in its place (`null` and
/// booleans, which cannot hold a secret, are kept).
struct MaskSeed<'a, 's, 'o>(&'a mut JsonWriter<'s, 'o>);

impl<'de> DeserializeSeed<'de> for MaskSeed<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MaskSeed<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.push("null");
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.0.push(if v { "true" } else { "false" });
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.0.push_redacted(false);
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.0.push_redacted(false);
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.0.push_redacted(false);
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        // Already the marker: unchanged, so a second pass returns `None`.
        self.0.push_redacted(v == REDACTED);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        self.0.push_redacted(false);
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        self.0.push_redacted(false);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn san() -> Sanitizer {
        let keys: Vec<String> = DEFAULT_KEYS.iter().map(|k| k.to_string()).collect();
        Sanitizer::new(&keys, &[]).unwrap()
    }

    fn text(s: &str) -> String {
        san().redact_text(s).unwrap_or_else(|| s.to_owned())
    }

    /// A JS error event's text (message + stack), ~875 bytes, no secret.
    const EVENT: &str = "TypeError: Cannot read properties of undefined (reading 'mapItems')\n    at Parser.parseStatement (/srv/checkout/node_modules/@babel/parser/lib/index.js:12913:17)\n    at Parser.parseBlockOrModuleBlockBody (/srv/checkout/node_modules/@babel/parser/lib/index.js:13502:25)\n    at CheckoutService.applyDiscount (/srv/checkout/src/services/checkout-service.ts:184:31)\n    at async CartController.submit (/srv/checkout/src/controllers/cart-controller.ts:77:9)\n    at async Layer.handle [as handle_request] (/srv/checkout/node_modules/express/lib/router/layer.js:95:5)\n    at async next (/srv/checkout/node_modules/express/lib/router/route.js:149:13)\n    at async Route.dispatch (/srv/checkout/node_modules/express/lib/router/route.js:119:3)\n    at async requestHandler (/srv/checkout/src/http/server.ts:61:14) request_id=4f1c2a9e user=1842 cart=17 items=3 total=129.90 currency=EURO";

    #[test]
    fn key_value_shapes() {
        let cases = [
            (
                "login failed password=hunter2 for bob",
                "login failed password=[REDACTED] for bob",
            ),
            ("password: hunter2", "password: [REDACTED]"),
            (
                "password = \"hunter 2\" rest",
                "password = \"[REDACTED]\" rest",
            ),
            (
                "{\"password\": \"hunter2\", \"user\": \"bob\"}",
                "{\"password\": \"[REDACTED]\", \"user\": \"bob\"}",
            ),
            ("password='hunter2'", "password='[REDACTED]'"),
            (
                "GET /cb?token=abc&x=1 failed",
                "GET /cb?token=[REDACTED]&x=1 failed",
            ),
            ("a=1, secret=s3; b=2", "a=1, secret=[REDACTED]; b=2"),
            (
                "Authorization: Bearer abc.def",
                "Authorization: Bearer [REDACTED]",
            ),
            (
                "Cookie: sid=abc; theme=dark\nnext",
                "Cookie: [REDACTED]\nnext",
            ),
            (
                "Server=db;Uid=sa;Pwd=Sup3r!;",
                "Server=db;Uid=sa;Pwd=[REDACTED];",
            ),
            // Double-encoded JSON inside a message.
            (
                r#"body={\"password\":\"hunter2\"}"#,
                r#"body={\"password\":\"[REDACTED]\"}"#,
            ),
            // Python dict repr.
            ("{'password': 'hunter2'}", "{'password': '[REDACTED]'}"),
            // A host:port under a key-word name is not a source location.
            ("token:12345", "token:[REDACTED]"),
        ];
        for (input, want) in cases {
            assert_eq!(text(input), want, "input: {input}");
        }
    }

    #[test]
    fn key_matching_rules() {
        for key in [
            "X-Api-Key",
            "apiKey",
            "API_KEY",
            "api.key",
            "db_password",
            "refresh_token",
            "PassWord",
            "PASSWORD",
            "sessionId",
            "SESSION-ID",
            "clientSecret",
            "AWS_ACCESS_KEY_ID",
            "privateKey",
            "credentials",
            "x-auth-token",
        ] {
            let out = text(&format!("{key}=s3cr3tvalue"));
            assert_eq!(out, format!("{key}=[REDACTED]"), "key {key}");
            let s = san();
            assert!(s.is_sensitive_key(key), "json key {key}");
        }
        for key in ["user", "username", "keyboard", "passport", "tok", "session"] {
            assert_eq!(text(&format!("{key}=visible")), format!("{key}=visible"));
            assert!(!san().is_sensitive_key(key), "json key {key}");
        }
    }

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
    fn custom_keys_replace_defaults() {
        let s = Sanitizer::new(&["ssn".to_owned(), "pin_code".to_owned()], &[]).unwrap();
        assert_eq!(
            s.redact_text("ssn=123-45-6789").as_deref(),
            Some("ssn=[REDACTED]")
        );
        assert_eq!(
            s.redact_text("PinCode: 1234").as_deref(),
            Some("PinCode: [REDACTED]")
        );
        assert_eq!(s.redact_text("password=x"), None);
        // Non-ASCII key words; a key word that is also a shape trigger keeps both rules.
        let s = Sanitizer::new(&["contraseña".to_owned(), "basic".to_owned()], &[]).unwrap();
        assert_eq!(
            s.redact_text("Contraseña=x").as_deref(),
            Some("Contraseña=[REDACTED]")
        );
        assert_eq!(
            s.redact_text("basic_auth=on").as_deref(),
            Some("basic_auth=[REDACTED]")
        );
        assert_eq!(
            s.redact_text("Basic dXNlcjpwYXNz").as_deref(),
            Some("Basic [REDACTED]")
        );
        // Shapes stay on without keys.
        let s = Sanitizer::new(&[], &[]).unwrap();
        assert_eq!(s.redact_text("password=x"), None);
        assert_eq!(
            s.redact_text("Bearer abcdef").as_deref(),
            Some("Bearer [REDACTED]")
        );
        assert!(matches!(
            Sanitizer::new(&["-_.".to_owned()], &[]),
            Err(SanitizeError::BadKey { index: 0, .. })
        ));
        assert!(matches!(
            Sanitizer::new(&["ok".to_owned(), "x".repeat(65)], &[]),
            Err(SanitizeError::BadKey { index: 1, .. })
        ));
    }

    #[test]
    fn bearer_and_basic() {
        assert_eq!(
            text("sent Bearer abc123.x-y_z~+/= to api"),
            "sent Bearer [REDACTED] to api"
        );
        assert_eq!(text("BEARER abc"), "BEARER [REDACTED]");
        // base64("user:pass")
        assert_eq!(text("Basic dXNlcjpwYXNz"), "Basic [REDACTED]");
        // "basic" in prose is not a credential.
        assert_eq!(san().redact_text("basic settings are invalid"), None);
        assert_eq!(san().redact_text("Basic authentication failed"), None);
        assert_eq!(text("Basic Basic dXNlcjpwYXNz"), "Basic Basic [REDACTED]");
    }

    #[test]
    fn url_credentials() {
        assert_eq!(
            text("connect postgres://user:pa55@db:5432/x failed"),
            "connect postgres://[REDACTED]@db:5432/x failed"
        );
        assert_eq!(
            text("redis://:p@ss@cache:6379"),
            "redis://[REDACTED]@cache:6379"
        );
        assert_eq!(
            text("clone https://ghtoken@github.com/a/b"),
            "clone https://[REDACTED]@github.com/a/b"
        );
        assert_eq!(
            san().redact_text("GET https://example.com/a?b=c@d failed"),
            None
        );
    }

    #[test]
    fn token_shapes() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        let cases = [
            format!("verify {jwt} failed"),
            "key AKIAIOSFODNN7EXAMPLE used".to_owned(),
            "tmp ASIAIOSFODNN7EXAMPLE used".to_owned(),
            format!("push ghp_{} denied", "a1B2".repeat(9)),
            format!("pat github_pat_11ABCDEFG0{}", "x".repeat(40)),
            "slack xoxb-1234567890-abcdefghij rejected".to_owned(),
            format!("openai sk-proj-{} quota", "Ab3".repeat(10)),
            format!("stripe sk_live_{} declined", "4eC39HqLyjWDarjtT1zdp7dc"),
        ];
        for input in &cases {
            let out = text(input);
            assert!(out.contains(REDACTED), "{input} -> {out}");
            for secret in [
                "eyJ",
                "AKIA",
                "ASIA",
                "ghp_",
                "github_pat_",
                "xoxb",
                "sk-proj",
                "sk_live",
            ] {
                assert!(!out.contains(secret), "{input} -> {out}");
            }
        }
        // Too short / not at a word start: not a token.
        assert_eq!(
            san().redact_text("task-runner-for-the-queue-workers-1 stopped"),
            None
        );
        assert_eq!(san().redact_text("sk-short"), None);
    }

    #[test]
    fn user_patterns() {
        let s = Sanitizer::new(
            &[],
            &[
                r"ACME-\d{6}".to_owned(),
                r"\b\d{3}-\d{2}-\d{4}\b".to_owned(),
            ],
        )
        .unwrap();
        assert_eq!(
            s.redact_text("order ACME-123456 for 078-05-1120")
                .as_deref(),
            Some("order [REDACTED] for [REDACTED]")
        );
        assert_eq!(s.redact_text("nothing here"), None);
        // Escaped: the pattern sees decoded text.
        assert_eq!(
            s.redact_escaped(r"id\nACME\u002d123456").as_deref(),
            Some(r"id\n[REDACTED]")
        );
        assert_eq!(
            s.redact_json(r#"{"note":"ACME-123456"}"#).as_deref(),
            Some(r#"{"note":"[REDACTED]"}"#)
        );
        assert_eq!(s.redact_json(r#"{"note":"fine"}"#), None);
    }

    #[test]
    fn bad_user_pattern_names_its_index() {
        let err = Sanitizer::new(&[], &["ok".to_owned(), "(unclosed".to_owned()]).unwrap_err();
        assert!(matches!(err, SanitizeError::BadPattern { index: 1, .. }));
        assert!(
            err.to_string()
                .starts_with("sanitize.patterns[1]: invalid regex:"),
            "{err}"
        );
        let err = Sanitizer::new(&[], &["[A-Z]{5,}".to_owned()]).unwrap_err();
        assert!(
            err.to_string().starts_with("sanitize.patterns[0]:"),
            "{err}"
        );
    }

    #[test]
    fn json_nested_objects_and_arrays() {
        let s = san();
        let raw = r#"{"user":{"password":"x","name":"bob"},"headers":{"Authorization":"Bearer abc"},"list":[{"token":"t1"},"Bearer zzz",3]}"#;
        assert_eq!(
            s.redact_json(raw).as_deref(),
            Some(
                r#"{"user":{"password":"[REDACTED]","name":"bob"},"headers":{"Authorization":"[REDACTED]"},"list":[{"token":"[REDACTED]"},"Bearer [REDACTED]",3]}"#
            )
        );
    }

    #[test]
    fn json_non_string_values_under_sensitive_keys() {
        let s = san();
        let raw = r#"{"pin_token":1234,"secret":{"a":[1,{"b":2}]},"apiKeys":["k1","k2"],"password":null,"has_token":true,"n":-1.5,"ok":[]}"#;
        assert_eq!(
            s.redact_json(raw).as_deref(),
            Some(
                r#"{"pin_token":"[REDACTED]","secret":"[REDACTED]","apiKeys":"[REDACTED]","password":null,"has_token":true,"n":-1.5,"ok":[]}"#
            )
        );
    }

    #[test]
    fn json_escaped_keys_values_and_key_text() {
        let s = san();
        // `pass\u0077ord` is "password".
        assert_eq!(
            s.redact_json(r#"{"pass\u0077ord":"x","msg":"db_password=y"}"#)
                .as_deref(),
            Some(r#"{"password":"[REDACTED]","msg":"db_password=[REDACTED]"}"#)
        );
        // A secret used as a key.
        assert_eq!(
            s.redact_json(r#"{"postgres://u:p@h/db":1}"#).as_deref(),
            Some(r#"{"postgres://[REDACTED]@h/db":1}"#)
        );
        // Scalars and unchanged input.
        assert_eq!(
            s.redact_json(r#""Bearer abc""#).as_deref(),
            Some(r#""Bearer [REDACTED]""#)
        );
        assert_eq!(s.redact_json(r#"{"path":"/cart","n":3}"#), None);
        assert_eq!(
            s.redact_json(r#"{"word":"tokenize","e":"caf\u00e9"}"#),
            None
        );
    }

    #[test]
    fn json_unparseable_is_redacted_as_text() {
        let s = san();
        let out = s.redact_json(r#"{"password": "x", broken"#).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v.as_str(), Some(r#"{"password": "[REDACTED]", broken"#));
        // Deeper than serde_json's recursion limit.
        let deep = format!("{}\"token=abc\"{}", "[".repeat(200), "]".repeat(200));
        let out = s.redact_json(&deep).unwrap();
        assert!(!out.contains("abc"));
        assert!(serde_json::from_str::<serde_json::Value>(&out).is_ok());
    }

    #[test]
    fn escaped_input() {
        let s = san();
        let cases = [
            (
                r"at x\npass\u0077ord=hunter2\n",
                r"at x\npassword=[REDACTED]\n",
            ),
            (r"Bearer\u0020abc", r"Bearer [REDACTED]"),
            (
                r#"cfg {\"token\":\"abc\"} end"#,
                r#"cfg {\"token\":\"[REDACTED]\"} end"#,
            ),
            (
                r"url postgres:\/\/u:p@db\/x",
                r"url postgres://[REDACTED]@db/x",
            ),
            (
                r"line\neyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc",
                r"line\n[REDACTED]",
            ),
            (r"\u0041KIAIOSFODNN7EXAMPLE", r"[REDACTED]"),
        ];
        for (input, want) in cases {
            let out = s.redact_escaped(input);
            assert_eq!(out.as_deref(), Some(want), "input: {input}");
            // The result is a valid string body.
            let quoted = format!("\"{}\"", out.unwrap());
            assert!(serde_json::from_str::<String>(&quoted).is_ok(), "{quoted}");
        }
        assert_eq!(s.redact_escaped(r"plain\n\tat f (a.js:1:2)\u00e9"), None);
        assert_eq!(s.redact_escaped(r"tokenize failed\n"), None);
    }

    #[test]
    fn escaped_input_never_panics_and_stays_valid() {
        let s = san();
        for input in [
            r"\ud800 password=x",
            r"\udc00\ud800\u",
            r"\u12",
            r"\uzzzz token=1",
            "\\",
            r"token=a\",
            r"\x password=\q",
            r"\ud83d\ude00 secret=y \ud83d",
            "tab\t raw \u{1} ctrl password=x",
        ] {
            if let Some(out) = s.redact_escaped(input) {
                let quoted = format!("\"{out}\"");
                let decoded: String = serde_json::from_str(&quoted).unwrap();
                assert!(decoded.contains(REDACTED), "{input} -> {out}");
            }
        }
        assert_eq!(
            json::unescape_lenient(r"\ud83d\ude00\ud800x\u00"),
            "\u{1F600}\u{FFFD}x\\u00"
        );
    }

    #[test]
    fn no_false_positive_on_ordinary_error_text() {
        let s = san();
        for t in [
            "Cannot read properties of undefined (reading 'tokenize')",
            "SyntaxError: Unexpected token < in JSON at position 0",
            "SyntaxError: Unexpected token : in JSON at position 5",
            "    at verifyToken (/app/src/auth/token.js:42:13)",
            "\tat com.acme.TokenService.refresh(TokenService.java:88)",
            "/srv/app/password-reset.go:42 +0x1d",
            "/app/lib/token.rb:42:in `verify'",
            "  File \"/app/auth/password.py\", line 12, in check",
            "C:\\app\\token.js:10:5",
            "JsonWebTokenError: jwt malformed",
            "TokenExpiredError: jwt expired",
            "secret-store.internal:8200 unreachable",
            "the session token was rotated",
            "Asia/Tokyo is not a valid zone",
            "Authorization header missing",
            EVENT,
        ] {
            assert_eq!(s.redact_text(t), None, "{t}");
        }
        // A key word followed by `: ` is a pair, even in prose: the value is redacted.
        assert_eq!(text("invalid token: abc123"), "invalid token: [REDACTED]");
        assert_eq!(
            text("InvalidTokenError: password=abc"),
            "InvalidTokenError: password=[REDACTED]"
        );
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

    #[test]
    fn none_when_nothing_changes() {
        let s = san();
        assert_eq!(s.redact_text(""), None);
        assert_eq!(s.redact_text("plain"), None);
        assert_eq!(s.redact_text("password="), None);
        assert_eq!(s.redact_text("password=[REDACTED]"), None);
        assert_eq!(s.redact_escaped(""), None);
        assert_eq!(s.redact_json("{}"), None);
        assert_eq!(s.redact_json(r#"{"password":"[REDACTED]"}"#), None);
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

    #[test]
    fn sanitizer_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Sanitizer>();
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
