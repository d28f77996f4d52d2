#!/usr/bin/env bash
# Compares two WarpEngine binaries (say, before and after a change) with redis-benchmark tests
# (SET then GET unless TESTS says otherwise), alternating fresh servers round by round; prints
# ops/s and the server's CPU seconds per million requests for each. Quote medians: this machine is noisy.
#   bench/ab.sh OLD_BINARY NEW_BINARY [rounds]
# Environment: SIZE (value bytes, 64), N (requests, 1000000), R (key range, 1000000), P (pipeline, 16),
# TESTS (redis-benchmark test names, "set get"), RESP3 (set: the clients speak RESP3), REPLICA (set: each
# server gets a redis-server replica, linked before the run; CPU is still the server's own).
set -euo pipefail
old=$1 new=$2 rounds=${3:-3}
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for round in $(seq "$rounds"); do
  for which in old new; do
    bin=$old
    [ "$which" = new ] && bin=$new
    port=$((20000 + RANDOM % 10000))
    dir=$(mktemp -d)
    "$bin" --port "$port" --dir "$dir" >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    rpid=
    if [ -n "${REPLICA:-}" ]; then
      redis-server --port $((port + 1)) --dir "$dir" --save '' --replicaof 127.0.0.1 "$port" >/dev/null 2>&1 &
      rpid=$!
      for _ in $(seq 100); do
        redis-cli -p $((port + 1)) info replication 2>/dev/null | grep -q '^master_link_status:up' && break
        sleep 0.1
      done
    fi
    line="round $round $which"
    for t in ${TESTS:-set get}; do
      c0=$(cpu "$pid")
      rps=$(redis-benchmark -p "$port" -t "$t" -n "${N:-1000000}" -r "${R:-1000000}" -d "${SIZE:-64}" \
        -P "${P:-16}" -c 50 ${RESP3:+-3} -q 2>/dev/null | tr '\r' '\n' |
        awk '/requests per second/ {for (i = 2; i <= NF; i++) if ($i == "requests") v = $(i - 1)} END {print v}')
      c1=$(cpu "$pid")
      per_m=$(echo "($c1 - $c0) / $(getconf CLK_TCK) * 1000000 / ${N:-1000000}" | bc -l)
      line="$line | $t $rps ops/s, $(printf %.2f "$per_m") CPU s/M"
    done
    echo "$line"
    kill "$pid" $rpid
    wait "$pid" $rpid 2>/dev/null || true
    rm -rf "$dir"
  done
done
