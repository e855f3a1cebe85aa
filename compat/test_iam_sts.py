"""IAM and STS, exercised with boto3, the AWS CLI and botocore-signed requests
against a real `tresor serve`: entity lifecycles, AWS's error codes and limits, URL-encoded
policy documents, pagination, AssumeRole with trust policies, temporary credentials."""

import json
import re
import uuid
import xml.etree.ElementTree as ET

import botocore.exceptions
import pytest

from conftest import aws_cli, new_user_with_key, trust_for, uniq
from sign import query_call

ALLOW_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def error_of(exc: botocore.exceptions.ClientError) -> tuple[str, str, int]:
    e = exc.response["Error"]
    return e["Code"], e.get("Message", ""), exc.response["ResponseMetadata"]["HTTPStatusCode"]


def expect_error(code: str, fn, *args, **kwargs) -> tuple[str, str, int]:
    with pytest.raises(botocore.exceptions.ClientError) as info:
        fn(*args, **kwargs)
    err = error_of(info.value)
    assert err[0] == code, err
    return err


def policy_doc(actions, resource="*") -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resource}]})


@pytest.fixture(scope="module")
def raw_sts(server):
    return server.unvalidated("sts")


# --- roles ----------------------------------------------------------------------------------

def test_role_lifecycle_returns_decoded_documents_and_aws_ids(iam, admin_arn, account):
    name = uniq("role")
    doc = trust_for(admin_arn)
    created = iam.create_role(
        RoleName=name, AssumeRolePolicyDocument=doc, Path="/ci/", Description="ci agent",
        MaxSessionDuration=7200, Tags=[{"Key": "team", "Value": "infra"}],
    )["Role"]
    assert re.fullmatch(r"AROA[A-Z2-7]{17}", created["RoleId"])
    assert created["Arn"] == f"arn:aws:iam::{account}:role/ci/{name}"
    # botocore URL-decodes and parses policyDocumentType members.
    assert created["AssumeRolePolicyDocument"] == json.loads(doc)
    got = iam.get_role(RoleName=name.upper())["Role"]  # names are case-insensitive
    assert got["RoleName"] == name and got["MaxSessionDuration"] == 7200
    assert got["Description"] == "ci agent"
    assert got["Tags"] == [{"Key": "team", "Value": "infra"}]
    iam.update_role(RoleName=name, MaxSessionDuration=43200, Description="changed")
    assert iam.get_role(RoleName=name)["Role"]["MaxSessionDuration"] == 43200
    new_trust = trust_for(f"arn:aws:iam::{account}:root")
    iam.update_assume_role_policy(RoleName=name, PolicyDocument=new_trust)
    assert iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"] == json.loads(new_trust)
    assert any(r["RoleName"] == name for r in iam.list_roles(PathPrefix="/ci/")["Roles"])
    iam.delete_role(RoleName=name)
    _, msg, status = expect_error("NoSuchEntity", iam.get_role, RoleName=name)
    assert msg == f"The role with name {name} cannot be found." and status == 404


def test_recreated_role_gets_a_new_unique_id(iam, admin_arn):
    name = uniq("role")
    first = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust_for(admin_arn))["Role"]["RoleId"]
    iam.delete_role(RoleName=name)
    second = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust_for(admin_arn))["Role"]["RoleId"]
    assert first != second
    iam.delete_role(RoleName=name)


def test_role_names_are_unique_case_insensitively(iam, admin_arn):
    name = uniq("Role")
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust_for(admin_arn))
    _, msg, status = expect_error("EntityAlreadyExists", iam.create_role, RoleName=name.lower(),
                                  AssumeRolePolicyDocument=trust_for(admin_arn))
    assert status == 409 and "already exists" in msg
    iam.delete_role(RoleName=name)


def test_role_input_constraints_are_validation_errors(raw_iam, admin_arn):
    iam = raw_iam
    expect_error("ValidationError", iam.create_role, RoleName="bad name", AssumeRolePolicyDocument=trust_for(admin_arn))
    expect_error("ValidationError", iam.create_role, RoleName="x" * 65, AssumeRolePolicyDocument=trust_for(admin_arn))
    expect_error("ValidationError", iam.create_role, RoleName=uniq("r"), Path="no-slashes",
                 AssumeRolePolicyDocument=trust_for(admin_arn))
    _, msg, _ = expect_error("ValidationError", iam.create_role, RoleName=uniq("r"), MaxSessionDuration=3599,
                             AssumeRolePolicyDocument=trust_for(admin_arn))
    assert "maxSessionDuration" in msg


def test_trust_policies_are_validated(iam, account):
    expect_error("MalformedPolicyDocument", iam.create_role, RoleName=uniq("r"), AssumeRolePolicyDocument="{not json")
    # A trust policy needs a principal.
    expect_error("MalformedPolicyDocument", iam.create_role, RoleName=uniq("r"),
                 AssumeRolePolicyDocument=policy_doc("sts:AssumeRole"))
    # Named users and roles must exist.
    _, msg, _ = expect_error("MalformedPolicyDocument", iam.create_role, RoleName=uniq("r"),
                             AssumeRolePolicyDocument=trust_for(f"arn:aws:iam::{account}:user/nobody-{uuid.uuid4().hex[:6]}"))
    assert "Invalid principal in policy" in msg


# --- inline policies ----------------------------------------------------------------------

def test_inline_role_policies_and_delete_conflict(iam, admin_arn):
    role = uniq("role")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust_for(admin_arn))
    doc = policy_doc(["secretsmanager:GetSecretValue"])
    iam.put_role_policy(RoleName=role, PolicyName="read", PolicyDocument=doc)
    got = iam.get_role_policy(RoleName=role, PolicyName="read")
    assert got["PolicyDocument"] == json.loads(doc) and got["RoleName"] == role
    assert iam.list_role_policies(RoleName=role)["PolicyNames"] == ["read"]
    _, msg, status = expect_error("DeleteConflict", iam.delete_role, RoleName=role)
    assert status == 409 and msg == "Cannot delete entity, must delete policies first."
    iam.delete_role_policy(RoleName=role, PolicyName="read")
    expect_error("NoSuchEntity", iam.get_role_policy, RoleName=role, PolicyName="read")
    iam.delete_role(RoleName=role)


def test_inline_policy_errors_and_aggregate_size_limits(iam, admin_arn):
    role = uniq("role")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust_for(admin_arn))
    expect_error("MalformedPolicyDocument", iam.put_role_policy, RoleName=role, PolicyName="p", PolicyDocument="nope")
    # Identity policies may not name a principal.
    expect_error("MalformedPolicyDocument", iam.put_role_policy, RoleName=role, PolicyName="p",
                 PolicyDocument=trust_for(admin_arn))
    expect_error("NoSuchEntity", iam.put_role_policy, RoleName=uniq("missing"), PolicyName="p",
                 PolicyDocument=policy_doc("s3:*"))

    def big(n):  # a policy of roughly n non-whitespace characters
        return policy_doc([f"ssm:GetParameter{i:05d}" for i in range(n // 26)])

    iam.put_role_policy(RoleName=role, PolicyName="a", PolicyDocument=big(6000))
    _, msg, status = expect_error("LimitExceeded", iam.put_role_policy, RoleName=role, PolicyName="b",
                                  PolicyDocument=big(6000))
    assert status == 409 and "10240" in msg
    iam.delete_role_policy(RoleName=role, PolicyName="a")
    iam.delete_role(RoleName=role)
    user = uniq("u")
    iam.create_user(UserName=user)
    expect_error("LimitExceeded", iam.put_user_policy, UserName=user, PolicyName="a", PolicyDocument=big(2500))
    iam.delete_user(UserName=user)


# --- managed policies ----------------------------------------------------------------------

def test_managed_policy_versions_attachments_and_conflicts(iam, admin_arn, account):
    name = uniq("pol")
    pol = iam.create_policy(PolicyName=name, PolicyDocument=policy_doc("ssm:GetParameter"), Description="d")["Policy"]
    arn = pol["Arn"]
    assert arn == f"arn:aws:iam::{account}:policy/{name}"
    assert re.fullmatch(r"ANPA[A-Z2-7]{17}", pol["PolicyId"]) and pol["DefaultVersionId"] == "v1"
    expect_error("EntityAlreadyExists", iam.create_policy, PolicyName=name.upper(), PolicyDocument=policy_doc("s3:*"))
    for i in range(2, 6):
        v = iam.create_policy_version(PolicyArn=arn, PolicyDocument=policy_doc(f"ssm:Get{i}"), SetAsDefault=(i == 3))
        assert v["PolicyVersion"]["VersionId"] == f"v{i}"
    _, msg, status = expect_error("LimitExceeded", iam.create_policy_version, PolicyArn=arn,
                                  PolicyDocument=policy_doc("s3:*"))
    assert status == 409 and "5 versions" in msg
    assert iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"] == "v3"
    got = iam.get_policy_version(PolicyArn=arn, VersionId="v3")["PolicyVersion"]
    assert got["Document"] == json.loads(policy_doc("ssm:Get3")) and got["IsDefaultVersion"] is True
    versions = [v["VersionId"] for v in iam.list_policy_versions(PolicyArn=arn)["Versions"]]
    assert versions == ["v5", "v4", "v3", "v2", "v1"]
    expect_error("DeleteConflict", iam.delete_policy_version, PolicyArn=arn, VersionId="v3")
    iam.set_default_policy_version(PolicyArn=arn, VersionId="v5")

    role = uniq("role")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust_for(admin_arn))
    iam.attach_role_policy(RoleName=role, PolicyArn=arn)
    assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == [{"PolicyName": name, "PolicyArn": arn}]
    assert iam.get_policy(PolicyArn=arn)["Policy"]["AttachmentCount"] == 1
    ents = iam.list_entities_for_policy(PolicyArn=arn)
    assert [r["RoleName"] for r in ents["PolicyRoles"]] == [role]
    _, msg, _ = expect_error("DeleteConflict", iam.delete_policy, PolicyArn=arn)
    assert "attached" in msg
    _, msg, _ = expect_error("DeleteConflict", iam.delete_role, RoleName=role)
    assert msg == "Cannot delete entity, must detach all policies first."
    iam.detach_role_policy(RoleName=role, PolicyArn=arn)
    expect_error("NoSuchEntity", iam.detach_role_policy, RoleName=role, PolicyArn=arn)
    iam.delete_role(RoleName=role)
    _, msg, _ = expect_error("DeleteConflict", iam.delete_policy, PolicyArn=arn)
    assert "more than one version" in msg
    for v in ["v1", "v2", "v3", "v4"]:
        iam.delete_policy_version(PolicyArn=arn, VersionId=v)
    iam.delete_policy(PolicyArn=arn)
    expect_error("NoSuchEntity", iam.get_policy, PolicyArn=arn)


def test_aws_managed_policies_are_readable_attachable_and_immutable(iam, admin_arn):
    # Needs the Authorizer to treat `arn:aws:iam::aws:policy/*` as no other account's resource.
    arn = "arn:aws:iam::aws:policy/AdministratorAccess"
    pol = iam.get_policy(PolicyArn=arn)["Policy"]
    assert pol["PolicyName"] == "AdministratorAccess" and pol["Arn"] == arn
    doc = iam.get_policy_version(PolicyArn=arn, VersionId=pol["DefaultVersionId"])["PolicyVersion"]["Document"]
    assert doc["Statement"][0]["Action"] == "*"
    names = set()
    for page in iam.get_paginator("list_policies").paginate(Scope="AWS"):
        names |= {p["PolicyName"] for p in page["Policies"]}
    assert {"AdministratorAccess", "ReadOnlyAccess", "SecretsManagerReadWrite", "AmazonSSMReadOnlyAccess",
            "AWSKeyManagementServicePowerUser", "IAMFullAccess", "PowerUserAccess"} <= names
    role = uniq("role")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust_for(admin_arn))
    iam.attach_role_policy(RoleName=role, PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")
    assert [p["PolicyName"] for p in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]] == ["ReadOnlyAccess"]
    with pytest.raises(botocore.exceptions.ClientError):
        iam.delete_policy(PolicyArn=arn)
    with pytest.raises(botocore.exceptions.ClientError):
        iam.create_policy_version(PolicyArn=arn, PolicyDocument=policy_doc("s3:*"))
    expect_error("NoSuchEntity", iam.attach_role_policy, RoleName=role,
                 PolicyArn="arn:aws:iam::aws:policy/NoSuchPolicyAtAll")
    expect_error("InvalidInput", iam.attach_role_policy, RoleName=role, PolicyArn="not-an-arn-but-long-enough")
    iam.detach_role_policy(RoleName=role, PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")
    iam.delete_role(RoleName=role)


def test_more_than_ten_managed_policies_is_limit_exceeded(iam, admin_arn):
    role = uniq("role")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust_for(admin_arn))
    arns = [iam.create_policy(PolicyName=uniq("p"), PolicyDocument=policy_doc("s3:*"))["Policy"]["Arn"] for _ in range(11)]
    for a in arns[:10]:
        iam.attach_role_policy(RoleName=role, PolicyArn=a)
    _, msg, status = expect_error("LimitExceeded", iam.attach_role_policy, RoleName=role, PolicyArn=arns[10])
    assert status == 409 and "PoliciesPerRole" in msg
    for a in arns[:10]:
        iam.detach_role_policy(RoleName=role, PolicyArn=a)
    for a in arns:
        iam.delete_policy(PolicyArn=a)
    iam.delete_role(RoleName=role)


def test_permissions_boundaries(iam, admin_arn):
    pol = iam.create_policy(PolicyName=uniq("b"), PolicyDocument=policy_doc("ssm:*"))["Policy"]["Arn"]
    user = uniq("u")
    iam.create_user(UserName=user, PermissionsBoundary=pol)
    assert iam.get_user(UserName=user)["User"]["PermissionsBoundary"] == {
        "PermissionsBoundaryType": "PermissionsBoundaryPolicy", "PermissionsBoundaryArn": pol}
    assert iam.get_policy(PolicyArn=pol)["Policy"]["PermissionsBoundaryUsageCount"] == 1
    expect_error("DeleteConflict", iam.delete_policy, PolicyArn=pol)
    role = uniq("role")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust_for(admin_arn))
    iam.put_role_permissions_boundary(RoleName=role, PermissionsBoundary=pol)
    assert iam.get_role(RoleName=role)["Role"]["PermissionsBoundary"]["PermissionsBoundaryArn"] == pol
    iam.delete_role_permissions_boundary(RoleName=role)
    assert "PermissionsBoundary" not in iam.get_role(RoleName=role)["Role"]
    iam.delete_user_permissions_boundary(UserName=user)
    iam.delete_policy(PolicyArn=pol)
    iam.delete_user(UserName=user)
    iam.delete_role(RoleName=role)


# --- users, access keys, groups ----------------------------------------------------------

def test_user_lifecycle_and_get_user_defaults_to_the_caller(iam, account):
    assert iam.get_user()["User"]["UserName"] == "tresor-admin"
    name = uniq("u")
    u = iam.create_user(UserName=name, Path="/team/", Tags=[{"Key": "k", "Value": "v"}])["User"]
    assert re.fullmatch(r"AIDA[A-Z2-7]{17}", u["UserId"]) and u["Arn"] == f"arn:aws:iam::{account}:user/team/{name}"
    assert iam.list_user_tags(UserName=name)["Tags"] == [{"Key": "k", "Value": "v"}]
    iam.tag_user(UserName=name, Tags=[{"Key": "k2", "Value": "v2"}])
    iam.untag_user(UserName=name, TagKeys=["k"])
    assert iam.get_user(UserName=name)["User"]["Tags"] == [{"Key": "k2", "Value": "v2"}]
    expect_error("EntityAlreadyExists", iam.create_user, UserName=name.upper())
    renamed = name + "-x"
    iam.update_user(UserName=name, NewUserName=renamed, NewPath="/moved/")
    assert iam.get_user(UserName=renamed)["User"]["Path"] == "/moved/"
    _, msg, _ = expect_error("NoSuchEntity", iam.get_user, UserName=name)
    assert msg == f"The user with name {name} cannot be found."
    iam.delete_user(UserName=renamed)


def test_access_keys_limit_status_and_delete_conflict(server, iam):
    name, akid, secret = new_user_with_key(iam)
    assert re.fullmatch(r"AKIA[A-Z2-7]{16}", akid) and len(secret) == 40
    user_sts = server.client("sts", akid, secret)
    assert user_sts.get_caller_identity()["Arn"].endswith(f":user/{name}")
    second = iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"]
    _, msg, status = expect_error("LimitExceeded", iam.create_access_key, UserName=name)
    assert status == 409 and "AccessKeysPerUser" in msg
    meta = iam.list_access_keys(UserName=name)["AccessKeyMetadata"]
    assert sorted(m["AccessKeyId"] for m in meta) == sorted([akid, second])
    assert all("SecretAccessKey" not in m for m in meta)
    iam.update_access_key(UserName=name, AccessKeyId=akid, Status="Inactive")
    expect_error("InvalidClientTokenId", user_sts.get_caller_identity)
    iam.update_access_key(UserName=name, AccessKeyId=akid, Status="Active")
    assert user_sts.get_caller_identity()["Account"]
    last = iam.get_access_key_last_used(AccessKeyId=akid)
    assert last["UserName"] == name and last["AccessKeyLastUsed"]["ServiceName"] == "N/A"
    _, msg, _ = expect_error("DeleteConflict", iam.delete_user, UserName=name)
    assert "access keys" in msg
    expect_error("NoSuchEntity", iam.delete_access_key, UserName=name, AccessKeyId="AKIAIOSFODNN7EXAMPLE")
    for k in (akid, second):
        iam.delete_access_key(UserName=name, AccessKeyId=k)
    expect_error("InvalidClientTokenId", user_sts.get_caller_identity)
    iam.delete_user(UserName=name)


def test_groups_membership_and_conflicts(iam):
    group, user = uniq("g"), uniq("u")
    g = iam.create_group(GroupName=group)["Group"]
    assert re.fullmatch(r"AGPA[A-Z2-7]{17}", g["GroupId"])
    iam.create_user(UserName=user)
    iam.add_user_to_group(GroupName=group, UserName=user)
    assert [x["GroupName"] for x in iam.list_groups_for_user(UserName=user)["Groups"]] == [group]
    assert [x["UserName"] for x in iam.get_group(GroupName=group)["Users"]] == [user]
    iam.put_group_policy(GroupName=group, PolicyName="p", PolicyDocument=policy_doc("s3:*"))
    expect_error("DeleteConflict", iam.delete_group, GroupName=group)
    expect_error("DeleteConflict", iam.delete_user, UserName=user)
    iam.remove_user_from_group(GroupName=group, UserName=user)
    iam.delete_group_policy(GroupName=group, PolicyName="p")
    iam.delete_group(GroupName=group)
    iam.delete_user(UserName=user)
    expect_error("NoSuchEntity", iam.get_group, GroupName=group)


def test_instance_profiles_hold_one_role(iam, admin_arn):
    role, role2, ip = uniq("role"), uniq("role"), uniq("ip")
    for r in (role, role2):
        iam.create_role(RoleName=r, AssumeRolePolicyDocument=trust_for(admin_arn))
    prof = iam.create_instance_profile(InstanceProfileName=ip)["InstanceProfile"]
    assert re.fullmatch(r"AIPA[A-Z2-7]{17}", prof["InstanceProfileId"]) and prof["Roles"] == []
    iam.add_role_to_instance_profile(InstanceProfileName=ip, RoleName=role)
    expect_error("LimitExceeded", iam.add_role_to_instance_profile, InstanceProfileName=ip, RoleName=role2)
    got = iam.get_instance_profile(InstanceProfileName=ip)["InstanceProfile"]
    assert [r["RoleName"] for r in got["Roles"]] == [role]
    assert got["Roles"][0]["AssumeRolePolicyDocument"]["Statement"][0]["Action"] == "sts:AssumeRole"
    assert [p["InstanceProfileName"] for p in iam.list_instance_profiles_for_role(RoleName=role)["InstanceProfiles"]] == [ip]
    _, msg, _ = expect_error("DeleteConflict", iam.delete_role, RoleName=role)
    assert "instance profile" in msg
    expect_error("DeleteConflict", iam.delete_instance_profile, InstanceProfileName=ip)
    iam.remove_role_from_instance_profile(InstanceProfileName=ip, RoleName=role)
    iam.delete_instance_profile(InstanceProfileName=ip)
    for r in (role, role2):
        iam.delete_role(RoleName=r)


# --- pagination -----------------------------------------------------------------------------

def test_list_users_paginates_with_opaque_markers(server, iam):
    path = f"/{uniq('pg')}/"
    names = sorted(uniq("pu") for _ in range(5))
    for n in names:
        iam.create_user(UserName=n, Path=path)
    first = iam.list_users(PathPrefix=path, MaxItems=2)
    assert first["IsTruncated"] is True and len(first["Users"]) == 2
    seen, markers = [], []
    for page in iam.get_paginator("list_users").paginate(PathPrefix=path, PaginationConfig={"PageSize": 2}):
        seen += [u["UserName"] for u in page["Users"]]
        if page.get("Marker"):
            markers.append(page["Marker"])
    assert seen == names
    assert len(markers) == len(set(markers)) == 2
    expect_error("ValidationError", server.unvalidated("iam").list_users, MaxItems=0)
    # The AWS CLI pages through the same listing.
    akid, secret = iam._request_signer._credentials.access_key, iam._request_signer._credentials.secret_key
    r = aws_cli("iam", "list-users", "--path-prefix", path, "--page-size", "2", "--output", "json",
                env={"AWS_ACCESS_KEY_ID": akid, "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": "us-east-1",
                     "AWS_ENDPOINT_URL": iam.meta.endpoint_url})
    assert r.returncode == 0, r.stderr
    assert [u["UserName"] for u in json.loads(r.stdout)["Users"]] == names
    for n in names:
        iam.delete_user(UserName=n)


def test_raw_xml_carries_percent_encoded_documents(server, iam, admin_arn):
    role = uniq("role")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust_for(admin_arn))
    akid, secret = server.admin_keys()
    status, _, body = query_call(server, {"Action": "GetRole", "Version": "2010-05-08", "RoleName": role},
                                 akid, secret, service="iam")
    assert status == 200
    ns = "{https://iam.amazonaws.com/doc/2010-05-08/}"
    doc = ET.fromstring(body).find(f"{ns}GetRoleResult/{ns}Role/{ns}AssumeRolePolicyDocument").text
    assert doc.startswith("%7B%22Version%22%3A%20%222012-10-17%22") and "{" not in doc and " " not in doc
    status, _, body = query_call(server, {"Action": "GetRole", "Version": "2010-05-08", "RoleName": "nope-" + role},
                                 akid, secret, service="iam")
    assert status == 404 and b"<Code>NoSuchEntity</Code>" in body
    iam.delete_role(RoleName=role)


# --- STS ------------------------------------------------------------------------------------

def test_assume_role_gives_working_temporary_credentials_until_the_role_is_deleted(server, iam, sts, admin_arn, account):
    role = uniq("role")
    role_obj = iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust_for(admin_arn))["Role"]
    iam.put_role_policy(RoleName=role, PolicyName="p", PolicyDocument=policy_doc("iam:GetRole"))
    out = sts.assume_role(RoleArn=role_obj["Arn"], RoleSessionName="build-1", DurationSeconds=900)
    c = out["Credentials"]
    assert re.fullmatch(r"ASIA[A-Z2-7]{16}", c["AccessKeyId"]) and len(c["SecretAccessKey"]) == 40
    assert out["AssumedRoleUser"] == {"AssumedRoleId": f"{role_obj['RoleId']}:build-1",
                                      "Arn": f"arn:aws:sts::{account}:assumed-role/{role}/build-1"}
    temp_sts = server.session("sts", c)
    ident = temp_sts.get_caller_identity()
    assert ident["Arn"] == f"arn:aws:sts::{account}:assumed-role/{role}/build-1"
    assert ident["UserId"] == f"{role_obj['RoleId']}:build-1"
    # Without its token the temporary key is no credential.
    expect_error("InvalidClientTokenId", server.client("sts", c["AccessKeyId"], c["SecretAccessKey"]).get_caller_identity)
    expect_error("InvalidClientTokenId",
                 server.client("sts", c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"][:-4] + "AAAA").get_caller_identity)
    iam.delete_role_policy(RoleName=role, PolicyName="p")
    iam.delete_role(RoleName=role)
    expect_error("InvalidClientTokenId", temp_sts.get_caller_identity)
    # Re-creating the role does not revive the old session.
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust_for(admin_arn))
    expect_error("InvalidClientTokenId", temp_sts.get_caller_identity)
    iam.delete_role(RoleName=role)


def test_assume_role_duration_and_input_errors(server, iam, raw_sts, admin_arn, account):
    sts = raw_sts
    role = uniq("role")
    arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust_for(admin_arn))["Role"]["Arn"]
    _, msg, status = expect_error("ValidationError", sts.assume_role, RoleArn=arn, RoleSessionName="s", DurationSeconds=900)
    assert status == 400 and "roleSessionName" in msg
    expect_error("ValidationError", sts.assume_role, RoleArn=arn, RoleSessionName="has space")
    expect_error("ValidationError", sts.assume_role, RoleArn=arn, RoleSessionName="ok", DurationSeconds=899)
    _, msg, _ = expect_error("ValidationError", sts.assume_role, RoleArn=arn, RoleSessionName="ok", DurationSeconds=7200)
    assert msg == "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
    missing = f"arn:aws:iam::{account}:role/{uniq('missing')}"
    _, msg, status = expect_error("AccessDenied", sts.assume_role, RoleArn=missing, RoleSessionName="ok")
    assert status == 403 and msg == f"User: {admin_arn} is not authorized to perform: sts:AssumeRole on resource: {missing}"
    expect_error("MalformedPolicyDocument", sts.assume_role, RoleArn=arn, RoleSessionName="ok", Policy="{bad")
    # Role chaining is limited to an hour.
    iam.update_role(RoleName=role, MaxSessionDuration=43200)
    c = sts.assume_role(RoleArn=arn, RoleSessionName="first", DurationSeconds=7200)["Credentials"]
    assert "PackedPolicySize" not in sts.assume_role(RoleArn=arn, RoleSessionName="plain")
    chained = server.unvalidated("sts", c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
    iam.update_assume_role_policy(RoleName=role, PolicyDocument=trust_for(admin_arn, f"arn:aws:iam::{account}:role/{role}"))
    _, msg, _ = expect_error("ValidationError", chained.assume_role, RoleArn=arn, RoleSessionName="second", DurationSeconds=3601)
    assert msg == "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining."
    iam.delete_role(RoleName=role)


def test_get_session_token_for_users_only(server, iam, account):
    name, akid, secret = new_user_with_key(iam)
    user_sts = server.unvalidated("sts", akid, secret)
    c = user_sts.get_session_token(DurationSeconds=900)["Credentials"]
    assert re.fullmatch(r"ASIA[A-Z2-7]{16}", c["AccessKeyId"])
    temp = server.session("sts", c)
    assert temp.get_caller_identity()["Arn"] == f"arn:aws:iam::{account}:user/{name}"
    expect_error("AccessDenied", temp.get_session_token)
    expect_error("ValidationError", user_sts.get_session_token, DurationSeconds=129601)
    iam.delete_access_key(UserName=name, AccessKeyId=akid)
    iam.delete_user(UserName=name)


def test_cli_profile_with_role_arn_and_source_profile_assumes_the_role(server, iam, admin_arn, account, tmp_path):
    role = uniq("role")
    arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust_for(admin_arn))["Role"]["Arn"]
    akid, secret = server.admin_keys()
    (tmp_path / "credentials").write_text(f"[base]\naws_access_key_id = {akid}\naws_secret_access_key = {secret}\n")
    (tmp_path / "config").write_text(
        f"[profile base]\nregion = us-east-1\n\n[profile ci]\nrole_arn = {arn}\nsource_profile = base\n"
        f"role_session_name = cli-session\nregion = us-east-1\n"
    )
    env = {"AWS_CONFIG_FILE": str(tmp_path / "config"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
           "AWS_ENDPOINT_URL": server.endpoint, "AWS_PROFILE": "ci"}
    r = aws_cli("sts", "get-caller-identity", "--output", "json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["Arn"] == f"arn:aws:sts::{account}:assumed-role/{role}/cli-session"
    # The CLI prints decoded policy documents.
    r = aws_cli("iam", "get-role", "--role-name", role, "--output", "json",
                env={**env, "AWS_PROFILE": "base"})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["Role"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["AWS"] == [admin_arn]
    iam.delete_role(RoleName=role)


# --- authorization (needs the Authorizer) ---------------------------------------------------

def test_trust_naming_only_the_account_needs_an_identity_policy(server, iam, account):
    name, akid, secret = new_user_with_key(iam)
    user_sts = server.client("sts", akid, secret)
    role = uniq("role")
    arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust_for(f"arn:aws:iam::{account}:root"))["Role"]["Arn"]
    user_arn = f"arn:aws:iam::{account}:user/{name}"
    _, msg, status = expect_error("AccessDenied", user_sts.assume_role, RoleArn=arn, RoleSessionName="s1")
    assert status == 403 and msg.startswith(f"User: {user_arn} is not authorized to perform: sts:AssumeRole on resource: {arn}")
    # Naming the user in the trust policy is enough on its own.
    iam.update_assume_role_policy(RoleName=role, PolicyDocument=trust_for(user_arn))
    assert user_sts.assume_role(RoleArn=arn, RoleSessionName="s2")["AssumedRoleUser"]["Arn"].endswith(f"/{role}/s2")
    # With the account in the trust policy, an identity policy allowing sts:AssumeRole suffices.
    iam.update_assume_role_policy(RoleName=role, PolicyDocument=trust_for(f"arn:aws:iam::{account}:root"))
    iam.put_user_policy(UserName=name, PolicyName="assume", PolicyDocument=policy_doc("sts:AssumeRole", arn))
    assert user_sts.assume_role(RoleArn=arn, RoleSessionName="s3")["Credentials"]["AccessKeyId"].startswith("ASIA")
    iam.delete_user_policy(UserName=name, PolicyName="assume")
    iam.delete_access_key(UserName=name, AccessKeyId=akid)
    iam.delete_user(UserName=name)
    iam.delete_role(RoleName=role)


def test_user_without_iam_permissions_is_denied(server, iam, account):
    name, akid, secret = new_user_with_key(iam)
    user_iam = server.client("iam", akid, secret)
    _, msg, status = expect_error("AccessDenied", user_iam.create_role, RoleName=uniq("r"),
                                  AssumeRolePolicyDocument=trust_for(f"arn:aws:iam::{account}:root"))
    assert status == 403 and "iam:CreateRole" in msg
    expect_error("AccessDenied", user_iam.list_users)
    iam.delete_access_key(UserName=name, AccessKeyId=akid)
    iam.delete_user(UserName=name)


def test_session_policy_narrows_the_role_session(server, iam, sts, admin_arn):
    role = uniq("role")
    arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust_for(admin_arn))["Role"]["Arn"]
    iam.put_role_policy(RoleName=role, PolicyName="all", PolicyDocument=json.dumps(ALLOW_ALL))
    out = sts.assume_role(RoleArn=arn, RoleSessionName="narrow", Policy=policy_doc("iam:GetRole"))
    assert 0 < out["PackedPolicySize"] <= 100
    c = out["Credentials"]
    narrow = server.session("iam", c)
    assert narrow.get_role(RoleName=role)["Role"]["RoleName"] == role
    expect_error("AccessDenied", narrow.list_roles)
    iam.delete_role_policy(RoleName=role, PolicyName="all")
    iam.delete_role(RoleName=role)


def test_get_session_token_credentials_outlive_the_deactivated_key(server, iam, account):
    # "After AWS STS issues temporary security credentials, they are valid through the
    # expiration period and cannot be revoked" (IAM User Guide, "Permissions for temporary
    # security credentials"); the way to stop them is to remove the user's permissions.
    name, akid, secret = new_user_with_key(iam, policy=policy_doc("iam:GetUser"))
    c = server.unvalidated("sts", akid, secret).get_session_token(DurationSeconds=900)["Credentials"]
    iam.update_access_key(UserName=name, AccessKeyId=akid, Status="Inactive")
    # The long-term key itself is refused at once ...
    expect_error("InvalidClientTokenId", server.client("sts", akid, secret).get_caller_identity)
    # ... while the session it created keeps working until it expires.
    temp = server.session("sts", c)
    assert temp.get_caller_identity()["Arn"] == f"arn:aws:iam::{account}:user/{name}"
    # Its permissions are still evaluated on every call: removing the user's policy revokes them.
    expect_error("InvalidClientTokenId", server.session("iam", c).get_user, UserName=name)  # no MFA: no IAM calls
    iam.delete_user_policy(UserName=name, PolicyName="p")
    assert temp.get_caller_identity()["Arn"].endswith(f":user/{name}")  # GetCallerIdentity needs no permission
    # Deleting the key does not end the session either; deleting the user does.
    iam.delete_access_key(UserName=name, AccessKeyId=akid)
    assert temp.get_caller_identity()["Arn"].endswith(f":user/{name}")
    iam.delete_user(UserName=name)
    expect_error("InvalidClientTokenId", temp.get_caller_identity)


def test_session_policy_allowing_only_get_secret_value_may_use_the_aws_managed_key(server, iam, sts, sm, admin_arn, account):
    # The aws/secretsmanager key's policy allows kms:Decrypt to every principal of the account
    # calling through Secrets Manager (kms:ViaService, kms:CallerAccount), so a session policy
    # that allows only secretsmanager:GetSecretValue still reads such a secret. A customer key
    # whose policy delegates to IAM needs kms:Decrypt in the session policy as well.
    kms = server.admin("kms")
    managed = uniq("sp-managed")
    sm.create_secret(Name=managed, SecretString="managed-value")
    cmk = kms.create_key(Description="delegates to IAM")["KeyMetadata"]["KeyId"]
    customer = uniq("sp-customer")
    sm.create_secret(Name=customer, SecretString="customer-value", KmsKeyId=cmk)
    role = uniq("role")
    arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust_for(admin_arn))["Role"]["Arn"]
    iam.put_role_policy(RoleName=role, PolicyName="all", PolicyDocument=json.dumps(ALLOW_ALL))
    only_get = policy_doc("secretsmanager:GetSecretValue")
    c = sts.assume_role(RoleArn=arn, RoleSessionName="only-get", Policy=only_get)["Credentials"]
    narrow = server.session("secretsmanager", c)
    assert narrow.get_secret_value(SecretId=managed)["SecretString"] == "managed-value"
    _, msg, status = expect_error("AccessDeniedException", narrow.get_secret_value, SecretId=customer)
    assert (status, msg) == (400, "Access to KMS is not allowed")
    expect_error("AccessDeniedException", narrow.describe_secret, SecretId=managed)
    # With kms:Decrypt in the session policy, the customer key opens too.
    both = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue", "kms:Decrypt"], "Resource": "*"}]})
    c2 = sts.assume_role(RoleArn=arn, RoleSessionName="get-and-decrypt", Policy=both)["Credentials"]
    assert server.session("secretsmanager", c2).get_secret_value(SecretId=customer)["SecretString"] == "customer-value"
    for s in (managed, customer):
        sm.delete_secret(SecretId=s, ForceDeleteWithoutRecovery=True)
    iam.delete_role_policy(RoleName=role, PolicyName="all")
    iam.delete_role(RoleName=role)
