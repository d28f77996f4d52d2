#!/usr/bin/env bash
# SET with keyspace notifications on (notify-keyspace-events KEA: two messages per SET) and one
# redis-cli subscribed to every keyspace and keyevent channel, on redis-server and WarpEngine,
# alternating fresh servers round by round; prints ops/s and the server's CPU seconds per million
# SETs. Quote medians: this machine is noisy.
#   bench/keyspace_events.sh [WARPENGINE_BINARY] [rounds]
# Environment: N (requests, 300000), P (pipeline, 16), C (clients, 50).
set -euo pipefail
bin=${1:-target/release/warpengine} rounds=${2:-3}
n=${N:-300000}
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for round in $(seq "$rounds"); do
  for which in redis warp; do
    port=$((20000 + RANDOM % 10000))
    dir=$(mktemp -d)
    if [ "$which" = redis ]; then
      redis-server --port "$port" --save '' --appendonly no --dir "$dir" >/dev/null 2>&1 &
    else
      "$bin" --port "$port" --dir "$dir" >/dev/null 2>&1 &
    fi
    pid=$!
    for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    redis-cli -p "$port" config set notify-keyspace-events KEA >/dev/null
    redis-cli -p "$port" psubscribe '__key*__:*' >/dev/null &
    sub=$!
    sleep 0.2
    before=$(cpu "$pid")
    ops=$(redis-benchmark -p "$port" -t set -n "$n" -r 1000000 -d 64 -P "${P:-16}" -c "${C:-50}" -q 2>/dev/null |
      tr '\r' '\n' | awk '/requests per second/ {print $2; exit}')
    after=$(cpu "$pid")
    ticks=$(getconf CLK_TCK)
    echo "round $round $which | set $ops ops/s, $(awk -v t=$((after - before)) -v hz="$ticks" -v n="$n" \
      'BEGIN {printf "%.2f", t / hz / (n / 1000000)}') CPU s/M"
    kill "$sub" 2>/dev/null || true
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
  done
done
