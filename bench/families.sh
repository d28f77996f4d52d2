#!/usr/bin/env bash
# Streams, HyperLogLog and GEO against Redis (issue 18's figures): redis-benchmark runs, on
# WarpEngine and on a real redis-server alternately (fresh servers every round), each test after
# the same preparation:
#   xadd        XADD s * f v                       (one growing stream)
#   xrange      XRANGE s - + COUNT 10              (the stream xadd filled)
#   xreadgroup  XREADGROUP GROUP g c COUNT 1 STREAMS s >   (a new entry per call)
#   xack        XACK s g <random id of those delivered>
#   pfadd       PFADD h e:<random>                 (one key, sparse then dense)
#   pfcount3    PFCOUNT h h2 h3                    (three dense keys, merged per call)
#   geoadd      GEOADD g <lon> <lat> m:<random>
#   geosearch   GEOSEARCH g FROMLONLAT 15 37 BYRADIUS 100 km ASC COUNT 10   (10,000 points)
# at pipeline P (16 unless set). Prints ops/s, the server's CPU seconds per million requests, and
# per test the ratio WarpEngine / Redis of the round. Quote medians: this machine is noisy.
#   bench/families.sh [WARPENGINE_BINARY] [rounds]
# Environment: N (requests, 200000), C (clients, 50), P (pipeline, 16), THREADS (WarpEngine
# workers, 2), TESTS (a subset, space-separated).
set -euo pipefail
bin=${1:-target/release/warpengine} rounds=${2:-3}
n=${N:-200000} p=${P:-16}
tests=${TESTS:-xadd xrange xreadgroup xack pfadd pfcount3 geoadd geosearch}
. "$(dirname "$0")/lib.sh"
# Sends the preparation commands (as RESP, through redis-cli --pipe).
prepare() { # port
  python3 - "$n" <<'EOF' | redis-cli -p "$1" --pipe >/dev/null
import random, sys
n = int(sys.argv[1])
rnd = random.Random(18)
out = []
def cmd(*args):
    parts = [str(a).encode() for a in args]
    out.append(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))
# The group's stream holds one entry per XREADGROUP call to come, with IDs 1-0 .. n-0, so
# XACK's random ids (redis-benchmark's __rand_int__ below n) name delivered entries.
for i in range(1, n + 1):
    cmd("XADD", "gs", f"{i}-0", "f", "v")
cmd("XGROUP", "CREATE", "gs", "g", "0")
# XRANGE's stream, so that it has entries whether or not xadd ran before it.
for i in range(1, 1001):
    cmd("XADD", "s", f"{i}-0", "f", "v")
for key in ("h2", "h3"):
    for i in range(0, 20000, 500):
        cmd("PFADD", key, *[f"{key}:{rnd.random()}" for _ in range(500)])
for i in range(0, 10000, 500):
    pts = []
    for j in range(i, i + 500):
        pts += [f"{rnd.uniform(10, 20):.6f}", f"{rnd.uniform(32, 42):.6f}", f"p{j}"]
    cmd("GEOADD", "geo", *pts)
sys.stdout.buffer.write(b"".join(out))
EOF
}
for round in $(seq "$rounds"); do
  declare -A ops=()
  for server in warp redis; do
    port=$((20000 + RANDOM % 10000))
    pid=$(start "$server" "$port")
    for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    prepare "$port"
    line="round $round $server"
    for t in $tests; do
      case $t in
        xadd) args=(XADD s '*' f v) ;;
        xrange) args=(XRANGE s - + COUNT 10) ;;
        xreadgroup) args=(XREADGROUP GROUP g c COUNT 1 STREAMS gs '>') ;;
        xack) args=(XACK gs g "__rand_int__-0") ;;
        pfadd) args=(PFADD h "e:__rand_int__") ;;
        pfcount3) args=(PFCOUNT h h2 h3) ;;
        geoadd) args=(GEOADD g 13.361389 38.115556 "m:__rand_int__") ;;
        geosearch) args=(GEOSEARCH geo FROMLONLAT 15 37 BYRADIUS 100 km ASC COUNT 10) ;;
        *) echo "unknown test $t" >&2; exit 2 ;;
      esac
      read -r rps per_m < <(bench "$port" "$pid" -P "$p" "${args[@]}")
      ops[$server-$t]=$rps
      line="$line | $t $rps ops/s $(printf %.2f "$per_m") CPU s/M"
    done
    echo "$line"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
  done
  line="round $round ratio warp/redis P=$p"
  for t in $tests; do
    line="$line | $t $(echo "${ops[warp-$t]} / ${ops[redis-$t]}" | bc -l | xargs printf %.2f)x"
  done
  echo "$line"
done
