#!/usr/bin/env bash
# The compute benchmark of issue 3: v2lite all in RAM, 2 threads, pp128/tg32 and
# pp512/tg128 (medians of 3), with the ratio to the peer engine's numbers quoted in
# the issue (Q4_0: pp128 20.3, tg32 11.2 tok/s). With OLD=/path/to/older/strata it
# also runs both binaries alternately (ROUNDS pairs, default 4) and prints the median
# of the paired ratios, the number this noisy machine can be trusted for. Then the
# single-thread matvec kernels against the RAM read probe.
#   bench/compute_v2lite.sh [Q4_0|Q4_K]
set -euo pipefail
source "$(dirname "$0")/common.sh"
type=${1:-Q4_0}
file="v2lite-$(tr 'A-Z' 'a-z' <<<"$type").gguf"
ensure_model "$file" --preset v2lite --type "$type"
m=$models/$file

row() { "$1" bench -m "$m" -t 2 "${@:2}" | awk '/^unlimited/ {print $3, $4}'; }

for shape in "-p 128 -n 32" "-p 512 -n 128"; do
  read -r pp tg < <(row "$strata" $shape -r 3)
  echo "v2lite $type $shape: prefill $pp tok/s, decode $tg tok/s"
  if [ "$type" = Q4_0 ] && [ "$shape" = "-p 128 -n 32" ]; then
    awk -v pp="$pp" -v tg="$tg" 'BEGIN {printf "  vs the peer (pp128 20.3, tg32 11.2): prefill %.2fx, decode %.2fx\n", pp / 20.3, tg / 11.2}'
  fi
  if [ -n "${OLD:-}" ]; then
    ratios=()
    for i in $(seq "${ROUNDS:-4}"); do
      if (( i % 2 )); then read -r opp otg < <(row "$OLD" $shape -r 1); read -r npp ntg < <(row "$strata" $shape -r 1)
      else read -r npp ntg < <(row "$strata" $shape -r 1); read -r opp otg < <(row "$OLD" $shape -r 1); fi
      ratios+=("$(awk -v a="$npp" -v b="$opp" -v c="$ntg" -v d="$otg" 'BEGIN {print a / b, c / d}')")
    done
    printf '%s\n' "${ratios[@]}" | sort -n -k1 | awk '{pp[NR] = $1} END {printf "  vs OLD, paired: prefill %.3fx", pp[int((NR + 1) / 2)]}'
    printf '%s\n' "${ratios[@]}" | sort -n -k2 | awk '{tg[NR] = $2} END {printf ", decode %.3fx (median of %d)\n", tg[int((NR + 1) / 2)], NR}'
  fi
done
"$here/build/release/bench/kernels_bench" --benchmark_filter='MatVec/(2|8|12)/1/1|RamRead' \
  --benchmark_repetitions=3 --benchmark_report_aggregates_only=true 2>/dev/null |
  awk '/median/ {for (i = 1; i <= NF; ++i) if ($i ~ /bytes_per_second/) print $1, $i}'
