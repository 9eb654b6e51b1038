#!/usr/bin/env bash
# End-to-end throughput with Redis-shared rate limits on vs off, using bench/run.sh.
#
# "off": the embedded defaults (no rules). "on": a redis-server of our own on a free port, and
# per-fingerprint + global rules shared through it, set high enough that every event is admitted
# (so the daemon does all the limiting work, leases and syncs, and run.sh's "all events written"
# drain check still applies). Reports events/s and CPU-s per million for each run, and the Redis
# round trips per second per daemon (INFO commandstats: EVALSHA + EVAL calls / run time).
#
# Env knobs: RUNS (3), EVENTS (2000000), plus everything bench/run.sh takes. Needs redis-server
# and redis-cli.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RUNS="${RUNS:-3}"
export EVENTS="${EVENTS:-2000000}"
# A free control port, so other daemons on the box (the default 9464) don't collide.
export DAEMON_ARGS="${DAEMON_ARGS:---control 127.0.0.1:0}"
command -v redis-server >/dev/null || { echo "limit.sh: redis-server is needed (apt-get install redis-server)" >&2; exit 1; }

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
RPID=$!
trap 'kill "$RPID" 2>/dev/null || true; wait "$RPID" 2>/dev/null || true' EXIT
for _ in $(seq 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

calls() {
	redis-cli -p "$PORT" info commandstats |
		awk -F'[=,:]' '/^cmdstat_eval(sha)?:/ { n += $3 } END { print n + 0 }'
}

if [[ ${BUILD:-1} == 1 ]]; then
	cargo build --release --examples --bins
fi
export BUILD=0

summary() { grep -E "end-to-end events/s|CPU-s per million|lost|suppressed records|end-to-end time" "$1" | sed 's/^/    /'; }

for i in $(seq "$RUNS"); do
	echo "== run $i: limits off"
	bench/run.sh >"/tmp/qerrors-limit-off.$$" 2>&1 || { cat "/tmp/qerrors-limit-off.$$"; exit 1; }
	summary "/tmp/qerrors-limit-off.$$"

	echo "== run $i: Redis-shared limits on"
	before="$(calls)"
	t0=$EPOCHREALTIME
	QERRORS_LIMIT_REDIS_URL="redis://127.0.0.1:$PORT/" \
		QERRORS_LIMIT_KEY_PREFIX="bench$i" \
		QERRORS_LIMIT_RULES='[{key="fingerprint",rate=100000000,window="1s"},{key="global",rate=100000000,window="1s"}]' \
		bench/run.sh >"/tmp/qerrors-limit-on.$$" 2>&1 || { cat "/tmp/qerrors-limit-on.$$"; exit 1; }
	t1=$EPOCHREALTIME
	after="$(calls)"
	summary "/tmp/qerrors-limit-on.$$"
	awk -v n="$((after - before))" -v a="$t0" -v b="$t1" \
		'BEGIN { printf "    redis script calls          %d in %.1f s = %.1f/s (one daemon; at most 20/s at sync_interval 50ms)\n", n, b - a, n / (b - a) }'
done
rm -f "/tmp/qerrors-limit-off.$$" "/tmp/qerrors-limit-on.$$"
