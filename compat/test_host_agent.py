"""`tresor agent` on a host running `tresor imds`: the AWS Secrets Manager Agent's API (its
README and observed behavior: `/secretsmanager/get`, `/v1/<id>`, `/ping`, the
`X-Aws-Parameters-Secrets-Token` SSRF check, its error statuses and bodies), the Parameters and
Secrets Lambda Extension's parameter path, a rotation served within the refresh interval, and
the `aws-secretsmanager-caching` library reading the same secret."""

import json
import re
import time
import urllib.parse
import uuid

import botocore.session
import pytest
from aws_secretsmanager_caching import SecretCache, SecretCacheConfig

from conftest import REGION
from hostside import fleet, http, imds, start_host, wait_for  # noqa: F401 (fixtures)

TOKEN = "bkua_" + uuid.uuid4().hex
SSRF = "ssrf-" + uuid.uuid4().hex


def start_agent(fleet, imds, *args, token_env=None, expect_ready=True):
    env = fleet.client_env(imds.url)
    if token_env is None:
        token_file = fleet.tmp / "ssrf-token"
        token_file.write_text(SSRF + "\n")
        token_file.chmod(0o600)
        token_env = {"AWS_TOKEN": f"file://{token_file}"}
    env.update(token_env)
    return start_host("agent", "--port", "0", "--refresh-interval", "1", *args, env=env,
                      expect_ready=expect_ready)


@pytest.fixture(scope="module")
def agent(fleet, imds):
    p = start_agent(fleet, imds)
    yield p
    p.stop()


def get(agent, path, token=SSRF, **headers):
    h = dict(headers)
    if token is not None:
        h["X-Aws-Parameters-Secrets-Token"] = token
    return http("GET", agent.url + path, h)


def q(**params):
    return urllib.parse.urlencode(params)


def test_ping_needs_no_token(agent):
    assert http("GET", agent.url + "/ping")[0::2] == (200, "healthy")


def test_requests_without_the_ssrf_token_are_refused(agent, fleet):
    path = "/secretsmanager/get?" + q(secretId=fleet.secret_id)
    assert get(agent, path, token=None)[0::2] == (403, "Bad Token")
    assert get(agent, path, token="wrong")[0::2] == (403, "Bad Token")
    assert get(agent, path, token=SSRF[:-1])[0::2] == (403, "Bad Token")
    # X-Vault-Token is the agent's other accepted header.
    assert http("GET", agent.url + path, {"X-Vault-Token": SSRF})[0] == 200
    assert get(agent, path, **{"X-Forwarded-For": "10.1.2.3"})[0::2] == (400, "Forwarded")
    assert http("POST", agent.url + path, {"X-Aws-Parameters-Secrets-Token": SSRF})[0::2] == (405, "Not allowed")
    assert get(agent, "/nothing")[0::2] == (404, "Not found")


def test_get_secret_value_answers_as_the_agent_does(agent, fleet, server):
    status, headers, body = get(agent, "/secretsmanager/get?" + q(secretId=fleet.secret_id))
    assert status == 200, body
    assert "content-type" not in headers
    # The agent's field order, CreatedDate as epoch seconds in a string.
    assert list(json.loads(body)) == ["ARN", "Name", "VersionId", "SecretString", "VersionStages", "CreatedDate"]
    got = json.loads(body)
    direct = server.admin("secretsmanager").get_secret_value(SecretId=fleet.secret_id)
    for k in ("ARN", "Name", "VersionId", "SecretString", "VersionStages"):
        assert got[k] == direct[k], k
    assert re.fullmatch(r"\d+(\.\d+)?", got["CreatedDate"])
    assert abs(float(got["CreatedDate"]) - direct["CreatedDate"].timestamp()) < 0.001
    # The path style and the full ARN answer the same.
    assert json.loads(get(agent, "/v1/" + fleet.secret_id)[2]) == got
    assert json.loads(get(agent, "/secretsmanager/get?" + q(secretId=fleet.secret_arn))[2])["VersionId"] == got["VersionId"]


def test_bad_queries(agent, fleet):
    assert get(agent, "/secretsmanager/get")[0::2] == (400, "missing parameter secretId")
    assert get(agent, "/secretsmanager/get?" + q(secretId=fleet.secret_id, foo="1"))[0::2] == (400, "unknown parameter: foo")
    assert get(agent, "/secretsmanager/get?" + q(secretId=fleet.secret_id, refreshNow="maybe"))[0::2] == (400, "invalid refreshNow value")
    assert get(agent, "/v1/")[0::2] == (400, "missing secret ID")


def test_service_errors_keep_their_status_and_code(agent, fleet, server):
    # A secret the role may not read: Secrets Manager's AccessDeniedException, as the agent
    # passes it through.
    other = server.admin("secretsmanager").create_secret(Name=f"other-{fleet.suffix}", SecretString="x")
    status, _, body = get(agent, "/secretsmanager/get?" + q(secretId=other["ARN"]))
    assert status == 400
    assert body.startswith('{"__type":"AccessDeniedException", "message":"')
    assert "secretsmanager:GetSecretValue" in json.loads(body)["message"]
    # A version id that does not exist: ResourceNotFoundException.
    status, _, body = get(agent, "/secretsmanager/get?" + q(secretId=fleet.secret_id, versionId=str(uuid.uuid4())))
    assert status == 400 and json.loads(body)["__type"] == "ResourceNotFoundException"


def test_rotation_is_served_within_the_refresh_interval(agent, fleet):
    path = "/secretsmanager/get?" + q(secretId=fleet.secret_id)
    before = json.loads(get(agent, path)[2])
    new = "bkua_" + uuid.uuid4().hex
    new_version = fleet.rotate(new)
    rotated_at = time.time()
    after = wait_for(lambda: (lambda b: b if b["SecretString"] == new else None)(json.loads(get(agent, path)[2])),
                     timeout=10, interval=0.1, what="the rotated value")
    # The refresh interval is 1 s: served within it (plus a request's time), not after a TTL.
    assert time.time() - rotated_at < 4
    assert after["VersionId"] == new_version and after["VersionStages"] == ["AWSCURRENT"]
    # The previous version by stage, and a version by id.
    prev = json.loads(get(agent, "/secretsmanager/get?" + q(secretId=fleet.secret_id, versionStage="AWSPREVIOUS"))[2])
    assert prev["SecretString"] == before["SecretString"] and prev["VersionId"] == before["VersionId"]
    pinned = json.loads(get(agent, "/secretsmanager/get?" + q(secretId=fleet.secret_id, versionId=before["VersionId"]))[2])
    assert pinned["SecretString"] == before["SecretString"]
    fleet.rotate(TOKEN)
    wait_for(lambda: json.loads(get(agent, path)[2])["SecretString"] == TOKEN, timeout=10, what="rotation back")


def test_refresh_now_reads_again(agent, fleet, server):
    # With a long refresh interval only refreshNow sees a new version at once.
    path = "/secretsmanager/get?" + q(secretId=fleet.secret_id, refreshNow="true")
    new = "bkua_" + uuid.uuid4().hex
    fleet.rotate(new)
    assert json.loads(get(agent, path)[2])["SecretString"] == new
    fleet.rotate(TOKEN)
    assert json.loads(get(agent, path)[2])["SecretString"] == TOKEN


def test_parameters_extension_path(agent, fleet):
    status, _, body = get(agent, "/systemsmanager/parameters/get?" + q(name=fleet.path, withDecryption="true"))
    assert status == 200, body
    j = json.loads(body)
    assert j["ResultMetadata"] == {}
    p = j["Parameter"]
    assert p["Value"] == TOKEN and p["Type"] == "SecureString" and p["Name"] == fleet.path
    assert list(p) == ["ARN", "DataType", "LastModifiedDate", "Name", "Selector", "SourceResult", "Type", "Value", "Version"]
    # Without decryption Parameter Store refuses a reference: its error, passed through.
    status, _, body = get(agent, "/systemsmanager/parameters/get?" + q(name=fleet.path))
    assert status == 400 and json.loads(body)["__type"] == "ValidationException"
    assert get(agent, "/systemsmanager/parameters/get")[0::2] == (400, "missing parameter name")


def test_the_python_caching_library_agrees(agent, fleet, imds, monkeypatch):
    # aws-secretsmanager-caching with the instance role's credentials from the same endpoint.
    import os
    for k in list(os.environ):
        if k.startswith("AWS_"):
            monkeypatch.delenv(k)
    for k, v in fleet.client_env(imds.url).items():
        monkeypatch.setenv(k, v)
    client = botocore.session.get_session().create_client("secretsmanager", region_name=REGION,
                                                            endpoint_url=fleet.server.endpoint)
    cache = SecretCache(config=SecretCacheConfig(secret_refresh_interval=1), client=client)
    path = "/secretsmanager/get?" + q(secretId=fleet.secret_id)
    assert cache.get_secret_string(fleet.secret_id) == json.loads(get(agent, path)[2])["SecretString"] == TOKEN
    new = "bkua_" + uuid.uuid4().hex
    fleet.rotate(new)
    wait_for(lambda: cache.get_secret_string(fleet.secret_id) == new, timeout=15, what="the library's refresh")
    # The agent within its refresh interval (1 s) of the rotation.
    wait_for(lambda: json.loads(get(agent, path)[2])["SecretString"] == new, timeout=5, what="the agent's refresh")
    fleet.rotate(TOKEN)


def test_ssrf_token_from_a_variable_and_none_at_all(fleet, imds):
    p = start_agent(fleet, imds, token_env={"AWS_TOKEN": "plain-token"})
    try:
        assert http("GET", p.url + "/v1/" + fleet.secret_id, {"X-Aws-Parameters-Secrets-Token": "plain-token"})[0] == 200
        assert http("GET", p.url + "/v1/" + fleet.secret_id, {"X-Aws-Parameters-Secrets-Token": SSRF})[0] == 403
    finally:
        p.stop()
    code, err = start_agent(fleet, imds, token_env={}, expect_ready=False)
    assert code != 0 and "no SSRF token" in err


def test_only_loopback(fleet, imds):
    code, err = start_agent(fleet, imds, "--bind", "0.0.0.0", expect_ready=False)
    assert code != 0 and "not a loopback address" in err


def test_no_secret_in_the_log(agent):
    log = agent.log_tail()
    assert TOKEN not in log and SSRF not in log


def test_a_parameter_change_is_served_within_the_refresh_interval(agent, fleet, server):
    name = f"/agent-{fleet.suffix}/param"
    fleet.iam.put_role_policy(RoleName=fleet.role_name, PolicyName="AgentParameters", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ssm:GetParameter",
                                                 "Resource": f"arn:aws:ssm:{REGION}:{fleet.account}:parameter/agent-{fleet.suffix}/*"}]}))
    ssm = server.admin("ssm")
    ssm.put_parameter(Name=name, Type="SecureString", Value="one")
    path = "/systemsmanager/parameters/get?" + q(name=name, withDecryption="true")
    first = json.loads(get(agent, path)[2])["Parameter"]
    assert (first["Value"], first["Version"]) == ("one", 1)
    ssm.put_parameter(Name=name, Type="SecureString", Value="two", Overwrite=True)
    second = wait_for(lambda: (lambda p: p if p["Value"] == "two" else None)(json.loads(get(agent, path)[2])["Parameter"]),
                      timeout=10, interval=0.1, what="version 2")
    assert second["Version"] == 2
    # A pinned version stays what it was.
    pinned = json.loads(get(agent, "/systemsmanager/parameters/get?" + q(name=name, version="1", withDecryption="true"))[2])
    assert pinned["Parameter"]["Value"] == "one" and pinned["Parameter"]["Selector"] == ":1"


def test_credentials_that_do_not_work_stop_the_start(fleet, imds):
    bogus = {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
             "AWS_TOKEN": "t"}
    code, err = start_agent(fleet, imds, token_env=bogus, expect_ready=False)
    assert code != 0 and "the credentials do not work: InvalidClientTokenId" in err, err
    assert bogus["AWS_SECRET_ACCESS_KEY"] not in err
    p = start_agent(fleet, imds, "--no-validate-credentials", token_env=bogus)
    try:
        status, _, body = http("GET", p.url + "/v1/" + fleet.secret_id, {"X-Aws-Parameters-Secrets-Token": "t"})
        # Secrets Manager's refusal, status and code passed through.
        assert status == 400 and json.loads(body)["__type"] == "UnrecognizedClientException", body
    finally:
        p.stop()
