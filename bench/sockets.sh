#!/usr/bin/env bash
# Issue 14's experiment: io_uring against epoll for the sockets, on this kernel, with nothing else
# different. bench/sockets/ (socket-spike) serves GET/SET on one thread through either loop;
# redis-server runs beside them for scale (a whole server, so its row is not the comparison).
# Alternating rounds, a fresh server each; redis-benchmark SET then GET at P=1 and P=16 with 50
# clients; prints ops/s and the server's CPU seconds per million requests, then medians and
# uring/epoll ratios of CPU per request. (Throughput is the load generator's limit at both
# pipelines on a 2-core machine: CPU per request is the figure.)
#   bench/sockets.sh [rounds]
# Environment: N (requests per test, 1000000), SPIKE (a socket-spike binary to use instead of
# building it; the test suite passes the one scripts/test.sh built).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
n=${N:-1000000}
spike=${SPIKE:-}
if [ -z "$spike" ]; then
  cargo build --release -q -p warpengine-socket-spike
  spike=target/release/socket-spike
fi
bin=$spike # (bench/lib.sh's names; its start() is not used: the spike takes no --dir)
# shellcheck source=bench/lib.sh
. bench/lib.sh

"$spike" syscall
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for round in $(seq "$rounds"); do
  for side in epoll uring redis; do
    port=$((20000 + RANDOM % 10000))
    if [ "$side" = redis ]; then
      pid=$(start redis "$port")
    else
      "$spike" "$side" "$port" &
      pid=$!
    fi
    wait_up "$port"
    for p in 1 16; do
      for t in set get; do
        read -r rps cpu_m <<<"$(bench "$port" "$pid" -t "$t" -P "$p" -d 64)"
        printf '%s %s P=%s %s %s %.2f\n' "$round" "$side" "$p" "$t" "$rps" "$cpu_m" | tee -a "$results"
      done
    done
    kill "$pid"
    # (Not a bare `wait`: it would wait for nothing else, but name the process all the same.)
    wait "$pid" 2>/dev/null || true
  done
done

echo
echo "medians of $rounds rounds: ops/s, CPU s/M"
for p in 1 16; do
  for t in set get; do
    line="P=$p $t"
    for side in epoll uring redis; do
      ops=$(awk -v s="$side" -v p="P=$p" -v t="$t" '$2 == s && $3 == p && $4 == t {print $5}' "$results" | median)
      cpu=$(awk -v s="$side" -v p="P=$p" -v t="$t" '$2 == s && $3 == p && $4 == t {print $6}' "$results" | median)
      line="$line | $side $ops $cpu"
      eval "cpu_$side=$cpu"
    done
    # shellcheck disable=SC2154 # set by the eval above
    echo "$line | uring/epoll CPU $(awk -v a="$cpu_uring" -v b="$cpu_epoll" 'BEGIN {if (b > 0) printf "%.2fx", a / b; else printf "n/a"}')"
  done
done
