"""Hand-built requests signed with botocore's own SigV4 signer, for the error paths that a
high-level client would never send (skewed clocks, tampered bodies, unknown targets)."""

import datetime
import json
import urllib.error
import urllib.request
from contextlib import contextmanager
from unittest import mock

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


@contextmanager
def frozen_clock(at: datetime.datetime):
    with mock.patch.object(botocore.auth, "get_current_datetime", lambda *a, **k: at):
        yield


def signed(method, endpoint, service, region, akid, secret, token=None, headers=None, body=b"", params=None):
    req = AWSRequest(method=method, url=endpoint + "/", data=body, headers=dict(headers or {}), params=params or {})
    botocore.auth.SigV4Auth(Credentials(akid, secret, token), service, region).add_auth(req)
    return req.prepare()


def send(prepared, body_override=None):
    """Sends a prepared request; returns (status, headers, body bytes)."""
    data = prepared.body if body_override is None else body_override
    if isinstance(data, str):
        data = data.encode()
    r = urllib.request.Request(prepared.url, data=data, method=prepared.method, headers=dict(prepared.headers))
    try:
        with urllib.request.urlopen(r, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def json_call(server, target, payload, akid, secret, service, region="us-east-1", token=None, now=None, raw_body=None):
    body = raw_body if raw_body is not None else json.dumps(payload).encode()
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target}
    if now is not None:
        with frozen_clock(now):
            p = signed("POST", server.endpoint, service, region, akid, secret, token, headers, body)
    else:
        p = signed("POST", server.endpoint, service, region, akid, secret, token, headers, body)
    return send(p)


def query_call(server, params, akid, secret, service="sts", region="us-east-1", token=None, now=None):
    body = "&".join(f"{k}={v}" for k, v in params.items()).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    if now is not None:
        with frozen_clock(now):
            p = signed("POST", server.endpoint, service, region, akid, secret, token, headers, body)
    else:
        p = signed("POST", server.endpoint, service, region, akid, secret, token, headers, body)
    return send(p)
