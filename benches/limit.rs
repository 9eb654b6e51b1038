//! Cost of one admission decision (`Limiter::decide`) on the ingest path, against a naive
//! baseline (one global `Mutex<HashMap<String, …>>` keyed by a formatted string).
//!
//! `cargo bench --bench limit`
// A benchmark, not the daemon: a setup failure should stop it loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Mutex;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use qerrors::event::fingerprint::Fingerprint;
use qerrors::limit::rules::LimitConfig;
use qerrors::limit::Limiter;

const S: u64 = 1_000_000_000;

fn limiter(toml: &str) -> Limiter {
    let raw: LimitConfig = toml::from_str(toml).expect("bench config");
    Limiter::new(&raw.validate().expect("valid bench config"))
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("limit");
    g.throughput(Throughput::Elements(1));
    // 50 hot fingerprints, as in the end-to-end workload.
    let fps: Vec<Fingerprint> = (0..50u128)
        .map(|i| Fingerprint(i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)))
        .collect();
    let mut i = 0usize;
    let mut now = 1_000 * S;
    let mut next = || {
        i = (i + 1) % fps.len();
        now += 1_000; // 1 µs between events: 1 M events/s
        (fps[i], now)
    };

    let none = Limiter::new(
        &LimitConfig::default()
            .validate()
            .expect("defaults are valid"),
    );
    g.bench_function("decide_no_rules", |b| {
        b.iter(|| {
            let (fp, t) = next();
            none.decide(black_box(fp), "checkout", 1000, t)
        })
    });

    let one = limiter("[[rules]]\nkey = \"fingerprint\"\nrate = 1000000\n");
    g.bench_function("decide_fingerprint_rule", |b| {
        b.iter(|| {
            let (fp, t) = next();
            one.decide(black_box(fp), "checkout", 1000, t)
        })
    });

    let four = limiter(
        r#"
        [duplicates]
        max = 1000000000
        [[rules]]
        key = "fingerprint"
        rate = 1000000
        [[rules]]
        key = "service"
        rate = 1000000
        [[rules]]
        key = "uid"
        rate = 1000000
        [[rules]]
        key = "global"
        rate = 1000000
        "#,
    );
    g.bench_function("decide_four_rules_and_duplicates", |b| {
        b.iter(|| {
            let (fp, t) = next();
            four.decide(black_box(fp), "checkout", 1000, t)
        })
    });

    let shared = limiter(
        "redis_url = \"redis://127.0.0.1:1\"\n[[rules]]\nkey = \"fingerprint\"\nrate = 1000000\n",
    );
    g.bench_function("decide_shared_rule_lease", |b| {
        b.iter(|| {
            let (fp, t) = next();
            shared.decide(black_box(fp), "checkout", 1000, t)
        })
    });

    let churn = limiter("max_keys = 100000\n[[rules]]\nkey = \"fingerprint\"\nrate = 10\n");
    let mut k = 0u128;
    g.bench_function("decide_1m_distinct_keys_evicting", |b| {
        b.iter(|| {
            k = (k + 1) % 1_000_000;
            churn.decide(Fingerprint(black_box(k)), "checkout", 1000, 5 * S)
        })
    });

    // Naive: one lock, a String key per decision, SipHash, a fixed-window counter.
    let naive: Mutex<HashMap<String, (u64, u64)>> = Mutex::new(HashMap::new());
    g.bench_function("naive_mutex_string_map", |b| {
        b.iter(|| {
            let (fp, t) = next();
            let key = format!("fingerprint:{fp}");
            let mut m = naive.lock().unwrap();
            let e = m.entry(key).or_insert((0, 0));
            let w = t / S;
            if e.0 != w {
                *e = (w, 0);
            }
            e.1 += 1;
            black_box(e.1 <= 1_000_000)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
