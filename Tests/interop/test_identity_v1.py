"""identity-v1 (/work/shared/design/identity-v1.md) with the independent Python client.

Needs a live server with KMS_CLIENT_AUTH=required and KMS_CLIENT_KEY_FILE naming a key with
clients:manage (the bootstrap admin key); the transcript vector runs anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import os

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from kms_wire import (
    Client,
    KmsError,
    Settings,
    client_auth_transcript,
    client_key_id,
    end_quietly,
    expect_ok,
    expect_plain_error,
    expect_sealed_error,
    random_token,
    raw_public_key,
)

SETTINGS = Settings.from_env()
ENROLLED = bool(SETTINGS.url and os.environ.get("KMS_CLIENT_KEY_FILE", "").strip())
live = pytest.mark.skipif(
    not ENROLLED, reason="needs KMS_URL and KMS_CLIENT_KEY_FILE (a server with KMS_CLIENT_AUTH=required)"
)


def test_section_11_transcript_and_signature():
    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    public = raw_public_key(key)
    assert base64.b64encode(public).decode() == "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
    assert client_key_id(public) == "SHA256:21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9"
    wrapped = bytes(i % 256 for i in range(512))
    transcript = client_auth_transcript(
        "kP3x9QvZ2mWc7RtY5bLn8A", wrapped, "identity-v1-vector-token_0123456789abcdef",
        "SHA256:d29f9bb3d551e47271481e641f06864b2efa4e079eb49be9f2b7c9e2ae740d2a",
    )
    assert len(transcript) == 243
    assert hashlib.sha256(wrapped).hexdigest() in transcript.decode()
    signature = base64.b64encode(key.sign(transcript)).decode()
    assert signature == (
        "qxY+yc7r3PbpT97/RXpyKdzKcaq++y1g8TgBUy9aPckK1NV2MePag5GQ7foPnXi6X0/0rIT0kNSPcrXCvknwCw=="
    )


@pytest.fixture(scope="module")
def admin_client():
    return Client(SETTINGS.url, pin=SETTINGS.pin)


@pytest.fixture
def admin(admin_client):
    session = admin_client.open_session(random_token(SETTINGS.token_prefix))
    yield session
    end_quietly(session)


def enrol(admin, name, key, grants):
    body = {"name": name, "publicKey": base64.b64encode(raw_public_key(key)).decode(), "grants": grants}
    return expect_ok(admin.call("POST", "/clients", body))


def unique(name):
    return f"{name}-{os.urandom(4).hex()}"


@live
def test_enrol_allow_deny_revoke(admin):
    alias = unique("py-photos")
    expect_ok(admin.call("POST", "/keys/generate", {"alias": alias}))
    device_key = ed25519.Ed25519PrivateKey.generate()
    record = enrol(admin, unique("py-phone"), device_key, [{"keys": [alias], "allow": ["crypto:encrypt"]}])
    assert record["clientId"].startswith("cli_") and record["accessKeys"] == [] and "revokedAt" not in record
    assert record["fingerprint"] == client_key_id(raw_public_key(device_key))

    device = Client(SETTINGS.url, pin=SETTINGS.pin, signing_key=device_key)
    session = device.open_session(random_token(SETTINGS.token_prefix))
    me = expect_ok(session.call("GET", "/session"))
    assert me["client"]["clientId"] == record["clientId"] and me["client"]["grants"] == record["grants"]
    sealed = expect_ok(session.call("POST", "/crypto/encrypt", {"keyId": alias, "plaintext": "aGVsbG8="}))
    error = expect_sealed_error(
        session.call("POST", "/crypto/decrypt", {"ciphertext": sealed["ciphertext"]}), 403, "permission_denied"
    )
    assert error["message"] == f"permission crypto:decrypt is not granted for key {sealed['keyId']}"
    # Forbidden and missing look alike.
    expect_sealed_error(session.call("POST", "/crypto/encrypt", {"keyId": unique("nope"), "plaintext": ""}), 403,
                        "permission_denied")
    listed = expect_ok(session.call("GET", "/keys"))
    assert listed["keys"] == []  # no keys:read

    revoked = expect_ok(admin.call("POST", f"/clients/{record['clientId']}/revoke", {}))
    assert "revokedAt" in revoked
    # Its session ended with it (a plain 401); a new key exchange is refused like an unknown key.
    with pytest.raises(KmsError) as ended:
        session.call("POST", "/crypto/random", {"bytes": 1})
    expect_plain_error(ended.value.response, 401, "unknown_session")
    with pytest.raises(KmsError) as refused:
        device.open_session(random_token(SETTINGS.token_prefix))
    assert "client_not_authenticated" in str(refused.value)


@live
def test_unknown_key_and_v1_body_are_refused(admin_client):
    stranger = Client(SETTINGS.url, pin=SETTINGS.pin, signing_key=ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(KmsError) as refused:
        stranger.open_session(random_token(SETTINGS.token_prefix))
    assert "client_not_authenticated" in str(refused.value)
    init = admin_client.init()
    body = {"sessionId": init.session_id, "wrappedKey": base64.b64encode(os.urandom(512)).decode()}
    bare = Client(SETTINGS.url, pin=SETTINGS.pin)
    bare.signing_key = None
    expect_plain_error(bare.post_key_exchange(body, random_token(SETTINGS.token_prefix)), 400, "invalid_request",
                       field="clientKey")


@live
def test_wrapped_key_failures_in_section_2_order(admin):
    """Section 2: only a wrappedKey that is not b64 is refused before the client check; b64 of
    another length than 512 bytes is an unwrap failure, judged after it (401 for an unknown key)."""
    enrolled_key = ed25519.Ed25519PrivateKey.generate()
    enrol(admin, unique("py-order"), enrolled_key, [])
    short = base64.b64encode(os.urandom(256)).decode()
    for key, wrapped, status, code in [
        (ed25519.Ed25519PrivateKey.generate(), short, 401, "client_not_authenticated"),
        (enrolled_key, short, 400, "key_exchange_failed"),
        (ed25519.Ed25519PrivateKey.generate(), "not b64!", 400, "key_exchange_failed"),
    ]:
        device = Client(SETTINGS.url, pin=SETTINGS.pin, signing_key=key)
        init = device.init()
        token = random_token(SETTINGS.token_prefix)
        response = device.post_key_exchange({"sessionId": init.session_id, "wrappedKey": wrapped}, token)
        expect_plain_error(response, status, code)
        # Either way the pending session is used up (it is past the "used up from here" line).
        again = device.post_key_exchange(
            {"sessionId": init.session_id, "wrappedKey": base64.b64encode(os.urandom(512)).decode()}, token
        )
        expect_plain_error(again, 401, "unknown_session")


@live
def test_clients_api_errors(admin):
    key = ed25519.Ed25519PrivateKey.generate()
    name = unique("py-tablet")
    enrol(admin, name, key, [])
    expect_sealed_error(admin.call("POST", "/clients", {"name": name, "publicKey": base64.b64encode(
        raw_public_key(ed25519.Ed25519PrivateKey.generate())).decode(), "grants": []}), 409, "name_in_use")
    expect_sealed_error(admin.call("POST", "/clients", {"name": unique("other"), "publicKey": base64.b64encode(
        raw_public_key(key)).decode(), "grants": []}), 409, "public_key_in_use")
    expect_sealed_error(admin.call("POST", "/clients", {"name": "Bad", "publicKey": "", "grants": []}), 400,
                        "invalid_request", field="name")
    expect_sealed_error(admin.call("POST", "/clients", {
        "name": unique("x"), "publicKey": base64.b64encode(raw_public_key(ed25519.Ed25519PrivateKey.generate())).decode(),
        "grants": [{"keys": ["back*up"], "allow": ["keys:read"]}]}), 400, "invalid_request", field="grants[0].keys[0]")
    expect_sealed_error(admin.call("GET", "/clients/nobody-here"), 404, "client_not_found")
    created = expect_ok(admin.call("POST", f"/clients/{name}/access-keys", {}))
    assert created["accessKeyId"].startswith("AKIA") and len(base64.b64decode(created["secretAccessKey"])) == 30
    record = expect_ok(admin.call("POST", f"/clients/{name}/revoke", {}))
    assert all("revokedAt" in key for key in record["accessKeys"])  # revoking a client revokes its access keys
    again = expect_ok(admin.call("POST", f"/clients/{record['clientId']}/revoke", {}))
    assert again["revokedAt"] == record["revokedAt"]  # idempotent
    expect_sealed_error(admin.call("GET", f"/clients/{name}"), 404, "client_not_found")  # names resolve active only
