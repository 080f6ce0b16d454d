#!/usr/bin/env bash
# Side by side: swift-rlm against the reference implementation (rlms 0.1.3 from PyPI), on the same
# scripted server and the same trajectories, alternating, several repetitions. Writes
# docs/benchmarks-side-by-side.md. Usage: Benchmarks/side-by-side/run.sh [REPETITIONS]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
reps="${1:-5}"
work="$(mktemp -d)"
server_pid=""
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"' EXIT

venv="${RLM_REFERENCE_VENV:-$root/.build-reference-venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "rlms==0.1.3"
fi
(cd "$root/Benchmarks" && swift build -c release --product SideBySide >&2 && swift build -c release --product ScriptedModelServer >&2)
swift_runner="$root/Benchmarks/.build/release/SideBySide"

# The scripted server (Swift, answering on its event loops) plays the trajectories in scenarios.py.
PYTHONPATH="$here" python3 -c "
import json, sys
from scenarios import SCENARIOS
json.dump({name: {key: value for key, value in s.items() if key in ('turns', 'child_turns')} for name, s in SCENARIOS.items()}, open(sys.argv[1], 'w'))
" "$work/scenarios.json"
"$root/Benchmarks/.build/release/ScriptedModelServer" "$work/scenarios.json" > "$work/port" &
server_pid=$!
for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
base="http://127.0.0.1:$(cat "$work/port")/v1"

# scenario latency_ms repetitions-per-process processes
plan=(
  "three-turn 0 5 $reps"
  "needle-40mb 0 1 $reps"
  "batch-16 200 1 $reps"
  "batch-256 200 1 $reps"
  "sequential-1000 0 3 $reps"
  "depth-2 0 5 $reps"
  "concurrent-1 50 3 $reps"
  "concurrent-64 50 1 $reps"
)
mkdir -p "$root/.build-side-by-side"
results="$root/.build-side-by-side/results.jsonl"
breakdown="$root/.build-side-by-side/breakdown.jsonl"
: > "$results"
: > "$breakdown"
for line in "${plan[@]}"; do
    read -r scenario latency per processes <<< "$line"
    PYTHONPATH="$here" python3 -c "import sys; from scenarios import SCENARIOS; open(sys.argv[1], 'w').write(SCENARIOS[sys.argv[2]]['context']())" "$work/context.txt" "$scenario"
    for i in $(seq "$processes"); do
        if [ "$scenario" = sequential-1000 ]; then
            # Where one sub-call's time goes, layer by layer, from a bare blocking socket (the floor
            # under every per-call figure) up to llm_query; interleaved with the runs it explains.
            "$swift_runner" breakdown "$base" 3 >> "$breakdown"
        fi
        for impl in swift reference; do
            if [ "$impl" = swift ]; then
                cmd=("$swift_runner" "$scenario" "$base" "$work/context.txt" "$per" "$latency")
            else
                cmd=(env PYTHONPATH="$here" "$venv/bin/python" "$here/ref_runner.py" "$scenario" "$base" "$work/context.txt" "$per" "$latency")
            fi
            echo "side-by-side: $scenario, $impl, process $i of $processes" >&2
            if ! /usr/bin/time -f "%M" -o "$work/rss" "${cmd[@]}" > "$work/out" 2> "$work/err" || [ ! -s "$work/out" ]; then
                echo "side-by-side: $impl $scenario failed:" >&2
                tail -5 "$work/err" >&2
                continue
            fi
            python3 - "$impl" "$scenario" "$latency" "$work/out" "$work/rss" >> "$results" <<'PY'
import json, sys
impl, scenario, latency, out, rss = sys.argv[1:]
data = json.loads(open(out).read().strip().splitlines()[-1])
print(json.dumps({"impl": impl, "scenario": scenario, "latency": int(latency), "times": data["times"], "answers": data["answers"], "rss_kb": int(open(rss).read().split()[-1])}))
PY
        done
    done
done
PYTHONPATH="$here" python3 "$here/report.py" "$results" "$breakdown" > "$root/docs/benchmarks-side-by-side.md"
cat "$root/docs/benchmarks-side-by-side.md"
