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

for target in fuzz_gguf_reader; do
  scratch=$(mktemp -d)
  echo "fuzz: $target for ${seconds}s"
  ./build/fuzz/tests/fuzz/$target -max_total_time="$seconds" -max_len=65536 -timeout=10 \
      -rss_limit_mb=2048 -print_final_stats=1 "$scratch" "tests/fuzz/corpus/$target" \
      2>&1 | grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ *DONE)|ERROR|SUMMARY" || true
  status=${PIPESTATUS[0]}
  rm -rf "$scratch"
  if [ "$status" -ne 0 ]; then
    echo "fuzz: $target FAILED (exit $status); reproduce with the crash-* file it wrote"
    exit 1
  fi
done
echo "fuzz: 1 passed, 0 failed"
