#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for SECONDS (default 60) from
# its seed corpus in tests/fuzz/corpus/<target>. Fails on any crash, leak or timeout.
# New inputs go to a scratch corpus, so the committed seeds stay small.
# Usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j"$(nproc)" --target fuzz_gguf_reader

targets=(fuzz_gguf_reader)
for target in "${targets[@]}"; do
  scratch=$(mktemp -d)
  log="$scratch/log"
  mkdir -p "$scratch/new"
  echo "fuzz: $target for ${seconds}s"
  status=0
  ./build/fuzz/tests/fuzz/$target -max_total_time="$seconds" -max_len=65536 -timeout=10 \
      -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=./build/fuzz/ \
      "$scratch/new" "tests/fuzz/corpus/$target" >"$log" 2>&1 || status=$?
  grep -E "^stat::(number_of_executed_units|peak_rss_mb)|ERROR|SUMMARY" "$log" || true
  rm -rf "$scratch"
  if [ "$status" -ne 0 ]; then
    echo "fuzz: $target FAILED (exit $status); the crashing input is in build/fuzz/"
    exit 1
  fi
done
echo "fuzz: ${#targets[@]} passed, 0 failed"
