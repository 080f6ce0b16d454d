#!/usr/bin/env bash
# The main job, offline: a scripted model finds a needle in a generated multi-megabyte context
# through the real engine (embedded Python, real sub-calls), then renders the trajectory.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/require-python.sh
swift build -c release --product rlm
.build/release/rlm demo "$@"
.build/release/rlm view rlm-demo-trajectory.jsonl --output rlm-demo.html
