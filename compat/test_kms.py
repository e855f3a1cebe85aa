"""KMS with boto3, the AWS CLI and botocore-signed raw requests against a real
`tresor serve`: key lifecycle, envelope round trips, error codes and shapes, key-policy
authorization, AWS-managed keys and the data directory never holding a plaintext."""

import base64
import json
import re
import uuid
from pathlib import Path

import botocore.exceptions
import pytest

from conftest import aws_cli, new_user_with_key
from sign import json_call


def error_code(exc: botocore.exceptions.ClientError) -> str:
    return exc.response["Error"]["Code"]


@pytest.fixture()
def kms(server):
    return server.admin("kms")


def new_key(kms, **kw) -> str:
    return kms.create_key(Description="compat", **kw)["KeyMetadata"]["Arn"]


def unique_alias(prefix="alias/compat-") -> str:
    return prefix + uuid.uuid4().hex[:12]


# --- key metadata and lifecycle ----------------------------------------------------------------

def test_create_key_returns_aws_shaped_metadata(kms):
    meta = kms.create_key(Description="ci token key", Tags=[{"TagKey": "team", "TagValue": "ci"}])["KeyMetadata"]
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", meta["KeyId"])
    assert re.fullmatch(r"arn:aws:kms:us-east-1:\d{12}:key/" + meta["KeyId"], meta["Arn"])
    assert meta["AWSAccountId"] == meta["Arn"].split(":")[4]
    assert meta["Enabled"] is True and meta["KeyState"] == "Enabled"
    assert meta["KeyManager"] == "CUSTOMER" and meta["Origin"] == "AWS_KMS"
    assert meta["KeySpec"] == meta["CustomerMasterKeySpec"] == "SYMMETRIC_DEFAULT"
    assert meta["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert meta["EncryptionAlgorithms"] == ["SYMMETRIC_DEFAULT"]
    assert meta["MultiRegion"] is False
    assert meta["Description"] == "ci token key"
    assert meta["CreationDate"].year >= 2024
    tags = kms.list_resource_tags(KeyId=meta["KeyId"])["Tags"]
    assert tags == [{"TagKey": "team", "TagValue": "ci"}]
    policy = json.loads(kms.get_key_policy(KeyId=meta["KeyId"], PolicyName="default")["Policy"])
    assert policy["Id"] == "key-default-1"
    assert policy["Statement"][0]["Principal"] == {"AWS": f"arn:aws:iam::{meta['AWSAccountId']}:root"}


def test_cancel_key_deletion_leaves_the_key_disabled(kms):
    arn = new_key(kms)
    out = kms.schedule_key_deletion(KeyId=arn, PendingWindowInDays=7)
    assert out["KeyState"] == "PendingDeletion" and out["PendingWindowInDays"] == 7 and out["KeyId"] == arn
    meta = kms.describe_key(KeyId=arn)["KeyMetadata"]
    assert meta["KeyState"] == "PendingDeletion" and meta["Enabled"] is False and "DeletionDate" in meta
    with pytest.raises(botocore.exceptions.ClientError) as e:
        kms.encrypt(KeyId=arn, Plaintext=b"x")
    assert error_code(e.value) == "KMSInvalidStateException"
    assert e.value.response["Error"]["Message"] == f"{arn} is pending deletion."
    assert kms.cancel_key_deletion(KeyId=arn)["KeyId"] == arn
    assert kms.describe_key(KeyId=arn)["KeyMetadata"]["KeyState"] == "Disabled"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        kms.cancel_key_deletion(KeyId=arn)
    assert error_code(e.value) == "KMSInvalidStateException"


def test_disabled_key_refuses_crypto_but_not_metadata(kms):
    arn = new_key(kms)
    blob = kms.encrypt(KeyId=arn, Plaintext=b"x")["CiphertextBlob"]
    kms.disable_key(KeyId=arn)
    for call in (lambda: kms.encrypt(KeyId=arn, Plaintext=b"x"), lambda: kms.decrypt(CiphertextBlob=blob),
                 lambda: kms.generate_data_key(KeyId=arn, KeySpec="AES_256")):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call()
        assert error_code(e.value) == "DisabledException"
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert kms.describe_key(KeyId=arn)["KeyMetadata"]["Enabled"] is False
    kms.enable_key(KeyId=arn)
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"


def test_list_keys_and_aliases_paginate(kms):
    arns = {new_key(kms) for _ in range(3)}
    seen = set()
    for page in kms.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 2}):
        seen.update(k["KeyArn"] for k in page["Keys"])
    assert arns <= seen
    aliases = [unique_alias() for _ in range(3)]
    for a, arn in zip(aliases, sorted(arns)):
        kms.create_alias(AliasName=a, TargetKeyId=arn)
    names = []
    for page in kms.get_paginator("list_aliases").paginate(PaginationConfig={"PageSize": 2}):
        names.extend(a["AliasName"] for a in page["Aliases"])
    assert set(aliases) <= set(names)
    assert len(names) == len(set(names))
    with pytest.raises(botocore.exceptions.ClientError) as e:
        kms.list_keys(Marker="not-a-marker")
    assert error_code(e.value) == "InvalidMarkerException"


# --- encryption -----------------------------------------------------------------------------

def test_encrypt_decrypt_via_alias_reports_key_arn(kms):
    arn = new_key(kms)
    alias = unique_alias()
    kms.create_alias(AliasName=alias, TargetKeyId=arn)
    out = kms.encrypt(KeyId=alias, Plaintext=b"hunter2", EncryptionContext={"app": "ci", "env": "prod"})
    assert out["KeyId"] == arn and out["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    # Context order does not matter; KeyId is optional and may be the alias ARN.
    dec = kms.decrypt(CiphertextBlob=out["CiphertextBlob"], EncryptionContext={"env": "prod", "app": "ci"},
                      KeyId=f"{arn.rsplit(':', 1)[0]}:{alias}")
    assert dec["Plaintext"] == b"hunter2" and dec["KeyId"] == arn
    assert re.fullmatch(r"[0-9a-f]{64}", dec["KeyMaterialId"])


def test_wrong_context_or_flipped_bit_is_invalid_ciphertext_without_message(server, kms):
    arn = new_key(kms)
    blob = kms.encrypt(KeyId=arn, Plaintext=b"payload", EncryptionContext={"k": "v"})["CiphertextBlob"]
    candidates = [(blob, {"k": "V"}), (blob, {}), (blob, {"k": "v", "x": "y"})]
    for i in (0, 10, 40, len(blob) // 2, len(blob) - 1):
        tampered = bytearray(blob)
        tampered[i] ^= 0x01
        candidates.append((bytes(tampered), {"k": "v"}))
    for b, ctx in candidates:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            kms.decrypt(CiphertextBlob=b, EncryptionContext=ctx)
        assert error_code(e.value) == "InvalidCiphertextException", (ctx, e.value)
    akid, secret = server.admin_keys()
    status, _, body = json_call(server, "TrentService.Decrypt",
                                {"CiphertextBlob": base64.b64encode(blob).decode(), "EncryptionContext": {"k": "x"}},
                                akid, secret, "kms")
    assert status == 400
    assert json.loads(body) == {"__type": "InvalidCiphertextException"}


def test_incorrect_key_and_validation_errors(kms):
    a, b = new_key(kms), new_key(kms)
    blob = kms.encrypt(KeyId=a, Plaintext=b"x")["CiphertextBlob"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        kms.decrypt(CiphertextBlob=blob, KeyId=b)
    assert error_code(e.value) == "IncorrectKeyException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        kms.encrypt(KeyId=a, Plaintext=b"x" * 4097)
    assert error_code(e.value) == "ValidationException"
    assert "Member must have length less than or equal to 4096" in e.value.response["Error"]["Message"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        kms.generate_data_key(KeyId=a)
    assert error_code(e.value) == "ValidationException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        kms.schedule_key_deletion(KeyId=a, PendingWindowInDays=31)
    assert error_code(e.value) == "ValidationException"


def test_not_found_messages_use_lowercase_message_key(server):
    akid, secret = server.admin_keys()
    status, _, body = json_call(server, "TrentService.DescribeKey", {"KeyId": "alias/does-not-exist"}, akid, secret, "kms")
    assert status == 400
    doc = json.loads(body)
    assert doc["__type"] == "NotFoundException"
    assert re.fullmatch(r"Alias arn:aws:kms:us-east-1:\d{12}:alias/does-not-exist is not found\.", doc["message"])
    status, _, body = json_call(server, "TrentService.CreateGrant", {"KeyId": "x"}, akid, secret, "kms")
    assert status == 400 and json.loads(body)["__type"] == "UnknownOperationException"


def test_data_keys_and_reencrypt(kms):
    a, b = new_key(kms), new_key(kms)
    dk = kms.generate_data_key(KeyId=a, KeySpec="AES_256", EncryptionContext={"p": "1"})
    assert len(dk["Plaintext"]) == 32 and dk["KeyId"] == a
    bare = kms.generate_data_key_without_plaintext(KeyId=a, NumberOfBytes=16)
    assert "Plaintext" not in bare
    re_enc = kms.re_encrypt(CiphertextBlob=dk["CiphertextBlob"], SourceEncryptionContext={"p": "1"},
                            DestinationKeyId=b, DestinationEncryptionContext={"p": "2"})
    assert re_enc["SourceKeyId"] == a and re_enc["KeyId"] == b
    assert kms.decrypt(CiphertextBlob=re_enc["CiphertextBlob"], EncryptionContext={"p": "2"})["Plaintext"] == dk["Plaintext"]
    assert len(kms.generate_random(NumberOfBytes=24)["Plaintext"]) == 24


def test_rotation_keeps_old_ciphertexts_readable(kms):
    arn = new_key(kms)
    old = kms.encrypt(KeyId=arn, Plaintext=b"v1")["CiphertextBlob"]
    before = kms.describe_key(KeyId=arn)["KeyMetadata"]["CurrentKeyMaterialId"]
    kms.rotate_key_on_demand(KeyId=arn)
    after = kms.describe_key(KeyId=arn)["KeyMetadata"]["CurrentKeyMaterialId"]
    assert before != after
    assert kms.decrypt(CiphertextBlob=old)["Plaintext"] == b"v1"
    new = kms.decrypt(CiphertextBlob=kms.encrypt(KeyId=arn, Plaintext=b"v2")["CiphertextBlob"])
    assert new["KeyMaterialId"] == after
    kms.enable_key_rotation(KeyId=arn, RotationPeriodInDays=180)
    status = kms.get_key_rotation_status(KeyId=arn)
    assert status["KeyRotationEnabled"] is True and status["RotationPeriodInDays"] == 180
    assert "NextRotationDate" in status
    kms.disable_key_rotation(KeyId=arn)
    assert kms.get_key_rotation_status(KeyId=arn)["KeyRotationEnabled"] is False


def test_aws_cli_encrypts_and_decrypts(server, kms, tmp_path):
    arn = new_key(kms)
    akid, secret = server.admin_keys()
    env = {"AWS_ACCESS_KEY_ID": akid, "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": server.endpoint}
    plain = tmp_path / "plain.txt"
    plain.write_bytes(b"from the aws cli")
    r = aws_cli("kms", "encrypt", "--key-id", arn, "--plaintext", f"fileb://{plain}",
                "--encryption-context", "tool=cli", "--query", "CiphertextBlob", "--output", "text", env=env)
    assert r.returncode == 0, r.stderr
    blob = tmp_path / "blob.bin"
    blob.write_bytes(base64.b64decode(r.stdout.strip()))
    r = aws_cli("kms", "decrypt", "--ciphertext-blob", f"fileb://{blob}", "--encryption-context", "tool=cli",
                "--query", "Plaintext", "--output", "text", env=env)
    assert r.returncode == 0, r.stderr
    assert base64.b64decode(r.stdout.strip()) == b"from the aws cli"
    # boto3 reads the CLI's ciphertext too.
    assert kms.decrypt(CiphertextBlob=blob.read_bytes(), EncryptionContext={"tool": "cli"})["Plaintext"] == b"from the aws cli"



def test_ciphertexts_cross_between_boto3_and_the_aws_cli(server, kms, tmp_path):
    """A ciphertext made by one client decrypts with the other, without naming the key, and both
    report the key's ARN: the blob is self-describing and client-neutral."""
    arn = new_key(kms)
    akid, secret = server.admin_keys()
    env = {"AWS_ACCESS_KEY_ID": akid, "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": server.endpoint}
    # boto3 encrypts, the AWS CLI decrypts.
    blob = tmp_path / "from-boto3.bin"
    blob.write_bytes(kms.encrypt(KeyId=arn, Plaintext=b"from-boto3", EncryptionContext={"via": "boto3"})["CiphertextBlob"])
    r = aws_cli("kms", "decrypt", "--ciphertext-blob", f"fileb://{blob}", "--encryption-context", "via=boto3",
                "--output", "json", env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["KeyId"] == arn
    assert base64.b64decode(out["Plaintext"]) == b"from-boto3"
    # The AWS CLI encrypts, boto3 decrypts.
    plain = tmp_path / "plain.txt"
    plain.write_bytes(b"from-cli")
    r = aws_cli("kms", "encrypt", "--key-id", arn, "--plaintext", f"fileb://{plain}",
                "--encryption-context", "via=cli", "--query", "CiphertextBlob", "--output", "text", env=env)
    assert r.returncode == 0, r.stderr
    out = kms.decrypt(CiphertextBlob=base64.b64decode(r.stdout.strip()), EncryptionContext={"via": "cli"})
    assert out["KeyId"] == arn
    assert out["Plaintext"] == b"from-cli"


# --- aliases, policies, managed keys ---------------------------------------------------------

def test_alias_rules(kms):
    arn = new_key(kms)
    for name, code in (("alias/aws/mine", "NotAuthorizedException"), ("no-prefix", "ValidationException")):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            kms.create_alias(AliasName=name, TargetKeyId=arn)
        assert error_code(e.value) == code, name
    alias = unique_alias()
    kms.create_alias(AliasName=alias, TargetKeyId=arn)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        kms.create_alias(AliasName=alias, TargetKeyId=arn)
    assert error_code(e.value) == "AlreadyExistsException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        kms.enable_key(KeyId=alias)  # management operations take no alias
    assert error_code(e.value) == "NotFoundException"
    other = new_key(kms)
    kms.update_alias(AliasName=alias, TargetKeyId=other)
    assert kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"] == other
    listed = kms.list_aliases(KeyId=other)["Aliases"]
    assert [a["AliasName"] for a in listed] == [alias]
    kms.delete_alias(AliasName=alias)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        kms.describe_key(KeyId=alias)
    assert error_code(e.value) == "NotFoundException"


def test_policy_lockout_check_and_bypass(kms):
    arn = new_key(kms)
    foreign = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "kms:*", "Resource": "*"}]})
    with pytest.raises(botocore.exceptions.ClientError) as e:
        kms.put_key_policy(KeyId=arn, PolicyName="default", Policy=foreign)
    assert error_code(e.value) == "MalformedPolicyDocumentException"
    assert e.value.response["Error"]["Message"] == "The new key policy will not allow you to update the key policy in the future."
    with pytest.raises(botocore.exceptions.ClientError) as e:
        kms.put_key_policy(KeyId=arn, PolicyName="default", Policy="{]")
    assert error_code(e.value) == "MalformedPolicyDocumentException"
    assert kms.list_key_policies(KeyId=arn)["PolicyNames"] == ["default"]
    kms.put_key_policy(KeyId=arn, PolicyName="default", Policy=foreign, BypassPolicyLockoutSafetyCheck=True)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        kms.describe_key(KeyId=arn)
    assert error_code(e.value) == "AccessDeniedException"


def test_policy_naming_a_user_that_does_not_exist_is_malformed(server, kms):
    account = server.admin("sts").get_caller_identity()["Account"]
    ghost = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:user/ghost-{uuid.uuid4().hex[:6]}"},
         "Action": "kms:*", "Resource": "*"}]})
    with pytest.raises(botocore.exceptions.ClientError) as e:
        kms.create_key(Policy=ghost, BypassPolicyLockoutSafetyCheck=True)
    assert error_code(e.value) == "MalformedPolicyDocumentException"
    assert e.value.response["Error"]["Message"] == "Policy contains a statement with one or more invalid principals."


def _user(server, name: str, policy: dict):
    _, akid, secret = new_user_with_key(server.admin("iam"), name, json.dumps(policy), policy_name="kms")
    return server.client("kms", akid, secret)


def test_iam_allow_without_key_policy_delegation_is_denied(server, kms):
    admin_arn = server.admin("sts").get_caller_identity()["Arn"]
    user = _user(server, "kms-" + uuid.uuid4().hex[:8],
                 {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]})
    closed = kms.create_key(Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": admin_arn}, "Action": "kms:*", "Resource": "*"}]}))["KeyMetadata"]["Arn"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        user.encrypt(KeyId=closed, Plaintext=b"x")
    assert error_code(e.value) == "AccessDeniedException"
    assert "because no resource-based policy allows the kms:Encrypt action" in e.value.response["Error"]["Message"]
    open_key = new_key(kms)
    blob = user.encrypt(KeyId=open_key, Plaintext=b"x")["CiphertextBlob"]
    assert user.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"


def test_alias_arn_in_identity_policy_never_authorizes_decrypt(server, kms):
    arn = new_key(kms)
    alias = unique_alias()
    kms.create_alias(AliasName=alias, TargetKeyId=arn)
    blob = kms.encrypt(KeyId=alias, Plaintext=b"x")["CiphertextBlob"]
    account = arn.split(":")[4]
    user = _user(server, "alias-" + uuid.uuid4().hex[:8], {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": f"arn:aws:kms:us-east-1:{account}:{alias}"}]})
    for kw in ({}, {"KeyId": alias}):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            user.decrypt(CiphertextBlob=blob, **kw)
        assert error_code(e.value) == "AccessDeniedException"


def test_request_alias_condition_authorizes_by_alias(server, kms):
    arn = new_key(kms)
    alias = unique_alias()
    kms.create_alias(AliasName=alias, TargetKeyId=arn)
    user = _user(server, "ra-" + uuid.uuid4().hex[:8], {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "arn:aws:kms:*:*:key/*",
         "Condition": {"StringEquals": {"kms:RequestAlias": alias}}}]})
    assert user.encrypt(KeyId=alias, Plaintext=b"x")["KeyId"] == arn
    with pytest.raises(botocore.exceptions.ClientError) as e:
        user.encrypt(KeyId=arn, Plaintext=b"x")
    assert error_code(e.value) == "AccessDeniedException"


def test_managed_keys_are_listed_and_refuse_direct_use(kms):
    names = {a["AliasName"]: a for a in kms.list_aliases(Limit=100)["Aliases"]}
    assert "alias/aws/secretsmanager" in names and "alias/aws/ssm" in names
    meta = kms.describe_key(KeyId="alias/aws/ssm")["KeyMetadata"]
    assert meta["KeyManager"] == "AWS"
    assert meta["Description"] == "Default key that protects my SSM parameters when no other key is defined"
    names = {a["AliasName"]: a for a in kms.list_aliases(Limit=100)["Aliases"]}
    assert names["alias/aws/ssm"]["TargetKeyId"] == meta["KeyId"]
    for call in (lambda: kms.encrypt(KeyId="alias/aws/ssm", Plaintext=b"x"),
                 lambda: kms.disable_key(KeyId=meta["KeyId"]),
                 lambda: kms.schedule_key_deletion(KeyId=meta["KeyId"]),
                 lambda: kms.put_key_policy(KeyId=meta["KeyId"], PolicyName="default", Policy="{}")):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call()
        assert error_code(e.value) == "AccessDeniedException"
    policy = json.loads(kms.get_key_policy(KeyId=meta["KeyId"], PolicyName="default")["Policy"])
    cond = policy["Statement"][0]["Condition"]["StringEquals"]
    assert cond["kms:ViaService"] == "ssm.us-east-1.amazonaws.com"
    assert cond["kms:CallerAccount"] == meta["AWSAccountId"]


# --- at rest ---------------------------------------------------------------------------------

def read_if_there(path):
    """A file's bytes; none for an audit segment indexed into audit.db since the listing."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        assert path.name.startswith("audit.db-seg."), str(path)
        return b""


def test_no_plaintext_in_the_data_directory(server, kms):
    arn = new_key(kms)
    marker = b"compat-kms-plaintext-" + uuid.uuid4().hex.encode()
    kms.encrypt(KeyId=arn, Plaintext=marker)
    data_key = kms.generate_data_key(KeyId=arn, NumberOfBytes=48)["Plaintext"]
    blobs = b"".join(read_if_there(p) for p in Path(server.data_dir).rglob("*") if p.is_file())
    assert blobs
    assert marker not in blobs
    assert data_key not in blobs
    assert base64.b64encode(data_key) not in blobs
