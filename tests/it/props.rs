//! Property-based tests (proptest) through the library's public API: framing, parsing, the whole
//! event pipeline, sanitizing and fingerprinting. No panic on any input; framing does not depend
//! on how the byte stream is split; sanitizing is idempotent and never leaves a planted secret;
//! fingerprints ignore volatile parts.

use std::sync::OnceLock;

use bytes::BytesMut;
use proptest::prelude::*;
use serde_json::Value;

use qerrors::config::{Overrides, RawConfig};
use qerrors::event::fingerprint;
use qerrors::event::sanitize::{Sanitizer, DEFAULT_KEYS, REDACTED};
use qerrors::event::Received;
use qerrors::ingest::framing::{Frame, Framer};
use qerrors::ingest::peer::Peer;
use qerrors::pipeline::{table::FingerprintTable, ConnState, Pipeline};

// ---------------------------------------------------------------------------------------------
// Framing

#[derive(Debug, Clone, PartialEq, Eq)]
enum Framed {
    Line(Vec<u8>),
    TooLong,
}

/// Feeds `data` to a [`Framer`] in pieces cut at `cuts`, then ends the stream.
fn frame_in_pieces(max: usize, data: &[u8], cuts: &[usize]) -> Vec<Framed> {
    let mut framer = Framer::new(max);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut emit = |f: Frame<'_>| {
        out.push(match f {
            Frame::Line(l) => Framed::Line(l.to_vec()),
            Frame::TooLong => Framed::TooLong,
        })
    };
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    cuts.sort_unstable();
    let mut from = 0;
    for cut in cuts.into_iter().chain([data.len()]) {
        buf.extend_from_slice(&data[from..cut]);
        from = cut;
        framer.drain(&mut buf, &mut emit);
        assert!(
            buf.len() <= max + 1,
            "the framer holds {} bytes with a limit of {max}",
            buf.len()
        );
    }
    framer.finish(&mut buf, &mut emit);
    out
}

/// What PROTOCOL.md says: `\n`-terminated lines, a preceding `\r` stripped, longer than `max`
/// is one `TooLong`, a final line without `\n` counts unless empty.
fn frame_reference(max: usize, data: &[u8]) -> Vec<Framed> {
    let mut parts: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    let last = parts.pop().unwrap_or_default();
    let one = |l: &[u8]| {
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        if l.len() > max {
            Framed::TooLong
        } else {
            Framed::Line(l.to_vec())
        }
    };
    let mut out: Vec<Framed> = parts.into_iter().map(one).collect();
    let last = one(last);
    if last != Framed::Line(Vec::new()) {
        out.push(last);
    }
    out
}

fn stream_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            3 => Just(b'\n'),
            2 => Just(b'\r'),
            8 => b'a'..=b'f',
            1 => any::<u8>(),
        ],
        0..400,
    )
}

proptest! {
    #[test]
    fn framing_is_independent_of_split_points(
        data in stream_bytes(),
        max in 1usize..40,
        cuts in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        let _cpu = crate::util::cpu_share();
        let whole = frame_in_pieces(max, &data, &[]);
        prop_assert_eq!(&whole, &frame_reference(max, &data));
        prop_assert_eq!(frame_in_pieces(max, &data, &cuts), whole);
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing and the whole pipeline

const KEYS: &[&str] = &[
    "message",
    "level",
    "name",
    "stack",
    "service",
    "ts",
    "context",
    "tags",
    "fingerprint",
    "ack",
    "peer",
    "x",
    // Other loggers' keys (docs/formats.md), so their profiles and the generic recognizer run.
    "msg",
    "err",
    "error",
    "exception",
    "@t",
    "@mt",
    "@m",
    "@l",
    "@x",
    "A",
    "Message",
    "LogLevel",
    "level_name",
    "channel",
    "log.level",
    "error.type",
    "service.name",
    "log",
    "body",
    "attributes",
    "resource",
    "severityNumber",
    "severityText",
    "timeUnixNano",
    "thrown",
    "instant",
    "short_message",
    "full_message",
    "Text",
    "record",
    "kind",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("error"),
            Just("warn"),
            Just("2026-01-02T03:04:05Z"),
            Just("password=hunter2"),
            Just("at f (/a/b.js:1:2)"),
            Just("x {A} {@message} {{"),
            Just("Error: x\n    at f (/a.js:1:1)"),
            Just("1764345943123000000"),
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

/// Event-shaped lines: an object with the known fields (often a valid event), its text cut
/// anywhere, or arbitrary text.
fn line_text() -> impl Strategy<Value = String> {
    let object = (
        prop::option::of(json_value()),
        prop::collection::vec((prop::sample::select(KEYS), json_value()), 0..6),
    )
        .prop_map(|(msg, kv)| {
            let mut m = serde_json::Map::new();
            if let Some(v) = msg {
                m.insert("message".into(), v);
            }
            for (k, v) in kv {
                m.insert(k.to_string(), v);
            }
            Value::Object(m).to_string()
        })
        .boxed();
    prop_oneof![
        4 => object.clone(),
        2 => (object, any::<prop::sample::Index>()).prop_map(|(s, at)| {
            let mut cut = at.index(s.len() + 1);
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s[..cut].to_string()
        }),
        1 => any::<String>(),
    ]
}

fn pipeline() -> &'static Pipeline {
    static P: OnceLock<Pipeline> = OnceLock::new();
    P.get_or_init(|| {
        let cfg = RawConfig::default()
            .validate(&Overrides::default())
            .unwrap();
        let table = FingerprintTable::new(
            cfg.event.max_fingerprints.get(),
            cfg.event.occurrence_window,
        );
        let limiter = qerrors::limit::Limiter::new(&cfg.limit);
        Pipeline::new(
            &cfg,
            std::sync::Arc::new(table),
            std::sync::Arc::new(limiter),
            None,
            Default::default(),
        )
        .unwrap()
    })
}

proptest! {
    #[test]
    fn parsing_any_line_never_panics(line in line_text()) {
        let _cpu = crate::util::cpu_share();
        let _ = qerrors::event::parse::parse(&line);
    }

    /// Accepted or rejected, never a panic; an accepted line becomes exactly one record line that
    /// is a JSON object with the message as a string; a rejected one leaves the batch untouched.
    #[test]
    fn the_pipeline_turns_any_line_into_one_valid_record_or_a_rejection(line in line_text()) {
        let _cpu = crate::util::cpu_share();
        let meta = Peer::default().meta(sanitizer());
        let mut state = ConnState::default();
        let mut out = BytesMut::new();
        match pipeline().process(&line, &meta, &Received::now(), &mut state, &mut out) {
            Ok(_) => {
                prop_assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1);
                prop_assert_eq!(out.last(), Some(&b'\n'));
                let v: Value = serde_json::from_slice(&out[..out.len() - 1])
                    .map_err(|e| TestCaseError::fail(format!("record is not JSON ({e}): {}",
                        String::from_utf8_lossy(&out))))?;
                prop_assert!(v["message"].is_string(), "{}", v);
                prop_assert_eq!(&v["kind"], "event");
            }
            Err(_) => prop_assert!(out.is_empty()),
        }
    }
}

/// OTLP/JSON batches whose records are any event-shaped objects.
fn otlp_line() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(json_value(), 0..4),
        prop::option::of(json_value()),
    )
        .prop_map(|(records, resource)| {
            let mut rl = serde_json::json!({"scopeLogs": [{"logRecords": records}]});
            if let Some(r) = resource {
                rl["resource"] = r;
            }
            serde_json::json!({ "resourceLogs": [rl] }).to_string()
        })
}

proptest! {
    /// Each record of a batch becomes one record line or a rejection, as a line would.
    #[test]
    fn every_record_of_an_otlp_batch_is_one_event_or_a_rejection(line in otlp_line()) {
        let _cpu = crate::util::cpu_share();
        let meta = Peer::default().meta(sanitizer());
        let mut state = ConnState::default();
        let records = qerrors::event::parse::otlp::split(&line).expect("a batch");
        for r in &records {
            let mut out = BytesMut::new();
            match pipeline().process(r, &meta, &Received::now(), &mut state, &mut out) {
                Ok(_) => {
                    prop_assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1);
                    let v: Value = serde_json::from_slice(&out[..out.len() - 1]).unwrap();
                    prop_assert!(v["message"].is_string(), "{}", v);
                }
                Err(_) => prop_assert!(out.is_empty()),
            }
        }
    }

    /// Whatever a profile lifts (a Monolog exception, an OTel attribute in either form (a bare
    /// secret under a sensitive attribute key included), a
    /// Serilog template hole, ECS and log4j2 error fields, a wrapped record the generic
    /// recognizer reads) is redacted: a planted secret never reaches the record.
    #[test]
    fn a_planted_secret_in_a_lifted_field_never_reaches_the_record(
        place in 0usize..10, secret in secret(), shape in 0..SHAPES,
    ) {
        let _cpu = crate::util::cpu_share();
        let p = planted(shape, &secret);
        let line = match place {
            0 => serde_json::json!({"message": "m", "level_name": "ERROR", "level": 400,
                "context": {"exception": {"class": "E", "message": p, "file": "/a.php:1"}}}),
            1 => serde_json::json!({"body": {"stringValue": "m"}, "attributes": [
                {"key": "exception.message", "value": {"stringValue": p}},
                {"key": "exception.type", "value": {"stringValue": "E"}}]}),
            2 => serde_json::json!({"body": "m", "attributes": {"exception.stacktrace": p}}),
            3 => serde_json::json!({"@mt": "failed {Note} {password}", "Note": p,
                "password": secret}),
            4 => serde_json::json!({"message": "m", "error.message": p, "error.type": "E"}),
            5 => serde_json::json!({"message": "m", "thrown": {"name": "E", "message": p}}),
            6 => serde_json::json!({"record": {"text": p, "lvl": "error"}}),
            7 => serde_json::json!({"body": p, "severityNumber": 17}),
            8 => serde_json::json!({"short_message": "m", "full_message": p, "level": 3}),
            // A bare secret under a sensitive attribute key, OTLP's list form.
            _ => serde_json::json!({"body": "m", "attributes": [
                {"key": "db.password", "value": {"stringValue": secret}},
                {"key": "code.line", "value": {"intValue": "7"}}]}),
        }
        .to_string();
        let meta = Peer::default().meta(sanitizer());
        let mut state = ConnState::default();
        let mut out = BytesMut::new();
        let res = pipeline().process(&line, &meta, &Received::now(), &mut state, &mut out);
        prop_assert!(res.is_ok(), "{}: {:?}", line, res.err());
        let rec = String::from_utf8_lossy(&out);
        prop_assert!(!rec.contains(&secret), "{} -> {}", line, rec);
    }
}

// ---------------------------------------------------------------------------------------------
// Sanitizing

fn sanitizer() -> &'static Sanitizer {
    static S: OnceLock<Sanitizer> = OnceLock::new();
    S.get_or_init(|| {
        let keys: Vec<String> = DEFAULT_KEYS.iter().map(|k| k.to_string()).collect();
        Sanitizer::new(&keys, &[], false).unwrap()
    })
}

/// Text made of trigger-rich fragments and random bits, so the slow paths run often.
fn text() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        3 => prop::sample::select(&[
            "password", "Password", "token", "api_key", "X-Api-Key", "secret", "cookie",
            "Authorization", "Bearer", "Basic", "dXNlcjpwYXNz", "://", "@", "postgres://u:p@h/d",
            "eyJhbGciOiJIUzI1NiJ9", ".", "eyJzdWIiOiIxIn0", "AKIAABCDEFGHIJKLMNOP", "ghp_",
            "xoxb-", "sk-", "sk_live_", "[REDACTED]", "=", ":", ": ", "\"", "'", "&", ";", ",",
            " ", "\n", "\\", "\\u0070", "hunter2",
            // The shapes of issue 15 and what borders them.
            "-----BEGIN RSA PRIVATE KEY-----", "-----BEGIN PRIVATE KEY-----",
            "-----END RSA PRIVATE KEY-----", "4111", "1111", "4111111111111111", "5555", "-",
            "+", "0.", "AIzaSy", "glpat-", "npm_", "SG.", "?key=", "&sig=", "hooks.slack.com/",
            "AccountKey=", "pass", "db_pass", "dbPass", "bypass", "password ", " is ",
            "\u{200B}", "\u{200D}", "\u{FEFF}", "\u{1F600}", "wJalrXUtnFEMI/K7MDENG/bPxRfiCY",
        ][..]).prop_map(str::to_string),
        2 => "[a-zA-Z0-9_.-]{1,12}",
        1 => ".{0,6}",
    ];
    prop::collection::vec(fragment, 0..16).prop_map(|v| v.concat())
}

/// A secret value: long enough and random enough that it can't appear by chance elsewhere.
fn secret() -> impl Strategy<Value = String> {
    "[A-Za-z0-9]{16,28}".prop_map(|s| format!("Q7{s}"))
}

/// The documented shapes that must be redacted (docs/sanitizing.md), with the secret in them
/// (padded with `x` where a shape has a fixed length).
fn planted(shape: usize, s: &str) -> String {
    match shape {
        0 => format!("password={s}"),
        1 => format!("password: {s}"),
        2 => format!("\"password\": \"{s}\""),
        3 => format!("db_password = '{s}'"),
        4 => format!("Authorization: Bearer {s}"),
        5 => format!("GET /cb?token={s}&x=1"),
        6 => format!("postgres://app:{s}@db:5432/x"),
        7 => format!("X-Api-Key: {s}"),
        8 => format!("clientSecret={s};"),
        9 => format!("Server=db;Uid=sa;Pwd={s};"),
        // Issue 15.
        10 => format!("-----BEGIN RSA PRIVATE KEY-----\n{s}\n-----END RSA PRIVATE KEY-----"),
        11 => format!("-----BEGIN PRIVATE KEY-----\n{s}\n-----END PRIVATE KEY-----"),
        12 => format!("-----BEGIN EC PRIVATE KEY-----\n{s}\n-----END EC PRIVATE KEY-----"),
        13 => format!("-----BEGIN OPENSSH PRIVATE KEY-----\n{s}"),
        14 => format!(
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\n{s}\n-----END ENCRYPTED PRIVATE KEY-----"
        ),
        15 => format!("AKIAIOSFODNN7EXAMPLE {s:x<40}"),
        16 => format!("AIza{s:x<35}"),
        17 => format!("AccountName=a;AccountKey={s};EndpointSuffix=x"),
        18 => format!("Endpoint=sb://a/;SharedAccessKey={s}="),
        19 => format!("https://a.blob.core.windows.net/c?sv=1&sig={s}&sp=r"),
        20 => format!("https://hooks.slack.com/services/T0/B0/{s}"),
        21 => format!("glpat-{s:x<20}"),
        22 => format!("npm_{s:x<36}"),
        23 => format!("GET /geo?q=x&key={s}"),
        24 => format!("the password is {s}"),
        25 => format!("password {s}"),
        26 => format!("db_pass={s}"),
        27 => format!("SMTP-PASS: {s}"),
        28 => format!("dbPass={s}"),
        29 => format!("pass\u{200B}word={s}"),
        30 => format!("api\u{200B}_key: {s}"),
        _ => format!("SG.{s:x<16}.{s:x<16}"),
    }
}
const SHAPES: usize = 32;

/// A card number: 13–19 digits starting with 3–6 or 2221–2720, a valid Luhn digit, written
/// contiguous or, when it has 16 digits, in groups of four with spaces or dashes.
fn card() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            (3u8..=6).prop_map(|d| vec![d]),
            (2221u32..=2720).prop_map(|p| p.to_string().bytes().map(|b| b - b'0').collect()),
        ],
        prop::collection::vec(0u8..10, 18),
        13usize..=19,
        0usize..3,
    )
        .prop_map(|(mut digits, body, len, style)| {
            digits.extend(body);
            digits.truncate(len - 1);
            // The check digit: Luhn over the digits with it appended.
            let sum: u32 = digits
                .iter()
                .rev()
                .enumerate()
                .map(|(i, &d)| {
                    let d = u32::from(d);
                    if i % 2 == 0 {
                        if d * 2 > 9 {
                            d * 2 - 9
                        } else {
                            d * 2
                        }
                    } else {
                        d
                    }
                })
                .sum();
            digits.push(((10 - sum % 10) % 10) as u8);
            let plain: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
            match (style, plain.len()) {
                (1, 16) | (2, 16) => {
                    let sep = if style == 1 { " " } else { "-" };
                    plain
                        .as_bytes()
                        .chunks(4)
                        .map(|c| std::str::from_utf8(c).unwrap_or_default())
                        .collect::<Vec<_>>()
                        .join(sep)
                }
                _ => plain,
            }
        })
}

/// Plain words around the planted pair.
fn prose() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-z]{1,9}", 0..6).prop_map(|w| w.join(" "))
}

proptest! {
    #[test]
    fn redacting_text_is_idempotent(t in text()) {
        let _cpu = crate::util::cpu_share();
        let s = sanitizer();
        let once = s.redact_text(&t).unwrap_or(t);
        prop_assert_eq!(s.redact_text(&once), None, "a second pass changed {:?}", once);
    }

    #[test]
    fn redacting_json_is_idempotent(v in json_value(), t in text()) {
        let _cpu = crate::util::cpu_share();
        let s = sanitizer();
        for raw in [v.to_string(), serde_json::json!({"note": t, "password": v}).to_string()] {
            let once = s.redact_json(&raw).unwrap_or(raw);
            prop_assert!(serde_json::from_str::<Value>(&once).is_ok(), "not JSON: {}", once);
            prop_assert_eq!(s.redact_json(&once), None, "a second pass changed {}", once);
        }
    }

    #[test]
    fn a_planted_secret_never_survives_in_text(
        before in prose(), after in prose(), shape in 0..SHAPES, secret in secret(),
    ) {
        let _cpu = crate::util::cpu_share();
        let t = format!("{before} {} {after}", planted(shape, &secret));
        let out = sanitizer().redact_text(&t).unwrap_or_else(|| t.clone());
        prop_assert!(!out.contains(&secret), "{:?} -> {:?}", t, out);
        prop_assert!(out.contains(REDACTED));
    }

    #[test]
    fn a_planted_card_number_never_survives(before in prose(), after in prose(), card in card()) {
        let _cpu = crate::util::cpu_share();
        let t = format!("{before} {card} {after}");
        let out = sanitizer().redact_text(&t).unwrap_or_else(|| t.clone());
        prop_assert!(!out.contains(&card), "{:?} -> {:?}", t, out);
        prop_assert_eq!(sanitizer().redact_text(&out), None);
        let digits: String = card.chars().filter(char::is_ascii_digit).collect();
        let raw = serde_json::json!({"n": digits.parse::<u64>().unwrap_or(0), "s": card}).to_string();
        let out = sanitizer().redact_json(&raw).unwrap_or_else(|| raw.clone());
        prop_assert!(!out.contains(&digits) && !out.contains(&card), "{} -> {}", raw, out);
    }

    #[test]
    fn a_planted_secret_never_survives_in_json(
        key in prop::sample::select(&["password", "X-Api-Key", "db_password", "refreshToken",
            "clientSecret", "sessionId", "AWS_ACCESS_KEY_ID", "Authorization"][..]),
        nest in 0usize..4, secret in secret(), note in prose(), shape in 0..SHAPES,
    ) {
        let _cpu = crate::util::cpu_share();
        let mut v = serde_json::json!({ key: secret.clone(), "note": note });
        for _ in 0..nest {
            v = serde_json::json!({"user": v, "list": [1, "x"]});
        }
        // And one inside a string value, as free text.
        let raw = serde_json::json!({"ctx": v, "msg": planted(shape, &secret)}).to_string();
        let out = sanitizer().redact_json(&raw).unwrap_or_else(|| raw.clone());
        prop_assert!(!out.contains(&secret), "{} -> {}", raw, out);
    }
}

// ---------------------------------------------------------------------------------------------
// Fingerprinting

/// One piece of a message template: fixed text, or a volatile slot.
#[derive(Debug, Clone)]
enum Piece {
    Word(String),
    Number,
    Hex,
    Uuid,
    Quoted,
}

fn template() -> impl Strategy<Value = Vec<Piece>> {
    prop::collection::vec(
        prop_oneof![
            3 => "[a-zA-Z]{1,10}".prop_map(Piece::Word),
            1 => Just(Piece::Number),
            1 => Just(Piece::Hex),
            1 => Just(Piece::Uuid),
            1 => Just(Piece::Quoted),
        ],
        1..12,
    )
}

/// Fills the slots with values from `seed` (words separate every piece, so the masking rules'
/// word boundaries hold).
fn fill(pieces: &[Piece], seed: u64) -> String {
    let mut x = seed | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    pieces
        .iter()
        .map(|p| match p {
            Piece::Word(w) => w.clone(),
            Piece::Number => (next() % 1_000_000).to_string(),
            Piece::Hex => format!("0x{:x}", next()),
            Piece::Uuid => {
                let (a, b) = (next(), next());
                format!(
                    "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                    a >> 32,
                    (a >> 16) & 0xffff,
                    a & 0xffff,
                    b >> 48,
                    b & 0xffff_ffff_ffff
                )
            }
            Piece::Quoted => {
                let body = "abcdefghij 0123".repeat(3);
                format!("'{}'", &body[..(next() % 40) as usize])
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A JavaScript stack (escaped, as in the JSON line) with fixed functions and files but the
/// deployment directory and line:column varying with `seed`.
fn stack(funcs: &[String], seed: u64) -> String {
    let mut s = String::from("Error: boom");
    for (i, f) in funcs.iter().enumerate() {
        let n = seed.wrapping_mul(31).wrapping_add(i as u64);
        s.push_str(&format!(
            "\\n    at {f} (/srv/release-{}/src/{f}.js:{}:{})",
            n % 97,
            n % 500 + 1,
            n % 80 + 1
        ));
    }
    s
}

proptest! {
    #[test]
    fn fingerprints_ignore_volatile_parts(
        name in prop::option::of("[A-Z][a-zA-Z]{2,12}"),
        pieces in template(),
        funcs in prop::collection::vec("[a-z][a-zA-Z]{2,10}", 0..5),
        a in any::<u64>(), b in any::<u64>(),
    ) {
        let _cpu = crate::util::cpu_share();
        let fa = fingerprint::compute(name.as_deref(), &fill(&pieces, a), Some(&stack(&funcs, a)));
        let fb = fingerprint::compute(name.as_deref(), &fill(&pieces, b), Some(&stack(&funcs, b)));
        prop_assert_eq!(fa, fb, "{:?} vs {:?}", fill(&pieces, a), fill(&pieces, b));
    }

    #[test]
    fn fingerprints_keep_the_error_apart(
        pieces in template(), seed in any::<u64>(), other in "[a-z]{3,10}",
    ) {
        let _cpu = crate::util::cpu_share();
        let msg = fill(&pieces, seed);
        let base = fingerprint::compute(Some("TypeError"), &msg, None);
        prop_assert_ne!(base, fingerprint::compute(Some("RangeError"), &msg, None));
        let longer = format!("{msg} {other}x");
        prop_assert_ne!(base, fingerprint::compute(Some("TypeError"), &longer, None));
    }
}
