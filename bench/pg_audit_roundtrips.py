"""Two tresor nodes on one PostgreSQL database, GetSecretValue through the alternating proxy
for DURATION seconds by THREADS threads (IAM user, inline policy): PostgreSQL round trips per
request, committed generations (write transactions) per second, reads/s. Audit on vs --no-audit
(the latter approximates the PostgreSQL traffic of the earlier build, where the records of reads
went to each node's local audit.db).

    TRESOR_BIN=target/debug/tresor PATH=.venv/bin:$PATH DURATION=15 THREADS=4 RUNS=2 \
        python bench/pg_audit_roundtrips.py

Uses compat/conftest.py's two-node servers (a throwaway database at TRESOR_TEST_PG_URL, dropped
at the end). Not a throughput benchmark: it counts the database work per read."""
import json, os, subprocess, sys, tempfile, threading, time, urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "compat"))
os.environ["TRESOR_TEST_STORE"] = "postgres"; os.environ["TRESOR_TEST_NODES"] = "2"
import conftest

DURATION = float(os.environ.get("DURATION", "20")); THREADS = int(os.environ.get("THREADS", "4"))

def rt(server):
    total = 0
    for ep in server.node_endpoints:
        text = urllib.request.urlopen(ep + "/metrics", timeout=10).read().decode()
        total += sum(int(float(l.split()[1])) for l in text.splitlines() if l.startswith("tresor_store_round_trips_total"))
    return total

def gen(url):
    r = subprocess.run(["psql", url, "-Atc", "SELECT generation FROM tresor_meta"], capture_output=True, text=True)
    return int(r.stdout.strip())

def run(flags):
    d = Path(tempfile.mkdtemp(prefix="tresor-rt-")) / "data"
    s = conftest.start_server(*flags, data_dir=d)
    try:
        iam = s.admin("iam"); sm = s.admin("secretsmanager")
        iam.create_user(UserName="reader")
        iam.put_user_policy(UserName="reader", PolicyName="p", PolicyDocument=json.dumps({"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue", "kms:Decrypt"], "Resource": "*"}]}))
        k = iam.create_access_key(UserName="reader")["AccessKey"]
        sm.create_secret(Name="bench", SecretString="v" * 64)
        time.sleep(2)
        clients = [s.client("secretsmanager", k["AccessKeyId"], k["SecretAccessKey"]) for _ in range(THREADS)]
        for c in clients: c.get_secret_value(SecretId="bench")
        time.sleep(1.5)
        url = conftest.database_for(d)
        rt0, g0, n = rt(s), gen(url), [0] * THREADS
        stop = time.time() + DURATION
        def work(i):
            while time.time() < stop:
                clients[i].get_secret_value(SecretId="bench"); n[i] += 1
        ts = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
        t0 = time.time(); [t.start() for t in ts]; [t.join() for t in ts]; el = time.time() - t0
        time.sleep(1.5)  # let the last segments be indexed (counted)
        rt1, g1 = rt(s), gen(url)
        reqs = sum(n)
        print(f"{' '.join(flags) or 'audit on'}: {reqs} reads in {el:.1f}s = {reqs/el:.0f}/s (debug build), "
              f"{(rt1-rt0)/reqs:.2f} PostgreSQL round trips per read, {g1-g0} write transactions "
              f"({(g1-g0)/el:.1f}/s)", flush=True)
    finally:
        s.stop()

for _ in range(int(os.environ.get("RUNS", "2"))):
    run([]); run(["--no-audit"])
conftest.pytest_sessionfinish(None, 0)
