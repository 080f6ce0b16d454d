"""Runs one scenario with the reference implementation (rlms) and prints JSON timings."""
import json
import sys
import threading
import time

from rlm import RLM

from scenarios import SCENARIOS, WARM

# ref_runner.py SCENARIO BASE_URL CONTEXT_FILE REPETITIONS LATENCY_MS (the same arguments as SideBySide)
scenario_name, base_url, context_file = sys.argv[1], sys.argv[2], sys.argv[3]
repetitions, latency = int(sys.argv[4]), int(sys.argv[5])
scenario = SCENARIOS[scenario_name]
concurrent = 64 if scenario_name == "concurrent-64" else 1
batch = 256 if scenario_name == "batch-256" else 16


def make():
    return RLM(
        backend="openai",
        backend_kwargs={"model_name": f"root:{scenario_name}@{latency if scenario_name.startswith('concurrent-') else 0}", "base_url": base_url, "api_key": "unused"},
        other_backends=["openai"],
        other_backend_kwargs=[{"model_name": f"sub@{latency}", "base_url": base_url, "api_key": "unused"}],
        environment="local",
        max_depth=2 if scenario_name == "depth-2" else 1,
        max_iterations=10,
        max_concurrent_subcalls=batch,
    )


def one():
    # Read per run, as swift-rlm's runner loads the file per run.
    with open(context_file, encoding="utf-8") as f:
        context = f.read()
    result = make().completion(context, root_prompt="benchmark")
    return result.response


def run_once():
    if concurrent > 1:
        results = [None] * concurrent
        def work(i):
            results[i] = one()
        threads = [threading.Thread(target=work, args=(i,)) for i in range(concurrent)]
        for t in threads: t.start()
        for t in threads: t.join()
        return results[0] if all(r == results[0] for r in results) else "MIXED"
    return one()


# Start-up (imports, first connections) is not what the latency scenarios measure.
if scenario_name in WARM:
    run_once()

times, answers = [], []
for _ in range(repetitions):
    start = time.perf_counter()
    answers.append(run_once())
    times.append(time.perf_counter() - start)
# The reference's local REPL swaps the process-wide sys.stdout to capture cell output; with
# several runs in threads it can be left pointing at a capture buffer, so write to the real one.
sys.__stdout__.write(json.dumps({"times": times, "answers": answers}) + "\n")
sys.__stdout__.flush()
