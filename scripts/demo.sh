#!/usr/bin/env bash
# The main job, offline: a scripted model finds a needle in a generated multi-megabyte context
# through the real engine (embedded Python, real sub-calls), then renders the trajectory.
# Builds only `rlm-demo` (the engine, the scripted models and the argument parser), in debug, so
# that the first answer comes in minutes and scripts/test.sh reuses what it built.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/require-python.sh
swift build --product rlm-demo
.build/debug/rlm-demo "$@"
.build/debug/rlm-demo view rlm-demo-trajectory.jsonl --output rlm-demo.html
