"""Secrets Manager multi-Region replication with boto3 and the AWS CLI against one
`tresor serve` that serves every region: replicas made at creation and later, each under its
own region's KMS key, read-only, kept up to date by the replication worker, removed and
promoted; and the CI fleet's story in two regions (an instance role in region B boots from
region B's reference path with region B's key, and reads the rotated token after a rotation
of the primary).

AWS's texts used here: `Operation not permitted on a replica secret. Call must be made in
primary secret's region.` and `You can't delete secret <arn> that still has replica regions
[<regions>].`, both InvalidParameterException (observed behavior)."""

import json
import shutil
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from conftest import aws_cli, start_server, uniq
from test_e2e_ci_boot import policy
from test_rotation import venv_path, wait_for, zip_function

A, B, C = "us-east-1", "us-west-2", "eu-west-1"
REPLICA_WRITE = "Operation not permitted on a replica secret. Call must be made in primary secret's region."


class World:
    def __init__(self, server, tmp: Path):
        self.server = server
        self.tmp = tmp
        self.sm = {r: server.admin("secretsmanager", region=r) for r in (A, B, C)}
        self.kms = {r: server.admin("kms", region=r) for r in (A, B, C)}
        self.ssm = {r: server.admin("ssm", region=r) for r in (A, B, C)}
        self.iam = server.admin("iam")
        akid, secret = server.admin_keys()
        self.cli_env = {"AWS_ACCESS_KEY_ID": akid, "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": A}
        ident = server.admin("sts").get_caller_identity()
        self.account, self.admin_arn = ident["Account"], ident["Arn"]

    def cli(self, *args, region=A, check=True):
        r = aws_cli("--endpoint-url", self.server.endpoint, "--region", region, *args, "--output", "json",
                    env=self.cli_env)
        if check:
            assert r.returncode == 0, f"aws {' '.join(args)}: {r.stderr}"
        return json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else r

    def status(self, secret, region):
        meta = self.sm[A].describe_secret(SecretId=secret)
        return next((s for s in meta.get("ReplicationStatus", []) if s["Region"] == region), None)

    def in_sync(self, secret, region, timeout=30.0):
        return wait_for(lambda: (s := self.status(secret, region)) and s["Status"] == "InSync" and s,
                        timeout=timeout, what=f"{region} InSync")

    def replica_value(self, name, region=B, **kw):
        return self.sm[region].get_secret_value(SecretId=name, **kw)


@pytest.fixture(scope="module")
def world():
    d = Path(tempfile.mkdtemp(prefix="tresor-replication-"))
    server = start_server(data_dir=d / "data", env={"PATH": venv_path()})
    yield World(server, d)
    server.stop()
    shutil.rmtree(d, ignore_errors=True)


def test_replicate_at_creation_with_boto3(world):
    name = uniq("repl/created")
    out = world.sm[A].create_secret(Name=name, SecretString="v1", Description="d",
                                    Tags=[{"Key": "team", "Value": "ci"}],
                                    AddReplicaRegions=[{"Region": B}])
    assert [s["Region"] for s in out["ReplicationStatus"]] == [B]
    assert out["ReplicationStatus"][0]["Status"] in ("InProgress", "InSync")
    assert out["ReplicationStatus"][0]["KmsKeyId"] == "alias/aws/secretsmanager"
    st = world.in_sync(out["ARN"], B)
    assert st["StatusMessage"] == "Replication succeeded"

    replica = world.sm[B].describe_secret(SecretId=name)
    assert replica["ARN"] == out["ARN"].replace(f":{A}:", f":{B}:")
    assert replica["PrimaryRegion"] == A
    assert replica["Description"] == "d"
    assert replica["Tags"] == [{"Key": "team", "Value": "ci"}]
    primary = world.sm[A].describe_secret(SecretId=name)
    assert primary["PrimaryRegion"] == A
    assert replica["VersionIdsToStages"] == primary["VersionIdsToStages"]
    value = world.replica_value(name)
    assert value["SecretString"] == "v1"
    assert value["ARN"] == replica["ARN"]
    assert value["VersionId"] == out["VersionId"]
    # LastAccessedDate of the replica shows in the primary's status once read there.
    wait_for(lambda: "LastAccessedDate" in world.status(name, B), what="replica LastAccessedDate")
    # ListSecrets in B shows the replica with its primary region; the filter finds it.
    listed = world.sm[B].list_secrets(Filters=[{"Key": "primary-region", "Values": [A]},
                                               {"Key": "name", "Values": [name]}])["SecretList"]
    assert [s["Name"] for s in listed] == [name] and listed[0]["PrimaryRegion"] == A


def test_replicate_later_with_the_cli_under_the_regions_key(world):
    name = uniq("repl/later")
    arn = world.cli("secretsmanager", "create-secret", "--name", name, "--secret-string", "first")["ARN"]
    key_c = world.kms[C].create_key(Description="region C key")["KeyMetadata"]
    out = world.cli("secretsmanager", "replicate-secret-to-regions", "--secret-id", name,
                    "--add-replica-regions", f"Region={C},KmsKeyId={key_c['KeyId']}")
    assert out["ARN"] == arn
    assert out["ReplicationStatus"][0]["Region"] == C
    assert out["ReplicationStatus"][0]["KmsKeyId"] == key_c["KeyId"]
    world.in_sync(arn, C)
    replica = world.cli("secretsmanager", "describe-secret", "--secret-id", name, region=C)
    assert replica["KmsKeyId"] == key_c["KeyId"] and replica["PrimaryRegion"] == A
    got = world.cli("secretsmanager", "get-secret-value", "--secret-id", name, region=C)
    assert got["SecretString"] == "first"
    versions = world.sm[C].list_secret_version_ids(SecretId=name)["Versions"]
    assert versions[0]["KmsKeyIds"] == [key_c["Arn"]], "the replica's value is under region C's key"
    assert world.sm[A].list_secret_version_ids(SecretId=name)["Versions"][0]["KmsKeyIds"] != [key_c["Arn"]]


def test_a_disabled_region_key_makes_only_the_replica_unreadable(world):
    name = uniq("repl/key")
    key_b = world.kms[B].create_key()["KeyMetadata"]["KeyId"]
    arn = world.sm[A].create_secret(Name=name, SecretString="token-1",
                                    AddReplicaRegions=[{"Region": B, "KmsKeyId": key_b}])["ARN"]
    world.in_sync(arn, B)
    world.kms[B].disable_key(KeyId=key_b)
    with pytest.raises(ClientError) as e:
        world.replica_value(name)
    assert e.value.response["Error"]["Code"] == "DecryptionFailure"
    assert world.sm[A].get_secret_value(SecretId=name)["SecretString"] == "token-1"
    # A change of the primary cannot reach B now: Failed, with the reason; the replica keeps
    # its state (no version it cannot decrypt).
    world.sm[A].put_secret_value(SecretId=name, SecretString="token-2")
    st = wait_for(lambda: (s := world.status(arn, B)) and s["Status"] == "Failed" and s, what="Failed")
    assert st["StatusMessage"].startswith("Replication failed: ")
    assert "KMS key" in st["StatusMessage"], st
    assert len(world.sm[B].describe_secret(SecretId=name)["VersionIdsToStages"]) == 1
    # The key back: the replica catches up by itself.
    assert _replication_metrics(world, arn)["tresor_replication_in_sync"] == 0
    world.kms[B].enable_key(KeyId=key_b)
    world.in_sync(arn, B)
    assert world.replica_value(name)["SecretString"] == "token-2"
    # /metrics shows the replica's status, its lag and the failures on the way.
    m = _replication_metrics(world, arn)
    assert m["tresor_replication_in_sync"] == 1
    assert m["tresor_replication_failures"] >= 1 and m["tresor_replication_syncs"] >= 2
    assert 0 <= m["tresor_replication_lag_seconds"] <= m["tresor_replication_max_lag_seconds"]
    assert m["tresor_replication_pending_seconds"] == 0
    # The audit log has the failure episode and the catch-ups as service events.
    trail = world.server.admin("cloudtrail", region=A)
    found = trail.lookup_events(LookupAttributes=[{"AttributeKey": "ResourceName", "AttributeValue": arn}])["Events"]
    events = [json.loads(e["CloudTrailEvent"]) for e in found]
    failed = [e for e in events if e["eventName"] == "ReplicationFailed"]
    succeeded = [e for e in events if e["eventName"] == "ReplicationSucceeded"]
    assert len(failed) == 1, [e["eventName"] for e in events]  # one per episode, not per retry
    assert len(succeeded) >= 2
    for e in failed + succeeded:
        assert e["eventType"] == "AwsServiceEvent" and e["userIdentity"]["type"] == "AWSService"
        assert e["additionalEventData"]["replicaRegion"] == B
    assert "KMS key" in failed[0]["additionalEventData"]["statusMessage"]


def _replication_metrics(world, arn) -> dict:
    """The replication samples of /metrics for the replica of `arn` in region B, of every node
    (on the two-node pass each node counts the runs it made): counters summed, gauges the
    largest — except tresor_replication_in_sync, the smallest, so that every node must say 1."""
    out = {}
    for endpoint in world.server.node_endpoints:
        with urllib.request.urlopen(endpoint + "/metrics", timeout=10) as r:
            text = r.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.labels.get("secret") != arn or sample.labels.get("region") != B:
                    continue
                name = sample.name.removesuffix("_total")
                if name not in out:
                    out[name] = sample.value
                elif family.type == "counter":
                    out[name] += sample.value
                elif name == "tresor_replication_in_sync":
                    out[name] = min(out[name], sample.value)
                else:
                    out[name] = max(out[name], sample.value)
    return out


def test_a_key_the_principal_may_not_use_fails_replication_with_kms_access_denied(world):
    name = uniq("repl/denied")
    me = f"arn:aws:iam::{world.account}:root"
    # A key whose policy lets nobody but the account root administer it (no use).
    key_b = world.kms[B].create_key(Policy=policy({
        "Effect": "Allow", "Principal": {"AWS": me},
        "Action": ["kms:DescribeKey", "kms:EnableKey", "kms:DisableKey", "kms:PutKeyPolicy", "kms:GetKeyPolicy"],
        "Resource": "*"}), BypassPolicyLockoutSafetyCheck=True)["KeyMetadata"]["KeyId"]
    user, akid, secret = _user(world, {"Effect": "Allow", "Action": ["secretsmanager:*", "kms:*"], "Resource": "*"})
    sm = world.server.client("secretsmanager", akid, secret, region=A)
    arn = sm.create_secret(Name=name, SecretString="x", AddReplicaRegions=[{"Region": B, "KmsKeyId": key_b}])["ARN"]
    st = wait_for(lambda: (s := world.status(arn, B)) and s["Status"] == "Failed" and s, what="Failed")
    assert st["StatusMessage"] == "Replication failed: Access to KMS is not allowed"
    with pytest.raises(ClientError) as e:
        world.sm[B].describe_secret(SecretId=name)
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"


def _user(world, statement):
    name = uniq("repl-user")
    world.iam.create_user(UserName=name)
    world.iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=policy(statement))
    key = world.iam.create_access_key(UserName=name)["AccessKey"]
    # The new key must be usable before the first call.
    return name, key["AccessKeyId"], key["SecretAccessKey"]


@pytest.fixture(scope="module")
def replicated(world):
    name = uniq("repl/ro")
    arn = world.sm[A].create_secret(Name=name, SecretString="v", AddReplicaRegions=[{"Region": B}])["ARN"]
    world.in_sync(arn, B)
    return name, arn


WRITES = [
    ("put_secret_value", {"SecretString": "other"}),
    ("update_secret", {"Description": "other"}),
    ("update_secret_version_stage", {"VersionStage": "X", "MoveToVersionId": "00000000-0000-0000-0000-000000000000"}),
    ("delete_secret", {"ForceDeleteWithoutRecovery": True}),
    ("restore_secret", {}),
    ("put_resource_policy", {"ResourcePolicy": policy({"Effect": "Allow", "Principal": {"AWS": "*"},
                                                       "Action": "secretsmanager:GetSecretValue", "Resource": "*"})}),
    ("delete_resource_policy", {}),
    ("tag_resource", {"Tags": [{"Key": "k", "Value": "v"}]}),
    ("untag_resource", {"TagKeys": ["k"]}),
    ("rotate_secret", {"RotationLambdaARN": f"arn:aws:lambda:{B}:123456789012:function:f"}),
    ("cancel_rotate_secret", {}),
    ("replicate_secret_to_regions", {"AddReplicaRegions": [{"Region": C}]}),
    ("remove_regions_from_replication", {"RemoveReplicaRegions": [C]}),
]


@pytest.mark.parametrize("op,args", WRITES, ids=[w[0] for w in WRITES])
def test_every_write_on_a_replica_is_refused(world, replicated, op, args):
    name, _ = replicated
    with pytest.raises(ClientError) as e:
        getattr(world.sm[B], op)(SecretId=name, **args)
    err = e.value.response
    assert err["Error"]["Code"] == "InvalidParameterException", err
    assert err["Error"]["Message"] == REPLICA_WRITE
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_replica_writes_are_refused_through_the_cli_too(world, replicated):
    name, _ = replicated
    r = world.cli("secretsmanager", "put-secret-value", "--secret-id", name, "--secret-string", "x",
                  region=B, check=False)
    assert r.returncode != 0
    assert "InvalidParameterException" in r.stderr and REPLICA_WRITE in r.stderr


def test_a_primary_with_replicas_cannot_be_deleted(world, replicated):
    name, arn = replicated
    with pytest.raises(ClientError) as e:
        world.sm[A].delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    assert e.value.response["Error"]["Code"] == "InvalidParameterException"
    assert e.value.response["Error"]["Message"] == f"You can't delete secret {arn} that still has replica regions [{B}]."


def test_every_kind_of_primary_change_reaches_the_replica(world):
    name = uniq("repl/changes")
    arn = world.sm[A].create_secret(Name=name, SecretString="one", AddReplicaRegions=[{"Region": B}])["ARN"]
    world.in_sync(arn, B)
    v2 = world.sm[A].put_secret_value(SecretId=name, SecretString="two")["VersionId"]
    world.sm[A].update_secret(SecretId=name, Description="changed")
    world.sm[A].tag_resource(SecretId=name, Tags=[{"Key": "env", "Value": "prod"}])
    world.sm[A].update_secret_version_stage(SecretId=name, VersionStage="MINE", MoveToVersionId=v2)
    doc = policy({"Effect": "Allow", "Principal": {"AWS": world.admin_arn},
                  "Action": "secretsmanager:GetSecretValue", "Resource": "*"})
    world.sm[A].put_resource_policy(SecretId=name, ResourcePolicy=doc)

    def caught_up():
        r = world.sm[B].describe_secret(SecretId=name)
        return r.get("Description") == "changed" and r.get("Tags") and "MINE" in r["VersionIdsToStages"].get(v2, []) and r
    replica = wait_for(caught_up, what="all changes on the replica")
    assert replica["VersionIdsToStages"] == world.sm[A].describe_secret(SecretId=name)["VersionIdsToStages"]
    assert replica["Tags"] == [{"Key": "env", "Value": "prod"}]
    got = world.replica_value(name)
    assert (got["SecretString"], got["VersionId"]) == ("two", v2)
    assert world.replica_value(name, VersionStage="AWSPREVIOUS")["SecretString"] == "one"
    assert json.loads(wait_for(lambda: world.sm[B].get_resource_policy(SecretId=name).get("ResourcePolicy"),
                               what="policy"))["Statement"][0]["Principal"]["AWS"] == world.admin_arn
    world.sm[A].delete_resource_policy(SecretId=name)
    wait_for(lambda: "ResourcePolicy" not in world.sm[B].get_resource_policy(SecretId=name), what="policy gone")


def test_remove_deletes_the_replica_and_stop_promotes_it(world):
    name = uniq("repl/remove")
    arn = world.sm[A].create_secret(Name=name, SecretString="v",
                                    AddReplicaRegions=[{"Region": B}, {"Region": C}])["ARN"]
    world.in_sync(arn, B)
    world.in_sync(arn, C)
    out = world.cli("secretsmanager", "remove-regions-from-replication", "--secret-id", name,
                    "--remove-replica-regions", C)
    assert out["ARN"] == arn and [s["Region"] for s in out["ReplicationStatus"]] == [B]
    with pytest.raises(ClientError) as e:
        world.sm[C].describe_secret(SecretId=name)
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        world.sm[A].remove_regions_from_replication(SecretId=name, RemoveReplicaRegions=[C])
    assert e.value.response["Error"]["Code"] == "InvalidParameterException"

    # Promote B: a standalone secret in B with the same ARN, writable there; the primary
    # forgets B and can be deleted.
    replica_arn = arn.replace(f":{A}:", f":{B}:")
    out = world.cli("secretsmanager", "stop-replication-to-replica", "--secret-id", name, region=B)
    assert out["ARN"] == replica_arn
    promoted = world.sm[B].describe_secret(SecretId=name)
    assert promoted["PrimaryRegion"] == B
    world.sm[B].put_secret_value(SecretId=name, SecretString="independent")
    assert "ReplicationStatus" not in world.sm[A].describe_secret(SecretId=name)
    world.sm[A].put_secret_value(SecretId=name, SecretString="primary-only")
    time.sleep(0.5)
    assert world.replica_value(name)["SecretString"] == "independent"
    with pytest.raises(ClientError) as e:
        world.sm[B].stop_replication_to_replica(SecretId=name)
    assert e.value.response["Error"]["Code"] == "InvalidRequestException"
    world.sm[A].delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)


def test_invalid_regions_and_a_name_taken_in_the_replica_region(world):
    name = uniq("repl/taken")
    with pytest.raises(ClientError) as e:
        world.sm[A].create_secret(Name=name, SecretString="v", AddReplicaRegions=[{"Region": A}])
    assert e.value.response["Error"]["Code"] == "InvalidParameterException"
    assert e.value.response["Error"]["Message"] == "Invalid replica region."
    with pytest.raises(ClientError) as e:
        world.sm[A].create_secret(Name=name, SecretString="v", AddReplicaRegions=[{"Region": "Mars"}])
    assert e.value.response["Error"]["Code"] == "ValidationException"
    # Nothing was created by the refused calls.
    with pytest.raises(ClientError):
        world.sm[A].describe_secret(SecretId=name)

    world.sm[B].create_secret(Name=name, SecretString="already here")
    arn = world.sm[A].create_secret(Name=name, SecretString="primary", AddReplicaRegions=[{"Region": B}])["ARN"]
    st = wait_for(lambda: (s := world.status(arn, B)) and s["Status"] == "Failed" and s, what="Failed")
    assert st["StatusMessage"] == f"Replication failed: Secret name {name} already exists in region {B}."
    assert world.replica_value(name)["SecretString"] == "already here"
    # Retrying with ForceOverwriteReplicaSecret replaces it.
    out = world.sm[A].replicate_secret_to_regions(SecretId=name, AddReplicaRegions=[{"Region": B}],
                                                  ForceOverwriteReplicaSecret=True)
    assert out["ReplicationStatus"][0]["Status"] == "InProgress"
    world.in_sync(arn, B)
    assert world.replica_value(name)["SecretString"] == "primary"
    assert world.sm[B].describe_secret(SecretId=name)["PrimaryRegion"] == A


def test_replication_needs_its_own_permission(world):
    _, akid, secret = _user(world, {"Effect": "Allow", "Action": "secretsmanager:CreateSecret", "Resource": "*"})
    sm = world.server.client("secretsmanager", akid, secret, region=A)
    with pytest.raises(ClientError) as e:
        sm.create_secret(Name=uniq("repl/perm"), SecretString="v", AddReplicaRegions=[{"Region": B}])
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "secretsmanager:ReplicateSecretToRegions" in e.value.response["Error"]["Message"]


# ---------------------------------------------------------------------------------------
# The seed's story in two regions


TOKEN = "bkua_" + uuid.uuid4().hex


def test_instance_role_in_region_b_boots_from_region_b_and_reads_the_rotated_token(world):
    w = world
    suffix = uuid.uuid4().hex[:6]
    key_a = w.kms[A].create_key(Description="agent token, region A")["KeyMetadata"]["KeyId"]
    key_b = w.kms[B].create_key(Description="agent token, region B")["KeyMetadata"]["KeyId"]
    secret_id = f"buildkite/agent-token-{suffix}"
    arn = w.cli("secretsmanager", "create-secret", "--name", secret_id, "--kms-key-id", key_a,
                "--secret-string", TOKEN, "--add-replica-regions", f"Region={B},KmsKeyId={key_b}")["ARN"]
    path = f"/aws/reference/secretsmanager/{secret_id}"
    # Region B's instance role: ssm:GetParameter in B, kms:Decrypt on B's key, nothing else.
    trust = policy({"Effect": "Allow", "Principal": {"AWS": w.admin_arn}, "Action": "sts:AssumeRole"})
    role = w.cli("iam", "create-role", "--role-name", f"buildkite-{B}-Role-{suffix}",
                 "--assume-role-policy-document", trust)["Role"]["Arn"]
    for pname, stmt in [
        ("ReadAgentToken", {"Effect": "Allow", "Action": "ssm:GetParameter",
                            "Resource": f"arn:aws:ssm:{B}:{w.account}:parameter{path}"}),
        ("DecryptAgentToken", {"Effect": "Allow", "Action": "kms:Decrypt",
                               "Resource": f"arn:aws:kms:{B}:{w.account}:key/{key_b}"}),
    ]:
        w.cli("iam", "put-role-policy", "--role-name", role.split("/")[-1], "--policy-name", pname,
              "--policy-document", policy(stmt))
    # The resource policy on the primary, replicated to B.
    w.cli("secretsmanager", "put-resource-policy", "--secret-id", arn, "--resource-policy",
          policy({"Effect": "Allow", "Principal": {"AWS": [role]}, "Action": "secretsmanager:GetSecretValue",
                  "Resource": "*"}))
    wait_for(lambda: w.sm[B].get_resource_policy(SecretId=secret_id).get("ResourcePolicy"), what="policy in B")

    creds = w.server.assume(role, "i-0123456789abcdef0")
    env = {"AWS_ACCESS_KEY_ID": creds["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
           "AWS_SESSION_TOKEN": creds["SessionToken"], "AWS_REGION": B, "AWS_DEFAULT_REGION": B,
           "AWS_ENDPOINT_URL": w.server.endpoint}

    def boot(region=B):
        return aws_cli("ssm", "get-parameter", "--name", path, "--with-decryption", "--query", "Parameter.Value",
                       "--output", "text", env={**env, "AWS_REGION": region, "AWS_DEFAULT_REGION": region})

    r = boot()
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == TOKEN
    # The role's permissions are region B's: region A refuses it.
    r = boot(A)
    assert r.returncode != 0 and TOKEN not in r.stdout

    # Rotation on the primary, with a rotation function deployed by the AWS CLI.
    fn = _rotation_function(w)
    out = w.cli("secretsmanager", "rotate-secret", "--secret-id", arn, "--rotation-lambda-arn", fn,
                "--rotation-rules", "AutomaticallyAfterDays=30")
    token = out["VersionId"]
    wait_for(lambda: "AWSCURRENT" in w.sm[A].describe_secret(SecretId=arn)["VersionIdsToStages"].get(token, []),
             timeout=90, what="the rotation to finish")
    new_token = w.sm[A].get_secret_value(SecretId=arn)["SecretString"]
    assert new_token != TOKEN
    read = wait_for(lambda: (r := boot()).returncode == 0 and r.stdout.strip() == new_token and r,
                    what="the rotated token in region B")
    assert read.stdout.strip() == new_token
    stages_b = w.sm[B].describe_secret(SecretId=secret_id)["VersionIdsToStages"]
    assert "AWSCURRENT" in stages_b[token]


def _rotation_function(w) -> str:
    name = uniq("rotator")
    zip_path = w.tmp / f"{name}.zip"
    zip_path.write_bytes(zip_function())
    trust = policy({"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"})
    role = w.iam.create_role(RoleName=uniq("rotation-role"), AssumeRolePolicyDocument=trust)["Role"]
    w.iam.put_role_policy(RoleName=role["RoleName"], PolicyName="rotate", PolicyDocument=policy({
        "Effect": "Allow", "Action": ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue",
                                      "secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage",
                                      "secretsmanager:GetRandomPassword", "kms:Decrypt", "kms:GenerateDataKey"],
        "Resource": "*"}))
    out = w.cli("lambda", "create-function", "--function-name", name, "--runtime", "python3.12",
                "--handler", "rotate.lambda_handler", "--role", role["Arn"], "--timeout", "90",
                "--zip-file", f"fileb://{zip_path}",
                "--environment", json.dumps({"Variables": {"EXCLUDE_CHARACTERS": "/@\"'\\"}}))
    w.cli("lambda", "add-permission", "--function-name", name, "--statement-id", "SecretsManagerAccess",
          "--action", "lambda:InvokeFunction", "--principal", "secretsmanager.amazonaws.com")
    return out["FunctionArn"]
