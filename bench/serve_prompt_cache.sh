#!/usr/bin/env bash
# What strata serve's prompt cache saves: a two-turn chat whose first turn carries a long
# document (PROMPT_BYTES of mobydick.txt, default 6000), answered through the OpenAI API
# non-streamed with max_tokens 1, so the time is the prefill. Turn 2 sends the whole
# history again plus a question, as every chat client does: with the cache it prefills
# only the new part. Then the same turn-2 request on a fresh slot (after an unrelated
# request that shares nothing) shows the cost without it. Prints the seconds and the
# tokens reused for each, from the responses' usage.
#   bench/serve_prompt_cache.sh [MODEL] [strata serve flags...]   (default: v2lite Q4_0)
set -euo pipefail
source "$(dirname "$0")/common.sh"
source "$(dirname "$0")/serve_common.sh"
m=${1:-}
if [ -z "$m" ]; then
  ensure_model v2lite-q4_0.gguf --preset v2lite --type Q4_0
  m=$models/v2lite-q4_0.gguf
else
  shift
fi
serve_start "$m" -c 8192 "$@"
doc=$(head -c "${PROMPT_BYTES:-6000}" "$text")
turn1=$(python3 -c 'import json,sys; print(json.dumps([{"role":"user","content":sys.argv[1]+"\n\nSummarise."}]))' "$doc")
turn2=$(python3 -c 'import json,sys; m=json.loads(sys.argv[1]); m+= [{"role":"assistant","content":"A whaling story."},{"role":"user","content":"Who is Ishmael?"}]; print(json.dumps(m))' "$turn1")
serve_ask "turn 1 (cold)" "$turn1"
serve_ask "turn 2, history from the cache" "$turn2"
serve_ask "unrelated request" '[{"role":"user","content":"Hello there."}]'
serve_ask "turn 2 again, nothing cached" "$turn2"
