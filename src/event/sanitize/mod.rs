//! Secret redaction for event text (`message`, `name`, `code`, `service`, `stack`, the peer's
//! process name) and the client's `context`, `tags` and unmapped fields (JSON).
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
//! `bearer`, `basic`, `://`, `eyj`, `akia`, `ghp_`, `xox`, `sk-`, `private key`, `key=`, a `pass`
//! segment, … — plus, for escaped input, the escaped spellings (`:\/\/`) and a `memmem` search
//! for `\u`; plus three scans that are not literal searches: a digit run that may be a card
//! number (`cards`), a zero-width character (`invisible`), an `@` when emails are redacted.
//! Only on a hit do the regexes run (or the JSON get parsed), and only those of the rule
//! families that were hit.
//!
//! How the search is made ASCII-case-insensitive, and the alternatives that were measured, are
//! recorded in the `prefilter` module. Limits, documented for users in `docs/sanitizing.md`: a
//! key word is a trigger only contiguous or split where the configured word has a separator
//! (`sec_ret=` is not a pair for the key `secret`; a JSON key like that is caught only when the
//! object is inspected because of another trigger, as keys then get the full normalization;
//! `pass_word=` is caught through its `pass` segment), and case-insensitivity is ASCII-only.
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
//!
//! Zero-width characters are removed before the rules run (`invisible`), so the marker after
//! a removal is no obstacle to idempotence either: the output has none left to remove.
//!
//! # Layout
//! * this file: [`Sanitizer`], its construction from configuration and its entry points;
//! * `rules`: the built-in rules around keys: families, regexes, key normalization;
//! * `shapes`: secrets known by their form: trigger literals and regexes;
//! * `prefilter`: the trigger search, the fast path of every entry point;
//! * `cards`: payment card numbers (their prefilter scan, the exact rule, Luhn);
//! * `invisible`: zero-width characters;
//! * `text`: redaction of decoded text: the passes, the spans of each rule family, replacement;
//! * `json_walk`: the walk over a raw JSON value (the `context`) with serde visitors.

mod cards;
mod invisible;
mod json_walk;
mod prefilter;
mod rules;
mod shapes;
mod text;

use std::fmt;

use crate::json;
use memchr::memchr;
use regex::Regex;

use prefilter::{escaped_spelling, Prefilter, Trigger};
use rules::{
    builtin_regex, is_pass_key, key_fragment, normalize_key, Boundary, AUTH_RE, KEY,
    KEY_SEPARATORS, KV_RE, PROSE_RE, URL_RE,
};
use shapes::{EMAIL_RE, KEYED_RE, SHAPES_RE, SHAPE_TRIGGERS};

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

/// Longest accepted key word, in bytes. Keeps the prefilter's chunk overlap (longest trigger - 1)
/// far below `PREFILTER_CHUNK` (in `prefilter`); real key names are a few dozen bytes at most.
const MAX_KEY_LEN: usize = 64;

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
    keyed_re: Regex,
    prose_re: Regex,
    /// `Some` when `sanitize.emails` is on.
    email_re: Option<Regex>,
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
    /// [`REDACTED`]. `emails`: redact the local part of email addresses (`sanitize.emails`).
    ///
    /// Errors name the config key and index: a blank, over-long, control- or zero-width
    /// character key word, a pattern that does not compile or that matches the marker itself.
    pub fn new(
        keys: &[String],
        patterns: &[String],
        emails: bool,
    ) -> Result<Sanitizer, SanitizeError> {
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
            if key.chars().any(invisible::is_invisible) {
                return Err(SanitizeError::BadKey {
                    index,
                    reason: "contains a zero-width character",
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
                    boundary: Boundary::None,
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
            text_prefilter: Prefilter::new(triggers, false, emails)?,
            escaped_prefilter: Prefilter::new(escaped_triggers, true, emails)?,
            key_re,
            kv_re: builtin_regex(KV_RE)?,
            auth_re: builtin_regex(AUTH_RE)?,
            url_re: builtin_regex(URL_RE)?,
            shapes_re: builtin_regex(SHAPES_RE)?,
            keyed_re: builtin_regex(KEYED_RE)?,
            prose_re: builtin_regex(PROSE_RE)?,
            email_re: emails.then(|| builtin_regex(EMAIL_RE)).transpose()?,
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

    /// Whether a decoded JSON key names a secret: the full normalization, so `Pass_Word` counts;
    /// or a `pass` key (`db_pass`, built in).
    pub fn is_sensitive_key(&self, key: &str) -> bool {
        self.key_re.as_ref().is_some_and(|re| re.is_match(key)) || is_pass_key(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sanitizer with the default keys and no user patterns.
    pub(super) fn san() -> Sanitizer {
        let keys: Vec<String> = DEFAULT_KEYS.iter().map(|k| k.to_string()).collect();
        Sanitizer::new(&keys, &[], false).unwrap()
    }

    /// `text` after [`san`]'s [`Sanitizer::redact_text`], or unchanged.
    pub(super) fn text(s: &str) -> String {
        san().redact_text(s).unwrap_or_else(|| s.to_owned())
    }

    /// A JS error event's text (message + stack), ~875 bytes, no secret.
    pub(super) const EVENT: &str = "TypeError: Cannot read properties of undefined (reading 'mapItems')\n    at Parser.parseStatement (/srv/checkout/node_modules/@babel/parser/lib/index.js:12913:17)\n    at Parser.parseBlockOrModuleBlockBody (/srv/checkout/node_modules/@babel/parser/lib/index.js:13502:25)\n    at CheckoutService.applyDiscount (/srv/checkout/src/services/checkout-service.ts:184:31)\n    at async CartController.submit (/srv/checkout/src/controllers/cart-controller.ts:77:9)\n    at async Layer.handle [as handle_request] (/srv/checkout/node_modules/express/lib/router/layer.js:95:5)\n    at async next (/srv/checkout/node_modules/express/lib/router/route.js:149:13)\n    at async Route.dispatch (/srv/checkout/node_modules/express/lib/router/route.js:119:3)\n    at async requestHandler (/srv/checkout/src/http/server.ts:61:14) request_id=4f1c2a9e user=1842 cart=17 items=3 total=129.90 currency=EURO";

    #[test]
    fn custom_keys_replace_defaults() {
        let s = Sanitizer::new(&["ssn".to_owned(), "pin_code".to_owned()], &[], false).unwrap();
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
        let s = Sanitizer::new(&["contraseña".to_owned(), "basic".to_owned()], &[], false).unwrap();
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
        let s = Sanitizer::new(&[], &[], false).unwrap();
        assert_eq!(s.redact_text("password=x"), None);
        assert_eq!(
            s.redact_text("Bearer abcdef").as_deref(),
            Some("Bearer [REDACTED]")
        );
        assert!(matches!(
            Sanitizer::new(&["-_.".to_owned()], &[], false),
            Err(SanitizeError::BadKey { index: 0, .. })
        ));
        assert!(matches!(
            Sanitizer::new(&["ok".to_owned(), "x".repeat(65)], &[], false),
            Err(SanitizeError::BadKey { index: 1, .. })
        ));
    }

    #[test]
    fn user_patterns() {
        let s = Sanitizer::new(
            &[],
            &[
                r"ACME-\d{6}".to_owned(),
                r"\b\d{3}-\d{2}-\d{4}\b".to_owned(),
            ],
            false,
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
        let err =
            Sanitizer::new(&[], &["ok".to_owned(), "(unclosed".to_owned()], false).unwrap_err();
        assert!(matches!(err, SanitizeError::BadPattern { index: 1, .. }));
        assert!(
            err.to_string()
                .starts_with("sanitize.patterns[1]: invalid regex:"),
            "{err}"
        );
        let err = Sanitizer::new(&[], &["[A-Z]{5,}".to_owned()], false).unwrap_err();
        assert!(
            err.to_string().starts_with("sanitize.patterns[0]:"),
            "{err}"
        );
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
            // The new shapes in a stack: escapes around them, or in them.
            (r"at pay\n4111 1111 1111 1111\n", r"at pay\n[REDACTED]\n"),
            (r"card \u0034111111111111111", r"card [REDACTED]"),
            (
                r"-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
                r"-----BEGIN RSA PRIVATE KEY-----[REDACTED]-----END RSA PRIVATE KEY-----",
            ),
            (
                r"post https:\/\/hooks.slack.com\/services\/T0\/B0\/x",
                r"post https://hooks.slack.com/[REDACTED]",
            ),
            (r"x\ndb_pass=y", r"x\ndb_pass=[REDACTED]"),
            (r"pass\u200bword=y", r"password=[REDACTED]"),
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
    fn sanitizer_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Sanitizer>();
    }
}
