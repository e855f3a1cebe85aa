"""Identities from an upstream AWS account: a host that runs as a role on (real) AWS logs into
tresor with a SigV4-presigned `sts:GetCallerIdentity` request for its own session — tresor
forwards it to the configured upstream STS, reads the caller's ARN and account from the answer
and, if a tresor role's trust policy names that upstream principal, returns credentials for
the role (tresor's own STS action `AssumeRoleWithCallerIdentity`, unsigned).

A second `tresor serve` stands in as the upstream AWS. The request is presigned with botocore's
own SigV4 query signer, signing the `X-Tresor-Server-ID` header as the upstream configuration
requires; a request presigned for another server id is refused."""

import json
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.exceptions
import pytest

from conftest import REGION, make_role, start_server, uniq

NS = "{https://sts.amazonaws.com/doc/2011-06-15/}"


def presign(endpoint: str, creds: dict, server_id: str | None) -> str:
    """A presigned GetCallerIdentity URL for `creds` (an STS `Credentials` member)."""
    headers = {"X-Tresor-Server-ID": server_id} if server_id else {}
    req = botocore.awsrequest.AWSRequest(method="GET", url=endpoint + "/", headers=headers,
                                         params={"Action": "GetCallerIdentity", "Version": "2011-06-15"})
    signer = botocore.auth.SigV4QueryAuth(
        botocore.credentials.Credentials(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]),
        "sts", REGION, expires=300)
    signer.add_auth(req)
    return req.prepare().url


def login(endpoint: str, role_arn: str, url: str, session="from-aws") -> tuple[int, ET.Element]:
    body = urllib.parse.urlencode({"Action": "AssumeRoleWithCallerIdentity", "Version": "2011-06-15",
                                   "RoleArn": role_arn, "RoleSessionName": session, "PresignedUrl": url}).encode()
    req = urllib.request.Request(endpoint + "/", data=body, method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, ET.fromstring(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, ET.fromstring(e.read())


def error(doc: ET.Element) -> tuple[str, str]:
    code = doc.find(".//{*}Code")
    message = doc.find(".//{*}Message")
    return (code.text if code is not None else ""), (message.text if message is not None else "")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("upstream")
    upstream = start_server(data_dir=tmp / "upstream")
    up_iam = upstream.admin("iam")
    up_admin = upstream.admin("sts").get_caller_identity()
    host_role = make_role(up_iam, "host-role", up_admin["Arn"])
    other_role = make_role(up_iam, "other-role", up_admin["Arn"])
    config = tmp / "tresor.toml"
    config.write_text(
        "[[federation.upstream]]\n"
        'name = "aws-prod"\n'
        f'endpoint = "{upstream.endpoint}"\n'
        f'allowed_accounts = ["{up_admin["Account"]}"]\n'
        'server_id = "tresor-a"\n')
    server = start_server("--config", str(config), data_dir=tmp / "tresor")
    iam = server.admin("iam")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"AWS": host_role["Arn"]}}]}
    role = iam.create_role(RoleName="from-aws", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    iam.put_role_policy(RoleName="from-aws", PolicyName="read", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]}))
    secret = uniq("fleet/db-password")
    server.admin("secretsmanager").create_secret(Name=secret, SecretString="s3cret-value")
    yield {"upstream": upstream, "server": server, "role": role, "secret": secret,
           "host": upstream.assume(host_role["Arn"], "i-0123456789abcdef0"),
           "other": upstream.assume(other_role["Arn"], "i-0fedcba9876543210"),
           "account": up_admin["Account"]}
    server.stop()
    upstream.stop()


def test_an_upstream_role_session_logs_in_and_reads_a_secret(fleet):
    server, upstream = fleet["server"], fleet["upstream"]
    status, doc = login(server.endpoint, fleet["role"]["Arn"], presign(upstream.endpoint, fleet["host"], "tresor-a"))
    assert status == 200, error(doc)
    result = doc.find(".//{*}AssumeRoleWithCallerIdentityResult")
    creds = {k: result.find(f"{{*}}Credentials/{{*}}{k}").text
             for k in ("AccessKeyId", "SecretAccessKey", "SessionToken")}
    assert creds["AccessKeyId"].startswith("ASIA")
    assert result.find("{*}UpstreamArn").text == \
        f"arn:aws:sts::{fleet['account']}:assumed-role/host-role/i-0123456789abcdef0"
    assert result.find("{*}UpstreamAccount").text == fleet["account"]
    session_arn = result.find("{*}AssumedRoleUser/{*}Arn").text
    assert session_arn.endswith(":assumed-role/from-aws/from-aws")
    assert server.session("sts", creds).get_caller_identity()["Arn"] == session_arn
    value = server.session("secretsmanager", creds).get_secret_value(SecretId=fleet["secret"])["SecretString"]
    assert value == "s3cret-value"
    # The tresor session has the tresor role's permissions, nothing of the upstream's.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        server.session("iam", creds).list_roles()
    assert e.value.response["Error"]["Code"] == "AccessDenied"


def test_a_request_presigned_for_another_server_is_refused(fleet):
    server, upstream = fleet["server"], fleet["upstream"]
    status, doc = login(server.endpoint, fleet["role"]["Arn"], presign(upstream.endpoint, fleet["host"], "tresor-b"))
    assert status == 403
    code, message = error(doc)
    assert code == "AccessDenied"
    assert "upstream STS refused" in message and "SignatureDoesNotMatch" in message
    # Not signing the server id at all is refused before anything is forwarded.
    status, doc = login(server.endpoint, fleet["role"]["Arn"], presign(upstream.endpoint, fleet["host"], None))
    assert status == 403
    assert "X-Tresor-Server-ID" in error(doc)[1]


def test_only_the_principal_the_trust_policy_names_gets_in(fleet):
    server, upstream = fleet["server"], fleet["upstream"]
    status, doc = login(server.endpoint, fleet["role"]["Arn"], presign(upstream.endpoint, fleet["other"], "tresor-a"))
    assert status == 403
    code, message = error(doc)
    assert code == "AccessDenied"
    assert "assumed-role/other-role/" in message and "sts:AssumeRole" in message


def test_presigned_requests_must_be_get_caller_identity_for_the_configured_endpoint(fleet):
    server, upstream = fleet["server"], fleet["upstream"]
    good = presign(upstream.endpoint, fleet["host"], "tresor-a")
    elsewhere = good.replace(upstream.endpoint, "http://127.0.0.1:9")
    status, doc = login(server.endpoint, fleet["role"]["Arn"], elsewhere)
    assert status == 403 and error(doc)[0] == "AccessDenied"
    other_action = good.replace("Action=GetCallerIdentity", "Action=GetSessionToken")
    status, doc = login(server.endpoint, fleet["role"]["Arn"], other_action)
    assert status == 400 and error(doc)[0] == "ValidationError"
    # An expired or tampered presigned request: the upstream says no.
    tampered = good.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    status, doc = login(server.endpoint, fleet["role"]["Arn"], tampered)
    assert status == 403 and error(doc)[0] == "AccessDenied"


def test_accounts_outside_the_allowed_list_and_an_unreachable_upstream(fleet, tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    upstream = fleet["upstream"]
    config = tmp_path / "tresor.toml"
    config.write_text(
        "[[federation.upstream]]\n"
        'name = "aws-other"\n'
        f'endpoint = "{upstream.endpoint}"\n'
        'allowed_accounts = ["000000000001"]\n'
        'server_id = "tresor-c"\n'
        "[[federation.upstream]]\n"
        'name = "aws-down"\n'
        f'endpoint = "{closed}"\n'
        f'allowed_accounts = ["{fleet["account"]}"]\n')
    server = start_server("--config", str(config), data_dir=tmp_path / "c")
    try:
        iam = server.admin("iam")
        trust = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"AWS": f"arn:aws:iam::{fleet['account']}:role/host-role"}}]}
        role = iam.create_role(RoleName="from-aws", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        status, doc = login(server.endpoint, role, presign(upstream.endpoint, fleet["host"], "tresor-c"))
        assert status == 403
        code, message = error(doc)
        assert code == "AccessDenied" and "assumed-role/host-role/" in message
        status, doc = login(server.endpoint, role, presign(closed, fleet["host"], None))
        assert status == 400
        assert error(doc)[0] == "IDPCommunicationError"
    finally:
        server.stop()

    # A misconfigured upstream stops the start: plain HTTP off loopback.
    bad = tmp_path / "bad.toml"
    bad.write_text('[[federation.upstream]]\nname = "x"\nendpoint = "http://sts.example.com"\n'
                   'allowed_accounts = ["111122223333"]\n')
    refused = start_server("--config", str(bad), data_dir=tmp_path / "bad", expect_ready=False)
    assert refused.proc.returncode not in (None, 0)
    assert "not https" in refused.log_tail() + "".join(refused.stdout_lines)
