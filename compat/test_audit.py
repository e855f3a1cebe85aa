"""The audit log, with boto3 and the AWS CLI: CloudTrail records for allowed, denied and
unauthenticated requests (secrets never in them), LookupEvents, `tresor who-reads` and
`/metrics`.
"""

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import botocore.exceptions
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import REGION, TEST_STORE, database_for, start_server, trust_for, uniq


def error_code(exc) -> str:
    return exc.value.response["Error"]["Code"]


@pytest.fixture(scope="module")
def env():
    d = Path(tempfile.mkdtemp(prefix="tresor-audit-"))
    s = start_server("--audit-file", str(d / "audit.jsonl"), data_dir=d / "data")
    yield s, d
    s.stop()
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def server(env):
    return env[0]


@pytest.fixture(scope="module")
def audit_file(env):
    return env[1] / "audit.jsonl"


def lookup(server, **kw):
    """Every event LookupEvents returns for `kw`, following NextToken (every node's records of
    the requests answered so far: see Server.flush_audit)."""
    server.flush_audit()
    ct = server.admin("cloudtrail")
    events, token = [], None
    while True:
        page = ct.lookup_events(**kw, **({"NextToken": token} if token else {}))
        events += page["Events"]
        token = page.get("NextToken")
        if not token:
            return events


def records(events):
    return [json.loads(e["CloudTrailEvent"]) for e in events]


def by_request(server, request_id):
    """Every record of one request (its own event and the calls made on its behalf)."""
    return [r for r in records(lookup(server)) if r["requestID"] == request_id]


def new_user(server, policy_actions=None):
    iam = server.admin("iam")
    name = uniq("audit-user")
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    if policy_actions:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": policy_actions, "Resource": "*"}],
        }))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return name, arn, key


def test_a_denied_read_names_the_caller_arn_and_the_error_code(server):
    sm = server.admin("secretsmanager")
    secret = sm.create_secret(Name=uniq("denied"), SecretString="x")["ARN"]
    name, arn, key = new_user(server)
    client = server.client("secretsmanager", key["AccessKeyId"], key["SecretAccessKey"])
    with pytest.raises(botocore.exceptions.ClientError) as e:
        client.get_secret_value(SecretId=secret)
    assert error_code(e) == "AccessDeniedException"
    found = records(lookup(server, LookupAttributes=[{"AttributeKey": "Username", "AttributeValue": name}]))
    denied = [r for r in found if r["eventName"] == "GetSecretValue"]
    assert len(denied) == 1
    r = denied[0]
    assert r["errorCode"] == "AccessDeniedException"
    assert r["userIdentity"]["arn"] == arn
    assert r["userIdentity"]["type"] == "IAMUser"
    assert r["userIdentity"]["accessKeyId"] == key["AccessKeyId"]
    assert r["requestParameters"] == {"secretId": secret}
    assert r["resources"][0]["ARN"] == secret
    assert "additionalEventData" not in r  # nothing was read


def test_authentication_failures_are_recorded(server, audit_file):
    akid, _ = server.admin_keys()
    bad = server.client("secretsmanager", akid, "not-the-secret-key")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        bad.list_secrets()
    assert error_code(e) == "InvalidSignatureException"
    unknown = server.client("ssm", "AKIAUNKNOWNUNKNOWN00", "x")
    with pytest.raises(botocore.exceptions.ClientError):
        unknown.get_parameter(Name="/x")
    lines = [json.loads(l) for l in audit_file.read_text().splitlines()]
    sig = [r for r in lines if r.get("errorCode") == "InvalidSignatureException"
           and r["userIdentity"].get("accessKeyId") == akid]
    assert sig and sig[-1]["eventName"] == "ListSecrets"
    assert sig[-1]["eventSource"] == "secretsmanager.amazonaws.com"
    unk = [r for r in lines if r["userIdentity"].get("accessKeyId") == "AKIAUNKNOWNUNKNOWN00"]
    assert unk and unk[-1]["errorCode"] == "UnrecognizedClientException"
    assert unk[-1]["userIdentity"]["type"] == "Unknown"


def test_a_reference_path_read_records_the_secret_version_and_both_hops(server):
    sm = server.admin("secretsmanager")
    name = uniq("ref")
    created = sm.create_secret(Name=name, SecretString="ref-value")
    ssm = server.admin("ssm")
    resp = ssm.get_parameter(Name=f"/aws/reference/secretsmanager/{name}", WithDecryption=True)
    request_id = resp["ResponseMetadata"]["RequestId"]
    recs = by_request(server, request_id)
    main = [r for r in recs if r["eventSource"] == "ssm.amazonaws.com"]
    assert len(main) == 1 and main[0]["eventName"] == "GetParameter"
    versions = main[0]["additionalEventData"]["secretVersions"]
    assert versions == [{
        "secretArn": created["ARN"],
        "versionId": created["VersionId"],
        "versionStages": ["AWSCURRENT"],
    }]
    assert created["ARN"] in [x["ARN"] for x in main[0]["resources"]]
    hop = [r for r in recs if r["eventSource"] == "secretsmanager.amazonaws.com"]
    assert len(hop) == 1 and hop[0]["eventName"] == "GetSecretValue"
    assert hop[0]["userIdentity"]["invokedBy"] == "ssm.amazonaws.com"
    assert hop[0]["additionalEventData"]["secretVersions"][0]["versionId"] == created["VersionId"]
    kms = [r for r in recs if r["eventSource"] == "kms.amazonaws.com"]
    assert len(kms) == 1 and kms[0]["eventName"] == "Decrypt"
    assert kms[0]["userIdentity"]["invokedBy"] == "secretsmanager.amazonaws.com"
    assert kms[0]["requestParameters"]["encryptionContext"]["SecretARN"] == created["ARN"]
    assert kms[0]["resources"][0]["type"] == "AWS::KMS::Key"
    # All three share the caller.
    assert len({r["userIdentity"]["arn"] for r in recs}) == 1


def test_a_kms_call_on_the_callers_behalf_carries_invoked_by(server):
    sm = server.admin("secretsmanager")
    name = uniq("kmshop")
    sm.create_secret(Name=name, SecretString="v")
    resp = sm.get_secret_value(SecretId=name)
    recs = by_request(server, resp["ResponseMetadata"]["RequestId"])
    names = sorted((r["eventSource"], r["eventName"], r["userIdentity"].get("invokedBy")) for r in recs)
    assert names == [
        ("kms.amazonaws.com", "Decrypt", "secretsmanager.amazonaws.com"),
        ("secretsmanager.amazonaws.com", "GetSecretValue", None),
    ]
    main = [r for r in recs if r["eventName"] == "GetSecretValue"][0]
    assert main["additionalEventData"]["secretVersions"][0]["versionId"] == resp["VersionId"]
    assert main["readOnly"] is True and main["eventType"] == "AwsApiCall"
    assert main["eventVersion"] == "1.09"
    assert main["responseElements"] is None


def test_no_secret_value_reaches_the_audit_store_or_the_file(server, env, audit_file):
    marks = {
        "string": "Str1ng-" + uuid.uuid4().hex,
        "string2": "Upd4ted-" + uuid.uuid4().hex,
        "binary": b"B1nary-" + uuid.uuid4().hex.encode(),
        "param": "S3cureParam-" + uuid.uuid4().hex,
        "plain": b"KmsPla1n-" + uuid.uuid4().hex.encode(),
    }
    sm = server.admin("secretsmanager")
    ssm = server.admin("ssm")
    kms = server.admin("kms")
    iam = server.admin("iam")
    name = uniq("grep")
    sm.create_secret(Name=name, SecretString=marks["string"])
    sm.put_secret_value(SecretId=name, SecretString=marks["string2"])
    sm.get_secret_value(SecretId=name)
    sm.create_secret(Name=uniq("grepbin"), SecretBinary=marks["binary"])
    pname = "/" + uniq("grep")
    ssm.put_parameter(Name=pname, Value=marks["param"], Type="SecureString")
    ssm.get_parameter(Name=pname, WithDecryption=True)
    ssm.get_parameters(Names=[pname], WithDecryption=True)
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key, Plaintext=marks["plain"])["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == marks["plain"]
    data_key = kms.generate_data_key(KeyId=key, KeySpec="AES_256")
    user = uniq("grepuser")
    iam.create_user(UserName=user)
    new_key = iam.create_access_key(UserName=user)["AccessKey"]
    role = iam.create_role(RoleName=uniq("greprole"),
                           AssumeRolePolicyDocument=trust_for(server.admin("sts").get_caller_identity()["Arn"]))
    creds = server.assume(role["Role"]["Arn"], "grep")
    needles = [
        marks["string"], marks["string2"], marks["param"],
        marks["binary"].decode(), base64.b64encode(marks["binary"]).decode(),
        marks["plain"].decode(), base64.b64encode(marks["plain"]).decode(),
        base64.b64encode(blob).decode(),
        base64.b64encode(data_key["Plaintext"]).decode(),
        new_key["SecretAccessKey"], creds["SecretAccessKey"], creds["SessionToken"],
    ]
    data_dir = env[1] / "data"
    # Every node's data directory (data, data-node2, … on the two-node pass).
    files = [audit_file] + sorted(f for d in sorted(env[1].glob("data*")) for f in d.glob("*.db*"))
    if TEST_STORE == "postgres":
        # The whole audit log is in PostgreSQL, the records of reads too (indexed from each
        # node's segment files): no audit.db. The rows, bytes shown as they are (escape format).
        assert not [f for f in files if f.name.startswith("audit.db") and not f.name.startswith("audit.db-seg.")], files
        server.flush_audit()
        dump = env[1] / "store-dump.txt"
        r = subprocess.run(["psql", database_for(data_dir), "-Atc",
                            "SELECT convert_from(k, 'UTF8'), encode(v, 'escape') FROM tresor_kv"],
                           capture_output=True, timeout=60)
        assert r.returncode == 0 and len(r.stdout) > 1000, r.stderr
        dump.write_bytes(r.stdout)
        files.append(dump)
    else:
        assert {"tresor.db-wal", "audit.db-wal"} <= {f.name for f in files}
    text = audit_file.read_text()
    # The workload was recorded, with its secret members hidden ...
    assert f'"secretId":"{name}"' in text
    assert "HIDDEN_DUE_TO_SECURITY_REASONS" in text
    # ... and no secret is in any of the files (the audit log's segment files, audit.db-seg.<n>,
    # included; one indexed into audit.db meanwhile is gone, and its records are in audit.db).
    for f in files:
        try:
            content = f.read_bytes()
        except FileNotFoundError:
            assert f.name.startswith("audit.db-seg."), f
            continue
        for needle in needles:
            assert needle.encode() not in content, f"{needle[:12]}… found in {f.name}"


def cli(server, *args, check=True):
    akid, secret = server.admin_keys()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": akid, "AWS_SECRET_ACCESS_KEY": secret,
           "AWS_DEFAULT_REGION": REGION}
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        env.pop(k, None)
    p = subprocess.run(["aws", "--endpoint-url", server.endpoint, *args, "--output", "json"],
                       capture_output=True, text=True, env=env, timeout=60)
    if check:
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout) if p.stdout.strip() else None
    return p


def test_aws_cli_lookup_events_with_each_attribute_a_time_range_and_pagination(server):
    sm = server.admin("secretsmanager")
    before = time.time() - 1
    name = uniq("lookup")
    created = sm.create_secret(Name=name, SecretString="v")
    got = sm.get_secret_value(SecretId=name)
    akid, _ = server.admin_keys()
    admin_name = server.admin("sts").get_caller_identity()["Arn"].split("/")[-1]
    server.flush_audit()

    def attr(key, value, **more):
        return cli(server, "cloudtrail", "lookup-events", "--lookup-attributes",
                   f"AttributeKey={key},AttributeValue={value}",
                   "--start-time", str(int(before)), *more)["Events"]

    by_name = attr("ResourceName", created["ARN"])
    assert [e["EventName"] for e in by_name] == ["GetSecretValue", "CreateSecret"]  # newest first
    assert by_name[0]["Resources"][0] == {"ResourceType": "AWS::SecretsManager::Secret",
                                          "ResourceName": created["ARN"]}
    event_id = by_name[0]["EventId"]
    assert [e["EventId"] for e in attr("EventId", event_id)] == [event_id]
    assert all(e["EventName"] == "GetSecretValue" for e in attr("EventName", "GetSecretValue"))
    assert all(e["ReadOnly"] == "false" for e in attr("ReadOnly", "false"))
    assert any(e["EventName"] == "CreateSecret" for e in attr("ReadOnly", "false"))
    assert all(e["Username"] == admin_name for e in attr("Username", admin_name))
    assert all(any(r["ResourceType"] == "AWS::SecretsManager::Secret" for r in e["Resources"])
               for e in attr("ResourceType", "AWS::SecretsManager::Secret"))
    assert all(e["EventSource"] == "kms.amazonaws.com" for e in attr("EventSource", "kms.amazonaws.com"))
    assert all(e["AccessKeyId"] == akid for e in attr("AccessKeyId", akid))
    record = json.loads(by_name[0]["CloudTrailEvent"])
    assert record["requestID"] == got["ResponseMetadata"]["RequestId"]
    # A time range that ends before the workload finds none of it.
    old = cli(server, "cloudtrail", "lookup-events", "--lookup-attributes",
              f"AttributeKey=ResourceName,AttributeValue={created['ARN']}",
              "--end-time", str(int(before) - 3600))["Events"]
    assert old == []
    # Pagination: the CLI's paginator with pages of 2, and boto3's NextToken by hand.
    paged = cli(server, "cloudtrail", "lookup-events", "--start-time", str(int(before)), "--page-size", "2")
    ids = [e["EventId"] for e in paged["Events"]]
    assert len(ids) >= 4 and len(ids) == len(set(ids))
    ct = server.admin("cloudtrail")
    first = ct.lookup_events(StartTime=before, MaxResults=2)
    assert len(first["Events"]) == 2 and "NextToken" in first
    second = ct.lookup_events(StartTime=before, MaxResults=2, NextToken=first["NextToken"])
    assert not {e["EventId"] for e in first["Events"]} & {e["EventId"] for e in second["Events"]}
    assert first["Events"][0]["EventTime"] >= second["Events"][0]["EventTime"]


def test_lookup_events_errors(server):
    ct = server.unvalidated("cloudtrail")
    cases = [
        ({"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "a"},
                               {"AttributeKey": "Username", "AttributeValue": "b"}]},
         "InvalidLookupAttributesException"),
        ({"LookupAttributes": [{"AttributeKey": "Colour", "AttributeValue": "a"}]},
         "InvalidLookupAttributesException"),
        ({"StartTime": time.time(), "EndTime": time.time() - 60}, "InvalidTimeRangeException"),
        ({"MaxResults": 51}, "InvalidMaxResultsException"),
        ({"MaxResults": 0}, "InvalidMaxResultsException"),
        ({"NextToken": "not-a-token"}, "InvalidNextTokenException"),
        ({"EventCategory": "data"}, "InvalidEventCategoryException"),
    ]
    for kwargs, code in cases:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            ct.lookup_events(**kwargs)
        assert error_code(e) == code, kwargs
    # A token is bound to its parameters.
    admin = server.admin("cloudtrail")
    page = admin.lookup_events(MaxResults=1)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        admin.lookup_events(MaxResults=1, NextToken=page["NextToken"],
                            LookupAttributes=[{"AttributeKey": "ReadOnly", "AttributeValue": "true"}])
    assert error_code(e) == "InvalidNextTokenException"


def test_lookup_events_needs_cloudtrail_lookup_events_and_sees_only_its_account(server):
    _, _, key = new_user(server)
    client = server.client("cloudtrail", key["AccessKeyId"], key["SecretAccessKey"])
    with pytest.raises(botocore.exceptions.ClientError) as e:
        client.lookup_events()
    assert error_code(e) == "AccessDeniedException"
    _, _, key = new_user(server, ["cloudtrail:LookupEvents"])
    client = server.client("cloudtrail", key["AccessKeyId"], key["SecretAccessKey"])
    assert client.lookup_events(MaxResults=5)["Events"]
    # Another region's history is its own.
    other = server.client("cloudtrail", key["AccessKeyId"], key["SecretAccessKey"], region="eu-west-1")
    assert all(json.loads(e["CloudTrailEvent"])["awsRegion"] == "eu-west-1"
               for e in other.lookup_events()["Events"])


def who_reads(server, secret, *args, extra_env=None):
    server.flush_audit()
    akid, secret_key = server.admin_keys()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": akid, "AWS_SECRET_ACCESS_KEY": secret_key,
                "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_EC2_METADATA_DISABLED": "true"})
    env.update(extra_env or {})
    return subprocess.run(
        [os.environ["TRESOR_BIN"], "who-reads", secret, "--endpoint-url", server.endpoint,
         "--region", REGION, *args],
        capture_output=True, text=True, env=env, timeout=60)


def test_who_reads_names_the_role_still_on_the_old_token_until_it_switches(server):
    iam = server.admin("iam")
    sm = server.admin("secretsmanager")
    admin_arn = server.admin("sts").get_caller_identity()["Arn"]
    name = uniq("token")
    sm.create_secret(Name=name, SecretString="token-v1")
    readers, sessions = {}, {}
    for who in ("fresh", "stale"):
        role = iam.create_role(RoleName=uniq(who), AssumeRolePolicyDocument=trust_for(admin_arn))["Role"]
        iam.put_role_policy(RoleName=role["RoleName"], PolicyName="read", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow",
                           "Action": ["secretsmanager:GetSecretValue", "kms:Decrypt", "ssm:GetParameter"],
                           "Resource": "*"}],
        }))
        creds = server.assume(role["Arn"], f"i-{who}")
        sessions[who] = creds
        readers[who] = (server.session("secretsmanager", creds),
                        f"arn:aws:sts::{role['Arn'].split(':')[4]}:assumed-role/{role['RoleName']}/i-{who}")
    for client, _ in readers.values():
        assert client.get_secret_value(SecretId=name)["SecretString"] == "token-v1"
    time.sleep(1.1)
    # The rotation: a new AWSCURRENT, the old value becomes AWSPREVIOUS.
    new = sm.put_secret_value(SecretId=name, SecretString="token-v2")["VersionId"]
    time.sleep(1.1)
    fresh, fresh_arn = readers["fresh"]
    stale, stale_arn = readers["stale"]
    stale_ssm = server.session("ssm", sessions["stale"])
    assert fresh.get_secret_value(SecretId=name)["VersionId"] == new
    old = stale.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")
    assert old["SecretString"] == "token-v1"

    p = who_reads(server, name, "--json")
    assert p.returncode == 3, p.stderr
    answer = json.loads(p.stdout)
    assert answer["SafeToRevoke"] is False
    assert [r["Principal"] for r in answer["StillOnOldVersion"]] == [stale_arn]
    assert answer["StillOnOldVersion"][0]["VersionStages"] == ["AWSPREVIOUS"]
    assert answer["StillOnOldVersion"][0]["VersionId"] == old["VersionId"]
    seen = {(r["Principal"], r["VersionId"]) for r in answer["Readers"]}
    assert (fresh_arn, new) in seen and (stale_arn, old["VersionId"]) in seen
    assert all(r["SourceIPAddress"] == "127.0.0.1" for r in answer["Readers"])
    text = who_reads(server, name)
    assert text.returncode == 3
    assert "NOT safe to revoke" in text.stdout and stale_arn in text.stdout

    # The stale reader switches to the new token, through Parameter Store's reference path.
    ref = stale_ssm.get_parameter(Name=f"/aws/reference/secretsmanager/{name}", WithDecryption=True)
    assert ref["Parameter"]["Value"] == "token-v2"
    p = who_reads(server, name, "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    answer = json.loads(p.stdout)
    assert answer["SafeToRevoke"] is True and answer["StillOnOldVersion"] == []
    switched = [r for r in answer["Readers"] if r["Principal"] == stale_arn and r["VersionId"] == new]
    assert switched and switched[0]["Via"] == ["ParameterStoreReference"]
    text = who_reads(server, name, "--since", "1h")
    assert text.returncode == 0 and "safe to revoke" in text.stdout
    missing = who_reads(server, "no-such-secret-" + uuid.uuid4().hex[:6])
    assert missing.returncode == 1 and "ResourceNotFoundException" in missing.stderr


def signed_post(server, service, target, payload):
    """A SigV4-signed awsJson1.1 POST of any target (one botocore has no model for)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    akid, secret = server.admin_keys()
    req = AWSRequest(method="POST", url=server.endpoint + "/", data=json.dumps(payload),
                     headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target})
    SigV4Auth(Credentials(akid, secret), service, REGION).add_auth(req)
    prepared = req.prepare()
    body = prepared.body if isinstance(prepared.body, bytes) else prepared.body.encode()
    r = urllib.request.Request(prepared.url, data=body, headers=dict(prepared.headers), method="POST")
    try:
        with urllib.request.urlopen(r, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class Family:
    """A metric family over every node: its type, and each node's samples."""

    def __init__(self, family):
        self.type = family.type
        self.per_node = [family.samples]

    @property
    def samples(self):
        return [s for node in self.per_node for s in node]


def scrape(server):
    """Every node's /metrics (each node counts what it served): the expositions, and their
    families with each node's samples (`sample` adds the nodes up)."""
    texts, families = [], {}
    for ep in server.node_endpoints:
        with urllib.request.urlopen(ep + "/metrics", timeout=10) as r:
            assert r.headers["Content-Type"].startswith("text/plain")
            text = r.read().decode()
        texts.append(text)
        for f in text_string_to_metric_families(text):
            if f.name in families:
                families[f.name].per_node.append(f.samples)
            else:
                families[f.name] = Family(f)
    return "\n".join(texts), families


def sample(families, family, name, **labels):
    """The first sample `name` with `labels` of each node, added up over the nodes."""
    total = 0.0
    for samples in families[family].per_node:
        for s in samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
                break
    return total


def test_metrics_parse_and_move_with_traffic(server):
    sm = server.admin("secretsmanager")
    name = uniq("metrics")
    sm.create_secret(Name=name, SecretString="v")
    _, before = scrape(server)
    ok = dict(service="secretsmanager", operation="GetSecretValue")
    sm.get_secret_value(SecretId=name)
    sm.get_secret_value(SecretId=name)
    with pytest.raises(botocore.exceptions.ClientError):
        sm.get_secret_value(SecretId=name + "-missing")
    _, _, key = new_user(server)
    with pytest.raises(botocore.exceptions.ClientError):
        server.client("secretsmanager", key["AccessKeyId"], key["SecretAccessKey"]).get_secret_value(SecretId=name)
    akid, _ = server.admin_keys()
    with pytest.raises(botocore.exceptions.ClientError):
        server.client("secretsmanager", akid, "wrong").get_secret_value(SecretId=name)
    # An unknown operation is recorded under its name, but counted as `unknown` (the metrics'
    # label set stays bounded).
    status, body = signed_post(server, "secretsmanager", "secretsmanager.GetSecretValueX", {"SecretId": name})
    assert status == 400 and json.loads(body)["__type"] == "UnknownOperationException"
    text, after = scrape(server)

    def delta(family, name, **labels):
        return sample(after, family, name, **labels) - sample(before, family, name, **labels)

    assert 'operation="GetSecretValueX"' not in text
    assert delta("tresor_requests", "tresor_requests_total", service="secretsmanager",
                 operation="unknown", outcome="client_error") == 1
    recorded = records(lookup(server, LookupAttributes=[
        {"AttributeKey": "EventName", "AttributeValue": "GetSecretValueX"}]))
    assert recorded and recorded[0]["errorCode"] == "UnknownOperationException"
    for f in ("tresor_requests", "tresor_request_duration_seconds", "tresor_authentication_failures",
              "tresor_audit_events_written", "tresor_store_size_bytes", "tresor_background_jobs",
              "tresor_rotation_outcomes"):
        assert f in after, f
    assert after["tresor_request_duration_seconds"].type == "histogram"
    assert after["tresor_requests"].type == "counter"

    assert delta("tresor_requests", "tresor_requests_total", outcome="ok", **ok) == 2
    # The missing secret, and the request refused at authentication (a known operation).
    assert delta("tresor_requests", "tresor_requests_total", outcome="client_error", **ok) == 2
    assert delta("tresor_requests", "tresor_requests_total", outcome="denied", **ok) == 1
    assert delta("tresor_authentication_failures", "tresor_authentication_failures_total",
                 reason="InvalidSignatureException") == 1
    assert delta("tresor_request_duration_seconds", "tresor_request_duration_seconds_count", **ok) == 5
    assert delta("tresor_audit_events_written", "tresor_audit_events_written_total") >= 5
    if TEST_STORE == "postgres":
        # The store's files on disk: none on PostgreSQL (the audit log is in the database too).
        assert sample(after, "tresor_store_size_bytes", "tresor_store_size_bytes") == 0
    else:
        assert sample(after, "tresor_store_size_bytes", "tresor_store_size_bytes") > 0
    # Buckets are cumulative and end at the count.
    for samples in after["tresor_request_duration_seconds"].per_node:
        buckets = [s for s in samples if s.name.endswith("_bucket") and s.labels["operation"] == "GetSecretValue"]
        values = [s.value for s in buckets]
        assert values == sorted(values) and (not buckets or buckets[-1].labels["le"] == "+Inf")
    les = [s.labels["le"] for s in after["tresor_request_duration_seconds"].samples
           if s.name.endswith("_bucket") and s.labels["operation"] == "GetSecretValue"]
    values = [sample(after, "tresor_request_duration_seconds", "tresor_request_duration_seconds_bucket",
                     le=le, **ok) for le in dict.fromkeys(les)]
    assert values == sorted(values) and les[-1] == "+Inf"
    assert values[-1] == sample(after, "tresor_request_duration_seconds",
                                "tresor_request_duration_seconds_count", **ok)
    # No secret, no key in the exposition.
    assert "AKIA" not in text


def test_requests_fail_closed_when_the_audit_log_cannot_be_written(tmp_path):
    # /dev/full: every write fails with "No space left on device", like a full disk.
    s = start_server("--audit-file", "/dev/full", data_dir=tmp_path / "data")
    try:
        sm = s.admin("secretsmanager")
        with pytest.raises(botocore.exceptions.ClientError) as e:
            sm.create_secret(Name="never-acknowledged", SecretString="v")
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
        with pytest.raises(botocore.exceptions.ClientError) as e:
            sm.list_secrets()
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
        _, families = scrape(s)
        assert sample(families, "tresor_audit_events_failed", "tresor_audit_events_failed_total") >= 2
        assert sample(families, "tresor_audit_events_written", "tresor_audit_events_written_total") == 0
    finally:
        s.stop()


@pytest.mark.single_node("kills the process and looks for its segment files in its data directory")
@pytest.mark.parametrize("sync", ["batch", "always"])
def test_records_of_acknowledged_reads_survive_a_kill_and_are_indexed_at_the_next_start(tmp_path, sync):
    import signal

    data = tmp_path / "data"
    # batch (the default): written to the segment before the answer, synced in the background;
    # always: synced before the answer. Either survives a kill of the process.
    s = start_server("--audit-sync", sync, data_dir=data, nodes=1)
    try:
        sm = s.admin("secretsmanager")
        sm.create_secret(Name="survivor", SecretString="v")
        ids = [sm.get_secret_value(SecretId="survivor")["ResponseMetadata"]["RequestId"]
               for _ in range(5)]
    finally:
        s.stop(sig=signal.SIGKILL)
    # The reads' records were in segment files when they were answered.
    left = {p.name for p in data.iterdir() if p.name.startswith("audit.db-seg.")}
    assert left
    s = start_server(data_dir=data, nodes=1)
    try:
        events = s.admin("cloudtrail").lookup_events(LookupAttributes=[
            {"AttributeKey": "EventName", "AttributeValue": "GetSecretValue"}])["Events"]
        found = {json.loads(e["CloudTrailEvent"])["requestID"] for e in events}
        assert set(ids) <= found
    finally:
        s.stop()
    # Indexed, then removed (the lookup's own record may be in a newer one).
    assert not left & {p.name for p in data.iterdir()}


def test_audit_can_be_turned_off_for_benchmarks_and_then_records_nothing(tmp_path):
    s = start_server("--no-audit", data_dir=tmp_path / "data")
    try:
        sm = s.admin("secretsmanager")
        sm.create_secret(Name="quiet", SecretString="v")
        sm.get_secret_value(SecretId="quiet")
        assert s.admin("cloudtrail").lookup_events()["Events"] == []
    finally:
        s.stop()


def test_rotation_steps_are_service_events_and_the_function_package_is_not_recorded(tmp_path):
    from test_rotation import Env, start_rotation_server, wait_for

    server = start_rotation_server(tmp_path / "data")
    try:
        env = Env(server, tmp_path)
        fn = env.function()
        secret = env.secret()
        token = json.loads(env.rotate(secret, "--rotation-lambda-arn", fn).stdout)["VersionId"]
        wait_for(lambda: env.holder(secret, "AWSCURRENT") == token, what="the rotation")

        def service_events():
            found = records(lookup(server, LookupAttributes=[
                {"AttributeKey": "ResourceName", "AttributeValue": secret}]))
            return [r for r in found if r["eventType"] == "AwsServiceEvent"]

        events = wait_for(lambda: (e := service_events()) and len(e) >= 2 and e, what="service events")
        names = [r["eventName"] for r in events]
        assert names[:2] == ["RotationSucceeded", "RotationStarted"]  # newest first
        for r in events:
            assert r["userIdentity"] == {"type": "AWSService", "invokedBy": "secretsmanager.amazonaws.com"}
            assert r["resources"][0]["ARN"] == secret
            assert r["additionalEventData"]["versionId"] == token
        # The function's own calls are recorded as its role session's.
        puts = [r for r in records(lookup(server, LookupAttributes=[
            {"AttributeKey": "EventName", "AttributeValue": "PutSecretValue"}]))]
        assert puts and puts[0]["userIdentity"]["type"] == "AssumedRole"
        assert puts[0]["requestParameters"]["secretString"] == "HIDDEN_DUE_TO_SECURITY_REASONS"
        created = records(lookup(server, LookupAttributes=[
            {"AttributeKey": "EventName", "AttributeValue": "CreateFunction"}]))
        assert created[0]["eventSource"] == "lambda.amazonaws.com"
        assert created[0]["requestParameters"]["code"]["ZipFile"] == "HIDDEN_DUE_TO_SECURITY_REASONS"
        _, families = scrape(server)
        assert sample(families, "tresor_rotation_outcomes", "tresor_rotation_outcomes_total",
                      outcome="RotationSucceeded") >= 1
    finally:
        server.stop()


def test_who_reads_over_https_trusts_aws_ca_bundle(tmp_path):
    """`tresor who-reads` is an AWS client like the CLI: https:// endpoints with the CA from
    AWS_CA_BUNDLE; without it, the self-signed certificate is refused with a clear error."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    # A server certificate, not a CA (rustls refuses a CA certificate as the peer's).
                    "-addext", "basicConstraints=critical,CA:FALSE"],
                   check=True, capture_output=True)
    s = start_server("--tls-cert", str(cert), "--tls-key", str(key), data_dir=tmp_path / "d")
    try:
        assert s.endpoint.startswith("https://")
        sm = s.admin("secretsmanager", verify=str(cert))
        name = uniq("who/tls")
        sm.create_secret(Name=name, SecretString="tls-token-" + uuid.uuid4().hex)
        sm.get_secret_value(SecretId=name)
        p = who_reads(s, name, "--json", extra_env={"AWS_CA_BUNDLE": str(cert)})
        assert p.returncode == 0, p.stderr
        answer = json.loads(p.stdout)
        assert answer["SafeToRevoke"] is True and answer["Readers"], answer
        refused = who_reads(s, name)
        assert refused.returncode == 1 and "cannot reach" in refused.stderr, refused.stderr
    finally:
        s.stop()
