#!/usr/bin/env bash
# Lua scripts and functions against Redis: redis-benchmark runs, on WarpEngine and on a real
# redis-server alternately (fresh servers every round), the same small read-modify-write
#   evalsha      EVALSHA of a script on one key (one shard)
#   evalsha-2    the same script's two-key form, keys on two shards ({a}... and {b}...)
#   fcall        FCALL of the same code as a function
# at pipeline 1 and 16. Prints ops/s, the server's CPU seconds per million requests, and per
# test the ratio WarpEngine / Redis of the round. Quote medians: this machine is noisy.
#   bench/scripting.sh [WARPENGINE_BINARY] [rounds]
# Environment: N (requests, 200000), C (clients, 50), THREADS (WarpEngine workers, 2).
set -euo pipefail
bin=${1:-target/release/warpengine} rounds=${2:-3}
n=${N:-200000}
. "$(dirname "$0")/lib.sh"
one='local v = tonumber(redis.call("get", KEYS[1]) or "0") + tonumber(ARGV[1]) redis.call("set", KEYS[1], v) return v'
two='local v = 0 for i = 1, #KEYS do v = v + tonumber(redis.call("get", KEYS[i]) or "0") + tonumber(ARGV[1]) redis.call("set", KEYS[i], v) end return v'
lib="#!lua name=bench
redis.register_function('rmw', function(keys, args) local v = tonumber(redis.call('get', keys[1]) or '0') + tonumber(args[1]) redis.call('set', keys[1], v) return v end)"
for round in $(seq "$rounds"); do
  declare -A ops=()
  for server in warp redis; do
    port=$((20000 + RANDOM % 10000))
    pid=$(start "$server" "$port")
    for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    sha1=$(redis-cli -p "$port" SCRIPT LOAD "$one")
    sha2=$(redis-cli -p "$port" SCRIPT LOAD "$two")
    redis-cli -p "$port" FUNCTION LOAD "$lib" >/dev/null
    line="round $round $server"
    for p in 1 16; do
      for t in evalsha evalsha-2 fcall; do
        case $t in
          evalsha) args=(EVALSHA "$sha1" 1 "key:__rand_int__" 1) ;;
          evalsha-2) args=(EVALSHA "$sha2" 2 "{a}k:__rand_int__" "{b}k:__rand_int__" 1) ;;
          fcall) args=(FCALL rmw 1 "key:__rand_int__" 1) ;;
        esac
        read -r rps per_m < <(bench "$port" "$pid" -P "$p" "${args[@]}")
        ops[$server-$t-$p]=$rps
        line="$line | $t P=$p $rps ops/s $(printf %.2f "$per_m") CPU s/M"
      done
    done
    echo "$line"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
  done
  line="round $round ratio warp/redis"
  for p in 1 16; do
    for t in evalsha evalsha-2 fcall; do
      line="$line | $t P=$p $(echo "${ops[warp-$t-$p]} / ${ops[redis-$t-$p]}" | bc -l | xargs printf %.2f)x"
    done
  done
  echo "$line"
done
