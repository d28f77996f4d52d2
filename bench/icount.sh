#!/usr/bin/env bash
# Instructions per request of a WarpEngine binary, counted by callgrind: repeatable where timings
# are not (the same binary, workload and environment give the same count whatever else the
# machine does). Runs the server under valgrind once idle and once serving N requests of
# redis-benchmark test T (pipelined 16, 4 clients, 64-byte values, one worker), and prints
# (busy - idle) / N.
#   bench/icount.sh BINARY [TEST] [N]        TEST defaults to set, N to 100000
# TEST is a redis-benchmark test (-t), or `evalsha` / `fcall`: bench/scripting.sh's one-key
# read-modify-write script (a GET and a SET) as EVALSHA, or the same code as a function's FCALL,
# over 1,000 keys (both runs load the script and the library, so that only the calls count).
# Environment: THREADS (workers, 1), CLIENTS (redis-benchmark -c, 4), PIPELINE (-P, 16), ARGS (more server arguments,
# as `--gravity-sketch no`).
# Compare two builds: bench/icount.sh old/warpengine get; bench/icount.sh new/warpengine get
# Redis under the same load: bench/icount.sh "$(command -v redis-server)" get
set -euo pipefail
bin=$1 test=${2:-set} n=${3:-100000}
command -v valgrind >/dev/null || { echo "icount.sh needs valgrind" >&2; exit 1; }

one='local v = tonumber(redis.call("get", KEYS[1]) or "0") + tonumber(ARGV[1]) redis.call("set", KEYS[1], v) return v'
lib="#!lua name=bench
redis.register_function('rmw', function(keys, args) local v = tonumber(redis.call('get', keys[1]) or '0') + tonumber(args[1]) redis.call('set', keys[1], v) return v end)"

# Total instructions of one server run; "idle" sends no requests.
run() {
  local port dir vpid
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  dir=$(mktemp -d)
  local server_args=(--threads "${THREADS:-1}")
  # redis-server under the same load, for comparison (it has no --threads; no snapshots).
  [ "$(basename "$bin")" = redis-server ] && server_args=(--save '' --appendonly no)
  valgrind --tool=callgrind --callgrind-out-file="$dir/cg" "$bin" --port "$port" --dir "$dir" \
    "${server_args[@]}" ${ARGS:-} >/dev/null 2>"$dir/valgrind.log" &
  vpid=$!
  for _ in $(seq 300); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.2; done
  local sha=
  case $test in evalsha | fcall)
    sha=$(redis-cli -p "$port" SCRIPT LOAD "$one")
    redis-cli -p "$port" FUNCTION LOAD "$lib" >/dev/null ;;
  esac
  if [ "$1" != idle ]; then
    local bench=(redis-benchmark -p "$port" -n "$n" -P "${PIPELINE:-16}" -c "${CLIENTS:-4}" -q)
    case $test in
      evalsha) "${bench[@]}" -r 1000 EVALSHA "$sha" 1 "key:__rand_int__" 1 >/dev/null 2>&1 ;;
      fcall) "${bench[@]}" -r 1000 FCALL rmw 1 "key:__rand_int__" 1 >/dev/null 2>&1 ;;
      *) "${bench[@]}" -t "$test" -r 100000 -d 64 >/dev/null 2>&1 ;;
    esac
  fi
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  wait "$vpid" || true
  awk '/^(summary|totals):/ {print $2; exit}' "$dir/cg"
  rm -rf "$dir"
}
idle=$(run idle)
busy=$(run busy)
echo "$(basename "$bin") $test: $(((busy - idle) / n)) instructions/request (busy $busy, idle $idle, n $n)"
