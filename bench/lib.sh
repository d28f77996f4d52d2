# Shared by the side-by-side benchmark scripts (scripting.sh, families.sh, rdb_load.sh, skew.sh...): start
# a server, wait for it, run one redis-benchmark test against it, read its CPU time, take medians. Expects
# `bin` (the WarpEngine binary) and `n` (requests per test) set by the caller; C (clients, 50) and THREADS
# (workers, 2) from the environment.

# The processes' user + system CPU time, in clock ticks, summed (one pid, or several: a cluster).
cpu() { for p in "$@"; do cat "/proc/$p/stat"; done | awk '{t += $14 + $15} END {print t}'; }

start() { # server port [server-args...] -> pid (WarpEngine or redis-server, in a fresh directory)
  dir=$(mktemp -d)
  if [ "$1" = warp ]; then
    "$bin" --port "$2" --dir "$dir" --threads "${THREADS:-2}" "${@:3}" >/dev/null 2>&1 &
  else
    redis-server --port "$2" --dir "$dir" --save '' --appendonly no "${@:3}" >/dev/null 2>&1 &
  fi
  echo $!
}

# A cluster's first port in [from, to): `count` ports from there, and each one's bus port (+10000),
# that nothing is bound to now. Other benchmark scripts pick their ports at random too (the test
# suite runs them side by side): a base taken as a guess collided with another cluster's bus ports.
free_cluster_base() { # from to count
  python3 - "$@" <<'PY'
import random, socket, sys
lo, hi, count = map(int, sys.argv[1:])
for _ in range(200):
    base = random.randrange(lo, hi)
    try:
        held = []
        for p in range(base, base + count):
            for q in (p, p + 10000):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", q))
                held.append(s)
        print(base)
        break
    except OSError:
        pass
    finally:
        for s in held:
            s.close()
else:
    print(random.randrange(lo, hi))
PY
}

wait_up() { # port: waits (5 s at most) until a server answers there; fails loudly if none does
  for _ in $(seq 50); do redis-cli -p "$1" ping >/dev/null 2>&1 && return; sleep 0.1; done
  echo "no server answers on port $1" >&2
  return 1
}

# The median of the numbers read (blank-separated, any lines).
median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

bench() { # port pids redis-benchmark-args... -> "ops/s CPU-seconds-per-million-requests"
  # (pids: one, or several in one word, "p1 p2 p3", whose CPU times are added up)
  local port=$1 pids=$2
  shift 2
  local c0 c1 rps
  # shellcheck disable=SC2086 # one word, split into the pids
  c0=$(cpu $pids)
  rps=$(redis-benchmark -p "$port" -n "$n" -r 100000 -c "${C:-50}" -q "$@" 2>/dev/null |
    tr '\r' '\n' | awk '/requests per second/ {for (i = 1; i <= NF; i++) if ($i == "requests") v = $(i - 1)} END {print v}')
  # shellcheck disable=SC2086
  c1=$(cpu $pids)
  echo "$rps $(echo "($c1 - $c0) / $(getconf CLK_TCK) * 1000000 / $n" | bc -l)"
}
