"""Turns the runners' results into a Markdown table of medians and ratios."""
import json
import statistics
import sys
from collections import defaultdict

from scenarios import SCENARIOS

rows = defaultdict(lambda: defaultdict(lambda: {"times": [], "rss": [], "answers": []}))
for line in open(sys.argv[1]):
    r = json.loads(line)
    cell = rows[r["scenario"]][r["impl"]]
    cell["times"] += r["times"]
    cell["rss"].append(r["rss_kb"])
    cell["answers"] += r["answers"]
    cell["latency"] = r["latency"]

floor = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
print("# Side by side with the reference implementation\n")
print("Produced by `Benchmarks/side-by-side/run.sh`: both implementations run the same scripted trajectories")
print("against the same scripted OpenAI-compatible server on 127.0.0.1, alternating, on this 2-core machine.")
print("Times are medians of wall-clock seconds per run (per completion where a process runs several);")
print("RSS is the median peak resident set of the whole process.\n")
print("| scenario | swift-rlm | reference | ratio (ref / swift) | swift peak RSS | reference peak RSS | answers correct |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for scenario in SCENARIOS:
    if scenario not in rows:
        continue
    s, r = rows[scenario]["swift"], rows[scenario]["reference"]
    expected = SCENARIOS[scenario]["answer"]
    def med(cell):
        return statistics.median(cell["times"]) if cell["times"] else float("nan")
    if not s["times"] and not r["times"]:
        continue
    def rss(cell):
        return statistics.median(cell["rss"]) / 1024 if cell["rss"] else float("nan")
    ok = lambda cell: all(a == expected for a in cell["answers"]) and bool(cell["answers"])
    ratio = med(r) / med(s) if s["times"] and r["times"] else float("nan")
    print(f"| {scenario} | {med(s):.4f} s | {med(r):.4f} s | {ratio:.1f}x | {rss(s):.0f} MB | {rss(r):.0f} MB | swift {'yes' if ok(s) else 'NO'}, reference {'yes' if ok(r) else 'NO'} |")

print()
print(f"The scripted server's own cost per request, measured from a bare keep-alive client: {floor * 1e6:.0f} µs.")
def per_call(impl):
    cell = rows["sequential-1000"][impl]
    return statistics.median(cell["times"]) / 1000 if cell["times"] else float("nan")
if "sequential-1000" in rows:
    s_call, r_call = per_call("swift"), per_call("reference")
    print(f"Per `llm_query` in sequential-1000: swift-rlm {s_call * 1e6:.0f} µs, reference {r_call * 1e6:.0f} µs; "
          f"above that floor (the implementation's own overhead): swift-rlm {(s_call - floor) * 1e6:.0f} µs, "
          f"reference {(r_call - floor) * 1e6:.0f} µs, a ratio of {(r_call - floor) / max(s_call - floor, 1e-9):.0f}x.")
for name in ("batch-16", "batch-256"):
    if name in rows:
        print(f"{name} at 200 ms per call: swift-rlm {statistics.median(rows[name]['swift']['times']) / 0.2:.2f}x the ideal 0.2 s, "
              f"reference {statistics.median(rows[name]['reference']['times']) / 0.2:.2f}x.")
def median_text(scenario, impl):
    times = rows[scenario][impl]["times"]
    return f"{statistics.median(times):.3f} s" if times else "no result (the run failed)"
if "concurrent-64" in rows:
    print(f"concurrent-64 (64 three-turn runs at once in one process, 50 ms per call; one such run's ideal is 0.15 s): "
          f"swift-rlm {median_text('concurrent-64', 'swift')}, reference {median_text('concurrent-64', 'reference')}.")
