//! The dashboard (`GET /` of the control server) rendered by headless Chromium: the DOM it
//! builds from the live JSON endpoints, and its "daemon unreachable" state.
//!
//! Needs `/usr/bin/chromium`. When it is missing the tests install it with apt-get only as root
//! under CI (`CI=true`) or with `QERRORS_INSTALL_CHROMIUM=1`; otherwise they are skipped
//! ([`crate::skip`]: listed at the end of the run, a failure with `QERRORS_REQUIRE_ALL=1`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

use serde_json::{json, Value};

use crate::util::{event_line, spawn_daemon, wait_until, Opts, EVENTS_TIMEOUT};

const CHROMIUM: &str = "/usr/bin/chromium";
const PAGE: &str = include_str!("../../assets/dashboard.html");

/// Chromium, installed on demand where allowed (once per test run).
fn chromium() -> Option<&'static Path> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            if Path::new(CHROMIUM).exists() {
                return Some(PathBuf::from(CHROMIUM));
            }
            let root = nix::unistd::geteuid().is_root();
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            let asked = std::env::var("QERRORS_INSTALL_CHROMIUM").is_ok_and(|v| v == "1");
            if (root && ci) || asked {
                eprintln!("dashboard tests: installing chromium with apt-get");
                let apt = |args: &[&str]| {
                    Command::new("apt-get")
                        .args(args)
                        .env("DEBIAN_FRONTEND", "noninteractive")
                        .stdin(Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success())
                };
                if !apt(&["install", "-y", "-q", "chromium"]) {
                    apt(&["update", "-q"]);
                    apt(&["install", "-y", "-q", "chromium"]);
                }
            }
            Path::new(CHROMIUM)
                .exists()
                .then(|| PathBuf::from(CHROMIUM))
        })
        .as_deref()
}

fn skip_note(test: &str) {
    crate::skip::skip(
        test,
        CHROMIUM,
        "apt-get install chromium, or QERRORS_INSTALL_CHROMIUM=1 to let the test install it",
    );
}

/// `chromium --headless … --dump-dom URL`: the DOM after five seconds of virtual time.
fn dump_dom(chromium: &Path, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args([
            "--window-size=1280,800",
            "--virtual-time-budget=5000",
            "--dump-dom",
            url,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning chromium");
    let mut out = child.stdout.take().unwrap();
    let reader = thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).unwrap();
        s
    });
    let st = crate::util::wait_child(&mut child, Duration::from_secs(120));
    let dom = reader.join().unwrap();
    assert!(st.success(), "chromium exited with {st}");
    assert!(dom.contains("</html>"), "no DOM dumped: {dom:?}");
    dom
}

/// The text of the element with this id (its first text node).
fn text_of<'a>(dom: &'a str, id: &str) -> &'a str {
    let key = format!("id=\"{id}\"");
    let at = dom
        .find(&key)
        .unwrap_or_else(|| panic!("no element with {key} in the DOM"));
    let rest = &dom[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest[start..].find('<').unwrap() + start;
    &rest[start..end]
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A bare HTTP/1.1 GET (the control server is loopback-only and speaks plain HTTP).
fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let status = resp.split(' ').nth(1)?.parse().ok()?;
    let body = resp.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

#[test]
fn dashboard_renders_live_data() {
    let Some(chromium) = chromium() else {
        return skip_note("dashboard_renders_live_data");
    };
    let addr = format!("127.0.0.1:{}", free_port());
    let d = spawn_daemon(Opts::new().arg("--control").arg(&addr));
    let mut lines = vec!["{not json".to_string()];
    let mix = [
        (
            "error",
            "checkout",
            "TypeError",
            "Cannot read properties of undefined (reading 'id')",
        ),
        (
            "warn",
            "billing",
            "CardDeclined",
            "card declined for order 4411",
        ),
        (
            "info",
            "catalog",
            "CacheMiss",
            "cache miss for key product:981",
        ),
        (
            "fatal",
            "worker",
            "PoolExhausted",
            "database pool exhausted",
        ),
        (
            "error",
            "search",
            "XssProbe",
            "<img src=x onerror=alert(1)>",
        ),
    ];
    for i in 0..12 {
        let (level, service, name, message) = mix[[0, 0, 0, 1, 1, 2, 3, 4][i % 8]];
        lines.push(event_line(
            message,
            json!({"level": level, "service": service, "name": name}),
        ));
    }
    let replies = d.send_lines(&lines);
    assert_eq!(
        replies.len(),
        1,
        "only the invalid line is rejected: {replies:?}"
    );
    d.wait_for_events(12, EVENTS_TIMEOUT);
    wait_until("/stats shows 12 written", EVENTS_TIMEOUT, || {
        let (code, body) = http_get(&addr, "/stats")?;
        let v: Value = serde_json::from_str(&body).ok()?;
        (code == 200 && v["events"]["written"] == 12).then_some(())
    });

    // The built-in rules advise on the TypeError; wait until /fingerprints carries it.
    wait_until("/fingerprints shows advice", EVENTS_TIMEOUT, || {
        let (code, body) = http_get(&addr, "/fingerprints?top=10")?;
        let v: Value = serde_json::from_str(&body).ok()?;
        let rows = v.as_array().or_else(|| v["fingerprints"].as_array())?;
        (code == 200
            && rows
                .iter()
                .any(|r| r["name"] == "TypeError" && r["advice"]["advice"]["summary"].is_string()))
        .then_some(())
    });

    let dom = dump_dom(chromium, &format!("http://{addr}/"));
    assert_eq!(text_of(&dom, "status"), "live", "status pill");
    assert_eq!(text_of(&dom, "total-written"), "12");
    assert_eq!(text_of(&dom, "total-accepted"), "12");
    assert_eq!(text_of(&dom, "total-rejected"), "1");
    assert_eq!(text_of(&dom, "total-dropped"), "0");
    assert!(text_of(&dom, "mem-now").ends_with("MiB"), "memory shown");
    assert!(
        text_of(&dom, "ring-events").contains("/ 65,536"),
        "queue capacity: {}",
        text_of(&dom, "ring-events")
    );

    let table = &dom[dom.find("id=\"fp-body\"").expect("fingerprint table")..];
    let table = &table[..table.find("</tbody>").unwrap()];
    assert!(table.contains("<tr class=\"fp-row\""), "{table}");
    for name in ["TypeError", "CardDeclined", "CacheMiss", "PoolExhausted"] {
        assert!(
            table.contains(&format!("<span class=\"fp-name\">{name}</span>")),
            "no fingerprint row for {name}: {table}"
        );
    }
    // The most frequent first: TypeError was sent 6 times.
    let first = &table[table.find("<tr class=\"fp-row\"").unwrap()..];
    assert!(
        first[..first.find("</tr>").unwrap()].contains("TypeError"),
        "{first}"
    );
    // Fix advice under its error: the summary and where it came from, not raw JSON.
    let first_row = &first[..first.find("</tr>").unwrap()];
    let advice = &first_row[first_row
        .find("class=\"fp-advice\"")
        .unwrap_or_else(|| panic!("no advice under the TypeError: {first_row}"))..];
    assert!(
        advice.contains("Code accessed a property of a value that is undefined or null."),
        "{advice}"
    );
    assert!(
        advice.contains("<span class=\"fp-advice-src\">rules</span>"),
        "{advice}"
    );
    assert!(
        !advice.contains("{&quot;"),
        "advice shown as JSON: {advice}"
    );
    // Client text is never markup.
    assert!(
        dom.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "escaped message"
    );
    assert!(!dom.contains("<img"), "an event message became markup");

    let breakers = &dom[dom.find("id=\"breakers\"").unwrap()..];
    assert!(
        breakers[..breakers.find("</ul>").unwrap()].contains("none configured"),
        "{breakers}"
    );
    let services = &dom[dom.find("id=\"services\"").unwrap()..];
    assert!(services.contains(">checkout<"), "top services listed");
    let recent = &dom[dom.find("id=\"recent\"").unwrap()..];
    let recent = &recent[..recent.find("</ol>").unwrap()];
    assert!(
        recent.contains("PoolExhausted"),
        "recent warn+ events: {recent}"
    );
    assert!(
        !recent.contains("CacheMiss"),
        "info is below warn: {recent}"
    );
}

/// Serves the page and fails every API request, like a daemon that went away after the page
/// loaded.
fn serve_page_only(listener: TcpListener) {
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        let mut buf = [0u8; 4096];
        let n = conn.read(&mut buf).unwrap_or(0);
        let req = String::from_utf8_lossy(&buf[..n]);
        let path = req.split(' ').nth(1).unwrap_or("");
        let resp = if path == "/" {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{PAGE}",
                PAGE.len()
            )
        } else {
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_string()
        };
        let _ = conn.write_all(resp.as_bytes());
    }
}

#[test]
fn dashboard_shows_an_unreachable_daemon() {
    let Some(chromium) = chromium() else {
        return skip_note("dashboard_shows_an_unreachable_daemon");
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Ends with the test process.
    thread::spawn(move || serve_page_only(listener));
    let dom = dump_dom(chromium, &format!("http://{addr}/"));
    assert_eq!(text_of(&dom, "status"), "daemon unreachable");
    let banner = &dom[dom.find("id=\"banner\"").unwrap()..];
    assert!(
        !banner[..banner.find('>').unwrap()].contains("hidden"),
        "banner shown: {banner}"
    );
    assert_eq!(text_of(&dom, "total-written"), "–", "no data invented");
}
