//! Secrets never reach the log: the raw bytes of every log file (and the daemon's own stderr)
//! are searched for the planted values.

use serde_json::{json, Value};

use crate::util::{event_line, of_kind, spawn_daemon, Daemon, Opts, EVENTS_TIMEOUT};

/// Sends the events, stops the daemon, and checks that none of `secrets` appears anywhere in
/// what it wrote, while every event was still written.
fn assert_never_logged(d: &mut Daemon, lines: &[String], secrets: &[&str]) {
    let replies = d.send_lines(lines);
    assert!(replies.is_empty(), "{replies:?}");
    d.wait_for_events(lines.len(), EVENTS_TIMEOUT);
    let records = d.stop();
    assert_eq!(of_kind(&records, "event").len(), lines.len());
    let mut leaks = Vec::new();
    for f in d.log_files() {
        let bytes = std::fs::read(&f).unwrap();
        for s in secrets {
            if contains(&bytes, s.as_bytes()) {
                leaks.push(format!("{s:?} in {}", f.display()));
            }
        }
    }
    let stderr = d.stderr_text();
    for s in secrets {
        if stderr.contains(s) {
            leaks.push(format!("{s:?} in the daemon's stderr"));
        }
    }
    assert!(leaks.is_empty(), "secrets leaked: {leaks:#?}");
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn secrets_in_message_context_and_stack_are_redacted() {
    let mut d = spawn_daemon(Opts::new());
    let lines = [
        event_line(
            "login failed for bob password=hunter2SECRET1 retry later",
            json!({}),
        ),
        event_line(
            "upstream said 401",
            json!({"context": {"request": {"headers": {"Authorization": "Bearer tokSECRET2abc"}, "path": "/api"}}}),
        ),
        event_line(
            "db connect failed",
            json!({"stack": "Error: connect ECONNREFUSED\n    at connect (postgres://dbuser:pwSECRET3@db.internal:5432/app)\n    at main (/srv/app/main.js:1:1)"}),
        ),
        event_line(
            "third-party call failed",
            json!({"context": {"api_key": "akSECRET4xyz", "vendor": "maps"}}),
        ),
    ];
    assert_never_logged(
        &mut d,
        &lines,
        &[
            "hunter2SECRET1",
            "tokSECRET2abc",
            "pwSECRET3",
            "akSECRET4xyz",
        ],
    );
}

/// The same secrets in the other places a client may put them: the message as a URL or
/// header, `name`, `tags`, and unknown top-level fields (`extra`).
#[test]
fn secrets_elsewhere_in_the_event_are_redacted() {
    let mut d = spawn_daemon(Opts::new());
    let lines: Vec<String> = [
        ("fetch postgres://svc:pwSECRET5@db:5432/x failed", json!({})),
        ("bad header Authorization: Bearer tokSECRET6abc", json!({})),
        ("m", json!({"tags": {"token": "tagSECRET7"}})),
        (
            "m",
            json!({"password": "extraSECRET8", "session": {"secret": "extraSECRET9"}}),
        ),
        (
            "m",
            json!({"context": {"nested": [{"Password": "ctxSECRET10"}]}}),
        ),
    ]
    .iter()
    .map(|(m, f): &(&str, Value)| event_line(m, f.clone()))
    .collect();
    assert_never_logged(
        &mut d,
        &lines,
        &[
            "pwSECRET5",
            "tokSECRET6abc",
            "tagSECRET7",
            "extraSECRET8",
            "extraSECRET9",
            "ctxSECRET10",
        ],
    );
}
