"""An independent reader of kms file v1 (design/file-format-v1.md), written
from the spec alone with pyca/cryptography: it decrypts files that the `kms`
CLI made against a live server, unwrapping each data key through the sealed
API (`POST /crypto/decrypt` with the file's kmsAad).

CI makes the files and names their folder; elsewhere this test skips:

    KMS_URL=http://127.0.0.1:PORT KMS_INTEROP_FILE_SAMPLES=DIR python3 -m pytest -q Tests/interop/test_file_v1.py

DIR holds pairs NAME.kms (made by `kms encrypt-file`) and NAME.plain (its plaintext).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kms_wire import Client, random_token

MAGIC = b"KMSFILE"
CHUNK = 65536
SEALED = CHUNK + 16
LABEL = b"kms-file-v1"
SAMPLES = os.environ.get("KMS_INTEROP_FILE_SAMPLES")
URL = os.environ.get("KMS_URL", "http://127.0.0.1:3000")


class FormatError(Exception):
    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


def parse_header(data: bytes):
    """Section 4 steps 1 and 2; returns (salt, wrapped key, ctx, H)."""
    try:
        return _parse_header(data)
    except (struct.error, UnicodeDecodeError, IndexError):
        raise FormatError("header_malformed")


def _parse_header(data: bytes):
    if len(data) < 7 or data[:7] != MAGIC:
        raise FormatError("bad_magic")
    if len(data) < 10:
        raise FormatError("truncated")
    if data[7] != 1:
        raise FormatError("unsupported_version")
    (h,) = struct.unpack(">H", data[8:10])
    if not 47 <= h <= 8192:
        raise FormatError("header_malformed")
    if len(data) < h + 32:
        raise FormatError("truncated")
    pos = 10
    salt = data[pos:pos + 32]
    pos += 32
    (w,) = struct.unpack(">H", data[pos:pos + 2])
    pos += 2
    wrapped = data[pos:pos + w]
    if w < 1 or pos + w > h or any(b < 0x21 or b > 0x7E for b in wrapped):
        raise FormatError("header_malformed")
    pos += w
    ctx_start = pos
    (n,) = struct.unpack(">H", data[pos:pos + 2])
    pos += 2
    previous = None
    for _ in range(n):
        (klen,) = struct.unpack(">H", data[pos:pos + 2])
        key = data[pos + 2:pos + 2 + klen]
        pos += 2 + klen
        (vlen,) = struct.unpack(">H", data[pos:pos + 2])
        value = data[pos + 2:pos + 2 + vlen]
        pos += 2 + vlen
        if pos > h or not key or (previous is not None and not previous < key):
            raise FormatError("header_malformed")
        key.decode("utf-8"), value.decode("utf-8")
        previous = key
    if pos != h:
        raise FormatError("header_malformed")
    return salt, wrapped.decode("ascii"), data[ctx_start:h], h


def derive(data_key: bytes, salt: bytes, ctx: bytes):
    bound = MAGIC + b"\x01" + salt + ctx
    okm = HKDF(algorithm=hashes.SHA256(), length=71, salt=salt,
               info=LABEL + hashlib.sha256(bound).digest()).derive(data_key)
    return okm[:32], okm[32:39], okm[39:71]


def open_chunk(aead: AESGCM, prefix: bytes, index: int, final: bool, piece: bytes):
    nonce = prefix + struct.pack(">I", index) + (b"\x01" if final else b"\x00")
    try:
        return aead.decrypt(nonce, piece, None)
    except InvalidTag:
        return None


def decrypt(data: bytes, unwrap) -> bytes:
    salt, wrapped, ctx, h = parse_header(data)
    data_key = unwrap(wrapped, LABEL + b"\x00" + ctx)
    if len(data_key) != 32:
        raise FormatError("commitment_mismatch")
    payload_key, prefix, commitment = derive(data_key, salt, ctx)
    if not hmac.compare_digest(commitment, data[h:h + 32]):
        raise FormatError("commitment_mismatch")
    rest = data[h + 32:]
    pieces = [rest[i:i + SEALED] for i in range(0, len(rest), SEALED)]
    if not pieces:
        raise FormatError("truncated")
    aead = AESGCM(payload_key)
    out = bytearray()
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        if last and len(piece) < 16:
            raise FormatError("truncated")
        if not last:
            plain = open_chunk(aead, prefix, i, False, piece)
            if plain is None:
                raise FormatError("trailing_data" if open_chunk(aead, prefix, i, True, piece) is not None
                                  else "chunk_auth_failed")
        else:
            plain = open_chunk(aead, prefix, i, True, piece)
            if plain is None:
                raise FormatError("truncated" if open_chunk(aead, prefix, i, False, piece) is not None
                                  else "chunk_auth_failed")
            if not plain and i > 0:
                raise FormatError("empty_final_chunk")
        out += plain
    return bytes(out)


@pytest.mark.skipif(not SAMPLES, reason="KMS_INTEROP_FILE_SAMPLES is not set (CI makes files with the kms CLI)")
def test_the_cli_files_decrypt_with_an_independent_reader():
    session = Client(URL).open_session(random_token())

    def unwrap(ciphertext: str, aad: bytes) -> bytes:
        reply = session.call("POST", "/crypto/decrypt",
                             {"ciphertext": ciphertext, "aad": base64.b64encode(aad).decode()})
        assert reply.status == 200, reply.body
        return base64.b64decode(reply.body["plaintext"])

    names = sorted(n[:-4] for n in os.listdir(SAMPLES) if n.endswith(".kms"))
    assert names, "no sample files"
    for name in names:
        with open(os.path.join(SAMPLES, name + ".kms"), "rb") as f:
            data = f.read()
        with open(os.path.join(SAMPLES, name + ".plain"), "rb") as f:
            expected = f.read()
        assert decrypt(data, unwrap) == expected, name
        damaged = bytearray(data)
        damaged[-1] ^= 1
        with pytest.raises(FormatError) as refused:
            decrypt(bytes(damaged), unwrap)
        assert refused.value.code == "chunk_auth_failed", name


def test_the_reader_itself_on_the_shared_vectors():
    """The reader above against the spec's vectors (no server: the data key is given)."""
    import json
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "KMSCoreTests", "Fixtures", "file-v1",
                        "vectors.json")
    with open(path, encoding="utf-8") as f:
        vectors = json.load(f)
    checked = 0
    for vector in vectors["encrypt"]:
        if "fileB64" in vector:
            data = base64.b64decode(vector["fileB64"])
            key = bytes.fromhex(vector["dataKey"])
            assert decrypt(data, lambda _c, _a: key) == bytes.fromhex(vector["plaintext"]), vector["id"]
            checked += 1
    for vector in vectors["decryptErrors"]:
        if "fileB64" in vector:
            key = bytes.fromhex(vector["dataKey"])
            with pytest.raises(FormatError) as refused:
                decrypt(base64.b64decode(vector["fileB64"]), lambda _c, _a: key)
            assert refused.value.code == vector["error"], vector["id"]
            checked += 1
    assert checked >= 20
