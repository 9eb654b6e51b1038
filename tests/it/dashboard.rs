//! The dashboard (`GET /` of the control server) rendered by headless Chromium: the DOM it
//! builds from the live JSON endpoints, its layout at 1280×1000, and its "daemon unreachable"
//! state.
//!
//! Chromium loads the page through a small proxy ([`spawn_proxy`]) in front of the real daemon:
//! it appends a probe script that writes layout measurements into the DOM (which
//! `--dump-dom` cannot otherwise show), counts the page's `/stats` polls and can fail the later
//! ones, so a test sees exactly what the first poll rendered.
//!
//! Needs `/usr/bin/chromium`. When it is missing the tests install it with apt-get only as root
//! under CI (`CI=true`) or with `QERRORS_INSTALL_CHROMIUM=1`; otherwise they are skipped
//! ([`crate::skip`]: listed at the end of the run, a failure with `QERRORS_REQUIRE_ALL=1`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
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

/// The viewport the layout is checked at, a laptop screen: the page must show its main panels
/// without scrolling at this height.
const VIEWPORT: (u32, u32) = (1280, 1000);
/// How much taller the window is than the viewport it gets: headless Chromium subtracts its
/// (invisible) browser UI from `--window-size`, 143 px in Chromium 156. The layout does not
/// depend on the viewport's height (no `vh` units, no height media queries), so a taller
/// viewport only means nothing is cut off; positions are checked against `VIEWPORT.1`.
const WINDOW_EXTRA_HEIGHT: u32 = 300;

/// `chromium --headless … --dump-dom URL`: the DOM after five seconds of virtual time, in a
/// viewport `VIEWPORT.0` wide and at least `VIEWPORT.1` high.
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
            &format!(
                "--window-size={},{}",
                VIEWPORT.0,
                VIEWPORT.1 + WINDOW_EXTRA_HEIGHT
            ),
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

/// The value of attribute `name` on the element with this id.
fn attr_of<'a>(dom: &'a str, id: &str, name: &str) -> Option<&'a str> {
    let at = dom.find(&format!("id=\"{id}\""))?;
    let tag = &dom[dom[..at].rfind('<')?..];
    let tag = &tag[..tag.find('>')?];
    let key = format!(" {name}=\"");
    let v = &tag[tag.find(&key)? + key.len()..];
    Some(&v[..v.find('"')?])
}

fn num_attr(dom: &str, id: &str, name: &str) -> f64 {
    let v = attr_of(dom, id, name).unwrap_or_else(|| panic!("no {name} on #{id}"));
    v.parse()
        .unwrap_or_else(|_| panic!("{name} on #{id} is not a number: {v:?}"))
}

/// The `<tr>` of the fingerprint table whose error name is `name`.
fn fp_row<'a>(dom: &'a str, name: &str) -> &'a str {
    let table = &dom[dom.find("id=\"fp-body\"").expect("fingerprint table")..];
    let table = &table[..table.find("</tbody>").unwrap()];
    table
        .split("<tr class=\"fp-row\"")
        .skip(1)
        .find(|r| r.contains(&format!("<span class=\"fp-name\">{name}</span>")))
        .unwrap_or_else(|| panic!("no fingerprint row for {name}: {table}"))
}

/// Measures where "Latest warnings and errors" is, every 100 ms of (virtual) time, into the
/// attributes of a hidden `#probe` element.
const PROBE: &str = r##"<script>
setInterval(function () {
  var p = document.getElementById("probe");
  if (!p) { p = document.createElement("div"); p.id = "probe"; p.hidden = true; document.body.append(p); }
  var box = document.getElementById("recent").closest("section").getBoundingClientRect();
  var rows = document.querySelectorAll("#recent li");
  p.setAttribute("data-width", String(window.innerWidth));
  p.setAttribute("data-height", String(window.innerHeight));
  p.setAttribute("data-scroll", String(window.scrollY));
  p.setAttribute("data-top", String(Math.round(box.top)));
  p.setAttribute("data-bottom", String(Math.round(box.bottom)));
  p.setAttribute("data-rows", String(rows.length));
}, 100);
</script>"##;

/// What the proxy saw.
struct Proxy {
    addr: std::net::SocketAddr,
    /// `/stats` requests from the page, and how many of them reached the daemon.
    stats_asked: Arc<AtomicUsize>,
    stats_forwarded: Arc<AtomicUsize>,
}

/// Serves the page with [`PROBE`] appended at `/` and forwards every other GET to the daemon's
/// control address, one connection per request; `/stats` only `stats_limit` times, later ones
/// are answered 503 (a daemon that went away).
fn spawn_proxy(daemon: &str, stats_limit: usize) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = Proxy {
        addr: listener.local_addr().unwrap(),
        stats_asked: Arc::default(),
        stats_forwarded: Arc::default(),
    };
    let page: Arc<str> = PAGE.replace("</body>", &format!("{PROBE}\n</body>")).into();
    let daemon = daemon.to_string();
    let (asked, forwarded) = (proxy.stats_asked.clone(), proxy.stats_forwarded.clone());
    // Ends with the test process.
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let (page, daemon) = (page.clone(), daemon.clone());
            let (asked, forwarded) = (asked.clone(), forwarded.clone());
            thread::spawn(move || {
                proxy_one(conn, &page, &daemon, || {
                    asked.fetch_add(1, Relaxed) < stats_limit && {
                        forwarded.fetch_add(1, Relaxed);
                        true
                    }
                })
            });
        }
    });
    proxy
}

fn proxy_one(mut conn: TcpStream, page: &str, daemon: &str, forward_stats: impl FnOnce() -> bool) {
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    let req = String::from_utf8_lossy(&req);
    let path = req.split(' ').nth(1).unwrap_or("").to_string();
    // The page's token goes on to the daemon, as a browser's would.
    let auth = req
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
        .map_or(String::new(), |l| format!("{l}\r\n"));
    let resp = if path == "/" {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
            page.len()
        )
        .into_bytes()
    } else if path == "/stats" && !forward_stats() {
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            .to_vec()
    } else {
        let Ok(mut up) = TcpStream::connect(daemon) else {
            return;
        };
        let _ = write!(
            up,
            "GET {path} HTTP/1.1\r\nHost: {daemon}\r\n{auth}Connection: close\r\n\r\n"
        );
        let mut resp = Vec::new();
        let _ = up.read_to_end(&mut resp);
        resp
    };
    let _ = conn.write_all(&resp);
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A bare HTTP/1.1 GET with the control token (the control server is loopback-only and
/// speaks plain HTTP).
fn http_get(addr: &str, path: &str, token: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Connection: close\r\n\r\n"
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
    let token = crate::util::control_token(&d);
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
    // The same errors from more services: the pool from billing too (2 services), the cache
    // miss from four.
    let (_, _, name, message) = mix[3];
    for _ in 0..2 {
        lines.push(event_line(
            message,
            json!({"level": "fatal", "service": "billing", "name": name}),
        ));
    }
    let (_, _, name, message) = mix[2];
    for service in ["search", "cart", "auth"] {
        lines.push(event_line(
            message,
            json!({"level": "info", "service": service, "name": name}),
        ));
    }
    // A service name is client text too.
    let (_, _, name, message) = mix[4];
    lines.push(event_line(
        message,
        json!({"level": "error", "service": "<b>svc</b>", "name": name}),
    ));
    let replies = d.send_lines(&lines);
    assert_eq!(
        replies.len(),
        1,
        "only the invalid line is rejected: {replies:?}"
    );
    d.wait_for_events(18, EVENTS_TIMEOUT);
    let stats = wait_until("/stats shows 18 written", EVENTS_TIMEOUT, || {
        let (code, body) = http_get(&addr, "/stats", &token)?;
        let v: Value = serde_json::from_str(&body).ok()?;
        (code == 200 && v["events"]["written"] == 18).then_some(v)
    });
    assert_eq!(
        stats["fingerprints"]["service_sets"], 3,
        "the pool, the cache miss and the probe came from several services: {stats}"
    );
    assert!(stats["events"]["rate"]["total"].is_number(), "{stats}");

    // The built-in rules advise on the TypeError; wait until /fingerprints carries it.
    let rows = wait_until("/fingerprints shows advice", EVENTS_TIMEOUT, || {
        let (code, body) = http_get(&addr, "/fingerprints?top=10", &token)?;
        let v: Value = serde_json::from_str(&body).ok()?;
        let rows = v.as_array()?.clone();
        (code == 200
            && rows
                .iter()
                .any(|r| r["name"] == "TypeError" && r["advice"]["advice"]["summary"].is_string()))
        .then_some(rows)
    });
    let row = |name: &str| rows.iter().find(|r| r["name"] == name).unwrap();
    // `service` stays the first one; `services` has them all, in the order first seen.
    let pool = row("PoolExhausted");
    assert_eq!(pool["service"], "worker", "{pool}");
    assert_eq!(pool["services"], json!(["worker", "billing"]), "{pool}");
    assert_eq!(pool["services_more"], 0, "{pool}");
    assert_eq!(
        row("CacheMiss")["services"],
        json!(["catalog", "search", "cart", "auth"])
    );
    assert_eq!(row("TypeError")["services"], json!(["checkout"]));

    let proxy = spawn_proxy(&addr, usize::MAX);
    let dom = dump_dom(chromium, &format!("http://{}/#token={token}", proxy.addr));
    assert!(proxy.stats_forwarded.load(Relaxed) >= 2, "polled live");
    assert_eq!(text_of(&dom, "status"), "live", "status pill");
    assert_eq!(text_of(&dom, "total-written"), "18");
    assert_eq!(text_of(&dom, "total-accepted"), "18");
    assert_eq!(text_of(&dom, "total-rejected"), "1");
    assert_eq!(text_of(&dom, "total-dropped"), "0");
    assert!(text_of(&dom, "mem-now").ends_with("MiB"), "memory shown");
    assert!(
        text_of(&dom, "ring-events").contains("/ 65,536"),
        "queue capacity: {}",
        text_of(&dom, "ring-events")
    );

    // "Latest warnings and errors", all of it, without scrolling.
    assert_eq!(
        num_attr(&dom, "probe", "data-width"),
        f64::from(VIEWPORT.0),
        "viewport width"
    );
    assert!(num_attr(&dom, "probe", "data-height") >= f64::from(VIEWPORT.1));
    let viewport = f64::from(VIEWPORT.1);
    assert_eq!(num_attr(&dom, "probe", "data-scroll"), 0.0);
    assert_eq!(num_attr(&dom, "probe", "data-rows"), 8.0, "rows listed");
    let (top, bottom) = (
        num_attr(&dom, "probe", "data-top"),
        num_attr(&dom, "probe", "data-bottom"),
    );
    assert!(
        top >= 0.0 && bottom <= viewport,
        "latest warnings and errors at {top}–{bottom} px, the viewport is {viewport} px high"
    );

    // The memory chart's axis fits the RSS it plots (not a fixed budget-sized scale that
    // flattens it): it holds the highest value, with headroom, and not four times over.
    let (vmax, ymax) = (
        num_attr(&dom, "mem-chart", "data-vmax"),
        num_attr(&dom, "mem-chart", "data-ymax"),
    );
    assert!(vmax > 1_000_000.0, "RSS plotted: {vmax}");
    assert!(
        ymax >= vmax && ymax < 4.0 * vmax,
        "memory axis 0–{ymax} for a highest RSS of {vmax}"
    );

    // A fingerprint from several services names them, not only the first.
    let pool = fp_row(&dom, "PoolExhausted");
    let cell = &pool[pool.find("fp-service").expect("service cell")..];
    let cell = &cell[..cell.find("</td>").unwrap()];
    assert!(
        cell.contains(">worker<") && cell.contains(">billing<"),
        "both services shown: {cell}"
    );
    let cache = fp_row(&dom, "CacheMiss");
    let cell = &cache[cache.find("fp-service").expect("service cell")..];
    let cell = &cell[..cell.find("</td>").unwrap()];
    assert!(
        cell.contains(">catalog<") && cell.contains(">search<") && cell.contains(">+2<"),
        "two named, the other two counted: {cell}"
    );
    let xss = fp_row(&dom, "XssProbe");
    let cell = &xss[xss.find("fp-service").expect("service cell")..];
    let cell = &cell[..cell.find("</td>").unwrap()];
    assert!(
        cell.contains(">search<") && cell.contains(">&lt;b&gt;svc&lt;/b&gt;<"),
        "a service name is text: {cell}"
    );
    assert!(!dom.contains("<b>svc"), "a service name became markup");

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

#[test]
fn dashboard_shows_a_rate_from_the_first_poll() {
    let Some(chromium) = chromium() else {
        return skip_note("dashboard_shows_a_rate_from_the_first_poll");
    };
    let addr = format!("127.0.0.1:{}", free_port());
    let d = spawn_daemon(Opts::new().arg("--control").arg(&addr));
    let token = crate::util::control_token(&d);
    let lines: Vec<String> = (0..5)
        .map(|i| event_line(&format!("e{i}"), json!({"level": "error"})))
        .collect();
    d.send_lines(&lines);
    d.wait_for_events(5, EVENTS_TIMEOUT);
    // Only the first /stats reaches the daemon: the page cannot diff two samples.
    let proxy = spawn_proxy(&addr, 1);
    let dom = dump_dom(chromium, &format!("http://{}/#token={token}", proxy.addr));
    assert_eq!(proxy.stats_forwarded.load(Relaxed), 1);
    assert!(
        proxy.stats_asked.load(Relaxed) >= 2,
        "the page polled again (and was refused)"
    );
    assert_eq!(
        text_of(&dom, "total-written"),
        "5",
        "the first poll rendered"
    );
    let rate = text_of(&dom, "rate-now");
    assert!(
        rate.replace(',', "").parse::<f64>().is_ok_and(|r| r >= 0.0),
        "rate after the first poll: {rate:?}"
    );
    let legend = &dom[dom.find("id=\"rate-legend\"").unwrap()..];
    let legend = &legend[..legend.find("</div>").unwrap()];
    assert!(
        legend.contains("error ") && !legend.contains('–'),
        "a rate per level: {legend}"
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

/// Escape sequences, bidi overrides and line separators in every field the page shows are
/// rendered inert: the DOM holds no such character raw, only its visible escape.
#[test]
fn dashboard_shows_hostile_text_inert() {
    let Some(chromium) = chromium() else {
        return skip_note("dashboard_shows_hostile_text_inert");
    };
    let addr = format!("127.0.0.1:{}", free_port());
    let d = spawn_daemon(Opts::new().arg("--control").arg(&addr));
    let token = crate::util::control_token(&d);
    let hostile = crate::display::HOSTILE;
    let line = serde_json::json!({
        "level": "error", "name": format!("E{hostile}"), "message": hostile,
        "service": format!("svc{hostile}"),
    })
    .to_string();
    assert!(d.send_lines(&[line.as_str()]).is_empty());
    d.wait_for_events(1, EVENTS_TIMEOUT);
    let dom = dump_dom(chromium, &format!("http://{addr}/#token={token}"));
    assert_eq!(crate::display::raw_unsafe(&dom), Vec::<char>::new());
    // the event is on the page, with its escapes visible
    assert!(dom.contains("x1b]0;pwned"), "{dom}");
    assert!(dom.contains("\\u202eexe.txt"), "{dom}");
}

/// Over TCP the page shows no event without the token: it asks for it (and says when one is
/// refused), and the daemon answers its requests 401.
#[test]
fn dashboard_without_the_token_shows_no_events() {
    let Some(chromium) = chromium() else {
        return skip_note("dashboard_without_the_token_shows_no_events");
    };
    let addr = format!("127.0.0.1:{}", free_port());
    let d = spawn_daemon(Opts::new().arg("--control").arg(&addr));
    let line = event_line("secret-ish customer message", json!({"level": "error"}));
    assert!(d.send_lines(&[line.as_str()]).is_empty());
    d.wait_for_events(1, EVENTS_TIMEOUT);
    assert_eq!(
        http_get(&addr, "/recent", "wrong-token").map(|r| r.0),
        Some(401)
    );
    for url in [
        format!("http://{addr}/"),
        format!("http://{addr}/#token=not-the-token"),
    ] {
        let dom = dump_dom(chromium, &url);
        let form = &dom[dom.find("id=\"auth\"").unwrap()..];
        assert!(
            !form[..form.find('>').unwrap()].contains("hidden"),
            "{url}: the token form is shown: {form}"
        );
        assert_eq!(text_of(&dom, "total-written"), "–", "{url}: no data");
        assert!(!dom.contains("secret-ish"), "{url}: no event on the page");
        if url.contains("not-the-token") {
            assert_eq!(text_of(&dom, "auth-error"), "that token was refused");
        }
    }
}
