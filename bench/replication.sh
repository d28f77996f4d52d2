#!/usr/bin/env bash
# What a replica costs its primary: SET at pipeline 16 (redis-benchmark -c 50 -P 16 -d 64
# -r 1000000) on a primary with no replica and with one attached, for
#   warp         WarpEngine alone
#   warp>redis   WarpEngine with a redis-server replica
#   warp>warp    WarpEngine with a WarpEngine replica
#   redis        redis-server alone
#   redis>redis  redis-server with a redis-server replica
# in turn each round (fresh servers every time). Prints ops/s and the primary's (and replica's)
# CPU seconds per million requests, and per round the ratios with/without a replica for each
# primary. Quote medians: this machine is noisy.
#   bench/replication.sh [WARPENGINE_BINARY] [rounds]
# Environment: N (requests, 1000000), C (clients, 50), THREADS (WarpEngine workers, 2).
set -euo pipefail
bin=${1:-target/release/warpengine} rounds=${2:-3}
n=${N:-1000000}
. "$(dirname "$0")/lib.sh"

up() { # port: waits until the server answers
  for _ in $(seq 100); do redis-cli -p "$1" ping >/dev/null 2>&1 && return; sleep 0.05; done
  echo "no server on port $1" >&2
  exit 1
}

linked() { # replica-port: waits until its link to the primary is up
  for _ in $(seq 200); do
    redis-cli -p "$1" info replication 2>/dev/null | grep -q '^master_link_status:up' && return 0
    sleep 0.05
  done
  return 1
}

for round in $(seq "$rounds"); do
  declare -A ops=()
  for setup in warp warp\>redis warp\>warp redis redis\>redis; do
    primary=${setup%%>*}
    replica=${setup#*>}
    [ "$replica" = "$setup" ] && replica=
    port=$((20000 + RANDOM % 10000))
    pid=$(start "$primary" "$port")
    up "$port"
    rpid=
    if [ -n "$replica" ]; then
      rport=$((port + 1))
      rpid=$(start "$replica" "$rport")
      up "$rport"
      if ! redis-cli -p "$rport" replicaof 127.0.0.1 "$port" 2>&1 | grep -q OK || ! linked "$rport"; then
        echo "round $round $setup | skipped: the replica did not link"
        kill "$pid" "$rpid"
        wait "$pid" "$rpid" 2>/dev/null || true
        continue
      fi
      r0=$(cpu "$rpid")
    fi
    read -r rps per_m < <(bench "$port" "$pid" -P 16 -d 64 -r 1000000 -t set)
    ops[$setup]=$rps
    line="round $round $setup | set P=16 $rps ops/s $(printf %.2f "$per_m") CPU s/M"
    if [ -n "$rpid" ]; then
      r1=$(cpu "$rpid")
      line="$line, replica $(echo "($r1 - $r0) / $(getconf CLK_TCK) * 1000000 / $n" | bc -l | xargs printf %.2f) CPU s/M"
      kill "$rpid"
    fi
    echo "$line"
    kill "$pid"
    wait "$pid" $rpid 2>/dev/null || true
  done
  line="round $round ratio with/without a replica"
  for setup in warp\>redis warp\>warp redis\>redis; do
    alone=${ops[${setup%%>*}]:-}
    with=${ops[$setup]:-}
    [ -n "$alone" ] && [ -n "$with" ] &&
      line="$line | $setup $(echo "$with / $alone" | bc -l | xargs printf %.2f)x"
  done
  echo "$line | warp/redis alone $(echo "${ops[warp]} / ${ops[redis]}" | bc -l | xargs printf %.2f)x"
  unset ops
done
