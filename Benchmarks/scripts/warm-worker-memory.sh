#!/usr/bin/env bash
# What idle warm workers cost in memory: starts `rlm serve --isolation process --warm-workers N` on
# loopback (no model server is needed to sit idle), waits until the workers are up, and prints each
# worker's proportional set size (Pss, from /proc/PID/smaps_rollup, the relay process and the REPL
# process together) and RSS, then the server's own.
#
#   bash Benchmarks/scripts/warm-worker-memory.sh [RLM_BINARY] [N]
set -euo pipefail
rlm="${1:-.build/release/rlm}"
count="${2:-4}"
port=$(( 20000 + RANDOM % 20000 ))
store="$(mktemp -d)"
"$rlm" serve --base-url http://127.0.0.1:9/v1 --model idle --isolation process --warm-workers "$count" --port "$port" \
    --store "$store/sessions.sqlite" 2>/dev/null &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$store"' EXIT
descendants() {
    local pid=$1 child
    for child in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
        echo "$child"
        descendants "$child"
    done
}
kib() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
for _ in $(seq 1 100); do
    [ "$(cat /proc/$server/task/*/children 2>/dev/null | wc -w)" -ge "$count" ] && break
    sleep 0.1
done
sleep 2   # let the last one finish starting its interpreter
total_pss=0
for worker in $(cat /proc/$server/task/*/children); do
    pss=0; rss=0
    for pid in $worker $(descendants "$worker"); do
        pss=$(( pss + $(kib "$pid" Pss) )); rss=$(( rss + $(kib "$pid" Rss) ))
    done
    echo "worker $worker: Pss $(( pss / 1024 )) MiB, Rss $(( rss / 1024 )) MiB"
    total_pss=$(( total_pss + pss ))
done
echo "idle workers: $count, Pss $(( total_pss / 1024 )) MiB in all; server: Pss $(( $(kib $server Pss) / 1024 )) MiB"
