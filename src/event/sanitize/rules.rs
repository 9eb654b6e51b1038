//! The built-in rules: what a secret looks like. Rule families and their trigger literals (the
//! prefilter's input), the regexes run on a hit, the checks that tell a `key=value` pair from a
//! source location or an error name, and the normalization of configured key words.

use std::ops::Range;

use regex::{Captures, Regex};

use super::SanitizeError;

/// Separators removed when normalizing a key (`X-Api-Key` → `xapikey`).
pub(super) const KEY_SEPARATORS: [char; 3] = ['-', '_', '.'];

/// Rule families, as a bit set: a prefilter hit runs only the families that were hit.
pub(super) const KEY: u8 = 1;
pub(super) const AUTH: u8 = 2;
pub(super) const URL: u8 = 4;
pub(super) const SHAPE: u8 = 8;
/// A `\u` escape in escaped text: it can hide any trigger, so it sends the text to the slow path.
pub(super) const ESCAPE: u8 = 16;

/// Lowercase trigger literals of the non-key rules: (literal, family, whether the rule's regex
/// needs a word boundary before it; see `boundary_before` in `prefilter`).
pub(super) const SHAPE_TRIGGERS: &[(&str, u8, bool)] = &[
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
pub(super) const SHAPES_RE: &str = concat!(
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

/// Lowercase, separators removed: `X-Api-Key` → `xapikey`.
pub(super) fn normalize_key(key: &str) -> String {
    key.chars()
        .filter(|c| !KEY_SEPARATORS.contains(c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Regex for a normalized key word that allows separators between its characters, so it matches
/// exactly the keys whose normalized form contains the word.
pub(super) fn key_fragment(norm: &str) -> String {
    let mut out = String::with_capacity(norm.len() * 8);
    for (i, c) in norm.chars().enumerate() {
        if i > 0 {
            out.push_str(r"[-_.]*");
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
    use crate::event::sanitize::REDACTED;

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
}
