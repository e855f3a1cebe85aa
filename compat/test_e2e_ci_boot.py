"""The CI fleet's single-region story, end to end, with only the AWS CLI and boto3 against
`tresor serve`: the Buildkite Elastic CI Stack's boot read of its agent token through
`/aws/reference/secretsmanager/<id>` (AWS Systems Manager User Guide, "Referencing AWS Secrets
Manager secrets from Parameter Store parameters").

The administrator stores the Buildkite agent token in Secrets Manager under a customer KMS key
and grants the Elastic CI Stack's instance role and the scaling Lambda's role in the secret's
resource policy. The roles carry exactly the stack template's identity policies:
`ReadAgentToken` (ssm:GetParameter on `arn:aws:ssm:<region>:<account>:parameter<path>`) and
`DecryptAgentToken` (kms:Decrypt on `arn:aws:kms:<region>:<account>:key/<key id>`), and no
secretsmanager permission at all. An instance boots with the AWS CLI v2 command of
`bk-install-elastic-stack.sh`, its region from the environment and its credentials from a
role profile; the scaler reads the same parameter with boto3 (as `scaler/ssm.go` does with
aws-sdk-go-v2). Then every way the chain can break, each with AWS's error, and the boot command
failing without printing a token."""

import json
import uuid
from pathlib import Path

import botocore.exceptions
import pytest

from conftest import REGION, aws_cli

TOKEN = "bkua_" + uuid.uuid4().hex  # what the Buildkite agent would register with


def policy(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


class World:
    """Everything the administrator set up, and how to boot as a role."""

    def __init__(self, server, tmp: Path):
        self.server = server
        self.tmp = tmp
        self.suffix = uuid.uuid4().hex[:6]
        akid, secret = server.admin_keys()
        (tmp / "credentials").write_text(f"[admin]\naws_access_key_id = {akid}\naws_secret_access_key = {secret}\n")
        (tmp / "config").write_text(f"[profile admin]\nregion = {REGION}\n")
        self.admin_env = self.env("admin")

    def env(self, profile, region=REGION):
        return {
            "AWS_CONFIG_FILE": str(self.tmp / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.tmp / "credentials"),
            "AWS_ENDPOINT_URL": self.server.endpoint,
            "AWS_PROFILE": profile,
            # cloud-init sets both; the script passes no --region.
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            # The CLI caches assumed-role credentials under ~/.aws/cli/cache: keep that here.
            "HOME": str(self.tmp),
        }

    def admin(self, *args) -> str:
        r = aws_cli(*args, "--output", "text", env=self.admin_env)
        assert r.returncode == 0, (args, r.stderr)
        return r.stdout.strip()

    def add_role_profile(self, profile, role_arn):
        with open(self.tmp / "config", "a") as f:
            f.write(f"\n[profile {profile}]\nrole_arn = {role_arn}\nsource_profile = admin\n"
                    f"role_session_name = i-{uuid.uuid4().hex[:17]}\n")

    def boot(self, profile, region=REGION):
        """`bk-install-elastic-stack.sh`'s token fetch, verbatim."""
        return aws_cli("ssm", "get-parameter", "--name", self.path, "--with-decryption",
                       "--query", "Parameter.Value", "--output", "text", env=self.env(profile, region))

    def stack_role(self, name, *, ssm_region=REGION, kms_resource=None, with_ssm=True):
        """A role with the Elastic CI Stack template's inline policies."""
        trust = policy({"Effect": "Allow", "Principal": {"AWS": self.admin_arn}, "Action": "sts:AssumeRole"})
        arn = self.admin("iam", "create-role", "--role-name", name, "--assume-role-policy-document", trust,
                         "--query", "Role.Arn")
        if with_ssm:
            self.admin("iam", "put-role-policy", "--role-name", name, "--policy-name", "ReadAgentToken",
                       "--policy-document", policy({"Effect": "Allow", "Action": "ssm:GetParameter",
                                                    "Resource": f"arn:aws:ssm:{ssm_region}:{self.account}:parameter{self.path}"}))
        self.admin("iam", "put-role-policy", "--role-name", name, "--policy-name", "DecryptAgentToken",
                   "--policy-document", policy({"Effect": "Allow", "Action": "kms:Decrypt",
                                                "Resource": kms_resource or f"arn:aws:kms:{REGION}:{self.account}:key/{self.key_id}"}))
        return arn

    def delete_role(self, name):
        for p in ("ReadAgentToken", "DecryptAgentToken"):
            aws_cli("iam", "delete-role-policy", "--role-name", name, "--policy-name", p, env=self.admin_env)
        self.admin("iam", "delete-role", "--role-name", name)

    def save_resource_policy(self, role_arns):
        # The Elastic CI Stack's secret resource policy, verbatim but for the ARNs.
        doc = json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": role_arns},
            "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]}, indent=2)
        self.admin("secretsmanager", "put-resource-policy", "--secret-id", self.secret_arn, "--resource-policy", doc)


@pytest.fixture(scope="module")
def world(server, tmp_path_factory):
    w = World(server, tmp_path_factory.mktemp("ci-boot"))
    w.account = w.admin("sts", "get-caller-identity", "--query", "Account")
    w.admin_arn = w.admin("sts", "get-caller-identity", "--query", "Arn")
    # 1. The KMS key (its id goes into BuildkiteAgentTokenParameterStoreKMSKey) and an alias.
    w.key_id = w.admin("kms", "create-key", "--description", "buildkite agent token", "--query", "KeyMetadata.KeyId")
    w.alias = f"alias/buildkite-{w.suffix}"
    w.admin("kms", "create-alias", "--alias-name", w.alias, "--target-key-id", w.key_id)
    # 2. The secret, encrypted with that key; the stack's BuildkiteAgentTokenParameterStorePath.
    w.secret_id = f"buildkite/agent-token-{w.suffix}"
    w.secret_arn = w.admin("secretsmanager", "create-secret", "--name", w.secret_id, "--kms-key-id", w.key_id,
                           "--secret-string", TOKEN, "--query", "ARN")
    w.path = f"/aws/reference/secretsmanager/{w.secret_id}"
    # 3. The stack's roles: the instance role (IAMRole) and the scaler's ExecutionRole; plus
    #    the roles each denial needs.
    s = w.suffix
    w.roles = {
        "instance": w.stack_role(f"buildkite-secretsmanager-Role-{s}"),
        "scaler": w.stack_role(f"buildkite-secretsmanager-AutoscalingLambdaExecutionRole-{s}"),
        "no-ssm": w.stack_role(f"no-ssm-{s}", with_ssm=False),
        "alias": w.stack_role(f"kms-by-alias-{s}", kms_resource=f"arn:aws:kms:{REGION}:{w.account}:{w.alias}"),
        "not-in-policy": w.stack_role(f"not-in-policy-{s}"),
        "recreated": w.stack_role(f"recreated-{s}"),
    }
    # 4. The secret's resource policy names every role but one.
    w.granted = [arn for k, arn in w.roles.items() if k != "not-in-policy"]
    w.save_resource_policy(w.granted)
    for k, arn in w.roles.items():
        w.add_role_profile(k, arn)
    return w


def assert_boot_fails(r, expected_code):
    assert r.returncode != 0, r.stdout
    assert r.stdout == "", "the boot command printed something"
    assert TOKEN not in r.stderr
    assert f"An error occurred ({expected_code}) when calling the GetParameter operation" in r.stderr, r.stderr


def test_instance_boots_with_the_token(world):
    r = world.boot("instance")
    assert r.returncode == 0, r.stderr
    assert r.stdout == TOKEN + "\n"  # `$(...)` strips the newline: exactly the token
    who = aws_cli("sts", "get-caller-identity", "--query", "Arn", "--output", "text", env=world.env("instance"))
    assert f":assumed-role/buildkite-secretsmanager-Role-{world.suffix}/" in who.stdout


def test_scaler_reads_the_token_with_boto3(world, server):
    ssm = server.session("ssm", server.assume(world.roles["scaler"], "buildkite-agent-scaler"))
    p = ssm.get_parameter(Name=world.path, WithDecryption=True)["Parameter"]
    assert p["Value"] == TOKEN
    assert p["Type"] == "SecureString" and p["Version"] == 0 and p["ARN"] == world.secret_arn
    # Without WithDecryption: AWS's refusal (the scaler always sets it).
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ssm.get_parameter(Name=world.path)
    assert e.value.response["Error"]["Code"] == "ValidationException"


def test_role_without_ssm_get_parameter_is_denied(world):
    r = world.boot("no-ssm")
    assert_boot_fails(r, "AccessDeniedException")
    assert "ssm:GetParameter" in r.stderr


def test_kms_decrypt_on_the_alias_grants_nothing(world):
    # The template's DecryptAgentToken with an alias instead of the key id: KMS refuses the
    # decrypt Secrets Manager makes for the role, and Parameter Store reports its dependency
    # failure.
    r = world.boot("alias")
    assert_boot_fails(r, "ValidationException")
    assert "An error occurred while calling one AWS dependency service." in r.stderr


def test_role_missing_from_the_resource_policy_is_denied(world):
    r = world.boot("not-in-policy")
    assert_boot_fails(r, "ValidationException")
    assert "dependency service" in r.stderr


def test_another_region_is_denied(world):
    # The template grants ssm:GetParameter in the stack's region only.
    r = world.boot("instance", region="us-west-2")
    assert_boot_fails(r, "AccessDeniedException")
    assert f"arn:aws:ssm:us-west-2:{world.account}:parameter{world.path}" in r.stderr


def test_recreated_role_is_denied_until_the_policy_is_saved_again(world):
    name = f"recreated-{world.suffix}"
    r = world.boot("recreated")
    assert r.returncode == 0 and r.stdout == TOKEN + "\n", r.stderr
    world.delete_role(name)
    arn = world.stack_role(name)
    assert arn == world.roles["recreated"]
    # A fresh instance (its own role session) of the re-created role. Same name, new unique
    # id: the saved policy still names the old one (IAM User Guide, "AWS JSON policy elements:
    # Principal").
    world.add_role_profile("recreated-fresh", arn)
    r = world.boot("recreated-fresh")
    assert_boot_fails(r, "ValidationException")
    world.save_resource_policy(world.granted)
    r = world.boot("recreated-fresh")
    assert r.returncode == 0, r.stderr
    assert r.stdout == TOKEN + "\n"
