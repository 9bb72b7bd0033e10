#!/usr/bin/env bash
# Paired A/B of two strata binaries on one model: OLD (required) and this tree's build
# (or $STRATA) run `strata bench --json -r 1` alternately, ROUNDS pairs (default 4) in
# ABBA order, and the script prints the median of the per-pair ratios new/old for
# prefill and decode: the number this noisy machine can be trusted for, since both
# runs of a pair see the same drive, page cache and neighbours.
#   OLD=/path/to/old/strata bench/paired.sh MODEL [bench args, e.g. -p 128 -n 64 -t 2]
set -euo pipefail
source "$(dirname "$0")/common.sh"
[ -n "${OLD:-}" ] || { echo "paired.sh: set OLD=/path/to/the/old/strata" >&2; exit 2; }
[ $# -ge 1 ] || { echo "usage: OLD=... bench/paired.sh MODEL [bench args]" >&2; exit 2; }
model=$1
shift
one() {  # binary -> "prefill decode" of the first budget row
  "$1" bench -m "$model" -r 1 --json "${@:2}" |
    python3 -c 'import json,sys; b=json.load(sys.stdin)["budgets"][0]; print(b["prefill_tok_per_s"], b["decode_tok_per_s"])'
}
ratios=()
for i in $(seq "${ROUNDS:-4}"); do
  if (( i % 2 )); then
    read -r opp otg < <(one "$OLD" "$@"); read -r npp ntg < <(one "$strata" "$@")
  else
    read -r npp ntg < <(one "$strata" "$@"); read -r opp otg < <(one "$OLD" "$@")
  fi
  echo "pair $i: old $opp / $otg, new $npp / $ntg tok/s (prefill / decode)"
  ratios+=("$(awk -v a="$npp" -v b="$opp" -v c="$ntg" -v d="$otg" 'BEGIN {print a / b, c / d}')")
done
printf '%s\n' "${ratios[@]}" | sort -n -k1 | awk '{r[NR] = $1} END {printf "new/old, paired medians: prefill %.3fx (%.3f-%.3f)", r[int((NR + 1) / 2)], r[1], r[NR]}'
printf '%s\n' "${ratios[@]}" | sort -n -k2 | awk '{r[NR] = $2} END {printf ", decode %.3fx (%.3f-%.3f), %d pairs\n", r[int((NR + 1) / 2)], r[1], r[NR], NR}'
