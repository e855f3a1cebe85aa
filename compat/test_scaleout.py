"""Two `tresor serve` nodes on one PostgreSQL database: background work runs exactly once, and
the audit log's records of reads served by one node are seen by the other.

Rotations are the multi-transaction jobs (a rotation function is invoked between its steps),
claimed with a lease in the job record. A scheduled rotation with both nodes running happens
once per window; a node killed (SIGKILL) in the middle of a rotation leaves it to the other,
which resumes it at the next step once the lease has expired (TRESOR_JOB_LEASE_SECONDS=3 here).

PostgreSQL only: on the SQLite pass these tests are not collected (marker postgres_only).
"""

import io
import json
import os
import shutil
import signal
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from conftest import PG_ADMIN_URL, REGION, _psql, start_server, uniq
from test_rotation import FUNCTION_SOURCE, Env, venv_path, wait_for

pytestmark = pytest.mark.postgres_only

# Each invocation appends "<token> <step> <node endpoint>" to $INVOCATION_LOG.
LOGGING_SOURCE = FUNCTION_SOURCE.replace(
    '    step = event["Step"]\n',
    '    step = event["Step"]\n'
    '    if os.environ.get("INVOCATION_LOG"):\n'
    '        with open(os.environ["INVOCATION_LOG"], "a") as f:\n'
    '            f.write("%s %s %s\\n" % (token, step, os.environ.get("AWS_ENDPOINT_URL")))\n',
).replace(
    '        with open(marker + ".entered", "w") as f:\n            f.write(token)\n',
    '        with open(marker + ".entered", "w") as f:\n            f.write(os.environ.get("AWS_ENDPOINT_URL"))\n',
)
assert LOGGING_SOURCE != FUNCTION_SOURCE and "INVOCATION_LOG" in LOGGING_SOURCE


class Cluster:
    def __init__(self, tmp: Path, n=2):
        name = f"tresor_test_{uniq('so').replace('-', '_')}"
        _psql(f'CREATE DATABASE "{name}"')
        self.db = name
        self.url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
        self.tmp = tmp
        self.nodes = []
        env = {"TRESOR_ROTATION_HOUR_SECONDS": "1", "TRESOR_JOB_LEASE_SECONDS": "3", "PATH": venv_path()}
        for i in range(n):
            d = tmp / f"node{i}"
            if i > 0:
                d.mkdir(parents=True)
                shutil.copy(tmp / "node0" / "root.key", d / "root.key")
                os.chmod(d / "root.key", 0o600)
            self.nodes.append(start_server("--store", self.url, data_dir=d, env=env))
        # The first node created the administrator; every node accepts its key.
        creds = (tmp / "node0" / "credentials").read_text()
        for s in self.nodes[1:]:
            (s.data_dir / "credentials").write_text(creds)

    def stop(self):
        for s in self.nodes:
            if s.proc.poll() is None:
                s.stop()
        _psql(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')


def deploy(env: Env, variables: dict) -> str:
    name = uniq("rotator")
    path = env.workdir / f"{name}.zip"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("rotate.py", LOGGING_SOURCE)
    path.write_bytes(buf.getvalue())
    out = env.cli_json("lambda", "create-function", "--function-name", name, "--runtime", "python3.12",
                       "--handler", "rotate.lambda_handler", "--role", env.role(), "--timeout", "90",
                       "--zip-file", f"fileb://{path}", "--environment", json.dumps({"Variables": variables}))
    env.cli("lambda", "add-permission", "--function-name", name, "--statement-id", "SecretsManagerAccess",
            "--action", "lambda:InvokeFunction", "--principal", "secretsmanager.amazonaws.com")
    return out["FunctionArn"]


def invocations(log: Path) -> list:
    return [tuple(l.split()) for l in log.read_text().splitlines()] if log.exists() else []


def test_a_scheduled_rotation_runs_once_per_window_with_two_nodes(tmp_path):
    cluster = Cluster(tmp_path)
    try:
        a, b = (Env(s, tmp_path) for s in cluster.nodes)
        log = tmp_path / "invocations.log"
        fn = deploy(a, {"INVOCATION_LOG": str(log), "EXCLUDE_CHARACTERS": "/@\"'\\"})
        secret = a.secret()
        # rate(4 hours) = every 4 s with the test clock; the first window is scheduled.
        a.rotate(secret, "--rotation-lambda-arn", fn, "--rotation-rules",
                 '{"ScheduleExpression": "rate(4 hours)"}', "--no-rotate-immediately")
        # Wait for three completed scheduled rotations (seen through the other node).
        def finished():
            calls = invocations(log)
            return len({t for t, s, _ in calls if s == "finishSecret"}) >= 3 and calls
        wait_for(finished, timeout=90, interval=0.5, what="three scheduled rotations")
        b.sm.cancel_rotate_secret(SecretId=secret)
        time.sleep(1)
        calls = invocations(log)
        pairs = [(t, s) for t, s, _ in calls]
        duplicates = {p for p in pairs if pairs.count(p) > 1}
        assert not duplicates, f"steps invoked more than once: {duplicates}\n{calls}"
        nodes = {n for _, _, n in calls}
        print(f"\n{len(calls)} step invocations, each once, by {len(nodes)} node(s): {sorted(nodes)}")
        # Every rotation that started went through all four steps once, in order.
        for token in {t for t, _ in pairs}:
            steps = [s for t, s in pairs if t == token]
            if "finishSecret" in steps:
                assert steps == ["createSecret", "setSecret", "testSecret", "finishSecret"], steps
    finally:
        cluster.stop()


def test_a_node_killed_during_a_rotation_leaves_it_to_the_other(tmp_path):
    cluster = Cluster(tmp_path)
    try:
        a, b = (Env(s, tmp_path) for s in cluster.nodes)
        log = tmp_path / "invocations.log"
        marker = tmp_path / "slow"
        marker.write_text("1")
        fn = deploy(a, {"INVOCATION_LOG": str(log), "SLOW_MARKER": str(marker),
                        "EXCLUDE_CHARACTERS": "/@\"'\\"})
        secret = a.secret()
        token = json.loads(a.rotate(secret, "--rotation-lambda-arn", fn).stdout)["VersionId"]
        entered = Path(str(marker) + ".entered")
        wait_for(entered.exists, timeout=60, what="setSecret to start")
        runner = entered.read_text().strip()
        victim = next(i for i, s in enumerate(cluster.nodes) if s.endpoint.rstrip("/") == runner.rstrip("/"))
        survivor = cluster.nodes[1 - victim]
        other = (a, b)[1 - victim]
        killed_at = time.time()
        cluster.nodes[victim].stop(sig=signal.SIGKILL)
        marker.unlink()
        # The survivor takes the rotation over once the lease (3 s) has expired and resumes it.
        wait_for(lambda: other.holder(secret, "AWSCURRENT") == token, timeout=90,
                 what="the rotation to be finished by the surviving node")
        took = time.time() - killed_at
        calls = invocations(log)
        steps = [s for t, s, _ in calls if t == token]
        # createSecret ran once (recorded before the kill); setSecret was in flight when the
        # node died and ran again on the survivor (at least once for the step in flight);
        # the rest once, on the survivor.
        assert steps.count("createSecret") == 1, calls
        assert steps.count("setSecret") == 2, calls
        assert steps.count("testSecret") == 1 and steps.count("finishSecret") == 1, calls
        finishers = {n for t, s, n in calls if t == token and s == "finishSecret"}
        assert finishers == {survivor.endpoint.rstrip("/")} or finishers == {survivor.endpoint}, (finishers, survivor.endpoint)
        assert other.sm.get_secret_value(SecretId=secret)["SecretString"] != "initial-value"
        print(f"\nnode {victim} killed in setSecret; the other node finished the rotation {took:.1f}s later")
    finally:
        cluster.stop()


def test_a_read_served_by_one_node_is_seen_by_lookup_events_and_who_reads_on_the_other(tmp_path):
    """The records of reads go into the shared store: each node indexes its own in the background
    (its segment is sealed once idle for about 500 ms), so a read served by node A shows up in a
    LookupEvents on node B within about a second, without anything asking A to flush (eventual,
    like CloudTrail's LookupEvents)."""
    cluster = Cluster(tmp_path)
    try:
        a, b = cluster.nodes
        sm_a = a.admin("secretsmanager")
        ct_b = b.admin("cloudtrail")
        name = uniq("seen")
        arn = sm_a.create_secret(Name=name, SecretString="v")["ARN"]
        delays = []
        for _ in range(5):
            rid = sm_a.get_secret_value(SecretId=name)["ResponseMetadata"]["RequestId"]
            read_at = time.time()

            def seen():
                events = ct_b.lookup_events(LookupAttributes=[
                    {"AttributeKey": "ResourceName", "AttributeValue": arn}])["Events"]
                return any(json.loads(e["CloudTrailEvent"])["requestID"] == rid for e in events)

            wait_for(seen, timeout=10, interval=0.05, what="node A's read in node B's LookupEvents")
            delays.append(time.time() - read_at)
        delays.sort()
        print(f"\nread on node A -> in LookupEvents on node B after {delays[0]*1000:.0f} / "
              f"{delays[2]*1000:.0f} / {delays[-1]*1000:.0f} ms (min / median / max of 5)")
        assert delays[-1] < 5, delays
        # `tresor who-reads` asked through node B names node A's reader, and B's own lookups
        # are not records of reads of the secret.
        akid, secret = a.admin_keys()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({"AWS_ACCESS_KEY_ID": akid, "AWS_SECRET_ACCESS_KEY": secret,
                    "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull})
        p = subprocess.run([os.environ["TRESOR_BIN"], "who-reads", name, "--json", "--endpoint-url", b.endpoint,
                            "--region", REGION], capture_output=True, text=True, env=env, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
        answer = json.loads(p.stdout)
        admin = a.admin("sts").get_caller_identity()["Arn"]
        assert [r["Principal"] for r in answer["Readers"]] == [admin], answer
        # Each read is recorded once, though both nodes' lookups read the same shared store.
        events = ct_b.lookup_events(LookupAttributes=[{"AttributeKey": "ResourceName", "AttributeValue": arn}])
        recs = [json.loads(e["CloudTrailEvent"]) for e in events["Events"]]
        assert len({r["eventID"] for r in recs}) == len(recs), recs
        reads = [r for r in recs if r["eventName"] == "GetSecretValue"]
        assert len(reads) == 5, [r["eventName"] for r in recs]
    finally:
        cluster.stop()
