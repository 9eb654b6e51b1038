#!/usr/bin/env bash
# Idle cost of qerrorsd: a daemon with the default configuration (--socket/--log in a temp dir)
# and no client. Prints VmRSS after SETTLE_SECS, then per thread the context switches per second
# (voluntary + involuntary, /proc/PID/task/*/status) and the CPU time (schedstat) over the next
# WINDOW_SECS. Threads that start or exit during the window (the blocking pool retiring) are
# left out. See docs/performance.md, "Idle cost".
#
# Env knobs: DAEMON (a qerrorsd binary to measure instead of the release build, e.g. an older
# one), SETTLE_SECS (10), WINDOW_SECS (10), DAEMON_ARGS (extra qerrorsd options, e.g.
# "--control 127.0.0.1:0" when port 9464 is taken), BUILD (1; 0 = skip cargo build), KEEP (0).
# QERRORS_* variables in the environment reach the daemon (e.g. QERRORS_LIMIT_RULES).
set -euo pipefail
shopt -s nullglob

BENCH_NAME=idle.sh
# shellcheck source=bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"

SETTLE_SECS="${SETTLE_SECS:-10}"
WINDOW_SECS="${WINDOW_SECS:-10}"
read -r -a EXTRA_DAEMON <<<"${DAEMON_ARGS:-}"

bench_traps
if [[ -n ${DAEMON:-} ]]; then
	DAEMON_BIN="$DAEMON"
	[[ -x $DAEMON_BIN ]] || die "$DAEMON_BIN is not executable"
else
	if [[ $BUILD == 1 ]]; then
		log "building (cargo build --release --bin qerrorsd)"
		cargo build --release --bin qerrorsd
	fi
	DAEMON_BIN="$TARGET_DIR/release/qerrorsd"
	[[ -x $DAEMON_BIN ]] || die "$DAEMON_BIN not found (build first or set CARGO_TARGET_DIR)"
fi

DIR="$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/qerrors-idle.XXXXXX")"
"$DAEMON_BIN" --socket "$DIR/q.sock" --log "$DIR/errors.log" "${EXTRA_DAEMON[@]}" \
	2>"$DIR/daemon.stderr" &
DPID=$!

# One line per live thread: tid name switches cpu_ns
threads() {
	local t name sw ns
	for t in /proc/"$DPID"/task/*; do
		name=$(<"$t/comm") 2>/dev/null || continue
		sw=$(awk '/^(non)?voluntary_ctxt_switches:/ {s += $2} END {print s}' "$t/status" 2>/dev/null) || continue
		ns=$(awk '{print $1}' "$t/schedstat" 2>/dev/null) || continue
		[[ -n $sw && -n $ns ]] && printf '%s %s %s %s\n' "${t##*/}" "${name// /_}" "$sw" "$ns"
	done
}

nap "$SETTLE_SECS"
alive "$DPID" || die "the daemon exited; stderr: $(<"$DIR/daemon.stderr")"
rss=$(rss_kib "$DPID")
threads >"$DIR/before"
t0=$(now_us)
nap "$WINDOW_SECS"
threads >"$DIR/after"
t1=$(now_us)

printf 'VmRSS after %ss idle: %s MiB\n' "$SETTLE_SECS" "$(calc '%.1f' "$rss / 1024")"
printf '%-8s %-18s %12s %14s\n' tid thread "switches/s" "CPU ms/min"
LC_ALL=C join <(LC_ALL=C sort "$DIR/before") <(LC_ALL=C sort "$DIR/after") | awk -v us=$((t1 - t0)) '
	$2 == $5 {
		s = us / 1e6
		printf "%-8s %-18s %12.1f %14.2f\n", $1, $2, ($6 - $3) / s, ($7 - $4) / 1e6 / s * 60
		sw += ($6 - $3) / s; cpu += ($7 - $4) / 1e6 / s * 60
	}
	END { printf "%-27s %12.1f %14.2f\n", "total", sw, cpu }'
