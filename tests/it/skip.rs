//! Tests that cannot run on this machine: one rule for all of them.
//!
//! A test that needs something the machine lacks (Chromium, redis-server, Node, root for a
//! tmpfs, …) calls [`skip`] (or [`require`]) and returns. Its `ok` would look like a pass, so:
//!
//! - with `QERRORS_REQUIRE_ALL=1` (set by `.ci/run`) a skip is a failure: [`skip`] panics;
//! - otherwise a notice goes at once to the process's real stderr (libtest captures only
//!   `print!`/`eprint!` output, so a notice written with them would be hidden), and the skip is
//!   recorded; when the test process exits, the list of every skipped test, what it missed and
//!   how to get it is printed as the last thing the run shows ([`summary`]).
//!
//! The list is printed from a process-exit hook (the `dtor` crate) because libtest offers no
//! "after all tests" point: the harness returns from `main`, or calls `exit` when a test
//! failed, and the hook runs in both cases.

use std::io::Write;
use std::sync::Mutex;

/// One test that did not run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Skipped {
    pub test: String,
    /// What the machine lacks, e.g. "`redis-server`".
    pub missing: String,
    /// How to get it, e.g. "apt-get install redis-server".
    pub how: String,
}

/// Every skip of this process, in the order they happened.
static SKIPPED: Mutex<Vec<Skipped>> = Mutex::new(Vec::new());

/// Whether skips are failures (`QERRORS_REQUIRE_ALL=1`, as in CI).
pub fn required() -> bool {
    std::env::var("QERRORS_REQUIRE_ALL").is_ok_and(|v| v == "1")
}

/// `test` cannot run here because `missing` is not available; `how` says how to get it.
/// Panics with `QERRORS_REQUIRE_ALL=1`; otherwise says so now on the real stderr and adds the
/// test to the list printed when the process exits. The caller returns right after.
pub fn skip(test: &str, missing: &str, how: &str) {
    // libtest names each test's thread by the test's path (`limit_redis::three_daemons_…`),
    // which is what `cargo test --test it PATH` takes to run it again.
    let thread = std::thread::current();
    let test = thread
        .name()
        .filter(|path| path.ends_with(&format!("::{test}")))
        .unwrap_or(test);
    let s = Skipped {
        test: test.to_string(),
        missing: missing.to_string(),
        how: how.to_string(),
    };
    assert!(
        !required(),
        "{}: {} is missing and QERRORS_REQUIRE_ALL=1 makes a skipped test a failure ({})",
        s.test,
        s.missing,
        s.how
    );
    notice(&format!(
        "SKIPPED {}: {} is missing ({}); listed again at the end of the run",
        s.test, s.missing, s.how
    ));
    SKIPPED.lock().unwrap_or_else(|e| e.into_inner()).push(s);
}

/// `ok`, or a [`skip`] and `false`: `if !require(test, have_it, …) { return; }`.
pub fn require(test: &str, ok: bool, missing: &str, how: &str) -> bool {
    if !ok {
        skip(test, missing, how);
    }
    ok
}

/// [`require`] for a program on the PATH: whether `tool --version` runs; `install` says how to
/// get it.
pub fn require_tool(test: &str, tool: &str, install: &str) -> bool {
    let runs = std::process::Command::new(tool)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    require(test, runs, tool, install)
}

/// A notice that must be seen, written to the real stderr past the harness's capture.
pub fn notice(msg: &str) {
    let _ = writeln!(std::io::stderr(), "\n!!!!!!!! {msg} !!!!!!!!\n");
}

const BAR: &str =
    "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!";

/// The end-of-run block listing `skipped` (sorted, duplicates once); `None` when nothing was
/// skipped.
pub fn summary(skipped: &[Skipped]) -> Option<String> {
    let mut list = skipped.to_vec();
    list.sort();
    list.dedup();
    if list.is_empty() {
        return None;
    }
    let tests = {
        let mut t: Vec<&str> = list.iter().map(|s| s.test.as_str()).collect();
        t.dedup();
        t.len()
    };
    let mut out = format!(
        "\n{BAR}\n!!! {tests} {} SKIPPED: not run, although `ok` above counts {}\n",
        if tests == 1 { "test" } else { "tests" },
        if tests == 1 { "it" } else { "them" },
    );
    for s in &list {
        out.push_str(&format!(
            "!!!   {} — {} is missing — {}\n",
            s.test, s.missing, s.how
        ));
    }
    out.push_str(&format!(
        "!!! Install what is missing to run them; QERRORS_REQUIRE_ALL=1 makes a skip a failure \
         (CI sets it).\n{BAR}\n"
    ));
    Some(out)
}

/// At process exit: the list, on the real stderr (nothing when no test was skipped).
#[dtor::dtor(unsafe)]
fn print_skipped() {
    let list = SKIPPED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(text) = summary(&list) {
        let _ = std::io::stderr().write_all(text.as_bytes());
    }
}

#[test]
fn summary_lists_each_skipped_test_with_what_it_missed() {
    assert_eq!(summary(&[]), None);
    let s = |test: &str, missing: &str, how: &str| Skipped {
        test: test.into(),
        missing: missing.into(),
        how: how.into(),
    };
    let text = summary(&[
        s("redis_b", "`redis-server`", "apt-get install redis-server"),
        s(
            "dashboard_a",
            "/usr/bin/chromium",
            "apt-get install chromium",
        ),
        s("redis_b", "`redis-server`", "apt-get install redis-server"),
    ])
    .unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "");
    assert_eq!(lines[1], BAR);
    assert_eq!(
        lines[2],
        "!!! 2 tests SKIPPED: not run, although `ok` above counts them"
    );
    assert_eq!(
        lines[3],
        "!!!   dashboard_a — /usr/bin/chromium is missing — apt-get install chromium"
    );
    assert_eq!(
        lines[4],
        "!!!   redis_b — `redis-server` is missing — apt-get install redis-server"
    );
    assert!(lines[5].contains("QERRORS_REQUIRE_ALL=1"), "{text}");
    assert_eq!(lines[6], BAR);
    assert_eq!(lines.len(), 7, "{text}");
    let one = summary(&[s("t", "x", "y")]).unwrap();
    assert!(one.contains("!!! 1 test SKIPPED: not run, although `ok` above counts it"));
}
