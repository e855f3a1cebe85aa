"""Fixtures for the compatibility tests: a real `tresor serve` process, real AWS clients.

The binary comes from TRESOR_BIN (scripts/test sets it to the freshly built one). Every
server listens on an ephemeral loopback port and is stopped with SIGTERM at the end.
"""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import botocore.config
import pytest

REGION = "us-east-1"


def tresor_bin() -> str:
    path = os.environ.get("TRESOR_BIN")
    if not path or not os.access(path, os.X_OK):
        pytest.fail("TRESOR_BIN must point at the tresor binary (run scripts/test)")
    return path


@dataclass
class Server:
    proc: subprocess.Popen
    endpoint: str
    data_dir: Path | None
    stdout_lines: list = field(default_factory=list)

    @property
    def credentials_file(self) -> Path:
        assert self.data_dir is not None
        return self.data_dir / "credentials"

    @property
    def config_file(self) -> Path:
        assert self.data_dir is not None
        return self.data_dir / "config"

    def admin_keys(self) -> tuple[str, str]:
        text = self.credentials_file.read_text()
        akid = re.search(r"aws_access_key_id = (\S+)", text).group(1)
        secret = re.search(r"aws_secret_access_key = (\S+)", text).group(1)
        return akid, secret

    def client(self, service: str, akid: str, secret: str, token: str | None = None, region: str = REGION, **kw):
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=region,
            aws_access_key_id=akid,
            aws_secret_access_key=secret,
            aws_session_token=token,
            config=botocore.config.Config(retries={"max_attempts": 1}),
            **kw,
        )

    def admin(self, service: str, **kw):
        akid, secret = self.admin_keys()
        return self.client(service, akid, secret, **kw)

    def stop(self, sig=signal.SIGTERM, timeout=15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


def start_server(*args: str, data_dir: Path | None = None, env: dict | None = None, expect_ready=True) -> Server:
    cmd = [tresor_bin(), "serve", *args]
    if "--listen" not in args:
        cmd += ["--listen", "127.0.0.1:0"]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TRESOR_") or k == "TRESOR_BIN"}
    full_env.update(env or {})
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env)
    lines = []
    deadline = time.time() + 30
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        m = re.match(r"tresor listening on (\S+)", line)
        if m:
            # Drain the remaining banner lines without blocking forever.
            return Server(proc=proc, endpoint=m.group(1), data_dir=data_dir, stdout_lines=lines)
    proc.kill()
    err = proc.stderr.read()
    if expect_ready:
        pytest.fail(f"tresor did not start: {''.join(lines)} {err}")
    return Server(proc=proc, endpoint="", data_dir=data_dir, stdout_lines=lines + [err])


@pytest.fixture(scope="session")
def server():
    d = Path(tempfile.mkdtemp(prefix="tresor-compat-"))
    s = start_server(data_dir=d / "data")
    yield s
    s.stop()
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture()
def tmp_data_dir():
    d = Path(tempfile.mkdtemp(prefix="tresor-compat-"))
    yield d / "data"
    shutil.rmtree(d, ignore_errors=True)


def aws_cli(*args: str, env: dict | None = None, check=False) -> subprocess.CompletedProcess:
    """Runs the real AWS CLI (from the venv) with a clean environment plus `env`."""
    aws = shutil.which("aws")
    if aws is None:
        pytest.fail("the AWS CLI is not installed (scripts/test installs it)")
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    base.update(env or {})
    return subprocess.run([aws, *args], capture_output=True, text=True, env=base, check=check, timeout=60)
