"""Prepares one benchmark operation against an endpoint and prints a wrk Lua script that
replays its SigV4-signed request (signed by botocore).

A SigV4 signature carries no nonce and stays valid for the 5-minute skew window, so a
10-second run can replay the same signed request: the server still verifies, authorizes
and decrypts every one.

usage: signed_request.py ENDPOINT OPERATION [--iam-user]
  --iam-user   (tresor) create an IAM user `bench` with an identity policy allowing the
               benchmarked actions and sign with its key, so every request runs the full
               policy evaluation of a real caller rather than the account root's.
"""

import base64
import json
import os
import sys

import boto3
import botocore.auth
import botocore.exceptions
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REGION = "us-east-1"
SECRET_NAME = "bench/agent-token"
PARAM_NAME = "/bench/secure"
VALUE = base64.b64encode(os.urandom(768)).decode()  # 1 KiB of text
BENCH_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["sts:GetCallerIdentity", "secretsmanager:GetSecretValue", "kms:Decrypt", "ssm:GetParameter", "ssm:PutParameter", "kms:Encrypt", "kms:GenerateDataKey"], "Resource": "*"}
    ],
}


# The administrator's key for the set-up calls: test/test of a --dev server, or a real
# deployment's (BENCH_ADMIN_AKID / BENCH_ADMIN_SECRET, e.g. bench/scaleout.sh's PostgreSQL nodes).
ADMIN_AKID = os.environ.get("BENCH_ADMIN_AKID", "test")
ADMIN_SECRET = os.environ.get("BENCH_ADMIN_SECRET", "test")


def client(endpoint, service, akid=ADMIN_AKID, secret=ADMIN_SECRET):
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id=akid, aws_secret_access_key=secret)


def iam_user(endpoint):
    iam = client(endpoint, "iam")
    try:
        iam.create_user(UserName="bench")
    except botocore.exceptions.ClientError as e:
        if e.response["Error"]["Code"] != "EntityAlreadyExists":
            raise
    iam.put_user_policy(UserName="bench", PolicyName="bench", PolicyDocument=json.dumps(BENCH_POLICY))
    # Two keys at most per user: drop the oldest when full, so that a script generated just
    # before (a reader beside a writer) keeps a working key.
    keys = sorted(iam.list_access_keys(UserName="bench")["AccessKeyMetadata"], key=lambda k: k["CreateDate"])
    for k in keys[: max(0, len(keys) - 1)]:
        iam.delete_access_key(UserName="bench", AccessKeyId=k["AccessKeyId"])
    k = iam.create_access_key(UserName="bench")["AccessKey"]
    return k["AccessKeyId"], k["SecretAccessKey"]


def ensure_secret(endpoint):
    sm = client(endpoint, "secretsmanager")
    try:
        sm.create_secret(Name=SECRET_NAME, SecretString=VALUE)
    except botocore.exceptions.ClientError as e:
        if e.response["Error"]["Code"] != "ResourceExistsException":
            raise


def setup(endpoint, op):
    """Creates what the operation reads; returns (service, headers, body)."""
    json_headers = lambda target: {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target}
    if op == "GetCallerIdentity":
        return "sts", {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}, "Action=GetCallerIdentity&Version=2011-06-15"
    if op == "GetSecretValue":
        ensure_secret(endpoint)
        return "secretsmanager", json_headers("secretsmanager.GetSecretValue"), json.dumps({"SecretId": SECRET_NAME})
    if op == "KmsDecrypt1KiB":
        kms = client(endpoint, "kms")
        key = kms.create_key(Description="bench")["KeyMetadata"]["KeyId"]
        blob = kms.encrypt(KeyId=key, Plaintext=os.urandom(1024))["CiphertextBlob"]
        return "kms", json_headers("TrentService.Decrypt"), json.dumps({"CiphertextBlob": base64.b64encode(blob).decode()})
    if op == "GetParameterSecureString":
        client(endpoint, "ssm").put_parameter(Name=PARAM_NAME, Value=VALUE, Type="SecureString", Overwrite=True)
        return "ssm", json_headers("AmazonSSM.GetParameter"), json.dumps({"Name": PARAM_NAME, "WithDecryption": True})
    if op == "GetParameterReference":
        ensure_secret(endpoint)
        name = f"/aws/reference/secretsmanager/{SECRET_NAME}"
        return "ssm", json_headers("AmazonSSM.GetParameter"), json.dumps({"Name": name, "WithDecryption": True})
    raise SystemExit(f"unknown operation {op}")


WRITE_NAMES = 400  # PutParameterMany rotates over this many parameters (100 versions each at most)


def signed(endpoint, service, headers, body, akid, secret):
    req = AWSRequest(method="POST", url=endpoint + "/", data=body.encode(), headers=headers)
    botocore.auth.SigV4Auth(Credentials(akid, secret), service, REGION).add_auth(req)
    return {k: v for k, v in req.prepare().headers.items() if k.lower() != "content-length"}


def put_parameter_many(endpoint, akid, secret):
    """A wrk script that cycles through pre-signed PutParameter (SecureString, Overwrite)
    requests on WRITE_NAMES different parameters: a durable write load."""
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "AmazonSSM.PutParameter"}
    reqs = []
    for i in range(WRITE_NAMES):
        body = json.dumps({"Name": f"/bench/write/{i}", "Value": VALUE, "Type": "SecureString", "Overwrite": True})
        reqs.append((body, signed(endpoint, "ssm", headers, body, akid, secret)))
    # wrk.format fills in Host from wrk.headers, which wrk sets only after the script is
    # loaded: the requests are formatted on first use.
    lines = ["local specs = {}", "local reqs = nil"]
    for body, h in reqs:
        hs = ", ".join(f"[{json.dumps(k)}] = {json.dumps(v)}" for k, v in h.items())
        lines.append(f"table.insert(specs, {{{{{hs}}}, {json.dumps(body)}}})")
    lines.append("local i = 0")
    lines.append("request = function()")
    lines.append("  if reqs == nil then reqs = {}; for _, s in ipairs(specs) do table.insert(reqs, wrk.format(\"POST\", \"/\", s[1], s[2])) end end")
    lines.append("  i = (i % #reqs) + 1; return reqs[i]")
    lines.append("end")
    print("\n".join(lines))


def main():
    endpoint, op = sys.argv[1], sys.argv[2]
    if op == "PutParameterMany":
        akid, secret = iam_user(endpoint) if "--iam-user" in sys.argv else (ADMIN_AKID, ADMIN_SECRET)
        put_parameter_many(endpoint, akid, secret)
        return
    service, headers, body = setup(endpoint, op)
    akid, secret = iam_user(endpoint) if "--iam-user" in sys.argv else (ADMIN_AKID, ADMIN_SECRET)
    req = AWSRequest(method="POST", url=endpoint + "/", data=body.encode(), headers=headers)
    botocore.auth.SigV4Auth(Credentials(akid, secret), service, REGION).add_auth(req)
    p = req.prepare()
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body)}"]
    for k, v in p.headers.items():
        if k.lower() != "content-length":
            lines.append(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
