"""The IAM policy simulator (SimulatePrincipalPolicy, SimulateCustomPolicy) through boto3 and
the AWS CLI against a real `tresor serve`: decisions, matched statements and their positions,
permissions boundaries, resource policies, context entries, pagination and errors — and that a
simulated decision agrees with what a role session is actually allowed to do."""

import json

import botocore.exceptions
import pytest

from conftest import REGION, aws_cli, trust_for, uniq


def doc(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action, resource="*", **extra):
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action, resource="*", **extra):
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def expect_error(code: str, fn, *args, **kwargs) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as info:
        fn(*args, **kwargs)
    err = info.value.response["Error"]
    assert err["Code"] == code, err
    return err.get("Message", "")


def secret_arn(account: str, name: str) -> str:
    return f"arn:aws:secretsmanager:{REGION}:{account}:secret:{name}-AbCdEf"


def only(results):
    assert len(results) == 1, results
    return results[0]


# --- SimulatePrincipalPolicy -----------------------------------------------------------------

def test_user_inline_allow_on_one_secret(iam, account):
    user = uniq("u")
    iam.create_user(UserName=user)
    a, b = secret_arn(account, "app/a"), secret_arn(account, "app/b")
    iam.put_user_policy(UserName=user, PolicyName="read-a",
                        PolicyDocument=doc(allow("secretsmanager:GetSecretValue", a)))
    user_arn = f"arn:aws:iam::{account}:user/{user}"

    r = only(iam.simulate_principal_policy(
        PolicySourceArn=user_arn, ActionNames=["secretsmanager:GetSecretValue"],
        ResourceArns=[a])["EvaluationResults"])
    assert r["EvalActionName"] == "secretsmanager:GetSecretValue"
    assert r["EvalResourceName"] == a
    assert r["EvalDecision"] == "allowed"
    (m,) = r["MatchedStatements"]
    assert m["SourcePolicyId"] == "read-a"
    assert m["SourcePolicyType"] == "user"
    # json.dumps: `{"Version": "2012-10-17", "Statement": [{` → the statement's `{` is column 41.
    assert m["StartPosition"] == {"Line": 1, "Column": 41}
    assert m["EndPosition"]["Line"] == 1 and m["EndPosition"]["Column"] > 41

    r = only(iam.simulate_principal_policy(
        PolicySourceArn=user_arn, ActionNames=["secretsmanager:GetSecretValue"],
        ResourceArns=[b])["EvaluationResults"])
    assert r["EvalDecision"] == "implicitDeny"
    assert r["MatchedStatements"] == []

    # Both resources at once: one result per action, the most restrictive decision on top,
    # the per-resource decisions in ResourceSpecificResults.
    out = iam.simulate_principal_policy(
        PolicySourceArn=user_arn,
        ActionNames=["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"],
        ResourceArns=[a, b])
    assert out["IsTruncated"] is False
    get, put = out["EvaluationResults"]
    assert get["EvalDecision"] == "implicitDeny"
    assert {x["EvalResourceName"]: x["EvalResourceDecision"] for x in get["ResourceSpecificResults"]} == {
        a: "allowed", b: "implicitDeny"}
    per = {x["EvalResourceName"]: x for x in get["ResourceSpecificResults"]}
    assert [s["SourcePolicyId"] for s in per[a]["MatchedStatements"]] == ["read-a"]
    assert per[b]["MatchedStatements"] == []
    assert put["EvalDecision"] == "implicitDeny"
    assert {x["EvalResourceDecision"] for x in put["ResourceSpecificResults"]} == {"implicitDeny"}


def test_explicit_deny_names_the_deny_statement(iam, account):
    user, group = uniq("u"), uniq("g")
    iam.create_user(UserName=user)
    iam.create_group(GroupName=group)
    iam.add_user_to_group(GroupName=group, UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="all", PolicyDocument=doc(allow("secretsmanager:*")))
    policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "Reads", "Effect": "Allow", "Action": "secretsmanager:Describe*", "Resource": "*"},
        {"Sid": "NoDelete", "Effect": "Deny", "Action": "secretsmanager:DeleteSecret", "Resource": "*"},
    ]}, indent=2)
    iam.put_group_policy(GroupName=group, PolicyName="guard", PolicyDocument=policy)
    r = only(iam.simulate_principal_policy(
        PolicySourceArn=f"arn:aws:iam::{account}:user/{user}",
        ActionNames=["secretsmanager:DeleteSecret"])["EvaluationResults"])
    assert r["EvalDecision"] == "explicitDeny"
    assert r["EvalResourceName"] == "*"
    assert "ResourceSpecificResults" not in r
    (m,) = r["MatchedStatements"]  # only the deny, not the user's allow
    assert (m["SourcePolicyId"], m["SourcePolicyType"]) == ("guard", "group")
    # indent=2: the second statement's braces are on lines 10 and 15, column 5.
    assert m["StartPosition"] == {"Line": 10, "Column": 5}
    assert m["EndPosition"] == {"Line": 15, "Column": 5}

    # The group itself as the source: only its own policies.
    r = only(iam.simulate_principal_policy(
        PolicySourceArn=f"arn:aws:iam::{account}:group/{group}",
        ActionNames=["secretsmanager:DescribeSecret", "secretsmanager:DeleteSecret",
                     "secretsmanager:GetSecretValue"])["EvaluationResults"][:1])
    assert r["EvalDecision"] == "allowed"
    assert r["MatchedStatements"][0]["SourcePolicyType"] == "group"


def test_managed_policies_report_their_arn(iam, account):
    user = uniq("u")
    iam.create_user(UserName=user)
    arn = iam.create_policy(PolicyName=uniq("p"), PolicyDocument=doc(allow("kms:Decrypt")))["Policy"]["Arn"]
    iam.attach_user_policy(UserName=user, PolicyArn=arn)
    iam.attach_user_policy(UserName=user, PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")
    out = iam.simulate_principal_policy(
        PolicySourceArn=f"arn:aws:iam::{account}:user/{user}",
        ActionNames=["kms:Decrypt", "iam:GetUser"])["EvaluationResults"]
    assert [(r["EvalDecision"], r["MatchedStatements"][0]["SourcePolicyId"],
             r["MatchedStatements"][0]["SourcePolicyType"]) for r in out] == [
        ("allowed", arn, "user-managed"),
        ("allowed", "arn:aws:iam::aws:policy/ReadOnlyAccess", "aws-managed")]


def test_permissions_boundary_caps_the_identity_policies(iam, account):
    user = uniq("u")
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="all", PolicyDocument=doc(allow("*")))
    boundary = iam.create_policy(PolicyName=uniq("b"),
                                 PolicyDocument=doc(allow("secretsmanager:Describe*")))["Policy"]["Arn"]
    iam.put_user_permissions_boundary(UserName=user, PermissionsBoundary=boundary)
    out = iam.simulate_principal_policy(
        PolicySourceArn=f"arn:aws:iam::{account}:user/{user}",
        ActionNames=["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"])["EvaluationResults"]
    described, read = out
    assert described["EvalDecision"] == "allowed"
    assert described["PermissionsBoundaryDecisionDetail"] == {"AllowedByPermissionsBoundary": True}
    assert read["EvalDecision"] == "implicitDeny"
    assert read["PermissionsBoundaryDecisionDetail"] == {"AllowedByPermissionsBoundary": False}
    assert read["MatchedStatements"] == []

    # A boundary passed in replaces the attached one for the simulation.
    r = only(iam.simulate_principal_policy(
        PolicySourceArn=f"arn:aws:iam::{account}:user/{user}",
        ActionNames=["secretsmanager:GetSecretValue"],
        PermissionsBoundaryPolicyInputList=[doc(allow("secretsmanager:GetSecretValue"))])["EvaluationResults"])
    assert r["EvalDecision"] == "allowed"


def test_resource_policy_granting_a_role(iam, account, admin_arn):
    role = uniq("r")
    role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust_for(admin_arn))["Role"]["Arn"]
    target = secret_arn(account, "shared")
    resource_policy = doc({"Effect": "Allow", "Principal": {"AWS": role_arn},
                           "Action": "secretsmanager:GetSecretValue", "Resource": "*"})
    r = only(iam.simulate_principal_policy(
        PolicySourceArn=role_arn, ActionNames=["secretsmanager:GetSecretValue"],
        ResourceArns=[target])["EvaluationResults"])
    assert r["EvalDecision"] == "implicitDeny"
    r = only(iam.simulate_principal_policy(
        PolicySourceArn=role_arn, ActionNames=["secretsmanager:GetSecretValue"],
        ResourceArns=[target], ResourcePolicy=resource_policy)["EvaluationResults"])
    assert r["EvalDecision"] == "allowed"
    (m,) = r["MatchedStatements"]
    assert (m["SourcePolicyId"], m["SourcePolicyType"]) == ("ResourcePolicy", "resource")
    # Another principal named as the caller is not granted by it.
    other = f"arn:aws:iam::{account}:user/{uniq('nobody')}"
    r = only(iam.simulate_principal_policy(
        PolicySourceArn=role_arn, CallerArn=other, ActionNames=["secretsmanager:GetSecretValue"],
        ResourceArns=[target], ResourcePolicy=resource_policy)["EvaluationResults"])
    assert r["EvalDecision"] == "implicitDeny"
    # An explicit deny in the resource policy wins over an identity allow.
    iam.put_role_policy(RoleName=role, PolicyName="all", PolicyDocument=doc(allow("secretsmanager:*")))
    r = only(iam.simulate_principal_policy(
        PolicySourceArn=role_arn, ActionNames=["secretsmanager:GetSecretValue"], ResourceArns=[target],
        ResourcePolicy=doc({"Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*"}))["EvaluationResults"])
    assert r["EvalDecision"] == "explicitDeny"
    assert [m["SourcePolicyType"] for m in r["MatchedStatements"]] == ["resource"]


def test_context_entries_drive_conditions(iam, account):
    user = uniq("u")
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="office", PolicyDocument=doc(
        allow("secretsmanager:GetSecretValue", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),
        allow("secretsmanager:DescribeSecret",
              Condition={"StringEquals": {"secretsmanager:ResourceTag/env": "dev"}})))
    src = f"arn:aws:iam::{account}:user/{user}"

    def decide(action, entries=()):
        return only(iam.simulate_principal_policy(
            PolicySourceArn=src, ActionNames=[action], ContextEntries=list(entries))["EvaluationResults"])

    ip = lambda v: {"ContextKeyName": "aws:SourceIp", "ContextKeyValues": [v], "ContextKeyType": "ip"}
    assert decide("secretsmanager:GetSecretValue", [ip("10.1.2.3")])["EvalDecision"] == "allowed"
    assert decide("secretsmanager:GetSecretValue", [ip("192.168.0.1")])["EvalDecision"] == "implicitDeny"
    missing = decide("secretsmanager:GetSecretValue")
    assert missing["EvalDecision"] == "implicitDeny"
    assert missing["MissingContextValues"] == ["aws:SourceIp"]
    assert decide("secretsmanager:GetSecretValue", [ip("10.1.2.3")])["MissingContextValues"] == []

    tag = lambda v: {"ContextKeyName": "secretsmanager:ResourceTag/env", "ContextKeyValues": [v],
                     "ContextKeyType": "string"}
    assert decide("secretsmanager:DescribeSecret", [tag("dev")])["EvalDecision"] == "allowed"
    assert decide("secretsmanager:DescribeSecret", [tag("prod")])["EvalDecision"] == "implicitDeny"
    assert decide("secretsmanager:DescribeSecret")["MissingContextValues"] == ["secretsmanager:ResourceTag/env"]
    # Keys of statements for other actions are not reported.
    assert decide("secretsmanager:DeleteSecret")["MissingContextValues"] == []

    # With specific resources the per-resource results carry them too.
    r = only(iam.simulate_principal_policy(
        PolicySourceArn=src, ActionNames=["secretsmanager:GetSecretValue"],
        ResourceArns=[secret_arn(account, "x")])["EvaluationResults"])
    assert r["ResourceSpecificResults"][0]["MissingContextValues"] == ["aws:SourceIp"]

    expect_error("InvalidInput", iam.simulate_principal_policy, PolicySourceArn=src,
                 ActionNames=["secretsmanager:GetSecretValue"], ContextEntries=[ip("not-an-ip")])


def test_simulation_agrees_with_enforcement(server, iam, sm, sts, account, admin_arn):
    """SimulatePrincipalPolicy's decision for a role equals what a session of the role gets."""
    role = uniq("agree")
    role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust_for(admin_arn))["Role"]["Arn"]
    names = {k: uniq(f"agree/{k}") for k in ("granted", "other", "denied", "by-resource-policy")}
    arns = {k: sm.create_secret(Name=n, SecretString=f"value-{k}")["ARN"] for k, n in names.items()}
    iam.put_role_policy(RoleName=role, PolicyName="reads", PolicyDocument=doc(
        allow("secretsmanager:GetSecretValue", [arns["granted"], arns["denied"]]),
        deny("secretsmanager:GetSecretValue", arns["denied"])))
    sm.put_resource_policy(SecretId=arns["by-resource-policy"], ResourcePolicy=doc(
        {"Effect": "Allow", "Principal": {"AWS": role_arn}, "Action": "secretsmanager:GetSecretValue",
         "Resource": "*"}))

    creds = sts.assume_role(RoleArn=role_arn, RoleSessionName="agreement")["Credentials"]
    session = server.session("secretsmanager", creds)
    expected = {"granted": "allowed", "other": "implicitDeny", "denied": "explicitDeny",
                "by-resource-policy": "allowed"}
    for key, arn in arns.items():
        kw = {}
        stored = sm.get_resource_policy(SecretId=arn).get("ResourcePolicy")
        if stored:
            kw["ResourcePolicy"] = stored
        simulated = only(iam.simulate_principal_policy(
            PolicySourceArn=role_arn, ActionNames=["secretsmanager:GetSecretValue"],
            ResourceArns=[arn], **kw)["EvaluationResults"])["EvalDecision"]
        assert simulated == expected[key], (key, simulated)
        try:
            session.get_secret_value(SecretId=arn)
            actual = "allowed"
        except botocore.exceptions.ClientError as e:
            assert e.response["Error"]["Code"] == "AccessDeniedException", e.response
            actual = "denied"
        assert actual == ("allowed" if simulated == "allowed" else "denied"), (key, simulated, actual)

    # A change to the role's policy is seen by both at once.
    iam.delete_role_policy(RoleName=role, PolicyName="reads")
    simulated = only(iam.simulate_principal_policy(
        PolicySourceArn=role_arn, ActionNames=["secretsmanager:GetSecretValue"],
        ResourceArns=[arns["granted"]])["EvaluationResults"])["EvalDecision"]
    assert simulated == "implicitDeny"
    expect_error("AccessDeniedException", session.get_secret_value, SecretId=arns["granted"])


# --- SimulateCustomPolicy --------------------------------------------------------------------

def test_custom_policy_inputs_are_named_by_position(iam, account):
    policies = [doc(allow("secretsmanager:List*")), doc(deny("secretsmanager:ListSecretVersionIds"))]
    out = iam.simulate_custom_policy(
        PolicyInputList=policies,
        ActionNames=["secretsmanager:ListSecrets", "secretsmanager:ListSecretVersionIds", "kms:Encrypt"])
    listed, versions, encrypt = out["EvaluationResults"]
    assert listed["EvalDecision"] == "allowed"
    (m,) = listed["MatchedStatements"]
    assert (m["SourcePolicyId"], m["SourcePolicyType"]) == ("PolicyInputList.1", "IAM Policy")
    assert versions["EvalDecision"] == "explicitDeny"
    assert [m["SourcePolicyId"] for m in versions["MatchedStatements"]] == ["PolicyInputList.2"]
    assert encrypt["EvalDecision"] == "implicitDeny"
    # A permissions boundary passed in caps the input policies.
    r = only(iam.simulate_custom_policy(
        PolicyInputList=policies[:1], PermissionsBoundaryPolicyInputList=[doc(allow("kms:*"))],
        ActionNames=["secretsmanager:ListSecrets"])["EvaluationResults"])
    assert r["EvalDecision"] == "implicitDeny"
    assert r["PermissionsBoundaryDecisionDetail"] == {"AllowedByPermissionsBoundary": False}
    # A resource policy needs a caller to match its Principal against.
    caller = f"arn:aws:iam::{account}:user/{uniq('caller')}"
    rp = doc({"Effect": "Allow", "Principal": {"AWS": caller}, "Action": "secretsmanager:GetSecretValue",
              "Resource": "*"})
    r = only(iam.simulate_custom_policy(
        PolicyInputList=[doc(allow("kms:Decrypt"))], ResourcePolicy=rp, CallerArn=caller,
        ActionNames=["secretsmanager:GetSecretValue"],
        ResourceArns=[secret_arn(account, "c")])["EvaluationResults"])
    assert r["EvalDecision"] == "allowed"
    expect_error("InvalidInput", iam.simulate_custom_policy, PolicyInputList=[doc(allow("kms:Decrypt"))],
                 ResourcePolicy=rp, ActionNames=["secretsmanager:GetSecretValue"])


def test_cross_account_resource_needs_a_resource_policy(iam, account):
    foreign = "arn:aws:secretsmanager:us-east-1:999999999999:secret:theirs-AbCdEf"
    caller = f"arn:aws:iam::{account}:user/{uniq('x')}"
    base = dict(PolicyInputList=[doc(allow("secretsmanager:GetSecretValue"))], CallerArn=caller,
                ActionNames=["secretsmanager:GetSecretValue"], ResourceArns=[foreign])
    rp = doc({"Effect": "Allow", "Principal": {"AWS": account}, "Action": "secretsmanager:GetSecretValue",
              "Resource": "*"})
    assert only(iam.simulate_custom_policy(**base)["EvaluationResults"])["EvalDecision"] == "implicitDeny"
    assert only(iam.simulate_custom_policy(**base, ResourcePolicy=rp)["EvaluationResults"])[
        "EvalDecision"] == "allowed"


def test_pagination_over_actions(iam):
    actions = [f"secretsmanager:{a}" for a in ("ListSecrets", "GetSecretValue", "DescribeSecret")]
    first = iam.simulate_custom_policy(PolicyInputList=[doc(allow("secretsmanager:*"))],
                                       ActionNames=actions, MaxItems=2)
    assert first["IsTruncated"] is True
    assert [r["EvalActionName"] for r in first["EvaluationResults"]] == actions[:2]
    rest = iam.simulate_custom_policy(PolicyInputList=[doc(allow("secretsmanager:*"))],
                                      ActionNames=actions, MaxItems=2, Marker=first["Marker"])
    assert rest["IsTruncated"] is False
    assert [r["EvalActionName"] for r in rest["EvaluationResults"]] == actions[2:]
    pages = iam.get_paginator("simulate_custom_policy").paginate(
        PolicyInputList=[doc(allow("secretsmanager:*"))], ActionNames=actions,
        PaginationConfig={"PageSize": 1})
    assert [r["EvalActionName"] for p in pages for r in p["EvaluationResults"]] == actions


def test_aws_cli_simulate_custom_policy(server, iam):
    akid, secret = server.admin_keys()
    r = aws_cli("iam", "simulate-custom-policy", "--output", "json",
                "--policy-input-list", doc(allow("dynamodb:*",
                                               Condition={"DateGreaterThan": {"aws:CurrentTime": "2018-08-16T12:00:00Z"}})),
                "--action-names", "dynamodb:CreateBackup",
                "--context-entries",
                "ContextKeyName='aws:CurrentTime',ContextKeyValues='2019-04-25T11:00:00Z',ContextKeyType=date",
                env={"AWS_ACCESS_KEY_ID": akid, "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": REGION,
                     "AWS_ENDPOINT_URL": server.endpoint})
    assert r.returncode == 0, r.stderr
    (result,) = json.loads(r.stdout)["EvaluationResults"]
    assert result["EvalDecision"] == "allowed"
    assert result["EvalResourceName"] == "*"
    assert result["MatchedStatements"][0]["SourcePolicyId"] == "PolicyInputList.1"
    assert result["MissingContextValues"] == []
    r = aws_cli("iam", "simulate-custom-policy", "--output", "json",
                "--policy-input-list", doc(allow("dynamodb:*",
                                               Condition={"DateGreaterThan": {"aws:CurrentTime": "2018-08-16T12:00:00Z"}})),
                "--action-names", "dynamodb:CreateBackup",
                "--context-entries",
                "ContextKeyName='aws:CurrentTime',ContextKeyValues='2014-04-25T11:00:00Z',ContextKeyType=date",
                env={"AWS_ACCESS_KEY_ID": akid, "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": REGION,
                     "AWS_ENDPOINT_URL": server.endpoint})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["EvaluationResults"][0]["EvalDecision"] == "implicitDeny"


# --- errors and authorization ----------------------------------------------------------------

def test_error_paths(iam, raw_iam, account):
    msg = expect_error("ValidationError", raw_iam.simulate_principal_policy,
                       PolicySourceArn=f"arn:aws:iam::{account}:user/x")
    assert "Value null at 'actionNames'" in msg
    msg = expect_error("ValidationError", raw_iam.simulate_custom_policy, ActionNames=["kms:Encrypt"])
    assert "Value null at 'policyInputList'" in msg
    expect_error("InvalidInput", iam.simulate_principal_policy,
                 PolicySourceArn=f"arn:aws:iam::{account}:bogus/thing-or-other", ActionNames=["kms:Encrypt"])
    expect_error("InvalidInput", iam.simulate_principal_policy,
                 PolicySourceArn="not-an-arn-but-long-enough", ActionNames=["kms:Encrypt"])
    msg = expect_error("NoSuchEntity", iam.simulate_principal_policy,
                       PolicySourceArn=f"arn:aws:iam::{account}:role/{uniq('missing')}", ActionNames=["kms:Encrypt"])
    assert "cannot be found" in msg
    expect_error("NoSuchEntity", iam.simulate_principal_policy,
                 PolicySourceArn=f"arn:aws:iam::{account}:user/{uniq('missing')}", ActionNames=["kms:Encrypt"])
    expect_error("MalformedPolicyDocument", iam.simulate_custom_policy,
                 PolicyInputList=['{"Version":"2012-10-17","Statement":[{"Effect":"Maybe"}]}'],
                 ActionNames=["kms:Encrypt"])
    expect_error("MalformedPolicyDocument", iam.simulate_custom_policy,
                 PolicyInputList=[doc(allow("kms:Encrypt"))], ActionNames=["kms:Encrypt"],
                 ResourcePolicy=doc(allow("kms:Encrypt")), CallerArn=f"arn:aws:iam::{account}:user/x")
    expect_error("InvalidInput", iam.simulate_custom_policy, PolicyInputList=[doc(allow("kms:*"))],
                 ActionNames=["kms:*"])
    expect_error("InvalidInput", iam.simulate_custom_policy, PolicyInputList=[doc(allow("kms:*"))],
                 ActionNames=["Encrypt"])
    expect_error("InvalidInput", iam.simulate_custom_policy, PolicyInputList=[doc(allow("kms:*"))],
                 ActionNames=["kms:Encrypt"], ResourceArns=["my-secret"])
    expect_error("ValidationError", raw_iam.simulate_custom_policy, PolicyInputList=[doc(allow("kms:*"))],
                 ActionNames=["kms:Encrypt"], MaxItems=0)


def test_simulating_needs_its_own_permission(server, iam, account):
    user = uniq("u")
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    client = server.client("iam", key["AccessKeyId"], key["SecretAccessKey"])
    target = f"arn:aws:iam::{account}:user/{user}"
    expect_error("AccessDenied", client.simulate_principal_policy, PolicySourceArn=target,
                 ActionNames=["kms:Encrypt"])
    expect_error("AccessDenied", client.simulate_custom_policy, PolicyInputList=[doc(allow("*"))],
                 ActionNames=["kms:Encrypt"])
    iam.put_user_policy(UserName=user, PolicyName="sim", PolicyDocument=doc(
        allow("iam:SimulatePrincipalPolicy", target), allow("iam:SimulateCustomPolicy")))
    r = only(client.simulate_principal_policy(PolicySourceArn=target,
                                              ActionNames=["iam:SimulateCustomPolicy"])["EvaluationResults"])
    assert r["EvalDecision"] == "allowed"
    assert only(client.simulate_custom_policy(PolicyInputList=[doc(allow("*"))],
                                              ActionNames=["kms:Encrypt"])["EvaluationResults"])[
        "EvalDecision"] == "allowed"
    # Another principal's policies stay out of reach.
    expect_error("AccessDenied", client.simulate_principal_policy,
                 PolicySourceArn=f"arn:aws:iam::{account}:user/someone-else", ActionNames=["kms:Encrypt"])
