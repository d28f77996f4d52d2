#!/usr/bin/env bash
# What operability costs the request path: redis-benchmark SET and GET (P=16) against one
# WarpEngine binary in four set-ups, alternating fresh servers round by round:
#   off      latency-tracking no, slow log off
#   default  latency tracking on, slow log at 10 ms (the defaults)
#   scraped  the defaults, with /metrics scraped every second
#   monitors the defaults, scraped, and the latency monitor on at 1 ms
# Prints ops/s and the server's CPU seconds per million requests. Quote medians: this machine is
# noisy.
#   bench/operability.sh [WARPENGINE_BINARY] [rounds]
# Environment: N (requests, 1000000), P (pipeline, 16), C (clients, 50).
set -euo pipefail
bin=${1:-target/release/warpengine} rounds=${2:-3}
n=${N:-1000000}
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
scrape_every_second() {
  while sleep 1; do
    { exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 && cat <&3 >/dev/null; } 2>/dev/null || true
    exec 3<&- 2>/dev/null || true
  done
}
for round in $(seq "$rounds"); do
  for mode in off default scraped monitors; do
    port=$((20000 + RANDOM % 10000))
    mport=$((port + 1))
    dir=$(mktemp -d)
    args=(--port "$port" --dir "$dir" --metrics-port "$mport")
    case $mode in
      off) args+=(--latency-tracking no --slowlog-log-slower-than -1) ;;
      monitors) args+=(--latency-monitor-threshold 1) ;;
    esac
    "$bin" "${args[@]}" >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    scraper=
    if [ "$mode" = scraped ] || [ "$mode" = monitors ]; then
      scrape_every_second "$mport" &
      scraper=$!
    fi
    line="round $round $mode"
    for t in set get; do
      c0=$(cpu "$pid")
      rps=$(redis-benchmark -p "$port" -t "$t" -n "$n" -r 1000000 -d 64 -P "${P:-16}" -c "${C:-50}" -q 2>/dev/null |
        tr '\r' '\n' | awk '/requests per second/ {for (i = 2; i <= NF; i++) if ($i == "requests") v = $(i - 1)} END {print v}')
      c1=$(cpu "$pid")
      per_m=$(echo "($c1 - $c0) / $(getconf CLK_TCK) * 1000000 / $n" | bc -l)
      line="$line | $t $rps ops/s, $(printf %.2f "$per_m") CPU s/M"
    done
    echo "$line"
    [ -n "$scraper" ] && kill "$scraper" 2>/dev/null
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
  done
done
