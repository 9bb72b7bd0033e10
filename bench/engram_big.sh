#!/usr/bin/env bash
# Issue 8's benchmark: engram-big (a 1.3 GB backbone with 4 mHC streams and two 8.2 GB
# Engram tables, V4.1's addressing) on real text (mobydick.txt through the DeepSeek-V3
# tokenizer; decode feeds the text's next tokens), 2 threads:
#   1. tables in RAM (no budget: everything loaded, 16.7 GiB)
#   2. tables on disk, cold (page cache dropped, empty row cache), 64 MB row cache;
#      the routed experts pinned, so the only disk traffic is Engram rows
#   3. the row-cache hit rate as a function of its size
# Needs root for drop_caches. The model is generated on first use under $STRATA_MODELS.
#   bench/engram_big.sh [OUT_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
strata=${STRATA:-$here/build/release/tools/strata}
models=${STRATA_MODELS:-${XDG_CACHE_HOME:-$HOME/.cache}/strata/models}
cache="${STRATA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/strata}"
text=${TEXT:-$cache/text/mobydick.txt}
out=${1:-$here/build/bench-engram}
mkdir -p "$models" "$out"
m=$models/engram-big.gguf
[ -f "$m" ] || "$strata" make-model --preset engram-big -o "$m"
common=(-m "$m" -p 128 -n 64 -t 2 --text "$text")
disk=(--ram-budget 2G --pin 'blk.*.ffn_*_exps.weight')

echo "== tables in RAM" | tee "$out/engram.txt"
"$strata" bench "${common[@]}" -r 3 | tee -a "$out/engram.txt"
echo "== tables on disk, cold, 64 MB row cache" | tee -a "$out/engram.txt"
"$strata" bench "${common[@]}" -r 3 --cold "${disk[@]}" --engram-cache 64M | tee -a "$out/engram.txt"
for size in 4M 16M 256M; do
  echo "== tables on disk, cold, $size row cache" | tee -a "$out/engram.txt"
  "$strata" bench "${common[@]}" -r 1 --cold "${disk[@]}" --engram-cache "$size" | tee -a "$out/engram.txt"
done
grep -E '^==|^unlimited|^2.00 GiB|engram per token' "$out/engram.txt"
