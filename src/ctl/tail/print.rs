//! What `qerrorsctl tail` prints: [`Filter`] chooses the records, [`Printer`] passes the chosen
//! lines through unchanged (`--json`) or renders them human-readably ([`format_human`]: one
//! line each, an `advice` record a short indented block), coloured on a terminal, control
//! characters escaped.

use std::borrow::Cow;

use serde_json::Value;

use crate::event::level::Level;

/// Which records are shown.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub min_level: Option<Level>,
    pub service: Option<String>,
    /// A prefix of the fingerprint.
    pub fingerprint: Option<String>,
    /// Empty: every kind.
    pub kinds: Vec<String>,
}

impl Filter {
    /// No condition at all: every line is shown, even one that is not JSON.
    pub fn is_empty(&self) -> bool {
        self.min_level.is_none()
            && self.service.is_none()
            && self.fingerprint.is_none()
            && self.kinds.is_empty()
    }

    /// A record without the field a condition looks at does not match it (`--level warn`
    /// hides `daemon` records, which have no level).
    pub fn matches(&self, rec: &Value) -> bool {
        let s = |k: &str| rec.get(k).and_then(Value::as_str);
        if !self.kinds.is_empty() && !s("kind").is_some_and(|k| self.kinds.iter().any(|w| w == k)) {
            return false;
        }
        if let Some(min) = self.min_level {
            if s("level").and_then(Level::parse).is_none_or(|l| l < min) {
                return false;
            }
        }
        if let Some(want) = &self.service {
            if s("service") != Some(want.as_str()) {
                return false;
            }
        }
        if let Some(prefix) = &self.fingerprint {
            if !s("fingerprint").is_some_and(|f| f.starts_with(prefix.as_str())) {
                return false;
            }
        }
        true
    }
}

/// Filters and renders log lines.
#[derive(Debug, Clone, Default)]
pub struct Printer {
    pub filter: Filter,
    /// The line as in the log, unchanged.
    pub json: bool,
    /// ANSI colours (human output only).
    pub color: bool,
}

impl Printer {
    /// Whether `line` (without its newline) passes the filter.
    pub fn accepts(&self, line: &[u8]) -> bool {
        if line.is_empty() {
            return false;
        }
        if self.filter.is_empty() {
            return true;
        }
        serde_json::from_slice::<Value>(line).is_ok_and(|v| self.filter.matches(&v))
    }

    /// Appends the output for `line` (without its newline), with a newline, if it passes the
    /// filter. Returns whether it did.
    pub fn render(&self, line: &[u8], out: &mut Vec<u8>) -> bool {
        if line.is_empty() {
            return false;
        }
        if self.json && self.filter.is_empty() {
            push_json(out, line);
            out.push(b'\n');
            return true;
        }
        match serde_json::from_slice::<Value>(line) {
            Ok(v) if v.is_object() => {
                if !self.filter.matches(&v) {
                    return false;
                }
                if self.json {
                    push_json(out, line);
                } else {
                    let mut s = String::new();
                    format_human(&v, self.color, &mut s);
                    out.extend_from_slice(s.as_bytes());
                }
            }
            _ => {
                if !self.filter.is_empty() {
                    return false;
                }
                if self.json {
                    push_json(out, line);
                } else {
                    let mut s = String::new();
                    push_clean(&mut s, &String::from_utf8_lossy(line));
                    out.extend_from_slice(s.as_bytes());
                }
            }
        }
        out.push(b'\n');
        true
    }
}

const RESET: &str = "\x1b[0m";
const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";
const SERVICE: &str = "\x1b[35m";
const OTHER_KIND: &str = "\x1b[1;34m";
const OTHER_BODY: &str = "\x1b[3;34m";
/// Width of the time column (`2026-11-28 16:49:03.123Z`).
const TIME_WIDTH: usize = 24;

fn level_color(level: &str) -> &'static str {
    match level {
        "trace" => "\x1b[90m",
        "debug" => "\x1b[36m",
        "info" => "\x1b[32m",
        "warn" => "\x1b[33m",
        "error" => "\x1b[1;31m",
        "fatal" => "\x1b[1;97;41m",
        _ => "",
    }
}

/// One record as one human-readable line (no newline):
///
/// ```text
/// 2026-11-28 16:49:03.123Z ERROR checkout TypeError: Cannot read … [f8d10e90 #17]
/// 2026-11-28 16:49:03.000Z ·daemon· start version=0.1.0
/// ```
///
/// except an `advice` record, which is read rather than scanned: its summary on the first line,
/// then the likely cause and the numbered fix steps, indented under it (`format_advice`).
///
/// Control characters in the record (newlines in messages, escape sequences) are shown
/// escaped, so a record can neither add lines of its own nor drive the terminal.
pub fn format_human(rec: &Value, color: bool, out: &mut String) {
    let s = |k: &str| rec.get(k).and_then(Value::as_str);
    let paint = |out: &mut String, code: &str, text: &str| {
        if color && !code.is_empty() {
            out.push_str(code);
            push_clean(out, text);
            out.push_str(RESET);
        } else {
            push_clean(out, text);
        }
    };
    let time = s("received")
        .or_else(|| s("time"))
        .or_else(|| s("ts"))
        .map(short_time)
        .unwrap_or_default();
    paint(out, DIM, &format!("{time:<TIME_WIDTH$}"));
    out.push(' ');
    let kind = s("kind").unwrap_or("?");
    if kind == "event" {
        let level = s("level").unwrap_or("?");
        paint(
            out,
            level_color(level),
            &format!("{:<5}", level.to_ascii_uppercase()),
        );
        out.push(' ');
        paint(out, SERVICE, s("service").unwrap_or("-"));
        out.push(' ');
        if let Some(name) = s("name") {
            paint(out, BOLD, name);
            out.push_str(": ");
        }
        push_clean(out, s("message").unwrap_or(""));
        let fp: String = s("fingerprint").unwrap_or("").chars().take(8).collect();
        let occ = rec.get("occurrence").and_then(Value::as_u64);
        if !fp.is_empty() || occ.is_some() {
            let mut tail = String::from(" [");
            tail.push_str(&fp);
            if let Some(n) = occ {
                if !fp.is_empty() {
                    tail.push(' ');
                }
                tail.push_str(&format!("#{n}"));
            }
            tail.push(']');
            paint(out, DIM, &tail);
        }
        return;
    }
    paint(out, OTHER_KIND, &format!("·{kind}·"));
    if kind == "advice" {
        if let Some(advice) = rec.get("advice").filter(|a| a.is_object()) {
            format_advice(rec, advice, color, out);
            return;
        }
    }
    let mut body = String::new();
    let mut skip: Vec<&str> = vec!["kind", "received", "time", "ts"];
    match kind {
        "daemon" => {
            body.push_str(s("msg").unwrap_or(""));
            skip.push("msg");
        }
        "dropped" | "suppressed" => {
            if let Some(n) = rec.get("count") {
                body.push_str(&n.to_string());
                skip.push("count");
            }
            if let Some(r) = s("reason") {
                body.push(' ');
                body.push_str(r);
                skip.push("reason");
            }
        }
        _ => {}
    }
    if let Value::Object(m) = rec {
        for (k, v) in m.iter().filter(|(k, _)| !skip.contains(&k.as_str())) {
            if !body.is_empty() {
                body.push(' ');
            }
            body.push_str(k);
            body.push('=');
            match v {
                Value::String(t) if !t.is_empty() && !t.contains([' ', '"', '=']) => {
                    body.push_str(t)
                }
                _ => body.push_str(&v.to_string()),
            }
        }
    }
    out.push(' ');
    paint(out, OTHER_BODY, &body);
}

/// The rest of an `advice` record after its `·advice·` tag:
///
/// ```text
///  [f8d10e90] checkout: A connection was refused: … (rules net-connection-refused, confidence 0.85)
///                          cause: The target service is down, still starting, …
///                          1. Check the host and port …
///                          2. Verify the target is running …
/// ```
fn format_advice(rec: &Value, advice: &Value, color: bool, out: &mut String) {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let paint = |out: &mut String, code: &str, text: &str| {
        if color {
            out.push_str(code);
            push_clean(out, text);
            out.push_str(RESET);
        } else {
            push_clean(out, text);
        }
    };
    let fp: String = s(rec, "fingerprint").chars().take(8).collect();
    out.push(' ');
    paint(out, DIM, &format!("[{fp}]"));
    out.push(' ');
    let service = s(rec, "service");
    if !service.is_empty() {
        paint(out, SERVICE, &service);
        out.push_str(": ");
    }
    paint(out, BOLD, &s(advice, "summary"));
    let mut origin = s(rec, "source");
    let rule = s(advice, "rule");
    if !rule.is_empty() {
        origin.push(' ');
        origin.push_str(&rule);
    }
    if let Some(c) = advice.get("confidence").and_then(Value::as_f64) {
        origin.push_str(&format!(", confidence {c:.2}"));
    }
    if !origin.is_empty() {
        out.push(' ');
        paint(out, DIM, &format!("({origin})"));
    }
    let indent = " ".repeat(TIME_WIDTH + 1);
    let cause = s(advice, "likely_cause");
    if !cause.is_empty() {
        out.push('\n');
        out.push_str(&indent);
        out.push_str("cause: ");
        push_clean(out, &cause);
    }
    let steps = advice.get("fix_steps").and_then(Value::as_array);
    for (i, step) in steps.into_iter().flatten().enumerate() {
        out.push('\n');
        out.push_str(&indent);
        out.push_str(&format!("{}. ", i + 1));
        push_clean(out, step.as_str().unwrap_or(""));
    }
}

/// `2026-11-28T16:49:03.123456Z` → `2026-11-28 16:49:03.123Z` (other shapes unchanged).
fn short_time(t: &str) -> Cow<'_, str> {
    let b = t.as_bytes();
    if b.len() < 20 || b[10] != b'T' || !t.is_char_boundary(19) {
        return Cow::Borrowed(t);
    }
    let (date, rest) = (&t[..10], &t[11..]);
    let secs = &rest[..8];
    let mut frac = "";
    let mut zone = &rest[8..];
    if let Some(f) = zone.strip_prefix('.') {
        let digits = f.bytes().take_while(u8::is_ascii_digit).count();
        frac = &f[..digits.min(3)];
        zone = &f[digits..];
    }
    let dot = if frac.is_empty() { "" } else { "." };
    Cow::Owned(format!("{date} {secs}{dot}{frac}{zone}"))
}

/// Appends `s` with control characters escaped (`\n`, `\t`, `\x1b`, …).
/// A log line as it is, except that characters a terminal would act on are `\u` escapes (the
/// same JSON value; see [`crate::display::json_visible`]). A line that is not UTF-8 is shown
/// with replacement characters.
fn push_json(out: &mut Vec<u8>, line: &[u8]) {
    let text = String::from_utf8_lossy(line);
    out.extend_from_slice(crate::display::json_visible(&text).as_bytes());
}

fn push_clean(out: &mut String, s: &str) {
    out.push_str(&crate::display::visible(s));
}

#[cfg(test)]
mod tests {
    use super::super::tests::ev;
    use super::*;
    use serde_json::json;

    #[test]
    fn filter_by_level_service_fingerprint_kind() {
        let f = Filter {
            min_level: Some(Level::Warn),
            ..Filter::default()
        };
        assert!(f.matches(&ev("warn", "a", "ab")));
        assert!(f.matches(&ev("fatal", "a", "ab")));
        assert!(!f.matches(&ev("info", "a", "ab")));
        assert!(
            !f.matches(&json!({"kind":"daemon","msg":"start"})),
            "no level"
        );
        assert!(!f.matches(&ev("loud", "a", "ab")), "unknown level");

        let f = Filter {
            service: Some("billing".into()),
            ..Filter::default()
        };
        assert!(f.matches(&ev("info", "billing", "ab")));
        assert!(!f.matches(&ev("info", "billing-2", "ab")), "exact service");

        let f = Filter {
            fingerprint: Some("9f2c".into()),
            ..Filter::default()
        };
        assert!(f.matches(&ev("info", "a", "9f2c0011")));
        assert!(!f.matches(&ev("info", "a", "19f2c001")));
        assert!(f.matches(&json!({"kind":"suppressed","fingerprint":"9f2cffff","count":2})));

        let f = Filter {
            kinds: vec!["dropped".into(), "daemon".into()],
            ..Filter::default()
        };
        assert!(f.matches(&json!({"kind":"daemon","msg":"start"})));
        assert!(f.matches(&json!({"kind":"dropped","count":1})));
        assert!(!f.matches(&ev("info", "a", "ab")));
        assert!(Filter::default().matches(&json!({})));
    }

    #[test]
    fn printer_json_passes_lines_unchanged_and_filters() {
        let line = br#"{"kind":"event", "level":"warn","service":"x","message":"m"}"#;
        let mut out = Vec::new();
        let p = Printer {
            json: true,
            ..Printer::default()
        };
        assert!(p.render(line, &mut out));
        assert!(p.render(b"not json", &mut out), "no filter: everything");
        assert!(!p.render(b"", &mut out));
        assert_eq!(out, [&line[..], b"\n", b"not json\n"].concat());

        let p = Printer {
            json: true,
            filter: Filter {
                min_level: Some(Level::Error),
                ..Filter::default()
            },
            ..Printer::default()
        };
        out.clear();
        assert!(!p.render(line, &mut out));
        assert!(!p.render(b"not json", &mut out), "a filter hides non-JSON");
        assert!(!p.accepts(line));
        assert!(out.is_empty());
    }

    #[test]
    fn human_event_line_without_colour() {
        let mut s = String::new();
        format_human(&ev("error", "checkout", "f8d10e90b6354e89"), false, &mut s);
        assert_eq!(
            s,
            "2026-11-28 16:49:03.123Z ERROR checkout TypeError: boom [f8d10e90 #3]"
        );

        let mut s = String::new();
        format_human(
            &json!({"kind":"event","level":"info","message":"two\nlines \u{1b}[31m"}),
            false,
            &mut s,
        );
        assert_eq!(
            s,
            format!("{:24} INFO  - two\\nlines \\x1b[31m", ""),
            "control characters escaped, missing fields tolerated"
        );
    }

    #[test]
    fn human_other_kinds_without_colour() {
        let mut s = String::new();
        format_human(
            &json!({"kind":"daemon","time":"2026-11-28T16:49:03Z","msg":"start","version":"0.1.0","pid":7}),
            false,
            &mut s,
        );
        assert_eq!(
            s,
            "2026-11-28 16:49:03Z     ·daemon· start version=0.1.0 pid=7"
        );
        let mut s = String::new();
        format_human(
            &json!({"kind":"dropped","count":2,"reason":"invalid","codes":{"invalid_json":2},"window_s":1.0}),
            false,
            &mut s,
        );
        assert_eq!(
            s,
            format!(
                "{:24} ·dropped· 2 invalid codes={{\"invalid_json\":2}} window_s=1.0",
                ""
            )
        );
    }

    #[test]
    fn human_advice_block_without_colour() {
        let rec = json!({"kind":"advice","time":"2026-11-28T16:49:03.5Z",
            "fingerprint":"f8d10e90b6354e8920f909a56e497c94","source":"rules",
            "advice":{"summary":"A connection was refused.","likely_cause":"Nothing listens.",
                      "fix_steps":["Check the port.","Start the\nservice."],
                      "confidence":0.85,"rule":"net-connection-refused"},
            "event_id":"01M8HQ46R96D4XDM1ECTH6YYA2","service":"checkout"});
        let mut s = String::new();
        format_human(&rec, false, &mut s);
        let pad = " ".repeat(25);
        assert_eq!(
            s,
            format!(
                "2026-11-28 16:49:03.5Z   ·advice· [f8d10e90] checkout: A connection was refused. \
                 (rules net-connection-refused, confidence 0.85)\n\
                 {pad}cause: Nothing listens.\n\
                 {pad}1. Check the port.\n\
                 {pad}2. Start the\\nservice."
            )
        );
        // Not the shape expected (an older or foreign record): the generic key=value line.
        let mut s = String::new();
        format_human(&json!({"kind":"advice","advice":"?"}), false, &mut s);
        assert_eq!(s, format!("{:24} ·advice· advice=?", ""));
    }

    #[test]
    fn human_colour_marks_level_and_time() {
        let mut s = String::new();
        format_human(&ev("fatal", "checkout", "ab"), true, &mut s);
        assert!(s.starts_with("\x1b[2m2026-11-28"), "{s:?}");
        assert!(s.contains("\x1b[1;97;41mFATAL\x1b[0m"), "{s:?}");
        let mut plain = String::new();
        format_human(&ev("fatal", "checkout", "ab"), false, &mut plain);
        assert!(!plain.contains('\x1b'));
        // Human output through the printer ends with a newline.
        let p = Printer::default();
        let mut out = Vec::new();
        assert!(p.render(ev("info", "a", "b").to_string().as_bytes(), &mut out));
        assert!(
            out.ends_with(b"[b #3]\n"),
            "{}",
            String::from_utf8_lossy(&out)
        );
    }

    #[test]
    fn short_time_shapes() {
        assert_eq!(
            short_time("2026-11-28T16:49:03.123456Z"),
            "2026-11-28 16:49:03.123Z"
        );
        assert_eq!(
            short_time("2026-11-28T16:49:03.1+02:00"),
            "2026-11-28 16:49:03.1+02:00"
        );
        assert_eq!(short_time("yesterday"), "yesterday");
    }
}
