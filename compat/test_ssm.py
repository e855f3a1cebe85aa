"""Parameter Store with real clients against a real `tresor serve`: boto3 for every
operation and error, the AWS CLI for the commands the Elastic CI Stack runs
(`get-parameter --with-decryption --query Parameter.Value --output text`,
`get-parameters-by-path --recursive` with automatic pagination) and the rest of the surface."""

import json
import uuid
from datetime import datetime, timedelta, timezone

import botocore.exceptions
import pytest

from conftest import REGION, aws_cli


def code(exc: botocore.exceptions.ClientError) -> str:
    return exc.response["Error"]["Code"]


def msg(exc: botocore.exceptions.ClientError) -> str:
    return exc.response["Error"].get("Message", "")


def unique(prefix: str = "/compat") -> str:
    return f"{prefix}/{uuid.uuid4().hex[:8]}"


def raises(expected_code, fn, **kw):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        fn(**kw)
    assert code(e.value) == expected_code, e.value.response
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return e.value


@pytest.fixture(scope="module")
def ssm(server):
    return server.admin("ssm")


@pytest.fixture()
def cli_env(server):
    akid, secret = server.admin_keys()
    return {"AWS_ACCESS_KEY_ID": akid, "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": server.endpoint}


# --- PutParameter / GetParameter ---------------------------------------------------------------

def test_put_get_overwrite_and_selectors(ssm, account, admin_arn):
    name = unique()
    assert ssm.put_parameter(Name=name, Value="v1", Type="String", Description="d")["Version"] == 1
    e = raises("ParameterAlreadyExists", ssm.put_parameter, Name=name, Value="v2", Type="String")
    assert "overwrite" in msg(e)
    out = ssm.put_parameter(Name=name, Value="v2", Overwrite=True)
    assert out == {**out, "Version": 2, "Tier": "Standard"}
    p = ssm.get_parameter(Name=name)["Parameter"]
    assert p["Value"] == "v2" and p["Version"] == 2 and p["Type"] == "String" and p["DataType"] == "text"
    assert p["ARN"] == f"arn:aws:ssm:{REGION}:{account}:parameter{name}"
    assert "Selector" not in p
    v1 = ssm.get_parameter(Name=f"{name}:1")["Parameter"]
    assert (v1["Value"], v1["Selector"], v1["Name"]) == ("v1", ":1", name)
    by_arn = ssm.get_parameter(Name=p["ARN"])["Parameter"]
    assert by_arn["Value"] == "v2"
    raises("ParameterVersionNotFound", ssm.get_parameter, Name=f"{name}:7")
    raises("ValidationException", ssm.get_parameter, Name=f"{name}:1:2")
    meta = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [name]}])["Parameters"][0]
    assert meta["Description"] == "d" and meta["LastModifiedUser"] == admin_arn


def test_missing_parameter_has_no_message(ssm):
    e = raises("ParameterNotFound", ssm.get_parameter, Name=unique())
    assert "Message" not in e.response["Error"] or e.response["Error"]["Message"] == ""


def test_slash_and_no_slash_are_the_same_parameter_and_arn_has_one_slash(ssm, account):
    base = f"flat{uuid.uuid4().hex[:8]}"
    ssm.put_parameter(Name=f"/{base}", Value="x", Type="String")
    p = ssm.get_parameter(Name=base)["Parameter"]
    assert p["Value"] == "x"
    assert p["ARN"] == f"arn:aws:ssm:{REGION}:{account}:parameter/{base}"
    raises("ParameterAlreadyExists", ssm.put_parameter, Name=base, Value="y", Type="String")


@pytest.mark.parametrize("name,expected", [
    ("MyParameter3/L1", "ValidationException"),
    ("/has space", "ValidationException"),
    ("/ssm/x", "ValidationException"),
    ("/aws/x", "AccessDeniedException"),
    ("/aws/reference/secretsmanager/x", "AccessDeniedException"),
    ("/" + "/".join(["l"] * 16), "HierarchyLevelLimitExceededException"),
])
def test_name_rules(ssm, name, expected):
    raises(expected, ssm.put_parameter, Name=name, Value="v", Type="String")


def test_tags_and_overwrite_and_required_type(ssm):
    name = unique()
    raises("ValidationException", ssm.put_parameter, Name=name, Value="v")
    ssm.put_parameter(Name=name, Value="v", Type="String")
    e = raises("ValidationException", ssm.put_parameter, Name=name, Value="v", Overwrite=True,
               Tags=[{"Key": "k", "Value": "v"}])
    assert "tags and overwrite" in msg(e)


def test_allowed_pattern_and_data_types(ssm):
    name = unique()
    ssm.put_parameter(Name=name, Value="123", Type="String", AllowedPattern=r"^\d+$")
    e = raises("ParameterPatternMismatchException", ssm.put_parameter, Name=name, Value="abc", Overwrite=True)
    assert "abc" not in msg(e)
    raises("InvalidAllowedPatternException", ssm.put_parameter, Name=unique(), Value="x", Type="String",
           AllowedPattern="(")
    ami = unique()
    ssm.put_parameter(Name=ami, Value="ami-0123456789abcdef0", Type="String", DataType="aws:ec2:image")
    assert ssm.get_parameter(Name=ami)["Parameter"]["DataType"] == "aws:ec2:image"
    raises("ValidationException", ssm.put_parameter, Name=unique(), Value="bad", Type="String", DataType="aws:ec2:image")


def test_secure_string_with_default_and_customer_key(server, ssm):
    name = unique()
    ssm.put_parameter(Name=name, Value="s3cr3t-value", Type="SecureString")
    hidden = ssm.get_parameter(Name=name)["Parameter"]["Value"]
    assert "s3cr3t" not in hidden
    assert ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"] == "s3cr3t-value"
    meta = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [name]}])["Parameters"][0]
    assert meta["KeyId"] == "alias/aws/ssm"
    kms = server.admin("kms")
    key = kms.create_key()["KeyMetadata"]
    named = unique()
    ssm.put_parameter(Name=named, Value="other", Type="SecureString", KeyId=key["KeyId"])
    assert ssm.get_parameter(Name=named, WithDecryption=True)["Parameter"]["Value"] == "other"
    kms.disable_key(KeyId=key["KeyId"])
    raises("InvalidKeyId", ssm.get_parameter, Name=named, WithDecryption=True)
    raises("InvalidKeyId", ssm.put_parameter, Name=unique(), Value="x", Type="SecureString", KeyId="alias/nope")


def test_tiers_and_policies(ssm):
    name = unique()
    raises("ValidationException", ssm.put_parameter, Name=name, Value="x" * 5000, Type="String")
    assert ssm.put_parameter(Name=name, Value="x" * 5000, Type="String", Tier="Intelligent-Tiering")["Tier"] == "Advanced"
    raises("ValidationException", ssm.put_parameter, Name=name, Value="small", Overwrite=True, Tier="Standard")
    ts = (datetime.now(timezone.utc) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    policies = json.dumps([
        {"Type": "Expiration", "Version": "1.0", "Attributes": {"Timestamp": ts}},
        {"Type": "ExpirationNotification", "Version": "1.0", "Attributes": {"Before": "1", "Unit": "Days"}},
    ])
    pname = unique()
    ssm.put_parameter(Name=pname, Value="v", Type="String", Tier="Advanced", Policies=policies)
    meta = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [pname]}])["Parameters"][0]
    assert [p["PolicyType"] for p in meta["Policies"]] == ["Expiration", "ExpirationNotification"]
    assert meta["Tier"] == "Advanced"
    raises("InvalidPolicyTypeException", ssm.put_parameter, Name=unique(), Value="v", Type="String", Tier="Advanced",
           Policies='[{"Type":"Nope","Version":"1.0","Attributes":{}}]')


# --- versions, labels, history --------------------------------------------------------------------

def test_labels_history_and_version_limit(ssm):
    name = unique()
    ssm.put_parameter(Name=name, Value="0", Type="String")
    for i in range(1, 100):
        ssm.put_parameter(Name=name, Value=str(i), Overwrite=True)
    out = ssm.label_parameter_version(Name=name, ParameterVersion=1, Labels=["keep", "1nvalid"])
    assert out["InvalidLabels"] == ["1nvalid"] and out["ParameterVersion"] == 1
    e = raises("ParameterMaxVersionLimitExceeded", ssm.put_parameter, Name=name, Value="x", Overwrite=True)
    assert "Version 1" in msg(e)
    ssm.label_parameter_version(Name=name, ParameterVersion=60, Labels=["keep"])
    assert ssm.get_parameter(Name=f"{name}:keep")["Parameter"]["Value"] == "59"
    assert ssm.put_parameter(Name=name, Value="x", Overwrite=True)["Version"] == 101
    pages = ssm.get_paginator("get_parameter_history").paginate(Name=name, PaginationConfig={"PageSize": 30})
    history = [h for page in pages for h in page["Parameters"]]
    assert [h["Version"] for h in history] == list(range(2, 102))
    assert [h["Labels"] for h in history if h["Version"] == 60] == [["keep"]]
    un = ssm.unlabel_parameter_version(Name=name, ParameterVersion=60, Labels=["keep", "other"])
    assert un["RemovedLabels"] == ["keep"] and un["InvalidLabels"] == ["other"]
    raises("ParameterVersionNotFound", ssm.label_parameter_version, Name=name, ParameterVersion=1, Labels=["x"])
    raises("ParameterNotFound", ssm.label_parameter_version, Name=unique(), Labels=["x"])
    many = [f"l{i}" for i in range(10)]
    ssm.label_parameter_version(Name=name, ParameterVersion=5, Labels=many)
    raises("ParameterVersionLabelLimitExceeded", ssm.label_parameter_version, Name=name, ParameterVersion=5,
           Labels=["l10"])


# --- GetParameters, GetParametersByPath, DescribeParameters -----------------------------------------

def test_get_parameters_reports_invalid_names(ssm):
    base = unique()
    ssm.put_parameter(Name=f"{base}/a", Value="1", Type="String")
    ssm.put_parameter(Name=f"{base}/b", Value="2", Type="SecureString")
    out = ssm.get_parameters(Names=[f"{base}/b", f"{base}/a", f"{base}/nope", f"{base}/a:9"], WithDecryption=True)
    assert sorted(p["Value"] for p in out["Parameters"]) == ["1", "2"]
    assert out["InvalidParameters"] == [f"{base}/nope", f"{base}/a:9"]


def test_by_path_recursive_filters_and_cli_pagination(ssm, cli_env):
    base = unique("/bypath")
    for n in ["a", "b", "c/d", "c/e/f"]:
        ssm.put_parameter(Name=f"{base}/{n}", Value=f"v-{n}", Type="SecureString" if n == "b" else "String")
    one = ssm.get_parameters_by_path(Path=base)["Parameters"]
    assert sorted(p["Name"] for p in one) == [f"{base}/a", f"{base}/b"]
    pages = ssm.get_paginator("get_parameters_by_path").paginate(
        Path=base, Recursive=True, WithDecryption=True, PaginationConfig={"PageSize": 1})
    values = sorted(p["Value"] for page in pages for p in page["Parameters"])
    assert values == ["v-a", "v-b", "v-c/d", "v-c/e/f"]
    typed = ssm.get_parameters_by_path(Path=base, Recursive=True,
                                       ParameterFilters=[{"Key": "Type", "Values": ["SecureString"]}])
    assert [p["Name"] for p in typed["Parameters"]] == [f"{base}/b"]
    raises("InvalidFilterKey", ssm.get_parameters_by_path, Path=base, ParameterFilters=[{"Key": "Name", "Values": ["x"]}])
    raises("InvalidFilterOption", ssm.get_parameters_by_path, Path=base,
           ParameterFilters=[{"Key": "Label", "Option": "BeginsWith", "Values": ["x"]}])
    raises("InvalidNextToken", ssm.get_parameters_by_path, Path=base, NextToken="not-a-token")
    # bk-fetch.sh's call: the CLI paginates by itself with a small page size.
    r = aws_cli("ssm", "get-parameters-by-path", "--path", base, "--recursive", "--with-decryption",
                "--page-size", "1", "--query", "Parameters[*].{Name: Name, Value: Value}", "--output", "json",
                env=cli_env)
    assert r.returncode == 0, r.stderr
    assert sorted(x["Value"] for x in json.loads(r.stdout)) == ["v-a", "v-b", "v-c/d", "v-c/e/f"]


def test_describe_parameters_filters_and_errors(ssm):
    base = unique("/describe")
    ssm.put_parameter(Name=f"{base}/x", Value="1", Type="String", Tags=[{"Key": "team", "Value": "ci"}])
    ssm.put_parameter(Name=f"{base}/y/z", Value="1", Type="StringList")
    def names(**kw):
        return sorted(p["Name"] for page in ssm.get_paginator("describe_parameters").paginate(**kw)
                      for p in page["Parameters"])
    assert names(ParameterFilters=[{"Key": "Path", "Values": [base]}]) == [f"{base}/x"]
    assert names(ParameterFilters=[{"Key": "Path", "Option": "Recursive", "Values": [base]}]) == [f"{base}/x", f"{base}/y/z"]
    assert names(ParameterFilters=[{"Key": "Name", "Option": "BeginsWith", "Values": [f"{base}/y"]}]) == [f"{base}/y/z"]
    assert names(ParameterFilters=[{"Key": "tag:team", "Values": ["ci"]}, {"Key": "Path", "Values": [base]}]) == [f"{base}/x"]
    assert names(Filters=[{"Key": "Name", "Values": [f"{base}/y"]}]) == [f"{base}/y/z"]
    e = raises("ValidationException", ssm.describe_parameters, Filters=[{"Key": "Type", "Values": ["String"]}],
               ParameterFilters=[{"Key": "Type", "Values": ["String"]}])
    assert msg(e) == "You can use either Filters or ParameterFilters in a single request."
    raises("InvalidFilterKey", ssm.describe_parameters, ParameterFilters=[{"Key": "Label", "Values": ["x"]}])
    raises("InvalidFilterOption", ssm.describe_parameters,
           ParameterFilters=[{"Key": "Path", "Option": "Deep", "Values": [base]}])
    raises("InvalidFilterValue", ssm.describe_parameters, ParameterFilters=[{"Key": "Type", "Values": ["Nope"]}])


# --- tags and deletes ------------------------------------------------------------------------------

def test_tags(ssm):
    name = unique()
    ssm.put_parameter(Name=name, Value="v", Type="String", Tags=[{"Key": "a", "Value": "1"}])
    ssm.add_tags_to_resource(ResourceType="Parameter", ResourceId=name, Tags=[{"Key": "a", "Value": "2"}, {"Key": "b", "Value": "3"}])
    ssm.remove_tags_from_resource(ResourceType="Parameter", ResourceId=name, TagKeys=["b"])
    assert ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=name)["TagList"] == [{"Key": "a", "Value": "2"}]
    raises("InvalidResourceId", ssm.list_tags_for_resource, ResourceType="Parameter", ResourceId=unique())
    raises("InvalidResourceType", ssm.list_tags_for_resource, ResourceType="Document", ResourceId=name)
    raises("TooManyTagsError", ssm.add_tags_to_resource, ResourceType="Parameter", ResourceId=name,
           Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)])


def test_delete_parameter_and_parameters(ssm):
    a, b = unique(), unique()
    ssm.put_parameter(Name=a, Value="v", Type="String")
    ssm.put_parameter(Name=b, Value="v", Type="String")
    ssm.delete_parameter(Name=a)
    raises("ParameterNotFound", ssm.delete_parameter, Name=a)
    out = ssm.delete_parameters(Names=[b, a])
    assert out["DeletedParameters"] == [b] and out["InvalidParameters"] == [a]
    raises("AccessDeniedException", ssm.delete_parameter, Name="/aws/reference/secretsmanager/x")


# --- the AWS CLI ------------------------------------------------------------------------------------

def test_cli_round_trip(ssm, cli_env):
    name = unique("/cli")
    r = aws_cli("ssm", "put-parameter", "--name", name, "--value", "cli-secret", "--type", "SecureString",
                "--output", "json", env=cli_env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["Version"] == 1
    r = aws_cli("ssm", "get-parameter", "--name", name, "--with-decryption", "--query", "Parameter.Value",
                "--output", "text", env=cli_env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "cli-secret\n"
    r = aws_cli("ssm", "get-parameter", "--name", unique("/cli"), env=cli_env)
    assert r.returncode != 0
    assert "An error occurred (ParameterNotFound) when calling the GetParameter operation: " in r.stderr
    r = aws_cli("ssm", "label-parameter-version", "--name", name, "--labels", "prod", "--output", "json", env=cli_env)
    assert r.returncode == 0, r.stderr
    r = aws_cli("ssm", "get-parameter-history", "--name", name, "--output", "json", env=cli_env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["Parameters"][0]["Labels"] == ["prod"]
    r = aws_cli("ssm", "describe-parameters", "--parameter-filters", f"Key=Name,Values={name}", "--output", "json",
                env=cli_env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["Parameters"][0]["Type"] == "SecureString"
    r = aws_cli("ssm", "add-tags-to-resource", "--resource-type", "Parameter", "--resource-id", name,
                "--tags", "Key=team,Value=ci", env=cli_env)
    assert r.returncode == 0, r.stderr
    r = aws_cli("ssm", "list-tags-for-resource", "--resource-type", "Parameter", "--resource-id", name,
                "--output", "json", env=cli_env)
    assert json.loads(r.stdout)["TagList"] == [{"Key": "team", "Value": "ci"}]
    r = aws_cli("ssm", "delete-parameter", "--name", name, env=cli_env)
    assert r.returncode == 0, r.stderr


# --- the reference path (the full chain is in test_e2e_ci_boot.py) ---------------------------------

def test_reference_path_basics(server, ssm, account):
    sm = server.admin("secretsmanager")
    sid = f"ref/{uuid.uuid4().hex[:8]}"
    created = sm.create_secret(Name=sid, SecretString="first")
    second = sm.put_secret_value(SecretId=sid, SecretString="second")
    ref = f"/aws/reference/secretsmanager/{sid}"
    e = raises("ValidationException", ssm.get_parameter, Name=ref)
    assert msg(e) == "WithDecryption flag must be True for retrieving a Secret Manager secret."
    e = raises("ValidationException", ssm.get_parameter, Name=f"/aws/reference/secretsmanager/nope-{uuid.uuid4().hex}")
    assert "WithDecryption" in msg(e)
    p = ssm.get_parameter(Name=ref, WithDecryption=True)["Parameter"]
    assert (p["Name"], p["Type"], p["Value"], p["Version"]) == (ref, "SecureString", "second", 0)
    assert p["ARN"] == created["ARN"]
    assert "Selector" not in p and "DataType" not in p
    assert json.loads(p["SourceResult"])["VersionId"] == second["VersionId"]
    prev = ssm.get_parameter(Name=f"{ref}:AWSPREVIOUS", WithDecryption=True)["Parameter"]
    assert (prev["Value"], prev["Selector"], prev["Name"]) == ("first", ":AWSPREVIOUS", ref)
    by_id = ssm.get_parameter(Name=f"{ref}:{created['VersionId']}", WithDecryption=True)["Parameter"]
    assert by_id["Value"] == "first"
    # By the reference parameter's ARN.
    by_arn = ssm.get_parameter(Name=f"arn:aws:ssm:{REGION}:{account}:parameter{ref}", WithDecryption=True)["Parameter"]
    assert (by_arn["Name"], by_arn["Value"]) == (ref, "second")
    raises("ParameterNotFound", ssm.get_parameter_history, Name=ref)
    e = raises("ValidationException", ssm.get_parameter, Name=f"{ref}:a:b", WithDecryption=True)
    assert "label  <name>" in msg(e)
    e = raises("ParameterNotFound", ssm.get_parameter, Name=f"{ref}:NOLABEL", WithDecryption=True)
    assert "when referencing Secrets Manager" in msg(e)
    out = ssm.get_parameters(Names=[ref, f"{ref}:NOLABEL", "/aws/reference/secretsmanager/x:"], WithDecryption=True)
    assert [p["Value"] for p in out["Parameters"]] == ["second"]
    assert out["InvalidParameters"] == [f"{ref}:NOLABEL", "/aws/reference/secretsmanager/x:"]
    raises("ValidationException", ssm.get_parameters_by_path, Path="/aws/reference/secretsmanager")
    raises("AccessDeniedException", ssm.label_parameter_version, Name=ref, Labels=["x"])
    sm.delete_secret(SecretId=sid)
    e = raises("ValidationException", ssm.get_parameter, Name=ref, WithDecryption=True)
    assert msg(e) == "Invalid Request to Secrets Manager"
