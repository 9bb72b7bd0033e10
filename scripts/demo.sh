#!/usr/bin/env bash
# The README's run command: sets up, builds strata, generates the demo model if it is
# missing, and shows what strata sees in it. Until `strata run`/`strata chat` land,
# strata's main job on the demo model is `inspect` (the README says so).
# The demo model has random weights: it exists to exercise the engine, not to talk.
# Usage: scripts/demo.sh [PRESET]   (default: small, about 230 MB)
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-small}"

scripts/setup.sh
cache="${STRATA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/strata}"
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)" --target strata

model="$cache/models/demo-$preset.gguf"
mkdir -p "$cache/models"
if [ ! -s "$model" ]; then
  ./build/release/tools/strata make-model --preset "$preset" --routing-skew 1.0 -o "$model"
fi
./build/release/tools/strata inspect --no-tensors "$model"
