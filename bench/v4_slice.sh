#!/usr/bin/env bash
# Issue 7's benchmark: v4flash-slice (DeepSeek-V4-Flash's shapes, 4 layers in Flash's
# pattern: window, window, CSA, HCA; routed experts in MXFP4, 13.7 GB of them) on real
# text (mobydick.txt through the DeepSeek-V3 tokenizer; decode feeds the text's next
# tokens), 2 threads:
#   1. all in RAM (no budget) against a budget that leaves half the expert bytes
#      resident (everything else plus half the experts), cold: page cache dropped and
#      an empty expert cache before every repetition. The two cannot be open at once
#      in 24 GiB (--interleave), so the sweep runs twice, in both orders (AB then BA),
#      against this VM's drift.
#   2. the same budget warm (the cache filled by the warm-up), for the steady state.
# bench prints the bounds next to each row (RAM bandwidth, compute probe, drive).
# Needs root for drop_caches. The model is generated on first use under $STRATA_MODELS.
#   bench/v4_slice.sh [OUT_DIR]
set -euo pipefail
source "$(dirname "$0")/common.sh"
reps=${REPS:-5}
out=${1:-$here/build/bench-v4}
mkdir -p "$out"
m=$models/v4flash-slice.gguf
ensure_model v4flash-slice.gguf --preset v4flash-slice
# Half the routed-expert bytes on top of everything else the model pins.
half=$("$strata" inspect "$m" --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(d["total_bytes"] - d["totals"]["routed experts"]["bytes"] // 2)')
budget=$((half / 1048576))M
run=(-m "$m" -p 128 -n 32 -t 2 --text "$text" -r "$reps")

echo "== all in RAM vs half the experts resident ($budget), cold" | tee "$out/v4.txt"
"$strata" bench "${run[@]}" --sweep "unlimited,$budget" --cold | tee -a "$out/v4.txt"
echo "== the same in the other order, cold" | tee -a "$out/v4.txt"
"$strata" bench "${run[@]}" --sweep "$budget,unlimited" --cold | tee -a "$out/v4.txt"
echo "== half the experts resident ($budget), warm" | tee -a "$out/v4.txt"
"$strata" bench "${run[@]}" --ram-budget "$budget" | tee -a "$out/v4.txt"
grep -E '^==|^unlimited|^[0-9.]+ GiB|decode .*x|bound' "$out/v4.txt"
