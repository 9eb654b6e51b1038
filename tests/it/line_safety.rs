//! Every record is exactly one line for every reader: raw CR (JSON whitespace in a client's
//! `context`) and raw U+2028, U+2029 and U+0085 (valid inside JSON strings) never reach the log
//! file; Python's `splitlines()`, Node's `readline` and `jq` each read back one record per event.

use std::process::Command;

use crate::skip::require_tool;
use crate::util::{spawn_daemon, Opts, EVENTS_TIMEOUT};

#[test]
fn separators_and_cr_from_clients_do_not_split_records() {
    const TEST: &str = "line_safety::separators_and_cr_from_clients_do_not_split_records";
    if !require_tool(TEST, "python3", "apt-get install python3")
        || !require_tool(TEST, "node", "apt-get install nodejs")
        || !require_tool(TEST, "jq", "apt-get install jq")
    {
        return;
    }
    let mut d = spawn_daemon(Opts::new());
    let sep = "\u{2028}|\u{2029}|\u{85}";
    let lines = [
        // in every decoded field: message, name, code, service, stack, tags, context, extra
        serde_json::json!({
            "message": format!("m{sep}"), "name": format!("N{sep}"), "code": format!("C{sep}"),
            "service": format!("s{sep}"), "stack": format!("at f (a.js:1:2){sep}"),
            "tags": {"t": sep}, "context": {"k": sep, "nested": [sep]}, "unmapped": sep,
        })
        .to_string(),
        // raw CR and CRLF as whitespace between the context's tokens, separators raw in strings
        format!("{{\"message\":\"cr\",\"context\":{{\"a\":1,\r\"b\":\"{sep}\"\r ,\"c\":[1,\r2]}}}}"),
        // a logger line (pino) whose unmapped fields are kept under extra
        format!("{{\"level\":50,\"time\":1700000000000,\"msg\":\"pino{sep}\",\"req\":{{\"u\":\"{sep}\",\r\"v\":2}}}}"),
    ];
    for l in &lines {
        assert!(!l.contains('\n'));
    }
    let replies = d.send_lines(&lines);
    assert!(replies.is_empty(), "{replies:?}");
    d.wait_for_events(3, EVENTS_TIMEOUT);
    let records = d.stop();
    let n = records.len();
    let bytes = std::fs::read(&d.log).unwrap();
    for (what, needle) in [
        ("CR", &b"\r"[..]),
        ("U+2028", "\u{2028}".as_bytes()),
        ("U+2029", "\u{2029}".as_bytes()),
        ("U+0085", "\u{85}".as_bytes()),
    ] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "raw {what} in the log"
        );
    }
    let events = crate::util::of_kind(&records, "event");
    assert_eq!(events.len(), 3);
    // The values survive: escaped, not dropped.
    assert_eq!(events[0]["message"], format!("m{sep}"));
    assert_eq!(events[0]["service"], format!("s{sep}"));
    assert_eq!(events[1]["context"]["b"], sep);

    let log = d.log.to_str().unwrap().to_string();
    let count = |program: &str, args: &[&str]| -> usize {
        let out = Command::new(program).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{program}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    let py = "import sys, json\n\
              lines = open(sys.argv[1], encoding='utf-8').read().splitlines()\n\
              [json.loads(l) for l in lines]\n\
              print(len(lines))";
    assert_eq!(count("python3", &["-c", py, &log]), n, "python splitlines");
    let js = "const rl = require('readline').createInterface({input: require('fs').createReadStream(process.argv[1])});\
              let n = 0; rl.on('line', (l) => { JSON.parse(l); n++; }); rl.on('close', () => console.log(n));";
    assert_eq!(count("node", &["-e", js, &log]), n, "node readline");
    let out = Command::new("jq")
        .args(["-c", "."])
        .arg(&log)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        n,
        "jq"
    );
}
