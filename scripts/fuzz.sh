#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for SECONDS (default 20) from
# its seed corpus in tests/fuzz/corpus/<target>. Fails on any crash, leak or timeout.
# New inputs go to a scratch corpus, so the committed seeds stay small. Prints, per
# target, the executions, coverage (edges) and features reached.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]     e.g. scripts/fuzz.sh 600 fuzz_tokenizer
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
shift || true
all=(fuzz_gguf_reader fuzz_pack_index fuzz_tokenizer fuzz_conversation fuzz_cli_args)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all[@]}"); fi

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j"$(nproc)" --target "${targets[@]}"

summary=()
for target in "${targets[@]}"; do
  scratch=$(mktemp -d)
  log="$scratch/log"
  mkdir -p "$scratch/new"
  echo "fuzz: $target for ${seconds}s"
  status=0
  ./build/fuzz/tests/fuzz/$target -max_total_time="$seconds" -max_len=65536 -timeout=10 \
      -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=./build/fuzz/ \
      "$scratch/new" "tests/fuzz/corpus/$target" >"$log" 2>&1 || status=$?
  grep -E "ERROR|SUMMARY" "$log" || true
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" || true)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
  summary+=("$(printf '  %-20s %10s execs  %s' "$target" "${execs:-?}" "${cov:-}")")
  rm -rf "$scratch"
  if [ "$status" -ne 0 ]; then
    echo "fuzz: $target FAILED (exit $status); the crashing input is in build/fuzz/"
    exit 1
  fi
done
printf '%s\n' "${summary[@]}"
echo "fuzz: ${#targets[@]} passed, 0 failed"
