#!/usr/bin/env bash
# The README's run command: sets up, builds strata, generates the demo model if it is
# missing, and starts `strata chat` on it with a RAM budget that holds half the routed
# experts, so the others stream from disk while you chat (the status line after each answer
# shows the hit rate and MiB read per token).
# The demo model has random weights: its answers are noise. It exists to show the
# engine working; run a real GGUF with `strata chat -m MODEL.gguf --ram-budget auto`.
# Usage: scripts/demo.sh [PRESET] [extra chat flags]   (default preset: small, ~230 MB)
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-small}"
shift || true

scripts/setup.sh
cache="${STRATA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/strata}"
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" --target strata
strata=./build/release/tools/strata

model="$cache/models/demo-$preset.gguf"
mkdir -p "$cache/models"
if [ ! -s "$model" ]; then
  "$strata" make-model --preset "$preset" --routing-skew 1.0 -o "$model"
fi
# Pinned weights plus half the routed experts' bytes: experts stream while you chat.
read -r pinned experts < <("$strata" plan -m "$model" --no-drive --json |
  sed -n 's/.*"\(pinned_dense_bytes\|routed_expert_bytes\)": \([0-9]*\).*/\2/p' | paste -sd' ')
budget=$(( (pinned + experts / 2) / 1048576 ))M
echo "demo: $model: $(( pinned / 1048576 )) MiB pinned, $(( experts / 1048576 )) MiB of" \
  "routed experts; chatting with --ram-budget $budget (half the experts in RAM)"
echo "demo: this model has random weights, so its answers are noise; try /stats and /help"
exec "$strata" chat -m "$model" --ram-budget "$budget" -n 64 "$@"
