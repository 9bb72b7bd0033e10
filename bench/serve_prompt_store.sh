#!/usr/bin/env bash
# What strata serve's prompt cache on disk saves across a restart: a server answers a
# chat whose first turn carries a long document (PROMPT_BYTES of mobydick.txt, default
# 13800, about 4k tokens) with max_tokens 1 (the time is the prefill) and stops; a new
# server on the same --prompt-cache-dir answers turn 2 (the whole history again plus a
# question, as chat clients send it), loading the stored prefix instead of prefilling
# it; a third server without the cache answers the same turn 2 cold. Prints each time
# to first token, the tokens reused, and the entries on disk.
#   bench/serve_prompt_store.sh [MODEL] [strata serve flags...]   (default: v2lite Q4_0)
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
dir=$(mktemp -d)
trap 'serve_stop; rm -rf "$dir" "$serve_log"' EXIT
doc=$(head -c "${PROMPT_BYTES:-13800}" "$text")
turn1=$(python3 -c 'import json,sys; print(json.dumps([{"role":"user","content":sys.argv[1]+"\n\nSummarise."}]))' "$doc")
turn2=$(python3 -c 'import json,sys; m=json.loads(sys.argv[1]); m+= [{"role":"assistant","content":"A whaling story."},{"role":"user","content":"Who is Ishmael?"}]; print(json.dumps(m))' "$turn1")
serve_start "$m" -c 8192 --prompt-cache-dir "$dir" "$@"
serve_ask "server 1: turn 1 (cold)" "$turn1"
serve_stop
echo "on disk: $(ls "$dir" | wc -l) entries, $(du -sh "$dir" | cut -f1)"
serve_start "$m" -c 8192 --prompt-cache-dir "$dir" "$@"
serve_ask "server 2 (restarted): turn 2, prefix from disk" "$turn2"
serve_stop
serve_start "$m" -c 8192 "$@"
serve_ask "server 3 (no prompt cache): turn 2 cold" "$turn2"
