#!/usr/bin/env bash
# Cluster mode's per-slot key queries and what the per-slot index costs a write.
#   bench/cluster_slots.sh [WARPENGINE_BINARY] [rounds]
# Environment: KEYS (keys loaded, 1000000), CALLS (queries timed per command, 200), N (SETs per
# throughput test, 1000000), P (pipeline, 16), C (clients, 50), THREADS (WarpEngine workers, 2),
# ICOUNT=1 adds instructions per SET under callgrind, cluster mode on and off (needs valgrind).
#
# 1. One-node clusters (redis-server 7.0 and WarpEngine, each owning all 16384 slots) loaded with
#    KEYS keys key:0..KEYS-1; then CALLS calls each of CLUSTER COUNTKEYSINSLOT <slot> and
#    CLUSTER GETKEYSINSLOT <slot> 10 over random slots, one at a time: median latency in ms
#    (a round trip on the loopback included, the same for both servers).
# 2. SET throughput and server CPU seconds per million SETs on WarpEngine with cluster mode off
#    and on (-r 1000000: most SETs add a key, so the index is maintained on most of them).
# Rounds alternate the servers. Quote medians: the machine is noisy.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/warpengine} rounds=${2:-3}
keys=${KEYS:-1000000} calls=${CALLS:-200} n=${N:-1000000}
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# A free port whose cluster bus port (+10000) is free too (redis-server refuses a port above 55535).
free_port() {
  python3 -c '
import random, socket
while True:
    p = random.randrange(20000, 50000)
    try:
        for q in (p, p + 10000):
            socket.socket().bind(("127.0.0.1", q))
        print(p)
        break
    except OSError:
        pass'
}
wait_up() {
  for _ in $(seq 300); do redis-cli -p "$1" ping >/dev/null 2>&1 && return; sleep 0.1; done
  echo "no server on port $1" >&2
  exit 1
}

start() { # which(redis|warp|warp-plain) port dir -> pid
  case $1 in
    redis) redis-server --port "$2" --dir "$3" --save '' --appendonly no --cluster-enabled yes >/dev/null 2>&1 & ;;
    warp) "$bin" --port "$2" --dir "$3" --threads "${THREADS:-2}" --cluster-enabled yes >/dev/null 2>&1 & ;;
    warp-plain) "$bin" --port "$2" --dir "$3" --threads "${THREADS:-2}" >/dev/null 2>&1 & ;;
  esac
  echo $!
}

own_every_slot() {
  redis-cli -p "$1" cluster addslotsrange 0 16383 >/dev/null
  for _ in $(seq 100); do
    redis-cli -p "$1" cluster info | grep -q '^cluster_state:ok' && return
    sleep 0.1
  done
  echo "cluster on port $1 never became ok" >&2
  exit 1
}

# KEYS SETs as raw RESP through redis-cli --pipe: exactly KEYS keys, quickly.
load() {
  awk -v n="$keys" 'BEGIN {
    for (i = 0; i < n; i++) { k = "key:" i; printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\nv\r\n", length(k), k }
  }' | redis-cli -p "$1" --pipe >/dev/null
}

# Median ms of CALLS calls of each query (one connection, one call at a time).
queries() {
  python3 - "$1" "$calls" <<'EOF'
import random, socket, statistics, sys, time
port, calls = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
f = s.makefile("rb")
def call(*args):
    s.sendall(b"".join([b"*%d\r\n" % len(args)] + [b"$%d\r\n%s\r\n" % (len(a), a) for a in args]))
    line = f.readline()
    if line[:1] == b"*":
        for _ in range(int(line[1:])):
            f.readline(); f.readline()
    elif line[:1] == b"-":
        raise SystemExit(line.decode())
    return line
rng = random.Random(7)
out = []
for name, args in (("countkeysinslot", lambda s: (b"CLUSTER", b"COUNTKEYSINSLOT", s)),
                   ("getkeysinslot", lambda s: (b"CLUSTER", b"GETKEYSINSLOT", s, b"10"))):
    times = []
    for _ in range(calls):
        slot = str(rng.randrange(16384)).encode()
        t = time.perf_counter()
        call(*args(slot))
        times.append((time.perf_counter() - t) * 1000)
    out.append("%s %.3f ms" % (name, statistics.median(times)))
print(", ".join(out))
EOF
}

for round in $(seq "$rounds"); do
  for which in redis warp; do
    port=$(free_port) dir=$(mktemp -d)
    pid=$(start "$which" "$port" "$dir")
    wait_up "$port"
    own_every_slot "$port"
    load "$port"
    count=$(redis-cli -p "$port" dbsize)
    echo "round $round $which | $count keys | $(queries "$port")"
    kill "$pid"; wait "$pid" 2>/dev/null || true; rm -rf "$dir"
  done
  for which in warp-plain warp; do
    port=$(free_port) dir=$(mktemp -d)
    pid=$(start "$which" "$port" "$dir")
    wait_up "$port"
    [ "$which" = warp ] && own_every_slot "$port"
    before=$(cpu "$pid")
    ops=$(redis-benchmark -p "$port" -t set -n "$n" -r 1000000 -d 64 -P "${P:-16}" -c "${C:-50}" -q 2>/dev/null |
      tr '\r' '\n' | awk '/requests per second/ {print $2; exit}')
    after=$(cpu "$pid")
    label=$([ "$which" = warp ] && echo "cluster on " || echo "cluster off")
    echo "round $round set, $label | $ops ops/s, $(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$n" \
      'BEGIN {printf "%.2f", t / hz / (n / 1000000)}') CPU s/M"
    kill "$pid"; wait "$pid" 2>/dev/null || true; rm -rf "$dir"
  done
done

# Instructions per SET (one worker, as bench/icount_guard.sh counts them), cluster mode off and on.
if [ "${ICOUNT:-0}" = 1 ]; then
  for which in warp-plain warp; do
    port=$(free_port) dir=$(mktemp -d)
    cluster=no
    [ "$which" = warp ] && cluster=yes
    valgrind --tool=callgrind --callgrind-out-file="$dir/cg" "$bin" --port "$port" --dir "$dir" \
      --threads 1 --cluster-enabled "$cluster" >/dev/null 2>"$dir/valgrind.log" &
    vpid=$!
    wait_up "$port"
    [ "$which" = warp ] && own_every_slot "$port"
    callgrind_control -z "$vpid" >/dev/null 2>&1
    redis-benchmark -p "$port" -t set -n 20000 -r 1000000 -d 64 -P 16 -c 4 -q >/dev/null 2>&1
    callgrind_control -d set "$vpid" >/dev/null 2>&1
    file=$(grep -l '^desc: Trigger: dump set$' "$dir"/cg.* | head -1)
    total=$(awk '/^(summary|totals):/ {print $2; exit}' "$file")
    # The index's own share: adding each new key to its slot's list (the key's slot included).
    index=$(callgrind_annotate --inclusive=yes --threshold=100 --auto=no "$file" 2>/dev/null |
      awk '/db::Db::index_slot \[/ && !n++ {gsub(",", "", $1); print $1}')
    echo "icount set (new keys), cluster $cluster | $((total / 20000)) instructions/request, slot index $(( ${index:-0} / 20000 ))"
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    wait "$vpid" 2>/dev/null || true
    rm -rf "$dir"
  done
fi
