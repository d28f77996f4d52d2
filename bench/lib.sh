# Shared by the side-by-side benchmark scripts (scripting.sh, families.sh, rdb_load.sh): start a server, run
# one redis-benchmark test against it, read its CPU time. Expects `bin` (the WarpEngine binary)
# and `n` (requests per test) set by the caller; C (clients, 50) and THREADS (workers, 2) from
# the environment.

# The process's user + system CPU time, in clock ticks.
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }

start() { # server port -> pid (WarpEngine or redis-server, in a fresh directory)
  dir=$(mktemp -d)
  if [ "$1" = warp ]; then
    "$bin" --port "$2" --dir "$dir" --threads "${THREADS:-2}" >/dev/null 2>&1 &
  else
    redis-server --port "$2" --dir "$dir" --save '' --appendonly no >/dev/null 2>&1 &
  fi
  echo $!
}

bench() { # port pid redis-benchmark-args... -> "ops/s CPU-seconds-per-million-requests"
  local port=$1 pid=$2
  shift 2
  local c0 c1 rps
  c0=$(cpu "$pid")
  rps=$(redis-benchmark -p "$port" -n "$n" -r 100000 -c "${C:-50}" -q "$@" 2>/dev/null |
    tr '\r' '\n' | awk '/requests per second/ {for (i = 1; i <= NF; i++) if ($i == "requests") v = $(i - 1)} END {print v}')
  c1=$(cpu "$pid")
  echo "$rps $(echo "($c1 - $c0) / $(getconf CLK_TCK) * 1000000 / $n" | bc -l)"
}
