"""Replication between two deployments: two `tresor serve` processes with their own data
directories, the primary's serving us-east-1 and the peer's serving us-west-2. The primary's
configuration names the peer (`[[replication.peers]]`: endpoint and a credentials file of a
replication principal *in the peer's IAM*); replica updates go to the peer's API as
`secretsmanager.TresorApplyReplicaUpdate`, SigV4-signed, and the peer authorizes them with its
own IAM.

The story: replicate at creation; the replica is read-only on the peer; the peer down → the
primary shows `Failed` with a clear message, a write made meanwhile reaches the peer when it
returns (nothing lost, nothing duplicated); the peer's IAM revoking the replication principal
stops replication; the primary's process stopped → the peer still serves reads, including the
Parameter Store reference path."""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from conftest import aws_cli, start_server, uniq
from test_rotation import wait_for

ACCOUNT = "210987654321"
A, B = "us-east-1", "us-west-2"
REPLICA_WRITE = "Operation not permitted on a replica secret. Call must be made in primary secret's region."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


REPLICATOR_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Action": "secretsmanager:TresorApplyReplicaUpdate",
    "Resource": f"arn:aws:secretsmanager:{B}:{ACCOUNT}:secret:*"}]})


class Pair:
    def __init__(self, root: Path):
        self.root = root
        self.port_b = free_port()
        self.b = self.start_b()
        iam_b = self.b.admin("iam", region=B)
        iam_b.create_user(UserName="replicator")
        iam_b.put_user_policy(UserName="replicator", PolicyName="replicate", PolicyDocument=REPLICATOR_POLICY)
        key = iam_b.create_access_key(UserName="replicator")["AccessKey"]
        creds = root / "peer-b.credentials"
        creds.write_text(f"[default]\naws_access_key_id = {key['AccessKeyId']}\n"
                         f"aws_secret_access_key = {key['SecretAccessKey']}\n")
        os.chmod(creds, 0o600)
        self.secret_access_key = key["SecretAccessKey"]
        config = root / "a.toml"
        config.write_text(f'[[replication.peers]]\nregions = ["{B}"]\nendpoint = "http://127.0.0.1:{self.port_b}"\n'
                          f'credentials_file = "{creds}"\n')
        self.config = config
        self.a = self.start_a()

    def start_a(self):
        return start_server("--account-id", ACCOUNT, "--regions", A, "--config", str(self.config),
                            data_dir=self.root / "a")

    @property
    def sm_a(self):
        return self.a.admin("secretsmanager", region=A)

    def start_b(self):
        return start_server("--account-id", ACCOUNT, "--regions", B, "--listen", f"127.0.0.1:{self.port_b}",
                            data_dir=self.root / "b")

    @property
    def sm_b(self):
        return self.b.admin("secretsmanager", region=B)

    def status(self, name):
        return next(iter(self.sm_a.describe_secret(SecretId=name).get("ReplicationStatus", [])), None)

    def wait_status(self, name, status, what=None):
        return wait_for(lambda: (s := self.status(name)) and s["Status"] == status and s,
                        timeout=45, what=what or f"status {status}")


@pytest.fixture(scope="module")
def pair():
    root = Path(tempfile.mkdtemp(prefix="tresor-peers-"))
    p = Pair(root)
    yield p
    p.a.stop()
    p.b.stop()
    shutil.rmtree(root, ignore_errors=True)


def test_the_credentials_stay_out_of_arguments_and_logs(pair):
    cmdline = " ".join(pair.a.proc.args)
    assert pair.secret_access_key not in cmdline
    assert "replicator" not in cmdline
    assert pair.secret_access_key not in pair.a.log_tail()


def test_a_secret_replicates_to_the_peer_deployment(pair):
    name = uniq("peer/token")
    out = pair.sm_a.create_secret(Name=name, SecretString="t1", AddReplicaRegions=[{"Region": B}])
    st = pair.wait_status(name, "InSync")
    assert st["StatusMessage"] == "Replication succeeded"
    replica = pair.sm_b.describe_secret(SecretId=name)
    assert replica["ARN"] == out["ARN"].replace(f":{A}:", f":{B}:")
    assert replica["PrimaryRegion"] == A
    akid, secret = pair.b.admin_keys()
    r = aws_cli("--endpoint-url", pair.b.endpoint, "--region", B, "secretsmanager", "get-secret-value",
                "--secret-id", name, "--output", "json",
                env={"AWS_ACCESS_KEY_ID": akid, "AWS_SECRET_ACCESS_KEY": secret})
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert (got["SecretString"], got["VersionId"]) == ("t1", out["VersionId"])
    # Read-only on the peer, as a replica is.
    with pytest.raises(ClientError) as e:
        pair.sm_b.put_secret_value(SecretId=name, SecretString="local")
    assert e.value.response["Error"]["Code"] == "InvalidParameterException"
    assert e.value.response["Error"]["Message"] == REPLICA_WRITE
    with pytest.raises(ClientError) as e:
        pair.sm_b.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    assert e.value.response["Error"]["Message"] == REPLICA_WRITE
    # Updates follow.
    pair.sm_a.update_secret(SecretId=name, Description="from the primary")
    wait_for(lambda: pair.sm_b.describe_secret(SecretId=name).get("Description") == "from the primary",
             what="the description on the peer")


def test_a_write_while_the_peer_is_down_arrives_when_it_returns(pair):
    name = uniq("peer/down")
    pair.sm_a.create_secret(Name=name, SecretString="before", AddReplicaRegions=[{"Region": B}])
    pair.wait_status(name, "InSync")
    pair.b.stop()
    new = pair.sm_a.put_secret_value(SecretId=name, SecretString="while-down")["VersionId"]
    st = pair.wait_status(name, "Failed")
    assert st["StatusMessage"].startswith("Replication failed: the deployment serving region us-west-2 "
                                          f"(http://127.0.0.1:{pair.port_b}) is unreachable"), st
    # The primary serves on regardless.
    assert pair.sm_a.get_secret_value(SecretId=name)["SecretString"] == "while-down"
    pair.b = pair.start_b()
    pair.wait_status(name, "InSync", what="InSync again after the peer returned")
    got = pair.sm_b.get_secret_value(SecretId=name)
    assert (got["SecretString"], got["VersionId"]) == ("while-down", new)
    assert pair.sm_b.describe_secret(SecretId=name)["VersionIdsToStages"] == \
        pair.sm_a.describe_secret(SecretId=name)["VersionIdsToStages"]
    ids_b = [v["VersionId"] for v in pair.sm_b.list_secret_version_ids(SecretId=name)["Versions"]]
    ids_a = [v["VersionId"] for v in pair.sm_a.list_secret_version_ids(SecretId=name)["Versions"]]
    assert sorted(ids_b) == sorted(ids_a) and len(ids_b) == 2, "nothing lost, nothing duplicated"
    assert "replica caught up after a failure" in pair.a.log_tail()


def test_a_pending_update_survives_a_restart_of_the_primary(pair):
    name = uniq("peer/restart")
    pair.sm_a.create_secret(Name=name, SecretString="one", AddReplicaRegions=[{"Region": B}])
    pair.wait_status(name, "InSync")
    pair.b.stop()
    pair.sm_a.put_secret_value(SecretId=name, SecretString="two")
    pair.wait_status(name, "Failed")
    # The primary's process goes down with the update still queued, and comes back.
    pair.a.stop()
    pair.a = pair.start_a()
    pair.b = pair.start_b()
    pair.wait_status(name, "InSync", what="the queued update delivered after both restarts")
    assert pair.sm_b.get_secret_value(SecretId=name)["SecretString"] == "two"
    assert len(pair.sm_b.list_secret_version_ids(SecretId=name)["Versions"]) == 2


def test_the_peers_iam_decides(pair):
    name = uniq("peer/iam")
    pair.sm_a.create_secret(Name=name, SecretString="x", AddReplicaRegions=[{"Region": B}])
    pair.wait_status(name, "InSync")
    iam_b = pair.b.admin("iam", region=B)
    iam_b.delete_user_policy(UserName="replicator", PolicyName="replicate")
    pair.sm_a.put_secret_value(SecretId=name, SecretString="y")
    st = pair.wait_status(name, "Failed")
    assert "secretsmanager:TresorApplyReplicaUpdate" in st["StatusMessage"]
    assert "(AccessDeniedException)" in st["StatusMessage"]
    iam_b.put_user_policy(UserName="replicator", PolicyName="replicate", PolicyDocument=REPLICATOR_POLICY)
    pair.wait_status(name, "InSync")
    assert pair.sm_b.get_secret_value(SecretId=name)["SecretString"] == "y"


def test_remove_and_promote_reach_the_peer(pair):
    removed, promoted = uniq("peer/removed"), uniq("peer/promoted")
    for name in (removed, promoted):
        pair.sm_a.create_secret(Name=name, SecretString="v", AddReplicaRegions=[{"Region": B}])
        pair.wait_status(name, "InSync")
    out = pair.sm_a.remove_regions_from_replication(SecretId=removed, RemoveReplicaRegions=[B])
    assert out["ReplicationStatus"] == []

    def gone():
        try:
            pair.sm_b.describe_secret(SecretId=removed)
            return False
        except ClientError as e:
            return e.response["Error"]["Code"] == "ResourceNotFoundException"
    wait_for(gone, what="the peer's replica deleted")

    # Promoted on the peer: the primary learns it with its next update and stops replicating.
    pair.sm_b.stop_replication_to_replica(SecretId=promoted)
    assert pair.sm_b.describe_secret(SecretId=promoted)["PrimaryRegion"] == B
    pair.sm_b.put_secret_value(SecretId=promoted, SecretString="standalone")
    pair.sm_a.put_secret_value(SecretId=promoted, SecretString="primary")
    wait_for(lambda: "ReplicationStatus" not in pair.sm_a.describe_secret(SecretId=promoted),
             what="the primary forgetting the promoted region")
    assert pair.sm_b.get_secret_value(SecretId=promoted)["SecretString"] == "standalone"



def test_the_peer_serves_reads_while_the_primary_is_stopped(pair):
    name = uniq("peer/dr")
    pair.sm_a.create_secret(Name=name, SecretString="boot-token", AddReplicaRegions=[{"Region": B}])
    pair.wait_status(name, "InSync")
    pair.a.stop()
    assert pair.sm_b.get_secret_value(SecretId=name)["SecretString"] == "boot-token"
    ssm_b = pair.b.admin("ssm", region=B)
    got = ssm_b.get_parameter(Name=f"/aws/reference/secretsmanager/{name}", WithDecryption=True)["Parameter"]
    assert got["Value"] == "boot-token"
    assert got["ARN"].startswith(f"arn:aws:secretsmanager:{B}:{ACCOUNT}:secret:{name}-")


def _ca_and_leaf(d: Path, name: str):
    """A CA and a server certificate for 127.0.0.1 it signed: (ca.pem, cert.pem, key.pem)."""
    ca, ca_key = d / f"{name}-ca.pem", d / f"{name}-ca.key"
    cert, key, csr, ext = d / f"{name}.pem", d / f"{name}.key", d / f"{name}.csr", d / f"{name}.ext"
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "1",
        "-subj", f"/CN={name} test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")
    ext.write_text("basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "1", "-extfile", str(ext))
    return ca, cert, key


def test_replication_over_tls_trusts_only_the_configured_ca(tmp_path):
    ca, cert, key = _ca_and_leaf(tmp_path, "peer")
    other, _, _ = _ca_and_leaf(tmp_path, "other")
    port = free_port()
    b = start_server("--account-id", ACCOUNT, "--regions", B, "--listen", f"127.0.0.1:{port}",
                     "--tls-cert", str(cert), "--tls-key", str(key), data_dir=tmp_path / "b")
    iam_b = b.admin("iam", region=B, verify=str(ca))
    iam_b.create_user(UserName="replicator")
    iam_b.put_user_policy(UserName="replicator", PolicyName="replicate", PolicyDocument=REPLICATOR_POLICY)
    k = iam_b.create_access_key(UserName="replicator")["AccessKey"]
    servers = []
    try:
        for trusted, expect in ((other, "Failed"), (ca, "InSync")):
            config = tmp_path / f"a-{expect}.toml"
            config.write_text(f'[[replication.peers]]\nregions = ["{B}"]\nendpoint = "https://127.0.0.1:{port}"\n'
                              f'ca_file = "{trusted}"\ncredentials_env = "PEER_B"\n')
            a = start_server("--account-id", ACCOUNT, "--regions", A, "--config", str(config),
                             data_dir=tmp_path / f"a-{expect}",
                             env={"PEER_B_ACCESS_KEY_ID": k["AccessKeyId"],
                                  "PEER_B_SECRET_ACCESS_KEY": k["SecretAccessKey"]})
            servers.append(a)
            sm_a = a.admin("secretsmanager", region=A)
            name = uniq("peer/tls")
            sm_a.create_secret(Name=name, SecretString="over-tls", AddReplicaRegions=[{"Region": B}])
            st = wait_for(lambda: (s := sm_a.describe_secret(SecretId=name)["ReplicationStatus"][0])
                          and s["Status"] == expect and s, timeout=45, what=expect)
            if expect == "Failed":
                assert "unreachable" in st["StatusMessage"], st
            else:
                sm_b = b.admin("secretsmanager", region=B, verify=str(ca))
                assert sm_b.get_secret_value(SecretId=name)["SecretString"] == "over-tls"
            a.stop()
    finally:
        for s in servers:
            s.stop()
        b.stop()
