#!/usr/bin/env bash
# A real browser against DNS rebinding (docs/protocol.md section 10): headless Chromium loads a page
# from http://rebound.test:PORT (mapped to 127.0.0.1), that server goes away, and kms serve
# (KMS_CLIENT_AUTH=off, where a key exchange would give the page every key) takes its host and port,
# so the page's requests reach kms as its own origin. The page's POST must be refused with
# browser_request_refused.
#   .ci/browser-rebinding.sh KMS_BINARY PORT
set -euo pipefail
kms=$1
port=$2
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
cp "$root/Tests/browser/rebinding.html" "$work/page.html"
cd "$work"
# A first start makes the store (an RSA key), so that the second is up within the page's wait.
env KMS_PORT="$port" KMS_HOST=127.0.0.1 KMS_CLIENT_AUTH=off KMS_KNOWN_SERVERS=off KMS_LOG_LEVEL=warning \
    "$kms" serve >first.log 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.5; done
kill -TERM "${pids[0]}"
wait "${pids[0]}" || true
# The attacker's server: the page, once.
python3 -c '
import http.server, socketserver, sys
class Page(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass
socketserver.TCPServer.allow_reuse_address = True
with socketserver.TCPServer(("127.0.0.1", int(sys.argv[1])), Page) as server:
    server.handle_request()
' "$port" &
page_pid=$!
pids+=($page_pid)
sleep 0.5
timeout 120 chromium --headless --no-sandbox --disable-gpu --virtual-time-budget=600000 \
    --host-resolver-rules="MAP rebound.test 127.0.0.1" --dump-dom "http://rebound.test:$port/page.html" \
    >dom.html 2>chromium.log &
browser_pid=$!
pids+=($browser_pid)
wait "$page_pid"
env KMS_PORT="$port" KMS_HOST=127.0.0.1 KMS_CLIENT_AUTH=off KMS_KNOWN_SERVERS=off KMS_LOG_LEVEL=warning \
    "$kms" serve >second.log 2>&1 &
pids+=($!)
wait "$browser_pid" || true
seen=$(sed -e 's/<[^>]*>/\n/g' dom.html | grep '=&gt;' | sed 's/&gt;/>/' || true)
echo "$seen"
if ! grep -q 'POST /session/key-exchange => 403 {"error":{"code":"browser_request_refused"' <<<"$seen"; then
    echo "the rebound page's key exchange was not refused as browser_request_refused"
    cat second.log
    exit 1
fi
echo "a rebound page's POST is refused (its GETs without Origin are answered: docs/protocol.md section 10)"
