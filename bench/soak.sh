#!/usr/bin/env bash
# The soak of issue 9: one tiered run generating N tokens (default 20,000) past EOS on
# the small preset with half its expert bytes in RAM, sampling the process's RSS every
# 2 s. At the end `strata run` checks its tier counters (demands = hits + in-flight hits
# + misses, prefetches used/cancelled <= issued) and fails if they disagree. RSS
# must stay flat: the script fails if it grows by more than 32 MiB after the first 10%
# of the run. Not part of the quick suite.
#   bench/soak.sh [TOKENS] [OUT_DIR]
set -euo pipefail
source "$(dirname "$0")/common.sh"
tokens=${1:-20000}
out=${2:-$here/build/bench-soak}
mkdir -p "$out"
m=$models/soak-small.gguf
ensure_model soak-small.gguf --preset small --routing-skew 1 >/dev/null
# The pinned weights plus half the experts' bytes (from `strata plan`).
read -r pinned experts < <("$strata" plan -m "$m" --no-drive --json |
  sed -n 's/.*"\(pinned_dense_bytes\|routed_expert_bytes\)": \([0-9]*\).*/\2/p' | paste -sd' ')
budget=$(( (pinned + experts / 2) / 1048576 ))M
log=$out/soak.txt
rss=$out/rss.tsv
echo "soak: $tokens tokens on $(basename "$m") at --ram-budget $budget" | tee "$log"
"$strata" run -m "$m" -p "Call me Ishmael." -n "$tokens" -c $((tokens + 64)) --ignore-eos \
  --ram-budget "$budget" -t 2 >/dev/null 2>>"$log" &
pid=$!
start=$(date +%s)
echo -e "seconds\trss_kib" > "$rss"
while kill -0 "$pid" 2>/dev/null; do
  r=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
  [ -n "$r" ] && echo -e "$(( $(date +%s) - start ))\t$r" >> "$rss"
  sleep 2
done
status=0
wait "$pid" || status=$?
cat "$log"
[ "$status" -eq 0 ] || { echo "soak: strata run failed (exit $status)"; exit 1; }
# The KV cache and the expert cache are allocated up front; what still grows with the
# context is decode attention's scratch: the f32 copy of the latent rows and the
# probabilities, (kv_lora + rope + heads) x 4 bytes per position. Fail if RSS grows by
# more than that, plus 32 MiB, after the first 10% of the run.
per_pos=$(( $("$strata" inspect --json --no-tensors "$m" |
  sed -n 's/.*"\(kv_lora_rank\|qk_rope\|n_head\)": \([0-9]*\).*/\2/p' | paste -sd+) ))
awk -v tokens="$tokens" -v per_pos="$per_pos" 'NR > 1 { r[NR] = $2; n = NR; if ($2 > peak) peak = $2 }
  END {
    first = int((n - 1) * 0.1) + 2; if (first > n) first = n
    growth = (r[n] - r[first]) / 1024
    allowed = 32 + 0.9 * tokens * per_pos * 4 / 1048576
    printf "rss: %d samples; at 10%% of the run %.1f MiB, at the end %.1f MiB, peak %.1f MiB; growth %.1f MiB (allowed %.1f: attention scratch + 32)\n",
      n - 1, r[first] / 1024, r[n] / 1024, peak / 1024, growth, allowed
    exit growth > allowed ? 1 : 0
  }' "$rss" | tee -a "$log"
echo "rss samples in $rss"
