"""Shared set-up of the host-side tests: a fleet's instance role in tresor, the host's source
credential (an IAM user allowed to assume it), and `tresor imds` / `tresor agent` processes.

The role carries the Elastic CI Stack template's policies (`ReadAgentToken`: ssm:GetParameter
on the reference path; `DecryptAgentToken`: kms:Decrypt on the key id) and the secret's
resource policy grants it secretsmanager:GetSecretValue, as the seed's setup does; it may also
DescribeSecret, which the agent and `fetch --watch` use to notice a rotation cheaply."""

import json
import os
import re
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import REGION, LogTail, _drain, _servers, tresor_bin


def policy(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


@dataclass
class HostProcess:
    """A running `tresor imds` or `tresor agent`, drained like a server."""
    proc: subprocess.Popen
    url: str
    stdout_lines: list = field(default_factory=list)
    stderr_tail: LogTail = field(default_factory=lambda: LogTail(200))
    endpoint: str = ""

    def log_tail(self) -> str:
        return self.stderr_tail.text()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def clean_env(extra: dict) -> dict:
    """The test's environment without any AWS_ or TRESOR_ variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TRESOR_"))}
    env.update(extra)
    return env


def start_host(subcommand: str, *args: str, env: dict, expect_ready=True):
    """Starts `tresor <subcommand>`; returns it once it printed its readiness line, or (with
    expect_ready=False) the finished process's (returncode, stderr)."""
    proc = subprocess.Popen([tresor_bin(), subcommand, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=clean_env(env))
    hp = HostProcess(proc=proc, url="")
    _drain(proc.stderr, hp.stderr_tail)
    _servers.append(hp)
    deadline = time.time() + 30
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        hp.stdout_lines.append(line)
        m = re.match(rf"tresor {subcommand} listening on (\S+)", line)
        if m:
            hp.url = hp.endpoint = m.group(1)
            _drain(proc.stdout, hp.stdout_lines)
            assert expect_ready, "started although it should not have"
            return hp
    proc.wait(timeout=15)
    time.sleep(0.2)  # let the drainer take the last lines
    if expect_ready:
        pytest.fail(f"tresor {subcommand} did not start: {hp.log_tail()}")
    return proc.returncode, hp.log_tail()


class Fleet:
    """The administrator's set-up for one instance role, and how a host runs as it."""

    def __init__(self, server, tmp: Path, token: str):
        self.server = server
        self.tmp = tmp
        self.token = token
        self.suffix = uuid.uuid4().hex[:8]
        iam, sm, kms = server.admin("iam"), server.admin("secretsmanager"), server.admin("kms")
        self.iam, self.sm = iam, sm
        ident = server.admin("sts").get_caller_identity()
        self.account = ident["Account"]
        self.key_id = kms.create_key(Description="agent token")["KeyMetadata"]["KeyId"]
        self.secret_id = f"buildkite/agent-token-{self.suffix}"
        self.secret_arn = sm.create_secret(Name=self.secret_id, KmsKeyId=self.key_id,
                                           SecretString=token)["ARN"]
        self.path = f"/aws/reference/secretsmanager/{self.secret_id}"
        # The host's source credential: a user that may only assume the instance role.
        self.role_name = f"buildkite-Role-{self.suffix}"
        self.role_arn = f"arn:aws:iam::{self.account}:role/{self.role_name}"
        user = f"host-{self.suffix}"
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="assume", PolicyDocument=policy(
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": self.role_arn}))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        self.host_key = (key["AccessKeyId"], key["SecretAccessKey"])
        user_arn = iam.get_user(UserName=user)["User"]["Arn"]
        iam.create_role(RoleName=self.role_name, AssumeRolePolicyDocument=policy(
            {"Effect": "Allow", "Principal": {"AWS": user_arn}, "Action": "sts:AssumeRole"}))
        iam.put_role_policy(RoleName=self.role_name, PolicyName="ReadAgentToken", PolicyDocument=policy(
            {"Effect": "Allow", "Action": "ssm:GetParameter",
             "Resource": f"arn:aws:ssm:{REGION}:{self.account}:parameter{self.path}"}))
        iam.put_role_policy(RoleName=self.role_name, PolicyName="DecryptAgentToken", PolicyDocument=policy(
            {"Effect": "Allow", "Action": "kms:Decrypt",
             "Resource": f"arn:aws:kms:{REGION}:{self.account}:key/{self.key_id}"}))
        sm.put_resource_policy(SecretId=self.secret_arn, ResourcePolicy=policy(
            {"Effect": "Allow", "Principal": {"AWS": self.role_arn},
             "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"], "Resource": "*"}))
        # Empty shared files: nothing on the host's clients' side but the metadata endpoint.
        self.empty = tmp / "empty"
        self.empty.write_text("")

    def source_env(self) -> dict:
        """The environment of `tresor imds`: the host's source credential and nothing else."""
        return {"AWS_ACCESS_KEY_ID": self.host_key[0], "AWS_SECRET_ACCESS_KEY": self.host_key[1],
                "AWS_CONFIG_FILE": str(self.empty), "AWS_SHARED_CREDENTIALS_FILE": str(self.empty),
                "HOME": str(self.tmp)}

    def imds(self, *args: str, role_arn=None, listen="127.0.0.1:0", expect_ready=True):
        return start_host("imds", "--role-arn", role_arn or self.role_arn, "--endpoint-url", self.server.endpoint,
                          "--region", REGION, "--listen", listen, *args,
                          env=self.source_env(), expect_ready=expect_ready)

    def client_env(self, imds_url: str, region=REGION) -> dict:
        """An instance's environment: no credential anywhere, only where the metadata is."""
        return {"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds_url + "/",
                "AWS_ENDPOINT_URL": self.server.endpoint,
                "AWS_REGION": region, "AWS_DEFAULT_REGION": region,
                "AWS_CONFIG_FILE": str(self.empty), "AWS_SHARED_CREDENTIALS_FILE": str(self.empty),
                "HOME": str(self.tmp)}

    def rotate(self, value: str) -> str:
        """A new AWSCURRENT version by hand (PutSecretValue moves AWSCURRENT, the old version
        becomes AWSPREVIOUS); returns its version id."""
        return self.sm.put_secret_value(SecretId=self.secret_arn, SecretString=value)["VersionId"]


@pytest.fixture(scope="module")
def fleet(server, tmp_path_factory, request):
    """The module's fleet, for its TOKEN (a test module imports this fixture)."""
    return Fleet(server, tmp_path_factory.mktemp(request.module.__name__), request.module.TOKEN)


@pytest.fixture(scope="module")
def imds(fleet, request):
    """`tresor imds` for the module's fleet, with the module's IMDS_ARGS."""
    p = fleet.imds(*getattr(request.module, "IMDS_ARGS", ()))
    yield p
    p.stop()


def http(method: str, url: str, headers: dict | None = None):
    """(status, headers with lower-case names, body) of one request; never raises for an
    HTTP error status."""
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read().decode()


def wait_for(predicate, timeout=30.0, interval=0.2, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        v = predicate()
        if v:
            return v
        time.sleep(interval)
    pytest.fail(f"timed out waiting for {what}")
