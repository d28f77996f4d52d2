#!/usr/bin/env bash
# Compares the pure Lua cjson / cmsgpack / struct modules (run under lua5.1)
# with the C libraries bundled in a real Redis 7.0 (run through redis-cli
# EVAL).  Every line of *_cases.txt is one case; see compare.lua.
#
# usage: tests/run.sh [casefile...]      (default: all *_cases.txt)
# env:   REDIS_PORT (default 7055), VERBOSE=1 to print every case.
#
# Needs lua5.1, redis-server and redis-cli (Debian: apt-get install -y
# lua5.1 redis-server; run as root this script installs them itself).
# Uses a Redis already listening on REDIS_PORT, otherwise starts one and
# stops it again at exit.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
moddir="$(dirname "$here")"
port="${REDIS_PORT:-7055}"

if ! command -v lua5.1 >/dev/null || ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing lua5.1 and redis-server..."
        apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lua5.1 redis-server >/dev/null
    fi
fi
for tool in lua5.1 redis-server redis-cli; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y lua5.1 redis-server)"; exit 2; }
done

started=0
if ! redis-cli -p "$port" ping >/dev/null 2>&1; then
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "${TMPDIR:-/tmp}" --daemonize yes >/dev/null || { echo "cannot start redis-server"; exit 2; }
    started=1
    for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
cleanup() { [ "$started" = 1 ] && redis-cli -p "$port" shutdown nosave >/dev/null 2>&1; }
trap cleanup EXIT

echo "reference: $(redis-cli -p "$port" info server | grep -E '^redis_version' | tr -d '\r')"

if [ $# -gt 0 ]; then
    files=("$@")
else
    files=("$here"/cjson_cases.txt "$here"/cmsgpack_cases.txt "$here"/struct_cases.txt)
fi
lua5.1 "$here/compare.lua" "$moddir" "$port" "${files[@]}"
status=$?

if [ $# -eq 0 ]; then
    echo
    echo "known differences (expected to differ, not counted):"
    KNOWN=1 lua5.1 "$here/compare.lua" "$moddir" "$port" "$here/known_differences.txt" | sed 's/^/    /'
fi
exit $status
