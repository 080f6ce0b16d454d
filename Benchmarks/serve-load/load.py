"""The load client of run.sh: plain asyncio HTTP/1.1, one connection per request in flight."""
import asyncio
import json
import statistics
import sys
import time

port, server, concurrency, waves = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
BODY = json.dumps({"model": "rlm", "messages": [{"role": "user", "content": "alpha beta gamma " * 100 + "\n\nbenchmark"}]}).encode()
REQUEST = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
           f"content-length: {len(BODY)}\r\nconnection: close\r\n\r\n").encode() + BODY


def rss_kb():
    for line in open(f"/proc/{server}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])


async def one():
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(REQUEST)
    await writer.drain()
    data = await reader.read()
    writer.close()
    elapsed = time.perf_counter() - started
    head, _, body = data.partition(b"\r\n\r\n")
    ok = head.startswith(b"HTTP/1.1 200") and json.loads(body)["choices"][0]["message"]["content"] == "done:ok"
    return elapsed, ok


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def main():
    alone = [(await one())[0] for _ in range(10)]
    result = {"concurrency": concurrency, "alone_median_ms": round(statistics.median(alone) * 1000, 1),
              "rss_kb_before": rss_kb(), "waves": []}
    for _ in range(waves):
        started = time.perf_counter()
        outcomes = await asyncio.gather(*[one() for _ in range(concurrency)], return_exceptions=True)
        wall = time.perf_counter() - started
        times = [o[0] for o in outcomes if isinstance(o, tuple)]
        errors = sum(1 for o in outcomes if not isinstance(o, tuple) or not o[1])
        result["waves"].append({"wall_s": round(wall, 2), "p50_ms": round(percentile(times, 50) * 1000, 1),
                                "p99_ms": round(percentile(times, 99) * 1000, 1), "errors": errors, "rss_kb": rss_kb()})
    print(json.dumps(result, indent=1))


asyncio.run(main())
