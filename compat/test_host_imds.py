"""`tresor imds` on a host that is not on EC2: the seed's boot, with the unmodified AWS CLI and
boto3 taking the instance role's credentials from the metadata endpoint (IMDSv2), with no
credential in their environment or shared files; the IMDSv2 token protocol and the JSON the
SDKs parse (EC2 User Guide, "Retrieve security credentials from instance metadata"); renewal
before expiry; the container-credentials route and `credential_process`."""

import json
import re
import uuid

import boto3

from conftest import REGION, aws_cli, tresor_bin
from hostside import Fleet, fleet, http, imds, wait_for  # noqa: F401 (fixtures)

TOKEN = "bkua_" + uuid.uuid4().hex


IMDS_ARGS = ("--instance-id", "i-0123456789abcdef0")


def v2_token(url, ttl="21600"):
    status, headers, body = http("PUT", url + "/latest/api/token",
                                 {"X-aws-ec2-metadata-token-ttl-seconds": ttl})
    assert status == 200, body
    assert headers.get("x-aws-ec2-metadata-token-ttl-seconds") == ttl
    return body


def md(url, path, token):
    return http("GET", url + path, {"X-aws-ec2-metadata-token": token})


def test_the_seed_boot_with_the_aws_cli_and_no_credentials(fleet, imds):
    # bk-install-elastic-stack.sh's command, verbatim; the CLI finds nothing but the metadata.
    r = aws_cli("ssm", "get-parameter", "--name", fleet.path, "--with-decryption",
                "--query", "Parameter.Value", "--output", "text", env=fleet.client_env(imds.url))
    assert r.returncode == 0, r.stderr
    assert r.stdout == TOKEN + "\n"
    who = aws_cli("sts", "get-caller-identity", "--query", "Arn", "--output", "text",
                  env=fleet.client_env(imds.url))
    assert who.returncode == 0, who.stderr
    assert who.stdout.strip() == (f"arn:aws:sts::{fleet.account}:assumed-role/"
                                  f"{fleet.role_name}/i-0123456789abcdef0")


def test_without_the_endpoint_the_cli_has_no_credentials(fleet, imds):
    env = fleet.client_env(imds.url)
    # Nothing listens there: the CLI must fail rather than print something.
    env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = "http://127.0.0.1:9/"
    env["AWS_METADATA_SERVICE_TIMEOUT"] = "1"
    r = aws_cli("ssm", "get-parameter", "--name", fleet.path, "--with-decryption",
                "--query", "Parameter.Value", "--output", "text", env=env)
    assert r.returncode != 0
    assert r.stdout == ""
    assert "Unable to locate credentials" in r.stderr


def test_boto3_takes_the_role_from_the_endpoint(fleet, imds, monkeypatch):
    for k in list(__import__("os").environ):
        if k.startswith("AWS_"):
            monkeypatch.delenv(k)
    for k, v in fleet.client_env(imds.url).items():
        monkeypatch.setenv(k, v)
    session = boto3.session.Session(region_name=REGION)
    creds = session.get_credentials()
    assert creds.method == "iam-role"
    assert creds.access_key.startswith("ASIA")
    ssm = session.client("ssm", endpoint_url=fleet.server.endpoint)
    assert ssm.get_parameter(Name=fleet.path, WithDecryption=True)["Parameter"]["Value"] == TOKEN
    # botocore's region fetcher asks for placement/availability-zone/ (trailing slash).
    t = v2_token(imds.url)
    assert md(imds.url, "/latest/meta-data/placement/availability-zone/", t)[2] == REGION + "a"


def test_imdsv2_token_protocol(imds):
    url = imds.url
    creds_path = "/latest/meta-data/iam/security-credentials/"
    # Reads without a token are refused (IMDSv1 is off), as are bad and foreign tokens.
    assert http("GET", url + creds_path)[0] == 401
    assert md(url, creds_path, "not-a-token")[0] == 401
    assert md(url, creds_path, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")[0] == 401
    # The TTL header is required, in 1..21600.
    assert http("PUT", url + "/latest/api/token")[0] == 400
    for bad in ("0", "21601", "ten", "-1"):
        assert http("PUT", url + "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": bad})[0] == 400, bad
    # A forwarded PUT (a proxy on the host) never gets a token.
    assert http("PUT", url + "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60",
                                                   "X-Forwarded-For": "10.0.0.1"})[0] == 403
    assert http("GET", url + "/latest/api/token")[0] == 405
    t = v2_token(url, "1")
    status, headers, body = md(url, creds_path, t)
    assert status == 200 and headers["server"] == "EC2ws"
    # A token lives its TTL and no longer.
    wait_for(lambda: md(url, creds_path, t)[0] == 401, timeout=5, what="token expiry")
    status, _, body = md(url, "/latest/meta-data/nothing-here", v2_token(url))
    assert status == 404 and "<title>404 - Not Found</title>" in body


def test_credentials_as_ec2_formats_them(fleet, imds):
    t = v2_token(imds.url)
    status, _, names = md(imds.url, "/latest/meta-data/iam/security-credentials/", t)
    assert (status, names) == (200, fleet.role_name)
    status, headers, body = md(imds.url, f"/latest/meta-data/iam/security-credentials/{fleet.role_name}", t)
    assert status == 200
    assert headers["content-type"] == "text/plain"
    keys = re.findall(r'^  "(\w+)" : ', body, re.M)
    assert keys == ["Code", "LastUpdated", "Type", "AccessKeyId", "SecretAccessKey", "Token", "Expiration"]
    c = json.loads(body)
    assert c["Code"] == "Success" and c["Type"] == "AWS-HMAC"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", c["Expiration"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", c["LastUpdated"])
    # They are the role's: STS says so.
    sts = fleet.server.client("sts", c["AccessKeyId"], c["SecretAccessKey"], c["Token"])
    assert f":assumed-role/{fleet.role_name}/" in sts.get_caller_identity()["Arn"]
    assert md(imds.url, "/latest/meta-data/iam/security-credentials/other-role", t)[0] == 404

    info = json.loads(md(imds.url, "/latest/meta-data/iam/info", t)[2])
    assert info["Code"] == "Success"
    assert info["InstanceProfileArn"] == f"arn:aws:iam::{fleet.account}:instance-profile/{fleet.role_name}"
    assert info["InstanceProfileId"].startswith("AIPA")
    assert md(imds.url, "/latest/meta-data/placement/region", t)[2] == REGION
    assert md(imds.url, "/latest/meta-data/instance-id", t)[2] == "i-0123456789abcdef0"
    doc = json.loads(md(imds.url, "/latest/dynamic/instance-identity/document", t)[2])
    assert doc["accountId"] == fleet.account and doc["region"] == REGION
    assert doc["instanceId"] == "i-0123456789abcdef0" and doc["availabilityZone"] == REGION + "a"
    assert doc["version"] == "2017-09-30"


def test_imdsv1_only_when_allowed(fleet):
    p = fleet.imds("--allow-imdsv1")
    try:
        status, _, body = http("GET", p.url + "/latest/meta-data/iam/security-credentials/")
        assert (status, body) == (200, fleet.role_name)
        # A token, when sent, must still be valid.
        assert md(p.url, "/latest/meta-data/iam/security-credentials/", "bogus")[0] == 401
    finally:
        p.stop()


def test_credentials_are_renewed_before_they_expire(fleet):
    # 900-second sessions renewed when fewer than 897 s remain: a new session every ~3 s.
    p = fleet.imds("--duration-seconds", "900", "--refresh-before", "897")
    try:
        path = f"/latest/meta-data/iam/security-credentials/{fleet.role_name}"
        first = json.loads(md(p.url, path, v2_token(p.url))[2])
        renewed = wait_for(lambda: (lambda c: c if c["AccessKeyId"] != first["AccessKeyId"] else None)(
            json.loads(md(p.url, path, v2_token(p.url))[2])), timeout=20, what="a renewed session")
        assert renewed["Expiration"] >= first["Expiration"]
        # The CLI keeps working across renewals.
        r = aws_cli("ssm", "get-parameter", "--name", fleet.path, "--with-decryption",
                    "--query", "Parameter.Value", "--output", "text", env=fleet.client_env(p.url))
        assert r.stdout == TOKEN + "\n", r.stderr
    finally:
        p.stop()
    # Nothing secret in its log.
    log = p.log_tail()
    assert first["SecretAccessKey"] not in log and first["Token"] not in log


def test_refresh_margin_must_leave_the_session_some_life(fleet):
    code, err = fleet.imds("--duration-seconds", "900", "--refresh-before", "900", expect_ready=False)
    assert code != 0
    assert "--refresh-before (900) must be less than --duration-seconds (900)" in err


def test_a_role_the_host_cannot_assume_fails_at_start(fleet):
    code, err = fleet.imds(role_arn=f"arn:aws:iam::{fleet.account}:role/not-mine-{fleet.suffix}",
                           expect_ready=False)
    assert code != 0
    assert "cannot assume" in err and "AccessDenied" in err


def test_non_loopback_listen_is_refused(fleet):
    code, err = fleet.imds(listen="0.0.0.0:0", expect_ready=False)
    assert code != 0 and "not a loopback address" in err


def test_container_credentials_route(fleet, tmp_path):
    token_file = tmp_path / "container-token"
    token_file.write_text(uuid.uuid4().hex)  # botocore sends the file's bytes as they are
    token_file.chmod(0o600)
    p = fleet.imds("--container-token-file", str(token_file))
    try:
        env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": p.url + "/v1/credentials",
               "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file),
               "AWS_ENDPOINT_URL": fleet.server.endpoint, "AWS_DEFAULT_REGION": REGION,
               "AWS_CONFIG_FILE": str(fleet.empty), "AWS_SHARED_CREDENTIALS_FILE": str(fleet.empty),
               "HOME": str(tmp_path)}
        r = aws_cli("ssm", "get-parameter", "--name", fleet.path, "--with-decryption",
                    "--query", "Parameter.Value", "--output", "text", env=env)
        assert r.returncode == 0, r.stderr
        assert r.stdout == TOKEN + "\n"
        status, headers, body = http("GET", p.url + "/v1/credentials",
                                     {"Authorization": token_file.read_text().strip()})
        c = json.loads(body)
        assert status == 200 and headers["content-type"] == "application/json"
        assert set(c) == {"AccessKeyId", "SecretAccessKey", "Token", "Expiration", "RoleArn"}
        assert c["RoleArn"] == fleet.role_arn
        assert http("GET", p.url + "/v1/credentials")[0] == 401
        assert http("GET", p.url + "/v1/credentials", {"Authorization": "wrong"})[0] == 401
        env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = str(fleet.empty)
        env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "wrong"
        r = aws_cli("sts", "get-caller-identity", env=env)
        assert r.returncode != 0 and r.stdout == ""
    finally:
        p.stop()


def test_container_route_is_off_without_a_token(imds):
    assert http("GET", imds.url + "/v1/credentials", {"Authorization": ""})[0] == 404


def test_credential_process_profile(fleet, tmp_path):
    # The host's source credential in a 0600 file under its own profile; the instance profile
    # runs `tresor credential-process`.
    creds = tmp_path / "credentials"
    creds.write_text(f"[host]\naws_access_key_id = {fleet.host_key[0]}\n"
                     f"aws_secret_access_key = {fleet.host_key[1]}\n")
    creds.chmod(0o600)
    config = tmp_path / "config"
    config.write_text(
        f"[profile instance]\ncredential_process = {tresor_bin()} credential-process --role-arn {fleet.role_arn} "
        f"--endpoint-url {fleet.server.endpoint} --region {REGION} --profile host --session-name i-proc\n"
        f"region = {REGION}\n")
    env = {"AWS_CONFIG_FILE": str(config), "AWS_SHARED_CREDENTIALS_FILE": str(creds),
           "AWS_PROFILE": "instance", "AWS_ENDPOINT_URL": fleet.server.endpoint, "HOME": str(tmp_path)}
    r = aws_cli("ssm", "get-parameter", "--name", fleet.path, "--with-decryption",
                "--query", "Parameter.Value", "--output", "text", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == TOKEN + "\n"
    who = aws_cli("sts", "get-caller-identity", "--query", "Arn", "--output", "text", env=env)
    assert who.stdout.strip().endswith(f"assumed-role/{fleet.role_name}/i-proc")
    # The JSON itself: Version 1 and the four fields.
    import subprocess
    out = subprocess.run([tresor_bin(), "credential-process", "--role-arn", fleet.role_arn,
                          "--endpoint-url", fleet.server.endpoint, "--region", REGION, "--profile", "host"],
                         capture_output=True, text=True, env={**env, "AWS_PROFILE": "host"}, timeout=30)
    assert out.returncode == 0, out.stderr
    j = json.loads(out.stdout)
    assert j["Version"] == 1 and set(j) == {"Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"}
    # A role it may not assume: exit 1, one line, nothing on stdout.
    bad = subprocess.run([tresor_bin(), "credential-process", "--role-arn",
                          f"arn:aws:iam::{fleet.account}:role/nope-{fleet.suffix}",
                          "--endpoint-url", fleet.server.endpoint, "--profile", "host"],
                         capture_output=True, text=True, env=env, timeout=30)
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.startswith("tresor credential-process: cannot assume")


def test_host_init_writes_a_working_setup(fleet, tmp_path):
    import subprocess
    out = tmp_path / "setup"
    out.mkdir()
    r = subprocess.run([tresor_bin(), "host", "init", "--role-arn", fleet.role_arn, "--endpoint-url",
                        fleet.server.endpoint, "--mode", "credential-process", "--source-profile", "host",
                        "--write-dir", str(out)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["aws-config", "host.env"]
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in out.iterdir())
    # The written profile, used as it is, with the source credential in its own file.
    creds = tmp_path / "host-credentials"
    creds.write_text(f"[host]\naws_access_key_id = {fleet.host_key[0]}\n"
                     f"aws_secret_access_key = {fleet.host_key[1]}\n")
    env = {"AWS_CONFIG_FILE": str(out / "aws-config"), "AWS_SHARED_CREDENTIALS_FILE": str(creds),
           "AWS_PROFILE": "instance", "HOME": str(tmp_path)}
    for line in (out / "host.env").read_text().splitlines():
        if line and not line.startswith("#"):
            k, v = line.split("=", 1)
            env.setdefault(k, v)
    r = aws_cli("ssm", "get-parameter", "--name", fleet.path, "--with-decryption",
                "--query", "Parameter.Value", "--output", "text", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == TOKEN + "\n"
    # The imds mode: the environment and the unit's command line.
    r = subprocess.run([tresor_bin(), "host", "init", "--role-arn", fleet.role_arn, "--endpoint-url",
                        fleet.server.endpoint, "--token-path", fleet.path], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1338\n" in r.stdout
    assert f"imds --role-arn {fleet.role_arn} --endpoint-url {fleet.server.endpoint} --region {REGION}" in r.stdout
    assert f"fetch {fleet.path} --out /etc/buildkite-agent/buildkite-agent.cfg --format line --key token" in r.stdout


def test_sessions_outlive_an_unreachable_sts(tmp_path):
    # Its own server, stopped under a running `tresor imds`: the session it holds is still
    # served (it is valid for an hour), and the failed renewals are logged, not fatal.
    from conftest import start_server
    srv = start_server(data_dir=tmp_path / "data")
    try:
        f = Fleet(srv, tmp_path, TOKEN)
        p = f.imds("--duration-seconds", "900", "--refresh-before", "895")
        path = f"/latest/meta-data/iam/security-credentials/{f.role_name}"
        first = json.loads(md(p.url, path, v2_token(p.url))[2])
        srv.stop()
        wait_for(lambda: "could not renew the role session" in p.log_tail(), timeout=20,
                 what="a failed renewal")
        status, _, body = md(p.url, path, v2_token(p.url))
        c = json.loads(body)
        assert status == 200 and c["Code"] == "Success"
        assert c["Expiration"] >= first["Expiration"]
        assert p.proc.poll() is None
        p.stop()
    finally:
        srv.stop()
