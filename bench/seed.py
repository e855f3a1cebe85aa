"""Seeds a tresor data directory for bench/ceiling.sh's cold start and memory figures:
10,000 secrets (1 KiB values, the AWS managed key) and 10,000 SecureString parameters, written
through the API by the administrator `tresor serve` creates on a new directory. Marks the
directory with `.seeded` when done; reuse it (copy it: a start writes into it).

usage: seed.py TRESOR_BINARY DATA_DIR [COUNT]
"""

import base64
import configparser
import os
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

REGION = "us-east-1"


def main():
    binary, data_dir = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 10_000
    shutil.rmtree(data_dir, ignore_errors=True)
    os.makedirs(data_dir, mode=0o700)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = subprocess.Popen(
        [binary, "serve", "--data-dir", data_dir, "--listen", f"127.0.0.1:{port}", "--log", "warn", "--no-audit"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        creds_file = os.path.join(data_dir, "credentials")
        for _ in range(200):
            if os.path.exists(creds_file):
                break
            time.sleep(0.05)
        time.sleep(0.2)
        cp = configparser.ConfigParser()
        cp.read(creds_file)
        akid, secret = cp["tresor"]["aws_access_key_id"], cp["tresor"]["aws_secret_access_key"]
        endpoint = f"http://127.0.0.1:{port}"
        cfg = Config(max_pool_connections=16, retries={"max_attempts": 10})
        sm = boto3.client("secretsmanager", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=akid, aws_secret_access_key=secret, config=cfg)
        ssm = boto3.client("ssm", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=akid, aws_secret_access_key=secret, config=cfg)
        value = base64.b64encode(os.urandom(768)).decode()
        for _ in range(100):
            try:
                sm.list_secrets(MaxResults=1)
                break
            except Exception:
                time.sleep(0.1)

        def one(i):
            sm.create_secret(Name=f"seed/secret/{i}", SecretString=value)
            ssm.put_parameter(Name=f"/seed/param/{i}", Value=value, Type="SecureString", Overwrite=True)

        start = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(one, range(count)))
        print(f"seeded {count} secrets and {count} parameters in {time.monotonic() - start:.0f} s", file=sys.stderr)
    finally:
        proc.terminate()
        proc.wait()
    open(os.path.join(data_dir, ".seeded"), "w").close()


if __name__ == "__main__":
    main()
