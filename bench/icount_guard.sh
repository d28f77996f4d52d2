#!/usr/bin/env bash
# The guard against erosion of the request path: instructions per request of the hot commands,
# counted by callgrind (repeatable where timings are not), against the record in
# bench/icount_baseline.txt. Fails when a command costs more than 10% over its record.
#
#   bench/icount_guard.sh [BINARY]            check (BINARY: target/release/warpengine)
#   bench/icount_guard.sh [BINARY] --update   rewrite the record from this run
#
# Updating the record is a deliberate commit that says why the cost moved. One server runs under
# valgrind with one worker; each phase is redis-benchmark (pipeline 16, 4 clients, 64-byte
# values) between a zeroing and a dump of callgrind's counters, so start-up and the other phases
# do not count. The phases run in a fixed order on one keyspace. The `_p1` phases send one
# request per read (-P 1): what a read costs besides its commands (socket, parsing, dispatch,
# reply, the client's bookkeeping) is all there, where pipelining shares it out 16 ways. They
# run one client (-c 1), so that every request is a wake-up of its own: with four clients, how
# many ready sockets one wake-up found depended on the machine's load, and the count moved 7%.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/warpengine}
update=${2:-}
n=${ICOUNT_REQUESTS:-20000}
record=${ICOUNT_RECORD:-bench/icount_baseline.txt}
for tool in valgrind callgrind_control redis-benchmark redis-cli; do
  command -v "$tool" >/dev/null || { echo "icount_guard.sh needs $tool" >&2; exit 1; }
done
[ -x "$bin" ] || { echo "no binary at $bin (cargo build --release -p warpengine)" >&2; exit 1; }

# name, then redis-benchmark's arguments for the phase. SET fills 1,000 keys that GET and MGET
# then always find; the others spread over 100,000 (a sorted set rescoring 1,000 members at
# random costs too unevenly from run to run to guard).
phases=(
  "set|-r 1000 -t set"
  "get|-r 1000 -t get"
  "mget|-r 1000 MGET key:__rand_int__ key:__rand_int__ key:__rand_int__ key:__rand_int__"
  "incr|-r 100000 -t incr"
  "lpush|-r 100000 -t lpush"
  "hset|-r 100000 -t hset"
  "zadd|-r 100000 -t zadd"
  "mix|-r 100000 -t set,get,incr,lpush"
  "evalsha|-r 1000 EVALSHA @sha 1 counter:__rand_int__ 1"
  "set_p1|-r 1000 -t set -P 1 -c 1"
  "get_p1|-r 1000 -t get -P 1 -c 1"
)
# EVALSHA's script: bench/scripting.sh's read-modify-write (a GET and a SET through redis.call),
# on counters of its own (the other phases' values are not numbers).
script='local v = tonumber(redis.call("get", KEYS[1]) or "0") + tonumber(ARGV[1]) redis.call("set", KEYS[1], v) return v'

dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
valgrind --tool=callgrind --callgrind-out-file="$dir/cg" "$bin" --port "$port" --dir "$dir" \
  --threads 1 >/dev/null 2>"$dir/valgrind.log" &
vpid=$!
trap 'kill "$vpid" 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 300); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.2; done
sha=$(redis-cli -p "$port" SCRIPT LOAD "$script")

declare -A counted
for phase in "${phases[@]}"; do
  name=${phase%%|*}
  read -r -a bench_args <<<"${phase#*|}"
  bench_args=("${bench_args[@]/@sha/$sha}")
  requests=$n
  # A mixed phase runs each of its tests n times.
  if [ "${bench_args[2]}" = -t ]; then
    requests=$((n * $(tr ',' '\n' <<<"${bench_args[3]}" | wc -l)))
  fi
  callgrind_control -z "$vpid" >/dev/null 2>&1
  redis-benchmark -p "$port" -n "$n" -d 64 -P 16 -c 4 -q "${bench_args[@]}" >/dev/null 2>&1
  callgrind_control -d "$name" "$vpid" >/dev/null 2>&1
  file=$(grep -l "^desc: Trigger: dump $name\$" "$dir"/cg.* | head -1)
  total=$(awk '/^(summary|totals):/ {print $2; exit}' "$file")
  counted[$name]=$((total / requests))
done
redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
wait "$vpid" 2>/dev/null || true

if [ "$update" = --update ]; then
  {
    echo "# Instructions per request of the hot commands (bench/icount_guard.sh); the test suite"
    echo "# fails when one grows more than 10% over its figure here. Update only in a commit that"
    echo "# says why: bench/icount_guard.sh target/release/warpengine --update"
    for phase in "${phases[@]}"; do
      name=${phase%%|*}
      echo "$name ${counted[$name]}"
    done
  } >"$record"
  cat "$record"
  exit 0
fi

status=0
for phase in "${phases[@]}"; do
  name=${phase%%|*}
  recorded=$(awk -v n="$name" '$1 == n {print $2}' "$record")
  now=${counted[$name]}
  if [ -z "$recorded" ]; then
    echo "$name: $now instructions/request (no record)"
    status=1
    continue
  fi
  limit=$((recorded * 110 / 100))
  verdict=ok
  if [ "$now" -gt "$limit" ]; then
    verdict="OVER (more than 10% above the record)"
    status=1
  fi
  echo "$name: $now instructions/request, record $recorded ($(awk -v a="$now" -v b="$recorded" 'BEGIN {printf "%+.1f%%", (a - b) * 100 / b}')) $verdict"
done
exit "$status"
