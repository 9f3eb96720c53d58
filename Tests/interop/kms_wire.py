"""A small, independent client for the KMS session protocol v1.

Written only from /work/shared/design/protocol-v1.md ("the protocol") and
/work/shared/design/api-v1.md ("the API"); it shares no code with the server.
Section numbers in comments refer to protocol-v1.md.

The happy path:

    client = Client("http://127.0.0.1:3000")
    session = client.open_session(random_token())        # sections 2 and 3
    reply = session.call("POST", "/crypto/random", {"bytes": 16})
    assert reply.status == 200 and len(b64d(reply.body["random"])) == 16

The lower layers (request_aad, seal, Session.seal_request, Session.send_envelope,
Session.send_raw, Client.post_key_exchange) are public so that tests can send
hand-made envelopes and bodies.

Anything the server sends that breaks the contract raises ProtocolError (an
AssertionError, so that pytest reports it as a failed check). A refusal that
the server was entitled to make with a plain error (section 8) raises KmsError.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Optional, Union
from urllib.parse import urlsplit

import requests
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# --------------------------------------------------------------------------
# Constants of the contract
# --------------------------------------------------------------------------

TOKEN_HEADER = "X-Client-Token"  # section 3, 4
ENVELOPE_HEADER = "X-KMS-Envelope"  # section 4
REQUEST_LABEL = "kms-v1/request"  # section 4
RESPONSE_LABEL = "kms-v1/response"  # section 5
ALGORITHM = "RSA-OAEP-256"  # section 2

SESSION_KEY_BYTES = 32  # section 3
RSA_CIPHERTEXT_BYTES = 512  # section 3: RSA-4096 (section 1)
RSA_BITS = 4096  # section 1
IV_BYTES = 12  # section 4
TAG_BYTES = 16  # section 4
MAX_SEQ = 2**53 - 1  # section 4
ENVELOPE_FIELDS = frozenset({"seq", "iv", "ciphertext", "tag"})  # sections 4, 5
BODYLESS_METHODS = frozenset({"GET", "DELETE"})  # section 4: envelope in header

SESSION_ID_RE = re.compile(r"[A-Za-z0-9_-]{22,64}")  # section 2
TOKEN_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-"
TOKEN_RE = re.compile(r"[A-Za-z0-9._~-]{32,256}")  # section 6
FINGERPRINT_RE = re.compile(r"SHA256:[0-9a-f]{64}")  # section 1
ERROR_CODE_RE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")  # section 8: snake_case
# Section 9: RFC 3339 in UTC, with or without fractional seconds. "In UTC" is
# read strictly as the "Z" designator (the form every example in the docs uses).
TIMESTAMP_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?Z")
# RFC 4648 section 4, with padding, nothing else (section 9).
_B64_RE = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")

ERROR_FIELDS_REQUIRED = frozenset({"code", "message", "requestId"})  # section 8
ERROR_FIELDS_OPTIONAL = frozenset({"field"})  # section 9, "Sealed errors"

OAEP_SHA256 = padding.OAEP(  # section 2: SHA-256, MGF1-SHA-256, empty label
    mgf=padding.MGF1(algorithm=hashes.SHA256()),
    algorithm=hashes.SHA256(),
    label=None,
)


class ProtocolError(AssertionError):
    """The server's answer breaks the wire contract."""


class PinMismatch(Exception):
    """The server's RSA key does not match the pinned fingerprint (section 1).

    Raised before any secret is sent. `init` is the InitResult that carried
    the unexpected key (its pending session is left unused).
    """

    def __init__(self, expected: str, init: "InitResult"):
        super().__init__(f"server key {init.fingerprint} does not match pinned {expected}")
        self.expected = expected
        self.init = init


class KmsError(Exception):
    """The server refused a request with a plain (unsealed) error, section 8."""

    def __init__(self, response: requests.Response):
        self.response = response
        self.status = response.status_code
        self.error = plain_error(response)
        super().__init__(f"{self.status} {self.error['code']}: {self.error['message']}")


# --------------------------------------------------------------------------
# Encodings (section 9, "Encodings")
# --------------------------------------------------------------------------


def b64e(data: bytes) -> str:
    """Standard base64 with padding (RFC 4648 section 4)."""
    return base64.b64encode(data).decode("ascii")


def b64d(text: Any) -> bytes:
    """Strict standard base64: right alphabet, padding, no whitespace, canonical."""
    if not isinstance(text, str) or not _B64_RE.fullmatch(text):
        raise ProtocolError(f"not padded standard base64: {text!r:.80}")
    data = base64.b64decode(text, validate=True)
    if b64e(data) != text:  # non-zero pad bits: not the canonical encoding
        raise ProtocolError(f"non-canonical base64: {text!r:.80}")
    return data


def b64url_nopad(data: bytes) -> str:
    """RFC 4648 section 5 base64url without padding."""
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON, as sent in bodies and sealed plaintexts."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def loads(data: Union[bytes, str]) -> Any:
    """Strict JSON: UTF-8, no duplicate keys, no NaN/Infinity."""

    def pairs(items):
        obj = {}
        for key, value in items:
            if key in obj:
                raise ProtocolError(f"duplicate JSON key {key!r}")
            obj[key] = value
        return obj

    def constant(name):
        raise ProtocolError(f"{name} is not JSON")

    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except ValueError as exc:  # includes UnicodeDecodeError and JSONDecodeError
        raise ProtocolError(f"not JSON: {exc}; body starts {data[:120]!r}") from exc


def is_int(value: Any) -> bool:
    """A JSON integer (section 9): Python bool is an int subclass, refuse it."""
    return type(value) is int


def parse_timestamp(text: Any) -> datetime:
    """RFC 3339 UTC ("Z"), with or without fractional seconds (section 9)."""
    match = TIMESTAMP_RE.fullmatch(text) if isinstance(text, str) else None
    if not match:
        raise ProtocolError(f"not an RFC 3339 UTC timestamp: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction = match.group(7) or ""
    micro = int((fraction + "000000")[:6])
    try:
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=timezone.utc)
    except ValueError as exc:
        raise ProtocolError(f"impossible timestamp {text!r}: {exc}") from exc


def check_fields(obj: Any, required, optional=(), what: str = "object") -> dict:
    """obj is a JSON object with every required field and nothing undocumented."""
    if not isinstance(obj, dict):
        raise ProtocolError(f"{what} is not a JSON object: {obj!r:.200}")
    missing = set(required) - obj.keys()
    extra = obj.keys() - set(required) - set(optional)
    if missing or extra:
        raise ProtocolError(
            f"{what} fields: missing {sorted(missing)}, undocumented {sorted(extra)}: {obj!r:.300}"
        )
    return obj


def random_token(prefix: str = "", length: Optional[int] = None) -> str:
    """A fresh token from the whole section 6 alphabet, `prefix` included in `length`."""
    if length is None:
        length = min(256, max(48, len(prefix) + 40))
    if not 32 <= length <= 256 or len(prefix) >= length:
        raise ValueError("token length must be 32..256 and longer than the prefix")
    body = "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(length - len(prefix)))
    return prefix + body


# --------------------------------------------------------------------------
# Errors (section 8)
# --------------------------------------------------------------------------


def check_error_object(obj: Any, what: str = "error body") -> dict:
    """`{"error": {"code", "message", "requestId", "field"?}}`; returns the inner object."""
    check_fields(obj, {"error"}, what=what)
    error = check_fields(obj["error"], ERROR_FIELDS_REQUIRED, ERROR_FIELDS_OPTIONAL, what=f"{what}.error")
    if not isinstance(error["code"], str) or not ERROR_CODE_RE.fullmatch(error["code"]):
        raise ProtocolError(f"error code is not snake_case: {error['code']!r}")
    for name in ("message", "requestId"):
        if not isinstance(error[name], str) or not error[name]:
            raise ProtocolError(f"error {name} must be a non-empty string: {error[name]!r}")
    if "field" in error and (not isinstance(error["field"], str) or not error["field"]):
        raise ProtocolError(f"error field must be a non-empty string: {error['field']!r}")
    return error


def plain_error(response: requests.Response) -> dict:
    """The section 8 object of a plain error response; ProtocolError if malformed."""
    if response.status_code < 400:
        raise ProtocolError(f"expected an error status, got {response.status_code}")
    return check_error_object(loads(response.content), what=f"plain {response.status_code} body")


def is_plain_error_body(body: Any) -> bool:
    return isinstance(body, dict) and "error" in body


# --------------------------------------------------------------------------
# Sealing (sections 4 and 5)
# --------------------------------------------------------------------------


def request_aad(method: str, target: str, session_id: str, seq: int) -> bytes:
    """AAD = "kms-v1/request" \\n METHOD \\n TARGET \\n sessionId \\n decimal(seq)."""
    return "\n".join([REQUEST_LABEL, method.upper(), target, session_id, str(int(seq))]).encode("utf-8")


def response_aad(session_id: str, seq: int, status: int) -> bytes:
    """AAD = "kms-v1/response" \\n sessionId \\n decimal(seq) \\n decimal(HTTP status)."""
    return "\n".join([RESPONSE_LABEL, session_id, str(int(seq)), str(int(status))]).encode("utf-8")


def seal(key: bytes, aad: bytes, plaintext: bytes, seq: int, iv: Optional[bytes] = None) -> dict:
    """AES-256-GCM envelope {"seq", "iv", "ciphertext", "tag"} with a random 12-byte iv."""
    iv = os.urandom(IV_BYTES) if iv is None else iv
    sealed = AESGCM(key).encrypt(iv, plaintext, aad)
    return {
        "seq": seq,
        "iv": b64e(iv),
        "ciphertext": b64e(sealed[:-TAG_BYTES]),
        "tag": b64e(sealed[-TAG_BYTES:]),
    }


def open_envelope(key: bytes, aad: bytes, envelope: Any, expected_seq: int) -> bytes:
    """Check a sealed response's shape, its seq echo and its tag; return the plaintext."""
    check_fields(envelope, ENVELOPE_FIELDS, what="sealed response")
    if not is_int(envelope["seq"]) or envelope["seq"] != expected_seq:
        raise ProtocolError(f"sealed response seq {envelope['seq']!r}, expected {expected_seq}")
    iv, ciphertext, tag = (b64d(envelope[name]) for name in ("iv", "ciphertext", "tag"))
    if len(iv) != IV_BYTES or len(tag) != TAG_BYTES:
        raise ProtocolError(f"sealed response iv {len(iv)} bytes, tag {len(tag)} bytes")
    try:
        return AESGCM(key).decrypt(iv, ciphertext + tag, aad)
    except InvalidTag:
        raise ProtocolError(f"sealed response does not authenticate under AAD {aad!r}") from None


def envelope_json(envelope: dict) -> bytes:
    return dumps(envelope)


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------


class Transport:
    """Sends requests with the target exactly as given (it is bound into the AAD)."""

    def __init__(self, base_url: str, timeout: float = 30.0):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base URL must be http(s)://host:port, got {base_url!r}")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            # The request target is bound into the AAD exactly as sent, and
            # proxies must not rewrite it (section 9): no path prefix here.
            raise ValueError(f"base URL must not have a path or query, got {base_url!r}")
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.timeout = timeout
        self.http = requests.Session()
        self.http.trust_env = False  # no proxies or .netrc picked up from the environment
        self.observers: list[Callable[[requests.Response], None]] = []

    def send(self, method: str, target: str, headers: Optional[dict] = None, body=None) -> requests.Response:
        if not target.startswith("/"):
            raise ValueError(f"target must start with '/': {target!r}")
        prepared = self.http.prepare_request(
            requests.Request(method, self.origin + target, headers=headers or {}, data=body)
        )
        if prepared.path_url != target:
            raise ValueError(f"HTTP library would send {prepared.path_url!r} for {target!r}")
        response = self.http.send(prepared, timeout=self.timeout, allow_redirects=False)
        for observe in self.observers:
            observe(response)
        return response


# --------------------------------------------------------------------------
# Session establishment (sections 1 to 3)
# --------------------------------------------------------------------------


@dataclass
class InitResult:
    body: dict
    session_id: str
    public_key: rsa.RSAPublicKey
    spki_der: bytes
    fingerprint: str
    response: requests.Response


def spki_from_pem(pem: Any) -> bytes:
    """The DER SubjectPublicKeyInfo inside a "PUBLIC KEY" PEM block (section 2)."""
    match = re.fullmatch(
        r"-----BEGIN PUBLIC KEY-----\n([A-Za-z0-9+/=\n]+?)\n?-----END PUBLIC KEY-----\n?",
        pem if isinstance(pem, str) else "",
    )
    if not match:
        raise ProtocolError(f"publicKey is not an SPKI PEM block: {pem!r:.120}")
    return b64d(match.group(1).replace("\n", ""))


def fingerprint_of(spki_der: bytes) -> str:
    """Section 1: "SHA256:" + lowercase hex SHA-256 of the DER SubjectPublicKeyInfo."""
    return "SHA256:" + hashlib.sha256(spki_der).hexdigest()


def wrap_key(public_key: rsa.RSAPublicKey, session_key: bytes) -> bytes:
    """RSA-OAEP-256 (section 2) of the session key."""
    return public_key.encrypt(session_key, OAEP_SHA256)


# --------------------------------------------------------------------------
# identity-v1 (/work/shared/design/identity-v1.md): an enrolled client signs
# the key exchange with its Ed25519 key.
# --------------------------------------------------------------------------

CLIENT_AUTH_LABEL = "kms-v1/client-auth"  # identity-v1 section 2


def load_client_key(path: str) -> ed25519.Ed25519PrivateKey:
    """An identity-v1 key file: PEM PRIVATE KEY, unencrypted PKCS#8 (section 6)."""
    with open(path, "rb") as handle:
        key = serialization.load_pem_private_key(handle.read(), password=None)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 key")
    return key


def raw_public_key(key: ed25519.Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def client_key_id(public_key: bytes) -> str:
    """`clientKey`: SHA256: + hex of the raw 32-byte key (section 1), not of an SPKI."""
    return "SHA256:" + hashlib.sha256(public_key).hexdigest()


def client_auth_transcript(session_id: str, wrapped_key: bytes, token: str, server_fingerprint: str) -> bytes:
    """Section 2: label, sessionId, hex(SHA-256(W)), hex(SHA-256(T)), F joined by LF, no trailing LF."""
    lines = [
        CLIENT_AUTH_LABEL,
        session_id,
        hashlib.sha256(wrapped_key).hexdigest(),
        hashlib.sha256(token.encode()).hexdigest(),
        server_fingerprint,
    ]
    return "\n".join(lines).encode()


class Client:
    def __init__(
        self,
        base_url: str,
        pin: Optional[str] = None,
        transport: Optional[Transport] = None,
        signing_key: Optional[ed25519.Ed25519PrivateKey] = None,
    ):
        self.transport = transport or Transport(base_url)
        self.pin = pin
        # identity-v1: the key in KMS_CLIENT_KEY_FILE signs every key exchange; without one
        # the client sends protocol-v1's body (for a server with KMS_CLIENT_AUTH=off).
        path = os.environ.get("KMS_CLIENT_KEY_FILE", "").strip()
        self.signing_key = signing_key or (load_client_key(path) if path else None)

        self.server_fingerprint = ""  # from the last /session/init: F of the transcript

    def sign(self, body: dict, token: Optional[str]) -> dict:
        """Adds identity-v1's clientKey and signature to a key-exchange body (a copy).

        The transcript is computed from the body as it will be sent, whatever it holds, so that
        the protocol-v1 tests (which break bodies on purpose) see the same answers in both modes.
        """
        wrapped_text = body.get("wrappedKey")
        try:
            wrapped = base64.b64decode(wrapped_text, validate=True) if isinstance(wrapped_text, str) else b""
        except ValueError:
            wrapped = b""
        session_id = body.get("sessionId") if isinstance(body.get("sessionId"), str) else ""
        transcript = client_auth_transcript(session_id, wrapped, token or "", self.server_fingerprint)
        return {
            **body,
            "clientKey": client_key_id(raw_public_key(self.signing_key)),
            "signature": b64e(self.signing_key.sign(transcript)),
        }

    def init(self) -> InitResult:
        """GET /session/init, with the checks a client must make before sending a secret."""
        response = self.transport.send("GET", "/session/init")
        if response.status_code != 200:
            raise KmsError(response)
        body = check_fields(
            loads(response.content),
            {"sessionId", "algorithm", "publicKey", "fingerprint", "expiresAt"},
            what="init response",
        )
        if body["algorithm"] != ALGORITHM:
            raise ProtocolError(f"algorithm {body['algorithm']!r}, expected {ALGORITHM}")
        if not isinstance(body["sessionId"], str) or not SESSION_ID_RE.fullmatch(body["sessionId"]):
            raise ProtocolError(f"sessionId {body['sessionId']!r} is outside [A-Za-z0-9_-]{{22,64}}")
        spki = spki_from_pem(body["publicKey"])
        public_key = serialization.load_der_public_key(spki)
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise ProtocolError("publicKey is not an RSA key")
        fingerprint = fingerprint_of(spki)
        if body["fingerprint"] != fingerprint:
            raise ProtocolError(f"fingerprint {body['fingerprint']!r} does not match the PEM ({fingerprint})")
        parse_timestamp(body["expiresAt"])
        result = InitResult(body, body["sessionId"], public_key, spki, fingerprint, response)
        self.server_fingerprint = fingerprint
        if self.pin is not None and self.pin != fingerprint:
            raise PinMismatch(self.pin, result)  # section 1: before any secret is sent
        return result

    def post_key_exchange(self, body: Union[dict, bytes], token: Optional[str]) -> requests.Response:
        """Raw POST /session/key-exchange; `body` is a dict (sent as JSON) or raw bytes."""
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers[TOKEN_HEADER] = token
        if isinstance(body, dict) and self.signing_key is not None and not ({"clientKey", "signature"} & body.keys()):
            body = self.sign(body, token)
        data = body if isinstance(body, bytes) else dumps(body)
        return self.transport.send("POST", "/session/key-exchange", headers=headers, body=data)

    def key_exchange(
        self, token: str, init: Optional[InitResult] = None, session_key: Optional[bytes] = None
    ) -> "Session":
        """Section 3: wrap a fresh 32-byte key, bind it to `token`, open the seq-0 reply."""
        init = init or self.init()
        key = os.urandom(SESSION_KEY_BYTES) if session_key is None else session_key
        wrapped = wrap_key(init.public_key, key)
        self.server_fingerprint = init.fingerprint
        response = self.post_key_exchange({"sessionId": init.session_id, "wrappedKey": b64e(wrapped)}, token)
        if response.status_code != 200:
            raise KmsError(response)
        session = Session(self.transport, init.session_id, key, token)
        reply = session.open_reply(response, seq=0)
        session.info = check_fields(
            reply.body,
            {"sessionId", "expiresAt", "ttlMs", "sliding", "maxLifetimeMs"},
            what="key-exchange response",
        )
        if reply.body["sessionId"] != init.session_id:
            raise ProtocolError(f"key exchange answered for session {reply.body['sessionId']!r}")
        return session

    def open_session(self, token: str) -> "Session":
        return self.key_exchange(token)


# --------------------------------------------------------------------------
# Sealed calls (sections 4, 5, 7)
# --------------------------------------------------------------------------


@dataclass
class Reply:
    """An opened sealed response."""

    status: int
    seq: int
    body: Any  # the inner response JSON
    response: requests.Response

    @property
    def error(self) -> Optional[dict]:
        return self.body.get("error") if self.status >= 400 else None


_CURRENT_TOKEN = object()


class Session:
    def __init__(self, transport: Transport, session_id: str, key: bytes, token: str):
        self.transport = transport
        self.session_id = session_id
        self.key = key
        self.token = token
        self.next_seq = 1
        self.info: dict = {}  # plaintext of the seq-0 key-exchange response
        self._response_ivs: set[bytes] = set()

    # -- sequence numbers --------------------------------------------------

    def take_seq(self, seq: Optional[int] = None) -> int:
        """The next unused seq, or `seq` itself (then later seqs stay above it)."""
        if seq is None:
            seq = self.next_seq
        if is_int(seq):
            self.next_seq = max(self.next_seq, seq + 1)
        return seq

    # -- building and sending ----------------------------------------------

    def seal_request(
        self,
        method: str,
        target: str,
        plaintext: bytes = b"",
        seq: Optional[int] = None,
        aad: Optional[bytes] = None,
        key: Optional[bytes] = None,
        iv: Optional[bytes] = None,
    ) -> dict:
        """An envelope for `method target`; `aad`/`key`/`iv` override for negative tests."""
        seq = self.take_seq(seq)
        if aad is None:
            aad = request_aad(method, target, self.session_id, seq)
        return seal(self.key if key is None else key, aad, plaintext, seq, iv)

    def send_raw(
        self, method: str, target: str, headers: Optional[dict] = None, body=None, token=_CURRENT_TOKEN
    ) -> requests.Response:
        """Send anything, adding X-Client-Token (the session's unless given; None omits it)."""
        headers = dict(headers or {})
        token = self.token if token is _CURRENT_TOKEN else token
        if token is not None:
            headers[TOKEN_HEADER] = token
        return self.transport.send(method, target, headers=headers, body=body)

    def send_envelope(
        self,
        method: str,
        target: str,
        envelope: Union[dict, bytes],
        token=_CURRENT_TOKEN,
        placement: Optional[str] = None,
    ) -> requests.Response:
        """Place an envelope (a dict, or its exact JSON bytes) as section 4 says.

        placement: "body" (POST), "header" (GET, DELETE: b64 of the JSON in
        X-KMS-Envelope); None picks by method.
        """
        raw = envelope if isinstance(envelope, bytes) else envelope_json(envelope)
        if placement is None:
            placement = "header" if method.upper() in BODYLESS_METHODS else "body"
        if placement == "body":
            return self.send_raw(method, target, {"Content-Type": "application/json"}, raw, token)
        if placement == "header":
            return self.send_raw(method, target, {ENVELOPE_HEADER: b64e(raw)}, None, token)
        raise ValueError(f"placement must be 'body' or 'header', not {placement!r}")

    # -- opening -----------------------------------------------------------

    def open_reply(self, response: requests.Response, seq: int) -> Reply:
        """Open a sealed response to the request with `seq` (section 5).

        Raises KmsError when the server answered with a plain error instead
        (the request failed before its envelope authenticated).
        """
        body = loads(response.content)
        if is_plain_error_body(body):
            raise KmsError(response)
        aad = response_aad(self.session_id, seq, response.status_code)
        plaintext = open_envelope(self.key, aad, body, expected_seq=seq)
        iv = b64d(body["iv"])  # section 5: "a fresh random iv"
        if iv in self._response_ivs:
            raise ProtocolError("the server reused a response iv under this session key")
        self._response_ivs.add(iv)
        inner = loads(plaintext)
        if response.status_code >= 400:
            check_error_object(inner, what=f"sealed {response.status_code} body")  # section 9
        return Reply(response.status_code, seq, inner, response)

    # -- the call ----------------------------------------------------------

    def call_plaintext(self, method: str, target: str, plaintext: bytes, seq: Optional[int] = None) -> Reply:
        """Seal exact plaintext bytes, send, open the sealed reply."""
        method = method.upper()
        envelope = self.seal_request(method, target, plaintext, seq=seq)
        response = self.send_envelope(method, target, envelope)
        return self.open_reply(response, envelope["seq"])

    def call(self, method: str, target: str, inner: Any = None, seq: Optional[int] = None) -> Reply:
        """A sealed request: inner JSON for POST, None for GET and DELETE."""
        method = method.upper()
        if method in BODYLESS_METHODS:
            if inner is not None:
                raise ValueError(f"{method} carries no inner JSON (section 4: empty plaintext)")
            return self.call_plaintext(method, target, b"", seq)
        if inner is None:
            raise ValueError(f"{method} needs an inner JSON value")
        return self.call_plaintext(method, target, dumps(inner), seq)

    # -- section 7 -----------------------------------------------------------

    def rotate_token(self, new_token: Optional[str] = None) -> Reply:
        """POST /session/rotate-token; on success the session uses the new token."""
        reply = self.call("POST", "/session/rotate-token", {} if new_token is None else {"token": new_token})
        if reply.status == 200:
            check_fields(reply.body, {"token", "expiresAt"}, what="rotate-token response")
            self.token = reply.body["token"]
        return reply

    def end(self) -> Reply:
        """DELETE /session."""
        return self.call("DELETE", "/session")


# --------------------------------------------------------------------------
# A guard for "no error message echoes secrets or tokens" (section 8)
# --------------------------------------------------------------------------


class SecretWatch:
    """Transport observer: remembers every token sent, fails if a response echoes one.

    Sealed bodies are ciphertext, so this checks plain bodies and all headers;
    use check_text() on opened sealed errors.
    """

    def __init__(self):
        self.secrets: set[str] = set()
        self._lock = threading.Lock()  # observers run on the sending thread

    def add(self, secret: Optional[str]) -> None:
        if secret and len(secret) >= 16:  # shorter strings could match by chance
            with self._lock:
                self.secrets.add(secret)

    def check_text(self, text: str, where: str) -> None:
        with self._lock:
            known = tuple(self.secrets)
        for secret in known:
            if secret in text:
                raise ProtocolError(f"{where} echoes a token ({secret[:6]}...)")

    def __call__(self, response: requests.Response) -> None:
        self.add(response.request.headers.get(TOKEN_HEADER))
        where = f"{response.request.method} {response.request.path_url} -> {response.status_code}"
        self.check_text(response.text, f"body of {where}")
        for name, value in response.headers.items():
            self.check_text(f"{name}: {value}", f"header of {where}")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def near(when: datetime, expected: datetime, tolerance: timedelta) -> bool:
    return abs(when - expected) <= tolerance


# --------------------------------------------------------------------------
# Test support: settings and checks shared by the interop test modules
# --------------------------------------------------------------------------

# One watch for the whole test run: add it to every Transport's observers.
WATCH = SecretWatch()


def _env_int(name: str, default: Optional[int]) -> Optional[int]:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def _env_bool(name: str) -> Optional[bool]:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return None
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{name}={value!r} is not a boolean")


@dataclass(frozen=True)
class Settings:
    """What the tests must know of the server's configuration (api-v1.md, Configuration).

    Read from the same variable names as the server, so a shell that starts
    the server with non-default values can run the tests with them too.
    Values that are None are not checked.
    """

    url: str
    token_prefix: str
    pin: Optional[str]
    rotate_max: int
    pending_per_address: int
    max_body_bytes: int
    key_grace_ms: int
    init_ttl_ms: Optional[int]
    session_ttl_ms: Optional[int]
    session_max_lifetime_ms: Optional[int]
    session_sliding: Optional[bool]
    clock_skew: timedelta

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(
            url=os.environ.get("KMS_URL", "").strip(),
            token_prefix=os.environ.get("KMS_TOKEN_PREFIX", ""),
            pin=os.environ.get("KMS_INTEROP_FINGERPRINT", "").strip() or None,
            rotate_max=_env_int("KMS_ROTATE_MAX", 5),
            pending_per_address=_env_int("KMS_PENDING_PER_ADDRESS", 64),
            max_body_bytes=_env_int("KMS_MAX_BODY_BYTES", 1048576),
            key_grace_ms=_env_int("KMS_KEY_GRACE_MS", 604800000),
            init_ttl_ms=_env_int("KMS_SESSION_INIT_TTL_MS", None),
            session_ttl_ms=_env_int("KMS_SESSION_TTL_MS", None),
            session_max_lifetime_ms=_env_int("KMS_SESSION_MAX_LIFETIME_MS", None),
            session_sliding=_env_bool("KMS_SESSION_SLIDING"),
            # Tolerance when comparing server timestamps with this machine's clock.
            clock_skew=timedelta(seconds=float(os.environ.get("KMS_INTEROP_CLOCK_SKEW_S", "120") or "120")),
        )


def describe(response: requests.Response) -> str:
    request = response.request
    return f"{request.method} {request.path_url} -> {response.status_code} {response.text[:400]!r}"


def expect_plain_error(
    response: requests.Response,
    status: int,
    code: Optional[str] = None,
    codes: Optional[set] = None,
    field: Optional[str] = None,
) -> dict:
    """A plain (unsealed) section 8 error with this status and code; returns the error object."""
    assert response.status_code == status, describe(response)
    body = loads(response.content)
    assert is_plain_error_body(body), f"expected a plain error, got a sealed body: {describe(response)}"
    error = plain_error(response)
    if code is not None:
        assert error["code"] == code, describe(response)
    if codes is not None:
        assert error["code"] in codes, f"code not in {sorted(codes)}: {describe(response)}"
    if field is not None:
        assert error.get("field") == field, f"expected field {field!r}: {describe(response)}"
    return error


def expect_sealed_error(reply: Reply, status: int, code: Optional[str] = None,
                        field: Optional[str] = None, codes: Optional[set] = None) -> dict:
    """A sealed error (section 9, "Sealed errors"); returns the error object."""
    assert reply.status == status, f"expected sealed {status}, got {reply.status}: {reply.body!r:.400}"
    error = reply.error
    if code is not None:
        assert error["code"] == code, f"expected {code}: {reply.body!r:.400}"
    if codes is not None:
        assert error["code"] in codes, f"code not in {sorted(codes)}: {reply.body!r:.400}"
    if field is not None:
        assert error.get("field") == field, f"expected field {field!r}: {reply.body!r:.400}"
    WATCH.check_text(json.dumps(reply.body), f"sealed {status} error")
    return error


def expect_ok(reply: Reply) -> Any:
    """A sealed 200 (section 9: successful calls answer 200); returns the inner JSON."""
    assert reply.status == 200, f"expected 200, got {reply.status}: {reply.body!r:.400}"
    return reply.body


def end_quietly(session: Session) -> None:
    """Teardown hygiene: end a session if it is still live, ignoring any outcome."""
    try:
        session.end()
    except Exception:  # noqa: BLE001 - the tests make their own assertions
        pass


def burn_pending(client: Client, session_id: str, token_prefix: str = "") -> None:
    """Use up a pending session so tests do not pile up against the per-address bound.

    Section 9: an attempt that reaches the unwrap step uses its pending session
    up whether or not the unwrap succeeds. A garbage wrapped key does that.
    """
    client.post_key_exchange(
        {"sessionId": session_id, "wrappedKey": b64e(os.urandom(RSA_CIPHERTEXT_BYTES))},
        random_token(token_prefix),
    )
