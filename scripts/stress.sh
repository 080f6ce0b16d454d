#!/usr/bin/env bash
# Runs the bridge's suites (PythonRuntime) and the isolation suites N times in a row beside CPU
# hogs, and stops at the first failing run, keeping its log. A race that shows once in a dozen
# runs of the whole suite shows here within a few: the hogs take the cores away at random points.
#
#   bash scripts/stress.sh 50              # 50 runs of the bridge and isolation suites
#   bash scripts/stress.sh 20 --all        # 20 runs of the whole Swift test suite
#   HOGS=0 bash scripts/stress.sh 10       # without CPU hogs
#   FILTER=ExecutionControlTests bash scripts/stress.sh 30   # one suite
#
# Logs go to .build/stress/run-N.log; the summary line is "stress: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-10}
shift || true
filter=${FILTER:-'PythonRuntimeTests|IsolationTests|ProcessIsolationTests'}
if [ "${1:-}" = "--all" ]; then filter=""; fi
hogs=${HOGS:-$(nproc)}
logs=.build/stress
mkdir -p "$logs"

bash scripts/require-python.sh
swift build --build-tests >/dev/null

hog_pids=()
cleanup() { for pid in "${hog_pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
for _ in $(seq 1 "$hogs"); do
    (while :; do :; done) &
    hog_pids+=($!)
done

passed=0
failed=0
for run in $(seq 1 "$runs"); do
    log="$logs/run-$run.log"
    started=$(date +%s)
    args=(--skip-build)
    [ -n "$filter" ] && args+=(--filter "$filter")
    # A hung run is a failure too: 20 minutes is several times the slowest green run.
    if timeout 1200 swift test "${args[@]}" >"$log" 2>&1; then
        passed=$((passed + 1))
        echo "run $run: passed in $(( $(date +%s) - started )) s"
    else
        failed=$((failed + 1))
        echo "run $run: FAILED in $(( $(date +%s) - started )) s; log: $log"
        grep -E "✘|error:|Fatal|signal" "$log" | head -20 || true
        break
    fi
done
echo "stress: $passed passed, $failed failed"
[ "$failed" = 0 ]
