"""Interoperability tests for the session protocol v1 (protocol-v1.md).

Run against a live server: KMS_URL=http://127.0.0.1:PORT python3 -m pytest -q Tests/interop
Section numbers (§) refer to protocol-v1.md.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from kms_wire import (
    ENVELOPE_FIELDS,
    ENVELOPE_HEADER,
    FINGERPRINT_RE,
    MAX_SEQ,
    RSA_BITS,
    RSA_CIPHERTEXT_BYTES,
    SESSION_ID_RE,
    TOKEN_ALPHABET,
    TOKEN_HEADER,
    TOKEN_RE,
    WATCH,
    Client,
    PinMismatch,
    Session,
    Settings,
    Transport,
    b64d,
    b64e,
    b64url_nopad,
    burn_pending,
    check_fields,
    dumps,
    end_quietly,
    envelope_json,
    expect_ok,
    expect_plain_error,
    expect_sealed_error,
    is_int,
    loads,
    near,
    open_envelope,
    parse_timestamp,
    random_token,
    request_aad,
    response_aad,
    utcnow,
    wrap_key,
)

SETTINGS = Settings.from_env()
PREFIX = SETTINGS.token_prefix

pytestmark = pytest.mark.skipif(
    not SETTINGS.url,
    reason="KMS_URL is not set; these tests need a live server "
    "(KMS_URL=http://127.0.0.1:PORT python3 -m pytest -q Tests/interop)",
)

RANDOM = "/crypto/random"
ROTATE = "/session/rotate-token"
SESSION = "/session"

# Error codes the documents do not pin to a single value. Status, plain versus
# sealed, and the §8 shape are always checked strictly; only the code is a set.
#
# A well-formed token that names no live session (unknown, rotated away, or of
# an ended session): §4 lists "session live for this token (401)" as its own
# step after "token well-formed", but names no code; §9 only gives
# invalid_token for a *missing or malformed* token.
DEAD_TOKEN_CODES = {"unknown_session", "invalid_token"}
# Key-exchange body of the wrong shape: §9 says "body shape (400)", no code.
KEY_EXCHANGE_BODY_CODES = {"bad_request", "invalid_request"}
# GET/DELETE whose sealed plaintext is not empty: §9 says "400", no code. It can
# only be seen after decryption, so it is an inner-request refusal and is sealed.
BODYLESS_PLAINTEXT_CODES = {"invalid_request", "bad_request"}


# --------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    c = Client(SETTINGS.url, pin=SETTINGS.pin)
    c.transport.observers.append(WATCH)
    return c


@pytest.fixture
def new_token():
    """Distinct random tokens, [A-Za-z0-9._~-]{32,256}, with the server's prefix."""
    return lambda: random_token(PREFIX)


@pytest.fixture
def pending(client):
    """Factory for GET /session/init; pending sessions left unused are used up at teardown."""
    created = []

    def make():
        init = client.init()
        created.append(init.session_id)
        return init

    yield make
    for session_id in created:
        burn_pending(client, session_id, PREFIX)


@pytest.fixture
def session(client, new_token):
    s = client.open_session(new_token())
    yield s
    end_quietly(s)


def token_chars(n: int) -> str:
    return "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(n))


def good_wrap(init) -> str:
    return b64e(wrap_key(init.public_key, os.urandom(32)))


def key_exchange_body(init, wrapped_key: str | None = None) -> dict:
    return {"sessionId": init.session_id, "wrappedKey": good_wrap(init) if wrapped_key is None else wrapped_key}


def random_call(session: Session, n: int = 16):
    return session.call("POST", RANDOM, {"bytes": n})


def assert_works(session: Session) -> None:
    body = expect_ok(random_call(session))
    assert len(b64d(body["random"])) == 16


def seal_random(session: Session, **kwargs) -> dict:
    """A sealed POST /crypto/random {"bytes": 16} envelope (kwargs: seq, aad, key, iv)."""
    return session.seal_request("POST", RANDOM, dumps({"bytes": 16}), **kwargs)


def send_and_open(session: Session, method: str, target: str, envelope: dict, token=None):
    kwargs = {} if token is None else {"token": token}
    response = session.send_envelope(method, target, envelope, **kwargs)
    return session.open_reply(response, envelope["seq"])


# --------------------------------------------------------------------------
# §1, §2: GET /session/init
# --------------------------------------------------------------------------


def test_init_shape(client, pending):
    before = utcnow()
    init = pending()
    body = init.body
    check_fields(body, {"sessionId", "algorithm", "publicKey", "fingerprint", "expiresAt"}, what="init")
    assert SESSION_ID_RE.fullmatch(body["sessionId"])
    assert body["algorithm"] == "RSA-OAEP-256"
    assert body["publicKey"].startswith("-----BEGIN PUBLIC KEY-----\n")
    assert body["publicKey"].rstrip("\n").endswith("\n-----END PUBLIC KEY-----")
    assert init.public_key.key_size == RSA_BITS  # §1: RSA-4096

    # §1: "SHA256:" + lowercase hex SHA-256 of the DER SubjectPublicKeyInfo in the PEM.
    assert FINGERPRINT_RE.fullmatch(body["fingerprint"])
    assert body["fingerprint"] == "SHA256:" + hashlib.sha256(init.spki_der).hexdigest()
    assert init.spki_der == init.public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    expires = parse_timestamp(body["expiresAt"])
    assert expires > before - SETTINGS.clock_skew, "a pending session must not be born expired"
    init_ttl = timedelta(milliseconds=SETTINGS.init_ttl_ms or 60000)  # §9: 60 s by default
    assert near(expires, before + init_ttl, SETTINGS.clock_skew)


def test_init_gives_fresh_session_ids_and_a_stable_key(pending):
    inits = [pending() for _ in range(3)]
    assert len({i.session_id for i in inits}) == 3
    assert len({i.fingerprint for i in inits}) == 1
    if SETTINGS.pin:
        assert inits[0].fingerprint == SETTINGS.pin


def test_pinned_client_refuses_another_key_before_sending_a_secret(client):
    sent = []
    transport = Transport(SETTINGS.url)
    transport.observers += [WATCH, lambda r: sent.append(f"{r.request.method} {r.request.path_url}")]
    pinned = Client(SETTINGS.url, pin="SHA256:" + "0" * 64, transport=transport)
    with pytest.raises(PinMismatch) as refused:
        pinned.open_session(random_token(PREFIX))
    assert sent == ["GET /session/init"], "§1: refuse the key before sending any secret"
    burn_pending(client, refused.value.init.session_id, PREFIX)


# --------------------------------------------------------------------------
# §3: POST /session/key-exchange
# --------------------------------------------------------------------------


def test_key_exchange_success_and_sealed_seq0_reply(client, pending, new_token):
    init = pending()
    key = os.urandom(32)
    token = new_token()
    wrapped = wrap_key(init.public_key, key)
    assert len(wrapped) == RSA_CIPHERTEXT_BYTES
    before = utcnow()
    response = client.post_key_exchange({"sessionId": init.session_id, "wrappedKey": b64e(wrapped)}, token)
    assert response.status_code == 200, response.text

    envelope = loads(response.content)
    check_fields(envelope, ENVELOPE_FIELDS, what="key-exchange reply")
    assert is_int(envelope["seq"]) and envelope["seq"] == 0
    aad = response_aad(init.session_id, 0, 200)
    assert aad == f"kms-v1/response\n{init.session_id}\n0\n200".encode()  # §5, byte-exact
    inner = loads(open_envelope(key, aad, envelope, expected_seq=0))

    check_fields(inner, {"sessionId", "expiresAt", "ttlMs", "sliding", "maxLifetimeMs"}, what="seq-0 plaintext")
    assert inner["sessionId"] == init.session_id
    assert is_int(inner["ttlMs"]) and inner["ttlMs"] > 0
    assert is_int(inner["maxLifetimeMs"]) and inner["maxLifetimeMs"] > 0
    assert type(inner["sliding"]) is bool
    # §9: "a TTL longer than [the absolute lifetime] is capped by it".
    lifetime = min(inner["ttlMs"], inner["maxLifetimeMs"])
    assert near(parse_timestamp(inner["expiresAt"]), before + timedelta(milliseconds=lifetime), SETTINGS.clock_skew)
    if SETTINGS.session_ttl_ms is not None:
        # The TTL in force: the setting, capped by the absolute lifetime (§9).
        assert inner["ttlMs"] == min(SETTINGS.session_ttl_ms, inner["maxLifetimeMs"])
    if SETTINGS.session_max_lifetime_ms is not None:
        assert inner["maxLifetimeMs"] == SETTINGS.session_max_lifetime_ms
    if SETTINGS.session_sliding is not None:
        assert inner["sliding"] is SETTINGS.session_sliding

    session = Session(client.transport, init.session_id, key, token)
    assert_works(session)
    end_quietly(session)


def test_consumed_session_id_is_refused(client, pending, new_token):
    init = pending()
    session = client.key_exchange(new_token(), init)
    response = client.post_key_exchange(key_exchange_body(init), new_token())
    expect_plain_error(response, 401, "unknown_session")  # §3: already-used sessionId
    assert_works(session)
    end_quietly(session)


def test_unknown_session_id_is_refused(client, pending, new_token):
    init = pending()  # a real server key to wrap with; the session id is made up
    body = {"sessionId": b64url_nopad(os.urandom(16)), "wrappedKey": good_wrap(init)}
    expect_plain_error(client.post_key_exchange(body, new_token()), 401, "unknown_session")


def _unwrap_failures():
    """wrappedKey values that must all give the one §3 error (Manger's attack)."""

    def oaep(hash_algorithm, label=None):
        return padding.OAEP(mgf=padding.MGF1(hash_algorithm), algorithm=hash_algorithm, label=label)

    def url_safe(pub):
        while True:  # OAEP is randomised: retry until the encoding has a '+' or '/'
            text = good_wrap_of(pub)
            if "+" in text or "/" in text:
                return text.replace("+", "-").replace("/", "_")

    def good_wrap_of(pub):
        return b64e(wrap_key(pub, os.urandom(32)))

    return {
        "512 random bytes": lambda pub: b64e(os.urandom(512)),
        "256 bytes": lambda pub: b64e(os.urandom(256)),
        "513 bytes": lambda pub: b64e(os.urandom(513)),
        "empty": lambda pub: "",
        "OAEP-256 of 16 bytes": lambda pub: b64e(wrap_key(pub, os.urandom(16))),
        "OAEP-256 of 33 bytes": lambda pub: b64e(wrap_key(pub, os.urandom(33))),
        "OAEP-256 of nothing": lambda pub: b64e(wrap_key(pub, b"")),
        "OAEP with SHA-1": lambda pub: b64e(pub.encrypt(os.urandom(32), oaep(hashes.SHA1()))),
        "OAEP-256 with a label": lambda pub: b64e(pub.encrypt(os.urandom(32), oaep(hashes.SHA256(), b"kms"))),
        "PKCS#1 v1.5": lambda pub: b64e(pub.encrypt(os.urandom(32), padding.PKCS1v15())),
        "not base64": lambda pub: "!!!!" * 171,
        # §9: anything but padded standard base64 is refused, even around a good wrap.
        "good wrap, padding removed": lambda pub: good_wrap_of(pub).rstrip("="),
        "good wrap, URL-safe alphabet": url_safe,
        "good wrap, line break inside": lambda pub: (lambda t: t[:76] + "\n" + t[76:])(good_wrap_of(pub)),
    }


def test_every_unwrap_failure_is_one_and_the_same_error(client, pending, new_token):
    seen = {}
    for name, make in _unwrap_failures().items():
        init = pending()
        response = client.post_key_exchange(key_exchange_body(init, make(init.public_key)), new_token())
        error = expect_plain_error(response, 400, "key_exchange_failed")
        # §3 "one and the same error": same status, code, message (and field, if any).
        seen[name] = (response.status_code, tuple(sorted((k, v) for k, v in error.items() if k != "requestId")))
        # §9: an attempt that reaches the unwrap step uses its pending session up.
        retry = client.post_key_exchange(key_exchange_body(init), new_token())
        expect_plain_error(retry, 401, "unknown_session")
    distinct = set(seen.values())
    assert len(distinct) == 1, f"unwrap failures are told apart: {seen}"


@pytest.mark.parametrize(
    "token",
    [
        None,
        "",
        token_chars(31),
        PREFIX + token_chars(257 - len(PREFIX)),
        PREFIX + token_chars(20) + "/" + token_chars(20),
        PREFIX + token_chars(20) + "+" + token_chars(20),
        PREFIX + token_chars(20) + "=" + token_chars(20),
        PREFIX + token_chars(20) + " " + token_chars(20),
        PREFIX + token_chars(20) + "%41" + token_chars(20),
    ]
    + ([token_chars(48)] if PREFIX else []),  # §6: every token starts with the prefix
    ids=["missing", "empty", "31 chars", "257 chars", "slash", "plus", "equals", "space", "percent",
         *(["without prefix"] if PREFIX else [])],
)
def test_key_exchange_refuses_missing_or_malformed_token(client, pending, token):
    init = pending()
    response = client.post_key_exchange(key_exchange_body(init), token)
    expect_plain_error(response, 401, "invalid_token")  # §9


def test_key_exchange_accepts_the_longest_and_shortest_tokens(client):
    for token in (PREFIX + token_chars(max(0, 32 - len(PREFIX))), PREFIX + token_chars(256 - len(PREFIX))):
        session = client.open_session(token)
        assert_works(session)
        end_quietly(session)


def test_token_bound_to_a_live_session_is_refused(client, pending, new_token):
    token = new_token()
    session = client.open_session(token)
    response = client.post_key_exchange(key_exchange_body(pending()), token)
    expect_plain_error(response, 409, "token_in_use")
    assert_works(session)
    end_quietly(session)


def test_token_of_an_ended_session_can_be_bound_again(client, new_token):
    # §3: only a token bound to a *live* session is refused.
    token = new_token()
    first = client.open_session(token)
    expect_ok(first.end())
    second = client.open_session(token)
    assert_works(second)
    end_quietly(second)


@pytest.mark.parametrize(
    "make_body, field",
    [
        (lambda body: {**body, "extra": 1}, "extra"),
        (lambda body: {**body, "": 1}, None),
        (lambda body: {"wrappedKey": body["wrappedKey"]}, "sessionId"),
        (lambda body: {"sessionId": body["sessionId"]}, "wrappedKey"),
        (lambda body: {**body, "sessionId": 12345}, "sessionId"),
        (lambda body: dumps([body]), None),
        (lambda body: b"{", None),
        (lambda body: b"", None),
    ],
    ids=["unknown field", "unknown empty name", "no sessionId", "no wrappedKey", "numeric sessionId", "array",
         "not JSON", "empty"],
)
def test_key_exchange_refuses_a_body_of_the_wrong_shape(client, pending, new_token, make_body, field):
    response = client.post_key_exchange(make_body(key_exchange_body(pending())), new_token())
    error = expect_plain_error(response, 400, codes=KEY_EXCHANGE_BODY_CODES)
    if field is not None and "field" in error:  # §9: an error object *may* name the field
        assert error["field"] == field


def test_key_exchange_order_of_checks(client, pending, new_token):
    """§9: address, body size, token, body shape, session id, token in use, unwrap."""
    unknown_id = b64url_nopad(os.urandom(16))
    bound = new_token()
    live = client.open_session(bound)

    oversized = b"{" + b" " * SETTINGS.max_body_bytes + b"}"
    expect_plain_error(client.post_key_exchange(oversized, None), 413, "payload_too_large")

    bad_shape = {**key_exchange_body(pending()), "extra": 1}
    expect_plain_error(client.post_key_exchange(bad_shape, "short"), 401, "invalid_token")

    init = pending()
    expect_plain_error(
        client.post_key_exchange({"sessionId": unknown_id, "wrappedKey": good_wrap(init)}, None), 401, "invalid_token"
    )
    expect_plain_error(
        client.post_key_exchange({"sessionId": unknown_id, "extra": 1}, new_token()),
        400, codes=KEY_EXCHANGE_BODY_CODES,
    )
    expect_plain_error(
        client.post_key_exchange({"sessionId": unknown_id, "wrappedKey": good_wrap(init)}, bound),
        401, "unknown_session",
    )
    garbage = b64e(os.urandom(512))
    expect_plain_error(client.post_key_exchange(key_exchange_body(init, garbage), bound), 409, "token_in_use")
    end_quietly(live)


# --------------------------------------------------------------------------
# §4, §5: sealed requests and responses, POST /crypto/random
# --------------------------------------------------------------------------


def test_request_aad_is_byte_exact():
    assert request_aad("post", "/keys?limit=2", "sid", 7) == b"kms-v1/request\nPOST\n/keys?limit=2\nsid\n7"
    assert response_aad("sid", 7, 401) == b"kms-v1/response\nsid\n7\n401"


@pytest.mark.parametrize("n", [1, 16, 1024])
def test_random_returns_the_requested_number_of_bytes(session, n):
    body = expect_ok(random_call(session, n))
    check_fields(body, {"random"}, what="random response")
    assert len(b64d(body["random"])) == n


def test_random_bytes_differ(session):
    first, second = (expect_ok(random_call(session, 32))["random"] for _ in range(2))
    assert first != second


@pytest.mark.parametrize(
    "inner, field",
    [
        ({"bytes": 0}, "bytes"),
        ({"bytes": 1025}, "bytes"),
        ({"bytes": -1}, "bytes"),
        ({"bytes": 2**53}, "bytes"),
        ({"bytes": "16"}, "bytes"),
        ({"bytes": 1.0}, "bytes"),  # §9: integers are JSON integers, not 1.0
        ({"bytes": 16.0}, "bytes"),
        ({"bytes": True}, "bytes"),
        ({"bytes": None}, "bytes"),
        ({"bytes": [16]}, "bytes"),
        ({}, "bytes"),
        ({"bytes": 16, "extra": 1}, "extra"),
    ],
    ids=["0", "1025", "-1", "2^53", "string", "1.0", "16.0", "true", "null", "array", "missing", "unknown field"],
)
def test_random_refuses_invalid_inner_json_sealed(session, inner, field):
    reply = session.call("POST", RANDOM, inner)
    expect_sealed_error(reply, 400, "invalid_request", field=field)  # §4: 400 with the field named


@pytest.mark.parametrize(
    "plaintext, field",
    [
        (b'{"bytes":1e1}', "bytes"),  # §9: a number in exponent form is not a JSON integer
        (b'{"bytes":16', None),
        (b"not json", None),
        (b"[16]", None),
        (b"null", None),
        (b"", None),
    ],
    ids=["exponent", "truncated", "not JSON", "array", "null", "empty"],
)
def test_inner_request_must_be_a_json_object(session, plaintext, field):
    reply = session.call_plaintext("POST", RANDOM, plaintext)
    expect_sealed_error(reply, 400, "invalid_request", field=field)


def test_replayed_envelope_is_refused_sealed(session):
    envelope = seal_random(session)
    expect_ok(send_and_open(session, "POST", RANDOM, envelope))
    replay = send_and_open(session, "POST", RANDOM, envelope)  # open_reply checks the seq echo
    expect_sealed_error(replay, 401, "replay_detected")
    assert replay.seq == envelope["seq"]


def test_out_of_order_seqs_inside_the_window_are_accepted_once(session):
    for seq in (10, 5, 7, 1, 11):
        expect_ok(session.call("POST", RANDOM, {"bytes": 16}, seq=seq))
    for seq in (5, 10):
        expect_sealed_error(session.call("POST", RANDOM, {"bytes": 16}, seq=seq), 401, "replay_detected")


def test_anti_replay_window_bounds(session):
    """§9: with H the highest accepted seq, H-1023..H unseen are accepted; <= H-1024 refused."""
    def call(seq):
        return session.call("POST", RANDOM, {"bytes": 16}, seq=seq)

    expect_ok(call(2000))
    expect_sealed_error(call(900), 401, "replay_detected")  # far below the window
    expect_sealed_error(call(976), 401, "replay_detected")  # H - 1024
    expect_ok(call(977))  # H - 1023
    expect_sealed_error(call(977), 401, "replay_detected")
    expect_sealed_error(call(2000), 401, "replay_detected")
    expect_ok(call(2001))


def test_largest_seq_is_accepted(session):
    expect_ok(session.call("POST", RANDOM, {"bytes": 16}, seq=MAX_SEQ))  # §4: 1 .. 2^53-1
    expect_sealed_error(session.call("POST", RANDOM, {"bytes": 16}, seq=MAX_SEQ), 401, "replay_detected")
    expect_ok(session.call("DELETE", SESSION, seq=MAX_SEQ - 1))  # still inside the window


def test_concurrent_copies_of_one_envelope_are_accepted_once(session):
    """§4: the window is updated atomically per session."""
    copies = 8
    envelope = seal_random(session)
    barrier = threading.Barrier(copies)

    def send(_):
        transport = Transport(SETTINGS.url)  # one connection per thread
        transport.observers.append(WATCH)
        headers = {TOKEN_HEADER: session.token, "Content-Type": "application/json"}
        barrier.wait()
        return transport.send("POST", RANDOM, headers, envelope_json(envelope))

    with ThreadPoolExecutor(copies) as pool:
        responses = list(pool.map(send, range(copies)))
    replies = [session.open_reply(r, envelope["seq"]) for r in responses]
    assert sorted(r.status for r in replies) == [200] + [401] * (copies - 1)
    for reply in replies:
        if reply.status == 401:
            expect_sealed_error(reply, 401, "replay_detected")


def test_failed_authentication_does_not_use_the_seq_up(session):
    # §4: the window is updated only after the envelope authenticated.
    seq = session.take_seq()
    forged = seal_random(session, seq=seq, key=os.urandom(32))
    expect_plain_error(session.send_envelope("POST", RANDOM, forged), 401, "authentication_failed")
    expect_ok(send_and_open(session, "POST", RANDOM, seal_random(session, seq=seq)))


def test_authentication_is_checked_before_freshness(session):
    # §4 order: envelope authenticates (401 plain), then seq fresh (401 sealed).
    envelope = seal_random(session)
    expect_ok(send_and_open(session, "POST", RANDOM, envelope))
    forged = seal_random(session, seq=envelope["seq"], key=os.urandom(32))
    expect_plain_error(session.send_envelope("POST", RANDOM, forged), 401, "authentication_failed")


def test_freshness_is_checked_before_the_inner_json(session):
    # §4 order: seq fresh, then inner JSON; a refused inner JSON still uses its seq up.
    envelope = session.seal_request("POST", RANDOM, dumps({"bytes": 0}))
    expect_sealed_error(send_and_open(session, "POST", RANDOM, envelope), 400, "invalid_request", field="bytes")
    expect_sealed_error(send_and_open(session, "POST", RANDOM, envelope), 401, "replay_detected")


def _aad_variants():
    """AADs that differ from the one the server computes for POST /crypto/random."""

    def parts(session, seq, method="POST", target=RANDOM, session_id=None, label="kms-v1/request"):
        return [label, method, target, session_id or session.session_id, str(seq)]

    join = lambda items, sep="\n": sep.join(items).encode()  # noqa: E731
    return {
        "another path": lambda s, q: request_aad("POST", ROTATE, s.session_id, q),
        "query added": lambda s, q: request_aad("POST", RANDOM + "?bytes=16", s.session_id, q),
        "trailing slash": lambda s, q: request_aad("POST", RANDOM + "/", s.session_id, q),
        "another method": lambda s, q: request_aad("PUT", RANDOM, s.session_id, q),
        "lower-case method": lambda s, q: join(parts(s, q, method="post")),
        "another session id": lambda s, q: request_aad("POST", RANDOM, b64url_nopad(os.urandom(16)), q),
        "another seq": lambda s, q: request_aad("POST", RANDOM, s.session_id, q + 1),
        "response label": lambda s, q: join(parts(s, q, label="kms-v1/response")),
        "trailing newline": lambda s, q: request_aad("POST", RANDOM, s.session_id, q) + b"\n",
        "CRLF separators": lambda s, q: join(parts(s, q), "\r\n"),
        "empty": lambda s, q: b"",
    }


@pytest.mark.parametrize("variant", list(_aad_variants()))
def test_envelope_bound_to_another_request_is_refused_plain(session, variant):
    seq = session.take_seq()
    envelope = seal_random(session, seq=seq, aad=_aad_variants()[variant](session, seq))
    expect_plain_error(session.send_envelope("POST", RANDOM, envelope), 401, "authentication_failed")
    assert_works(session)


def test_retargeted_envelope_is_refused_and_does_nothing(session):
    # Sealed for POST /crypto/random, sent to POST /session/rotate-token.
    old_token = session.token
    envelope = session.seal_request("POST", RANDOM, dumps({}))
    expect_plain_error(session.send_envelope("POST", ROTATE, envelope), 401, "authentication_failed")
    assert session.token == old_token
    assert_works(session)  # the token was not rotated


def _flip(text: str, index: int = 0) -> str:
    data = bytearray(b64d(text))
    data[index] ^= 0x01
    return b64e(bytes(data))


EDITS = {
    "ciphertext bit": lambda s, e: {**e, "ciphertext": _flip(e["ciphertext"])},
    "last ciphertext bit": lambda s, e: {**e, "ciphertext": _flip(e["ciphertext"], -1)},
    "tag bit": lambda s, e: {**e, "tag": _flip(e["tag"])},
    "iv bit": lambda s, e: {**e, "iv": _flip(e["iv"])},
    "ciphertext truncated": lambda s, e: {**e, "ciphertext": b64e(b64d(e["ciphertext"])[:-1])},
    "tag of another envelope": lambda s, e: {**e, "tag": seal_random(s, seq=e["seq"])["tag"]},
    "another key": lambda s, e: seal_random(s, seq=e["seq"], key=os.urandom(32)),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_edited_envelope_is_refused_plain(session, edit):
    envelope = EDITS[edit](session, seal_random(session))
    expect_plain_error(session.send_envelope("POST", RANDOM, envelope), 401, "authentication_failed")
    assert_works(session)


def _url_safe_iv(session):
    # These iv bytes encode as "++++////++++////": the envelope authenticates if
    # a server decodes base64 leniently, and must still be refused (§9).
    envelope = seal_random(session, iv=bytes.fromhex("fbefbeffffff") * 2)
    assert envelope["iv"] == "++++////++++////"
    return {**envelope, "iv": "----____----____"}


def _drop(name):
    return lambda s: {k: v for k, v in seal_random(s).items() if k != name}


def _with(name, value):
    return lambda s: {**seal_random(s), name: value}


INVALID_ENVELOPES = {
    "unknown field": lambda s: {**seal_random(s), "extra": 1},
    "no seq": _drop("seq"),
    "no iv": _drop("iv"),
    "no ciphertext": _drop("ciphertext"),
    "no tag": _drop("tag"),
    "seq 0": _with("seq", 0),
    "seq -1": _with("seq", -1),
    "seq 2^53": _with("seq", 2**53),
    "seq as string": lambda s: (lambda e: {**e, "seq": str(e["seq"])})(seal_random(s)),
    "seq as 1.0": lambda s: (lambda e: {**e, "seq": float(e["seq"])})(seal_random(s)),
    "seq as 1e0": lambda s: (lambda e: envelope_json(e).replace(b'"seq":%d' % e["seq"], b'"seq":%de0' % e["seq"]))(
        seal_random(s)
    ),
    "seq true": _with("seq", True),
    "seq null": _with("seq", None),
    "iv of 11 bytes": _with("iv", b64e(os.urandom(11))),
    "iv of 13 bytes": _with("iv", b64e(os.urandom(13))),
    "iv of 16 bytes": _with("iv", b64e(os.urandom(16))),
    "iv empty": _with("iv", ""),
    "iv not a string": _with("iv", 12),
    "tag of 15 bytes": _with("tag", b64e(os.urandom(15))),
    "tag of 17 bytes": _with("tag", b64e(os.urandom(17))),
    "tag without padding": lambda s: (lambda e: {**e, "tag": e["tag"].rstrip("=")})(seal_random(s)),
    "iv in URL-safe alphabet": _url_safe_iv,
    "ciphertext with a line break": lambda s: (
        lambda e: {**e, "ciphertext": e["ciphertext"][:4] + "\n" + e["ciphertext"][4:]}
    )(seal_random(s)),
    "ciphertext null": _with("ciphertext", None),
    "array": lambda s: dumps([seal_random(s)]),
    "not JSON": lambda s: b"not json",
    "JSON null": lambda s: b"null",
    "empty body": lambda s: b"",
}


@pytest.mark.parametrize("variant", list(INVALID_ENVELOPES))
def test_malformed_envelope_is_refused_plain(session, variant):
    body = INVALID_ENVELOPES[variant](session)
    expect_plain_error(session.send_envelope("POST", RANDOM, body), 400, "invalid_envelope")
    assert_works(session)


def _padded_header_envelope(session, predicate=lambda value: True) -> str:
    """b64 of a DELETE /session envelope's JSON, re-spaced until `predicate` holds.

    (No URL-safe variant here: ASCII JSON never encodes to '+' or '/'.)
    """
    envelope = session.seal_request("DELETE", SESSION, b"")
    raw = envelope_json(envelope)
    for spaces in range(256):
        value = b64e(raw[:1] + b" " * spaces + raw[1:])  # JSON allows the whitespace
        if predicate(value):
            return value
    raise AssertionError("no spacing gives the wanted encoding")


HEADER_VARIANTS = {
    "missing": lambda s: None,
    "empty": lambda s: "",
    "padding removed": lambda s: _padded_header_envelope(s, lambda v: v.endswith("=")).rstrip("="),
    "space inside": lambda s: (lambda v: v[:8] + " " + v[8:])(_padded_header_envelope(s)),
    "not base64": lambda s: "%%%%",
    "base64 of non-JSON": lambda s: b64e(b"not json"),
    "unknown field": lambda s: b64e(envelope_json({**s.seal_request("DELETE", SESSION, b""), "extra": 1})),
    "iv of 11 bytes": lambda s: b64e(
        envelope_json({**s.seal_request("DELETE", SESSION, b""), "iv": b64e(os.urandom(11))})
    ),
}


@pytest.mark.parametrize("variant", list(HEADER_VARIANTS))
def test_malformed_envelope_header_is_refused_plain(session, variant):
    value = HEADER_VARIANTS[variant](session)
    headers = {} if value is None else {ENVELOPE_HEADER: value}
    expect_plain_error(session.send_raw("DELETE", SESSION, headers), 400, "invalid_envelope")
    assert_works(session)  # the session was not ended


def test_post_reads_the_envelope_from_the_body_only(session):
    envelope = seal_random(session)
    response = session.send_envelope("POST", RANDOM, envelope, placement="header")
    expect_plain_error(response, 400, "invalid_envelope")  # §9: envelope placement


def test_delete_reads_the_envelope_from_the_header_only(session):
    envelope = session.seal_request("DELETE", SESSION, b"")
    response = session.send_envelope("DELETE", SESSION, envelope, placement="body")
    expect_plain_error(response, 400, "invalid_envelope")  # §9: envelope placement
    assert_works(session)


def test_bodyless_request_with_a_non_empty_plaintext_is_refused_sealed(session):
    # §9: GET and DELETE "sealed plaintext must be empty (otherwise 400)". The
    # envelope authenticated, so the refusal is sealed (§5). DELETE /session
    # is the protocol's own bodyless route; the GET case is in test_keys_api_v1.
    reply = session.call_plaintext("DELETE", SESSION, b"{}")
    expect_sealed_error(reply, 400, codes=BODYLESS_PLAINTEXT_CODES)
    assert_works(session)


def test_envelope_of_one_session_with_the_token_of_another_is_refused(client, new_token):
    a, b = client.open_session(new_token()), client.open_session(new_token())
    envelope = seal_random(a)
    expect_plain_error(a.send_envelope("POST", RANDOM, envelope, token=b.token), 401, "authentication_failed")
    expect_ok(send_and_open(a, "POST", RANDOM, envelope))  # not used up by the failure
    assert_works(b)
    end_quietly(a)
    end_quietly(b)


@pytest.mark.parametrize(
    "token, codes",
    [
        (None, {"invalid_token"}),
        ("", {"invalid_token"}),
        (token_chars(31), {"invalid_token"}),
        (PREFIX + token_chars(20) + "/" + token_chars(20), {"invalid_token"}),
        (random_token(PREFIX), DEAD_TOKEN_CODES),
    ],
    ids=["missing", "empty", "31 chars", "slash", "unknown"],
)
def test_sealed_route_refuses_a_bad_token_plain(session, token, codes):
    response = session.send_envelope("POST", RANDOM, seal_random(session), token=token)
    expect_plain_error(response, 401, codes=codes)


def test_sealed_route_order_of_checks(session):
    """§4: token well-formed, session live (401) before envelope well-formed (400)."""
    expect_plain_error(session.send_raw("POST", RANDOM, body=b"not json", token="short"), 401, "invalid_token")
    expect_plain_error(
        session.send_raw("POST", RANDOM, body=b"not json", token=random_token(PREFIX)), 401, codes=DEAD_TOKEN_CODES
    )
    expect_plain_error(session.send_raw("POST", RANDOM, body=b"not json"), 400, "invalid_envelope")


def test_oversized_body_is_refused_before_any_work(session):
    body = b'{"pad":"' + b"A" * SETTINGS.max_body_bytes + b'"}'
    response = session.send_raw("POST", RANDOM, {"Content-Type": "application/json"}, body)
    expect_plain_error(response, 413, "payload_too_large")


def test_chunked_request_body_is_accepted(session):
    envelope = seal_random(session)
    raw = envelope_json(envelope)
    chunks = (raw[i : i + 16] for i in range(0, len(raw), 16))  # a generator: chunked encoding
    response = session.send_raw("POST", RANDOM, {"Content-Type": "application/json"}, chunks)
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    expect_ok(session.open_reply(response, envelope["seq"]))


# --------------------------------------------------------------------------
# §6, §7: token rotation and session end
# --------------------------------------------------------------------------


def _assert_token_is_dead(session: Session, token: str) -> None:
    response = session.send_envelope("POST", RANDOM, seal_random(session), token=token)
    expect_plain_error(response, 401, codes=DEAD_TOKEN_CODES)


def test_rotate_to_a_server_issued_token(session):
    old = session.token
    fixed_expiry = parse_timestamp(session.info["expiresAt"])
    body = expect_ok(session.rotate_token())
    check_fields(body, {"token", "expiresAt"}, what="rotate-token response")
    new = body["token"]
    # §6: prefix followed by the b64url of 32 random bytes.
    assert new != old and TOKEN_RE.fullmatch(new) and new.startswith(PREFIX)
    issued = new[len(PREFIX):]
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", issued), new
    assert len(base64.urlsafe_b64decode(issued + "=")) == 32
    expires = parse_timestamp(body["expiresAt"])
    if session.info["sliding"]:
        assert expires >= fixed_expiry  # §7: rotation moves expiresAt
    else:
        assert expires == fixed_expiry  # §7: fixed at key exchange
    assert_works(session)
    _assert_token_is_dead(session, old)


def test_rotate_to_a_client_supplied_token(session, new_token):
    old, wanted = session.token, new_token()
    body = expect_ok(session.rotate_token(wanted))
    assert body["token"] == wanted
    parse_timestamp(body["expiresAt"])
    assert_works(session)
    _assert_token_is_dead(session, old)


@pytest.mark.parametrize(
    "inner, field",
    [
        ({"token": "short"}, "token"),
        ({"token": PREFIX + token_chars(20) + "/" + token_chars(20)}, "token"),
        ({"token": PREFIX + token_chars(257 - len(PREFIX))}, "token"),
        ({"token": 12345}, "token"),
        ({"token": None}, "token"),
        ({"token": random_token(PREFIX), "extra": 1}, "extra"),
    ]
    + ([({"token": token_chars(48)}, "token")] if PREFIX else []),  # §6: must start with the prefix
    ids=["short", "slash", "257 chars", "number", "null", "unknown field", *(["no prefix"] if PREFIX else [])],
)
def test_rotate_refuses_invalid_requests_sealed(session, inner, field):
    old = session.token
    expect_sealed_error(session.call("POST", ROTATE, inner), 400, "invalid_request", field=field)
    assert session.token == old
    assert_works(session)


def test_rotate_to_a_token_in_use_is_refused(client, session, new_token):
    other = client.open_session(new_token())
    expect_sealed_error(session.call("POST", ROTATE, {"token": other.token}), 409, "token_in_use")  # §9
    assert_works(session)
    assert_works(other)
    end_quietly(other)


def test_replayed_rotation_is_refused_whatever_the_token(session):
    # The token is not in the AAD, so a copy of the rotation sent with the new
    # token authenticates and must be caught as a replay (§4); with the old
    # token it is refused before that (§4 order of checks).
    old = session.token
    envelope = session.seal_request("POST", ROTATE, dumps({}))
    first = expect_ok(send_and_open(session, "POST", ROTATE, envelope))
    session.token = first["token"]
    expect_sealed_error(send_and_open(session, "POST", ROTATE, envelope), 401, "replay_detected")
    expect_plain_error(session.send_envelope("POST", ROTATE, envelope, token=old), 401, codes=DEAD_TOKEN_CODES)
    assert_works(session)  # still the token of the first rotation


def test_rotation_is_rate_limited(session):
    for _ in range(SETTINGS.rotate_max):
        expect_ok(session.rotate_token())
    token = session.token
    reply = session.rotate_token()
    expect_sealed_error(reply, 429, "rate_limited")  # §7: sealed, since the request authenticated
    assert reply.response.headers.get("Retry-After", "").strip(), "§7: 429 with Retry-After"
    assert session.token == token
    assert_works(session)


def test_delete_session(session):
    reply = session.end()
    assert expect_ok(reply) == {}  # §7: 200 with a sealed {} (never 204)
    _assert_token_is_dead(session, session.token)
    response = session.send_envelope("DELETE", SESSION, session.seal_request("DELETE", SESSION, b""))
    expect_plain_error(response, 401, codes=DEAD_TOKEN_CODES)


# --------------------------------------------------------------------------
# §8, §9: plain errors, routes
# --------------------------------------------------------------------------


@pytest.mark.parametrize("method, target", [
    ("GET", "/no-such-route"),
    ("POST", "/crypto/no-such-route"),
    ("GET", "/session/no-such-route"),
    ("GET", "/session/init/extra"),
])
@pytest.mark.parametrize("token", [None, "short"], ids=["no token", "malformed token"])
def test_unknown_route_is_a_plain_404(client, method, target, token):
    headers = {} if token is None else {TOKEN_HEADER: token}
    response = client.transport.send(method, target, headers)
    expect_plain_error(response, 404, "not_found")  # §9: before any token check


@pytest.mark.parametrize("method, target", [
    ("POST", "/session/init"),
    ("GET", "/session/key-exchange"),
    ("GET", ROTATE),
    ("PUT", SESSION),
    ("GET", RANDOM),
])
def test_unknown_method_is_a_plain_405(client, method, target):
    response = client.transport.send(method, target, {TOKEN_HEADER: "short"})
    expect_plain_error(response, 405, "method_not_allowed")  # §9: before any token check


def test_error_responses_never_echo_the_token(client, pending, session, new_token):
    """§8. (Every response in this run is also checked by kms_wire.WATCH.)"""
    marker = PREFIX + "ECHO" + token_chars(60)
    bound = session.token
    responses = [
        client.post_key_exchange(key_exchange_body(pending()), marker + "/"),  # malformed
        client.post_key_exchange(key_exchange_body(pending()), bound),  # in use
        session.send_envelope("POST", RANDOM, seal_random(session), token=marker),  # unknown
        session.send_envelope("POST", RANDOM, seal_random(session, key=os.urandom(32))),  # forged
        session.send_raw("POST", RANDOM, body=b"{}"),  # malformed envelope
    ]
    for response in responses:
        assert response.status_code >= 400
        plain_text = response.text + json.dumps(dict(response.headers))
        assert marker not in plain_text and bound not in plain_text, response.text
    reply = session.call("POST", ROTATE, {"token": marker + "/"})
    error = expect_sealed_error(reply, 400, "invalid_request", field="token")
    assert marker not in json.dumps(error)


def test_pending_sessions_are_bounded_per_address(client):
    """§2, §9: at most KMS_PENDING_PER_ADDRESS pending sessions per address, then 429."""
    created = []
    try:
        for _ in range(SETTINGS.pending_per_address + 1):
            response = client.transport.send("GET", "/session/init")
            if response.status_code != 200:
                break
            created.append(loads(response.content)["sessionId"])
        else:
            pytest.fail(f"no refusal after {SETTINGS.pending_per_address + 1} pending sessions")
        expect_plain_error(response, 429, "too_many_pending_sessions")
        assert response.headers.get("Retry-After", "").strip(), "§2: 429 with Retry-After"
    finally:
        for session_id in created:
            burn_pending(client, session_id, PREFIX)
    burn_pending(client, client.init().session_id, PREFIX)  # used-up sessions free their slots
