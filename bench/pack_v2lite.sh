#!/usr/bin/env bash
# The pack benchmark of issue 5, on this machine: pack throughput against the drive's
# sequential write bandwidth, and cold decode of v2lite Q4_0 (Zipf-skewed routing) at a
# 4 GiB budget for the original GGUF, the packed file stored raw, and the packed file
# compressed with zstd (tok/s and MiB read per token, medians of 3). 2 threads; no heat
# profile, so each run starts from the same empty cache. Needs root (drop_caches) and
# about 18 GiB free next to the model.
#   bench/pack_v2lite.sh [OUT_DIR]
set -euo pipefail
source "$(dirname "$0")/common.sh"
out=${1:-$here/build/bench-pack}
mkdir -p "$out"
m=$models/v2lite-q4_0-skew1.gguf
ensure_model v2lite-q4_0-skew1.gguf --preset v2lite --type Q4_0 --routing-skew 1
log=$out/pack.txt
: > "$log"

echo "== drive: sequential write, 4 GiB, O_DIRECT" | tee -a "$log"
dd if=/dev/zero of="$models/.ddtest" bs=64M count=64 oflag=direct 2>&1 | tail -1 | tee -a "$log"
rm -f "$models/.ddtest"

for codec in none zstd:3 auto; do
  p=$models/v2lite-q4_0-skew1.packed-${codec/:/-}.gguf
  echo "== pack --codec $codec" | tee -a "$log"
  sync; echo 3 > /proc/sys/vm/drop_caches
  "$strata" pack "$m" "$p" --codec "$codec" -t 2 2>&1 | tee -a "$log"
done

common=(-p 32 -n 64 -t 2 -r 3 --cold --ram-budget 4G --no-profile)
for f in "$m" "$models/v2lite-q4_0-skew1.packed-none.gguf" \
         "$models/v2lite-q4_0-skew1.packed-zstd-3.gguf"; do
  echo "== cold decode at 4G: $(basename "$f")" | tee -a "$log"
  "$strata" bench -m "$f" "${common[@]}" 2>&1 | tee -a "$log"
done
echo "== packed (raw) without the bundle checksums" | tee -a "$log"
"$strata" bench -m "$models/v2lite-q4_0-skew1.packed-none.gguf" "${common[@]}" --no-verify 2>&1 |
  tee -a "$log"
