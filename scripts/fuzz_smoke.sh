#!/usr/bin/env bash
# The fuzz targets' smoke check, run by scripts/test.sh: each target of fuzz/fuzz_targets/ runs
# for a few seconds (FUZZ_SMOKE_SECONDS, 10) from its seeds and corpus, through scripts/fuzz.sh.
# A crash, a hang or an out-of-memory fails it, as in a long run (FUZZING.md); the long runs
# that count executions are by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SMOKE_SECONDS:-10}
for file in fuzz/fuzz_targets/*.rs; do
  target=$(basename "$file" .rs)
  echo "== fuzz smoke: $target (${seconds} s)"
  log=$(mktemp)
  if ! FUZZ_TARGET=$target scripts/fuzz.sh 0 -max_total_time="$seconds" >"$log" 2>&1; then
    tail -40 "$log" >&2
    rm -f "$log"
    echo "fuzz smoke: $target failed (its input is in fuzz/artifacts/$target/)" >&2
    exit 1
  fi
  grep -E "stat::number_of_executed_units" "$log" | sed "s/^/  $target: /" || true
  rm -f "$log"
done
