//! Secrets never reach the log: the raw bytes of every log file (and the daemon's own stderr)
//! are searched for the planted values; for the shapes of issue 15 also the control plane
//! (`/recent`, `/fingerprints`, `/stats`, `/metrics`) and the prompts a loopback LLM receives.

use std::process::{Command, Stdio};
use std::time::Duration;

use qerrors::ctl::client::{control_get, control_json};
use serde_json::{json, Value};

use crate::llm_server::{LlmServer, Mode, MODEL};
use crate::util::{
    control_addr, event_line, of_kind, spawn_daemon, wait_until, Daemon, Opts, CTL, EVENTS_TIMEOUT,
};

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

/// Each shape of issue 15 with the parts of it that must never be seen again. `Q7` marks the
/// secret parts so they cannot turn up by chance.
fn planted_shapes() -> Vec<(String, Vec<&'static str>)> {
    let mut shapes: Vec<(String, Vec<&'static str>)> = Vec::new();
    for (kind, body) in [
        ("RSA ", "MIIEQ7pemRSAbody"),
        ("", "MIIEQ7pemPKCS8body"),
        ("EC ", "MHcCQ7pemECbody"),
        ("OPENSSH ", "b3BlQ7pemOpenSSHbody"),
        ("ENCRYPTED ", "MIIFQ7pemEncryptedbody"),
    ] {
        shapes.push((
            format!("-----BEGIN {kind}PRIVATE KEY-----\n{body}\nQ7more==\n-----END {kind}PRIVATE KEY-----"),
            vec![body],
        ));
    }
    let rest: [(&str, &[&'static str]); 19] = [
        ("charge 4111111111111111 declined", &["4111111111111111"]),
        ("charge 4111 1111 1111 1111 declined", &["4111 1111 1111 1111"]),
        ("charge 5555-5555-5555-4444 declined", &["5555-5555-5555-4444"]),
        ("amex 378282246310005 declined", &["378282246310005"]),
        (
            "creds AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYQ7AWSSECRT",
            &["AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYQ7AWSSECRT"],
        ),
        ("maps AIzaSyQ7googleKey0123456789abcdefghijkl quota", &["Q7googleKey"]),
        (
            "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=Q7azureAccountKey+/==;EndpointSuffix=core.windows.net",
            &["Q7azureAccountKey"],
        ),
        (
            "Endpoint=sb://acme.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=Q7azureShared=",
            &["Q7azureShared"],
        ),
        (
            "GET https://acme.blob.core.windows.net/c/b?sv=2022-11-02&sig=Q7azureSig%2B&sp=r 403",
            &["Q7azureSig"],
        ),
        (
            "POST https://hooks.slack.com/services/T0000/B0000/Q7slackWebhook failed",
            &["Q7slackWebhook"],
        ),
        ("push glpat-Q7gitlabToken0123456 denied", &["Q7gitlabToken"]),
        (
            "publish npm_Q7npmToken0123456789abcdefghijklmnop 401",
            &["Q7npmToken"],
        ),
        (
            "send SG.Q7sendgridId0123456.Q7sendgridSecret012345 down",
            &["Q7sendgridId", "Q7sendgridSecret"],
        ),
        (
            "GET https://maps.example.com/geo?q=x&key=Q7queryKey 403",
            &["Q7queryKey"],
        ),
        ("login failed: the password is Q7proseA1", &["Q7proseA1"]),
        ("password Q7proseB2 rejected", &["Q7proseB2"]),
        (
            "db_pass=Q7dbPass1 smtp-pass: Q7smtpPass2 dbPass=Q7camelPass3",
            &["Q7dbPass1", "Q7smtpPass2", "Q7camelPass3"],
        ),
        (
            "pass\u{200B}word=Q7zeroWidth1 api\u{200B}_key=Q7zeroWidth2",
            &["Q7zeroWidth1", "Q7zeroWidth2"],
        ),
        (
            "to\u{2060}ken: Q7zeroWidth3 Bea\u{FEFF}rer Q7zeroWidth4",
            &["Q7zeroWidth3", "Q7zeroWidth4"],
        ),
    ];
    shapes.extend(rest.iter().map(|(t, s)| (t.to_string(), s.to_vec())));
    shapes
}

/// An event with `text` in every field a client controls: message, name, code, service, stack,
/// context (also a card as a JSON number), tags and an unmapped field.
fn everywhere(i: usize, text: &str) -> String {
    json!({
        "message": format!("shape {i}: {text}"),
        "name": format!("Shape{i}Error {text}"),
        "code": text,
        "service": format!("svc{i} {text}"),
        "stack": format!("Error: shape {i}\n    at f (/srv/a.js:1:2)\n{text}"),
        "context": {"detail": text, "card": 4111111111111111u64, "nested": [{"v": text}]},
        "tags": {"t": text},
        "unmapped_note": text,
        "ack": true,
    })
    .to_string()
}

/// Where a secret could still be after the daemon has taken the events in: every log file, its
/// stderr, `/recent`, `/fingerprints`, `/stats`, `/metrics`.
fn leaks_everywhere(d: &Daemon, addr: &str, secrets: &[&str]) -> Vec<String> {
    let mut places: Vec<(String, String)> = d
        .log_files()
        .iter()
        .map(|f| {
            let text = String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned();
            (f.display().to_string(), text)
        })
        .collect();
    places.push(("stderr".into(), d.stderr_text()));
    for path in [
        "/recent?n=1000",
        "/fingerprints?top=1000",
        "/stats",
        "/metrics",
    ] {
        let (status, body) = control_get(addr, path).unwrap();
        assert_eq!(status, 200, "{path}");
        places.push((path.into(), body));
    }
    let mut leaks = Vec::new();
    for (place, text) in &places {
        // JSON escapes `/` nowhere and non-ASCII not at all here, so the raw spelling is it.
        for s in secrets {
            if text.contains(s) {
                leaks.push(format!("{s:?} in {place}"));
            }
        }
    }
    leaks
}

/// Issue 15: planted secrets of every shape, in every field including `service`, reach neither
/// the log nor the control plane nor the LLM prompt.
#[test]
fn every_shape_in_every_field_stays_out_of_log_control_plane_and_prompt() {
    let server = LlmServer::start(Mode::Ok {
        delay: Duration::ZERO,
    });
    let d = spawn_daemon(
        Opts::new()
            .env("ANALYSIS_LLM_BASE_URL", server.base_url())
            .env("ANALYSIS_LLM_MODEL", MODEL)
            .env("ANALYSIS_CACHE_FILE", "off")
            .env("CONTROL_METRICS_SERVICES", true),
    );
    let addr = control_addr(&d);
    let shapes = planted_shapes();
    let lines: Vec<String> = shapes
        .iter()
        .enumerate()
        .map(|(i, (text, _))| everywhere(i, text))
        .collect();
    let replies = d.send_lines(&lines);
    assert_eq!(
        replies.iter().filter(|r| r["ok"] == true).count(),
        lines.len(),
        "{replies:?}"
    );
    d.wait_for_events(lines.len(), EVENTS_TIMEOUT);
    // Every new fingerprint is analysed; wait until all analyses are done.
    wait_until("analyses", EVENTS_TIMEOUT, || {
        let a = control_json(&addr, "/stats").ok()?["analysis"].clone();
        (a["completed"].as_u64()? >= lines.len() as u64).then_some(())
    });
    let secrets: Vec<&str> = shapes.iter().flat_map(|(_, s)| s.iter().copied()).collect();
    let mut leaks = leaks_everywhere(&d, &addr, &secrets);
    let prompts = server.bodies();
    // One prompt per fingerprint that no built-in rule explains: most of them.
    assert!(
        prompts.len() >= lines.len() / 2,
        "{} prompts for {} events",
        prompts.len(),
        lines.len()
    );
    for body in &prompts {
        for s in &secrets {
            if body.contains(s) {
                leaks.push(format!("{s:?} in an LLM prompt: {body}"));
            }
        }
    }
    assert!(leaks.is_empty(), "secrets leaked: {leaks:#?}");

    // Redacted, not dropped: the events say where the secret was.
    let events = d.events();
    assert_eq!(events.len(), lines.len());
    for e in &events {
        for field in [
            "message",
            "name",
            "code",
            "service",
            "stack",
            "unmapped_note",
        ] {
            let v = e[field].as_str().or_else(|| e["extra"][field].as_str());
            assert!(
                v.is_some_and(|v| v.contains("[REDACTED]")),
                "{field} of {e}"
            );
        }
        assert_eq!(e["context"]["card"], "[REDACTED]", "{e}");
    }
    // The service labels of /metrics are the redacted services.
    let metrics = control_get(&addr, "/metrics").unwrap().1;
    assert!(metrics.contains("[REDACTED]"), "{metrics}");
    assert!(prompts.iter().any(|p| p.contains("[REDACTED]")));
}

/// What looks like a secret only at a glance is left alone, end to end.
#[test]
fn numbers_and_words_that_are_not_secrets_stay() {
    let mut d = spawn_daemon(Opts::new());
    let kept = [
        "order 48151623 for customer 4711, ts 1764345943123, id 1764345943123456789",
        "request 6f1c2a9e-3b7d-4c55-9a1e-0d2f8e7b6c41 from +49 151 12345678",
        "node v18.19.1, ISBN 978-3-16-148410-0, score 0.41111111111111116",
        "compass bypass passport: 3 tests passed",
        "password reset failed for bob",
        "-----BEGIN CERTIFICATE-----",
    ];
    let lines: Vec<String> = kept.iter().map(|m| event_line(m, json!({}))).collect();
    let replies = d.send_lines(&lines);
    assert!(replies.is_empty(), "{replies:?}");
    d.wait_for_events(lines.len(), EVENTS_TIMEOUT);
    let records = d.stop();
    let events = of_kind(&records, "event");
    let messages: Vec<&str> = events
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    for m in kept {
        assert!(messages.contains(&m), "{m:?} not kept: {messages:?}");
    }
}

/// `sanitize.emails = true` redacts the local part of addresses; the default keeps them.
#[test]
fn emails_are_redacted_when_configured() {
    let line = event_line("mail to bob.q7mail@example.com bounced", json!({}));
    let mut d = spawn_daemon(Opts::new().env("SANITIZE_EMAILS", true));
    d.send_lines(std::slice::from_ref(&line));
    d.wait_for_events(1, EVENTS_TIMEOUT);
    let records = d.stop();
    assert_eq!(
        of_kind(&records, "event")[0]["message"],
        "mail to [REDACTED]@example.com bounced"
    );
    let mut d = spawn_daemon(Opts::new());
    d.send_lines(&[line]);
    d.wait_for_events(1, EVENTS_TIMEOUT);
    let records = d.stop();
    assert_eq!(
        of_kind(&records, "event")[0]["message"],
        "mail to bob.q7mail@example.com bounced"
    );
}

/// The peer's command name is the client's to choose (`prctl`, or the name it runs under) and is
/// the default `service`: it is redacted in `peer.comm`, the record's `service` and `/metrics`.
#[test]
fn a_secret_in_the_process_name_is_redacted() {
    let mut d = spawn_daemon(Opts::new());
    let addr = control_addr(&d);
    let dir = tempfile::tempdir().unwrap();
    // 15 bytes, what the kernel keeps of a command name.
    let link = dir.path().join("pwd=Q7commSec1");
    std::os::unix::fs::symlink(CTL, &link).unwrap();
    let mut cmd = Command::new(&link);
    crate::util::scrub_env(&mut cmd);
    let out = cmd
        .arg("--socket")
        .arg(&d.socket)
        .args(["send", "from a named process", "--wait"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    d.wait_for_events(1, EVENTS_TIMEOUT);
    let leaks = leaks_everywhere(&d, &addr, &["Q7commSec1"]);
    assert!(leaks.is_empty(), "{leaks:#?}");
    let records = d.stop();
    let e = &of_kind(&records, "event")[0];
    assert_eq!(e["service"], "pwd=[REDACTED]", "{e}");
    assert_eq!(e["peer"]["comm"], "pwd=[REDACTED]", "{e}");
}
