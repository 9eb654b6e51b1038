#!/usr/bin/env bash
# Memory soak for qerrorsd: steady load for minutes, RSS printed over time.
# Not part of `cargo test`. See docs/memory.md for a recorded result.
#
# Runs the release daemon with the default configuration (plus DAEMON_ARGS) and examples/loadgen
# at a fixed rate, samples the daemon's RSS (and /stats' pressure level and fingerprint count)
# every INTERVAL seconds, and prints one line per sample, then min / max / last and the growth
# between the first and the last quarter of the run (a leak shows up there).
#
# Env knobs: MINUTES (5), RATE (20000 events/s over all connections), CONNECTIONS (4),
# KINDS (5000 distinct error kinds), INTERVAL (5 s), DAEMON_ARGS (extra qerrorsd options, e.g.
# "--config my.toml"), DAEMON_ENV (extra environment, e.g. "QERRORS_MEMORY_BUDGET=64MiB"),
# BUILD (1; 0 = skip cargo build), KEEP (0; 1 = keep the temp dir).
set -euo pipefail

BENCH_NAME=soak.sh
STOP_WAIT=10
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"

MINUTES="${MINUTES:-5}"
RATE="${RATE:-20000}"
CONNECTIONS="${CONNECTIONS:-4}"
KINDS="${KINDS:-5000}"
INTERVAL="${INTERVAL:-5}"
read -r -a EXTRA_DAEMON <<<"${DAEMON_ARGS:-}"
read -r -a EXTRA_ENV <<<"${DAEMON_ENV:-}"

bench_traps
bench_binaries

DIR="$(mktemp -d "${TMPDIR:-/tmp}/qerrors-soak.XXXXXX")"
SOCK="$DIR/q.sock"
PORT=$((20000 + RANDOM % 20000))
env "${EXTRA_ENV[@]}" "$DAEMON_BIN" --socket "$SOCK" --log "$DIR/errors.log" \
	--control "127.0.0.1:$PORT" "${EXTRA_DAEMON[@]}" >"$DIR/daemon.out" 2>&1 &
DPID=$!
for _ in $(seq 100); do
	[[ -S $SOCK ]] && break
	alive "$DPID" || break
	sleep 0.1
done
[[ -S $SOCK ]] && alive "$DPID" || die "daemon did not start: $(tail -n 5 "$DIR/daemon.out")"

SECS=$((MINUTES * 60))
log "daemon pid $DPID; load: $RATE events/s, $CONNECTIONS connections, $KINDS kinds, ${SECS}s"
"$LOADGEN_BIN" --socket "$SOCK" --connections "$CONNECTIONS" --rate "$RATE" --duration "$SECS" \
	--kinds "$KINDS" --pool 16 --json >"$DIR/loadgen.json" 2>"$DIR/loadgen.err" &
LGPID=$!

STATS=""
stat_field() {
	# the first "key":value in /stats (fetched once per sample), best effort without jq;
	# $2 restricts the value (e.g. a quoted word for memory.pressure, not events.suppressed.pressure)
	local pat='[^,}]*'
	[[ -n ${2:-} ]] && pat=$2
	grep -o "\"$1\":$pat" <<<"$STATS" | head -n 1 | cut -d: -f2 | tr -d '"' || true
}

printf '%8s %10s %9s %13s %12s %12s %9s\n' "t_s" "rss_mib" "pressure" "fingerprints" "accepted" \
	"written" "ring_mib"
START=$SECONDS
SAMPLES=()
while alive "$LGPID"; do
	T=$((SECONDS - START))
	R=$(rss_kib "$DPID")
	# the idle sample before the load starts is printed, not counted
	((T > 0)) && SAMPLES+=("$R")
	STATS=$(curl -s --max-time 2 --unix-socket "$DIR/q-control.sock" http://localhost/stats 2>/dev/null || true)
	RING=$(grep -o '"ring":{[^}]*}' <<<"$STATS" | grep -o '"bytes":[0-9]*' | cut -d: -f2 || true)
	printf '%8d %10.1f %9s %13s %12s %12s %9.1f\n' "$T" "$(echo "$R / 1024" | bc -l)" \
		"$(stat_field pressure '"[a-z]*"')" "$(stat_field tracked)" "$(stat_field accepted)" \
		"$(stat_field written)" "$(echo "${RING:-0} / 1048576" | bc -l)"
	# in the background so that a signal is handled at once
	sleep "$INTERVAL" &
	wait $! || true
done
wait "$LGPID" || log "loadgen exited with $?"
LGPID=""

N=${#SAMPLES[@]}
((N >= 4)) || die "too few samples ($N); run longer"
Q=$((N / 4))
sum() { local s=0 x; for x in "$@"; do s=$((s + x)); done; echo "$s"; }
FIRST=$(($(sum "${SAMPLES[@]:0:Q}") / Q))
LASTQ=$(($(sum "${SAMPLES[@]:N-Q:Q}") / Q))
MIN=$(printf '%s\n' "${SAMPLES[@]}" | sort -n | head -n 1)
MAX=$(printf '%s\n' "${SAMPLES[@]}" | sort -n | tail -n 1)
SENT=$(grep -o '"events_sent":[0-9]*' "$DIR/loadgen.json" | cut -d: -f2 || echo "?")
printf '\nsamples %d, events sent %s\n' "$N" "$SENT"
printf 'rss MiB: min %.1f  max %.1f  last %.1f\n' "$(echo "$MIN/1024" | bc -l)" \
	"$(echo "$MAX/1024" | bc -l)" "$(echo "${SAMPLES[N-1]}/1024" | bc -l)"
printf 'mean of first quarter %.1f MiB, of last quarter %.1f MiB (growth %+.1f MiB)\n' \
	"$(echo "$FIRST/1024" | bc -l)" "$(echo "$LASTQ/1024" | bc -l)" "$(echo "($LASTQ-$FIRST)/1024" | bc -l)"
