#!/usr/bin/env bash
# Issue 22's measurement: the RAM budget is a ceiling for the whole process. For each
# of v3-slice and v4flash-slice: the floor at -c 16384 (weights, one token's experts,
# the KV cache and scratch for 16384 tokens), a budget 5% above it, and a run inside a
# memory cgroup of budget + 64 MiB, its prompt filling most of the context (mobydick.txt,
# PROMPT_BYTES of it). Prints the run's peak RSS and the cgroup's own peak next to the
# budget, and fails if the run is killed or its peak RSS passes budget + 64 MiB.
# Needs root (cgroups, drop_caches). Models are generated on first use under $STRATA_MODELS.
#   bench/budget_ceiling.sh [PRESET...]       (default: v3-slice v4flash-slice)
set -euo pipefail
source "$(dirname "$0")/common.sh"
ctx=${CTX:-16384}
prompt_bytes=${PROMPT_BYTES:-56000}  # about 14k tokens of English (16000: 4.8k)
slack=$((64 << 20))
presets=("$@")
[ ${#presets[@]} -gt 0 ] || presets=(v3-slice v4flash-slice)
prompt=$(mktemp)
trap 'rm -f "$prompt"' EXIT
head -c "$prompt_bytes" "$text" > "$prompt"
status=0
for preset in "${presets[@]}"; do
  ensure_model "$preset.gguf" --preset "$preset"
  m=$models/$preset.gguf
  floor=$("$strata" plan -m "$m" --no-drive --json -c "$ctx" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["min_budget_bytes"])')
  budget=$((floor + floor / 20))
  name=strata-ceiling-$$
  if [ -d /sys/fs/cgroup/memory ]; then
    cg=/sys/fs/cgroup/memory/$name; mkdir "$cg"
    echo $((budget + slack)) > "$cg/memory.limit_in_bytes"; peak_file=memory.max_usage_in_bytes
  else
    cg=/sys/fs/cgroup/$name; mkdir "$cg"
    echo $((budget + slack)) > "$cg/memory.max"; peak_file=memory.peak
  fi
  sync; echo 3 > /proc/sys/vm/drop_caches
  set +e
  out=$( (echo $BASHPID > "$cg/cgroup.procs"
          exec "$strata" run -m "$m" -f "$prompt" -n 16 -c "$ctx" -t 2 --temp 0 \
            --ram-budget "$budget" --no-profile) 2>&1 >/dev/null)
  code=$?
  set -e
  cg_peak=$(cat "$cg/$peak_file" 2>/dev/null || echo 0)
  rmdir "$cg"
  rss=$(grep -o 'peak RSS [0-9.]* [KMG]iB' <<<"$out" | awk '{print $3 $4}' || true)
  [ -n "$rss" ] || rss=0B
  # 3.03GiB -> bytes; unparseable (the run died before its summary) counts as a failure.
  rss_bytes=$(numfmt --from=iec-i "${rss%B}" 2>/dev/null || echo 0)
  verdict=PASS
  if [ "$code" -ne 0 ] || [ "$rss_bytes" -eq 0 ] || [ "$rss_bytes" -gt $((budget + slack)) ]; then verdict=FAIL; status=1; fi
  mib() { echo "$(($1 >> 20)) MiB"; }
  printf '%s: -c %d, floor %s, budget %s, cgroup limit %s: exit %d, peak RSS %s, cgroup peak %s (page cache included): %s\n' \
    "$preset" "$ctx" "$(mib "$floor")" "$(mib "$budget")" "$(mib $((budget + slack)))" "$code" \
    "$rss" "$(mib "$cg_peak")" "$verdict"
  grep -E 'prompt|tiers:|strata:' <<<"$out" | sed 's/^/  /' || true
done
exit $status
