#!/usr/bin/env bash
# A real browser against DNS rebinding (docs/protocol.md section 10): headless Chromium loads a page
# from http://rebound.test:PORT (mapped to 127.0.0.1), that server goes away, and kms serve
# (KMS_CLIENT_AUTH=off, where a key exchange would give the page every key) takes its host and port,
# so the page's requests reach kms as its own origin. The page's POST must be refused with
# browser_request_refused; its GET without Origin is answered (the documented rest).
#   .ci/browser-rebinding.sh KMS_BINARY PORT
set -euo pipefail
kms=$1
port=$2
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
server_pid=""
page_pid=""
browser_pid=""
cleanup() {
    # A failure may leave the page's server or the browser running (each under timeout): stop them too.
    for pid in $page_pid $browser_pid; do kill "$pid" 2>/dev/null || true; done
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
fail() {
    echo "$1"
    for file in first.log second.log chromium.log dom.html; do
        [ -f "$work/$file" ] && { echo "--- $file"; tail -n 40 "$work/$file"; }
    done
    exit 1
}
cp "$root/Tests/browser/rebinding.html" "$work/page.html"
cd "$work"
serve() {
    env KMS_PORT="$port" KMS_HOST=127.0.0.1 KMS_CLIENT_AUTH=off KMS_KNOWN_SERVERS=off KMS_LOG_LEVEL=warning \
        "$kms" serve >"$1" 2>&1 &
    server_pid=$!
}
# A first start makes the store (an RSA key), so that the second is up within the page's wait.
serve first.log
up=""
for _ in $(seq 1 120); do
    if curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then up=yes; break; fi
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.5
done
[ -n "$up" ] || fail "kms serve did not start on port $port"
kill -TERM "$server_pid"
wait "$server_pid" || true
server_pid=""
# The attacker's server: the page, once, then gone (at most 60 s: a browser that never asks must not hang CI).
timeout 60 python3 -c '
import http.server, socketserver, sys
class Page(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass
socketserver.TCPServer.allow_reuse_address = True
with socketserver.TCPServer(("127.0.0.1", int(sys.argv[1])), Page) as server:
    open("page-ready", "w").close()
    server.handle_request()
' "$port" &
page_pid=$!
for _ in $(seq 1 100); do [ -f page-ready ] && break; sleep 0.1; done
[ -f page-ready ] || fail "the page's server did not start on port $port"
timeout 120 chromium --headless --no-sandbox --disable-gpu --virtual-time-budget=600000 \
    --host-resolver-rules="MAP rebound.test 127.0.0.1" --dump-dom "http://rebound.test:$port/page.html" \
    >dom.html 2>chromium.log &
browser_pid=$!
wait "$page_pid" || fail "the browser never asked for the page"
serve second.log
wait "$browser_pid" || true
seen=$(sed -e 's/<[^>]*>/\n/g' dom.html | grep '=&gt;' | sed 's/&gt;/>/' || true)
echo "$seen"
grep -q 'POST /session/key-exchange => 403 {"error":{"code":"browser_request_refused"' <<<"$seen" ||
    fail "the rebound page's key exchange was not refused as browser_request_refused"
grep -q 'GET /healthz => 200' <<<"$seen" ||
    fail "the rebound page's GET /healthz was not answered: did the page reach kms at all?"
echo "a rebound page's POST is refused; its GET without Origin is answered (docs/protocol.md section 10)"
