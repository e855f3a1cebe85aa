"""Raw HTTP/1.1 over a socket for the robustness tests: every byte of a request under the test's
control (duplicate headers, chunked bodies, invalid UTF-8, malformed framing), signed with
botocore's own SigV4 signer when a case must be authenticated."""

import socket
import time
import urllib.parse
from dataclasses import dataclass

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REGION = "us-east-1"


@dataclass
class Reply:
    status: int | None  # None: the server closed the connection without a status line
    elapsed: float
    head: bytes
    body: bytes
    timed_out: bool = False  # no complete answer within the timeout


def host_port(endpoint: str) -> tuple[str, int]:
    u = urllib.parse.urlsplit(endpoint)
    return u.hostname, u.port


def sign_headers(endpoint, service, akid, secret, method="POST", path="/", query="", headers=None,
                 body=b"", token=None, region=REGION) -> dict:
    """The headers botocore's SigV4Auth adds (Authorization, X-Amz-Date, …) for this request."""
    url = endpoint + path + (("?" + query) if query else "")
    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    botocore.auth.SigV4Auth(Credentials(akid, secret, token), service, region).add_auth(req)
    return dict(req.headers.items())


def chunked(body: bytes, size: int = 4096) -> bytes:
    out = bytearray()
    for i in range(0, len(body), size):
        part = body[i:i + size]
        out += f"{len(part):x}\r\n".encode() + part + b"\r\n"
    return bytes(out) + b"0\r\n\r\n"


def send(endpoint: str, method: str = "POST", path: str = "/", headers=(), body: bytes = b"",
         framing: str = "length", timeout: float = 10.0) -> Reply:
    """Sends one request on a fresh connection (`Connection: close`) and reads the reply.

    `headers` is a list of (name, value) pairs sent as given, repeats included. `framing` is
    `length` (a Content-Length header is added), `chunked` (Transfer-Encoding: chunked), or
    `raw` (the body is sent as is, with whatever framing headers the case gave).
    """
    host, port = host_port(endpoint)
    lines = [f"{method} {path} HTTP/1.1".encode(), f"Host: {host}:{port}".encode()]
    for name, value in headers:
        value = value if isinstance(value, bytes) else str(value).encode()
        lines.append(name.encode() + b": " + value)
    if framing == "length":
        lines.append(f"Content-Length: {len(body)}".encode())
        payload = body
    elif framing == "chunked":
        lines.append(b"Transfer-Encoding: chunked")
        payload = chunked(body)
    else:
        payload = body
    lines.append(b"Connection: close")
    data = b"\r\n".join(lines) + b"\r\n\r\n" + payload
    started = time.monotonic()
    timed_out = False
    chunks = []
    with socket.create_connection((host, port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early (413) and closed; read what it sent
        except TimeoutError:
            timed_out = True
        try:
            while not timed_out:
                c = s.recv(65536)
                if not c:
                    break
                chunks.append(c)
        except ConnectionResetError:
            pass
        except TimeoutError:
            timed_out = True
    elapsed = time.monotonic() - started
    raw = b"".join(chunks)
    head, _, rest = raw.partition(b"\r\n\r\n")
    status = None
    first = head.split(b"\r\n", 1)[0]
    parts = first.split(b" ")
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
        status = int(parts[1])
    return Reply(status, elapsed, head, rest, timed_out)


def health(endpoint: str, timeout: float = 1.0) -> float:
    """GET /health on a fresh connection; returns the time it took. Raises if it does not answer
    200 within `timeout`."""
    started = time.monotonic()
    r = send(endpoint, "GET", "/health", framing="raw", timeout=timeout)
    took = time.monotonic() - started
    assert r.status == 200, f"/health answered {r.status}: {r.head[:200]!r}"
    return took
