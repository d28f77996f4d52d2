#!/usr/bin/env bash
# Runs redis-py's own test suite (the sdist of one release, from PyPI: it carries tests/) against
# WarpEngine, and, for comparison, against redis-server 7.0 started the same way: a single
# node on port 6379 (the suite's default URL), or with --cluster a cluster of six nodes (three
# primaries, three replicas) on 16379-16384 made by scripts/cluster-local.sh, as redis-py's CI
# runs it. Prints pytest's summary line per server and the tests whose outcome differs. Not
# part of the test command: a tool for finding where WarpEngine differs, as
# scripts/redis_rs_suite.sh and scripts/redis_suite.sh are.
#
#   scripts/redis_py_suite.sh                       sync tests, single node
#   scripts/redis_py_suite.sh --cluster             sync tests, cluster mode
#   scripts/redis_py_suite.sh --asyncio [--cluster] tests/test_asyncio instead
#   scripts/redis_py_suite.sh --cluster -- -k pubsub    what follows -- goes to pytest
#   REDIS_PY_VERSION=5.2.1 (default)   REDIS_PY_SUITE_DIR=/tmp/redis-py-suite (work directory)
#
# Tests needing Redis modules (redismod), TLS, Sentinel or a replica on port 6380 fail or are
# skipped against both servers alike; only the differences matter. Needs: cargo build --release
# -p warpengine; redis-server and redis-cli; python3 with venv and pip.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/target/release/warpengine
[ -x "$bin" ] || { echo "no $bin (cargo build --release -p warpengine)" >&2; exit 1; }
version=${REDIS_PY_VERSION:-5.2.1}
work=${REDIS_PY_SUITE_DIR:-/tmp/redis-py-suite}
cluster=0 asyncio=0
while [ $# -gt 0 ]; do
  case $1 in
    --cluster) cluster=1 ;;
    --asyncio) asyncio=1 ;;
    --) shift; break ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
src=$work/redis-$version
if [ ! -f "$work/.prepared-$version" ]; then
  mkdir -p "$work"
  python3 -m venv "$work/venv"
  "$work/venv/bin/pip" download -q --no-deps --no-binary :all: -d "$work" "redis==$version"
  tar xzf "$work/redis-$version.tar.gz" -C "$work"
  "$work/venv/bin/pip" install -q "$src" pytest==7.4.4 pytest-asyncio==0.23.8 pytest-timeout mock packaging
  # The asyncio cluster tests look for TLS files when collected; the TLS tests themselves
  # are deselected below.
  mkdir -p "$src/dockers/cluster/tls" "$src/dockers/standalone/tls"
  for d in cluster standalone; do
    touch "$src/dockers/$d/tls/"{ca,client,redis}.{crt,key}
  done
  touch "$work/.prepared-$version"
fi

if [ $cluster = 1 ]; then url=redis://localhost:16379/0; else url=redis://localhost:6379/0; fi
tests=(tests --ignore=tests/test_asyncio)
extra=()
if [ $asyncio = 1 ]; then
  tests=(tests/test_asyncio)
  extra=(-p pytest_asyncio --asyncio-mode=auto)
fi
modules=(bloom json search timeseries graph)
ignores=()
for m in "${modules[@]}"; do
  ignores+=("--ignore=${tests[0]}/test_$m.py")
done
ignores+=("--ignore=tests/test_graph_utils")

start() { # server -> started (single node on 6379, or the cluster on 16379...)
  if [ $cluster = 1 ]; then
    CLUSTER_SERVER=$1 CLUSTER_DIR=$work/cluster "$root/scripts/cluster-local.sh" start 6 16379 --replicas 1 >/dev/null
  else
    rm -rf "$work/node" && mkdir -p "$work/node"
    case $1 in
      redis-server) redis-server --port 6379 --dir "$work/node" --save '' --enable-debug-command yes \
        --daemonize no >"$work/node/log" 2>&1 & ;;
      *) "$1" --port 6379 --dir "$work/node" --enable-debug-command yes >"$work/node/log" 2>&1 & ;;
    esac
    echo $! >"$work/node/pid"
    for _ in $(seq 100); do redis-cli -p 6379 ping >/dev/null 2>&1 && return; sleep 0.1; done
    echo "$1 did not start on 6379" >&2; exit 1
  fi
}
stop() {
  if [ $cluster = 1 ]; then
    CLUSTER_DIR=$work/cluster "$root/scripts/cluster-local.sh" stop 16379 >/dev/null 2>&1 || true
  else
    kill "$(cat "$work/node/pid")" 2>/dev/null || true
    sleep 0.5
  fi
}
suffix=
[ $cluster = 1 ] && suffix+=-cluster
[ $asyncio = 1 ] && suffix+=-asyncio
if redis-cli -p 6379 ping >/dev/null 2>&1; then echo "port 6379 is in use" >&2; exit 1; fi
trap stop EXIT
for server in redis-server "$bin"; do
  name=$(basename "$server")
  log=$work/$name$suffix.log
  start "$server"
  (cd "$src" && timeout 3000 "$work/venv/bin/pytest" "${tests[@]}" "${ignores[@]}" "${extra[@]}" \
    -m "not redismod and not ssl" --redis-url="$url" -p no:cacheprovider -v -rfE --timeout 30 "$@" \
    >"$log" 2>&1) || true
  stop
  echo "$name: $(grep -E '^=+ .*(passed|failed).* in ' "$log" | tail -1)"
  grep -E '(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) +\[' "$log" | sed -E 's/ +\[ *[0-9]+%\]$//' |
    awk '{print $1, $2}' | sort >"$log.outcomes"
done
echo "outcomes that differ (redis-server -> warpengine):"
join "$work/redis-server$suffix.log.outcomes" "$work/warpengine$suffix.log.outcomes" |
  awk '$2 != $3 {print "  " $2 " -> " $3 "  " $1}'
