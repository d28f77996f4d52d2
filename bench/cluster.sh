#!/usr/bin/env bash
# Redis Cluster throughput, side A against side B: each round, for each side in turn, a fresh
# 3-primary cluster (scripts/cluster-local.sh, no replicas) on this machine, and
#   redis-benchmark --cluster -t set / -t get -P 16 (-c C -r 100000 -n N): ops/s and the nodes'
#     CPU seconds per million requests (all three nodes' CPU added up);
#   the dip during a reshard: K keys written over every slot (redis-py), a redis-benchmark
#     --cluster SET/GET load (-P 16) started, its rate measured for D seconds, then during
#     `redis-cli --cluster reshard` of S slots from the first primary to the second; the rate is
#     the nodes' own count of SET and GET calls (INFO commandstats), so the reshard's own
#     commands (MIGRATE, SETSLOT, ...) are not counted as load.
# Per round it prints the ratios A/B. Quote medians of the rounds: this machine is noisy.
#   bench/cluster.sh [WARPENGINE_BINARY] [rounds]
# Environment: CLUSTER_SERVER_A (default: the WarpEngine binary), CLUSTER_SERVER_B (default
# redis-server): a path or a name on PATH, so `CLUSTER_SERVER_A=redis-server` proves the script
# with Redis on both sides; N (requests per test, 1000000), C (clients, 50), K (keys, 100000),
# S (slots moved, 1000), D (seconds of load before the reshard, 3), CLUSTER_THREADS (WarpEngine
# workers per node, 1).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/warpengine} rounds=${2:-3}
n=${N:-1000000} keys=${K:-100000} slots=${S:-1000} before_s=${D:-3}
. bench/lib.sh
side_a=${CLUSTER_SERVER_A:-$bin} side_b=${CLUSTER_SERVER_B:-redis-server}

base= load=
cleanup() {
  # (Under set -e a failing command ends the handler too: a load already gone must not keep
  # the nodes from being stopped.)
  if [ -n "$load" ]; then kill "$load" 2>/dev/null || true; fi
  if [ -n "$base" ]; then scripts/cluster-local.sh stop "$base" || true; fi
  return 0
}
trap cleanup EXIT

# Sum of SET and GET calls the nodes counted.
calls() {
  local port
  for port in "$@"; do redis-cli -p "$port" info commandstats; done | tr -d '\r' |
    awk -F'[=,]' '/^cmdstat_(set|get):/ {t += $2} END {print t + 0}'
}

now() { date +%s.%N; }

for round in $(seq "$rounds"); do
  declare -A ops=() dip=()
  for side in a b; do
    server=$side_a
    [ "$side" = b ] && server=$side_b
    label="$side=$(basename "$server")"
    base=$(free_cluster_base 20000 22700 3)
    CLUSTER_SERVER=$server scripts/cluster-local.sh start 3 "$base" >/dev/null
    ports=("$base" $((base + 1)) $((base + 2)))
    pids=$(for p in "${ports[@]}"; do
      redis-cli -p "$p" info server | tr -d '\r' | awk -F: '/^process_id:/ {print $2}'
    done | xargs)
    for test in set get; do
      read -r rps per_m < <(bench "$base" "$pids" --cluster -P 16 -t "$test")
      ops[$side.$test]=$rps
      echo "round $round $label | $test P=16 $rps ops/s $(printf %.2f "$per_m") CPU s/M"
    done

    python3 tests/clients/redis_py_cluster_multi.py "$base" write pre: "$keys" >/dev/null
    read -r from to < <(redis-cli -p "$base" cluster nodes |
      awk '/master/ {split($9, r, "-"); print r[1], $1}' | sort -n | awk '{print $2}' | head -2 | xargs)
    redis-benchmark --cluster -p "$base" -t set,get -P 16 -c "${C:-50}" -r 100000 -n 2000000000 \
      -q >/dev/null 2>&1 &
    load=$!
    sleep 1 # the load's connections made and its slot map read
    t0=$(now) c0=$(calls "${ports[@]}")
    sleep "$before_s"
    t1=$(now) c1=$(calls "${ports[@]}")
    timeout 300 redis-cli --cluster reshard "127.0.0.1:$base" --cluster-from "$from" \
      --cluster-to "$to" --cluster-slots "$slots" --cluster-yes >/dev/null
    t2=$(now) c2=$(calls "${ports[@]}")
    kill -0 "$load" 2>/dev/null || { echo "round $round $label | the load stopped during the reshard" >&2; exit 1; }
    kill "$load"
    wait "$load" 2>/dev/null || true
    load=
    before=$(echo "($c1 - $c0) / ($t1 - $t0)" | bc -l)
    during=$(echo "($c2 - $c1) / ($t2 - $t1)" | bc -l)
    dip[$side]=$(echo "$during / $before" | bc -l)
    printf 'round %s %s | reshard of %s slots (%s keys) in %.2f s: set+get %.0f ops/s before, %.0f during (%.2fx)\n' \
      "$round" "$label" "$slots" "$keys" "$(echo "$t2 - $t1" | bc -l)" "$before" "$during" "${dip[$side]}"
    scripts/cluster-local.sh stop "$base"
    base=
  done
  ratio() { echo "$1 / $2" | bc -l | xargs printf %.2f; }
  echo "round $round ratio a/b | set P=16 $(ratio "${ops[a.set]}" "${ops[b.set]}")x | get P=16 $(ratio "${ops[a.get]}" "${ops[b.get]}")x | during/before a $(printf %.2f "${dip[a]}")x b $(printf %.2f "${dip[b]}")x"
  unset ops dip
done
