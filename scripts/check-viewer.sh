#!/usr/bin/env bash
# Checks `rlm view` in a real headless browser (Chromium from Debian's packages): the page renders,
# the tree expands, and a screenshot is written for a person to look at.
# Usage: scripts/check-viewer.sh [OUTPUT_DIR]   (installs chromium with apt-get when run as root)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-.build-viewer-check}"
mkdir -p "$out"
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
    else
        echo "check-viewer: needs chromium (sudo apt-get install -y chromium)" >&2
        exit 1
    fi
fi
bash scripts/require-python.sh
swift build --product rlm >&2
rlm=.build/debug/rlm
"$rlm" demo --megabytes 4 --quiet --trajectory "$out/trajectory.jsonl" > /dev/null
"$rlm" view "$out/trajectory.jsonl" --output "$out/trajectory.html"
page="file://$(pwd)/$out/trajectory.html"
browser=(chromium --headless --no-sandbox --disable-gpu --hide-scrollbars)

# Collapsed by default: later iterations closed, the last one open.
"${browser[@]}" --dump-dom "$page" 2>/dev/null > "$out/collapsed.html"
# "#expand-all" runs the page's own Expand-all code on load.
"${browser[@]}" --dump-dom "$page#expand-all" 2>/dev/null > "$out/expanded.html"
"${browser[@]}" --window-size=1280,2400 --screenshot="$out/expanded.png" "$page#expand-all" 2>/dev/null

python3 - "$out" <<'PY'
import re, sys
out = sys.argv[1]
collapsed = open(f"{out}/collapsed.html").read()
expanded = open(f"{out}/expanded.html").read()
details = len(re.findall(r"<details", expanded))
open_collapsed = len(re.findall(r"<details[^>]*\bopen\b", collapsed))
open_expanded = len(re.findall(r"<details[^>]*\bopen\b", expanded))
assert 'data-node="0"' in expanded, "the root node is missing"
assert "Sub-call" in expanded, "no sub-calls rendered"
assert details > 10, f"only {details} <details> elements"
assert open_expanded == details, f"expand-all opened {open_expanded} of {details}"
assert open_collapsed < details, "nothing was collapsed initially"
print(f"check-viewer: {details} sections; {open_collapsed} open at first, all {open_expanded} after expanding; screenshot {out}/expanded.png")
PY
