//! `qerrorsctl top`: the most frequent fingerprints (`/fingerprints`), as a table with each
//! one's advice summary, or as JSON lines.

use std::process::ExitCode;

use super::{client, fail};

/// The `n` most frequent fingerprints.
pub fn run(ctl: &str, n: usize, json: bool) -> ExitCode {
    let rows = match client::control_json(ctl, &format!("/fingerprints?top={n}")) {
        Ok(serde_json::Value::Array(rows)) => rows,
        Ok(other) => return fail(&format!("unexpected reply: {other}")),
        Err(e) => return fail(&e.to_string()),
    };
    if json {
        for r in rows {
            println!("{r}");
        }
        return ExitCode::SUCCESS;
    }
    println!(
        "{:>8}  {:8}  {:12}  {:8}  {:16}  what",
        "count", "fp", "class", "severity", "service"
    );
    for r in rows {
        let fp = r["fingerprint"].as_str().unwrap_or("");
        println!(
            "{:>8}  {:8}  {:12}  {:8}  {:16}  {}{}",
            r["count"],
            &fp[..fp.len().min(8)],
            r["class"].as_str().unwrap_or(""),
            r["severity"].as_str().unwrap_or(""),
            r["service"].as_str().unwrap_or(""),
            r["name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .map(|n| format!("{n}: "))
                .unwrap_or_default(),
            r["message"].as_str().unwrap_or(""),
        );
        if let Some(summary) = r["advice"]["advice"]["summary"].as_str() {
            println!("{:>8}  advice: {summary}", "");
        }
    }
    ExitCode::SUCCESS
}
