#!/usr/bin/env python3
"""Fuzzes a live `kms serve` from outside, as any client could, and fails on any 5xx.

    KMS_CLIENT_KEY_FILE=data/admin.key python3 scripts/fuzz-api.py --url http://127.0.0.1:3000 \
        [--aws-url https://127.0.0.1:3001 --ca aws-ca.pem] [--requests 2000] [--seed 1]

Four campaigns, each of --requests requests:

- sealed: every sealed route of /openapi.json, inner requests made from the route's
  x-inner-request schema and then mutated (missing and unknown members, wrong types, extreme
  numbers, odd strings, odd path parameters and queries);
- bytes: well-formed inner requests of the crypto, key, alias and client routes with their bytes
  mutated (broken JSON, deep nesting, huge numbers, invalid UTF-8, lone surrogates), still sealed;
- http: raw HTTP/1.1 on a socket (odd methods and targets, broken Content-Length and chunking,
  huge headers, bad tokens and envelopes, key-exchange bodies), no session;
- aws (with --aws-url): every operation of botocore's KMS model, SigV4-signed with a fresh
  access key, with mutated and broken JSON bodies and targets.

A finding is a 5xx other than 503, a reply the independent client (Tests/interop/kms_wire.py)
calls malformed, an AWS error without `__type`, or a server that stops answering. It needs a
fresh server it may fill with keys, aliases and clients; never point it at one that matters.
"""

from __future__ import annotations

import argparse
import base64
import errno
import json
import os
import random
import socket
import sys
from urllib.parse import quote, urlsplit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "interop"))

import requests  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: E402
from kms_wire import Client, b64e  # noqa: E402

ODD_STRINGS = ["", " ", "a" * 70, "a" * 9000, "\u0000", "\ud7ff", "é", "e\u0301", "../../etc/passwd", "%00",
               "*", "key_", "key_" + "A" * 22, "alias/x", "\n", '"', "\\", "日本語", "🔑" * 40, "-1", "1e309",
               "null", "aws:x", "cli_x", "generate", "rotate", "key_*", "**", "a*b*"]
TOKEN_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-"
JSON_PIECES = ["1e400", "-0", "1.0", "0x10", "00", "-", '"\\ud800"', '"\\u0000"', "\xff", "\ufeff", "{", "}", "[",
               "]", ",", ":", "null", "true", '"' + "a" * 70000 + '"', "[" * 600, '{"a":' * 300, "9" * 400, " ",
               "/*", '""', '"\\x"', '"\n"']


class Fuzzer:
    def __init__(self, args):
        self.args = args
        self.rnd = random.Random(args.seed)
        self.findings: list[str] = []
        self.client = Client(args.url)
        self.session = self.client.open_session(self.token())

    def finding(self, text: str) -> None:
        self.findings.append(text)
        print("FINDING", text[:600], flush=True)

    def token(self) -> str:
        """A well-formed client token drawn from the seed, after the server's KMS_TOKEN_PREFIX if any."""
        return os.environ.get("KMS_TOKEN_PREFIX", "") + "".join(self.rnd.choice(TOKEN_ALPHABET) for _ in range(43))

    def reopen(self) -> None:
        self.session = self.client.open_session(self.token())

    # -- values ---------------------------------------------------------------

    def odd(self):
        rnd = self.rnd
        c = rnd.randrange(12)
        if c == 0:
            return None
        if c == 1:
            return rnd.choice([0, -1, 1, 2**53, 2**64, -(2**63), 1.5, 1e308, 3650, 3651])
        if c == 2:
            return rnd.choice([True, False])
        if c == 3:
            return []
        if c == 4:
            return {}
        if c == 5:
            return [self.odd() for _ in range(rnd.randrange(3))]
        if c == 6:
            return {rnd.choice(ODD_STRINGS): self.odd()}
        if c == 7:
            return b64e(self.rnd.randbytes(rnd.choice([0, 1, 31, 32, 33, 64, 1000])))
        return rnd.choice(ODD_STRINGS)

    def from_schema(self, schema, schemas, depth=0):
        rnd = self.rnd
        while "$ref" in schema:
            schema = schemas[schema["$ref"].split("/")[-1]]
        if "enum" in schema:
            return rnd.choice(schema["enum"])
        kind = schema.get("type")
        if depth > 4:
            return self.odd()
        if kind == "object":
            value = {}
            for name, member in schema.get("properties", {}).items():
                if name in schema.get("required", []) or rnd.random() < 0.5:
                    value[name] = self.from_schema(member, schemas, depth + 1)
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict):
                for _ in range(rnd.randrange(4)):
                    name = rnd.choice(ODD_STRINGS[:10] + ["team", "env", f"k{rnd.randrange(99)}"])
                    value[name] = self.from_schema(extra, schemas, depth + 1)
            return value
        if kind == "array":
            return [self.from_schema(schema.get("items", {}), schemas, depth + 1) for _ in range(rnd.randrange(4))]
        if kind == "integer":
            return rnd.choice([schema.get("minimum", 0), schema.get("maximum", 10), 1, 7, 32, 30])
        if kind == "boolean":
            return rnd.choice([True, False])
        if kind == "string":
            if schema.get("format") == "byte":
                return b64e(self.rnd.randbytes(rnd.choice([0, 16, 32, 100])))
            return rnd.choice(["a", "team", "photos", "x.y-z", "key_abc", "*", "keys:create", "crypto:encrypt"])
        return self.odd()

    def mutate(self, value, rate):
        rnd = self.rnd
        if rnd.random() < rate * 0.3:
            return self.odd()
        if isinstance(value, dict):
            value = dict(value)
            if value and rnd.random() < rate:
                value.pop(rnd.choice(list(value)))
            if rnd.random() < rate * 0.3:
                value[rnd.choice(ODD_STRINGS)] = self.odd()
            return {k: self.mutate(v, rate) for k, v in value.items()}
        if isinstance(value, list):
            return [self.mutate(v, rate) for v in value]
        return self.odd() if rnd.random() < rate * 0.5 else value

    # -- sealed ---------------------------------------------------------------

    def sealed_call(self, method, target, plaintext: bytes, what: str) -> None:
        try:
            reply = self.session.call_plaintext(method, target, plaintext)
        except Exception as error:  # noqa: BLE001 - the client's checks are the oracle
            self.finding(f"{method} {target} {what}: {error!r}")
            self.reopen()
            return
        if reply.status >= 500 and reply.status != 503:
            self.finding(f"{reply.status} {method} {target} {what}: {reply.error}")

    def campaign_sealed(self) -> None:
        spec = requests.get(self.args.url + "/openapi.json", timeout=10).json()
        schemas = spec["components"]["schemas"]
        keys = [self.session.call("POST", "/keys/generate", {}).body["keyId"] for _ in range(3)]
        ciphertext = self.session.call(
            "POST", "/crypto/encrypt", {"keyId": keys[0], "plaintext": b64e(b"hello")}).body["ciphertext"]
        routes = [(m.upper(), p, op) for p, ops in spec["paths"].items() for m, op in ops.items()
                  if op.get("x-sealed") and not p.startswith("/session") and "revoke" not in p]
        rnd = self.rnd
        for _ in range(self.args.requests):
            method, target, op = rnd.choice(routes)
            for parameter in ("{keyId}", "{alias}", "{client}", "{accessKeyId}"):
                if parameter in target:
                    c = rnd.random()
                    value = (rnd.choice(keys) if c < 0.5 else
                             rnd.choice(["x", "key_" + "A" * 22, "generate", "rotate"]) if c < 0.7 else
                             quote(str(rnd.choice(ODD_STRINGS)), safe="") or "x")
                    target = target.replace(parameter, value)
            inner = None
            if method in ("GET", "DELETE"):
                if rnd.random() < 0.3:
                    target += rnd.choice(["?limit=5", "?limit=-1", "?limit=99999999999999999999", "?after=zz",
                                          "?limit=1&after=" + keys[0], "?limit=", "?&&"])
            else:
                inner = self.from_schema(op["x-inner-request"], schemas) if "x-inner-request" in op else {}
                if isinstance(inner, dict) and "ciphertext" in inner and rnd.random() < 0.5:
                    inner["ciphertext"] = ciphertext
                if isinstance(inner, dict) and "keyId" in inner and rnd.random() < 0.5:
                    inner["keyId"] = rnd.choice(keys)
                inner = self.mutate(inner, rnd.choice([0, 0.1, 0.4]))
            plaintext = b"" if inner is None else json.dumps(inner).encode()
            self.sealed_call(method, target, plaintext, plaintext[:200].decode("utf-8", "replace"))

    def campaign_bytes(self) -> None:
        key = self.session.call("POST", "/keys/generate", {}).body["keyId"]
        ciphertext = self.session.call("POST", "/crypto/encrypt", {"keyId": key, "plaintext": ""}).body["ciphertext"]
        public_key = b64e(self.rnd.randbytes(32))
        bases = [
            ("/crypto/encrypt", '{"keyId":"%s","plaintext":"aGk="}' % key),
            ("/crypto/decrypt", '{"ciphertext":"%s"}' % ciphertext),
            ("/crypto/rewrap", '{"ciphertext":"%s","aad":""}' % ciphertext),
            ("/crypto/datakey", '{"keyId":"%s","bytes":32}' % key),
            ("/crypto/random", '{"bytes":16}'),
            ("/keys/generate", '{"alias":"fz-RAND","tags":{"a":"b"},"description":"d"}'),
            ("/keys/rotate", '{"keyId":"%s"}' % key),
            (f"/keys/{key}/rotation", '{"periodDays":30}'),
            (f"/keys/{key}/tags", '{"set":{"a":"b"},"remove":["c"]}'),
            ("/clients", '{"name":"fz-RAND","publicKey":"%s","grants":[{"keys":["*"],"allow":["crypto:encrypt"]}]}'
             % public_key),
            ("/aliases", '{"alias":"al-RAND","keyId":"%s"}' % key),
        ]
        rnd = self.rnd
        for _ in range(self.args.requests):
            target, text = rnd.choice(bases)
            body = bytearray(text.replace("RAND", str(rnd.randrange(10**6))).encode())
            for _ in range(rnd.randrange(1, 4)):
                c, at = rnd.randrange(4), rnd.randrange(len(body) + 1)
                if c == 0 and body:
                    del body[at:at + rnd.randrange(1, 5)]
                elif c == 1:
                    body[at:at] = (rnd.choice(JSON_PIECES).encode("utf-8", "surrogatepass") if rnd.random() < 0.9
                                   else bytes([rnd.randrange(256)]))
                elif c == 2 and body:
                    body[min(at, len(body) - 1)] = rnd.randrange(256)
                else:
                    body += rnd.choice(JSON_PIECES).encode("utf-8", "surrogatepass")
            self.sealed_call("POST", target, bytes(body), bytes(body)[:200].decode("utf-8", "replace"))

    # -- plain HTTP -----------------------------------------------------------

    def raw_exchange(self, request: bytes) -> bytes:
        parts = urlsplit(self.args.url)
        with socket.create_connection((parts.hostname, parts.port or 80), timeout=5) as connection:
            try:
                connection.sendall(request)
            except (BrokenPipeError, ConnectionResetError):
                return b""  # closed before the request was all sent (a 100 KB header): an answer in itself
            # Half-close: a body cut short ends here instead of waiting out the server's body deadline.
            try:
                connection.shutdown(socket.SHUT_WR)
            except OSError as error:
                if error.errno != errno.ENOTCONN:
                    raise
                # The server answered (a header past its limits: 400) and closed, resetting what it had
                # not read, before this half-close: what it sent may still be readable below.
            data = b""
            try:
                while chunk := connection.recv(65536):
                    data += chunk
            except (socket.timeout, ConnectionResetError):
                pass  # a server may reset a connection it closed with input unread; alive() judges the server
        return data

    def campaign_http(self) -> None:
        rnd = self.rnd
        methods = [b"GET", b"POST", b"DELETE", b"PUT", b"HEAD", b"OPTIONS", b"PATCH", b"TRACE", b"G\x00T", b"get"]
        targets = [b"/healthz", b"/session/init", b"/session/key-exchange", b"/session/rotate-token", b"/session",
                   b"/keys", b"/keys/%ff", b"/keys/%", b"/keys/..%2f..%2fetc", b"//keys", b"/keys/a/b/c/d",
                   b"http://x/keys", b"*", b"/docs", b"/openapi.json", b"/metrics", b"/crypto/encrypt?x",
                   b"/" + b"a" * 9000, b"/keys/\xff", b"/clients/%00"]
        key_exchange = json.dumps({"sessionId": "s", "wrappedKey": b64e(self.rnd.randbytes(512)), "token": self.token(),
                                   "clientKey": "x", "signature": b64e(self.rnd.randbytes(64))}).encode()
        for i in range(self.args.requests):
            headers, body = [b"Host: x"], b""
            c = rnd.randrange(8)
            if c == 0:
                headers.append(b"X-Client-Token: " + rnd.choice([b"", b"a" * 5000, b"\xff\xfe", b"tok en",
                                                                 self.token().encode()]))
            elif c == 1:
                headers.append(b"X-KMS-Envelope: " + rnd.choice([b"{}", b'{"seq":1}', b"eyJ9", b"\xff", b"x" * 9000,
                                                                 b'{"seq":1,"iv":"","ciphertext":"","tag":""}']))
            elif c == 2:
                headers.append(b"X-Forwarded-For: " + rnd.choice([b"1.2.3.4", b"::1", b"", b"x", b"300.1.1.1",
                                                                  b"1.1.1.1, 2.2.2.2"]))
            elif c == 3:
                body = rnd.choice([b"{}", b"[]", b"\x00" * 100, b'{"a":' * 1000, key_exchange,
                                   b'{"sessionId":"x","wrappedKey":"AAAA","token":"t"}'])
            elif c == 4:
                headers.append(b"Content-Length: " + rnd.choice([b"-1", b"99999999999999999999", b"abc", b"5, 6"]))
            elif c == 5:
                headers.append(b"Transfer-Encoding: chunked")
                body = rnd.choice([b"5\r\nhello\r\n0\r\n\r\n", b"zz\r\n", b"ffffffffffffffff\r\nx"])
            elif c == 6:
                headers.append(b"X-Big: " + b"a" * rnd.choice([100, 20000, 100000]))
            if body and c != 5:
                headers.append(b"Content-Length: %d" % len(body))
            method, target = rnd.choice(methods), rnd.choice(targets)
            if c in (3, 4, 5) and rnd.random() < 0.7:  # body trouble: mostly where a body is read
                method, target = b"POST", rnd.choice([b"/session/key-exchange", b"/crypto/encrypt", b"/keys/generate"])
            request = (method + b" " + target + b" HTTP/1.1\r\n" + b"\r\n".join(headers)
                       + b"\r\nConnection: close\r\n\r\n" + body)
            try:
                status_line = self.raw_exchange(request).split(b"\r\n", 1)[0]
            except OSError as error:
                self.finding(f"socket error {error!r} for {request[:150]!r}")
                continue
            if status_line.startswith(b"HTTP/1.1 5") and b" 503" not in status_line:
                self.finding(f"{status_line!r} for {request[:200]!r}")
            if i % 200 == 0:
                self.alive()

    def alive(self) -> None:
        try:
            self.client.init()
        except Exception as error:  # noqa: BLE001
            self.finding(f"server stopped answering: {error!r}")

    # -- AWS door -------------------------------------------------------------

    def campaign_aws(self) -> None:
        import botocore.session
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        name = f"fz{self.rnd.randrange(10**6)}"
        public = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        everything = ["keys:create", "keys:read", "keys:rotate", "keys:manage", "crypto:encrypt", "crypto:decrypt",
                      "crypto:rewrap", "crypto:datakey"]
        created = self.session.call("POST", "/clients", {"name": name, "publicKey": base64.b64encode(public).decode(),
                                                         "grants": [{"keys": ["*"], "allow": everything}]})
        assert created.status == 200, created.body
        access = self.session.call("POST", f"/clients/{name}/access-keys", {}).body
        credentials = Credentials(access["accessKeyId"], access["secretAccessKey"])
        model = botocore.session.get_session().get_service_model("kms")
        url = self.args.aws_url.rstrip("/") + "/"
        http = requests.Session()

        def call(operation: str, body: bytes, target=None):
            request = AWSRequest(method="POST", url=url, data=body, headers={
                "X-Amz-Target": target if target is not None else "TrentService." + operation,
                "Content-Type": "application/x-amz-json-1.1"})
            SigV4Auth(credentials, "kms", self.args.region).add_auth(request)
            # verify= on the call: requests lets REQUESTS_CA_BUNDLE override a Session's verify.
            return http.post(url, data=body, headers=dict(request.headers), verify=self.args.ca or True, timeout=30)

        key_id = json.loads(call("CreateKey", b"{}").content)["KeyMetadata"]["KeyId"]
        blob = json.loads(call("Encrypt", json.dumps({"KeyId": key_id, "Plaintext": "aGk="}).encode()).content)[
            "CiphertextBlob"]
        odd = [None, 0, -1, 2**63, 1.5, True, "", "x" * 5000, [], {}, [1], {"a": 1}, "alias/", "alias/aws/x",
               key_id, blob, "aGk=", "%%%", "\u0000", "é"]
        rnd = self.rnd

        def value(shape, depth=0):
            kind = shape.type_name
            if depth > 4:
                return rnd.choice(odd)
            if kind == "structure":
                return {k: value(s, depth + 1) for k, s in shape.members.items()
                        if k in shape.required_members or rnd.random() < 0.4}
            if kind == "list":
                return [value(shape.member, depth + 1) for _ in range(rnd.randrange(3))]
            if kind == "map":
                return {value(shape.key, depth + 1): value(shape.value, depth + 1) for _ in range(rnd.randrange(3))}
            if kind == "string":
                return rnd.choice(shape.enum) if shape.enum else rnd.choice(
                    [key_id, f"alias/fz{rnd.randrange(100)}", "abc",
                     f"arn:aws:kms:{self.args.region}:000000000000:key/{key_id}"])
            if kind == "blob":
                return rnd.choice([blob, "aGk=", base64.b64encode(self.rnd.randbytes(rnd.choice([0, 1, 64, 4097]))).decode()])
            if kind in ("integer", "long"):
                return rnd.choice([0, 1, 16, 32, 1024, 1025, -1, 7, 30])
            if kind == "boolean":
                return rnd.choice([True, False])
            if kind == "timestamp":
                return rnd.choice([0, 1.7e9, "2026-01-01"])
            return None

        def mutate(v):
            if rnd.random() < 0.08:
                return rnd.choice(odd)
            if isinstance(v, dict):
                v = {k: mutate(x) for k, x in v.items() if rnd.random() > 0.1}
                if rnd.random() < 0.1:
                    v[rnd.choice(["Foo", "", "KeyId", "x" * 300])] = rnd.choice(odd)
                return v
            return [mutate(x) for x in v] if isinstance(v, list) else v

        for _ in range(self.args.requests):
            operation = rnd.choice(model.operation_names)
            shape = model.operation_model(operation).input_shape
            body = value(shape) if shape else {}
            raw = json.dumps(mutate(body) if rnd.random() < 0.7 else body).encode()
            if rnd.random() < 0.1:
                at = rnd.randrange(len(raw) + 1)
                raw = raw[:at] + rnd.choice([b"{", b'"', b"\xff", b",", b"1e999", b"[" * 200]) + raw[at:]
            target = (rnd.choice(["TrentService", "TrentService.", "Foo.Encrypt", "TrentService." + "A" * 500, ""])
                      if rnd.random() < 0.03 else None)
            try:
                response = call(operation, raw, target)
            except requests.RequestException as error:
                self.finding(f"AWS {operation}: {error!r}")
                continue
            if response.status_code >= 500 and response.status_code != 503:
                self.finding(f"AWS {response.status_code} {operation} {raw[:300]!r}: {response.text[:300]}")
            elif response.status_code >= 400:
                try:
                    if "__type" not in response.json():
                        self.finding(f"AWS {operation} {response.status_code} without __type: {response.text[:200]}")
                except ValueError:
                    self.finding(f"AWS {operation} {response.status_code} not JSON: {response.text[:200]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="the server's plain HTTP URL")
    parser.add_argument("--aws-url", help="the AWS door's https URL (enables the aws campaign)")
    parser.add_argument("--ca", help="PEM to trust for the AWS door (kms tls-cert)")
    parser.add_argument("--region", default=os.environ.get("KMS_AWS_REGION", "us-east-1"))
    parser.add_argument("--requests", type=int, default=2000, help="requests per campaign")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--campaign", action="append", choices=["sealed", "bytes", "http", "aws"],
                        help="run only these (default: all that apply)")
    args = parser.parse_args()
    print(f"fuzz-api: seed {args.seed}, {args.requests} requests per campaign", flush=True)
    fuzzer = Fuzzer(args)
    campaigns = args.campaign or ["sealed", "bytes", "http"] + (["aws"] if args.aws_url else [])
    for name in campaigns:
        before = len(fuzzer.findings)
        getattr(fuzzer, "campaign_" + name)()
        fuzzer.alive()
        print(f"{name}: {args.requests} requests, {len(fuzzer.findings) - before} findings", flush=True)
    return 1 if fuzzer.findings else 0


if __name__ == "__main__":
    sys.exit(main())
