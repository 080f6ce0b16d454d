#!/usr/bin/env bash
# Runs the bridge's suites (PythonRuntimeTests) and the engine's (RLMTests) under ThreadSanitizer
# and AddressSanitizer, each in a build folder of its own (.build-tsan, .build-asan), and fails on
# any sanitizer report or failing test.
#
#   bash scripts/sanitize.sh            # both sanitizers
#   bash scripts/sanitize.sh thread     # one of them
#
# What is left out, and why:
# - Tests that start confined worker processes (PythonWorkerTests, ProcessIsolationTests, and
#   the engine tests' `.process` cases), left out by RLM_TESTS_SKIP_WORKERS: the worker runs under
#   a memory limit (RLIMIT_AS) and a seccomp filter, and a sanitized worker dies during start-up
#   when its runtime maps its shadow memory (AddressSanitizer: "out of memory ... Failed to
#   mmap"). The worker's C code is the same code these suites exercise in-process.
# - CPython itself is not instrumented (Debian's libpython), so its own memory accesses are not
#   checked; the sanitizers see ours and every lock it takes (the GIL is a pthread mutex and
#   condition, which ThreadSanitizer intercepts). scripts/sanitizers/*.supp lists the reports
#   suppressed, each with its reason.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/require-python.sh

kinds=("${@:-thread address}")
read -r -a kinds <<<"${kinds[*]}"
filter='PythonRuntimeTests|RLMTests'
status=0
for kind in "${kinds[@]}"; do
    case "$kind" in
    thread) scratch=.build-tsan ;;
    address) scratch=.build-asan ;;
    *) echo "sanitize.sh: unknown sanitizer '$kind' (thread or address)" >&2; exit 2 ;;
    esac
    log="$scratch/sanitize.log"
    echo "== $kind sanitizer: building in $scratch" >&2
    # Under ThreadSanitizer our `Mutex` is a pthread lock it can see (Sources/PythonRuntime/SanitizerMutex.swift).
    flags=()
    if [ "$kind" = thread ]; then flags=(-Xswiftc -DRLM_TSAN_LOCKS); fi
    mkdir -p "$scratch"
    if ! swift build --build-tests --sanitize="$kind" --scratch-path "$scratch" "${flags[@]}" >"$scratch/build.log" 2>&1; then
        grep -E "error:" "$scratch/build.log" | sort -u | head -20 >&2 || true
        echo "== $kind sanitizer: the build failed (log: $scratch/build.log)" >&2
        exit 1
    fi
    echo "== $kind sanitizer: running $filter (log: $log)" >&2
    set +e
    RLM_TESTS_SKIP_WORKERS=1 \
    TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1 suppressions=$PWD/scripts/sanitizers/thread.supp" \
    ASAN_OPTIONS="halt_on_error=0 detect_leaks=0 suppressions=$PWD/scripts/sanitizers/address.supp" \
        swift test --skip-build --sanitize="$kind" --scratch-path "$scratch" "${flags[@]}" --filter "$filter" >"$log" 2>&1
    tests=$?
    set -e
    reports=$(grep -c "^WARNING: ThreadSanitizer\|^==[0-9]*==ERROR: AddressSanitizer" "$log" || true)
    grep -E "Test run with|passed after|failed after" "$log" | tail -1 >&2 || true
    if [ "$tests" != 0 ] || [ "$reports" != 0 ]; then
        echo "== $kind sanitizer: FAILED (tests exit $tests, $reports sanitizer reports)" >&2
        grep -E -A12 "^WARNING: ThreadSanitizer|ERROR: AddressSanitizer|✘" "$log" | head -80 >&2 || true
        status=1
    else
        echo "== $kind sanitizer: clean" >&2
    fi
done
exit "$status"
