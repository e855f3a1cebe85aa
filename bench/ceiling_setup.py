"""Prepares the reads of bench/ceiling.sh on a running `tresor serve --dev` and writes one wrk
Lua script per measured request into OUT_DIR (a SigV4 signature carries no nonce and stays
valid for the 5-minute skew window, so wrk can replay a signed request: the server still
verifies, authorizes and decrypts every one).

What is read, as in a real deployment's hot path:
- an IAM user `bench` with an identity policy (the caller of every request);
- a customer managed KMS key with an explicit key policy;
- a secret under that key, with a resource policy naming the user;
- `gsv.lua`: GetSecretValue of that secret;
- `ref.lua`: GetParameter `/aws/reference/secretsmanager/<that secret>` (WithDecryption);
- `decrypt.lua`: KMS Decrypt of 1 KiB encrypted under that key;
- `writers.lua`: PutSecretValue on WRITE_SECRETS *other* secrets (under the same key), cycled,
  no ClientRequestToken in the body, so each replay is a new version (at most 98 writes per
  secret before the version quota: enough for about 39,000 writes, one run's phase);
- `soak_writers.lua`: PutParameter (SecureString, Overwrite) on 400 parameters, cycled (no
  version quota: the oldest version goes), for long soaks.

usage: ceiling_setup.py ENDPOINT OUT_DIR
       ceiling_setup.py --resign ENDPOINT OUT_DIR   (fresh signatures for the same requests)
"""

import base64
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import boto3
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REGION = "us-east-1"
ACCOUNT = "000000000000"  # --dev
SECRET = "bench/ceiling"
VALUE = base64.b64encode(os.urandom(768)).decode()  # 1 KiB of text
WRITE_SECRETS = 400
SOAK_PARAMS = 400


def client(endpoint, service, akid="test", secret="test"):
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id=akid, aws_secret_access_key=secret)


def signed_headers(endpoint, service, target, body, akid, secret):
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target}
    req = AWSRequest(method="POST", url=endpoint + "/", data=body.encode(), headers=headers)
    botocore.auth.SigV4Auth(Credentials(akid, secret), service, REGION).add_auth(req)
    return {k: v for k, v in req.prepare().headers.items() if k.lower() != "content-length"}


def one_request_script(endpoint, service, target, body, akid, secret):
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body)}"]
    for k, v in signed_headers(endpoint, service, target, body, akid, secret).items():
        lines.append(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}")
    return "\n".join(lines) + "\n"


def cycling_script(endpoint, service, target, bodies, akid, secret):
    # wrk.format fills in Host from wrk.headers, which wrk sets only after the script is
    # loaded: the requests are formatted on first use.
    lines = ["local specs = {}", "local reqs = nil"]
    for body in bodies:
        h = signed_headers(endpoint, service, target, body, akid, secret)
        hs = ", ".join(f"[{json.dumps(k)}] = {json.dumps(v)}" for k, v in h.items())
        lines.append(f"table.insert(specs, {{{{{hs}}}, {json.dumps(body)}}})")
    lines += [
        "local i = 0",
        "request = function()",
        '  if reqs == nil then reqs = {}; for _, s in ipairs(specs) do table.insert(reqs, wrk.format("POST", "/", s[1], s[2])) end end',
        "  i = (i % #reqs) + 1; return reqs[i]",
        "end",
    ]
    return "\n".join(lines) + "\n"


def write_scripts(endpoint, out, akid, sk, key, blob):
    """Writes the signed wrk scripts (see the module documentation) into `out`."""
    scripts = {
        "gsv.lua": one_request_script(endpoint, "secretsmanager", "secretsmanager.GetSecretValue", json.dumps({"SecretId": SECRET}), akid, sk),
        "ref.lua": one_request_script(
            endpoint, "ssm", "AmazonSSM.GetParameter", json.dumps({"Name": f"/aws/reference/secretsmanager/{SECRET}", "WithDecryption": True}), akid, sk
        ),
        "decrypt.lua": one_request_script(endpoint, "kms", "TrentService.Decrypt", json.dumps({"CiphertextBlob": blob}), akid, sk),
        "writers.lua": cycling_script(
            endpoint,
            "secretsmanager",
            "secretsmanager.PutSecretValue",
            [json.dumps({"SecretId": f"bench/w/{i}", "SecretString": VALUE}) for i in range(WRITE_SECRETS)],
            akid,
            sk,
        ),
        "soak_writers.lua": cycling_script(
            endpoint,
            "ssm",
            "AmazonSSM.PutParameter",
            [json.dumps({"Name": f"/bench/soak/{i}", "Value": VALUE, "Type": "SecureString", "KeyId": key, "Overwrite": True}) for i in range(SOAK_PARAMS)],
            akid,
            sk,
        ),
    }
    for name, text in scripts.items():
        with open(os.path.join(out, name), "w") as f:
            f.write(text)


def main():
    if sys.argv[1] == "--resign":
        # Signatures age out of the 5-minute skew window: a long soak re-signs every few minutes.
        endpoint, out = sys.argv[2], sys.argv[3]
        with open(os.path.join(out, "state.json")) as f:
            st = json.load(f)
        write_scripts(endpoint, out, st["akid"], st["sk"], st["key"], st["blob"])
        return
    endpoint, out = sys.argv[1], sys.argv[2]
    user_arn = f"arn:aws:iam::{ACCOUNT}:user/bench"
    iam = client(endpoint, "iam")
    iam.create_user(UserName="bench")
    iam.put_user_policy(
        UserName="bench",
        PolicyName="bench",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue", "ssm:GetParameter", "ssm:PutParameter"], "Resource": "*"},
                    {"Effect": "Allow", "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"], "Resource": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/*"},
                ],
            }
        ),
    )
    k = iam.create_access_key(UserName="bench")["AccessKey"]
    akid, sk = k["AccessKeyId"], k["SecretAccessKey"]

    kms = client(endpoint, "kms")
    key_policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Enable IAM policies", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*"},
            {"Sid": "Bench user", "Effect": "Allow", "Principal": {"AWS": user_arn}, "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*",
             "Condition": {"StringEquals": {"kms:CallerAccount": ACCOUNT}}},
        ],
    }
    key = kms.create_key(Description="bench ceiling", Policy=json.dumps(key_policy))["KeyMetadata"]["Arn"]

    sm = client(endpoint, "secretsmanager")
    arn = sm.create_secret(Name=SECRET, KmsKeyId=key, SecretString=VALUE)["ARN"]
    sm.put_resource_policy(
        SecretId=SECRET,
        ResourcePolicy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"AWS": user_arn}, "Action": "secretsmanager:GetSecretValue", "Resource": "*"},
                    {"Effect": "Deny", "Principal": "*", "Action": "secretsmanager:GetSecretValue", "Resource": "*",
                     "Condition": {"StringEquals": {"aws:PrincipalTag/quarantined": "true"}}},
                ],
            }
        ),
    )

    def create(i):
        sm.create_secret(Name=f"bench/w/{i}", KmsKeyId=key, SecretString=VALUE)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(WRITE_SECRETS)))

    blob = base64.b64encode(kms.encrypt(KeyId=key, Plaintext=os.urandom(1024))["CiphertextBlob"]).decode()
    # What re-signing needs (`--resign`): the bench user's key, a development server's.
    with open(os.path.join(out, "state.json"), "w") as f:
        json.dump({"akid": akid, "sk": sk, "key": key, "blob": blob}, f)
    write_scripts(endpoint, out, akid, sk, key, blob)
    print(arn)


if __name__ == "__main__":
    main()
