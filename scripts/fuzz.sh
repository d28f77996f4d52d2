#!/usr/bin/env bash
# Fuzzes the request parser (RESP multibulk and inline, in random chunkings) with libFuzzer via
# cargo-fuzz. Each input must keep the contract in server/src/protocol/parse_properties.rs:
# progress on every call, allocation bounded by the bytes buffered, and the same requests
# whatever the chunking. A crash, a timeout (a hang) or an out-of-memory is a failure; libFuzzer
# writes the input to fuzz/artifacts/request_parser/, and it becomes a regression case in
# parse_properties.rs.
#
#   scripts/fuzz.sh [RUNS] [more libFuzzer flags]     RUNS defaults to 10,000,000 executions
#   scripts/fuzz.sh 0 -max_total_time=600             ten minutes instead
#   FUZZ_TARGET=restore_payload scripts/fuzz.sh        RESTORE's payload reader instead
#   FUZZ_TARGET=rdb_file scripts/fuzz.sh               whole RDB files (loaded, written, reloaded)
#   FUZZ_TARGET=log_record scripts/fuzz.sh             log segments (decoded and replayed)
#   FUZZ_TARGET=command_path scripts/fuzz.sh           argument vectors through the command table
# FUZZING.md lists the targets and the runs recorded.
#
# The closing "stat::number_of_executed_units" line is the count to record.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10000000}
shift || true

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
# cargo-fuzz passes -Z flags (sanitizers): a nightly toolchain where one is installed; otherwise
# the stable compiler is told to accept them.
toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly)
else
  export RUSTC_BOOTSTRAP=1
fi

root=$(pwd)
# FUZZ_TARGET picks another target of fuzz/fuzz_targets/ (see the usage above).
target=${FUZZ_TARGET:-request_parser}
corpus="$root/fuzz/corpus/$target"
mkdir -p "$corpus"
# Real inputs committed as seeds (RDB files written by redis-server, say) start the corpus.
if [ -d "$root/fuzz/seeds/$target" ]; then
  cp -n "$root/fuzz/seeds/$target"/* "$corpus"/
fi
extra=()
if [ -f "$root/fuzz/$target.dict" ]; then
  extra=(-dict="$root/fuzz/$target.dict")
fi
limit=()
if [ "$runs" != 0 ]; then
  limit=(-runs="$runs")
fi
cd fuzz
# No sanitizer: the parser is safe Rust (no unsafe), and ASan would cost most of the speed.
exec cargo "${toolchain[@]}" fuzz run --sanitizer none "$target" "$corpus" -- \
  "${limit[@]}" "${extra[@]}" -max_len=4096 -timeout=10 \
  -rss_limit_mb=4096 -print_final_stats=1 "$@"
