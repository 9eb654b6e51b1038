//! Secrets known by their form, with no key word in front: token prefixes (`ghp_`, `AIza`,
//! `glpat-`, …), JWTs, AWS key ids, and secrets in a place that gives them away (a PEM private
//! key block, the secret access key after its AWS key id, credential query parameters, Slack
//! webhook paths); emails when configured. Each rule has its trigger literals here, the
//! prefilter's input; card numbers, which have none, are in `cards`.

use super::rules::{Boundary, AUTH, KEYED, PASS, SHAPE, URL};

/// Lowercase trigger literals of the non-key rules: (literal, families, boundary).
pub(super) const SHAPE_TRIGGERS: &[(&str, u16, Boundary)] = &[
    ("bearer", AUTH, Boundary::Word),
    ("basic", AUTH, Boundary::Word),
    ("://", URL, Boundary::None),
    ("eyj", SHAPE, Boundary::Word),
    ("akia", SHAPE | KEYED, Boundary::Word),
    ("asia", SHAPE | KEYED, Boundary::Word),
    ("ghp_", SHAPE, Boundary::Word),
    ("gho_", SHAPE, Boundary::Word),
    ("ghu_", SHAPE, Boundary::Word),
    ("ghs_", SHAPE, Boundary::Word),
    ("ghr_", SHAPE, Boundary::Word),
    ("github_pat_", SHAPE, Boundary::Word),
    ("xox", SHAPE, Boundary::Word),
    ("sk-", SHAPE, Boundary::Word),
    ("k_live_", SHAPE, Boundary::None),
    ("k_test_", SHAPE, Boundary::None),
    ("aiza", SHAPE, Boundary::Word),
    ("glpat-", SHAPE, Boundary::Word),
    ("npm_", SHAPE, Boundary::Word),
    ("sg.", SHAPE, Boundary::Word),
    // Not `-----begin`: `-` shares its nibbles with blanks and punctuation, which costs the
    // SIMD search a false candidate every few bytes (~+25 % on a stack trace); `private key`
    // shares its first bytes with the `private_key` key word instead.
    ("private key", KEYED, Boundary::None),
    // Anywhere: also `AccountKey=`, `SharedAccessKey=` (Azure connection strings).
    ("key=", KEYED, Boundary::None),
    ("sig=", KEYED, Boundary::Word),
    ("signature=", KEYED, Boundary::Word),
    ("hooks.slack.com", KEYED, Boundary::None),
    ("pass", PASS, Boundary::Segment),
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
    // Google API keys (Maps, Firebase, …): `AIza` + 35.
    r"|\bAIza[0-9A-Za-z_-]{35}",
    // GitLab personal access tokens.
    r"|\bglpat-[A-Za-z0-9_-]{20,}",
    // npm access tokens.
    r"|\bnpm_[A-Za-z0-9]{36}\b",
    // SendGrid API keys: `SG.` id `.` secret.
    r"|\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}",
);

/// Secrets in a place that gives them away, the place kept: the first capture group that took
/// part in the match is redacted.
pub(super) const KEYED_RE: &str = concat!(
    // A PEM private key (PKCS#1 `RSA`/`EC`/`DSA`, PKCS#8 plain or `ENCRYPTED`, `OPENSSH`,
    // `PGP … BLOCK`): its body, up to the END line or, when the text was cut before it, to
    // the end (a truncated key is still a key).
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----((?s:.+?))",
    r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\z)",
    // An AWS secret access key (40 characters) right after its access key id, as consoles,
    // CLIs and env dumps print them side by side.
    r#"|\b(?:AKIA|ASIA)[0-9A-Z]{16}[\s:,;=|"'\\]{1,8}([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|\z)"#,
    // URL query parameters that are credentials: Google's `key=`, Azure SAS `sig=`, AWS
    // pre-signed `X-Amz-Signature=` (`token=`, `apikey=`, … are key words already).
    r#"|(?i:[?&](?:key|sig|signature|x-amz-signature)=)([^&#\s"'<>\\]+)"#,
    // Azure storage and Service Bus connection strings, whatever `sanitize.keys` says.
    r#"|(?i:(?:Account|SharedAccess)Key=)([^;&\s"'<>\\]+)"#,
    // A Slack incoming-webhook URL is its own credential: the path goes.
    r"|(?i:hooks\.slack\.com/)([A-Za-z0-9_/-]+)",
);

/// Email addresses (only with `sanitize.emails`): the local part is redacted, the domain kept.
pub(super) const EMAIL_RE: &str =
    r"(?i)\b([a-z0-9._%+-]+)@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}\b";

/// Unit types of systemd, whose template instances read like addresses (`user@1000.service`,
/// `getty@tty1.service`, in a peer's `unit`): not emails.
const SYSTEMD_UNIT_SUFFIXES: [&str; 8] = [
    ".service", ".socket", ".scope", ".slice", ".mount", ".target", ".timer", ".path",
];

/// Whether an [`EMAIL_RE`] match is a systemd unit name instead.
pub(super) fn is_systemd_unit(address: &str) -> bool {
    SYSTEMD_UNIT_SUFFIXES.iter().any(|s| address.ends_with(s))
}

#[cfg(test)]
mod tests {
    use crate::event::sanitize::tests::{san, text};
    use crate::event::sanitize::{Sanitizer, DEFAULT_KEYS, REDACTED};

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
            "maps AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe quota".to_owned(),
            "gitlab glpat-xXo5_b2Yk-9qzW3nE8rT denied".to_owned(),
            format!("npm npm_{} 401", "a1B2c3".repeat(6)),
            "sendgrid 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 down"
                .to_owned(),
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
                "AIza",
                "glpat-",
                "npm_",
                "SG.",
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
        // The new prefixes, too short or in ordinary words.
        assert_eq!(
            san().redact_text("npm_config_cache=/tmp glpat-short AIzaShort SG.x.y msg.length"),
            None
        );
    }

    #[test]
    fn pem_private_key_blocks() {
        for kind in ["RSA ", "", "EC ", "DSA ", "OPENSSH ", "ENCRYPTED "] {
            let input = format!(
                "load key: -----BEGIN {kind}PRIVATE KEY-----\nMIIEowIBAAKCAQEAQ7body\nQ7more==\n-----END {kind}PRIVATE KEY----- failed"
            );
            let out = text(&input);
            assert_eq!(
                out,
                format!("load key: -----BEGIN {kind}PRIVATE KEY-----[REDACTED]-----END {kind}PRIVATE KEY----- failed")
            );
            assert_eq!(text(&out), out);
        }
        // PGP, and a block cut before its END line (a truncated field).
        assert_eq!(
            text("-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQOYBQ7\n-----END PGP PRIVATE KEY BLOCK-----"),
            "-----BEGIN PGP PRIVATE KEY BLOCK-----[REDACTED]-----END PGP PRIVATE KEY BLOCK-----"
        );
        assert_eq!(
            text("x -----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAQ7cut"),
            "x -----BEGIN RSA PRIVATE KEY-----[REDACTED]"
        );
        // Two keys: each body, not what lies between.
        assert_eq!(
            text("-----BEGIN PRIVATE KEY-----a-----END PRIVATE KEY----- and -----BEGIN PRIVATE KEY-----b-----END PRIVATE KEY-----"),
            "-----BEGIN PRIVATE KEY-----[REDACTED]-----END PRIVATE KEY----- and -----BEGIN PRIVATE KEY-----[REDACTED]-----END PRIVATE KEY-----"
        );
        // Public material is not a secret.
        for t in [
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
            "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----",
            "-----BEGIN OPENSSH PRIVATE",
        ] {
            assert_eq!(san().redact_text(t), None, "{t}");
        }
    }

    #[test]
    fn aws_secret_after_its_key_id() {
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        for sep in [" ", "\t", ":", ", ", "=", "\",\"", " | "] {
            let input = format!("creds AKIAIOSFODNN7EXAMPLE{sep}{secret} end");
            let out = text(&input);
            assert!(
                !out.contains(secret) && !out.contains("AKIA"),
                "{input} -> {out}"
            );
            assert_eq!(text(&out), out);
        }
        // 40 characters that run on are not one.
        let out = text(&format!("AKIAIOSFODNN7EXAMPLE {secret}XYZ"));
        assert!(out.ends_with(&format!("{secret}XYZ")), "{out}");
    }

    #[test]
    fn credential_query_parameters_and_webhooks() {
        let cases = [
            (
                "GET https://maps.googleapis.com/maps/api/geocode/json?address=x&key=Q7mapsKey1 403",
                "GET https://maps.googleapis.com/maps/api/geocode/json?address=x&key=[REDACTED] 403",
            ),
            (
                "https://acme.blob.core.windows.net/c/b.txt?sv=2022-11-02&se=2026&sig=Q7sig%2Babc%3D&sp=r",
                "https://acme.blob.core.windows.net/c/b.txt?sv=2022-11-02&se=2026&sig=[REDACTED]&sp=r",
            ),
            (
                "s3 https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4&X-Amz-Signature=Q7abcdef0123",
                "s3 https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4&X-Amz-Signature=[REDACTED]",
            ),
            (
                "POST https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX failed",
                "POST https://hooks.slack.com/[REDACTED] failed",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(text(input), want, "input: {input}");
            assert_eq!(text(want), want, "idempotent: {want}");
        }
        for t in [
            "cache key=user:42 missed",
            "monkey=1 donkey=2",
            "GET /search?keyboard=1&q=x",
            "sig=11 (SIGSEGV)",
            "msg.length is 0",
            "see https://api.slack.com/messaging/webhooks",
        ] {
            assert_eq!(san().redact_text(t), None, "{t}");
        }
    }

    #[test]
    fn emails_only_when_configured() {
        let keys: Vec<String> = DEFAULT_KEYS.iter().map(|k| k.to_string()).collect();
        let on = Sanitizer::new(&keys, &[], true).unwrap();
        let t = "mail to bob.smith+x@example.co.uk failed; reply-to Ann@Mail.Example.org";
        let out = on.redact_text(t).unwrap();
        assert_eq!(
            out,
            "mail to [REDACTED]@example.co.uk failed; reply-to [REDACTED]@Mail.Example.org"
        );
        assert_eq!(on.redact_text(&out), None);
        assert_eq!(san().redact_text(t), None);
        for t in [
            "node_modules/@babel/parser",
            "user@1000.service",
            "getty@tty1.service",
            "@scope/pkg@1.2.3",
            "a @ b",
        ] {
            assert_eq!(on.redact_text(t), None, "{t}");
        }
        assert_eq!(
            on.redact_json(r#"{"to":"bob@example.com"}"#).as_deref(),
            Some(r#"{"to":"[REDACTED]@example.com"}"#)
        );
    }
}
