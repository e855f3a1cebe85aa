"""Fixtures for the compatibility tests: a real `tresor serve` process, real AWS clients.

The binary comes from TRESOR_BIN (scripts/test sets it to the freshly built one). Every
server listens on an ephemeral loopback port and is stopped with SIGTERM at the end. A thread
drains each server's stdout and stderr, so a full pipe never blocks the server; the last lines
of its log are attached to the report of a failing test.

With CI=true a skipped test is a failure: in CI nothing may pass by not running.

TRESOR_TEST_STORE=postgres TRESOR_TEST_NODES=2 (scripts/test's PostgreSQL pass): every server
is two `tresor serve` nodes on one throwaway PostgreSQL database (the second node joins with the
first node's root key) behind a loopback proxy that sends each HTTP request to the next node in
turn, so that consecutive requests of one client, on one keep-alive connection, alternate
between the nodes. The tests talk to the proxy's endpoint; a server's log is every node's.
Servers that cannot be split per request run one node, and every such start is listed with
its reason at the end of the run: TLS (the proxy cannot split an encrypted stream), `--dev`
(a throwaway in-memory store, no PostgreSQL), a start expected to fail, a test that gives
`--store` itself (test_scaleout.py runs its own nodes), and tests marked `single_node` (they
kill one process, or look into one process's files).
"""

import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import botocore.config
import pytest

REGION = "us-east-1"

# How many of a server's last log lines (stderr) are kept to show when a test fails.
LOG_TAIL_LINES = 200

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# TRESOR_TEST_STORE=postgres: every server with a data directory (not --dev) runs on a
# PostgreSQL database of its own, created here (one per data directory, so a restart on the
# same directory finds its records again) and dropped at the end of the session. Tests that
# inspect the SQLite files carry @pytest.mark.sqlite_only and are not collected on that pass
# (listed in the report header, never skipped silently).
TEST_STORE = os.environ.get("TRESOR_TEST_STORE", "sqlite")
# How many nodes each server has on the PostgreSQL pass (TRESOR_TEST_NODES; 1 on SQLite).
TEST_NODES = max(1, int(os.environ.get("TRESOR_TEST_NODES", "1") or "1")) if TEST_STORE == "postgres" else 1
PG_ADMIN_URL = os.environ.get("TRESOR_TEST_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
_databases: dict = {}


def _psql(sql: str):
    r = subprocess.run(["psql", PG_ADMIN_URL, "-qc", sql], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        pytest.fail(f"psql {sql!r} against {PG_ADMIN_URL} (TRESOR_TEST_PG_URL) failed: {r.stderr}")


def database_for(data_dir: Path) -> str:
    """The PostgreSQL URL of the store of `data_dir` (created on first use)."""
    key = str(Path(data_dir).resolve())
    if key not in _databases:
        name = f"tresor_test_{uuid.uuid4().hex[:16]}"
        _psql(f'CREATE DATABASE "{name}"')
        _databases[key] = (name, PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name)
    return _databases[key][1]


def pytest_configure(config):
    config.addinivalue_line("markers", "sqlite_only: inspects the SQLite files; not run on the PostgreSQL pass")
    config.addinivalue_line("markers", "postgres_only: several nodes on one database; run on the PostgreSQL pass")
    config.addinivalue_line("markers", "single_node(reason): starts its servers with one node on the two-node "
                                       "pass (start_server(nodes=1)); listed at the end of the run")


def pytest_collection_modifyitems(config, items):
    other = "sqlite_only" if TEST_STORE == "postgres" else "postgres_only"
    kept, dropped = [], []
    for item in items:
        (dropped if item.get_closest_marker(other) else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
        print(f"\n{TEST_STORE} pass: {len(dropped)} {other} tests are not run here (they run on the other pass): "
              + ", ".join(i.nodeid for i in dropped))


def pytest_report_header(config):
    if TEST_STORE != "postgres":
        return None
    if TEST_NODES > 1:
        return (f"PostgreSQL pass: every server is {TEST_NODES} tresor nodes on one database behind a "
                "proxy that alternates requests between them (one-node exceptions listed at the end)")
    return "PostgreSQL pass: one tresor node per server (TRESOR_TEST_NODES=1)"


# (test id, reason) of every server started with one node on a several-node pass.
_single_node_starts: list = []


def pytest_terminal_summary(terminalreporter):
    if TEST_NODES < 2:
        return
    terminalreporter.section(f"servers with one node on the {TEST_NODES}-node pass")
    seen = set()
    for test, reason in _single_node_starts:
        if (test, reason) not in seen:
            seen.add((test, reason))
            terminalreporter.write_line(f"{test}: {reason}")
    if not seen:
        terminalreporter.write_line("none")


def pytest_sessionfinish(session, exitstatus):
    for name, _ in _databases.values():
        subprocess.run(["psql", PG_ADMIN_URL, "-qc", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'],
                       capture_output=True, timeout=60)


def tresor_bin() -> str:
    path = os.environ.get("TRESOR_BIN")
    if not path or not os.access(path, os.X_OK):
        pytest.fail("TRESOR_BIN must point at the tresor binary (run scripts/test)")
    return path


class LogTail:
    """The last `n` lines of a stream, appended by a drainer thread and read by the tests."""

    def __init__(self, n: int):
        self._lines = deque(maxlen=n)
        self._lock = threading.Lock()

    def append(self, line: str):
        with self._lock:
            self._lines.append(line)

    def text(self) -> str:
        with self._lock:
            return "".join(self._lines)


@dataclass
class Server:
    proc: subprocess.Popen
    endpoint: str
    data_dir: Path | None
    stdout_lines: list = field(default_factory=list)
    stderr_tail: "LogTail" = field(default_factory=lambda: LogTail(LOG_TAIL_LINES))
    drainers: list = field(default_factory=list)
    # A server of several nodes: `proc`, `data_dir` and `stdout_lines` are the first node's,
    # `endpoint` is the proxy's; `peers` are the other nodes (Servers of one node each).
    peers: list = field(default_factory=list)
    proxy: "AlternatingProxy | None" = None
    # The first node's own endpoint (the same as `endpoint` on one node).
    node_endpoint: str = ""

    def log_tail(self) -> str:
        """The last lines the server wrote to stderr (its log): every node's, one after the other."""
        if not self.peers:
            return self.stderr_tail.text()
        parts = [f"--- node 1 ({self.node_endpoint}) ---\n" + self.stderr_tail.text()]
        for i, p in enumerate(self.peers, 2):
            parts.append(f"--- node {i} ({p.endpoint}) ---\n" + p.stderr_tail.text())
        return "\n".join(parts)

    @property
    def node_endpoints(self) -> list:
        """Each node's own endpoint (one entry on a single node)."""
        return [self.node_endpoint or self.endpoint] + [p.endpoint for p in self.peers]

    def flush_audit(self):
        """Makes the audit records of every request answered so far readable through any node.

        A node indexes the records of the reads it served into the shared store in the background
        (within about a second); a LookupEvents on a node first flushes that node's own. This asks
        each node directly (not through the proxy), so the tests that look up reads right after
        them see every node's at once. Nothing to do on one node: its lookups flush it.
        """
        if not self.peers:
            return
        akid, secret = self.admin_keys()
        for ep in self.node_endpoints:
            boto3.client("cloudtrail", endpoint_url=ep, region_name=REGION, aws_access_key_id=akid,
                         aws_secret_access_key=secret,
                         config=botocore.config.Config(retries={"max_attempts": 1})).lookup_events(MaxResults=1)

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
            **{"config": botocore.config.Config(retries={"max_attempts": 1}), **kw},
        )

    def admin(self, service: str, **kw):
        akid, secret = self.admin_keys()
        return self.client(service, akid, secret, **kw)

    def unvalidated(self, service: str, akid=None, secret=None, token=None):
        """A client that skips botocore's own parameter validation, so the server's is tested."""
        if akid is None:
            akid, secret = self.admin_keys()
        return self.client(service, akid, secret, token,
                           config=botocore.config.Config(retries={"max_attempts": 1}, parameter_validation=False))

    def session(self, service: str, creds: dict, **kw):
        """A client signed with temporary credentials (an STS `Credentials` member)."""
        return self.client(service, creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"], **kw)

    def assume(self, role_arn: str, session_name: str) -> dict:
        """The administrator assumes `role_arn`: the session's `Credentials`."""
        return self.admin("sts").assume_role(RoleArn=role_arn, RoleSessionName=session_name)["Credentials"]

    def kill(self):
        """SIGKILL to every node (no shutdown, no flush), and waits for them."""
        for s in [self, *self.peers]:
            s.proc.kill()
        for s in [self, *self.peers]:
            s.proc.wait(timeout=15)
        if self.proxy is not None:
            self.proxy.close()

    def stop(self, sig=signal.SIGTERM, timeout=15) -> int:
        """Stops every node (and the proxy): the first node's exit status, or the first other
        node's that is not 0."""
        for s in [self, *self.peers]:
            if s.proc.poll() is None:
                s.proc.send_signal(sig)
        codes = []
        try:
            for s in [self, *self.peers]:
                codes.append(s.proc.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            for s in [self, *self.peers]:
                s.proc.kill()
            raise
        finally:
            if self.proxy is not None:
                self.proxy.close()
        return next((c for c in codes if c != 0), codes[0])


def _drain(stream, sink) -> threading.Thread:
    """Reads `stream` line by line into `sink` until EOF, on a daemon thread."""
    def run():
        try:
            for line in iter(stream.readline, ""):
                sink.append(line)
        except (OSError, ValueError):
            pass  # the pipe was closed under us: the server is gone

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


# Servers started by the running test (and the session's), whose log a failing test shows.
_servers: list = []


def _start_node(cmd_args: list, data_dir: Path | None, env: dict | None, expect_ready: bool) -> Server:
    cmd = [tresor_bin(), "serve", *cmd_args]
    if "--listen" not in cmd_args:
        cmd += ["--listen", "127.0.0.1:0"]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TRESOR_") or k == "TRESOR_BIN"}
    full_env.update(env or {})
    # Lambda functions run with the test venv's interpreter, which has boto3.
    full_env.setdefault("TRESOR_LAMBDA_PYTHON", sys.executable)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env)
    server = Server(proc=proc, endpoint="", data_dir=data_dir)
    # stderr carries the log and is drained from the start; stdout is read here up to the
    # readiness line, then drained too.
    server.drainers.append(_drain(proc.stderr, server.stderr_tail))
    deadline = time.time() + 30
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        server.stdout_lines.append(line)
        m = re.match(r"tresor listening on (\S+)", line)
        if m:
            server.endpoint = server.node_endpoint = m.group(1)
            server.drainers.append(_drain(proc.stdout, server.stdout_lines))
            return server
    proc.kill()
    proc.wait(timeout=15)
    for t in server.drainers:
        t.join(timeout=5)
    err = server.log_tail()
    if expect_ready:
        _servers.append(server)
        pytest.fail(f"tresor did not start: {''.join(server.stdout_lines)} {err}")
    server.stdout_lines.append(err)
    return server


def _one_node_reason(args, data_dir, expect_ready, nodes) -> str | None:
    """Why a server of the several-node pass runs one node (None: it runs TEST_NODES)."""
    if nodes == 1:
        item = _current_test[0]
        marker = item.get_closest_marker("single_node") if item is not None else None
        if marker is None:
            pytest.fail("start_server(nodes=1) in a test not marked single_node(reason)")
        return "marked single_node: " + (marker.args[0] if marker.args else marker.kwargs.get("reason", ""))
    if "--dev" in args or data_dir is None:
        return "--dev: a throwaway in-memory store, not PostgreSQL"
    if any(a.startswith("--tls") for a in args):
        return "TLS: the proxy cannot split an encrypted stream per request"
    if "--store" in args:
        return "gives --store itself (runs its own nodes)"
    if not expect_ready:
        return "a start expected to fail"
    return None


def start_server(*args: str, data_dir: Path | None = None, env: dict | None = None, expect_ready=True,
                 nodes: int | None = None) -> Server:
    """`tresor serve` with `args` on `data_dir`: on the PostgreSQL pass on a database of its own
    (the same one for a later start on the same directory), with TEST_NODES nodes behind an
    alternating proxy (see the module docs; `nodes=1` in a test marked single_node)."""
    args = list(args)
    store_args = []
    if TEST_STORE == "postgres" and data_dir is not None and "--dev" not in args and "--store" not in args:
        store_args = ["--store", database_for(data_dir)]
    n = TEST_NODES
    if n > 1:
        reason = _one_node_reason(args, data_dir, expect_ready, nodes)
        if reason is not None:
            item = _current_test[0]
            _single_node_starts.append((item.nodeid if item is not None else "(no test)", reason))
            n = 1
    listen = None
    if n > 1 and "--listen" in args:
        # The proxy takes the address asked for; the nodes listen on ephemeral ports.
        i = args.index("--listen")
        listen = args[i + 1]
        del args[i:i + 2]
    first = _start_node(args + store_args, data_dir, env, expect_ready)
    _servers.append(first)
    if n == 1 or not first.endpoint:
        return first
    for i in range(2, n + 1):
        d = data_dir.with_name(f"{data_dir.name}-node{i}")
        d.mkdir(parents=True, exist_ok=True)
        key = Path(data_dir) / "root.key"
        if key.exists() and not (d / "root.key").exists():
            # Every node of a deployment needs the first node's root key.
            shutil.copy(key, d / "root.key")
            os.chmod(d / "root.key", 0o600)
        try:
            peer = _start_node(args + store_args, d, env, expect_ready=True)
        except BaseException:
            first.stop()
            raise
        first.peers.append(peer)
    host, port = (listen or "127.0.0.1:0").rsplit(":", 1)
    first.proxy = AlternatingProxy(host, int(port), first.node_endpoints)
    first.endpoint = first.proxy.endpoint
    return first


class AlternatingProxy:
    """A loopback HTTP/1.1 proxy that sends each request to the next node in turn: per request,
    not per connection (SDK clients keep their connections), with one connection to each node
    per client connection. Messages are framed by Content-Length or chunked encoding."""

    def __init__(self, host: str, port: int, backends: list):
        self.backends = [re.sub(r"^https?://", "", b).rstrip("/").rsplit(":", 1) for b in backends]
        self.turn = 0
        self.lock = threading.Lock()
        self.listener = socket.create_server((host, port))
        self.endpoint = f"http://{host}:{self.listener.getsockname()[1]}"
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.closed = True
        try:
            self.listener.close()
        except OSError:
            pass

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _next(self) -> int:
        with self.lock:
            n = self.turn % len(self.backends)
            self.turn += 1
            return n

    def _serve(self, client: socket.socket):
        conns: dict = {}
        reader = client.makefile("rb")
        try:
            while True:
                head, body = _read_message(reader, None)
                if head is None:
                    return
                text = head.decode("latin-1").lower()
                if "\r\nexpect: 100-continue" in text:
                    # Answer the interim response here; the node gets the whole request at once.
                    head = re.sub(rb"(?i)\r\nexpect: *100-continue", b"", head)
                n = self._next()
                if n in conns and select.select([conns[n][0]], [], [], 0)[0]:
                    # Readable while idle: the node closed it (its idle timeout). A new one.
                    conns.pop(n)[0].close()
                if n not in conns:
                    host, port = self.backends[n]
                    s = socket.create_connection((host, int(port)), timeout=120)
                    conns[n] = (s, s.makefile("rb"))
                back, back_reader = conns[n]
                try:
                    back.sendall(head + body)
                except OSError:
                    pass  # the node may answer (413) and close before it read the whole body
                rhead, rbody = _read_message(back_reader, head.split(b" ", 1)[0])
                if rhead is None:
                    return
                client.sendall(rhead + rbody)
                rtext = rhead.decode("latin-1").lower()
                framed = "\r\ncontent-length:" in rtext or "\r\ntransfer-encoding:" in rtext
                if "\r\nconnection: close" in text or "\r\nconnection: close" in rtext or not framed and \
                        not _bodyless(rhead, head.split(b" ", 1)[0]):
                    return
        except (OSError, ValueError):
            return  # a broken or malformed exchange ends the client's connection
        finally:
            for s, r in conns.values():
                r.close()
                s.close()
            reader.close()
            client.close()


def _bodyless(rhead: bytes, method: bytes) -> bool:
    status = rhead.split(b" ", 2)[1] if rhead.count(b" ") >= 1 else b""
    return method == b"HEAD" or status in (b"204", b"304") or status.startswith(b"1")


def _read_message(r, request_method):
    """One HTTP/1.1 message from `r`: (head with its blank line, body) or (None, None) at the end
    of the stream. `request_method`: None for a request, else the method the response answers."""
    head = b""
    while True:
        line = r.readline()
        if not line:
            return None, None
        if request_method is not None and not head and line.startswith(b"HTTP/1.1 100"):
            r.readline()  # an interim 100 Continue and its blank line: skip it
            continue
        head += line
        if line in (b"\r\n", b"\n"):
            break
    text = head.decode("latin-1").lower()
    if request_method is not None and _bodyless(head, request_method):
        return head, b""
    m = re.search(r"\r\ncontent-length: *(\d+)", text)
    if "\r\ntransfer-encoding: chunked" in text:
        body = b""
        while True:
            size_line = r.readline()
            body += size_line
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers, up to the blank line
                    t = r.readline()
                    body += t
                    if t in (b"\r\n", b"\n", b""):
                        return head, body
            body += r.read(size + 2)
    if m:
        return head, r.read(int(m.group(1)))
    if request_method is None:
        return head, b""  # a request without a body
    return head, r.read()  # a response delimited by the end of the connection


# The test whose set-up or body is running (for start_server's list of one-node starts).
_current_test: list = [None]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    _current_test[0] = item
    # Keep only servers still running (the session's, a module's): a failing test shows those
    # and the ones it starts itself.
    _servers[:] = [s for s in _servers if s.proc.poll() is None]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and IN_CI:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where every test must run: {reason}"
    if report.failed:
        for i, s in enumerate(_servers):
            tail = s.log_tail()
            if tail:
                last = "".join(tail.splitlines(keepends=True)[-50:])
                report.sections.append((f"tresor server {i} ({s.endpoint or 'not ready'}): last log lines", last))


@pytest.fixture(scope="session")
def server():
    d = Path(tempfile.mkdtemp(prefix="tresor-compat-"))
    s = start_server(data_dir=d / "data")
    yield s
    s.stop()
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def iam(server):
    return server.admin("iam")


@pytest.fixture(scope="module")
def sts(server):
    return server.admin("sts")


@pytest.fixture(scope="module")
def sm(server):
    return server.admin("secretsmanager")


@pytest.fixture(scope="module")
def raw_iam(server):
    """An IAM client without botocore's parameter validation, so the server's is tested."""
    return server.unvalidated("iam")


@pytest.fixture(scope="module")
def admin_arn(sts):
    return sts.get_caller_identity()["Arn"]


@pytest.fixture(scope="module")
def account(sts):
    return sts.get_caller_identity()["Account"]


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def trust_for(*principals: str) -> str:
    """A trust policy that lets each of `principals` call sts:AssumeRole."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": list(principals)}, "Action": "sts:AssumeRole"}],
    })


def make_role(iam, name: str, principal: str, inline=None) -> dict:
    """A role `principal` may assume, with an optional inline policy (a document or its dict)."""
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust_for(principal))["Role"]
    if inline:
        doc = inline if isinstance(inline, str) else json.dumps(inline)
        iam.put_role_policy(RoleName=name, PolicyName="inline", PolicyDocument=doc)
    return role


def new_user_with_key(iam, name=None, policy=None, policy_name="p"):
    """An IAM user with an optional inline policy and an access key: (name, akid, secret)."""
    name = name or uniq("u")
    iam.create_user(UserName=name)
    if policy is not None:
        iam.put_user_policy(UserName=name, PolicyName=policy_name, PolicyDocument=policy)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return name, key["AccessKeyId"], key["SecretAccessKey"]


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
