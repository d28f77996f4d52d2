#!/usr/bin/env bash
# A replica's full sync (issue 20): a redis-server primary holds K keys (default 1,000,000 strings
# of 64 bytes from DEBUG POPULATE) and sends them diskless (Redis 7.0's default, without the
# 5-second delay); a fresh WarpEngine and a fresh redis-server take turns as its replica, `rounds`
# times. Printed per round: seconds from REPLICAOF to `master_link_status:up` (the replica serves
# the data from then on) and the replica's CPU seconds by then, with the ratio WarpEngine / Redis.
# Quote medians: this machine is noisy.
#   bench/full_sync.sh [WARPENGINE_BINARY] [rounds]
# Environment: K (keys, 1000000), THREADS (WarpEngine workers, 2).
set -euo pipefail
bin=${1:-target/release/warpengine} rounds=${2:-3}
k=${K:-1000000}
work=$(mktemp -d)
primary_port=$((20000 + RANDOM % 10000))
redis-server --port "$primary_port" --dir "$work" --save '' --appendonly no \
  --repl-diskless-sync yes --repl-diskless-sync-delay 0 --enable-debug-command yes \
  >/dev/null 2>&1 &
primary=$!
trap 'kill "$primary" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do redis-cli -p "$primary_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$primary_port" DEBUG POPULATE "$k" key 64 >/dev/null
keys=$(redis-cli -p "$primary_port" DBSIZE)
echo "primary: $keys keys"
. "$(dirname "$0")/lib.sh"
sync_once() { # server -> "seconds cpu-seconds"
  local port=$((20000 + RANDOM % 10000)) pid t0 t1 c got
  start "$1" "$port" >"$work/pid"
  pid=$(cat "$work/pid")
  until [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ]; do sleep 0.01; done
  t0=$(date +%s.%N)
  redis-cli -p "$port" REPLICAOF 127.0.0.1 "$primary_port" >/dev/null
  until redis-cli -p "$port" INFO replication 2>/dev/null | grep -q '^master_link_status:up'; do
    sleep 0.01
  done
  t1=$(date +%s.%N)
  c=$(echo "$(cpu "$pid") / $(getconf CLK_TCK)" | bc -l)
  got=$(redis-cli -p "$port" DBSIZE)
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
  [ "$got" = "$keys" ] || { echo "$1 replica has $got keys of $keys" >&2; exit 1; }
  echo "$(echo "$t1 - $t0" | bc -l) $c"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else printf "n/a" }'; }
for round in $(seq "$rounds"); do
  read -r wt wc < <(sync_once warp)
  read -r rt rc < <(sync_once redis)
  printf 'round %d | warp %.2f s %.2f CPU s | redis %.2f s %.2f CPU s | ratio warp/redis %s time %s CPU\n' \
    "$round" "$wt" "$wc" "$rt" "$rc" "$(ratio "$wt" "$rt")" "$(ratio "$wc" "$rc")"
done
