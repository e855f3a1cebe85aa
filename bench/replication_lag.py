"""Replication lag under a write load: the time from a PutSecretValue's answer on the primary
(its commit) to the replica in another region showing that version (or a newer one) as
AWSCURRENT, measured by a reader polling the replica.

Two set-ups:
  one  — one `tresor serve` serving both regions (the replica is in the same store);
  two  — two `tresor serve` processes on loopback, the primary's configured with the other as
         the peer serving the replica region (`[[replication.peers]]`).

A writer puts a fresh value on the primary RATE times a second for DURATION seconds; a reader
polls GetSecretValue on the replica as fast as it can on one keep-alive connection. A version
the replica skipped (a newer one arrived first: the replication job catches up in one step)
counts as replicated when a newer one appears. Prints p50/p99/max per set-up.

usage: TRESOR_BIN=target/release/tresor python bench/replication_lag.py [one|two|both]
       [--duration SECONDS] [--rate WRITES_PER_SECOND]
"""

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import boto3
import botocore.config

A, B = "us-east-1", "us-west-2"
ACCOUNT = "135792468024"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, data_dir: Path, *args: str, env=None):
        self.data_dir = data_dir
        cmd = [os.environ["TRESOR_BIN"], "serve", "--data-dir", str(data_dir), "--account-id", ACCOUNT, *args]
        if "--listen" not in args:
            cmd += ["--listen", "127.0.0.1:0"]
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("TRESOR_")}
        full_env.update({"TRESOR_LOG": os.environ.get("BENCH_LOG", "warn"), **(env or {})})
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log = open(data_dir.parent / f"{data_dir.name}.log", "w")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, text=True, env=full_env)
        for line in self.proc.stdout:
            m = re.match(r"tresor listening on (\S+)", line)
            if m:
                self.endpoint = m.group(1)
                break
        else:
            raise RuntimeError("tresor did not start")
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def client(self, service, region, akid=None, secret=None):
        if akid is None:
            text = (self.data_dir / "credentials").read_text()
            akid = re.search(r"aws_access_key_id = (\S+)", text).group(1)
            secret = re.search(r"aws_secret_access_key = (\S+)", text).group(1)
        return boto3.client(service, endpoint_url=self.endpoint, region_name=region, aws_access_key_id=akid,
                            aws_secret_access_key=secret,
                            config=botocore.config.Config(retries={"max_attempts": 1}))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=20)


def measure(primary, replica, duration: float, rate: float) -> list[float]:
    # A secret keeps at most 100 versions (AWS's quota, kept by tresor): spread the writes.
    count = max(1, int(duration * rate) // 80 + 1)
    names = [f"bench/repl-{time.time_ns()}-{i}" for i in range(count)]
    for name in names:
        primary.create_secret(Name=name, SecretString="v0", AddReplicaRegions=[{"Region": B}])
    deadline = time.time() + 30
    for name in names:
        while primary.describe_secret(SecretId=name).get("ReplicationStatus", [{}])[0].get("Status") != "InSync":
            if time.time() > deadline:
                raise RuntimeError("the replicas did not come in sync")
            time.sleep(0.05)

    # Per secret: the versions written in order with their commit time, and what the reader
    # saw: (time, highest written index the replica shows).
    written = {n: [] for n in names}
    index_of = {n: {} for n in names}
    seen = {n: [] for n in names}
    stop = threading.Event()

    def reader(name):
        while not stop.is_set():
            v = replica.get_secret_value(SecretId=name)["VersionId"]
            t = time.perf_counter()
            i = index_of[name].get(v)
            if i is not None and (not seen[name] or i > seen[name][-1][1]):
                seen[name].append((t, i))

    threads = [threading.Thread(target=reader, args=(n,)) for n in names]
    for th in threads:
        th.start()
    interval = 1.0 / rate
    next_at = time.perf_counter()
    end = next_at + duration
    n = 0
    while time.perf_counter() < end:
        name = names[n % count]
        n += 1
        vid = f"{n:08d}-0000-4000-8000-{time.time_ns() % 10**12:012d}"
        index_of[name][vid] = len(written[name])
        primary.put_secret_value(SecretId=name, ClientRequestToken=vid, SecretString=f"value-{n}")
        written[name].append((vid, time.perf_counter()))
        next_at += interval
        time.sleep(max(0.0, next_at - time.perf_counter()))
    # Let the last writes arrive.
    settle = time.perf_counter() + 10
    while time.perf_counter() < settle and any(
            written[x] and (not seen[x] or seen[x][-1][1] < len(written[x]) - 1) for x in names):
        time.sleep(0.01)
    stop.set()
    for th in threads:
        th.join()
    lags = []
    missing = 0
    for name in names:
        j = 0
        for i, (_, committed) in enumerate(written[name]):
            while j < len(seen[name]) and seen[name][j][1] < i:
                j += 1
            if j == len(seen[name]):
                missing += 1
                continue
            lags.append(max(0.0, seen[name][j][0] - committed))
    if missing:
        print(f"  warning: {missing} writes not seen on the replica within 10 s")
    return lags


def report(label: str, lags: list[float], writes_per_second: float):
    lags = sorted(lags)
    if not lags:
        print(f"{label}: no samples")
        return
    pick = lambda q: lags[min(len(lags) - 1, int(len(lags) * q))] * 1000
    print(json.dumps({"setup": label, "writes_per_second": writes_per_second, "samples": len(lags),
                      "p50_ms": round(pick(0.50), 1), "p99_ms": round(pick(0.99), 1),
                      "max_ms": round(lags[-1] * 1000, 1)}))


def one(tmp: Path, duration, rate):
    s = Server(tmp / "one", "--regions", f"{A},{B}")
    try:
        report("one deployment", measure(s.client("secretsmanager", A), s.client("secretsmanager", B),
                                         duration, rate), rate)
    finally:
        s.stop()


def two(tmp: Path, duration, rate):
    port = free_port()
    b = Server(tmp / "b", "--regions", B, "--listen", f"127.0.0.1:{port}")
    a = None
    try:
        iam = b.client("iam", B)
        iam.create_user(UserName="replicator")
        iam.put_user_policy(UserName="replicator", PolicyName="r", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                                                    "Action": "secretsmanager:TresorApplyReplicaUpdate",
                                                    "Resource": "*"}]}))
        key = iam.create_access_key(UserName="replicator")["AccessKey"]
        config = tmp / "a.toml"
        config.write_text(f'[[replication.peers]]\nregions = ["{B}"]\nendpoint = "http://127.0.0.1:{port}"\n'
                          f'credentials_env = "BENCH_PEER"\n')
        a = Server(tmp / "a", "--regions", A, "--config", str(config),
                   env={"BENCH_PEER_ACCESS_KEY_ID": key["AccessKeyId"],
                        "BENCH_PEER_SECRET_ACCESS_KEY": key["SecretAccessKey"]})
        report("two deployments (loopback)", measure(a.client("secretsmanager", A), b.client("secretsmanager", B),
                                                     duration, rate), rate)
    finally:
        if a:
            a.stop()
        b.stop()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("which", nargs="?", default="both", choices=["one", "two", "both"])
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=20.0)
    args = p.parse_args()
    tmp = Path(os.environ.get("BENCH_DIR") or tempfile.mkdtemp(prefix="tresor-repl-bench-"))
    try:
        if args.which in ("one", "both"):
            one(tmp, args.duration, args.rate)
        if args.which in ("two", "both"):
            two(tmp, args.duration, args.rate)
    finally:
        if not os.environ.get("BENCH_DIR"):
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
