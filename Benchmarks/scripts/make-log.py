"""Writes a synthetic service log of about SIZE bytes to PATH, with one NEEDLE line in the middle.

    python3 Benchmarks/scripts/make-log.py PATH SIZE_GB

Deterministic (seeded). 3% of lines are errors of six kinds. Never commit the output."""
import random
import sys

path, gigabytes = sys.argv[1], float(sys.argv[2])
target = int(gigabytes * 1_000_000_000)
random.seed(7)
kinds = ["timeout", "refused", "reset", "overflow", "denied", "corrupt"]
lines = []
for i in range(200_000):
    roll = random.random()
    if roll < 0.03:
        text = "ERROR [svc-%d] %s while serving request %d" % (random.randrange(40), random.choice(kinds), i)
    elif roll < 0.10:
        text = "WARN [svc-%d] slow response %d ms" % (random.randrange(40), random.randrange(5000))
    else:
        text = "INFO [svc-%d] request %d served in %d ms" % (random.randrange(40), i, random.randrange(100))
    lines.append("2026-12-02 10:%02d:%02d.%03d %s\n" % (i // 60 % 60, i % 60, i % 1000, text))
block = "".join(lines).encode()
written = 0
with open(path, "wb") as out:
    while written < target:
        if written <= target // 2 < written + len(block):
            out.write(b"2026-12-02 11:00:00.000 INFO NEEDLE the launch code is 7XK-42QZ\n")
        out.write(block)
        written += len(block)
