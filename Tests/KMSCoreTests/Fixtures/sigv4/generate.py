"""Generates sigv4.json: the POST cases of AWS's SigV4 test suite (and a few of our own),
signed by botocore (AWS's own Python signer, sharing no code with this project) for
service `service` (the suite's scope) and recomputed for service `kms` with the
operation signed, as aws-kms-v1 section 3 requires.

Run: python3 Tests/KMSCoreTests/Fixtures/sigv4/generate.py > Tests/KMSCoreTests/Fixtures/sigv4/sigv4.json
"""
import datetime
import json
from unittest import mock

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
CREDENTIALS = Credentials("AKIDEXAMPLE", SECRET)
DATE = datetime.datetime(2015, 8, 30, 12, 36, 0)

# (name, headers, body) as in the suite's post-* requests (host added by the signer from the URL).
SUITE = [
    ("post-vanilla", {}, b""),
    ("post-header-key-case", {}, b""),
    ("post-header-key-sort", {"My-Header1": "value1"}, b""),
    ("post-header-value-case", {"My-Header1": "VALUE1"}, b""),
    ("post-x-www-form-urlencoded", {"Content-Type": "application/x-www-form-urlencoded"}, b"Param1=value1"),
    # Our own: KMS requests with the operation signed, blank runs and repeated headers.
    ("kms-encrypt", {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService.Encrypt"},
     b'{"KeyId": "alias/photos", "Plaintext": "aGVsbG8="}'),
    ("kms-header-spaces", {"X-Amz-Target": "TrentService.ListKeys", "My-Header1": "  a   b  c "}, b"{}"),
]


def sign(service, headers, body, host="example.amazonaws.com"):
    request = AWSRequest(method="POST", url=f"https://{host}/", data=body, headers=dict(headers))
    with mock.patch("botocore.auth.get_current_datetime", return_value=DATE):
        SigV4Auth(CREDENTIALS, service, "us-east-1").add_auth(request)
    out = {k: v for k, v in request.headers.items()}
    return out


cases = []
for name, headers, body in SUITE:
    for service in ("service", "kms"):
        signed = sign(service, headers, body)
        cases.append({
            "name": f"{name} ({service})", "service": service, "region": "us-east-1",
            "headers": [[k, v] for k, v in signed.items() if k.lower() != "authorization"] + [["Host", "example.amazonaws.com"]],
            "body": body.decode(), "authorization": signed["Authorization"],
        })
print(json.dumps({"secret": SECRET, "accessKeyId": "AKIDEXAMPLE", "cases": cases}, indent=1))
