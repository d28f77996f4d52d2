#!/usr/bin/env bash
# What GRAVITY's hot-key sketch costs a GET (issue 22's target: at most 3% of GET throughput):
# one binary, fresh servers with `gravity-sketch yes` and `no` alternating round by round, each
# filled with R keys (redis-benchmark -t set) and then measured with redis-benchmark -t get at
# pipeline P. Prints ops/s and the server's CPU seconds per million GETs per run, then the
# medians and the ratio on/off. `no` stops the recording, not the per-request countdown
# (docs/physics.md, GRAVITY): the difference is the sampling's cost.
#   bench/gravity_cost.sh [WARPENGINE_BINARY] [rounds]
# Environment: N (GETs per run, 2000000), R (key range, 100000), C (clients, 50), P (pipeline,
# 16), THREADS (workers, 2).
set -euo pipefail
bin=${1:-target/release/warpengine} rounds=${2:-4}
n=${N:-2000000} r=${R:-100000} p=${P:-16}
. "$(dirname "$0")/lib.sh"
declare -A ops=() cpus=()
for round in $(seq "$rounds"); do
  for sketch in yes no; do
    port=$((20000 + RANDOM % 10000))
    dir=$(mktemp -d)
    "$bin" --port "$port" --dir "$dir" --threads "${THREADS:-2}" --gravity-sketch "$sketch" \
      >/dev/null 2>&1 &
    pid=$!
    wait_up "$port"
    redis-benchmark -p "$port" -t set -n "$r" -r "$r" -d 64 -P "$p" -q >/dev/null 2>&1
    read -r rps per_m < <(bench "$port" "$pid" -t get -r "$r" -d 64 -P "$p")
    echo "round $round gravity-sketch $sketch | get $rps ops/s $(printf %.3f "$per_m") CPU s/M"
    ops[$sketch]="${ops[$sketch]:-} $rps"
    cpus[$sketch]="${cpus[$sketch]:-} $per_m"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
  done
done
on=$(median <<<"${ops[yes]}") off=$(median <<<"${ops[no]}")
con=$(median <<<"${cpus[yes]}") coff=$(median <<<"${cpus[no]}")
echo "median gravity-sketch yes | get $on ops/s $(printf %.3f "$con") CPU s/M"
echo "median gravity-sketch no | get $off ops/s $(printf %.3f "$coff") CPU s/M"
echo "on/off | ops/s $(echo "$on / $off" | bc -l | xargs printf %.3f)x, CPU per request $(echo "$con / $coff" | bc -l | xargs printf %.3f)x"
