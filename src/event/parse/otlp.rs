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

/// Bytes of `resource` and `scope` JSON appended to the records of one line, beyond which a
/// record gets only its service name: one resource repeated for thousands of tiny records must
/// not turn a line into many times its size in memory.
const APPEND_BUDGET_FACTOR: usize = 4;
const APPEND_BUDGET_MIN: usize = 64 * 1024;
/// Longest service name appended on its own (past the budget).
const MAX_SERVICE_BYTES: usize = 256;

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
/// Every record is returned (the line's length bounds their number, and each costs what a line
/// would); each gets its `resource` and `scope` while their total stays within
/// 4 × the line's length (at least 64 KiB), then only the service name.
pub fn split(line: &str) -> Option<Vec<String>> {
    if !is_batch(line) {
        return None;
    }
    let req: Request<'_> = serde_json::from_str(line).ok()?;
    let mut budget = (APPEND_BUDGET_FACTOR * line.len()).max(APPEND_BUDGET_MIN);
    let mut out = Vec::new();
    for rl in &req.resource_logs {
        // Past the budget: `"service.name":"…"` (ECS's flat key, read the same way).
        let service = rl.resource.and_then(|r| {
            let attrs = super::formats::object_members(r.get()).ok()?;
            let (_, a) = attrs.into_iter().find(|(k, _)| k == "attributes")?;
            super::formats::otel_attributes(a.get())
                .into_iter()
                .find_map(|(lift, v)| matches!(lift, super::formats::Lift::Service(_)).then_some(v))
                .filter(|v| v.len() <= MAX_SERVICE_BYTES)
        });
        for sl in &rl.scope_logs {
            let extra_len =
                rl.resource.map_or(0, |r| r.get().len()) + sl.scope.map_or(0, |s| s.get().len());
            for rec in &sl.log_records {
                let rec = rec.get();
                let Some(body) = rec.strip_suffix('}').filter(|_| rec.starts_with('{')) else {
                    // Not an object: the parser says so for this record.
                    out.push(rec.to_owned());
                    continue;
                };
                let body = body.trim_end();
                let mut flat = String::with_capacity(rec.len() + 64);
                flat.push_str(body);
                let mut first = body[1..].trim().is_empty();
                let mut member = |k: &str, v: &str| {
                    if !first {
                        flat.push(',');
                    }
                    first = false;
                    flat.push('"');
                    flat.push_str(k);
                    flat.push_str("\":");
                    flat.push_str(v);
                };
                if extra_len <= budget {
                    budget -= extra_len;
                    for (k, v) in [("resource", rl.resource), ("scope", sl.scope)] {
                        if let Some(v) = v {
                            member(k, v.get());
                        }
                    }
                } else if let Some(s) = &service {
                    member("service.name", &crate::json::quoted(s));
                }
                flat.push('}');
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

    #[test]
    fn a_big_resource_is_not_repeated_past_the_budget() {
        let attrs: Vec<String> = (0..200)
            .map(|i| {
                format!(
                    r#"{{"key":"k{i}","value":{{"stringValue":"{}"}}}}"#,
                    "v".repeat(40)
                )
            })
            .collect();
        let resource = format!(
            r#"{{"attributes":[{{"key":"service.name","value":{{"stringValue":"svc"}}}},{}]}}"#,
            attrs.join(",")
        );
        let records = vec![r#"{"body":"m"}"#; 5000].join(",");
        let line = format!(
            r#"{{"resourceLogs":[{{"resource":{resource},"scopeLogs":[{{"logRecords":[{records}]}}]}}]}}"#
        );
        let recs = split(&line).unwrap();
        assert_eq!(recs.len(), 5000, "every record is an event");
        let total: usize = recs.iter().map(String::len).sum();
        assert!(
            total <= 5 * line.len() + 64 * 1024 + 5000 * 64,
            "{total} vs {}",
            line.len()
        );
        assert!(recs[0].contains(r#""resource":"#));
        assert_eq!(recs[4999], r#"{"body":"m","service.name":"svc"}"#);
        let e = crate::event::parse::parse(&recs[4999]).unwrap();
        assert_eq!(e.service.as_deref(), Some("svc"));
    }
}
