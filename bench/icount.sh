#!/usr/bin/env bash
# Instructions per request of a WarpEngine binary, counted by callgrind: repeatable where timings
# are not (the same binary, workload and environment give the same count whatever else the
# machine does). Runs the server under valgrind once idle and once serving N requests of
# redis-benchmark test T (pipelined 16, 4 clients, 64-byte values, one worker), and prints
# (busy - idle) / N.
#   bench/icount.sh BINARY [TEST] [N]        TEST defaults to set, N to 100000
# Environment: THREADS (workers, 1), CLIENTS (redis-benchmark -c, 4), ARGS (more server arguments,
# as `--gravity-sketch no`).
# Compare two builds: bench/icount.sh old/warpengine get; bench/icount.sh new/warpengine get
set -euo pipefail
bin=$1 test=${2:-set} n=${3:-100000}
command -v valgrind >/dev/null || { echo "icount.sh needs valgrind" >&2; exit 1; }

# Total instructions of one server run; "idle" sends no requests.
run() {
  local port dir vpid
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  dir=$(mktemp -d)
  valgrind --tool=callgrind --callgrind-out-file="$dir/cg" "$bin" --port "$port" --dir "$dir" \
    --threads "${THREADS:-1}" ${ARGS:-} >/dev/null 2>"$dir/valgrind.log" &
  vpid=$!
  for _ in $(seq 300); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.2; done
  if [ "$1" != idle ]; then
    redis-benchmark -p "$port" -t "$test" -n "$n" -r 100000 -d 64 -P 16 -c "${CLIENTS:-4}" -q >/dev/null 2>&1
  fi
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  wait "$vpid" || true
  awk '/^(summary|totals):/ {print $2; exit}' "$dir/cg"
  rm -rf "$dir"
}
idle=$(run idle)
busy=$(run busy)
echo "$(basename "$bin") $test: $(((busy - idle) / n)) instructions/request (busy $busy, idle $idle, n $n)"
