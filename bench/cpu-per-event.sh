#!/usr/bin/env bash
# CPU-seconds per million events of one qerrorsd build, for old-vs-new comparisons on a busy host
# (CPU time moves less with the host's load than throughput does). Same load as bench/run.sh:
# loadgen, 4 connections, 50 kinds, seed 1, ~875-byte native events; rotation off.
#
# Usage: bench/cpu-per-event.sh DAEMON_BIN LOADGEN_BIN [EVENTS (400000)]
# Alternate builds yourself, e.g.
#   for i in 1 2 3; do for t in old new; do bench/cpu-per-event.sh \
#     /tmp/$t/release/qerrorsd /tmp/$t/release/examples/loadgen; done; done
# Needs perf (apt-get install linux-perf) for task-clock.
set -euo pipefail
BIN=$1
LG=$2
N=${3:-400000}
D=$(mktemp -d "${TMPDIR:-/tmp}/qerrors-cpu.XXXXXX")
trap 'rm -rf "$D"' EXIT
QERRORS_SINK_ROTATE_BYTES=0 perf stat -e task-clock -x, -o "$D/perf.txt" -- \
	"$BIN" --socket "$D/q.sock" --log "$D/errors.log" --control "" >"$D/daemon.out" 2>&1 &
PERF=$!
for _ in $(seq 100); do [ -S "$D/q.sock" ] && break; sleep 0.1; done
[ -S "$D/q.sock" ] || { cat "$D/daemon.out"; exit 1; }
"$LG" --socket "$D/q.sock" --connections 4 --events "$N" --kinds 50 --seed 1 --json >"$D/lg.json" 2>/dev/null
written=0
for _ in $(seq 600); do
	written=$(grep -c '"kind":"event"' "$D/errors.log" || true)
	[ "$written" -ge "$N" ] && break
	sleep 0.2
done
kill -TERM "$(pgrep -P "$PERF")"
wait "$PERF" || true
ms=$(grep task-clock "$D/perf.txt" | cut -d, -f1)
echo "$BIN events=$written cpu_ms=${ms%.*} cpu_s_per_million=$(echo "scale=3; ${ms%.*} * 1000 / $N" | bc)"
