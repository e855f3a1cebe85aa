"""`tresor fetch` on a host running `tresor imds`: the boot-time write of the Buildkite agent
token into the agent's config file, each failure with its exit code and one line (the old file
left as it was), and `--watch` following a rotation."""

import json
import os
import stat
import subprocess
import time
import uuid

import pytest

from conftest import REGION, tresor_bin
from hostside import Fleet, clean_env, imds, policy, wait_for  # noqa: F401 (fixtures)

TOKEN = "bkua_" + uuid.uuid4().hex

AGENT_CFG = """# Buildkite agent configuration
name="%hostname-%spawn"
token="xxx"
tags="queue=default,stack=ci"
build-path="/var/lib/buildkite-agent/builds"
"""


@pytest.fixture(scope="module")
def fleet(server, tmp_path_factory):
    f = Fleet(server, tmp_path_factory.mktemp("fetch"), TOKEN)
    # Paths the role may read with ssm:GetParameter, behind which the next hop refuses.
    f.iam.put_role_policy(RoleName=f.role_name, PolicyName="MoreParameters", PolicyDocument=policy(
        {"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": [
            f"arn:aws:ssm:{REGION}:{f.account}:parameter/aws/reference/secretsmanager/denied-*",
            f"arn:aws:ssm:{REGION}:{f.account}:parameter/host-{f.suffix}/*"]}))
    sm, ssm, kms = server.admin("secretsmanager"), server.admin("ssm"), server.admin("kms")
    f.denied_secret = f"denied-{f.suffix}"
    sm.create_secret(Name=f.denied_secret, SecretString="not-for-the-role")
    other_key = kms.create_key(Description="not the role's")["KeyMetadata"]["KeyId"]
    f.kms_param = f"/host-{f.suffix}/under-another-key"
    ssm.put_parameter(Name=f.kms_param, Type="SecureString", Value="not-for-the-role", KeyId=other_key)
    f.plain_param = f"/host-{f.suffix}/plain"
    ssm.put_parameter(Name=f.plain_param, Type="String", Value="plain-value")
    f.no_ssm_param = f"/elsewhere-{f.suffix}"
    ssm.put_parameter(Name=f.no_ssm_param, Type="String", Value="x")
    return f


def fetch(fleet, imds, *args, env=None, timeout=60):
    e = clean_env(fleet.client_env(imds.url))
    e.update(env or {})
    return subprocess.run([tresor_bin(), "fetch", *args], capture_output=True, text=True, env=e, timeout=timeout)


def agent_cfg(tmp_path):
    cfg = tmp_path / "buildkite-agent.cfg"
    cfg.write_text(AGENT_CFG)
    cfg.chmod(0o644)
    return cfg


def mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)


def test_boot_writes_the_token_line_and_nothing_else(fleet, imds, tmp_path):
    cfg = agent_cfg(tmp_path)
    r = fetch(fleet, imds, fleet.path, "--out", str(cfg), "--format", "line", "--key", "token")
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    assert TOKEN not in r.stderr
    assert cfg.read_text() == AGENT_CFG.replace('token="xxx"', f'token="{TOKEN}"')
    assert mode(cfg) == 0o600
    # No temporary file left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["buildkite-agent.cfg"]


def test_raw_and_env_formats(fleet, imds, tmp_path):
    raw = tmp_path / "token"
    r = fetch(fleet, imds, fleet.path, "--out", str(raw))
    assert r.returncode == 0, r.stderr
    assert raw.read_text() == TOKEN and mode(raw) == 0o600
    env = tmp_path / "agent.env"
    r = fetch(fleet, imds, fleet.path, "--out", str(env), "--format", "env", "--env-name", "BUILDKITE_AGENT_TOKEN")
    assert r.returncode == 0, r.stderr
    assert env.read_text() == f"BUILDKITE_AGENT_TOKEN={TOKEN}\n" and mode(env) == 0o600
    # A secret read directly, and a String parameter.
    r = fetch(fleet, imds, "--secret", fleet.secret_id, "--out", str(raw))
    assert r.returncode == 0, r.stderr
    assert raw.read_text() == TOKEN
    r = fetch(fleet, imds, fleet.plain_param, "--out", str(raw))
    assert r.returncode == 0, r.stderr
    assert raw.read_text() == "plain-value"


@pytest.mark.parametrize("case", ["not-found", "ssm", "secretsmanager-reference", "secretsmanager-direct", "kms"])
def test_failures_exit_with_their_code_and_leave_the_file(fleet, imds, tmp_path, case):
    name, code, words = {
        "not-found": (f"/host-{fleet.suffix}/missing", 4, "not found"),
        "ssm": (fleet.no_ssm_param, 3, "access denied by ssm"),
        "secretsmanager-reference": (f"/aws/reference/secretsmanager/{fleet.denied_secret}", 3,
                                     "access denied by secretsmanager"),
        "secretsmanager-direct": (fleet.denied_secret, 3, "access denied by secretsmanager"),
        "kms": (fleet.kms_param, 3, "access denied by kms"),
    }[case]
    cfg = agent_cfg(tmp_path)
    extra = ["--secret"] if case == "secretsmanager-direct" else []
    r = fetch(fleet, imds, name, *extra, "--out", str(cfg), "--format", "line")
    assert r.returncode == code, (r.returncode, r.stderr)
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tresor fetch: " + words), r.stderr
    assert "not-for-the-role" not in r.stderr
    assert cfg.read_text() == AGENT_CFG and mode(cfg) == 0o644


def test_unreachable_gives_up_at_the_deadline(fleet, imds, tmp_path):
    cfg = agent_cfg(tmp_path)
    start = time.time()
    r = fetch(fleet, imds, fleet.path, "--out", str(cfg), "--format", "line", "--deadline", "3",
              env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    assert r.returncode == 5, r.stderr
    assert r.stderr.startswith("tresor fetch: unreachable")
    assert time.time() - start < 30
    assert cfg.read_text() == AGENT_CFG


def test_bad_usage(fleet, imds, tmp_path):
    r = fetch(fleet, imds, fleet.path, "--out", str(tmp_path / "x"), "--format", "env")
    assert r.returncode == 2 and "--env-name" in r.stderr
    r = fetch(fleet, imds, fleet.path, "--out", str(tmp_path / "missing.cfg"), "--format", "line")
    assert r.returncode == 2 and "does not exist" in r.stderr
    r = fetch(fleet, imds, fleet.path, "--out", str(tmp_path / "x"), "--", "true")
    assert r.returncode == 2 and "--watch" in r.stderr
    assert not (tmp_path / "x").exists()
    # A directory that does not exist: the write fails after the read, exit 6.
    r = fetch(fleet, imds, fleet.path, "--out", str(tmp_path / "no-such-dir" / "x"))
    assert r.returncode == 6 and r.stderr.startswith("tresor fetch: cannot create a temporary file"), r.stderr
    assert TOKEN not in r.stderr


def test_watch_follows_a_rotation_and_reloads(fleet, imds, tmp_path):
    cfg = agent_cfg(tmp_path)
    marker = tmp_path / "reloads"
    # The reload command records its arguments and environment: the token must be in neither.
    script = tmp_path / "reload.py"
    script.write_text("import json, os, sys\n"
                      f"open({str(marker)!r}, 'a').write(json.dumps({{'argv': sys.argv, 'env': dict(os.environ)}}) + '\\n')\n")
    import sys
    e = clean_env(fleet.client_env(imds.url))
    proc = subprocess.Popen([tresor_bin(), "fetch", fleet.path, "--out", str(cfg), "--format", "line",
                             "--watch", "--interval", "1", "--", sys.executable, str(script), "reloaded"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e)
    try:
        wait_for(lambda: f'token="{TOKEN}"' in cfg.read_text(), what="the first write")
        new = "bkua_" + uuid.uuid4().hex
        fleet.rotate(new)
        wait_for(lambda: f'token="{new}"' in cfg.read_text(), timeout=15, what="the rotated token")
        wait_for(marker.exists, timeout=10, what="the reload command")
        record = json.loads(marker.read_text().splitlines()[0])
        assert record["argv"][1:] == ["reloaded"]
        assert not any(new in v or TOKEN in v for v in record["env"].values())
        assert cfg.read_text() == AGENT_CFG.replace('token="xxx"', f'token="{new}"')
        assert mode(cfg) == 0o600
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
        fleet.rotate(TOKEN)
    assert TOKEN not in out + err and new not in out + err


def test_watch_follows_a_parameter_version(fleet, imds, tmp_path, server):
    ssm = server.admin("ssm")
    name = f"/host-{fleet.suffix}/watched"
    ssm.put_parameter(Name=name, Type="String", Value="v1")
    out = tmp_path / "value"
    seen = tmp_path / "seen"
    e = clean_env(fleet.client_env(imds.url))
    # Asked for: the value in the reload command's environment (never in its arguments).
    reload = ["sh", "-c", f'printf %s "$NEW_VALUE" > {seen}']
    proc = subprocess.Popen([tresor_bin(), "fetch", name, "--out", str(out), "--watch", "--interval", "1",
                             "--reload-value-env", "NEW_VALUE", "--", *reload],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e)
    try:
        wait_for(lambda: out.exists() and out.read_text() == "v1", what="the first write")
        ssm.put_parameter(Name=name, Type="String", Value="v2", Overwrite=True)
        wait_for(lambda: out.read_text() == "v2", timeout=15, what="version 2")
        assert mode(out) == 0o600
        wait_for(lambda: seen.exists() and seen.read_text() == "v2", timeout=10, what="the reload with the value")
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_fetch_can_assume_the_role_itself(fleet, imds, tmp_path):
    # No metadata endpoint: the source credential in the environment, --role-arn to assume.
    out = tmp_path / "token"
    env = {"AWS_ACCESS_KEY_ID": fleet.host_key[0], "AWS_SECRET_ACCESS_KEY": fleet.host_key[1],
           "AWS_EC2_METADATA_DISABLED": "true"}
    r = fetch(fleet, imds, fleet.path, "--out", str(out), "--role-arn", fleet.role_arn, env=env)
    assert r.returncode == 0, r.stderr
    assert out.read_text() == TOKEN
    # The user itself may not read it: denied by ssm.
    r = fetch(fleet, imds, fleet.path, "--out", str(out), env=env)
    assert r.returncode == 3 and r.stderr.startswith("tresor fetch: access denied by ssm"), r.stderr
    assert out.read_text() == TOKEN
