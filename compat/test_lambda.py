"""Lambda against a real `tresor serve`: boto3 and the AWS CLI create, read, update and delete
functions, manage their resource policies and invoke them; the functions run on this host with
the runtime found here (the venv's python, /usr/bin/node) and reach tresor back with the
credentials of their execution role."""

import base64
import http.server
import io
import json
import os
import shutil
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import botocore.config
import botocore.exceptions
import pytest

from conftest import REGION, aws_cli, new_user_with_key, start_server, uniq

LAMBDA_TRUST = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
})

ECHO = """
import os
def handler(event, context):
    print("hello from the function", context.function_name)
    return {"echo": event, "request_id": context.aws_request_id,
            "remaining_ok": 0 < context.get_remaining_time_in_millis() <= 30000,
            "memory": context.memory_limit_in_mb, "arn": context.invoked_function_arn,
            "region": os.environ["AWS_REGION"], "var": os.environ.get("GREETING")}
"""


def make_zip(files: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in files.items():
            z.writestr(name, text)
    return buf.getvalue()


def code(e) -> str:
    return e.response["Error"]["Code"]


def status(e) -> int:
    return e.response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture(scope="module")
def lam(server):
    return server.admin("lambda", config=botocore.config.Config(retries={"max_attempts": 1}, read_timeout=120))


@pytest.fixture(scope="module")
def lambda_role(iam):
    name = uniq("fnrole")
    return iam.create_role(RoleName=name, AssumeRolePolicyDocument=LAMBDA_TRUST)["Role"]["Arn"]


def create(lam, role, source=ECHO, runtime="python3.12", handler="app.handler", name=None, **kw):
    name = name or uniq("fn")
    filename = "app.mjs" if runtime.startswith("nodejs") and kw.pop("esm", False) else (
        "app.js" if runtime.startswith("nodejs") else "app.py")
    lam.create_function(FunctionName=name, Runtime=runtime, Role=role, Handler=handler,
                        Code={"ZipFile": make_zip({filename: source})}, **kw)
    return name


def payload_of(resp) -> dict:
    return json.loads(resp["Payload"].read())


# --- lifecycle ------------------------------------------------------------------------------

def test_create_get_list_update_delete(lam, lambda_role, account):
    zip_bytes = make_zip({"app.py": ECHO})
    name = uniq("fn")
    cfg = lam.create_function(FunctionName=name, Runtime="python3.12", Role=lambda_role, Handler="app.handler",
                              Code={"ZipFile": zip_bytes}, Description="d", Environment={"Variables": {"GREETING": "hi"}},
                              Tags={"team": "a"})
    assert cfg["ResponseMetadata"]["HTTPStatusCode"] == 201
    arn = f"arn:aws:lambda:{REGION}:{account}:function:{name}"
    assert cfg["FunctionArn"] == arn
    assert cfg["Timeout"] == 3 and cfg["MemorySize"] == 128
    assert cfg["CodeSize"] == len(zip_bytes)
    import hashlib
    assert cfg["CodeSha256"] == base64.b64encode(hashlib.sha256(zip_bytes).digest()).decode()
    assert cfg["Version"] == "$LATEST" and cfg["State"] == "Active"
    assert cfg["Environment"]["Variables"] == {"GREETING": "hi"}

    got = lam.get_function(FunctionName=arn)
    assert got["Configuration"]["FunctionName"] == name
    assert got["Tags"] == {"team": "a"}
    assert lam.get_function_configuration(FunctionName=f"{account}:function:{name}")["Handler"] == "app.handler"

    with pytest.raises(botocore.exceptions.ClientError) as e:
        lam.create_function(FunctionName=name, Runtime="python3.12", Role=lambda_role, Handler="app.handler",
                            Code={"ZipFile": zip_bytes})
    assert code(e.value) == "ResourceConflictException" and status(e.value) == 409

    names = []
    for page in lam.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 1}):
        names += [f["FunctionName"] for f in page["Functions"]]
    assert name in names and len(names) == len(set(names))
    first = lam.list_functions(MaxItems=1)
    assert len(first["Functions"]) == 1
    if len(names) > 1:
        assert "NextMarker" in first

    upd = lam.update_function_configuration(FunctionName=name, Timeout=30, Environment={"Variables": {"GREETING": "yo"}})
    assert upd["Timeout"] == 30 and upd["Environment"]["Variables"] == {"GREETING": "yo"}
    new_zip = make_zip({"app.py": ECHO + "\n# v2\n"})
    upd = lam.update_function_code(FunctionName=name, ZipFile=new_zip)
    assert upd["CodeSize"] == len(new_zip) and upd["CodeSha256"] != cfg["CodeSha256"]
    out = payload_of(lam.invoke(FunctionName=name, Payload=b'{"a": 1}'))
    assert out["var"] == "yo"

    assert lam.delete_function(FunctionName=name)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lam.get_function(FunctionName=name)
    assert code(e.value) == "ResourceNotFoundException" and status(e.value) == 404
    assert arn in e.value.response["Error"]["Message"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lam.delete_function(FunctionName=name)
    assert code(e.value) == "ResourceNotFoundException"


def test_unimplemented_lambda_operations_are_unknown(lam, lambda_role):
    name = create(lam, lambda_role)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lam.list_aliases(FunctionName=name)
    assert code(e.value) == "UnknownOperationException" and status(e.value) == 404


def test_qualifiers_other_than_latest_are_not_found(lam, lambda_role):
    name = create(lam, lambda_role)
    assert lam.get_function(FunctionName=name, Qualifier="$LATEST")["Configuration"]["FunctionName"] == name
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lam.get_function(FunctionName=name, Qualifier="live")
    assert code(e.value) == "ResourceNotFoundException"


# --- invoke ---------------------------------------------------------------------------------

def test_invoke_returns_the_payload_and_the_log_tail(lam, lambda_role, account):
    name = create(lam, lambda_role, Environment={"Variables": {"GREETING": "hi"}}, Timeout=30)
    resp = lam.invoke(FunctionName=name, Payload=json.dumps({"k": "v"}).encode(), LogType="Tail")
    assert resp["StatusCode"] == 200
    assert "FunctionError" not in resp
    assert resp["ExecutedVersion"] == "$LATEST"
    out = payload_of(resp)
    assert out["echo"] == {"k": "v"}
    assert out["remaining_ok"] is True
    assert out["memory"] == "128"
    assert out["arn"] == f"arn:aws:lambda:{REGION}:{account}:function:{name}"
    assert out["region"] == REGION and out["var"] == "hi"
    log = base64.b64decode(resp["LogResult"]).decode()
    assert f"hello from the function {name}" in log
    assert f"START RequestId: {out['request_id']}" in log and "REPORT RequestId" in log
    # Without LogType=Tail there is no log header.
    assert "LogResult" not in lam.invoke(FunctionName=name, Payload=b"{}")


def test_event_and_dry_run_invocations(lam, lambda_role, server):
    name = create(lam, lambda_role)
    resp = lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"async": true}')
    assert resp["StatusCode"] == 202
    assert resp["Payload"].read() == b""
    resp = lam.invoke(FunctionName=name, InvocationType="DryRun")
    assert resp["StatusCode"] == 204
    deadline = time.time() + 20
    while time.time() < deadline and "asynchronous invocation done" not in server.log_tail():
        time.sleep(0.2)
    assert "asynchronous invocation done" in server.log_tail()


def test_invalid_json_payload_is_refused(lam, lambda_role):
    name = create(lam, lambda_role)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lam.invoke(FunctionName=name, Payload=b"not json")
    assert code(e.value) == "InvalidRequestContentException" and status(e.value) == 400


def test_a_raising_handler_is_unhandled_with_the_error_json(lam, lambda_role):
    src = "def handler(event, context):\n    raise ValueError('boom ' + str(event['n']))\n"
    name = create(lam, lambda_role, source=src)
    resp = lam.invoke(FunctionName=name, Payload=b'{"n": 7}', LogType="Tail")
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    err = payload_of(resp)
    assert err["errorType"] == "ValueError"
    assert err["errorMessage"] == "boom 7"
    assert isinstance(err["stackTrace"], list) and any("raise ValueError" in line for line in err["stackTrace"])
    assert "[ERROR] ValueError: boom 7" in base64.b64decode(resp["LogResult"]).decode()


def test_a_missing_handler_and_module_are_runtime_errors(lam, lambda_role):
    name = create(lam, lambda_role, handler="app.nope")
    err = payload_of(lam.invoke(FunctionName=name))
    assert err["errorType"] == "Runtime.HandlerNotFound"
    name = create(lam, lambda_role, handler="missing.handler")
    err = payload_of(lam.invoke(FunctionName=name))
    assert err["errorType"] == "Runtime.ImportModuleError"
    assert "Unable to import module 'missing'" in err["errorMessage"]


def test_timeout_kills_the_function(lam, lambda_role):
    # A child process that keeps the output pipes open does not hold the invocation up.
    src = ("import subprocess, time\ndef handler(event, context):\n"
           "    subprocess.Popen(['sleep', '30'])\n    time.sleep(5)\n    return 'late'\n")
    name = create(lam, lambda_role, source=src, Timeout=1)
    started = time.time()
    resp = lam.invoke(FunctionName=name, LogType="Tail")
    assert time.time() - started < 4
    assert resp["StatusCode"] == 200 and resp["FunctionError"] == "Unhandled"
    err = payload_of(resp)
    assert err["errorMessage"].endswith("Task timed out after 1.00 seconds")
    assert "Task timed out after 1.00 seconds" in base64.b64decode(resp["LogResult"]).decode()


def test_node_functions_run_with_node(lam, lambda_role):
    src = """
exports.handler = async (event, context) => {
  console.log("node says hi", context.functionName);
  return { sum: event.a + event.b, id: context.awsRequestId, left: context.getRemainingTimeInMillis() > 0 };
};
"""
    name = create(lam, lambda_role, source=src, runtime="nodejs20.x", Timeout=10)
    resp = lam.invoke(FunctionName=name, Payload=b'{"a": 2, "b": 3}', LogType="Tail")
    out = payload_of(resp)
    assert out["sum"] == 5 and out["left"] is True and out["id"]
    assert f"node says hi {name}" in base64.b64decode(resp["LogResult"]).decode()

    esm = "export const handler = async (event) => { throw new TypeError('bad ' + event.x); };\n"
    name = create(lam, lambda_role, source=esm, runtime="nodejs22.x", esm=True, Timeout=10)
    resp = lam.invoke(FunctionName=name, Payload=b'{"x": 1}')
    assert resp["FunctionError"] == "Unhandled"
    err = payload_of(resp)
    assert err["errorType"] == "TypeError" and err["errorMessage"] == "bad 1"
    assert isinstance(err["trace"], list)


def test_the_function_calls_tresor_with_its_role(lam, iam, sm, server, account):
    role_name = uniq("fnrole")
    role_arn = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=LAMBDA_TRUST)["Role"]["Arn"]
    allowed = sm.create_secret(Name=uniq("fn-allowed"), SecretString="s3cr3t")["ARN"]
    denied = sm.create_secret(Name=uniq("fn-denied"), SecretString="nope")["ARN"]
    iam.put_role_policy(RoleName=role_name, PolicyName="read-one", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": allowed}],
    }))
    src = """
import os
import boto3
import botocore.config
import botocore.exceptions

def handler(event, context):
    ident = boto3.client("sts").get_caller_identity()
    sm = boto3.client("secretsmanager", endpoint_url=os.environ["SECRETS_MANAGER_ENDPOINT"])
    out = {"arn": ident["Arn"], "value": sm.get_secret_value(SecretId=event["allowed"])["SecretString"],
           "home": os.environ["HOME"], "leaked": sorted(k for k in os.environ if k.startswith("TRESOR_"))}
    try:
        sm.get_secret_value(SecretId=event["denied"])
        out["denied"] = "allowed!"
    except botocore.exceptions.ClientError as e:
        out["denied"] = e.response["Error"]["Code"]
    return out
"""
    name = create(lam, role_arn, source=src, Timeout=60)
    resp = lam.invoke(FunctionName=name, Payload=json.dumps({"allowed": allowed, "denied": denied}).encode())
    assert "FunctionError" not in resp, resp["Payload"].read()
    out = payload_of(resp)
    assert out["arn"] == f"arn:aws:sts::{account}:assumed-role/{role_name}/{name}"
    assert out["value"] == "s3cr3t"
    assert out["denied"] == "AccessDeniedException"
    assert out["leaked"] == []
    assert Path(out["home"]).is_dir() and (Path(out["home"]).stat().st_mode & 0o777) == 0o700
    # Nothing of the package or its secrets sits in plaintext in the store.
    assert "s3cr3t" not in server.log_tail()


# --- errors ---------------------------------------------------------------------------------

def test_role_not_assumable_by_lambda(lam, iam, account):
    role = iam.create_role(RoleName=uniq("notlambda"), AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "sts:AssumeRole"}],
    }))["Role"]["Arn"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        create(lam, role)
    assert code(e.value) == "InvalidParameterValueException" and status(e.value) == 400
    assert e.value.response["Error"]["Message"] == "The role defined for the function cannot be assumed by Lambda."


def test_unzippable_archive_and_unsupported_runtime(lam, lambda_role):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lam.create_function(FunctionName=uniq("fn"), Runtime="python3.12", Role=lambda_role, Handler="app.handler",
                            Code={"ZipFile": b"this is not a zip"})
    assert code(e.value) == "InvalidParameterValueException"
    assert e.value.response["Error"]["Message"] == \
        "Could not unzip uploaded file. Please check your file, then try to upload again."
    with pytest.raises(botocore.exceptions.ClientError) as e:
        create(lam, lambda_role, runtime="java21")
    assert code(e.value) == "InvalidParameterValueException"
    assert "runtime" in e.value.response["Error"]["Message"]


def test_iam_denies_invoke_without_permission(server, lam, iam, lambda_role, account):
    name = create(lam, lambda_role)
    arn = f"arn:aws:lambda:{REGION}:{account}:function:{name}"
    _, akid, secret = new_user_with_key(iam, policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "lambda:GetFunction", "Resource": arn}],
    }))
    time.sleep(0.5)
    c = server.client("lambda", akid, secret)
    assert c.get_function(FunctionName=name)["Configuration"]["FunctionArn"] == arn
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.invoke(FunctionName=name, Payload=b"{}")
    assert code(e.value) == "AccessDeniedException" and status(e.value) == 403
    assert "lambda:InvokeFunction" in e.value.response["Error"]["Message"]
    # CreateFunction needs iam:PassRole on the role as well.
    _, akid, secret = new_user_with_key(iam, policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "lambda:CreateFunction", "Resource": "*"}],
    }))
    time.sleep(0.5)
    c = server.client("lambda", akid, secret)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        create(c, lambda_role)
    assert code(e.value) == "AccessDeniedException"
    assert "iam:PassRole" in e.value.response["Error"]["Message"]


# --- resource policy ------------------------------------------------------------------------

def test_add_get_remove_permission(lam, lambda_role, account):
    name = create(lam, lambda_role)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lam.get_policy(FunctionName=name)
    assert code(e.value) == "ResourceNotFoundException"
    secret_arn = f"arn:aws:secretsmanager:{REGION}:{account}:secret:db-AbCdEf"
    added = lam.add_permission(FunctionName=name, StatementId="sm", Action="lambda:InvokeFunction",
                               Principal="secretsmanager.amazonaws.com", SourceAccount=account, SourceArn=secret_arn)
    assert added["ResponseMetadata"]["HTTPStatusCode"] == 201
    stmt = json.loads(added["Statement"])
    assert stmt["Sid"] == "sm" and stmt["Principal"] == {"Service": "secretsmanager.amazonaws.com"}
    assert stmt["Condition"] == {"StringEquals": {"AWS:SourceAccount": account},
                                 "ArnLike": {"AWS:SourceArn": secret_arn}}
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lam.add_permission(FunctionName=name, StatementId="sm", Action="lambda:InvokeFunction",
                           Principal="secretsmanager.amazonaws.com")
    assert code(e.value) == "ResourceConflictException" and status(e.value) == 409
    lam.add_permission(FunctionName=name, StatementId="acct", Action="lambda:GetFunction", Principal=account)
    pol = lam.get_policy(FunctionName=name)
    doc = json.loads(pol["Policy"])
    assert doc["Version"] == "2012-10-17"
    assert [s["Sid"] for s in doc["Statement"]] == ["sm", "acct"]
    assert doc["Statement"][1]["Principal"] == {"AWS": f"arn:aws:iam::{account}:root"}
    assert pol["RevisionId"]
    assert lam.remove_permission(FunctionName=name, StatementId="sm")["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert [s["Sid"] for s in json.loads(lam.get_policy(FunctionName=name)["Policy"])["Statement"]] == ["acct"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lam.remove_permission(FunctionName=name, StatementId="sm")
    assert code(e.value) == "ResourceNotFoundException"


# --- the AWS CLI ----------------------------------------------------------------------------

def test_aws_cli_create_invoke_with_log_tail(server, lambda_role, tmp_path):
    akid, secret = server.admin_keys()
    env = {"AWS_ACCESS_KEY_ID": akid, "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": REGION}
    zip_path = tmp_path / "fn.zip"
    zip_path.write_bytes(make_zip({"app.py": "def handler(event, context):\n    print('cli log line')\n    return {'got': event}\n"}))
    name = uniq("clifn")
    r = aws_cli("--endpoint-url", server.endpoint, "lambda", "create-function", "--function-name", name,
                "--runtime", "python3.12", "--handler", "app.handler", "--role", lambda_role,
                "--zip-file", f"fileb://{zip_path}", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["FunctionName"] == name
    out = tmp_path / "out.json"
    r = aws_cli("--endpoint-url", server.endpoint, "lambda", "invoke", "--function-name", name,
                "--payload", '{"x": 42}',
                "--log-type", "Tail", str(out), env=env)
    assert r.returncode == 0, r.stderr
    meta = json.loads(r.stdout)
    assert meta["StatusCode"] == 200
    assert "cli log line" in base64.b64decode(meta["LogResult"]).decode()
    assert json.loads(out.read_text()) == {"got": {"x": 42}}
    r = aws_cli("--endpoint-url", server.endpoint, "lambda", "add-permission", "--function-name", name,
                "--statement-id", "sm", "--action", "lambda:InvokeFunction",
                "--principal", "secretsmanager.amazonaws.com", env=env)
    assert r.returncode == 0, r.stderr
    r = aws_cli("--endpoint-url", server.endpoint, "lambda", "get-function", "--function-name", uniq("nope"), env=env)
    assert r.returncode != 0 and "ResourceNotFoundException" in r.stderr


# --- HTTP route and missing runtimes --------------------------------------------------------

class _InvokeApi(http.server.BaseHTTPRequestHandler):
    """A stand-in for the Lambda Runtime Interface Emulator's Invoke API."""
    seen: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _InvokeApi.seen.append((self.path, body))
        event = json.loads(body)
        if event.get("fail"):
            out = json.dumps({"errorMessage": "routed failure", "errorType": "Exception"}).encode()
            self.send_response(200)
            self.send_header("X-Amz-Function-Error", "Unhandled")
        else:
            out = json.dumps({"routed": event}).encode()
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


def test_http_route_and_missing_runtime(tmp_path):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _InvokeApi)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        cfg = tmp_path / "tresor.toml"
        cfg.write_text(f'[lambda]\nmax_concurrency = 2\n[[lambda.http]]\nfunction = "routed"\n'
                       f'url = "http://127.0.0.1:{httpd.server_address[1]}"\n')
        s = start_server("--config", str(cfg), data_dir=tmp_path / "data",
                         env={"TRESOR_LAMBDA_NODE": "/nonexistent/node"})
        try:
            iam = s.admin("iam")
            role = iam.create_role(RoleName="fn", AssumeRolePolicyDocument=LAMBDA_TRUST)["Role"]["Arn"]
            lam = s.admin("lambda")
            create(lam, role, name="routed")
            out = payload_of(lam.invoke(FunctionName="routed", Payload=b'{"q": 1}'))
            assert out == {"routed": {"q": 1}}
            assert _InvokeApi.seen[-1][0] == "/2015-03-31/functions/function/invocations"
            resp = lam.invoke(FunctionName="routed", Payload=b'{"fail": true}')
            assert resp["FunctionError"] == "Unhandled"
            assert payload_of(resp)["errorMessage"] == "routed failure"

            name = create(lam, role, source="exports.handler = async () => 1;", runtime="nodejs20.x")
            with pytest.raises(botocore.exceptions.ClientError) as e:
                lam.invoke(FunctionName=name)
            assert code(e.value) == "InvalidRuntimeException" and status(e.value) == 502
        finally:
            s.stop()
    finally:
        httpd.shutdown()


def test_functions_of_an_https_tresor_trust_its_certificate(tmp_path):
    import subprocess
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    s = start_server("--tls-cert", str(cert), "--tls-key", str(key), data_dir=tmp_path / "d")
    try:
        iam = s.admin("iam", verify=str(cert))
        role = iam.create_role(RoleName="fn", AssumeRolePolicyDocument=LAMBDA_TRUST)["Role"]["Arn"]
        lam = s.admin("lambda", verify=str(cert))
        src = ("import boto3, os\ndef handler(event, context):\n"
               "    return {'arn': boto3.client('sts').get_caller_identity()['Arn'],\n"
               "            'endpoint': os.environ['AWS_ENDPOINT_URL']}\n")
        name = create(lam, role, source=src, Timeout=60)
        resp = lam.invoke(FunctionName=name)
        assert "FunctionError" not in resp, resp["Payload"].read()
        out = payload_of(resp)
        assert out["endpoint"] == s.endpoint and out["endpoint"].startswith("https://")
        assert out["arn"].endswith(f":assumed-role/fn/{name}")
    finally:
        s.stop()
