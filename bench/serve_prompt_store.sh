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
m=${1:-}
if [ -z "$m" ]; then
  ensure_model v2lite-q4_0.gguf --preset v2lite --type Q4_0
  m=$models/v2lite-q4_0.gguf
else
  shift
fi
dir=$(mktemp -d)
log=$(mktemp)
pid=
stop() { [ -n "$pid" ] && kill -INT "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=; }
trap 'stop; rm -rf "$dir" "$log"' EXIT
start() {  # serve flags...
  "$strata" serve -m "$m" --port 0 -c 8192 "$@" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 900); do grep -q "listening on" "$log" && break; sleep 0.2; done
  port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$log")
  [ -n "$port" ] || { cat "$log"; exit 1; }
  id=$(curl -s "localhost:$port/v1/models" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')
}
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
print(f"{label:<44} {s:7.2f} s  prompt {u['prompt_tokens']:5d} tokens, "
      f"{u['prompt_tokens_details']['cached_tokens']:5d} reused")
PY
}
doc=$(head -c "${PROMPT_BYTES:-13800}" "$text")
turn1=$(python3 -c 'import json,sys; print(json.dumps([{"role":"user","content":sys.argv[1]+"\n\nSummarise."}]))' "$doc")
turn2=$(python3 -c 'import json,sys; m=json.loads(sys.argv[1]); m+= [{"role":"assistant","content":"A whaling story."},{"role":"user","content":"Who is Ishmael?"}]; print(json.dumps(m))' "$turn1")
start --prompt-cache-dir "$dir" "$@"
ask "server 1: turn 1 (cold)" "$turn1"
stop
echo "on disk: $(ls "$dir" | wc -l) entries, $(du -sh "$dir" | cut -f1)"
start --prompt-cache-dir "$dir" "$@"
ask "server 2 (restarted): turn 2, prefix from disk" "$turn2"
stop
start "$@"
ask "server 3 (no prompt cache): turn 2 cold" "$turn2"
