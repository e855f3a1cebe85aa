"""Connection exhaustion and slow clients: 1,500 idle connections (half of them kept alive after
one answered request) and 200 clients that send their request header one byte per second. While
they are held, and after they close, `/health` on a new connection answers within a second."""

import os
import resource
import socket
import threading
import time

from conftest import start_server
from robust_http import health, host_port

IDLE = int(os.environ.get("TRESOR_ROBUST_IDLE", "1500"))
SLOW = int(os.environ.get("TRESOR_ROBUST_SLOW", "200"))
HOLD_SECONDS = float(os.environ.get("TRESOR_ROBUST_HOLD", "12"))
BUDGET = 1.0


def raise_fd_limit(need: int):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, need))
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    got = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert got >= need, f"the test needs {need} file descriptors, the hard limit is {hard}"


def open_idle(endpoint, n):
    host, port = host_port(endpoint)
    socks = []
    for i in range(n):
        s = socket.create_connection((host, port), timeout=5)
        if i % 2:
            # A keep-alive connection that served one request and is now idle.
            s.sendall(f"GET /health HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
            data = b""
            while b"\r\n\r\n" not in data or not data.endswith(b"}"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            assert data.startswith(b"HTTP/1.1 200"), data[:100]
        socks.append(s)
    return socks


class SlowHeaders(threading.Thread):
    """Opens `n` connections and sends each one request-header byte per second."""

    def __init__(self, endpoint, n):
        super().__init__(daemon=True)
        host, port = host_port(endpoint)
        self.header = (f"POST / HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/x-amz-json-1.1\r\n"
                       f"X-Amz-Target: secretsmanager.ListSecrets\r\n" + "X-Pad: " + "p" * 200 + "\r\n").encode()
        self.socks = [socket.create_connection((host, port), timeout=5) for _ in range(n)]
        self.stop = threading.Event()
        self.closed_by_server = 0

    def run(self):
        pos = 0
        while not self.stop.is_set() and pos < len(self.header):
            for s in list(self.socks):
                try:
                    s.sendall(self.header[pos:pos + 1])
                except OSError:
                    # A server with a header-read timeout closes the connection: fine.
                    self.socks.remove(s)
                    s.close()
                    self.closed_by_server += 1
            pos += 1
            self.stop.wait(1.0)

    def close(self):
        self.stop.set()
        self.join(timeout=10)
        for s in self.socks:
            s.close()


def test_health_answers_under_idle_and_slow_connections():
    raise_fd_limit(IDLE + SLOW + 512)
    server = start_server("--dev")
    idle, slow = [], None
    probes = []
    try:
        probes.append(("before", health(server.endpoint, timeout=BUDGET)))
        idle = open_idle(server.endpoint, IDLE)
        slow = SlowHeaders(server.endpoint, SLOW)
        slow.start()
        deadline = time.monotonic() + HOLD_SECONDS
        while time.monotonic() < deadline:
            probes.append(("held", health(server.endpoint, timeout=BUDGET)))
            # A real request, too, not only the health check.
            c = server.client("sts", "test", "test")
            started = time.monotonic()
            c.get_caller_identity()
            probes.append(("held sts", time.monotonic() - started))
            time.sleep(0.5)
        assert server.proc.poll() is None, "the server died under the connections"
    finally:
        if slow is not None:
            slow.close()
        for s in idle:
            s.close()
    try:
        time.sleep(0.5)
        for _ in range(5):
            probes.append(("after", health(server.endpoint, timeout=BUDGET)))
            time.sleep(0.2)
        slow_probes = [(when, t) for when, t in probes if t > BUDGET]
        assert not slow_probes, f"answers slower than {BUDGET}s: {slow_probes}"
        assert server.proc.poll() is None
    finally:
        server.stop()
    print(f"connections: {IDLE} idle + {SLOW} slow-header held {HOLD_SECONDS}s, {len(probes)} probes, "
          f"max {max(t for _, t in probes):.3f}s")
