#!/usr/bin/env bash
# Event-loop lag of a release qerrorsd through the issue-14 scenario, from its own
# qerrors_event_loop_lag_seconds histogram (src/lag.rs; docs/operations.md). Every phase runs
# while loadgen pushes ~875-byte events at full speed over 4 connections, on the same 2 cores:
#   1. analysis bursts: loadgen --kinds 2000 (2,000 new fingerprints, each a rules analysis)
#   2. reload: SIGHUP (config reload + log reopen) half-way through a full-speed run
#   3. rotation: sink.rotate_bytes = ROTATE_BYTES (64 MiB), so every run rotates the log
#   4. flood: FLOOD events (1,000,000), each with its own client fingerprint, over 4
#      connections (python3), on top of a full-speed loadgen run
# Prints per phase the ticks and lag p50/p90/p99 (histogram deltas; each figure is the upper
# bound of its power-of-two bucket), the largest single lag since start, and the workers' busy
# ratios. A benchmark, not a test: the target (p99 under 5 ms) is read, not asserted.
#
# Env knobs: RATE (0 = full speed; else loadgen's events/s, the flood stays full speed),
# EVENTS (per loadgen run: 1000000 at full speed, else RATE x 10), FLOOD (1000000),
# ROTATE_BYTES (67108864), BUILD (1), DAEMON (another qerrorsd binary), BENCH_TMP, KEEP (0).
set -euo pipefail

BENCH_NAME=lag.sh
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"

RATE="${RATE:-0}"
if [[ $RATE == 0 ]]; then EVENTS="${EVENTS:-1000000}"; else EVENTS="${EVENTS:-$((RATE * 10))}"; fi
FLOOD="${FLOOD:-1000000}"
ROTATE_BYTES="${ROTATE_BYTES:-67108864}"

command -v curl >/dev/null || die "needs curl"
command -v python3 >/dev/null || die "needs python3"
bench_traps
bench_binaries
DAEMON_BIN="${DAEMON:-$DAEMON_BIN}"

DIR="$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/qerrors-lag.XXXXXX")"
SOCK="$DIR/q.sock"
LOG="$DIR/errors.log"
QERRORS_SINK_ROTATE_BYTES="$ROTATE_BYTES" QERRORS_SINK_ROTATE_KEEP=2 \
	"$DAEMON_BIN" --socket "$SOCK" --log "$LOG" --control 127.0.0.1:0 >"$DIR/daemon.out" 2>&1 &
DPID=$!
for _ in $(seq 100); do
	[[ -S $SOCK ]] && break
	alive "$DPID" || break
	nap 0.1
done
[[ -S $SOCK ]] || die "daemon did not start (see $DIR/daemon.out)"
CTL=""
for _ in $(seq 100); do
	CTL=$(head -n 1 "$LOG" | sed -n 's/.*"control":"\([^"]*\)".*/\1/p')
	[[ -n $CTL ]] && break
	nap 0.1
done
[[ -n $CTL ]] || die "no control address in the start record"
log "daemon pid $DPID, control $CTL, dir $DIR"

# Cumulative bucket counts: "le count" per line.
buckets() { curl -sf "http://$CTL/metrics" | sed -n 's/^qerrors_event_loop_lag_seconds_bucket{le="\([^"]*\)"} \([0-9]*\).*/\1 \2/p'; }
written() { curl -sf "http://$CTL/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["events"]["written"])'; }

# Quantiles of the ticks between two bucket snapshots (files), in ms.
report() {
	local what=$1 before=$2 after=$3
	paste "$before" "$after" | awk -v what="$what" '{ le[NR] = $1; d[NR] = $4 - $2 } END {
		n = d[NR]
		if (n <= 0) { printf "  %-24s no ticks\n", what; exit }
		split("0.5 0.9 0.99", qs, " ")
		out = ""
		for (j = 1; j <= 3; j++) {
			for (i = 1; i <= NR; i++) if (d[i] >= qs[j] * n) break
			v = (le[i] == "+Inf") ? "+Inf" : sprintf("%.3g", le[i] * 1000)
			out = out sprintf("  p%s %s", qs[j] * 100, v)
		}
		printf "  %-24s %6d ticks  lag ms (bucket bounds):%s\n", what, n, out }'
}

wait_written() {
	local want=$1
	for _ in $(seq 6000); do
		(($(written) >= want)) && return 0
		nap 0.1
	done
	die "only $(written) of $want events written after 10 minutes"
}

loadgen() {
	"$LOADGEN_BIN" --socket "$SOCK" --connections 4 --events "$EVENTS" --rate "$RATE" --json "$@" \
		>>"$DIR/loadgen.json" 2>>"$DIR/loadgen.err"
}

flood() {
	python3 - "$SOCK" "$FLOOD" <<'EOF'
import socket, sys, threading
path, n = sys.argv[1], int(sys.argv[2])
def run(c):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    buf = []
    for i in range(c, n, 4):
        buf.append('{"message":"flood event %d","level":"error","fingerprint":"flood-%d"}\n' % (i, i))
        if len(buf) >= 2000:
            s.sendall("".join(buf).encode())
            buf = []
    s.sendall("".join(buf).encode())
    s.shutdown(socket.SHUT_WR)
    while s.recv(65536):
        pass
ts = [threading.Thread(target=run, args=(c,)) for c in range(4)]
for t in ts: t.start()
for t in ts: t.join()
EOF
}

total=0
nap 1
buckets >"$DIR/b0"

log "phase 1: analysis bursts (2,000 new fingerprints)"
loadgen --kinds 2000 --pool 4
total=$((total + EVENTS))
wait_written "$total"
buckets >"$DIR/b1"

log "phase 2: SIGHUP (reload + reopen) during a full-speed run"
loadgen &
LGPID=$!
nap 1
kill -HUP "$DPID"
wait "$LGPID"
LGPID=""
total=$((total + EVENTS))
wait_written "$total"
buckets >"$DIR/b2"

log "phase 3: $FLOOD distinct fingerprints and a full-speed run at once"
loadgen &
LGPID=$!
flood
wait "$LGPID"
LGPID=""
total=$((total + EVENTS + FLOOD))
wait_written "$total"
buckets >"$DIR/b3"

STATS=$(curl -sf "http://$CTL/stats")
echo
echo "qerrorsd event-loop lag, release build, loadgen $([[ $RATE == 0 ]] && echo "at full speed" || echo "at $RATE events/s"), $(nproc) CPUs shared with loadgen ($(date -u +%Y-%m-%dT%H:%MZ))"
report "analysis bursts" "$DIR/b0" "$DIR/b1"
report "reload" "$DIR/b1" "$DIR/b2"
report "fingerprint flood" "$DIR/b2" "$DIR/b3"
report "whole scenario" "$DIR/b0" "$DIR/b3"
python3 -c '
import json, sys
s = json.loads(sys.argv[1])
e = s["event_loop"]
print("  max single lag since start: %.3f ms; worker busy ratios (last window): %s" % (e["lag_us"]["max"] / 1000, e["worker_busy_ratio"]))
print("  events written %d, fingerprints tracked %d, analyses completed %s, reloads: %s" % (
    s["events"]["written"], s["fingerprints"]["tracked"], (s.get("analysis") or {}).get("completed"), s["reload"]["outcome"]))
' "$STATS"
echo "  log rotations: $(curl -sf "http://$CTL/metrics" | sed -n 's/^qerrors_rotations_total \([0-9]*\).*/\1/p')"
