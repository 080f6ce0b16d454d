#!/usr/bin/env bash
# Builds everything (the command-line tests run the real `rlm` binary) and runs every test: the
# Swift suites, then `rlm serve` and `rlm mcp` driven by the official openai and mcp Python clients.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/require-python.sh
swift build
swift test
bash scripts/test-clients.sh .build/debug/rlm
