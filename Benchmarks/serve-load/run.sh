#!/usr/bin/env bash
# `rlm serve` under load: CONCURRENCY completions at once (default 200), WAVES times (default 5),
# against the scripted model server at LATENCY ms per call (default 50). Each completion is the
# side-by-side benchmarks' three-turn run (three root turns and one llm_query: four model calls).
# Prints one JSON object: one completion alone (median of 10), then each wave's p50/p99
# latency, errors and the server's RSS after it.
#
#   bash Benchmarks/serve-load/run.sh [CONCURRENCY] [WAVES] [LATENCY_MS]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
concurrency="${1:-200}" waves="${2:-5}" latency="${3:-50}"
(cd "$root" && swift build -c release --product rlm >&2)
(cd "$root/Benchmarks" && swift build -c release --product ScriptedModelServer >&2)
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
python3 -c "
import json, sys
sys.path.insert(0, '$root/Benchmarks/side-by-side')
from scenarios import SCENARIOS
json.dump({'three-turn': {'turns': SCENARIOS['three-turn']['turns']}}, open('$work/scenarios.json', 'w'))
"
"$root/Benchmarks/.build/release/ScriptedModelServer" "$work/scenarios.json" > "$work/model-port" &
while [ ! -s "$work/model-port" ]; do sleep 0.1; done
"$root/.build/release/rlm" serve --base-url "http://127.0.0.1:$(cat "$work/model-port")/v1" \
    --model "root:three-turn@$latency" --sub-model "sub@$latency" --context-window 32768 --port 0 \
    --store "$work/store.sqlite" --max-runs 100000 --max-calls-in-flight 100000 --isolation in-process 2> "$work/serve.log" &
server=$!
until grep -qs "listening on" "$work/serve.log"; do sleep 0.1; done
port="$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$work/serve.log")"
python3 "$root/Benchmarks/serve-load/load.py" "$port" "$server" "$concurrency" "$waves"
