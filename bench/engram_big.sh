#!/usr/bin/env bash
# Issue 8's benchmark: engram-big (a 1.3 GB backbone with 4 mHC streams and two 8.2 GB
# Engram tables, V4.1's addressing) on real text (mobydick.txt through the DeepSeek-V3
# tokenizer; decode feeds the text's next tokens), 2 threads:
#   1. tables in RAM (no budget: everything loaded, 16.7 GiB) against tables on disk,
#      cold (page cache dropped, empty row cache), 64 MB row cache, the routed experts
#      pinned so the only disk traffic is Engram rows. The two models are open at once
#      and alternate token by token (--lockstep): this VM's speed drifts by ±20%
#      between runs, so only tokens timed back to back compare. A cold repetition
#      empties the row cache instead of reopening (every expert is in RAM). Then the
#      same warm (every row cached after the warm-up), which separates the cost of
#      reading from the rest.
#   2. the row-cache hit rate as a function of its size, over 1024 decoded tokens (a
#      working set of ~40k rows, 10 MiB), cold.
# Needs root for drop_caches. The model is generated on first use under $STRATA_MODELS.
#   bench/engram_big.sh [OUT_DIR]
set -euo pipefail
source "$(dirname "$0")/common.sh"
reps=${REPS:-9}
out=${1:-$here/build/bench-engram}
mkdir -p "$out"
m=$models/engram-big.gguf
ensure_model engram-big.gguf --preset engram-big
disk=(--pin 'blk.*.ffn_*_exps.weight' --engram-cache 64M)
pair=(-m "$m" -p 128 -n 256 -t 2 --text "$text" -r "$reps" --sweep unlimited,2G --lockstep)

echo "== tables in RAM vs on disk (2G budget, 64 MB row cache), cold, lockstep" | tee "$out/engram.txt"
"$strata" bench "${pair[@]}" --cold "${disk[@]}" | tee -a "$out/engram.txt"
echo "== the same, warm (no reads during decode)" | tee -a "$out/engram.txt"
"$strata" bench "${pair[@]}" "${disk[@]}" | tee -a "$out/engram.txt"
for size in 256K 1M 4M 16M 64M; do
  echo "== hit rate: row cache $size, cold, 1024 tokens" | tee -a "$out/engram.txt"
  "$strata" bench -m "$m" -p 16 -n 1024 -t 2 --text "$text" -r 1 --cold --ram-budget 2G \
    --pin 'blk.*.ffn_*_exps.weight' --engram-cache "$size" | tee -a "$out/engram.txt"
done
grep -E '^==|^unlimited|^2.00 GiB|decode .*x|engram per token' "$out/engram.txt"
