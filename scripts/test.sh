#!/usr/bin/env bash
# Runs WarpEngine's whole test suite: formatting, lints, unit tests, end-to-end tests against
# the real binary, and differential tests against a real redis-server (installed if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need_apt+=(redis-tools)
command -v redis-benchmark >/dev/null 2>&1 || need_apt+=(redis-tools)
# Sentinel, for the failover test (tests/tests/sentinel.rs).
command -v redis-sentinel >/dev/null 2>&1 || need_apt+=(redis-sentinel)
command -v docker-compose >/dev/null 2>&1 || need_apt+=(docker-compose)
# valgrind: bench/icount.sh counts instructions per request (smoke-run by the tests).
command -v valgrind >/dev/null 2>&1 || need_apt+=(valgrind)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${need_apt[*]} with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "missing: ${need_apt[*]} (install them, e.g. apt-get install redis-server redis-tools docker-compose)" >&2
    exit 1
  fi
fi

# redis-py, for the client-library test (tests/clients/redis_py_smoke.py).
python3 -c 'import redis' 2>/dev/null || python3 -m pip install -q --disable-pip-version-check redis
# The Prometheus client library's text parser, for the /metrics test (tests/clients/metrics_scrape.py).
python3 -c 'import prometheus_client' 2>/dev/null || python3 -m pip install -q --disable-pip-version-check prometheus_client
# Node's clients (ioredis, node-redis), for tests/tests/node_clients.rs, as the lock file pins them.
if [ ! -d tests/clients/node/node_modules ]; then
  (cd tests/clients/node && npm ci --no-audit --no-fund --loglevel=error)
fi

echo "== docker-compose.yml"
docker-compose -f docker-compose.yml config -q
docker-compose -f docker-compose.yml --profile cluster config -q

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -q -- -D warnings
echo "== build"
cargo build --workspace --bins -q
# The instruction-count guard (bench/icount_guard.sh, in tests/tests/bench_scripts.rs) measures
# the release build, and so do the benchmark scripts the tests smoke-run (physics.py also runs
# physics-load): build them, and make those tests failures rather than skips without them.
cargo build --release -q -p warpengine -p warpengine-load -p warpengine-socket-spike
export WARP_REQUIRE_GUARD=1
echo "== tests"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --all-targets --no-fail-fast -q 2>&1 | tee "$log" || status=$?
# One closing line over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
# Each fuzz target briefly from its seeds (cargo-fuzz, installed by scripts/fuzz.sh if missing).
./scripts/fuzz_smoke.sh || status=$?
exit "$status"
