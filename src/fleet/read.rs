//! The control plane's reads of the fleet registry: `/fleet/fingerprints?top=N` and
//! `/fleet/fingerprints/{fp}`.
//!
//! Each read is one call (a read-only Lua script for the top N: the index and the hashes in one
//! round trip) with the `fleet.redis_timeout` deadline, so a Redis that is down or slow is an
//! error after at most that long, never a hang. Answers are cached for [`CACHE_TTL`]: a
//! dashboard polling every second costs Redis one call per query, whatever the number of
//! viewers.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Map, Value};

use super::config::Fleet;
use super::sync::Keys;
use crate::event::fingerprint::Fingerprint;
use crate::event::record::rfc3339_micros;
use crate::limit::redis::{CallError, Conn, Target};

/// How long an answer is served from the cache.
pub const CACHE_TTL: Duration = Duration::from_secs(1);

/// Most cached answers (distinct queries); the cache is emptied when it is full.
pub const CACHE_ENTRIES: usize = 64;

/// Most rows of one top-N read.
pub const MAX_TOP: usize = 1000;

/// The top-N script. KEYS: the index. ARGV: the fingerprint key prefix, N. Returns per
/// fingerprint still held: `{hex, field, value, …}`.
const TOP_SCRIPT: &str = r#"
local ids = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
local out = {}
for _, m in ipairs(ids) do
  local h = redis.call('HGETALL', ARGV[1] .. m)
  if #h > 0 then
    local row = {m}
    for _, v in ipairs(h) do row[#row + 1] = v end
    out[#out + 1] = row
  end
end
return out
"#;

/// Why a read failed (the control plane answers 503 with it).
#[derive(Debug, thiserror::Error)]
#[error("fleet redis: {0}")]
pub struct ReadError(#[from] CallError);

pub struct Reader {
    client: Target,
    conn: tokio::sync::Mutex<Option<Conn>>,
    keys: Keys,
    timeout: Duration,
    script: redis::Script,
    cache: std::sync::Mutex<HashMap<String, (Instant, Value)>>,
}

impl Reader {
    /// `None` when the fleet is off.
    pub fn new(cfg: &Fleet) -> Option<Self> {
        let url = cfg.redis_url.as_ref()?;
        let client = Target::open(url, cfg.redis_cluster).ok()?;
        Some(Self {
            client,
            conn: tokio::sync::Mutex::new(None),
            keys: Keys::new(&cfg.key_prefix),
            timeout: cfg.redis_timeout,
            script: redis::Script::new(TOP_SCRIPT),
            cache: std::sync::Mutex::new(HashMap::new()),
        })
    }

    fn cached(&self, key: &str, now: Instant) -> Option<Value> {
        let c = self.cache.lock().ok()?;
        c.get(key)
            .filter(|(at, _)| now.duration_since(*at) < CACHE_TTL)
            .map(|(_, v)| v.clone())
    }

    fn store(&self, key: String, now: Instant, v: &Value) {
        if let Ok(mut c) = self.cache.lock() {
            if c.len() >= CACHE_ENTRIES {
                c.clear();
            }
            c.insert(key, (now, v.clone()));
        }
    }

    /// The `n` most frequent fingerprints of the fleet.
    pub async fn top(&self, n: usize) -> Result<Value, ReadError> {
        let n = n.clamp(1, MAX_TOP);
        let key = format!("top:{n}");
        let now = Instant::now();
        if let Some(v) = self.cached(&key, now) {
            return Ok(v);
        }
        let mut inv = self.script.prepare_invoke();
        inv.key(&self.keys.index).arg(&self.keys.fp).arg(n);
        let rows: Vec<Vec<String>> = self.query(Req::Script(inv)).await?;
        let now_min = unix_minute();
        let v = Value::Array(
            rows.iter()
                .filter_map(|r| {
                    let (hex, rest) = r.split_first()?;
                    Some(render(hex, pairs(rest), now_min))
                })
                .collect(),
        );
        self.store(key, now, &v);
        Ok(v)
    }

    /// One fingerprint of the fleet (`None`: not held).
    pub async fn one(&self, fp: Fingerprint) -> Result<Option<Value>, ReadError> {
        let hex = fp.to_string();
        let key = format!("fp:{hex}");
        let now = Instant::now();
        if let Some(v) = self.cached(&key, now) {
            return Ok((!v.is_null()).then_some(v));
        }
        let rkey = format!("{}{hex}", self.keys.fp);
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(&rkey);
        let h: Vec<String> = self.query(Req::Cmd(cmd)).await?;
        let v = if h.is_empty() {
            Value::Null
        } else {
            render(&hex, pairs(&h), unix_minute())
        };
        self.store(key, now, &v);
        Ok((!v.is_null()).then_some(v))
    }

    /// Runs `req` on the connection (made first if needed) within the deadline; a failed call
    /// drops the connection, so the next read reconnects.
    async fn query<T: redis::FromRedisValue>(&self, req: Req<'_>) -> Result<T, ReadError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let timeout = || ReadError(CallError::Timeout(self.timeout));
        let mut guard = tokio::time::timeout_at(deadline, self.conn.lock())
            .await
            .map_err(|_| timeout())?;
        if guard.is_none() {
            let c = tokio::time::timeout_at(deadline, self.client.connect())
                .await
                .map_err(|_| timeout())?
                .map_err(|e| ReadError(e.into()))?;
            *guard = Some(c);
        }
        let Some(conn) = guard.as_mut() else {
            return Err(timeout());
        };
        let call = async {
            match (conn, req) {
                (Conn::Single(c), Req::Script(i)) => i.invoke_async(c).await,
                (Conn::Cluster(c), Req::Script(i)) => i.invoke_async(c).await,
                (Conn::Single(c), Req::Cmd(cmd)) => cmd.query_async(c).await,
                (Conn::Cluster(c), Req::Cmd(cmd)) => cmd.query_async(c).await,
            }
        };
        let r = tokio::time::timeout_at(deadline, call).await;
        match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                *guard = None;
                Err(ReadError(e.into()))
            }
            Err(_) => {
                *guard = None;
                Err(timeout())
            }
        }
    }
}

/// One read call.
enum Req<'a> {
    Script(redis::ScriptInvocation<'a>),
    Cmd(redis::Cmd),
}

fn pairs(flat: &[String]) -> Map<String, Value> {
    flat.chunks_exact(2)
        .map(|p| (p[0].clone(), Value::String(p[1].clone())))
        .collect()
}

fn unix_minute() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 60)
}

/// One fingerprint as the API shows it, from its Redis hash.
fn render(hex: &str, h: Map<String, Value>, now_min: u64) -> Value {
    let s = |k: &str| h.get(k).and_then(Value::as_str).unwrap_or_default();
    let n = |k: &str| s(k).parse::<u64>().unwrap_or(0);
    let ms = |k: &str| {
        h.get(k)
            .and_then(Value::as_str)
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(Value::Null, |v| {
                json!(rfc3339_micros(
                    SystemTime::UNIX_EPOCH + Duration::from_millis(v)
                ))
            })
    };
    let mut hosts: Vec<&str> = h.keys().filter_map(|k| k.strip_prefix("h:")).collect();
    hosts.sort_unstable();
    let mut minutes: Vec<(u64, u64)> = h
        .iter()
        .filter(|(k, _)| k.starts_with('m') && k[1..].bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|(_, v)| {
            let (m, c) = v.as_str()?.split_once(':')?;
            Some((m.parse().ok()?, c.parse().ok()?))
        })
        .filter(|&(m, _)| m + 60 > now_min && m <= now_min)
        .collect();
    minutes.sort_unstable();
    let opt = |k: &str| h.get(k).cloned().unwrap_or(Value::Null);
    json!({
        "fingerprint": hex,
        "count": n("count"),
        "first_seen": ms("fs"),
        "first_host": opt("fh"),
        "last_seen": ms("ls"),
        "last_host": opt("lh"),
        "hosts": n("hn"),
        "hosts_more": h.contains_key("hmore"),
        "host_names": hosts,
        "name": opt("name"),
        "message": opt("msg"),
        "service": opt("svc"),
        "class": opt("class"),
        "severity": opt("sev"),
        "level": opt("level"),
        "last_hour": minutes.iter().map(|m| m.1).sum::<u64>(),
        "per_minute": minutes.iter().map(|&(m, c)| json!({
            "minute": rfc3339_micros(SystemTime::UNIX_EPOCH + Duration::from_secs(m * 60)),
            "count": c,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_hash_keeping_the_last_hour_of_minutes() {
        let flat: Vec<String> = [
            ("count", "7"),
            ("fs", "60000"),
            ("fh", "web-1"),
            ("ls", "120000"),
            ("lh", "web-2"),
            ("hn", "2"),
            ("h:web-1", "1"),
            ("h:web-2", "1"),
            ("msg", "boom"),
            ("m1", "1000:3"),
            ("m2", "902:4"),
        ]
        .iter()
        .flat_map(|(k, v)| [k.to_string(), v.to_string()])
        .collect();
        let v = render("ab", pairs(&flat), 1000);
        assert_eq!(v["count"], 7);
        assert_eq!(v["hosts"], 2);
        assert_eq!(v["host_names"], json!(["web-1", "web-2"]));
        assert_eq!(v["first_host"], "web-1");
        assert_eq!(v["last_hour"], 3, "minute 902 is older than an hour: {v}");
        assert_eq!(v["first_seen"], "1970-01-01T00:01:00.000000Z");
    }
}
