#!/usr/bin/env bash
# Loading a dump.rdb at start, WarpEngine against redis-server (issue 18): a real redis-server
# writes one file of K keys (default 1,000,000: 60% 64-byte strings from DEBUG POPULATE, and 10%
# each of small hashes, lists, integer sets and sorted sets), then each server starts on a copy of
# it, alternately, `rounds` times; the time from the process's start to its first PONG (Redis
# answers -LOADING until then) and the server's CPU seconds at that moment are printed, with the
# ratio WarpEngine / Redis of each round. Quote medians: this machine is noisy.
#   bench/rdb_load.sh [WARPENGINE_BINARY] [rounds]
# Environment: K (keys, 1000000), THREADS (WarpEngine workers, 2).
set -euo pipefail
bin=${1:-target/release/warpengine} rounds=${2:-3}
k=${K:-1000000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 10000))
redis-server --port "$port" --dir "$work" --dbfilename source.rdb --save '' --appendonly no \
  --enable-debug-command yes >/dev/null 2>&1 &
src=$!
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$port" DEBUG POPULATE $((k * 6 / 10)) s 64 >/dev/null
python3 - $((k / 10)) <<'EOF' | redis-cli -p "$port" --pipe >/dev/null
import sys
n = int(sys.argv[1])
out = []
def cmd(*args):
    parts = [str(a).encode() for a in args]
    out.append(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))
for i in range(n):
    cmd("HSET", f"h:{i}", "a", i, "b", "text", "c", i * 7, "d", "more", "e", "x")
    cmd("RPUSH", f"l:{i}", "one", "two", i, "four", "five")
    cmd("SADD", f"i:{i}", i, i + 1, i + 2, i + 3, i + 4)
    cmd("ZADD", f"z:{i}", 1, "a", 2.5, "b", i, "c", -1, "d", 1e9, "e")
sys.stdout.buffer.write(b"".join(out))
EOF
keys=$(redis-cli -p "$port" DBSIZE)
redis-cli -p "$port" SAVE >/dev/null
kill "$src"
wait "$src" 2>/dev/null || true
echo "file: $keys keys, $(stat -c %s "$work/source.rdb") bytes"
. "$(dirname "$0")/lib.sh"
load() { # server -> "seconds cpu-seconds"
  local dir="$work/$1" pid t0 t1 c
  rm -rf "$dir" && mkdir -p "$dir" && cp "$work/source.rdb" "$dir/dump.rdb"
  port=$((20000 + RANDOM % 10000))
  t0=$(date +%s.%N)
  if [ "$1" = warp ]; then
    "$bin" --port "$port" --dir "$dir" --threads "${THREADS:-2}" --appendonly no >/dev/null 2>&1 &
  else
    redis-server --port "$port" --dir "$dir" --appendonly no >/dev/null 2>&1 &
  fi
  pid=$!
  until [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ]; do sleep 0.01; done
  t1=$(date +%s.%N)
  c=$(echo "$(cpu "$pid") / $(getconf CLK_TCK)" | bc -l)
  local got
  got=$(redis-cli -p "$port" DBSIZE)
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  [ "$got" = "$keys" ] || { echo "$1 loaded $got keys of $keys" >&2; exit 1; }
  echo "$(echo "$t1 - $t0" | bc -l) $c"
}
for round in $(seq "$rounds"); do
  read -r wt wc < <(load warp)
  read -r rt rc < <(load redis)
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else printf "n/a" }'; }
  printf 'round %d | warp %.2f s %.2f CPU s | redis %.2f s %.2f CPU s | ratio warp/redis %s time %s CPU\n' \
    "$round" "$wt" "$wc" "$rt" "$rc" "$(ratio "$wt" "$rt")" "$(ratio "$wc" "$rc")"
done
