#!/usr/bin/env bash
# Runs the `redis` crate's (redis-rs) own test suite against WarpEngine: the crate's published
# source (the version Cargo.lock names, from cargo's registry) is copied to a work directory,
# given its test support crate (`redis-test`, a path dependency in redis-rs's own workspace,
# left out of the published crate), and run with cargo-nextest (its async tests each need a
# process of their own) with a `redis-server` on PATH that is target/release/warpengine. The
# test support starts its servers (single nodes, clusters made with `redis-cli --cluster
# create`, Sentinel) from that `redis-server`. Not part of the test command: a tool for
# finding where WarpEngine differs, as scripts/redis_suite.sh is for Redis's own suite.
#
#   scripts/redis_rs_suite.sh                 every test
#   scripts/redis_rs_suite.sh -E 'binary(test_cluster)'   nextest's filter expressions
#
# Needs: cargo build --release -p warpengine; cargo-nextest; redis-cli; openssl (TLS tests).
# Work directory: $REDIS_RS_SUITE_DIR (default /tmp/redis-rs-suite).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/target/release/warpengine
[ -x "$bin" ] || { echo "no $bin (cargo build --release -p warpengine)" >&2; exit 1; }
work=${REDIS_RS_SUITE_DIR:-/tmp/redis-rs-suite}
version=$(awk '/^name = "redis"$/ {getline; print $3}' "$root/Cargo.lock" | tr -d '"' | head -1)
[ -n "$version" ] || { echo "no redis crate in Cargo.lock" >&2; exit 1; }
(cd "$root" && cargo fetch -q)
src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/redis-"$version" | head -1)
if [ ! -f "$work/crate/.prepared" ]; then
  rm -rf "$work/crate" && mkdir -p "$work" && cp -r "$src" "$work/crate"
  # The test support crate; redis-test pins tempfile to another patch release than redis's
  # own dev-dependency does: any 3.x serves the tests.
  sed -i 's/^version = "=3\.[0-9.]*"$/version = "3"/' "$work/crate/Cargo.toml"
  cat >> "$work/crate/Cargo.toml" <<'TOML'

[dev-dependencies.redis-test]
version = "0.12"
features = ["aio"]

[patch.crates-io]
redis = { path = "." }
TOML
  touch "$work/crate/.prepared"
fi
mkdir -p "$work/bin"
ln -sf "$bin" "$work/bin/redis-server"
cd "$work/crate"
PATH=$work/bin:$PATH cargo nextest run --no-fail-fast -j 3 \
  --features "tokio-comp,async-std-comp,script,acl,streams,geospatial,connection-manager,cluster,cluster-async,num-bigint" \
  "$@"
