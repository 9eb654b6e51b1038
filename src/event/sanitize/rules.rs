//! The built-in rules around keys: the rule families, the regexes run on a key-word hit (and
//! the `Bearer`/`Basic` and URL user-info ones), the checks that tell a `key=value` pair from
//! a source location or an error name, `password hunter2` in prose, `pass` segments, and the
//! normalization of configured key words. Secrets known by their form are in `shapes`.

use std::ops::Range;

use regex::{Captures, Regex};

use super::invisible::{is_invisible, INVISIBLE_CLASS};
use super::SanitizeError;

/// Separators removed when normalizing a key (`X-Api-Key` → `xapikey`).
pub(super) const KEY_SEPARATORS: [char; 3] = ['-', '_', '.'];

/// Rule families, as a bit set: a prefilter hit runs only the families that were hit.
pub(super) const KEY: u16 = 1;
pub(super) const AUTH: u16 = 2;
pub(super) const URL: u16 = 4;
pub(super) const SHAPE: u16 = 8;
/// A `\u` escape in escaped text: it can hide any trigger, so it sends the text to the slow path.
pub(super) const ESCAPE: u16 = 16;
/// Secrets in a known place whose surroundings are kept: `shapes::KEYED_RE`.
pub(super) const KEYED: u16 = 32;
/// `pass` as a whole key segment (`db_pass`, `SMTP-PASS`, `dbPass`); see [`is_pass_key`].
pub(super) const PASS: u16 = 64;
/// A digit run that may be a card number (found by `cards::candidate`, not by a literal).
pub(super) const CARD: u16 = 128;
/// A zero-width character (found by `invisible::find`).
pub(super) const INVISIBLE: u16 = 256;
/// An `@`, when `sanitize.emails` is on.
pub(super) const EMAIL: u16 = 512;

/// What must surround a trigger literal for it to count (checked on the original bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Boundary {
    /// Anywhere.
    None,
    /// At a word start: the rule's regex has `\b` before it (`\bsk-`), so `task-` is no hit.
    Word,
    /// A whole key segment: a non-alphanumeric byte (or a camel-case hump) before, and no
    /// alphanumeric byte after, so `db_pass`, `dbPass` but not `bypass`, `passport`.
    Segment,
}

/// A password key word followed by a blank and a value, in prose: `password hunter2`, `the
/// password is hunter2`, `pwd 'x y'`. Anchored at the start of the key token; the value in
/// `v2` (`"…"`), `v3` (`'…'`) or `v4` (unquoted, up to whitespace or a quote). Applies only to
/// keys that [`is_prose_key`] accepts, and an unquoted value only when
/// [`looks_like_secret`]; see there for why.
pub(super) const PROSE_RE: &str = r#"(?x)
    ^ [\p{Alphabetic}\p{N}_.\-]+ [\ \t]+
    (?: (?i: is | was ) [\ \t]+ )?
    (?:
        " (?P<v2> [^"\n]+ ) "
      | ' (?P<v3> [^'\n]+ ) '
      | (?P<v4> [^\s"'`]+ )
    )"#;

/// `Bearer <token68>` and `Basic <base64>`; group 1 is the scheme, group 2 the credential.
pub(super) const AUTH_RE: &str = r"(?i)\b(bearer|basic)[ \t]+([A-Za-z0-9\-._~+/]+=*)";

/// Userinfo of a URL (`scheme://user:pass@host`); group 1 is `user:pass`. Greedy, so a password
/// with an unencoded `@` is covered up to the last `@` of the authority.
pub(super) const URL_RE: &str = r#"(?i)\b[a-z][a-z0-9+.\-]*://([^\s/?#"'<>]+)@"#;

/// A `key=value` pair, anchored at the start of the key token (found from a key-word hit).
/// Groups: `key`; `colon` when the separator is a bare `:` (header style);
/// `scheme` (`Bearer ` etc., kept); the value in `v1` (`\"…\"`, from double-encoded JSON), `v2`
/// (`"…"`), `v3` (`'…'`) or `v4` (unquoted: up to whitespace, `,`, `;`, `&` or a quote).
///
/// A bare key needs `=` (blanks allowed around it) or a `:` right after it, so prose such as
/// "Unexpected token : in JSON" is not a pair; a quoted key may have blanks before `:`/`=`. The
/// key class matches exactly what [`is_key_char`] accepts.
pub(super) const KV_RE: &str = r#"(?x)
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

/// `InvalidTokenError: jwt malformed`, `TokenExpiredError: …`: an error class, not a key.
pub(super) fn is_error_name(key: &str) -> bool {
    key.ends_with("Error") || key.ends_with("Exception")
}

/// `token.js:42:13)`, `TokenService.java:42)`, `token.rb:42:in`, `token.go:42 +0x1d`: a file
/// name followed by a line number, not a key. `after` is the text after the token.
pub(super) fn is_source_location(key: &str, after: &str) -> bool {
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
pub(super) fn token_start(s: &str, at: usize) -> usize {
    let Some(before) = s.get(..at) else { return at };
    before
        .char_indices()
        .rev()
        .take_while(|&(_, c)| is_key_char(c))
        .last()
        .map_or(at, |(i, _)| i)
}

/// End of the key token around a key-word hit at `at`.
pub(super) fn token_end(s: &str, at: usize) -> usize {
    let Some(after) = s.get(at..) else { return at };
    at + after.find(|c: char| !is_key_char(c)).unwrap_or(after.len())
}

/// Characters of a key token in text; the same set as the `key` group of [`KV_RE`].
fn is_key_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// The value span of a `KV_RE` match in `s`, or `None` when the match is not a secret.
pub(super) fn kv_value_span(s: &str, caps: &Captures<'_>) -> Option<Range<usize>> {
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
pub(super) fn is_basic_credential(b64: &str) -> bool {
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

/// Key words after which a value may follow a mere blank (`password hunter2`): the password
/// words of the default list. Other key words are too common in prose with an ordinary word
/// after them (`token expired`, `secret store unreachable`, `Unexpected token }`).
const PROSE_KEYS: [&str; 4] = ["password", "passwd", "pwd", "passphrase"];

/// Whether a key token ends with a password word (`password`, `db_password`, `userPwd`), so
/// [`PROSE_RE`] applies to it.
pub(super) fn is_prose_key(key: &str) -> bool {
    let norm = normalize_key(key);
    PROSE_KEYS.iter().any(|w| norm.ends_with(w))
}

/// Fewest characters of an unquoted prose value worth redacting (`pwd 1234` is a PIN).
const MIN_PROSE_VALUE: usize = 4;

/// The part of an unquoted prose value to redact, or `None` when it reads as an ordinary word:
/// `password reset failed`, `password for bob`, `password is incorrect` are messages about a
/// password, not a password. So a value must have a digit, a symbol, or a capital after its
/// first letter (`hunter2`, `P@ss`, `hUnter`), at least 4 characters, and not open like a
/// bracketed aside (`(hidden)`, `[REDACTED]`). A password that is a plain lowercase word
/// (`password letmein`) is missed; `password=letmein` and `password: letmein` are not.
/// Trailing sentence punctuation is not part of it.
pub(super) fn prose_value(value: &str) -> Option<&str> {
    // `pwd SMTP-PASS: x`: a label of the next pair, not a value (its own key finds the secret).
    if value.ends_with(':') {
        return None;
    }
    let v = value.trim_end_matches(['.', ',', ';', ':', '!', '?', ')', ']', '}', '>']);
    if v.chars().count() < MIN_PROSE_VALUE || v.starts_with(['(', '[', '{', '<']) {
        return None;
    }
    let mut chars = v.chars();
    let first_is_letter = chars.next().is_some_and(char::is_alphabetic);
    let marked =
        v.chars().any(|c| !c.is_alphabetic()) || chars.any(char::is_uppercase) || !first_is_letter;
    marked.then_some(v)
}

/// Whether `pass` is the last segment of a key (`pass`, `db_pass`, `SMTP-PASS`, `smtp.pass`,
/// `dbPass`): a password under a short name. Only as a whole segment, so `bypass`, `compass`,
/// `passport`, `passes` and `pass_through` are not keys.
pub(super) fn is_pass_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    let Some(at) = bytes.len().checked_sub(4) else {
        return false;
    };
    if !bytes
        .get(at..)
        .is_some_and(|tail| tail.eq_ignore_ascii_case(b"pass"))
    {
        return false;
    }
    match at.checked_sub(1).and_then(|i| bytes.get(i)) {
        None => true,
        Some(&p) if !p.is_ascii_alphanumeric() => true,
        // camelCase: `dbPass`, `smtpPASS`.
        Some(&p) => bytes.get(at) == Some(&b'P') && (p.is_ascii_lowercase() || p.is_ascii_digit()),
    }
}

/// Lowercase, separators removed: `X-Api-Key` → `xapikey`.
pub(super) fn normalize_key(key: &str) -> String {
    key.chars()
        .filter(|c| !KEY_SEPARATORS.contains(c) && !is_invisible(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Regex for a normalized key word that allows separators (and zero-width characters) between
/// its characters, so it matches exactly the keys whose normalized form contains the word.
pub(super) fn key_fragment(norm: &str) -> String {
    let between = format!("[-_.{INVISIBLE_CLASS}]*");
    let mut out = String::with_capacity(norm.len() * (between.len() + 2));
    for (i, c) in norm.chars().enumerate() {
        if i > 0 {
            out.push_str(&between);
        }
        out.push_str(&regex::escape(c.encode_utf8(&mut [0; 4])));
    }
    out
}

pub(super) fn builtin_regex(pattern: &str) -> Result<Regex, SanitizeError> {
    Regex::new(pattern).map_err(|e| SanitizeError::Builtin(e.to_string()))
}

#[cfg(test)]
mod tests {
    use crate::event::sanitize::tests::{san, text, EVENT};

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
            // Numbers that are not card numbers, words that contain `pass`, ids.
            "order 48151623 for customer 4711 failed",
            "order #2026112800042 not found",
            "request 6f1c2a9e-3b7d-4c55-9a1e-0d2f8e7b6c41 timed out",
            "at 2026-11-28T16:49:03.123456789Z (1764345943123)",
            "ts=1764345943123456789 dur=12ms",
            "call +49 151 12345678 or +1 (415) 555-0100",
            "requires node >= 18.19.1, found v16.20.2 (openssl 3.0.13+quic)",
            "ISBN 978-3-16-148410-0 and 9783161484100",
            "compass heading 270, bypass cache, passport check, 3 tests passed",
            "float 0.41111111111111116 rounded",
            "the key was rotated; keyboard layout is de",
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
    fn password_in_prose() {
        let cases = [
            (
                "login as bob password hunter2 failed",
                "login as bob password [REDACTED] failed",
            ),
            ("the password is hunter2.", "the password is [REDACTED]."),
            ("Password was P@ssw0rd!", "Password was [REDACTED]!"),
            ("db_password 'correct horse'", "db_password '[REDACTED]'"),
            ("pwd 1234", "pwd [REDACTED]"),
            (
                "passphrase \"two words\" rejected",
                "passphrase \"[REDACTED]\" rejected",
            ),
            ("userPwd hUnter", "userPwd [REDACTED]"),
            // A label after the key word is the next pair's key (found by proptest).
            (
                "pwd SMTP-PASS: Q7a0aAAAaAaaAA0A00 ",
                "pwd SMTP-PASS: [REDACTED] ",
            ),
            (
                "password db_password: Hunter2x",
                "password db_password: [REDACTED]",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(text(input), want, "input: {input}");
            assert_eq!(text(want), want, "idempotent: {want}");
        }
        // Messages about a password, not a password.
        for t in [
            "password reset failed for bob",
            "password must be at least 12 characters",
            "Password is incorrect",
            "the password was changed 3 days ago",
            "invalid password for user bob",
            "password (hidden) not shown",
            "password [REDACTED] kept",
            "password 12 chars",
            "passwords differ",
            "token expired at noon",
            "SyntaxError: Unexpected token } in JSON",
            "    at password (/app/auth.js:1:2)",
            "at Object.password [as check] (/app/auth.js:1:2)",
        ] {
            assert_eq!(san().redact_text(t), None, "{t}");
        }
    }

    #[test]
    fn pass_as_a_key_segment() {
        for key in [
            "pass",
            "db_pass",
            "DB_PASS",
            "smtp-pass",
            "smtp.pass",
            "dbPass",
            "SMTP_Pass",
        ] {
            assert_eq!(
                text(&format!("{key}=Q7secret")),
                format!("{key}=[REDACTED]"),
                "{key}"
            );
            assert_eq!(
                text(&format!("{key}: Q7secret")),
                format!("{key}: [REDACTED]")
            );
            assert!(super::is_pass_key(key), "{key}");
        }
        for key in [
            "bypass",
            "compass",
            "passport",
            "passes",
            "pass_through",
            "Bypass",
            "encompass",
        ] {
            assert_eq!(san().redact_text(&format!("{key}=visible")), None, "{key}");
            assert!(!super::is_pass_key(key), "{key}");
        }
        for t in [
            "PASS src/app.test.js",
            "3 tests pass, 1 fails",
            "bypass cache for /api",
            "passport.authenticate failed",
            "compass heading 270",
        ] {
            assert_eq!(san().redact_text(t), None, "{t}");
        }
        assert_eq!(
            san()
                .redact_json(r#"{"smtp":{"pass":"Q7s","host":"mx"},"bypass":"on"}"#)
                .as_deref(),
            Some(r#"{"smtp":{"pass":"[REDACTED]","host":"mx"},"bypass":"on"}"#)
        );
    }

    #[test]
    fn azure_connection_strings() {
        assert_eq!(
            text("DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=Eby8vdM02x+NoZ==;EndpointSuffix=core.windows.net"),
            "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=[REDACTED];EndpointSuffix=core.windows.net"
        );
        assert_eq!(
            text("Endpoint=sb://acme.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=Q7k/abc+def=;"),
            "Endpoint=sb://acme.servicebus.windows.net/;SharedAccessKeyName=[REDACTED];SharedAccessKey=[REDACTED];"
        );
    }
}
