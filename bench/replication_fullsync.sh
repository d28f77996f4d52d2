#!/usr/bin/env bash
# Full sync: seconds from a redis-server replica's REPLICAOF to it serving every key of a primary
# holding K keys (SET key:N with VALUE_SIZE-byte values, loaded with redis-cli --pipe), for a WarpEngine
# primary and a redis-server one in turn (fresh servers every round; Redis with
# repl-diskless-sync-delay 0, so neither waits before sending its RDB), and the longest a client of
# the primary waited for a reply meanwhile (a GET every millisecond on one connection: how long the
# full sync stalls service) and the primary's peak RSS by then (VmHWM). Quote medians.
#   bench/replication_fullsync.sh [WARPENGINE_BINARY] [rounds]
# Environment: K (keys, 1000000), VALUE_SIZE (bytes, 64), THREADS (WarpEngine workers, 2).
set -euo pipefail
bin=${1:-target/release/warpengine} rounds=${2:-3}
k=${K:-1000000}
value=$(printf 'v%.0s' $(seq "${VALUE_SIZE:-64}"))
commands=$(mktemp)
probe=$(mktemp)
trap 'rm -f "$commands" "$probe"' EXIT
# probe PORT STOPFILE: GETs until STOPFILE exists; prints the longest wait for a reply, in ms.
cat >"$probe" <<'PY'
import os, socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
def whole(r):
    if not r.endswith(b"\r\n"):
        return False
    return not r.startswith(b"$") or r.startswith(b"$-1") or r.count(b"\r\n") >= 2
worst = 0.0
while not os.path.exists(sys.argv[2]):
    t = time.perf_counter()
    s.sendall(b"*2\r\n$3\r\nGET\r\n$5\r\nkey:1\r\n")
    reply = b""
    while not whole(reply):
        reply += s.recv(4096)
    worst = max(worst, time.perf_counter() - t)
    time.sleep(0.001)
print(f"{worst * 1000:.1f}")
PY
awk -v k="$k" -v v="$value" 'BEGIN { for (i = 0; i < k; i++) printf "SET key:%d %s\r\n", i, v }' >"$commands"

up() {
  for _ in $(seq 200); do redis-cli -p "$1" ping >/dev/null 2>&1 && return; sleep 0.05; done
  echo "no server on port $1" >&2
  exit 1
}

for round in $(seq "$rounds"); do
  line="round $round"
  for primary in warp redis; do
    port=$((20000 + RANDOM % 10000)) rport=$((port + 1))
    dir=$(mktemp -d) rdir=$(mktemp -d)
    if [ "$primary" = warp ]; then
      "$bin" --port "$port" --dir "$dir" --threads "${THREADS:-2}" --repl-diskless-sync-delay 0 \
        >/dev/null 2>&1 &
    else
      redis-server --port "$port" --dir "$dir" --save '' --repl-diskless-sync-delay 0 >/dev/null 2>&1 &
    fi
    pid=$!
    redis-server --port "$rport" --dir "$rdir" --save '' >/dev/null 2>&1 &
    rpid=$!
    up "$port"
    up "$rport"
    redis-cli -p "$port" --pipe <"$commands" >/dev/null
    keys=$(redis-cli -p "$port" dbsize)
    python3 "$probe" "$port" "$dir/stop" >"$dir/longest" &
    probe_pid=$!
    t0=$(date +%s.%N)
    redis-cli -p "$rport" replicaof 127.0.0.1 "$port" >/dev/null
    while [ "$(redis-cli -p "$rport" dbsize 2>/dev/null)" != "$keys" ] ||
      ! redis-cli -p "$rport" info replication | grep -q '^master_link_status:up'; do
      sleep 0.01
    done
    t1=$(date +%s.%N)
    touch "$dir/stop"
    wait "$probe_pid"
    line="$line | $primary>redis $keys keys $(echo "$t1 - $t0" | bc -l | xargs printf %.2f) s"
    peak=$(awk '/^VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$pid/status")
    line="$line, longest reply $(cat "$dir/longest") ms, primary peak RSS $peak MB"
    kill "$pid" "$rpid"
    wait "$pid" "$rpid" 2>/dev/null || true
    rm -rf "$dir" "$rdir"
  done
  echo "$line"
done
