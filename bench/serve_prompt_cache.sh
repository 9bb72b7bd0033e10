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
m=${1:-}
if [ -z "$m" ]; then
  ensure_model v2lite-q4_0.gguf --preset v2lite --type Q4_0
  m=$models/v2lite-q4_0.gguf
else
  shift
fi
log=$(mktemp)
"$strata" serve -m "$m" --port 0 -c 8192 "$@" >"$log" 2>&1 &
pid=$!
trap 'kill -INT $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 600); do grep -q "listening on" "$log" && break; sleep 0.2; done
port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$log")
[ -n "$port" ] || { cat "$log"; exit 1; }
id=$(curl -s "localhost:$port/v1/models" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')
doc=$(head -c "${PROMPT_BYTES:-6000}" "$text")
ask() {  # LABEL JSON-MESSAGES
  python3 - "$port" "$id" "$1" "$2" <<'PY'
import json, sys, time, urllib.request
port, model, label, messages = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
body = json.dumps({"model": model, "messages": messages, "max_tokens": 1, "temperature": 0}).encode()
t = time.monotonic()
r = json.load(urllib.request.urlopen(urllib.request.Request(
    f"http://127.0.0.1:{port}/v1/chat/completions", body, {"content-type": "application/json"})))
s = time.monotonic() - t
u = r["usage"]
print(f"{label:<34} {s:7.2f} s  prompt {u['prompt_tokens']:5d} tokens, "
      f"{u['prompt_tokens_details']['cached_tokens']:5d} from the cache")
PY
}
turn1=$(python3 -c 'import json,sys; print(json.dumps([{"role":"user","content":sys.argv[1]+"\n\nSummarise."}]))' "$doc")
turn2=$(python3 -c 'import json,sys; m=json.loads(sys.argv[1]); m+= [{"role":"assistant","content":"A whaling story."},{"role":"user","content":"Who is Ishmael?"}]; print(json.dumps(m))' "$turn1")
ask "turn 1 (cold)" "$turn1"
ask "turn 2, history from the cache" "$turn2"
ask "unrelated request" '[{"role":"user","content":"Hello there."}]'
ask "turn 2 again, nothing cached" "$turn2"
