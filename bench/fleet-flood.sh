#!/usr/bin/env bash
# The fleet registry's Redis memory bound under a flood of distinct fingerprints
# (docs/fleet.md, "Redis memory: the bound").
#
# Starts a redis-server of its own on a free port and one qerrorsd with [fleet] pointing at it,
# sends FLOOD (1000000) events, each with its own client fingerprint and the largest sample
# (200-byte message, 64-byte name), waits until every delta reached Redis, then reports how
# many fingerprints Redis holds (the index is trimmed to fleet.max_fingerprints), DBSIZE, and
# used_memory growth in total and per fingerprint held.
#
# Env knobs: FLOOD (1000000), MAX_FINGERPRINTS (20000, the default), BUILD (1: cargo build
# --release --bins first). Needs redis-server, redis-cli and python3.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
FLOOD="${FLOOD:-1000000}"
MAX_FINGERPRINTS="${MAX_FINGERPRINTS:-20000}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
command -v redis-server >/dev/null || { echo "fleet-flood.sh: redis-server is needed" >&2; exit 1; }
if [[ ${BUILD:-1} == 1 ]]; then
	cargo build --release --bins
fi
BIN="${BIN:-$TARGET/release}"

WORK="$(mktemp -d /tmp/qerrors-fleet-flood.XXXXXX)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
RPID=$!
cleanup() {
	[[ ${OK:-0} == 1 ]] || { grep -iE "pressure|closed|timeout|refused" "$WORK/stderr" | tail -5; grep "\"kind\":\"daemon\"" "$WORK/errors.log" | grep -v fleet | tail -5; } >&2
	[[ -n ${DPID:-} ]] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
	kill "$RPID" 2>/dev/null || true
	wait "$RPID" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
for _ in $(seq 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
used() { redis-cli -p "$PORT" info memory | awk -F: '/^used_memory:/ { print $2 + 0 }'; }
BASE="$(used)"

QERRORS_FLEET_REDIS_URL="redis://127.0.0.1:$PORT/" \
	QERRORS_FLEET_KEY_PREFIX=flood \
	QERRORS_FLEET_MAX_FINGERPRINTS="$MAX_FINGERPRINTS" \
	QERRORS_FLEET_MAX_PENDING=100000 \
	QERRORS_EVENT_HOST=flood-host-with-a-long-name-0001 \
	"$BIN/qerrorsd" --socket "$WORK/q.sock" --log "$WORK/errors.log" --control 127.0.0.1:0 \
	2>"$WORK/stderr" &
DPID=$!
for _ in $(seq 200); do [[ -S $WORK/q.sock ]] && break; sleep 0.05; done
ctl() { "$BIN/qerrorsctl" --socket "$WORK/q.sock" "$@"; }

t0=$EPOCHREALTIME
python3 - "$WORK/q.sock" "$FLOOD" <<'PY'
import socket, sys
path, n = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_UNIX); s.connect(path); s.settimeout(60)
msg, name = "x" * 300, "E" * 64
chunk = []
for i in range(n):
    chunk.append('{"message":"%s","name":"%s","service":"flood","fingerprint":"flood-%d"}\n' % (msg, name, i))
    if len(chunk) == 2000:
        s.sendall("".join(chunk).encode()); chunk = []
if chunk:
    s.sendall("".join(chunk).encode())
s.shutdown(socket.SHUT_WR); s.recv(1)
PY
synced() { ctl stats | python3 -c 'import json,sys; f=json.load(sys.stdin)["fleet"]; print(f["synced_events"] + f["dropped_events"], f["dropped_events"])'; }
while true; do
	read -r done dropped < <(synced)
	[[ $done -ge $FLOOD ]] && break
	sleep 1
done
t1=$EPOCHREALTIME
HELD="$(redis-cli -p "$PORT" zcard '{flood}:fleet:index')"
KEYS="$(redis-cli -p "$PORT" dbsize)"
GROWN=$(($(used) - BASE))
CALLS="$(redis-cli -p "$PORT" info commandstats | awk -F'[=,:]' '/^cmdstat_eval(sha)?:/ { n += $3 } END { print n + 0 }')"
OK=1
echo "flood                  $FLOOD distinct fingerprints in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s (dropped deltas: $dropped events)"
echo "held in redis          $HELD (fleet.max_fingerprints $MAX_FINGERPRINTS), DBSIZE $KEYS"
echo "redis used_memory      +$GROWN bytes = $((GROWN / HELD)) bytes per fingerprint held"
echo "redis script calls     $CALLS"
echo "daemon rss             $(ctl stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["memory"]["rss_bytes"])') bytes"
