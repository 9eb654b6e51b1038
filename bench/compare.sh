#!/usr/bin/env bash
# qerrorsd side by side with the full-processing reference (`refsink enrich`, built from
# ../shared/ref-bench) and rsyslog (when installed), alternating runs in one sitting, same load
# generator: ~875-byte error events, full speed over 4 connections, then 1,000 events/s over one
# connection. Prints per system the medians (and spread) of: events/s, CPU-s per million events,
# peak RSS, CPU at 1k/s, idle RSS, p99 send -> file latency at 1k/s; then qerrorsd's ratios to
# each other system. See bench/README.md.
#
# qerrorsd runs with its defaults apart from paths: --socket/--log in the temp dir, the control
# plane on a free loopback port (--control 127.0.0.1:0, so it is on as by default without
# colliding with another daemon), rotation off (QERRORS_SINK_ROTATE_BYTES=0, as the others do
# not rotate). Latency is measured the same way for all three: loadgen --tail follows the output
# file and matches its event lines, in order, to the events sent (no acks: the others have none).
#
# Env knobs: ROUNDS (3), EVENTS (1000000, full speed), CONNECTIONS (4, full speed), RATE (1000),
# DURATION (20, seconds at RATE), IDLE_WAIT (10, seconds before idle RSS is read), STALL_SECS
# (1.5, output still for this long = drained), SYSTEMS ("qerrorsd refsink rsyslog"; rsyslog is
# skipped when rsyslogd is missing), REF_BENCH (../shared/ref-bench), REFSINK_TARGET (where
# refsink is built; default $BENCH_TMP/qerrors-refsink-target, outside the repo), DAEMON (another
# qerrorsd binary to measure), BUILD (1), BENCH_TMP, KEEP (0; 1 keeps the temp dir and the
# per-run results in it).
set -euo pipefail

BENCH_NAME=compare.sh
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"

ROUNDS="${ROUNDS:-3}"
EVENTS="${EVENTS:-1000000}"
CONNECTIONS="${CONNECTIONS:-4}"
RATE="${RATE:-1000}"
DURATION="${DURATION:-20}"
IDLE_WAIT="${IDLE_WAIT:-10}"
STALL_SECS="${STALL_SECS:-1.5}"
SYSTEMS="${SYSTEMS:-qerrorsd refsink rsyslog}"
REF_BENCH="${REF_BENCH:-$(cd "$ROOT/.." && pwd)/shared/ref-bench}"
TMP_PARENT="${BENCH_TMP:-${TMPDIR:-/tmp}}"
REFSINK_TARGET="${REFSINK_TARGET:-$TMP_PARENT/qerrors-refsink-target}"

bench_traps
bench_binaries
DAEMON_BIN="${DAEMON:-$DAEMON_BIN}"

[[ -d $REF_BENCH/refsink ]] || die "no reference at $REF_BENCH/refsink (set REF_BENCH)"
if [[ $BUILD == 1 ]]; then
	log "building refsink into $REFSINK_TARGET (outside the repo)"
	cargo build --release --quiet --manifest-path "$REF_BENCH/refsink/Cargo.toml" \
		--target-dir "$REFSINK_TARGET"
fi
REFSINK_BIN="$REFSINK_TARGET/release/refsink"
[[ -x $REFSINK_BIN ]] || die "$REFSINK_BIN not found (BUILD=1 builds it)"

systems=()
for s in $SYSTEMS; do
	if [[ $s == rsyslog ]] && ! command -v rsyslogd >/dev/null; then
		log "rsyslogd not installed: rsyslog skipped (apt-get install rsyslog)"
		continue
	fi
	systems+=("$s")
done

DIR="$(mktemp -d "$TMP_PARENT/qerrors-cmp.XXXXXX")"
RESULTS="$DIR/results.tsv"
: >"$RESULTS"
CLK_TCK="$(getconf CLK_TCK)"
STALL_US="$(calc %.0f "$STALL_SECS * 1e6")"

# Starts system $1 on socket $2 writing $3; sets DPID and waits for the socket.
start_sink() {
	local sys=$1 sock=$2 out=$3
	case $sys in
	qerrorsd)
		QERRORS_SINK_ROTATE_BYTES=0 "$DAEMON_BIN" --socket "$sock" --log "$out" \
			--control 127.0.0.1:0 >"$DIR/$sys.out" 2>&1 &
		;;
	refsink) "$REFSINK_BIN" enrich "$sock" "$out" >"$DIR/$sys.out" 2>&1 & ;;
	rsyslog) "$REF_BENCH/rsyslog/run.sh" "$sock" "$out" >"$DIR/$sys.out" 2>&1 & ;;
	*) die "unknown system $sys" ;;
	esac
	DPID=$!
	for _ in $(seq 100); do
		[[ -S $sock ]] && return 0
		alive "$DPID" || break
		nap 0.1
	done
	tail -n 20 "$DIR/$sys.out" >&2 || true
	die "$sys did not create $sock within 10 s"
}

stop_sink() {
	kill -TERM "$DPID" 2>/dev/null || true
	for _ in $(seq 300); do alive "$DPID" || break; nap 0.1; done
	alive "$DPID" && kill -KILL "$DPID" 2>/dev/null
	wait "$DPID" 2>/dev/null || true
	DPID=""
}

fsize() { stat -c %s "$1" 2>/dev/null || echo 0; }

# Full speed: EVENTS over CONNECTIONS; waits until the output stops growing.
# Appends "full SYS events_per_s cpu_s_per_M peak_rss_mib lost" to RESULTS.
run_full() {
	local sys=$1 run="$DIR/r$ROUND-$1-full"
	mkdir -p "$run"
	start_sink "$sys" "$run/s.sock" "$run/out.log"
	local cpu0 size last_size last_change now lines start_ms end_us cpu1 hwm
	cpu0=$(cpu_ticks "$DPID")
	"$LOADGEN_BIN" --socket "$run/s.sock" --connections "$CONNECTIONS" --events "$EVENTS" \
		--json >"$run/loadgen.json" 2>"$run/loadgen.err" &
	LGPID=$!
	last_size=-1
	last_change=$(now_us)
	while :; do
		size=$(fsize "$run/out.log")
		now=$(now_us)
		if [[ $size != "$last_size" ]]; then
			last_size=$size
			last_change=$now
		elif ! alive "$LGPID" && ((now - last_change > STALL_US)); then
			break
		fi
		nap 0.1
	done
	wait "$LGPID" || true
	LGPID=""
	alive "$DPID" || die "$sys exited during the run (see $DIR/$sys.out)"
	cpu1=$(cpu_ticks "$DPID")
	hwm=$(vm_hwm_kib "$DPID")
	stop_sink
	lines=$(LC_ALL=C grep -c -F request_id "$run/out.log" || true)
	start_ms=$(jnum start_unix_ms "$run/loadgen.json")
	end_us=$last_change
	local sent eps cpm
	sent=$(jnum events_sent "$run/loadgen.json")
	eps=$(calc %.0f "$lines / (($end_us / 1e6) - ($start_ms / 1e3))")
	cpm=$(calc %.2f "($cpu1 - $cpu0) / $CLK_TCK / ($sent / 1e6)")
	printf 'full\t%s\t%s\t%s\t%s\t%s\n' "$sys" "$eps" "$cpm" "$(calc %.1f "$hwm / 1024")" \
		"$((sent - lines))" >>"$RESULTS"
	log "$sys full speed: $eps events/s, $cpm CPU-s per M, peak $(calc %.1f "$hwm / 1024") MiB, $((sent - lines)) lost"
	[[ $KEEP == 1 ]] || rm -rf -- "$run"
}

# RATE events/s for DURATION s over one connection, after IDLE_WAIT s with no client.
# Appends "rate SYS cpu_pct idle_rss_mib p50_us p99_us missing" to RESULTS.
run_rate() {
	local sys=$1 run="$DIR/r$ROUND-$1-rate"
	mkdir -p "$run"
	start_sink "$sys" "$run/s.sock" "$run/out.log"
	nap "$IDLE_WAIT"
	local idle cpu0 t0 cpu1 t1
	idle=$(rss_kib "$DPID")
	cpu0=$(cpu_ticks "$DPID")
	t0=$(now_us)
	"$LOADGEN_BIN" --socket "$run/s.sock" --connections 1 --rate "$RATE" --duration "$DURATION" \
		--tail "$run/out.log" --ack-timeout 10 --json >"$run/loadgen.json" 2>"$run/loadgen.err" &
	LGPID=$!
	wait "$LGPID" || true
	LGPID=""
	t1=$(now_us)
	alive "$DPID" || die "$sys exited during the run (see $DIR/$sys.out)"
	cpu1=$(cpu_ticks "$DPID")
	stop_sink
	local pct p50 p99 missing
	pct=$(calc %.2f "100 * ($cpu1 - $cpu0) / $CLK_TCK / (($t1 - $t0) / 1e6)")
	p50=$(jnum file_p50_us "$run/loadgen.json")
	p99=$(jnum file_p99_us "$run/loadgen.json")
	missing=$(jnum file_missing "$run/loadgen.json")
	printf 'rate\t%s\t%s\t%s\t%s\t%s\t%s\n' "$sys" "$pct" "$(calc %.1f "$idle / 1024")" \
		"${p50:-nan}" "${p99:-nan}" "${missing:-nan}" >>"$RESULTS"
	log "$sys at $RATE/s: $pct % of a core, idle RSS $(calc %.1f "$idle / 1024") MiB, p50 ${p50} us, p99 ${p99} us, ${missing} missing"
	[[ $KEEP == 1 ]] || rm -rf -- "$run"
}

log "systems: ${systems[*]}; $ROUNDS rounds; $(nproc) CPUs shared with loadgen (and whatever else runs)"
for ROUND in $(seq "$ROUNDS"); do
	log "round $ROUND of $ROUNDS"
	for s in "${systems[@]}"; do run_full "$s"; done
	for s in "${systems[@]}"; do run_rate "$s"; done
done

# "median (min–max)" of column $3 for rows of kind $1 and system $2
spread() {
	awk -F'\t' -v k="$1" -v s="$2" -v c="$3" '$1 == k && $2 == s { print $c }' "$RESULTS" |
		sort -g | awk '{ v[NR] = $1 } END {
			if (NR == 0) { print "-"; exit }
			m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			printf "%g (%g–%g)", m, v[1], v[NR] }'
}
median() { spread "$@" | awk '{ print $1 }'; }

echo
echo "bench/compare.sh, $(date -u +%Y-%m-%dT%H:%MZ), $ROUNDS alternating rounds, $(nproc) CPUs shared with loadgen"
echo "full speed: $EVENTS events over $CONNECTIONS connections; low rate: $RATE events/s over 1 connection for ${DURATION}s"
echo "median (min–max)"
printf '%-9s | %-24s | %-22s | %-20s | %-20s | %-20s | %-24s\n' system "events/s" "CPU-s per M events" \
	"peak RSS MiB" "CPU % at $RATE/s" "idle RSS MiB" "p99 file latency µs"
for s in "${systems[@]}"; do
	printf '%-9s | %-24s | %-22s | %-20s | %-20s | %-20s | %-24s\n' "$s" "$(spread full "$s" 3)" \
		"$(spread full "$s" 4)" "$(spread full "$s" 5)" "$(spread rate "$s" 3)" \
		"$(spread rate "$s" 4)" "$(spread rate "$s" 6)"
done
echo
echo "qerrorsd / other (ratio of medians; events/s: higher is better, the rest: lower is better)"
for s in "${systems[@]}"; do
	[[ $s == qerrorsd ]] && continue
	ratio() { calc %.2f "$(median "$1" qerrorsd "$2") / $(median "$1" "$s" "$2")"; }
	printf '  vs %-8s events/s %s×   CPU-s/M %s×   peak RSS %s×   CPU at %s/s %s×   idle RSS %s×   p99 %s×\n' \
		"$s" "$(ratio full 3)" "$(ratio full 4)" "$(ratio full 5)" "$RATE" "$(ratio rate 3)" \
		"$(ratio rate 4)" "$(ratio rate 6)"
done
echo
echo "lost at full speed (sent − event lines): $(awk -F'\t' '$1 == "full" { printf "%s %s; ", $2, $6 }' "$RESULTS")"
[[ $KEEP == 1 ]] && log "per-run results: $RESULTS"
exit 0
