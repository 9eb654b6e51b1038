//! Load generator for qerrorsd: writes NDJSON error events to the daemon's Unix socket.
//!
//! ```text
//! cargo run --release --example loadgen -- --socket /tmp/q.sock [--connections 4] [--events 1000000]
//!     [--rate 0] [--duration SECS] [--kinds 50] [--seed 1] [--ack] [--bad-every 0] [--json]
//! ```
//!
//! Std library only (plus `serde_json` for string escaping and reply/summary JSON); no async
//! runtime. Every connection gets one writer thread and one reader thread. Event lines are
//! pre-generated per error kind before the timed phase, so generating them costs nothing then.
//! Writes go out in ~64 KiB chunks (a hand-managed buffer, so that `--ack` can stamp the send
//! time of each chunk right before its `write(2)`). Writes simply block when the daemon applies
//! backpressure by not reading.
// A benchmark tool, not the daemon: a setup failure should stop it loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, BufRead, BufReader, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const USAGE: &str = "\
loadgen: send NDJSON error events to a qerrorsd Unix socket and measure throughput/ack latency

usage: cargo run --release --example loadgen -- --socket PATH [options]

options:
  --socket PATH        daemon socket (required)
  --connections N      parallel connections (default 4)
  --events N           total events over all connections (default 1000000; with --duration
                       and no --events: rate*duration when --rate>0, else unlimited)
  --rate R             total events/s over all connections, 0 = as fast as possible (default 0)
  --duration SECS      run length (with --rate: events = rate*SECS; without: stop after SECS)
  --kinds K            distinct error kinds, Zipf popularity (default 50)
  --zipf S             Zipf exponent (default 1.1)
  --seed S             seed for the volatile parts and the kind sequence (default 1)
  --pool N             pre-generated lines per kind (default 256)
  --ack                ask for an ack on every event and measure send -> ack latency
  --ack-timeout SECS   after the last write, wait at most this long for acks (default 30)
  --bad-every N        insert one malformed line after every N events (default 0 = never)
  --tail PATH          measure send -> file latency without acks: follow the sink's output
                       file PATH (polled every 100 us) and match its event lines, in order, to
                       the events sent (one connection only; for sinks that do not ack)
  --tail-match STR     what marks an event line in the --tail file (default \"request_id\",
                       which every generated event carries in its context)
  --json               print the final summary as one JSON object on stdout
                       (the human-readable summary then goes to stderr)
  --help               this text

Throughput counts an event as sent once its bytes were accepted by write(2). MB = 10^6 bytes.
Exit code: 0 ok, 1 a connection failed (connect or write error), 2 usage error.
";

// ----------------------------------------------------------------------------------------------
// options

#[derive(Clone, Debug)]
struct Opts {
    socket: PathBuf,
    connections: usize,
    events: u64, // u64::MAX = unlimited
    rate: f64,
    duration: Option<f64>,
    deadline: Option<Duration>,
    kinds: usize,
    zipf: f64,
    seed: u64,
    pool: usize,
    ack: bool,
    ack_timeout: Duration,
    bad_every: u64,
    json: bool,
    tail: Option<PathBuf>,
    tail_match: String,
}

fn parse_opts() -> Result<Option<Opts>, String> {
    let mut socket = None;
    let mut connections = 4usize;
    let mut events: Option<u64> = None;
    let mut rate = 0f64;
    let mut duration: Option<f64> = None;
    let mut kinds = 50usize;
    let mut zipf = 1.1f64;
    let mut seed = 1u64;
    let mut pool = 256usize;
    let mut ack = false;
    let mut ack_timeout = 30f64;
    let mut bad_every = 0u64;
    let mut json = false;
    let mut tail = None;
    let mut tail_match = "request_id".to_string();

    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut val = |name: &str| -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => args.next().ok_or_else(|| format!("{name} needs a value")),
            }
        };
        fn num<T: std::str::FromStr>(name: &str, s: String) -> Result<T, String> {
            let cleaned: String = s.chars().filter(|c| *c != '_').collect();
            cleaned
                .parse::<T>()
                .map_err(|_| format!("{name}: not a valid number: {s:?}"))
        }
        match key.as_str() {
            "-h" | "--help" => return Ok(None),
            "--socket" => socket = Some(PathBuf::from(val("--socket")?)),
            "--connections" => connections = num("--connections", val("--connections")?)?,
            "--events" => events = Some(num("--events", val("--events")?)?),
            "--rate" => rate = num("--rate", val("--rate")?)?,
            "--duration" => duration = Some(num("--duration", val("--duration")?)?),
            "--kinds" => kinds = num("--kinds", val("--kinds")?)?,
            "--zipf" => zipf = num("--zipf", val("--zipf")?)?,
            "--seed" => seed = num("--seed", val("--seed")?)?,
            "--pool" => pool = num("--pool", val("--pool")?)?,
            "--ack" => ack = true,
            "--ack-timeout" => ack_timeout = num("--ack-timeout", val("--ack-timeout")?)?,
            "--bad-every" => bad_every = num("--bad-every", val("--bad-every")?)?,
            "--json" => json = true,
            "--tail" => tail = Some(PathBuf::from(val("--tail")?)),
            "--tail-match" => tail_match = val("--tail-match")?,
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    let socket = socket.ok_or("--socket PATH is required")?;
    if connections == 0 {
        return Err("--connections must be >= 1".into());
    }
    if tail.is_some() && connections != 1 {
        return Err("--tail needs --connections 1 (lines are matched in send order)".into());
    }
    if tail_match.is_empty() {
        return Err("--tail-match must not be empty".into());
    }
    if kinds == 0 || pool == 0 {
        return Err("--kinds and --pool must be >= 1".into());
    }
    if !(rate >= 0.0 && rate.is_finite()) {
        return Err("--rate must be >= 0".into());
    }
    if let Some(d) = duration {
        if !(d > 0.0 && d.is_finite()) {
            return Err("--duration must be > 0".into());
        }
    }
    if !(ack_timeout >= 0.0 && ack_timeout.is_finite()) {
        return Err("--ack-timeout must be >= 0".into());
    }
    let explicit_events = events.is_some();
    let events = match (events, duration) {
        (Some(n), _) => n,
        (None, Some(d)) if rate > 0.0 => (rate * d).round() as u64,
        (None, Some(_)) => u64::MAX,
        (None, None) => 1_000_000,
    };
    // A wall-clock limit applies when the run is not already bounded by rate*duration.
    let deadline = match duration {
        Some(d) if rate == 0.0 || explicit_events => Some(Duration::from_secs_f64(d)),
        _ => None,
    };
    Ok(Some(Opts {
        socket,
        connections,
        events,
        rate,
        duration,
        deadline,
        kinds,
        zipf,
        seed,
        pool,
        ack,
        ack_timeout: Duration::from_secs_f64(ack_timeout),
        bad_every,
        json,
        tail,
        tail_match,
    }))
}

// ----------------------------------------------------------------------------------------------
// randomness (splitmix64: tiny, fast, good enough for load generation)

#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
    fn range(&mut self, lo: u64, hi_incl: u64) -> u64 {
        lo + self.below(hi_incl - lo + 1)
    }
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// Cumulative Zipf distribution over ranks 1..=k; rank r has weight 1/r^s.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(k: usize, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(k);
        let mut acc = 0.0;
        for r in 1..=k {
            acc += 1.0 / (r as f64).powf(s);
            cdf.push(acc);
        }
        for c in &mut cdf {
            *c /= acc;
        }
        Zipf { cdf }
    }
    fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

// ----------------------------------------------------------------------------------------------
// the workload: realistic JS-style error events

/// (error name, message template, library family). Placeholders: `@E` entity, `@C` Capitalized
/// entity, `@F` field (fixed per kind); `$N` number, `$HEX`, `$UUID`, `$IP`, `$PORT`, `$MS`,
/// `$STATUS`, `$WORD` (vary per event).
const TEMPLATES: &[(&str, &str, Lib)] = &[
    ("TypeError", "Cannot read properties of undefined (reading '@F')", Lib::Express),
    ("TypeError", "Cannot read properties of null (reading '@F')", Lib::Express),
    ("TypeError", "@E.@F.map is not a function", Lib::Express),
    ("RangeError", "The value of \"offset\" is out of range. It must be >= 0 and <= $N. Received $N", Lib::Internal),
    ("ReferenceError", "@FFor@C is not defined", Lib::Express),
    ("SyntaxError", "Unexpected token '<', \"<!DOCTYPE \"... is not valid JSON (response $N)", Lib::Axios),
    ("Error", "connect ECONNREFUSED $IP:$PORT", Lib::Net),
    ("Error", "connect ETIMEDOUT $IP:$PORT", Lib::Net),
    ("AxiosError", "Request failed with status code $STATUS", Lib::Axios),
    ("AxiosError", "timeout of $MSms exceeded", Lib::Axios),
    ("NotFoundError", "@C $N not found", Lib::Express),
    ("ValidationError", "@E.@F must be a positive number, got -$N", Lib::Express),
    ("SequelizeUniqueConstraintError", "duplicate key value violates unique constraint \"@Es_@F_key\": Key (@F)=($N) already exists.", Lib::Sequelize),
    ("MongoServerError", "E11000 duplicate key error collection: shop.@Es index: @F_1 dup key: { @F: \"$HEX\" }", Lib::Mongo),
    ("Error", "ENOENT: no such file or directory, open '/var/lib/app/uploads/$UUID.png'", Lib::Fs),
    ("TokenExpiredError", "jwt expired (token $HEX, @E $N)", Lib::Express),
    ("PaymentError", "Card declined for @E $N: insufficient_funds (charge ch_$HEX)", Lib::Axios),
    ("Error", "Redis connection to $IP:6379 failed - read ECONNRESET", Lib::Redis),
    ("FetchError", "request to http://inventory.internal:$PORT/v1/@Es/$N failed, reason: socket hang up", Lib::Net),
    ("RateLimitError", "Rate limit exceeded for user $N: $N requests in $MSms", Lib::Express),
    ("SequelizeDatabaseError", "Deadlock found when trying to get lock; try restarting transaction (txn $N on @Es)", Lib::Sequelize),
    ("QueryFailedError", "invalid input syntax for type uuid: \"$HEX\"", Lib::Pg),
    ("TimeoutError", "Operation timed out after $MS ms waiting for @E lock $UUID", Lib::Redis),
    ("Error", "Unknown @E status '$WORD' for id $N", Lib::Express),
    ("AbortError", "The operation was aborted (request $UUID)", Lib::Axios),
    ("SyntaxError", "Unexpected end of JSON input while parsing @E payload", Lib::Internal),
    ("UpstreamError", "Upstream @E-service returned 503 after $N retries", Lib::Axios),
    ("Error", "EMFILE: too many open files, open '/srv/app/tmp/@E-$N.json'", Lib::Fs),
    ("TypeError", "Cannot destructure property '@F' of 'req.body' as it is undefined.", Lib::Express),
    ("error", "relation \"@E_$WORD\" does not exist (query $HEX)", Lib::Pg),
];

#[derive(Clone, Copy, Debug)]
enum Lib {
    Express,
    Axios,
    Net,
    Pg,
    Sequelize,
    Mongo,
    Redis,
    Fs,
    Internal,
}

impl Lib {
    fn frames(self) -> &'static [&'static str] {
        match self {
            Lib::Express => &[
                "Layer.handle [as handle_request] (/srv/app/node_modules/express/lib/router/layer.js:95:5)",
                "next (/srv/app/node_modules/express/lib/router/route.js:149:13)",
                "Route.dispatch (/srv/app/node_modules/express/lib/router/route.js:119:3)",
                "Function.process_params (/srv/app/node_modules/express/lib/router/index.js:346:12)",
            ],
            Lib::Axios => &[
                "settle (/srv/app/node_modules/axios/lib/core/settle.js:19:12)",
                "IncomingMessage.handleStreamEnd (/srv/app/node_modules/axios/lib/adapters/http.js:589:11)",
                "Axios.request (/srv/app/node_modules/axios/lib/core/Axios.js:45:41)",
            ],
            Lib::Net => &[
                "TCPConnectWrap.afterConnect [as oncomplete] (node:net:1595:16)",
                "ClientRequest.emit (node:events:517:28)",
                "Socket.socketErrorListener (node:_http_client:501:9)",
            ],
            Lib::Pg => &[
                "Parser.parseErrorMessage (/srv/app/node_modules/pg-protocol/dist/parser.js:287:98)",
                "Parser.handlePacket (/srv/app/node_modules/pg-protocol/dist/parser.js:126:29)",
                "Socket.<anonymous> (/srv/app/node_modules/pg-protocol/dist/index.js:11:42)",
            ],
            Lib::Sequelize => &[
                "Query.formatError (/srv/app/node_modules/sequelize/lib/dialects/postgres/query.js:386:16)",
                "Query.run (/srv/app/node_modules/sequelize/lib/dialects/postgres/query.js:87:18)",
                "/srv/app/node_modules/sequelize/lib/sequelize.js:619:28",
            ],
            Lib::Mongo => &[
                "Connection.onMessage (/srv/app/node_modules/mongodb/lib/cmap/connection.js:202:26)",
                "MessageStream.<anonymous> (/srv/app/node_modules/mongodb/lib/cmap/connection.js:61:60)",
            ],
            Lib::Redis => &[
                "Socket.<anonymous> (/srv/app/node_modules/ioredis/built/Redis.js:170:41)",
                "Object.onceWrapper (node:events:632:26)",
            ],
            Lib::Fs => &["Object.openSync (node:fs:596:3)", "Object.readFileSync (node:fs:464:35)"],
            Lib::Internal => &["JSON.parse (<anonymous>)", "Buffer.readUInt32BE (node:internal/buffer:86:3)"],
        }
    }
}

const ENTITIES: &[&str] = &[
    "order",
    "invoice",
    "cart",
    "user",
    "payment",
    "shipment",
    "product",
    "session",
    "coupon",
    "refund",
    "subscription",
    "address",
];
const FIELDS: &[&str] = &[
    "id",
    "total",
    "items",
    "email",
    "currency",
    "sku",
    "quantity",
    "status",
    "token",
    "price",
    "customerId",
    "lineItems",
];
const SERVICES: &[&str] = &[
    "checkout",
    "cart-api",
    "payments",
    "inventory",
    "auth",
    "notifications",
    "search",
    "orders-worker",
];
const DIRS: &[&str] = &[
    "services",
    "controllers",
    "routes",
    "lib",
    "models",
    "jobs",
    "middleware",
    "utils",
];
const ROLES: &[&str] = &[
    "Service",
    "Controller",
    "Repository",
    "Handler",
    "Manager",
    "Client",
];
const VERBS: &[&str] = &[
    "create",
    "update",
    "load",
    "validate",
    "resolve",
    "handle",
    "process",
    "fetch",
    "sync",
    "apply",
    "compute",
    "serialize",
    "findById",
    "checkout",
    "reserve",
    "charge",
];
const WORDS: &[&str] = &[
    "pending",
    "archived",
    "on_hold",
    "partially_paid",
    "v2",
    "legacy",
    "tmp",
    "draft",
];
const REGIONS: &[&str] = &["eu-1", "eu-2", "us-east-1", "us-west-2", "ap-south-1"];
const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];
const INTERNAL_TAIL: &[&str] = &[
    "process.processTicksAndRejections (node:internal/process/task_queues:95:5)",
    "async Promise.all (index 0)",
    "new Promise (<anonymous>)",
];

struct Kind {
    name: String,
    message: String, // per-kind placeholders already substituted
    level: &'static str,
    service: &'static str,
    method: &'static str,
    path: String, // may contain $N
    version: String,
    frames: Vec<String>, // "    at ..." lines, without trailing newline
    napp: usize,         // the first `napp` frames are in-app ones
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn kebab(s: &str) -> String {
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if ch.is_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.extend(ch.to_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

fn app_frame(rng: &mut Rng, entity: &str) -> String {
    let dir = rng.pick(DIRS);
    let role = rng.pick(ROLES);
    let verb = rng.pick(VERBS);
    let file = format!("/srv/app/src/{dir}/{}-{}.js", entity, kebab(role));
    let (line, col) = (rng.range(12, 840), rng.range(3, 61));
    match rng.below(6) {
        0 => format!(
            "    at async {}{}.{} ({file}:{line}:{col})",
            capitalize(entity),
            role,
            verb
        ),
        1 => format!("    at {file}:{line}:{col}"),
        2 => format!(
            "    at {}{} ({file}:{line}:{col})",
            verb,
            capitalize(entity)
        ),
        _ => format!(
            "    at {}{}.{} ({file}:{line}:{col})",
            capitalize(entity),
            role,
            verb
        ),
    }
}

/// Kinds are derived from a fixed seed so that the set of bugs is the same whatever `--seed` is;
/// `--seed` changes only the volatile parts and the event sequence.
fn make_kinds(k: usize) -> Vec<Kind> {
    let mut rng = Rng::new(0x05EE_D0F4_B1D5);
    (0..k)
        .map(|i| {
            let (name, tmpl, lib) = TEMPLATES[i % TEMPLATES.len()];
            let round = i / TEMPLATES.len();
            // kinds that reuse a template get other words and always another stack, so they
            // are distinct bugs (distinct fingerprints)
            let entity = ENTITIES[(i * 7 + round * 3) % ENTITIES.len()];
            let field = FIELDS[(i * 5 + round) % FIELDS.len()];
            let message = tmpl
                .replace("@C", &capitalize(entity))
                .replace("@E", entity)
                .replace("@F", field);
            let level = match rng.below(10) {
                0 => "fatal",
                1 => "warn",
                _ => "error",
            };
            let service = SERVICES[i % SERVICES.len()];
            let nframes = rng.range(4, 8) as usize;
            let lib_frames = lib.frames();
            let nlib = (rng.range(1, 3) as usize)
                .min(lib_frames.len())
                .min(nframes - 2);
            let ninternal = if nframes - nlib >= 4 && rng.below(2) == 0 {
                1
            } else {
                0
            };
            let napp = nframes - nlib - ninternal;
            let mut frames = Vec::with_capacity(8);
            for j in 0..napp {
                let ent = if j == 0 { entity } else { rng.pick(ENTITIES) };
                frames.push(app_frame(&mut rng, ent));
            }
            let start = rng.below(lib_frames.len() as u64) as usize;
            for j in 0..nlib {
                frames.push(format!(
                    "    at {}",
                    lib_frames[(start + j) % lib_frames.len()]
                ));
            }
            for _ in 0..ninternal {
                frames.push(format!("    at {}", rng.pick(INTERNAL_TAIL)));
            }
            let path = match rng.below(4) {
                0 => format!("/api/{entity}s/$N"),
                1 => format!("/api/v2/{entity}s/$N/items"),
                2 => format!("/api/v1/accounts/$N/{entity}s"),
                _ => format!("/internal/{entity}s/$N/{}", rng.pick(VERBS)),
            };
            Kind {
                name: name.to_string(),
                message,
                level,
                service,
                method: rng.pick(METHODS),
                path,
                version: format!(
                    "{}.{}.{}",
                    rng.range(1, 4),
                    rng.range(0, 30),
                    rng.range(0, 9)
                ),
                frames,
                napp,
            }
        })
        .collect()
}

/// Mean event size (without the ack field) weighted by kind popularity.
fn weighted_mean_size(kinds: &[Kind], zipf: &Zipf) -> f64 {
    let mut rng = Rng::new(42);
    let mut prev = 0.0;
    kinds
        .iter()
        .zip(&zipf.cdf)
        .map(|(k, &c)| {
            let w = c - prev;
            prev = c;
            let mean = (0..32)
                .map(|_| make_event(k, &mut rng, false).len())
                .sum::<usize>() as f64
                / 32.0;
            w * mean
        })
        .sum()
}

/// Nudges stack depths (staying within 4..=8 frames) until the popularity-weighted mean event
/// size is close to `target` bytes, so the byte volume matches the reference workload whatever
/// the kind count and Zipf exponent are.
fn calibrate_sizes(kinds: &mut [Kind], zipf: &Zipf, target: f64) {
    let mut rng = Rng::new(0xCA11_B8A7E);
    for _ in 0..200 {
        let mean = weighted_mean_size(kinds, zipf);
        let gap = target - mean;
        if gap.abs() < 2.0 {
            return;
        }
        // the change in the weighted mean if kind i gets (or loses) one in-app frame
        let mut best = (usize::MAX, f64::INFINITY);
        let mut prev = 0.0;
        for (i, (k, &c)) in kinds.iter().zip(&zipf.cdf).enumerate() {
            let w = c - prev;
            prev = c;
            let can = if gap > 0.0 {
                k.frames.len() < 8
            } else {
                k.frames.len() > 4 && k.napp > 2
            };
            if !can {
                continue;
            }
            let step = w * 86.0; // a typical in-app frame line
            let err = (gap.abs() - step).abs();
            if err < best.1 {
                best = (i, err);
            }
        }
        let (i, err) = best;
        if i == usize::MAX || err >= gap.abs() {
            return; // no change gets closer
        }
        let k = &mut kinds[i];
        if gap > 0.0 {
            let ent = rng.pick(ENTITIES);
            let f = app_frame(&mut rng, ent);
            k.frames.insert(k.napp, f);
            k.napp += 1;
        } else {
            k.frames.remove(k.napp - 1);
            k.napp -= 1;
        }
    }
}

/// Reference workload event size (see shared/PERF-NOTES.md).
const TARGET_EVENT_BYTES: f64 = 875.0;

fn hex(rng: &mut Rng, n: usize, out: &mut String) {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut v = rng.next_u64();
    for i in 0..n {
        if i % 16 == 15 {
            v = rng.next_u64();
        }
        out.push(H[(v & 15) as usize] as char);
        v >>= 4;
    }
}

fn uuid(rng: &mut Rng, out: &mut String) {
    hex(rng, 8, out);
    out.push('-');
    hex(rng, 4, out);
    out.push_str("-4");
    hex(rng, 3, out);
    out.push('-');
    out.push(rng.pick(&['8', '9', 'a', 'b']));
    hex(rng, 3, out);
    out.push('-');
    hex(rng, 12, out);
}

/// Substitutes the per-event placeholders in `t`.
fn render(t: &str, rng: &mut Rng) -> String {
    let mut out = String::with_capacity(t.len() + 32);
    let mut rest = t;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let tok_len = after.bytes().take_while(|b| b.is_ascii_uppercase()).count();
        let tok = &after[..tok_len];
        match tok {
            "N" => {
                let digits = rng.range(2, 7) as u32;
                out.push_str(&rng.range(1, 10u64.pow(digits)).to_string())
            }
            "HEX" => hex(rng, 24, &mut out),
            "UUID" => uuid(rng, &mut out),
            "IP" => out.push_str(&format!(
                "10.{}.{}.{}",
                rng.below(256),
                rng.below(256),
                rng.range(1, 254)
            )),
            "PORT" => out.push_str(&rng.range(1024, 65535).to_string()),
            "MS" => out.push_str(&(rng.range(1, 60) * 500).to_string()),
            "STATUS" => out.push_str(&rng.pick(&[500, 502, 503, 504, 429, 400]).to_string()),
            "WORD" => out.push_str(rng.pick(WORDS)),
            _ => {
                out.push('$');
                out.push_str(tok);
            }
        }
        rest = &after[tok_len..];
    }
    out.push_str(rest);
    out
}

fn jstr(s: &str) -> String {
    serde_json::to_string(s).expect("string serialization cannot fail")
}

fn make_event(kind: &Kind, rng: &mut Rng, ack: bool) -> Vec<u8> {
    let message = render(&kind.message, rng);
    let mut stack = String::with_capacity(800);
    stack.push_str(&kind.name);
    stack.push_str(": ");
    stack.push_str(&message);
    for f in &kind.frames {
        stack.push('\n');
        stack.push_str(f);
    }
    let path = render(&kind.path, rng);
    let mut request_id = String::new();
    uuid(rng, &mut request_id);
    let user_id = rng.range(1, 2_000_000);
    let region = rng.pick(REGIONS);
    let mut line = format!(
        concat!(
            r#"{{"message":{},"name":{},"level":"{}","service":"{}","stack":{},"#,
            r#""context":{{"path":{},"user_id":{},"request_id":"{}","method":"{}"}},"#,
            r#""tags":{{"region":"{}","version":"{}"}}"#
        ),
        jstr(&message),
        jstr(&kind.name),
        kind.level,
        kind.service,
        jstr(&stack),
        jstr(&path),
        user_id,
        request_id,
        kind.method,
        region,
        kind.version,
    );
    if ack {
        line.push_str(r#","ack":true"#);
    }
    line.push_str("}\n");
    line.into_bytes()
}

/// Malformed lines for `--bad-every`, cycled through; each exercises a different rejection.
const BAD_LINES: &[&[u8]] = &[
    b"{\"message\":\"truncated event without closing brace\",\"level\":\"error\"\n",
    b"this is not json: TypeError at /srv/app/src/index.js:12:5\n",
    b"{\"level\":\"error\",\"name\":\"TypeError\",\"service\":\"checkout\"}\n",
    b"{\"message\":12345,\"level\":\"error\"}\n",
    b"{\"message\":\"invalid utf-8 here: \xff\xfe\",\"level\":\"error\"}\n",
    b"{\"message\":\"trailing garbage\"} }\n",
];

struct Pool {
    lines: Vec<Vec<Vec<u8>>>, // [kind][variant]
    zipf: Zipf,
}

// ----------------------------------------------------------------------------------------------
// per connection

/// Bookkeeping handed from writer to reader per chunk: line numbers of ack-requesting events,
/// how many malformed lines it held, and the instant right before the chunk's write.
struct Sent {
    lines: Vec<u64>,
    bad: u64,
    at: Instant,
}

#[derive(Default)]
struct ReaderStats {
    acks: u64,
    latencies_ns: Vec<u64>,
    nacks: BTreeMap<String, u64>, // ok:false replies for events we sent
    rejects: BTreeMap<String, u64>, // ok:false replies for other lines (malformed ones)
    unexpected: u64,              // replies we could not match or parse
    missing_acks: u64,
    last_ack: Option<Instant>,
    error: Option<String>,
}

#[derive(Default)]
struct ConnStats {
    events: u64,
    event_bytes: u64,
    bad: u64,
    bytes: u64,
    write_done: Option<Instant>,
    errors: Vec<String>,
    reader: ReaderStats,
}

fn connect(path: &PathBuf) -> io::Result<UnixStream> {
    // The socket may appear a moment late; retry briefly on "not there yet" errors.
    let give_up = Instant::now() + Duration::from_secs(5);
    loop {
        match UnixStream::connect(path) {
            Ok(s) => return Ok(s),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                ) && Instant::now() < give_up =>
            {
                thread::sleep(Duration::from_millis(50))
            }
            Err(e) => return Err(e),
        }
    }
}

struct Writer<'a> {
    stream: &'a UnixStream,
    buf: Vec<u8>,
    pending_ack_lines: Vec<u64>,
    buf_events: u64,
    buf_event_bytes: u64,
    buf_bad: u64,
    line_no: u64,
    since_bad: u64,
    ack: bool,
    tx: Sender<Sent>,
    stats: ConnStats,
    failed: bool,
    /// With `--tail`: (time right before the write, events in it), per write.
    sends: Option<SendLog>,
}

/// Write times for `--tail`, shared between the connection and `main`.
type SendLog = Arc<std::sync::Mutex<Vec<(Instant, u64)>>>;

const CHUNK: usize = 64 * 1024;

impl Writer<'_> {
    fn push_event(&mut self, line: &[u8], bad_every: u64) {
        self.line_no += 1;
        self.buf.extend_from_slice(line);
        self.buf_events += 1;
        self.buf_event_bytes += line.len() as u64;
        if self.ack {
            self.pending_ack_lines.push(self.line_no);
        }
        if bad_every > 0 {
            self.since_bad += 1;
            if self.since_bad == bad_every {
                self.since_bad = 0;
                let bad = BAD_LINES[(self.stats.bad + self.buf_bad) as usize % BAD_LINES.len()];
                self.line_no += 1;
                self.buf.extend_from_slice(bad);
                self.buf_bad += 1;
            }
        }
    }

    fn flush(&mut self) {
        if self.buf.is_empty() || self.failed {
            return;
        }
        if self.ack || self.buf_bad > 0 {
            let lines = std::mem::take(&mut self.pending_ack_lines);
            // the reader only goes away on a read error; then replies are moot
            let _ = self.tx.send(Sent {
                lines,
                bad: self.buf_bad,
                at: Instant::now(),
            });
        }
        if let Some(log) = &self.sends {
            if let Ok(mut log) = log.lock() {
                log.push((Instant::now(), self.buf_events));
            }
        }
        // write_all retries on EINTR and simply blocks while the daemon is not reading
        let mut w = self.stream;
        match w.write_all(&self.buf) {
            Ok(()) => {
                self.stats.events += self.buf_events;
                self.stats.event_bytes += self.buf_event_bytes;
                self.stats.bad += self.buf_bad;
                self.stats.bytes += self.buf.len() as u64;
            }
            Err(e) => {
                self.stats.errors.push(format!("write: {e}"));
                self.failed = true;
            }
        }
        self.buf.clear();
        self.buf_events = 0;
        self.buf_event_bytes = 0;
        self.buf_bad = 0;
    }
}

fn run_connection(
    idx: usize,
    opts: Arc<Opts>,
    pool: Arc<Pool>,
    quota: u64,
    barrier: Arc<Barrier>,
    sends: Option<SendLog>,
) -> ConnStats {
    let stream = match connect(&opts.socket) {
        Ok(s) => s,
        Err(e) => {
            barrier.wait();
            return ConnStats {
                errors: vec![format!("connect {}: {e}", opts.socket.display())],
                ..Default::default()
            };
        }
    };
    let (tx, rx) = mpsc::channel::<Sent>();
    let reader = match stream.try_clone() {
        Ok(rs) => {
            let (ack, ack_timeout) = (opts.ack, opts.ack_timeout);
            thread::Builder::new()
                .name(format!("reader-{idx}"))
                .spawn(move || read_replies(rs, rx, ack, ack_timeout))
                .expect("spawn reader thread")
        }
        Err(e) => {
            barrier.wait();
            return ConnStats {
                errors: vec![format!("clone socket: {e}")],
                ..Default::default()
            };
        }
    };

    let mut w = Writer {
        stream: &stream,
        buf: Vec::with_capacity(CHUNK + 4096),
        pending_ack_lines: Vec::new(),
        buf_events: 0,
        buf_event_bytes: 0,
        buf_bad: 0,
        line_no: 0,
        since_bad: 0,
        ack: opts.ack,
        tx,
        stats: ConnStats::default(),
        failed: false,
        sends,
    };
    let mut rng = Rng::new(
        opts.seed
            .wrapping_mul(0x100_0000_01B3)
            .wrapping_add(idx as u64 * 7919 + 1),
    );
    let variants = opts.pool as u64;
    let next_line = |rng: &mut Rng| -> &[u8] {
        let k = pool.zipf.sample(rng);
        &pool.lines[k][rng.below(variants) as usize]
    };

    barrier.wait();
    let start = Instant::now();
    let deadline = opts.deadline.map(|d| start + d);
    let mut appended = 0u64;

    if opts.rate <= 0.0 {
        // as fast as possible: fill a 64 KiB chunk, write it, repeat
        'outer: while appended < quota && !w.failed {
            while w.buf.len() < CHUNK && appended < quota {
                let line = next_line(&mut rng);
                w.push_event(line, opts.bad_every);
                appended += 1;
            }
            w.flush();
            if let Some(dl) = deadline {
                if Instant::now() >= dl {
                    break 'outer;
                }
            }
        }
    } else {
        // paced: every tick send what is due by now (open loop), in chunks of at most 64 KiB
        let per_conn = opts.rate / opts.connections as f64;
        let tick = Duration::from_millis(1);
        let mut next_tick = start;
        while appended < quota && !w.failed {
            let now = Instant::now();
            if let Some(dl) = deadline {
                if now >= dl {
                    break;
                }
            }
            let due = ((now - start).as_secs_f64() * per_conn) as u64;
            let due = due.min(quota);
            while appended < due && !w.failed {
                let line = next_line(&mut rng);
                w.push_event(line, opts.bad_every);
                appended += 1;
                if w.buf.len() >= CHUNK {
                    w.flush();
                }
            }
            w.flush();
            if appended >= quota {
                break;
            }
            next_tick += tick;
            let now = Instant::now();
            if next_tick > now {
                thread::sleep(next_tick - now);
            } else {
                next_tick = now; // fell behind (blocked writes); `due` catches up next tick
            }
        }
    }
    w.flush();
    let mut stats = std::mem::take(&mut w.stats);
    stats.write_done = Some(Instant::now());
    drop(w); // drops the ack sender: the reader knows every sent event is announced
    if !opts.ack {
        // one-shot style: half-close so the daemon sees EOF; replies can still come back
        let _ = stream.shutdown(Shutdown::Write);
    }
    stats.reader = reader.join().unwrap_or_else(|_| ReaderStats {
        error: Some("reader thread panicked".into()),
        ..Default::default()
    });
    let _ = stream.shutdown(Shutdown::Both);
    if let Some(e) = stats.reader.error.take() {
        stats.errors.push(e);
    }
    stats
}

fn read_replies(
    stream: UnixStream,
    rx: Receiver<Sent>,
    ack: bool,
    ack_timeout: Duration,
) -> ReaderStats {
    let mut st = ReaderStats::default();
    let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
    let mut r = BufReader::with_capacity(64 * 1024, stream);
    let mut line: Vec<u8> = Vec::with_capacity(256);
    let mut pending: VecDeque<(u64, Instant)> = VecDeque::new();
    let mut writer_done: Option<Instant> = None;
    let mut bad_sent = 0u64;
    let mut last_activity = Instant::now();
    // Replies to malformed lines are best effort. Without --ack: after the last write, wait for
    // EOF from the daemon or for `idle_grace` without any reply. With --ack: stop once every ack
    // is in and every malformed line got its reply, or `ack_idle_grace` passed without replies.
    let idle_grace = Duration::from_secs(1);
    let ack_idle_grace = Duration::from_millis(250);

    let drain = |pending: &mut VecDeque<(u64, Instant)>,
                 writer_done: &mut Option<Instant>,
                 bad_sent: &mut u64| loop {
        match rx.try_recv() {
            Ok(s) => {
                pending.extend(s.lines.into_iter().map(|l| (l, s.at)));
                *bad_sent += s.bad;
            }
            Err(TryRecvError::Empty) => break,
            Err(TryRecvError::Disconnected) => {
                writer_done.get_or_insert_with(Instant::now);
                break;
            }
        }
    };

    loop {
        drain(&mut pending, &mut writer_done, &mut bad_sent);
        if let Some(wd) = writer_done {
            if ack && pending.is_empty() {
                let rejected: u64 = st.rejects.values().sum();
                if rejected >= bad_sent || last_activity.max(wd).elapsed() > ack_idle_grace {
                    break;
                }
            }
            if ack && wd.elapsed() > ack_timeout {
                break;
            }
            if !ack && last_activity.max(wd).elapsed() > idle_grace {
                break;
            }
        }
        match r.read_until(b'\n', &mut line) {
            Ok(0) => break, // EOF
            Ok(_) => {
                let at = Instant::now();
                last_activity = at;
                // a complete line, or the last one before EOF
                drain(&mut pending, &mut writer_done, &mut bad_sent);
                handle_reply(&line, at, &mut pending, &mut st);
                line.clear();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                st.error = Some(format!("read: {e}"));
                break;
            }
        }
    }
    drain(&mut pending, &mut writer_done, &mut bad_sent);
    if ack {
        st.missing_acks = pending.len() as u64;
    }
    st
}

fn handle_reply(
    line: &[u8],
    at: Instant,
    pending: &mut VecDeque<(u64, Instant)>,
    st: &mut ReaderStats,
) {
    let trimmed = line.strip_suffix(b"\n").unwrap_or(line);
    let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
    if trimmed.is_empty() {
        return;
    }
    let ack_ok = |pending: &mut VecDeque<(u64, Instant)>, st: &mut ReaderStats| {
        // the daemon acks in order per connection: the oldest outstanding event is this one
        match pending.pop_front() {
            Some((_, sent)) => {
                st.acks += 1;
                st.latencies_ns.push((at - sent).as_nanos() as u64);
                st.last_ack = Some(at);
            }
            None => st.unexpected += 1,
        }
    };
    if trimmed.starts_with(b"{\"ok\":true") {
        ack_ok(pending, st);
        return;
    }
    let v: serde_json::Value = match serde_json::from_slice(trimmed) {
        Ok(v) => v,
        Err(_) => {
            st.unexpected += 1;
            return;
        }
    };
    match v.get("ok").and_then(|o| o.as_bool()) {
        Some(true) => ack_ok(pending, st),
        Some(false) => {
            let code = v
                .get("error")
                .and_then(|e| e.as_str())
                .unwrap_or("unknown")
                .to_string();
            let pos = v
                .get("line")
                .and_then(|l| l.as_u64())
                .and_then(|l| pending.iter().position(|(pl, _)| *pl == l));
            match pos {
                Some(p) => {
                    pending.remove(p);
                    *st.nacks.entry(code).or_default() += 1;
                }
                None => *st.rejects.entry(code).or_default() += 1,
            }
        }
        None => st.unexpected += 1,
    }
}

// ----------------------------------------------------------------------------------------------
// main

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1000.0
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn main() -> ExitCode {
    let opts = match parse_opts() {
        Ok(Some(o)) => o,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("loadgen: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    // pre-generate the event pool (not timed)
    let gen_start = Instant::now();
    let zipf = Zipf::new(opts.kinds, opts.zipf);
    let mut kinds = make_kinds(opts.kinds);
    calibrate_sizes(&mut kinds, &zipf, TARGET_EVENT_BYTES);
    let mut grng = Rng::new(opts.seed);
    let lines: Vec<Vec<Vec<u8>>> = kinds
        .iter()
        .map(|k| {
            (0..opts.pool)
                .map(|_| make_event(k, &mut grng, opts.ack))
                .collect()
        })
        .collect();
    let pool_bytes: usize = lines.iter().flatten().map(|l| l.len()).sum();
    let pool = Arc::new(Pool { lines, zipf });
    let gen_ms = gen_start.elapsed().as_secs_f64() * 1000.0;
    eprintln!(
        "loadgen: {} kinds x {} lines pre-generated in {:.0} ms ({:.1} MB, avg {:.0} B/line); {} connection(s) to {}",
        opts.kinds,
        opts.pool,
        gen_ms,
        pool_bytes as f64 / 1e6,
        pool_bytes as f64 / (opts.kinds * opts.pool) as f64,
        opts.connections,
        opts.socket.display()
    );

    let opts = Arc::new(opts);
    let n = opts.connections as u64;
    let barrier = Arc::new(Barrier::new(opts.connections + 1));
    let sends: Option<SendLog> = opts.tail.as_ref().map(|_| SendLog::default());
    // u64::MAX until the writers are done; then the number of events sent.
    let tail_expected = Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));
    let tailer = opts.tail.clone().map(|path| {
        let (expected, m, timeout) = (
            tail_expected.clone(),
            opts.tail_match.clone().into_bytes(),
            opts.ack_timeout,
        );
        thread::Builder::new()
            .name("tail".into())
            .spawn(move || tail_file(&path, &m, &expected, timeout))
            .expect("spawn tail thread")
    });
    let handles: Vec<_> = (0..opts.connections)
        .map(|i| {
            let quota = if opts.events == u64::MAX {
                u64::MAX
            } else {
                opts.events / n + u64::from((i as u64) < opts.events % n)
            };
            let (opts, pool, barrier) = (opts.clone(), pool.clone(), barrier.clone());
            let sends = sends.clone();
            thread::Builder::new()
                .name(format!("conn-{i}"))
                .spawn(move || run_connection(i, opts, pool, quota, barrier, sends))
                .expect("spawn connection thread")
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let start_wall = SystemTime::now();

    let stats: Vec<ConnStats> = handles
        .into_iter()
        .map(|h| {
            h.join().unwrap_or_else(|_| ConnStats {
                errors: vec!["connection thread panicked".into()],
                ..Default::default()
            })
        })
        .collect();

    // aggregate
    let events: u64 = stats.iter().map(|s| s.events).sum();
    tail_expected.store(events, std::sync::atomic::Ordering::Relaxed);
    let arrivals = tailer.map(|t| t.join().unwrap_or_default());
    let event_bytes: u64 = stats.iter().map(|s| s.event_bytes).sum();
    let bad: u64 = stats.iter().map(|s| s.bad).sum();
    let bytes: u64 = stats.iter().map(|s| s.bytes).sum();
    let write_end = stats
        .iter()
        .filter_map(|s| s.write_done)
        .max()
        .unwrap_or(start);
    let elapsed = write_end
        .saturating_duration_since(start)
        .as_secs_f64()
        .max(1e-9);
    let conn_failed = stats.iter().filter(|s| !s.errors.is_empty()).count();
    let errors: Vec<String> = stats
        .iter()
        .enumerate()
        .flat_map(|(i, s)| s.errors.iter().map(move |e| format!("conn {i}: {e}")))
        .collect();
    let mut nacks: BTreeMap<String, u64> = BTreeMap::new();
    let mut rejects: BTreeMap<String, u64> = BTreeMap::new();
    for s in &stats {
        for (k, v) in &s.reader.nacks {
            *nacks.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &s.reader.rejects {
            *rejects.entry(k.clone()).or_default() += v;
        }
    }
    let unexpected: u64 = stats.iter().map(|s| s.reader.unexpected).sum();
    let acks: u64 = stats.iter().map(|s| s.reader.acks).sum();
    let missing: u64 = stats.iter().map(|s| s.reader.missing_acks).sum();
    let mut lat: Vec<u64> = stats
        .iter()
        .flat_map(|s| s.reader.latencies_ns.iter().copied())
        .collect();
    lat.sort_unstable();
    let last_ack = stats.iter().filter_map(|s| s.reader.last_ack).max();
    let avg_event = if events > 0 {
        event_bytes as f64 / events as f64
    } else {
        0.0
    };
    let eps = events as f64 / elapsed;
    let mbps = bytes as f64 / 1e6 / elapsed;

    let mut summary = serde_json::json!({
        "tool": "loadgen",
        "socket": opts.socket.display().to_string(),
        "connections": opts.connections,
        "kinds": opts.kinds,
        "zipf_s": opts.zipf,
        "seed": opts.seed,
        "rate_target": opts.rate,
        "duration_target_s": opts.duration,
        "events_target": if opts.events == u64::MAX { serde_json::Value::Null } else { opts.events.into() },
        "events_sent": events,
        "bad_lines_sent": bad,
        "bytes_sent": bytes,
        "avg_event_bytes": (avg_event * 10.0).round() / 10.0,
        "start_unix_ms": unix_ms(start_wall),
        "elapsed_s": elapsed,
        "events_per_s": eps.round() as u64,
        "mb_per_s": (mbps * 100.0).round() / 100.0,
        "connection_errors": conn_failed,
        "errors": errors.iter().take(10).collect::<Vec<_>>(),
        "replies_rejected": rejects,
        "replies_unexpected": unexpected,
    });
    if opts.ack {
        let m = summary.as_object_mut().expect("object");
        m.insert("acks".into(), acks.into());
        m.insert("acks_missing".into(), missing.into());
        m.insert("nacks".into(), serde_json::to_value(&nacks).expect("map"));
        for (k, p) in [("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p999", 0.999)] {
            m.insert(
                format!("ack_{k}_us"),
                ((pct(&lat, p) * 10.0).round() / 10.0).into(),
            );
        }
        m.insert(
            "ack_max_us".into(),
            ((pct(&lat, 1.0) * 10.0).round() / 10.0).into(),
        );
        let mean = if lat.is_empty() {
            0.0
        } else {
            lat.iter().sum::<u64>() as f64 / lat.len() as f64 / 1000.0
        };
        m.insert("ack_mean_us".into(), ((mean * 10.0).round() / 10.0).into());
        let ack_elapsed = last_ack.map(|t| t.saturating_duration_since(start).as_secs_f64());
        m.insert("ack_elapsed_s".into(), ack_elapsed.into());
    }

    let mut file_lat = Vec::new();
    if let (Some(arrivals), Some(sends)) = (&arrivals, &sends) {
        let sends = sends.lock().map(|s| s.clone()).unwrap_or_default();
        let sent_at = sends
            .iter()
            .flat_map(|&(t, n)| std::iter::repeat_n(t, n as usize));
        file_lat = sent_at
            .zip(arrivals)
            .map(|(s, a)| a.saturating_duration_since(s).as_nanos() as u64)
            .collect();
        file_lat.sort_unstable();
        let m = summary.as_object_mut().expect("object");
        m.insert("file_lines".into(), arrivals.len().into());
        m.insert(
            "file_missing".into(),
            events.saturating_sub(arrivals.len() as u64).into(),
        );
        for (k, p) in [
            ("p50", 0.50),
            ("p90", 0.90),
            ("p99", 0.99),
            ("p999", 0.999),
            ("max", 1.0),
        ] {
            m.insert(
                format!("file_{k}_us"),
                ((pct(&file_lat, p) * 10.0).round() / 10.0).into(),
            );
        }
    }

    let mut human = String::new();
    {
        use std::fmt::Write as _;
        let h = &mut human;
        let _ = writeln!(h, "loadgen summary");
        let _ = writeln!(h, "  connections        {}", opts.connections);
        let _ = writeln!(h, "  events sent        {events}");
        if bad > 0 {
            let _ = writeln!(h, "  bad lines sent     {bad}");
        }
        let _ = writeln!(
            h,
            "  bytes sent         {bytes} ({:.1} MB)",
            bytes as f64 / 1e6
        );
        let _ = writeln!(h, "  avg event size     {avg_event:.1} B");
        let _ = writeln!(h, "  elapsed            {elapsed:.3} s");
        let _ = writeln!(h, "  events/s           {eps:.0}");
        let _ = writeln!(h, "  MB/s               {mbps:.1}");
        if opts.ack {
            let _ = writeln!(h, "  acks received      {acks} (missing {missing})");
            for (k, v) in &nacks {
                let _ = writeln!(h, "  nack {k:<14}{v}");
            }
            let _ = writeln!(
                h,
                "  ack latency us     p50 {:.1}  p90 {:.1}  p99 {:.1}  p999 {:.1}  max {:.1}",
                pct(&lat, 0.5),
                pct(&lat, 0.9),
                pct(&lat, 0.99),
                pct(&lat, 0.999),
                pct(&lat, 1.0)
            );
        }
        if let Some(a) = &arrivals {
            let _ = writeln!(
                h,
                "  file lines         {} (missing {})",
                a.len(),
                events.saturating_sub(a.len() as u64)
            );
            let _ = writeln!(
                h,
                "  file latency us    p50 {:.1}  p90 {:.1}  p99 {:.1}  p999 {:.1}  max {:.1}",
                pct(&file_lat, 0.5),
                pct(&file_lat, 0.9),
                pct(&file_lat, 0.99),
                pct(&file_lat, 0.999),
                pct(&file_lat, 1.0)
            );
        }
        for (k, v) in &rejects {
            let _ = writeln!(h, "  rejected {k:<10}{v}");
        }
        if unexpected > 0 {
            let _ = writeln!(h, "  unexpected replies {unexpected}");
        }
        let _ = writeln!(h, "  connection errors  {conn_failed}");
        for e in errors.iter().take(10) {
            let _ = writeln!(h, "    {e}");
        }
    }
    if opts.json {
        eprint!("{human}");
        println!("{summary}");
    } else {
        print!("{human}");
    }
    if conn_failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

// ----------------------------------------------------------------------------------------------
// --tail: send -> file latency for sinks without acks

/// Poll interval of the followed file: the resolution of `file_*_us` (plus timer slack).
const TAIL_POLL: Duration = Duration::from_micros(100);

/// Follows `path` from its start (retrying until it exists) and returns the time each line
/// containing `m` was first seen, in file order, until `expected` such lines arrived or
/// `timeout` passed after `expected` was set (by `main`, once the writers are done).
fn tail_file(
    path: &std::path::Path,
    m: &[u8],
    expected: &std::sync::atomic::AtomicU64,
    timeout: Duration,
) -> Vec<Instant> {
    use std::io::Read;
    use std::sync::atomic::Ordering::Relaxed;
    let mut out = Vec::new();
    let mut file = None;
    let mut partial: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut give_up: Option<Instant> = None;
    loop {
        let want = expected.load(Relaxed);
        if out.len() as u64 >= want {
            return out;
        }
        if want != u64::MAX {
            let dl = *give_up.get_or_insert_with(|| Instant::now() + timeout);
            if Instant::now() >= dl {
                return out;
            }
        }
        if file.is_none() {
            file = std::fs::File::open(path).ok();
        }
        let n = match file.as_mut().map(|f| f.read(&mut buf)) {
            Some(Ok(n)) => n,
            _ => 0,
        };
        if n == 0 {
            thread::sleep(TAIL_POLL);
            continue;
        }
        let now = Instant::now();
        partial.extend_from_slice(&buf[..n]);
        let mut start = 0;
        while let Some(nl) = partial[start..].iter().position(|&b| b == b'\n') {
            let line = &partial[start..start + nl];
            if line.windows(m.len()).any(|w| w == m) {
                out.push(now);
            }
            start += nl + 1;
        }
        partial.drain(..start);
    }
}
