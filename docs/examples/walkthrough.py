#!/usr/bin/env python3
"""One session with the personal KMS, byte by byte, using only pyca/cryptography
and requests: what every client in any language does. See docs/protocol.md.

usage: python3 docs/examples/walkthrough.py [BASE_URL] [CLIENT_KEY_FILE]
       (default http://127.0.0.1:3000 and ./data/admin.key when present: identity-v1 signs the
       key exchange with an enrolled client's Ed25519 key; without one the body is protocol-v1's)
"""
import base64
import hashlib
import json
import os
import sys

import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

base = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:3000"
key_file = sys.argv[2] if len(sys.argv) > 2 else "./data/admin.key"
b64 = lambda data: base64.b64encode(data).decode()


def show(title, value):
    print(f"\n## {title}\n{value}")


# 1. Start: a pending session and the server's RSA-4096 key.
init = requests.get(f"{base}/session/init", timeout=10).json()
show("GET /session/init", json.dumps({**init, "publicKey": init["publicKey"][:64] + "…"}, indent=2))
public_key = serialization.load_pem_public_key(init["publicKey"].encode())
spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
fingerprint = "SHA256:" + hashlib.sha256(spki).hexdigest()
assert fingerprint == init["fingerprint"], "the fingerprint must be the SHA-256 of the DER SPKI"
show("fingerprint (compare with `kms server-key` on the server, then pin it)", fingerprint)

# 2. Key exchange: 32 random bytes, wrapped with RSA-OAEP-256 (SHA-256, MGF1-SHA-256, no label).
session_key = os.urandom(32)
token = "walkthrough_" + base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("=")
wrapped = public_key.encrypt(
    session_key, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
body = {"sessionId": init["sessionId"], "wrappedKey": b64(wrapped)}
if os.path.exists(key_file):
    # identity-v1 section 2: sign "kms-v1/client-auth" LF sessionId LF hex(SHA-256(W)) LF hex(SHA-256(T)) LF F.
    with open(key_file, "rb") as handle:
        client_key = serialization.load_pem_private_key(handle.read(), password=None)
    raw = client_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    transcript = "\n".join([
        "kms-v1/client-auth", init["sessionId"], hashlib.sha256(wrapped).hexdigest(),
        hashlib.sha256(token.encode()).hexdigest(), fingerprint]).encode()
    body["clientKey"] = "SHA256:" + hashlib.sha256(raw).hexdigest()
    body["signature"] = b64(client_key.sign(transcript))
    show("signed as client " + body["clientKey"], transcript.decode())
show("session key (never sent in the clear)", session_key.hex())
response = requests.post(f"{base}/session/key-exchange", json=body, headers={"X-Client-Token": token}, timeout=10)
envelope = response.json()
show(f"POST /session/key-exchange -> {response.status_code}, a sealed envelope with seq 0", json.dumps(envelope))
aad = f"kms-v1/response\n{init['sessionId']}\n0\n200".encode()
inner = AESGCM(session_key).decrypt(
    base64.b64decode(envelope["iv"]), base64.b64decode(envelope["ciphertext"]) + base64.b64decode(envelope["tag"]), aad)
show("opened with AAD " + repr(aad.decode()), inner.decode())


def call(method, target, inner_json, seq):
    """Seal a request, send it, open the answer."""
    plaintext = b"" if inner_json is None else json.dumps(inner_json, separators=(",", ":")).encode()
    request_aad = f"kms-v1/request\n{method}\n{target}\n{init['sessionId']}\n{seq}".encode()
    iv = os.urandom(12)
    sealed = AESGCM(session_key).encrypt(iv, plaintext, request_aad)
    env = {"seq": seq, "iv": b64(iv), "ciphertext": b64(sealed[:-16]), "tag": b64(sealed[-16:])}
    headers = {"X-Client-Token": token}
    if method == "POST":
        answer = requests.post(f"{base}{target}", data=json.dumps(env), headers={**headers, "Content-Type": "application/json"}, timeout=10)
    else:
        headers["X-KMS-Envelope"] = b64(json.dumps(env).encode())
        answer = requests.request(method, f"{base}{target}", headers=headers, timeout=10)
    reply = answer.json()
    response_aad = f"kms-v1/response\n{init['sessionId']}\n{seq}\n{answer.status_code}".encode()
    opened = AESGCM(session_key).decrypt(
        base64.b64decode(reply["iv"]), base64.b64decode(reply["ciphertext"]) + base64.b64decode(reply["tag"]), response_aad)
    show(f"{method} {target} (seq {seq})\n  inner request:  {plaintext.decode() or '(empty)'}\n  AAD: {request_aad!r}\n  envelope: {json.dumps(env)}",
         f"  -> {answer.status_code}, sealed: {json.dumps(reply)}\n  opened: {opened.decode()}")
    return json.loads(opened)


key = call("POST", "/keys/generate", {}, 1)
encrypted = call("POST", "/crypto/encrypt", {"keyId": key["keyId"], "plaintext": b64(b"hello, photos"), "aad": b64(b"album")}, 2)
decrypted = call("POST", "/crypto/decrypt", {"ciphertext": encrypted["ciphertext"], "aad": b64(b"album")}, 3)
assert base64.b64decode(decrypted["plaintext"]) == b"hello, photos"
call("GET", f"/keys/{key['keyId']}", None, 4)
call("DELETE", "/session", None, 5)
