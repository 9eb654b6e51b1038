//! `qerrorsctl top`: the most frequent fingerprints (`/fingerprints`), as a table with each
//! one's advice summary, or as JSON lines; `--fleet`: the fleet's (`/fleet/fingerprints`), the
//! `what` column led by the hosts that saw it.
//!
//! Every column has a fixed width and every cell is cut to it (`fit`, with `…`), so a long
//! service name or a class longer than expected never shifts the columns after it; the last
//! column (`what`) is free.

use std::process::ExitCode;

use serde_json::Value;

use super::{client, fail};

/// `count`: right-aligned; exact up to 99,999,999, then in millions (`123M`) and up.
const COUNT_WIDTH: usize = 8;
/// `fp`: the prefix `advice` and `tail --fingerprint` accept.
const FP_WIDTH: usize = 8;
/// `class`: the longest class name (`authentication`, 14).
const CLASS_WIDTH: usize = 14;
/// `severity`: the longest severity (`critical`).
const SEVERITY_WIDTH: usize = 8;
/// `service`: most service names; longer ones are cut with `…`.
const SERVICE_WIDTH: usize = 16;
/// Between columns.
const GAP: &str = "  ";

/// The `n` most frequent fingerprints (of this daemon, or of the fleet).
pub fn run(ctl: &client::Control, n: usize, json: bool, fleet: bool) -> ExitCode {
    let path = if fleet {
        format!("/fleet/fingerprints?top={n}")
    } else {
        format!("/fingerprints?top={n}")
    };
    let rows = match ctl.json(&path) {
        Ok(Value::Array(rows)) => rows,
        Ok(other) => return fail(&format!("unexpected reply: {other}")),
        Err(e) => return fail(&e.to_string()),
    };
    if json {
        for r in rows {
            println!("{}", crate::display::json_visible(&r.to_string()));
        }
        return ExitCode::SUCCESS;
    }
    println!("{}", header());
    for r in &rows {
        print!("{}", row(r));
    }
    ExitCode::SUCCESS
}

/// The header line, each title in its column.
fn header() -> String {
    line(["count", "fp", "class", "severity", "service"], "what")
}

/// One fingerprint's line, plus an indented `advice:` line when it has advice.
fn row(r: &Value) -> String {
    let visible = |k: &str| crate::display::visible(r[k].as_str().unwrap_or("")).into_owned();
    let (fingerprint, class, severity) = (
        visible("fingerprint"),
        visible("class"),
        visible("severity"),
    );
    let s = |k: &str| visible(k);
    let count = r["count"].as_u64().map(count_cell).unwrap_or_default();
    let hosts = r["hosts"].as_u64().map_or(String::new(), |h| {
        let more = if r["hosts_more"] == true { "+" } else { "" };
        format!(
            "[{h}{more} host{}] ",
            if h == 1 && more.is_empty() { "" } else { "s" }
        )
    });
    let what = format!(
        "{hosts}{}{}",
        r["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .map(|n| format!("{}: ", crate::display::visible(n)))
            .unwrap_or_default(),
        s("message")
    );
    let service = service_cell(r);
    let mut out = line([&count, &fingerprint, &class, &severity, &service], &what);
    out.push('\n');
    if let Some(summary) = r["advice"]["advice"]["summary"].as_str() {
        out.push_str(&format!(
            "{:COUNT_WIDTH$}{GAP}advice: {}\n",
            "",
            crate::display::visible(summary)
        ));
    }
    out
}

/// The first service that sent the fingerprint, and how many others did (`checkout +2`, as on
/// the dashboard): the name is cut to make room for the count, never the count.
fn service_cell(r: &Value) -> String {
    let first = crate::display::visible(r["service"].as_str().unwrap_or(""));
    let named = r["services"].as_array().map_or(0, Vec::len);
    let more = named.saturating_sub(1) as u64 + r["services_more"].as_u64().unwrap_or(0);
    if more == 0 {
        return first.into_owned();
    }
    let suffix = format!(" +{more}");
    let room = SERVICE_WIDTH.saturating_sub(suffix.chars().count());
    format!("{}{suffix}", fit(&first, room).trim_end())
}

/// The five fixed columns (count right-aligned) and the free last one.
fn line(cells: [&str; 5], last: &str) -> String {
    let [count, fp, class, severity, service] = cells;
    // The fingerprint's prefix, not a cut value: `advice` and `tail --fingerprint` take it.
    let fp: String = fp.chars().take(FP_WIDTH).collect();
    format!(
        "{:>COUNT_WIDTH$}{GAP}{}{GAP}{}{GAP}{}{GAP}{}{GAP}{last}",
        fit(count, COUNT_WIDTH).trim_end(),
        fit(&fp, FP_WIDTH),
        fit(class, CLASS_WIDTH),
        fit(severity, SEVERITY_WIDTH),
        fit(service, SERVICE_WIDTH),
    )
    .trim_end()
    .to_string()
}

/// A count in at most [`COUNT_WIDTH`] characters: exact when it fits, else whole millions,
/// billions, … (rounded down, so it never claims more than was counted).
fn count_cell(n: u64) -> String {
    let exact = n.to_string();
    if exact.len() <= COUNT_WIDTH {
        return exact;
    }
    [
        (1_000_000, 'M'),
        (1_000_000_000, 'G'),
        (1_000_000_000_000, 'T'),
        (1_000_000_000_000_000, 'P'),
    ]
    .iter()
    .map(|(div, unit)| format!("{}{unit}", n / div))
    .find(|s| s.len() <= COUNT_WIDTH)
    .unwrap_or(exact)
}

/// `s` left-aligned in exactly `width` characters: padded, or cut to `width - 1` characters
/// and `…`. Counts characters, so it never splits one (a wide CJK character still takes two
/// cells on most terminals; service names are rarely written in them).
fn fit(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n <= width {
        return format!("{s}{:1$}", "", width - n);
    }
    let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::classify::{Class, Severity};
    use serde_json::json;

    #[test]
    fn the_service_cell_counts_the_other_services_and_keeps_the_count() {
        let r = json!({"service": "checkout", "services": ["checkout"], "services_more": 0});
        assert_eq!(service_cell(&r), "checkout");
        let r = json!({"service": "checkout", "services": ["checkout", "billing", "auth"],
                       "services_more": 4});
        assert_eq!(service_cell(&r), "checkout +6");
        let r = json!({"service": "a-very-long-service-name", "services": ["a-very-long-service-name", "b"],
                       "services_more": 0});
        let cell = service_cell(&r);
        assert_eq!(cell, "a-very-long-… +1");
        assert_eq!(cell.chars().count(), SERVICE_WIDTH, "{cell}");
        // an older daemon without `services`
        assert_eq!(service_cell(&json!({"service": "x"})), "x");
    }

    #[test]
    fn every_class_and_severity_fits_its_column() {
        for c in Class::ALL {
            assert!(c.as_str().len() <= CLASS_WIDTH, "{}", c.as_str());
        }
        for s in Severity::ALL {
            assert!(s.as_str().len() <= SEVERITY_WIDTH, "{}", s.as_str());
        }
    }

    #[test]
    fn fleet_rows_lead_with_their_hosts() {
        let r = row(
            &json!({"count": 12, "fingerprint": "ab", "hosts": 3, "name": "E",
            "message": "boom", "service": "svc"}),
        );
        assert!(r.trim_end().ends_with("[3 hosts] E: boom"), "{r}");
        let r = row(
            &json!({"count": 1, "fingerprint": "ab", "hosts": 16, "hosts_more": true,
            "message": "m"}),
        );
        assert!(r.trim_end().ends_with("[16+ hosts] m"), "{r}");
        let r = row(&json!({"count": 1, "fingerprint": "ab", "message": "local"}));
        assert!(r.trim_end().ends_with("  local"), "{r}");
    }

    #[test]
    fn counts_fit_their_column() {
        assert_eq!(count_cell(0), "0");
        assert_eq!(count_cell(99_999_999), "99999999");
        assert_eq!(count_cell(123_456_789), "123M");
        assert_eq!(count_cell(u64::MAX), "18446P");
    }

    #[test]
    fn fit_pads_and_cuts_by_characters() {
        assert_eq!(fit("ab", 4), "ab  ");
        assert_eq!(fit("abcd", 4), "abcd");
        assert_eq!(fit("abcde", 4), "abc…");
        assert_eq!(fit("ééééé", 4), "ééé…", "never splits a character");
        assert_eq!(fit("", 2), "  ");
    }

    #[test]
    fn columns_start_where_the_header_says() {
        let head = header();
        let starts: Vec<usize> = ["count", "fp", "class", "severity", "service", "what"]
            .iter()
            .map(|t| head.find(&format!(" {t}")).map_or(0, |i| i + 1))
            .collect();
        let r = row(&json!({"count": 1234567, "fingerprint": "f8d10e90b6354e89",
            "class": "authentication", "severity": "critical",
            "service": "a-very-long-service-name-indeed", "name": "TypeError",
            "message": "boom", "advice": {"advice": {"summary": "fix it"}}}));
        let first = r.lines().next().unwrap();
        let chars: Vec<char> = first.chars().collect();
        // Each value starts right after a gap, at its header's column (count ends with it).
        assert_eq!(
            chars[..starts[1] - 2].iter().collect::<String>().trim(),
            "1234567"
        );
        let at = |col: usize| chars[col..].iter().collect::<String>();
        assert!(at(starts[1]).starts_with("f8d10e90 "), "{first}");
        assert!(at(starts[2]).starts_with("authentication "), "{first}");
        assert!(at(starts[3]).starts_with("critical "), "{first}");
        assert!(at(starts[4]).starts_with("a-very-long-ser… "), "{first}");
        assert_eq!(at(starts[5]), "TypeError: boom", "{first}");
        assert_eq!(r.lines().nth(1), Some("          advice: fix it"));
    }
}
