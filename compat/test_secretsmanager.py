"""Secrets Manager with real clients against a real `tresor serve`: boto3, the AWS
CLI and the PyPI `aws-secretsmanager-caching` client; non-admin principals come from IAM roles
assumed through STS, as the Buildkite Elastic CI Stack's instance and scaler roles would."""

import base64
import json
import os
import re
import time
import uuid

import botocore.exceptions
import botocore.session
import pytest

from conftest import REGION, aws_cli, make_role, start_server


def code(exc: botocore.exceptions.ClientError) -> str:
    return exc.response["Error"]["Code"]


def msg(exc: botocore.exceptions.ClientError) -> str:
    return exc.response["Error"].get("Message", "")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --- create, read, describe ------------------------------------------------------------------

def test_create_and_get_secret_by_name_full_and_partial_arn(sm, account):
    name = unique("ci/buildkite/agent-token")
    out = sm.create_secret(Name=name, SecretString="tok-123", Description="agent token")
    assert re.fullmatch(rf"arn:aws:secretsmanager:{REGION}:{account}:secret:{re.escape(name)}-[A-Za-z0-9]{{6}}", out["ARN"])
    assert out["Name"] == name and len(out["VersionId"]) == 36
    partial = out["ARN"][:-7]
    for sid in (name, out["ARN"], partial):
        v = sm.get_secret_value(SecretId=sid)
        assert v["SecretString"] == "tok-123"
        assert v["ARN"] == out["ARN"] and v["VersionId"] == out["VersionId"]
        assert v["VersionStages"] == ["AWSCURRENT"]
        assert "SecretBinary" not in v
    d = sm.describe_secret(SecretId=out["ARN"])
    assert d["VersionIdsToStages"] == {out["VersionId"]: ["AWSCURRENT"]}
    # The default key aws/secretsmanager is not shown (DescribeSecret KmsKeyId).
    assert "KmsKeyId" not in d
    assert d["Description"] == "agent token"
    assert "DeletedDate" not in d and "RotationEnabled" not in d
    # LastAccessedDate has day resolution: midnight UTC.
    assert d["LastAccessedDate"].timestamp() % 86400 == 0


def test_missing_secret_and_bad_selectors(sm):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.get_secret_value(SecretId=unique("nope"))
    assert code(e.value) == "ResourceNotFoundException"
    assert msg(e.value) == "Secrets Manager can't find the specified secret."
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    name = unique("sel")
    a = sm.create_secret(Name=name, SecretString="a")
    b = sm.put_secret_value(SecretId=name, SecretString="b")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.get_secret_value(SecretId=name, VersionId=a["VersionId"], VersionStage="AWSCURRENT")
    assert code(e.value) == "InvalidRequestException"
    assert sm.get_secret_value(SecretId=name, VersionId=a["VersionId"], VersionStage="AWSPREVIOUS")["SecretString"] == "a"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.get_secret_value(SecretId=name, VersionStage="NOSUCHLABEL")
    assert code(e.value) == "ResourceNotFoundException"
    assert "staging label: NOSUCHLABEL" in msg(e.value)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.get_secret_value(SecretId=name, VersionId=str(uuid.uuid4()))
    assert code(e.value) == "ResourceNotFoundException"
    assert sm.get_secret_value(SecretId=name, VersionId=b["VersionId"])["SecretString"] == "b"


def test_secret_without_value_has_no_awscurrent(sm):
    name = unique("empty")
    out = sm.create_secret(Name=name)
    assert "VersionId" not in out
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.get_secret_value(SecretId=name)
    assert code(e.value) == "ResourceNotFoundException"
    assert "VersionIdsToStages" not in sm.describe_secret(SecretId=name)
    # The first value becomes AWSCURRENT even when another label is asked for.
    p = sm.put_secret_value(SecretId=name, SecretString="x", VersionStages=["AWSPENDING"])
    assert sorted(p["VersionStages"]) == ["AWSCURRENT", "AWSPENDING"]


def test_binary_secret_round_trips(sm):
    name = unique("bin")
    data = bytes(range(256))
    sm.create_secret(Name=name, SecretBinary=data)
    v = sm.get_secret_value(SecretId=name)
    assert v["SecretBinary"] == data and "SecretString" not in v


def test_value_constraints(sm):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.create_secret(Name=unique("big"), SecretString="x" * 65537)
    assert code(e.value) == "ValidationException"
    assert "x" * 100 not in msg(e.value)
    sm.create_secret(Name=unique("max"), SecretString="y" * 65536)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.create_secret(Name=unique("both"), SecretString="a", SecretBinary=b"b")
    assert code(e.value) == "InvalidParameterException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.create_secret(Name="bad name!")
    assert code(e.value) == "ValidationException"


def test_name_is_case_sensitive_and_unique(sm):
    name = unique("Case")
    sm.create_secret(Name=name, SecretString="1")
    sm.create_secret(Name=name.lower(), SecretString="2")
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "1"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.create_secret(Name=name, SecretString="3")
    assert code(e.value) == "ResourceExistsException"


# --- versions, labels, idempotency -----------------------------------------------------------

def test_put_moves_awscurrent_and_awsprevious_follows(sm):
    name = unique("rot")
    v1 = sm.create_secret(Name=name, SecretString="one")["VersionId"]
    v2 = sm.put_secret_value(SecretId=name, SecretString="two")["VersionId"]
    v3 = sm.put_secret_value(SecretId=name, SecretString="three")["VersionId"]
    stages = sm.describe_secret(SecretId=name)["VersionIdsToStages"]
    assert stages == {v3: ["AWSCURRENT"], v2: ["AWSPREVIOUS"]}
    # v1 is deprecated: hidden unless IncludeDeprecated.
    ids = {v["VersionId"] for v in sm.list_secret_version_ids(SecretId=name)["Versions"]}
    assert ids == {v2, v3}
    all_ids = {v["VersionId"] for v in sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]}
    assert all_ids == {v1, v2, v3}
    assert sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["SecretString"] == "two"


def test_hand_rotation_with_awspending_and_update_secret_version_stage(sm):
    name = unique("hand")
    cur = sm.create_secret(Name=name, SecretString="old-token")["VersionId"]
    token = str(uuid.uuid4())
    p = sm.put_secret_value(SecretId=name, ClientRequestToken=token, SecretString="new-token", VersionStages=["AWSPENDING"])
    assert p["VersionStages"] == ["AWSPENDING"]
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "old-token"
    assert sm.get_secret_value(SecretId=name, VersionId=token, VersionStage="AWSPENDING")["SecretString"] == "new-token"
    # The label sits elsewhere: RemoveFromVersionId is required.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.update_secret_version_stage(SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=token)
    assert code(e.value) == "InvalidParameterException"
    assert "RemoveFromVersionId" in msg(e.value) and cur in msg(e.value)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.update_secret_version_stage(SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=token)
    assert code(e.value) == "InvalidParameterException"
    sm.update_secret_version_stage(SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=cur)
    stages = sm.describe_secret(SecretId=name)["VersionIdsToStages"]
    assert sorted(stages[token]) == ["AWSCURRENT", "AWSPENDING"]
    assert stages[cur] == ["AWSPREVIOUS"]
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "new-token"
    # Clean up AWSPENDING, then roll back by moving AWSCURRENT to the previous version.
    sm.update_secret_version_stage(SecretId=name, VersionStage="AWSPENDING", RemoveFromVersionId=token)
    sm.update_secret_version_stage(SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=cur, RemoveFromVersionId=token)
    stages = sm.describe_secret(SecretId=name)["VersionIdsToStages"]
    assert stages == {cur: ["AWSCURRENT"], token: ["AWSPREVIOUS"]}
    # Custom labels move like any other.
    sm.update_secret_version_stage(SecretId=name, VersionStage="blue", MoveToVersionId=token)
    assert sm.get_secret_value(SecretId=name, VersionStage="blue")["SecretString"] == "new-token"


def test_client_request_token_replay(sm):
    name = unique("idem")
    token = str(uuid.uuid4())
    first = sm.create_secret(Name=name, SecretString="v", ClientRequestToken=token)
    again = sm.create_secret(Name=name, SecretString="v", ClientRequestToken=token)
    assert again["ARN"] == first["ARN"] and again["VersionId"] == token
    t2 = str(uuid.uuid4())
    sm.put_secret_value(SecretId=name, SecretString="w", ClientRequestToken=t2)
    before = sm.describe_secret(SecretId=name)["VersionIdsToStages"]
    sm.put_secret_value(SecretId=name, SecretString="w", ClientRequestToken=t2)
    assert sm.describe_secret(SecretId=name)["VersionIdsToStages"] == before
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.put_secret_value(SecretId=name, SecretString="different", ClientRequestToken=t2)
    assert code(e.value) == "ResourceExistsException"
    assert t2 in msg(e.value)
    assert "different" not in msg(e.value)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.create_secret(Name=name, SecretString="other", ClientRequestToken=str(uuid.uuid4()))
    assert code(e.value) == "ResourceExistsException"


def test_update_secret_changes_value_and_metadata(sm):
    name = unique("upd")
    v1 = sm.create_secret(Name=name, SecretString="a")["VersionId"]
    meta_only = sm.update_secret(SecretId=name, Description="new description")
    assert "VersionId" not in meta_only
    out = sm.update_secret(SecretId=name, SecretString="b")
    stages = sm.describe_secret(SecretId=name)["VersionIdsToStages"]
    assert stages == {out["VersionId"]: ["AWSCURRENT"], v1: ["AWSPREVIOUS"]}
    assert sm.describe_secret(SecretId=name)["Description"] == "new description"


def test_tags_and_list_filters_sort_and_pagination(sm):
    tag = uuid.uuid4().hex[:10]
    names = [unique(f"list-{tag}/{i}") for i in range(5)]
    for i, n in enumerate(names):
        sm.create_secret(Name=n, SecretString="x", Description=f"Fleet {tag} number {i}", Tags=[{"Key": "fleet", "Value": tag}, {"Key": f"k{i}", "Value": "v"}])
    got = []
    kwargs = {"Filters": [{"Key": "name", "Values": [f"list-{tag}"]}], "MaxResults": 2}
    while True:
        page = sm.list_secrets(**kwargs)
        got += [s["Name"] for s in page["SecretList"]]
        assert len(page["SecretList"]) <= 2
        if "NextToken" not in page:
            break
        kwargs["NextToken"] = page["NextToken"]
    assert got == names  # created-date ascending
    entry = sm.list_secrets(Filters=[{"Key": "name", "Values": [names[0]]}])["SecretList"][0]
    assert "SecretVersionsToStages" in entry and "VersionIdsToStages" not in entry
    desc = [s["Name"] for s in sm.list_secrets(Filters=[{"Key": "tag-value", "Values": [tag]}], SortOrder="desc")["SecretList"]]
    assert desc == list(reversed(names))
    assert len(sm.list_secrets(Filters=[{"Key": "description", "Values": [f"fleet {tag}".upper()]}])["SecretList"]) == 5
    assert [s["Name"] for s in sm.list_secrets(Filters=[{"Key": "tag-key", "Values": ["k3"]}, {"Key": "tag-value", "Values": [tag]}])["SecretList"]] == [names[3]]
    neg = sm.list_secrets(Filters=[{"Key": "tag-value", "Values": [tag]}, {"Key": "tag-key", "Values": ["!k1"]}])["SecretList"]
    assert names[1] not in [s["Name"] for s in neg] and len(neg) == 4
    assert len(sm.list_secrets(Filters=[{"Key": "all", "Values": [f"{tag} number"]}])["SecretList"]) == 5
    by_name = [s["Name"] for s in sm.list_secrets(Filters=[{"Key": "tag-value", "Values": [tag]}], SortBy="name")["SecretList"]]
    assert by_name == sorted(names)
    # Tag/untag.
    sm.tag_resource(SecretId=names[0], Tags=[{"Key": "fleet", "Value": "changed"}, {"Key": "new", "Value": "1"}])
    sm.untag_resource(SecretId=names[0], TagKeys=["k0", "absent"])
    tags = {t["Key"]: t["Value"] for t in sm.describe_secret(SecretId=names[0])["Tags"]}
    assert tags == {"fleet": "changed", "new": "1"}
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.list_secrets(NextToken="garbage!")
    assert code(e.value) == "InvalidNextTokenException"


def test_batch_get_secret_value_reports_per_secret_errors(sm):
    a, b = unique("batch-a"), unique("batch-b")
    sm.create_secret(Name=a, SecretString="A")
    sm.create_secret(Name=b, SecretString="B")
    missing = unique("batch-missing")
    out = sm.batch_get_secret_value(SecretIdList=[a, b, missing])
    assert sorted(v["SecretString"] for v in out["SecretValues"]) == ["A", "B"]
    assert [(e["SecretId"], e["ErrorCode"]) for e in out["Errors"]] == [(missing, "ResourceNotFoundException")]
    out = sm.batch_get_secret_value(Filters=[{"Key": "name", "Values": [a]}])
    assert [v["Name"] for v in out["SecretValues"]] == [a]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.batch_get_secret_value(SecretIdList=[a], Filters=[{"Key": "name", "Values": [a]}])
    assert code(e.value) == "InvalidParameterException"


def test_get_random_password_options(sm):
    p = sm.get_random_password()["RandomPassword"]
    assert len(p) == 32
    p = sm.get_random_password(PasswordLength=60, ExcludeCharacters="/@\"'\\", ExcludeNumbers=True)["RandomPassword"]
    assert len(p) == 60 and not any(c in p for c in "/@\"'\\0123456789")
    p = sm.get_random_password(PasswordLength=50, ExcludePunctuation=True, ExcludeUppercase=True, IncludeSpace=True)["RandomPassword"]
    assert all(c.islower() or c.isdigit() or c == " " for c in p)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.get_random_password(ExcludeLowercase=True, ExcludeUppercase=True, ExcludeNumbers=True, ExcludePunctuation=True)
    assert code(e.value) == "InvalidParameterException"


# --- deletion lifecycle ----------------------------------------------------------------------

def test_delete_restore_and_force_delete(sm):
    name = unique("del")
    arn = sm.create_secret(Name=name, SecretString="s")["ARN"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.delete_secret(SecretId=name, RecoveryWindowInDays=7, ForceDeleteWithoutRecovery=True)
    assert code(e.value) == "InvalidParameterException"
    for days in (6, 31):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            sm.delete_secret(SecretId=name, RecoveryWindowInDays=days)
        assert code(e.value) == "InvalidParameterException"
    out = sm.delete_secret(SecretId=name, RecoveryWindowInDays=7)
    assert out["ARN"] == arn
    assert 6.9 * 86400 < (out["DeletionDate"].timestamp() - time.time()) < 7.1 * 86400
    for call in (lambda: sm.get_secret_value(SecretId=name), lambda: sm.put_secret_value(SecretId=name, SecretString="t"),
                 lambda: sm.update_secret(SecretId=name, SecretString="u")):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call()
        assert code(e.value) == "InvalidRequestException"
        assert msg(e.value) == "You can't perform this operation on the secret because it was marked for deletion."
    assert "DeletedDate" in sm.describe_secret(SecretId=name)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.create_secret(Name=name, SecretString="again")
    assert code(e.value) == "InvalidRequestException"
    listed = lambda **kw: [s["Name"] for s in sm.list_secrets(Filters=[{"Key": "name", "Values": [name]}], **kw)["SecretList"]]
    assert listed() == [] and listed(IncludePlannedDeletion=True) == [name]
    sm.restore_secret(SecretId=name)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "s"
    assert "DeletedDate" not in sm.describe_secret(SecretId=name)
    # Force delete: gone at once, the name is free again, with a new ARN suffix.
    sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.describe_secret(SecretId=name)
    assert code(e.value) == "ResourceNotFoundException"
    again = sm.create_secret(Name=name, SecretString="new")["ARN"]
    assert again != arn
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.get_secret_value(SecretId=arn)
    assert code(e.value) == "ResourceNotFoundException"
    # Forced delete of an unknown secret is not an error.
    sm.delete_secret(SecretId=unique("never-existed"), ForceDeleteWithoutRecovery=True)


# --- resource policies, unique-id capture, non-admin principals ----------------------------

def delete_role(iam, name):
    for p in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        iam.delete_role_policy(RoleName=name, PolicyName=p)
    iam.delete_role(RoleName=name)


def session_client(server, role_arn):
    return server.session("secretsmanager", server.assume(role_arn, "ci-session"))


SEED_POLICY = lambda roles: json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"AWS": roles}, "Action": "secretsmanager:GetSecretValue", "Resource": "*"}],
}, indent=2)


def test_seed_resource_policy_grants_instance_and_scaler_roles_only(server, sm, admin_arn, account):
    iam = server.admin("iam")
    suffix = uuid.uuid4().hex[:6]
    lam = make_role(iam, f"buildkite-secretsmanager-AutoscalingLambdaExecutionRole-{suffix}", admin_arn)
    inst = make_role(iam, f"buildkite-secretsmanager-Role-{suffix}", admin_arn)
    other = make_role(iam, f"someone-else-{suffix}", admin_arn)
    name = unique("buildkite/agent-token")
    arn = sm.create_secret(Name=name, SecretString="bk-agent-token")["ARN"]
    sm.put_resource_policy(SecretId=name, ResourcePolicy=SEED_POLICY([lam["Arn"], inst["Arn"]]))
    shown = json.loads(sm.get_resource_policy(SecretId=name)["ResourcePolicy"])
    assert sorted(shown["Statement"][0]["Principal"]["AWS"]) == sorted([lam["Arn"], inst["Arn"]])
    for role in (lam, inst):
        c = session_client(server, role["Arn"])
        assert c.get_secret_value(SecretId=arn)["SecretString"] == "bk-agent-token"
        # The policy grants GetSecretValue only.
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.describe_secret(SecretId=arn)
        assert code(e.value) == "AccessDeniedException"
    c = session_client(server, other["Arn"])
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.get_secret_value(SecretId=arn)
    assert code(e.value) == "AccessDeniedException"
    m = msg(e.value)
    assert f"assumed-role/{other['RoleName']}/ci-session is not authorized to perform: secretsmanager:GetSecretValue on resource: {arn}" in m
    assert "bk-agent-token" not in m
    # A caller without permission learns nothing about missing secrets either.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.get_secret_value(SecretId=unique("missing"))
    assert code(e.value) == "AccessDeniedException"
    for r in (lam, inst, other):
        delete_role(iam, r["RoleName"])


def test_recreated_role_is_denied_until_policy_is_saved_again(server, sm, admin_arn):
    iam = server.admin("iam")
    role_name = unique("buildkite-Role")
    role = make_role(iam, role_name, admin_arn)
    old_id = role["RoleId"]
    name = unique("capture")
    arn = sm.create_secret(Name=name, SecretString="captured")["ARN"]
    policy = SEED_POLICY(role["Arn"])
    sm.put_resource_policy(SecretId=name, ResourcePolicy=policy)
    assert session_client(server, role["Arn"]).get_secret_value(SecretId=arn)["SecretString"] == "captured"
    delete_role(iam, role_name)
    shown = json.loads(sm.get_resource_policy(SecretId=name)["ResourcePolicy"])
    assert shown["Statement"][0]["Principal"]["AWS"] == old_id
    role2 = make_role(iam, role_name, admin_arn)
    assert role2["RoleId"] != old_id and role2["Arn"] == role["Arn"]
    # The policy still names the old id: still shown as the bare id, and the new role is denied.
    shown = json.loads(sm.get_resource_policy(SecretId=name)["ResourcePolicy"])
    assert shown["Statement"][0]["Principal"]["AWS"] == old_id
    c = session_client(server, role2["Arn"])
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.get_secret_value(SecretId=arn)
    assert code(e.value) == "AccessDeniedException"
    sm.put_resource_policy(SecretId=name, ResourcePolicy=policy)
    assert session_client(server, role2["Arn"]).get_secret_value(SecretId=arn)["SecretString"] == "captured"
    shown = json.loads(sm.get_resource_policy(SecretId=name)["ResourcePolicy"])
    assert shown["Statement"][0]["Principal"]["AWS"] == role2["Arn"]
    delete_role(iam, role_name)


def test_policy_errors_block_public_and_validate(sm, account):
    name = unique("pol")
    sm.create_secret(Name=name, SecretString="p")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.put_resource_policy(SecretId=name, ResourcePolicy="{not json")
    assert code(e.value) == "MalformedPolicyDocumentException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.put_resource_policy(SecretId=name, ResourcePolicy=SEED_POLICY(f"arn:aws:iam::{account}:role/does-not-exist-{uuid.uuid4().hex[:6]}"))
    assert code(e.value) == "MalformedPolicyDocumentException"
    public = SEED_POLICY("*")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.put_resource_policy(SecretId=name, ResourcePolicy=public, BlockPublicPolicy=True)
    assert code(e.value) == "PublicPolicyException"
    v = sm.validate_resource_policy(SecretId=name, ResourcePolicy=public)
    assert v["PolicyValidationPassed"] is False and v["ValidationErrors"]
    ok = sm.validate_resource_policy(ResourcePolicy=SEED_POLICY(f"arn:aws:iam::{account}:root"))
    assert ok["PolicyValidationPassed"] is True
    assert "ResourcePolicy" not in sm.get_resource_policy(SecretId=name)
    sm.put_resource_policy(SecretId=name, ResourcePolicy=SEED_POLICY(f"arn:aws:iam::{account}:root"))
    assert "ResourcePolicy" in sm.get_resource_policy(SecretId=name)
    sm.delete_resource_policy(SecretId=name)
    assert "ResourcePolicy" not in sm.get_resource_policy(SecretId=name)


def test_identity_policy_conditions_on_tags_and_version_stage(server, sm, admin_arn, account):
    iam = server.admin("iam")
    name = unique("abac")
    arn = sm.create_secret(Name=name, SecretString="abac", Tags=[{"Key": "team", "Value": "ci"}])["ARN"]
    sm.put_secret_value(SecretId=name, SecretString="pending", VersionStages=["AWSPENDING"])
    other = sm.create_secret(Name=unique("abac-other"), SecretString="no", Tags=[{"Key": "team", "Value": "web"}])["ARN"]
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*",
        "Condition": {"StringEquals": {"secretsmanager:ResourceTag/team": "ci"}}}, {
        "Effect": "Deny", "Action": "secretsmanager:GetSecretValue", "Resource": "*",
        "Condition": {"StringEquals": {"secretsmanager:VersionStage": "AWSPENDING"}}}]}
    role = make_role(iam, unique("abac-role"), admin_arn, inline=policy)
    c = session_client(server, role["Arn"])
    assert c.get_secret_value(SecretId=arn)["SecretString"] == "abac"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.get_secret_value(SecretId=arn, VersionStage="AWSPENDING")
    assert code(e.value) == "AccessDeniedException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.get_secret_value(SecretId=other)
    assert code(e.value) == "AccessDeniedException"
    delete_role(iam, role["RoleName"])


# --- other clients ---------------------------------------------------------------------------

def cli_env(server):
    akid, secret = server.admin_keys()
    return {"AWS_ACCESS_KEY_ID": akid, "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": REGION}


def test_aws_cli_create_get_and_error(server):
    name = unique("cli")
    env = cli_env(server)
    r = aws_cli("--endpoint-url", server.endpoint, "secretsmanager", "create-secret", "--name", name, "--secret-string", "cli-value", env=env)
    assert r.returncode == 0, r.stderr
    r = aws_cli("--endpoint-url", server.endpoint, "secretsmanager", "get-secret-value", "--secret-id", name,
                "--query", "SecretString", "--output", "text", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "cli-value"
    r = aws_cli("--endpoint-url", server.endpoint, "secretsmanager", "get-secret-value", "--secret-id", unique("nope"), env=env)
    assert r.returncode != 0
    assert "ResourceNotFoundException" in r.stderr


def test_caching_client_picks_up_new_awscurrent(server, sm):
    from aws_secretsmanager_caching import SecretCache, SecretCacheConfig

    name = unique("cached")
    sm.create_secret(Name=name, SecretString="first")
    akid, secret = server.admin_keys()
    client = botocore.session.get_session().create_client(
        "secretsmanager", endpoint_url=server.endpoint, region_name=REGION,
        aws_access_key_id=akid, aws_secret_access_key=secret)
    cache = SecretCache(config=SecretCacheConfig(secret_refresh_interval=1), client=client)
    assert cache.get_secret_string(name) == "first"
    sm.put_secret_value(SecretId=name, SecretString="second")
    deadline = time.time() + 10
    while cache.get_secret_string(name) != "second":
        assert time.time() < deadline, "cache never picked up the new AWSCURRENT"
        time.sleep(0.3)


def test_no_secret_value_on_disk(tmp_data_dir):
    s = start_server(data_dir=tmp_data_dir)
    try:
        sm = s.admin("secretsmanager")
        marker = "plaintext-marker-" + uuid.uuid4().hex
        name = unique("disk")
        sm.create_secret(Name=name, SecretString=marker)
        sm.put_secret_value(SecretId=name, SecretBinary=(marker + "-bin").encode())
        assert sm.get_secret_value(SecretId=name)["SecretBinary"] == (marker + "-bin").encode()
        sm.get_random_password()
    finally:
        s.stop()
    needle = marker.encode()
    b64 = base64.b64encode(marker.encode())[:24]
    for root, _, files in os.walk(tmp_data_dir):
        for f in files:
            data = open(os.path.join(root, f), "rb").read()
            assert needle not in data, f
            assert b64 not in data, f


# --- customer managed KMS keys ---------------------------------------------------------------

def test_customer_key_encryption_disable_and_key_change(server, sm, admin_arn):
    kms = server.admin("kms")
    key = kms.create_key(Description="ci token key")["KeyMetadata"]
    key2 = kms.create_key(Description="second key")["KeyMetadata"]
    name = unique("cmk")
    sm.create_secret(Name=name, SecretString="under-cmk", KmsKeyId=key["KeyId"])
    d = sm.describe_secret(SecretId=name)
    assert d["KmsKeyId"] == key["KeyId"]
    versions = sm.list_secret_version_ids(SecretId=name)["Versions"]
    assert versions[0]["KmsKeyIds"] == [key["Arn"]]
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "under-cmk"

    # A role the secret policy allows, but with no kms:Decrypt on the customer key.
    iam = server.admin("iam")
    role = make_role(iam, unique("no-kms"), admin_arn)
    sm.put_resource_policy(SecretId=name, ResourcePolicy=SEED_POLICY(role["Arn"]))
    c = session_client(server, role["Arn"])
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.get_secret_value(SecretId=name)
    assert code(e.value) == "AccessDeniedException"
    assert msg(e.value) == "Access to KMS is not allowed"
    delete_role(iam, role["RoleName"])

    # A disabled key makes the value unreadable and new values unwritable.
    kms.disable_key(KeyId=key["KeyId"])
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.get_secret_value(SecretId=name)
    assert code(e.value) == "DecryptionFailure"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.put_secret_value(SecretId=name, SecretString="nope")
    assert code(e.value) == "EncryptionFailure"
    kms.enable_key(KeyId=key["KeyId"])
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "under-cmk"

    # Changing the key re-encrypts the labelled versions under the new key.
    sm.put_secret_value(SecretId=name, SecretString="second")
    sm.update_secret(SecretId=name, KmsKeyId=key2["Arn"])
    assert sm.describe_secret(SecretId=name)["KmsKeyId"] == key2["Arn"]
    for v in sm.list_secret_version_ids(SecretId=name)["Versions"]:
        assert v["KmsKeyIds"] == [key2["Arn"]]
    kms.disable_key(KeyId=key["KeyId"])
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "second"
    assert sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["SecretString"] == "under-cmk"
    # An empty KmsKeyId goes back to aws/secretsmanager, which DescribeSecret does not show.
    sm.update_secret(SecretId=name, KmsKeyId="")
    assert "KmsKeyId" not in sm.describe_secret(SecretId=name)
    assert sm.list_secret_version_ids(SecretId=name)["Versions"][0]["KmsKeyIds"] == ["DefaultEncryptionKey"]
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "second"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sm.create_secret(Name=unique("badkey"), SecretString="x", KmsKeyId="alias/does-not-exist")
    assert code(e.value) in ("EncryptionFailure", "ResourceNotFoundException")
