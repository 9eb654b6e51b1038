#!/usr/bin/env bash
# End-to-end throughput benchmark for qerrorsd: loadgen -> Unix socket -> daemon -> log file.
# See bench/README.md for what is measured and how to read it.
#
# Env knobs: EVENTS (2000000), CONNECTIONS (4), KINDS (50), SEED (1), LOADGEN_ARGS (extra loadgen
# options, e.g. "--bad-every 1000"), DAEMON_ARGS (extra qerrorsd options, default none),
# BUILD (1; 0 = skip cargo build), BENCH_TMP (parent of the temp dir, default $TMPDIR or /tmp),
# STALL_SECS (3), MAX_DRAIN_SECS (600), TERM_TIMEOUT_SECS (30), KEEP (0; 1 = keep the temp dir),
# RECORD (0; 1 = append a JSON line to bench/results.ndjson).
set -euo pipefail
shopt -s nullglob

BENCH_NAME=run.sh
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"

EVENTS="${EVENTS:-2000000}"
CONNECTIONS="${CONNECTIONS:-4}"
KINDS="${KINDS:-50}"
SEED="${SEED:-1}"
STALL_SECS="${STALL_SECS:-3}"
MAX_DRAIN_SECS="${MAX_DRAIN_SECS:-600}"
TERM_TIMEOUT_SECS="${TERM_TIMEOUT_SECS:-30}"
RECORD="${RECORD:-0}"
read -r -a EXTRA_LOADGEN <<<"${LOADGEN_ARGS:-}"
read -r -a EXTRA_DAEMON <<<"${DAEMON_ARGS:-}"

bench_traps
bench_binaries

DIR="$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/qerrors-bench.XXXXXX")"
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

# With the embedded defaults the daemon rotates errors.log at 256 MiB and keeps 5 old files, so
# a 2 GB run would delete lines before they are counted. Every log file seen (live or rotated)
# is therefore hard-linked under $ALL by inode; rotation renames and deletes cannot lose it.
ALL="$DIR/all-logs"
mkdir "$ALL"
LIVE="none"
link_logs() {
	local ino size name
	LIVE="none"
	while read -r ino size name; do
		[[ -e $ALL/$ino ]] || ln -- "$name" "$ALL/$ino" 2>/dev/null || true
		if [[ $name == "$LOG" ]]; then LIVE="$ino:$size"; fi
	done < <(stat -c '%i %s %n' -- "$LOG" "$LOG".* 2>/dev/null)
}
log_files() { LOG_FILES=("$ALL"/*); }
count_events() {
	local n total=0
	log_files
	((${#LOG_FILES[@]})) || { echo 0; return; }
	while read -r n; do total=$((total + n)); done < <(LC_ALL=C grep -c -h -F '"kind":"event"' -- "${LOG_FILES[@]}")
	echo "$total"
}

# Watch the log grow: every 100 ms link new files and record "<epoch µs> <inode:size>" when the
# live file changed (one stat(1) per poll; counting lines that often would cost a core).
GROWTH="$DIR/growth"
echo "$(now_us) none" >"$GROWTH"
(
	last="none"
	while :; do
		link_logs
		if [[ $LIVE != "$last" ]]; then
			last=$LIVE
			t=$EPOCHREALTIME
			echo "${t/./} $LIVE" >"$GROWTH"
		fi
		nap 0.1
	done
) &
POLLPID=$!

log "loadgen: $EVENTS events over $CONNECTIONS connections"
LG_RC=0
# in the background + wait, so that a signal to this script is handled at once
"$LOADGEN_BIN" --socket "$SOCK" --connections "$CONNECTIONS" --events "$EVENTS" \
	--kinds "$KINDS" --seed "$SEED" --json "${EXTRA_LOADGEN[@]}" >"$DIR/loadgen.json" &
LGPID=$!
wait "$LGPID" || LG_RC=$?
LGPID=""
[[ -s "$DIR/loadgen.json" ]] || die "loadgen printed no summary (exit $LG_RC)"
SENT="$(jnum events_sent "$DIR/loadgen.json")"
BYTES_IN="$(jnum bytes_sent "$DIR/loadgen.json")"
START_MS="$(jnum start_unix_ms "$DIR/loadgen.json")"
START_US=$((${START_MS%.*} * 1000))

# Drain: until the event line count reaches what was sent, or the log stopped growing.
log "waiting for the log to reach $SENT event lines (or stop growing for ${STALL_SECS}s)"
WAIT_START="$(now_us)"
CHECKED_KEY=""
COUNT=0
DRAIN_REASON=""
while :; do
	read -r LAST_US LAST_KEY <"$GROWTH" || { nap 0.05; continue; }
	[[ -n ${LAST_KEY:-} ]] || { nap 0.05; continue; }
	NOW="$(now_us)"
	if ! alive "$DPID"; then DRAIN_REASON="daemon exited"; break; fi
	if ((NOW - LAST_US >= 500000)) && [[ $LAST_KEY != "$CHECKED_KEY" ]]; then
		COUNT="$(count_events)"
		CHECKED_KEY=$LAST_KEY
		if ((COUNT >= SENT)); then DRAIN_REASON="all events written"; break; fi
	fi
	if ((NOW - LAST_US >= STALL_SECS * 1000000)); then DRAIN_REASON="log stopped growing"; break; fi
	if ((NOW - WAIT_START >= MAX_DRAIN_SECS * 1000000)); then DRAIN_REASON="MAX_DRAIN_SECS reached"; break; fi
	nap 0.1
done
END_US=$LAST_US
kill "$POLLPID" 2>/dev/null || true
wait "$POLLPID" 2>/dev/null || true
POLLPID=""

CPU_S="n/a"
CPU_RUN_S="n/a"
HWM_KIB="n/a"
if alive "$DPID"; then
	CPU1="$(cpu_ticks "$DPID")"
	HWM_KIB="$(vm_hwm_kib "$DPID")"
	CPU_S="$(awk -v t="$CPU1" -v hz="$CLK_TCK" 'BEGIN {printf "%.2f", t / hz}')"
	CPU_RUN_S="$(awk -v t="$((CPU1 - CPU0))" -v hz="$CLK_TCK" 'BEGIN {printf "%.2f", t / hz}')"
fi

# Stop the daemon and wait for it.
EXIT_CODE="n/a"
if alive "$DPID"; then
	kill -TERM "$DPID"
	for _ in $(seq $((TERM_TIMEOUT_SECS * 10))); do alive "$DPID" || break; nap 0.1; done
	if alive "$DPID"; then
		log "daemon still running ${TERM_TIMEOUT_SECS}s after SIGTERM: SIGKILL"
		kill -KILL "$DPID" 2>/dev/null || true
	fi
fi
EXIT_CODE=0
wait "$DPID" || EXIT_CODE=$?
DPID=""

# Final census of all log files (one pass).
link_logs
log_files
((${#LOG_FILES[@]})) || LOG_FILES=(/dev/null)
read -r EV_LINES SUP_LINES SUP_COUNT DROP_LINES DROP_COUNT DROP_INVALID ADVICE_LINES DAEMON_LINES OTHER_LINES < <(
	LC_ALL=C awk '
		function cnt(s) { return match(s, /"count":[0-9]+/) ? substr(s, RSTART + 8, RLENGTH - 8) + 0 : 0 }
		/"kind":"event"/      { ev++; next }
		/"kind":"suppressed"/ { sl++; sc += cnt($0); next }
		/"kind":"dropped"/    { dl++; c = cnt($0); dc += c; if ($0 ~ /"reason":"invalid"/) di += c; next }
		/"kind":"advice"/     { ad++; next }
		/"kind":"daemon"/     { dm++; next }
		                      { ot++ }
		END { print ev + 0, sl + 0, sc + 0, dl + 0, dc + 0, di + 0, ad + 0, dm + 0, ot + 0 }
	' "${LOG_FILES[@]}" 2>/dev/null || echo 0 0 0 0 0 0 0 0 0
)
LOG_BYTES=0
NFILES=0
log_files
for f in "${LOG_FILES[@]}"; do
	LOG_BYTES=$((LOG_BYTES + $(stat -c %s -- "$f")))
	NFILES=$((NFILES + 1))
done
LOST=$((SENT - EV_LINES))
E2E_US=$((END_US - START_US))
((E2E_US > 0)) || E2E_US=1

calc() { awk "BEGIN { printf \"$1\", $2 }"; }
E2E_S="$(calc %.3f "$E2E_US / 1e6")"
EPS="$(calc %.0f "$EV_LINES / ($E2E_US / 1e6)")"
MBS_IN="$(calc %.1f "$BYTES_IN / $E2E_US")"
MBS_OUT="$(calc %.1f "$LOG_BYTES / $E2E_US")"
LG_EPS="$(jnum events_per_s "$DIR/loadgen.json")"
if [[ $CPU_RUN_S != n/a ]] && ((SENT > 0)); then
	CPU_PER_M="$(calc %.2f "$CPU_RUN_S / ($SENT / 1e6)")"
	HWM_MIB="$(calc %.1f "$HWM_KIB / 1024")"
else
	CPU_PER_M="n/a"
	HWM_MIB="n/a"
fi

cat <<EOF

qerrorsd end-to-end throughput ($CONNECTIONS connections, $KINDS kinds, $(nproc) CPUs shared with loadgen)
  events sent                 $SENT  (loadgen exit $LG_RC, write phase $LG_EPS ev/s)
  event lines written         $EV_LINES
  lost (sent - written)       $LOST
  suppressed records / count  $SUP_LINES / $SUP_COUNT
  dropped records / count     $DROP_LINES / $DROP_COUNT  (of which invalid lines: $DROP_INVALID)
  advice / daemon / other     $ADVICE_LINES / $DAEMON_LINES / $OTHER_LINES  (lines)
  log files (incl. rotated)   $NFILES, $(calc %.1f "$LOG_BYTES / 1e6") MB
  drain ended because         $DRAIN_REASON
  end-to-end time             $E2E_S s  (loadgen start -> last log growth, ±0.1 s)
  end-to-end events/s         $EPS  (event lines written / end-to-end time)
  MB/s in / out               $MBS_IN / $MBS_OUT  (socket bytes / log bytes, MB = 10^6)
  daemon CPU during run       $CPU_RUN_S s  (total incl. startup: $CPU_S s)
  CPU-s per million events    $CPU_PER_M  (per event sent)
  peak RSS (VmHWM)            $HWM_MIB MiB
  daemon exit code            $EXIT_CODE  (after SIGTERM)
EOF

if [[ $RECORD == 1 ]]; then
	qs() { [[ $1 =~ ^-?[0-9.]+$ ]] && printf '%s' "$1" || printf '"%s"' "$1"; }
	LINE=$(printf '{"bench":"throughput","ts":"%s","host":"%s","cpus":%s,"events":%s,"connections":%s,"kinds":%s,' \
		"$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(hostname)" "$(nproc)" "$EVENTS" "$CONNECTIONS" "$KINDS")
	LINE+=$(printf '"events_sent":%s,"event_lines":%s,"lost":%s,"suppressed":%s,"dropped":%s,"dropped_invalid":%s,' \
		"$SENT" "$EV_LINES" "$LOST" "$SUP_COUNT" "$DROP_COUNT" "$DROP_INVALID")
	LINE+=$(printf '"e2e_s":%s,"events_per_s":%s,"mb_in_per_s":%s,"mb_out_per_s":%s,' \
		"$E2E_S" "$EPS" "$MBS_IN" "$MBS_OUT")
	LINE+=$(printf '"cpu_s":%s,"cpu_s_per_million":%s,"peak_rss_mib":%s,"exit_code":%s,"drain":"%s",' \
		"$(qs "$CPU_RUN_S")" "$(qs "$CPU_PER_M")" "$(qs "$HWM_MIB")" "$(qs "$EXIT_CODE")" "$DRAIN_REASON")
	LINE+="\"loadgen\":$(head -n 1 "$DIR/loadgen.json")}"
	printf '%s\n' "$LINE" >>"$ROOT/bench/results.ndjson"
	log "appended to bench/results.ndjson"
fi
