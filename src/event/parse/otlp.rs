//! OTLP/JSON log batches (`{"resourceLogs":[{"resource":…,"scopeLogs":[{"scope":…,
//! "logRecords":[…]}]}]}`): one line, many records. [`split`] turns such a line into one flat
//! line per record, the record's own object with its `resource` (and `scope`) appended, which
//! the parser then reads like any OpenTelemetry record (docs/formats.md): each record is an
//! event of its own, counted, acked and rejected as one.
//!
//! Only a line whose first key is `resourceLogs` is looked at (what the OTLP exporters write);
//! the check is a prefix comparison, so other lines pay nothing.

use serde::Deserialize;
use serde_json::value::RawValue;

/// Most records taken from one line; the rest are ignored. A line is at most
/// `ingest.max_line_bytes`, so this only bounds a line of tiny records.
pub const MAX_RECORDS: usize = 4096;

#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow, rename = "resourceLogs")]
    resource_logs: Vec<ResourceLogs<'a>>,
}

#[derive(Deserialize)]
struct ResourceLogs<'a> {
    #[serde(default, borrow)]
    resource: Option<&'a RawValue>,
    #[serde(default, borrow, rename = "scopeLogs")]
    scope_logs: Vec<ScopeLogs<'a>>,
}

#[derive(Deserialize)]
struct ScopeLogs<'a> {
    #[serde(default, borrow)]
    scope: Option<&'a RawValue>,
    #[serde(default, borrow, rename = "logRecords")]
    log_records: Vec<&'a RawValue>,
}

/// Whether `line` is an OTLP/JSON batch (its first key is `resourceLogs`).
pub fn is_batch(line: &str) -> bool {
    let rest = line.trim_start().strip_prefix('{').map(str::trim_start);
    rest.is_some_and(|r| r.starts_with("\"resourceLogs\""))
}

/// One flat line per log record of an OTLP/JSON batch, or `None` when `line` is not one (or
/// cannot be read as one: it is then parsed as an ordinary line, and rejected with a reason).
pub fn split(line: &str) -> Option<Vec<String>> {
    if !is_batch(line) {
        return None;
    }
    let req: Request<'_> = serde_json::from_str(line).ok()?;
    let mut out = Vec::new();
    for rl in &req.resource_logs {
        for sl in &rl.scope_logs {
            for rec in &sl.log_records {
                if out.len() == MAX_RECORDS {
                    return Some(out);
                }
                let rec = rec.get();
                let mut flat = String::with_capacity(rec.len() + 64);
                match rec.strip_suffix('}') {
                    Some(body) if rec.starts_with('{') => {
                        flat.push_str(body.trim_end());
                        let empty = body[1..].trim().is_empty();
                        for (k, v) in [("resource", rl.resource), ("scope", sl.scope)] {
                            if let Some(v) = v {
                                if !(empty && flat.len() == 1) {
                                    flat.push(',');
                                }
                                flat.push('"');
                                flat.push_str(k);
                                flat.push_str("\":");
                                flat.push_str(v.get());
                            }
                        }
                        flat.push('}');
                    }
                    // Not an object: the parser says so for this record.
                    _ => flat.push_str(rec),
                }
                out.push(flat);
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_record_with_its_resource() {
        let line = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"api"}}]},"scopeLogs":[{"scope":{"name":"s"},"logRecords":[{"body":{"stringValue":"a"}},{}]}]},{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"b"}},7]}]}]}"#;
        let recs = split(line).unwrap();
        assert_eq!(recs.len(), 4);
        assert_eq!(
            recs[0],
            r#"{"body":{"stringValue":"a"},"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"api"}}]},"scope":{"name":"s"}}"#
        );
        assert!(recs[1].starts_with(r#"{"resource":"#), "{}", recs[1]);
        assert_eq!(recs[2], r#"{"body":{"stringValue":"b"}}"#);
        assert_eq!(recs[3], "7");
        for r in &recs {
            serde_json::from_str::<serde_json::Value>(r).unwrap();
        }
        assert_eq!(split(r#"{"message":"m"}"#), None);
        assert_eq!(split(r#"{"resourceLogs":7}"#), None);
        assert_eq!(split(r#" { "resourceLogs" : [] }"#), Some(vec![]));
    }
}
