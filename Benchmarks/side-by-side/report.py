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

ideal = {"batch-16": 0.2, "batch-256": 0.2, "concurrent-64": None}
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
    def rss(cell):
        return statistics.median(cell["rss"]) / 1024 if cell["rss"] else float("nan")
    ok = lambda cell: all(a == expected for a in cell["answers"]) and bool(cell["answers"])
    ratio = med(r) / med(s) if s["times"] and r["times"] else float("nan")
    print(f"| {scenario} | {med(s):.4f} s | {med(r):.4f} s | {ratio:.1f}x | {rss(s):.0f} MB | {rss(r):.0f} MB | swift {'yes' if ok(s) else 'NO'}, reference {'yes' if ok(r) else 'NO'} |")
