#!/usr/bin/env python3
"""Two `kms serve` instances on one PostgreSQL database behave as one.

usage: two-instances.py KMS_BINARY DATABASE_URL

Checks: one fingerprint; init on A + key exchange on B; a session from B works
on A; an envelope accepted by A is a replay on B; a token rotated on A is dead
on B; a key rotated on A is used by B's next encrypt; rotation rate limits are
global; A is killed with SIGKILL mid-load and B keeps serving, with every
acknowledged key and ciphertext intact; each instance's audit log verifies.
"""
import base64
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "interop"))
import kms_wire  # noqa: E402

binary, database_url = os.path.abspath(sys.argv[1]), sys.argv[2]
folder = tempfile.mkdtemp(prefix="kms-two-")
master = base64.b64encode(os.urandom(32)).decode()
failures = []
passed = [0]


def check(condition, what):
    print(("ok    " if condition else "FAIL  ") + what)
    if condition:
        passed[0] += 1
    else:
        failures.append(what)


# identity-v1: whichever instance starts first enrols admin with this key; the client signs with it.
os.environ["KMS_CLIENT_KEY_FILE"] = os.path.join(folder, "admin.key")


def env(name, port):
    return dict(os.environ, KMS_STORE="postgres", KMS_DATABASE_URL=database_url, KMS_MASTER_KEY=master,
                KMS_PORT=str(port), KMS_HOST="127.0.0.1", KMS_LOG_LEVEL="warning", KMS_ROTATE_MAX="3",
                KEY_STORE_PATH=os.path.join(folder, name, "keys"), KMS_AUDIT_LOG=os.path.join(folder, name, "audit.log"),
                KMS_ADMIN_KEY_FILE=os.path.join(folder, "admin.key"))


def start(name, port):
    os.makedirs(os.path.join(folder, name), exist_ok=True)
    process = subprocess.Popen([binary, "serve"], env=env(name, port), cwd=os.path.join(folder, name),
                               stdout=open(os.path.join(folder, name, "log"), "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if kms_wire.Transport(url, timeout=2).send("GET", "/healthz").status_code == 200:
                return process, url
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"instance {name} did not start: " + open(os.path.join(folder, name, "log")).read())


def b64(data):
    return base64.b64encode(data).decode()


(a, url_a), (b, url_b) = start("a", 4101), start("b", 4102)
transport_a, transport_b = kms_wire.Transport(url_a), kms_wire.Transport(url_b)

init_a, init_b = kms_wire.Client(url_a).init(), kms_wire.Client(url_b).init()
check(init_a.fingerprint == init_b.fingerprint, "both instances show one fingerprint")

token = kms_wire.random_token()
session = kms_wire.Client(url_b).key_exchange(token, init=kms_wire.Client(url_a).init())
check(session.info["sessionId"] == session.session_id, "init on A, key exchange on B")
session.transport = transport_a
check(session.call("POST", "/crypto/random", {"bytes": 8}).status == 200, "a session established on B works on A")

envelope = session.seal_request("POST", "/crypto/random", b'{"bytes":8}')
first = session.send_envelope("POST", "/crypto/random", envelope)
session.transport = transport_b
replay = session.send_envelope("POST", "/crypto/random", envelope)
check(first.status_code == 200 and replay.status_code == 401 and
      session.open_reply(replay, envelope["seq"]).error["code"] == "replay_detected",
      "an envelope accepted by A is refused as a replay by B")

session.transport = transport_a
old_token = session.token
check(session.rotate_token().status == 200, "token rotated on A")
stale = kms_wire.Session(transport_b, session.session_id, session.key, old_token)
stale.next_seq = 10_000
refused = stale.send_envelope("POST", "/crypto/random", stale.seal_request("POST", "/crypto/random", b'{"bytes":8}'))
check(refused.status_code == 401, "the old token is dead on B at once")

session.transport = transport_a
key = session.call("POST", "/keys/generate", {}).body["keyId"]
session.call("POST", "/keys/rotate", {"keyId": key})
session.transport = transport_b
check(session.call("POST", "/crypto/encrypt", {"keyId": key, "plaintext": b64(b"x")}).body["version"] == 2,
      "a key rotated on A is used by B's next encrypt")

# KMS_ROTATE_MAX=3 per 10 s: one rotation above, one more on A, one on B, then B refuses.
session.transport = transport_a
session.rotate_token()
session.transport = transport_b
session.rotate_token()
limited = session.rotate_token()
check(limited.status == 429 and limited.error["code"] == "rate_limited", "rotation rate limits are global")

# identity-v1: a client enrolled on A works on B; revoked on A, its session on B ends at once,
# and a grant change on A applies to B's next request.
from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: E402

admin = kms_wire.Client(url_a).open_session(kms_wire.random_token())
device_key = ed25519.Ed25519PrivateKey.generate()
enrolled = admin.call("POST", "/clients", {
    "name": "two-phone", "publicKey": b64(kms_wire.raw_public_key(device_key)),
    "grants": [{"keys": [key], "allow": ["crypto:encrypt"]}]})
check(enrolled.status == 200, "a client enrolled on A")
device = kms_wire.Client(url_b, signing_key=device_key).open_session(kms_wire.random_token())
check(device.call("POST", "/crypto/encrypt", {"keyId": key, "plaintext": b64(b"x")}).status == 200,
      "its session on B encrypts within its grant")
admin.call("POST", "/clients/two-phone/grants", {"grants": [{"keys": [key], "allow": ["keys:read"]}]})
denied = device.call("POST", "/crypto/encrypt", {"keyId": key, "plaintext": b64(b"x")})
check(denied.status == 403 and denied.error["code"] == "permission_denied", "a grant change on A applies on B at once")
admin.call("POST", "/clients/two-phone/revoke", {})
try:
    device.call("POST", "/crypto/random", {"bytes": 1})
    check(False, "revocation on A ends the session on B at once")
except kms_wire.KmsError as refused:
    check(refused.status == 401 and refused.error["code"] == "unknown_session",
          "revocation on A ends the session on B at once")
kms_wire.end_quietly(admin)

# Kill A under load; B keeps serving and nothing acknowledged is lost.
acked_keys, acked_ciphertexts, errors_b = [], [], []
lock, stop = threading.Lock(), threading.Event()


def load(url, record_errors):
    rng = random.Random()
    try:
        worker = kms_wire.Client(url).open_session(kms_wire.random_token())
    except Exception:
        return
    while not stop.is_set():
        try:
            if rng.random() < 0.3:
                reply = worker.call("POST", "/keys/generate", {})
                if reply.status == 200:
                    with lock:
                        acked_keys.append(reply.body["keyId"])
            else:
                with lock:
                    target = rng.choice(acked_keys) if acked_keys else key
                plaintext = os.urandom(16)
                reply = worker.call("POST", "/crypto/encrypt", {"keyId": target, "plaintext": b64(plaintext)})
                if reply.status == 200:
                    with lock:
                        acked_ciphertexts.append((reply.body["ciphertext"], plaintext))
        except Exception as error:  # A's workers die with A
            if record_errors:
                errors_b.append(repr(error))
            if url == url_a:
                return


threads = [threading.Thread(target=load, args=(url, url == url_b)) for url in (url_a, url_a, url_b, url_b)]
for thread in threads:
    thread.start()
time.sleep(1.5)
a.send_signal(signal.SIGKILL)
a.wait()
time.sleep(1.5)
stop.set()
for thread in threads:
    thread.join(timeout=30)
check(not errors_b, f"B kept serving while A was killed ({len(errors_b)} errors on B)")
checker = kms_wire.Client(url_b).open_session(kms_wire.random_token())
missing = [k for k in acked_keys if checker.call("GET", f"/keys/{k}").status != 200]
wrong = [c for c, p in acked_ciphertexts
         if base64.b64decode(checker.call("POST", "/crypto/decrypt", {"ciphertext": c}).body.get("plaintext", "")) != p]
check(not missing and not wrong,
      f"after killing A: all {len(acked_keys)} acknowledged keys and {len(acked_ciphertexts)} ciphertexts intact on B")

b.send_signal(signal.SIGTERM)
code = b.wait(timeout=30)
check(code == 0, f"B shuts down cleanly on SIGTERM (exit {code})")
if code != 0:
    print(open(os.path.join(folder, "b", "log")).read()[-2000:])
for name in ("a", "b"):
    verify = subprocess.run([binary, "audit", "verify", os.path.join(folder, name, "audit.log")],
                            env=env(name, 1), capture_output=True, text=True)
    print("      " + (verify.stdout + verify.stderr).strip())
    if name == "b":
        check(verify.returncode == 0, "instance B's audit chain verifies")
    else:
        # A was killed with SIGKILL: a torn last line is possible and is repaired at A's next start, and
        # its last second of entries may be unsigned (exit 1: the chain holds, those entries are named).
        # Exit 2 with anything but a torn line is a broken chain.
        check(verify.returncode in (0, 1) or "incomplete" in verify.stdout,
              "instance A's audit chain verifies up to the kill")

print(f"instances: {passed[0]} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
