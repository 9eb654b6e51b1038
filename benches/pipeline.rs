//! Per-event CPU cost of the ingest pipeline (parse → sanitize → fingerprint → classify →
//! encode) against a naive baseline that parses into a `serde_json::Value`, adds the enriched
//! fields and serializes the whole record again.
//!
//! The `*_pino` / `*_structlog` cases are the same error as pino and structlog write it (format
//! recognition: aliases, the `err` object lifted member by member, numeric level and time);
//! compare them and `pipeline_process` against the figures before recognition existed
//! (docs/formats.md, "Cost").
//!
//! `fleet/read16_fleet_{off,on}`: the fleet registry's per-read cost on ingest (docs/fleet.md).
//!
//! `cargo bench --bench pipeline`
// A benchmark, not the daemon: a setup failure should stop it loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use qerrors::analysis::AnalysisHandle;
use qerrors::config::{Overrides, RawConfig};
use qerrors::event::{fingerprint, Received};
use qerrors::ingest::peer::Peer;
use qerrors::pipeline::{table::FingerprintTable, ConnState, Pipeline};

/// A typical ~875-byte Node.js error event.
const JS_EVENT: &str = r#"{"message":"Cannot read properties of undefined (reading 'id') while loading order 48151623","name":"TypeError","level":"error","service":"checkout","stack":"TypeError: Cannot read properties of undefined (reading 'id')\n    at getOrderOwner (/srv/app/releases/20261128/src/orders/owner.js:41:23)\n    at OrderService.load (/srv/app/releases/20261128/src/orders/service.js:118:18)\n    at async handler (/srv/app/releases/20261128/src/routes/orders.js:57:5)\n    at Layer.handle [as handle_request] (/srv/app/node_modules/express/lib/router/layer.js:95:5)\n    at next (/srv/app/node_modules/express/lib/router/route.js:149:13)\n    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)","context":{"path":"/api/orders/48151623","method":"GET","user_id":4711,"request_id":"6f1c2a9e-3b7d-4c55-9a1e-0d2f8e7b6c41","attempt":1},"tags":{"region":"eu-1","version":"2026.11.28"}}"#;

/// The same error as pino writes it (`logger.error({ err, ...context }, msg)`).
const PINO_EVENT: &str = r#"{"level":50,"time":1764345943123,"pid":4242,"hostname":"web-1","name":"checkout","err":{"type":"TypeError","message":"Cannot read properties of undefined (reading 'id')","stack":"TypeError: Cannot read properties of undefined (reading 'id')\n    at getOrderOwner (/srv/app/releases/20261128/src/orders/owner.js:41:23)\n    at OrderService.load (/srv/app/releases/20261128/src/orders/service.js:118:18)\n    at async handler (/srv/app/releases/20261128/src/routes/orders.js:57:5)\n    at Layer.handle [as handle_request] (/srv/app/node_modules/express/lib/router/layer.js:95:5)\n    at next (/srv/app/node_modules/express/lib/router/route.js:149:13)\n    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)"},"path":"/api/orders/48151623","method":"GET","user_id":4711,"request_id":"6f1c2a9e-3b7d-4c55-9a1e-0d2f8e7b6c41","msg":"Cannot read properties of undefined (reading 'id') while loading order 48151623"}"#;

/// A Python error as structlog writes it (`format_exc_info`, `JSONRenderer`).
const STRUCTLOG_EVENT: &str = r#"{"event": "loading order 48151623 failed", "level": "error", "timestamp": "2026-11-28T16:49:03.123456Z", "path": "/api/orders/48151623", "user_id": 4711, "exception": "Traceback (most recent call last):\n  File \"/srv/app/orders/views.py\", line 57, in handler\n    owner = load_owner(order)\n  File \"/srv/app/orders/owner.py\", line 41, in load_owner\n    return order[\"owner\"][\"id\"]\nKeyError: 'owner'"}"#;

/// The profiles of issue 17 (docs/formats.md): one typical error line each, the same kind of
/// error as above, for `pipeline_process_<profile>` (parse included).
const PROFILE_EVENTS: &[(&str, &str)] = &[
    (
        "serilog_clef",
        r#"{"@t":"2026-11-28T16:49:03.1234567Z","@mt":"Loading order {OrderId} failed for {Path}","@l":"Error","@x":"System.NullReferenceException: Object reference not set to an instance of an object.\r\n   at Shop.Orders.OrderService.Load(Int32 id) in /src/Orders/OrderService.cs:line 118\r\n   at Shop.Api.OrdersController.Get(Int32 id) in /src/Api/OrdersController.cs:line 57","OrderId":48151623,"Path":"/api/orders/48151623","SourceContext":"Shop.Orders.OrderService","RequestId":"0HN7:00000001"}"#,
    ),
    (
        "dotnet_json_console",
        r#"{"EventId":0,"LogLevel":"Error","Category":"Shop.Orders.OrderService","Message":"Loading order 48151623 failed","Exception":"System.NullReferenceException: Object reference not set to an instance of an object.\n   at Shop.Orders.OrderService.Load(Int32 id) in /src/Orders/OrderService.cs:line 118","State":{"Message":"Loading order 48151623 failed","OrderId":48151623,"{OriginalFormat}":"Loading order {OrderId} failed"}}"#,
    ),
    (
        "monolog",
        r#"{"message":"Loading order 48151623 failed","context":{"exception":{"class":"TypeError","message":"Cannot access offset of type string on null","code":0,"file":"/srv/app/src/Orders/Owner.php:41","trace":["/srv/app/src/Orders/Service.php:118","/srv/app/src/Controller/Orders.php:57","/srv/app/public/index.php:9"]},"order":48151623},"level":400,"level_name":"ERROR","channel":"app","datetime":"2026-11-28T16:49:03.123456+00:00","extra":{}}"#,
    ),
    (
        "ecs",
        r#"{"@timestamp":"2026-11-28T16:49:03.123Z","log.level":"error","message":"Loading order 48151623 failed","ecs.version":"1.6.0","error":{"type":"KeyError","message":"'owner'","stack_trace":"Traceback (most recent call last):\n  File \"/srv/app/orders/owner.py\", line 41, in load_owner\n    return order[\"owner\"][\"id\"]\nKeyError: 'owner'"},"log":{"logger":"orders","origin":{"file":{"line":41,"name":"owner.py"},"function":"load_owner"}},"service.name":"checkout","process":{"pid":4242}}"#,
    ),
    (
        "otel_flat",
        r#"{"timeUnixNano":"1764348543123000000","severityNumber":17,"severityText":"ERROR","body":{"stringValue":"Loading order 48151623 failed"},"attributes":[{"key":"exception.type","value":{"stringValue":"KeyError"}},{"key":"exception.message","value":{"stringValue":"'owner'"}},{"key":"exception.stacktrace","value":{"stringValue":"Traceback (most recent call last):\n  File \"/srv/app/orders/owner.py\", line 41, in load_owner\nKeyError: 'owner'"}}],"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]}}"#,
    ),
    (
        "zerolog",
        r#"{"level":"error","stack":[{"func":"loadOwner","line":"41","source":"owner.go"},{"func":"(*OrderService).Load","line":"118","source":"service.go"},{"func":"handler","line":"57","source":"orders.go"}],"error":"order 48151623 has no owner","order":48151623,"time":"2026-11-28T16:49:03Z","message":"loading order failed"}"#,
    ),
    (
        "log4j2_json_layout",
        r#"{"instant":{"epochSecond":1764348543,"nanoOfSecond":123000000},"thread":"main","level":"ERROR","loggerName":"com.shop.orders.OrderService","message":"Loading order 48151623 failed","thrown":{"message":"owner is null","name":"java.lang.NullPointerException","extendedStackTrace":[{"class":"com.shop.orders.Owner","method":"load","file":"Owner.java","line":41},{"class":"com.shop.orders.OrderService","method":"load","file":"OrderService.java","line":118}]},"endOfBatch":false,"loggerFqcn":"org.apache.logging.log4j.spi.AbstractLogger","threadId":1,"threadPriority":5}"#,
    ),
    (
        "generic",
        r#"{"record":{"text":"Loading order 48151623 failed","lvl":"error","errorType":"KeyError","app":"checkout"},"host":"web-1","pid":4242}"#,
    ),
];

/// Three records of an OTLP/JSON batch in one line (split, then processed one by one).
const OTLP_BATCH: &str = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},"scopeLogs":[{"scope":{"name":"orders"},"logRecords":[{"timeUnixNano":"1764348543123000000","severityNumber":17,"body":{"stringValue":"Loading order 48151623 failed"},"attributes":[{"key":"exception.type","value":{"stringValue":"KeyError"}}]},{"timeUnixNano":"1764348543124000000","severityNumber":13,"body":{"stringValue":"Retrying order 48151623"}},{"timeUnixNano":"1764348543125000000","severityNumber":17,"body":{"stringValue":"Giving up on order 48151623"}}]}]}]}"#;

fn pipeline(analysis: Option<AnalysisHandle>) -> Pipeline {
    let cfg = RawConfig::default()
        .validate(&Overrides::default())
        .expect("defaults are valid");
    let table = FingerprintTable::new(
        cfg.event.max_fingerprints.get(),
        cfg.event.occurrence_window,
    );
    Pipeline::new(
        &cfg,
        std::sync::Arc::new(table),
        std::sync::Arc::new(qerrors::limit::Limiter::new(&cfg.limit)),
        analysis,
        Default::default(),
    )
    .expect("pipeline")
}

fn bench(c: &mut Criterion) {
    let p = pipeline(None);
    let meta = Peer {
        pid: Some(4242),
        uid: 1000,
        gid: 1000,
        comm: Some("node".into()),
        exe: Some("/usr/bin/node".into()),
        unit: Some("checkout.service".into()),
    }
    .meta(p.sanitizer());
    let rx = Received::now();
    let mut state = ConnState::default();
    let mut out = BytesMut::with_capacity(1 << 20);

    let mut g = c.benchmark_group("event");
    g.throughput(Throughput::Elements(1));
    g.bench_function("pipeline_process", |b| {
        b.iter(|| {
            if out.len() > (1 << 19) {
                out.clear();
            }
            p.process(black_box(JS_EVENT), &meta, &rx, &mut state, &mut out)
                .expect("valid event")
        })
    });
    g.bench_function("naive_value_roundtrip", |b| {
        let mut buf = Vec::with_capacity(4096);
        b.iter(|| {
            let mut v: serde_json::Value = serde_json::from_str(black_box(JS_EVENT)).unwrap();
            let obj = v.as_object_mut().unwrap();
            obj.insert("kind".into(), "event".into());
            obj.insert("id".into(), ulid::Ulid::new().to_string().into());
            obj.insert("received".into(), rx.rfc3339.clone().into());
            obj.insert("host".into(), "web-1".into());
            buf.clear();
            serde_json::to_writer(&mut buf, &v).unwrap();
            buf.push(b'\n');
            buf.len()
        })
    });
    for (name, line) in [
        ("pipeline_process_pino", PINO_EVENT),
        ("pipeline_process_structlog", STRUCTLOG_EVENT),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                if out.len() > (1 << 19) {
                    out.clear();
                }
                p.process(black_box(line), &meta, &rx, &mut state, &mut out)
                    .expect("valid event")
            })
        });
    }
    for (name, line) in PROFILE_EVENTS {
        g.bench_function(format!("pipeline_process_{name}"), |b| {
            b.iter(|| {
                if out.len() > (1 << 19) {
                    out.clear();
                }
                p.process(black_box(line), &meta, &rx, &mut state, &mut out)
                    .expect("valid event")
            })
        });
    }
    g.bench_function("pipeline_process_otlp_batch_of_3", |b| {
        b.iter(|| {
            if out.len() > (1 << 19) {
                out.clear();
            }
            let recs = qerrors::event::parse::otlp::split(black_box(OTLP_BATCH)).expect("batch");
            for r in &recs {
                p.process(r, &meta, &rx, &mut state, &mut out)
                    .expect("valid event");
            }
        })
    });
    g.bench_function("parse_only_pino", |b| {
        b.iter(|| qerrors::event::parse::parse(black_box(PINO_EVENT)).map(|e| e.message.len()))
    });
    let ev = qerrors::event::parse::parse(JS_EVENT).unwrap();
    g.bench_function("fingerprint_compute", |b| {
        b.iter(|| {
            fingerprint::compute(
                black_box(ev.name.as_deref()),
                black_box(&ev.message),
                black_box(ev.stack.as_deref()),
            )
        })
    });
    let cfg = RawConfig::default()
        .validate(&Overrides::default())
        .expect("defaults are valid");
    let san = qerrors::event::sanitize::Sanitizer::new(
        &cfg.sanitize.keys,
        &cfg.sanitize.patterns,
        cfg.sanitize.emails,
    )
    .expect("sanitizer");
    g.bench_function("sanitize_line_is_clean", |b| {
        b.iter(|| san.line_is_clean(black_box(JS_EVENT)))
    });
    g.bench_function("parse_only", |b| {
        b.iter(|| qerrors::event::parse::parse(black_box(JS_EVENT)).map(|e| e.message.len()))
    });

    // The same pipeline with analysis attached, in the steady state: the fingerprint's advice
    // is cached and the fingerprint table knows it, so an event asks the shared cache at most
    // once a second.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (outbox, _records) = qerrors::outbox::outbox();
    let (_pressure_tx, pressure_rx) = qerrors::memory::channel();
    let mut acfg = cfg.analysis.clone();
    acfg.cache_file = None;
    let analysis = rt
        .block_on(qerrors::analysis::Analysis::start(
            &acfg,
            outbox,
            &qerrors::breaker::Registry::default(),
            pressure_rx,
        ))
        .expect("analysis")
        .expect("enabled");
    let handle = analysis.handle();
    let pa = pipeline(Some(handle.clone()));
    pa.process(JS_EVENT, &meta, &rx, &mut state, &mut out)
        .expect("valid event");
    while handle
        .stats()
        .completed
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
    {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    g.bench_function("pipeline_process_with_analysis_hit", |b| {
        b.iter(|| {
            if out.len() > (1 << 19) {
                out.clear();
            }
            pa.process(black_box(JS_EVENT), &meta, &rx, &mut state, &mut out)
                .expect("valid event")
        })
    });
    // One shared-cache lookup (moka `get` and a hit counter), what an event paid before the
    // fingerprint table remembered the answer.
    let fp = qerrors::event::fingerprint::Fingerprint(
        u128::from_str_radix(
            &handle
                .cache()
                .peek_any()
                .expect("one cached entry")
                .fingerprint,
            16,
        )
        .expect("hex"),
    );
    g.bench_function("advice_cache_shared_lookup", |b| {
        b.iter(|| handle.cache().fresh_until_ms(black_box(fp.0)))
    });
    g.finish();
    rt.block_on(analysis.shutdown(std::time::Duration::from_secs(1)));
}

/// The fleet registry's cost on ingest: a read of 16 events (four fingerprints) processed and
/// ended (`end_read`: the per-read merge into the shared deltas), with the fleet off and on.
/// The sync thread's work (taking the deltas, Redis) is not on this path.
fn fleet(c: &mut Criterion) {
    let off = pipeline(None);
    let on = pipeline(None).with_fleet(Some(std::sync::Arc::new(qerrors::fleet::Deltas::new(
        10_000,
    ))));
    let meta = Peer {
        pid: Some(4242),
        uid: 1000,
        gid: 1000,
        comm: Some("node".into()),
        exe: Some("/usr/bin/node".into()),
        unit: Some("checkout.service".into()),
    }
    .meta(off.sanitizer());
    let lines: Vec<String> = (0..16)
        .map(|i| {
            JS_EVENT.replace(
                "\"name\":\"TypeError\"",
                &format!("\"name\":\"TypeError{}\"", i % 4),
            )
        })
        .collect();
    let stats = qerrors::stats::Stats::default();
    let mut g = c.benchmark_group("fleet");
    g.throughput(Throughput::Elements(lines.len() as u64));
    for (name, p) in [("read16_fleet_off", &off), ("read16_fleet_on", &on)] {
        let mut state = ConnState::default();
        let mut out = BytesMut::with_capacity(1 << 20);
        g.bench_function(name, |b| {
            b.iter(|| {
                let rx = Received::now();
                if out.len() > (1 << 19) {
                    out.clear();
                }
                for l in &lines {
                    p.process(black_box(l), &meta, &rx, &mut state, &mut out)
                        .expect("valid event");
                }
                p.end_read(&mut state, &stats, &rx);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench, fleet);
criterion_main!(benches);
