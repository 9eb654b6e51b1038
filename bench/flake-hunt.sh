#!/usr/bin/env bash
# Runs the integration suite N times and counts every test that failed, to find flaky tests
# (races between a counter and the log, timing assumptions) before CI does.
#
#   bench/flake-hunt.sh [N]        # N runs (default 20)
#
# Env knobs: LOAD (1; 0 = never) puts two busy loops on the CPU during every second run, so the
# daemon's threads and the test's own polling meet unlucky schedules; FILTER (a test-name filter
# passed to the test binary, default all); REQUIRE_ALL (1: tests that need redis-server, node,
# python or chromium fail instead of skipping, like CI); KEEP_LOGS (0; 1 = keep every run's
# output in the temp dir, else only failing runs' output is kept).
#
# Prints one line per run, then each failing test with its count; exits 1 if any run failed.
# Not part of CI (it takes N times the suite's ~2-3 minutes).
set -euo pipefail

N="${1:-20}"
LOAD="${LOAD:-1}"
FILTER="${FILTER:-}"
REQUIRE_ALL="${REQUIRE_ALL:-1}"
KEEP_LOGS="${KEEP_LOGS:-0}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$(mktemp -d "${TMPDIR:-/tmp}/qerrors-flake-hunt.XXXXXX")"
LOAD_PIDS=()

stop_load() {
	for p in "${LOAD_PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	LOAD_PIDS=()
}
trap stop_load EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[[ $N =~ ^[1-9][0-9]*$ ]] || {
	echo "flake-hunt: N must be a positive whole number, got '$N'" >&2
	exit 2
}

echo "flake-hunt: building the integration tests once" >&2
(cd "$ROOT" && cargo test --locked --test it --no-run) >&2

if [[ $REQUIRE_ALL == 1 ]]; then export QERRORS_REQUIRE_ALL=1; fi
failed_runs=0
for ((i = 1; i <= N; i++)); do
	loaded="no"
	if [[ $LOAD == 1 ]] && ((i % 2 == 0)); then
		loaded="yes"
		for _ in 1 2; do
			(while :; do :; done) &
			LOAD_PIDS+=("$!")
		done
	fi
	log="$OUT/run-$i.log"
	start=$SECONDS
	set +e
	# shellcheck disable=SC2086
	(cd "$ROOT" && cargo test --locked --test it -- $FILTER) >"$log" 2>&1
	rc=$?
	set -e
	stop_load
	# libtest prints "test NAME ... FAILED" for each failing test.
	fails=$(grep -E '^test .* \.\.\. FAILED$' "$log" | sed -E 's/^test (.*) \.\.\. FAILED$/\1/' || true)
	summary=$(grep -E '^test result:' "$log" | tail -n 1 || true)
	if [[ $rc != 0 ]]; then
		failed_runs=$((failed_runs + 1))
		[[ -n $fails ]] || fails="(run failed without a failing test: exit $rc, see $log)"
		printf '%s\n' "$fails" >>"$OUT/failures"
	elif [[ $KEEP_LOGS != 1 ]]; then
		rm -f "$log"
	fi
	printf 'run %d/%d  load=%s  %ds  exit=%d  %s\n' "$i" "$N" "$loaded" $((SECONDS - start)) "$rc" "$summary"
done

echo
if [[ $failed_runs == 0 ]]; then
	echo "flake-hunt: $N runs, 0 failed"
	rm -rf "$OUT"
	exit 0
fi
echo "flake-hunt: $N runs, $failed_runs failed; failing tests (count, name):"
sort "$OUT/failures" | uniq -c | sort -rn
echo "logs of the failing runs: $OUT"
exit 1
