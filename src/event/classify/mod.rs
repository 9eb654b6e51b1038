//! Classification: what kind of error an event is ([`Class`]) and how urgent ([`Severity`]).
//!
//! In the spirit of the Node *qerrors* library's error types and severities, driven by three
//! static tables (the user-facing version is `docs/classification.md`):
//!
//! 1. **By name** ([`NAME_EXACT`], then [`NAME_PATTERNS`]). The name is reduced to its last
//!    segment (`java.lang.NullPointerException` → `NullPointerException`,
//!    `ActiveRecord::RecordNotFound` → `RecordNotFound`); a Node-style `Error [ERR_X]` also tries
//!    `ERR_X`. Comparison is ASCII case-insensitive. An exact name wins; otherwise the first
//!    prefix/suffix pattern in table order. Generic names (`Error`, `Exception`, `RuntimeError`,
//!    `OSError`, `IOException`, …) are deliberately absent, so the message decides for them.
//! 2. **By message** ([`MESSAGE_RULES`]), only when the name gave nothing: ASCII case-insensitive
//!    phrases matched at the start of a word (`timed out` matches `Request timed out`, and
//!    `oom` does not match `room`), some only as a whole word (`429`, `dns`). The first
//!    rule in table order that occurs anywhere wins. Only the first [`MESSAGE_SCAN_BYTES`] bytes
//!    are looked at, and quoted values (`'…'`, `"…"`, `` `…` ``, the same rule as the fingerprint
//!    uses) are skipped: `Cannot read properties of undefined (reading 'timeout')` is not a
//!    timeout. So the class depends only on what the fingerprint keeps of the message.
//! 3. Nothing matched: [`Class::Unknown`].
//!
//! [`Severity`] then follows from the event's level and the class ([`severity`]).
//!
//! Matching costs no allocation: the exact-name table is indexed by length and the message
//! rules by their first two letters (with a four-byte pre-check), both at compile time, so a
//! word of the message is compared with a handful of rules at most. Classification is a pure
//! function of level, name and message.
//!
//! # Layout
//! * this file: [`Class`], [`Severity`], [`classify`] and the [`severity`] table;
//! * `tables`: the three rule tables, the Rust copy of `docs/classification.md`;
//! * `names`: matching an error name against the name tables;
//! * `messages`: matching a message against the message rules.

mod messages;
mod names;
mod tables;

use crate::event::level::Level;
use messages::class_by_message;
use names::class_by_name;

pub use messages::MESSAGE_SCAN_BYTES;

/// Counts → start offsets (`a[i] += a[i-1]`), at compile time: the counting sort behind the
/// name and message indexes.
const fn running_totals<const N: usize>(mut a: [u16; N]) -> [u16; N] {
    let mut b = 1;
    while b < N {
        a[b] += a[b - 1];
        b += 1;
    }
    a
}
pub use tables::{MessageRule, NameMatch, MESSAGE_RULES, NAME_EXACT, NAME_PATTERNS};

/// What kind of failure an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Bad input: a request, argument or document that does not meet its rules.
    Validation,
    /// Who the caller is could not be established (missing/expired/invalid credentials; HTTP 401).
    Authentication,
    /// The caller is known but not allowed (HTTP 403, permission denied).
    Authorization,
    /// A requested record, resource or route does not exist (HTTP 404).
    NotFound,
    /// A rate limit or quota was hit (HTTP 429, throttling).
    RateLimit,
    /// Connection-level failure: refused, reset, DNS, TLS, unreachable.
    Network,
    /// An operation ran out of time.
    Timeout,
    /// The database or data store failed or rejected a query (constraints, deadlocks, drivers).
    Database,
    /// File-system operation failed (missing file, permissions on a path, disk full).
    Filesystem,
    /// Memory exhausted.
    Memory,
    /// The application or its environment is misconfigured.
    Configuration,
    /// A module/package/class/native library is missing or incompatible, or an upstream service
    /// the application depends on is unavailable (HTTP 502/503, open circuit breaker).
    Dependency,
    /// A bug in the code: type errors, null dereferences, failed assertions, out-of-bounds.
    Programming,
    /// The process or OS: signals, crashes, resource limits (open files, processes).
    System,
    /// None of the rules matched.
    Unknown,
}

impl Class {
    /// Every class, in declaration order.
    pub const ALL: [Class; 15] = [
        Class::Validation,
        Class::Authentication,
        Class::Authorization,
        Class::NotFound,
        Class::RateLimit,
        Class::Network,
        Class::Timeout,
        Class::Database,
        Class::Filesystem,
        Class::Memory,
        Class::Configuration,
        Class::Dependency,
        Class::Programming,
        Class::System,
        Class::Unknown,
    ];

    /// The snake_case name written in the enriched record.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Validation => "validation",
            Class::Authentication => "authentication",
            Class::Authorization => "authorization",
            Class::NotFound => "not_found",
            Class::RateLimit => "rate_limit",
            Class::Network => "network",
            Class::Timeout => "timeout",
            Class::Database => "database",
            Class::Filesystem => "filesystem",
            Class::Memory => "memory",
            Class::Configuration => "configuration",
            Class::Dependency => "dependency",
            Class::Programming => "programming",
            Class::System => "system",
            Class::Unknown => "unknown",
        }
    }

    /// Severity of this class at `error` level: the base of [`severity`].
    fn error_severity(self) -> Severity {
        match self {
            Class::Memory => Severity::Critical,
            Class::Programming
            | Class::Database
            | Class::System
            | Class::Configuration
            | Class::Dependency => Severity::High,
            Class::Validation
            | Class::Authentication
            | Class::Authorization
            | Class::NotFound
            | Class::RateLimit
            | Class::Network
            | Class::Timeout
            | Class::Filesystem
            | Class::Unknown => Severity::Medium,
        }
    }
}

/// How urgent an event is, least urgent first (`Ord` compares urgency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Expected or harmless; look at it when convenient.
    Low,
    /// Degraded behaviour for some requests.
    Medium,
    /// A real failure that needs fixing soon.
    High,
    /// The service is down or about to be; act now.
    Critical,
}

impl Severity {
    /// Every severity, least urgent first.
    pub const ALL: [Severity; 4] = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The lowercase name written in the enriched record.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    fn step_down(self) -> Severity {
        match self {
            Severity::Critical => Severity::High,
            Severity::High => Severity::Medium,
            Severity::Medium | Severity::Low => Severity::Low,
        }
    }
}

/// Classifies an event: class from its name, else its message; severity from level and class.
pub fn classify(level: Level, name: Option<&str>, message: &str) -> (Class, Severity) {
    let class = name
        .and_then(class_by_name)
        .or_else(|| class_by_message(message))
        .unwrap_or(Class::Unknown);
    (class, severity(level, class))
}

/// Severity table:
///
/// | level | severity |
/// | --- | --- |
/// | `fatal` | `critical`, whatever the class |
/// | `error` | `critical` for memory; `high` for programming, database, system, configuration, dependency; `medium` for all others (incl. unknown) |
/// | `warn` | one step below the `error` severity, at most `medium` |
/// | `info`, `debug`, `trace` | `low` |
pub fn severity(level: Level, class: Class) -> Severity {
    match level {
        Level::Fatal => Severity::Critical,
        Level::Error => class.error_severity(),
        Level::Warn => class.error_severity().step_down().min(Severity::Medium),
        Level::Info | Level::Debug | Level::Trace => Severity::Low,
    }
}

#[cfg(test)]
mod tests {
    use super::messages::MESSAGE_INDEX;
    use super::names::MAX_EXACT_NAME;
    use super::*;

    /// The class [`classify`] gives at `error` level.
    pub(super) fn class_of(name: Option<&str>, message: &str) -> Class {
        classify(Level::Error, name, message).0
    }

    #[test]
    fn as_str_is_snake_case_and_unique() {
        let names: Vec<_> = Class::ALL.iter().map(|c| c.as_str()).collect();
        for (i, n) in names.iter().enumerate() {
            assert!(
                n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{n}"
            );
            assert!(!names[i + 1..].contains(n), "duplicate {n}");
        }
        assert_eq!(Class::NotFound.as_str(), "not_found");
        assert_eq!(Class::RateLimit.as_str(), "rate_limit");
        let sev: Vec<_> = Severity::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(sev, ["low", "medium", "high", "critical"]);
    }

    #[test]
    fn tables_are_well_formed() {
        for (i, (a, _)) in NAME_EXACT.iter().enumerate() {
            assert!(!a.is_empty() && a.len() <= MAX_EXACT_NAME, "{a}");
            assert!(
                !a.contains(['.', ':']) && a.trim() == *a,
                "{a}: exact names are last segments"
            );
            for (b, _) in &NAME_EXACT[i + 1..] {
                assert!(!a.eq_ignore_ascii_case(b), "duplicate exact name {a}");
            }
        }
        for rule in MESSAGE_RULES {
            let p = rule.phrase;
            assert_eq!(p, p.to_ascii_lowercase(), "{p}: phrases are lowercase");
            assert!(p.as_bytes()[0].is_ascii_alphanumeric(), "{p}");
        }
        // The index holds every rule once.
        let mut seen: Vec<u16> = MESSAGE_INDEX.ids.to_vec();
        seen.sort_unstable();
        assert_eq!(seen, (0..MESSAGE_RULES.len() as u16).collect::<Vec<_>>());
    }

    /// `docs/classification.md` is the user's copy of these tables; keep them in step.
    #[test]
    fn user_documentation_lists_every_rule() {
        let doc = include_str!("../../../docs/classification.md");
        for (name, class) in NAME_EXACT {
            assert!(doc.contains(&format!("`{name}`")), "docs miss name {name}");
            assert!(doc.contains(&format!("`{}`", class.as_str())));
        }
        for (pattern, how, _) in NAME_PATTERNS {
            let shown = match how {
                NameMatch::Prefix => format!("`{pattern}…`"),
                NameMatch::Suffix => format!("`…{pattern}`"),
            };
            assert!(doc.contains(&shown), "docs miss pattern {shown}");
        }
        for rule in MESSAGE_RULES {
            let shown = if rule.phrase.contains('`') {
                format!("`` {} ``", rule.phrase)
            } else {
                format!("`{}`", rule.phrase)
            };
            assert!(doc.contains(&shown), "docs miss phrase {shown}");
        }
    }

    #[test]
    fn every_class_is_reachable_by_name_and_by_message() {
        let by_name = [
            ("ValidationError", Class::Validation),
            ("JsonWebTokenError", Class::Authentication),
            ("ForbiddenError", Class::Authorization),
            ("NotFoundError", Class::NotFound),
            ("TooManyRequestsError", Class::RateLimit),
            ("ECONNREFUSED", Class::Network),
            ("ETIMEDOUT", Class::Timeout),
            ("SequelizeUniqueConstraintError", Class::Database),
            ("ENOENT", Class::Filesystem),
            ("OutOfMemoryError", Class::Memory),
            ("ImproperlyConfigured", Class::Configuration),
            ("ModuleNotFoundError", Class::Dependency),
            ("TypeError", Class::Programming),
            ("EMFILE", Class::System),
        ];
        let by_message = [
            ("\"email\" must be a valid email", Class::Validation),
            ("jwt expired", Class::Authentication),
            (
                "User is not authorized to perform: s3:GetObject",
                Class::Authorization,
            ),
            ("Order 42 not found", Class::NotFound),
            ("Request failed with status code 429", Class::RateLimit),
            ("connect ECONNREFUSED 127.0.0.1:5432", Class::Network),
            ("Operation timed out after 3000ms", Class::Timeout),
            (
                "duplicate key value violates unique constraint \"users_email_key\"",
                Class::Database,
            ),
            (
                "open '/etc/app.yaml': no such file or directory",
                Class::Filesystem,
            ),
            (
                "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
                Class::Memory,
            ),
            (
                "Missing environment variable DATABASE_URL",
                Class::Configuration,
            ),
            ("Cannot find module 'express'", Class::Dependency),
            (
                "Cannot read properties of undefined (reading 'id')",
                Class::Programming,
            ),
            ("Segmentation fault (core dumped)", Class::System),
        ];
        let mut seen = Vec::new();
        for (name, want) in by_name {
            assert_eq!(class_of(Some(name), "x"), want, "name {name}");
            seen.push(want);
        }
        for (msg, want) in by_message {
            assert_eq!(class_of(None, msg), want, "message {msg:?}");
            assert_eq!(
                class_of(Some("Error"), msg),
                want,
                "generic name, message {msg:?}"
            );
        }
        assert_eq!(class_of(None, "something odd happened"), Class::Unknown);
        assert_eq!(class_of(Some("Error"), ""), Class::Unknown);
        seen.push(Class::Unknown);
        for class in Class::ALL {
            assert!(seen.contains(&class), "{class:?} untested");
        }
    }

    #[test]
    fn name_wins_over_message() {
        assert_eq!(
            class_of(Some("TypeError"), "request timed out"),
            Class::Programming
        );
        assert_eq!(
            class_of(Some("ValidationError"), "ECONNREFUSED"),
            Class::Validation
        );
        // Generic names leave it to the message.
        for generic in [
            "Error",
            "Exception",
            "RuntimeError",
            "OSError",
            "IOException",
            "Throwable",
        ] {
            assert_eq!(
                class_of(Some(generic), "request timed out"),
                Class::Timeout,
                "{generic}"
            );
        }
    }

    #[test]
    fn odd_input_does_not_panic() {
        for s in [
            "",
            " ",
            "'",
            "\"",
            "`",
            "''",
            "\u{e9}\u{e9}",
            "[",
            "]",
            "[]",
            "a]",
            "Error [",
            "Error []",
            ".",
            ":",
            "::",
            "a.",
            "\u{1F600}timeout",
            "timeou",
            "e",
            "4",
            "42",
        ] {
            let _ = classify(Level::Error, Some(s), s);
        }
        let long = "timeout ".repeat(10_000);
        let _ = classify(Level::Error, Some(&long), &long);
    }

    #[test]
    fn severity_table() {
        for class in Class::ALL {
            assert_eq!(
                severity(Level::Fatal, class),
                Severity::Critical,
                "{class:?}"
            );
            for low in [Level::Info, Level::Debug, Level::Trace] {
                assert_eq!(severity(low, class), Severity::Low, "{class:?}");
            }
            assert!(
                severity(Level::Warn, class) <= Severity::Medium,
                "{class:?}"
            );
            assert!(
                severity(Level::Warn, class) < severity(Level::Error, class)
                    || severity(Level::Error, class) == Severity::Low
            );
        }
        let error = |c| severity(Level::Error, c);
        assert_eq!(error(Class::Memory), Severity::Critical);
        for c in [
            Class::Programming,
            Class::Database,
            Class::System,
            Class::Configuration,
            Class::Dependency,
        ] {
            assert_eq!(error(c), Severity::High, "{c:?}");
        }
        for c in [
            Class::Validation,
            Class::Authentication,
            Class::Authorization,
            Class::NotFound,
            Class::RateLimit,
            Class::Network,
            Class::Timeout,
            Class::Filesystem,
            Class::Unknown,
        ] {
            assert_eq!(error(c), Severity::Medium, "{c:?}");
        }
        let warn = |c| severity(Level::Warn, c);
        assert_eq!(warn(Class::Memory), Severity::Medium);
        assert_eq!(warn(Class::Programming), Severity::Medium);
        assert_eq!(warn(Class::Validation), Severity::Low);
        assert_eq!(warn(Class::Unknown), Severity::Low);
    }

    #[test]
    fn classify_combines_class_and_severity() {
        assert_eq!(
            classify(Level::Fatal, Some("TypeError"), "x"),
            (Class::Programming, Severity::Critical)
        );
        assert_eq!(
            classify(Level::Error, Some("MemoryError"), ""),
            (Class::Memory, Severity::Critical)
        );
        assert_eq!(
            classify(Level::Warn, None, "rate limit exceeded"),
            (Class::RateLimit, Severity::Low)
        );
        assert_eq!(
            classify(Level::Info, Some("ECONNRESET"), ""),
            (Class::Network, Severity::Low)
        );
    }
}
