#!/usr/bin/env bash
# Fails when a source file includes a header of a layer above its own (docs/ARCHITECTURE.md
# "Layers"): util < storage < tiers < prefetch < engine < server < tools, and inside engine
# blocks < graphs < session. Run by ctest (Layering.NoFileIncludesAHigherLayer).
set -euo pipefail
cd "$(dirname "$0")/.."
order=(util storage tiers prefetch engine server tools)
bad=0
for i in "${!order[@]}"; do
  layer=${order[$i]}
  above=("${order[@]:$((i + 1))}")
  [ ${#above[@]} -eq 0 ] && continue
  pattern="#include \"($(IFS='|'; echo "${above[*]}"))/"
  if grep -rnE "$pattern" "$layer" --include='*.h' --include='*.cpp'; then
    echo "check_layers: $layer/ includes a layer above it (above)" >&2
    bad=1
  fi
done
# Inside the engine: blocks know no graph and no session; graphs know no session.
if grep -rnE '#include "engine/(graphs/|session\.h|chat_session\.h|tiered_model\.h)' engine/blocks; then
  echo "check_layers: engine/blocks includes a graph or the session (above)" >&2
  bad=1
fi
if grep -rnE '#include "engine/(session\.h|chat_session\.h|tiered_model\.h)' engine/graphs; then
  echo "check_layers: engine/graphs includes the session (above)" >&2
  bad=1
fi
exit $bad
