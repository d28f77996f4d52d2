#!/usr/bin/env bash
# A Redis Cluster of local nodes, made the way users make one: N servers with cluster mode on,
# joined by `redis-cli --cluster create`.
#
#   scripts/cluster-local.sh start N BASEPORT [--replicas R]
#       starts N nodes on 127.0.0.1:BASEPORT .. BASEPORT+N-1 (cluster bus: port+10000), each in
#       its own directory (nodes.conf, log), creates the cluster with R replicas per primary
#       (N/(R+1) primaries, at least 3), and returns once `redis-cli --cluster check` is clean,
#       every node knows all N and says cluster_state:ok, and every replica's link is up and
#       CLUSTER SLOTS lists it. On failure: the nodes' last log lines, the nodes stopped, exit 1.
#   scripts/cluster-local.sh add BASEPORT
#       starts one more node (same server, next port after the cluster's), joins it with
#       `redis-cli --cluster add-node` as a primary without slots (for `redis-cli --cluster
#       rebalance --cluster-use-empty-masters` or `reshard`), waits as `start` does, prints its port.
#   scripts/cluster-local.sh remove BASEPORT PORT
#       `redis-cli --cluster del-node` of the node on PORT (it must own no slot), then stops it
#       and removes its files.
#   scripts/cluster-local.sh stop BASEPORT
#       stops the nodes started with that BASEPORT (TERM, then KILL) and removes their files.
#
# Environment:
#   CLUSTER_SERVER        the server binary: a path or a name on PATH (`redis-server`); default
#                         WarpEngine's target/release/warpengine, else target/debug/warpengine,
#                         else built with `cargo build --release -p warpengine`. Several, comma-
#                         separated, make a mixed cluster: node i runs the (i mod count)th
#                         (`redis-server,target/release/warpengine`; an empty entry: WarpEngine)
#   CLUSTER_NODE_TIMEOUT  cluster-node-timeout in ms (5000)
#   CLUSTER_THREADS       WarpEngine's --threads (1: N nodes share this machine's cores)
#   CLUSTER_DIR           where the nodes' directories go (${TMPDIR:-/tmp}/warp-cluster-BASEPORT)
#   CLUSTER_TIMEOUT       seconds allowed for the whole start (60)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

state_dir() { echo "${CLUSTER_DIR:-${TMPDIR:-/tmp}/warp-cluster-$1}"; }

server_binary() { # [name]: its path; without a name, WarpEngine's
  if [ -n "${1:-}" ]; then
    command -v "$1" || { echo "no server binary $1" >&2; exit 1; }
    return
  fi
  for b in "$root/target/release/warpengine" "$root/target/debug/warpengine"; do
    [ -x "$b" ] && { echo "$b"; return; }
  done
  echo "building WarpEngine (cargo build --release -p warpengine)" >&2
  (cd "$root" && cargo build --release -q -p warpengine) >&2
  echo "$root/target/release/warpengine"
}

# Runs redis-cli with a deadline, so that a node that stopped answering cannot hang the script.
cli() { timeout 10 redis-cli "$@"; }

node_ports() { # dir -> the ports of the nodes started there
  local d
  for d in "$1"/node-*; do [ -d "$d" ] && echo "${d##*/node-}"; done
}

stop() { # base [port]: the nodes of the cluster at base, or only the one on port
  local base=$1 dir pids=() port pid
  dir=$(state_dir "$base")
  [ -d "$dir" ] || return 0
  for port in ${2:-$(node_ports "$dir")}; do
    pid=$(cat "$dir/node-$port/pid" 2>/dev/null) || continue
    # Only a process still serving this node: the pid may be gone (a test's kill -9) and reused.
    if tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q -- "$port"; then
      kill "$pid" 2>/dev/null && pids+=("$pid")
    fi
  done
  for _ in $(seq 100); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.05
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  if [ -n "${2:-}" ]; then
    rm -rf "$dir/node-$2"
  else
    rm -rf "$dir"
  fi
}

start_node() { # binary dir port
  local bin=$1 dir=$2 port=$3 d=$2/node-$3
  mkdir -p "$d"
  local args=(--port "$port" --bind 127.0.0.1 --dir "$d" --cluster-enabled yes
    --cluster-config-file nodes.conf --cluster-node-timeout "${CLUSTER_NODE_TIMEOUT:-5000}"
    --save '' --appendonly no --daemonize no
    # Replicas sync at once (Redis would wait 5 s for more replicas to share a diskless sync),
    # and their offset moves within a second even with no writes: CLUSTER SLOTS lists a replica
    # only once its offset is not 0.
    --repl-diskless-sync-delay 0 --repl-ping-replica-period 1)
  case "$(basename "$bin")" in
    redis-server*) ;;
    *) args+=(--threads "${CLUSTER_THREADS:-1}") ;;
  esac
  # setsid: the node outlives this script and a terminal's Ctrl-C; `stop` ends it.
  setsid "$bin" "${args[@]}" >"$d/log" 2>&1 </dev/null &
  echo $! >"$d/pid"
}

fail() { # base message [port]: show why, stop what was started (the cluster, or the node on port), exit 1
  local base=$1 dir port
  dir=$(state_dir "$1")
  echo "cluster-local: $2" >&2
  for port in ${3:-$(node_ports "$dir")}; do
    echo "--- node $port: last lines of $dir/node-$port/log" >&2
    tail -n 15 "$dir/node-$port/log" >&2 || true
  done
  stop "$base" "${3:-}"
  exit 1
}

left() { # deadline: seconds until it, at least 1 (`timeout 0` would mean no limit)
  local s=$(($1 - SECONDS))
  echo $((s > 1 ? s : 1))
}

answering() { # base port deadline [port]: waits until the node answers PING (failing: see fail)
  local dir
  dir=$(state_dir "$1")
  until cli -p "$2" ping 2>/dev/null | grep -q PONG; do
    kill -0 "$(cat "$dir/node-$2/pid")" 2>/dev/null || fail "$1" "node $2 exited" "${4:-}"
    [ "$SECONDS" -lt "$3" ] || fail "$1" "node $2 did not answer" "${4:-}"
    sleep 0.05
  done
}

settled() { # base n deadline: waits until `ready`
  local port
  until ready "$(state_dir "$1")" "$2" "$1"; do
    [ "$SECONDS" -lt "$3" ] || fail "$1" "the cluster did not settle ($2 nodes expected):
$(for port in $(node_ports "$(state_dir "$1")"); do
      echo "node $port: $(cli -p "$port" cluster info 2>&1 | tr -d '\r' |
        grep -E 'cluster_state|cluster_known_nodes' | xargs)"
      cli -p "$port" cluster nodes 2>&1
    done)
$(timeout 10 redis-cli --cluster check "127.0.0.1:$1" 2>&1)"
    sleep 0.2
  done
}

ready() { # dir n base: whether the cluster is created and settled
  local dir=$1 n=$2 base=$3 port info check serving roles first_roles= seen=0
  for port in $(node_ports "$dir"); do
    # Every node knows every replica as the replica of its primary: a node that has not heard
    # of a REPLICATE yet lists that replica as a primary without slots, and a client asking it
    # would not know that replica. (A replica knows its own role at once.)
    roles=$(cli -p "$port" cluster nodes 2>/dev/null | awk '$3 ~ /slave/ {print $1, $4}' | sort) || return 1
    [ "$seen" = 1 ] || { first_roles=$roles; seen=1; }
    [ "$roles" = "$first_roles" ] || return 1
    info=$(cli -p "$port" cluster info 2>/dev/null | tr -d '\r') || return 1
    grep -qx 'cluster_state:ok' <<<"$info" || return 1
    grep -qx "cluster_known_nodes:$n" <<<"$info" || return 1
    # A replica that never synced would refuse to be promoted (its data would be too old).
    info=$(cli -p "$port" info replication 2>/dev/null | tr -d '\r') || return 1
    grep -qx 'role:slave' <<<"$info" && ! grep -qx 'master_link_status:up' <<<"$info" && return 1
    # CLUSTER SLOTS leaves a replica out until it has reported a replication offset; clients
    # that read it (redis-py) would not know that replica yet. (Primaries without slots are
    # not in it either; a node serving several ranges is in it several times.)
    serving=$(cli -p "$port" cluster nodes 2>/dev/null | awk '$3 ~ /slave/ || NF > 8' | wc -l)
    [ "$(cli -p "$port" cluster slots 2>/dev/null | grep -E '^[0-9a-f]{40}$' | sort -u | wc -l)" \
      = "$serving" ] || return 1
  done
  check=$(timeout 20 redis-cli --cluster check "127.0.0.1:$base" 2>&1) || return 1
  grep -q '\[OK\] All 16384 slots covered' <<<"$check" && ! grep -qE '\[ERR\]|\[WARNING\]' <<<"$check"
}

start() {
  local n=$1 base=$2 replicas=$3 dir port deadline addrs=()
  [ "$n" -ge $((3 * (replicas + 1))) ] ||
    { echo "cluster-local: $n nodes cannot make 3 primaries with $replicas replicas each" >&2; exit 2; }
  deadline=$((SECONDS + ${CLUSTER_TIMEOUT:-60}))
  dir=$(state_dir "$base")
  [ -e "$dir" ] && { echo "cluster-local: $dir exists (stop $base first)" >&2; exit 1; }
  # One binary per entry of CLUSTER_SERVER; node i runs entry i modulo their number.
  local bins=() name bin
  while IFS= read -r -d, name; do
    bin=$(server_binary "$name") || exit 1
    bins+=("$bin")
  done < <(printf '%s,' "${CLUSTER_SERVER:-}")
  mkdir -p "$dir"
  printf '%s\n' "${bins[@]}" >"$dir/servers"
  for port in $(seq "$base" $((base + n - 1))); do
    start_node "${bins[$(((port - base) % ${#bins[@]}))]}" "$dir" "$port"
    addrs+=("127.0.0.1:$port")
  done
  for port in $(seq "$base" $((base + n - 1))); do
    answering "$base" "$port" "$deadline"
  done
  local out
  if ! out=$(timeout "$(left "$deadline")" redis-cli --cluster create "${addrs[@]}" \
    --cluster-replicas "$replicas" --cluster-yes 2>&1); then
    fail "$base" "redis-cli --cluster create failed:
$out"
  fi
  settled "$base" "$n" "$deadline"
  local servers
  servers=$(for bin in "${bins[@]}"; do basename "$bin"; done | xargs)
  echo "cluster ready: ${addrs[*]} ($servers, $replicas replicas per primary, files in $dir)"
}

add() {
  local base=$1 dir port deadline out
  deadline=$((SECONDS + ${CLUSTER_TIMEOUT:-60}))
  dir=$(state_dir "$base")
  [ -f "$dir/servers" ] || { echo "cluster-local: no cluster started at $base" >&2; exit 1; }
  port=$base
  while [ -e "$dir/node-$port" ]; do port=$((port + 1)); done
  local bins=()
  mapfile -t bins <"$dir/servers"
  start_node "${bins[$(((port - base) % ${#bins[@]}))]}" "$dir" "$port"
  answering "$base" "$port" "$deadline" "$port"
  if ! out=$(timeout "$(left "$deadline")" redis-cli --cluster add-node "127.0.0.1:$port" \
    "127.0.0.1:$base" 2>&1); then
    fail "$base" "redis-cli --cluster add-node failed:
$out" "$port"
  fi
  settled "$base" "$(node_ports "$dir" | wc -l)" "$deadline"
  echo "$port"
}

remove() {
  local base=$1 port=$2 id out
  id=$(cli -p "$port" cluster myid) || { echo "cluster-local: no node on $port" >&2; exit 1; }
  if ! out=$(timeout 60 redis-cli --cluster del-node "127.0.0.1:$base" "$id" 2>&1); then
    echo "cluster-local: redis-cli --cluster del-node failed:
$out" >&2
    exit 1
  fi
  stop "$base" "$port"
  settled "$base" "$(node_ports "$(state_dir "$base")" | wc -l)" $((SECONDS + ${CLUSTER_TIMEOUT:-60}))
}

case "${1:-}" in
  start)
    [ $# -eq 3 ] || [ $# -eq 5 ] || usage
    replicas=0
    if [ $# -eq 5 ]; then
      [ "$4" = --replicas ] || usage
      replicas=$5
    fi
    start "$2" "$3" "$replicas"
    ;;
  add)
    [ $# -eq 2 ] || usage
    add "$2"
    ;;
  remove)
    [ $# -eq 3 ] || usage
    remove "$2" "$3"
    ;;
  stop)
    [ $# -eq 2 ] || usage
    stop "$2"
    ;;
  *) usage ;;
esac
