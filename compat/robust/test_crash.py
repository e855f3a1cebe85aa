"""Crash test: writers put secret values and SecureString parameters through boto3 while the
server is killed with SIGKILL at a random moment; after each restart on the same data directory
the store opens and every write the server acknowledged is readable with its value.

10 trials by default; TRESOR_ROBUST_LONG=1 runs 100.
"""

import os
import random
import secrets
import threading
import time
import uuid

import botocore.exceptions
import pytest

from conftest import start_server

TRIALS = 100 if os.environ.get("TRESOR_ROBUST_LONG") == "1" else 10
POOL = 8  # secrets and parameters the writers cycle through


class Writer(threading.Thread):
    """Writes until the first failure (the server died under it). `acked` holds every write the
    server answered with success; `in_flight` the one it was sending when the server died."""

    def __init__(self, kind, client, trial):
        super().__init__(daemon=True)
        self.kind, self.client, self.trial = kind, client, trial
        self.acked: list[tuple[str, str, str]] = []  # (name, version, value)
        self.in_flight: tuple[str, str] | None = None
        self.stop = threading.Event()
        self.error: Exception | None = None

    def run(self):
        n = 0
        while not self.stop.is_set():
            name_i = n % POOL
            value = f"crash-{self.trial}-{n}-{secrets.token_hex(8)}"
            try:
                if self.kind == "secret":
                    name = f"robust-crash-{name_i}"
                    token = str(uuid.uuid4())
                    self.in_flight = (name, value)
                    r = self.client.put_secret_value(SecretId=name, SecretString=value, ClientRequestToken=token)
                    assert r["VersionId"] == token
                    self.acked.append((name, token, value))
                else:
                    name = f"/robust/crash/p{name_i}"
                    self.in_flight = (name, value)
                    r = self.client.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
                    self.acked.append((name, str(r["Version"]), value))
                self.in_flight = None
            except Exception as e:  # noqa: BLE001 - the server was killed: stop writing
                self.error = e
                return
            n += 1


def fast_client(server, service):
    import botocore.config
    akid, secret = server.admin_keys()
    return server.client(service, akid, secret, config=botocore.config.Config(
        retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5))


def test_acknowledged_writes_survive_kill_9(tmp_data_dir):
    rng = random.Random(os.environ.get("TRESOR_ROBUST_SEED", str(time.time_ns())))
    server = start_server(data_dir=tmp_data_dir)
    sm = server.admin("secretsmanager")
    ssm = server.admin("ssm")
    for i in range(POOL):
        sm.create_secret(Name=f"robust-crash-{i}", SecretString="initial")
        ssm.put_parameter(Name=f"/robust/crash/p{i}", Value="initial", Type="SecureString")
    total_acked = 0
    try:
        for trial in range(TRIALS):
            writers = [Writer("secret", fast_client(server, "secretsmanager"), trial),
                       Writer("parameter", fast_client(server, "ssm"), trial)]
            for w in writers:
                w.start()
            time.sleep(rng.uniform(0.05, 1.5))
            server.kill()  # SIGKILL to every node: no shutdown, no flush
            for w in writers:
                w.stop.set()
                w.join(timeout=15)
                assert not w.is_alive(), "a writer hung after the kill"
            server = start_server(data_dir=tmp_data_dir)  # fails the test if the store does not open
            sm = server.admin("secretsmanager")
            ssm = server.admin("ssm")
            for w in writers:
                total_acked += len(w.acked)
                latest = {}
                for name, version, value in w.acked:
                    latest[name] = value
                    if w.kind == "secret":
                        got = sm.get_secret_value(SecretId=name, VersionId=version)["SecretString"]
                    else:
                        got = ssm.get_parameter(Name=f"{name}:{version}", WithDecryption=True)["Parameter"]["Value"]
                    assert got == value, f"trial {trial}: acknowledged {w.kind} write {name}@{version} lost"
                # The current value is the last acknowledged one, or the write in flight at the
                # kill if that one committed before its answer was lost.
                for name, value in latest.items():
                    if w.kind == "secret":
                        cur = sm.get_secret_value(SecretId=name)["SecretString"]
                    else:
                        cur = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
                    allowed = {value} | ({w.in_flight[1]} if w.in_flight and w.in_flight[0] == name else set())
                    assert cur in allowed, f"trial {trial}: {name} current value is not the last acknowledged write"
    finally:
        server.stop()
    print(f"crash test: {TRIALS} kill -9 trials, {total_acked} acknowledged writes verified")
    assert total_acked > 0, "no write was ever acknowledged: the test tested nothing"
