"""lifecycle-v1 (/work/shared/design/lifecycle-v1.md) with the independent Python client.

Without KMS_INTEROP_LIFECYCLE_PHASE: the routes, bodies and codes of sections 1 to 5 against a live
server (KMS_URL). With KMS_INTEROP_LIFECYCLE_PHASE=before / after and KMS_INTEROP_LIFECYCLE_STATE=FILE: rule
9.1's end-to-end test — "before" schedules a deletion and a rotation and records what it made;
the server is then restarted with KMS_TEST_CLOCK_OFFSET_MS eight days ahead, and "after" checks
that the scheduler deleted and rotated exactly as the contract says.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from kms_wire import Client, Settings, b64e, end_quietly, expect_ok, expect_sealed_error, random_token

SETTINGS = Settings.from_env()
PHASE = os.environ.get("KMS_INTEROP_LIFECYCLE_PHASE", "")
STATE = os.environ.get("KMS_INTEROP_LIFECYCLE_STATE", "")
live = pytest.mark.skipif(not SETTINGS.url or PHASE != "", reason="needs KMS_URL (and no KMS_INTEROP_LIFECYCLE_PHASE)")
before = pytest.mark.skipif(PHASE != "before" or not STATE, reason="KMS_INTEROP_LIFECYCLE_PHASE=before")
after = pytest.mark.skipif(PHASE != "after" or not STATE, reason="KMS_INTEROP_LIFECYCLE_PHASE=after")

METADATA = {"keyId", "createdAt", "activeVersion", "versions", "state", "rotationPeriodDays", "description",
            "tags", "aliases"}
METADATA_OPTIONAL = {"alias", "deletionDate", "pendingWindowDays", "nextRotationAt", "awsKeyId"}


@pytest.fixture
def session():
    client = Client(SETTINGS.url, pin=SETTINGS.pin)
    opened = client.open_session(random_token(SETTINGS.token_prefix))
    yield opened
    end_quietly(opened)


def unique(name: str) -> str:
    return f"{name}-{os.urandom(4).hex()}"


def metadata(reply) -> dict:
    meta = expect_ok(reply)
    assert METADATA <= meta.keys() and meta.keys() <= METADATA | METADATA_OPTIONAL, sorted(meta)
    assert meta["aliases"] == sorted(meta["aliases"], key=lambda a: a.encode())
    assert meta.get("alias") == (meta["aliases"][0] if meta["aliases"] else None)
    return meta


def generate(session, **body) -> dict:
    key_id = expect_ok(session.call("POST", "/keys/generate", body))["keyId"]
    return metadata(session.call("GET", f"/keys/{key_id}"))


@live
def test_state_routes_and_their_409s(session):
    alias = unique("py-state")
    key = generate(session, alias=alias, description="py", tags={"k": "v"})
    assert key["state"] == "enabled" and key["rotationPeriodDays"] is None and key["tags"] == {"k": "v"}
    sealed = expect_ok(session.call("POST", "/crypto/encrypt", {"keyId": alias, "plaintext": b64e(b"x")}))
    assert metadata(session.call("POST", f"/keys/{alias}/disable", {}))["state"] == "disabled"
    assert metadata(session.call("POST", f"/keys/{alias}/disable", {}))["state"] == "disabled"
    expect_sealed_error(session.call("POST", "/crypto/decrypt", {"ciphertext": sealed["ciphertext"]}), 409,
                        "key_disabled")
    expect_sealed_error(session.call("POST", "/keys/rotate", {"keyId": alias}), 409, "key_disabled")
    expect_sealed_error(session.call("POST", f"/keys/{alias}/rotation", {"periodDays": 30}), 409, "key_disabled")
    assert metadata(session.call("POST", f"/keys/{alias}/enable", {}))["state"] == "enabled"
    expect_ok(session.call("POST", "/crypto/decrypt", {"ciphertext": sealed["ciphertext"]}))
    pending = metadata(session.call("POST", f"/keys/{alias}/schedule-deletion", {"pendingWindowDays": 7}))
    assert pending["state"] == "pending_deletion" and pending["pendingWindowDays"] == 7 and "deletionDate" in pending
    for route in ("enable", "disable", "schedule-deletion"):
        expect_sealed_error(session.call("POST", f"/keys/{alias}/{route}", {}), 409, "key_pending_deletion")
    expect_sealed_error(session.call("POST", "/crypto/encrypt", {"keyId": alias, "plaintext": b64e(b"x")}), 409,
                        "key_pending_deletion")
    cancelled = metadata(session.call("POST", f"/keys/{alias}/cancel-deletion", {}))
    assert cancelled["state"] == "disabled" and "deletionDate" not in cancelled
    expect_sealed_error(session.call("POST", f"/keys/{alias}/cancel-deletion", {}), 409, "key_not_pending_deletion")
    for days in (6, 31, "7"):
        expect_sealed_error(session.call("POST", f"/keys/{alias}/schedule-deletion", {"pendingWindowDays": days}),
                            400, field="pendingWindowDays")


@live
def test_rotation_description_and_tags(session):
    alias = unique("py-labels")
    generate(session, alias=alias)
    scheduled = metadata(session.call("POST", f"/keys/{alias}/rotation", {"periodDays": 90}))
    assert scheduled["rotationPeriodDays"] == 90 and "nextRotationAt" in scheduled
    cleared = metadata(session.call("POST", f"/keys/{alias}/rotation", {"periodDays": None}))
    assert cleared["rotationPeriodDays"] is None and "nextRotationAt" not in cleared
    for days in (0, 3651):
        expect_sealed_error(session.call("POST", f"/keys/{alias}/rotation", {"periodDays": days}), 400,
                            field="periodDays")
    assert metadata(session.call("POST", f"/keys/{alias}/description", {"description": "a\tb"}))["description"] == "a\tb"
    expect_sealed_error(session.call("POST", f"/keys/{alias}/description", {"description": "a\u0000"}), 400,
                        field="description")
    tags = metadata(session.call("POST", f"/keys/{alias}/tags", {"set": {"a": "1", "b": "2"}}))["tags"]
    assert tags == {"a": "1", "b": "2"}
    tags = metadata(session.call("POST", f"/keys/{alias}/tags", {"set": {"a": "3"}, "remove": ["b", "zz"]}))["tags"]
    assert tags == {"a": "3"}
    expect_sealed_error(session.call("POST", f"/keys/{alias}/tags", {"set": {"aws:x": "1"}}), 400, field="set.aws:x")
    expect_sealed_error(session.call("POST", f"/keys/{alias}/tags", {"remove": ["ok", "\u0001"]}), 400,
                        field="remove[1]")
    expect_sealed_error(session.call("POST", f"/keys/{alias}/tags", {"set": {"a": "1"}, "remove": ["a"]}), 400,
                        field="set")
    # Rule 9.7: lone surrogates are refused in tag keys and values, `field` naming the tag key.
    for raw, field in [(rb'{"set":{"d":"a\udc00"}}', "set.d"), (rb'{"remove":["ok","x\ud800"]}', "remove[1]")]:
        expect_sealed_error(session.call_plaintext("POST", f"/keys/{alias}/tags", raw), 400, field=field)


@live
def test_aliases_are_records(session):
    first, second, extra = unique("py-a1"), unique("py-a2"), unique("py-a3")
    one = generate(session, alias=first)
    two = generate(session, alias=second)
    created = expect_ok(session.call("POST", "/aliases", {"alias": extra, "keyId": first}))
    assert created["keyId"] == one["keyId"] and set(created) == {"alias", "keyId", "createdAt", "updatedAt"}
    expect_sealed_error(session.call("POST", "/aliases", {"alias": extra, "keyId": second}), 409, "alias_in_use")
    expect_sealed_error(session.call("POST", "/aliases", {"alias": "rotate", "keyId": second}), 400, field="alias")
    assert metadata(session.call("GET", f"/keys/{extra}"))["aliases"] == sorted([first, extra], key=str.encode)
    moved = expect_ok(session.call("POST", f"/aliases/{extra}", {"keyId": two["keyId"]}))
    assert moved["keyId"] == two["keyId"]
    listed = expect_ok(session.call("GET", f"/aliases?keyId={two['keyId']}"))
    assert [a["alias"] for a in listed["aliases"]] == sorted([second, extra], key=str.encode)
    assert expect_ok(session.call("GET", "/aliases?keyId=no-such-key")) == {"aliases": []}
    assert expect_ok(session.call("DELETE", f"/aliases/{extra}")) == {}
    expect_sealed_error(session.call("DELETE", f"/aliases/{extra}"), 404, "alias_not_found")
    expect_sealed_error(session.call("GET", f"/keys/{extra}"), 404, "key_not_found")


@before
def test_before_the_week_passes(session):
    doomed, rotating, braked = unique("py-doomed"), unique("py-rotating"), unique("py-braked")
    state = {}
    for alias in (doomed, rotating, braked):
        key = generate(session, alias=alias)
        sealed = expect_ok(session.call("POST", "/crypto/encrypt", {"keyId": alias, "plaintext": b64e(b"kept")}))
        state[alias] = {"keyId": key["keyId"], "ciphertext": sealed["ciphertext"]}
    metadata(session.call("POST", f"/keys/{doomed}/schedule-deletion", {"pendingWindowDays": 7}))
    metadata(session.call("POST", f"/keys/{rotating}/rotation", {"periodDays": 1}))
    metadata(session.call("POST", f"/keys/{braked}/disable", {}))
    with open(STATE, "w", encoding="utf-8") as handle:
        json.dump({"doomed": doomed, "rotating": rotating, "braked": braked, "keys": state}, handle)


@after
def test_after_the_week_passed(session):
    with open(STATE, encoding="utf-8") as handle:
        state = json.load(handle)
    doomed, rotating, braked = state["doomed"], state["rotating"], state["braked"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        gone = session.call("GET", f"/keys/{state['keys'][doomed]['keyId']}").status == 404
        rotated = expect_ok(session.call("GET", f"/keys/{rotating}"))["activeVersion"] == 2
        if gone and rotated:
            break
        time.sleep(0.25)
    # Deleted for good: the key, its ciphertexts and its alias.
    expect_sealed_error(session.call("GET", f"/keys/{doomed}"), 404, "key_not_found")
    expect_sealed_error(session.call("POST", "/crypto/decrypt", {"ciphertext": state["keys"][doomed]["ciphertext"]}),
                        404, "key_not_found")
    expect_sealed_error(session.call("POST", f"/aliases/{doomed}", {"keyId": rotating}), 404, "alias_not_found")
    # Eight missed periods collapse into one rotation; the old version still decrypts (grace).
    meta = metadata(session.call("GET", f"/keys/{rotating}"))
    assert meta["activeVersion"] == 2 and meta["rotationPeriodDays"] == 1 and "nextRotationAt" in meta
    opened = expect_ok(session.call("POST", "/crypto/decrypt", {"ciphertext": state["keys"][rotating]["ciphertext"]}))
    assert opened["version"] == 1
    # A disabled key waits, and enabling it restores decryption.
    assert metadata(session.call("GET", f"/keys/{braked}"))["activeVersion"] == 1
    expect_sealed_error(session.call("POST", "/crypto/decrypt", {"ciphertext": state["keys"][braked]["ciphertext"]}),
                        409, "key_disabled")
    metadata(session.call("POST", f"/keys/{braked}/enable", {}))
    expect_ok(session.call("POST", "/crypto/decrypt", {"ciphertext": state["keys"][braked]["ciphertext"]}))
