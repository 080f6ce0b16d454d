#!/usr/bin/env bash
# Checks `rlm serve`'s live page in headless Chromium (Debian's package; installed when missing
# and run as root): while a run proceeds the page shows it running, with its tree and a bar
# for its sub-call; after it ends, the page shows it answered. Leaves a screenshot of each.
#
#   bash scripts/check-live-page.sh [PATH/TO/rlm] [OUTPUT_DIR]   (defaults: .build/debug/rlm, .)
set -euo pipefail
cd "$(dirname "$0")/.."
rlm="$(realpath "${1:-.build/debug/rlm}")"
out="$(realpath "${2:-.}")"
if ! command -v chromium >/dev/null; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "check-live-page: needs chromium: sudo apt-get install -y chromium" >&2
        exit 1
    fi
fi
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
python3 scripts/serve/fake_model.py --latency-ms 200 > "$work/model-port" &
until [ -s "$work/model-port" ]; do sleep 0.1; done
"$rlm" serve --base-url "http://127.0.0.1:$(cat "$work/model-port")/v1" --model fake --port 0 \
    --store "$work/store.sqlite" 2> "$work/serve.log" &
until grep -qs "listening on" "$work/serve.log"; do sleep 0.1; done
url="$(sed -n 's/.*listening on \(http:\/\/[0-9.:]*\).*/\1/p' "$work/serve.log")"

page() {  # page FRAGMENT DOM_FILE [SCREENSHOT]
    chromium --headless --no-sandbox --disable-gpu --window-size=1280,720 --virtual-time-budget=2500 \
        --dump-dom "$url/#$1" > "$2" 2>/dev/null
    if [ -n "${3:-}" ]; then
        chromium --headless --no-sandbox --disable-gpu --window-size=1280,720 --virtual-time-budget=2500 \
            --screenshot="$3" "$url/#$1" >/dev/null 2>&1
    fi
}
expect() {  # expect FILE TEXT WHAT
    grep -q -- "$2" "$1" || { echo "check-live-page: FAILED: $3 (no '$2' in the page)" >&2; exit 1; }
}

# A run that takes about five seconds: one turn, then a sub-call that sleeps 4 s.
curl -s "$url/v1/chat/completions" -d '{"model":"rlm","messages":[{"role":"user","content":"tern and gull\n\nslow"}]}' > "$work/answer.json" &
asker=$!
until curl -s "$url/v1/runs" | grep -q '"status":"running"'; do sleep 0.1; done
run="$(curl -s "$url/v1/runs" | python3 -c 'import json, sys; print(json.load(sys.stdin)["data"][0]["id"])')"
sleep 1  # the sub-call is under way
page "run=$run" "$work/live.html" "$out/live-page-running.png"
expect "$work/live.html" 'class="st running"' "the run shows as running while it runs"
expect "$work/live.html" 'node 0 · depth 0' "the run's tree shows its root node"
expect "$work/live.html" '<rect' "the timeline has a bar for the sub-call in flight"
# The bar of the call in flight grows with the run: wider than a sliver a second into the call.
python3 - "$work/live.html" <<'PY' || { echo "check-live-page: FAILED: the sub-call in flight is only a sliver on the timeline" >&2; exit 1; }
import re, sys
widths = [float(w) for w in re.findall(r'<rect [^>]*width="([0-9.]+)"', open(sys.argv[1]).read())]
sys.exit(0 if widths and max(widths) > 100 else 1)
PY
wait "$asker"
grep -q '"content":"echo: SLEEP 4"' "$work/answer.json" || { echo "check-live-page: the run did not answer" >&2; exit 1; }
page "run=$run" "$work/done.html" "$out/live-page-answered.png"
expect "$work/done.html" 'class="st answered"' "the run shows as answered once it ends"
expect "$work/done.html" 'echo: SLEEP 4' "the answer is on the page"
for png in "$out/live-page-running.png" "$out/live-page-answered.png"; do
    [ "$(stat -c %s "$png")" -gt 20000 ] || { echo "check-live-page: $png looks empty" >&2; exit 1; }
done
echo "check-live-page: ok ($out/live-page-running.png, $out/live-page-answered.png)"
