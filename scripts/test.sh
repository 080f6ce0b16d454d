#!/usr/bin/env bash
# Builds everything (the command-line tests run the real `rlm` binary) and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/require-python.sh
swift build
swift test
