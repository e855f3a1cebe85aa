"""Plaintext scan: distinctive random values written and read through every path that carries a
secret — CreateSecret, PutSecretValue, UpdateSecret, SecretBinary, SSM SecureString, KMS Encrypt,
GenerateDataKey, IAM CreateAccessKey, STS session credentials, the
`/aws/reference/secretsmanager/…` read — must not appear, raw, hex or base64, in any file of the
data directory (the database, its -wal and -shm) nor in the server's log at `--log debug`."""

import base64
import secrets
from pathlib import Path

import conftest
from conftest import start_server


def forms(value: bytes) -> dict[str, bytes]:
    """The raw, hex and base64 spellings of `value` as they would appear inside a larger text.

    base64 depends on the alignment of `value` within the encoded bytes, so each of the three
    alignments is checked; the edge characters (which depend on the neighbours) are dropped.
    """
    out = {"raw": value, "hex": value.hex().encode(), "HEX": value.hex().upper().encode()}
    for k in range(3):
        enc = base64.b64encode(b"\0" * k + value)
        start = 4 if k else 0
        out[f"base64+{k}"] = enc[start:len(enc) - 4]
        out[f"base64url+{k}"] = base64.urlsafe_b64encode(b"\0" * k + value)[start:len(enc) - 4]
    return out


def scan(blobs: dict[str, bytes], values: dict[str, bytes]) -> list[str]:
    hits = []
    for what, value in values.items():
        for form, needle in forms(value).items():
            for where, blob in blobs.items():
                if needle and needle in blob:
                    hits.append(f"{what} ({form}) found in {where}")
    return hits


def data_files(data_dir: Path) -> dict[str, bytes]:
    """Every file of `data_dir` and of the other nodes' data directories (`<data_dir>-node<n>`,
    on the several-node pass)."""
    out = {}
    for p in sorted(data_dir.rglob("*")) + sorted(data_dir.parent.glob(f"{data_dir.name}-node*/**/*")):
        if not p.is_file():
            continue
        try:
            out[str(p.relative_to(data_dir.parent))] = p.read_bytes()
        except FileNotFoundError:
            # An audit segment indexed into audit.db (and removed) since the listing.
            assert p.name.startswith("audit.db-seg."), str(p)
    return out


def token(label: str) -> str:
    return f"{label}-{secrets.token_hex(16)}"


def test_no_plaintext_in_data_files_or_debug_log(tmp_data_dir, monkeypatch):
    # Keep the whole log, not just the tail conftest keeps for failure reports.
    monkeypatch.setattr(conftest, "LOG_TAIL_LINES", 10_000_000)
    server = start_server("--log", "debug", data_dir=tmp_data_dir)
    values: dict[str, bytes] = {}
    try:
        sm = server.admin("secretsmanager")
        ssm = server.admin("ssm")
        kms = server.admin("kms")
        iam = server.admin("iam")
        sts = server.admin("sts")

        v = token("create-secret")
        values["CreateSecret"] = v.encode()
        sm.create_secret(Name="robust-scan", SecretString=v)
        assert sm.get_secret_value(SecretId="robust-scan")["SecretString"] == v

        v = token("put-secret-value")
        values["PutSecretValue"] = v.encode()
        sm.put_secret_value(SecretId="robust-scan", SecretString=v)
        assert sm.get_secret_value(SecretId="robust-scan")["SecretString"] == v

        v = token("update-secret")
        values["UpdateSecret"] = v.encode()
        sm.update_secret(SecretId="robust-scan", SecretString=v)
        assert sm.get_secret_value(SecretId="robust-scan")["SecretString"] == v

        b = b"BIN" + secrets.token_bytes(29)
        values["SecretBinary"] = b
        sm.create_secret(Name="robust-scan-bin", SecretBinary=b)
        assert sm.get_secret_value(SecretId="robust-scan-bin")["SecretBinary"] == b
        values["BatchGetSecretValue"] = b  # read again through the batch path
        sm.batch_get_secret_value(SecretIdList=["robust-scan-bin", "robust-scan"])

        v = token("securestring")
        values["SSM SecureString"] = v.encode()
        ssm.put_parameter(Name="/robust/scan", Value=v, Type="SecureString")
        assert ssm.get_parameter(Name="/robust/scan", WithDecryption=True)["Parameter"]["Value"] == v
        ssm.get_parameters_by_path(Path="/robust", WithDecryption=True)
        ssm.get_parameter_history(Name="/robust/scan", WithDecryption=True)

        v = token("reference")
        values["reference path"] = v.encode()
        sm.create_secret(Name="robust-scan-ref", SecretString=v)
        got = ssm.get_parameter(Name="/aws/reference/secretsmanager/robust-scan-ref", WithDecryption=True)
        assert got["Parameter"]["Value"] == v

        key = kms.create_key()["KeyMetadata"]["KeyId"]
        p = b"KMS" + secrets.token_bytes(29)
        values["KMS Encrypt plaintext"] = p
        blob = kms.encrypt(KeyId=key, Plaintext=p)["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == p
        dk = kms.generate_data_key(KeyId=key, KeySpec="AES_256")
        values["GenerateDataKey plaintext"] = dk["Plaintext"]
        assert kms.decrypt(CiphertextBlob=dk["CiphertextBlob"])["Plaintext"] == dk["Plaintext"]
        values["GenerateRandom"] = kms.generate_random(NumberOfBytes=32)["Plaintext"]

        iam.create_user(UserName="robust-scan")
        ak = iam.create_access_key(UserName="robust-scan")["AccessKey"]
        values["IAM CreateAccessKey secret"] = ak["SecretAccessKey"].encode()
        user_sts = server.client("sts", ak["AccessKeyId"], ak["SecretAccessKey"])
        import time
        for _ in range(50):  # a new key may take a moment to be usable (observed AWS behavior too)
            try:
                user_sts.get_caller_identity()
                break
            except Exception:  # noqa: BLE001
                time.sleep(0.1)

        sess = sts.get_session_token()["Credentials"]
        values["STS GetSessionToken secret"] = sess["SecretAccessKey"].encode()
        iam.create_role(RoleName="robust-scan", AssumeRolePolicyDocument=conftest.trust_for(
            sts.get_caller_identity()["Arn"]))
        role = sts.assume_role(RoleArn=f"arn:aws:iam::{sts.get_caller_identity()['Account']}:role/robust-scan",
                               RoleSessionName="scan")["Credentials"]
        values["STS AssumeRole secret"] = role["SecretAccessKey"].encode()
        # The session credentials are used, so their lookup path runs too.
        server.session("sts", role).get_caller_identity()
        server.session("sts", sess).get_caller_identity()

        hits = scan(data_files(tmp_data_dir), values)  # while running: the -wal and -shm exist
    finally:
        server.stop()
    for node in [server, *server.peers]:
        for t in node.drainers:
            t.join(timeout=10)
    log = server.log_tail().encode() + "".join(l for n in [server, *server.peers] for l in n.stdout_lines).encode()
    assert b"DEBUG" in log or b"debug" in log, "the server did not log at debug level: nothing was scanned"
    hits += scan(data_files(tmp_data_dir), values)
    hits += scan({"the server log": log}, values)
    files = sorted(data_files(tmp_data_dir))
    assert not hits, "\n".join(sorted(set(hits)))
    print(f"plaintext scan: {len(values)} values x {len(forms(b'x' * 32))} forms, files {files}, "
          f"log {len(log)} bytes: 0 hits")
