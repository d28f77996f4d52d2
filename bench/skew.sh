#!/usr/bin/env bash
# Issue 22's skew benchmark: a Zipf-skewed load (physics-load zipf: GETs and SETs of KEYS keys
# drawn by Zipf(EXPONENT), pipelines of P commands from CLIENTS connections) against a real
# redis-server and WarpEngine variants, variant after variant within a round, a fresh server per
# run: fill every key (physics-load zipf --setup), send the variant's command, WARMUP seconds of
# the load unmeasured (time for GRAVITY to see the hot keys), the variant's second command, then
# SECONDS measured. Per run: ops/s, p99 latency of a pipeline (not of one command), the server's
# CPU seconds per million requests (utime+stime of every thread), and the CPU of each worker
# thread over the measured window in cores (CPU seconds per second): WarpEngine's
# warp-worker-N threads with their busiest over their mean, Redis's main thread; for WarpEngine
# also its own view, INFO physics' entropy_busiest_to_mean, read in the middle of the window.
# Then per variant the medians over the rounds, and ratios to Redis and to plain WarpEngine.
# The load generator shares the machine's cores with the server: compare within one run.
#   bench/skew.sh [WARPENGINE_BINARY] [rounds]
# Environment: VARIANTS (default "redis warp warp+replicate"; see `variant` below), EXPONENT
# (1.2), KEYS (1000000), GET_SHARE (0.9), P (16), CLIENTS (8), SECONDS (10), WARMUP (2),
# SLOTS (0: keys in every slot; N: every key in one of N hash slots, to concentrate the load),
# SLOTS_BELOW (16384; with SLOTS, those slots are below it: 8192 puts them all on the first of
# two workers), VALUE_SIZE (64), THREADS (WarpEngine workers, 2), LOAD (the physics-load binary), and for the
# warp+on variant ON_ARGS (server arguments) and ON_CMD (a command sent after the fill).
set -euo pipefail
bin=${1:-target/release/warpengine} rounds=${2:-3}
here=$(dirname "$0")
load=${LOAD:-$here/../target/release/physics-load}
variants=${VARIANTS:-redis warp warp+replicate}
# SECONDS is bash's own clock (seconds since the shell started, counting on from a value taken
# from the environment): the knob is its value in the environment, if there is one.
secs=$(printenv SECONDS || echo 10) warmup=${WARMUP:-2}
. "$here/lib.sh"
[ -x "$load" ] || { echo "skew.sh: no load tool at $load (cargo build --release -p warpengine-load)" >&2; exit 1; }

# A variant: which server (`kind`), its extra arguments, a redis-cli command sent after the
# fill and one after the warm-up. Adding one is a line here. A command that fails (an error
# reply: an unknown command) stops the script, so that a variant whose command does not exist
# yet is never measured as plain WarpEngine under its name.
variant() {
  kind=warp server_args=() after_fill="" after_warmup=""
  case $1 in
    redis) kind=redis ;;
    warp) ;;
    # GRAVITY: serve the hot keys (found by the sketch during the warm-up) from every worker.
    warp+replicate) after_fill="GRAVITY REPLICATE AUTO" ;;
    # ENTROPY: move hash slots off the busiest worker once the warm-up has shown the rates.
    warp+rebalance) after_warmup="ENTROPY REBALANCE" ;;
    warp+nosketch) server_args=(--gravity-sketch no) ;;
    warp+on)
      read -ra server_args <<<"${ON_ARGS:-}"
      after_fill=${ON_CMD:?the warp+on variant needs ON_CMD}
      ;;
    *)
      echo "skew.sh: unknown variant $1" >&2
      exit 2
      ;;
  esac
}

pid="" lpid="" sdir=""
cleanup() {
  # (Under set -e a failing command ends the handler: one process already gone must not keep
  # the others from being stopped.)
  if [ -n "$lpid" ]; then kill "$lpid" 2>/dev/null || true; fi
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  if [ -n "$sdir" ]; then rm -rf "$sdir"; fi
  return 0
}
trap cleanup EXIT
trap 'echo "skew.sh: stopped by a failure at line $LINENO" >&2' ERR

send() { # port command-words: an error reply (redis-cli -e exits non-zero) stops the script
  local out
  # shellcheck disable=SC2086 # the command's words
  if ! out=$(redis-cli -e -p "$1" $2 2>&1); then
    echo "skew.sh: variant $v: '$2' failed: $out" >&2
    exit 1
  fi
}

# Every thread of a process: "tid comm ticks" (user+system clock ticks; blanks in the thread's
# name become _, the name being what stands between the first '(' and the last ')').
threads() {
  cat /proc/"$1"/task/*/stat 2>/dev/null | awk '{
    o = index($0, "("); c = 0
    for (i = length($0); i > 0; i--) if (substr($0, i, 1) == ")") { c = i; break }
    name = substr($0, o + 1, c - o - 1); gsub(/ /, "_", name)
    split(substr($0, c + 2), f, " ")
    print $1, name, f[12] + f[13]
  }'
}

# The threads' CPU between two `threads` snapshots, in cores over `elapsed` seconds: the worker
# threads of WarpEngine (warp-worker-N) or the main thread of Redis (its tid is its pid), as
# "name cores" pairs, then "busiest/mean R" over those threads.
worker_cores() { # before after kind pid elapsed
  awk -v kind="$3" -v pid="$4" -v elapsed="$5" -v hz="$(getconf CLK_TCK)" '
    FNR == NR { t0[$1] = $3; next }
    (kind == "warp" && $2 ~ /^warp-worker/) || (kind == "redis" && $1 == pid) {
      c = ($3 - t0[$1]) / hz / elapsed
      out = out sprintf("%s %.2f ", (kind == "redis" ? "main" : $2), c)
      n++; sum += c; if (c > max) max = c
    }
    END { printf "%sbusiest/mean %.2f\n", out, (sum > 0 ? max / (sum / n) : 0) }
  ' <(echo "$1") <(echo "$2")
}

field() { grep -o "\b$1=[^ ]*" | head -1 | cut -d= -f2; } # name <<< line -> value

zipf_args=(--keys "${KEYS:-1000000}" --exponent "${EXPONENT:-1.2}" --get-share "${GET_SHARE:-0.9}"
  --pipeline "${P:-16}" --clients "${CLIENTS:-8}" --value-size "${VALUE_SIZE:-64}"
  --slots "${SLOTS:-0}" --slots-below "${SLOTS_BELOW:-16384}")
echo "skew: ${zipf_args[*]} seconds=$secs warmup=$warmup threads=${THREADS:-2} variants=\"$variants\""
declare -A ops=() p99=() cpum=() bmean=() wcores=()
for round in $(seq "$rounds"); do
  for v in $variants; do
    variant "$v"
    # Below the kernel's ephemeral ports (32768 up), which the clients' own ends may hold.
    port=$((30000 + RANDOM % 2768))
    # Called in this shell (not as $(start ...)) so that $! and start's $dir stay here.
    start "$kind" "$port" "${server_args[@]}" >/dev/null
    pid=$! sdir=$dir
    wait_up "$port"
    "$load" zipf --port "$port" "${zipf_args[@]}" --setup --seconds 0
    [ -n "$after_fill" ] && send "$port" "$after_fill"
    [ "$warmup" -gt 0 ] && "$load" zipf --port "$port" "${zipf_args[@]}" --seconds "$warmup" >/dev/null
    [ -n "$after_warmup" ] && send "$port" "$after_warmup"
    c0=$(cpu "$pid") t0=$(threads "$pid")
    out=$(mktemp)
    "$load" zipf --port "$port" "${zipf_args[@]}" --seconds "$secs" >"$out" &
    lpid=$!
    entropy=""
    if [ "$kind" = warp ]; then
      sleep "$(echo "$secs / 2" | bc -l)"
      entropy=" | entropy busiest/mean $(redis-cli -p "$port" INFO physics |
        tr -d '\r' | awk -F: '/^entropy_busiest_to_mean:/ {print $2}')"
    fi
    wait "$lpid"
    lpid=""
    c1=$(cpu "$pid") t1=$(threads "$pid")
    line=$(<"$out")
    rm -f "$out"
    n=$(field ops <<<"$line") rps=$(field ops_per_s <<<"$line") lat=$(field p99_us <<<"$line")
    elapsed=$(echo "$n / $rps" | bc -l)
    per_m=$(echo "($c1 - $c0) / $(getconf CLK_TCK) * 1000000 / $n" | bc -l)
    workers=$(worker_cores "$t0" "$t1" "$kind" "$pid" "$elapsed")
    slots=""
    [ "${SLOTS:-0}" -gt 0 ] &&
      slots=" | slots $(field slots <<<"$line") requests' shares $(field slot_shares <<<"$line")"
    echo "round $round $v | $rps ops/s p99 $lat us | $(printf %.3f "$per_m") CPU s/M |" \
      "hits $(field hits <<<"$line") misses $(field misses <<<"$line") | draw $(field draw_ns <<<"$line") ns |" \
      "cores $workers$entropy$slots"
    ops[$v]="${ops[$v]:-} $rps" p99[$v]="${p99[$v]:-} $lat" cpum[$v]="${cpum[$v]:-} $per_m"
    bmean[$v]="${bmean[$v]:-} ${workers##* }"
    # Per thread name: "name:cores" words, for the medians per worker.
    wcores[$v]="${wcores[$v]:-} $(awk '{for (i = 1; i < NF - 1; i += 2) printf "%s:%s ", $i, $(i + 1)}' <<<"$workers")"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=""
    rm -rf "$sdir"
    sdir=""
  done
done

ratio() { if [ -n "$2" ]; then echo "$1 / $2" | bc -l | xargs printf %.2fx; else echo n/a; fi; }
declare -A mops=() mp99=() mcpu=()
for v in $variants; do
  mops[$v]=$(median <<<"${ops[$v]}") mp99[$v]=$(median <<<"${p99[$v]}") mcpu[$v]=$(median <<<"${cpum[$v]}")
  per_worker=""
  for name in $(tr ' ' '\n' <<<"${wcores[$v]}" | grep . | cut -d: -f1 | sort -u); do
    per_worker+="$name $(tr ' ' '\n' <<<"${wcores[$v]}" | grep "^$name:" | cut -d: -f2 | median) "
  done
  echo "median $v | ${mops[$v]} ops/s p99 ${mp99[$v]} us | $(printf %.3f "${mcpu[$v]}") CPU s/M |" \
    "cores ${per_worker}busiest/mean $(median <<<"${bmean[$v]}")"
done
# Every variant against Redis, and the WarpEngine variants against plain WarpEngine.
for v in $variants; do
  for base in redis warp; do
    [[ "$v" == "$base" || "$v" == redis ]] && continue
    [[ " $variants " == *" $base "* ]] || continue
    echo "$v/$base | ops/s $(ratio "${mops[$v]}" "${mops[$base]}") p99 $(ratio "${mp99[$v]}" "${mp99[$base]}")" \
      "CPU per request $(ratio "${mcpu[$v]}" "${mcpu[$base]}")"
  done
done
