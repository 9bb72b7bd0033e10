#!/usr/bin/env bash
# The tiers benchmark of issue 4, on this machine: v2lite Q4_0 (uniform routing, the
# hard case, and Zipf-skewed routing) at a 4 GiB budget, cold, 2 threads; the page-cache
# baseline under the same limit in a memory cgroup, with the default readahead and
# tuned down to 128 KiB; a budget sweep; and `strata plan`'s predictions for the same
# budgets. Needs root (drop_caches, cgroups, readahead). Models are generated on first
# use under $STRATA_MODELS (default ~/.cache/strata/models, ~8.3 GiB each).
#   bench/tiers_v2lite.sh [OUT_DIR]
set -euo pipefail
source "$(dirname "$0")/common.sh"
out=${1:-$here/build/bench-tiers}
mkdir -p "$out"
dev=$(lsblk -no pkname "$(df --output=source "$models" | tail -1)" 2>/dev/null || true)
[ -n "$dev" ] || dev=$(basename "$(df --output=source "$models" | tail -1)")
ra=/sys/block/$dev/queue/read_ahead_kb

for skew in 0 1; do
  m=$models/v2lite-q4_0-skew$skew.gguf
  ensure_model "v2lite-q4_0-skew$skew.gguf" --preset v2lite --type Q4_0 --routing-skew "$skew"
  common=(-p 32 -n 64 -t 2)
  echo "== skew $skew: strata, 4G, cold" | tee "$out/skew$skew.txt"
  "$strata" bench -m "$m" "${common[@]}" -r 3 --cold --ram-budget 4G | tee -a "$out/skew$skew.txt"
  old_ra=$(cat "$ra")
  for kb in "$old_ra" 128; do
    echo "== skew $skew: page cache (mmap) in a 4G memory cgroup, readahead $kb KiB" | tee -a "$out/skew$skew.txt"
    echo "$kb" > "$ra"
    "$here/bench/mmap_cgroup.sh" 4G "$m" "${common[@]}" -r 1 | tee -a "$out/skew$skew.txt"
  done
  echo "$old_ra" > "$ra"
  echo "== skew $skew: sweep and plan" | tee -a "$out/skew$skew.txt"
  "$strata" bench -m "$m" "${common[@]}" -r 1 --cold --sweep 2G,4G,6G | tee -a "$out/skew$skew.txt"
  "$strata" plan -m "$m" --ram-budget 2G --budgets 4G,6G --no-profile | tee -a "$out/skew$skew.txt"
done
