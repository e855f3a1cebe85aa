//! A typical authorization: one identity policy with three statements, one secret resource
//! policy, two conditions. Target: under 5 µs per evaluation (a precompiled matcher should cost
//! about 0.2 µs).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tresor_policy::{
    Context, Policy, PolicyKind, PolicySet, PolicySource, Principal, Request, ResourceKind,
    SourcePolicyType, evaluate,
};

const IDENTITY: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "ReadCiSecrets", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
     "Resource": "arn:aws:secretsmanager:*:111122223333:secret:ci/*",
     "Condition": {"Bool": {"aws:SecureTransport": "true"}}},
    {"Sid": "ReadReference", "Effect": "Allow", "Action": "ssm:GetParameter",
     "Resource": "arn:aws:ssm:*:111122223333:parameter/aws/reference/secretsmanager/ci/*"},
    {"Sid": "DecryptWithCiKey", "Effect": "Allow", "Action": "kms:Decrypt",
     "Resource": "arn:aws:kms:*:111122223333:key/*"}
  ]
}"#;

const SECRET_POLICY: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": "AROACIEXAMPLE12345678"}, "Action": "secretsmanager:GetSecretValue",
     "Resource": "*", "Condition": {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.0.0/16"]}}}
  ]
}"#;

fn bench(c: &mut Criterion) {
    let identity = Policy::parse(IDENTITY, PolicyKind::Identity).unwrap_or_else(|e| panic!("{e}"));
    let resource =
        Policy::parse(SECRET_POLICY, PolicyKind::Resource).unwrap_or_else(|e| panic!("{e}"));
    let principal = Principal::assumed_role("111122223333", "ci", "AROACIEXAMPLE12345678", "i-1");
    let context = Context::new()
        .with_bool("aws:SecureTransport", true)
        .with("aws:SourceIp", "10.1.2.3")
        .with("aws:RequestedRegion", "eu-west-1")
        .with("aws:CurrentTime", "2026-11-01T12:00:00Z");
    let set = PolicySet {
        identity: vec![(
            PolicySource {
                id: "arn:aws:iam::111122223333:policy/ci",
                source_type: SourcePolicyType::UserManaged,
            },
            &identity,
        )],
        boundary: None,
        session: Vec::new(),
        resource: Some((
            PolicySource {
                id: "secret",
                source_type: SourcePolicyType::Resource,
            },
            &resource,
        )),
        resource_kind: ResourceKind::Generic,
    };
    let request = Request {
        principal: &principal,
        action: "secretsmanager:GetSecretValue",
        resource: "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ci/agent-token-AbCdEf",
        resource_account: Some("111122223333"),
        context: &context,
    };
    assert!(evaluate(&request, &set).allowed);
    c.bench_function("evaluate_typical_request", |b| {
        b.iter(|| evaluate(black_box(&request), black_box(&set)))
    });
    let denied = Request {
        action: "secretsmanager:PutSecretValue",
        ..request
    };
    c.bench_function("evaluate_implicit_deny", |b| {
        b.iter(|| evaluate(black_box(&denied), black_box(&set)))
    });
    c.bench_function("parse_identity_policy", |b| {
        b.iter(|| Policy::parse(black_box(IDENTITY), PolicyKind::Identity))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
