#!/usr/bin/env bash
# Runs units of Redis 7.0's own test suite (tests/ of Debian's `redis` source package, the
# version WarpEngine answers as) against WarpEngine: src/redis-server in the unpacked source
# is made a link to target/release/warpengine, so every `start_server` of the suite starts
# WarpEngine. Not part of the test command (it takes long and its tests need Redis's own
# internals in places: forked children, AOF files, dict chains); a tool for finding where
# WarpEngine still differs, unit by unit.
#
#   scripts/redis_suite.sh                  the units below
#   scripts/redis_suite.sh unit/type/list   chosen units
#
# Needs: cargo build --release -p warpengine; tclsh (apt-get install tcl); redis-tools; a
# deb-src entry for Debian's archive (added here if missing, which needs root). Logs and a
# summary (ok / err / exception per unit) go to $REDIS_SUITE_DIR (default /tmp/redis-suite).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${REDIS_SUITE_DIR:-/tmp/redis-suite}
bin=$root/target/release/warpengine
[ -x "$bin" ] || { echo "no $bin (cargo build --release -p warpengine)" >&2; exit 1; }
command -v tclsh >/dev/null || { echo "needs tclsh (apt-get install tcl)" >&2; exit 1; }
mkdir -p "$work"
src=$(ls -d "$work"/redis-7.0.* 2>/dev/null | head -1 || true)
if [ -z "$src" ]; then
  if ! grep -rqs '^Types: deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
    sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
      > /etc/apt/sources.list.d/debian-src.sources
    apt-get update -qq
  fi
  (cd "$work" && apt-get source --download-only -qq redis && tar xzf redis_*.orig.tar.gz)
  src=$(ls -d "$work"/redis-7.0.* | head -1)
fi
mkdir -p "$src/src"
ln -sf "$bin" "$src/src/redis-server"
for tool in redis-cli redis-benchmark redis-check-aof; do
  ln -sf "$(command -v "$tool")" "$src/src/$tool"
done
units=("$@")
if [ ${#units[@]} -eq 0 ]; then
  units=(unit/printver unit/dump unit/auth unit/protocol unit/keyspace unit/scan unit/info
    unit/info-command unit/type/string unit/type/incr unit/type/list unit/type/list-2
    unit/type/list-3 unit/type/set unit/type/zset unit/type/hash unit/type/stream
    unit/type/stream-cgroups unit/sort unit/expire unit/other unit/multi unit/quit unit/acl
    unit/acl-v2 unit/latency-monitor unit/pubsub unit/pubsubshard unit/slowlog unit/scripting
    unit/functions unit/maxmemory unit/introspection unit/introspection-2 unit/limits
    unit/bitops unit/bitfield unit/geo unit/hyperloglog unit/lazyfree unit/wait unit/pause
    unit/tracking)
fi
summary=$work/summary.txt
: > "$summary"
cd "$src"
for unit in "${units[@]}"; do
  log=$work/$(echo "$unit" | tr / _).log
  timeout 900 ./runtest --single "$unit" --clients 1 --timeout 120 > "$log" 2>&1 || true
  plain=$(sed 's/\x1b\[[0-9;]*m//g' "$log")
  ok=$(grep -c '^\[ok\]' <<< "$plain" || true)
  err=$(grep -c '^\[err\]' <<< "$plain" || true)
  exc=$(grep -c '^\[exception\]' <<< "$plain" || true)
  timeout_=$(grep -c '^\[TIMEOUT\]' <<< "$plain" || true)
  echo "$unit ok=$ok err=$err exception=$exc timeout=$timeout_" | tee -a "$summary"
done
