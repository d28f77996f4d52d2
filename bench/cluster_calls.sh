#!/usr/bin/env bash
# What a reshard's own calls cost, WarpEngine against redis-server: for each side in turn, a fresh
# 3-primary, 3-replica cluster (scripts/cluster-local.sh) and bench/cluster_calls.py (SETSLOT,
# GETKEYSINSLOT and MIGRATE latencies, and how soon every node knows a slot's new owner).
#   bench/cluster_calls.sh [WARPENGINE_BINARY] [rounds]
# Environment: CALLS (calls timed per command, 300), BASE (first port; default random in
# 11000-14899, so that the cluster bus ports, port+10000, stay below the kernel's ephemeral range
# (32768 up), where another program's outgoing connection may already hold one).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/warpengine} rounds=${2:-3}
. bench/lib.sh
base=${BASE:-$(free_cluster_base 11000 14900 6)}
trap 'scripts/cluster-local.sh stop "$base" >/dev/null 2>&1 || true' EXIT
for round in $(seq "$rounds"); do
  for side in "$bin" redis-server; do
    CLUSTER_SERVER=$side scripts/cluster-local.sh start 6 "$base" --replicas 1 >/dev/null
    python3 bench/cluster_calls.py "$base" "round $round $(basename "$side")" "${CALLS:-300}"
    scripts/cluster-local.sh stop "$base" >/dev/null
  done
done
