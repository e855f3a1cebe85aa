"""CI jobs log in with the identity they already carry: an IAM OpenID Connect provider, a role
that trusts it, and `AssumeRoleWithWebIdentity` with a token from a local OIDC issuer (AWS STS
API Reference, AssumeRoleWithWebIdentity; IAM User Guide, "Create an OpenID Connect (OIDC)
identity provider in IAM" and "Available keys for AWS OIDC federation").

The issuer runs inside the test: an HTTPS server on 127.0.0.1 with a certificate from a test CA
made by the `openssl` CLI, serving the OpenID discovery document and the JWK Set. Tokens are
signed here (RS256 with the `rsa` package the AWS CLI depends on, ES256 with `openssl dgst`).
tresor is told to trust the test CA through `[federation] ca_bundle`. The provider is
registered with the AWS CLI; boto3's web-identity credential provider
(`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, no other credentials) reads the CI token
through `/aws/reference/secretsmanager/<id>`; then every way a token can be wrong, each with
AWS's error code."""

import base64
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import botocore.config
import botocore.exceptions
import pytest
import rsa

from conftest import REGION, aws_cli, start_server, uniq

AUDIENCE = "sts.amazonaws.com"
SUBJECT = "repo:example-org/deploy:ref:refs/heads/main"


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def openssl(*args, input=None) -> bytes:
    return subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, input=input).stdout


def der_ecdsa_to_raw(der: bytes) -> bytes:
    """An ECDSA-Sig-Value (SEQUENCE of two INTEGERs) as JWS's fixed r || s (32 bytes each)."""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        out += der[i + 2:i + 2 + n].lstrip(b"\x00").rjust(32, b"\x00")
        i += 2 + n
    return out


class Issuer:
    """A local OpenID Connect issuer: discovery document and JWK Set over HTTPS."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        ca_key, self.ca_pem = tmp / "ca.key", tmp / "ca.pem"
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", self.ca_pem, "-days", "1",
                "-subj", "/CN=tresor test OIDC CA", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        key, csr, cert, ext = tmp / "srv.key", tmp / "srv.csr", tmp / "srv.pem", tmp / "srv.ext"
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
        ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                       "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
        openssl("x509", "-req", "-in", csr, "-CA", self.ca_pem, "-CAkey", ca_key, "-CAcreateserial", "-out", cert,
                "-days", "1", "-extfile", ext)
        # Signing keys: two RSA (k1 served from the start, k2 only after a rotation), one EC.
        self.rsa = {}
        for kid in ("k1", "k2"):
            pem = openssl("genrsa", "-traditional", "2048")
            self.rsa[kid] = rsa.PrivateKey.load_pkcs1(pem)
        self.ec_pem = tmp / "ec.pem"
        openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", self.ec_pem)
        point = openssl("ec", "-in", self.ec_pem, "-pubout", "-outform", "DER")[-65:]
        assert point[0] == 4
        self.ec_jwk = {"kty": "EC", "kid": "e1", "crv": "P-256", "x": b64u(point[1:33]), "y": b64u(point[33:])}
        self.served = ["k1", "e1"]
        self.jwks_fetches = 0

        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/ci/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": issuer.url + "/jwks",
                            "id_token_signing_alg_values_supported": ["RS256", "ES256"]}
                elif self.path == "/ci/jwks":
                    issuer.jwks_fetches += 1
                    body = {"keys": [issuer.jwk(k) for k in issuer.served]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}/ci"
        self.host_path = self.url.removeprefix("https://")
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def jwk(self, kid):
        if kid == "e1":
            return self.ec_jwk
        k = self.rsa[kid]
        n = k.n.to_bytes((k.n.bit_length() + 7) // 8, "big")
        e = k.e.to_bytes((k.e.bit_length() + 7) // 8, "big")
        return {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64u(n), "e": b64u(e)}

    def claims(self, **over):
        now = int(time.time())
        c = {"iss": self.url, "sub": SUBJECT, "aud": AUDIENCE, "iat": now, "nbf": now, "exp": now + 300,
             "repository": "example-org/deploy"}
        c.update(over)
        return {k: v for k, v in c.items() if v is not None}

    def token(self, kid="k1", alg=None, **over) -> str:
        alg = alg or ("ES256" if kid == "e1" else "RS256")
        header = {"alg": alg, "kid": kid, "typ": "JWT"}
        signing_input = f"{b64u(json.dumps(header).encode())}.{b64u(json.dumps(self.claims(**over)).encode())}"
        if alg == "ES256":
            der = openssl("dgst", "-sha256", "-sign", self.ec_pem, input=signing_input.encode())
            sig = der_ecdsa_to_raw(der)
        elif alg == "RS256":
            sig = rsa.sign(signing_input.encode(), self.rsa[kid if kid in self.rsa else "k1"], "SHA-256")
        else:
            sig = b""
        return f"{signing_input}.{b64u(sig)}"

    def stop(self):
        self.httpd.shutdown()


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class World:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.issuer = Issuer(tmp)
        config = tmp / "tresor.toml"
        config.write_text(f'[federation]\nca_bundle = "{self.issuer.ca_pem}"\njwks_refetch_seconds = 1\n')
        self.server = start_server("--config", str(config), data_dir=tmp / "data")
        akid, secret = self.server.admin_keys()
        (tmp / "credentials").write_text(f"[admin]\naws_access_key_id = {akid}\naws_secret_access_key = {secret}\n")
        (tmp / "config").write_text(f"[profile admin]\nregion = {REGION}\n")
        self.iam = self.server.admin("iam")
        self.account = self.server.admin("sts").get_caller_identity()["Account"]

    def cli(self, *args, profile="admin", env=None):
        base = {"AWS_CONFIG_FILE": str(self.tmp / "config"), "AWS_SHARED_CREDENTIALS_FILE": str(self.tmp / "credentials"),
                "AWS_ENDPOINT_URL": self.server.endpoint, "AWS_DEFAULT_REGION": REGION, "HOME": str(self.tmp)}
        if profile:
            base["AWS_PROFILE"] = profile
        base.update(env or {})
        return aws_cli(*args, env=base)

    def admin(self, *args):
        r = self.cli(*args, "--output", "json")
        assert r.returncode == 0, (args, r.stderr)
        return json.loads(r.stdout) if r.stdout.strip() else None

    def sts(self):
        """An STS client; AssumeRoleWithWebIdentity is sent unsigned whatever it holds."""
        return boto3.client("sts", endpoint_url=self.server.endpoint, region_name=REGION,
                            aws_access_key_id="unused", aws_secret_access_key="unused",
                            config=botocore.config.Config(retries={"max_attempts": 1}))

    def assume(self, token, role_arn=None, **kw):
        return self.sts().assume_role_with_web_identity(
            RoleArn=role_arn or self.role_arn, RoleSessionName="ci-job-42", WebIdentityToken=token, **kw)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = World(tmp_path_factory.mktemp("fed"))
    out = w.admin("iam", "create-open-id-connect-provider", "--url", w.issuer.url,
                  "--client-id-list", AUDIENCE)
    w.provider_arn = out["OpenIDConnectProviderArn"]
    hp = w.issuer.host_path
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Federated": w.provider_arn}, "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {f"{hp}:aud": AUDIENCE}, "StringLike": {f"{hp}:sub": "repo:example-org/*"}}}]}
    w.role_name = uniq("ci-deploy")
    w.role_arn = w.iam.create_role(RoleName=w.role_name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    w.iam.put_role_policy(RoleName=w.role_name, PolicyName="read-ci-token", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [
            "ssm:GetParameter", "secretsmanager:GetSecretValue", "kms:Decrypt"], "Resource": "*"}]}))
    w.secret_name = uniq("ci/agent-token")
    w.secret_value = "bkua_" + uuid.uuid4().hex
    w.server.admin("secretsmanager").create_secret(Name=w.secret_name, SecretString=w.secret_value)
    yield w
    w.server.stop()
    w.issuer.stop()


def error_code(exc_info):
    return exc_info.value.response["Error"]["Code"], exc_info.value.response["Error"].get("Message", "")


def test_provider_operations_with_the_cli(world):
    url = f"https://oidc-{uuid.uuid4().hex[:8]}.example.com/tenant"
    thumb = "9e99a48a9960b14926bb7f3b02e22da2b0ab7280"
    arn = world.admin("iam", "create-open-id-connect-provider", "--url", url, "--client-id-list", "a", "b",
                      "--thumbprint-list", thumb, "--tags", "Key=team,Value=ci")["OpenIDConnectProviderArn"]
    assert arn == f"arn:aws:iam::{world.account}:oidc-provider/{url.removeprefix('https://')}"
    got = world.admin("iam", "get-open-id-connect-provider", "--open-id-connect-provider-arn", arn)
    assert got["Url"] == url.removeprefix("https://")
    assert got["ClientIDList"] == ["a", "b"]
    assert got["ThumbprintList"] == [thumb]
    assert got["Tags"] == [{"Key": "team", "Value": "ci"}]
    listed = world.admin("iam", "list-open-id-connect-providers")["OpenIDConnectProviderList"]
    assert {"Arn": arn} in listed and {"Arn": world.provider_arn} in listed
    world.admin("iam", "add-client-id-to-open-id-connect-provider", "--open-id-connect-provider-arn", arn,
                "--client-id", "c")
    world.admin("iam", "add-client-id-to-open-id-connect-provider", "--open-id-connect-provider-arn", arn,
                "--client-id", "c")  # idempotent
    world.admin("iam", "remove-client-id-from-open-id-connect-provider", "--open-id-connect-provider-arn", arn,
                "--client-id", "a")
    world.admin("iam", "remove-client-id-from-open-id-connect-provider", "--open-id-connect-provider-arn", arn,
                "--client-id", "zzz")  # idempotent
    world.admin("iam", "update-open-id-connect-provider-thumbprint", "--open-id-connect-provider-arn", arn,
                "--thumbprint-list", "A" * 40)
    world.admin("iam", "tag-open-id-connect-provider", "--open-id-connect-provider-arn", arn,
                "--tags", "Key=env,Value=prod")
    world.admin("iam", "untag-open-id-connect-provider", "--open-id-connect-provider-arn", arn, "--tag-keys", "team")
    got = world.admin("iam", "get-open-id-connect-provider", "--open-id-connect-provider-arn", arn)
    assert got["ClientIDList"] == ["b", "c"]
    assert got["ThumbprintList"] == ["a" * 40]
    tags = world.admin("iam", "list-open-id-connect-provider-tags", "--open-id-connect-provider-arn", arn)
    assert tags["Tags"] == [{"Key": "env", "Value": "prod"}]

    iam = world.iam
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iam.create_open_id_connect_provider(Url=url, ClientIDList=["x"])
    assert error_code(e)[0] == "EntityAlreadyExists"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iam.create_open_id_connect_provider(Url="http://plain.example.com", ClientIDList=["x"])
    assert error_code(e)[0] == "InvalidInput"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iam.create_open_id_connect_provider(Url="https://x.example.com", ThumbprintList=["g" * 40])
    assert error_code(e)[0] == "InvalidInput"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iam.update_open_id_connect_provider_thumbprint(OpenIDConnectProviderArn=arn, ThumbprintList=[thumb] * 6)
    assert error_code(e)[0] == "LimitExceeded"

    world.admin("iam", "delete-open-id-connect-provider", "--open-id-connect-provider-arn", arn)
    for call in (lambda: iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn),
                 lambda: iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=arn)):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call()
        code, message = error_code(e)
        assert code == "NoSuchEntity" and arn in message
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iam.get_open_id_connect_provider(OpenIDConnectProviderArn=f"arn:aws:iam::{world.account}:role/not-a-provider")
    assert error_code(e)[0] == "InvalidInput"


def test_provider_operations_need_iam_permission(world):
    name = uniq("u")
    world.iam.create_user(UserName=name)
    key = world.iam.create_access_key(UserName=name)["AccessKey"]
    iam = world.server.client("iam", key["AccessKeyId"], key["SecretAccessKey"])
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iam.create_open_id_connect_provider(Url="https://denied.example.com", ClientIDList=["x"])
    code, message = error_code(e)
    assert code == "AccessDenied" and "iam:CreateOpenIDConnectProvider" in message
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iam.get_open_id_connect_provider(OpenIDConnectProviderArn=world.provider_arn)
    assert error_code(e)[0] == "AccessDenied"


def test_sdk_web_identity_provider_reads_the_token_through_the_reference_path(world):
    token_file = world.tmp / "web-identity-token"
    token_file.write_text(world.issuer.token())
    script = (
        "import boto3, json, sys\n"
        "ssm = boto3.client('ssm')\n"
        "p = ssm.get_parameter(Name=sys.argv[1], WithDecryption=True)['Parameter']\n"
        "who = boto3.client('sts').get_caller_identity()\n"
        "print(json.dumps({'value': p['Value'], 'arn': who['Arn']}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file),
        "AWS_ROLE_ARN": world.role_arn,
        "AWS_ROLE_SESSION_NAME": "buildkite-job-7",
        "AWS_ENDPOINT_URL": world.server.endpoint,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    })
    r = subprocess.run([sys.executable, "-c", script, f"/aws/reference/secretsmanager/{world.secret_name}"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["value"] == world.secret_value
    assert out["arn"] == f"arn:aws:sts::{world.account}:assumed-role/{world.role_name}/buildkite-job-7"


def test_cli_assume_role_with_web_identity_unchanged(world):
    token = world.issuer.token()
    r = world.cli("sts", "assume-role-with-web-identity", "--role-arn", world.role_arn, "--role-session-name",
                  "gha-run-1", "--web-identity-token", token, "--duration-seconds", "900", "--output", "json",
                  profile=None, env={"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull})
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["SubjectFromWebIdentityToken"] == SUBJECT
    assert out["Provider"] == world.issuer.url
    assert out["Audience"] == AUDIENCE
    assert out["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{world.account}:assumed-role/{world.role_name}/gha-run-1"
    assert out["AssumedRoleUser"]["AssumedRoleId"].startswith("AROA")
    creds = out["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA")
    session = world.server.session("sts", creds)
    assert session.get_caller_identity()["Arn"] == out["AssumedRoleUser"]["Arn"]
    # The session has the role's permissions and nothing more.
    sm = world.server.session("secretsmanager", creds)
    assert sm.get_secret_value(SecretId=world.secret_name)["SecretString"] == world.secret_value
    with pytest.raises(botocore.exceptions.ClientError) as e:
        world.server.session("iam", creds).list_users()
    assert error_code(e)[0] == "AccessDenied"


def test_es256_tokens_and_session_policies(world):
    policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"}]})
    out = world.assume(world.issuer.token(kid="e1"), Policy=policy)
    assert out["SubjectFromWebIdentityToken"] == SUBJECT
    assert 0 < out["PackedPolicySize"] <= 100
    # The session policy narrows the role: the secret is out of reach.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        world.server.session("secretsmanager", out["Credentials"]).get_secret_value(SecretId=world.secret_name)
    assert error_code(e)[0] == "AccessDeniedException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        world.assume(world.issuer.token(), Policy="{not json")
    assert error_code(e)[0] == "MalformedPolicyDocument"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        world.assume(world.issuer.token(), DurationSeconds=7200)
    assert error_code(e)[0] == "ValidationError"


def test_audience_may_be_a_list_and_subject_patterns_decide(world):
    out = world.assume(world.issuer.token(aud=["other-client", AUDIENCE]))
    assert out["Audience"] == AUDIENCE
    # A subject outside `repo:example-org/*`: the trust policy says no.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        world.assume(world.issuer.token(sub="repo:attacker-org/deploy:ref:refs/heads/main"))
    code, message = error_code(e)
    assert (code, message) == ("AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    # A role that does not exist is refused alike.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        world.assume(world.issuer.token(), role_arn=f"arn:aws:iam::{world.account}:role/no-such-role")
    assert error_code(e)[0] == "AccessDenied"


@pytest.mark.parametrize("case, expected", [
    ("wrong audience", ("InvalidIdentityToken", "Incorrect token audience")),
    ("expired", ("ExpiredTokenException", "Token expired")),
    ("unknown kid", ("InvalidIdentityToken", "Couldn't retrieve verification key")),
    ("tampered signature", ("InvalidIdentityToken", "could not be validated")),
    ("alg none", ("InvalidIdentityToken", "unsupported algorithm")),
    ("unregistered issuer", ("InvalidIdentityToken", "No OpenIDConnect provider found")),
    ("not a jwt", ("InvalidIdentityToken", "not a valid JWT")),
])
def test_bad_tokens_get_aws_errors(world, case, expected):
    iss = world.issuer
    token = {
        "wrong audience": lambda: iss.token(aud="some-other-client"),
        "expired": lambda: iss.token(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200,
                                     nbf=int(time.time()) - 7200),
        "unknown kid": lambda: iss.token(kid="k-unknown"),
        "tampered signature": lambda: tamper(iss.token()),
        "alg none": lambda: iss.token(alg="none"),
        "unregistered issuer": lambda: iss.token(iss="https://unregistered.example.com"),
        "not a jwt": lambda: "opaque-access-token-value",
    }[case]()
    with pytest.raises(botocore.exceptions.ClientError) as e:
        world.assume(token)
    code, message = error_code(e)
    assert code == expected[0], (case, code, message)
    assert expected[1] in message, (case, message)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # The token never comes back in an error.
    assert token not in message


def tamper(token: str) -> str:
    header, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "repo:example-org/other-repo:ref:refs/heads/main"
    return f"{header}.{b64u(json.dumps(claims).encode())}.{sig}"


def test_an_issuer_that_is_down_is_an_idp_communication_error(world):
    down = f"https://127.0.0.1:{free_port()}/down"
    world.iam.create_open_id_connect_provider(Url=down, ClientIDList=[AUDIENCE])
    with pytest.raises(botocore.exceptions.ClientError) as e:
        world.assume(world.issuer.token(iss=down))
    code, _ = error_code(e)
    assert code == "IDPCommunicationError"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_a_rotated_key_is_fetched_on_its_first_use(world):
    iss = world.issuer
    # Each node keeps its own cache of the issuer's keys: a token through every node (the
    # proxy of the several-node pass sends consecutive requests to the next node).
    for _ in world.server.node_endpoints:
        assert world.assume(iss.token())["SubjectFromWebIdentityToken"] == SUBJECT
    before = iss.jwks_fetches
    # Cached: more tokens with a known key cost the issuer nothing.
    for _ in world.server.node_endpoints:
        world.assume(iss.token())
    assert iss.jwks_fetches == before
    iss.served = ["k1", "k2", "e1"]
    time.sleep(1.1)  # past `jwks_refetch_seconds`
    assert world.assume(iss.token(kid="k2"))["SubjectFromWebIdentityToken"] == SUBJECT
    assert iss.jwks_fetches == before + 1
    # Unknown key ids in a burst: at most one more fetch per refetch interval (1 s) that the
    # burst spans, per node (each node keeps its own cache of the issuer's keys; the burst
    # alternates between them). On a loaded machine the burst can outlast the interval.
    time.sleep(1.1)
    started = time.monotonic()
    for _ in range(5):
        with pytest.raises(botocore.exceptions.ClientError):
            world.assume(iss.token(kid="k-bogus"))
    intervals = 1 + int(time.monotonic() - started)
    assert iss.jwks_fetches <= before + 1 + intervals * len(world.server.node_endpoints)
    iss.served = ["k1", "e1"]


def test_offline_jwks_for_air_gapped_issuers(tmp_path):
    """An issuer tresor never contacts: its JWK Set comes from a file."""
    iss = Issuer(tmp_path)
    iss.stop()  # nothing listens: only the offline keys can verify
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [iss.jwk("k1")]}))
    config = tmp_path / "tresor.toml"
    config.write_text(f'[[federation.offline_jwks]]\nissuer = "{iss.url}"\njwks_file = "{jwks}"\n')
    server = start_server("--config", str(config), data_dir=tmp_path / "data")
    try:
        iam = server.admin("iam")
        arn = iam.create_open_id_connect_provider(Url=iss.url, ClientIDList=[AUDIENCE])["OpenIDConnectProviderArn"]
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Federated": arn},
                                                         "Action": "sts:AssumeRoleWithWebIdentity"}]}
        role = iam.create_role(RoleName="air-gapped", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        sts = boto3.client("sts", endpoint_url=server.endpoint, region_name=REGION,
                           aws_access_key_id="unused", aws_secret_access_key="unused")
        out = sts.assume_role_with_web_identity(RoleArn=role, RoleSessionName="offline",
                                                WebIdentityToken=iss.token())
        assert out["SubjectFromWebIdentityToken"] == SUBJECT
        with pytest.raises(botocore.exceptions.ClientError) as e:
            sts.assume_role_with_web_identity(RoleArn=role, RoleSessionName="offline",
                                              WebIdentityToken=iss.token(kid="k2"))
        assert error_code(e)[0] == "InvalidIdentityToken"
    finally:
        server.stop()


def test_audit_records_name_the_federated_identity(world):
    """CloudTrail's shapes: the AssumeRoleWithWebIdentity call is a `WebIdentityUser`
    (`<provider>:<audience>:<subject>`), and requests signed with the session carry
    `sessionContext.webIdFederationData` naming the provider (and, in tresor, the subject)."""
    token = world.issuer.token()
    creds = world.assume(token)["Credentials"]
    session = world.server.client("secretsmanager", creds["AccessKeyId"], creds["SecretAccessKey"],
                                  creds["SessionToken"])
    assert session.get_secret_value(SecretId=world.secret_name)["SecretString"] == world.secret_value
    trail = world.server.admin("cloudtrail")

    def events(key, value):
        found = trail.lookup_events(LookupAttributes=[{"AttributeKey": key, "AttributeValue": value}])["Events"]
        return [json.loads(e["CloudTrailEvent"]) for e in found]

    hp = world.issuer.host_path
    logins = [e for e in events("EventName", "AssumeRoleWithWebIdentity")
              if e["userIdentity"].get("principalId") == f"{hp}:{AUDIENCE}:{SUBJECT}"]
    assert logins, "no AssumeRoleWithWebIdentity event for the token's identity"
    login = logins[0]["userIdentity"]
    assert login["type"] == "WebIdentityUser"
    assert login["userName"] == SUBJECT and login["identityProvider"] == hp
    assert token not in json.dumps(logins), "the token itself must never be recorded"

    reads = [e for e in events("AccessKeyId", creds["AccessKeyId"]) if e["eventName"] == "GetSecretValue"]
    assert reads, "no GetSecretValue event for the federated session"
    ident = reads[0]["userIdentity"]
    assert ident["type"] == "AssumedRole"
    fed = ident["sessionContext"]["webIdFederationData"]
    assert fed["federatedProvider"] == world.provider_arn
    assert fed["attributes"]["sub"] == SUBJECT and fed["attributes"]["aud"] == AUDIENCE
