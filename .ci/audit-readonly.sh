#!/usr/bin/env bash
# The audit log on a real file that becomes read-only: kms serve runs as an
# unprivileged user (root ignores file modes), its audit log is replaced by a
# read-only file, and audited operations must answer 503 at once while
# everything else keeps working; once the file is writable again, recording
# resumes by itself and the chain still verifies.
set -euo pipefail
port=3937
# A new server, with a new identity key, on this port each run: not remembered (or asked about).
export KMS_KNOWN_SERVERS=off
dir=$(mktemp -d /tmp/kms-audit-ro.XXXXXX)
chmod 755 "$dir"
chown nobody "$dir" 2>/dev/null || { echo "audit read-only test skipped: cannot chown to nobody"; exit 0; }
# The unprivileged server runs a copy of the binary: the clone it was built in may
# sit in a folder only root can enter (mktemp -d is 0700).
install -m 755 "$1" "$dir/kms"
kms="$dir/kms"
export BASE_URL="http://127.0.0.1:$port" KMS_LOG_LEVEL=warning KMS_CLIENT_KEY_FILE="$dir/data/admin.key"
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"; }
cleanup() { [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$dir"; }
trap cleanup EXIT

(cd "$dir" && exec setpriv --reuid=nobody --regid=nogroup --clear-groups -- env KMS_PORT=$port KMS_HOST=127.0.0.1 \
    "$kms" serve >"$dir/server.log" 2>&1) &
pid=$!
for _ in $(seq 1 120); do curl -fs "$BASE_URL/healthz" >/dev/null 2>&1 && break; sleep 0.5; done
curl -fs "$BASE_URL/healthz" >/dev/null || { echo "FAIL: the unprivileged kms serve did not start:"; cat "$dir/server.log"; exit 1; }

"$kms" keys generate --alias audit-ro >/dev/null
mv "$dir/data/audit.log" "$dir/data/audit.log.1"
as_nobody touch "$dir/data/audit.log"
chmod 444 "$dir/data/audit.log"

start=$(date +%s%N)
if "$kms" encrypt --key audit-ro "x" 2>"$dir/err"; then
    echo "FAIL: encrypt succeeded with a read-only audit log"; exit 1
fi
grep -q audit_unavailable "$dir/err" || { echo "FAIL: expected audit_unavailable, got: $(cat "$dir/err")"; exit 1; }
if "$kms" keys rotate audit-ro 2>/dev/null; then echo "FAIL: rotate succeeded with a read-only audit log"; exit 1; fi
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
curl -fs "$BASE_URL/healthz" >/dev/null || { echo "FAIL: /healthz blocked"; exit 1; }
"$kms" keys show audit-ro | grep -q "v1  active" || { echo "FAIL: the refused rotation changed the key"; exit 1; }
echo "read-only audit log: encrypt and rotate refused with 503 audit_unavailable in ${elapsed_ms} ms; /healthz and reads unaffected"

chmod 644 "$dir/data/audit.log"
"$kms" encrypt --key audit-ro "x" >/dev/null || { echo "FAIL: recording did not resume"; exit 1; }
echo "writable again: recording resumed by itself"
kill -TERM "$pid"; wait "$pid"; pid=""
KEY_STORE_PATH="$dir/data/keys" KMS_MASTER_KEY_FILE="$dir/data/master.key" \
    "$kms" audit verify "$dir/data/audit.log.1" "$dir/data/audit.log"
