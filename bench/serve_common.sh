# Sourced by the serve bench scripts (after common.sh): start and stop a `strata serve`
# on a free port, and time one non-streamed chat request with max_tokens 1 (so the time
# is the prefill), printing the tokens reused from the response's usage.
#   serve_start MODEL [serve flags...]   sets $port, $id and $pid
#   serve_stop
#   serve_ask LABEL JSON-MESSAGES
pid=
serve_log=$(mktemp)
serve_start() {
  "$strata" serve -m "$@" --port 0 >"$serve_log" 2>&1 &
  pid=$!
  for _ in $(seq 900); do grep -q "listening on" "$serve_log" && break; sleep 0.2; done
  port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$serve_log")
  [ -n "$port" ] || { cat "$serve_log"; exit 1; }
  id=$(curl -s "localhost:$port/v1/models" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')
}
serve_stop() {
  if [ -n "$pid" ]; then
    kill -INT "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  pid=
}
serve_ask() {
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
trap 'serve_stop; rm -f "$serve_log"' EXIT
