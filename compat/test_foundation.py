"""The foundation (`tresor serve`, wire layer, SigV4, first-run identity), exercised
with boto3, the AWS CLI and botocore-signed raw requests against a real server."""

import datetime
import json
import os
import re
import signal
import stat
import subprocess
import urllib.request
import xml.etree.ElementTree as ET

import botocore.exceptions
import pytest

from conftest import aws_cli, start_server
from sign import json_call, query_call, send, signed

NS = "{https://sts.amazonaws.com/doc/2011-06-15/}"


def error_code(exc: botocore.exceptions.ClientError) -> str:
    return exc.response["Error"]["Code"]


# --- first-run identity -------------------------------------------------------------------

def test_first_start_creates_an_account_admin_and_private_profile(server):
    assert any("AWS_PROFILE=tresor" in l for l in server.stdout_lines), server.stdout_lines
    for f in (server.credentials_file, server.config_file, server.data_dir / "root.key"):
        mode = stat.S_IMODE(os.stat(f).st_mode)
        assert mode == 0o600, (f, oct(mode))
    akid, secret = server.admin_keys()
    assert re.fullmatch(r"AKIA[A-Z2-7]{16}", akid)
    assert len(secret) == 40
    # The secret is printed nowhere: not in the banner, not in the log.
    assert all(secret not in l for l in server.stdout_lines)


def test_boto3_get_caller_identity_shows_the_administrator(server):
    ident = server.admin("sts").get_caller_identity()
    assert re.fullmatch(r"\d{12}", ident["Account"])
    assert ident["Arn"] == f"arn:aws:iam::{ident['Account']}:user/tresor-admin"
    assert re.fullmatch(r"AIDA[A-Z2-7]{17}", ident["UserId"])
    meta = ident["ResponseMetadata"]
    assert meta["HTTPStatusCode"] == 200
    assert re.fullmatch(r"[0-9a-f-]{36}", meta["RequestId"])
    assert "date" in meta["HTTPHeaders"]


def test_the_printed_aws_cli_command_works(server):
    line = next(l for l in server.stdout_lines if "sts get-caller-identity" in l).strip()
    env = dict(re.findall(r"(AWS_[A-Z_]+)=(\S+)", line))
    endpoint = re.search(r"--endpoint-url (\S+)", line).group(1)
    r = aws_cli("--endpoint-url", endpoint, "sts", "get-caller-identity", env=env)
    assert r.returncode == 0, r.stderr
    ident = json.loads(r.stdout)
    assert ident["Arn"].endswith(":user/tresor-admin")
    # The profile's config carries the endpoint too, so the plain command works as well.
    r = aws_cli("sts", "get-caller-identity", "--query", "Account", "--output", "text", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ident["Account"]


def test_restart_keeps_the_identity_and_prints_no_secret(tmp_data_dir):
    s = start_server(data_dir=tmp_data_dir)
    first = s.admin("sts").get_caller_identity()
    assert s.stop() == 0
    s2 = start_server(data_dir=tmp_data_dir)
    try:
        assert not any("sts get-caller-identity" in l for l in s2.stdout_lines)
        again = s2.admin("sts").get_caller_identity()
        assert again["Arn"] == first["Arn"] and again["UserId"] == first["UserId"]
    finally:
        s2.stop()


def test_account_id_flag_sets_the_new_account(tmp_data_dir):
    s = start_server("--account-id", "111122223333", data_dir=tmp_data_dir)
    try:
        assert s.admin("sts").get_caller_identity()["Account"] == "111122223333"
    finally:
        s.stop()


def test_secret_key_is_not_stored_in_the_clear(server):
    _, secret = server.admin_keys()
    # Every file under the data directory (Lambda's unpacked code included), but the profile.
    for path in server.data_dir.rglob("*"):
        if path.name in ("credentials",) or not path.is_file():
            continue
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            # An audit segment indexed into audit.db since the listing.
            assert path.name.startswith("audit.db-seg."), str(path)
            continue
        assert secret.encode() not in data, str(path)


def test_dev_mode_uses_test_test_and_still_verifies_signatures():
    s = start_server("--dev")
    try:
        ident = s.client("sts", "test", "test").get_caller_identity()
        assert ident["Account"] == "000000000000"
        assert ident["Arn"] == "arn:aws:iam::000000000000:root"
        with pytest.raises(botocore.exceptions.ClientError) as e:
            s.client("sts", "test", "wrong").get_caller_identity()
        assert error_code(e.value) == "SignatureDoesNotMatch"
    finally:
        s.stop()


# --- SigV4 error paths --------------------------------------------------------------------

def test_wrong_secret_is_signature_does_not_match(server):
    akid, _ = server.admin_keys()
    with pytest.raises(botocore.exceptions.ClientError) as e:
        server.client("sts", akid, "x" * 40).get_caller_identity()
    assert error_code(e.value) == "SignatureDoesNotMatch"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_unknown_key_is_invalid_client_token_id(server):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        server.client("sts", "AKIAAAAAAAAAAAAAAAAA", "x" * 40).get_caller_identity()
    assert error_code(e.value) == "InvalidClientTokenId"
    assert e.value.response["Error"]["Message"] == "The security token included in the request is invalid."
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_request_dated_20_minutes_ago_is_refused_as_expired_signature(server):
    akid, secret = server.admin_keys()
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=20)
    status, headers, body = query_call(server, {"Action": "GetCallerIdentity", "Version": "2011-06-15"}, akid, secret, now=past)
    assert status == 403
    err = ET.fromstring(body).find(f"{NS}Error")
    assert err.find(f"{NS}Code").text == "SignatureDoesNotMatch"
    assert re.match(r"Signature expired: \d{8}T\d{6}Z is now earlier than \d{8}T\d{6}Z \(\d{8}T\d{6}Z - 5 min\.\)", err.find(f"{NS}Message").text)
    # The Date header lets SDKs correct their clock.
    assert "Date" in headers or "date" in headers
    # The same over the JSON protocol is InvalidSignatureException, HTTP 400.
    status, _, body = json_call(server, "AmazonSSM.GetParameter", {"Name": "x"}, akid, secret, "ssm", now=past)
    assert status == 400 and json.loads(body)["__type"] == "InvalidSignatureException"


def test_request_dated_in_the_future_is_refused(server):
    akid, secret = server.admin_keys()
    future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=10)
    status, _, body = query_call(server, {"Action": "GetCallerIdentity", "Version": "2011-06-15"}, akid, secret, now=future)
    assert status == 403
    assert b"Signature not yet current" in body


def test_missing_authentication(server):
    req = urllib.request.Request(server.endpoint + "/", data=b"Action=GetCallerIdentity&Version=2011-06-15", method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    status, _, body = send_raw(req)
    assert status == 403 and b"<Code>MissingAuthenticationToken</Code>" in body
    req = urllib.request.Request(server.endpoint + "/", data=b"{}", method="POST",
                                 headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "secretsmanager.ListSecrets"})
    status, _, body = send_raw(req)
    assert status == 400 and json.loads(body)["__type"] == "MissingAuthenticationTokenException"


def test_incomplete_authorization_header(server):
    req = urllib.request.Request(server.endpoint + "/", data=b"Action=GetCallerIdentity&Version=2011-06-15", method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded",
                                          "X-Amz-Date": "20260101T000000Z",
                                          "Authorization": "AWS4-HMAC-SHA256 Credential=AKIAAAAAAAAAAAAAAAAA/20260101/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date"})
    status, _, body = send_raw(req)
    assert status == 400 and b"<Code>IncompleteSignature</Code>" in body
    assert b"Signature" in body


def test_scope_must_name_the_called_service(server):
    akid, secret = server.admin_keys()
    status, _, body = json_call(server, "AmazonSSM.GetParameter", {"Name": "x"}, akid, secret, "kms")
    assert status == 400
    err = json.loads(body)
    assert err["__type"] == "InvalidSignatureException"
    assert "Credential should be scoped to correct service: 'ssm'" in err["message"]


def test_unserved_region_is_refused(server):
    akid, secret = server.admin_keys()
    with pytest.raises(botocore.exceptions.ClientError) as e:
        server.client("sts", akid, secret, region="xx-nowhere-1").get_caller_identity()
    assert error_code(e.value) == "SignatureDoesNotMatch"
    assert "valid region" in e.value.response["Error"]["Message"]


def test_tampered_body_fails_verification(server):
    akid, secret = server.admin_keys()
    p = signed("POST", server.endpoint, "sts", "us-east-1", akid, secret,
               headers={"Content-Type": "application/x-www-form-urlencoded"},
               body=b"Action=GetCallerIdentity&Version=2011-06-15")
    status, _, body = send(p, body_override=b"Action=GetCallerIdentity&Version=2011-06-16")
    assert status == 403 and b"SignatureDoesNotMatch" in body


def test_presigned_get_caller_identity_url_works(server):
    # As on AWS, a URL to be fetched with GET must be signed for GET (botocore signs POST by default).
    url = server.admin("sts").generate_presigned_url("get_caller_identity", ExpiresIn=60, HttpMethod="GET")
    with urllib.request.urlopen(url, timeout=10) as resp:
        doc = ET.fromstring(resp.read())
    arn = doc.find(f"{NS}GetCallerIdentityResult/{NS}Arn").text
    assert arn.endswith(":user/tresor-admin")
    # Changing a signed parameter breaks it.
    bad = url.replace("X-Amz-Expires=60", "X-Amz-Expires=61")
    status, _, body = send_raw(urllib.request.Request(bad))
    assert status == 403 and b"SignatureDoesNotMatch" in body


# --- wire layer ----------------------------------------------------------------------------

def test_unknown_json_operation_and_unknown_target_prefix(server):
    akid, secret = server.admin_keys()
    status, headers, body = json_call(server, "AmazonSSM.NoSuchOperation", {}, akid, secret, "ssm")
    assert status == 400 and json.loads(body)["__type"] == "UnknownOperationException"
    assert any(k.lower() == "x-amzn-requestid" for k in headers)
    status, _, body = json_call(server, "NoSuchService_20990101.Op", {}, akid, secret, "ssm")
    assert status == 400 and json.loads(body)["__type"] == "UnknownOperationException"


def test_unimplemented_operations_never_answer_success(server):
    # Operations tresor does not implement (SSM documents) must not pretend to work.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        server.admin("ssm").list_documents()
    assert error_code(e.value) == "UnknownOperationException"


def test_unknown_query_action(server):
    akid, secret = server.admin_keys()
    status, _, body = query_call(server, {"Action": "NoSuchAction", "Version": "2011-06-15"}, akid, secret)
    assert status == 400 and b"<Code>InvalidAction</Code>" in body


def test_oversized_body_is_refused_not_crashed(server):
    akid, secret = server.admin_keys()
    big = b"{" + b" " * (2 * 1024 * 1024) + b"}"
    status, _, body = json_call(server, "secretsmanager.ListSecrets", None, akid, secret, "secretsmanager", raw_body=big)
    assert status == 413 and json.loads(body)["__type"] == "RequestEntityTooLarge"
    # The server is still healthy afterwards.
    assert server.admin("sts").get_caller_identity()["Account"]


def test_health(server):
    with urllib.request.urlopen(server.endpoint + "/health", timeout=5) as r:
        assert r.status == 200 and json.loads(r.read())["status"] == "ok"


def test_a_connection_opened_by_a_health_probe_serves_signed_calls_too(server):
    """A connection whose first request is /health is served on the accept thread; the signed
    requests that follow on it still run (on the request workers) and answer as usual."""
    import http.client
    import urllib.parse

    from robust.robust_http import sign_headers

    akid, secret = server.admin_keys()
    u = urllib.parse.urlsplit(server.endpoint)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        for _ in range(3):
            conn.request("GET", "/health")
            r = conn.getresponse()
            assert r.status == 200 and json.loads(r.read())["status"] == "ok"
            body = b"Action=GetCallerIdentity&Version=2011-06-15"
            headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
            headers.update(sign_headers(server.endpoint, "sts", akid, secret, body=body, headers=headers))
            conn.request("POST", "/", body=body, headers=headers)
            r = conn.getresponse()
            text = r.read().decode()
            assert r.status == 200, text
            assert "<GetCallerIdentityResult>" in text and "<Account>" in text
            # A signed call with a body that fails: the error comes back on the same connection.
            bad = dict(headers)
            bad["Authorization"] = bad["Authorization"][:-4] + "0000"
            conn.request("POST", "/", body=body, headers=bad)
            r = conn.getresponse()
            assert r.status == 403 and b"SignatureDoesNotMatch" in r.read()
    finally:
        conn.close()


def send_raw(req):
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


# --- serve: configuration, TLS, shutdown ---------------------------------------------------

def test_non_loopback_without_tls_is_refused_with_a_reason(tmp_data_dir):
    s = start_server("--listen", "0.0.0.0:0", data_dir=tmp_data_dir, expect_ready=False)
    code = s.proc.wait(timeout=10)
    assert code != 0
    assert "without TLS" in "".join(s.stdout_lines)


def test_unknown_config_file_key_is_an_error(tmp_path):
    cfg = tmp_path / "tresor.toml"
    cfg.write_text('listen = "127.0.0.1:0"\nregoins = ["us-east-1"]\n')
    s = start_server("--config", str(cfg), data_dir=tmp_path / "d", expect_ready=False)
    assert s.proc.wait(timeout=10) != 0
    assert "regoins" in "".join(s.stdout_lines)


def test_config_file_then_env_then_flags(tmp_path):
    cfg = tmp_path / "tresor.toml"
    cfg.write_text('regions = ["eu-west-1"]\n')
    s = start_server("--config", str(cfg), data_dir=tmp_path / "d")
    try:
        akid, secret = s.admin_keys()
        assert s.client("sts", akid, secret, region="eu-west-1").get_caller_identity()
        with pytest.raises(botocore.exceptions.ClientError):
            s.client("sts", akid, secret, region="us-east-1").get_caller_identity()
    finally:
        s.stop()
    # The environment beats the file; a flag beats the environment.
    s = start_server("--config", str(cfg), data_dir=tmp_path / "d", env={"TRESOR_REGIONS": "us-west-2"})
    try:
        akid, secret = s.admin_keys()
        assert s.client("sts", akid, secret, region="us-west-2").get_caller_identity()
    finally:
        s.stop()
    s = start_server("--config", str(cfg), "--regions", "ap-south-1", data_dir=tmp_path / "d", env={"TRESOR_REGIONS": "us-west-2"})
    try:
        akid, secret = s.admin_keys()
        assert s.client("sts", akid, secret, region="ap-south-1").get_caller_identity()
        with pytest.raises(botocore.exceptions.ClientError):
            s.client("sts", akid, secret, region="us-west-2").get_caller_identity()
    finally:
        s.stop()


def test_tls_with_certificate_files(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    s = start_server("--tls-cert", str(cert), "--tls-key", str(key), data_dir=tmp_path / "d")
    try:
        assert s.endpoint.startswith("https://")
        ident = s.admin("sts", verify=str(cert)).get_caller_identity()
        assert ident["Arn"].endswith(":user/tresor-admin")
    finally:
        s.stop()


def test_sigterm_shuts_down_cleanly_and_the_store_survives(tmp_data_dir):
    s = start_server(data_dir=tmp_data_dir)
    s.admin("sts").get_caller_identity()
    assert s.stop(signal.SIGTERM) == 0
    s = start_server(data_dir=tmp_data_dir)
    try:
        assert s.admin("sts").get_caller_identity()["Arn"].endswith(":user/tresor-admin")
    finally:
        assert s.stop(signal.SIGINT) == 0


# --- decoding errors on a real operation ----------------------------------

@pytest.mark.parametrize(
    "raw, code",
    [
        (b"{", "SerializationException"),                       # malformed JSON
        (b"[1, 2]", "SerializationException"),                  # not an input structure
        (b'{"SecretId": 42}', "SerializationException"),        # wrong member type
        (b'{"VersionStage": "AWSCURRENT"}', "ValidationException"),  # missing required member
    ],
)
def test_bad_json_input_gets_aws_error_codes(server, raw, code):
    akid, secret = server.admin_keys()
    status, headers, body = json_call(server, "secretsmanager.GetSecretValue", None, akid, secret,
                                      "secretsmanager", raw_body=raw)
    assert status == 400, body
    err = json.loads(body)
    assert err["__type"] == code
    if code == "ValidationException":
        assert err["Message"] == ("1 validation error detected: Value null at 'secretId' failed to satisfy "
                                  "constraint: Member must not be null")


def test_wrong_member_type_does_not_echo_the_value(server):
    akid, secret = server.admin_keys()
    raw = b'{"Name": "x", "SecretString": {"nested": "hunter2-very-secret"}}'
    status, _, body = json_call(server, "secretsmanager.CreateSecret", None, akid, secret, "secretsmanager", raw_body=raw)
    assert status == 400 and json.loads(body)["__type"] == "SerializationException"
    assert b"hunter2" not in body


def test_bad_query_input_gets_aws_error_codes(server):
    akid, secret = server.admin_keys()
    # A parameter given twice.
    status, _, body = query_call(server, {"Action": "GetRole", "Version": "2010-05-08", "RoleName": "a"}, akid, secret, service="iam")
    assert status in (400, 404)
    p = signed("POST", server.endpoint, "iam", "us-east-1", akid, secret,
               headers={"Content-Type": "application/x-www-form-urlencoded"},
               body=b"Action=GetRole&Version=2010-05-08&RoleName=a&RoleName=b")
    status, _, body = send(p)
    assert status == 400 and b"<Code>MalformedQueryString</Code>" in body
    # A required parameter missing.
    status, _, body = query_call(server, {"Action": "GetRole", "Version": "2010-05-08"}, akid, secret, service="iam")
    assert status == 400 and b"<Code>ValidationError</Code>" in body
    assert b"Value null at &apos;roleName&apos;" in body or b"Value null at 'roleName'" in body


def test_a_china_deployment_makes_aws_cn_arns(tmp_data_dir):
    # "arn:aws-cn:…" in the China regions (AWS General Reference, "Amazon Resource Names",
    # partition). One deployment serves one partition.
    s = start_server("--regions", "cn-north-1,cn-northwest-1", data_dir=tmp_data_dir)
    try:
        region = "cn-north-1"
        ident = s.client("sts", *s.admin_keys(), region=region).get_caller_identity()
        account = ident["Account"]
        assert ident["Arn"] == f"arn:aws-cn:iam::{account}:user/tresor-admin"
        iam = s.client("iam", *s.admin_keys(), region=region)
        role = iam.create_role(RoleName="cn-role", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"AWS": ident["Arn"]}}]}))["Role"]
        assert role["Arn"] == f"arn:aws-cn:iam::{account}:role/cn-role"
        sts = s.client("sts", *s.admin_keys(), region=region)
        c = sts.assume_role(RoleArn=role["Arn"], RoleSessionName="cn")["AssumedRoleUser"]
        assert c["Arn"] == f"arn:aws-cn:sts::{account}:assumed-role/cn-role/cn"
        sm = s.client("secretsmanager", *s.admin_keys(), region=region)
        arn = sm.create_secret(Name="cn-secret", SecretString="v")["ARN"]
        assert arn.startswith(f"arn:aws-cn:secretsmanager:{region}:{account}:secret:cn-secret-")
        assert sm.get_secret_value(SecretId=arn)["SecretString"] == "v"
        kms = s.client("kms", *s.admin_keys(), region=region)
        key = kms.create_key()["KeyMetadata"]
        assert key["Arn"] == f"arn:aws-cn:kms:{region}:{account}:key/{key['KeyId']}"
        policy = json.loads(kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"])
        assert policy["Statement"][0]["Principal"]["AWS"] == f"arn:aws-cn:iam::{account}:root"
        ssm = s.client("ssm", *s.admin_keys(), region=region)
        ssm.put_parameter(Name="/cn/p", Value="x", Type="String")
        assert ssm.get_parameter(Name="/cn/p")["Parameter"]["ARN"] == f"arn:aws-cn:ssm:{region}:{account}:parameter/cn/p"
        assert ssm.get_parameter(Name="/aws/reference/secretsmanager/cn-secret", WithDecryption=True)["Parameter"]["Value"] == "v"
    finally:
        s.stop()


def test_regions_of_two_partitions_are_refused(tmp_data_dir):
    s = start_server("--regions", "us-east-1,cn-north-1", data_dir=tmp_data_dir, expect_ready=False)
    assert s.proc.wait(timeout=30) != 0
    assert not s.endpoint
    assert "different partitions (aws and aws-cn)" in "".join(s.stdout_lines), s.stdout_lines
