#!/usr/bin/env bash
# Instructions per request of any command, on data a first load put there: bench/icount.sh counts
# redis-benchmark's own tests from an empty server; this one runs the server under callgrind with
# instrumentation off, runs the PRELOAD redis-benchmark arguments, then counts only the N requests
# of the MEASURED arguments (pipelined 16, 4 clients, one worker). Compare with redis-server the
# same way (its path as BINARY).
#   bench/icount_cmd.sh BINARY "PRELOAD args" "MEASURED args" [N]
#   bench/icount_cmd.sh target/release/warpengine "-n 20000 -r 1000 ZADD z __rand_int__.5 m:__rand_int__" "ZRANGE z 0 9 WITHSCORES" 20000
# PRELOAD may be "" (nothing loaded). Options go before the command in each argument string.
# KEEP_CG=DIR keeps the callgrind files there (callgrind_annotate them to see where the count goes).
set -euo pipefail
# No glob expansion of the argument strings (`XADD s * f v`).
set -f
bin=$1 preload=$2 measured=$3 n=${4:-100000}
command -v valgrind >/dev/null || { echo "icount_cmd.sh needs valgrind" >&2; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
server_args=(--threads 1)
[ "$(basename "$bin")" = redis-server ] && server_args=(--save '' --appendonly no)
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$dir/cg" "$bin" --port "$port" \
  --dir "$dir" "${server_args[@]}" >/dev/null 2>"$dir/valgrind.log" &
vpid=$!
# The server goes whatever happens (it would hold the caller's flock, and a port).
trap 'kill "$vpid" 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 300); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.2; done
# shellcheck disable=SC2086 # the argument strings are split into redis-benchmark's arguments
if [ -n "$preload" ]; then redis-benchmark -p "$port" -P 16 -c 4 -q $preload >/dev/null 2>&1 || true; fi
callgrind_control -i on "$vpid" >/dev/null 2>&1
# shellcheck disable=SC2086
redis-benchmark -p "$port" -n "$n" -P 16 -c 4 -q $measured >/dev/null 2>&1 || true
callgrind_control -i off "$vpid" >/dev/null 2>&1
callgrind_control -d "$vpid" >/dev/null 2>&1
set +f
redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
wait "$vpid" || true
total=0
for f in "$dir"/cg*; do
  case $f in *.log) continue ;; esac
  # (A part with no events shows "." for its total.)
  t=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  t=${t//[^0-9]/}
  total=$((total + ${t:-0}))
done
if [ -n "${KEEP_CG:-}" ]; then cp "$dir"/cg* "$KEEP_CG"/; fi
echo "$(basename "$bin") [$measured]: $((total / n)) instructions/request (n $n)"
