//! The LLM client's transport rules (issue 15, item 10), against real servers on loopback:
//! redirects are never followed (a 3xx is a failed call the breaker sees), plain `http://` only
//! to loopback (never through a proxy) or with `llm_allow_http`, no credentials in the URL,
//! certificates checked against `SSL_CERT_FILE` / `SSL_CERT_DIR` like Redis's, and no config
//! value repeated by any error: `--check-config`, `qerrorsctl check-config`, the
//! `config reload rejected` record, `/stats` and stderr.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use qerrors::ctl::client::control_json;
use serde_json::Value;

use crate::analysis::{analysis, llm_opts, refused_event, send_acked, stats, wait_completed};
use crate::limit_support::tool_available;
use crate::llm_server::{LlmServer, Mode};
use crate::tls_support::throwaway_ca;
use crate::util::{self, control_addr, scrub_env, spawn_daemon, Opts, CTL, DAEMON};

/// The key the daemon is given (through an environment variable, as it should be).
const KEY: &str = "sk-test-transport-key-5150";
/// A key pasted where the variable's *name* belongs.
const PASTED: &str = "sk-proj-PastedByMistake0123456789abcdef";

fn ok_mode() -> Mode {
    Mode::Ok {
        delay: Duration::ZERO,
    }
}

#[test]
fn redirects_are_not_followed_and_count_as_failures() {
    // Where the redirects point: another origin on loopback, which must hear nothing.
    let elsewhere = LlmServer::start(ok_mode());
    let target = format!("{}/chat/completions", elsewhere.base_url());
    let server = LlmServer::start(Mode::Redirect {
        status: 307,
        location: target.clone(),
    });
    let d = spawn_daemon(
        llm_opts(&server.base_url())
            .env("ANALYSIS_LLM_API_KEY_ENV", "TEST_LLM_KEY")
            .raw_env("TEST_LLM_KEY", KEY),
    );
    let addr = control_addr(&d);
    // 307 (re-POST with the body) and 302 to another origin; 308 to the same origin, where a
    // client following redirects would keep the Authorization header.
    let cases = [
        (307, target.clone(), "alpha"),
        (302, target, "bravo"),
        (308, "/v1/elsewhere/chat/completions".to_string(), "charlie"),
    ];
    for (n, (status, location, tag)) in cases.into_iter().enumerate() {
        server.set_mode(Mode::Redirect { status, location });
        send_acked(&d, &[refused_event(tag)]);
        wait_completed(&addr, n as u64 + 1);
    }
    let a = analysis(&addr);
    let llm = &a["llm"];
    // One request per analysis: a 3xx is neither followed nor retried.
    assert_eq!(server.requests(), 3, "{a}");
    assert_eq!(llm["calls"], 3, "{a}");
    assert_eq!(llm["failures"], 3, "{a}");
    assert_eq!(llm["retries"], 0, "{a}");
    assert_eq!(llm["successes"], 0, "{a}");
    for head in server.heads() {
        assert!(head.starts_with("POST /v1/chat/completions "), "{head}");
    }
    let conns = elsewhere
        .seen
        .connections
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        (conns, elsewhere.requests()),
        (0, 0),
        "the other origin was contacted"
    );
    // The breaker counts them: 3 failures in 3 calls (min_calls 3) open it.
    assert_eq!(stats(&addr)["breakers"]["llm"]["state"], "open");
    let mut d = d;
    let records = d.stop();
    let advice = util::of_kind(&records, "advice");
    assert_eq!(advice.len(), 3, "{advice:?}");
    assert!(advice.iter().all(|r| r["source"] == "rules"), "{advice:?}");
    assert!(!d.stderr_text().contains(KEY));
}

#[test]
fn loopback_http_never_goes_through_a_proxy() {
    // A "proxy" that would answer if asked: it must not be.
    let proxy = LlmServer::start(ok_mode());
    let server = LlmServer::start(ok_mode());
    let proxy_url = format!("http://{}", proxy.addr);
    let mut opts = llm_opts(&server.base_url());
    for var in ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] {
        opts = opts.raw_env(var, &proxy_url);
    }
    let d = spawn_daemon(opts.raw_env("NO_PROXY", "").raw_env("no_proxy", ""));
    let addr = control_addr(&d);
    send_acked(&d, &[refused_event("proxy")]);
    let a = wait_completed(&addr, 1);
    assert_eq!(a["llm"]["successes"], 1, "{a}");
    assert_eq!(server.requests(), 1);
    let conns = proxy
        .seen
        .connections
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        conns, 0,
        "the loopback endpoint was reached through the proxy"
    );
}

/// `qerrorsd --check-config` and `qerrorsctl check-config` on `file` (or the defaults) with
/// `env`: both must agree; returns the exit code and everything both printed.
fn check_config(file: Option<&Path>, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let run = |prog: &str, args: &[&str]| {
        let mut cmd = Command::new(prog);
        cmd.args(args).stdin(Stdio::null());
        if let Some(f) = file {
            cmd.arg("--config").arg(f);
        }
        scrub_env(&mut cmd);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let (code, daemon) = run(DAEMON, &["--check-config"]);
    let (ctl_code, ctl) = run(CTL, &["check-config"]);
    assert_eq!(code, ctl_code, "qerrorsd: {daemon}\nqerrorsctl: {ctl}");
    (code, format!("{daemon}{ctl}"))
}

#[test]
fn endpoint_rules_at_check_config_and_nothing_of_the_url_repeated() {
    fn url(u: &str) -> [(&'static str, &str); 1] {
        [("QERRORS_ANALYSIS_LLM_BASE_URL", u)]
    }
    // Plain http to a host that is not loopback: refused, unless opted in.
    let (code, out) = check_config(None, &url("http://192.0.2.10/v1"));
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("analysis.llm_base_url") && out.contains("llm_allow_http"),
        "{out}"
    );
    let (code, out) = check_config(
        None,
        &[
            ("QERRORS_ANALYSIS_LLM_BASE_URL", "http://192.0.2.10/v1"),
            ("QERRORS_ANALYSIS_LLM_ALLOW_HTTP", "true"),
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    // Loopback needs no opt-in.
    for u in ["http://127.0.0.1:11434/v1", "http://localhost:8080/v1"] {
        let (code, out) = check_config(None, &url(u));
        assert_eq!(code, Some(0), "{u}: {out}");
    }
    // Credentials, a query, a fragment: refused, and not repeated.
    for u in [
        "https://alice:hunter2-in-url@api.example.com/v1",
        "https://sk-live-in-userinfo@api.example.com/v1",
        "https://api.example.com/v1?api_key=hunter2-in-query",
        "https://api.example.com/v1#hunter2-in-fragment",
    ] {
        let (code, out) = check_config(None, &url(u));
        assert_eq!(code, Some(2), "{u}: {out}");
        assert!(out.contains("analysis.llm_base_url"), "{u}: {out}");
        for part in ["hunter2", "alice", "sk-live", "api.example.com"] {
            assert!(!out.contains(part), "{u}: {part} repeated: {out}");
        }
    }
}

#[test]
fn a_key_pasted_into_llm_api_key_env_is_never_repeated() {
    let server = LlmServer::start(ok_mode());
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("qerrors.toml");
    let section = |key_env: &str| {
        format!(
            "[analysis]\nllm_base_url = \"{}\"\nllm_api_key_env = {key_env}\ncache_file = \"off\"\n",
            server.base_url()
        )
    };
    std::fs::write(&cfg, section("\"TEST_LLM_KEY\"")).unwrap();
    let mut d = spawn_daemon(
        Opts::new()
            .arg("--config")
            .arg(&cfg)
            .raw_env("TEST_LLM_KEY", KEY),
    );
    let addr = control_addr(&d);
    // The operator pastes the key instead of the variable's name: quoted (valid TOML, an
    // invalid name), then unquoted (not TOML: toml's own message quotes the line).
    let pasted = [
        (
            format!("\"{PASTED}\""),
            "analysis.llm_api_key_env: not a valid",
        ),
        (PASTED.to_string(), ": line 3, column 19: "),
    ];
    for (n, (value, want)) in pasted.iter().enumerate() {
        std::fs::write(&cfg, section(value)).unwrap();
        let (code, out) = check_config(Some(&cfg), &[("TEST_LLM_KEY", KEY)]);
        assert_eq!(code, Some(2), "{out}");
        assert!(out.contains(want), "{want:?} in {out}");
        assert!(
            !out.contains(PASTED),
            "check-config repeated the key: {out}"
        );

        d.signal(libc::SIGHUP);
        let rejected = util::wait_until("reload rejected", Duration::from_secs(30), || {
            let r: Vec<Value> = d
                .records("daemon")
                .into_iter()
                .filter(|r| r["msg"] == "config reload rejected")
                .collect();
            (r.len() > n).then_some(r)
        });
        let error = rejected[n]["error"].as_str().unwrap();
        assert!(error.contains(want), "{want:?} in {error}");
        let st = stats(&addr);
        assert_eq!(st["reload"]["outcome"], "rejected", "{}", st["reload"]);
        assert!(!st.to_string().contains(PASTED), "/stats: {}", st["reload"]);
    }
    // Still running with the good configuration, and the key appears nowhere.
    let st = control_json(&addr, "/stats").unwrap();
    assert!(st["analysis"]["llm"].is_object(), "{st}");
    d.stop();
    for f in d.log_files() {
        let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
        assert!(!text.contains(PASTED), "{}: {text}", f.display());
        assert!(!text.contains(KEY), "{}", f.display());
    }
    let stderr = d.stderr_text();
    assert!(stderr.contains("reload rejected"), "{stderr}");
    assert!(
        !stderr.contains(PASTED) && !stderr.contains(KEY),
        "{stderr}"
    );
}

#[test]
fn https_trusts_ssl_cert_file_and_ssl_cert_dir_like_redis() {
    let test = "llm_transport::https_trusts_ssl_cert_file_and_ssl_cert_dir_like_redis";
    if !tool_available(test, "openssl") {
        return;
    }
    let ca = tempfile::tempdir().unwrap();
    throwaway_ca(ca.path());
    let other = tempfile::tempdir().unwrap();
    throwaway_ca(other.path());
    let certs = tempfile::tempdir().unwrap();
    std::fs::copy(ca.path().join("ca.crt"), certs.path().join("test-ca.pem")).unwrap();
    let server = LlmServer::start_https(ok_mode(), ca.path());
    let url = server.base_url();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    // One daemon per trust store; the analysis's LLM counters.
    let run = |env: &[(&str, &Path)]| -> Value {
        let mut opts = llm_opts(&url)
            .env("ANALYSIS_LLM_API_KEY_ENV", "TEST_LLM_KEY")
            .raw_env("TEST_LLM_KEY", KEY);
        for (k, v) in env {
            opts = opts.raw_env(k, v.display());
        }
        let d = spawn_daemon(opts);
        let addr = control_addr(&d);
        send_acked(&d, &[refused_event("tls")]);
        wait_completed(&addr, 1)["llm"].clone()
    };
    // Not trusted: the system store, another CA. The handshake fails: no request is made.
    let system = run(&[]);
    let wrong = run(&[("SSL_CERT_FILE", &other.path().join("ca.crt"))]);
    for llm in [&system, &wrong] {
        assert_eq!(llm["successes"], 0, "{llm}");
        assert_eq!(llm["failures"], 1, "{llm}");
    }
    assert_eq!(server.requests(), 0);
    assert!(
        server
            .seen
            .connections
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0
    );
    // Trusted through SSL_CERT_FILE, then SSL_CERT_DIR.
    let file = run(&[("SSL_CERT_FILE", &ca.path().join("ca.crt"))]);
    assert_eq!(file["successes"], 1, "{file}");
    let dir = run(&[("SSL_CERT_DIR", certs.path())]);
    assert_eq!(dir["successes"], 1, "{dir}");
    assert_eq!(server.requests(), 2);
    for head in server.heads() {
        assert!(head.contains(&format!("Bearer {KEY}")), "{head}");
    }
    // A trust store that cannot be read fails validation, as it would fail Redis's connection.
    let (code, out) = check_config(
        None,
        &[
            ("QERRORS_ANALYSIS_LLM_BASE_URL", url.as_str()),
            ("SSL_CERT_FILE", "/nonexistent/qerrors-ca.pem"),
        ],
    );
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("analysis.llm_base_url: trust store: "),
        "{out}"
    );
}
