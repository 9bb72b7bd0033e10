#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for SECONDS (default 20) from
# its seed corpus in tests/fuzz/corpus/<target>. Fails on any crash, leak or timeout.
# New inputs go to a scratch corpus, so the committed seeds stay small. Targets run in
# parallel, one per core. Prints, per target, the executions, coverage (edges) and
# features reached.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]     e.g. scripts/fuzz.sh 600 fuzz_tokenizer
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
shift || true
all=(fuzz_gguf_reader fuzz_pack_index fuzz_tokenizer fuzz_conversation fuzz_cli_args fuzz_api_request
     fuzz_saved_sequence)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all[@]}"); fi

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j"$(nproc)" --target "${targets[@]}"

# One target: its summary line goes to $2, and a failure names the target.
fuzz_one() {  # TARGET SUMMARY_FILE
  local target=$1 out=$2 scratch log status=0 execs cov
  scratch=$(mktemp -d)
  log="$scratch/log"
  mkdir -p "$scratch/new"
  echo "fuzz: $target for ${seconds}s"
  # A saved V4 sequence is ~250 KB (its compressors' pending windows).
  local max_len=65536
  [ "$target" = fuzz_saved_sequence ] && max_len=300000
  ./build/fuzz/tests/fuzz/$target -max_total_time="$seconds" -max_len="$max_len" -timeout=10 \
      -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=./build/fuzz/ \
      "$scratch/new" "tests/fuzz/corpus/$target" >"$log" 2>&1 || status=$?
  grep -E "ERROR|SUMMARY" "$log" || true
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" || true)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
  printf '  %-20s %10s execs  %s\n' "$target" "${execs:-?}" "${cov:-}" >"$out"
  rm -rf "$scratch"
  if [ "$status" -ne 0 ]; then
    echo "fuzz: $target FAILED (exit $status); the crashing input is in build/fuzz/"
    return 1
  fi
}

# The targets run side by side, one per core.
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
pids=()
failed=0
for i in "${!targets[@]}"; do
  fuzz_one "${targets[$i]}" "$results/$i" &
  pids+=($!)
  if [ "${#pids[@]}" -ge "$(nproc)" ]; then
    wait "${pids[0]}" || failed=1
    pids=("${pids[@]:1}")
  fi
done
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
[ "$failed" -eq 0 ] || exit 1
for i in "${!targets[@]}"; do cat "$results/$i"; done
echo "fuzz: ${#targets[@]} passed, 0 failed"
