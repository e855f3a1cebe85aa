"""Cold start and resident memory on an existing data directory (bench/seed.py): copies it,
starts `tresor serve` on the copy and times process start to the first answered
GetSecretValue (SigV4-signed by the directory's administrator, sent again every millisecond
until it is answered 200); then reads the process's resident memory (VmRSS) at that moment,
after reading 500 of its secrets and 500 of its parameters, and its peak (VmHWM).
Targets: cold start < 100 ms, resident memory < 64 MB at 10,000 secrets + 10,000 parameters.

usage: coldstart.py TRESOR_BINARY SEEDED_DATA_DIR [serve flags...]
"""

import configparser
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import boto3
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REGION = "us-east-1"


def status(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) // 1024  # MiB
    return -1


def raw_request(endpoint, akid, secret, secret_id):
    body = '{"SecretId": "%s"}' % secret_id
    req = AWSRequest(
        method="POST",
        url=endpoint + "/",
        data=body.encode(),
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "secretsmanager.GetSecretValue"},
    )
    botocore.auth.SigV4Auth(Credentials(akid, secret), "secretsmanager", REGION).add_auth(req)
    p = req.prepare()
    head = "POST / HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in p.headers.items() if k.lower() != "content-length")
    head += f"Host: {endpoint.split('//')[1]}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    return head.encode() + body.encode()


def main():
    binary, seeded = sys.argv[1], sys.argv[2]
    flags = sys.argv[3:]
    cp = configparser.ConfigParser()
    cp.read(os.path.join(seeded, "credentials"))
    akid, secret = cp["tresor"]["aws_access_key_id"], cp["tresor"]["aws_secret_access_key"]
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        shutil.copytree(seeded, data)
        for lock in ("tresor.lock",):
            try:
                os.remove(os.path.join(data, lock))
            except FileNotFoundError:
                pass
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        endpoint = f"http://127.0.0.1:{port}"
        request = raw_request(endpoint, akid, secret, "seed/secret/0")
        start = time.perf_counter()
        proc = subprocess.Popen([binary, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}", "--log", "warn", *flags],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        answered = None
        try:
            while time.perf_counter() - start < 10:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=2) as c:
                        c.sendall(request)
                        reply = c.recv(64)
                        if reply.startswith(b"HTTP/1.1 200"):
                            answered = time.perf_counter() - start
                            break
                except OSError:
                    pass
                time.sleep(0.001)
            rss_first = status(proc.pid, "VmRSS")
            sm = boto3.client("secretsmanager", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=akid, aws_secret_access_key=secret)
            ssm = boto3.client("ssm", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=akid, aws_secret_access_key=secret)
            for i in range(0, 10_000, 20):
                sm.get_secret_value(SecretId=f"seed/secret/{i}")
                ssm.get_parameter(Name=f"/seed/param/{i}", WithDecryption=True)
            rss_after = status(proc.pid, "VmRSS")
            hwm = status(proc.pid, "VmHWM")
        finally:
            proc.terminate()
            proc.wait()
    if answered is None:
        print("cold start: no answer within 10 s")
        sys.exit(1)
    print(f"cold start to first GetSecretValue {answered * 1000:.0f} ms (target < 100); RSS {rss_first} MiB at the first answer, "
          f"{rss_after} MiB after 1,000 reads, peak {hwm} MiB (target < 64)")


if __name__ == "__main__":
    main()
