"""aws-kms-v1 (/work/shared/design/aws-kms-v1.md) with real AWS clients: boto3, the aws CLI,
the AWS Encryption SDK and SOPS, against the AWS door over TLS on its self-signed certificate.

Needs: KMS_URL (the native door) and KMS_CLIENT_KEY_FILE (the admin key) to enrol callers,
KMS_INTEROP_AWS_URL (https://127.0.0.1:PORT) and AWS_CA_BUNDLE (from `kms tls-cert`). Skips otherwise.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import os
import shutil
import subprocess

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ed25519

from kms_wire import Client, Settings, end_quietly, expect_ok, random_token, raw_public_key

SETTINGS = Settings.from_env()
AWS_URL = os.environ.get("KMS_INTEROP_AWS_URL", "")
CA = os.environ.get("AWS_CA_BUNDLE", "")
REGION = os.environ.get("KMS_AWS_REGION", "us-east-1")
live = pytest.mark.skipif(not (SETTINGS.url and AWS_URL and CA), reason="needs KMS_URL, KMS_INTEROP_AWS_URL, AWS_CA_BUNDLE")

boto3 = pytest.importorskip("boto3")
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402


def unique(name: str) -> str:
    return f"{name}-{os.urandom(4).hex()}"


@pytest.fixture(scope="module")
def admin():
    session = Client(SETTINGS.url, pin=SETTINGS.pin).open_session(random_token(SETTINGS.token_prefix))
    yield session
    end_quietly(session)


def enrol_with_access_key(admin, grants):
    name = unique("aws")
    key = ed25519.Ed25519PrivateKey.generate()
    body = {"name": name, "publicKey": base64.b64encode(raw_public_key(key)).decode(), "grants": grants}
    expect_ok(admin.call("POST", "/clients", body))
    created = expect_ok(admin.call("POST", f"/clients/{name}/access-keys", {}))
    return name, created["accessKeyId"], created["secretAccessKey"]


EVERYTHING = [{"keys": ["*"], "allow": ["keys:create", "keys:read", "keys:rotate", "keys:manage", "crypto:encrypt",
                                         "crypto:decrypt", "crypto:rewrap", "crypto:datakey"]}]


@pytest.fixture(scope="module")
def caller(admin):
    return enrol_with_access_key(admin, EVERYTHING)


def kms_client(access_key_id, secret):
    return boto3.client("kms", endpoint_url=AWS_URL, region_name=REGION, verify=CA,
                        aws_access_key_id=access_key_id, aws_secret_access_key=secret,
                        config=Config(retries={"max_attempts": 1}))


@pytest.fixture(scope="module")
def kms(caller):
    return kms_client(caller[1], caller[2])


def code_of(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


@live
def test_every_operation_with_boto3(kms):
    created = kms.create_key(Description="boto3 key", Tags=[{"TagKey": "owner", "TagValue": "ana"}])["KeyMetadata"]
    key_id, arn = created["KeyId"], created["Arn"]
    assert created["KeyState"] == "Enabled" and created["KeySpec"] == "SYMMETRIC_DEFAULT"
    assert len(key_id) == 36 and key_id[14] == "4" and arn.endswith(":key/" + key_id)
    alias = "alias/" + unique("boto")
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    context = {"purpose": "test", "app": "photos"}
    sealed = kms.encrypt(KeyId=alias, Plaintext=b"hello", EncryptionContext=context)
    assert sealed["KeyId"] == arn and sealed["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    opened = kms.decrypt(CiphertextBlob=sealed["CiphertextBlob"], EncryptionContext=context)
    assert opened["Plaintext"] == b"hello" and opened["KeyId"] == arn
    with pytest.raises(ClientError) as wrong_context:
        kms.decrypt(CiphertextBlob=sealed["CiphertextBlob"], EncryptionContext={"purpose": "other"})
    assert code_of(wrong_context) == "InvalidCiphertextException"
    assert kms.decrypt(CiphertextBlob=sealed["CiphertextBlob"], EncryptionContext=context, KeyId=arn)["KeyId"] == arn
    other = kms.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as incorrect:
        kms.decrypt(CiphertextBlob=sealed["CiphertextBlob"], EncryptionContext=context, KeyId=other)
    assert code_of(incorrect) == "IncorrectKeyException"
    rewrapped = kms.re_encrypt(CiphertextBlob=sealed["CiphertextBlob"], SourceEncryptionContext=context,
                               DestinationKeyId=other)
    assert rewrapped["SourceKeyId"] == arn and rewrapped["KeyId"].endswith(other)
    assert kms.decrypt(CiphertextBlob=rewrapped["CiphertextBlob"])["Plaintext"] == b"hello"
    data_key = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=context)
    assert len(data_key["Plaintext"]) == 32
    assert kms.decrypt(CiphertextBlob=data_key["CiphertextBlob"], EncryptionContext=context)["Plaintext"] == \
        data_key["Plaintext"]
    bare = kms.generate_data_key_without_plaintext(KeyId=key_id, NumberOfBytes=64)
    assert "Plaintext" not in bare and len(kms.decrypt(CiphertextBlob=bare["CiphertextBlob"])["Plaintext"]) == 64
    assert len(kms.generate_random(NumberOfBytes=1024)["Plaintext"]) == 1024
    described = kms.describe_key(KeyId=alias)["KeyMetadata"]
    assert described["KeyId"] == key_id and described["Description"] == "boto3 key"
    listed = kms.list_keys(Limit=1000)["Keys"]
    assert {"KeyId": key_id, "KeyArn": arn} in listed
    kms.disable_key(KeyId=key_id)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"
    with pytest.raises(ClientError) as disabled:
        kms.encrypt(KeyId=key_id, Plaintext=b"x")
    assert code_of(disabled) == "DisabledException"
    kms.enable_key(KeyId=key_id)
    kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)
    status = kms.get_key_rotation_status(KeyId=key_id)
    assert status["KeyRotationEnabled"] and status["RotationPeriodInDays"] == 90 and "NextRotationDate" in status
    kms.disable_key_rotation(KeyId=key_id)
    assert not kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"]
    assert kms.rotate_key_on_demand(KeyId=key_id)["KeyId"] == key_id
    assert kms.decrypt(CiphertextBlob=sealed["CiphertextBlob"], EncryptionContext=context)["Plaintext"] == b"hello"
    kms.update_alias(AliasName=alias, TargetKeyId=other)
    aliases = kms.list_aliases(KeyId=other)["Aliases"]
    assert [a["AliasName"] for a in aliases] == [alias] and aliases[0]["TargetKeyId"] == other
    kms.delete_alias(AliasName=alias)
    with pytest.raises(ClientError) as gone:
        kms.describe_key(KeyId=alias)
    assert code_of(gone) == "NotFoundException"
    kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "year", "TagValue": "2026"}])
    kms.untag_resource(KeyId=key_id, TagKeys=["owner"])
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [{"TagKey": "year", "TagValue": "2026"}]
    with pytest.raises(ClientError) as tag:
        kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "aws:x", "TagValue": "1"}])
    assert code_of(tag) == "TagException"
    kms.update_key_description(KeyId=key_id, Description="described")
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "described"
    policy = kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]
    assert json.loads(policy)["Id"] == "key-default-1"
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy='{"Version":"2012-10-17","Statement":[]}')
    assert json.loads(kms.get_key_policy(KeyId=key_id)["Policy"])["Statement"] == []
    with pytest.raises(ClientError) as malformed:
        kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy="[not an object")
    assert code_of(malformed) == "MalformedPolicyDocumentException"
    assert kms.list_key_policies(KeyId=key_id)["PolicyNames"] == ["default"]
    scheduled = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert scheduled["KeyState"] == "PendingDeletion" and scheduled["PendingWindowInDays"] == 7
    with pytest.raises(ClientError) as pending:
        kms.encrypt(KeyId=key_id, Plaintext=b"x")
    assert code_of(pending) == "KMSInvalidStateException" and "is pending deletion." in str(pending.value)
    with pytest.raises(ClientError) as pending_source:
        kms.re_encrypt(CiphertextBlob=sealed["CiphertextBlob"], SourceEncryptionContext=context,
                       DestinationKeyId=other)
    # The error names the key of the half that failed: the source, not the destination.
    assert code_of(pending_source) == "KMSInvalidStateException"
    assert f"{arn} is pending deletion." in str(pending_source.value)
    assert kms.cancel_key_deletion(KeyId=key_id)["KeyId"] == arn
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"


@live
def test_errors_with_boto3(kms):
    for call, code in [
        (lambda: kms.describe_key(KeyId="0f1e2d3c-4b5a-4987-a654-3210fedcba98"), "NotFoundException"),
        (lambda: kms.describe_key(KeyId="alias/aws/ebs"), "NotFoundException"),
        (lambda: kms.decrypt(CiphertextBlob=b"not a ciphertext"), "InvalidCiphertextException"),
        (lambda: kms.create_alias(AliasName="photos", TargetKeyId="x"), "InvalidAliasNameException"),
        (lambda: kms.encrypt(KeyId="alias/x", Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_256"),
         "InvalidKeyUsageException"),
        (lambda: kms.create_key(KeySpec="RSA_2048"), "UnsupportedOperationException"),
        (lambda: kms.list_keys(Marker="not/a/marker"), "InvalidMarkerException"),
        (lambda: kms.sign(KeyId="alias/x", Message=b"x", SigningAlgorithm="ECDSA_SHA_256"),
         "UnsupportedOperationException"),
        (lambda: kms.encrypt(KeyId="alias/x", Plaintext=b"x", DryRun=True), "NotFoundException"),
    ]:
        with pytest.raises(ClientError) as error:
            call()
        assert code_of(error) == code, error.value.response
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as dry:
        kms.encrypt(KeyId=key_id, Plaintext=b"x", DryRun=True)
    assert code_of(dry) == "DryRunOperationException"
    # AWS's "Testing your permissions": no ciphertext with IGNORE_CIPHERTEXT (a botocore that predates the
    # member would refuse it before sending, so the check needs one that has it).
    if "DryRunModifiers" in kms.meta.service_model.operation_model("Decrypt").input_shape.members:
        with pytest.raises(ClientError) as ignoring:
            kms.decrypt(KeyId=key_id, DryRun=True, DryRunModifiers=["IGNORE_CIPHERTEXT"])
        assert code_of(ignoring) == "DryRunOperationException"
    alias = "alias/" + unique("dup")
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    with pytest.raises(ClientError) as exists:
        kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    assert code_of(exists) == "AlreadyExistsException"


def signed_post(access_key_id, secret, target, body, *, amz_date=None, extra=None, tamper=None, scope=None):
    """A hand-made SigV4 request, to send what an SDK never would."""
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date = amz_date or now.strftime("%Y%m%dT%H%M%SZ")
    host = AWS_URL.split("://", 1)[1]
    headers = {"host": host, "x-amz-date": amz_date, "x-amz-target": f"TrentService.{target}",
               "content-type": "application/x-amz-json-1.1"}
    headers.update(extra or {})
    signed = sorted(headers)
    canonical = "POST\n/\n\n" + "".join(f"{h}:{headers[h]}\n" for h in signed) + "\n" + ";".join(signed) + "\n" + \
        hashlib.sha256(body).hexdigest()
    scope = scope or f"{amz_date[:8]}/{REGION}/kms/aws4_request"
    to_sign = "AWS4-HMAC-SHA256\n" + amz_date + "\n" + scope + "\n" + hashlib.sha256(canonical.encode()).hexdigest()
    key = ("AWS4" + secret).encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key_id}/{scope}, "
                                f"SignedHeaders={';'.join(signed)}, Signature={signature}")
    if tamper:
        tamper(headers)
    sent = body if not (tamper and headers.pop("__body__", None)) else body + b" "
    return requests.post(AWS_URL + "/", data=sent, headers={k: v for k, v in headers.items() if k != "host"},
                         verify=CA, timeout=30)


@live
def test_section_8_refusals(admin, caller):
    _, access_key_id, secret = caller
    body = b'{"NumberOfBytes": 8}'
    assert signed_post(access_key_id, secret, "GenerateRandom", body).status_code == 200

    def refused(response, code, status=400):
        assert response.status_code == status, response.text
        assert response.json()["__type"] == code, response.text
        assert response.headers["x-amzn-ErrorType"] == code and response.headers.get("x-amzn-RequestId")

    refused(signed_post(access_key_id, secret + "x", "GenerateRandom", body), "InvalidSignatureException")
    for seconds in (360, -360):
        moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
        refused(signed_post(access_key_id, secret, "GenerateRandom", body, amz_date=moment.strftime("%Y%m%dT%H%M%SZ")),
                "InvalidSignatureException")
    refused(signed_post(access_key_id, secret, "GenerateRandom", body,
                        tamper=lambda h: h.update({"x-amz-target": "TrentService.ListKeys"})),
            "InvalidSignatureException")
    refused(signed_post(access_key_id, secret, "GenerateRandom", body, tamper=lambda h: h.update({"__body__": "1"})),
            "InvalidSignatureException")
    refused(signed_post("AKIAAAAAAAAAAAAAAAAA", secret, "GenerateRandom", body), "UnrecognizedClientException")
    refused(signed_post(access_key_id, secret, "GenerateRandom", body, extra={"x-amz-security-token": "t"}),
            "UnrecognizedClientException")
    refused(signed_post(access_key_id, secret, "GenerateRandom", body,
                        scope=datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d") +
                        "/eu-west-1/kms/aws4_request"),
            "InvalidSignatureException")
    refused(requests.post(AWS_URL + "/", data=body, headers={"x-amz-target": "TrentService.GenerateRandom"},
                          verify=CA, timeout=30), "MissingAuthenticationTokenException")
    refused(requests.post(AWS_URL + "/", data=body, headers={"authorization": "Basic abc"}, verify=CA, timeout=30),
            "IncompleteSignatureException")
    refused(requests.post(AWS_URL + "/?x=1", data=body, verify=CA, timeout=30), "UnknownOperationException", 404)

    # A revoked access key, and a revoked client's key, are refused at once.
    name, revoked_id, revoked_secret = enrol_with_access_key(admin, EVERYTHING)
    assert signed_post(revoked_id, revoked_secret, "GenerateRandom", body).status_code == 200
    expect_ok(admin.call("POST", f"/clients/{name}/access-keys/{revoked_id}/revoke", {}))
    refused(signed_post(revoked_id, revoked_secret, "GenerateRandom", body), "UnrecognizedClientException")
    name, gone_id, gone_secret = enrol_with_access_key(admin, EVERYTHING)
    expect_ok(admin.call("POST", f"/clients/{name}/revoke", {}))
    refused(signed_post(gone_id, gone_secret, "GenerateRandom", body), "UnrecognizedClientException")

    # No grant: AccessDeniedException.
    alias = unique("granted")
    expect_ok(admin.call("POST", "/keys/generate", {"alias": alias}))
    _, limited_id, limited_secret = enrol_with_access_key(admin, [{"keys": [alias], "allow": ["crypto:encrypt"]}])
    limited = kms_client(limited_id, limited_secret)
    assert limited.encrypt(KeyId="alias/" + alias, Plaintext=b"ok")["CiphertextBlob"]
    with pytest.raises(ClientError) as denied:
        limited.generate_data_key(KeyId="alias/" + alias, KeySpec="AES_256")
    assert code_of(denied) == "AccessDeniedException"
    with pytest.raises(ClientError) as denied_create:
        limited.create_key()
    assert code_of(denied_create) == "AccessDeniedException"


@live
def test_cross_door_blobs(admin, kms):
    alias = unique("cross")
    expect_ok(admin.call("POST", "/keys/generate", {"alias": alias}))
    blob = kms.encrypt(KeyId="alias/" + alias, Plaintext=b"from aws", EncryptionContext={"k": "v"})["CiphertextBlob"]
    opened = expect_ok(admin.call("POST", "/crypto/decrypt", {"ciphertext": base64.b64encode(blob).decode(),
                                                               "encryptionContext": {"k": "v"}}))
    assert base64.b64decode(opened["plaintext"]) == b"from aws"
    native = expect_ok(admin.call("POST", "/crypto/encrypt", {"keyId": alias, "plaintext": base64.b64encode(
        b"from native").decode()}))
    assert kms.decrypt(CiphertextBlob=native["ciphertext"].encode())["Plaintext"] == b"from native"


def aws_cli(caller, *args, stdin=None):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=caller[1], AWS_SECRET_ACCESS_KEY=caller[2], AWS_DEFAULT_REGION=REGION,
               AWS_CA_BUNDLE=CA)
    env.pop("AWS_PROFILE", None)
    run = subprocess.run(["aws", "--endpoint-url", AWS_URL, "kms", *args, "--output", "json"], env=env,
                         capture_output=True, text=True, input=stdin, timeout=120)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout) if run.stdout.strip() else {}


@live
@pytest.mark.skipif(shutil.which("aws") is None, reason="the aws CLI is not installed")
def test_aws_cli(caller, tmp_path):
    key = aws_cli(caller, "create-key", "--description", "cli")["KeyMetadata"]["KeyId"]
    alias = "alias/" + unique("cli")
    aws_cli(caller, "create-alias", "--alias-name", alias, "--target-key-id", key)
    plain = tmp_path / "photo.txt"
    plain.write_bytes(os.urandom(3000))
    sealed = aws_cli(caller, "encrypt", "--key-id", alias, "--plaintext", f"fileb://{plain}",
                     "--encryption-context", "album=2026")["CiphertextBlob"]
    (tmp_path / "photo.kms").write_bytes(base64.b64decode(sealed))
    opened = aws_cli(caller, "decrypt", "--ciphertext-blob", f"fileb://{tmp_path / 'photo.kms'}",
                     "--encryption-context", "album=2026")
    assert base64.b64decode(opened["Plaintext"]) == plain.read_bytes()
    # The project's own CLI with the same context (section 5's AAD), both ways, when it is built.
    kms_bin = os.environ.get("KMS_BIN") or os.path.join(os.path.dirname(__file__), "../../.build/debug/kms")
    if os.path.exists(kms_bin):
        env = dict(os.environ, KMS_KNOWN_SERVERS="off")
        native = subprocess.run([kms_bin, "decrypt", "--encryption-context", "album=2026", "--output-base64", sealed],
                                env=env, capture_output=True, text=True, timeout=60)
        assert native.returncode == 0, native.stderr
        assert base64.b64decode(native.stdout.strip()) == plain.read_bytes()
        made = subprocess.run([kms_bin, "encrypt", "--key", alias.removeprefix("alias/"), "--encryption-context", "album=2026", "--file",
                               str(plain)], env=env, capture_output=True, text=True, timeout=60)
        assert made.returncode == 0, made.stderr
        (tmp_path / "native.kms").write_bytes(made.stdout.strip().encode())
        back = aws_cli(caller, "decrypt", "--ciphertext-blob", f"fileb://{tmp_path / 'native.kms'}",
                       "--encryption-context", "album=2026")
        assert base64.b64decode(back["Plaintext"]) == plain.read_bytes()
    assert aws_cli(caller, "describe-key", "--key-id", alias)["KeyMetadata"]["KeyId"] == key
    for args in (["list-keys"], ["list-aliases"], ["get-key-rotation-status", "--key-id", key],
                 ["enable-key-rotation", "--key-id", key], ["disable-key-rotation", "--key-id", key],
                 ["rotate-key-on-demand", "--key-id", key], ["generate-random", "--number-of-bytes", "16"],
                 ["generate-data-key", "--key-id", key, "--key-spec", "AES_128"],
                 ["generate-data-key-without-plaintext", "--key-id", key, "--number-of-bytes", "32"],
                 ["re-encrypt", "--ciphertext-blob", f"fileb://{tmp_path / 'photo.kms'}", "--source-encryption-context",
                  "album=2026", "--destination-key-id", key],
                 ["tag-resource", "--key-id", key, "--tags", "TagKey=a,TagValue=b"],
                 ["list-resource-tags", "--key-id", key], ["untag-resource", "--key-id", key, "--tag-keys", "a"],
                 ["update-key-description", "--key-id", key, "--description", "d"],
                 ["get-key-policy", "--key-id", key, "--policy-name", "default"],
                 ["put-key-policy", "--key-id", key, "--policy-name", "default", "--policy", "{}"],
                 ["list-key-policies", "--key-id", key], ["disable-key", "--key-id", key],
                 ["enable-key", "--key-id", key], ["update-alias", "--alias-name", alias, "--target-key-id", key],
                 ["delete-alias", "--alias-name", alias],
                 ["schedule-key-deletion", "--key-id", key, "--pending-window-in-days", "7"],
                 ["cancel-key-deletion", "--key-id", key]):
        aws_cli(caller, *args)


@live
def test_encryption_sdk(caller, tmp_path):
    sdk = pytest.importorskip("aws_encryption_sdk")
    from aws_encryption_sdk.identifiers import CommitmentPolicy

    kms = kms_client(caller[1], caller[2])
    arn = kms.create_key()["KeyMetadata"]["Arn"]
    botocore_session = boto3.Session(aws_access_key_id=caller[1], aws_secret_access_key=caller[2],
                                     region_name=REGION)._session
    os.environ["AWS_ENDPOINT_URL_KMS"] = AWS_URL
    try:
        provider = sdk.StrictAwsKmsMasterKeyProvider(key_ids=[arn], botocore_session=botocore_session)
        client = sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
        plaintext = os.urandom(100_000)
        ciphertext, _ = client.encrypt(source=plaintext, key_provider=provider, encryption_context={"file": "a"})
        decrypted, header = client.decrypt(source=ciphertext, key_provider=provider)
        assert decrypted == plaintext and header.encryption_context["file"] == "a"
    finally:
        os.environ.pop("AWS_ENDPOINT_URL_KMS", None)


@live
@pytest.mark.skipif(shutil.which("sops") is None, reason="sops is not installed")
def test_sops(caller, tmp_path):
    kms = kms_client(caller[1], caller[2])
    arn = kms.create_key()["KeyMetadata"]["Arn"]
    secret = tmp_path / "secret.yaml"
    secret.write_text("password: hunter2\n")
    env = dict(os.environ, AWS_ACCESS_KEY_ID=caller[1], AWS_SECRET_ACCESS_KEY=caller[2], AWS_REGION=REGION,
               AWS_ENDPOINT_URL_KMS=AWS_URL, AWS_CA_BUNDLE=CA, SSL_CERT_FILE=CA)
    encrypted = subprocess.run(["sops", "--encrypt", "--kms", arn, str(secret)], env=env, capture_output=True,
                               text=True, timeout=120)
    assert encrypted.returncode == 0, encrypted.stderr
    assert "hunter2" not in encrypted.stdout and arn in encrypted.stdout
    (tmp_path / "enc.yaml").write_text(encrypted.stdout)
    decrypted = subprocess.run(["sops", "--decrypt", str(tmp_path / "enc.yaml")], env=env, capture_output=True,
                               text=True, timeout=120)
    assert decrypted.returncode == 0, decrypted.stderr
    assert "password: hunter2" in decrypted.stdout
