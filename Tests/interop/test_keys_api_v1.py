"""Interoperability tests for the key and crypto API v1 (api-v1.md).

Every request here is sealed as protocol-v1.md section 4 says; what the tests
look at is the inner JSON. Opt-in until the server implements keys:

    KMS_INTEROP_KEYS=1 KMS_URL=http://127.0.0.1:PORT python3 -m pytest -q Tests/interop
"""

from __future__ import annotations

import os
import re
import secrets
import time
from datetime import timedelta

import pytest

from kms_wire import (
    WATCH,
    Client,
    Reply,
    Session,
    Settings,
    b64d,
    b64e,
    check_fields,
    end_quietly,
    expect_ok,
    expect_plain_error,
    expect_sealed_error,
    is_int,
    near,
    parse_timestamp,
    random_token,
    request_aad,
    utcnow,
)

SETTINGS = Settings.from_env()

pytestmark = [
    pytest.mark.skipif(
        not SETTINGS.url,
        reason="KMS_URL is not set; these tests need a live server "
        "(KMS_URL=http://127.0.0.1:PORT python3 -m pytest -q Tests/interop)",
    ),
    pytest.mark.skipif(
        os.environ.get("KMS_INTEROP_KEYS") != "1",
        reason="key API tests are opt-in: set KMS_INTEROP_KEYS=1 once the server implements /keys and /crypto",
    ),
]

KEY_ID_RE = re.compile(r"[A-Za-z0-9._~-]+")  # "URL-safe"
ALIAS_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
STATUSES = {"active", "grace", "retired"}
MAX_PLAINTEXT = 65536

# GET whose sealed plaintext is not empty: protocol §9 says "400", no code (see
# test_protocol_v1.BODYLESS_PLAINTEXT_CODES).
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
def session(client):
    s = client.open_session(random_token(SETTINGS.token_prefix))
    yield s
    end_quietly(s)


@pytest.fixture
def key(session):
    """A fresh key without alias: its generate response."""
    return generate(session)


def new_alias() -> str:
    # Starts with "interop." so that it cannot start with the server's keyId prefix.
    return "interop." + secrets.token_hex(8)


def key_prefix(key_id: str) -> str | None:
    """The fixed keyId prefix ("key_" in the docs' example), when it can be seen."""
    match = re.match(r"[A-Za-z]+[_-]", key_id)
    return match.group(0) if match else None


def unknown_key_ref(known_key_id: str) -> str:
    return (key_prefix(known_key_id) or "missing") + secrets.token_hex(12)


def generate(session: Session, alias: str | None = None) -> dict:
    before = utcnow()
    body = expect_ok(session.call("POST", "/keys/generate", {} if alias is None else {"alias": alias}))
    check_fields(body, {"keyId", "version", "createdAt", "status"}, what="generate response")
    assert isinstance(body["keyId"], str) and KEY_ID_RE.fullmatch(body["keyId"]), body
    assert is_int(body["version"]) and body["version"] == 1
    assert body["status"] == "active"
    assert near(parse_timestamp(body["createdAt"]), before, SETTINGS.clock_skew)
    return body


def check_metadata(meta: dict) -> dict:
    """The GET /keys/{keyId} shape; returns {version: version object}."""
    # lifecycle-v1 section 5 extends api-v1's metadata; its members are allowed here and checked by
    # test_lifecycle_v1.py (a server that implements only api-v1 sends none of them).
    lifecycle = {"state", "deletionDate", "pendingWindowDays", "rotationPeriodDays", "nextRotationAt",
                 "description", "tags", "aliases", "awsKeyId"}
    check_fields(meta, {"keyId", "createdAt", "activeVersion", "versions"}, {"alias"} | lifecycle,
                 what="key metadata")
    assert KEY_ID_RE.fullmatch(meta["keyId"])
    if "alias" in meta:
        assert isinstance(meta["alias"], str) and ALIAS_RE.fullmatch(meta["alias"])
    parse_timestamp(meta["createdAt"])
    assert is_int(meta["activeVersion"])
    assert isinstance(meta["versions"], list) and meta["versions"]
    versions = {}
    now = utcnow()
    for item in meta["versions"]:
        # "graceUntil is present on every non-active version" (and so absent on the active one).
        check_fields(item, {"version", "createdAt", "status"}, {"graceUntil"}, what="key version")
        assert is_int(item["version"]) and item["version"] not in versions
        parse_timestamp(item["createdAt"])
        assert item["status"] in STATUSES
        assert ("graceUntil" in item) == (item["status"] != "active"), item
        if item["status"] == "grace":
            assert parse_timestamp(item["graceUntil"]) > now - SETTINGS.clock_skew
        if item["status"] == "retired":
            assert parse_timestamp(item["graceUntil"]) <= now + SETTINGS.clock_skew
        versions[item["version"]] = item
    assert set(versions) == set(range(1, len(versions) + 1)), "versions are 1, 2, 3, ..."
    active = [v for v in versions.values() if v["status"] == "active"]
    assert len(active) == 1 and active[0]["version"] == meta["activeVersion"], "exactly one active version"
    return versions


def metadata(session: Session, key_ref: str) -> dict:
    meta = expect_ok(session.call("GET", f"/keys/{key_ref}"))
    check_metadata(meta)
    return meta


def with_aad(inner: dict, aad: bytes | None) -> dict:
    return inner if aad is None else {**inner, "aad": b64e(aad)}


def encrypt(session: Session, key_ref: str, plaintext: bytes, aad: bytes | None = None) -> dict:
    inner = with_aad({"keyId": key_ref, "plaintext": b64e(plaintext)}, aad)
    body = expect_ok(session.call("POST", "/crypto/encrypt", inner))
    check_fields(body, {"keyId", "version", "ciphertext"}, what="encrypt response")
    assert is_int(body["version"]) and isinstance(body["ciphertext"], str) and body["ciphertext"]
    return body


def decrypt_reply(session: Session, ciphertext, aad: bytes | None = None) -> Reply:
    return session.call("POST", "/crypto/decrypt", with_aad({"ciphertext": ciphertext}, aad))


def decrypt(session: Session, ciphertext: str, aad: bytes | None = None) -> dict:
    body = expect_ok(decrypt_reply(session, ciphertext, aad))
    check_fields(body, {"keyId", "version", "plaintext"}, what="decrypt response")
    return body


def rotate(session: Session, key_ref: str) -> dict:
    body = expect_ok(session.call("POST", "/keys/rotate", {"keyId": key_ref}))
    check_fields(body, {"keyId", "version", "createdAt", "status"}, what="rotate response")
    assert body["status"] == "active" and is_int(body["version"])
    return body


def list_page(session: Session, limit: int | None = None, after: str | None = None) -> dict:
    query = "&".join(f"{name}={value}" for name, value in (("limit", limit), ("after", after)) if value is not None)
    page = expect_ok(session.call("GET", "/keys" + (f"?{query}" if query else "")))
    check_fields(page, {"keys"}, {"next"}, what="key list")
    assert isinstance(page["keys"], list)
    for item in page["keys"]:
        check_metadata(item)
    if "next" in page:
        assert isinstance(page["next"], str) and page["next"]
    return page


# --------------------------------------------------------------------------
# Keys: generate, aliases, rotate, metadata
# --------------------------------------------------------------------------


def test_generate_without_alias(session, key):
    meta = metadata(session, key["keyId"])
    assert meta["keyId"] == key["keyId"]
    assert "alias" not in meta
    assert parse_timestamp(meta["createdAt"]) == parse_timestamp(key["createdAt"])
    assert meta["activeVersion"] == 1
    (version,) = meta["versions"]
    assert version == {"version": 1, "createdAt": version["createdAt"], "status": "active"}


def test_generate_with_alias(session):
    alias = new_alias()
    key = generate(session, alias)
    assert key["keyId"] != alias  # responses always give the real keyId
    by_alias = metadata(session, alias)
    by_id = metadata(session, key["keyId"])
    assert by_alias == by_id
    assert by_id["keyId"] == key["keyId"] and by_id["alias"] == alias


def test_longest_alias_is_accepted(session):
    alias = "z" + secrets.token_hex(32)[:63]
    assert len(alias) == 64
    assert metadata(session, generate(session, alias)["keyId"])["alias"] == alias


def test_alias_in_use_is_refused(session):
    alias = new_alias()
    generate(session, alias)
    expect_sealed_error(session.call("POST", "/keys/generate", {"alias": alias}), 409, "alias_in_use")


@pytest.mark.parametrize(
    "alias",
    ["", "-abc", ".abc", "_abc", "a" * 65, "a b", "a/b", "a~b", "caf\u00e9", 123, None, ["a"]],
    ids=["empty", "dash first", "dot first", "underscore first", "65 chars", "space", "slash", "tilde",
         "non-ASCII", "number", "null", "array"],
)
def test_invalid_alias_is_refused(session, alias):
    reply = session.call("POST", "/keys/generate", {"alias": alias})
    expect_sealed_error(reply, 400, "invalid_request", field="alias")


def test_alias_cannot_start_with_the_key_id_prefix(session, key):
    prefix = key_prefix(key["keyId"])
    if prefix is None:
        pytest.skip(f"no visible keyId prefix in {key['keyId']!r}")
    reply = session.call("POST", "/keys/generate", {"alias": prefix + secrets.token_hex(4)})
    expect_sealed_error(reply, 400, "invalid_request", field="alias")


def test_generate_refuses_unknown_fields(session):
    reply = session.call("POST", "/keys/generate", {"alias": new_alias(), "extra": 1})
    expect_sealed_error(reply, 400, "invalid_request", field="extra")


def test_a_member_named_empty_is_refused_with_a_well_formed_error(session, key):
    # Found by fuzzing: the error's "field" was "", which Reply rejects as a malformed error object.
    for target, inner in (("/keys/generate", {"": 1}), ("/crypto/encrypt", {"keyId": key["keyId"], "plaintext": "", "": 1})):
        error = expect_sealed_error(session.call("POST", target, inner), 400, "invalid_request")
        assert "field" not in error, error


def test_rotate_by_id_and_by_alias(session):
    alias = new_alias()
    key = generate(session, alias)
    first = rotate(session, key["keyId"])
    rotated_at = utcnow()
    assert first["keyId"] == key["keyId"] and first["version"] == 2
    assert parse_timestamp(first["createdAt"]) >= parse_timestamp(key["createdAt"])
    second = rotate(session, alias)
    assert second["keyId"] == key["keyId"] and second["version"] == 3

    meta = metadata(session, alias)
    versions = check_metadata(meta)
    assert meta["activeVersion"] == 3 and set(versions) == {1, 2, 3}
    assert [versions[v]["status"] for v in (1, 2, 3)] == ["grace", "grace", "active"]
    # Rotate's createdAt is the new version's.
    assert parse_timestamp(versions[2]["createdAt"]) == parse_timestamp(first["createdAt"])
    assert parse_timestamp(versions[3]["createdAt"]) == parse_timestamp(second["createdAt"])
    # graceUntil = the moment the version stopped being active + KMS_KEY_GRACE_MS.
    grace = timedelta(milliseconds=SETTINGS.key_grace_ms)
    assert near(parse_timestamp(versions[1]["graceUntil"]), rotated_at + grace, SETTINGS.clock_skew)
    assert near(parse_timestamp(versions[2]["graceUntil"]), utcnow() + grace, SETTINGS.clock_skew)


@pytest.mark.parametrize(
    "inner, field",
    [({}, "keyId"), ({"keyId": 7}, "keyId"), ({"keyId": None}, "keyId"), ({"keyId": "x", "extra": 1}, "extra")],
    ids=["missing", "number", "null", "unknown field"],
)
def test_rotate_refuses_invalid_requests(session, inner, field):
    expect_sealed_error(session.call("POST", "/keys/rotate", inner), 400, "invalid_request", field=field)


def test_unknown_key_is_not_found_everywhere(session, key):
    for ref in (unknown_key_ref(key["keyId"]), new_alias()):
        expect_sealed_error(session.call("GET", f"/keys/{ref}"), 404, "key_not_found")
        expect_sealed_error(session.call("POST", "/keys/rotate", {"keyId": ref}), 404, "key_not_found")
        expect_sealed_error(
            session.call("POST", "/crypto/encrypt", {"keyId": ref, "plaintext": b64e(b"x")}), 404, "key_not_found"
        )
        expect_sealed_error(session.call("POST", "/crypto/datakey", {"keyId": ref}), 404, "key_not_found")


def test_get_with_a_non_empty_plaintext_is_refused_sealed(session, key):
    # protocol §9: GET's sealed plaintext must be empty (otherwise 400), sealed (§5).
    reply = session.call_plaintext("GET", f"/keys/{key['keyId']}", b"{}")
    expect_sealed_error(reply, 400, codes=BODYLESS_PLAINTEXT_CODES)


def test_get_envelope_is_bound_to_its_target(session, key):
    other = generate(session)
    envelope = session.seal_request("GET", f"/keys/{key['keyId']}", b"")
    response = session.send_envelope("GET", f"/keys/{other['keyId']}", envelope)
    expect_plain_error(response, 401, "authentication_failed")
    envelope = session.seal_request("GET", "/keys?limit=1", b"")
    expect_plain_error(session.send_envelope("GET", "/keys?limit=2", envelope), 401, "authentication_failed")


def test_get_with_envelope_in_body_is_refused(session, key):
    envelope = session.seal_request("GET", f"/keys/{key['keyId']}", b"")
    response = session.send_envelope("GET", f"/keys/{key['keyId']}", envelope, placement="body")
    expect_plain_error(response, 400, "invalid_envelope")  # protocol §9: GET reads the header only


def test_request_aad_carries_the_query():
    assert request_aad("GET", "/keys?limit=2&after=k", "s", 3) == b"kms-v1/request\nGET\n/keys?limit=2&after=k\ns\n3"


# --------------------------------------------------------------------------
# GET /keys paging
# --------------------------------------------------------------------------


def test_list_keys_is_sorted_and_pages_with_after_and_next(session):
    mine = {generate(session)["keyId"] for _ in range(3)}

    # The whole list, following `next`.
    everything, after = [], None
    while True:
        page = list_page(session, limit=1000, after=after)
        everything += [item["keyId"] for item in page["keys"]]
        if "next" not in page:
            break
        assert page["keys"], "`next` is present only when more keys follow"
        after = page["next"]
    assert everything == sorted(everything) and len(set(everything)) == len(everything), "sorted by keyId, no repeats"
    assert mine <= set(everything)

    # One key per page through our three keys, starting just before the first.
    start = everything.index(min(mine))
    after = everything[start - 1] if start > 0 else None
    walked = []
    for _ in range(3):
        page = list_page(session, limit=1, after=after)
        assert len(page["keys"]) == 1
        walked.append(page["keys"][0]["keyId"])
        more = start + len(walked) < len(everything)
        assert ("next" in page) == more, "`next` is present only when more keys follow"
        if not more:
            break
        after = page["next"]
    assert walked == everything[start : start + len(walked)]

    # `after` is exclusive; the last key has nothing after it.
    assert list_page(session, limit=1000, after=everything[-1]) == {"keys": []}
    # The default limit is 100.
    assert len(list_page(session)["keys"]) == min(100, len(everything))


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "abc", "1.0", "10x"])
def test_list_keys_refuses_a_bad_limit(session, limit):
    reply = session.call("GET", f"/keys?limit={limit}")
    expect_sealed_error(reply, 400, "invalid_request", field="limit")


def test_list_keys_accepts_the_limit_bounds(session, key):
    assert len(list_page(session, limit=1)["keys"]) == 1
    assert len(list_page(session, limit=1000)["keys"]) >= 1


# --------------------------------------------------------------------------
# encrypt / decrypt
# --------------------------------------------------------------------------


@pytest.mark.parametrize("aad", [None, b"", b"photos/2026/img-0001.jpg"], ids=["no aad", "empty aad", "aad"])
def test_encrypt_then_decrypt(session, key, aad):
    plaintext = os.urandom(100)
    sealed = encrypt(session, key["keyId"], plaintext, aad)
    assert sealed["keyId"] == key["keyId"] and sealed["version"] == 1
    again = encrypt(session, key["keyId"], plaintext, aad)
    assert again["ciphertext"] != sealed["ciphertext"], "a random IV per encryption"
    opened = decrypt(session, sealed["ciphertext"], aad)
    assert opened == {"keyId": key["keyId"], "version": 1, "plaintext": b64e(plaintext)}


def test_encrypt_by_alias_answers_the_real_key_id(session):
    alias = new_alias()
    key = generate(session, alias)
    sealed = encrypt(session, alias, b"secret")
    assert sealed["keyId"] == key["keyId"]
    assert decrypt(session, sealed["ciphertext"])["plaintext"] == b64e(b"secret")


def test_absent_aad_equals_empty_aad(session, key):
    assert decrypt(session, encrypt(session, key["keyId"], b"x")["ciphertext"], b"")["plaintext"] == b64e(b"x")
    assert decrypt(session, encrypt(session, key["keyId"], b"x", b"")["ciphertext"])["plaintext"] == b64e(b"x")


def test_wrong_aad_fails_decryption(session, key):
    with_context = encrypt(session, key["keyId"], b"secret", b"context-a")["ciphertext"]
    without = encrypt(session, key["keyId"], b"secret")["ciphertext"]
    for ciphertext, aad in ((with_context, b"context-b"), (with_context, None), (without, b"context-a")):
        expect_sealed_error(decrypt_reply(session, ciphertext, aad), 400, "decryption_failed")


def _other_char_of_the_same_kind(char: str) -> str | None:
    for kind in ("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz", "0123456789"):
        if char in kind:
            return kind[(kind.index(char) + 1) % len(kind)]
    return None  # leave separators alone


def test_edited_ciphertext_is_refused(session, key):
    ciphertext = encrypt(session, key["keyId"], os.urandom(64))["ciphertext"]
    # Ciphertexts are opaque, so the edits are spread over the string's second
    # half (where an IV/body/tag must be). No edit may decrypt; the docs'
    # "edited ciphertext -> 400 decryption_failed" must show up at least once,
    # and other refusals must be the documented ones for a changed header.
    codes = []
    for position in range(len(ciphertext) // 2, len(ciphertext) - 1, max(1, len(ciphertext) // 16)):
        swapped = _other_char_of_the_same_kind(ciphertext[position])
        if swapped is None:
            continue
        reply = decrypt_reply(session, ciphertext[:position] + swapped + ciphertext[position + 1 :])
        assert reply.status != 200, f"an edited ciphertext decrypted (position {position})"
        error = reply.error
        codes.append(error["code"])
        assert (reply.status, error["code"]) in {
            (400, "decryption_failed"),
            (400, "invalid_request"),
            (404, "key_not_found"),
            (404, "key_version_not_found"),
        }, reply.body
        if error["code"] == "invalid_request":
            assert error.get("field") == "ciphertext"
    assert "decryption_failed" in codes, codes


@pytest.mark.parametrize(
    "ciphertext",
    ["", "not a ciphertext", "%%%%", "vault:v1:AAAA", 42, None, ["x"]],
    ids=["empty", "words", "symbols", "foreign format", "number", "null", "array"],
)
def test_malformed_ciphertext_is_refused(session, ciphertext):
    expect_sealed_error(decrypt_reply(session, ciphertext), 400, "invalid_request", field="ciphertext")


def test_missing_ciphertext_is_refused(session):
    expect_sealed_error(session.call("POST", "/crypto/decrypt", {}), 400, "invalid_request", field="ciphertext")


def test_empty_plaintext_is_allowed(session, key):
    sealed = encrypt(session, key["keyId"], b"")
    assert decrypt(session, sealed["ciphertext"])["plaintext"] == ""


def test_plaintext_size_limit(session, key):
    largest = os.urandom(MAX_PLAINTEXT)
    assert decrypt(session, encrypt(session, key["keyId"], largest)["ciphertext"])["plaintext"] == b64e(largest)
    too_large = b64e(os.urandom(MAX_PLAINTEXT + 1))
    reply = session.call("POST", "/crypto/encrypt", {"keyId": key["keyId"], "plaintext": too_large})
    expect_sealed_error(reply, 400, "invalid_request", field="plaintext")


@pytest.mark.parametrize("field", ["plaintext", "aad"])
@pytest.mark.parametrize(
    "value",
    ["YWJj ", "YWI", "YW\nJj", "+/-_", "YQ=", 5, None],
    ids=["trailing space", "no padding", "line break", "URL-safe", "bad padding", "number", "null"],
)
def test_encrypt_refuses_bad_base64(session, key, field, value):
    inner = {"keyId": key["keyId"], "plaintext": b64e(b"abc"), field: value}
    expect_sealed_error(session.call("POST", "/crypto/encrypt", inner), 400, "invalid_request", field=field)


@pytest.mark.parametrize(
    "inner, field",
    [
        ({"plaintext": "YWJj"}, "keyId"),
        ({"keyId": "KEY"}, "plaintext"),
        ({"keyId": "KEY", "plaintext": "YWJj", "extra": 1}, "extra"),
    ],
    ids=["no keyId", "no plaintext", "unknown field"],
)
def test_encrypt_refuses_invalid_requests(session, key, inner, field):
    inner = {k: (key["keyId"] if v == "KEY" else v) for k, v in inner.items()}
    expect_sealed_error(session.call("POST", "/crypto/encrypt", inner), 400, "invalid_request", field=field)


def test_decrypt_refuses_unknown_fields(session, key):
    ciphertext = encrypt(session, key["keyId"], b"x")["ciphertext"]
    reply = session.call("POST", "/crypto/decrypt", {"ciphertext": ciphertext, "keyId": key["keyId"]})
    expect_sealed_error(reply, 400, "invalid_request", field="keyId")  # decrypt takes no keyId


# --------------------------------------------------------------------------
# rewrap
# --------------------------------------------------------------------------


@pytest.mark.parametrize("aad", [None, b"ctx"], ids=["no aad", "aad"])
def test_rewrap_moves_to_the_active_version(session, key, aad):
    plaintext = os.urandom(48)
    old = encrypt(session, key["keyId"], plaintext, aad)
    assert old["version"] == 1
    assert rotate(session, key["keyId"])["version"] == 2

    body = expect_ok(session.call("POST", "/crypto/rewrap", with_aad({"ciphertext": old["ciphertext"]}, aad)))
    check_fields(body, {"keyId", "version", "ciphertext"}, what="rewrap response")
    assert body["keyId"] == key["keyId"] and body["version"] == 2
    assert body["ciphertext"] != old["ciphertext"]
    opened = decrypt(session, body["ciphertext"], aad)
    assert opened == {"keyId": key["keyId"], "version": 2, "plaintext": b64e(plaintext)}
    # The old version is in grace: it still decrypts.
    assert decrypt(session, old["ciphertext"], aad)["version"] == 1

    # Rewrapping a ciphertext of the active version re-encrypts it anyway.
    again = expect_ok(session.call("POST", "/crypto/rewrap", with_aad({"ciphertext": body["ciphertext"]}, aad)))
    assert again["version"] == 2 and again["ciphertext"] != body["ciphertext"]


def test_rewrap_needs_the_same_aad(session, key):
    ciphertext = encrypt(session, key["keyId"], b"secret", b"ctx")["ciphertext"]
    for aad in (None, b"other"):
        reply = session.call("POST", "/crypto/rewrap", with_aad({"ciphertext": ciphertext}, aad))
        expect_sealed_error(reply, 400, "decryption_failed")


def test_rewrap_refuses_malformed_ciphertext(session):
    reply = session.call("POST", "/crypto/rewrap", {"ciphertext": "not a ciphertext"})
    expect_sealed_error(reply, 400, "invalid_request", field="ciphertext")


# --------------------------------------------------------------------------
# datakey
# --------------------------------------------------------------------------


@pytest.mark.parametrize("size", [None, 16, 64], ids=["default 32", "16", "64"])
@pytest.mark.parametrize("aad", [None, b"ctx"], ids=["no aad", "aad"])
def test_datakey_ciphertext_decrypts_to_its_plaintext(session, key, size, aad):
    inner = with_aad({"keyId": key["keyId"]} if size is None else {"keyId": key["keyId"], "bytes": size}, aad)
    body = expect_ok(session.call("POST", "/crypto/datakey", inner))
    check_fields(body, {"keyId", "version", "plaintext", "ciphertext"}, what="datakey response")
    assert body["keyId"] == key["keyId"] and body["version"] == 1
    assert len(b64d(body["plaintext"])) == (32 if size is None else size)
    opened = decrypt(session, body["ciphertext"], aad)
    assert opened == {"keyId": key["keyId"], "version": 1, "plaintext": body["plaintext"]}
    if aad is not None:
        expect_sealed_error(decrypt_reply(session, body["ciphertext"]), 400, "decryption_failed")


def test_datakeys_differ(session, key):
    first, second = (expect_ok(session.call("POST", "/crypto/datakey", {"keyId": key["keyId"]})) for _ in range(2))
    assert first["plaintext"] != second["plaintext"]


@pytest.mark.parametrize("size", [15, 65, 0, -1, "32", 32.0, None, True],
                         ids=["15", "65", "0", "-1", "string", "32.0", "null", "true"])
def test_datakey_refuses_a_bad_size(session, key, size):
    reply = session.call("POST", "/crypto/datakey", {"keyId": key["keyId"], "bytes": size})
    expect_sealed_error(reply, 400, "invalid_request", field="bytes")


def test_datakey_by_alias(session):
    alias = new_alias()
    key = generate(session, alias)
    body = expect_ok(session.call("POST", "/crypto/datakey", {"keyId": alias}))
    assert body["keyId"] == key["keyId"]


# --------------------------------------------------------------------------
# Retired versions (only with a short grace on the server)
# --------------------------------------------------------------------------


@pytest.mark.skipif(
    SETTINGS.key_grace_ms > 10000,
    reason="set KMS_KEY_GRACE_MS (the server's value, at most 10000) to test retired versions",
)
def test_retired_version_is_refused_with_a_clear_error(session, key):
    old = encrypt(session, key["keyId"], b"secret")
    rotate(session, key["keyId"])
    time.sleep(SETTINGS.key_grace_ms / 1000 + 1)
    versions = check_metadata(metadata(session, key["keyId"]))
    assert versions[1]["status"] == "retired"
    grace_ended = versions[1]["graceUntil"]

    for route in ("/crypto/decrypt", "/crypto/rewrap"):
        error = expect_sealed_error(
            session.call("POST", route, {"ciphertext": old["ciphertext"]}), 409, "key_version_retired"
        )
        # "message names the version and when grace ended": read strictly as the
        # version number and the graceUntil instant (to the minute) appearing in it.
        assert "1" in error["message"], error
        assert grace_ended[:16] in error["message"], error
