"""Secrets Manager rotation end to end: a real rotation function, deployed with the AWS CLI.

The function below is written for these tests; it follows the steps of AWS's published
single-user rotation template (createSecret with GetRandomPassword and PutSecretValue into
AWSPENDING, setSecret, testSecret, finishSecret with UpdateSecretVersionStage), reading
`SECRETS_MANAGER_ENDPOINT` from its environment as the template does. It is zipped here,
deployed with `aws lambda create-function`, granted to Secrets Manager with
`aws lambda add-permission`, and rotated with `aws secretsmanager rotate-secret`.

The servers run with the testing knob `TRESOR_ROTATION_HOUR_SECONDS=1` (one schedule hour
lasts a second), so a `rate(4 hours)` schedule fires within seconds and retries back off
within seconds; it changes nothing else.
"""

import io
import json
import os
import shutil
import signal
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from conftest import REGION, aws_cli, new_user_with_key, start_server, uniq

HOUR_SECONDS = "1"

FUNCTION_SOURCE = r'''
import logging
import os
import time

import boto3
from botocore.exceptions import ClientError

logger = logging.getLogger()
logger.setLevel(logging.INFO)


def lambda_handler(event, context):
    arn = event["SecretId"]
    token = event["ClientRequestToken"]
    step = event["Step"]
    client = boto3.client("secretsmanager", endpoint_url=os.environ["SECRETS_MANAGER_ENDPOINT"])

    # Every step first checks that rotation is on and the version is staged for it.
    metadata = client.describe_secret(SecretId=arn)
    if not metadata["RotationEnabled"]:
        raise ValueError("rotation is not enabled for %s" % arn)
    stages = metadata["VersionIdsToStages"]
    if token not in stages:
        raise ValueError("version %s has no stage for rotation of %s" % (token, arn))
    if "AWSCURRENT" in stages[token]:
        logger.info("version %s is already AWSCURRENT", token)
        return
    if "AWSPENDING" not in stages[token]:
        raise ValueError("version %s is not AWSPENDING for %s" % (token, arn))

    if os.environ.get("FAIL_STEP") == step:
        raise RuntimeError("%s fails on purpose" % step)

    if step == "createSecret":
        create_secret(client, arn, token)
    elif step == "setSecret":
        set_secret(client, arn, token)
    elif step == "testSecret":
        test_secret(client, arn, token)
    elif step == "finishSecret":
        finish_secret(client, arn, token)
    else:
        raise ValueError("unknown step %s" % step)


def create_secret(client, arn, token):
    client.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")
    try:
        client.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")
        logger.info("createSecret: the pending version already has a value")
    except client.exceptions.ResourceNotFoundException:
        exclude = os.environ.get("EXCLUDE_CHARACTERS", "/@\"'\\")
        password = client.get_random_password(ExcludeCharacters=exclude)["RandomPassword"]
        client.put_secret_value(SecretId=arn, ClientRequestToken=token,
                                SecretString=password, VersionStages=["AWSPENDING"])
        logger.info("createSecret: stored a new pending value for version %s", token)


def set_secret(client, arn, token):
    marker = os.environ.get("SLOW_MARKER")
    if marker and os.path.exists(marker):
        # The restart test kills the server while this step runs.
        with open(marker + ".entered", "w") as f:
            f.write(token)
        time.sleep(60)


def test_secret(client, arn, token):
    value = client.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")
    if not value.get("SecretString"):
        raise ValueError("the pending version has no value")


def finish_secret(client, arn, token):
    metadata = client.describe_secret(SecretId=arn)
    current = None
    for version, stages in metadata["VersionIdsToStages"].items():
        if "AWSCURRENT" in stages:
            if version == token:
                return
            current = version
            break
    client.update_secret_version_stage(SecretId=arn, VersionStage="AWSCURRENT",
                                       MoveToVersionId=token, RemoveFromVersionId=current)
'''


def zip_function() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("rotate.py", FUNCTION_SOURCE)
    return buf.getvalue()


def venv_path() -> str:
    """PATH for the server, so the function's `python3` is one with boto3 (as Lambda's is)."""
    aws = shutil.which("aws")
    bin_dir = str(Path(aws).parent) if aws else ""
    return os.pathsep.join(p for p in [bin_dir, os.environ.get("PATH", "")] if p)


def start_rotation_server(data_dir: Path):
    return start_server(data_dir=data_dir, env={"TRESOR_ROTATION_HOUR_SECONDS": HOUR_SECONDS,
                                                 "PATH": venv_path()})


class Env:
    """One server plus the AWS CLI environment and a few helpers."""

    def __init__(self, server, workdir: Path):
        self.server = server
        self.workdir = workdir
        akid, secret = server.admin_keys()
        self.cli_env = {"AWS_ACCESS_KEY_ID": akid, "AWS_SECRET_ACCESS_KEY": secret,
                        "AWS_DEFAULT_REGION": REGION}
        self.sm = server.admin("secretsmanager")
        self.ssm = server.admin("ssm")
        self.iam = server.admin("iam")

    def cli(self, *args: str, check=True):
        r = aws_cli("--endpoint-url", self.server.endpoint, *args, env=self.cli_env)
        if check:
            assert r.returncode == 0, f"aws {' '.join(args)}: {r.stderr}"
        return r

    def cli_json(self, *args: str):
        return json.loads(self.cli(*args, "--output", "json").stdout or "{}")

    def role(self) -> str:
        name = uniq("rotation-role")
        trust = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
        arn = self.iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        policy = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow",
            "Action": ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue",
                       "secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage",
                       "secretsmanager:GetRandomPassword"],
            "Resource": "*"}]}
        self.iam.put_role_policy(RoleName=name, PolicyName="rotate", PolicyDocument=json.dumps(policy))
        return arn

    def function(self, variables: dict | None = None, permission=True) -> str:
        """Deploys the rotation function with the AWS CLI; returns its ARN."""
        name = uniq("rotator")
        path = self.workdir / f"{name}.zip"
        path.write_bytes(zip_function())
        env = json.dumps({"Variables": variables or {"EXCLUDE_CHARACTERS": "/@\"'\\"}})
        out = self.cli_json("lambda", "create-function", "--function-name", name, "--runtime", "python3.12",
                            "--handler", "rotate.lambda_handler", "--role", self.role(), "--timeout", "90",
                            "--zip-file", f"fileb://{path}", "--environment", env)
        if permission:
            self.cli("lambda", "add-permission", "--function-name", name, "--statement-id", "SecretsManagerAccess",
                     "--action", "lambda:InvokeFunction", "--principal", "secretsmanager.amazonaws.com")
        return out["FunctionArn"]

    def secret(self, value="initial-value") -> str:
        return self.sm.create_secret(Name=uniq("rotated"), SecretString=value)["ARN"]

    def rotate(self, secret: str, *args: str, check=True):
        return self.cli("secretsmanager", "rotate-secret", "--secret-id", secret, *args, check=check)

    def stages(self, secret: str) -> dict:
        return self.sm.describe_secret(SecretId=secret).get("VersionIdsToStages", {})

    def holder(self, secret: str, label: str):
        return next((v for v, s in self.stages(secret).items() if label in s), None)


def wait_for(predicate, timeout=60.0, interval=0.2, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="module")
def env():
    d = Path(tempfile.mkdtemp(prefix="tresor-rotation-"))
    server = start_rotation_server(d / "data")
    yield Env(server, d)
    server.stop()
    shutil.rmtree(d, ignore_errors=True)


def test_rotation_with_the_template_function_moves_the_labels(env):
    fn = env.function()
    secret = env.secret()
    first = env.holder(secret, "AWSCURRENT")
    out = json.loads(env.rotate(secret, "--rotation-lambda-arn", fn,
                                "--rotation-rules", "AutomaticallyAfterDays=30").stdout)
    token = out["VersionId"]
    assert out["ARN"] == secret
    wait_for(lambda: env.holder(secret, "AWSCURRENT") == token, what="AWSCURRENT on the new version")
    stages = env.stages(secret)
    assert "AWSPREVIOUS" in stages[first]
    assert "AWSPENDING" in stages[token]
    value = env.sm.get_secret_value(SecretId=secret)
    assert value["VersionId"] == token and value["SecretString"] != "initial-value"
    meta = wait_for(lambda: (m := env.sm.describe_secret(SecretId=secret)).get("LastRotatedDate") and m,
                    what="LastRotatedDate")
    assert meta["RotationEnabled"] is True
    assert meta["RotationLambdaARN"] == fn
    assert meta["RotationRules"]["AutomaticallyAfterDays"] == 30
    assert meta["NextRotationDate"] > meta["LastRotatedDate"]
    listed = env.sm.list_secrets(Filters=[{"Key": "name", "Values": [meta["Name"]]}])["SecretList"][0]
    assert listed["RotationEnabled"] is True and listed["RotationLambdaARN"] == fn

    # A second rotation, with the stored configuration: AWSPREVIOUS follows.
    second = json.loads(env.rotate(secret).stdout)["VersionId"]
    wait_for(lambda: env.holder(secret, "AWSCURRENT") == second, what="the second rotation")
    stages = env.stages(secret)
    assert "AWSPREVIOUS" in stages[token]
    assert first not in stages, "the oldest version has no label left"

    # CancelRotateSecret turns rotation off and keeps the configuration.
    out = env.cli_json("secretsmanager", "cancel-rotate-secret", "--secret-id", secret)
    assert out["ARN"] == secret and "VersionId" not in out
    meta = env.sm.describe_secret(SecretId=secret)
    assert meta["RotationEnabled"] is False
    assert "NextRotationDate" not in meta
    assert meta["RotationLambdaARN"] == fn


def test_a_function_that_raises_leaves_awspending_and_the_rotation_is_retried(env):
    fn = env.function({"FAIL_STEP": "createSecret"})
    secret = env.secret()
    token = json.loads(env.rotate(secret, "--rotation-lambda-arn", fn).stdout)["VersionId"]
    # createSecret fails before storing a value: the pending version stays empty.
    time.sleep(3)
    assert env.stages(secret)[token] == ["AWSPENDING"]
    with pytest.raises(ClientError) as e:
        env.sm.get_secret_value(SecretId=secret, VersionId=token, VersionStage="AWSPENDING")
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert env.sm.get_secret_value(SecretId=secret)["SecretString"] == "initial-value"
    r = env.rotate(secret, check=False)
    assert r.returncode != 0
    assert "InvalidRequestException" in r.stderr
    assert "A previous rotation isn't complete. That rotation will be reattempted." in r.stderr

    # Fixed function: a retry (backoff of seconds with the test clock) completes the rotation
    # to the same version.
    env.cli("lambda", "update-function-configuration", "--function-name", fn,
            "--environment", json.dumps({"Variables": {"FAIL_STEP": "none"}}))
    wait_for(lambda: env.holder(secret, "AWSCURRENT") == token, timeout=90, what="the retried rotation")
    assert env.sm.get_secret_value(SecretId=secret)["SecretString"] != "initial-value"


def test_a_function_without_the_permission_is_refused_at_rotate_secret(env):
    fn = env.function(permission=False)
    secret = env.secret()
    r = env.rotate(secret, "--rotation-lambda-arn", fn, check=False)
    assert r.returncode != 0
    assert "AccessDeniedException" in r.stderr
    assert ("Secrets Manager cannot invoke the specified Lambda function. Ensure that the function policy "
            "grants access to the principal secretsmanager.amazonaws.com.") in r.stderr
    meta = env.sm.describe_secret(SecretId=secret)
    assert "RotationEnabled" not in meta
    assert list(env.stages(secret).values()) == [["AWSCURRENT"]]


def test_the_caller_needs_rotate_secret_and_lambda_invoke_function(env):
    fn = env.function()
    secret = env.secret()

    def caller(statements):
        _, akid, key = new_user_with_key(env.iam, policy=json.dumps(
            {"Version": "2012-10-17", "Statement": statements}))
        return env.server.client("secretsmanager", akid, key)

    rotate_only = caller([{"Effect": "Allow", "Action": "secretsmanager:RotateSecret", "Resource": "*"}])
    with pytest.raises(ClientError) as e:
        rotate_only.rotate_secret(SecretId=secret, RotationLambdaARN=fn)
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "lambda:InvokeFunction" in e.value.response["Error"]["Message"]

    # The condition key secretsmanager:RotationLambdaARN pins the function.
    pinned = caller([
        {"Effect": "Allow", "Action": "secretsmanager:RotateSecret", "Resource": "*",
         "Condition": {"StringEquals": {"secretsmanager:RotationLambdaARN": fn + "-other"}}},
        {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": fn}])
    with pytest.raises(ClientError) as e:
        pinned.rotate_secret(SecretId=secret, RotationLambdaARN=fn)
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "secretsmanager:RotateSecret" in e.value.response["Error"]["Message"]
    assert "RotationEnabled" not in env.sm.describe_secret(SecretId=secret)

    allowed = caller([
        {"Effect": "Allow", "Action": "secretsmanager:RotateSecret", "Resource": secret,
         "Condition": {"StringEquals": {"secretsmanager:RotationLambdaARN": fn}}},
        {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": fn}])
    token = allowed.rotate_secret(SecretId=secret, RotationLambdaARN=fn)["VersionId"]
    wait_for(lambda: env.holder(secret, "AWSCURRENT") == token, what="the rotation")


def test_configuration_errors(env):
    secret = env.secret()
    r = env.rotate(secret, check=False)
    assert "InvalidRequestException" in r.stderr
    assert "No Lambda rotation function ARN is associated with this secret." in r.stderr
    fn = "arn:aws:lambda:us-east-1:123456789012:function:whatever"
    for rules in ['{"ScheduleExpression": "rate(2 hours)"}',
                  '{"ScheduleExpression": "cron(5 10 * * ? *)"}',
                  '{"ScheduleExpression": "rate(4 hours)", "Duration": "6h"}',
                  '{"AutomaticallyAfterDays": 2, "ScheduleExpression": "rate(2 days)"}']:
        r = env.rotate(secret, "--rotation-lambda-arn", fn, "--rotation-rules", rules, check=False)
        assert "InvalidParameterException" in r.stderr, rules
    with pytest.raises(ClientError) as e:
        env.sm.cancel_rotate_secret(SecretId=secret)
    assert e.value.response["Error"]["Code"] == "InvalidRequestException"


def test_a_schedule_fires(env):
    fn = env.function()
    secret = env.secret()
    first = env.holder(secret, "AWSCURRENT")
    # RotateImmediately=false runs testSecret only: with the template, that fails on the empty
    # pending version, and the placeholder is removed either way.
    env.rotate(secret, "--rotation-lambda-arn", fn, "--rotation-rules", '{"ScheduleExpression": "rate(4 hours)"}',
               "--no-rotate-immediately")
    meta = env.sm.describe_secret(SecretId=secret)
    assert meta["RotationRules"]["ScheduleExpression"] == "rate(4 hours)"
    assert "NextRotationDate" in meta
    # Four schedule hours = four seconds with the test clock.
    meta = wait_for(lambda: (m := env.sm.describe_secret(SecretId=secret)).get("LastRotatedDate") and m,
                    timeout=60, what="the scheduled rotation")
    assert "AWSCURRENT" not in meta["VersionIdsToStages"].get(first, [])
    # The next window is scheduled again, four (test) hours after this rotation.
    assert meta["NextRotationDate"] > meta["LastRotatedDate"]
    env.sm.cancel_rotate_secret(SecretId=secret)


def test_a_rotation_interrupted_by_a_restart_completes_afterwards(tmp_path):
    """The server stops while setSecret runs; after the restart the rotation resumes."""
    data = tmp_path / "data"
    marker = tmp_path / "slow"
    marker.write_text("1")
    server = start_rotation_server(data)
    try:
        e = Env(server, tmp_path)
        fn = e.function({"SLOW_MARKER": str(marker)})
        secret = e.secret()
        token = json.loads(e.rotate(secret, "--rotation-lambda-arn", fn).stdout)["VersionId"]
        wait_for(lambda: Path(str(marker) + ".entered").exists(), what="setSecret to start")
        # A graceful stop does not wait for the function (it sleeps for a minute).
        started = time.time()
        server.stop(sig=signal.SIGTERM, timeout=20)
        assert time.time() - started < 20
    finally:
        if server.proc.poll() is None:
            server.stop()
    marker.unlink()
    server = start_rotation_server(data)
    try:
        e = Env(server, tmp_path)
        assert e.sm.get_secret_value(SecretId=secret)["SecretString"] == "initial-value"
        wait_for(lambda: e.holder(secret, "AWSCURRENT") == token, timeout=90, what="the resumed rotation")
        assert e.sm.get_secret_value(SecretId=secret)["SecretString"] != "initial-value"
    finally:
        server.stop()


def test_readers_never_see_a_gap_during_rotations(env):
    fn = env.function()
    secret = env.secret()
    name = env.sm.describe_secret(SecretId=secret)["Name"]
    stop = threading.Event()
    errors: list = []
    seen: dict = {"sm-1": [], "sm-2": [], "ssm": []}

    def read(kind):
        client = env.server.admin("ssm" if kind == "ssm" else "secretsmanager")
        while not stop.is_set():
            try:
                if kind != "ssm":
                    v = client.get_secret_value(SecretId=secret)["SecretString"]
                else:
                    v = client.get_parameter(Name=f"/aws/reference/secretsmanager/{name}",
                                             WithDecryption=True)["Parameter"]["Value"]
            except Exception as exc:  # any error at all fails the test
                errors.append(f"{kind}: {exc!r}")
                continue
            if not seen[kind] or seen[kind][-1] != v:
                seen[kind].append(v)

    threads = [threading.Thread(target=read, args=(k,)) for k in seen]
    for t in threads:
        t.start()
    try:
        currents = ["initial-value"]
        for _ in range(3):
            token = json.loads(env.rotate(secret, "--rotation-lambda-arn", fn).stdout)["VersionId"]
            wait_for(lambda: env.holder(secret, "AWSCURRENT") == token, what="a rotation")
            currents.append(env.sm.get_secret_value(SecretId=secret)["SecretString"])
            time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert errors == []
    for kind, values in seen.items():
        assert values, kind
        # Only complete values, each an AWSCURRENT of its time, in rotation order.
        assert all(v in currents for v in values), kind
        order = [currents.index(v) for v in values]
        assert order == sorted(order), f"{kind}: a reader went back to an older value"


# --- the same function behind an HTTP endpoint speaking the Lambda Invoke API ---------------

_RUNNER = r'''
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("rotate", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
event = json.load(sys.stdin)
try:
    print(json.dumps(module.lambda_handler(event, None)))
except Exception as e:
    print(json.dumps({"errorType": type(e).__name__, "errorMessage": str(e)}))
    sys.exit(3)
'''


def _invoke_api(source: Path, function_env: dict):
    """An HTTP server with the Invoke API of the Lambda Runtime Interface Emulator that runs
    the rotation function in a process of its own with `function_env` (its container's
    environment: tresor hands routed functions no credentials)."""
    import http.server
    import subprocess
    import sys

    class Handler(http.server.BaseHTTPRequestHandler):
        calls: list = []

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            Handler.calls.append((self.path, json.loads(body).get("Step")))
            run = subprocess.run([sys.executable, "-c", _RUNNER, str(source)], input=body,
                                 capture_output=True, env=function_env, timeout=60)
            out = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else b"null"
            self.send_response(200)
            if run.returncode != 0:
                self.send_header("X-Amz-Function-Error", "Unhandled")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, Handler.calls


def test_the_same_function_through_the_http_route(tmp_path):
    source = tmp_path / "rotate.py"
    source.write_text(FUNCTION_SOURCE)
    # The routed function's own environment; its endpoint and credentials come later.
    function_env = {"PATH": venv_path(), "AWS_DEFAULT_REGION": REGION}
    httpd, calls = _invoke_api(source, function_env)
    try:
        cfg = tmp_path / "tresor.toml"
        cfg.write_text(f'[[lambda.http]]\nfunction = "routed-rotator"\n'
                       f'url = "http://127.0.0.1:{httpd.server_address[1]}"\n')
        server = start_server("--config", str(cfg), data_dir=tmp_path / "data",
                              env={"TRESOR_ROTATION_HOUR_SECONDS": HOUR_SECONDS, "PATH": venv_path()})
        try:
            env = Env(server, tmp_path)
            policy = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [
                "secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue",
                "secretsmanager:UpdateSecretVersionStage", "secretsmanager:GetRandomPassword"], "Resource": "*"}]})
            _, akid, secret_key = new_user_with_key(env.iam, policy=policy)
            function_env.update({"SECRETS_MANAGER_ENDPOINT": server.endpoint,
                                 "AWS_ACCESS_KEY_ID": akid, "AWS_SECRET_ACCESS_KEY": secret_key})
            path = tmp_path / "routed.zip"
            path.write_bytes(zip_function())
            fn = env.cli_json("lambda", "create-function", "--function-name", "routed-rotator",
                              "--runtime", "python3.12", "--handler", "rotate.lambda_handler",
                              "--role", env.role(), "--zip-file", f"fileb://{path}")["FunctionArn"]
            env.cli("lambda", "add-permission", "--function-name", "routed-rotator", "--statement-id", "sm",
                    "--action", "lambda:InvokeFunction", "--principal", "secretsmanager.amazonaws.com")
            secret = env.secret()
            token = json.loads(env.rotate(secret, "--rotation-lambda-arn", fn).stdout)["VersionId"]
            wait_for(lambda: env.holder(secret, "AWSCURRENT") == token, what="AWSCURRENT on the new version")
            assert env.sm.get_secret_value(SecretId=secret)["SecretString"] != "initial-value"
            steps = [step for _, step in calls]
            assert steps == ["createSecret", "setSecret", "testSecret", "finishSecret"], steps
            assert {p for p, _ in calls} == {"/2015-03-31/functions/function/invocations"}
        finally:
            server.stop()
    finally:
        httpd.shutdown()
