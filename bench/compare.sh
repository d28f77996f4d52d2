#!/usr/bin/env bash
# Runs redis-benchmark against a fresh redis-server and a fresh WarpEngine on this machine, in
# turn, several rounds each, and prints median ops/s, the ratio, and each server's CPU seconds
# per million requests (from /proc/PID/stat). Usage: bench/compare.sh [--rounds N] [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p warpengine
exec python3 bench/compare.py "$@"
