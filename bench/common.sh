# Shared by bench/run.sh, latency.sh, soak.sh, idle.sh, compare.sh and lag.sh (sourced, not
# run): helpers, the cleanup every script needs (loadgen and poller killed, the daemon stopped
# with SIGTERM then SIGKILL, the temp dir removed unless KEEP=1) and the build/binaries step.
#
# Before sourcing, a script sets BENCH_NAME (for messages); it may set STOP_WAIT (seconds the
# cleanup waits for the daemon after SIGTERM, default 5). It then fills DIR, DPID, LGPID and
# POLLPID as it starts things, and calls bench_traps and bench_binaries.

log() { printf '%s: %s\n' "$BENCH_NAME" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}
alive() { kill -0 "$1" 2>/dev/null; }
now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }
# sleep without forking a process: wait on a file descriptor that never becomes readable
nap() { read -r -t "$1" -u "$NAPFD" _ || true; }
# numeric field of the flat one-line JSON summary printed by loadgen --json
jnum() { sed -n "s/.*\"$1\":\(-\{0,1\}[0-9][0-9.eE+-]*\).*/\1/p" "$2" | head -n 1; }
# utime+stime of a process, in clock ticks (fields 14 and 15; comm may contain spaces)
cpu_ticks() {
	local stat rest
	stat=$(<"/proc/$1/stat") || return 1
	rest=${stat##*) }
	# shellcheck disable=SC2086
	set -- $rest
	echo $((${12} + ${13}))
}
vm_hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BUILD="${BUILD:-1}"
KEEP="${KEEP:-0}"
STOP_WAIT="${STOP_WAIT:-5}"
DIR=""
DPID=""
LGPID=""
POLLPID=""
NAPFD=""

# Kills a helper process (loadgen, poller) if it is still running.
bench_kill() {
	if [[ -n $1 ]] && alive "$1"; then
		kill "$1" 2>/dev/null || true
		wait "$1" 2>/dev/null || true
	fi
}

bench_cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	bench_kill "$LGPID"
	bench_kill "$POLLPID"
	if [[ -n $DPID ]] && alive "$DPID"; then
		log "stopping daemon (pid $DPID)"
		kill -TERM "$DPID" 2>/dev/null || true
		for _ in $(seq $((STOP_WAIT * 10))); do alive "$DPID" || break; sleep 0.1; done
		if alive "$DPID"; then kill -KILL "$DPID" 2>/dev/null || true; fi
		wait "$DPID" 2>/dev/null || true
	fi
	if [[ -n $DIR && -d $DIR ]]; then
		if [[ $KEEP == 1 ]]; then log "kept $DIR"; else rm -rf -- "$DIR"; fi
	fi
	exit "$rc"
}

bench_traps() {
	trap bench_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	exec {NAPFD}<> <(:)
}

# Builds (unless BUILD=0) and sets DAEMON_BIN and LOADGEN_BIN.
bench_binaries() {
	if [[ $BUILD == 1 ]]; then
		log "building (cargo build --release --examples --bins)"
		(cd "$ROOT" && cargo build --release --examples --bins)
	fi
	DAEMON_BIN="$TARGET_DIR/release/qerrorsd"
	LOADGEN_BIN="$TARGET_DIR/release/examples/loadgen"
	[[ -x $DAEMON_BIN ]] || die "$DAEMON_BIN not found (build first or set CARGO_TARGET_DIR)"
	[[ -x $LOADGEN_BIN ]] || die "$LOADGEN_BIN not found (build first or set CARGO_TARGET_DIR)"
}
