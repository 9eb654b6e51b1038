#!/usr/bin/env bash
# Ingest-to-file latency of qerrorsd at a low, steady rate: one connection, 1,000 events/s,
# every event with "ack":true. The daemon acks only after the event reached the log file, so
# send -> ack latency is an upper bound of ingest-to-file latency. See bench/README.md.
#
# Env knobs: RATE (1000), DURATION (20), CONNECTIONS (1), KINDS (50), SEED (1), LOADGEN_ARGS,
# DAEMON_ARGS, BUILD (1), BENCH_TMP, TERM_TIMEOUT_SECS (30), KEEP (0), RECORD (0; 1 = append a
# JSON line to bench/results.ndjson).
set -euo pipefail

BENCH_NAME=latency.sh
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"

RATE="${RATE:-1000}"
DURATION="${DURATION:-20}"
CONNECTIONS="${CONNECTIONS:-1}"
KINDS="${KINDS:-50}"
SEED="${SEED:-1}"
TERM_TIMEOUT_SECS="${TERM_TIMEOUT_SECS:-30}"
RECORD="${RECORD:-0}"
read -r -a EXTRA_LOADGEN <<<"${LOADGEN_ARGS:-}"
read -r -a EXTRA_DAEMON <<<"${DAEMON_ARGS:-}"

bench_traps
bench_binaries

DIR="$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/qerrors-lat.XXXXXX")"
SOCK="$DIR/q.sock"
LOG="$DIR/errors.log"

"$DAEMON_BIN" --socket "$SOCK" --log "$LOG" "${EXTRA_DAEMON[@]}" >"$DIR/daemon.out" 2>&1 &
DPID=$!
log "daemon pid $DPID, dir $DIR"

for _ in $(seq 100); do
	[[ -S $SOCK ]] && break
	alive "$DPID" || break
	nap 0.1
done
if ! [[ -S $SOCK ]] || ! alive "$DPID"; then
	tail -n 20 "$DIR/daemon.out" >&2 || true
	die "daemon did not create $SOCK within 10 s"
fi

CLK_TCK="$(getconf CLK_TCK)"
CPU0="$(cpu_ticks "$DPID")"
T0="$(now_us)"

log "loadgen: $RATE events/s for ${DURATION}s over $CONNECTIONS connection(s), with acks"
LG_RC=0
# in the background + wait, so that a signal to this script is handled at once
"$LOADGEN_BIN" --socket "$SOCK" --connections "$CONNECTIONS" --rate "$RATE" --duration "$DURATION" \
	--ack --kinds "$KINDS" --seed "$SEED" --json "${EXTRA_LOADGEN[@]}" >"$DIR/loadgen.json" &
LGPID=$!
wait "$LGPID" || LG_RC=$?
LGPID=""

T1="$(now_us)"
alive "$DPID" || die "daemon exited during the run (see $DIR/daemon.out; KEEP=1 keeps it)"
CPU1="$(cpu_ticks "$DPID")"
HWM_KIB="$(vm_hwm_kib "$DPID")"
[[ -s "$DIR/loadgen.json" ]] || die "loadgen printed no summary (exit $LG_RC)"

kill -TERM "$DPID"
for _ in $(seq $((TERM_TIMEOUT_SECS * 10))); do alive "$DPID" || break; nap 0.1; done
if alive "$DPID"; then
	log "daemon still running ${TERM_TIMEOUT_SECS}s after SIGTERM: SIGKILL"
	kill -KILL "$DPID" 2>/dev/null || true
fi
EXIT_CODE=0
wait "$DPID" || EXIT_CODE=$?
DPID=""

J="$DIR/loadgen.json"
SENT="$(jnum events_sent "$J")"
ACKS="$(jnum acks "$J")"
MISSING="$(jnum acks_missing "$J")"
NACKS="$(sed -n 's/.*"nacks":\({[^}]*}\).*/\1/p' "$J")"
P50="$(jnum ack_p50_us "$J")"
P90="$(jnum ack_p90_us "$J")"
P99="$(jnum ack_p99_us "$J")"
P999="$(jnum ack_p999_us "$J")"
PMAX="$(jnum ack_max_us "$J")"
PMEAN="$(jnum ack_mean_us "$J")"
ACHIEVED="$(jnum events_per_s "$J")"
EV_LINES="$(LC_ALL=C grep -c -F '"kind":"event"' "$LOG" 2>/dev/null || true)"
EV_LINES="${EV_LINES:-0}"
WALL_S="$(calc %.3f "($T1 - $T0) / 1e6")"
CPU_S="$(calc %.3f "$((CPU1 - CPU0)) / $CLK_TCK")"
CPU_PCT="$(calc %.2f "100 * $CPU_S / $WALL_S")"
HWM_MIB="$(calc %.1f "$HWM_KIB / 1024")"

cat <<EOF

qerrorsd ack latency at $RATE events/s, $CONNECTIONS connection(s), ${DURATION}s ($(nproc) CPUs shared with loadgen)
  events sent              $SENT  (achieved $ACHIEVED ev/s, loadgen exit $LG_RC)
  acks / missing / nacks   $ACKS / $MISSING / ${NACKS:-{\}}
  event lines written      $EV_LINES
  ack latency (µs)         p50 $P50   p90 $P90   p99 $P99   p99.9 $P999   max $PMAX   (mean $PMEAN)
  daemon CPU               $CPU_S s over $WALL_S s = $CPU_PCT % of one core
  peak RSS (VmHWM)         $HWM_MIB MiB
  daemon exit code         $EXIT_CODE  (after SIGTERM)
EOF

if [[ $RECORD == 1 ]]; then
	LINE=$(printf '{"bench":"latency","ts":"%s","host":"%s","cpus":%s,"rate":%s,"duration_s":%s,"connections":%s,' \
		"$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(hostname)" "$(nproc)" "$RATE" "$DURATION" "$CONNECTIONS")
	LINE+=$(printf '"events_sent":%s,"acks":%s,"acks_missing":%s,"event_lines":%s,' \
		"$SENT" "${ACKS:-0}" "${MISSING:-0}" "$EV_LINES")
	LINE+=$(printf '"p50_us":%s,"p90_us":%s,"p99_us":%s,"p999_us":%s,"max_us":%s,' \
		"${P50:-null}" "${P90:-null}" "${P99:-null}" "${P999:-null}" "${PMAX:-null}")
	LINE+=$(printf '"cpu_s":%s,"cpu_pct":%s,"peak_rss_mib":%s,"exit_code":%s,' \
		"$CPU_S" "$CPU_PCT" "$HWM_MIB" "$EXIT_CODE")
	LINE+="\"loadgen\":$(head -n 1 "$J")}"
	printf '%s\n' "$LINE" >>"$ROOT/bench/results.ndjson"
	log "appended to bench/results.ndjson"
fi
