"""Prints a wrk Lua script that replays one SigV4-signed request (signed by botocore).

A SigV4 signature carries no nonce and stays valid for the 5-minute skew window, so a
10-second run can replay the same signed request: the server still verifies every one.

usage: signed_request.py ENDPOINT OPERATION [ACCESS_KEY SECRET_KEY]
"""

import json
import sys

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

OPERATIONS = {
    # name: (service, protocol, target or action, body)
    "GetCallerIdentity": ("sts", "query", "GetCallerIdentity", "Action=GetCallerIdentity&Version=2011-06-15"),
}


def main():
    endpoint, op = sys.argv[1], sys.argv[2]
    akid = sys.argv[3] if len(sys.argv) > 3 else "test"
    secret = sys.argv[4] if len(sys.argv) > 4 else "test"
    service, protocol, name, body = OPERATIONS[op]
    if protocol == "json":
        headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": name}
    else:
        headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    req = AWSRequest(method="POST", url=endpoint + "/", data=body.encode(), headers=headers)
    botocore.auth.SigV4Auth(Credentials(akid, secret), service, "us-east-1").add_auth(req)
    p = req.prepare()
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body)}"]
    for k, v in p.headers.items():
        if k.lower() in ("content-length",):
            continue
        lines.append(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
